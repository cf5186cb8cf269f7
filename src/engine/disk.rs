//! Bounded data directories and disk faults on the engine. A node declaring `disk: {size: …}` gets a
//! data volume that is an ext4 filesystem of that size: a sparse file on a volume of its own
//! (`blueprint::disk_volume`), attached to a loop device and formatted by a throw-away container of the
//! regbox image (`agent disk-prepare`: `SYS_ADMIN`, the host's `/dev`, loop devices only), which the
//! engine then mounts as the node's `/data`. `disk --fill` writes a file into it until the engine
//! answers that no space is left; `disk --free` empties that file. When `down` removes such a volume,
//! its loop device is let go.

use std::collections::HashMap;

use crate::core::cluster::blueprint::{self, NodeLayout};
use crate::core::verb::DiskReport;
use crate::engine::cluster::Cluster;
use crate::engine::docker::{ContainerSpec, Docker, DockerError};
use crate::engine::error::{Error, Result};
use crate::engine::image;
use crate::engine::progress::Progress;

/// What bitcoind says when it stops for want of space (`AbortNode`).
pub const DISK_FULL_LOG: &str = "Disk space is too low";

/// The device cgroup rules of the throw-away container: loop devices and their control device only.
const LOOP_DEVICES: [&str; 2] = ["b 7:* rwm", "c 10:237 rwm"];

/// The throw-away container that runs `regbox agent ARGS` with loop devices at hand, the volume
/// `volume` (when given) at `/disk`.
fn disk_helper(
    image: &str,
    args: Vec<String>,
    volume: Option<&str>,
    labels: HashMap<String, String>,
) -> ContainerSpec {
    let mut cmd = vec!["agent".to_string()];
    cmd.extend(args);
    ContainerSpec {
        image: image.to_string(),
        entrypoint: vec!["/usr/bin/regbox".into()],
        cmd,
        labels,
        cap_add: vec!["SYS_ADMIN".into()],
        bind: Some(("/dev".into(), "/dev".into())),
        device_rules: LOOP_DEVICES.iter().map(|r| r.to_string()).collect(),
        volume: volume.map(|v| (v.to_string(), "/disk".to_string())),
        stop_timeout: 2,
        ..ContainerSpec::default()
    }
}

/// Runs the disk helper; its output, or an error with it.
async fn run_helper(docker: &Docker, spec: &ContainerSpec, what: &str) -> Result<String> {
    let name = format!("regbox-disk-{:08x}", rand::random::<u32>());
    match docker.run_to_end(&name, spec).await? {
        (0, out) => Ok(out),
        (code, out) => Err(Error::Disk(format!("{what}: exit {code}: {}", out.trim()))),
    }
}

impl Cluster {
    /// Makes `l`'s bounded data volume of `size` bytes, unless it exists already.
    pub(crate) async fn prepare_disk(
        &self,
        l: &NodeLayout,
        size: u64,
        progress: &Progress,
    ) -> Result<()> {
        if self.docker.volume(&l.volume).await?.is_some() {
            return Ok(());
        }
        let mut labels = l.labels.clone();
        labels.remove(blueprint::LABEL_CONFIG);
        labels.insert(blueprint::LABEL_DISK.into(), size.to_string());
        let file_volume = blueprint::disk_volume(&l.volume);
        let image =
            image::ensure_regbox_image(&self.docker, &image::regbox_binary()?, progress).await?;
        self.docker
            .create_volume(&file_volume, labels.clone(), HashMap::new())
            .await?;
        let owner = if l.as_root {
            "0:0"
        } else {
            blueprint::NODE_USER
        };
        let args = vec![
            "disk-prepare".into(),
            format!("/disk/{}", blueprint::DISK_FILE),
            size.to_string(),
            owner.to_string(),
        ];
        // The helper is the cluster's but no node's (a pass must not take it for one).
        let mut helper_labels = blueprint::cluster_labels(self.name());
        helper_labels.insert("regbox.probe".into(), "1".into());
        let helper = disk_helper(&image, args, Some(&file_volume), helper_labels);
        let out = run_helper(&self.docker, &helper, "prepare the bounded data directory").await?;
        let device = out.lines().last().unwrap_or_default().trim().to_string();
        let options = HashMap::from([
            ("type".to_string(), "ext4".to_string()),
            ("device".to_string(), device.clone()),
        ]);
        if let Err(e) = self.docker.create_volume(&l.volume, labels, options).await {
            let _ = release(&self.docker, &device).await;
            return Err(e.into());
        }
        tracing::info!("{}: data on {device}, {size} bytes", l.name);
        Ok(())
    }

    /// Whether bitcoind of `l`'s node (stopped) stopped for want of space, as its last lines say.
    pub(crate) async fn stopped_for_space(&self, l: &NodeLayout) -> bool {
        use futures::StreamExt;
        let lines: Vec<_> = self
            .docker
            .logs(&l.container, Some(20), false)
            .collect()
            .await;
        lines
            .iter()
            .any(|l| l.as_ref().is_ok_and(|l| l.contains(DISK_FULL_LOG)))
    }

    /// `disk NODE --fill` or `--free`.
    pub(crate) async fn disk_locked(&self, node: &str, fill: bool) -> Result<DiskReport> {
        let n = self.node(node)?;
        let l = &n.layout;
        let Some(size) = l.disk else {
            return Err(Error::BadRequest(format!(
                "node {} has no bounded data directory (declare `disk: {{size: 300m}}` on it)",
                l.name
            )));
        };
        let path = blueprint::DATADIR;
        // A full disk stops bitcoind: held, so that the operator leaves the node down until the disk
        // is freed instead of starting it into the same wall.
        if fill {
            self.hold(l.index, "disk").await?;
        }
        if fill {
            // More than the whole filesystem: the engine writes until no space is left, then fails.
            let len = (size.div_ceil(1 << 20) + 1) << 20;
            match self
                .docker
                .write_zeros(&l.container, path, blueprint::FILL_FILE, len)
                .await
            {
                Err(e) if no_space(&e) => {}
                Err(e) => return Err(e.into()),
                Ok(()) => {
                    return Err(Error::Disk(format!(
                        "{}: the filler fitted in the data directory, which is not full",
                        l.name
                    )))
                }
            }
        } else {
            self.docker
                .write_file(&l.container, path, blueprint::FILL_FILE, b"")
                .await?;
            self.release(l.index).await?;
        }
        Ok(DiskReport {
            node: l.name.clone(),
            full: fill,
        })
    }
}

fn no_space(e: &DockerError) -> bool {
    crate::core::names::error_chain(e).contains("no space left on device")
}

/// Lets loop device `device` go (the volume on it is gone): a throw-away container.
pub(crate) async fn release(docker: &Docker, device: &str) -> Result<()> {
    let image =
        image::ensure_regbox_image(docker, &image::regbox_binary()?, &Progress::default()).await?;
    let labels = HashMap::from([("regbox.probe".to_string(), "1".to_string())]);
    let helper = disk_helper(
        &image,
        vec!["disk-release".into(), device.into()],
        None,
        labels,
    );
    run_helper(docker, &helper, "let the loop device go").await?;
    Ok(())
}

/// The loop device a bounded data volume `volume` is on (None: not one).
pub(crate) async fn device_of(docker: &Docker, volume: &str) -> Option<String> {
    let (options, labels) = docker.volume(volume).await.ok()??;
    labels.get(blueprint::LABEL_DISK)?;
    options
        .get("device")
        .filter(|d| d.starts_with("/dev/loop"))
        .cloned()
}
