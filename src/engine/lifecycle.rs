//! A cluster's life: `up` (the cluster-wide resources — image, metadata container, control and data
//! networks — then the reconcile loop and a verification, rolled back on failure or Ctrl-C), `open`
//! (reading a cluster back from Docker), `ls`, and `down`, which removes everything labeled with the
//! cluster (through `removal`) and names what it could not remove (also when a handle is dropped).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use rand::RngCore;
use serde::Serialize;
use tokio::sync::watch;

use crate::core::cluster::blueprint::{
    self, Networks, LABEL_CLUSTER, LABEL_NODE, LABEL_ROLE, LABEL_RPC_PASSWORD, LABEL_SPEC,
    ROLE_META,
};
use crate::core::cluster::limits::Demand;
use crate::core::cluster::lock::{holder_of, ROLE_LOCK};
use crate::core::cluster::manifest::{ClusterSpec, NodeSpec, DEFAULT_IMAGE};
use crate::core::cluster::plan::NetRole;
use crate::core::cluster::plan::{Containers, Desired, Segments, State, UpPlan};
use crate::core::cluster::subnet::Subnet;
use crate::core::partition::{CutMode, BASE};
pub use crate::core::verb::DownReport;
use crate::core::verb::{PlanDoc, Report};
use crate::engine::cluster::Cluster;
use crate::engine::docker::{ContainerInfo, Docker, Net, NetworkInfo};
use crate::engine::error::{Error, Result};
use crate::engine::image;
use crate::engine::lock::{self, LockGuard};
use crate::engine::progress::Progress;
use crate::engine::reconcile::{create_network, pick, Cancel, Effects, Journal};
use crate::engine::relay;
use crate::engine::removal::{remove_all, rollback};

/// How `up` behaves.
#[derive(Clone)]
pub struct UpOptions {
    pub progress: Progress,
    /// Limit for each wait (readiness, wiring, verification).
    pub timeout: Duration,
    /// Tear the cluster down when the returned handle is dropped without `down` or `keep` (the
    /// fallback for library users whose test panics).
    pub teardown_on_drop: bool,
    /// A container (by id) to attach to the cluster's control network as soon as it exists, so that a
    /// regbox running in that container reaches the nodes' RPC.
    pub attach: Option<String>,
    /// How long to wait while another regbox changes the cluster (zero: fail at once).
    pub lock_wait: Duration,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            progress: Progress::default(),
            timeout: Duration::from_secs(120),
            teardown_on_drop: true,
            attach: None,
            lock_wait: lock::DEFAULT_WAIT,
        }
    }
}

/// A cluster as `ls` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterSummary {
    pub name: String,
    pub nodes: usize,
    pub running: usize,
    pub networks: Vec<String>,
    /// The holder of the cluster's lock, when a command is changing it.
    pub changing: Option<String>,
}

impl Drop for Cluster {
    /// The fallback for a test that panics or returns early: blocks until the cluster is removed. An
    /// explicit `down().await` is cheaper and reports errors.
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let name = self.spec.name.clone();
        let spec = self.spec.clone();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let docker = connect(&spec).await?;
                down(&docker, &name, &Progress::default(), lock::DEFAULT_WAIT).await
            })
            .ok()
        })
        .join();
        if !matches!(done, Ok(Some(_))) {
            tracing::warn!(
                "could not tear down cluster `{}` on drop; `regbox down {}` removes it",
                self.spec.name,
                self.spec.name
            );
        }
    }
}

impl Cluster {
    /// Reads an existing cluster back from Docker. With no name, the only cluster there is.
    pub async fn open(name: Option<&str>) -> Result<Cluster> {
        Cluster::open_on(Docker::connect().await?, name).await
    }

