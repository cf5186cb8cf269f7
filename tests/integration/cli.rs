//! Integration tests: the command line: the cluster flag, hardened nodes, check, the CI example.

use super::*;

#[test]
fn every_command_takes_the_cluster_flag_before_and_after_it_and_up_renames_the_manifest() {
    run(async {
        let (a, b) = (unique("cfa"), unique("cfb"));
        let _guards = (Teardown(a.clone()), Teardown(b.clone()));
        let manifest = TempFile::new("shared.yaml", "name: shared\nnodes: 3\ntopology: line\n");
        let file = manifest.to_str().unwrap().to_string();
        // One manifest brought up twice at the same moment under two names, as two CI jobs would.
        let (x, y) = at_once(&["-c", &a, "up", &file], &["up", &file, "-c", &b]).await;
        assert!(
            x.status.success() && y.status.success(),
            "{}\n{}",
            stderr(&x),
            stderr(&y)
        );
        let commands: &[&[&str]] = &[
            &["status"],
            &["status", "-o", "wide"],
            &["ls"],
            &["url", "n1"],
            &["mine", "n0", "2"],
            &["sync"],
            &["rpc", "n0", "getblockcount"],
            &["logs", "n0", "--tail", "1"],
            &["connect", "n0", "n2"],
            &["disconnect", "n0", "n2"],
            &["partition", "--halves"],
            &["heal", "--sync"],
            &["stop", "n1"],
            &["start", "n1"],
            &["restart", "n1"],
            &["pause", "n1"],
            &["unpause", "n1"],
            &["kill", "n1"],
            &["start", "n1"],
        ];
        for cmd in commands {
            // Two clusters exist: each command must act on the one the flag names, wherever it is.
            let mut before = vec!["-c", a.as_str()];
            before.extend_from_slice(cmd);
            let mut after = cmd.to_vec();
            after.extend_from_slice(&["-c", b.as_str()]);
            ok(&before).await;
            ok(&after).await;
        }
        for name in [&a, &b] {
            let ls = ok_json(&["ls", "--json", "-c", name]).await;
            assert_eq!(ls.as_array().unwrap().len(), 1, "{ls}");
            let status = ok_json(&["status", "--json", "--cluster", name]).await;
            assert!(
                status.as_array().unwrap().iter().all(|n| n["height"] == 2),
                "{status}"
            );
        }
        // `url` gives another program all it needs: a plain HTTP client gets an answer with it.
        let url = ok_json(&["url", "n2", "--json", "-c", &a]).await;
        let (user, password) = (
            url["rpc_user"].as_str().unwrap(),
            url["rpc_password"].as_str().unwrap(),
        );
        assert_eq!(
            url["rpc_url"].as_str().unwrap(),
            format!(
                "http://{user}:{password}@{}",
                url["rpc_address"].as_str().unwrap()
            )
        );
        let body = r#"{"jsonrpc":"1.0","id":1,"method":"getblockcount","params":[]}"#;
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let request = format!(
            "POST / HTTP/1.1\r\nHost: node\r\nAuthorization: Basic {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(url["rpc_address"].as_str().unwrap())
            .await
            .unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.contains(r#""result":2"#), "{answer}");
        // The environment variable works like the flag; two different names are refused.
        let out = regbox()
            .args(["status"])
            .env("REGBOX_CLUSTER", &a)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let out = regbox()
            .args(["status", &b, "-c", &a])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains("two clusters named"),
            "{}",
            stderr(&out)
        );
        let out = regbox()
            .args(["-c", "Bad Name", "up"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains("invalid cluster name"),
            "{}",
            stderr(&out)
        );
        ok(&["-c", &a, "down"]).await;
        ok(&["down", "-c", &b]).await;
        assert_eq!(leftovers(&a).await, Vec::<String>::new());
        assert_eq!(leftovers(&b).await, Vec::<String>::new());
    });
}

#[test]
fn node_containers_are_hardened_and_limited_as_the_manifest_says() {
    run(async {
        let name = unique("hard");
        // Another name for the node image stands for a foreign image (one regbox did not build).
        let foreign_guard = Alias::new("regbox-test/other", &name).await;
        let foreign = foreign_guard.0.clone();
        let yaml = format!(
            "name: {name}\ndefaults:\n  wallet: true\nnodes:\n  - name: a\n  - name: b\n    resources: {{ memory: 256m, cpus: 0.5 }}\n  - name: c\n    image: \"{foreign}\"\ntopology: ring\n"
        );
        let spec = manifest::parse(&yaml, "inline").unwrap();
        let (cluster, _guard) = up(spec).await;
        // The containers hold the image by id: the second name can go now.
        drop(foreign_guard);
        // They work as lab nodes: mining, a wallet send, relay to all.
        cluster.mine("a", 101).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();
        cluster.send("a", "c", 100_000).await.unwrap();
        cluster.sync_mempools(WAIT).await.unwrap();
        let mib = 1 << 20;
        for (node, memory, nano_cpus, user) in [
            ("a", 512 * mib, 0, "10001:10001"),
            ("b", 256 * mib, 500_000_000, "10001:10001"),
            ("c", 512 * mib, 0, "0:0"),
        ] {
            let (info, uids) = outside::inspect(&format!("regbox-{name}-{node}")).await;
            let host = info.host_config.unwrap();
            assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]), "{node}");
            assert_eq!(
                host.security_opt,
                Some(vec!["no-new-privileges".to_string()]),
                "{node}"
            );
            assert_eq!(host.readonly_rootfs, Some(true), "{node}");
            assert_eq!(host.pids_limit, Some(512), "{node}");
            assert_eq!(host.memory, Some(memory), "{node}");
            assert_eq!(host.memory_swap, Some(memory), "{node}: no swap on top");
            assert_eq!(host.nano_cpus.unwrap_or(0), nano_cpus, "{node}");
            assert_eq!(info.config.unwrap().user.as_deref(), Some(user), "{node}");
            let uid = user.split(':').next().unwrap();
            assert!(
                !uids.is_empty() && uids.iter().all(|u| u == uid),
                "{node}: {uids:?}"
            );
            // /tmp: 16 MiB of tmpfs where nothing runs. Read from the kernel's view of the node's
            // mounts, then tried: a program copied there (the image's own bitcoin-cli, which runs
            // from /usr/bin) is refused, and 17 MiB do not fit.
            let pid = info.state.unwrap().pid.unwrap();
            let mounts = std::fs::read_to_string(format!("/proc/{pid}/mounts")).unwrap();
            let tmp = mounts
                .lines()
                .find(|l| l.split(' ').nth(1) == Some("/tmp"))
                .unwrap_or_else(|| panic!("{node}: no /tmp mount in {mounts}"));
            let options: Vec<&str> = tmp.split(' ').nth(3).unwrap().split(',').collect();
            for want in ["noexec", "nosuid", "size=16384k"] {
                assert!(options.contains(&want), "{node}: /tmp mounted {tmp}");
            }
            if node == "a" {
                let root = format!("/proc/{pid}/root");
                std::fs::copy(
                    format!("{root}/usr/bin/bitcoin-cli"),
                    format!("{root}/tmp/cli"),
                )
                .unwrap();
                let exec = |path: &str| {
                    std::process::Command::new("docker")
                        .args(["exec", &format!("regbox-{name}-a"), path, "-version"])
                        .output()
                        .unwrap()
                };
                assert!(exec("/usr/bin/bitcoin-cli").status.success());
                let refused = exec("/tmp/cli");
                // The runtime says why on either stream, as its version pleases.
                let said = format!(
                    "{}{}",
                    String::from_utf8_lossy(&refused.stdout),
                    String::from_utf8_lossy(&refused.stderr)
                );
                assert!(!refused.status.success(), "{said}");
                assert!(said.contains("permission denied"), "{said}");
                std::fs::remove_file(format!("{root}/tmp/cli")).unwrap();
                let full = std::fs::write(format!("{root}/tmp/big"), vec![0u8; 17 << 20]);
                assert!(full.is_err(), "17 MiB fit in /tmp");
                let _ = std::fs::remove_file(format!("{root}/tmp/big"));
            }
            if user == "0:0" {
                // Root in a foreign image keeps only the right to write a datadir of any owner.
                assert_eq!(host.cap_add, Some(vec!["DAC_OVERRIDE".to_string()]));
            } else {
                assert!(host.cap_add.unwrap_or_default().is_empty());
            }
        }
        cluster.down(&Progress::default()).await.unwrap();
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn check_validates_every_example_without_docker_and_locates_the_first_error() {
    run_without_image(async {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        // Every manifest and scenario (graphs/ holds the topology files they name).
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path().display().to_string())
            .filter(|f| f.ends_with(".yaml"))
            .collect();
        files.sort();
        // No engine is reachable at this address: check must not need one.
        let out = regbox()
            .arg("check")
            .args(&files)
            .arg("--json")
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let checked: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let kinds: Vec<&str> = checked
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds.len(), files.len());
        assert!(
            kinds.contains(&"scenario") && kinds.contains(&"manifest"),
            "{kinds:?}"
        );
        let bad = TempFile::new(
            "bad.yaml",
            "name: x\nnodes: 3\ntopology: { edges: [[0, 5]] }\n",
        );
        let out = regbox()
            .arg("check")
            .arg(&files[0])
            .arg(&bad)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains(&format!("{}:3:25:", bad.display())),
            "{}",
            stderr(&out)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(": ok ("));
    });
}

