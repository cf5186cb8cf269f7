//! The reconcile planner: from the desired state of a cluster and one observation of it, the next pass of
//! actions — containers first, then segment moves, then sessions. The engine's one loop observes, asks
//! `next`, acts, and observes again until `next` says `Done`; nothing is decided anywhere else.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::core::cluster::session::{DataPlane, Sessions};
use crate::core::faults::plane::{self, NodeFaults, Plane};
use crate::core::partition::{self, CutMode, Partition, SegmentId, BASE};
use crate::core::topology::{diff, Edge, Graph, NodeId};

/// What the engine says a container is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Removing,
    Dead,
    Unknown,
}

impl State {
    /// The lower-case word `docker ps` would show.
    pub fn word(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Paused => "paused",
            State::Restarting => "restarting",
            State::Exited => "exited",
            State::Removing => "removing",
            State::Dead => "dead",
            State::Unknown => "unknown",
        }
    }
}

/// A declared node's container as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSeen {
    pub state: State,
    /// It was made from the node's current configuration (image, arguments, addresses).
    pub current: bool,
    /// A command stopped, killed or paused it on purpose (a hold, see `blueprint::ROLE_HOLD`).
    pub held: bool,
}

/// Which containers should exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Containers {
    /// Every declared node runs, made from its current configuration; nothing else of the cluster
    /// exists (`up`).
    Declared,
    /// Leave containers as they are: a node stopped or paused on purpose stays so (partition, heal,
    /// node faults).
    AsTheyAre,
    /// What the operator keeps: `Declared`, except that a node held on purpose stays as it is.
    Repair,
}

/// Which segments each node should be on.
#[derive(Debug, Clone, Copy)]
pub enum Segments<'a> {
    /// Keep the current membership (node faults re-wire inside the active partition).
    Keep,
    /// Every node on the base segment alone.
    Heal,
    /// The given partition, reached with as few moves as possible.
    Split(&'a Partition),
}

/// The desired state of a cluster.
#[derive(Debug, Clone, Copy)]
pub struct Desired<'a> {
    /// The declared edges (dialer first).
    pub edges: &'a [Edge],
    pub containers: Containers,
    pub segments: Segments<'a>,
    /// What happens to declared sessions that cross the partition.
    pub mode: CutMode,
}

/// One look at a cluster.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Per declared node, its container (None: there is none).
    pub nodes: Vec<Option<NodeSeen>>,
    /// Containers labeled with the cluster that are neither a declared node nor the metadata container.
    pub strays: Vec<String>,
    /// Networks that duplicate another of the same role (see [`pick_networks`]), by id.
    pub duplicates: Vec<String>,
    pub plane: DataPlane,
    /// The sessions the running nodes report.
    pub sessions: Sessions,
    /// Pairs a packet-filter rule keeps apart (a partition `--via firewall`, or `regbox cut`).
    pub cut: partition::Cut,
}

impl Observed {
    /// Per node, whether its container runs (only a running node answers RPC).
    pub fn running(&self) -> Vec<bool> {
        self.nodes
            .iter()
            .map(|n| {
                matches!(
                    n,
                    Some(NodeSeen {
                        state: State::Running,
                        ..
                    })
                )
            })
            .collect()
    }
}

/// Container work of one pass, carried out in this order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContainerActions {
    /// Containers to remove: strays.
    pub remove: Vec<String>,
    /// Nodes whose container, made from another configuration, is removed before it is made again
    /// (their data volume stays, with their chain).
    pub replace: Vec<NodeId>,
    /// Nodes to create (on the control network, attached to the data network) and start.
    pub create: Vec<NodeId>,
    pub start: Vec<NodeId>,
    pub unpause: Vec<NodeId>,
    /// Nodes whose hold goes: the declared state has every node running.
    pub release: Vec<NodeId>,
}

impl ContainerActions {
    /// The declared edges a container pass may dial as soon as both ends are ready, before the
    /// session pass: those between two nodes it creates, which start on the base segment — when the
    /// cluster is to be whole (`Heal`). The session pass checks them like any other.
    pub fn early_edges(&self, desired: &Desired) -> Vec<Edge> {
        if !matches!(desired.segments, Segments::Heal) {
            return Vec::new();
        }
        let created: BTreeSet<NodeId> = self.create.iter().copied().collect();
        desired
            .edges
            .iter()
            .filter(|e| created.contains(&e.from) && created.contains(&e.to))
            .copied()
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.replace.is_empty()
            && self.create.is_empty()
            && self.start.is_empty()
            && self.unpause.is_empty()
            && self.release.is_empty()
    }
}

/// Session work of one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionActions {
    /// Sessions to close: `(node, peer id at that node)`.
    pub drop: Vec<(NodeId, i64)>,
    /// Edges to dial now (`addnode onetry` from `from` to `to`).
    pub dial: Vec<Edge>,
    /// Expected edges not yet connected both ways with a finished handshake.
    pub pending: Vec<Edge>,
}

impl SessionActions {
    /// What is still open, for a progress line or a timeout message.
    pub fn describe(&self, name: impl Fn(NodeId) -> String) -> String {
        let pending: Vec<String> = self
            .pending
            .iter()
            .map(|e| format!("{}->{}", name(e.from), name(e.to)))
            .collect();
        format!(
            "{} session(s) to close; not yet connected: {}",
            self.drop.len(),
            if pending.is_empty() {
                "none".to_string()
            } else {
                pending.join(", ")
            }
        )
    }
}

