//! Cluster operations on top of the Docker facade and the RPC client: `up` as a reconcile from the
//! manifest to running, wired, verified nodes; opening a cluster from what Docker knows; peers, mining,
//! status and teardown.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use rand::RngCore;
use serde::Serialize;
use tokio::sync::watch;

use crate::core::blueprint::{
    self, Networks, NodeLayout, LABEL_CLUSTER, LABEL_CONFIG, LABEL_ROLE, LABEL_RPC_PASSWORD,
    LABEL_SPEC, ROLE_META,
};
use crate::core::manifest::ClusterSpec;
use crate::core::partition::{CutMode, Membership, SegmentId};
use crate::core::subnet::{self, Subnet};
use crate::core::topology::NodeId;
use crate::engine::docker::{
    ContainerConfig, ContainerInfo, Docker, DockerError, NetworkInfo, State,
};
pub use crate::engine::error::{Error, Result};
use crate::engine::image;
use crate::engine::progress::Progress;
use crate::engine::rpc::{RpcClient, RpcError, Transport};
use crate::engine::wait::{self, on_all, wait_until, Check};

/// Containers created or started at once: more only queues inside the engine on small machines.
pub(crate) const DOCKER_CONCURRENCY: usize = 16;

/// A node of a running cluster: where it lives and how to talk to it.
#[derive(Clone)]
pub struct Node {
    pub layout: NodeLayout,
    pub rpc: RpcClient,
}

impl Node {
    pub fn name(&self) -> &str {
        &self.layout.name
    }

    /// Tags an RPC failure with this node's name.
    pub fn rpc_error(&self, source: RpcError) -> Error {
        Error::Rpc {
            node: self.name().to_string(),
            source,
        }
    }
}

/// How `up` behaves.
#[derive(Clone)]
pub struct UpOptions {
    pub progress: Progress,
    /// Limit for each wait (readiness, wiring, verification).
    pub timeout: Duration,
    /// Tear the cluster down when the returned handle is dropped without `down` or `keep` (the
    /// fallback for library users whose test panics).
    pub teardown_on_drop: bool,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            progress: Progress::default(),
            timeout: Duration::from_secs(120),
            teardown_on_drop: true,
        }
    }
}

/// What one `up` run created, so an interrupted or failed run can take it back.
#[derive(Default)]
struct Journal {
    containers: Vec<String>,
    volumes: Vec<String>,
    networks: Vec<String>,
}

/// A cluster as regbox knows it: the declared spec plus where each node lives.
pub struct Cluster {
    pub(crate) docker: Docker,
    pub(crate) spec: ClusterSpec,
    pub(crate) nodes: Vec<Node>,
    pub(crate) by_name: HashMap<String, NodeId>,
    /// The data-plane segments (0: the data network) and their subnets, as observed in Docker.
    pub(crate) segments: BTreeMap<SegmentId, Subnet>,
    /// Per node, the segments it is attached to, as observed in Docker.
    pub(crate) membership: Membership,
    /// How the active partition cut sessions (kept on its segment networks' labels).
    pub(crate) mode: CutMode,
    /// Tear the cluster down when this handle is dropped without `down` or `keep`.
    armed: bool,
}

impl Drop for Cluster {
    /// The fallback for a test that panics or returns early: blocks until the cluster is removed. An
    /// explicit `down().await` is cheaper and reports errors.
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let name = self.spec.name.clone();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(down_named(Some(&name), &Progress::default()))
                .ok()
        })
        .join();
        if !matches!(done, Ok(Some(_))) {
            tracing::warn!(
                "could not tear down cluster `{}` on drop; `regbox down {}` removes it",
                self.spec.name,
                self.spec.name
            );
        }
    }
}

/// One node's state as `status` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub index: usize,
    pub name: String,
    pub image: String,
    pub state: State,
    pub control_ip: String,
    pub data_ip: String,
    pub height: Option<u64>,
    pub best_hash: Option<String>,
    pub peers: Vec<String>,
    /// The data-plane networks the node is attached to.
    pub segments: Vec<String>,
    /// Why the RPC fields are empty, when they are.
    pub error: Option<String>,
}

