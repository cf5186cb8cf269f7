//! Cluster manifests: the YAML format, its validation with located errors, and the resolved `ClusterSpec`.
//!
//! The YAML is first loaded into a small tree in which every node carries its
//! source position, and validated by hand from there. Serde's derived
//! `deny_unknown_fields` would be shorter, and serde-saphyr 2 does locate its
//! errors at the offending key, but the derived messages cannot be reworded
//! (no "quote it to use it as text", no list of node names in the hint).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::core::cluster::placement::{self, HostSpec, PlaceError, Strategy};
use crate::core::faults::link::{self, Shaping};
use crate::core::faults::plane::{self, NodeFaults};
use crate::core::names::{backticked, shown, NodeNames};
use crate::core::topology::{generate, Edge, Graph, Kind, NodeId};
pub use crate::core::yaml::ReadFile;
use crate::core::yaml::{found, Check, Cx, Fields, Pos, SourceError, Value, Yaml};

/// The image a node gets unless the manifest (or `up --image`) names one: "the regbox node image this
/// machine has or can build". `up` resolves it to a tag (the newest such image here, else one it builds)
/// and records that tag in the cluster's metadata, so a cluster keeps its image across `up`s.
pub const DEFAULT_IMAGE: &str = "regbox/bitcoind";
/// Keeps each node's memory small so that hundreds fit on one machine.
pub const DEFAULT_ARGS: &[&str] = &["-dbcache=4", "-maxmempool=5"];
pub const MAX_NODES: usize = 1000;
/// Options that regbox sets on every node; overriding them would break
/// networking, RPC access or the topology itself.
pub const RESERVED_OPTIONS: &[&str] = &[
    "regtest",
    "chain",
    "testnet",
    "signet",
    "connect",
    "listen",
    "bind",
    "port",
    "rpcbind",
    "rpcallowip",
    "rpcport",
    "rpcauth",
    "rpcuser",
    "rpcpassword",
    "uacomment",
    "datadir",
    "dnsseed",
    "fixedseeds",
    "discover",
    "listenonion",
    "natpmp",
    "daemon",
    "printtoconsole",
    "conf",
];

const TOP_FIELDS: &[&str] = &[
    "name",
    "hosts",
    "placement",
    "defaults",
    "nodes",
    "topology",
    "links",
];
const DEFAULTS_FIELDS: &[&str] = &["image", "args", "wallet", "resources", "link"];
const NODE_FIELDS: &[&str] = &[
    "name",
    "image",
    "args",
    "wallet",
    "resources",
    "link",
    "host",
];
const HOST_FIELDS: &[&str] = &["name", "docker", "address", "labels", "capacity"];
const RESOURCES_FIELDS: &[&str] = &["memory", "cpus"];
/// A node's memory limit unless the manifest says otherwise: an idle lab node holds ≈ 40 MiB, a busy one
/// (mining, a large mempool) a few times that.
pub const DEFAULT_MEMORY: u64 = 512 << 20;
/// Below this bitcoind cannot start.
const MIN_MEMORY: u64 = 32 << 20;
const MAX_MEMORY: u64 = 1 << 40;
const MAX_CPUS: f64 = 1024.0;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ClusterSpec {
    pub name: String,
    pub nodes: Vec<NodeSpec>,
    pub edges: Vec<Edge>,
    /// The link shaping the manifest declares (`link:` on nodes or in `defaults`, and `links:`), by node
    /// index: set by `up`, and again on a node that restarts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<usize, NodeFaults>,
    /// The Docker engines the nodes run on (`hosts:`); empty: the one engine regbox talks to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NodeSpec {
    pub name: String,
    pub image: String,
    pub args: Vec<String>,
    /// Whether the node gets a wallet. Defaulted so that specs stored before
    /// the field existed still load.
    #[serde(default)]
    pub wallet: bool,
    #[serde(default)]
    pub resources: Resources,
    /// The node names its own `image:` (so `up --image` leaves it alone).
    #[serde(default)]
    pub own_image: bool,
    /// The host (a name in `ClusterSpec::hosts`) the node runs on: set on every node when the
    /// cluster declares hosts (pinned by `host:` or placed at parse time), None otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// What a node's container may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Resources {
    /// Memory limit in bytes (swap included: the container gets no swap).
    pub memory: u64,
    /// CPU limit in billionths of a CPU; None leaves CPU unlimited.
    pub nano_cpus: Option<u64>,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            memory: DEFAULT_MEMORY,
            nano_cpus: None,
        }
    }
}

impl NodeSpec {
    /// What a container made from `before` lacks of this spec, by field name (`image`, `args`,
    /// `wallet`, `resources`, `host`): why `apply` recreates it. Empty when the two make the same
    /// container.
    pub fn differences(&self, before: &NodeSpec) -> Vec<&'static str> {
        [
            ("image", self.image != before.image),
            ("args", self.args != before.args),
            ("wallet", self.wallet != before.wallet),
            ("resources", self.resources != before.resources),
            ("host", self.host != before.host),
        ]
        .into_iter()
        .filter(|(_, differs)| *differs)
        .map(|(field, _)| field)
        .collect()
    }
}

impl ClusterSpec {
    /// What `regbox` runs without a manifest; identical to parsing
    /// `name: regbox`, `nodes: 4`.
    pub fn default_ring4() -> Self {
        let nodes = (0..4)
            .map(|i| NodeSpec {
                name: format!("n{i}"),
                image: DEFAULT_IMAGE.to_owned(),
                args: DEFAULT_ARGS.iter().map(|a| a.to_string()).collect(),
                wallet: false,
                resources: Resources::default(),
                own_image: false,
                host: None,
            })
            .collect();
        ClusterSpec {
            name: "regbox".to_owned(),
            nodes,
            edges: generate(Kind::Ring, 4),
            links: BTreeMap::new(),
            hosts: Vec::new(),
        }
    }

    /// The host node `node` runs on; None without `hosts` (or for a node index out of range).
    pub fn host_of(&self, node: usize) -> Option<&HostSpec> {
        let name = self.nodes.get(node)?.host.as_deref()?;
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The indexes of the nodes on the host named `host`, in node order.
    pub fn nodes_on(&self, host: &str) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].host.as_deref() == Some(host))
            .collect()
    }

    /// Looks up a node by name, or by decimal index as typed on a command line.
    pub fn resolve(&self, r: &str) -> Option<NodeId> {
        if let Some(id) = self.nodes.iter().position(|n| n.name == r) {
            return Some(id);
        }
        if !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()) {
            return r.parse::<NodeId>().ok().filter(|&i| i < self.nodes.len());
        }
        None
    }

    /// A cluster built in code: `nodes` nodes `n0..` with the default image, arguments and resources,
    /// wired as `kind` — exactly what the manifest `name: NAME`, `nodes: N`, `topology: KIND` gives, and
    /// checked the same way.
    pub fn generated(name: &str, nodes: usize, kind: Kind) -> Result<ClusterSpec, SourceError> {
        if !is_cluster_name(name) {
            return Err(SourceError {
                origin: "code".into(),
                line: 1,
                column: 1,
                message: format!(
                    "invalid cluster name `{}`, expected {CLUSTER_NAME_RULE}",
                    shown(name)
                ),
            });
        }
        let yaml = format!("name: {name}\nnodes: {nodes}\ntopology: {}\n", kind.name());
        parse(&yaml, "code")
    }

    /// `up --image`: every node without an `image:` of its own runs `image` (it takes `defaults.image`'s
    /// place). Checked as a manifest's image is.
    pub fn with_image(&mut self, image: &str) -> Result<(), String> {
        if !is_image_reference(image) {
            return Err(format!(
                "invalid image `{}`, expected a docker image reference without spaces",
                shown(image)
            ));
        }
        for node in self.nodes.iter_mut().filter(|n| !n.own_image) {
            node.image = image.to_string();
        }
        Ok(())
    }

    /// Gives the cluster another name (`-c` on `up` and `run`), checked as the manifest's is.
    pub fn rename(&mut self, name: &str) -> Result<(), String> {
        if !is_cluster_name(name) {
            return Err(format!(
                "invalid cluster name `{}`, expected {CLUSTER_NAME_RULE}",
                shown(name)
            ));
        }
        self.name = name.to_string();
        Ok(())
    }

    /// The node names, worded for "which nodes exist" hints.
    pub(crate) fn node_names(&self) -> NodeNames<'_> {
        let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        let counted = names
            .iter()
            .enumerate()
            .all(|(i, name)| *name == format!("n{i}"));
        NodeNames { names, counted }
    }

    pub fn graph(&self) -> Graph {
        Graph::from_edges(&self.edges)
    }
}

