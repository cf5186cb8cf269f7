//! Bringing nodes to run: the container work of a converge pass (removals, then each node created,
//! started or unpaused, in 16 engine slots, each awaited until bitcoind answers RPC, and the early
//! edges dialed as soon as both ends answer), and regbox's recipe for a node's container.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use tokio::time::Instant;
use tracing::Instrument;

use crate::core::chain::wait::{Sample, WaitFor};
use crate::core::cluster::blueprint;
use crate::core::cluster::plan::ContainerActions;
use crate::core::cluster::timing::{self, NodeTimes};
use crate::core::faults::throttle::Limits;
use crate::core::partition::BASE;
use crate::core::topology::{Edge, NodeId};
use crate::engine::cluster::Cluster;
use crate::engine::docker::{ContainerSpec, Net};
use crate::engine::error::{Error, Result};
use crate::engine::node::Node;
use crate::engine::reconcile::{Effects, Nets, DOCKER_CONCURRENCY};
use crate::engine::wait::{wait_until, Check};

/// While a node is awaited, how often the engine is asked whether its container stopped.
const EXIT_CHECK_EVERY: Duration = Duration::from_millis(500);
/// How often a starting node is asked whether it answers RPC.
const READY_POLL: Duration = Duration::from_millis(20);

impl Cluster {
    /// Container work: removals first, then every node to start is created, started or unpaused and
    /// awaited (readiness waits hold none of the 16 engine slots, so creation goes on meanwhile); each
    /// of the `early` edges is dialed as soon as both its ends are ready. Returns the edges dialed, and
    /// when.
    pub(crate) async fn act_containers(
        &self,
        actions: &ContainerActions,
        early: &[Edge],
        nets: &Nets,
        timeout: Duration,
        fx: &Effects<'_>,
    ) -> Result<Vec<(Edge, Instant)>> {
        let docker = &self.docker;
        let outdated: Vec<&String> = (actions.remove.iter())
            .chain(
                actions
                    .replace
                    .iter()
                    .map(|&n| &self.nodes[n].layout.container),
            )
            .collect();
        if !outdated.is_empty() {
            fx.progress.stage(
                &format!("removing {} outdated containers", outdated.len()),
                outdated.len() as u64,
            );
            // One at a time and still attached: the nodes that stay see these sessions close (a
            // detached node's sessions would freeze), and no network's endpoints go at once
            // (`Docker::detach` says why that matters).
            for &n in &actions.replace {
                // bitcoind flushes its chain to the volume the new container takes over.
                docker
                    .stop(&self.nodes[n].layout.container, Duration::from_secs(10))
                    .await?;
            }
            for c in outdated {
                docker.remove_container(c).await?;
                fx.progress.inc();
            }
        }
        for &n in &actions.release {
            self.release(n).await?;
        }
        // A container made again keeps its node's throttle (the engine forgets it with the container).
        let throttles = if actions.create.is_empty() {
            BTreeMap::new()
        } else {
            self.throttles().await?
        };
        let throttles = &throttles;
        let work: Vec<(NodeId, Launch)> = (actions.create.iter().map(|&n| (n, Launch::Create)))
            .chain(actions.start.iter().map(|&n| (n, Launch::Start)))
            .chain(actions.unpause.iter().map(|&n| (n, Launch::Unpause)))
            .collect();
        fx.progress
            .stage(&format!("starting {} nodes", work.len()), work.len() as u64);
        let begun = Instant::now();
        let ready: std::sync::Mutex<BTreeSet<NodeId>> = Default::default();
        let dialed: std::sync::Mutex<Vec<(Edge, Instant)>> = Default::default();
        let (ready, dialed_ref) = (&ready, &dialed);
        let started = stream::iter(work.iter().map(|&(node, how)| {
            let span = tracing::debug_span!("node", name = self.nodes[node].name());
            async move {
                fx.cancel.check()?;
                let mut times = NodeTimes::default();
                times[0] = begun.elapsed();
                let limits = throttles.get(&node).copied();
                self.start_node(node, how, limits, nets, fx, &mut times)
                    .await?;
                Ok::<_, Error>((node, times))
            }
            .instrument(span)
        }))
        .buffer_unordered(DOCKER_CONCURRENCY);
        // A started node is awaited outside the engine's slots, so the next containers start meanwhile.
        let results: Vec<Result<NodeTimes>> = started
            .map(|started| async move {
                let (node, mut times) = started?;
                let span = tracing::debug_span!("ready", name = self.nodes[node].name());
                let t = Instant::now();
                fx.cancel
                    .guard(self.wait_ready(node, timeout))
                    .instrument(span)
                    .await?;
                times[4] = t.elapsed();
                fx.progress.inc();
                self.dial_ready_edges(node, early, ready, dialed_ref).await;
                Ok(times)
            })
            .buffer_unordered(work.len().max(1))
            .collect()
            .await;
        let times = results.into_iter().collect::<Result<Vec<NodeTimes>>>()?;
        if let Some(line) = timing::summary(begun.elapsed(), &times) {
            tracing::info!("{line}");
        }
        fx.progress
            .stage(&format!("wiring {} edges", self.spec.edges.len()), 0);
        Ok(dialed.into_inner().unwrap())
    }

