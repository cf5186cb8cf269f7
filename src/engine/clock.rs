//! Clock faults on the engine: each node's clock file (on its data volume, read by libfaketime in its
//! bitcoind at most once a second) written with the declared offset when its container is made and
//! with the `clock` verb's at run time, and read back for `status`.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::core::cluster::blueprint::{self, NodeLayout, LABEL_INIT};
use crate::core::cluster::init::Action;
use crate::core::faults::clock;
use crate::core::verb::{Clocks, NodeClock};
use futures::{StreamExt, TryStreamExt};

use crate::core::cluster::plan::{Containers, Desired, Segments, State};
use crate::engine::cluster::Cluster;
use crate::engine::error::{Error, Result};
use crate::engine::image::LABEL_CLOCK;
use crate::engine::reset::{by_name, new_request, next_file};
use crate::engine::wait::{self, wait_until, Check};

/// Clock files written at once.
const CONCURRENCY: usize = 16;

impl Cluster {
    /// Sets the clocks of `nodes` (every node for `None`) to `offset` seconds from the host's (0: the
    /// host's clock). In force as soon as it returns: it returns once every reading of the nodes'
    /// clocks has the new one (`clock::in_force_at`, at most a second after the files are written).
    /// Refused, before any clock changes, for a node whose image carries no libfaketime.
    pub(crate) async fn clock_locked(
        &self,
        nodes: Option<&[String]>,
        offset: i64,
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
        // A clock that jumps ahead by the inactivity timeout or more makes its node drop every session
        // that has not both sent and received since the jump (most of them, within one pass of its
        // socket loop): the sessions open now are waited out until each is gone or fresh both ways,
        // then the node's declared edges dialled again.
        // The sessions of each node whose clock jumps that far, all nodes asked at once.
        let jumped: Vec<(usize, HashSet<i64>)> = futures::stream::iter(&ids)
            .map(|&i| async move {
                let n = &self.nodes[i];
                let before = self.read_clock(&n.layout).await.unwrap_or(0);
                if offset - before < clock::DROPS_SESSIONS_S {
                    return None;
                }
                let peers = n.rpc.get_peer_info().await.ok()?;
                Some((i, peers.into_iter().map(|p| p.id).collect()))
            })
            .buffer_unordered(CONCURRENCY)
            .filter_map(std::future::ready)
            .collect()
            .await;
        let written = unix_now();
        self.write_clocks(&ids, offset, timeout).await?;
        // Every node reads its file again at its first clock reading from the next whole second on.
        let now = since_epoch();
        tokio::time::sleep(clock::in_force_at(now).saturating_sub(now)).await;
        // By the node's clock, the jump came at `written + offset` (a second's slack for rounding).
        let fresh = written + offset - 1;
        let settled = jumped.iter().map(|(i, old)| {
            let n = &self.nodes[*i];
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
        if !jumped.is_empty() {
            let desired = Desired {
                edges: &self.spec.edges,
                containers: Containers::AsTheyAre,
                segments: Segments::Keep,
                mode: self.mode,
            };
            self.converge_quietly(&desired, timeout).await?;
        }
        Ok(Clocks {
            nodes: ids
                .iter()
                .map(|&i| NodeClock {
                    node: self.nodes[i].name().to_string(),
                    offset,
                })
                .collect(),
        })
    }

    /// Writes `offset` into the clock files of nodes `ids`. libfaketime reads the file and exits the
    /// process on a half-written one: a running node's init renames the new file into place.
    async fn write_clocks(&self, ids: &[usize], offset: i64, timeout: Duration) -> Result<()> {
        let listed = self.containers().await?;
        let by_name = by_name(&listed);
        let (by_name, text) = (&by_name, clock::file_text(offset));
        let (request, next) = (new_request(Action::Files), next_file(blueprint::CLOCK_FILE));
        let (request, next, text) = (&request, &next, &text);
        futures::stream::iter(ids)
            .map(|&i| async move {
                let l = &self.nodes[i].layout;
                match by_name.get(l.container.as_str()) {
                    Some(c) if c.state == State::Running && c.labels.contains_key(LABEL_INIT) => {
                        let files = [(next.as_str(), text.as_bytes())];
                        self.ask_node_init(i, State::Running, request, &files, timeout)
                            .await
                    }
                    _ => self.write_clock(l, offset).await,
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

    /// Writes `offset` into the clock file of `l`'s container, made or running.
    pub(crate) async fn write_clock(&self, l: &NodeLayout, offset: i64) -> Result<()> {
        let text = clock::file_text(offset);
        self.docker
            .write_file(
                &l.container,
                blueprint::DATADIR,
                blueprint::CLOCK_FILE,
                text.as_bytes(),
            )
            .await?;
        Ok(())
    }

    /// The clock offset `l`'s node runs at (None: the host's clock, or no clock file).
    pub(crate) async fn read_clock(&self, l: &NodeLayout) -> Option<i64> {
        if l.as_root {
            return None;
        }
        let path = format!("{}/{}", blueprint::DATADIR, blueprint::CLOCK_FILE);
        match self.docker.read_file(&l.container, &path).await {
            Ok(text) => text.and_then(|t| clock::read_file_text(&String::from_utf8_lossy(&t))),
            Err(e) => {
                tracing::debug!("the clock of {} cannot be read: {e}", l.name);
                None
            }
        }
    }
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
