//! A node's fault plane as data — the peers its packets never reach (cuts) and the shaping of its P2P
//! packets, node-wide or per peer — and the `iptables-restore` text that realises it inside the node's
//! network namespace. Peers are matched by their address on every regbox network at once, so the rules
//! hold whichever segments the nodes are moved to.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::core::blueprint::{node_everywhere, P2P_PORT};
use crate::core::link::Shaping;
use crate::core::partition::CutMode;

/// How a cut treats the packets it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Block {
    /// Dropped without a word: the sender's TCP session stalls until it times out.
    Drop,
    /// Dropped like `Drop`, by a partition whose frozen sessions regbox leaves listed (`--silent`);
    /// kept in the plane so every later command knows the partition's mode.
    Silent,
    /// TCP answered with a reset at once (nftables/iptables `reject with tcp reset`): the sender's
    /// session closes as if the peer had refused it.
    Reset,
}

impl Block {
    pub fn name(self) -> &'static str {
        match self {
            Block::Drop => "drop",
            Block::Silent => "silent",
            Block::Reset => "reset",
        }
    }
}

/// Everything done to one node's outgoing packets. Peers are node indexes (by name in reports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    bound(deserialize = "P: Ord + Deserialize<'de>")
)]
pub struct NodeFaults<P: Ord = usize> {
    /// Peers this node's packets are kept from.
    pub cuts: BTreeMap<P, Block>,
    /// Shaping of all of this node's P2P packets, except to the peers in `links`.
    pub shaping: Option<Shaping>,
    /// Shaping of the packets to one peer.
    pub links: BTreeMap<P, Shaping>,
}

impl<P: Ord> Default for NodeFaults<P> {
    fn default() -> Self {
        NodeFaults {
            cuts: BTreeMap::new(),
            shaping: None,
            links: BTreeMap::new(),
        }
    }
}

/// The NFQUEUE number the agent reads in every node's namespace (queues are per namespace).
pub const QUEUE: u16 = 0;

/// Packets the agent sends itself (duplicates) carry this mark and skip the queue.
pub const MARK: u32 = 0x5242;

impl<P: Ord + Clone> NodeFaults<P> {
    pub fn is_empty(&self) -> bool {
        self.cuts.is_empty() && self.shaping.is_none() && self.links.is_empty()
    }

    /// The same faults with every peer renamed by `name`.
    pub fn renamed<Q: Ord>(&self, name: impl Fn(P) -> Q) -> NodeFaults<Q> {
        NodeFaults {
            cuts: self
                .cuts
                .iter()
                .map(|(p, b)| (name(p.clone()), *b))
                .collect(),
            shaping: self.shaping.clone(),
            links: self
                .links
                .iter()
                .map(|(p, s)| (name(p.clone()), s.clone()))
                .collect(),
        }
    }
}

impl NodeFaults {
    /// Some packets go through the agent's queue.
    pub fn queued(&self) -> bool {
        self.shaping.is_some() || !self.links.is_empty()
    }

    /// The shaping of a packet to `peer` (`None`: an address that is no node's).
    pub fn shaping_to(&self, peer: Option<usize>) -> Option<&Shaping> {
        peer.and_then(|p| self.links.get(&p))
            .or(self.shaping.as_ref())
    }

    /// Drops empty shapings, so "clear" and "never set" look the same.
    pub fn normalized(mut self) -> NodeFaults {
        self.shaping = self.shaping.filter(|s| !s.is_none());
        self.links.retain(|_, s| !s.is_none());
        self
    }
}

/// A node's faults in words, peers named by `name`: `delay 100ms; to n2: loss 1%; cut to n3 (reset)`.
pub fn describe<P: Ord + Clone>(f: &NodeFaults<P>, name: impl Fn(P) -> String) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &f.shaping {
        parts.push(s.to_string());
    }
    for (p, s) in &f.links {
        parts.push(format!("to {}: {s}", name(p.clone())));
    }
    let mut by_block: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (p, b) in &f.cuts {
        by_block.entry(b.name()).or_default().push(name(p.clone()));
    }
    for (block, peers) in by_block {
        parts.push(format!("cut to {} ({block})", peers.join(",")));
    }
    parts.join("; ")
}

/// The fault planes of a cluster's nodes by index (a node without faults is absent).
pub type Plane = BTreeMap<usize, NodeFaults>;

/// The mode of the partition the plane's cuts make: silent when a cut was made silent.
pub fn cut_mode(plane: &Plane) -> CutMode {
    let silent = plane
        .values()
        .any(|f| f.cuts.values().any(|&b| b == Block::Silent));
    if silent {
        CutMode::Silent
    } else {
        CutMode::Drop
    }
}

/// The nodes whose faults differ between two planes (a node absent from one has none there): what
/// setting `to` over `from` touches, and no other node.
pub fn changed(from: &Plane, to: &Plane) -> Vec<usize> {
    let none = NodeFaults::default();
    let nodes: BTreeSet<usize> = from.keys().chain(to.keys()).copied().collect();
    nodes
        .into_iter()
        .filter(|n| from.get(n).unwrap_or(&none) != to.get(n).unwrap_or(&none))
        .collect()
}

