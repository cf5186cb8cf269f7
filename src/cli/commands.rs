//! One function per command (the six node faults share one), and [`run`], which only picks it. Each
//! reads its input, calls the engine, and hands the result to `output`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::cli::args::{
    AgentCommand, Cli, Command, ExportCommand, GraphFormat, ImageCommand, OutputFormat,
    SwarmCommand, TopologyCommand,
};
use crate::cli::context::{interrupted, Context};
use crate::cli::exit::{Failure, INTERRUPTED};
use crate::cli::load::{check_file, load_manifest, load_scenario};
use crate::cli::output;
use crate::cli::verbs::run_verb;
use crate::core::cluster::manifest::ClusterSpec;
use crate::core::scenario::Scenario;
use crate::core::soak::Event;
use crate::engine::error::Error;
use crate::engine::image;
use crate::engine::lifecycle::{self, UpOptions};
use crate::engine::runner::{self, RunOptions, RunReport};
use crate::engine::soak::{self, SoakOptions};
use crate::engine::swarm;

/// How long each wait of a scenario's `up` may take.
const SCENARIO_UP_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one parsed command: a command on a cluster is a verb (`verbs`); the rest are here.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    let json = cli.json || cli.output == Some(OutputFormat::Json);
    let ctx = Context {
        json,
        wide: cli.output == Some(OutputFormat::Wide),
        tty: std::io::stderr().is_terminal() && !json,
        cluster: cli.cluster,
        operator: cli.operator,
        token_file: cli.token_file,
        operator_ca: cli.operator_ca,
        wait_lock: Duration::from_secs(cli.wait_lock),
    };
    let command = match run_verb(&ctx, cli.command).await {
        Ok(done) => return done,
        Err(command) => command,
    };
    match command {
        Command::Ls => ls(&ctx).await,
        command @ Command::Operator { .. } => operator_command(&ctx, command).await,
        Command::Dashboard {
            name,
            port,
            interval,
        } => dashboard(&ctx, name, port, interval).await,
        Command::Agent { command } => agent(command),
        Command::Relay {
            listen,
            allow,
            port,
            token,
        } => {
            let allow = crate::relay::Allow {
                subnets: allow,
                ports: port,
            };
            crate::relay::serve(listen, crate::relay::Policy::new(allow, token))
                .await
                .map_err(|e| Failure::Report(format!("relay: {e}")))
        }
        Command::Run {
            scenarios,
            junit,
            keep,
        } => run_scenarios(&ctx, &scenarios, junit, keep).await,
        command @ Command::Soak { .. } => soak_command(&ctx, command).await,
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
        Command::Image { command } => image(&ctx, command).await,
        other => unreachable!("a verb's command is carried out by `run_verb`: {other:?}"),
    }
}

/// `regbox operator …`: how it serves, from its flags, then the operator.
async fn operator_command(ctx: &Context, command: Command) -> Result<(), Failure> {
    let Command::Operator {
        manifests,
        listen,
        interval,
        timeout,
        metrics_auth,
        max_connections,
        tls_cert,
        tls_key,
        request_deadline,
    } = command
    else {
        unreachable!("called with `operator`")
    };
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => {
            Some(crate::operator::tls::server_config(&cert, &key).map_err(Failure::Usage)?)
        }
        _ => None, // clap takes both or neither
    };
    let serving = crate::operator::http::Serving {
        token: ctx.token()?,
        metrics_auth,
        max_connections: max_connections as usize,
        tls,
        request_deadline: request_deadline.map(Duration::from_secs),
        ..crate::operator::http::Serving::with_timeout(Duration::from_secs(timeout))
    };
    operator(ctx, manifests, listen, interval, serving).await
}

/// `regbox agent …`, run inside the regbox image: the fault agent's server and its client, and the
/// bounded data directories' loop devices.
fn agent(command: AgentCommand) -> Result<(), Failure> {
    fn report<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> Failure {
        move |e| Failure::Report(format!("{what}: {e}"))
    }
    match command {
        AgentCommand::Serve => crate::agent::serve().map_err(report("agent")),
        AgentCommand::Call { request } => {
            print!("{}", crate::agent::call(&request).map_err(report("agent"))?);
            Ok(())
        }
        AgentCommand::DiskPrepare { file, size, owner } => {
            let device =
                crate::agent::disk::prepare(&file, size, &owner).map_err(report("disk"))?;
            println!("{device}");
            Ok(())
        }
        AgentCommand::DiskRelease { device } => {
            crate::agent::disk::release(&device).map_err(report("disk"))
        }
    }
}

