//! Propagation measurement on a running cluster: mine blocks (or send transactions) on one node, wait
//! until every node it can reach has each one, and read from every node's own log when it took it;
//! hop distances come from the peer graph the nodes report at the start.

use std::future::Future;
use std::time::{Duration, SystemTime};

use crate::core::chain::propagation::{self, Kind, Round, Stamps, Target};
pub use crate::core::chain::propagation::{Measurement, Prepared};
use crate::core::chain::rawtx::{self, Coin, COINBASE_MATURITY};
use crate::core::topology::stats::hops_from;
use crate::core::topology::Edge;
use crate::engine::cluster::Cluster;
use crate::engine::error::{Error, Result};
use crate::engine::node::Node;
use crate::engine::progress::Progress;
use crate::engine::wait::{on_all, short, wait_until, Check};

pub use crate::core::chain::propagation::MAX_ROUNDS;
/// How long a round waits for every node, unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Poll interval of the waits: arrival times come from the logs, so polling faster buys nothing but
/// load on the nodes being measured.
const POLL: Duration = Duration::from_millis(100);
/// Debug categories whose lines time a transaction's acceptance; switched on for a `tx` measurement
/// and back off afterwards (only those that were off).
const TX_CATEGORIES: [&str; 2] = ["mempool", "validation"];

/// What to measure.
#[derive(Debug, Clone)]
pub struct MeasureOptions {
    pub kind: Kind,
    /// The node that mines or sends (name or index).
    pub from: String,
    /// Blocks mined, or transactions sent, one after another.
    pub rounds: usize,
    /// How long each round may take to reach every node (and each preparation step).
    pub timeout: Duration,
}

/// The nodes of a measurement: who sends, who it can reach, and how far each node is.
struct Field<'a> {
    origin: &'a Node,
    reached: Vec<Node>,
    names: Vec<&'a str>,
    hops: Vec<Option<usize>>,
    timeout: Duration,
}

impl Field<'_> {
    fn arrivals(&self, stamps: &Stamps) -> Vec<propagation::Arrival> {
        propagation::arrivals(&self.names, &self.hops, stamps)
    }

    /// Waits until every reached node is at `height` or above.
    async fn wait_height(&self, height: u64) -> Result<()> {
        let what = format!(
            "height {height} on every node {} reaches",
            self.origin.name()
        );
        self.wait_all(&what, |n| async move {
            Ok(n.rpc.get_block_count().await? >= height)
        })
        .await
    }

    /// Polls `has` on every reached node until it holds on all of them.
    async fn wait_all<'a, F, Fut>(&'a self, what: &str, has: F) -> Result<()>
    where
        F: Fn(&'a Node) -> Fut,
        Fut: Future<Output = Result<bool>> + 'a,
    {
        wait_until(what, self.timeout, POLL, || async {
            let done = on_all(&self.reached, &has).await?;
            let behind: Vec<&str> = self
                .reached
                .iter()
                .zip(&done)
                .filter(|(_, done)| !**done)
                .map(|(n, _)| n.name())
                .collect();
            Ok(if behind.is_empty() {
                Check::Ready(())
            } else {
                Check::Pending(format!("not yet on {}", behind.join(", ")))
            })
        })
        .await
    }
}

/// Now, less a second: the engine's `since` counts whole seconds.
fn just_before() -> SystemTime {
    SystemTime::now() - Duration::from_secs(1)
}

impl Cluster {
    /// Mines `rounds` blocks (or sends `rounds` transactions) on `from`, one after another, and reads
    /// from each node's log when it took each one. Needs nodes started with `-logtimemicros` (every
    /// node regbox makes is).
    pub async fn measure_propagation(
        &self,
        opts: &MeasureOptions,
        progress: &Progress,
    ) -> Result<Measurement> {
        if !(1..=MAX_ROUNDS).contains(&opts.rounds) {
            return Err(Error::Measure(format!(
                "rounds must be between 1 and {MAX_ROUNDS}, got {}",
                opts.rounds
            )));
        }
        let origin = self.node(&opts.from)?;
        let (graph, _) = self.peer_graph().await?;
        let edges: Vec<Edge> = graph.edges().map(|(a, b)| Edge::new(a, b)).collect();
        let hops = hops_from(self.nodes.len(), &edges, origin.layout.index);
        let field = Field {
            origin,
            reached: (self.nodes.iter())
                .filter(|n| hops[n.layout.index].is_some())
                .cloned()
                .collect(),
            names: self.nodes.iter().map(Node::name).collect(),
            hops,
            timeout: opts.timeout,
        };
        let measured = match opts.kind {
            Kind::Block => self.block_measure(&field, opts.rounds, progress).await,
            Kind::Tx => self.tx_measure(&field, opts.rounds, progress).await,
        };
        progress.finish();
        let (prepared, rounds) = measured?;
        Ok(Measurement {
            kind: opts.kind,
            origin: origin.name().to_string(),
            unreachable: (self.nodes.iter())
                .filter(|n| field.hops[n.layout.index].is_none())
                .map(|n| n.name().to_string())
                .collect(),
            prepared,
            summary: propagation::summarize(&rounds),
            rounds,
        })
    }

