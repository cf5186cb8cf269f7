//! Networks and volumes on the real engines: internal bridges, or attachable overlays across hosts;
//! endpoints detached with care for Docker 20.10's endpoint count (moby#42119).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{
    EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, NetworkConnectRequest,
    NetworkCreateRequest, NetworkDisconnectRequest,
};
use bollard::query_parameters::{
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, RemoveVolumeOptionsBuilder,
};
use futures::StreamExt;

use crate::core::cluster::subnet::Subnet;
use crate::engine::docker::api::{Networks, Routing};
use crate::engine::docker::error::{absent_is, DockerError, Result};
use crate::engine::docker::routing::{label_filter, Engines};
use crate::engine::docker::types::{Net, NetworkInfo};

/// How long the other engines of a swarm may go on listing an overlay the first one removed.
const NETWORK_FORGET: Duration = Duration::from_secs(20);

#[async_trait]
impl Networks for Engines {
    async fn all_networks(&self) -> Result<Vec<NetworkInfo>> {
        let mut all: Vec<NetworkInfo> = Vec::new();
        for n in self
            .each_engine(|_, api| networks_on(api, None))
            .await?
            .into_iter()
            .flatten()
        {
            if !all.iter().any(|m| m.id == n.id) {
                all.push(n);
            }
        }
        Ok(all)
    }

    async fn labeled_networks(&self, label: &str) -> Result<Vec<NetworkInfo>> {
        networks_on(&self.api, Some(label_filter(label))).await
    }

    async fn create_network(
        &self,
        name: &str,
        subnet: Subnet,
        labels: HashMap<String, String>,
    ) -> Result<Net> {
        let config = NetworkCreateRequest {
            name: name.to_string(),
            // Across hosts: a swarm-scoped overlay that plain containers may join.
            driver: Some(
                if self.fleet.is_some() {
                    "overlay"
                } else {
                    "bridge"
                }
                .into(),
            ),
            attachable: self.fleet.is_some().then_some(true),
            // IPsec ESP between the hosts; the engine makes the network even where the kernel cannot
            // carry it (then nothing crosses): `engine::encrypt` probes first.
            options: (self.fleet.as_ref())
                .filter(|f| f.encrypted.load(std::sync::atomic::Ordering::Relaxed))
                .map(|_| HashMap::from([("encrypted".to_string(), String::new())])),
            // On one engine, `internal`: the engine forwards nothing from the bridge to an address
            // outside its subnet, so a node reaches nothing beyond this host (no NAT to the world, no
            // other network; the host's own addresses still answer, as nothing forwards them). This
            // host still reaches every node's RPC (its own traffic is not forwarded), and a container
            // that joins the network (the operator's) keeps its own default route. Across hosts the
            // control overlay carries the relay, whose port must be published: not there.
            internal: self.fleet.is_none().then_some(true),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.to_string()),
                    ip_range: Some(subnet.dynamic_range().to_string()),
                    gateway: Some(subnet.gateway().to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(labels),
            ..Default::default()
        };
        self.api
            .create_network(config)
            .await
            .map(|r| Net {
                id: r.id,
                name: name.to_string(),
            })
            .map_err(|source| DockerError::CreateNetwork {
                name: name.into(),
                subnet,
                source,
            })
    }

