//! One node's shaping thread: it lives in the node's network namespace, reads the packets the node's
//! queue rule hands over, asks the pure [`Shaper`]s their fate, and lets each go (or not) on time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::agent::netns::{self, RawSender};
use crate::agent::nfqueue::{Packet, Queue};
use crate::core::cluster::blueprint::node_anywhere;
use crate::core::faults::link::{Fate, Shaper};
use crate::core::faults::plane::NodeFaults;
use crate::core::faults::rules::{MARK, QUEUE};

/// Packets one node's queue holds before the kernel drops more (a full router queue).
const QUEUE_LEN: u32 = 10_240;
/// How long the thread sleeps with nothing to do before it looks whether it should stop.
const IDLE: Duration = Duration::from_millis(200);

/// Which shaper a packet goes through: one per peer with a link of its own, one for the rest.
type Key = Option<usize>;

/// The shapers of one node, kept across updates when their shaping is unchanged (so a rate limit's
/// queue and the random sequence go on).
struct Policy {
    faults: NodeFaults,
    shapers: HashMap<Key, Shaper>,
    seed: u64,
}

impl Policy {
    fn update(&mut self, faults: &NodeFaults) {
        let mut wanted: Vec<(Key, &crate::core::faults::link::Shaping)> =
            faults.links.iter().map(|(&p, s)| (Some(p), s)).collect();
        wanted.extend(faults.shaping.iter().map(|s| (None, s)));
        let mut shapers = HashMap::new();
        for (key, shaping) in wanted {
            let kept = self.shapers.remove(&key).filter(|s| s.shaping() == shaping);
            let seed = self.seed ^ key.map_or(u64::MAX, |p| p as u64);
            shapers.insert(
                key,
                kept.unwrap_or_else(|| Shaper::new(shaping.clone(), seed)),
            );
        }
        self.shapers = shapers;
        self.faults = faults.clone();
    }

    /// The fate of a packet, or `None` when no shaping applies to where it goes.
    fn fate(&mut self, now: Duration, packet: &[u8]) -> Option<Fate> {
        let peer = destination(packet).and_then(node_anywhere);
        let key = match peer {
            Some(p) if self.faults.links.contains_key(&p) => Some(p),
            _ => None,
        };
        self.shapers
            .get_mut(&key)
            .map(|s| s.fate(now, packet.len()))
    }
}

/// The destination of an IPv4 packet.
fn destination(packet: &[u8]) -> Option<Ipv4Addr> {
    (packet.len() >= 20 && packet[0] >> 4 == 4)
        .then(|| Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]))
}

/// Flips one bit after the IP header (the transport header or data), chosen by `r`: the receiver's
/// checksum catches it, as it would a bit flipped on a wire.
fn corrupt(packet: &mut [u8], r: u64) {
    let header = ((packet.first().copied().unwrap_or(0) & 0x0f) as usize * 4).min(packet.len());
    let bits = (packet.len() - header) as u64 * 8;
    if bits > 0 {
        let bit = r % bits;
        packet[header + (bit / 8) as usize] ^= 1 << (bit % 8);
    }
}

/// A running shaping thread; dropping it wakes the thread, which lets every held packet go and ends.
pub struct Handle {
    /// The namespace the thread is in.
    pub inode: u64,
    policy: Arc<Mutex<Policy>>,
    stop: Arc<AtomicBool>,
    /// A byte written here wakes the thread at once (so stopping 100 threads takes no idle periods).
    wake: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

impl Handle {
    /// Starts a thread in `ns` shaping by `faults`; returns once its queue is bound.
    pub fn start(
        ns: File,
        inode: u64,
        name: &str,
        faults: &NodeFaults,
        seed: u64,
    ) -> io::Result<Handle> {
        let mut policy = Policy {
            faults: NodeFaults::default(),
            shapers: HashMap::new(),
            seed,
        };
        policy.update(faults);
        let policy = Arc::new(Mutex::new(policy));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let (woken, wake) = pipe()?;
        let (p, s, label) = (policy.clone(), stop.clone(), name.to_string());
        let thread = std::thread::Builder::new()
            .name(format!("shape-{name}"))
            .stack_size(256 * 1024)
            .spawn(move || run(ns, p, s, woken, ready_tx, &label))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Handle {
                inode,
                policy,
                stop,
                wake,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(io::Error::other("the shaping thread ended at once")),
        }
    }