/// A cluster as `ls` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterSummary {
    pub name: String,
    pub nodes: usize,
    pub running: usize,
    pub networks: Vec<String>,
}

/// What `down` removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DownReport {
    pub cluster: String,
    pub containers: usize,
    pub volumes: usize,
    pub networks: usize,
}

impl Cluster {
    /// Brings the cluster declared by `spec` up — or, if it already exists, to the declared state — and
    /// verifies the peer graph. On failure, what this run created is removed again.
    pub async fn up(spec: ClusterSpec, opts: &UpOptions) -> Result<Cluster> {
        Cluster::up_until(spec, opts, std::future::pending()).await
    }

    /// `up` that stops when `cancel` completes (e.g. on Ctrl-C): no new work starts, Docker calls in
    /// flight finish, waits are cut short, and what this run created is removed.
    pub async fn up_until(
        spec: ClusterSpec,
        opts: &UpOptions,
        cancel: impl Future<Output = ()>,
    ) -> Result<Cluster> {
        let docker = Docker::connect().await?;
        let journal = Mutex::new(Journal::default());
        let (tx, rx) = watch::channel(false);
        let work = reconcile(&docker, spec, opts, &journal, Cancel(rx));
        tokio::pin!(work);
        tokio::pin!(cancel);
        // Cancelling never drops a Docker call half-way (the engine would finish it after the rollback):
        // it stops new work from starting and cuts the waits short, then `work` returns Interrupted.
        let result = tokio::select! {
            r = &mut work => r,
            () = &mut cancel => {
                let _ = tx.send(true);
                work.await
            }
        };
        match result {
            Ok(cluster) => Ok(cluster),
            Err(source) => {
                opts.progress.finish();
                let journal = std::mem::take(&mut *journal.lock().unwrap());
                let cleanup = rollback(&docker, journal).await;
                Err(Error::RolledBack {
                    source: Box::new(source),
                    cleanup,
                })
            }
        }
    }

