//! (temporary stub)
use crate::faults::Fault;
use crate::manifest::{ClusterSpec, ManifestError};
use crate::partition::{CutMode, PartitionKind};
use serde_json::Value;
use std::time::Duration;
pub struct Scenario {
    pub name: String,
    pub cluster: ClusterSource,
    pub steps: Vec<Step>,
}
pub enum ClusterSource {
    Inline(ClusterSpec),
    File {
        path: String,
        line: usize,
        column: usize,
    },
}
pub struct Step {
    pub label: String,
    pub line: usize,
    pub column: usize,
    pub action: Action,
}
pub enum Action {
    Mine {
        node: String,
        blocks: u64,
    },
    Send {
        from: String,
        to: String,
        amount_sat: u64,
        id: Option<String>,
    },
    Connect {
        a: String,
        b: String,
    },
    Disconnect {
        a: String,
        b: String,
    },
    Partition {
        kind: PartitionKind,
        mode: CutMode,
    },
    Heal {
        sync: bool,
        timeout: Duration,
    },
    Fault {
        fault: Fault,
        node: String,
    },
    Wait {
        until: Until,
        timeout: Duration,
    },
    Assert(Check),
    Rpc {
        node: String,
        method: String,
        params: Vec<Value>,
        expect: Option<Value>,
    },
    Sleep(Duration),
}
pub enum Until {
    SyncBlocks(Option<Vec<String>>),
    SyncMempools(Option<Vec<String>>),
    Height { node: Option<String>, height: u64 },
    Peers { node: String, count: usize },
}
pub enum Check {
    SameTip(Option<Vec<String>>),
    DifferentTips(Vec<String>),
    Height { node: Option<String>, height: u64 },
    TipOf { a: String, b: String },
    MempoolHas { node: String, tx: Option<String> },
}
pub const DEFAULT_SCENARIO: &str = "";
pub fn parse(_source: &str, _origin: &str) -> Result<Scenario, ManifestError> {
    unimplemented!()
}
pub fn validate(
    _scenario: &Scenario,
    _spec: &ClusterSpec,
    _origin: &str,
) -> Result<(), ManifestError> {
    unimplemented!()
}
