//! Benchmark (`cargo bench --bench page`): how long the operator's page takes to load and draw a
//! cluster of 100 nodes in a real headless Chromium (Debian's `chromium` and `chromium-driver`), beside
//! one of 6 nodes, over `REGBOX_BENCH_ROUNDS` loads of each (default 15), alternating.
//!
//! The clusters are fakes: each operator's page state is fed what a look at a ring would read (every
//! node's status and chain tips, a partition into two segments, a fork of two blocks, a one-way cut
//! and a delay on a few nodes, 120 heights samples), so that the figure is the page's own — the
//! operator's HTTP interface serving the document and its event stream, the browser parsing and
//! drawing — and not the time the nodes take to answer. Each load is timed two ways: in the page,
//! from the start of the navigation to the first state drawn (`performance.now()` then); and from
//! outside, from the WebDriver navigation to the moment the test sees it drawn.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regbox::core::chain::forks::{ChainTip, Header, Headers, NodeChain};
use regbox::core::cluster::plan::State;
use regbox::core::faults::link::Shaping;
use regbox::core::faults::plane::{Block, NodeFaults};
use regbox::core::partition::{CutMode, Via};
use regbox::core::verb::{Links, NodeStatus, PartitionReport, SegmentReport};
use regbox::engine::look::Look;
use regbox::operator::http::{serve, Serving};
use regbox::operator::{Operator, Scope};

#[path = "../tests/support/mod.rs"]
mod support;
use support::browser::Browser;
use support::median;

/// Heights samples fed before the loads.
const SAMPLES: u64 = 120;

/// A block hash: `side` and `height` spelled out over 64 hex digits.
fn hash(side: u8, height: u64) -> String {
    format!("{side:02x}{height:062x}")
}

/// A ring of `n` at `height`: the first half on the main chain, the second on a branch of two blocks
/// (a partition into halves with a fork), a one-way cut from n0 to n1 and a delay on n2.
fn look(n: usize, height: u64) -> (Vec<(usize, usize)>, Look, Headers) {
    let mut headers = Headers::new();
    let mut add = |side: u8, h: u64, prev: Option<String>| {
        let header = Header {
            hash: hash(side, h),
            height: h,
            prev,
            chainwork: format!("{:064x}", h + 1),
            time: 1_700_000_000 + h,
        };
        headers.insert(header.hash.clone(), header);
    };
    for h in 0..=height {
        add(0, h, h.checked_sub(1).map(|p| hash(0, p)));
    }
    let fork = height.saturating_sub(2);
    add(1, fork + 1, Some(hash(0, fork)));
    add(1, fork + 2, Some(hash(1, fork + 1)));
    let name = |i: usize| format!("n{i}");
    let side = |i: usize| u8::from(i >= n / 2);
    let edges: Vec<(usize, usize)> = (0..n).map(|i| (i, (i + 1) % n)).collect();
    let status = (0..n)
        .map(|i| {
            let best = if side(i) == 0 {
                hash(0, height)
            } else {
                hash(1, fork + 2)
            };
            let peers = [(i + n - 1) % n, (i + 1) % n]
                .into_iter()
                .filter(|&p| side(p) == side(i))
                .map(name)
                .collect();
            NodeStatus {
                index: i,
                name: name(i),
                image: "regbox/bitcoind:knots-29.4".into(),
                state: State::Running,
                host: None,
                control_ip: format!("10.0.{}.{}", i / 200, i % 200 + 10),
                data_ip: format!("10.1.{}.{}", i / 200, i % 200 + 10),
                height: Some(if side(i) == 0 { height } else { fork + 2 }),
                best_hash: Some(best),
                peers,
                segments: vec![format!("seg{}", side(i))],
                error: None,
                links: String::new(),
                clock: None,
                drift: None,
                overlay_encrypted: None,
                throttle: None,
            }
        })
        .collect::<Vec<_>>();
    let chains = status
        .iter()
        .map(|s| NodeChain {
            node: s.name.clone(),
            best: s.best_hash.clone(),
            tips: vec![ChainTip {
                height: s.height.unwrap(),
                hash: s.best_hash.clone().unwrap(),
                branchlen: 0,
                status: "active".into(),
            }],
        })
        .collect();
    let mut links = Links::new();
    let mut cut = NodeFaults::<String>::default();
    cut.cuts.insert(name(1), Block::Drop);
    links.insert(name(0), cut);
    let delay = NodeFaults::<String> {
        shaping: Some(Shaping {
            delay_us: 150_000,
            ..Shaping::default()
        }),
        ..NodeFaults::default()
    };
    links.insert(name(2), delay);
    let members = |s: u8| (0..n).filter(|&i| side(i) == s).map(name).collect();
    let partition = PartitionReport {
        mode: CutMode::Drop,
        via: Via::Segments,
        segments: (0..2)
            .map(|s| SegmentReport {
                id: s as usize,
                network: format!("seg{s}"),
                subnet: format!("10.2.{s}.0/24"),
                members: members(s),
            })
            .collect(),
        graph: Vec::new(),
        seed: None,
    };
    let look = Look {
        status,
        links,
        held: Vec::new(),
        partition,
        chains,
    };
    (edges, look, headers)
}