    /// Reads an existing cluster back from Docker. With no name, the only cluster there is.
    pub async fn open(name: Option<&str>) -> Result<Cluster> {
        let docker = Docker::connect().await?;
        let name = resolve_cluster(&docker, name).await?;
        let containers = docker.cluster_containers(Some(&name)).await?;
        let meta = containers
            .iter()
            .find(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some(ROLE_META))
            .ok_or_else(|| Error::Damaged(name.clone()))?;
        let spec: ClusterSpec = meta
            .labels
            .get(LABEL_SPEC)
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| Error::Damaged(name.clone()))?;
        let password = meta
            .labels
            .get(LABEL_RPC_PASSWORD)
            .ok_or_else(|| Error::Damaged(name.clone()))?;
        let nets = docker.cluster_networks(Some(&name)).await?;
        let subnet = |role: &str| {
            nets.iter()
                .find(|n| n.labels.get(LABEL_ROLE).map(String::as_str) == Some(role))
                .and_then(|n| n.subnets.first().copied())
                .ok_or_else(|| Error::Damaged(name.clone()))
        };
        let networks = Networks {
            control: subnet("control")?,
            data: subnet("data")?,
            rpcauth: rpcauth_for(password),
        };
        let mut cluster = Cluster::assemble(docker, spec, &networks, password);
        cluster.observe().await?;
        Ok(cluster)
    }

    fn assemble(docker: Docker, spec: ClusterSpec, nets: &Networks, password: &str) -> Cluster {
        let transport = Transport::default();
        let nodes: Vec<Node> = blueprint::nodes(&spec, nets)
            .into_iter()
            .map(|l| {
                let addr = SocketAddr::new(l.control_ip.into(), blueprint::RPC_PORT);
                Node {
                    rpc: RpcClient::new(transport.clone(), addr, blueprint::RPC_USER, password),
                    layout: l,
                }
            })
            .collect();
        let by_name = nodes
            .iter()
            .map(|n| (n.name().to_string(), n.layout.index))
            .collect();
        let membership = crate::core::partition::healed(nodes.len());
        Cluster {
            docker,
            spec,
            nodes,
            by_name,
            segments: BTreeMap::from([(0, nets.data)]),
            membership,
            mode: CutMode::Drop,
            armed: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node named `r`, or with index `r`.
    pub fn node(&self, r: &str) -> Result<&Node> {
        self.spec
            .resolve(r)
            .map(|i| &self.nodes[i])
            .ok_or_else(|| Error::UnknownNode {
                cluster: self.spec.name.clone(),
                node: r.to_string(),
                known: describe_names(self.nodes.iter().map(Node::name)),
                count: self.nodes.len(),
            })
    }

    /// A node's console output: the last `tail` lines, then new ones while `follow`.
    pub fn logs(
        &self,
        node: &str,
        tail: Option<usize>,
        follow: bool,
    ) -> Result<impl futures::Stream<Item = Result<String>> + '_> {
        let container = &self.node(node)?.layout.container;
        Ok(self
            .docker
            .logs(container, tail, follow)
            .map(|line| line.map_err(Error::from)))
    }

    /// Mines `blocks` blocks on `node` to an anyone-can-spend script unique to the node (so two nodes
    /// mining on the same parent in the same second never produce the same block). Needs no wallet.
    pub async fn mine(&self, node: &str, blocks: u64) -> Result<Vec<String>> {
        let node = self.node(node)?;
        if self.spec.nodes[node.layout.index].wallet {
            let address = node
                .rpc
                .get_new_address()
                .await
                .map_err(|e| node.rpc_error(e))?;
            return node
                .rpc
                .generate_to_address(blocks, &address)
                .await
                .map_err(|e| node.rpc_error(e));
        }
        // <push node name> OP_DROP OP_TRUE
        let name = node.name().as_bytes();
        let script = format!("{:02x}{}7551", name.len(), hex::encode(name));
        let rpc = &node.rpc;
        let descriptor = rpc
            .descriptor_with_checksum(&format!("raw({script})"))
            .await
            .map_err(|e| node.rpc_error(e))?;
        rpc.generate_to_descriptor(blocks, &descriptor)
            .await
            .map_err(|e| node.rpc_error(e))
    }

    /// Waits until every node has the same best block; returns its hash.
    pub async fn sync_blocks(&self, timeout: Duration) -> Result<String> {
        wait::sync_blocks(&self.nodes, timeout).await
    }

    /// Waits until every node's mempool holds the same transactions; returns how many.
    pub async fn sync_mempools(&self, timeout: Duration) -> Result<usize> {
        wait::sync_mempools(&self.nodes, timeout).await
    }

    /// Each node's container state, chain tip and peers.
    pub async fn status(&self) -> Result<Vec<NodeStatus>> {
        let containers: HashMap<String, ContainerInfo> = self
            .docker
            .cluster_containers(Some(self.name()))
            .await?
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect();
        on_all(&self.nodes, |n| {
            let container = containers.get(&n.layout.container);
            async move {
                let state = container.map_or(State::Unknown, |c| c.state);
                let mut status = NodeStatus {
                    index: n.layout.index,
                    name: n.name().to_string(),
                    image: container.map_or(n.layout.image.clone(), |c| c.image.clone()),
                    state,
                    control_ip: n.layout.control_ip.to_string(),
                    data_ip: n.layout.data_ip.to_string(),
                    height: None,
                    best_hash: None,
                    peers: Vec::new(),
                    segments: self.segments_of(n.layout.index),
                    error: None,
                };
                if state != State::Running {
                    status.error = Some(format!(
                        "container is {}",
                        serde_json::to_value(state).unwrap().as_str().unwrap_or("?")
                    ));
                    return Ok(status);
                }
                match tokio::try_join!(n.rpc.get_tip(), n.rpc.get_peer_info()) {
                    Ok((tip, peers)) => {
                        status.height = Some(tip.height);
                        status.best_hash = Some(tip.hash);
                        let mut names: Vec<String> = peers
                            .iter()
                            .map(|p| {
                                self.identify(p).map_or_else(
                                    || p.addr.clone(),
                                    |i| self.nodes[i].name().to_string(),
                                )
                            })
                            .collect();
                        names.sort();
                        status.peers = names;
                    }
                    Err(e) => status.error = Some(e.to_string()),
                }
                Ok(status)
            }
        })
        .await
    }

    /// Removes every container, volume and network of the cluster.
    pub async fn down(mut self, progress: &Progress) -> Result<DownReport> {
        self.armed = false;
        down(&self.docker, &self.spec.name, progress).await
    }

    /// Lets the cluster outlive this handle (no teardown on drop).
    pub fn keep(mut self) {
        self.armed = false;
    }

    /// Sends `amount_sat` from `from`'s wallet to a new address of `to`'s wallet; returns the txid.
    pub async fn send(&self, from: &str, to: &str, amount_sat: u64) -> Result<String> {
        let (from, to) = (self.node(from)?, self.node(to)?);
        let address = to
            .rpc
            .get_new_address()
            .await
            .map_err(|e| to.rpc_error(e))?;
        from.rpc
            .send_to_address(&address, amount_sat)
            .await
            .map_err(|e| from.rpc_error(e))
    }
}

