//! The scenario model: a cluster and the steps to run against it, the limits on them, and each
//! action's default label (its `Display`).

use std::fmt;
use std::time::Duration;

use serde_json::Value as Json;

use crate::core::chain::propagation::percent;
use crate::core::cluster::manifest::ClusterSpec;
use crate::core::verb::Verb;

pub const DEFAULT_SCENARIO: &str = include_str!("../../../manifests/split-and-heal.scenario.yaml");
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// A CI scenario that needs to wait longer than an hour for one condition is stuck: the limit of
/// every verb's `timeout` ([`crate::core::verb::MAX_TIMEOUT`]).
pub const MAX_SECONDS: u64 = crate::core::verb::MAX_TIMEOUT.as_secs();
/// Regtest mines fast, but not instantly: more than this in one step is a typo (the limit of every
/// `mine`).
pub const MAX_BLOCKS: u64 = crate::core::verb::MAX_BLOCKS;
/// Rounds of a `measure` step when it names none.
pub const DEFAULT_ROUNDS: usize = 5;
/// Heights are `int` in bitcoind.
pub(super) const MAX_HEIGHT: u64 = i32::MAX as u64;
pub(super) use crate::core::verb::{MAX_SATS, SATS_PER_BTC};
pub(super) const MAX_LABEL_CHARS: usize = 80;

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub cluster: ClusterSource,
    pub steps: Vec<Step>,
}

impl Scenario {
    /// Whether its cluster is still the one it declared when it ends (no `apply` or `down` step), so
    /// the next scenario of the same cluster can have it, reset, instead of a new one.
    pub fn keeps_its_cluster(&self) -> bool {
        !self.steps.iter().any(|s| {
            matches!(
                s.action,
                Action::Do {
                    verb: Verb::Apply { .. } | Verb::Down,
                    ..
                }
            )
        })
    }
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
    /// A verb of the vocabulary, carried out by the engine's executor as every door's verbs are;
    /// `then` is what the step does with its report.
    Do {
        verb: Verb,
        then: Then,
    },
    Assert(Check),
    Sleep(Duration),
}

/// What a step does with its verb's report.
#[derive(Debug, Clone, PartialEq)]
pub enum Then {
    /// Nothing: the step passes when the verb is carried out.
    Pass,
    /// `send` with `id`: the transaction is kept under this name for later steps.
    Name(String),
    /// `rpc` with `expect`: the result must equal this.
    Equals(Json),
    /// `measure` with `quantile` and `within`: at least that fraction of the other nodes' arrivals
    /// came within that time.
    Within { quantile: f64, within: Duration },
}

impl Action {
    /// A step that carries `verb` out and passes when it is done.
    pub fn verb(verb: Verb) -> Action {
        Action::Do {
            verb,
            then: Then::Pass,
        }
    }
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
    /// The step's default label: the verb in a few words (nodes as written), or the check.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Do { verb, then } => {
                write!(f, "{verb}")?;
                match then {
                    Then::Name(id) => write!(f, " as {id}"),
                    Then::Within { quantile, within } => {
                        write!(
                            f,
                            ": {} within {}s",
                            percent(*quantile),
                            within.as_secs_f64()
                        )
                    }
                    Then::Pass | Then::Equals(_) => Ok(()),
                }
            }
            Action::Sleep(d) => write!(f, "sleep {}s", d.as_secs_f64()),
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
        }
    }
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
