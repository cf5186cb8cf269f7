//! Integration tests: clock faults, verified by what the nodes themselves say — a node 3 h ahead mines a
//! block its peers refuse as `time-too-new`, a node 90 min behind follows the chain with its offset in
//! its peers' `timeoffset`, and `clock --clear` lets everyone converge again; a drifting clock's blocks
//! carry its time, gaining at its rate, across a restart and when set while the node is paused.

use super::*;
use regbox::clock::Drift;
use regbox::exec::Exec;
use regbox::fault::Fault;
use regbox::wait;
use regbox::{Report, Verb};
use serde_json::{json, Value};

/// A peer entry of `node` whose user agent names `peer`.
async fn peer_entry(cluster: &Cluster, node: &str, peer: &str) -> Option<Value> {
    let peers: Vec<Value> = cluster
        .node(node)
        .unwrap()
        .rpc
        .call("getpeerinfo", json!([]))
        .await
        .unwrap();
    let tag = format!("({peer})");
    peers
        .into_iter()
        .find(|p| p["subver"].as_str().is_some_and(|s| s.contains(&tag)))
}

async fn call(cluster: &Cluster, node: &str, method: &str, params: Value) -> Value {
    cluster
        .node(node)
        .unwrap()
        .rpc
        .call(method, params)
        .await
        .unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn a_node_ahead_mines_alone_a_node_behind_follows_and_clear_brings_them_together() {
    run(async {
        let name = unique("clock");
        let yaml = format!(
            "name: {name}\nnodes:\n  - name: a\n  - name: b\n  - name: c\n    clock: -90m\ntopology: line\n"
        );
        let (mut cluster, _guard) = up(manifest::parse(&yaml, "clock.yaml").unwrap()).await;
        let how = Exec::default();

        // Declared in the manifest: c is 90 minutes behind from its first reading, as its peer sees
        // in the version handshake, and `status` (CLI, JSON) says so.
        let c_seen = peer_entry(&cluster, "b", "c").await.expect("b lists c");
        let offset = c_seen["timeoffset"].as_i64().unwrap();
        assert!((offset + 5400).abs() <= 5, "b sees c at {offset}s");
        let status = ok_json(&["-c", &name, "status", "--json"]).await;
        let clocks: Vec<Value> = status
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["clock"].clone())
            .collect();
        assert_eq!(clocks, vec![Value::Null, Value::Null, json!(-5400)]);

        // b jumps 3 h ahead at run time: more than bitcoind's inactivity timeout, so its sessions
        // drop; the verb waits them out and wires its declared edges again.
        let verb = Verb::Clock {
            nodes: Some(vec!["b".into()]),
            offset: Some(3 * 3600),
            drift: None,
        };
        match cluster.exec(&verb, &how).await.unwrap() {
            Report::Clocks(c) => assert_eq!(c.nodes.len(), 1),
            other => panic!("{other:?}"),
        }
        let mut edges: Vec<_> = graph(&cluster).await.edges().collect();
        edges.sort();
        assert_eq!(edges, vec![(0, 1), (1, 2)]);
        // A session that had traffic at the jump survives it with the offset of its handshake: a new
        // one shows b's new clock.
        cluster.disconnect("a", "b", WAIT).await.unwrap();
        cluster.connect("a", "b", WAIT).await.unwrap();
        let a_seen = peer_entry(&cluster, "a", "b").await.expect("a lists b");
        let offset = a_seen["timeoffset"].as_i64().unwrap();
        assert!((offset - 10_800).abs() <= 5, "a sees b at {offset}s");

        // b's block carries b's time; a and c refuse it as too far in the future, so b stays alone.
        let mined = cluster.mine("b", 1).await.unwrap();
        let header = call(&cluster, "b", "getblockheader", json!([mined[0]])).await;
        let ahead = header["time"].as_i64().unwrap() - now();
        assert!((ahead - 10_800).abs() <= 60, "b's block is {ahead}s ahead");
        let block = call(&cluster, "b", "getblock", json!([mined[0], 0])).await;
        for peer in ["a", "c"] {
            let answer = call(&cluster, peer, "submitblock", json!([block])).await;
            assert_eq!(answer, json!("time-too-new"), "{peer}");
            // b announced it to them (they received its header), and they hold none of it.
            wait::wait_until(
                &format!("{peer} hears of b's block"),
                WAIT,
                Duration::from_millis(100),
                || async {
                    let entry = peer_entry(&cluster, peer, "b").await;
                    let got = entry.is_some_and(|e| {
                        ["cmpctblock", "headers", "inv"]
                            .iter()
                            .any(|m| e["bytesrecv_per_msg"][m].as_u64().unwrap_or(0) > 0)
                    });
                    Ok::<_, regbox::Error>(if got {
                        wait::Check::Ready(())
                    } else {
                        wait::Check::Pending("not yet".into())
                    })
                },
            )
            .await
            .unwrap();
            let tips = call(&cluster, peer, "getchaintips", json!([])).await;
            assert!(
                !tips.to_string().contains(&mined[0]),
                "{peer} holds b's block: {tips}"
            );
            assert_eq!(call(&cluster, peer, "getblockcount", json!([])).await, 0);
        }

        // Back to the host's clock, one block more elsewhere: everyone converges, c (still 90 min
        // behind) included; b's block is a stale branch.
        let clear = Verb::Clock {
            nodes: Some(vec!["b".into()]),
            offset: Some(0),
            drift: None,
        };
        cluster.exec(&clear, &how).await.unwrap();
        let hashes = cluster.mine("a", 2).await.unwrap();
        let tip = cluster.sync_blocks(WAIT).await.unwrap();
        assert_eq!(&tip, hashes.last().unwrap());
        let tips = call(&cluster, "b", "getchaintips", json!([])).await;
        assert!(tips.to_string().contains(&mined[0]), "{tips}");
        let clocks: Vec<Option<i64>> = (cluster.status().await.unwrap())
            .into_iter()
            .map(|s| s.clock)
            .collect();
        assert_eq!(clocks, vec![None, None, Some(-5400)]);

        // Over the limit, or naming an unknown node: refused as bad input, nothing changed.
        for verb in [
            Verb::Clock {
                nodes: Some(vec!["b".into()]),
                offset: Some(400 * 86_400),
                drift: None,
            },
            Verb::Clock {
                nodes: Some(vec!["z".into()]),
                offset: Some(60),
                drift: None,
            },
            Verb::Clock {
                nodes: Some(vec!["b".into()]),
                offset: None,
                drift: None,
            },
        ] {
            let err = cluster.exec(&verb, &how).await.unwrap_err();
            assert!(err.is_bad_input(), "{err}");
        }
        let out = regbox()
            .args(["-c", &name, "clock", "a", "--offset", "3 hours"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("+3h"), "{}", stderr(&out));

        // `clock --clear` with no node: every clock back to the host's.
        ok(&["-c", &name, "clock", "--clear"]).await;
        let status = cluster.status().await.unwrap();
        assert!(status.iter().all(|s| s.clock.is_none()), "{status:?}");
    });
}

/// A block mined on a node: its time (the node's clock when it was made, in whole seconds), and the
/// host's clock just before the mining call and just after it (Unix milliseconds).
#[derive(Debug, Clone, Copy)]
struct Mined {
    time: i64,
    before: i64,
    after: i64,
}

impl Mined {
    /// How far the block's time is ahead of the host's clock when the call began.
    fn ahead(&self) -> i64 {
        self.time - self.before / 1000
    }
}

async fn mine_one(cluster: &Cluster, node: &str) -> Mined {
    let before = now_ms();
    let mined = cluster.mine(node, 1).await.unwrap();
    let after = now_ms();
    let header = call(cluster, node, "getblockheader", json!([mined[0]])).await;
    let time = header["time"].as_i64().unwrap();
    Mined {
        time,
        before,
        after,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The offset `status` gives `node` now, and its drift.
async fn status_clock(cluster: &Cluster, node: &str) -> (Option<i64>, Option<Drift>) {
    let status = cluster.status().await.unwrap();
    let s = status.iter().find(|s| s.name == node).unwrap();
    (s.clock, s.drift)
}

/// That the node's clock ran at `rate` times the host's between two blocks: the blocks' times are
/// as far apart as such a clock runs between the mining calls (each made somewhere within its call;
/// a second either way for the blocks' whole seconds).
fn assert_rate(what: &str, first: Mined, second: Mined, rate: f64) {
    let least = rate * (second.before - first.after) as f64 / 1000.0 - 1.0;
    let most = rate * (second.after - first.before) as f64 / 1000.0 + 1.0;
    let got = (second.time - first.time) as f64;
    assert!(
        (least..=most).contains(&got),
        "{what}: {got}s between its blocks, a clock at {rate}x runs {least:.1}s to {most:.1}s ({first:?}, {second:?})"
    );
}

#[test]
fn a_drifting_clock_gains_at_its_rate_across_a_restart_and_set_while_paused() {
    run(async {
        let name = unique("drift");
        // b, declared: 10 minutes ahead from when its container is made, gaining 9 s a second.
        let yaml = format!(
            "name: {name}\nnodes:\n  - name: a\n  - name: b\n    clock: {{offset: +10m, drift: +9s/s}}\ntopology: line\n"
        );
        let (mut cluster, _guard) = up(manifest::parse(&yaml, "drift.yaml").unwrap()).await;
        let how = Exec::default();
        let fast = Drift { gain: 9, per: 1 };
        let (offset, drift) = status_clock(&cluster, "b").await;
        assert_eq!(drift, Some(fast));
        assert!(offset.unwrap() > 600, "{offset:?}");
        assert_eq!(status_clock(&cluster, "a").await, (None, None));

        // b's blocks carry its clock: ahead by what `status` says, gaining 9 s a second.
        let first = mine_one(&cluster, "b").await;
        let (said, _) = status_clock(&cluster, "b").await;
        assert!(
            (said.unwrap() - first.ahead()).abs() <= 30,
            "status {said:?}, block {first:?}"
        );
        let still = std::time::Instant::now();
        // The clock's rate is measured over time: a window of two seconds of the host's.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(still.elapsed() >= Duration::from_secs(2));
        let second = mine_one(&cluster, "b").await;
        assert_rate("b", first, second, 10.0);

        // Restarted, b's new bitcoind goes on from where the clock is, not from its declared +10m.
        cluster.fault("b", Fault::Restart, WAIT).await.unwrap();
        let third = mine_one(&cluster, "b").await;
        assert_rate("b across its restart", second, third, 10.0);

        // Set while a is paused (its bitcoind frozen), through the CLI: 1 h ahead, gaining 5 s a
        // second from then on, once it thaws.
        cluster.fault("a", Fault::Pause, WAIT).await.unwrap();
        let set_before = now_ms();
        let set = ok_json(&[
            "-c", &name, "clock", "a", "--offset", "+1h", "--drift", "+5s/s", "--json",
        ])
        .await;
        assert_eq!(
            set["nodes"],
            json!([{"node": "a", "offset": 3600, "drift": "+5s/s"}])
        );
        let set_after = now_ms();
        cluster.fault("a", Fault::Unpause, WAIT).await.unwrap();
        // Its clock: the host's, 3600 s, and 5 s for every second since it was set (somewhere within
        // the CLI's call).
        let first = mine_one(&cluster, "a").await;
        let clock_at = |host_ms: i64, set_ms: i64| {
            (host_ms as f64 + 3_600_000.0 + 5.0 * (host_ms - set_ms) as f64) / 1000.0
        };
        let least = clock_at(first.before, set_after) - 1.0;
        let most = clock_at(first.after, set_before) + 1.0;
        assert!(
            (least..=most).contains(&(first.time as f64)),
            "a's block at {first:?}: want {least:.1} to {most:.1} (set between {set_before} and {set_after})"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let second = mine_one(&cluster, "a").await;
        assert_rate("a", first, second, 6.0);
        // `--drift` alone keeps the offset a has now; `status --json` says both.
        ok(&["-c", &name, "clock", "a", "--drift", "-30s/min"]).await;
        let status = ok_json(&["-c", &name, "status", "--json"]).await;
        let a = &status.as_array().unwrap()[0];
        assert_eq!(a["drift"], json!("-30s/min"));
        assert!(a["clock"].as_i64().unwrap() >= second.ahead() - 1, "{a}");

        // Cleared, every clock is the host's and none drifts.
        let clear = Verb::Clock {
            nodes: None,
            offset: Some(0),
            drift: Some(Drift::NONE),
        };
        cluster.exec(&clear, &how).await.unwrap();
        for node in ["a", "b"] {
            assert_eq!(status_clock(&cluster, node).await, (None, None), "{node}");
        }
        // A drift out of bounds is refused as bad input.
        let out = regbox()
            .args(["-c", &name, "clock", "a", "--drift", "+10s/s"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("0.1 to 10 times"), "{}", stderr(&out));
    });
}

/// A soak with `--faults clock,disk` on a ring whose n1 declares a bounded disk: seed 22 draws a clock
/// 59 minutes behind, n1's disk filled, then a clock 51 minutes behind and drifting; each is set and
/// ended (the host's clock again, not drifting; the disk freed and the node started), the invariants
/// hold after each, and the report shows them on its timeline.
#[test]
fn a_soak_draws_clock_and_disk_faults_ends_them_and_its_invariants_hold() {
    use regbox::core::soak::EventKind;
    run(async {
        let soak = SoakRun::new("soakclk");
        let name = &soak.name;
        let manifest = soak.dir.path().join("soak.yaml");
        std::fs::write(
            &manifest,
            format!(
                "name: {name}\nnodes:\n  - {{name: n0, wallet: true}}\n  - {{name: n1, disk: {{size: 300m}}}}\n  - {{name: n2, wallet: true}}\n  - {{name: n3}}\ntopology: ring\n"
            ),
        )
        .unwrap();
        let args = "--duration 36s --seed 22 --gap 3s --hold 5s \
                    --faults clock,disk --steps 3 --rate 30 --json";
        let out = soak.command(&manifest, args).output().await.unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["ok"], true, "{summary}");

        let log = soak.log();
        let faults: Vec<String> = (log.iter())
            .filter_map(|e| match &e.kind {
                EventKind::Fault { detail, .. } => Some(detail.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(faults.len(), 3, "{faults:?}");
        assert!(faults[0].starts_with("clock of n2 at -59m,"), "{faults:?}");
        assert!(faults[1].starts_with("fill the disk of n1"), "{faults:?}");
        assert!(faults[2].contains("drifting -20s/min"), "{faults:?}");
        let ends = (log.iter())
            .filter(|e| matches!(e.kind, EventKind::FaultEnd { .. }))
            .count();
        assert_eq!(ends, 3, "every fault ends");
        let invariants: Vec<bool> = (log.iter())
            .filter_map(|e| match &e.kind {
                EventKind::Invariant { ok, .. } => Some(*ok),
                _ => None,
            })
            .collect();
        assert!(
            invariants.len() >= 3 && invariants.iter().all(|ok| *ok),
            "{log:?}"
        );
        let html = std::fs::read_to_string(&soak.report).unwrap();
        assert!(
            html.contains("drifting -20s/min"),
            "the timeline names the drifting clock"
        );
        assert!(
            html.contains("fill the disk of n1"),
            "the timeline names the disk fault"
        );
        assert_eq!(leftovers(name).await, Vec::<String>::new());
    });
}
