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
/// bitcoind's threads besides its RPC workers and script-check threads, with regbox's lab settings:
/// main, scheduler, HTTP, socket, message and added-node loops (measured: 10 with `-rpcthreads=4
/// -par=1`, 23 with bitcoind's defaults on 2 cores).
const BITCOIND_BASE_THREADS: u64 = 6;
/// Tasks a node costs the host beside its bitcoind's threads: the container's init, and the engine's
/// `containerd-shim` of the container (measured: 11 to 14 threads each, idle).
pub const CONTAINER_TASKS: u64 = 1;
pub const SHIM_TASKS: u64 = 14;
/// Over this share of a task limit, `up` warns.
const TASKS_WARN_PERCENT: u64 = 90;

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
    /// `kernel.pid_max`: every thread takes a process id, so this bounds the host's tasks.
    pub pid_max: Option<u64>,
    /// `kernel.threads-max`: the host's tasks, at most.
    pub threads_max: Option<u64>,
    /// The host's tasks (threads) now (`/proc/loadavg`).
    pub tasks: Option<u64>,
    /// The process limit of the cgroup the engine's `containerd-shim`s run in (systemd's
    /// `TasksMax` of its service), when it has one.
    pub shim_cgroup: Option<TaskLimit>,
}

/// A cgroup's process limit (`pids.max`) and what it holds now (`pids.current`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskLimit {
    pub path: String,
    pub max: u64,
    pub current: u64,
}

/// What is to be brought up: the nodes, their edges, and the most nodes any one network (bridge)
/// will hold; of the nodes, those to be started (not running now) and their bitcoinds' threads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Demand {
    pub nodes: usize,
    pub edges: usize,
    pub largest_network: usize,
    pub starting: usize,
    /// The threads of the bitcoinds to be started, together (see [`bitcoind_threads`]).
    pub threads: u64,
    /// The most threads one of them runs.
    pub most_threads: u64,
}

impl Demand {
    /// Neighbour (ARP) entries the cluster holds across the host: the host's for each node it
    /// calls, each node's for the gateway that calls it, and both ends' of every P2P session.
    pub fn neighbours(&self) -> u64 {
        2 * self.nodes as u64 + 2 * self.edges as u64 + 64
    }

    /// Tasks the nodes to be started add to the host: their bitcoinds' threads, and per container
    /// its init and the engine's shim.
    pub fn tasks(&self) -> u64 {
        self.threads + self.starting as u64 * (CONTAINER_TASKS + SHIM_TASKS)
    }

    /// Counts `args` (the lab settings, then the node's own) among the nodes to be started on a host
    /// of `cores` cores.
    pub fn start(&mut self, args: &[String], cores: u64) {
        let threads = bitcoind_threads(args, cores);
        self.starting += 1;
        self.threads += threads;
        self.most_threads = self.most_threads.max(threads);
    }
}

