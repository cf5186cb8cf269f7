//! The manifest's `topology:` field: a named shape, a generator with its parameters, explicit edges,
//! or a topology file (edge list, GraphML, DOT) read through the caller's reader — each validated with
//! located errors and turned into edges (and, for a file, the node names it declares).

use std::collections::HashMap;

use crate::core::names::{backticked, shown, NodeNames};
use crate::core::topology::generators::{Generator, KINDS};
use crate::core::topology::graphio::{self, Format, Imported};
use crate::core::topology::{generate, Edge, Graph, Kind, NodeId};
use crate::core::yaml::{found, Check, Cx, Fields, Pos, SourceError, Value, Yaml};

/// The fields a generated topology takes, by kind (after `kind` itself).
fn kind_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "line" | "ring" | "star" | "mesh" => &["kind"],
        "tree" => &["kind", "k"],
        "random" => &["kind", "degree", "seed"],
        "random-regular" => &["kind", "k", "seed"],
        "small-world" => &["kind", "k", "beta", "seed"],
        "scale-free" => &["kind", "m", "seed"],
        "grid" | "torus" => &["kind", "width"],
        _ => return None,
    })
}

const FILE_FIELDS: &[&str] = &["file", "format"];
const EDGES_FIELDS: &[&str] = &["edges"];

/// A topology file as the manifest found it: what it declared, and where `file:` was written.
pub(crate) struct TopologyFile {
    imported: Imported,
    path: String,
    at: Pos,
}

