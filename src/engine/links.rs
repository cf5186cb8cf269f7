//! Link faults from the engine's side: the cluster's fault agents (one container per cluster — per host
//! with nodes, across hosts — from the regbox image, labelled with the cluster so `down` removes them
//! with the nodes), requests to them through `docker exec`, and the cluster's commands on the fault
//! plane — shape, cut, clear, and reading it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::core::cluster::blueprint::{self, LABEL_CLUSTER, LABEL_ROLE, ROLE_AGENT};
use crate::core::faults::link::Shaping;
use crate::core::faults::plane::{self, Block, Plane};
use crate::core::faults::rules::{AgentNode, AgentReply, AgentRequest};
use crate::core::partition::Cut;
use crate::core::verb::{Links, Report, Verb};
use crate::engine::cluster::Cluster;
use crate::engine::docker::ContainerSpec;
use crate::engine::error::{Error, Result};
use crate::engine::exec::Exec;
use crate::engine::image;
use crate::engine::progress::Progress;
use crate::engine::wait::{wait_until, Check, RPC_CONCURRENCY};
use futures::future::try_join_all;
use futures::stream::{self, StreamExt, TryStreamExt};

/// How long a fresh agent may take to listen.
const AGENT_START: Duration = Duration::from_secs(20);

impl Cluster {
    /// The active fault plane: every node's cuts and shaping, by node index (empty when the cluster has
    /// no agent, i.e. never had a link fault).
    pub async fn fault_plane(&self) -> Result<Plane> {
        let running = self.running_agents().await?;
        Ok(self.by_index(self.show(&running).await?))
    }

    /// The cluster's agents, by container name (each placed on its host): one, or across hosts one
    /// per host with nodes (which sets the faults of that host's nodes: it enters their namespaces
    /// through its engine's PIDs).
    fn agents(&self) -> Vec<String> {
        if self.spec.hosts.is_empty() {
            return vec![blueprint::agent_container(self.name())];
        }
        self.spec
            .hosts
            .iter()
            .filter(|h| !self.spec.nodes_on(&h.name).is_empty())
            .map(|h| {
                let name = blueprint::host_agent_container(self.name(), &h.name);
                self.docker.place(&name, &h.name);
                name
            })
            .collect()
    }

    /// The agent that sets node `i`'s faults.
    fn agent_of(&self, i: usize) -> String {
        match &self.spec.nodes[i].host {
            Some(host) => blueprint::host_agent_container(self.name(), host),
            None => blueprint::agent_container(self.name()),
        }
    }

    /// The agents that hold a plane (none: the cluster never had a link fault). An agent that does
    /// not run although its record is there — its container was killed, or removed, with the cluster
    /// left — is started again, and restores every node from the record before it answers: so any
    /// command that reads or changes the plane (and `open`, which every command goes through, reads
    /// it) brings the plane back.
    async fn running_agents(&self) -> Result<Vec<String>> {
        let agents = self.agents();
        let running = try_join_all(agents.iter().map(|name| self.docker.is_running(name))).await?;
        if running.iter().all(|&r| r) {
            return Ok(agents);
        }
        let label = format!("{LABEL_CLUSTER}={}", self.name());
        let recorded = self.docker.labeled_volumes(&label).await?;
        let dead: Vec<&String> = (agents.iter().zip(&running))
            .filter(|(a, &r)| !r && recorded.contains(&agent_volume(a)))
            .map(|(a, _)| a)
            .collect();
        if !dead.is_empty() {
            tracing::warn!(
                "the fault agent {} does not run: started again, it restores the link faults it recorded",
                dead.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
            );
            self.start_these(&dead, &Progress::default()).await?;
            let mut revived = self.revived.lock().unwrap();
            revived.extend(dead.iter().map(|a| a.to_string()));
        }
        Ok(agents
            .iter()
            .zip(&running)
            .filter(|(a, &r)| r || dead.contains(a))
            .map(|(a, _)| a.clone())
            .collect())
    }

    /// What the agents hold, as one reply (asked side by side).
    async fn show(&self, agents: &[String]) -> Result<AgentReply> {
        let replies = try_join_all(agents.iter().map(|a| self.ask(a, &AgentRequest::Show))).await?;
        let mut all = AgentReply::default();
        for reply in replies {
            all.nodes.extend(reply.nodes);
            all.errors.extend(reply.errors);
            all.stale.extend(reply.stale);
        }
        Ok(all)
    }

