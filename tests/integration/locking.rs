//! Integration tests: one writer at a time: racing writers, duplicate networks, lock takeover.

use super::*;

/// The cluster's peer graph as its nodes report it, after checking it is exactly the graph its
/// segments allow and that no network name is doubled; None when the cluster is gone (and then
/// nothing of it is left).
pub(crate) async fn settled(name: &str) -> Option<Vec<(usize, usize)>> {
    let cluster = match Cluster::open(Some(name)).await {
        Ok(c) => c,
        Err(cluster::Error::UnknownCluster(_)) => {
            assert_eq!(leftovers(name).await, Vec::<String>::new());
            return None;
        }
        Err(e) => panic!("open {name}: {e}"),
    };
    cluster
        .verify(false)
        .await
        .expect("the peer graph is the one the segments allow");
    let mut names: Vec<String> = outside::networks(Some(name))
        .await
        .into_iter()
        .map(|n| n.name)
        .collect();
    let count = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), count, "a network name is doubled: {names:?}");
    let g = edges(&graph(&cluster).await);
    cluster.keep();
    Some(g)
}

pub(crate) const RING6: [(usize, usize); 6] = [(0, 1), (0, 5), (1, 2), (2, 3), (3, 4), (4, 5)];

pub(crate) const HALVES6: [(usize, usize); 4] = [(0, 1), (1, 2), (3, 4), (4, 5)];

pub(crate) const ISOLATE0: [(usize, usize); 4] = [(1, 2), (2, 3), (3, 4), (4, 5)];

