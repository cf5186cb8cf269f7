//! Integration tests: `reset` takes a cluster with every kind of fault back to its declared state on a
//! fresh chain, restarting bitcoind in place (the engine starts no container again); a snapshot
//! restored gives every node the same best block and wallet balances, also exported to a file and
//! imported into another cluster.

use super::*;
use regbox::exec::Exec;
use regbox::link::Shaping;
use regbox::throttle::Limits;
use regbox::{fault::Fault, Report, Verb};

/// Each container's id and when the engine last started it.
async fn starts(cluster: &Cluster) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for n in cluster.nodes() {
        let (info, _) = outside::inspect(&n.layout.container).await;
        let started = info.state.and_then(|s| s.started_at).unwrap_or_default();
        out.push((info.id.unwrap_or_default(), started));
    }
    out
}

async fn exec(cluster: &mut Cluster, verb: Verb) -> Report {
    cluster.exec(&verb, &Exec::default()).await.unwrap()
}

#[test]
fn a_reset_after_partitions_link_faults_held_and_killed_nodes_gives_the_declared_cluster_on_a_fresh_chain(
) {
    run(async {
        let name = unique("reset");
        let yaml = format!(
            "name: {name}\nnodes: 5\ntopology: ring\nlinks:\n  - {{from: n0, to: n1, delay: 30ms}}\n"
        );
        let (mut cluster, _guard) = up(manifest::parse(&yaml, "reset.yaml").unwrap()).await;
        let declared_links = cluster.status().await.unwrap();
        cluster.mine("n0", 20).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();
        let before = starts(&cluster).await;

        // Everything a test leaves behind: a partition, link faults, a throttle, a drifting clock, a
        // stopped node, a killed one, a paused one.
        cluster
            .partition(&PartitionKind::Halves, CutMode::Drop, WAIT)
            .await
            .unwrap();
        let delay = Shaping {
            delay_us: 200_000,
            ..Shaping::default()
        };
        exec(
            &mut cluster,
            Verb::Netem {
                nodes: Some(vec!["n2".into()]),
                to: None,
                shaping: delay,
            },
        )
        .await;
        exec(
            &mut cluster,
            Verb::Throttle {
                nodes: Some(vec!["n3".into()]),
                limits: Limits {
                    cpus: Some(0.5),
                    ..Limits::default()
                },
                clear: false,
            },
        )
        .await;
        exec(
            &mut cluster,
            Verb::Clock {
                nodes: Some(vec!["n4".into()]),
                offset: Some(3600),
                drift: Some(regbox::clock::Drift { gain: 1, per: 60 }),
            },
        )
        .await;
        cluster.fault("n1", Fault::Stop, WAIT).await.unwrap();
        cluster.fault("n3", Fault::Kill, WAIT).await.unwrap();
        cluster.fault("n4", Fault::Pause, WAIT).await.unwrap();

        let report = match exec(
            &mut cluster,
            Verb::Reset {
                to: None,
                timeout: None,
            },
        )
        .await
        {
            Report::Reset(r) => r,
            other => panic!("{other:?}"),
        };
        assert!(report.remade.is_empty(), "{report:?}");
        for cleared in ["holds", "throttles", "link faults", "partition"] {
            assert!(
                report.cleared.iter().any(|c| c.contains(cleared)),
                "{cleared} not in {:?}",
                report.cleared
            );
        }

        // Every node on a fresh chain, running, wired exactly as declared, with the declared link
        // faults and nothing else.
        let genesis: String = cluster.nodes()[0]
            .rpc
            .call("getblockhash", serde_json::json!([0]))
            .await
            .unwrap();
        let status = cluster.status().await.unwrap();
        for (s, d) in status.iter().zip(&declared_links) {
            assert_eq!(s.state.word(), "running", "{s:?}");
            assert_eq!(s.height, Some(0), "{s:?}");
            assert_eq!(s.best_hash.as_deref(), Some(genesis.as_str()));
            assert_eq!(s.segments, d.segments, "{s:?}");
            assert_eq!(s.peers, d.peers, "{s:?}");
            assert_eq!(s.links, d.links, "{s:?}");
            assert_eq!((s.clock, s.drift, s.throttle), (None, None, None), "{s:?}");
        }
        assert_eq!(graph(&cluster).await, cluster.expected_graph());
        assert_eq!(report.nodes.len(), 5);
        assert!(report.nodes.iter().all(|n| n.height == 0));

        // No container was made again; only the stopped and the killed node were started by the
        // engine (the others restarted bitcoind in place).
        let after = starts(&cluster).await;
        for (i, ((id0, t0), (id1, t1))) in before.iter().zip(&after).enumerate() {
            assert_eq!(id0, id1, "n{i} was made again");
            let restarted_by_engine = t0 != t1;
            assert_eq!(
                restarted_by_engine,
                i == 1 || i == 3,
                "n{i}: {t0} then {t1}"
            );
        }

        // The chain is new: a block mined now is at height 1 everywhere.
        cluster.mine("n2", 1).await.unwrap();
        let tip = cluster.sync_blocks(WAIT).await.unwrap();
        let header = cluster.nodes()[0].rpc.get_block_header(&tip).await.unwrap();
        assert_eq!(header.height, 1);

        // A reset of running nodes asks each init over TCP: the engine sees no call on any node's
        // container (no signal, no file written or read). A clock set on a running node goes back
        // to the declared one all the same.
        exec(
            &mut cluster,
            Verb::Clock {
                nodes: Some(vec!["n0".into()]),
                offset: Some(-600),
                drift: Some(regbox::clock::Drift { gain: 1, per: 60 }),
            },
        )
        .await;
        let since = outside::event_time();
        cluster.reset(None, WAIT).await.unwrap();
        let until = outside::event_time();
        let ids: Vec<String> = after.iter().map(|(id, _)| id.clone()).collect();
        let events = outside::container_events(&name, &since, &until).await;
        // The lock's marker was made and removed meanwhile: the engine's events were read.
        assert!(
            events.iter().any(|(_, action)| action == "create"),
            "{events:?}"
        );
        let on_nodes: Vec<&(String, String)> =
            events.iter().filter(|(id, _)| ids.contains(id)).collect();
        assert!(
            on_nodes.is_empty(),
            "engine events on node containers during a reset: {on_nodes:?}"
        );
        for s in cluster.status().await.unwrap() {
            assert_eq!((s.height, s.clock, s.drift), (Some(0), None, None), "{s:?}");
        }
        assert_eq!(graph(&cluster).await, cluster.expected_graph());
    });
}

