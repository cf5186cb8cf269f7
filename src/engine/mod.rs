//! The engine: everything that talks to the outside, through two facades — `docker` (the only module
//! that calls the Docker API) and `rpc` (the only builder of JSON-RPC) — and the one reconcile loop that brings a cluster
//! to its desired state.

pub(crate) mod clock;
pub mod cluster;
pub mod core_release;
#[cfg(test)]
mod decisions;
pub(crate) mod disk;
pub(crate) mod docker;
pub mod encrypt;
pub mod error;
pub mod exec;
pub mod export;
pub mod faults;
pub mod host;
pub mod image;
pub(crate) mod launch;
pub mod lifecycle;
pub mod links;
pub mod lock;
pub mod look;
pub mod measure;
pub mod node;
pub mod progress;
pub(crate) mod reconcile;
pub(crate) mod relay;
pub(crate) mod removal;
pub mod repair;
pub mod reset;
pub mod rpc;
pub mod runner;
pub mod segments;
pub mod soak;
pub mod swarm;
pub mod throttle;
pub mod wait;
pub mod wiring;
