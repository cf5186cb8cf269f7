//! The fault agent (`regbox agent serve`): one container per cluster, from the regbox image, sharing the
//! host's PID namespace with `NET_ADMIN`, `NET_RAW` (the raw socket duplicates go out through),
//! `SYS_ADMIN` and `SYS_PTRACE`. It enters each node's network namespace to install the node's rules
//! (`iptables-restore`, nftables backend) and to shape the node's P2P packets through NFQUEUE, and
//! answers requests on a Unix socket that `regbox agent call` (run through `docker exec`) relays. Node
//! containers themselves never get a capability.

pub mod disk;
pub mod netns;
pub mod nfqueue;
pub(crate) mod record;
mod shaping;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::core::faults::plane::NodeFaults;
use crate::core::faults::rules::{ruleset, AgentNode, AgentReply, AgentRequest};

/// Where the agent listens, inside its container.
pub const SOCKET: &str = "/run/regbox-agent.sock";
/// Where the agent records every node's plane (the engine mounts the cluster's agent volume there).
pub use crate::core::cluster::blueprint::AGENT_STATE_DIR as STATE_DIR;
/// The program that installs a node's rules, inside the regbox image.
const IPTABLES_RESTORE: &str = "/usr/sbin/iptables-restore";
/// Nodes set at once (each runs one `iptables-restore`).
const WORKERS: usize = 8;

/// What one request may cost the agent.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most bytes of one request line (larger ones are refused unread).
    pub request_bytes: usize,
    /// How long a client has to send its whole request, and to take the reply.
    pub deadline: Duration,
    /// Requests served at once; a client beyond them is told the agent is busy.
    pub clients: usize,
}

/// The agent's limits: regbox sends at most ≈ 100 kB per request (one `docker exec` argument holds
/// 128 KiB), at once, in well under a second.
pub const LIMITS: Limits = Limits {
    request_bytes: 1 << 20,
    deadline: Duration::from_secs(10),
    clients: 16,
};

/// What the agent holds for one node.
struct Node {
    /// The node's container (full ID; "" while it was not running).
    container: String,
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
        netns::open_node(pid, &self.container)
            .and_then(|ns| netns::inode(&ns))
            .ok()
            != Some(inode)
    }
}

/// The agent: the nodes it holds, where it records them, and what one request may cost.
struct Agent {
    nodes: Mutex<BTreeMap<String, Node>>,
    record: Option<PathBuf>,
    limits: Limits,
    /// Requests being served.
    busy: AtomicUsize,
}

/// Restores every recorded node, then serves requests until the process is stopped.
pub fn serve() -> io::Result<()> {
    let dir = Path::new(STATE_DIR);
    let record = dir.is_dir().then(|| dir.join(record::FILE));
    if record.is_none() {
        eprintln!("regbox agent: no {STATE_DIR}: the fault plane is kept in memory only");
    }
    let agent = Agent::restore(record, LIMITS)?;
    let _ = std::fs::remove_file(SOCKET);
    let listener = UnixListener::bind(SOCKET)?;
    eprintln!("regbox agent: listening on {SOCKET}");
    Arc::new(agent).run(listener);
    Ok(())
}

impl Agent {
    /// An agent holding what `record` holds, each node set again in its container's namespace (a
    /// node whose container runs no process, or cannot be set, stays recorded and reported stale).
    fn restore(record: Option<PathBuf>, limits: Limits) -> io::Result<Agent> {
        let recorded = match &record {
            Some(path) => record::read(path)?,
            None => record::Record::new(),
        };
        let mut nodes = BTreeMap::new();
        if !recorded.is_empty() {
            let wanted: Vec<AgentNode> = recorded
                .iter()
                .map(|(name, r)| AgentNode {
                    name: name.clone(),
                    pid: netns::find(&r.container).ok().flatten().unwrap_or(0),
                    container: r.container.clone(),
                    faults: r.faults.clone(),
                })
                .collect();
            let reply = set(&mut nodes, wanted);
            for (name, r) in recorded {
                nodes.entry(name).or_insert(Node {
                    container: r.container,
                    faults: r.faults,
                    shaping: None,
                    set_in: None,
                });
            }
            eprintln!(
                "regbox agent: restored {} of {} nodes{}",
                nodes.values().filter(|n| n.set_in.is_some()).count(),
                nodes.len(),
                reply
                    .errors
                    .values()
                    .map(|e| format!("; {e}"))
                    .collect::<String>()
            );
        }
        Ok(Agent {
            nodes: Mutex::new(nodes),
            record,
            limits,
            busy: AtomicUsize::new(0),
        })
    }

