//! The fork view, in the manner of fork-observer: from every node's `getchaintips` and the block headers
//! behind those tips, the recent blocks by height, which nodes sit on which tip, the branches off the
//! main chain (stale ones included) and how long each is; and the reorgs between two readings. Pure:
//! the engine reads the tips and headers, this decides.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One entry of `getchaintips`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainTip {
    pub height: u64,
    pub hash: String,
    /// Blocks between this tip and the node's active chain (0 for the active tip).
    #[serde(default)]
    pub branchlen: u64,
    /// `active`, `valid-fork`, `valid-headers`, `headers-only` or `invalid`.
    pub status: String,
}

/// A block header as the fork view needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub hash: String,
    pub height: u64,
    pub prev: Option<String>,
    /// Total work up to this block, as fixed-width hex (so it compares as text).
    pub chainwork: String,
    pub time: u64,
}

/// What one node said: its best block (None when it did not answer) and its chain tips.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeChain {
    pub node: String,
    pub best: Option<String>,
    pub tips: Vec<ChainTip>,
}

/// The fork view of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ForkView {
    /// The heights shown: `bottom..=top`.
    pub bottom: u64,
    pub top: u64,
    /// The tip of the chain with the most work (None before any node answered).
    pub main: Option<String>,
    /// Every known block in the window, by height then hash.
    pub blocks: Vec<Block>,
    /// Every tip but the main one: the branches off the main chain.
    pub branches: Vec<Branch>,
}

/// One block of the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub hash: String,
    pub height: u64,
    pub prev: Option<String>,
    pub time: u64,
    /// On the chain of the main tip.
    pub main: bool,
    /// The nodes whose best block this is.
    pub nodes: Vec<String>,
}

/// A tip off the main chain and the blocks that lead to it from the main chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    pub tip: String,
    pub height: u64,
    /// Blocks on this branch only (not on the main chain).
    pub length: u64,
    /// The height of the last block it shares with the main chain.
    pub fork_height: u64,
    /// No node has it as its best block: these blocks left (or never joined) every active chain.
    pub stale: bool,
    /// The nodes whose best block it is.
    pub nodes: Vec<String>,
    /// How many nodes know the tip (list it in `getchaintips`).
    pub known_by: usize,
    /// The most telling `getchaintips` status of it (`active` if any node has it active).
    pub status: String,
}

/// A node that left its chain: its best block was `from`, is now `to`, and `depth` of its blocks left
/// the active chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reorg {
    pub node: String,
    pub from: String,
    pub to: String,
    pub depth: u64,
    /// The height of the last block both chains share.
    pub fork_height: u64,
}

/// Headers by hash.
pub type Headers = BTreeMap<String, Header>;

/// Every tip the nodes reported and every best block, each once.
fn tip_hashes(nodes: &[NodeChain]) -> BTreeSet<String> {
    let tips = nodes
        .iter()
        .flat_map(|n| n.tips.iter().map(|t| t.hash.clone()));
    let bests = nodes.iter().filter_map(|n| n.best.clone());
    tips.chain(bests).collect()
}

/// The highest height any node reported.
fn top_height(nodes: &[NodeChain], headers: &Headers) -> Option<u64> {
    let tips = nodes.iter().flat_map(|n| n.tips.iter().map(|t| t.height));
    let bests = (nodes.iter())
        .filter_map(|n| n.best.as_ref())
        .filter_map(|b| headers.get(b).map(|h| h.height));
    tips.chain(bests).max()
}

/// The lowest height a window of `window` blocks below the highest tip shows.
pub fn window_bottom(nodes: &[NodeChain], headers: &Headers, window: u64) -> u64 {
    top_height(nodes, headers).map_or(0, |top| top.saturating_sub(window.saturating_sub(1)))
}

