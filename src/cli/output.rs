//! What the commands print: tables and sentences for people, JSON with `--json` (pretty for a command's
//! result, one compact object per line for scenario steps).

use std::io::Write;

use serde::Serialize;
use serde_json::{json, Value};

use crate::cli::load::Checked;
use crate::core::chain::propagation::Measurement;
use crate::core::chain::wait::Met;
use crate::core::faults::clock;
use crate::core::partition::Via;
use crate::core::verb::{
    describe_links, Connection, DownReport, HealReport, Links, NodeStatus, PartitionReport,
    PlanDoc, Report, Throttles,
};
use crate::engine::image::NodeImage;
use crate::engine::lifecycle::ClusterSummary;
use crate::engine::runner::{Outcome, RunReport, StepResult};
use crate::engine::wait::short;

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).unwrap());
}

/// A serde enum's word (`"drop"`, `"running"`), as JSON shows it.
fn word<T: Serialize>(value: T) -> String {
    serde_json::to_value(value)
        .unwrap()
        .as_str()
        .unwrap_or("?")
        .to_string()
}

/// `regbox ls`.
pub fn print_clusters(list: &[ClusterSummary], json: bool) {
    if json {
        return print_json(list);
    }
    let rows = list
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                format!("{}/{}", c.running, c.nodes),
                c.networks.join(","),
                c.changing.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    print_table(
        &["CLUSTER", "RUNNING", "NETWORKS", "BEING CHANGED BY"],
        rows,
    );
}

/// `regbox image ls`.
pub fn print_images(list: &[NodeImage], json: bool) {
    if json {
        return print_json(list);
    }
    let rows = list
        .iter()
        .map(|i| {
            let id = i.id.trim_start_matches("sha256:");
            vec![
                i.name.clone(),
                id[..id.len().min(12)].to_string(),
                i.bitcoind.clone(),
                if i.clusters.is_empty() {
                    "-".into()
                } else {
                    i.clusters.join(",")
                },
            ]
        })
        .collect();
    print_table(&["IMAGE", "ID", "BITCOIND", "CLUSTERS"], rows);
}

/// `regbox check`: one line per valid file.
pub fn print_checked(list: &[Checked], json: bool) {
    if json {
        return print_json(list);
    }
    for c in list {
        let what = if c.kind == "scenario" {
            format!(
                "scenario `{}`, {} steps on {} nodes",
                c.name, c.steps, c.nodes
            )
        } else {
            format!("cluster `{}`, {} nodes, {} edges", c.name, c.nodes, c.edges)
        };
        println!("{}: ok ({what})", c.file);
    }
}

/// One removed cluster, as a sentence (with `--json` the reports are printed together at the end).
pub fn print_removed(report: &DownReport) {
    println!(
        "removed cluster `{}`: {} containers, {} volumes, {} networks",
        report.cluster, report.containers, report.volumes, report.networks
    );
}

/// `regbox rpc`: a string result bare, nothing for null, anything else (or everything with `--json`) as
/// pretty JSON.
pub fn print_rpc_result(result: Value, json: bool) {
    match result {
        Value::String(s) if !json => println!("{s}"),
        Value::Null if !json => {}
        other => print_json(&other),
    }
}

/// The segments of a partition (or of the healed cluster) and the verified peer graph.
pub fn print_partition(report: &PartitionReport, json: bool) {
    if json {
        return print_json(report);
    }
    if report.via == Via::Firewall {
        let rows = report
            .segments
            .iter()
            .map(|s| vec![s.id.to_string(), s.members.join(",")])
            .collect();
        print_table(&["GROUP (RULES)", "NODES"], rows);
    } else {
        let rows = report
            .segments
            .iter()
            .map(|s| vec![s.network.clone(), s.subnet.clone(), s.members.join(",")])
            .collect();
        print_table(&["SEGMENT", "SUBNET", "NODES"], rows);
    }
    println!(
        "peer graph ({} cut): {}",
        word(report.mode),
        if report.graph.is_empty() {
            "no edges".to_string()
        } else {
            report.graph.join(" ")
        }
    );
}

