//! `regbox soak`: a cluster under a seeded nemesis for a while — background blocks and transactions,
//! scheduled faults begun and ended, a sampler logging tips, reorgs and block propagation — with the
//! invariants checked after every fault, an event log, and the run as JUnit.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use crate::core::cluster::manifest::ClusterSpec;
use crate::core::faults::node::Fault;
use crate::core::rng::SplitMix64;
use crate::core::soak::invariants::MEMPOOLS_AGREE;
use crate::core::soak::{
    check_all, converged, crashed, mempools, parse_chainwork, schedule, summarize, Arrivals, Event,
    EventKind, FaultKind, Limits, NodeSample, ScheduleSpec, Step, StepDetail, Verdict,
};
use crate::engine::cluster::Cluster;
use crate::engine::error::{Error, Result};
use crate::engine::exec::Exec;
use crate::engine::lifecycle::UpOptions;
use crate::engine::node::{unix_now, Node, Vitals, SAMPLE_TIMEOUT};
use crate::engine::progress::Progress;
use crate::engine::wait::{self, RPC_CONCURRENCY};

/// How long the mempools get to agree at the end before every node mines a block to confirm its own.
const MEMPOOL_RELAY: Duration = Duration::from_secs(10);
/// How long running nodes may sit on different tips of equal work before a block breaks the tie.
const TIE_AFTER: Duration = Duration::from_secs(2);
/// How long one node's sample may take; a node that takes longer counts as not running for that round.
/// How long background mining or sending on one node may take.
const ACTIVITY_TIMEOUT: Duration = Duration::from_secs(15);
/// The sampler's pace: every second, and faster while a block is on its way (for its propagation time).
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
const SAMPLE_EVERY_PENDING: Duration = Duration::from_millis(200);
/// How often a convergence wait looks.
const POLL: Duration = Duration::from_millis(250);
/// Consecutive failed samples after which a node nobody stopped is logged as crashed.
const CRASH_AFTER: u32 = 5;
/// Mixed into the seed for background activity, so it draws apart from the schedule.
const BACKGROUND_SALT: u64 = 0x736f_616b_6267;
/// What background transactions pay, in satoshis: 10 000 to 99 999.
const TX_MIN_SAT: u64 = 10_000;
const TX_SPREAD_SAT: u64 = 90_000;

/// How a soak run behaves.
#[derive(Clone)]
pub struct SoakOptions {
    pub seed: u64,
    /// How long the nemesis runs (after the cluster is up and funded).
    pub duration: Duration,
    /// The fault kinds to draw from.
    pub faults: Vec<FaultKind>,
    /// Mean quiet time between faults, and mean time a fault holds.
    pub mean_gap: Duration,
    pub mean_hold: Duration,
    /// Background blocks per minute (0: none).
    pub blocks_per_min: f64,
    /// Background transactions per minute between wallet nodes (0: none).
    pub txs_per_min: f64,
    /// How long the nodes may take to agree after a fault ends.
    pub converge: Duration,
    /// Run exactly the schedule's first this many faults, however long they take (the duration only
    /// places them); without it, faults due after the duration are dropped.
    pub steps: Option<usize>,
    pub up: UpOptions,
    /// Leave the cluster running afterwards.
    pub keep: bool,
}

impl SoakOptions {
    /// What the schedule is drawn from.
    pub fn schedule_spec(&self) -> ScheduleSpec {
        ScheduleSpec {
            seed: self.seed,
            duration: self.duration,
            faults: self.faults.clone(),
            mean_gap: self.mean_gap,
            mean_fault: self.mean_hold,
        }
    }

    /// The faults of the run over `nodes`: the schedule, cut to `steps` when given. Fewer than `steps`
    /// fit in the duration: an error naming how many do.
    pub fn steps_over(&self, spec: &ClusterSpec) -> std::result::Result<Vec<Step>, String> {
        let names = |bounded: bool| {
            (spec.nodes.iter())
                .filter(|n| !bounded || n.disk.is_some())
                .map(|n| n.name.clone())
                .collect::<Vec<_>>()
        };
        let mut steps = schedule(&self.schedule_spec(), &names(false), &names(true));
        if let Some(wanted) = self.steps {
            if steps.len() < wanted {
                return Err(format!(
                    "--steps {wanted}: seed {} over {:?} places only {} faults; lengthen --duration \
                     or ask for fewer",
                    self.seed,
                    self.duration,
                    steps.len()
                ));
            }
            steps.truncate(wanted);
        }
        Ok(steps)
    }
}

/// Why a run failed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SoakFailure {
    /// The step after which it happened (`None`: at the start or at the end).
    pub step: Option<usize>,
    /// The step, described (`kill n2, start after 8s`).
    pub fault: Option<String>,
    /// The invariant that did not hold, when one did not.
    pub invariant: Option<Verdict>,
    /// One line for people.
    pub message: String,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct SoakOutcome {
    pub cluster: String,
    pub seed: u64,
    /// Every event, in the order logged.
    pub events: Vec<Event>,
    pub failure: Option<SoakFailure>,
    /// Stopped by the caller (Ctrl-C).
    pub interrupted: bool,
    /// Why the teardown failed, when it did.
    pub teardown: Option<String>,
}

