//! One repair pass, the operator's unit of work: under the cluster's lock, observe, find the drift from
//! the declared state (nodes held on purpose and the active partition kept), converge through the one
//! loop when there is any, mend link faults a restarted node lost, and say what changed.

use std::time::Duration;

use serde::Serialize;

use crate::core::cluster::plan::{self, Containers, Desired, Segments};
use crate::engine::cluster::Cluster;
use crate::engine::error::Result;

/// What a repair pass found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Repair {
    /// One line per change, nodes by name (empty: the cluster was as declared).
    pub changes: Vec<String>,
    /// Nodes whose container was started (or made) again.
    pub restarted: Vec<String>,
    /// Nodes held down on purpose, left as they are.
    pub held: Vec<String>,
}

impl Cluster {
    /// Brings the cluster back to its declared state, leaving nodes held on purpose (`regbox stop`,
    /// `kill`, `pause`) as they are and keeping the active partition: dead nodes start, dropped edges
    /// are dialed, unexpected sessions closed, and link faults set again where a node lost them.
    pub async fn repair(&mut self, timeout: Duration) -> Result<Repair> {
        self.repair_waiting(timeout, crate::engine::lock::DEFAULT_WAIT)
            .await
    }

    /// `repair` that waits up to `wait` while another regbox changes the cluster.
    pub async fn repair_waiting(&mut self, timeout: Duration, wait: Duration) -> Result<Repair> {
        self.repair_after(timeout, wait, &[]).await
    }

    /// `repair_waiting` after the engine told of the death of the containers `died` (a `die` or
    /// `oom` event). The engine sends the event before it has handled the exit, and lists the
    /// container as running until then; an inspect waits for that, so their exits are awaited while
    /// the lock is taken, and the pass sees them stopped instead of asking a dead node.
    pub(crate) async fn repair_after(
        &mut self,
        timeout: Duration,
        wait: Duration,
        died: &[String],
    ) -> Result<Repair> {
        let settle = futures::future::join_all(died.iter().map(|c| self.docker.is_running(c)));
        let (guard, _) = tokio::join!(self.lock("repair", wait), settle);
        let guard = guard?;
        let result = self.repair_locked(timeout).await;
        guard.release().await;
        result
    }

    /// Attaches `container` to the cluster's control network (a regbox running in it then reaches the
    /// nodes' RPC); one attached already stays as it is.
    pub async fn attach(&self, container: &str) -> Result<()> {
        let view = self.observe_docker().await?;
        let control =
            view.nets
                .control
                .ok_or_else(|| crate::engine::error::Error::MissingNetwork {
                    cluster: self.name().to_string(),
                    network: crate::core::cluster::blueprint::control_network(self.name()),
                })?;
        Ok(self.docker.join_network(container, &control).await?)
    }

    async fn repair_locked(&mut self, timeout: Duration) -> Result<Repair> {
        let edges = self.spec.edges.clone();
        let desired = Desired {
            edges: &edges,
            containers: Containers::Repair,
            segments: Segments::Keep,
            mode: self.mode,
        };
        let observed = self.observe().await?;
        let drift = plan::drift(&desired, &observed);
        let name = |i: usize| self.nodes[i].name().to_string();
        // A dead agent is started again wherever the plane is read (`open`, `observe`); the new
        // one restores every node from its record before it answers.
        let agents = self.take_revived_agents().into_iter();
        let mut out = Repair {
            changes: (agents.map(|a| format!("start the fault agent `{a}` again")))
                .chain(drift.describe(name))
                .collect(),
            restarted: (drift.containers.start.iter())
                .chain(&drift.containers.create)
                .map(|&i| name(i))
                .collect(),
            held: (observed.nodes.iter().enumerate())
                .filter(|(_, n)| n.is_some_and(|n| n.held))
                .map(|(i, _)| name(i))
                .collect(),
        };
        if !drift.is_empty() {
            // Cut pairs stay undialed while a restarted node has no rules yet: the plan reads the cuts
            // from the agent, not from the node.
            self.plane = self.converge_quietly(&desired, timeout).await?;
        }
        let mended = self.mend_links_locked().await?;
        out.changes.extend(
            mended
                .iter()
                .map(|&i| format!("set the link faults of {} again", name(i))),
        );
        Ok(out)
    }
}
