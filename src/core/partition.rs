//! Network partitions: which nodes may exchange P2P traffic, and the moves between data segments (Docker
//! bridge networks) that take a cluster from one partition to the next, computed without any I/O.
//!
//! Two nodes can talk iff they share a segment. Segment 0 is the base segment, the cluster's own data
//! network; every other segment exists only while a partition needs it. A node on several segments
//! links them, which is how a bridge node and the majorities ring work.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::core::cluster::manifest::ClusterSpec;
use crate::core::names::shown;
use crate::core::rng::SplitMix64;
use crate::core::topology::{Edge, Graph, NodeId};

/// A data segment; 0 is the base segment.
pub type SegmentId = usize;

/// The cluster's own data network, which holds every node while no partition is active.
pub const BASE: SegmentId = 0;

/// What the user asked for, with node references as typed (names or decimal indices).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKind {
    /// Explicit groups; the nodes named nowhere form one more group together, as in Blockade.
    Groups(Vec<Vec<String>>),
    /// The first ceil(n/2) indices against the rest.
    Halves,
    /// Halves of a seeded shuffle: the same seed splits the same way on every machine and version.
    RandomHalves { seed: u64 },
    /// One node against everybody else.
    Isolate(String),
    /// Nodes below `bridge_node(n)` against those above it, with the bridge node in both groups.
    Bridge,
    /// Every node sees a majority, and no two nodes see the same one (Jepsen's majorities-ring).
    MajoritiesRing,
}

impl PartitionKind {
    /// The spelling used on the command line (matches the serde names).
    pub fn name(&self) -> &'static str {
        match self {
            PartitionKind::Groups(_) => "groups",
            PartitionKind::Halves => "halves",
            PartitionKind::RandomHalves { .. } => "random-halves",
            PartitionKind::Isolate(_) => "isolate",
            PartitionKind::Bridge => "bridge",
            PartitionKind::MajoritiesRing => "majorities-ring",
        }
    }

    /// The smallest cluster the kind can cut, and why, for the error message.
    fn min_nodes(&self) -> (usize, &'static str) {
        match self {
            // Groups are checked by what they name instead (`OneGroup`).
            PartitionKind::Groups(_) => (0, ""),
            PartitionKind::Halves | PartitionKind::RandomHalves { .. } => (2, "one for each half"),
            PartitionKind::Isolate(_) => (2, "the isolated node and one to cut it off from"),
            PartitionKind::Bridge => (3, "one on each side and the bridge between them"),
            PartitionKind::MajoritiesRing => (
                4,
                "on a ring of 3, every node's neighbours are everyone, so nothing would be cut; \
                 bridge gives 3 nodes different majorities",
            ),
        }
    }
}

/// A validated partition: groups of node ids. A node is in several groups only for `Bridge` and
/// `MajoritiesRing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    pub groups: Vec<BTreeSet<NodeId>>,
}

impl Partition {
    /// The groups by node name, e.g. `{n0,n1} | {n2,n3}`.
    pub fn describe(&self, spec: &ClusterSpec) -> String {
        let name = |i: NodeId| {
            spec.nodes
                .get(i)
                .map_or_else(|| i.to_string(), |n| n.name.clone())
        };
        let groups: Vec<String> = self
            .groups
            .iter()
            .map(|g| {
                format!(
                    "{{{}}}",
                    g.iter().map(|&i| name(i)).collect::<Vec<_>>().join(",")
                )
            })
            .collect();
        groups.join(" | ")
    }
}

/// A partition request that cannot be realised on the cluster; always the user's input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error("{}unknown node `{}` ({hint})", in_group(.group), shown(.node))]
    UnknownNode {
        /// As typed.
        node: String,
        /// 1-based, when the reference was inside a group.
        group: Option<usize>,
        /// The valid names or index range.
        hint: String,
    },
    #[error("{}", named_twice(.node, *.first, *.second))]
    NodeInTwoGroups {
        node: String,
        first: usize,
        second: usize,
    },
    #[error("group {group} names unknown host `@{}` ({hint})", shown(.host))]
    UnknownHost {
        host: String,
        group: usize,
        hint: String,
    },
    #[error("group {group} is empty; every group needs at least one node")]
    EmptyGroup { group: usize },
    #[error("{}", one_group(*.nodes))]
    OneGroup { nodes: usize },
    #[error("{kind} needs at least {need} nodes ({why}), the cluster has {nodes}")]
    TooFewNodes {
        kind: &'static str,
        need: usize,
        nodes: usize,
        why: &'static str,
    },
}

fn in_group(group: &Option<usize>) -> String {
    group.map_or_else(String::new, |g| format!("group {g} names "))
}

fn named_twice(node: &str, first: usize, second: usize) -> String {
    if first == second {
        format!("node `{node}` is named twice in group {first}")
    } else {
        format!(
            "node `{node}` is named in group {first} and again in group {second}; a node can be in one group only"
        )
    }
}

