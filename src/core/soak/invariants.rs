//! The invariants `regbox soak` checks after every fault ends, as pure verdicts over one sample of each
//! node: one most-work tip, no node stuck, the same mempool everywhere, nothing down that should be up.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::core::soak::events::EventKind;

/// The invariant names, as logged.
pub const CONVERGED: &str = "converged";
pub const NOT_STUCK: &str = "not_stuck";
pub const MEMPOOLS_AGREE: &str = "mempools_agree";
pub const NO_CRASH: &str = "no_crash";

/// What was observed of one node at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSample {
    pub node: String,
    pub height: u64,
    pub best_hash: String,
    /// Total work of the best chain (bitcoind's `chainwork`, see [`parse_chainwork`]).
    pub chainwork: u128,
    /// Seconds since the best tip's block was received.
    pub tip_age_s: f64,
    pub peers: u32,
    /// The txids in the mempool, any order.
    pub mempool: Vec<String>,
    /// Whether the node answered; the other fields mean nothing when it did not.
    pub running: bool,
    /// Whether the schedule has it up now (false while it is killed or paused).
    pub expected_running: bool,
}

/// bitcoind's `chainwork` (64 hex digits) as a number; `None` when it is not hex or above 2^128 (more
/// work than any chain has).
pub fn parse_chainwork(hex: &str) -> Option<u128> {
    let hex = hex.trim();
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let digits = hex.trim_start_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    u128::from_str_radix(digits, 16).ok()
}

/// Whether an invariant held, and if not, which nodes broke it and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub name: String,
    pub ok: bool,
    /// The nodes that broke it, in sample order (empty when it held).
    pub nodes: Vec<String>,
    /// What was seen, for people: why it failed, or what held.
    pub detail: String,
}

impl Verdict {
    fn new(name: &str, nodes: Vec<String>, detail: String) -> Verdict {
        Verdict {
            name: name.to_owned(),
            ok: nodes.is_empty(),
            nodes,
            detail,
        }
    }

    /// The `invariant` event of this verdict, after step `step` (`None`: the final check).
    pub fn event(&self, step: Option<usize>) -> EventKind {
        EventKind::Invariant {
            step,
            name: self.name.clone(),
            ok: self.ok,
            nodes: self.nodes.clone(),
            detail: self.detail.clone(),
        }
    }
}

/// How [`check_all`] judges a node stuck.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Seconds a tip may be old while another node has a newer, higher one.
    pub max_tip_age_s: f64,
    /// Fewest peers a running node may have.
    pub min_peers: u32,
}

/// All four checks, in a fixed order: converged, not stuck, mempools agree, no crash.
pub fn check_all(samples: &[NodeSample], limits: Limits) -> Vec<Verdict> {
    vec![
        converged(samples),
        stuck(samples, limits.max_tip_age_s, limits.min_peers),
        mempools(samples),
        crashed(samples),
    ]
}

/// A hash cut to its first 12 digits, enough to tell tips apart in a message.
fn short(hash: &str) -> String {
    if hash.chars().count() > 12 {
        format!("{}…", hash.chars().take(12).collect::<String>())
    } else {
        hash.to_owned()
    }
}

fn running(samples: &[NodeSample]) -> Vec<&NodeSample> {
    samples.iter().filter(|s| s.running).collect()
}

/// Every running node has the tip with the most work. With two tips of equal, highest work, the one
/// more nodes hold counts as the best (then the smaller hash), and the others' nodes fail. Fails
/// with no running node at all.
pub fn converged(samples: &[NodeSample]) -> Verdict {
    let up = running(samples);
    // Per tip: (work, holders).
    let mut tips: BTreeMap<&str, (u128, usize)> = BTreeMap::new();
    for s in &up {
        let e = tips.entry(&s.best_hash).or_insert((s.chainwork, 0));
        e.0 = e.0.max(s.chainwork);
        e.1 += 1;
    }
    let Some(best) = (tips.iter())
        .max_by_key(|(hash, (work, holders))| (*work, *holders, Reverse(*hash)))
        .map(|(hash, _)| *hash)
    else {
        return Verdict::new(
            CONVERGED,
            samples.iter().map(|s| s.node.clone()).collect(),
            "no running node to compare".into(),
        );
    };
    let height = up
        .iter()
        .find(|s| s.best_hash == best)
        .map_or(0, |s| s.height);
    let laggards: Vec<&NodeSample> = up.iter().copied().filter(|s| s.best_hash != best).collect();
    let detail = if laggards.is_empty() {
        format!(
            "{} running node(s) on {} at height {height}",
            up.len(),
            short(best)
        )
    } else {
        let each: Vec<String> = laggards
            .iter()
            .map(|s| format!("{} at {} ({})", s.node, s.height, short(&s.best_hash)))
            .collect();
        format!(
            "{} of {} running node(s) not on the most-work tip {} at height {height}: {}",
            laggards.len(),
            up.len(),
            short(best),
            each.join(", ")
        )
    };
    Verdict::new(
        CONVERGED,
        laggards.iter().map(|s| s.node.clone()).collect(),
        detail,
    )
}