/// The next pass of a reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pass {
    /// The cluster is in the desired state.
    Done,
    /// Duplicate networks to remove (by id), their members detached first.
    Networks(Vec<String>),
    Containers(ContainerActions),
    Segments(partition::Plan),
    Sessions(SessionActions),
}

/// The next pass from `desired` and one observation. Duplicate networks go first (until they do, which
/// segment a node is on is ambiguous), then containers (a node must run before it can be moved or
/// wired), then segment moves (sessions depend on which segments nodes share), then sessions.
/// `recently_dialed` holds the `(from, to)` dials made too recently to repeat.
pub fn next(
    desired: &Desired,
    observed: &Observed,
    recently_dialed: &BTreeSet<(NodeId, NodeId)>,
) -> Pass {
    if !observed.duplicates.is_empty() {
        return Pass::Networks(observed.duplicates.clone());
    }
    let containers = containers(desired.containers, observed);
    if !containers.is_empty() {
        return Pass::Containers(containers);
    }
    let moves = segments(desired.segments, &observed.plane);
    if !moves.is_empty() {
        return Pass::Segments(moves);
    }
    let sessions = sessions(desired, observed, recently_dialed);
    if sessions.drop.is_empty() && sessions.pending.is_empty() {
        Pass::Done
    } else {
        Pass::Sessions(sessions)
    }
}

/// Container work: under `Declared`, strays and outdated containers go, missing ones are created,
/// stopped ones started, paused ones unpaused, and holds released; under `Repair` the same, but a held
/// node is left as it is.
pub fn containers(goal: Containers, observed: &Observed) -> ContainerActions {
    let mut out = ContainerActions::default();
    if goal == Containers::AsTheyAre {
        return out;
    }
    out.remove = observed.strays.clone();
    for (node, seen) in observed.nodes.iter().enumerate() {
        match seen {
            Some(NodeSeen { held: true, .. }) if goal == Containers::Repair => continue,
            Some(NodeSeen { held: true, .. }) => out.release.push(node),
            _ => {}
        }
        match seen {
            None => out.create.push(node),
            Some(NodeSeen { current: false, .. }) => {
                out.replace.push(node);
                out.create.push(node);
            }
            Some(NodeSeen {
                state: State::Running,
                ..
            }) => {}
            Some(NodeSeen {
                state: State::Paused,
                ..
            }) => out.unpause.push(node),
            Some(_) => out.start.push(node),
        }
    }
    out
}

/// Segment moves from the observed membership to the desired one. A segment network that exists with
/// no member (left half-made by an interrupted command) is reused when the target needs it, never made
/// twice, and removed otherwise.
pub fn segments(goal: Segments, plane: &DataPlane) -> partition::Plan {
    let current = &plane.membership;
    let mut moves = match goal {
        Segments::Keep => partition::moves(current, current.clone()),
        Segments::Heal => partition::plan(current, None),
        Segments::Split(p) => partition::plan(current, Some(p)),
    };
    let used: BTreeSet<SegmentId> = moves.target.iter().flatten().copied().collect();
    moves.create.retain(|s| !plane.segments.contains_key(s));
    for &s in plane.segments.keys() {
        if s != BASE && !used.contains(&s) && !moves.remove.contains(&s) {
            moves.remove.push(s);
        }
    }
    moves.remove.sort_unstable();
    moves
}

/// What a cluster's network is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NetRole {
    Control,
    /// A data segment (the base segment is the data network).
    Segment(SegmentId),
}

/// A cluster network as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSeen {
    pub id: String,
    pub role: NetRole,
    /// How many of the cluster's containers are attached to it.
    pub members: usize,
}

/// Which network serves each role when the engine holds several (Docker 20.10 lets two networks share
/// a name, and an interrupted or racing command may have made a second one): the one with the most
/// members, then the lowest id, so every reader picks the same. Returns the kept network's index per
/// role and the indices of the others, to remove.
pub fn pick_networks(seen: &[NetworkSeen]) -> (BTreeMap<NetRole, usize>, Vec<usize>) {
    let mut kept: BTreeMap<NetRole, usize> = BTreeMap::new();
    for (i, n) in seen.iter().enumerate() {
        let better = |k: &NetworkSeen| {
            (n.members, std::cmp::Reverse(&n.id)) > (k.members, std::cmp::Reverse(&k.id))
        };
        match kept.get(&n.role) {
            Some(&k) if !better(&seen[k]) => {}
            _ => {
                kept.insert(n.role, i);
            }
        }
    }
    let mut extra: Vec<usize> = (0..seen.len())
        .filter(|i| !kept.values().any(|k| k == i))
        .collect();
    extra.sort_unstable();
    (kept, extra)
}

