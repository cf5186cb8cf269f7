//! Integration tests: the operator's web page in a real headless Chromium, against a real 6-node ring
//! watched by `regbox dashboard`: what it draws at each step, live (no reload), with no console error,
//! and a screenshot of each state in `target/page-screenshots/`.

use super::*;
use serde_json::json;
use support::browser::Browser;
use tokio::io::AsyncBufReadExt;

/// The longest the page may take to show a change the cluster went through.
const SHOWS: Duration = Duration::from_secs(30);

/// Where the screenshots go: `target/page-screenshots/` (or under `CARGO_TARGET_DIR`).
fn screenshot_dir() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("page-screenshots")
}

/// What the page draws as a list, by a script returning an array of strings.
async fn drawn(browser: &Browser, script: &str) -> Vec<String> {
    let value = browser.script(script).await;
    let mut list: Vec<String> = serde_json::from_value(value).unwrap();
    list.sort();
    list
}

/// `regbox dashboard NAME` on a free port, and the URL it printed.
async fn dashboard(name: &str) -> (tokio::process::Child, String) {
    let mut child = regbox()
        .args(["dashboard", name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let url = lines
        .next_line()
        .await
        .unwrap()
        .expect("the dashboard prints its URL");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    (child, url)
}

#[test]
fn the_page_draws_the_ring_its_partition_the_fork_and_reorg_and_link_faults_live() {
    run(async {
        let name = unique("page");
        let (cluster, _guard) = up(ring(&name, 6)).await;
        let (mut dash, url) = dashboard(&name).await;
        let browser = Browser::start(1400, 1200).await;
        let shots = screenshot_dir();
        browser.goto(&url).await;

        // The drawn nodes and edges are the cluster's, every session up.
        let nodes = "document.querySelectorAll('.topology .node')";
        let live = "document.querySelectorAll('.topology .edge.live')";
        let ready = format!("{nodes}.length === 6 && {live}.length === 6");
        browser.wait_for("the ring", &ready, SHOWS).await;
        let names = drawn(
            &browser,
            &format!("return [...{nodes}].map(n => n.dataset.name)"),
        )
        .await;
        let mut declared: Vec<String> = (0..6).map(|i| declared_name(&cluster, i)).collect();
        declared.sort();
        assert_eq!(names, declared);
        let edges = "return [...document.querySelectorAll('.topology .edge')].map(e => [e.dataset.a, e.dataset.b].sort().join('-'))";
        let mut want: Vec<String> = (cluster.spec().edges.iter())
            .map(|e| {
                let mut pair = [
                    declared_name(&cluster, e.from),
                    declared_name(&cluster, e.to),
                ];
                pair.sort();
                pair.join("-")
            })
            .collect();
        want.sort();
        assert_eq!(drawn(&browser, edges).await, want);
        browser.screenshot(&shots.join("1-ring.png")).await;
        let loaded = browser.script("return performance.timeOrigin").await;

        // Partitioned: two groups, drawn without a reload.
        ok(&["-c", &name, "partition", "n0,n1,n2", "n3,n4,n5"]).await;
        let groups = "document.querySelectorAll('.topology .group')";
        browser
            .wait_for("two groups", &format!("{groups}.length === 2"), SHOWS)
            .await;
        let members = drawn(
            &browser,
            &format!("return [...{groups}].map(g => g.dataset.members)"),
        )
        .await;
        assert_eq!(members, vec!["n0,n1,n2", "n3,n4,n5"]);
        assert_eq!(
            browser.script("return performance.timeOrigin").await,
            loaded,
            "reloaded"
        );
        browser.screenshot(&shots.join("2-partitioned.png")).await;

        // Blocks on both sides: the fork view shows a live branch beside the main chain.
        ok(&["-c", &name, "mine", "n0", "3"]).await;
        ok(&["-c", &name, "mine", "n3", "2"]).await;
        let fork = "document.querySelector('.fork .branch-label:not(.stale)')";
        let both = format!("{fork} && {fork}.dataset.length === '2'");
        browser
            .wait_for("the branch of the other side", &both, SHOWS)
            .await;
        let tips = "new Set([...document.querySelectorAll('.topology .node')].map(n => n.dataset.tip)).size";
        assert_eq!(browser.script(&format!("return {tips}")).await, json!(2));
        browser.screenshot(&shots.join("3-forked.png")).await;

        // Healed: one group, the losing side's blocks a stale branch, its reorg of depth 2.
        ok(&["-c", &name, "heal", "--sync"]).await;
        let stale = "document.querySelector('.fork .branch-label.stale')";
        let reorged = format!(
            "{groups}.length === 0 && {stale} && {stale}.dataset.length === '2' && \
             {stale}.dataset.reorgDepth === '2'"
        );
        browser
            .wait_for("the stale branch and the reorg depth", &reorged, SHOWS)
            .await;
        let stale_blocks = "document.querySelectorAll('.fork .block.stale').length";
        assert_eq!(
            browser.script(&format!("return {stale_blocks}")).await,
            json!(2)
        );
        let log =
            "[...document.querySelectorAll('.events .event')].map(e => e.textContent).join('\\n')";
        let text = browser.script(&format!("return {log}")).await;
        let text = text.as_str().unwrap();
        for line in [
            "partition n0,n1,n2 | n3,n4,n5",
            "partition healed",
            "reorg of depth 2 on n3, n4, n5",
        ] {
            assert!(text.contains(line), "the event log lacks `{line}`:\n{text}");
        }
        browser.screenshot(&shots.join("4-healed.png")).await;

        // A one-way cut and a delay: marked, and listed in force with the line that ends them.
        ok(&["-c", &name, "cut", "--from", "n0", "--to", "n1"]).await;
        ok(&["-c", &name, "netem", "n2", "--delay", "150ms"]).await;
        let cut =
            "document.querySelector('.topology g.cut.oneway[data-from=\"n0\"][data-to=\"n1\"]')";
        let delay = "document.querySelector('.topology .node[data-name=\"n2\"] .shaped-ring')";
        browser
            .wait_for("the cut and the delay", &format!("{cut} && {delay}"), SHOWS)
            .await;
        let both_ways = "document.querySelectorAll('.topology g.cut.both').length";
        assert_eq!(
            browser.script(&format!("return {both_ways}")).await,
            json!(0)
        );
        let force = drawn(&browser, "return [...document.querySelectorAll('ul.force li[data-what]')].map(l => l.textContent)").await;
        assert_eq!(
            force,
            vec![
                format!("cut n0 → n1 (one way, drop)regbox -c {name} cut --clear n0"),
                format!("n2: delay 150msregbox -c {name} netem --clear n2"),
            ]
        );
        browser.screenshot(&shots.join("5-cut-and-delay.png")).await;
        assert_eq!(
            browser.script("return performance.timeOrigin").await,
            loaded,
            "reloaded"
        );
        let console = browser.console().await;
        assert!(console.is_empty(), "the page logged: {console:#?}");

        // Read-only: the dashboard refuses a verb that changes the cluster.
        let mine = format!("{url}clusters/{name}/mine");
        let (status, body) = http("POST", &mine, r#"{"node": "n0", "blocks": 1}"#).await;
        assert_eq!((status, body.contains("only reads")), (403, true), "{body}");

        // The operator gone: the page says so.
        interrupt(&dash);
        dash.wait().await.unwrap();
        let lost = "document.body.dataset.connection === 'lost' && !document.getElementById('lost').hidden";
        browser
            .wait_for("that it lost the operator", lost, SHOWS)
            .await;
        browser.screenshot(&shots.join("6-lost.png")).await;

        // An operator with a token: `/` is refused without it; `/?token=` once sets it as a cookie,
        // takes it out of the address, and the page and its stream go live.
        let file = TempFile::new(
            "page.yaml",
            &format!("name: {name}\nnodes: 6\ntopology: ring\n"),
        );
        let port = free_port();
        let mut op = regbox()
            .args(["operator", file.to_str().unwrap(), "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .env("REGBOX_TOKEN", "page-s3cret")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}/");
        let started = std::time::Instant::now();
        while try_http("GET", &format!("{base}healthz"), "")
            .await
            .is_err()
        {
            assert!(started.elapsed() < SHOWS, "the operator never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(http("GET", &base, "").await.0, 401);
        browser.goto(&format!("{base}?token=page-s3cret")).await;
        let live = format!("document.body.dataset.connection === 'live' && {nodes}.length === 6");
        browser
            .wait_for("the page behind the token", &live, SHOWS)
            .await;
        assert_eq!(browser.script("return location.search").await, json!(""));
        interrupt(&op);
        op.wait().await.unwrap();
        browser.close().await;
    });
}

fn declared_name(cluster: &Cluster, i: usize) -> String {
    cluster.nodes()[i].name().to_string()
}
