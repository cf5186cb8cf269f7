//! Reading a manifest's YAML tree, every value located: the top level, `defaults`, `nodes`, the
//! topology and the link shaping.

use std::collections::{BTreeMap, HashMap};

use crate::core::cluster::placement::{HostSpec, Strategy};
use crate::core::faults::clock::{self, Drift};
use crate::core::faults::link::{self, Shaping};
use crate::core::faults::plane::{self, NodeFaults};
use crate::core::names::{backticked, shown, NodeNames};
use crate::core::topology::{generate, Kind};
use crate::core::yaml::{found, Check, Cx, Fields, Pos, Value, Yaml};

use super::check::*;
use super::*;

impl Cx<'_> {
    pub(crate) fn cluster(&self, doc: &Yaml) -> Check<ClusterSpec> {
        if let Value::Null = doc.value {
            return Err(self.error(
                doc.at,
                "manifest is empty, expected a mapping with at least `name` and `nodes`",
            ));
        }
        let top = self.fields(doc, "a manifest", TOP_FIELDS)?;

        let name_value = self.required(&top, "name")?;
        let name = self.string(name_value, "`name`")?;
        if !is_cluster_name(name) {
            return Err(self.error(
                name_value.at,
                format!(
                    "invalid cluster name `{}`, expected {CLUSTER_NAME_RULE}",
                    shown(name)
                ),
            ));
        }

        let hosts = match top.get("hosts") {
            Some(h) => self.hosts(h)?,
            None => Vec::new(),
        };
        let strategy = match top.get("placement") {
            Some(p) => self.placement(p, top.key_at("placement").unwrap_or(p.at), &hosts)?,
            None => Strategy::default(),
        };
        let encrypt = match top.get("encrypt") {
            Some(e) => self.encrypt(e, top.key_at("encrypt").unwrap_or(e.at), &hosts)?,
            None => Encrypt::Auto,
        };

        let defaults = match top.get("defaults") {
            Some(d) => self.defaults(d)?,
            None => NodeSpec::builtin(),
        };

        if !hosts.is_empty() {
            self.no_disks_across_hosts(&top)?;
        }

        // A topology file may declare the nodes itself.
        let topology = top.get("topology");
        let file = match topology {
            Some(t) => self.topology_file(t)?,
            None => None,
        };
        let (mut nodes, names_counted) = match (top.get("nodes"), &file) {
            (Some(v), _) => self.nodes(v, &defaults, &hosts)?,
            (None, Some(f)) => {
                let nodes = self
                    .file_node_names(f)?
                    .into_iter()
                    .map(|name| NodeSpec {
                        name,
                        ..defaults.clone()
                    })
                    .collect();
                (nodes, false)
            }
            (None, None) => return Err(self.error(top.at, "missing field `nodes`")),
        };
        if !hosts.is_empty() {
            self.place(&top, &hosts, strategy, &mut nodes)?;
        }
        let names = NodeNames {
            names: nodes.iter().map(|n| n.name.as_str()).collect(),
            counted: names_counted,
        };

        let edges = match (topology, &file) {
            (_, Some(f)) => self.file_edges(f, &names)?,
            (Some(t), None) => self.topology(t, &names)?,
            (None, None) => generate(Kind::Ring, nodes.len()),
        };

        let links = self.links(&top, &names)?;
        Ok(ClusterSpec {
            name: name.to_owned(),
            nodes,
            edges,
            links,
            hosts,
            encrypt,
        })
    }
}

