//! How user-typed names are echoed in messages: escaped and cut short, and the one wording of "which
//! nodes exist" that manifest, scenario, partition and engine errors share.

use crate::core::manifest::ClusterSpec;

/// Echoes user text into a one-line message without letting it flood or break the line.
pub fn shown(s: &str) -> String {
    const LIMIT: usize = 64;
    let mut out: String = s.chars().take(LIMIT).flat_map(char::escape_debug).collect();
    if s.chars().nth(LIMIT).is_some() {
        out.push('…');
    }
    out
}

/// `a`, `b`, `c`
pub(crate) fn backticked(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

/// Node names in order; names generated from a count get a shorter hint.
pub(crate) struct NodeNames<'a> {
    pub(crate) names: Vec<&'a str>,
    pub(crate) counted: bool,
}

impl NodeNames<'_> {
    pub(crate) fn hint(&self) -> String {
        let n = self.names.len();
        if n == 0 {
            return "the cluster has no nodes".to_owned();
        }
        let names = if self.counted {
            if n == 1 {
                "n0".to_owned()
            } else {
                format!("n0..n{}", n - 1)
            }
        } else if n <= 6 {
            backticked(&self.names)
        } else {
            format!(
                "{}, …, `{}`",
                backticked(&self.names[..3]),
                self.names[n - 1]
            )
        };
        if n == 1 {
            format!("the only node is {names} or index 0")
        } else {
            format!("nodes are {names} or indices 0..{}", n - 1)
        }
    }
}

impl<'a> NodeNames<'a> {
    /// The node names of a resolved cluster; `counted` when they are the generated `n0..`.
    pub(crate) fn of(spec: &'a ClusterSpec) -> NodeNames<'a> {
        let names: Vec<&str> = spec.nodes.iter().map(|n| n.name.as_str()).collect();
        let counted = names
            .iter()
            .enumerate()
            .all(|(i, name)| *name == format!("n{i}"));
        NodeNames { names, counted }
    }
}