/// The headers to read next: for each tip, the first block (walking back from it, down to `bottom`)
/// whose header is not known yet. Read them, then ask again until none is left.
pub fn headers_needed(nodes: &[NodeChain], headers: &Headers, bottom: u64) -> Vec<String> {
    let mut needed = BTreeSet::new();
    for tip in tip_hashes(nodes) {
        let mut cursor = Some(tip);
        while let Some(hash) = cursor {
            match headers.get(&hash) {
                None => {
                    needed.insert(hash);
                    break;
                }
                Some(h) if h.height <= bottom => break,
                Some(h) => cursor = h.prev.clone(),
            }
        }
    }
    needed.into_iter().collect()
}

/// `hash` and its ancestors that are known, newest first, down to `bottom`.
fn ancestry<'a>(hash: &str, headers: &'a Headers, bottom: u64) -> Vec<&'a Header> {
    let mut out = Vec::new();
    let mut cursor = headers.get(hash);
    while let Some(h) = cursor {
        if h.height < bottom {
            break;
        }
        out.push(h);
        cursor = h.prev.as_ref().and_then(|p| headers.get(p));
    }
    out
}

/// The fork view of the heights `top - window + 1 ..= top` from the nodes' tips and the headers read.
pub fn fork_view(nodes: &[NodeChain], headers: &Headers, window: u64) -> ForkView {
    let Some(top) = top_height(nodes, headers) else {
        return ForkView::default();
    };
    let bottom = top.saturating_sub(window.saturating_sub(1));
    let mut on: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for n in nodes {
        if let Some(best) = &n.best {
            on.entry(best).or_default().push(n.node.clone());
        }
    }
    let tips = tip_hashes(nodes);
    // The main tip: most work, then most nodes on it, then the hash (so the choice is stable).
    let main = tips
        .iter()
        .filter(|t| headers.contains_key(*t))
        .max_by(|a, b| {
            let (ha, hb) = (&headers[*a], &headers[*b]);
            let (na, nb) = (on.get(a.as_str()), on.get(b.as_str()));
            (ha.chainwork.as_str(), ha.height, na.map_or(0, Vec::len), *b).cmp(&(
                hb.chainwork.as_str(),
                hb.height,
                nb.map_or(0, Vec::len),
                *a,
            ))
        })
        .cloned();
    let main_chain: BTreeSet<&str> = main
        .as_deref()
        .map(|m| {
            ancestry(m, headers, 0)
                .into_iter()
                .map(|h| h.hash.as_str())
                .collect()
        })
        .unwrap_or_default();
    let mut blocks: BTreeMap<(u64, &str), Block> = BTreeMap::new();
    for tip in &tips {
        for h in ancestry(tip, headers, bottom) {
            blocks.entry((h.height, &h.hash)).or_insert_with(|| Block {
                hash: h.hash.clone(),
                height: h.height,
                prev: h.prev.clone(),
                time: h.time,
                main: main_chain.contains(h.hash.as_str()),
                nodes: on.get(h.hash.as_str()).cloned().unwrap_or_default(),
            });
        }
    }
    let branches = tips
        .iter()
        .filter(|t| Some(*t) != main.as_ref() && !main_chain.contains(t.as_str()))
        .map(|t| branch(t, nodes, headers, &main_chain, &on))
        .collect();
    ForkView {
        bottom,
        top,
        main,
        blocks: blocks.into_values().collect(),
        branches,
    }
}

/// The branch ending at `tip`: how far back it meets the main chain (by its headers, or else by the
/// `branchlen` the nodes gave), who sits on it and who knows it.
fn branch(
    tip: &str,
    nodes: &[NodeChain],
    headers: &Headers,
    main_chain: &BTreeSet<&str>,
    on: &BTreeMap<&str, Vec<String>>,
) -> Branch {
    let listed: Vec<&ChainTip> = (nodes.iter())
        .flat_map(|n| n.tips.iter())
        .filter(|t| t.hash == tip)
        .collect();
    let height = headers
        .get(tip)
        .map(|h| h.height)
        .or_else(|| listed.first().map(|t| t.height))
        .unwrap_or(0);
    let walked = ancestry(tip, headers, 0)
        .into_iter()
        .find(|h| main_chain.contains(h.hash.as_str()))
        .map(|h| h.height);
    let fork_height = walked.unwrap_or_else(|| {
        let len = listed.iter().map(|t| t.branchlen).max().unwrap_or(0);
        height.saturating_sub(len)
    });
    let status = [
        "active",
        "valid-fork",
        "valid-headers",
        "headers-only",
        "invalid",
    ]
    .into_iter()
    .find(|s| listed.iter().any(|t| t.status == *s))
    .unwrap_or("unknown");
    let nodes_on = on.get(tip).cloned().unwrap_or_default();
    Branch {
        tip: tip.to_string(),
        height,
        length: height.saturating_sub(fork_height),
        fork_height,
        stale: nodes_on.is_empty(),
        nodes: nodes_on,
        known_by: listed.len(),
        status: status.to_string(),
    }
}