/// Parses and validates a manifest. `origin` only names the source in errors. A manifest that names a
/// topology file is refused: use [`parse_reading`].
pub fn parse(source: &str, origin: &str) -> Result<ClusterSpec, SourceError> {
    let cx = Cx::new(origin, "manifest");
    cx.cluster(&cx.load(source)?)
}

/// [`parse`], reading the topology file the manifest may name (`topology: {file: PATH}`) with `read`,
/// which is given PATH as written (the CLI reads it relative to the manifest's directory).
pub fn parse_reading(
    source: &str,
    origin: &str,
    read: ReadFile<'_>,
) -> Result<ClusterSpec, SourceError> {
    let cx = Cx::new(origin, "manifest").reading(read);
    cx.cluster(&cx.load(source)?)
}

/// What a cluster name may be, worded for errors.
const CLUSTER_NAME_RULE: &str = "1 to 40 lower-case letters, digits or `-`, not starting with `-`";

/// `512m`, `2g`, `1.5g`, `65536k`, `300000000` (bytes); k, m, g (also `kb`, `mib`, …) are powers of 1024
/// as in `docker run --memory`.
fn parse_memory(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let shift = match unit.trim() {
        "" | "b" => 0,
        "k" | "kb" | "ki" | "kib" => 10,
        "m" | "mb" | "mi" | "mib" => 20,
        "g" | "gb" | "gi" | "gib" => 30,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    let bytes = value * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

fn is_image_reference(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `[a-z][a-z0-9-]{0,30}`
fn is_host_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=31).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// `unix:///PATH` (an absolute path) or `tcp://HOST:PORT`, without spaces.
fn is_docker_url(s: &str) -> bool {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if let Some(path) = s.strip_prefix("unix://") {
        return path.len() > 1 && path.starts_with('/');
    }
    let Some(rest) = s.strip_prefix("tcp://") else {
        return false;
    };
    let Some((host, port)) = rest.rsplit_once(':') else {
        return false;
    };
    !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0)
}

fn is_cluster_name(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=40).contains(&b.len()) && ok(&b[0]) && b[1..].iter().all(|c| ok(c) || *c == b'-')
}

pub(crate) fn is_node_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The option an argument sets, as bitcoind sees it: `--regtest.nolisten=1` sets `listen`.
fn reserved_option(arg: &str) -> Option<&'static str> {
    let key = arg.trim_start_matches('-');
    let key = key.split_once('=').map_or(key, |(k, _)| k);
    // bitcoind accepts a network section prefix on the command line.
    let key = key.rsplit_once('.').map_or(key, |(_, k)| k);
    let key = key.to_ascii_lowercase();
    let find = |k: &str| RESERVED_OPTIONS.iter().copied().find(|r| *r == k);
    find(&key).or_else(|| key.strip_prefix("no").and_then(find))
}

