//! Integration tests: node images, plans of up and apply, completion, image builds.

use super::*;

/// `image ls` probes every node image on the engine, those other tests made for themselves included: a
/// test whose image never answers holds this alone, every other `image ls` shares it.
static TEST_IMAGES: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// `regbox image ls --json`, never while a test image that hangs is on the engine.
async fn image_ls() -> serde_json::Value {
    let _shared = TEST_IMAGES.read().await;
    ok_json(&["image", "ls", "--json"]).await
}

#[test]
fn the_default_image_is_resolved_and_recorded_and_up_image_replaces_it() {
    run(async {
        let name = unique("img");
        let _guard = Teardown(name.clone());
        let built = ensure_image();
        assert!(built.starts_with("regbox/bitcoind:"), "{built}");
        let alias_guard = Alias::new("regbox-test/alias", &name).await;
        let alias = alias_guard.0.clone();
        // `c` names the bare default itself: `--image` leaves a node's own image alone.
        let manifest = TempFile::new(
            "images.yaml",
            &format!("name: {name}\nnodes:\n  - name: a\n  - name: b\n  - name: c\n    image: regbox/bitcoind\ntopology: line\n"),
        );
        let file = manifest.to_str().unwrap().to_string();
        ok(&["up", &file, "--image", &alias]).await;
        let images = || async {
            let status = ok_json(&["status", &name, "--json"]).await;
            status
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["image"].as_str().unwrap().to_string())
                .collect::<Vec<String>>()
        };
        assert_eq!(
            images().await,
            vec![alias.clone(), alias.clone(), built.to_string()]
        );
        let listed = image_ls().await;
        for (image, cluster_uses_it) in [(built, true), (alias.as_str(), true)] {
            let entry = listed
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["name"] == image)
                .unwrap_or_else(|| panic!("{image} missing from {listed}"));
            assert!(
                entry["bitcoind"].as_str().unwrap().contains("version"),
                "{entry}"
            );
            let clusters = entry["clusters"].as_array().unwrap();
            assert_eq!(
                clusters.iter().any(|c| c == name.as_str()),
                cluster_uses_it,
                "{entry}"
            );
        }
        // The exact images are recorded: a later `up` of the same manifest keeps them.
        ok(&["up", &file]).await;
        assert_eq!(
            images().await,
            vec![alias.clone(), alias.clone(), built.to_string()]
        );
        drop(alias_guard);
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn up_dry_run_and_apply_print_the_plan_and_apply_touches_only_what_changed() {
    run(async {
        let name = unique("dry");
        let _guard = Teardown(name.clone());
        let write = |n: usize, extra: &str| {
            TempFile::new(
                &format!("ring{n}.yaml"),
                &format!("name: {name}\nnodes: {n}\ntopology: ring\n{extra}"),
            )
        };
        let (four_file, five_file) = (write(4, ""), write(5, ""));
        let (four, five) = (four_file.to_str().unwrap(), five_file.to_str().unwrap());
        let plan = ok_json(&["up", four, "--dry-run", "--json"]).await;
        assert_eq!(plan["exists"], false);
        assert_eq!(plan["create"], serde_json::json!(["n0", "n1", "n2", "n3"]));
        assert_eq!(plan["connect"].as_array().unwrap().len(), 4);
        assert_eq!(
            leftovers(&name).await,
            Vec::<String>::new(),
            "a dry run creates nothing"
        );
        ok(&["up", four]).await;
        ok(&["-c", &name, "stop", "n2"]).await;
        let plan = ok_json(&["apply", five, "--dry-run", "--json"]).await;
        assert_eq!(plan["exists"], true);
        assert_eq!(plan["create"], serde_json::json!(["n4"]));
        assert_eq!(plan["start"], serde_json::json!(["n2"]));
        assert_eq!(plan["disconnect"], serde_json::json!(["n0-n3"]));
        let connect: Vec<&str> = plan["connect"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(connect, vec!["n1-n2", "n2-n3", "n3-n4", "n4-n0"]);
        // Nothing changed: n2 still stopped, no n4.
        let status = ok_json(&["status", &name, "--json"]).await;
        assert_eq!(status.as_array().unwrap().len(), 4);
        assert_eq!(status[2]["state"], "exited");
        // Carried out, the plan leaves nothing more to do.
        ok(&["up", five]).await;
        let text = ok(&["up", five, "--dry-run"]).await;
        assert!(text.contains("nothing to do"), "{text}");

        // apply: n2's arguments change, n4 goes, every node gets a delay. Only n2 is remade.
        let ids = |cs: Vec<outside::Container>| -> BTreeMap<String, String> {
            cs.into_iter().map(|c| (c.name, c.id)).collect()
        };
        let before = ids(outside::containers(&name).await);
        let changed = TempFile::new(
            "changed.yaml",
            &format!(
                "name: {name}\ndefaults:\n  link: {{delay: 20ms}}\ntopology: ring\nnodes:\n  - {{name: n0}}\n  - {{name: n1}}\n  - {{name: n2, args: [-maxmempool=50]}}\n  - {{name: n3}}\n"
            ),
        );
        let changed = changed.to_str().unwrap();
        let plan = ok_json(&["apply", changed, "--dry-run", "--json"]).await;
        assert_eq!(plan["recreate"], serde_json::json!(["n2"]));
        assert_eq!(plan["why"], serde_json::json!({"n2": ["args"]}));
        assert_eq!(
            plan["remove"],
            serde_json::json!([format!("regbox-{name}-n4")])
        );
        assert_eq!(plan["links"].as_array().unwrap().len(), 4, "{plan}");
        assert_eq!(plan["links"][0]["after"], "delay 20ms");
        let text = ok(&["apply", changed]).await;
        assert!(
            text.contains("~ node n2") && text.contains("recreate: args changed"),
            "{text}"
        );
        assert!(text.contains("- container regbox-"), "{text}");
        let after = ids(outside::containers(&name).await);
        for node in ["n0", "n1", "n3"] {
            let c = format!("regbox-{name}-{node}");
            assert_eq!(before[&c], after[&c], "{node} was not to be touched");
        }
        let n2 = format!("regbox-{name}-n2");
        assert_ne!(before[&n2], after[&n2], "n2 is remade");
        assert!(!after.contains_key(&format!("regbox-{name}-n4")));
        let status = ok_json(&["status", &name, "--json"]).await;
        assert!(
            status
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["links"] == "delay 20ms"),
            "{status}"
        );
        let text = ok(&["apply", changed]).await;
        assert!(text.contains("nothing to do"), "{text}");
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

/// Makes `dir/<top>` a Bitcoin Core release tree (bin/bitcoind, bin/bitcoin-cli, and lib/ with the
/// libraries they need) from the files of the Debian-built node image, and returns the .tar.gz of it.
pub(crate) fn release_tarball(files: &[u8], dir: &Path, top: &str) -> std::path::PathBuf {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::write(dir.join("rootfs.tar"), files).unwrap();
    let sh = |script: &str| sh_in(dir, script);
    sh("tar -xf rootfs.tar -C rootfs usr");
    sh(&format!(
        "mkdir -p {top}/bin {top}/lib && cp rootfs/usr/bin/bitcoind rootfs/usr/bin/bitcoin-cli {top}/bin/ \
         && cp rootfs/usr/lib/x86_64-linux-gnu/* {top}/lib/ && tar -czf {top}-x86_64-linux-gnu.tar.gz {top}"
    ));
    dir.join(format!("{top}-x86_64-linux-gnu.tar.gz"))
}

#[test]
fn an_image_built_from_a_release_tarball_runs_in_one_cluster_with_the_debian_one() {
    run(async {
        let name = unique("from");
        let _guard = Teardown(name.clone());
        let debian = ensure_image();
        let dir = tempfile::tempdir().unwrap();
        let tarball = release_tarball(
            &outside::export(debian, &format!("{name}-export")).await,
            dir.path(),
            "bitcoin-29.4",
        );
        let tarball = tarball.to_str().unwrap();
        // Named for the bitcoind inside it unless told otherwise; never the bare default.
        let built = ok(&["image", "build", "--from", tarball]).await;
        let built = built.trim();
        let _built_guard = Alias(built.to_string());
        assert!(built.starts_with("regbox/bitcoind:local-knots-"), "{built}");
        let tagged = format!("regbox/bitcoind:local-test-{name}");
        assert_eq!(
            ok(&["image", "build", "--from", tarball, "--tag", &tagged[22..]])
                .await
                .trim(),
            tagged
        );
        let _tagged_guard = Alias(tagged.clone());
        let listed = image_ls().await;
        let entry = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == tagged)
            .unwrap();
        assert!(
            entry["bitcoind"].as_str().unwrap().contains("Knots"),
            "{entry}"
        );
        // A cluster mixing the Debian image and the tarball's comes up verified and agrees on a chain.
        let file = dir.path().join("mixed.yaml");
        std::fs::write(
            &file,
            format!(
                "name: {name}\nnodes:\n  - name: a\n  - name: b\n    image: {tagged}\n  - name: c\n  - name: d\n    image: {tagged}\ntopology: ring\n"
            ),
        )
        .unwrap();
        ok(&["up", file.to_str().unwrap()]).await;
        let status = ok_json(&["status", "-c", &name, "--json"]).await;
        let images: Vec<&str> = status
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["image"].as_str().unwrap())
            .collect();
        assert_eq!(images, [debian, &tagged, debian, &tagged]);
        let (inside, _) = outside::inspect(&format!("regbox-{name}-b")).await;
        assert_eq!(inside.config.unwrap().user.as_deref(), Some("10001:10001"));
        ok(&["-c", &name, "mine", "b", "3"]).await;
        ok(&["-c", &name, "sync"]).await;
        let status = ok_json(&["status", "-c", &name, "--json"]).await;
        assert!(
            status.as_array().unwrap().iter().all(|n| n["height"] == 3),
            "{status}"
        );
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn image_build_from_refuses_what_it_cannot_use() {
    run_without_image(async {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nothing-here.tar.gz");
        let out = regbox()
            .args(["image", "build", "--from", missing.to_str().unwrap()])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("no such file or directory"),
            "{}",
            stderr(&out)
        );
        let out = regbox()
            .args(["image", "build", "--tag", "x"])
            .output()
            .await
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "--tag needs --from: {}",
            stderr(&out)
        );
        let out = regbox()
            .args(["image", "build", "--from", ".", "--tag=a:b"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        // A self-built binary whose libraries neither it nor the host has: the library is named.
        let files = outside::export(ensure_image(), &unique("export")).await;
        std::fs::write(dir.path().join("rootfs.tar"), files).unwrap();
        let untar = Command::new("tar")
            .args(["-xf", "rootfs.tar", "usr/bin/bitcoind"])
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(untar.success());
        let binary = dir.path().join("usr/bin/bitcoind");
        // What it is given is refused, as bad input: exit code 2.
        let out = regbox()
            .args(["image", "build", "--from", binary.to_str().unwrap()])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("needs lib"), "{}", stderr(&out));
        // Not a tarball at all.
        let out = regbox()
            .args(["image", "build", "--from", "README.md"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("refused README.md")
                && stderr(&out).contains("neither a directory, an ELF binary nor a tarball"),
            "{}",
            stderr(&out)
        );
        // A tarball without bitcoind.
        std::fs::create_dir_all(dir.path().join("empty/bin")).unwrap();
        sh_in(dir.path(), "tar -czf empty.tar.gz empty");
        let out = regbox()
            .args(["image", "build", "--from"])
            .arg(dir.path().join("empty.tar.gz"))
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("no bitcoind in"), "{}", stderr(&out));
        // A failure of the machine is not the input's fault: a mirror that cannot be reached is exit
        // code 1.
        let out = regbox()
            .args(["image", "build"])
            .env("REGBOX_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("cannot fetch the sid index"),
            "{}",
            stderr(&out)
        );
    });
}

/// What `REGBOX_COMPLETE=bash regbox -- WORDS…` offers for the last word (as the script of `regbox
/// completions bash` asks it).
pub(crate) async fn completions(words: &[&str]) -> Vec<String> {
    let out = regbox()
        .env("REGBOX_COMPLETE", "bash")
        .env("_CLAP_IFS", "\n")
        .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
        .env_remove("REGBOX_CLUSTER")
        .arg("--")
        .args(words)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{words:?}: {}", stderr(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn completion_offers_the_clusters_and_nodes_on_the_engine() {
    run(async {
        let name = unique("comp");
        let (_cluster, _guard) = up(load_nodes(&name, &["alpha", "beta"])).await;
        let clusters = completions(&["regbox", "status", ""]).await;
        assert!(clusters.contains(&name), "{clusters:?}");
        let clusters = completions(&["regbox", "-c", ""]).await;
        assert!(clusters.contains(&name), "{clusters:?}");
        for line in [
            &["regbox", "-c", &name, "stop", ""][..],
            &["regbox", "mine", "--cluster", &name, ""],
            &[
                "regbox",
                &format!("--cluster={name}"),
                "partition",
                "--isolate",
                "",
            ],
        ] {
            let nodes = completions(line).await;
            assert!(
                nodes.contains(&"alpha".to_string()) && nodes.contains(&"beta".to_string()),
                "{line:?}: {nodes:?}"
            );
        }
        let nodes = completions(&["regbox", "-c", &name, "stop", "al"]).await;
        assert_eq!(nodes, ["alpha"]);
        // The scripts: the default one calls back into regbox, --static does not.
        for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
            let script = ok(&["completions", shell]).await;
            assert!(script.contains("REGBOX_COMPLETE"), "{shell}: {script}");
            let fixed = ok(&["completions", shell, "--static"]).await;
            assert!(
                !fixed.contains("REGBOX_COMPLETE") && fixed.contains("partition"),
                "{shell}"
            );
        }
        let man = ok(&["man"]).await;
        assert!(
            man.starts_with(".ie") || man.contains(".TH regbox"),
            "{man}"
        );
    });
}

/// A line of named nodes.
pub(crate) fn load_nodes(name: &str, nodes: &[&str]) -> ClusterSpec {
    let list: String = nodes.iter().map(|n| format!("  - name: {n}\n")).collect();
    manifest::parse(
        &format!("name: {name}\nnodes:\n{list}topology: line\n"),
        "inline",
    )
    .unwrap()
}

#[test]
fn image_build_from_takes_dynamic_static_and_linked_binaries() {
    run(async {
        let name = unique("kinds");
        let dir = tempfile::tempdir().unwrap();
        let sh = |script: &str| sh_in(dir.path(), script);
        // A stand-in for a self-built bitcoind: what the image build does with a binary depends only
        // on how it is linked, and this one answers `-version` like bitcoind does.
        std::fs::write(
            dir.path().join("fake.c"),
            "#include <stdio.h>\nint main(void) { puts(\"Bitcoin Core version v0.0.1\"); return 0; }\n",
        )
        .unwrap();
        sh("gcc -O1 -o dynamic fake.c && gcc -static -o static fake.c && gcc -static-pie -o static-pie fake.c");
        // A release tree whose bin/bitcoind links to the real file, relying on the host's glibc.
        sh("mkdir -p bitcoin-0.0.1/bin bitcoin-0.0.1/libexec && cp dynamic bitcoin-0.0.1/libexec/bitcoind \
            && ln -s ../libexec/bitcoind bitcoin-0.0.1/bin/bitcoind && tar -czf linked.tar.gz bitcoin-0.0.1");
        let path = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
        let mut guards = Vec::new();
        for (kind, from) in [
            ("linked", path("linked.tar.gz")),
            ("static", path("static")),
            ("pie", path("static-pie")),
        ] {
            let tag = format!("test-{name}-{kind}");
            let built = ok(&["image", "build", "--from", &from, "--tag", &tag]).await;
            assert_eq!(built.trim(), format!("regbox/bitcoind:local-{tag}"));
            guards.push(Alias(built.trim().to_string()));
        }
        // Each runs in its image: `image ls` asks every regbox image's bitcoind for its version.
        let listed = image_ls().await;
        for guard in &guards {
            let entry = listed
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["name"] == guard.0.as_str());
            let entry = entry.unwrap_or_else(|| panic!("{} missing from {listed}", guard.0));
            assert_eq!(entry["bitcoind"], "Bitcoin Core version v0.0.1", "{entry}");
        }
        // A link out of the tree is refused (bad input: exit code 2).
        sh("mkdir -p outside/bin && ln -s /bin/true outside/bin/bitcoind");
        let out = regbox()
            .args(["image", "build", "--from", &path("outside")])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("links outside the tree"),
            "{}",
            stderr(&out)
        );
    });
}

#[test]
fn image_build_from_works_when_the_temporary_directory_is_reached_through_a_link() {
    run_without_image(async {
        let name = unique("tmplink");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("fake.c"),
            "#include <stdio.h>\nint main(void) { puts(\"Bitcoin Core version v0.0.8\"); return 0; }\n",
        )
        .unwrap();
        // A release tree whose bin/bitcoind links inside it, and a TMPDIR that is a link to a real
        // directory (as /tmp is on some systems): the build's checks that what the tree links to
        // stays inside it compare resolved paths, which must not be taken for links out of it.
        let tarball = format!("{name}.tar.gz");
        sh_in(
            d,
            &format!(
                "gcc -O1 -o fake fake.c && mkdir -p bitcoin-0.0.8/bin bitcoin-0.0.8/libexec \
                 && cp fake bitcoin-0.0.8/libexec/bitcoind && ln -s ../libexec/bitcoind bitcoin-0.0.8/bin/bitcoind \
                 && tar -czf {tarball} bitcoin-0.0.8 && mkdir real && ln -s real tmp"
            ),
        );
        let tag = format!("test-{name}");
        let out = regbox()
            .args(["image", "build", "--tag", &tag, "--from"])
            .arg(d.join(&tarball))
            .env("TMPDIR", d.join("tmp"))
            .output()
            .await
            .unwrap();
        let _guard = Alias(format!("regbox/bitcoind:local-{tag}"));
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("regbox/bitcoind:local-{tag}")
        );
        // Its working directories went with it, and so did its throw-away container and image.
        let left: Vec<_> = std::fs::read_dir(d.join("real")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(probes_left(&tarball).await, Vec::<String>::new());
    });
}

