//! Integration tests: partitions by segments, silent cuts, heal, node faults.

use super::*;

pub(crate) async fn tips(cluster: &Cluster) -> Vec<String> {
    let mut out = Vec::new();
    for n in cluster.nodes() {
        out.push(n.rpc.get_best_block_hash().await.unwrap());
    }
    out
}

/// Every node's peer ids, sorted: unchanged ids mean untouched sessions.
pub(crate) async fn peer_ids(cluster: &Cluster) -> Vec<Vec<i64>> {
    let mut out = Vec::new();
    for n in cluster.nodes() {
        let mut ids: Vec<i64> = n
            .rpc
            .get_peer_info()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect();
        ids.sort();
        out.push(ids);
    }
    out
}

/// Mines on `miner`, waits until its own side has the block, and checks that no node of `other` has it.
pub(crate) async fn isolation_shown_by_the_chain(
    cluster: &Cluster,
    miner: usize,
    side: &[usize],
    other: &[usize],
) {
    let before = tips(cluster).await;
    let hash = cluster
        .mine(&miner.to_string(), 1)
        .await
        .unwrap()
        .pop()
        .unwrap();
    let side_nodes: Vec<_> = side.iter().map(|&i| cluster.nodes()[i].clone()).collect();
    let tip = regbox::wait::sync_blocks(&side_nodes, WAIT).await.unwrap();
    assert_eq!(tip, hash);
    let after = tips(cluster).await;
    for &o in other {
        assert_eq!(
            after[o], before[o],
            "node {o} saw a block mined across the partition"
        );
    }
}

#[test]
fn halves_cut_the_ring_and_heal_reorganises_everyone_onto_the_most_work_tip() {
    run(async {
        let name = unique("halves");
        let (mut cluster, _guard) = up(ring(&name, 4)).await;
        cluster.mine("n0", 101).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();

        let report = cluster
            .partition(&PartitionKind::Halves, CutMode::Drop, WAIT)
            .await
            .unwrap();
        assert_eq!(report.segments.len(), 2);
        assert_eq!(
            report.segments[0].members,
            vec!["n0", "n1"],
            "the larger/first group stays on the base segment"
        );
        assert_eq!(report.segments[1].members, vec!["n2", "n3"]);
        // Drop mode: only the edges inside each half are left, as the nodes report them.
        assert_eq!(edges(&graph(&cluster).await), vec![(0, 1), (2, 3)]);
        isolation_shown_by_the_chain(&cluster, 0, &[0, 1], &[2, 3]).await;
        isolation_shown_by_the_chain(&cluster, 2, &[2, 3], &[0, 1]).await;
        cluster.mine("n2", 2).await.unwrap(); // the 2-3 side now has 3 blocks against 1

        // Applying the same partition again moves nothing and touches no session.
        let before = peer_ids(&cluster).await;
        let again = cluster
            .partition(&PartitionKind::Halves, CutMode::Drop, WAIT)
            .await
            .unwrap();
        assert_eq!(again.segments.len(), 2);
        assert_eq!(peer_ids(&cluster).await, before);

        let healed = cluster.heal_and_sync(WAIT).await.unwrap();
        assert_eq!(
            edges(&graph(&cluster).await),
            vec![(0, 1), (0, 3), (1, 2), (2, 3)]
        );
        assert_eq!(healed.height, 104);
        let depth: Vec<u64> = healed.nodes.iter().map(|n| n.reorg_depth).collect();
        assert_eq!(depth, vec![1, 1, 0, 0]);
        // Every segment but the base one is gone, every node back on its original address.
        assert_eq!(outside::networks(Some(&name)).await.len(), 2);
        for c in outside::containers(&name).await {
            if let Some(node) = c.labels.get("regbox.node") {
                let i: usize = node[1..].parse().unwrap();
                let data = c
                    .networks
                    .get(&format!("regbox-{name}-data"))
                    .cloned()
                    .flatten();
                assert_eq!(data, Some(cluster.nodes()[i].layout.data_ip), "{node}");
            }
        }
    });
}

