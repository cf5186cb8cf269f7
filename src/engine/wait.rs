//! Waiting on conditions instead of sleeping: the one poll loop (`wait_until`: a deadline, an interval,
//! one timeout error saying what was awaited and what was seen last), and `wait_for`, which polls the
//! data conditions of `core::wait` on a set of nodes.

use std::future::Future;
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use tokio::time::Instant;

pub use crate::core::chain::wait::{short, Met, WaitFor};
use crate::core::chain::wait::{Sample, Verdict};
use crate::engine::error::Error;
pub use crate::engine::error::Timeout;
use crate::engine::node::Node;

/// One look at a condition: met (with a value), or not yet (with what was seen, for the timeout message).
pub enum Check<T> {
    Ready(T),
    Pending(String),
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
    Duration::from_millis((10 + nodes as u64).min(250))
}

/// Runs `f` on every node concurrently (bounded) and returns the answers in node order.
pub async fn on_all<'a, T, E, F, Fut>(nodes: &'a [Node], f: F) -> Result<Vec<T>, E>
where
    F: Fn(&'a Node) -> Fut,
    Fut: Future<Output = Result<T, E>> + 'a,
{
    stream::iter(nodes.iter().map(f))
        .buffered(RPC_CONCURRENCY)
        .try_collect()
        .await
}

/// Waits until `what` holds on `nodes` (the caller picked them: `what.nodes()` names them), polling
/// every node each round. On timeout the error names the condition, the nodes and what they last
/// reported.
pub async fn wait_for(nodes: &[Node], what: &WaitFor, timeout: Duration) -> Result<Met, Error> {
    let reading = what.reading();
    let names: Vec<&str> = nodes.iter().map(Node::name).collect();
    // A condition that names its nodes says them itself (`height 101 on n2`).
    let label = match what.nodes() {
        Some(_) => what.to_string(),
        None => format!("{what} on {}", describe_nodes(&names)),
    };
    wait_until(&label, timeout, interval_for(nodes.len()), || async {
        let samples = on_all(nodes, |n| n.sample(reading)).await?;
        let named: Vec<(&str, Sample)> = names.iter().copied().zip(samples).collect();
        Ok(match what.judge(&named) {
            Verdict::Met(met) => Check::Ready(met),
            Verdict::Pending(seen) => Check::Pending(seen),
        })
    })
    .await
}

/// Waits until every node reports the same best block hash; returns it.
pub async fn sync_blocks(nodes: &[Node], timeout: Duration) -> Result<String, Error> {
    match wait_for(nodes, &WaitFor::SyncBlocks(None), timeout).await? {
        Met::Tip(tip) => Ok(tip),
        other => unreachable!("sync_blocks met with {other:?}"),
    }
}

/// Waits until every node's mempool holds the same transactions; returns how many.
pub async fn sync_mempools(nodes: &[Node], timeout: Duration) -> Result<usize, Error> {
    match wait_for(nodes, &WaitFor::SyncMempools(None), timeout).await? {
        Met::Mempool(size) => Ok(size),
        other => unreachable!("sync_mempools met with {other:?}"),
    }
}

/// `n0, n1, n2` or, for many, `40 nodes (n0 … n39)`.
fn describe_nodes(names: &[&str]) -> String {
    match names {
        [] => "no node".into(),
        [one] => (*one).to_string(),
        _ if names.len() <= 6 => names.join(", "),
        _ => format!(
            "{} nodes ({} … {})",
            names.len(),
            names[0],
            names[names.len() - 1]
        ),
    }
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
