//! Readiness as data: the conditions regbox waits for (like testcontainers' `WaitFor`), what each needs
//! to read from a node, and how one round of readings is judged. The engine polls; this decides.

use std::collections::BTreeSet;
use std::fmt;

/// A condition on some nodes. `None` as a node list means every node. In JSON: `{"sync_blocks": null}`,
/// `{"height": {"node": "n2", "height": 101}}`, `{"peers": {"node": "n0", "count": 2}}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WaitFor {
    /// The nodes answer RPC and have loaded their mempool.
    Ready(Option<Vec<String>>),
    /// The nodes report the same best block.
    SyncBlocks(Option<Vec<String>>),
    /// The nodes hold the same set of mempool transactions.
    SyncMempools(Option<Vec<String>>),
    /// The node (or every node) is at `height` or above.
    Height { node: Option<String>, height: u64 },
    /// The node has exactly `count` peers.
    Peers { node: String, count: usize },
}

/// What the condition reads from each node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    Ready,
    Tip,
    Mempool,
    Height,
    Peers,
}

/// One node's reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sample {
    Ready,
    /// Not (yet) able to serve, and why.
    NotReady(String),
    Tip {
        height: u64,
        hash: String,
    },
    /// The mempool's txids, sorted.
    Mempool(Vec<String>),
    Height(u64),
    Peers(usize),
}

/// How a condition stands after one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Met; for `SyncBlocks` the common tip, for `SyncMempools` the number of transactions.
    Met(Met),
    /// Not yet, with what was seen (names the nodes that hold it up).
    Pending(String),
}

/// What a met condition found: the common tip of `sync_blocks`, the mempool size of `sync_mempools`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Met {
    Yes,
    Tip(String),
    Mempool(usize),
}

impl WaitFor {
    /// The node names the condition is about; `None` means every node.
    pub fn nodes(&self) -> Option<Vec<String>> {
        match self {
            WaitFor::Ready(n) | WaitFor::SyncBlocks(n) | WaitFor::SyncMempools(n) => n.clone(),
            WaitFor::Height { node, .. } => node.clone().map(|n| vec![n]),
            WaitFor::Peers { node, .. } => Some(vec![node.clone()]),
        }
    }

    /// The condition as typed on the command line: `ready [NODES]`, `sync_blocks [NODES]`,
    /// `sync_mempools [NODES]`, `height H [NODE]`, `peers N NODE` (`-` for `_` too).
    pub fn from_words(words: &[String]) -> Result<WaitFor, String> {
        let (first, rest) = words.split_first().ok_or("name a condition")?;
        let nodes = || (!rest.is_empty()).then(|| rest.to_vec());
        let number = |what: &str| -> Result<u64, String> {
            let n = rest.first().ok_or(format!("`{first}` needs {what}"))?;
            n.parse()
                .map_err(|_| format!("`{first}` needs {what}, not `{n}`"))
        };
        let at_most = |n: usize| match rest.len() > n {
            true => Err(format!("`{first}` takes at most {n} argument(s)")),
            false => Ok(()),
        };
        match first.replace('-', "_").as_str() {
            "ready" => Ok(WaitFor::Ready(nodes())),
            "sync_blocks" => Ok(WaitFor::SyncBlocks(nodes())),
            "sync_mempools" => Ok(WaitFor::SyncMempools(nodes())),
            "height" => {
                at_most(2)?;
                Ok(WaitFor::Height {
                    height: number("a height")?,
                    node: rest.get(1).cloned(),
                })
            }
            "peers" => {
                at_most(2)?;
                let count = number("a number of peers")? as usize;
                let node = rest
                    .get(1)
                    .cloned()
                    .ok_or("`peers` needs the node whose peers count")?;
                Ok(WaitFor::Peers { node, count })
            }
            other => Err(format!(
                "no condition `{other}`: ready, sync_blocks, sync_mempools, height or peers"
            )),
        }
    }

    pub fn reading(&self) -> Reading {
        match self {
            WaitFor::Ready(_) => Reading::Ready,
            WaitFor::SyncBlocks(_) => Reading::Tip,
            WaitFor::SyncMempools(_) => Reading::Mempool,
            WaitFor::Height { .. } => Reading::Height,
            WaitFor::Peers { .. } => Reading::Peers,
        }
    }

    /// Judges one round of readings, one per node in the order given.
    pub fn judge(&self, samples: &[(&str, Sample)]) -> Verdict {
        match self {
            WaitFor::Ready(_) => {
                let waiting: Vec<String> = samples
                    .iter()
                    .filter_map(|(n, s)| match s {
                        Sample::NotReady(why) => Some(format!("{n}: {why}")),
                        _ => None,
                    })
                    .collect();
                met_unless(waiting, Met::Yes, |w| {
                    format!("not ready: {}", w.join("; "))
                })
            }
            WaitFor::SyncBlocks(_) => judge_tips(samples),
            WaitFor::SyncMempools(_) => judge_mempools(samples),
            WaitFor::Height { height, .. } => {
                let low: Vec<String> = samples
                    .iter()
                    .filter_map(|(n, s)| match s {
                        Sample::Height(h) if h < height => Some(format!("{n}={h}")),
                        _ => None,
                    })
                    .collect();
                met_unless(low, Met::Yes, |l| format!("below: {}", l.join(", ")))
            }
            WaitFor::Peers { count, .. } => match samples.first() {
                Some((_, Sample::Peers(c))) if c == count => Verdict::Met(Met::Yes),
                Some((_, Sample::Peers(c))) => Verdict::Pending(format!("{c} peers")),
                _ => Verdict::Pending("no reading".into()),
            },
        }
    }
}