/// `regbox soak`: its options, then the run.
async fn soak_command(ctx: &Context, command: Command) -> Result<(), Failure> {
    let Command::Soak {
        manifest,
        duration,
        seed,
        faults,
        rate,
        tx_rate,
        gap,
        hold,
        converge,
        steps,
        events,
        report,
        junit,
        keep,
    } = command
    else {
        unreachable!("soak is asked for soak only")
    };
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
        steps: steps.map(|n| n as usize),
        up: run_up_options(ctx, keep),
        keep,
    };
    let files = SoakFiles {
        events,
        report,
        junit,
    };
    soak(ctx, &manifest, opts, files).await
}

/// `regbox image build|ls`.
async fn image(ctx: &Context, command: ImageCommand) -> Result<(), Failure> {
    match command {
        ImageCommand::Build {
            from,
            tag,
            itself,
            core,
            keyring,
            min_signatures,
        } => {
            if itself {
                let progress = ctx.progress();
                println!("{}", image::build_self(&progress).await?);
                return Ok(());
            }
            let source = match (from, core) {
                (_, Some(version)) => {
                    image::Source::Core(core_release(version, keyring, min_signatures)?)
                }
                (None, None) => image::Source::Debian,
                (Some(path), None) if path.exists() => image::Source::Local { path, tag },
                (Some(path), None) => {
                    return Err(Failure::Usage(format!(
                        "{}: no such file or directory",
                        path.display()
                    )))
                }
            };
            image_build(ctx, &source).await
        }
        ImageCommand::Ls => {
            output::print_images(&image::list().await?, ctx.json);
            Ok(())
        }
    }
}

/// `image build --core`: the release from the environment, with the keyring and threshold given.
fn core_release(
    version: crate::core::release::CoreVersion,
    keyring: Option<std::path::PathBuf>,
    min_signatures: u16,
) -> Result<crate::engine::core_release::CoreRelease, Failure> {
    let mut release = crate::engine::core_release::CoreRelease::from_env(version);
    if let Some(path) = keyring {
        release.keyring = Some(path);
    }
    if let Some(path) = release.keyring.as_ref().filter(|p| !p.is_file()) {
        return Err(Failure::Usage(format!(
            "keyring {}: no such file",
            path.display()
        )));
    }
    release.min_signatures = min_signatures.into();
    Ok(release)
}

