//! A node's fault plane as data — the peers its packets never reach (cuts) and the shaping of its P2P
//! packets, node-wide or per peer — and the `iptables-restore` text that realises it inside the node's
//! network namespace. Peers are matched by their address on every regbox network at once, so the rules
//! hold whichever segments the nodes are moved to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::blueprint::{node_everywhere, P2P_PORT};
use crate::core::link::Shaping;

/// How a cut treats the packets it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Block {
    /// Dropped without a word: the sender's TCP session stalls until it times out.
    Drop,
    /// TCP answered with a reset at once (nftables/iptables `reject with tcp reset`): the sender's
    /// session closes as if the peer had refused it.
    Reset,
}

impl Block {
    pub fn name(self) -> &'static str {
        match self {
            Block::Drop => "drop",
            Block::Reset => "reset",
        }
    }
}

/// Everything done to one node's outgoing packets. Peers are node indexes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeFaults {
    /// Peers this node's packets are kept from.
    pub cuts: BTreeMap<usize, Block>,
    /// Shaping of all of this node's P2P packets, except to the peers in `links`.
    pub shaping: Option<Shaping>,
    /// Shaping of the packets to one peer.
    pub links: BTreeMap<usize, Shaping>,
}

/// The NFQUEUE number the agent reads in every node's namespace (queues are per namespace).
pub const QUEUE: u16 = 0;

/// Packets the agent sends itself (duplicates) carry this mark and skip the queue.
pub const MARK: u32 = 0x5242;

impl NodeFaults {
    pub fn is_empty(&self) -> bool {
        self.cuts.is_empty() && self.shaping.is_none() && self.links.is_empty()
    }

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

/// The filter table `iptables-restore` installs in the node's namespace (replacing whatever was
/// there: the namespace holds no other rules). Cuts come first, then the queue for shaped packets.
/// Only P2P traffic is touched: RPC goes over the control network to another port.
pub fn ruleset(f: &NodeFaults) -> String {
    let p2p = format!("-p tcp -m multiport --ports {P2P_PORT}");
    let mut out = String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    for (&peer, &block) in &f.cuts {
        let to = node_everywhere(peer);
        if block == Block::Reset {
            out += &format!("-A OUTPUT -d {to} -p tcp -j REJECT --reject-with tcp-reset\n");
        }
        out += &format!("-A OUTPUT -d {to} -j DROP\n");
    }
    let queue = format!(
        "-m mark ! --mark {MARK:#x} -j NFQUEUE --queue-num {QUEUE} --queue-bypass"
    );
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
