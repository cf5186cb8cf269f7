//! Benchmark (`cargo bench --bench operator`): how long a node killed from outside (SIGKILL through
//! the engine API) takes to be running and wired again, on a 4-node ring, over `REGBOX_BENCH_ROUNDS`
//! kills (default 10) of each variant, medians side by side:
//!
//! - **by hand**: the same kill, then what a repair has to do at the least, straight through the
//!   engine API and the nodes' RPC: start the container, wait until its bitcoind answers, `addnode
//!   onetry` along its two declared edges — no event, no lock, no observation;
//! - **operator**: `regbox operator MANIFEST` (the binary cargo built, `--interval 600`, so only the
//!   engine's event can start the pass) does it all after the same kill.
//!
//! Each time runs from the kill request until the killed node lists both its ring neighbours with a
//! finished handshake (a pong received) and both list it; every RPC of that poll has 100 ms (a dead
//! node's address does not answer), and it polls every 10 ms. Each round kills one node (moving round
//! the ring) once by hand, the operator stopped meanwhile (SIGSTOP; when it runs again, the pass the
//! round's events start finds the cluster as declared), and once for the operator. After each kill,
//! untimed: the node's bitcoind really is a new one (its `uptime`), the cluster's peer graph is the
//! declared one, and the operator's pass is over (its `/status`). The cluster is removed at the end,
//! also when a step panics (drop guard).

use std::time::{Duration, Instant};

use regbox::cluster::Cluster;
use regbox::manifest;
use serde_json::{json, Value};

#[path = "../tests/support/mod.rs"]
mod support;
use support::{median, outside};

/// The time each poll's RPC call has.
const ASK: Duration = Duration::from_millis(100);

/// The pause between two polls.
const POLL: Duration = Duration::from_millis(10);

/// How long one node may take to come back before the benchmark gives up.
const LIMIT: Duration = Duration::from_secs(60);

const NODES: usize = 4;

