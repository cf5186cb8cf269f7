//! The operator's loops: one watcher per cluster (a pass, then a wait for the next trigger or the
//! error backoff), the follower of the engine's container events, and — with no manifest — the
//! discovery of clusters on the engine.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::stream::{self, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::core::cluster::blueprint;
use crate::core::cluster::manifest::ClusterSpec;
use crate::core::cluster::metrics::{ClusterMetrics, NodeMetrics};
use crate::core::names::error_chain;
use crate::core::picture::Event;
use crate::engine::cluster::Cluster;
use crate::engine::docker::Docker;
use crate::engine::error::Error;
use crate::engine::lifecycle::{self, UpOptions};
use crate::engine::node::{unix_now, Node, SAMPLE_TIMEOUT};
use crate::engine::progress::Progress;
use crate::engine::repair::Repair;
use crate::engine::wait::RPC_CONCURRENCY;
use crate::operator::{backoff, Kick, Operator, Options, PassReport, Shared};

/// The longest wait after failed passes, or between reconnections to the engine.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A pass may take this many `--timeout`s (an `up` waits several times) before it is given up.
const PASS_TIMEOUTS: u32 = 5;

/// Kicks waiting for a watcher; more are dropped (a pass is due anyway).
const KICKS: usize = 64;

/// How often a watched manifest is read for changes.
const MANIFEST_POLL: Duration = Duration::from_secs(1);

/// Runs the operator until `shutdown` completes: a watcher per manifest (or per cluster found on the
/// engine), and the follower of the engine's events. Watchers finish their pass before they stop.
/// Runs inside a `tokio::task::LocalSet`: the engine's futures are driven on this thread.
pub async fn run(
    opts: Options,
    op: Shared,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let opts = Rc::new(opts);
    let (stop_tx, stop) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut followers = vec![tokio::task::spawn_local(follow_events(op.clone(), None))];
    for path in &opts.manifests {
        let spec = (opts.load)(path)?;
        // A cluster across hosts: the events of every host (its first one's come twice when it is
        // this engine; kicks that come together make one pass).
        if !spec.hosts.is_empty() {
            let hosts = Some(spec.clone());
            followers.push(tokio::task::spawn_local(follow_events(op.clone(), hosts)));
        }
        let path = path.clone();
        tasks.spawn_local(watch_cluster(
            op.clone(),
            opts.clone(),
            spec.name,
            Some(path),
            stop.clone(),
        ));
    }
    if opts.manifests.is_empty() {
        tasks.spawn_local(discover(op.clone(), opts.clone(), stop.clone()));
    }
    shutdown.await;
    tracing::info!("operator stopping: waiting for passes under way");
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    for follower in followers {
        follower.abort();
    }
    Ok(())
}

