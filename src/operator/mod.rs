//! The operator (`regbox operator`): one reconciler per cluster, running until stopped. A pass runs on a
//! timer, on the cluster's container events (a node died, was killed for memory, paused or removed from
//! outside) and when its manifest changes; it applies the manifest when it changed, repairs the cluster
//! (`Cluster::repair`), samples every node for `/metrics`, and is reported in `/status`. A failed pass
//! waits an error backoff before the next. Nothing is kept but what Docker's labels hold, so the
//! operator can restart, and the engine too. Its web page (`page`) draws every watched cluster live;
//! read-only (`regbox dashboard`), it only samples and draws.

pub mod auth;
pub mod client;
pub mod http;
pub mod page;
pub mod tls;
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::core::cluster::manifest::ClusterSpec;
use crate::core::cluster::metrics::{self, ClusterMetrics};
use crate::engine::docker::ContainerEvent;

pub use watch::run;

/// Reads and validates a manifest; the error is worded for a person.
pub type Loader = Box<dyn Fn(&Path) -> Result<ClusterSpec, String>>;

/// How the operator runs.
pub struct Options {
    /// Manifests whose clusters it keeps (applied when they change); none: every cluster on the engine,
    /// as recorded.
    pub manifests: Vec<PathBuf>,
    /// Reads and validates a manifest (the CLI's reader, with located errors).
    pub load: Loader,
    /// Time between passes when nothing triggers one.
    pub interval: Duration,
    /// Limit for each wait inside a pass or a request.
    pub timeout: Duration,
}

/// One pass, as `/status` reports it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    /// When it started, in seconds since the Unix epoch.
    pub started: f64,
    pub seconds: f64,
    /// What started it: `start`, `timer`, `event: <container> <action>`, `manifest changed`, or a
    /// request.
    pub trigger: String,
    /// The manifest was applied (it changed, or its cluster did not exist).
    pub applied: bool,
    /// What the pass changed, one line each (empty: the cluster was as declared).
    pub changes: Vec<String>,
    pub error: Option<String>,
    /// Seconds until the next pass unless something triggers one sooner (longer after errors).
    pub next_in: f64,
}

/// A reason for a pass of one cluster now.
#[derive(Debug, Clone)]
struct Kick {
    cluster: String,
    why: String,
    /// The engine's event about one of the cluster's containers, if that is the reason.
    event: Option<ContainerEvent>,
}

/// What the operator knows of one cluster.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterState {
    pub cluster: String,
    pub manifest: Option<PathBuf>,
    /// The declared size: nodes and edges.
    pub declared_nodes: usize,
    pub declared_edges: usize,
    /// Nodes held down on purpose (`regbox stop`, `kill`, `pause`).
    pub held: Vec<String>,
    pub last_pass: Option<PassReport>,
    /// Consecutive failed passes.
    pub failing: u32,
    pub metrics: ClusterMetrics,
}

/// The operator's shared state: every watched cluster's state and the channel that wakes its watcher.
pub struct Operator {
    clusters: Mutex<BTreeMap<String, ClusterState>>,
    kicks: Mutex<BTreeMap<String, mpsc::Sender<Kick>>>,
    /// Clusters taken down through it: no longer kept, even when a manifest declares them.
    downed: Mutex<BTreeSet<String>>,
    /// The container the operator runs in (by id), which joins each cluster's control network.
    pub container: Option<String>,
    /// How long its passes and the verbs it is asked for wait while another regbox changes the
    /// cluster (`--wait-lock`).
    pub lock_wait: std::time::Duration,
    /// The clusters its HTTP interface acts on.
    pub scope: Scope,
    /// Wakes the discovery of clusters on the engine (with [`Scope::Engine`]).
    found: tokio::sync::Notify,
    /// Only reads (`regbox dashboard`): passes repair nothing and the HTTP interface carries out no verb
    /// that changes a cluster.
    pub read_only: bool,
    /// What its web page shows of each cluster.
    pub pages: page::Pages,
}

/// The clusters an operator acts on when asked over HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Those its manifests declare, and no other (`apply` of another cluster included).
    Declared(BTreeSet<String>),
    /// Every cluster on the engine, as it keeps every one (started without manifests): those there
    /// are, and those it is asked to make, which it keeps from then on.
    Engine,
}

impl Operator {
    /// An operator with nothing watched yet, running in `container` (by id) if it runs in one, whose
    /// verbs wait up to `lock_wait` for another regbox changing the cluster, acting on the clusters of
    /// `scope`.
    pub fn new(
        container: Option<String>,
        lock_wait: std::time::Duration,
        scope: Scope,
    ) -> Operator {
        Operator {
            clusters: Mutex::default(),
            kicks: Mutex::default(),
            downed: Mutex::default(),
            container,
            lock_wait,
            scope,
            found: tokio::sync::Notify::new(),
            read_only: false,
            pages: page::Pages::default(),
        }
    }

