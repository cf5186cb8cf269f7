//! One function per command (the six node faults share one), and [`run`], which only picks it. Each
//! reads its input, calls the engine, and hands the result to `output`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::cli::args::{
    AgentCommand, Cli, Command, ExportCommand, GraphFormat, ImageCommand, MeasureCommand,
    OutputFormat, SwarmCommand, TopologyCommand, UpArgs,
};
use crate::cli::exit::{Failure, INTERRUPTED};
use crate::cli::load::{check_file, load_manifest, load_scenario};
use crate::cli::{output, plot};
use crate::core::fault::Fault;
use crate::core::firewall::Block;
use crate::core::link::{self, Shaping};
use crate::core::manifest::ClusterSpec;
use crate::core::partition::{CutMode, PartitionKind, Via};
use crate::core::propagation::Kind;
use crate::core::scenario::Scenario;
use crate::core::soak::Event;
use crate::engine::cluster::{Cluster, NodeStatus};
use crate::engine::error::Error;
use crate::engine::image;
use crate::engine::lifecycle::{self, UpOptions};
use crate::engine::measure::MeasureOptions;
use crate::engine::progress::Progress;
use crate::engine::runner::{self, RunOptions, RunReport};
use crate::engine::segments::{HealReport, PartitionReport};
use crate::engine::soak::{self, SoakOptions};
use crate::engine::swarm;
use crate::operator::{self, client::Client};

/// How long connect, disconnect and the node faults wait.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `regbox rpc` waits for an answer.
const RPC_TIMEOUT: Duration = Duration::from_secs(300);
/// How long each wait of a scenario's `up` may take.
const SCENARIO_UP_TIMEOUT: Duration = Duration::from_secs(120);

/// What every command may need from the global flags.
struct Context {
    /// `--json` or `-o json`: JSON on stdout, no progress bars.
    json: bool,
    /// `-o wide`: tables with more columns.
    wide: bool,
    /// Progress bars on stderr: it is a terminal and `--json` is off.
    tty: bool,
    /// `-c CLUSTER`.
    cluster: Option<String>,
    /// `--operator URL`.
    operator: Option<String>,
}

/// Where a command that an operator can carry out goes.
enum Route {
    /// Here: the cluster, opened.
    Local(Box<Cluster>),
    /// To an operator, for the named cluster.
    Remote(Client, String),
}

impl Context {
    /// A command's positional cluster name, else `-c` (or `REGBOX_CLUSTER`); two different names are a
    /// usage error, never one silently hiding the other.
    fn wanted(&self, positional: Option<String>) -> Result<Option<String>, Failure> {
        match (positional, &self.cluster) {
            (Some(p), Some(c)) if &p != c => Err(Failure::Usage(format!(
                "two clusters named: `{p}` and `{c}` (-c or REGBOX_CLUSTER); name one"
            ))),
            (p, c) => Ok(p.or(c.clone())),
        }
    }

    /// How `run` and `soak` bring their cluster up: torn down when dropped unless `--keep`.
    fn run_up_options(&self, keep: bool) -> UpOptions {
        UpOptions {
            progress: self.progress(),
            timeout: SCENARIO_UP_TIMEOUT,
            teardown_on_drop: !keep,
            attach: None,
        }
    }

    fn progress(&self) -> Progress {
        crate::cli::bar::progress(self.tty)
    }

    /// Awaits `work` with a spinner saying what is awaited (on a terminal only; never with `--json`).
    async fn awaiting<T>(&self, what: &str, work: impl std::future::Future<Output = T>) -> T {
        let progress = self.progress();
        progress.stage(what, 0);
        let out = work.await;
        progress.finish();
        out
    }

    /// The cluster named by `-c` (or the only one).
    async fn open(&self) -> Result<Cluster, Failure> {
        Ok(Cluster::open(self.cluster.as_deref()).await?)
    }

    /// Where a command an operator can carry out goes: to `--operator`; else here, unless the nodes
    /// cannot be reached from here and an operator answers at the default address.
    async fn route(&self, positional: Option<String>) -> Result<Route, Failure> {
        let wanted = self.wanted(positional)?;
        if let Some(url) = &self.operator {
            let client = Client::new(url);
            let name = match wanted {
                Some(name) => name,
                None => only_watched(&client).await?,
            };
            return Ok(Route::Remote(client, name));
        }
        let cluster = Cluster::open(wanted.as_deref()).await?;
        if cluster.reachable().await {
            return Ok(Route::Local(Box::new(cluster)));
        }
        match Client::probe_default().await {
            Some(client) => {
                tracing::info!(
                    "the nodes cannot be reached from here; asking the operator at {}",
                    client.base()
                );
                Ok(Route::Remote(client, cluster.name().to_string()))
            }
            None => Ok(Route::Local(Box::new(cluster))),
        }
    }
}

/// The clusters an operator watches.
async fn watched(client: &Client) -> Result<Vec<String>, Failure> {
    let status = client.get("/status").await.map_err(refused)?;
    Ok(status["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["cluster"].as_str().map(str::to_string))
        .collect())
}

/// The one cluster an operator watches (a command named none).
async fn only_watched(client: &Client) -> Result<String, Failure> {
    let names = watched(client).await?;
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Failure::Usage(format!(
            "the operator at {} watches no cluster",
            client.base()
        ))),
        _ => Err(Failure::Usage(format!(
            "the operator at {} watches several clusters ({}); name one with -c",
            client.base(),
            names.join(", ")
        ))),
    }
}

