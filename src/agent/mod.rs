//! The fault agent (`regbox agent serve`): one container per cluster, from the regbox image, sharing the
//! host's PID namespace with `NET_ADMIN`, `NET_RAW` (the raw socket duplicates go out through),
//! `SYS_ADMIN` and `SYS_PTRACE`. It enters each node's network namespace to install the node's rules
//! (`iptables-restore`, nftables backend) and to shape the node's P2P packets through NFQUEUE, and
//! answers requests on a Unix socket that `regbox agent call` (run through `docker exec`) relays. Node
//! containers themselves never get a capability.

pub mod netns;
pub mod nfqueue;
mod shaping;

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Mutex;

use crate::core::faults::plane::NodeFaults;
use crate::core::faults::rules::{ruleset, AgentNode, AgentReply, AgentRequest};

/// Where the agent listens, inside its container.
pub const SOCKET: &str = "/run/regbox-agent.sock";
/// The program that installs a node's rules, inside the regbox image.
const IPTABLES_RESTORE: &str = "/usr/sbin/iptables-restore";
/// Nodes set at once (each runs one `iptables-restore`).
const WORKERS: usize = 8;

/// What the agent holds for one node.
struct Node {
    faults: NodeFaults,
    shaping: Option<shaping::Handle>,
    /// The process and network namespace the rules went into (None: recorded while not running).
    set_in: Option<(u32, u64)>,
}

impl Node {
    /// The node holds faults its namespace no longer has: they were recorded while it was stopped, or
    /// its container started afresh since (a new namespace, with no rules in it).
    fn stale(&self) -> bool {
        if self.faults.is_empty() {
            return false;
        }
        let Some((pid, inode)) = self.set_in else {
            return true;
        };
        netns::open(pid).and_then(|ns| netns::inode(&ns)).ok() != Some(inode)
    }
}

/// Serves requests until the process is stopped.
pub fn serve() -> io::Result<()> {
    let _ = std::fs::remove_file(SOCKET);
    let listener = UnixListener::bind(SOCKET)?;
    eprintln!("regbox agent: listening on {SOCKET}");
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    for conn in listener.incoming() {
        let mut conn = match conn {
            Ok(c) => c,
            Err(e) => {
                eprintln!("regbox agent: accept: {e}");
                continue;
            }
        };
        let mut line = String::new();
        if let Err(e) = BufReader::new((&conn).take(MAX_MESSAGE_BYTES)).read_line(&mut line) {
            eprintln!("regbox agent: read: {e}");
            continue;
        }
        let reply = match serde_json::from_str::<AgentRequest>(&line) {
            Ok(AgentRequest::Set { nodes: wanted }) => set(&mut nodes, wanted),
            Ok(AgentRequest::Show) => AgentReply::default(),
            Err(e) => AgentReply {
                errors: BTreeMap::from([("request".to_string(), e.to_string())]),
                ..AgentReply::default()
            },
        };
        let reply = AgentReply {
            nodes: nodes
                .iter()
                .map(|(n, node)| (n.clone(), node.faults.clone()))
                .collect(),
            stale: nodes
                .iter()
                .filter(|(_, node)| node.stale())
                .map(|(n, _)| n.clone())
                .collect(),
            ..reply
        };
        let text = serde_json::to_string(&reply).expect("a reply serializes");
        if let Err(e) = writeln!(conn, "{text}") {
            eprintln!("regbox agent: write: {e}");
        }
    }
    Ok(())
}

/// The most bytes of one request line the agent reads (regbox sends at most ≈ 100 kB, under what one
/// `docker exec` argument may hold) and of one reply `call` relays (every node's fault plane: at 1000
/// nodes with a cut or shaping towards every other, tens of MB at most).
pub const MAX_MESSAGE_BYTES: u64 = 64 << 20;

/// Relays one request line to the serving agent and returns its reply line.
pub fn call(request: &str) -> io::Result<String> {
    call_at(std::path::Path::new(SOCKET), request)
}

/// [`call`] to the agent listening on `socket`; a reply over [`MAX_MESSAGE_BYTES`] is an error, not
/// read on.
fn call_at(socket: &std::path::Path, request: &str) -> io::Result<String> {
    let mut conn = UnixStream::connect(socket)?;
    writeln!(conn, "{}", request.trim())?;
    conn.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    (&conn)
        .take(MAX_MESSAGE_BYTES + 1)
        .read_to_string(&mut reply)?;
    if reply.len() as u64 > MAX_MESSAGE_BYTES {
        return Err(io::Error::other(format!(
            "the agent's reply is larger than {} MiB, the most regbox reads",
            MAX_MESSAGE_BYTES >> 20
        )));
    }
    Ok(reply)
}

