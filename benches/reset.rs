//! Benchmark (`cargo bench --bench reset`): a fresh 4-node ring for every test, three ways, side by
//! side over `REGBOX_BENCH_ROUNDS` rounds (default 5), each round running every variant once in an
//! order that rotates from round to round; medians and ratios are printed.
//!
//! - **local processes**: what Bitcoin Core's test framework does — four bitcoind processes of the
//!   node image's own binary (its files exported from the image, run by the image's own loader and
//!   libraries, no container) on loopback, each with a datadir of its own, started; each answering
//!   RPC; the ring dialed with `addnode … onetry`; done when every node lists its two peers with the
//!   handshake finished and a pong back (the check regbox's verification applies). Teardown: `stop`
//!   over RPC, each process awaited, datadirs removed.
//! - **regbox up→verified** and **down**: `Cluster::up` of the same ring until it returns (peer graph
//!   verified), and `down` of it.
//! - **regbox reset→verified**: `Cluster::reset` of a kept ring after a test body ran on it (every
//!   bitcoind restarted in place on a fresh chain, the ring wired and verified).
//!
//! Then a suite of 20 tests, each mining 10 blocks on n0 and waiting until every node has them, on
//! a fresh ring per test: local processes started and stopped per test, against regbox bringing one
//! ring up, resetting it between tests and taking it down at the end (what `regbox run A B C` and
//! the test fixtures do). Every cluster is named `b<pid>-…`; a drop guard removes it on a panic.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use regbox::cluster::{Cluster, UpOptions};
use regbox::manifest::{self, ClusterSpec};
use regbox::progress::Progress;
use regbox::rpc::{RpcClient, Transport};

#[path = "../tests/support/mod.rs"]
mod support;
use support::{median, outside, Teardown};

const NODES: usize = 4;
const SUITE: usize = 20;
const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(10);

fn ring(name: &str) -> ClusterSpec {
    manifest::parse(
        &format!("name: {name}\nnodes: {NODES}\ntopology: ring\n"),
        "bench.yaml",
    )
    .unwrap()
}

/// The node image's files, exported once: its bitcoind runs here through the image's own loader.
struct Binary {
    root: tempfile::TempDir,
}

impl Binary {
    async fn export(image: &str) -> Binary {
        let tar = outside::export(image, &format!("b{}-export", std::process::id())).await;
        let root = tempfile::tempdir().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().into_owned();
            if path.starts_with("usr") {
                entry.unpack_in(root.path()).unwrap();
            }
        }
        Binary { root }
    }

    fn command(&self) -> Command {
        let lib = self.root.path().join("usr/lib/x86_64-linux-gnu");
        let mut c = Command::new(lib.join("ld-linux-x86-64.so.2"));
        c.arg("--library-path")
            .arg(&lib)
            .arg(self.root.path().join("usr/bin/bitcoind"));
        c
    }
}

/// Four bitcoind processes on loopback, as a test framework runs them.
struct Local {
    children: Vec<Child>,
    rpc: Vec<RpcClient>,
    p2p: Vec<SocketAddr>,
    dirs: Vec<PathBuf>,
}

