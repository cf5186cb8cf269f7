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
    let ping = || async {
        let _: serde_json::Value = node.rpc.call("ping", serde_json::json!([])).await.unwrap();
    };
    let peers = || async {
        node.rpc
            .call("getpeerinfo", serde_json::json!([]))
            .await
            .unwrap()
    };
    ping_until(node.name(), peer, ping, peers, want).await
}

/// Whether `at` lists a session with `peer`.
pub(crate) async fn lists(cluster: &Cluster, at: usize, peer: &str) -> bool {
    let peers = cluster.nodes()[at].rpc.get_peer_info().await.unwrap();
    peers
        .iter()
        .any(|p| p.subver.contains(&format!("({peer})")))
}

/// The TCP counters of a node's network namespace — `Tcp:` of `/proc/net/snmp` and `TcpExt:` of
/// `/proc/net/netstat`, by name (`Tcp:InCsumErrors`, `TcpExt:TCPOFOQueue`) — read from the test
/// process through the container's main process (the node containers are read-only and hold no tools).
pub(crate) fn tcp_counters(container: &str) -> BTreeMap<String, u64> {
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Pid}}", container])
        .output()
        .unwrap();
    let pid = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut counters = BTreeMap::new();
    for file in ["snmp", "netstat"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).unwrap();
        counters.extend(tcp_counters_in(&text));
    }
    counters
}

/// A node's TCP segments retransmitted so far.
pub(crate) fn retransmits(container: &str) -> u64 {
    tcp_counters(container)["Tcp:RetransSegs"]
}

/// What every node's TCP counters grew by while `work` ran (`node name → counter → growth`); the
/// counters are read again a moment after it, so that the last acknowledgements are counted.
async fn counted<F: std::future::Future<Output = ()>>(
    cluster: &Cluster,
    work: F,
) -> BTreeMap<String, BTreeMap<String, u64>> {
    let container = |n: &regbox::cluster::Node| format!("regbox-{}-{}", cluster.name(), n.name());
    let before: Vec<_> = cluster
        .nodes()
        .iter()
        .map(|n| tcp_counters(&container(n)))
        .collect();
    work.await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster
        .nodes()
        .iter()
        .zip(before)
        .map(|(n, before)| {
            let after = tcp_counters(&container(n));
            let grown = after
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.saturating_sub(before.get(k).copied().unwrap_or(0)),
                    )
                })
                .collect();
            (n.name().to_string(), grown)
        })
        .collect()
}

/// The sum of some counters' growth at one node.
fn grew(counts: &BTreeMap<String, BTreeMap<String, u64>>, node: &str, names: &[&str]) -> u64 {
    names
        .iter()
        .map(|k| counts[node].get(*k).copied().unwrap_or(0))
        .sum()
}

/// Duplicate segments the receiver has answered with a D-SACK (RFC 2883): a copy of data it already
/// had, or already held out of order.
const DSACKS_SENT: [&str; 2] = ["TcpExt:TCPDSACKOldSent", "TcpExt:TCPDSACKOfoSent"];

/// The peer entry node `at` lists for `peer` (matched by the user agent comment), if any.
async fn peer_entry(cluster: &Cluster, at: usize, peer: &str) -> Option<serde_json::Value> {
    let peers: Vec<serde_json::Value> = cluster.nodes()[at]
        .rpc
        .call("getpeerinfo", serde_json::json!([]))
        .await
        .unwrap();
    let comment = format!("({peer})");
    peers
        .into_iter()
        .find(|p| p["subver"].as_str().is_some_and(|s| s.contains(&comment)))
}

