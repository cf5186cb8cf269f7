//! regbox — regtest in a box: many bitcoind nodes in Docker containers, wired into any topology through
//! RPC, split into partitions by network segments, healed, verified and torn down precisely. The pure core
//! (`manifest`, `topology`, `layout`, `partition`, `scenario`) does no I/O; `docker` and `rpc` are the only
//! doors to the outside; `cluster`, `wiring`, `segments`, `faults` and `run` build on them.

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
