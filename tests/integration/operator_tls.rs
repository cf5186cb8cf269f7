//! Integration tests: the operator over TLS (its certificate, the CLI's trust in it, its limits on
//! TLS connections) and the deadline of its requests.

use super::*;

/// A self-signed certificate for `127.0.0.1` and `localhost`, and its key, as PEM files.
struct Pem {
    cert: TempFile,
    key: TempFile,
}

fn self_signed() -> Pem {
    let key = rcgen::KeyPair::generate().unwrap();
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .self_signed(&key)
        .unwrap();
    Pem {
        cert: TempFile::new("cert.pem", &cert.pem()),
        key: TempFile::new("key.pem", &key.serialize_pem()),
    }
}

/// `regbox operator FILE` on `127.0.0.1:port` with `args` (and no token of the environment): its
/// output, when it is expected to refuse to start.
async fn operator_refused(file: &str, port: u16, args: &[&str]) -> std::process::Output {
    let out = regbox()
        .env_remove("REGBOX_TOKEN")
        .args(["operator", file, "--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .output();
    tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("a refused operator exits at once")
        .unwrap()
}

/// The status line of `GET path` sent over TLS on a TCP connection to `port` (the certificate
/// trusted by `ca`), or what went wrong.
async fn tls_get(conn: tokio::net::TcpStream, ca: &Path, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = regbox::operator::tls::client_config(Some(ca)).unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut tls = match connector.connect(name, conn).await {
        Ok(tls) => tls,
        Err(e) => return format!("handshake: {e}"),
    };
    let ask = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
    if let Err(e) = tls.write_all(ask.as_bytes()).await {
        return format!("write: {e}");
    }
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        Ok(Err(e)) => format!("read: {e}"),
        Err(_) => "no answer within 5 s".into(),
    }
}

/// How long until the server closes `conn` (it reads end of file or an error), at most 30 s.
async fn closed_after(mut conn: tokio::net::TcpStream) -> Duration {
    use tokio::io::AsyncReadExt;
    let t = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(30), conn.read(&mut buf))
            .await
            .expect("the server closes the connection within 30 s");
        if matches!(read, Ok(0) | Err(_)) {
            return t.elapsed();
        }
    }
}

