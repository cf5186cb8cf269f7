//! Topology model: named generators for edge sets and an undirected graph to compare a declared topology with the observed one.

pub mod generators;
pub mod graphio;
pub(crate) mod shape;
pub mod stats;
pub mod svg;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// Node index into ClusterSpec::nodes.
pub type NodeId = usize;

/// An undirected edge stored with the dialer first: `from` runs `addnode to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Edge {
    pub from: NodeId,
    pub to: NodeId,
}

impl Edge {
    pub fn new(from: NodeId, to: NodeId) -> Self {
        Self { from, to }
    }

    /// Direction-free identity: who dials whom does not change which peers end up connected.
    pub fn key(&self) -> (NodeId, NodeId) {
        (self.from.min(self.to), self.from.max(self.to))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Line,
    Ring,
    Star,
    Mesh,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Line, Kind::Ring, Kind::Star, Kind::Mesh];

    /// The spelling used in manifests and on the command line (matches the serde names).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Line => "line",
            Kind::Ring => "ring",
            Kind::Star => "star",
            Kind::Mesh => "mesh",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Edges of the named topology over nodes `0..n`, lower index dialing.
pub fn generate(kind: Kind, n: usize) -> Vec<Edge> {
    let line = (1..n).map(|i| Edge::new(i - 1, i));
    match kind {
        Kind::Line => line.collect(),
        Kind::Ring => {
            let mut edges: Vec<Edge> = line.collect();
            // With two nodes the closing edge would duplicate 0-1.
            if n >= 3 {
                edges.push(Edge::new(n - 1, 0));
            }
            edges
        }
        Kind::Star => (1..n).map(|i| Edge::new(0, i)).collect(),
        Kind::Mesh => (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| Edge::new(i, j)))
            .collect(),
    }
}

/// Undirected simple graph. Both an edge set and adjacency are kept so that
/// neighbour queries stay cheap on a 1000-node mesh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    edges: BTreeSet<(NodeId, NodeId)>,
    adjacency: BTreeMap<NodeId, BTreeSet<NodeId>>,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_edges(edges: &[Edge]) -> Self {
        edges.iter().map(Edge::key).collect()
    }

    /// Returns false if the (undirected) edge was already present.
    pub fn insert(&mut self, a: NodeId, b: NodeId) -> bool {
        let key = (a.min(b), a.max(b));
        if !self.edges.insert(key) {
            return false;
        }
        self.adjacency.entry(a).or_default().insert(b);
        self.adjacency.entry(b).or_default().insert(a);
        true
    }

    pub fn contains(&self, a: NodeId, b: NodeId) -> bool {
        self.edges.contains(&(a.min(b), a.max(b)))
    }

    pub fn len(&self) -> usize {
        self.edges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// Edges as `(min, max)` pairs in ascending order.
    pub fn edges(&self) -> impl Iterator<Item = (NodeId, NodeId)> + '_ {
        self.edges.iter().copied()
    }

    /// Neighbours of `node` in ascending order.
    pub fn neighbours(&self, node: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.adjacency.get(&node).into_iter().flatten().copied()
    }
}

