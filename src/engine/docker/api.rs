//! The seam: what regbox asks of a Docker engine, as traits by job — the engines and their routing,
//! containers, networks and volumes, images. The real engines (`Engines`, over bollard) implement
//! them, and so does the in-memory fake the engine's unit tests run against.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::core::cluster::subnet::Subnet;
use crate::engine::docker::error::Result;
use crate::engine::docker::types::{
    ContainerEvent, ContainerInfo, ContainerSpec, ImageInfo, MarkerInfo, Net, NetworkInfo, Running,
};

/// Everything regbox asks of the engine(s).
pub trait Api: Routing + Containers + Networks + Images + Send + Sync {}

impl<T: Routing + Containers + Networks + Images + Send + Sync> Api for T {}

/// The engine, or the engines of one swarm, and where each container lives.
#[async_trait]
pub trait Routing: Send + Sync {
    /// Whether this handle spans several engines (networks are overlays).
    fn is_multi_host(&self) -> bool;

    /// Records that container `name` (a name or an id) lives (or is to be created) on host `host`.
    fn place(&self, name: &str, host: &str);

    /// Across hosts, whether the overlays this handle makes from now on are encrypted (Docker's
    /// `encrypted` option: IPsec ESP between the hosts); nothing with one engine.
    fn encrypt_overlays(&self, on: bool);

    /// Where this process reaches ports that host `host` publishes (None: one engine, or no such host).
    fn address_of(&self, host: &str) -> Option<Ipv4Addr>;

    /// The engine's version and API version.
    async fn version(&self) -> Result<(String, String)>;

    /// Events of regbox's containers as they happen — a container died (stopped, killed, crashed), was
    /// killed for memory, paused or removed. The stream ends, or yields an error, when the engine goes
    /// away.
    fn container_events(&self) -> BoxStream<'static, Result<ContainerEvent>>;

    /// The container this process runs in, when it runs in one on this engine (by id).
    async fn own_container(&self) -> Option<String>;
}

/// Containers: made from a spec, listed by label, started, stopped, faulted, removed, asked.
#[async_trait]
pub trait Containers: Send + Sync {
    /// Creates (does not start) container `name` as `spec` says, on its host; returns its id. The
    /// engine refuses a second container of a name (`DockerError::is_conflict`). API 1.41 creates a
    /// container on one network only; the others are attached with `Networks::connect_network`.
    async fn create(&self, name: &str, spec: &ContainerSpec) -> Result<String>;

    /// Creates a container attached to no network whose labels carry data that must be readable from
    /// Docker alone (the cluster's manifest, a lock's holder), on the first engine; returns its id.
    /// Started, it runs `entrypoint` and exits, locked down whatever the image (`marker_spec`: no
    /// network, no capabilities, a read-only root, user nobody, small limits).
    async fn create_marker(
        &self,
        name: &str,
        image: &str,
        entrypoint: &[&str],
        labels: HashMap<String, String>,
    ) -> Result<String>;

    /// A marker container by name or id, or None when there is none.
    async fn inspect_marker(&self, name: &str) -> Result<Option<MarkerInfo>>;

    /// Containers carrying `label` (`key` or `key=value`), stopped ones included. Across hosts, every
    /// engine is listed, and each container's engine is remembered.
    async fn labeled_containers(&self, label: &str) -> Result<Vec<ContainerInfo>>;

    /// A running container's main process: its host PID, the container's full ID and its labels
    /// (`None` when it is not running or gone).
    async fn pid(&self, name: &str) -> Result<Option<Running>>;

    /// Runs `cmd` in a running container and returns its exit code and standard output (standard error
    /// is appended to the output when the command fails).
    async fn exec(&self, name: &str, cmd: Vec<String>) -> Result<(i64, String)>;

