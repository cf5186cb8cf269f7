//! Scenario files: a cluster plus steps to run against it, parsed and validated with located errors.
//!
//! ```yaml
//! name: split-and-heal        # optional; defaults to the file name without `.scenario.yaml`
//! cluster:                    # a manifest, inline (errors point into this file) ...
//!   name: split
//!   nodes: 4
//! # cluster: ring4.yaml       # ... or a manifest's path, relative to this file
//! steps:
//!   - mine: { node: n0, blocks: 101 }
//!   - name: split the ring    # optional label, on any step written as a mapping
//!     partition: { kind: halves }
//!   - heal                    # bare word, the same as `heal:` or `heal: {}`
//! ```
//!
//! A step is a mapping with exactly one action key and optionally `name`; `heal`
//! is the only action that may also be written as a bare word, because it is the
//! only one without required arguments. A named heal is `name: ..` plus `heal:`.
//!
//! | action | value |
//! |---|---|
//! | `mine` | `{node, blocks}`, 1 ≤ blocks ≤ [`MAX_BLOCKS`] |
//! | `send` | `{from, to, amount, id?}`: amount in BTC (> 0, ≤ 8 decimals); both nodes need `wallet: true`; `id` names the transaction |
//! | `connect`, `disconnect` | `[a, b]` |
//! | `partition` | `{groups: [[..], ..]}` or `{kind: halves \| random-halves \| isolate \| bridge \| majorities-ring}`; `seed` (random-halves, default 0), `node` (isolate, required); `mode: drop \| silent` (default drop) |
//! | `heal` | nothing, or `{sync?, timeout?}` |
//! | `stop`, `start`, `restart`, `kill`, `pause`, `unpause` | a node |
//! | `wait` | one of `sync_blocks: true \| [nodes]`, `sync_mempools: true \| [nodes]`, `height: N` (+ `node?`), `peers: N` (+ `node`); `timeout?` |
//! | `assert` | one of `same_tip: true \| [nodes]`, `different_tips: [nodes]`, `height: N` (+ `node?`), `tip_of: A` + `equals: B`, `mempool_has: {node, tx?}`; or the text `"tip_of A == tip_of B"` |
//! | `rpc` | `{node, method, params?: [..], expect?}`; params and expect are any YAML, taken as JSON |
//! | `sleep` | seconds |
//!
//! Nodes are names or 0-based indices, as everywhere in regbox. Node lists hold
//! at least two different nodes, partition groups at least two groups. A
//! `mempool_has` without `tx` means the transaction of the latest `send`.
//!
//! Durations are seconds (integer or decimal), more than 0 and at most
//! [`MAX_SECONDS`]; timeouts default to [`DEFAULT_TIMEOUT`]. `sleep` is there for
//! the rare case with nothing to observe: a `wait` on a condition is faster when
//! things go well and says what went wrong when they do not.
//!
//! [`parse`](fn@parse) checks everything the file alone can tell; [`validate`] checks the
//! steps against the cluster (node references, wallets), which for a cluster
//! given by path only the caller can load.
//!
//! The module is split by concern: `model` holds the data (and each action's default label),
//! `parse` reads a scenario file and `check` validates one against a cluster; everything public is
//! re-exported here.

mod actions;
mod check;
mod model;
mod parse;

pub use crate::core::scenario::check::validate;
pub use crate::core::scenario::model::{
    Action, Check, ClusterSource, Scenario, Step, Then, DEFAULT_SCENARIO, DEFAULT_TIMEOUT,
    MAX_BLOCKS, MAX_SECONDS,
};
pub use crate::core::scenario::parse::{parse, parse_reading};
