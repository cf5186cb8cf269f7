//! The RPC relay of a multi-host cluster, from the engine's side: one container (`regbox relay`, from
//! the regbox image) on the cluster's control overlay, on the first host, with its port published there,
//! through which this process reaches every node's RPC by HTTP CONNECT — overlays are not routable from
//! outside their engines.

use std::net::SocketAddr;

use crate::core::blueprint::{self, LABEL_ROLE, RELAY_PORT, ROLE_RELAY};
use crate::core::subnet::Subnet;
use crate::engine::docker::{Docker, Net};
use crate::engine::error::{Error, Result};
use crate::engine::image;
use crate::engine::progress::Progress;

/// Where this process reaches cluster `cluster`'s relay, when it has a running one.
pub(crate) async fn address(docker: &Docker, cluster: &str) -> Result<Option<SocketAddr>> {
    let name = blueprint::relay_container(cluster);
    let found = docker
        .labeled_containers(&format!("{LABEL_ROLE}={ROLE_RELAY}"))
        .await?
        .into_iter()
        .find(|c| c.name == name && c.state == crate::core::plan::State::Running);
    Ok(found.and_then(|c| {
        let port = c.ports.iter().find(|(p, _)| *p == RELAY_PORT)?.1;
        Some(SocketAddr::new(docker.address_of(&c.host)?.into(), port))
    }))
}

/// The cluster's relay on `control` (first host), started — and its image built —
/// when none runs; returns where it is reached.
pub(crate) async fn ensure(
    docker: &Docker,
    cluster: &str,
    host: &str,
    control: (&Net, Subnet),
    progress: &Progress,
) -> Result<SocketAddr> {
    if let Some(addr) = address(docker, cluster).await? {
        return Ok(addr);
    }
    let name = blueprint::relay_container(cluster);
    docker.place(&name, host);
    let image = image::ensure_regbox_image(docker, &image::regbox_binary()?, progress).await?;
    // A stopped relay (its host rebooted, say) is replaced.
    docker.remove_container(&name).await?;
    let mut labels = blueprint::cluster_labels(cluster);
    labels.insert(LABEL_ROLE.into(), ROLE_RELAY.into());
    let (net, subnet) = control;
    docker
        .create_relay(&name, &image, net, subnet, RELAY_PORT, labels)
        .await?;
    docker.start(&name).await?;
    address(docker, cluster)
        .await?
        .ok_or_else(|| Error::Relay(format!("`{name}` started but publishes no port")))
}
