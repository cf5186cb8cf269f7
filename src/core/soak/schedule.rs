//! The nemesis schedule of `regbox soak`: the fault kinds and how `--faults` spells them, and the
//! seeded, non-overlapping list of faults (what, on which nodes, when, for how long) a run carries out.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::core::faults::clock::{self, Drift};
use crate::core::faults::link::{Distribution, Shaping, SHORTHANDS};
use crate::core::faults::node::Fault;
use crate::core::faults::throttle::Limits;
use crate::core::names::{backticked, shown};
use crate::core::partition::{CutMode, PartitionKind, Via};
use crate::core::rng::SplitMix64;
use crate::core::verb::Verb;

/// What the nemesis can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// Split the nodes into two or three groups that cannot talk to each other.
    Partition,
    /// Shape some nodes' outgoing P2P packets (delay, loss, duplication).
    Netem,
    /// SIGKILL one node, start it again after the hold.
    Kill,
    /// Restart one node (stop, then start at once).
    Restart,
    /// Freeze one node, unfreeze it after the hold.
    Pause,
    /// Limit some nodes' CPU (and memory), give them their declared resources back after the hold.
    Throttle,
    /// Set one node's clock 5 to 100 minutes off the host's (either way: within what peers accept,
    /// so the chain still converges), back after the hold.
    Clock,
    /// Fill the bounded data directory of one node that declares one (bitcoind stops at its next
    /// write); free it and start the node after the hold.
    Disk,
}

impl FaultKind {
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Partition,
        FaultKind::Netem,
        FaultKind::Kill,
        FaultKind::Restart,
        FaultKind::Pause,
        FaultKind::Throttle,
        FaultKind::Clock,
        FaultKind::Disk,
    ];

    /// The spellings of [`FaultKind::ALL`], in that order.
    pub const NAMES: [&'static str; 8] = [
        "partition",
        "netem",
        "kill",
        "restart",
        "pause",
        "throttle",
        "clock",
        "disk",
    ];

    /// The spelling used by `--faults` and in the event log.
    pub fn name(self) -> &'static str {
        FaultKind::NAMES[self as usize]
    }

    pub fn parse(word: &str) -> Option<FaultKind> {
        let i = FaultKind::NAMES.iter().position(|n| *n == word)?;
        Some(FaultKind::ALL[i])
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScheduleError {
    #[error("parse `--faults`: unknown fault `{word}`, expected one of {valid}", valid = backticked(&FaultKind::NAMES))]
    UnknownFault { word: String },
    #[error("parse `--faults`: empty fault name in `{list}`, expected a comma-separated list of {valid}", valid = backticked(&FaultKind::NAMES))]
    EmptyFault { list: String },
    #[error("schedule faults: the mean gap between faults must be above 0")]
    ZeroGap,
}

/// The fault kinds of a comma-separated `--faults` list, in the order given. A kind named twice is
/// drawn twice as often (`partition,partition,kill`).
pub fn parse_faults(list: &str) -> Result<Vec<FaultKind>, ScheduleError> {
    list.split(',')
        .map(|word| {
            let word = word.trim();
            if word.is_empty() {
                return Err(ScheduleError::EmptyFault { list: shown(list) });
            }
            FaultKind::parse(word).ok_or_else(|| ScheduleError::UnknownFault { word: shown(word) })
        })
        .collect()
}

/// A span of time as `soak` takes it: a number and a unit, `ms`, `s`, `m` or `h` (`90s`, `2m`, `1.5h`,
/// `500ms`); a bare number is seconds. Fractions are kept to the millisecond.
pub fn parse_span(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("`{text}`: expected a time such as 90s, 2m, 1.5h or 500ms");
    let (number, scale) = [("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)]
        .iter()
        .find_map(|(unit, scale)| t.strip_suffix(unit).map(|n| (n, *scale)))
        .unwrap_or((t, 1.0));
    let v: f64 = number.trim().parse().map_err(|_| bad())?;
    // A week is far beyond any soak and keeps the millisecond count exact in an f64.
    if !v.is_finite() || v < 0.0 || v * scale > 7.0 * 86_400.0 {
        return Err(format!("`{text}`: must be between 0 and 7 days"));
    }
    Ok(Duration::from_millis((v * scale * 1e3).round() as u64))
}

/// What a schedule is drawn from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    pub seed: u64,
    /// The whole run; every fault ends before it.
    pub duration: Duration,
    /// The kinds to draw from, each equally likely (a repeated kind counts as often as it is named).
    pub faults: Vec<FaultKind>,
    /// Mean quiet time between one fault's end and the next one's start.
    pub mean_gap: Duration,
    /// Mean time a fault lasts (restarts take none).
    pub mean_fault: Duration,
}

impl ScheduleSpec {
    /// A spec [`schedule`] cannot make progress with: with no quiet time between faults, instantaneous
    /// faults would follow each other without end.
    pub fn check(&self) -> Result<(), ScheduleError> {
        if self.mean_gap.is_zero() {
            return Err(ScheduleError::ZeroGap);
        }
        Ok(())
    }
}

/// One fault of the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Position in the schedule, from 0.
    pub index: usize,
    /// When the fault begins, after the start of the run.
    pub at: Duration,
    pub kind: FaultKind,
    /// The nodes the fault touches: all of them for a partition, the shaped ones for netem, the one
    /// node otherwise.
    pub targets: Vec<String>,
    /// How long the fault lasts; zero for a restart.
    pub hold: Duration,
    pub detail: StepDetail,
}

/// What exactly a step does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepDetail {
    /// The groups (each non-empty, in the nodes' order) that cannot reach each other while it holds.
    Partition { groups: Vec<Vec<String>> },
    /// The shaping every target's outgoing P2P packets get while it holds.
    Netem { shaping: Shaping },
    /// The limits every target's container gets while it holds.
    Throttle { limits: Limits },
    /// A container fault on the target: `begin` when the step starts, `end` (if any) after the hold.
    Node { begin: Fault, end: Option<Fault> },
    /// The target's clock runs `offset` seconds off the host's while it holds, drifting by `drift`
    /// from then on.
    Clock {
        offset: i64,
        #[serde(default, skip_serializing_if = "Drift::is_none")]
        drift: Drift,
    },
    /// The target's bounded data directory is full while it holds.
    Disk,
}

