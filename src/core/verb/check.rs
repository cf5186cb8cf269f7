//! The bounds of the work one verb may start, checked before anything happens ([`Verb::check`], pure):
//! blocks per `mine`, satoshis per `send`, rounds of `measure`, lines of `logs`, the length of every
//! `timeout`, the blocks an `rpc` call of the `generate` family asks for. Every door's verbs pass
//! through it — the executor's entry (CLI, operator, library, soak), and a scenario's steps when the
//! file is loaded — so no request can keep a node or the operator busy for ever. Also what the
//! longest legitimate run of a verb is ([`Verb::budget`]), which the operator's request deadline is
//! made of.

use std::fmt;
use std::time::Duration;

use serde_json::Value as Json;

use crate::core::chain::propagation::MAX_ROUNDS;
use crate::core::faults::clock::MAX_OFFSET_S;
use crate::core::faults::throttle::Limits;
use crate::core::verb::{Verb, MAX_SATS};

/// Blocks one `mine` may ask for (and one `rpc` of the `generate` family). Regtest users mine 101 to
/// mature a coinbase, a few thousand at most; more in one request is a typo, and would keep the node
/// (and whoever asked) busy for minutes or for ever.
pub const MAX_BLOCKS: u64 = 10_000;

/// The longest `timeout` a verb may name: a wait of more than an hour for one condition is stuck.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// Rounds one `measure` may run.
pub const MAX_MEASURE_ROUNDS: usize = MAX_ROUNDS;

/// Lines of log one `logs` may ask for with `tail` (without `tail`, the whole log, which the reader
/// bounds in bytes).
pub const MAX_TAIL_LINES: usize = 100_000;

/// The longest RPC method name (bitcoind's longest is 30 characters).
pub const MAX_METHOD_CHARS: usize = 100;

/// How many waits of its timeout an `apply` may take (readiness, wiring, verification …).
pub const APPLY_WAITS: u32 = 5;

/// The longest a verb may be given to run whatever its limits say (a `measure` of many rounds with
/// long timeouts): two hours.
pub const MAX_BUDGET: Duration = Duration::from_secs(2 * 3600);

/// The RPC methods that mine, and the position of their block count.
const GENERATING: &[(&str, usize)] = &[
    ("generatetoaddress", 0),
    ("generatetodescriptor", 0),
    ("generate", 0),
];

/// A verb asked for more work than one request may start; the message names the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refuse(text: String) -> Result<(), Refused> {
    Err(Refused(text))
}

impl Verb {
    /// Whether the verb stays within the limits of one request (the constants of this module), before
    /// anything happens; the refusal names the field, the value and the limit. Pure: the nodes the verb
    /// names are checked against the cluster later, when it is open.
    pub fn check(&self) -> Result<(), Refused> {
        if let Some(t) = self.timeout() {
            if t > MAX_TIMEOUT {
                return refuse(format!(
                    "`timeout` {}s is over the limit of {}s",
                    t.as_secs_f64(),
                    MAX_TIMEOUT.as_secs()
                ));
            }
        }
        match self {
            Verb::Mine { blocks, .. } => blocks_within(*blocks, "`blocks`", "mine"),
            Verb::Send { amount_sat, .. } => {
                if *amount_sat == 0 || *amount_sat > MAX_SATS {
                    return refuse(format!(
                        "`amount_sat` {amount_sat} is out of range: more than 0 and at most \
                         {MAX_SATS} (21 million BTC)"
                    ));
                }
                Ok(())
            }
            Verb::Measure { rounds, .. } => {
                if *rounds == 0 || *rounds > MAX_MEASURE_ROUNDS {
                    return refuse(format!(
                        "`rounds` {rounds} is out of range: at least 1 and at most \
                         {MAX_MEASURE_ROUNDS} rounds per measure"
                    ));
                }
                Ok(())
            }
            Verb::Logs {
                tail: Some(tail), ..
            } if *tail > MAX_TAIL_LINES => refuse(format!(
                "`tail` {tail} is over the limit of {MAX_TAIL_LINES} lines per logs"
            )),
            Verb::Clock {
                offset: None,
                drift: None,
                ..
            } => refuse("give `offset`, `drift` or both".into()),
            Verb::Clock {
                offset: Some(offset),
                ..
            } if offset.abs() > MAX_OFFSET_S => refuse(format!(
                "`offset` {offset}s is out of range: at most {MAX_OFFSET_S}s ({} days) either way",
                MAX_OFFSET_S / 86_400
            )),
            Verb::Clock {
                nodes: Some(nodes), ..
            } if nodes.is_empty() => {
                refuse("`nodes` names no node (leave it out for every node)".into())
            }
            Verb::Throttle { limits, clear, .. } => throttle_within(limits, *clear),
            Verb::Netem { shaping, .. } => match shaping.invalid() {
                Some(why) => refuse(format!("`shaping`: {why}")),
                None => Ok(()),
            },
            Verb::Rpc { method, params, .. } => {
                if method.is_empty() || method.chars().count() > MAX_METHOD_CHARS {
                    return refuse(format!(
                        "`method` must be 1 to {MAX_METHOD_CHARS} characters"
                    ));
                }
                let Some((_, at)) = GENERATING.iter().find(|(m, _)| *m == method) else {
                    return Ok(());
                };
                match params.get(*at) {
                    Some(Json::Number(n)) => match n.as_u64() {
                        Some(blocks) => blocks_within(blocks, "its block count", method),
                        None => refuse(format!(
                            "`{method}`: the block count {n} is out of range: at least 1 and at \
                             most {MAX_BLOCKS} blocks per {method}"
                        )),
                    },
                    _ => Ok(()), // bitcoind refuses it on its own
                }
            }
            Verb::Reset { to: Some(name), .. } | Verb::Snapshot { name, .. } => {
                crate::core::cluster::init::check_name(name).map_err(Refused)
            }
            Verb::Apply { spec, .. } => spec
                .validate()
                .map_err(|e| Refused(format!("the spec of cluster `{}`: {e}", spec.name))),
            _ => Ok(()),
        }
    }