#[test]
fn ctrl_c_during_an_image_build_leaves_no_temporary_files() {
    run(async {
        let tmp = std::env::temp_dir().join(unique("tmp"));
        std::fs::create_dir_all(&tmp).unwrap();
        let mut child = regbox()
            .args(["image", "build"])
            .env("TMPDIR", &tmp)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Interrupt once the build has made its working directory.
        while std::fs::read_dir(&tmp).unwrap().next().is_none() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the build ended before it was interrupted"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        interrupt(&child);
        assert_eq!(child.wait().await.unwrap().code(), Some(130));
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
        std::fs::remove_dir(&tmp).unwrap();
    });
}

#[test]
fn ctrl_c_while_an_image_build_runs_its_binaries_leaves_no_throwaway_container_or_image() {
    run_without_image(async {
        let name = unique("probe");
        let tmp = std::env::temp_dir().join(unique("tmp"));
        std::fs::create_dir_all(&tmp).unwrap();
        let dir = tempfile::tempdir().unwrap();
        // A bitcoind that takes its time to answer `-version`, so the build is interrupted while it
        // runs it in its throw-away container.
        std::fs::write(
            dir.path().join("slow.c"),
            "#include <stdio.h>\n#include <unistd.h>\nint main(void) { sleep(120); puts(\"Bitcoin Core version v0.0.7\"); return 0; }\n",
        )
        .unwrap();
        let binary = dir.path().join(&name);
        let cc = Command::new("gcc")
            .args(["-O1", "-static", "-o"])
            .arg(&binary)
            .arg(dir.path().join("slow.c"))
            .status()
            .unwrap();
        assert!(cc.success());
        let mut child = regbox()
            .args(["image", "build", "--tag", &format!("test-{name}"), "--from"])
            .arg(&binary)
            .env("TMPDIR", &tmp)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Interrupt once the throw-away container exists (the build labels it with the file's name).
        let api = outside::engine();
        let filter = outside::label_filter(&format!("regbox.from={name}"));
        let listed = || {
            api.list_containers(Some(
                bollard::query_parameters::ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filter)
                    .build(),
            ))
        };
        let since = std::time::Instant::now();
        while listed().await.unwrap().is_empty() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the build ended before it was interrupted"
            );
            assert!(
                since.elapsed() < Duration::from_secs(180),
                "no throw-away container came"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        interrupt(&child);
        let stopped = std::time::Instant::now();
        let code = child.wait().await.unwrap().code();
        let took = stopped.elapsed();
        let probes = super::images::probes_left(&name).await;
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        let made = outside::engine()
            .inspect_image(&format!("regbox/bitcoind:local-test-{name}"))
            .await
            .is_ok();
        // What a failed run left goes before the verdict (the container holds the image).
        if !probes.is_empty() {
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "docker ps -aq --filter label=regbox.from={name} | xargs -r docker rm -f; \
                     docker images -q --filter label=regbox.from={name} | xargs -r docker rmi -f"
                ))
                .output();
        }
        assert_eq!(code, Some(130));
        assert_eq!(
            probes,
            Vec::<String>::new(),
            "left by the interrupted build"
        );
        assert!(left.is_empty(), "{left:?}");
        assert!(!made);
        // Stopped within its bounded grace, not at the end of its binary's run: regbox gives the
        // script at most 20 s (its STOP_GRACE) before killing what is left, so 50 s is no false alarm
        // under load, and it is still below the 60 s the build itself lets a binary run (the one here
        // sleeps 120 s), which a regbox that waited for the run to end would reach.
        assert!(took < Duration::from_secs(50), "took {took:?} to stop");
        std::fs::remove_dir(&tmp).unwrap();
    });
}

