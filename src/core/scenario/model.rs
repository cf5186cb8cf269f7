//! The scenario model: a cluster and the steps to run against it, the limits on them, and each
//! action's default label (its `Display`).

use std::fmt;
use std::time::Duration;

use serde_json::Value as Json;

use crate::core::fault::Fault;
use crate::core::firewall::Block;
use crate::core::link::Shaping;
use crate::core::manifest::ClusterSpec;
use crate::core::partition::{CutMode, PartitionKind, Via};
use crate::core::propagation::{percent, Kind as Propagation};
use crate::core::wait::WaitFor;

pub const DEFAULT_SCENARIO: &str = include_str!("../../../manifests/split-and-heal.scenario.yaml");
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// A CI scenario that needs to wait longer than an hour for one condition is stuck.
pub const MAX_SECONDS: u64 = 3600;
/// Regtest mines fast, but not instantly: more than this in one step is a typo.
pub const MAX_BLOCKS: u64 = 10_000;
/// Rounds of a `measure` step when it names none.
pub const DEFAULT_ROUNDS: usize = 5;
/// Heights are `int` in bitcoind.
pub(super) const MAX_HEIGHT: u64 = i32::MAX as u64;
pub(super) const SATS_PER_BTC: u64 = 100_000_000;
pub(super) const MAX_SATS: u64 = 21_000_000 * SATS_PER_BTC;
pub(super) const MAX_LABEL_CHARS: usize = 80;

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub cluster: ClusterSource,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClusterSource {
    Inline(ClusterSpec),
    /// As written, relative to the scenario file; the position is the path's, for
    /// errors in loading it.
    File {
        path: String,
        line: usize,
        column: usize,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The step's `name`, or a summary of the action such as `mine n0 101`.
    pub label: String,
    /// Where the action key (or bare word) is, 1-based like `SourceError`.
    pub line: usize,
    pub column: usize,
    pub action: Action,
}

/// Node references are kept as written (a name or a decimal index); resolve
/// them with [`ClusterSpec::resolve`] once [`validate`](super::validate) has passed.
#[derive(Debug, Clone, PartialEq)]
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
        via: Via,
        /// With `via: firewall`: stopped TCP packets are answered with a reset.
        reset: bool,
    },
    /// Shapes the P2P packets of `nodes` (every node for `None`) to `to` (everyone for `None`).
    Netem {
        nodes: Option<Vec<String>>,
        to: Option<Vec<String>>,
        shaping: Shaping,
    },
    /// Stops the packets of `from` to `to` (and back when `both`).
    Cut {
        from: Vec<String>,
        to: Vec<String>,
        both: bool,
        block: Block,
    },
    /// Removes every node's shaping and/or cuts.
    Clear {
        shaping: bool,
        cuts: bool,
    },
    Heal {
        sync: bool,
        timeout: Duration,
    },
    Fault {
        fault: Fault,
        node: String,
    },
    /// Waits on a condition shared with the library (`core::wait`), not a translation of it.
    Wait {
        until: WaitFor,
        timeout: Duration,
    },
    Assert(Check),
    Rpc {
        node: String,
        method: String,
        params: Vec<Json>,
        expect: Option<Json>,
    },
    Sleep(Duration),
    /// Propagation of blocks or transactions from `from` (default: the first node) over `rounds`
    /// rounds; passes when at least a fraction `quantile` of the other nodes' arrivals came within
    /// `within`.
    Measure {
        kind: Propagation,
        from: Option<String>,
        rounds: usize,
        quantile: f64,
        within: Duration,
        timeout: Duration,
    },
}

/// `None` in a node list means every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    SameTip(Option<Vec<String>>),
    DifferentTips(Vec<String>),
    Height {
        node: Option<String>,
        height: u64,
    },
    TipOf {
        a: String,
        b: String,
    },
    /// `tx: None` means the transaction of the last `send` before this step.
    MempoolHas {
        node: String,
        tx: Option<String>,
    },
    /// `node`'s chain holds exactly `count` tips besides the active one (`getchaintips`): blocks
    /// that lost a race, i.e. forks it saw.
    StaleTips {
        node: String,
        count: u64,
    },
}