/// The manifest's own rules, on the shared reader.
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

        let defaults = match top.get("defaults") {
            Some(d) => self.defaults(d)?,
            None => NodeSpec {
                name: String::new(),
                image: DEFAULT_IMAGE.to_owned(),
                args: DEFAULT_ARGS.iter().map(|a| a.to_string()).collect(),
                wallet: false,
                resources: Resources::default(),
                own_image: false,
                host: None,
            },
        };

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
        })
    }

    /// `hosts:`, a non-empty list of `{name, docker, address?, labels?, capacity?}`.
    fn hosts(&self, v: &Yaml) -> Check<Vec<HostSpec>> {
        let Value::Seq(items) = &v.value else {
            return Err(self.error(
                v.at,
                format!(
                    "`hosts` must be a list like `[{{name: h1, docker: unix:///run/h1/docker.sock}}]`, found {}",
                    found(&v.value)
                ),
            ));
        };
        if items.is_empty() {
            return Err(self.error(
                v.at,
                "`hosts` lists no host, expected at least one (without `hosts` the cluster runs on one engine)",
            ));
        }
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        let mut hosts = Vec::with_capacity(items.len());
        for item in items {
            let fields = self.fields(item, "a host", HOST_FIELDS)?;
            let name_value = self.required(&fields, "name")?;
            let name = self.string(name_value, "a host name")?;
            if !is_host_name(name) {
                return Err(self.error(
                    name_value.at,
                    format!(
                        "invalid host name `{}`, expected a lower-case letter followed by up to 30 lower-case letters, digits or `-`",
                        shown(name)
                    ),
                ));
            }
            if let Some(first) = seen.insert(name, name_value.at) {
                return Err(self.error(
                    name_value.at,
                    format!(
                        "duplicate host name `{name}` (first declared at line {})",
                        first.line
                    ),
                ));
            }
            let docker_value = self.required(&fields, "docker")?;
            let docker = match &docker_value.value {
                Value::Str(d) if is_docker_url(d) => d.clone(),
                other => {
                    return Err(self.error(
                        docker_value.at,
                        format!(
                            "`docker` must be a unix:// or tcp:// URL (`unix:///PATH` or `tcp://HOST:PORT`), found {}",
                            found(other)
                        ),
                    ))
                }
            };
            let address = match fields.get("address") {
                Some(a) => Some(
                    match &a.value {
                        Value::Str(s) => s.parse().ok(),
                        _ => None,
                    }
                    .ok_or_else(|| {
                        self.error(
                            a.at,
                            format!(
                                "`address` must be an IPv4 address such as `10.99.0.11`, found {}",
                                found(&a.value)
                            ),
                        )
                    })?,
                ),
                None => None,
            };
            let labels = match fields.get("labels") {
                Some(l) => self.labels(l)?,
                None => BTreeMap::new(),
            };
            let capacity = match fields.get("capacity") {
                Some(c) => Some(
                    match &c.value {
                        Value::Int(n) => usize::try_from(*n).ok().filter(|&n| n > 0),
                        _ => None,
                    }
                    .ok_or_else(|| {
                        self.error(
                            c.at,
                            format!(
                                "`capacity` must be a positive whole number of nodes, found {}",
                                found(&c.value)
                            ),
                        )
                    })?,
                ),
                None => None,
            };
            hosts.push(HostSpec {
                name: name.to_owned(),
                docker,
                address,
                labels,
                capacity,
            });
        }
        Ok(hosts)
    }

    /// A host's `labels: {zone: a}`: names and values are strings.
    fn labels(&self, v: &Yaml) -> Check<BTreeMap<String, String>> {
        let Value::Map(entries) = &v.value else {
            return Err(self.error(
                v.at,
                format!(
                    "`labels` must be a mapping of strings like `{{zone: a}}`, found {}",
                    found(&v.value)
                ),
            ));
        };
        let mut labels = BTreeMap::new();
        for (key, value) in entries {
            let k = self.string(key, "a label name")?;
            if k.is_empty() || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(self.error(
                    key.at,
                    format!(
                        "invalid label name `{}`, expected text without spaces",
                        shown(k)
                    ),
                ));
            }
            let text = self.string(value, "a label value")?;
            labels.insert(k.to_owned(), text.to_owned());
        }
        Ok(labels)
    }

    /// `placement: spread | binpack`, which only means something with `hosts`.
    fn placement(&self, v: &Yaml, key: Pos, hosts: &[HostSpec]) -> Check<Strategy> {
        if hosts.is_empty() {
            return Err(self.error(key, "`placement` needs `hosts` at the top of the manifest"));
        }
        match &v.value {
            Value::Str(s) => Strategy::from_name(s),
            _ => None,
        }
        .ok_or_else(|| {
            self.error(
                v.at,
                format!(
                    "`placement` must be spread or binpack, found {}",
                    found(&v.value)
                ),
            )
        })
    }

    /// A node's `host:` pin: one of the declared hosts.
    fn node_host(&self, v: &Yaml, key: Pos, hosts: &[HostSpec]) -> Check<String> {
        if hosts.is_empty() {
            return Err(self.error(key, "`host` needs `hosts` at the top of the manifest"));
        }
        let name = self.string(v, "`host`")?;
        if !hosts.iter().any(|h| h.name == name) {
            let known: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
            return Err(self.error(
                v.at,
                format!(
                    "unknown host `{}` (hosts: {})",
                    shown(name),
                    known.join(", ")
                ),
            ));
        }
        Ok(name.to_owned())
    }

    /// Gives every node its host: pinned ones keep theirs, the others are placed by `strategy`.
    fn place(
        &self,
        top: &Fields,
        hosts: &[HostSpec],
        strategy: Strategy,
        nodes: &mut [NodeSpec],
    ) -> Check<()> {
        let index = |name: &str| hosts.iter().position(|h| h.name == name);
        let pinned: Vec<Option<usize>> = nodes
            .iter()
            .map(|n| n.host.as_deref().and_then(index))
            .collect();
        let e = match placement::place(hosts, &pinned, strategy) {
            Ok(placed) => {
                for (node, h) in nodes.iter_mut().zip(placed) {
                    node.host = Some(hosts[h].name.clone());
                }
                return Ok(());
            }
            Err(e) => e,
        };
        let (at, message) = match &e {
            PlaceError::PinnedOverCapacity { host, capacity, .. } => {
                // At the first pin the host has no room for.
                let items = match top.get("nodes").map(|v| &v.value) {
                    Some(Value::Seq(items)) => items.as_slice(),
                    _ => &[],
                };
                let at = items
                    .iter()
                    .filter_map(|item| self.fields(item, "a node", NODE_FIELDS).ok()?.get("host"))
                    .filter(|h| matches!(&h.value, Value::Str(s) if s == host))
                    .nth(*capacity)
                    .map_or(top.at, |h| h.at);
                (at, e.to_string())
            }
            PlaceError::TooSmall {
                hosts: names,
                capacity,
                nodes: n,
            } => {
                let at = top
                    .get("nodes")
                    .or_else(|| top.get("topology"))
                    .map_or(top.at, |v| v.at);
                let which = match names.as_slice() {
                    [one] => format!("host {one} takes"),
                    _ => format!("hosts {} take", names.join(", ")),
                };
                (
                    at,
                    format!(
                        "{which} {} at most (capacity), the manifest declares {n}",
                        placement::nodes(*capacity)
                    ),
                )
            }
            // Not met: the hosts are not empty and every pin names one of them.
            PlaceError::NoHosts { .. } | PlaceError::UnknownHost { .. } => (top.at, e.to_string()),
        };
        Err(self.error(at, message))
    }

    /// `link:` of the defaults and of each node (node-wide shaping), then `links:` entries (shaping
    /// between nodes: `between: [a, b]` both ways, or `from:`/`to:` one way; each end a node or a list),
    /// later ones replacing earlier ones where they overlap.
    fn links(&self, top: &Fields, names: &NodeNames) -> Check<BTreeMap<usize, NodeFaults>> {
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
    fn link_nodes(&self, v: &Yaml, names: &NodeNames) -> Check<Vec<usize>> {
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
    fn defaults(&self, v: &Yaml) -> Check<NodeSpec> {
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
        let image = match fields.get("image") {
            Some(i) => self.image(i)?,
            None => DEFAULT_IMAGE.to_owned(),
        };
        let args = match fields.get("args") {
            Some(a) => self.args(a)?,
            None => DEFAULT_ARGS.iter().map(|a| a.to_string()).collect(),
        };
        let wallet = match fields.get("wallet") {
            Some(w) => self.boolean(w, "`wallet`")?,
            None => false,
        };
        let resources = match fields.get("resources") {
            Some(r) => self.resources(r, Resources::default())?,
            None => Resources::default(),
        };
        Ok(NodeSpec {
            name: String::new(),
            image,
            args,
            wallet,
            resources,
            own_image: false,
            host: None,
        })
    }

    /// `resources: {memory: 256m, cpus: 0.5}`; fields not given keep `base`.
    fn resources(&self, v: &Yaml, base: Resources) -> Check<Resources> {
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

    fn image(&self, v: &Yaml) -> Check<String> {
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
        Ok(image.to_owned())
    }

    fn args(&self, v: &Yaml) -> Check<Vec<String>> {
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
            if reserved_option(arg).is_some() {
                // The value is elided so that a password does not end up in a log.
                let written = match arg.split_once('=') {
                    Some((k, _)) => format!("{k}=…"),
                    None => arg.to_owned(),
                };
                return Err(self.error(
                    item.at,
                    format!(
                        "argument `{}` is set by regbox and may not be overridden",
                        shown(&written)
                    ),
                ));
            }
            args.push(arg.to_owned());
        }
        Ok(args)
    }

    /// Returns the nodes and whether their names were generated from a count.
    fn nodes(
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
                    let own_image = fields.get("image").is_some();
                    let image = match fields.get("image") {
                        Some(i) => self.image(i)?,
                        None => defaults.image.clone(),
                    };
                    let mut args = defaults.args.clone();
                    if let Some(a) = fields.get("args") {
                        args.extend(self.args(a)?);
                    }
                    let wallet = match fields.get("wallet") {
                        Some(w) => self.boolean(w, "`wallet`")?,
                        None => defaults.wallet,
                    };
                    let resources = match fields.get("resources") {
                        Some(r) => self.resources(r, defaults.resources)?,
                        None => defaults.resources,
                    };
                    let host = match fields.get("host") {
                        Some(h) => {
                            Some(self.node_host(h, fields.key_at("host").unwrap_or(h.at), hosts)?)
                        }
                        None => None,
                    };
                    nodes.push(NodeSpec {
                        name: name.to_owned(),
                        image,
                        args,
                        wallet,
                        resources,
                        own_image,
                        host,
                    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::yaml::{MAX_SOURCE_BYTES, MAX_YAML_NODES};

    fn ok(source: &str) -> ClusterSpec {
        parse(source, "test.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(source: &str) -> SourceError {
        match parse(source, "test.yaml") {
            Ok(spec) => panic!("expected an error, parsed {spec:?}"),
            Err(e) => e,
        }
    }

    /// Snapshots the message users see, with the offending YAML as the description.
    macro_rules! assert_error {
        ($name:literal, $source:expr) => {{
            let source: &str = $source;
            let message = err(source).to_string();
            insta::with_settings!({ description => source, omit_expression => true }, {
                insta::assert_snapshot!($name, message);
            });
        }};
    }

    #[test]
    fn differences_name_the_fields_that_make_a_container_differ() {
        let spec = ClusterSpec::default_ring4();
        let before = spec.nodes[0].clone();
        assert!(before.differences(&before).is_empty());
        let mut after = before.clone();
        after.image = "other:1".into();
        after.args.push("-debug=net".into());
        after.resources.memory *= 2;
        assert_eq!(
            after.differences(&before),
            vec!["image", "args", "resources"]
        );
    }

    #[test]
    fn a_node_that_moves_host_differs_by_host() {
        let spec = ok(HOSTS2);
        let before = spec.nodes[0].clone();
        let mut after = before.clone();
        after.host = Some("h2".into());
        assert_eq!(after.differences(&before), vec!["host"]);
    }

    const HOSTS2: &str = "name: lab\nhosts:\n  - {name: h1, docker: unix:///run/h1/docker.sock}\n  - {name: h2, docker: 'tcp://10.0.0.2:2375'}\nnodes: 4\n";

    #[test]
    fn hosts_place_every_node_at_parse_time() {
        let spec = ok(HOSTS2);
        let on: Vec<&str> = spec
            .nodes
            .iter()
            .map(|n| n.host.as_deref().unwrap())
            .collect();
        assert_eq!(on, ["h1", "h2", "h1", "h2"]);
        assert_eq!(spec.nodes_on("h1"), [0, 2]);
        assert_eq!(spec.nodes_on("h2"), [1, 3]);
        assert!(spec.nodes_on("h3").is_empty());
        assert_eq!(spec.host_of(1).unwrap().docker, "tcp://10.0.0.2:2375");
        assert!(spec.host_of(4).is_none());
        // Without hosts nothing changes: no host anywhere, and the record is what it was.
        let plain = ok("name: lab\nnodes: 4\n");
        assert!(plain.hosts.is_empty() && plain.nodes.iter().all(|n| n.host.is_none()));
        assert!(plain.host_of(0).is_none());
        let json = serde_json::to_string(&plain).unwrap();
        assert!(!json.contains("host"), "{json}");
    }

    #[test]
    fn host_fields_pins_and_binpack() {
        let spec = ok(r#"
name: lab
hosts:
  - name: h1
    docker: unix:///run/regbox-lab/h1/docker.sock
    address: 10.99.0.11
    labels: {zone: a, rack: "3"}
    capacity: 2
  - name: h2
    docker: unix:///run/regbox-lab/h2/docker.sock
placement: binpack
nodes:
  - name: a
    host: h2
  - name: b
  - name: c
  - name: d
"#);
        let h1 = &spec.hosts[0];
        assert_eq!(h1.address, Some(std::net::Ipv4Addr::new(10, 99, 0, 11)));
        assert_eq!(h1.labels["zone"], "a");
        assert_eq!(h1.labels["rack"], "3");
        assert_eq!(h1.capacity, Some(2));
        assert_eq!(spec.hosts[1].capacity, None);
        assert_eq!(spec.nodes_on("h1"), [1, 2]);
        assert_eq!(spec.nodes_on("h2"), [0, 3]);
        // A record with hosts loads back as it was.
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<ClusterSpec>(&json).unwrap(), spec);
    }

    #[test]
    fn specs_stored_before_hosts_still_load() {
        let spec: ClusterSpec = serde_json::from_str(
            r#"{"name": "a", "nodes": [{"name": "n0", "image": "x", "args": []}], "edges": []}"#,
        )
        .unwrap();
        assert!(spec.hosts.is_empty() && spec.nodes[0].host.is_none());
    }

    #[test]
    fn nodes_from_a_topology_file_are_placed_too() {
        let read = |_: &str| Ok("a b\nb c\n".to_string());
        let spec = parse_reading(
            "name: lab\nhosts: [{name: h1, docker: unix:///a.sock}, {name: h2, docker: unix:///b.sock}]\ntopology: {file: g.txt}\n",
            "test.yaml",
            &read,
        )
        .unwrap();
        assert!(spec.nodes.iter().all(|n| n.host.is_some()));
        assert_eq!(spec.nodes_on("h1").len(), 2);
    }

    #[test]
    fn bad_hosts_are_refused_where_they_are() {
        let h = "hosts:\n  - {name: h1, docker: unix:///run/h1.sock}\n  - {name: h2, docker: unix:///run/h2.sock}\n";
        assert_error!(
            "host_unknown",
            &format!("name: lab\n{h}nodes:\n  - name: a\n    host: h9\n")
        );
        assert_error!(
            "host_without_hosts",
            "name: lab\nnodes:\n  - name: a\n    host: h1\n"
        );
        assert_error!(
            "host_in_defaults",
            &format!("name: lab\n{h}defaults: {{host: h1}}\nnodes: 2\n")
        );
        assert_error!(
            "host_docker_not_a_url",
            "name: lab\nhosts:\n  - name: h1\n    docker: /run/h1/docker.sock\nnodes: 2\n"
        );
        assert_error!(
            "host_docker_tcp_without_port",
            "name: lab\nhosts: [{name: h1, docker: 'tcp://10.0.0.1'}]\nnodes: 2\n"
        );
        assert_error!(
            "host_docker_missing",
            "name: lab\nhosts:\n  - name: h1\nnodes: 2\n"
        );
        assert_error!(
            "host_duplicate_name",
            "name: lab\nhosts:\n  - {name: h1, docker: unix:///a.sock}\n  - {name: h1, docker: unix:///b.sock}\nnodes: 2\n"
        );
        assert_error!(
            "host_bad_name",
            "name: lab\nhosts: [{name: H1, docker: unix:///a.sock}]\nnodes: 2\n"
        );
        assert_error!(
            "host_bad_address",
            "name: lab\nhosts: [{name: h1, docker: unix:///a.sock, address: 10.99.0}]\nnodes: 2\n"
        );
        assert_error!(
            "host_capacity_zero",
            "name: lab\nhosts: [{name: h1, docker: unix:///a.sock, capacity: 0}]\nnodes: 2\n"
        );
        assert_error!(
            "host_labels_not_a_mapping",
            "name: lab\nhosts: [{name: h1, docker: unix:///a.sock, labels: [a]}]\nnodes: 2\n"
        );
        assert_error!(
            "host_unknown_field",
            "name: lab\nhosts: [{name: h1, docker: unix:///a.sock, cpus: 4}]\nnodes: 2\n"
        );
        assert_error!("hosts_empty", "name: lab\nhosts: []\nnodes: 2\n");
        assert_error!(
            "hosts_not_a_list",
            "name: lab\nhosts: {h1: unix:///a.sock}\nnodes: 2\n"
        );
        assert_error!(
            "placement_unknown",
            &format!("name: lab\n{h}placement: pack\nnodes: 2\n")
        );
        assert_error!(
            "placement_without_hosts",
            "name: lab\nplacement: spread\nnodes: 2\n"
        );
    }

    #[test]
    fn host_capacity_errors_name_the_numbers() {
        assert_error!(
            "hosts_capacity_too_small",
            "name: lab\nhosts:\n  - {name: h1, docker: unix:///a.sock, capacity: 10}\n  - {name: h2, docker: unix:///b.sock, capacity: 10}\nnodes: 25\n"
        );
        assert_error!(
            "host_pinned_over_capacity",
            "name: lab\nhosts:\n  - {name: h1, docker: unix:///a.sock, capacity: 1}\n  - {name: h2, docker: unix:///b.sock}\nnodes:\n  - {name: a, host: h1}\n  - {name: b}\n  - {name: c, host: h1}\n"
        );
    }

    #[test]
    fn docker_urls() {
        for good in [
            "unix:///var/run/docker.sock",
            "tcp://10.0.0.1:2375",
            "tcp://engine.lab:2376",
            "tcp://[::1]:2375",
        ] {
            assert!(is_docker_url(good), "{good}");
        }
        for bad in [
            "unix://",
            "unix:///",
            "unix://relative.sock",
            "tcp://host",
            "tcp://:2375",
            "tcp://host:port",
            "tcp://host:0",
            "tcp://host:2375/path",
            "http://host:2375",
            "ssh://me@host",
            "unix:///a b.sock",
        ] {
            assert!(!is_docker_url(bad), "{bad}");
        }
    }

    #[test]
    fn a_spec_built_in_code_is_the_manifest_it_stands_for() {
        let spec = ClusterSpec::generated("lab", 5, Kind::Star).unwrap();
        assert_eq!(spec, ok("name: lab\nnodes: 5\ntopology: star\n"));
        assert!(ClusterSpec::generated("Lab!", 5, Kind::Star).is_err());
        assert!(ClusterSpec::generated("lab", 0, Kind::Star).is_err());
    }

    #[test]
    fn resources_default_and_override_per_field() {
        let spec = ok("name: a\ndefaults:\n  resources: {memory: 256m, cpus: 1.5}\nnodes:\n  - name: x\n  - name: y\n    resources: {memory: 1g}\n  - name: z\n    resources: {cpus: 1}\n");
        let r: Vec<(u64, Option<u64>)> = spec
            .nodes
            .iter()
            .map(|n| (n.resources.memory, n.resources.nano_cpus))
            .collect();
        assert_eq!(
            r,
            vec![
                (256 << 20, Some(1_500_000_000)),
                (1 << 30, Some(1_500_000_000)),
                (256 << 20, Some(1_000_000_000)),
            ]
        );
        let plain = ok("name: a\nnodes: 1\n");
        assert_eq!(plain.nodes[0].resources, Resources::default());
        assert_eq!(parse_memory("65536k"), Some(64 << 20));
        assert_eq!(parse_memory("1.5G"), Some(3 << 29));
        assert_eq!(parse_memory("100MiB"), Some(100 << 20));
        assert_eq!(parse_memory("lots"), None);
        assert_eq!(parse_memory("5t"), None);
    }

    #[test]
    fn bad_resources_are_refused_with_their_place() {
        assert_error!(
            "resources_memory_word",
            "name: a\nnodes:\n  - name: x\n    resources: {memory: lots}\n"
        );
        assert_error!(
            "resources_memory_too_small",
            "name: a\ndefaults:\n  resources: {memory: 1m}\nnodes: 1\n"
        );
        assert_error!(
            "resources_cpus_zero",
            "name: a\ndefaults:\n  resources: {cpus: 0}\nnodes: 1\n"
        );
        assert_error!(
            "resources_unknown_field",
            "name: a\ndefaults:\n  resources: {disk: 1g}\nnodes: 1\n"
        );
    }

    fn names(spec: &ClusterSpec) -> Vec<&str> {
        spec.nodes.iter().map(|n| n.name.as_str()).collect()
    }

    fn pairs(spec: &ClusterSpec) -> Vec<(NodeId, NodeId)> {
        spec.edges.iter().map(|e| (e.from, e.to)).collect()
    }

    fn wallets(spec: &ClusterSpec) -> Vec<bool> {
        spec.nodes.iter().map(|n| n.wallet).collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn count_form_names_nodes_and_uses_defaults() {
        let spec = ok("name: lab\nnodes: 3\n");
        assert_eq!(spec.name, "lab");
        assert_eq!(names(&spec), ["n0", "n1", "n2"]);
        for node in &spec.nodes {
            assert_eq!(node.image, DEFAULT_IMAGE);
            assert_eq!(node.args, DEFAULT_ARGS);
        }
        // Without `topology` the cluster is a ring.
        assert_eq!(pairs(&spec), [(0, 1), (1, 2), (2, 0)]);
    }

    #[test]
    fn default_ring4_is_the_minimal_manifest() {
        assert_eq!(ClusterSpec::default_ring4(), ok("name: regbox\nnodes: 4\n"));
    }

    #[test]
    fn list_form_with_per_node_overrides() {
        let spec = ok(r#"
name: lab
defaults:
  image: base:1
  args: ["-debug=net"]
nodes:
  - name: alice
  - name: bob
    image: other:2
  - name: carol
    args: ["-whitelist=noban@0.0.0.0/0"]
topology: line
"#);
        assert_eq!(names(&spec), ["alice", "bob", "carol"]);
        assert_eq!(spec.nodes[0].image, "base:1");
        assert_eq!(spec.nodes[0].args, ["-debug=net"]);
        assert_eq!(spec.nodes[1].image, "other:2");
        assert_eq!(spec.nodes[1].args, ["-debug=net"]);
        assert_eq!(spec.nodes[2].image, "base:1");
        // Node args come after the defaults so that bitcoind's last-one-wins applies to them.
        assert_eq!(
            spec.nodes[2].args,
            ["-debug=net", "-whitelist=noban@0.0.0.0/0"]
        );
        assert_eq!(pairs(&spec), [(0, 1), (1, 2)]);
    }

    #[test]
    fn links_come_from_defaults_nodes_and_the_links_list() {
        let spec = ok("name: geo\n\
            defaults: {link: {loss: 1%}}\n\
            nodes: [{name: a}, {name: b, link: {delay: 10ms}}, {name: c}, {name: d}]\n\
            links:\n  - {between: [[a, b], c], delay: 75ms}\n  - {from: d, to: 0, like: flaky}\n");
        let words: Vec<String> = spec
            .links
            .iter()
            .map(|(i, f)| {
                format!(
                    "{i}: {}",
                    plane::describe(f, |p| spec.nodes[p].name.clone())
                )
            })
            .collect();
        assert_eq!(
            words,
            [
                "0: loss 1%; to c: delay 75ms",
                "1: delay 10ms; to c: delay 75ms",
                "2: loss 1%; to a: delay 75ms; to b: delay 75ms",
                "3: loss 1%; to a: loss 30%",
            ]
        );
        assert!(ok("name: plain\nnodes: 2\n").links.is_empty());
    }

    #[test]
    fn bad_links_are_refused_where_they_are() {
        assert_error!(
            "link_bad_delay",
            "name: x\nnodes: 2\nlinks: [{between: [0, 1], delay: fast}]\n"
        );
        assert_error!(
            "link_unknown_node",
            "name: x\nnodes: 2\nlinks: [{from: n0, to: n7, delay: 5ms}]\n"
        );
        assert_error!(
            "link_no_shaping",
            "name: x\nnodes: 2\nlinks: [{between: [0, 1]}]\n"
        );
        assert_error!(
            "link_neither_form",
            "name: x\nnodes: 2\nlinks: [{to: 1, delay: 5ms}]\n"
        );
        assert_error!(
            "link_not_a_list",
            "name: x\nnodes: 2\nlinks: {between: [0, 1]}\n"
        );
        assert_error!(
            "node_link_unknown_field",
            "name: x\nnodes: [{name: a, link: {latency: 5ms}}]\n"
        );
    }

    #[test]
    fn defaults_are_optional_piecewise() {
        let spec = ok("name: lab\ndefaults: {image: custom:1}\nnodes: 1\n");
        assert_eq!(spec.nodes[0].image, "custom:1");
        assert_eq!(spec.nodes[0].args, DEFAULT_ARGS);

        let spec = ok("name: lab\ndefaults: {args: [-debug=net]}\nnodes: 1\n");
        assert_eq!(spec.nodes[0].image, DEFAULT_IMAGE);
        assert_eq!(spec.nodes[0].args, ["-debug=net"]);

        let spec = ok("name: lab\ndefaults: {args: []}\nnodes: [{name: a, args: [-debug=net]}]\n");
        assert_eq!(spec.nodes[0].args, ["-debug=net"]);
    }

    #[test]
    fn wallets_default_off_and_nodes_override_defaults() {
        let spec = ok("name: lab\nnodes: [{name: a}, {name: b, wallet: true}]\n");
        assert_eq!(wallets(&spec), [false, true]);
        let spec = ok("name: lab\ndefaults: {wallet: true}\nnodes: 2\n");
        assert_eq!(wallets(&spec), [true, true]);
        let spec = ok(
            "name: lab\ndefaults: {wallet: true}\nnodes: [{name: a, wallet: false}, {name: b}]\n",
        );
        assert_eq!(wallets(&spec), [false, true]);
        assert!(!ClusterSpec::default_ring4().nodes[0].wallet);
    }

    #[test]
    fn specs_stored_without_wallet_still_load() {
        let node: NodeSpec =
            serde_json::from_str(r#"{"name": "a", "image": "x", "args": []}"#).unwrap();
        assert!(!node.wallet);
    }

    #[test]
    fn every_topology_kind() {
        for kind in Kind::ALL {
            let spec = ok(&format!("name: lab\nnodes: 5\ntopology: {kind}\n"));
            assert_eq!(spec.edges, generate(kind, 5), "{kind}");
        }
    }

    #[test]
    fn edges_by_name_and_index_keep_the_dialer_first() {
        let spec = ok(r#"
name: lab
nodes: [{name: a}, {name: b}, {name: c}, {name: d}]
topology:
  edges: [[a, b], [2, 1], [d, 0], [c, 3]]
"#);
        assert_eq!(pairs(&spec), [(0, 1), (2, 1), (3, 0), (2, 3)]);
        let spec = ok("name: lab\nnodes: 3\ntopology: {edges: [[n2, 0], [1, n2]]}\n");
        assert_eq!(pairs(&spec), [(2, 0), (1, 2)]);
    }

    #[test]
    fn empty_edge_list_means_no_connections() {
        assert!(ok("name: lab\nnodes: 3\ntopology: {edges: []}\n")
            .edges
            .is_empty());
    }

    #[test]
    fn yaml_1_1_boolean_words_are_names() {
        let spec = ok("name: lab\nnodes: [{name: y}, {name: n}, {name: on}, {name: off}]\ntopology: {edges: [[y, n], [on, off]]}\n");
        assert_eq!(names(&spec), ["y", "n", "on", "off"]);
        assert_eq!(pairs(&spec), [(0, 1), (2, 3)]);
    }

    #[test]
    fn anchors_and_merge_keys_work() {
        let spec = ok(r#"
name: lab
nodes:
  - &net {name: a, args: [-debug=net]}
  - <<: *net
    name: b
"#);
        assert_eq!(spec.nodes[1].args, spec.nodes[0].args);
        assert_eq!(spec.nodes[1].name, "b");
    }

    #[test]
    fn one_anchor_shared_by_a_thousand_nodes_is_fine() {
        let mut source =
            String::from("name: lab\ndefaults: {args: &a [-debug=net, -debug=rpc]}\nnodes:\n");
        for i in 0..MAX_NODES {
            source += &format!("  - {{name: n{i}, args: *a}}\n");
        }
        assert_eq!(ok(&source).nodes.len(), MAX_NODES);
    }

    #[test]
    fn node_count_limits_are_inclusive() {
        assert_eq!(ok("name: lab\nnodes: 1\n").nodes.len(), 1);
        assert!(ok("name: lab\nnodes: 1\n").edges.is_empty());
        assert_eq!(ok("name: lab\nnodes: 1000\n").nodes.len(), 1000);
    }

    #[test]
    fn name_limits() {
        ok(&format!("name: {}\nnodes: 1\n", "a".repeat(40)));
        ok("name: 0-lab\nnodes: 1\n");
        ok(&format!(
            "name: lab\nnodes: [{{name: A{}}}]\n",
            "b_.-9".repeat(12) + "xx"
        ));
    }

    #[test]
    fn permitted_arguments() {
        let spec = ok("name: lab\ndefaults: {args: [-dbcache=4, --debug=net, -notify=x, -listenx=1, -nodebug, -whitelist=noban@10.0.0.0/8]}\nnodes: 1\n");
        assert_eq!(spec.nodes[0].args.len(), 6);
    }

    #[test]
    fn reserved_option_parsing() {
        assert_eq!(reserved_option("-rpcbind=0.0.0.0"), Some("rpcbind"));
        assert_eq!(reserved_option("--port"), Some("port"));
        assert_eq!(reserved_option("-nolisten"), Some("listen"));
        assert_eq!(reserved_option("-regtest.rpcport=1"), Some("rpcport"));
        assert_eq!(reserved_option("-RegTest"), Some("regtest"));
        assert_eq!(reserved_option("-noregtest.connect"), Some("connect"));
        assert_eq!(reserved_option("-nodebug"), None);
        assert_eq!(reserved_option("-portx"), None);
        assert_eq!(reserved_option("-dbcache=4"), None);
    }

    #[test]
    fn example_ring4() {
        let spec = parse(include_str!("../../../manifests/ring4.yaml"), "ring4.yaml").unwrap();
        assert_eq!(spec.name, "ring4");
        assert_eq!(names(&spec), ["n0", "n1", "n2", "n3"]);
        assert_eq!(
            spec.graph().edges().collect::<Vec<_>>(),
            [(0, 1), (0, 3), (1, 2), (2, 3)]
        );
        assert!(spec.nodes.iter().all(|n| n.image == DEFAULT_IMAGE));
    }

    #[test]
    fn example_lab3() {
        let spec = parse(include_str!("../../../manifests/lab3.yaml"), "lab3.yaml").unwrap();
        assert_eq!(spec.name, "lab3");
        assert_eq!(spec.hosts.len(), 3);
        for (i, host) in spec.hosts.iter().enumerate() {
            assert_eq!(
                host.docker,
                format!("unix:///run/regbox-lab/h{}/docker.sock", i + 1)
            );
            assert_eq!(spec.nodes_on(&host.name), [2 * i, 2 * i + 1]);
        }
        assert_eq!(spec.edges, generate(Kind::Ring, 6));
    }

    #[test]
    fn example_mesh8() {
        let spec = parse(include_str!("../../../manifests/mesh8.yaml"), "mesh8.yaml").unwrap();
        assert_eq!(spec.name, "mesh8");
        assert_eq!(spec.nodes.len(), 8);
        assert_eq!(spec.edges.len(), 28);
        let erin = &spec.nodes[spec.resolve("erin").unwrap()];
        assert_eq!(
            erin.args,
            strings(&["-dbcache=4", "-maxmempool=5", "-debug=net"])
        );
    }

    #[test]
    fn example_star_edges() {
        let spec = parse(
            include_str!("../../../manifests/star-edges.yaml"),
            "star-edges.yaml",
        )
        .unwrap();
        insta::assert_snapshot!(
            "star_edges_spec",
            serde_json::to_string_pretty(&spec).unwrap()
        );
    }

    #[test]
    fn resolve_by_name_or_index() {
        let spec = ok("name: lab\nnodes: [{name: a}, {name: b}]\n");
        assert_eq!(spec.resolve("a"), Some(0));
        assert_eq!(spec.resolve("b"), Some(1));
        assert_eq!(spec.resolve("1"), Some(1));
        assert_eq!(spec.resolve("2"), None);
        assert_eq!(spec.resolve("-1"), None);
        assert_eq!(spec.resolve("+1"), None);
        assert_eq!(spec.resolve(""), None);
        assert_eq!(spec.resolve("c"), None);
    }

    #[test]
    fn graph_matches_edges() {
        let spec = ok("name: lab\nnodes: 4\ntopology: star\n");
        let graph = spec.graph();
        assert_eq!(graph.len(), 3);
        assert!(graph.contains(2, 0));
    }

    #[test]
    fn error_fields() {
        let e = err("name: lab\nnodes: 4\ntopology: rong\n");
        assert_eq!((e.origin.as_str(), e.line, e.column), ("test.yaml", 3, 11));
    }

    // Each validation error, snapshotted with its location.

    #[test]
    fn unknown_fields() {
        assert_error!(
            "unknown_top_field",
            include_str!("../../../tests/data/bad/unknown-field.yaml")
        );
        assert_error!(
            "unknown_defaults_field",
            "name: lab\ndefaults:\n  image: x\n  arg: [-debug]\nnodes: 1\n"
        );
        assert_error!(
            "unknown_node_field",
            "name: lab\nnodes:\n  - name: a\n  - name: b\n    imagez: x\n"
        );
        assert_error!(
            "unknown_topology_field",
            "name: lab\nnodes: 2\ntopology:\n  edge: [[0, 1]]\n"
        );
        assert_error!("non_string_key", "name: lab\nnodes: 2\n7: x\n");
    }

    #[test]
    fn missing_fields() {
        assert_error!("missing_name", "nodes: 2\n");
        assert_error!("missing_nodes", "name: lab\ntopology: line\n");
        assert_error!(
            "missing_node_name",
            "name: lab\nnodes:\n  - name: a\n  - image: x\n"
        );
        assert_error!("missing_edges", "name: lab\nnodes: 2\ntopology: {}\n");
    }

    #[test]
    fn wrong_types() {
        assert_error!("manifest_is_list", "- name: lab\n");
        assert_error!("manifest_is_scalar", "lab\n");
        assert_error!("name_is_list", "name: [lab]\nnodes: 2\n");
        assert_error!("name_is_number", "name: 42\nnodes: 2\n");
        assert_error!("nodes_is_string", "name: lab\nnodes: four\n");
        assert_error!("nodes_is_float", "name: lab\nnodes: 2.5\n");
        assert_error!("node_is_string", "name: lab\nnodes:\n  - a\n");
        assert_error!("node_name_is_bool", "name: lab\nnodes:\n  - name: true\n");
        assert_error!("defaults_is_list", "name: lab\ndefaults: [x]\nnodes: 1\n");
        assert_error!(
            "image_is_null",
            "name: lab\ndefaults:\n  image:\nnodes: 1\n"
        );
        assert_error!(
            "args_is_string",
            "name: lab\ndefaults:\n  args: -debug=net\nnodes: 1\n"
        );
        assert_error!(
            "arg_is_number",
            "name: lab\nnodes:\n  - name: a\n    args: [-debug, 5]\n"
        );
        assert_error!(
            "wallet_is_word",
            "name: lab\ndefaults: {wallet: yes}\nnodes: 1\n"
        );
        assert_error!(
            "wallet_is_null",
            "name: lab\nnodes:\n  - name: a\n    wallet:\n"
        );
        assert_error!("topology_is_number", "name: lab\nnodes: 2\ntopology: 3\n");
        assert_error!(
            "edges_is_mapping",
            "name: lab\nnodes: 2\ntopology:\n  edges: {a: b}\n"
        );
        assert_error!(
            "edge_is_string",
            "name: lab\nnodes: 2\ntopology:\n  edges:\n    - n0-n1\n"
        );
        assert_error!(
            "edge_has_three_ends",
            "name: lab\nnodes: 3\ntopology:\n  edges:\n    - [n0, n1, n2]\n"
        );
        assert_error!(
            "endpoint_is_float",
            "name: lab\nnodes: 3\ntopology:\n  edges:\n    - [n0, 1.5]\n"
        );
    }

    #[test]
    fn unknown_topology_kind() {
        assert_error!("unknown_topology", "name: lab\nnodes: 4\ntopology: Ring\n");
    }

    #[test]
    fn bad_names() {
        assert_error!("cluster_name_upper_case", "name: Lab\nnodes: 1\n");
        assert_error!("cluster_name_leading_dash", "name: -lab\nnodes: 1\n");
        assert_error!(
            "cluster_name_too_long",
            &format!("name: {}\nnodes: 1\n", "a".repeat(41))
        );
        assert_error!("cluster_name_empty", "name: ''\nnodes: 1\n");
        assert_error!(
            "node_name_starts_with_digit",
            "name: lab\nnodes:\n  - name: \"1a\"\n"
        );
        assert_error!("node_name_with_space", "name: lab\nnodes:\n  - name: a b\n");
        assert_error!(
            "node_name_too_long",
            &format!("name: lab\nnodes:\n  - name: {}\n", "a".repeat(64))
        );
        assert_error!(
            "node_name_control_chars_are_escaped",
            "name: lab\nnodes:\n  - name: \"a\\nb\"\n"
        );
    }

    #[test]
    fn duplicate_node_name() {
        assert_error!(
            "duplicate_node_name",
            "name: lab\nnodes:\n  - name: a\n  - name: b\n  - name: a\n"
        );
    }

    #[test]
    fn unknown_edge_endpoints() {
        assert_error!(
            "edge_to_unknown_name",
            include_str!("../../../tests/data/bad/unknown-node.yaml")
        );
        assert_error!(
            "edge_to_unknown_name_in_list",
            "name: lab\nnodes: [{name: alice}, {name: bob}]\ntopology: {edges: [[alice, carol]]}\n"
        );
        assert_error!(
            "edge_to_unknown_name_in_long_list",
            "name: lab\nnodes: [{name: a}, {name: b}, {name: c}, {name: d}, {name: e}, {name: f}, {name: g}]\ntopology: {edges: [[a, h]]}\n"
        );
        assert_error!(
            "edge_index_out_of_range",
            "name: lab\nnodes: 4\ntopology: {edges: [[0, 4]]}\n"
        );
        assert_error!(
            "edge_index_negative",
            "name: lab\nnodes: 4\ntopology: {edges: [[-1, 0]]}\n"
        );
        assert_error!(
            "edge_index_single_node",
            "name: lab\nnodes: 1\ntopology: {edges: [[0, 1]]}\n"
        );
        // A quoted number is a name, and names never look like numbers.
        assert_error!(
            "edge_quoted_index_is_a_name",
            "name: lab\nnodes: 2\ntopology: {edges: [[\"0\", 1]]}\n"
        );
    }

    #[test]
    fn self_loop() {
        assert_error!(
            "self_loop",
            "name: lab\nnodes: 4\ntopology:\n  edges:\n    - [n0, n1]\n    - [n1, 1]\n"
        );
    }

    #[test]
    fn duplicate_edges() {
        assert_error!(
            "duplicate_edge_reversed",
            include_str!("../../../tests/data/bad/duplicate-edge.yaml")
        );
        assert_error!(
            "duplicate_edge_same_direction",
            "name: lab\nnodes: 4\ntopology:\n  edges:\n    - [n0, n1]\n    - [0, 1]\n"
        );
    }

    #[test]
    fn node_count_out_of_range() {
        assert_error!("nodes_zero", "name: lab\nnodes: 0\n");
        assert_error!("nodes_negative", "name: lab\nnodes: -3\n");
        assert_error!("nodes_too_many", "name: lab\nnodes: 1001\n");
        assert_error!("nodes_empty_list", "name: lab\nnodes: []\n");
        let mut source = String::from("name: lab\nnodes:\n");
        for i in 0..=MAX_NODES {
            source += &format!("  - name: n{i}\n");
        }
        // Plain snapshot: the 1001-entry source would swamp the description.
        insta::assert_snapshot!("nodes_list_too_long", err(&source).to_string());
    }

    #[test]
    fn bad_arguments() {
        assert_error!(
            "reserved_arg_in_defaults",
            include_str!("../../../tests/data/bad/reserved-arg.yaml")
        );
        assert_error!(
            "reserved_arg_in_node",
            "name: lab\nnodes:\n  - name: a\n    args: [-debug=net, -uacomment=me]\n"
        );
        assert_error!(
            "reserved_arg_negated",
            "name: lab\ndefaults: {args: [-nolisten]}\nnodes: 1\n"
        );
        assert_error!(
            "reserved_arg_with_section",
            "name: lab\ndefaults: {args: [--regtest.port=1]}\nnodes: 1\n"
        );
        assert_error!(
            "arg_without_dash",
            "name: lab\ndefaults: {args: [dbcache=4]}\nnodes: 1\n"
        );
        assert_error!(
            "arg_only_dashes",
            "name: lab\ndefaults: {args: [\"--\"]}\nnodes: 1\n"
        );
    }

    #[test]
    fn bad_images() {
        assert_error!(
            "image_empty",
            "name: lab\ndefaults: {image: ''}\nnodes: 1\n"
        );
        assert_error!(
            "image_with_space",
            "name: lab\nnodes:\n  - name: a\n    image: \"bitcoind knots\"\n"
        );
    }

    #[test]
    fn yaml_level_errors() {
        assert_error!("empty_document", "");
        assert_error!("comment_only_document", "# nothing here\n");
        assert_error!("unclosed_bracket", "name: lab\nnodes: [{name: a}\n");
        assert_error!("bad_indentation", "name: lab\nnodes: 2\n  topology: ring\n");
        assert_error!("duplicate_key", "name: lab\nnodes: 2\nname: other\n");
        assert_error!("two_documents", "name: lab\nnodes: 2\n---\nname: other\n");
        assert_error!("unknown_anchor", "name: lab\nnodes: *count\n");
    }

    #[test]
    fn oversized_source_is_refused_before_parsing() {
        // Invalid YAML past the limit proves the parser never ran.
        let source = format!("name: [\n#{}", "x".repeat(MAX_SOURCE_BYTES));
        insta::assert_snapshot!("too_large", err(&source).to_string());
    }

    #[test]
    fn billion_laughs_fails_fast() {
        let mut source = String::from("name: lab\nnodes: 1\n");
        source += "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            source += &format!("a{i}: &a{i} [{refs}]\n");
        }
        insta::assert_snapshot!("billion_laughs", err(&source).to_string());
    }

    #[test]
    fn nested_anchors_fail_fast() {
        // No alias at all: every value is kept once for each of the 30 anchors around it.
        let source = format!(
            "name: lab\nnodes: 1\nx: {}{}{}\n",
            (0..30).map(|i| format!("&a{i} [")).collect::<String>(),
            vec!["1"; 60_000].join(", "),
            "]".repeat(30)
        );
        insta::assert_snapshot!("nested_anchors", err(&source).to_string());
    }

    #[test]
    fn comments_are_not_values() {
        let source = format!("name: lab\nnodes: 1\n{}", "#\n".repeat(3 * MAX_YAML_NODES));
        assert!(source.len() <= MAX_SOURCE_BYTES);
        assert_eq!(ok(&source).nodes.len(), 1);
    }

    #[test]
    fn non_finite_floats_are_text() {
        let spec = ok("name: lab\ndefaults: {args: [-.inf]}\nnodes: 1\n");
        assert_eq!(spec.nodes[0].args, ["-.inf"]);
        assert_eq!(
            err("name: lab\nnodes: 1e999\n").message,
            "`nodes` must be a node count or a list of nodes, found string `.inf`"
        );
    }

    #[test]
    fn deep_nesting_fails_fast() {
        let depth = 10_000;
        let flow_seq = format!(
            "name: lab\nnodes: {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        insta::assert_snapshot!("deep_flow_sequence", err(&flow_seq).to_string());
        let flow_map = format!(
            "name: lab\nnodes: {}1{}\n",
            "{a: ".repeat(depth),
            "}".repeat(depth)
        );
        insta::assert_snapshot!("deep_flow_mapping", err(&flow_map).to_string());
        let block_seq = format!("name: lab\nnodes:\n{}x\n", "- ".repeat(depth));
        insta::assert_snapshot!("deep_block_sequence", err(&block_seq).to_string());
    }
}
