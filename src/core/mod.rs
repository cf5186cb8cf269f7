//! The pure core: plain data and functions, no async runtime, no Docker client, no HTTP. Everything here
//! is unit-tested in milliseconds and imports nothing from `engine` or `cli`. Grouped by concept:
//! `cluster` (manifest, layout, planner), `topology`, `partition`, `faults`, `chain`, `scenario`,
//! `soak`, `release` (Bitcoin Core releases), `picture` (what the operator's page draws), and `verb` (the vocabulary every door speaks); `names`,
//! `rng` and `yaml` serve them all.

pub mod chain;
pub mod cluster;
pub mod faults;
pub mod names;
pub mod partition;
pub mod picture;
pub mod release;
pub(crate) mod rng;
pub mod scenario;
pub mod soak;
pub mod topology;
pub mod verb;
pub mod yaml;
