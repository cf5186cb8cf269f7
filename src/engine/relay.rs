//! The RPC relay of a multi-host cluster, from the engine's side: one container (`regbox relay`, from
//! the regbox image) on the cluster's control overlay, on the first host, with its port published there,
//! through which this process reaches every node's RPC by HTTP CONNECT — overlays are not routable from
//! outside their engines.

use std::net::{Ipv4Addr, SocketAddr};

use crate::core::cluster::blueprint::{self, LABEL_ROLE, RELAY_PORT, ROLE_RELAY, RPC_PORT};
use crate::core::cluster::plan::State;
use crate::core::cluster::subnet::Subnet;
use crate::engine::docker::{ContainerInfo, ContainerSpec, Docker, Net};
use crate::engine::error::{Error, Result};
use crate::engine::image;
use crate::engine::reconcile::Effects;

/// The cluster's relay container, as listed (None: there is none).
async fn find(docker: &Docker, cluster: &str) -> Result<Option<ContainerInfo>> {
    let name = blueprint::relay_container(cluster);
    Ok(docker
        .labeled_containers(&format!("{LABEL_ROLE}={ROLE_RELAY}"))
        .await?
        .into_iter()
        .find(|c| c.name == name))
}

/// Where this process reaches a running relay.
fn address_of(docker: &Docker, relay: &ContainerInfo) -> Option<SocketAddr> {
    if relay.state != State::Running {
        return None;
    }
    let port = relay.ports.iter().find(|(p, _)| *p == RELAY_PORT)?.1;
    Some(SocketAddr::new(
        docker.address_of(&relay.host)?.into(),
        port,
    ))
}

/// How this process reaches the nodes' RPC: directly on one engine (None); across hosts, through the
/// cluster's relay, which must run.
pub(crate) async fn reach(docker: &Docker, cluster: &str) -> Result<Option<SocketAddr>> {
    if !docker.is_multi_host() {
        return Ok(None);
    }
    let relay = find(docker, cluster).await?;
    match relay.as_ref().and_then(|r| address_of(docker, r)) {
        Some(addr) => Ok(Some(addr)),
        None => Err(Error::Relay(format!(
            "`{}` does not run (or publishes no port) on the first host; `regbox up` starts it again",
            blueprint::relay_container(cluster)
        ))),
    }
}

/// The cluster's relay on `control` (on `host`, the first), requiring `token`, started — and its image
/// built — when none runs on that network; returns where it is reached. One this run creates goes into
/// its journal.
pub(crate) async fn ensure(
    docker: &Docker,
    cluster: &str,
    host: &str,
    control: (&Net, Subnet),
    token: &str,
    fx: &Effects<'_>,
) -> Result<SocketAddr> {
    let (net, subnet) = control;
    let name = blueprint::relay_container(cluster);
    if let Some(relay) = find(docker, cluster).await? {
        // A relay left on a control network that was since made again reaches nothing.
        let on_control = relay.networks.iter().any(|e| e.network == net.id);
        if let Some(addr) = address_of(docker, &relay).filter(|_| on_control) {
            return Ok(addr);
        }
        docker.remove_container(&name).await?;
    }
    docker.place(&name, host);
    // Published on the one address of the host regbox reaches it at, not on every interface.
    let at = docker.address_of(host).ok_or_else(|| {
        Error::Relay(format!(
            "no address known for host `{host}` to publish the relay on"
        ))
    })?;
    let image = image::ensure_regbox_image(docker, &image::regbox_binary()?, fx.progress).await?;
    let mut labels = blueprint::cluster_labels(cluster);
    labels.insert(LABEL_ROLE.into(), ROLE_RELAY.into());
    fx.journal.lock().unwrap().containers.push(name.clone());
    let spec = relay_container(
        &image,
        net,
        (subnet, RPC_PORT),
        (at, RELAY_PORT),
        token,
        labels,
    );
    docker.create(&name, &spec).await?;
    docker.start(&name).await?;
    let relay = find(docker, cluster).await?;
    relay
        .as_ref()
        .and_then(|r| address_of(docker, r))
        .ok_or_else(|| Error::Relay(format!("`{name}` started but publishes no port")))
}

/// regbox's recipe for the RPC relay's container: `regbox relay` from the regbox image on network
/// `net`, letting CONNECT tunnels with `token` reach `allow` (subnet, port) only, listening on `port`,
/// published on an ephemeral port of its engine's host at address `at`, started again by the engine
/// unless stopped.
fn relay_container(
    image: &str,
    net: &Net,
    allow: (Subnet, u16),
    (at, port): (Ipv4Addr, u16),
    token: &str,
    labels: std::collections::HashMap<String, String>,
) -> ContainerSpec {
    let cmd = [
        "relay",
        "--listen",
        &format!("0.0.0.0:{port}"),
        "--allow",
        &allow.0.to_string(),
        "--port",
        &allow.1.to_string(),
    ];
    ContainerSpec {
        image: image.to_string(),
        entrypoint: vec!["/usr/bin/regbox".into()],
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        env: vec![format!("REGBOX_RELAY_TOKEN={token}")],
        labels,
        network: Some((net.clone(), None)),
        restart: true,
        publish: Some((at, port)),
        stop_timeout: 2,
        ..ContainerSpec::default()
    }
}
