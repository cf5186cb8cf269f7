//! Integration tests: the longest end-to-end runs (every example scenario and manifest, a soak).
//! libtest starts tests in the order of their names, so this module sorts early and the longest
//! tests do not form the suite's tail on two cores.

use super::*;

#[test]
fn a_soak_run_survives_every_fault_kind_and_writes_its_log_report_and_junit() {
    use regbox::core::soak::EventKind;
    run(async {
        let soak = SoakRun::new("soak");
        let junit = soak.dir.path().join("junit.xml");
        // Seed 181's first five faults are one of each kind (kill, netem, restart, partition, pause),
        // by 58 s of the 100; `--steps 5` runs all five however late a loaded machine makes them
        // (without it, a run slowed by other builds ran only kill and netem). Its partition holds
        // ≈ 8 s: at a block a second on random nodes both sides mine (all on one side: odds below
        // 1 %), so one side reorganises and the report has all five plots.
        let args = "--duration 100s --seed 181 --gap 8s --hold 8s \
                    --faults partition,kill,restart,pause,netem --json --steps 5 --rate 60";
        let out = soak
            .command(&soak_manifest(), args)
            .arg("--junit")
            .arg(&junit)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["ok"], true, "{summary}");
        assert_eq!(summary["seed"], 181);

        let log = soak.log();
        assert!(matches!(log[0].kind, EventKind::Start { seed: 181, .. }));
        assert!(matches!(
            log.last().unwrap().kind,
            EventKind::End { ok: true, .. }
        ));
        let count = |f: fn(&EventKind) -> bool| log.iter().filter(|e| f(&e.kind)).count();
        let faults: Vec<usize> = (log.iter())
            .filter_map(|e| match e.kind {
                EventKind::Fault { step, .. } => Some(step),
                _ => None,
            })
            .collect();
        let kinds: std::collections::BTreeSet<&str> = (log.iter())
            .filter_map(|e| match e.kind {
                EventKind::Fault { fault, .. } => Some(fault.name()),
                _ => None,
            })
            .collect();
        let ends: Vec<usize> = (log.iter())
            .filter_map(|e| match e.kind {
                EventKind::FaultEnd { step, .. } => Some(step),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            ["kill", "netem", "partition", "pause", "restart"],
            "every kind asked for was run"
        );
        assert_eq!(faults, ends, "every fault ends");
        assert!(count(|k| matches!(k, EventKind::Converged { .. })) >= 1);
        assert!(count(|k| matches!(k, EventKind::Block { .. })) >= 1);
        let checks: Vec<&EventKind> = (log.iter())
            .map(|e| &e.kind)
            .filter(|k| matches!(k, EventKind::Invariant { .. }))
            .collect();
        assert!(!checks.is_empty());
        for check in &checks {
            assert!(
                matches!(check, EventKind::Invariant { ok: true, .. }),
                "{check:?}"
            );
        }

        // Five plots; the reorg plot is a "none" when no side of a partition mined (rare at this rate,
        // but not impossible: the run is seeded, which node mines when is not).
        let reorgs = count(|k| matches!(k, EventKind::Tip { reorg_depth, .. } if *reorg_depth > 0));
        let html = std::fs::read_to_string(&soak.report).unwrap();
        if reorgs > 0 {
            assert_eq!(html.matches("<svg").count(), 5);
        } else {
            assert_eq!(html.matches("<svg").count(), 4);
            assert!(html.contains("none — no node reorganised its chain"));
        }
        let xml = std::fs::read_to_string(&junit).unwrap();
        let doc = roxmltree::Document::parse(&xml).expect("well-formed JUnit XML");
        let cases = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .count();
        assert_eq!(cases, checks.len());
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("failure"))
                .count(),
            0
        );
        assert_eq!(leftovers(&soak.name).await, Vec::<String>::new());
    });
}

#[test]
fn every_example_scenario_passes_and_writes_junit() {
    run(async {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".scenario.yaml"))
            .collect();
        files.sort();
        assert!(files.len() >= 5, "{files:?}");
        // All of them in one run, one after another under one name, into one JUnit report.
        let name = unique("scn");
        let _guard = Teardown(name.clone());
        let dir = tempfile::tempdir().unwrap();
        let junit = dir.path().join("junit.xml");
        let out = regbox()
            .args(["-c", &name, "run"])
            .args(&files)
            .arg("--junit")
            .arg(&junit)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", stderr(&out));
        assert_eq!(stdout.matches("PASSED").count(), files.len(), "{stdout}");
        let xml = std::fs::read_to_string(&junit).unwrap();
        let doc = roxmltree::Document::parse(&xml).expect("well-formed JUnit XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        assert_eq!(root.attribute("failures"), Some("0"), "{xml}");
        let suites: Vec<_> = root
            .children()
            .filter(|n| n.has_tag_name("testsuite"))
            .collect();
        assert_eq!(suites.len(), files.len());
        for suite in suites {
            let props: Vec<(&str, &str)> = suite
                .descendants()
                .filter(|n| n.has_tag_name("property"))
                .map(|p| (p.attribute("name").unwrap(), p.attribute("value").unwrap()))
                .collect();
            assert!(props.contains(&("cluster", name.as_str())), "{props:?}");
            assert!(
                props
                    .iter()
                    .any(|(k, v)| *k == "image" && v.starts_with("regbox/bitcoind:")),
                "{props:?}"
            );
            let cases: Vec<_> = suite
                .children()
                .filter(|n| n.has_tag_name("testcase"))
                .collect();
            assert!(cases.len() >= 3, "cluster up, steps, teardown");
            assert!(cases
                .iter()
                .all(|c| c.children().all(|e| !e.has_tag_name("failure"))));
        }
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn every_example_manifest_comes_up_with_its_declared_graph() {
    run(async {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|f| f.ends_with(".yaml") && !f.ends_with(".scenario.yaml"))
            .collect();
        files.sort();
        assert!(files.len() >= 3, "{files:?}");
        for file in files {
            let spec = load(&file, &unique("ex"));
            // A manifest across hosts needs the lab of engines: tests/multihost.rs brings it up.
            if !spec.hosts.is_empty() {
                continue;
            }
            let declared = spec.graph();
            let (cluster, _guard) = up(spec).await;
            assert_eq!(graph(&cluster).await, declared, "{file}");
            cluster.down(&Progress::default()).await.unwrap();
        }
    });
}
