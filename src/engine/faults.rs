//! Node faults: stop, start, restart, kill, pause and unpause a node's container; after a node comes
//! back, readiness is awaited and the edges its segments allow are re-wired.

use std::time::Duration;

use crate::core::fault::Fault;

use crate::engine::cluster::{wait_ready, Cluster, Result};

impl Cluster {
    /// Applies `fault` to `node`. After start, restart and unpause, waits until the node answers RPC and
    /// re-wires its declared edges that the current segments allow.
    pub async fn fault(&self, node: &str, fault: Fault, timeout: Duration) -> Result<()> {
        let node = self.node(node)?;
        let container = node.layout.container.as_str();
        let docker = &self.docker;
        match fault {
            Fault::Stop => docker.stop(container, Duration::from_secs(10)).await?,
            Fault::Kill => docker.kill(container).await?,
            Fault::Pause => docker.pause(container).await?,
            Fault::Start => docker.start(container).await?,
            Fault::Restart => {
                docker.stop(container, Duration::from_secs(10)).await?;
                docker.start(container).await?;
            }
            Fault::Unpause => docker.unpause(container).await?,
        }
        if matches!(fault, Fault::Start | Fault::Restart | Fault::Unpause) {
            wait_ready(docker, node, timeout).await?;
            if self.spec.nodes[node.layout.index].wallet {
                node.rpc
                    .ensure_wallet()
                    .await
                    .map_err(|e| node.rpc_error(e))?;
            }
            self.rewire(self.mode, timeout).await?;
        }
        Ok(())
    }
}
