//! The cluster lock as data: who holds it (the labels of the engine's lock marker), how a holder reads
//! in a message, and whether a holder is gone — decided from what was observed, no I/O. One writer per
//! cluster; `engine::lock` enforces it with a container name the engine refuses to create twice.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

/// Role label value of a cluster's lock marker.
pub const ROLE_LOCK: &str = "lock";
/// The command holding the lock (`partition`, `up`, …).
pub const LABEL_LOCK_COMMAND: &str = "regbox.lock.command";
/// The holder's host name (for messages).
pub const LABEL_LOCK_HOST: &str = "regbox.lock.host";
/// The holder's boot id: a pid means something only on the same host since the same boot.
pub const LABEL_LOCK_BOOT: &str = "regbox.lock.boot";
pub const LABEL_LOCK_PID: &str = "regbox.lock.pid";
/// The holder process's start time (clock ticks after boot), so a reused pid is not taken for it.
pub const LABEL_LOCK_PID_START: &str = "regbox.lock.pid-start";
/// When the lock was taken, in Unix seconds (for messages only: hosts' clocks may differ).
pub const LABEL_LOCK_SINCE: &str = "regbox.lock.since";

/// A lock's holder, as its labels record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub command: String,
    pub host: String,
    pub boot: String,
    pub pid: u32,
    pub pid_start: u64,
    pub since: u64,
}

impl Holder {
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_LOCK_COMMAND.into(), self.command.clone()),
            (LABEL_LOCK_HOST.into(), self.host.clone()),
            (LABEL_LOCK_BOOT.into(), self.boot.clone()),
            (LABEL_LOCK_PID.into(), self.pid.to_string()),
            (LABEL_LOCK_PID_START.into(), self.pid_start.to_string()),
            (LABEL_LOCK_SINCE.into(), self.since.to_string()),
        ])
    }

    /// The holder recorded in `labels`; None when they are not a lock's (made by hand, or damaged).
    pub fn from_labels(labels: &HashMap<String, String>) -> Option<Holder> {
        let get = |k: &str| labels.get(k).cloned();
        Some(Holder {
            command: get(LABEL_LOCK_COMMAND)?,
            host: get(LABEL_LOCK_HOST)?,
            boot: get(LABEL_LOCK_BOOT)?,
            pid: get(LABEL_LOCK_PID)?.parse().ok()?,
            pid_start: get(LABEL_LOCK_PID_START)?.parse().ok()?,
            since: get(LABEL_LOCK_SINCE)?.parse().ok()?,
        })
    }

    /// `pid 1234 on host h, `partition`, since 12:03:05 UTC`
    pub fn describe(&self) -> String {
        format!(
            "pid {} on host {}, `{}`, since {}",
            self.pid,
            self.host,
            self.command,
            time_of_day(self.since)
        )
    }
}

/// The holder a lock's labels name, worded for a message (labels made by hand may name none).
pub fn holder_of(labels: &HashMap<String, String>) -> String {
    Holder::from_labels(labels).map_or_else(|| "an unreadable holder".into(), |h| h.describe())
}

/// `HH:MM:SS UTC` of a Unix time.
pub fn time_of_day(unix: u64) -> String {
    let s = unix % 86_400;
    format!("{:02}:{:02}:{:02} UTC", s / 3600, s / 60 % 60, s % 60)
}

/// Whether a lock's holder can still be acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// Gone, and why we know.
    Gone(String),
}

/// What a waiting writer saw of a lock.
#[derive(Debug, Clone)]
pub struct LockSeen<'a> {
    /// The holder its labels name (None: unreadable labels).
    pub holder: Option<&'a Holder>,
    /// This host's boot id.
    pub here_boot: &'a str,
    /// When the holder is on this host: its process's start time if a process with its pid runs
    /// (not a zombie), else None.
    pub process_start: Option<u64>,
    /// How long the waiter has seen no heartbeat (the lock's heartbeat value unchanged).
    pub silent_for: Duration,
}

