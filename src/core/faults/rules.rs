//! How a fault plane is realised: the `iptables-restore` text the fault agent installs inside a node's
//! network namespace, and the requests and replies between regbox and the agent. Peers are matched by
//! their address on every regbox network at once, so the rules hold whichever segments the nodes are
//! moved to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::cluster::blueprint::{node_everywhere, P2P_PORT};
use crate::core::faults::plane::{Block, NodeFaults};

/// The NFQUEUE number the agent reads in every node's namespace (queues are per namespace).
pub const QUEUE: u16 = 0;

/// Packets the agent sends itself (duplicates) carry this mark and skip the queue.
pub const MARK: u32 = 0x5242;

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
    /// The full ID of the node's container ("" when it is not running): the agent enters `pid`'s
    /// namespace only when that process is in this container, and finds the container's process
    /// again by it when it restores its record.
    pub container: String,
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
    use crate::core::faults::plane::delay;

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
    fn requests_survive_json_with_peers_as_keys() {
        let request = AgentRequest::Set {
            nodes: vec![AgentNode {
                name: "n1".into(),
                pid: 42,
                container: "ab".repeat(32),
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
}