/// Session work among the running nodes: sessions of undeclared edges close; sessions over addresses
/// that no longer exist close (and are re-made over a shared segment); declared sessions whose ends share
/// no segment close (`Drop`) or stay frozen as a real network failure leaves them (`Silent`); declared
/// edges whose ends share a segment and have no live session are dialed, dialer first.
pub fn sessions(
    desired: &Desired,
    observed: &Observed,
    recently_dialed: &BTreeSet<(NodeId, NodeId)>,
) -> SessionActions {
    let up = observed.running();
    let membership = &observed.plane.membership;
    let blocked = |a: NodeId, b: NodeId| observed.cut.contains(&(a.min(b), a.max(b)));
    let shared = |a: NodeId, b: NodeId| {
        partition::shared_segment(membership, a, b).is_some() && !blocked(a, b)
    };
    let declared = Graph::from_edges(desired.edges);
    let mut out = SessionActions::default();
    // (at, peer) pairs with a live session; `connected` only those whose handshake is done.
    let mut listed = BTreeSet::new();
    let mut connected = BTreeSet::new();
    for s in &observed.sessions.list {
        if !up[s.peer] {
            continue; // a stopped or paused peer's sessions are frozen; they are handled when it runs
        }
        let keep = if !declared.contains(s.at, s.peer) {
            false
        } else if shared(s.at, s.peer) {
            s.live
        } else {
            // A session over a detached address, or one a rule stops, is frozen.
            desired.mode == CutMode::Silent && (!s.live || blocked(s.at, s.peer))
        };
        if !keep {
            out.drop.push((s.at, s.id));
            continue;
        }
        if s.live {
            listed.insert((s.at, s.peer));
            if s.handshake {
                connected.insert((s.at, s.peer));
            }
        }
    }
    for e in desired.edges {
        if !(up[e.from] && up[e.to] && shared(e.from, e.to)) {
            continue;
        }
        if connected.contains(&(e.from, e.to)) && connected.contains(&(e.to, e.from)) {
            continue;
        }
        out.pending.push(*e);
        // A dial that left a trace at either end is under way; one that left none is made again once
        // it is no longer recent (the listener may not have been up yet).
        let traced = listed.contains(&(e.from, e.to)) || listed.contains(&(e.to, e.from));
        if !traced && !recently_dialed.contains(&(e.from, e.to)) {
            out.dial.push(*e);
        }
    }
    out
}

/// What a user's `connect a b` needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairStep {
    /// Both list each other over a live session with the handshake done.
    Done,
    /// A live session exists at one end at least: the handshake is under way.
    Wait,
    /// No trace at either end: dial (again).
    Dial,
}

/// The next step of connecting `a` to `b`, from the sessions both report. `redial_due` says the last
/// dial is old enough to repeat.
pub fn connect_step(sessions: &Sessions, a: NodeId, b: NodeId, redial_due: bool) -> PairStep {
    let between = |x: NodeId, y: NodeId| {
        sessions
            .list
            .iter()
            .filter(move |s| s.at == x && s.peer == y && s.live)
    };
    let done = |x, y| between(x, y).any(|s| s.handshake);
    if done(a, b) && done(b, a) {
        PairStep::Done
    } else if between(a, b).next().is_some() || between(b, a).next().is_some() || !redial_due {
        PairStep::Wait
    } else {
        PairStep::Dial
    }
}

/// Every session between `a` and `b`, at both ends, as `(node, peer id)` to close.
pub fn pair_sessions(sessions: &Sessions, a: NodeId, b: NodeId) -> Vec<(NodeId, i64)> {
    sessions
        .list
        .iter()
        .filter(|s| (s.at, s.peer) == (a, b) || (s.at, s.peer) == (b, a))
        .map(|s| (s.at, s.id))
        .collect()
}

/// How the observed peer graph differs from the expected one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mismatch {
    pub missing: Vec<(NodeId, NodeId)>,
    pub extra: Vec<(NodeId, NodeId)>,
    /// Peers no node name could be matched to.
    pub unknown: Vec<String>,
}

impl Mismatch {
    pub fn describe(&self, name: impl Fn(NodeId) -> String) -> String {
        let pairs = |edges: &[(NodeId, NodeId)]| {
            edges
                .iter()
                .map(|&(a, b)| format!("{}-{}", name(a), name(b)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("missing {}", pairs(&self.missing)));
        }
        if !self.extra.is_empty() {
            parts.push(format!("extra {}", pairs(&self.extra)));
        }
        parts.extend(self.unknown.iter().cloned());
        parts.join("; ")
    }
}

/// Checks that the running nodes' peer graph is exactly the expected one: declared edges whose ends run
/// and share a segment. With `frozen_allowed` (silent cuts), frozen sessions of declared edges are
/// tolerated.
pub fn verify(edges: &[Edge], observed: &Observed, frozen_allowed: bool) -> Result<(), Mismatch> {
    let up = observed.running();
    let declared = Graph::from_edges(edges);
    let actual: Graph = observed
        .sessions
        .list
        .iter()
        .filter(|s| {
            let frozen = !s.live || observed.cut.contains(&(s.at.min(s.peer), s.at.max(s.peer)));
            up[s.peer] && !(frozen_allowed && frozen && declared.contains(s.at, s.peer))
        })
        .map(|s| (s.at, s.peer))
        .collect();
    let expected: Graph =
        partition::expected_graph(edges, &observed.plane.membership, &observed.cut)
            .edges()
            .filter(|&(a, b)| up[a] && up[b])
            .collect();
    let d = diff(&expected, &actual);
    if d.is_empty() && observed.sessions.unknown.is_empty() {
        return Ok(());
    }
    Err(Mismatch {
        missing: d.missing,
        extra: d.extra,
        unknown: observed.sessions.unknown.clone(),
    })
}

/// What one observation shows out of place against `desired`: what a repair pass sets right, for the
/// operator's report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub containers: ContainerActions,
    pub duplicates: Vec<String>,
    /// Declared edges without a live session both ways, dialer first.
    pub missing: Vec<Edge>,
    /// Sessions to close, as `(node, peer)`.
    pub unexpected: Vec<(NodeId, NodeId)>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
            && self.duplicates.is_empty()
            && self.missing.is_empty()
            && self.unexpected.is_empty()
    }

    /// One line per item, nodes by name.
    pub fn describe(&self, name: impl Fn(NodeId) -> String) -> Vec<String> {
        let c = &self.containers;
        let mut out = Vec::new();
        let nodes = |what: &str, ids: &[NodeId], out: &mut Vec<String>| {
            out.extend(ids.iter().map(|&i| format!("{what} {}", name(i))));
        };
        out.extend(
            c.remove
                .iter()
                .map(|s| format!("remove stray container {s}")),
        );
        nodes("remake", &c.replace, &mut out);
        let fresh: Vec<NodeId> = (c.create.iter())
            .filter(|n| !c.replace.contains(n))
            .copied()
            .collect();
        nodes("create", &fresh, &mut out);
        nodes("start", &c.start, &mut out);
        nodes("unpause", &c.unpause, &mut out);
        nodes("release the hold on", &c.release, &mut out);
        out.extend(
            self.duplicates
                .iter()
                .map(|d| format!("remove duplicate network {d}")),
        );
        out.extend(
            self.missing
                .iter()
                .map(|e| format!("connect {} -> {}", name(e.from), name(e.to))),
        );
        out.extend(
            self.unexpected
                .iter()
                .map(|&(a, b)| format!("close {}'s session with {}", name(a), name(b))),
        );
        out
    }
}