/// An operator whose page shows the fake ring `name` of `n` nodes, serving on a free loopback port;
/// its URL.
async fn serve_fake(name: &str, n: usize) -> String {
    let op = Arc::new(Operator::new(None, Duration::ZERO, Scope::Engine));
    for round in 0..SAMPLES {
        let (edges, look, headers) = look(n, 100 + round / 10);
        op.pages.take_in(name, Ok((edges, look)), headers);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let serving = Serving::with_timeout(Duration::from_secs(60));
    tokio::task::spawn_local(serve(op, listener, serving));
    url
}

/// One load of `url`: (in the page, from outside), in milliseconds.
async fn load(browser: &Browser, url: &str) -> (f64, f64) {
    browser.goto("about:blank").await;
    let started = Instant::now();
    browser.goto(url).await;
    let drawn = "document.body && document.body.dataset.firstRenderMs";
    browser
        .wait_for("the first state", drawn, Duration::from_secs(30))
        .await;
    let outside = started.elapsed().as_secs_f64() * 1000.0;
    let inside = browser
        .script("return +document.body.dataset.firstRenderMs")
        .await
        .as_f64()
        .unwrap();
    (inside, outside)
}

fn ms(v: &[f64]) -> f64 {
    let d: Vec<Duration> = v
        .iter()
        .map(|x| Duration::from_secs_f64(x / 1000.0))
        .collect();
    median(&d).as_secs_f64() * 1000.0
}

fn main() {
    let rounds: usize = std::env::var("REGBOX_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let small = serve_fake("ring6", 6).await;
        let large = serve_fake("ring100", 100).await;
        let (_, state) = support::http("GET", &format!("{large}page/state"), "").await;
        let browser = Browser::start(1400, 1200).await;
        load(&browser, &small).await; // warm-up: the browser's first page
        let mut times: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for _ in 0..rounds {
            for (label, url) in [("6 nodes", &small), ("100 nodes", &large)] {
                let (inside, outside) = load(&browser, url).await;
                let entry = times.entry(label).or_default();
                entry.0.push(inside);
                entry.1.push(outside);
            }
        }
        browser.close().await;
        println!("page load, {rounds} loads each (median ms):");
        println!(
            "{:<10} {:>22} {:>22}",
            "cluster", "navigation→drawn", "WebDriver round trip"
        );
        for label in ["6 nodes", "100 nodes"] {
            let (inside, outside) = &times[label];
            println!("{label:<10} {:>22.1} {:>22.1}", ms(inside), ms(outside));
        }
        let ratio = ms(&times["100 nodes"].0) / ms(&times["6 nodes"].0);
        println!("100 nodes / 6 nodes (navigation→drawn): {ratio:.2}");
        println!("first state of 100 nodes: {} bytes of JSON", state.len());
    });
}
