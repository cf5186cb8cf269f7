//! How messages are worded: user text echoed escaped and cut short, the one wording of "which nodes
//! exist" that manifest, scenario, partition and engine errors share, and an error with its causes on
//! one line.

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

/// An error and all its causes (its `source()` chain) on one line, joined by ": " — a wrapper's own
/// message alone (the HTTP client's "client error (Connect)", a rolled-back step) often hides why.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
