//! Integration tests: resource faults (`throttle`) as the nodes feel them, as the engine records them,
//! and kept across the reconcile loop.

use super::*;
use regbox::measure::MeasureOptions;
use regbox::propagation::Kind;
use regbox::throttle::Limits;
use regbox::WaitFor;

/// Transactions in each measured block, each spending [`INPUTS_PER_TX`] coins: 1,600 signatures
/// to check make connecting the block cost a node tens of milliseconds of CPU, many times the 5 ms
/// one 100 ms period gives it under a limit of 0.05 CPUs. (200 one-input transactions took ≈ 26 ms
/// unthrottled and only ≈ 47 ms throttled: their few milliseconds of CPU fit in one or two periods.)
const TXS_PER_BLOCK: usize = 40;
const INPUTS_PER_TX: usize = 40;
/// The value of each coin the sends spend, in satoshis (0.025 BTC).
const COIN_SATS: u64 = 2_500_000;

/// How long node `name`'s container has been up by the engine's account, and bitcoind's own uptime.
async fn started(cluster: &Cluster, name: &str) -> (String, u64) {
    let container = format!("regbox-{}-{name}", cluster.name());
    let (info, _) = outside::inspect(&container).await;
    let node = cluster.node(name).unwrap();
    let uptime: u64 = node
        .rpc
        .call("uptime", serde_json::json!([]))
        .await
        .unwrap();
    (info.state.unwrap().started_at.unwrap(), uptime)
}

/// The CPU (billionths) and memory limits the engine holds for node `name`'s container.
async fn engine_limits(cluster: &str, name: &str) -> (Option<i64>, Option<i64>) {
    let (info, _) = outside::inspect(&format!("regbox-{cluster}-{name}")).await;
    let host = info.host_config.unwrap();
    (host.nano_cpus, host.memory)
}

/// Sends `count` wallet transactions from n0 to n1, each spending [`INPUTS_PER_TX`] coins, while n2
/// is cut off from both, joins n2 again, then mines one block on n0 and reads, as `measure
/// propagation` does (from each node's log), how long each node took to accept it: from the node
/// first seeing its header to its `UpdateTip`, ms by node. n2 has none of the block's transactions and
/// checks every signature when the block comes (a node that has them in its mempool checked them
/// already). The time the header took to reach n2 is left out: a peer joined again is announced
/// blocks the slow way (≈ 1 s here), whatever its CPU.
async fn full_block(cluster: &mut Cluster, count: usize) -> BTreeMap<String, f64> {
    for peer in ["n0", "n1"] {
        cluster.disconnect(peer, "n2", WAIT).await.unwrap();
    }
    // One at a time: two sends racing in one wallet may pick the same coin, and the second replaces
    // the first in the mempool. Each pays a little less than its coins, so it spends all of them.
    let amount = COIN_SATS * (INPUTS_PER_TX as u64 - 1) + COIN_SATS / 2;
    for _ in 0..count {
        cluster.send("n0", "n1", amount).await.unwrap();
    }
    let pair = WaitFor::SyncMempools(Some(vec!["n0".into(), "n1".into()]));
    cluster.wait(&pair, WAIT).await.unwrap();
    for peer in ["n0", "n1"] {
        cluster.connect(peer, "n2", WAIT).await.unwrap();
    }
    let n2 = cluster.node("n2").unwrap();
    let mempool: serde_json::Value = n2
        .rpc
        .call("getmempoolinfo", serde_json::json!([]))
        .await
        .unwrap();
    assert_eq!(mempool["size"], 0, "n2 has none of the transactions");
    let opts = MeasureOptions {
        kind: Kind::Block,
        from: "n0".into(),
        rounds: 1,
        timeout: Duration::from_secs(120),
    };
    let m = cluster
        .measure_propagation(&opts, &Progress::default())
        .await
        .unwrap();
    let round = &m.rounds[0];
    let txs: serde_json::Value = cluster.nodes()[0]
        .rpc
        .call("getblock", serde_json::json!([round.id, 1]))
        .await
        .unwrap();
    // Nearly all: now and then the block template leaves one of them for the next block.
    let carried = txs["tx"].as_array().unwrap().len() - 1;
    assert!(
        carried * 10 >= count * 9,
        "the block carries {carried} of {count}"
    );
    round
        .arrivals
        .iter()
        .filter(|a| a.node != "n0")
        .map(|a| {
            let took = a.ms.expect("every node took the block");
            let seen = a.header_ms.expect("every node logged the header");
            (a.node.clone(), took - seen)
        })
        .collect()
}

/// `regbox -c CLUSTER ARGS…`, failing the test on a non-zero exit: its stdout.
async fn on(cluster: &str, args: &[&str]) -> String {
    ok(&[&["-c", cluster], args].concat()).await
}

async fn on_json(cluster: &str, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&on(cluster, args).await).unwrap()
}