/// Runs futures with at most `limit` in flight; the first error wins.
pub(crate) async fn run_all<F: Future<Output = Result<()>>>(
    futures: impl Iterator<Item = F>,
    limit: usize,
) -> Result<()> {
    let results: Vec<Result<()>> = stream::iter(futures)
        .buffer_unordered(limit)
        .collect()
        .await;
    results.into_iter().collect()
}

fn describe_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.len() > 8 {
        format!("{}, …, {}", names[..4].join(", "), names[names.len() - 1])
    } else {
        names.join(", ")
    }
}

/// The `-rpcauth` line for a cluster's password. The salt derives from the password so the line, and
/// with it each container's configuration hash, is the same on every run.
fn rpcauth_for(password: &str) -> String {
    use sha2::Digest;
    let salt = sha2::Sha256::digest(format!("regbox-salt:{password}").as_bytes());
    blueprint::rpcauth(&salt[..16], password)
}

/// Every cluster name found on regbox's labels.
async fn cluster_names(docker: &Docker) -> Result<BTreeSet<String>> {
    let (containers, networks) = tokio::try_join!(
        docker.cluster_containers(None),
        docker.cluster_networks(None)
    )?;
    Ok(names_in(&containers, &networks))
}

fn names_in(containers: &[ContainerInfo], networks: &[NetworkInfo]) -> BTreeSet<String> {
    containers
        .iter()
        .map(|c| &c.labels)
        .chain(networks.iter().map(|n| &n.labels))
        .filter_map(|l| l.get(LABEL_CLUSTER).cloned())
        .collect()
}

/// The cluster a command means: the one named, or the only one there is.
async fn resolve_cluster(docker: &Docker, name: Option<&str>) -> Result<String> {
    let names = cluster_names(docker).await?;
    match name {
        Some(n) if names.contains(n) => Ok(n.to_string()),
        Some(n) => Err(Error::UnknownCluster(n.to_string())),
        None if names.len() == 1 => Ok(names.into_iter().next().unwrap()),
        None if names.is_empty() => Err(Error::NoCluster),
        None => Err(Error::Ambiguous(
            names.into_iter().collect::<Vec<_>>().join(", "),
        )),
    }
}

