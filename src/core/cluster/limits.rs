//! The host limits that bite at hundreds of nodes, decided from readings: which ones refuse a
//! cluster before anything is created, and which only warn — each naming the exact setting to change.

use serde::Serialize;

/// Ports one Linux bridge takes (`BR_MAX_PORTS` is 1024, and the bridge itself holds one).
pub const BRIDGE_PORTS: usize = 1023;
/// What an idle lab node holds (measured: ≈ 15 MiB charged to its cgroup); a cluster whose nodes do
/// not fit at this size cannot come up.
pub const NODE_MIN_BYTES: u64 = 16 << 20;
/// What a busy node may hold (a mempool, a wallet, mining); less than this per node left is worth a
/// warning.
pub const NODE_BUSY_BYTES: u64 = 48 << 20;
/// File descriptors regbox holds per node (a pooled RPC connection, a log stream) plus some to spare.
const FDS_PER_NODE: u64 = 2;
const FDS_SPARE: u64 = 64;

/// What the host says, each reading absent when it could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostReadings {
    /// `net.ipv4.neigh.default.gc_thresh3`: the neighbour (ARP) table's hard limit, shared by every
    /// network namespace of the host.
    pub arp_limit: Option<u64>,
    /// `net.ipv4.neigh.default.gc_thresh2`: above it the kernel drops entries after 5 s.
    pub arp_soft_limit: Option<u64>,
    /// This process's soft limit of open files.
    pub open_files: Option<u64>,
    /// `MemAvailable` of `/proc/meminfo`, in bytes.
    pub memory_available: Option<u64>,
}

/// What is to be brought up: the nodes, their edges, and the most nodes any one network (bridge)
/// will hold.
#[derive(Debug, Clone, Copy)]
pub struct Demand {
    pub nodes: usize,
    pub edges: usize,
    pub largest_network: usize,
}

impl Demand {
    /// Neighbour (ARP) entries the cluster holds across the host: the host's for each node it
    /// calls, each node's for the gateway that calls it, and both ends' of every P2P session.
    pub fn neighbours(&self) -> u64 {
        2 * self.nodes as u64 + 2 * self.edges as u64 + 64
    }
}

/// One limit that bites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The cluster cannot come up as it is: refuse before creating anything.
    pub refuse: bool,
    pub message: String,
}

/// The limits `demand` runs into on a host that reads `host`.
pub fn check(demand: Demand, host: &HostReadings) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut say = |refuse: bool, message: String| out.push(Finding { refuse, message });
    if demand.largest_network > BRIDGE_PORTS {
        say(
            true,
            format!(
                "{} nodes on one network, but a Linux bridge takes at most {BRIDGE_PORTS} ports; use at most {BRIDGE_PORTS} nodes per cluster",
                demand.largest_network
            ),
        );
    }
    // Past the hard limit the kernel refuses new entries and addresses stop resolving (measured:
    // 500 nodes in a ring failed to wire at 1024); past the soft one it drops entries after 5 s.
    let neighbours = demand.neighbours();
    let advice = format!(
        "sysctl -w net.ipv4.neigh.default.gc_thresh3={} net.ipv4.neigh.default.gc_thresh2={}",
        neighbours.next_power_of_two() * 2,
        neighbours.next_power_of_two()
    );
    let over = |limit: Option<u64>| limit.filter(|&l| l < neighbours);
    if let Some(limit) = over(host.arp_limit) {
        say(
            true,
            format!(
                "{} nodes and {} edges need about {neighbours} neighbour (ARP) entries but net.ipv4.neigh.default.gc_thresh3 is {limit}; raise it ({advice})",
                demand.nodes, demand.edges
            ),
        );
    } else if let Some(limit) = over(host.arp_soft_limit) {
        say(
            false,
            format!(
                "{} nodes and {} edges need about {neighbours} neighbour (ARP) entries, above net.ipv4.neigh.default.gc_thresh2 ({limit}); if wiring times out, {advice}",
                demand.nodes, demand.edges
            ),
        );
    }
    let fds = demand.nodes as u64 * FDS_PER_NODE + FDS_SPARE;
    if let Some(limit) = host.open_files.filter(|&l| l < fds) {
        say(
            true,
            format!(
                "{} nodes need about {fds} open files but this process may open {limit}; raise the limit (ulimit -n {}) and run again",
                demand.nodes,
                fds.next_power_of_two()
            ),
        );
    }
    if let Some(available) = host.memory_available {
        let mib = |b: u64| b >> 20;
        let least = demand.nodes as u64 * NODE_MIN_BYTES;
        let busy = demand.nodes as u64 * NODE_BUSY_BYTES;
        if least > available {
            say(
                true,
                format!(
                    "{} nodes need at least {} MiB but {} MiB of memory is available; free memory or bring up fewer nodes",
                    demand.nodes,
                    mib(least),
                    mib(available)
                ),
            );
        } else if busy > available {
            say(
                false,
                format!(
                    "{} busy nodes may hold {} MiB but {} MiB of memory is available; an idle cluster fits, a busy one may be killed for memory",
                    demand.nodes,
                    mib(busy),
                    mib(available)
                ),
            );
        }
    }
    out
}