/// `throttle n2 --cpus 0.05` without a restart: a block of 40 transactions (1,600 inputs) it has not
/// seen takes n2
/// many times longer to accept (header to tip) than the same kind of block did before the throttle,
/// and than after `throttle --clear`; `status` shows the limit meanwhile.
#[test]
fn a_throttled_node_takes_a_full_block_many_times_slower_until_cleared() {
    run(async {
        let name = unique("throttle");
        let yaml = format!("name: {name}\nnodes: 3\ntopology: ring\ndefaults: {{wallet: true}}\n");
        let spec = manifest::parse(&yaml, "inline").unwrap();
        let (mut cluster, _guard) = up(spec).await;
        // The coins of the three rounds: one transaction per round paying n0's wallet 1,600 times
        // (mining as many blocks for their coinbases takes minutes on a busy machine).
        cluster.mine("n0", 100 + 3).await.unwrap();
        let n0 = &cluster.nodes()[0].rpc;
        for _ in 0..3 {
            let mut outputs = serde_json::Map::new();
            for _ in 0..TXS_PER_BLOCK * INPUTS_PER_TX {
                let address: String = n0
                    .call("getnewaddress", serde_json::json!([]))
                    .await
                    .unwrap();
                outputs.insert(address, serde_json::json!(COIN_SATS as f64 / 1e8));
            }
            let _: String = n0
                .call("sendmany", serde_json::json!(["", outputs]))
                .await
                .unwrap();
        }
        cluster.mine("n0", 1).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();

        let begun = std::time::Instant::now();
        let before = full_block(&mut cluster, TXS_PER_BLOCK).await;
        eprintln!("first round done after {:?}", begun.elapsed());
        let (started_at, uptime) = started(&cluster, "n2").await;

        let cpus = Limits {
            cpus: Some(0.05),
            ..Limits::default()
        };
        let throttles = cluster.throttle(&["n2"], cpus).await.unwrap();
        assert_eq!(throttles, BTreeMap::from([("n2".to_string(), cpus)]));
        assert_eq!(engine_limits(&name, "n2").await.0, Some(50_000_000));
        let status = cluster.status().await.unwrap();
        assert_eq!(status[2].throttle, Some(cpus));
        assert_eq!(status[1].throttle, None);
        let throttled = full_block(&mut cluster, TXS_PER_BLOCK).await;
        // Not restarted: the same container run, and bitcoind has been up all along.
        let (started_again, uptime_again) = started(&cluster, "n2").await;
        assert_eq!(started_at, started_again);
        assert!(uptime_again >= uptime);

        let throttles = cluster.clear_throttle(Some(&["n2"])).await.unwrap();
        assert!(throttles.is_empty(), "{throttles:?}");
        assert_eq!(cluster.status().await.unwrap()[2].throttle, None);
        // Cleared, the faster of two blocks: one block's time on a loaded host can be slow on its own.
        let mut after = full_block(&mut cluster, TXS_PER_BLOCK).await;
        for (node, ms) in full_block(&mut cluster, TXS_PER_BLOCK).await {
            after.entry(node).and_modify(|a| *a = a.min(ms));
        }
        eprintln!(
            "block of {TXS_PER_BLOCK} txs, ms from header to tip: before {before:?}; n2 at 0.05 CPUs \
             {throttled:?}; cleared {after:?}"
        );
        let n2 = throttled["n2"];
        assert!(
            n2 >= 3.0 * before["n2"],
            "throttled, n2 took {n2} ms; before, {} ms",
            before["n2"]
        );
        assert!(
            n2 >= 3.0 * after["n2"],
            "throttled, n2 took {n2} ms; cleared, {} ms",
            after["n2"]
        );
    });
}

