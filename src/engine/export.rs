//! A cluster written for another tool: its manifest made exact on this engine (every image resolved,
//! built if it is regbox's own; a subnet free here chosen) and rendered by `core::compose`.

use std::collections::BTreeMap;

use crate::core::cluster::compose;
use crate::core::cluster::manifest::ClusterSpec;
use crate::engine::docker::Docker;
use crate::engine::error::Result;
use crate::engine::image;
use crate::engine::progress::Progress;
use crate::engine::reconcile::free_subnet;

/// `spec` as a docker-compose file that runs on this engine.
pub async fn compose_file(mut spec: ClusterSpec, progress: &Progress) -> Result<String> {
    if !spec.hosts.is_empty() {
        tracing::warn!("the compose file runs every node on one engine: `hosts:` is left out");
    }
    let docker = Docker::connect().await?;
    let mut resolved: BTreeMap<String, String> = BTreeMap::new();
    for node in &mut spec.nodes {
        if !resolved.contains_key(&node.image) {
            let exact = image::resolve_on(&docker, &node.image, progress).await?;
            resolved.insert(node.image.clone(), exact);
        }
        node.image = resolved[&node.image].clone();
    }
    let subnet = free_subnet(&docker, &format!("{}-compose", spec.name)).await?;
    Ok(compose::render(&spec, subnet))
}