impl FromIterator<(NodeId, NodeId)> for Graph {
    fn from_iter<I: IntoIterator<Item = (NodeId, NodeId)>>(iter: I) -> Self {
        let mut graph = Graph::new();
        for (a, b) in iter {
            graph.insert(a, b);
        }
        graph
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphDiff {
    /// Declared but not observed.
    pub missing: Vec<(NodeId, NodeId)>,
    /// Observed but not declared.
    pub extra: Vec<(NodeId, NodeId)>,
}

impl GraphDiff {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }
}

pub fn diff(declared: &Graph, actual: &Graph) -> GraphDiff {
    GraphDiff {
        missing: declared.edges.difference(&actual.edges).copied().collect(),
        extra: actual.edges.difference(&declared.edges).copied().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(kind: Kind, n: usize) -> Vec<(NodeId, NodeId)> {
        let mut keys: Vec<_> = generate(kind, n).iter().map(Edge::key).collect();
        keys.sort();
        keys
    }

    #[test]
    fn line() {
        assert_eq!(keys(Kind::Line, 1), []);
        assert_eq!(keys(Kind::Line, 2), [(0, 1)]);
        assert_eq!(keys(Kind::Line, 3), [(0, 1), (1, 2)]);
        assert_eq!(keys(Kind::Line, 4), [(0, 1), (1, 2), (2, 3)]);
        assert_eq!(keys(Kind::Line, 5), [(0, 1), (1, 2), (2, 3), (3, 4)]);
    }

    #[test]
    fn ring() {
        assert_eq!(keys(Kind::Ring, 1), []);
        assert_eq!(keys(Kind::Ring, 2), [(0, 1)]);
        assert_eq!(keys(Kind::Ring, 3), [(0, 1), (0, 2), (1, 2)]);
        assert_eq!(keys(Kind::Ring, 4), [(0, 1), (0, 3), (1, 2), (2, 3)]);
        assert_eq!(
            keys(Kind::Ring, 5),
            [(0, 1), (0, 4), (1, 2), (2, 3), (3, 4)]
        );
    }

    #[test]
    fn ring_closes_with_last_node_dialing_first() {
        assert_eq!(generate(Kind::Ring, 4).last(), Some(&Edge::new(3, 0)));
    }

    #[test]
    fn star() {
        assert_eq!(keys(Kind::Star, 1), []);
        assert_eq!(keys(Kind::Star, 2), [(0, 1)]);
        assert_eq!(keys(Kind::Star, 3), [(0, 1), (0, 2)]);
        assert_eq!(keys(Kind::Star, 4), [(0, 1), (0, 2), (0, 3)]);
        assert_eq!(keys(Kind::Star, 5), [(0, 1), (0, 2), (0, 3), (0, 4)]);
        assert!(generate(Kind::Star, 5).iter().all(|e| e.from == 0));
    }

    #[test]
    fn mesh() {
        assert_eq!(keys(Kind::Mesh, 1), []);
        assert_eq!(keys(Kind::Mesh, 2), [(0, 1)]);
        assert_eq!(keys(Kind::Mesh, 3), [(0, 1), (0, 2), (1, 2)]);
        assert_eq!(
            keys(Kind::Mesh, 4),
            [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
        );
        assert_eq!(
            keys(Kind::Mesh, 5),
            [
                (0, 1),
                (0, 2),
                (0, 3),
                (0, 4),
                (1, 2),
                (1, 3),
                (1, 4),
                (2, 3),
                (2, 4),
                (3, 4)
            ]
        );
        for n in 1..=20 {
            assert_eq!(generate(Kind::Mesh, n).len(), n * (n - 1) / 2);
        }
    }

    #[test]
    fn generators_never_repeat_or_loop() {
        for kind in Kind::ALL {
            for n in 0..=12 {
                let edges = generate(kind, n);
                assert_eq!(Graph::from_edges(&edges).len(), edges.len(), "{kind} {n}");
                assert!(edges.iter().all(|e| e.from != e.to && e.to < n));
            }
        }
    }

    #[test]
    fn kind_names_match_serde() {
        for kind in Kind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(Kind::from_name("Ring"), None);
    }

    #[test]
    fn edge_key_ignores_direction() {
        assert_eq!(Edge::new(3, 1).key(), (1, 3));
        assert_eq!(Edge::new(1, 3).key(), (1, 3));
    }

    #[test]
    fn graph_is_undirected() {
        let mut g = Graph::new();
        assert!(g.insert(2, 0));
        assert!(!g.insert(0, 2));
        assert!(g.contains(0, 2) && g.contains(2, 0));
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn neighbours() {
        let g = Graph::from_edges(&generate(Kind::Ring, 5));
        assert_eq!(g.neighbours(0).collect::<Vec<_>>(), [1, 4]);
        assert_eq!(g.neighbours(2).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(g.neighbours(9).count(), 0);
        let star = Graph::from_edges(&generate(Kind::Star, 4));
        assert_eq!(star.neighbours(0).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(star.neighbours(3).collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn diff_reports_missing_and_extra_sorted() {
        let declared = Graph::from_edges(&generate(Kind::Ring, 4));
        // Observed peers are reported in whatever direction getpeerinfo shows them.
        let actual: Graph = [(1, 0), (2, 1), (3, 1), (2, 0)].into_iter().collect();
        let d = diff(&declared, &actual);
        assert_eq!(d.missing, [(0, 3), (2, 3)]);
        assert_eq!(d.extra, [(0, 2), (1, 3)]);
        assert!(!d.is_empty());
        assert!(diff(&declared, &declared).is_empty());
        assert!(diff(&Graph::new(), &Graph::new()).is_empty());
    }
}