impl Step {
    /// The verb that starts the fault.
    pub fn begin_verb(&self) -> Verb {
        match &self.detail {
            StepDetail::Partition { groups } => Verb::Partition {
                kind: PartitionKind::Groups(groups.clone()),
                via: Via::Segments,
                mode: CutMode::Drop,
                reset: false,
                timeout: None,
            },
            StepDetail::Netem { shaping } => Verb::Netem {
                nodes: Some(self.targets.clone()),
                to: None,
                shaping: shaping.clone(),
            },
            StepDetail::Node { begin, .. } => Verb::Fault {
                fault: *begin,
                node: self.targets[0].clone(),
            },
            StepDetail::Throttle { limits } => Verb::Throttle {
                nodes: Some(self.targets.clone()),
                limits: *limits,
                clear: false,
            },
            StepDetail::Clock { offset, drift } => Verb::Clock {
                nodes: Some(self.targets.clone()),
                offset: Some(*offset),
                drift: Some(*drift),
            },
            StepDetail::Disk => Verb::Disk {
                node: self.targets[0].clone(),
                fill: true,
            },
        }
    }

    /// The verbs that end the fault, in order; none for a restart, which is over once the node is
    /// back.
    pub fn end_verbs(&self) -> Vec<Verb> {
        let end = match &self.detail {
            StepDetail::Partition { .. } => Some(Verb::Heal {
                sync: false,
                timeout: None,
            }),
            StepDetail::Netem { .. } => Some(Verb::Clear {
                nodes: Some(self.targets.clone()),
                shaping: true,
                cuts: false,
            }),
            StepDetail::Node { end, .. } => end.map(|fault| Verb::Fault {
                fault,
                node: self.targets[0].clone(),
            }),
            StepDetail::Throttle { .. } => Some(Verb::Throttle {
                nodes: Some(self.targets.clone()),
                limits: Limits::default(),
                clear: true,
            }),
            StepDetail::Clock { .. } => Some(Verb::Clock {
                nodes: Some(self.targets.clone()),
                offset: Some(0),
                drift: Some(Drift::NONE),
            }),
            // Freed, then started (bitcoind stopped itself at its first write to the full disk).
            StepDetail::Disk => {
                let node = self.targets[0].clone();
                return vec![
                    Verb::Disk {
                        node: node.clone(),
                        fill: false,
                    },
                    Verb::Fault {
                        fault: Fault::Start,
                        node,
                    },
                ];
            }
        };
        end.into_iter().collect()
    }