    /// Marks `node` ready and dials each of the `early` edges whose ends are now both ready, best
    /// effort: the session pass sees what did not take and dials it again.
    pub(crate) async fn dial_ready_edges(
        &self,
        node: NodeId,
        early: &[Edge],
        ready: &std::sync::Mutex<BTreeSet<NodeId>>,
        dialed: &std::sync::Mutex<Vec<(Edge, Instant)>>,
    ) {
        let now_wired: Vec<Edge> = {
            let mut ready = ready.lock().unwrap();
            ready.insert(node);
            early
                .iter()
                .filter(|e| {
                    (e.from == node && ready.contains(&e.to))
                        || (e.to == node && ready.contains(&e.from))
                })
                .copied()
                .collect()
        };
        for e in now_wired {
            match self.dial_base(e).await {
                Ok(()) => dialed.lock().unwrap().push((e, Instant::now())),
                Err(err) => tracing::debug!(
                    "early dial {}-{}: {}",
                    e.from,
                    e.to,
                    crate::core::names::error_chain(&err)
                ),
            }
        }
    }

    /// `dial` over the base segment, where a node created by this run is.
    pub(crate) async fn dial_base(&self, e: Edge) -> Result<()> {
        let to = SocketAddr::new(self.nodes[e.to].layout.data_ip.into(), blueprint::P2P_PORT);
        Ok(self.nodes[e.from].rpc.add_node_onetry(to).await?)
    }

    /// Makes one node's container run: unpause, start, or create (on the control network, then attached
    /// to the data network, each with its static address, under its throttle's `limits` if it has
    /// one) and start; records how long each call took.
    pub(crate) async fn start_node(
        &self,
        node: NodeId,
        how: Launch,
        limits: Option<Limits>,
        nets: &Nets,
        fx: &Effects<'_>,
        times: &mut NodeTimes,
    ) -> Result<()> {
        let l = &self.nodes[node].layout;
        let docker = &self.docker;
        let t = Instant::now();
        match how {
            Launch::Unpause => docker.unpause(&l.container).await?,
            Launch::Start => docker.start(&l.container).await?,
            Launch::Create => {
                let control = nets.control.clone().ok_or_else(|| Error::MissingNetwork {
                    cluster: self.name().to_string(),
                    network: blueprint::control_network(self.name()),
                })?;
                let init = self.init_of(&l.image).await?;
                let mut spec = node_container(l, control, init.as_deref());
                if let Some(limits) = limits {
                    let r = limits.over(l.resources);
                    (spec.memory, spec.nano_cpus) = (Some(r.memory), r.nano_cpus);
                }
                {
                    let mut j = fx.journal.lock().unwrap();
                    j.containers.push(l.container.clone());
                    j.volumes.push(l.volume.clone());
                    if l.disk.is_some() {
                        j.volumes.push(blueprint::disk_volume(&l.volume));
                    }
                }
                if let Some(size) = l.disk {
                    self.prepare_disk(l, size, fx.progress).await?;
                }
                // Across hosts, on the node's host (a listing may have placed an old container
                // of the name on the host the node left).
                self.place_node(l.index);
                docker
                    .create(&l.container, &spec)
                    .instrument(tracing::debug_span!("create"))
                    .await?;
                if !l.as_root {
                    // The declared clock, also over what a `clock` left on a volume reused.
                    self.write_clock(l, &Cluster::declared_clock(l), None)
                        .await?;
                }
                times[1] = t.elapsed();
                fx.cancel.check()?;
                let data = nets.segment(self.name(), BASE)?;
                let t = Instant::now();
                docker
                    .connect_network(&l.container, data, l.data_ip)
                    .instrument(tracing::debug_span!("attach"))
                    .await?;
                times[2] = t.elapsed();
                fx.cancel.check()?;
                let t = Instant::now();
                docker
                    .start(&l.container)
                    .instrument(tracing::debug_span!("start"))
                    .await?;
                times[3] = t.elapsed();
                return Ok(());
            }
        }
        times[3] = t.elapsed();
        Ok(())
    }