fn one_group(nodes: usize) -> String {
    if nodes == 1 {
        "a partition needs at least two groups, and a 1-node cluster has only one".to_owned()
    } else {
        format!("a partition needs at least two groups, but these put all {nodes} nodes in one")
    }
}

fn resolve(spec: &ClusterSpec, r: &str, group: Option<usize>) -> Result<NodeId, PartitionError> {
    spec.resolve(r).ok_or_else(|| PartitionError::UnknownNode {
        node: r.to_owned(),
        group,
        hint: spec.node_names().hint(),
    })
}

/// `@HOST` in a group: every node on that host (of a cluster across hosts).
fn on_host(spec: &ClusterSpec, host: &str, group: usize) -> Result<Vec<NodeId>, PartitionError> {
    if !spec.hosts.iter().any(|h| h.name == host) {
        let names: Vec<String> = spec.hosts.iter().map(|h| format!("@{}", h.name)).collect();
        return Err(PartitionError::UnknownHost {
            host: host.to_owned(),
            group,
            hint: if names.is_empty() {
                "the cluster declares no hosts".into()
            } else {
                format!("hosts: {}", names.join(", "))
            },
        });
    }
    Ok(spec.nodes_on(host))
}

fn at_least(kind: &PartitionKind, nodes: usize) -> Result<(), PartitionError> {
    let (need, why) = kind.min_nodes();
    if nodes < need {
        return Err(PartitionError::TooFewNodes {
            kind: kind.name(),
            need,
            nodes,
            why,
        });
    }
    Ok(())
}

/// Resolves and validates `kind` against the nodes of `spec`.
pub fn build(spec: &ClusterSpec, kind: &PartitionKind) -> Result<Partition, PartitionError> {
    let n = spec.nodes.len();
    let groups = match kind {
        PartitionKind::Groups(named) => return named_groups(spec, named),
        PartitionKind::Halves => {
            at_least(kind, n)?;
            halves(&(0..n).collect::<Vec<_>>())
        }
        PartitionKind::RandomHalves { seed } => {
            at_least(kind, n)?;
            halves(&shuffled(n, *seed))
        }
        PartitionKind::Isolate(r) => {
            let alone = resolve(spec, r, None)?;
            at_least(kind, n)?;
            vec![
                BTreeSet::from([alone]),
                (0..n).filter(|&i| i != alone).collect(),
            ]
        }
        PartitionKind::Bridge => {
            at_least(kind, n)?;
            let b = bridge_node(n);
            vec![(0..=b).collect(), (b..n).collect()]
        }
        PartitionKind::MajoritiesRing => {
            at_least(kind, n)?;
            majorities_ring(n)
        }
    };
    Ok(Partition { groups })
}

fn named_groups(spec: &ClusterSpec, named: &[Vec<String>]) -> Result<Partition, PartitionError> {
    let n = spec.nodes.len();
    // 1-based group number of every node named so far.
    let mut group_of: Vec<Option<usize>> = vec![None; n];
    let mut groups = Vec::with_capacity(named.len() + 1);
    for (index, refs) in named.iter().enumerate() {
        let number = index + 1;
        if refs.is_empty() {
            return Err(PartitionError::EmptyGroup { group: number });
        }
        let mut group = BTreeSet::new();
        let ids = refs
            .iter()
            .map(|r| match r.strip_prefix('@') {
                Some(host) => on_host(spec, host, number),
                None => resolve(spec, r, Some(number)).map(|id| vec![id]),
            })
            .collect::<Result<Vec<_>, _>>()?;
        for id in ids.into_iter().flatten() {
            if let Some(first) = group_of[id].replace(number) {
                return Err(PartitionError::NodeInTwoGroups {
                    node: spec.nodes[id].name.clone(),
                    first,
                    second: number,
                });
            }
            group.insert(id);
        }
        if group.is_empty() {
            return Err(PartitionError::EmptyGroup { group: number });
        }
        groups.push(group);
    }
    let rest: BTreeSet<NodeId> = (0..n).filter(|&i| group_of[i].is_none()).collect();
    if !rest.is_empty() {
        groups.push(rest);
    }
    if groups.len() < 2 {
        return Err(PartitionError::OneGroup { nodes: n });
    }
    Ok(Partition { groups })
}

/// The first ceil(n/2) of `order` against the rest.
fn halves(order: &[NodeId]) -> Vec<BTreeSet<NodeId>> {
    let (first, second) = order.split_at(order.len().div_ceil(2));
    vec![
        first.iter().copied().collect(),
        second.iter().copied().collect(),
    ]
}

/// The node in both groups of a bridge over `n` nodes: the middle index, n/2.
///
/// The others then split exactly as `Halves` would split them (the lower floor(n/2) = ceil((n-1)/2)
/// indices against the rest), both groups are runs of consecutive indices, and the group holding the
/// lower half and the bridge is a majority, so applying a bridge to a healed cluster leaves a majority
/// on the base segment.
pub fn bridge_node(n: usize) -> NodeId {
    n / 2
}