/// An operator's refusal as a failure: bad input (unknown cluster or node, a bad request) exits 2.
fn refused(r: operator::client::Refusal) -> Failure {
    match r.status {
        Some(400 | 404) => Failure::Usage(r.message),
        _ => Failure::Report(r.message),
    }
}

/// A request to the operator for `cluster`, its reply read as `T`.
async fn ask<T: serde::de::DeserializeOwned>(
    client: &Client,
    cluster: &str,
    action: &str,
    body: Value,
) -> Result<T, Failure> {
    let reply = client
        .post(&format!("/clusters/{cluster}/{action}"), body)
        .await
        .map_err(refused)?;
    serde_json::from_value(reply)
        .map_err(|e| Failure::Report(format!("unreadable reply of the operator: {e}")))
}

/// The partition kinds chosen by flags (groups come as positional words).
struct KindFlags {
    halves: bool,
    random_halves: bool,
    seed: Option<u64>,
    isolate: Option<String>,
    bridge: bool,
    majorities_ring: bool,
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    crate::engine::lock::set_wait(Duration::from_secs(cli.wait_lock));
    let json = cli.json || cli.output == Some(OutputFormat::Json);
    let ctx = Context {
        json,
        wide: cli.output == Some(OutputFormat::Wide),
        tty: std::io::stderr().is_terminal() && !json,
        cluster: cli.cluster,
        operator: cli.operator,
    };
    match cli.command {
        Command::Up { manifest, how } => {
            let plan = if how.dry_run {
                Plan::Only
            } else {
                Plan::Silent
            };
            up(&ctx, manifest.as_deref(), &how, plan).await
        }
        Command::Apply { manifest, how } => {
            let plan = if how.dry_run { Plan::Only } else { Plan::Print };
            up(&ctx, Some(&manifest), &how, plan).await
        }
        Command::Down { name, all } => down(&ctx, name, all).await,
        Command::Ls => ls(&ctx).await,
        Command::Operator {
            manifests,
            listen,
            interval,
            timeout,
        } => operator(&ctx, manifests, listen, interval, timeout).await,
        Command::Status { name } => status(&ctx, name).await,
        Command::Connect { a, b } => connect(&ctx, &a, &b).await,
        Command::Disconnect { a, b } => disconnect(&ctx, &a, &b).await,
        Command::Url { node } => {
            let connection = ctx.open().await?.connection(&node)?;
            output::print_connection(&connection, ctx.json);
            Ok(())
        }
        Command::Mine { node, blocks } => mine(&ctx, &node, blocks).await,
        Command::Sync { name, timeout } => sync(&ctx, name, timeout).await,
        Command::Rpc { node, method, args } => rpc(&ctx, &node, &method, &args).await,
        Command::Logs { node, follow, tail } => logs(&ctx, &node, follow, tail).await,
        Command::Partition {
            groups,
            halves,
            random_halves,
            seed,
            isolate,
            bridge,
            majorities_ring,
            silent,
            via,
            reset,
            timeout,
        } => {
            let flags = KindFlags {
                halves,
                random_halves,
                seed,
                isolate,
                bridge,
                majorities_ring,
            };
            let via = if via == "firewall" {
                Via::Firewall
            } else {
                Via::Segments
            };
            if reset && via != Via::Firewall {
                return Err(Failure::Usage("--reset needs --via firewall".into()));
            }
            partition(&ctx, groups, flags, (silent, via, reset), timeout).await
        }
        Command::Heal {
            name,
            sync,
            timeout,
        } => heal(&ctx, name, sync, timeout).await,
        Command::Stop { node } => fault(&ctx, Fault::Stop, &node).await,
        Command::Start { node } => fault(&ctx, Fault::Start, &node).await,
        Command::Restart { node } => fault(&ctx, Fault::Restart, &node).await,
        Command::Kill { node } => fault(&ctx, Fault::Kill, &node).await,
        Command::Pause { node } => fault(&ctx, Fault::Pause, &node).await,
        Command::Unpause { node } => fault(&ctx, Fault::Unpause, &node).await,
        Command::Netem {
            nodes,
            to,
            like,
            delay,
            jitter,
            distribution,
            loss,
            duplicate,
            corrupt,
            reorder,
            rate,
            clear,
        } => {
            let cluster = ctx.open().await?;
            let progress = ctx.progress();
            let all: Vec<String> = cluster
                .nodes()
                .iter()
                .map(|n| n.name().to_string())
                .collect();
            let nodes = if nodes.is_empty() { all } else { nodes };
            let plane = if clear {
                cluster
                    .clear_links(Some(&nodes), true, false, &progress)
                    .await?
            } else {
                let base = like
                    .as_deref()
                    .and_then(Shaping::shorthand)
                    .unwrap_or_default();
                let shaping = Shaping {
                    delay_us: delay.unwrap_or(base.delay_us),
                    jitter_us: jitter.unwrap_or(base.jitter_us),
                    distribution: distribution
                        .as_deref()
                        .and_then(link::Distribution::parse)
                        .unwrap_or(base.distribution),
                    loss: loss.unwrap_or(base.loss),
                    duplicate: duplicate.unwrap_or(base.duplicate),
                    corrupt: corrupt.unwrap_or(base.corrupt),
                    reorder: reorder.unwrap_or(base.reorder),
                    rate_bps: rate.or(base.rate_bps),
                };
                let to = (!to.is_empty()).then_some(to.as_slice());
                cluster.shape(&nodes, to, &shaping, &progress).await?
            };
            progress.finish();
            output::print_plane(&cluster, &plane, ctx.json);
            Ok(())
        }
        Command::Cut {
            ends,
            from,
            to,
            reset,
            clear,
        } => {
            let cluster = ctx.open().await?;
            let progress = ctx.progress();
            let split = |s: &String| s.split(',').map(str::to_string).collect::<Vec<_>>();
            let plane = if clear {
                let nodes: Vec<String> = ends.iter().flat_map(split).collect();
                let nodes = (!nodes.is_empty()).then_some(nodes);
                cluster
                    .clear_links(nodes.as_deref(), false, true, &progress)
                    .await?
            } else {
                let block = if reset { Block::Reset } else { Block::Drop };
                let (from, to, both) = match (ends.as_slice(), from.is_empty()) {
                    ([a, b], true) => (split(a), split(b), true),
                    ([], false) => (from, to, false),
                    _ => {
                        return Err(Failure::Usage(
                            "name two ends (`cut A B`) or --from and --to".into(),
                        ))
                    }
                };
                cluster.cut(&from, &to, both, block, &progress).await?
            };
            progress.finish();
            output::print_plane(&cluster, &plane, ctx.json);
            Ok(())
        }
        Command::Agent {
            command: AgentCommand::Serve,
        } => crate::agent::serve().map_err(|e| Failure::Report(format!("agent: {e}"))),
        Command::Agent {
            command: AgentCommand::Call { request },
        } => {
            let reply =
                crate::agent::call(&request).map_err(|e| Failure::Report(format!("agent: {e}")))?;
            print!("{reply}");
            Ok(())
        }
        Command::Relay {
            listen,
            allow,
            port,
        } => {
            let allow = crate::relay::Allow {
                subnets: allow,
                ports: port,
            };
            crate::relay::serve(listen, allow)
                .await
                .map_err(|e| Failure::Report(format!("relay: {e}")))
        }
        Command::Run {
            scenarios,
            junit,
            keep,
        } => run_scenarios(&ctx, &scenarios, junit, keep).await,
        Command::Soak {
            manifest,
            duration,
            seed,
            faults,
            rate,
            tx_rate,
            gap,
            hold,
            converge,
            events,
            report,
            junit,
            keep,
        } => {
            let seed = seed.unwrap_or_else(|| {
                let seed = rand::random::<u64>() >> 12;
                eprintln!("soak seed {seed} (repeat the run with --seed {seed})");
                seed
            });
            let opts = SoakOptions {
                seed,
                duration,
                faults: faults.0,
                mean_gap: gap,
                mean_hold: hold,
                blocks_per_min: rate,
                txs_per_min: tx_rate,
                converge,
                up: ctx.run_up_options(keep),
                keep,
            };
            let files = SoakFiles {
                events,
                report,
                junit,
            };
            soak(&ctx, &manifest, opts, files).await
        }
        Command::Check { files } => check(&ctx, &files),
        Command::Export {
            command: ExportCommand::Compose { manifest },
        } => {
            let spec = match manifest {
                Some(path) => load_manifest(&path)?,
                None => ClusterSpec::default_ring4(),
            };
            let text = crate::engine::export::compose_file(spec, &ctx.progress()).await?;
            written(std::io::Write::write_all(
                &mut std::io::stdout(),
                text.as_bytes(),
            ))
        }
        Command::Topology {
            command:
                TopologyCommand::Show {
                    manifest,
                    svg,
                    export,
                    dot,
                },
        } => {
            let export = export.or(dot.then_some(GraphFormat::Dot));
            topology_show(&ctx, manifest.as_deref(), svg.as_deref(), export).await
        }
        Command::Swarm { command } => swarm(&ctx, command).await,
        Command::Version => version(&ctx).await,
        Command::Completions { shell, fixed } => completions(shell, fixed),
        Command::Man => man(),
        Command::Image {
            command: ImageCommand::Build { from, tag, itself },
        } => {
            if itself {
                let progress = ctx.progress();
                println!("{}", image::build_self(&progress).await?);
                return Ok(());
            }
            let source = match from {
                None => image::Source::Debian,
                Some(path) if path.exists() => image::Source::Local { path, tag },
                Some(path) => {
                    return Err(Failure::Usage(format!(
                        "{}: no such file or directory",
                        path.display()
                    )))
                }
            };
            image_build(&ctx, &source).await
        }
        Command::Image {
            command: ImageCommand::Ls,
        } => {
            output::print_images(&image::list().await?, ctx.json);
            Ok(())
        }
        Command::Measure {
            command:
                MeasureCommand::Propagation {
                    from,
                    blocks,
                    tx,
                    svg,
                    png,
                    timeout,
                },
        } => {
            let opts = MeasureOptions {
                kind: if tx { Kind::Tx } else { Kind::Block },
                from: from.unwrap_or_else(|| "0".into()),
                rounds: blocks as usize,
                timeout: Duration::from_secs(timeout),
            };
            measure(&ctx, &opts, svg.as_deref(), png.as_deref()).await
        }
    }
}

