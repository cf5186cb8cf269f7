//! Partitions and heal as commands: the desired segments handed to the reconcile loop, the result
//! verified and reported; `heal --sync` also waits for one tip and measures each node's reorg.

use std::time::Duration;

use crate::core::cluster::blueprint::segment_network;
use crate::core::cluster::plan::{Containers, Desired, Segments};
use crate::core::faults::plane::{self, Block};
use crate::core::partition::{self, CutMode, PartitionKind, SegmentId, Via};
pub use crate::core::verb::{HealReport, NodeReorg, PartitionReport, SegmentReport};
use crate::core::verb::{Report, Verb};
use crate::engine::cluster::Cluster;
use crate::engine::error::{Error, Result};
use crate::engine::exec::Exec;
use crate::engine::progress::Progress;
use crate::engine::wait::{self, on_all};

impl Cluster {
    /// Brings the cluster to `segments` under `mode` with containers as they are, through the one loop.
    async fn converge_segments(
        &mut self,
        segments: Segments<'_>,
        mode: CutMode,
        timeout: Duration,
    ) -> Result<()> {
        let edges = self.spec.edges.clone();
        let desired = Desired {
            edges: &edges,
            containers: Containers::AsTheyAre,
            segments,
            mode,
        };
        self.plane = self.converge_quietly(&desired, timeout).await?;
        self.cut = self.cut_now().await?;
        // The segments' labels keep the mode they were made with; this run's mode is the one in force.
        self.mode = if self.plane.segments.len() > 1 {
            mode
        } else {
            CutMode::Drop
        };
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
        self.partition_via(kind, mode, Via::Segments, false, timeout)
            .await
    }

    /// `partition` made `via` segments or firewall rules; with rules, `reset` answers stopped TCP packets
    /// with a reset instead of dropping them.
    pub async fn partition_via(
        &mut self,
        kind: &PartitionKind,
        mode: CutMode,
        via: Via,
        reset: bool,
        timeout: Duration,
    ) -> Result<PartitionReport> {
        let verb = Verb::Partition {
            kind: kind.clone(),
            via,
            mode,
            reset,
            timeout: Some(timeout),
        };
        self.exec_for(verb, &Exec::default(), Report::into_partition)
            .await
    }

    /// `partition_via` under the lock the executor holds.
    pub(crate) async fn partition_locked(
        &mut self,
        kind: &PartitionKind,
        mode: CutMode,
        via: Via,
        reset: bool,
        timeout: Duration,
    ) -> Result<PartitionReport> {
        let partition = partition::build(&self.spec, kind)?;
        let result = match via {
            Via::Segments => self.split(kind, &partition, mode, timeout).await,
            Via::Firewall => {
                let block = match (reset, mode) {
                    (true, _) => Block::Reset,
                    (false, CutMode::Silent) => Block::Silent,
                    (false, CutMode::Drop) => Block::Drop,
                };
                self.split_by_rules(&partition, mode, block, timeout).await
            }
        };
        let seed = match kind {
            PartitionKind::RandomHalves { seed } => Some(*seed),
            _ => None,
        };
        result.map(|report| PartitionReport { seed, ..report })
    }

    async fn split(
        &mut self,
        kind: &PartitionKind,
        partition: &partition::Partition,
        mode: CutMode,
        timeout: Duration,
    ) -> Result<PartitionReport> {
        let mut groups = partition.describe(&self.spec);
        if groups.len() > 200 {
            groups = format!("{} into {} groups", kind.name(), partition.groups.len());
        }
        tracing::info!("partition {groups}");
        // A partition by rules gives way to this one.
        self.clear_cuts_locked().await?;
        self.converge_segments(Segments::Split(partition), mode, timeout)
            .await?;
        self.verify(mode == CutMode::Silent).await?;
        Ok(self.report())
    }

    /// The partition as rules: every pair sharing no group is cut both ways (replacing every cut), then
    /// every node goes back to the base segment and the sessions are settled as `mode` says.
    async fn split_by_rules(
        &mut self,
        partition: &partition::Partition,
        mode: CutMode,
        block: Block,
        timeout: Duration,
    ) -> Result<PartitionReport> {
        let n = self.nodes.len();
        let cut = partition::cut_pairs(partition, n);
        tracing::info!("partition by rules: {} pairs cut", cut.len());
        self.change_plane_locked(&Progress::default(), true, |plane| {
            let all: Vec<usize> = (0..n).collect();
            plane::clear(plane, &all, false, true);
            for &(a, b) in &cut {
                plane::cut(plane, &[a], &[b], true, block);
            }
            all
        })
        .await?;
        self.converge_segments(Segments::Heal, mode, timeout)
            .await?;
        self.mode = mode;
        self.verify(mode == CutMode::Silent).await?;
        let mut report = self.report();
        report.via = Via::Firewall;
        report.segments = partition
            .groups
            .iter()
            .enumerate()
            .map(|(id, g)| SegmentReport {
                id: id as SegmentId,
                network: "firewall".into(),
                subnet: "-".into(),
                members: g
                    .iter()
                    .map(|&i| self.nodes[i].name().to_string())
                    .collect(),
            })
            .collect();
        Ok(report)
    }

    /// Every node back on the base segment with its original address, partition segments removed,
    /// declared edges re-wired and verified. Frozen sessions of a silent cut resume.
    pub async fn heal(&mut self, timeout: Duration) -> Result<PartitionReport> {
        let verb = Verb::Heal {
            sync: false,
            timeout: Some(timeout),
        };
        self.exec_for(verb, &Exec::default(), Report::into_partition)
            .await
    }

    pub(crate) async fn heal_locked(&mut self, timeout: Duration) -> Result<PartitionReport> {
        // Cuts by rule go first, so the re-wiring below finds the sessions' paths open.
        self.clear_cuts_locked().await?;
        self.converge_segments(Segments::Heal, CutMode::Drop, timeout)
            .await?;
        self.verify(false).await?;
        Ok(self.report())
    }

    /// `heal`, then waits until every node is on the same best block, checks that it is the most-work
    /// tip any node had, and reports how deep each node reorganised.
    pub async fn heal_and_sync(&mut self, timeout: Duration) -> Result<HealReport> {
        let verb = Verb::Heal {
            sync: true,
            timeout: Some(timeout),
        };
        self.exec_for(verb, &Exec::default(), Report::into_heal)
            .await
    }

    pub(crate) async fn heal_and_sync_locked(&mut self, timeout: Duration) -> Result<HealReport> {
        let before = on_all(&self.nodes, |n| async move {
            let hash = n.rpc.get_best_block_hash().await?;
            Ok::<_, Error>(n.rpc.get_block_header(&hash).await?)
        })
        .await?;
        self.heal_locked(timeout).await?;
        let tip = self.sync_blocks(timeout).await?;
        let first = &self.nodes[0];
        let header = first.rpc.get_block_header(&tip).await?;
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
                let depth = n.reorg_depth(&old.hash).await?;
                Ok::<_, Error>(NodeReorg {
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

    /// The segments, their members and the expected graph.
    pub fn report(&self) -> PartitionReport {
        let segments = self
            .plane
            .segments
            .iter()
            .map(|(&id, subnet)| SegmentReport {
                id,
                network: segment_network(self.name(), id),
                subnet: subnet.to_string(),
                members: self
                    .plane
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
            via: Via::Segments,
            segments,
            graph,
            seed: None,
        }
    }
}
