//! The facade's one error type: a failed Docker operation, naming what it was done to, and the
//! engine's answers regbox tells apart (a subnet taken, stale endpoints, a name taken).

use bollard::errors::Error as BollardError;

use crate::core::cluster::subnet::Subnet;

/// A failed Docker operation, naming what it was done to.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("reach the Docker engine (is it running, and may this user use its socket?)")]
    Connect(#[source] BollardError),
    #[error("follow the engine's events")]
    Events(#[source] BollardError),
    #[error("list {what}")]
    List {
        what: &'static str,
        source: BollardError,
    },
    #[error("create network `{name}` ({subnet})")]
    CreateNetwork {
        name: String,
        subnet: Subnet,
        source: BollardError,
    },
    #[error("remove network `{name}`")]
    RemoveNetwork { name: String, source: BollardError },
    #[error("attach `{container}` to network `{network}`")]
    Attach {
        container: String,
        network: String,
        source: BollardError,
    },
    #[error("detach `{container}` from network `{network}`")]
    Disconnect {
        container: String,
        network: String,
        source: BollardError,
    },
    #[error("create container `{name}`")]
    CreateContainer { name: String, source: BollardError },
    #[error("{action} container `{name}`")]
    Container {
        action: &'static str,
        name: String,
        source: BollardError,
    },
    #[error("remove volume `{name}`")]
    RemoveVolume { name: String, source: BollardError },
    #[error("{action} volume `{name}`")]
    Volume {
        action: &'static str,
        name: String,
        source: BollardError,
    },
    #[error("inspect image `{name}`")]
    InspectImage { name: String, source: BollardError },
    #[error("import image `{name}`")]
    ImportImage { name: String, source: BollardError },
    #[error(
        "a command in container `{name}` wrote more than {limit} bytes, the most regbox reads"
    )]
    ExecOutput { name: String, limit: usize },
    #[error("read logs of `{name}`")]
    Logs { name: String, source: BollardError },
    #[error("host `{host}` ({url}) {reason}")]
    Host {
        host: String,
        url: String,
        reason: String,
    },
    #[error("host `{host}` still lists network `{network}` {secs} s after its removal")]
    Lingers {
        host: String,
        network: String,
        secs: u64,
    },
    #[error("copy image `{name}` to host `{host}`")]
    CopyImage {
        name: String,
        host: String,
        source: BollardError,
    },
}

impl DockerError {
    /// Docker refused a network because its subnet overlaps another one (someone took it first).
    pub fn is_pool_overlap(&self) -> bool {
        matches!(self, DockerError::CreateNetwork { .. })
            && self.to_source_string().contains("overlaps")
    }

    /// Docker refused to remove a network that "has active endpoints".
    pub fn is_stale_endpoints(&self) -> bool {
        matches!(self, DockerError::RemoveNetwork { .. })
            && self.to_source_string().contains("active endpoints")
    }

    /// The swarm still counts a container's attachment to an overlay (a task) that is going away.
    pub fn is_in_use_by_task(&self) -> bool {
        matches!(self, DockerError::RemoveNetwork { .. })
            && self.to_source_string().contains("in use by task")
    }

    /// The engine refused because the name is taken (HTTP 409).
    pub fn is_conflict(&self) -> bool {
        let source = std::error::Error::source(self).and_then(|s| s.downcast_ref::<BollardError>());
        matches!(
            source,
            Some(BollardError::DockerResponseServerError {
                status_code: 409,
                ..
            })
        )
    }
}

pub type Result<T> = std::result::Result<T, DockerError>;

pub(super) fn container_err<'a>(
    action: &'static str,
    name: &'a str,
) -> impl FnOnce(BollardError) -> DockerError + 'a {
    move |source| DockerError::Container {
        action,
        name: name.into(),
        source,
    }
}

/// Maps "no such object" (HTTP 404) to `absent` and every other error through `err`.
pub(super) fn absent_is<T>(
    r: std::result::Result<T, BollardError>,
    absent: T,
    err: impl FnOnce(BollardError) -> DockerError,
) -> Result<T> {
    match r {
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(absent),
        other => other.map_err(err),
    }
}

impl DockerError {
    fn to_source_string(&self) -> String {
        std::error::Error::source(self)
            .map(|s| s.to_string())
            .unwrap_or_default()
    }
}