/// Sends `bytes` of P2P traffic from node `from` to its peer `to` over their session: one message of
/// a type no node knows (`sendmsgtopeer`; bitcoind counts it as `*other*` and ignores it), which TCP
/// carries as a burst of full segments. Returns once `to` has received all of it.
async fn burst(cluster: &Cluster, from: usize, to: usize, bytes: usize) {
    let (a, b) = (cluster.nodes()[from].name(), cluster.nodes()[to].name());
    let other = |p: Option<serde_json::Value>| {
        p.and_then(|p| p["bytesrecv_per_msg"]["*other*"].as_u64())
            .unwrap_or(0)
    };
    let before = other(peer_entry(cluster, to, a).await);
    let id = peer_entry(cluster, from, b).await.expect("a session")["id"].clone();
    let _: serde_json::Value = cluster.nodes()[from]
        .rpc
        .call(
            "sendmsgtopeer",
            serde_json::json!([id, "junk", "ab".repeat(bytes)]),
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while other(peer_entry(cluster, to, a).await) < before + bytes as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{b} never got {a}'s {bytes} bytes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each node's link faults as `status --json` reports them.
async fn links_of(name: &str) -> Vec<String> {
    ok_json(&["-c", name, "status", "--json"])
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["links"].as_str().unwrap().to_string())
        .collect()
}

/// Ping round trips as the nodes measure them: each round asks every node of `initiators` to ping
/// its peers and waits until each has the pong of each peer (bitcoind's `pong` byte count has grown
/// and no ping is outstanding), at most 5 s. Returns the ping times in milliseconds by
/// `"node-peer"`.
async fn ping_rounds(
    cluster: &Cluster,
    initiators: &[usize],
    rounds: usize,
) -> BTreeMap<String, Vec<f64>> {
    let mut times: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let entries = |at: usize| async move {
        let peers: Vec<serde_json::Value> = cluster.nodes()[at]
            .rpc
            .call("getpeerinfo", serde_json::json!([]))
            .await
            .unwrap();
        peers
            .into_iter()
            .map(|p| {
                let subver = p["subver"].as_str().unwrap_or_default();
                let peer = subver
                    .split_once('(')
                    .and_then(|(_, rest)| rest.split_once(')'))
                    .map_or("", |(peer, _)| peer)
                    .to_string();
                let link = format!("{}-{peer}", cluster.nodes()[at].name());
                (link, p)
            })
            .collect::<Vec<_>>()
    };
    let pongs = |p: &serde_json::Value| p["bytesrecv_per_msg"]["pong"].as_u64().unwrap_or(0);
    for _ in 0..rounds {
        let mut waiting: BTreeMap<String, u64> = BTreeMap::new();
        for &at in initiators {
            for (link, p) in entries(at).await {
                waiting.insert(link, pongs(&p));
            }
        }
        for &at in initiators {
            let _: serde_json::Value = cluster.nodes()[at]
                .rpc
                .call("ping", serde_json::json!([]))
                .await
                .unwrap();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !waiting.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(25)).await;
            for &at in initiators {
                for (link, p) in entries(at).await {
                    let answered = waiting.get(&link).is_some_and(|&b| pongs(&p) > b)
                        && p.get("pingwait").is_none();
                    if let (true, Some(t)) = (answered, p["pingtime"].as_f64()) {
                        waiting.remove(&link);
                        times.entry(link).or_default().push(t * 1000.0);
                    }
                }
            }
        }
    }
    times
}

/// Smallest, median and largest of some times.
fn spread(xs: &[f64]) -> (f64, f64, f64) {
    let mut xs = xs.to_vec();
    xs.sort_by(f64::total_cmp);
    (xs[0], xs[xs.len() / 2], xs[xs.len() - 1])
}

