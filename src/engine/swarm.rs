//! A cluster's hosts as one Docker Swarm: each host's part in it, the checks `up` makes before it
//! creates anything, forming the swarm (`regbox swarm init`) and leaving it.

use serde::Serialize;

use crate::core::cluster::blueprint;
use crate::core::cluster::manifest::ClusterSpec;
use crate::core::names::error_chain;
pub use crate::engine::docker::SwarmMember;
use crate::engine::docker::{self, Docker, HostEngine};
use crate::engine::error::Result;

/// The engines a spec's `hosts:` name, first one first.
pub(crate) fn engines(spec: &ClusterSpec) -> Vec<HostEngine> {
    spec.hosts
        .iter()
        .map(|h| HostEngine {
            name: h.name.clone(),
            url: h.docker.clone(),
            address: h.address,
        })
        .collect()
}

/// `regbox swarm status`: each host and whether a cluster may start across them.
#[derive(Debug, Clone, Serialize)]
pub struct SwarmStatus {
    pub hosts: Vec<HostStatus>,
    /// Why `up` would refuse to start (None: every check passed).
    pub problem: Option<String>,
}

/// One host as `regbox swarm status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    #[serde(flatten)]
    pub member: SwarmMember,
    /// The manifest's nodes placed on it.
    pub nodes: Vec<String>,
}

/// Each host of `spec`, and the checks `up` makes (see `Docker::connect_hosts`).
pub async fn status(spec: &ClusterSpec) -> SwarmStatus {
    let engines = engines(spec);
    let members = docker::swarm_members(&engines).await;
    let problem = Docker::connect_hosts(&engines)
        .await
        .err()
        .map(|e| error_chain(&e));
    let hosts = members
        .into_iter()
        .map(|member| HostStatus {
            nodes: spec
                .nodes_on(&member.host)
                .into_iter()
                .map(|i| spec.nodes[i].name.clone())
                .collect(),
            member,
        })
        .collect();
    SwarmStatus { hosts, problem }
}

/// Makes `spec`'s hosts one swarm (see `Docker::form_swarm`); what was done, per host.
pub async fn init(spec: &ClusterSpec) -> Result<Vec<String>> {
    Ok(docker::form_swarm(&engines(spec)).await?)
}

/// Every host of `spec` leaves its swarm — refused while a host runs regbox containers, unless
/// `force`; what was done, per host.
pub async fn leave(spec: &ClusterSpec, force: bool) -> Result<Vec<String>> {
    let busy = (!force).then(|| blueprint::cluster_filter(None));
    Ok(docker::leave_swarm(&engines(spec), busy.as_deref()).await?)
}