#[test]
fn the_example_ci_workflow_parses_and_names_only_commands_that_exist() {
    use clap::Parser;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/github-actions.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let workflow: serde_json::Value = serde_saphyr::from_str(&text).expect("valid YAML");
    let job = &workflow["jobs"]["regtest"];
    assert!(job["env"]["REGBOX_CLUSTER"]
        .as_str()
        .unwrap()
        .contains("github.run_id"));
    let steps = job["steps"].as_array().unwrap();
    let mut invocations: Vec<Vec<String>> = Vec::new();
    for step in steps {
        let Some(run) = step["run"].as_str() else {
            continue;
        };
        // Shell lines split into simple commands at `;`, `&&`, `||` and the words of `if … fi`.
        let mut current: Vec<String> = Vec::new();
        let words = run.split_whitespace().flat_map(|w| {
            let bare = w.trim_end_matches(';');
            let sep = (bare.len() != w.len()).then_some(";");
            [Some(bare), sep].into_iter().flatten()
        });
        for word in words.chain([";"]) {
            if [";", "&&", "||", "if", "then", "else", "fi"].contains(&word) {
                if current.first().map(String::as_str) == Some("regbox") {
                    invocations.push(std::mem::take(&mut current));
                }
                current.clear();
            } else {
                current.push(word.to_string());
            }
        }
    }
    let text_of = |v: &[String]| v.join(" ");
    for words in &invocations {
        regbox::cli::Cli::try_parse_from(words)
            .unwrap_or_else(|e| panic!("`{}` is not a regbox command: {e}", text_of(words)));
    }
    let all: Vec<String> = invocations.iter().map(|w| text_of(w)).collect();
    for expected in [
        "regbox image build",
        "regbox check",
        "regbox run",
        "regbox down --all",
    ] {
        assert!(
            all.iter().any(|c| c.starts_with(expected)),
            "{expected} missing from {all:?}"
        );
    }
    assert!(all.iter().any(|c| c.contains("--junit")), "{all:?}");
    let last = steps.last().unwrap();
    assert_eq!(last["if"], "always()");
    assert_eq!(last["run"], "regbox down --all");
    assert!(text.contains("docker save regbox/bitcoind") && text.contains("docker load"));
}

