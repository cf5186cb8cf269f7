//! Where everything of a cluster lives: Docker names, labels, subnets, static addresses and the bitcoind
//! command line of each node, computed from a `ClusterSpec` without any I/O.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use sha2::{Digest, Sha256};

use crate::core::cluster::manifest::{ClusterSpec, Resources};
use crate::core::cluster::subnet::{self, Subnet, POOL};
use crate::core::faults::clock::{Anchored, Drift};

/// Label every regbox resource carries; scripts find a cluster's resources by it.
pub const LABEL_CLUSTER: &str = "regbox.cluster";
/// Label naming the node a container or volume belongs to.
pub const LABEL_NODE: &str = "regbox.node";
/// Label holding the node's index in the manifest.
pub const LABEL_INDEX: &str = "regbox.index";
/// Label naming a resource's role: `control`, `data` or `segment` for networks, `meta` for the
/// metadata container.
pub const LABEL_ROLE: &str = "regbox.role";
/// Role of the metadata container: never started, its labels hold the manifest and the RPC password so
/// every later process can read the cluster back from Docker alone.
pub const ROLE_META: &str = "meta";
/// `regbox.role` of a cluster's fault agent.
pub const ROLE_AGENT: &str = "agent";
/// `regbox.role` of a multi-host cluster's RPC relay.
pub const ROLE_RELAY: &str = "relay";
/// `regbox.role` of a hold: a marker container (never started) that says a node was stopped, killed or
/// paused on purpose, so the operator leaves it so. Its `regbox.node` names the node, `regbox.fault`
/// the fault.
pub const ROLE_HOLD: &str = "hold";
/// Label on a hold naming the fault that holds the node.
pub const LABEL_FAULT: &str = "regbox.fault";
/// `regbox.role` of a throttle's record: a marker container (never started) whose `regbox.node` names
/// the node and whose [`LABEL_THROTTLE`] holds the limits `throttle` set on it, so `status`, a later
/// process and the operator (which makes a node's container again with them) know them.
pub const ROLE_THROTTLE: &str = "throttle";
/// Label on a throttle's record holding its limits as JSON (`core::faults::throttle::Limits`).
pub const LABEL_THROTTLE: &str = "regbox.throttle";
/// Label on a partition segment's network holding its segment id.
pub const LABEL_SEGMENT: &str = "regbox.segment";
/// Label on a partition segment's network holding the cut mode of the partition that made it.
pub const LABEL_MODE: &str = "regbox.mode";
/// Label holding a hash of everything a container was created from; a different hash means recreate.
pub const LABEL_CONFIG: &str = "regbox.config";
/// On a bounded data volume and the volume holding its file: the declared size in bytes.
pub const LABEL_DISK: &str = "regbox.disk";
/// The file a bounded data directory lives in, on its own volume (`disk_volume`).
pub const DISK_FILE: &str = "disk.img";
/// The file `disk --fill` writes into a bounded data directory (and empties to free it).
pub const FILL_FILE: &str = ".regbox-fill";
/// Label on the metadata container holding the resolved manifest as JSON.
pub const LABEL_SPEC: &str = "regbox.spec";
/// Label on the metadata container holding the cluster's RPC password (see README: Docker access is
/// root access).
pub const LABEL_RPC_PASSWORD: &str = "regbox.rpc-password";

