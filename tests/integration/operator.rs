//! Integration tests: the operator: HTTP, repair, compose, soak, and every verb through it.

use super::*;

/// `regbox operator FILE` listening on `port`, passing every 2 s.
pub(crate) fn start_operator(file: &str, port: u16) -> tokio::process::Child {
    regbox()
        .args(["operator", file, "--interval", "2", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Polls the operator's /status until `done` holds for the cluster's state, collecting every change
/// a pass reported meanwhile; panics with the last state after `limit`.
pub(crate) async fn status_until(
    base: &str,
    limit: Duration,
    changes: &mut Vec<String>,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    status_with_token_until(base, None, limit, changes, done).await
}

/// [`status_until`] of an operator that needs `token`.
pub(crate) async fn status_with_token_until(
    base: &str,
    token: Option<&str>,
    limit: Duration,
    changes: &mut Vec<String>,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + limit;
    let mut last = serde_json::Value::Null;
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("authorization", b.as_str()))
        .collect();
    while std::time::Instant::now() < deadline {
        let url = format!("{base}/status");
        let asked = try_http_with("GET", &url, "", &headers);
        if let Ok(Ok((200, _, text))) = tokio::time::timeout(Duration::from_secs(5), asked).await {
            let all: serde_json::Value = serde_json::from_str(&text).unwrap();
            if let Some(state) = all["clusters"].get(0) {
                for c in state["last_pass"]["changes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let c = c.as_str().unwrap().to_string();
                    if !changes.contains(&c) {
                        changes.push(c);
                    }
                }
                if done(state) {
                    return state.clone();
                }
                last = state.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the operator's status never got there; last: {last:#}");
}

/// The operator's metrics, parsed: metric name and node label (or "") to value.
pub(crate) async fn metrics(base: &str) -> BTreeMap<(String, String), f64> {
    let (status, text) = http("GET", &format!("{base}/metrics"), "").await;
    assert_eq!(status, 200);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    scrape
        .samples
        .into_iter()
        .filter_map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => return None,
            };
            let node = s.labels.get("node").unwrap_or("").to_string();
            Some(((s.metric, node), value))
        })
        .collect()
}

pub(crate) fn node_state<'a>(state: &'a serde_json::Value, node: &str) -> &'a serde_json::Value {
    state["metrics"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or(&serde_json::Value::Null)
}

pub(crate) fn all_up_with_peers(state: &serde_json::Value, nodes: usize, peers: u64) -> bool {
    let list = state["metrics"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    state["last_pass"]["error"].is_null()
        && list.len() == nodes
        && list.iter().all(|n| n["up"] == true && n["peers"] == peers)
}

#[test]
fn the_operator_applies_repairs_keeps_holds_and_serves_status_metrics_and_actions() {
    run(async {
        let name = unique("op");
        let _guard = Teardown(name.clone());
        let file = TempFile::new(
            "op.yaml",
            &format!("name: {name}\nnodes: 4\ntopology: ring\n"),
        );
        let path = file.to_str().unwrap();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut changes = Vec::new();
        let limit = Duration::from_secs(90);

        // The operator applies its manifest: the cluster comes up wired.
        let mut operator = start_operator(path, port);
        let state = status_until(&base, limit, &mut changes, |s| all_up_with_peers(s, 4, 2)).await;
        assert_eq!(state["last_pass"]["applied"], true, "{state:#}");
        assert!(
            changes.contains(&"+ node n0 regbox/bitcoind:knots-29.4".to_string())
                || changes.iter().any(|c| c.starts_with("+ node n0")),
            "{changes:?}"
        );

        // A node killed from outside is started again and wired back.
        outside::kill(&format!("regbox-{name}-n1")).await;
        let state = status_until(&base, limit, &mut changes, |s| {
            node_state(s, "n1")["restarts"] == 1 && all_up_with_peers(s, 4, 2)
        })
        .await;
        assert!(
            changes.contains(&"start n1".to_string()),
            "{changes:?} {state:#}"
        );

        // A session nobody declared is closed.
        let made = |s: &serde_json::Value| s["metrics"]["changes"].as_u64().unwrap_or(0);
        let before = made(&status_until(&base, limit, &mut changes, |_| true).await);
        ok(&["-c", &name, "connect", "n0", "n2"]).await;
        status_until(&base, limit, &mut changes, |s| {
            made(s) > before && all_up_with_peers(s, 4, 2)
        })
        .await;
        assert!(
            changes
                .iter()
                .any(|c| c.contains("session with n2") || c.contains("session with n0")),
            "{changes:?}"
        );

        // A node stopped by regbox stays stopped, pass after pass.
        ok(&["-c", &name, "stop", "n2"]).await;
        let passes = status_until(&base, limit, &mut changes, |s| {
            s["held"] == serde_json::json!(["n2"])
        })
        .await["metrics"]["passes"]
            .as_u64()
            .unwrap();
        let state = status_until(&base, limit, &mut changes, |s| {
            s["metrics"]["passes"].as_u64().unwrap() >= passes + 2
        })
        .await;
        assert_eq!(node_state(&state, "n2")["up"], false, "{state:#}");
        let n2 = outside::containers(&name)
            .await
            .into_iter()
            .find(|c| c.name.ends_with("-n2"))
            .unwrap();
        assert!(!n2.running);

        // Actions over HTTP act as the CLI's commands do; bad ones are refused with their reason.
        let (status, body) = http(
            "POST",
            &format!("{base}/clusters/{name}/faults"),
            r#"{"node":"n2","fault":"start"}"#,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = http(
            "POST",
            &format!("{base}/clusters/{name}/mine"),
            r#"{"node":"n0","blocks":2}"#,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let mined: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(mined["blocks"].as_array().unwrap().len(), 2);
        let (status, body) = http(
            "POST",
            &format!("{base}/clusters/{name}/partition"),
            r#"{"kind":"halves"}"#,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let report: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(report["graph"], serde_json::json!(["n0-n1", "n2-n3"]));
        let (status, body) = http(
            "POST",
            &format!("{base}/clusters/{name}/mine"),
            r#"{"node":"n9"}"#,
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("no node `n9`"), "{body}");
        let (status, _) = http("POST", &format!("{base}/clusters/no-such-cluster/heal"), "").await;
        assert_eq!(status, 404);
        // A spec sent as JSON meets the manifest's rules: one whose node would run a shell command
        // is refused, and nothing of it is made.
        let mut spec = cluster_spec(&name, 1, "line");
        spec.nodes[0].args.push("-blocknotify=touch /tmp/x".into());
        let apply = serde_json::json!({"verb": "apply", "spec": spec}).to_string();
        let (status, body) = http("POST", &format!("{base}/clusters/{name}/verbs"), &apply).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("-blocknotify"), "{body}");
        // A cluster it does not keep is none of its business, not even to make.
        let other = unique("opbad");
        let _other = Teardown(other.clone());
        let spec = cluster_spec(&other, 1, "line");
        let apply = serde_json::json!({"verb": "apply", "spec": spec}).to_string();
        let (status, body) = http("POST", &format!("{base}/clusters/{other}/verbs"), &apply).await;
        assert_eq!(status, 404, "{body}");
        assert!(
            body.contains(&format!("acts only on the clusters it keeps (`{name}`)")),
            "{body}"
        );
        assert_eq!(leftovers(&other).await, Vec::<String>::new());
        let (status, _) = http("GET", &format!("{base}/clusters/{name}/heal"), "").await;
        assert_eq!(status, 405);

        // While split, the operator keeps the partition: no pass heals it.
        status_until(&base, limit, &mut changes, |s| {
            s["metrics"]["segments"] == 2 && all_up_with_peers(s, 4, 1)
        })
        .await;
        let m = metrics(&base).await;
        let get =
            |metric: &str, node: &str| m.get(&(metric.to_string(), node.to_string())).copied();
        assert_eq!(
            get("regbox_cluster_partition_segments", ""),
            Some(2.0),
            "{m:?}"
        );
        for node in ["n0", "n1", "n2", "n3"] {
            assert_eq!(get("regbox_node_height", node), Some(2.0), "{node}: {m:?}");
            assert_eq!(get("regbox_node_up", node), Some(1.0));
            assert_eq!(get("regbox_node_peers", node), Some(1.0));
        }
        assert_eq!(get("regbox_node_restarts_total", "n1"), Some(1.0));
        assert!(get("regbox_reconcile_passes_total", "").unwrap() >= 3.0);
        assert!(
            get("regbox_reconcile_errors_total", "").is_some(),
            "the error counter is exported: {m:?}"
        );
        let (status, body) = http("POST", &format!("{base}/clusters/{name}/heal"), "").await;
        assert_eq!(status, 200, "{body}");

        // The manifest grows: the operator applies it, touching only what changed.
        std::fs::write(path, format!("name: {name}\nnodes: 5\ntopology: ring\n")).unwrap();
        status_until(&base, limit, &mut changes, |s| all_up_with_peers(s, 5, 2)).await;
        assert!(
            changes.iter().any(|c| c.starts_with("+ node n4")),
            "{changes:?}"
        );

        // Stopped, the operator keeps nothing: a hold made meanwhile is respected by the next one.
        operator.kill().await.unwrap();
        ok(&["-c", &name, "stop", "n3"]).await;
        let mut operator = start_operator(path, port);
        let state = status_until(&base, limit, &mut changes, |s| {
            s["metrics"]["passes"].as_u64().unwrap_or(0) >= 2
        })
        .await;
        assert_eq!(state["held"], serde_json::json!(["n3"]), "{state:#}");
        assert_eq!(node_state(&state, "n3")["up"], false);
        operator.kill().await.unwrap();
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

/// A node killed from outside is brought back, running and wired, by the very pass its `die` event
/// starts, kill after kill, with no pass failing. The engine sends `die` before it has handled the
/// exit and lists the container as running until then: a pass that asked the dead node failed on it
/// ("deadline has elapsed") and backed off; now the pass waits for the engine to finish with the
/// container while it takes the lock.
#[test]
fn the_pass_a_nodes_death_starts_brings_it_back_wired() {
    run(async {
        let name = unique("opdie");
        let _guard = Teardown(name.clone());
        let file = TempFile::new(
            "op.yaml",
            &format!("name: {name}\nnodes: 3\ntopology: ring\n"),
        );
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        // No timer: only the engine's events start passes.
        let mut operator = regbox()
            .args(["operator", file.to_str().unwrap(), "--interval", "600"])
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let (limit, mut changes) = (Duration::from_secs(90), Vec::new());
        status_until(&base, limit, &mut changes, |s| all_up_with_peers(s, 3, 2)).await;
        for kills in 1..=3 {
            outside::kill(&format!("regbox-{name}-n1")).await;
            let state = status_until(&base, limit, &mut changes, |s| {
                node_state(s, "n1")["restarts"] == kills && all_up_with_peers(s, 3, 2)
            })
            .await;
            assert_eq!(state["metrics"]["errors"], 0, "a pass failed: {state:#}");
            let pass = &state["last_pass"];
            let trigger = pass["trigger"].as_str().unwrap();
            assert!(
                trigger.contains(&format!("regbox-{name}-n1 die")),
                "{pass:#}"
            );
            assert_eq!(pass["changes"], serde_json::json!(["start n1"]), "{pass:#}");
        }
        operator.kill().await.unwrap();
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn docker_compose_runs_the_operator_in_a_container_that_reaches_the_nodes() {
    run(async {
        let name = unique("compose");
        let _guard = Teardown(name.clone());
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut changes = Vec::new();
        let limit = Duration::from_secs(120);
        let image = ok(&["image", "build", "--self"]).await;
        assert!(image.starts_with("regbox/regbox:0."), "{image}");
        let token = format!("token-{name}");
        let compose = Compose {
            project: name.clone(),
            file: Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml"),
            env: vec![
                ("REGBOX_CLUSTER", name.clone()),
                ("REGBOX_OPERATOR_PORT", port.to_string()),
                ("REGBOX_MANIFEST", "ring4.yaml".into()),
                ("REGBOX_TOKEN", token.clone()),
            ],
        };
        let bearer = format!("Bearer {token}");
        let auth = [("authorization", bearer.as_str())];
        let up = compose.command(&["up", "-d"]);
        assert!(
            up.status.success(),
            "{}",
            String::from_utf8_lossy(&up.stderr)
        );

        // The operator, in its container, brings the cluster up and reaches every node's RPC.
        let tok = Some(token.as_str());
        let state = status_with_token_until(&base, tok, limit, &mut changes, |s| {
            all_up_with_peers(s, 4, 2)
        })
        .await;
        assert_eq!(state["cluster"], name.as_str());
        // It repairs a node killed from outside, and acts on requests that present its token.
        outside::kill(&format!("regbox-{name}-n0")).await;
        status_with_token_until(&base, tok, limit, &mut changes, |s| {
            node_state(s, "n0")["restarts"] == 1 && all_up_with_peers(s, 4, 2)
        })
        .await;
        let mine = format!("{base}/clusters/{name}/mine");
        let (status, _, body) =
            http_with("POST", &mine, r#"{"node":"n1","blocks":1}"#, &auth).await;
        assert_eq!(status, 200, "{body}");
        let (status, _, body) = http_with("POST", &mine, r#"{"node":"n1","blocks":1}"#, &[]).await;
        assert_eq!(status, 401, "{body}");

        // The CLI sends status, node faults, partition, heal and mine to the operator it is given,
        // with the token of REGBOX_TOKEN.
        let via = |args: &[&str]| {
            let mut cmd = regbox();
            cmd.env("REGBOX_OPERATOR", &base)
                .env("REGBOX_TOKEN", &token)
                .args(args);
            cmd.output()
        };
        let json = |out: std::process::Output| -> serde_json::Value {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).unwrap()
        };
        let nodes = json(via(&["status", "--json"]).await.unwrap());
        assert_eq!(nodes.as_array().unwrap().len(), 4, "{nodes}");
        assert!(
            nodes
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["state"] == "running"),
            "{nodes}"
        );
        json(
            via(&["-c", &name, "mine", "n2", "2", "--json"])
                .await
                .unwrap(),
        );
        let report = json(
            via(&["-c", &name, "partition", "--halves", "--json"])
                .await
                .unwrap(),
        );
        assert_eq!(
            report["graph"],
            serde_json::json!(["n0-n1", "n2-n3"]),
            "{report}"
        );
        json(
            via(&["-c", &name, "heal", "--sync", "--json"])
                .await
                .unwrap(),
        );
        let out = via(&["-c", &name, "stop", "n3"]).await.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = via(&["-c", &name, "stop", "n9"]).await.unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "an unknown node is bad input, also via the operator"
        );
        let status = ok_json(&["status", &name, "--json"]).await;
        assert_eq!(status[3]["state"], "exited", "{status}");
        assert!(
            status
                .as_array()
                .unwrap()
                .iter()
                .take(3)
                .all(|n| n["height"] == 3),
            "{status}"
        );

        // Stopped, its container stays attached to the control network: `down` detaches it.
        let stop = compose.command(&["stop", "--timeout", "30"]);
        assert!(
            stop.status.success(),
            "{}",
            String::from_utf8_lossy(&stop.stderr)
        );
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
        let down = compose.command(&["down"]);
        assert!(
            down.status.success(),
            "{}",
            String::from_utf8_lossy(&down.stderr)
        );
    });
}

/// One HTTP request with extra headers: the status, the `www-authenticate` header and the body.
async fn http_with(
    method: &str,
    url: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, String) {
    try_http_with(method, url, body, headers).await.unwrap()
}

/// A raw connection's answer to `GET /healthz` sent on it: the status line, or what went wrong.
async fn healthz_on(conn: &mut tokio::net::TcpStream) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    if let Err(e) = conn.write_all(ask).await {
        return format!("write: {e}");
    }
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        Ok(Err(e)) => format!("read: {e}"),
        Err(_) => "no answer within 5 s".into(),
    }
}

/// The operator on a non-loopback address needs a token (exit 2 without); with one, every request but
/// /healthz and /metrics must present it (401 with a Bearer challenge), the CLI sends it, a request for
/// a cluster it does not keep is 404, work over the limits of one request is refused with 400 at once
/// (and 2 on the command line, here and through the operator), connections past the cap get 503 while
/// those within it are served, and a client that sends half a request head is disconnected after the
/// header timeout.
#[test]
fn the_operator_admits_only_its_token_its_clusters_and_bounded_work() {
    run(async {
        let name = unique("opauth");
        let _guard = Teardown(name.clone());
        let file = TempFile::new("opauth.yaml", &format!("name: {name}\nnodes: 1\n"));
        let path = file.to_str().unwrap();
        let port = free_port();
        let listen = format!("0.0.0.0:{port}");
        let base = format!("http://127.0.0.1:{port}");

        // Beyond loopback, no token: refused before anything runs.
        let out = regbox()
            .env_remove("REGBOX_TOKEN")
            .args(["operator", path, "--listen", &listen])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("beyond this machine's loopback")
                && stderr(&out).contains("--token-file"),
            "{}",
            stderr(&out)
        );
        assert_eq!(leftovers(&name).await, Vec::<String>::new());

        let token = "regbox-test-token-0123456789";
        let token_file = TempFile::new("token", &format!("{token}\n"));
        let bearer = format!("Bearer {token}");
        let auth = [("authorization", bearer.as_str())];
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
            .args([
                "--listen",
                &listen,
                "--token-file",
                token_file.to_str().unwrap(),
            ])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let url = format!("{base}/status");
            let asked = try_http_with("GET", &url, "", &auth);
            if let Ok(Ok((200, _, text))) =
                tokio::time::timeout(Duration::from_secs(5), asked).await
            {
                let all: serde_json::Value = serde_json::from_str(&text).unwrap();
                if all["clusters"]
                    .get(0)
                    .is_some_and(|s| all_up_with_peers(s, 1, 0))
                {
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the cluster never came up"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }

        // Who may act: /healthz and /metrics are open, everything else needs the token.
        let (status, _, body) = http_with("GET", &format!("{base}/healthz"), "", &[]).await;
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        let (status, _, _) = http_with("GET", &format!("{base}/metrics"), "", &[]).await;
        assert_eq!(status, 200);
        let (status, challenge, body) = http_with("GET", &format!("{base}/status"), "", &[]).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(challenge.as_deref(), Some("Bearer realm=\"regbox\""));
        let wrong = [("authorization", "Bearer not-the-token")];
        let mine = format!("{base}/clusters/{name}/mine");
        let (status, _, body) = http_with("POST", &mine, r#"{"node":"n0"}"#, &wrong).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("not this operator's"), "{body}");
        let (status, _, body) = http_with("GET", &format!("{base}/status"), "", &auth).await;
        assert_eq!(status, 200, "{body}");

        // Bounded work: a mine of 100,000,000 blocks is refused at once, naming the limit.
        let t = std::time::Instant::now();
        let (status, _, body) =
            http_with("POST", &mine, r#"{"node":"n0","blocks":100000000}"#, &auth).await;
        assert_eq!(status, 400, "{body}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"],
            "`blocks` 100000000 is over the limit of 10000 blocks per mine"
        );
        let (status, _, body) =
            http_with("POST", &mine, r#"{"node":"n0","blocks":2}"#, &auth).await;
        assert_eq!(status, 200, "{body}");

        // Only the clusters it keeps.
        let (status, _, body) = http_with(
            "POST",
            &format!("{base}/clusters/someone-elses/mine"),
            r#"{"node":"n0"}"#,
            &auth,
        )
        .await;
        assert_eq!(status, 404, "{body}");
        assert!(body.contains(&format!("(`{name}`)")), "{body}");

        // The CLI: the token from REGBOX_TOKEN (or --token-file) goes with each request; without it,
        // exit 2 saying what is missing; the limit is exit 2 through the operator and here.
        let via = |token: Option<&str>, args: &[&str]| {
            let mut cmd = regbox();
            cmd.env_remove("REGBOX_TOKEN").env("REGBOX_OPERATOR", &base);
            if let Some(t) = token {
                cmd.env("REGBOX_TOKEN", t);
            }
            cmd.args(["-c", &name]).args(args);
            cmd.output()
        };
        let out = via(Some(token), &["status", "--json"]).await.unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let out = via(None, &["status"]).await.unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("REGBOX_TOKEN"), "{}", stderr(&out));
        let out = regbox()
            .env_remove("REGBOX_TOKEN")
            .args([
                "--operator",
                &base,
                "--token-file",
                token_file.to_str().unwrap(),
            ])
            .args(["-c", &name, "mine", "n0", "1"])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let out = via(Some(token), &["mine", "n0", "100000000"])
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("`blocks` 100000000 is over the limit of 10000 blocks per mine"),
            "{}",
            stderr(&out)
        );
        let out = regbox()
            .env_remove("REGBOX_OPERATOR")
            .args(["-c", &name, "mine", "n0", "100000000"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("over the limit of 10000"),
            "{}",
            stderr(&out)
        );
        let status = ok_json(&["status", &name, "--json"]).await;
        assert_eq!(
            status[0]["height"], 3,
            "only the mines within the limit ran: {status}"
        );

        // The cap: three connections are served, a fourth is answered 503 at once.
        let connect = || tokio::net::TcpStream::connect(("127.0.0.1", port));
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(connect().await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut over = connect().await.unwrap();
        let answer = healthz_on(&mut over).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        for conn in &mut held {
            let answer = healthz_on(conn).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
        drop(held);
        drop(over);

        // Half a request head, and a keep-alive connection idle after its reply: both are closed
        // after the header timeout (10 s).
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tokio::time::sleep(Duration::from_millis(200)).await;
        let closed_after = |mut conn: tokio::net::TcpStream, t: std::time::Instant| async move {
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(Duration::from_secs(30), conn.read(&mut buf))
                .await
                .expect("the server closes the connection");
            assert!(
                matches!(read, Ok(0) | Err(_)) || buf.starts_with(b"HTTP/1.1 408"),
                "{read:?}"
            );
            t.elapsed()
        };
        let mut slow = connect().await.unwrap();
        let t = std::time::Instant::now();
        slow.write_all(b"GET /status HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let mut idle = connect().await.unwrap();
        let answer = healthz_on(&mut idle).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let t_idle = std::time::Instant::now();
        let (waited, idled) = tokio::join!(closed_after(slow, t), closed_after(idle, t_idle));
        for w in [waited, idled] {
            assert!(
                w >= Duration::from_secs(9) && w < Duration::from_secs(20),
                "{waited:?} {idled:?}"
            );
        }

        operator.kill().await.unwrap();
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

/// A client that goes away while its request runs takes the request's work with it: the `heal --sync`
/// it asked for (stuck on a paused node, under the cluster's lock) is dropped, and the lock is free at
/// once rather than when the heal gives up.
#[test]
fn a_request_whose_client_goes_away_stops_its_work_and_frees_the_lock() {
    use tokio::io::AsyncWriteExt;
    run(async {
        let name = unique("opgone");
        let _guard = Teardown(name.clone());
        let file = TempFile::new(
            "opgone.yaml",
            &format!("name: {name}\nnodes: 2\ntopology: line\n"),
        );
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut operator = start_operator(file.to_str().unwrap(), port);
        let mut changes = Vec::new();
        status_until(&base, Duration::from_secs(120), &mut changes, |s| {
            all_up_with_peers(s, 2, 1)
        })
        .await;
        ok(&["-c", &name, "pause", "n1"]).await;

        // A heal that waits on the paused node, under the lock, for up to 60 s (its RPC timeout).
        let body = r#"{"verb":"heal","sync":true,"timeout":600}"#;
        let ask = format!(
            "POST /clusters/{name}/verbs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut client = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        client.write_all(ask.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let held = regbox()
            .args(["-c", &name, "--wait-lock", "0", "connect", "n0", "n1"])
            .output()
            .await
            .unwrap();
        assert!(
            !held.status.success() && stderr(&held).contains("heal and sync"),
            "the heal holds the lock: {}",
            stderr(&held)
        );

        // The client goes away: the heal is dropped, and the lock with it.
        drop(client);
        let t = std::time::Instant::now();
        ok(&["-c", &name, "--wait-lock", "10", "unpause", "n1"]).await;
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the lock came free {:?} after the client went away",
            t.elapsed()
        );

        operator.kill().await.unwrap();
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

// ---------------------------------------------------------------------------------------------------
// Soak runs.

#[test]
fn a_soak_refuses_bad_input_with_exit_2_before_anything_exists() {
    run_without_image(async {
        let name = unique("soakbad");
        // Nothing should exist; if something does, the assertion fails and this removes it.
        let _guard = Teardown(name.clone());
        let manifest = soak_manifest();
        let bad = TempFile::new("bad-soak.yaml", "name: soakbad\nnodes: four\n");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let file = |name: &str| missing.join(name).to_str().unwrap().to_string();
        let (events, report, junit) = (file("e.jsonl"), file("r.html"), file("j.xml"));
        let m = manifest.to_str().unwrap();
        let cases: &[(&[&str], &str)] = &[
            (
                &[m, "--duration", "1m", "--faults", "partition,crash"],
                "unknown fault `crash`",
            ),
            (&[m, "--duration", "0s"], "--duration must be above 0"),
            (&[m, "--duration", "1m", "--gap", "0s"], "--gap"),
            (&[m, "--duration", "1m", "--rate", "1000"], "--rate"),
            (&[m, "--duration", "soon"], "--duration"),
            (&[m, "--duration", "1m", "--lenient"], "--lenient"),
            (
                &[bad.to_str().unwrap(), "--duration", "1m"],
                "bad-soak.yaml:2:8",
            ),
            (
                &[m, "--duration", "1m", "--events", &events],
                "cannot write",
            ),
            (
                &[m, "--duration", "1m", "--report", &report],
                "cannot write",
            ),
            (&[m, "--duration", "1m", "--junit", &junit], "cannot write"),
            (
                &[m, "--duration", "1m", "--seed", "7", "--steps", "1000"],
                "--steps 1000: seed 7 over 60s places only",
            ),
            (&[m, "--duration", "1m", "--steps", "0"], "--steps"),
        ];
        for (args, expected) in cases {
            let out = regbox()
                .current_dir(dir.path())
                .args(["-c", &name, "soak"])
                .args(*args)
                .output()
                .await
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            assert!(
                stderr(&out).contains(expected),
                "{args:?}: {}",
                stderr(&out)
            );
            // No event log, no report, no container.
            assert_eq!(
                std::fs::read_dir(dir.path()).unwrap().count(),
                0,
                "{args:?}"
            );
            assert_eq!(leftovers(&name).await, Vec::<String>::new(), "{args:?}");
        }
    });
}

#[test]
fn a_soak_on_a_cluster_that_exists_is_refused_and_leaves_it_as_it_was() {
    run(async {
        let name = unique("soakold");
        let (_cluster, _guard) = up(cluster_spec(&name, 1, "line")).await;
        let before = outside::containers(&name).await;
        let manifest = soak_manifest();
        let dir = tempfile::tempdir().unwrap();
        let out = regbox()
            .current_dir(dir.path())
            .args(["-c", &name, "soak"])
            .arg(&manifest)
            .args(["--duration", "1m"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // The same containers, in the same states: nothing was replaced or stopped.
        let after = outside::containers(&name).await;
        let ids = |cs: &[outside::Container]| {
            let mut v: Vec<_> = cs.iter().map(|c| (c.id.clone(), c.running)).collect();
            v.sort();
            v
        };
        assert_eq!(ids(&before), ids(&after));
    });
}

#[test]
fn a_soak_whose_cluster_fails_to_start_leaves_an_earlier_runs_files_as_they_were() {
    run(async {
        let name = unique("soakfail");
        let _guard = Teardown(name.clone());
        let manifest = TempFile::new(
            "failing.yaml",
            &format!("name: {name}\nnodes:\n  - name: n0\n    args: [\"-nosuchoption=1\"]\n"),
        );
        let dir = tempfile::tempdir().unwrap();
        let (events, report, junit) = (
            dir.path().join("events.jsonl"),
            dir.path().join("report.html"),
            dir.path().join("junit.xml"),
        );
        std::fs::write(&events, "an earlier run's log\n").unwrap();
        std::fs::write(&report, "an earlier run's report\n").unwrap();
        let out = regbox()
            .current_dir(dir.path())
            .args(["soak", manifest.to_str().unwrap(), "--duration", "1m"])
            .arg("--events")
            .arg(&events)
            .arg("--report")
            .arg(&report)
            .arg("--junit")
            .arg(&junit)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("nosuchoption"), "{}", stderr(&out));
        // The files it found are untouched; the one it made is gone.
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&events), "an earlier run's log\n");
        assert_eq!(read(&report), "an earlier run's report\n");
        assert!(!junit.exists());
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn a_fault_that_fails_takes_back_the_hold_it_made() {
    run(async {
        let name = unique("hold");
        let (mut cluster, _guard) = up(ring(&name, 3)).await;
        let holds = |node: &'static str| {
            let (name, hold) = (name.clone(), format!("regbox-{name}.hold.{node}"));
            async move {
                (outside::containers(&name).await.into_iter())
                    .filter(|c| c.name == hold)
                    .count()
            }
        };
        // Stopped from outside: no hold. Killing a stopped node fails, and leaves none either.
        outside::kill(&format!("regbox-{name}-n1")).await;
        let out = regbox()
            .args(["-c", &name, "kill", "n1"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert_eq!(
            holds("n1").await,
            0,
            "a failed kill made a hold that stayed"
        );
        // A stop that works leaves one; start takes it away.
        cluster
            .fault("n2", regbox::fault::Fault::Stop, WAIT)
            .await
            .unwrap();
        assert_eq!(holds("n2").await, 1, "a stop leaves a hold");
        cluster
            .fault("n2", regbox::fault::Fault::Start, WAIT)
            .await
            .unwrap();
        assert_eq!(holds("n2").await, 0, "start takes the hold away");
        cluster
            .fault("n1", regbox::fault::Fault::Start, WAIT)
            .await
            .unwrap();
        cluster
            .fault("n1", regbox::fault::Fault::Pause, WAIT)
            .await
            .unwrap();
        assert_eq!(holds("n1").await, 1);
        cluster
            .fault("n1", regbox::fault::Fault::Unpause, WAIT)
            .await
            .unwrap();
        assert_eq!(holds("n1").await, 0);
    });
}

/// `regbox ARGS --json` here, and the same through the operator at `base`: both reports.
pub(crate) async fn here_and_there(
    base: &str,
    name: &str,
    args: &[&str],
) -> (serde_json::Value, serde_json::Value) {
    let here = ok_json(&[&["-c", name, "--json"], args].concat()).await;
    let there = ok_json(&[&["--operator", base, "-c", name, "--json"], args].concat()).await;
    (here, there)
}

#[test]
fn every_verb_gives_the_same_report_through_the_operator_as_here() {
    run(async {
        let name = unique("verbs");
        let _guard = Teardown(name.clone());
        let file = TempFile::new(
            "verbs.yaml",
            &format!(
                "name: {name}\nnodes:\n  - {{name: n0, wallet: true}}\n  - {{name: n1, wallet: true}}\n  - {{name: n2}}\n  - {{name: n3}}\ntopology: ring\n"
            ),
        );
        let path = file.to_str().unwrap();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        // The operator keeps the manifest's cluster: it brings it up itself.
        let mut operator = start_operator(path, port);
        let mut changes = Vec::new();
        status_until(&base, Duration::from_secs(120), &mut changes, |s| {
            all_up_with_peers(s, 4, 2)
        })
        .await;
        let nodes = |v: &serde_json::Value| -> Vec<(String, String, u64, Vec<String>)> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|n| {
                    let peers = serde_json::from_value(n["peers"].clone()).unwrap();
                    let name = n["name"].as_str().unwrap().to_string();
                    let state = n["state"].as_str().unwrap().to_string();
                    (name, state, n["height"].as_u64().unwrap_or(0), peers)
                })
                .collect()
        };

        // Readers.
        let (here, there) = here_and_there(&base, &name, &["status"]).await;
        assert_eq!(nodes(&here), nodes(&there));
        let (here, there) = here_and_there(&base, &name, &["url", "n1"]).await;
        assert_eq!(here, there);
        let (here, there) = here_and_there(&base, &name, &["mine", "n0", "101"]).await;
        assert_eq!(
            (&here["node"], &there["node"]),
            (&"n0".into(), &"n0".into())
        );
        assert_eq!(
            there["height"].as_u64(),
            here["height"].as_u64().map(|h| h + 101)
        );
        assert_eq!(there["blocks"].as_array().unwrap().len(), 101);
        let (here, there) = here_and_there(&base, &name, &["send", "n0", "n1", "0.5"]).await;
        for v in [&here, &there] {
            assert_eq!(
                (&v["from"], &v["to"], &v["amount_sat"]),
                (&"n0".into(), &"n1".into(), &50_000_000.into()),
                "{v}"
            );
            assert_eq!(v["txid"].as_str().unwrap().len(), 64, "{v}");
        }
        let (here, there) = here_and_there(&base, &name, &["sync"]).await;
        assert_eq!(here, there);
        assert_eq!(here["mempool_size"], 2, "{here}");
        let (here, there) = here_and_there(&base, &name, &["wait", "height", "202", "n3"]).await;
        assert_eq!(here, there);
        let (here, there) = here_and_there(&base, &name, &["rpc", "n2", "getblockcount"]).await;
        assert_eq!((here.clone(), there), (here, serde_json::json!(202)));
        let (here, there) = here_and_there(&base, &name, &["logs", "n3", "--tail", "5"]).await;
        for v in [&here, &there] {
            assert_eq!(v["node"], "n3");
            assert_eq!(v["text"].as_str().unwrap().lines().count(), 5, "{v}");
        }
        let (here, there) =
            here_and_there(&base, &name, &["measure", "propagation", "--blocks", "1"]).await;
        for key in ["kind", "origin", "unreachable"] {
            assert_eq!(here[key], there[key], "{key}");
        }
        assert_eq!(there["rounds"][0]["arrivals"].as_array().unwrap().len(), 4);
        let (here, there) = here_and_there(&base, &name, &["apply", path, "--dry-run"]).await;
        assert_eq!(here, there);
        assert_eq!(
            (&there["exists"], &there["diff"]),
            (&true.into(), &serde_json::json!([]))
        );

        // Changes: the whole sequence here, then there; each sequence leaves the cluster as it found it.
        let changes: [&[&str]; 12] = [
            &["connect", "n0", "n2"][..],
            &["disconnect", "n0", "n2"],
            &["netem", "n0", "--delay", "10ms", "--to", "n1"],
            &["cut", "n2", "n3"],
            &["cut", "--clear"],
            &["netem", "--clear"],
            &["stop", "n3"],
            &["start", "n3"],
            &["throttle", "n2", "--cpus", "0.5", "--memory", "128m"],
            &["throttle", "--clear"],
            &["partition", "--halves"],
            &["heal"],
        ];
        let mut here = Vec::new();
        for args in changes {
            here.push(ok_json(&[&["-c", &name, "--json"], args].concat()).await);
        }
        for (args, here) in changes.iter().zip(here) {
            let there =
                ok_json(&[&["--operator", &base, "-c", &name, "--json"][..], *args].concat()).await;
            assert_eq!(here, there, "{args:?}");
        }
        let here = ok_json(&["-c", &name, "--json", "partition", "--halves"]).await;
        assert_eq!(here["graph"], serde_json::json!(["n0-n1", "n2-n3"]));
        let there = ok_json(&["--operator", &base, "-c", &name, "--json", "heal", "--sync"]).await;
        assert_eq!(there["height"], 204, "{there}");

        // A followed log streams through the operator.
        let mut follow = regbox()
            .args([
                "--operator",
                &base,
                "-c",
                &name,
                "logs",
                "-f",
                "n1",
                "--tail",
                "2",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = follow.stdout.take().unwrap();
        ok(&["--operator", &base, "-c", &name, "mine", "n1", "1"]).await;
        let mut seen = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !seen.contains("height=205") {
            let mut buf = [0u8; 4096];
            let read = tokio::time::timeout_at(
                deadline,
                tokio::io::AsyncReadExt::read(&mut out, &mut buf),
            )
            .await
            .expect("the followed log shows the new block within 30 s")
            .unwrap();
            assert!(read > 0, "the stream ended: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..read]));
        }
        follow.kill().await.unwrap();

        // A snapshot, and a reset to it, through the operator.
        let at = |args: &[&str]| -> Vec<String> {
            let head = ["--operator", base.as_str(), "-c", name.as_str(), "--json"];
            head.iter().chain(args).map(|a| a.to_string()).collect()
        };
        fn refs(v: &[String]) -> Vec<&str> {
            v.iter().map(String::as_str).collect()
        }
        ok_json(&refs(&at(&["sync"]))).await;
        let saved = ok_json(&refs(&at(&["snapshot", "save", "s205"]))).await;
        assert_eq!(saved["nodes"][3]["height"], 205, "{saved}");
        ok(&refs(&at(&["mine", "n2", "2"]))).await;
        let back = ok_json(&refs(&at(&["reset", "--to", "s205"]))).await;
        assert_eq!(back["nodes"], saved["nodes"], "{back}");

        // Bad input through the operator exits 2 with the engine's reason, as here.
        let bad = regbox()
            .args(["--operator", &base, "-c", &name, "mine", "n9", "1"])
            .output()
            .await
            .unwrap();
        assert_eq!(bad.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&bad.stderr).contains("no node `n9`"));

        // Down, through the operator, is the last verb; the operator lets the cluster go though its
        // manifest declares it. A pass of its own may still be under way (it samples the nodes
        // after its repair): killed midway, it can leave the lock it was taking (seen once, made by
        // a request still in flight). `regbox down` here removes such a leftover, as it would for a
        // user; then nothing may be left.
        let down = ok_json(&["--operator", &base, "-c", &name, "--json", "down"]).await;
        assert_eq!(down["cluster"], name.as_str());
        assert!(down["containers"].as_u64().unwrap() >= 4, "{down}");
        operator.kill().await.unwrap();
        let _ = regbox().args(["down", &name]).output().await.unwrap();
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn an_operator_killed_mid_pass_is_replaced_by_one_that_finishes_the_repair() {
    run(async {
        let name = unique("oprestart");
        let _guard = Teardown(name.clone());
        let file = TempFile::new(
            "oprestart.yaml",
            &format!("name: {name}\nnodes: 4\ntopology: ring\n"),
        );
        let path = file.to_str().unwrap();
        let (port, mut changes, limit) = (free_port(), Vec::new(), Duration::from_secs(90));
        let base = format!("http://127.0.0.1:{port}");
        let mut first = start_operator(path, port);
        status_until(&base, limit, &mut changes, |s| all_up_with_peers(s, 4, 2)).await;
        ok(&["-c", &name, "stop", "n2"]).await;
        status_until(&base, limit, &mut changes, |s| {
            s["held"] == serde_json::json!(["n2"])
        })
        .await;

        // n1 dies; the pass its death wakes is under way when the operator is killed (SIGKILL: no
        // cleanup of its own, its lock heartbeat stops wherever it was).
        outside::kill(&format!("regbox-{name}-n1")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        first.kill().await.unwrap();

        // A new operator on the same manifest takes over: n1 runs again and is wired back, the held
        // n2 stays stopped, as the nodes themselves say.
        let mut second = start_operator(path, port);
        status_until(&base, limit, &mut changes, |s| {
            s["held"] == serde_json::json!(["n2"])
                && ["n0", "n1", "n3"]
                    .iter()
                    .all(|n| node_state(s, n)["up"] == true)
        })
        .await;
        let deadline = std::time::Instant::now() + limit;
        let peers = loop {
            let status = ok_json(&["-c", &name, "status", "--json"]).await;
            let peers: Vec<(String, String, Vec<String>)> = (status.as_array().unwrap().iter())
                .map(|n| {
                    let list = n["peers"].as_array().unwrap().iter();
                    let mut list: Vec<String> =
                        list.map(|p| p.as_str().unwrap().to_string()).collect();
                    list.sort();
                    (
                        n["name"].as_str().unwrap().into(),
                        n["state"].as_str().unwrap().into(),
                        list,
                    )
                })
                .collect();
            let want = |n: &str, state: &str, p: &[&str]| {
                (
                    n.to_string(),
                    state.to_string(),
                    p.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                )
            };
            let expected = vec![
                want("n0", "running", &["n1", "n3"]),
                want("n1", "running", &["n0"]),
                want("n2", "exited", &[]),
                want("n3", "running", &["n0"]),
            ];
            if peers == expected || std::time::Instant::now() > deadline {
                break (peers, expected);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert_eq!(peers.0, peers.1, "after the second operator's passes");
        // And it acts: a command through it is carried out under the cluster's lock.
        let (status, body) = http(
            "POST",
            &format!("{base}/clusters/{name}/faults"),
            r#"{"node":"n2","fault":"start"}"#,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        status_until(&base, limit, &mut changes, |s| all_up_with_peers(s, 4, 2)).await;
        second.kill().await.unwrap();
    });
}
