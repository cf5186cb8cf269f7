//! The vocabulary: every verb a user can ask of a cluster, as one serialisable type. The CLI's flags, a
//! scenario step, a soak fault's start and end and an HTTP request to the operator are all parsed into a
//! [`Verb`]; the engine's one executor carries it out and answers with a [`Report`]. The JSON form of
//! both is the operator's request and reply body and the CLI's `--json` output.

mod check;
mod report;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::core::chain::propagation::Kind as Propagation;
use crate::core::chain::wait::WaitFor;
use crate::core::cluster::manifest::ClusterSpec;
use crate::core::faults::clock;
use crate::core::faults::link::Shaping;
use crate::core::faults::node::Fault;
use crate::core::faults::plane::Block;
use crate::core::faults::throttle::Limits;
use crate::core::partition::{CutMode, PartitionKind, Via};

pub use check::{
    Refused, APPLY_WAITS, MAX_BLOCKS, MAX_BUDGET, MAX_MEASURE_ROUNDS, MAX_METHOD_CHARS,
    MAX_TAIL_LINES, MAX_TIMEOUT,
};
pub use report::{
    describe_links, Clocks, Connection, DiffLine, DiskReport, DownReport, Faulted, HealReport,
    Links, Logs, Mined, NodeClock, NodeReorg, NodeSnapshot, NodeStatus, PartitionReport, PlanDoc,
    Report, ResetReport, SegmentReport, Sent, SnapshotReport, Synced, Throttles, Waited, Wired,
};

