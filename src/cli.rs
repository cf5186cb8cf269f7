//! The command line: argument types (clap derive) and one function per command, printing tables to a
//! terminal and JSON with `--json`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::cluster::{self, Cluster, NodeStatus, UpOptions};
use crate::docker::Docker;
use crate::image;
use crate::manifest::{self, ClusterSpec, ManifestError};
use crate::progress::Progress;

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
    Down { cluster: Option<String> },
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
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    #[error(transparent)]
    Image(#[from] image::ImageError),
    #[error("{0}")]
    Other(String),
}

impl Failure {
    /// 2 for bad input, 130 for an interruption, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Manifest(_) => 2,
            Failure::Cluster(e) if e.is_bad_input() => 2,
            Failure::Cluster(e) if e.is_interrupted() => 130,
            _ => 1,
        }
    }
}

/// Reads and validates a manifest file, refusing huge files before reading them.
pub fn load_manifest(path: &std::path::Path) -> Result<ClusterSpec, Failure> {
    let origin = path.display().to_string();
    let located = |message: String| ManifestError {
        origin: origin.clone(),
        line: 1,
        column: 1,
        message,
    };
    let meta =
        std::fs::metadata(path).map_err(|e| located(format!("cannot read the file: {e}")))?;
    if meta.len() > manifest::MAX_MANIFEST_BYTES as u64 {
        return Err(located(format!(
            "file is {} bytes; manifests may be at most {} bytes",
            meta.len(),
            manifest::MAX_MANIFEST_BYTES
        ))
        .into());
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| located(format!("cannot read the file: {e}")))?;
    Ok(manifest::parse(&text, &origin)?)
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
        Command::Down { cluster } => {
            let report =
                cluster::down_named(wanted(cluster).as_deref(), &Progress::new(tty)).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap());
            } else {
                println!(
                    "removed cluster `{}`: {} containers, {} volumes, {} networks",
                    report.cluster, report.containers, report.volumes, report.networks
                );
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
                .map_err(|e| cluster.node(&node).unwrap().rpc_error(e))?;
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
                .map_err(|e| target.rpc_error(e))?;
            match result {
                Value::String(s) if !cli.json => println!("{s}"),
                Value::Null if !cli.json => {}
                other => println!("{}", serde_json::to_string_pretty(&other).unwrap()),
            }
        }
        Command::Logs { node, follow, tail } => {
            let cluster = Cluster::open(cli.cluster.as_deref()).await?;
            let container = cluster.node(&node)?.layout.container.clone();
            let docker = Docker::connect().await.map_err(cluster::Error::from)?;
            let mut lines = std::pin::pin!(docker.logs(&container, tail, follow));
            while let Some(chunk) = lines.next().await {
                print!("{}", chunk.map_err(cluster::Error::from)?);
            }
        }
        Command::Image {
            command: ImageCommand::Build,
        } => {
            let docker = Docker::connect().await.map_err(cluster::Error::from)?;
            let name = image::build(&docker, &Progress::new(tty)).await?;
            println!("{name}");
        }
    }
    Ok(())
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
                    .map_or("-".into(), |h| crate::wait::short(h).to_string()),
                n.error.clone().unwrap_or_else(|| n.peers.join(",")),
            ]
        })
        .collect();
    print_table(
        &[
            "NODE", "IMAGE", "STATE", "DATA-IP", "HEIGHT", "BEST", "PEERS",
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
