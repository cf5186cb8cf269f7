//! One writer per cluster: a lock that lives in the engine itself — a container named
//! `regbox-<cluster>.lock`, which the engine refuses to create twice — so every regbox process on every
//! host that uses this engine sees it. Its labels name the holder; a holder that is gone is taken over.
//! While held, the lock container is started every few seconds (it runs `bitcoind -version` and
//! exits; a run that has not exited is killed first): its start time is the heartbeat a waiter on
//! another host watches. The first beat comes after one interval, not at once: a waiter counts the
//! silence from when it first sees the lock, and most commands are over before then, so the engine
//! does not start a container beside the nodes a short command starts. The start time moves whether
//! or not the image's `bitcoind` can run as the marker's user, since the marker's init is what starts;
//! a beat that fails anyway is a warning. A waiter on the holder's own host could ask the kernel
//! whether the holder's process lives, one on another host cannot: the start time is the one thing
//! every host reads alike from the engine. Since that means running the cluster's
//! first node image (which may be any image) every few seconds, the marker is made locked down
//! (`containers::marker_spec`): no network, every capability dropped, no privilege gain, a read-only
//! root, user `nobody`, small memory, process and CPU limits.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::core::cluster::blueprint::{self, LABEL_ROLE};
use crate::core::cluster::lock::{self, Holder, Liveness, LockSeen, ROLE_LOCK};
use crate::core::names::error_chain;
use crate::engine::docker::Docker;
use crate::engine::error::{Error, Result, Timeout};

/// How often a holder beats.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// A holder on another host (or unreadable) is gone after this long without a heartbeat.
const STALE_AFTER: Duration = Duration::from_secs(30);
/// How often a waiter looks again.
const POLL: Duration = Duration::from_millis(100);

/// How long a writer waits for another one unless told otherwise (`--wait-lock`, `REGBOX_WAIT_LOCK`
/// set `Exec::lock_wait` and `UpOptions::lock_wait`).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(120);

/// A held lock. `release` removes it; dropping it without that removes it too (blocking briefly).
pub struct LockGuard {
    docker: Docker,
    id: String,
    cluster: String,
    heartbeat: Option<JoinHandle<()>>,
}

impl LockGuard {
    /// Gives the lock back.
    pub async fn release(mut self) {
        self.stop_heartbeat();
        remove(&self.docker, &self.id, &self.cluster).await;
        self.id.clear();
    }

    fn stop_heartbeat(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop_heartbeat();
        if self.id.is_empty() {
            return;
        }
        let (docker, id, cluster) = (self.docker.clone(), self.id.clone(), self.cluster.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(remove(&docker, &id, &cluster));
            Some(())
        })
        .join();
    }
}

async fn remove(docker: &Docker, id: &str, cluster: &str) {
    if let Err(e) = docker.remove_container(id).await {
        tracing::warn!(
            "could not release the lock of cluster `{cluster}` ({}); the next command takes it over once this process has exited",
            error_chain(&e)
        );
    }
}

/// Docker name of a cluster's lock (a `.` no node container name has in that place).
pub fn lock_name(cluster: &str) -> String {
    format!("regbox-{cluster}.lock")
}

/// This process as a lock holder.
fn me(command: &str) -> Holder {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let pid = std::process::id();
    Holder {
        command: command.to_string(),
        host: read("/proc/sys/kernel/hostname"),
        boot: read("/proc/sys/kernel/random/boot_id"),
        pid,
        pid_start: lock::process_start(&read(&format!("/proc/{pid}/stat"))).unwrap_or(0),
        since: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    }
}