    /// Shapes the P2P packets each of `nodes` sends — to the peers in `to`, or to all — with
    /// `shaping`, replacing what was set there (an empty shaping clears it). Returns every node's link
    /// faults afterwards.
    pub async fn shape(
        &mut self,
        nodes: &[String],
        to: Option<&[String]>,
        shaping: &Shaping,
        progress: &Progress,
    ) -> Result<Links> {
        let verb = Verb::Netem {
            nodes: Some(nodes.to_vec()),
            to: to.map(<[String]>::to_vec),
            shaping: shaping.clone(),
        };
        self.links_verb(verb, progress).await
    }

    /// Keeps the packets of `from` from reaching `to` (and back, when `both`), dropped or reset.
    pub async fn cut(
        &mut self,
        from: &[String],
        to: &[String],
        both: bool,
        block: Block,
        progress: &Progress,
    ) -> Result<Links> {
        let verb = Verb::Cut {
            from: from.to_vec(),
            to: to.to_vec(),
            both,
            block,
        };
        self.links_verb(verb, progress).await
    }

    /// Removes the shaping (`shaping`) and/or the cuts (`cuts`) of `nodes` (every node for `None`).
    pub async fn clear_links(
        &mut self,
        nodes: Option<&[String]>,
        shaping: bool,
        cuts: bool,
        progress: &Progress,
    ) -> Result<Links> {
        let verb = Verb::Clear {
            nodes: nodes.map(<[String]>::to_vec),
            shaping,
            cuts,
        };
        self.links_verb(verb, progress).await
    }

    /// `netem`, `cut` or `clear` through the executor.
    async fn links_verb(&mut self, verb: Verb, progress: &Progress) -> Result<Links> {
        let how = Exec {
            progress: progress.clone(),
            ..Exec::default()
        };
        self.exec_for(verb, &how, Report::into_links).await
    }

    /// `shape` under the lock the executor holds.
    pub(crate) async fn shape_locked(
        &self,
        nodes: &[String],
        to: Option<&[String]>,
        shaping: &Shaping,
        progress: &Progress,
    ) -> Result<Plane> {
        let nodes = self.indexes(nodes)?;
        let to = to.map(|t| self.indexes(t)).transpose()?;
        self.change_plane_locked(progress, true, |plane| {
            plane::shape(plane, &nodes, to.as_deref(), shaping)
        })
        .await
    }

    /// `cut` under the lock the executor holds.
    pub(crate) async fn cut_locked(
        &self,
        from: &[String],
        to: &[String],
        both: bool,
        block: Block,
        progress: &Progress,
    ) -> Result<Plane> {
        let (from, to) = (self.indexes(from)?, self.indexes(to)?);
        self.change_plane_locked(progress, true, |plane| {
            plane::cut(plane, &from, &to, both, block)
        })
        .await
    }

    /// `clear_links` under the lock the executor holds.
    pub(crate) async fn clear_links_locked(
        &self,
        nodes: Option<&[String]>,
        shaping: bool,
        cuts: bool,
        progress: &Progress,
    ) -> Result<Plane> {
        let nodes = match nodes {
            Some(n) => self.indexes(n)?,
            None => (0..self.nodes.len()).collect(),
        };
        // Without an agent nothing was ever set: none is started to clear nothing.
        self.change_plane_locked(progress, false, |plane| {
            plane::clear(plane, &nodes, shaping, cuts)
        })
        .await
    }

    /// The pairs the active rules keep apart, one way or both.
    pub(crate) async fn cut_now(&self) -> Result<Cut> {
        Ok(self
            .fault_plane()
            .await?
            .iter()
            .flat_map(|(&a, f)| f.cuts.keys().map(move |&b| (a.min(b), a.max(b))))
            .collect())
    }

    fn indexes(&self, names: &[String]) -> Result<Vec<usize>> {
        names
            .iter()
            .map(|n| self.node(n).map(|n| n.layout.index))
            .collect()
    }

    fn by_index(&self, reply: AgentReply) -> Plane {
        reply
            .nodes
            .into_iter()
            .filter_map(|(name, f)| self.by_name.get(&name).map(|&i| (i, f)))
            .filter(|(_, f)| !f.is_empty())
            .collect()
    }

