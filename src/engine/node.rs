//! One running node: where it lives (its blueprint), its RPC client, and what regbox reads from it or
//! asks of it on its own — a reading for a wait, mining, its wallet.

use crate::core::chain::wait::{Reading, Sample};
use crate::core::cluster::blueprint::NodeLayout;
use crate::engine::rpc::{RpcClient, RpcError};

/// How long one node's sample may take: a paused or dying node does not answer.
pub(crate) const SAMPLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Seconds since the Unix epoch, as block timestamps count them.
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A node's state as the operator samples it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Vitals {
    pub height: u64,
    pub best: String,
    /// The best block's timestamp (seconds since the Unix epoch).
    pub tip_time: u64,
    /// Total work of the active chain (fixed-width hex).
    pub chainwork: String,
    pub peers: usize,
    pub mempool_txs: u64,
    pub mempool_bytes: u64,
}

/// A node of a cluster: where it lives and how to talk to it.
#[derive(Clone)]
pub struct Node {
    pub layout: NodeLayout,
    pub rpc: RpcClient,
}

impl Node {
    pub fn name(&self) -> &str {
        &self.layout.name
    }

    /// One reading for a wait. A node that refuses connections or warms up is `NotReady`, not an error.
    pub async fn sample(&self, reading: Reading) -> Result<Sample, RpcError> {
        let rpc = &self.rpc;
        match reading {
            Reading::Ready => {
                let loaded = match rpc.get_block_count().await {
                    Ok(_) => rpc.get_mempool_info().await.map(|m| m.loaded),
                    Err(e) => Err(e),
                };
                match loaded {
                    Ok(true) => Ok(Sample::Ready),
                    Ok(false) => Ok(Sample::NotReady("mempool still loading".into())),
                    Err(e) if e.is_not_ready() => Ok(Sample::NotReady(e.failure.to_string())),
                    Err(e) => Err(e),
                }
            }
            Reading::Tip => rpc.get_tip().await.map(|t| Sample::Tip {
                height: t.height,
                hash: t.hash,
            }),
            Reading::Mempool => rpc.get_raw_mempool().await.map(|mut txs| {
                txs.sort();
                Sample::Mempool(txs)
            }),
            Reading::Height => rpc.get_block_count().await.map(Sample::Height),
            Reading::Peers => rpc.get_peer_info().await.map(|p| Sample::Peers(p.len())),
        }
    }

    /// Height, tip, peers and mempool, read together (the operator's sample).
    pub async fn vitals(&self) -> Result<Vitals, RpcError> {
        let rpc = &self.rpc;
        let tip = rpc.get_tip().await?;
        let (header, peers, mempool) = tokio::try_join!(
            rpc.get_block_header(&tip.hash),
            rpc.get_peer_info(),
            rpc.get_mempool_info()
        )?;
        Ok(Vitals {
            height: tip.height,
            best: tip.hash,
            tip_time: header.time,
            chainwork: header.chainwork,
            peers: peers.len(),
            mempool_txs: mempool.size,
            mempool_bytes: mempool.bytes,
        })
    }

    /// How many blocks of the chain that ended at `old_tip` left the node's active chain: 0 when the
    /// old tip is still in it (the chain was only extended).
    pub async fn reorg_depth(&self, old_tip: &str) -> Result<u64, RpcError> {
        // Walk back from the old tip until a block that is still in the active chain.
        let mut depth = 0;
        let mut cursor = self.rpc.get_block_header(old_tip).await?;
        while cursor.confirmations < 1 {
            depth += 1;
            let Some(prev) = cursor.previousblockhash.clone() else {
                break;
            };
            cursor = self.rpc.get_block_header(&prev).await?;
        }
        Ok(depth)
    }

    /// `reorg_depth` within [`SAMPLE_TIMEOUT`]; 0 when the node cannot tell (a node killed before it
    /// wrote its old tip down may not know that block any more).
    pub(crate) async fn sampled_reorg_depth(&self, old_tip: &str) -> u64 {
        match tokio::time::timeout(SAMPLE_TIMEOUT, self.reorg_depth(old_tip)).await {
            Ok(Ok(depth)) => depth,
            Ok(Err(e)) => {
                tracing::debug!("reorg depth on {}: {e}", self.name());
                0
            }
            Err(_) => 0,
        }
    }

    /// Mines `blocks` blocks: to the node's wallet when it has one, otherwise to an anyone-can-spend
    /// script unique to the node (so two nodes mining on the same parent in the same second never make
    /// the same block).
    pub async fn mine(&self, blocks: u64, wallet: bool) -> Result<Vec<String>, RpcError> {
        if wallet {
            let address = self.rpc.get_new_address().await?;
            return self.rpc.generate_to_address(blocks, &address).await;
        }
        // <push node name> OP_DROP OP_TRUE
        let name = self.name().as_bytes();
        let script = format!("{:02x}{}7551", name.len(), hex::encode(name));
        let descriptor = self
            .rpc
            .descriptor_with_checksum(&format!("raw({script})"))
            .await?;
        self.rpc.generate_to_descriptor(blocks, &descriptor).await
    }
}