    /// The longest the verb may take when each of its waits lasts `timeout` unless it names its own:
    /// one timeout for most, one per round (and one more) for `measure`, two for `heal` with `sync`,
    /// [`APPLY_WAITS`] for `apply`; never more than [`MAX_BUDGET`]. `logs` with `follow` streams for
    /// as long as its reader wants and has none.
    pub fn budget(&self, timeout: Duration) -> Duration {
        let t = self.timeout().unwrap_or(timeout);
        let waits: u32 = match self {
            Verb::Measure { rounds, .. } => {
                u32::try_from(*rounds).unwrap_or(u32::MAX).saturating_add(1)
            }
            Verb::Heal { sync: true, .. } => 2,
            Verb::Apply { .. } => APPLY_WAITS,
            _ => 1,
        };
        t.saturating_mul(waits).min(MAX_BUDGET)
    }
}

/// A throttle names at least one limit, each within its bounds; a clear names none.
fn throttle_within(limits: &Limits, clear: bool) -> Result<(), Refused> {
    match (clear, limits.is_empty()) {
        (true, false) => refuse(format!("`clear` takes no limits, got {limits}")),
        (false, true) => refuse("no limit given: name `cpus` or `memory` (or `clear`)".into()),
        _ => limits.invalid().map_or(Ok(()), refuse),
    }
}