/// RPC user every node accepts (through `-rpcauth`).
pub const RPC_USER: &str = "regbox";
/// bitcoind's regtest RPC port.
pub const RPC_PORT: u16 = 18443;
/// Where the fault agent records every node's plane: the cluster's agent volume is mounted there, and
/// outlives the agent's container (`down` removes it with the cluster).
pub const AGENT_STATE_DIR: &str = "/var/lib/regbox-agent";
/// The port the RPC relay (`regbox relay`, for clusters on overlay networks this machine cannot route
/// to) listens on.
pub const RELAY_PORT: u16 = 18400;
/// bitcoind's regtest P2P port.
pub const P2P_PORT: u16 = 18444;
/// Where a node's data directory is mounted.
pub const DATADIR: &str = "/data";
/// Repository of the node images regbox builds itself. They run bitcoind as [`NODE_USER`] and own
/// `/data` as that user; any other image runs as root (with no capability but overriding file
/// permissions), since regbox cannot know which user its datadir suits.
pub const NODE_IMAGE_REPO: &str = "regbox/bitcoind";
/// The unprivileged user of regbox's node images.
pub const NODE_USER: &str = "10001:10001";
/// Every node's environment. One malloc arena: glibc's default of one per thread (up to 8 per core)
/// keeps freed memory of bitcoind's two dozen threads apart; a lab node gains nothing from them.
pub const NODE_ENV: &[&str] = &["MALLOC_ARENA_MAX=1"];
/// Where regbox's node images carry libfaketime (preloaded into bitcoind for clock faults).
pub const FAKETIME_LIB: &str = "/usr/lib/regbox/libfaketime.so.1";
/// The file in a node's data directory its clock offset is read from, on every clock reading
/// (libfaketime's relative form, `+10800`; `core::faults::clock`). The root is read-only, so it lives
/// on the data volume.
pub const CLOCK_FILE: &str = ".regbox-clock";
/// The file beside it saying how the clock drifts (`core::faults::clock::Anchored`), which the node's
/// init turns into the clock file each time it starts bitcoind; empty when the clock does not drift.
pub const DRIFT_FILE: &str = ".regbox-clock.drift";
/// The environment of a node of regbox's own images: libfaketime, reading the clock file again at
/// the first reading in each new second of the host's clock (`core::faults::clock::in_force_at`), the
/// monotonic clock left alone (bitcoind's timers and timeouts keep real time).
fn clock_env() -> Vec<String> {
    vec![
        format!("LD_PRELOAD={FAKETIME_LIB}"),
        format!("FAKETIME_TIMESTAMP_FILE={DATADIR}/{CLOCK_FILE}"),
        // Not `FAKETIME_NO_CACHE=1`: reading the file at every clock reading is ≈ 100 opens a second
        // of an idle node (its socket and message loops read the clock several times a pass), and
        // cost ≈ 1 ms of CPU a second per idle node — half again what the node costs without it.
        "FAKETIME_CACHE_DURATION=0".into(),
        "FAKETIME_DONT_FAKE_MONOTONIC=1".into(),
    ]
}
/// regbox's init in its node images (`images/init/init.rs`): a node's container made from an image
/// that carries it (label `regbox.init`) runs it first, with bitcoind as its child, so that `reset`
/// and snapshots restart bitcoind without the engine starting the container again.
pub const INIT_PATH: &str = "/usr/lib/regbox/init";
/// Label on a node's container whose first process is [`INIT_PATH`].
pub const LABEL_INIT: &str = "regbox.init";
/// The request file the init reads on `SIGUSR1` (`core::cluster::init`), in the data directory.
pub const INIT_REQUEST_FILE: &str = ".regbox-init";
/// The file the init answers a request in.
pub const INIT_DONE_FILE: &str = ".regbox-init.done";
/// The port the init of a node of regbox's images listens on for a fresh chain (`images/init`).
pub const INIT_PORT: u16 = 18401;
/// The file the init writes when it starts bitcoind: the host's clock then, in Unix milliseconds
/// (when its libfaketime starts measuring a drifting clock's rate).
pub const INIT_STARTED_FILE: &str = ".regbox-init.started";
/// Where the init keeps a node's snapshots, one directory each, in the data directory.
pub const SNAPSHOTS_DIR: &str = ".regbox-snapshots";
/// Processes (threads included) a node container may hold; bitcoind runs a few dozen threads.
pub const PIDS_LIMIT: i64 = 512;

/// The lab settings that size a node's threads: 4 RPC workers instead of 16, and no script-check
/// threads (`-par=0` starts one per core less one, up to 15) — 23 threads a node → 10 on 2 cores,
/// which is what bounds a host's node count (`kernel.pid_max`), with RPC and block relay no slower
/// (measured in docs/src/scale.md). Requests beyond 4 at once queue (`-rpcworkqueue`, 64).
pub const LAB_THREADS: &[&str] = &["-rpcthreads=4", "-par=1"];

/// A Docker image tag made of `text`: characters a tag cannot hold become `-`, a leading `.` or `-`
/// gives way to `_`, and it is cut at Docker's 128 characters.
pub fn image_tag(text: &str) -> String {
    let mut tag: String = text
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '.' | '-' => c,
            _ => '-',
        })
        .take(128)
        .collect();
    if !tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        tag.replace_range(..tag.chars().next().map_or(0, char::len_utf8), "_");
    }
    tag
}

/// Whether `tag` is one Docker accepts: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_image_tag(tag: &str) -> bool {
    !tag.is_empty() && image_tag(tag) == tag
}

/// First host offset handed to nodes; below it sit the gateway and room for future fixed services.
const NODE_OFFSET: u32 = 10;

/// Docker name of a cluster's control network.
pub fn control_network(cluster: &str) -> String {
    format!("regbox-{cluster}-ctl")
}

/// Docker name of a cluster's data (P2P) network.
pub fn data_network(cluster: &str) -> String {
    format!("regbox-{cluster}-data")
}