impl Cx<'_> {
    /// `link:` of the defaults and of each node (node-wide shaping), then `links:` entries (shaping
    /// between nodes: `between: [a, b]` both ways, or `from:`/`to:` one way; each end a node or a list),
    /// later ones replacing earlier ones where they overlap.
    pub(super) fn links(
        &self,
        top: &Fields,
        names: &NodeNames,
    ) -> Check<BTreeMap<usize, NodeFaults>> {
        let n = names.names.len();
        let mut plane = BTreeMap::new();
        let set = |plane: &mut BTreeMap<usize, NodeFaults>,
                   nodes: &[usize],
                   to: Option<&[usize]>,
                   s: &Shaping| {
            plane::shape(plane, nodes, to, s);
        };
        let own = |v: &Yaml, what: &str| -> Check<Option<Shaping>> {
            let f = self.fields(v, what, link::FIELDS)?;
            link::from_fields(self, &f)
        };
        if let Some(d) = top.get("defaults") {
            if let Some(l) = self.fields(d, "`defaults`", DEFAULTS_FIELDS)?.get("link") {
                if let Some(s) = own(l, "`link`")? {
                    set(&mut plane, &(0..n).collect::<Vec<_>>(), None, &s);
                }
            }
        }
        if let Some(Value::Seq(items)) = top.get("nodes").map(|v| &v.value) {
            for (i, item) in items.iter().enumerate() {
                if let Some(l) = self.fields(item, "a node", NODE_FIELDS)?.get("link") {
                    if let Some(s) = own(l, "`link`")? {
                        set(&mut plane, &[i], None, &s);
                    }
                }
            }
        }
        let Some(list) = top.get("links") else {
            return Ok(plane);
        };
        let Value::Seq(entries) = &list.value else {
            return Err(self.error(
                list.at,
                format!(
                    "`links` must be a list like `[{{between: [eu, us], delay: 75ms}}]`, found {}",
                    found(&list.value)
                ),
            ));
        };
        let mut keys = vec!["between", "from", "to"];
        keys.extend_from_slice(link::FIELDS);
        for entry in entries {
            let f = self.fields(entry, "a link", &keys)?;
            let shaping = link::from_fields(self, &f)?.ok_or_else(|| {
                self.error(
                    f.at,
                    format!("a link needs at least one of {}", backticked(link::FIELDS)),
                )
            })?;
            match (f.get("between"), f.get("from"), f.get("to")) {
                (Some(b), None, None) => {
                    let ends = match &b.value {
                        Value::Seq(ends) if ends.len() == 2 => ends,
                        _ => return Err(self.error(
                            b.at,
                            "`between` must be two ends `[a, b]`, each a node or a list of nodes",
                        )),
                    };
                    let (a, z) = (
                        self.link_nodes(&ends[0], names)?,
                        self.link_nodes(&ends[1], names)?,
                    );
                    set(&mut plane, &a, Some(&z), &shaping);
                    set(&mut plane, &z, Some(&a), &shaping);
                }
                (None, Some(a), Some(z)) => {
                    let (a, z) = (self.link_nodes(a, names)?, self.link_nodes(z, names)?);
                    set(&mut plane, &a, Some(&z), &shaping);
                }
                _ => {
                    return Err(self.error(
                        f.at,
                        "a link takes `between: [a, b]` (both ways) or `from` and `to` (one way)",
                    ))
                }
            }
        }
        Ok(plane)
    }

    /// A node (name or index) or a list of them, as indexes.
    pub(super) fn link_nodes(&self, v: &Yaml, names: &NodeNames) -> Check<Vec<usize>> {
        let one = |v: &Yaml| -> Check<usize> {
            let n = names.names.len();
            let found_at = match &v.value {
                Value::Int(i) => usize::try_from(*i).ok().filter(|&i| i < n),
                Value::Str(s) => names.names.iter().position(|x| x == s),
                _ => None,
            };
            found_at.ok_or_else(|| {
                self.error(
                    v.at,
                    format!(
                        "unknown node {} in a link ({})",
                        match &v.value {
                            Value::Str(s) => format!("`{}`", shown(s)),
                            other => found(other),
                        },
                        names.hint()
                    ),
                )
            })
        };
        match &v.value {
            Value::Seq(items) if !items.is_empty() => items.iter().map(one).collect(),
            _ => Ok(vec![one(v)?]),
        }
    }

    /// The defaults as a node without a name.
    pub(super) fn defaults(&self, v: &Yaml) -> Check<NodeSpec> {
        // Said before the unknown-field check, whose list of fields would not say why.
        if let Value::Map(entries) = &v.value {
            if let Some((key, _)) = entries
                .iter()
                .find(|(k, _)| matches!(&k.value, Value::Str(k) if k == "host"))
            {
                return Err(self.error(
                    key.at,
                    "`host` pins one node and cannot be in `defaults` (`placement` decides for the nodes without one)",
                ));
            }
        }
        let fields = self.fields(v, "`defaults`", DEFAULTS_FIELDS)?;
        let mut spec = self.over(&fields, &NodeSpec::builtin())?;
        if let Some(i) = fields.get("image") {
            spec.image = self.image(i)?;
        }
        if let Some(a) = fields.get("args") {
            spec.args = self.args(a)?;
        }
        Ok(spec)
    }

    /// Bounded data directories are made on the engine regbox talks to: a manifest with hosts may
    /// not declare one (refused at the first `disk` key, in `defaults` or a node).
    fn no_disks_across_hosts(&self, top: &Fields) -> Check<()> {
        let items =
            (top.get("defaults").into_iter()).chain(match top.get("nodes").map(|n| &n.value) {
                Some(Value::Seq(items)) => items.iter().collect(),
                _ => Vec::new(),
            });
        let disk = items
            .filter_map(|item| match &item.value {
                Value::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| matches!(&k.value, Value::Str(k) if k == "disk"))
                    .map(|(k, _)| k.at),
                _ => None,
            })
            .next();
        match disk {
            Some(at) => Err(self.error(
                at,
                "`disk` (a bounded data directory) is not offered across hosts yet: leave it out, or run the cluster on one host",
            )),
            None => Ok(()),
        }
    }

    /// `base` with the fields a node and the defaults share over it: `wallet`, `resources` (field by
    /// field), `clock`, `disk`.
    fn over(&self, fields: &Fields, base: &NodeSpec) -> Check<NodeSpec> {
        let mut spec = base.clone();
        if let Some(w) = fields.get("wallet") {
            spec.wallet = self.boolean(w, "`wallet`")?;
        }
        if let Some(r) = fields.get("resources") {
            spec.resources = self.resources(r, base.resources)?;
        }
        if let Some(c) = fields.get("clock") {
            (spec.clock, spec.drift) = self.node_clock(c)?;
        }
        if let Some(d) = fields.get("disk") {
            spec.disk = Some(self.disk(d)?);
        }
        Ok(spec)
    }

    /// `disk: {size: 300m}`: a bounded data directory of that many bytes.
    pub(super) fn disk(&self, v: &Yaml) -> Check<u64> {
        let fields = self.fields(v, "`disk`", &["size"])?;
        let size = self.required(&fields, "size")?;
        let bytes = match &size.value {
            Value::Int(n) => u64::try_from(*n).ok(),
            Value::Str(s) => parse_memory(s),
            _ => None,
        };
        bytes
            .filter(|b| (MIN_DISK..=MAX_DISK).contains(b))
            .ok_or_else(|| {
                self.error(
                    size.at,
                    format!(
                        "invalid disk size {}, expected a size from 128m to 64g such as `300m` (k, m, g: powers of 1024)",
                        found(&size.value)
                    ),
                )
            })
    }

    /// `clock: -90m` or `clock: {offset: -90m, drift: +1s/min}`: the node's clock offset from the
    /// host's, in seconds, and its drift.
    fn node_clock(&self, v: &Yaml) -> Check<(i64, Drift)> {
        if !matches!(v.value, Value::Map(_)) {
            return Ok((self.clock(v)?, Drift::NONE));
        }
        let f = self.fields(v, "`clock`", &["offset", "drift"])?;
        let offset = f.get("offset").map(|o| self.clock(o)).transpose()?;
        let drift = f.get("drift").map(|d| self.drift(d)).transpose()?;
        Ok((offset.unwrap_or(0), drift.unwrap_or(Drift::NONE)))
    }

    /// `drift: +1s/min`: how a clock drifts from the host's.
    pub(crate) fn drift(&self, v: &Yaml) -> Check<Drift> {
        let text = self.clock_text(v, "`drift` must be a rate such as +1s/min or -30s/h")?;
        clock::parse_drift(&text).map_err(|e| self.error(v.at, format!("invalid `drift`: {e}")))
    }

    /// `clock: -90m`: the node's clock offset from the host's, in seconds.
    pub(crate) fn clock(&self, v: &Yaml) -> Check<i64> {
        let text = self.clock_text(v, "`clock` must be an offset such as +3h or -90m")?;
        clock::parse_offset(&text).map_err(|e| self.error(v.at, format!("invalid `clock`: {e}")))
    }

    /// The text of a clock's offset or drift: a string, or the number 0; else `expected`, and what
    /// was found.
    fn clock_text(&self, v: &Yaml, expected: &str) -> Check<String> {
        match &v.value {
            Value::Str(s) => Ok(s.clone()),
            Value::Int(0) => Ok("0".into()),
            other => Err(self.error(v.at, format!("{expected}, found {}", found(other)))),
        }
    }

    /// `resources: {memory: 256m, cpus: 0.5}`; fields not given keep `base`.
    pub(super) fn resources(&self, v: &Yaml, base: Resources) -> Check<Resources> {
        let fields = self.fields(v, "`resources`", RESOURCES_FIELDS)?;
        let mut out = base;
        if let Some(m) = fields.get("memory") {
            let bytes = match &m.value {
                Value::Int(n) => u64::try_from(*n).ok(),
                Value::Str(s) => parse_memory(s),
                _ => None,
            };
            out.memory = bytes
                .filter(|b| (MIN_MEMORY..=MAX_MEMORY).contains(b))
                .ok_or_else(|| {
                    self.error(
                        m.at,
                        format!(
                            "invalid memory {}, expected a size from 32m to 1024g such as `256m` or `2g` (k, m, g: powers of 1024)",
                            found(&m.value)
                        ),
                    )
                })?;
        }
        if let Some(c) = fields.get("cpus") {
            let cpus = match &c.value {
                Value::Int(n) => Some(*n as f64),
                Value::Float(f) => Some(*f),
                _ => None,
            };
            let nano = cpus
                .filter(|c| *c > 0.0 && *c <= MAX_CPUS)
                .map(|c| (c * 1e9).round() as u64)
                .filter(|&n| n >= 10_000_000)
                .ok_or_else(|| {
                    self.error(
                        c.at,
                        format!(
                            "invalid cpus {}, expected a number of CPUs from 0.01 to {MAX_CPUS} such as `0.5` or `2`",
                            found(&c.value)
                        ),
                    )
                })?;
            out.nano_cpus = Some(nano);
        }
        Ok(out)
    }

    pub(super) fn image(&self, v: &Yaml) -> Check<String> {
        let image = self.string(v, "`image`")?;
        if !is_image_reference(image) {
            return Err(self.error(
                v.at,
                format!(
                    "invalid image `{}`, expected a docker image reference without spaces",
                    shown(image)
                ),
            ));
        }
        // `core-27.2` names the image `up` builds from Bitcoin Core's verified release.
        crate::core::release::expand_image(image).map_err(|e| self.error(v.at, e))
    }

    pub(super) fn args(&self, v: &Yaml) -> Check<Vec<String>> {
        let Value::Seq(items) = &v.value else {
            return Err(self.error(
                v.at,
                format!(
                    "`args` must be a list of bitcoind arguments, found {}",
                    found(&v.value)
                ),
            ));
        };
        let mut args = Vec::with_capacity(items.len());
        for item in items {
            let arg = self.string(item, "an argument")?;
            if !arg.starts_with('-') {
                return Err(self.error(
                    item.at,
                    format!("argument `{}` must start with `-`", shown(arg)),
                ));
            }
            let name = arg.trim_start_matches('-');
            if name.is_empty() || name.starts_with('=') {
                return Err(self.error(
                    item.at,
                    format!("argument `{}` has no option name", shown(arg)),
                ));
            }
            // One policy for every door a manifest comes through (`up`, `apply`, scenarios, the
            // operator): refused with the arg's position, or taken with a warning that says why.
            let verdict = super::args::judge(arg);
            if let Some(message) = verdict.message(arg) {
                let located = self.error(item.at, message);
                if matches!(verdict, super::args::Verdict::Refused(_)) {
                    return Err(located);
                }
                tracing::warn!("{located}");
            }
            args.push(arg.to_owned());
        }
        Ok(args)
    }

    /// Returns the nodes and whether their names were generated from a count.
    pub(super) fn nodes(
        &self,
        v: &Yaml,
        defaults: &NodeSpec,
        hosts: &[HostSpec],
    ) -> Check<(Vec<NodeSpec>, bool)> {
        let out_of_range = |got: String| {
            self.error(
                v.at,
                format!("nodes must be between 1 and {MAX_NODES}, got {got}"),
            )
        };
        match &v.value {
            Value::Int(n) => {
                let n = usize::try_from(*n)
                    .ok()
                    .filter(|n| (1..=MAX_NODES).contains(n))
                    .ok_or_else(|| out_of_range(n.to_string()))?;
                let nodes = (0..n)
                    .map(|i| NodeSpec {
                        name: format!("n{i}"),
                        ..defaults.clone()
                    })
                    .collect();
                Ok((nodes, true))
            }
            Value::Seq(items) => {
                if !(1..=MAX_NODES).contains(&items.len()) {
                    return Err(out_of_range(items.len().to_string()));
                }
                let mut seen: HashMap<&str, Pos> = HashMap::new();
                let mut nodes = Vec::with_capacity(items.len());
                for item in items {
                    let fields = self.fields(item, "a node", NODE_FIELDS)?;
                    let name_value = self.required(&fields, "name")?;
                    let name = self.string(name_value, "a node name")?;
                    if !is_node_name(name) {
                        return Err(self.error(
                            name_value.at,
                            format!(
                                "invalid node name `{}`, expected a letter followed by up to 62 letters, digits, `_`, `.` or `-`",
                                shown(name)
                            ),
                        ));
                    }
                    if let Some(first) = seen.insert(name, name_value.at) {
                        return Err(self.error(
                            name_value.at,
                            format!(
                                "duplicate node name `{name}` (first declared at line {})",
                                first.line
                            ),
                        ));
                    }
                    let mut node = self.over(&fields, defaults)?;
                    node.name = name.to_owned();
                    if let Some(i) = fields.get("image") {
                        node.image = self.image(i)?;
                        node.own_image = true;
                    }
                    if let Some(a) = fields.get("args") {
                        node.args.extend(self.args(a)?);
                    }
                    if let Some(h) = fields.get("host") {
                        let at = fields.key_at("host").unwrap_or(h.at);
                        node.host = Some(self.node_host(h, at, hosts)?);
                    }
                    nodes.push(node);
                }
                Ok((nodes, false))
            }
            other => Err(self.error(
                v.at,
                format!(
                    "`nodes` must be a node count or a list of nodes, found {}",
                    found(other)
                ),
            )),
        }
    }
}