/// How long a verb that waits may wait when it names no timeout of its own.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// One thing a user asks of a cluster. Nodes are as typed: a name or a 0-based index. A `timeout` of
/// `None` is the caller's default ([`DEFAULT_TIMEOUT`] unless it says otherwise). In JSON the verb is
/// the `verb` field: `{"verb": "mine", "node": "n0", "blocks": 101}`; durations are in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Verb {
    /// Each node's container state, chain tip and peers.
    Status,
    /// How another program reaches a node: its RPC URL with credentials and its P2P address.
    Url { node: String },
    /// Mines `blocks` blocks on `node` (no wallet needed).
    Mine {
        node: String,
        #[serde(default = "one")]
        blocks: u64,
    },
    /// Sends `amount_sat` from `from`'s wallet to a new address of `to`'s wallet.
    Send {
        from: String,
        to: String,
        amount_sat: u64,
    },
    /// `a` dials `b`; done when both list each other with the handshake finished.
    Connect { a: String, b: String },
    /// Every session between `a` and `b` closed; done when neither lists the other.
    Disconnect { a: String, b: String },
    /// Splits the data network (replacing any active partition) and verifies the peer graph.
    Partition {
        kind: PartitionKind,
        #[serde(default)]
        via: Via,
        #[serde(default)]
        mode: CutMode,
        /// With `via: firewall`: stopped TCP packets are answered with a reset.
        #[serde(default)]
        reset: bool,
        #[serde(default, with = "secs", skip_serializing_if = "Option::is_none")]
        timeout: Option<Duration>,
    },
    /// Every node back on the base segment and every cut removed; with `sync`, also waits for one tip
    /// and reports each node's reorg depth.
    Heal {
        #[serde(default)]
        sync: bool,
        #[serde(default, with = "secs", skip_serializing_if = "Option::is_none")]
        timeout: Option<Duration>,
    },
    /// Shapes the P2P packets of `nodes` (every node for `None`) to `to` (everyone for `None`).
    Netem {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nodes: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<Vec<String>>,
        #[serde(default)]
        shaping: Shaping,
    },
    /// Stops the packets of `from` to `to` (and back when `both`).
    Cut {
        from: Vec<String>,
        to: Vec<String>,
        #[serde(default = "yes")]
        both: bool,
        #[serde(default = "dropped")]
        block: Block,
    },
    /// Removes the shaping and/or the cuts of `nodes` (every node's for `None`).
    Clear {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nodes: Option<Vec<String>>,
        #[serde(default)]
        shaping: bool,
        #[serde(default)]
        cuts: bool,
    },
    /// Stop, start, restart, kill, pause or unpause a node.
    Fault { fault: Fault, node: String },
    /// Sets the wall clock of `nodes` (every node for `None`) to run `offset` seconds from the host's
    /// from now on (0: the host's clock again) and to drift by `drift` from then on, at run time. Left
    /// out, either is what the node has now (its offset now; its drift).
    Clock {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nodes: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drift: Option<clock::Drift>,
    },
    /// Fills a node's bounded data directory (`fill`), leaving bitcoind less space than it needs, or
    /// frees it again.
    Disk { node: String, fill: bool },
    /// Limits the CPU and memory of `nodes` (every node for `None`) at run time, without a restart
    /// (over an earlier throttle's other limits); with `clear`, gives them back the manifest's
    /// declared `resources:`.
    Throttle {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nodes: Option<Vec<String>>,
        #[serde(default)]
        limits: Limits,
        #[serde(default)]
        clear: bool,
    },
    /// Takes the cluster back to its declared state without making its containers again: every node
    /// on a fresh chain (or snapshot `to`), the declared topology and link faults, no partition,
    /// hold, throttle, clock offset or full disk. bitcoind restarts in place where the node's image
    /// has regbox's init; other nodes are made again.
    Reset {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        #[serde(default, with = "secs", skip_serializing_if = "Option::is_none")]
        timeout: Option<Duration>,
    },
    /// Saves every node's chain, wallets and mempool as snapshot `name` (each bitcoind restarts in
    /// place to flush them), for `reset` with `to`.
    Snapshot {
        name: String,
        #[serde(default, with = "secs", skip_serializing_if = "Option::is_none")]
        timeout: Option<Duration>,
    },
    /// Waits until a condition holds.
    Wait {
        until: WaitFor,
        #[serde(default, with = "secs", skip_serializing_if = "Option::is_none")]
        timeout: Option<Duration>,
    },
    /// Waits until every node has the same best block and the same mempool.
    Sync {
        #[serde(default, with = "secs", skip_serializing_if = "Option::is_none")]
        timeout: Option<Duration>,
    },
    /// Propagation of blocks or transactions from `from` (default: the first node) over `rounds`.
    Measure {
        #[serde(default = "block")]
        kind: Propagation,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        #[serde(default = "five")]
        rounds: usize,
        #[serde(default, with = "secs", skip_serializing_if = "Option::is_none")]
        timeout: Option<Duration>,
    },
    /// Any RPC method on a node.
    Rpc {
        node: String,
        method: String,
        #[serde(default)]
        params: Vec<Json>,
        #[serde(default, with = "secs", skip_serializing_if = "Option::is_none")]
        timeout: Option<Duration>,
    },
    /// A node's console output: the last `tail` lines (all for `None`), then new ones while `follow`.
    Logs {
        node: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tail: Option<usize>,
        #[serde(default)]
        follow: bool,
    },
    /// Brings the cluster `spec` declares up, or to the declared state, and reports every node's
    /// status; with `dry_run`, changes nothing and reports the plan (what would change).
    Apply {
        spec: Box<ClusterSpec>,
        #[serde(default)]
        dry_run: bool,
        #[serde(default, with = "secs", skip_serializing_if = "Option::is_none")]
        timeout: Option<Duration>,
    },
    /// Removes every container, volume and network of the cluster.
    Down,
}

fn one() -> u64 {
    1
}
fn yes() -> bool {
    true
}
fn five() -> usize {
    5
}
fn dropped() -> Block {
    Block::Drop
}
fn block() -> Propagation {
    Propagation::Block
}