/// Sets each wanted node's fault plane, `WORKERS` at a time; a node that fails keeps its earlier one.
fn set(nodes: &mut BTreeMap<String, Node>, wanted: Vec<AgentNode>) -> AgentReply {
    let work: Mutex<Vec<(AgentNode, Option<Node>)>> = Mutex::new(
        wanted
            .into_iter()
            .map(|w| {
                let held = nodes.remove(&w.name);
                (w, held)
            })
            .collect(),
    );
    let done: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| loop {
                let Some((wanted, held)) = work.lock().unwrap().pop() else {
                    return;
                };
                let name = wanted.name.clone();
                let (node, error) = match apply(&wanted, held) {
                    Ok(node) => (Some(node), None),
                    Err((held, e)) => (held, Some(e)),
                };
                done.lock().unwrap().push((name, node, error));
            });
        }
    });
    let mut reply = AgentReply::default();
    for (name, node, error) in done.into_inner().unwrap() {
        if let Some(node) = node {
            nodes.insert(name.clone(), node);
        }
        if let Some(e) = error {
            reply.errors.insert(name, e);
        }
    }
    reply
}

/// What setting one node came to: its name, what the agent now holds for it, and why it failed.
type Outcome = (String, Option<Node>, Option<String>);

/// One node: its shaping thread first (so queued packets find it), then its rules; the thread goes
/// when nothing is shaped any more. On failure the node's earlier state is handed back (by value: it
/// owns the node's shaping thread, which must not be dropped on the way).
#[allow(clippy::result_large_err)]
fn apply(wanted: &AgentNode, held: Option<Node>) -> Result<Node, (Option<Node>, String)> {
    let fail = |held: Option<Node>, e: String| Err((held, format!("node `{}`: {e}", wanted.name)));
    // Not running: its plane is kept for when it runs (its namespace, and any rules in it, are gone).
    if wanted.pid == 0 {
        return Ok(Node {
            faults: wanted.faults.clone().normalized(),
            shaping: None,
            set_in: None,
        });
    }
    let ns = match netns::open(wanted.pid) {
        Ok(ns) => ns,
        Err(e) => {
            return fail(
                held,
                format!(
                    "cannot open the network namespace of pid {}: {e}",
                    wanted.pid
                ),
            )
        }
    };
    let inode = match netns::inode(&ns) {
        Ok(i) => i,
        Err(e) => return fail(held, format!("cannot read its network namespace: {e}")),
    };
    let faults = wanted.faults.clone().normalized();
    let (old_faults, thread, old_set_in) = match held {
        Some(n) => (n.faults, n.shaping, n.set_in),
        None => (NodeFaults::default(), None, None),
    };
    // A thread in a namespace the node no longer has (it was restarted) is of no use.
    let mut thread = thread.filter(|t| t.inode == inode);
    let had_thread = thread.is_some();
    if faults.queued() {
        match &thread {
            Some(t) => t.update(&faults),
            None => {
                let ns = match ns.try_clone() {
                    Ok(n) => n,
                    Err(e) => {
                        return fail(
                            Some(Node {
                                faults: old_faults,
                                shaping: None,
                                set_in: old_set_in,
                            }),
                            e.to_string(),
                        )
                    }
                };
                match shaping::Handle::start(ns, inode, &wanted.name, &faults, seed(&wanted.name)) {
                    Ok(t) => thread = Some(t),
                    Err(e) => {
                        return fail(
                            Some(Node {
                                faults: old_faults,
                                shaping: None,
                                set_in: old_set_in,
                            }),
                            format!("cannot bind its packet queue: {e}"),
                        )
                    }
                }
            }
        }
    }
    if let Err(e) = netns::run_in(&ns, IPTABLES_RESTORE, &[], &ruleset(&faults)) {
        // The old rules stand: the thread goes back to the old shaping, or away if it is new.
        match &thread {
            Some(t) if had_thread => t.update(&old_faults),
            _ => thread = None,
        }
        return fail(
            Some(Node {
                faults: old_faults,
                shaping: thread,
                set_in: old_set_in,
            }),
            e,
        );
    }
    if !faults.queued() {
        thread = None;
    }
    Ok(Node {
        faults,
        shaping: thread,
        set_in: Some((wanted.pid, inode)),
    })
}

/// A per-node seed, the same on every run.
fn seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An agent socket answering without end: `call` stops at the limit with an error.
    #[test]
    fn an_endless_reply_is_refused_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let chunk = vec![b'x'; 1 << 16];
            while conn.write_all(&chunk).is_ok() {}
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(call_at(&socket, "{}").map(|r| r.len()));
        });
        let e = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the call ends within 30 s")
            .expect_err("an endless reply is refused");
        assert_eq!(
            e.to_string(),
            "the agent's reply is larger than 64 MiB, the most regbox reads"
        );
    }
}