#[test]
fn every_generated_kind_and_explicit_groups_give_the_expected_graph() {
    run(async {
        let name = unique("kinds");
        let spec = cluster_spec(&name, 6, "mesh");
        let (mut cluster, _guard) = up(spec).await;
        cluster.mine("n0", 1).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();
        let all = |g: &[usize]| -> Vec<(usize, usize)> {
            let mut e = Vec::new();
            for (i, &a) in g.iter().enumerate() {
                for &b in &g[i + 1..] {
                    e.push((a.min(b), a.max(b)));
                }
            }
            e
        };
        let union = |parts: Vec<Vec<(usize, usize)>>| {
            let mut e: Vec<_> = parts.concat();
            e.sort();
            e.dedup();
            e
        };
        // Explicit groups; n4 and n5 are not named, so they form a third group.
        let groups = PartitionKind::Groups(vec![
            vec!["n0".into(), "1".into()],
            vec!["n2".into(), "n3".into()],
        ]);
        cluster
            .partition(&groups, CutMode::Drop, WAIT)
            .await
            .unwrap();
        assert_eq!(
            edges(&graph(&cluster).await),
            union(vec![all(&[0, 1]), all(&[2, 3]), all(&[4, 5])])
        );
        isolation_shown_by_the_chain(&cluster, 4, &[4, 5], &[0, 1, 2, 3]).await;

        // Replacing it: each kind applied on top of the previous one.
        cluster
            .partition(&PartitionKind::Isolate("n5".into()), CutMode::Drop, WAIT)
            .await
            .unwrap();
        assert_eq!(edges(&graph(&cluster).await), all(&[0, 1, 2, 3, 4]));
        isolation_shown_by_the_chain(&cluster, 0, &[0, 1, 2, 3, 4], &[5]).await;

        cluster
            .partition(&PartitionKind::Bridge, CutMode::Drop, WAIT)
            .await
            .unwrap();
        let report = cluster.report();
        let on_two: Vec<usize> = (0..6)
            .filter(|i| {
                report
                    .segments
                    .iter()
                    .filter(|s| s.members.contains(&format!("n{i}")))
                    .count()
                    == 2
            })
            .collect();
        assert_eq!(on_two.len(), 1, "one bridge node: {report:?}");
        let b = on_two[0];
        let halves: Vec<Vec<usize>> = report
            .segments
            .iter()
            .map(|s| s.members.iter().map(|m| m[1..].parse().unwrap()).collect())
            .collect();
        assert_eq!(halves.len(), 2);
        assert!(halves.iter().all(|h| h.contains(&b)));
        assert_eq!(
            edges(&graph(&cluster).await),
            union(halves.iter().map(|h| all(h)).collect())
        );

        cluster
            .partition(
                &PartitionKind::RandomHalves { seed: 7 },
                CutMode::Drop,
                WAIT,
            )
            .await
            .unwrap();
        let report = cluster.report();
        let halves: Vec<Vec<usize>> = report
            .segments
            .iter()
            .map(|s| s.members.iter().map(|m| m[1..].parse().unwrap()).collect())
            .collect();
        assert_eq!(halves.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3]);
        assert_eq!(
            edges(&graph(&cluster).await),
            union(halves.iter().map(|h| all(h)).collect())
        );

        // Majorities ring on 6: majority 4; each node sees itself and the nodes within ring distance 2,
        // so in a mesh exactly the pairs at distance 3 (opposite nodes) lose their connection.
        cluster
            .partition(&PartitionKind::MajoritiesRing, CutMode::Drop, WAIT)
            .await
            .unwrap();
        let expected: Vec<(usize, usize)> = all(&[0, 1, 2, 3, 4, 5])
            .into_iter()
            .filter(|&(a, b)| b - a != 3)
            .collect();
        assert_eq!(edges(&graph(&cluster).await), expected);

        cluster.heal(WAIT).await.unwrap();
        assert_eq!(edges(&graph(&cluster).await), all(&[0, 1, 2, 3, 4, 5]));
        cluster.sync_blocks(WAIT).await.unwrap();
    });
}

#[test]
fn silent_cut_freezes_sessions_and_heal_resumes_them_with_the_same_peer_ids() {
    run(async {
        let name = unique("silent");
        let (mut cluster, _guard) = up(ring(&name, 4)).await;
        let ids = |peers: Vec<regbox::rpc::PeerInfo>| {
            let mut v: Vec<(i64, String)> = peers.into_iter().map(|p| (p.id, p.subver)).collect();
            v.sort();
            v
        };
        let mut before = Vec::new();
        for n in cluster.nodes() {
            before.push(ids(n.rpc.get_peer_info().await.unwrap()));
        }
        cluster
            .partition(&PartitionKind::Halves, CutMode::Silent, WAIT)
            .await
            .unwrap();
        // The cross sessions (n1-n2 and n3-n0) are still listed: no reset reached either side.
        let n1 = cluster
            .node("n1")
            .unwrap()
            .rpc
            .get_peer_info()
            .await
            .unwrap();
        assert!(
            n1.iter().any(|p| p.subver.contains("(n2)")),
            "n1 still lists n2"
        );
        // ...but no block crosses them.
        isolation_shown_by_the_chain(&cluster, 0, &[0, 1], &[2, 3]).await;

        cluster.heal(WAIT).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();
        // The base group's and the frozen cross sessions are the same sessions (same peer ids); only the
        // n2-n3 session, re-made over the partition segment and back, is new.
        let after_n1 = ids(cluster
            .node("n1")
            .unwrap()
            .rpc
            .get_peer_info()
            .await
            .unwrap());
        assert_eq!(after_n1, before[1]);
        let after_n0 = ids(cluster
            .node("n0")
            .unwrap()
            .rpc
            .get_peer_info()
            .await
            .unwrap());
        assert_eq!(after_n0, before[0]);
        assert_eq!(
            edges(&graph(&cluster).await),
            vec![(0, 1), (0, 3), (1, 2), (2, 3)]
        );
    });
}