impl Verb {
    /// The verb's word (its `verb` in JSON).
    pub fn word(&self) -> &'static str {
        match self {
            Verb::Status => "status",
            Verb::Url { .. } => "url",
            Verb::Mine { .. } => "mine",
            Verb::Send { .. } => "send",
            Verb::Connect { .. } => "connect",
            Verb::Disconnect { .. } => "disconnect",
            Verb::Partition { .. } => "partition",
            Verb::Heal { .. } => "heal",
            Verb::Netem { .. } => "netem",
            Verb::Cut { .. } => "cut",
            Verb::Clear { .. } => "clear",
            Verb::Fault { .. } => "fault",
            Verb::Clock { .. } => "clock",
            Verb::Disk { .. } => "disk",
            Verb::Throttle { .. } => "throttle",
            Verb::Reset { .. } => "reset",
            Verb::Snapshot { .. } => "snapshot",
            Verb::Wait { .. } => "wait",
            Verb::Sync { .. } => "sync",
            Verb::Measure { .. } => "measure",
            Verb::Rpc { .. } => "rpc",
            Verb::Logs { .. } => "logs",
            Verb::Apply { .. } => "apply",
            Verb::Down => "down",
        }
    }

    /// Whether the verb changes the cluster's wiring, segments, link faults or containers, and so is
    /// carried out under the cluster's lock (readers never take it). `apply` and `down` take it on
    /// their own, as they make or remove the cluster itself.
    pub fn changes(&self) -> bool {
        matches!(
            self,
            Verb::Connect { .. }
                | Verb::Disconnect { .. }
                | Verb::Partition { .. }
                | Verb::Heal { .. }
                | Verb::Netem { .. }
                | Verb::Cut { .. }
                | Verb::Clear { .. }
                | Verb::Fault { .. }
                | Verb::Clock { .. }
                | Verb::Disk { .. }
                | Verb::Throttle { .. }
                | Verb::Reset { .. }
                | Verb::Snapshot { .. }
        )
    }

    /// Every node the verb names, as typed (checked before the verb waits for anything).
    pub fn nodes(&self) -> Vec<String> {
        let all = |l: &Option<Vec<String>>| l.clone().unwrap_or_default();
        match self {
            Verb::Url { node }
            | Verb::Mine { node, .. }
            | Verb::Fault { node, .. }
            | Verb::Disk { node, .. }
            | Verb::Rpc { node, .. }
            | Verb::Logs { node, .. } => vec![node.clone()],
            Verb::Send { from, to, .. } => vec![from.clone(), to.clone()],
            Verb::Connect { a, b } | Verb::Disconnect { a, b } => vec![a.clone(), b.clone()],
            Verb::Netem { nodes, to, .. } => [all(nodes), all(to)].concat(),
            Verb::Cut { from, to, .. } => [from.clone(), to.clone()].concat(),
            Verb::Clear { nodes, .. }
            | Verb::Clock { nodes, .. }
            | Verb::Throttle { nodes, .. } => all(nodes),
            Verb::Wait { until, .. } => until.nodes().unwrap_or_default(),
            Verb::Measure { from, .. } => from.iter().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// The verb's own timeout, if it names one.
    pub fn timeout(&self) -> Option<Duration> {
        match self {
            Verb::Partition { timeout, .. }
            | Verb::Heal { timeout, .. }
            | Verb::Wait { timeout, .. }
            | Verb::Sync { timeout }
            | Verb::Measure { timeout, .. }
            | Verb::Rpc { timeout, .. }
            | Verb::Reset { timeout, .. }
            | Verb::Snapshot { timeout, .. }
            | Verb::Apply { timeout, .. } => *timeout,
            _ => None,
        }
    }
}

impl fmt::Display for Verb {
    /// The verb in a few words, nodes as written: a scenario step's default label, and what the
    /// cluster's lock says its holder is doing. One family of verbs after the other.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verb::Status
            | Verb::Url { .. }
            | Verb::Mine { .. }
            | Verb::Send { .. }
            | Verb::Rpc { .. }
            | Verb::Logs { .. } => chain_words(f, self),
            Verb::Connect { .. }
            | Verb::Disconnect { .. }
            | Verb::Partition { .. }
            | Verb::Heal { .. }
            | Verb::Netem { .. }
            | Verb::Cut { .. }
            | Verb::Clear { .. } => network_words(f, self),
            Verb::Fault { .. } | Verb::Disk { .. } | Verb::Clock { .. } | Verb::Throttle { .. } => {
                node_words(f, self)
            }
            Verb::Reset { .. }
            | Verb::Snapshot { .. }
            | Verb::Wait { .. }
            | Verb::Sync { .. }
            | Verb::Measure { .. }
            | Verb::Apply { .. }
            | Verb::Down => cluster_words(f, self),
        }
    }
}