impl Cx<'_> {
    /// Every kind a manifest may name, for messages.
    fn all_kinds() -> Vec<&'static str> {
        let mut kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        kinds.extend(KINDS);
        kinds
    }

    /// The topology file a `topology: {file: …}` names, read and imported; None for every other form.
    pub(crate) fn topology_file(&self, v: &Yaml) -> Check<Option<TopologyFile>> {
        let Value::Map(entries) = &v.value else {
            return Ok(None);
        };
        if !entries
            .iter()
            .any(|(k, _)| matches!(&k.value, Value::Str(s) if s == "file"))
        {
            return Ok(None);
        }
        let fields = self.fields(v, "`topology`", FILE_FIELDS)?;
        let file = self.required(&fields, "file")?;
        let path = self.string(file, "`file`")?;
        let format = match fields.get("format") {
            Some(f) => {
                let name = self.string(f, "`format`")?;
                Format::from_name(name).ok_or_else(|| {
                    let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                    self.error(
                        f.at,
                        format!("unknown format `{}`, expected one of {}", shown(name), backticked(&names)),
                    )
                })?
            }
            None => Format::from_path_name(path).ok_or_else(|| {
                self.error(
                    file.at,
                    format!(
                        "cannot tell the format of `{}` from its name (.txt/.edges/.edgelist, .graphml/.xml, .dot/.gv); add `format:`",
                        shown(path)
                    ),
                )
            })?,
        };
        let read = self.reader().ok_or_else(|| {
            self.error(
                file.at,
                "a topology file is read only when the manifest is loaded from a file (regbox up FILE, or manifest::parse_reading)",
            )
        })?;
        let text = read(path)
            .map_err(|e| self.error(file.at, format!("cannot read `{}`: {e}", shown(path))))?;
        let imported = graphio::import(&text, format).map_err(|e| SourceError {
            origin: path.to_string(),
            line: e.line,
            column: e.column,
            message: e.message,
        })?;
        Ok(Some(TopologyFile {
            imported,
            path: path.to_string(),
            at: file.at,
        }))
    }

    /// The nodes a topology file declares, each with the defaults, when the manifest has no `nodes:`.
    /// A bare number `k` names node `nk`, as in a counted cluster.
    pub(crate) fn file_node_names(&self, t: &TopologyFile) -> Check<Vec<String>> {
        let max = crate::core::cluster::manifest::MAX_NODES;
        if !(1..=max).contains(&t.imported.nodes.len()) {
            return Err(self.error(
                t.at,
                format!(
                    "`{}` has {} nodes; a cluster has 1 to {max}",
                    shown(&t.path),
                    t.imported.nodes.len()
                ),
            ));
        }
        let mut seen = HashMap::new();
        let mut names = Vec::with_capacity(t.imported.nodes.len());
        for raw in &t.imported.nodes {
            let name = node_name(raw);
            if !crate::core::cluster::manifest::is_node_name(&name) {
                return Err(self.error(
                    t.at,
                    format!(
                        "`{}` names a node `{}`, which is no valid node name (a letter, then letters, digits, `_`, `.` or `-`); declare `nodes:` and name them there",
                        shown(&t.path),
                        shown(raw)
                    ),
                ));
            }
            if let Some(first) = seen.insert(name.clone(), raw) {
                return Err(self.error(
                    t.at,
                    format!(
                        "`{}` names node `{}` twice (`{}` and `{}`)",
                        shown(&t.path),
                        name,
                        shown(first),
                        shown(raw)
                    ),
                ));
            }
            names.push(name);
        }
        Ok(names)
    }

    /// A topology file's edges over the cluster's nodes: each node of the file is a node of the
    /// cluster by name, by `n<k>` for a bare number `k`, or by index.
    pub(crate) fn file_edges(&self, t: &TopologyFile, names: &NodeNames) -> Check<Vec<Edge>> {
        let index = |raw: &str| -> Check<NodeId> {
            let by_name = |n: &str| names.names.iter().position(|x| *x == n);
            by_name(raw)
                .or_else(|| by_name(&node_name(raw)))
                .or_else(|| raw.parse::<usize>().ok().filter(|&i| i < names.names.len()))
                .ok_or_else(|| {
                    self.error(
                        t.at,
                        format!(
                            "`{}` names node `{}`, which the manifest does not declare ({})",
                            shown(&t.path),
                            shown(raw),
                            names.hint()
                        ),
                    )
                })
        };
        let mut graph = Graph::new();
        let mut edges = Vec::with_capacity(t.imported.edges.len());
        for &(a, b) in &t.imported.edges {
            let (from, to) = (index(&t.imported.nodes[a])?, index(&t.imported.nodes[b])?);
            if from == to || !graph.insert(from, to) {
                return Err(self.error(
                    t.at,
                    format!(
                        "`{}`: edge `{}`-`{}` is a self-loop or a duplicate once named as the cluster's nodes",
                        shown(&t.path),
                        names.names[from],
                        names.names[to]
                    ),
                ));
            }
            edges.push(Edge::new(from, to));
        }
        Ok(edges)
    }

    /// Edges of a `topology:` that is not a file: a shape's name, `{kind: …, …}` or `{edges: …}`.
    pub(crate) fn topology(&self, v: &Yaml, names: &NodeNames) -> Check<Vec<Edge>> {
        let expected = || {
            let shapes: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
            format!(
                "one of {}, `{{ kind: KIND, … }}` (KIND also {}), `{{ edges: [[a, b], ...] }}` or `{{ file: PATH }}`",
                backticked(&shapes),
                backticked(KINDS)
            )
        };
        match &v.value {
            Value::Str(s) => match Kind::from_name(s) {
                Some(kind) => Ok(generate(kind, names.names.len())),
                None if KINDS.contains(&s.as_str()) => Err(self.error(
                    v.at,
                    format!("`{s}` takes parameters: write `{{ kind: {s}, … }}`"),
                )),
                None => Err(self.error(
                    v.at,
                    format!("unknown topology `{}`, expected {}", shown(s), expected()),
                )),
            },
            Value::Map(entries) => {
                let has = |key: &str| {
                    entries
                        .iter()
                        .any(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
                };
                if has("kind") {
                    return self.generated(v, names.names.len());
                }
                let fields = self.fields(v, "`topology`", EDGES_FIELDS)?;
                self.edges(self.required(&fields, "edges")?, names)
            }
            other => Err(self.error(
                v.at,
                format!("`topology` must be {}, found {}", expected(), found(other)),
            )),
        }
    }

    /// `{kind: KIND, …}`: the named shape or generator over `n` nodes.
    fn generated(&self, v: &Yaml, n: usize) -> Check<Vec<Edge>> {
        let kind_value = match &v.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == "kind"))
                .map(|(_, v)| v),
            _ => None,
        }
        .expect("called with a mapping that has `kind`");
        let kind = self.string(kind_value, "`kind`")?;
        let allowed = kind_fields(kind).ok_or_else(|| {
            self.error(
                kind_value.at,
                format!(
                    "unknown topology kind `{}`, expected one of {}",
                    shown(kind),
                    backticked(&Self::all_kinds())
                ),
            )
        })?;
        let fields = self.fields(v, &format!("a `{kind}` topology"), allowed)?;
        if let Some(shape) = Kind::from_name(kind) {
            return Ok(generate(shape, n));
        }
        let seed = || self.number_or(&fields, "seed", 0u64);
        let generator = match kind {
            "tree" => Generator::Tree {
                k: self.number_or(&fields, "k", 2usize)?,
            },
            "random" => Generator::Random {
                degree: self.real(&fields, "degree")?,
                seed: seed()?,
            },
            "random-regular" => Generator::RandomRegular {
                k: self.number(&fields, "k")?,
                seed: seed()?,
            },
            "small-world" => Generator::SmallWorld {
                k: self.number(&fields, "k")?,
                beta: self.real(&fields, "beta")?,
                seed: seed()?,
            },
            "scale-free" => Generator::ScaleFree {
                m: self.number(&fields, "m")?,
                seed: seed()?,
            },
            _ => Generator::Grid {
                width: self.number_or(&fields, "width", (n as f64).sqrt().ceil() as usize)?,
                torus: kind == "torus",
            },
        };
        generator
            .edges(n)
            .map_err(|e| self.error(v.at, format!("`{kind}` topology of {n} nodes: {e}")))
    }

    /// A required whole-number parameter.
    fn number<T: TryFrom<i128>>(&self, fields: &Fields, name: &str) -> Check<T> {
        self.whole(self.required(fields, name)?, name)
    }

    /// A whole-number parameter with a default.
    fn number_or<T: TryFrom<i128>>(&self, fields: &Fields, name: &str, default: T) -> Check<T> {
        match fields.get(name) {
            Some(v) => self.whole(v, name),
            None => Ok(default),
        }
    }

    fn whole<T: TryFrom<i128>>(&self, v: &Yaml, name: &str) -> Check<T> {
        match &v.value {
            Value::Int(i) => T::try_from(*i).map_err(|_| {
                self.error(
                    v.at,
                    format!("`{name}` must be a whole number ≥ 0 in range, found {i}"),
                )
            }),
            other => Err(self.error(
                v.at,
                format!("`{name}` must be a whole number, found {}", found(other)),
            )),
        }
    }

    /// A required real-number parameter.
    fn real(&self, fields: &Fields, name: &str) -> Check<f64> {
        let v = self.required(fields, name)?;
        match &v.value {
            Value::Int(i) => Ok(*i as f64),
            Value::Float(f) if f.is_finite() => Ok(*f),
            other => Err(self.error(
                v.at,
                format!("`{name}` must be a number, found {}", found(other)),
            )),
        }
    }

    /// `{edges: [[a, b], …]}`: explicit edges by node name or index, dialer first.
    fn edges(&self, v: &Yaml, names: &NodeNames) -> Check<Vec<Edge>> {
        let Value::Seq(items) = &v.value else {
            return Err(self.error(
                v.at,
                format!(
                    "`edges` must be a list of pairs like `[a, b]`, found {}",
                    found(&v.value)
                ),
            ));
        };
        let mut declared: HashMap<(NodeId, NodeId), Pos> = HashMap::new();
        let mut edges = Vec::with_capacity(items.len());
        for item in items {
            let [a, b] = match &item.value {
                Value::Seq(pair) if pair.len() == 2 => [&pair[0], &pair[1]],
                Value::Seq(other) => {
                    return Err(self.error(
                        item.at,
                        format!(
                            "an edge must be a pair `[a, b]`, found a list of {} items",
                            other.len()
                        ),
                    ))
                }
                other => {
                    return Err(self.error(
                        item.at,
                        format!("an edge must be a pair `[a, b]`, found {}", found(other)),
                    ))
                }
            };
            let edge = Edge::new(self.endpoint(a, names)?, self.endpoint(b, names)?);
            let name = |id: NodeId| names.names[id];
            if edge.from == edge.to {
                return Err(self.error(
                    item.at,
                    format!("self-loop: edge connects `{}` to itself", name(edge.from)),
                ));
            }
            if let Some(first) = declared.insert(edge.key(), item.at) {
                return Err(self.error(
                    item.at,
                    format!(
                        "duplicate edge `{}`-`{}` (already declared at line {})",
                        name(edge.from),
                        name(edge.to),
                        first.line
                    ),
                ));
            }
            edges.push(edge);
        }
        Ok(edges)
    }

    fn endpoint(&self, v: &Yaml, names: &NodeNames) -> Check<NodeId> {
        let n = names.names.len();
        match &v.value {
            Value::Int(i) => usize::try_from(*i).ok().filter(|&i| i < n).ok_or_else(|| {
                self.error(
                    v.at,
                    format!("edge refers to unknown node index {i} ({})", names.hint()),
                )
            }),
            Value::Str(s) => names.names.iter().position(|n| n == s).ok_or_else(|| {
                self.error(
                    v.at,
                    format!(
                        "edge refers to unknown node `{}` ({})",
                        shown(s),
                        names.hint()
                    ),
                )
            }),
            other => Err(self.error(
                v.at,
                format!(
                    "an edge endpoint must be a node name or index, found {}",
                    found(other)
                ),
            )),
        }
    }
}

