//! The fuzz targets in every `cargo test`, on stable and without cargo-fuzz: each target's corpus
//! (`fuzz/corpus/NAME/`), then seeded mutations of it (bit flips, byte insertions and deletions, chunk
//! copies, splices of two corpus files, tokens of the formats) for a fixed budget. An input that panics
//! or runs past the deadline fails the test; it is written under the target directory and printed
//! escaped, ready to become a regression test. `REGBOX_FUZZ_ITERATIONS`, `REGBOX_FUZZ_SECONDS` and
//! `REGBOX_FUZZ_SEED` change the budget and the seed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use regbox::fuzzing::TARGETS;

/// Mutations per target unless `REGBOX_FUZZ_ITERATIONS` says otherwise.
const ITERATIONS: usize = 20_000;
/// …unless this time is up first (the corpus itself always runs whole).
const BUDGET: Duration = Duration::from_secs(3);
/// One input taking longer than this is a hang.
const DEADLINE: Duration = Duration::from_secs(10);
/// Mutated inputs are cut to this length: the parsers' limits are tested by their own unit tests.
const MAX_LEN: usize = 16 * 1024;
const SEED: u64 = 0x5eed_f022;

/// Words of the formats the targets read, inserted whole: a random byte rarely makes `topology:`.
const TOKENS: &[&str] = &[
    ": ",
    "- ",
    "\n",
    "\n  ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\"",
    "'",
    "&a ",
    "*a",
    "<<: ",
    "!!str ",
    "#",
    "~",
    "null",
    "true",
    "1e999",
    "-1",
    "0x10",
    "18446744073709551616",
    ".inf",
    ".nan",
    "name",
    "nodes",
    "topology",
    "edges",
    "file",
    "args",
    "image",
    "wallet",
    "resources",
    "memory",
    "cpus",
    "link",
    "links",
    "hosts",
    "placement",
    "defaults",
    "steps",
    "cluster",
    "partition",
    "groups",
    "kind",
    "halves",
    "isolate",
    "bridge",
    "wait",
    "assert",
    "rpc",
    "send",
    "amount",
    "timeout",
    "delay",
    "jitter",
    "loss",
    "rate",
    "->",
    "--",
    "digraph",
    "graph",
    "subgraph",
    "strict",
    "node",
    "edge",
    "/*",
    "*/",
    "<graphml>",
    "<graph>",
    "<node id=\"",
    "<edge source=\"",
    "\" target=\"",
    "\"/>",
    "&amp;",
    "<!--",
    "-->",
    "<![CDATA[",
    "\"verb\"",
    "\"set\"",
    "\"show\"",
    "\"nodes\"",
    "\"faults\"",
    "\"rate_bps\"",
    "\"delay_us\"",
    "\"jitter_us\"",
    "\"distribution\"",
    "\"pareto\"",
    "\"loss\"",
    "\"spec\"",
    "\"timeout\"",
    "1e308",
    "-0",
    "CONNECT ",
    " HTTP/1.1",
    "\r\n",
    "\r\n\r\n",
    "10.128.0.1:18443",
    "4294967295",
    "\u{feff}",
    "é",
    "\u{0}",
];

/// SplitMix64: small, seeded, the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four mutations of a corpus input, with `others` to splice from.
fn mutate(rng: &mut Rng, input: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(8) {
            0 if len > 0 => {
                let at = rng.below(len);
                out[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                out[at] = rng.next() as u8;
            }
            2 => {
                let at = rng.below(len + 1);
                out.insert(at, rng.next() as u8);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(32));
                out.drain(at..at + n);
            }
            4 if len > 0 => {
                // A chunk copied elsewhere: repeats a line, a key, a bracket.
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(64));
                let chunk = out[from..from + n].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, chunk);
            }
            5 if !others.is_empty() => {
                // The head of this input and the tail of another.
                let other = &others[rng.below(others.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            6 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                let at = rng.below(len + 1);
                out.splice(at..at, token.iter().copied());
            }
            _ if len > 0 => {
                // A digit becomes another number.
                if let Some(at) = (0..len)
                    .map(|i| (rng.below(len) + i) % len)
                    .take(16)
                    .find(|&i| out[i].is_ascii_digit())
                {
                    let number = ["0", "9999999999999999999999", "-1", "1.5", "65536"];
                    let n = number[rng.below(number.len())].as_bytes();
                    out.splice(at..at + 1, n.iter().copied());
                }
            }
            _ => out.push(rng.next() as u8),
        }
    }
    out.truncate(MAX_LEN);
    out
}