#[test]
fn a_manifest_that_runs_commands_in_nodes_is_refused_before_anything_exists() {
    run_without_image(async {
        let name = unique("notify");
        let _guard = Teardown(name.clone());
        let touched = std::env::temp_dir().join(unique("touched"));
        let arg = format!("-blocknotify=touch {}", touched.display());
        let yaml = format!(
            "name: {name}\nnodes:\n  - name: a\n  - name: b\n    args: [-debug=net, \"{arg}\"]\n"
        );
        let file = TempFile::new("notify.yaml", &yaml);
        for verb in ["up", "apply", "check"] {
            let out = regbox().arg(verb).arg(&file).output().await.unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{verb}: {err}");
            assert!(err.contains("notify.yaml:5:24:"), "{verb}: {err}");
            assert!(err.contains("runs a shell command"), "{verb}: {err}");
            assert!(!err.contains("touch"), "{verb}: the value is shown: {err}");
        }
        // The same manifest inline in a scenario.
        let scenario = format!("cluster:\n  name: {name}\n  nodes: 2\n  defaults: {{ args: [\"--WalletNotify=x\"] }}\nsteps: [status]\n");
        let file = TempFile::new(&format!("{name}.scenario.yaml"), &scenario);
        let out = regbox().arg("run").arg(&file).output().await.unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(".scenario.yaml:4:"),
            "{}",
            stderr(&out)
        );
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
        assert!(!touched.exists());

        // An argument that may break the wiring is taken, with a warning that says where and why.
        let file = TempFile::new(
            "warned.yaml",
            &format!("name: {name}\nnodes: 2\ndefaults: {{ args: [-maxconnections=1] }}\n"),
        );
        let out = regbox().arg("check").arg(&file).output().await.unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("WARN")
                && err.contains("warned.yaml:3:20:")
                && err.contains("is allowed, but"),
            "{err}"
        );
    });
}

