//! Multi-host clusters: the hosts (Docker engines of one swarm) a manifest declares, and the pure
//! placement of nodes on them (pins first, then `spread` or `binpack` within each host's capacity).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// One Docker engine a cluster may put nodes on, as the manifest's `hosts:` declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSpec {
    /// `[a-z][a-z0-9-]{0,30}`, unique in the cluster; what a node's `host:` names.
    pub name: String,
    /// How regbox reaches the engine: `unix:///PATH` or `tcp://HOST:PORT`.
    pub docker: String,
    /// Where regbox reaches the ports this engine publishes; None: the engine's swarm address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The most nodes this host takes; None: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<usize>,
}

/// How nodes without a pin are spread over the hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Each node to the host with the fewest nodes so far (ties: the earliest host).
    #[default]
    Spread,
    /// Fill the hosts in order, each up to its capacity.
    Binpack,
}

impl Strategy {
    pub const ALL: [Strategy; 2] = [Strategy::Spread, Strategy::Binpack];

    /// The name a manifest's `placement:` uses.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Spread => "spread",
            Strategy::Binpack => "binpack",
        }
    }

    pub fn from_name(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Why nodes cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    #[error("no hosts to place {nodes} nodes on")]
    NoHosts { nodes: usize },
    #[error("node {node} is pinned to host {host}, but there are {hosts} hosts")]
    UnknownHost {
        node: usize,
        host: usize,
        hosts: usize,
    },
    #[error("host `{host}` takes {} at most (capacity), {pinned} nodes are pinned to it", nodes(*capacity))]
    PinnedOverCapacity {
        host: String,
        capacity: usize,
        pinned: usize,
    },
    #[error("hosts {} take {} at most (capacity), {nodes} nodes need a place", hosts.join(", "), self::nodes(*capacity))]
    TooSmall {
        hosts: Vec<String>,
        capacity: usize,
        nodes: usize,
    },
}

/// `1 node`, `2 nodes`
pub(crate) fn nodes(n: usize) -> String {
    if n == 1 {
        "1 node".to_owned()
    } else {
        format!("{n} nodes")
    }
}