/// A free TCP port on loopback (the kernel's pick).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Local {
    /// Starts the processes, waits until each answers RPC, dials the ring and waits until every
    /// node lists its two peers with the handshake done.
    async fn up(binary: &Binary, base: &Path) -> Local {
        let transport = Transport::via(None);
        let mut local = Local {
            children: Vec::new(),
            rpc: Vec::new(),
            p2p: Vec::new(),
            dirs: Vec::new(),
        };
        for i in 0..NODES {
            let dir = base.join(format!("n{i}-{}", free_port()));
            std::fs::create_dir_all(&dir).unwrap();
            let (rpc_port, p2p_port) = (free_port(), free_port());
            let child = binary
                .command()
                .args([
                    "-regtest",
                    "-server=1",
                    "-connect=0",
                    "-listen=1",
                    "-dnsseed=0",
                    "-fixedseeds=0",
                    "-discover=0",
                    "-listenonion=0",
                    "-natpmp=0",
                    "-maxsigcachesize=1",
                    "-printtoconsole=0",
                    "-rpcuser=bench",
                    "-rpcpassword=bench",
                ])
                .arg(format!("-datadir={}", dir.display()))
                .arg(format!("-bind=127.0.0.1:{p2p_port}"))
                .arg(format!("-rpcport={rpc_port}"))
                .arg(format!("-uacomment=n{i}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            local.children.push(child);
            let addr = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), rpc_port);
            local.rpc.push(RpcClient::new(
                transport.clone(),
                &format!("n{i}"),
                addr,
                "bench",
                "bench",
            ));
            local
                .p2p
                .push(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), p2p_port));
            local.dirs.push(dir);
        }
        futures::future::join_all(local.rpc.iter().map(|r| async move {
            let deadline = Instant::now() + WAIT;
            while r.get_block_count().await.is_err() {
                assert!(Instant::now() < deadline, "a local bitcoind did not answer");
                tokio::time::sleep(POLL).await;
            }
        }))
        .await;
        for i in 0..NODES {
            let next = (i + 1) % NODES;
            local.rpc[i].add_node_onetry(local.p2p[next]).await.unwrap();
        }
        futures::future::join_all(local.rpc.iter().map(|r| async move {
            let deadline = Instant::now() + WAIT;
            loop {
                let peers = r.get_peer_info().await.unwrap();
                if peers.len() == 2 && peers.iter().all(|p| p.handshake_done()) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "the local ring did not wire: {:?}",
                    peers
                        .iter()
                        .map(|p| (p.addr.clone(), p.handshake_done()))
                        .collect::<Vec<_>>()
                );
                tokio::time::sleep(POLL).await;
            }
        }))
        .await;
        local
    }

    /// `stop` over RPC, each process awaited, its datadir removed.
    async fn down(mut self) {
        for r in &self.rpc {
            let _ = r
                .call::<serde_json::Value>("stop", serde_json::json!([]))
                .await;
        }
        for c in &mut self.children {
            c.wait().unwrap();
        }
        for d in &self.dirs {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}

/// The test body: 10 blocks mined on n0, awaited on every node.
async fn body(rpc: &[RpcClient]) {
    let address = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
    let _: serde_json::Value = rpc[0]
        .call("generatetoaddress", serde_json::json!([10, address]))
        .await
        .unwrap();
    let target = rpc[0].get_block_count().await.unwrap();
    for r in rpc {
        let deadline = Instant::now() + WAIT;
        while r.get_block_count().await.unwrap() < target {
            assert!(Instant::now() < deadline, "the blocks did not arrive");
            tokio::time::sleep(POLL).await;
        }
    }
}

fn clients(cluster: &Cluster) -> Vec<RpcClient> {
    cluster.nodes().iter().map(|n| n.rpc.clone()).collect()
}

#[derive(Default)]
struct Figures {
    local_up: Vec<Duration>,
    local_down: Vec<Duration>,
    up: Vec<Duration>,
    down: Vec<Duration>,
    reset: Vec<Duration>,
    suite_local: Vec<Duration>,
    suite_regbox: Vec<Duration>,
}

fn main() {
    let rounds: usize = std::env::var("REGBOX_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    // `RUST_LOG=regbox=debug` shows where each reset's time goes.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let image = regbox::image::ensure("regbox/bitcoind", &Progress::default())
            .await
            .unwrap();
        let binary = Binary::export(&image).await;
        let base = tempfile::tempdir().unwrap();
        let tag = std::process::id();
        let mut f = Figures::default();
        // Kept for the resets, warmed up (one reset untimed).
        let kept = format!("b{tag}-reset");
        let _kept_guard = Teardown(kept.clone());
        let mut cluster = Cluster::up(ring(&kept), &UpOptions::default())
            .await
            .unwrap();
        cluster.reset(None, WAIT).await.unwrap();
        Local::up(&binary, base.path()).await.down().await;
        for round in 0..rounds {
            for variant in 0..3 {
                match (variant + round) % 3 {
                    0 => {
                        let t = Instant::now();
                        let local = Local::up(&binary, base.path()).await;
                        f.local_up.push(t.elapsed());
                        body(&local.rpc).await;
                        let t = Instant::now();
                        local.down().await;
                        f.local_down.push(t.elapsed());
                    }
                    1 => {
                        let name = format!("b{tag}-up{round}");
                        let _guard = Teardown(name.clone());
                        let t = Instant::now();
                        let c = Cluster::up(ring(&name), &UpOptions::default())
                            .await
                            .unwrap();
                        f.up.push(t.elapsed());
                        body(&clients(&c)).await;
                        let t = Instant::now();
                        c.down(&Progress::default()).await.unwrap();
                        f.down.push(t.elapsed());
                    }
                    _ => {
                        body(&clients(&cluster)).await;
                        let t = Instant::now();
                        cluster.reset(None, WAIT).await.unwrap();
                        f.reset.push(t.elapsed());
                    }
                }
            }
            // The suite, both ways, in turn.
            let local_suite = async {
                let t = Instant::now();
                for _ in 0..SUITE {
                    let local = Local::up(&binary, base.path()).await;
                    body(&local.rpc).await;
                    local.down().await;
                }
                t.elapsed()
            };
            let name = format!("b{tag}-suite{round}");
            let regbox_suite = async {
                let _guard = Teardown(name.clone());
                let t = Instant::now();
                let mut c = Cluster::up(ring(&name), &UpOptions::default())
                    .await
                    .unwrap();
                for test in 0..SUITE {
                    if test > 0 {
                        c.reset(None, WAIT).await.unwrap();
                    }
                    body(&clients(&c)).await;
                }
                c.down(&Progress::default()).await.unwrap();
                t.elapsed()
            };
            if round % 2 == 0 {
                f.suite_local.push(local_suite.await);
                f.suite_regbox.push(regbox_suite.await);
            } else {
                f.suite_regbox.push(regbox_suite.await);
                f.suite_local.push(local_suite.await);
            }
        }
        cluster.down(&Progress::default()).await.unwrap();
        report(&f, rounds);
    });
}

fn report(f: &Figures, rounds: usize) {
    let s = |d: Duration| format!("{:.3}s", d.as_secs_f64());
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let (lu, ld) = (median(&f.local_up), median(&f.local_down));
    let (up, down, reset) = (median(&f.up), median(&f.down), median(&f.reset));
    let (sl, sr) = (median(&f.suite_local), median(&f.suite_regbox));
    println!("fresh 4-node ring per test, medians of {rounds} rounds:");
    println!(
        "  regbox reset→verified {} (target ≤ 0.300s) | local processes up→wired {} | ratio {:.2}x",
        s(reset),
        s(lu),
        ratio(reset, lu)
    );
    println!(
        "  regbox up→verified    {} | local processes up→wired {} | ratio {:.2}x (target ≤ 1.10x)",
        s(up),
        s(lu),
        ratio(up, lu)
    );
    println!(
        "  regbox down           {} | local processes stopped   {} | ratio {:.2}x",
        s(down),
        s(ld),
        ratio(down, ld)
    );
    println!(
        "suite of {SUITE} tests: regbox (up, reset between tests, down) {} | local processes per test {} | ratio {:.2}x (target ≤ 1.50x)",
        s(sr),
        s(sl),
        ratio(sr, sl)
    );
}
