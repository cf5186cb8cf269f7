//! Benchmark (`cargo bench --bench up`): time from `up` to a verified peer graph for a 4-ring and for 50
//! nodes, next to the engine's raw create+start of the same 50 containers, measured interleaved in one
//! run and reported as medians with their ratio; then, on a 10-node ring, a partition into two groups
//! applied and verified, and heal until every node is on one tip, each as a median.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt, TryStreamExt};
use regbox::cluster::{self, Cluster, UpOptions};
use regbox::core::blueprint::{self as layout, Networks};
use regbox::core::subnet;
use regbox::engine::docker::{ContainerConfig, Docker};
use regbox::manifest::{self, ClusterSpec};
use regbox::partition::{CutMode, PartitionKind};
use regbox::progress::Progress;

fn ring(name: &str, n: usize) -> ClusterSpec {
    manifest::parse(
        &format!("name: {name}\nnodes: {n}\ntopology: ring\n"),
        "bench",
    )
    .unwrap()
}

async fn time_up(spec: ClusterSpec) -> Duration {
    let started = Instant::now();
    let cluster = Cluster::up(spec, &UpOptions::default()).await.expect("up");
    let took = started.elapsed();
    cluster.down(&Progress::default()).await.expect("down");
    took
}

/// Creates and starts the containers `up` would for `spec` — same image, command, labels, volume and
/// static address, at the same parallelism — with nothing else: no second network, no waits, no wiring.
async fn time_raw(docker: &Docker, spec: &ClusterSpec) -> Duration {
    let mut taken = docker.all_subnets().await.unwrap();
    taken.extend(
        std::fs::read_to_string("/proc/net/route")
            .map(|t| subnet::parse_routes(&t))
            .unwrap_or_default(),
    );
    let subnet = subnet::free_subnets(&taken, &spec.name).next().unwrap();
    let network = layout::control_network(&spec.name);
    docker
        .create_network(&network, subnet, layout::cluster_labels(&spec.name))
        .await
        .unwrap();
    let nets = Networks {
        control: subnet,
        data: subnet,
        rpcauth: layout::rpcauth(&[0; 16], "bench"),
    };
    let configs: Vec<ContainerConfig> = layout::nodes(spec, &nets)
        .into_iter()
        .map(|l| ContainerConfig {
            name: l.container,
            image: l.image,
            args: l.args,
            labels: l.labels,
            network: (network.clone(), l.control_ip),
            volume: (l.volume, layout::DATADIR.into()),
        })
        .collect();
    let started = Instant::now();
    stream::iter(configs.iter().map(|c| async move {
        docker.create_container(c).await?;
        docker.start(&c.name).await
    }))
    .buffer_unordered(16)
    .try_collect::<Vec<()>>()
    .await
    .unwrap();
    let took = started.elapsed();
    cluster::down_named(Some(&spec.name), &Progress::default())
        .await
        .unwrap();
    took
}

fn median(xs: &mut [Duration]) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("REGBOX_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let docker = Docker::connect()
        .await
        .expect("the benchmark needs a reachable Docker engine");
    regbox::image::ensure(manifest::DEFAULT_IMAGE, &Progress::default())
        .await
        .expect("node image");
    let tag = std::process::id();
    let (mut ring4, mut up50, mut raw50) = (Vec::new(), Vec::new(), Vec::new());
    // Warm-up: first container starts pay for page cache and image layer setup.
    time_up(ring(&format!("b{tag}-warm"), 4)).await;
    for round in 0..rounds {
        let spec50 = ring(&format!("b{tag}-up50-{round}"), 50);
        raw50.push(time_raw(&docker, &ring(&format!("b{tag}-raw50-{round}"), 50)).await);
        up50.push(time_up(spec50).await);
        for i in 0..3 {
            ring4.push(time_up(ring(&format!("b{tag}-r4-{round}-{i}"), 4)).await);
        }
        eprintln!(
            "round {}: raw50 {} up50 {} ring4 {}",
            round + 1,
            secs(*raw50.last().unwrap()),
            secs(*up50.last().unwrap()),
            ring4[ring4.len() - 3..]
                .iter()
                .map(|d| secs(*d))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let (r4, u50, w50) = (median(&mut ring4), median(&mut up50), median(&mut raw50));
    println!(
        "4-ring up -> verified graph   median {} over {} runs (target <= 2.50s)",
        secs(r4),
        ring4.len()
    );
    println!(
        "50-ring up -> verified graph  median {} over {} runs",
        secs(u50),
        up50.len()
    );
    println!(
        "50 raw create+start (API)     median {} over {} runs",
        secs(w50),
        raw50.len()
    );
    println!(
        "ratio up50 / raw50            {:.2}x (target <= 1.30x)",
        u50.as_secs_f64() / w50.as_secs_f64()
    );

    let (split, heal) = partition_rounds(&format!("b{tag}-p10"), rounds * 3).await;
    println!("10 nodes: partition in 2 groups, applied + verified  median {} over {} runs (target <= 1.00s)", secs(split), rounds * 3);
    println!("10 nodes: heal -> all on one tip                     median {} over {} runs (target <= 2.00s)", secs(heal), rounds * 3);
}

/// Splits a 10-node ring in halves, mines on both sides (untimed), heals until one tip; `n` times.
async fn partition_rounds(name: &str, n: usize) -> (Duration, Duration) {
    let wait = Duration::from_secs(60);
    let mut cluster = Cluster::up(ring(name, 10), &UpOptions::default())
        .await
        .expect("up");
    cluster.mine("n0", 101).await.unwrap();
    cluster.sync_blocks(wait).await.unwrap();
    let (mut split, mut heal) = (Vec::new(), Vec::new());
    for i in 0..n {
        let started = Instant::now();
        cluster
            .partition(&PartitionKind::Halves, CutMode::Drop, wait)
            .await
            .expect("partition");
        split.push(started.elapsed());
        cluster.mine("n0", 1).await.unwrap();
        cluster.mine("n9", 2).await.unwrap();
        let started = Instant::now();
        cluster.heal_and_sync(wait).await.expect("heal");
        heal.push(started.elapsed());
        eprintln!(
            "partition round {}: split {} heal {}",
            i + 1,
            secs(split[i]),
            secs(heal[i])
        );
    }
    cluster.down(&Progress::default()).await.unwrap();
    (median(&mut split), median(&mut heal))
}
