//! The CLI as a door to the vocabulary: each command that acts on a cluster is translated into one
//! [`Verb`] (what the user typed → what to do), handed to [`Context::dispatch`] (here or at an
//! operator), and its report printed. Nothing here carries a verb out.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::args::{Command, MeasureCommand, SnapshotCommand, UpArgs};
use crate::cli::context::Context;
use crate::cli::exit::Failure;
use crate::cli::load::load_manifest;
use crate::cli::{output, plot};
use crate::core::chain::propagation::Kind;
use crate::core::chain::wait::WaitFor;
use crate::core::cluster::manifest::ClusterSpec;
use crate::core::faults::clock;
use crate::core::faults::link::{self, Shaping};
use crate::core::faults::node::Fault;
use crate::core::faults::plane::Block;
use crate::core::faults::throttle::Limits;
use crate::core::partition::{CutMode, PartitionKind, Via};
use crate::core::verb::{Report, Verb};
use crate::engine::error::Error;
use crate::engine::progress::Progress;

/// How long `regbox rpc` waits for an answer (a long `generatetoaddress`, say).
const RPC_TIMEOUT: Duration = Duration::from_secs(300);

/// Carries out `command` when it acts on a cluster; any other command comes back to the caller.
pub(crate) async fn run_verb(
    ctx: &Context,
    command: Command,
) -> Result<Result<(), Failure>, Command> {
    let (target, verb) = match command {
        Command::Up { manifest, how } => {
            let plan = if how.dry_run {
                Plan::Only
            } else {
                Plan::Silent
            };
            return Ok(up(ctx, manifest.as_deref(), &how, plan).await);
        }
        Command::Apply { manifest, how } => {
            let plan = if how.dry_run { Plan::Only } else { Plan::Print };
            return Ok(up(ctx, Some(&manifest), &how, plan).await);
        }
        Command::Down { name, all } => return Ok(down(ctx, name, all).await),
        Command::Logs { node, follow, tail } if follow => {
            return Ok(ctx.follow_logs(&node, tail).await);
        }
        Command::Partition { .. } => return Ok(partition(ctx, command).await),
        Command::Measure { command } => return Ok(measure(ctx, command).await),
        Command::Snapshot { command } => return Ok(snapshot(ctx, command).await),
        command => match verb_of(command)? {
            Ok(target_verb) => target_verb,
            Err(e) => return Ok(Err(e)),
        },
    };
    Ok(act(ctx, target, &verb).await.map(drop))
}

/// A command translated into one verb: the cluster it names (None: the one `-c` or the only one
/// picks) with the verb, or why it is refused; any other command comes back (`Err`).
type Translated = Result<Result<(Option<String>, Verb), Failure>, Command>;

/// The verb a command that acts on a cluster in one verb asks for, with the cluster it names; any
/// other command comes back. One family of verbs after the other.
#[allow(clippy::result_large_err)]
fn verb_of(command: Command) -> Translated {
    chain_verb(command)
        .or_else(network_verb)
        .or_else(node_verb)
        .or_else(cluster_verb)
}

/// Reading a cluster and using its chain: status, url, mine, send, rpc, logs.
#[allow(clippy::result_large_err)]
fn chain_verb(command: Command) -> Translated {
    Ok(Ok(match command {
        Command::Status { name } => (name, Verb::Status),
        Command::Url { node } => (None, Verb::Url { node }),
        Command::Mine { node, blocks } => (None, Verb::Mine { node, blocks }),
        Command::Send { from, to, amount } => (
            None,
            Verb::Send {
                from,
                to,
                amount_sat: amount,
            },
        ),
        Command::Rpc { node, method, args } => (
            None,
            Verb::Rpc {
                node,
                method,
                // Arguments are JSON when they parse as JSON, strings otherwise.
                params: args
                    .iter()
                    .map(|a| serde_json::from_str(a).unwrap_or_else(|_| Value::String(a.clone())))
                    .collect(),
                timeout: Some(RPC_TIMEOUT),
            },
        ),
        Command::Logs { node, tail, .. } => (
            None,
            Verb::Logs {
                node,
                tail,
                follow: false,
            },
        ),
        other => return Err(other),
    }))
}

