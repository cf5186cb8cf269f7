//! The command line: argument types (clap derive) and one function per command, printing tables to a
//! terminal and JSON with `--json`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::core::fault::Fault;
use crate::core::manifest::{self, ClusterSpec};
use crate::core::partition::{CutMode, PartitionKind};
use crate::core::scenario::{self, ClusterSource, Scenario};
use crate::core::yaml::SourceError;
use crate::engine::cluster::{self, Cluster, NodeStatus, UpOptions};
use crate::engine::image;
use crate::engine::progress::Progress;
use crate::engine::runner::{Outcome, RunOptions};

/// Regtest in a box: many bitcoind nodes in Docker, wired into any topology.
#[derive(Debug, Parser)]
#[command(name = "regbox", version, about)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Machine-readable JSON on stdout instead of tables (read commands), and no progress bars.
    #[arg(long, global = true)]
    pub json: bool,
    /// The cluster to act on; may be omitted when only one exists.
    #[arg(short, long, global = true, value_name = "CLUSTER")]
    pub cluster: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring a cluster up (or to its declared state), wire and verify its topology, print its status.
    Up {
        /// Cluster manifest (YAML); without one, a ring of 4 nodes named `regbox`.
        manifest: Option<PathBuf>,
        /// Limit for each wait (readiness, wiring, verification), in seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Remove every container, volume and network of a cluster.
    Down {
        cluster: Option<String>,
        /// Remove every regbox cluster on this engine.
        #[arg(long, conflicts_with = "cluster")]
        all: bool,
    },
    /// List clusters.
    Ls,
    /// Per node: image, state, data address, height, best block, peers.
    Status { cluster: Option<String> },
    /// Connect node A to node B (A dials B) and wait for the handshake.
    Connect { a: String, b: String },
    /// Close the sessions between A and B and wait until neither lists the other.
    Disconnect { a: String, b: String },
    /// Mine N blocks on NODE (no wallet needed).
    Mine { node: String, blocks: u64 },
    /// Wait until every node has the same best block and the same mempool.
    Sync {
        cluster: Option<String>,
        /// Seconds to wait.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Call an RPC method on NODE; arguments are JSON when they parse as JSON, strings otherwise.
    Rpc {
        node: String,
        method: String,
        args: Vec<String>,
    },
    /// Print a node's log (bitcoind's console output).
    Logs {
        node: String,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<usize>,
    },
    /// Split the data network into partitions (replacing any active one) and verify the peer graph.
    ///
    /// Groups are comma-separated node names or indices (`n0,n1 n2,n3`); nodes not named form one more
    /// group. A first argument that names an existing cluster selects it.
    Partition {
        groups: Vec<String>,
        /// Two halves by index.
        #[arg(long)]
        halves: bool,
        /// Two halves after a seeded shuffle (the seed is printed so a run can be repeated).
        #[arg(long)]
        random_halves: bool,
        /// Seed for --random-halves.
        #[arg(long, requires = "random_halves")]
        seed: Option<u64>,
        /// One node alone, everybody else together.
        #[arg(long, value_name = "NODE")]
        isolate: Option<String>,
        /// Two halves and one node in both.
        #[arg(long)]
        bridge: bool,
        /// Every node sees a majority, no two nodes the same one.
        #[arg(long)]
        majorities_ring: bool,
        /// Leave cross-partition sessions frozen (as a real network failure would) instead of closing them.
        #[arg(long)]
        silent: bool,
        /// Seconds to wait for the re-wiring.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Put every node back on the base segment with its original address and re-wire the declared edges.
    Heal {
        cluster: Option<String>,
        /// Also wait until every node is on the most-work tip, and report each node's reorg depth.
        #[arg(long)]
        sync: bool,
        /// Seconds to wait.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Stop a node (SIGTERM, then SIGKILL after 10 s).
    Stop { node: String },
    /// Start a stopped node, wait until it is ready, re-wire its edges.
    Start { node: String },
    /// Stop and start a node.
    Restart { node: String },
    /// Kill a node (SIGKILL).
    Kill { node: String },
    /// Freeze a node's processes.
    Pause { node: String },
    /// Thaw a paused node, wait until it is ready, re-wire its edges.
    Unpause { node: String },
    /// Run a scenario: bring its cluster up, run the steps, report pass/fail per step, tear down.
    ///
    /// Without a file, runs the built-in split-and-heal scenario. `-c NAME` renames the scenario's
    /// cluster (so parallel CI jobs don't collide).
    Run {
        scenario: Option<PathBuf>,
        /// Write JUnit XML to FILE.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Leave the cluster running afterwards (also after a failure).
        #[arg(long)]
        keep: bool,
    },
    /// Build the node image.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build regbox/bitcoind:<version> offline from Debian's bitcoin-knots package.
    Build,
}

/// How a command failed, which decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad input (manifest, arguments, unknown cluster or node): exit code 2.
    #[error(transparent)]
    Manifest(#[from] SourceError),
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    #[error(transparent)]
    Image(#[from] image::ImageError),
    /// A scenario step failed (each failure was printed with what was expected and seen).
    #[error("scenario `{0}` failed")]
    Scenario(String),
    /// Arguments that parse but make no sense together: exit code 2.
    #[error("{0}")]
    Usage(String),
}

impl Failure {
    /// 2 for bad input, 130 for an interruption, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Manifest(_) | Failure::Usage(_) => 2,
            Failure::Cluster(e) if e.is_bad_input() => 2,
            Failure::Cluster(e) if e.is_interrupted() => 130,
            _ => 1,
        }
    }
}

/// Reads a user-written file, refusing huge ones before reading them; errors point at the file.
fn read_source(path: &std::path::Path) -> Result<(String, String), Failure> {
    let origin = path.display().to_string();
    let located = |message: String| SourceError {
        origin: origin.clone(),
        line: 1,
        column: 1,
        message,
    };
    let meta =
        std::fs::metadata(path).map_err(|e| located(format!("cannot read the file: {e}")))?;
    if meta.len() > crate::core::yaml::MAX_SOURCE_BYTES as u64 {
        let limit = crate::core::yaml::MAX_SOURCE_BYTES;
        return Err(located(format!(
            "file is {} bytes; at most {limit} bytes are read",
            meta.len()
        ))
        .into());
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| located(format!("cannot read the file: {e}")))?;
    Ok((text, origin))
}

/// Reads and validates a manifest file.
pub fn load_manifest(path: &std::path::Path) -> Result<ClusterSpec, Failure> {
    let (text, origin) = read_source(path)?;
    Ok(manifest::parse(&text, &origin)?)
}

/// Reads, parses and validates a scenario (or the built-in one) and the cluster manifest it names.
pub fn load_scenario(path: Option<&std::path::Path>) -> Result<(Scenario, ClusterSpec), Failure> {
    let (text, origin) = match path {
        None => (
            scenario::DEFAULT_SCENARIO.to_string(),
            "split-and-heal.scenario.yaml (built in)".to_string(),
        ),
        Some(p) => read_source(p)?,
    };
    let scenario = scenario::parse(&text, &origin)?;
    let spec = match &scenario.cluster {
        ClusterSource::Inline(spec) => spec.clone(),
        ClusterSource::File {
            path: file,
            line,
            column,
        } => {
            let base = path
                .and_then(|p| p.parent())
                .unwrap_or(std::path::Path::new("."));
            let full = base.join(file);
            if !full.exists() {
                return Err(SourceError {
                    origin,
                    line: *line,
                    column: *column,
                    message: format!("cluster file `{}` does not exist", full.display()),
                }
                .into());
            }
            load_manifest(&full)?
        }
    };
    scenario::validate(&scenario, &spec, &origin)?;
    Ok((scenario, spec))
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    let tty = std::io::stderr().is_terminal() && !cli.json;
    let wanted = |positional: Option<String>| positional.or(cli.cluster.clone());
    match cli.command {
        Command::Up { manifest, timeout } => {
            let spec = match &manifest {
                Some(path) => load_manifest(path)?,
                None => ClusterSpec::default_ring4(),
            };
            let opts = UpOptions {
                progress: Progress::new(tty),
                timeout: Duration::from_secs(timeout),
                teardown_on_drop: false,
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
            print_status(&cluster.status().await?, cli.json);
        }
        Command::Down { cluster, all } => {
            let names: Vec<Option<String>> = if all {
                cluster::list()
                    .await?
                    .into_iter()
                    .map(|c| Some(c.name))
                    .collect()
            } else {
                vec![wanted(cluster)]
            };
            let mut reports = Vec::new();
            for name in names {
                let report = cluster::down_named(name.as_deref(), &Progress::new(tty)).await?;
                if !cli.json {
                    println!(
                        "removed cluster `{}`: {} containers, {} volumes, {} networks",
                        report.cluster, report.containers, report.volumes, report.networks
                    );
                }
                reports.push(report);
            }
            if cli.json && all {
                println!("{}", serde_json::to_string_pretty(&reports).unwrap());
            } else if cli.json {
                println!("{}", serde_json::to_string_pretty(&reports[0]).unwrap());
            }
        }
        Command::Ls => {
            let list = cluster::list().await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&list).unwrap());
            } else {
                let rows = list
                    .iter()
                    .map(|c| {
                        vec![
                            c.name.clone(),
                            format!("{}/{}", c.running, c.nodes),
                            c.networks.join(","),
                        ]
                    })
                    .collect();
                print_table(&["CLUSTER", "RUNNING", "NETWORKS"], rows);
            }
        }
        Command::Status { cluster } => {
            let cluster = Cluster::open(wanted(cluster).as_deref()).await?;
            print_status(&cluster.status().await?, cli.json);
        }
        Command::Connect { a, b } => {
            let cluster = Cluster::open(cli.cluster.as_deref()).await?;
            cluster.connect(&a, &b, Duration::from_secs(60)).await?;
            eprintln!("{a} -> {b} connected");
        }
        Command::Disconnect { a, b } => {
            let cluster = Cluster::open(cli.cluster.as_deref()).await?;
            cluster.disconnect(&a, &b, Duration::from_secs(60)).await?;
            eprintln!("{a} and {b} disconnected");
        }
        Command::Mine { node, blocks } => {
            let cluster = Cluster::open(cli.cluster.as_deref()).await?;
            let hashes = cluster.mine(&node, blocks).await?;
            let height = cluster
                .node(&node)?
                .rpc
                .get_block_count()
                .await
                .map_err(cluster::Error::from)?;
            if cli.json {
                println!(
                    "{}",
                    json!({"node": node, "height": height, "blocks": hashes})
                );
            } else {
                println!(
                    "mined {} blocks on {node}; height {height}, tip {}",
                    hashes.len(),
                    hashes.last().map_or("-", |h| h.as_str())
                );
            }
        }
        Command::Sync { cluster, timeout } => {
            let cluster = Cluster::open(wanted(cluster).as_deref()).await?;
            let timeout = Duration::from_secs(timeout);
            let (tip, txs) =
                tokio::try_join!(cluster.sync_blocks(timeout), cluster.sync_mempools(timeout))?;
            if cli.json {
                println!("{}", json!({"best_hash": tip, "mempool_size": txs}));
            } else {
                println!(
                    "all {} nodes on {tip} with {txs} mempool transactions",
                    cluster.nodes().len()
                );
            }
        }
        Command::Rpc { node, method, args } => {
            let cluster = Cluster::open(cli.cluster.as_deref()).await?;
            let target = cluster.node(&node)?;
            let params: Vec<Value> = args
                .iter()
                .map(|a| serde_json::from_str(a).unwrap_or_else(|_| Value::String(a.clone())))
                .collect();
            let result = target
                .rpc
                .call_raw(&method, Value::Array(params), Duration::from_secs(300))
                .await
                .map_err(cluster::Error::from)?;
            match result {
                Value::String(s) if !cli.json => println!("{s}"),
                Value::Null if !cli.json => {}
                other => println!("{}", serde_json::to_string_pretty(&other).unwrap()),
            }
        }
        Command::Logs { node, follow, tail } => {
            let cluster = Cluster::open(cli.cluster.as_deref()).await?;
            let mut lines = std::pin::pin!(cluster.logs(&node, tail, follow)?);
            while let Some(chunk) = lines.next().await {
                print!("{}", chunk?);
            }
        }
        Command::Partition {
            mut groups,
            halves,
            random_halves,
            seed,
            isolate,
            bridge,
            majorities_ring,
            silent,
            timeout,
        } => {
            let mut target = cli.cluster.clone();
            if target.is_none()
                && !groups.is_empty()
                && cluster::list().await?.iter().any(|c| c.name == groups[0])
            {
                target = Some(groups.remove(0));
            }
            let mut kinds = Vec::new();
            if halves {
                kinds.push(PartitionKind::Halves);
            }
            if random_halves {
                let seed = seed.unwrap_or_else(rand::random);
                eprintln!("random halves with --seed {seed}");
                kinds.push(PartitionKind::RandomHalves { seed });
            }
            if let Some(node) = isolate {
                kinds.push(PartitionKind::Isolate(node));
            }
            if bridge {
                kinds.push(PartitionKind::Bridge);
            }
            if majorities_ring {
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
            let kind =
                match kinds.len() {
                    1 => kinds.pop().unwrap(),
                    0 => return Err(Failure::Usage(
                        "name groups (`a,b c,d`) or choose a kind (--halves, --isolate NODE, …)"
                            .into(),
                    )),
                    _ => {
                        return Err(Failure::Usage(
                            "give either groups or one partition kind, not several".into(),
                        ))
                    }
                };
            let mode = if silent {
                CutMode::Silent
            } else {
                CutMode::Drop
            };
            let mut cluster = Cluster::open(target.as_deref()).await?;
            let report = cluster
                .partition(&kind, mode, Duration::from_secs(timeout))
                .await?;
            print_partition(&report, cli.json);
        }
        Command::Heal {
            cluster,
            sync,
            timeout,
        } => {
            let mut cluster = Cluster::open(wanted(cluster).as_deref()).await?;
            let timeout = Duration::from_secs(timeout);
            if sync {
                let report = cluster.heal_and_sync(timeout).await?;
                if cli.json {
                    println!("{}", serde_json::to_string_pretty(&report).unwrap());
                } else {
                    println!(
                        "healed; all nodes on {} at height {}",
                        report.tip, report.height
                    );
                    let rows = report
                        .nodes
                        .iter()
                        .map(|n| {
                            vec![
                                n.node.clone(),
                                n.old_height.to_string(),
                                crate::engine::wait::short(&n.old_tip).to_string(),
                                n.reorg_depth.to_string(),
                            ]
                        })
                        .collect();
                    print_table(&["NODE", "OLD-HEIGHT", "OLD-TIP", "REORG-DEPTH"], rows);
                }
            } else {
                let report = cluster.heal(timeout).await?;
                print_partition(&report, cli.json);
            }
        }
        Command::Stop { node } => fault_command(cli.cluster.as_deref(), Fault::Stop, &node).await?,
        Command::Start { node } => {
            fault_command(cli.cluster.as_deref(), Fault::Start, &node).await?
        }
        Command::Restart { node } => {
            fault_command(cli.cluster.as_deref(), Fault::Restart, &node).await?
        }
        Command::Kill { node } => fault_command(cli.cluster.as_deref(), Fault::Kill, &node).await?,
        Command::Pause { node } => {
            fault_command(cli.cluster.as_deref(), Fault::Pause, &node).await?
        }
        Command::Unpause { node } => {
            fault_command(cli.cluster.as_deref(), Fault::Unpause, &node).await?
        }
        Command::Run {
            scenario,
            junit,
            keep,
        } => {
            let (scenario, mut spec) = load_scenario(scenario.as_deref())?;
            if let Some(name) = &cli.cluster {
                spec.name = name.clone();
            }
            if cluster::list().await?.iter().any(|c| c.name == spec.name) {
                return Err(Failure::Usage(format!(
                    "cluster `{0}` already exists; `regbox down {0}` or run with `-c OTHER-NAME`",
                    spec.name
                )));
            }
            let opts = RunOptions {
                up: UpOptions {
                    progress: Progress::new(tty),
                    timeout: Duration::from_secs(120),
                    teardown_on_drop: !keep,
                },
                keep,
            };
            let json = cli.json;
            let report =
                crate::engine::runner::run(&scenario, spec, &opts, interrupted(), |step| {
                    // A closed stdout (`| head`) must not abort the run before its teardown.
                    let mut out = std::io::stdout().lock();
                    if json {
                        let _ = writeln!(out, "{}", serde_json::to_string(step).unwrap());
                        return;
                    }
                    let (word, detail) = match &step.outcome {
                        Outcome::Passed => ("PASS", None),
                        Outcome::Failed(m) => ("FAIL", Some(m)),
                        Outcome::Skipped => ("SKIP", None),
                    };
                    let _ = writeln!(out, "{word}  {:<48} {:>7.2}s", step.label, step.seconds);
                    for line in detail.into_iter().flat_map(|m| m.lines()) {
                        let _ = writeln!(out, "      {line}");
                    }
                })
                .await;
            if let Some(path) = junit {
                std::fs::write(&path, report.junit())
                    .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", path.display())))?;
            }
            let failed = report
                .steps
                .iter()
                .filter(|s| matches!(s.outcome, Outcome::Failed(_)))
                .count();
            if !json {
                println!(
                    "scenario `{}`: {} ({} steps, {failed} failed) in {:.1}s",
                    report.scenario,
                    if report.passed() { "PASSED" } else { "FAILED" },
                    report.steps.len(),
                    report.seconds
                );
            }
            if report.interrupted {
                return Err(cluster::Error::Interrupted.into());
            }
            if !report.passed() {
                return Err(Failure::Scenario(report.scenario.clone()));
            }
        }
        Command::Image {
            command: ImageCommand::Build,
        } => {
            let name = image::build(&Progress::new(tty)).await?;
            println!("{name}");
        }
    }
    Ok(())
}

async fn fault_command(cluster: Option<&str>, fault: Fault, node: &str) -> Result<(), Failure> {
    let cluster = Cluster::open(cluster).await?;
    cluster.fault(node, fault, Duration::from_secs(60)).await?;
    eprintln!("{node}: {} done", fault.name());
    Ok(())
}

fn print_partition(report: &crate::engine::segments::PartitionReport, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(report).unwrap());
        return;
    }
    let rows = report
        .segments
        .iter()
        .map(|s| vec![s.network.clone(), s.subnet.clone(), s.members.join(",")])
        .collect();
    print_table(&["SEGMENT", "SUBNET", "NODES"], rows);
    println!(
        "peer graph ({} cut): {}",
        serde_json::to_value(report.mode)
            .unwrap()
            .as_str()
            .unwrap_or("?"),
        if report.graph.is_empty() {
            "no edges".to_string()
        } else {
            report.graph.join(" ")
        }
    );
}