/// `regbox heal --sync`: the common tip, and per node where it was and how deep it reorganised.
pub fn print_heal(report: &HealReport, json: bool) {
    if json {
        return print_json(report);
    }
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
                short(&n.old_tip).to_string(),
                n.reorg_depth.to_string(),
            ]
        })
        .collect();
    print_table(&["NODE", "OLD-HEIGHT", "OLD-TIP", "REORG-DEPTH"], rows);
}

/// One finished scenario step: `PASS`/`FAIL`/`SKIP`, its label and time, a failure's explanation
/// indented below; with `--json` one compact object per line.
pub fn print_step(step: &StepResult, json: bool) {
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
}

/// The scenario's verdict after its steps (not with `--json`, where the steps say it all).
pub fn print_run_summary(report: &RunReport) {
    let failed = report
        .steps
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Failed(_)))
        .count();
    println!(
        "scenario `{}`: {} ({} steps, {failed} failed) in {:.1}s",
        report.scenario,
        if report.passed() { "PASSED" } else { "FAILED" },
        report.steps.len(),
        report.seconds
    );
}

/// Per node: image, state, host (across hosts), data address, height, best block, segments, peers (or why they are unknown).
pub fn print_status(nodes: &[NodeStatus], json: bool, wide: bool) {
    if json {
        return print_json(nodes);
    }
    let rows = nodes
        .iter()
        .map(|n| {
            let mut row = vec![
                n.name.clone(),
                n.image.clone(),
                word(n.state),
                n.data_ip.clone(),
                n.height.map_or("-".into(), |h| h.to_string()),
                n.best_hash
                    .as_deref()
                    .map_or("-".into(), |h| short(h).to_string()),
                n.segments
                    .iter()
                    .map(|s| s.rsplit('-').next().unwrap_or(s))
                    .collect::<Vec<_>>()
                    .join(","),
                n.error.clone().unwrap_or_else(|| n.peers.join(",")),
            ];
            if wide {
                row.insert(
                    4,
                    format!(
                        "{}:{}",
                        n.control_ip,
                        crate::core::cluster::blueprint::RPC_PORT
                    ),
                );
            }
            row
        })
        .collect();
    let mut header = vec![
        "NODE", "IMAGE", "STATE", "DATA-IP", "HEIGHT", "BEST", "SEGMENTS", "PEERS",
    ];
    if wide {
        header.insert(4, "RPC");
    }
    let mut rows: Vec<Vec<String>> = rows;
    // A cluster across hosts shows each node's host after its state.
    if nodes.iter().any(|n| n.host.is_some()) {
        header.insert(3, "HOST");
        for (row, n) in rows.iter_mut().zip(nodes) {
            row.insert(3, n.host.clone().unwrap_or_default());
        }
    }
    // Throttles get a column only while some node has one.
    if nodes.iter().any(|n| n.throttle.is_some()) {
        header.push("THROTTLE");
        for (row, n) in rows.iter_mut().zip(nodes) {
            row.push(n.throttle.map_or_else(String::new, |l| l.to_string()));
        }
    }
    // Link faults get a column only while some node has any.
    if nodes.iter().any(|n| !n.links.is_empty()) {
        header.push("LINK FAULTS");
        for (row, n) in rows.iter_mut().zip(nodes) {
            row.push(n.links.clone());
        }
    }
    // Clocks get a column only while some node's is not the host's.
    if nodes.iter().any(|n| n.clock.is_some()) {
        header.push("CLOCK");
        for (row, n) in rows.iter_mut().zip(nodes) {
            let mut shown = n.clock.map_or(String::new(), clock::describe);
            if let Some(d) = n.drift {
                shown += &format!(" drifting {d}");
            }
            row.push(shown);
        }
    }
    print_table(&header, rows);
    if let Some(encrypted) = nodes.first().and_then(|n| n.overlay_encrypted) {
        println!("overlays: {}", overlays(encrypted));
    }
}

/// How the overlays of a cluster across hosts carry its traffic, in words.
fn overlays(encrypted: bool) -> &'static str {
    match encrypted {
        true => "encrypted (IPsec between the hosts)",
        false => "not encrypted (whoever reads the network between the hosts reads RPC and P2P)",
    }
}

