//! Integration tests: topology show, host limits, compose export, propagation measurements, 50 nodes.

use super::*;

#[test]
fn topology_show_reports_draws_and_exports_a_graph_that_imports_back() {
    run(async {
        let name = unique("topo");
        let _guard = Teardown(name.clone());
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("sf.yaml");
        std::fs::write(
            &manifest,
            format!("name: {name}\nnodes: 10\ntopology: {{ kind: small-world, k: 4, beta: 0.3, seed: 3 }}\n"),
        )
        .unwrap();
        let manifest = manifest.to_str().unwrap();
        let shown = ok_json(&["topology", "show", manifest, "--json"]).await;
        let stats = &shown["topology"];
        assert_eq!(
            (stats["nodes"].as_u64(), stats["edges"].as_u64()),
            (Some(10), Some(20))
        );
        assert_eq!(stats["components"], 1);
        assert!(stats["diameter"].as_u64().unwrap() >= 2, "{shown}");
        // Exported in each format, the graph imports back as the same manifest topology.
        for (format, file) in [
            ("edgelist", "g.txt"),
            ("graphml", "g.graphml"),
            ("dot", "g.dot"),
        ] {
            let text = ok(&["topology", "show", manifest, "--export", format]).await;
            std::fs::write(dir.path().join(file), text).unwrap();
            let copy = dir.path().join(format!("copy-{format}.yaml"));
            std::fs::write(
                &copy,
                format!("name: {name}\ntopology: {{ file: {file} }}\n"),
            )
            .unwrap();
            let again = ok_json(&["topology", "show", copy.to_str().unwrap(), "--json"]).await;
            assert_eq!(again["topology"], shown["topology"], "{format}");
        }
        // Brought up, the cluster's own topology is shown without a manifest, and drawn.
        ok(&["up", manifest]).await;
        let svg = dir.path().join("g.svg");
        let live = ok_json(&[
            "-c",
            &name,
            "topology",
            "show",
            "--json",
            "--svg",
            svg.to_str().unwrap(),
        ])
        .await;
        assert_eq!(live["topology"], shown["topology"]);
        let picture = std::fs::read_to_string(&svg).unwrap();
        let doc = roxmltree::Document::parse(&picture).expect("SVG is XML");
        let count = |tag: &str| doc.descendants().filter(|n| n.has_tag_name(tag)).count();
        assert_eq!((count("circle"), count("line")), (10, 20));
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn a_host_limit_that_stops_a_cluster_refuses_it_before_anything_exists() {
    run_without_image(async {
        let name = unique("lim");
        // Nothing should exist; if something does, the assertion fails and this removes it.
        let _guard = Teardown(name.clone());
        let file = TempFile::new("lim.yaml", &format!("name: {name}\nnodes: 60\n"));
        // 60 nodes need about 184 open files; allow 100.
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n 100; exec {} up {}",
                env!("CARGO_BIN_EXE_regbox"),
                file.to_str().unwrap()
            ))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("ulimit -n 256"), "{}", stderr(&out));
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn an_exported_compose_file_runs_the_same_topology_under_docker_compose() {
    run(async {
        let name = unique("cmp");
        let manifest = TempFile::new(
            "star.yaml",
            &format!("name: {name}\nnodes: 4\ntopology: star\n"),
        );
        let text = ok(&["export", "compose", manifest.to_str().unwrap()]).await;
        let file = TempFile::new("docker-compose.yml", &text);
        let project = Compose {
            project: name.clone(),
            file: file.path.clone(),
            env: Vec::new(),
        };
        let up = project.command(&["up", "-d"]);
        assert!(up.status.success(), "{}", stderr(&up));
        // The star's hub has three peers, each leaf one, as the nodes themselves report (a node
        // whose RPC is not ready yet counts none).
        let peers = |node: &str| {
            let out = project.command(&[
                "exec",
                "-T",
                node,
                "bitcoin-cli",
                "-regtest",
                "-datadir=/data",
                "getconnectioncount",
            ]);
            let text = String::from_utf8_lossy(&out.stdout);
            text.trim().parse::<u32>().unwrap_or(0)
        };
        let deadline = std::time::Instant::now() + WAIT;
        let wired = loop {
            let counts: Vec<u32> = ["n0", "n1", "n2", "n3"].iter().map(|n| peers(n)).collect();
            if counts == [3, 1, 1, 1] || std::time::Instant::now() > deadline {
                break counts;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(wired, [3, 1, 1, 1]);
        let down = project.command(&["down", "-v"]);
        assert!(down.status.success(), "{}", stderr(&down));
        // Nothing the export labels is left: containers, networks, volumes.
        let label = format!("label=regbox.export={name}");
        for kind in ["container", "network", "volume"] {
            let left = Command::new("docker")
                .args([kind, "ls", "-q", "--filter", &label])
                .args((kind == "container").then_some("-a"))
                .output()
                .unwrap();
            assert!(left.status.success(), "{}", stderr(&left));
            assert!(
                left.stdout.is_empty(),
                "{kind}s left: {}",
                String::from_utf8_lossy(&left.stdout)
            );
        }
    });
}

/// Every node's arrival in every round of a `measure propagation --json` document, as (node, hops, ms).
pub(crate) fn arrivals(m: &serde_json::Value) -> Vec<Vec<(String, u64, f64)>> {
    m["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["arrivals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    let ms = a["ms"].as_f64();
                    let ms = ms.unwrap_or_else(|| panic!("no arrival in {a}"));
                    (
                        a["node"].as_str().unwrap().to_string(),
                        a["hops"].as_u64().unwrap(),
                        ms,
                    )
                })
                .collect()
        })
        .collect()
}

#[test]
fn block_propagation_is_timed_from_every_nodes_log_and_plotted() {
    run(async {
        let name = unique("prop");
        let (_cluster, _guard) = up(cluster_spec(&name, 6, "line")).await;
        let dir = tempfile::tempdir().unwrap();
        let (svg, png) = (dir.path().join("p.svg"), dir.path().join("p.png"));
        let m = ok_json(&[
            "-c",
            &name,
            "measure",
            "propagation",
            "--from",
            "n0",
            "--blocks",
            "3",
            "--json",
            "--svg",
            svg.to_str().unwrap(),
            "--png",
            png.to_str().unwrap(),
        ])
        .await;
        assert_eq!((&m["kind"], &m["origin"]), (&"block".into(), &"n0".into()));
        // A fresh chain is in initial block download: one block first ends it.
        assert_eq!(m["prepared"]["blocks_mined"], 1, "{m}");
        let rounds = arrivals(&m);
        assert_eq!(rounds.len(), 3, "{m}");
        for (i, round) in rounds.iter().enumerate() {
            assert_eq!(m["rounds"][i]["height"], i as u64 + 2, "{m}");
            // On a line from n0, node i is i hops away.
            let hops: Vec<u64> = round.iter().map(|a| a.1).collect();
            assert_eq!(hops, [0, 1, 2, 3, 4, 5], "{m}");
            // Times count from the block's birth at the miner: none can be earlier.
            assert!(round.iter().all(|a| a.2 >= 0.0), "{m}");
        }
        let s = &m["summary"];
        assert_eq!(
            (s["samples"].as_u64(), s["missing"].as_u64()),
            (Some(15), Some(0))
        );
        let q = |k: &str| s[k].as_f64().unwrap_or_else(|| panic!("no {k} in {s}"));
        assert!(
            q("p50") <= q("p90") && q("p90") <= q("p95") && q("p95") <= q("max"),
            "{s}"
        );
        assert_eq!(s["per_hop"].as_array().unwrap().len(), 6, "{s}");
        // Headers are relayed hop by hop: on a line no node sees one before the node it came from.
        // (Times to the tip add each node's own validation, which runs in parallel and is no such
        // order: a farther node can connect the block sooner.)
        for round in m["rounds"].as_array().unwrap() {
            let headers: Vec<f64> = (round["arrivals"].as_array().unwrap().iter())
                .map(|a| a["header_ms"].as_f64().unwrap_or_else(|| panic!("{a}")))
                .collect();
            assert!(headers.windows(2).all(|w| w[0] <= w[1]), "{round}");
        }

        let svg = std::fs::read_to_string(&svg).unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(svg.contains("Arrival CDF") && svg.contains("Arrival vs hops"));
        let png = std::fs::read(&png).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");

        // The table: summary, per-hop means, one row per node.
        let table = ok(&["-c", &name, "measure", "propagation", "--blocks", "1"]).await;
        assert!(
            table.contains("block propagation from n0") && table.contains("p95"),
            "{table}"
        );
        assert!(
            table.contains("HOPS") && table.lines().any(|l| l.starts_with("n5 ")),
            "{table}"
        );
    });
}

#[test]
fn transaction_propagation_reaches_every_node_and_leaves_logging_as_it_was() {
    run(async {
        let name = unique("proptx");
        let (cluster, _guard) = up(cluster_spec(&name, 6, "line")).await;
        let measure = |from: &'static str, rounds: &'static str| {
            let name = name.clone();
            async move {
                ok_json(&[
                    "-c",
                    &name,
                    "measure",
                    "propagation",
                    "--tx",
                    "--from",
                    from,
                    "--rounds",
                    rounds,
                    "--json",
                ])
                .await
            }
        };
        // From the line's end every hop goes to an inbound (noban) peer: no trickle to wait for.
        let m = measure("n5", "2").await;
        assert_eq!(m["kind"], "tx");
        // A fresh chain has no coin: 100 blocks to mature one, and one holding the split.
        assert_eq!(m["prepared"]["blocks_mined"], 101, "{m}");
        for round in arrivals(&m) {
            assert_eq!(round.len(), 6);
            assert!(round
                .iter()
                .all(|a| a.1 == 5 - a.0[1..].parse::<u64>().unwrap()));
            assert_eq!(
                round[5].2, 0.0,
                "the sender's own acceptance is the origin: {m}"
            );
        }
        assert_eq!(m["summary"]["missing"], 0, "{m}");
        // The next measurement finds a mature coin left by the first.
        let again = measure("n5", "1").await;
        assert_eq!(again["prepared"]["blocks_mined"], 1, "{again}");
        assert_eq!(arrivals(&again)[0].len(), 6);
        // The debug categories switched on for the measurement are off again.
        for node in cluster.nodes() {
            let categories = node
                .rpc
                .call_raw("logging", serde_json::json!([]), WAIT)
                .await
                .unwrap();
            assert_eq!(categories["mempool"], false, "{}", node.name());
            assert_eq!(categories["validation"], false, "{}", node.name());
        }
    });
}

#[test]
fn a_measure_step_passes_within_its_bound_and_fails_with_what_it_measured() {
    run(async {
        let name = unique("propscn");
        let _guard = Teardown(name.clone());
        let file = TempFile::new(
            "measure.scenario.yaml",
            concat!(
                "cluster: { name: x, nodes: 4, topology: line }\n",
                "steps:\n",
                "  - measure: { propagation: block, blocks: 2, quantile: 0.5, within: 30 }\n",
                "  - measure: { propagation: block, from: n3, blocks: 2, quantile: 1, within: 0.000001 }\n",
                "  - mine: { node: n0, blocks: 1 }\n",
            ),
        );
        let (out, xml) = run_scenario(&name, Some(&file.path)).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", stderr(&out));
        let lines: Vec<&str> = stdout.lines().collect();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("PASS  measure block propagation, 2")),
            "{stdout}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("FAIL  measure block propagation from n3")),
            "{stdout}"
        );
        assert!(
            stdout.contains("expected 100% of the other nodes' arrivals of a block from n3 within 0.001 ms, measured p100 = "),
            "{stdout}"
        );
        let doc = roxmltree::Document::parse(&xml).expect("well-formed JUnit XML");
        let failure = doc.descendants().find(|n| n.has_tag_name("failure"));
        let message = failure
            .and_then(|f| f.attribute("message"))
            .unwrap_or_default();
        assert!(message.contains("measured p100 = "), "{xml}");
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn fifty_nodes_in_a_random_regular_graph_come_up_verified_and_go_down_cleanly() {
    run(async {
        let name = unique("fifty");
        let spec = manifest::parse(
            &format!(
                "name: {name}\nnodes: 50\ntopology: {{ kind: random-regular, k: 4, seed: 11 }}\n"
            ),
            "inline",
        )
        .unwrap();
        assert_eq!(spec.edges.len(), 100);
        let declared = spec.graph();
        let (cluster, _guard) = up(spec).await;
        assert_eq!(graph(&cluster).await, declared);
        cluster.down(&Progress::default()).await.unwrap();
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}
