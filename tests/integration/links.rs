//! Integration tests: link faults and partitions by rules, as the nodes report them.

use super::*;

/// The ping time node `at` reports for its session with `peer`, after asking for a fresh ping; polls
/// until `want` holds of it (or the deadline passes, failing with the last value).
pub(crate) async fn pingtime(
    cluster: &Cluster,
    at: usize,
    peer: &str,
    want: impl Fn(f64) -> bool,
) -> f64 {
    let node = &cluster.nodes()[at];
    let comment = format!("({peer})");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let _: serde_json::Value = node.rpc.call("ping", serde_json::json!([])).await.unwrap();
        // A ping round trip takes up to the delay being measured; look again soon after.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let peers: Vec<serde_json::Value> = node
            .rpc
            .call("getpeerinfo", serde_json::json!([]))
            .await
            .unwrap();
        let last = peers
            .iter()
            .find(|p| p["subver"].as_str().is_some_and(|s| s.contains(&comment)))
            .and_then(|p| p["pingtime"].as_f64());
        if let Some(t) = last.filter(|&t| want(t)) {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} to {peer}: ping time {last:?}",
            node.name()
        );
    }
}

/// Whether `at` lists a session with `peer`.
pub(crate) async fn lists(cluster: &Cluster, at: usize, peer: &str) -> bool {
    let peers = cluster.nodes()[at].rpc.get_peer_info().await.unwrap();
    peers
        .iter()
        .any(|p| p.subver.contains(&format!("({peer})")))
}

/// A node's TCP segments retransmitted so far, from its network namespace's counters.
pub(crate) fn retransmits(container: &str) -> u64 {
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Pid}}", container])
        .output()
        .unwrap();
    let pid = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let snmp = std::fs::read_to_string(format!("/proc/{pid}/net/snmp")).unwrap();
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|n| n == "RetransSegs")
        .unwrap();
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

#[test]
fn link_faults_show_in_what_the_nodes_report_and_go_with_down() {
    run(async {
        let name = unique("links");
        let (cluster, _guard) = up(ring(&name, 4)).await;
        let c = ["-c", name.as_str()];
        // A delay on n0's packets: every ping time at n0, and n1's to n0, is about 100 ms.
        let plane = ok(&[&c[..], &["netem", "n0", "--delay", "100ms"]].concat()).await;
        assert!(plane.contains("n0    delay 100ms"), "{plane}");
        let t = pingtime(&cluster, 1, "n0", |t| t > 0.095).await;
        assert!(t < 0.15, "n1 to n0: {t}");
        let t = pingtime(&cluster, 0, "n3", |t| t > 0.095).await;
        assert!(t < 0.15, "n0 to n3: {t}");
        // The other links are not shaped.
        assert!(pingtime(&cluster, 1, "n2", |_| true).await < 0.05);
        // One link of n2's: only towards n3.
        ok(&[
            &c[..],
            &[
                "netem", "n2", "--to", "n3", "--delay", "200ms", "--jitter", "10ms",
            ],
        ]
        .concat())
        .await;
        let t = pingtime(&cluster, 3, "n2", |t| t > 0.17).await;
        assert!(t < 0.26, "n3 to n2: {t}");
        assert!(pingtime(&cluster, 1, "n2", |_| true).await < 0.05);
        // status shows each node's shaping, in the table and in JSON.
        let status = ok_json(&[&c[..], &["status", "--json"]].concat()).await;
        let links: Vec<&str> = status
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["links"].as_str().unwrap())
            .collect();
        assert_eq!(
            links,
            ["delay 100ms", "", "to n3: delay 200ms ± 10ms uniform", ""]
        );
        // Loss: n3 loses 30% of its packets; blocks still reach everyone, through retransmits.
        ok(&[&c[..], &["netem", "n3", "--loss", "30%"]].concat()).await;
        let container = format!("regbox-{name}-n3");
        let before = retransmits(&container);
        cluster.mine("n3", 30).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();
        let after = retransmits(&container);
        assert!(after > before, "retransmits {before} → {after}");
        // Clearing removes the shaping.
        let plane = ok(&[&c[..], &["netem", "--clear"]].concat()).await;
        assert_eq!(plane.trim(), "no link faults");
        pingtime(&cluster, 1, "n0", |t| t < 0.05).await;

        // A one-way cut answered with resets: n1 loses its session with n2 at once; n2, whose
        // packets still flow, keeps listing n1 (nothing it sends is answered, nor refused).
        ok(&[&c[..], &["cut", "--from", "n1", "--to", "n2", "--reset"]].concat()).await;
        let _: serde_json::Value = cluster.nodes()[1]
            .rpc
            .call("ping", serde_json::json!([]))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        while lists(&cluster, 1, "n2").await {
            assert!(tokio::time::Instant::now() < deadline, "n1 still lists n2");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(lists(&cluster, 2, "n1").await);
        // A silent cut both ways between n0 and n3: a block mined on n0 reaches n3 only around the
        // ring (n0 → n1 → n2 → n3), which the cut from n1 to n2 blocks too: n3 stays behind.
        ok(&[&c[..], &["cut", "n0", "n3"]].concat()).await;
        let tip = cluster.mine("n0", 1).await.unwrap().pop().unwrap();
        cluster
            .wait(
                &regbox::WaitFor::SyncBlocks(Some(vec!["n0".into(), "n1".into()])),
                WAIT,
            )
            .await
            .unwrap();
        let n3: String = cluster.nodes()[3]
            .rpc
            .call("getbestblockhash", serde_json::json!([]))
            .await
            .unwrap();
        assert_ne!(n3, tip);
        // heal removes every cut and re-wires the ring: everyone is on one tip again.
        ok(&[&c[..], &["heal", "--sync"]].concat()).await;
        let status = ok_json(&[&c[..], &["status", "--json"]].concat()).await;
        assert!(status.as_array().unwrap().iter().all(|n| n["links"] == ""));
        assert_eq!(
            edges(&graph(&cluster).await),
            [(0, 1), (0, 3), (1, 2), (2, 3)]
        );

        // The agent goes with the cluster.
        assert!(outside::containers(&name)
            .await
            .iter()
            .any(|c| c.name == format!("regbox-{name}.agent")));
        cluster.down(&Progress::default()).await.unwrap();
        assert!(leftovers(&name).await.is_empty());
    });
}

