//! Property tests of the reconcile planner (`core::cluster::plan::next`): from random declared states
//! and random observed states (containers missing, stopped, paused, held, made from another
//! configuration; stray containers; duplicate networks; nodes on the wrong segments and half-made
//! segments; stray, frozen, half-open and duplicate sessions; cut pairs), the planner's passes carried
//! out on a small model of Docker and bitcoind converge within a bounded number of passes, and never
//! cost a declared node its data volume.

use std::collections::BTreeSet;

use proptest::prelude::*;
use regbox::core::cluster::plan::{
    self, Containers, Desired, NodeSeen, Observed, Pass, Segments, State,
};
use regbox::core::cluster::session::{DataPlane, Session, Sessions};
use regbox::core::cluster::subnet::Subnet;
use regbox::core::partition::{CutMode, Partition, SegmentId, BASE};
use regbox::core::topology::Edge;

/// Segment ids a random state uses besides the base.
const SEGMENTS: SegmentId = 3;

/// One TCP connection between two nodes as both ends list it.
#[derive(Debug, Clone)]
struct Conn {
    /// The end that dialed, and the other.
    a: usize,
    b: usize,
    /// Which ends still list it (a side that closed it, or a half-open leftover, does not).
    at_a: bool,
    at_b: bool,
    /// The segment whose addresses it runs over.
    segment: SegmentId,
    handshake: bool,
}

/// Docker and the nodes' bitcoinds, as far as the planner can see and act on them.
#[derive(Debug, Clone)]
struct World {
    containers: Vec<Option<NodeSeen>>,
    /// Each declared node's data volume (named after the node; it holds the chain).
    volumes: Vec<bool>,
    strays: Vec<String>,
    duplicates: Vec<String>,
    segments: BTreeSet<SegmentId>,
    membership: Vec<BTreeSet<SegmentId>>,
    conns: Vec<Conn>,
    cut: BTreeSet<(usize, usize)>,
    /// Dials that will not take (the listener not up yet), used up one by one.
    lost_dials: Vec<bool>,
}

fn running(seen: &Option<NodeSeen>) -> bool {
    matches!(seen, Some(s) if s.state == State::Running)
}

impl World {
    fn n(&self) -> usize {
        self.containers.len()
    }

    fn subnet(segment: SegmentId) -> Subnet {
        Subnet::new(std::net::Ipv4Addr::new(10, 128, 16 * segment as u8, 0), 20)
    }

    fn live(&self, c: &Conn) -> bool {
        self.segments.contains(&c.segment)
            && self.membership[c.a].contains(&c.segment)
            && self.membership[c.b].contains(&c.segment)
    }

    /// What the engine observes: containers, attachments, and the sessions the running nodes list.
    fn observe(&self) -> Observed {
        let mut list = Vec::new();
        for (i, c) in self.conns.iter().enumerate() {
            let live = self.live(c);
            for (at, peer, listed) in [(c.a, c.b, c.at_a), (c.b, c.a, c.at_b)] {
                if listed && running(&self.containers[at]) {
                    list.push(Session {
                        at,
                        peer,
                        id: i as i64,
                        live,
                        handshake: c.handshake,
                    });
                }
            }
        }
        Observed {
            nodes: self.containers.clone(),
            strays: self.strays.clone(),
            duplicates: self.duplicates.clone(),
            plane: DataPlane {
                segments: self
                    .segments
                    .iter()
                    .map(|&s| (s, World::subnet(s)))
                    .collect(),
                membership: self.membership.clone(),
            },
            sessions: Sessions {
                list,
                unknown: Vec::new(),
            },
            cut: self.cut.clone(),
        }
    }

    /// A node whose bitcoind stops or starts afresh: its connections close at both ends.
    fn restart(&mut self, node: usize) {
        self.conns.retain(|c| c.a != node && c.b != node);
    }

    /// What TCP does between passes: a connection listed at one running end only, over a path that
    /// carries packets, is reset by the other end's kernel at the next packet.
    fn settle(&mut self) {
        let snapshot = self.clone();
        self.conns.retain(|c| {
            let both_run = running(&snapshot.containers[c.a]) && running(&snapshot.containers[c.b]);
            let open = snapshot.live(c) && !snapshot.cut.contains(&(c.a.min(c.b), c.a.max(c.b)));
            (c.at_a && c.at_b) || !(both_run && open)
        });
        // A connection both running ends list over a path that carries packets finishes its handshake.
        for c in &mut self.conns {
            let both_run = running(&snapshot.containers[c.a]) && running(&snapshot.containers[c.b]);
            let open = snapshot.live(c) && !snapshot.cut.contains(&(c.a.min(c.b), c.a.max(c.b)));
            if c.at_a && c.at_b && both_run && open {
                c.handshake = true;
            }
        }
    }

