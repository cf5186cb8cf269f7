//! Benchmark (`cargo bench --bench up`): for rings of N = 4, 50 and 100 nodes (and 250 and 500 with
//! `REGBOX_BENCH_LARGE=1`), over `REGBOX_BENCH_ROUNDS` rounds (default 3), the median of each figure below
//! and the ratios between them. Each round runs every size once and every variant once per size, the
//! variants' order rotating from round to round, so machine noise hits all of them alike; a warm-up (each
//! variant once at N = 4, untimed) comes first. Every cluster and compose project has its own name
//! (`b<pid>-…`), and a drop guard removes whatever carries its label even if a step panics.
//!
//! - **regbox up→verified**: `Cluster::up` of the ring until it returns (images resolved, metadata
//!   container, lock, control and data networks, every node created, started and answering RPC, every
//!   edge wired, the peer graph verified). The stage lines split it at the stages `up` reports through its
//!   `Progress` (setup until "starting N nodes", start+ready until "wiring N edges", wiring until
//!   "verifying the peer graph", then the verification).
//! - **regbox down**: `cluster.down(&Progress::default())` of that cluster until it returns (lock, listing,
//!   each running container detached from its networks one endpoint at a time, killed, awaited and
//!   removed 16 at a time, then volumes and networks, the lock last); split at its stages (lock+list,
//!   containers, volumes+networks).
//! - **raw create+start**: the same containers (same image, command, environment, labels, volume, static
//!   addresses and hardening, on the same two networks: created on the control network, attached to the
//!   data network with its static address, started) through bollard directly, 16 at a time, on networks
//!   made untimed beforehand, with nothing else: no readiness wait, no wiring.
//! - **raw removal**: the least a removal may do on Docker 20.10 without leaking a network, through
//!   bollard: each network's endpoints disconnected one at a time (the two networks side by side), then
//!   the containers killed, awaited and removed 16 at a time, then the volumes (16 at a time) and the
//!   networks — all of it timed. A plain parallel kill-and-remove of attached containers is not a
//!   baseline here: in this benchmark's first run it left `regbox-…-raw50-0-ctl` counting endpoints of
//!   containers that were gone (moby#42119), removable only after a daemon restart.
//! - **compose up→wired**: the file `regbox export compose` writes for the same ring
//!   (`engine::export::compose_file`; made untimed), then `docker-compose -p NAME -f FILE up -d` (with
//!   `COMPOSE_PARALLEL_LIMIT` = 2 × N, at least its default 64: docker-compose 1.x deadlocks above 64
//!   services with the default, docker/compose#5864) and polling until every node lists exactly its
//!   declared peers, each with a completed handshake (a pong received: the test regbox's verification
//!   applies). Polling runs `bitcoin-cli -regtest -datadir=/data getpeerinfo` in every node not yet
//!   wired, as an exec through the engine API (what `docker exec` does, without a CLI process per call),
//!   16 at a time, 150 ms between rounds. `docker-compose down -v` follows untimed, and a check that
//!   nothing labeled `regbox.export=NAME` is left.
//!
//! At the end, on a 10-node ring: a partition into two groups applied and verified, and heal until every
//! node is on one tip (after mining on both sides), each as a median over 3 × rounds runs.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig, Mount,
    MountType, MountVolumeOptions, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures::stream::{self, StreamExt, TryStreamExt};
use regbox::cluster::{self, Cluster, UpOptions};
use regbox::core::cluster::blueprint::{self, Networks, LABEL_CLUSTER};
use regbox::core::cluster::compose::LABEL_EXPORT;
use regbox::core::cluster::subnet::{self, Subnet};
use regbox::manifest::{self, ClusterSpec};
use regbox::partition::{CutMode, PartitionKind};
use regbox::progress::{Display, Progress};

#[path = "../tests/support/mod.rs"]
mod support;
use support::{median, outside};