    /// When the fault is over (nodes started again, partition healed, shaping cleared).
    pub fn end(&self) -> Duration {
        self.at + self.hold
    }

    /// One line for people and for the event log: `{n0, n2} | {n1}`, `n1, n3: loss 30%`,
    /// `kill n2, start after 30s`, `restart n4`.
    pub fn describe(&self) -> String {
        match &self.detail {
            StepDetail::Partition { groups } => {
                let groups: Vec<String> = groups
                    .iter()
                    .map(|g| format!("{{{}}}", g.join(", ")))
                    .collect();
                groups.join(" | ")
            }
            StepDetail::Netem { shaping } => format!("{}: {shaping}", self.targets.join(", ")),
            StepDetail::Throttle { limits } => format!("{}: {limits}", self.targets.join(", ")),
            StepDetail::Node { begin, end } => {
                let mut s = format!("{} {}", begin.name(), self.targets.join(", "));
                if let Some(end) = end {
                    s += &format!(", {} after {}", end.name(), seconds(self.hold));
                }
                s
            }
            StepDetail::Disk => format!(
                "fill the disk of {}, free and start it after {}",
                self.targets[0],
                seconds(self.hold)
            ),
            StepDetail::Clock { offset, drift } => format!(
                "clock of {} at {}{}, back after {}",
                self.targets.join(", "),
                clock::describe(*offset),
                match drift.is_none() {
                    true => String::new(),
                    false => format!(" drifting {drift}"),
                },
                seconds(self.hold)
            ),
        }
    }
}

fn seconds(d: Duration) -> String {
    let v = format!("{:.3}", d.as_secs_f64());
    format!("{}s", v.trim_end_matches('0').trim_end_matches('.'))
}

/// Schedules longer than this many steps are cut there, whatever the duration.
pub const MAX_STEPS: usize = 100_000;