    /// Sets every node's plane to the manifest's links (no cuts, no other shaping), under the lock the
    /// caller holds: the end of `up`. Only nodes whose plane changes (or whose namespace lost it) are
    /// sent; nothing is started for a manifest without links and no agent.
    pub(crate) async fn declare_links_locked(&self, progress: &Progress) -> Result<()> {
        let start = !self.spec.links.is_empty();
        let declared = self.spec.links.clone();
        self.change_plane_locked(progress, start, |plane| {
            let changed = plane::changed(plane, &declared);
            *plane = declared;
            changed
        })
        .await
        .map(|_| ())
    }

    /// The fault agents this handle found dead and started again since the last call (`open`, which
    /// reads the plane, may have done it before the caller held the lock).
    pub(crate) fn take_revived_agents(&self) -> Vec<String> {
        std::mem::take(&mut *self.revived.lock().unwrap())
    }

    /// Sets again the planes the nodes' namespaces lost (a container that started afresh has a new
    /// one, with no rules in it), under the lock the caller holds. Returns the nodes set.
    pub(crate) async fn mend_links_locked(&self) -> Result<Vec<usize>> {
        let (_, mended) = self
            .edit_plane_locked(&Progress::default(), false, |_| Vec::new())
            .await?;
        Ok(mended)
    }

    /// Removes every cut (not the shaping), under the lock the caller holds: part of `heal`.
    pub(crate) async fn clear_cuts_locked(&self) -> Result<()> {
        self.change_plane_locked(&Progress::default(), false, |plane| {
            let cut: Vec<usize> = plane
                .iter()
                .filter(|(_, f)| !f.cuts.is_empty())
                .map(|(&i, _)| i)
                .collect();
            plane::clear(plane, &cut, false, true)
        })
        .await
        .map(|_| ())
    }

    /// Under the lock the caller holds: reads the plane from the agent, edits it, and sends the agent
    /// the nodes `edit` returns (none: no request). With `start`, an agent is started when none runs;
    /// without, an absent agent means no faults, and nothing is done.
    pub(crate) async fn change_plane_locked(
        &self,
        progress: &Progress,
        start: bool,
        edit: impl FnOnce(&mut Plane) -> Vec<usize>,
    ) -> Result<Plane> {
        Ok(self.edit_plane_locked(progress, start, edit).await?.0)
    }

    /// `change_plane_locked` that also sends every node whose namespace lost its plane (see
    /// `AgentReply::stale`), and returns the nodes it sent.
    async fn edit_plane_locked(
        &self,
        progress: &Progress,
        start: bool,
        edit: impl FnOnce(&mut Plane) -> Vec<usize>,
    ) -> Result<(Plane, Vec<usize>)> {
        let agents = if start {
            self.start_agents(progress).await?
        } else {
            self.running_agents().await?
        };
        if agents.is_empty() {
            return Ok((Plane::new(), Vec::new()));
        }
        let reply = self.show(&agents).await?;
        let stale: Vec<usize> = reply
            .stale
            .iter()
            .filter_map(|n| self.by_name.get(n).copied())
            .collect();
        let mut plane = self.by_index(reply);
        let edited: BTreeSet<usize> = edit(&mut plane).into_iter().collect();
        let stale: BTreeSet<usize> = stale
            .into_iter()
            .filter(|i| plane.contains_key(i) && !edited.contains(i))
            .collect();
        if edited.is_empty() && stale.is_empty() {
            return Ok((plane, Vec::new()));
        }
        let nodes = self.agent_nodes(&plane, &edited, &stale).await?;
        if nodes.is_empty() {
            return Ok((plane, Vec::new()));
        }
        let touched: Vec<usize> = nodes
            .iter()
            .filter_map(|n| self.by_name.get(&n.name).copied())
            .collect();
        Ok((self.send_to_agents(plane, nodes).await?, touched))
    }

