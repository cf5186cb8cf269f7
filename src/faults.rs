//! Node faults: stop, start, restart, kill, pause and unpause a node's container; after a node comes
//! back, readiness is awaited and the edges its segments allow are re-wired.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cluster::{wait_ready, Cluster, Result};

/// What can happen to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// SIGTERM, then SIGKILL after 10 s; bitcoind shuts down cleanly.
    Stop,
    Start,
    /// Stop, then start.
    Restart,
    /// SIGKILL: bitcoind gets no chance to flush.
    Kill,
    /// Freezes every process of the node (its sessions freeze, its peers keep listing it).
    Pause,
    Unpause,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::Stop,
        Fault::Start,
        Fault::Restart,
        Fault::Kill,
        Fault::Pause,
        Fault::Unpause,
    ];

    /// The spelling used on the command line and in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Stop => "stop",
            Fault::Start => "start",
            Fault::Restart => "restart",
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Unpause => "unpause",
        }
    }
}

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