#[test]
fn link_faults_show_in_what_the_nodes_report_and_go_with_down() {
    run(async {
        let name = unique("links");
        let (cluster, _guard) = up(ring(&name, 4)).await;
        let c = ["-c", name.as_str()];
        // A delay on n0's packets: every ping time at n0, and n1's to n0, is about 100 ms.
        // Upper bounds on ping times are waited for (`pingtime` polls up to a minute), not asserted
        // of one sample: load on the machine only adds time, so one slow sample proves nothing,
        // while no sample of a link shaped more than asked — or of a shaped link said to be
        // unshaped — could ever come in under them.
        let plane = ok(&[&c[..], &["netem", "n0", "--delay", "100ms"]].concat()).await;
        assert!(plane.contains("n0    delay 100ms"), "{plane}");
        pingtime(&cluster, 1, "n0", |t| t > 0.095 && t < 0.15).await;
        pingtime(&cluster, 0, "n3", |t| t > 0.095 && t < 0.15).await;
        // The other links are not shaped.
        pingtime(&cluster, 1, "n2", |t| t < 0.05).await;
        // One link of n2's: only towards n3.
        ok(&[
            &c[..],
            &[
                "netem", "n2", "--to", "n3", "--delay", "200ms", "--jitter", "10ms",
            ],
        ]
        .concat())
        .await;
        pingtime(&cluster, 3, "n2", |t| t > 0.17 && t < 0.26).await;
        pingtime(&cluster, 1, "n2", |t| t < 0.05).await;
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
        // eu1 and us1 are peers across the ocean: 75 ms each way. (Upper bounds are waited for, as
        // in the test above: load only adds time.)
        pingtime(&cluster, 0, "us1", |t| t > 0.14 && t < 0.2).await;
        pingtime(&cluster, 0, "eu2", |t| t < 0.05).await;
        let status = ok_json(&["-c", &name, "status", "--json"]).await;
        assert_eq!(
            status[3]["links"],
            "to eu1: delay 75ms ± 5ms uniform; to eu2: delay 75ms ± 5ms uniform; to eu3: delay 75ms ± 5ms uniform"
        );
        // A restarted node has a fresh network namespace: its links are set again.
        ok(&["-c", &name, "restart", "us1"]).await;
        pingtime(&cluster, 3, "eu1", |t| t > 0.14 && t < 0.2).await;
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
        // A lower bound only: no load makes a block cross faster than the wire lets it. The
        // unlimited time is printed, not compared: on a busy machine it is bounded by the load,
        // not by the link, and may come near the limited one.
        assert!(
            limited >= wire.mul_f64(0.9),
            "{size} bytes at 64 kbit/s arrived in {limited:?}, faster than the wire's {wire:?}"
        );
        eprintln!(
            "a {size}-byte block: {free:?} unlimited, {limited:?} at 64 kbit/s (wire {wire:?})"
        );
    });
}

