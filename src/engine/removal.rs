//! Removing a cluster's resources: every labeled container, volume and network of a cluster (`down`),
//! what a failed or interrupted `up` made (its rollback), and volumes on their own, in bounded
//! parallel, counting what went and naming what did not.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use futures::stream::{self, StreamExt};

use crate::core::cluster::blueprint::{
    self, INIT_PORT, LABEL_INIT, LABEL_NODE, LABEL_ROLE, LABEL_RPC_PASSWORD, ROLE_META,
};
use crate::core::cluster::plan::State;
use crate::core::verb::DownReport;
use crate::engine::docker::{ContainerInfo, Docker, DockerError, Net};
use crate::engine::error::{Error, Result};
use crate::engine::image::init_hash;
use crate::engine::lock;
use crate::engine::progress::Progress;
use crate::engine::reconcile::{running_groups, Journal, DOCKER_CONCURRENCY};
use crate::engine::reset::init_request;
use crate::engine::rpc::Transport;

/// Removes every container (but the lock this command holds), volume and network labeled with cluster
/// `name`, containers first; what would not go is tried once more with any container listed since.
pub(super) async fn remove_all(
    docker: &Docker,
    name: &str,
    progress: &Progress,
) -> Result<DownReport> {
    let filter = blueprint::cluster_filter(Some(name));
    let own_lock = lock::lock_name(name);
    // A lock left by a process that is gone goes too; the one this command holds goes on release.
    let containers: Vec<ContainerInfo> = docker
        .labeled_containers(&filter)
        .await?
        .into_iter()
        .filter(|c| c.name != own_lock)
        .collect();
    let halted = halt_nodes(&containers, progress).await;
    progress.stage(
        &format!("removing {} containers of `{name}`", containers.len()),
        containers.len() as u64,
    );
    let mut removal = Removal::new(docker, progress);
    let containers = removal.cluster_containers(containers).await;
    // Volumes and networks go only once their containers are gone.
    let volumes = docker.labeled_volumes(&filter).await?;
    let networks = docker.labeled_networks(&filter).await?;
    progress.stage(
        &format!(
            "removing {} volumes and {} networks",
            volumes.len(),
            networks.len()
        ),
        (volumes.len() + networks.len()) as u64,
    );
    let mut report = DownReport {
        cluster: name.to_string(),
        containers,
        volumes: removal.volumes(volumes).await,
        networks: removal.networks(networks.iter().map(Net::from)).await,
        halted,
    };
    // A volume or network that would not go may be held by a container made while this ran (one
    // listed after the first listing): such containers go too, then what is left, once more.
    if !removal.left.is_empty() {
        let late: Vec<ContainerInfo> = (docker.labeled_containers(&filter).await?.into_iter())
            .filter(|c| c.name != own_lock)
            .collect();
        let names: Vec<&str> = late.iter().map(|c| c.name.as_str()).collect();
        tracing::warn!(
            "{} left of `{name}`; once more, with the containers made meanwhile: [{}]",
            removal.left.join(", "),
            names.join(", ")
        );
        (removal.left, removal.stale) = (Vec::new(), Vec::new());
        report.containers += removal.cluster_containers(late).await;
        let volumes = docker.labeled_volumes(&filter).await?;
        let networks = docker.labeled_networks(&filter).await?;
        report.volumes += removal.volumes(volumes).await;
        report.networks += removal.networks(networks.iter().map(Net::from)).await;
    }
    progress.finish();
    if removal.left.is_empty() {
        Ok(report)
    } else {
        Err(if removal.stale.len() == removal.left.len() {
            Error::StaleEndpoints(removal.stale)
        } else {
            Error::Leftovers(removal.left)
        })
    }
}

/// How many nodes are asked to halt at once.
const HALT_CONCURRENCY: usize = 64;
/// How long a node's init may take to answer a halt.
const HALT_TIMEOUT: Duration = Duration::from_secs(2);

