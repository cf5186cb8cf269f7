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
use crate::engine::docker::containers::{marker_spec, MARKER_USER};
use crate::engine::docker::error::{absent_is, DockerError, Result};
use crate::engine::docker::routing::{Engine, Engines};
use crate::engine::docker::types::{ContainerSpec, ImageInfo};

/// How long a program run once (`bitcoind -version` of `image ls`) may take before it is killed: an
/// image's program that never answers must not hold the command forever.
const RUN_ONCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How much of a probe's output `run_once` reads at most: only its first line (the version) is
/// wanted, and an image's program may print without end within its time.
const PROBE_OUTPUT_LIMIT: usize = 64 << 10;

/// How long the removal of a probe container whose run was dropped half-way may take.
const PROBE_REMOVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// How long a probe dropped while its create request was under way is looked for, to be removed.
const PROBE_CREATE_LANDS: std::time::Duration = std::time::Duration::from_secs(5);

/// The container `run_once` runs `command` of `image` in: the lock marker's locked-down recipe (no
/// network, every capability dropped, no privilege gain, a read-only root, memory, process and CPU
/// limits), labelled `regbox.probe`, as `user` (None: the image's own user, still with every
/// capability dropped and no privilege gain).
pub(crate) fn probe_spec(image: &str, command: &[&str], user: Option<&str>) -> ContainerSpec {
    let labels = HashMap::from([("regbox.probe".to_string(), "1".to_string())]);
    ContainerSpec {
        user: user.map(str::to_string),
        ..marker_spec(image, command, labels)
    }
}

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
        // As nobody first. A program only the image's own user may run (root's, say) is run once more
        // as that user, still without any capability; if that fails too, the first run's output tells.
        let first = self
            .run_probe(&probe_spec(image, command, Some(MARKER_USER)))
            .await?;
        if first.0 == 0 {
            return Ok(first.1);
        }
        match self.run_probe(&probe_spec(image, command, None)).await? {
            (0, text) => Ok(text),
            _ => Ok(first.1),
        }
    }

    async fn run_to_end(&self, name: &str, spec: &ContainerSpec) -> Result<(i64, String)> {
        self.run_probe_named(name, spec).await
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

impl Engines {
    /// Runs a container made from `spec` to its end (at most [`RUN_ONCE_TIMEOUT`]), removes it and
    /// returns its exit code and what it printed (at most [`PROBE_OUTPUT_LIMIT`] bytes of it). Dropped
    /// half-way (Ctrl-C, a caller's timeout), it still removes the container: see [`ProbeGuard`].
    async fn run_probe(&self, spec: &ContainerSpec) -> Result<(i64, String)> {
        let name = format!("regbox-probe-{:08x}", rand::random::<u32>());
        self.run_probe_named(&name, spec).await
    }

    /// [`Engines::run_probe`] of a container named `name`.
    async fn run_probe_named(&self, name: &str, spec: &ContainerSpec) -> Result<(i64, String)> {
        let name = name.to_string();
        // Armed before the create request goes out: a container made by a request whose answer was
        // never read is removed by its name.
        let mut guard = ProbeGuard {
            api: self.on(&name).clone(),
            name: name.clone(),
            armed: true,
            created: false,
        };
        let result = async {
            let id = self.create(&name, spec).await?;
            guard.created = true;
            self.start(&id).await?;
            let opts = WaitContainerOptionsBuilder::new()
                .condition("not-running")
                .build();
            let mut waits = self.api.wait_container(&id, Some(opts));
            let code = match tokio::time::timeout(RUN_ONCE_TIMEOUT, waits.next()).await {
                Err(_) => return Err(timed_out(&name)),
                Ok(Some(Ok(r))) => r.status_code,
                // A non-zero exit is reported as an error carrying the code.
                Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError {
                    code, ..
                }))) => code,
                Ok(_) => -1,
            };
            let text = bounded(self.logs(&id, None, false), PROBE_OUTPUT_LIMIT).await?;
            Ok((code, text))
        }
        .await;
        if self.remove_container(&name).await.is_ok() {
            guard.armed = false;
        }
        result
    }
}

/// The error of a probe that did not end within [`RUN_ONCE_TIMEOUT`]; its text says that bound.
fn timed_out(name: &str) -> DockerError {
    static ACTION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let action = ACTION
        .get_or_init(|| format!("wait ({} s) for the end of", RUN_ONCE_TIMEOUT.as_secs_f64()));
    DockerError::Container {
        action,
        name: name.to_string(),
        source: bollard::errors::Error::RequestTimeoutError,
    }
}

/// The text of `chunks` up to `limit` bytes: reading stops there, and the rest is never asked for.
async fn bounded(
    mut chunks: futures::stream::BoxStream<'_, Result<String>>,
    limit: usize,
) -> Result<String> {
    let mut text = String::new();
    while let Some(chunk) = chunks.next().await {
        text.push_str(&chunk?);
        if text.len() >= limit {
            let mut end = limit;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            break;
        }
    }
    Ok(text)
}