/// `/proc/meminfo`'s `MemAvailable`, in bytes.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `/proc/self/limits`' soft limit of open files (`unlimited` as `u64::MAX`).
pub fn parse_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    match soft {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roomy() -> HostReadings {
        HostReadings {
            arp_limit: Some(1024),
            arp_soft_limit: Some(512),
            open_files: Some(20000),
            memory_available: Some(40 << 30),
        }
    }

    /// A ring of `nodes`.
    fn demand(nodes: usize) -> Demand {
        Demand {
            nodes,
            edges: nodes,
            largest_network: nodes,
        }
    }

    #[test]
    fn a_roomy_host_takes_a_few_hundred_nodes() {
        assert_eq!(check(demand(100), &roomy()), vec![]);
        assert_eq!(check(demand(500), &HostReadings::default()), vec![]);
    }

    #[test]
    fn a_small_arp_table_refuses_or_warns_with_the_setting() {
        // 500 nodes in a ring: 2064 entries, over the hard limit.
        let found = check(demand(500), &roomy());
        assert_eq!(found.len(), 1);
        assert!(found[0].refuse);
        assert!(
            found[0]
                .message
                .contains("sysctl -w net.ipv4.neigh.default.gc_thresh3=8192"),
            "{found:?}"
        );
        // 200 nodes: 864, over the soft limit only.
        let found = check(demand(200), &roomy());
        assert!(
            !found[0].refuse && found[0].message.contains("gc_thresh2 (512)"),
            "{found:?}"
        );
    }

    #[test]
    fn too_many_nodes_on_one_bridge_are_refused() {
        let found = check(
            Demand {
                nodes: 1100,
                edges: 0,
                largest_network: 1100,
            },
            &HostReadings::default(),
        );
        assert!(
            found[0].refuse && found[0].message.contains("at most 1023"),
            "{found:?}"
        );
    }

    #[test]
    fn open_files_and_memory_refuse_or_warn() {
        let no_arp = || HostReadings {
            arp_limit: None,
            arp_soft_limit: None,
            ..roomy()
        };
        let host = HostReadings {
            open_files: Some(256),
            memory_available: Some(2 << 30),
            ..no_arp()
        };
        let found = check(demand(200), &host);
        assert!(
            found
                .iter()
                .any(|f| f.refuse && f.message.contains("ulimit -n 512")),
            "{found:?}"
        );
        let host = HostReadings {
            memory_available: Some(16 << 30),
            ..no_arp()
        };
        let found = check(demand(300), &host);
        assert_eq!(found, vec![]);
        let host = HostReadings {
            memory_available: Some(8 << 30),
            ..no_arp()
        };
        let found = check(demand(300), &host);
        assert!(
            !found[0].refuse && found[0].message.contains("busy"),
            "{found:?}"
        );
        let host = HostReadings {
            memory_available: Some(1 << 30),
            ..no_arp()
        };
        assert!(check(demand(300), &host)[0].refuse);
    }

    #[test]
    fn readings_parse_from_proc() {
        let meminfo =
            "MemTotal:       24567890 kB\nMemFree:         1000 kB\nMemAvailable:   21000000 kB\n";
        assert_eq!(parse_meminfo(meminfo), Some(21_000_000 * 1024));
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax cpu time              unlimited            unlimited            seconds   \nMax open files            20000                1048576              files     \n";
        assert_eq!(parse_open_files(limits), Some(20000));
        assert_eq!(
            parse_open_files("Max open files  unlimited unlimited files\n"),
            Some(u64::MAX)
        );
    }
}
