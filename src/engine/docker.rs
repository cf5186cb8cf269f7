//! The one facade over the Docker engine (bollard): every Docker call regbox makes goes through here. It
//! knows Docker, not regbox: resources are found by a label filter the caller builds.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerSummaryStateEnum, EndpointIpamConfig, EndpointSettings,
    HostConfig, Ipam, IpamConfig, Mount, MountType, MountVolumeOptions, NetworkConnectRequest,
    NetworkCreateRequest, NetworkDisconnectRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder,
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use futures::{Stream, StreamExt, TryStreamExt};

use crate::core::names::error_chain;
use crate::core::plan::State;
use crate::core::subnet::Subnet;

/// A container event (see [`Docker::container_events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub cluster: String,
    pub container: String,
    /// The container's `regbox.role` (None for a node).
    pub role: Option<String>,
    /// `die`, `oom`, `pause` or `destroy`.
    pub action: String,
}

/// A failed Docker operation, naming what it was done to.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("reach the Docker engine (is it running, and may this user use its socket?)")]
    Connect(#[source] BollardError),
    #[error("follow the engine's events")]
    Events(#[source] BollardError),
    #[error("list {what}")]
    List {
        what: &'static str,
        source: BollardError,
    },
    #[error("create network `{name}` ({subnet})")]
    CreateNetwork {
        name: String,
        subnet: Subnet,
        source: BollardError,
    },
    #[error("remove network `{name}`")]
    RemoveNetwork { name: String, source: BollardError },
    #[error("attach `{container}` to network `{network}`")]
    Attach {
        container: String,
        network: String,
        source: BollardError,
    },
    #[error("detach `{container}` from network `{network}`")]
    Disconnect {
        container: String,
        network: String,
        source: BollardError,
    },
    #[error("create container `{name}`")]
    CreateContainer { name: String, source: BollardError },
    #[error("{action} container `{name}`")]
    Container {
        action: &'static str,
        name: String,
        source: BollardError,
    },
    #[error("remove volume `{name}`")]
    RemoveVolume { name: String, source: BollardError },
    #[error("inspect image `{name}`")]
    InspectImage { name: String, source: BollardError },
    #[error("import image `{name}`")]
    ImportImage { name: String, source: BollardError },
    #[error("read logs of `{name}`")]
    Logs { name: String, source: BollardError },
    #[error("host `{host}` ({url}) {reason}")]
    Host {
        host: String,
        url: String,
        reason: String,
    },
    #[error("host `{host}` still lists network `{network}` {secs} s after its removal")]
    Lingers {
        host: String,
        network: String,
        secs: u64,
    },
    #[error("copy image `{name}` to host `{host}`")]
    CopyImage {
        name: String,
        host: String,
        source: BollardError,
    },
}

impl DockerError {
    /// Docker refused a network because its subnet overlaps another one (someone took it first).
    pub fn is_pool_overlap(&self) -> bool {
        matches!(self, DockerError::CreateNetwork { .. })
            && self.to_source_string().contains("overlaps")
    }

    /// Docker refused to remove a network that "has active endpoints".
    pub fn is_stale_endpoints(&self) -> bool {
        matches!(self, DockerError::RemoveNetwork { .. })
            && self.to_source_string().contains("active endpoints")
    }

    /// The swarm still counts a container's attachment to an overlay (a task) that is going away.
    pub fn is_in_use_by_task(&self) -> bool {
        matches!(self, DockerError::RemoveNetwork { .. })
            && self.to_source_string().contains("in use by task")
    }

    /// The engine refused because the name is taken (HTTP 409).
    pub fn is_conflict(&self) -> bool {
        let source = std::error::Error::source(self).and_then(|s| s.downcast_ref::<BollardError>());
        matches!(
            source,
            Some(BollardError::DockerResponseServerError {
                status_code: 409,
                ..
            })
        )
    }
}

type Result<T> = std::result::Result<T, DockerError>;

/// How long the other engines of a swarm may go on listing an overlay the first one removed.
const NETWORK_FORGET: Duration = Duration::from_secs(20);

/// A container as listed by the engine.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    /// The image's id: it stays usable when the tag was removed or moved.
    pub image_id: String,
    pub state: State,
    pub labels: HashMap<String, String>,
    /// The networks it is attached to.
    pub networks: Vec<Endpoint>,
    /// The host (engine) it lives on; empty with one engine.
    pub host: String,
    /// Its published ports: (container port, host port).
    pub ports: Vec<(u16, u16)>,
}

