//! What a verb answers: one typed report per verb, plain data whose JSON form is the operator's reply
//! and the CLI's `--json` output. A reply is read back by the verb that asked for it ([`Report::parse`]),
//! so the JSON carries no tag of its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::core::chain::propagation::Measurement;
use crate::core::chain::wait::Met;
use crate::core::cluster::manifest::ClusterSpec;
use crate::core::cluster::plan::{State, UpPlan};
use crate::core::faults::clock::{Anchored, Drift};
use crate::core::faults::node::Fault;
use crate::core::faults::plane::{self, NodeFaults};
use crate::core::faults::throttle::Limits;
use crate::core::partition::{CutMode, SegmentId, Via};
use crate::core::verb::Verb;

/// A verb's answer.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Report {
    /// `status`, and `apply`: every node afterwards.
    Status(Vec<NodeStatus>),
    Url(Connection),
    Mined(Mined),
    Sent(Sent),
    /// `connect` and `disconnect`.
    Wired(Wired),
    /// `partition`, and `heal` without `sync`.
    Partition(PartitionReport),
    /// `heal` with `sync`.
    Heal(HealReport),
    /// `netem`, `cut` and `clear`: every node's link faults afterwards.
    Links(Links),
    Fault(Faulted),
    /// `clock`: the named nodes' clocks afterwards.
    Clocks(Clocks),
    Disk(DiskReport),
    /// `throttle`: every throttled node's limits afterwards.
    Throttled(Throttles),
    Reset(ResetReport),
    Snapshot(SnapshotReport),
    Waited(Waited),
    Synced(Synced),
    Measured(Box<Measurement>),
    /// `rpc`: the method's result as the node gave it.
    Rpc(Json),
    Logs(Logs),
    /// `apply` with `dry_run`: what it would change.
    Plan(Box<PlanDoc>),
    Down(DownReport),
}

impl Report {
    /// Reads the JSON answer to `verb` (an operator's reply) back as its report.
    pub fn parse(verb: &Verb, json: Json) -> Result<Report, serde_json::Error> {
        use serde_json::from_value as read;
        Ok(match verb {
            Verb::Status => Report::Status(read(json)?),
            Verb::Url { .. } => Report::Url(read(json)?),
            Verb::Mine { .. } => Report::Mined(read(json)?),
            Verb::Send { .. } => Report::Sent(read(json)?),
            Verb::Connect { .. } | Verb::Disconnect { .. } => Report::Wired(read(json)?),
            Verb::Partition { .. } | Verb::Heal { sync: false, .. } => {
                Report::Partition(read(json)?)
            }
            Verb::Heal { sync: true, .. } => Report::Heal(read(json)?),
            Verb::Netem { .. } | Verb::Cut { .. } | Verb::Clear { .. } => {
                Report::Links(read(json)?)
            }
            Verb::Fault { .. } => Report::Fault(read(json)?),
            Verb::Clock { .. } => Report::Clocks(read(json)?),
            Verb::Disk { .. } => Report::Disk(read(json)?),
            Verb::Throttle { .. } => Report::Throttled(read(json)?),
            Verb::Reset { .. } => Report::Reset(read(json)?),
            Verb::Snapshot { .. } => Report::Snapshot(read(json)?),
            Verb::Wait { .. } => Report::Waited(read(json)?),
            Verb::Sync { .. } => Report::Synced(read(json)?),
            Verb::Measure { .. } => Report::Measured(read(json)?),
            Verb::Rpc { .. } => Report::Rpc(json),
            Verb::Logs { .. } => Report::Logs(read(json)?),
            Verb::Apply { dry_run: true, .. } => Report::Plan(read(json)?),
            Verb::Apply { .. } => Report::Status(read(json)?),
            Verb::Down => Report::Down(read(json)?),
        })
    }

    /// The partition report, if this is one (`partition`, `heal`).
    pub fn into_partition(self) -> Option<PartitionReport> {
        match self {
            Report::Partition(r) => Some(r),
            _ => None,
        }
    }

    /// The heal report, if this is one (`heal` with `sync`).
    pub fn into_heal(self) -> Option<HealReport> {
        match self {
            Report::Heal(r) => Some(r),
            _ => None,
        }
    }

