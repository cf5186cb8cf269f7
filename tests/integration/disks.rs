//! Integration tests: bounded data directories and disk faults, verified by bitcoind itself — a full
//! disk stops it at its next flush saying why, and freed and started it comes back with its chain.

use super::*;
use regbox::exec::Exec;
use regbox::{wait, Report, Verb};

/// The loop device a volume is on, read from the engine.
async fn device_of(volume: &str) -> Option<String> {
    let v = outside::engine().inspect_volume(volume).await.ok()?;
    v.options.get("device").cloned()
}

#[test]
fn a_full_disk_stops_bitcoind_saying_why_and_freed_the_operator_brings_it_back_with_its_chain() {
    run(async {
        let name = unique("disk");
        let yaml = format!(
            "name: {name}\nnodes:\n  - name: a\n    disk: {{size: 200m}}\n  - name: b\ntopology: line\n"
        );
        let (mut cluster, _guard) = up(manifest::parse(&yaml, "disk.yaml").unwrap()).await;
        let how = Exec::default();
        cluster.mine("a", 5).await.unwrap();
        cluster.sync_blocks(WAIT).await.unwrap();

        // a's data is an ext4 filesystem of its own on a loop device; b's is the engine's disk.
        let volume = |n: &str| cluster.node(n).unwrap().layout.volume.clone();
        let device = device_of(&volume("a"))
            .await
            .expect("a's volume is on a device");
        assert!(device.starts_with("/dev/loop"), "{device}");
        assert_eq!(device_of(&volume("b")).await, None);
        let backing = format!("/sys/block/{}/loop/backing_file", &device["/dev/".len()..]);
        assert!(Path::new(&backing).exists(), "{backing}");

        // Filled: at its next write (a block from b) bitcoind stops itself, and status says why.
        match cluster
            .exec(
                &Verb::Disk {
                    node: "a".into(),
                    fill: true,
                },
                &how,
            )
            .await
            .unwrap()
        {
            Report::Disk(d) => assert!(d.full && d.node == "a"),
            other => panic!("{other:?}"),
        }
        cluster.mine("b", 1).await.unwrap();
        // bitcoind checks its space when it flushes its state: made to flush now, it stops itself.
        let flushed = cluster
            .node("a")
            .unwrap()
            .rpc
            .call::<serde_json::Value>("gettxoutsetinfo", serde_json::json!([]))
            .await;
        assert!(flushed.is_err(), "a flushed onto a full disk: {flushed:?}");
        let a = cluster.node("a").unwrap().layout.container.clone();
        wait::wait_until("a stops", WAIT, Duration::from_millis(200), || async {
            let running = (outside::engine().inspect_container(&a, None).await)
                .ok()
                .and_then(|c| c.state?.running);
            Ok::<_, regbox::Error>(match running {
                Some(false) => wait::Check::Ready(()),
                _ => wait::Check::Pending("running".into()),
            })
        })
        .await
        .unwrap();
        let status = cluster.status().await.unwrap();
        let why = status[0].error.clone().unwrap_or_default();
        assert!(why.contains("want of disk space"), "{why}");
        // b's data is untouched: it runs on, with its block.
        assert_eq!(status[1].height, Some(6), "{:?}", status[1]);
        // The full disk holds the node: a repair pass (the operator's) leaves it down.
        let pass = cluster.repair(WAIT).await.unwrap();
        assert_eq!(
            (pass.held.clone(), pass.restarted.clone()),
            (vec!["a".to_string()], vec![]),
            "{pass:?}"
        );

        // Freed: a is back with the chain it had, and catches up.
        cluster
            .exec(
                &Verb::Disk {
                    node: "a".into(),
                    fill: false,
                },
                &how,
            )
            .await
            .unwrap();
        // Freed, the hold is gone: the next repair pass starts it.
        let pass = cluster.repair(WAIT).await.unwrap();
        assert_eq!(pass.restarted, ["a"], "{pass:?}");
        let height: u64 = cluster
            .node("a")
            .unwrap()
            .rpc
            .get_block_count()
            .await
            .unwrap();
        assert!(height >= 5, "a came back at height {height}");
        cluster.sync_blocks(WAIT).await.unwrap();

        // A node without a bounded data directory has no disk to fill: bad input.
        let err = cluster
            .exec(
                &Verb::Disk {
                    node: "b".into(),
                    fill: true,
                },
                &how,
            )
            .await
            .unwrap_err();
        assert!(err.is_bad_input(), "{err}");

        // down lets the loop device go.
        cluster.down(&Progress::default()).await.unwrap();
        assert!(!Path::new(&backing).exists(), "{device} is still attached");
        assert_eq!(leftovers(&name).await, Vec::<String>::new());
    });
}