    /// What the agent is sent for the `edited` and `stale` nodes of `plane`: each node's process and
    /// container (only a container of this cluster is named), and its faults. A stale node that is not
    /// running has nothing to mend: it stays recorded, not sent again.
    async fn agent_nodes(
        &self,
        plane: &Plane,
        edited: &BTreeSet<usize>,
        stale: &BTreeSet<usize>,
    ) -> Result<Vec<AgentNode>> {
        let all = edited.iter().chain(stale).copied();
        let nodes: Vec<(usize, AgentNode)> = stream::iter(all.map(|i| async move {
            let n = &self.nodes[i];
            let running = self.docker.pid(&n.layout.container).await?;
            let (pid, container) = match running {
                // The agent checks, itself, that the process is in the container named.
                Some(r) if r.labels.get(LABEL_CLUSTER).map(String::as_str) != Some(self.name()) => {
                    return Err(Error::Agent(format!(
                        "container `{}` is not a node of cluster `{}`",
                        n.layout.container,
                        self.name()
                    )))
                }
                Some(r) => (r.pid, r.id),
                None => (0, String::new()),
            };
            let node = AgentNode {
                name: n.name().to_string(),
                pid,
                container,
                faults: plane.get(&i).cloned().unwrap_or_default(),
            };
            Ok::<_, Error>((i, node))
        }))
        .buffered(RPC_CONCURRENCY)
        .try_collect()
        .await?;
        Ok(nodes
            .into_iter()
            .filter(|(i, n)| n.pid != 0 || edited.contains(i))
            .map(|(_, n)| n)
            .collect())
    }

    /// Sends `nodes` to their hosts' agents (the agents side by side, each one's batches in turn: one
    /// argument of `docker exec` holds at most 128 KiB), and returns `plane` with each agent's nodes
    /// replaced by that agent's last answer, its whole plane. Nodes an agent could not set fail the
    /// call, after the others were set.
    async fn send_to_agents(&self, plane: Plane, nodes: Vec<AgentNode>) -> Result<Plane> {
        let mut by_agent: BTreeMap<String, Vec<AgentNode>> = BTreeMap::new();
        for node in nodes {
            let agent = self.agent_of(self.by_name[&node.name]);
            by_agent.entry(agent).or_default().push(node);
        }
        let answers = try_join_all(by_agent.into_iter().map(|(agent, nodes)| async move {
            let mut last = AgentReply::default();
            let mut errors = Vec::new();
            for batch in batches(nodes) {
                last = self
                    .ask(&agent, &AgentRequest::Set { nodes: batch })
                    .await?;
                errors.extend(last.errors.values().cloned());
            }
            Ok::<_, Error>((agent, last, errors))
        }))
        .await?;
        let mut result = plane;
        let mut errors = Vec::new();
        for (agent, last, failed) in answers {
            result.retain(|&i, _| self.agent_of(i) != agent);
            result.extend(self.by_index(last));
            errors.extend(failed);
        }
        if !errors.is_empty() {
            return Err(Error::Agent(format!(
                "{} (the other nodes were set)",
                errors.join("; ")
            )));
        }
        Ok(result)
    }

    /// The cluster's agents, each started (and their image built, and copied to the hosts) when it
    /// does not run.
    async fn start_agents(&self, progress: &Progress) -> Result<Vec<String>> {
        let agents = self.agents();
        let running = try_join_all(agents.iter().map(|name| self.docker.is_running(name))).await?;
        let missing: Vec<&String> = (agents.iter().zip(running))
            .filter(|(_, r)| !r)
            .map(|(a, _)| a)
            .collect();
        if !missing.is_empty() {
            self.start_these(&missing, progress).await?;
        }
        Ok(agents)
    }

    /// Starts the agents `names` (building their image, and copying it to the hosts, if need be).
    async fn start_these(&self, names: &[&String], progress: &Progress) -> Result<()> {
        let image =
            image::ensure_regbox_image(&self.docker, &image::regbox_binary()?, progress).await?;
        self.docker.spread_image(&image).await?;
        try_join_all(names.iter().map(|name| self.start_agent(name, &image))).await?;
        Ok(())
    }