/// Lists every regbox cluster on the engine.
pub async fn list() -> Result<Vec<ClusterSummary>> {
    let docker = Docker::connect().await?;
    let (containers, networks) = tokio::try_join!(
        docker.cluster_containers(None),
        docker.cluster_networks(None)
    )?;
    Ok(names_in(&containers, &networks)
        .into_iter()
        .map(|name| {
            let nodes: Vec<&ContainerInfo> = containers
                .iter()
                .filter(|c| {
                    c.labels.get(LABEL_CLUSTER) == Some(&name)
                        && c.labels.contains_key(blueprint::LABEL_NODE)
                })
                .collect();
            ClusterSummary {
                nodes: nodes.len(),
                running: nodes.iter().filter(|c| c.state == State::Running).count(),
                networks: networks
                    .iter()
                    .filter(|n| n.labels.get(LABEL_CLUSTER) == Some(&name))
                    .map(|n| n.name.clone())
                    .collect(),
                name,
            }
        })
        .collect())
}

/// Removes every container, volume and network labeled with cluster `name` (works on half-made
/// clusters too), retrying Docker 20.10's stale-endpoint refusals, and names whatever it could not remove.
pub async fn down_named(name: Option<&str>, progress: &Progress) -> Result<DownReport> {
    let docker = Docker::connect().await?;
    let name = resolve_cluster(&docker, name).await?;
    down(&docker, &name, progress).await
}

async fn down(docker: &Docker, name: &str, progress: &Progress) -> Result<DownReport> {
    let containers = docker.cluster_containers(Some(name)).await?;
    progress.stage(
        &format!("removing {} containers of `{name}`", containers.len()),
        containers.len() as u64,
    );
    let mut left = Vec::new();
    let removed = remove_all(
        containers.iter().map(|c| c.name.clone()),
        progress,
        |n| async move { docker.remove_container(&n).await },
    )
    .await;
    let mut report = DownReport {
        cluster: name.to_string(),
        ..Default::default()
    };
    report.containers = count_removed(removed, &mut left);
    // Volumes and networks go only once their containers are gone.
    let volumes = docker.cluster_volumes(Some(name)).await?;
    let networks = docker.cluster_networks(Some(name)).await?;
    progress.stage(
        &format!(
            "removing {} volumes and {} networks",
            volumes.len(),
            networks.len()
        ),
        (volumes.len() + networks.len()) as u64,
    );
    let removed = remove_all(volumes.into_iter(), progress, |n| async move {
        docker.remove_volume(&n).await
    })
    .await;
    report.volumes = count_removed(removed, &mut left);
    let removed = remove_all(
        networks.into_iter().map(|n| n.name),
        progress,
        |n| async move { docker.remove_network(&n).await },
    )
    .await;
    report.networks = count_removed(removed, &mut left);
    progress.finish();
    if left.is_empty() {
        Ok(report)
    } else {
        Err(Error::Leftovers(left))
    }
}

async fn remove_all<F, Fut>(
    names: impl Iterator<Item = String>,
    progress: &Progress,
    remove: F,
) -> Vec<(String, Result<(), DockerError>)>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), DockerError>>,
{
    stream::iter(names.map(|n| {
        let fut = remove(n.clone());
        async move {
            let r = fut.await;
            progress.inc();
            (n, r)
        }
    }))
    .buffer_unordered(DOCKER_CONCURRENCY)
    .collect()
    .await
}

fn count_removed(results: Vec<(String, Result<(), DockerError>)>, left: &mut Vec<String>) -> usize {
    let mut n = 0;
    for (name, r) in results {
        match r {
            Ok(()) => n += 1,
            Err(e) => {
                tracing::warn!(
                    "{e}: {}",
                    std::error::Error::source(&e)
                        .map(|s| s.to_string())
                        .unwrap_or_default()
                );
                left.push(name);
            }
        }
    }
    n
}

/// The interruption signal of one `up` run.
struct Cancel(watch::Receiver<bool>);