/// A holder on this host is gone when its process is (the pid check needs no clock); a holder
/// elsewhere is gone after `stale_after` without a heartbeat.
pub fn liveness(seen: &LockSeen, stale_after: Duration) -> Liveness {
    if let Some(h) = seen.holder {
        if h.boot == seen.here_boot {
            return match seen.process_start {
                Some(start) if start == h.pid_start => Liveness::Alive,
                Some(_) => Liveness::Gone(format!("pid {} is now another process", h.pid)),
                None => Liveness::Gone(format!("process {} has exited", h.pid)),
            };
        }
    }
    if seen.silent_for >= stale_after {
        Liveness::Gone(format!("no heartbeat for {} s", seen.silent_for.as_secs()))
    } else {
        Liveness::Alive
    }
}

/// The start time of a running process from its `/proc/PID/stat` line; None for a zombie or a line
/// that cannot be read. The command name (field 2) may hold spaces and parentheses, so fields are
/// counted after its last `)`.
pub fn process_start(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (field 3) ... starttime (field 22).
    if matches!(fields.first(), Some(&"Z") | Some(&"X") | Some(&"x")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder() -> Holder {
        Holder {
            command: "partition".into(),
            host: "ci-7".into(),
            boot: "boot-a".into(),
            pid: 1234,
            pid_start: 555,
            since: 1_764_417_785,
        }
    }

    fn seen<'a>(h: &'a Holder, boot: &'a str, start: Option<u64>, silent: u64) -> LockSeen<'a> {
        LockSeen {
            holder: Some(h),
            here_boot: boot,
            process_start: start,
            silent_for: Duration::from_secs(silent),
        }
    }

    const STALE: Duration = Duration::from_secs(60);

    #[test]
    fn labels_round_trip_and_describe_names_the_holder() {
        let h = holder();
        assert_eq!(Holder::from_labels(&h.labels()), Some(h.clone()));
        assert_eq!(
            h.describe(),
            "pid 1234 on host ci-7, `partition`, since 12:03:05 UTC"
        );
        let mut partial = h.labels();
        partial.remove(LABEL_LOCK_PID);
        assert_eq!(Holder::from_labels(&partial), None);
    }

    #[test]
    fn a_holder_on_this_host_lives_exactly_as_long_as_its_process() {
        let h = holder();
        // Alive however long it has been silent: the pid check is authoritative here.
        assert_eq!(
            liveness(&seen(&h, "boot-a", Some(555), 3600), STALE),
            Liveness::Alive
        );
        assert_eq!(
            liveness(&seen(&h, "boot-a", None, 0), STALE),
            Liveness::Gone("process 1234 has exited".into())
        );
        assert_eq!(
            liveness(&seen(&h, "boot-a", Some(999), 0), STALE),
            Liveness::Gone("pid 1234 is now another process".into())
        );
    }

    #[test]
    fn a_holder_elsewhere_or_unreadable_is_gone_only_after_a_silent_bound() {
        let h = holder();
        // Another host (or this host after a reboot): the pid says nothing.
        assert_eq!(
            liveness(&seen(&h, "boot-b", None, 59), STALE),
            Liveness::Alive
        );
        assert_eq!(
            liveness(&seen(&h, "boot-b", None, 60), STALE),
            Liveness::Gone("no heartbeat for 60 s".into())
        );
        let unreadable = LockSeen {
            holder: None,
            here_boot: "boot-a",
            process_start: None,
            silent_for: Duration::from_secs(10),
        };
        assert_eq!(liveness(&unreadable, STALE), Liveness::Alive);
    }

    #[test]
    fn process_start_reads_field_22_and_refuses_zombies() {
        let stat = "1234 (regbox (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 4 0 98765 1000 200";
        assert_eq!(process_start(stat), Some(98765));
        let zombie =
            "1234 (regbox) Z 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 4 0 98765 0 0";
        assert_eq!(process_start(zombie), None);
        assert_eq!(process_start("garbage"), None);
    }
}