/// The drift of `observed` from `desired` (see [`Drift`]).
pub fn drift(desired: &Desired, observed: &Observed) -> Drift {
    let sessions = sessions(desired, observed, &BTreeSet::new());
    let peer_of = |at: NodeId, id: i64| {
        observed
            .sessions
            .list
            .iter()
            .find(|s| s.at == at && s.id == id)
            .map(|s| s.peer)
    };
    Drift {
        containers: containers(desired.containers, observed),
        duplicates: observed.duplicates.clone(),
        missing: sessions.pending,
        unexpected: sessions
            .drop
            .iter()
            .filter_map(|&(at, id)| peer_of(at, id).map(|p| (at, p)))
            .collect(),
    }
}

/// Everything `up` would do to reach the declared state, worked out in one go for `up --dry-run` (the
/// loop itself goes pass by pass, observing again in between).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UpPlan {
    /// Nodes with no container yet.
    pub create: Vec<NodeId>,
    /// Nodes whose container was made from another configuration (image, arguments, limits).
    pub recreate: Vec<NodeId>,
    /// Containers of the cluster that are no declared node, by name.
    pub remove: Vec<String>,
    pub start: Vec<NodeId>,
    pub unpause: Vec<NodeId>,
    /// Nodes whose hold goes (see `blueprint::ROLE_HOLD`).
    pub release: Vec<NodeId>,
    /// Nodes to put back on the base segment (a partition is active).
    pub heal: Vec<NodeId>,
    /// Declared edges no live session carries yet, dialer first.
    pub connect: Vec<(NodeId, NodeId)>,
    /// Sessions between nodes that no declared edge joins.
    pub disconnect: Vec<(NodeId, NodeId)>,
    /// Duplicate networks to remove, by id.
    pub duplicates: Vec<String>,
    /// Nodes whose link faults change: from what the agent holds to the manifest's `link`/`links`.
    pub links: Vec<LinkChange>,
    /// Why each node in `recreate` is remade: the fields of its spec that changed (see
    /// `NodeSpec::differences`); empty when the recorded spec does not tell (addresses, say).
    pub why: BTreeMap<NodeId, Vec<&'static str>>,
}

/// One node's link faults before and after `up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkChange {
    pub node: NodeId,
    pub before: NodeFaults,
    pub after: NodeFaults,
}

/// The nodes whose faults differ between the `links` in force and the `declared` ones.
pub fn link_changes(links: &Plane, declared: &Plane) -> Vec<LinkChange> {
    plane::changed(links, declared)
        .into_iter()
        .map(|node| LinkChange {
            node,
            before: links.get(&node).cloned().unwrap_or_default(),
            after: declared.get(&node).cloned().unwrap_or_default(),
        })
        .collect()
}

impl UpPlan {
    pub fn is_empty(&self) -> bool {
        *self == UpPlan::default()
    }

    /// The plan as a diff, one `(sign, what, detail)` per node, container, edge, link or network:
    /// `+` adds, `-` removes, `~` changes. `names` and `images` are the nodes'; `faults` words a
    /// node's link faults.
    pub fn diff(
        &self,
        names: &[String],
        images: &[String],
        faults: impl Fn(&NodeFaults) -> String,
    ) -> Vec<(char, String, String)> {
        let name = |i: &NodeId| names[*i].clone();
        let mut lines: Vec<(char, String, String)> = Vec::new();
        for i in &self.create {
            lines.push(('+', format!("node {}", name(i)), images[*i].clone()));
        }
        for i in &self.recreate {
            let why = self.why.get(i).filter(|w| !w.is_empty());
            let why = why.map_or("configuration changed".to_string(), |w| {
                format!("{} changed", w.join(", "))
            });
            lines.push(('~', format!("node {}", name(i)), format!("recreate: {why}")));
        }
        for c in &self.remove {
            lines.push(('-', format!("container {c}"), "not declared".into()));
        }
        for (what, ids) in [
            ("start", &self.start),
            ("unpause", &self.unpause),
            ("release its hold", &self.release),
            ("back to the base segment", &self.heal),
        ] {
            for i in ids {
                lines.push(('~', format!("node {}", name(i)), what.into()));
            }
        }
        for (a, b) in &self.connect {
            lines.push((
                '+',
                format!("edge {} -> {}", name(a), name(b)),
                String::new(),
            ));
        }
        for (a, b) in &self.disconnect {
            let what = format!("session {} -- {}", name(a), name(b));
            lines.push(('-', what, "not declared".into()));
        }
        for c in &self.links {
            let what = format!("{} -> {}", faults(&c.before), faults(&c.after));
            lines.push(('~', format!("links of {}", name(&c.node)), what));
        }
        for id in &self.duplicates {
            lines.push(('-', format!("network {id}"), "duplicate".into()));
        }
        lines
    }
}