/// No running node has fewer than `min_peers` peers, or a tip older than `max_tip_age_s` while another
/// running node has a newer tip higher up (a node whose tip is old because nobody mines is not stuck).
pub fn stuck(samples: &[NodeSample], max_tip_age_s: f64, min_peers: u32) -> Verdict {
    let up = running(samples);
    let mut nodes = Vec::new();
    let mut why = Vec::new();
    for s in &up {
        let mut reasons = Vec::new();
        if s.peers < min_peers {
            reasons.push(format!("{} peer(s), fewer than {min_peers}", s.peers));
        }
        if s.tip_age_s > max_tip_age_s {
            let ahead = (up.iter())
                .filter(|o| o.tip_age_s <= max_tip_age_s && o.height > s.height)
                .max_by_key(|o| o.height);
            if let Some(o) = ahead {
                reasons.push(format!(
                    "tip {:.0}s old at height {} while {} is at {}",
                    s.tip_age_s, s.height, o.node, o.height
                ));
            }
        }
        if !reasons.is_empty() {
            nodes.push(s.node.clone());
            why.push(format!("{}: {}", s.node, reasons.join(", ")));
        }
    }
    let detail = if why.is_empty() {
        format!(
            "{} running node(s) have at least {min_peers} peer(s) and keep up",
            up.len()
        )
    } else {
        why.join("; ")
    };
    Verdict::new(NOT_STUCK, nodes, detail)
}

/// Every running node has the same set of transactions in its mempool. The set most nodes hold is the
/// reference (on a tie, the larger, then the one of the earlier node); each other node fails with what it lacks and what it has extra.
pub fn mempools(samples: &[NodeSample]) -> Verdict {
    let up = running(samples);
    let sets: Vec<BTreeSet<&str>> = up
        .iter()
        .map(|s| s.mempool.iter().map(String::as_str).collect())
        .collect();
    // Per distinct set: (holders, the first holder's position).
    let mut counts: BTreeMap<&BTreeSet<&str>, (usize, usize)> = BTreeMap::new();
    for (i, set) in sets.iter().enumerate() {
        counts.entry(set).or_insert((0, i)).0 += 1;
    }
    let Some(reference) = (counts.iter())
        .max_by_key(|(set, (n, first))| (*n, set.len(), Reverse(*first)))
        .map(|(set, _)| *set)
    else {
        return Verdict::new(MEMPOOLS_AGREE, vec![], "no running node".into());
    };
    let mut nodes = Vec::new();
    let mut why = Vec::new();
    for (s, set) in up.iter().zip(&sets) {
        if set == reference {
            continue;
        }
        let lacks: Vec<&&str> = reference.difference(set).collect();
        let extra: Vec<&&str> = set.difference(reference).collect();
        let mut parts = Vec::new();
        for (what, txids) in [("lacks", &lacks), ("has extra", &extra)] {
            if !txids.is_empty() {
                let shown: Vec<String> = txids.iter().take(3).map(|t| short(t)).collect();
                let more = if txids.len() > 3 { ", …" } else { "" };
                parts.push(format!(
                    "{what} {} ({}{more})",
                    txids.len(),
                    shown.join(", ")
                ));
            }
        }
        nodes.push(s.node.clone());
        why.push(format!("{} {}", s.node, parts.join(" and ")));
    }
    let detail = if why.is_empty() {
        format!(
            "{} running node(s) hold the same {} transaction(s)",
            up.len(),
            reference.len()
        )
    } else {
        format!(
            "{}, against the {} transaction(s) most nodes hold",
            why.join("; "),
            reference.len()
        )
    };
    Verdict::new(MEMPOOLS_AGREE, nodes, detail)
}