    /// Serves each connection on a thread of its own, at most `limits.clients` at once.
    fn run(self: Arc<Self>, listener: UnixListener) {
        for conn in listener.incoming() {
            let conn = match conn {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("regbox agent: accept: {e}");
                    continue;
                }
            };
            if self.busy.fetch_add(1, Ordering::SeqCst) >= self.limits.clients {
                self.busy.fetch_sub(1, Ordering::SeqCst);
                let busy = format!("{} requests are being served", self.limits.clients);
                self.reply(&conn, &refusal(busy));
                continue;
            }
            let agent = self.clone();
            let spawned = std::thread::Builder::new()
                .name("request".into())
                .spawn(move || {
                    agent.handle(&conn);
                    agent.busy.fetch_sub(1, Ordering::SeqCst);
                });
            if let Err(e) = spawned {
                eprintln!("regbox agent: cannot serve a request: {e}");
                self.busy.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Reads one request (bounded in size and time), answers it, and closes.
    fn handle(&self, conn: &UnixStream) {
        let reply = match read_request(conn, &self.limits) {
            Ok(line) => self.answer(&line),
            Err(why) => refusal(why),
        };
        self.reply(conn, &reply);
    }

    /// Writes `reply`, giving the client the deadline to take it.
    fn reply(&self, conn: &UnixStream, reply: &AgentReply) {
        let text = serde_json::to_string(reply).expect("a reply serializes");
        let _ = conn.set_write_timeout(Some(self.limits.deadline));
        if let Err(e) = writeln!(&*conn, "{text}") {
            eprintln!("regbox agent: write: {e}");
        }
    }

    /// The reply to one request line: every node's plane afterwards, and which are stale.
    fn answer(&self, line: &str) -> AgentReply {
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let reply = match serde_json::from_str::<AgentRequest>(line) {
            Ok(AgentRequest::Set { nodes: wanted }) => {
                let mut reply = set(&mut nodes, wanted);
                if let Some(path) = &self.record {
                    if let Err(e) = record::write(path, &recorded(&nodes)) {
                        reply.errors.insert(
                            "record".into(),
                            format!("cannot record the fault plane: {e}"),
                        );
                    }
                }
                reply
            }
            Ok(AgentRequest::Show) => AgentReply::default(),
            Err(e) => refusal(e.to_string()),
        };
        AgentReply {
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
        }
    }
}

/// The record of what the agent holds: every node with faults.
fn recorded(nodes: &BTreeMap<String, Node>) -> record::Record {
    nodes
        .iter()
        .filter(|(_, n)| !n.faults.is_empty())
        .map(|(name, n)| {
            let r = record::Recorded {
                container: n.container.clone(),
                faults: n.faults.clone(),
            };
            (name.clone(), r)
        })
        .collect()
}

/// A reply refusing the request, saying why.
fn refusal(why: String) -> AgentReply {
    AgentReply {
        errors: BTreeMap::from([("request".to_string(), why)]),
        ..AgentReply::default()
    }
}

/// One request line from `conn`: refused when it is larger than `limits.request_bytes` or has not
/// all arrived within `limits.deadline`.
fn read_request(conn: &UnixStream, limits: &Limits) -> Result<String, String> {
    let deadline = Instant::now() + limits.deadline;
    let too_large = || {
        format!(
            "the request is larger than {} bytes, the most the agent reads",
            limits.request_bytes
        )
    };
    let mut line = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "the request did not arrive within {:?}",
                limits.deadline
            ));
        }
        conn.set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match (&*conn).read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                line.extend_from_slice(&chunk[..n]);
                if let Some(end) = line.iter().position(|&b| b == b'\n') {
                    line.truncate(end);
                    break;
                }
                if line.len() > limits.request_bytes {
                    return Err(too_large());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read the request: {e}")),
        }
    }
    if line.len() > limits.request_bytes {
        return Err(too_large());
    }
    String::from_utf8(line).map_err(|e| format!("the request is not text: {e}"))
}