/// `blocks` within 1..=[`MAX_BLOCKS`], else a refusal naming `what` of `verb`.
fn blocks_within(blocks: u64, what: &str, verb: &str) -> Result<(), Refused> {
    if blocks == 0 {
        return refuse(format!("{what} must be at least 1"));
    }
    if blocks > MAX_BLOCKS {
        return refuse(format!(
            "{what} {blocks} is over the limit of {MAX_BLOCKS} blocks per {verb}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::faults::link::Shaping;

    fn mine(blocks: u64) -> Verb {
        Verb::Mine {
            node: "n0".into(),
            blocks,
        }
    }

    fn refusal(v: &Verb) -> String {
        v.check().expect_err("refused").to_string()
    }

    #[test]
    fn a_mine_is_refused_over_the_limit_naming_it() {
        assert_eq!(mine(1).check(), Ok(()));
        assert_eq!(mine(101).check(), Ok(()));
        assert_eq!(mine(MAX_BLOCKS).check(), Ok(()));
        assert_eq!(
            refusal(&mine(100_000_000)),
            "`blocks` 100000000 is over the limit of 10000 blocks per mine"
        );
        assert_eq!(
            refusal(&mine(MAX_BLOCKS + 1)),
            "`blocks` 10001 is over the limit of 10000 blocks per mine"
        );
        assert_eq!(refusal(&mine(0)), "`blocks` must be at least 1");
    }

    #[test]
    fn every_timeout_is_at_most_an_hour() {
        let wait = |secs: f64| Verb::Sync {
            timeout: Some(Duration::from_secs_f64(secs)),
        };
        assert_eq!(wait(3600.0).check(), Ok(()));
        assert_eq!(
            refusal(&wait(3600.5)),
            "`timeout` 3600.5s is over the limit of 3600s"
        );
        let json = r#"{"verb":"heal","sync":true,"timeout":1e12}"#;
        let heal: Verb = serde_json::from_str(json).unwrap();
        assert!(refusal(&heal).contains("over the limit of 3600s"));
        let json = r#"{"verb":"rpc","node":"n0","method":"getblockcount","timeout":86400}"#;
        let rpc: Verb = serde_json::from_str(json).unwrap();
        assert!(refusal(&rpc).contains("`timeout` 86400s"));
    }

    #[test]
    fn amounts_rounds_tails_and_shaping_have_limits() {
        let send = |amount_sat| Verb::Send {
            from: "n0".into(),
            to: "n1".into(),
            amount_sat,
        };
        assert_eq!(send(1).check(), Ok(()));
        assert_eq!(send(MAX_SATS).check(), Ok(()));
        assert!(refusal(&send(0)).contains("`amount_sat` 0 is out of range"));
        assert!(refusal(&send(MAX_SATS + 1)).contains("at most 2100000000000000"));
        let measure = |rounds| Verb::Measure {
            kind: crate::core::chain::propagation::Kind::Block,
            from: None,
            rounds,
            timeout: None,
        };
        assert_eq!(measure(5).check(), Ok(()));
        assert!(refusal(&measure(0)).contains("`rounds` 0 is out of range"));
        assert!(refusal(&measure(1001)).contains("at most 1000 rounds per measure"));
        let logs = |tail| Verb::Logs {
            node: "n0".into(),
            tail,
            follow: false,
        };
        assert_eq!(logs(None).check(), Ok(()));
        assert_eq!(logs(Some(MAX_TAIL_LINES)).check(), Ok(()));
        assert_eq!(
            refusal(&logs(Some(1 << 40))),
            "`tail` 1099511627776 is over the limit of 100000 lines per logs"
        );
        let netem = Verb::Netem {
            nodes: None,
            to: None,
            shaping: Shaping {
                delay_us: 3_600_000_000,
                ..Shaping::default()
            },
        };
        assert_eq!(
            refusal(&netem),
            "`shaping`: delay and jitter must be at most 60s"
        );
    }

    /// `rpc` is no way around the limit of `mine`.
    #[test]
    fn an_rpc_that_mines_has_the_limit_of_mine() {
        let rpc = |method: &str, params: Json| Verb::Rpc {
            node: "n0".into(),
            method: method.into(),
            params: params.as_array().unwrap().clone(),
            timeout: None,
        };
        let addr = "bcrt1qxyz";
        assert_eq!(
            rpc("generatetoaddress", serde_json::json!([101, addr])).check(),
            Ok(())
        );
        assert_eq!(
            refusal(&rpc(
                "generatetoaddress",
                serde_json::json!([100_000_000, addr])
            )),
            "its block count 100000000 is over the limit of 10000 blocks per generatetoaddress"
        );
        assert!(refusal(&rpc(
            "generatetodescriptor",
            serde_json::json!([-1, "raw(51)"])
        ))
        .contains("out of range"));
        assert_eq!(rpc("getblockcount", serde_json::json!([])).check(), Ok(()));
        assert!(refusal(&rpc("", serde_json::json!([]))).contains("`method` must be 1 to 100"));
    }

    #[test]
    fn a_throttle_names_a_limit_within_bounds_and_a_clear_none() {
        let throttle = |json: &str| -> Verb { serde_json::from_str(json).unwrap() };
        let ok = throttle(r#"{"verb":"throttle","nodes":["n2"],"limits":{"cpus":0.05}}"#);
        assert_eq!(ok.check(), Ok(()));
        assert_eq!(
            throttle(r#"{"verb":"throttle","clear":true}"#).check(),
            Ok(())
        );
        assert_eq!(
            refusal(&throttle(r#"{"verb":"throttle","nodes":["n2"]}"#)),
            "no limit given: name `cpus` or `memory` (or `clear`)"
        );
        let zero = throttle(r#"{"verb":"throttle","nodes":["n2"],"limits":{"cpus":0}}"#);
        assert!(refusal(&zero).contains("`cpus` 0 is out of range"));
        let small = throttle(r#"{"verb":"throttle","nodes":["n2"],"limits":{"memory":1024}}"#);
        assert!(refusal(&small).contains("`memory` 1 KiB is out of range: at least 32 MiB"));
        let io = throttle(r#"{"verb":"throttle","nodes":["n2"],"limits":{"io_rate":1000}}"#);
        assert!(refusal(&io).contains("cannot be applied at run time"));
        let both = throttle(r#"{"verb":"throttle","clear":true,"limits":{"cpus":1}}"#);
        assert!(refusal(&both).contains("`clear` takes no limits"));
    }

    #[test]
    fn a_budget_is_the_waits_a_verb_may_make() {
        let t = Duration::from_secs(60);
        assert_eq!(Verb::Status.budget(t), t);
        let measure = Verb::Measure {
            kind: crate::core::chain::propagation::Kind::Block,
            from: None,
            rounds: 5,
            timeout: Some(Duration::from_secs(10)),
        };
        assert_eq!(measure.budget(t), Duration::from_secs(60));
        let heal = Verb::Heal {
            sync: true,
            timeout: None,
        };
        assert_eq!(heal.budget(t), Duration::from_secs(120));
        let big = Verb::Measure {
            kind: crate::core::chain::propagation::Kind::Block,
            from: None,
            rounds: 1000,
            timeout: Some(MAX_TIMEOUT),
        };
        assert_eq!(big.budget(t), MAX_BUDGET);
    }
}
