//! Graph statistics of a topology (degrees, components, diameter, mean distance) and hop distances
//! from one node, by breadth-first search over the undirected graph the edges form.

use std::collections::VecDeque;

use serde::Serialize;

use crate::core::topology::{Edge, NodeId};

/// Summary of an undirected graph over nodes `0..nodes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Node count.
    pub nodes: usize,
    /// Distinct undirected edges (repeats and self-loops not counted).
    pub edges: usize,
    /// Fewest peers of any node (0 without nodes).
    pub degree_min: usize,
    /// Mean peers per node (0 without nodes).
    pub degree_mean: f64,
    /// Most peers of any node (0 without nodes).
    pub degree_max: usize,
    /// Connected components; isolated nodes count as one each.
    pub components: usize,
    /// Longest shortest path in hops; None when the graph is not connected (or has no nodes).
    pub diameter: Option<usize>,
    /// Mean shortest path in hops over all pairs of distinct nodes; None when the graph is not
    /// connected (or has no nodes), 0 for a single node.
    pub mean_distance: Option<f64>,
}

/// Adjacency lists over `0..n`, ignoring self-loops, repeated edges and edges that name a node
/// outside `0..n`.
fn adjacency(n: usize, edges: &[Edge]) -> Vec<Vec<NodeId>> {
    let mut adjacency = vec![Vec::new(); n];
    for e in edges {
        if e.from != e.to && e.from < n && e.to < n {
            adjacency[e.from].push(e.to);
            adjacency[e.to].push(e.from);
        }
    }
    for list in &mut adjacency {
        list.sort_unstable();
        list.dedup();
    }
    adjacency
}

fn bfs(adjacency: &[Vec<NodeId>], source: NodeId) -> Vec<Option<usize>> {
    let mut hops = vec![None; adjacency.len()];
    let Some(first) = hops.get_mut(source) else {
        return hops;
    };
    *first = Some(0);
    let mut queue = VecDeque::from([(source, 0)]);
    while let Some((v, d)) = queue.pop_front() {
        for &w in &adjacency[v] {
            if hops[w].is_none() {
                hops[w] = Some(d + 1);
                queue.push_back((w, d + 1));
            }
        }
    }
    hops
}

/// Hops from `source` to every node of `0..n` over the undirected edges; None for nodes it cannot
/// reach, and for every node when `source` is not below `n`.
pub fn hops_from(n: usize, edges: &[Edge], source: NodeId) -> Vec<Option<usize>> {
    bfs(&adjacency(n, edges), source)
}

/// Statistics of the undirected graph the edges form over nodes `0..n`; a breadth-first search from
/// every node, O(n·(n+e)). Self-loops, repeated edges and edges naming a node outside `0..n` are
/// ignored.
pub fn stats(n: usize, edges: &[Edge]) -> Stats {
    let adjacency = adjacency(n, edges);
    let degrees: Vec<usize> = adjacency.iter().map(Vec::len).collect();
    let total: usize = degrees.iter().sum();
    let mut component = vec![false; n];
    let mut components = 0;
    let (mut diameter, mut sum) = (0, 0);
    for source in 0..n {
        let hops = bfs(&adjacency, source);
        if !component[source] {
            components += 1;
            for (seen, h) in component.iter_mut().zip(&hops) {
                *seen |= h.is_some();
            }
        }
        for h in hops.into_iter().flatten() {
            diameter = diameter.max(h);
            sum += h;
        }
    }
    let connected = components == 1;
    let pairs = n * n.saturating_sub(1);
    Stats {
        nodes: n,
        edges: total / 2,
        degree_min: degrees.iter().copied().min().unwrap_or(0),
        degree_mean: if n == 0 { 0.0 } else { total as f64 / n as f64 },
        degree_max: degrees.iter().copied().max().unwrap_or(0),
        components,
        diameter: connected.then_some(diameter),
        mean_distance: connected.then(|| {
            if pairs == 0 {
                0.0
            } else {
                sum as f64 / pairs as f64
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::topology::{generate, Kind};

    #[test]
    fn line() {
        let s = stats(4, &generate(Kind::Line, 4));
        assert_eq!(
            s,
            Stats {
                nodes: 4,
                edges: 3,
                degree_min: 1,
                degree_mean: 1.5,
                degree_max: 2,
                components: 1,
                diameter: Some(3),
                // Ordered pairs at 1, 2 and 3 hops: 6, 4 and 2 of 12.
                mean_distance: Some(20.0 / 12.0),
            }
        );
    }

    #[test]
    fn ring() {
        let s = stats(6, &generate(Kind::Ring, 6));
        assert_eq!((s.edges, s.degree_min, s.degree_max), (6, 2, 2));
        assert_eq!(s.diameter, Some(3));
        // From any node: 1, 1, 2, 2, 3.
        assert_eq!(s.mean_distance, Some(9.0 / 5.0));
    }

    #[test]
    fn star() {
        let s = stats(5, &generate(Kind::Star, 5));
        assert_eq!((s.degree_min, s.degree_max, s.degree_mean), (1, 4, 1.6));
        assert_eq!(s.diameter, Some(2));
        // 8 ordered pairs with the hub at 1 hop, 12 between leaves at 2.
        assert_eq!(s.mean_distance, Some(32.0 / 20.0));
    }

    #[test]
    fn two_components() {
        let edges = [Edge::new(0, 1), Edge::new(2, 3), Edge::new(3, 4)];
        let s = stats(6, &edges);
        assert_eq!(s.components, 3);
        assert_eq!((s.diameter, s.mean_distance), (None, None));
        assert_eq!((s.edges, s.degree_min, s.degree_max), (3, 0, 2));
    }

    #[test]
    fn tiny_graphs() {
        let one = stats(1, &[]);
        assert_eq!(
            (one.components, one.diameter, one.mean_distance),
            (1, Some(0), Some(0.0))
        );
        let none = stats(0, &[]);
        assert_eq!(
            (none.components, none.diameter, none.degree_mean),
            (0, None, 0.0)
        );
    }

    #[test]
    fn repeats_loops_and_strangers_are_ignored() {
        let edges = [
            Edge::new(0, 1),
            Edge::new(1, 0),
            Edge::new(1, 1),
            Edge::new(1, 7),
        ];
        let s = stats(2, &edges);
        assert_eq!((s.edges, s.degree_max, s.diameter), (1, 1, Some(1)));
    }

    #[test]
    fn hops_from_a_node() {
        let edges = [
            Edge::new(0, 1),
            Edge::new(1, 2),
            Edge::new(0, 3),
            Edge::new(4, 5),
        ];
        assert_eq!(
            hops_from(6, &edges, 2),
            [Some(2), Some(1), Some(0), Some(3), None, None]
        );
        assert_eq!(hops_from(3, &edges, 9), [None, None, None]);
    }
}
