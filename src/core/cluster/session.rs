//! P2P sessions as data: a node's `getpeerinfo` entries, and which declared node each entry is and
//! whether it is live or frozen — decided from addresses alone, without asking anyone.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::core::cluster::blueprint::{node_address, node_at};
use crate::core::cluster::subnet::Subnet;
use crate::core::partition::{Membership, SegmentId};
use crate::core::topology::NodeId;

/// One entry of `getpeerinfo`; missing fields default, unknown ones are ignored, so any node version
/// can answer.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PeerInfo {
    pub id: i64,
    #[serde(default)]
    pub addr: String,
    /// The local end of the session.
    #[serde(default)]
    pub addrbind: String,
    #[serde(default)]
    pub inbound: bool,
    #[serde(default)]
    pub subver: String,
    #[serde(default)]
    pub bytesrecv_per_msg: HashMap<String, u64>,
    /// When the node last sent and received on the session, by its own clock (Unix seconds).
    #[serde(default)]
    pub lastsend: i64,
    #[serde(default)]
    pub lastrecv: i64,
}

impl PeerInfo {
    /// The version handshake is done and a pong came back (a pong can only follow the handshake).
    pub fn handshake_done(&self) -> bool {
        self.bytesrecv_per_msg.get("pong").copied().unwrap_or(0) >= 29
    }

    /// The comments of the peer's user agent, e.g. `n1` from `/Satoshi:29.4.0(n1)/`.
    pub fn ua_comments(&self) -> impl Iterator<Item = &str> {
        let inner = self
            .subver
            .rsplit_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(c, _)| c);
        inner.into_iter().flat_map(|c| c.split("; "))
    }
}

/// One end's view of a P2P session between two declared nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub at: NodeId,
    pub peer: NodeId,
    /// The peer id at `at` (what `disconnectnode` takes).
    pub id: i64,
    /// Both addresses of the session still belong to the two nodes, on a segment they share. A session
    /// over an address that was detached is frozen: Docker sends no reset, so bitcoind keeps listing it.
    pub live: bool,
    pub handshake: bool,
}

/// The sessions the queried nodes report, and the peers no node name could be matched to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sessions {
    pub list: Vec<Session>,
    pub unknown: Vec<String>,
}

/// Where every node is on the data plane: the segments' subnets and each node's attachments. A node's
/// address on a segment is fixed by its index, so addresses tell which node and segment a session uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataPlane {
    pub segments: BTreeMap<SegmentId, Subnet>,
    pub membership: Membership,
}

impl DataPlane {
    /// Node `node`'s static address on `segment`, if the segment exists.
    pub fn address(&self, node: NodeId, segment: SegmentId) -> Option<Ipv4Addr> {
        self.segments.get(&segment).map(|s| node_address(*s, node))
    }

    /// The node and segment an address belongs to now (the node must be attached to the segment).
    pub fn owner(&self, ip: Ipv4Addr) -> Option<(NodeId, SegmentId)> {
        self.segments.iter().find_map(|(&segment, subnet)| {
            let node = node_at(*subnet, ip)?;
            self.membership
                .get(node)?
                .contains(&segment)
                .then_some((node, segment))
        })
    }

