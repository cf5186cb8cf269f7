//! Resource faults on running nodes: `throttle` sets a node's CPU and memory limits in place through
//! the engine's update call (no restart: bitcoind keeps running, slower or tighter), and records them
//! on a marker container so that `status`, a later process and the operator know them — the operator
//! makes a node's container again with its throttle. `throttle --clear` gives the node back the
//! resources its manifest declares.

use std::collections::{BTreeMap, HashMap};

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::core::cluster::blueprint::{
    self, LABEL_NODE, LABEL_ROLE, LABEL_THROTTLE, ROLE_THROTTLE,
};
use crate::core::faults::throttle::Limits;
use crate::core::topology::NodeId;
use crate::core::verb::{Throttles, Verb};
use crate::engine::cluster::Cluster;
use crate::engine::docker::ContainerInfo;
use crate::engine::error::{Error, Result};
use crate::engine::exec::Exec;
use crate::engine::reconcile::DOCKER_CONCURRENCY;

impl Cluster {
    /// Limits the CPU and memory of `nodes` (names or indices) at run time; limits not given keep what
    /// an earlier throttle set. Returns every throttled node's limits.
    pub async fn throttle(&mut self, nodes: &[&str], limits: Limits) -> Result<Throttles> {
        let verb = Verb::Throttle {
            nodes: Some(nodes.iter().map(|n| n.to_string()).collect()),
            limits,
            clear: false,
        };
        self.exec_for(verb, &Exec::default(), pick).await
    }

    /// Gives `nodes` (every node for `None`) back their declared resources. Returns every node still
    /// throttled.
    pub async fn clear_throttle(&mut self, nodes: Option<&[&str]>) -> Result<Throttles> {
        let verb = Verb::Throttle {
            nodes: nodes.map(|n| n.iter().map(|n| n.to_string()).collect()),
            limits: Limits::default(),
            clear: true,
        };
        self.exec_for(verb, &Exec::default(), pick).await
    }

    /// `throttle`, under the cluster's lock: the CPUs asked for are checked against each node's host
    /// before anything changes; then each node's container is updated and its record made (or, with
    /// `clear`, updated back to the declared resources and its record removed).
    pub(crate) async fn throttle_locked(
        &self,
        nodes: Option<&[String]>,
        limits: &Limits,
        clear: bool,
    ) -> Result<Throttles> {
        let mut ids: Vec<NodeId> = match nodes {
            Some(names) => names
                .iter()
                .map(|n| self.node(n).map(|n| n.layout.index))
                .collect::<Result<_>>()?,
            None => (0..self.nodes.len()).collect(),
        };
        ids.sort_unstable();
        ids.dedup();
        let cpus = self.host_cpus(&ids).await?;
        if let Some(asked) = limits.cpus {
            for &i in &ids {
                let have = cpus[&self.spec.nodes[i].host];
                if asked > have as f64 {
                    return Err(Error::BadRequest(format!(
                        "`cpus` {asked} is more than the {have} CPUs of the host of node `{}`",
                        self.nodes[i].name()
                    )));
                }
            }
        }
        let recorded = self.throttles().await?;
        stream::iter(ids.iter().map(|&i| {
            let before = recorded.get(&i).copied().unwrap_or_default();
            let after = (!clear).then(|| before.and(limits));
            let host_cpus = cpus[&self.spec.nodes[i].host];
            async move { self.set_limits(i, after, host_cpus).await }
        }))
        .buffer_unordered(DOCKER_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
        let now = self.throttles().await?;
        Ok(now
            .into_iter()
            .map(|(i, l)| (self.nodes[i].name().to_string(), l))
            .collect())
    }

    /// Updates node `i`'s container to `limits` over its declared resources (the declared ones for
    /// `None`), then records them. The engine cannot lift a CPU limit once set (a quota of 0 means
    /// "unchanged" to it), so a node declared without one gets all `host_cpus`: no limit in effect.
    async fn set_limits(&self, i: NodeId, limits: Option<Limits>, host_cpus: u64) -> Result<()> {
        let declared = self.spec.nodes[i].resources;
        let effective = limits.map_or(declared, |l| l.over(declared));
        let nano_cpus = effective.nano_cpus.unwrap_or(host_cpus * 1_000_000_000);
        let node = &self.nodes[i];
        self.docker
            .update_limits(&node.layout.container, nano_cpus, effective.memory)
            .await?;
        tracing::info!(
            "node {}: {}",
            node.name(),
            limits.map_or("declared resources again".into(), |l| l.to_string())
        );
        let record = blueprint::throttle_container(self.name(), node.name());
        self.docker.remove_container(&record).await?;
        let Some(limits) = limits else {
            return Ok(());
        };
        let mut labels = blueprint::cluster_labels(self.name());
        labels.insert(LABEL_ROLE.into(), ROLE_THROTTLE.into());
        labels.insert(LABEL_NODE.into(), node.name().into());
        labels.insert(
            LABEL_THROTTLE.into(),
            serde_json::to_string(&limits).expect("limits serialize"),
        );
        self.docker
            .create_marker(&record, &self.lock_image, &["true"], labels)
            .await?;
        Ok(())
    }

    /// The CPUs of the host of each of `ids` (by the node's `host`; None: the one engine), one call
    /// per host.
    async fn host_cpus(&self, ids: &[NodeId]) -> Result<HashMap<Option<String>, u64>> {
        let mut cpus = HashMap::new();
        for &i in ids {
            let host = &self.spec.nodes[i].host;
            if !cpus.contains_key(host) {
                let have = self
                    .docker
                    .engine_cpus(&self.nodes[i].layout.container)
                    .await?;
                cpus.insert(host.clone(), have);
            }
        }
        Ok(cpus)
    }

    /// Every throttled node's limits, as recorded.
    pub(crate) async fn throttles(&self) -> Result<BTreeMap<NodeId, Limits>> {
        let filter = blueprint::cluster_filter(Some(self.name()));
        let containers = self.docker.labeled_containers(&filter).await?;
        Ok(self.throttles_in(&containers))
    }

    /// The throttles recorded among `containers` (a listing of the cluster's), of declared nodes.
    pub(crate) fn throttles_in(&self, containers: &[ContainerInfo]) -> BTreeMap<NodeId, Limits> {
        containers
            .iter()
            .filter(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some(ROLE_THROTTLE))
            .filter_map(|c| {
                let node = *self.by_name.get(c.labels.get(LABEL_NODE)?)?;
                let limits = serde_json::from_str(c.labels.get(LABEL_THROTTLE)?);
                match limits {
                    Ok(l) => Some((node, l)),
                    Err(e) => {
                        tracing::warn!("the throttle record `{}` is unreadable: {e}", c.name);
                        None
                    }
                }
            })
            .collect()
    }
}

fn pick(report: crate::core::verb::Report) -> Option<Throttles> {
    match report {
        crate::core::verb::Report::Throttled(t) => Some(t),
        _ => None,
    }
}