    /// `open` on the engine(s) behind `docker`.
    pub(crate) async fn open_on(docker: Docker, name: Option<&str>) -> Result<Cluster> {
        let name = resolve_cluster(&docker, name).await?;
        let r = read_back(&docker, &name)
            .await?
            .ok_or_else(|| Error::Damaged(name.clone()))?;
        let docker = match r.spec.hosts.is_empty() {
            true => docker,
            false => connect(&r.spec).await?,
        };
        let relay = relay::reach(&docker, &name).await?;
        // Segments a partition makes are encrypted as the control overlay is.
        docker.encrypt_overlays(r.encrypted);
        let multi_host = docker.is_multi_host();
        let mut cluster = Cluster::assemble(docker, r.spec, &r.networks, &r.password, relay);
        cluster.lock_image = r.lock_image;
        cluster.encrypted = multi_host.then_some(r.encrypted);
        let (view, faults) = tokio::join!(cluster.observe_docker(), cluster.fault_plane());
        let view = view?;
        // An agent that does not answer must not stop every command: its cuts are then unknown.
        let faults = faults.unwrap_or_else(|e| {
            tracing::warn!("the fault agent of `{name}` does not answer: {e}");
            Default::default()
        });
        cluster.plane = view.plane;
        // A partition by rules records its mode in its cuts; one by segments, on its networks.
        cluster.mode = match crate::core::partition::cut_mode(&faults) {
            CutMode::Silent => CutMode::Silent,
            CutMode::Drop => view.mode,
        };
        Ok(cluster)
    }

    /// Removes every container, volume and network of the cluster.
    pub async fn down(mut self, progress: &Progress) -> Result<DownReport> {
        self.armed = false;
        down(&self.docker, &self.spec.name, progress, lock::DEFAULT_WAIT).await
    }

    /// Takes the cluster's lock for `command` (see `engine::lock`), and makes sure the cluster still
    /// exists once it is held: another command may have removed it while this one waited.
    pub(crate) async fn lock(&self, command: &str, wait: Duration) -> Result<LockGuard> {
        let guard =
            lock::acquire(&self.docker, self.name(), &self.lock_image, command, wait).await?;
        let meta = blueprint::meta_container(self.name());
        if self.docker.inspect_marker(&meta).await?.is_none() {
            guard.release().await;
            return Err(Error::Removed(self.name().to_string()));
        }
        Ok(guard)
    }

    /// Lets the cluster outlive this handle (no teardown on drop).
    pub fn keep(mut self) {
        self.armed = false;
    }

    /// Brings the cluster declared by `spec` up — or, if it already exists, to the declared state — and
    /// verifies the peer graph. On failure, what this run created is removed again.
    pub async fn up(spec: ClusterSpec, opts: &UpOptions) -> Result<Cluster> {
        Cluster::up_until(spec, opts, std::future::pending()).await
    }

    /// `up` that stops when `cancel` completes (e.g. on Ctrl-C): no new work starts, Docker calls in
    /// flight finish, waits are cut short, and what this run created is removed.
    pub async fn up_until(
        spec: ClusterSpec,
        opts: &UpOptions,
        cancel: impl Future<Output = ()>,
    ) -> Result<Cluster> {
        let docker = connect(&spec).await?;
        Cluster::up_on(docker, spec, opts, cancel).await
    }

