//! The event log of `regbox soak`: one JSON object per line (what happened, seconds after the start),
//! reading and writing those lines, and the [`Summary`] of a log that the report draws.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::core::soak::schedule::FaultKind;

/// One line of the log: `{"t":12.5,"kind":"block","node":"n3","height":104,"hash":"…"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Seconds since the start of the run (finite).
    pub t: f64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened; `kind` in the JSON names the variant in snake case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The run begins (always the first line).
    Start {
        cluster: String,
        seed: u64,
        nodes: Vec<String>,
        duration_s: f64,
        /// The `--faults` kinds, as spelled.
        faults: Vec<String>,
    },
    /// A scheduled fault begins.
    Fault {
        step: usize,
        fault: FaultKind,
        nodes: Vec<String>,
        /// The step described for people (`{n0, n2} | {n1}`, `kill n2, start after 30s`).
        detail: String,
    },
    /// A scheduled fault is over (nodes started again, partition healed, shaping cleared).
    FaultEnd {
        step: usize,
        fault: FaultKind,
        nodes: Vec<String>,
    },
    /// Background activity mined a block on `node`.
    Block {
        node: String,
        height: u64,
        hash: String,
    },
    /// Background activity sent a transaction between two wallets.
    Tx {
        from: String,
        to: String,
        txid: String,
    },
    /// A node's best tip changed; `reorg_depth` is how many blocks it left (0: the tip was extended).
    Tip {
        node: String,
        height: u64,
        hash: String,
        reorg_depth: u64,
    },
    /// All running nodes reached one most-work tip, `seconds` after step `step` ended.
    Converged { step: usize, seconds: f64 },
    /// Block `hash` reached every running node, `seconds` after it was mined.
    Propagation { hash: String, seconds: f64 },
    /// An invariant was checked: after step `step` ended, or at the end of the run when `step` is absent.
    Invariant {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<usize>,
        name: String,
        ok: bool,
        /// The nodes that broke it (empty when it held).
        nodes: Vec<String>,
        detail: String,
    },
    /// A node stopped without being told to, or its bitcoind died.
    Crash { node: String, detail: String },
    /// The run is over (always the last line); `reason` says why it failed or stopped early.
    End {
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

#[derive(Debug, Error)]
pub enum EventError {
    #[error("parse event log line {line}")]
    Parse {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

impl Event {
    pub fn new(t: f64, kind: EventKind) -> Event {
        Event { t, kind }
    }

    /// The event as one line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        // Serialising plain data with string keys cannot fail; a non-finite `t` would come out as null.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The event on one line of JSON (`line` counts from 1, for the error).
    pub fn parse_line(text: &str, line: usize) -> Result<Event, EventError> {
        serde_json::from_str(text).map_err(|source| EventError::Parse { line, source })
    }
}

/// Every event of a JSONL log; blank lines are skipped.
pub fn parse_log(text: &str) -> Result<Vec<Event>, EventError> {
    (text.lines().enumerate())
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| Event::parse_line(l, i + 1))
        .collect()
}

/// One fault from its start to its end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultInterval {
    pub step: usize,
    pub fault: FaultKind,
    pub nodes: Vec<String>,
    pub detail: String,
    pub start: f64,
    /// `None` when the log ends before the fault does.
    pub end: Option<f64>,
}

/// A node leaving `depth` blocks of its chain for another.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reorg {
    pub t: f64,
    pub node: String,
    /// The height of the new tip.
    pub height: u64,
    pub depth: u64,
}

/// An invariant check, as logged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvariantResult {
    pub t: f64,
    pub step: Option<usize>,
    pub name: String,
    pub ok: bool,
    pub nodes: Vec<String>,
    pub detail: String,
}

