//! An in-memory Docker engine for the engine's unit tests: containers, networks, volumes and images as
//! plain maps, with the engine's answers regbox relies on (a name taken is a conflict, a network with
//! endpoints refuses removal, a subnet taken overlaps) and failures injected by operation and name.
//! It runs no process: nothing it holds answers RPC, so tests stop short of a node's readiness.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as BollardError;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::core::cluster::plan::State;
use crate::core::cluster::subnet::Subnet;
use crate::engine::docker::api::{Containers, Images, Networks, Routing};
use crate::engine::docker::error::{DockerError, Result};
use crate::engine::docker::types::{
    ContainerEvent, ContainerInfo, ContainerSpec, Endpoint, ImageInfo, MarkerInfo, Net,
    NetworkInfo, Running,
};

/// One container the fake holds.
#[derive(Debug, Clone)]
pub(crate) struct FakeContainer {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    pub state: State,
    /// Network id → address.
    pub networks: BTreeMap<String, Option<Ipv4Addr>>,
    pub started_at: String,
    /// CPU (billionths) and memory (bytes) limits, as created or last updated.
    pub limits: (Option<u64>, Option<u64>),
}

/// CPUs the fake engine's host has.
pub(crate) const FAKE_CPUS: u64 = 2;

/// What the fake engine holds.
#[derive(Debug, Default)]
pub(crate) struct World {
    pub containers: BTreeMap<String, FakeContainer>,
    pub networks: Vec<NetworkInfo>,
    pub volumes: BTreeMap<String, HashMap<String, String>>,
    /// Image name → (id, labels).
    pub images: BTreeMap<String, (String, HashMap<String, String>)>,
    /// (container, path) → contents of the files written into containers.
    pub files: BTreeMap<(String, String), Vec<u8>>,
    next: u64,
}

impl World {
    fn id(&mut self, kind: &str) -> String {
        self.next += 1;
        format!("{kind}{:060}", self.next)
    }

    fn container(&mut self, name: &str) -> Option<&mut FakeContainer> {
        let key = self
            .containers
            .values()
            .find(|c| c.name == name || c.id == name)
            .map(|c| c.name.clone())?;
        self.containers.get_mut(&key)
    }
}

/// The fake engine: a world behind a lock, and the operations made to fail.
#[derive(Default)]
pub(crate) struct Fake {
    pub world: Mutex<World>,
    /// `(operation, name)`: the operation on that container or network fails.
    failing: Mutex<Vec<(String, String)>>,
}

/// An engine answer with an HTTP status, as bollard reports it.
fn answer(status: u16, message: &str) -> BollardError {
    BollardError::DockerResponseServerError {
        status_code: status,
        message: message.to_string(),
    }
}

/// Whether `labels` match a label filter: `key` or `key=value`.
fn matches(labels: &HashMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
        None => labels.contains_key(filter),
    }
}

impl Fake {
    /// Makes `operation` (`create`, `start`, `remove`, `create_network`, …) fail on `name`.
    pub fn fail(&self, operation: &str, name: &str) {
        self.failing
            .lock()
            .unwrap()
            .push((operation.to_string(), name.to_string()));
    }

    fn failure(&self, operation: &str, name: &str) -> Option<BollardError> {
        let failing = self.failing.lock().unwrap();
        failing
            .iter()
            .any(|(o, n)| o == operation && n == name)
            .then(|| answer(500, &format!("{operation} {name}: injected failure")))
    }

    /// Puts an image in the world.
    pub fn add_image(&self, name: &str, labels: HashMap<String, String>) {
        let mut w = self.world.lock().unwrap();
        let id = w.id("sha256:");
        w.images.insert(name.to_string(), (id, labels));
    }

    /// Names of every container, network and volume that carries `label`.
    pub fn labeled(&self, label: &str) -> Vec<String> {
        let w = self.world.lock().unwrap();
        let mut all: Vec<String> = w
            .containers
            .values()
            .filter(|c| matches(&c.labels, label))
            .map(|c| c.name.clone())
            .collect();
        all.extend(
            w.networks
                .iter()
                .filter(|n| matches(&n.labels, label))
                .map(|n| n.name.clone()),
        );
        all.extend(
            w.volumes
                .iter()
                .filter(|(_, l)| matches(l, label))
                .map(|(n, _)| n.clone()),
        );
        all
    }