impl Cancel {
    /// Refuses to start new work once cancelled.
    fn check(&self) -> Result<()> {
        if *self.0.borrow() {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }

    /// Runs `work` (a wait, never a Docker mutation) unless cancelled first.
    async fn guard<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let mut rx = self.0.clone();
        tokio::select! {
            r = work => r,
            _ = rx.wait_for(|c| *c) => Err(Error::Interrupted),
        }
    }
}

/// Removes what an interrupted or failed `up` created and says what happened.
async fn rollback(docker: &Docker, journal: Journal) -> String {
    if journal.containers.is_empty() && journal.networks.is_empty() {
        return "nothing was created by this run".into();
    }
    let quiet = Progress::default();
    let mut left = Vec::new();
    let removed = remove_all(journal.containers.into_iter(), &quiet, |n| async move {
        docker.remove_container(&n).await
    })
    .await;
    let containers = count_removed(removed, &mut left);
    let removed = remove_all(journal.volumes.into_iter(), &quiet, |n| async move {
        docker.remove_volume(&n).await
    })
    .await;
    count_removed(removed, &mut left);
    let removed = remove_all(journal.networks.into_iter(), &quiet, |n| async move {
        docker.remove_network(&n).await
    })
    .await;
    let networks = count_removed(removed, &mut left);
    let mut msg =
        format!("removed what this run created: {containers} container(s), {networks} network(s)");
    if !left.is_empty() {
        msg.push_str(&format!("; could NOT remove: {}", left.join(", ")));
    }
    msg
}