/// Runs `script` with sh in `dir`, failing the test when it fails.
fn sh_in(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What an image build `--from` a file named `from` left on the engine: the images and containers
/// (stopped ones too) labelled with it, as the build labels the throw-away ones it runs the binaries in.
pub(crate) async fn probes_left(from: &str) -> Vec<String> {
    let filter = outside::label_filter(&format!("regbox.from={from}"));
    let images = outside::engine()
        .list_images(Some(
            bollard::query_parameters::ListImagesOptionsBuilder::new()
                .all(true)
                .filters(&filter)
                .build(),
        ))
        .await
        .unwrap();
    images
        .into_iter()
        .map(|i| format!("image {}", i.id))
        .chain(containers_where(&filter).await)
        .collect()
}

/// The containers (stopped ones too) that `filters` select on the engine, each as `container [names]`.
async fn containers_where(filters: &std::collections::HashMap<&str, Vec<String>>) -> Vec<String> {
    let containers = outside::engine()
        .list_containers(Some(
            bollard::query_parameters::ListContainersOptionsBuilder::new()
                .all(true)
                .filters(filters)
                .build(),
        ))
        .await
        .unwrap();
    containers
        .into_iter()
        .map(|c| format!("container {:?}", c.names))
        .collect()
}

/// The containers (stopped ones too) made from `image`.
async fn containers_of(image: &str) -> Vec<String> {
    containers_where(&std::collections::HashMap::from([(
        "ancestor",
        vec![image.to_string()],
    )]))
    .await
}

/// A stand-in for bitcoind that, when it runs, writes "ran" to the file `marker` (where it can) and
/// answers `-version` like bitcoind does.
fn marker_program(marker: &Path, version: &str) -> String {
    format!(
        "#include <stdio.h>\nint main(void) {{ FILE *f = fopen(\"{}\", \"w\"); if (f) {{ fputs(\"ran\\n\", f); fclose(f); }} puts(\"Bitcoin Core version v{version}\"); return 0; }}\n",
        marker.display()
    )
}

/// What a crafted `--from` build must leave alone: a path that must not appear, a file that must keep
/// its bytes (`canary\n`), and the marker the supplied bitcoind writes when it runs.
struct Untouched {
    escaped: std::path::PathBuf,
    canary: std::path::PathBuf,
    marker: std::path::PathBuf,
}

/// Builds an image `--from` the tarball `dir/top.tar.gz` (tagged for it) and tells every way that went
/// wrong: not refused (bad input, exit code 2) with `said`, something of `watch` touched, an image or a throw-away
/// container or image left. What it touched is put back for the next build.
async fn refusal_faults(dir: &Path, top: &str, said: &str, watch: &Untouched) -> Vec<String> {
    let tarball = dir.join(format!("{top}.tar.gz"));
    let tag = format!("test-{top}");
    let out = regbox()
        .args([
            "image",
            "build",
            "--from",
            tarball.to_str().unwrap(),
            "--tag",
            &tag,
        ])
        .output()
        .await
        .unwrap();
    let err = stderr(&out);
    let mut wrong = Vec::new();
    if out.status.code() != Some(2) || !err.contains(said) {
        wrong.push(format!(
            "not refused as `{said}` ({:?}): {err}",
            out.status.code()
        ));
    }
    if watch.escaped.exists() || watch.escaped.is_symlink() {
        wrong.push(format!("the build made {}", watch.escaped.display()));
        let _ = std::fs::remove_dir_all(&watch.escaped);
    }
    if std::fs::read(&watch.canary).unwrap() != b"canary\n" {
        wrong.push(format!("the build wrote over {}", watch.canary.display()));
        std::fs::write(&watch.canary, "canary\n").unwrap();
    }
    if watch.marker.exists() {
        wrong.push("the supplied bitcoind ran on this host".into());
        std::fs::remove_file(&watch.marker).unwrap();
    }
    let image = format!("regbox/bitcoind:local-{tag}");
    if outside::engine().inspect_image(&image).await.is_ok() {
        wrong.push(format!("{image} was made"));
        let _ = outside::engine()
            .remove_image(
                &image,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
    }
    let left = probes_left(&format!("{top}.tar.gz")).await;
    if !left.is_empty() {
        wrong.push(format!("left {left:?}"));
    }
    wrong
}

#[test]
fn image_build_from_refuses_an_interpreter_or_library_name_that_leads_out() {
    run_without_image(async {
        let name = unique("escape");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let marker = d.join("marker");
        std::fs::write(d.join("fake.c"), marker_program(&marker, "0.0.3")).unwrap();
        // What the crafted paths lead to: a place that must not appear, and a file that must not change.
        let escaped = d.join("escaped");
        let canary = d.join("canary/ld-linux-x86-64.so.2");
        std::fs::create_dir_all(canary.parent().unwrap()).unwrap();
        std::fs::write(&canary, "canary\n").unwrap();
        let up = "../".repeat(24);
        let abs_interp = format!(
            "/lib64/{up}{}/ld-linux-x86-64.so.2",
            &escaped.display().to_string()[1..]
        );
        let rel_interp = format!("{up}{}", &canary.display().to_string()[1..]);
        // A library whose name (its soname, so the binary's DT_NEEDED) is a path out of the tree.
        std::fs::write(d.join("evil.c"), "int evil(void) { return 0; }\n").unwrap();
        std::fs::write(
            d.join("needs.c"),
            "#include <stdio.h>\nint evil(void);\nint main(void) { puts(\"Bitcoin Core version v0.0.3\"); return evil(); }\n",
        )
        .unwrap();
        sh_in(
            d,
            &format!(
                "gcc -O1 -o plain fake.c && gcc -O1 -o abs fake.c -Wl,--dynamic-linker={abs_interp} \
                 && gcc -O1 -o rel fake.c -Wl,--dynamic-linker={rel_interp} \
                 && gcc -shared -fPIC -o libevil.so evil.c -Wl,-soname,{up}{}/libevil.so \
                 && gcc -O1 -o needs needs.c -L. -levil",
                &escaped.display().to_string()[1..]
            ),
        );
        let watch = Untouched {
            escaped: escaped.clone(),
            canary,
            marker,
        };
        // Every case is checked, and what went wrong in each is told at the end.
        let mut failures = Vec::new();
        let loader = "lib/ld-linux-x86-64.so.2";
        for (kind, binary, said) in [
            (
                "abs",
                "abs",
                format!("bitcoind: its ELF interpreter (PT_INTERP) {abs_interp} has a '..' component; refused"),
            ),
            (
                "rel",
                "rel",
                format!("bitcoind: its ELF interpreter (PT_INTERP) {rel_interp} is a relative path; refused"),
            ),
            (
                "needed",
                "needs",
                "bitcoind: needed library name".to_string(),
            ),
            // The tree's own loader, a link to a file of this host.
            ("loader", "plain", format!("{loader} links outside the tree it came in (/etc/passwd)")),
        ] {
            // A release tarball (with the library in lib/, and for the last a loader) named for this test.
            let top = format!("{name}-{kind}");
            let extra = if kind == "loader" {
                format!("&& ln -s /etc/passwd {top}/{loader}")
            } else {
                String::new()
            };
            sh_in(
                d,
                &format!(
                    "mkdir -p {top}/bin {top}/lib && cp {binary} {top}/bin/bitcoind && cp libevil.so {top}/lib/ \
                     {extra} && tar -czf {top}.tar.gz {top}"
                ),
            );
            let wrong = refusal_faults(d, &top, &said, &watch).await;
            if !wrong.is_empty() {
                failures.push(format!("{kind}: {}", wrong.join("; ")));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    });
}

#[test]
fn image_build_from_runs_the_supplied_binaries_only_in_a_throwaway_container() {
    run_without_image(async {
        let name = unique("contained");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // bitcoind and bitcoin-cli each leave a marker where they run: here, if they ran on this host.
        let marker = d.join("marker");
        std::fs::write(d.join("fake.c"), marker_program(&marker, "0.0.4")).unwrap();
        sh_in(
            d,
            &format!(
                "gcc -O1 -o fake fake.c && mkdir -p {name}/bin && cp fake {name}/bin/bitcoind \
                 && cp fake {name}/bin/bitcoin-cli && tar -czf {name}.tar.gz {name}"
            ),
        );
        let tarball = d.join(format!("{name}.tar.gz"));
        let tag = format!("test-{name}");
        let built = ok(&[
            "image",
            "build",
            "--from",
            tarball.to_str().unwrap(),
            "--tag",
            &tag,
        ])
        .await;
        let _guard = Alias(built.trim().to_string());
        assert_eq!(built.trim(), format!("regbox/bitcoind:local-{tag}"));
        assert!(
            !marker.exists(),
            "the supplied binaries ran on this host (they wrote {})",
            marker.display()
        );
        // They did run (contained): the version the image is labelled with is what bitcoind said.
        let labels = outside::engine()
            .inspect_image(built.trim())
            .await
            .unwrap()
            .config
            .and_then(|c| c.labels)
            .unwrap_or_default();
        assert_eq!(
            labels.get("regbox.image").map(String::as_str),
            Some("local-0.0"),
            "{labels:?}"
        );
        // The throw-away image and containers are gone.
        assert_eq!(
            probes_left(&format!("{name}.tar.gz")).await,
            Vec::<String>::new()
        );
    });
}

/// A stand-in for bitcoind that answers `-version` with how it runs: its user, effective
/// capabilities, whether it may gain privileges, how many network interfaces it sees, whether its root
/// filesystem is read-only, and its memory and process limits (cgroup v2 or v1).
const SITUATION_PROGRAM: &str = r#"#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>
static void first_word(const char *path, const char *alt, char *out) {
    FILE *f = fopen(path, "r");
    if (!f) f = fopen(alt, "r");
    if (!f || fscanf(f, "%31s", out) != 1) strcpy(out, "?");
    if (f) fclose(f);
}
int main(void) {
    char line[256], cap[32] = "?", nnp[8] = "?", mem[32], pids[32];
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "CapEff:", 7)) sscanf(line + 7, "%31s", cap);
        if (!strncmp(line, "NoNewPrivs:", 11)) sscanf(line + 11, "%7s", nnp);
    }
    int lines = 0;
    FILE *d = fopen("/proc/net/dev", "r");
    while (d && fgets(line, sizeof line, d)) lines++;
    struct statvfs root;
    int ro = statvfs("/", &root) == 0 && (root.f_flag & ST_RDONLY);
    first_word("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes", mem);
    first_word("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max", pids);
    printf("Bitcoin Core version v0.0.6 uid=%d cap=%s nnp=%s ifaces=%d ro=%d mem=%s pids=%s\n",
           (int)getuid(), cap, nnp, lines - 2, ro, mem, pids);
    return 0;
}
"#;

#[test]
fn image_ls_runs_each_bitcoind_locked_down() {
    run(async {
        // Alone: another test's `image ls` probes these images too, and its probe containers would
        // be counted below as left by this one.
        let _alone = TEST_IMAGES.write().await;
        let name = unique("ls");
        // Two images made outside regbox, named in its repository so that `image ls` lists them: one
        // whose bitcoind anyone may run, one whose bitcoind only root may run.
        let open = format!("regbox/bitcoind:test-{name}-open");
        let rooted = format!("regbox/bitcoind:test-{name}-root");
        let _guards = (
            import_bitcoind(&open, SITUATION_PROGRAM, "0755"),
            import_bitcoind(&rooted, SITUATION_PROGRAM, "0700"),
        );
        // (Not `image_ls`: this test holds the lock it would wait for.)
        let listed = ok_json(&["image", "ls", "--json"]).await;
        let said = |image: &str| -> BTreeMap<String, String> {
            let entry = listed
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["name"] == image)
                .unwrap_or_else(|| panic!("{image} missing from {listed}"));
            let line = entry["bitcoind"].as_str().unwrap();
            assert!(line.starts_with("Bitcoin Core version v0.0.6 "), "{entry}");
            line.split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        for (image, uid) in [(&open, "65534"), (&rooted, "0")] {
            let seen = said(image);
            let want = |k: &str, v: &str| assert_eq!(seen[k], v, "{image} {k}: {seen:?}");
            // nobody where the image allows it; root only for the image that needs it, and even
            // then without a capability or a way to gain one.
            want("uid", uid);
            want("cap", "0000000000000000");
            want("nnp", "1");
            want("ifaces", "1"); // loopback only: no network
            want("ro", "1");
            for limit in ["mem", "pids"] {
                let value: u64 = seen[limit]
                    .parse()
                    .unwrap_or_else(|_| panic!("{image}: no {limit} limit: {seen:?}"));
                assert!(value < 1 << 40, "{image}: no {limit} limit: {seen:?}");
            }
        }
        // Each ran in a container of its own that is gone.
        for image in [&open, &rooted] {
            assert_eq!(containers_of(image).await, Vec::<String>::new(), "{image}");
        }
    });
}

#[test]
fn image_ls_gives_up_on_a_bitcoind_that_never_answers() {
    run(async {
        // Alone: no other test's `image ls` may see (and wait on) this image, nor run a probe of it
        // that this test would count as its own.
        let _alone = TEST_IMAGES.write().await;
        let _guard = hanging_image(&unique("hang"));
        let image = _guard.0.clone();
        // Within its bound (30 s) and some, not forever: the entry says why it has no version.
        let listed =
            tokio::time::timeout(Duration::from_secs(90), ok_json(&["image", "ls", "--json"]))
                .await
                .expect("image ls waited more than 90 s for a bitcoind that never answers");
        let entry = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == image)
            .unwrap_or_else(|| panic!("{image} missing from {listed}"))
            .clone();
        let said = entry["bitcoind"].as_str().unwrap();
        assert!(
            said.starts_with("cannot run bitcoind") && said.contains("30 s"),
            "{entry}"
        );
        // Its container was killed and removed.
        assert_eq!(containers_of(&image).await, Vec::<String>::new());
    });
}

