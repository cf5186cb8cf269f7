//! Reading a cluster for the operator's page: what `status` reads (each node, the link faults, the
//! holds), the segments, and every node's chain tips with the block headers behind them down to the
//! fork view's window. Headers never change, so they are kept between readings and only new ones read.

use futures::stream::{self, StreamExt};

use crate::core::chain::forks::{self, Header, Headers, NodeChain};
use crate::core::verb::{Links, NodeStatus, PartitionReport};
use crate::engine::cluster::Cluster;
use crate::engine::error::Result;
use crate::engine::node::Node;
use crate::engine::wait::RPC_CONCURRENCY;

/// Rounds of header reads in one look at most (each reads one more block back on every branch).
const MAX_HEADER_ROUNDS: u64 = 64;

/// Nodes asked for one header before it is left for the next look.
const MAX_ASKED: usize = 8;

/// Heights of headers kept below the window: enough to tell a deep reorg at the next look.
const KEEP_BELOW: u64 = 200;

/// One look at a cluster.
pub struct Look {
    pub status: Vec<NodeStatus>,
    pub links: Links,
    pub held: Vec<String>,
    pub partition: PartitionReport,
    pub chains: Vec<NodeChain>,
}

impl Cluster {
    /// Reads the cluster for the page, adding to `headers` those behind the nodes' tips down to
    /// `window` blocks below the highest (and forgetting those far below it). A node that does not
    /// answer has no tips.
    pub async fn look(&self, headers: &mut Headers, window: u64) -> Result<Look> {
        let (reading, chains) = tokio::join!(self.status_reading(), self.chains());
        let reading = reading?;
        self.read_headers(&chains, headers, window).await;
        let bottom = forks::window_bottom(&chains, headers, window);
        headers.retain(|_, h| h.height + KEEP_BELOW >= bottom);
        Ok(Look {
            status: reading.nodes,
            links: reading.links,
            held: reading.held,
            partition: self.report(),
            chains,
        })
    }

    /// Every node's best block and chain tips (none for a node that does not answer).
    async fn chains(&self) -> Vec<NodeChain> {
        stream::iter(self.nodes.iter().map(|n| async move {
            let (best, tips) = tokio::join!(n.rpc.get_best_block_hash(), n.rpc.get_chain_tips());
            NodeChain {
                node: n.name().to_string(),
                best: best.ok(),
                tips: tips.unwrap_or_default(),
            }
        }))
        .buffered(RPC_CONCURRENCY)
        .collect()
        .await
    }

    /// Reads the headers the fork view needs and `headers` lacks, a round at a time; each from a node
    /// that lists it among its tips, else from any node that knows it.
    async fn read_headers(&self, chains: &[NodeChain], headers: &mut Headers, window: u64) {
        for _ in 0..MAX_HEADER_ROUNDS {
            let bottom = forks::window_bottom(chains, headers, window);
            let needed = forks::headers_needed(chains, headers, bottom);
            if needed.is_empty() {
                return;
            }
            let read: Vec<Option<Header>> = stream::iter(needed.iter().map(|hash| {
                let first = chains
                    .iter()
                    .position(|c| c.tips.iter().any(|t| &t.hash == hash));
                self.header(hash, first)
            }))
            .buffer_unordered(RPC_CONCURRENCY)
            .collect()
            .await;
            let mut any = false;
            for h in read.into_iter().flatten() {
                headers.insert(h.hash.clone(), h);
                any = true;
            }
            if !any {
                return; // no node knows them (yet)
            }
        }
    }

    /// The header of `hash`, asked of node `first` and then of the others until one knows it (at most
    /// [`MAX_ASKED`] nodes).
    async fn header(&self, hash: &str, first: Option<usize>) -> Option<Header> {
        let others = (0..self.nodes.len()).filter(|&i| Some(i) != first);
        for i in first.into_iter().chain(others).take(MAX_ASKED) {
            if let Some(h) = header_of(&self.nodes[i], hash).await {
                return Some(h);
            }
        }
        None
    }
}

async fn header_of(node: &Node, hash: &str) -> Option<Header> {
    let h = node.rpc.get_block_header(hash).await.ok()?;
    Some(Header {
        hash: h.hash,
        height: h.height,
        prev: h.previousblockhash,
        chainwork: h.chainwork,
        time: h.time,
    })
}
