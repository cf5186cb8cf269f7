//! Integration tests: clock faults, verified by what the nodes themselves say — a node 3 h ahead mines a
//! block its peers refuse as `time-too-new`, a node 90 min behind follows the chain with its offset in
//! its peers' `timeoffset`, and `clock --clear` lets everyone converge again.

use super::*;
use regbox::exec::Exec;
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
            offset: 3 * 3600,
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
            offset: 0,
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
                offset: 400 * 86_400,
            },
            Verb::Clock {
                nodes: Some(vec!["z".into()]),
                offset: 60,
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
