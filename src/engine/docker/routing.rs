//! The real engines: one bollard client — or, for a cluster across hosts, one per engine of the swarm,
//! the first holding the networks (swarm-scoped overlays) and anything not placed elsewhere. A container
//! call goes to the engine the container lives on; lists merge what every engine has.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bollard::query_parameters::EventsOptionsBuilder;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::core::names::error_chain;
use crate::engine::docker::api::Routing;
use crate::engine::docker::error::{DockerError, Result};
use crate::engine::docker::swarm::{swarm_node_ids, HostEngine};
use crate::engine::docker::types::ContainerEvent;

/// The engine, or the engines of one swarm, over bollard.
pub struct Engines {
    /// The (first) engine.
    pub(super) api: bollard::Docker,
    pub(super) fleet: Option<Arc<Fleet>>,
}

/// The engines of a multi-host cluster and where each container lives.
pub(super) struct Fleet {
    pub(super) engines: Vec<Engine>,
    /// Container name → index into `engines`, learned from placement and from every listing.
    pub(super) at: Mutex<HashMap<String, usize>>,
    /// The overlays made from now on are encrypted.
    pub(super) encrypted: AtomicBool,
}

/// One engine of a swarm.
pub(super) struct Engine {
    pub(super) name: String,
    pub(super) api: bollard::Docker,
    /// Where this process reaches ports the engine publishes.
    pub(super) address: Ipv4Addr,
}

/// A filter on one label: `key` (any value) or `key=value`.
pub(super) fn label_filter(label: &str) -> HashMap<&'static str, Vec<String>> {
    HashMap::from([("label", vec![label.to_string()])])
}

impl Engines {
    /// Connects to the engine named by `DOCKER_HOST` (or the local socket) and checks that it answers.
    /// No API version is pinned: the daemon answers at its own.
    pub async fn connect() -> Result<Engines> {
        let api = bollard::Docker::connect_with_defaults().map_err(DockerError::Connect)?;
        api.ping().await.map_err(DockerError::Connect)?;
        Ok(Engines { api, fleet: None })
    }

    /// Connects to the engines of a multi-host cluster, first one first, and checks what a cluster
    /// across them needs: each answers, each is an active member of a swarm, the first is a manager
    /// (it creates the overlays), and all are members of the first one's swarm.
    pub async fn connect_hosts(hosts: &[HostEngine]) -> Result<Engines> {
        let connected = futures::future::try_join_all(hosts.iter().map(|h| async move {
            let fail = |reason: String| h.fail(reason);
            let api = h.api()?;
            let swarm = h.swarm(&api).await?;
            let active = swarm.local_node_state == Some(bollard::models::LocalNodeState::ACTIVE);
            if !active {
                return Err(fail(format!(
                    "is not an active swarm member (state {}); `regbox swarm init MANIFEST` (or \
                     `docker swarm join`) joins it to the first host's swarm",
                    swarm
                        .local_node_state
                        .map_or("unknown".into(), |s| s.to_string())
                )));
            }
            let address = match h.address {
                Some(a) => a,
                None => swarm
                    .node_addr
                    .as_deref()
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| fail("has no swarm address; give it an `address`".into()))?,
            };
            let id = swarm.node_id.unwrap_or_default();
            Ok((
                Engine {
                    name: h.name.clone(),
                    api,
                    address,
                },
                id,
                swarm.control_available,
            ))
        }))
        .await?;
        let (first, _, manager) = &connected[0];
        if *manager != Some(true) {
            return Err(hosts[0].fail(
                "is not a swarm manager; the first host must be one (it creates the overlay \
                 networks)"
                    .into(),
            ));
        }
        let members = swarm_node_ids(&first.api).await.map_err(|e| {
            hosts[0].fail(format!(
                "cannot list its swarm's nodes: {}",
                error_chain(&e)
            ))
        })?;
        for (i, ((_, id, _), h)) in connected.iter().zip(hosts).enumerate() {
            if !members.contains(id) {
                return Err(h.fail(format!("is in another swarm than host `{}`", first.name)));
            }
            // Two hosts naming one engine would list every container twice.
            if let Some(j) = connected[..i].iter().position(|(_, other, _)| other == id) {
                return Err(h.fail(format!("is the same engine as host `{}`", hosts[j].name)));
            }
        }
        let engines: Vec<Engine> = connected.into_iter().map(|(e, _, _)| e).collect();
        Ok(Engines {
            api: engines[0].api.clone(),
            fleet: Some(Arc::new(Fleet {
                engines,
                at: Mutex::new(HashMap::new()),
                encrypted: AtomicBool::new(false),
            })),
        })
    }

    /// The index of the engine container `name` lives on (the first when it is not known).
    pub(super) fn index_of(&self, name: &str) -> usize {
        self.fleet
            .as_ref()
            .map_or(0, |f| f.at.lock().unwrap().get(name).copied().unwrap_or(0))
    }

    /// The engine container `name` lives on.
    pub(super) fn on(&self, name: &str) -> &bollard::Docker {
        match &self.fleet {
            Some(f) => &f.engines[self.index_of(name)].api,
            None => &self.api,
        }
    }

    /// Runs `call` on every engine side by side (host name, client); the results in engine order.
    pub(super) async fn each_engine<'a, T, F>(
        &'a self,
        call: impl Fn(&'a str, &'a bollard::Docker) -> F,
    ) -> Result<Vec<T>>
    where
        F: std::future::Future<Output = Result<T>> + 'a,
    {
        futures::future::try_join_all(
            self.engines()
                .into_iter()
                .map(|(host, api)| call(host, api)),
        )
        .await
    }

    /// Every engine with its host name ("" for a single engine).
    pub(super) fn engines(&self) -> Vec<(&str, &bollard::Docker)> {
        match &self.fleet {
            Some(f) => f
                .engines
                .iter()
                .map(|e| (e.name.as_str(), &e.api))
                .collect(),
            None => vec![("", &self.api)],
        }
    }
}

