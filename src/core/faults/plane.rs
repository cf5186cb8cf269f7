//! A node's fault plane as data — the peers its packets never reach (cuts) and the shaping of its P2P
//! packets, node-wide or per peer — the edits `netem`, `cut` and `clear` make to a cluster's planes,
//! and the planes in words. How a plane is realised in a namespace is `rules`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::core::faults::link::Shaping;
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
    bound(deserialize = "P: Ord + std::str::FromStr + Deserialize<'de>")
)]
pub struct NodeFaults<P: Ord = usize> {
    /// Peers this node's packets are kept from.
    #[serde(deserialize_with = "keyed::map")]
    pub cuts: BTreeMap<P, Block>,
    /// Shaping of all of this node's P2P packets, except to the peers in `links`.
    pub shaping: Option<Shaping>,
    /// Shaping of the packets to one peer.
    #[serde(deserialize_with = "keyed::map")]
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

/// Maps keyed by node index that read their keys from text too. JSON keys are text; serde_json parses
/// them into numbers when it reads a map directly, but a map inside a buffered value (a `Verb`, which
/// is internally tagged, buffers its body) hands the key over as text, which a number refuses:
/// `apply` of a spec with link shaping was refused with `invalid type: string "0", expected usize`.
pub mod keyed {
    use std::collections::BTreeMap;
    use std::fmt;
    use std::marker::PhantomData;
    use std::str::FromStr;

    use serde::de::{self, IntoDeserializer, MapAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    /// A key as a number or as the text of one.
    struct Key<P>(P);

    impl<'de, P: FromStr + Deserialize<'de>> Deserialize<'de> for Key<P> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<P>(PhantomData<P>);
            impl<'de, P: FromStr + Deserialize<'de>> Visitor<'de> for V<P> {
                type Value = Key<P>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a node")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<P>, E> {
                    v.parse()
                        .map(Key)
                        .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key<P>, E> {
                    P::deserialize(v.into_deserializer()).map(Key)
                }
            }
            d.deserialize_any(V(PhantomData))
        }
    }

    /// A map whose keys are nodes, given as numbers or as text.
    pub fn map<'de, D, P, T>(d: D) -> Result<BTreeMap<P, T>, D::Error>
    where
        D: Deserializer<'de>,
        P: Ord + FromStr + Deserialize<'de>,
        T: Deserialize<'de>,
    {
        struct M<P, T>(PhantomData<(P, T)>);
        impl<'de, P, T> Visitor<'de> for M<P, T>
        where
            P: Ord + FromStr + Deserialize<'de>,
            T: Deserialize<'de>,
        {
            type Value = BTreeMap<P, T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of nodes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((Key(k), v)) = a.next_entry::<Key<P>, T>()? {
                    out.insert(k, v);
                }
                Ok(out)
            }
        }
        d.deserialize_map(M(PhantomData))
    }
}

/// A shaping of `ms` milliseconds' delay and nothing else (for the tests of planes and rules).
#[cfg(test)]
pub(crate) fn delay(ms: u64) -> Shaping {
    Shaping {
        delay_us: ms * 1000,
        ..Shaping::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