    fn set_state(&self, name: &str, action: &'static str, state: State) -> Result<()> {
        if let Some(source) = self.failure(action, name) {
            return Err(DockerError::Container {
                action,
                name: name.into(),
                source,
            });
        }
        let mut w = self.world.lock().unwrap();
        let next = w.next + 1;
        let c = w.container(name).ok_or_else(|| DockerError::Container {
            action,
            name: name.into(),
            source: answer(404, "no such container"),
        })?;
        c.state = state;
        if state == State::Running {
            c.started_at = format!("start {next}");
        }
        w.next = next;
        Ok(())
    }
}

#[async_trait]
impl Routing for Fake {
    fn is_multi_host(&self) -> bool {
        false
    }

    fn place(&self, _name: &str, _host: &str) {}

    fn encrypt_overlays(&self, _on: bool) {}

    fn address_of(&self, _host: &str) -> Option<Ipv4Addr> {
        None
    }

    async fn version(&self) -> Result<(String, String)> {
        Ok(("fake".into(), "1.41".into()))
    }

    fn container_events(&self) -> BoxStream<'static, Result<ContainerEvent>> {
        futures::stream::empty().boxed()
    }

    async fn own_container(&self) -> Option<String> {
        None
    }
}

#[async_trait]
impl Containers for Fake {
    async fn create(&self, name: &str, spec: &ContainerSpec) -> Result<String> {
        let refused = |source| DockerError::CreateContainer {
            name: name.into(),
            source,
        };
        if let Some(source) = self.failure("create", name) {
            return Err(refused(source));
        }
        let mut w = self.world.lock().unwrap();
        if w.containers.contains_key(name) {
            return Err(refused(answer(409, "name in use")));
        }
        if !w.images.contains_key(&spec.image)
            && !w.images.values().any(|(id, _)| *id == spec.image)
        {
            return Err(refused(answer(404, "no such image")));
        }
        if let Some((volume, _)) = &spec.volume {
            w.volumes
                .entry(volume.clone())
                .or_insert_with(|| spec.labels.clone());
        }
        let id = w.id("c");
        let networks = spec
            .network
            .iter()
            .map(|(net, ip)| (net.id.clone(), *ip))
            .collect();
        w.containers.insert(
            name.to_string(),
            FakeContainer {
                id: id.clone(),
                name: name.to_string(),
                image: spec.image.clone(),
                labels: spec.labels.clone(),
                state: State::Created,
                networks,
                started_at: String::new(),
                limits: (spec.nano_cpus, spec.memory),
            },
        );
        Ok(id)
    }

    async fn create_marker(
        &self,
        name: &str,
        image: &str,
        entrypoint: &[&str],
        labels: HashMap<String, String>,
    ) -> Result<String> {
        // The real engines' recipe, so the fake holds what they would be asked to make.
        let spec = crate::engine::docker::containers::marker_spec(image, entrypoint, labels);
        self.create(name, &spec).await
    }

    async fn inspect_marker(&self, name: &str) -> Result<Option<MarkerInfo>> {
        let mut w = self.world.lock().unwrap();
        Ok(w.container(name).map(|c| MarkerInfo {
            id: c.id.clone(),
            labels: c.labels.clone(),
            started_at: c.started_at.clone(),
        }))
    }

    async fn labeled_containers(&self, label: &str) -> Result<Vec<ContainerInfo>> {
        let w = self.world.lock().unwrap();
        Ok(w.containers
            .values()
            .filter(|c| matches(&c.labels, label))
            .map(|c| ContainerInfo {
                id: c.id.clone(),
                name: c.name.clone(),
                image: c.image.clone(),
                image_id: w
                    .images
                    .get(&c.image)
                    .map_or(c.image.clone(), |i| i.0.clone()),
                state: c.state,
                labels: c.labels.clone(),
                networks: c
                    .networks
                    .iter()
                    .map(|(network, ip)| Endpoint {
                        network: network.clone(),
                        ip: *ip,
                    })
                    .collect(),
                host: String::new(),
                ports: Vec::new(),
            })
            .collect())
    }

    async fn pid(&self, _name: &str) -> Result<Option<Running>> {
        Ok(None)
    }

    async fn exec(&self, name: &str, _cmd: Vec<String>) -> Result<(i64, String)> {
        Err(DockerError::Container {
            action: "exec in",
            name: name.into(),
            source: answer(501, "the fake runs no process"),
        })
    }

    async fn write_files(&self, name: &str, dir: &str, files: &[(&str, &[u8])]) -> Result<()> {
        let mut w = self.world.lock().unwrap();
        if w.container(name).is_none() {
            return Err(DockerError::Container {
                action: "write a file into",
                name: name.into(),
                source: answer(404, "no such container"),
            });
        }
        for (file, contents) in files {
            let path = format!("{}/{file}", dir.trim_end_matches('/'));
            w.files.insert((name.to_string(), path), contents.to_vec());
        }
        Ok(())
    }