/// Takes the load off the host before the engine's work: the init of each running node (of this
/// regbox's, on this engine) is asked over TCP to stop bitcoind where it is (`SIGSTOP`). Idle nodes
/// are what saturates a host at scale (≈ 600 of them fill this machine's two cores), and every
/// endpoint the engine detaches, every container it removes, then waits for CPU behind them; a
/// halted node costs none, while its container still runs, so that its endpoints still go one at a
/// time (Docker 20.10 miscounts a network's endpoints torn down at once by exiting containers). No
/// engine call is made. A node that does not answer is left running. Returns how many halted.
async fn halt_nodes(containers: &[ContainerInfo], progress: &Progress) -> usize {
    let Some(password) = (containers.iter())
        .find(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some(ROLE_META))
        .and_then(|c| c.labels.get(LABEL_RPC_PASSWORD))
    else {
        return 0;
    };
    let token = blueprint::init_token(password);
    let nodes: Vec<SocketAddr> = (containers.iter())
        .filter(|c| {
            c.state == State::Running
                && c.host.is_empty()
                && c.labels.contains_key(LABEL_NODE)
                && !c.labels.contains_key(LABEL_ROLE)
                && c.labels.get(LABEL_INIT).map(String::as_str) == Some(init_hash())
        })
        .filter_map(|c| c.networks.iter().find_map(|e| e.ip))
        .map(|ip| SocketAddr::new(ip.into(), INIT_PORT))
        .collect();
    if nodes.is_empty() {
        return 0;
    }
    progress.stage(
        &format!("halting {} nodes", nodes.len()),
        nodes.len() as u64,
    );
    let (token, direct) = (&token, &Transport::default());
    let halted = stream::iter(nodes.into_iter().map(|addr| async move {
        let answer =
            tokio::time::timeout(HALT_TIMEOUT, init_request(direct, addr, token, "halt")).await;
        progress.inc();
        match answer {
            Ok(Ok(Ok(()))) => true,
            other => {
                tracing::debug!("{addr}: no halt ({other:?})");
                false
            }
        }
    }))
    .buffer_unordered(HALT_CONCURRENCY)
    .filter(|&halted| async move { halted })
    .count()
    .await;
    tracing::debug!("halted {halted} nodes");
    halted
}

/// Removes what an interrupted or failed `up` created and says what happened.
pub(super) async fn rollback(docker: &Docker, journal: Journal) -> String {
    if journal.containers.is_empty() && journal.networks.is_empty() {
        return "nothing was created by this run".into();
    }
    let quiet = Progress::default();
    let mut removal = Removal::new(docker, &quiet);
    let containers = removal.some_containers(journal.containers).await;
    removal.volumes(journal.volumes).await;
    let networks = removal.networks(journal.networks.into_iter()).await;
    let mut msg =
        format!("removed what this run created: {containers} container(s), {networks} network(s)");
    if !removal.left.is_empty() {
        msg.push_str(&format!("; could NOT remove: {}", removal.left.join(", ")));
    }
    msg
}

/// Removes volumes (a bounded one's loop device with it); returns those that could not be removed.
pub(crate) async fn remove_volumes(docker: &Docker, names: Vec<String>) -> Vec<String> {
    let quiet = Progress::default();
    let mut removal = Removal::new(docker, &quiet);
    removal.volumes(names).await;
    removal.left
}

/// Bounded parallel removal that counts what went and remembers what did not.
struct Removal<'a> {
    docker: &'a Docker,
    progress: &'a Progress,
    left: Vec<String>,
    /// Networks Docker would not remove for endpoints no container holds.
    stale: Vec<String>,
}

impl<'a> Removal<'a> {
    fn new(docker: &'a Docker, progress: &'a Progress) -> Self {
        Removal {
            docker,
            progress,
            left: Vec::new(),
            stale: Vec::new(),
        }
    }

