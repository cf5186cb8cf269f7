//! Partitions carried out on Docker: segment networks created and removed, containers moved between
//! them with their static addresses, sessions re-wired and the result verified; and heal, which brings
//! every node back to the base segment with its original address.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde::Serialize;

use crate::core::blueprint::{self, segment_network, LABEL_MODE, LABEL_ROLE, LABEL_SEGMENT};
use crate::core::partition::{self, CutMode, PartitionKind, Plan, SegmentId};
use crate::core::topology::NodeId;
use crate::engine::cluster::{create_network, run_all, Cluster, Error, Result, DOCKER_CONCURRENCY};
use crate::engine::wait::{self, on_all};

/// The data plane after a partition or heal, as `partition` and `status` report it.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionReport {
    pub mode: CutMode,
    pub segments: Vec<SegmentReport>,
    /// The peer graph the nodes were verified to hold (`a-b` by name).
    pub graph: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentReport {
    pub id: SegmentId,
    pub network: String,
    pub subnet: String,
    pub members: Vec<String>,
}

/// What `heal --sync` found: where every node ended and how deep it reorganised.
#[derive(Debug, Clone, Serialize)]
pub struct HealReport {
    pub tip: String,
    pub height: u64,
    pub nodes: Vec<NodeReorg>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeReorg {
    pub node: String,
    /// The tip the node had before the heal.
    pub old_tip: String,
    pub old_height: u64,
    /// How many of its blocks left the active chain.
    pub reorg_depth: u64,
}

impl Cluster {
    /// Reads the segments and each node's attachments back from Docker.
    pub(crate) async fn observe(&mut self) -> Result<()> {
        let (nets, containers) = tokio::try_join!(
            self.docker.cluster_networks(Some(self.name())),
            self.docker.cluster_containers(Some(self.name()))
        )?;
        let mut by_network: HashMap<&str, SegmentId> = HashMap::new();
        self.segments.clear();
        self.mode = CutMode::Drop;
        for net in &nets {
            let id = match net.labels.get(LABEL_ROLE).map(String::as_str) {
                Some("data") => 0,
                Some("segment") => match net.labels.get(LABEL_SEGMENT).and_then(|s| s.parse().ok())
                {
                    Some(id) => id,
                    None => continue,
                },
                _ => continue,
            };
            if net.labels.get(LABEL_MODE).map(String::as_str) == Some("silent") {
                self.mode = CutMode::Silent;
            }
            if let Some(subnet) = net.subnets.first() {
                self.segments.insert(id, *subnet);
                by_network.insert(&net.name, id);
            }
        }
        let attached: HashMap<&str, BTreeSet<SegmentId>> = containers
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.networks
                        .keys()
                        .filter_map(|n| by_network.get(n.as_str()).copied())
                        .collect(),
                )
            })
            .collect();
        self.membership = self
            .nodes
            .iter()
            .map(|n| {
                attached
                    .get(n.layout.container.as_str())
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        Ok(())
    }

    /// Splits the data plane as `kind` says (replacing any active partition with only the moves needed),
    /// re-wires, and verifies the peer graph. Invalid input changes nothing.
    pub async fn partition(
        &mut self,
        kind: &PartitionKind,
        mode: CutMode,
        timeout: Duration,
    ) -> Result<PartitionReport> {
        let partition = partition::build(&self.spec, kind)?;
        self.observe().await?;
        let plan = partition::plan(&self.membership, Some(&partition));
        let mut groups = partition.describe(&self.spec);
        if groups.len() > 200 {
            groups = format!("{} into {} groups", kind.name(), partition.groups.len());
        }
        tracing::info!(
            "partition {groups}: {} attach, {} detach",
            plan.attach.len(),
            plan.detach.len()
        );
        self.apply(&plan, mode, timeout).await?;
        self.verify(mode == CutMode::Silent).await?;
        Ok(self.report())
    }

    /// Every node back on the base segment with its original address, partition segments removed,
    /// declared edges re-wired and verified. Frozen sessions of a silent cut resume.
    pub async fn heal(&mut self, timeout: Duration) -> Result<PartitionReport> {
        self.observe().await?;
        let plan = partition::plan(&self.membership, None);
        self.apply(&plan, CutMode::Drop, timeout).await?;
        self.verify(false).await?;
        Ok(self.report())
    }

    /// `heal`, then waits until every node is on the same best block, checks that it is the most-work
    /// tip any node had, and reports how deep each node reorganised.
    pub async fn heal_and_sync(&mut self, timeout: Duration) -> Result<HealReport> {
        let before = on_all(&self.nodes, |n| async move {
            let hash = n
                .rpc
                .get_best_block_hash()
                .await
                .map_err(|e| n.rpc_error(e))?;
            n.rpc
                .get_block_header(&hash)
                .await
                .map_err(|e| n.rpc_error(e))
        })
        .await?;
        self.heal(timeout).await?;
        let tip = self.sync_blocks(timeout).await?;
        let first = &self.nodes[0];
        let header = first
            .rpc
            .get_block_header(&tip)
            .await
            .map_err(|e| first.rpc_error(e))?;
        if let Some(better) = before.iter().find(|b| b.chainwork > header.chainwork) {
            return Err(Error::Graph(format!(
                "the nodes agreed on {} (height {}) although {} (height {}) has more work",
                wait::short(&tip),
                header.height,
                wait::short(&better.hash),
                better.height
            )));
        }
        let nodes = on_all(&self.nodes, |n| {
            let old = before[n.layout.index].clone();
            async move {
                // Walk back from the old tip until a block that is still in the active chain.
                let mut depth = 0;
                let mut cursor = n
                    .rpc
                    .get_block_header(&old.hash)
                    .await
                    .map_err(|e| n.rpc_error(e))?;
                while cursor.confirmations < 1 {
                    depth += 1;
                    let Some(prev) = cursor.previousblockhash.clone() else {
                        break;
                    };
                    cursor = n
                        .rpc
                        .get_block_header(&prev)
                        .await
                        .map_err(|e| n.rpc_error(e))?;
                }
                Ok(NodeReorg {
                    node: n.name().to_string(),
                    old_tip: old.hash,
                    old_height: old.height,
                    reorg_depth: depth,
                })
            }
        })
        .await?;
        Ok(HealReport {
            tip,
            height: header.height,
            nodes,
        })
    }

    /// Carries out a plan: new segments, then detachments before attachments (so no two nodes share a
    /// segment the target does not allow, even briefly, when a segment is reused), then the segments no
    /// longer used; then re-wires.
    async fn apply(&mut self, plan: &Plan, mode: CutMode, timeout: Duration) -> Result<()> {
        self.move_nodes(plan, mode).await?;
        self.rewire(mode, timeout).await
    }

    /// The Docker half of `apply`: segment networks and attachments, no sessions.
    pub(crate) async fn move_nodes(&mut self, plan: &Plan, mode: CutMode) -> Result<()> {
        let docker = &self.docker;
        let name = self.spec.name.clone();
        for &segment in &plan.create {
            let mut labels = blueprint::cluster_labels(&name);
            labels.insert(LABEL_ROLE.into(), "segment".into());
            labels.insert(LABEL_SEGMENT.into(), segment.to_string());
            labels.insert(
                LABEL_MODE.into(),
                if mode == CutMode::Silent {
                    "silent"
                } else {
                    "drop"
                }
                .into(),
            );
            let subnet = create_network(docker, &segment_network(&name, segment), labels).await?;
            self.segments.insert(segment, subnet);
        }
        let this = &*self;
        let container = |node: NodeId| this.nodes[node].layout.container.as_str();
        let network = |segment: SegmentId| segment_network(&name, segment);
        run_all(
            plan.detach.iter().map(|&(node, segment)| async move {
                Ok(docker
                    .disconnect_network(container(node), &network(segment))
                    .await?)
            }),
            DOCKER_CONCURRENCY,
        )
        .await?;
        run_all(
            plan.attach.iter().map(|&(node, segment)| async move {
                let ip = this.address(node, segment).expect("segment exists");
                Ok(docker
                    .connect_network(container(node), &network(segment), ip)
                    .await?)
            }),
            DOCKER_CONCURRENCY,
        )
        .await?;
        run_all(
            plan.remove
                .iter()
                .map(|&segment| async move { Ok(docker.remove_network(&network(segment)).await?) }),
            DOCKER_CONCURRENCY,
        )
        .await?;
        for segment in &plan.remove {
            self.segments.remove(segment);
        }
        self.membership = plan.target.clone();
        self.mode = if self.segments.len() > 1 {
            mode
        } else {
            CutMode::Drop
        };
        Ok(())
    }

    /// The segments, their members and the expected graph.
    pub fn report(&self) -> PartitionReport {
        let segments = self
            .segments
            .iter()
            .map(|(&id, subnet)| SegmentReport {
                id,
                network: segment_network(self.name(), id),
                subnet: subnet.to_string(),
                members: self
                    .membership
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.contains(&id))
                    .map(|(i, _)| self.nodes[i].name().to_string())
                    .collect(),
            })
            .collect();
        let graph = self
            .expected_graph()
            .edges()
            .map(|(a, b)| format!("{}-{}", self.nodes[a].name(), self.nodes[b].name()))
            .collect();
        PartitionReport {
            mode: self.mode,
            segments,
            graph,
        }
    }

    /// Each node's segments, by network name.
    pub fn segments_of(&self, node: NodeId) -> Vec<String> {
        self.membership[node]
            .iter()
            .map(|&s| segment_network(self.name(), s))
            .collect()
    }
}
