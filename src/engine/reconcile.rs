//! The one reconcile loop: observe the cluster (containers, attachments, sessions), let
//! `core::plan::next` decide the next pass, carry it out, observe again — until nothing is left to do or
//! the deadline passes. `up`, `partition`, `heal` and the node faults all converge here; the loop holds
//! no decisions of its own.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::core::cluster::blueprint::{
    self, segment_network, LABEL_CONFIG, LABEL_MODE, LABEL_NODE, LABEL_ROLE, LABEL_SEGMENT,
    ROLE_HOLD, ROLE_META,
};
use crate::core::cluster::lock::ROLE_LOCK;
use crate::core::cluster::plan::{
    self, Desired, NetRole, NetworkSeen, NodeSeen, Observed, Pass, SessionActions, State,
};
use crate::core::cluster::session::{DataPlane, PeerInfo, Sessions};
use crate::core::cluster::subnet::{self, Subnet};
use crate::core::partition::{self, CutMode, Plan, SegmentId, BASE};
use crate::core::topology::{Edge, Graph, NodeId};
use crate::engine::cluster::Cluster;
use crate::engine::docker::{ContainerInfo, Docker, Net, NetworkInfo};
use crate::engine::error::{Error, Result};
use crate::engine::node::Node;
use crate::engine::progress::Progress;
use crate::engine::wait::{interval_for, Timeout, RPC_CONCURRENCY};

/// Containers created or started at once: more only queues inside the engine on small machines.
pub(crate) const DOCKER_CONCURRENCY: usize = 16;

/// A node that has not answered an observation's RPC within this long is looked up on the engine
/// (it may have just been killed; see `Cluster::peers_or_stopped`).
const SILENT_AFTER: Duration = Duration::from_millis(250);

/// A dial that left no trace at either end is repeated after this long (the listener was not up yet).
const REDIAL_AFTER: Duration = Duration::from_secs(1);

/// The interruption signal of one run: set once, never cleared.
pub(crate) struct Cancel(pub(crate) watch::Receiver<bool>);

impl Cancel {
    /// A signal that never fires (commands that are not interruptible half-way).
    pub(crate) fn never() -> Cancel {
        let (tx, rx) = watch::channel(false);
        // Keep the sender alive for the life of the process: a dropped sender would end `wait_for`.
        std::mem::forget(tx);
        Cancel(rx)
    }

    /// Refuses to start new work once cancelled.
    pub(crate) fn check(&self) -> Result<()> {
        if *self.0.borrow() {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }

    /// Runs `work` (a wait, never a Docker mutation) unless cancelled first.
    pub(crate) async fn guard<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let mut rx = self.0.clone();
        tokio::select! {
            r = work => r,
            _ = rx.wait_for(|c| *c) => Err(Error::Interrupted),
        }
    }
}

/// What one `up` run created, so an interrupted or failed run can take it back.
#[derive(Default)]
pub(crate) struct Journal {
    pub(crate) containers: Vec<String>,
    pub(crate) volumes: Vec<String>,
    pub(crate) networks: Vec<Net>,
}

/// What a run carries besides the desired state: its interruption signal, its journal, its progress.
pub(crate) struct Effects<'a> {
    pub(crate) cancel: Cancel,
    pub(crate) journal: &'a Mutex<Journal>,
    pub(crate) progress: &'a Progress,
}