    /// `up_until` on the engine(s) behind `docker`.
    pub(crate) async fn up_on(
        docker: Docker,
        spec: ClusterSpec,
        opts: &UpOptions,
        cancel: impl Future<Output = ()>,
    ) -> Result<Cluster> {
        let journal = Mutex::new(Journal::default());
        let (tx, rx) = watch::channel(false);
        let fx = Effects {
            cancel: Cancel(rx),
            journal: &journal,
            progress: &opts.progress,
        };
        let guard: Mutex<Option<LockGuard>> = Mutex::new(None);
        let work = async {
            let mut spec = spec;
            admit(&spec)?;
            // Every node sits on the control network and (healed) on one data segment. (The limits
            // are this machine's: across hosts they are each host's own, which it does not read.)
            if spec.hosts.is_empty() {
                crate::engine::host::admit(demand(&docker, &spec).await?)?;
            }
            resolve_images(&docker, &mut spec, &fx).await?;
            let held = fx
                .cancel
                .guard(lock::acquire(
                    &docker,
                    &spec.name,
                    &spec.nodes[0].image,
                    "up",
                    opts.lock_wait,
                ))
                .await?;
            *guard.lock().unwrap() = Some(held);
            up(&docker, spec, opts, &fx).await
        };
        tokio::pin!(work);
        tokio::pin!(cancel);
        // Cancelling never drops a Docker call half-way (the engine would finish it after the rollback):
        // it stops new work from starting and cuts the waits short, then `work` returns Interrupted.
        let result = tokio::select! {
            r = &mut work => r,
            () = &mut cancel => {
                let _ = tx.send(true);
                work.await
            }
        };
        let result = match result {
            Ok(cluster) => Ok(cluster),
            Err(source) => {
                opts.progress.finish();
                let journal = std::mem::take(&mut *journal.lock().unwrap());
                let cleanup = rollback(&docker, journal).await;
                Err(Error::RolledBack {
                    source: Box::new(source),
                    cleanup,
                })
            }
        };
        let held = guard.lock().unwrap().take();
        if let Some(held) = held {
            held.release().await;
        }
        result
    }
}

/// The engine(s) a cluster of `spec` lives on: `DOCKER_HOST`'s, or the hosts it names (first one
/// first), checked to form one swarm.
pub(crate) async fn connect(spec: &ClusterSpec) -> Result<Docker> {
    if spec.hosts.is_empty() {
        return Ok(Docker::connect().await?);
    }
    Ok(Docker::connect_hosts(&crate::engine::swarm::engines(spec)).await?)
}

/// Gives every node an exact image and makes sure each exists (building regbox's own when missing). A
/// node on the default image keeps the one its cluster recorded when it was made; a new node gets the
/// newest regbox node image here, or one built now.
async fn resolve_images(docker: &Docker, spec: &mut ClusterSpec, fx: &Effects<'_>) -> Result<()> {
    // A cluster whose metadata is unreadable keeps nothing: its nodes get the default.
    let recorded = recorded_images(read_back(docker, &spec.name).await.ok().flatten().as_ref());
    let mut default: Option<String> = None;
    for node in spec.nodes.iter_mut().filter(|n| n.image == DEFAULT_IMAGE) {
        node.image = match recorded.get(&node.name) {
            Some(image) => image.clone(),
            None => match &default {
                Some(image) => image.clone(),
                None => {
                    let image = fx
                        .cancel
                        .guard(async {
                            Ok(image::resolve_on(docker, DEFAULT_IMAGE, fx.progress).await?)
                        })
                        .await?;
                    default.insert(image).clone()
                }
            },
        };
    }
    let images: BTreeSet<String> = spec.nodes.iter().map(|n| n.image.clone()).collect();
    for img in &images {
        fx.cancel
            .guard(async { Ok(image::ensure_on(docker, img, fx.progress).await?) })
            .await?;
        if docker.is_multi_host() {
            let to = fx
                .cancel
                .guard(async { Ok(docker.spread_image(img).await?) })
                .await?;
            if !to.is_empty() {
                tracing::info!("copied image {img} to {}", to.join(", "));
            }
        }
    }
    Ok(())
}

/// A cluster as its metadata container and networks record it.
struct Recorded {
    spec: ClusterSpec,
    networks: Networks,
    password: String,
    /// The metadata container's image, by id (what the lock marker is made from).
    lock_image: String,
    /// Its control overlay is encrypted (its segments are made alike).
    encrypted: bool,
}