    /// One block first when a reached node is in initial block download, then the rounds.
    async fn block_measure(
        &self,
        f: &Field<'_>,
        count: usize,
        progress: &Progress,
    ) -> Result<(Option<Prepared>, Vec<Round>)> {
        let ibd = on_all(&f.reached, |n| n.rpc.initial_block_download()).await?;
        let mut prepared = None;
        if ibd.contains(&true) {
            progress.stage("mining one block to end initial block download", 0);
            self.mine(f.origin.name(), 1).await?;
            f.wait_height(f.origin.rpc.get_block_count().await?).await?;
            prepared = Some(Prepared {
                blocks_mined: 1,
                split_txid: None,
            });
        }
        Ok((prepared, self.block_rounds(f, count, progress).await?))
    }

    async fn block_rounds(
        &self,
        f: &Field<'_>,
        count: usize,
        progress: &Progress,
    ) -> Result<Vec<Round>> {
        progress.stage(
            &format!(
                "mining {count} block(s) on {}, one at a time",
                f.origin.name()
            ),
            count as u64,
        );
        let mut rounds = Vec::with_capacity(count);
        for round in 1..=count {
            let since = just_before();
            let hash = (self.mine(f.origin.name(), 1).await?.pop())
                .ok_or_else(|| Error::Measure("the node mined no block".into()))?;
            let height = f.origin.rpc.get_block_header(&hash).await?.height;
            f.wait_height(height).await?;
            let stamps = self.stamps(f, &Target::Block(hash.clone()), since).await?;
            rounds.push(Round {
                round,
                id: hash,
                height: Some(height),
                arrivals: f.arrivals(&stamps),
            });
            progress.inc();
        }
        Ok(rounds)
    }

    /// What every reached node's log since `since` says about `target` (nothing for nodes not
    /// reached), polled until each shows its arrival and the origin's shows its birth.
    async fn stamps(&self, f: &Field<'_>, target: &Target, since: SystemTime) -> Result<Stamps> {
        let id = match target {
            Target::Block(hash) => format!("block {}", short(hash)),
            Target::Tx(txid) => format!("transaction {}", short(txid)),
        };
        let origin = (f.reached.iter())
            .position(|n| n.name() == f.origin.name())
            .expect("the origin reaches itself");
        let what = format!("the log line taking {id} on every node it reached");
        let logs = wait_until(&what, f.timeout, POLL, || async {
            let logs = on_all(&f.reached, |n| self.logs_since(n.name(), since)).await?;
            let mut missing: Vec<&str> = (f.reached.iter().zip(&logs))
                .filter(|(_, log)| propagation::arrival(log, target).is_none())
                .map(|(n, _)| n.name())
                .collect();
            if propagation::born(&logs[origin], target).is_none() {
                missing.push("the origin (the line of its birth)");
            }
            Ok::<_, Error>(if missing.is_empty() {
                Check::Ready(logs)
            } else {
                Check::Pending(format!("no line yet on {}", missing.join(", ")))
            })
        })
        .await?;
        let mut stamps = Stamps {
            born: propagation::born(&logs[origin], target),
            arrived: vec![None; self.nodes.len()],
            header: vec![None; self.nodes.len()],
        };
        for (node, log) in f.reached.iter().zip(&logs) {
            let arrived = propagation::arrival(log, target);
            if arrived.is_some_and(|s| !s.precise) {
                return Err(Error::Measure(format!(
                    "node `{}` logs whole seconds: it was started without -logtimemicros (by an \
                     older regbox, or its args turn it off); `regbox up` recreates it with the \
                     current settings",
                    node.name()
                )));
            }
            stamps.arrived[node.layout.index] = arrived;
            if let Target::Block(hash) = target {
                stamps.header[node.layout.index] = propagation::header_seen(log, hash);
            }
        }
        Ok(stamps)
    }

    /// Coins first, then the `mempool` and `validation` log categories on for the rounds, and back
    /// off afterwards (also after a failure) where they were off.
    async fn tx_measure(
        &self,
        f: &Field<'_>,
        count: usize,
        progress: &Progress,
    ) -> Result<(Option<Prepared>, Vec<Round>)> {
        let (coins, prepared) = self.prepare_coins(f, count, progress).await?;
        let before = on_all(&f.reached, |n| n.rpc.logging(&[], &[])).await?;
        let rounds = async {
            on_all(&f.reached, |n| n.rpc.logging(&TX_CATEGORIES, &[])).await?;
            self.tx_rounds(f, &coins, progress).await
        }
        .await;
        let restore = f.reached.iter().zip(&before).map(|(n, was)| {
            let off: Vec<&str> = (TX_CATEGORIES.iter().copied())
                .filter(|c| was.get(*c) == Some(&false))
                .collect();
            async move { n.rpc.logging(&[], &off).await }
        });
        let restored = futures::future::join_all(restore).await;
        let rounds = rounds?;
        for r in restored {
            r?;
        }
        Ok((Some(prepared), rounds))
    }