/// The network between the nodes: connect, disconnect, netem, cut, heal.
#[allow(clippy::result_large_err)]
fn network_verb(command: Command) -> Translated {
    Ok(Ok(match command {
        Command::Connect { a, b } => (None, Verb::Connect { a, b }),
        Command::Disconnect { a, b } => (None, Verb::Disconnect { a, b }),
        Command::Netem { .. } => (None, netem(command)),
        Command::Cut { .. } => return Ok(cut(command).map(|v| (None, v))),
        Command::Heal {
            name,
            sync,
            timeout,
        } => (
            name,
            Verb::Heal {
                sync,
                timeout: Some(Duration::from_secs(timeout)),
            },
        ),
        other => return Err(other),
    }))
}

/// Faults of one node or some: stop, start, restart, kill, pause, unpause, disk, clock, throttle.
#[allow(clippy::result_large_err)]
fn node_verb(command: Command) -> Translated {
    Ok(Ok(match command {
        Command::Stop { node } => (None, fault(Fault::Stop, node)),
        Command::Start { node } => (None, fault(Fault::Start, node)),
        Command::Restart { node } => (None, fault(Fault::Restart, node)),
        Command::Kill { node } => (None, fault(Fault::Kill, node)),
        Command::Pause { node } => (None, fault(Fault::Pause, node)),
        Command::Unpause { node } => (None, fault(Fault::Unpause, node)),
        Command::Disk { node, fill, .. } => (None, Verb::Disk { node, fill }),
        Command::Clock {
            nodes,
            offset,
            drift,
            clear,
        } => (
            None,
            Verb::Clock {
                nodes: (!nodes.is_empty()).then_some(nodes),
                offset: if clear { Some(0) } else { offset },
                drift: if clear {
                    Some(clock::Drift::NONE)
                } else {
                    drift
                },
            },
        ),
        Command::Throttle { .. } => return Ok(throttle(command).map(|v| (None, v))),
        other => return Err(other),
    }))
}

/// The whole cluster: reset, and waiting for a condition or for sync.
#[allow(clippy::result_large_err)]
fn cluster_verb(command: Command) -> Translated {
    let secs = Duration::from_secs;
    Ok(Ok(match command {
        Command::Reset { to, timeout } => (
            None,
            Verb::Reset {
                to,
                timeout: Some(secs(timeout)),
            },
        ),
        Command::Wait { condition, timeout } => match WaitFor::from_words(&condition) {
            Ok(until) => (
                None,
                Verb::Wait {
                    until,
                    timeout: Some(secs(timeout)),
                },
            ),
            Err(e) => return Ok(Err(Failure::Usage(e))),
        },
        Command::Sync { name, timeout } => (
            name,
            Verb::Sync {
                timeout: Some(secs(timeout)),
            },
        ),
        other => return Err(other),
    }))
}

fn fault(fault: Fault, node: String) -> Verb {
    Verb::Fault { fault, node }
}

/// Carries `verb` out on the cluster named `target` (else `-c`) and prints its report.
async fn act(ctx: &Context, target: Option<String>, verb: &Verb) -> Result<Report, Failure> {
    let report = match waiting(verb) {
        Some(what) => {
            let work = ctx.dispatch(target, verb, Progress::default());
            ctx.awaiting(what, work).await?
        }
        None => ctx.dispatch(target, verb, ctx.progress()).await?,
    };
    output::print_report(&report, ctx.json, ctx.wide);
    Ok(report)
}

/// What a spinner says while a verb that only waits is under way.
fn waiting(verb: &Verb) -> Option<&'static str> {
    Some(match verb {
        Verb::Partition { .. } => {
            "partitioning and waiting for the nodes to report the expected graph"
        }
        Verb::Heal { sync: true, .. } => {
            "healing and waiting for every node to reach the most-work tip"
        }
        Verb::Heal { sync: false, .. } => {
            "healing and waiting for the nodes to report the declared graph"
        }
        Verb::Sync { .. } => "waiting for one best block and one mempool on every node",
        Verb::Reset { .. } => "restarting every node on its chain and wiring the declared topology",
        Verb::Snapshot { .. } => "restarting every node to save its chain",
        Verb::Wait { .. } => "waiting for the condition to hold",
        Verb::Connect { .. } => "connecting and waiting for the handshake",
        Verb::Disconnect { .. } => "disconnecting and waiting until neither lists the other",
        _ => return None,
    })
}

