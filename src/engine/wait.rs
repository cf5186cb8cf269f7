//! Waiting on conditions instead of sleeping: a general `wait_until` with a deadline and a poll interval,
//! and the cluster-wide conditions built on it (`sync_blocks`, `sync_mempools`).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use tokio::time::Instant;

use crate::engine::cluster::{Error, Node};

/// One look at a condition: met (with a value), or not yet (with what was seen, for the timeout message).
pub enum Check<T> {
    Ready(T),
    Pending(String),
}

/// A condition that did not become true in time.
#[derive(Debug, thiserror::Error)]
#[error("wait for {what} within {timeout:?}; last seen: {last}")]
pub struct Timeout {
    pub what: String,
    pub timeout: Duration,
    pub last: String,
}

/// Polls `check` every `interval` until it is ready, fails, or `timeout` passes. A check that itself hangs
/// is cut off at the deadline too.
pub async fn wait_until<T, E, F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: F,
) -> Result<T, E>
where
    E: From<Timeout>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Check<T>, E>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = "nothing yet".to_string();
    loop {
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(Ok(Check::Ready(value))) => return Ok(value),
            Ok(Ok(Check::Pending(seen))) => last = seen,
            Ok(Err(e)) => return Err(e),
            Err(_) => break,
        }
        if Instant::now() + interval >= deadline {
            break;
        }
        tokio::time::sleep(interval).await;
    }
    Err(Timeout {
        what: what.to_string(),
        timeout,
        last,
    }
    .into())
}

/// How many RPCs to have in flight at once across a cluster.
pub const RPC_CONCURRENCY: usize = 32;

/// Poll interval that keeps a round of one RPC per node cheap on large clusters.
pub fn interval_for(nodes: usize) -> Duration {
    Duration::from_millis((20 + nodes as u64).min(250))
}

/// Runs `f` on every node concurrently (bounded) and returns the answers in node order.
pub async fn on_all<'a, T, F, Fut>(nodes: &'a [Node], f: F) -> Result<Vec<T>, Error>
where
    F: Fn(&'a Node) -> Fut,
    Fut: Future<Output = Result<T, Error>> + 'a,
{
    stream::iter(nodes.iter().map(f))
        .buffered(RPC_CONCURRENCY)
        .try_collect()
        .await
}

/// Waits until every node reports the same best block hash. On timeout the error names the nodes that
/// are not on the highest tip seen and what they reported.
pub async fn sync_blocks(nodes: &[Node], timeout: Duration) -> Result<String, Error> {
    let what = format!("{} nodes to share one best block", nodes.len());
    wait_until(&what, timeout, interval_for(nodes.len()), || async {
        let tips = on_all(nodes, |n| async move {
            let tip = n.rpc.get_tip().await.map_err(|e| n.rpc_error(e))?;
            Ok((tip.height, tip.hash))
        })
        .await?;
        let best = tips.iter().max().cloned().unwrap_or_default();
        if tips.iter().all(|t| t.1 == best.1) {
            return Ok(Check::Ready(best.1));
        }
        let lagging: Vec<String> = nodes
            .iter()
            .zip(&tips)
            .filter(|(_, t)| t.1 != best.1)
            .map(|(n, (h, hash))| format!("{} at {h} ({})", n.name(), short(hash)))
            .collect();
        Ok(Check::Pending(format!(
            "highest tip {} ({}); lagging: {}",
            best.0,
            short(&best.1),
            lagging.join(", ")
        )))
    })
    .await
}

/// Waits until every node's mempool holds the same set of transactions. On timeout the error names the
/// nodes whose mempool differs from the largest one.
pub async fn sync_mempools(nodes: &[Node], timeout: Duration) -> Result<usize, Error> {
    let what = format!("{} nodes to hold the same mempool", nodes.len());
    wait_until(&what, timeout, interval_for(nodes.len()), || async {
        let pools = on_all(nodes, |n| async move {
            let mut txs = n.rpc.get_raw_mempool().await.map_err(|e| n.rpc_error(e))?;
            txs.sort();
            Ok(txs)
        })
        .await?;
        let mut counts: BTreeMap<&Vec<String>, usize> = BTreeMap::new();
        for p in &pools {
            *counts.entry(p).or_default() += 1;
        }
        let reference = pools
            .iter()
            .max_by_key(|p| p.len())
            .cloned()
            .unwrap_or_default();
        if counts.len() <= 1 {
            return Ok(Check::Ready(reference.len()));
        }
        let differ: Vec<String> = nodes
            .iter()
            .zip(&pools)
            .filter(|(_, p)| **p != reference)
            .map(|(n, p)| format!("{} has {} txs", n.name(), p.len()))
            .collect();
        Ok(Check::Pending(format!(
            "largest mempool {} txs; differing: {}",
            reference.len(),
            differ.join(", ")
        )))
    })
    .await
}

/// The first 12 hex digits of a hash, enough to tell tips apart in a message.
pub fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test(start_paused = true)]
    async fn wait_until_returns_when_ready_and_reports_last_seen_on_timeout() {
        let calls = Cell::new(0);
        let got: Result<u32, Timeout> = wait_until(
            "three calls",
            Duration::from_secs(5),
            Duration::from_millis(10),
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    Ok(if n == 3 {
                        Check::Ready(n)
                    } else {
                        Check::Pending(format!("call {n}"))
                    })
                }
            },
        )
        .await;
        assert_eq!(got.unwrap(), 3);

        let err = wait_until::<(), Timeout, _, _>(
            "never",
            Duration::from_secs(1),
            Duration::from_millis(100),
            || async { Ok(Check::Pending("still no".into())) },
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "wait for never within 1s; last seen: still no"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_check_is_cut_off_at_the_deadline() {
        let err = wait_until::<(), Timeout, _, _>(
            "hang",
            Duration::from_secs(1),
            Duration::from_millis(100),
            || async {
                std::future::pending::<()>().await;
                unreachable!()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.last, "nothing yet");
    }
}