/// Nodes as a verb's few words name them: as written, or `all` for every node.
fn nodes_or_all(nodes: &Option<Vec<String>>) -> String {
    nodes.as_ref().map_or("all".into(), |n| n.join(","))
}

/// Reading a cluster and using its chain: status, url, mine, send, rpc, logs.
fn chain_words(f: &mut fmt::Formatter<'_>, verb: &Verb) -> fmt::Result {
    match verb {
        Verb::Status => f.write_str("status"),
        Verb::Url { node } => write!(f, "url {node}"),
        Verb::Mine { node, blocks } => write!(f, "mine {node} {blocks}"),
        Verb::Send {
            from,
            to,
            amount_sat,
        } => write!(f, "send {} BTC {from} -> {to}", btc(*amount_sat)),
        Verb::Rpc { node, method, .. } => write!(f, "rpc {node} {method}"),
        Verb::Logs { node, .. } => write!(f, "logs {node}"),
        _ => unreachable!("chain verbs only"),
    }
}

/// The network between the nodes: connect, disconnect, partition, heal, netem, cut, clear.
fn network_words(f: &mut fmt::Formatter<'_>, verb: &Verb) -> fmt::Result {
    match verb {
        Verb::Connect { a, b } => write!(f, "connect {a} {b}"),
        Verb::Disconnect { a, b } => write!(f, "disconnect {a} {b}"),
        Verb::Partition {
            kind,
            mode,
            via,
            reset,
            ..
        } => partition(f, kind, *mode, *via, *reset),
        Verb::Heal { sync: false, .. } => f.write_str("heal"),
        Verb::Heal { sync: true, .. } => f.write_str("heal and sync"),
        Verb::Netem { nodes, to, shaping } => {
            write!(f, "netem {}", nodes_or_all(nodes))?;
            if to.is_some() {
                write!(f, " to {}", nodes_or_all(to))?;
            }
            write!(f, ": {shaping}")
        }
        Verb::Cut {
            from,
            to,
            both,
            block,
        } => write!(
            f,
            "cut {} {} {} ({})",
            from.join(","),
            if *both { "<->" } else { "->" },
            to.join(","),
            block.name()
        ),
        Verb::Clear {
            nodes,
            shaping,
            cuts,
        } => {
            f.write_str(match (shaping, cuts) {
                (true, true) => "clear link faults",
                (true, false) => "clear netem",
                _ => "clear cuts",
            })?;
            match nodes {
                Some(n) => write!(f, " of {}", n.join(",")),
                None => Ok(()),
            }
        }
        _ => unreachable!("network verbs only"),
    }
}

/// Faults of one node or some: fault (stop, start, …), disk, clock, throttle.
fn node_words(f: &mut fmt::Formatter<'_>, verb: &Verb) -> fmt::Result {
    match verb {
        Verb::Fault { fault, node } => write!(f, "{} {node}", fault.name()),
        Verb::Disk { node, fill: true } => write!(f, "fill the disk of {node}"),
        Verb::Disk { node, fill: false } => write!(f, "free the disk of {node}"),
        Verb::Clock {
            nodes,
            offset: Some(0),
            drift: Some(clock::Drift::NONE),
        } => write!(f, "clock of {}: host's", nodes_or_all(nodes)),
        Verb::Clock {
            nodes,
            offset,
            drift,
        } => {
            write!(f, "clock of {}", nodes_or_all(nodes))?;
            if let Some(o) = offset {
                write!(f, " {}", clock::describe(*o))?;
            }
            match drift {
                Some(d) if d.is_none() => write!(f, ", not drifting"),
                Some(d) => write!(f, ", drifting {d}"),
                None => Ok(()),
            }
        }
        Verb::Throttle {
            nodes, clear: true, ..
        } => write!(f, "clear throttle of {}", nodes_or_all(nodes)),
        Verb::Throttle { nodes, limits, .. } => {
            write!(f, "throttle {}: {limits}", nodes_or_all(nodes))
        }
        _ => unreachable!("node verbs only"),
    }
}