/// Takes cluster `cluster`'s lock for `command`, creating the marker from `image` (any image with
/// `bitcoind` on its PATH: the heartbeat runs `bitcoind -version`). Waits for another holder up to
/// `bound` (zero: fails at once), saying so once; takes over a holder that is gone, logging it.
pub async fn acquire(
    docker: &Docker,
    cluster: &str,
    image: &str,
    command: &str,
    bound: Duration,
) -> Result<LockGuard> {
    let name = lock_name(cluster);
    let me = me(command);
    let mut labels = blueprint::cluster_labels(cluster);
    labels.insert(LABEL_ROLE.into(), ROLE_LOCK.into());
    labels.extend(me.labels());
    let started = Instant::now();
    let mut told = false;
    // The heartbeat value last seen on the current lock, and since when it has not changed.
    let mut beat: Option<(String, String, Instant)> = None;
    loop {
        match docker
            .create_marker(&name, image, &["bitcoind", "-version"], labels.clone())
            .await
        {
            Ok(id) => {
                tracing::debug!("took the lock of cluster `{cluster}` for `{command}`");
                let heartbeat = tokio::spawn(heartbeat(docker.clone(), id.clone()));
                return Ok(LockGuard {
                    docker: docker.clone(),
                    id,
                    cluster: cluster.to_string(),
                    heartbeat: Some(heartbeat),
                });
            }
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(e.into()),
        }
        let Some(held) = docker.inspect_marker(&name).await? else {
            continue; // released meanwhile
        };
        let now = Instant::now();
        let since = match &beat {
            Some((id, value, at)) if *id == held.id && *value == held.started_at => *at,
            _ => {
                beat = Some((held.id.clone(), held.started_at.clone(), now));
                now
            }
        };
        let holder = Holder::from_labels(&held.labels);
        let process_start = holder
            .as_ref()
            .filter(|h| h.boot == me.boot)
            .and_then(|h| std::fs::read_to_string(format!("/proc/{}/stat", h.pid)).ok())
            .and_then(|stat| lock::process_start(&stat));
        let seen = LockSeen {
            holder: holder.as_ref(),
            here_boot: &me.boot,
            process_start,
            silent_for: now - since,
        };
        let who = lock::holder_of(&held.labels);
        match lock::liveness(&seen, STALE_AFTER) {
            Liveness::Gone(why) => {
                tracing::warn!("took over the lock of cluster `{cluster}` from {who}: {why}");
                // By id: if another waiter took it over first, this removes nothing of theirs.
                docker.remove_container(&held.id).await?;
                beat = None;
                continue;
            }
            Liveness::Alive => {}
        }
        if started.elapsed() >= bound {
            return Err(Error::Locked {
                cluster: cluster.to_string(),
                holder: who,
                waited: bound,
            });
        }
        if !told {
            tracing::warn!(
                "cluster `{cluster}` is being changed by another regbox ({who}); waiting up to {} s for it (--wait-lock)",
                bound.as_secs()
            );
            told = true;
        }
        tokio::time::sleep(POLL.min(bound.saturating_sub(started.elapsed()))).await;
    }
}

/// `acquire` through this host's engine (`DOCKER_HOST`, or the local socket): for a caller that holds
/// no engine handle of its own (the integration tests take a lock on an image of their own this way).
pub async fn acquire_here(
    cluster: &str,
    image: &str,
    command: &str,
    bound: Duration,
) -> Result<LockGuard> {
    let docker = Docker::connect().await?;
    acquire(&docker, cluster, image, command, bound).await
}

/// Starts the lock container every `HEARTBEAT`, the first time one `HEARTBEAT` after the lock was
/// taken: each start moves its start time, which waiters watch. A beat that fails is a warning (the first of a row of them, and the recovery):
/// while the start time stands still, a waiter on another host takes this live lock over after
/// `STALE_AFTER`.
async fn heartbeat(docker: Docker, id: String) {
    let mut failing = false;
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        match beat(&docker, &id).await {
            Ok(()) if failing => {
                tracing::warn!("the lock's heartbeat beats again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                tracing::warn!(
                    "the lock's heartbeat failed ({}); while it fails, a regbox on another host takes this lock over after {} s",
                    error_chain(&e),
                    STALE_AFTER.as_secs()
                );
                failing = true;
            }
            Err(e) => tracing::debug!("lock heartbeat: {}", error_chain(&e)),
        }
    }
}

/// One heartbeat: the marker started anew. A run that has not ended — a `bitcoind` that does not
/// exit on `-version`, or one slowed past a beat — is killed first: the engine answers a start of a
/// running container with "already started" and leaves its start time as it was, so the beat would
/// be lost without a word. (Whether the image's `bitcoind` can run at all does not matter: the
/// marker's init starts, and so the start time moves, even when the program it runs cannot.)
async fn beat(docker: &Docker, id: &str) -> Result<()> {
    if docker.is_running(id).await? {
        docker.kill(id).await?;
        let deadline = Instant::now() + HEARTBEAT;
        while docker.is_running(id).await? {
            if Instant::now() >= deadline {
                return Err(Timeout {
                    what: "the lock container to stop after a kill".into(),
                    timeout: HEARTBEAT,
                    last: "still running".into(),
                }
                .into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    docker.start(id).await?;
    Ok(())
}
