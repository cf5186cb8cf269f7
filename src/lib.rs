//! regbox — regtest in a box: many bitcoind nodes in Docker containers, wired into any topology through
//! RPC, brought up, verified and torn down precisely. The pure core (`manifest`, `topology`, `layout`)
//! does no I/O; `docker` and `rpc` are the only doors to the outside; `cluster` builds on them.

pub mod cli;
pub mod cluster;
pub mod docker;
pub mod faults;
pub mod image;
pub mod layout;
pub mod manifest;
pub mod partition;
pub mod progress;
pub mod rpc;
pub mod run;
pub mod scenario;
pub mod segments;
pub mod topology;
pub mod wait;
pub mod wiring;

pub use cluster::{Cluster, Node, UpOptions};
pub use manifest::ClusterSpec;
