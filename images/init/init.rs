//! The node image's first process (`/usr/lib/regbox/init BITCOIND ARGS…`): runs bitcoind as its one
//! child, hands it the signals the engine sends (so `docker stop` still stops bitcoind cleanly), ends
//! with bitcoind's own exit status, and on `SIGUSR1` carries out the request regbox wrote to
//! `DATADIR/.regbox-init` without the container stopping: a fresh chain, a snapshot saved, a snapshot
//! restored. Over TCP (no engine call at all) the init takes two requests: it listens on port 18401
//! for the line `TOKEN fresh` (the reset's fast way), answered `ok` or `error WHY` once the new
//! bitcoind runs, and `TOKEN halt`, which stops bitcoind where it is (`SIGSTOP`: no more CPU, the
//! container still running, so its network endpoints stay for `down` to detach one at a time).
//! `TOKEN` comes from its environment's `REGBOX_INIT_TOKEN`; without one it does not listen. Built by regbox's build script as a static binary with nothing but the standard library,
//! so that it runs in any node image (Debian's, a Bitcoin Core release, a self-built binary).
//!
//! The request file holds one line: `ID fresh`, `ID save NAME`, `ID restore NAME` or `ID files`.
//! When it is carried out (bitcoind started again), `DATADIR/.regbox-init.done` says `ID ok` or
//! `ID error WHY`. Files regbox left as `DATADIR/.regbox-NAME.next` are renamed to `.regbox-NAME`
//! with every request (`files` does only that, bitcoind left running).
//! A request found at start (written while the container was stopped) is carried out before bitcoind
//! first starts.
//!
//! With a fresh chain or a snapshot, the init also sets the node's declared clock again (its
//! environment's `REGBOX_CLOCK`, a drift counted from then) and empties the filler of a full disk.
//!
//! A drifting clock: each time it starts bitcoind, and after putting files in place, the init turns
//! the drift file (`.regbox-clock.drift`) into the clock file libfaketime reads, for the moment that
//! bitcoind started (which it also writes to `.regbox-init.started`).

#[path = "../../src/core/faults/faketime.rs"]
#[allow(dead_code)]
mod faketime;

use std::cell::Cell;
use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const SIGHUP: i32 = 1;
const SIGINT: i32 = 2;
const SIGKILL: i32 = 9;
const SIGSTOP: i32 = 19;
const SIGUSR1: i32 = 10;
const SIGUSR2: i32 = 12;
const SIGTERM: i32 = 15;
const SIGCHLD: i32 = 17;
const SIG_BLOCK: i32 = 0;
const SIG_SETMASK: i32 = 2;
const WNOHANG: i32 = 1;

/// glibc's `sigset_t` (1024 bits).
#[repr(C)]
struct SigSet([u64; 16]);

extern "C" {
    fn sigemptyset(set: *mut SigSet) -> i32;
    fn sigaddset(set: *mut SigSet, signal: i32) -> i32;
    fn pthread_sigmask(how: i32, set: *const SigSet, old: *mut SigSet) -> i32;
    fn sigwait(set: *const SigSet, signal: *mut i32) -> i32;
    fn kill(pid: i32, signal: i32) -> i32;
    fn getpid() -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
}

