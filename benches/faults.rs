//! Benchmark (`cargo bench --bench faults`): the fault plane on one cluster of `REGBOX_BENCH_NODES`
//! nodes (default 100, a ring), over `REGBOX_BENCH_ROUNDS` rounds (default 2), medians side by side:
//!
//! - **majorities-ring via segments**: `partition_via(MajoritiesRing, Drop, Segments)` until it returns
//!   (every node moved onto its segments, sessions across closed, the peer graph verified by the
//!   nodes), then `heal` (untimed);
//! - **majorities-ring via firewall**: the same partition as rules in each node's namespace, verified
//!   the same way, then `heal` (untimed);
//! - **netem on every node**: `shape(all, delay 100ms)` until the agent has set every node, then one
//!   node's ping time read back (to show the delay is real; untimed);
//! - **clear**: `clear_links(all)` until every node's rules and queue are gone.
//!
//! `REGBOX_BENCH_SEGMENTS=0` leaves out the segments variant (minutes at 100 nodes) for a quick run.
//!
//! The agent and its image exist before the first timing (a warm-up netem), so no figure includes the
//! image build. The cluster is removed at the end, also when a step panics (drop guard).

use std::time::{Duration, Instant};

use regbox::cluster::Cluster;
use regbox::link::Shaping;
use regbox::manifest::{self, ClusterSpec};
use regbox::partition::Via;
use regbox::progress::Progress;

#[path = "../tests/support/mod.rs"]
mod support;
use regbox::{CutMode, PartitionKind, UpOptions};
use support::median;

const STEP: Duration = Duration::from_secs(600);

async fn timed<T>(
    what: &str,
    work: impl std::future::Future<Output = regbox::cluster::Result<T>>,
) -> (Duration, T) {
    let start = Instant::now();
    let out = work
        .await
        .unwrap_or_else(|e| panic!("{what}: {}", regbox::core::names::error_chain(&e)));
    (start.elapsed(), out)
}

#[tokio::main]
async fn main() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&v: &usize| v > 0)
            .unwrap_or(d)
    };
    let (n, rounds) = (
        env("REGBOX_BENCH_NODES", 100),
        env("REGBOX_BENCH_ROUNDS", 2),
    );
    let segments = std::env::var("REGBOX_BENCH_SEGMENTS").map_or(true, |v| v != "0");
    // The agent's image is made from the regbox binary cargo built for this benchmark's package.
    if std::env::var_os("REGBOX_BIN").is_none() {
        let bin = std::env::current_exe()
            .unwrap()
            .parent()
            .and_then(|deps| deps.parent())
            .map(|dir| dir.join("regbox"))
            .filter(|p| p.is_file())
            .expect("build the regbox binary first (cargo build --release), or set REGBOX_BIN");
        std::env::set_var("REGBOX_BIN", bin);
    }
    let yaml = format!(
        "name: bf{}\nnodes: {n}\ntopology: ring\n",
        std::process::id()
    );
    let spec: ClusterSpec = manifest::parse(&yaml, "bench").unwrap();
    let progress = Progress::default();
    let options = UpOptions {
        teardown_on_drop: true,
        ..UpOptions::default()
    };
    let start = Instant::now();
    let mut cluster = Cluster::up(spec, &options).await.expect("cluster comes up");
    println!("{n}-node ring up in {:.1}s", start.elapsed().as_secs_f64());
    let all: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|x| x.name().to_string())
        .collect();
    let delay = Shaping {
        delay_us: 100_000,
        ..Shaping::default()
    };
    // Warm-up: the agent (and its image) come into being here, untimed.
    cluster
        .shape(&all[..1], None, &delay, &progress)
        .await
        .unwrap();
    cluster
        .clear_links(None, true, true, &progress)
        .await
        .unwrap();

    let (mut seg, mut fw, mut shape, mut clear) = (vec![], vec![], vec![], vec![]);
    for round in 1..=rounds {
        let kind = PartitionKind::MajoritiesRing;
        if segments {
            let (t, _) = timed(
                "via segments",
                cluster.partition_via(&kind, CutMode::Drop, Via::Segments, false, STEP),
            )
            .await;
            seg.push(t);
            cluster.heal(STEP).await.unwrap();
        }
        let (t, _) = timed(
            "via firewall",
            cluster.partition_via(&kind, CutMode::Drop, Via::Firewall, false, STEP),
        )
        .await;
        fw.push(t);
        cluster.heal(STEP).await.unwrap();
        let (t, _) = timed("netem", cluster.shape(&all, None, &delay, &progress)).await;
        shape.push(t);
        let ping = match ping_ms(&cluster).await {
            Some(ms) => format!("{ms:.0} ms"),
            None => "not read back: no ping above 50 ms within 5 s".into(),
        };
        let (t, _) = timed("clear", cluster.clear_links(None, true, true, &progress)).await;
        clear.push(t);
        println!(
            "round {round}/{rounds}: majorities-ring via segments {}, via firewall {:.2}s | netem on {n} nodes {:.2}s (n1's ping to n0 then {ping}) | clear {:.2}s",
            seg.last().map_or("-".into(), |t| format!("{:.2}s", t.as_secs_f64())),
            fw[round - 1].as_secs_f64(),
            shape[round - 1].as_secs_f64(),
            clear[round - 1].as_secs_f64()
        );
    }
    let f = median(&fw);
    println!("medians over {rounds} round(s), {n} nodes:");
    match seg.is_empty() {
        false => {
            let s = median(&seg);
            println!(
                "majorities-ring applied+verified  via segments {:7.2}s | via firewall {:5.2}s | ratio {:.0}x (target ≤ 2.00s)",
                s.as_secs_f64(),
                f.as_secs_f64(),
                s.as_secs_f64() / f.as_secs_f64()
            );
        }
        true => println!(
            "majorities-ring applied+verified  via firewall {:5.2}s (target ≤ 2.00s)",
            f.as_secs_f64()
        ),
    }
    println!(
        "netem delay on every node         {:7.2}s (target ≤ 2.00s)",
        median(&shape).as_secs_f64()
    );
    println!(
        "clear every node                  {:7.2}s (target ≤ 1.00s)",
        median(&clear).as_secs_f64()
    );
    cluster.down(&progress).await.unwrap();
}

/// n1's ping time to n0 after a fresh ping, in ms (n0's packets are delayed: about 100), or None
/// when no ping time above 50 ms shows within 5 s.
async fn ping_ms(cluster: &Cluster) -> Option<f64> {
    let node = &cluster.nodes()[1];
    let _: serde_json::Value = node.rpc.call("ping", serde_json::json!([])).await.unwrap();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let peers: Vec<serde_json::Value> = node
            .rpc
            .call("getpeerinfo", serde_json::json!([]))
            .await
            .unwrap();
        let t = peers
            .iter()
            .find(|p| p["subver"].as_str().is_some_and(|s| s.contains("(n0)")))
            .and_then(|p| p["pingtime"].as_f64());
        if let Some(t) = t.filter(|&t| t > 0.05) {
            return Some(t * 1000.0);
        }
    }
    None
}
