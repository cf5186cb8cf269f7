//! Fuzz entry points: one function per reader of outside input, each calling the real parser on raw
//! bytes and checking what must hold whatever the input (no panic, no hang, and where it is cheap a
//! round trip). `fuzz/` runs them under libFuzzer (`cargo fuzz`); `tests/fuzz.rs` runs their corpora
//! and a few thousand seeded mutations in every `cargo test`. Not an API: hidden from the docs.
//!
//! A property that fails panics with what broke; the harness reports the input.

use std::time::Duration;

use crate::core::cluster::compose;
use crate::core::cluster::manifest::{self, is_node_name, ClusterSpec};
use crate::core::faults::link::Shaper;
use crate::core::faults::rules::{ruleset, AgentRequest};
use crate::core::scenario::{self, Action, ClusterSource};
use crate::core::topology::graphio::{self, Format};
use crate::core::topology::Edge;
use crate::core::verb::Verb;
use crate::core::yaml::SourceError;

/// A fuzz target: takes any bytes; panics when a property fails.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/NAME.rs` and `fuzz/corpus/NAME/` spell it.
pub const TARGETS: &[(&str, Target)] = &[
    ("manifest", manifest),
    ("scenario", scenario),
    ("edgelist", edgelist),
    ("graphml", graphml),
    ("dot", dot),
    ("agent_request", agent_request),
    #[cfg(feature = "cli")]
    ("verb", verb),
    #[cfg(feature = "cli")]
    ("relay_connect", relay_connect),
    #[cfg(feature = "cli")]
    ("agent_record", agent_record),
];

/// The files a fuzzed manifest or scenario may name (`topology: {file: …}`): one small graph per
/// format, so the reading of named topology files is fuzzed along with the document.
fn read_named(path: &str) -> Result<String, String> {
    match Format::from_path_name(path) {
        Some(Format::EdgeList) => Ok("a b\nb c\nc a\nd\n".into()),
        Some(Format::GraphMl) => Ok(graphio::export(
            &["x".into(), "y".into(), "z".into()],
            &[Edge { from: 0, to: 1 }, Edge { from: 1, to: 2 }],
            Format::GraphMl,
        )),
        Some(Format::Dot) => Ok("digraph { p -> q; q -> r; s }\n".into()),
        None => Err("no such file".into()),
    }
}

/// An error about a user's file points into it: 1-based line and column.
fn located(e: &SourceError) {
    assert!(
        e.line >= 1 && e.column >= 1,
        "error without a position: {e:?}"
    );
    assert!(!e.message.is_empty(), "error without a message: {e:?}");
}

/// What every spec that reaches the engine must satisfy: it is valid by the manifest's own rules (a
/// spec read back from a cluster's labels is checked with them), its JSON record loads back as it
/// was, and what is made of it (the compose file, the graph) can be made.
fn spec_holds(spec: &ClusterSpec) {
    if let Err(e) = spec.validate() {
        panic!("a parsed spec does not validate: {e}\n{spec:?}");
    }
    let json = serde_json::to_string(spec).expect("a spec serializes");
    let back: ClusterSpec = serde_json::from_str(&json).expect("a spec's JSON loads");
    assert_eq!(
        &back, spec,
        "the JSON record of a spec loads as another spec"
    );
    let _ = spec.graph();
    let _ = compose::render(spec, "10.200.0.0/20".parse().expect("a subnet"));
}

/// The cluster manifest (`regbox up -f`, `check`, `plan`).
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // the CLI refuses it before parsing: "not UTF-8 text"
    };
    match manifest::parse_reading(text, "fuzz.yaml", &read_named) {
        Ok(spec) => spec_holds(&spec),
        Err(e) => located(&e),
    }
}

/// A scenario file (`regbox run`): parsed, then checked against its cluster as `run` does; every
/// step's verb goes through its JSON form (the operator's) and back unchanged.
pub fn scenario(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = match scenario::parse_reading(text, "fuzz.scenario.yaml", &read_named) {
        Ok(s) => s,
        Err(e) => return located(&e),
    };
    let spec = match &parsed.cluster {
        ClusterSource::Inline(spec) => {
            spec_holds(spec);
            spec.clone()
        }
        ClusterSource::File { .. } => ClusterSpec::default_ring4(),
    };
    if let Err(e) = scenario::validate(&parsed, &spec, "fuzz.scenario.yaml") {
        located(&e);
    }
    for step in &parsed.steps {
        let _ = step.action.to_string();
        if let Action::Do { verb, .. } = &step.action {
            verb_round_trip(verb);
        }
    }
}

