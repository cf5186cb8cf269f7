//! What the operator's page draws of one cluster, as data: the nodes where `topology show --svg` lays
//! them out, coloured by their best tip, held or stopped ones marked; declared edges and live sessions;
//! partition segments as groups; cuts (one-way or both) and shaped links; the fork view; the faults in
//! force with the CLI line that ends each; and the events between two pictures (faults started and
//! ended, nodes held or back, forks, reorgs). Built from what `status` and the fault plane report.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::core::chain::forks::{ForkView, Reorg};
use crate::core::faults::plane::Block;
use crate::core::verb::{Links, NodeStatus, PartitionReport};

/// Blocks the fork view shows below the highest tip.
pub const FORK_WINDOW: u64 = 12;

/// One cluster as the page draws it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Picture {
    pub cluster: String,
    /// When it was read, in seconds since the Unix epoch.
    pub at: f64,
    pub nodes: Vec<Dot>,
    /// Declared edges, by node name.
    pub edges: Vec<[String; 2]>,
    /// Sessions the nodes report (either end listing the other), by node name.
    pub sessions: Vec<[String; 2]>,
    /// The partition's segments, when there is more than one.
    pub groups: Vec<Group>,
    pub cuts: Vec<CutLine>,
    pub shaped: Vec<Shaped>,
    /// The distinct best blocks, most nodes first; a dot's `tip` indexes this list.
    pub tips: Vec<TipShare>,
    pub forks: ForkView,
    /// The faults and holds in force, each with the command that ends it.
    pub in_force: Vec<InForce>,
}

/// A node: where it is drawn (in an 800×800 box) and what it reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dot {
    pub name: String,
    pub x: f64,
    pub y: f64,
    /// The container's state (`running`, `paused`, `exited`, …).
    pub state: String,
    /// Held down on purpose (`stop`, `kill`, `pause`): the operator leaves it so.
    pub held: bool,
    pub height: Option<u64>,
    pub best: Option<String>,
    /// Index into [`Picture::tips`].
    pub tip: Option<usize>,
    pub peers: usize,
    /// Its link faults, worded as `status` words them.
    pub links: String,
    pub error: Option<String>,
}

/// A partition segment and its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: usize,
    pub members: Vec<String>,
}

/// Packets from `from` to `to` are stopped; `both_ways` when those back are too.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CutLine {
    pub from: String,
    pub to: String,
    pub both_ways: bool,
    /// `drop`, `silent` or `reset`.
    pub block: String,
}

/// Shaping of `node`'s packets, to one peer or (None) to all.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shaped {
    pub node: String,
    pub to: Option<String>,
    pub shaping: String,
}

/// A best block and how many nodes sit on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipShare {
    pub hash: String,
    pub height: Option<u64>,
    pub nodes: usize,
    /// The fork view's main tip.
    pub main: bool,
}

/// A fault or hold in force and the command that ends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InForce {
    pub what: String,
    pub cli: String,
}

/// One line of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub at: f64,
    /// `fault`, `ended`, `node`, `chain`, `reorg`, `pass`, `request` or `error`.
    pub kind: String,
    pub text: String,
}

impl Event {
    pub fn new(at: f64, kind: &str, text: impl Into<String>) -> Event {
        Event {
            at,
            kind: kind.to_string(),
            text: text.into(),
        }
    }
}

/// What a picture is made from: what `status` reports of each node, the link faults by node, the
/// nodes held, the segments, the fork view, and the layout of the declared graph.
pub struct Reading<'a> {
    pub cluster: &'a str,
    pub at: f64,
    pub status: &'a [NodeStatus],
    pub edges: &'a [(usize, usize)],
    pub links: &'a Links,
    pub held: &'a [String],
    pub partition: &'a PartitionReport,
    pub forks: ForkView,
    /// Each node's position, by index (`topology::svg::layout`).
    pub layout: &'a [(f64, f64)],
}