/// The chain's directory under the data directory: a lab node runs regtest.
const CHAIN: &str = "regtest";
/// The file that says a snapshot is whole (regbox checks for it before a restore).
const SAVED_MARK: &str = ".regbox-snapshot";
/// Files of the chain directory a snapshot leaves out: the process's own and the peers it knew.
const NOT_SAVED: [&str; 6] = [
    ".lock",
    ".cookie",
    "peers.dat",
    "anchors.dat",
    "banlist.json",
    "debug.log",
];

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("regbox-init: usage: init BITCOIND ARGS...");
        return ExitCode::from(2);
    };
    let args: Vec<OsString> = args.collect();
    let datadir = args
        .iter()
        .filter_map(|a| a.to_str()?.strip_prefix("-datadir="))
        .next_back()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/data"));
    let init = Init {
        program,
        args,
        datadir,
        started_ms: Cell::new(0),
    };
    let waited = signals(&[SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGCHLD]);
    // Blocked here, taken by `sigwait` below; the child unblocks them before bitcoind runs.
    unsafe { pthread_sigmask(SIG_BLOCK, &waited, std::ptr::null_mut()) };
    // Started after the mask is set, so that the listener's thread inherits it.
    if let Some(token) = std::env::var_os("REGBOX_INIT_TOKEN").filter(|t| !t.is_empty()) {
        let token = token.to_string_lossy().into_owned();
        std::thread::spawn(move || listen(&token));
    }
    let first = match init.request() {
        Some(request) => init.carry_out(&request, None).0,
        None => init.start(),
    };
    init.empty_trash();
    let Some(mut child) = first else {
        return ExitCode::from(127);
    };
    loop {
        let mut signal = 0;
        unsafe { sigwait(&waited, &mut signal) };
        match signal {
            SIGCHLD => {
                if let Some(status) = reap(child) {
                    return ExitCode::from(status);
                }
            }
            SIGUSR1 => {
                if let Some(request) = init.request() {
                    let Some(pid) = init.carry_out(&request, Some(child)).0 else {
                        return ExitCode::from(127);
                    };
                    init.empty_trash();
                    child = pid;
                }
            }
            SIGUSR2 => {
                // The listener's poke: answer every connection waiting with one fresh chain.
                let asked: Vec<TcpStream> = std::mem::take(&mut *ASKED.lock().unwrap());
                if asked.is_empty() {
                    continue;
                }
                let request = Request {
                    id: "tcp".into(),
                    action: Action::Fresh,
                    answer: None,
                };
                let (pid, outcome) = init.carry_out(&request, Some(child));
                let line = match &outcome {
                    Ok(()) => "ok\n".to_string(),
                    Err(why) => format!("error {why}\n"),
                };
                for mut stream in asked {
                    let _ = stream.write_all(line.as_bytes());
                }
                init.empty_trash();
                let Some(pid) = pid else {
                    return ExitCode::from(127);
                };
                child = pid;
            }
            other => unsafe {
                kill(child, other);
            },
        }
    }
}

/// The port the init listens on for a fresh chain.
const PORT: u16 = 18401;

/// Connections that asked for a fresh chain, answered by the main thread once it is carried out.
static ASKED: Mutex<Vec<TcpStream>> = Mutex::new(Vec::new());

/// The bitcoind last started (for a halt, which the listener carries out itself).
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Takes requests over TCP: a connection that sends `TOKEN fresh` waits in [`ASKED`], and the main
/// thread is poked with `SIGUSR2`; `TOKEN halt` stops bitcoind at once; any other line is refused.
fn listen(token: &str) {
    let listener = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, PORT)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("regbox-init: cannot listen on port {PORT} ({e}); regbox asks through the data directory instead");
            return;
        }
    };
    for mut stream in listener.incoming().flatten() {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.set_nodelay(true);
        let mut line = String::new();
        let _ = BufReader::new(&stream).take(256).read_line(&mut line);
        let line = line.trim_end();
        if line == format!("{token} fresh") {
            ASKED.lock().unwrap().push(stream);
            unsafe { kill(getpid(), SIGUSR2) };
        } else if line == format!("{token} halt") {
            let child = CHILD.load(Ordering::SeqCst);
            let answer: &[u8] = match child > 0 && unsafe { kill(child, SIGSTOP) } == 0 {
                true => b"ok\n",
                false => b"error bitcoind is not running\n",
            };
            let _ = stream.write_all(answer);
        } else {
            let _ = stream.write_all(b"error not a request of this cluster's regbox\n");
        }
    }
}

fn signals(list: &[i32]) -> SigSet {
    let mut set = SigSet([0; 16]);
    unsafe {
        sigemptyset(&mut set);
        for &s in list {
            sigaddset(&mut set, s);
        }
    }
    set
}

/// Reaps every child that ended; bitcoind's exit status (128 + the signal that ended it) once it has.
fn reap(child: i32) -> Option<u8> {
    loop {
        let mut status = 0;
        let pid = unsafe { waitpid(-1, &mut status, WNOHANG) };
        if pid <= 0 {
            return None;
        }
        if pid == child {
            return Some(exit_status(status));
        }
    }
}

/// Waits until `child` has ended (reaping any other child on the way).
fn wait_for(child: i32) {
    loop {
        let mut status = 0;
        let pid = unsafe { waitpid(-1, &mut status, 0) };
        if pid == child || pid < 0 {
            return;
        }
    }
}

fn exit_status(status: i32) -> u8 {
    let signal = status & 0x7f;
    if signal == 0 {
        ((status >> 8) & 0xff) as u8
    } else {
        128 + signal as u8
    }
}

/// A request of regbox's.
struct Request {
    id: String,
    action: Action,
    /// The file the answer goes to (none for a request over TCP, answered on its connection).
    answer: Option<&'static str>,
}