/// `regbox measure propagation`: the measurement as a table or JSON, then its plots.
async fn measure(
    ctx: &Context,
    opts: &MeasureOptions,
    svg: Option<&Path>,
    png: Option<&Path>,
) -> Result<(), Failure> {
    let cluster = ctx.open().await?;
    let m = cluster.measure_propagation(opts, &ctx.progress()).await?;
    output::print_measurement(&m, ctx.json);
    if let Some(path) = svg {
        plot::svg(&m, path).map_err(Failure::Report)?;
    }
    if let Some(path) = png {
        plot::png(&m, path).map_err(Failure::Report)?;
    }
    Ok(())
}

/// `regbox completions SHELL [--static]` on stdout. The default script registers regbox as its own
/// completer (`REGBOX_COMPLETE=SHELL regbox …`, answered in `main`), so cluster and node names come from the
/// engine; `--static` is clap's fixed script.
fn completions(shell: clap_complete::Shell, fixed: bool) -> Result<(), Failure> {
    let mut out = std::io::stdout();
    if fixed {
        let mut cmd = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut cmd, "regbox", &mut out);
        return Ok(());
    }
    let shells = clap_complete::env::Shells::builtins();
    let Some(completer) = shells.completer(&shell.to_string()) else {
        return Err(Failure::Usage(format!(
            "no dynamic completion for {shell}; use --static"
        )));
    };
    written(completer.write_registration(COMPLETE_VAR, "regbox", "regbox", "regbox", &mut out))
}

