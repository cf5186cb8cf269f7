//! The cluster handle: a cluster as regbox knows it (declared spec, nodes, data plane), read back from
//! Docker by `open`, with the operations on running nodes — mining, sending, waiting, status, logs.
//! Bringing it up and down lives in `lifecycle`, the reconcile loop in `reconcile`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;

use crate::core::blueprint::{
    self, segment_network, Networks, LABEL_ROLE, LABEL_RPC_PASSWORD, LABEL_SPEC, ROLE_META,
};
use crate::core::manifest::ClusterSpec;
use crate::core::names::NodeNames;
use crate::core::partition::{self, CutMode};
use crate::core::plan::State;
use crate::core::session::DataPlane;
use crate::core::topology::NodeId;
use crate::engine::docker::{ContainerInfo, Docker};
pub use crate::engine::error::{Error, Result};
pub use crate::engine::lifecycle::{down_named, list, ClusterSummary, DownReport, UpOptions};
use crate::engine::lifecycle::{resolve_cluster, rpcauth_for};
pub use crate::engine::node::Node;
use crate::engine::progress::Progress;
use crate::engine::rpc::{RpcClient, Transport};
use crate::engine::wait::{self, on_all, Met, WaitFor};

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

impl Cluster {
    /// Reads an existing cluster back from Docker. With no name, the only cluster there is.
    pub async fn open(name: Option<&str>) -> Result<Cluster> {
        let docker = Docker::connect().await?;
        let name = resolve_cluster(&docker, name).await?;
        let filter = blueprint::cluster_filter(Some(&name));
        let containers = docker.labeled_containers(&filter).await?;
        let damaged = || Error::Damaged(name.clone());
        let meta = containers
            .iter()
            .find(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some(ROLE_META))
            .ok_or_else(damaged)?;
        let spec: ClusterSpec = meta
            .labels
            .get(LABEL_SPEC)
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(damaged)?;
        let password = meta.labels.get(LABEL_RPC_PASSWORD).ok_or_else(damaged)?;
        let nets = docker.labeled_networks(&filter).await?;
        let subnet = |role: &str| {
            nets.iter()
                .find(|n| n.labels.get(LABEL_ROLE).map(String::as_str) == Some(role))
                .and_then(|n| n.subnets.first().copied())
                .ok_or_else(damaged)
        };
        let networks = Networks {
            control: subnet("control")?,
            data: subnet("data")?,
            rpcauth: rpcauth_for(password),
        };
        let mut cluster = Cluster::assemble(docker, spec, &networks, password);
        let view = cluster.observe_docker().await?;
        cluster.plane = view.plane;
        cluster.mode = view.mode;
        Ok(cluster)
    }

    pub(crate) fn assemble(
        docker: Docker,
        spec: ClusterSpec,
        nets: &Networks,
        password: &str,
    ) -> Cluster {
        let transport = Transport::default();
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
        Cluster {
            docker,
            spec,
            nodes,
            by_name,
            plane,
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
                hint: NodeNames::of(&self.spec).hint(),
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
    /// the node. Needs no wallet.
    pub async fn mine(&self, node: &str, blocks: u64) -> Result<Vec<String>> {
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
    pub async fn send(&self, from: &str, to: &str, amount_sat: u64) -> Result<String> {
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

    /// Each node's container state, chain tip and peers.
    pub async fn status(&self) -> Result<Vec<NodeStatus>> {
        let containers: HashMap<String, ContainerInfo> = self
            .docker
            .labeled_containers(&blueprint::cluster_filter(Some(self.name())))
            .await?
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect();
        on_all(&self.nodes, |n| {
            let container = containers.get(&n.layout.container);
            async move { Ok::<_, Error>(self.node_status(n, container).await) }
        })
        .await
    }

    async fn node_status(&self, n: &Node, container: Option<&ContainerInfo>) -> NodeStatus {
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
            status.error = Some(format!("container is {}", state.word()));
            return status;
        }
        match tokio::try_join!(n.rpc.get_tip(), n.rpc.get_peer_info()) {
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

    /// Each node's segments, by network name.
    pub fn segments_of(&self, node: NodeId) -> Vec<String> {
        self.plane.membership[node]
            .iter()
            .map(|&s| segment_network(self.name(), s))
            .collect()
    }

    /// Removes every container, volume and network of the cluster.
    pub async fn down(mut self, progress: &Progress) -> Result<DownReport> {
        self.armed = false;
        crate::engine::lifecycle::down(&self.docker, &self.spec.name, progress).await
    }

    /// Lets the cluster outlive this handle (no teardown on drop).
    pub fn keep(mut self) {
        self.armed = false;
    }
}
