//! Clock faults on the engine: each node's clock file (on its data volume, read by libfaketime in its
//! bitcoind at most once a second) and drift file (which the node's init turns into the clock file
//! at each start of bitcoind), written with the declared clock when its container is made and with
//! the `clock` verb's at run time, and read back for `status`.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::core::cluster::blueprint::{self, NodeLayout, INIT_STARTED_FILE, LABEL_INIT};
use crate::core::cluster::init::Action;
use crate::core::faults::clock::{self, Anchored, Drift};
use crate::core::verb::{Clocks, NodeClock};
use futures::{StreamExt, TryStreamExt};

use crate::core::cluster::plan::State;
use crate::engine::cluster::Cluster;
use crate::engine::docker::ContainerInfo;
use crate::engine::error::{Error, Result};
use crate::engine::image::{self, LABEL_CLOCK};
use crate::engine::reset::{by_name, new_request, next_file};
use crate::engine::wait::{self, wait_until, Check};

/// Clock files written at once.
const CONCURRENCY: usize = 16;

impl Cluster {
    /// Sets the clocks of `nodes` (every node for `None`) to `offset` seconds from the host's (0: the
    /// host's clock) from now on, drifting by `drift` from then on; left out, either is the node's own
    /// (its offset now, its drift). In force as soon as it returns: it returns once every reading of
    /// the nodes' clocks has the new one (`clock::in_force_at`, at most a second after the files are
    /// written). Refused, before any clock changes, for a node whose image carries no libfaketime, and
    /// a drift for a node whose container runs no init of regbox's.
    pub(crate) async fn clock_locked(
        &self,
        nodes: Option<&[String]>,
        offset: Option<i64>,
        drift: Option<Drift>,
        timeout: Duration,
    ) -> Result<Clocks> {
        let ids = match nodes {
            Some(names) => names
                .iter()
                .map(|n| self.node(n).map(|n| n.layout.index))
                .collect::<Result<Vec<_>>>()?,
            None => (0..self.nodes.len()).collect(),
        };
        self.check_clocks(&ids).await?;
        let listed = self.containers().await?;
        let by_name = by_name(&listed);
        let container = |i: usize| by_name.get(self.nodes[i].layout.container.as_str());
        // A drift needs this regbox's init (older ones know no drift file).
        let drifts = |i: usize| {
            let init = container(i).and_then(|c| c.labels.get(LABEL_INIT));
            init.is_some_and(|v| v == image::init_hash())
        };
        let running = |i: usize| container(i).is_some_and(|c| c.state == State::Running);
        if let Some(&i) = ids
            .iter()
            .find(|&&i| drift.is_some_and(|d| !d.is_none()) && !drifts(i))
        {
            return Err(Error::BadRequest(format!(
                "node {}'s container runs no init of this regbox's, so its clock cannot drift (its image is not one of regbox's, or was built by another regbox; `regbox image build` makes it again, and a cluster brought up anew, `down` then `up`, runs it)",
                self.nodes[i].name()
            )));
        }
        // Each node's clock now, all nodes asked at once.
        let now_ms = unix_ms();
        let before: Vec<Anchored> = futures::stream::iter(&ids)
            .map(|&i| async move {
                let old = self.read_clock(&self.nodes[i].layout).await;
                old.unwrap_or(Anchored::host(now_ms))
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let set: Vec<Anchored> = (before.iter())
            .map(|old| Anchored {
                anchor_ms: now_ms,
                offset: offset.unwrap_or_else(|| old.offset_at(now_ms)),
                drift: drift.unwrap_or(old.drift),
            })
            .collect();
        // A clock that jumps ahead by the inactivity timeout or more makes its node drop every session
        // that has not both sent and received since the jump (most of them, within one pass of its
        // socket loop): the sessions open now are waited out until each is gone or fresh both ways,
        // then the node's declared edges dialled again.
        // The sessions of each running node whose clock jumps that far, all nodes asked at once (a
        // paused node answers nothing; it finds its sessions silent when it thaws, as a real node
        // would).
        let jumped: Vec<(usize, i64, HashSet<i64>)> =
            futures::stream::iter(ids.iter().zip(&before).zip(&set))
                .map(|((&i, old), new)| async move {
                    let jump = new.offset - old.offset_at(now_ms);
                    if !running(i) || jump < clock::DROPS_SESSIONS_S {
                        return None;
                    }
                    let peers = self.nodes[i].rpc.get_peer_info().await.ok()?;
                    Some((i, new.offset, peers.into_iter().map(|p| p.id).collect()))
                })
                .buffer_unordered(CONCURRENCY)
                .filter_map(std::future::ready)
                .collect()
                .await;
        let written = unix_now();
        self.write_clocks(&ids, &set, &by_name, timeout).await?;
        // Every node reads its file again at its first clock reading from the next whole second on.
        let now = since_epoch();
        tokio::time::sleep(clock::in_force_at(now).saturating_sub(now)).await;
        self.wait_out_jumps(&jumped, written, timeout).await?;
        Ok(Clocks {
            nodes: ids
                .iter()
                .zip(&set)
                .map(|(&i, clock)| NodeClock {
                    node: self.nodes[i].name().to_string(),
                    offset: clock.offset,
                    drift: (!clock.drift.is_none()).then_some(clock.drift),
                })
                .collect(),
        })
    }

    /// Waits until each session `jumped` lists (node, its new offset, the sessions it had) is gone or
    /// fresh both ways by the node's clock since the jump (written at `written`, host seconds), then
    /// wires the declared edges again (when any node jumped).
    async fn wait_out_jumps(
        &self,
        jumped: &[(usize, i64, HashSet<i64>)],
        written: i64,
        timeout: Duration,
    ) -> Result<()> {
        if jumped.is_empty() {
            return Ok(());
        }
        let settled = jumped.iter().map(|(i, offset, old)| {
            let n = &self.nodes[*i];
            // By the node's clock, the jump came at `written + offset` (a second's slack for rounding).
            let fresh = written + offset - 1;
            let what = format!(
                "{}'s sessions closed by its clock's jump, or fresh",
                n.name()
            );
            async move {
                wait_until(&what, timeout, wait::interval_for(1), || async {
                    let left = n.rpc.get_peer_info().await?;
                    let stale = (left.iter())
                        .filter(|p| {
                            old.contains(&p.id) && (p.lastsend < fresh || p.lastrecv < fresh)
                        })
                        .count();
                    Ok::<_, Error>(match stale {
                        0 => Check::Ready(()),
                        k => Check::Pending(format!("{k} stale still open")),
                    })
                })
                .await
            }
        });
        futures::future::try_join_all(settled).await?;
        self.rewire_declared(timeout).await
    }

    /// Writes the clocks `set` (one per node of `ids`) into the nodes' clock files. libfaketime reads
    /// the file and exits the process on a half-written one: a running node's init renames the new
    /// files into place (and, for a drifting clock, writes the clock file for its bitcoind's start).
    async fn write_clocks(
        &self,
        ids: &[usize],
        set: &[Anchored],
        by_name: &HashMap<&str, &ContainerInfo>,
        timeout: Duration,
    ) -> Result<()> {
        let request = &new_request(Action::Files);
        futures::stream::iter(ids.iter().zip(set))
            .map(|(&i, clock)| async move {
                let l = &self.nodes[i].layout;
                match by_name.get(l.container.as_str()) {
                    Some(c) if c.state == State::Running && c.labels.contains_key(LABEL_INIT) => {
                        let texts = clock_files(clock);
                        let names = texts.clone().map(|(name, _)| next_file(name));
                        let files = [
                            (names[0].as_str(), texts[0].1.as_bytes()),
                            (names[1].as_str(), texts[1].1.as_bytes()),
                        ];
                        self.ask_node_init(i, State::Running, request, &files, timeout)
                            .await
                    }
                    // A frozen bitcoind reads nothing until it thaws: its clock file is written
                    // whole here, for the start its init recorded.
                    Some(c) if c.state == State::Paused && c.labels.contains_key(LABEL_INIT) => {
                        let started = self.read_text(l, INIT_STARTED_FILE).await;
                        let started = started.and_then(|t| t.trim().parse().ok());
                        self.write_clock(l, clock, started).await
                    }
                    _ => self.write_clock(l, clock, None).await,
                }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    /// Refuses a node whose image carries no libfaketime.
    async fn check_clocks(&self, ids: &[usize]) -> Result<()> {
        let mut clocked: HashMap<&str, bool> = HashMap::new();
        for &i in ids {
            let image = self.nodes[i].layout.image.as_str();
            if let Entry::Vacant(e) = clocked.entry(image) {
                let labels = self.docker.image(image).await?.map(|(_, l)| l);
                e.insert(labels.is_some_and(|l| l.contains_key(LABEL_CLOCK)));
            }
            if !clocked[image] {
                return Err(Error::BadRequest(format!(
                    "node {} runs image `{image}`, which carries no libfaketime, so its clock cannot be set (regbox's own node images carry it; `regbox image build` makes one)",
                    self.nodes[i].name()
                )));
            }
        }
        Ok(())
    }

    /// Writes `clock` into the clock files of `l`'s container: one whose init starts bitcoind next
    /// (and writes the clock file of a drifting clock then), one without an init (its bitcoind reads
    /// the clock file alone), or one whose bitcoind's libfaketime `started` then (Unix ms).
    pub(crate) async fn write_clock(
        &self,
        l: &NodeLayout,
        clock: &Anchored,
        started: Option<i64>,
    ) -> Result<()> {
        let [(clock_name, mut clock_text), (drift_name, drift_text)] = clock_files(clock);
        if let (Some(start_ms), false) = (started, clock.drift.is_none()) {
            clock_text = clock.faketime_text(start_ms);
        }
        let files = [
            (clock_name, clock_text.as_bytes()),
            (drift_name, drift_text.as_bytes()),
        ];
        self.docker
            .write_files(&l.container, blueprint::DATADIR, &files)
            .await?;
        Ok(())
    }

    /// The clock `l`'s node runs (None: the host's clock, or no clock file).
    pub(crate) async fn read_clock(&self, l: &NodeLayout) -> Option<Anchored> {
        if l.as_root {
            return None;
        }
        let text = self.read_text(l, blueprint::CLOCK_FILE).await?;
        if clock::is_drifting(&text) {
            let drift = self.read_text(l, blueprint::DRIFT_FILE).await?;
            return Anchored::read_drift_file(&drift);
        }
        let offset = clock::read_file_text(&text)?;
        Some(Anchored {
            offset,
            ..Anchored::host(unix_ms())
        })
    }

    /// The text of file `name` in `l`'s data directory (None: no such file, or it cannot be read).
    async fn read_text(&self, l: &NodeLayout, name: &str) -> Option<String> {
        let path = format!("{}/{name}", blueprint::DATADIR);
        match self.docker.read_file(&l.container, &path).await {
            Ok(text) => text.map(|t| String::from_utf8_lossy(&t).into_owned()),
            Err(e) => {
                tracing::debug!("{path} of {} cannot be read: {e}", l.name);
                None
            }
        }
    }

    /// The clock of `l`'s node as declared, from now: what its container is made with and a reset
    /// gives back.
    pub(crate) fn declared_clock(l: &NodeLayout) -> Anchored {
        Anchored {
            anchor_ms: unix_ms(),
            offset: l.clock,
            drift: l.drift,
        }
    }
}

/// A clock's two files, named, with their texts: the clock file with the offset now (the clock, when it
/// does not drift), and the drift file (empty when it does not drift).
pub(crate) fn clock_files(clock: &Anchored) -> [(&'static str, String); 2] {
    [
        (blueprint::CLOCK_FILE, clock::file_text(clock.offset)),
        (blueprint::DRIFT_FILE, clock.drift_file_text()),
    ]
}

/// The host's clock, in Unix milliseconds.
pub(crate) fn unix_ms() -> i64 {
    since_epoch().as_millis() as i64
}

/// The host's clock, in Unix seconds.
fn unix_now() -> i64 {
    since_epoch().as_secs() as i64
}

/// The host's clock, since the Unix epoch.
fn since_epoch() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}