/// The body of `up`: observe what exists, act on the difference, verify.
async fn reconcile(
    docker: &Docker,
    spec: ClusterSpec,
    opts: &UpOptions,
    journal: &Mutex<Journal>,
    cancel: Cancel,
) -> Result<Cluster> {
    let cancel = &cancel;
    let progress = &opts.progress;
    let name = spec.name.clone();
    let images: BTreeSet<&str> = spec.nodes.iter().map(|n| n.image.as_str()).collect();
    for img in images {
        cancel
            .guard(async { Ok(image::ensure_on(docker, img, progress).await?) })
            .await?;
    }

    warn_if_arp_table_small(spec.nodes.len());
    let existing = docker.cluster_containers(Some(&name)).await?;
    let (metas, nodes): (Vec<&ContainerInfo>, Vec<&ContainerInfo>) = existing
        .iter()
        .partition(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some(ROLE_META));
    let spec_json = serde_json::to_string(&spec).expect("a spec serializes");
    let password = metas
        .first()
        .and_then(|m| m.labels.get(LABEL_RPC_PASSWORD).cloned())
        .unwrap_or_else(|| {
            let mut bytes = [0u8; 24];
            rand::rng().fill_bytes(&mut bytes);
            hex::encode(bytes)
        });
    cancel.check()?;
    if metas.first().and_then(|m| m.labels.get(LABEL_SPEC)) != Some(&spec_json) {
        for m in &metas {
            docker.remove_container(&m.name).await?;
        }
        let mut labels = blueprint::cluster_labels(&name);
        labels.insert(LABEL_ROLE.into(), ROLE_META.into());
        labels.insert(LABEL_SPEC.into(), spec_json);
        labels.insert(LABEL_RPC_PASSWORD.into(), password.clone());
        let meta = blueprint::meta_container(&name);
        if metas.is_empty() {
            // A replaced metadata container stays even if this run fails: it holds the declared state.
            journal.lock().unwrap().containers.push(meta.clone());
        }
        docker
            .create_marker(&meta, &spec.nodes[0].image, labels)
            .await?;
    }

    cancel.check()?;
    let networks = Networks {
        control: ensure_network(
            docker,
            &name,
            "control",
            &blueprint::control_network(&name),
            journal,
        )
        .await?,
        data: ensure_network(
            docker,
            &name,
            "data",
            &blueprint::data_network(&name),
            journal,
        )
        .await?,
        rpcauth: rpcauth_for(&password),
    };
    let mut cluster = Cluster::assemble(docker.clone(), spec, &networks, &password);

    // Containers that are not declared, or were made from another configuration, go.
    let wanted: HashMap<&str, &NodeLayout> = cluster
        .nodes
        .iter()
        .map(|n| (n.layout.container.as_str(), &n.layout))
        .collect();
    let stale: Vec<&str> = nodes
        .iter()
        .filter(|c| {
            wanted
                .get(c.name.as_str())
                .is_none_or(|l| c.labels.get(LABEL_CONFIG) != l.labels.get(LABEL_CONFIG))
        })
        .map(|c| c.name.as_str())
        .collect();
    if !stale.is_empty() {
        progress.stage(
            &format!("removing {} outdated containers", stale.len()),
            stale.len() as u64,
        );
        run_all(
            stale
                .iter()
                .map(|c| async move { Ok(docker.remove_container(c).await?) }),
            DOCKER_CONCURRENCY,
        )
        .await?;
    }
    let state: HashMap<&str, State> = nodes
        .iter()
        .filter(|c| !stale.contains(&c.name.as_str()))
        .map(|c| (c.name.as_str(), c.state))
        .collect();

    let data_net = blueprint::data_network(&name);
    let control_net = blueprint::control_network(&name);
    progress.stage(
        &format!("starting {} nodes", cluster.nodes.len()),
        cluster.nodes.len() as u64,
    );
    // Each node's readiness wait starts as soon as its container runs, overlapping with the others' creation.
    let timeout = opts.timeout;
    let (state, control_net, data_net) = (&state, control_net.as_str(), data_net.as_str());
    let wallets: Vec<bool> = cluster.spec.nodes.iter().map(|n| n.wallet).collect();
    let wallets = &wallets;
    run_all(
        cluster.nodes.iter().map(|n| async move {
            let current = state.get(n.layout.container.as_str()).copied();
            start_node(
                docker,
                &n.layout,
                current,
                control_net,
                data_net,
                journal,
                cancel,
            )
            .await?;
            cancel.guard(wait_ready(docker, n, timeout)).await?;
            if wallets[n.layout.index] {
                n.rpc.ensure_wallet().await.map_err(|e| n.rpc_error(e))?;
            }
            progress.inc();
            Ok(())
        }),
        DOCKER_CONCURRENCY,
    )
    .await?;

    progress.stage(&format!("wiring {} edges", cluster.spec.edges.len()), 0);
    // The declared state has no partition: nodes go back to the base segment, edges are re-wired.
    cancel.check()?;
    cluster.observe().await?;
    let plan = crate::core::partition::plan(&cluster.membership, None);
    cluster.move_nodes(&plan, CutMode::Drop).await?;
    cancel
        .guard(cluster.rewire(CutMode::Drop, opts.timeout))
        .await?;
    progress.stage("verifying the peer graph", 0);
    cancel.guard(cluster.verify(false)).await?;
    progress.finish();
    cluster.armed = opts.teardown_on_drop;
    Ok(cluster)
}

/// Past a few hundred containers the host's neighbour (ARP) table overflows and addresses stop
/// resolving at random; say so before it shows up as a wiring timeout.
fn warn_if_arp_table_small(nodes: usize) {
    let path = "/proc/sys/net/ipv4/neigh/default/gc_thresh3";
    let Some(limit) = std::fs::read_to_string(path)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    else {
        return;
    };
    // Each node has an address on the control and the data network, both bridged on this host.
    let needed = nodes * 2 + 64;
    if limit < needed {
        tracing::warn!(
            "{nodes} nodes need about {needed} neighbour entries but net.ipv4.neigh.default.gc_thresh3 is {limit}; \
             raise it (sysctl -w net.ipv4.neigh.default.gc_thresh3={}) or expect wiring timeouts",
            needed.next_power_of_two() * 2
        );
    }
}