/// The most bytes of one reply `call` relays (every node's fault plane: at 1000 nodes with a cut or
/// shaping towards every other, tens of MB at most).
pub const MAX_MESSAGE_BYTES: u64 = 64 << 20;

/// Relays one request line to the serving agent and returns its reply line.
pub fn call(request: &str) -> io::Result<String> {
    call_at(std::path::Path::new(SOCKET), request)
}

/// [`call`] to the agent listening on `socket`; a reply over [`MAX_MESSAGE_BYTES`] is an error, not
/// read on.
fn call_at(socket: &std::path::Path, request: &str) -> io::Result<String> {
    let mut conn = UnixStream::connect(socket)?;
    // An agent that refuses the request (too large, or busy) answers and closes before reading all of
    // it: its answer is read all the same.
    let sent = writeln!(conn, "{}", request.trim())
        .and_then(|()| conn.shutdown(std::net::Shutdown::Write));
    let reply = read_reply(&conn)?;
    if let (Err(e), true) = (sent, reply.is_empty()) {
        return Err(e);
    }
    Ok(reply)
}

/// The agent's whole reply on `conn` (a reset after it, from an agent that closed on part of a
/// request, ends it like the end of the stream).
fn read_reply(conn: &UnixStream) -> io::Result<String> {
    let mut reply = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match (&*conn).read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&chunk[..n]);
                if reply.len() as u64 > MAX_MESSAGE_BYTES {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !reply.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    let reply = String::from_utf8(reply).map_err(io::Error::other)?;
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
            container: wanted.container.clone(),
            faults: wanted.faults.clone().normalized(),
            shaping: None,
            set_in: None,
        });
    }
    let ns = match netns::open_node(wanted.pid, &wanted.container) {
        Ok(ns) => ns,
        Err(e) => return fail(held, format!("refused: {e}")),
    };
    let inode = match netns::inode(&ns) {
        Ok(i) => i,
        Err(e) => return fail(held, format!("cannot read its network namespace: {e}")),
    };
    let faults = wanted.faults.clone().normalized();
    let (old_container, old_faults, thread, old_set_in) = match held {
        Some(n) => (n.container, n.faults, n.shaping, n.set_in),
        None => (String::new(), NodeFaults::default(), None, None),
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
                                container: old_container,
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
                                container: old_container,
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
                container: old_container,
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
        container: wanted.container.clone(),
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
    use crate::core::faults::plane::delay;

    /// An agent serving on a socket in `dir` with `limits`, recording in `record`.
    fn agent_in(dir: &Path, limits: Limits, record: Option<PathBuf>) -> PathBuf {
        let socket = dir.join(format!("agent-{}.sock", rand_suffix()));
        let listener = UnixListener::bind(&socket).unwrap();
        let agent = Arc::new(Agent::restore(record, limits).unwrap());
        std::thread::spawn(move || agent.run(listener));
        socket
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::AtomicU64;
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::SeqCst)
    }

    /// One request and its reply, which must come within 5 s (an agent that serves one client at a
    /// time, waiting on a slow one, fails here rather than hanging the test).
    fn ask(socket: &Path, request: &AgentRequest) -> AgentReply {
        let text = serde_json::to_string(request).unwrap();
        let socket = socket.to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(call_at(&socket, &text));
        });
        let reply = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("an answer within 5 s")
            .unwrap();
        serde_json::from_str(reply.trim()).unwrap()
    }

    const SHORT: Limits = Limits {
        request_bytes: 1000,
        deadline: Duration::from_secs(1),
        clients: 4,
    };

    /// The reply to what was written on `conn` so far, as the agent sends it unasked.
    fn reply_on(conn: &UnixStream) -> AgentReply {
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        serde_json::from_str(read_reply(conn).unwrap().trim()).unwrap()
    }

    #[test]
    fn a_request_over_the_size_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let socket = agent_in(dir.path(), SHORT, None);
        // 1,001 bytes with no end of line yet: refused before the rest comes.
        let conn = UnixStream::connect(&socket).unwrap();
        (&conn).write_all(&[b' '; 1001]).unwrap();
        let reply = reply_on(&conn);
        assert_eq!(
            reply.errors["request"],
            "the request is larger than 1000 bytes, the most the agent reads"
        );
        // A whole line over the limit too; one under it is answered.
        let long = format!("{{\"set\":{{\"nodes\":[{}]}}}}", " ".repeat(1000));
        let e = call_at(&socket, &long).unwrap();
        assert!(e.contains("larger than 1000 bytes"), "{e}");
        assert!(ask(&socket, &AgentRequest::Show).errors.is_empty());
    }

    #[test]
    fn a_slow_client_neither_blocks_others_nor_holds_on_past_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let socket = agent_in(dir.path(), SHORT, None);
        // A client that sends half a request and stalls.
        let started = Instant::now();
        let slow = UnixStream::connect(&socket).unwrap();
        (&slow).write_all(b"\"sho").unwrap();
        // Others are served meanwhile, at once.
        for _ in 0..3 {
            let t = Instant::now();
            assert!(ask(&socket, &AgentRequest::Show).errors.is_empty());
            assert!(
                t.elapsed() < Duration::from_millis(500),
                "{:?}",
                t.elapsed()
            );
        }
        // The slow one is told so at the deadline, and the connection closes.
        let reply = reply_on(&slow);
        let waited = started.elapsed();
        assert_eq!(
            reply.errors["request"],
            "the request did not arrive within 1s"
        );
        assert!(
            waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
    }

    #[test]
    fn clients_beyond_the_limit_are_told_the_agent_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            clients: 1,
            ..SHORT
        };
        let socket = agent_in(dir.path(), limits, None);
        let slow = UnixStream::connect(&socket).unwrap();
        (&slow).write_all(b"\"sho").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let busy = ask(&socket, &AgentRequest::Show);
        assert_eq!(busy.errors["request"], "1 requests are being served");
        // Once the slow one is timed out, the next is served.
        reply_on(&slow);
        std::thread::sleep(Duration::from_millis(100));
        assert!(ask(&socket, &AgentRequest::Show).errors.is_empty());
    }

    #[test]
    fn a_set_naming_a_process_outside_the_node_container_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let socket = agent_in(dir.path(), SHORT, None);
        let shaped = NodeFaults {
            shaping: Some(delay(100)),
            ..NodeFaults::default()
        };
        // This test's own process, and the host's first one: in no container of that ID.
        for pid in [std::process::id(), 1] {
            let reply = ask(
                &socket,
                &AgentRequest::Set {
                    nodes: vec![AgentNode {
                        name: "n0".into(),
                        pid,
                        container: "ab".repeat(32),
                        faults: shaped.clone(),
                    }],
                },
            );
            let e = &reply.errors["n0"];
            assert!(e.starts_with("node `n0`: refused: "), "{e}");
            assert!(reply.nodes.is_empty(), "{reply:?}");
        }
    }

    #[test]
    fn an_agent_started_again_restores_its_record_before_it_answers() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join(record::FILE);
        let first = agent_in(dir.path(), SHORT, Some(record.clone()));
        let shaped = NodeFaults {
            shaping: Some(delay(100)),
            cuts: BTreeMap::from([(2, crate::core::faults::plane::Block::Silent)]),
            ..NodeFaults::default()
        };
        // n0 is not running (pid 0): its plane is recorded for when it runs.
        let set = ask(
            &first,
            &AgentRequest::Set {
                nodes: vec![AgentNode {
                    name: "n0".into(),
                    pid: 0,
                    container: String::new(),
                    faults: shaped.clone(),
                }],
            },
        );
        assert!(set.errors.is_empty(), "{set:?}");
        assert_eq!(record::read(&record).unwrap()["n0"].faults, shaped);
        // A second agent on the same record holds n0's plane from its first answer, as stale (its
        // namespace has none of it), so the engine sets it again.
        let second = agent_in(dir.path(), SHORT, Some(record.clone()));
        let shown = ask(&second, &AgentRequest::Show);
        assert_eq!(shown.nodes["n0"], shaped);
        assert_eq!(shown.stale, ["n0"]);
        // Clearing it clears the record; an unreadable record stops the agent from starting.
        let cleared = ask(
            &second,
            &AgentRequest::Set {
                nodes: vec![AgentNode {
                    name: "n0".into(),
                    pid: 0,
                    container: String::new(),
                    faults: NodeFaults::default(),
                }],
            },
        );
        assert!(cleared.errors.is_empty());
        assert!(record::read(&record).unwrap().is_empty());
        std::fs::write(&record, "{").unwrap();
        assert!(Agent::restore(Some(record), SHORT).is_err());
    }

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