    async fn remove_network(&self, net: &Net) -> Result<()> {
        let mut attempt = 0;
        loop {
            let removed = self.api.remove_network(&net.id).await;
            match absent_is(removed, (), |source| DockerError::RemoveNetwork {
                name: net.name.clone(),
                source,
            }) {
                // Across hosts, a container just removed on another host may still hold its
                // overlay attachment (a task) for a moment.
                Err(e)
                    if attempt < 20
                        && (e.is_stale_endpoints()
                            || (self.fleet.is_some() && e.is_in_use_by_task())) =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 * attempt.min(5))).await;
                }
                Err(e) => return Err(e),
                Ok(()) => break,
            }
        }
        self.until_forgotten(net).await
    }

    async fn connect_network(&self, container: &str, net: &Net, ip: Ipv4Addr) -> Result<()> {
        self.attach_endpoint(container, net, static_endpoint(ip))
            .await
    }

    async fn join_network(&self, container: &str, net: &Net) -> Result<()> {
        if self
            .network_members(net)
            .await?
            .iter()
            .any(|m| m == container)
        {
            return Ok(());
        }
        self.attach_endpoint(container, net, EndpointSettings::default())
            .await
    }

    async fn network_members(&self, net: &Net) -> Result<Vec<String>> {
        let found = self
            .each_engine(|host, api| async move {
                let found = api
                    .inspect_network(
                        &net.id,
                        None::<bollard::query_parameters::InspectNetworkOptions>,
                    )
                    .await;
                let info = absent_is(found.map(Some), None, |source| DockerError::List {
                    what: "a network's containers",
                    source,
                })?;
                let ids = info.and_then(|n| n.containers).unwrap_or_default();
                Ok(ids.into_keys().map(|id| (host, id)).collect::<Vec<_>>())
            })
            .await?;
        Ok(found
            .into_iter()
            .flatten()
            .map(|(host, id)| {
                // Callers act on them next (detach): on the engine they were found on.
                self.place(&id, host);
                id
            })
            .collect())
    }

    async fn disconnect_network(&self, container: &str, net: &Net) -> Result<()> {
        let config = NetworkDisconnectRequest {
            container: container.to_string(),
            force: Some(true),
        };
        let detached = self.on(container).disconnect_network(&net.id, config).await;
        absent_is(detached, (), |source| DockerError::Disconnect {
            container: container.into(),
            network: net.name.clone(),
            source,
        })
    }

    // Docker 20.10 loses count of a network's endpoints when several of them are deleted at once, and
    // a network left counting an endpoint nothing holds refuses removal until the daemon restarts
    // (moby#42119). Each engine keeps its own count, so across hosts one network's endpoints go one
    // at a time per engine.
    async fn detach(
        &self,
        groups: Vec<(Net, Vec<String>)>,
        detached: &(dyn for<'x> Fn(&'x str) + Sync),
    ) -> Result<()> {
        let groups: Vec<(Net, Vec<String>)> = match &self.fleet {
            None => groups,
            Some(_) => groups
                .into_iter()
                .flat_map(|(net, members)| {
                    let mut by_engine: std::collections::BTreeMap<usize, Vec<String>> =
                        Default::default();
                    for m in members {
                        by_engine.entry(self.index_of(&m)).or_default().push(m);
                    }
                    by_engine
                        .into_values()
                        .map(move |members| (net.clone(), members))
                })
                .collect(),
        };
        let results: Vec<Result<()>> =
            futures::stream::iter(groups.into_iter().map(|(net, members)| async move {
                for container in &members {
                    self.disconnect_network(container, &net).await?;
                    detached(container);
                }
                Ok(())
            }))
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn labeled_volumes(&self, label: &str) -> Result<Vec<String>> {
        let opts = ListVolumesOptionsBuilder::new()
            .filters(&label_filter(label))
            .build();
        let lists = self
            .each_engine(|_, api| {
                let opts = opts.clone();
                async move {
                    let list =
                        api.list_volumes(Some(opts))
                            .await
                            .map_err(|source| DockerError::List {
                                what: "volumes",
                                source,
                            })?;
                    Ok(list.volumes.unwrap_or_default().into_iter().map(|v| v.name))
                }
            })
            .await?;
        Ok(lists.into_iter().flatten().collect())
    }

    async fn create_volume(
        &self,
        name: &str,
        labels: HashMap<String, String>,
        options: HashMap<String, String>,
    ) -> Result<()> {
        let body = bollard::models::VolumeCreateRequest {
            name: Some(name.to_string()),
            driver: Some("local".into()),
            driver_opts: Some(options),
            labels: Some(labels),
            ..Default::default()
        };
        self.on(name)
            .create_volume(body)
            .await
            .map(drop)
            .map_err(|source| DockerError::Volume {
                action: "create",
                name: name.into(),
                source,
            })
    }

    async fn volume(
        &self,
        name: &str,
    ) -> Result<Option<(HashMap<String, String>, HashMap<String, String>)>> {
        let found = self
            .on(name)
            .inspect_volume(name)
            .await
            .map(|v| Some((v.options, v.labels)));
        absent_is(found, None, |source| DockerError::Volume {
            action: "inspect",
            name: name.into(),
            source,
        })
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        let opts = RemoveVolumeOptionsBuilder::new().force(true).build();
        self.each_engine(|_, api| {
            let opts = opts.clone();
            async move {
                let removed = api.remove_volume(name, Some(opts)).await;
                absent_is(removed, (), |source| DockerError::RemoveVolume {
                    name: name.into(),
                    source,
                })
            }
        })
        .await
        .map(drop)
    }
}

