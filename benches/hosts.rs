//! Benchmark (`cargo bench --bench hosts`, as root): one engine against three. It starts the multi-host
//! lab (`tests/lab/multihost.sh up 3`: three Docker engines in network namespaces of their own on this
//! machine, one swarm) and, over `REGBOX_BENCH_ROUNDS` rounds (default 3), with the order of the two
//! alternating from round to round so machine noise hits both alike:
//!
//! - **up→verified** of a ring of `REGBOX_BENCH_NODES` nodes (default 30): `Cluster::up` until it returns
//!   (networks, every node created, started, answering RPC, wired, the peer graph verified) — on the
//!   machine's engine (bridges, RPC direct) and spread over the lab's three engines (overlays, RPC through
//!   the relay);
//! - **partition**: the nodes of one host (every third node) against the rest, applied and verified —
//!   on one engine the same groups;
//! - **heal**: after mining on both sides, heal until every node is on one tip;
//! - **down** of the cluster.
//!
//! A warm-up run (untimed, 3 nodes across the hosts) first builds the relay's image.
//! The overlays are `encrypt: off` unless `REGBOX_BENCH_ENCRYPT` says `on` or `auto` (then `up` includes
//! the encryption probe; `on` measures what encryption costs, where the hosts' kernels carry it).
//! Each node's memory (the engine's cgroup reading) is sampled once on the three-engine cluster.
//! The lab is removed at the end, also when a step panics.

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use regbox::cluster::{Cluster, UpOptions};
use regbox::manifest::{self, ClusterSpec};
use regbox::partition::{CutMode, PartitionKind};
use regbox::progress::Progress;

#[path = "../tests/support/mod.rs"]
mod support;
use support::median;

const HOSTS: usize = 3;

fn socket(host: usize) -> String {
    format!("unix:///run/regbox-lab/h{host}/docker.sock")
}