    /// A whole cluster's containers (`down`), by id, named in messages. The running ones are detached
    /// from their networks first (see `Docker::detach`: one endpoint of a network at a time, networks
    /// side by side), and each container is removed as soon as it has no endpoint left, while the
    /// others are still being detached; a failure to detach is left to the removal. Detached first, the
    /// nodes never see each other go, which does not matter when all of them go.
    async fn cluster_containers(&mut self, list: Vec<ContainerInfo>) -> usize {
        let docker = self.docker;
        let listed: Vec<&ContainerInfo> = list.iter().collect();
        let groups = running_groups(&listed);
        let mut attached: HashMap<String, usize> = HashMap::new();
        for (_, members) in &groups {
            for id in members {
                *attached.entry(id.clone()).or_default() += 1;
            }
        }
        let names: HashMap<String, String> = list
            .iter()
            .map(|c| (c.id.clone(), c.name.clone()))
            .collect();
        let (free, freed) = futures::channel::mpsc::unbounded::<(String, String)>();
        for c in list.iter().filter(|c| !attached.contains_key(&c.id)) {
            let _ = free.unbounded_send((c.name.clone(), c.id.clone()));
        }
        let attached = Mutex::new(attached);
        let release = |id: &str| {
            let mut attached = attached.lock().unwrap();
            if let Some(n) = attached.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    attached.remove(id);
                    let _ = free.unbounded_send((names[id].clone(), id.to_string()));
                }
            }
        };
        let detaching = async {
            if let Err(e) = docker.detach(groups, &release).await {
                tracing::debug!("{}", crate::core::names::error_chain(&e));
            }
            // Whatever could not be detached is removed attached (by force).
            for (id, _) in attached.lock().unwrap().drain() {
                let _ = free.unbounded_send((names[&id].clone(), id));
            }
            free.close_channel();
        };
        let removing = self.each(freed, DOCKER_CONCURRENCY, |(_, id)| async move {
            docker.remove_container(&id).await
        });
        let ((), removed) = tokio::join!(detaching, removing);
        removed
    }

    /// Some of a cluster's containers (a rolled-back `up`), one at a time and still attached, so the
    /// nodes that stay see their sessions close and no network's endpoints go at once.
    async fn some_containers(&mut self, names: Vec<String>) -> usize {
        let docker = self.docker;
        let items = stream::iter(names.into_iter().map(|n| (n.clone(), n)));
        self.each(items, 1, |(_, name)| async move {
            docker.remove_container(&name).await
        })
        .await
    }

    async fn volumes(&mut self, names: Vec<String>) -> usize {
        let docker = self.docker;
        let items = stream::iter(names.into_iter().map(|n| (n.clone(), n)));
        self.each(items, DOCKER_CONCURRENCY, |(n, _)| async move {
            // A bounded data volume's loop device goes with it.
            let device = crate::engine::disk::device_of(docker, &n).await;
            docker.remove_volume(&n).await?;
            if let Some(device) = device {
                if let Err(e) = crate::engine::disk::release(docker, &device).await {
                    tracing::warn!("{n}: {device} stays attached: {e}");
                }
            }
            Ok(())
        })
        .await
    }

    async fn networks(&mut self, nets: impl Iterator<Item = Net>) -> usize {
        let docker = self.docker;
        let items = stream::iter(nets.map(|n| (n.name.clone(), n)));
        self.each(items, DOCKER_CONCURRENCY, |(_, n)| async move {
            // Containers of no cluster may have joined (an operator running in a container).
            for member in docker.network_members(&n).await? {
                docker.disconnect_network(&member, &n).await?;
            }
            docker.remove_network(&n).await
        })
        .await
    }

    /// Removes every item (`(name, what removal needs)`) with bounded parallelism.
    async fn each<T, F, Fut>(
        &mut self,
        items: impl futures::Stream<Item = (String, T)>,
        concurrency: usize,
        remove: F,
    ) -> usize
    where
        T: Clone,
        F: Fn((String, T)) -> Fut,
        Fut: Future<Output = Result<(), DockerError>>,
    {
        let progress = self.progress;
        let results: Vec<(String, Result<(), DockerError>)> =
            stream::StreamExt::map(items, |item| {
                let name = item.0.clone();
                let fut = remove(item);
                async move {
                    let r = fut.await;
                    progress.inc();
                    (name, r)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut removed = 0;
        for (name, r) in results {
            match r {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!("{}", crate::core::names::error_chain(&e));
                    if e.is_stale_endpoints() {
                        self.stale.push(name.clone());
                    }
                    self.left.push(name);
                }
            }
        }
        removed
    }
}