impl SoakOutcome {
    pub fn ok(&self) -> bool {
        self.failure.is_none() && !self.interrupted && self.teardown.is_none()
    }
}

/// Why the nemesis stopped early.
enum Stop {
    Violated {
        step: Option<usize>,
        verdict: Verdict,
    },
    Failed {
        step: Option<usize>,
        message: String,
    },
}

/// Brings a cluster up from `spec`, funds its wallets, and runs the soak; `on_event` sees every event as
/// it is logged. Fails only when the cluster cannot be brought up (or `cancel` completes before); after
/// that the outcome says how the run ended, and the cluster is torn down unless `keep`.
pub async fn soak(
    spec: ClusterSpec,
    opts: &SoakOptions,
    cancel: impl Future<Output = ()>,
    on_event: &(dyn Fn(&Event) + Sync),
) -> Result<SoakOutcome> {
    tokio::pin!(cancel);
    let mut cluster = Cluster::up_until(spec, &opts.up, &mut cancel).await?;
    let mut outcome = SoakOutcome {
        cluster: cluster.name().to_owned(),
        seed: opts.seed,
        events: Vec::new(),
        failure: None,
        interrupted: false,
        teardown: None,
    };
    let funded = tokio::select! {
        r = fund(&cluster, opts.converge) => r.map_err(|e| e.to_string()),
        () = &mut cancel => { outcome.interrupted = true; Err("interrupted".into()) }
    };
    match funded {
        Ok(()) => {
            let soak = Soak::new(&cluster, opts, on_event);
            let stopped = tokio::select! {
                r = soak.drive(&mut cluster) => r.err(),
                () = &mut cancel => { outcome.interrupted = true; None }
            };
            outcome.failure = stopped.map(|s| s.failure(opts.seed, &soak.steps));
            let reason = match (&outcome.failure, outcome.interrupted) {
                (_, true) => Some("interrupted".to_owned()),
                (Some(f), _) => Some(f.message.clone()),
                (None, false) => None,
            };
            soak.emit(EventKind::End {
                ok: reason.is_none(),
                reason,
            });
            outcome.events = soak.events.into_inner().unwrap_or_default();
        }
        Err(message) if !outcome.interrupted => {
            outcome.failure = Some(SoakFailure {
                step: None,
                fault: None,
                invariant: None,
                message: format!("fund the wallets: {message}"),
            })
        }
        Err(_) => {}
    }
    if opts.keep {
        cluster.keep();
    } else if let Err(e) = cluster.down(&Progress::default()).await {
        outcome.teardown = Some(crate::core::names::error_chain(&e));
    }
    Ok(outcome)
}

/// Gives every wallet node a mature coin before the run: one block to each, in turn (synced, so they
/// build one chain), then 100 more on the first, so every one of those coinbases can be spent.
async fn fund(cluster: &Cluster, timeout: Duration) -> Result<()> {
    let wallets: Vec<&Node> = (cluster.nodes().iter())
        .filter(|n| cluster.spec().nodes[n.layout.index].wallet)
        .collect();
    let Some(first) = wallets.first() else {
        return Ok(());
    };
    for node in &wallets {
        node.mine(1, true).await?;
        wait::sync_blocks(cluster.nodes(), timeout).await?;
    }
    first.mine(100, true).await?;
    wait::sync_blocks(cluster.nodes(), timeout).await?;
    Ok(())
}

/// One run: what the nemesis, the background activity and the sampler share. The cluster itself is
/// lent to the nemesis alone (partitions need it mutably); the others use their own node handles.
struct Soak<'a> {
    opts: &'a SoakOptions,
    nodes: Vec<Node>,
    /// Per node: whether it has a wallet.
    wallet: Vec<bool>,
    steps: Vec<Step>,
    start: Instant,
    events: Mutex<Vec<Event>>,
    on_event: &'a (dyn Fn(&Event) + Sync),
    /// Nodes down on purpose (killed, paused, restarting): not sampled, not picked, not expected up.
    held: Mutex<BTreeSet<usize>>,
    /// Nodes killed or restarted since the sampler last looked: their next tip is not compared with the
    /// last one (a node killed before bitcoind flushed its chain state comes back lower, which is no reorg).
    restarted: Mutex<BTreeSet<usize>>,
    /// The step under way, if any: the end of the run ends it.
    active: Mutex<Option<usize>>,
    /// Background activity waits while the nodes are asked to agree.
    quiet: AtomicBool,
    /// Held by background activity through each block or transaction, and by a settle throughout: a
    /// settle begins only once the block being mined when it was called has been mined.
    activity: tokio::sync::Mutex<()>,
    arrivals: Mutex<Arrivals>,
}