/// The faults of a run over `nodes`: quiet gap, fault, quiet gap, fault, … Gaps and holds are drawn
/// uniformly in [0.5×, 1.5×] of their means, in whole milliseconds. Faults never overlap, and the last
/// one ends at least half a mean gap before `duration`, so the run closes with every node up and
/// reachable and time for a last check. A partition needs two nodes; with one node it is never drawn.
/// A disk fault is drawn only for the nodes in `bounded` (those that declare a bounded data
/// directory), and never when there are none. The same spec and nodes always give the same schedule.
pub fn schedule(spec: &ScheduleSpec, nodes: &[String], bounded: &[String]) -> Vec<Step> {
    let kinds: Vec<FaultKind> = (spec.faults.iter().copied())
        .filter(|k| *k != FaultKind::Partition || nodes.len() >= 2)
        .filter(|k| *k != FaultKind::Disk || !bounded.is_empty())
        .collect();
    if kinds.is_empty() || nodes.is_empty() {
        return Vec::new();
    }
    let mut rng = SplitMix64(spec.seed);
    // A zero mean gap (refused by `check`) still moves on by a millisecond, so this always ends.
    let mean_gap = spec.mean_gap.max(Duration::from_millis(1));
    let tail = mean_gap / 2;
    let mut steps = Vec::new();
    let mut t = Duration::ZERO;
    while steps.len() < MAX_STEPS {
        let at = t + around(&mut rng, mean_gap);
        let kind = kinds[rng.index(kinds.len())];
        let hold = match kind {
            FaultKind::Restart => Duration::ZERO,
            _ => around(&mut rng, spec.mean_fault),
        };
        if at + hold + tail > spec.duration {
            break;
        }
        let (targets, detail) = match kind {
            FaultKind::Partition => {
                let groups = split(&mut rng, nodes);
                (nodes.to_vec(), StepDetail::Partition { groups })
            }
            FaultKind::Netem => {
                let targets = some_nodes(&mut rng, nodes);
                let shaping = shaping(&mut rng);
                (targets, StepDetail::Netem { shaping })
            }
            FaultKind::Throttle => {
                let targets = some_nodes(&mut rng, nodes);
                let limits = limits(&mut rng);
                (targets, StepDetail::Throttle { limits })
            }
            FaultKind::Kill | FaultKind::Restart | FaultKind::Pause => {
                let node = nodes[rng.index(nodes.len())].clone();
                let (begin, end) = match kind {
                    FaultKind::Kill => (Fault::Kill, Some(Fault::Start)),
                    FaultKind::Pause => (Fault::Pause, Some(Fault::Unpause)),
                    _ => (Fault::Restart, None),
                };
                (vec![node], StepDetail::Node { begin, end })
            }
            FaultKind::Disk => {
                let node = bounded[rng.index(bounded.len())].clone();
                (vec![node], StepDetail::Disk)
            }
            FaultKind::Clock => {
                let node = nodes[rng.index(nodes.len())].clone();
                let minutes = 5 + rng.index(96) as i64;
                let sign = if rng.index(2) == 0 { -1 } else { 1 };
                // Half of them drift too, 1 to 30 seconds a minute either way.
                let drift = match rng.index(4) {
                    0 => Drift::NONE,
                    1 => Drift::NONE,
                    2 => Drift {
                        gain: 1 + rng.index(30) as i64,
                        per: 60,
                    },
                    _ => Drift {
                        gain: -1 - rng.index(30) as i64,
                        per: 60,
                    },
                };
                (
                    vec![node],
                    StepDetail::Clock {
                        offset: sign * minutes * 60,
                        drift,
                    },
                )
            }
        };
        steps.push(Step {
            index: steps.len(),
            at,
            kind,
            targets,
            hold,
            detail,
        });
        t = at + hold;
    }
    steps
}

/// Uniform in [0.5×, 1.5×] of `mean`, in whole milliseconds.
fn around(rng: &mut SplitMix64, mean: Duration) -> Duration {
    let ms = mean.as_secs_f64() * 1e3 * (0.5 + rng.unit());
    Duration::from_millis(ms.round() as u64)
}

/// A random split of `nodes` (at least two) into two groups, or one time in four (with three nodes or
/// more) three; every group non-empty, each in the nodes' order, groups ordered by their first node.
fn split(rng: &mut SplitMix64, nodes: &[String]) -> Vec<Vec<String>> {
    let n = nodes.len();
    let three = n >= 3 && rng.below(4) == 0;
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    // Cut the shuffled order at one or two distinct points in 1..n.
    let mut cuts = vec![1 + rng.index(n - 1)];
    if three {
        let mut second = 1 + rng.index(n - 2);
        if second >= cuts[0] {
            second += 1;
        }
        cuts.push(second);
        cuts.sort_unstable();
    }
    let mut bounds = vec![0];
    bounds.extend(&cuts);
    bounds.push(n);
    let mut groups: Vec<Vec<usize>> = bounds
        .windows(2)
        .map(|w| {
            let mut g = order[w[0]..w[1]].to_vec();
            g.sort_unstable();
            g
        })
        .collect();
    groups.sort_unstable();
    (groups.into_iter())
        .map(|g| g.into_iter().map(|i| nodes[i].clone()).collect())
        .collect()
}

/// One to half of `nodes` (at least one), in the nodes' order.
fn some_nodes(rng: &mut SplitMix64, nodes: &[String]) -> Vec<String> {
    let count = 1 + rng.index((nodes.len() / 2).max(1));
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    rng.shuffle(&mut order);
    let mut picked = order[..count].to_vec();
    picked.sort_unstable();
    picked.into_iter().map(|i| nodes[i].clone()).collect()
}