/// Every node the schedule has up is running.
pub fn crashed(samples: &[NodeSample]) -> Verdict {
    let down: Vec<String> = (samples.iter())
        .filter(|s| s.expected_running && !s.running)
        .map(|s| s.node.clone())
        .collect();
    let expected = samples.iter().filter(|s| s.expected_running).count();
    let detail = match down.len() {
        0 => format!("all {expected} node(s) that should run are running"),
        1 => format!("{} is not running but should be", down[0]),
        _ => format!("{} are not running but should be", down.join(", ")),
    };
    Verdict::new(NO_CRASH, down, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(node: &str, height: u64, hash: &str) -> NodeSample {
        NodeSample {
            node: node.into(),
            height,
            best_hash: hash.into(),
            chainwork: 2 * height as u128 + 2,
            tip_age_s: 5.0,
            peers: 3,
            mempool: vec!["tx1".into(), "tx2".into()],
            running: true,
            expected_running: true,
        }
    }

    fn three() -> Vec<NodeSample> {
        vec![
            sample("n0", 110, "aaaa"),
            sample("n1", 110, "aaaa"),
            sample("n2", 110, "aaaa"),
        ]
    }

    #[test]
    fn chainwork_parses_from_bitcoinds_hex() {
        assert_eq!(
            parse_chainwork("00000000000000000000000000000000000000000000000000000000000000de"),
            Some(0xde)
        );
        assert_eq!(parse_chainwork("0000"), Some(0));
        assert_eq!(parse_chainwork("zz"), None);
        assert_eq!(parse_chainwork(&"f".repeat(33)), None);
    }

    #[test]
    fn converged_holds_on_one_tip_and_names_the_laggards() {
        let ok = converged(&three());
        assert!(ok.ok);
        assert_eq!(ok.name, "converged");
        assert_eq!(ok.detail, "3 running node(s) on aaaa at height 110");

        let mut s = three();
        s[1] = sample("n1", 108, "bbbbbbbbbbbbbbbbbbbb");
        s.push(sample("n3", 111, "cccc"));
        let v = converged(&s);
        assert!(!v.ok);
        assert_eq!(v.nodes, vec!["n0", "n1", "n2"]);
        assert_eq!(
            v.detail,
            "3 of 4 running node(s) not on the most-work tip cccc at height 111: n0 at 110 (aaaa), n1 at 108 (bbbbbbbbbbbb…), n2 at 110 (aaaa)"
        );

        // A node that is down is not a laggard (crashed says so).
        let mut s = three();
        s[2].running = false;
        s[2].best_hash = "old".into();
        assert!(converged(&s).ok);

        let mut s = three();
        s.iter_mut().for_each(|n| n.running = false);
        let v = converged(&s);
        assert!(!v.ok);
        assert_eq!(v.detail, "no running node to compare");
    }

    #[test]
    fn converged_breaks_a_tie_in_work_by_holders() {
        let mut s = three();
        s[2].best_hash = "bbbb".into();
        let v = converged(&s);
        assert_eq!(v.nodes, vec!["n2"]);
        assert!(v.detail.contains("most-work tip aaaa"), "{}", v.detail);
    }

    #[test]
    fn stuck_names_peerless_and_left_behind_nodes() {
        assert!(stuck(&three(), 600.0, 1).ok);
        assert_eq!(
            stuck(&three(), 600.0, 1).detail,
            "3 running node(s) have at least 1 peer(s) and keep up"
        );
        let mut s = three();
        s[0].peers = 0;
        s[2].tip_age_s = 900.0;
        s[2].height = 100;
        s[1].height = 112;
        let v = stuck(&s, 600.0, 1);
        assert!(!v.ok);
        assert_eq!(v.name, "not_stuck");
        assert_eq!(v.nodes, vec!["n0", "n2"]);
        assert_eq!(
            v.detail,
            "n0: 0 peer(s), fewer than 1; n2: tip 900s old at height 100 while n1 is at 112"
        );
        // Nobody mines: every tip is old, nobody is left behind.
        let mut s = three();
        s.iter_mut().for_each(|n| n.tip_age_s = 5000.0);
        assert!(stuck(&s, 600.0, 1).ok);
    }

    #[test]
    fn mempools_compare_against_the_common_set() {
        let ok = mempools(&three());
        assert!(ok.ok);
        assert_eq!(
            ok.detail,
            "3 running node(s) hold the same 2 transaction(s)"
        );
        let mut s = three();
        s[1].mempool = vec!["tx1".into(), "tx9".into()];
        s[2].mempool.clear();
        let v = mempools(&s);
        assert!(!v.ok);
        assert_eq!(v.name, "mempools_agree");
        assert_eq!(v.nodes, vec!["n1", "n2"]);
        assert_eq!(
            v.detail,
            "n1 lacks 1 (tx2) and has extra 1 (tx9); n2 lacks 2 (tx1, tx2), against the 2 transaction(s) most nodes hold"
        );
        // Order does not matter.
        let mut s = three();
        s[0].mempool.reverse();
        assert!(mempools(&s).ok);
    }

    #[test]
    fn crashed_names_the_nodes_that_should_run() {
        let ok = crashed(&three());
        assert!(ok.ok);
        assert_eq!(ok.detail, "all 3 node(s) that should run are running");
        let mut s = three();
        s[1].running = false;
        let v = crashed(&s);
        assert_eq!((v.ok, v.nodes.clone()), (false, vec!["n1".to_string()]));
        assert_eq!(v.detail, "n1 is not running but should be");
        s[2].running = false;
        assert_eq!(crashed(&s).detail, "n1, n2 are not running but should be");
        // Killed on schedule: not a crash.
        let mut s = three();
        s[0].running = false;
        s[0].expected_running = false;
        assert!(crashed(&s).ok);
    }

    #[test]
    fn a_verdict_becomes_an_invariant_event() {
        let mut s = three();
        s[1].running = false;
        let all = check_all(
            &s,
            Limits {
                max_tip_age_s: 600.0,
                min_peers: 1,
            },
        );
        let names: Vec<&str> = all.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, vec![CONVERGED, NOT_STUCK, MEMPOOLS_AGREE, NO_CRASH]);
        assert_eq!(
            all[3].event(Some(4)),
            EventKind::Invariant {
                step: Some(4),
                name: "no_crash".into(),
                ok: false,
                nodes: vec!["n1".into()],
                detail: "n1 is not running but should be".into(),
            }
        );
    }
}