/// The whole of what `up` would change in the observed cluster (see [`UpPlan`]), given the link faults
/// in force and those declared. Nodes that will be (re)made lose their sessions, so their declared
/// edges count as to connect.
pub fn up_plan(edges: &[Edge], observed: &Observed, links: &Plane, declared: &Plane) -> UpPlan {
    let containers = containers(Containers::Declared, observed);
    let mut out = UpPlan {
        remove: containers.remove,
        start: containers.start,
        unpause: containers.unpause,
        release: containers.release,
        duplicates: observed.duplicates.clone(),
        links: link_changes(links, declared),
        ..UpPlan::default()
    };
    for node in containers.create {
        match observed.nodes[node] {
            None => out.create.push(node),
            Some(_) => out.recreate.push(node),
        }
    }
    // Nodes (re)made start on the base segment; the others may need moving back to it.
    let remade: BTreeSet<NodeId> = out.create.iter().chain(&out.recreate).copied().collect();
    let moves = segments(Segments::Heal, &observed.plane);
    let mut heal: BTreeSet<NodeId> = moves.attach.iter().map(|&(n, _)| n).collect();
    heal.extend(moves.detach.iter().map(|&(n, _)| n));
    out.heal = heal.difference(&remade).copied().collect();
    let live: Graph = observed
        .sessions
        .list
        .iter()
        .filter(|s| s.live && !remade.contains(&s.at) && !remade.contains(&s.peer))
        .map(|s| (s.at, s.peer))
        .collect();
    let declared = Graph::from_edges(edges);
    out.connect = edges
        .iter()
        .filter(|e| !live.contains(e.from, e.to))
        .map(|e| (e.from, e.to))
        .collect();
    out.disconnect = live
        .edges()
        .filter(|&(a, b)| !declared.contains(a, b))
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::cluster::session::tests::{entry, identify, plane};
    use crate::core::cluster::session::PeerInfo;
    use crate::core::partition::SegmentId;
    use crate::core::topology::{generate, Kind};

    fn running(n: usize) -> Vec<Option<NodeSeen>> {
        vec![
            Some(NodeSeen {
                state: State::Running,
                current: true,
                held: false,
            });
            n
        ]
    }

    /// An observation of `membership` with the given peer lists (node → entries).
    fn observed(membership: &[&[SegmentId]], peers: Vec<(NodeId, Vec<PeerInfo>)>) -> Observed {
        let plane = plane(membership);
        let sessions = plane.sessions(
            peers.iter().map(|(n, l)| (*n, l.as_slice())),
            identify,
            |i| format!("n{i}"),
        );
        // The fixture plane knows segments 0 and 1; only those in use exist as networks here.
        let mut plane = plane;
        let used: BTreeSet<SegmentId> = plane.membership.iter().flatten().copied().collect();
        plane.segments.retain(|s, _| *s == BASE || used.contains(s));
        Observed {
            nodes: running(membership.len()),
            strays: Vec::new(),
            duplicates: Vec::new(),
            plane,
            sessions,
            cut: Default::default(),
        }
    }

    /// Both ends of a live session between `a` and `b` on `segment` (a dialed b).
    fn both(p: &DataPlane, a: NodeId, b: NodeId, segment: SegmentId) -> [(NodeId, PeerInfo); 2] {
        [
            (a, entry(p, 10 + b as i64, (a, segment), (b, segment))),
            (b, entry(p, 10 + a as i64, (b, segment), (a, segment))),
        ]
    }

    fn group(list: impl IntoIterator<Item = (NodeId, PeerInfo)>) -> Vec<(NodeId, Vec<PeerInfo>)> {
        let mut out: Vec<(NodeId, Vec<PeerInfo>)> = Vec::new();
        for (n, p) in list {
            match out.iter_mut().find(|(m, _)| *m == n) {
                Some((_, l)) => l.push(p),
                None => out.push((n, vec![p])),
            }
        }
        out
    }

    #[test]
    fn edges_between_nodes_created_together_are_dialed_early_only_for_a_whole_cluster() {
        let edges = generate(Kind::Ring, 4);
        let actions = ContainerActions {
            create: vec![1, 2, 3],
            start: vec![0],
            ..Default::default()
        };
        let whole = desired(&edges, Segments::Heal, CutMode::Drop);
        let early: Vec<(NodeId, NodeId)> = actions
            .early_edges(&whole)
            .iter()
            .map(|e| (e.from, e.to))
            .collect();
        assert_eq!(
            early,
            [(1, 2), (2, 3)],
            "0 was stopped: it may sit on another segment"
        );
        let kept = desired(&edges, Segments::Keep, CutMode::Drop);
        assert!(actions.early_edges(&kept).is_empty());
    }

    fn desired<'a>(edges: &'a [Edge], segments: Segments<'a>, mode: CutMode) -> Desired<'a> {
        Desired {
            edges,
            containers: Containers::AsTheyAre,
            segments,
            mode,
        }
    }

    #[test]
    fn a_fresh_cluster_creates_every_node_first() {
        let edges = generate(Kind::Ring, 3);
        let mut o = observed(&[&[], &[], &[]], vec![]);
        o.nodes = vec![None; 3];
        let d = Desired {
            containers: Containers::Declared,
            ..desired(&edges, Segments::Heal, CutMode::Drop)
        };
        let Pass::Containers(c) = next(&d, &o, &BTreeSet::new()) else {
            panic!("containers come first");
        };
        assert_eq!(c.create, vec![0, 1, 2]);
    }

    #[test]
    fn outdated_stray_stopped_and_paused_containers_each_get_their_action() {
        let mut o = observed(&[&[0], &[0], &[0], &[0]], vec![]);
        o.nodes[0] = Some(NodeSeen {
            state: State::Running,
            current: false,
            held: false,
        });
        o.nodes[1] = Some(NodeSeen {
            state: State::Exited,
            current: true,
            held: false,
        });
        o.nodes[2] = Some(NodeSeen {
            state: State::Paused,
            current: true,
            held: false,
        });
        o.strays = vec!["regbox-lab-old".into()];
        let c = containers(Containers::Declared, &o);
        assert_eq!(
            c,
            ContainerActions {
                remove: vec!["regbox-lab-old".into()],
                // Regression: an outdated container was created again without being removed, and
                // the engine refused the name (`apply` of a node's changed `args`).
                replace: vec![0],
                create: vec![0],
                start: vec![1],
                unpause: vec![2],
                release: vec![],
            }
        );
        // Partition, heal and faults leave a node that was stopped on purpose alone.
        assert!(containers(Containers::AsTheyAre, &o).is_empty());
        // The operator leaves a node held on purpose as it is; `up` releases and starts it.
        o.nodes[1].as_mut().unwrap().held = true;
        let repair = containers(Containers::Repair, &o);
        assert_eq!(repair.start, Vec::<NodeId>::new());
        assert_eq!((repair.create, repair.unpause), (vec![0], vec![2]));
        let declared = containers(Containers::Declared, &o);
        assert_eq!((declared.start, declared.release), (vec![1], vec![1]));
    }

    #[test]
    fn drift_names_what_a_repair_pass_sets_right() {
        // A 4-ring where n1 died, n0-n2 has an undeclared session, and n2-n3 is not connected.
        let edges = generate(Kind::Ring, 4);
        let p = plane(&[&[0], &[0], &[0], &[0]]);
        let peers = group(
            both(&p, 0, 1, 0)
                .into_iter()
                .chain(both(&p, 0, 3, 0))
                .chain(both(&p, 0, 2, 0)),
        );
        let mut o = observed(&[&[0], &[0], &[0], &[0]], peers);
        o.nodes[1].as_mut().unwrap().state = State::Exited;
        let desired = Desired {
            edges: &edges,
            containers: Containers::Repair,
            segments: Segments::Keep,
            mode: CutMode::Drop,
        };
        let d = drift(&desired, &o);
        assert_eq!(d.containers.start, vec![1]);
        let lines = d.describe(|i| format!("n{i}"));
        assert_eq!(
            lines,
            vec![
                "start n1",
                "connect n2 -> n3",
                "close n0's session with n2",
                "close n2's session with n0",
            ]
        );
        assert!(!d.is_empty());
    }

    #[test]
    fn a_half_applied_partition_moves_segments_before_any_session() {
        // Halves of 4: n2 already moved to segment 1, n3 still on the base segment.
        let edges = generate(Kind::Ring, 4);
        let o = observed(&[&[0], &[0], &[1], &[0]], vec![]);
        let p = Partition {
            groups: vec![BTreeSet::from([0, 1]), BTreeSet::from([2, 3])],
        };
        let d = desired(&edges, Segments::Split(&p), CutMode::Drop);
        let Pass::Segments(moves) = next(&d, &o, &BTreeSet::new()) else {
            panic!("segments before sessions");
        };
        assert_eq!(moves.attach, vec![(3, 1)]);
        assert_eq!(moves.detach, vec![(3, 0)]);
        assert!(moves.create.is_empty());
    }

    #[test]
    fn a_node_on_no_data_segment_is_put_back_by_heal() {
        // An interrupted move detached n1 from everything.
        let o = observed(&[&[0], &[], &[0]], vec![]);
        let moves = segments(Segments::Heal, &o.plane);
        assert_eq!(moves.attach, vec![(1, 0)]);
        assert!(moves.detach.is_empty() && moves.create.is_empty());
    }

    #[test]
    fn a_half_made_segment_is_reused_when_needed_and_removed_otherwise() {
        // Segment 1's network exists but nobody was attached before the command was cut off.
        let mut o = observed(&[&[0], &[0], &[0], &[0]], vec![]);
        o.plane
            .segments
            .insert(1, "10.129.16.0/20".parse().unwrap());
        let p = Partition {
            groups: vec![BTreeSet::from([0, 1]), BTreeSet::from([2, 3])],
        };
        let split = segments(Segments::Split(&p), &o.plane);
        assert!(split.create.is_empty(), "never made twice");
        assert_eq!(split.attach, vec![(2, 1), (3, 1)]);
        let heal = segments(Segments::Heal, &o.plane);
        assert_eq!(heal.remove, vec![1]);
        assert!(heal.attach.is_empty() && heal.detach.is_empty());
        assert_eq!(segments(Segments::Keep, &o.plane).remove, vec![1]);
    }

    #[test]
    fn duplicate_networks_keep_the_one_in_use_and_go_first() {
        let net = |id: &str, role, members| NetworkSeen {
            id: id.into(),
            role,
            members,
        };
        let seen = [
            net("b1", NetRole::Segment(1), 2),
            net("a1", NetRole::Segment(1), 0),
            net("c0", NetRole::Segment(0), 4),
            net("ctl", NetRole::Control, 4),
            net("a2", NetRole::Segment(2), 1),
            net("b2", NetRole::Segment(2), 1),
        ];
        let (kept, extra) = pick_networks(&seen);
        assert_eq!(kept[&NetRole::Segment(1)], 0, "the one with members");
        assert_eq!(
            kept[&NetRole::Segment(2)],
            4,
            "equal members: the lowest id"
        );
        assert_eq!(kept[&NetRole::Control], 3);
        assert_eq!(extra, vec![1, 5]);
        let mut o = observed(&[&[0], &[0]], vec![]);
        o.duplicates = vec!["a1".into()];
        let d = desired(&[], Segments::Heal, CutMode::Drop);
        assert_eq!(
            next(&d, &o, &BTreeSet::new()),
            Pass::Networks(vec!["a1".into()])
        );
    }

    #[test]
    fn the_up_plan_lists_every_change_at_once() {
        // A 4-ring on the books; observed: n1 made from an old configuration, n2 stopped, a stray
        // container, n3 alone on a segment, and an undeclared session n0-n2 next to the live n0-n1.
        let edges = generate(Kind::Ring, 4);
        let p = plane(&[&[0], &[0], &[0], &[1]]);
        let peers = group(both(&p, 0, 1, 0).into_iter().chain(both(&p, 0, 2, 0)));
        let mut o = observed(&[&[0], &[0], &[0], &[1]], peers);
        o.nodes[1] = Some(NodeSeen {
            state: State::Running,
            current: false,
            held: false,
        });
        o.nodes[2] = Some(NodeSeen {
            state: State::Exited,
            current: true,
            held: false,
        });
        o.strays = vec!["regbox-lab-old".into()];
        let plan = up_plan(&edges, &o, &Plane::new(), &Plane::new());
        assert_eq!(plan.recreate, vec![1]);
        assert_eq!(plan.start, vec![2]);
        assert_eq!(plan.remove, vec!["regbox-lab-old".to_string()]);
        assert_eq!(plan.heal, vec![3]);
        // n0-n1 is live but n1 is remade: every declared edge is to connect.
        assert_eq!(plan.connect, vec![(0, 1), (1, 2), (2, 3), (3, 0)]);
        assert_eq!(plan.disconnect, vec![(0, 2)]);
        let names: Vec<String> = (0..4).map(|i| format!("n{i}")).collect();
        let images = vec!["img".to_string(); 4];
        let diff = plan.diff(&names, &images, |_| "-".into());
        let line = |sign, what: &str, detail: &str| (sign, what.to_string(), detail.to_string());
        assert!(diff.contains(&line('~', "node n1", "recreate: configuration changed")));
        assert!(diff.contains(&line('-', "container regbox-lab-old", "not declared")));
        assert!(diff.contains(&line('~', "node n2", "start")));
        assert!(diff.contains(&line('~', "node n3", "back to the base segment")));
        assert!(diff.contains(&line('+', "edge n0 -> n1", "")));
        assert!(diff.contains(&line('-', "session n0 -- n2", "not declared")));
        // A fresh cluster: everything is created and connected.
        let mut fresh = observed(&[&[], &[], &[], &[]], vec![]);
        fresh.nodes = vec![None; 4];
        let plan = up_plan(&edges, &fresh, &Plane::new(), &Plane::new());
        assert_eq!(plan.create, vec![0, 1, 2, 3]);
        assert_eq!(plan.connect.len(), 4);
        assert!(plan.heal.is_empty() && plan.disconnect.is_empty());
    }

    #[test]
    fn keep_touches_no_segment() {
        let o = observed(&[&[0], &[1], &[0, 1]], vec![]);
        assert!(segments(Segments::Keep, &o.plane).is_empty());
    }

    #[test]
    fn a_frozen_session_over_a_vanished_address_is_dropped_and_the_edge_redialed() {
        // n0-n1 was live on segment 0; n1 was moved to segment 1 and back to {0, 1}: the old session
        // still names n1's segment-1 address, which it no longer has.
        let edges = [Edge::new(0, 1)];
        let before = plane(&[&[1], &[1]]);
        let peers = group([
            (0, entry(&before, 5, (0, 1), (1, 1))),
            (1, entry(&before, 6, (1, 1), (0, 1))),
        ]);
        let o = observed(&[&[0], &[0]], peers);
        let d = desired(&edges, Segments::Keep, CutMode::Drop);
        let Pass::Sessions(s) = next(&d, &o, &BTreeSet::new()) else {
            panic!("sessions to fix");
        };
        assert_eq!(s.drop, vec![(0, 5), (1, 6)]);
        assert_eq!(s.dial, vec![Edge::new(0, 1)]);
        assert_eq!(
            s.describe(|i| format!("n{i}")),
            "2 session(s) to close; not yet connected: n0->n1"
        );
    }

    #[test]
    fn a_silent_cut_keeps_frozen_declared_sessions_and_drop_closes_them() {
        let edges = [Edge::new(0, 1)];
        let before = plane(&[&[0], &[0]]);
        let peers = group(both(&before, 0, 1, 0));
        let o = observed(&[&[0], &[1]], peers);
        let silent = desired(&edges, Segments::Keep, CutMode::Silent);
        assert_eq!(next(&silent, &o, &BTreeSet::new()), Pass::Done);
        let drop = desired(&edges, Segments::Keep, CutMode::Drop);
        let Pass::Sessions(s) = next(&drop, &o, &BTreeSet::new()) else {
            panic!("drop closes crossing sessions");
        };
        assert_eq!(s.drop.len(), 2);
        assert!(s.dial.is_empty() && s.pending.is_empty());
    }

    #[test]
    fn undeclared_sessions_close_and_a_dead_peer_is_left_alone() {
        let edges = [Edge::new(0, 1)];
        let p = plane(&[&[0], &[0], &[0]]);
        let mut peers = both(&p, 0, 1, 0).to_vec();
        peers.extend(both(&p, 1, 2, 0)); // n1-n2 is not declared
        let mut o = observed(&[&[0], &[0], &[0]], group(peers));
        let d = desired(&edges, Segments::Keep, CutMode::Drop);
        let Pass::Sessions(s) = next(&d, &o, &BTreeSet::new()) else {
            panic!("the undeclared session closes");
        };
        assert_eq!(s.drop, vec![(1, 12), (2, 11)]);
        // n2 died: its sessions are frozen and its own restart re-wires them.
        o.nodes[2] = Some(NodeSeen {
            state: State::Exited,
            current: true,
            held: false,
        });
        o.sessions.list.retain(|s| s.at != 2);
        assert_eq!(next(&d, &o, &BTreeSet::new()), Pass::Done);
    }

    #[test]
    fn a_recent_dial_is_not_repeated_and_a_traced_one_is_awaited() {
        let edges = [Edge::new(0, 1)];
        let o = observed(&[&[0], &[0]], vec![]);
        let d = desired(&edges, Segments::Keep, CutMode::Drop);
        let recent = BTreeSet::from([(0, 1)]);
        let Pass::Sessions(s) = next(&d, &o, &recent) else {
            panic!("still pending");
        };
        assert!(s.dial.is_empty());
        assert_eq!(s.pending, vec![Edge::new(0, 1)]);
        // The dialer lists the session but no pong yet: wait, don't dial again.
        let p = plane(&[&[0], &[0]]);
        let mut half = entry(&p, 1, (0, 0), (1, 0));
        half.bytesrecv_per_msg.clear();
        let o = observed(&[&[0], &[0]], vec![(0, vec![half])]);
        let Pass::Sessions(s) = next(&d, &o, &BTreeSet::new()) else {
            panic!("still pending");
        };
        assert!(s.dial.is_empty() && s.drop.is_empty());
    }

    #[test]
    fn connect_waits_for_both_ends_and_redials_only_without_a_trace() {
        let p = plane(&[&[0], &[0]]);
        let none = observed(&[&[0], &[0]], vec![]);
        assert_eq!(connect_step(&none.sessions, 0, 1, false), PairStep::Wait);
        assert_eq!(connect_step(&none.sessions, 0, 1, true), PairStep::Dial);
        let half = observed(&[&[0], &[0]], vec![(0, vec![entry(&p, 1, (0, 0), (1, 0))])]);
        assert_eq!(connect_step(&half.sessions, 0, 1, true), PairStep::Wait);
        let full = observed(&[&[0], &[0]], group(both(&p, 0, 1, 0)));
        assert_eq!(connect_step(&full.sessions, 0, 1, true), PairStep::Done);
        assert_eq!(pair_sessions(&full.sessions, 0, 1), vec![(0, 11), (1, 10)]);
    }

    #[test]
    fn every_partition_is_stable_once_applied() {
        // The loop re-plans after each pass: a realised partition must plan no further moves.
        use crate::core::cluster::manifest;
        use crate::core::partition::PartitionKind;
        let spec = manifest::parse("name: lab\nnodes: 7\n", "t.yaml").unwrap();
        let kinds = [
            PartitionKind::Halves,
            PartitionKind::RandomHalves { seed: 3 },
            PartitionKind::Isolate("n3".into()),
            PartitionKind::Bridge,
            PartitionKind::MajoritiesRing,
        ];
        for kind in kinds {
            let p = partition::build(&spec, &kind).unwrap();
            let mut current = partition::healed(7);
            for _ in 0..2 {
                let moves = partition::plan(&current, Some(&p));
                current = moves.target.clone();
            }
            let plane = DataPlane {
                membership: current,
                ..Default::default()
            };
            assert!(segments(Segments::Split(&p), &plane).is_empty(), "{kind:?}");
        }
    }

    #[test]
    fn verify_names_missing_extra_and_unknown_peers() {
        let edges = [Edge::new(0, 1), Edge::new(1, 2)];
        let p = plane(&[&[0], &[0], &[0]]);
        let mut peers = group(both(&p, 0, 1, 0).into_iter().chain(both(&p, 0, 2, 0)));
        peers[0]
            .1
            .push(crate::core::cluster::session::tests::peer("/x(stranger)/"));
        let o = observed(&[&[0], &[0], &[0]], peers);
        let m = verify(&edges, &o, false).unwrap_err();
        assert_eq!(
            m.describe(|i| format!("n{i}")),
            "missing n1-n2; extra n0-n2; n0 has unidentified peer  `/x(stranger)/`"
        );
        let p2 = plane(&[&[0], &[0], &[0]]);
        let good = observed(
            &[&[0], &[0], &[0]],
            group(both(&p2, 0, 1, 0).into_iter().chain(both(&p2, 1, 2, 0))),
        );
        assert_eq!(verify(&edges, &good, false), Ok(()));
    }
}