/// The node image every run uses: resolved once, so every variant runs the same image.
static IMAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Docker calls in flight at once, in every variant (regbox's own `DOCKER_CONCURRENCY`).
const CONCURRENCY: usize = 16;

/// The pause between two polling rounds of the compose baseline.
const POLL_INTERVAL: Duration = Duration::from_millis(150);

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

// ---------------------------------------------------------------------------------------------------
// Cleanup

/// What a guard removes when dropped.
enum Owned {
    /// Everything labeled `regbox.cluster=NAME` (a regbox cluster, or the raw baseline's containers,
    /// volumes and network, which carry the same labels).
    Cluster(String),
    /// A compose project: `docker-compose down -v`, then anything still labeled `regbox.export=NAME`.
    Compose {
        project: String,
        file: tempfile::NamedTempFile,
    },
}

/// Removes what it owns when dropped while armed (a step panicked or returned early); `disarm` once
/// the step has removed it and checked that nothing is left.
struct Teardown {
    owned: Owned,
    armed: bool,
}

impl Teardown {
    fn cluster(name: &str) -> Teardown {
        Teardown {
            owned: Owned::Cluster(name.to_string()),
            armed: true,
        }
    }

    fn compose(project: &str, file: tempfile::NamedTempFile) -> Teardown {
        Teardown {
            owned: Owned::Compose {
                project: project.to_string(),
                file,
            },
            armed: true,
        }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (label, compose) = match &self.owned {
            Owned::Cluster(name) => (format!("{LABEL_CLUSTER}={name}"), None),
            Owned::Compose { project, file } => (
                format!("{LABEL_EXPORT}={project}"),
                Some((project.clone(), file.path().to_path_buf())),
            ),
        };
        let cluster = match &self.owned {
            Owned::Cluster(name) => Some(name.clone()),
            Owned::Compose { .. } => None,
        };
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                if let Some(name) = &cluster {
                    match cluster::down_named(Some(name), &Progress::default()).await {
                        Ok(_) | Err(cluster::Error::UnknownCluster(_)) => {}
                        Err(e) => eprintln!("teardown of {name}: {e}"),
                    }
                }
                if let Some((project, file)) = &compose {
                    // A hung docker-compose is cut short: the label sweep below removes the rest.
                    let down = tokio::process::Command::new("docker-compose")
                        .env("COMPOSE_PARALLEL_LIMIT", "2000")
                        .args(["-p", project, "-f"])
                        .arg(file)
                        .args(["down", "-v"])
                        .kill_on_drop(true)
                        .output();
                    let _ = tokio::time::timeout(Duration::from_secs(300), down).await;
                }
                let engine = bollard::Docker::connect_with_defaults().unwrap();
                let left = remove_labeled(&engine, &label).await;
                if !left.is_empty() {
                    eprintln!("teardown: could not remove {}", left.join(", "));
                }
            })
        })
        .join();
    }
}

/// Every container, volume and network carrying `label` (`key=value`).
async fn leftovers(engine: &bollard::Docker, label: &str) -> Vec<String> {
    let containers = outside::containers_on(engine, label).await;
    let networks = outside::networks_on(engine, label).await;
    (containers.into_iter().map(|c| c.name))
        .chain(outside::volumes_on(engine, label).await)
        .chain(networks.into_iter().map(|n| n.name))
        .collect()
}

/// Removes whatever carries `label`, the careful way (each container killed and awaited, one at a
/// time); returns what is still there.
async fn remove_labeled(engine: &bollard::Docker, label: &str) -> Vec<String> {
    let filter = outside::label_filter(label);
    let containers = engine
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filter)
                .build(),
        ))
        .await
        .unwrap_or_default();
    for c in containers.into_iter().filter_map(|c| c.id) {
        remove_container(engine, &c).await;
    }
    let volumes = engine
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&filter).build(),
        ))
        .await
        .map(|v| v.volumes.unwrap_or_default())
        .unwrap_or_default();
    for v in volumes {
        remove_volume(engine, &v.name).await;
    }
    let networks = engine
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filter).build(),
        ))
        .await
        .unwrap_or_default();
    for n in networks.into_iter().filter_map(|n| n.id) {
        remove_network(engine, &n).await;
    }
    leftovers(engine, label).await
}