/// A CPU limit of 0.05, 0.1, 0.25 or 0.5 CPUs, and half the time a memory limit of 96, 128 or
/// 256 MiB: tight, but above what a lab node holds (≈ 40 MiB), so the node slows and is not killed.
fn limits(rng: &mut SplitMix64) -> Limits {
    const CPUS: [f64; 4] = [0.05, 0.1, 0.25, 0.5];
    const MIB: [u64; 3] = [96, 128, 256];
    let cpus = CPUS[rng.index(CPUS.len())];
    let memory = (rng.below(2) == 0).then(|| MIB[rng.index(MIB.len())] << 20);
    Limits {
        cpus: Some(cpus),
        memory,
        io_rate: None,
    }
}

/// Half the time one of Blockade's shorthands that shape something (`slow`, `flaky`, `duplicate`),
/// otherwise a delay of 20–500 ms with a quarter of it (in whole ms) as uniform jitter and 0–10 % loss.
fn shaping(rng: &mut SplitMix64) -> Shaping {
    let shaping_shorthands: Vec<&str> = (SHORTHANDS.iter().copied())
        .filter(|w| Shaping::shorthand(w).is_some_and(|s| !s.is_none()))
        .collect();
    if rng.below(2) == 0 {
        let word = shaping_shorthands[rng.index(shaping_shorthands.len())];
        return Shaping::shorthand(word).unwrap_or_default();
    }
    let delay_ms = 20 + rng.below(481);
    let loss_permille = rng.below(101);
    Shaping {
        delay_us: delay_ms * 1000,
        jitter_us: delay_ms / 4 * 1000,
        distribution: Distribution::Uniform,
        loss: loss_permille as f64 / 1000.0,
        ..Shaping::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    fn spec(seed: u64) -> ScheduleSpec {
        ScheduleSpec {
            seed,
            duration: Duration::from_secs(3600),
            faults: FaultKind::ALL.to_vec(),
            mean_gap: Duration::from_secs(60),
            mean_fault: Duration::from_secs(30),
        }
    }

    #[test]
    fn faults_parse_in_order_and_bad_words_are_named() {
        assert_eq!(
            parse_faults("partition, kill,netem").unwrap(),
            vec![FaultKind::Partition, FaultKind::Kill, FaultKind::Netem]
        );
        assert_eq!(
            parse_faults("partition,netem,kill,restart,pause,throttle,clock,disk").unwrap(),
            FaultKind::ALL.to_vec()
        );
        assert_eq!(
            parse_faults("partition,crash").unwrap_err().to_string(),
            "parse `--faults`: unknown fault `crash`, expected one of `partition`, `netem`, `kill`, `restart`, `pause`, `throttle`, `clock`, `disk`"
        );
        assert_eq!(
            parse_faults("kill,,pause").unwrap_err().to_string(),
            "parse `--faults`: empty fault name in `kill,,pause`, expected a comma-separated list of `partition`, `netem`, `kill`, `restart`, `pause`, `throttle`, `clock`, `disk`"
        );
        for kind in FaultKind::ALL {
            assert_eq!(FaultKind::parse(kind.name()), Some(kind));
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.name())
            );
        }
    }

    #[test]
    fn spans_take_a_unit_or_mean_seconds() {
        let ms = Duration::from_millis;
        assert_eq!(parse_span("90s"), Ok(ms(90_000)));
        assert_eq!(parse_span("2m"), Ok(ms(120_000)));
        assert_eq!(parse_span("1.5h"), Ok(ms(5_400_000)));
        assert_eq!(parse_span("500ms"), Ok(ms(500)));
        assert_eq!(parse_span(" 12 "), Ok(ms(12_000)));
        assert_eq!(parse_span("0.25"), Ok(ms(250)));
        assert_eq!(
            parse_span("2 minutes").unwrap_err(),
            "`2 minutes`: expected a time such as 90s, 2m, 1.5h or 500ms"
        );
        assert!(parse_span("-1s")
            .unwrap_err()
            .contains("between 0 and 7 days"));
        assert!(parse_span("8000h")
            .unwrap_err()
            .contains("between 0 and 7 days"));
        assert!(parse_span("NaNs").is_err());
        assert!(parse_span("").is_err());
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        let a = schedule(&spec(7), &nodes(5), &[]);
        let b = schedule(&spec(7), &nodes(5), &[]);
        assert_eq!(a, b);
        assert!(a.len() > 10, "{} steps", a.len());
        let c = schedule(&spec(8), &nodes(5), &[]);
        assert_ne!(a, c);
    }

    #[test]
    fn faults_never_overlap_and_end_before_the_duration() {
        for seed in 0..50 {
            let s = spec(seed);
            let steps = schedule(&s, &nodes(6), &[]);
            let mut end = Duration::ZERO;
            for (i, step) in steps.iter().enumerate() {
                assert_eq!(step.index, i);
                // Each gap is drawn in [0.5×, 1.5×] of the mean.
                let gap = step.at - end;
                assert!(
                    gap >= s.mean_gap / 2 && gap <= s.mean_gap * 3 / 2,
                    "{gap:?}"
                );
                if step.kind == FaultKind::Restart {
                    assert_eq!(step.hold, Duration::ZERO);
                } else {
                    assert!(step.hold >= s.mean_fault / 2 && step.hold <= s.mean_fault * 3 / 2);
                }
                end = step.end();
            }
            assert!(end + s.mean_gap / 2 <= s.duration, "seed {seed}: {end:?}");
        }
    }

    #[test]
    fn every_kind_gets_the_targets_and_detail_it_needs() {
        let names = nodes(7);
        let steps: Vec<Step> = [3, 4]
            .iter()
            .flat_map(|&seed| schedule(&spec(seed), &names, &names[1..3]))
            .collect();
        for kind in FaultKind::ALL {
            assert!(steps.iter().any(|s| s.kind == kind), "no {kind}");
        }
        let (mut three_groups, mut drifting) = (false, false);
        for step in &steps {
            assert!(step.targets.iter().all(|t| names.contains(t)));
            match (&step.kind, &step.detail) {
                (FaultKind::Partition, StepDetail::Partition { groups }) => {
                    assert!(groups.len() == 2 || groups.len() == 3);
                    assert!(groups.iter().all(|g| !g.is_empty()));
                    let mut all: Vec<String> = groups.concat();
                    all.sort();
                    assert_eq!(all, names);
                    assert_eq!(step.targets, names);
                    three_groups |= groups.len() == 3;
                }
                (FaultKind::Netem, StepDetail::Netem { shaping }) => {
                    assert!(!shaping.is_none());
                    assert_eq!(shaping.invalid(), None);
                    assert!(!step.targets.is_empty() && step.targets.len() <= 3);
                }
                (FaultKind::Kill, StepDetail::Node { begin, end }) => {
                    assert_eq!((*begin, *end), (Fault::Kill, Some(Fault::Start)));
                    assert_eq!(step.targets.len(), 1);
                }
                (FaultKind::Pause, StepDetail::Node { begin, end }) => {
                    assert_eq!((*begin, *end), (Fault::Pause, Some(Fault::Unpause)));
                    assert_eq!(step.targets.len(), 1);
                }
                (FaultKind::Restart, StepDetail::Node { begin, end }) => {
                    assert_eq!((*begin, *end), (Fault::Restart, None));
                    assert_eq!(step.targets.len(), 1);
                }
                (FaultKind::Throttle, StepDetail::Throttle { limits }) => {
                    assert_eq!(limits.invalid(), None);
                    assert!(limits.cpus.is_some());
                    assert!(!step.targets.is_empty() && step.targets.len() <= 3);
                    let begin = step.begin_verb();
                    assert_eq!(begin.check(), Ok(()));
                    let end = step.end_verbs();
                    assert!(matches!(end[..], [Verb::Throttle { clear: true, .. }]));
                    assert_eq!(begin.nodes(), end[0].nodes());
                }
                (FaultKind::Clock, StepDetail::Clock { offset, drift }) => {
                    assert!((300..=6000).contains(&offset.abs()), "{offset}");
                    assert!(drift.is_none() || (drift.gain.abs() <= 30 && drift.per == 60));
                    drifting |= !drift.is_none();
                    assert_eq!(step.begin_verb().check(), Ok(()));
                    assert_eq!(step.targets.len(), 1);
                    assert_eq!(step.end_verbs()[0].word(), "clock");
                }
                (FaultKind::Disk, StepDetail::Disk) => {
                    assert_eq!(step.targets.len(), 1);
                    assert!(names[1..3].contains(&step.targets[0]));
                    assert!(matches!(step.begin_verb(), Verb::Disk { fill: true, .. }));
                    let end = step.end_verbs();
                    assert!(matches!(
                        end[..],
                        [
                            Verb::Disk { fill: false, .. },
                            Verb::Fault {
                                fault: Fault::Start,
                                ..
                            }
                        ]
                    ));
                }
                other => panic!("mismatched step {other:?}"),
            }
        }
        assert!(
            three_groups,
            "no three-way partition in {} steps",
            steps.len()
        );
        assert!(drifting, "no drifting clock in {} steps", steps.len());
    }

    #[test]
    fn steps_describe_themselves_on_one_line() {
        let step = |kind, targets: &[&str], detail| Step {
            index: 0,
            at: Duration::ZERO,
            kind,
            targets: targets.iter().map(|s| s.to_string()).collect(),
            hold: Duration::from_millis(30_500),
            detail,
        };
        let groups = vec![vec!["n0".into(), "n2".into()], vec!["n1".into()]];
        assert_eq!(
            step(
                FaultKind::Partition,
                &["n0", "n1", "n2"],
                StepDetail::Partition { groups }
            )
            .describe(),
            "{n0, n2} | {n1}"
        );
        let shaping = Shaping::shorthand("flaky").unwrap();
        assert_eq!(
            step(
                FaultKind::Netem,
                &["n1", "n3"],
                StepDetail::Netem { shaping }
            )
            .describe(),
            "n1, n3: loss 30%"
        );
        let kill = StepDetail::Node {
            begin: Fault::Kill,
            end: Some(Fault::Start),
        };
        assert_eq!(
            step(FaultKind::Kill, &["n2"], kill).describe(),
            "kill n2, start after 30.5s"
        );
        let restart = StepDetail::Node {
            begin: Fault::Restart,
            end: None,
        };
        assert_eq!(
            step(FaultKind::Restart, &["n4"], restart).describe(),
            "restart n4"
        );
    }

    #[test]
    fn a_lone_node_is_never_partitioned_and_nothing_fits_in_no_time() {
        let mut s = spec(1);
        s.faults = vec![FaultKind::Partition];
        assert!(schedule(&s, &nodes(1), &[]).is_empty());
        s.faults = vec![FaultKind::Partition, FaultKind::Kill];
        let steps = schedule(&s, &nodes(1), &[]);
        assert!(!steps.is_empty());
        assert!(steps.iter().all(|st| st.kind == FaultKind::Kill));
        assert!(schedule(&spec(1), &[], &[]).is_empty());
        let mut short = spec(1);
        short.duration = Duration::from_secs(20);
        assert!(schedule(&short, &nodes(3), &[]).is_empty());
    }

    #[test]
    fn a_zero_gap_is_refused_but_still_terminates() {
        let mut s = spec(2);
        s.mean_gap = Duration::ZERO;
        assert_eq!(
            s.check().unwrap_err().to_string(),
            "schedule faults: the mean gap between faults must be above 0"
        );
        s.faults = vec![FaultKind::Restart];
        s.duration = Duration::from_secs(1);
        let steps = schedule(&s, &nodes(2), &[]);
        assert!(!steps.is_empty() && steps.len() <= 1000);
        assert!(spec(2).check().is_ok());
    }
}