/// A network namespace joined to the host by a veth pair, on a /30 of TEST-NET-2: an address that is
/// not the host's own and not Docker's, which the host forwards to — "outside" for a node, without a
/// packet leaving this machine. Removed (with its veth) on drop.
struct Outside {
    ns: String,
    address: String,
}

impl Outside {
    fn new() -> Outside {
        let k = 1 + rand::random::<u8>() % 62;
        let tag = format!("{:08x}", rand::random::<u32>());
        let (ns, host_end, ns_end) = (
            format!("rbx{tag}"),
            format!("rbh{tag}"),
            format!("rbn{tag}"),
        );
        let (host_ip, ns_ip) = (
            format!("198.51.100.{}", 4 * k + 1),
            format!("198.51.100.{}", 4 * k + 2),
        );
        let outside = Outside {
            ns: ns.clone(),
            address: ns_ip.clone(),
        };
        for args in [
            vec!["netns", "add", &ns],
            vec![
                "link", "add", &host_end, "type", "veth", "peer", "name", &ns_end,
            ],
            vec!["link", "set", &ns_end, "netns", &ns],
            vec!["addr", "add", &format!("{host_ip}/30"), "dev", &host_end],
            vec!["link", "set", &host_end, "up"],
            vec![
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ns_ip}/30"),
                "dev",
                &ns_end,
            ],
            vec!["-n", &ns, "link", "set", &ns_end, "up"],
            vec!["-n", &ns, "route", "add", "default", "via", &host_ip],
        ] {
            let out = Command::new("ip").args(&args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {}", stderr(&out));
        }
        outside
    }

    /// TCP segments the namespace has received.
    fn segments_in(&self) -> u64 {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "cat", "/proc/net/snmp"])
            .output()
            .unwrap();
        tcp_counters_in(&String::from_utf8_lossy(&out.stdout))["Tcp:InSegs"]
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

#[test]
fn nodes_have_no_way_out_of_the_host_and_rpc_from_the_host_still_works() {
    run(async {
        let name = unique("internal");
        // RPC from this process reaches every node (up waits for it and verifies the wiring over it).
        let (cluster, _guard) = up(cluster_spec(&name, 2, "line")).await;
        cluster.keep();
        for net in [format!("regbox-{name}-ctl"), format!("regbox-{name}-data")] {
            let info = outside::engine().inspect_network(&net, None).await.unwrap();
            assert_eq!(info.internal, Some(true), "{net} is not internal");
        }
        let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
        if root {
            let outside = Outside::new();
            let target = format!("{}:18444", outside.address);
            // A node told to dial it: no segment may arrive.
            ok(&["-c", &name, "rpc", "n0", "addnode", &target, "onetry"]).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(outside.segments_in(), 0, "a node reached {target}");
            // The same address from the host is reachable: the count above is not an artefact.
            let addr: std::net::SocketAddr = target.parse().unwrap();
            let _ = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2));
            assert!(outside.segments_in() > 0, "the host cannot reach {target}");
        } else {
            eprintln!("not root: the check from a network namespace is skipped");
        }
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

/// Runs regbox with `args` (and `DOCKER_HOST` pointing nowhere, as nothing here needs an engine), killed
/// if it has not ended within 20 s: a read that never ends fails the test instead of hanging it.
async fn bounded(args: &[&std::ffi::OsStr]) -> std::process::Output {
    tokio::time::timeout(
        Duration::from_secs(20),
        regbox()
            .args(args)
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("regbox {args:?} still runs after 20 s"))
    .unwrap()
}

#[test]
fn a_device_or_fifo_named_as_a_manifest_scenario_or_topology_file_is_refused_at_once() {
    run_without_image(async {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.yaml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        std::fs::write(
            dir.path().join("topo.yaml"),
            "name: lab\ntopology: {file: pipe.yaml, format: edgelist}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("zero.yaml"),
            "name: lab\ntopology: {file: /dev/zero, format: graphml}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("s.scenario.yaml"),
            "name: s\ncluster: pipe.yaml\nsteps:\n  - sleep: 1\n",
        )
        .unwrap();
        let path = |name: &str| dir.path().join(name).into_os_string();
        let os = std::ffi::OsStr::new;
        let zero = os("/dev/zero");
        let cases: Vec<(Vec<&std::ffi::OsStr>, String, &str)> = vec![
            (
                vec![os("check"), zero],
                "/dev/zero:1:1: this is a character device".into(),
                "",
            ),
            (
                vec![os("up"), zero],
                "/dev/zero:1:1: this is a character device".into(),
                "",
            ),
            (
                vec![os("check"), &fifo.as_os_str()],
                format!("{}:1:1: this is a FIFO (named pipe)", fifo.display()),
                "",
            ),
            (
                vec![os("check")],
                "cannot read `pipe.yaml`: this is a FIFO (named pipe)".to_string(),
                "topo.yaml",
            ),
            (
                vec![os("check")],
                "cannot read `/dev/zero`: this is a character device".to_string(),
                "zero.yaml",
            ),
            (
                vec![os("check")],
                format!("{}:1:1: this is a FIFO (named pipe)", fifo.display()),
                "s.scenario.yaml",
            ),
        ];
        for (args, said, file) in cases {
            let named = path(file);
            let mut args = args;
            if !file.is_empty() {
                args.push(&named);
            }
            let out = bounded(&args).await;
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.contains(&said), "{args:?}: {err}");
            assert!(err.contains("expected a regular file"), "{args:?}: {err}");
        }
    });
}

