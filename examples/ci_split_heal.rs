//! A CI-style test written with regbox's library: bring up a 4-node ring, split it in halves, mine on
//! both sides, heal, and check that everyone reorganised onto the side with more work.
//!
//! Run it with `cargo run --example ci_split_heal` (needs a Docker engine).

use std::time::Duration;

use regbox::partition::{CutMode, PartitionKind};
use regbox::{Cluster, UpOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let spec = regbox::manifest::parse("name: example-ci\nnodes: 4\ntopology: ring\n", "inline")?;
    // Dropping `cluster` (say, after a failed assertion) tears it down; `down` does it explicitly.
    let mut cluster = Cluster::up(spec, &UpOptions::default()).await?;
    let wait = Duration::from_secs(30);

    cluster.mine("n0", 101).await?;
    cluster.sync_blocks(wait).await?;

    let split = cluster
        .partition(&PartitionKind::Halves, CutMode::Drop, wait)
        .await?;
    println!(
        "split: {}",
        split
            .segments
            .iter()
            .map(|s| s.members.join(","))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    cluster.mine("n0", 3).await?;
    let heavier = cluster.mine("n2", 5).await?;
    let n0 = cluster.node("n0")?.rpc.get_best_block_hash().await?;
    assert_ne!(
        &n0,
        heavier.last().unwrap(),
        "the halves must not see each other's blocks"
    );

    let healed = cluster.heal_and_sync(wait).await?;
    assert_eq!(&healed.tip, heavier.last().unwrap());
    for node in &healed.nodes {
        println!("{}: reorganised {} block(s)", node.node, node.reorg_depth);
    }
    cluster.down(&Default::default()).await?;
    Ok(())
}
