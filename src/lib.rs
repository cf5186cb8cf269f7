//! regbox — regtest in a box: many bitcoind nodes in Docker containers, wired into any topology through
//! RPC, split into partitions by network segments, healed, verified and torn down precisely.
//!
//! Three rooms: [`core`] is plain data and functions (manifest, topology, partition plans, the reconcile
//! planner, scenarios) with no I/O; [`engine`] talks to the outside through one Docker facade and one RPC
//! client and runs the one reconcile loop; `cli` is the thin command line on top (the default `cli`
//! feature; without it the library compiles no clap, indicatif or tracing-subscriber).

#[cfg(feature = "cli")]
pub mod agent;
#[cfg(feature = "cli")]
pub mod cli;
pub mod core;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "cli")]
pub mod operator;
#[cfg(feature = "cli")]
pub mod relay;

// The library's public paths, by concept.
pub use crate::core::chain::propagation;
pub use crate::core::cluster::manifest;
pub use crate::core::faults::{clock, link, node as fault, plane as firewall, throttle};
pub use crate::core::verb::{self, Report, Verb};
pub use crate::core::{partition, scenario, topology};
pub use crate::engine::{exec, image, measure, progress, rpc, runner, wait};

/// A cluster's handle and life: up, open, status, partition, heal, faults, down.
pub mod cluster {
    pub use crate::engine::cluster::{Cluster, Connection, NodeStatus};
    pub use crate::engine::error::{Error, Result};
    pub use crate::engine::lifecycle::{down_named, list, ClusterSummary, DownReport, UpOptions};
    pub use crate::engine::node::Node;
    pub use crate::engine::reset::Exported;
    pub use crate::engine::segments::{HealReport, NodeReorg, PartitionReport, SegmentReport};
}

pub use crate::core::chain::wait::WaitFor;
pub use crate::core::cluster::manifest::{ClusterSpec, NodeSpec, Resources};
pub use crate::core::partition::{CutMode, PartitionKind, Via};
pub use crate::core::topology::Kind as TopologyKind;
pub use crate::engine::cluster::Cluster;
pub use crate::engine::error::Error;
pub use crate::engine::lifecycle::unique_name;
pub use crate::engine::lifecycle::UpOptions;
pub use crate::engine::node::Node;