/// Makes one node's container run: unpause, start, or create (on the control network, then attached to
/// the data network, each with its static address) and start.
async fn start_node(
    docker: &Docker,
    l: &NodeLayout,
    current: Option<State>,
    control_net: &str,
    data_net: &str,
    journal: &Mutex<Journal>,
    cancel: &Cancel,
) -> Result<()> {
    cancel.check()?;
    match current {
        Some(State::Running) => {}
        Some(State::Paused) => docker.unpause(&l.container).await?,
        Some(_) => docker.start(&l.container).await?,
        None => {
            let config = ContainerConfig {
                name: l.container.clone(),
                image: l.image.clone(),
                args: l.args.clone(),
                labels: l.labels.clone(),
                network: (control_net.to_string(), l.control_ip),
                volume: (l.volume.clone(), blueprint::DATADIR.to_string()),
            };
            {
                let mut j = journal.lock().unwrap();
                j.containers.push(l.container.clone());
                j.volumes.push(l.volume.clone());
            }
            docker.create_container(&config).await?;
            cancel.check()?;
            docker
                .connect_network(&l.container, data_net, l.data_ip)
                .await?;
            cancel.check()?;
            docker.start(&l.container).await?;
        }
    }
    Ok(())
}

/// Finds the cluster's network of `role`, or creates it.
async fn ensure_network(
    docker: &Docker,
    cluster: &str,
    role: &str,
    name: &str,
    journal: &Mutex<Journal>,
) -> Result<Subnet> {
    let existing = docker.cluster_networks(Some(cluster)).await?;
    if let Some(subnet) = existing
        .iter()
        .find(|n| n.name == name)
        .and_then(|n| n.subnets.first())
    {
        return Ok(*subnet);
    }
    let mut labels = blueprint::cluster_labels(cluster);
    labels.insert(LABEL_ROLE.into(), role.into());
    journal.lock().unwrap().networks.push(name.to_string());
    create_network(docker, name, labels).await
}

/// Creates a bridge network on a subnet that overlaps no Docker network and no host route. Docker
/// refuses a subnet another process took meanwhile; the next free one is tried.
pub(crate) async fn create_network(
    docker: &Docker,
    name: &str,
    labels: HashMap<String, String>,
) -> Result<Subnet> {
    let mut taken = docker.all_subnets().await?;
    taken.extend(
        std::fs::read_to_string("/proc/net/route")
            .map(|t| subnet::parse_routes(&t))
            .unwrap_or_default(),
    );
    for subnet in subnet::free_subnets(&taken, name).take(64) {
        match docker.create_network(name, subnet, labels.clone()).await {
            Ok(()) => return Ok(subnet),
            Err(e) if e.is_pool_overlap() => {
                tracing::debug!("{subnet} was taken meanwhile; trying the next one")
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::NoSubnet {
        pool: subnet::POOL,
        network: name.to_string(),
    })
}

/// Waits until a node answers RPC (tolerating refused connections and warm-up) and has loaded its
/// mempool. If its container stops meanwhile, fails at once with its last log lines.
pub async fn wait_ready(docker: &Docker, node: &Node, timeout: Duration) -> Result<()> {
    let what = format!("node `{}` to answer RPC", node.name());
    wait_until(&what, timeout, Duration::from_millis(20), || async {
        let err = match node.rpc.get_block_count().await {
            Ok(_) => match node.rpc.get_mempool_info().await {
                Ok(m) if m.loaded => return Ok(Check::Ready(())),
                Ok(_) => return Ok(Check::Pending("mempool still loading".into())),
                Err(e) => e,
            },
            Err(e) => e,
        };
        if !err.is_not_ready() {
            return Err(node.rpc_error(err));
        }
        if !docker.is_running(&node.layout.container).await? {
            let lines: Vec<String> = docker
                .logs(&node.layout.container, Some(20), false)
                .filter_map(|l| async { l.ok() })
                .collect()
                .await;
            return Err(Error::Exited {
                node: node.name().to_string(),
                logs: lines.concat(),
            });
        }
        Ok(Check::Pending(err.to_string()))
    })
    .await
}