/// The whole cluster: reset, snapshot, wait, sync, measure, apply, down.
fn cluster_words(f: &mut fmt::Formatter<'_>, verb: &Verb) -> fmt::Result {
    match verb {
        Verb::Reset { to: None, .. } => f.write_str("reset"),
        Verb::Reset { to: Some(to), .. } => write!(f, "reset to snapshot {to}"),
        Verb::Snapshot { name, .. } => write!(f, "snapshot {name}"),
        Verb::Wait { until, .. } => write!(f, "wait {until}"),
        Verb::Sync { .. } => f.write_str("sync"),
        Verb::Measure {
            kind, from, rounds, ..
        } => {
            write!(f, "measure {kind} propagation")?;
            if let Some(n) = from {
                write!(f, " from {n}")?;
            }
            write!(f, ", {rounds} round(s)")
        }
        Verb::Apply { spec, dry_run, .. } => {
            let word = if *dry_run { "plan" } else { "apply" };
            write!(f, "{word} {}", spec.name)
        }
        Verb::Down => f.write_str("down"),
        _ => unreachable!("cluster verbs only"),
    }
}

/// `partition …` as a verb's few words.
fn partition(
    f: &mut fmt::Formatter<'_>,
    kind: &PartitionKind,
    mode: CutMode,
    via: Via,
    reset: bool,
) -> fmt::Result {
    f.write_str("partition ")?;
    partition_kind(f, kind)?;
    if via == Via::Firewall {
        f.write_str(" via firewall")?;
    }
    match (mode, reset) {
        (CutMode::Silent, _) => f.write_str(" silent"),
        (CutMode::Drop, true) => f.write_str(" reset"),
        (CutMode::Drop, false) => Ok(()),
    }
}

fn partition_kind(f: &mut fmt::Formatter<'_>, kind: &PartitionKind) -> fmt::Result {
    match kind {
        PartitionKind::Groups(groups) => {
            let groups: Vec<String> = groups
                .iter()
                .map(|g| format!("[{}]", g.join(" ")))
                .collect();
            f.write_str(&groups.join(" "))
        }
        PartitionKind::Halves => f.write_str("halves"),
        PartitionKind::RandomHalves { seed } => write!(f, "random-halves seed {seed}"),
        PartitionKind::Isolate(node) => write!(f, "isolate {node}"),
        PartitionKind::Bridge => f.write_str("bridge"),
        PartitionKind::MajoritiesRing => f.write_str("majorities-ring"),
    }
}

pub const SATS_PER_BTC: u64 = 100_000_000;
/// All the bitcoin there will ever be, in satoshis.
pub const MAX_SATS: u64 = 21_000_000 * SATS_PER_BTC;

