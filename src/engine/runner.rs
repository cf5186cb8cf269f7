//! Running a scenario: bring its cluster up, carry out the steps in order with per-step timing and a
//! pass/fail outcome (what was expected, what was seen), tear down, and render the result as JUnit XML.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::core::chain::propagation;
use crate::core::names::error_chain;
use crate::core::scenario::{Action, Check as Assertion, Scenario, Step, Then};
use crate::core::verb::{Report, Verb};
use crate::engine::cluster::Cluster;
use crate::engine::error::Error;
use crate::engine::exec::{self, Exec};
use crate::engine::lifecycle::UpOptions;
use crate::engine::node::Node;
use crate::engine::progress::Progress;
use crate::engine::wait::{self, on_all};

/// How one step ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", content = "message", rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    Failed(String),
    /// Not run because an earlier step failed or the run was interrupted.
    Skipped,
}

/// One step's result.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub label: String,
    pub line: usize,
    pub seconds: f64,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// After a failure: the last log lines of every node, as they were then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub scenario: String,
    pub cluster: String,
    pub steps: Vec<StepResult>,
    /// The exact images the cluster ran.
    pub images: Vec<String>,
    pub seconds: f64,
    /// The run was stopped by the caller (Ctrl-C) rather than by a failed step.
    pub interrupted: bool,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.steps
            .iter()
            .all(|s| matches!(s.outcome, Outcome::Passed))
    }

    /// This run alone as JUnit XML (see [`junit`]).
    pub fn junit(&self) -> String {
        junit(std::slice::from_ref(self))
    }
}