    /// Carries out one pass as the engine does; panics where the engine would fail or lose data.
    fn act(&mut self, pass: &Pass, declared_names: &[String]) {
        match pass {
            Pass::Done => {}
            Pass::Networks(ids) => self.duplicates.retain(|d| !ids.contains(d)),
            Pass::Containers(a) => {
                for name in &a.remove {
                    assert!(
                        !declared_names.contains(name),
                        "a declared node's container {name} is removed as a stray"
                    );
                    self.strays.retain(|s| s != name);
                }
                for &n in &a.replace {
                    // Removed with its anonymous volumes only: the named data volume stays.
                    self.restart(n);
                    self.containers[n] = None;
                }
                for &n in &a.release {
                    if let Some(seen) = &mut self.containers[n] {
                        seen.held = false;
                    }
                }
                for &n in &a.create {
                    assert!(self.containers[n].is_none(), "node {n} is created twice");
                    self.restart(n);
                    self.containers[n] = Some(NodeSeen {
                        state: State::Running,
                        current: true,
                        held: false,
                    });
                    // Created on the control network, attached to the data network (the base).
                    self.membership[n] = BTreeSet::from([BASE]);
                    self.volumes[n] = true;
                }
                for &n in &a.start {
                    self.restart(n);
                    self.containers[n]
                        .as_mut()
                        .expect("a container to start")
                        .state = State::Running;
                }
                for &n in &a.unpause {
                    self.containers[n]
                        .as_mut()
                        .expect("a container to unpause")
                        .state = State::Running;
                }
            }
            Pass::Segments(p) => {
                for &s in &p.create {
                    assert!(
                        s != BASE && self.segments.insert(s),
                        "segment {s} made twice"
                    );
                }
                for &(n, s) in &p.detach {
                    assert!(self.membership[n].remove(&s), "node {n} is not on {s}");
                }
                for &(n, s) in &p.attach {
                    assert!(self.segments.contains(&s), "attach to missing segment {s}");
                    assert!(
                        self.containers[n].is_some(),
                        "node {n} has no container to attach"
                    );
                    assert!(self.membership[n].insert(s), "node {n} is already on {s}");
                }
                for &s in &p.remove {
                    assert!(s != BASE, "the base segment is removed");
                    assert!(
                        self.membership.iter().all(|m| !m.contains(&s)),
                        "segment {s} removed with members"
                    );
                    self.segments.remove(&s);
                }
            }
            Pass::Sessions(s) => {
                for &(at, id) in &s.drop {
                    let c = &mut self.conns[id as usize];
                    // disconnectnode closes the socket; the other end hears of it if packets flow.
                    let flows = {
                        let (a, b) = (c.a, c.b);
                        self.segments.contains(&c.segment)
                            && self.membership[a].contains(&c.segment)
                            && self.membership[b].contains(&c.segment)
                            && !self.cut.contains(&(a.min(b), a.max(b)))
                    };
                    if c.a == at || flows {
                        c.at_a = false;
                    }
                    if c.b == at || flows {
                        c.at_b = false;
                    }
                }
                self.conns.retain(|c| c.at_a || c.at_b);
                for e in &s.dial {
                    let shared = self.membership[e.from]
                        .intersection(&self.membership[e.to])
                        .find(|s| self.segments.contains(s))
                        .copied();
                    let segment = shared.expect("a dial between nodes that share no segment");
                    assert!(running(&self.containers[e.from]) && running(&self.containers[e.to]));
                    if !self.lost_dials.is_empty() && self.lost_dials.remove(0) {
                        continue;
                    }
                    self.conns.push(Conn {
                        a: e.from,
                        b: e.to,
                        at_a: true,
                        at_b: true,
                        segment,
                        handshake: true,
                    });
                }
            }
        }
        // Ids are indices: keep them stable within a pass, renumbered by the next observation.
        self.settle();
    }
}