    /// Every node's link faults, if this is that report (`netem`, `cut`, `clear`).
    pub fn into_links(self) -> Option<Links> {
        match self {
            Report::Links(l) => Some(l),
            _ => None,
        }
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Json {
        serde_json::to_value(self).expect("a report serializes")
    }
}

/// One node's state as `status` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub index: usize,
    pub name: String,
    pub image: String,
    pub state: State,
    /// The host (engine) the node lives on, for a cluster across hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub control_ip: String,
    pub data_ip: String,
    pub height: Option<u64>,
    pub best_hash: Option<String>,
    pub peers: Vec<String>,
    /// The data-plane networks the node is attached to.
    pub segments: Vec<String>,
    /// Why the RPC fields are empty, when they are.
    pub error: Option<String>,
    /// The node's link faults (shaping and cuts), worded; empty when it has none.
    pub links: String,
    /// The node's clock offset from the host's now, in seconds, while it is not the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<i64>,
    /// How the node's clock drifts from the host's, while it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
    /// Across hosts: whether the overlays it is on are encrypted (`encrypt:` of the manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay_encrypted: Option<bool>,
    /// The limits a `throttle` put on the node (over its declared resources), when it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Limits>,
}

impl NodeStatus {
    /// Says the node's clock (None: the host's): its offset at `now_ms` (the host's clock, Unix
    /// milliseconds) and its drift.
    pub fn set_clock(&mut self, clock: Option<Anchored>, now_ms: i64) {
        self.clock = clock.map(|c| c.offset_at(now_ms)).filter(|&o| o != 0);
        self.drift = clock.map(|c| c.drift).filter(|d| !d.is_none());
        if self.drift.is_some() && self.clock.is_none() {
            self.clock = Some(0);
        }
    }
}

/// What `reset` did: every node is back on a fresh chain (or on snapshot `to`), wired as declared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResetReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Every node's chain afterwards.
    pub nodes: Vec<NodeSnapshot>,
    /// Nodes whose container was made again (its image has no init, or it was missing or outdated);
    /// the others restarted bitcoind in place.
    pub remade: Vec<String>,
    /// What was taken away on the way: the partition, link faults, holds, throttles, clocks, fills.
    pub cleared: Vec<String>,
}

/// What `snapshot` saved: each node's chain as it is in the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotReport {
    pub name: String,
    pub nodes: Vec<NodeSnapshot>,
}

/// A node's chain in a reset or a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSnapshot {
    pub node: String,
    pub height: u64,
    pub best_hash: String,
}

/// What `disk` did: the node's bounded data directory is now `full` (filled) or freed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskReport {
    pub node: String,
    pub full: bool,
}

/// The clocks a `clock` set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clocks {
    pub nodes: Vec<NodeClock>,
}

/// One node's clock: its offset from the host's, in seconds (0: the host's clock), and how it drifts
/// from there, when it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeClock {
    pub node: String,
    pub offset: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
}

/// How another program reaches a node (`regbox url`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub node: String,
    /// `http://USER:PASSWORD@CONTROL-IP:18443`
    pub rpc_url: String,
    pub rpc_user: String,
    pub rpc_password: String,
    pub rpc_address: SocketAddr,
    /// The node's P2P address on the base segment.
    pub p2p_address: SocketAddr,
    /// Across hosts: the relay that reaches `rpc_address` by HTTP CONNECT (`curl -p -x http://RELAY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_proxy: Option<SocketAddr>,
    /// The credentials the relay requires (`curl -U USER:TOKEN`, sent as `Proxy-Authorization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_proxy_auth: Option<String>,
    /// Across hosts: whether the overlays that carry its RPC and P2P traffic are encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay_encrypted: Option<bool>,
}

/// `mine`: the node (by name), its height afterwards and the new blocks' hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mined {
    pub node: String,
    pub height: u64,
    pub blocks: Vec<String>,
}

/// `send`: the transaction and its ends (by name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    pub from: String,
    pub to: String,
    pub amount_sat: u64,
    pub txid: String,
}

/// `connect` and `disconnect`: the two ends (by name) and whether they are connected now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wired {
    pub a: String,
    pub b: String,
    pub connected: bool,
}

/// A node fault carried out (the node by name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Faulted {
    pub node: String,
    pub fault: Fault,
}

/// Every throttled node's limits, by node name (a node without a throttle is absent).
pub type Throttles = BTreeMap<String, Limits>;

/// Every node's link faults, by node name, with peers by name (a node without any is absent).
pub type Links = BTreeMap<String, NodeFaults<String>>;

/// Worded link faults: `delay 100ms; cut to n2 (drop)`.
pub fn describe_links(f: &NodeFaults<String>) -> String {
    plane::describe(f, |p| p)
}

/// `wait`: the condition and what was met (the common tip of `sync_blocks`, the mempool size of
/// `sync_mempools`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waited {
    pub until: String,
    pub met: Met,
}