impl Engines {
    /// Across hosts, waits until no engine lists a removed overlay any more (each forgets it when the
    /// swarm tells it, a moment after the removal): what `down` removed is then gone everywhere.
    async fn until_forgotten(&self, net: &Net) -> Result<()> {
        if self.fleet.is_none() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        self.each_engine(|host, api| async move {
            loop {
                let found = api
                    .inspect_network(
                        &net.id,
                        None::<bollard::query_parameters::InspectNetworkOptions>,
                    )
                    .await;
                let found =
                    absent_is(found.map(Some), None, |source| DockerError::RemoveNetwork {
                        name: net.name.clone(),
                        source,
                    })?;
                match found {
                    None => return Ok(()),
                    Some(_) if started.elapsed() > NETWORK_FORGET => {
                        return Err(DockerError::Lingers {
                            host: host.to_string(),
                            network: net.name.clone(),
                            secs: NETWORK_FORGET.as_secs(),
                        })
                    }
                    Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        })
        .await?;
        tracing::debug!(
            "every host forgot network `{}` after {:?}",
            net.name,
            started.elapsed()
        );
        Ok(())
    }

    async fn attach_endpoint(
        &self,
        container: &str,
        net: &Net,
        endpoint: EndpointSettings,
    ) -> Result<()> {
        let config = NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: Some(endpoint),
        };
        // A swarm manager that did not settle an overlay attachment in time answers 500 "context
        // deadline exceeded" (seen once in a multi-host heal): asked again, after 1 and 2 s. Should
        // the first attachment have gone through after all, the engine says so, and that is success.
        let mut retries = 0;
        loop {
            match self
                .on(container)
                .connect_network(&net.id, config.clone())
                .await
            {
                Ok(()) => return Ok(()),
                Err(source) if retries > 0 && said(&source, "already exists") => return Ok(()),
                Err(source) if retries < 2 && said(&source, "context deadline exceeded") => {
                    retries += 1;
                    tracing::warn!(
                        "attaching {container} to {} timed out in the engine; asking again",
                        net.name
                    );
                    tokio::time::sleep(Duration::from_secs(retries)).await;
                }
                Err(source) => {
                    return Err(DockerError::Attach {
                        container: container.into(),
                        network: net.name.clone(),
                        source,
                    })
                }
            }
        }
    }
}

/// The networks on one engine, those matching `filters` (all for None).
async fn networks_on(
    api: &bollard::Docker,
    filters: Option<HashMap<&'static str, Vec<String>>>,
) -> Result<Vec<NetworkInfo>> {
    let mut opts = ListNetworksOptionsBuilder::new();
    if let Some(f) = &filters {
        opts = opts.filters(f);
    }
    let list = api
        .list_networks(Some(opts.build()))
        .await
        .map_err(|source| DockerError::List {
            what: "networks",
            source,
        })?;
    Ok(list
        .into_iter()
        .map(|n| NetworkInfo {
            id: n.id.unwrap_or_default(),
            name: n.name.unwrap_or_default(),
            subnets: n
                .ipam
                .and_then(|i| i.config)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|c| c.subnet?.parse().ok())
                .collect(),
            labels: n.labels.unwrap_or_default(),
            encrypted: n.options.is_some_and(|o| o.contains_key("encrypted")),
        })
        .collect())
}

pub(super) fn static_endpoint(ip: Ipv4Addr) -> EndpointSettings {
    EndpointSettings {
        ipam_config: Some(EndpointIpamConfig {
            ipv4_address: Some(ip.to_string()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether the engine answered with an error whose message holds `words`.
fn said(error: &bollard::errors::Error, words: &str) -> bool {
    matches!(error, bollard::errors::Error::DockerResponseServerError { message, .. } if message.contains(words))
}