/// Docker name of partition segment `segment`'s network (segment 0 is the data network).
pub fn segment_network(cluster: &str, segment: usize) -> String {
    if segment == 0 {
        data_network(cluster)
    } else {
        format!("regbox-{cluster}-seg{segment}")
    }
}

/// Docker name of a cluster's metadata container.
pub fn meta_container(cluster: &str) -> String {
    format!("regbox-{cluster}-meta")
}

/// Docker name of a cluster's fault agent (a dot, which no node name has, so no node can take it).
pub fn agent_container(cluster: &str) -> String {
    format!("regbox-{cluster}.agent")
}

/// Docker name of the fault agent on host `host` of a cluster across hosts.
pub fn host_agent_container(cluster: &str, host: &str) -> String {
    format!("regbox-{cluster}.agent.{host}")
}

/// Docker name of a multi-host cluster's RPC relay.
pub fn relay_container(cluster: &str) -> String {
    format!("regbox-{cluster}.relay")
}

/// Docker name of the hold on a node (see [`ROLE_HOLD`]).
pub fn hold_container(cluster: &str, node: &str) -> String {
    format!("regbox-{cluster}.hold.{node}")
}

/// Docker name of the record of a throttle on a node (see [`ROLE_THROTTLE`]).
pub fn throttle_container(cluster: &str, node: &str) -> String {
    format!("regbox-{cluster}.throttle.{node}")
}

/// The id of the Docker container this process runs in, read from its `/proc/self/mountinfo`: Docker
/// bind-mounts the container's `hostname`, `hosts` and `resolv.conf` from
/// `…/containers/<64 hex digits>/` onto `/etc/…`. None outside a container — where the host's own
/// table may list other containers' directories (their `shm` mounts), on other mount points.
pub fn container_id_in_mountinfo(mountinfo: &str) -> Option<String> {
    const OWN: [&str; 3] = ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];
    mountinfo.lines().find_map(|line| {
        // ID PARENT MAJOR:MINOR ROOT MOUNT-POINT …
        let mut fields = line.split_whitespace().skip(3);
        let (root, point) = (fields.next()?, fields.next()?);
        if !OWN.contains(&point) {
            return None;
        }
        let (_, rest) = root.split_once("/containers/")?;
        let id: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
        (id.len() == 64 && rest[64..].starts_with('/')).then_some(id)
    })
}

/// Docker name of a node's container.
pub fn container_name(cluster: &str, node: &str) -> String {
    format!("regbox-{cluster}-{node}")
}

/// Docker name of a node's data volume.
/// The volume holding the file of a bounded data volume `volume`.
pub fn disk_volume(volume: &str) -> String {
    format!("{volume}.disk")
}

pub fn volume_name(cluster: &str, node: &str) -> String {
    format!("regbox-{cluster}-{node}-data")
}

/// The Docker label filter that finds one cluster's resources, or every regbox resource.
pub fn cluster_filter(cluster: Option<&str>) -> String {
    match cluster {
        Some(name) => format!("{LABEL_CLUSTER}={name}"),
        None => LABEL_CLUSTER.to_string(),
    }
}

/// Labels of a cluster-wide resource.
pub fn cluster_labels(cluster: &str) -> HashMap<String, String> {
    HashMap::from([(LABEL_CLUSTER.to_string(), cluster.to_string())])
}

/// The static address of node `index` on a network with subnet `net`.
pub fn node_address(net: Subnet, index: usize) -> Ipv4Addr {
    net.host(NODE_OFFSET + index as u32)
}

/// Node `index`'s static address on every network regbox creates, as `address/mask` for a packet
/// filter: a rule on it holds whichever segments the node is moved to.
pub fn node_everywhere(index: usize) -> String {
    let (addr, mask) = subnet::everywhere(NODE_OFFSET + index as u32);
    format!("{addr}/{mask}")
}

/// The node whose static address, on any of regbox's networks, is `ip`.
pub fn node_anywhere(ip: Ipv4Addr) -> Option<usize> {
    subnet::offset_in_pool(ip)?
        .checked_sub(NODE_OFFSET)
        .map(|i| i as usize)
}

/// The node whose static address on `net` is `ip`, if any (the inverse of `node_address`).
pub fn node_at(net: Subnet, ip: Ipv4Addr) -> Option<usize> {
    let first = u32::from(node_address(net, 0));
    let offset = u32::from(ip).checked_sub(first)?;
    (net.overlaps(&Subnet::new(ip, 32))).then_some(offset as usize)
}

