//! Reset and snapshots: a cluster taken back to its declared state on a fresh chain (or a snapshot)
//! by restarting each bitcoind in place through the init of regbox's node images (no container is
//! made or started again by the engine), snapshots saved the same way, and snapshots exported to a
//! file and imported from one.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures::{stream, StreamExt, TryStreamExt};

use crate::core::cluster::blueprint::{
    self, cluster_filter, DATADIR, INIT_DONE_FILE, INIT_PORT, INIT_REQUEST_FILE, LABEL_CONFIG,
    LABEL_INIT, LABEL_NODE, LABEL_ROLE, ROLE_AGENT, ROLE_HOLD, SNAPSHOTS_DIR,
};
use crate::core::cluster::init::{self, Action, Request};
use crate::core::cluster::plan::{Containers, Desired, Segments, State};
use crate::core::faults::throttle::Limits;
use crate::core::partition::CutMode;
use crate::core::verb::{NodeSnapshot, Report, ResetReport, SnapshotReport, Verb};
use crate::engine::clock::clock_files;
use crate::engine::cluster::Cluster;
use crate::engine::docker::ContainerInfo;
use crate::engine::error::{Error, Result, Timeout};
use crate::engine::exec::Exec;
use crate::engine::image::init_hash;
use crate::engine::progress::Progress;
use crate::engine::reconcile::DOCKER_CONCURRENCY;
use crate::engine::rpc::Transport;
use crate::engine::wait::{on_all, wait_until, Check};

/// How often the init's answer file is read while a request is carried out.
const ANSWER_POLL: Duration = Duration::from_millis(10);

/// The file in a snapshot's directory that says it is whole (the init writes it last).
const SAVED_MARK: &str = ".regbox-snapshot";

/// The export file's description of what it holds.
const EXPORT_MANIFEST: &str = "regbox-snapshot.json";

/// What an exported snapshot file holds (its `regbox-snapshot.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Exported {
    /// The snapshot's name when it was exported.
    pub name: String,
    /// The cluster it was taken of.
    pub cluster: String,
    /// Its nodes, by name; an import needs a cluster with exactly these.
    pub nodes: Vec<String>,
    /// The size of the file written, in bytes (0 in the file itself).
    #[serde(default)]
    pub bytes: u64,
}

impl Cluster {
    /// Takes the cluster back to its declared state on a fresh chain, or on snapshot `to` (see
    /// [`Verb::Reset`]).
    pub async fn reset(&mut self, to: Option<&str>, timeout: Duration) -> Result<ResetReport> {
        let verb = Verb::Reset {
            to: to.map(str::to_string),
            timeout: Some(timeout),
        };
        self.exec_for(verb, &Exec::default(), |r| match r {
            Report::Reset(r) => Some(r),
            _ => None,
        })
        .await
    }

    /// Saves every node's chain, wallets and mempool as snapshot `name` (see [`Verb::Snapshot`]).
    pub async fn snapshot(&mut self, name: &str, timeout: Duration) -> Result<SnapshotReport> {
        let verb = Verb::Snapshot {
            name: name.to_string(),
            timeout: Some(timeout),
        };
        self.exec_for(verb, &Exec::default(), |r| match r {
            Report::Snapshot(r) => Some(r),
            _ => None,
        })
        .await
    }

