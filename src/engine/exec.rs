//! The one executor: carries out any verb of the vocabulary (`core::verb`) and answers with its
//! report. Every door ends here — the CLI on the Docker host, the operator's HTTP API, a scenario step,
//! a soak fault's start and end, and the library's `Cluster` methods. A verb that changes the cluster
//! runs under the cluster's lock, taken here and only here; readers never take it.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::core::faults::plane::Plane;
use crate::core::partition;
use crate::core::verb::{
    DownReport, Faulted, Links, Logs, Mined, Report, Sent, Synced, Verb, Waited, Wired,
    DEFAULT_TIMEOUT,
};
use crate::engine::cluster::Cluster;
use crate::engine::error::{Error, Result};
use crate::engine::lifecycle::{self, UpOptions};
use crate::engine::lock;
use crate::engine::measure::MeasureOptions;
use crate::engine::progress::Progress;

/// The most text one `logs` without `follow` reads (the operator's client reads no larger reply):
/// past it, reading would only grow memory.
pub const MAX_LOG_BYTES: usize = 64 << 20;

/// How the executor carries a verb out.
#[derive(Clone)]
pub struct Exec {
    /// Where long work (`apply`, `measure`, link faults) shows its stages.
    pub progress: Progress,
    /// The limit of each wait of a verb that names no timeout of its own.
    pub timeout: Duration,
    /// `apply`: a container to attach to the cluster's control network as soon as it exists (the
    /// operator's own, so that it reaches the nodes it made).
    pub attach: Option<String>,
    /// How long a verb that changes the cluster waits while another regbox changes it (zero: fails at
    /// once, naming the holder).
    pub lock_wait: Duration,
}

impl Exec {
    /// The defaults, with `timeout` for every wait.
    pub fn with_timeout(timeout: Duration) -> Exec {
        Exec {
            timeout,
            ..Exec::default()
        }
    }
}

impl Default for Exec {
    fn default() -> Self {
        Exec {
            progress: Progress::default(),
            timeout: DEFAULT_TIMEOUT,
            attach: None,
            lock_wait: lock::DEFAULT_WAIT,
        }
    }
}

/// Carries out `verb` on the cluster named `cluster` (the only one for `None`): `apply` makes or changes
/// it, `down` removes it, every other verb opens it and runs [`Cluster::exec`]. `cancel` stops an
/// `apply` under way (what it created is removed again). A verb over the limits of one request
/// ([`Verb::check`]) is refused first, before anything is opened.
pub async fn execute(
    cluster: Option<&str>,
    verb: &Verb,
    how: &Exec,
    cancel: impl Future<Output = ()>,
) -> Result<Report> {
    verb.check()?;
    match verb {
        Verb::Apply {
            spec,
            dry_run,
            timeout,
        } => {
            if let Some(name) = cluster.filter(|n| *n != spec.name) {
                return Err(Error::BadRequest(format!(
                    "the manifest declares cluster `{}`, not `{name}`",
                    spec.name
                )));
            }
            let up = UpOptions {
                progress: how.progress.clone(),
                timeout: timeout.unwrap_or(how.timeout),
                teardown_on_drop: false,
                attach: how.attach.clone(),
                lock_wait: how.lock_wait,
            };
            lifecycle::apply(spec, *dry_run, &up, cancel).await
        }
        Verb::Down => {
            let report: DownReport =
                lifecycle::down_waiting(cluster, &how.progress, how.lock_wait).await?;
            Ok(Report::Down(report))
        }
        _ => Cluster::open(cluster).await?.run(verb, how).await,
    }
}

impl Cluster {
    /// Carries out `verb` on this cluster and answers with its report. A verb over the limits of one
    /// request ([`Verb::check`]) is refused first, then the nodes it names are checked, before
    /// anything waits; a verb that changes the cluster then takes the cluster's lock for its whole
    /// run. `apply` and `down` make or remove a cluster: [`execute`] carries them out.
    pub async fn exec(&mut self, verb: &Verb, how: &Exec) -> Result<Report> {
        verb.check()?;
        self.run(verb, how).await
    }