#[test]
fn a_crafted_spec_in_the_metadata_label_is_refused_with_the_cluster_and_the_label() {
    run_without_image(async {
        let name = unique("badrec");
        let _guard = Teardown(name.clone());
        let docker = |args: &[&str]| {
            let out = std::process::Command::new("docker")
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "docker {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        // An image of nothing: the metadata container is only created, never started.
        let image = format!("regbox-test-empty:{name}");
        let tar = tempfile::NamedTempFile::new().unwrap();
        let made = std::process::Command::new("tar")
            .args([
                "cf",
                tar.path().to_str().unwrap(),
                "--files-from",
                "/dev/null",
            ])
            .status()
            .unwrap();
        assert!(made.success());
        docker(&["import", tar.path().to_str().unwrap(), &image]);
        // Whatever happens below, the crafted cluster and the image go (before `_guard`'s `down`).
        struct Gone(String, String);
        impl Drop for Gone {
            fn drop(&mut self) {
                let docker = |args: &[&str]| {
                    std::process::Command::new("docker")
                        .args(args)
                        .output()
                        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                        .unwrap_or_default()
                };
                let label = format!("label=regbox.cluster={}", self.0);
                for id in docker(&["ps", "-aq", "--filter", &label]).split_whitespace() {
                    docker(&["rm", "-f", id]);
                }
                for id in docker(&["network", "ls", "-q", "--filter", &label]).split_whitespace() {
                    docker(&["network", "rm", id]);
                }
                docker(&["rmi", "-f", &self.1]);
            }
        }
        let _gone = Gone(name.clone(), image.clone());
        let mut spec = cluster_spec(&name, 2, "line");
        spec.nodes[1]
            .args
            .push("-blocknotify=curl http://x/%s".into());
        let labels = [
            format!("regbox.cluster={name}"),
            "regbox.role=meta".to_string(),
            format!("regbox.spec={}", serde_json::to_string(&spec).unwrap()),
            "regbox.rpc-password=pw".to_string(),
        ];
        let mut create = vec![
            "create".to_string(),
            "--name".into(),
            format!("regbox-{name}-meta"),
        ];
        for l in &labels {
            create.extend(["--label".to_string(), l.clone()]);
        }
        create.extend([image.clone(), "true".into()]);
        docker(&create.iter().map(String::as_str).collect::<Vec<_>>());
        // Its networks too, so that nothing but the spec is wrong (without them the cluster is damaged).
        for (role, net) in [("control", "ctl"), ("data", "data")] {
            docker(&[
                "network",
                "create",
                "--internal",
                "--label",
                &format!("regbox.cluster={name}"),
                "--label",
                &format!("regbox.role={role}"),
                &format!("regbox-{name}-{net}"),
            ]);
        }

        let out = regbox()
            .args(["status", "-c", &name])
            .output()
            .await
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "cluster `{name}`: the spec recorded in label `regbox.spec` of its metadata container is refused: "
            )),
            "{err}"
        );
        assert!(err.contains("-blocknotify"), "{err}");
        assert!(
            err.contains(&format!("`regbox down {name}` removes the cluster")),
            "{err}"
        );
        // `ls` still lists it, saying what is wrong with its record.
        let out = regbox().args(["ls", "-c", &name]).output().await.unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("label `regbox.spec`"),
            "{}",
            stderr(&out)
        );
        // And `down` removes it.
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}