/// Reads cluster `name` back from Docker: None when it has no metadata container; `Damaged` when the
/// metadata or a network is unreadable or missing.
async fn read_back(docker: &Docker, name: &str) -> Result<Option<Recorded>> {
    let filter = blueprint::cluster_filter(Some(name));
    let (containers, nets) = tokio::try_join!(
        docker.labeled_containers(&filter),
        docker.labeled_networks(&filter)
    )?;
    let Some(meta) = containers
        .iter()
        .find(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some(ROLE_META))
    else {
        return Ok(None);
    };
    let damaged = || Error::Damaged(name.to_string());
    let spec = recorded_spec(name, meta.labels.get(LABEL_SPEC).map(String::as_str))?;
    let password = meta.labels.get(LABEL_RPC_PASSWORD).ok_or_else(damaged)?;
    let kept = pick(&nets, &containers).kept;
    let encrypted = kept.get(&NetRole::Control).is_some_and(|n| n.encrypted);
    let subnet = |role: NetRole| {
        kept.get(&role)
            .and_then(|n| n.subnets.first().copied())
            .ok_or_else(damaged)
    };
    Ok(Some(Recorded {
        networks: Networks {
            control: subnet(NetRole::Control)?,
            data: subnet(NetRole::Segment(BASE))?,
            rpcauth: rpcauth_for(password),
            init_token: blueprint::init_token(password),
        },
        password: password.clone(),
        lock_image: meta.image_id.clone(),
        spec,
        encrypted,
    }))
}

/// The spec cluster `name`'s metadata container records (label `regbox.spec`), checked as a manifest is
/// before anything is done with it: a label that is missing or does not read, a spec of another cluster or
/// one no manifest could give (a name with `/`, 2000 nodes, an argument regbox refuses, a Docker URL that
/// is none) is an error, never used.
fn recorded_spec(name: &str, label: Option<&str>) -> Result<ClusterSpec> {
    let refused = |problem: String| Error::BadRecord {
        cluster: name.to_string(),
        label: LABEL_SPEC,
        problem,
    };
    let text = label.ok_or_else(|| refused("the label is missing".into()))?;
    let spec: ClusterSpec = serde_json::from_str(text)
        .map_err(|e| refused(format!("it does not read as a cluster spec ({e})")))?;
    if spec.name != name {
        return Err(refused(format!(
            "it is the spec of cluster `{}`",
            crate::core::names::shown(&spec.name)
        )));
    }
    spec.validate().map_err(refused)?;
    Ok(spec)
}

/// Node name → the exact image the cluster recorded for it.
fn recorded_images(recorded: Option<&Recorded>) -> HashMap<String, String> {
    recorded
        .map(|r| r.spec.nodes.iter())
        .into_iter()
        .flatten()
        .filter(|n| n.image != DEFAULT_IMAGE)
        .map(|n| (n.name.clone(), n.image.clone()))
        .collect()
}

/// A spec to make a cluster from meets every rule a manifest does, the argument policy included,
/// whether it came through the manifest reader or not (JSON to the operator, the library).
/// What bringing `spec` up asks of this host: its nodes, edges and largest network, and the nodes not
/// running now with their threads (a node that runs already costs no more).
async fn demand(docker: &Docker, spec: &ClusterSpec) -> Result<Demand> {
    let containers = docker
        .labeled_containers(&blueprint::cluster_filter(Some(&spec.name)))
        .await?;
    let running: BTreeSet<&str> = (containers.iter())
        .filter(|c| c.state == State::Running)
        .filter(|c| !c.labels.contains_key(blueprint::LABEL_ROLE))
        .filter_map(|c| c.labels.get(blueprint::LABEL_NODE).map(String::as_str))
        .collect();
    let mut demand = Demand {
        nodes: spec.nodes.len(),
        edges: spec.edges.len(),
        largest_network: spec.nodes.len(),
        ..Demand::default()
    };
    let cores = crate::engine::host::cores();
    for node in spec
        .nodes
        .iter()
        .filter(|n| !running.contains(n.name.as_str()))
    {
        let lab = blueprint::LAB_THREADS.iter().map(|a| a.to_string());
        let args: Vec<String> = lab.chain(node.args.iter().cloned()).collect();
        demand.start(&args, cores);
    }
    Ok(demand)
}