#[tokio::main]
async fn main() {
    let rounds = std::env::var("REGBOX_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v: &usize| v > 0)
        .unwrap_or(10);
    support::ensure_image();
    let name = format!("bo{}", std::process::id());
    let yaml = format!("name: {name}\nnodes: {NODES}\ntopology: ring\n");
    let file = support::TempFile::new("ring.yaml", &yaml);
    let _guard = support::Teardown(name.clone());
    let spec = manifest::parse(&yaml, "bench").unwrap();
    let cluster = Cluster::up(spec, &regbox::UpOptions::default())
        .await
        .expect("cluster comes up");

    // The operator: it finds its manifest applied and passes once.
    let port = support::free_port();
    let mut operator = support::regbox()
        .args(["operator", file.to_str().unwrap(), "--interval", "600"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = operator.id().unwrap().to_string();
    let signal = |sig: &str| {
        let sent = std::process::Command::new("kill")
            .args([sig, &pid])
            .status();
        assert!(sent.unwrap().success(), "kill {sig} {pid}");
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut passes = settled(&base, 0).await;

    let (mut by_hand, mut by_operator) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let node = round % NODES;
        // By hand, with the operator stopped (SIGSTOP): it sees the events of this round when it
        // runs again, and its pass then finds the cluster as declared.
        signal("-STOP");
        let t = by_hand_round(&cluster, node).await;
        signal("-CONT");
        by_hand.push(t);
        checked(&cluster, node, t).await;
        passes = settled(&base, passes).await;

        let container = &cluster.nodes()[node].layout.container;
        let start = Instant::now();
        outside::kill(container).await;
        wired(&cluster, node, start).await;
        let o = start.elapsed();
        by_operator.push(o);
        // The pass is over before the next kill (it samples every node after the repair).
        passes = settled(&base, passes).await;
        checked(&cluster, node, o).await;
        println!(
            "round {:2}/{rounds}: n{node} killed, back and wired: by hand {:.3}s | operator {:.3}s",
            round + 1,
            t.as_secs_f64(),
            o.as_secs_f64()
        );
    }
    operator.kill().await.unwrap();

    let (hand, op) = (median(&by_hand), median(&by_operator));
    println!("medians over {rounds} kills, {NODES}-node ring:");
    println!(
        "kill -> running and wired again   operator {:.3}s | by hand {:.3}s | ratio {:.2}x (target: operator ≤ 1.000s)",
        op.as_secs_f64(),
        hand.as_secs_f64(),
        op.as_secs_f64() / hand.as_secs_f64()
    );
    regbox::cluster::down_named(Some(&name), &regbox::progress::Progress::default())
        .await
        .expect("down");
}

/// One by-hand round: the kill, the start, the wait for RPC, the two dials; then the wait for wired.
async fn by_hand_round(cluster: &Cluster, node: usize) -> Duration {
    let n = &cluster.nodes()[node];
    let start = Instant::now();
    outside::kill(&n.layout.container).await;
    outside::engine()
        .start_container(
            &n.layout.container,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .unwrap();
    until(start, || async {
        ask(cluster, node, "getblockcount").await.is_some()
    })
    .await;
    for e in cluster
        .spec()
        .edges
        .iter()
        .filter(|e| e.from == node || e.to == node)
    {
        let to = &cluster.nodes()[e.to].layout;
        let addr = format!(
            "{}:{}",
            to.data_ip,
            regbox::core::cluster::blueprint::P2P_PORT
        );
        let dialer = &cluster.nodes()[e.from].rpc;
        let _: Value = dialer
            .call("addnode", json!([addr, "onetry"]))
            .await
            .unwrap();
    }
    wired(cluster, node, start).await;
    start.elapsed()
}

/// `method` on node `i`, or None when it does not answer within [`ASK`].
async fn ask(cluster: &Cluster, i: usize, method: &str) -> Option<Value> {
    let rpc = &cluster.nodes()[i].rpc;
    tokio::time::timeout(ASK, rpc.call_raw(method, json!([]), ASK))
        .await
        .ok()?
        .ok()
}

/// Polls until `done` holds (panics after [`LIMIT`] from `start`).
async fn until<F: std::future::Future<Output = bool>>(start: Instant, done: impl Fn() -> F) {
    while !done().await {
        assert!(start.elapsed() < LIMIT, "not done within {LIMIT:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until node `i` lists exactly its two ring neighbours, each with a finished handshake, and
/// each of them lists it so.
async fn wired(cluster: &Cluster, i: usize, start: Instant) {
    let neighbours = [(i + NODES - 1) % NODES, (i + 1) % NODES];
    until(start, || async {
        let Some(mine) = ask(cluster, i, "getpeerinfo").await else {
            return false;
        };
        let mine = mine.as_array().cloned().unwrap_or_default();
        if mine.len() != 2 || !neighbours.iter().all(|&j| handshaken(&mine, j)) {
            return false;
        }
        for j in neighbours {
            let theirs = ask(cluster, j, "getpeerinfo").await;
            let theirs = theirs
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default();
            if !handshaken(&theirs, i) {
                return false;
            }
        }
        true
    })
    .await
}

/// Whether `peers` holds a session with node `j` (named in its user agent) over which a pong came.
fn handshaken(peers: &[Value], j: usize) -> bool {
    peers.iter().any(|p| {
        p["subver"]
            .as_str()
            .is_some_and(|s| s.contains(&format!("(n{j})")))
            && p["bytesrecv_per_msg"]["pong"].as_u64().unwrap_or(0) >= 29
    })
}

/// Untimed checks after a round: node `i`'s bitcoind is a new one (up for no longer than the round
/// took), and the peer graph is the declared one.
async fn checked(cluster: &Cluster, i: usize, took: Duration) {
    let uptime: u64 = cluster.nodes()[i]
        .rpc
        .call("uptime", json!([]))
        .await
        .unwrap();
    assert!(
        uptime <= took.as_secs() + 1,
        "n{i} was not started anew: up {uptime} s, the round took {took:?}"
    );
    cluster
        .verify(false)
        .await
        .expect("the declared peer graph");
}

/// Waits until the operator's status shows more than `after` passes, the last one without an error,
/// and every node up; returns the passes.
async fn settled(base: &str, after: u64) -> u64 {
    let start = Instant::now();
    loop {
        if let Ok((200, text)) = support::try_http("GET", &format!("{base}/status"), "").await {
            let all: Value = serde_json::from_str(&text).unwrap();
            let state = &all["clusters"][0];
            let passes = state["metrics"]["passes"].as_u64().unwrap_or(0);
            let nodes = state["metrics"]["nodes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if passes > after
                && state["last_pass"]["error"].is_null()
                && nodes.len() == NODES
                && nodes.iter().all(|n| n["up"] == true)
            {
                return passes;
            }
        }
        assert!(start.elapsed() < LIMIT, "the operator did not settle");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