/// Corruption, duplication and reordering, each read from the kernel counters of the node that
/// receives the shaped packets (n1, from n0), against a node that receives only unshaped ones (n2,
/// from n1), over the same burst of traffic on both links.
#[test]
fn corruption_duplication_and_reordering_show_in_the_receivers_tcp_counters() {
    run(async {
        let name = unique("pkts");
        let (cluster, _guard) = up(cluster_spec(&name, 3, "line")).await;
        let c = ["-c", name.as_str()];
        // 300 kB each way: ≈ 210 full segments from n0 to n1, as many from n1 to n2 — enough that
        // 10% of them falling short of the bounds below has a chance under 10^-6.
        let both = || async {
            tokio::join!(
                burst(&cluster, 0, 1, 300_000),
                burst(&cluster, 1, 2, 300_000)
            );
        };

        // Corruption flips a bit past the IP header, where TCP's checksum covers it: n1's kernel
        // drops the segment as a checksum error (and n0 sends it again).
        ok(&[&c[..], &["netem", "n0", "--corrupt", "10%"]].concat()).await;
        assert_eq!(links_of(&name).await, ["corrupt 10%", "", ""]);
        let counts = counted(&cluster, both()).await;
        let errors = |n: &str| grew(&counts, n, &["Tcp:InCsumErrors"]);
        eprintln!(
            "corrupt 10%: checksum errors n1 {} n2 {}, n0 retransmitted {}",
            errors("n1"),
            errors("n2"),
            grew(&counts, "n0", &["Tcp:RetransSegs"])
        );
        assert!(errors("n1") >= 3, "{counts:?}");
        assert_eq!(errors("n2"), 0, "no corruption on n1's packets: {counts:?}");
        assert!(grew(&counts, "n0", &["Tcp:RetransSegs"]) >= 3, "{counts:?}");

        // Duplication: each copy arrives after its original, and n1 answers it with a D-SACK, which
        // n0 receives. n2 would send one only for a spurious retransmission of n1's (under heavy
        // load), so it is allowed two.
        ok(&[&c[..], &["netem", "n0", "--duplicate", "10%"]].concat()).await;
        assert_eq!(links_of(&name).await, ["duplicate 10%", "", ""]);
        let counts = counted(&cluster, both()).await;
        let dsacks = |n: &str| grew(&counts, n, &DSACKS_SENT);
        eprintln!(
            "duplicate 10%: D-SACKs sent n1 {} n2 {}, received by n0 {}",
            dsacks("n1"),
            dsacks("n2"),
            grew(&counts, "n0", &["TcpExt:TCPDSACKRecv"])
        );
        assert!(dsacks("n1") >= 3, "{counts:?}");
        assert!(dsacks("n2") <= 2, "{counts:?}");
        assert!(
            grew(&counts, "n0", &["TcpExt:TCPDSACKRecv"]) >= 1,
            "{counts:?}"
        );

        // Reordering: a third of n0's segments go at once, overtaking the ones held 100 ms; n1
        // queues what arrives ahead of a gap, and n0 sees the reordering in n1's SACKs.
        ok(&[
            &c[..],
            &["netem", "n0", "--delay", "100ms", "--reorder", "30%"],
        ]
        .concat())
        .await;
        assert_eq!(links_of(&name).await, ["delay 100ms, reorder 30%", "", ""]);
        let counts = counted(&cluster, both()).await;
        let queued = |n: &str| grew(&counts, n, &["TcpExt:TCPOFOQueue"]);
        let reorder = [
            "TcpExt:TCPSACKReorder",
            "TcpExt:TCPTSReorder",
            "TcpExt:TCPRenoReorder",
        ];
        eprintln!(
            "delay 100ms, reorder 30%: out-of-order queued n1 {} n2 {}, reordering seen by n0 {}",
            queued("n1"),
            queued("n2"),
            grew(&counts, "n0", &reorder)
        );
        assert!(queued("n1") >= 5, "{counts:?}");
        assert!(queued("n2") <= 2, "{counts:?}");
        assert!(grew(&counts, "n0", &reorder) >= 1, "{counts:?}");
    });
}