    /// [`Cluster::exec`] of a verb [`execute`] has checked already.
    async fn run(&mut self, verb: &Verb, how: &Exec) -> Result<Report> {
        for node in verb.nodes() {
            self.node(&node)?;
        }
        if let Verb::Partition { kind, .. } = verb {
            partition::build(&self.spec, kind)?;
        }
        if !verb.changes() {
            return self.read(verb, how).await;
        }
        let holder: String = verb.to_string().chars().take(120).collect();
        let work = async |c: &mut Cluster| c.change(verb, how).await;
        self.locked(&holder, how.lock_wait, work).await
    }

    /// `exec` for a caller that wants one kind of report, picked by `pick` (the library's methods).
    pub(crate) async fn exec_for<T>(
        &mut self,
        verb: Verb,
        how: &Exec,
        pick: impl FnOnce(Report) -> Option<T>,
    ) -> Result<T> {
        let report = self.exec(&verb, how).await?;
        pick(report).ok_or_else(|| {
            Error::BadRequest(format!(
                "`{}` answered with another kind of report",
                verb.word()
            ))
        })
    }

    /// Runs `work` under the cluster's lock, held for `holder`. The one place the lock is taken and
    /// given back; should the future be dropped midway, the guard gives it back on drop.
    pub(crate) async fn locked<T>(
        &mut self,
        holder: &str,
        wait: Duration,
        work: impl AsyncFnOnce(&mut Cluster) -> Result<T>,
    ) -> Result<T> {
        let guard = self.lock(holder, wait).await?;
        let result = work(self).await;
        guard.release().await;
        result
    }

    /// A verb that changes the cluster, under its lock.
    async fn change(&mut self, verb: &Verb, how: &Exec) -> Result<Report> {
        let timeout = verb.timeout().unwrap_or(how.timeout);
        let progress = &how.progress;
        let plane = match verb {
            Verb::Connect { a, b } | Verb::Disconnect { a, b } => {
                let connected = matches!(verb, Verb::Connect { .. });
                if connected {
                    self.connect_locked(a, b, timeout).await?;
                } else {
                    self.disconnect_locked(a, b, timeout).await?;
                }
                let name = |n: &str| self.node(n).map(|n| n.name().to_string());
                let (a, b) = (name(a)?, name(b)?);
                return Ok(Report::Wired(Wired { a, b, connected }));
            }
            Verb::Partition {
                kind,
                via,
                mode,
                reset,
                ..
            } => {
                let report = self.partition_locked(kind, *mode, *via, *reset, timeout);
                return Ok(Report::Partition(report.await?));
            }
            Verb::Heal { sync: false, .. } => {
                return Ok(Report::Partition(self.heal_locked(timeout).await?))
            }
            Verb::Heal { sync: true, .. } => {
                return Ok(Report::Heal(self.heal_and_sync_locked(timeout).await?))
            }
            Verb::Fault { fault, node } => {
                self.fault_locked(node, *fault, timeout).await?;
                let node = self.node(node)?.name().to_string();
                return Ok(Report::Fault(Faulted {
                    node,
                    fault: *fault,
                }));
            }
            Verb::Disk { node, fill } => {
                return Ok(Report::Disk(self.disk_locked(node, *fill).await?));
            }
            Verb::Clock {
                nodes,
                offset,
                drift,
            } => {
                return Ok(Report::Clocks(
                    self.clock_locked(nodes.as_deref(), *offset, *drift, timeout)
                        .await?,
                ));
            }
            Verb::Throttle {
                nodes,
                limits,
                clear,
            } => {
                let throttles = self.throttle_locked(nodes.as_deref(), limits, *clear);
                return Ok(Report::Throttled(throttles.await?));
            }
            Verb::Reset { to, .. } => {
                let report = self.reset_locked(to.as_deref(), timeout, progress);
                return Ok(Report::Reset(report.await?));
            }
            Verb::Snapshot { name, .. } => {
                return Ok(Report::Snapshot(self.snapshot_locked(name, timeout).await?));
            }
            Verb::Netem { nodes, to, shaping } => {
                let nodes = nodes.clone().unwrap_or_else(|| self.names());
                self.shape_locked(&nodes, to.as_deref(), shaping, progress)
                    .await?
            }
            Verb::Cut {
                from,
                to,
                both,
                block,
            } => self.cut_locked(from, to, *both, *block, progress).await?,
            Verb::Clear {
                nodes,
                shaping,
                cuts,
            } => {
                self.clear_links_locked(nodes.as_deref(), *shaping, *cuts, progress)
                    .await?
            }
            other => return Err(not_here(other)),
        };
        Ok(Report::Links(self.links_of(&plane)))
    }