/// Shapes each of `nodes`' packets — to the peers in `to`, or to everyone — with `shaping`, replacing
/// what was set there (an empty shaping clears it). Returns the nodes changed.
pub fn shape(
    plane: &mut Plane,
    nodes: &[usize],
    to: Option<&[usize]>,
    shaping: &Shaping,
) -> Vec<usize> {
    for &n in nodes {
        let f = plane.entry(n).or_default();
        match to {
            None => f.shaping = Some(shaping.clone()),
            Some(peers) => {
                for &p in peers.iter().filter(|&&p| p != n) {
                    f.links.insert(p, shaping.clone());
                }
            }
        }
    }
    tidy(plane, nodes)
}

/// Keeps `from`'s packets from reaching `to` (and `to`'s from reaching `from` when `both`).
pub fn cut(
    plane: &mut Plane,
    from: &[usize],
    to: &[usize],
    both: bool,
    block: Block,
) -> Vec<usize> {
    let mut touched = Vec::new();
    for (a, b) in from.iter().flat_map(|&a| to.iter().map(move |&b| (a, b))) {
        if a == b {
            continue;
        }
        plane.entry(a).or_default().cuts.insert(b, block);
        touched.push(a);
        if both {
            plane.entry(b).or_default().cuts.insert(a, block);
            touched.push(b);
        }
    }
    touched.sort();
    touched.dedup();
    tidy(plane, &touched)
}

/// Removes the shaping (`shaping`), the cuts (`cuts`) or both of `nodes`. Returns the nodes changed.
pub fn clear(plane: &mut Plane, nodes: &[usize], shaping: bool, cuts: bool) -> Vec<usize> {
    let mut touched = Vec::new();
    for n in nodes {
        if let Some(f) = plane.get_mut(n) {
            if shaping {
                f.shaping = None;
                f.links.clear();
            }
            if cuts {
                f.cuts.clear();
            }
            touched.push(*n);
        }
    }
    tidy(plane, &touched)
}

/// Normalizes the planes of `nodes`, dropping empty ones; returns `nodes`, sorted and unique.
fn tidy(plane: &mut Plane, nodes: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = nodes.to_vec();
    out.sort();
    out.dedup();
    for n in &out {
        if let Some(f) = plane.remove(n) {
            let f = f.normalized();
            if !f.is_empty() {
                plane.insert(*n, f);
            }
        }
    }
    out
}

/// What the agent is asked: set these nodes' fault planes, or only report.
// Externally tagged: an internally tagged enum would buffer the nodes, and numeric map keys (peers)
// do not survive that buffer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentRequest {
    Set { nodes: Vec<AgentNode> },
    Show,
}

/// One node as the agent is to set it: where its network namespace is, and its whole fault plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentNode {
    pub name: String,
    /// The node's container's main process on the agent's host (the agent shares the host's PIDs);
    /// 0 for a node that is not running: its plane is recorded, to be set when it runs again.
    pub pid: u32,
    pub faults: NodeFaults,
}

/// The agent's answer: every node it holds a fault plane for, and the failures of this request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentReply {
    pub nodes: BTreeMap<String, NodeFaults>,
    /// Node name → what went wrong setting it (the node keeps its earlier plane).
    pub errors: BTreeMap<String, String>,
    /// Nodes whose faults are not in their network namespace: recorded while the node was stopped, or
    /// set in a namespace its container no longer has (it started afresh). Setting them again mends it.
    #[serde(default)]
    pub stale: Vec<String>,
}