/// `throttle` on the command line: the memory limit is the engine's at once, `status --json` shows it,
/// an `up` of the same manifest keeps it, a container made again (removed outside) gets it back, and
/// `--clear` returns to the declared resources. Bad input changes nothing and exits 2.
#[test]
fn the_cli_throttles_keeps_it_across_up_and_refuses_bad_input_with_exit_2() {
    run(async {
        let name = unique("throttlecli");
        let file = TempFile::new(
            "throttle.yaml",
            &format!("name: {name}\nnodes: 2\ndefaults: {{resources: {{memory: 256m}}}}\n"),
        );
        let manifest = file.to_str().unwrap();
        let _guard = Teardown(name.clone());
        ok(&["up", manifest]).await;
        for (args, says) in [
            (
                vec!["throttle", "n1", "--cpus", "0"],
                "`cpus` 0 is out of range",
            ),
            (vec!["throttle", "n1", "--memory", "1k"], "at least 32 MiB"),
            (vec!["throttle", "n9", "--cpus", "0.5"], "n9"),
            (vec!["throttle", "n1"], "no limit given"),
            (vec!["throttle", "n1", "--cpus", "4096"], "out of range"),
            (vec!["throttle", "n1", "--cpus", "64"], "CPUs of the host"),
            (
                vec!["throttle", "n1", "--io-rate", "10m"],
                "cannot be applied at run time",
            ),
        ] {
            let out = regbox()
                .args(["-c", &name])
                .args(&args)
                .output()
                .await
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        }
        // No CPU limit declared: the engine reports 0.
        let declared = (Some(0), Some(256 << 20));
        assert_eq!(engine_limits(&name, "n1").await, declared);
        assert!(outside::containers(&name).await.iter().all(|c| c
            .labels
            .get("regbox.role")
            .map(String::as_str)
            != Some("throttle")));

        let set = on_json(
            &name,
            &[
                "--json", "throttle", "n1", "--memory", "64m", "--cpus", "0.5",
            ],
        )
        .await;
        assert_eq!(
            set,
            serde_json::json!({"n1": {"cpus": 0.5, "memory": 64 << 20}})
        );
        let throttled = (Some(500_000_000), Some(64 << 20));
        assert_eq!(engine_limits(&name, "n1").await, throttled);
        // A later throttle keeps the limits it does not name.
        on(&name, &["throttle", "n1", "--cpus", "0.25"]).await;
        let throttled = (Some(250_000_000), Some(64 << 20));
        assert_eq!(engine_limits(&name, "n1").await, throttled);
        let status = on_json(&name, &["--json", "status"]).await;
        assert_eq!(
            status[1]["throttle"],
            serde_json::json!({"cpus": 0.25, "memory": 64 << 20})
        );
        assert!(status[0].get("throttle").is_none(), "{status}");
        assert!(on(&name, &["status"])
            .await
            .contains("cpus 0.25, memory 64 MiB"));

        // The reconcile loop (`up`, the operator's) neither undoes the throttle nor remakes the node
        // for it; a node made again gets it back.
        ok(&["up", manifest]).await;
        assert_eq!(engine_limits(&name, "n1").await, throttled);
        outside::remove_container(&format!("regbox-{name}-n1")).await;
        ok(&["up", manifest]).await;
        assert_eq!(engine_limits(&name, "n1").await, throttled);
        on(&name, &["wait", "height", "0", "n1"]).await;

        let cleared = on_json(&name, &["--json", "throttle", "--clear"]).await;
        assert_eq!(cleared, serde_json::json!({}));
        // No CPU limit declared: the engine cannot lift a quota, so it is all of the host's CPUs.
        let cpus = outside::engine().info().await.unwrap().ncpu.unwrap();
        assert_eq!(
            engine_limits(&name, "n1").await,
            (Some(cpus * 1_000_000_000), Some(256 << 20))
        );
        assert!(on_json(&name, &["--json", "status"]).await[1]
            .get("throttle")
            .is_none());
        ok(&["down", &name]).await;
        assert!(leftovers(&name).await.is_empty());
    });
}

/// A soak with `--faults throttle`: each fault throttles its nodes (the engine holds the limit while it
/// lasts) and gives them back their declared resources at its end, the invariants hold after each,
/// and the report shows the faults on its timeline.
#[test]
fn a_soak_draws_throttle_faults_ends_them_and_its_invariants_hold() {
    use regbox::core::soak::EventKind;
    run(async {
        let soak = SoakRun::new("soakthr");
        let name = &soak.name;
        let args = "--duration 60s --seed 5 --gap 4s --hold 6s \
                    --faults throttle --steps 2 --rate 30 --json";
        let mut child = soak
            .command(&soak_manifest(), args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // While a fault holds, the engine holds its limit on each of its nodes.
        let mut seen = false;
        while child.try_wait().unwrap().is_none() {
            for c in outside::containers(name).await {
                let throttled = c.labels.get("regbox.role").map(String::as_str) == Some("throttle");
                let Some(node) = c.labels.get("regbox.node").filter(|_| throttled) else {
                    continue;
                };
                let limits: Limits = serde_json::from_str(&c.labels["regbox.throttle"]).unwrap();
                let (nano, _) = engine_limits(name, node).await;
                // The record is made after the update, and goes after the update back.
                if nano == limits.nano_cpus().map(|n| n as i64) {
                    seen = true;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let out = child.wait_with_output().await.unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(seen, "no throttle seen in the engine while the faults held");
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["ok"], true, "{summary}");

        let log = soak.log();
        let faults: Vec<(usize, String)> = (log.iter())
            .filter_map(|e| match &e.kind {
                EventKind::Fault { step, fault, .. } => Some((*step, fault.name().to_string())),
                _ => None,
            })
            .collect();
        assert_eq!(faults, [(0, "throttle".into()), (1, "throttle".into())]);
        let ends = (log.iter())
            .filter(|e| matches!(e.kind, EventKind::FaultEnd { .. }))
            .count();
        assert_eq!(ends, 2, "every throttle ends");
        for e in &log {
            if let EventKind::Invariant { ok, .. } = &e.kind {
                assert!(*ok, "{e:?}");
            }
        }
        let html = std::fs::read_to_string(&soak.report).unwrap();
        assert!(html.contains("throttle"), "the timeline names the fault");
        assert_eq!(leftovers(name).await, Vec::<String>::new());
    });
}