fn lab(verb: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lab/multihost.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .args(verb)
        .output()
        .expect("run tests/lab/multihost.sh");
    assert!(
        out.status.success(),
        "multihost.sh {verb:?} (needs root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes the lab when dropped.
struct Lab;

impl Drop for Lab {
    fn drop(&mut self) {
        lab(&["down"]);
    }
}

fn spec(name: &str, nodes: usize, hosts: bool) -> ClusterSpec {
    let mut yaml = format!("name: {name}\nnodes: {nodes}\ntopology: ring\n");
    if hosts {
        yaml.push_str("hosts:\n");
        for h in 1..=HOSTS {
            yaml.push_str(&format!("  - {{name: h{h}, docker: \"{}\"}}\n", socket(h)));
        }
        let encrypt = std::env::var("REGBOX_BENCH_ENCRYPT").unwrap_or_else(|_| "off".into());
        yaml.push_str(&format!("encrypt: {encrypt}\n"));
    }
    manifest::parse(&yaml, "bench").unwrap()
}

#[derive(Default)]
struct Figures {
    up: Vec<Duration>,
    partition: Vec<Duration>,
    heal: Vec<Duration>,
    down: Vec<Duration>,
}

/// One timed run: up, partition (every third node against the rest), mine both sides, heal, down.
async fn once(name: &str, nodes: usize, hosts: bool, f: &mut Figures, memory: bool) {
    let wait = Duration::from_secs(120);
    let opts = UpOptions {
        timeout: wait,
        ..UpOptions::default()
    };
    let started = Instant::now();
    let mut cluster = Cluster::up(spec(name, nodes, hosts), &opts)
        .await
        .expect("up");
    f.up.push(started.elapsed());
    if memory {
        print_memory(name).await;
    }
    cluster.mine("n1", 101).await.unwrap();
    cluster.sync_blocks(wait).await.unwrap();
    let third: Vec<String> = (0..nodes).step_by(HOSTS).map(|i| format!("n{i}")).collect();
    let started = Instant::now();
    cluster
        .partition(&PartitionKind::Groups(vec![third]), CutMode::Drop, wait)
        .await
        .expect("partition");
    f.partition.push(started.elapsed());
    cluster.mine("n0", 1).await.unwrap();
    cluster.mine("n1", 2).await.unwrap();
    let started = Instant::now();
    cluster.heal_and_sync(wait).await.expect("heal");
    f.heal.push(started.elapsed());
    let started = Instant::now();
    cluster.down(&Progress::default()).await.expect("down");
    f.down.push(started.elapsed());
}

/// The mean and largest memory use of the cluster's nodes on the lab's engines (cgroup, as `docker
/// stats` shows it).
async fn print_memory(cluster: &str) {
    let mut used = Vec::new();
    for h in 1..=HOSTS {
        let api = bollard::Docker::connect_with_host(&socket(h)).unwrap();
        let filter = std::collections::HashMap::from([(
            "label",
            vec![
                format!("regbox.cluster={cluster}"),
                "regbox.node".to_string(),
            ],
        )]);
        let list = api
            .list_containers(Some(
                bollard::query_parameters::ListContainersOptionsBuilder::new()
                    .filters(&filter)
                    .build(),
            ))
            .await
            .unwrap();
        for c in list {
            let opts = bollard::query_parameters::StatsOptionsBuilder::new()
                .stream(false)
                .build();
            let stats: Vec<_> = api
                .stats(c.id.as_deref().unwrap(), Some(opts))
                .try_collect()
                .await
                .unwrap();
            if let Some(m) = stats.first().and_then(|s| s.memory_stats.as_ref()) {
                let cache = m
                    .stats
                    .as_ref()
                    .and_then(|s| s.get("inactive_file").or(s.get("total_inactive_file")))
                    .copied()
                    .unwrap_or(0);
                used.push(m.usage.unwrap_or(0).saturating_sub(cache) as f64 / (1 << 20) as f64);
            }
        }
    }
    if used.is_empty() {
        return;
    }
    let mean = used.iter().sum::<f64>() / used.len() as f64;
    let max = used.iter().cloned().fold(0.0, f64::max);
    println!(
        "memory per node across hosts (just up, idle): mean {mean:.1} MiB, largest {max:.1} MiB over {} nodes",
        used.len()
    );
}

fn main() {
    let rounds: usize = std::env::var("REGBOX_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let nodes: usize = std::env::var("REGBOX_BENCH_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    // The relay's image is made from a regbox binary: the one built with this benchmark.
    std::env::set_var("REGBOX_BIN", env!("CARGO_BIN_EXE_regbox"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let image = rt
        .block_on(regbox::image::ensure(
            manifest::DEFAULT_IMAGE,
            &Progress::default(),
        ))
        .expect("node image");
    lab(&["down"]);
    lab(&["up", &HOSTS.to_string(), &image]);
    let _lab = Lab;
    let tag = std::process::id();
    rt.block_on(async {
        let mut warm = Figures::default();
        once(&format!("b{tag}-warm"), HOSTS, true, &mut warm, false).await;
        let (mut one, mut three) = (Figures::default(), Figures::default());
        for round in 0..rounds {
            for hosts in [round % 2 == 1, round % 2 == 0] {
                let name = format!("b{tag}-{}{round}", if hosts { "h" } else { "l" });
                let f = if hosts { &mut three } else { &mut one };
                once(&name, nodes, hosts, f, hosts && round == 0).await;
                eprintln!(
                    "round {}: {} up {:.2}s partition {:.2}s heal {:.2}s down {:.2}s",
                    round + 1,
                    if hosts { "3 engines" } else { "1 engine " },
                    f.up[round].as_secs_f64(),
                    f.partition[round].as_secs_f64(),
                    f.heal[round].as_secs_f64(),
                    f.down[round].as_secs_f64()
                );
            }
        }
        println!(
            "{nodes} nodes, ring, medians over {rounds} rounds (1 engine | 3 engines | ratio 3/1)"
        );
        for (what, a, b) in [
            ("up→verified", &one.up, &three.up),
            (
                "partition (a host's nodes vs the rest)",
                &one.partition,
                &three.partition,
            ),
            ("heal → one tip", &one.heal, &three.heal),
            ("down", &one.down, &three.down),
        ] {
            let (a, b) = (median(a), median(b));
            println!(
                "  {what:<40} {:>7.2}s | {:>7.2}s | {:.2}",
                a.as_secs_f64(),
                b.as_secs_f64(),
                b.as_secs_f64() / a.as_secs_f64()
            );
        }
    });
}
