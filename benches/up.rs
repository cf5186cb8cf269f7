//! Benchmark (`cargo bench --bench up`): time from `up` to a verified peer graph for a 4-ring and for 50
//! nodes, next to the engine's raw create+start of the same 50 containers, measured interleaved in one
//! run and reported as medians with their ratio; then, on a 10-node ring, a partition into two groups
//! applied and verified, and heal until every node is on one tip, each as a median.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt, TryStreamExt};
use regbox::cluster::{self, Cluster, UpOptions};

use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig, Mount,
    MountType, MountVolumeOptions, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use regbox::core::blueprint::{self, Networks};
use regbox::core::subnet::{self, Subnet};
use regbox::manifest::{self, ClusterSpec};
use regbox::partition::{CutMode, PartitionKind};
use regbox::progress::Progress;

/// The node image every run uses: resolved once, so `up` and the raw baseline run the same image.
static IMAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn ring(name: &str, n: usize) -> ClusterSpec {
    let mut spec = manifest::parse(
        &format!("name: {name}\nnodes: {n}\ntopology: ring\n"),
        "bench",
    )
    .unwrap();
    spec.with_image(IMAGE.get().expect("image resolved first"))
        .unwrap();
    spec
}

async fn time_up(spec: ClusterSpec) -> Duration {
    let started = Instant::now();
    let cluster = Cluster::up(spec, &UpOptions::default()).await.expect("up");
    let took = started.elapsed();
    cluster.down(&Progress::default()).await.expect("down");
    took
}

/// Creates and starts the containers `up` would for `spec` — same image, command, labels, volume, static
/// address and hardening, at the same parallelism — with nothing else: no second network, no waits, no wiring.
/// It talks to the engine through bollard directly, so the baseline owes nothing to regbox's facade.
async fn time_raw(engine: &bollard::Docker, spec: &ClusterSpec) -> Duration {
    let mut taken: Vec<Subnet> = engine
        .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|n| n.ipam.and_then(|i| i.config).unwrap_or_default())
        .filter_map(|c| c.subnet?.parse().ok())
        .collect();
    taken.extend(
        std::fs::read_to_string("/proc/net/route")
            .map(|t| subnet::parse_routes(&t))
            .unwrap_or_default(),
    );
    let subnet = subnet::free_subnets(&taken, &spec.name).next().unwrap();
    let network = blueprint::control_network(&spec.name);
    engine
        .create_network(NetworkCreateRequest {
            name: network.clone(),
            driver: Some("bridge".into()),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.to_string()),
                    ip_range: Some(subnet.dynamic_range().to_string()),
                    gateway: Some(subnet.gateway().to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(blueprint::cluster_labels(&spec.name)),
            ..Default::default()
        })
        .await
        .unwrap();
    let nets = Networks {
        control: subnet,
        data: subnet,
        rpcauth: blueprint::rpcauth(&[0; 16], "bench"),
    };
    let bodies: Vec<(String, ContainerCreateBody)> = blueprint::nodes(spec, &nets)
        .into_iter()
        .map(|l| {
            let endpoint = EndpointSettings {
                ipam_config: Some(EndpointIpamConfig {
                    ipv4_address: Some(l.control_ip.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let body = ContainerCreateBody {
                image: Some(l.image),
                entrypoint: Some(vec!["bitcoind".into()]),
                cmd: Some(l.args),
                env: Some(l.env),
                labels: Some(l.labels.clone()),
                host_config: Some(HostConfig {
                    network_mode: Some(network.clone()),
                    init: Some(true),
                    // The same hardening regbox applies, so the ratio measures regbox, not the
                    // engine's cost of cgroup limits, a read-only root and a tmpfs.
                    cap_drop: Some(vec!["ALL".into()]),
                    security_opt: Some(vec!["no-new-privileges".into()]),
                    readonly_rootfs: Some(true),
                    tmpfs: Some(HashMap::from([(
                        "/tmp".to_string(),
                        "rw,noexec,nosuid,size=16m".to_string(),
                    )])),
                    memory: Some(l.resources.memory as i64),
                    memory_swap: Some(l.resources.memory as i64),
                    pids_limit: Some(blueprint::PIDS_LIMIT),
                    mounts: Some(vec![Mount {
                        typ: Some(MountType::VOLUME),
                        source: Some(l.volume),
                        target: Some(blueprint::DATADIR.into()),
                        volume_options: Some(MountVolumeOptions {
                            labels: Some(l.labels),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                networking_config: Some(NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(network.clone(), endpoint)])),
                }),
                ..Default::default()
            };
            (l.container, body)
        })
        .collect();
    let started = Instant::now();
    stream::iter(bodies.into_iter().map(|(name, body)| async move {
        let opts = CreateContainerOptionsBuilder::new().name(&name).build();
        engine.create_container(Some(opts), body).await?;
        engine
            .start_container(
                &name,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
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
    let engine = bollard::Docker::connect_with_defaults()
        .expect("the benchmark needs a reachable Docker engine");
    let image = regbox::image::ensure(manifest::DEFAULT_IMAGE, &Progress::default())
        .await
        .expect("node image");
    IMAGE.set(image).unwrap();
    let tag = std::process::id();
    let (mut ring4, mut up50, mut raw50) = (Vec::new(), Vec::new(), Vec::new());
    // Warm-up: first container starts pay for page cache and image layer setup.
    time_up(ring(&format!("b{tag}-warm"), 4)).await;
    for round in 0..rounds {
        let spec50 = ring(&format!("b{tag}-up50-{round}"), 50);
        raw50.push(time_raw(&engine, &ring(&format!("b{tag}-raw50-{round}"), 50)).await);
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