/// A random cluster of `n` nodes and a random look at it.
fn world(n: usize) -> impl Strategy<Value = World> {
    let seen = prop_oneof![
        Just(None),
        (
            prop_oneof![
                Just(State::Created),
                Just(State::Running),
                Just(State::Running),
                Just(State::Paused),
                Just(State::Restarting),
                Just(State::Exited),
                Just(State::Dead),
            ],
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(state, current, held)| Some(NodeSeen {
                state,
                current,
                held,
            })),
    ];
    let membership = proptest::collection::btree_set(0..=SEGMENTS, 0..=2);
    let conn = (
        0..n,
        0..n,
        any::<bool>(),
        any::<bool>(),
        0..=SEGMENTS,
        any::<bool>(),
    )
        .prop_map(|(a, b, at_a, at_b, segment, handshake)| {
            // A node's connection to itself, or one no end lists, is no connection: left out.
            (a != b && (at_a || at_b)).then_some(Conn {
                a,
                b,
                at_a,
                at_b,
                segment,
                handshake,
            })
        });
    (
        proptest::collection::vec(seen, n),
        proptest::collection::vec(any::<bool>(), n),
        proptest::collection::vec("[a-z]{1,3}", 0..3),
        0..3usize,
        proptest::collection::btree_set(1..=SEGMENTS, 0..=SEGMENTS),
        proptest::collection::vec(membership, n),
        proptest::collection::vec(conn, 0..2 * n),
        proptest::collection::btree_set((0..n, 0..n), 0..2),
        proptest::collection::vec(any::<bool>(), 0..4),
    )
        .prop_map(
            move |(
                containers,
                volumes,
                strays,
                duplicates,
                extra,
                membership,
                conns,
                cut,
                lost,
            )| {
                let mut segments = BTreeSet::from([BASE]);
                segments.extend(extra);
                // A node is attached where a segment exists (an attachment is to a network); one
                // attached nowhere (only the control network) is possible after an interrupted move.
                // A node without a container is attached nowhere.
                let membership: Vec<BTreeSet<SegmentId>> =
                    (membership.into_iter().zip(&containers))
                        .map(|(m, c)| match c {
                            Some(_) => m.into_iter().filter(|s| segments.contains(s)).collect(),
                            None => BTreeSet::new(),
                        })
                        .collect();
                World {
                    volumes: (containers.iter().zip(volumes))
                        .map(|(c, v)| c.is_some() || v)
                        .collect(),
                    containers,
                    strays: strays.into_iter().map(|s| format!("stray-{s}")).collect(),
                    duplicates: (0..duplicates).map(|i| format!("dup{i}")).collect(),
                    segments,
                    membership,
                    conns: conns.into_iter().flatten().collect(),
                    cut: cut
                        .into_iter()
                        .filter(|(a, b)| a != b)
                        .map(|(a, b)| (a.min(b), a.max(b)))
                        .collect(),
                    lost_dials: lost,
                }
            },
        )
}

/// A random partition of `n` nodes: each node in one group, or in two (a bridge).
fn partition(n: usize) -> impl Strategy<Value = Partition> {
    proptest::collection::vec((0..3usize, proptest::option::of(0..3usize)), n).prop_map(|at| {
        let mut groups: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); 3];
        for (node, (g, also)) in at.into_iter().enumerate() {
            groups[g].insert(node);
            if let Some(h) = also {
                groups[h].insert(node);
            }
        }
        Partition {
            groups: groups.into_iter().filter(|g| !g.is_empty()).collect(),
        }
    })
}

fn edges(n: usize) -> impl Strategy<Value = Vec<Edge>> {
    proptest::collection::btree_set((0..n, 0..n), 0..=n * 2).prop_map(|pairs| {
        let mut seen = BTreeSet::new();
        pairs
            .into_iter()
            .filter(|&(a, b)| a != b && seen.insert((a.min(b), a.max(b))))
            .map(|(from, to)| Edge { from, to })
            .collect()
    })
}

#[derive(Debug, Clone)]
enum Goal {
    Heal,
    Keep,
    Split(Partition),
}

#[derive(Debug, Clone)]
struct Case {
    world: World,
    edges: Vec<Edge>,
    containers: Containers,
    goal: Goal,
    mode: CutMode,
}

fn case() -> impl Strategy<Value = Case> {
    (1..=6usize).prop_flat_map(|n| {
        (
            world(n),
            edges(n),
            prop_oneof![
                Just(Containers::Declared),
                Just(Containers::Repair),
                Just(Containers::AsTheyAre)
            ],
            prop_oneof![
                Just(Goal::Heal),
                Just(Goal::Keep),
                partition(n).prop_map(Goal::Split)
            ],
            prop_oneof![Just(CutMode::Drop), Just(CutMode::Silent)],
        )
            .prop_map(|(mut world, edges, containers, goal, mode)| {
                if containers == Containers::AsTheyAre {
                    // Partition, heal and node faults act on a cluster whose containers exist (a
                    // missing one is `up`'s to make): segment moves attach existing containers only.
                    for c in world.containers.iter_mut().filter(|c| c.is_none()) {
                        *c = Some(NodeSeen {
                            state: State::Exited,
                            current: true,
                            held: false,
                        });
                    }
                }
                Case {
                    world,
                    edges,
                    containers,
                    goal,
                    mode,
                }
            })
    })
}