/// How `from` and `to` relate: None when `to` descends from `from` (the chain grew) or the headers to
/// tell are missing; else the depth of the reorg (blocks of `from`'s chain left behind) and the height
/// where the chains meet.
pub fn reorg_between(from: &str, to: &str, headers: &Headers) -> Option<(u64, u64)> {
    if from == to {
        return None;
    }
    let theirs: BTreeMap<&str, u64> = ancestry(to, headers, 0)
        .into_iter()
        .map(|h| (h.hash.as_str(), h.height))
        .collect();
    let old = headers.get(from)?;
    let meet = ancestry(from, headers, 0)
        .into_iter()
        .find_map(|h| theirs.get(h.hash.as_str()).copied())?;
    (meet < old.height).then(|| (old.height - meet, meet))
}

/// The reorgs between two readings of the nodes' best blocks (by node name): each node whose new best
/// block does not descend from its old one.
pub fn reorgs(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    headers: &Headers,
) -> Vec<Reorg> {
    (after.iter())
        .filter_map(|(node, to)| {
            let from = before.get(node)?;
            let (depth, fork_height) = reorg_between(from, to, headers)?;
            Some(Reorg {
                node: node.clone(),
                from: from.clone(),
                to: to.clone(),
                depth,
                fork_height,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of headers `name0..` from height 0, each on the one before; `from` starts it on another
    /// block (a branch).
    fn chain(headers: &mut Headers, name: &str, from: Option<(&str, u64)>, len: u64) {
        let (mut prev, start) = match from {
            Some((hash, height)) => (Some(hash.to_string()), height + 1),
            None => (None, 0),
        };
        for i in 0..len {
            let height = start + i;
            let hash = format!("{name}{height}");
            headers.insert(
                hash.clone(),
                Header {
                    hash: hash.clone(),
                    height,
                    prev: prev.clone(),
                    chainwork: format!("{:08x}", height + 1),
                    time: 1000 + height,
                },
            );
            prev = Some(hash);
        }
    }

    fn tip(hash: &str, height: u64, branchlen: u64, status: &str) -> ChainTip {
        ChainTip {
            height,
            hash: hash.into(),
            branchlen,
            status: status.into(),
        }
    }

    fn node(name: &str, best: &str, tips: Vec<ChainTip>) -> NodeChain {
        NodeChain {
            node: name.into(),
            best: Some(best.into()),
            tips,
        }
    }

    /// After a heal: the main chain a0..a12, a stale branch b11..b12 off a10 that n2 left; every node
    /// on a12.
    fn healed() -> (Vec<NodeChain>, Headers) {
        let mut h = Headers::new();
        chain(&mut h, "a", None, 13);
        chain(&mut h, "b", Some(("a10", 10)), 2);
        let nodes = vec![
            node("n0", "a12", vec![tip("a12", 12, 0, "active")]),
            node("n1", "a12", vec![tip("a12", 12, 0, "active")]),
            node(
                "n2",
                "a12",
                vec![tip("a12", 12, 0, "active"), tip("b12", 12, 2, "valid-fork")],
            ),
        ];
        (nodes, h)
    }

    #[test]
    fn a_stale_branch_is_drawn_off_the_main_chain_with_its_length() {
        let (nodes, headers) = healed();
        let view = fork_view(&nodes, &headers, 5);
        assert_eq!((view.bottom, view.top), (8, 12));
        assert_eq!(view.main.as_deref(), Some("a12"));
        let shown: Vec<(&str, bool)> = view
            .blocks
            .iter()
            .map(|b| (b.hash.as_str(), b.main))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("a8", true),
                ("a9", true),
                ("a10", true),
                ("a11", true),
                ("b11", false),
                ("a12", true),
                ("b12", false)
            ]
        );
        let top = view.blocks.iter().find(|b| b.hash == "a12").unwrap();
        assert_eq!(top.nodes, vec!["n0", "n1", "n2"]);
        assert_eq!(view.branches.len(), 1);
        let b = &view.branches[0];
        assert_eq!((b.tip.as_str(), b.length, b.fork_height), ("b12", 2, 10));
        assert!(b.stale);
        assert_eq!((b.known_by, b.status.as_str()), (1, "valid-fork"));
    }

    /// While partitioned, two active tips: the one with more work is main, the other a live branch.
    #[test]
    fn two_sides_of_a_partition_are_the_main_chain_and_a_live_branch() {
        let mut h = Headers::new();
        chain(&mut h, "a", None, 13);
        chain(&mut h, "b", Some(("a10", 10)), 1);
        let nodes = vec![
            node("n0", "a12", vec![tip("a12", 12, 0, "active")]),
            node("n1", "b11", vec![tip("b11", 11, 0, "active")]),
        ];
        let view = fork_view(&nodes, &h, 20);
        assert_eq!(view.bottom, 0);
        assert_eq!(view.main.as_deref(), Some("a12"));
        let b = &view.branches[0];
        assert_eq!((b.length, b.fork_height, b.stale), (1, 10, false));
        assert_eq!(b.nodes, vec!["n1"]);
        assert_eq!(b.status, "active");
    }

    /// Headers are read from each tip back to the window's bottom, one missing block per tip and
    /// round, and not again once known.
    #[test]
    fn the_headers_needed_walk_back_from_each_tip_to_the_bottom() {
        let (nodes, full) = healed();
        let mut known = Headers::new();
        let mut rounds = 0;
        loop {
            let bottom = window_bottom(&nodes, &known, 5);
            let needed = headers_needed(&nodes, &known, bottom);
            if needed.is_empty() {
                break;
            }
            rounds += 1;
            for hash in needed {
                known.insert(hash.clone(), full[&hash].clone());
            }
        }
        assert_eq!(rounds, 5, "a12 back to a8, one a round (b12, b11 meet a10)");
        let mut read: Vec<&str> = known.keys().map(String::as_str).collect();
        read.sort();
        assert_eq!(read, vec!["a10", "a11", "a12", "a8", "a9", "b11", "b12"]);
        assert!(headers_needed(&nodes, &known, 8).is_empty());
    }

    #[test]
    fn a_reorg_is_a_best_block_that_left_the_chain_and_growth_is_not() {
        let (_, headers) = healed();
        let before = BTreeMap::from([
            ("n0".to_string(), "a11".to_string()),
            ("n2".to_string(), "b12".to_string()),
        ]);
        let after = BTreeMap::from([
            ("n0".to_string(), "a12".to_string()),
            ("n2".to_string(), "a12".to_string()),
            ("n9".to_string(), "a12".to_string()),
        ]);
        let found = reorgs(&before, &after, &headers);
        assert_eq!(
            found,
            vec![Reorg {
                node: "n2".into(),
                from: "b12".into(),
                to: "a12".into(),
                depth: 2,
                fork_height: 10,
            }]
        );
        assert_eq!(reorg_between("a12", "a9", &headers), Some((3, 9)));
        assert_eq!(reorg_between("a12", "unknown", &headers), None);
    }

    #[test]
    fn no_answer_gives_an_empty_view() {
        let nodes = vec![NodeChain {
            node: "n0".into(),
            ..NodeChain::default()
        }];
        assert_eq!(fork_view(&nodes, &Headers::new(), 10), ForkView::default());
    }
}