/// Kills a container (SIGKILL), waits until it is not running, removes it with force; errors ignored
/// (a container not running or gone is fine; `leftovers` tells what stayed).
async fn remove_container(engine: &bollard::Docker, name: &str) {
    let kill = KillContainerOptionsBuilder::new().signal("KILL").build();
    if engine.kill_container(name, Some(kill)).await.is_ok() {
        let wait = WaitContainerOptionsBuilder::new()
            .condition("not-running")
            .build();
        let _ = engine.wait_container(name, Some(wait)).next().await;
    }
    let remove = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    let _ = engine.remove_container(name, Some(remove)).await;
}

async fn remove_volume(engine: &bollard::Docker, name: &str) {
    let opts = RemoveVolumeOptionsBuilder::new().force(true).build();
    let _ = engine.remove_volume(name, Some(opts)).await;
}

/// Removes a network, retrying for a few seconds while the engine still counts endpoints of removed
/// containers (as regbox's `down` does).
async fn remove_network(engine: &bollard::Docker, id: &str) {
    for attempt in 1..=20u64 {
        match engine.remove_network(id).await {
            Err(e) if e.to_string().contains("active endpoints") => {
                tokio::time::sleep(Duration::from_millis(100 * attempt.min(5))).await;
            }
            _ => return,
        }
    }
}

/// Panics (so the step's guard cleans up) when anything labeled `label` is left.
async fn assert_clean(engine: &bollard::Docker, label: &str) {
    let left = leftovers(engine, label).await;
    assert!(
        left.is_empty(),
        "left behind ({label}): {}",
        left.join(", ")
    );
}

// ---------------------------------------------------------------------------------------------------
// Stages of regbox's own progress

/// Records when each stage a `Progress` reports begins.
#[derive(Default)]
struct Stages(Mutex<Vec<(Instant, String)>>);

impl Display for Stages {
    fn stage(&self, message: &str, _total: u64) {
        self.0
            .lock()
            .unwrap()
            .push((Instant::now(), message.to_string()));
    }
    fn inc(&self) {}
    fn note(&self, _message: &str) {}
    fn finish(&self) {}
}

impl Stages {
    /// `begin`..`end` cut where the first stage matching each of `marks` (in order) begins; None when
    /// one is missing.
    fn split(
        &self,
        begin: Instant,
        marks: &[fn(&str) -> bool],
        end: Instant,
    ) -> Option<Vec<Duration>> {
        let seen = self.0.lock().unwrap();
        let mut cuts = vec![begin];
        for mark in marks {
            let at = seen.iter().find(|(_, m)| mark(m))?.0;
            cuts.push(at);
        }
        cuts.push(end);
        Some(cuts.windows(2).map(|w| w[1].duration_since(w[0])).collect())
    }
}

// ---------------------------------------------------------------------------------------------------
// regbox

struct RegboxRun {
    up: Duration,
    down: Duration,
    /// setup, start+ready, wiring, verify
    up_stages: Option<Vec<Duration>>,
    /// lock+list, containers, volumes+networks
    down_stages: Option<Vec<Duration>>,
}

