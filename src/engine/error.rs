//! The engine's one error type: what can go wrong when regbox acts on a cluster, and which failures are
//! the user's input (exit code 2) or an interruption (130) rather than a runtime failure.

use std::time::Duration;

use crate::core::cluster::subnet::Subnet;
use crate::engine::docker::DockerError;
use crate::engine::image::ImageError;
use crate::engine::rpc::RpcError;

/// A condition that did not become true in time.
#[derive(Debug, thiserror::Error)]
#[error("wait for {what} within {timeout:?}; last seen: {last}")]
pub struct Timeout {
    pub what: String,
    pub timeout: Duration,
    pub last: String,
}

/// A failed cluster operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Transparent: the error chain printer shows the Docker operation and the engine's answer once.
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error(transparent)]
    Timeout(#[from] Timeout),
    #[error("node `{node}` stopped while starting; its last log lines:\n{logs}")]
    Exited { node: String, logs: String },
    #[error("no regbox cluster exists")]
    NoCluster,
    #[error("several clusters exist ({0}); name one")]
    Ambiguous(String),
    #[error("no cluster named `{0}` exists")]
    UnknownCluster(String),
    #[error("no node `{}` in cluster `{cluster}` ({hint})", crate::core::names::shown(.node))]
    UnknownNode {
        cluster: String,
        node: String,
        /// The valid names or index range, worded as in manifest errors.
        hint: String,
    },
    #[error("cluster `{0}` has no metadata container (half-created or half-removed); `regbox down {0}` removes what is left")]
    Damaged(String),
    /// The spec a cluster's metadata container records does not read, names another cluster or breaks a
    /// rule a manifest is held to: not used.
    #[error("cluster `{cluster}`: the spec recorded in label `{label}` of its metadata container is refused: {problem}; `regbox down {cluster}` removes the cluster")]
    BadRecord {
        cluster: String,
        label: &'static str,
        problem: String,
    },
    #[error("cluster `{cluster}` has no network `{network}` (half-created or half-removed); `regbox up` or `regbox down {cluster}` repairs it")]
    MissingNetwork { cluster: String, network: String },
    #[error("node `{node}` of cluster `{cluster}` has no container (removed outside regbox?); `regbox up` makes it again")]
    MissingContainer { cluster: String, node: String },
    #[error("`{a}` and `{b}` share no network segment (the cluster is partitioned)")]
    NoPath { a: String, b: String },
    #[error("the peer graph differs from the expected one: {0}")]
    Graph(String),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("no free subnet left in {pool} for network `{network}`")]
    NoSubnet { pool: Subnet, network: String },
    #[error(transparent)]
    Partition(#[from] crate::core::partition::PartitionError),
    #[error("cluster `{cluster}` is being changed by another regbox ({holder}); waited {} s (--wait-lock)", .waited.as_secs())]
    Locked {
        cluster: String,
        holder: String,
        waited: Duration,
    },
    #[error("cluster `{0}` was removed by another command")]
    Removed(String),
    #[error("network `{0}` exists already and is not this cluster's (or another command made it at the same moment)")]
    NetworkTaken(String),
    /// A propagation measurement could not be made (not: its result missed a bound).
    #[error("measure propagation: {0}")]
    Measure(String),
    #[error("fault agent: {0}")]
    Agent(String),
    #[error("disk: {0}")]
    Disk(String),
    /// The encrypted-overlay probe could not run (its own containers failed, not the overlay).
    #[error("overlay probe: {0}")]
    Probe(String),
    #[error("RPC relay: {0}")]
    Relay(String),
    #[error("interrupted")]
    Interrupted,
    /// A verb that cannot be carried out as asked (checked before anything happens).
    #[error("{0}")]
    BadRequest(String),
    #[error("could not remove: {}", .0.join(", "))]
    Leftovers(Vec<String>),
    #[error("this host cannot take the cluster: {}", .0.join("; "))]
    HostLimits(Vec<String>),
    /// `encrypt: on`, and encrypted overlays carry nothing between the hosts (refused before any node
    /// exists).
    #[error("`encrypt: on`, but the overlays cannot be encrypted here: {0}; `encrypt: auto` goes on unencrypted, saying so")]
    Unencrypted(String),
    #[error("could not remove network(s) {}: the Docker daemon still counts endpoints of containers that are gone (a Docker 20.10 bug, moby#42119); nothing but a restart of the Docker daemon clears them, after which `regbox down` finishes", .0.join(", "))]
    StaleEndpoints(Vec<String>),
    #[error("{source}\n{cleanup}")]
    RolledBack { source: Box<Error>, cleanup: String },
}

/// A verb over the limits of one request is bad input, refused before anything happens.
impl From<crate::core::verb::Refused> for Error {
    fn from(r: crate::core::verb::Refused) -> Self {
        Error::BadRequest(r.0)
    }
}

impl Error {
    /// The user asked for something that does not exist or cannot be: exit code 2, not 1.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::NoCluster
            | Error::Ambiguous(_)
            | Error::UnknownCluster(_)
            | Error::UnknownNode { .. }
            | Error::Partition(_)
            | Error::BadRequest(_)
            | Error::HostLimits(_)
            | Error::Unencrypted(_) => true,
            Error::RolledBack { source, .. } => source.is_bad_input(),
            _ => false,
        }
    }

    /// The operation stopped because the user interrupted it.
    pub fn is_interrupted(&self) -> bool {
        match self {
            Error::Interrupted => true,
            Error::RolledBack { source, .. } => source.is_interrupted(),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