#[async_trait]
impl Routing for Engines {
    fn is_multi_host(&self) -> bool {
        self.fleet.is_some()
    }

    fn place(&self, name: &str, host: &str) {
        if let Some(f) = &self.fleet {
            if let Some(i) = f.engines.iter().position(|e| e.name == host) {
                f.at.lock().unwrap().insert(name.to_string(), i);
            }
        }
    }

    fn encrypt_overlays(&self, on: bool) {
        if let Some(f) = &self.fleet {
            f.encrypted.store(on, Ordering::Relaxed);
        }
    }

    fn address_of(&self, host: &str) -> Option<Ipv4Addr> {
        let f = self.fleet.as_ref()?;
        f.engines.iter().find(|e| e.name == host).map(|e| e.address)
    }

    async fn version(&self) -> Result<(String, String)> {
        let v = self
            .api
            .version()
            .await
            .map_err(|source| DockerError::List {
                what: "the engine's version",
                source,
            })?;
        Ok((
            v.version.unwrap_or_default(),
            v.api_version.unwrap_or_default(),
        ))
    }

    fn container_events(&self) -> BoxStream<'static, Result<ContainerEvent>> {
        use crate::core::cluster::blueprint::{LABEL_CLUSTER, LABEL_ROLE};
        let filters = HashMap::from([
            ("type", vec!["container"]),
            ("label", vec![LABEL_CLUSTER]),
            ("event", vec!["die", "oom", "pause", "destroy"]),
        ]);
        let opts = EventsOptionsBuilder::new().filters(&filters).build();
        let streams = self
            .engines()
            .into_iter()
            .map(|(_, api)| api.events(Some(opts.clone())))
            .collect::<Vec<_>>();
        futures::stream::select_all(streams)
            .map(|event| {
                let event = event.map_err(DockerError::Events)?;
                let attributes = event.actor.and_then(|a| a.attributes).unwrap_or_default();
                let get = |key: &str| attributes.get(key).cloned();
                Ok(ContainerEvent {
                    cluster: get(LABEL_CLUSTER).unwrap_or_default(),
                    container: get("name").unwrap_or_default(),
                    role: get(LABEL_ROLE),
                    action: event.action.unwrap_or_default(),
                })
            })
            .boxed()
    }

    async fn own_container(&self) -> Option<String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let id = crate::core::cluster::blueprint::container_id_in_mountinfo(&mountinfo)?;
        // A container of another engine (Docker in Docker, a remote DOCKER_HOST) is not here.
        self.api
            .inspect_container(
                &id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .ok()
            .map(|_| id)
    }
}
