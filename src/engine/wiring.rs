//! P2P sessions between nodes: reading them back from `getpeerinfo`, telling live sessions from frozen
//! ones, and the one re-wiring loop that brings them to the expected graph — used by `up`, `connect`,
//! `partition`, `heal` and the node faults alike.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use tokio::time::Instant;

use crate::core::blueprint;
use crate::core::partition::{self, CutMode, SegmentId};
use crate::core::topology::{diff, Edge, Graph, NodeId};
use crate::engine::cluster::{run_all, Cluster, Error, Result};
use crate::engine::docker::State;
use crate::engine::rpc::PeerInfo;
use crate::engine::wait::{self, interval_for, wait_until, Check};

/// One end's view of a P2P session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub at: NodeId,
    pub peer: NodeId,
    pub id: i64,
    /// Both addresses of the session still belong to the two nodes, on a segment they share. A session
    /// over an address that was detached is frozen: Docker sends no reset, so bitcoind keeps listing it.
    pub live: bool,
    pub handshake: bool,
}

/// Sessions of every queried node, and the peers no node name could be matched to.
pub(crate) struct Sessions {
    pub list: Vec<Session>,
    pub unknown: Vec<String>,
}

fn ip_of(addr: &str) -> Option<Ipv4Addr> {
    match addr.parse::<SocketAddr>().ok()?.ip() {
        IpAddr::V4(ip) => Some(ip),
        IpAddr::V6(ip) => ip.to_ipv4_mapped(),
    }
}

impl Cluster {
    /// Which node a peer entry is, by the node name its user agent carries (`-uacomment`).
    pub(crate) fn identify(&self, peer: &PeerInfo) -> Option<NodeId> {
        peer.ua_comments()
            .find_map(|c| self.by_name.get(c).copied())
    }

    /// The node and segment an address belongs to now.
    fn owner(&self, ip: Ipv4Addr) -> Option<(NodeId, SegmentId)> {
        self.membership.iter().enumerate().find_map(|(node, segs)| {
            segs.iter()
                .find(|&&s| self.address(node, s) == Some(ip))
                .map(|&s| (node, s))
        })
    }

    /// Node `node`'s static address on segment `segment`.
    pub fn address(&self, node: NodeId, segment: SegmentId) -> Option<Ipv4Addr> {
        self.segments
            .get(&segment)
            .map(|subnet| blueprint::node_address(*subnet, node))
    }

    /// Where `from` reaches `to`: `to`'s address on the lowest segment they share.
    fn dial_addr(&self, from: NodeId, to: NodeId) -> Option<SocketAddr> {
        let segment = partition::shared_segment(&self.membership, from, to)?;
        Some(SocketAddr::new(
            self.address(to, segment)?.into(),
            blueprint::P2P_PORT,
        ))
    }

