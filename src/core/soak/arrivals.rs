//! Block propagation as `regbox soak` measures it from its samples: the blocks background activity
//! mined, which nodes have each one in their active chain so far, and when the last running node got it.

use std::collections::BTreeSet;

/// A block on its way to every node.
#[derive(Debug, Clone, PartialEq)]
struct Pending {
    hash: String,
    height: u64,
    /// When it was mined, in seconds after the start of the run.
    mined: f64,
    /// The nodes seen with it in their active chain.
    reached: BTreeSet<String>,
}

/// The blocks not yet seen everywhere. A node *has* a block when the block is its tip or an ancestor
/// of its tip; the sampler reads tips, so an arrival is known at the first sample after it happened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Arrivals {
    pending: Vec<Pending>,
}

impl Arrivals {
    /// Starts following a block mined `mined` seconds after the start.
    pub fn mined(&mut self, hash: &str, height: u64, mined: f64) {
        if self.pending.iter().any(|p| p.hash == hash) {
            return;
        }
        self.pending.push(Pending {
            hash: hash.to_owned(),
            height,
            mined,
            reached: BTreeSet::new(),
        });
    }

    /// The blocks `node`, at `height`, might have but was not yet seen with: those no higher than its
    /// tip. Whether it really has them (the tip, or a block of its active chain) is for the caller to ask.
    pub fn candidates(&self, node: &str, height: u64) -> Vec<(String, u64)> {
        (self.pending.iter())
            .filter(|p| p.height <= height && !p.reached.contains(node))
            .map(|p| (p.hash.clone(), p.height))
            .collect()
    }

    /// `node` has block `hash` in its active chain.
    pub fn reached(&mut self, node: &str, hash: &str) {
        if let Some(p) = self.pending.iter_mut().find(|p| p.hash == hash) {
            p.reached.insert(node.to_owned());
        }
    }

    /// The blocks every node of `running` has now (`now` seconds after the start), each with how long it
    /// took since it was mined; they are no longer followed. With no running node nothing is complete.
    pub fn complete(&mut self, running: &[String], now: f64) -> Vec<(String, f64)> {
        if running.is_empty() {
            return Vec::new();
        }
        let (done, rest): (Vec<Pending>, Vec<Pending>) =
            (self.pending.drain(..)).partition(|p| running.iter().all(|n| p.reached.contains(n)));
        self.pending = rest;
        (done.into_iter())
            .map(|p| (p.hash, (now - p.mined).max(0.0)))
            .collect()
    }

    /// Stops following blocks mined more than `max_age` seconds before `now` (a block that lost a race
    /// never reaches everyone); returns how many.
    pub fn expire(&mut self, now: f64, max_age: f64) -> usize {
        let before = self.pending.len();
        self.pending.retain(|p| now - p.mined <= max_age);
        before - self.pending.len()
    }

    /// How many blocks are followed.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_block_is_complete_when_every_running_node_has_it() {
        let mut a = Arrivals::default();
        a.mined("b1", 105, 10.0);
        a.mined("b1", 105, 11.0); // the same block again changes nothing
        assert_eq!(a.len(), 1);
        // A node below the block's height cannot have it.
        assert!(a.candidates("n1", 104).is_empty());
        assert_eq!(a.candidates("n1", 106), vec![("b1".to_string(), 105)]);
        a.reached("n0", "b1");
        a.reached("n1", "b1");
        assert!(a.candidates("n1", 106).is_empty());
        assert!(a.complete(&names(&["n0", "n1", "n2"]), 10.5).is_empty());
        a.reached("n2", "b1");
        assert_eq!(
            a.complete(&names(&["n0", "n1", "n2"]), 10.75),
            vec![("b1".to_string(), 0.75)]
        );
        assert!(a.is_empty());
    }

    #[test]
    fn a_node_that_is_down_is_not_waited_for_and_nobody_running_completes_nothing() {
        let mut a = Arrivals::default();
        a.mined("b1", 5, 1.0);
        a.reached("n0", "b1");
        assert!(a.complete(&[], 2.0).is_empty());
        // n1 is killed: only n0 runs.
        assert_eq!(
            a.complete(&names(&["n0"]), 2.0),
            vec![("b1".to_string(), 1.0)]
        );
        a.reached("n0", "unknown"); // a block never followed is ignored
        assert!(a.is_empty());
    }

    #[test]
    fn blocks_that_never_arrive_expire() {
        let mut a = Arrivals::default();
        a.mined("old", 5, 0.0);
        a.mined("new", 6, 50.0);
        assert_eq!(a.expire(70.0, 60.0), 1);
        assert_eq!(a.candidates("n0", 10), vec![("new".to_string(), 6)]);
        assert_eq!(a.expire(70.0, 60.0), 0);
    }
}
