//! Integration tests: scenario runs, JUnit, Ctrl-C during a run.

use super::*;

#[test]
fn the_default_scenario_passes_and_a_failing_step_fails_the_run_with_what_it_saw() {
    run(async {
        let name = unique("dflt");
        let _guard = Teardown(name.clone());
        let (out, _) = run_scenario(&name, None).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for step in [
            "mine n0 101",
            "split the ring",
            "heal",
            "longest chain wins",
            "PASSED",
        ] {
            assert!(stdout.contains(step), "{stdout}");
        }

        let file = TempFile::new(
            "failing.scenario.yaml",
            "cluster: { name: x, nodes: 2, topology: line }\nsteps:\n  - mine: { node: n0, blocks: 1 }\n  - assert: { height: 5, node: n1 }\n  - mine: { node: n0, blocks: 1 }\n",
        );
        let (out, xml) = run_scenario(&name, Some(&file.path)).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.contains("FAIL") && stdout.contains("expected height 5"),
            "{stdout}"
        );
        assert!(
            stdout.contains("SKIP"),
            "the step after a failure is skipped: {stdout}"
        );
        let doc = roxmltree::Document::parse(&xml).expect("well-formed JUnit XML");
        let failed = doc
            .descendants()
            .find(|n| n.has_tag_name("failure"))
            .unwrap_or_else(|| panic!("no failure in {xml}"));
        assert!(
            failed
                .attribute("message")
                .unwrap()
                .starts_with("expected height 5"),
            "{xml}"
        );
        // The failed step's case keeps the nodes' last log lines.
        let case = failed.parent().unwrap();
        let out = case
            .children()
            .find(|n| n.has_tag_name("system-out"))
            .and_then(|n| n.text())
            .unwrap_or_else(|| panic!("no system-out in {xml}"));
        assert!(out.contains("n0| ") && out.contains("n1| "), "{out}");
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("skipped"))
                .count(),
            1,
            "{xml}"
        );
        assert_eq!(
            leftovers(&name).await,
            Vec::<String>::new(),
            "torn down after a failure"
        );
    });
}

/// Work over the limits of one request in a scenario step is refused as the file is loaded, at the
/// step, with exit 2 and before any container exists: a `mine` over the limit, and an `rpc` that would
/// mine as much.
#[test]
fn a_scenario_step_over_the_limits_of_a_verb_is_refused_before_anything_exists() {
    run(async {
        let name = unique("bound");
        let _guard = Teardown(name.clone());
        for (step, said) in [
            (
                "  - mine: { node: n0, blocks: 100000000 }\n",
                ":4:31: `blocks` must be between 1 and 10000",
            ),
            (
                "  - rpc: { node: n0, method: generatetoaddress, params: [100000000, x] }\n",
                ":4:5: `rpc`: its block count 100000000 is over the limit of 10000 blocks per generatetoaddress",
            ),
        ] {
            let file = TempFile::new(
                "bound.scenario.yaml",
                &format!("cluster: {{ name: x, nodes: 2 }}\nsteps:\n  - mine: {{ node: n0, blocks: 1 }}\n{step}"),
            );
            let (out, _) = run_scenario(&name, Some(&file.path)).await;
            assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
            assert!(stderr(&out).contains(said), "{}", stderr(&out));
            assert_eq!(leftovers(&name).await, Vec::<String>::new());
        }
    });
}

#[test]
fn a_dropped_cluster_handle_tears_the_cluster_down() {
    run(async {
        let name = unique("drop");
        let cluster = Cluster::up(ring(&name, 3), &UpOptions::default())
            .await
            .unwrap();
        assert_eq!(leftovers(&name).await.len(), 3 + 1 + 3 + 2);
        drop(cluster); // no `down`: the fallback removes it
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn up_on_a_partitioned_cluster_heals_it_back_to_the_declared_state() {
    run(async {
        let name = unique("uphl");
        let (mut cluster, _guard) = up(ring(&name, 4)).await;
        cluster
            .partition(&PartitionKind::Isolate("n2".into()), CutMode::Silent, WAIT)
            .await
            .unwrap();
        let again = Cluster::up(ring(&name, 4), &UpOptions::default())
            .await
            .unwrap();
        assert_eq!(
            edges(&graph(&again).await),
            vec![(0, 1), (0, 3), (1, 2), (2, 3)]
        );
        assert_eq!(
            outside::networks(Some(&name)).await.len(),
            2,
            "the segment is gone"
        );
        again.keep();
    });
}

#[test]
fn ctrl_c_during_a_scenario_tears_down_and_exits_130() {
    run(async {
        let name = unique("rintr");
        let _guard = Teardown(name.clone());
        let file = TempFile::new(
            "waiting.scenario.yaml",
            "cluster: { name: x, nodes: 2, topology: line }\nsteps:\n  - wait: { height: 1, timeout: 120 }\n",
        );
        let mut child = regbox()
            .args(["-c", &name, "run"])
            .arg(&file)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Interrupt while the wait step runs: once both nodes exist and answer, the wait is the only thing left.
        loop {
            let running = outside::containers(&name)
                .await
                .iter()
                .filter(|c| c.running)
                .count();
            if running == 2 {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended before it could be interrupted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        interrupt(&child);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("run stops")
            .unwrap();
        assert_eq!(out.code(), Some(130));
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

// ---------------------------------------------------------------------------------------------------
// Two commands on one cluster at once: one writer at a time, names never trusted, repairs.

/// `regbox run A B C`: scenarios that declare the same cluster run one after another on one cluster,
/// reset in place between them (each starts on a fresh chain); a scenario of another cluster gets its
/// own, and nothing is left at the end.
#[test]
fn scenarios_of_one_cluster_run_on_it_reset_between_them() {
    run(async {
        let name = unique("reuse");
        let _guard = Teardown(name.clone());
        let same = "cluster: { name: x, nodes: 3, topology: line }\nsteps:\n  - assert: { height: 0 }\n  - mine: { node: n0, blocks: 3 }\n  - sync\n  - assert: { height: 3 }\n";
        let a = TempFile::new("a.scenario.yaml", same);
        let b = TempFile::new("b.scenario.yaml", same);
        let other = TempFile::new(
            "c.scenario.yaml",
            "cluster: { name: x, nodes: 2, topology: line }\nsteps:\n  - assert: { height: 0 }\n",
        );
        let out = regbox()
            .args(["-c", &name, "run", "--json"])
            .args([
                a.to_str().unwrap(),
                b.to_str().unwrap(),
                other.to_str().unwrap(),
            ])
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let labels: Vec<String> = stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["label"].as_str().map(str::to_string))
            .filter(|l| l.starts_with("cluster") || l == "teardown")
            .collect();
        assert_eq!(
            labels,
            [
                "cluster up (3 nodes, 2 edges)",
                "cluster reset (3 nodes, 2 edges)",
                "teardown",
                "cluster up (2 nodes, 1 edges)",
                "teardown"
            ],
            "{stdout}"
        );
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}
