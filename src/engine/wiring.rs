//! Sessions a user asks for by hand: `connect A B` (A dials B; done when both list each other with the
//! handshake finished) and `disconnect A B` (every session between them closed at both ends). The
//! declared topology is kept by the reconcile loop; these act on one pair, decided by `core::plan`.

use std::cell::Cell;
use std::time::Duration;

use tokio::time::Instant;

use crate::core::cluster::plan::{connect_step, pair_sessions, PairStep};
use crate::core::topology::Edge;
use crate::core::verb::Verb;
use crate::engine::cluster::Cluster;
use crate::engine::error::Result;
use crate::engine::exec::Exec;
use crate::engine::reconcile::run_all;
use crate::engine::wait::{interval_for, wait_until, Check, RPC_CONCURRENCY};

/// A dial that left no trace at either end is repeated after this long.
const REDIAL_AFTER: Duration = Duration::from_secs(1);

impl Cluster {
    /// Connects node `a` to node `b` (a dials b over a segment they share) and waits until both list
    /// each other with the handshake done.
    pub async fn connect(&mut self, a: &str, b: &str, timeout: Duration) -> Result<()> {
        let verb = Verb::Connect {
            a: a.into(),
            b: b.into(),
        };
        self.exec(&verb, &Exec::with_timeout(timeout))
            .await
            .map(drop)
    }

    pub(crate) async fn connect_locked(&self, a: &str, b: &str, timeout: Duration) -> Result<()> {
        let (a, b) = (self.node(a)?.layout.index, self.node(b)?.layout.index);
        let plane = self.observe_docker().await?.plane;
        self.dial(&plane, Edge::new(a, b)).await?;
        let what = format!(
            "{} and {} to finish the handshake",
            self.nodes[a].name(),
            self.nodes[b].name()
        );
        let dialed_at = Cell::new(Instant::now());
        wait_until(&what, timeout, interval_for(2), || async {
            let sessions = self.sessions_of(&plane, &[a, b]).await?;
            let due = dialed_at.get().elapsed() > REDIAL_AFTER;
            match connect_step(&sessions, a, b, due) {
                PairStep::Done => return Ok(Check::Ready(())),
                PairStep::Dial => {
                    dialed_at.set(Instant::now());
                    self.dial(&plane, Edge::new(a, b)).await?;
                }
                PairStep::Wait => {}
            }
            Ok(Check::Pending("handshake not complete".into()))
        })
        .await
    }

    /// Closes every session between `a` and `b` at both ends and waits until neither lists the other.
    pub async fn disconnect(&mut self, a: &str, b: &str, timeout: Duration) -> Result<()> {
        let verb = Verb::Disconnect {
            a: a.into(),
            b: b.into(),
        };
        self.exec(&verb, &Exec::with_timeout(timeout))
            .await
            .map(drop)
    }

    pub(crate) async fn disconnect_locked(
        &self,
        a: &str,
        b: &str,
        timeout: Duration,
    ) -> Result<()> {
        let (a, b) = (self.node(a)?.layout.index, self.node(b)?.layout.index);
        let plane = self.observe_docker().await?.plane;
        let what = format!(
            "{} and {} to stop listing each other",
            self.nodes[a].name(),
            self.nodes[b].name()
        );
        wait_until(&what, timeout, interval_for(2), || async {
            let drops = pair_sessions(&self.sessions_of(&plane, &[a, b]).await?, a, b);
            if drops.is_empty() {
                return Ok(Check::Ready(()));
            }
            run_all(
                drops.iter().map(|&(at, id)| async move {
                    Ok(self.nodes[at].rpc.disconnect_node(id).await?)
                }),
                RPC_CONCURRENCY,
            )
            .await?;
            Ok(Check::Pending(format!(
                "{} session(s) still listed",
                drops.len()
            )))
        })
        .await
    }
}