/// `regbox netem`: the shaping the flags ask for (over a `--like` shorthand), or `--clear`.
fn netem(command: Command) -> Verb {
    let Command::Netem {
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
    } = command
    else {
        unreachable!("netem is asked for netem only")
    };
    let nodes = (!nodes.is_empty()).then_some(nodes);
    if clear {
        return Verb::Clear {
            nodes,
            shaping: true,
            cuts: false,
        };
    }
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
    Verb::Netem {
        nodes,
        to: (!to.is_empty()).then_some(to),
        shaping,
    }
}

/// `regbox throttle NODES --cpus N --memory SIZE` or `throttle --clear [NODES]`.
fn throttle(command: Command) -> Result<Verb, Failure> {
    let Command::Throttle {
        nodes,
        cpus,
        memory,
        io_rate,
        clear,
    } = command
    else {
        unreachable!("throttle is asked for throttle only")
    };
    if nodes.is_empty() && !clear {
        return Err(Failure::Usage(
            "name the nodes to throttle (`throttle n2 --cpus 0.05`), or --clear".into(),
        ));
    }
    Ok(Verb::Throttle {
        nodes: (!nodes.is_empty()).then_some(nodes),
        limits: Limits {
            cpus,
            memory,
            io_rate,
        },
        clear,
    })
}

/// `regbox cut A B`, `cut --from A --to B` or `cut --clear [NODES]`.
fn cut(command: Command) -> Result<Verb, Failure> {
    let Command::Cut {
        ends,
        from,
        to,
        reset,
        clear,
    } = command
    else {
        unreachable!("cut is asked for cut only")
    };
    let split = |s: &String| s.split(',').map(str::to_string).collect::<Vec<_>>();
    if clear {
        let nodes: Vec<String> = ends.iter().flat_map(split).collect();
        return Ok(Verb::Clear {
            nodes: (!nodes.is_empty()).then_some(nodes),
            shaping: false,
            cuts: true,
        });
    }
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
    Ok(Verb::Cut {
        from,
        to,
        both,
        block,
    })
}

/// `regbox partition`: the one kind the flags and groups ask for, made as `--via` says.
async fn partition(ctx: &Context, command: Command) -> Result<(), Failure> {
    let Command::Partition {
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
    } = command
    else {
        unreachable!("partition is asked for partition only")
    };
    let via = if via == "firewall" {
        Via::Firewall
    } else {
        Via::Segments
    };
    if reset && via != Via::Firewall {
        return Err(Failure::Usage("--reset needs --via firewall".into()));
    }
    let (target, groups) = split_cluster_word(ctx, groups).await?;
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
        let groups = groups
            .iter()
            .map(|g| g.split(',').map(str::to_string).collect())
            .collect();
        kinds.push(PartitionKind::Groups(groups));
    }
    let kind = match kinds.len() {
        1 => kinds.pop().expect("one kind"),
        0 => {
            return Err(Failure::Usage(
                "name groups (`a,b c,d`) or choose a kind (--halves, --isolate NODE, …)".into(),
            ))
        }
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
    let verb = Verb::Partition {
        kind,
        via,
        mode,
        reset,
        timeout: Some(Duration::from_secs(timeout)),
    };
    act(ctx, target, &verb).await.map(drop)
}

/// `regbox partition lab n0,n1 n2,n3`: without `-c`, a first positional word that names an existing
/// cluster selects that cluster instead of being a group. Deciding that needs the list of clusters (a
/// Docker call, or the operator's), so it happens here, when the command runs, not while parsing.
async fn split_cluster_word(
    ctx: &Context,
    mut groups: Vec<String>,
) -> Result<(Option<String>, Vec<String>), Failure> {
    let mut target = ctx.cluster.clone();
    if target.is_none() && !groups.is_empty() && ctx.clusters().await?.contains(&groups[0]) {
        target = Some(groups.remove(0));
    }
    Ok((target, groups))
}

/// `regbox measure propagation`: the measurement as a table or JSON, then its plots.
async fn measure(ctx: &Context, command: MeasureCommand) -> Result<(), Failure> {
    let MeasureCommand::Propagation {
        from,
        blocks,
        tx,
        svg,
        png,
        timeout,
    } = command;
    let verb = Verb::Measure {
        kind: if tx { Kind::Tx } else { Kind::Block },
        from,
        rounds: blocks as usize,
        timeout: Some(Duration::from_secs(timeout)),
    };
    let Report::Measured(m) = act(ctx, None, &verb).await? else {
        return Err(Failure::Report(
            "measure answered with another report".into(),
        ));
    };
    if let Some(path) = svg {
        plot::svg(&m, &path).map_err(Failure::Report)?;
    }
    if let Some(path) = png {
        plot::png(&m, &path).map_err(Failure::Report)?;
    }
    Ok(())
}