/// A verb's JSON parses back to the same verb.
fn verb_round_trip(verb: &Verb) {
    let json = serde_json::to_string(verb).expect("a verb serializes");
    let back: Verb = match serde_json::from_str(&json) {
        Ok(v) => v,
        Err(e) => panic!("the JSON of {verb:?} does not parse back: {e}\n{json}"),
    };
    assert_eq!(
        &back, verb,
        "the JSON of a verb parses as another verb: {json}"
    );
    let _ = verb.to_string();
    let _ = verb.nodes();
}

fn graph(data: &[u8], format: Format) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let imported = match graphio::import(text, format) {
        Ok(i) => i,
        Err(e) => {
            assert!(
                e.line >= 1 && e.column >= 1,
                "error without a position: {e:?}"
            );
            return;
        }
    };
    let n = imported.nodes.len();
    for &(a, b) in &imported.edges {
        assert!(a < n && b < n && a != b, "edge {a}-{b} of {n} nodes");
    }
    // Written in any format and read back, the graph is the same, when its names are node names (the
    // only names regbox writes: `topology export` writes a cluster's nodes).
    if !imported.nodes.iter().all(|n| is_node_name(n)) {
        return;
    }
    let edges: Vec<Edge> = (imported.edges.iter())
        .map(|&(from, to)| Edge { from, to })
        .collect();
    for to in Format::ALL {
        let written = graphio::export(&imported.nodes, &edges, to);
        match graphio::import(&written, to) {
            Ok(back) => assert_eq!(back, imported, "read back from {}:\n{written}", to.name()),
            Err(e) => panic!("{} written by regbox is refused: {e}\n{written}", to.name()),
        }
    }
}

/// An imported topology as an edge list (`topology: {file: x.txt}`, `regbox topology import`).
pub fn edgelist(data: &[u8]) {
    graph(data, Format::EdgeList)
}

/// An imported topology as GraphML.
pub fn graphml(data: &[u8]) {
    graph(data, Format::GraphMl)
}

/// An imported topology as Graphviz DOT.
pub fn dot(data: &[u8]) {
    graph(data, Format::Dot)
}

/// One request line to the fault agent, read as `agent serve` reads it (up to the first newline, UTF-8),
/// and what the agent makes of a `set` before touching any namespace: the normalized plane, its
/// iptables ruleset and the fate of a few packets on every shaped link.
pub fn agent_request(data: &[u8]) {
    let line = match data.iter().position(|&b| b == b'\n') {
        Some(end) => &data[..=end],
        None => data,
    };
    let Ok(line) = std::str::from_utf8(line) else {
        return; // read_line refuses it: the agent logs it and answers nothing
    };
    let Ok(request) = serde_json::from_str::<AgentRequest>(line) else {
        return;
    };
    let json = serde_json::to_string(&request).expect("a request serializes");
    let back: AgentRequest = serde_json::from_str(&json).expect("a request's JSON parses");
    assert_eq!(back, request, "a request's JSON parses as another: {json}");
    let AgentRequest::Set { nodes } = request else {
        return;
    };
    for node in nodes {
        plane_made(node.faults);
    }
}

/// What the agent makes of a node's plane before it touches a namespace: the normalized plane, its
/// iptables ruleset and the fate of a few packets on every shaped link.
fn plane_made(faults: crate::core::faults::plane::NodeFaults) {
    let faults = faults.normalized();
    let _ = ruleset(&faults);
    let shapings = faults.links.values().chain(faults.shaping.iter());
    for (k, shaping) in shapings.enumerate().take(4) {
        let mut shaper = Shaper::new(shaping.clone(), k as u64);
        for i in 0..8u64 {
            let _ = shaper.fate(Duration::from_millis(i * 7), 60 + i as usize * 700);
        }
    }
}

/// The fault agent's record (`plane.json` in its volume), read as an agent that starts again reads it
/// before it restores every node. A record that reads holds only planes a request could have set
/// (each node passes the checks of the agent's requests), is written back as it was read, and what the
/// agent makes of each plane can be made.
#[cfg(feature = "cli")]
pub fn agent_record(data: &[u8]) {
    use crate::agent::record;
    use crate::core::faults::rules::AgentNode;
    let Ok(read) = record::parse(data) else {
        return; // the agent refuses to start, naming the file: never an empty plane
    };
    let written = serde_json::to_vec(&read).expect("a record serializes");
    let back = record::parse(&written).expect("a record the agent wrote reads back");
    assert_eq!(back, read, "a record reads back as another");
    for (name, r) in &read {
        let node = serde_json::json!({
            "name": name, "pid": 0, "container": r.container, "faults": r.faults,
        });
        if let Err(e) = serde_json::from_value::<AgentNode>(node) {
            panic!("the record holds a plane no request could set: {e}");
        }
        plane_made(r.faults.clone());
    }
}