/// Satoshis as BTC, exact and trimmed: `2`, `0.00000001`.
pub fn btc(sats: u64) -> String {
    let text = format!("{}.{:08}", sats / SATS_PER_BTC, sats % SATS_PER_BTC);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// BTC as typed (`0.5`, `2`, `0.00000001`) to satoshis, exactly: no float is involved.
pub fn sats(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is no amount of BTC (more than 0, at most 8 decimals)");
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && frac.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 8 {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac: u64 = format!("{frac:0<8}").parse().map_err(|_| bad())?;
    let sats = whole
        .checked_mul(SATS_PER_BTC)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(bad)?;
    if sats == 0 || sats > MAX_SATS {
        return Err(bad());
    }
    Ok(sats)
}

/// An optional duration as a number of seconds in JSON.
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<f64>::deserialize(d)? {
            None => Ok(None),
            Some(s) => Duration::try_from_secs_f64(s)
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("{s} is no number of seconds"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One verb of every kind.
    fn one_of_each() -> Vec<Verb> {
        let node = |n: &str| n.to_string();
        vec![
            Verb::Status,
            Verb::Url { node: node("n0") },
            Verb::Mine {
                node: node("n0"),
                blocks: 3,
            },
            Verb::Send {
                from: node("n0"),
                to: node("1"),
                amount_sat: 5,
            },
            Verb::Connect {
                a: node("n0"),
                b: node("n2"),
            },
            Verb::Disconnect {
                a: node("n0"),
                b: node("n2"),
            },
            Verb::Partition {
                kind: PartitionKind::Groups(vec![vec![node("n0")]]),
                via: Via::Firewall,
                mode: CutMode::Silent,
                reset: false,
                timeout: Some(Duration::from_millis(1500)),
            },
            Verb::Heal {
                sync: true,
                timeout: None,
            },
            Verb::Netem {
                nodes: Some(vec![node("n1")]),
                to: None,
                shaping: Shaping {
                    delay_us: 20_000,
                    ..Shaping::default()
                },
            },
            Verb::Cut {
                from: vec![node("n0")],
                to: vec![node("n1")],
                both: false,
                block: Block::Reset,
            },
            Verb::Clear {
                nodes: None,
                shaping: true,
                cuts: false,
            },
            Verb::Fault {
                fault: Fault::Pause,
                node: node("n3"),
            },
            Verb::Throttle {
                nodes: Some(vec![node("n2")]),
                limits: Limits {
                    cpus: Some(0.05),
                    memory: Some(64 << 20),
                    io_rate: None,
                },
                clear: false,
            },
            Verb::Wait {
                until: WaitFor::Height {
                    node: Some(node("n2")),
                    height: 7,
                },
                timeout: None,
            },
            Verb::Sync {
                timeout: Some(Duration::from_secs(3)),
            },
            Verb::Measure {
                kind: Propagation::Tx,
                from: None,
                rounds: 2,
                timeout: None,
            },
            Verb::Rpc {
                node: node("n0"),
                method: "getblockhash".into(),
                params: vec![serde_json::json!(0)],
                timeout: None,
            },
            Verb::Logs {
                node: node("n0"),
                tail: Some(5),
                follow: true,
            },
            Verb::Apply {
                spec: Box::new(crate::core::cluster::manifest::ClusterSpec::default_ring4()),
                dry_run: true,
                timeout: None,
            },
            Verb::Down,
        ]
    }

    #[test]
    fn every_verb_survives_its_json_form_and_is_named_by_its_tag() {
        let verbs = one_of_each();
        let mut words: Vec<&str> = verbs.iter().map(Verb::word).collect();
        for v in &verbs {
            let json = serde_json::to_value(v).unwrap();
            assert_eq!(json["verb"], v.word(), "{v}");
            assert_eq!(&serde_json::from_value::<Verb>(json).unwrap(), v, "{v}");
        }
        words.sort();
        words.dedup();
        assert_eq!(
            words.len(),
            verbs.len(),
            "one verb of each kind, each its own word"
        );
    }

    #[test]
    fn a_body_names_its_verb_and_unknown_fields_are_refused() {
        let v: Verb = serde_json::from_str(r#"{"verb":"mine","node":"n0"}"#).unwrap();
        assert_eq!(
            v,
            Verb::Mine {
                node: "n0".into(),
                blocks: 1
            }
        );
        let e = serde_json::from_str::<Verb>(r#"{"verb":"mine","node":"n0","blocs":2}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `blocs`"), "{e}");
        let e = serde_json::from_str::<Verb>(r#"{"verb":"explode"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `explode`"), "{e}");
        let v: Verb = serde_json::from_str(r#"{"verb":"heal","timeout":2.5}"#).unwrap();
        assert_eq!(v.timeout(), Some(Duration::from_millis(2500)));
    }

    #[test]
    fn the_nodes_a_verb_names_are_its_own_strings() {
        let v = Verb::Cut {
            from: vec!["n0".into(), "n1".into()],
            to: vec!["3".into()],
            both: false,
            block: Block::Reset,
        };
        assert_eq!(v.nodes(), vec!["n0", "n1", "3"]);
        assert!(Verb::Status.nodes().is_empty());
        assert!(v.changes() && !Verb::Status.changes());
    }

    #[test]
    fn amounts_typed_in_btc_are_exact_satoshis() {
        assert_eq!(sats("0.1"), Ok(10_000_000));
        assert_eq!(sats("2"), Ok(200_000_000));
        assert_eq!(sats(".5"), Ok(50_000_000));
        assert_eq!(sats("0.00000001"), Ok(1));
        for bad in ["0", "-1", "1.123456789", "abc", "", ".", "21000001", "1e3"] {
            assert!(sats(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn btc_is_exact_and_trimmed() {
        assert_eq!(btc(1), "0.00000001");
        assert_eq!(btc(MAX_SATS), "21000000");
    }

    /// A verb's few words (a scenario step's default label, what a lock's holder is doing), for every
    /// form `Display` tells apart (`verb in JSON => its words`).
    #[test]
    fn every_verb_is_said_in_a_few_words() {
        let cases = r#"
{"verb":"status"} => status
{"verb":"url","node":"n0"} => url n0
{"verb":"mine","node":"n0","blocks":3} => mine n0 3
{"verb":"send","from":"n0","to":"1","amount_sat":150000000} => send 1.5 BTC n0 -> 1
{"verb":"connect","a":"n0","b":"n2"} => connect n0 n2
{"verb":"disconnect","a":"n0","b":"n2"} => disconnect n0 n2
{"verb":"partition","kind":{"groups":[["n0","n1"],["n2"]]},"via":"firewall","mode":"silent"} => partition [n0 n1] [n2] via firewall silent
{"verb":"partition","kind":"halves","via":"firewall","reset":true} => partition halves via firewall reset
{"verb":"partition","kind":{"random-halves":{"seed":7}}} => partition random-halves seed 7
{"verb":"partition","kind":{"isolate":"n3"}} => partition isolate n3
{"verb":"partition","kind":"bridge"} => partition bridge
{"verb":"partition","kind":"majorities-ring"} => partition majorities-ring
{"verb":"heal"} => heal
{"verb":"heal","sync":true} => heal and sync
{"verb":"netem","nodes":["n1","n2"],"to":["n3"],"shaping":{"delay_us":20000}} => netem n1,n2 to n3: delay 20ms
{"verb":"netem","shaping":{"loss":0.1}} => netem all: loss 10%
{"verb":"cut","from":["n0"],"to":["n1","n2"]} => cut n0 <-> n1,n2 (drop)
{"verb":"cut","from":["n0"],"to":["n1"],"both":false,"block":"reset"} => cut n0 -> n1 (reset)
{"verb":"clear","nodes":["n0","n1"],"shaping":true,"cuts":true} => clear link faults of n0,n1
{"verb":"clear","shaping":true} => clear netem
{"verb":"clear","cuts":true} => clear cuts
{"verb":"fault","fault":"pause","node":"n3"} => pause n3
{"verb":"disk","node":"n1","fill":true} => fill the disk of n1
{"verb":"disk","node":"n1","fill":false} => free the disk of n1
{"verb":"clock","offset":0,"drift":"0"} => clock of all: host's
{"verb":"clock","nodes":["n1"],"offset":10800,"drift":"+1s/min"} => clock of n1 +3h, drifting +1s/min
{"verb":"clock","nodes":["n1"],"drift":"0"} => clock of n1, not drifting
{"verb":"clock","offset":-90} => clock of all -1m30s
{"verb":"throttle","nodes":["n2"],"clear":true} => clear throttle of n2
{"verb":"throttle","limits":{"cpus":0.05,"memory":67108864}} => throttle all: cpus 0.05, memory 64 MiB
{"verb":"reset"} => reset
{"verb":"reset","to":"s1"} => reset to snapshot s1
{"verb":"snapshot","name":"s1"} => snapshot s1
{"verb":"wait","until":{"height":{"node":"n2","height":7}}} => wait height 7 on n2
{"verb":"sync"} => sync
{"verb":"measure","kind":"tx","from":"n1","rounds":2} => measure tx propagation from n1, 2 round(s)
{"verb":"measure"} => measure block propagation, 5 round(s)
{"verb":"rpc","node":"n0","method":"getblockhash"} => rpc n0 getblockhash
{"verb":"logs","node":"n0","tail":5} => logs n0
{"verb":"down"} => down
"#;
        for case in cases.trim().lines() {
            let (json, want) = case.split_once(" => ").unwrap();
            let v: Verb = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(v.to_string(), want, "{json}");
        }
        for (dry_run, want) in [(false, "apply regbox"), (true, "plan regbox")] {
            let spec = Box::new(crate::core::cluster::manifest::ClusterSpec::default_ring4());
            let v = Verb::Apply {
                spec,
                dry_run,
                timeout: None,
            };
            assert_eq!(v.to_string(), want);
        }
    }
}