/// Jitter as the nodes measure it, per distribution, on three links of a ring at once (the fourth
/// unshaped), then Blockade's shorthands: each read back as its expansion, and what it does seen by
/// the nodes.
#[test]
fn jitter_spreads_ping_times_by_its_distribution_and_shorthands_act_as_they_expand() {
    run(async {
        let name = unique("jitter");
        let (cluster, _guard) = up(ring(&name, 4)).await;
        let c = ["-c", name.as_str()];
        // One direction of three links, 100 ms ± 40 ms each: n0 → n1 uniform, n1 → n2 normal,
        // n2 → n3 Pareto; n3 — n0 unshaped.
        for (from, to, distribution) in [
            ("n0", "n1", "uniform"),
            ("n1", "n2", "normal"),
            ("n2", "n3", "pareto"),
        ] {
            ok(&[
                &c[..],
                &[
                    "netem",
                    from,
                    "--to",
                    to,
                    "--delay",
                    "100ms",
                    "--jitter",
                    "40ms",
                    "--distribution",
                    distribution,
                ],
            ]
            .concat())
            .await;
        }
        assert_eq!(
            links_of(&name).await,
            [
                "to n1: delay 100ms ± 40ms uniform",
                "to n2: delay 100ms ± 40ms normal",
                "to n3: delay 100ms ± 40ms pareto",
                ""
            ]
        );
        // n1 and n3 ping: every link has one pinging end, so each ping crosses its link's shaped
        // direction once (n1's pings to n2, the pongs n0 and n2 send back) and the other unshaped.
        let times = ping_rounds(&cluster, &[1, 3], 30).await;
        for (link, xs) in &times {
            let (min, median, max) = spread(xs);
            eprintln!(
                "{link}: {} ping times, min {min:.1} median {median:.1} max {max:.1} ms",
                xs.len()
            );
        }
        let (d, j) = (100.0, 40.0);
        // Only lower bounds, which load cannot break (it only adds time), and a spread of at least
        // part of the jitter (load adds spread, it does not take it away).
        // Uniform: nothing faster than delay − jitter, a spread of at least the jitter (of 2 × 40
        // possible: 30 draws all within one half has a chance of 30 / 2^29).
        let xs = &times["n1-n0"];
        assert!(xs.len() >= 20, "{times:?}");
        let (min, _, max) = spread(xs);
        assert!(min >= d - j, "uniform: {xs:?}");
        assert!(max - min >= j, "uniform: {xs:?}");
        // Normal: a wider tail than uniform could have; one draw in three falls outside ± 1σ, so
        // 30 draws all inside has a chance of 1 in 10^5 — and load only pushes samples out.
        let xs = &times["n1-n2"];
        assert!(xs.len() >= 20, "{times:?}");
        let (min, _, max) = spread(xs);
        assert!(xs.iter().any(|&t| t < d - j || t > d + j), "normal: {xs:?}");
        assert!(max - min >= j, "normal: {xs:?}");
        // Pareto (shape 3, σ = jitter): never below delay − 0.58 × jitter (its minimum; uniform and
        // normal go below it one draw in five), and spread out.
        let xs = &times["n3-n2"];
        assert!(xs.len() >= 20, "{times:?}");
        let (min, _, max) = spread(xs);
        assert!(min >= d - 0.58 * j, "pareto: {xs:?}");
        assert!(max - min >= j / 3.0, "pareto: {xs:?}");

        // `slow` on every node: 75 ms ± 100 ms normal each way, so a round trip averages ≈ 175 ms
        // (no draw below zero); the mean of 24 round trips stays above one way's delay.
        ok(&[&c[..], &["netem", "--clear"]].concat()).await;
        let plane = ok(&[&c[..], &["netem", "--like", "slow"]].concat()).await;
        assert!(plane.contains("n3    delay 75ms ± 100ms normal"), "{plane}");
        assert_eq!(links_of(&name).await, ["delay 75ms ± 100ms normal"; 4]);
        let times = ping_rounds(&cluster, &[1, 3], 6).await;
        let all: Vec<f64> = times.values().flatten().copied().collect();
        let mean = all.iter().sum::<f64>() / all.len() as f64;
        let (min, median, max) = spread(&all);
        eprintln!(
            "slow: {} ping times, mean {mean:.1} min {min:.1} median {median:.1} max {max:.1} ms",
            all.len()
        );
        assert!(all.len() >= 16 && mean >= 75.0, "slow: {times:?}");

        // `flaky`: 30% of every node's packets lost; TCP sends again what n0 lost of a burst (of
        // ≈ 40 segments, none lost has a chance of 0.7^40, 10^-6).
        ok(&[&c[..], &["netem", "--like", "flaky"]].concat()).await;
        assert_eq!(links_of(&name).await, ["loss 30%"; 4]);
        let counts = counted(&cluster, burst(&cluster, 0, 1, 60_000)).await;
        eprintln!(
            "flaky: n0 retransmitted {} segments of a 60 kB burst",
            grew(&counts, "n0", &["Tcp:RetransSegs"])
        );
        assert!(grew(&counts, "n0", &["Tcp:RetransSegs"]) >= 1, "{counts:?}");

        // `fast`: no shaping anywhere.
        let plane = ok(&[&c[..], &["netem", "--like", "fast"]].concat()).await;
        assert_eq!(plane.trim(), "no link faults");
        assert_eq!(links_of(&name).await, [""; 4]);

        // `duplicate` on n0: 5% of its packets twice. Over 1 MB (≈ 700 segments, ≈ 35 copies) n1,
        // which receives them, sends D-SACKs; n2, receiving as much from n1 unshaped, (almost) none.
        ok(&[&c[..], &["netem", "n0", "--like", "duplicate"]].concat()).await;
        assert_eq!(links_of(&name).await, ["duplicate 5%", "", "", ""]);
        let counts = counted(&cluster, async {
            tokio::join!(
                burst(&cluster, 0, 1, 1_000_000),
                burst(&cluster, 1, 2, 1_000_000)
            );
        })
        .await;
        let dsacks = |n: &str| grew(&counts, n, &DSACKS_SENT);
        eprintln!(
            "duplicate: D-SACKs sent n1 {} n2 {}",
            dsacks("n1"),
            dsacks("n2")
        );
        assert!(dsacks("n1") >= 5, "{counts:?}");
        assert!(dsacks("n2") <= 2, "{counts:?}");
    });
}