#[test]
fn duplicate_networks_made_by_hand_are_repaired_and_removed_by_down() {
    run(async {
        let name = unique("dup");
        let (mut cluster, _guard) = up(ring(&name, 4)).await;
        cluster
            .partition(&PartitionKind::Halves, CutMode::Drop, WAIT)
            .await
            .unwrap();
        // A second `seg1`, as two racing partitions made before there was a lock.
        let seg1 = format!("regbox-{name}-seg1");
        let cluster_label = ("regbox.cluster", name.as_str());
        outside::create_network(
            &seg1,
            &[
                cluster_label,
                ("regbox.role", "segment"),
                ("regbox.segment", "1"),
                ("regbox.mode", "drop"),
            ],
        )
        .await;
        let named =
            |nets: Vec<outside::Network>, n: &str| nets.iter().filter(|x| x.name == n).count();
        assert_eq!(named(outside::networks(Some(&name)).await, &seg1), 2);
        cluster
            .heal(WAIT)
            .await
            .expect("heal goes past the duplicate");
        assert_eq!(named(outside::networks(Some(&name)).await, &seg1), 0);
        assert_eq!(
            edges(&graph(&cluster).await),
            vec![(0, 1), (0, 3), (1, 2), (2, 3)]
        );

        // A second data network: `up` keeps the one the nodes are on and removes the other.
        let data = format!("regbox-{name}-data");
        outside::create_network(&data, &[cluster_label, ("regbox.role", "data")]).await;
        let again = Cluster::up(ring(&name, 4), &UpOptions::default())
            .await
            .unwrap();
        assert_eq!(named(outside::networks(Some(&name)).await, &data), 1);
        again.verify(false).await.unwrap();
        again.keep();

        // A leaked duplicate that nothing repaired: `down` removes it with the rest.
        outside::create_network(&data, &[cluster_label, ("regbox.role", "data")]).await;
        let report = cluster.down(&Progress::default()).await.unwrap();
        assert_eq!(report.networks, 3);
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn a_lock_whose_holder_died_is_taken_over_and_a_live_one_makes_writers_wait() {
    run(async {
        let name = unique("lock");
        let (cluster, _guard) = up(ring(&name, 6)).await;
        cluster.keep();
        let lock = format!("regbox-{name}.lock");
        let has_lock = || async {
            outside::containers(&name)
                .await
                .iter()
                .any(|c| c.name == lock)
        };

        // A partition killed half-way leaves its lock and a half-done change behind.
        let mut child = regbox()
            .args(["partition", &name, "--majorities-ring"])
            .spawn()
            .unwrap();
        loop {
            let segment = outside::networks(Some(&name))
                .await
                .iter()
                .any(|n| n.name.contains("-seg"));
            if has_lock().await && segment {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "the partition ended before it was killed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.kill().await.unwrap(); // SIGKILL: nothing is released
        assert!(has_lock().await);
        let out = regbox().args(["heal", &name]).output().await.unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("took over the lock") && err.contains("has exited"),
            "{err}"
        );
        assert_eq!(settled(&name).await.unwrap(), RING6);
        assert!(!has_lock().await, "heal released its lock");

        // A live holder on this host (this test process): writers fail fast or after --wait-lock,
        // naming it; readers never wait.
        let read = |p: &str| std::fs::read_to_string(p).unwrap().trim().to_string();
        let pid = std::process::id().to_string();
        let start = regbox::core::cluster::lock::process_start(&read("/proc/self/stat"))
            .unwrap()
            .to_string();
        let (host, boot) = (
            read("/proc/sys/kernel/hostname"),
            read("/proc/sys/kernel/random/boot_id"),
        );
        // Declared after the cluster's teardown, so dropped before it: a failed assertion below
        // removes this live-looking lock first, and the teardown's `down` does not wait on it.
        let _held = RemoveContainer(lock.clone());
        outside::create_marker(
            &lock,
            ensure_image(),
            &[
                ("regbox.cluster", &name),
                ("regbox.role", "lock"),
                ("regbox.lock.command", "test"),
                ("regbox.lock.host", &host),
                ("regbox.lock.boot", &boot),
                ("regbox.lock.pid", &pid),
                ("regbox.lock.pid-start", &start),
                ("regbox.lock.since", "0"),
            ],
        )
        .await;
        let started = std::time::Instant::now();
        let out = regbox()
            .args(["--wait-lock", "0", "heal", &name])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        let holder = format!("is being changed by another regbox (pid {pid} on host {host}, `test`, since 00:00:00 UTC)");
        assert!(err.contains(&holder), "{err}");
        let out = regbox()
            .args(["--wait-lock", "1", "-c", &name, "stop", "n2"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("waiting up to 1 s"),
            "{}",
            stderr(&out)
        );
        assert!(started.elapsed() >= Duration::from_secs(1));
        ok(&["status", &name, "--json"]).await;
        let ls = ok_json(&["ls", "--json"]).await;
        let me = ls
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name.as_str())
            .unwrap();
        assert!(
            me["changing"]
                .as_str()
                .unwrap()
                .contains(&format!("pid {pid}")),
            "{me}"
        );
        // Nothing changed while the lock was held by someone else.
        assert_eq!(settled(&name).await.unwrap(), RING6);
        outside::remove_container(&lock).await;
        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn racing_writers_take_turns_and_leave_one_of_the_intended_states() {
    run(async {
        let name = unique("race");
        let _guard = Teardown(name.clone());
        let manifest = TempFile::new(
            "ring.yaml",
            &format!("name: {name}\nnodes: 6\ntopology: ring\n"),
        );
        let file = manifest.to_str().unwrap().to_string();
        for round in 0..5 {
            // up/up: both succeed (the second waits, then finds nothing to do).
            let (a, b) = at_once(&["up", &file], &["up", &file]).await;
            assert!(
                a.status.success() && b.status.success(),
                "{}\n{}",
                stderr(&a),
                stderr(&b)
            );
            assert_eq!(settled(&name).await.unwrap(), RING6);

            // partition/partition: both succeed, and the one that ran last is in force.
            let (a, b) = at_once(
                &["partition", &name, "--halves"],
                &["-c", &name, "partition", "--isolate", "n0"],
            )
            .await;
            assert!(
                a.status.success() && b.status.success(),
                "{}\n{}",
                stderr(&a),
                stderr(&b)
            );
            let g = settled(&name).await.unwrap();
            assert!(g == HALVES6 || g == ISOLATE0, "round {round}: {g:?}");

            // partition/heal.
            let (a, b) = at_once(&["partition", &name, "--halves"], &["heal", &name]).await;
            assert!(
                a.status.success() && b.status.success(),
                "{}\n{}",
                stderr(&a),
                stderr(&b)
            );
            let g = settled(&name).await.unwrap();
            assert!(g == HALVES6 || g == RING6, "round {round}: {g:?}");

            // A fault during a partition: both apply, and n1 comes back inside the partition.
            let (a, b) = at_once(
                &["-c", &name, "stop", "n1"],
                &["partition", &name, "--halves"],
            )
            .await;
            assert!(
                a.status.success() && b.status.success(),
                "{}\n{}",
                stderr(&a),
                stderr(&b)
            );
            ok(&["-c", &name, "start", "n1"]).await;
            assert_eq!(settled(&name).await.unwrap(), HALVES6);

            // heal/down: the cluster ends removed; a heal that came second says so.
            let (a, b) = at_once(&["heal", &name], &["down", &name]).await;
            assert!(b.status.success(), "{}", stderr(&b));
            if !a.status.success() {
                let err = stderr(&a);
                assert!(
                    err.contains("was removed by another command")
                        || err.contains("no cluster named"),
                    "{err}"
                );
            }
            assert_eq!(settled(&name).await, None);

            // up/down: either order is fine; what is left is whole or nothing.
            let (a, b) = at_once(&["up", &file], &["down", &name]).await;
            assert!(a.status.success(), "{}", stderr(&a));
            if let Some(g) = settled(&name).await {
                assert_eq!(g, RING6);
            } else {
                assert!(b.status.success(), "{}", stderr(&b));
            }
        }
        if settled(&name).await.is_some() {
            ok(&["down", &name]).await;
        }
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

#[test]
fn a_held_lock_marker_runs_its_heartbeat_locked_down() {
    run(async {
        let name = unique("lockhard");
        let (cluster, _guard) = up(cluster_spec(&name, 2, "line")).await;
        cluster.keep();
        let lock = format!("regbox-{name}.lock");
        let n1 = format!("regbox-{name}-n1");
        let engine = outside::engine();
        // A connect to a frozen node waits for a handshake that cannot come: the lock stays held, and
        // its heartbeat starts the marker every few seconds.
        engine.pause_container(&n1).await.unwrap();
        let mut child = regbox()
            .args(["-c", &name, "connect", "n1", "n0"])
            .spawn()
            .unwrap();
        let beaten = loop {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the connect ended while its peer was frozen"
            );
            if let Ok(c) = engine.inspect_container(&lock, None).await {
                let state = c.state.clone().unwrap();
                let started = state.started_at.clone().unwrap_or_default();
                if !started.starts_with("0001") && state.running == Some(false) {
                    break c;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        interrupt(&child);
        child.wait().await.unwrap();
        engine.unpause_container(&n1).await.unwrap();

        let state = beaten.state.unwrap();
        assert_eq!(state.exit_code, Some(0), "the heartbeat ran: {state:?}");
        let config = beaten.config.unwrap();
        let user = config.user.unwrap_or_default();
        let uid = user.split(':').next().unwrap_or_default();
        assert!(
            !uid.is_empty() && uid != "0" && uid != "root",
            "the marker runs as `{user}`"
        );
        let host = beaten.host_config.unwrap();
        assert_eq!(host.cap_drop.unwrap_or_default(), ["ALL"]);
        assert!(host.cap_add.unwrap_or_default().is_empty());
        assert!(host
            .security_opt
            .unwrap_or_default()
            .iter()
            .any(|o| o.starts_with("no-new-privileges")));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert!(host.memory.unwrap_or(0) > 0, "no memory limit");
        assert!(host.pids_limit.unwrap_or(0) > 0, "no process limit");
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        // What the engine keeps of its output is bounded too.
        let log = host.log_config.clone().unwrap_or_default();
        let max = log.config.unwrap_or_default().get("max-size").cloned();
        assert!(max.is_some(), "an unbounded log: {:?}", log.typ);

        ok(&["down", &name]).await;
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}

/// The lock marker's `State.StartedAt` (the heartbeat), with whether it runs and its exit code.
async fn marker_state(lock: &str) -> (String, bool, i64) {
    let state = outside::engine()
        .inspect_container(lock, None)
        .await
        .unwrap()
        .state
        .unwrap();
    (
        state.started_at.unwrap_or_default(),
        state.running == Some(true),
        state.exit_code.unwrap_or(0),
    )
}

/// Waits up to 20 s for the marker's start time to be set and other than `not`; returns it.
async fn next_beat(lock: &str, not: &str) -> String {
    let since = std::time::Instant::now();
    loop {
        let (started, _, _) = marker_state(lock).await;
        if !started.starts_with("0001") && started != not {
            return started;
        }
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "the heartbeat of {lock} stands still at {started}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_held_lock_beats_whatever_the_image_bitcoind_does() {
    run_without_image(async {
        let name = unique("lockimg");
        // A bitcoind only root may run (mode 0700): the marker, which runs as nobody, cannot run it.
        // Named outside `regbox/bitcoind`, so no other test's `image ls` lists them.
        let private = import_bitcoind(
            &format!("regbox-test/lockimg:{name}-private"),
            "#include <stdio.h>\nint main(void) { puts(\"Bitcoin Core version v0.0.7\"); return 0; }\n",
            "0700",
        );
        // A bitcoind that never exits (as one that ignores `-version` would not): a start of the still
        // running marker would be a no-op.
        let stuck = import_bitcoind(
            &format!("regbox-test/lockimg:{name}-stuck"),
            "#include <unistd.h>\nint main(void) { for (;;) pause(); }\n",
            "0755",
        );
        for (image, cluster) in [
            (&private, format!("{name}-p")),
            (&stuck, format!("{name}-s")),
        ] {
            let lock = format!("regbox-{cluster}.lock");
            let guard =
                regbox::engine::lock::acquire_here(&cluster, &image.0, "test", Duration::ZERO)
                    .await
                    .expect("the lock is taken");
            let first = next_beat(&lock, "").await;
            let at = std::time::Instant::now();
            let second = next_beat(&lock, &first).await;
            assert!(
                at.elapsed() >= Duration::from_secs(3),
                "{lock}: two beats {first} and {second} within {:?}",
                at.elapsed()
            );
            if image.0 == private.0 {
                // The case at hand: the program cannot run as the marker's user, and the heartbeat
                // goes on anyway.
                let since = std::time::Instant::now();
                let code = loop {
                    let (_, running, code) = marker_state(&lock).await;
                    if !running {
                        break code;
                    }
                    assert!(since.elapsed() < Duration::from_secs(5), "{lock} runs on");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                };
                assert_ne!(code, 0, "{lock}: bitcoind ran");
            }
            guard.release().await;
            assert_eq!(leftovers(&cluster).await, Vec::<String>::new());
        }
    });
}