async fn run_regbox(engine: &bollard::Docker, spec: ClusterSpec) -> RegboxRun {
    let name = spec.name.clone();
    let guard = Teardown::cluster(&name);
    let up_clock = Arc::new(Stages::default());
    let opts = UpOptions {
        progress: Progress::on(up_clock.clone()),
        ..UpOptions::default()
    };
    let started = Instant::now();
    let cluster = Cluster::up(spec, &opts).await.expect("up");
    let up_end = Instant::now();
    let up_stages = up_clock.split(
        started,
        &[
            |m| m.starts_with("starting "),
            |m| m.starts_with("wiring "),
            |m| m.starts_with("verifying "),
        ],
        up_end,
    );
    let down_clock = Arc::new(Stages::default());
    let started_down = Instant::now();
    cluster
        .down(&Progress::on(down_clock.clone()))
        .await
        .expect("down");
    let down_end = Instant::now();
    let down_stages = down_clock.split(
        started_down,
        &[
            |m| m.starts_with("removing ") && m.contains(" containers of "),
            |m| m.starts_with("removing ") && m.contains(" volumes and "),
        ],
        down_end,
    );
    assert_clean(engine, &format!("{LABEL_CLUSTER}={name}")).await;
    guard.disarm();
    RegboxRun {
        up: up_end - started,
        down: down_end - started_down,
        up_stages,
        down_stages,
    }
}

// ---------------------------------------------------------------------------------------------------
// Raw engine

struct RawRun {
    up: Duration,
    down: Duration,
    /// containers, volumes+network
    down_stages: Vec<Duration>,
}