    async fn write_zeros(&self, name: &str, dir: &str, file: &str, len: u64) -> Result<()> {
        self.write_file(name, dir, file, &vec![0; len as usize])
            .await
    }

    async fn read_file(&self, name: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let w = self.world.lock().unwrap();
        Ok(w.files.get(&(name.to_string(), path.to_string())).cloned())
    }

    async fn is_running(&self, name: &str) -> Result<bool> {
        let mut w = self.world.lock().unwrap();
        Ok(w.container(name).is_some_and(|c| c.state == State::Running))
    }

    async fn start(&self, name: &str) -> Result<()> {
        self.set_state(name, "start", State::Running)
    }

    async fn stop(&self, name: &str, _grace: Duration) -> Result<()> {
        self.set_state(name, "stop", State::Exited)
    }

    async fn kill(&self, name: &str) -> Result<()> {
        self.set_state(name, "kill", State::Exited)
    }

    async fn signal(&self, _name: &str, _signal: &str) -> Result<()> {
        Ok(())
    }

    async fn read_tree(&self, _name: &str, _path: &str) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    async fn write_tree(&self, _name: &str, _dir: &str, _tar: Vec<u8>) -> Result<()> {
        Ok(())
    }

    async fn pause(&self, name: &str) -> Result<()> {
        self.set_state(name, "pause", State::Paused)
    }

    async fn unpause(&self, name: &str) -> Result<()> {
        self.set_state(name, "unpause", State::Running)
    }

    async fn update_limits(&self, name: &str, nano_cpus: u64, memory: u64) -> Result<()> {
        let mut w = self.world.lock().unwrap();
        let c = w.container(name).ok_or_else(|| DockerError::Container {
            action: "update",
            name: name.into(),
            source: answer(404, "no such container"),
        })?;
        c.limits = (Some(nano_cpus), Some(memory));
        Ok(())
    }

    async fn engine_cpus(&self, _name: &str) -> Result<u64> {
        Ok(FAKE_CPUS)
    }

    async fn remove_container(&self, name: &str) -> Result<()> {
        if let Some(source) = self.failure("remove", name) {
            return Err(DockerError::Container {
                action: "remove",
                name: name.into(),
                source,
            });
        }
        let mut w = self.world.lock().unwrap();
        let key = w.container(name).map(|c| c.name.clone());
        if let Some(key) = key {
            w.containers.remove(&key);
        }
        Ok(())
    }

    async fn logs_since(&self, _name: &str, _since: i32) -> Result<String> {
        Ok(String::new())
    }

    fn logs(
        &self,
        _name: &str,
        _tail: Option<usize>,
        _follow: bool,
    ) -> BoxStream<'static, Result<String>> {
        futures::stream::empty().boxed()
    }
}

#[async_trait]
impl Networks for Fake {
    async fn all_networks(&self) -> Result<Vec<NetworkInfo>> {
        Ok(self.world.lock().unwrap().networks.clone())
    }

    async fn labeled_networks(&self, label: &str) -> Result<Vec<NetworkInfo>> {
        let w = self.world.lock().unwrap();
        Ok(w.networks
            .iter()
            .filter(|n| matches(&n.labels, label))
            .cloned()
            .collect())
    }

    async fn create_network(
        &self,
        name: &str,
        subnet: Subnet,
        labels: HashMap<String, String>,
    ) -> Result<Net> {
        let refused = |source| DockerError::CreateNetwork {
            name: name.into(),
            subnet,
            source,
        };
        if let Some(source) = self.failure("create_network", name) {
            return Err(refused(source));
        }
        let mut w = self.world.lock().unwrap();
        if w.networks.iter().any(|n| n.subnets.contains(&subnet)) {
            return Err(refused(answer(
                403,
                "Pool overlaps with other one on this address space",
            )));
        }
        let id = w.id("n");
        w.networks.push(NetworkInfo {
            id: id.clone(),
            name: name.to_string(),
            subnets: vec![subnet],
            labels,
            encrypted: false,
        });
        Ok(Net {
            id,
            name: name.to_string(),
        })
    }

    async fn remove_network(&self, net: &Net) -> Result<()> {
        let mut w = self.world.lock().unwrap();
        if w.containers
            .values()
            .any(|c| c.networks.contains_key(&net.id))
        {
            return Err(DockerError::RemoveNetwork {
                name: net.name.clone(),
                source: answer(
                    403,
                    "error while removing network: network has active endpoints",
                ),
            });
        }
        w.networks.retain(|n| n.id != net.id);
        Ok(())
    }

