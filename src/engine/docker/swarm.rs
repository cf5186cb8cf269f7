//! Swarm membership of the hosts of a multi-host manifest: each host's part in a swarm, forming one,
//! leaving it. These act on the hosts' engines directly, before (or after) any cluster uses them.

use std::net::Ipv4Addr;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::ListContainersOptionsBuilder;

use crate::engine::docker::error::{DockerError, Result};
use crate::engine::docker::routing::label_filter;

/// One host's engine and its part in a swarm (`regbox swarm status`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SwarmMember {
    pub host: String,
    pub url: String,
    /// The engine's version (None: it did not answer).
    pub version: Option<String>,
    /// `inactive`, `pending`, `active`, `error`, `locked`, or `unreachable`.
    pub state: String,
    pub manager: bool,
    /// Its swarm address.
    pub address: Option<String>,
    pub node_id: Option<String>,
    pub error: Option<String>,
}

/// An engine of a multi-host cluster, as the manifest names it.
#[derive(Debug, Clone)]
pub struct HostEngine {
    pub name: String,
    /// `unix:///…` or `tcp://HOST:PORT`.
    pub url: String,
    /// Where its published ports are reached (None: its swarm address).
    pub address: Option<Ipv4Addr>,
}

impl HostEngine {
    /// An error about this host.
    pub(super) fn fail(&self, reason: String) -> DockerError {
        DockerError::Host {
            host: self.name.clone(),
            url: self.url.clone(),
            reason,
        }
    }

    /// A client for its engine (no call made yet).
    pub(super) fn api(&self) -> Result<bollard::Docker> {
        bollard::Docker::connect_with_host(&self.url)
            .map_err(|e| self.fail(format!("cannot connect: {e}")))
    }

    /// Its engine's swarm state.
    pub(super) async fn swarm(&self, api: &bollard::Docker) -> Result<bollard::models::SwarmInfo> {
        let info = api
            .info()
            .await
            .map_err(|e| self.fail(format!("does not answer: {e}")))?;
        Ok(info.swarm.unwrap_or_default())
    }
}

/// Each host's engine and its part in a swarm, asked without changing anything (a host that does
/// not answer says why).
pub async fn swarm_members(hosts: &[HostEngine]) -> Vec<SwarmMember> {
    futures::future::join_all(hosts.iter().map(|h| async move {
        let mut m = SwarmMember {
            host: h.name.clone(),
            url: h.url.clone(),
            ..SwarmMember::default()
        };
        let info = match h.api() {
            Ok(api) => api.info().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match info {
            Ok(info) => {
                let swarm = info.swarm.unwrap_or_default();
                m.version = info.server_version;
                m.state = swarm
                    .local_node_state
                    .map_or("unknown".into(), |s| s.to_string());
                m.manager = swarm.control_available == Some(true);
                m.address = swarm.node_addr.filter(|a| !a.is_empty());
                m.node_id = swarm.node_id.filter(|a| !a.is_empty());
                m.error = swarm.error.filter(|e| !e.is_empty());
            }
            Err(e) => {
                m.state = "unreachable".into();
                m.error = Some(e);
            }
        }
        m
    }))
    .await
}

/// Makes the hosts one swarm: the first initialises one when it is in none (advertising its
/// `address` when given), the others join it as workers when they are in none. Hosts already in
/// the first one's swarm are left as they are; a host in another swarm is an error. Returns what
/// was done, per host.
pub async fn form_swarm(hosts: &[HostEngine]) -> Result<Vec<String>> {
    use bollard::models::{LocalNodeState, SwarmInitRequest, SwarmJoinRequest};
    let mut done = Vec::new();
    let first = &hosts[0];
    let api = first.api()?;
    let mut swarm = first.swarm(&api).await?;
    if swarm.local_node_state != Some(LocalNodeState::ACTIVE) {
        api.init_swarm(SwarmInitRequest {
            listen_addr: Some("0.0.0.0:2377".into()),
            advertise_addr: first.address.map(|a| a.to_string()),
            ..Default::default()
        })
        .await
        .map_err(|e| first.fail(format!("cannot initialise a swarm: {e}")))?;
        swarm = first.swarm(&api).await?;
        done.push(format!("{}: initialised a swarm", first.name));
    } else {
        done.push(format!("{}: in a swarm already", first.name));
    }
    if swarm.control_available != Some(true) {
        return Err(first.fail("is in a swarm but not a manager".into()));
    }
    let manager = format!("{}:2377", swarm.node_addr.unwrap_or_default());
    let token = api
        .inspect_swarm()
        .await
        .map_err(|e| first.fail(format!("cannot read the join token: {e}")))?
        .join_tokens
        .and_then(|t| t.worker)
        .unwrap_or_default();
    let members = swarm_node_ids(&api).await?;
    for h in &hosts[1..] {
        let api = h.api()?;
        let swarm = h.swarm(&api).await?;
        if swarm.local_node_state == Some(LocalNodeState::ACTIVE) {
            if members.contains(&swarm.node_id.unwrap_or_default()) {
                done.push(format!("{}: in the swarm already", h.name));
                continue;
            }
            return Err(h.fail(format!(
                "is in another swarm than `{}`; leave it first",
                first.name
            )));
        }
        api.join_swarm(SwarmJoinRequest {
            listen_addr: Some("0.0.0.0:2377".into()),
            advertise_addr: h.address.map(|a| a.to_string()),
            remote_addrs: Some(vec![manager.clone()]),
            join_token: Some(token.clone()),
            ..Default::default()
        })
        .await
        .map_err(|e| h.fail(format!("cannot join the swarm at {manager}: {e}")))?;
        done.push(format!("{}: joined as a worker", h.name));
    }
    Ok(done)
}

/// Every host leaves its swarm (forced: a last manager takes the swarm with it), the first one
/// last — unless, with `busy`, a host runs containers carrying that label. Returns what was done,
/// per host.
pub async fn leave_swarm(hosts: &[HostEngine], busy: Option<&str>) -> Result<Vec<String>> {
    if let Some(label) = busy {
        for h in hosts {
            let opts = ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&label_filter(label))
                .build();
            let found = h.api()?.list_containers(Some(opts)).await;
            let names: Vec<String> = found
                .map_err(|e| h.fail(format!("cannot list its containers: {e}")))?
                .into_iter()
                .filter_map(|c| c.names?.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_string())
                .collect();
            if !names.is_empty() {
                return Err(h.fail(format!(
                    "still runs {} regbox container(s) ({}…); take the clusters down first",
                    names.len(),
                    names[0]
                )));
            }
        }
    }
    let mut done = Vec::new();
    for h in hosts.iter().rev() {
        let api = h.api()?;
        let opts = bollard::query_parameters::LeaveSwarmOptionsBuilder::new()
            .force(true)
            .build();
        match api.leave_swarm(Some(opts)).await {
            Ok(()) => done.push(format!("{}: left the swarm", h.name)),
            // 503: not in a swarm.
            Err(BollardError::DockerResponseServerError {
                status_code: 503, ..
            }) => done.push(format!("{}: in no swarm", h.name)),
            Err(e) => return Err(h.fail(format!("cannot leave its swarm: {e}"))),
        }
    }
    Ok(done)
}

/// The node ids of the swarm a manager engine manages.
pub(super) async fn swarm_node_ids(api: &bollard::Docker) -> Result<Vec<String>> {
    Ok(api
        .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
        .await
        .map_err(|source| DockerError::List {
            what: "the swarm's nodes",
            source,
        })?
        .into_iter()
        .filter_map(|n| n.id)
        .collect())
}