/// Creates and starts the containers `up` would for `spec` — same image, command, environment, labels,
/// volume, static addresses on the same two networks and hardening, at the same parallelism — with
/// nothing else: no waits, no wiring; then removes them (see the module's doc). It talks to the engine through bollard
/// directly, so the baseline owes nothing to regbox's facade.
async fn run_raw(engine: &bollard::Docker, spec: &ClusterSpec) -> RawRun {
    let guard = Teardown::cluster(&spec.name);
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
    taken.push(subnet);
    let data_subnet = subnet::free_subnets(&taken, &spec.name).next().unwrap();
    let network = blueprint::control_network(&spec.name);
    let data_network = blueprint::data_network(&spec.name);
    let make = |name: String, subnet: Subnet| async move {
        engine
            .create_network(NetworkCreateRequest {
                name,
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
            .unwrap()
            .id
    };
    let network_id = make(network.clone(), subnet).await;
    let data_network_id = make(data_network.clone(), data_subnet).await;
    let nets = Networks {
        control: subnet,
        data: data_subnet,
        rpcauth: blueprint::rpcauth(&[0; 16], "bench"),
        init_token: blueprint::init_token("bench"),
    };
    let layouts = blueprint::nodes(spec, &nets);
    let containers: Vec<String> = layouts.iter().map(|l| l.container.clone()).collect();
    let volumes: Vec<String> = layouts.iter().map(|l| l.volume.clone()).collect();
    let bodies: Vec<(String, ContainerCreateBody, Ipv4Addr)> = layouts
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
            (l.container, body, l.data_ip)
        })
        .collect();
    let started = Instant::now();
    let data_network = &data_network;
    stream::iter(bodies.into_iter().map(|(name, body, data_ip)| async move {
        let opts = CreateContainerOptionsBuilder::new().name(&name).build();
        engine.create_container(Some(opts), body).await?;
        let attach = NetworkConnectRequest {
            container: name.clone(),
            endpoint_config: Some(EndpointSettings {
                ipam_config: Some(EndpointIpamConfig {
                    ipv4_address: Some(data_ip.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        engine.connect_network(data_network, attach).await?;
        engine
            .start_container(
                &name,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
    }))
    .buffer_unordered(CONCURRENCY)
    .try_collect::<Vec<()>>()
    .await
    .unwrap();
    let up = started.elapsed();

    let started = Instant::now();
    // Each network's endpoints one at a time (the two networks side by side), then the containers.
    let detach = |network: &'static str, net: String| {
        let containers = &containers;
        async move {
            let _ = network;
            for c in containers {
                let request = NetworkDisconnectRequest {
                    container: c.clone(),
                    force: Some(true),
                };
                let _ = engine.disconnect_network(&net, request).await;
            }
        }
    };
    futures::join!(
        detach("control", network.clone()),
        detach("data", data_network.clone())
    );
    stream::iter(containers.iter().map(|c| remove_container(engine, c)))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    let containers_done = Instant::now();
    stream::iter(volumes.iter().map(|v| remove_volume(engine, v)))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    remove_network(engine, &network_id).await;
    remove_network(engine, &data_network_id).await;
    let end = Instant::now();
    assert_clean(engine, &format!("{LABEL_CLUSTER}={}", spec.name)).await;
    guard.disarm();
    RawRun {
        up,
        down: end - started,
        down_stages: vec![containers_done - started, end - containers_done],
    }
}

// ---------------------------------------------------------------------------------------------------
// docker-compose

/// Runs `docker-compose -p PROJECT -f FILE ARGS…` for a project of `n` services, killed after 10 minutes.
/// docker-compose 1.x shares one thread limit (`COMPOSE_PARALLEL_LIMIT`, default 64) between a
/// service's task and the container task it waits for, so above 64 services `up` can deadlock
/// (docker/compose#5864, #7486; 31 of 100 containers here): the limit is raised to 2 × n.
async fn compose(project: &str, file: &std::path::Path, n: usize, args: &[&str]) {
    let run = tokio::process::Command::new("docker-compose")
        .env("COMPOSE_PARALLEL_LIMIT", (2 * n).max(64).to_string())
        .args(["-p", project, "-f"])
        .arg(file)
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .unwrap_or_else(|_| panic!("docker-compose {args:?} still running after 600s"))
        .expect("docker-compose is installed");
    assert!(
        out.status.success(),
        "docker-compose {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The addresses of the peers `container`'s node lists with a completed handshake (a pong received,
/// the test regbox's verification applies); None while its RPC does not answer.
async fn handshaken_peers(engine: &bollard::Docker, container: &str) -> Option<Vec<Ipv4Addr>> {
    let exec = engine
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(vec![
                    "bitcoin-cli",
                    "-regtest",
                    "-datadir=/data",
                    "getpeerinfo",
                ]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .ok()?;
    let StartExecResults::Attached { mut output, .. } =
        engine.start_exec(&exec.id, None).await.ok()?
    else {
        return None;
    };
    let mut stdout = Vec::new();
    while let Some(chunk) = output.next().await {
        if let LogOutput::StdOut { message } = chunk.ok()? {
            stdout.extend_from_slice(&message);
        }
    }
    let peers: Vec<serde_json::Value> = serde_json::from_slice(&stdout).ok()?;
    let mut addrs: Vec<Ipv4Addr> = peers
        .iter()
        .filter(|p| p["bytesrecv_per_msg"]["pong"].as_u64().unwrap_or(0) >= 29)
        .filter_map(|p| p["addr"].as_str()?.rsplit_once(':')?.0.parse().ok())
        .collect();
    addrs.sort();
    Some(addrs)
}

/// `compose up -d` of `spec`'s exported file until every node has exactly its declared peers.
async fn run_compose(engine: &bollard::Docker, spec: ClusterSpec) -> Duration {
    let project = spec.name.clone();
    let n = spec.nodes.len();
    let text = regbox::engine::export::compose_file(spec.clone(), &Progress::default())
        .await
        .expect("compose file");
    // Each node's address, from the file itself, and the addresses each should list.
    let doc: serde_json::Value = serde_saphyr::from_str(&text).expect("the compose file parses");
    let address = |node: &str| -> Ipv4Addr {
        doc["services"][node]["networks"]["lab"]["ipv4_address"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address for {node}"))
    };
    let names: Vec<String> = spec.nodes.iter().map(|n| n.name.clone()).collect();
    let mut expected: Vec<Vec<Ipv4Addr>> = vec![Vec::new(); n];
    for e in &spec.edges {
        expected[e.from].push(address(&names[e.to]));
        expected[e.to].push(address(&names[e.from]));
    }
    for peers in &mut expected {
        peers.sort();
    }
    let mut file = tempfile::Builder::new()
        .prefix(&format!("{project}-"))
        .suffix(".yml")
        .tempfile()
        .unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    let path = file.path().to_path_buf();
    let guard = Teardown::compose(&project, file);
    let label = format!("{LABEL_EXPORT}={project}");

    let started = Instant::now();
    compose(&project, &path, n, &["up", "-d"]).await;
    // Service name → container, from the labels compose puts on them.
    let by_service: HashMap<String, String> = engine
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&outside::label_filter(&label))
                .build(),
        ))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| {
            let service = c.labels?.get("com.docker.compose.service")?.clone();
            Some((service, c.id?))
        })
        .collect();
    let containers: Vec<String> = names
        .iter()
        .map(|s| {
            by_service
                .get(s)
                .unwrap_or_else(|| panic!("no container for service {s}"))
                .clone()
        })
        .collect();
    let deadline = started + Duration::from_secs(600);
    let mut pending: Vec<usize> = (0..n).collect();
    loop {
        let (containers, expected) = (&containers, &expected);
        let wired: Vec<(usize, bool)> = stream::iter(pending.iter().map(|&i| async move {
            let peers = handshaken_peers(engine, &containers[i]).await;
            (i, peers.as_ref() == Some(&expected[i]))
        }))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
        pending.retain(|i| !wired.contains(&(*i, true)));
        if pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "compose {project}: {} nodes not wired after 600s (first: {})",
            pending.len(),
            names[pending[0]]
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    let took = started.elapsed();

    compose(&project, &path, n, &["down", "-v"]).await;
    assert_clean(engine, &label).await;
    guard.disarm();
    took
}

// ---------------------------------------------------------------------------------------------------
// Report

/// The median of each stage over the runs that report all of them.
fn median_stages(runs: &[Option<Vec<Duration>>], n: usize) -> Option<Vec<Duration>> {
    let full: Vec<&Vec<Duration>> = runs.iter().flatten().filter(|s| s.len() == n).collect();
    if full.is_empty() {
        return None;
    }
    Some(
        (0..n)
            .map(|i| median(&full.iter().map(|s| s[i]).collect::<Vec<_>>()))
            .collect(),
    )
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

#[derive(Default)]
struct Samples {
    regbox_up: Vec<Duration>,
    regbox_down: Vec<Duration>,
    up_stages: Vec<Option<Vec<Duration>>>,
    down_stages: Vec<Option<Vec<Duration>>>,
    raw_up: Vec<Duration>,
    raw_down: Vec<Duration>,
    raw_down_stages: Vec<Option<Vec<Duration>>>,
    compose_up: Vec<Duration>,
}

#[derive(Clone, Copy, Debug)]
enum Variant {
    Regbox,
    Raw,
    Compose,
}

const VARIANTS: [Variant; 3] = [Variant::Regbox, Variant::Raw, Variant::Compose];

fn print_size(n: usize, s: &Samples) {
    let (up, raw_up, cmp) = (
        median(&s.regbox_up),
        median(&s.raw_up),
        median(&s.compose_up),
    );
    let compose_target = if n == 50 {
        " (target ≥ 2x at 50)"
    } else {
        ""
    };
    let ring4_target = if n == 4 {
        " | regbox target ≤ 2.50s"
    } else {
        ""
    };
    println!(
        "N={n:<4} up→verified  regbox {:>7} | raw create+start {:>7} | ratio {:.2}x (target ≤ 1.10x) | compose up→wired {:>7} | compose/regbox {:.2}x{compose_target}{ring4_target}",
        secs(up),
        secs(raw_up),
        ratio(up, raw_up),
        secs(cmp),
        ratio(cmp, up),
    );
    let (down, raw_down) = (median(&s.regbox_down), median(&s.raw_down));
    println!(
        "N={n:<4} down         regbox {:>7} | raw removal      {:>7} | ratio {:.2}x (target ≤ 1.20x)",
        secs(down),
        secs(raw_down),
        ratio(down, raw_down),
    );
    let show = |stages: Option<Vec<Duration>>, labels: &[&str]| match stages {
        Some(st) => labels
            .iter()
            .zip(st)
            .map(|(l, d)| format!("{l} {}", secs(d)))
            .collect::<Vec<_>>()
            .join(" | "),
        None => "(stages not reported)".to_string(),
    };
    println!(
        "N={n:<4} up stages    regbox {}",
        show(
            median_stages(&s.up_stages, 4),
            &["setup", "start+ready", "wiring", "verify"]
        )
    );
    println!(
        "N={n:<4} down stages  regbox {} || raw {}",
        show(
            median_stages(&s.down_stages, 3),
            &["lock+list", "containers", "volumes+networks"]
        ),
        show(
            median_stages(&s.raw_down_stages, 2),
            &["containers", "volumes+network"]
        )
    );
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("REGBOX_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(3);
    let large = std::env::var("REGBOX_BENCH_LARGE").is_ok_and(|v| v == "1");
    let mut sizes = vec![4, 50, 100];
    if large {
        sizes.extend([250, 500]);
    }
    let engine = bollard::Docker::connect_with_defaults()
        .expect("the benchmark needs a reachable Docker engine");
    let image = regbox::image::ensure(manifest::DEFAULT_IMAGE, &Progress::default())
        .await
        .expect("node image");
    IMAGE.set(image).unwrap();
    let tag = std::process::id();

    // Warm-up: first container starts pay for page cache, image layers and docker-compose's start.
    run_regbox(&engine, ring(&format!("b{tag}-warm-rb"), 4)).await;
    run_raw(&engine, &ring(&format!("b{tag}-warm-raw"), 4)).await;
    run_compose(&engine, ring(&format!("b{tag}-warm-cmp"), 4)).await;

    let mut samples: BTreeMap<usize, Samples> = BTreeMap::new();
    for round in 0..rounds {
        for &n in &sizes {
            let s = samples.entry(n).or_default();
            for k in 0..VARIANTS.len() {
                match VARIANTS[(k + round) % VARIANTS.len()] {
                    Variant::Regbox => {
                        let r =
                            run_regbox(&engine, ring(&format!("b{tag}-rb{n}-{round}"), n)).await;
                        s.regbox_up.push(r.up);
                        s.regbox_down.push(r.down);
                        s.up_stages.push(r.up_stages);
                        s.down_stages.push(r.down_stages);
                    }
                    Variant::Raw => {
                        let r = run_raw(&engine, &ring(&format!("b{tag}-raw{n}-{round}"), n)).await;
                        s.raw_up.push(r.up);
                        s.raw_down.push(r.down);
                        s.raw_down_stages.push(Some(r.down_stages));
                    }
                    Variant::Compose => {
                        let d =
                            run_compose(&engine, ring(&format!("b{tag}-cmp{n}-{round}"), n)).await;
                        s.compose_up.push(d);
                    }
                }
            }
            eprintln!(
                "round {}/{rounds} N={n}: regbox up {} down {} | raw create+start {} removal {} | compose up→wired {}",
                round + 1,
                secs(*s.regbox_up.last().unwrap()),
                secs(*s.regbox_down.last().unwrap()),
                secs(*s.raw_up.last().unwrap()),
                secs(*s.raw_down.last().unwrap()),
                secs(*s.compose_up.last().unwrap()),
            );
        }
    }

    let (split, heal) = partition_rounds(&format!("b{tag}-p10"), rounds * 3).await;

    println!("medians over {rounds} round(s):");
    for (&n, s) in &samples {
        print_size(n, s);
    }
    println!("10 nodes: partition in 2 groups, applied + verified  median {} over {} runs (target ≤ 1.00s)", secs(split), rounds * 3);
    println!("10 nodes: heal -> all on one tip                     median {} over {} runs (target ≤ 2.00s)", secs(heal), rounds * 3);
}

/// Splits a 10-node ring in halves, mines on both sides (untimed), heals until one tip; `n` times.
async fn partition_rounds(name: &str, n: usize) -> (Duration, Duration) {
    let wait = Duration::from_secs(60);
    let guard = Teardown::cluster(name);
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
    guard.disarm();
    (median(&split), median(&heal))
}