/// The threads a bitcoind runs with `args` (the last occurrence of an option wins, as in bitcoind) on
/// a host of `cores` cores: the loops every node runs, its RPC workers (`-rpcthreads`, 16 by default)
/// and its script-check threads (`-par`: 0 is one per core less one, a negative leaves that many
/// cores free, a positive N is N − 1; at most 15). Indexes, ZeroMQ and the like add a thread or two
/// more; they are not counted.
pub fn bitcoind_threads(args: &[String], cores: u64) -> u64 {
    let last = |name: &str| {
        args.iter()
            .map(|a| crate::core::cluster::manifest::args::read(a))
            .filter(|r| r.name == name && !r.negated)
            .filter_map(|r| r.value.and_then(|v| v.parse::<i64>().ok()))
            .next_back()
    };
    let rpc = last("rpcthreads").unwrap_or(16).max(1) as u64;
    let cores = cores.max(1) as i64;
    let par = match last("par").unwrap_or(0) {
        0 => cores,
        p if p < 0 => (cores + p).max(1),
        p => p,
    };
    let script = (par.min(16) - 1).max(0) as u64;
    BITCOIND_BASE_THREADS + rpc + script
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
    tasks(demand, host, &mut say);
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

/// The task limits `demand` runs into: the kernel's (`pid_max`, `threads-max`) against the host's tasks
/// now, the cgroup of the engine's shims, and each node container's own (`PIDS_LIMIT`).
fn tasks(demand: Demand, host: &HostReadings, say: &mut impl FnMut(bool, String)) {
    if demand.starting == 0 {
        return;
    }
    let need = demand.tasks();
    let per_node = need.div_ceil(demand.starting as u64);
    let what = format!(
        "{} nodes to start need about {need} tasks ({per_node} each: their bitcoind's threads, the container's init and the engine's shim)",
        demand.starting
    );
    let near = |limit: u64, after: u64| after * 100 > limit * TASKS_WARN_PERCENT;
    let now = host.tasks.unwrap_or(0);
    let after = now + need;
    let raise = (after * 2).next_power_of_two();
    for (limit, setting, most) in [
        (host.pid_max, "kernel.pid_max", 4_194_304),
        (host.threads_max, "kernel.threads-max", u64::MAX),
    ] {
        let Some(limit) = limit else { continue };
        let advice = format!("sysctl -w {setting}={}", raise.min(most));
        if after > limit {
            say(
                true,
                format!(
                    "{what} and the host runs {now}, but {setting} is {limit}; raise it ({advice})"
                ),
            );
        } else if near(limit, after) {
            say(
                false,
                format!("{what} and the host runs {now}: {after} of {setting} {limit}; if nodes fail to start, {advice}"),
            );
        }
    }
    if let Some(cg) = &host.shim_cgroup {
        let shims = demand.starting as u64 * SHIM_TASKS;
        let after = cg.current + shims;
        let advice = "raise its limit (under systemd: `TasksMax=infinity` in the [Service] section of the containerd and docker services, then `systemctl daemon-reload` and restart them)";
        let told = format!(
            "the engine's container shims run in cgroup {} limited to {} tasks, {} in use, and {} nodes to start add about {shims}",
            cg.path, cg.max, cg.current, demand.starting
        );
        if after > cg.max {
            say(true, format!("{told}; {advice}"));
        } else if near(cg.max, after) {
            say(false, format!("{told}; if nodes fail to start, {advice}"));
        }
    }
    let container = demand.most_threads + CONTAINER_TASKS;
    if container > crate::core::cluster::blueprint::PIDS_LIMIT as u64 {
        say(
            true,
            format!(
                "a node's bitcoind would run {} threads, over the {} tasks its container may hold; lower its -rpcthreads or -par",
                demand.most_threads,
                crate::core::cluster::blueprint::PIDS_LIMIT
            ),
        );
    }
}

/// The host's tasks now: the total in `/proc/loadavg` (`0.52 0.58 0.59 3/812 12345`: 812).
pub fn parse_loadavg_tasks(text: &str) -> Option<u64> {
    text.split_whitespace()
        .nth(3)?
        .split_once('/')?
        .1
        .parse()
        .ok()
}

/// Where a process's `pids` cgroup is, from its `/proc/PID/cgroup`, under `/sys/fs/cgroup`: the v1
/// `pids` controller's (`pids/PATH`), else the unified hierarchy's (`PATH`).
pub fn pids_cgroup(text: &str) -> Option<String> {
    let mut unified = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "pids") {
            return Some(format!("pids{path}"));
        }
        if controllers.is_empty() {
            unified = Some(path.trim_start_matches('/').to_string());
        }
    }
    unified
}