/// Runs as one JUnit XML report (quick-junit): a test suite per scenario, with the cluster and its
/// images as properties, and a test case per step (cluster up and teardown included). A failed step's
/// case carries the whole message and, in `<system-out>`, the nodes' last log lines.
pub fn junit(reports: &[RunReport]) -> String {
    use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("regbox");
    report.set_time(Duration::from_secs_f64(
        reports.iter().map(|r| r.seconds).sum(),
    ));
    for run in reports {
        let mut suite = TestSuite::new(run.scenario.as_str());
        suite.set_time(Duration::from_secs_f64(run.seconds));
        suite.add_property(Property::new("cluster", run.cluster.as_str()));
        for image in &run.images {
            suite.add_property(Property::new("image", image.as_str()));
        }
        for (i, s) in run.steps.iter().enumerate() {
            let status = match &s.outcome {
                Outcome::Passed => TestCaseStatus::success(),
                Outcome::Skipped => TestCaseStatus::skipped(),
                Outcome::Failed(message) => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    status
                        .set_message(message.lines().next().unwrap_or_default())
                        .set_description(message.as_str());
                    status
                }
            };
            let mut case = TestCase::new(format!("{:02} {}", i + 1, s.label), status);
            case.set_classname(run.scenario.as_str())
                .set_time(Duration::from_secs_f64(s.seconds));
            if let Some(logs) = &s.logs {
                case.set_system_out(logs.as_str());
            }
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string().expect("a report of strings serializes")
}

/// How `run` behaves.
pub struct RunOptions {
    pub up: UpOptions,
    /// Leave the cluster running afterwards (also after a failure).
    pub keep: bool,
}

/// Runs `scenario` on a fresh cluster made from `spec`; `on_step` sees each result as it happens.
/// The cluster is torn down at the end unless `keep` — also after a failure or when `cancel` completes.
pub async fn run(
    scenario: &Scenario,
    spec: crate::core::cluster::manifest::ClusterSpec,
    opts: &RunOptions,
    cancel: impl Future<Output = ()>,
    on_step: impl FnMut(&StepResult),
) -> RunReport {
    run_reusing(scenario, spec, None, false, opts, cancel, on_step)
        .await
        .0
}

/// `run`, on `reused` when given (a cluster of the same spec an earlier scenario ran on, reset first
/// to its declared state on a fresh chain: the first step) instead of a new one. With `hand_on`,
/// a cluster the scenario left as declared (it has no `apply` or `down` step, and was not
/// interrupted) is handed back for the next scenario instead of torn down.
pub async fn run_reusing(
    scenario: &Scenario,
    spec: crate::core::cluster::manifest::ClusterSpec,
    reused: Option<Cluster>,
    hand_on: bool,
    opts: &RunOptions,
    cancel: impl Future<Output = ()>,
    on_step: impl FnMut(&StepResult),
) -> (RunReport, Option<Cluster>) {
    let started = Instant::now();
    let cluster_name = spec.name.clone();
    tokio::pin!(cancel);
    let mut results = Results {
        list: Vec::new(),
        on_step,
    };
    let (mut cluster, mut images, mut interrupted) =
        first_step(reused, spec, opts, &mut cancel, &mut results).await;
    let mut state = State::default();
    if let Some(c) = cluster.as_mut() {
        interrupted = run_steps(c, scenario, opts, &mut cancel, &mut state, &mut results).await;
    }
    let handed = match cluster.take() {
        Some(c) if hand_on && !interrupted && !opts.keep && scenario.keeps_its_cluster() => Some(c),
        other => {
            // After a `down` step there is nothing left to tear down.
            let keep = opts.keep || state.down_at.is_some();
            if let Some((t, outcome)) = teardown(other, keep, &opts.up.progress).await {
                results.record("teardown".into(), 0, t, outcome);
            }
            None
        }
    };
    images.sort();
    images.dedup();
    let report = RunReport {
        scenario: scenario.name.clone(),
        cluster: cluster_name,
        steps: results.list,
        images,
        seconds: started.elapsed().as_secs_f64(),
        interrupted,
    };
    (report, handed)
}

/// A run's step results as they come: each shown to the caller's `on_step`, then kept.
struct Results<F> {
    list: Vec<StepResult>,
    on_step: F,
}

impl<F: FnMut(&StepResult)> Results<F> {
    /// Records a step that started at `t` and ended now with `outcome`.
    fn record(&mut self, label: String, line: usize, t: Instant, outcome: Outcome) {
        let r = StepResult {
            label,
            line,
            seconds: t.elapsed().as_secs_f64(),
            outcome,
            logs: None,
        };
        (self.on_step)(&r);
        self.list.push(r);
    }
}

/// The run's first step, recorded: its cluster up, or `reused` reset. Returns the cluster (None when
/// that failed), the images it runs (the spec's when it did not come up), and whether `cancel` cut
/// the step short.
async fn first_step(
    reused: Option<Cluster>,
    spec: crate::core::cluster::manifest::ClusterSpec,
    opts: &RunOptions,
    cancel: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    results: &mut Results<impl FnMut(&StepResult)>,
) -> (Option<Cluster>, Vec<String>, bool) {
    let t = Instant::now();
    let up_label = format!(
        "cluster {} ({} nodes, {} edges)",
        if reused.is_some() { "reset" } else { "up" },
        spec.nodes.len(),
        spec.edges.len()
    );
    let images: Vec<String> = spec.nodes.iter().map(|n| n.image.clone()).collect();
    match fresh_cluster(reused, spec, opts, cancel).await {
        Ok(c) => {
            results.record(up_label, 0, t, Outcome::Passed);
            let images = c.spec().nodes.iter().map(|n| n.image.clone()).collect();
            (Some(c), images, false)
        }
        Err(e) => {
            let interrupted = e.is_interrupted();
            results.record(up_label, 0, t, Outcome::Failed(e.to_string()));
            (None, images, interrupted)
        }
    }
}

/// The scenario's steps on `c`, in order, each recorded: after a failure or an interruption the
/// rest are skipped, and a failed step keeps the nodes' last log lines. Returns whether `cancel` cut
/// the run short.
async fn run_steps(
    c: &mut Cluster,
    scenario: &Scenario,
    opts: &RunOptions,
    cancel: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    state: &mut State,
    results: &mut Results<impl FnMut(&StepResult)>,
) -> bool {
    let (mut failed, mut interrupted) = (false, false);
    for step in &scenario.steps {
        if failed || interrupted {
            let now = Instant::now();
            results.record(step.label.clone(), step.line, now, Outcome::Skipped);
            continue;
        }
        let t = Instant::now();
        opts.up.progress.stage(&step.label, 0);
        let outcome = tokio::select! {
            r = execute(c, step, state) => match r {
                Ok(()) => Outcome::Passed,
                Err(message) => { failed = true; Outcome::Failed(message) }
            },
            () = &mut *cancel => { interrupted = true; Outcome::Failed("interrupted".into()) }
        };
        opts.up.progress.finish();
        results.record(step.label.clone(), step.line, t, outcome);
        if failed {
            let logs = last_logs(c).await;
            if let Some(last) = results.list.last_mut() {
                last.logs = Some(logs);
            }
        }
    }
    interrupted
}

/// The run's cluster on a fresh chain: `reused` reset, else a new one made from `spec`.
async fn fresh_cluster(
    reused: Option<Cluster>,
    spec: crate::core::cluster::manifest::ClusterSpec,
    opts: &RunOptions,
    cancel: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<Cluster, Error> {
    let Some(mut c) = reused else {
        return Cluster::up_until(spec, &opts.up, cancel).await;
    };
    let reset = Verb::Reset {
        to: None,
        timeout: None,
    };
    let how = Exec::default();
    tokio::select! {
        r = c.exec(&reset, &how) => r.map(|_| c),
        () = cancel => Err(Error::Interrupted),
    }
}

/// Removes the run's cluster unless it is kept; the teardown step's start and outcome.
async fn teardown(
    cluster: Option<Cluster>,
    keep: bool,
    progress: &Progress,
) -> Option<(Instant, Outcome)> {
    let c = cluster?;
    if keep {
        c.keep();
        return None;
    }
    progress.stage("teardown", 0);
    let t = Instant::now();
    let outcome = match c.down(&Default::default()).await {
        Ok(_) => Outcome::Passed,
        Err(e) => Outcome::Failed(e.to_string()),
    };
    progress.finish();
    Some((t, outcome))
}

/// The last lines of every node's log, each line prefixed with its node.
async fn last_logs(c: &Cluster) -> String {
    use futures::StreamExt;
    let mut out = String::new();
    for node in c.nodes() {
        let Ok(lines) = c.logs(node.name(), Some(LOG_LINES), false) else {
            continue;
        };
        let text: Vec<String> = lines.filter_map(|l| async { l.ok() }).collect().await;
        for line in text.concat().lines() {
            out.push_str(&format!("{}| {line}\n", node.name()));
        }
    }
    out
}

/// Log lines per node kept with a failed step.
const LOG_LINES: usize = 15;

/// What steps leave for later steps: transaction ids by name, and whether a step took the cluster
/// down.
#[derive(Default)]
struct State {
    txids: HashMap<String, String>,
    last_tx: Option<String>,
    down_at: Option<usize>,
}

/// A failed step's message: the error with its whole cause chain.
fn fail(e: Error) -> String {
    error_chain(&e)
}

/// The nodes a step names, or all of them.
fn pick(c: &Cluster, names: &Option<Vec<String>>) -> Result<Vec<Node>, String> {
    match names {
        None => Ok(c.nodes().to_vec()),
        Some(list) => list
            .iter()
            .map(|n| c.node(n).cloned().map_err(fail))
            .collect(),
    }
}

async fn tip(n: &Node) -> Result<String, Error> {
    Ok(n.rpc.get_best_block_hash().await?)
}

async fn execute(c: &mut Cluster, step: &Step, state: &mut State) -> Result<(), String> {
    if let Some(line) = state.down_at {
        return Err(format!(
            "the cluster was taken down by the step at line {line}"
        ));
    }
    match &step.action {
        Action::Sleep(d) => {
            tokio::time::sleep(*d).await;
            Ok(())
        }
        Action::Assert(check) => assert(c, check, state).await,
        Action::Do { verb, then } => {
            let report = carry_out(c, verb).await.map_err(fail)?;
            if matches!(verb, Verb::Down) {
                state.down_at = Some(step.line);
            }
            follow_up(report, then, state)
        }
    }
}

/// A step's verb, through the executor. The step's own spinner stays: the verb's stages are not
/// shown. `apply` changes the scenario's cluster (its manifest takes the running cluster's name), and
/// the handle is opened again on what it made; `down` removes it (the run's teardown then has nothing
/// left to do).
async fn carry_out(c: &mut Cluster, verb: &Verb) -> Result<Report, Error> {
    let how = Exec::default();
    let name = c.name().to_string();
    match verb {
        Verb::Apply { .. } => {
            let mut verb = verb.clone();
            if let Verb::Apply { spec, .. } = &mut verb {
                spec.rename(&name).map_err(Error::BadRequest)?;
            }
            let report = exec::execute(Some(&name), &verb, &how, std::future::pending()).await?;
            let mut fresh = Cluster::open(Some(&name)).await?;
            fresh.armed = c.armed;
            std::mem::replace(c, fresh).keep();
            Ok(report)
        }
        Verb::Down => {
            c.armed = false;
            exec::execute(Some(&name), verb, &how, std::future::pending()).await
        }
        _ => c.exec(verb, &how).await,
    }
}

/// What a step does with its verb's report: keeps a transaction for later steps, or checks a result.
fn follow_up(report: Report, then: &Then, state: &mut State) -> Result<(), String> {
    match (report, then) {
        (Report::Sent(sent), then) => {
            if let Then::Name(id) = then {
                state.txids.insert(id.clone(), sent.txid.clone());
            }
            state.last_tx = Some(sent.txid);
            Ok(())
        }
        (Report::Rpc(result), Then::Equals(want)) if *want != result => {
            Err(format!("expected {want}, saw {result}"))
        }
        (Report::Measured(m), Then::Within { quantile, within }) => {
            let within_ms = within.as_secs_f64() * 1000.0;
            propagation::check_within(&m.rounds, m.kind, &m.origin, *quantile, within_ms)
        }
        _ => Ok(()),
    }
}

fn describe<T: std::fmt::Display>(nodes: &[Node], values: &[T]) -> String {
    nodes
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{}={v}", n.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn assert(c: &Cluster, check: &Assertion, state: &State) -> Result<(), String> {
    let tips_of = |nodes: Vec<Node>| async move {
        let tips = on_all(&nodes, tip).await.map_err(fail)?;
        Ok::<_, String>((nodes, tips))
    };
    match check {
        Assertion::SameTip(names) => {
            let (nodes, tips) = tips_of(pick(c, names)?).await?;
            if tips.windows(2).all(|w| w[0] == w[1]) {
                Ok(())
            } else {
                let short: Vec<&str> = tips.iter().map(|t| wait::short(t)).collect();
                Err(format!(
                    "expected one tip, saw {}",
                    describe(&nodes, &short)
                ))
            }
        }
        Assertion::DifferentTips(names) => {
            let (nodes, tips) = tips_of(pick(c, &Some(names.clone()))?).await?;
            for i in 0..tips.len() {
                for j in i + 1..tips.len() {
                    if tips[i] == tips[j] {
                        return Err(format!(
                            "expected different tips, saw {} and {} both on {}",
                            nodes[i].name(),
                            nodes[j].name(),
                            wait::short(&tips[i])
                        ));
                    }
                }
            }
            Ok(())
        }
        Assertion::Height { node, height } => {
            let nodes = pick(c, &node.clone().map(|n| vec![n]))?;
            let heights = on_all(&nodes, |n| async move {
                n.rpc.get_block_count().await.map_err(Error::from)
            })
            .await
            .map_err(fail)?;
            if heights.iter().all(|h| h == height) {
                Ok(())
            } else {
                Err(format!(
                    "expected height {height}, saw {}",
                    describe(&nodes, &heights)
                ))
            }
        }
        Assertion::TipOf { a, b } => {
            let (nodes, tips) = tips_of(pick(c, &Some(vec![a.clone(), b.clone()]))?).await?;
            if tips[0] == tips[1] {
                Ok(())
            } else {
                Err(format!(
                    "expected tip_of {a} == tip_of {b}, saw {} on {} and {} on {}",
                    nodes[0].name(),
                    wait::short(&tips[0]),
                    nodes[1].name(),
                    wait::short(&tips[1])
                ))
            }
        }
        Assertion::StaleTips { node, count } => stale_tips(c, node, *count).await,
        Assertion::MempoolHas { node, tx } => mempool_has(c, node, tx.as_deref(), state).await,
    }
}

/// `assert: stale_tips`: the node's chain holds exactly `count` tips besides the active one.
async fn stale_tips(c: &Cluster, node: &str, count: u64) -> Result<(), String> {
    let n = c.node(node).map_err(fail)?;
    let tips: Vec<Value> = n
        .rpc
        .call("getchaintips", serde_json::json!([]))
        .await
        .map_err(|e| fail(e.into()))?;
    let stale: Vec<String> = tips
        .iter()
        .filter(|t| t["status"] != "active")
        .map(|t| {
            format!(
                "{} at {} ({})",
                t["hash"].as_str().map_or("?", wait::short),
                t["height"],
                t["status"].as_str().unwrap_or("?")
            )
        })
        .collect();
    if stale.len() as u64 == count {
        Ok(())
    } else {
        Err(format!(
            "expected {count} stale tip(s) at {}, saw {}: {}",
            n.name(),
            stale.len(),
            if stale.is_empty() {
                "none".to_string()
            } else {
                stale.join(", ")
            }
        ))
    }
}

/// `assert: mempool_has`: the named transaction (the last one sent for `None`) is in the node's mempool.
async fn mempool_has(
    c: &Cluster,
    node: &str,
    tx: Option<&str>,
    state: &State,
) -> Result<(), String> {
    let txid = match tx {
        Some(id) => state
            .txids
            .get(id)
            .cloned()
            .ok_or_else(|| format!("no transaction named `{id}` was sent"))?,
        None => state
            .last_tx
            .clone()
            .ok_or("no transaction was sent before")?,
    };
    let n = c.node(node).map_err(fail)?;
    let pool = n.rpc.get_raw_mempool().await.map_err(|e| fail(e.into()))?;
    if pool.contains(&txid) {
        Ok(())
    } else {
        Err(format!(
            "expected {} in the mempool of {}, saw {} other transaction(s)",
            wait::short(&txid),
            n.name(),
            pool.len()
        ))
    }
}