/// `regbox swarm status`: one row per host, then whether `up` may start across them.
pub fn print_swarm(status: &crate::engine::swarm::SwarmStatus, json: bool) {
    if json {
        return print_json(status);
    }
    let rows = status
        .hosts
        .iter()
        .map(|h| {
            let m = &h.member;
            vec![
                m.host.clone(),
                m.url.clone(),
                m.version.clone().unwrap_or_else(|| "-".into()),
                m.state.clone(),
                match (m.state.as_str(), m.manager) {
                    ("active", true) => "manager".into(),
                    ("active", false) => "worker".into(),
                    _ => "-".into(),
                },
                m.address.clone().unwrap_or_else(|| "-".into()),
                h.nodes.len().to_string(),
                m.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(
        &[
            "HOST", "DOCKER", "ENGINE", "SWARM", "ROLE", "ADDRESS", "NODES", "ERROR",
        ],
        rows,
    );
    // What is not ready is the command's error (on stderr, exit 1).
    if status.problem.is_none() {
        println!("ready: every check `up` makes passes");
    }
}

/// The plan of `apply` and `up --dry-run`, as a diff: `+` adds, `-` removes, `~` changes; one line per
/// node, container, edge or link, nodes by name.
pub fn print_up_plan(plan: &PlanDoc, json: bool) {
    if json {
        return print_json(plan);
    }
    let state = if plan.exists {
        "exists"
    } else {
        "does not exist yet: networks, metadata and every node are made"
    };
    println!("cluster `{}` {state}", plan.cluster);
    let width = plan.diff.iter().map(|l| l.what.len()).max().unwrap_or(0);
    for l in &plan.diff {
        let line = format!("  {} {:<width$}  {}", l.sign, l.what, l.detail);
        println!("{}", line.trim_end());
    }
    if plan.is_empty() {
        println!("  nothing to do");
    }
}

/// `regbox netem`, `cut` and `clear`: each node's link faults afterwards (JSON: by node name, with
/// peers by name).
pub fn print_links(links: &Links, json: bool) {
    if json {
        return print_json(links);
    }
    if links.is_empty() {
        println!("no link faults");
        return;
    }
    let rows = links
        .iter()
        .map(|(node, f)| vec![node.clone(), describe_links(f)])
        .collect();
    print_table(&["NODE", "LINK FAULTS"], rows);
}

/// `regbox throttle`: each throttled node's limits afterwards (JSON: by node name).
pub fn print_throttles(throttles: &Throttles, json: bool) {
    if json {
        return print_json(throttles);
    }
    if throttles.is_empty() {
        println!("no node throttled");
        return;
    }
    let rows = throttles
        .iter()
        .map(|(node, l)| vec![node.clone(), l.to_string()])
        .collect();
    print_table(&["NODE", "THROTTLE"], rows);
}

/// A verb's report, as the command that asked for it prints it. `connect`, `disconnect` and the node
/// faults say what they did on stderr (stdout stays for `--json`).
pub fn print_report(report: &Report, json: bool, wide: bool) {
    match report {
        Report::Status(nodes) => print_status(nodes, json, wide),
        Report::Url(c) => print_connection(c, json),
        Report::Mined(m) if !json => println!(
            "mined {} blocks on {}; height {}, tip {}",
            m.blocks.len(),
            m.node,
            m.height,
            m.blocks.last().map_or("-", |h| h.as_str())
        ),
        Report::Synced(s) if !json => println!(
            "all {} nodes on {} with {} mempool transactions",
            s.nodes, s.best_hash, s.mempool_size
        ),
        Report::Rpc(result) => print_rpc_result(result.clone(), json),
        Report::Partition(r) => print_partition(r, json),
        Report::Heal(r) => print_heal(r, json),
        Report::Links(links) => print_links(links, json),
        Report::Throttled(t) => print_throttles(t, json),
        Report::Measured(m) => print_measurement(m, json),
        Report::Plan(plan) => print_up_plan(plan, json),
        Report::Down(r) if !json => print_removed(r),
        Report::Logs(l) if !json => print!("{}", l.text),
        Report::Sent(s) if !json => println!(
            "sent {} BTC from {} to {}: {}",
            crate::core::verb::btc(s.amount_sat),
            s.from,
            s.to,
            s.txid
        ),
        Report::Waited(w) if !json => println!("{}: met{}", w.until, met(&w.met)),
        Report::Wired(w) if !json && w.connected => eprintln!("{} -> {} connected", w.a, w.b),
        Report::Wired(w) if !json => eprintln!("{} and {} disconnected", w.a, w.b),
        Report::Fault(f) if !json => eprintln!("{}: {} done", f.node, f.fault.name()),
        Report::Disk(d) if !json => match d.full {
            true => eprintln!("{}: data directory full", d.node),
            false => eprintln!("{}: data directory freed", d.node),
        },
        Report::Reset(r) if !json => {
            let on =
                r.to.as_deref()
                    .map_or("a fresh chain".to_string(), |to| format!("snapshot {to}"));
            let height = r.nodes.first().map_or(0, |n| n.height);
            println!(
                "reset {} nodes to {on} (height {height}), wired as declared",
                r.nodes.len()
            );
            if !r.remade.is_empty() {
                println!("made again: {}", r.remade.join(", "));
            }
            for c in &r.cleared {
                println!("cleared {c}");
            }
        }
        Report::Snapshot(s) if !json => {
            let rows = (s.nodes.iter())
                .map(|n| vec![n.node.clone(), n.height.to_string(), n.best_hash.clone()])
                .collect();
            print_table(&["NODE", "HEIGHT", "BEST"], rows);
            println!("saved snapshot {}", s.name);
        }
        Report::Clocks(c) if !json => {
            for n in &c.nodes {
                match (n.offset, n.drift) {
                    (0, None) => eprintln!("{}: clock back to the host's", n.node),
                    (o, None) => eprintln!(
                        "{}: clock at {} from the host's",
                        n.node,
                        clock::describe(o)
                    ),
                    (o, Some(d)) => eprintln!(
                        "{}: clock at {} from the host's, drifting {d}",
                        n.node,
                        clock::describe(o)
                    ),
                }
            }
        }
        other => print_json(other),
    }
}

/// `snapshot export` and `import`: what the file holds.
pub fn print_exported(
    e: &crate::engine::reset::Exported,
    file: &std::path::Path,
    imported: bool,
    json: bool,
) {
    if json {
        return print_json(e);
    }
    let (verb, way) = if imported {
        ("imported", "from")
    } else {
        ("exported", "to")
    };
    println!(
        "{verb} snapshot {} of {} nodes ({}) {way} {} ({} bytes)",
        e.name,
        e.nodes.len(),
        e.nodes.join(", "),
        file.display(),
        e.bytes
    );
}

/// What a met condition found, for a sentence.
fn met(m: &Met) -> String {
    match m {
        Met::Yes => String::new(),
        Met::Tip(hash) => format!(" (tip {hash})"),
        Met::Mempool(n) => format!(" ({n} mempool transactions)"),
    }
}

/// `regbox url`: the RPC URL, then the P2P address.
pub fn print_connection(c: &Connection, json: bool) {
    if json {
        return print_json(c);
    }
    println!("rpc  {}", c.rpc_url);
    println!("p2p  {}", c.p2p_address);
    if let Some(relay) = c.rpc_proxy {
        let auth = c.rpc_proxy_auth.as_deref().unwrap_or("USER:TOKEN");
        println!("via  http://{relay} (HTTP CONNECT; curl -p -x http://{relay} -U {auth} …)");
    }
    if let Some(encrypted) = c.overlay_encrypted {
        println!("overlays  {}", overlays(encrypted));
    }
}

/// Left-aligned columns two spaces apart, each as wide as its widest cell; no trailing spaces.
/// `regbox measure propagation`: the summary, the means per hop, and each node's arrivals (every
/// round's with up to 8 rounds).
pub fn print_measurement(m: &Measurement, json: bool) {
    if json {
        return print_json(m);
    }
    let s = &m.summary;
    let what = match m.kind {
        crate::core::chain::propagation::Kind::Block => "block",
        crate::core::chain::propagation::Kind::Tx => "transaction",
    };
    let ms = |t: Option<f64>| t.map_or("-".to_string(), |t| format!("{t:.1}"));
    let never = |t: Option<f64>| t.map_or("never".to_string(), |t| format!("{t:.1}"));
    if let Some(p) = &m.prepared {
        let split = (p.split_txid.as_deref())
            .map_or(String::new(), |t| format!(", coins split by {}", short(t)));
        println!(
            "prepared: {} block(s) mined on {}{split}",
            p.blocks_mined, m.origin
        );
    }
    println!(
        "{what} propagation from {}: {} round(s), {} arrivals; ms after the {what} was born on {}",
        m.origin, s.rounds, s.samples, m.origin
    );
    println!(
        "p50 {}  p90 {}  p95 {}  max {}{}",
        never(s.p50),
        never(s.p90),
        never(s.p95),
        never(s.max),
        if s.missing > 0 {
            format!("  ({} never arrived)", s.missing)
        } else {
            String::new()
        }
    );
    if !m.unreachable.is_empty() {
        println!(
            "not reachable from {}: {}",
            m.origin,
            m.unreachable.join(", ")
        );
    }
    println!();
    let headers = s.per_hop.iter().any(|h| h.mean_header_ms.is_some());
    let rows = (s.per_hop.iter())
        .map(|h| {
            let mut row = vec![
                h.hops.to_string(),
                h.samples.to_string(),
                format!("{:.1}", h.mean_ms),
                format!("{:.1}", h.max_ms),
            ];
            if headers {
                row.push(ms(h.mean_header_ms));
            }
            row
        })
        .collect();
    let mut columns = vec!["HOPS", "ARRIVALS", "MEAN MS", "MAX MS"];
    if headers {
        columns.push("MEAN HEADER MS");
    }
    print_table(&columns, rows);
    println!();
    print_arrivals(m);
}

/// One row per node: hops, mean and max over the rounds, and each round's time when there are few.
fn print_arrivals(m: &Measurement) {
    let every_round = m.rounds.len() <= 8;
    let mut header = vec![
        "NODE".to_string(),
        "HOPS".into(),
        "MEAN MS".into(),
        "MAX MS".into(),
    ];
    if every_round {
        header.extend(m.rounds.iter().map(|r| format!("#{}", r.round)));
    }
    let nodes = m.rounds.first().map_or(0, |r| r.arrivals.len());
    let rows = (0..nodes)
        .map(|i| {
            let first = &m.rounds[0].arrivals[i];
            let times: Vec<Option<f64>> = m.rounds.iter().map(|r| r.arrivals[i].ms).collect();
            let got: Vec<f64> = times.iter().flatten().copied().collect();
            let cell = |t: Option<f64>| t.map_or("-".to_string(), |t| format!("{t:.1}"));
            let mean = (got.len() == times.len() && !got.is_empty())
                .then(|| got.iter().sum::<f64>() / got.len() as f64);
            let max = (got.len() == times.len()).then(|| got.iter().copied().fold(0.0, f64::max));
            let mut row = vec![
                first.node.clone(),
                first.hops.map_or("-".into(), |h| h.to_string()),
                cell(mean),
                cell(max),
            ];
            if every_round {
                row.extend(times.into_iter().map(cell));
            }
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    print_table(&header, rows);
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

/// `regbox topology show`: a topology's numbers.
pub fn print_topology(cluster: &str, stats: &crate::core::topology::stats::Stats, json: bool) {
    if json {
        return print_json(&json!({"cluster": cluster, "topology": stats}));
    }
    let or_none = |v: Option<String>| v.unwrap_or_else(|| "- (disconnected)".into());
    let rows = vec![
        vec!["nodes".into(), stats.nodes.to_string()],
        vec!["edges".into(), stats.edges.to_string()],
        vec![
            "degree".into(),
            format!(
                "min {} · mean {:.2} · max {}",
                stats.degree_min, stats.degree_mean, stats.degree_max
            ),
        ],
        vec![
            "diameter".into(),
            or_none(stats.diameter.map(|d| d.to_string())),
        ],
        vec![
            "mean hops".into(),
            or_none(stats.mean_distance.map(|d| format!("{d:.2}"))),
        ],
        vec![
            "connected".into(),
            match stats.components {
                1 => "yes".to_string(),
                n => format!("no: {n} components"),
            },
        ],
    ];
    print_table(&["TOPOLOGY", cluster], rows);
}

/// One line on stderr per fault, its end, a convergence and a broken invariant (at a terminal, where
/// the log lines saying the same are off by default).
pub fn print_soak_event(event: &crate::core::soak::Event) {
    use crate::core::soak::{EventKind, FaultKind};
    let t = event.t;
    match &event.kind {
        EventKind::Fault {
            step,
            detail,
            fault,
            ..
        } => match fault {
            // A node fault's detail starts with its verb (`kill n2, start after 8s`).
            FaultKind::Kill | FaultKind::Restart | FaultKind::Pause => {
                eprintln!("{t:>8.1}s  step {step}: {detail}")
            }
            _ => eprintln!("{t:>8.1}s  step {step}: {fault} {detail}"),
        },
        EventKind::FaultEnd { step, fault, .. } => {
            eprintln!("{t:>8.1}s  step {step}: {fault} over")
        }
        EventKind::Converged { step, seconds } => {
            eprintln!("{t:>8.1}s  step {step}: converged in {seconds:.1}s")
        }
        EventKind::Invariant {
            ok: false,
            name,
            nodes,
            detail,
            ..
        } => eprintln!(
            "{t:>8.1}s  invariant `{name}` broken by {}: {detail}",
            nodes.join(", ")
        ),
        EventKind::Crash { node, detail } => eprintln!("{t:>8.1}s  {node} crashed: {detail}"),
        _ => {}
    }
}

/// A soak run's figures: faults, blocks, reorgs, convergence and propagation times, the verdict and
/// the files written; one JSON object with `--json`.
pub fn print_soak_summary(
    outcome: &crate::engine::soak::SoakOutcome,
    files: &[Option<&std::path::PathBuf>],
    json: bool,
) {
    let s = crate::core::soak::summarize(&outcome.events);
    let stats = |v: &mut Vec<f64>| -> Value {
        if v.is_empty() {
            return Value::Null;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        json!({
            "count": v.len(),
            "median": v[(v.len() - 1) / 2],
            "mean": (mean * 1000.0).round() / 1000.0,
            "max": v[v.len() - 1],
        })
    };
    let mut convergence: Vec<f64> = s.convergence.iter().map(|c| c.1).collect();
    let mut propagation: Vec<f64> = s.propagation.iter().map(|p| p.1).collect();
    let files: Vec<String> = files
        .iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect();
    let summary = json!({
        "cluster": outcome.cluster,
        "seed": outcome.seed,
        "ok": outcome.ok(),
        "interrupted": outcome.interrupted,
        "failure": outcome.failure,
        "seconds": s.last_t,
        "faults": s.fault_intervals.len(),
        "faults_ended": s.fault_intervals.iter().filter(|f| f.end.is_some()).count(),
        "blocks": s.blocks,
        "txs": s.txs,
        "reorgs": s.reorgs.len(),
        "max_reorg_depth": s.reorgs.iter().map(|r| r.depth).max().unwrap_or(0),
        "forks": s.forks,
        "crashes": s.crashes.len(),
        "invariant_checks": s.invariants.len(),
        "invariants_broken": s.failed_invariants(),
        "convergence_s": stats(&mut convergence),
        "propagation_s": stats(&mut propagation),
        "files": files,
    });
    if json {
        return print_json(&summary);
    }
    let verdict = match (outcome.ok(), outcome.interrupted) {
        (true, _) => "PASSED",
        (_, true) => "INTERRUPTED",
        _ => "FAILED",
    };
    println!(
        "soak `{}` seed {}: {verdict} after {:.0}s",
        outcome.cluster, outcome.seed, s.last_t
    );
    println!(
        "  {} fault(s), {} block(s), {} tx(s), {} reorg(s) (deepest {}), {} invariant check(s), {} broken",
        summary["faults"],
        s.blocks,
        s.txs,
        s.reorgs.len(),
        summary["max_reorg_depth"],
        s.invariants.len(),
        s.failed_invariants()
    );
    for (what, v) in [
        ("convergence", &summary["convergence_s"]),
        ("propagation", &summary["propagation_s"]),
    ] {
        if !v.is_null() {
            println!(
                "  {what}: median {}s, max {}s over {}",
                v["median"], v["max"], v["count"]
            );
        }
    }
    if let Some(f) = &outcome.failure {
        println!("  {}", f.message);
    }
    for file in files {
        println!("  wrote {file}");
    }
}
