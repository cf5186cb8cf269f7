//! Node faults: stop, start, restart, kill, pause and unpause a node's container; after a node comes
//! back, readiness is awaited and the edges its segments allow are re-wired.

use std::time::Duration;

use crate::core::cluster::blueprint::{self, LABEL_FAULT, LABEL_NODE, LABEL_ROLE, ROLE_HOLD};
use crate::core::faults::node::Fault;
use crate::core::topology::NodeId;
use crate::core::verb::Verb;
use crate::engine::cluster::Cluster;
use crate::engine::error::Result;
use crate::engine::exec::Exec;

impl Cluster {
    /// Applies `fault` to `node`. After start, restart and unpause, waits until the node answers RPC and
    /// re-wires its declared edges that the current segments allow.
    pub async fn fault(&mut self, node: &str, fault: Fault, timeout: Duration) -> Result<()> {
        let verb = Verb::Fault {
            fault,
            node: node.into(),
        };
        self.exec(&verb, &Exec::with_timeout(timeout))
            .await
            .map(drop)
    }

    pub(crate) async fn fault_locked(
        &self,
        node: &str,
        fault: Fault,
        timeout: Duration,
    ) -> Result<()> {
        let node = self.node(node)?;
        let container = node.layout.container.as_str();
        let docker = &self.docker;
        // The hold goes first and comes last, so the operator never sees a node down without one; a
        // fault that fails takes back the hold it made.
        let held = match fault {
            Fault::Stop | Fault::Kill | Fault::Pause => {
                self.hold(node.layout.index, fault.name()).await?
            }
            Fault::Start | Fault::Restart | Fault::Unpause => false,
        };
        let done = match fault {
            Fault::Stop => docker.stop(container, Duration::from_secs(10)).await,
            Fault::Kill => docker.kill(container).await,
            Fault::Pause => docker.pause(container).await,
            Fault::Start => docker.start(container).await,
            Fault::Restart => match docker.stop(container, Duration::from_secs(10)).await {
                Ok(()) => docker.start(container).await,
                Err(e) => Err(e),
            },
            Fault::Unpause => docker.unpause(container).await,
        };
        if let Err(e) = done {
            if held {
                self.release(node.layout.index).await?;
            }
            return Err(e.into());
        }
        if !matches!(fault, Fault::Start | Fault::Restart | Fault::Unpause) {
            return Ok(());
        }
        self.release(node.layout.index).await?;
        self.wait_ready(node.layout.index, timeout).await?;
        // A container started afresh has a new network namespace: its link faults are set again.
        self.mend_links_locked().await?;
        // The node's declared edges come back inside the active partition, through the one loop.
        self.rewire_declared(timeout).await
    }

    /// Records that `node` is down on purpose (see `blueprint::ROLE_HOLD`), for `why` (a node fault's
    /// name, or `disk`); an existing hold stays. Says whether it made one.
    pub(crate) async fn hold(&self, node: NodeId, why: &str) -> Result<bool> {
        let name = blueprint::hold_container(self.name(), self.nodes[node].name());
        if self.docker.inspect_marker(&name).await?.is_some() {
            return Ok(false);
        }
        let mut labels = blueprint::cluster_labels(self.name());
        labels.insert(LABEL_ROLE.into(), ROLE_HOLD.into());
        labels.insert(LABEL_NODE.into(), self.nodes[node].name().into());
        labels.insert(LABEL_FAULT.into(), why.into());
        self.docker
            .create_marker(&name, &self.lock_image, &["true"], labels)
            .await?;
        Ok(true)
    }

    /// Takes the hold on `node` away, if there is one.
    pub(crate) async fn release(&self, node: NodeId) -> Result<()> {
        let name = blueprint::hold_container(self.name(), self.nodes[node].name());
        Ok(self.docker.remove_container(&name).await?)
    }
}