/// An operator request body (`POST /clusters/NAME/ACTION`): the first byte picks the endpoint (the
/// verbs endpoint or an alias, or an unknown one), the rest is the body, read as the operator reads
/// it. A verb it yields goes through its JSON form and back unchanged, and a spec it carries is
/// checked as `apply` checks it.
#[cfg(feature = "cli")]
pub fn verb(data: &[u8]) {
    const ACTIONS: &[&str] = &[
        "verbs",
        "partition",
        "heal",
        "mine",
        "faults",
        "status",
        "x",
    ];
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let action = ACTIONS[first as usize % ACTIONS.len()];
    // As `operator::http::body` reads it: a blank body is `{}`, anything else must be JSON.
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => return,
        }
    };
    let Ok(verb) = crate::operator::http::verb_of(action, value) else {
        return;
    };
    verb_round_trip(&verb);
    if let Verb::Apply { spec, .. } = &verb {
        if spec.validate().is_ok() {
            spec_holds(spec);
        }
    }
}

/// The head a client sends the RPC relay: a request line (`CONNECT a.b.c.d:port HTTP/1.1`) and headers
/// up to a blank line; only the token authorizes, and an admitted target is an IPv4 address in an
/// allowed subnet.
#[cfg(feature = "cli")]
pub fn relay_connect(data: &[u8]) {
    use crate::relay::{head_end, parse_head, Allow, Policy};
    // The relay reads in chunks and looks for the head's end after each: any split gives the same.
    let Some(Some(end)) = head_end(data) else {
        return;
    };
    let Ok(target) = parse_head(&data[..end]) else {
        return;
    };
    let head = std::str::from_utf8(&data[..end]).expect("an accepted head is text");
    let line = head.split("\r\n").next().unwrap_or_default();
    let words: Vec<&str> = line.split(' ').collect();
    assert!(
        words.len() == 3 && words[0] == "CONNECT" && words[2].starts_with("HTTP/1."),
        "accepted {line:?}"
    );
    assert_eq!(words[1].parse(), Ok(target), "accepted {line:?}");
    let allow = Allow {
        subnets: vec!["10.128.0.0/9".parse().expect("a subnet")],
        ports: vec![18443],
    };
    // Who asks: only a `Proxy-Authorization` that carries the token, as a bearer or as basic.
    let policy = Policy::new(allow.clone(), "fuzz-token".into());
    if policy.authorizes(head) {
        assert!(
            head.contains("fuzz-token") || head.contains("cmVnYm94OmZ1enotdG9rZW4="),
            "authorized without the token: {head:?}"
        );
    }
    let admitted = allow.admits(target);
    assert_eq!(
        admitted,
        target.port() == 18443 && target.ip().octets()[0] == 10 && target.ip().octets()[1] >= 128,
        "{target}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the fuzzers found, run through their targets again: each must pass now.
    #[test]
    fn the_fuzzers_findings_pass() {
        // A timeout of 31 years through the heal alias came back 128 s off: serde_json's default float
        // parser read 9.999999949999999e17 one unit off (the `float_roundtrip` feature reads exactly).
        #[cfg(feature = "cli")]
        verb(b",{\"verb\":\"wait\",\"timeout\":999999994999999995.0}");
        // A loss serde_json's default float parser read one unit off (see `faults::rules`).
        agent_request(b"{\"set\":{\"nodes\":[{\"name\":\"n3\",\"pid\":9,\"container\":\"c3\",\"faults\":{\"links\":{\"1\":{\"loss\":0.00010999999999999999}}}}]}}\n");
        // A cut towards a peer past the last node overflowed its address (refused now).
        agent_request(b"{\"set\":{\"nodes\":[{\"name\":\"n2\",\"pid\":7,\"container\":\"c2\",\"faults\":{\"cuts\":{\"42949672950\":\"drop\"}}}]}}\n");
        // The agent's record was read without a request's checks: a delay of 1006 s was restored
        // (see `agent::record`).
        #[cfg(feature = "cli")]
        agent_record(b"{\"n1\":{\"container\":\"abab\",\"faults\":{\"cuts\":{\"2\":\"silent\"},\"shaping\":{\"delay_us\":1006553600},\"links\":{\"3\":{\"delay_us\":5000}}}}}");
    }
}
