//! What the host says about the limits that bite at hundreds of nodes (`/proc` readings), and the
//! verdict of `core::limits` on them before a cluster is brought up.

use crate::core::cluster::limits::{self, Demand, HostReadings};
use crate::engine::error::{Error, Result};

/// The host's readings; a file that cannot be read leaves its reading out.
pub fn readings() -> HostReadings {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    HostReadings {
        arp_limit: read("/proc/sys/net/ipv4/neigh/default/gc_thresh3")
            .and_then(|v| v.trim().parse().ok()),
        arp_soft_limit: read("/proc/sys/net/ipv4/neigh/default/gc_thresh2")
            .and_then(|v| v.trim().parse().ok()),
        open_files: read("/proc/self/limits").and_then(|t| limits::parse_open_files(&t)),
        memory_available: read("/proc/meminfo").and_then(|t| limits::parse_meminfo(&t)),
    }
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