/// How `run` and `soak` bring their cluster up: torn down when dropped unless `--keep`.
fn run_up_options(ctx: &Context, keep: bool) -> UpOptions {
    UpOptions {
        progress: ctx.progress(),
        timeout: SCENARIO_UP_TIMEOUT,
        teardown_on_drop: !keep,
        attach: None,
        lock_wait: ctx.wait_lock,
    }
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
        "default_image": crate::core::cluster::manifest::DEFAULT_IMAGE,
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
            crate::core::cluster::manifest::DEFAULT_IMAGE
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
        let picture = crate::core::topology::svg::render(&names, &spec.edges, None);
        std::fs::write(path, picture)
            .map_err(|e| Failure::Report(format!("cannot write {}: {e}", path.display())))?;
    }
    match export {
        Some(format) => {
            let text = crate::core::topology::graphio::export(&names, &spec.edges, format.format());
            written(std::io::Write::write_all(
                &mut std::io::stdout(),
                text.as_bytes(),
            ))
        }
        None => {
            let stats = crate::core::topology::stats::stats(names.len(), &spec.edges);
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

/// `regbox operator`: manifests are checked before anything runs; then the HTTP interface and the
/// watchers run until Ctrl-C or SIGTERM (what `docker stop` sends), on this thread.
async fn operator(
    ctx: &Context,
    manifests: Vec<PathBuf>,
    listen: std::net::SocketAddr,
    interval: u64,
    serving: crate::operator::http::Serving,
) -> Result<(), Failure> {
    crate::operator::auth::require_for(listen, serving.token.as_ref()).map_err(Failure::Usage)?;
    if serving.metrics_auth && serving.token.is_none() {
        return Err(Failure::Usage(
            "--metrics-auth needs a token (--token-file PATH, or REGBOX_TOKEN)".into(),
        ));
    }
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
    let scheme = if serving.tls.is_some() {
        "https"
    } else {
        "http"
    };
    eprintln!(
        "operator listening on {scheme}://{}",
        listener.local_addr().unwrap_or(listen)
    );
    let opts = crate::operator::Options {
        manifests,
        load: Box::new(move |path| load(path).map_err(|f| crate::cli::error_chain(&f))),
        interval: Duration::from_secs(interval),
        timeout: serving.timeout,
    };
    let scope = if opts.manifests.is_empty() {
        crate::operator::Scope::Engine
    } else {
        crate::operator::Scope::Declared(names)
    };
    let op = crate::operator::Operator::new(
        crate::operator::own_container().await,
        ctx.wait_lock,
        scope,
    );
    serve_operator(op, opts, listener, serving).await
}

/// Runs `op`'s watchers and its HTTP interface on `listener` until Ctrl-C or SIGTERM, on this thread.
async fn serve_operator(
    op: crate::operator::Operator,
    opts: crate::operator::Options,
    listener: tokio::net::TcpListener,
    serving: crate::operator::http::Serving,
) -> Result<(), Failure> {
    let op = std::sync::Arc::new(op);
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let http = tokio::task::spawn_local(crate::operator::http::serve(
                op.clone(),
                listener,
                serving,
            ));
            let result = crate::operator::run(opts, op, stopped()).await;
            http.abort();
            result
        })
        .await
        .map_err(Failure::Usage)
}