/// The variable that asks regbox for completions instead of running a command.
pub const COMPLETE_VAR: &str = "REGBOX_COMPLETE";

/// `regbox man` on stdout.
fn man() -> Result<(), Failure> {
    let cmd = <Cli as clap::CommandFactory>::command();
    written(clap_mangen::Man::new(cmd).render(&mut std::io::stdout()))
}

/// A generated text written to stdout; a reader that stops early (`| head`) is not a failure.
fn written(result: std::io::Result<()>) -> Result<(), Failure> {
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::Report(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// `regbox version`: this program, the default node image, and the engine (or why it is not reachable).
async fn version(ctx: &Context) -> Result<(), Failure> {
    let engine = match lifecycle::engine_version().await {
        Ok((version, api)) => serde_json::json!({"version": version, "api_version": api}),
        Err(e) => serde_json::json!({"error": crate::core::names::error_chain(&e)}),
    };
    let resolved = image::newest().await.ok().flatten();
    let report = serde_json::json!({
        "regbox": env!("CARGO_PKG_VERSION"),
        "default_image": crate::core::manifest::DEFAULT_IMAGE,
        "default_image_now": resolved,
        "engine": engine,
    });
    if ctx.json {
        output::print_json(&report);
    } else {
        println!("regbox {}", env!("CARGO_PKG_VERSION"));
        let now = match &resolved {
            Some(image) => format!("now {image}"),
            None => "none here yet: the first `up` builds it".to_string(),
        };
        println!(
            "default node image {} ({now})",
            crate::core::manifest::DEFAULT_IMAGE
        );
        match (&engine["version"], &engine["api_version"]) {
            (Value::String(v), Value::String(api)) => println!("docker engine {v} (API {api})"),
            _ => println!(
                "docker engine not reachable: {}",
                engine["error"].as_str().unwrap_or("?")
            ),
        }
    }
    Ok(())
}

/// `regbox topology show`: the numbers of a manifest's topology (or the cluster's), its picture, or
/// the graph in another format.
async fn topology_show(
    ctx: &Context,
    manifest: Option<&Path>,
    svg: Option<&Path>,
    export: Option<GraphFormat>,
) -> Result<(), Failure> {
    let spec = match manifest {
        Some(path) => load_manifest(path)?,
        None => ctx.open().await?.spec().clone(),
    };
    let names: Vec<String> = spec.nodes.iter().map(|n| n.name.clone()).collect();
    if let Some(path) = svg {
        let picture = crate::core::svg::render(&names, &spec.edges, None);
        std::fs::write(path, picture)
            .map_err(|e| Failure::Report(format!("cannot write {}: {e}", path.display())))?;
    }
    match export {
        Some(format) => {
            let text = crate::core::graphio::export(&names, &spec.edges, format.format());
            written(std::io::Write::write_all(
                &mut std::io::stdout(),
                text.as_bytes(),
            ))
        }
        None => {
            let stats = crate::core::stats::stats(names.len(), &spec.edges);
            output::print_topology(&spec.name, &stats, ctx.json);
            Ok(())
        }
    }
}

/// `regbox check`: every file is validated and reported; the first invalid one's error is the failure.
fn check(ctx: &Context, files: &[PathBuf]) -> Result<(), Failure> {
    let mut valid = Vec::new();
    let mut first_error = None;
    for file in files {
        match check_file(file) {
            Ok(checked) => valid.push(checked),
            Err(e) if first_error.is_none() => first_error = Some(e),
            Err(e) => eprintln!("error: {}", crate::core::names::error_chain(&e)),
        }
    }
    output::print_checked(&valid, ctx.json);
    first_error.map_or(Ok(()), Err)
}

/// Completes on the first Ctrl-C; a second one exits at once.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        return std::future::pending().await;
    }
    eprintln!("interrupted: removing what this run created (Ctrl-C again to exit at once)");
    tokio::spawn(async {
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(INTERRUPTED);
    });
}