#[test]
fn partitions_by_rules_give_the_same_graphs_as_by_segments_in_every_flavour() {
    run(async {
        let name = unique("fw");
        let (cluster, _guard) = up(ring(&name, 6)).await;
        let c = ["-c", name.as_str()];
        let graph_of = |report: &serde_json::Value| -> Vec<String> {
            let mut g: Vec<String> = report["graph"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap().to_string())
                .collect();
            g.sort();
            g
        };
        // The same shape both ways: the nodes report the same graph (each run verifies it).
        let by_segments =
            ok_json(&[&c[..], &["--json", "partition", "--majorities-ring"]].concat()).await;
        let by_rules = ok_json(
            &[
                &c[..],
                &[
                    "--json",
                    "partition",
                    "--majorities-ring",
                    "--via",
                    "firewall",
                ],
            ]
            .concat(),
        )
        .await;
        assert_eq!(by_rules["via"], "firewall");
        assert_eq!(graph_of(&by_rules), graph_of(&by_segments));
        // Rules replaced the segments: every node is back on the base segment.
        let status = ok_json(&[&c[..], &["status", "--json"]].concat()).await;
        assert!(status
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["segments"].as_array().unwrap().len() == 1));

        // Silent halves: the sessions across freeze (still listed), each side mines, heal reorganises
        // the shorter side onto the longer chain.
        let report = ok_json(
            &[
                &c[..],
                &[
                    "--json",
                    "partition",
                    "--halves",
                    "--via",
                    "firewall",
                    "--silent",
                ],
            ]
            .concat(),
        )
        .await;
        assert_eq!(graph_of(&report), ["n0-n1", "n1-n2", "n3-n4", "n4-n5"]);
        assert!(
            lists(&cluster, 2, "n3").await,
            "a silent cut leaves the session listed"
        );
        cluster.mine("n0", 2).await.unwrap();
        cluster.mine("n5", 3).await.unwrap();
        let heal = ok_json(&[&c[..], &["--json", "heal", "--sync"]].concat()).await;
        assert_eq!(heal["height"], 3);
        let depths: Vec<u64> = heal["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["reorg_depth"].as_u64().unwrap())
            .collect();
        assert_eq!(depths, [2, 2, 2, 0, 0, 0]);

        // Reset: n2 alone; its sessions are closed by the network's resets, and its neighbours' too.
        ok(&[
            &c[..],
            &[
                "partition",
                "--isolate",
                "n2",
                "--via",
                "firewall",
                "--reset",
            ],
        ]
        .concat())
        .await;
        assert!(cluster.nodes()[2]
            .rpc
            .get_peer_info()
            .await
            .unwrap()
            .is_empty());
        assert!(!lists(&cluster, 1, "n2").await && !lists(&cluster, 3, "n2").await);
        ok(&[&c[..], &["heal"]].concat()).await;
        assert_eq!(
            edges(&graph(&cluster).await),
            [(0, 1), (0, 5), (1, 2), (2, 3), (3, 4), (4, 5)]
        );
    });
}