/// Removes a probe container (by name, forced, with its anonymous volumes) when dropped while armed:
/// `run_probe` disarms it once it has removed the container itself, so only a run dropped half-way
/// (Ctrl-C, a caller's timeout) — or one whose own removal failed — leaves the removal to it.
struct ProbeGuard {
    api: bollard::Docker,
    name: String,
    armed: bool,
    /// The create request was answered. Until then a removal that finds nothing may have overtaken
    /// a create still under way in the engine, which would leave the container behind: the guard
    /// then looks again until the container shows up (and removes it) or the bound passes.
    created: bool,
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // No runtime: nothing can reach the engine any more.
            return;
        };
        let (api, name) = (self.api.clone(), std::mem::take(&mut self.name));
        let in_flight = !self.created;
        let remove = async move {
            let opts = bollard::query_parameters::RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build();
            let attempts = async {
                loop {
                    match api.remove_container(&name, Some(opts.clone())).await {
                        Err(bollard::errors::Error::DockerResponseServerError {
                            status_code: 404,
                            ..
                        }) if in_flight => {
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await
                        }
                        Err(bollard::errors::Error::DockerResponseServerError {
                            status_code: 404,
                            ..
                        }) => return Ok(()),
                        done => return done,
                    }
                }
            };
            // A create under way lands within moments; one that never reached the engine never
            // does, and is not waited for long.
            let bound = if in_flight {
                PROBE_CREATE_LANDS
            } else {
                PROBE_REMOVE_TIMEOUT
            };
            match tokio::time::timeout(bound, attempts).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("could not remove probe container {name}: {e}"),
                // Not made within the bound (a create that never reached the engine): nothing left.
                Err(_) if in_flight => {}
                Err(_) => tracing::warn!(
                    "could not remove probe container {name} within {} s",
                    PROBE_REMOVE_TIMEOUT.as_secs()
                ),
            }
        };
        match handle.runtime_flavor() {
            // Done before the drop returns, so that a command ending right after (Ctrl-C) cannot
            // cut it short.
            tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| handle.block_on(remove))
            }
            // A single-threaded runtime cannot wait here: the removal runs as a task of it.
            _ => {
                handle.spawn(remove);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_is_run_once_locked_down_and_labelled_as_a_probe() {
        let spec = probe_spec(
            "some/image:tag",
            &["bitcoind", "-version"],
            Some(MARKER_USER),
        );
        assert_eq!(spec.image, "some/image:tag");
        assert_eq!(spec.entrypoint, ["bitcoind", "-version"]);
        assert!(spec.cmd.is_empty());
        assert_eq!(spec.user.as_deref(), Some(MARKER_USER));
        assert_eq!(
            spec.labels,
            HashMap::from([("regbox.probe".to_string(), "1".to_string())])
        );
        // No network, no capability kept, no mount, nothing published, limits: the lock marker's.
        assert!(spec.network.is_none());
        assert!(spec.cap_add.is_empty() && !spec.host_pid);
        assert!(spec.tmpfs.is_empty() && spec.volume.is_none() && spec.publish.is_none());
        assert!(!spec.restart);
        let marker = marker_spec("some/image:tag", &[], HashMap::new());
        assert!(spec.memory.is_some() && spec.memory == marker.memory);
        assert!(spec.pids_limit.is_some() && spec.pids_limit == marker.pids_limit);
        assert!(spec.nano_cpus.is_some() && spec.nano_cpus == marker.nano_cpus);
        // The second run, for an image whose program only its own user may run: that user, and
        // otherwise the same.
        let own = probe_spec("some/image:tag", &["bitcoind", "-version"], None);
        assert_eq!(own.user, None);
        assert!(own.network.is_none() && own.cap_add.is_empty());
        assert_eq!((own.memory, own.pids_limit), (spec.memory, spec.pids_limit));
    }

    #[tokio::test]
    async fn a_probe_that_prints_without_end_is_read_only_up_to_the_bound() {
        // An endless output: reading stops at the bound (this would never end otherwise).
        let endless = futures::stream::repeat_with(|| Ok("é".repeat(1000))).boxed();
        let text = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            bounded(endless, PROBE_OUTPUT_LIMIT),
        )
        .await
        .expect("reading stops at the bound")
        .unwrap();
        // Cut at a character boundary at or below the bound ("é" is two bytes).
        assert!(text.len() <= PROBE_OUTPUT_LIMIT && text.len() + 2 > PROBE_OUTPUT_LIMIT);
        assert!(text.chars().all(|c| c == 'é'));
        // What ends sooner is read whole.
        let short =
            futures::stream::iter(vec![Ok("Bitcoin Core version v1\n".to_string())]).boxed();
        assert_eq!(
            bounded(short, PROBE_OUTPUT_LIMIT).await.unwrap(),
            "Bitcoin Core version v1\n"
        );
    }

    #[test]
    fn a_probe_that_never_ends_is_said_to_have_passed_the_bound_it_had() {
        let said = timed_out("regbox-probe-1").to_string();
        let secs = format!("({} s)", RUN_ONCE_TIMEOUT.as_secs());
        assert!(said.contains(&secs), "{said}");
        assert!(said.contains("regbox-probe-1"), "{said}");
    }
}
