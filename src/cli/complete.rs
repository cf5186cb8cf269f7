//! Shell completion of cluster and node names: asked of the engine when the shell completes (the
//! script `regbox completions SHELL` prints calls back into regbox), never while parsing a command.

use std::future::Future;
use std::time::Duration;

use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

use crate::engine::cluster::Cluster;
use crate::engine::lifecycle;

/// How long a completion may wait for the engine before offering nothing.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// Completes a cluster name: the clusters on the engine.
pub fn clusters() -> ArgValueCandidates {
    ArgValueCandidates::new(|| candidates(cluster_names()))
}

/// Completes a node name: the nodes of the cluster the line being completed names (`-c`), else of
/// `REGBOX_CLUSTER`, else of every cluster.
pub fn nodes() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        candidates(async {
            let named = named_cluster(std::env::args().skip_while(|a| a != "--"))
                .or_else(|| std::env::var("REGBOX_CLUSTER").ok())
                .filter(|name| !name.is_empty());
            let names = match named {
                Some(name) => vec![name],
                None => cluster_names().await,
            };
            // Every cluster read back at once: a slow engine costs one round trip, not one per cluster.
            let opened =
                futures::future::join_all(names.iter().map(|n| Cluster::open(Some(n)))).await;
            opened
                .into_iter()
                .flatten()
                .flat_map(|c| {
                    c.nodes()
                        .iter()
                        .map(|n| n.name().to_string())
                        .collect::<Vec<_>>()
                })
                .collect()
        })
    })
}

/// The cluster a command line names with `-c NAME`, `--cluster NAME` or `--cluster=NAME` (the last one).
fn named_cluster(words: impl Iterator<Item = String>) -> Option<String> {
    let mut named = None;
    let mut words = words.peekable();
    while let Some(word) = words.next() {
        if word == "-c" || word == "--cluster" {
            named = words.next().or(named);
        } else if let Some(name) = word.strip_prefix("--cluster=") {
            named = Some(name.to_string());
        } else if let Some(name) = word
            .strip_prefix("-c")
            .filter(|n| !n.is_empty() && !n.starts_with('-'))
        {
            named = Some(name.to_string());
        }
    }
    named
}

async fn cluster_names() -> Vec<String> {
    lifecycle::list()
        .await
        .map(|all| all.into_iter().map(|c| c.name).collect())
        .unwrap_or_default()
}

/// Runs `ask` on a runtime of its own (completion happens before any other), within `ASK_TIMEOUT`;
/// no engine, or a slow one, completes nothing.
fn candidates(ask: impl Future<Output = Vec<String>>) -> Vec<CompletionCandidate> {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let mut names = rt
        .block_on(async { tokio::time::timeout(ASK_TIMEOUT, ask).await })
        .unwrap_or_default();
    names.sort();
    names.dedup();
    names.into_iter().map(CompletionCandidate::new).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cluster_is_read_from_any_form_of_the_flag() {
        let named = |line: &str| super::named_cluster(line.split(' ').map(String::from));
        assert_eq!(named("-- regbox -c one stop "), Some("one".into()));
        assert_eq!(named("-- regbox stop --cluster two "), Some("two".into()));
        assert_eq!(
            named("-- regbox --cluster=three stop"),
            Some("three".into())
        );
        assert_eq!(named("-- regbox -cfour stop"), Some("four".into()));
        assert_eq!(named("-- regbox stop n1"), None);
    }
}
