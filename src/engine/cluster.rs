//! The cluster handle: a cluster as regbox knows it (declared spec, nodes, data plane) and the
//! operations on its running nodes — mining, sending, waiting, status, logs. Bringing it up, reading it
//! back and taking it down live in `lifecycle`, the reconcile loop in `reconcile`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use crate::core::cluster::blueprint::{self, segment_network, Networks};
use crate::core::cluster::manifest::ClusterSpec;
use crate::core::cluster::plan::State;
use crate::core::cluster::session::DataPlane;
use crate::core::faults::plane;
use crate::core::partition::{self, CutMode};
use crate::core::topology::NodeId;
pub use crate::core::verb::{Connection, NodeStatus};
use crate::engine::clock::unix_ms;
use crate::engine::docker::{ContainerInfo, Docker};
use crate::engine::error::{Error, Result};
use crate::engine::node::Node;
use crate::engine::rpc::{Relay, RpcClient, Transport};
use crate::engine::wait::{self, on_all, Met, WaitFor};
use futures::StreamExt;

/// What `status` reads (see [`Cluster::status_reading`]).
pub(crate) struct StatusReading {
    pub nodes: Vec<NodeStatus>,
    /// Every node's link faults, by name (a node without any is absent).
    pub links: crate::core::verb::Links,
    /// The nodes held down on purpose.
    pub held: Vec<String>,
}

/// A cluster as regbox knows it: the declared spec plus where each node lives.
pub struct Cluster {
    pub(crate) docker: Docker,
    pub(crate) spec: ClusterSpec,
    pub(crate) nodes: Vec<Node>,
    pub(crate) by_name: HashMap<String, NodeId>,
    /// The data-plane segments and each node's attachments, as last observed in Docker.
    pub(crate) plane: DataPlane,
    /// How the active partition cut sessions (kept on its segment networks' labels).
    pub(crate) mode: CutMode,
    /// Tear the cluster down when this handle is dropped without `down` or `keep`.
    pub(crate) armed: bool,
    /// The image the cluster's lock marker is made from (the metadata container's, by id).
    pub(crate) lock_image: String,
    /// The pairs packet-filter rules keep apart, as last observed.
    pub(crate) cut: partition::Cut,
    /// The RPC password every node accepts (for `connection`).
    pub(crate) password: String,
    /// Fault agents found dead and started again by this handle, not yet reported (a repair pass
    /// says so, then forgets them).
    pub(crate) revived: std::sync::Mutex<Vec<String>>,
    /// Across hosts, whether its overlays are encrypted (None on one engine).
    pub(crate) encrypted: Option<bool>,
    /// The init each image asked about carries, if any (`reconcile::init_of`).
    pub(crate) inits: std::sync::Mutex<HashMap<String, Option<String>>>,
}

impl Cluster {
    pub(crate) fn assemble(
        docker: Docker,
        spec: ClusterSpec,
        nets: &Networks,
        password: &str,
        relay: Option<SocketAddr>,
    ) -> Cluster {
        let transport = Transport::via(relay.map(|addr| Relay {
            addr,
            token: blueprint::relay_token(password),
        }));
        let spec_image = spec.nodes[0].image.clone();
        let nodes: Vec<Node> = blueprint::nodes(&spec, nets)
            .into_iter()
            .map(|l| {
                let addr = SocketAddr::new(l.control_ip.into(), blueprint::RPC_PORT);
                Node {
                    rpc: RpcClient::new(
                        transport.clone(),
                        &l.name,
                        addr,
                        blueprint::RPC_USER,
                        password,
                    ),
                    layout: l,
                }
            })
            .collect();
        let by_name = nodes
            .iter()
            .map(|n| (n.name().to_string(), n.layout.index))
            .collect();
        let plane = DataPlane {
            segments: BTreeMap::from([(partition::BASE, nets.data)]),
            membership: partition::healed(nodes.len()),
        };
        let cluster = Cluster {
            docker,
            spec,
            nodes,
            by_name,
            plane,
            mode: CutMode::Drop,
            cut: Default::default(),
            armed: false,
            lock_image: spec_image,
            password: password.to_string(),
            revived: Default::default(),
            encrypted: None,
            inits: Default::default(),
        };
        for i in 0..cluster.nodes.len() {
            cluster.place_node(i);
        }
        cluster
    }

