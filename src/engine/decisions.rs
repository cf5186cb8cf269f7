//! The engine's own decisions, unit-tested against the in-memory Docker engine (`docker::fake`) in
//! milliseconds: a failed `up` rolls back what it made, a lock whose holder is gone is taken over
//! while a live one is respected, `down` removes a cluster's duplicate networks with the rest, and
//! `heal` finishes a partition that was cut short. The fake runs no bitcoind, so every node here is
//! stopped: nothing is asked over RPC.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::core::cluster::blueprint::{self, LABEL_ROLE};
use crate::core::cluster::lock::{Holder, ROLE_LOCK};
use crate::core::cluster::manifest::ClusterSpec;
use crate::core::cluster::subnet::Subnet;
use crate::engine::cluster::Cluster;
use crate::engine::docker::fake::Fake;
use crate::engine::docker::{Docker, Net};
use crate::engine::error::Error;
use crate::engine::lifecycle::{self, UpOptions};
use crate::engine::lock;
use crate::engine::progress::Progress;

const IMAGE: &str = "fake/bitcoind:1";

/// A fake engine with a node image, and a handle on it.
fn engine() -> (Arc<Fake>, Docker) {
    let fake = Arc::new(Fake::default());
    fake.add_image(IMAGE, HashMap::new());
    (fake.clone(), Docker::from_api(fake))
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

/// A 4-node ring recorded on the fake as `up` leaves it, every node stopped, with a partition
/// {n0, n1} | {n2, n3} cut short after moving n2 alone: n2 is on segment 1, n3 still on the base.
async fn half_partitioned(docker: &Docker) -> (Net, Net) {
    use crate::core::cluster::blueprint::{
        Networks, LABEL_MODE, LABEL_RPC_PASSWORD, LABEL_SEGMENT, LABEL_SPEC, ROLE_META,
    };
    let spec = ring("half");
    let net = |role: &str, subnet: &str, segment: Option<&str>| {
        let mut labels = blueprint::cluster_labels("half");
        labels.insert(LABEL_ROLE.into(), role.into());
        if let Some(s) = segment {
            labels.insert(LABEL_SEGMENT.into(), s.into());
            labels.insert(LABEL_MODE.into(), "drop".into());
        }
        (subnet.parse::<Subnet>().unwrap(), labels)
    };
    let mut made = Vec::new();
    for (name, (subnet, labels)) in [
        (
            blueprint::control_network("half"),
            net("control", "10.128.0.0/20", None),
        ),
        (
            blueprint::data_network("half"),
            net("data", "10.128.16.0/20", None),
        ),
        (
            blueprint::segment_network("half", 1),
            net("segment", "10.128.32.0/20", Some("1")),
        ),
    ] {
        made.push((
            docker.create_network(&name, subnet, labels).await.unwrap(),
            subnet,
        ));
    }
    let [(control, control_subnet), (data, data_subnet), (segment, segment_subnet)] =
        made.try_into().unwrap();
    let mut meta = blueprint::cluster_labels("half");
    meta.insert(LABEL_ROLE.into(), ROLE_META.into());
    meta.insert(LABEL_SPEC.into(), serde_json::to_string(&spec).unwrap());
    meta.insert(LABEL_RPC_PASSWORD.into(), "pw".into());
    let marker = blueprint::meta_container("half");
    docker
        .create_marker(&marker, IMAGE, &["true"], meta)
        .await
        .unwrap();
    let nets = Networks {
        control: control_subnet,
        data: data_subnet,
        rpcauth: lifecycle::rpcauth_for("pw"),
        init_token: blueprint::init_token("pw"),
    };
    for l in blueprint::nodes(&spec, &nets) {
        let node = crate::engine::launch::node_container(&l, control.clone(), None);
        docker.create(&l.container, &node).await.unwrap();
        let (on, subnet) = match l.index {
            2 => (&segment, segment_subnet),
            _ => (&data, data_subnet),
        };
        let ip = blueprint::node_address(subnet, l.index);
        docker.connect_network(&l.container, on, ip).await.unwrap();
    }
    (data, segment)
}

#[tokio::test]
async fn heal_finishes_a_half_made_partition_by_moving_only_what_moved() {
    let (fake, docker) = engine();
    let (data, segment) = half_partitioned(&docker).await;
    let mut cluster = Cluster::open_on(docker, Some("half")).await.unwrap();
    // The partition as Docker holds it is read back: n2 alone on segment 1.
    assert_eq!(
        cluster.segments_of(2),
        vec![blueprint::segment_network("half", 1)]
    );
    assert_eq!(
        cluster.segments_of(3),
        vec![blueprint::data_network("half")]
    );
    let report = cluster.heal(Duration::from_secs(5)).await.unwrap();
    assert_eq!(report.segments.len(), 1, "{report:?}");
    let world = fake.world.lock().unwrap();
    // n2 is back on the base segment at its own address; segment 1 is gone; nothing else moved.
    let n2 = &world.containers["regbox-half-n2"];
    let subnet: Subnet = "10.128.16.0/20".parse().unwrap();
    assert_eq!(
        n2.networks.get(&data.id),
        Some(&Some(blueprint::node_address(subnet, 2)))
    );
    assert!(!n2.networks.contains_key(&segment.id));
    assert!(world.networks.iter().all(|n| n.id != segment.id));
    for other in ["regbox-half-n0", "regbox-half-n1", "regbox-half-n3"] {
        assert!(
            world.containers[other].networks.contains_key(&data.id),
            "{other}"
        );
    }
    // And the lock went with the heal.
    assert!(!world.containers.contains_key(&lock::lock_name("half")));
}

/// A metadata container whose `regbox.spec` label no manifest could give is refused by name, never
/// used: `open` (every command on a cluster) says which cluster and which label, and `down` still
/// removes the cluster.
#[tokio::test]
async fn a_recorded_spec_that_breaks_the_manifest_rules_is_refused() {
    use crate::core::cluster::blueprint::{LABEL_RPC_PASSWORD, LABEL_SPEC, ROLE_META};
    let (fake, docker) = engine();
    let json = |change: &dyn Fn(&mut ClusterSpec), name: &str| {
        let mut spec = ring(name);
        change(&mut spec);
        serde_json::to_string(&spec).unwrap()
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "arg",
            json(
                &|s| s.nodes[1].args.push("-blocknotify=curl x".into()),
                "arg",
            ),
            "-blocknotify",
        ),
        (
            "count",
            json(
                &|s| {
                    let node = s.nodes[0].clone();
                    s.nodes = (0..2000)
                        .map(|i| crate::core::cluster::manifest::NodeSpec {
                            name: format!("n{i}"),
                            ..node.clone()
                        })
                        .collect();
                },
                "count",
            ),
            "nodes must be between 1 and 1000, got 2000",
        ),
        (
            "slash",
            json(&|s| s.nodes[2].name = "n/2".into(), "slash"),
            "invalid node name `n/2`",
        ),
        (
            "garbage",
            "{\"name\": 1".into(),
            "does not read as a cluster spec",
        ),
        (
            "other",
            json(&|_| {}, "someone-else"),
            "it is the spec of cluster `someone-else`",
        ),
    ];
    for (cluster, spec, why) in &cases {
        let mut meta = blueprint::cluster_labels(cluster);
        meta.insert(LABEL_ROLE.into(), ROLE_META.into());
        meta.insert(LABEL_SPEC.into(), spec.clone());
        meta.insert(LABEL_RPC_PASSWORD.into(), "pw".into());
        docker
            .create_marker(&blueprint::meta_container(cluster), IMAGE, &["true"], meta)
            .await
            .unwrap();
        let e = match Cluster::open_on(docker.clone(), Some(cluster)).await {
            Ok(_) => panic!("cluster `{cluster}` opened with a bad record"),
            Err(e) => e,
        };
        assert!(matches!(e, Error::BadRecord { .. }), "{e}");
        let message = e.to_string();
        assert!(
            message.starts_with(&format!(
                "cluster `{cluster}`: the spec recorded in label `regbox.spec` of its metadata container \
                 is refused: "
            )),
            "{message}"
        );
        assert!(message.contains(why), "{message}");
        lifecycle::down(&docker, cluster, &Progress::default(), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            fake.labeled(&format!("regbox.cluster={cluster}")),
            Vec::<String>::new()
        );
    }
}