/// Creates a bridge network on a subnet that overlaps no Docker network and no host route. Docker
/// refuses a subnet another process took meanwhile; the next free one is tried. Docker 20.10 would also
/// take a second network of a name that exists (and the Docker client library cannot ask it to refuse), so the name is
/// checked before, and after: a twin made at the same moment makes this one go again.
pub(crate) async fn create_network(
    docker: &Docker,
    name: &str,
    labels: HashMap<String, String>,
) -> Result<(Net, Subnet)> {
    let existing = docker.all_networks().await?;
    if existing.iter().any(|n| n.name == name) {
        return Err(Error::NetworkTaken(name.to_string()));
    }
    for subnet in subnet::free_subnets(&taken_subnets(existing), name).take(64) {
        match docker.create_network(name, subnet, labels.clone()).await {
            Ok(net) => {
                let twins = docker.all_networks().await?;
                if twins.iter().filter(|n| n.name == name).count() > 1 {
                    docker.remove_network(&net).await?;
                    return Err(Error::NetworkTaken(name.to_string()));
                }
                return Ok((net, subnet));
            }
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

/// Subnets in use: by Docker's networks and by the host's routes (a VPN's, say).
fn taken_subnets(networks: Vec<crate::engine::docker::NetworkInfo>) -> Vec<Subnet> {
    let mut taken: Vec<Subnet> = networks.into_iter().flat_map(|n| n.subnets).collect();
    taken.extend(
        std::fs::read_to_string("/proc/net/route")
            .map(|t| subnet::parse_routes(&t))
            .unwrap_or_default(),
    );
    taken
}

/// A subnet no network and no route uses now, the first of those `name` hashes to (see
/// `subnet::free_subnets`); nothing reserves it.
pub(crate) async fn free_subnet(docker: &Docker, name: &str) -> Result<Subnet> {
    let taken = taken_subnets(docker.all_networks().await?);
    let free = subnet::free_subnets(&taken, name).next();
    free.ok_or_else(|| Error::NoSubnet {
        pool: subnet::POOL,
        network: name.to_string(),
    })
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

/// Container and attachment state read from Docker (it changes only when someone acts on it, so a
/// pass that only touched sessions keeps it).
pub(crate) struct DockerView {
    nodes: Vec<Option<NodeSeen>>,
    strays: Vec<String>,
    pub(crate) plane: DataPlane,
    /// The cut mode recorded on the partition's segment networks.
    pub(crate) mode: CutMode,
    pub(crate) nets: Nets,
    /// Networks duplicating a kept one, with the containers attached to them.
    duplicates: Vec<(Net, Vec<String>)>,
}

/// The cluster's networks by role, by id: names are not trusted to be unique.
#[derive(Debug, Clone, Default)]
pub(crate) struct Nets {
    pub(crate) control: Option<Net>,
    pub(crate) segments: BTreeMap<SegmentId, Net>,
}

impl Nets {
    pub(crate) fn segment(&self, cluster: &str, segment: SegmentId) -> Result<&Net> {
        self.segments
            .get(&segment)
            .ok_or_else(|| Error::MissingNetwork {
                cluster: cluster.to_string(),
                network: segment_network(cluster, segment),
            })
    }
}

impl Cluster {
    /// Brings the cluster to `desired` and returns the data plane it ended with. Container work waits
    /// for each node it starts to be ready (`timeout` per node); session work has `timeout` from its
    /// first pass to converge.
    pub(crate) async fn converge(
        &self,
        desired: &Desired<'_>,
        timeout: Duration,
        fx: &Effects<'_>,
    ) -> Result<DataPlane> {
        let interval = interval_for(self.nodes.len());
        let mut dials: HashMap<(NodeId, NodeId), Instant> = HashMap::new();
        let mut docker: Option<DockerView> = None;
        let mut wiring_deadline: Option<Instant> = None;
        // Rules change only by command, under the lock this run holds: one look serves every pass.
        let cut = self.cut_now().await?;
        loop {
            fx.cancel.check()?;
            let mut view = match docker.take() {
                Some(v) => v,
                None => self.observe_docker().await?,
            };
            let sessions = fx
                .cancel
                .guard(self.sessions(&view.plane, &mut view.nodes))
                .await?;
            let DockerView {
                nodes,
                strays,
                plane,
                mode,
                nets,
                duplicates,
            } = view;
            let observed = Observed {
                nodes,
                strays,
                duplicates: duplicates.iter().map(|(n, _)| n.id.clone()).collect(),
                plane,
                sessions,
                cut: cut.clone(),
            };
            // A command that leaves containers as they are cannot act on a node that has none.
            if desired.containers == plan::Containers::AsTheyAre {
                if let Some(missing) = observed.nodes.iter().position(Option::is_none) {
                    return Err(Error::MissingContainer {
                        cluster: self.spec.name.clone(),
                        node: self.nodes[missing].name().to_string(),
                    });
                }
            }
            let recent: BTreeSet<(NodeId, NodeId)> = dials
                .iter()
                .filter(|(_, t)| t.elapsed() < REDIAL_AFTER)
                .map(|(&k, _)| k)
                .collect();
            match plan::next(desired, &observed, &recent) {
                Pass::Done => return Ok(observed.plane),
                Pass::Networks(_) => self.remove_duplicates(&duplicates).await?,
                Pass::Containers(actions) => {
                    let early = actions.early_edges(desired);
                    for (edge, at) in self
                        .act_containers(&actions, &early, &nets, timeout, fx)
                        .await?
                    {
                        dials.insert((edge.from, edge.to), at);
                    }
                }
                Pass::Segments(moves) => {
                    self.move_nodes(&observed.plane, &nets, &moves, desired.mode)
                        .await?
                }
                Pass::Sessions(actions) => {
                    let deadline = *wiring_deadline.get_or_insert_with(|| Instant::now() + timeout);
                    if Instant::now() >= deadline {
                        return Err(self.wiring_timeout(&observed, desired, timeout, &actions));
                    }
                    self.act_sessions(&observed.plane, &actions).await?;
                    for e in &actions.dial {
                        dials.insert((e.from, e.to), Instant::now());
                    }
                    docker = Some(DockerView {
                        nodes: observed.nodes,
                        strays: observed.strays,
                        plane: observed.plane,
                        mode,
                        nets,
                        duplicates,
                    });
                    let pause = interval.min(deadline.saturating_duration_since(Instant::now()));
                    fx.cancel
                        .guard(async {
                            tokio::time::sleep(pause).await;
                            Ok(())
                        })
                        .await?;
                }
            }
        }
    }

    /// `converge` for a command that creates nothing to roll back and is not interrupted half-way
    /// (partition, heal, node faults).
    pub(crate) async fn converge_quietly(
        &self,
        desired: &Desired<'_>,
        timeout: Duration,
    ) -> Result<DataPlane> {
        let journal = Mutex::new(Journal::default());
        let progress = Progress::default();
        let fx = Effects {
            cancel: Cancel::never(),
            journal: &journal,
            progress: &progress,
        };
        self.converge(desired, timeout, &fx).await
    }

    /// The declared edges wired again inside the active partition, containers and segments as they
    /// are (after a node fault or a clock jump closed sessions).
    pub(crate) async fn rewire_declared(&self, timeout: Duration) -> Result<()> {
        let desired = Desired {
            edges: &self.spec.edges,
            containers: plan::Containers::AsTheyAre,
            segments: plan::Segments::Keep,
            mode: self.mode,
        };
        self.converge_quietly(&desired, timeout).await?;
        Ok(())
    }

    fn wiring_timeout(
        &self,
        observed: &Observed,
        desired: &Desired,
        timeout: Duration,
        actions: &SessionActions,
    ) -> Error {
        let up = observed.running();
        let membership = &observed.plane.membership;
        let expected = desired
            .edges
            .iter()
            .filter(|e| {
                up[e.from]
                    && up[e.to]
                    && partition::shared_segment(membership, e.from, e.to).is_some()
            })
            .count();
        let running = up.iter().filter(|r| **r).count();
        Timeout {
            what: format!("{running} nodes to hold exactly the expected {expected} connection(s)"),
            timeout,
            last: actions.describe(|i| self.nodes[i].name().to_string()),
        }
        .into()
    }

    /// Reads containers, segments and attachments back from Docker. Of networks sharing a role, one
    /// is kept (`plan::pick_networks`) and membership is read from it alone; the others are reported as
    /// duplicates.
    pub(crate) async fn observe_docker(&self) -> Result<DockerView> {
        let filter = blueprint::cluster_filter(Some(self.name()));
        let (nets, containers) = tokio::try_join!(
            self.docker.labeled_networks(&filter),
            self.docker.labeled_containers(&filter)
        )?;
        let picked = pick(&nets, &containers);
        let mut view = DockerView {
            nodes: vec![None; self.nodes.len()],
            strays: Vec::new(),
            plane: DataPlane {
                segments: Default::default(),
                membership: vec![BTreeSet::new(); self.nodes.len()],
            },
            mode: CutMode::Drop,
            nets: Nets::default(),
            duplicates: picked.duplicates,
        };
        let mut by_network: HashMap<&str, SegmentId> = HashMap::new();
        for (role, info) in picked.kept {
            let net = Net::from(info);
            let NetRole::Segment(id) = role else {
                view.nets.control = Some(net);
                continue;
            };
            if info.labels.get(LABEL_MODE).map(String::as_str) == Some("silent") {
                view.mode = CutMode::Silent;
            }
            if let Some(subnet) = info.subnets.first() {
                view.plane.segments.insert(id, *subnet);
                view.nets.segments.insert(id, net);
                by_network.insert(&info.id, id);
            }
        }
        let control = view.nets.control.as_ref().map(|n| n.id.as_str());
        let index: HashMap<&str, &Node> = self
            .nodes
            .iter()
            .map(|n| (n.layout.container.as_str(), n))
            .collect();
        // Holds of declared nodes; a hold of a node no longer declared is a stray.
        let held = self.held_in(&containers);
        for c in &containers {
            let Some(node) = index.get(c.name.as_str()) else {
                let role = c.labels.get(LABEL_ROLE).map(String::as_str);
                let held_node = role == Some(ROLE_HOLD)
                    && c.labels
                        .get(LABEL_NODE)
                        .is_some_and(|n| held.contains(n.as_str()));
                // A throttle's record stays while its node is declared (`throttle --clear` takes it).
                let throttled_node = role == Some(blueprint::ROLE_THROTTLE)
                    && c.labels
                        .get(LABEL_NODE)
                        .is_some_and(|n| self.by_name.contains_key(n));
                if !held_node
                    && !throttled_node
                    && ![
                        Some(ROLE_META),
                        Some(ROLE_LOCK),
                        Some(blueprint::ROLE_AGENT),
                        Some(blueprint::ROLE_RELAY),
                    ]
                    .contains(&role)
                {
                    view.strays.push(c.name.clone());
                }
                continue;
            };
            let i = node.layout.index;
            // A node cut off from the kept control network cannot be reached: it is remade.
            let on_control = c
                .networks
                .iter()
                .any(|e| Some(e.network.as_str()) == control);
            view.nodes[i] = Some(NodeSeen {
                held: held.contains(node.name()),
                state: c.state,
                current: on_control
                    && c.labels.get(LABEL_CONFIG) == node.layout.labels.get(LABEL_CONFIG),
            });
            view.plane.membership[i] = c
                .networks
                .iter()
                .filter_map(|e| by_network.get(e.network.as_str()).copied())
                .collect();
        }
        Ok(view)
    }

    /// Removes networks that duplicate a kept one, detaching their containers first (by id).
    async fn remove_duplicates(&self, duplicates: &[(Net, Vec<String>)]) -> Result<()> {
        for (net, _) in duplicates {
            tracing::warn!("removing duplicate network `{}` ({})", net.name, net.id);
        }
        self.docker.detach(duplicates.to_vec(), &|_| {}).await?;
        for (net, _) in duplicates {
            self.docker.remove_network(net).await?;
        }
        Ok(())
    }

    /// The sessions the nodes listed as running report. A node found stopped meanwhile (see
    /// [`Cluster::peers_or_stopped`]) is marked exited in `nodes` and reports none.
    async fn sessions(
        &self,
        plane: &DataPlane,
        nodes: &mut [Option<NodeSeen>],
    ) -> Result<Sessions> {
        let ids: Vec<NodeId> = (0..self.nodes.len())
            .filter(|&i| is_running(&nodes[i]))
            .collect();
        let answers: Vec<Result<(NodeId, Option<Vec<PeerInfo>>)>> = stream::iter(
            ids.iter()
                .map(|&i| async move { Ok((i, self.peers_or_stopped(i).await?)) }),
        )
        .buffer_unordered(RPC_CONCURRENCY)
        .collect()
        .await;
        let mut peers = Vec::with_capacity(answers.len());
        for answer in answers {
            match answer? {
                (i, Some(list)) => peers.push((i, list)),
                (i, None) => {
                    tracing::info!("node `{}` has stopped", self.nodes[i].name());
                    if let Some(seen) = nodes[i].as_mut() {
                        seen.state = State::Exited;
                    }
                }
            }
        }
        Ok(plane.sessions(
            peers.iter().map(|(i, p)| (*i, p.as_slice())),
            |c| self.by_name.get(c).copied(),
            |i| self.nodes[i].name().to_string(),
        ))
    }

    /// Node `i`'s `getpeerinfo`, or None when its container turns out to have stopped. The engine
    /// lists a container it is killing as running until it has handled the exit, which is after the
    /// `die` event: a node that fails to answer, or takes longer than `SILENT_AFTER`, is looked up on
    /// the engine, whose inspect waits for an exit being handled to finish. A node whose container
    /// runs and that fails to answer fails the observation as before.
    async fn peers_or_stopped(&self, i: NodeId) -> Result<Option<Vec<PeerInfo>>> {
        let container = &self.nodes[i].layout.container;
        let stopped = async {
            tokio::time::sleep(SILENT_AFTER).await;
            if let Ok(false) = self.docker.is_running(container).await {
                return;
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            answer = self.nodes[i].rpc.get_peer_info() => match answer {
                Ok(list) => Ok(Some(list)),
                Err(_) if !self.docker.is_running(container).await? => Ok(None),
                Err(e) => Err(e.into()),
            },
            () = stopped => Ok(None),
        }
    }

    /// The sessions the given nodes report, read against `plane`.
    pub(crate) async fn sessions_of(&self, plane: &DataPlane, ids: &[NodeId]) -> Result<Sessions> {
        let peers = self.peers_of(ids).await?;
        Ok(plane.sessions(
            peers.iter().map(|(i, p)| (*i, p.as_slice())),
            |c| self.by_name.get(c).copied(),
            |i| self.nodes[i].name().to_string(),
        ))
    }

    /// `getpeerinfo` of the given nodes.
    async fn peers_of(&self, ids: &[NodeId]) -> Result<Vec<(NodeId, Vec<PeerInfo>)>> {
        let lists: Vec<Result<(NodeId, Vec<PeerInfo>)>> = stream::iter(
            ids.iter()
                .map(|&i| async move { Ok((i, self.nodes[i].rpc.get_peer_info().await?)) }),
        )
        .buffer_unordered(RPC_CONCURRENCY)
        .collect()
        .await;
        lists.into_iter().collect()
    }

    /// A fresh observation: containers, attachments and sessions.
    pub(crate) async fn observe(&self) -> Result<Observed> {
        let mut view = self.observe_docker().await?;
        let sessions = self.sessions(&view.plane, &mut view.nodes).await?;
        Ok(Observed {
            nodes: view.nodes,
            strays: view.strays,
            duplicates: view.duplicates.into_iter().map(|(n, _)| n.id).collect(),
            plane: view.plane,
            sessions,
            cut: self.cut_now().await?,
        })
    }

    /// Checks that the running nodes' peer graph is exactly the expected one. With `frozen_allowed`
    /// (silent cuts), frozen sessions of declared edges that cross the partition are tolerated.
    pub async fn verify(&self, frozen_allowed: bool) -> Result<()> {
        let observed = self.observe().await?;
        plan::verify(&self.spec.edges, &observed, frozen_allowed)
            .map_err(|m| Error::Graph(m.describe(|i| self.nodes[i].name().to_string())))
    }

    /// The graph the nodes should report now: declared edges whose ends share a segment.
    pub fn expected_graph(&self) -> Graph {
        partition::expected_graph(&self.spec.edges, &self.plane.membership, &self.cut)
    }

    /// The peer graph as the running nodes report it (frozen sessions included), with the peers no node
    /// name could be matched to.
    pub async fn peer_graph(&self) -> Result<(Graph, Vec<String>)> {
        let observed = self.observe().await?;
        let graph = observed
            .sessions
            .list
            .iter()
            .map(|s| (s.at, s.peer))
            .collect();
        Ok((graph, observed.sessions.unknown))
    }

    /// Session work: close what must close, dial what must be dialed.
    async fn act_sessions(&self, plane: &DataPlane, actions: &SessionActions) -> Result<()> {
        run_all(
            actions
                .drop
                .iter()
                .map(|&(at, id)| async move { Ok(self.nodes[at].rpc.disconnect_node(id).await?) }),
            RPC_CONCURRENCY,
        )
        .await?;
        run_all(
            actions.dial.iter().map(|&e| self.dial(plane, e)),
            RPC_CONCURRENCY,
        )
        .await
    }

    /// `addnode onetry` from `e.from` to `e.to`'s address on the lowest segment they share.
    pub(crate) async fn dial(&self, plane: &DataPlane, e: Edge) -> Result<()> {
        let node = &self.nodes[e.from];
        let addr = partition::shared_segment(&plane.membership, e.from, e.to)
            .and_then(|segment| plane.address(e.to, segment))
            .map(|ip| SocketAddr::new(ip.into(), blueprint::P2P_PORT))
            .ok_or_else(|| Error::NoPath {
                a: node.name().into(),
                b: self.nodes[e.to].name().into(),
            })?;
        Ok(node.rpc.add_node_onetry(addr).await?)
    }

    /// Segment moves: new segments, then detachments before attachments (so no two nodes share a
    /// segment the target does not allow, even briefly, when a segment is reused), then the segments no
    /// longer used. Every network is addressed by id.
    async fn move_nodes(
        &self,
        plane: &DataPlane,
        nets: &Nets,
        plan: &Plan,
        mode: CutMode,
    ) -> Result<()> {
        let docker = &self.docker;
        let name = self.spec.name.clone();
        let mut plane = plane.clone();
        let mut nets = nets.clone();
        for &segment in &plan.create {
            let mut labels = blueprint::cluster_labels(&name);
            labels.insert(LABEL_ROLE.into(), "segment".into());
            labels.insert(LABEL_SEGMENT.into(), segment.to_string());
            let word = if mode == CutMode::Silent {
                "silent"
            } else {
                "drop"
            };
            labels.insert(LABEL_MODE.into(), word.into());
            let (net, subnet) =
                create_network(docker, &segment_network(&name, segment), labels).await?;
            plane.segments.insert(segment, subnet);
            nets.segments.insert(segment, net);
        }
        let (this, plane, nets) = (self, &plane, &nets);
        let container = |node: NodeId| this.nodes[node].layout.container.as_str();
        let mut by_segment: BTreeMap<SegmentId, Vec<String>> = BTreeMap::new();
        for &(node, segment) in &plan.detach {
            by_segment
                .entry(segment)
                .or_default()
                .push(container(node).to_string());
        }
        let groups = by_segment
            .into_iter()
            .map(|(segment, members)| {
                Ok((nets.segment(&this.spec.name, segment)?.clone(), members))
            })
            .collect::<Result<Vec<_>>>()?;
        docker.detach(groups, &|_| {}).await?;
        run_all(
            plan.attach.iter().map(|&(node, segment)| async move {
                let ip = plane.address(node, segment).expect("segment exists");
                let net = nets.segment(&this.spec.name, segment)?;
                Ok(docker.connect_network(container(node), net, ip).await?)
            }),
            DOCKER_CONCURRENCY,
        )
        .await?;
        run_all(
            plan.remove.iter().map(|&segment| async move {
                let net = nets.segment(&this.spec.name, segment)?;
                Ok(docker.remove_network(net).await?)
            }),
            DOCKER_CONCURRENCY,
        )
        .await
    }
}

/// The networks the running ones among `containers` are attached to, as `Docker::detach` groups (by
/// network id): detaching them before removal keeps the engine's endpoint counts right.
pub(crate) fn running_groups(containers: &[&ContainerInfo]) -> Vec<(Net, Vec<String>)> {
    let mut by_network: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for c in containers.iter().filter(|c| c.state == State::Running) {
        for e in &c.networks {
            by_network.entry(&e.network).or_default().push(c.id.clone());
        }
    }
    by_network
        .into_iter()
        .map(|(id, members)| {
            let net = Net {
                id: id.to_string(),
                name: id.to_string(),
            };
            (net, members)
        })
        .collect()
}

/// A cluster's networks sorted out: the one kept per role, and the duplicates with their members.
pub(crate) struct Picked<'a> {
    pub(crate) kept: BTreeMap<NetRole, &'a NetworkInfo>,
    pub(crate) duplicates: Vec<(Net, Vec<String>)>,
}

/// Sorts a cluster's networks by role with `plan::pick_networks`, counting members from the containers'
/// attachments (by network id).
pub(crate) fn pick<'a>(nets: &'a [NetworkInfo], containers: &[ContainerInfo]) -> Picked<'a> {
    let mut attached: HashMap<&str, Vec<String>> = HashMap::new();
    for c in containers {
        for e in &c.networks {
            attached.entry(&e.network).or_default().push(c.id.clone());
        }
    }
    let ours: Vec<&NetworkInfo> = nets
        .iter()
        .filter(|n| network_role(&n.labels).is_some())
        .collect();
    let seen: Vec<NetworkSeen> = ours
        .iter()
        .map(|n| NetworkSeen {
            id: n.id.clone(),
            role: network_role(&n.labels).expect("filtered"),
            members: attached.get(n.id.as_str()).map_or(0, Vec::len),
        })
        .collect();
    let (kept, extra) = plan::pick_networks(&seen);
    Picked {
        kept: kept.into_iter().map(|(role, i)| (role, ours[i])).collect(),
        duplicates: extra
            .into_iter()
            .map(|i| {
                let net = Net::from(ours[i]);
                (
                    net,
                    attached.remove(ours[i].id.as_str()).unwrap_or_default(),
                )
            })
            .collect(),
    }
}

/// The role a cluster network's labels give it (None: not one of the data plane's or the control's).
fn network_role(labels: &HashMap<String, String>) -> Option<NetRole> {
    match labels.get(LABEL_ROLE).map(String::as_str) {
        Some("control") => Some(NetRole::Control),
        Some("data") => Some(NetRole::Segment(BASE)),
        Some("segment") => labels
            .get(LABEL_SEGMENT)
            .and_then(|s| s.parse().ok())
            .map(NetRole::Segment),
        _ => None,
    }
}

fn is_running(seen: &Option<NodeSeen>) -> bool {
    matches!(
        seen,
        Some(NodeSeen {
            state: State::Running,
            ..
        })
    )
}