    /// The init `image` carries, when it carries regbox's (its label, which says which init),
    /// asked of the engine once per image.
    pub(crate) async fn init_of(&self, image: &str) -> Result<Option<String>> {
        if let Some(known) = self.inits.lock().unwrap().get(image) {
            return Ok(known.clone());
        }
        let labels = self.docker.image(image).await?.map(|(_, l)| l);
        let init = labels.and_then(|mut l| l.remove(crate::engine::image::LABEL_INIT));
        self.inits
            .lock()
            .unwrap()
            .insert(image.to_string(), init.clone());
        Ok(init)
    }

    /// Waits until a node answers RPC (tolerating refused connections and warm-up) and has loaded its
    /// mempool, then loads its wallet if it has one. If its container stops meanwhile, fails within
    /// `EXIT_CHECK_EVERY` with its last log lines.
    pub(crate) async fn wait_ready(&self, node: NodeId, timeout: Duration) -> Result<()> {
        let n = &self.nodes[node];
        let what = WaitFor::Ready(Some(vec![n.name().to_string()]));
        let label = format!("node `{}` to answer RPC", n.name());
        // The engine is asked whether the container still runs only now and then: at 20 ms a look, one
        // inspect per look and node would load the engine that is starting the other nodes.
        let looked = std::sync::Mutex::new(Instant::now());
        wait_until(&label, timeout, READY_POLL, || async {
            let Sample::NotReady(why) = n.sample(what.reading()).await? else {
                return Ok(Check::Ready(()));
            };
            let look = {
                let mut last = looked.lock().unwrap();
                let due = last.elapsed() >= EXIT_CHECK_EVERY;
                if due {
                    *last = Instant::now();
                }
                due
            };
            if look && !self.docker.is_running(&n.layout.container).await? {
                return Err(self.exited(n).await);
            }
            Ok(Check::Pending(why))
        })
        .await?;
        if self.spec.nodes[node].wallet {
            n.rpc.ensure_wallet().await?;
        }
        Ok(())
    }

    async fn exited(&self, n: &Node) -> Error {
        let lines: Vec<String> = self
            .docker
            .logs(&n.layout.container, Some(20), false)
            .filter_map(|l| async { l.ok() })
            .collect()
            .await;
        Error::Exited {
            node: n.name().to_string(),
            logs: lines.concat(),
        }
    }
}

/// How a node's container is brought to run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Launch {
    Create,
    Start,
    Unpause,
}

/// regbox's recipe for a node's container, made on the control network: any image with bitcoind on
/// its PATH works (its own entrypoint is bypassed); the image's own user, or root where the image is
/// not known to suit its datadir (root keeps only the capability that writes a datadir of another
/// owner); a read-only root with the datadir volume and a small `noexec` /tmp writable; memory (no
/// swap), processes and, when asked, CPU bounded.
pub(crate) fn node_container(
    l: &blueprint::NodeLayout,
    control: Net,
    init: Option<&str>,
) -> ContainerSpec {
    let mut labels = l.labels.clone();
    let mut entrypoint = vec!["bitcoind".to_string()];
    if let Some(which) = init {
        // bitcoind as the child of regbox's init, which restarts it in place (`reset`, snapshots);
        // the label says which init (`image::init_hash`).
        entrypoint.insert(0, blueprint::INIT_PATH.into());
        labels.insert(blueprint::LABEL_INIT.into(), which.into());
    }
    ContainerSpec {
        image: l.image.clone(),
        entrypoint,
        cmd: l.args.clone(),
        env: l.env.clone(),
        user: l.as_root.then(|| "0:0".into()),
        labels,
        network: Some((control, Some(l.control_ip))),
        cap_add: if l.as_root {
            vec!["DAC_OVERRIDE".into()]
        } else {
            Vec::new()
        },
        tmpfs: vec![("/tmp".into(), "rw,noexec,nosuid,size=16m".into())],
        memory: Some(l.resources.memory),
        nano_cpus: l.resources.nano_cpus,
        pids_limit: Some(blueprint::PIDS_LIMIT),
        volume: Some((l.volume.clone(), blueprint::DATADIR.to_string())),
        stop_timeout: 10,
        ..ContainerSpec::default()
    }
}