impl fmt::Display for Action {
    /// The step's default label: the action in a few words, nodes as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Mine { node, blocks } => write!(f, "mine {node} {blocks}"),
            Action::Send {
                from,
                to,
                amount_sat,
                id,
            } => {
                write!(f, "send {} BTC {from} -> {to}", btc(*amount_sat))?;
                match id {
                    Some(id) => write!(f, " as {id}"),
                    None => Ok(()),
                }
            }
            Action::Connect { a, b } => write!(f, "connect {a} {b}"),
            Action::Disconnect { a, b } => write!(f, "disconnect {a} {b}"),
            Action::Partition {
                kind,
                mode,
                via,
                reset,
            } => {
                f.write_str("partition ")?;
                match kind {
                    PartitionKind::Groups(groups) => {
                        let groups: Vec<String> = groups
                            .iter()
                            .map(|g| format!("[{}]", g.join(" ")))
                            .collect();
                        f.write_str(&groups.join(" "))?
                    }
                    PartitionKind::Halves => f.write_str("halves")?,
                    PartitionKind::RandomHalves { seed } => write!(f, "random-halves seed {seed}")?,
                    PartitionKind::Isolate(node) => write!(f, "isolate {node}")?,
                    PartitionKind::Bridge => f.write_str("bridge")?,
                    PartitionKind::MajoritiesRing => f.write_str("majorities-ring")?,
                }
                if *via == Via::Firewall {
                    f.write_str(" via firewall")?;
                }
                match (mode, reset) {
                    (CutMode::Silent, _) => f.write_str(" silent"),
                    (CutMode::Drop, true) => f.write_str(" reset"),
                    (CutMode::Drop, false) => Ok(()),
                }
            }
            Action::Netem { nodes, to, shaping } => {
                let all =
                    |n: &Option<Vec<String>>| n.as_ref().map_or("all".into(), |n| n.join(","));
                write!(f, "netem {}", all(nodes))?;
                if to.is_some() {
                    write!(f, " to {}", all(to))?;
                }
                write!(f, ": {shaping}")
            }
            Action::Cut {
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
            Action::Clear { shaping, cuts } => f.write_str(match (shaping, cuts) {
                (true, true) => "clear link faults",
                (true, false) => "clear netem",
                _ => "clear cuts",
            }),
            Action::Heal { sync: false, .. } => f.write_str("heal"),
            Action::Heal { sync: true, .. } => f.write_str("heal and sync"),
            Action::Fault { fault, node } => write!(f, "{} {node}", fault.name()),
            Action::Wait { until, .. } => write!(f, "wait {until}"),
            Action::Assert(check) => {
                f.write_str("assert ")?;
                match check {
                    Check::SameTip(nodes) => write!(f, "same_tip{}", list(nodes)),
                    Check::DifferentTips(nodes) => {
                        write!(f, "different_tips {}", nodes.join(" "))
                    }
                    Check::Height { node, height } => write!(f, "height {height}{}", on(node)),
                    Check::TipOf { a, b } => write!(f, "tip_of {a} == tip_of {b}"),
                    Check::MempoolHas { node, tx } => {
                        write!(f, "mempool_has {node}{}", on_tx(tx))
                    }
                    Check::StaleTips { node, count } => write!(f, "stale_tips {node} == {count}"),
                }
            }
            Action::Rpc { node, method, .. } => write!(f, "rpc {node} {method}"),
            Action::Sleep(d) => write!(f, "sleep {}s", d.as_secs_f64()),
            Action::Measure {
                kind,
                from,
                rounds,
                quantile,
                within,
                ..
            } => write!(
                f,
                "measure {kind} propagation{}, {rounds} round(s): {} within {}s",
                from.as_ref()
                    .map_or(String::new(), |n| format!(" from {n}")),
                percent(*quantile),
                within.as_secs_f64()
            ),
        }
    }
}

fn btc(sats: u64) -> String {
    let text = format!("{}.{:08}", sats / SATS_PER_BTC, sats % SATS_PER_BTC);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn list(nodes: &Option<Vec<String>>) -> String {
    nodes
        .as_ref()
        .map_or(String::new(), |n| format!(" {}", n.join(" ")))
}

fn on_tx(tx: &Option<String>) -> String {
    tx.as_ref().map_or(String::new(), |t| format!(" {t}"))
}

fn on(node: &Option<String>) -> String {
    node.as_ref().map_or(String::new(), |n| format!(" on {n}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btc_is_exact_and_trimmed() {
        assert_eq!(btc(1), "0.00000001");
        assert_eq!(btc(MAX_SATS), "21000000");
    }
}