/// `regbox dashboard [CLUSTER]`: a read-only operator of one existing cluster on 127.0.0.1, its page's
/// URL printed on stdout. It takes no token: it listens on loopback only and changes nothing.
async fn dashboard(
    ctx: &Context,
    name: Option<String>,
    port: u16,
    interval: u64,
) -> Result<(), Failure> {
    let cluster = crate::engine::cluster::Cluster::open(ctx.wanted(name)?.as_deref()).await?;
    let name = cluster.name().to_string();
    drop(cluster);
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure::Usage(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener.local_addr().unwrap_or(listen);
    println!("http://{addr}/");
    eprintln!("dashboard of cluster `{name}` at http://{addr}/ (read-only; Ctrl-C to stop)");
    let timeout = crate::core::verb::DEFAULT_TIMEOUT;
    let opts = crate::operator::Options {
        manifests: Vec::new(),
        load: Box::new(|path| Err(format!("{}: a dashboard reads no manifest", path.display()))),
        interval: Duration::from_secs(interval),
        timeout,
    };
    let scope = crate::operator::Scope::Declared([name].into());
    let mut op = crate::operator::Operator::new(None, ctx.wait_lock, scope);
    op.read_only = true;
    serve_operator(
        op,
        opts,
        listener,
        crate::operator::http::Serving::with_timeout(timeout),
    )
    .await
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

/// Every cluster, or with `-c` only that one (an empty list when it does not exist).
async fn ls(ctx: &Context) -> Result<(), Failure> {
    let mut list = lifecycle::list().await?;
    if let Some(name) = &ctx.cluster {
        list.retain(|c| &c.name == name);
    }
    output::print_clusters(&list, ctx.json);
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

/// `regbox run`: every scenario is validated before any runs; then each runs on a fresh cluster, one
/// after another, and one JUnit report holds them all. A scenario that declares the same cluster as the
/// one before it gets that cluster reset (in place, a fresh chain) rather than a new one.
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
    // A scenario of the same cluster as the one before it runs on that cluster, reset.
    let mut handed: Option<crate::engine::cluster::Cluster> = None;
    for (i, (scenario, spec)) in loaded.iter().enumerate() {
        let reused = match handed.take() {
            Some(c) if i > 0 && loaded[i - 1].1 == *spec => Some(c),
            Some(c) => {
                c.down(&Default::default()).await?;
                None
            }
            None => None,
        };
        let hand_on = loaded.get(i + 1).is_some_and(|(_, next)| next == spec);
        let (report, cluster) = run_one(ctx, scenario, spec.clone(), reused, hand_on, keep).await?;
        handed = cluster;
        let stop = report.interrupted;
        reports.push(report);
        if stop {
            break;
        }
    }
    if let Some(c) = handed {
        c.down(&Default::default()).await?;
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
    reused: Option<crate::engine::cluster::Cluster>,
    hand_on: bool,
    keep: bool,
) -> Result<(RunReport, Option<crate::engine::cluster::Cluster>), Failure> {
    if reused.is_none() && lifecycle::list().await?.iter().any(|c| c.name == spec.name) {
        return Err(Failure::Usage(format!(
            "cluster `{0}` already exists; `regbox down {0}` or run with `-c OTHER-NAME`",
            spec.name
        )));
    }
    let opts = RunOptions {
        up: run_up_options(ctx, keep),
        keep,
    };
    let json = ctx.json;
    let (report, handed) = runner::run_reusing(
        scenario,
        spec,
        reused,
        hand_on,
        &opts,
        interrupted(),
        |step| output::print_step(step, json),
    )
    .await;
    if !json {
        output::print_run_summary(&report);
    }
    Ok((report, handed))
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
    opts.steps_over(&spec).map_err(Failure::Usage)?;
    if lifecycle::list().await?.iter().any(|c| c.name == spec.name) {
        return Err(Failure::Usage(format!(
            "cluster `{0}` already exists; `regbox down {0}` or run with `-c OTHER-NAME`",
            spec.name
        )));
    }
    let default = |ext: &str| PathBuf::from(format!("soak-{}-{}.{ext}", spec.name, opts.seed));
    let events_path = files.events.unwrap_or_else(|| default("jsonl"));
    let report_path = files.report.unwrap_or_else(|| default("html"));
    let junit = files.junit.clone();
    let (outputs, log) =
        Outputs::open([Some(events_path.clone()), Some(report_path.clone()), junit])?;
    let log = std::sync::Mutex::new((log, None));
    let tty = ctx.tty;
    // Each line is flushed as it is written, so a run cut short still leaves its log; the first one
    // empties what an earlier run left there.
    let on_event = |event: &Event| {
        use std::io::Write;
        let mut guard = log.lock().unwrap();
        let (file, writer) = &mut *guard;
        let writer = writer.get_or_insert_with(|| {
            let _ = file.set_len(0);
            std::io::BufWriter::new(file.try_clone().expect("a file handle clones"))
        });
        let _ = writeln!(writer, "{}", event.to_line()).and_then(|()| writer.flush());
        if tty {
            output::print_soak_event(event);
        }
    };
    let outcome = match soak::soak(spec, &opts, interrupted(), &on_event).await {
        Ok(outcome) => outcome,
        Err(e) => {
            // Nothing ran: no log or empty report is left behind, and no earlier run's is touched.
            outputs.discard();
            return Err(e.into());
        }
    };
    let write = |path: &Path, text: String| {
        std::fs::write(path, text)
            .map_err(|e| Failure::Report(format!("cannot write {}: {e}", path.display())))
    };
    if outcome.events.is_empty() {
        outputs.discard();
    } else {
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

/// The files a soak writes (its event log first), opened before the cluster exists, so one that cannot
/// be written is refused then rather than after an hour of soak. None is truncated here: an earlier
/// run's file stays as it was until this run has something to write.
struct Outputs(Vec<(PathBuf, bool)>);

impl Outputs {
    /// Opens every path given; the outputs (each with whether this run made it) and the event log.
    fn open(paths: [Option<PathBuf>; 3]) -> Result<(Outputs, std::fs::File), Failure> {
        let mut outputs = Outputs(Vec::new());
        let mut files = Vec::new();
        for path in paths.into_iter().flatten() {
            let made = !path.exists();
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| {
                    outputs.discard();
                    Failure::Usage(format!("cannot write {}: {e}", path.display()))
                })?;
            outputs.0.push((path, made));
            files.push(file);
        }
        Ok((outputs, files.swap_remove(0)))
    }

    /// Removes the files this run made (never an earlier run's).
    fn discard(&self) {
        for (path, made) in &self.0 {
            if *made {
                let _ = std::fs::remove_file(path);
            }
        }
    }
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