fn admit(spec: &ClusterSpec) -> Result<()> {
    spec.validate()
        .map_err(|e| Error::BadRequest(format!("the spec of cluster `{}`: {e}", spec.name)))
}

/// `apply`: the cluster brought to the declared state, as `up` does, and every node's status; with
/// `dry_run`, only the plan (what would change), changing nothing.
pub async fn apply(
    spec: &ClusterSpec,
    dry_run: bool,
    opts: &UpOptions,
    cancel: impl Future<Output = ()>,
) -> Result<Report> {
    if dry_run {
        let (resolved, recorded, steps) = plan_up(spec.clone()).await?;
        let planned = PlanDoc::new(&resolved, recorded.is_some(), &steps);
        return Ok(Report::Plan(Box::new(planned)));
    }
    let cluster = Cluster::up_until(spec.clone(), opts, cancel).await?;
    Ok(Report::Status(cluster.status().await?))
}

/// What `up` would do, changing nothing (`up --dry-run`): the spec with the images `up` would use
/// (an image still to be built stays `regbox/bitcoind`), the spec the cluster recorded when it was
/// last brought up (None: it does not exist), and the plan.
pub async fn plan_up(mut spec: ClusterSpec) -> Result<(ClusterSpec, Option<ClusterSpec>, UpPlan)> {
    admit(&spec)?;
    let docker = connect(&spec).await?;
    let recorded = read_back(&docker, &spec.name).await?;
    let images = recorded_images(recorded.as_ref());
    let newest = image::newest_on(&docker).await?;
    for node in spec.nodes.iter_mut().filter(|n| n.image == DEFAULT_IMAGE) {
        if let Some(image) = images.get(&node.name).or(newest.as_ref()) {
            node.image = image.clone();
        }
    }
    let Some(r) = recorded else {
        let plan = UpPlan {
            create: (0..spec.nodes.len()).collect(),
            connect: spec.edges.iter().map(|e| (e.from, e.to)).collect(),
            links: crate::core::cluster::plan::link_changes(&Default::default(), &spec.links),
            ..UpPlan::default()
        };
        return Ok((spec, None, plan));
    };
    let relay = relay::reach(&docker, &spec.name).await?;
    let wanted = Cluster::assemble(docker, spec, &r.networks, &r.password, relay);
    let (observed, links) = tokio::try_join!(wanted.observe(), wanted.fault_plane())?;
    let mut plan = crate::core::cluster::plan::up_plan(
        &wanted.spec.edges,
        &observed,
        &links,
        &wanted.spec.links,
    );
    let before: HashMap<&str, &NodeSpec> =
        r.spec.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    for &i in &plan.recreate {
        let node = &wanted.spec.nodes[i];
        let why = before
            .get(node.name.as_str())
            .map_or_else(Vec::new, |b| node.differences(b));
        plan.why.insert(i, why);
    }
    let spec = wanted.spec.clone();
    wanted.keep();
    Ok((spec, Some(r.spec), plan))
}

