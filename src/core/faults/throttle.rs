//! Resource faults as data: the CPU and memory limits `throttle` puts on a node's container at run
//! time, their bounds, how they are worded, and how they lie over the manifest's declared
//! `resources:` (which stay the default `throttle --clear` returns to).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::core::cluster::manifest::{Resources, MAX_CPUS, MAX_MEMORY, MIN_MEMORY};

/// The fewest CPUs a throttle may leave a node: the engine's own floor (a CFS quota of 1 ms per
/// 100 ms period).
pub const MIN_CPUS: f64 = 0.01;

/// Why `io_rate` is refused. Checked on Docker 20.10 (API 1.41, cgroup v1, fuse-overlayfs): the update
/// call takes `BlkioDeviceReadBps`/`WriteBps` for the data volume's device and answers 200, yet the
/// container's recorded limits stay `[]` and its `blkio.throttle.*_bps_device` files stay empty (the
/// engine applies device rates only when it creates a container). And under cgroup v1 the kernel
/// rate-limits direct I/O only, not buffered writes (the kernel's blkio-controller documentation): the
/// flusher writes bitcoind's data back on no container's account.
pub const IO_RATE_REFUSED: &str = "`io_rate` cannot be applied at run time: the Docker engine's update \
     call leaves a running container's disk rates (BlkioDeviceReadBps/WriteBps) as they were at \
     creation, and under cgroup v1 the kernel does not rate-limit buffered writes (bitcoind's) at all; \
     throttle --cpus or --memory instead";

/// What a throttle limits; a field left out is the manifest's declared resource (or an earlier
/// throttle's). In JSON: `{"cpus": 0.05, "memory": 67108864}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// CPUs the node may use (0.05: 5 ms of CPU time in each 100 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory in bytes, swap included (the container gets no swap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// Disk bytes per second: always refused, see [`IO_RATE_REFUSED`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_rate: Option<u64>,
}

// Limits hold no NaN where they are compared: a soak draws them, and any other comes through
// `invalid` first.
impl Eq for Limits {}

impl Limits {
    /// Whether it limits nothing.
    pub fn is_empty(&self) -> bool {
        self.cpus.is_none() && self.memory.is_none() && self.io_rate.is_none()
    }

    /// Why these limits cannot be set, if they cannot (bounds that need no engine to check).
    pub fn invalid(&self) -> Option<String> {
        if let Some(c) = self.cpus {
            if !(MIN_CPUS..=MAX_CPUS).contains(&c) {
                return Some(format!(
                    "`cpus` {c} is out of range: at least {MIN_CPUS} and at most {MAX_CPUS} (and \
                     at most the CPUs of the node's host)"
                ));
            }
        }
        if let Some(m) = self.memory {
            if !(MIN_MEMORY..=MAX_MEMORY).contains(&m) {
                return Some(format!(
                    "`memory` {} is out of range: at least {} (below it bitcoind cannot run) and \
                     at most {}",
                    size(m),
                    size(MIN_MEMORY),
                    size(MAX_MEMORY)
                ));
            }
        }
        self.io_rate.map(|_| IO_RATE_REFUSED.to_string())
    }

    /// The CPU limit in billionths of a CPU, as the engine takes it.
    pub fn nano_cpus(&self) -> Option<u64> {
        self.cpus.map(|c| (c * 1e9).round() as u64)
    }

    /// These limits with `newer`'s fields over them: `throttle --memory` keeps an earlier `--cpus`.
    pub fn and(&self, newer: &Limits) -> Limits {
        Limits {
            cpus: newer.cpus.or(self.cpus),
            memory: newer.memory.or(self.memory),
            io_rate: newer.io_rate.or(self.io_rate),
        }
    }

    /// What a container of a node declared with `declared` runs with under these limits.
    pub fn over(&self, declared: Resources) -> Resources {
        Resources {
            memory: self.memory.unwrap_or(declared.memory),
            nano_cpus: self.nano_cpus().or(declared.nano_cpus),
        }
    }
}

impl fmt::Display for Limits {
    /// `cpus 0.05, memory 64 MiB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(c) = self.cpus {
            parts.push(format!("cpus {c}"));
        }
        if let Some(m) = self.memory {
            parts.push(format!("memory {}", size(m)));
        }
        if let Some(r) = self.io_rate {
            parts.push(format!("io-rate {}/s", size(r)));
        }
        f.write_str(&parts.join(", "))
    }
}

/// Bytes in the largest binary unit that divides them, else in MiB with two decimals.
pub fn size(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    if bytes < 1 << 20 {
        return format!("{bytes} B");
    }
    format!("{:.2} MiB", bytes as f64 / (1u64 << 20) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_have_bounds_and_io_rate_is_refused_saying_why() {
        let cpus = |c| Limits {
            cpus: Some(c),
            ..Limits::default()
        };
        assert_eq!(cpus(0.05).invalid(), None);
        assert!(cpus(0.0)
            .invalid()
            .unwrap()
            .contains("`cpus` 0 is out of range"));
        assert!(cpus(f64::NAN).invalid().is_some());
        assert!(cpus(2000.0).invalid().is_some());
        let memory = |m| Limits {
            memory: Some(m),
            ..Limits::default()
        };
        assert_eq!(memory(64 << 20).invalid(), None);
        assert_eq!(
            memory(1024).invalid().unwrap(),
            "`memory` 1 KiB is out of range: at least 32 MiB (below it bitcoind cannot run) and at \
             most 1 TiB"
        );
        let io = Limits {
            io_rate: Some(1 << 20),
            ..Limits::default()
        };
        assert!(io
            .invalid()
            .unwrap()
            .contains("cannot be applied at run time"));
    }

    #[test]
    fn a_throttle_lies_over_the_declared_resources_and_an_earlier_one() {
        let declared = Resources {
            memory: 512 << 20,
            nano_cpus: None,
        };
        let cpu = Limits {
            cpus: Some(0.05),
            ..Limits::default()
        };
        assert_eq!(
            cpu.over(declared),
            Resources {
                memory: 512 << 20,
                nano_cpus: Some(50_000_000)
            }
        );
        let both = cpu.and(&Limits {
            memory: Some(64 << 20),
            ..Limits::default()
        });
        assert_eq!(both.to_string(), "cpus 0.05, memory 64 MiB");
        assert_eq!(Limits::default().over(declared), declared);
        let json = serde_json::to_string(&both).unwrap();
        assert_eq!(json, r#"{"cpus":0.05,"memory":67108864}"#);
        assert!(serde_json::from_str::<Limits>(r#"{"cpu":1}"#).is_err());
    }
}