    /// Looks for clusters on the engine now rather than at the next interval (one was just made
    /// through it), so that it keeps them from now on.
    pub fn look_for_clusters(&self) {
        self.found.notify_one();
    }

    /// Whether a request may act on `cluster`: one its manifests declare, or with no manifests any;
    /// else why not, naming those it keeps.
    pub fn serves(&self, cluster: &str) -> Result<(), String> {
        match &self.scope {
            Scope::Engine => Ok(()),
            Scope::Declared(names) if names.contains(cluster) => Ok(()),
            Scope::Declared(names) => {
                let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                Err(format!(
                    "no cluster `{}` here: this operator acts only on the clusters it keeps ({})",
                    crate::core::names::shown(cluster),
                    names.join(", ")
                ))
            }
        }
    }

    /// Every watched cluster's state.
    pub fn states(&self) -> Vec<ClusterState> {
        self.clusters.lock().unwrap().values().cloned().collect()
    }

    /// The Prometheus text of every watched cluster.
    pub fn exposition(&self) -> String {
        let all: Vec<ClusterMetrics> = self
            .clusters
            .lock()
            .unwrap()
            .values()
            .map(|s| s.metrics.clone())
            .collect();
        metrics::exposition(&all)
    }

    /// Whether `cluster` is watched.
    pub fn watches(&self, cluster: &str) -> bool {
        self.kicks.lock().unwrap().contains_key(cluster)
    }

    /// Wakes `cluster`'s watcher for a pass now, saying why.
    pub fn kick(&self, cluster: &str, why: &str) {
        self.send(Kick {
            cluster: cluster.to_string(),
            why: why.to_string(),
            event: None,
        });
    }

    /// Wakes the watcher of the cluster an engine event is about: the event says what happened to one
    /// of its containers (see `watch::next_trigger` and `Cluster::repair_after`).
    fn event(&self, e: ContainerEvent) {
        self.send(Kick {
            cluster: e.cluster.clone(),
            why: format!("event: {} {}", e.container, e.action),
            event: Some(e),
        });
    }

    fn send(&self, kick: Kick) {
        if let Some(tx) = self.kicks.lock().unwrap().get(&kick.cluster) {
            let _ = tx.try_send(kick);
        }
    }

    fn update(&self, cluster: &str, f: impl FnOnce(&mut ClusterState)) {
        let mut all = self.clusters.lock().unwrap();
        let state = all
            .entry(cluster.to_string())
            .or_insert_with(|| ClusterState {
                cluster: cluster.to_string(),
                ..ClusterState::default()
            });
        f(state);
    }

    fn state(&self, cluster: &str) -> Option<ClusterState> {
        self.clusters.lock().unwrap().get(cluster).cloned()
    }

    /// Stops keeping `cluster`, which a `down` sent to the operator removed: its watcher ends at its
    /// next pass instead of making the cluster again from its manifest.
    pub fn let_go(&self, cluster: &str) {
        self.downed.lock().unwrap().insert(cluster.to_string());
    }

    fn let_go_of(&self, cluster: &str) -> bool {
        self.downed.lock().unwrap().contains(cluster)
    }

    fn forget(&self, cluster: &str) {
        self.clusters.lock().unwrap().remove(cluster);
        self.kicks.lock().unwrap().remove(cluster);
        self.pages.forget(cluster);
    }
}

/// The container this process runs in on the engine, if it runs in one (the operator then joins each
/// cluster's control network).
pub async fn own_container() -> Option<String> {
    crate::engine::docker::Docker::connect()
        .await
        .ok()?
        .own_container()
        .await
}

/// The wait before the next pass after `failures` failed ones in a row: 1 s, doubling, at most `cap`.
pub fn backoff(failures: u32, cap: Duration) -> Duration {
    let secs = 1u64 << failures.saturating_sub(1).min(16);
    Duration::from_secs(secs).min(cap)
}

/// Shared handle.
pub type Shared = Arc<Operator>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_manifests_it_acts_only_on_their_clusters() {
        let declared = Scope::Declared(["lab".to_string(), "ring".to_string()].into());
        let op = Operator::new(None, Duration::ZERO, declared);
        assert_eq!(op.serves("lab"), Ok(()));
        assert_eq!(
            op.serves("other").unwrap_err(),
            "no cluster `other` here: this operator acts only on the clusters it keeps (`lab`, `ring`)"
        );
        let everything = Operator::new(None, Duration::ZERO, Scope::Engine);
        assert_eq!(everything.serves("other"), Ok(()));
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_the_cap() {
        let cap = Duration::from_secs(60);
        let waits: Vec<u64> = (1..=8).map(|f| backoff(f, cap).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(1000, cap), cap);
    }
}