/// The input as Rust would write it in a regression test: a byte string literal.
fn escaped(input: &[u8]) -> String {
    let mut out = String::from("b\"");
    for &b in input {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// Keeps a failing input where a developer can run it again (`cargo fuzz run TARGET FILE`).
fn keep(target: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    std::fs::create_dir_all(&dir).unwrap();
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("{target}-{hash:016x}"));
    std::fs::write(&path, input).unwrap();
    path
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus of {target} ({}): {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let inputs: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(!inputs.is_empty(), "the corpus of {target} is empty");
    inputs
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one run of a target came to: inputs run, or the first that failed and why.
enum Outcome {
    Ran(usize),
    Panicked(Vec<u8>, String),
}

/// Runs `target`'s corpus then its mutations on a worker thread, which reports each input before
/// running it: the watcher here fails the test with that input if the worker goes quiet past
/// [`DEADLINE`] (a thread cannot be stopped; the test process ends with it stuck).
fn run(name: &str) {
    if !in_repository() {
        return;
    }
    let target = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target `{name}`"))
        .1;
    let seeds = corpus(name);
    let iterations = env_or("REGBOX_FUZZ_ITERATIONS", ITERATIONS);
    let seed = env_or("REGBOX_FUZZ_SEED", SEED) ^ name.len() as u64;
    let budget = Duration::from_secs_f64(env_or("REGBOX_FUZZ_SECONDS", BUDGET.as_secs_f64()));
    let (started, inputs) = mpsc::channel::<Vec<u8>>();
    let (done_tx, done) = mpsc::channel::<Outcome>();
    std::thread::spawn(move || {
        let begun = Instant::now();
        let mut rng = Rng(seed);
        let mut ran = 0;
        let mutated = (0..iterations).map_while(|i| {
            (begun.elapsed() < budget).then(|| {
                let input = &seeds[i % seeds.len()];
                mutate(&mut rng, input, &seeds)
            })
        });
        for input in seeds.clone().into_iter().chain(mutated) {
            let _ = started.send(input.clone());
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
                let why = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let _ = done_tx.send(Outcome::Panicked(input, why));
                return;
            }
            ran += 1;
        }
        let _ = done_tx.send(Outcome::Ran(ran));
    });
    let mut last: Vec<u8> = Vec::new();
    let begun = Instant::now();
    let mut since = begun;
    loop {
        match done.recv_timeout(Duration::from_millis(50)) {
            Ok(Outcome::Ran(n)) => {
                eprintln!(
                    "{name}: {n} inputs in {:.1} s",
                    begun.elapsed().as_secs_f64()
                );
                return;
            }
            Ok(Outcome::Panicked(input, why)) => {
                let path = keep(name, &input);
                panic!(
                    "fuzz target `{name}` panicked: {why}\ninput ({} bytes, kept in {}):\n{}",
                    input.len(),
                    path.display(),
                    escaped(&input)
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{name}: the worker vanished"),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        while let Ok(input) = inputs.try_recv() {
            last = input;
            since = Instant::now();
        }
        if since.elapsed() > DEADLINE {
            let path = keep(name, &last);
            panic!(
                "fuzz target `{name}` ran one input for more than {DEADLINE:?}\ninput ({} bytes, kept in {}):\n{}",
                last.len(),
                path.display(),
                escaped(&last)
            );
        }
    }
}

/// `fuzz/` is a package of its own, which `cargo package` leaves out of regbox's: these tests run in
/// the repository only.
fn in_repository() -> bool {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/Cargo.toml")
        .exists();
    if !here {
        eprintln!("no fuzz/ here (a packaged crate): the fuzz tests run in the repository");
    }
    here
}

#[test]
fn every_target_is_tested_here_and_has_a_cargo_fuzz_binary() {
    if !in_repository() {
        return;
    }
    let here = [
        "manifest",
        "scenario",
        "edgelist",
        "graphml",
        "dot",
        "agent_request",
        "verb",
        "relay_connect",
        "agent_record",
    ];
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, here);
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
    for name in here {
        let source = std::fs::read_to_string(fuzz.join(format!("fuzz_targets/{name}.rs")))
            .unwrap_or_else(|e| panic!("fuzz_targets/{name}.rs: {e}"));
        assert!(
            source.contains(&format!("regbox::fuzzing::{name}(")),
            "fuzz_targets/{name}.rs calls another target"
        );
        assert!(manifest.contains(&format!("name = \"{name}\"")), "{name}");
    }
}

#[test]
fn manifest() {
    run("manifest");
}

#[test]
fn scenario() {
    run("scenario");
}

#[test]
fn edgelist() {
    run("edgelist");
}

#[test]
fn graphml() {
    run("graphml");
}

#[test]
fn dot() {
    run("dot");
}

#[test]
fn agent_request() {
    run("agent_request");
}

#[test]
fn verb() {
    run("verb");
}

#[test]
fn relay_connect() {
    run("relay_connect");
}

#[test]
fn agent_record() {
    run("agent_record");
}