    /// `reset` under the lock the executor holds.
    pub(crate) async fn reset_locked(
        &mut self,
        to: Option<&str>,
        timeout: Duration,
        progress: &Progress,
    ) -> Result<ResetReport> {
        let listed = self.containers().await?;
        let seen = by_name(&listed);
        // In place: a container made from the node's current configuration whose first process is the
        // init, in a state it can go on from. The others are made again, volume and all.
        let in_place: Vec<Option<State>> = (self.nodes.iter())
            .map(|n| {
                let c = seen.get(n.layout.container.as_str())?;
                let current = c.labels.get(LABEL_CONFIG) == n.layout.labels.get(LABEL_CONFIG);
                let state_ok = matches!(
                    c.state,
                    State::Running | State::Paused | State::Exited | State::Created
                );
                (current && state_ok && c.labels.contains_key(LABEL_INIT)).then_some(c.state)
            })
            .collect();
        if let Some(name) = to {
            self.check_snapshot(name, &in_place).await?;
        }
        progress.stage("resetting", 0);
        let begun = std::time::Instant::now();
        let mut cleared = self.take_faults_off(&listed, progress).await?;
        tracing::debug!("faults taken off in {:?}", begun.elapsed());
        let remade: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| in_place[i].is_none())
            .collect();
        self.remove_nodes(&remade).await?;
        let action = to.map_or(Action::Fresh, |n| Action::Restore(n.to_string()));
        // A running node with this regbox's init is asked for a fresh chain over TCP.
        let (over_tcp, asked): (Vec<_>, Vec<_>) = (in_place.iter().enumerate())
            .filter_map(|(i, s)| s.map(|s| (i, s)))
            .partition(|&(i, s)| {
                let l = &self.nodes[i].layout;
                let init = seen[l.container.as_str()].labels.get(LABEL_INIT);
                to.is_none()
                    && s == State::Running
                    && init.map(String::as_str) == Some(init_hash())
                    && !l.as_root
            });
        let over_tcp: Vec<usize> = over_tcp.into_iter().map(|(i, _)| i).collect();
        tokio::try_join!(
            self.ask_init(&asked, action, timeout),
            self.fresh_over_tcp(&over_tcp, timeout)
        )?;
        tracing::debug!("bitcoind restarted in place at {:?}", begun.elapsed());
        if self.plane.segments.len() > 1 {
            cleared.push("the partition".into());
        }
        self.converge_to_declared(Containers::Declared, Segments::Heal, timeout)
            .await?;
        tracing::debug!("wired at {:?}", begun.elapsed());
        self.verify(false).await?;
        tracing::debug!("verified at {:?}", begun.elapsed());
        Ok(ResetReport {
            to: to.map(str::to_string),
            nodes: self.best_blocks().await?,
            remade: remade
                .iter()
                .map(|&i| self.nodes[i].name().into())
                .collect(),
            cleared,
        })
    }

    /// `snapshot` under the lock the executor holds.
    pub(crate) async fn snapshot_locked(
        &mut self,
        name: &str,
        timeout: Duration,
    ) -> Result<SnapshotReport> {
        let listed = self.containers().await?;
        let seen = by_name(&listed);
        let mut nodes = Vec::new();
        for n in &self.nodes {
            let why = match seen.get(n.layout.container.as_str()) {
                None => "has no container",
                Some(c) if !c.labels.contains_key(LABEL_INIT) => {
                    "runs an image without regbox's init (regbox's own node images have it)"
                }
                Some(c) if c.state != State::Running => "is not running (start it first)",
                Some(_) => {
                    nodes.push((n.layout.index, State::Running));
                    continue;
                }
            };
            return Err(Error::BadRequest(format!(
                "node {} {why}: a snapshot is taken of every node",
                n.name()
            )));
        }
        self.ask_init(&nodes, Action::Save(name.to_string()), timeout)
            .await?;
        // The restarted nodes' declared edges come back inside the active partition.
        self.converge_to_declared(Containers::AsTheyAre, Segments::Keep, timeout)
            .await?;
        Ok(SnapshotReport {
            name: name.to_string(),
            nodes: self.best_blocks().await?,
        })
    }

    /// Refuses a restore to `name` unless every node can restart in place and has that snapshot.
    async fn check_snapshot(&self, name: &str, in_place: &[Option<State>]) -> Result<()> {
        if let Some(n) = self
            .nodes
            .iter()
            .find(|n| in_place[n.layout.index].is_none())
        {
            return Err(Error::BadRequest(format!(
                "node {} cannot be reset to a snapshot: its container is missing, outdated or runs an image without regbox's init (`regbox reset` without --to makes it again)",
                n.name()
            )));
        }
        self.every_node_has(name).await
    }

    /// Refuses snapshot `name` unless every node has it whole.
    async fn every_node_has(&self, name: &str) -> Result<()> {
        let with = self.nodes_with_snapshot(name).await?;
        let missing: Vec<&str> = (self.nodes.iter())
            .map(|n| n.name())
            .filter(|n| !with.contains(*n))
            .collect();
        if !missing.is_empty() {
            return Err(Error::BadRequest(format!(
                "there is no snapshot `{name}` on node(s) {} (`regbox snapshot save {name}` makes one)",
                missing.join(", ")
            )));
        }
        Ok(())
    }

    /// The nodes, by name, that have snapshot `name` whole (its mark written), every node asked at
    /// once.
    async fn nodes_with_snapshot(&self, name: &str) -> Result<BTreeSet<String>> {
        let mark = snapshot_path(name, SAVED_MARK);
        let mark = &mark;
        let marks = stream::iter(self.nodes.iter().map(|n| async move {
            let found = self.docker.read_file(&n.layout.container, mark).await?;
            Ok::<_, Error>((n.name().to_string(), found.is_some()))
        }))
        .buffered(DOCKER_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
        Ok(marks
            .into_iter()
            .filter(|(_, f)| *f)
            .map(|(n, _)| n)
            .collect())
    }

    /// Every container of the cluster, stopped ones included.
    pub(crate) async fn containers(&self) -> Result<Vec<ContainerInfo>> {
        let filter = cluster_filter(Some(self.name()));
        Ok(self.docker.labeled_containers(&filter).await?)
    }

    /// Takes away the holds, the throttles and the link faults (back to the manifest's), and says
    /// which there were. (Clock offsets and full disks go with the request to the init.)
    async fn take_faults_off(
        &self,
        listed: &[ContainerInfo],
        progress: &Progress,
    ) -> Result<Vec<String>> {
        let mut cleared = Vec::new();
        let held: BTreeSet<&str> = listed
            .iter()
            .filter(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some(ROLE_HOLD))
            .filter_map(|c| c.labels.get(LABEL_NODE).map(String::as_str))
            .collect();
        for &node in &held {
            if let Some(&i) = self.by_name.get(node) {
                self.release(i).await?;
            }
        }
        if !held.is_empty() {
            let held: Vec<&str> = held.into_iter().collect();
            cleared.push(format!("the holds on {}", held.join(", ")));
        }
        let throttled = self.throttles_in(listed);
        if !throttled.is_empty() {
            self.throttle_locked(None, &Limits::default(), true).await?;
            let names: Vec<&str> = throttled.keys().map(|&i| self.nodes[i].name()).collect();
            cleared.push(format!("the throttles of {}", names.join(", ")));
        }
        // A cluster that never had a link fault has no agent, and nothing to ask.
        let agent = (listed.iter())
            .any(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some(ROLE_AGENT));
        if agent || !self.spec.links.is_empty() {
            let before = self.fault_plane().await?;
            if before != self.spec.links {
                self.declare_links_locked(progress).await?;
                cleared.push("the link faults".into());
            }
        }
        Ok(cleared)
    }

    /// Removes the containers and volumes of `nodes` (one container at a time, still attached, so
    /// that the nodes that stay see their sessions close); the reset makes them again.
    async fn remove_nodes(&self, nodes: &[usize]) -> Result<()> {
        let mut volumes = Vec::new();
        for &i in nodes {
            let l = &self.nodes[i].layout;
            self.docker.remove_container(&l.container).await?;
            volumes.push(l.volume.clone());
            if l.disk.is_some() {
                volumes.push(blueprint::disk_volume(&l.volume));
            }
        }
        let left = crate::engine::removal::remove_volumes(&self.docker, volumes).await;
        if left.is_empty() {
            Ok(())
        } else {
            Err(Error::Leftovers(left))
        }
    }

    /// Asks the init of each of `nodes` (in the state given) to carry out `action`, and waits until
    /// each answered and its bitcoind answers RPC (with its wallet loaded).
    async fn ask_init(
        &self,
        nodes: &[(usize, State)],
        action: Action,
        timeout: Duration,
    ) -> Result<()> {
        let request = new_request(action);
        let request = &request;
        stream::iter(nodes.iter().map(|&(i, state)| async move {
            self.restart_asked(i, state, request, timeout).await
        }))
        .buffer_unordered(nodes.len().max(1))
        .try_collect::<Vec<()>>()
        .await?;
        Ok(())
    }

    /// Node `i`'s init (its container in `state`) asked to carry out `request` through its data
    /// directory; returns once its bitcoind answers RPC (with its wallet loaded).
    async fn restart_asked(
        &self,
        i: usize,
        state: State,
        request: &Request,
        timeout: Duration,
    ) -> Result<()> {
        let l = &self.nodes[i].layout;
        let fresh = !matches!(request.action, Action::Save(_));
        // With a fresh chain or a snapshot, the declared clock and an empty filler (a full disk
        // freed) go in the same write as the request (for an init older than this regbox's, which
        // does not set them itself).
        let clock = clock_files(&Cluster::declared_clock(l));
        let next = clock.clone().map(|(name, _)| next_file(name));
        let mut files = Vec::new();
        if fresh && !l.as_root {
            files.push((next[0].as_str(), clock[0].1.as_bytes()));
            files.push((next[1].as_str(), clock[1].1.as_bytes()));
        }
        if fresh && l.disk.is_some() {
            files.push((blueprint::FILL_FILE, &b""[..]));
        }
        let asked = std::time::Instant::now();
        self.ask_node_init(i, state, request, &files, timeout)
            .await?;
        let answered = asked.elapsed();
        self.wait_ready(i, timeout).await?;
        tracing::debug!(
            "{}: answered after {answered:?}, ready after {:?}",
            self.nodes[i].name(),
            asked.elapsed()
        );
        Ok(())
    }

    /// A fresh chain for each of `nodes` (running, with this regbox's init), asked of its init over
    /// TCP on the control network: no engine call, and the answer comes once the new bitcoind runs.
    /// A node whose init does not take the connection is asked through its data directory instead.
    async fn fresh_over_tcp(&self, nodes: &[usize], timeout: Duration) -> Result<()> {
        let token = blueprint::init_token(&self.password);
        let token = &token;
        stream::iter(nodes.iter().map(|&i| async move {
            let n = &self.nodes[i];
            let asked = std::time::Instant::now();
            let addr = SocketAddr::new(n.layout.control_ip.into(), INIT_PORT);
            let ask = init_request(n.rpc.transport(), addr, token, "fresh");
            let answer = tokio::time::timeout(timeout, ask).await;
            match answer {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(why))) => {
                    return Err(Error::BadRequest(format!("node {}: {why}", n.name())))
                }
                Ok(Err(e)) => {
                    tracing::debug!(
                        "{}: its init over TCP: {e}; asking through its data directory",
                        n.name()
                    );
                    let request = new_request(Action::Fresh);
                    return self
                        .restart_asked(i, State::Running, &request, timeout)
                        .await;
                }
                Err(_) => {
                    return Err(Timeout {
                        what: format!("the init of node `{}` to restart bitcoind", n.name()),
                        timeout,
                        last: "no answer".into(),
                    }
                    .into())
                }
            }
            tracing::debug!("{}: answered after {:?}", n.name(), asked.elapsed());
            self.wait_ready(i, timeout).await?;
            tracing::debug!("{}: ready after {:?}", n.name(), asked.elapsed());
            Ok::<_, Error>(())
        }))
        .buffer_unordered(nodes.len().max(1))
        .try_collect::<Vec<()>>()
        .await?;
        Ok(())
    }

    /// Has node `i`'s init (its container in `state`) carry out `request`, with `files` written into
    /// its data directory in the same write as the request; returns once it answered. A file meant
    /// for a running bitcoind goes as `NAME.next`, which the init renames in one step.
    pub(crate) async fn ask_node_init(
        &self,
        i: usize,
        state: State,
        request: &Request,
        files: &[(&str, &[u8])],
        timeout: Duration,
    ) -> Result<()> {
        let c = &self.nodes[i].layout.container;
        let docker = &self.docker;
        let line = request.to_string();
        let mut all = vec![(INIT_REQUEST_FILE, line.as_bytes())];
        all.extend_from_slice(files);
        docker.write_files(c, DATADIR, &all).await?;
        match state {
            // The init finds the request when it starts, before bitcoind does.
            State::Exited | State::Created => docker.start(c).await?,
            State::Paused => {
                docker.unpause(c).await?;
                docker.signal(c, "USR1").await?
            }
            _ => docker.signal(c, "USR1").await?,
        }
        self.answered(i, &request.id, timeout).await
    }

    /// Waits until node `i`'s init answered request `id`; its refusal is the error.
    async fn answered(&self, i: usize, id: &str, timeout: Duration) -> Result<()> {
        let l = &self.nodes[i].layout;
        let path = format!("{DATADIR}/{INIT_DONE_FILE}");
        let what = format!("the init of node `{}` to restart bitcoind", l.name);
        let outcome = wait_until(&what, timeout, ANSWER_POLL, || async {
            let text = self.docker.read_file(&l.container, &path).await?;
            let text = String::from_utf8_lossy(text.as_deref().unwrap_or_default()).into_owned();
            Ok::<_, Error>(match init::answer(&text, id) {
                Some(outcome) => Check::Ready(outcome),
                None => Check::Pending("no answer yet".into()),
            })
        })
        .await?;
        outcome.map_err(|why| Error::BadRequest(format!("node {}: {why}", l.name)))
    }

    /// Converges to the declared edges with `containers` and `segments`, and keeps the plane, the
    /// cuts and the cut mode it leaves.
    async fn converge_to_declared(
        &mut self,
        containers: Containers,
        segments: Segments<'_>,
        timeout: Duration,
    ) -> Result<()> {
        let edges = self.spec.edges.clone();
        let desired = Desired {
            edges: &edges,
            containers,
            segments,
            mode: self.mode,
        };
        self.plane = self.converge_quietly(&desired, timeout).await?;
        self.cut = self.cut_now().await?;
        if self.plane.segments.len() <= 1 {
            self.mode = CutMode::Drop;
        }
        Ok(())
    }

    /// Every node's best block.
    async fn best_blocks(&self) -> Result<Vec<NodeSnapshot>> {
        on_all(&self.nodes, |n| async move {
            let best_hash = n.rpc.get_best_block_hash().await?;
            let height = n.rpc.get_block_count().await?;
            Ok::<_, Error>(NodeSnapshot {
                node: n.name().to_string(),
                height,
                best_hash,
            })
        })
        .await
    }

    /// Writes snapshot `name` of every node into `file` (a gzip-compressed tar: the description, then
    /// each node's snapshot directory as the engine gives it).
    pub async fn export_snapshot(&self, name: &str, file: &Path) -> Result<Exported> {
        init::check_name(name).map_err(Error::BadRequest)?;
        let mut exported = Exported {
            name: name.to_string(),
            cluster: self.name().to_string(),
            nodes: self.names(),
            bytes: 0,
        };
        self.every_node_has(name).await?;
        let out = std::fs::File::create(file).map_err(|e| export_err(file, &e))?;
        let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let manifest = serde_json::to_vec_pretty(&exported).expect("a description serializes");
        append(&mut tar, EXPORT_MANIFEST, &manifest).map_err(|e| export_err(file, &e))?;
        for n in &self.nodes {
            let dir = format!("{DATADIR}/{SNAPSHOTS_DIR}/{name}");
            let Some(tree) = self.docker.read_tree(&n.layout.container, &dir).await? else {
                let _ = std::fs::remove_file(file);
                return Err(Error::BadRequest(format!(
                    "there is no snapshot `{name}` on node {}",
                    n.name()
                )));
            };
            append(&mut tar, &format!("nodes/{}.tar", n.name()), &tree)
                .map_err(|e| export_err(file, &e))?;
        }
        let gz = tar.into_inner().map_err(|e| export_err(file, &e))?;
        gz.finish()
            .and_then(|mut f| f.flush())
            .map_err(|e| export_err(file, &e))?;
        exported.bytes = std::fs::metadata(file).map_or(0, |m| m.len());
        Ok(exported)
    }

    /// Reads a snapshot `export_snapshot` wrote and stores it on every node as `name` (default: the
    /// name it was exported under), for `reset --to`. The file must hold exactly this cluster's nodes,
    /// by name; nothing is written unless it does, and a snapshot of that name must not exist yet.
    pub async fn import_snapshot(&mut self, file: &Path, name: Option<&str>) -> Result<Exported> {
        let (mut exported, trees) = read_export(file)?;
        let ours: BTreeSet<String> = self.names().into_iter().collect();
        let theirs: BTreeSet<String> = exported.nodes.iter().cloned().collect();
        if ours != theirs {
            let only = |a: &BTreeSet<String>, b: &BTreeSet<String>| {
                a.difference(b).cloned().collect::<Vec<_>>().join(", ")
            };
            return Err(Error::BadRequest(format!(
                "{}: the snapshot is of nodes {}, this cluster has {} (only in the file: [{}]; only in the cluster: [{}])",
                file.display(),
                exported.nodes.join(", "),
                self.names().join(", "),
                only(&theirs, &ours),
                only(&ours, &theirs),
            )));
        }
        let old = exported.name.clone();
        let name = name.unwrap_or(&old).to_string();
        init::check_name(&name).map_err(Error::BadRequest)?;
        let work = async |c: &mut Cluster| {
            c.store_snapshot(&name, &old, &trees).await?;
            Ok(())
        };
        self.locked("snapshot import", crate::engine::lock::DEFAULT_WAIT, work)
            .await?;
        exported.name = name;
        exported.bytes = std::fs::metadata(file).map_or(0, |m| m.len());
        Ok(exported)
    }

    /// Writes each node's tree (its snapshot directory `old` as exported) into its data directory as
    /// snapshot `name`, once no node has one of that name.
    async fn store_snapshot(
        &self,
        name: &str,
        old: &str,
        trees: &HashMap<String, Vec<u8>>,
    ) -> Result<()> {
        if let Some(n) = self.nodes_with_snapshot(name).await?.first() {
            return Err(Error::BadRequest(format!(
                "node {n} has a snapshot `{name}` already (import it under another name: --as)"
            )));
        }
        // Every tree is checked before any is written.
        let into = format!("{SNAPSHOTS_DIR}/{name}");
        let moved = (self.nodes.iter())
            .map(|n| {
                rename_tree(&trees[n.name()], old, &into)
                    .map(|t| (&n.layout.container, t))
                    .map_err(|e| Error::BadRequest(format!("the snapshot of {}: {e}", n.name())))
            })
            .collect::<Result<Vec<_>>>()?;
        for (c, tree) in moved {
            self.docker.write_tree(c, DATADIR, tree).await?;
        }
        Ok(())
    }
}