    /// Writes `contents` as file `file` (mode 0644, owned by root) into directory `dir` of a container,
    /// running or not (a path on its volumes too).
    async fn write_file(&self, name: &str, dir: &str, file: &str, contents: &[u8]) -> Result<()> {
        self.write_files(name, dir, &[(file, contents)]).await
    }

    /// `write_file` of several files in one call.
    async fn write_files(&self, name: &str, dir: &str, files: &[(&str, &[u8])]) -> Result<()>;

    /// Writes a file of `len` zero bytes (a whole number of MiB) into directory `dir` of a container,
    /// streamed; on a filesystem too small the engine stops at the first write that finds no space,
    /// leaves what it wrote, and answers with that error.
    async fn write_zeros(&self, name: &str, dir: &str, file: &str, len: u64) -> Result<()>;

    /// A small file of a container, running or not (None when the file is not there); at most 64 KiB.
    async fn read_file(&self, name: &str, path: &str) -> Result<Option<Vec<u8>>>;

    /// Whether a container is still running (false when it exited or is gone).
    async fn is_running(&self, name: &str) -> Result<bool>;

    /// Starts a created or stopped container.
    async fn start(&self, name: &str) -> Result<()>;

    /// Stops a container (SIGTERM, then SIGKILL after `grace`).
    async fn stop(&self, name: &str, grace: Duration) -> Result<()>;

    /// Sends SIGKILL.
    async fn kill(&self, name: &str) -> Result<()>;

    /// Sends `signal` (`"USR1"`, …) to a running container's first process.
    async fn signal(&self, name: &str, signal: &str) -> Result<()>;

    /// A directory of a container, running or not, as a tar archive whose entries start with the
    /// directory's own name (None when it is not there).
    async fn read_tree(&self, name: &str, path: &str) -> Result<Option<Vec<u8>>>;

    /// Unpacks the tar archive `tar` into directory `dir` of a container, running or not.
    async fn write_tree(&self, name: &str, dir: &str, tar: Vec<u8>) -> Result<()>;

    /// Freezes every process of a container.
    async fn pause(&self, name: &str) -> Result<()>;

    /// Thaws a paused container.
    async fn unpause(&self, name: &str) -> Result<()>;

    /// Sets a container's CPU limit (billionths of a CPU) and memory limit (bytes, swap included: no
    /// swap) in place, running or not, without a restart: the engine's update call.
    async fn update_limits(&self, name: &str, nano_cpus: u64, memory: u64) -> Result<()>;

    /// The CPUs of the engine container `name` lives on (the most a CPU limit there may be).
    async fn engine_cpus(&self, name: &str) -> Result<u64>;

    /// Removes a container, running or not; a container already gone is not an error.
    async fn remove_container(&self, name: &str) -> Result<()>;

    /// The container's log (stdout and stderr) from `since` (Unix seconds, as the engine timed the
    /// lines) on, as one text.
    async fn logs_since(&self, name: &str, since: i32) -> Result<String>;

    /// The container's log lines (stdout and stderr): the last `tail` of them, then new ones if `follow`.
    fn logs(
        &self,
        name: &str,
        tail: Option<usize>,
        follow: bool,
    ) -> BoxStream<'static, Result<String>>;
}

/// Networks (bridges on one engine, attachable overlays across hosts) and volumes.
#[async_trait]
pub trait Networks: Send + Sync {
    /// Every network, regbox's or not (new ones must overlap none, and share no name).
    async fn all_networks(&self) -> Result<Vec<NetworkInfo>>;

    /// Networks carrying `label` (`key` or `key=value`).
    async fn labeled_networks(&self, label: &str) -> Result<Vec<NetworkInfo>>;

    /// Creates a network on `subnet`, leaving only the top /24 for Docker's own address choice.
    /// (Docker 20.10 would take a second network of the same name: callers check.)
    async fn create_network(
        &self,
        name: &str,
        subnet: Subnet,
        labels: HashMap<String, String>,
    ) -> Result<Net>;

