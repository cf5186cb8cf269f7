//! Integration tests: Bitcoin Core images, verified — `image build --core` and a manifest's `core-V`
//! against a release mirror the test serves on loopback (a tarball in Core's layout made from the node
//! image's own files, its SHA256SUMS, and signatures by keys the test generates).

use super::images::{probes_left, release_tarball};
use super::*;

/// A throw-away GnuPG home with release builders' keys made for the test; its agent is stopped and
/// the home removed when dropped.
struct Signers {
    home: tempfile::TempDir,
}

impl Signers {
    /// `n` signing keys, `b0@regbox.invalid` … (ed25519, no passphrase).
    fn new(n: usize) -> Signers {
        let home = tempfile::tempdir().unwrap();
        let signers = Signers { home };
        for i in 0..n {
            signers.gpg(&[
                "--passphrase",
                "",
                "--quick-gen-key",
                &format!("builder {i} <b{i}@regbox.invalid>"),
                "ed25519",
                "sign",
                "never",
            ]);
        }
        signers
    }

    fn gpg(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--batch", "--yes", "--quiet"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "gpg {args:?}: {}", stderr(&out));
        out.stdout
    }

    /// The armored public keys of builders `which`.
    fn keyring(&self, which: &[usize]) -> Vec<u8> {
        let mut args = vec!["--armor".to_string(), "--export".to_string()];
        args.extend(which.iter().map(|i| format!("b{i}@regbox.invalid")));
        self.gpg(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Detached armored signatures of `file` by builders `which`, one after the other (as Core's
    /// SHA256SUMS.asc holds them).
    fn sign(&self, file: &Path, which: &[usize]) -> Vec<u8> {
        let file = file.to_str().unwrap();
        which
            .iter()
            .flat_map(|i| {
                let user = format!("b{i}@regbox.invalid");
                self.gpg(&[
                    "--armor",
                    "--local-user",
                    &user,
                    "--detach-sign",
                    "--output",
                    "-",
                    file,
                ])
            })
            .collect()
    }
}

impl Drop for Signers {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "all"])
            .status();
    }
}

/// How the test mirror serves one release.
#[derive(Clone, Copy, Default)]
struct Serve {
    /// SHA256SUMS lists another hash for the tarball.
    wrong_hash: bool,
    /// Builders who sign SHA256SUMS (indices of [`Signers`]).
    signed_by: &'static [usize],
    /// The tarball is sent cut short: its whole length announced, half of it sent, the connection closed.
    truncated: bool,
}

/// Puts release `version` under `root/bitcoin-core-VERSION/`: the tarball (made from `rootfs`, the
/// node image's files), its SHA256SUMS and SHA256SUMS.asc as `how` says.
fn publish(root: &Path, rootfs: &[u8], signers: &Signers, version: &str, how: Serve) {
    use sha2::Digest;
    let dir = root.join(format!("bitcoin-core-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    let work = tempfile::tempdir().unwrap();
    let tarball = release_tarball(rootfs, work.path(), &format!("bitcoin-{version}"));
    let name = tarball.file_name().unwrap().to_str().unwrap().to_string();
    let bytes = std::fs::read(&tarball).unwrap();
    let mut hash = hex::encode(sha2::Sha256::digest(&bytes));
    if how.wrong_hash {
        hash = hex::encode(sha2::Sha256::digest(b"another tarball"));
    }
    std::fs::write(dir.join(&name), bytes).unwrap();
    let sums = dir.join("SHA256SUMS");
    std::fs::write(
        &sums,
        format!("{hash}  {name}\n{}  other.zip\n", "0".repeat(64)),
    )
    .unwrap();
    std::fs::write(
        dir.join("SHA256SUMS.asc"),
        signers.sign(&sums, how.signed_by),
    )
    .unwrap();
    if how.truncated {
        std::fs::write(dir.join(format!("{name}.truncate")), "").unwrap();
    }
}

/// An HTTP/1.1 server on loopback serving the files under a directory (GET and HEAD, 404 for what is
/// not there); a file with a `<name>.truncate` marker beside it is sent cut short. Stopped when dropped.
struct Mirror {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Mirror {
    async fn serve(root: &Path) -> Mirror {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let root = root.to_path_buf();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(answer(conn, root.clone()));
            }
        });
        Mirror { url, task }
    }
}