    /// Reads sessions from the peer lists of some nodes. `identify` maps a user-agent comment to a node.
    pub fn sessions<'a>(
        &self,
        peers: impl IntoIterator<Item = (NodeId, &'a [PeerInfo])>,
        identify: impl Fn(&str) -> Option<NodeId>,
        name: impl Fn(NodeId) -> String,
    ) -> Sessions {
        let mut out = Sessions::default();
        for (at, list) in peers {
            for p in list {
                let Some(peer) = p.ua_comments().find_map(&identify) else {
                    out.unknown.push(format!(
                        "{} has unidentified peer {} `{}`",
                        name(at),
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
}

fn ip_of(addr: &str) -> Option<Ipv4Addr> {
    match addr.parse::<SocketAddr>().ok()?.ip() {
        IpAddr::V4(ip) => Some(ip),
        IpAddr::V6(ip) => ip.to_ipv4_mapped(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeSet;

    pub(crate) fn peer(subver: &str) -> PeerInfo {
        PeerInfo {
            subver: subver.into(),
            ..Default::default()
        }
    }

    /// Two segments (0: 10.128.0.0/20, 1: 10.128.16.0/20) and where each node is.
    pub(crate) fn plane(membership: &[&[SegmentId]]) -> DataPlane {
        DataPlane {
            segments: BTreeMap::from([
                (0, "10.128.0.0/20".parse().unwrap()),
                (1, "10.128.16.0/20".parse().unwrap()),
            ]),
            membership: membership
                .iter()
                .map(|m| m.iter().copied().collect::<BTreeSet<_>>())
                .collect(),
        }
    }

    /// `at`'s entry for a session with `peer`: remote `peer` on `remote_seg`, local `at` on `local_seg`.
    pub(crate) fn entry(
        plane: &DataPlane,
        id: i64,
        (at, local_seg): (NodeId, SegmentId),
        (peer_node, remote_seg): (NodeId, SegmentId),
    ) -> PeerInfo {
        let mut p = peer(&format!("/Satoshi:29.4.0(n{peer_node})/"));
        p.id = id;
        p.addr = format!(
            "{}:18444",
            node_address(plane.segments[&remote_seg], peer_node)
        );
        p.addrbind = format!("{}:40000", node_address(plane.segments[&local_seg], at));
        p.bytesrecv_per_msg.insert("pong".into(), 32);
        p
    }

    pub(crate) fn identify(c: &str) -> Option<NodeId> {
        c.strip_prefix('n')?.parse().ok()
    }

    #[test]
    fn ua_comments_are_read_from_the_last_component() {
        let comments = |s: &str| peer(s).ua_comments().map(String::from).collect::<Vec<_>>();
        assert_eq!(comments("/Satoshi:29.4.0(n1)/"), vec!["n1"]);
        assert_eq!(
            comments("/Satoshi:29.4.0/Knots:20250305(a; b)/"),
            vec!["a", "b"]
        );
        assert!(comments("/Satoshi:29.4.0/").is_empty());
        assert!(comments("").is_empty());
    }

    #[test]
    fn a_session_over_a_detached_address_is_frozen() {
        // n0 and n1 were both on segment 0; n1 has been moved to segment 1 only. The old session still
        // lists n1's segment-0 address, which no longer belongs to anyone attached there.
        let p = plane(&[&[0], &[1]]);
        let stale = entry(&plane(&[&[0], &[0]]), 7, (0, 0), (1, 0));
        let s = p.sessions([(0, std::slice::from_ref(&stale))], identify, |i| {
            format!("n{i}")
        });
        assert_eq!(s.list.len(), 1);
        assert!(!s.list[0].live, "{s:?}");
        assert_eq!(s.list[0].id, 7);
    }

    #[test]
    fn a_session_on_a_shared_segment_is_live_and_strangers_are_named() {
        let p = plane(&[&[0], &[0]]);
        let live = entry(&p, 3, (0, 0), (1, 0));
        let stranger = peer("/Satoshi:29.4.0(intruder)/");
        let list = vec![live, stranger];
        let s = p.sessions([(0, list.as_slice())], identify, |i| format!("n{i}"));
        assert!(s.list[0].live && s.list[0].handshake);
        assert_eq!(s.unknown.len(), 1);
        assert!(s.unknown[0].starts_with("n0 has unidentified peer"));
    }

    #[test]
    fn a_session_across_segments_is_frozen() {
        // Remote address on segment 1, local on segment 0: no single segment carries it.
        let p = plane(&[&[0, 1], &[0, 1]]);
        let odd = entry(&p, 1, (0, 0), (1, 1));
        let s = p.sessions([(0, std::slice::from_ref(&odd))], identify, |i| {
            format!("n{i}")
        });
        assert!(!s.list[0].live);
    }
}