/// The groups of the majorities ring over `n` ≥ 4 nodes.
///
/// Nodes sit on a ring by index. A majority is m = n/2+1 nodes; with k = ceil((m-1)/2), the smallest
/// radius with 2k+1 ≥ m, node i should see exactly the nodes within ring distance k of it: a majority
/// centred on itself, so each view is a rotation of the next and no two are equal. That is realised
/// with n windows W_s = {s, s+1, …, s+k} (mod n): two nodes at ring distance d ≤ k both lie in the
/// window that starts at the earlier of them, while the members of any window are at most k apart, so
/// nodes farther apart share none. Each node is in k+1 windows and sees 2k+1 nodes, which is fewer
/// than n for n ≥ 4 (at n = 3 it would be everyone).
fn majorities_ring(n: usize) -> Vec<BTreeSet<NodeId>> {
    let m = n / 2 + 1;
    let k = (m - 1).div_ceil(2);
    (0..n)
        .map(|s| (s..=s + k).map(|i| i % n).collect())
        .collect()
}

/// `0..n` in the order of a Fisher–Yates shuffle driven by `seed`.
fn shuffled(n: usize, seed: u64) -> Vec<NodeId> {
    let mut order: Vec<NodeId> = (0..n).collect();
    SplitMix64(seed).shuffle(&mut order);
    order
}

/// Per node: the segments it is on.
pub type Membership = Vec<BTreeSet<SegmentId>>;

/// Every one of `n` nodes on the base segment only.
pub fn healed(n: usize) -> Membership {
    vec![BTreeSet::from([BASE]); n]
}

/// The moves from one membership to another. Applied in the order create, detach, attach, remove,
/// every intermediate state lets through only pairs that the target allows too, and no node is
/// detached from a segment before the segment it moves to exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub target: Membership,
    /// Segments (never the base) that must be created.
    pub create: Vec<SegmentId>,
    /// Segments (never the base) no node is on after the moves.
    pub remove: Vec<SegmentId>,
    /// Target minus current, by node then segment.
    pub attach: Vec<(NodeId, SegmentId)>,
    /// Current minus target, by node then segment.
    pub detach: Vec<(NodeId, SegmentId)>,
}

impl Plan {
    /// Nothing to do: the cluster already has the target membership.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty()
            && self.remove.is_empty()
            && self.attach.is_empty()
            && self.detach.is_empty()
    }
}

/// The moves from `current` to `partition`, or back to the base segment alone for `None` (heal).
///
/// Segments are chosen to keep moves few: the largest group takes the base segment, and each other
/// group the existing segment it overlaps most, so re-applying the active partition does nothing and
/// switching partitions moves only the nodes whose side changes.
///
/// Panics if the partition names a node outside `current`.
pub fn plan(current: &Membership, partition: Option<&Partition>) -> Plan {
    let target = match partition {
        None => healed(current.len()),
        Some(p) => assign(current, p),
    };
    moves(current, target)
}

fn assign(current: &Membership, partition: &Partition) -> Membership {
    let n = current.len();
    let groups = &partition.groups;
    if let Some(bad) = groups.iter().flatten().find(|&&i| i >= n) {
        panic!("partition names node {bad} of a {n}-node cluster");
    }
    let on_base = |g: &BTreeSet<NodeId>| g.iter().filter(|&&i| current[i].contains(&BASE)).count();
    // The base group's peers keep their sessions; among equals, the one already mostly there moves least.
    let base_group =
        (0..groups.len()).max_by_key(|&j| (groups[j].len(), on_base(&groups[j]), Reverse(j)));

    let mut segment_of: Vec<Option<SegmentId>> = vec![None; groups.len()];
    let mut taken = BTreeSet::from([BASE]);
    if let Some(b) = base_group {
        segment_of[b] = Some(BASE);
    }

    // Overlaps are counted node by node into a dense array rather than by intersecting every group with
    // every segment: a 1000-node majorities ring has a thousand of each. Segment ids are renumbered
    // densely first, as they come from outside and may be sparse.
    let existing: Vec<SegmentId> = current
        .iter()
        .flatten()
        .copied()
        .filter(|&s| s != BASE)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let dense: Vec<Vec<usize>> = current
        .iter()
        .map(|segments| {
            segments
                .iter()
                .filter_map(|s| existing.binary_search(s).ok())
                .collect()
        })
        .collect();
    let mut count = vec![0usize; existing.len()];
    let mut touched = Vec::new();
    let mut candidates = Vec::new();
    for (j, group) in groups.iter().enumerate() {
        if Some(j) == base_group {
            continue;
        }
        for &i in group {
            for &d in &dense[i] {
                if count[d] == 0 {
                    touched.push(d);
                }
                count[d] += 1;
            }
        }
        for d in touched.drain(..) {
            candidates.push((Reverse(count[d]), existing[d], j));
            count[d] = 0;
        }
    }
    candidates.sort_unstable();
    for (_, s, j) in candidates {
        if segment_of[j].is_none() && taken.insert(s) {
            segment_of[j] = Some(s);
        }
    }

    // An existing segment no group overlaps is reusable as well: its old members leave it anyway, and
    // keeping it saves a network removal and a creation.
    let mut next = 1;
    let segments: Vec<SegmentId> = segment_of
        .into_iter()
        .map(|s| {
            s.unwrap_or_else(|| {
                while taken.contains(&next) {
                    next += 1;
                }
                taken.insert(next);
                next
            })
        })
        .collect();

    let mut target = vec![BTreeSet::new(); n];
    for (group, &s) in groups.iter().zip(&segments) {
        for &i in group {
            target[i].insert(s);
        }
    }
    // Only a hand-made partition can leave a node out; it stays reachable on the base segment.
    for segments in target.iter_mut().filter(|s| s.is_empty()) {
        segments.insert(BASE);
    }
    target
}