/// Answers one request on `conn` from the files under `root`, then closes it.
async fn answer(mut conn: tokio::net::TcpStream, root: std::path::PathBuf) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or("/"));
    let file = root.join(path.trim_start_matches('/'));
    let body = match std::fs::read(&file) {
        Ok(body) if !path.contains("..") => body,
        _ => {
            let _ = conn
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            return;
        }
    };
    let header = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(header.as_bytes()).await;
    if method == "GET" {
        let cut = std::path::PathBuf::from(format!("{}.truncate", file.display()));
        let sent = if cut.exists() {
            &body[..body.len() / 2]
        } else {
            &body[..]
        };
        let _ = conn.write_all(sent).await;
    }
    let _ = conn.shutdown().await;
}

/// A mirror with `releases`, signed by keys of a new [`Signers`] of 4 builders (the keyring file
/// holds builders 0–2; builder 3 is not in it), and the keyring's path.
struct Lab {
    dir: tempfile::TempDir,
    mirror: Mirror,
    _signers: Signers,
}

impl Lab {
    async fn new(name: &str, releases: &[(&str, Serve)]) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let signers = Signers::new(4);
        std::fs::write(dir.path().join("keyring.asc"), signers.keyring(&[0, 1, 2])).unwrap();
        let rootfs = outside::export(ensure_image(), &format!("{name}-export")).await;
        let root = dir.path().join("mirror");
        for (version, how) in releases {
            publish(&root, &rootfs, &signers, version, *how);
        }
        let mirror = Mirror::serve(&root).await;
        Lab {
            dir,
            mirror,
            _signers: signers,
        }
    }

    fn keyring(&self) -> String {
        self.dir
            .path()
            .join("keyring.asc")
            .to_str()
            .unwrap()
            .to_string()
    }

    /// regbox with this lab's mirror and keyring in its environment.
    fn regbox(&self) -> tokio::process::Command {
        let mut cmd = regbox();
        cmd.env("REGBOX_CORE_MIRROR", &self.mirror.url)
            .env("REGBOX_CORE_KEYRING", self.keyring());
        cmd
    }
}

const GOOD: Serve = Serve {
    wrong_hash: false,
    signed_by: &[0, 1, 2],
    truncated: false,
};

async fn image_exists(image: &str) -> bool {
    outside::engine().inspect_image(image).await.is_ok()
}

#[test]
fn image_build_core_builds_a_verified_release_and_a_manifest_names_it_in_a_mixed_cluster() {
    run(async {
        let name = unique("core");
        let image = "regbox/bitcoind:core-99.0.1";
        // Dropped after the cluster (guards drop in reverse), so no container still uses the image.
        let _image_guard = Alias(image.to_string());
        let _guard = Teardown(name.clone());
        let lab = Lab::new(&name, &[("99.0.1", GOOD)]).await;
        // The CLI door: verified, built the --from way, tagged for the release.
        let out = lab
            .regbox()
            .args(["image", "build", "--core", "99.0.1"])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), image);
        let info = outside::engine().inspect_image(image).await.unwrap();
        let labels = info.config.unwrap().labels.unwrap();
        assert_eq!(labels["regbox.source"], "core", "{labels:?}");
        assert_eq!(
            probes_left("bitcoin-99.0.1-x86_64-linux-gnu.tar.gz").await,
            Vec::<String>::new()
        );
        // A core image never becomes the bare default.
        assert_ne!(
            regbox::image::newest().await.unwrap().as_deref(),
            Some(image)
        );
        outside::untag(image).await;
        // The manifest door: `core-99.0.1` on a node is built on `up`, from the mirror, and its node
        // runs beside a default one: they connect and agree on a chain.
        let file = lab.dir.path().join("mixed.yaml");
        std::fs::write(
            &file,
            format!("name: {name}\nnodes:\n  - name: a\n  - name: b\n    image: core-99.0.1\ntopology: line\n"),
        )
        .unwrap();
        let out = lab
            .regbox()
            .args(["up", file.to_str().unwrap()])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(image_exists(image).await, "up did not build {image}");
        let status = ok_json(&["status", "-c", &name, "--json"]).await;
        let images: Vec<&str> = status
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["image"].as_str().unwrap())
            .collect();
        assert_eq!(images, [ensure_image(), image], "{status}");
        ok(&["-c", &name, "mine", "b", "2"]).await;
        // a builds on b's blocks once it has them (mined at once, its block would race them).
        ok(&["-c", &name, "sync"]).await;
        ok(&["-c", &name, "mine", "a", "1"]).await;
        ok(&["-c", &name, "sync"]).await;
        let status = ok_json(&["status", "-c", &name, "--json"]).await;
        assert!(
            status
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["height"] == 3 && n["peers"].as_array().map(Vec::len) == Some(1)),
            "{status}"
        );
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