    /// Removes a network, retrying while the engine still counts endpoints that are going away; across
    /// hosts, until every engine has forgotten it.
    async fn remove_network(&self, net: &Net) -> Result<()>;

    /// Attaches a container to a network with a static address. The address must be given on every
    /// attach: Docker forgets it on detach.
    async fn connect_network(&self, container: &str, net: &Net, ip: Ipv4Addr) -> Result<()>;

    /// Attaches a container to a network with an address of the network's choosing; one already
    /// attached stays as it is.
    async fn join_network(&self, container: &str, net: &Net) -> Result<()>;

    /// Ids of the containers attached to a network (none when it is gone).
    async fn network_members(&self, net: &Net) -> Result<Vec<String>>;

    /// Detaches a container from a network. Docker sends no TCP reset: sessions over it freeze.
    async fn disconnect_network(&self, container: &str, net: &Net) -> Result<()>;

    /// Detaches containers from networks, `(network, containers)` at a time: one network's endpoints
    /// one after another, the networks side by side (see the real engines for why). Every network is
    /// tried; the first failure is returned. `detached` hears of each container as it leaves a network.
    async fn detach(
        &self,
        groups: Vec<(Net, Vec<String>)>,
        detached: &(dyn for<'x> Fn(&'x str) + Sync),
    ) -> Result<()>;

    /// Names of the volumes carrying `label` (`key` or `key=value`).
    async fn labeled_volumes(&self, label: &str) -> Result<Vec<String>>;

    /// Removes a volume (from every engine that has one of that name); one already gone is not an
    /// error.
    async fn remove_volume(&self, name: &str) -> Result<()>;

    /// Creates volume `name` of the local driver with `options` (`type`, `device`, `o`), labelled, on
    /// the engine `name` is placed on.
    async fn create_volume(
        &self,
        name: &str,
        labels: HashMap<String, String>,
        options: HashMap<String, String>,
    ) -> Result<()>;

    /// A volume's driver options and labels (None: no such volume), from the engine it is placed on.
    #[allow(clippy::type_complexity)]
    async fn volume(
        &self,
        name: &str,
    ) -> Result<Option<(HashMap<String, String>, HashMap<String, String>)>>;
}

/// Images: looked up, named, listed, imported, copied between the engines of a swarm, run once.
#[async_trait]
pub trait Images: Send + Sync {
    /// A local image's id and labels, or None when the image is not here.
    async fn image(&self, name: &str) -> Result<Option<(String, HashMap<String, String>)>>;

    /// Copies image `name` from the first engine to every other engine of the swarm whose image of
    /// that name is missing or another one; returns the hosts it went to.
    async fn spread_image(&self, name: &str) -> Result<Vec<String>>;

    /// Gives an image another name, `repo:tag` (moving that name from any image that had it).
    async fn tag(&self, image: &str, repo: &str, tag: &str) -> Result<()>;

    /// The local images of repository `repo`, one entry per tag.
    async fn images_of(&self, repo: &str) -> Result<Vec<ImageInfo>>;

    /// Runs `image` once with `command` as its entrypoint (no network, nothing kept) and returns what
    /// it printed.
    async fn run_once(&self, image: &str, command: &[&str]) -> Result<String>;

    /// Runs a container named `name` made from `spec` to its end (bounded in time), removes it, and
    /// returns its exit code and output (bounded).
    async fn run_to_end(&self, name: &str, spec: &ContainerSpec) -> Result<(i64, String)>;

    /// Removes an image no container uses (an image still in use stays: that is not an error).
    async fn remove_unused_image(&self, id: &str);

    /// Imports a root filesystem tar as image `repo:tag` (what `docker import` does), applying
    /// Dockerfile instructions such as `ENTRYPOINT` or `LABEL` from `changes`.
    async fn import_image(
        &self,
        rootfs: bytes::Bytes,
        repo: &str,
        tag: &str,
        changes: Vec<String>,
    ) -> Result<()>;
}