    /// Starts agent `name` from `image` and waits until it answers. A stopped agent (killed, or its
    /// host rebooted) is replaced; its record, in its volume, is kept: the new agent restores every
    /// node from it before it listens. Another command that started it at the same time is waited
    /// for, not fought.
    async fn start_agent(&self, name: &str, image: &str) -> Result<()> {
        if !self.docker.is_running(name).await? {
            self.start_afresh(name, image).await?;
        }
        let what = format!("the fault agent `{name}` to listen");
        wait_until(&what, AGENT_START, Duration::from_millis(50), || async {
            match self.ask(name, &AgentRequest::Show).await {
                Ok(_) => Ok(Check::Ready(())),
                Err(Error::Agent(e)) => Ok(Check::Pending(e)),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Replaces agent `name` with a new container from `image` (its volume stays).
    async fn start_afresh(&self, name: &str, image: &str) -> Result<()> {
        self.docker.remove_container(name).await?;
        let mut labels = blueprint::cluster_labels(self.name());
        labels.insert(LABEL_ROLE.into(), ROLE_AGENT.into());
        let made = self
            .docker
            .create(name, &agent_container(name, image, labels))
            .await;
        let started = match made {
            Ok(_) => self.docker.start(name).await,
            Err(e) => Err(e),
        };
        if let Err(e) = started {
            if !self.docker.is_running(name).await? {
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// One request to the agent, relayed by `regbox agent call` inside its container.
    async fn ask(&self, agent: &str, request: &AgentRequest) -> Result<AgentReply> {
        let text = serde_json::to_string(request).expect("a request serializes");
        let (code, out) = self
            .docker
            .exec(
                agent,
                ["/usr/bin/regbox", "agent", "call", &text]
                    .map(String::from)
                    .to_vec(),
            )
            .await?;
        if code != 0 {
            return Err(Error::Agent(format!("no answer ({})", out.trim())));
        }
        serde_json::from_str(out.trim())
            .map_err(|e| Error::Agent(format!("unreadable answer `{}`: {e}", out.trim())))
    }
}

/// The volume holding agent `agent`'s record: it outlives the agent's container, not the cluster.
fn agent_volume(agent: &str) -> String {
    format!("{agent}.state")
}

/// Bytes of JSON per request, well under the 128 KiB one `docker exec` argument may hold.
const REQUEST_BYTES: usize = 100_000;

/// `nodes` in batches whose requests stay under `REQUEST_BYTES` (at least one node each).
fn batches(nodes: Vec<AgentNode>) -> Vec<Vec<AgentNode>> {
    let mut out: Vec<Vec<AgentNode>> = vec![Vec::new()];
    let mut size = 0;
    for node in nodes {
        let bytes = serde_json::to_string(&node).map_or(0, |s| s.len());
        if size + bytes > REQUEST_BYTES && !out.last().unwrap().is_empty() {
            out.push(Vec::new());
            size = 0;
        }
        size += bytes;
        out.last_mut().unwrap().push(node);
    }
    out
}

/// regbox's recipe for a fault agent's container: `regbox agent serve` from the regbox image, on no
/// network, in the host's PID namespace (to find each node's network namespace by its process), with
/// only the capabilities that entering a namespace, changing its packet filter and sending a duplicate
/// packet (a raw socket: `NET_RAW`) take.
/// Its volume holds its record of every node's plane (see `blueprint::AGENT_STATE_DIR`), and it is started again
/// by the engine when it fails (a `docker kill` or `stop` is not a failure: the next command that
/// needs it starts it).
fn agent_container(
    name: &str,
    image: &str,
    labels: std::collections::HashMap<String, String>,
) -> ContainerSpec {
    ContainerSpec {
        image: image.to_string(),
        entrypoint: vec!["/usr/bin/regbox".into()],
        cmd: vec!["agent".into(), "serve".into()],
        labels,
        host_pid: true,
        cap_add: vec![
            "NET_ADMIN".into(),
            "NET_RAW".into(),
            "SYS_ADMIN".into(),
            "SYS_PTRACE".into(),
        ],
        tmpfs: vec![("/run".into(), "rw,noexec,nosuid,size=1m".into())],
        volume: Some((agent_volume(name), blueprint::AGENT_STATE_DIR.into())),
        restart: true,
        stop_timeout: 2,
        ..ContainerSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::faults::plane::NodeFaults;

    #[test]
    fn large_requests_are_split_under_the_argument_limit() {
        let node = |i: usize| AgentNode {
            name: format!("n{i}"),
            pid: 1,
            container: "ab".repeat(32),
            faults: NodeFaults {
                cuts: (0..1000).map(|p| (p, Block::Drop)).collect(),
                ..NodeFaults::default()
            },
        };
        let nodes: Vec<AgentNode> = (0..100).map(node).collect();
        let one = serde_json::to_string(&nodes[0]).unwrap().len();
        let batches = batches(nodes);
        assert!(batches.len() > 1);
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 100);
        for b in &batches {
            let text = serde_json::to_string(&AgentRequest::Set { nodes: b.clone() }).unwrap();
            assert!(text.len() <= REQUEST_BYTES + one, "{} bytes", text.len());
        }
        assert_eq!(super::batches(Vec::new()).len(), 1);
    }
}
