//! Images on the real engines: looked up, named, listed, imported, run once, and copied between the
//! engines of a swarm without a registry (`docker save | docker load`: the id is kept, so equal ids
//! mean the same image).

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::query_parameters::{
    CreateImageOptionsBuilder, ListImagesOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures::{StreamExt, TryStreamExt};

use crate::engine::docker::api::{Containers, Images};
use crate::engine::docker::error::{absent_is, DockerError, Result};
use crate::engine::docker::routing::{Engine, Engines};
use crate::engine::docker::types::ImageInfo;

#[async_trait]
impl Images for Engines {
    async fn image(&self, name: &str) -> Result<Option<(String, HashMap<String, String>)>> {
        let found = self.api.inspect_image(name).await.map(|i| {
            let labels = i.config.and_then(|c| c.labels).unwrap_or_default();
            Some((i.id.unwrap_or_default(), labels))
        });
        absent_is(found, None, |source| DockerError::InspectImage {
            name: name.into(),
            source,
        })
    }

    async fn spread_image(&self, name: &str) -> Result<Vec<String>> {
        let Some(fleet) = &self.fleet else {
            return Ok(Vec::new());
        };
        let first = &fleet.engines[0];
        let want = image_id_on(first, name).await?;
        let others = &fleet.engines[1..];
        let ids =
            futures::future::try_join_all(others.iter().map(|e| image_id_on(e, name))).await?;
        let lacking: Vec<&Engine> = others
            .iter()
            .zip(ids)
            .filter(|(_, id)| *id != want)
            .map(|(e, _)| e)
            .collect();
        if lacking.is_empty() {
            return Ok(Vec::new());
        }
        let parts: Vec<bytes::Bytes> =
            self.api
                .export_image(name)
                .try_collect()
                .await
                .map_err(|source| DockerError::CopyImage {
                    name: name.into(),
                    host: first.name.clone(),
                    source,
                })?;
        let tar: bytes::Bytes = parts.concat().into();
        futures::future::try_join_all(lacking.iter().map(|engine| {
            let opts = bollard::query_parameters::ImportImageOptionsBuilder::new()
                .quiet(true)
                .build();
            let tar = tar.clone();
            async move {
                engine
                    .api
                    .import_image(opts, bollard::body_full(tar), None)
                    .try_collect::<Vec<_>>()
                    .await
                    .map_err(|source| DockerError::CopyImage {
                        name: name.into(),
                        host: engine.name.clone(),
                        source,
                    })
            }
        }))
        .await?;
        Ok(lacking.iter().map(|e| e.name.clone()).collect())
    }

    async fn tag(&self, image: &str, repo: &str, tag: &str) -> Result<()> {
        let opts = bollard::query_parameters::TagImageOptionsBuilder::new()
            .repo(repo)
            .tag(tag)
            .build();
        self.api
            .tag_image(image, Some(opts))
            .await
            .map_err(|source| DockerError::Container {
                action: "tag the image of",
                name: image.into(),
                source,
            })
    }

    async fn images_of(&self, repo: &str) -> Result<Vec<ImageInfo>> {
        let filters = HashMap::from([("reference", vec![repo.to_string()])]);
        let opts = ListImagesOptionsBuilder::new().filters(&filters).build();
        let list = self
            .api
            .list_images(Some(opts))
            .await
            .map_err(|source| DockerError::List {
                what: "images",
                source,
            })?;
        Ok(list
            .into_iter()
            .flat_map(|i| {
                let (id, created, labels) = (i.id, i.created, i.labels);
                i.repo_tags
                    .into_iter()
                    .filter(|t| t.starts_with(&format!("{repo}:")))
                    .map(move |name| ImageInfo {
                        name,
                        id: id.clone(),
                        created,
                        labels: labels.clone(),
                    })
            })
            .collect())
    }

    async fn run_once(&self, image: &str, command: &[&str]) -> Result<String> {
        let name = format!("regbox-probe-{:08x}", rand::random::<u32>());
        let id = self
            .create_marker(
                &name,
                image,
                command,
                HashMap::from([("regbox.probe".to_string(), "1".to_string())]),
            )
            .await?;
        let result = async {
            self.start(&id).await?;
            let opts = WaitContainerOptionsBuilder::new()
                .condition("not-running")
                .build();
            let _ = self.api.wait_container(&id, Some(opts)).next().await;
            let lines: Vec<String> = self.logs(&id, None, false).try_collect().await?;
            Ok(lines.concat())
        }
        .await;
        let _ = self.remove_container(&id).await;
        result
    }

    async fn remove_unused_image(&self, id: &str) {
        let removed = self
            .api
            .remove_image(
                id,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
        if let Err(e) = removed {
            tracing::debug!("kept image {id}: {e}");
        }
    }

    async fn import_image(
        &self,
        rootfs: bytes::Bytes,
        repo: &str,
        tag: &str,
        changes: Vec<String>,
    ) -> Result<()> {
        let opts = CreateImageOptionsBuilder::new()
            .from_src("-")
            .repo(repo)
            .tag(tag)
            .changes(changes)
            .build();
        self.api
            .create_image(Some(opts), Some(bollard::body_full(rootfs)), None)
            .try_collect::<Vec<_>>()
            .await
            .map(|_| ())
            .map_err(|source| DockerError::ImportImage {
                name: format!("{repo}:{tag}"),
                source,
            })
    }
}

/// The id of image `name` on one engine of a swarm (None: it has none of that name).
async fn image_id_on(engine: &Engine, name: &str) -> Result<Option<String>> {
    let found = engine.api.inspect_image(name).await.map(|i| i.id);
    absent_is(found, None, |source| DockerError::CopyImage {
        name: name.into(),
        host: engine.name.clone(),
        source,
    })
}