#[test]
fn manifest_links_are_set_by_up_and_again_after_a_restart() {
    run(async {
        let name = unique("geo");
        let (cluster, _guard) = up(load("continents.yaml", &name)).await;
        // eu1 and us1 are peers across the ocean: 75 ms each way.
        let t = pingtime(&cluster, 0, "us1", |t| t > 0.14).await;
        assert!(t < 0.2, "eu1 to us1: {t}");
        assert!(pingtime(&cluster, 0, "eu2", |_| true).await < 0.05);
        let status = ok_json(&["-c", &name, "status", "--json"]).await;
        assert_eq!(
            status[3]["links"],
            "to eu1: delay 75ms ± 5ms uniform; to eu2: delay 75ms ± 5ms uniform; to eu3: delay 75ms ± 5ms uniform"
        );
        // A restarted node has a fresh network namespace: its links are set again.
        ok(&["-c", &name, "restart", "us1"]).await;
        let t = pingtime(&cluster, 3, "eu1", |t| t > 0.14).await;
        assert!(t < 0.2, "us1 to eu1 after the restart: {t}");
        // netem changes them at run time; `up` brings back the manifest's.
        ok(&["-c", &name, "netem", "--clear"]).await;
        pingtime(&cluster, 0, "us1", |t| t < 0.05).await;
        Cluster::up(load("continents.yaml", &name), &UpOptions::default())
            .await
            .unwrap()
            .keep();
        pingtime(&cluster, 0, "us1", |t| t > 0.14).await;
    });
}

/// Mines, on n0 while n1 is disconnected, a block holding one transaction of 400 outputs (≈ 14 KB that
/// n1 has never seen), reconnects the two, and returns the block's size and how long n1 took to have it.
pub(crate) async fn large_block_relay(cluster: &mut Cluster) -> (u64, Duration) {
    let n0 = cluster.nodes()[0].clone();
    cluster.disconnect("n0", "n1", WAIT).await.unwrap();
    let mut outputs = serde_json::Map::new();
    for _ in 0..400 {
        let address = n0.rpc.get_new_address().await.unwrap();
        outputs.insert(address, serde_json::json!(0.001));
    }
    let _: String = n0
        .rpc
        .call("sendmany", serde_json::json!(["", outputs]))
        .await
        .unwrap();
    let hash = cluster.mine("n0", 1).await.unwrap().pop().unwrap();
    let block: serde_json::Value = n0
        .rpc
        .call("getblock", serde_json::json!([hash, 1]))
        .await
        .unwrap();
    let size = block["size"].as_u64().unwrap();
    let start = std::time::Instant::now();
    cluster.connect("n0", "n1", WAIT).await.unwrap();
    cluster.sync_blocks(WAIT).await.unwrap();
    (size, start.elapsed())
}

#[test]
fn a_rate_limit_shows_in_the_relay_time_of_a_large_block() {
    run(async {
        let name = unique("rate");
        let spec = manifest::parse(
            &format!("name: {name}\ndefaults: {{wallet: true}}\nnodes: 2\ntopology: line\n"),
            "inline",
        )
        .unwrap();
        let (mut cluster, _guard) = up(spec).await;
        cluster.mine("n0", 101).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();
        let (size, free) = large_block_relay(&mut cluster).await;
        assert!(size > 10_000, "block of {size} bytes");
        // 64 kbit/s on what n0 sends: the block alone needs size × 8 / 64000 seconds on the wire.
        ok(&["-c", &name, "netem", "n0", "--rate", "64kbit"]).await;
        let (size, limited) = large_block_relay(&mut cluster).await;
        let wire = Duration::from_secs_f64(size as f64 * 8.0 / 64_000.0);
        assert!(
            limited >= wire.mul_f64(0.9),
            "{size} bytes at 64 kbit/s arrived in {limited:?}, faster than the wire's {wire:?}"
        );
        assert!(
            free * 2 < limited,
            "unlimited {free:?}, limited {limited:?}"
        );
        eprintln!(
            "a {size}-byte block: {free:?} unlimited, {limited:?} at 64 kbit/s (wire {wire:?})"
        );
    });
}