/// Runs the loop on the model: observe, plan, act, until `Done`; the passes it took.
fn converge(case: &Case) -> Result<(usize, World), String> {
    let mut w = case.world.clone();
    let names: Vec<String> = (0..w.n()).map(|i| format!("lab-n{i}")).collect();
    let segments = match &case.goal {
        Goal::Heal => Segments::Heal,
        Goal::Keep => Segments::Keep,
        Goal::Split(p) => Segments::Split(p),
    };
    let desired = Desired {
        edges: &case.edges,
        containers: case.containers,
        segments,
        mode: case.mode,
    };
    // Networks, containers, segments, then sessions: drops, dials, and a redial for each lost dial
    // (the planner waits one pass before redialing a recent dial).
    let bound = 6 + 2 * case.world.lost_dials.len();
    let mut recent: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut passes = Vec::new();
    for pass_no in 0..=bound {
        let observed = w.observe();
        let pass = plan::next(&desired, &observed, &recent);
        if pass == Pass::Done {
            return Ok((pass_no, w));
        }
        recent = match &pass {
            Pass::Sessions(s) => s.dial.iter().map(|e| (e.from, e.to)).collect(),
            _ => BTreeSet::new(),
        };
        w.act(&pass, &names);
        passes.push(pass);
    }
    Err(format!(
        "no convergence in {bound} passes: {passes:#?}\nlast world {w:#?}"
    ))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The loop ends, and the state it ends in is the desired one: declared nodes run (but those
    /// held or left as they are), nothing stray is left, every declared node keeps its volume.
    #[test]
    fn the_planner_converges_and_keeps_every_declared_volume(case in case()) {
        let volumes_before = case.world.volumes.clone();
        let (_, w) = converge(&case).map_err(TestCaseError::fail)?;
        for (i, (&before, &after)) in volumes_before.iter().zip(&w.volumes).enumerate() {
            prop_assert!(!before || after, "node {i} lost its volume");
        }
        prop_assert!(w.duplicates.is_empty());
        if case.containers != Containers::AsTheyAre {
            prop_assert!(w.strays.is_empty());
            for (i, c) in w.containers.iter().enumerate() {
                let held = matches!(c, Some(s) if s.held);
                let ok = running(c) && c.is_some_and(|s| s.current)
                    || case.containers == Containers::Repair && held;
                prop_assert!(ok, "node {i} ends as {c:?}");
            }
        }
        // Every declared edge between running nodes that share a segment and no cut is connected.
        let obs = w.observe();
        let up = obs.running();
        for e in &case.edges {
            let shared = w.membership[e.from].intersection(&w.membership[e.to]).next().is_some();
            let cut = w.cut.contains(&(e.from.min(e.to), e.from.max(e.to)));
            if up[e.from] && up[e.to] && shared && !cut {
                prop_assert!(
                    w.conns.iter().any(|c| w.live(c) && c.at_a && c.at_b && c.handshake
                        && ((c.a, c.b) == (e.from, e.to) || (c.a, c.b) == (e.to, e.from))),
                    "edge {e:?} is not connected"
                );
            }
        }
    }

    /// A converged cluster needs nothing more: planning again at once says `Done`, and `up`'s
    /// final check of the peer graph passes (drop mode: nothing frozen is allowed).
    #[test]
    fn a_converged_cluster_verifies(case in case()) {
        let (_, w) = converge(&case).map_err(TestCaseError::fail)?;
        let observed = w.observe();
        let frozen_allowed = case.mode == CutMode::Silent;
        let verified = plan::verify(&case.edges, &observed, frozen_allowed);
        prop_assert!(verified.is_ok(), "{verified:?}");
    }
}

/// The model itself: a cluster already as declared takes no pass.
#[test]
fn a_cluster_as_declared_takes_no_pass() {
    let n = 3;
    let world = World {
        containers: vec![
            Some(NodeSeen {
                state: State::Running,
                current: true,
                held: false
            });
            n
        ],
        volumes: vec![true; n],
        strays: Vec::new(),
        duplicates: Vec::new(),
        segments: BTreeSet::from([BASE]),
        membership: vec![BTreeSet::from([BASE]); n],
        conns: vec![Conn {
            a: 0,
            b: 1,
            at_a: true,
            at_b: true,
            segment: BASE,
            handshake: true,
        }],
        cut: BTreeSet::new(),
        lost_dials: Vec::new(),
    };
    let case = Case {
        world,
        edges: vec![Edge { from: 0, to: 1 }],
        containers: Containers::Declared,
        goal: Goal::Heal,
        mode: CutMode::Drop,
    };
    assert_eq!(converge(&case).unwrap().0, 0);
}