    pub fn update(&self, faults: &NodeFaults) {
        self.policy.lock().unwrap().update(faults);
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // SAFETY: one byte from a valid buffer to a pipe this handle owns.
        unsafe {
            libc::write(
                self.wake.as_raw_fd(),
                [1u8].as_ptr() as *const libc::c_void,
                1,
            )
        };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A packet waiting for its time: (when, arrival order, id, payload if changed, copy to send).
type Held = Reverse<(Duration, u64, u32, Option<Vec<u8>>, bool)>;

/// A pipe (read end, write end), both close-on-exec and non-blocking.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors, which are owned from here on.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

fn run(
    ns: File,
    policy: Arc<Mutex<Policy>>,
    stop: Arc<AtomicBool>,
    woken: OwnedFd,
    ready: mpsc::Sender<io::Result<()>>,
    name: &str,
) {
    let setup = netns::enter(&ns).and_then(|()| Queue::open(QUEUE, QUEUE_LEN));
    let mut queue = match setup {
        Ok(q) => q,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let raw = RawSender::open(MARK)
        .map_err(|e| eprintln!("regbox agent: {name}: no raw socket, duplicates are not sent: {e}"))
        .ok();
    let _ = ready.send(Ok(()));
    let start = Instant::now();
    let mut held: BinaryHeap<Held> = BinaryHeap::new();
    let mut payloads: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut order = 0u64;
    let mut arrived = Vec::new();
    loop {
        let now = start.elapsed();
        let stopping = stop.load(Ordering::Relaxed);
        while let Some(Reverse((at, ..))) = held.peek() {
            if *at > now && !stopping {
                break;
            }
            let Reverse((_, _, id, changed, copy)) = held.pop().unwrap();
            let original = payloads.remove(&id);
            release(
                &mut queue,
                raw.as_ref(),
                id,
                changed.as_deref(),
                copy,
                original.as_deref(),
                name,
            );
        }
        if stopping {
            return;
        }
        let timeout = held
            .peek()
            .map(|Reverse((at, ..))| at.saturating_sub(now))
            .unwrap_or(IDLE)
            .min(IDLE);
        match queue.wait(timeout, woken.as_raw_fd()).and_then(|ready| {
            if ready {
                queue.recv(&mut arrived)
            } else {
                Ok(())
            }
        }) {
            Ok(()) => {}
            Err(e) => {
                eprintln!("regbox agent: {name}: reading the queue: {e}");
                std::thread::sleep(IDLE);
                continue;
            }
        }
        let mut policy = policy.lock().unwrap();
        for Packet { id, mut payload } in arrived.drain(..) {
            let now = start.elapsed();
            match policy.fate(now, &payload) {
                None => release(&mut queue, None, id, None, false, None, name),
                Some(Fate::Drop) => {
                    if let Err(e) = queue.verdict(id, false, None) {
                        eprintln!("regbox agent: {name}: verdict: {e}");
                    }
                }
                Some(Fate::Send {
                    at,
                    corrupt: flip,
                    duplicate,
                }) => {
                    let original = duplicate.then(|| payload.clone());
                    let changed = flip.map(|r| {
                        corrupt(&mut payload, r);
                        payload
                    });
                    // Through the heap even when due at once, so it cannot overtake packets that are
                    // also due and were held before it; the top of the loop lets them go.
                    if let Some(o) = original {
                        payloads.insert(id, o);
                    }
                    order += 1;
                    held.push(Reverse((at, order, id, changed, duplicate)));
                }
            }
        }
    }
}

/// Lets packet `id` go (with `changed` bytes if corrupted) and sends the copy of `original` if asked.
fn release(
    queue: &mut Queue,
    raw: Option<&RawSender>,
    id: u32,
    changed: Option<&[u8]>,
    copy: bool,
    original: Option<&[u8]>,
    name: &str,
) {
    if let Err(e) = queue.verdict(id, true, changed) {
        eprintln!("regbox agent: {name}: verdict: {e}");
    }
    if let (true, Some(raw), Some(packet)) = (copy, raw, original) {
        if let Some(to) = destination(packet) {
            // A copy too large to send unfragmented is simply not sent.
            let _ = raw.send(packet, to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::faults::link::Shaping;
    use std::collections::BTreeMap;

    fn packet_to(last: u8) -> Vec<u8> {
        let mut p = vec![0u8; 60];
        p[0] = 0x45;
        p[16..20].copy_from_slice(&[10, 130, 16, last]);
        p
    }

    #[test]
    fn packets_go_through_their_peers_link_or_the_node_wide_shaping() {
        let delay = |ms: u64| Shaping {
            delay_us: ms * 1000,
            ..Shaping::default()
        };
        let mut policy = Policy {
            faults: NodeFaults::default(),
            shapers: HashMap::new(),
            seed: 1,
        };
        let faults = NodeFaults {
            shaping: Some(delay(100)),
            links: BTreeMap::from([(2, delay(10))]),
            ..NodeFaults::default()
        };
        policy.update(&faults);
        let at = |f: Option<Fate>| match f {
            Some(Fate::Send { at, .. }) => at.as_millis(),
            other => panic!("{other:?}"),
        };
        // Node 2's address is offset 12 on every network.
        assert_eq!(at(policy.fate(Duration::ZERO, &packet_to(12))), 10);
        assert_eq!(at(policy.fate(Duration::ZERO, &packet_to(13))), 100);
        policy.update(&NodeFaults {
            links: faults.links.clone(),
            ..NodeFaults::default()
        });
        assert_eq!(policy.fate(Duration::ZERO, &packet_to(13)), None);
        assert_eq!(at(policy.fate(Duration::ZERO, &packet_to(12))), 10);
    }

    #[test]
    fn corruption_flips_one_bit_past_the_ip_header() {
        let mut p = packet_to(12);
        let before = p.clone();
        corrupt(&mut p, 12345);
        let diff: Vec<usize> = (0..p.len()).filter(|&i| p[i] != before[i]).collect();
        assert_eq!(diff.len(), 1);
        assert!(diff[0] >= 20);
        assert_eq!((p[diff[0]] ^ before[diff[0]]).count_ones(), 1);
    }
}