/// `regbox snapshot`: `save` is the verb; `export` and `import` move a snapshot between the nodes'
/// volumes and a file here, so they run where the engine is (not through an operator).
async fn snapshot(ctx: &Context, command: SnapshotCommand) -> Result<(), Failure> {
    let (name, timeout) = match command {
        SnapshotCommand::Save { name, timeout } => (name, Some(Duration::from_secs(timeout))),
        SnapshotCommand::Export { name, file } => {
            let cluster = ctx.open().await?;
            let work = cluster.export_snapshot(&name, &file);
            let done = ctx.awaiting("exporting the snapshot", work).await?;
            output::print_exported(&done, &file, false, ctx.json);
            return Ok(());
        }
        SnapshotCommand::Import { file, name } => {
            let mut cluster = ctx.open().await?;
            let work = cluster.import_snapshot(&file, name.as_deref());
            let done = ctx.awaiting("importing the snapshot", work).await?;
            output::print_exported(&done, &file, true, ctx.json);
            return Ok(());
        }
    };
    act(ctx, None, &Verb::Snapshot { name, timeout })
        .await
        .map(drop)
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

/// `regbox up` and `apply`: the manifest (or the default ring) as `-c` and `--image` change it; with a
/// plan, the plan is asked for and printed first.
async fn up(
    ctx: &Context,
    manifest: Option<&Path>,
    how: &UpArgs,
    plan: Plan,
) -> Result<(), Failure> {
    let mut spec = match manifest {
        Some(path) => load_manifest(path)?,
        None => ClusterSpec::default_ring4(),
    };
    // `-c` names the cluster this manifest makes, so two jobs can bring up one manifest side by side.
    if let Some(name) = &ctx.cluster {
        spec.rename(name).map_err(Failure::Usage)?;
    }
    if let Some(image) = how.image.as_deref() {
        spec.with_image(image).map_err(Failure::Usage)?;
    }
    let (name, nodes, edges) = (spec.name.clone(), spec.nodes.len(), spec.edges.len());
    let apply = |dry_run| Verb::Apply {
        spec: Box::new(spec.clone()),
        dry_run,
        timeout: Some(Duration::from_secs(how.timeout)),
    };
    let target = Some(name.clone());
    if plan != Plan::Silent {
        let dry_run = apply(true);
        let report = ctx.dispatch(target.clone(), &dry_run, Progress::default());
        let Report::Plan(doc) = report.await? else {
            return Err(Failure::Report(
                "a dry run answered with another report".into(),
            ));
        };
        output::print_up_plan(&doc, ctx.json);
        if plan == Plan::Only || (doc.exists && doc.is_empty()) {
            return Ok(());
        }
    }
    let started = Instant::now();
    let report = ctx.dispatch(target, &apply(false), ctx.progress()).await?;
    eprintln!(
        "cluster `{name}` is up: {nodes} nodes, {edges} edges verified in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    // `apply --json` prints one document: its plan.
    if !(plan == Plan::Print && ctx.json) {
        output::print_report(&report, ctx.json, ctx.wide);
    }
    Ok(())
}

/// `regbox down [NAME]` or `down --all`: one `down` per cluster; with `--all`, one cluster that cannot
/// go does not keep the others.
async fn down(ctx: &Context, cluster: Option<String>, all: bool) -> Result<(), Failure> {
    let names: Vec<Option<String>> = if all {
        ctx.clusters().await?.into_iter().map(Some).collect()
    } else {
        vec![ctx.wanted(cluster)?]
    };
    let mut reports = Vec::new();
    let mut failed = Vec::new();
    for name in names {
        let report = match ctx
            .dispatch(name.clone(), &Verb::Down, ctx.progress())
            .await
        {
            Ok(Report::Down(report)) => report,
            Ok(_) => return Err(Failure::Report("down answered with another report".into())),
            Err(e) if all => {
                eprintln!("error: {}", crate::cli::error_chain(&e));
                failed.push(name.unwrap_or_default());
                continue;
            }
            Err(e) => return Err(e),
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::verb_of;
    use crate::cli::args::Cli;

    /// What `verb_of` makes of a command line: the cluster it names and the verb's JSON, the usage
    /// error, or that the command is no one verb.
    fn verb_of_line(line: &str) -> String {
        let words = std::iter::once("regbox").chain(line.split_whitespace());
        let cli = Cli::try_parse_from(words).unwrap_or_else(|e| panic!("{line}: {e}"));
        match verb_of(cli.command) {
            Ok(Ok((target, verb))) => {
                format!("{target:?} {}", serde_json::to_string(&verb).unwrap())
            }
            Ok(Err(e)) => format!("refused: {e}"),
            Err(_) => "no verb".into(),
        }
    }

    /// Every command that is one verb, as the CLI translates it (`line => what verb_of makes of it`).
    #[test]
    fn each_command_line_makes_its_verb() {
        let cases = r#"
netem n1 --delay 100ms --to n2 => None {"verb":"netem","nodes":["n1"],"to":["n2"],"shaping":{"delay_us":100000,"jitter_us":0,"distribution":"uniform","loss":0.0,"duplicate":0.0,"corrupt":0.0,"reorder":0.0,"rate_bps":null}}
netem --clear => None {"verb":"clear","shaping":true,"cuts":false}
disk n1 --fill => None {"verb":"disk","node":"n1","fill":true}
disk n1 --free => None {"verb":"disk","node":"n1","fill":false}
reset --to s1 --timeout 5 => None {"verb":"reset","to":"s1","timeout":5.0}
clock n1,n2 --offset +3h --drift +1s/min => None {"verb":"clock","nodes":["n1","n2"],"offset":10800,"drift":"+1s/min"}
clock --clear => None {"verb":"clock","offset":0,"drift":"0"}
clock n1 --drift 0 => None {"verb":"clock","nodes":["n1"],"drift":"0"}
throttle n2 --cpus 0.05 => None {"verb":"throttle","nodes":["n2"],"limits":{"cpus":0.05},"clear":false}
throttle => refused: name the nodes to throttle (`throttle n2 --cpus 0.05`), or --clear
throttle --clear => None {"verb":"throttle","limits":{},"clear":true}
cut n0 n1 --reset => None {"verb":"cut","from":["n0"],"to":["n1"],"both":true,"block":"reset"}
cut --from n0 --to n1,n2 => None {"verb":"cut","from":["n0"],"to":["n1","n2"],"both":false,"block":"drop"}
cut --clear n0,n1 => None {"verb":"clear","nodes":["n0","n1"],"shaping":false,"cuts":true}
cut n0 => refused: name two ends (`cut A B`) or --from and --to
status lab => Some("lab") {"verb":"status"}
status => None {"verb":"status"}
url n0 => None {"verb":"url","node":"n0"}
mine n0 3 => None {"verb":"mine","node":"n0","blocks":3}
send n0 n1 0.5 => None {"verb":"send","from":"n0","to":"n1","amount_sat":50000000}
connect n0 n1 => None {"verb":"connect","a":"n0","b":"n1"}
disconnect n0 n1 => None {"verb":"disconnect","a":"n0","b":"n1"}
wait height 7 n2 --timeout 9 => None {"verb":"wait","until":{"height":{"node":"n2","height":7}},"timeout":9.0}
wait explode => refused: no condition `explode`: ready, sync_blocks, sync_mempools, height or peers
sync lab --timeout 4 => Some("lab") {"verb":"sync","timeout":4.0}
rpc n0 getblockhash 0 abc => None {"verb":"rpc","node":"n0","method":"getblockhash","params":[0,"abc"],"timeout":300.0}
logs n0 --tail 5 => None {"verb":"logs","node":"n0","tail":5,"follow":false}
heal lab --sync --timeout 7 => Some("lab") {"verb":"heal","sync":true,"timeout":7.0}
heal => None {"verb":"heal","sync":false,"timeout":60.0}
stop n0 => None {"verb":"fault","fault":"stop","node":"n0"}
start n0 => None {"verb":"fault","fault":"start","node":"n0"}
restart n0 => None {"verb":"fault","fault":"restart","node":"n0"}
kill n0 => None {"verb":"fault","fault":"kill","node":"n0"}
pause n0 => None {"verb":"fault","fault":"pause","node":"n0"}
unpause n0 => None {"verb":"fault","fault":"unpause","node":"n0"}
ls => no verb
down => no verb
"#;
        for case in cases.trim().lines() {
            let (line, want) = case.split_once(" => ").unwrap();
            assert_eq!(verb_of_line(line), want, "{line}");
        }
    }
}
