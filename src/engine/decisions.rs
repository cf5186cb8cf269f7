//! The engine's own decisions, unit-tested against the in-memory Docker engine (`docker::fake`) in
//! milliseconds: a failed `up` rolls back what it made, a lock whose holder is gone is taken over
//! while a live one is respected, and `down` removes a cluster's duplicate networks with the rest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::core::cluster::blueprint::{self, LABEL_ROLE};
use crate::core::cluster::lock::{Holder, ROLE_LOCK};
use crate::core::cluster::manifest::ClusterSpec;
use crate::core::cluster::subnet::Subnet;
use crate::engine::cluster::Cluster;
use crate::engine::docker::fake::Fake;
use crate::engine::docker::Docker;
use crate::engine::error::Error;
use crate::engine::lifecycle::{self, UpOptions};
use crate::engine::lock;
use crate::engine::progress::Progress;

const IMAGE: &str = "fake/bitcoind:1";

/// A fake engine with a node image, and a handle on it.
fn engine() -> (Arc<Fake>, Docker) {
    let fake = Arc::new(Fake::default());
    fake.add_image(IMAGE, HashMap::new());
    (fake.clone(), Docker::on(fake))
}

fn ring(name: &str) -> ClusterSpec {
    let mut spec = ClusterSpec::default_ring4();
    spec.rename(name).unwrap();
    spec.with_image(IMAGE).unwrap();
    spec
}

/// A process of this machine that is gone, as a lock holder would name it.
fn gone_holder() -> Holder {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    Holder {
        command: "partition".into(),
        host: "here".into(),
        boot: boot.trim().into(),
        // Above any pid_max: no process has it.
        pid: u32::MAX - 1,
        pid_start: 1,
        since: 0,
    }
}

fn lock_labels(cluster: &str, holder: &Holder) -> HashMap<String, String> {
    let mut labels = blueprint::cluster_labels(cluster);
    labels.insert(LABEL_ROLE.into(), ROLE_LOCK.into());
    labels.extend(holder.labels());
    labels
}

#[tokio::test]
async fn a_failed_up_removes_what_it_made_and_says_so() {
    let (fake, docker) = engine();
    // The data network is the second thing `up` makes (after the control network and the lock): the
    // failure comes before any node exists, so nothing here waits for a node that cannot answer.
    fake.fail("create_network", &blueprint::data_network("roll"));
    let opts = UpOptions {
        teardown_on_drop: false,
        ..UpOptions::default()
    };
    let failed = Cluster::up_on(docker, ring("roll"), &opts, std::future::pending()).await;
    let Err(Error::RolledBack { source, cleanup }) = failed else {
        panic!("expected a rolled-back failure");
    };
    assert!(source.to_string().contains("create network"), "{source}");
    assert!(cleanup.contains("removed"), "{cleanup}");
    assert_eq!(fake.labeled("regbox.cluster=roll"), Vec::<String>::new());
}

#[tokio::test]
async fn a_lock_whose_holder_is_gone_is_taken_over() {
    let (fake, docker) = engine();
    let name = lock::lock_name("taken");
    docker
        .create_marker(
            &name,
            IMAGE,
            &["true"],
            lock_labels("taken", &gone_holder()),
        )
        .await
        .unwrap();
    let guard = lock::acquire(&docker, "taken", IMAGE, "heal", Duration::ZERO)
        .await
        .unwrap();
    let held = docker.inspect_marker(&name).await.unwrap().unwrap();
    let holder = Holder::from_labels(&held.labels).unwrap();
    assert_eq!(
        (holder.pid, holder.command.as_str()),
        (std::process::id(), "heal")
    );
    guard.release().await;
    assert!(fake.labeled("regbox.cluster=taken").is_empty());
}

#[tokio::test]
async fn a_live_holder_keeps_the_lock_and_the_waiter_names_it() {
    let (_fake, docker) = engine();
    let first = lock::acquire(&docker, "busy", IMAGE, "partition", Duration::ZERO)
        .await
        .unwrap();
    let second = lock::acquire(&docker, "busy", IMAGE, "heal", Duration::ZERO).await;
    match second {
        Err(Error::Locked { holder, .. }) => assert!(holder.contains("partition"), "{holder}"),
        Err(e) => panic!("expected the lock to be held, got {e}"),
        Ok(_) => panic!("expected the lock to be held"),
    }
    first.release().await;
}

#[tokio::test]
async fn down_removes_duplicate_networks_and_everything_labeled() {
    let (fake, docker) = engine();
    let labels = blueprint::cluster_labels("dup");
    let control = blueprint::control_network("dup");
    // Docker 20.10 takes a second network of a name: both go, by id.
    for k in [1, 2] {
        let subnet: Subnet = format!("10.254.{k}.0/24").parse().unwrap();
        docker
            .create_network(&control, subnet, labels.clone())
            .await
            .unwrap();
    }
    let nets = docker.all_networks().await.unwrap();
    let spec = crate::engine::docker::ContainerSpec {
        image: IMAGE.into(),
        labels: labels.clone(),
        network: Some(((&nets[0]).into(), Some("10.254.1.2".parse().unwrap()))),
        volume: Some(("regbox-dup-n0".into(), "/data".into())),
        ..Default::default()
    };
    docker.create("regbox-dup-n0", &spec).await.unwrap();
    docker.start("regbox-dup-n0").await.unwrap();
    let report = lifecycle::down(&docker, "dup", &Progress::default(), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        (report.containers, report.volumes, report.networks),
        (1, 1, 2)
    );
    assert_eq!(fake.labeled("regbox.cluster=dup"), Vec::<String>::new());
}
