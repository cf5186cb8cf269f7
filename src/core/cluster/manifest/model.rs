//! The resolved manifest: a cluster's name, its nodes with their images, arguments, wallets, limits
//! and hosts, its edges, its declared link shaping and its hosts — what every other part of regbox
//! takes, whatever the manifest's YAML looked like.

use std::collections::BTreeMap;

use crate::core::cluster::placement::HostSpec;
use crate::core::faults::clock::Drift;
use crate::core::faults::plane::NodeFaults;
use crate::core::names::{shown, NodeNames};
use crate::core::topology::{generate, Edge, Graph, Kind, NodeId};
use crate::core::yaml::SourceError;

use serde::Serialize;

use super::check::*;
use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ClusterSpec {
    pub name: String,
    pub nodes: Vec<NodeSpec>,
    pub edges: Vec<Edge>,
    /// The link shaping the manifest declares (`link:` on nodes or in `defaults`, and `links:`), by node
    /// index: set by `up`, and again on a node that restarts.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "crate::core::faults::plane::keyed::map"
    )]
    pub links: BTreeMap<usize, NodeFaults>,
    /// The Docker engines the nodes run on (`hosts:`); empty: the one engine regbox talks to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostSpec>,
    /// Whether the overlays across `hosts` are encrypted (`encrypt:`; only with hosts).
    #[serde(default, skip_serializing_if = "Encrypt::is_auto")]
    pub encrypt: Encrypt,
}

/// `encrypt: auto | on | off`: whether a cluster across hosts asks Docker for encrypted overlays
/// (IPsec ESP between the hosts). `auto` encrypts when a probe shows encrypted traffic crossing between
/// two hosts, and goes on unencrypted with a warning otherwise; `on` refuses to make the cluster unless
/// the probe passes; `off` never asks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encrypt {
    #[default]
    Auto,
    On,
    Off,
}

impl Encrypt {
    pub fn from_name(name: &str) -> Option<Encrypt> {
        match name {
            "auto" => Some(Encrypt::Auto),
            "on" => Some(Encrypt::On),
            "off" => Some(Encrypt::Off),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Encrypt::Auto => "auto",
            Encrypt::On => "on",
            Encrypt::Off => "off",
        }
    }

    pub fn is_auto(&self) -> bool {
        *self == Encrypt::Auto
    }
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
    /// The clock offset from the host's, in seconds (`clock: -90m`); 0 is the host's clock.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub clock: i64,
    /// How its clock drifts from the host's (`clock: {offset: +1h, drift: +1s/min}`), from when its
    /// container is made (or the cluster reset).
    #[serde(default, skip_serializing_if = "Drift::is_none")]
    pub drift: Drift,
    /// A bounded data directory of this many bytes (`disk: {size: 300m}`); None: the engine's disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<u64>,
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

impl NodeSpec {
    /// A node as the manifest's built-in defaults make it, without a name.
    pub fn builtin() -> NodeSpec {
        NodeSpec {
            name: String::new(),
            image: DEFAULT_IMAGE.to_owned(),
            args: DEFAULT_ARGS.iter().map(|a| a.to_string()).collect(),
            wallet: false,
            resources: Resources::default(),
            own_image: false,
            host: None,
            clock: 0,
            drift: Drift::NONE,
            disk: None,
        }
    }
}

impl ClusterSpec {
    /// What `regbox` runs without a manifest; identical to parsing
    /// `name: regbox`, `nodes: 4`.
    pub fn default_ring4() -> Self {
        let nodes = (0..4)
            .map(|i| NodeSpec {
                name: format!("n{i}"),
                ..NodeSpec::builtin()
            })
            .collect();
        ClusterSpec {
            name: "regbox".to_owned(),
            nodes,
            edges: generate(Kind::Ring, 4),
            links: BTreeMap::new(),
            hosts: Vec::new(),
            encrypt: Encrypt::Auto,
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
        let image = crate::core::release::expand_image(image)?;
        for node in self.nodes.iter_mut().filter(|n| !n.own_image) {
            node.image = image.clone();
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

fn is_zero(n: &i64) -> bool {
    *n == 0
}
