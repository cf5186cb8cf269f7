//! The pure core: plain data and functions, no async runtime, no Docker client, no HTTP. Everything here is unit-tested in
//! milliseconds and imports nothing from `engine` or `cli`.

pub mod blueprint;
pub mod compose;
pub mod fault;
pub mod firewall;
pub mod generators;
pub mod graphio;
pub mod limits;
pub mod link;
pub mod lock;
pub mod manifest;
pub mod metrics;
pub mod names;
pub mod partition;
pub mod placement;
pub mod plan;
pub mod propagation;
pub mod rawtx;
pub(crate) mod rng;
pub mod scenario;
pub mod session;
pub(crate) mod shape;
pub mod soak;
pub mod stats;
pub mod subnet;
pub mod svg;
pub mod timing;
pub mod topology;
pub mod verb;
pub mod wait;
pub mod yaml;