/// A container's attachment to a network.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The network's id (names are not unique on every engine).
    pub network: String,
    pub ip: Option<Ipv4Addr>,
}

/// A network to act on: its id, and its name for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Net {
    pub id: String,
    pub name: String,
}

impl From<&NetworkInfo> for Net {
    fn from(n: &NetworkInfo) -> Net {
        Net {
            id: n.id.clone(),
            name: n.name.clone(),
        }
    }
}

/// A marker container as inspected.
#[derive(Debug, Clone)]
pub struct MarkerInfo {
    pub id: String,
    pub labels: HashMap<String, String>,
    /// When it was last started, in the engine's clock (changes on every start).
    pub started_at: String,
}

/// A network as listed by the engine.
#[derive(Debug, Clone)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    pub subnets: Vec<Subnet>,
    pub labels: HashMap<String, String>,
}

/// A local image by one of its names.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    /// `repo:tag`.
    pub name: String,
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    pub labels: HashMap<String, String>,
}

/// What a node container is created from.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    pub name: String,
    pub image: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    /// The network it is created on, with its static address there.
    pub network: (Net, Ipv4Addr),
    /// A named volume mounted at the path; Docker creates it, with these labels, on first use.
    pub volume: (String, String),
    /// Memory limit in bytes (no swap on top).
    pub memory: u64,
    pub nano_cpus: Option<u64>,
    pub pids_limit: i64,
    /// Run as root (able to write a datadir of any owner) rather than as the image's user.
    pub as_root: bool,
}

/// Handle to the Docker engine — or to the engines of one swarm (a multi-host cluster): the first of
/// them holds the networks (swarm-scoped overlays) and anything not placed elsewhere; a container call
/// goes to the engine the container lives on, and lists merge what every engine has.
#[derive(Clone)]
pub struct Docker {
    /// The (first) engine.
    api: bollard::Docker,
    fleet: Option<Arc<Fleet>>,
}

/// The engines of a multi-host cluster and where each container lives.
struct Fleet {
    engines: Vec<Engine>,
    /// Container name → index into `engines`, learned from placement and from every listing.
    at: Mutex<HashMap<String, usize>>,
}

/// One engine of a swarm.
struct Engine {
    name: String,
    api: bollard::Docker,
    /// Where this process reaches ports the engine publishes.
    address: Ipv4Addr,
}

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
    fn fail(&self, reason: String) -> DockerError {
        DockerError::Host {
            host: self.name.clone(),
            url: self.url.clone(),
            reason,
        }
    }

    /// A client for its engine (no call made yet).
    fn api(&self) -> Result<bollard::Docker> {
        bollard::Docker::connect_with_host(&self.url)
            .map_err(|e| self.fail(format!("cannot connect: {e}")))
    }

    /// Its engine's swarm state.
    async fn swarm(&self, api: &bollard::Docker) -> Result<bollard::models::SwarmInfo> {
        let info = api
            .info()
            .await
            .map_err(|e| self.fail(format!("does not answer: {e}")))?;
        Ok(info.swarm.unwrap_or_default())
    }
}

/// A filter on one label: `key` (any value) or `key=value`.
fn label_filter(label: &str) -> HashMap<&'static str, Vec<String>> {
    HashMap::from([("label", vec![label.to_string()])])
}

impl Docker {
    /// Connects to the engine named by `DOCKER_HOST` (or the local socket) and checks that it answers.
    /// No API version is pinned: the daemon answers at its own.
    pub async fn connect() -> Result<Docker> {
        let api = bollard::Docker::connect_with_defaults().map_err(DockerError::Connect)?;
        api.ping().await.map_err(DockerError::Connect)?;
        Ok(Docker { api, fleet: None })
    }