/// The host index of every node; `pinned` has one entry per node (`Some(host index)` for a pin).
///
/// Pinned nodes go where pinned and count against that host's capacity. The others, in node order:
/// `Spread` puts each on the host with the fewest nodes so far (all pins counted from the start)
/// among the hosts with room, the earliest on a tie; `Binpack` fills the hosts in order up to their
/// capacity, so a host without capacity takes all the rest.
pub fn place(
    hosts: &[HostSpec],
    pinned: &[Option<usize>],
    strategy: Strategy,
) -> Result<Vec<usize>, PlaceError> {
    let nodes = pinned.len();
    if hosts.is_empty() {
        return if nodes == 0 {
            Ok(Vec::new())
        } else {
            Err(PlaceError::NoHosts { nodes })
        };
    }
    let mut count = vec![0usize; hosts.len()];
    for (node, pin) in pinned.iter().enumerate() {
        if let Some(h) = *pin {
            let slot = count.get_mut(h).ok_or(PlaceError::UnknownHost {
                node,
                host: h,
                hosts: hosts.len(),
            })?;
            *slot += 1;
        }
    }
    for (h, host) in hosts.iter().enumerate() {
        if let Some(capacity) = host.capacity.filter(|&c| count[h] > c) {
            return Err(PlaceError::PinnedOverCapacity {
                host: host.name.clone(),
                capacity,
                pinned: count[h],
            });
        }
    }
    if let Some(capacity) = hosts
        .iter()
        .map(|h| h.capacity)
        .sum::<Option<usize>>()
        .filter(|&c| c < nodes)
    {
        return Err(PlaceError::TooSmall {
            hosts: hosts.iter().map(|h| h.name.clone()).collect(),
            capacity,
            nodes,
        });
    }
    let room = |h: usize, count: &[usize]| hosts[h].capacity.is_none_or(|c| count[h] < c);
    let mut placed = Vec::with_capacity(nodes);
    for pin in pinned {
        let h = match *pin {
            Some(h) => h,
            None => {
                let mut open = (0..hosts.len()).filter(|&h| room(h, &count));
                let h = match strategy {
                    // min_by_key keeps the first of equal keys: the earliest host on a tie.
                    Strategy::Spread => open.min_by_key(|&h| count[h]),
                    Strategy::Binpack => open.next(),
                }
                .expect("the total capacity covers every node");
                count[h] += 1;
                h
            }
        };
        placed.push(h);
    }
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, capacity: Option<usize>) -> HostSpec {
        HostSpec {
            name: name.into(),
            docker: format!("unix:///run/{name}/docker.sock"),
            address: None,
            labels: BTreeMap::new(),
            capacity,
        }
    }

    fn hosts(capacities: &[Option<usize>]) -> Vec<HostSpec> {
        capacities
            .iter()
            .enumerate()
            .map(|(i, c)| host(&format!("h{}", i + 1), *c))
            .collect()
    }

    #[test]
    fn spread_deals_round_robin_without_capacities() {
        let h = hosts(&[None, None, None]);
        assert_eq!(
            place(&h, &[None; 7], Strategy::Spread).unwrap(),
            [0, 1, 2, 0, 1, 2, 0]
        );
    }

    #[test]
    fn spread_counts_pins_first_and_breaks_ties_to_the_earliest_host() {
        let h = hosts(&[None, None, None]);
        // Two pins on h1: the free nodes fill h2 and h3 up to two before h1 gets another.
        let pinned = [Some(0), None, Some(0), None, None, None, None];
        assert_eq!(
            place(&h, &pinned, Strategy::Spread).unwrap(),
            [0, 1, 0, 2, 1, 2, 0]
        );
    }

    #[test]
    fn spread_skips_full_hosts() {
        let h = hosts(&[Some(1), None, Some(2)]);
        assert_eq!(
            place(&h, &[None; 6], Strategy::Spread).unwrap(),
            [0, 1, 2, 1, 2, 1]
        );
    }

    #[test]
    fn binpack_fills_hosts_in_order() {
        let h = hosts(&[Some(2), Some(3), Some(2)]);
        assert_eq!(
            place(&h, &[None; 6], Strategy::Binpack).unwrap(),
            [0, 0, 1, 1, 1, 2]
        );
        // A host without capacity takes all the rest; later hosts get only pins.
        let h = hosts(&[Some(1), None, None]);
        assert_eq!(
            place(&h, &[None, None, Some(2), None], Strategy::Binpack).unwrap(),
            [0, 1, 2, 1]
        );
    }

    #[test]
    fn binpack_counts_pins_against_capacity() {
        let h = hosts(&[Some(2), Some(2)]);
        assert_eq!(
            place(&h, &[None, Some(0), None, None], Strategy::Binpack).unwrap(),
            [0, 0, 1, 1]
        );
    }

    #[test]
    fn every_node_pinned_ignores_the_strategy() {
        let h = hosts(&[None, None]);
        for s in Strategy::ALL {
            assert_eq!(
                place(&h, &[Some(1), Some(1), Some(0)], s).unwrap(),
                [1, 1, 0]
            );
        }
    }

    #[test]
    fn capacity_errors_name_the_host_and_the_numbers() {
        let h = hosts(&[Some(1), Some(2)]);
        let e = place(&h, &[Some(0), Some(0)], Strategy::Spread).unwrap_err();
        assert_eq!(
            e,
            PlaceError::PinnedOverCapacity {
                host: "h1".into(),
                capacity: 1,
                pinned: 2
            }
        );
        assert_eq!(
            e.to_string(),
            "host `h1` takes 1 node at most (capacity), 2 nodes are pinned to it"
        );
        let e = place(&h, &[None; 4], Strategy::Binpack).unwrap_err();
        assert_eq!(
            e.to_string(),
            "hosts h1, h2 take 3 nodes at most (capacity), 4 nodes need a place"
        );
        // Exactly full is fine.
        assert_eq!(place(&h, &[None; 3], Strategy::Spread).unwrap(), [0, 1, 1]);
        // One host without capacity lifts the total limit.
        let h = hosts(&[Some(1), None]);
        assert_eq!(place(&h, &[None; 50], Strategy::Spread).unwrap().len(), 50);
    }

    #[test]
    fn no_hosts_or_a_bad_pin_is_an_error_not_a_panic() {
        assert_eq!(
            place(&[], &[], Strategy::Spread).unwrap(),
            Vec::<usize>::new()
        );
        assert_eq!(
            place(&[], &[None], Strategy::Spread),
            Err(PlaceError::NoHosts { nodes: 1 })
        );
        assert!(matches!(
            place(&hosts(&[None]), &[Some(1)], Strategy::Spread),
            Err(PlaceError::UnknownHost {
                node: 0,
                host: 1,
                hosts: 1
            })
        ));
    }

    #[test]
    fn host_specs_serialize_only_what_is_set() {
        let h = host("h1", None);
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            r#"{"name":"h1","docker":"unix:///run/h1/docker.sock"}"#
        );
        let back: HostSpec = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(back, h);
        let full = HostSpec {
            address: Some(Ipv4Addr::new(10, 99, 0, 11)),
            labels: [("zone".to_string(), "a".to_string())].into(),
            capacity: Some(4),
            ..h
        };
        let json = serde_json::to_string(&full).unwrap();
        assert_eq!(serde_json::from_str::<HostSpec>(&json).unwrap(), full);
    }
}