/// A listing's containers by name.
pub(crate) fn by_name(listed: &[ContainerInfo]) -> HashMap<&str, &ContainerInfo> {
    listed.iter().map(|c| (c.name.as_str(), c)).collect()
}

/// Asks the init at `addr` (through `transport`) over TCP, with `token`, for `what` (`fresh`, `halt`):
/// its answer (Ok once carried out, or why not), or the connection's failure.
pub(crate) async fn init_request(
    transport: &Transport,
    addr: SocketAddr,
    token: &str,
    what: &str,
) -> std::io::Result<std::result::Result<(), String>> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let mut stream = transport.stream(addr).await?;
    stream
        .write_all(format!("{token} {what}\n").as_bytes())
        .await?;
    let mut line = String::new();
    tokio::io::BufReader::new(stream)
        .take(1024)
        .read_line(&mut line)
        .await?;
    Ok(match line.trim_end() {
        "ok" => Ok(()),
        "" => Err("its init closed the connection without an answer".to_string()),
        other => Err(other.strip_prefix("error ").unwrap_or(other).to_string()),
    })
}

/// A request of its own (its id tells its answer from earlier ones).
pub(crate) fn new_request(action: Action) -> Request {
    Request {
        id: format!("{:016x}", rand::random::<u64>()),
        action,
    }
}