    async fn tx_rounds(
        &self,
        f: &Field<'_>,
        coins: &[Coin],
        progress: &Progress,
    ) -> Result<Vec<Round>> {
        progress.stage(
            &format!(
                "sending {} transaction(s) from {}, one at a time",
                coins.len(),
                f.origin.name()
            ),
            coins.len() as u64,
        );
        let mut rounds = Vec::with_capacity(coins.len());
        for (i, coin) in coins.iter().enumerate() {
            let since = just_before();
            let tx = rawtx::spend(coin).expect("a split output pays for its spend");
            let txid = f.origin.rpc.send_raw_transaction(&tx.hex).await?;
            let what = format!(
                "transaction {} in every mempool {} reaches",
                short(&txid),
                f.origin.name()
            );
            let id = &txid;
            f.wait_all(&what, |n| async move {
                Ok(n.rpc.get_raw_mempool().await?.contains(id))
            })
            .await?;
            let stamps = self.stamps(f, &Target::Tx(txid.clone()), since).await?;
            rounds.push(Round {
                round: i + 1,
                id: txid,
                height: None,
                arrivals: f.arrivals(&stamps),
            });
            progress.inc();
        }
        Ok(rounds)
    }

    /// One output per round, confirmed on every reached node: a mature coin of the anyone-can-spend
    /// script (mined first when there is none) split by one transaction, mined at once so the rounds'
    /// transactions have no unconfirmed parent.
    async fn prepare_coins(
        &self,
        f: &Field<'_>,
        count: usize,
        progress: &Progress,
    ) -> Result<(Vec<Coin>, Prepared)> {
        let rpc = &f.origin.rpc;
        let descriptor = rpc
            .descriptor_with_checksum(&rawtx::anyone_descriptor())
            .await?;
        progress.stage("looking for a coin to send from", 0);
        let mut blocks_mined = 0;
        let mut coin = find_coin(f.origin, &descriptor, count).await?;
        if coin.is_none() {
            progress.stage(
                &format!(
                    "mining {COINBASE_MATURITY} blocks on {} to an anyone-can-spend script (a coinbase \
                     needs {COINBASE_MATURITY} confirmations)",
                    f.origin.name()
                ),
                0,
            );
            rpc.generate_to_descriptor(COINBASE_MATURITY, &descriptor)
                .await?;
            blocks_mined = COINBASE_MATURITY;
            coin = find_coin(f.origin, &descriptor, count).await?;
        }
        let coin = coin.ok_or_else(|| {
            Error::Measure(format!(
                "no coin on {} pays for {count} transactions (has the block subsidy run out?)",
                f.origin.name()
            ))
        })?;
        let (split, each) = rawtx::split(&coin, count).expect("find_coin checked the value");
        rpc.send_raw_transaction(&split.hex).await?;
        rpc.generate_to_descriptor(1, &descriptor).await?;
        blocks_mined += 1;
        if !rpc.is_unspent(&split.txid, 0, false).await? {
            return Err(Error::Measure(format!(
                "the block mined after transaction {} does not hold it",
                short(&split.txid)
            )));
        }
        progress.stage("waiting for every node to take the prepared blocks", 0);
        f.wait_height(rpc.get_block_count().await?).await?;
        let coins = (0..count as u32)
            .map(|vout| Coin {
                txid: split.txid.clone(),
                vout,
                sats: each,
            })
            .collect();
        let prepared = Prepared {
            blocks_mined,
            split_txid: Some(split.txid),
        };
        Ok((coins, prepared))
    }
}

/// The largest spendable coin of the anyone-can-spend script on `node` that pays for `count`
/// transactions: mature, confirmed, and not spent by a transaction in the node's mempool.
async fn find_coin(node: &Node, descriptor: &str, count: usize) -> Result<Option<Coin>> {
    let mut unspent = node.rpc.scan_outputs(descriptor).await?;
    unspent.retain(|u| u.confirmations >= if u.coinbase { COINBASE_MATURITY } else { 1 });
    unspent.sort_by_key(|u| std::cmp::Reverse(u.sats()));
    for u in unspent {
        let coin = Coin {
            txid: u.txid.clone(),
            vout: u.vout,
            sats: u.sats(),
        };
        if rawtx::split(&coin, count).is_none() {
            break;
        }
        if node.rpc.is_unspent(&u.txid, u.vout, true).await? {
            return Ok(Some(coin));
        }
    }
    Ok(None)
}