enum Action {
    /// Only the `.next` files put in place, bitcoind left running.
    Files,
    Fresh,
    Save(String),
    Restore(String),
}

struct Init {
    program: OsString,
    args: Vec<OsString>,
    datadir: PathBuf,
    /// When bitcoind last started (Unix milliseconds).
    started_ms: Cell<i64>,
}

impl Init {
    fn spawn(&self) -> io::Result<i32> {
        let now_ms = now_ms();
        self.started_ms.set(now_ms);
        self.keep_clock();
        let _ = self.write(".regbox-init.started", &format!("{now_ms}\n"));
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                let none = SigSet([0; 16]);
                pthread_sigmask(SIG_SETMASK, &none, std::ptr::null_mut());
                Ok(())
            });
        }
        let child = command.spawn()?;
        CHILD.store(child.id() as i32, Ordering::SeqCst);
        // Reaped with waitpid, not through `Child`.
        Ok(child.id() as i32)
    }

    /// Starts bitcoind, saying why it could not.
    fn start(&self) -> Option<i32> {
        self.spawn()
            .map_err(|e| eprintln!("regbox-init: cannot start {:?}: {e}", self.program))
            .ok()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.datadir.join(name)
    }

    /// The request waiting in the request file: one not yet answered in the done file.
    fn request(&self) -> Option<Request> {
        let text = fs::read_to_string(self.path(".regbox-init")).ok()?;
        let mut words = text.split_whitespace();
        let id = words.next()?.to_string();
        let done = fs::read_to_string(self.path(DONE)).unwrap_or_default();
        if done.split_whitespace().next() == Some(id.as_str()) {
            return None;
        }
        let action = match (words.next(), words.next()) {
            (Some("files"), None) => Action::Files,
            (Some("fresh"), None) => Action::Fresh,
            (Some("save"), Some(name)) if plain(name) => Action::Save(name.into()),
            (Some("restore"), Some(name)) if plain(name) => Action::Restore(name.into()),
            _ => {
                let why = format!("cannot read the request `{}`", text.trim());
                self.answer(Some(DONE), &id, Err(why));
                return None;
            }
        };
        Some(Request {
            id,
            action,
            answer: Some(DONE),
        })
    }

    /// Stops bitcoind (`child`, when it runs), changes the chain directory as `request` says, starts
    /// bitcoind again and answers; bitcoind's pid (None when it cannot start again) and the answer.
    fn carry_out(&self, request: &Request, child: Option<i32>) -> (Option<i32>, Result<(), String>) {
        if let (Action::Files, Some(pid)) = (&request.action, child) {
            // A rename: bitcoind reads either the old file or the new one, never half of one.
            self.put_in_place();
            self.keep_clock();
            self.answer(request.answer, &request.id, Ok(()));
            return (Some(pid), Ok(()));
        }
        if let Some(pid) = child {
            // A snapshot is taken of a chain bitcoind flushed on its way out; what a reset throws
            // away needs no flush.
            let signal = match request.action {
                Action::Save(_) => SIGTERM,
                Action::Fresh | Action::Restore(_) | Action::Files => SIGKILL,
            };
            unsafe { kill(pid, signal) };
            wait_for(pid);
        }
        self.put_in_place();
        if matches!(request.action, Action::Fresh | Action::Restore(_)) {
            self.declared_clock();
            self.empty_filler();
        }
        let done = match &request.action {
            Action::Files => Ok(()),
            Action::Fresh => self.discard(),
            Action::Save(name) => self.save(name),
            Action::Restore(name) => self.restore(name),
        };
        let started = self.start();
        let answer = match (done, started) {
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err("cannot start bitcoind again".to_string()),
            (Ok(()), Some(_)) => Ok(()),
        };
        self.answer(request.answer, &request.id, answer.clone());
        (started, answer)
    }

    fn answer(&self, file: Option<&str>, id: &str, outcome: Result<(), String>) {
        let Some(file) = file else {
            return;
        };
        let line = match outcome {
            Ok(()) => format!("{id} ok\n"),
            Err(why) => format!("{id} error {why}\n"),
        };
        let _ = self.write(file, &line);
    }

    /// The declared clock (the environment's `REGBOX_CLOCK`) as the clock and drift files, its drift
    /// counted from now. A node without one (an image not regbox's) keeps its files.
    fn declared_clock(&self) {
        let Some(text) = std::env::var_os(faketime::DECLARED_ENV) else {
            return;
        };
        let Some([clock, drift]) = faketime::declared_files(&text.to_string_lossy(), now_ms()) else {
            eprintln!("regbox-init: cannot read the declared clock {text:?}");
            return;
        };
        for (name, text) in [(".regbox-clock", clock), (".regbox-clock.drift", drift)] {
            if let Err(e) = self.write(name, &text) {
                eprintln!("regbox-init: cannot write {name}: {e}");
            }
        }
    }

    /// Empties the filler `disk --fill` left, when there is one: a reset frees a full disk.
    fn empty_filler(&self) {
        let filler = self.path(".regbox-fill");
        if filler.exists() {
            let _ = fs::write(filler, "");
        }
    }

    /// Writes file `name` of the data directory in one step (a rename), so that nobody reads half.
    fn write(&self, name: &str, text: &str) -> io::Result<()> {
        let part = self.path(&format!("{name}.part"));
        fs::write(&part, text)?;
        fs::rename(&part, self.path(name))
    }

    /// A drifting clock (a drift file that says one): the clock file for the bitcoind that started
    /// at `started_ms` — its libfaketime measures the rate from then.
    fn keep_clock(&self) {
        let text = fs::read_to_string(self.path(".regbox-clock.drift")).unwrap_or_default();
        if let Some(drift) = faketime::read_drift(&text) {
            let clock = faketime::faketime_text(drift, self.started_ms.get());
            if let Err(e) = self.write(".regbox-clock", &clock) {
                eprintln!("regbox-init: cannot write the clock file: {e}");
            }
        }
    }

    /// Renames each `.regbox-NAME.next` regbox left in the data directory to `.regbox-NAME`: its
    /// clock file, which libfaketime in a running bitcoind reads on every clock reading (and exits on
    /// a half-written one), so it must change in one step.
    fn put_in_place(&self) {
        let Ok(entries) = fs::read_dir(&self.datadir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(target) = name.strip_suffix(".next") {
                if target.starts_with(".regbox-") {
                    let _ = fs::rename(entry.path(), self.path(target));
                }
            }
        }
    }

    /// Moves the chain directory out of the way (removed after bitcoind started again).
    fn discard(&self) -> Result<(), String> {
        let chain = self.path(CHAIN);
        if !chain.exists() {
            return Ok(());
        }
        let trash = self.path(&format!(".regbox-trash-{}", std::process::id()));
        let mut n = 0;
        let mut to = trash.clone();
        while to.exists() {
            n += 1;
            to = PathBuf::from(format!("{}-{n}", trash.display()));
        }
        fs::rename(&chain, &to).map_err(|e| format!("cannot move {}: {e}", chain.display()))
    }

    /// Removes the chains moved aside (after the new bitcoind started and regbox has its answer).
    fn empty_trash(&self) {
        let Ok(entries) = fs::read_dir(&self.datadir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".regbox-trash-") {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    fn snapshot(&self, name: &str) -> PathBuf {
        self.path(".regbox-snapshots").join(name)
    }

    fn save(&self, name: &str) -> Result<(), String> {
        let into = self.snapshot(name);
        let part = self.path(".regbox-snapshots").join(format!(".{name}.part"));
        let _ = fs::remove_dir_all(&part);
        let fail = |e: io::Error| format!("cannot save snapshot `{name}`: {e}");
        copy_tree(&self.path(CHAIN), &part, true).map_err(fail)?;
        // Last: a snapshot without it is not whole.
        fs::write(part.join(SAVED_MARK), "").map_err(fail)?;
        if into.exists() {
            fs::remove_dir_all(&into).map_err(fail)?;
        }
        fs::rename(&part, &into).map_err(fail)
    }

    fn restore(&self, name: &str) -> Result<(), String> {
        let from = self.snapshot(name);
        if !from.is_dir() {
            return Err(format!("there is no snapshot `{name}` here"));
        }
        self.discard()?;
        copy_tree(&from, &self.path(CHAIN), false)
            .map_err(|e| format!("cannot restore snapshot `{name}`: {e}"))
    }
}

/// The answer file of requests regbox wrote.
const DONE: &str = ".regbox-init.done";

/// The host's clock, in Unix milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A snapshot's name: what regbox allows (letters, digits, `-`, `_`, `.`; not starting with `.`).
fn plain(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Copies the tree at `from` to `to` (made here), leaving out what a snapshot does not keep when
/// `saving`.
fn copy_tree(from: &Path, to: &Path, saving: bool) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if saving && NOT_SAVED.iter().any(|n| name == *n) {
            continue;
        }
        let kind = entry.file_type()?;
        let target = to.join(&name);
        if kind.is_dir() {
            copy_tree(&entry.path(), &target, false)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