/// A container's full ID and its main process's host PID, as the engine reports them.
fn id_and_pid(container: &str) -> (String, u32) {
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{.Id}} {{.State.Pid}}", container])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (id, pid) = text.trim().split_once(' ').expect("an ID and a PID");
    (id.to_string(), pid.parse().unwrap())
}

/// Sends one raw request to the cluster's agent (as regbox does, through `docker exec`) and returns
/// its reply.
fn agent_call(cluster: &str, request: &serde_json::Value) -> serde_json::Value {
    let agent = format!("regbox-{cluster}.agent");
    let out = Command::new("docker")
        .args(["exec", &agent, "/usr/bin/regbox", "agent", "call"])
        .arg(request.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Waits until node `at` lists `peer` (`want`) or no longer does (`!want`).
async fn until_lists(cluster: &Cluster, at: usize, peer: &str, want: bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while lists(cluster, at, peer).await != want {
        let who = cluster.nodes()[at].name();
        assert!(
            tokio::time::Instant::now() < deadline,
            "{who} lists {peer}: {}",
            !want
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn link_faults_and_cuts_outlive_the_agent() {
    run(async {
        let name = unique("agentdies");
        let (cluster, _guard) = up(cluster_spec(&name, 3, "line")).await;
        let c = ["-c", name.as_str()];
        let agent = format!("regbox-{name}.agent");
        // A delay on one link (n2 → n1), a cut answered by resets on another (n0 ↔ n1).
        ok(&[&c[..], &["netem", "n2", "--to", "n1", "--delay", "200ms"]].concat()).await;
        ok(&[&c[..], &["cut", "n0", "n1", "--reset"]].concat()).await;
        for node in &cluster.nodes()[..2] {
            let _: serde_json::Value = node.rpc.call("ping", serde_json::json!([])).await.unwrap();
        }
        until_lists(&cluster, 0, "n1", false).await;
        until_lists(&cluster, 1, "n0", false).await;
        let before = pingtime(&cluster, 1, "n2", |t| t > 0.19).await;
        let (first, _) = id_and_pid(&agent);

        // The agent dies. Its queue is bypassed: n2's packets pass undelayed.
        outside::kill(&agent).await;
        let dead = pingtime(&cluster, 1, "n2", |t| t < 0.1).await;

        // The next command starts it again (here `status`; every command reads the plane), and the
        // new agent restores every node from its record before it answers.
        let links = links_of(&name).await;
        assert_eq!(
            links,
            [
                "cut to n1 (reset)",
                "cut to n0 (reset)",
                "to n1: delay 200ms"
            ]
        );
        let (second, _) = id_and_pid(&agent);
        assert_ne!(first, second, "the agent is a new container");
        let after = pingtime(&cluster, 1, "n2", |t| t > 0.19).await;

        // A command that changes the cut node's plane keeps the cut: n1 dialling n0 is refused.
        ok(&[&c[..], &["netem", "n0", "--to", "n2", "--delay", "10ms"]].concat()).await;
        let n0 = format!("{}:18444", cluster.nodes()[0].layout.data_ip);
        ok(&[&c[..], &["rpc", "n1", "addnode", &n0, "onetry"]].concat()).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            !lists(&cluster, 1, "n0").await,
            "n1 reached n0 across the cut"
        );
        assert!(
            !lists(&cluster, 0, "n1").await,
            "n0 lists n1 across the cut"
        );
        eprintln!(
            "ping n1-n2: {before:.3} s set, {dead:.3} s with the agent dead, {after:.3} s restored"
        );

        // Without the cut the same dial connects at once: the check above can fail.
        ok(&[&c[..], &["netem", "--clear"]].concat()).await;
        ok(&[&c[..], &["heal"]].concat()).await;
        ok(&[&c[..], &["rpc", "n1", "addnode", &n0, "onetry"]].concat()).await;
        until_lists(&cluster, 1, "n0", true).await;
        cluster.down(&Progress::default()).await.unwrap();
        assert!(leftovers(&name).await.is_empty());
    });
}

#[test]
fn the_agent_refuses_a_process_that_is_not_the_named_node_container() {
    run(async {
        let name = unique("agentns");
        let (cluster, _guard) = up(ring(&name, 3)).await;
        // Any link fault starts the agent.
        ok(&["-c", &name, "netem", "n2", "--delay", "1ms"]).await;
        let (n0, n0_pid) = id_and_pid(&format!("regbox-{name}-n0"));
        let (_, n1_pid) = id_and_pid(&format!("regbox-{name}-n1"));
        let (_, agent_pid) = id_and_pid(&format!("regbox-{name}.agent"));
        let set = |pid: u32, container: &str| {
            serde_json::json!({"set": {"nodes": [{
                "name": "n0",
                "pid": pid,
                "container": container,
                "faults": {"cuts": {"1": "drop"}},
            }]}})
        };
        // Another node's process, the agent's own, the host's first process, this test's process, a
        // PID with no process, and a name instead of an ID: each refused, and n0 left untouched.
        let short = n0[..12].to_string();
        let refused = [
            (n1_pid, n0.as_str(), "is not in container"),
            (agent_pid, n0.as_str(), "is not in container"),
            (1, n0.as_str(), "is not in container"),
            (std::process::id(), n0.as_str(), "is not in container"),
            (u32::MAX / 2, n0.as_str(), "cannot open process"),
            (n0_pid, short.as_str(), "is not a container ID"),
        ];
        for (pid, container, why) in refused {
            let reply = agent_call(&name, &set(pid, container));
            let e = reply["errors"]["n0"].as_str().unwrap_or_default();
            assert!(
                e.contains("refused") && e.contains(why),
                "pid {pid}, container {container}: {reply}"
            );
            assert!(reply["nodes"].get("n0").is_none(), "{reply}");
        }
        // n0's own process is accepted (so the refusals above are not a refusal of everything), and
        // its cut is recorded with the others.
        let reply = agent_call(&name, &set(n0_pid, &n0));
        assert_eq!(reply["errors"], serde_json::json!({}), "{reply}");
        assert_eq!(
            reply["nodes"]["n0"]["cuts"],
            serde_json::json!({"1": "drop"})
        );
        let status = links_of(&name).await;
        assert_eq!(status, ["cut to n1 (drop)", "", "delay 1ms"]);
        cluster.down(&Progress::default()).await.unwrap();
        assert!(leftovers(&name).await.is_empty());
    });
}

/// The best block hash node `at` reports.
async fn best(cluster: &Cluster, at: usize) -> String {
    let rpc = &cluster.nodes()[at].rpc;
    rpc.call("getbestblockhash", serde_json::json!([]))
        .await
        .unwrap()
}

#[test]
fn the_operator_starts_a_killed_agent_again_and_the_nodes_feel_its_faults() {
    run(async {
        let name = unique("opagent");
        let _guard = Teardown(name.clone());
        let file = TempFile::new(
            "opagent.yaml",
            &format!("name: {name}\nnodes: 3\ntopology: line\n"),
        );
        // The timer is 10 minutes away: a pass that comes sooner is the one the agent's death wakes.
        let (port, mut changes, limit) = (free_port(), Vec::new(), Duration::from_secs(90));
        let base = format!("http://127.0.0.1:{port}");
        let mut operator = regbox()
            .args(["operator", file.to_str().unwrap(), "--interval", "600"])
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        crate::operator::status_until(&base, limit, &mut changes, |s| {
            s["last_pass"]["error"].is_null() && s["metrics"]["nodes"][2]["up"] == true
        })
        .await;
        let cluster = Cluster::open(Some(&name)).await.unwrap();
        let c = ["-c", name.as_str()];
        let agent = format!("regbox-{name}.agent");
        // On the line n0–n1–n2: a delay on n2 → n1, a cut by resets between n0 and n1.
        ok(&[&c[..], &["netem", "n2", "--to", "n1", "--delay", "200ms"]].concat()).await;
        ok(&[&c[..], &["cut", "n0", "n1", "--reset"]].concat()).await;
        for node in &cluster.nodes()[..2] {
            let _: serde_json::Value = node.rpc.call("ping", serde_json::json!([])).await.unwrap();
        }
        until_lists(&cluster, 0, "n1", false).await;
        until_lists(&cluster, 1, "n0", false).await;
        let before = pingtime(&cluster, 1, "n2", |t| t > 0.19).await;
        let (first, _) = id_and_pid(&agent);

        // The agent dies; the operator's next pass, woken by its death, starts it again, and the
        // new agent restores every node from its record.
        outside::kill(&agent).await;
        let killed = std::time::Instant::now();
        let line = format!("start the fault agent `{agent}` again");
        let pass = crate::operator::status_until(&base, limit, &mut changes, |s| {
            (s["last_pass"]["changes"].as_array().into_iter().flatten()).any(|c| *c == *line)
        })
        .await;
        let took = killed.elapsed();
        let trigger = pass["last_pass"]["trigger"].as_str().unwrap();
        assert!(trigger.contains(&format!("event: {agent} die")), "{pass:#}");
        assert!(pass["last_pass"]["error"].is_null(), "{pass:#}");
        let (second, _) = id_and_pid(&agent);
        assert_ne!(first, second, "the agent is a new container");

        // The nodes feel it: n2's packets to n1 are held 200 ms again …
        let after = pingtime(&cluster, 1, "n2", |t| t > 0.19).await;
        // … and the cut still cuts: a block mined on n0 never reaches n1 or n2, while one mined on
        // n2 afterwards crosses to n1 (over the delayed link).
        ok(&[&c[..], &["mine", "n0", "1"]].concat()).await;
        let n0_tip = best(&cluster, 0).await;
        ok(&[&c[..], &["mine", "n2", "1"]].concat()).await;
        let n2_tip = best(&cluster, 2).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while best(&cluster, 1).await != n2_tip {
            assert!(
                std::time::Instant::now() < deadline,
                "n2's block never reached n1"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for _ in 0..20 {
            for at in [1, 2] {
                assert_ne!(
                    best(&cluster, at).await,
                    n0_tip,
                    "n0's block crossed the cut"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            !lists(&cluster, 0, "n1").await,
            "the operator dialed across the cut"
        );
        eprintln!(
            "ping n1-n2: {before:.3} s set, {after:.3} s after the operator restarted the agent \
             ({took:?} after the kill)"
        );
        operator.kill().await.unwrap();
        cluster.down(&Progress::default()).await.unwrap();
        assert!(leftovers(&name).await.is_empty());
    });
}