/// The body of `up`, under the cluster's lock: the cluster-wide resources, then the one loop with every
/// declared node running and every node on the base segment, then a check of the peer graph.
async fn up(
    docker: &Docker,
    spec: ClusterSpec,
    opts: &UpOptions,
    fx: &Effects<'_>,
) -> Result<Cluster> {
    // Across hosts, decided (by a probe, for a new cluster) before anything of the cluster exists.
    let encrypted = crate::engine::encrypt::decide(docker, &spec).await?;
    docker.encrypt_overlays(encrypted);
    let password = ensure_meta(docker, &spec, fx).await?;
    fx.cancel.check()?;
    let name = spec.name.clone();
    let [(control_net, control), (_, data)] = ensure_networks(docker, &name, fx).await?;
    let relay = match spec.hosts.first() {
        Some(first) => {
            let token = blueprint::relay_token(&password);
            let control = (&control_net, control);
            Some(relay::ensure(docker, &name, &first.name, control, &token, fx).await?)
        }
        None => None,
    };

    let networks = Networks {
        control,
        data,
        rpcauth: rpcauth_for(&password),
        init_token: blueprint::init_token(&password),
    };
    let mut cluster = Cluster::assemble(docker.clone(), spec, &networks, &password, relay);
    cluster.encrypted = docker.is_multi_host().then_some(encrypted);
    if let Some(me) = &opts.attach {
        cluster.attach(me).await?;
    }
    let edges = cluster.spec.edges.clone();
    let desired = Desired {
        edges: &edges,
        containers: Containers::Declared,
        segments: Segments::Heal,
        mode: CutMode::Drop,
    };
    // The declared state has no cuts: they go before the wiring, which they would stop.
    cluster.clear_cuts_locked().await?;
    cluster.plane = cluster.converge(&desired, opts.timeout, fx).await?;
    fx.progress.stage("verifying the peer graph", 0);
    fx.cancel.guard(cluster.verify(false)).await?;
    cluster.declare_links_locked(fx.progress).await?;
    fx.progress.finish();
    cluster.armed = opts.teardown_on_drop;
    Ok(cluster)
}

/// Makes sure the metadata container holds this spec (replacing one made from another spec); returns
/// the cluster's RPC password (kept from an existing cluster, else new).
async fn ensure_meta(docker: &Docker, spec: &ClusterSpec, fx: &Effects<'_>) -> Result<String> {
    let name = &spec.name;
    let existing = docker
        .labeled_containers(&blueprint::cluster_filter(Some(name)))
        .await?;
    let metas: Vec<&ContainerInfo> = existing
        .iter()
        .filter(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some(ROLE_META))
        .collect();
    let spec_json = serde_json::to_string(spec).expect("a spec serializes");
    let password = metas
        .first()
        .and_then(|m| m.labels.get(LABEL_RPC_PASSWORD).cloned())
        .unwrap_or_else(|| {
            let mut bytes = [0u8; 24];
            rand::rng().fill_bytes(&mut bytes);
            hex::encode(bytes)
        });
    fx.cancel.check()?;
    if metas.first().and_then(|m| m.labels.get(LABEL_SPEC)) == Some(&spec_json) {
        return Ok(password);
    }
    for m in &metas {
        docker.remove_container(&m.name).await?;
    }
    let mut labels = blueprint::cluster_labels(name);
    labels.insert(LABEL_ROLE.into(), ROLE_META.into());
    labels.insert(LABEL_SPEC.into(), spec_json);
    labels.insert(LABEL_RPC_PASSWORD.into(), password.clone());
    let meta = blueprint::meta_container(name);
    if metas.is_empty() {
        // A replaced metadata container stays even if this run fails: it holds the declared state.
        fx.journal.lock().unwrap().containers.push(meta.clone());
    }
    docker
        .create_marker(&meta, &spec.nodes[0].image, &["true"], labels)
        .await?;
    Ok(password)
}

/// Finds the cluster's control and base data networks (the ones the loop keeps, when there are
/// duplicates) with one look at the engine, and creates those that are missing, one after the other
/// (each takes a free subnet). Returns them with their subnets, control first.
async fn ensure_networks(
    docker: &Docker,
    cluster: &str,
    fx: &Effects<'_>,
) -> Result<[(Net, Subnet); 2]> {
    let filter = blueprint::cluster_filter(Some(cluster));
    let (nets, containers) = tokio::try_join!(
        docker.labeled_networks(&filter),
        docker.labeled_containers(&filter)
    )?;
    let kept = pick(&nets, &containers).kept;
    let mut subnets = Vec::with_capacity(2);
    for role in [NetRole::Control, NetRole::Segment(BASE)] {
        if let Some(n) = kept.get(&role) {
            if let Some(subnet) = n.subnets.first() {
                subnets.push((Net::from(*n), *subnet));
                continue;
            }
        }
        let (word, name) = match role {
            NetRole::Control => ("control", blueprint::control_network(cluster)),
            NetRole::Segment(_) => ("data", blueprint::data_network(cluster)),
        };
        let mut labels = blueprint::cluster_labels(cluster);
        labels.insert(LABEL_ROLE.into(), word.into());
        let (net, subnet) = create_network(docker, &name, labels).await?;
        fx.journal.lock().unwrap().networks.push(net.clone());
        subnets.push((net, subnet));
    }
    Ok(subnets.try_into().expect("two networks"))
}