impl<'a> Soak<'a> {
    fn new(
        cluster: &Cluster,
        opts: &'a SoakOptions,
        on_event: &'a (dyn Fn(&Event) + Sync),
    ) -> Soak<'a> {
        // Checked before the cluster was made (`steps_over` refused a count the duration cannot hold).
        let steps = opts.steps_over(&cluster.spec).unwrap_or_default();
        let soak = Soak {
            opts,
            nodes: cluster.nodes().to_vec(),
            wallet: cluster.spec().nodes.iter().map(|n| n.wallet).collect(),
            steps,
            start: Instant::now(),
            events: Mutex::new(Vec::new()),
            on_event,
            held: Mutex::new(BTreeSet::new()),
            restarted: Mutex::new(BTreeSet::new()),
            active: Mutex::new(None),
            quiet: AtomicBool::new(false),
            activity: tokio::sync::Mutex::new(()),
            arrivals: Mutex::new(Arrivals::default()),
        };
        soak.emit(EventKind::Start {
            cluster: cluster.name().to_owned(),
            seed: opts.seed,
            nodes: cluster.nodes().iter().map(|n| n.name().into()).collect(),
            duration_s: opts.duration.as_secs_f64(),
            faults: opts.faults.iter().map(|k| k.name().to_owned()).collect(),
        });
        tracing::info!(
            "soak `{}`: seed {}, {} fault(s) scheduled over {:.0}s",
            cluster.name(),
            opts.seed,
            soak.steps.len(),
            opts.duration.as_secs_f64()
        );
        soak
    }

    /// Seconds since the start.
    fn t(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn emit(&self, kind: EventKind) {
        let event = Event::new((self.t() * 1000.0).round() / 1000.0, kind);
        let mut events = self.events.lock().unwrap();
        (self.on_event)(&event);
        events.push(event);
    }

    fn held(&self) -> BTreeSet<usize> {
        self.held.lock().unwrap().clone()
    }

    /// The nemesis and the final checks, with background activity and the sampler alongside.
    async fn drive(&self, cluster: &mut Cluster) -> std::result::Result<(), Stop> {
        let main = async {
            let run = tokio::select! {
                r = self.nemesis(cluster) => r,
                () = self.background() => Ok(()),
            };
            let last = self.finish(cluster).await;
            // The first failure is the one reported.
            run.and(last)
        };
        tokio::select! {
            r = main => r,
            () = self.sampler() => Ok(()),
        }
    }

    /// Carries out the schedule: each step when it is due (or as soon as the previous one is settled,
    /// if that took longer), held from its actual start, ended, settled. Steps due after the end of the
    /// run are dropped, unless a number of steps was asked for: then every one runs, however late.
    async fn nemesis(&self, cluster: &mut Cluster) -> std::result::Result<(), Stop> {
        let deadline = self.start + self.opts.duration;
        for step in &self.steps {
            let due = self.start + step.at;
            if self.opts.steps.is_none() && due.max(Instant::now()) >= deadline {
                tracing::info!("step {} and later dropped: the run is over", step.index);
                break;
            }
            tokio::time::sleep_until(due.into()).await;
            let begun = Instant::now();
            self.begin(cluster, step).await?;
            tokio::time::sleep_until((begun + step.hold).into()).await;
            // Convergence is timed from here: undoing the fault (re-wiring included) is part of it.
            let ending = Instant::now();
            self.end(cluster, step).await?;
            self.settle(Some(step.index), ending, false).await?;
        }
        tokio::time::sleep_until(deadline.into()).await;
        Ok(())
    }

    /// Starts a step's fault and logs it.
    async fn begin(&self, cluster: &mut Cluster, step: &Step) -> std::result::Result<(), Stop> {
        tracing::info!("step {}: {}", step.index, what(step));
        *self.active.lock().unwrap() = Some(step.index);
        self.emit(EventKind::Fault {
            step: step.index,
            fault: step.kind,
            nodes: step.targets.clone(),
            detail: step.describe(),
        });
        let failed = |e: Error| Stop::Failed {
            step: Some(step.index),
            message: format!(
                "step {} ({}): begin: {}",
                step.index,
                what(step),
                crate::core::names::error_chain(&e)
            ),
        };
        let node = match &step.detail {
            StepDetail::Node { begin, end } => {
                let node = cluster.node(&step.targets[0]).map_err(failed)?.layout.index;
                // Held before the fault, so no background call picks a node going down.
                self.held.lock().unwrap().insert(node);
                if matches!(begin, Fault::Kill | Fault::Restart) {
                    self.restarted.lock().unwrap().insert(node);
                }
                // A restart is over once the node is back.
                end.is_none().then_some(node)
            }
            // A full disk stops bitcoind at its next write, and the end starts it again.
            StepDetail::Disk => {
                let node = cluster.node(&step.targets[0]).map_err(failed)?.layout.index;
                self.held.lock().unwrap().insert(node);
                self.restarted.lock().unwrap().insert(node);
                None
            }
            _ => None,
        };
        cluster
            .exec(&step.begin_verb(), &Exec::default())
            .await
            .map_err(failed)?;
        if let Some(node) = node {
            self.held.lock().unwrap().remove(&node);
        }
        Ok(())
    }

    /// Ends a step's fault (heal, shaping cleared, node started or thawed) and logs it.
    async fn end(&self, cluster: &mut Cluster, step: &Step) -> std::result::Result<(), Stop> {
        let failed = |e: Error| Stop::Failed {
            step: Some(step.index),
            message: format!(
                "step {} ({}): end: {}",
                step.index,
                what(step),
                crate::core::names::error_chain(&e)
            ),
        };
        for verb in step.end_verbs() {
            cluster
                .exec(&verb, &Exec::default())
                .await
                .map_err(failed)?;
        }
        if let StepDetail::Node { .. } | StepDetail::Disk = &step.detail {
            let node = cluster.node(&step.targets[0]).map_err(failed)?.layout.index;
            self.held.lock().unwrap().remove(&node);
        }
        *self.active.lock().unwrap() = None;
        self.emit(EventKind::FaultEnd {
            step: step.index,
            fault: step.kind,
            nodes: step.targets.clone(),
        });
        tracing::info!("step {}: {} over", step.index, step.kind);
        Ok(())
    }

    /// After a fault began to end at `ended`: background activity pauses, the nodes get up to `--converge` to
    /// share one most-work tip (logged as `converged`), then the invariants are checked and logged. A
    /// broken one stops the run. The mempools are compared only at the end (`last`), see `agree_mempools`.
    async fn settle(
        &self,
        step: Option<usize>,
        ended: Instant,
        last: bool,
    ) -> std::result::Result<(), Stop> {
        self.quiet.store(true, Ordering::SeqCst);
        let in_flight = self.activity.lock().await;
        let result = self.settle_quietly(step, ended, last).await;
        self.quiet.store(false, Ordering::SeqCst);
        drop(in_flight);
        result
    }

    async fn settle_quietly(
        &self,
        step: Option<usize>,
        ended: Instant,
        last: bool,
    ) -> std::result::Result<(), Stop> {
        let deadline = ended + self.opts.converge;
        let agreed = self.converge(deadline).await;
        if let (Some(step), true) = (step, agreed) {
            let seconds = ended.elapsed().as_secs_f64();
            tracing::info!("step {step}: converged in {seconds:.1}s");
            self.emit(EventKind::Converged {
                step,
                seconds: (seconds * 1000.0).round() / 1000.0,
            });
        }
        if last && agreed {
            self.agree_mempools().await;
        }
        let samples = self.sample_all(last).await;
        let mut verdicts = check_all(&samples, self.limits());
        if !last {
            verdicts.retain(|v| v.name != MEMPOOLS_AGREE);
        }
        let checked = if last { None } else { step };
        for v in &verdicts {
            self.emit(v.event(checked));
        }
        match verdicts.into_iter().find(|v| !v.ok) {
            Some(verdict) => Err(Stop::Violated {
                step: checked,
                verdict,
            }),
            None => Ok(()),
        }
    }

    /// Mempools legitimately differ for a while (a killed node loses its mempool, transactions sent on
    /// one side of a partition are not announced again after the heal, a reorg returns transactions to
    /// the mempools of the nodes that reorganised only). So at the end the nodes get [`MEMPOOL_RELAY`]
    /// (at most `--converge`) to agree; if they still differ, every running node mines one block in turn
    /// (the others following), which confirms what each holds, and they get `--converge` to agree.
    async fn agree_mempools(&self) {
        let same = |s: &[NodeSample]| mempools(s).ok;
        // Relay trickles a transaction out within seconds; what is still missing after that never comes.
        let relay = self.opts.converge.min(MEMPOOL_RELAY);
        if self.poll(Instant::now() + relay, same).await {
            return;
        }
        tracing::info!("mempools differ: every node mines one block to confirm what it holds");
        let held = self.held();
        for node in self
            .nodes
            .iter()
            .filter(|n| !held.contains(&n.layout.index))
        {
            self.mine_on(node).await;
            let _ = wait::sync_blocks(&self.nodes, self.opts.converge).await;
        }
        self.poll(Instant::now() + self.opts.converge, same).await;
    }

    /// Polls until every running node is up and on the most-work tip, or `deadline` passes; whether
    /// they got there. Two sides of a healed partition with equal work each keep their own tip until a
    /// block breaks the tie, and background mining is paused: a tie that lasts [`TIE_AFTER`] is broken
    /// by one block on a node of the tip most nodes hold, as the next block would in a live network.
    async fn converge(&self, deadline: Instant) -> bool {
        let mut tied_since: Option<Instant> = None;
        loop {
            let samples = self.sample_all(false).await;
            if converged(&samples).ok && crashed(&samples).ok {
                return true;
            }
            match tie_breaker(&samples) {
                Some(i) => {
                    let since = *tied_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= TIE_AFTER {
                        let node = &self.nodes[i];
                        tracing::info!(
                            "tips of equal work: {} mines a block to break the tie",
                            node.name()
                        );
                        self.mine_on(node).await;
                        tied_since = None;
                    }
                }
                None => tied_since = None,
            }
            if Instant::now() + POLL >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Samples every node, mempools included, until `done` holds or `deadline` passes; whether it held.
    async fn poll(&self, deadline: Instant, done: impl Fn(&[NodeSample]) -> bool) -> bool {
        loop {
            if done(&self.sample_all(true).await) {
                return true;
            }
            if Instant::now() + POLL >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// How `not_stuck` judges: a tip may lag no longer than a convergence wait (at least a minute), and
    /// every node needs a peer (none when it is alone).
    fn limits(&self) -> Limits {
        Limits {
            max_tip_age_s: self.opts.converge.as_secs_f64().max(60.0),
            min_peers: u32::from(self.nodes.len() > 1),
        }
    }

    /// The end of the run: the step under way (after a failure) is ended, then the last convergence
    /// wait and every invariant, mempools included.
    async fn finish(&self, cluster: &mut Cluster) -> std::result::Result<(), Stop> {
        let active = *self.active.lock().unwrap();
        let ended = Instant::now();
        if let Some(step) = active.and_then(|i| self.steps.get(i)) {
            self.end(cluster, step).await?;
        }
        self.settle(active, ended, true).await
    }

    /// One sample of every node; held nodes are not asked (they are down on purpose).
    async fn sample_all(&self, with_mempool: bool) -> Vec<NodeSample> {
        let held = self.held();
        let now = unix_now();
        stream::iter(self.nodes.iter().map(|n| {
            let expected = !held.contains(&n.layout.index);
            async move {
                if !expected {
                    return down(n.name(), false);
                }
                let read = async {
                    let vitals = n.vitals().await?;
                    let pool = match with_mempool {
                        true => n.rpc.get_raw_mempool().await?,
                        false => Vec::new(),
                    };
                    Ok::<_, crate::engine::rpc::RpcError>((vitals, pool))
                };
                match tokio::time::timeout(SAMPLE_TIMEOUT, read).await {
                    Ok(Ok((vitals, pool))) => sample_of(n.name(), &vitals, pool, now),
                    _ => down(n.name(), true),
                }
            }
        }))
        .buffered(RPC_CONCURRENCY)
        .collect()
        .await
    }

    /// Blocks and transactions at their rates, on seeded-random nodes that are not held, while not
    /// quiet. Never returns.
    async fn background(&self) {
        let mut rng = SplitMix64(self.opts.seed ^ BACKGROUND_SALT);
        let every = |per_min: f64| (per_min > 0.0).then(|| Duration::from_secs_f64(60.0 / per_min));
        let block_every = every(self.opts.blocks_per_min);
        let tx_every = every(self.opts.txs_per_min).filter(|_| self.wallet.contains(&true));
        let mut next_block = block_every.map(|d| self.start + d);
        let mut next_tx = tx_every.map(|d| self.start + d);
        loop {
            let Some(next) = next_block.into_iter().chain(next_tx).min() else {
                return std::future::pending().await;
            };
            tokio::time::sleep_until(next.into()).await;
            let _busy = self.activity.lock().await;
            let quiet = self.quiet.load(Ordering::SeqCst);
            if let (Some(at), Some(every)) = (next_block, block_every) {
                if at <= Instant::now() {
                    next_block = Some((at + every).max(Instant::now()));
                    if !quiet {
                        self.mine_random(&mut rng).await;
                    }
                }
            }
            if let (Some(at), Some(every)) = (next_tx, tx_every) {
                if at <= Instant::now() {
                    next_tx = Some((at + every).max(Instant::now()));
                    if !quiet {
                        self.send_random(&mut rng).await;
                    }
                }
            }
        }
    }

    /// Nodes not held, and among them those with a wallet.
    fn available(&self, wallet_only: bool) -> Vec<&Node> {
        let held = self.held();
        (self.nodes.iter())
            .filter(|n| !held.contains(&n.layout.index))
            .filter(|n| !wallet_only || self.wallet[n.layout.index])
            .collect()
    }

    async fn mine_random(&self, rng: &mut SplitMix64) {
        let nodes = self.available(false);
        if nodes.is_empty() {
            return;
        }
        let node = nodes[rng.index(nodes.len())];
        self.mine_on(node).await;
    }

    /// Mines one block on `node` and logs it; a node that is down or slow is only logged at debug.
    async fn mine_on(&self, node: &Node) {
        let mined = async {
            let hashes = node.mine(1, self.wallet[node.layout.index]).await?;
            let hash = hashes.into_iter().next().unwrap_or_default();
            let header = node.rpc.get_block_header(&hash).await?;
            Ok::<_, crate::engine::rpc::RpcError>((hash, header.height))
        };
        match tokio::time::timeout(ACTIVITY_TIMEOUT, mined).await {
            Ok(Ok((hash, height))) => {
                self.arrivals.lock().unwrap().mined(&hash, height, self.t());
                self.emit(EventKind::Block {
                    node: node.name().to_owned(),
                    height,
                    hash,
                });
            }
            Ok(Err(e)) => tracing::debug!("background block on {}: {e}", node.name()),
            Err(_) => tracing::debug!("background block on {}: no answer", node.name()),
        }
    }

    /// Sends a small payment from one wallet node to another (to itself when it is the only one up).
    async fn send_random(&self, rng: &mut SplitMix64) {
        let wallets = self.available(true);
        if wallets.is_empty() {
            return;
        }
        let from = wallets[rng.index(wallets.len())];
        let others: Vec<&Node> = (wallets.iter().copied())
            .filter(|n| n.layout.index != from.layout.index)
            .collect();
        let to = match others.is_empty() {
            true => from,
            false => others[rng.index(others.len())],
        };
        let amount = TX_MIN_SAT + rng.below(TX_SPREAD_SAT);
        let sent = async {
            let address = to.rpc.get_new_address().await?;
            from.rpc.send_to_address(&address, amount).await
        };
        match tokio::time::timeout(ACTIVITY_TIMEOUT, sent).await {
            Ok(Ok(txid)) => self.emit(EventKind::Tx {
                from: from.name().to_owned(),
                to: to.name().to_owned(),
                txid,
            }),
            Ok(Err(e)) => tracing::debug!("background tx {} → {}: {e}", from.name(), to.name()),
            Err(_) => tracing::debug!("background tx {} → {}: no answer", from.name(), to.name()),
        }
    }

    /// Every second (every 200 ms while a block is on its way), every node not held: a tip change is
    /// logged with its reorg depth, a block every running node has is logged with its propagation time,
    /// and a node nobody stopped that stops answering is logged as crashed. Never returns.
    async fn sampler(&self) {
        let n = self.nodes.len();
        let mut tips: Vec<Option<String>> = vec![None; n];
        let mut misses = vec![0u32; n];
        loop {
            let tick = Instant::now();
            let held = self.held();
            for i in std::mem::take(&mut *self.restarted.lock().unwrap()) {
                tips[i] = None;
            }
            let read: Vec<Option<std::result::Result<Vitals, String>>> =
                stream::iter(self.nodes.iter().map(|node| {
                    let skip = held.contains(&node.layout.index);
                    async move {
                        if skip {
                            return None;
                        }
                        Some(
                            match tokio::time::timeout(SAMPLE_TIMEOUT, node.vitals()).await {
                                Ok(Ok(v)) => Ok(v),
                                Ok(Err(e)) => Err(e.to_string()),
                                Err(_) => Err(format!("no answer within {SAMPLE_TIMEOUT:?}")),
                            },
                        )
                    }
                }))
                .buffered(RPC_CONCURRENCY)
                .collect()
                .await;
            let mut running = Vec::new();
            for (i, r) in read.iter().enumerate() {
                let node = &self.nodes[i];
                match r {
                    None => misses[i] = 0,
                    Some(Err(why)) => {
                        misses[i] += 1;
                        if misses[i] == CRASH_AFTER {
                            self.emit(EventKind::Crash {
                                node: node.name().to_owned(),
                                detail: why.clone(),
                            });
                        }
                    }
                    Some(Ok(v)) => {
                        misses[i] = 0;
                        running.push((node, v));
                        if tips[i].as_deref() != Some(v.best.as_str()) {
                            let depth = match &tips[i] {
                                Some(old) => node.sampled_reorg_depth(old).await,
                                None => 0,
                            };
                            tips[i] = Some(v.best.clone());
                            self.emit(EventKind::Tip {
                                node: node.name().to_owned(),
                                height: v.height,
                                hash: v.best.clone(),
                                reorg_depth: depth,
                            });
                        }
                    }
                }
            }
            self.arrivals(&running).await;
            let pace = match self.arrivals.lock().unwrap().is_empty() {
                true => SAMPLE_EVERY,
                false => SAMPLE_EVERY_PENDING,
            };
            tokio::time::sleep_until((tick + pace).into()).await;
        }
    }

    /// Marks which followed blocks each running node has in its active chain (its tip, or a block it
    /// reports at least one confirmation for) and logs the blocks every running node has.
    async fn arrivals(&self, running: &[(&Node, &Vitals)]) {
        for (node, v) in running {
            let candidates = (self.arrivals.lock().unwrap()).candidates(node.name(), v.height);
            for (hash, _) in candidates {
                let has = hash == v.best
                    || matches!(
                        tokio::time::timeout(SAMPLE_TIMEOUT, node.rpc.get_block_header(&hash)).await,
                        Ok(Ok(h)) if h.confirmations >= 1
                    );
                if has {
                    self.arrivals.lock().unwrap().reached(node.name(), &hash);
                }
            }
        }
        let names: Vec<String> = running.iter().map(|(n, _)| n.name().to_owned()).collect();
        let now = self.t();
        let done = {
            let mut arrivals = self.arrivals.lock().unwrap();
            // A block still missing somewhere after the longest hold and a convergence wait lost a race.
            let max_age =
                self.opts.mean_hold.as_secs_f64() * 1.5 + self.opts.converge.as_secs_f64();
            let done = arrivals.complete(&names, now);
            arrivals.expire(now, max_age);
            done
        };
        for (hash, seconds) in done {
            self.emit(EventKind::Propagation {
                hash,
                seconds: (seconds * 1000.0).round() / 1000.0,
            });
        }
    }
}

impl Stop {
    /// How a stop reads: the seed, the step and its fault, the broken invariant and its nodes.
    fn failure(self, seed: u64, steps: &[Step]) -> SoakFailure {
        let (step, invariant, message) = match self {
            Stop::Violated { step, verdict } => {
                let when = match step.and_then(|i| steps.get(i)) {
                    Some(s) => format!("after step {} ({})", s.index, what(s)),
                    None => "at the end".to_owned(),
                };
                let message = format!(
                    "seed {seed}: {when}: invariant `{}` broken by {}: {}",
                    verdict.name,
                    verdict.nodes.join(", "),
                    verdict.detail
                );
                (step, Some(verdict), message)
            }
            Stop::Failed { step, message } => (step, None, format!("seed {seed}: {message}")),
        };
        SoakFailure {
            step,
            fault: step.and_then(|i| steps.get(i)).map(what),
            invariant,
            message,
        }
    }
}

/// A step for people: `partition {n0, n2} | {n1}`, `netem n1: loss 30%`, `kill n2, start after 8s`.
fn what(step: &Step) -> String {
    match step.detail {
        StepDetail::Node { .. } => step.describe(),
        _ => format!("{} {}", step.kind, step.describe()),
    }
}

/// When the running nodes are split over two or more tips with the same, highest work: the index of
/// the first node holding the one most of them hold (on a tie, the smaller hash), where one more block
/// ends the split with the fewest reorgs. `None` when one tip has the most work.
fn tie_breaker(samples: &[NodeSample]) -> Option<usize> {
    let up: Vec<(usize, &NodeSample)> = (samples.iter().enumerate())
        .filter(|(_, s)| s.running)
        .collect();
    let most = up.iter().map(|(_, s)| s.chainwork).max()?;
    let mut holders: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, s) in up.iter().filter(|(_, s)| s.chainwork == most) {
        *holders.entry(&s.best_hash).or_default() += 1;
    }
    if holders.len() < 2 {
        return None;
    }
    let (best, _) = (holders.iter()).max_by_key(|(hash, n)| (**n, std::cmp::Reverse(**hash)))?;
    up.iter()
        .find(|(_, s)| s.best_hash == *best)
        .map(|(i, _)| *i)
}

/// A node that did not answer (`expected`: it should have).
fn down(node: &str, expected: bool) -> NodeSample {
    NodeSample {
        node: node.to_owned(),
        height: 0,
        best_hash: String::new(),
        chainwork: 0,
        tip_age_s: 0.0,
        peers: 0,
        mempool: Vec::new(),
        running: false,
        expected_running: expected,
    }
}

/// What a node's vitals say, as the invariants read it. The tip's age is taken from the block's own
/// timestamp (regtest blocks carry the time they were mined; blocks mined in a burst may be stamped a
/// little ahead, which counts as age 0).
fn sample_of(node: &str, v: &Vitals, mempool: Vec<String>, now_unix: f64) -> NodeSample {
    NodeSample {
        node: node.to_owned(),
        height: v.height,
        best_hash: v.best.clone(),
        chainwork: parse_chainwork(&v.chainwork).unwrap_or(0),
        tip_age_s: (now_unix - v.tip_time as f64).max(0.0),
        peers: u32::try_from(v.peers).unwrap_or(u32::MAX),
        mempool,
        running: true,
        expected_running: true,
    }
}

/// A soak run's invariant checks as JUnit XML (quick-junit): one test suite, a test case per check
/// (`after step 3: converged`, `end: mempools_agree`), failed ones with their detail; a run that
/// stopped for another reason (a fault that could not be carried out, Ctrl-C) gets one more failed
/// case, `run`.
pub fn junit(events: &[Event]) -> String {
    use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
    let s = summarize(events);
    let mut report = Report::new("regbox");
    let mut suite = TestSuite::new(format!("soak {}", s.cluster));
    suite.set_time(Duration::from_secs_f64(s.last_t.max(0.0)));
    suite.add_property(Property::new("cluster", s.cluster.as_str()));
    suite.add_property(Property::new("seed", s.seed.to_string()));
    let classname = format!("soak.{}", s.cluster);
    for check in &s.invariants {
        let status = if check.ok {
            TestCaseStatus::success()
        } else {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status
                .set_message(format!("broken by {}", check.nodes.join(", ")))
                .set_description(check.detail.as_str());
            status
        };
        let when = match check.step {
            Some(step) => format!("after step {step}"),
            None => "end".to_owned(),
        };
        let mut case = TestCase::new(format!("{when}: {}", check.name), status);
        case.set_classname(classname.as_str());
        suite.add_test_case(case);
    }
    let broken = s.failed_invariants() > 0;
    if let (Some(false), false) = (s.ok, broken) {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        status.set_message(s.reason.clone().unwrap_or_else(|| "failed".into()));
        let mut case = TestCase::new("run", status);
        case.set_classname(classname.as_str());
        suite.add_test_case(case);
    }
    report.add_test_suite(suite);
    report.to_string().expect("a report of strings serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vitals(tip_time: u64) -> Vitals {
        Vitals {
            height: 110,
            best: "aa".into(),
            tip_time,
            chainwork: format!("{:064x}", 222),
            peers: 2,
            mempool_txs: 1,
            mempool_bytes: 200,
        }
    }

    #[test]
    fn a_sample_takes_the_tip_age_from_the_block_time_and_never_below_zero() {
        let s = sample_of("n0", &vitals(1000), vec!["t".into()], 1012.5);
        assert_eq!(s.tip_age_s, 12.5);
        assert_eq!(s.chainwork, 222);
        assert_eq!((s.peers, s.running, s.expected_running), (2, true, true));
        assert_eq!(s.mempool, vec!["t".to_string()]);
        // A block stamped ahead of the clock (mined in a burst) is as fresh as can be.
        assert_eq!(
            sample_of("n0", &vitals(1020), vec![], 1012.5).tip_age_s,
            0.0
        );
        let d = down("n1", true);
        assert!(!d.running && d.expected_running);
    }

    fn at(node: &str, hash: &str, work: u128) -> NodeSample {
        let mut s = sample_of(node, &vitals(0), vec![], 0.0);
        s.best_hash = hash.into();
        s.chainwork = work;
        s
    }

    #[test]
    fn a_tie_of_equal_work_is_broken_on_the_side_most_nodes_are_on() {
        // Agreement, or one tip with more work (the others will follow): nothing to break.
        assert_eq!(tie_breaker(&[at("n0", "a", 5), at("n1", "a", 5)]), None);
        assert_eq!(tie_breaker(&[at("n0", "a", 5), at("n1", "b", 6)]), None);
        assert_eq!(tie_breaker(&[]), None);
        // Two tips of equal, highest work: the one two nodes hold wins.
        let split = [
            at("n0", "b", 6),
            at("n1", "a", 6),
            at("n2", "a", 6),
            at("n3", "c", 4),
        ];
        assert_eq!(tie_breaker(&split), Some(1));
        // One node each: the smaller hash.
        assert_eq!(tie_breaker(&[at("n0", "b", 6), at("n1", "a", 6)]), Some(1));
        // A node that is down does not count.
        let mut down = at("n1", "a", 6);
        down.running = false;
        assert_eq!(tie_breaker(&[at("n0", "b", 6), down]), None);
    }

    #[test]
    fn a_failure_names_the_seed_the_step_the_invariant_and_the_nodes() {
        let steps = crate::core::soak::schedule(
            &ScheduleSpec {
                seed: 7,
                duration: Duration::from_secs(100),
                faults: vec![FaultKind::Kill],
                mean_gap: Duration::from_secs(8),
                mean_fault: Duration::from_secs(8),
            },
            &["n0".to_string(), "n1".to_string()],
            &[],
        );
        let verdict = Verdict {
            name: "converged".into(),
            ok: false,
            nodes: vec!["n1".into()],
            detail: "1 of 2 running node(s) not on the most-work tip".into(),
        };
        let f = Stop::Violated {
            step: Some(0),
            verdict: verdict.clone(),
        }
        .failure(7, &steps);
        let fault = what(&steps[0]);
        assert!(fault.starts_with("kill n"), "{fault}");
        assert_eq!(
            f.message,
            format!("seed 7: after step 0 ({fault}): invariant `converged` broken by n1: 1 of 2 running node(s) not on the most-work tip")
        );
        assert_eq!(
            (f.step, f.fault.as_deref()),
            (Some(0), Some(fault.as_str()))
        );
        let end = Stop::Violated {
            step: None,
            verdict,
        }
        .failure(7, &steps);
        assert!(end
            .message
            .starts_with("seed 7: at the end: invariant `converged`"));
        let failed = Stop::Failed {
            step: Some(1),
            message: "step 1: begin: no".into(),
        }
        .failure(9, &steps);
        assert_eq!(failed.message, "seed 9: step 1: begin: no");
        assert!(failed.invariant.is_none());
    }

    fn ev(t: f64, kind: EventKind) -> Event {
        Event::new(t, kind)
    }

    fn check(step: Option<usize>, name: &str, ok: bool) -> Event {
        ev(
            5.0,
            EventKind::Invariant {
                step,
                name: name.into(),
                ok,
                nodes: if ok { vec![] } else { vec!["n1".into()] },
                detail: "seen".into(),
            },
        )
    }

    fn start() -> Event {
        ev(
            0.0,
            EventKind::Start {
                cluster: "lab".into(),
                seed: 7,
                nodes: vec!["n0".into(), "n1".into()],
                duration_s: 60.0,
                faults: vec!["kill".into()],
            },
        )
    }

    fn cases(xml: &str) -> Vec<(String, bool)> {
        let doc = roxmltree::Document::parse(xml).unwrap();
        (doc.descendants())
            .filter(|n| n.has_tag_name("testcase"))
            .map(|n| {
                let failed = n.children().any(|c| c.has_tag_name("failure"));
                (n.attribute("name").unwrap().to_string(), failed)
            })
            .collect()
    }

    #[test]
    fn junit_has_a_case_per_check_and_fails_the_broken_ones() {
        let events = vec![
            start(),
            check(Some(0), "converged", true),
            check(Some(0), "not_stuck", true),
            check(None, "converged", false),
            ev(
                9.0,
                EventKind::End {
                    ok: false,
                    reason: Some("broken".into()),
                },
            ),
        ];
        let xml = junit(&events);
        assert_eq!(
            cases(&xml),
            vec![
                ("after step 0: converged".to_string(), false),
                ("after step 0: not_stuck".to_string(), false),
                ("end: converged".to_string(), true),
            ]
        );
        assert!(xml.contains("name=\"seed\" value=\"7\""), "{xml}");
        assert!(xml.contains("soak lab"), "{xml}");
    }

    #[test]
    fn junit_fails_a_run_that_stopped_without_a_broken_invariant() {
        let events = vec![
            start(),
            check(Some(0), "converged", true),
            ev(
                9.0,
                EventKind::End {
                    ok: false,
                    reason: Some("interrupted".into()),
                },
            ),
        ];
        assert_eq!(
            cases(&junit(&events)),
            vec![
                ("after step 0: converged".to_string(), false),
                ("run".to_string(), true),
            ]
        );
        let mut ok = events.clone();
        ok.pop();
        ok.push(ev(
            9.0,
            EventKind::End {
                ok: true,
                reason: None,
            },
        ));
        assert_eq!(cases(&junit(&ok)).len(), 1);
    }
}