    /// Across hosts, tells the facade which engine node `i`'s container is on (or is to be made on).
    pub(crate) fn place_node(&self, i: usize) {
        if let Some(host) = &self.spec.nodes[i].host {
            self.docker.place(&self.nodes[i].layout.container, host);
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
                hint: self.spec.node_names().hint(),
            })
    }

    /// How another program reaches `node`: its RPC URL with credentials, and its P2P address. Both
    /// are bridge addresses, reachable from the Docker host (and from containers on those networks);
    /// across hosts, overlay addresses, reached through the relay.
    pub fn connection(&self, node: &str) -> Result<Connection> {
        let n = self.node(node)?;
        let rpc = SocketAddr::new(n.layout.control_ip.into(), blueprint::RPC_PORT);
        Ok(Connection {
            node: n.name().to_string(),
            rpc_url: format!("http://{}:{}@{rpc}", blueprint::RPC_USER, self.password),
            rpc_user: blueprint::RPC_USER.to_string(),
            rpc_password: self.password.clone(),
            rpc_address: rpc,
            p2p_address: SocketAddr::new(n.layout.data_ip.into(), blueprint::P2P_PORT),
            rpc_proxy: n.rpc.transport().relay().map(|r| r.addr),
            rpc_proxy_auth: n
                .rpc
                .transport()
                .relay()
                .map(|r| format!("{}:{}", blueprint::RPC_USER, r.token)),
            overlay_encrypted: self.encrypted,
        })
    }

    /// The nodes named (all of them for `None`).
    pub fn pick(&self, names: Option<&[String]>) -> Result<Vec<Node>> {
        match names {
            None => Ok(self.nodes.clone()),
            Some(list) => list.iter().map(|n| self.node(n).cloned()).collect(),
        }
    }

    /// Mines `blocks` blocks on `node`, to its wallet if it has one, otherwise to a script unique to
    /// the node. Needs no wallet. Held to the limit of every `mine` ([`crate::core::verb::MAX_BLOCKS`]).
    pub async fn mine(&self, node: &str, blocks: u64) -> Result<Vec<String>> {
        let verb = crate::core::verb::Verb::Mine {
            node: node.to_string(),
            blocks,
        };
        verb.check()?;
        let node = self.node(node)?;
        let wallet = self.spec.nodes[node.layout.index].wallet;
        Ok(node.mine(blocks, wallet).await?)
    }

    /// Waits until `what` holds on the nodes it names (every node when it names none).
    pub async fn wait(&self, what: &WaitFor, timeout: Duration) -> Result<Met> {
        let nodes = self.pick(what.nodes().as_deref())?;
        wait::wait_for(&nodes, what, timeout).await
    }

    /// Waits until every node has the same best block; returns its hash.
    pub async fn sync_blocks(&self, timeout: Duration) -> Result<String> {
        wait::sync_blocks(&self.nodes, timeout).await
    }

    /// Waits until every node's mempool holds the same transactions; returns how many.
    pub async fn sync_mempools(&self, timeout: Duration) -> Result<usize> {
        wait::sync_mempools(&self.nodes, timeout).await
    }

    /// Sends `amount_sat` from `from`'s wallet to a new address of `to`'s wallet; returns the txid.
    /// Held to the limits of every `send` (more than 0, at most 21 million BTC).
    pub async fn send(&self, from: &str, to: &str, amount_sat: u64) -> Result<String> {
        let verb = crate::core::verb::Verb::Send {
            from: from.to_string(),
            to: to.to_string(),
            amount_sat,
        };
        verb.check()?;
        let (from, to) = (self.node(from)?, self.node(to)?);
        let address = to.rpc.get_new_address().await?;
        Ok(from.rpc.send_to_address(&address, amount_sat).await?)
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

    /// A node's console output from `since` on, to the second (the engine times each line as it
    /// arrives; bitcoind's own timestamps are in the lines).
    pub async fn logs_since(&self, node: &str, since: std::time::SystemTime) -> Result<String> {
        let container = &self.node(node)?.layout.container;
        let secs = since
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let since = i32::try_from(secs).unwrap_or(i32::MAX);
        Ok(self.docker.logs_since(container, since).await?)
    }

    /// Each node's container state, chain tip and peers.
    pub async fn status(&self) -> Result<Vec<NodeStatus>> {
        Ok(self.status_reading().await?.nodes)
    }

    /// What `status` reads: each node's status, and on the way the link faults by node and the nodes
    /// held on purpose (the operator's page draws all three).
    pub(crate) async fn status_reading(&self) -> Result<StatusReading> {
        let containers: HashMap<String, ContainerInfo> = self
            .docker
            .labeled_containers(&blueprint::cluster_filter(Some(self.name())))
            .await?
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect();
        let plane = self.fault_plane().await?;
        let mut status = on_all(&self.nodes, |n| {
            let container = containers.get(&n.layout.container);
            async move { Ok::<_, Error>(self.node_status(n, container).await) }
        })
        .await?;
        for (&i, f) in &plane {
            status[i].links = plane::describe(f, |p| self.nodes[p].name().to_string());
        }
        let listed: Vec<ContainerInfo> = containers.into_values().collect();
        for (i, limits) in self.throttles_in(&listed) {
            status[i].throttle = Some(limits);
        }
        Ok(StatusReading {
            nodes: status,
            links: self.links_of(&plane),
            held: self
                .held_in(&listed)
                .into_iter()
                .map(str::to_string)
                .collect(),
        })
    }

    /// The nodes held down on purpose, by name.
    pub(crate) async fn held(&self) -> Result<Vec<String>> {
        let filter = blueprint::cluster_filter(Some(self.name()));
        let listed = self.docker.labeled_containers(&filter).await?;
        Ok(self
            .held_in(&listed)
            .into_iter()
            .map(str::to_string)
            .collect())
    }

    /// The declared nodes that `containers` (the cluster's) hold down on purpose, by name.
    pub(crate) fn held_in<'a>(&self, containers: &'a [ContainerInfo]) -> BTreeSet<&'a str> {
        containers
            .iter()
            .filter(|c| {
                c.labels.get(blueprint::LABEL_ROLE).map(String::as_str)
                    == Some(blueprint::ROLE_HOLD)
            })
            .filter_map(|c| c.labels.get(blueprint::LABEL_NODE).map(String::as_str))
            .filter(|n| self.by_name.contains_key(*n))
            .collect()
    }

    async fn node_status(&self, n: &Node, container: Option<&ContainerInfo>) -> NodeStatus {
        let state = container.map_or(State::Unknown, |c| c.state);
        let mut status = NodeStatus {
            index: n.layout.index,
            name: n.name().to_string(),
            image: container.map_or(n.layout.image.clone(), |c| c.image.clone()),
            state,
            host: self.spec.nodes[n.layout.index].host.clone(),
            control_ip: n.layout.control_ip.to_string(),
            data_ip: n.layout.data_ip.to_string(),
            height: None,
            best_hash: None,
            peers: Vec::new(),
            segments: self.segments_of(n.layout.index),
            error: None,
            links: String::new(),
            clock: None,
            drift: None,
            overlay_encrypted: self.encrypted,
            throttle: None,
        };
        if state != State::Running {
            if state != State::Unknown {
                status.set_clock(self.read_clock(&n.layout).await, unix_ms());
            }
            status.error = Some(format!("container is {}", state.word()));
            if n.layout.disk.is_some() && self.stopped_for_space(&n.layout).await {
                status.error = Some(format!(
                    "container is {}: bitcoind stopped for want of disk space (a disk fault; `disk {} --free`, then `start`)",
                    state.word(),
                    n.name()
                ));
            }
            return status;
        }
        let (clock, answers) = tokio::join!(self.read_clock(&n.layout), async {
            tokio::try_join!(n.rpc.get_tip(), n.rpc.get_peer_info())
        });
        status.set_clock(clock, unix_ms());
        match answers {
            Ok((tip, peers)) => {
                status.height = Some(tip.height);
                status.best_hash = Some(tip.hash);
                let mut names: Vec<String> = peers
                    .iter()
                    .map(|p| {
                        p.ua_comments()
                            .find_map(|c| self.by_name.get(c))
                            .map_or_else(|| p.addr.clone(), |&i| self.nodes[i].name().into())
                    })
                    .collect();
                names.sort();
                status.peers = names;
            }
            Err(e) => status.error = Some(e.failure.to_string()),
        }
        status
    }

    /// Whether this process reaches the nodes' RPC: a TCP connection to any node opens within a moment
    /// (not from another machine, or from a container on no control network).
    pub async fn reachable(&self) -> bool {
        use futures::stream::{self, StreamExt};
        let mut tries = stream::iter(
            self.nodes
                .iter()
                .map(|n| n.rpc.reachable(std::time::Duration::from_millis(300))),
        )
        .buffer_unordered(crate::engine::wait::RPC_CONCURRENCY);
        while let Some(ok) = tries.next().await {
            if ok {
                return true;
            }
        }
        false
    }

    /// Each node's segments, by network name.
    pub fn segments_of(&self, node: NodeId) -> Vec<String> {
        self.plane.membership[node]
            .iter()
            .map(|&s| segment_network(self.name(), s))
            .collect()
    }
}