    pub(crate) async fn peers_of(&self, ids: &[NodeId]) -> Result<HashMap<NodeId, Vec<PeerInfo>>> {
        let lists = stream::iter(ids.iter().map(|&i| async move {
            let node = &self.nodes[i];
            node.rpc
                .get_peer_info()
                .await
                .map(|p| (i, p))
                .map_err(|e| node.rpc_error(e))
        }))
        .buffer_unordered(wait::RPC_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
        lists.into_iter().collect()
    }

    pub(crate) fn sessions(&self, peers: &HashMap<NodeId, Vec<PeerInfo>>) -> Sessions {
        let mut out = Sessions {
            list: Vec::new(),
            unknown: Vec::new(),
        };
        for (&at, list) in peers {
            for p in list {
                let Some(peer) = self.identify(p) else {
                    out.unknown.push(format!(
                        "{} has unidentified peer {} `{}`",
                        self.nodes[at].name(),
                        p.addr,
                        p.subver
                    ));
                    continue;
                };
                let remote = ip_of(&p.addr).and_then(|ip| self.owner(ip));
                let local = ip_of(&p.addrbind).and_then(|ip| self.owner(ip));
                let live = match (remote, local) {
                    (Some((r, rs)), Some((l, ls))) => r == peer && l == at && rs == ls,
                    // Old nodes report no addrbind: trust the remote address alone.
                    (Some((r, _)), None) if p.addrbind.is_empty() => r == peer,
                    _ => false,
                };
                out.list.push(Session {
                    at,
                    peer,
                    id: p.id,
                    live,
                    handshake: p.handshake_done(),
                });
            }
        }
        out.unknown.sort();
        out
    }

    /// Which nodes' containers are running (a paused or stopped node answers no RPC).
    pub(crate) async fn running(&self) -> Result<Vec<bool>> {
        let containers = self.docker.cluster_containers(Some(self.name())).await?;
        let running: BTreeSet<&str> = containers
            .iter()
            .filter(|c| c.state == State::Running)
            .map(|c| c.name.as_str())
            .collect();
        Ok(self
            .nodes
            .iter()
            .map(|n| running.contains(n.layout.container.as_str()))
            .collect())
    }

    /// Which nodes run, and the sessions the running ones report.
    async fn observed(&self) -> Result<(Vec<bool>, Sessions)> {
        let up = self.running().await?;
        let ids: Vec<NodeId> = (0..self.nodes.len()).filter(|&i| up[i]).collect();
        let sessions = self.sessions(&self.peers_of(&ids).await?);
        Ok((up, sessions))
    }

    /// The graph the nodes should report now: declared edges whose ends share a segment.
    pub fn expected_graph(&self) -> Graph {
        partition::expected_graph(&self.spec.edges, &self.membership)
    }

    /// The peer graph as the running nodes report it (frozen sessions included), with the peers no node
    /// name could be matched to.
    pub async fn peer_graph(&self) -> Result<(Graph, Vec<String>)> {
        let (_, sessions) = self.observed().await?;
        Ok((
            sessions.list.iter().map(|s| (s.at, s.peer)).collect(),
            sessions.unknown,
        ))
    }

    /// Checks that the running nodes' peer graph is exactly the expected one. With `frozen_allowed`
    /// (silent cuts), frozen sessions of declared edges that cross the partition are tolerated.
    pub async fn verify(&self, frozen_allowed: bool) -> Result<()> {
        let (up, sessions) = self.observed().await?;
        let declared = self.spec.graph();
        let actual: Graph = sessions
            .list
            .iter()
            .filter(|s| {
                up[s.peer] && !(frozen_allowed && !s.live && declared.contains(s.at, s.peer))
            })
            .map(|s| (s.at, s.peer))
            .collect();
        let expected: Graph = self
            .expected_graph()
            .edges()
            .filter(|&(a, b)| up[a] && up[b])
            .collect();
        let d = diff(&expected, &actual);
        if d.is_empty() && sessions.unknown.is_empty() {
            return Ok(());
        }
        let names = |edges: &[(NodeId, NodeId)]| {
            edges
                .iter()
                .map(|(a, b)| format!("{}-{}", self.nodes[*a].name(), self.nodes[*b].name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !d.missing.is_empty() {
            parts.push(format!("missing {}", names(&d.missing)));
        }
        if !d.extra.is_empty() {
            parts.push(format!("extra {}", names(&d.extra)));
        }
        parts.extend(sessions.unknown);
        Err(Error::Graph(parts.join("; ")))
    }

    /// Brings the sessions of the running nodes to the expected graph and waits until they are there:
    /// sessions of undeclared edges are closed; sessions over addresses that no longer exist are closed
    /// and re-made over a shared segment; declared edges whose ends share no segment are closed (`Drop`)
    /// or left frozen as a real network failure would leave them (`Silent`); missing edges are dialed
    /// (`addnode onetry`, dialer first) and count once both ends list each other with a pong received.
    pub async fn rewire(&self, mode: CutMode, timeout: Duration) -> Result<()> {
        let up = self.running().await?;
        let ids: Vec<NodeId> = (0..self.nodes.len()).filter(|&i| up[i]).collect();
        let declared = self.spec.graph();
        let expected: Vec<Edge> = self
            .spec
            .edges
            .iter()
            .copied()
            .filter(|e| {
                up[e.from]
                    && up[e.to]
                    && partition::shared_segment(&self.membership, e.from, e.to).is_some()
            })
            .collect();
        let dialed: RefCell<HashMap<(NodeId, NodeId), Instant>> = RefCell::default();
        let what = format!(
            "{} nodes to hold exactly the expected {} connection(s)",
            ids.len(),
            expected.len()
        );
        wait_until(&what, timeout, interval_for(ids.len()), || async {
            let sessions = self.sessions(&self.peers_of(&ids).await?);
            let mut drops = Vec::new();
            let mut live: HashMap<(NodeId, NodeId), usize> = HashMap::new();
            for s in &sessions.list {
                if !up[s.peer] {
                    continue; // a paused peer's sessions are frozen; its own rewire handles them
                }
                let shared = partition::shared_segment(&self.membership, s.at, s.peer).is_some();
                let keep = if !declared.contains(s.at, s.peer) {
                    false
                } else if shared {
                    s.live
                } else {
                    mode == CutMode::Silent && !s.live
                };
                if !keep {
                    drops.push((s.at, s.id));
                } else if s.live && s.handshake {
                    *live.entry((s.at, s.peer)).or_default() += 1;
                }
            }
            run_all(
                drops.iter().map(|&(at, id)| async move {
                    let node = &self.nodes[at];
                    node.rpc
                        .disconnect_node(id)
                        .await
                        .map_err(|e| node.rpc_error(e))
                }),
                wait::RPC_CONCURRENCY,
            )
            .await?;
            let pending: Vec<Edge> = expected
                .iter()
                .copied()
                .filter(|e| {
                    !(live.contains_key(&(e.from, e.to)) && live.contains_key(&(e.to, e.from)))
                })
                .collect();
            if drops.is_empty() && pending.is_empty() {
                return Ok(Check::Ready(()));
            }
            // Dial what has no session at either end yet; a dial that left no trace within a second
            // (the listener was not up yet) is tried again.
            let listed: BTreeSet<(NodeId, NodeId)> = sessions
                .list
                .iter()
                .filter(|s| s.live)
                .map(|s| (s.at, s.peer))
                .collect();
            let to_dial: Vec<Edge> = pending
                .iter()
                .copied()
                .filter(|e| !listed.contains(&(e.from, e.to)) && !listed.contains(&(e.to, e.from)))
                .filter(|e| {
                    dialed
                        .borrow()
                        .get(&(e.from, e.to))
                        .is_none_or(|t| t.elapsed() > Duration::from_secs(1))
                })
                .collect();
            for e in &to_dial {
                dialed.borrow_mut().insert((e.from, e.to), Instant::now());
            }
            run_all(to_dial.iter().map(|&e| self.dial(e)), wait::RPC_CONCURRENCY).await?;
            Ok(Check::Pending(format!(
                "{} session(s) to close; not yet connected: {}",
                drops.len(),
                pending
                    .iter()
                    .map(|e| format!("{}->{}", self.nodes[e.from].name(), self.nodes[e.to].name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        })
        .await
    }

    async fn dial(&self, e: Edge) -> Result<()> {
        let node = &self.nodes[e.from];
        let Some(addr) = self.dial_addr(e.from, e.to) else {
            return Err(Error::NoPath {
                a: node.name().into(),
                b: self.nodes[e.to].name().into(),
            });
        };
        node.rpc
            .add_node_onetry(addr)
            .await
            .map_err(|err| node.rpc_error(err))
    }

    /// Connects node `a` to node `b` (a dials b over a segment they share) and waits until both list
    /// each other with the handshake done.
    pub async fn connect(&self, a: &str, b: &str, timeout: Duration) -> Result<()> {
        let (a, b) = (self.node(a)?.layout.index, self.node(b)?.layout.index);
        self.dial(Edge::new(a, b)).await?;
        let what = format!(
            "{} and {} to finish the handshake",
            self.nodes[a].name(),
            self.nodes[b].name()
        );
        let dialed_at = std::cell::Cell::new(Instant::now());
        wait_until(&what, timeout, interval_for(2), || async {
            let sessions = self.sessions(&self.peers_of(&[a, b]).await?);
            let done = |x, y| {
                sessions
                    .list
                    .iter()
                    .any(|s| s.at == x && s.peer == y && s.live && s.handshake)
            };
            if done(a, b) && done(b, a) {
                return Ok(Check::Ready(()));
            }
            let traced = sessions
                .list
                .iter()
                .any(|s| s.live && ((s.at, s.peer) == (a, b) || (s.at, s.peer) == (b, a)));
            if !traced && dialed_at.get().elapsed() > Duration::from_secs(1) {
                dialed_at.set(Instant::now());
                self.dial(Edge::new(a, b)).await?;
            }
            Ok(Check::Pending("handshake not complete".into()))
        })
        .await
    }

    /// Closes every session between `a` and `b` at both ends and waits until neither lists the other.
    pub async fn disconnect(&self, a: &str, b: &str, timeout: Duration) -> Result<()> {
        let (a, b) = (self.node(a)?.layout.index, self.node(b)?.layout.index);
        let what = format!(
            "{} and {} to stop listing each other",
            self.nodes[a].name(),
            self.nodes[b].name()
        );
        wait_until(&what, timeout, interval_for(2), || async {
            let sessions = self.sessions(&self.peers_of(&[a, b]).await?);
            let drops: Vec<&Session> = sessions
                .list
                .iter()
                .filter(|s| (s.at, s.peer) == (a, b) || (s.at, s.peer) == (b, a))
                .collect();
            if drops.is_empty() {
                return Ok(Check::Ready(()));
            }
            run_all(
                drops.iter().map(|s| async move {
                    let node = &self.nodes[s.at];
                    node.rpc
                        .disconnect_node(s.id)
                        .await
                        .map_err(|e| node.rpc_error(e))
                }),
                wait::RPC_CONCURRENCY,
            )
            .await?;
            Ok(Check::Pending(format!(
                "{} session(s) still listed",
                drops.len()
            )))
        })
        .await
    }
}
