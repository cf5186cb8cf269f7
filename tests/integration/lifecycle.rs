//! Integration tests: bringing clusters up and down, the CLI end to end, Ctrl-C during up.

use super::*;

#[test]
fn ring4_comes_up_verified_mines_to_all_and_goes_down_without_leftovers() {
    run(async {
        let name = unique("ring4");
        let (cluster, _guard) = up(load("ring4.yaml", &name)).await;
        // The nodes themselves report exactly the ring.
        let g = graph(&cluster).await;
        let mut edges: Vec<_> = g.edges().collect();
        edges.sort();
        assert_eq!(edges, vec![(0, 1), (0, 3), (1, 2), (2, 3)]);

        let hashes = cluster.mine("n0", 101).await.unwrap();
        assert_eq!(hashes.len(), 101);
        let tip = cluster.sync_blocks(WAIT).await.unwrap();
        assert_eq!(&tip, hashes.last().unwrap());
        for status in cluster.status().await.unwrap() {
            assert_eq!(status.height, Some(101), "{status:?}");
            assert_eq!(status.peers.len(), 2, "{status:?}");
        }

        let report = cluster.down(&Progress::default()).await.unwrap();
        assert_eq!(
            (report.containers, report.volumes, report.networks),
            (5, 4, 2)
        );
        // Every node's bitcoind was stopped where it was (over TCP, by its init) before the engine
        // began to detach and remove.
        assert_eq!(report.halted, 4);
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn connect_and_disconnect_change_the_graph_as_nodes_report_it() {
    run(async {
        let name = unique("wire");
        let spec = cluster_spec(&name, 3, "line");
        let (mut cluster, _guard) = up(spec).await;
        assert!(!graph(&cluster).await.contains(0, 2));

        cluster.connect("n0", "2", WAIT).await.unwrap();
        let g = graph(&cluster).await;
        assert!(g.contains(0, 2) && g.contains(0, 1) && g.contains(1, 2));

        cluster.disconnect("n1", "n0", WAIT).await.unwrap();
        let g = graph(&cluster).await;
        assert!(!g.contains(0, 1) && g.contains(0, 2) && g.contains(1, 2));
        // The declared graph no longer holds, and verify says exactly how.
        let err = cluster.verify(false).await.unwrap_err().to_string();
        assert!(
            err.contains("missing n0-n1") && err.contains("extra n0-n2"),
            "{err}"
        );

        // Unknown nodes are refused as bad input.
        let err = cluster.connect("n0", "n9", WAIT).await.unwrap_err();
        assert!(err.is_bad_input(), "{err}");
    });
}

#[test]
fn up_on_an_existing_cluster_brings_it_to_the_declared_state() {
    run(async {
        let name = unique("reup");
        let (mut cluster, _guard) = up(ring(&name, 4)).await;
        cluster.disconnect("n0", "n1", WAIT).await.unwrap();
        cluster.connect("n0", "n2", WAIT).await.unwrap();
        cluster.mine("n3", 5).await.unwrap();
        let ids = || async {
            let mut ids: Vec<(String, String)> = (outside::containers(&name).await.into_iter())
                .map(|c| (c.name, c.id))
                .collect();
            ids.sort();
            ids
        };
        let before = ids().await;

        // Same manifest again: the graph is repaired, nothing is recreated (the same containers).
        let again = Cluster::up(ring(&name, 4), &UpOptions::default())
            .await
            .unwrap();
        assert_eq!(graph(&again).await, again.spec().graph());
        assert_eq!(ids().await, before);
        again.sync_blocks(WAIT).await.unwrap();
        assert!(again
            .status()
            .await
            .unwrap()
            .iter()
            .all(|s| s.height == Some(5)));

        // A bigger manifest adds a node and rewires; no container is duplicated.
        let bigger = Cluster::up(ring(&name, 5), &UpOptions::default())
            .await
            .unwrap();
        assert_eq!(graph(&bigger).await, bigger.spec().graph());
        let containers = outside::containers(&name).await;
        assert_eq!(containers.len(), 6, "5 nodes and the metadata container");

        // A smaller one removes the node that is no longer declared.
        let smaller = Cluster::up(ring(&name, 3), &UpOptions::default())
            .await
            .unwrap();
        assert_eq!(graph(&smaller).await, smaller.spec().graph());
        assert_eq!(outside::containers(&name).await.len(), 4);
    });
}

#[test]
fn two_clusters_run_side_by_side_without_touching_each_other() {
    run(async {
        let (a, b) = (unique("a"), unique("b"));
        // Brought up at the same moment: they race for subnets and must both win one.
        let ((ca, _ga), (cb, _gb)) = tokio::join!(up(ring(&a, 3)), up(ring(&b, 3)));
        let nets = outside::networks(None).await;
        let subnets: Vec<_> = nets
            .iter()
            .filter(|n| n.name.contains(&a) || n.name.contains(&b))
            .flat_map(|n| n.subnets.clone())
            .collect();
        assert_eq!(subnets.len(), 4);
        for (i, x) in subnets.iter().enumerate() {
            for y in &subnets[i + 1..] {
                assert!(!x.overlaps(y), "{x} overlaps {y}");
            }
        }

        ca.mine("n0", 3).await.unwrap();
        ca.sync_blocks(WAIT).await.unwrap();
        assert!(
            cb.status()
                .await
                .unwrap()
                .iter()
                .all(|s| s.height == Some(0)),
            "b saw a's blocks"
        );

        ca.down(&Progress::default()).await.unwrap();
        assert!(leftovers(&a).await.is_empty());
        // b is untouched: still running, still wired.
        assert_eq!(graph(&cb).await, cb.spec().graph());
        assert_eq!(leftovers(&b).await.len(), 3 + 1 + 3 + 2);
    });
}

#[test]
fn a_node_that_exits_fails_up_at_once_with_its_log_and_nothing_is_left() {
    run(async {
        let name = unique("crash");
        let yaml = format!("name: {name}\nnodes:\n  - name: ok\n  - name: bad\n    args: [\"-nosuchoption=1\"]\ntopology: line\n");
        let spec = manifest::parse(&yaml, "inline").unwrap();
        let _guard = Teardown(name.clone());
        let started = std::time::Instant::now();
        let err = Cluster::up(spec, &UpOptions::default())
            .await
            .err()
            .expect("up fails");
        let text = err.to_string();
        assert!(text.contains("node `bad` stopped while starting"), "{text}");
        assert!(
            text.contains("nosuchoption"),
            "the log names the bad option: {text}"
        );
        assert!(text.contains("removed what this run created"), "{text}");
        // Far below the readiness timeout: the exit was noticed, not waited out.
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn a_bad_manifest_is_refused_with_its_location_and_creates_nothing() {
    run_without_image(async {
        let name = unique("bad");
        // Nothing should exist; if something does, the assertion fails and this removes it.
        let _guard = Teardown(name.clone());
        let cases = [
            (
                format!("name: {name}\nnodes: 4\ntopology: {{ edges: [[0, 1], [1, 9]] }}\n"),
                ":3:",
                "unknown node",
            ),
            (
                format!("name: {name}\nnodes: 4\nnodez: 3\n"),
                ":3:1",
                "unknown field",
            ),
            (
                format!("name: {name}\nnodes: 0\n"),
                ":2:",
                "between 1 and 1000",
            ),
            (
                format!("name: {name}\nnodes:\n  - name: a\n    resources: {{ memory: 1t }}\n"),
                ":4:26",
                "invalid memory",
            ),
        ];
        for (i, (yaml, location, message)) in cases.iter().enumerate() {
            let file = TempFile::new(&format!("bad{i}.yaml"), yaml);
            let out = regbox().arg("up").arg(&file).output().await.unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{stderr}");
            assert!(
                stderr.contains(&format!("bad{i}.yaml{location}")),
                "{stderr}"
            );
            assert!(stderr.contains(message), "{stderr}");
        }
        assert_eq!(leftovers(&name).await, Vec::<String>::new());

        // A spec built in code meets the manifest's rules too: the library refuses one whose node
        // would run a shell command, and makes nothing.
        let mut spec = cluster_spec(&name, 2, "line");
        spec.nodes[1].args.push("-blocknotify=touch /tmp/x".into());
        let err = Cluster::up(spec, &UpOptions::default())
            .await
            .err()
            .expect("refused");
        assert!(err.is_bad_input(), "{err}");
        assert!(err.to_string().contains("-blocknotify"), "{err}");
        assert_eq!(leftovers(&name).await, Vec::<String>::new());

        // A scenario is validated whole — node names included — before any container exists.
        let yaml = "cluster: { name: x, nodes: 2 }\nsteps:\n  - mine: { node: n0, blocks: 1 }\n  - stop: n7\n";
        let file = TempFile::new(&format!("{name}.scenario.yaml"), yaml);
        let out = regbox()
            .args(["-c", &name, "run"])
            .arg(&file)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(".scenario.yaml:4:"), "{stderr}");
        assert_eq!(leftovers(&name).await, Vec::<String>::new());

        // Unknown clusters and bad arguments are bad input too.
        let out = regbox().args(["status", &name]).output().await.unwrap();
        assert_eq!(out.status.code(), Some(2));
        let out = regbox()
            .args(["mine", "n0", "many"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
    });
}

#[test]
fn the_cli_drives_a_cluster_end_to_end() {
    run(async {
        let name = unique("cli");
        let _guard = Teardown(name.clone());
        let file = TempFile::new(
            "star.yaml",
            &format!("name: {name}\nnodes: 3\ntopology: star\n"),
        );
        let status = ok_json(&["up", file.to_str().unwrap(), "--json"]).await;
        assert_eq!(status.as_array().unwrap().len(), 3);
        assert_eq!(status[0]["peers"], serde_json::json!(["n1", "n2"]));

        let ls = ok_json(&["ls", "--json"]).await;
        let me = ls
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name.as_str())
            .expect("listed");
        assert_eq!(me["running"], 3);

        let mined = ok_json(&["-c", &name, "mine", "n1", "3", "--json"]).await;
        assert_eq!(mined["height"], 3);
        ok(&["sync", &name]).await;
        assert_eq!(
            ok(&["-c", &name, "rpc", "n2", "getblockcount"])
                .await
                .trim(),
            "3"
        );
        let hash = ok(&["-c", &name, "rpc", "n2", "getblockhash", "3"]).await;
        assert_eq!(hash.trim(), mined["blocks"][2].as_str().unwrap());
        let err = regbox()
            .args(["-c", &name, "rpc", "n2", "nosuchmethod"])
            .output()
            .await
            .unwrap();
        assert_eq!(err.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&err.stderr).contains("-32601"));

        ok(&["-c", &name, "disconnect", "n0", "n1"]).await;
        let status = ok_json(&["status", &name, "--json"]).await;
        assert_eq!(status[0]["peers"], serde_json::json!(["n2"]));
        ok(&["-c", &name, "connect", "n1", "n0"]).await;

        let logs = ok(&["-c", &name, "logs", "n0", "--tail", "50"]).await;
        assert!(logs.contains("UpdateTip"), "{logs}");

        let down = ok_json(&["down", &name, "--json"]).await;
        assert_eq!(down["containers"], 4);
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn ctrl_c_during_up_removes_what_the_run_created() {
    run(async {
        let name = unique("intr");
        let _guard = Teardown(name.clone());
        let file = TempFile::new(
            "mesh.yaml",
            &format!("name: {name}\nnodes: 12\ntopology: mesh\n"),
        );
        let mut child = regbox().arg("up").arg(&file).spawn().unwrap();
        // Interrupt as soon as the first node container exists.
        loop {
            let containers = outside::containers(&name).await;
            if containers
                .iter()
                .any(|c| c.labels.contains_key("regbox.node"))
            {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "up finished before it could be interrupted"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        interrupt(&child);
        let status = child.wait().await.unwrap();
        assert_eq!(status.code(), Some(130));
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

// ---------------------------------------------------------------------------------------------------
// Partitions, heal, faults and scenarios.