#[test]
fn heal_when_not_partitioned_and_invalid_partitions_change_nothing() {
    run(async {
        let name = unique("noop");
        let (mut cluster, _guard) = up(ring(&name, 4)).await;
        let before = peer_ids(&cluster).await;
        cluster.heal(WAIT).await.unwrap();
        assert_eq!(
            peer_ids(&cluster).await,
            before,
            "heal of a healed cluster touched sessions"
        );

        let bad = [
            PartitionKind::Groups(vec![vec!["n0".into(), "n9".into()]]),
            PartitionKind::Groups(vec![
                vec!["n0".into(), "n1".into()],
                vec!["n1".into(), "n2".into()],
            ]),
            PartitionKind::Groups(vec![vec![
                "n0".into(),
                "n1".into(),
                "n2".into(),
                "n3".into(),
            ]]),
            PartitionKind::Groups(vec![vec![], vec!["n1".into()]]),
            PartitionKind::Isolate("zed".into()),
        ];
        for kind in &bad {
            let err = cluster
                .partition(kind, CutMode::Drop, WAIT)
                .await
                .unwrap_err();
            assert!(err.is_bad_input(), "{kind:?}: {err}");
        }
        // The CLI says exit 2 and nothing changes.
        let out = regbox()
            .args(["-c", &name, "partition", "n0,n1", "n1,n2"])
            .output()
            .await
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = regbox()
            .args(["-c", &name, "partition", "--halves", "--bridge"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(outside::networks(Some(&name)).await.len(), 2);
        assert_eq!(peer_ids(&cluster).await, before);
    });
}

#[test]
fn node_faults_are_survived_and_rewired() {
    run(async {
        use regbox::fault::Fault;
        let name = unique("faults");
        let (mut cluster, _guard) = up(ring(&name, 4)).await;
        cluster.fault("n1", Fault::Stop, WAIT).await.unwrap();
        cluster.mine("n0", 2).await.unwrap();
        cluster.fault("n1", Fault::Start, WAIT).await.unwrap();
        assert_eq!(
            edges(&graph(&cluster).await),
            vec![(0, 1), (0, 3), (1, 2), (2, 3)]
        );
        cluster.sync_blocks(WAIT).await.unwrap();

        cluster.fault("n2", Fault::Pause, WAIT).await.unwrap();
        cluster.fault("n2", Fault::Unpause, WAIT).await.unwrap();
        cluster.fault("n3", Fault::Kill, WAIT).await.unwrap();
        cluster.fault("n3", Fault::Start, WAIT).await.unwrap();
        cluster.fault("n0", Fault::Restart, WAIT).await.unwrap();
        cluster.verify(false).await.unwrap();
        cluster.mine("n3", 1).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();
        assert!(cluster
            .status()
            .await
            .unwrap()
            .iter()
            .all(|s| s.height == Some(3)));
    });
}

/// A node whose container was removed outside regbox: a partition, a heal and a node fault say so and
/// how to repair it (they leave containers as they are), instead of the engine's "no such container";
/// `up` makes it again.
#[test]
fn a_node_removed_outside_regbox_is_named_with_the_repair() {
    run(async {
        let name = unique("gone");
        let (_cluster, _guard) = up(ring(&name, 4)).await;
        outside::remove_container(&format!("regbox-{name}-n2")).await;
        let expected = format!(
            "node `n2` of cluster `{name}` has no container (removed outside regbox?); `regbox up` \
             makes it again"
        );
        for args in [
            vec!["partition", "--halves"],
            vec!["heal"],
            vec!["restart", "n0"],
        ] {
            let out = regbox()
                .args(["-c", &name])
                .args(&args)
                .output()
                .await
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
            assert!(
                stderr(&out).contains(&expected),
                "{args:?}: {}",
                stderr(&out)
            );
        }
        let manifest = TempFile::new(
            "gone.yaml",
            &format!("name: {name}\nnodes: 4\ntopology: ring\n"),
        );
        ok(&["-c", &name, "up", manifest.to_str().unwrap()]).await;
        ok(&["-c", &name, "partition", "--halves"]).await;
        ok(&["-c", &name, "heal"]).await;
    });
}