    /// Connects to the engines of a multi-host cluster, first one first, and checks what a cluster
    /// across them needs: each answers, each is an active member of a swarm, the first is a manager
    /// (it creates the overlays), and all are members of the first one's swarm.
    pub async fn connect_hosts(hosts: &[HostEngine]) -> Result<Docker> {
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
        Ok(Docker {
            api: engines[0].api.clone(),
            fleet: Some(Arc::new(Fleet {
                engines,
                at: Mutex::new(HashMap::new()),
            })),
        })
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

    /// Whether this handle spans several engines (networks are overlays).
    pub fn is_multi_host(&self) -> bool {
        self.fleet.is_some()
    }

    /// Records that container `name` (a name or an id) lives (or is to be created) on host `host`.
    pub fn place(&self, name: &str, host: &str) {
        if let Some(f) = &self.fleet {
            if let Some(i) = f.engines.iter().position(|e| e.name == host) {
                f.at.lock().unwrap().insert(name.to_string(), i);
            }
        }
    }

    /// Where this process reaches ports that host `host` publishes (None: one engine, or no such host).
    pub fn address_of(&self, host: &str) -> Option<Ipv4Addr> {
        let f = self.fleet.as_ref()?;
        f.engines.iter().find(|e| e.name == host).map(|e| e.address)
    }

    /// The index of the engine container `name` lives on (the first when it is not known).
    fn index_of(&self, name: &str) -> usize {
        self.fleet
            .as_ref()
            .map_or(0, |f| f.at.lock().unwrap().get(name).copied().unwrap_or(0))
    }

    /// The engine container `name` lives on.
    fn on(&self, name: &str) -> &bollard::Docker {
        match &self.fleet {
            Some(f) => &f.engines[self.index_of(name)].api,
            None => &self.api,
        }
    }

    /// Runs `call` on every engine side by side (host name, client); the results in engine order.
    async fn each_engine<'a, T, F>(
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
    fn engines(&self) -> Vec<(&str, &bollard::Docker)> {
        match &self.fleet {
            Some(f) => f
                .engines
                .iter()
                .map(|e| (e.name.as_str(), &e.api))
                .collect(),
            None => vec![("", &self.api)],
        }
    }

    /// Events of regbox's containers as they happen — a container died (stopped, killed, crashed), was
    /// killed for memory, paused or removed. The stream ends, or yields an error, when the engine goes
    /// away.
    pub fn container_events(&self) -> impl Stream<Item = Result<ContainerEvent>> + 'static {
        use crate::core::blueprint::{LABEL_CLUSTER, LABEL_ROLE};
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
        futures::stream::select_all(streams).map(|event| {
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
    }

    /// The engine's version and API version.
    pub async fn version(&self) -> Result<(String, String)> {
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

    /// Every network, regbox's or not (new ones must overlap none, and share no name).
    pub async fn all_networks(&self) -> Result<Vec<NetworkInfo>> {
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

    /// Networks carrying `label` (`key` or `key=value`).
    pub async fn labeled_networks(&self, label: &str) -> Result<Vec<NetworkInfo>> {
        networks_on(&self.api, Some(label_filter(label))).await
    }

    /// Creates a bridge network (an attachable overlay across hosts) on `subnet`, leaving only the top
    /// /24 for Docker's own address choice; returns its id. (Docker 20.10 would take a second network of the same name: callers check.)
    pub async fn create_network(
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

    /// Removes a network. Docker 20.10 sometimes keeps stale endpoints of containers just removed
    /// ("has active endpoints"), so this retries for a while before giving up.
    pub async fn remove_network(&self, net: &Net) -> Result<()> {
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

    /// Attaches a container to a network with a static address. The address must be given on every
    /// attach: Docker forgets it on detach.
    pub async fn connect_network(&self, container: &str, net: &Net, ip: Ipv4Addr) -> Result<()> {
        self.attach_endpoint(container, net, static_endpoint(ip))
            .await
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
        self.on(container)
            .connect_network(&net.id, config)
            .await
            .map_err(|source| DockerError::Attach {
                container: container.into(),
                network: net.name.clone(),
                source,
            })
    }

    /// The container this process runs in, when it runs in one on this engine (by id).
    pub async fn own_container(&self) -> Option<String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let id = crate::core::blueprint::container_id_in_mountinfo(&mountinfo)?;
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

    /// Attaches a container to a network with an address of the network's choosing; one already
    /// attached stays as it is.
    pub async fn join_network(&self, container: &str, net: &Net) -> Result<()> {
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

    /// Ids of the containers attached to a network (none when it is gone).
    /// An overlay lists only the members on the engine asked, so every engine is asked.
    pub async fn network_members(&self, net: &Net) -> Result<Vec<String>> {
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

    /// Detaches a container from a network. Docker sends no TCP reset: sessions over it freeze.
    pub async fn disconnect_network(&self, container: &str, net: &Net) -> Result<()> {
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

    /// Detaches containers from networks, `(network, containers)` at a time: one network's endpoints
    /// one after another, the networks side by side. Docker 20.10 loses count of a network's endpoints
    /// when several of them are deleted at once, and a network left counting an endpoint nothing holds
    /// refuses removal until the daemon restarts (moby#42119). Every network is tried; the first
    /// failure is returned. `detached` hears of each container as it leaves a network. Each engine
    /// keeps its own count, so across hosts one network's endpoints go one at a time per engine.
    pub async fn detach(
        &self,
        groups: Vec<(Net, Vec<String>)>,
        detached: &(dyn Fn(&str) + Sync),
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

    /// Creates (does not start) a node container on its first network. API 1.41 creates a container on
    /// one network only; the others are attached with `connect_network`.
    pub async fn create_container(&self, c: &ContainerConfig) -> Result<()> {
        let (network, ip) = &c.network;
        let body = ContainerCreateBody {
            image: Some(c.image.clone()),
            // Any image with bitcoind on its PATH works: its own entrypoint is bypassed.
            entrypoint: Some(vec!["bitcoind".into()]),
            cmd: Some(c.args.clone()),
            env: Some(c.env.clone()),
            // The image's own user, or root where the image is not known to suit its datadir.
            user: c.as_root.then(|| "0:0".into()),
            labels: Some(c.labels.clone()),
            stop_timeout: Some(10),
            host_config: Some(HostConfig {
                network_mode: Some(network.id.clone()),
                init: Some(true),
                // Hardened: no capability (root keeps only the one that lets it write a datadir of
                // another owner), no privilege gain, a read-only root with the datadir volume and a
                // small /tmp writable, bounded memory (no swap), processes and, when asked, CPU.
                cap_drop: Some(vec!["ALL".into()]),
                cap_add: c.as_root.then(|| vec!["DAC_OVERRIDE".into()]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                readonly_rootfs: Some(true),
                tmpfs: Some(HashMap::from([(
                    "/tmp".to_string(),
                    "rw,noexec,nosuid,size=16m".to_string(),
                )])),
                memory: Some(c.memory as i64),
                memory_swap: Some(c.memory as i64),
                nano_cpus: c.nano_cpus.map(|n| n as i64),
                pids_limit: Some(c.pids_limit),
                mounts: Some(vec![Mount {
                    typ: Some(MountType::VOLUME),
                    source: Some(c.volume.0.clone()),
                    target: Some(c.volume.1.clone()),
                    volume_options: Some(MountVolumeOptions {
                        labels: Some(c.labels.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(network.id.clone(), static_endpoint(*ip))])),
            }),
            ..Default::default()
        };
        self.create(&c.name, body).await.map(|_| ())
    }

    /// Creates container `name` on its engine; returns its id.
    async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String> {
        let opts = CreateContainerOptionsBuilder::new().name(name).build();
        self.on(name)
            .create_container(Some(opts), body)
            .await
            .map(|r| r.id)
            .map_err(|source| DockerError::CreateContainer {
                name: name.into(),
                source,
            })
    }

    /// Creates a container attached to no network whose labels carry data that must be readable from
    /// Docker alone (the cluster's manifest, a lock's holder), on the first engine; returns its id.
    /// The engine refuses a second container of the same name (`is_conflict`). Started, it runs
    /// `entrypoint` and exits.
    pub async fn create_marker(
        &self,
        name: &str,
        image: &str,
        entrypoint: &[&str],
        labels: HashMap<String, String>,
    ) -> Result<String> {
        // Markers live on the first engine, where a cluster is looked for.
        if let Some(f) = &self.fleet {
            f.at.lock().unwrap().insert(name.to_string(), 0);
        }
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(entrypoint.iter().map(|s| s.to_string()).collect()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.create(name, body).await
    }

    /// A marker container by name or id, or None when there is none.
    pub async fn inspect_marker(&self, name: &str) -> Result<Option<MarkerInfo>> {
        let found = self.on(name).inspect_container(name, None).await.map(|c| {
            Some(MarkerInfo {
                id: c.id.unwrap_or_default(),
                labels: c.config.and_then(|c| c.labels).unwrap_or_default(),
                started_at: c.state.and_then(|s| s.started_at).unwrap_or_default(),
            })
        });
        absent_is(found, None, container_err("inspect", name))
    }

    /// Containers carrying `label` (`key` or `key=value`), stopped ones included.
    /// Across hosts, every engine is listed, and each container's engine is remembered.
    pub async fn labeled_containers(&self, label: &str) -> Result<Vec<ContainerInfo>> {
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&label_filter(label))
            .build();
        let lists = self
            .each_engine(|host, api| {
                let opts = opts.clone();
                async move {
                    let list = api.list_containers(Some(opts)).await.map_err(|source| {
                        DockerError::List {
                            what: "containers",
                            source,
                        }
                    })?;
                    Ok(list.into_iter().map(move |c| (host, c)))
                }
            })
            .await?;
        let found: Vec<ContainerInfo> = lists
            .into_iter()
            .flatten()
            .map(|(host, c)| ContainerInfo {
                host: host.to_string(),
                ports: c
                    .ports
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|p| Some((p.private_port, p.public_port?)))
                    .collect(),
                id: c.id.unwrap_or_default(),
                image_id: c.image_id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .into(),
                image: c.image.unwrap_or_default(),
                state: match c.state {
                    Some(ContainerSummaryStateEnum::CREATED) => State::Created,
                    Some(ContainerSummaryStateEnum::RUNNING) => State::Running,
                    Some(ContainerSummaryStateEnum::PAUSED) => State::Paused,
                    Some(ContainerSummaryStateEnum::RESTARTING) => State::Restarting,
                    Some(ContainerSummaryStateEnum::EXITED) => State::Exited,
                    Some(ContainerSummaryStateEnum::REMOVING) => State::Removing,
                    Some(ContainerSummaryStateEnum::DEAD) => State::Dead,
                    _ => State::Unknown,
                },
                labels: c.labels.unwrap_or_default(),
                networks: c
                    .network_settings
                    .and_then(|s| s.networks)
                    .unwrap_or_default()
                    .into_values()
                    .map(|ep| Endpoint {
                        network: ep.network_id.unwrap_or_default(),
                        ip: ep.ip_address.and_then(|ip| ip.parse().ok()),
                    })
                    .collect(),
            })
            .collect();
        // Callers act on a container by name or by id.
        for c in &found {
            self.place(&c.name, &c.host);
            self.place(&c.id, &c.host);
        }
        Ok(found)
    }

    /// Creates the fault agent's container: `regbox agent serve` from the regbox image, on no network,
    /// in the host's PID namespace (to find each node's network namespace by its process), with only
    /// the capabilities that entering a namespace and changing its packet filter take. Returns its id.
    pub async fn create_agent(
        &self,
        name: &str,
        image: &str,
        labels: HashMap<String, String>,
    ) -> Result<String> {
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(vec!["/usr/bin/regbox".into()]),
            cmd: Some(vec!["agent".into(), "serve".into()]),
            labels: Some(labels),
            stop_timeout: Some(2),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                pid_mode: Some("host".into()),
                init: Some(true),
                cap_drop: Some(vec!["ALL".into()]),
                cap_add: Some(vec![
                    "NET_ADMIN".into(),
                    "SYS_ADMIN".into(),
                    "SYS_PTRACE".into(),
                ]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                readonly_rootfs: Some(true),
                tmpfs: Some(HashMap::from([(
                    "/run".to_string(),
                    "rw,noexec,nosuid,size=1m".to_string(),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.create(name, body).await
    }

    /// Creates the RPC relay's container: `regbox relay` from the regbox image on network `net`, letting
    /// CONNECT tunnels reach `allow` (subnet, port) only, listening on `port`, published on an
    /// ephemeral port of its engine's host. Returns its id.
    pub async fn create_relay(
        &self,
        name: &str,
        image: &str,
        net: &Net,
        allow: (Subnet, u16),
        port: u16,
        labels: HashMap<String, String>,
    ) -> Result<String> {
        let exposed = format!("{port}/tcp");
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(vec!["/usr/bin/regbox".into()]),
            cmd: Some(vec![
                "relay".into(),
                "--listen".into(),
                format!("0.0.0.0:{port}"),
                "--allow".into(),
                allow.0.to_string(),
                "--port".into(),
                allow.1.to_string(),
            ]),
            labels: Some(labels),
            stop_timeout: Some(2),
            exposed_ports: Some(vec![exposed.clone()]),
            host_config: Some(HostConfig {
                network_mode: Some(net.id.clone()),
                init: Some(true),
                restart_policy: Some(bollard::models::RestartPolicy {
                    name: Some(bollard::models::RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                port_bindings: Some(HashMap::from([(
                    exposed,
                    Some(vec![bollard::models::PortBinding {
                        host_ip: Some("0.0.0.0".into()),
                        host_port: Some(String::new()),
                    }]),
                )])),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                readonly_rootfs: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.create(name, body).await
    }

    /// The host PID of a running container's main process (`None` when it is not running or gone).
    pub async fn pid(&self, name: &str) -> Result<Option<u32>> {
        let pid = self.on(name).inspect_container(name, None).await.map(|c| {
            c.state
                .filter(|s| s.running == Some(true))
                .and_then(|s| s.pid)
                .filter(|&p| p > 0)
                .map(|p| p as u32)
        });
        absent_is(pid, None, container_err("inspect", name))
    }

    /// Runs `cmd` in a running container and returns its exit code and standard output (standard error
    /// is appended to the output when the command fails).
    pub async fn exec(&self, name: &str, cmd: Vec<String>) -> Result<(i64, String)> {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        let err = |source| DockerError::Container {
            action: "exec in",
            name: name.into(),
            source,
        };
        let api = self.on(name);
        let exec = api
            .create_exec(
                name,
                CreateExecOptions {
                    cmd: Some(cmd),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(&err)?;
        let (mut out, mut errs) = (String::new(), String::new());
        if let StartExecResults::Attached { mut output, .. } =
            api.start_exec(&exec.id, None).await.map_err(&err)?
        {
            while let Some(chunk) = output.next().await {
                match chunk.map_err(&err)? {
                    bollard::container::LogOutput::StdOut { message } => {
                        out.push_str(&String::from_utf8_lossy(&message))
                    }
                    other => errs.push_str(&String::from_utf8_lossy(&other.into_bytes())),
                }
            }
        }
        let code = api
            .inspect_exec(&exec.id)
            .await
            .map_err(&err)?
            .exit_code
            .unwrap_or(-1);
        if code != 0 {
            out.push_str(&errs);
        }
        Ok((code, out))
    }

    /// Whether a container is still running (false when it exited or is gone).
    pub async fn is_running(&self, name: &str) -> Result<bool> {
        let state = self
            .on(name)
            .inspect_container(name, None)
            .await
            .map(|c| c.state.and_then(|s| s.running) == Some(true));
        absent_is(state, false, container_err("inspect", name))
    }

    /// Starts a created or stopped container.
    pub async fn start(&self, name: &str) -> Result<()> {
        self.on(name)
            .start_container(name, None)
            .await
            .map_err(container_err("start", name))
    }

    /// Stops a container (SIGTERM, then SIGKILL after `grace`).
    pub async fn stop(&self, name: &str, grace: Duration) -> Result<()> {
        let opts = StopContainerOptionsBuilder::new()
            .t(grace.as_secs() as i32)
            .build();
        self.on(name)
            .stop_container(name, Some(opts))
            .await
            .map_err(container_err("stop", name))
    }

    /// Sends SIGKILL.
    pub async fn kill(&self, name: &str) -> Result<()> {
        let opts = KillContainerOptionsBuilder::new().signal("KILL").build();
        self.on(name)
            .kill_container(name, Some(opts))
            .await
            .map_err(container_err("kill", name))
    }

    /// Freezes every process of a container.
    pub async fn pause(&self, name: &str) -> Result<()> {
        self.on(name)
            .pause_container(name)
            .await
            .map_err(container_err("pause", name))
    }

    /// Thaws a paused container.
    pub async fn unpause(&self, name: &str) -> Result<()> {
        self.on(name)
            .unpause_container(name)
            .await
            .map_err(container_err("unpause", name))
    }

    /// Kills a container and waits until the engine has finished with its exit (network release
    /// included); a container that is not running, or is gone, is left as it is.
    async fn kill_and_wait(&self, name: &str) -> Result<()> {
        let opts = KillContainerOptionsBuilder::new().signal("KILL").build();
        if self
            .on(name)
            .kill_container(name, Some(opts))
            .await
            .is_err()
        {
            return Ok(()); // not running (409), gone (404) or paused: removal handles those
        }
        let opts = WaitContainerOptionsBuilder::new()
            .condition("not-running")
            .build();
        let mut waits = self.on(name).wait_container(name, Some(opts));
        match waits.next().await {
            // A killed container exits non-zero, which bollard reports as an error; both mean it stopped.
            None | Some(Ok(_)) | Some(Err(BollardError::DockerContainerWaitError { .. })) => Ok(()),
            Some(Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            })) => Ok(()),
            Some(Err(source)) => Err(DockerError::Container {
                action: "wait for",
                name: name.into(),
                source,
            }),
        }
    }

    /// Removes a container, running or not; a container already gone is not an error. A running one is
    /// killed and awaited first: removing it with force races the engine's exit cleanup against the
    /// removal's, which on Docker 20.10 can leave a network counting an endpoint nothing holds
    /// (moby#42119).
    pub async fn remove_container(&self, name: &str) -> Result<()> {
        self.kill_and_wait(name).await?;
        let opts = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        let removed = self.on(name).remove_container(name, Some(opts)).await;
        absent_is(removed, (), container_err("remove", name))
    }

    /// Names of the volumes carrying `label` (`key` or `key=value`).
    pub async fn labeled_volumes(&self, label: &str) -> Result<Vec<String>> {
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

    /// Removes a volume (from every engine that has one of that name); one already gone is not an
    /// error.
    pub async fn remove_volume(&self, name: &str) -> Result<()> {
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

    /// A local image's id and labels, or None when the image is not here.
    pub async fn image(&self, name: &str) -> Result<Option<(String, HashMap<String, String>)>> {
        let found = self.api.inspect_image(name).await.map(|i| {
            let labels = i.config.and_then(|c| c.labels).unwrap_or_default();
            Some((i.id.unwrap_or_default(), labels))
        });
        absent_is(found, None, |source| DockerError::InspectImage {
            name: name.into(),
            source,
        })
    }

    /// Copies image `name` from the first engine to every other engine of the swarm whose image of
    /// that name is missing or another one (`docker save | docker load`, no registry: the id is kept,
    /// so equal ids mean the same image); returns the hosts it went to.
    pub async fn spread_image(&self, name: &str) -> Result<Vec<String>> {
        let Some(fleet) = &self.fleet else {
            return Ok(Vec::new());
        };
        let first = &fleet.engines[0];
        let want = image_id_on(first, name).await?;
        let others = &fleet.engines[1..];
        let ids =
            futures::future::try_join_all(others.iter().map(|e| image_id_on(e, name))).await?;
        let lacking: Vec<&Engine> = others
            .iter()
            .zip(ids)
            .filter(|(_, id)| *id != want)
            .map(|(e, _)| e)
            .collect();
        if lacking.is_empty() {
            return Ok(Vec::new());
        }
        let parts: Vec<bytes::Bytes> =
            self.api
                .export_image(name)
                .try_collect()
                .await
                .map_err(|source| DockerError::CopyImage {
                    name: name.into(),
                    host: first.name.clone(),
                    source,
                })?;
        let tar: bytes::Bytes = parts.concat().into();
        futures::future::try_join_all(lacking.iter().map(|engine| {
            let opts = bollard::query_parameters::ImportImageOptionsBuilder::new()
                .quiet(true)
                .build();
            let tar = tar.clone();
            async move {
                engine
                    .api
                    .import_image(opts, bollard::body_full(tar), None)
                    .try_collect::<Vec<_>>()
                    .await
                    .map_err(|source| DockerError::CopyImage {
                        name: name.into(),
                        host: engine.name.clone(),
                        source,
                    })
            }
        }))
        .await?;
        Ok(lacking.iter().map(|e| e.name.clone()).collect())
    }

    /// Gives an image another name, `repo:tag` (moving that name from any image that had it).
    pub async fn tag(&self, image: &str, repo: &str, tag: &str) -> Result<()> {
        let opts = bollard::query_parameters::TagImageOptionsBuilder::new()
            .repo(repo)
            .tag(tag)
            .build();
        self.api
            .tag_image(image, Some(opts))
            .await
            .map_err(|source| DockerError::Container {
                action: "tag the image of",
                name: image.into(),
                source,
            })
    }

    /// The local images of repository `repo`, one entry per tag.
    pub async fn images_of(&self, repo: &str) -> Result<Vec<ImageInfo>> {
        let filters = HashMap::from([("reference", vec![repo.to_string()])]);
        let opts = ListImagesOptionsBuilder::new().filters(&filters).build();
        let list = self
            .api
            .list_images(Some(opts))
            .await
            .map_err(|source| DockerError::List {
                what: "images",
                source,
            })?;
        Ok(list
            .into_iter()
            .flat_map(|i| {
                let (id, created, labels) = (i.id, i.created, i.labels);
                i.repo_tags
                    .into_iter()
                    .filter(|t| t.starts_with(&format!("{repo}:")))
                    .map(move |name| ImageInfo {
                        name,
                        id: id.clone(),
                        created,
                        labels: labels.clone(),
                    })
            })
            .collect())
    }

    /// Runs `image` once with `command` as its entrypoint (no network, nothing kept) and returns what
    /// it printed.
    pub async fn run_once(&self, image: &str, command: &[&str]) -> Result<String> {
        let name = format!("regbox-probe-{:08x}", rand::random::<u32>());
        let id = self
            .create_marker(
                &name,
                image,
                command,
                HashMap::from([("regbox.probe".to_string(), "1".to_string())]),
            )
            .await?;
        let result = async {
            self.start(&id).await?;
            let opts = WaitContainerOptionsBuilder::new()
                .condition("not-running")
                .build();
            let _ = self.api.wait_container(&id, Some(opts)).next().await;
            let lines: Vec<String> = self.logs(&id, None, false).try_collect().await?;
            Ok(lines.concat())
        }
        .await;
        let _ = self.remove_container(&id).await;
        result
    }

    /// Removes an image no container uses (an image still in use stays: that is not an error).
    pub async fn remove_unused_image(&self, id: &str) {
        let removed = self
            .api
            .remove_image(
                id,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
        if let Err(e) = removed {
            tracing::debug!("kept image {id}: {e}");
        }
    }

    /// Imports a root filesystem tar as image `repo:tag` (what `docker import` does), applying Dockerfile
    /// instructions such as `ENTRYPOINT` or `LABEL` from `changes`.
    pub async fn import_image(
        &self,
        rootfs: bytes::Bytes,
        repo: &str,
        tag: &str,
        changes: Vec<String>,
    ) -> Result<()> {
        let opts = CreateImageOptionsBuilder::new()
            .from_src("-")
            .repo(repo)
            .tag(tag)
            .changes(changes)
            .build();
        self.api
            .create_image(Some(opts), Some(bollard::body_full(rootfs)), None)
            .try_collect::<Vec<_>>()
            .await
            .map(|_| ())
            .map_err(|source| DockerError::ImportImage {
                name: format!("{repo}:{tag}"),
                source,
            })
    }

    /// The container's log (stdout and stderr) from `since` (Unix seconds, as the engine timed the
    /// lines) on, as one text.
    pub async fn logs_since(&self, name: &str, since: i32) -> Result<String> {
        let opts = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .since(since)
            .build();
        let chunks: Vec<String> = self
            .on(name)
            .logs(name, Some(opts))
            .map_ok(|out| String::from_utf8_lossy(&out.into_bytes()).into_owned())
            .try_collect()
            .await
            .map_err(|source| DockerError::Logs {
                name: name.to_string(),
                source,
            })?;
        Ok(chunks.concat())
    }

    /// The container's log lines (stdout and stderr): the last `tail` of them, then new ones if `follow`.
    pub fn logs(
        &self,
        name: &str,
        tail: Option<usize>,
        follow: bool,
    ) -> impl Stream<Item = Result<String>> + '_ {
        let tail = tail.map_or("all".to_string(), |n| n.to_string());
        let opts = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail)
            .build();
        let name = name.to_string();
        self.on(&name).logs(&name, Some(opts)).map(move |item| {
            item.map(|out| String::from_utf8_lossy(&out.into_bytes()).into_owned())
                .map_err(|source| DockerError::Logs {
                    name: name.clone(),
                    source,
                })
        })
    }
}

/// The id of image `name` on one engine of a swarm (None: it has none of that name).
async fn image_id_on(engine: &Engine, name: &str) -> Result<Option<String>> {
    let found = engine.api.inspect_image(name).await.map(|i| i.id);
    absent_is(found, None, |source| DockerError::CopyImage {
        name: name.into(),
        host: engine.name.clone(),
        source,
    })
}

/// The node ids of the swarm a manager engine manages.
async fn swarm_node_ids(api: &bollard::Docker) -> Result<Vec<String>> {
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
        })
        .collect())
}

fn container_err<'a>(
    action: &'static str,
    name: &'a str,
) -> impl FnOnce(BollardError) -> DockerError + 'a {
    move |source| DockerError::Container {
        action,
        name: name.into(),
        source,
    }
}

/// Maps "no such object" (HTTP 404) to `absent` and every other error through `err`.
fn absent_is<T>(
    r: std::result::Result<T, BollardError>,
    absent: T,
    err: impl FnOnce(BollardError) -> DockerError,
) -> Result<T> {
    match r {
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(absent),
        other => other.map_err(err),
    }
}

fn static_endpoint(ip: Ipv4Addr) -> EndpointSettings {
    EndpointSettings {
        ipam_config: Some(EndpointIpamConfig {
            ipv4_address: Some(ip.to_string()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl DockerError {
    fn to_source_string(&self) -> String {
        std::error::Error::source(self)
            .map(|s| s.to_string())
            .unwrap_or_default()
    }
}