    async fn connect_network(&self, container: &str, net: &Net, ip: Ipv4Addr) -> Result<()> {
        let mut w = self.world.lock().unwrap();
        let attach = |source| DockerError::Attach {
            container: container.into(),
            network: net.name.clone(),
            source,
        };
        if !w.networks.iter().any(|n| n.id == net.id) {
            return Err(attach(answer(404, "no such network")));
        }
        let c = w
            .container(container)
            .ok_or_else(|| attach(answer(404, "no such container")))?;
        c.networks.insert(net.id.clone(), Some(ip));
        Ok(())
    }

    async fn join_network(&self, container: &str, net: &Net) -> Result<()> {
        let mut w = self.world.lock().unwrap();
        if let Some(c) = w.container(container) {
            c.networks.entry(net.id.clone()).or_insert(None);
        }
        Ok(())
    }

    async fn network_members(&self, net: &Net) -> Result<Vec<String>> {
        let w = self.world.lock().unwrap();
        Ok(w.containers
            .values()
            .filter(|c| c.networks.contains_key(&net.id))
            .map(|c| c.id.clone())
            .collect())
    }

    async fn disconnect_network(&self, container: &str, net: &Net) -> Result<()> {
        let mut w = self.world.lock().unwrap();
        if let Some(c) = w.container(container) {
            c.networks.remove(&net.id);
        }
        Ok(())
    }

    async fn detach(
        &self,
        groups: Vec<(Net, Vec<String>)>,
        detached: &(dyn for<'x> Fn(&'x str) + Sync),
    ) -> Result<()> {
        for (net, members) in groups {
            for m in members {
                self.disconnect_network(&m, &net).await?;
                detached(&m);
            }
        }
        Ok(())
    }

    async fn labeled_volumes(&self, label: &str) -> Result<Vec<String>> {
        let w = self.world.lock().unwrap();
        Ok(w.volumes
            .iter()
            .filter(|(_, l)| matches(l, label))
            .map(|(n, _)| n.clone())
            .collect())
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        self.world.lock().unwrap().volumes.remove(name);
        Ok(())
    }

    async fn create_volume(
        &self,
        name: &str,
        labels: HashMap<String, String>,
        _options: HashMap<String, String>,
    ) -> Result<()> {
        self.world
            .lock()
            .unwrap()
            .volumes
            .insert(name.to_string(), labels);
        Ok(())
    }

    async fn volume(
        &self,
        name: &str,
    ) -> Result<Option<(HashMap<String, String>, HashMap<String, String>)>> {
        let w = self.world.lock().unwrap();
        Ok(w.volumes.get(name).map(|l| (HashMap::new(), l.clone())))
    }
}

#[async_trait]
impl Images for Fake {
    async fn image(&self, name: &str) -> Result<Option<(String, HashMap<String, String>)>> {
        let w = self.world.lock().unwrap();
        Ok(w.images
            .get(name)
            .cloned()
            .or_else(|| w.images.values().find(|(id, _)| id == name).cloned()))
    }

    async fn spread_image(&self, _name: &str) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    async fn tag(&self, image: &str, repo: &str, tag: &str) -> Result<()> {
        let mut w = self.world.lock().unwrap();
        if let Some(found) = w.images.get(image).cloned() {
            w.images.insert(format!("{repo}:{tag}"), found);
        }
        Ok(())
    }

    async fn images_of(&self, repo: &str) -> Result<Vec<ImageInfo>> {
        let w = self.world.lock().unwrap();
        Ok(w.images
            .iter()
            .filter(|(name, _)| name.starts_with(&format!("{repo}:")))
            .map(|(name, (id, labels))| ImageInfo {
                name: name.clone(),
                id: id.clone(),
                created: 0,
                labels: labels.clone(),
            })
            .collect())
    }

    async fn run_once(&self, _image: &str, _command: &[&str]) -> Result<String> {
        Ok(String::new())
    }

    async fn run_to_end(&self, _name: &str, _spec: &ContainerSpec) -> Result<(i64, String)> {
        Ok((0, String::new()))
    }

    async fn remove_unused_image(&self, _id: &str) {}

    async fn import_image(
        &self,
        _rootfs: bytes::Bytes,
        repo: &str,
        tag: &str,
        _changes: Vec<String>,
    ) -> Result<()> {
        self.add_image(&format!("{repo}:{tag}"), HashMap::new());
        Ok(())
    }
}