/// What the report shows of a log, folded from its events in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub cluster: String,
    pub seed: u64,
    /// The `Start` event's nodes, then any other node named by a block or tip, in order of appearance.
    pub nodes: Vec<String>,
    /// The planned duration (the `Start` event's).
    pub duration_s: f64,
    /// The time of the last event.
    pub last_t: f64,
    pub faults: Vec<String>,
    /// The `End` event's verdict; `None` when the log has none (the run was cut short).
    pub ok: Option<bool>,
    pub reason: Option<String>,
    /// Per node, `(t, height)` at every tip change and every block it mined, in time order.
    pub heights: BTreeMap<String, Vec<(f64, u64)>>,
    pub reorgs: Vec<Reorg>,
    /// Competing blocks seen: for each height, the distinct hashes some node had as its tip (or mined)
    /// there, less one. A fork that two nodes each extend by three blocks counts 3; blocks on the
    /// losing side that no node had as its tip do not count.
    pub forks: u64,
    /// `(step, seconds)` per `Converged` event.
    pub convergence: Vec<(usize, f64)>,
    /// `(t, seconds)` per `Propagation` event.
    pub propagation: Vec<(f64, f64)>,
    pub fault_intervals: Vec<FaultInterval>,
    pub invariants: Vec<InvariantResult>,
    /// `(t, node, detail)` per `Crash` event.
    pub crashes: Vec<(f64, String, String)>,
    pub blocks: usize,
    pub txs: usize,
}

impl Summary {
    /// How many invariant checks failed.
    pub fn failed_invariants(&self) -> usize {
        self.invariants.iter().filter(|i| !i.ok).count()
    }

    /// The convergence time after `step` ended, if it was logged.
    pub fn converged_after(&self, step: usize) -> Option<f64> {
        (self.convergence.iter())
            .find(|(s, _)| *s == step)
            .map(|(_, secs)| *secs)
    }
}

/// Notes that `node` was at `height` at `t`.
fn saw(s: &mut Summary, node: &str, t: f64, height: u64) {
    if !s.nodes.iter().any(|n| n == node) {
        s.nodes.push(node.to_owned());
    }
    s.heights
        .entry(node.to_owned())
        .or_default()
        .push((t, height));
}