/// The filter table `iptables-restore` installs in the node's namespace (replacing whatever was
/// there: the namespace holds no other rules). Cuts come first — everything to the peer's addresses
/// on regbox's networks, which only P2P uses — then the queue, which takes P2P packets only (RPC goes
/// over the control network, to another port).
pub fn ruleset(f: &NodeFaults) -> String {
    let p2p = format!("-p tcp -m multiport --ports {P2P_PORT}");
    let mut out =
        String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    for (&peer, &block) in &f.cuts {
        let to = node_everywhere(peer);
        if block == Block::Reset {
            out += &format!("-A OUTPUT -d {to} -p tcp -j REJECT --reject-with tcp-reset\n");
        }
        out += &format!("-A OUTPUT -d {to} -j DROP\n");
    }
    let queue = format!("-m mark ! --mark {MARK:#x} -j NFQUEUE --queue-num {QUEUE} --queue-bypass");
    if f.shaping.is_some() {
        out += &format!("-A OUTPUT {p2p} {queue}\n");
    } else {
        for &peer in f.links.keys() {
            out += &format!("-A OUTPUT -d {} {p2p} {queue}\n", node_everywhere(peer));
        }
    }
    out + "COMMIT\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delay(ms: u64) -> Shaping {
        Shaping {
            delay_us: ms * 1000,
            ..Shaping::default()
        }
    }

    #[test]
    fn no_faults_is_an_empty_table() {
        assert_eq!(
            ruleset(&NodeFaults::default()),
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
        );
    }

    #[test]
    fn cuts_come_before_the_queue_and_match_peers_everywhere() {
        let f = NodeFaults {
            cuts: BTreeMap::from([(1, Block::Drop), (3, Block::Reset)]),
            links: BTreeMap::from([(2, delay(50))]),
            ..NodeFaults::default()
        };
        insta::assert_snapshot!(ruleset(&f), @r"
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        -A OUTPUT -d 10.128.0.11/255.128.15.255 -j DROP
        -A OUTPUT -d 10.128.0.13/255.128.15.255 -p tcp -j REJECT --reject-with tcp-reset
        -A OUTPUT -d 10.128.0.13/255.128.15.255 -j DROP
        -A OUTPUT -d 10.128.0.12/255.128.15.255 -p tcp -m multiport --ports 18444 -m mark ! --mark 0x5242 -j NFQUEUE --queue-num 0 --queue-bypass
        COMMIT
        ");
    }

    #[test]
    fn node_wide_shaping_queues_all_p2p_packets_and_links_override_it() {
        let f = NodeFaults {
            shaping: Some(delay(100)),
            links: BTreeMap::from([(4, delay(10))]),
            ..NodeFaults::default()
        };
        let rules = ruleset(&f);
        assert_eq!(rules.matches("NFQUEUE").count(), 1);
        assert!(rules.contains("-A OUTPUT -p tcp -m multiport --ports 18444 -m mark"));
        assert_eq!(f.shaping_to(Some(4)), Some(&delay(10)));
        assert_eq!(f.shaping_to(Some(5)), Some(&delay(100)));
        assert_eq!(f.shaping_to(None), Some(&delay(100)));
    }

    #[test]
    fn changed_names_the_nodes_whose_faults_differ_and_no_other() {
        let shaped = |ms| NodeFaults {
            shaping: Some(delay(ms)),
            ..NodeFaults::default()
        };
        let now = Plane::from([
            (0, shaped(100)),
            (1, shaped(100)),
            (2, NodeFaults::default()),
        ]);
        let declared = Plane::from([(1, shaped(100)), (3, shaped(50))]);
        // n0 loses its delay, n1 keeps it, n2's empty entry equals none, n3 gains one.
        assert_eq!(changed(&now, &declared), vec![0, 3]);
        assert!(changed(&declared, &declared).is_empty());
    }

    #[test]
    fn plane_edits_touch_only_the_nodes_named() {
        let mut plane = Plane::new();
        assert_eq!(
            shape(&mut plane, &[0, 1], Some(&[1, 2]), &delay(50)),
            vec![0, 1]
        );
        assert_eq!(
            plane[&0].links.keys().copied().collect::<Vec<_>>(),
            vec![1, 2]
        );
        // A node is never shaped towards itself.
        assert_eq!(plane[&1].links.keys().copied().collect::<Vec<_>>(), vec![2]);
        assert_eq!(cut(&mut plane, &[0], &[3], false, Block::Drop), vec![0]);
        assert!(!plane.contains_key(&3));
        assert_eq!(cut(&mut plane, &[0], &[3], true, Block::Reset), vec![0, 3]);
        assert_eq!(plane[&3].cuts[&0], Block::Reset);
        assert_eq!(clear(&mut plane, &[0, 1, 3], true, false), vec![0, 1, 3]);
        assert!(!plane.contains_key(&1));
        assert_eq!(plane[&0].cuts.len(), 1);
        clear(&mut plane, &[0, 3], false, true);
        assert!(plane.is_empty());
        // An empty shaping clears.
        shape(&mut plane, &[4], None, &delay(10));
        shape(&mut plane, &[4], None, &Shaping::default());
        assert!(plane.is_empty());
    }

    #[test]
    fn faults_are_described_in_words() {
        let f = NodeFaults {
            cuts: BTreeMap::from([(3, Block::Reset), (4, Block::Reset), (5, Block::Drop)]),
            shaping: Some(delay(100)),
            links: BTreeMap::from([(2, delay(10))]),
        };
        assert_eq!(
            describe(&f, |p| format!("n{p}")),
            "delay 100ms; to n2: delay 10ms; cut to n5 (drop); cut to n3,n4 (reset)"
        );
    }

    #[test]
    fn requests_survive_json_with_peers_as_keys() {
        let request = AgentRequest::Set {
            nodes: vec![AgentNode {
                name: "n1".into(),
                pid: 42,
                faults: NodeFaults {
                    cuts: BTreeMap::from([(2, Block::Reset)]),
                    shaping: None,
                    links: BTreeMap::from([(3, delay(5))]),
                },
            }],
        };
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(
            serde_json::from_str::<AgentRequest>(&text).unwrap(),
            request
        );
        let show = serde_json::to_string(&AgentRequest::Show).unwrap();
        assert_eq!(
            serde_json::from_str::<AgentRequest>(&show).unwrap(),
            AgentRequest::Show
        );
    }

    #[test]
    fn cleared_shapings_are_dropped() {
        let f = NodeFaults {
            shaping: Some(Shaping::default()),
            links: BTreeMap::from([(4, Shaping::default())]),
            ..NodeFaults::default()
        }
        .normalized();
        assert!(f.is_empty());
    }
}
