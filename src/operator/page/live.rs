//! The page's live state: per watched cluster, the last picture, heights over time, the event log and
//! the headers read so far; the lookers that read each cluster (every second while a page watches,
//! else at the operator's interval); and the state as the page receives it, whole or as what is new
//! since a client's last message.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use crate::core::chain::forks::{self, Headers, Reorg};
use crate::core::names::error_chain;
use crate::core::picture::{self, Event, Picture, Reading, FORK_WINDOW};
use crate::core::topology::svg;
use crate::engine::cluster::Cluster;
use crate::engine::look::Look;
use crate::engine::node::unix_now;
use crate::operator::{ClusterState, Shared};

/// How often a cluster is read while a page watches it.
pub const LOOK_INTERVAL: Duration = Duration::from_secs(1);

/// Heights samples kept per cluster (five minutes at one a second).
const SAMPLES: usize = 300;

/// Event-log lines kept per cluster.
const EVENTS: usize = 500;

/// Reorgs kept per cluster (the fork view marks their depth).
const REORGS: usize = 50;

/// What the page knows of one cluster.
#[derive(Default)]
struct Live {
    picture: Option<Picture>,
    /// Why the last look failed, if it did.
    error: Option<String>,
    /// The nodes the samples follow, in order.
    names: Vec<String>,
    /// `(number, [time, height of each node…])`, oldest first.
    samples: VecDeque<(u64, Vec<Option<f64>>)>,
    events: VecDeque<(u64, Event)>,
    reorgs: VecDeque<(f64, Reorg)>,
    /// Numbers the next sample or event takes (only ever grow).
    next: u64,
    headers: Headers,
    /// The layout of the declared graph, and the graph it is of.
    layout: Option<Layout>,
}

/// Node positions and the graph they are of: `(nodes, edges, positions)`.
type Layout = (usize, Vec<(usize, usize)>, Vec<(f64, f64)>);

