//! What the facade hands back and takes: containers, networks, images and events as regbox reads
//! them, and a container to create ([`ContainerSpec`]), all in Docker's terms.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::core::cluster::plan::State;
use crate::core::cluster::subnet::Subnet;

/// A container event (see [`Routing::container_events`](super::Routing::container_events)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub cluster: String,
    pub container: String,
    /// The container's `regbox.role` (None for a node).
    pub role: Option<String>,
    /// `die`, `oom`, `pause` or `destroy`.
    pub action: String,
}

/// A container as listed by the engine.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    /// The image's id: it stays usable when the tag was removed or moved.
    pub image_id: String,
    pub state: State,
    pub labels: HashMap<String, String>,
    /// The networks it is attached to.
    pub networks: Vec<Endpoint>,
    /// The host (engine) it lives on; empty with one engine.
    pub host: String,
    /// Its published ports: (container port, host port).
    pub ports: Vec<(u16, u16)>,
}

/// A container's attachment to a network.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The network's id (names are not unique on every engine).
    pub network: String,
    pub ip: Option<Ipv4Addr>,
}

/// A network to act on: its id, and its name for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Net {
    pub id: String,
    pub name: String,
}

impl From<&NetworkInfo> for Net {
    fn from(n: &NetworkInfo) -> Net {
        Net {
            id: n.id.clone(),
            name: n.name.clone(),
        }
    }
}

/// A marker container as inspected.
#[derive(Debug, Clone)]
pub struct MarkerInfo {
    pub id: String,
    pub labels: HashMap<String, String>,
    /// When it was last started, in the engine's clock (changes on every start).
    pub started_at: String,
}

/// A network as listed by the engine.
#[derive(Debug, Clone)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    pub subnets: Vec<Subnet>,
    pub labels: HashMap<String, String>,
    /// An overlay made with Docker's `encrypted` option (IPsec between the hosts).
    pub encrypted: bool,
}

/// A local image by one of its names.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    /// `repo:tag`.
    pub name: String,
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    pub labels: HashMap<String, String>,
}

/// A running container's main process, as the engine reports it.
#[derive(Debug, Clone, Default)]
pub struct Running {
    /// Its PID on the container's host.
    pub pid: u32,
    /// The container's full ID.
    pub id: String,
    pub labels: HashMap<String, String>,
}

/// A container to create, in Docker's terms: what runs, where, as whom, with which limits. regbox's
/// recipes for its nodes, fault agents and relays each build one; the facade knows no recipe.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub image: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    /// `uid:gid` (None: the image's own user).
    pub user: Option<String>,
    pub labels: HashMap<String, String>,
    /// The network it is made on, with a static address or one of the network's choosing (None: no
    /// network at all).
    pub network: Option<(Net, Option<Ipv4Addr>)>,
    /// In the host's PID namespace.
    pub host_pid: bool,
    /// Capabilities kept; every other one is dropped, privileges cannot be gained and the root
    /// filesystem is read-only.
    pub cap_add: Vec<String>,
    /// Writable tmpfs mounts, `(path, options)`.
    pub tmpfs: Vec<(String, String)>,
    /// Memory limit in bytes (no swap on top).
    pub memory: Option<u64>,
    pub nano_cpus: Option<u64>,
    pub pids_limit: Option<i64>,
    /// A named volume and where it is mounted (the volume carries the container's labels).
    pub volume: Option<(String, String)>,
    /// A directory of the engine's host and where it is mounted.
    pub bind: Option<(String, String)>,
    /// Device cgroup rules (`b 7:* rwm`): the devices the container may use.
    pub device_rules: Vec<String>,
    /// Started again by the engine unless stopped on purpose.
    pub restart: bool,
    /// A TCP port published on an ephemeral port of one address of its engine's host.
    pub publish: Option<(Ipv4Addr, u16)>,
    /// Seconds `stop` waits before SIGKILL.
    pub stop_timeout: i64,
    /// The most the engine keeps of its output, e.g. `1m` (None: the engine's default, unbounded for
    /// its usual `json-file` driver).
    pub log_max_size: Option<String>,
}
