//! What the operator measures, as data, and its Prometheus text exposition (format 0.0.4): per node
//! height, peers, mempool, reorgs and tip age; per cluster partitions, reconcile passes, errors and
//! pass time. Pure: the operator fills these in, `/metrics` prints them.

use std::fmt::Write as _;

use serde::Serialize;

/// One node as last sampled.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeMetrics {
    pub node: String,
    /// Its container runs and it answered RPC.
    pub up: bool,
    pub height: u64,
    pub best: String,
    /// Seconds since its best block's timestamp.
    pub tip_age_s: f64,
    pub peers: usize,
    pub mempool_txs: u64,
    pub mempool_bytes: u64,
    /// Reorganisations seen since the operator started: best tips that left the active chain.
    pub reorgs: u64,
    /// Blocks that left the active chain in the last reorganisation, and the most in any.
    pub last_reorg_depth: u64,
    pub max_reorg_depth: u64,
    /// Times the operator started this node's container again after it stopped unasked.
    pub restarts: u64,
}

impl NodeMetrics {
    /// Counts a reorganisation of `depth` blocks (0: the tip was extended, nothing to count).
    pub fn record_reorg(&mut self, depth: u64) {
        if depth == 0 {
            return;
        }
        self.reorgs += 1;
        self.last_reorg_depth = depth;
        self.max_reorg_depth = self.max_reorg_depth.max(depth);
    }
}

/// One cluster as the operator sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClusterMetrics {
    pub cluster: String,
    pub nodes: Vec<NodeMetrics>,
    /// Segments of the active partition (0: whole), and pairs a rule keeps apart.
    pub segments: usize,
    pub cut_pairs: usize,
    pub passes: u64,
    pub errors: u64,
    /// Changes made by passes (containers started, sessions dialed or closed, link faults mended).
    pub changes: u64,
    pub pass_seconds_sum: f64,
    pub last_pass_seconds: f64,
}

impl ClusterMetrics {
    /// Distinct best blocks among the nodes that are up: 1 when they agree, more while forked.
    pub fn tips(&self) -> usize {
        let tips: std::collections::BTreeSet<&str> = self
            .nodes
            .iter()
            .filter(|n| n.up)
            .map(|n| n.best.as_str())
            .collect();
        tips.len()
    }
}

/// One metric family: name, help, type, and how to read it from a node or a cluster.
struct Family<T> {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    value: fn(&T) -> f64,
}

const NODE_FAMILIES: &[Family<NodeMetrics>] = &[
    Family {
        name: "regbox_node_up",
        help: "1 when the node's container runs and it answers RPC.",
        kind: "gauge",
        value: |n| n.up as u8 as f64,
    },
    Family {
        name: "regbox_node_height",
        help: "Height of the node's best block.",
        kind: "gauge",
        value: |n| n.height as f64,
    },
    Family {
        name: "regbox_node_peers",
        help: "Peers the node has a session with.",
        kind: "gauge",
        value: |n| n.peers as f64,
    },
    Family {
        name: "regbox_node_mempool_transactions",
        help: "Transactions in the node's mempool.",
        kind: "gauge",
        value: |n| n.mempool_txs as f64,
    },
    Family {
        name: "regbox_node_mempool_bytes",
        help: "Size of the node's mempool in bytes.",
        kind: "gauge",
        value: |n| n.mempool_bytes as f64,
    },
    Family {
        name: "regbox_node_tip_age_seconds",
        help: "Seconds since the timestamp of the node's best block.",
        kind: "gauge",
        value: |n| n.tip_age_s,
    },
    Family {
        name: "regbox_node_reorgs_total",
        help: "Reorganisations of the node's active chain seen by the operator.",
        kind: "counter",
        value: |n| n.reorgs as f64,
    },
    Family {
        name: "regbox_node_reorg_depth_last",
        help: "Blocks that left the active chain in the node's last reorganisation.",
        kind: "gauge",
        value: |n| n.last_reorg_depth as f64,
    },
    Family {
        name: "regbox_node_reorg_depth_max",
        help: "Blocks that left the active chain in the node's deepest reorganisation.",
        kind: "gauge",
        value: |n| n.max_reorg_depth as f64,
    },
    Family {
        name: "regbox_node_restarts_total",
        help: "Times the operator started the node's container after it stopped unasked.",
        kind: "counter",
        value: |n| n.restarts as f64,
    },
];