/// `image build --core VERSION` with `extra` arguments through `lab`: fails with exit code `code`
/// saying `said`, and builds nothing (no image, no probe container or image).
async fn refused(lab: &Lab, version: &str, extra: &[&str], code: i32, said: &[&str]) {
    let out = lab
        .regbox()
        .args(["image", "build", "--core", version])
        .args(extra)
        .output()
        .await
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{version}: {err}");
    for s in said {
        assert!(err.contains(s), "{version}: `{s}` not in: {err}");
    }
    let image = format!("regbox/bitcoind:core-{version}");
    assert!(!image_exists(&image).await, "{image} was built");
    let tarball = format!("bitcoin-{version}-x86_64-linux-gnu.tar.gz");
    assert_eq!(probes_left(&tarball).await, Vec::<String>::new());
}

#[test]
fn image_build_core_refuses_a_release_that_fails_verification_and_builds_nothing() {
    run(async {
        let name = unique("corebad");
        let releases = [
            (
                "99.1.1",
                Serve {
                    wrong_hash: true,
                    ..GOOD
                },
            ),
            // Two builders of the keyring and one it does not hold.
            (
                "99.1.2",
                Serve {
                    signed_by: &[0, 1, 3],
                    ..GOOD
                },
            ),
            (
                "99.1.4",
                Serve {
                    truncated: true,
                    ..GOOD
                },
            ),
        ];
        let lab = Lab::new(&name, &releases).await;
        refused(
            &lab,
            "99.1.1",
            &[],
            2,
            &[
                "Bitcoin Core 99.1.1 refused",
                "bitcoin-99.1.1-x86_64-linux-gnu.tar.gz has SHA-256",
            ],
        )
        .await;
        refused(
            &lab,
            "99.1.2",
            &[],
            2,
            &[
                "2 good signature(s) by distinct keys of the keyring (of 3",
                "fewer than the 3 required",
            ],
        )
        .await;
        // The same signatures under a threshold of 4 names that threshold; the builders' keys regbox
        // ships (no --keyring, no REGBOX_CORE_KEYRING) hold none of the test's keys.
        refused(
            &lab,
            "99.1.2",
            &["--min-signatures", "4"],
            2,
            &["fewer than the 4 required"],
        )
        .await;
        let out = regbox()
            .env("REGBOX_CORE_MIRROR", &lab.mirror.url)
            .args(["image", "build", "--core", "99.1.4"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("0 good signature(s)"),
            "{}",
            stderr(&out)
        );
        // An unknown version: the mirror has no such directory (404), and the file is named.
        refused(
            &lab,
            "99.1.3",
            &[],
            2,
            &[&format!(
                "{}/bitcoin-core-99.1.3/SHA256SUMS does not exist (404)",
                lab.mirror.url
            )],
        )
        .await;
        refused(
            &lab,
            "99.1.4",
            &[],
            2,
            &["bitcoin-99.1.4-x86_64-linux-gnu.tar.gz was cut short"],
        )
        .await;
        // No network: the file that could not be fetched, and how to build from a tarball instead.
        let mut offline = lab;
        offline.mirror.url = "http://127.0.0.1:9".into();
        refused(
            &offline,
            "99.1.1",
            &[],
            1,
            &[
                "cannot fetch SHA256SUMS of Bitcoin Core 99.1.1 from http://127.0.0.1:9/bitcoin-core-99.1.1/SHA256SUMS",
                "regbox image build --from bitcoin-99.1.1-x86_64-linux-gnu.tar.gz",
            ],
        )
        .await;
        // Malformed input is refused before anything is fetched.
        refused(
            &offline,
            "99.x",
            &[],
            2,
            &["invalid Bitcoin Core version `99.x`"],
        )
        .await;
        let missing = offline.dir.path().join("missing.asc");
        refused(
            &offline,
            "99.1.1",
            &["--keyring", missing.to_str().unwrap()],
            2,
            &["no such file"],
        )
        .await;
        refused(
            &offline,
            "99.1.1",
            &["--min-signatures", "0"],
            2,
            &["--min-signatures"],
        )
        .await;
        let junk = offline.dir.path().join("junk.asc");
        std::fs::write(&junk, "not a key\n").unwrap();
        refused(
            &offline,
            "99.1.1",
            &["--keyring", junk.to_str().unwrap()],
            2,
            &["expected OpenPGP public keys"],
        )
        .await;
        // A manifest's malformed `core-…` is refused with its place in the file.
        let file = offline.dir.path().join("bad.yaml");
        std::fs::write(
            &file,
            format!("name: {name}\nnodes:\n  - name: a\n    image: core-99.x\n"),
        )
        .unwrap();
        let out = regbox()
            .args(["up", file.to_str().unwrap()])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("bad.yaml:4:12")
                && stderr(&out).contains("expected core-VERSION"),
            "{}",
            stderr(&out)
        );
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}