/// The name a file meant for a running bitcoind is written under, for the init to rename.
pub(crate) fn next_file(name: &str) -> String {
    format!("{name}.next")
}

/// A file of snapshot `name`'s directory, as a path in a node's container.
fn snapshot_path(name: &str, file: &str) -> String {
    format!("{DATADIR}/{SNAPSHOTS_DIR}/{name}/{file}")
}

fn export_err(file: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::BadRequest(format!("cannot write {}: {e}", file.display()))
}

fn append<W: Write>(tar: &mut tar::Builder<W>, path: &str, data: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, path, data)
}

/// The description and each node's tree of an exported snapshot file.
fn read_export(file: &Path) -> Result<(Exported, HashMap<String, Vec<u8>>)> {
    let bad = |why: String| Error::BadRequest(format!("{}: {why}", file.display()));
    let f = std::fs::File::open(file).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut exported: Option<Exported> = None;
    let mut trees = HashMap::new();
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a snapshot regbox exported: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("not a snapshot regbox exported: {e}")))?;
        let path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| bad(format!("cannot read it: {e}")))?;
        let path = path.to_string_lossy();
        if path == EXPORT_MANIFEST {
            exported = Some(
                serde_json::from_slice(&data)
                    .map_err(|e| bad(format!("its {EXPORT_MANIFEST} does not read: {e}")))?,
            );
        } else if let Some(node) = path
            .strip_prefix("nodes/")
            .and_then(|p| p.strip_suffix(".tar"))
        {
            trees.insert(node.to_string(), data);
        }
    }
    let exported = exported.ok_or_else(|| {
        bad(format!(
            "not a snapshot regbox exported (no {EXPORT_MANIFEST})"
        ))
    })?;
    init::check_name(&exported.name).map_err(bad)?;
    if let Some(n) = exported.nodes.iter().find(|n| !trees.contains_key(*n)) {
        return Err(bad(format!("it holds no snapshot of node {n}")));
    }
    Ok((exported, trees))
}