/// `sync`: every node on `best_hash` with `mempool_size` transactions in its mempool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Synced {
    pub best_hash: String,
    pub mempool_size: usize,
    pub nodes: usize,
}

/// `logs` without `follow`: the node's console output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logs {
    pub node: String,
    pub text: String,
}

/// The data plane after a partition or heal, as `partition` and `status` report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionReport {
    pub mode: CutMode,
    pub via: Via,
    pub segments: Vec<SegmentReport>,
    /// The peer graph the nodes were verified to hold (`a-b` by name).
    pub graph: Vec<String>,
    /// The seed of a random partition, so the same split can be asked for again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentReport {
    pub id: SegmentId,
    pub network: String,
    pub subnet: String,
    pub members: Vec<String>,
}

/// What `heal --sync` found: where every node ended and how deep it reorganised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealReport {
    pub tip: String,
    pub height: u64,
    pub nodes: Vec<NodeReorg>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReorg {
    pub node: String,
    /// The tip the node had before the heal.
    pub old_tip: String,
    pub old_height: u64,
    /// How many of its blocks left the active chain.
    pub reorg_depth: u64,
}

/// What `down` removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DownReport {
    pub cluster: String,
    pub containers: usize,
    pub volumes: usize,
    pub networks: usize,
    /// Nodes whose bitcoind was stopped where it was before the engine's work began (the load taken
    /// off the host: see `engine::removal`).
    #[serde(default)]
    pub halted: usize,
}

/// The plan of `apply` and `up --dry-run`, nodes by name: what is created, recreated (and why),
/// removed, started, healed, connected, and the link faults that change; `diff` is the same as lines
/// (`+` adds, `-` removes, `~` changes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanDoc {
    pub cluster: String,
    pub exists: bool,
    pub create: Vec<String>,
    pub recreate: Vec<String>,
    pub why: BTreeMap<String, Vec<String>>,
    pub remove: Vec<String>,
    pub start: Vec<String>,
    pub unpause: Vec<String>,
    pub release: Vec<String>,
    pub heal: Vec<String>,
    pub connect: Vec<String>,
    pub disconnect: Vec<String>,
    pub links: Vec<LinkDoc>,
    pub duplicate_networks: Vec<String>,
    pub images: BTreeMap<String, String>,
    pub diff: Vec<DiffLine>,
}

/// One node's link faults before and after, worded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkDoc {
    pub node: String,
    pub before: String,
    pub after: String,
}

/// One line of a plan's diff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffLine {
    pub sign: char,
    pub what: String,
    pub detail: String,
}

impl PlanDoc {
    /// The plan `plan` for `spec` (whose cluster `exists` or not), by name.
    pub fn new(spec: &ClusterSpec, exists: bool, plan: &UpPlan) -> PlanDoc {
        let name = |i: &usize| spec.nodes[*i].name.clone();
        let names = |ids: &[usize]| ids.iter().map(name).collect::<Vec<_>>();
        let pairs = |ps: &[(usize, usize)]| {
            ps.iter()
                .map(|(a, b)| format!("{}-{}", name(a), name(b)))
                .collect::<Vec<_>>()
        };
        let faults = |f: &NodeFaults| {
            if f.is_empty() {
                "none".to_string()
            } else {
                plane::describe(f, |i| name(&i))
            }
        };
        let all: Vec<String> = spec.nodes.iter().map(|n| n.name.clone()).collect();
        let images: Vec<String> = spec.nodes.iter().map(|n| n.image.clone()).collect();
        PlanDoc {
            cluster: spec.name.clone(),
            exists,
            create: names(&plan.create),
            recreate: names(&plan.recreate),
            why: plan
                .why
                .iter()
                .map(|(i, w)| (name(i), w.iter().map(|s| s.to_string()).collect()))
                .collect(),
            remove: plan.remove.clone(),
            start: names(&plan.start),
            unpause: names(&plan.unpause),
            release: names(&plan.release),
            heal: names(&plan.heal),
            connect: pairs(&plan.connect),
            disconnect: pairs(&plan.disconnect),
            links: plan
                .links
                .iter()
                .map(|c| LinkDoc {
                    node: name(&c.node),
                    before: faults(&c.before),
                    after: faults(&c.after),
                })
                .collect(),
            duplicate_networks: plan.duplicates.clone(),
            images: all.iter().cloned().zip(images.iter().cloned()).collect(),
            diff: plan
                .diff(&all, &images, faults)
                .into_iter()
                .map(|(sign, what, detail)| DiffLine { sign, what, detail })
                .collect(),
        }
    }

    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.diff.is_empty()
    }
}
