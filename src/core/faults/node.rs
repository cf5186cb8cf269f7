//! Node faults as data: what can happen to a node's container, and how it is spelled.

use serde::{Deserialize, Serialize};

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