/// The tar `tree` (entries under `old/`, as the engine exports a directory) with its entries moved
/// under `new/`; any entry outside `old/`, or leading out of it, is refused.
fn rename_tree(tree: &[u8], old: &str, new: &str) -> std::io::Result<Vec<u8>> {
    let mut out = tar::Builder::new(Vec::new());
    let mut archive = tar::Archive::new(tree);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let rest = path
            .strip_prefix(old)
            .map_err(|_| invalid(format!("entry {} is not under {old}/", path.display())))?;
        if rest
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(invalid(format!("entry {} leads out", path.display())));
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(invalid(format!(
                "entry {} is neither a file nor a directory",
                path.display()
            )));
        }
        let mut header = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        out.append_data(&mut header, Path::new(new).join(rest), data.as_slice())?;
    }
    out.into_inner()
}

fn invalid(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            append(&mut b, path, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn paths(tar: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn an_imported_tree_lands_under_its_new_name_and_nowhere_else() {
        let t = tree(&[
            ("c200/blocks/blk00000.dat", b"x"),
            ("c200/.regbox-snapshot", b""),
        ]);
        let moved = rename_tree(&t, "c200", ".regbox-snapshots/funded").unwrap();
        assert_eq!(
            paths(&moved),
            [
                ".regbox-snapshots/funded/blocks/blk00000.dat",
                ".regbox-snapshots/funded/.regbox-snapshot"
            ]
        );
        let t = tree(&[("other/x", b"x")]);
        assert!(rename_tree(&t, "c200", "s").is_err());
        // A name the tar crate would not write: set in the header by hand.
        let mut header = tar::Header::new_gnu();
        let name = b"c200/../../etc/passwd";
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        header.set_size(1);
        header.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&header, &b"x"[..]).unwrap();
        assert!(rename_tree(&b.into_inner().unwrap(), "c200", "s").is_err());
    }
}