/// `regbox/bitcoind:test-<name>`, whose bitcoind never answers (it waits for ever); dropping it
/// removes the image.
fn hanging_image(name: &str) -> Alias {
    import_bitcoind(
        &format!("regbox/bitcoind:test-{name}"),
        "#include <unistd.h>\nint main(void) { for (;;) pause(); }\n",
        "0755",
    )
}

#[test]
fn ctrl_c_during_image_ls_leaves_no_probe_container() {
    run_without_image(async {
        // Alone: no other test's `image ls` may wait on this image, nor run a probe of it that this
        // test would count as left by its own.
        let _alone = TEST_IMAGES.write().await;
        let _guard = hanging_image(&unique("lsint"));
        let image = _guard.0.clone();
        let mut child = regbox()
            .args(["image", "ls", "--json"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Interrupted while the probe of this image runs (it would for 30 s).
        let since = std::time::Instant::now();
        while containers_of(&image).await.is_empty() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "image ls ended before it was interrupted"
            );
            assert!(
                since.elapsed() < Duration::from_secs(120),
                "no probe container came"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        interrupt(&child);
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("image ls did not end after Ctrl-C")
            .unwrap();
        let left = containers_of(&image).await;
        // What a failed run left goes before the verdict (the container holds the image).
        if !left.is_empty() {
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "docker ps -aq --filter ancestor={image} | xargs -r docker rm -f"
                ))
                .output();
        }
        assert_eq!(
            left,
            Vec::<String>::new(),
            "left by the interrupted image ls"
        );
        assert!(!out.status.success());
        assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    });
}