/// Watches every cluster on the engine, starting a watcher for each new one.
async fn discover(op: Shared, opts: Rc<Options>, mut stop: watch::Receiver<bool>) {
    let mut watchers = JoinSet::new();
    loop {
        while watchers.try_join_next().is_some() {}
        match lifecycle::list().await {
            Ok(clusters) => {
                let new = |c: &lifecycle::ClusterSummary| {
                    !op.watches(&c.name) && op.serves(&c.name).is_ok()
                };
                for c in clusters.into_iter().filter(new) {
                    let (tx, rx) = mpsc::channel(KICKS);
                    op.kicks.lock().unwrap().insert(c.name.clone(), tx);
                    watchers.spawn_local(watch_with(
                        op.clone(),
                        opts.clone(),
                        c.name,
                        None,
                        rx,
                        stop.clone(),
                    ));
                }
            }
            Err(e) => tracing::warn!("cannot list clusters: {}", error_chain(&e)),
        }
        tokio::select! {
            () = tokio::time::sleep(opts.interval) => {}
            () = op.found.notified() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    while watchers.join_next().await.is_some() {}
}

async fn watch_cluster(
    op: Shared,
    opts: Rc<Options>,
    cluster: String,
    manifest: Option<PathBuf>,
    stop: watch::Receiver<bool>,
) {
    let (tx, rx) = mpsc::channel(KICKS);
    op.kicks.lock().unwrap().insert(cluster.clone(), tx);
    watch_with(op, opts, cluster, manifest, rx, stop).await
}

/// One cluster's watcher: a pass, then a wait for the next trigger — the interval, a kick (an event,
/// a request), a manifest change — or, after a failed pass, for the backoff (which an engine event
/// ends after the first failure of a row: see [`next_trigger`]).
async fn watch_with(
    op: Shared,
    opts: Rc<Options>,
    cluster: String,
    manifest: Option<PathBuf>,
    mut kicks: mpsc::Receiver<Kick>,
    mut stop: watch::Receiver<bool>,
) {
    op.update(&cluster, |s| s.manifest = manifest.clone());
    // The page's reader of this cluster lives as long as its watcher.
    let looker = tokio::task::spawn_local(crate::operator::page::live::keep_looking(
        op.clone(),
        cluster.clone(),
        opts.interval,
    ));
    let _looker = AbortOnDrop(looker);
    let mut trigger = Trigger {
        why: "start".to_string(),
        died: Vec::new(),
    };
    let mut applied: Option<String> = None;
    loop {
        let started = SystemTime::now();
        let t = Instant::now();
        // A pass that hangs (a wedged engine call) is given up; dropping it releases the lock.
        let outcome = tokio::time::timeout(
            opts.timeout * PASS_TIMEOUTS,
            pass(
                &op,
                &opts,
                &cluster,
                manifest.as_deref(),
                &mut applied,
                &trigger.died,
            ),
        )
        .await
        .unwrap_or_else(|_| {
            Err(PassError::Failed(format!(
                "the pass did not finish within {:?}",
                opts.timeout * PASS_TIMEOUTS
            )))
        });
        if let Err(PassError::Gone) = outcome {
            tracing::info!("cluster `{cluster}` is gone; no longer watched");
            op.forget(&cluster);
            return;
        }
        let failing = match &outcome {
            Ok(_) => 0,
            Err(_) => op.state(&cluster).map_or(0, |s| s.failing) + 1,
        };
        let wait = if failing == 0 {
            opts.interval
        } else {
            backoff(failing, MAX_BACKOFF)
        };
        let seconds = t.elapsed().as_secs_f64();
        let report = PassReport {
            started: started
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
            seconds,
            trigger: trigger.why.clone(),
            next_in: wait.as_secs_f64(),
            ..PassReport::default()
        };
        let report = record(&op, &cluster, outcome, report, seconds, wait);
        op.update(&cluster, |s| {
            s.failing = failing;
            s.last_pass = Some(report);
        });
        let backing_off = match failing {
            0 => Backoff::None,
            1 => Backoff::UntilEvent,
            _ => Backoff::Full,
        };
        let next = next_trigger(
            wait,
            backing_off,
            &mut kicks,
            manifest.as_deref(),
            applied.as_deref(),
            &mut stop,
        );
        match next.await {
            Some(why) => trigger = why,
            None => return,
        }
    }
}

/// Ends a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Records a pass's outcome in the operator's state (its metrics, or its error) and completes its
/// report with what it changed or why it failed.
fn record(
    op: &Shared,
    cluster: &str,
    outcome: Result<Done, PassError>,
    report: PassReport,
    seconds: f64,
    wait: Duration,
) -> PassReport {
    match outcome {
        Ok(done) => {
            if !done.changes.is_empty() {
                tracing::info!("{cluster}: {}", done.changes.join("; "));
                let text = format!("pass ({}): {}", report.trigger, done.changes.join("; "));
                op.pages
                    .log(cluster, Event::new(report.started, "pass", text));
            }
            op.update(cluster, |s| {
                s.declared_nodes = done.metrics.nodes.len();
                s.declared_edges = done.edges;
                s.held = done.held;
                s.metrics = ClusterMetrics {
                    passes: s.metrics.passes + 1,
                    errors: s.metrics.errors,
                    changes: s.metrics.changes + done.changes.len() as u64,
                    pass_seconds_sum: s.metrics.pass_seconds_sum + seconds,
                    last_pass_seconds: seconds,
                    ..done.metrics
                };
            });
            PassReport {
                applied: done.applied,
                changes: done.changes,
                ..report
            }
        }
        Err(e) => {
            let e = e.to_string();
            tracing::warn!("{cluster}: pass failed (next in {wait:?}): {e}");
            let text = format!("pass ({}) failed: {e}", report.trigger);
            op.pages
                .log(cluster, Event::new(report.started, "error", text));
            op.update(cluster, |s| {
                s.metrics.cluster = cluster.to_string();
                s.metrics.passes += 1;
                s.metrics.errors += 1;
                s.metrics.pass_seconds_sum += seconds;
                s.metrics.last_pass_seconds = seconds;
            });
            PassReport {
                error: Some(e),
                ..report
            }
        }
    }
}

/// How the wait after a pass treats kicks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backoff {
    /// The pass succeeded: any kick ends the wait.
    None,
    /// The first failed pass of a row: an engine event — queued during the pass or coming now — says
    /// what happened (a node died under it, say), so it ends the wait; other kicks wait for it.
    UntilEvent,
    /// Passes keep failing (a node that dies whenever it starts sends an event each time): only the
    /// wait ends it.
    Full,
}

/// What starts a pass.
struct Trigger {
    /// Why, for `/status`: the kicks, a timer, a manifest change.
    why: String,
    /// Node containers the engine said died (`die`, `oom`) since the last pass.
    died: Vec<String>,
}

/// Waits for the next pass's trigger; None when the operator stops. While backing off, the kicks
/// that do not end the wait (see [`Backoff`]) are folded into the trigger.
async fn next_trigger(
    wait: Duration,
    backing_off: Backoff,
    kicks: &mut mpsc::Receiver<Kick>,
    manifest: Option<&Path>,
    applied: Option<&str>,
    stop: &mut watch::Receiver<bool>,
) -> Option<Trigger> {
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    let mut poll = tokio::time::interval(MANIFEST_POLL);
    poll.tick().await;
    let quiet = backing_off != Backoff::None;
    let mut all: Vec<Kick> = Vec::new();
    let why = loop {
        tokio::select! {
            () = &mut deadline => break if quiet { "backoff over" } else { "timer" }.to_string(),
            Some(kick) = kicks.recv(), if backing_off != Backoff::Full => {
                let ends = !quiet || kick.event.is_some();
                let why = kick.why.clone();
                all.push(kick);
                if ends {
                    break why;
                }
            }
            _ = poll.tick(), if manifest.is_some() && !quiet => {
                if digest(manifest.unwrap()).as_deref() != applied {
                    break "manifest changed".to_string();
                }
            }
            _ = stop.wait_for(|s| *s) => return None,
        }
    };
    // Kicks that came together make one pass.
    while let Ok(more) = kicks.try_recv() {
        all.push(more);
    }
    Some(trigger(why, all))
}

/// The trigger of a pass that `why` started, with the kicks that came together: their reasons once
/// each, `why` first, and the node containers their events say died.
fn trigger(why: String, kicks: Vec<Kick>) -> Trigger {
    let mut reasons = vec![why];
    let mut died = Vec::new();
    for kick in kicks {
        if let Some(e) = kick.event.filter(|e| e.role.is_none()) {
            if matches!(e.action.as_str(), "die" | "oom") && !died.contains(&e.container) {
                died.push(e.container);
            }
        }
        if !reasons.contains(&kick.why) {
            reasons.push(kick.why);
        }
    }
    Trigger {
        why: reasons.join("; "),
        died,
    }
}

/// A manifest's contents as a hash (None when unreadable). Read as the loader reads it: a regular file
/// of at most `MAX_SOURCE_BYTES`; a device or FIFO put in its place is not read at all (one too large
/// reads as unreadable, and the pass it starts says why).
fn digest(path: &Path) -> Option<String> {
    let bytes = crate::cli::load::read_regular(path, crate::core::yaml::MAX_SOURCE_BYTES).ok()?;
    Some(hex::encode(Sha256::digest(bytes)))
}

/// What a successful pass found and did.
struct Done {
    applied: bool,
    changes: Vec<String>,
    held: Vec<String>,
    edges: usize,
    metrics: ClusterMetrics,
}

#[derive(Debug, thiserror::Error)]
enum PassError {
    /// The cluster no longer exists and no manifest declares it.
    #[error("the cluster is gone")]
    Gone,
    #[error("{0}")]
    Failed(String),
}

impl From<Error> for PassError {
    fn from(e: Error) -> Self {
        PassError::Failed(error_chain(&e))
    }
}

/// One pass: applies the manifest when it changed (or its cluster is missing), repairs the cluster,
/// samples its nodes.
async fn pass(
    op: &Operator,
    opts: &Options,
    name: &str,
    manifest: Option<&Path>,
    applied: &mut Option<String>,
    died: &[String],
) -> Result<Done, PassError> {
    let mut changes = Vec::new();
    let mut applied_now = false;
    let me = op.container.clone();
    // The manifest is read again when it changed; a cluster it declares that is missing is made.
    if let Some(path) = manifest.filter(|p| digest(p) != *applied) {
        applied_now = apply(opts, name, path, (me.clone(), op.lock_wait), &mut changes).await?;
        *applied = digest(path);
    }
    let mut cluster = match Cluster::open(Some(name)).await {
        Ok(c) => c,
        Err(Error::UnknownCluster(_)) => match manifest {
            // Taken down through the operator: the user wants it gone, not made again.
            _ if op.let_go_of(name) => return Err(PassError::Gone),
            None => return Err(PassError::Gone),
            Some(path) => {
                applied_now =
                    apply(opts, name, path, (me.clone(), op.lock_wait), &mut changes).await?;
                Cluster::open(Some(name)).await?
            }
        },
        Err(e) => return Err(e.into()),
    };
    // In a container, the operator reaches the nodes over the cluster's control network.
    if let Some(me) = &me {
        cluster.attach(me).await?;
    }
    // Read-only, the cluster is left as it is: only its holds are read.
    let repair = if op.read_only {
        Repair {
            held: cluster.held().await?,
            ..Repair::default()
        }
    } else {
        (cluster.repair_after(opts.timeout, op.lock_wait, died)).await?
    };
    changes.extend(repair.changes);
    let previous = op.state(name).map(|s| s.metrics).unwrap_or_default();
    let metrics = sample(&cluster, &previous, &repair.restarted, &repair.held).await;
    Ok(Done {
        applied: applied_now,
        changes,
        held: repair.held,
        edges: cluster.spec().edges.len(),
        metrics,
    })
}

/// Applies the manifest at `path` when it declares something other than what cluster `name` recorded
/// (a restarted operator finds its manifest applied, and leaves nodes held on purpose alone); adds the
/// plan's lines to `changes` and says whether it applied.
async fn apply(
    opts: &Options,
    name: &str,
    path: &Path,
    (attach, lock_wait): (Option<String>, Duration),
    changes: &mut Vec<String>,
) -> Result<bool, PassError> {
    let spec = (opts.load)(path).map_err(PassError::Failed)?;
    if spec.name != name {
        return Err(PassError::Failed(format!(
            "{} now declares cluster `{}`, not `{name}`; restart the operator to follow it",
            path.display(),
            spec.name
        )));
    }
    let (resolved, recorded, plan) = lifecycle::plan_up(spec.clone()).await?;
    if recorded.as_ref() == Some(&resolved) {
        return Ok(false);
    }
    let names: Vec<String> = resolved.nodes.iter().map(|n| n.name.clone()).collect();
    let images: Vec<String> = resolved.nodes.iter().map(|n| n.image.clone()).collect();
    let faults = |f: &crate::core::faults::plane::NodeFaults| {
        crate::core::faults::plane::describe(f, |i| names[i].clone())
    };
    changes.extend(
        plan.diff(&names, &images, faults)
            .into_iter()
            .map(|(sign, what, detail)| format!("{sign} {what} {detail}").trim_end().to_string()),
    );
    let up = UpOptions {
        progress: Progress::default(),
        timeout: opts.timeout,
        teardown_on_drop: false,
        attach,
        lock_wait,
    };
    Cluster::up(spec, &up).await?.keep();
    Ok(true)
}

/// Samples every node (a node that does not answer in time is down), carrying over the counters of
/// `previous`: a best block that left the active chain since the last sample counts as a reorg.
async fn sample(
    cluster: &Cluster,
    previous: &ClusterMetrics,
    restarted: &[String],
    held: &[String],
) -> ClusterMetrics {
    let now = unix_now();
    let samples: Vec<_> = (cluster.nodes().iter())
        .map(|node| sample_node(node, previous, restarted, held, now))
        .collect();
    let nodes: Vec<NodeMetrics> = stream::iter(samples)
        .buffered(RPC_CONCURRENCY)
        .collect()
        .await;
    let report = cluster.report();
    let segments = if report.segments.len() > 1 {
        report.segments.len()
    } else {
        0
    };
    ClusterMetrics {
        cluster: cluster.name().to_string(),
        nodes,
        segments,
        cut_pairs: cluster.cut_now().await.map_or(0, |c| c.len()),
        ..ClusterMetrics::default()
    }
}

/// One node's sample (see [`sample`]).
async fn sample_node(
    node: &Node,
    previous: &ClusterMetrics,
    restarted: &[String],
    held: &[String],
    now: f64,
) -> NodeMetrics {
    let before = previous
        .nodes
        .iter()
        .find(|n| n.node == node.name())
        .cloned()
        .unwrap_or_default();
    let mut m = NodeMetrics {
        node: node.name().to_string(),
        restarts: before.restarts + restarted.iter().any(|r| r == node.name()) as u64,
        ..before.clone()
    };
    // A node held down does not answer; asking would only wait for the timeout.
    if held.iter().any(|h| h == node.name()) {
        m.up = false;
        return m;
    }
    let vitals = tokio::time::timeout(SAMPLE_TIMEOUT, node.vitals()).await;
    let Ok(Ok(v)) = vitals else {
        m.up = false;
        return m;
    };
    if before.up && !before.best.is_empty() && before.best != v.best {
        m.record_reorg(node.sampled_reorg_depth(&before.best).await);
    }
    NodeMetrics {
        up: true,
        height: v.height,
        best: v.best,
        tip_age_s: (now - v.tip_time as f64).max(0.0),
        peers: v.peers,
        mempool_txs: v.mempool_txs,
        mempool_bytes: v.mempool_bytes,
        ..m
    }
}

/// Follows the container events of the engine — or, given a spec with hosts, of every host of it — for
/// as long as the operator runs, waking the watcher of the cluster a node event belongs to; reconnects
/// with a backoff when an engine goes away, and then wakes every watcher (what happened meanwhile was
/// not seen).
async fn follow_events(op: Shared, hosts: Option<ClusterSpec>) {
    let mut failures = 0;
    let mut connected_before = false;
    loop {
        let connected = match &hosts {
            Some(spec) => lifecycle::connect(spec).await,
            None => Docker::connect().await.map_err(Error::from),
        };
        match connected {
            Ok(docker) => {
                failures = 0;
                if connected_before {
                    tracing::info!("reconnected to the engine");
                    for state in op.states() {
                        op.kick(&state.cluster, "engine reconnected");
                    }
                }
                connected_before = true;
                let mut events = Box::pin(docker.container_events());
                while let Some(event) = events.next().await {
                    match event {
                        // Nodes carry no role. Locks, holds and the metadata come and go with
                        // commands; their events say nothing about the nodes. A fault agent that
                        // dies takes its queue with it (shaping is bypassed until it runs again).
                        Ok(e) if wakes(&e) => op.event(e),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!("engine events: {e}");
                            break;
                        }
                    }
                }
                tracing::warn!("lost the engine's events; reconnecting");
            }
            Err(e) => {
                failures += 1;
                tracing::warn!("cannot reach the engine: {}", error_chain(&e));
            }
        }
        tokio::time::sleep(backoff(failures.max(1), MAX_BACKOFF)).await;
    }
}