/// The `-rpcauth` line for a cluster's password. The salt derives from the password so the line, and
/// with it each container's configuration hash, is the same on every run.
pub(crate) fn rpcauth_for(password: &str) -> String {
    use sha2::Digest;
    let salt = sha2::Sha256::digest(format!("regbox-salt:{password}").as_bytes());
    blueprint::rpcauth(&salt[..16], password)
}

/// Every cluster name found on regbox's labels.
fn names_in(containers: &[ContainerInfo], networks: &[NetworkInfo]) -> BTreeSet<String> {
    containers
        .iter()
        .map(|c| &c.labels)
        .chain(networks.iter().map(|n| &n.labels))
        .filter_map(|l| l.get(LABEL_CLUSTER).cloned())
        .collect()
}

/// Every regbox container and network on the engine.
async fn everything(docker: &Docker) -> Result<(Vec<ContainerInfo>, Vec<NetworkInfo>)> {
    let all = blueprint::cluster_filter(None);
    Ok(tokio::try_join!(
        docker.labeled_containers(&all),
        docker.labeled_networks(&all)
    )?)
}

/// The cluster a command means: the one named, or the only one there is.
pub(crate) async fn resolve_cluster(docker: &Docker, name: Option<&str>) -> Result<String> {
    let (containers, networks) = everything(docker).await?;
    let names = names_in(&containers, &networks);
    match name {
        Some(n) if names.contains(n) => Ok(n.to_string()),
        Some(n) => Err(Error::UnknownCluster(n.to_string())),
        None if names.len() == 1 => Ok(names.into_iter().next().unwrap()),
        None if names.is_empty() => Err(Error::NoCluster),
        None => Err(Error::Ambiguous(
            names.into_iter().collect::<Vec<_>>().join(", "),
        )),
    }
}

/// A cluster name no other process is likely to use — `prefix` (cut to fit), this process's id and a
/// random suffix — for tests that bring clusters up in parallel (`cargo test` runs tests side by side, and
/// CI jobs share engines).
pub fn unique_name(prefix: &str) -> String {
    let suffix = format!("-{:x}-{:04x}", std::process::id(), rand::random::<u16>());
    let keep: String = prefix
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .take(40 - suffix.len())
        .collect();
    let keep = keep.trim_start_matches('-');
    let head = if keep.is_empty() { "t" } else { keep };
    format!("{head}{suffix}")
}

/// The Docker engine's version and API version.
pub async fn engine_version() -> Result<(String, String)> {
    Ok(Docker::connect().await?.version().await?)
}