/// `regbox operator`: manifests are checked before anything runs; then the HTTP interface and the
/// watchers run until Ctrl-C or SIGTERM (what `docker stop` sends), on this thread.
async fn operator(
    ctx: &Context,
    manifests: Vec<PathBuf>,
    listen: std::net::SocketAddr,
    interval: u64,
    timeout: u64,
) -> Result<(), Failure> {
    // `-c` names the cluster one manifest makes, as for `up`.
    let rename = ctx.cluster.clone();
    if rename.is_some() && manifests.len() != 1 {
        return Err(Failure::Usage(
            "-c renames the cluster of one manifest; give exactly one".into(),
        ));
    }
    let load = move |path: &Path| -> Result<ClusterSpec, Failure> {
        let mut spec = load_manifest(path)?;
        if let Some(name) = &rename {
            spec.rename(name).map_err(Failure::Usage)?;
        }
        Ok(spec)
    };
    let mut names = std::collections::BTreeSet::new();
    for path in &manifests {
        let spec = load(path)?;
        if !names.insert(spec.name.clone()) {
            return Err(Failure::Usage(format!(
                "two manifests declare cluster `{}`; one operator keeps a cluster by one manifest",
                spec.name
            )));
        }
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure::Usage(format!("cannot listen on {listen}: {e}")))?;
    eprintln!(
        "operator listening on http://{}",
        listener.local_addr().unwrap_or(listen)
    );
    let opts = crate::operator::Options {
        manifests,
        load: Box::new(move |path| load(path).map_err(|f| crate::cli::error_chain(&f))),
        interval: Duration::from_secs(interval),
        timeout: Duration::from_secs(timeout),
    };
    let op = std::sync::Arc::new(crate::operator::Operator::new(
        crate::operator::own_container().await,
    ));
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let http = tokio::task::spawn_local(crate::operator::http::serve(
                op.clone(),
                listener,
                opts.timeout,
            ));
            let result = crate::operator::run(opts, op, stopped()).await;
            http.abort();
            result
        })
        .await
        .map_err(Failure::Usage)
}

/// Ctrl-C or SIGTERM; a second one exits at once (passes under way may take minutes).
async fn stopped() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    tokio::select! {
        () = signal_once(&mut term) => {}
        () = signal_once(&mut int) => {}
    }
    eprintln!("stopping once the passes under way are done (again to exit at once)");
    tokio::spawn(async move {
        tokio::select! {
            () = signal_once(&mut term) => {}
            () = signal_once(&mut int) => {}
        }
        std::process::exit(INTERRUPTED);
    });
}

/// The next delivery of a signal (never, when it could not be watched).
async fn signal_once(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// What `up` does with its plan.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Carries it out without printing it (`up`).
    Silent,
    /// Prints it, then carries it out when it holds anything (`apply`).
    Print,
    /// Prints it and changes nothing (`--dry-run`).
    Only,
}

async fn up(
    ctx: &Context,
    manifest: Option<&Path>,
    how: &UpArgs,
    plan: Plan,
) -> Result<(), Failure> {
    let (timeout, image) = (how.timeout, how.image.as_deref());
    let mut spec = match manifest {
        Some(path) => load_manifest(path)?,
        None => ClusterSpec::default_ring4(),
    };
    // `-c` names the cluster this manifest makes, so two jobs can bring up one manifest side by side.
    if let Some(name) = &ctx.cluster {
        spec.rename(name).map_err(Failure::Usage)?;
    }
    if let Some(image) = image {
        spec.with_image(image).map_err(Failure::Usage)?;
    }
    if plan != Plan::Silent {
        let (resolved, recorded, steps) = lifecycle::plan_up(spec.clone()).await?;
        let exists = recorded.is_some();
        output::print_up_plan(&resolved, exists, &steps, ctx.json);
        if plan == Plan::Only || (exists && steps.is_empty()) {
            return Ok(());
        }
    }
    let opts = UpOptions {
        progress: ctx.progress(),
        timeout: Duration::from_secs(timeout),
        teardown_on_drop: false,
        attach: None,
    };
    let started = Instant::now();
    let cluster = Cluster::up_until(spec, &opts, interrupted()).await?;
    let took = started.elapsed();
    eprintln!(
        "cluster `{}` is up: {} nodes, {} edges verified in {:.1}s",
        cluster.name(),
        cluster.nodes().len(),
        cluster.spec().edges.len(),
        took.as_secs_f64()
    );
    // `apply --json` prints one document: its plan.
    if !(plan == Plan::Print && ctx.json) {
        output::print_status(&cluster.status().await?, ctx.json, ctx.wide);
    }
    Ok(())
}