/// The moves from `current` to `target` (empty when they are equal).
pub fn moves(current: &Membership, target: Membership) -> Plan {
    let extra = |m: &Membership| -> BTreeSet<SegmentId> {
        m.iter().flatten().copied().filter(|&s| s != BASE).collect()
    };
    let (before, after) = (extra(current), extra(&target));
    let changes = |from: &Membership, to: &Membership| -> Vec<(NodeId, SegmentId)> {
        from.iter()
            .zip(to)
            .enumerate()
            .flat_map(|(i, (f, t))| f.difference(t).map(move |&s| (i, s)))
            .collect()
    };
    Plan {
        create: after.difference(&before).copied().collect(),
        remove: before.difference(&after).copied().collect(),
        attach: changes(&target, current),
        detach: changes(current, &target),
        target,
    }
}

/// The declared edges whose ends share a segment: the peer graph to expect under `membership`.
pub fn expected_graph(edges: &[Edge], membership: &Membership, cut: &Cut) -> Graph {
    edges
        .iter()
        .map(Edge::key)
        .filter(|&(a, b)| shared_segment(membership, a, b).is_some() && !cut.contains(&(a, b)))
        .collect()
}

/// Pairs of nodes (lower index first) whose packets a rule stops, one way or both: a TCP session
/// cannot live across either.
pub type Cut = BTreeSet<(NodeId, NodeId)>;

/// The pairs to cut, both ways, so that only nodes sharing a group of `partition` reach each other.
pub fn cut_pairs(partition: &Partition, nodes: usize) -> Cut {
    let mut cut = Cut::new();
    for a in 0..nodes {
        for b in a + 1..nodes {
            if !partition
                .groups
                .iter()
                .any(|g| g.contains(&a) && g.contains(&b))
            {
                cut.insert((a, b));
            }
        }
    }
    cut
}

/// The lowest segment both nodes are on, so the base segment whenever they share it.
pub fn shared_segment(membership: &Membership, a: NodeId, b: NodeId) -> Option<SegmentId> {
    membership
        .get(a)?
        .intersection(membership.get(b)?)
        .next()
        .copied()
}

/// How a partition treats the sessions that cross it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CutMode {
    /// Cross-partition sessions are closed with `disconnectnode` on both ends: the nodes see the split
    /// at once.
    #[default]
    Drop,
    /// Cross-partition sessions are left to freeze, as a real network failure leaves them (Docker sends
    /// no reset; bitcoind keeps listing the peer); healed with the same addresses, they resume.
    Silent,
}

/// How a partition is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Nodes are moved between Docker networks (the default: a network-level split).
    #[default]
    Segments,
    /// Nodes stay on their networks; packet-filter rules in each node's namespace stop the packets
    /// between groups (one update per node, whatever the shape). With `reset`, stopped TCP packets are
    /// answered with a reset rather than dropped.
    Firewall,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Via::Segments => "segments",
            Via::Firewall => "firewall",
        }
    }
}