/// Whether a container event calls for a pass: any event of a node; a fault agent's death (its
/// removal is a pass's own doing when it replaces a dead one).
fn wakes(e: &crate::engine::docker::ContainerEvent) -> bool {
    match e.role.as_deref() {
        None => true,
        Some(role) => role == blueprint::ROLE_AGENT && (e.action == "die" || e.action == "oom"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device in a watched manifest's place is not read (reading `/dev/zero` would never end); a
    /// regular file is, and a change shows.
    #[test]
    fn the_digest_reads_regular_files_only() {
        assert_eq!(digest(Path::new("/dev/zero")), None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.yaml");
        std::fs::write(&path, "name: a\nnodes: 1\n").unwrap();
        let before = digest(&path).unwrap();
        std::fs::write(&path, "name: a\nnodes: 2\n").unwrap();
        assert_ne!(digest(&path).unwrap(), before);
        assert_eq!(digest(dir.path()), None);
    }

    fn kick(why: &str, event: Option<(&str, &str)>) -> Kick {
        Kick {
            cluster: "c".into(),
            why: why.into(),
            event: event.map(
                |(container, action)| crate::engine::docker::ContainerEvent {
                    cluster: "c".into(),
                    container: container.into(),
                    role: None,
                    action: action.into(),
                },
            ),
        }
    }

    /// The trigger after a wait of `backing_off` (10 s) with `kicks` sent 1 s into it: why it ended
    /// and after how long.
    async fn wait_with(backing_off: Backoff, kicks: Vec<Kick>) -> (String, Vec<String>, Duration) {
        let (tx, mut rx) = mpsc::channel(KICKS);
        let (_stop_tx, mut stop) = watch::channel(false);
        let t = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for k in kicks {
                tx.send(k).await.unwrap();
            }
            std::future::pending::<()>().await;
        });
        let wait = Duration::from_secs(10);
        let next = next_trigger(wait, backing_off, &mut rx, None, None, &mut stop);
        let trigger = next.await.unwrap();
        (trigger.why, trigger.died, t.elapsed())
    }

    /// After a first failed pass, a node's death ends the backoff at once (with a request that came
    /// before it folded in); a request alone waits for it; after a second failure nothing ends it.
    #[tokio::test(start_paused = true)]
    async fn an_event_ends_the_first_backoff_only() {
        let request = || kick("request: mine", None);
        let death = || kick("event: x-n1 die", Some(("x-n1", "die")));
        let (why, died, after) = wait_with(Backoff::UntilEvent, vec![request(), death()]).await;
        assert_eq!(why, "event: x-n1 die; request: mine");
        assert_eq!(died, ["x-n1"]);
        assert_eq!(after, Duration::from_secs(1));
        let (why, _, after) = wait_with(Backoff::UntilEvent, vec![request()]).await;
        assert_eq!(
            (why.as_str(), after),
            ("backoff over; request: mine", Duration::from_secs(10))
        );
        let (why, died, after) = wait_with(Backoff::Full, vec![death()]).await;
        assert_eq!(why, "backoff over; event: x-n1 die");
        assert_eq!(
            (died, after),
            (vec!["x-n1".to_string()], Duration::from_secs(10))
        );
        let (why, died, after) = wait_with(Backoff::None, vec![request()]).await;
        assert_eq!(
            (why.as_str(), after),
            ("request: mine", Duration::from_secs(1))
        );
        assert!(died.is_empty());
    }

    /// A trigger names each reason once, and the containers that died, not those paused or of another
    /// role.
    #[test]
    fn a_trigger_lists_reasons_once_and_the_nodes_that_died() {
        let mut agent = kick("event: x-agent die", Some(("x-agent", "die")));
        agent.event.as_mut().unwrap().role = Some("agent".into());
        let kicks = vec![
            kick("event: x-n1 die", Some(("x-n1", "die"))),
            kick("event: x-n1 die", Some(("x-n1", "die"))),
            kick("event: x-n2 pause", Some(("x-n2", "pause"))),
            kick("event: x-n3 oom", Some(("x-n3", "oom"))),
            agent,
        ];
        let t = trigger("timer".into(), kicks);
        assert_eq!(
            t.why,
            "timer; event: x-n1 die; event: x-n2 pause; event: x-n3 oom; event: x-agent die"
        );
        assert_eq!(t.died, ["x-n1", "x-n3"]);
    }

    /// Every node event wakes a pass; of the agent's, its death does, its removal (a pass replacing
    /// it) does not; a lock's or the metadata's never do.
    #[test]
    fn a_nodes_events_and_an_agents_death_wake_a_pass() {
        let event = |role: Option<&str>, action: &str| crate::engine::docker::ContainerEvent {
            cluster: "c".into(),
            container: "x".into(),
            role: role.map(String::from),
            action: action.into(),
        };
        assert!(wakes(&event(None, "destroy")));
        assert!(wakes(&event(Some("agent"), "die")));
        assert!(wakes(&event(Some("agent"), "oom")));
        assert!(!wakes(&event(Some("agent"), "destroy")));
        assert!(!wakes(&event(Some("lock"), "die")));
    }
}
