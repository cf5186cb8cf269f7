//! What the host says about the limits that bite at hundreds of nodes (`/proc` readings), and the
//! verdict of `core::limits` on them before a cluster is brought up.

use crate::core::cluster::limits::{self, Demand, HostReadings, TaskLimit};
use crate::engine::error::{Error, Result};

/// The host's readings; a file that cannot be read leaves its reading out.
pub fn readings() -> HostReadings {
    let number = |path: &str| read(path).and_then(|v| v.trim().parse().ok());
    HostReadings {
        arp_limit: number("/proc/sys/net/ipv4/neigh/default/gc_thresh3"),
        arp_soft_limit: number("/proc/sys/net/ipv4/neigh/default/gc_thresh2"),
        open_files: read("/proc/self/limits").and_then(|t| limits::parse_open_files(&t)),
        memory_available: read("/proc/meminfo").and_then(|t| limits::parse_meminfo(&t)),
        pid_max: number("/proc/sys/kernel/pid_max"),
        threads_max: number("/proc/sys/kernel/threads-max"),
        tasks: read("/proc/loadavg").and_then(|t| limits::parse_loadavg_tasks(&t)),
        shim_cgroup: shim_cgroup(),
    }
}

/// The host's cores, as `-par=0` counts them.
pub fn cores() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The process limit of the cgroup the engine's container shims run in, if it has one: read from a
/// running `containerd-shim` (its name is cut to 15 characters in `comm`), else from `containerd`,
/// whose cgroup new shims start in.
fn shim_cgroup() -> Option<TaskLimit> {
    let mut containerd = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        match read(&format!("/proc/{pid}/comm")).as_deref().map(str::trim) {
            Some("containerd-shim") => return task_limit(pid),
            Some("containerd") => containerd = Some(pid.to_string()),
            _ => {}
        }
    }
    task_limit(&containerd?)
}

fn task_limit(pid: &str) -> Option<TaskLimit> {
    let dir = limits::pids_cgroup(&read(&format!("/proc/{pid}/cgroup"))?)?;
    let path = format!("/sys/fs/cgroup/{dir}");
    let max = limits::parse_pids_max(&read(&format!("{path}/pids.max"))?)?;
    let current = read(&format!("{path}/pids.current"))?.trim().parse().ok()?;
    Some(TaskLimit { path, max, current })
}

/// Warns of the limits `demand` may run into and refuses (before anything is created) when one
/// certainly stops it.
pub fn admit(demand: Demand) -> Result<()> {
    let findings = limits::check(demand, &readings());
    let mut refused = Vec::new();
    for f in findings {
        if f.refuse {
            refused.push(f.message);
        } else {
            tracing::warn!("{}", f.message);
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Error::HostLimits(refused))
    }
}