/// A node name for a file's node id: a bare number `k` is `nk`.
fn node_name(raw: &str) -> String {
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        format!("n{raw}")
    } else {
        raw.to_string()
    }
}

#[cfg(test)]
mod tests {
    use crate::core::cluster::manifest::{parse, parse_reading, ClusterSpec};
    use crate::core::yaml::SourceError;

    fn ok(yaml: &str) -> ClusterSpec {
        parse(yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(yaml: &str) -> String {
        parse(yaml, "t.yaml").unwrap_err().to_string()
    }

    /// Parses with a reader that knows one file.
    fn with_file(yaml: &str, name: &str, text: &str) -> Result<ClusterSpec, SourceError> {
        let read = |path: &str| {
            if path == name {
                Ok(text.to_string())
            } else {
                Err("no such file".to_string())
            }
        };
        parse_reading(yaml, "t.yaml", &read)
    }

    #[test]
    fn generators_are_named_by_kind_with_their_parameters() {
        let spec = ok("name: lab\nnodes: 20\ntopology: {kind: scale-free, m: 2, seed: 7}\n");
        assert_eq!(spec.edges.len(), 3 + 17 * 2);
        assert_eq!(
            spec,
            ok("name: lab\nnodes: 20\ntopology: {kind: scale-free, m: 2, seed: 7}\n")
        );
        assert_ne!(
            spec,
            ok("name: lab\nnodes: 20\ntopology: {kind: scale-free, m: 2, seed: 8}\n")
        );
        let tree = ok("name: lab\nnodes: 7\ntopology: {kind: tree}\n");
        assert_eq!(tree.edges.len(), 6);
        let grid = ok("name: lab\nnodes: 9\ntopology: {kind: grid}\n");
        assert_eq!(grid.edges.len(), 12, "3x3 by default");
        let torus = ok("name: lab\nnodes: 16\ntopology: {kind: torus, width: 4}\n");
        assert_eq!(torus.edges.len(), 32);
        let regular = ok("name: lab\nnodes: 10\ntopology: {kind: random-regular, k: 4, seed: 1}\n");
        assert_eq!(regular.edges.len(), 20);
        let small = ok("name: lab\nnodes: 10\ntopology: {kind: small-world, k: 4, beta: 0.2}\n");
        assert_eq!(small.edges.len(), 20);
        let random = ok("name: lab\nnodes: 10\ntopology: {kind: random, degree: 3, seed: 2}\n");
        assert_eq!(random.edges.len(), 15);
        assert_eq!(
            ok("name: lab\nnodes: 4\ntopology: {kind: ring}\n"),
            ok("name: lab\nnodes: 4\ntopology: ring\n")
        );
    }

    #[test]
    fn bad_generator_parameters_are_located() {
        let e = err("name: lab\nnodes: 5\ntopology: {kind: random-regular, k: 3, seed: 1}\n");
        assert!(
            e.starts_with("t.yaml:3:11:") && e.contains("n*k even"),
            "{e}"
        );
        let e = err("name: lab\nnodes: 5\ntopology: {kind: tree, m: 2}\n");
        assert!(
            e.starts_with("t.yaml:3:24:") && e.contains("unknown field `m`"),
            "{e}"
        );
        let e = err("name: lab\nnodes: 5\ntopology: {kind: scale-free}\n");
        assert!(e.contains("missing field `m`"), "{e}");
        let e = err("name: lab\nnodes: 5\ntopology: {kind: scale-free, m: -1}\n");
        assert!(
            e.starts_with("t.yaml:3:33:") && e.contains("whole number"),
            "{e}"
        );
        let e = err("name: lab\nnodes: 5\ntopology: {kind: small-world, k: 2, beta: yes}\n");
        assert!(e.contains("`beta` must be a number"), "{e}");
        let e = err("name: lab\nnodes: 5\ntopology: {kind: hypercube}\n");
        assert!(
            e.starts_with("t.yaml:3:18:") && e.contains("unknown topology kind"),
            "{e}"
        );
        let e = err("name: lab\nnodes: 5\ntopology: scale-free\n");
        assert!(e.contains("takes parameters"), "{e}");
    }

    #[test]
    fn a_topology_file_declares_nodes_and_edges() {
        let graphml = r#"<graphml><graph edgedefault="undirected"><node id="0"/><node id="1"/><node id="2"/><edge source="0" target="1"/><edge source="2" target="1"/></graph></graphml>"#;
        let spec = with_file(
            "name: lab\ntopology: {file: g.graphml}\n",
            "g.graphml",
            graphml,
        )
        .unwrap();
        let names: Vec<&str> = spec.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["n0", "n1", "n2"]);
        let pairs: Vec<(usize, usize)> = spec.edges.iter().map(|e| (e.from, e.to)).collect();
        assert_eq!(pairs, [(0, 1), (2, 1)]);
        // With `nodes:`, the file's nodes are the cluster's, by name, `n<k>` or index.
        let spec = with_file(
            "name: lab\nnodes: 3\ntopology: {file: g.graphml}\n",
            "g.graphml",
            graphml,
        )
        .unwrap();
        assert_eq!(spec.edges.len(), 2);
        let listed =
            "name: lab\nnodes: [{name: alice}, {name: bob}]\ntopology: {file: peers.txt}\n";
        let spec = with_file(listed, "peers.txt", "# who dials whom\nbob alice\n").unwrap();
        assert_eq!((spec.edges[0].from, spec.edges[0].to), (1, 0));
        let dot = with_file(
            "name: lab\ntopology: {file: x.gv}\n",
            "x.gv",
            "graph { a -- b -- c }",
        )
        .unwrap();
        assert_eq!(dot.edges.len(), 2);
    }

    #[test]
    fn topology_file_errors_say_which_file_and_where() {
        let e = with_file(
            "name: lab\nnodes: 2\ntopology: {file: peers.txt}\n",
            "peers.txt",
            "a b\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("t.yaml:3:18:") && e.contains("does not declare"),
            "{e}"
        );
        let e = with_file(
            "name: lab\ntopology: {file: bad.dot}\n",
            "bad.dot",
            "graph {\n a -- a\n}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("bad.dot:2:"), "{e}");
        let e = with_file("name: lab\ntopology: {file: gone.dot}\n", "x", "")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t.yaml:2:18:") && e.contains("cannot read `gone.dot`: no such file"),
            "{e}"
        );
        let e = with_file("name: lab\ntopology: {file: g.json}\n", "g.json", "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("add `format:`"), "{e}");
        let e = err("name: lab\ntopology: {file: g.dot}\n");
        assert!(
            e.contains("read only when the manifest is loaded from a file"),
            "{e}"
        );
        let e = with_file("name: lab\ntopology: {file: g.txt}\n", "g.txt", "1a b\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no valid node name"), "{e}");
    }
}