/// The token the cluster's RPC relay requires of every CONNECT (`Proxy-Authorization`), derived from
/// the cluster's RPC password so that whoever may call the nodes may reach them, and nobody else; the
/// password itself is never given to the relay.
pub fn relay_token(password: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<Sha256>::new_from_slice(password.as_bytes()).expect("hmac takes any key length");
    mac.update(b"regbox relay");
    hex::encode(mac.finalize().into_bytes())
}

/// The token the init of each node requires of a request over TCP (its environment's
/// `REGBOX_INIT_TOKEN`), derived from the cluster's RPC password as the relay's is.
pub fn init_token(password: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<Sha256>::new_from_slice(password.as_bytes()).expect("hmac takes any key length");
    mac.update(b"regbox init");
    hex::encode(mac.finalize().into_bytes())
}

/// `-rpcauth` value for `password`: bitcoind stores only the salted HMAC, so the password itself never
/// appears in a container's command line.
pub fn rpcauth(salt: &[u8], password: &str) -> String {
    use hmac::{Hmac, Mac};
    let salt = hex::encode(salt);
    let mut mac =
        Hmac::<Sha256>::new_from_slice(salt.as_bytes()).expect("hmac takes any key length");
    mac.update(password.as_bytes());
    format!(
        "{RPC_USER}:{salt}${}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Everything a node's container is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLayout {
    pub index: usize,
    pub name: String,
    pub container: String,
    pub volume: String,
    pub image: String,
    pub control_ip: Ipv4Addr,
    pub data_ip: Ipv4Addr,
    /// bitcoind's arguments, lab settings first, the manifest's own last.
    pub args: Vec<String>,
    /// bitcoind's environment.
    pub env: Vec<String>,
    pub resources: Resources,
    /// The clock offset the manifest declares, in seconds (0: the host's clock).
    pub clock: i64,
    /// The clock's declared drift, from when the node's clock files are written.
    pub drift: Drift,
    /// The size of its bounded data directory, when it has one.
    pub disk: Option<u64>,
    /// The image is not one of regbox's own: bitcoind runs as root inside it (see `NODE_IMAGE_REPO`).
    pub as_root: bool,
    pub labels: HashMap<String, String>,
}

/// The networks and credentials a cluster's nodes are laid out on.
#[derive(Debug, Clone)]
pub struct Networks {
    pub control: Subnet,
    pub data: Subnet,
    /// The `-rpcauth` line (salted hash), never the password.
    pub rpcauth: String,
    /// The token the nodes' inits require ([`init_token`]); empty: they take no request over TCP.
    pub init_token: String,
}

/// Lays every node of `spec` out on `nets`.
pub fn nodes(spec: &ClusterSpec, nets: &Networks) -> Vec<NodeLayout> {
    spec.nodes
        .iter()
        .enumerate()
        .map(|(index, node)| {
            let control_ip = node_address(nets.control, index);
            let data_ip = node_address(nets.data, index);
            let mut args: Vec<String> = [
                "-regtest".to_string(),
                "-printtoconsole".to_string(),
                // Log times in microseconds: `measure propagation` reads arrivals from the log.
                "-logtimemicros".to_string(),
                format!("-datadir={DATADIR}"),
                "-server=1".to_string(),
                // connect=0 keeps gossiped addresses from becoming unplanned peers, but also switches
                // listening off: listen=1 turns it back on.
                "-connect=0".to_string(),
                "-listen=1".to_string(),
                format!("-bind=0.0.0.0:{P2P_PORT}"),
                "-dnsseed=0".to_string(),
                "-fixedseeds=0".to_string(),
                "-discover=0".to_string(),
                "-listenonion=0".to_string(),
                "-natpmp=0".to_string(),
                format!("-uacomment={}", node.name),
                // RPC answers on the control network only, which partitions never touch.
                format!("-rpcbind={control_ip}:{RPC_PORT}"),
                format!("-rpcallowip={}", nets.control),
                format!("-rpcauth={}", nets.rpcauth),
                // Peers inside the pool skip the inbound transaction trickle, so mempools sync fast.
                format!("-whitelist=noban@{POOL}"),
                // The signature and script caches take 32 MiB up front, more than the rest of an
                // idle lab node; 1 MiB is plenty for regtest's few transactions.
                "-maxsigcachesize=1".to_string(),
            ]
            .into();
            args.extend(LAB_THREADS.iter().map(|a| a.to_string()));
            if node.wallet {
                // Regtest has no fee estimates; without a fallback fee every send fails.
                args.push("-fallbackfee=0.0002".to_string());
            }
            args.extend(node.args.iter().cloned());
            let container = container_name(&spec.name, &node.name);
            let mut labels = cluster_labels(&spec.name);
            labels.insert(LABEL_NODE.into(), node.name.clone());
            labels.insert(LABEL_INDEX.into(), index.to_string());
            let as_root = !node.image.starts_with(&format!("{NODE_IMAGE_REPO}:"));
            let mut env: Vec<String> = NODE_ENV.iter().map(|e| e.to_string()).collect();
            if !as_root {
                env.extend(clock_env());
                env.push(Anchored::declared_env(node.clock, node.drift));
                if !nets.init_token.is_empty() {
                    env.push(format!("REGBOX_INIT_TOKEN={}", nets.init_token));
                }
            }
            let mut layout = NodeLayout {
                index,
                name: node.name.clone(),
                volume: volume_name(&spec.name, &node.name),
                container,
                image: node.image.clone(),
                control_ip,
                data_ip,
                args,
                env,
                resources: node.resources,
                clock: node.clock,
                drift: node.drift,
                disk: node.disk,
                as_root,
                labels,
            };
            layout
                .labels
                .insert(LABEL_CONFIG.into(), layout.config_hash());
            layout
        })
        .collect()
}

impl NodeLayout {
    /// A short hash of what the container is made from; `up` recreates a container whose hash differs.
    pub fn config_hash(&self) -> String {
        let mut h = Sha256::new();
        let mut limits = format!(
            "memory={} cpus={:?} root={}",
            self.resources.memory, self.resources.nano_cpus, self.as_root
        );
        // Said only when set, so that a container made before they existed keeps its hash.
        if self.clock != 0 {
            limits += &format!(" clock={}", self.clock);
        }
        if !self.drift.is_none() {
            limits += &format!(" drift={}", self.drift);
        }
        if let Some(disk) = self.disk {
            limits += &format!(" disk={disk}");
        }
        for part in [
            &self.image,
            &self.control_ip.to_string(),
            &self.data_ip.to_string(),
            &limits,
        ]
        .into_iter()
        .chain(&self.args)
        .chain(&self.env)
        {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex::encode(&h.finalize()[..8])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_container_id_is_found_in_mountinfo_and_nothing_outside_one() {
        let id = "3f1c".repeat(16);
        let inside = format!(
            "812 790 0:45 / / rw,relatime - overlay overlay rw\n\
             830 812 254:1 /var/lib/docker/containers/{id}/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda rw\n"
        );
        assert_eq!(container_id_in_mountinfo(&inside), Some(id.clone()));
        let host = "25 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n";
        assert_eq!(container_id_in_mountinfo(host), None);
        // On the host, another container's shm is mounted in its directory: not this process's.
        let other = format!(
            "{host}901 25 0:52 / /var/lib/docker/containers/{id}/mounts/shm rw - tmpfs shm rw\n"
        );
        assert_eq!(container_id_in_mountinfo(&other), None);
        assert_eq!(
            container_id_in_mountinfo("1 2 3:4 /x/containers/abc/y /y rw\n"),
            None
        );
    }

    #[test]
    fn image_tags_keep_what_docker_accepts_and_replace_the_rest() {
        assert_eq!(
            super::image_tag("local-knots-29.4.3.knots20260508"),
            "local-knots-29.4.3.knots20260508"
        );
        assert_eq!(
            super::image_tag("local-core-27.99.0+dirty/x"),
            "local-core-27.99.0-dirty-x"
        );
        assert_eq!(super::image_tag(".hidden"), "_hidden");
        assert_eq!(super::image_tag(&"a".repeat(200)).len(), 128);
        assert!(super::is_image_tag("core-27.0"));
        for bad in ["", "-x", "a:b", "a b", "é"] {
            assert!(!super::is_image_tag(bad), "{bad}");
        }
    }

    use super::*;

    fn net(s: &str) -> Subnet {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_stay_below_the_dynamic_range() {
        let s = net("10.140.16.0/20");
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 140, 16, 1));
        assert_eq!(s.dynamic_range(), net("10.140.31.0/24"));
        let last = node_address(s, 999);
        assert!(!s.dynamic_range().overlaps(&Subnet::new(last, 32)));
        assert!(s.overlaps(&Subnet::new(last, 32)));
    }

    #[test]
    fn rpcauth_matches_bitcoin_core_rpcauth_py() {
        // Same construction as share/rpcauth/rpcauth.py: HMAC-SHA256 of the password keyed by the hex
        // salt. Expected value computed independently with Python's hmac module.
        assert_eq!(
            rpcauth(&[0u8; 16], "pw"),
            "regbox:00000000000000000000000000000000$bed6749a32d32f5358aea3673fdb946047b250ebbb393f2ced952a6596197999"
        );
    }
}