#[test]
fn a_snapshot_restored_gives_every_node_the_same_best_block_and_balances_here_and_after_import() {
    run(async {
        let name = unique("snap");
        let yaml = format!("name: {name}\nnodes: 3\ntopology: line\ndefaults: {{wallet: true}}\n");
        let spec = manifest::parse(&yaml, "snap.yaml").unwrap();
        let (mut cluster, _guard) = up(spec.clone()).await;
        cluster.mine("n0", 101).await.unwrap();
        cluster.send("n0", "n1", 150_000_000).await.unwrap();
        cluster.send("n0", "n2", 70_000_000).await.unwrap();
        cluster.mine("n0", 1).await.unwrap();
        // One more payment waits in every mempool: the snapshot keeps it.
        cluster.send("n1", "n2", 20_000_000).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();
        cluster.sync_mempools(WAIT).await.unwrap();

        let balances = async |c: &Cluster| {
            let mut out = Vec::new();
            for n in c.nodes() {
                let b: serde_json::Value = n
                    .rpc
                    .call("getbalances", serde_json::json!([]))
                    .await
                    .unwrap();
                out.push((
                    b["mine"]["trusted"].clone(),
                    b["mine"]["untrusted_pending"].clone(),
                ));
            }
            out
        };
        let saved = cluster.snapshot("funded", WAIT).await.unwrap();
        assert_eq!(saved.nodes.len(), 3);
        assert!(saved.nodes.iter().all(|n| n.height == 102), "{saved:?}");
        let tip = saved.nodes[0].best_hash.clone();
        let funded = balances(&cluster).await;
        assert_eq!(graph(&cluster).await, cluster.expected_graph());

        // The chain moves on, then the snapshot takes every node back.
        cluster.mine("n2", 5).await.unwrap();
        cluster.send("n0", "n2", 10_000_000).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();
        assert_ne!(balances(&cluster).await, funded);
        let reset = cluster.reset(Some("funded"), WAIT).await.unwrap();
        assert!(reset.nodes.iter().all(|n| n.best_hash == tip), "{reset:?}");
        assert_eq!(balances(&cluster).await, funded);
        assert_eq!(cluster.sync_mempools(WAIT).await.unwrap(), 1);
        assert_eq!(graph(&cluster).await, cluster.expected_graph());

        // Exported, and imported into another cluster with the same node names.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("funded.tar.gz");
        let exported = cluster.export_snapshot("funded", &file).await.unwrap();
        assert_eq!(exported.nodes, ["n0", "n1", "n2"]);
        assert!(exported.bytes > 0);
        let mut other_spec = spec.clone();
        other_spec.name = unique("snap2");
        let (mut other, _other_guard) = up(other_spec).await;
        let imported = other.import_snapshot(&file, Some("copy")).await.unwrap();
        assert_eq!(imported.name, "copy");
        let again = other.import_snapshot(&file, Some("copy")).await;
        assert!(again.as_ref().is_err_and(|e| e.is_bad_input()), "{again:?}");
        other.reset(Some("copy"), WAIT).await.unwrap();
        assert_eq!(other.sync_blocks(WAIT).await.unwrap(), tip);
        assert_eq!(balances(&other).await, funded);

        // Refused before anything changes: an unknown snapshot, a bad name, a file of other nodes.
        let unknown = cluster.reset(Some("nope"), WAIT).await.unwrap_err();
        assert!(unknown.is_bad_input(), "{unknown}");
        assert!(
            unknown.to_string().contains("no snapshot `nope`"),
            "{unknown}"
        );
        let bad = cluster.snapshot("../x", WAIT).await.unwrap_err();
        assert!(bad.is_bad_input(), "{bad}");
        let small = unique("snap3");
        let (mut two, _two_guard) = up(ring(&small, 2)).await;
        let refused = two.import_snapshot(&file, None).await.unwrap_err();
        assert!(
            refused.to_string().contains("only in the file: [n2]"),
            "{refused}"
        );
        assert_eq!(cluster.sync_blocks(WAIT).await.unwrap(), tip);
    });
}
