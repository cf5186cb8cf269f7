//! How a command ends: the process exit codes, the [`Failure`] a command returns, which code each failure
//! maps to, and the one-line rendering of an error with its causes.

use crate::core::yaml::SourceError;
use crate::engine::{error, image};

/// How `main` prints a failure: the error and its causes on one line (the same rendering as a failed
/// scenario step's message).
pub use crate::core::names::error_chain;

/// The command did what was asked.
pub const SUCCESS: i32 = 0;
/// A runtime failure: Docker, a node, a timeout, a failed scenario step.
pub const FAILURE: i32 = 1;
/// Bad input: a manifest or scenario, arguments, an unknown cluster or node, files `image build --from`
/// cannot use (clap's own code for bad arguments too).
pub const BAD_INPUT: i32 = 2;
/// Interrupted by Ctrl-C (128 + SIGINT, as shells report it).
pub const INTERRUPTED: i32 = 130;

/// How a command failed, which decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad input (manifest, arguments, unknown cluster or node): exit code 2.
    #[error(transparent)]
    Manifest(#[from] SourceError),
    #[error(transparent)]
    Cluster(#[from] error::Error),
    #[error(transparent)]
    Image(#[from] image::ImageError),
    /// A scenario step failed (each failure was printed with what was expected and seen).
    #[error("scenario `{0}` failed")]
    Scenario(String),
    /// A soak run broke an invariant or could not carry out a fault (the message names the seed, the
    /// step, the invariant and the nodes): exit code 1.
    #[error("soak failed: {0}")]
    Soak(String),
    /// The run finished but its report could not be written: a runtime failure (exit code 1).
    #[error("{0}")]
    Report(String),
    /// A host of a multi-host manifest fails a check `up` makes (`regbox swarm status`): exit code 1.
    #[error("the hosts are not ready: {0}")]
    Hosts(String),
    /// Arguments that parse but make no sense together: exit code 2.
    #[error("{0}")]
    Usage(String),
}

impl From<crate::engine::rpc::RpcError> for Failure {
    fn from(e: crate::engine::rpc::RpcError) -> Self {
        Failure::Cluster(e.into())
    }
}

impl Failure {
    /// 2 for bad input, 130 for an interruption, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Manifest(_) | Failure::Usage(_) => BAD_INPUT,
            Failure::Cluster(e) if e.is_bad_input() => BAD_INPUT,
            // What `image build --from` names, refused as it is.
            Failure::Image(e) if e.is_bad_input() => BAD_INPUT,
            Failure::Cluster(e) if e.is_interrupted() => INTERRUPTED,
            Failure::Image(e) if e.is_interrupted() => INTERRUPTED,
            _ => FAILURE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_image_input_is_bad_input_and_a_failed_build_is_not() {
        let refused = image::ImageError::Refused {
            path: "bitcoin.tar.gz".into(),
            reason: "no bitcoind in bitcoin.tar.gz".into(),
        };
        assert_eq!(Failure::Image(refused).exit_code(), BAD_INPUT);
        let failed = image::ImageError::Build("cannot fetch the sid index".into());
        assert_eq!(Failure::Image(failed).exit_code(), FAILURE);
    }
}