/// Lists every regbox cluster on the engine.
pub async fn list() -> Result<Vec<ClusterSummary>> {
    let docker = Docker::connect().await?;
    let (mut containers, networks) = everything(&docker).await?;
    let of = |labels: &HashMap<String, String>, name: &str| {
        labels.get(LABEL_CLUSTER).map(String::as_str) == Some(name)
    };
    // A cluster across hosts is recorded here, on its first host; its containers are on all of them.
    // Only a spec that passes the manifest's checks names hosts to reach; any other is said, not used.
    let across: Vec<ClusterSpec> = containers
        .iter()
        .filter(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some(ROLE_META))
        .filter_map(|c| {
            let name = c.labels.get(LABEL_CLUSTER)?;
            recorded_spec(name, c.labels.get(LABEL_SPEC).map(String::as_str))
                .map_err(|e| {
                    tracing::warn!("{e}; counting this engine's nodes of it only");
                })
                .ok()
        })
        .filter(|spec| !spec.hosts.is_empty())
        .collect();
    for spec in across {
        let found = match connect(&spec).await {
            Ok(hosts) => hosts
                .labeled_containers(&blueprint::cluster_filter(Some(&spec.name)))
                .await
                .map_err(Error::from),
            Err(e) => Err(e),
        };
        match found {
            Ok(theirs) => {
                containers.retain(|c| !of(&c.labels, &spec.name));
                containers.extend(theirs);
            }
            Err(e) => tracing::warn!(
                "cluster `{}`: its other hosts do not answer, counting this engine's nodes only: {}",
                spec.name,
                crate::core::names::error_chain(&e)
            ),
        }
    }
    Ok(names_in(&containers, &networks)
        .into_iter()
        .map(|name| {
            let nodes: Vec<&ContainerInfo> = containers
                .iter()
                .filter(|c| of(&c.labels, &name) && c.labels.contains_key(LABEL_NODE))
                .collect();
            ClusterSummary {
                nodes: nodes.len(),
                running: nodes.iter().filter(|c| c.state == State::Running).count(),
                networks: networks
                    .iter()
                    .filter(|n| of(&n.labels, &name))
                    .map(|n| n.name.clone())
                    .collect(),
                changing: containers
                    .iter()
                    .filter(|c| of(&c.labels, &name))
                    .find(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some(ROLE_LOCK))
                    .map(|c| holder_of(&c.labels)),
                name,
            }
        })
        .collect())
}

/// Removes every container, volume and network labeled with cluster `name` (works on half-made
/// clusters too), retrying Docker 20.10's stale-endpoint refusals, and names whatever it could not remove.
pub async fn down_named(name: Option<&str>, progress: &Progress) -> Result<DownReport> {
    down_waiting(name, progress, lock::DEFAULT_WAIT).await
}

/// `down_named` that waits up to `wait` for another regbox changing the cluster.
pub(crate) async fn down_waiting(
    name: Option<&str>,
    progress: &Progress,
    wait: Duration,
) -> Result<DownReport> {
    let docker = Docker::connect().await?;
    let name = resolve_cluster(&docker, name).await?;
    // A cluster across hosts is recorded on its first one; its other hosts hold the rest.
    // (A cluster with no readable record goes from this engine alone.)
    let docker = match read_back(&docker, &name).await {
        Ok(Some(r)) if !r.spec.hosts.is_empty() => connect(&r.spec).await?,
        _ => docker,
    };
    down(&docker, &name, progress, wait).await
}

/// `down` under the cluster's lock: every labeled resource goes, by id (duplicates of a name included),
/// the lock itself last.
pub(crate) async fn down(
    docker: &Docker,
    name: &str,
    progress: &Progress,
    wait: Duration,
) -> Result<DownReport> {
    let filter = blueprint::cluster_filter(Some(name));
    // The lock's marker needs an image; any of the cluster's containers has one (by id, so a removed
    // tag does not matter) — another command's lock too: an `up` that holds it has made nothing else
    // yet, and removing networks under a container being created on them leaves Docker 20.10 with a
    // network it can never remove (moby#42119). A cluster with no container at all has no writer.
    let image = docker
        .labeled_containers(&filter)
        .await?
        .into_iter()
        .map(|c| c.image_id)
        .find(|id| !id.is_empty());
    let guard = match image {
        Some(image) => Some(lock::acquire(docker, name, &image, "down", wait).await?),
        None => None,
    };
    let result = remove_all(docker, name, progress).await;
    if let Some(guard) = guard {
        guard.release().await;
    }
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn unique_names_are_valid_cluster_names_and_differ() {
        let a = super::unique_name("My_Test::case-with-a-very-long-name-indeed");
        let b = super::unique_name("My_Test::case-with-a-very-long-name-indeed");
        assert_ne!(a, b);
        for name in [&a, &b, &super::unique_name(""), &super::unique_name("--x")] {
            let mut spec = crate::core::cluster::manifest::ClusterSpec::default_ring4();
            spec.rename(name).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