/// A cgroup's `pids.max` (None for `max`: no limit).
pub fn parse_pids_max(text: &str) -> Option<u64> {
    text.trim().parse().ok()
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
            ..HostReadings::default()
        }
    }

    /// A ring of `nodes`, none of them running yet.
    fn demand(nodes: usize) -> Demand {
        let mut d = Demand {
            nodes,
            edges: nodes,
            largest_network: nodes,
            ..Demand::default()
        };
        let lab = ["-rpcthreads=4".to_string(), "-par=1".to_string()];
        for _ in 0..nodes {
            d.start(&lab, 2);
        }
        d
    }

    /// Threads as measured: 10 with the lab settings, 23 with bitcoind's defaults on 2 cores; the last
    /// occurrence of an option wins, `-par` counts cores.
    #[test]
    fn a_nodes_threads_follow_its_rpc_and_script_check_settings() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(bitcoind_threads(&args(&["-rpcthreads=4", "-par=1"]), 2), 10);
        assert_eq!(bitcoind_threads(&args(&[]), 2), 23);
        assert_eq!(
            bitcoind_threads(&args(&["-rpcthreads=4", "-par=1", "-rpcthreads=16"]), 2),
            22
        );
        assert_eq!(bitcoind_threads(&args(&["-par=0"]), 32), 6 + 16 + 15);
        assert_eq!(bitcoind_threads(&args(&["-par=-2"]), 8), 6 + 16 + 5);
        assert_eq!(bitcoind_threads(&args(&["-par=4"]), 2), 6 + 16 + 3);
    }

    /// 1000 nodes at 25 tasks each need 25,000: over `pid_max` 32,768 with 10,000 running, refused
    /// with the setting; near it, a warning; a roomy host says nothing. Nodes already running cost
    /// nothing more.
    #[test]
    fn tasks_over_pid_max_or_threads_max_refuse_with_the_setting() {
        let host = |pid_max, threads_max, tasks| HostReadings {
            pid_max: Some(pid_max),
            threads_max: Some(threads_max),
            tasks: Some(tasks),
            ..HostReadings::default()
        };
        let found = check(demand(1000), &host(32_768, 192_735, 10_000));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].refuse);
        assert!(
            found[0]
                .message
                .contains("1000 nodes to start need about 25000 tasks (25 each")
                && found[0]
                    .message
                    .contains("the host runs 10000, but kernel.pid_max is 32768")
                && found[0].message.contains("sysctl -w kernel.pid_max=131072"),
            "{found:?}"
        );
        let found = check(demand(1000), &host(4_194_304, 28_000, 4_000));
        assert!(
            found[0].refuse
                && found[0]
                    .message
                    .contains("sysctl -w kernel.threads-max=65536"),
            "{found:?}"
        );
        let found = check(demand(1000), &host(32_768, 192_735, 5_000));
        assert!(
            !found[0].refuse && found[0].message.contains("30000 of kernel.pid_max 32768"),
            "{found:?}"
        );
        assert_eq!(check(demand(1000), &host(131_072, 192_735, 5_000)), vec![]);
        let running = Demand {
            starting: 0,
            threads: 0,
            ..demand(1000)
        };
        assert_eq!(check(running, &host(32_768, 192_735, 30_000)), vec![]);
    }

    /// The engine's shims under a systemd `TasksMax` (15 % of `pid_max` by default): refused with what
    /// to set. A node whose threads overflow its container's own limit is refused too.
    #[test]
    fn the_shims_cgroup_and_a_containers_own_limit_refuse() {
        let host = HostReadings {
            shim_cgroup: Some(TaskLimit {
                path: "/sys/fs/cgroup/pids/system.slice/containerd.service".into(),
                max: 4915,
                current: 300,
            }),
            ..HostReadings::default()
        };
        let found = check(demand(400), &host);
        assert!(
            found[0].refuse
                && found[0].message.contains(
                    "limited to 4915 tasks, 300 in use, and 400 nodes to start add about 5600"
                )
                && found[0].message.contains("TasksMax=infinity"),
            "{found:?}"
        );
        assert_eq!(check(demand(100), &host), vec![]);
        let mut greedy = Demand::default();
        greedy.start(&["-rpcthreads=600".to_string()], 2);
        let found = check(greedy, &HostReadings::default());
        assert!(
            found[0].refuse
                && found[0]
                    .message
                    .contains("over the 512 tasks its container may hold"),
            "{found:?}"
        );
    }

    #[test]
    fn task_readings_parse_from_proc_and_sys() {
        assert_eq!(
            parse_loadavg_tasks("0.52 0.58 0.59 3/812 12345\n"),
            Some(812)
        );
        assert_eq!(parse_loadavg_tasks("garbage"), None);
        let v1 = "12:memory:/docker\n8:pids:/system.slice/containerd.service\n1:name=systemd:/x\n";
        assert_eq!(
            pids_cgroup(v1).as_deref(),
            Some("pids/system.slice/containerd.service")
        );
        let v2 = "0::/system.slice/docker.service\n";
        assert_eq!(
            pids_cgroup(v2).as_deref(),
            Some("system.slice/docker.service")
        );
        assert_eq!(parse_pids_max("max\n"), None);
        assert_eq!(parse_pids_max("4915\n"), Some(4915));
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
                ..Demand::default()
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