impl Live {
    fn numbered(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn log(&mut self, event: Event) {
        let n = self.numbered();
        self.events.push_back((n, event));
        while self.events.len() > EVENTS {
            self.events.pop_front();
        }
    }

    /// The layout of `n` nodes joined by `edges`, computed again only when the graph changed.
    fn layout(&mut self, n: usize, edges: Vec<(usize, usize)>) -> &[(f64, f64)] {
        if !matches!(&self.layout, Some((m, e, _)) if *m == n && *e == edges) {
            let points = svg::layout(n, &edges);
            self.layout = Some((n, edges, points));
        }
        &self.layout.as_ref().expect("just set").2
    }

    /// Takes in one look: the new picture, the events since the last, a heights sample.
    fn record(&mut self, name: &str, edges: Vec<(usize, usize)>, look: Look, at: f64) {
        let forks = forks::fork_view(&look.chains, &self.headers, FORK_WINDOW);
        let layout = self.layout(look.status.len(), edges.clone()).to_vec();
        let next = picture::picture(Reading {
            cluster: name,
            at,
            status: &look.status,
            edges: &edges,
            links: &look.links,
            held: &look.held,
            partition: &look.partition,
            forks,
            layout: &layout,
        });
        if let Some(before) = &self.picture {
            let bests = |p: &Picture| -> BTreeMap<String, String> {
                (p.nodes.iter())
                    .filter_map(|d| Some((d.name.clone(), d.best.clone()?)))
                    .collect()
            };
            let reorgs = forks::reorgs(&bests(before), &bests(&next), &self.headers);
            let mut events = picture::events_between(before, &next);
            events.extend(picture::reorg_events(at, &reorgs));
            for e in events {
                self.log(e);
            }
            self.reorgs.extend(reorgs.into_iter().map(|r| (at, r)));
            while self.reorgs.len() > REORGS {
                self.reorgs.pop_front();
            }
        }
        let names: Vec<String> = next.nodes.iter().map(|d| d.name.clone()).collect();
        if names != self.names {
            self.samples.clear();
            self.names = names;
        }
        let mut sample = vec![Some(at)];
        sample.extend(next.nodes.iter().map(|d| d.height.map(|h| h as f64)));
        let n = self.numbered();
        self.samples.push_back((n, sample));
        while self.samples.len() > SAMPLES {
            self.samples.pop_front();
        }
        self.picture = Some(next);
        self.error = None;
    }

    /// The cluster as the page receives it: everything, or what is new since `since` (a message's
    /// `seen` number).
    fn view(&self, state: Option<&ClusterState>, since: u64) -> Value {
        let samples: Vec<&Vec<Option<f64>>> = (self.samples.iter())
            .filter(|(n, _)| *n > since)
            .map(|(_, s)| s)
            .collect();
        let events: Vec<&Event> = (self.events.iter())
            .filter(|(n, _)| *n > since)
            .map(|(_, e)| e)
            .collect();
        let reorgs: Vec<Value> = (self.reorgs.iter())
            .map(|(at, r)| json!({"at": at, "node": r.node, "from": r.from, "to": r.to, "depth": r.depth}))
            .collect();
        json!({
            "picture": self.picture,
            "error": self.error,
            "names": self.names,
            "samples": samples,
            "events": events,
            "reorgs": reorgs,
            "pass": state.and_then(|s| s.last_pass.as_ref()),
            "failing": state.map_or(0, |s| s.failing),
        })
    }
}

/// The page's state of every watched cluster, and who is watching.
pub struct Pages {
    clusters: Mutex<BTreeMap<String, Live>>,
    /// Grows with every change; a page's stream waits on it.
    version: watch::Sender<u64>,
    viewers: AtomicUsize,
    /// Wakes the lookers when a page starts watching (to read at once, and every second from then).
    arrived: Notify,
}

impl Default for Pages {
    fn default() -> Self {
        Pages {
            clusters: Mutex::default(),
            version: watch::channel(0).0,
            viewers: AtomicUsize::new(0),
            arrived: Notify::new(),
        }
    }
}

/// A page watching; counted while it lives.
pub struct Viewer(Shared);

impl Viewer {
    /// A page starts watching, until the viewer is dropped; the receiver sees every change.
    pub fn new(op: Shared) -> (Viewer, watch::Receiver<u64>) {
        op.pages.viewers.fetch_add(1, Ordering::SeqCst);
        op.pages.arrived.notify_waiters();
        let version = op.pages.version.subscribe();
        (Viewer(op), version)
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.0.pages.viewers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Pages {
    fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    fn with(&self, cluster: &str, f: impl FnOnce(&mut Live)) {
        f(self
            .clusters
            .lock()
            .unwrap()
            .entry(cluster.to_string())
            .or_default());
        self.changed();
    }

    /// Adds a line to `cluster`'s event log (a pass's changes, an error, a request carried out).
    pub fn log(&self, cluster: &str, event: Event) {
        self.with(cluster, |live| live.log(event));
    }

    /// Takes in one look at `cluster` — its declared edges and what was read, or why it could not be
    /// read — with the headers known after it.
    pub fn take_in(
        &self,
        cluster: &str,
        read: Result<(Vec<(usize, usize)>, Look), String>,
        headers: Headers,
    ) {
        self.with(cluster, |live| {
            live.headers = headers;
            match read {
                Ok((edges, look)) => live.record(cluster, edges, look, unix_now()),
                Err(e) => {
                    if live.error.as_ref() != Some(&e) {
                        let text = format!("cannot read the cluster: {e}");
                        live.log(Event::new(unix_now(), "error", text));
                    }
                    live.error = Some(e);
                }
            }
        });
    }

    /// Forgets a cluster no longer watched.
    pub fn forget(&self, cluster: &str) {
        self.clusters.lock().unwrap().remove(cluster);
        self.changed();
    }

    fn watched(&self) -> bool {
        self.viewers.load(Ordering::SeqCst) > 0
    }

    /// The state the page receives: every cluster's view, with what is new since `seen` (a cluster
    /// missing from it gets everything), and the numbers to pass as `seen` next time.
    pub fn state(
        &self,
        states: &[ClusterState],
        seen: &BTreeMap<String, u64>,
    ) -> (Value, BTreeMap<String, u64>) {
        let all = self.clusters.lock().unwrap();
        let mut views = serde_json::Map::new();
        let mut next = BTreeMap::new();
        for (name, live) in all.iter() {
            let state = states.iter().find(|s| &s.cluster == name);
            let since = seen.get(name).copied().unwrap_or(0);
            views.insert(name.clone(), live.view(state, since));
            next.insert(name.clone(), live.next);
        }
        (Value::Object(views), next)
    }
}

/// Reads `cluster` for the page until the task is dropped: every [`LOOK_INTERVAL`] while a page
/// watches, else every `interval`.
pub async fn keep_looking(op: Shared, cluster: String, interval: Duration) {
    loop {
        look_once(&op, &cluster).await;
        let wait = if op.pages.watched() {
            LOOK_INTERVAL
        } else {
            interval
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = op.pages.arrived.notified() => {}
        }
    }
}

/// One look at `cluster`, recorded (or why it failed).
async fn look_once(op: &Shared, cluster: &str) {
    let mut headers = {
        let mut all = op.pages.clusters.lock().unwrap();
        std::mem::take(&mut all.entry(cluster.to_string()).or_default().headers)
    };
    let read = async {
        let c = Cluster::open(Some(cluster)).await?;
        let edges: Vec<(usize, usize)> = c.spec().edges.iter().map(|e| (e.from, e.to)).collect();
        let look = c.look(&mut headers, FORK_WINDOW).await?;
        Ok::<_, crate::engine::error::Error>((edges, look))
    }
    .await;
    let read = read.map_err(|e| error_chain(&e));
    op.pages.take_in(cluster, read, headers);
}

/// What the page is told about the operator itself.
#[derive(Serialize)]
pub struct About {
    pub read_only: bool,
    pub version: &'static str,
}