/// Folds a log into its [`Summary`].
pub fn summarize(events: &[Event]) -> Summary {
    let mut s = Summary::default();
    let mut tips: BTreeMap<u64, BTreeSet<&str>> = BTreeMap::new();
    for e in events {
        let t = e.t;
        s.last_t = s.last_t.max(t);
        match &e.kind {
            EventKind::Start {
                cluster,
                seed,
                nodes,
                duration_s,
                faults,
            } => {
                s.cluster = cluster.clone();
                s.seed = *seed;
                for n in nodes {
                    if !s.nodes.contains(n) {
                        s.nodes.push(n.clone());
                    }
                }
                s.duration_s = *duration_s;
                s.faults = faults.clone();
            }
            EventKind::Fault {
                step,
                fault,
                nodes,
                detail,
            } => s.fault_intervals.push(FaultInterval {
                step: *step,
                fault: *fault,
                nodes: nodes.clone(),
                detail: detail.clone(),
                start: t,
                end: None,
            }),
            EventKind::FaultEnd { step, .. } => {
                if let Some(f) = (s.fault_intervals.iter_mut())
                    .rev()
                    .find(|f| f.step == *step && f.end.is_none())
                {
                    f.end = Some(t);
                }
            }
            EventKind::Block { node, height, hash } => {
                s.blocks += 1;
                saw(&mut s, node, t, *height);
                tips.entry(*height).or_default().insert(hash);
            }
            EventKind::Tx { .. } => s.txs += 1,
            EventKind::Tip {
                node,
                height,
                hash,
                reorg_depth,
            } => {
                saw(&mut s, node, t, *height);
                tips.entry(*height).or_default().insert(hash);
                if *reorg_depth > 0 {
                    s.reorgs.push(Reorg {
                        t,
                        node: node.clone(),
                        height: *height,
                        depth: *reorg_depth,
                    });
                }
            }
            EventKind::Converged { step, seconds } => s.convergence.push((*step, *seconds)),
            EventKind::Propagation { seconds, .. } => s.propagation.push((t, *seconds)),
            EventKind::Invariant {
                step,
                name,
                ok,
                nodes,
                detail,
            } => s.invariants.push(InvariantResult {
                t,
                step: *step,
                name: name.clone(),
                ok: *ok,
                nodes: nodes.clone(),
                detail: detail.clone(),
            }),
            EventKind::Crash { node, detail } => s.crashes.push((t, node.clone(), detail.clone())),
            EventKind::End { ok, reason } => {
                s.ok = Some(*ok);
                s.reason = reason.clone();
            }
        }
    }
    s.forks = tips.values().map(|h| h.len() as u64 - 1).sum();
    for series in s.heights.values_mut() {
        series.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: f64, kind: EventKind) -> Event {
        Event::new(t, kind)
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn tip(t: f64, node: &str, height: u64, hash: &str, reorg_depth: u64) -> Event {
        ev(
            t,
            EventKind::Tip {
                node: node.into(),
                height,
                hash: hash.into(),
                reorg_depth,
            },
        )
    }

    /// One event of every kind, with the line each one is written as.
    fn every_kind() -> Vec<(Event, &'static str)> {
        vec![
            (
                ev(
                    0.0,
                    EventKind::Start {
                        cluster: "soak".into(),
                        seed: 42,
                        nodes: names(&["n0", "n1"]),
                        duration_s: 3600.0,
                        faults: names(&["partition", "kill"]),
                    },
                ),
                r#"{"t":0.0,"kind":"start","cluster":"soak","seed":42,"nodes":["n0","n1"],"duration_s":3600.0,"faults":["partition","kill"]}"#,
            ),
            (
                ev(
                    61.2,
                    EventKind::Fault {
                        step: 0,
                        fault: FaultKind::Partition,
                        nodes: names(&["n0", "n1"]),
                        detail: "{n0} | {n1}".into(),
                    },
                ),
                r#"{"t":61.2,"kind":"fault","step":0,"fault":"partition","nodes":["n0","n1"],"detail":"{n0} | {n1}"}"#,
            ),
            (
                ev(
                    90.0,
                    EventKind::FaultEnd {
                        step: 0,
                        fault: FaultKind::Partition,
                        nodes: names(&["n0", "n1"]),
                    },
                ),
                r#"{"t":90.0,"kind":"fault_end","step":0,"fault":"partition","nodes":["n0","n1"]}"#,
            ),
            (
                ev(
                    70.5,
                    EventKind::Block {
                        node: "n1".into(),
                        height: 105,
                        hash: "3f2a".into(),
                    },
                ),
                r#"{"t":70.5,"kind":"block","node":"n1","height":105,"hash":"3f2a"}"#,
            ),
            (
                ev(
                    71.0,
                    EventKind::Tx {
                        from: "n0".into(),
                        to: "n1".into(),
                        txid: "9c1e".into(),
                    },
                ),
                r#"{"t":71.0,"kind":"tx","from":"n0","to":"n1","txid":"9c1e"}"#,
            ),
            (
                tip(91.5, "n0", 106, "5b7d", 2),
                r#"{"t":91.5,"kind":"tip","node":"n0","height":106,"hash":"5b7d","reorg_depth":2}"#,
            ),
            (
                ev(
                    92.0,
                    EventKind::Converged {
                        step: 0,
                        seconds: 2.0,
                    },
                ),
                r#"{"t":92.0,"kind":"converged","step":0,"seconds":2.0}"#,
            ),
            (
                ev(
                    70.9,
                    EventKind::Propagation {
                        hash: "3f2a".into(),
                        seconds: 0.4,
                    },
                ),
                r#"{"t":70.9,"kind":"propagation","hash":"3f2a","seconds":0.4}"#,
            ),
            (
                ev(
                    92.0,
                    EventKind::Invariant {
                        step: Some(0),
                        name: "converged".into(),
                        ok: true,
                        nodes: vec![],
                        detail: "2 nodes on 5b7d at height 106".into(),
                    },
                ),
                r#"{"t":92.0,"kind":"invariant","step":0,"name":"converged","ok":true,"nodes":[],"detail":"2 nodes on 5b7d at height 106"}"#,
            ),
            (
                ev(
                    95.0,
                    EventKind::Crash {
                        node: "n1".into(),
                        detail: "exited with code 139".into(),
                    },
                ),
                r#"{"t":95.0,"kind":"crash","node":"n1","detail":"exited with code 139"}"#,
            ),
            (
                ev(
                    3600.0,
                    EventKind::End {
                        ok: false,
                        reason: Some("n1 crashed".into()),
                    },
                ),
                r#"{"t":3600.0,"kind":"end","ok":false,"reason":"n1 crashed"}"#,
            ),
        ]
    }

    #[test]
    fn every_kind_writes_and_reads_back_as_documented() {
        for (event, line) in every_kind() {
            assert_eq!(event.to_line(), line);
            assert_eq!(Event::parse_line(line, 1).unwrap(), event);
        }
        // Optional fields may be left out.
        let end = Event::parse_line(r#"{"t":1,"kind":"end","ok":true}"#, 1).unwrap();
        assert_eq!(
            end.kind,
            EventKind::End {
                ok: true,
                reason: None
            }
        );
        let final_check = ev(
            5.0,
            EventKind::Invariant {
                step: None,
                name: "no_crash".into(),
                ok: true,
                nodes: vec![],
                detail: String::new(),
            },
        );
        assert!(!final_check.to_line().contains("step"));
        assert_eq!(
            Event::parse_line(&final_check.to_line(), 1).unwrap(),
            final_check
        );
    }

    #[test]
    fn a_bad_line_is_named_by_its_number() {
        let text = "{\"t\":0,\"kind\":\"end\",\"ok\":true}\n\n{\"t\":1,\"kind\":\"party\"}\n";
        let err = parse_log(text).unwrap_err();
        let EventError::Parse { line, source } = &err;
        assert_eq!(*line, 3);
        assert!(
            source.to_string().contains("unknown variant `party`"),
            "{source}"
        );
        assert_eq!(err.to_string(), "parse event log line 3");
        let lines: Vec<String> = every_kind().iter().map(|(_, l)| l.to_string()).collect();
        assert_eq!(parse_log(&lines.join("\n")).unwrap().len(), lines.len());
    }

    #[test]
    fn the_summary_folds_heights_reorgs_forks_and_faults() {
        let mut events: Vec<Event> = every_kind().into_iter().map(|(e, _)| e).collect();
        events.extend([
            tip(70.6, "n1", 105, "3f2a", 0),
            tip(72.0, "n0", 105, "aaaa", 0),
            tip(73.0, "n0", 106, "5b7c", 0),
            tip(93.0, "n1", 106, "5b7d", 0),
            tip(94.0, "n2", 106, "5b7d", 0),
        ]);
        let s = summarize(&events);
        assert_eq!(s.cluster, "soak");
        assert_eq!(s.seed, 42);
        assert_eq!(s.nodes, names(&["n0", "n1", "n2"]));
        assert_eq!(s.duration_s, 3600.0);
        assert_eq!(s.last_t, 3600.0);
        assert_eq!(
            (s.ok, s.reason.as_deref()),
            (Some(false), Some("n1 crashed"))
        );
        assert_eq!(s.heights["n0"], vec![(72.0, 105), (73.0, 106), (91.5, 106)]);
        assert_eq!(s.heights["n1"], vec![(70.5, 105), (70.6, 105), (93.0, 106)]);
        assert_eq!(
            s.reorgs,
            vec![Reorg {
                t: 91.5,
                node: "n0".into(),
                height: 106,
                depth: 2
            }]
        );
        // Height 105: 3f2a and aaaa; height 106: 5b7c and 5b7d.
        assert_eq!(s.forks, 2);
        assert_eq!(s.convergence, vec![(0, 2.0)]);
        assert_eq!(s.converged_after(0), Some(2.0));
        assert_eq!(s.converged_after(1), None);
        assert_eq!(s.propagation, vec![(70.9, 0.4)]);
        assert_eq!(s.fault_intervals.len(), 1);
        assert_eq!(s.fault_intervals[0].start, 61.2);
        assert_eq!(s.fault_intervals[0].end, Some(90.0));
        assert_eq!(s.invariants.len(), 1);
        assert_eq!(s.failed_invariants(), 0);
        assert_eq!(s.crashes.len(), 1);
        assert_eq!((s.blocks, s.txs), (1, 1));
    }

    #[test]
    fn a_log_cut_short_leaves_the_fault_open_and_no_verdict() {
        let events = vec![ev(
            3.0,
            EventKind::Fault {
                step: 0,
                fault: FaultKind::Kill,
                nodes: names(&["n1"]),
                detail: "kill n1".into(),
            },
        )];
        let s = summarize(&events);
        assert_eq!(s.fault_intervals[0].end, None);
        assert_eq!(s.ok, None);
        assert_eq!(s.forks, 0);
        assert_eq!(summarize(&[]), Summary::default());
    }
}