fn met_unless(blockers: Vec<String>, met: Met, why: impl Fn(&[String]) -> String) -> Verdict {
    if blockers.is_empty() {
        Verdict::Met(met)
    } else {
        Verdict::Pending(why(&blockers))
    }
}

fn judge_tips(samples: &[(&str, Sample)]) -> Verdict {
    let tips: Vec<(&str, u64, &str)> = samples
        .iter()
        .filter_map(|(n, s)| match s {
            Sample::Tip { height, hash } => Some((*n, *height, hash.as_str())),
            _ => None,
        })
        .collect();
    let Some(&(_, best_height, best)) = tips.iter().max_by_key(|(_, h, hash)| (*h, *hash)) else {
        return Verdict::Pending("no reading".into());
    };
    let lagging: Vec<String> = tips
        .iter()
        .filter(|(_, _, hash)| *hash != best)
        .map(|(n, h, hash)| format!("{n} at {h} ({})", short(hash)))
        .collect();
    met_unless(lagging, Met::Tip(best.to_string()), |l| {
        format!(
            "highest tip {best_height} ({}); lagging: {}",
            short(best),
            l.join(", ")
        )
    })
}

fn judge_mempools(samples: &[(&str, Sample)]) -> Verdict {
    let pools: Vec<(&str, &Vec<String>)> = samples
        .iter()
        .filter_map(|(n, s)| match s {
            Sample::Mempool(txs) => Some((*n, txs)),
            _ => None,
        })
        .collect();
    let Some(&(_, reference)) = pools.iter().max_by_key(|(_, p)| p.len()) else {
        return Verdict::Pending("no reading".into());
    };
    let distinct: BTreeSet<&Vec<String>> = pools.iter().map(|(_, p)| *p).collect();
    let differ: Vec<String> = if distinct.len() <= 1 {
        Vec::new()
    } else {
        pools
            .iter()
            .filter(|(_, p)| *p != reference)
            .map(|(n, p)| format!("{n} has {} txs", p.len()))
            .collect()
    };
    met_unless(differ, Met::Mempool(reference.len()), |d| {
        format!(
            "largest mempool {} txs; differing: {}",
            reference.len(),
            d.join(", ")
        )
    })
}

/// The first 12 hex digits of a hash, enough to tell tips apart in a message.
pub fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// ` a b` after a condition, or nothing for every node (as scenario labels read).
fn list(nodes: &Option<Vec<String>>) -> String {
    nodes
        .as_ref()
        .map_or_else(String::new, |n| format!(" {}", n.join(" ")))
}

impl fmt::Display for WaitFor {
    /// The scenario spelling, e.g. `sync_blocks n0 n1`, `height 101 on n2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitFor::Ready(nodes) => write!(f, "ready{}", list(nodes)),
            WaitFor::SyncBlocks(nodes) => write!(f, "sync_blocks{}", list(nodes)),
            WaitFor::SyncMempools(nodes) => write!(f, "sync_mempools{}", list(nodes)),
            WaitFor::Height { node, height } => match node {
                Some(n) => write!(f, "height {height} on {n}"),
                None => write!(f, "height {height}"),
            },
            WaitFor::Peers { node, count } => write!(f, "peers {count} on {node}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tip(height: u64, hash: &str) -> Sample {
        Sample::Tip {
            height,
            hash: hash.into(),
        }
    }

    #[test]
    fn tips_name_the_lagging_nodes() {
        let w = WaitFor::SyncBlocks(None);
        let v = w.judge(&[
            ("n0", tip(5, "aa")),
            ("n1", tip(3, "bb")),
            ("n2", tip(5, "aa")),
        ]);
        assert_eq!(
            v,
            Verdict::Pending("highest tip 5 (aa); lagging: n1 at 3 (bb)".into())
        );
        let v = w.judge(&[("n0", tip(5, "aa")), ("n1", tip(5, "aa"))]);
        assert_eq!(v, Verdict::Met(Met::Tip("aa".into())));
    }

    #[test]
    fn mempools_name_the_differing_nodes() {
        let w = WaitFor::SyncMempools(None);
        let a = Sample::Mempool(vec!["t1".into(), "t2".into()]);
        let b = Sample::Mempool(vec!["t1".into()]);
        let v = w.judge(&[("n0", a.clone()), ("n1", b)]);
        assert_eq!(
            v,
            Verdict::Pending("largest mempool 2 txs; differing: n1 has 1 txs".into())
        );
        assert_eq!(
            w.judge(&[("n0", a.clone()), ("n1", a)]),
            Verdict::Met(Met::Mempool(2))
        );
    }

    #[test]
    fn height_peers_and_ready() {
        let h = WaitFor::Height {
            node: None,
            height: 10,
        };
        assert_eq!(
            h.judge(&[("n0", Sample::Height(10)), ("n1", Sample::Height(9))]),
            Verdict::Pending("below: n1=9".into())
        );
        let p = WaitFor::Peers {
            node: "n0".into(),
            count: 2,
        };
        assert_eq!(p.judge(&[("n0", Sample::Peers(2))]), Verdict::Met(Met::Yes));
        let r = WaitFor::Ready(None);
        assert_eq!(
            r.judge(&[
                ("n0", Sample::Ready),
                ("n1", Sample::NotReady("refused".into()))
            ]),
            Verdict::Pending("not ready: n1: refused".into())
        );
        assert_eq!(p.nodes(), Some(vec!["n0".to_string()]));
        assert_eq!(h.to_string(), "height 10");
    }
}