/// Completes on the first Ctrl-C; a second one exits at once.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        return std::future::pending().await;
    }
    eprintln!("interrupted: removing what this run created (Ctrl-C again to exit at once)");
    tokio::spawn(async {
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(130);
    });
}

fn print_status(nodes: &[NodeStatus], json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(nodes).unwrap());
        return;
    }
    let rows = nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.image.clone(),
                serde_json::to_value(n.state)
                    .unwrap()
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
                n.data_ip.clone(),
                n.height.map_or("-".into(), |h| h.to_string()),
                n.best_hash
                    .as_deref()
                    .map_or("-".into(), |h| crate::engine::wait::short(h).to_string()),
                n.segments
                    .iter()
                    .map(|s| s.rsplit('-').next().unwrap_or(s))
                    .collect::<Vec<_>>()
                    .join(","),
                n.error.clone().unwrap_or_else(|| n.peers.join(",")),
            ]
        })
        .collect();
    print_table(
        &[
            "NODE", "IMAGE", "STATE", "DATA-IP", "HEIGHT", "BEST", "SEGMENTS", "PEERS",
        ],
        rows,
    );
}

fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn help_text() {
        let mut cmd = Cli::command();
        insta::assert_snapshot!(cmd.render_long_help().to_string());
    }

    #[test]
    fn arguments_are_parsed_without_io() {
        let cli = Cli::try_parse_from([
            "regbox",
            "-c",
            "lab",
            "--json",
            "rpc",
            "n1",
            "getblockhash",
            "0",
        ])
        .unwrap();
        assert_eq!(cli.cluster.as_deref(), Some("lab"));
        assert!(cli.json);
        assert!(matches!(cli.command, Command::Rpc { ref args, .. } if args == &["0"]));
        let err = Cli::try_parse_from(["regbox", "mine", "n0", "many"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