/// `--tls-cert` and `--tls-key` go together, and a missing file, a file without a certificate and a
/// key that is not the certificate's are refused with exit 2 before anything is made. With both, the
/// operator serves HTTPS: the CLI trusting its certificate (`REGBOX_OPERATOR_CA` or `--operator-ca`)
/// drives verbs through it with the token, the CLI without the CA or with another CA is refused with
/// a certificate error naming `--operator-ca`, and plain HTTP to the TLS port is answered 400 saying
/// to use https://. Its limits hold for TLS connections: over `--max-connections` a TLS client gets
/// 503, and a connection that sends nothing, or stalls in the middle of the handshake, is closed after
/// the header timeout (10 s).
#[test]
fn the_operator_serves_https_to_a_cli_that_trusts_its_ca_and_refuses_the_rest() {
    run(async {
        let name = unique("optls");
        let _guard = Teardown(name.clone());
        let file = TempFile::new("optls.yaml", &format!("name: {name}\nnodes: 1\n"));
        let path = file.to_str().unwrap();
        let port = free_port();
        let pem = self_signed();
        let other = self_signed();
        let (cert, key) = (pem.cert.to_str().unwrap(), pem.key.to_str().unwrap());

        // Bad input: refused before anything exists.
        let missing = format!("{cert}.missing");
        let cases: [(&[&str], &str); 5] = [
            (&["--tls-cert", cert], "--tls-key"),
            (&["--tls-key", key], "--tls-cert"),
            (
                &["--tls-cert", &missing, "--tls-key", key],
                "cannot read the --tls-cert file",
            ),
            (
                &["--tls-cert", key, "--tls-key", key],
                "holds no certificate",
            ),
            (
                &["--tls-cert", cert, "--tls-key", other.key.to_str().unwrap()],
                "is not the key of the certificate",
            ),
        ];
        for (args, expected) in cases {
            let out = operator_refused(path, port, args).await;
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            assert!(
                stderr(&out).contains(expected),
                "{args:?}: {}",
                stderr(&out)
            );
        }
        assert_eq!(leftovers(&name).await, Vec::<String>::new());

        let token = "regbox-tls-test-token";
        let token_file = TempFile::new("token", token);
        let mut operator = regbox()
            .env_remove("REGBOX_TOKEN")
            .args([
                "operator",
                path,
                "--interval",
                "2",
                "--max-connections",
                "3",
            ])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--token-file", token_file.to_str().unwrap()])
            .args(["--tls-cert", cert, "--tls-key", key])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("https://127.0.0.1:{port}");
        let via = |ca: Option<&str>, args: &[&str]| {
            let mut cmd = regbox();
            cmd.env("REGBOX_OPERATOR", &base)
                .env("REGBOX_TOKEN", token)
                .env_remove("REGBOX_OPERATOR_CA");
            if let Some(ca) = ca {
                cmd.env("REGBOX_OPERATOR_CA", ca);
            }
            cmd.args(["-c", &name]).args(args).output()
        };

        // Through the CLI trusting the certificate: the cluster comes up, and a mine is carried out.
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let out = via(Some(cert), &["status", "--json"]).await.unwrap();
            if out.status.success() {
                let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                if status[0]["height"] == 0 {
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never served over TLS: {}",
                stderr(&out)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let out = via(Some(cert), &["mine", "n0", "2", "--json"])
            .await
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let out = regbox()
            .env_remove("REGBOX_OPERATOR_CA")
            .env("REGBOX_TOKEN", token)
            .args(["--operator", &base, "--operator-ca", cert])
            .args(["-c", &name, "status", "--json"])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(status[0]["height"], 2, "{status}");

        // The token still counts over TLS.
        let out = regbox()
            .env_remove("REGBOX_TOKEN")
            .env("REGBOX_OPERATOR_CA", cert)
            .args(["--operator", &base, "-c", &name, "status"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("needs a token"), "{}", stderr(&out));

        // Without the CA, or with another: a certificate error that says what to give.
        let out = via(None, &["status"]).await.unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let said = stderr(&out);
        assert!(
            said.contains("its TLS certificate is not trusted")
                && said.contains("UnknownIssuer")
                && said.contains("--operator-ca FILE or REGBOX_OPERATOR_CA"),
            "{said}"
        );
        let out = via(Some(other.cert.to_str().unwrap()), &["status"])
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("its TLS certificate is not trusted"),
            "{}",
            stderr(&out)
        );

        // Plain HTTP to the TLS port: 400, saying to use https://; the CLI exits 2 with it.
        let plain = format!("http://127.0.0.1:{port}");
        let (status, body) = http("GET", &format!("{plain}/healthz"), "").await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("speaks HTTPS only"), "{body}");
        let out = regbox()
            .env("REGBOX_TOKEN", token)
            .args(["--operator", &plain, "-c", &name, "status"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("https://"), "{}", stderr(&out));

        // The cap counts TLS connections: three held, a fourth gets 503 over TLS, the three are served.
        let connect = || tokio::net::TcpStream::connect(("127.0.0.1", port));
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(connect().await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let answer = tls_get(connect().await.unwrap(), &pem.cert.path, "/healthz").await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        for conn in held {
            let answer = tls_get(conn, &pem.cert.path, "/healthz").await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }

        // A silent connection and one stalled after the first byte of a handshake are closed after
        // the header timeout: the handshake counts against it.
        use tokio::io::AsyncWriteExt;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let silent = connect().await.unwrap();
        let mut stalled = connect().await.unwrap();
        stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
        let (silent, stalled) = tokio::join!(closed_after(silent), closed_after(stalled));
        for waited in [silent, stalled] {
            assert!(
                waited >= Duration::from_secs(9) && waited < Duration::from_secs(20),
                "{silent:?} {stalled:?}"
            );
        }

        operator.kill().await.unwrap();
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

/// `--request-deadline 3`: a `heal --sync` stuck on a paused node (it would wait 600 s) answers 504
/// after 3 s, its JSON error naming the deadline and what set it; its work is dropped with the
/// cluster's lock, so the next command (`unpause`, not waiting for a lock) is carried out at once, and
/// `status` answers with both nodes running and wired.
#[test]
fn a_request_past_the_request_deadline_answers_504_and_the_next_command_works() {
    run(async {
        let name = unique("opdeadline");
        let _guard = Teardown(name.clone());
        let file = TempFile::new(
            "opdeadline.yaml",
            &format!("name: {name}\nnodes: 2\ntopology: line\n"),
        );
        let path = file.to_str().unwrap();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let out = operator_refused(path, port, &["--request-deadline", "0"]).await;
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("--request-deadline"),
            "{}",
            stderr(&out)
        );

        let mut operator = regbox()
            .args([
                "operator",
                path,
                "--interval",
                "2",
                "--request-deadline",
                "3",
            ])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut changes = Vec::new();
        operator::status_until(&base, Duration::from_secs(120), &mut changes, |s| {
            operator::all_up_with_peers(s, 2, 1)
        })
        .await;
        ok(&["--operator", &base, "-c", &name, "pause", "n1"]).await;

        let t = std::time::Instant::now();
        let heal = format!("{base}/clusters/{name}/verbs");
        let (status, body) = http(
            "POST",
            &heal,
            r#"{"verb":"heal","sync":true,"timeout":600}"#,
        )
        .await;
        let took = t.elapsed();
        assert_eq!(status, 504, "{body}");
        assert!(
            took >= Duration::from_secs(3) && took < Duration::from_secs(10),
            "{took:?}"
        );
        let error = serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"].clone();
        assert_eq!(
            error,
            "`heal` did not finish within the request's deadline of 3s (the operator's \
             --request-deadline); it was stopped midway, and the operator's next pass repairs what \
             it left"
        );

        // The lock went with the dropped work: a command that does not wait for it is carried out.
        let t = std::time::Instant::now();
        ok(&[
            "--operator",
            &base,
            "-c",
            &name,
            "--wait-lock",
            "0",
            "unpause",
            "n1",
        ])
        .await;
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        let wired = |status: &serde_json::Value| {
            status.as_array().is_some_and(|nodes| {
                nodes.iter().all(|n| {
                    n["state"] == "running" && n["peers"].as_array().map(Vec::len) == Some(1)
                })
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let status = ok_json(&["--operator", &base, "-c", &name, "status", "--json"]).await;
            if wired(&status) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{status}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }

        operator.kill().await.unwrap();
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}