const CLUSTER_FAMILIES: &[Family<ClusterMetrics>] = &[
    Family {
        name: "regbox_cluster_nodes",
        help: "Nodes declared in the cluster.",
        kind: "gauge",
        value: |c| c.nodes.len() as f64,
    },
    Family {
        name: "regbox_cluster_tips",
        help: "Distinct best blocks among the nodes that are up (more than 1: forked).",
        kind: "gauge",
        value: |c| c.tips() as f64,
    },
    Family {
        name: "regbox_cluster_partition_segments",
        help: "Segments of the active partition (0: none).",
        kind: "gauge",
        value: |c| c.segments as f64,
    },
    Family {
        name: "regbox_cluster_cut_pairs",
        help: "Node pairs a packet-filter rule keeps apart.",
        kind: "gauge",
        value: |c| c.cut_pairs as f64,
    },
    Family {
        name: "regbox_reconcile_passes_total",
        help: "Reconcile passes the operator ran.",
        kind: "counter",
        value: |c| c.passes as f64,
    },
    Family {
        name: "regbox_reconcile_errors_total",
        help: "Reconcile passes that failed.",
        kind: "counter",
        value: |c| c.errors as f64,
    },
    Family {
        name: "regbox_reconcile_changes_total",
        help: "Changes reconcile passes made to the cluster.",
        kind: "counter",
        value: |c| c.changes as f64,
    },
    Family {
        name: "regbox_reconcile_last_pass_seconds",
        help: "Duration of the last reconcile pass.",
        kind: "gauge",
        value: |c| c.last_pass_seconds,
    },
];

/// The Prometheus text exposition of every cluster: one HELP and TYPE line per family, one sample per
/// node or cluster, labelled `cluster` (and `node`).
pub fn exposition(clusters: &[ClusterMetrics]) -> String {
    let mut out = String::new();
    for f in NODE_FAMILIES {
        header(&mut out, f.name, f.help, f.kind);
        for c in clusters {
            for n in &c.nodes {
                let labels = format!(
                    "cluster=\"{}\",node=\"{}\"",
                    escape(&c.cluster),
                    escape(&n.node)
                );
                sample(&mut out, f.name, &labels, (f.value)(n));
            }
        }
    }
    for f in CLUSTER_FAMILIES {
        header(&mut out, f.name, f.help, f.kind);
        for c in clusters {
            let labels = format!("cluster=\"{}\"", escape(&c.cluster));
            sample(&mut out, f.name, &labels, (f.value)(c));
        }
    }
    // A summary: the sum and count of pass durations.
    header(
        &mut out,
        "regbox_reconcile_pass_seconds",
        "Time reconcile passes took.",
        "summary",
    );
    for c in clusters {
        let labels = format!("cluster=\"{}\"", escape(&c.cluster));
        sample(
            &mut out,
            "regbox_reconcile_pass_seconds_sum",
            &labels,
            c.pass_seconds_sum,
        );
        sample(
            &mut out,
            "regbox_reconcile_pass_seconds_count",
            &labels,
            c.passes as f64,
        );
    }
    out
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: f64) {
    let _ = writeln!(out, "{name}{{{labels}}} {value}");
}

/// A label value as the text format wants it: backslash, double quote and line feed escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> ClusterMetrics {
        let node = |name: &str, best: &str, height| NodeMetrics {
            node: name.into(),
            up: true,
            height,
            best: best.into(),
            peers: 2,
            ..NodeMetrics::default()
        };
        ClusterMetrics {
            cluster: "lab".into(),
            nodes: vec![
                node("n0", "aa", 5),
                node("n1", "bb", 6),
                node("n2", "aa", 5),
            ],
            segments: 2,
            passes: 3,
            pass_seconds_sum: 0.75,
            ..ClusterMetrics::default()
        }
    }

    #[test]
    fn every_family_has_help_type_and_one_sample_per_node_or_cluster() {
        let text = exposition(&[cluster()]);
        assert!(text.contains("# TYPE regbox_node_height gauge\n"));
        assert!(text.contains("regbox_node_height{cluster=\"lab\",node=\"n1\"} 6\n"));
        assert!(text.contains("regbox_cluster_tips{cluster=\"lab\"} 2\n"));
        assert!(text.contains("regbox_reconcile_pass_seconds_sum{cluster=\"lab\"} 0.75\n"));
        assert!(text.contains("regbox_reconcile_pass_seconds_count{cluster=\"lab\"} 3\n"));
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(
            samples,
            NODE_FAMILIES.len() * 3 + CLUSTER_FAMILIES.len() + 2
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn reorgs_count_only_blocks_that_left_the_chain() {
        let mut n = NodeMetrics::default();
        n.record_reorg(0);
        n.record_reorg(3);
        n.record_reorg(1);
        assert_eq!((n.reorgs, n.last_reorg_depth, n.max_reorg_depth), (2, 1, 3));
    }

    #[test]
    fn tips_count_distinct_best_blocks_of_nodes_that_are_up() {
        let mut c = cluster();
        assert_eq!(c.tips(), 2);
        c.nodes[1].up = false;
        assert_eq!(c.tips(), 1);
    }
}