/// The picture of one reading.
pub fn picture(r: Reading<'_>) -> Picture {
    let names: Vec<String> = r.status.iter().map(|s| s.name.clone()).collect();
    let known: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let tips = tip_shares(r.status, &r.forks);
    let nodes = (r.status.iter())
        .map(|s| {
            let (x, y) = r.layout.get(s.index).copied().unwrap_or((0.0, 0.0));
            let (x, y) = ((x * 10.0).round() / 10.0, (y * 10.0).round() / 10.0);
            Dot {
                name: s.name.clone(),
                x,
                y,
                state: s.state.word().to_string(),
                held: r.held.contains(&s.name),
                height: s.height,
                best: s.best_hash.clone(),
                tip: (s.best_hash.as_ref()).and_then(|b| tips.iter().position(|t| &t.hash == b)),
                peers: s.peers.len(),
                links: s.links.clone(),
                error: s.error.clone(),
            }
        })
        .collect();
    let name = |i: usize| names.get(i).cloned().unwrap_or_default();
    let edges = r.edges.iter().map(|&(a, b)| [name(a), name(b)]).collect();
    let sessions: BTreeSet<[String; 2]> = (r.status.iter())
        .flat_map(|s| {
            (s.peers.iter())
                .filter(|p| known.contains(p.as_str()))
                .map(|p| pair(&s.name, p))
        })
        .collect();
    let groups: Vec<Group> = if r.partition.segments.len() > 1 {
        (r.partition.segments.iter())
            .map(|s| Group {
                id: s.id,
                members: s.members.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let (cuts, shaped) = link_lines(r.links);
    let mut p = Picture {
        cluster: r.cluster.to_string(),
        at: r.at,
        nodes,
        edges,
        sessions: sessions.into_iter().collect(),
        groups,
        cuts,
        shaped,
        tips,
        forks: r.forks,
        in_force: Vec::new(),
    };
    p.in_force = in_force(&p);
    p
}

/// The two names in order.
fn pair(a: &str, b: &str) -> [String; 2] {
    if a <= b {
        [a.to_string(), b.to_string()]
    } else {
        [b.to_string(), a.to_string()]
    }
}

/// The distinct best blocks, most nodes first (then the main tip, then the highest).
fn tip_shares(status: &[NodeStatus], forks: &ForkView) -> Vec<TipShare> {
    let mut by_hash: BTreeMap<&str, (Option<u64>, usize)> = BTreeMap::new();
    for s in status {
        if let Some(best) = &s.best_hash {
            let e = by_hash.entry(best).or_insert((s.height, 0));
            e.1 += 1;
        }
    }
    let mut tips: Vec<TipShare> = (by_hash.into_iter())
        .map(|(hash, (height, nodes))| TipShare {
            hash: hash.to_string(),
            height,
            nodes,
            main: forks.main.as_deref() == Some(hash),
        })
        .collect();
    tips.sort_by(|a, b| {
        (b.nodes, b.main, b.height, &a.hash).cmp(&(a.nodes, a.main, a.height, &b.hash))
    });
    tips
}

/// The cuts, a pair cut both ways drawn once, and the shaped links.
fn link_lines(links: &Links) -> (Vec<CutLine>, Vec<Shaped>) {
    let stops: BTreeMap<(&str, &str), Block> = (links.iter())
        .flat_map(|(from, f)| {
            f.cuts
                .iter()
                .map(move |(to, b)| ((from.as_str(), to.as_str()), *b))
        })
        .collect();
    let mut cuts = Vec::new();
    for (&(from, to), block) in &stops {
        let back = stops.contains_key(&(to, from));
        if back && to < from {
            continue; // drawn as `to`–`from`
        }
        cuts.push(CutLine {
            from: from.to_string(),
            to: to.to_string(),
            both_ways: back,
            block: block.name().to_string(),
        });
    }
    let mut shaped = Vec::new();
    for (node, f) in links {
        if let Some(s) = &f.shaping {
            shaped.push(Shaped {
                node: node.clone(),
                to: None,
                shaping: s.to_string(),
            });
        }
        for (to, s) in &f.links {
            shaped.push(Shaped {
                node: node.clone(),
                to: Some(to.clone()),
                shaping: s.to_string(),
            });
        }
    }
    (cuts, shaped)
}

/// The faults and holds in force, each with the command that ends it.
fn in_force(p: &Picture) -> Vec<InForce> {
    let c = &p.cluster;
    let mut out = Vec::new();
    if !p.groups.is_empty() {
        out.push(InForce {
            what: format!("partition {}", groups_text(&p.groups)),
            cli: format!("regbox -c {c} heal"),
        });
    }
    for cut in &p.cuts {
        out.push(InForce {
            what: cut_text(cut),
            cli: format!("regbox -c {c} cut --clear {}", cut.from),
        });
    }
    for s in &p.shaped {
        out.push(InForce {
            what: shaped_text(s),
            cli: format!("regbox -c {c} netem --clear {}", s.node),
        });
    }
    for d in p.nodes.iter().filter(|d| d.held) {
        let undo = if d.state == "paused" {
            "unpause"
        } else {
            "start"
        };
        out.push(InForce {
            what: format!("{} held {}", d.name, d.state),
            cli: format!("regbox -c {c} {undo} {}", d.name),
        });
    }
    out
}

fn groups_text(groups: &[Group]) -> String {
    let parts: Vec<String> = groups.iter().map(|g| g.members.join(",")).collect();
    parts.join(" | ")
}

fn cut_text(c: &CutLine) -> String {
    let arrow = if c.both_ways { "↔" } else { "→" };
    let way = if c.both_ways { "both ways" } else { "one way" };
    format!("cut {} {arrow} {} ({way}, {})", c.from, c.to, c.block)
}

fn shaped_text(s: &Shaped) -> String {
    match &s.to {
        Some(to) => format!("{} → {}: {}", s.node, to, s.shaping),
        None => format!("{}: {}", s.node, s.shaping),
    }
}

/// What changed from `before` to `after`, as event-log lines timed at `after.at`: a partition made,
/// changed or healed; cuts and shaping set or removed; nodes held, stopped or back; the nodes' best
/// blocks splitting over several tips or coming together again.
pub fn events_between(before: &Picture, after: &Picture) -> Vec<Event> {
    let at = after.at;
    let mut out = Vec::new();
    if before.groups != after.groups {
        out.push(if after.groups.is_empty() {
            Event::new(at, "ended", "partition healed")
        } else {
            Event::new(
                at,
                "fault",
                format!("partition {}", groups_text(&after.groups)),
            )
        });
    }
    let diff = |a: &[String], b: &[String], kind: &str, out: &mut Vec<Event>, word: &str| {
        for x in b.iter().filter(|x| !a.contains(x)) {
            out.push(Event::new(at, kind, format!("{x}{word}")));
        }
    };
    let cuts = |p: &Picture| p.cuts.iter().map(cut_text).collect::<Vec<_>>();
    let shaped = |p: &Picture| p.shaped.iter().map(shaped_text).collect::<Vec<_>>();
    diff(&cuts(after), &cuts(before), "ended", &mut out, " ended");
    diff(&cuts(before), &cuts(after), "fault", &mut out, "");
    diff(&shaped(after), &shaped(before), "ended", &mut out, " ended");
    diff(&shaped(before), &shaped(after), "fault", &mut out, "");
    for d in &after.nodes {
        let Some(old) = before.nodes.iter().find(|o| o.name == d.name) else {
            continue;
        };
        if (old.state.as_str(), old.held) != (d.state.as_str(), d.held) {
            let held = if d.held { " (held)" } else { "" };
            out.push(Event::new(
                at,
                "node",
                format!("{} {}{held}", d.name, d.state),
            ));
        }
    }
    let (was, is) = (before.tips.len(), after.tips.len());
    if is > 1 && is != was {
        let sides: Vec<String> = (after.tips.iter())
            .map(|t| format!("{} at height {}", t.nodes, height_text(t.height)))
            .collect();
        let text = format!("the nodes split over {is} tips: {}", sides.join(", "));
        out.push(Event::new(at, "chain", text));
    } else if is == 1 && was > 1 {
        let t = &after.tips[0];
        out.push(Event::new(
            at,
            "chain",
            format!(
                "every node on one tip again, height {}",
                height_text(t.height)
            ),
        ));
    }
    out
}

fn height_text(h: Option<u64>) -> String {
    h.map_or("?".into(), |h| h.to_string())
}

/// Reorgs as event-log lines: nodes that left the same block for the same block make one line.
pub fn reorg_events(at: f64, reorgs: &[Reorg]) -> Vec<Event> {
    let mut by_move: BTreeMap<(&str, &str, u64), Vec<&str>> = BTreeMap::new();
    for r in reorgs {
        (by_move.entry((&r.from, &r.to, r.depth)).or_default()).push(&r.node);
    }
    (by_move.into_iter())
        .map(|((from, to, depth), nodes)| {
            Event::new(
                at,
                "reorg",
                format!(
                    "reorg of depth {depth} on {}: {} → {}",
                    nodes.join(", "),
                    short(from),
                    short(to)
                ),
            )
        })
        .collect()
}

/// The first 8 hex digits of a hash, as the page shows it.
pub fn short(hash: &str) -> &str {
    &hash[..hash.len().min(8)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::cluster::plan::State;
    use crate::core::faults::link::Shaping;
    use crate::core::faults::plane::NodeFaults;
    use crate::core::partition::{CutMode, Via};
    use crate::core::verb::SegmentReport;

    fn status(i: usize, best: &str, peers: &[&str]) -> NodeStatus {
        NodeStatus {
            index: i,
            name: format!("n{i}"),
            image: "img".into(),
            state: State::Running,
            host: None,
            control_ip: String::new(),
            data_ip: String::new(),
            height: Some(100 + best.len() as u64),
            best_hash: Some(best.into()),
            peers: peers.iter().map(|p| p.to_string()).collect(),
            segments: Vec::new(),
            error: None,
            links: String::new(),
            clock: None,
            drift: None,
            overlay_encrypted: None,
            throttle: None,
        }
    }

    fn partition(groups: &[&[&str]]) -> PartitionReport {
        PartitionReport {
            mode: CutMode::Drop,
            via: Via::Segments,
            segments: (groups.iter().enumerate())
                .map(|(id, m)| SegmentReport {
                    id,
                    network: String::new(),
                    subnet: String::new(),
                    members: m.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
            graph: Vec::new(),
            seed: None,
        }
    }

    fn draw(
        status: &[NodeStatus],
        links: &Links,
        held: &[String],
        part: &PartitionReport,
    ) -> Picture {
        let layout: Vec<(f64, f64)> = (0..status.len()).map(|i| (i as f64, 0.0)).collect();
        picture(Reading {
            cluster: "lab",
            at: 10.0,
            status,
            edges: &[(0, 1), (1, 2), (2, 0)],
            links,
            held,
            partition: part,
            forks: ForkView::default(),
            layout: &layout,
        })
    }

    #[test]
    fn sessions_tips_groups_cuts_and_shaping_are_drawn_from_status_and_links() {
        let nodes = [
            status(0, "aa", &["n1", "10.0.0.9:1"]),
            status(1, "aa", &["n0"]),
            status(2, "bbb", &[]),
        ];
        let mut links = Links::new();
        let mut a = NodeFaults::<String>::default();
        a.cuts.insert("n1".into(), Block::Drop);
        a.cuts.insert("n2".into(), Block::Drop);
        links.insert("n0".into(), a);
        let mut b = NodeFaults::<String>::default();
        b.cuts.insert("n0".into(), Block::Drop);
        b.shaping = Some(Shaping {
            delay_us: 100_000,
            ..Shaping::default()
        });
        links.insert("n1".into(), b);
        let part = partition(&[&["n0", "n1"], &["n2"]]);
        let p = draw(&nodes, &links, &["n2".into()], &part);
        assert_eq!(p.sessions, vec![["n0".to_string(), "n1".to_string()]]);
        assert_eq!(p.edges[2], ["n2".to_string(), "n0".to_string()]);
        assert_eq!(p.tips.len(), 2);
        assert_eq!((p.tips[0].hash.as_str(), p.tips[0].nodes), ("aa", 2));
        assert_eq!(p.nodes[2].tip, Some(1));
        assert!(p.nodes[2].held);
        assert_eq!(p.groups.len(), 2);
        let cuts: Vec<(&str, &str, bool)> = (p.cuts.iter())
            .map(|c| (c.from.as_str(), c.to.as_str(), c.both_ways))
            .collect();
        assert_eq!(cuts, vec![("n0", "n1", true), ("n0", "n2", false)]);
        assert_eq!(p.shaped[0].shaping, "delay 100ms");
        let force: Vec<&str> = p.in_force.iter().map(|f| f.cli.as_str()).collect();
        assert_eq!(
            force,
            vec![
                "regbox -c lab heal",
                "regbox -c lab cut --clear n0",
                "regbox -c lab cut --clear n0",
                "regbox -c lab netem --clear n1",
                "regbox -c lab start n2"
            ]
        );
        assert_eq!(p.in_force[2].what, "cut n0 → n2 (one way, drop)");
    }

    #[test]
    fn events_say_what_started_and_ended() {
        let nodes = [
            status(0, "aa", &[]),
            status(1, "aa", &[]),
            status(2, "aa", &[]),
        ];
        let healed = partition(&[&["n0", "n1", "n2"]]);
        let before = draw(&nodes, &Links::new(), &[], &healed);
        let split = partition(&[&["n0", "n1"], &["n2"]]);
        let forked = [
            status(0, "aa", &[]),
            status(1, "aa", &[]),
            status(2, "bbb", &[]),
        ];
        let mut links = Links::new();
        let mut f = NodeFaults::<String>::default();
        f.cuts.insert("n1".into(), Block::Drop);
        links.insert("n0".into(), f);
        let after = draw(&forked, &links, &["n1".into()], &split);
        let texts: Vec<(String, String)> = events_between(&before, &after)
            .into_iter()
            .map(|e| (e.kind, e.text))
            .collect();
        let pairs: Vec<(&str, &str)> = texts
            .iter()
            .map(|(k, t)| (k.as_str(), t.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("fault", "partition n0,n1 | n2"),
                ("fault", "cut n0 → n1 (one way, drop)"),
                ("node", "n1 running (held)"),
                (
                    "chain",
                    "the nodes split over 2 tips: 2 at height 102, 1 at height 103"
                ),
            ]
        );
        let back: Vec<String> = events_between(&after, &before)
            .into_iter()
            .map(|e| e.text)
            .collect();
        assert_eq!(
            back,
            vec![
                "partition healed",
                "cut n0 → n1 (one way, drop) ended",
                "n1 running",
                "every node on one tip again, height 102"
            ]
        );
        assert!(events_between(&after, &after).is_empty());
    }

    #[test]
    fn reorgs_of_the_same_move_make_one_line() {
        let r = |node: &str| Reorg {
            node: node.into(),
            from: "bbbbbbbbbbbb".into(),
            to: "aaaaaaaaaaaa".into(),
            depth: 3,
            fork_height: 10,
        };
        let lines = reorg_events(5.0, &[r("n3"), r("n4")]);
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines[0].text,
            "reorg of depth 3 on n3, n4: bbbbbbbb → aaaaaaaa"
        );
    }
}