/// The mode of the partition the plane's cuts make: silent when a cut was made silent.
pub fn cut_mode(plane: &crate::core::faults::plane::Plane) -> CutMode {
    let silent = plane.values().any(|f| {
        f.cuts
            .values()
            .any(|&b| b == crate::core::faults::plane::Block::Silent)
    });
    if silent {
        CutMode::Silent
    } else {
        CutMode::Drop
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::cluster::manifest;
    use crate::core::topology::{generate, Kind};

    fn spec(n: usize) -> ClusterSpec {
        manifest::parse(&format!("name: lab\nnodes: {n}\n"), "test.yaml").unwrap()
    }

    fn named(names: &[&str]) -> ClusterSpec {
        let nodes: Vec<String> = names.iter().map(|n| format!("{{name: {n}}}")).collect();
        manifest::parse(
            &format!("name: lab\nnodes: [{}]\n", nodes.join(", ")),
            "test.yaml",
        )
        .unwrap()
    }

    fn groups(named: &[&[&str]]) -> PartitionKind {
        PartitionKind::Groups(
            named
                .iter()
                .map(|g| g.iter().map(|r| r.to_string()).collect())
                .collect(),
        )
    }

    fn part(n: usize, kind: PartitionKind) -> Partition {
        build(&spec(n), &kind).unwrap()
    }

    #[test]
    fn a_host_in_a_group_stands_for_its_nodes() {
        let hosts = "hosts: [{name: h1, docker: 'unix:///a'}, {name: h2, docker: 'unix:///b'}, \
                     {name: h3, docker: 'unix:///c'}]\n";
        let spec = manifest::parse(&format!("name: lab\nnodes: 6\n{hosts}"), "t.yaml").unwrap();
        // Spread: h1 holds n0 and n3.
        let p = build(&spec, &groups(&[&["@h1"]])).unwrap();
        let want: Vec<BTreeSet<NodeId>> = vec![[0, 3].into(), [1, 2, 4, 5].into()];
        assert_eq!(p.groups, want);
        let p = build(&spec, &groups(&[&["@h2", "n0"], &["@h3"]])).unwrap();
        let want: Vec<BTreeSet<NodeId>> = vec![[0, 1, 4].into(), [2, 5].into(), [3].into()];
        assert_eq!(p.groups, want);
        let err = build(&spec, &groups(&[&["@h9"]])).unwrap_err().to_string();
        assert_eq!(
            err,
            "group 1 names unknown host `@h9` (hosts: @h1, @h2, @h3)"
        );
        let err = build(&self::spec(4), &groups(&[&["@h1"]]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("declares no hosts"), "{err}");
    }

    fn every_kind() -> Vec<PartitionKind> {
        vec![
            groups(&[&["n0"], &["n2", "n3"]]),
            PartitionKind::Halves,
            PartitionKind::RandomHalves { seed: 7 },
            PartitionKind::Isolate("n1".into()),
            PartitionKind::Bridge,
            PartitionKind::MajoritiesRing,
        ]
    }

    /// Who each node can reach: itself and everyone it shares a segment with.
    fn views(m: &Membership) -> Vec<BTreeSet<NodeId>> {
        (0..m.len())
            .map(|a| {
                (0..m.len())
                    .filter(|&b| shared_segment(m, a, b).is_some())
                    .collect()
            })
            .collect()
    }

    /// A plan in a few lines, nodes by name and segments by id.
    fn show(plan: &Plan) -> String {
        let moves = |list: &[(NodeId, SegmentId)], sign: char| {
            let items: Vec<String> = list.iter().map(|(i, s)| format!("n{i}{sign}{s}")).collect();
            if items.is_empty() {
                "-".to_owned()
            } else {
                items.join(" ")
            }
        };
        let ids = |list: &[SegmentId]| {
            if list.is_empty() {
                "-".to_owned()
            } else {
                list.iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        let target: Vec<String> = plan
            .target
            .iter()
            .enumerate()
            .map(|(i, s)| format!("n{i}:{s:?}"))
            .collect();
        format!(
            "target: {}\ncreate: {}\nremove: {}\nattach: {}\ndetach: {}\n",
            target.join(" "),
            ids(&plan.create),
            ids(&plan.remove),
            moves(&plan.attach, '+'),
            moves(&plan.detach, '-'),
        )
    }

    #[test]
    fn every_kind_on_small_clusters() {
        let mut out = String::new();
        for kind in every_kind() {
            for n in 4..=7 {
                let p = part(n, kind.clone());
                out += &format!("{} {n}: {}\n", kind.name(), p.describe(&spec(n)));
            }
        }
        out += &format!(
            "bridge 3: {}\n",
            part(3, PartitionKind::Bridge).describe(&spec(3))
        );
        out += &format!(
            "halves 2: {}\n",
            part(2, PartitionKind::Halves).describe(&spec(2))
        );
        insta::assert_snapshot!("every_kind", out);
    }

    #[test]
    fn groups_resolve_names_and_indices() {
        let s = named(&["alice", "bob", "carol", "dave"]);
        let p = build(&s, &groups(&[&["bob", "0"], &["3"]])).unwrap();
        assert_eq!(p.describe(&s), "{alice,bob} | {dave} | {carol}");
        // Naming every node leaves no extra group.
        let p = build(&s, &groups(&[&["0", "1"], &["carol", "dave"]])).unwrap();
        assert_eq!(p.groups.len(), 2);
    }

    #[test]
    fn halves_put_the_extra_node_first() {
        for n in 2..=12 {
            let p = part(n, PartitionKind::Halves);
            assert_eq!(p.groups[0], (0..n.div_ceil(2)).collect());
            assert_eq!(p.groups[1], (n.div_ceil(2)..n).collect());
        }
    }

    #[test]
    fn random_halves_are_fixed_per_seed() {
        let kind = PartitionKind::RandomHalves { seed: 42 };
        assert_eq!(part(8, kind.clone()), part(8, kind.clone()));
        // Pinned: a change here changes what every recorded seed means.
        assert_eq!(shuffled(8, 42), [3, 1, 6, 2, 4, 0, 7, 5]);
        let splits: BTreeSet<Vec<BTreeSet<NodeId>>> = (0..16)
            .map(|seed| part(8, PartitionKind::RandomHalves { seed }).groups)
            .collect();
        assert!(splits.len() > 8, "{} distinct splits", splits.len());
        for p in splits {
            assert_eq!((p[0].len(), p[1].len()), (4, 4));
            assert!(p[0].is_disjoint(&p[1]));
        }
    }

    #[test]
    fn shuffle_is_a_permutation() {
        for n in 0..=40 {
            let mut order = shuffled(n, n as u64);
            order.sort_unstable();
            assert_eq!(order, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn majorities_ring_gives_every_node_its_own_majority() {
        for n in 4..=12 {
            let p = part(n, PartitionKind::MajoritiesRing);
            let m = plan(&healed(n), Some(&p)).target;
            let views = views(&m);
            for (node, view) in views.iter().enumerate() {
                assert!(view.len() > n / 2, "n={n}: node {node} sees {view:?}");
                assert!(view.len() < n, "n={n}: node {node} sees everyone");
            }
            let distinct: BTreeSet<_> = views.iter().collect();
            assert_eq!(distinct.len(), n, "n={n}: two nodes share a view");
        }
    }

    #[test]
    fn bridge_node_is_in_both_groups() {
        for n in 3..=12 {
            let p = part(n, PartitionKind::Bridge);
            let b = bridge_node(n);
            assert_eq!(
                p.groups[0].intersection(&p.groups[1]).collect::<Vec<_>>(),
                [&b]
            );
            assert!(p.groups[0].len() > n / 2, "n={n}: no majority on the base");
        }
    }

    #[test]
    fn segments_realise_the_groups_exactly() {
        // Sharing a segment and sharing a group must be the same thing, from any starting point.
        for n in 4..=9 {
            let starts = [
                healed(n),
                plan(&healed(n), Some(&part(n, PartitionKind::MajoritiesRing))).target,
                plan(
                    &healed(n),
                    Some(&part(n, PartitionKind::RandomHalves { seed: 3 })),
                )
                .target,
            ];
            for kind in every_kind() {
                let p = part(n, kind.clone());
                for start in &starts {
                    let pl = plan(start, Some(&p));
                    assert!(pl.target.iter().all(|s| !s.is_empty()));
                    for a in 0..n {
                        for b in 0..n {
                            let grouped = p.groups.iter().any(|g| g.contains(&a) && g.contains(&b));
                            let shared = shared_segment(&pl.target, a, b).is_some();
                            assert_eq!(grouped, shared, "{kind:?} n={n} {a}-{b}");
                        }
                    }
                    assert!(plan(&pl.target, Some(&p)).is_empty(), "{kind:?} n={n}");
                    let heal = plan(&pl.target, None);
                    assert_eq!(heal.target, healed(n));
                    assert!(plan(&heal.target, None).is_empty());
                }
            }
        }
    }

    #[test]
    fn halves_from_healed_move_only_the_smaller_half() {
        let pl = plan(&healed(4), Some(&part(4, PartitionKind::Halves)));
        assert_eq!(pl.create, [1]);
        assert!(pl.remove.is_empty());
        assert_eq!(pl.attach, [(2, 1), (3, 1)]);
        assert_eq!(pl.detach, [(2, 0), (3, 0)]);
        insta::assert_snapshot!("plan_healed_to_halves", show(&pl));
    }

    #[test]
    fn larger_group_keeps_the_base_whatever_its_position() {
        let p = part(5, groups(&[&["n0"], &["n1"]]));
        let pl = plan(&healed(5), Some(&p));
        assert_eq!(pl.attach, [(0, 1), (1, 2)]);
        assert_eq!(pl.detach, [(0, 0), (1, 0)]);
    }

    #[test]
    fn heal_removes_every_extra_segment() {
        let current: Membership = [vec![0], vec![0, 1], vec![1, 2], vec![5]]
            .into_iter()
            .map(|s| s.into_iter().collect())
            .collect();
        let pl = plan(&current, None);
        assert_eq!(pl.target, healed(4));
        assert!(pl.create.is_empty());
        assert_eq!(pl.remove, [1, 2, 5]);
        assert_eq!(pl.attach, [(2, 0), (3, 0)]);
        assert_eq!(pl.detach, [(1, 1), (2, 1), (2, 2), (3, 5)]);
        insta::assert_snapshot!("plan_heal", show(&pl));
        assert!(plan(&healed(4), None).is_empty());
    }

    #[test]
    fn same_partition_twice_is_an_empty_plan() {
        let p = part(4, PartitionKind::Halves);
        let first = plan(&healed(4), Some(&p));
        let second = plan(&first.target, Some(&p));
        assert!(second.is_empty());
        assert_eq!(second.target, first.target);
    }

    #[test]
    fn halves_then_isolate_moves_only_what_changes() {
        let halves = plan(&healed(4), Some(&part(4, PartitionKind::Halves))).target;

        // n3 leaves n2 for a segment of its own: only n2 moves, to the base.
        let pl = plan(&halves, Some(&part(4, PartitionKind::Isolate("n3".into()))));
        assert_eq!(pl.attach, [(2, 0)]);
        assert_eq!(pl.detach, [(2, 1)]);
        assert!(pl.create.is_empty() && pl.remove.is_empty());

        // {n1,n2,n3} is the largest group and takes the base: n1 stays, n2 and n3 join it, and n0
        // takes over the segment they leave.
        let pl = plan(&halves, Some(&part(4, PartitionKind::Isolate("n0".into()))));
        assert_eq!(pl.attach, [(0, 1), (2, 0), (3, 0)]);
        assert_eq!(pl.detach, [(0, 0), (2, 1), (3, 1)]);
        assert!(pl.create.is_empty() && pl.remove.is_empty());
        insta::assert_snapshot!("plan_halves_to_isolate_n0", show(&pl));
    }

    #[test]
    fn groups_follow_their_segments() {
        // {n2,n3} stays on segment 2. The other two groups are equal and both on the base: the first
        // keeps it, and the second gets the lowest free id.
        let current: Membership = [0, 0, 2, 2, 0, 0]
            .into_iter()
            .map(|s| BTreeSet::from([s]))
            .collect();
        let p = part(6, groups(&[&["n4", "n5"], &["n2", "n3"], &["n0", "n1"]]));
        let pl = plan(&current, Some(&p));
        assert_eq!(
            pl.target,
            [1, 1, 2, 2, 0, 0].map(|s| BTreeSet::from([s])).to_vec()
        );
        assert_eq!(pl.create, [1]);
        assert!(pl.remove.is_empty());
    }

    #[test]
    fn sparse_segment_ids_are_kept() {
        let current: Membership = [0, 0, usize::MAX, usize::MAX]
            .into_iter()
            .map(|s| BTreeSet::from([s]))
            .collect();
        let pl = plan(&current, Some(&part(4, PartitionKind::Halves)));
        assert!(pl.is_empty());
    }

    #[test]
    fn greatest_overlap_wins_a_segment() {
        // Segment 3 holds n2..n5; {n4,n5,n6} overlaps it by two, {n2} by one.
        let current: Membership = [0, 0, 3, 3, 3, 3, 0, 0, 0]
            .into_iter()
            .map(|s| BTreeSet::from([s]))
            .collect();
        let p = part(9, groups(&[&["n2"], &["n4", "n5", "n6"]]));
        let pl = plan(&current, Some(&p));
        let seg = |i: NodeId| pl.target[i].iter().copied().collect::<Vec<_>>();
        assert_eq!(seg(0), [0]);
        assert_eq!(seg(4), [3]);
        assert_eq!(seg(2), [1]);
        assert_eq!(pl.create, [1]);
    }

    #[test]
    fn bridge_plan_keeps_the_bridge_on_two_segments() {
        let pl = plan(&healed(5), Some(&part(5, PartitionKind::Bridge)));
        assert_eq!(pl.target[bridge_node(5)], BTreeSet::from([0, 1]));
        assert_eq!(pl.attach, [(2, 1), (3, 1), (4, 1)]);
        assert_eq!(pl.detach, [(3, 0), (4, 0)]);
        insta::assert_snapshot!("plan_healed_to_bridge", show(&pl));
    }

    #[test]
    fn majorities_ring_plan() {
        let pl = plan(&healed(6), Some(&part(6, PartitionKind::MajoritiesRing)));
        insta::assert_snapshot!("plan_healed_to_majorities_ring", show(&pl));
    }

    #[test]
    fn uncovered_nodes_stay_on_the_base() {
        let p = Partition {
            groups: vec![BTreeSet::from([0]), BTreeSet::from([1])],
        };
        let pl = plan(&healed(3), Some(&p));
        assert_eq!(pl.target[2], BTreeSet::from([0]));
    }

    #[test]
    #[should_panic(expected = "partition names node 4 of a 4-node cluster")]
    fn partition_of_another_cluster_panics() {
        plan(&healed(4), Some(&part(5, PartitionKind::Halves)));
    }

    #[test]
    fn large_clusters_plan_quickly() {
        let n = manifest::MAX_NODES;
        let halves = plan(&healed(n), Some(&part(n, PartitionKind::Halves)));
        assert!(plan(&halves.target, Some(&part(n, PartitionKind::Halves))).is_empty());
        // A ring of n nodes is n segments of about n/4 nodes; 300 keeps this fast in a debug build.
        let n = 300;
        let ring = part(n, PartitionKind::MajoritiesRing);
        let first = plan(&healed(n), Some(&ring));
        assert_eq!(first.create.len(), n - 1);
        assert!(plan(&first.target, Some(&ring)).is_empty());
        let halves = plan(&first.target, Some(&part(n, PartitionKind::Halves)));
        assert!(halves.create.is_empty());
        assert_eq!(halves.remove.len(), n - 2);
    }

    #[test]
    fn expected_graph_keeps_edges_within_segments() {
        let edges = generate(Kind::Ring, 4);
        let m = plan(&healed(4), Some(&part(4, PartitionKind::Halves))).target;
        let g = expected_graph(&edges, &m, &Cut::new());
        assert_eq!(g.edges().collect::<Vec<_>>(), [(0, 1), (2, 3)]);
        assert_eq!(
            expected_graph(&edges, &healed(4), &Cut::new()),
            Graph::from_edges(&edges)
        );
    }

    #[test]
    fn shared_segment_prefers_the_base() {
        let m: Membership = vec![
            BTreeSet::from([0, 1]),
            BTreeSet::from([0, 1]),
            BTreeSet::from([1, 2]),
            BTreeSet::from([3]),
        ];
        assert_eq!(shared_segment(&m, 0, 1), Some(0));
        assert_eq!(shared_segment(&m, 1, 2), Some(1));
        assert_eq!(shared_segment(&m, 2, 3), None);
        assert_eq!(shared_segment(&m, 0, 9), None);
    }

    #[test]
    fn kind_names_match_serde() {
        for kind in every_kind() {
            let json = serde_json::to_value(&kind).unwrap();
            let tag = match &json {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Object(o) => o.keys().next().unwrap().clone(),
                other => panic!("{other}"),
            };
            assert_eq!(tag, kind.name());
            let back: PartitionKind = serde_json::from_value(json).unwrap();
            assert_eq!(back, kind);
        }
        assert_eq!(
            serde_json::to_string(&PartitionKind::RandomHalves { seed: 7 }).unwrap(),
            r#"{"random-halves":{"seed":7}}"#
        );
    }

    macro_rules! assert_error {
        ($name:literal, $spec:expr, $kind:expr) => {{
            let spec: ClusterSpec = $spec;
            let kind: PartitionKind = $kind;
            let message = build(&spec, &kind).unwrap_err().to_string();
            let description = format!("{} nodes, {kind:?}", spec.nodes.len());
            insta::with_settings!({ description => description, omit_expression => true }, {
                insta::assert_snapshot!($name, message);
            });
        }};
    }

    #[test]
    fn unknown_nodes() {
        assert_error!(
            "unknown_node_in_group",
            spec(4),
            groups(&[&["n0"], &["n1", "n9"]])
        );
        assert_error!("unknown_index_in_group", spec(4), groups(&[&["4"]]));
        assert_error!(
            "unknown_node_named_nodes",
            named(&["alice", "bob", "carol"]),
            groups(&[&["dave"]])
        );
        assert_error!(
            "unknown_node_many_named_nodes",
            named(&["a", "b", "c", "d", "e", "f", "g"]),
            PartitionKind::Isolate("h".into())
        );
        assert_error!(
            "unknown_node_isolated",
            spec(4),
            PartitionKind::Isolate("N1".into())
        );
        assert_error!(
            "unknown_node_single_node_cluster",
            spec(1),
            PartitionKind::Isolate("1".into())
        );
        assert_error!(
            "unknown_node_is_escaped",
            spec(2),
            PartitionKind::Isolate("a\nb".into())
        );
    }

    #[test]
    fn node_in_two_groups() {
        assert_error!(
            "node_in_two_groups",
            spec(4),
            groups(&[&["n0", "n1"], &["n2", "1"]])
        );
        assert_error!("node_twice_in_one_group", spec(4), groups(&[&["n0", "0"]]));
    }

    #[test]
    fn empty_group() {
        assert_error!("empty_group", spec(4), groups(&[&["n0"], &[]]));
    }

    #[test]
    fn one_group() {
        assert_error!(
            "one_group_naming_every_node",
            spec(3),
            groups(&[&["n0", "n1", "n2"]])
        );
        assert_error!("one_group_naming_nothing", spec(3), groups(&[]));
        assert_error!("one_group_single_node_cluster", spec(1), groups(&[&["n0"]]));
    }

    #[test]
    fn too_few_nodes() {
        assert_error!("too_few_halves", spec(1), PartitionKind::Halves);
        assert_error!(
            "too_few_random_halves",
            spec(1),
            PartitionKind::RandomHalves { seed: 1 }
        );
        assert_error!(
            "too_few_isolate",
            spec(1),
            PartitionKind::Isolate("n0".into())
        );
        assert_error!("too_few_bridge", spec(2), PartitionKind::Bridge);
        assert_error!(
            "too_few_majorities_ring",
            spec(3),
            PartitionKind::MajoritiesRing
        );
    }
}