async fn down(ctx: &Context, cluster: Option<String>, all: bool) -> Result<(), Failure> {
    let names: Vec<Option<String>> = if all {
        lifecycle::list()
            .await?
            .into_iter()
            .map(|c| Some(c.name))
            .collect()
    } else {
        vec![ctx.wanted(cluster)?]
    };
    let mut reports = Vec::new();
    let mut failed = Vec::new();
    for name in names {
        // With --all, one cluster that cannot go does not keep the others.
        let report = match lifecycle::down_named(name.as_deref(), &ctx.progress()).await {
            Ok(report) => report,
            Err(e) if all => {
                eprintln!("error: {}", crate::core::names::error_chain(&e));
                failed.push(name.unwrap_or_default());
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if !ctx.json {
            output::print_removed(&report);
        }
        reports.push(report);
    }
    if !failed.is_empty() {
        return Err(Error::Leftovers(failed).into());
    }
    if ctx.json && all {
        output::print_json(&reports);
    } else if ctx.json {
        output::print_json(&reports[0]);
    }
    Ok(())
}

/// Every cluster, or with `-c` only that one (an empty list when it does not exist).
async fn ls(ctx: &Context) -> Result<(), Failure> {
    let mut list = lifecycle::list().await?;
    if let Some(name) = &ctx.cluster {
        list.retain(|c| &c.name == name);
    }
    output::print_clusters(&list, ctx.json);
    Ok(())
}

async fn status(ctx: &Context, cluster: Option<String>) -> Result<(), Failure> {
    let nodes: Vec<NodeStatus> = match ctx.route(cluster).await? {
        Route::Local(cluster) => cluster.status().await?,
        Route::Remote(client, name) => {
            let reply = client
                .get(&format!("/clusters/{name}/status"))
                .await
                .map_err(refused)?;
            serde_json::from_value(reply)
                .map_err(|e| Failure::Report(format!("unreadable reply of the operator: {e}")))?
        }
    };
    output::print_status(&nodes, ctx.json, ctx.wide);
    Ok(())
}

async fn connect(ctx: &Context, a: &str, b: &str) -> Result<(), Failure> {
    let cluster = ctx.open().await?;
    cluster.connect(a, b, STEP_TIMEOUT).await?;
    eprintln!("{a} -> {b} connected");
    Ok(())
}

async fn disconnect(ctx: &Context, a: &str, b: &str) -> Result<(), Failure> {
    let cluster = ctx.open().await?;
    cluster.disconnect(a, b, STEP_TIMEOUT).await?;
    eprintln!("{a} and {b} disconnected");
    Ok(())
}

async fn mine(ctx: &Context, node: &str, blocks: u64) -> Result<(), Failure> {
    let cluster = match ctx.route(None).await? {
        Route::Local(cluster) => cluster,
        Route::Remote(client, name) => {
            #[derive(serde::Deserialize)]
            struct Mined {
                node: String,
                height: u64,
                blocks: Vec<String>,
            }
            let body = json!({ "node": node, "blocks": blocks });
            let m: Mined = ask(&client, &name, "mine", body).await?;
            output::print_mined(&m.node, m.height, &m.blocks, ctx.json);
            return Ok(());
        }
    };
    let hashes = cluster.mine(node, blocks).await?;
    // By name, also when the node was given by index.
    let node = cluster.node(node)?;
    let height = node.rpc.get_block_count().await?;
    output::print_mined(node.name(), height, &hashes, ctx.json);
    Ok(())
}

async fn sync(ctx: &Context, cluster: Option<String>, timeout: u64) -> Result<(), Failure> {
    let cluster = Cluster::open(ctx.wanted(cluster)?.as_deref()).await?;
    let timeout = Duration::from_secs(timeout);
    let waits =
        async { tokio::try_join!(cluster.sync_blocks(timeout), cluster.sync_mempools(timeout)) };
    let (tip, txs) = ctx
        .awaiting(
            "waiting for one best block and one mempool on every node",
            waits,
        )
        .await?;
    output::print_synced(cluster.nodes().len(), &tip, txs, ctx.json);
    Ok(())
}

/// Arguments are JSON when they parse as JSON, strings otherwise.
async fn rpc(ctx: &Context, node: &str, method: &str, args: &[String]) -> Result<(), Failure> {
    let cluster = ctx.open().await?;
    let target = cluster.node(node)?;
    let params: Vec<Value> = args
        .iter()
        .map(|a| serde_json::from_str(a).unwrap_or_else(|_| Value::String(a.clone())))
        .collect();
    let result = target
        .rpc
        .call_raw(method, Value::Array(params), RPC_TIMEOUT)
        .await?;
    output::print_rpc_result(result, ctx.json);
    Ok(())
}

async fn logs(ctx: &Context, node: &str, follow: bool, tail: Option<usize>) -> Result<(), Failure> {
    let cluster = ctx.open().await?;
    let mut lines = std::pin::pin!(cluster.logs(node, tail, follow)?);
    while let Some(chunk) = lines.next().await {
        print!("{}", chunk?);
    }
    Ok(())
}

async fn partition(
    ctx: &Context,
    groups: Vec<String>,
    flags: KindFlags,
    (silent, via, reset): (bool, Via, bool),
    timeout: u64,
) -> Result<(), Failure> {
    let (target, groups) = split_cluster_word(ctx, groups).await?;
    let kind = partition_kind(groups, flags)?;
    let mode = if silent {
        CutMode::Silent
    } else {
        CutMode::Drop
    };
    let mut cluster = match ctx.route(target).await? {
        Route::Local(cluster) => cluster,
        Route::Remote(client, name) => {
            let body = json!({ "kind": kind, "via": via, "mode": mode, "reset": reset });
            let report: PartitionReport = ask(&client, &name, "partition", body).await?;
            output::print_partition(&report, ctx.json);
            return Ok(());
        }
    };
    let report = ctx
        .awaiting(
            "partitioning and waiting for the nodes to report the expected graph",
            cluster.partition_via(&kind, mode, via, reset, Duration::from_secs(timeout)),
        )
        .await?;
    output::print_partition(&report, ctx.json);
    Ok(())
}

/// `regbox swarm status|init|leave MANIFEST`.
async fn swarm(ctx: &Context, command: SwarmCommand) -> Result<(), Failure> {
    let path = match &command {
        SwarmCommand::Status { manifest }
        | SwarmCommand::Init { manifest }
        | SwarmCommand::Leave { manifest, .. } => manifest,
    };
    let spec = load_manifest(path)?;
    if spec.hosts.is_empty() {
        return Err(Failure::Usage(format!(
            "{}: the manifest names no `hosts:`; its cluster runs on one engine",
            path.display()
        )));
    }
    let done = match command {
        SwarmCommand::Status { .. } => {
            let status = swarm::status(&spec).await;
            output::print_swarm(&status, ctx.json);
            return match status.problem {
                None => Ok(()),
                Some(problem) => Err(Failure::Hosts(problem)),
            };
        }
        SwarmCommand::Init { .. } => swarm::init(&spec).await?,
        SwarmCommand::Leave { force, .. } => swarm::leave(&spec, force).await?,
    };
    if ctx.json {
        output::print_json(&done);
    } else {
        for line in done {
            println!("{line}");
        }
    }
    Ok(())
}

/// `regbox partition lab n0,n1 n2,n3`: without `-c`, a first positional word that names an existing
/// cluster selects that cluster instead of being a group. Deciding that needs the list of clusters (a
/// Docker call), so it happens here, when the command runs, not while parsing arguments.
async fn split_cluster_word(
    ctx: &Context,
    mut groups: Vec<String>,
) -> Result<(Option<String>, Vec<String>), Failure> {
    let mut target = ctx.cluster.clone();
    if target.is_none() && !groups.is_empty() {
        // With --operator, the clusters are the operator's (there may be no engine to ask here).
        let names: Vec<String> = match &ctx.operator {
            Some(url) => watched(&Client::new(url)).await?,
            None => lifecycle::list()
                .await?
                .into_iter()
                .map(|c| c.name)
                .collect(),
        };
        if names.contains(&groups[0]) {
            target = Some(groups.remove(0));
        }
    }
    Ok((target, groups))
}

/// The one partition the flags and groups ask for; none or several is a usage error.
fn partition_kind(groups: Vec<String>, flags: KindFlags) -> Result<PartitionKind, Failure> {
    let mut kinds = Vec::new();
    if flags.halves {
        kinds.push(PartitionKind::Halves);
    }
    if flags.random_halves {
        let seed = flags.seed.unwrap_or_else(rand::random);
        eprintln!("random halves with --seed {seed}");
        kinds.push(PartitionKind::RandomHalves { seed });
    }
    if let Some(node) = flags.isolate {
        kinds.push(PartitionKind::Isolate(node));
    }
    if flags.bridge {
        kinds.push(PartitionKind::Bridge);
    }
    if flags.majorities_ring {
        kinds.push(PartitionKind::MajoritiesRing);
    }
    if !groups.is_empty() {
        kinds.push(PartitionKind::Groups(
            groups
                .iter()
                .map(|g| g.split(',').map(str::to_string).collect())
                .collect(),
        ));
    }
    match kinds.len() {
        1 => Ok(kinds.pop().unwrap()),
        0 => Err(Failure::Usage(
            "name groups (`a,b c,d`) or choose a kind (--halves, --isolate NODE, …)".into(),
        )),
        _ => Err(Failure::Usage(
            "give either groups or one partition kind, not several".into(),
        )),
    }
}

async fn heal(
    ctx: &Context,
    cluster: Option<String>,
    sync: bool,
    timeout: u64,
) -> Result<(), Failure> {
    let mut cluster = match ctx.route(cluster).await? {
        Route::Local(cluster) => cluster,
        Route::Remote(client, name) => {
            let body = json!({ "sync": sync });
            if sync {
                let report: HealReport = ask(&client, &name, "heal", body).await?;
                output::print_heal(&report, ctx.json);
            } else {
                let report: PartitionReport = ask(&client, &name, "heal", body).await?;
                output::print_partition(&report, ctx.json);
            }
            return Ok(());
        }
    };
    let timeout = Duration::from_secs(timeout);
    if sync {
        let what = "healing and waiting for every node to reach the most-work tip";
        let report = ctx.awaiting(what, cluster.heal_and_sync(timeout)).await?;
        output::print_heal(&report, ctx.json);
    } else {
        let what = "healing and waiting for the nodes to report the declared graph";
        let report = ctx.awaiting(what, cluster.heal(timeout)).await?;
        output::print_partition(&report, ctx.json);
    }
    Ok(())
}

/// stop, start, restart, kill, pause, unpause.
async fn fault(ctx: &Context, fault: Fault, node: &str) -> Result<(), Failure> {
    match ctx.route(None).await? {
        Route::Local(cluster) => cluster.fault(node, fault, STEP_TIMEOUT).await?,
        Route::Remote(client, name) => {
            let body = json!({ "node": node, "fault": fault });
            ask::<Value>(&client, &name, "faults", body).await?;
        }
    }
    eprintln!("{node}: {} done", fault.name());
    Ok(())
}

/// `regbox run`: up, steps, teardown; the exit code says whether every step passed.
/// `regbox run`: every scenario is validated before any runs; then each runs on its own fresh cluster,
/// one after another, and one JUnit report holds them all.
async fn run_scenarios(
    ctx: &Context,
    files: &[PathBuf],
    junit: Option<PathBuf>,
    keep: bool,
) -> Result<(), Failure> {
    if keep && files.len() > 1 {
        return Err(Failure::Usage("--keep takes one scenario".into()));
    }
    let files: Vec<Option<&Path>> = if files.is_empty() {
        vec![None]
    } else {
        files.iter().map(|f| Some(f.as_path())).collect()
    };
    let mut loaded = Vec::new();
    for file in &files {
        let (scenario, mut spec) = load_scenario(*file)?;
        if let Some(name) = &ctx.cluster {
            spec.rename(name).map_err(Failure::Usage)?;
        }
        loaded.push((scenario, spec));
    }
    let mut reports = Vec::new();
    for (scenario, spec) in loaded {
        let report = run_one(ctx, &scenario, spec, keep).await?;
        let stop = report.interrupted;
        reports.push(report);
        if stop {
            break;
        }
    }
    if let Some(path) = junit {
        std::fs::write(&path, runner::junit(&reports))
            .map_err(|e| Failure::Report(format!("cannot write {}: {e}", path.display())))?;
    }
    if reports.iter().any(|r| r.interrupted) {
        return Err(Error::Interrupted.into());
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.scenario.as_str())
        .collect();
    if !failed.is_empty() {
        return Err(Failure::Scenario(failed.join("`, `")));
    }
    Ok(())
}

async fn run_one(
    ctx: &Context,
    scenario: &Scenario,
    spec: ClusterSpec,
    keep: bool,
) -> Result<RunReport, Failure> {
    if lifecycle::list().await?.iter().any(|c| c.name == spec.name) {
        return Err(Failure::Usage(format!(
            "cluster `{0}` already exists; `regbox down {0}` or run with `-c OTHER-NAME`",
            spec.name
        )));
    }
    let opts = RunOptions {
        up: ctx.run_up_options(keep),
        keep,
    };
    let json = ctx.json;
    let report = runner::run(scenario, spec, &opts, interrupted(), |step| {
        output::print_step(step, json)
    })
    .await;
    if !json {
        output::print_run_summary(&report);
    }
    Ok(report)
}

/// Where `soak` writes: the event log and the report (defaults in the current directory), JUnit.
struct SoakFiles {
    events: Option<PathBuf>,
    report: Option<PathBuf>,
    junit: Option<PathBuf>,
}

/// `regbox soak`: everything is checked before the cluster exists (the manifest, the cluster's name,
/// the event log opened); events are written as they happen, the report and JUnit at the end.
async fn soak(
    ctx: &Context,
    manifest: &Path,
    opts: SoakOptions,
    files: SoakFiles,
) -> Result<(), Failure> {
    let mut spec = load_manifest(manifest)?;
    if let Some(name) = &ctx.cluster {
        spec.rename(name).map_err(Failure::Usage)?;
    }
    opts.schedule_spec()
        .check()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    if opts.duration.is_zero() {
        return Err(Failure::Usage("--duration must be above 0".into()));
    }
    if lifecycle::list().await?.iter().any(|c| c.name == spec.name) {
        return Err(Failure::Usage(format!(
            "cluster `{0}` already exists; `regbox down {0}` or run with `-c OTHER-NAME`",
            spec.name
        )));
    }
    let default = |ext: &str| PathBuf::from(format!("soak-{}-{}.{ext}", spec.name, opts.seed));
    let events_path = files.events.unwrap_or_else(|| default("jsonl"));
    let report_path = files.report.unwrap_or_else(|| default("html"));
    let log = std::fs::File::create(&events_path)
        .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", events_path.display())))?;
    let log = std::sync::Mutex::new(std::io::BufWriter::new(log));
    let tty = ctx.tty;
    // Each line is flushed as it is written, so a run cut short still leaves its log.
    let on_event = |event: &Event| {
        use std::io::Write;
        let mut log = log.lock().unwrap();
        let _ = writeln!(log, "{}", event.to_line()).and_then(|()| log.flush());
        if tty {
            output::print_soak_event(event);
        }
    };
    let outcome = match soak::soak(spec, &opts, interrupted(), &on_event).await {
        Ok(outcome) => outcome,
        Err(e) => {
            // Nothing ran: no log is left behind.
            let _ = std::fs::remove_file(&events_path);
            return Err(e.into());
        }
    };
    let write = |path: &Path, text: String| {
        std::fs::write(path, text)
            .map_err(|e| Failure::Report(format!("cannot write {}: {e}", path.display())))
    };
    if !outcome.events.is_empty() {
        write(&report_path, crate::cli::report::html(&outcome.events))?;
        if let Some(path) = &files.junit {
            write(path, soak::junit(&outcome.events))?;
        }
    }
    let paths = [Some(&events_path), Some(&report_path), files.junit.as_ref()];
    output::print_soak_summary(&outcome, &paths, ctx.json);
    if outcome.interrupted {
        return Err(Error::Interrupted.into());
    }
    if let Some(f) = &outcome.failure {
        return Err(Failure::Soak(f.message.clone()));
    }
    if let Some(why) = &outcome.teardown {
        return Err(Failure::Report(format!("tear down: {why}")));
    }
    Ok(())
}

async fn image_build(ctx: &Context, source: &image::Source) -> Result<(), Failure> {
    // Ctrl-C drops the build: its script is killed and its temporary directory removed. The handler
    // is in place before the build makes anything, so no early Ctrl-C takes the default way out.
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| Failure::Report(format!("cannot watch for Ctrl-C: {e}")))?;
    let progress = ctx.progress();
    let name = tokio::select! {
        built = image::build(source, &progress) => built?,
        _ = sigint.recv() => return Err(Error::Interrupted.into()),
    };
    println!("{name}");
    Ok(())
}