    /// A verb that only reads the cluster (or its chain): no lock.
    async fn read(&self, verb: &Verb, how: &Exec) -> Result<Report> {
        let timeout = verb.timeout().unwrap_or(how.timeout);
        Ok(match verb {
            Verb::Status => Report::Status(self.status().await?),
            Verb::Url { node } => Report::Url(self.connection(node)?),
            Verb::Mine { node, blocks } => {
                let blocks = self.mine(node, *blocks).await?;
                let n = self.node(node)?;
                let height = n.rpc.get_block_count().await?;
                let node = n.name().to_string();
                Report::Mined(Mined {
                    node,
                    height,
                    blocks,
                })
            }
            Verb::Send {
                from,
                to,
                amount_sat,
            } => {
                let txid = self.send(from, to, *amount_sat).await?;
                let name = |n: &str| self.node(n).map(|n| n.name().to_string());
                Report::Sent(Sent {
                    from: name(from)?,
                    to: name(to)?,
                    amount_sat: *amount_sat,
                    txid,
                })
            }
            Verb::Wait { until, .. } => Report::Waited(Waited {
                until: until.to_string(),
                met: self.wait(until, timeout).await?,
            }),
            Verb::Sync { .. } => {
                let (best_hash, mempool_size) =
                    tokio::try_join!(self.sync_blocks(timeout), self.sync_mempools(timeout))?;
                Report::Synced(Synced {
                    best_hash,
                    mempool_size,
                    nodes: self.nodes().len(),
                })
            }
            Verb::Measure {
                kind, from, rounds, ..
            } => {
                let opts = MeasureOptions {
                    kind: *kind,
                    from: from.clone().unwrap_or_else(|| "0".into()),
                    rounds: *rounds,
                    timeout,
                };
                let m = self.measure_propagation(&opts, &how.progress).await?;
                Report::Measured(Box::new(m))
            }
            Verb::Rpc {
                node,
                method,
                params,
                ..
            } => {
                let params = Value::Array(params.clone());
                let n = self.node(node)?;
                Report::Rpc(n.rpc.call_raw(method, params, timeout).await?)
            }
            Verb::Logs { node, tail, .. } => {
                let mut chunks = std::pin::pin!(self.logs(node, *tail, false)?);
                let mut text = String::new();
                while let Some(chunk) = chunks.next().await {
                    text.push_str(&chunk?);
                    if text.len() > MAX_LOG_BYTES {
                        return Err(Error::BadRequest(format!(
                            "the log of `{node}` is over {} MiB, the most one `logs` reads: ask for \
                             its last lines with `tail` (or follow it)",
                            MAX_LOG_BYTES >> 20
                        )));
                    }
                }
                let node = self.node(node)?.name().to_string();
                Report::Logs(Logs { node, text })
            }
            other => return Err(not_here(other)),
        })
    }

    /// Every node's link faults in `plane`, with nodes and peers by name.
    pub fn links_of(&self, plane: &Plane) -> Links {
        let name = |i: usize| self.nodes()[i].name().to_string();
        plane
            .iter()
            .map(|(&i, f)| (name(i), f.renamed(name)))
            .collect()
    }

    /// Every node's name, in index order.
    pub fn names(&self) -> Vec<String> {
        self.nodes().iter().map(|n| n.name().to_string()).collect()
    }
}

/// `apply` and `down` on an open cluster, or a reader sent to `change`: a caller's mistake.
fn not_here(verb: &Verb) -> Error {
    Error::BadRequest(format!(
        "`{}` is carried out by engine::exec::execute, not on an open cluster",
        verb.word()
    ))
}
