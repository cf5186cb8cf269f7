//! Containers on the real engines: each call goes to the engine its container lives on; lists merge
//! every engine's.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerSummaryStateEnum, ContainerUpdateBody, HostConfig,
    HostConfigLogConfig, Mount, MountType, MountVolumeOptions, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::core::cluster::plan::State;
use crate::engine::docker::api::{Containers, Routing};
use crate::engine::docker::error::{absent_is, container_err, DockerError, Result};
use crate::engine::docker::networks::static_endpoint;
use crate::engine::docker::routing::{label_filter, Engines};
use crate::engine::docker::types::{ContainerInfo, ContainerSpec, Endpoint, MarkerInfo, Running};

/// The most of a file `read_file` reads.
const MAX_FILE_READ: usize = 64 << 10;

#[async_trait]
impl Containers for Engines {
    async fn create(&self, name: &str, spec: &ContainerSpec) -> Result<String> {
        self.create_body(name, body(spec)).await
    }

    async fn create_marker(
        &self,
        name: &str,
        image: &str,
        entrypoint: &[&str],
        labels: HashMap<String, String>,
    ) -> Result<String> {
        // Markers live on the first engine, where a cluster is looked for.
        if let Some(f) = &self.fleet {
            f.at.lock().unwrap().insert(name.to_string(), 0);
        }
        self.create_body(name, body(&marker_spec(image, entrypoint, labels)))
            .await
    }

    async fn inspect_marker(&self, name: &str) -> Result<Option<MarkerInfo>> {
        let found = self.on(name).inspect_container(name, None).await.map(|c| {
            Some(MarkerInfo {
                id: c.id.unwrap_or_default(),
                labels: c.config.and_then(|c| c.labels).unwrap_or_default(),
                started_at: c.state.and_then(|s| s.started_at).unwrap_or_default(),
            })
        });
        absent_is(found, None, container_err("inspect", name))
    }

    async fn labeled_containers(&self, label: &str) -> Result<Vec<ContainerInfo>> {
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&label_filter(label))
            .build();
        let lists = self
            .each_engine(|host, api| {
                let opts = opts.clone();
                async move {
                    let list = api.list_containers(Some(opts)).await.map_err(|source| {
                        DockerError::List {
                            what: "containers",
                            source,
                        }
                    })?;
                    Ok(list.into_iter().map(move |c| (host, c)))
                }
            })
            .await?;
        let found: Vec<ContainerInfo> = lists
            .into_iter()
            .flatten()
            .map(|(host, c)| ContainerInfo {
                host: host.to_string(),
                ports: c
                    .ports
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|p| Some((p.private_port, p.public_port?)))
                    .collect(),
                id: c.id.unwrap_or_default(),
                image_id: c.image_id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .into(),
                image: c.image.unwrap_or_default(),
                state: match c.state {
                    Some(ContainerSummaryStateEnum::CREATED) => State::Created,
                    Some(ContainerSummaryStateEnum::RUNNING) => State::Running,
                    Some(ContainerSummaryStateEnum::PAUSED) => State::Paused,
                    Some(ContainerSummaryStateEnum::RESTARTING) => State::Restarting,
                    Some(ContainerSummaryStateEnum::EXITED) => State::Exited,
                    Some(ContainerSummaryStateEnum::REMOVING) => State::Removing,
                    Some(ContainerSummaryStateEnum::DEAD) => State::Dead,
                    _ => State::Unknown,
                },
                labels: c.labels.unwrap_or_default(),
                networks: c
                    .network_settings
                    .and_then(|s| s.networks)
                    .unwrap_or_default()
                    .into_values()
                    .map(|ep| Endpoint {
                        network: ep.network_id.unwrap_or_default(),
                        ip: ep.ip_address.and_then(|ip| ip.parse().ok()),
                    })
                    .collect(),
            })
            .collect();
        // Callers act on a container by name or by id.
        for c in &found {
            self.place(&c.name, &c.host);
            self.place(&c.id, &c.host);
        }
        Ok(found)
    }

    async fn pid(&self, name: &str) -> Result<Option<Running>> {
        let pid = self.on(name).inspect_container(name, None).await.map(|c| {
            let pid = c
                .state
                .filter(|s| s.running == Some(true))
                .and_then(|s| s.pid)
                .filter(|&p| p > 0)
                .map(|p| p as u32);
            let labels = c.config.and_then(|c| c.labels).unwrap_or_default();
            pid.zip(c.id).map(|(pid, id)| Running { pid, id, labels })
        });
        absent_is(pid, None, container_err("inspect", name))
    }

    async fn exec(&self, name: &str, cmd: Vec<String>) -> Result<(i64, String)> {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        let err = |source| DockerError::Container {
            action: "exec in",
            name: name.into(),
            source,
        };
        let api = self.on(name);
        let exec = api
            .create_exec(
                name,
                CreateExecOptions {
                    cmd: Some(cmd),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(&err)?;
        let (mut out, mut errs) = (String::new(), String::new());
        if let StartExecResults::Attached { mut output, .. } =
            api.start_exec(&exec.id, None).await.map_err(&err)?
        {
            while let Some(chunk) = output.next().await {
                if out.len() + errs.len() > MAX_EXEC_OUTPUT {
                    // Dropping the stream detaches; the command itself is the caller's to bound.
                    return Err(DockerError::ExecOutput {
                        name: name.into(),
                        limit: MAX_EXEC_OUTPUT,
                    });
                }
                match chunk.map_err(&err)? {
                    bollard::container::LogOutput::StdOut { message } => {
                        out.push_str(&String::from_utf8_lossy(&message))
                    }
                    other => errs.push_str(&String::from_utf8_lossy(&other.into_bytes())),
                }
            }
        }
        let code = api
            .inspect_exec(&exec.id)
            .await
            .map_err(&err)?
            .exit_code
            .unwrap_or(-1);
        if code != 0 {
            out.push_str(&errs);
        }
        Ok((code, out))
    }

    async fn write_files(&self, name: &str, dir: &str, files: &[(&str, &[u8])]) -> Result<()> {
        let mut archive = tar::Builder::new(Vec::new());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for (file, contents) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(contents.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(now);
            header.set_cksum();
            archive
                .append_data(&mut header, file, *contents)
                .expect("a tar archive in memory is written");
        }
        let tar = archive
            .into_inner()
            .expect("a tar archive in memory is written");
        let options = UploadToContainerOptionsBuilder::default().path(dir).build();
        self.on(name)
            .upload_to_container(name, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(container_err("write a file into", name))
    }

    async fn write_zeros(&self, name: &str, dir: &str, file: &str, len: u64) -> Result<()> {
        const MIB: u64 = 1 << 20;
        let mut header = tar::Header::new_gnu();
        header.set_path(file).map_err(|e| DockerError::Container {
            action: "write a file into",
            name: name.into(),
            source: bollard::errors::Error::IOError { err: e },
        })?;
        header.set_size(len);
        header.set_mode(0o644);
        header.set_cksum();
        let zeros = bytes::Bytes::from(vec![0u8; MIB as usize]);
        // The header, the file's MiBs (a multiple of the 512-byte block), then the end of the archive.
        let parts = std::iter::once(bytes::Bytes::copy_from_slice(header.as_bytes()))
            .chain(std::iter::repeat_n(zeros, len.div_ceil(MIB) as usize))
            .chain(std::iter::once(bytes::Bytes::from(vec![0u8; 1024])));
        let body = futures::stream::iter(parts.map(Ok::<_, std::io::Error>));
        let options = UploadToContainerOptionsBuilder::default().path(dir).build();
        self.on(name)
            .upload_to_container(name, Some(options), bollard::body_try_stream(body))
            .await
            .map_err(container_err("write a file into", name))
    }

    async fn read_file(&self, name: &str, path: &str) -> Result<Option<Vec<u8>>> {
        // The header and the first 64 KiB are all that is read.
        let Some(tar) = download(self, name, path, MAX_FILE_READ + 1024).await? else {
            return Ok(None);
        };
        let mut archive = tar::Archive::new(tar.as_slice());
        let contents = archive.entries().ok().and_then(|mut entries| {
            use std::io::Read;
            let entry = entries.next()?.ok()?;
            let mut out = Vec::new();
            entry
                .take(MAX_FILE_READ as u64)
                .read_to_end(&mut out)
                .ok()?;
            Some(out)
        });
        Ok(contents)
    }

    async fn is_running(&self, name: &str) -> Result<bool> {
        let state = self
            .on(name)
            .inspect_container(name, None)
            .await
            .map(|c| c.state.and_then(|s| s.running) == Some(true));
        absent_is(state, false, container_err("inspect", name))
    }

    async fn start(&self, name: &str) -> Result<()> {
        self.on(name)
            .start_container(name, None)
            .await
            .map_err(container_err("start", name))
    }

    async fn stop(&self, name: &str, grace: Duration) -> Result<()> {
        let opts = StopContainerOptionsBuilder::new()
            .t(grace.as_secs() as i32)
            .build();
        self.on(name)
            .stop_container(name, Some(opts))
            .await
            .map_err(container_err("stop", name))
    }

    async fn kill(&self, name: &str) -> Result<()> {
        self.signal(name, "KILL").await
    }

    async fn signal(&self, name: &str, signal: &str) -> Result<()> {
        let opts = KillContainerOptionsBuilder::new().signal(signal).build();
        self.on(name)
            .kill_container(name, Some(opts))
            .await
            .map_err(container_err("kill", name))
    }

    async fn read_tree(&self, name: &str, path: &str) -> Result<Option<Vec<u8>>> {
        download(self, name, path, usize::MAX).await
    }

    async fn write_tree(&self, name: &str, dir: &str, tar: Vec<u8>) -> Result<()> {
        let options = UploadToContainerOptionsBuilder::default().path(dir).build();
        self.on(name)
            .upload_to_container(name, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(container_err("write a directory into", name))
    }

    async fn pause(&self, name: &str) -> Result<()> {
        self.on(name)
            .pause_container(name)
            .await
            .map_err(container_err("pause", name))
    }

    async fn unpause(&self, name: &str) -> Result<()> {
        self.on(name)
            .unpause_container(name)
            .await
            .map_err(container_err("unpause", name))
    }

    async fn update_limits(&self, name: &str, nano_cpus: u64, memory: u64) -> Result<()> {
        let body = ContainerUpdateBody {
            nano_cpus: Some(nano_cpus as i64),
            memory: Some(memory as i64),
            // Equal to the memory: no swap, as at creation (`body`).
            memory_swap: Some(memory as i64),
            ..Default::default()
        };
        self.on(name)
            .update_container(name, body)
            .await
            .map_err(container_err("update", name))
    }

    async fn engine_cpus(&self, name: &str) -> Result<u64> {
        let info = self
            .on(name)
            .info()
            .await
            .map_err(|source| DockerError::List {
                what: "the engine's CPUs",
                source,
            })?;
        Ok(info.ncpu.and_then(|n| u64::try_from(n).ok()).unwrap_or(1))
    }

    async fn remove_container(&self, name: &str) -> Result<()> {
        self.kill_and_wait(name).await?;
        let opts = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        let removed = self.on(name).remove_container(name, Some(opts)).await;
        absent_is(removed, (), container_err("remove", name))
    }

    async fn logs_since(&self, name: &str, since: i32) -> Result<String> {
        let opts = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .since(since)
            .build();
        let chunks: Vec<String> = self
            .on(name)
            .logs(name, Some(opts))
            .map_ok(|out| String::from_utf8_lossy(&out.into_bytes()).into_owned())
            .try_collect()
            .await
            .map_err(|source| DockerError::Logs {
                name: name.to_string(),
                source,
            })?;
        Ok(chunks.concat())
    }

    fn logs(
        &self,
        name: &str,
        tail: Option<usize>,
        follow: bool,
    ) -> BoxStream<'static, Result<String>> {
        let tail = tail.map_or("all".to_string(), |n| n.to_string());
        let opts = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail)
            .build();
        let name = name.to_string();
        self.on(&name)
            .logs(&name, Some(opts))
            .map(move |item| {
                item.map(|out| String::from_utf8_lossy(&out.into_bytes()).into_owned())
                    .map_err(|source| DockerError::Logs {
                        name: name.clone(),
                        source,
                    })
            })
            .boxed()
    }
}

impl Engines {
    /// Creates container `name` on its engine; returns its id.
    async fn create_body(&self, name: &str, body: ContainerCreateBody) -> Result<String> {
        let opts = CreateContainerOptionsBuilder::new().name(name).build();
        self.on(name)
            .create_container(Some(opts), body)
            .await
            .map(|r| r.id)
            .map_err(|source| DockerError::CreateContainer {
                name: name.into(),
                source,
            })
    }

    /// Kills a container and waits until the engine has finished with its exit (network release
    /// included); a container that is not running, or is gone, is left as it is.
    async fn kill_and_wait(&self, name: &str) -> Result<()> {
        let opts = KillContainerOptionsBuilder::new().signal("KILL").build();
        if self
            .on(name)
            .kill_container(name, Some(opts))
            .await
            .is_err()
        {
            return Ok(()); // not running (409), gone (404) or paused: removal handles those
        }
        let opts = WaitContainerOptionsBuilder::new()
            .condition("not-running")
            .build();
        let mut waits = self.on(name).wait_container(name, Some(opts));
        match waits.next().await {
            // A killed container exits non-zero, which bollard reports as an error; both mean it stopped.
            None | Some(Ok(_)) | Some(Err(BollardError::DockerContainerWaitError { .. })) => Ok(()),
            Some(Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            })) => Ok(()),
            Some(Err(source)) => Err(DockerError::Container {
                action: "wait for",
                name: name.into(),
                source,
            }),
        }
    }
}

/// The user a marker runs as: `nobody`, by number (an image need not list it), whatever user the image
/// names — a cluster may run any image, and a custom one would otherwise run its marker as root. (An
/// `image ls` probe whose program nobody cannot run tries once more as the image's own user, still
/// locked down in every other way: see `images::probe_spec`.)
pub(crate) const MARKER_USER: &str = "65534:65534";
/// A marker's memory limit: `bitcoind -version` needs a few MiB.
/// The most output of one command run in a container (`exec`) that is read: the agent's replies, the
/// largest, are bounded inside it at 64 MiB too.
const MAX_EXEC_OUTPUT: usize = 64 << 20;

const MARKER_MEMORY: u64 = 32 << 20;
/// A marker's process limit: one program and the init that reaps it.
const MARKER_PIDS: i64 = 16;
/// A marker's CPU limit: a tenth of a CPU (a lock's heartbeat starts it every few seconds).
const MARKER_NANO_CPUS: u64 = 100_000_000;
/// What the engine keeps of a marker's output: a version line is all a probe reads, and a program that
/// prints without end must not fill the engine's disk while it runs.
const MARKER_LOG: &str = "1m";

/// A marker (a lock, a cluster's record, a probe of an image) as a container spec. It may be started
/// (the lock's heartbeat, an image probe run it), so it gets the nodes' hardening — every capability
/// dropped, no privilege gain, a read-only root — and more: no network at all, an unprivileged user,
/// small memory, process and CPU limits, nothing writable.
pub(crate) fn marker_spec(
    image: &str,
    entrypoint: &[&str],
    labels: HashMap<String, String>,
) -> ContainerSpec {
    ContainerSpec {
        image: image.to_string(),
        entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
        user: Some(MARKER_USER.into()),
        labels,
        network: None,
        memory: Some(MARKER_MEMORY),
        nano_cpus: Some(MARKER_NANO_CPUS),
        pids_limit: Some(MARKER_PIDS),
        log_max_size: Some(MARKER_LOG.into()),
        ..ContainerSpec::default()
    }
}

/// A container spec as the engine's create body: locked down (every capability dropped but the ones
/// kept, no privilege gain, a read-only root with only the mounts writable).
/// A path of a container (running or not) as the engine's tar stream, at most its first `limit`
/// bytes (the chunks that fit); None when the path is not there.
async fn download(
    engines: &Engines,
    name: &str,
    path: &str,
    limit: usize,
) -> Result<Option<Vec<u8>>> {
    let options = DownloadFromContainerOptionsBuilder::default()
        .path(path)
        .build();
    let mut stream = engines
        .on(name)
        .download_from_container(name, Some(options));
    let mut tar = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) if tar.len().saturating_add(bytes.len()) <= limit => {
                tar.extend_from_slice(&bytes)
            }
            Ok(_) => break,
            Err(e) => return absent_is(Err(e), None, container_err("read from", name)),
        }
    }
    Ok(Some(tar))
}

fn body(spec: &ContainerSpec) -> ContainerCreateBody {
    let network_mode = match &spec.network {
        Some((net, _)) => net.id.clone(),
        None => "none".into(),
    };
    let exposed = spec.publish.map(|(_, p)| format!("{p}/tcp"));
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: Some(spec.entrypoint.clone()),
        cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.clone()),
        env: (!spec.env.is_empty()).then(|| spec.env.clone()),
        user: spec.user.clone(),
        labels: Some(spec.labels.clone()),
        stop_timeout: Some(spec.stop_timeout),
        exposed_ports: exposed.clone().map(|e| vec![e]),
        host_config: Some(HostConfig {
            network_mode: Some(network_mode),
            pid_mode: spec.host_pid.then(|| "host".into()),
            init: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
            security_opt: Some(vec!["no-new-privileges".into()]),
            readonly_rootfs: Some(true),
            tmpfs: (!spec.tmpfs.is_empty()).then(|| spec.tmpfs.iter().cloned().collect()),
            memory: spec.memory.map(|m| m as i64),
            memory_swap: spec.memory.map(|m| m as i64),
            nano_cpus: spec.nano_cpus.map(|n| n as i64),
            pids_limit: spec.pids_limit,
            mounts: spec.volume.as_ref().map(|(source, target)| {
                vec![Mount {
                    typ: Some(MountType::VOLUME),
                    source: Some(source.clone()),
                    target: Some(target.clone()),
                    volume_options: Some(MountVolumeOptions {
                        labels: Some(spec.labels.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]
            }),
            binds: spec
                .bind
                .as_ref()
                .map(|(host, at)| vec![format!("{host}:{at}")]),
            device_cgroup_rules: (!spec.device_rules.is_empty()).then(|| spec.device_rules.clone()),
            restart_policy: spec.restart.then_some(bollard::models::RestartPolicy {
                name: Some(bollard::models::RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            log_config: spec.log_max_size.as_ref().map(|size| HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([
                    ("max-size".to_string(), size.clone()),
                    ("max-file".to_string(), "1".to_string()),
                ])),
            }),
            port_bindings: exposed.map(|e| {
                HashMap::from([(
                    e,
                    Some(vec![bollard::models::PortBinding {
                        host_ip: spec.publish.map(|(at, _)| at.to_string()),
                        host_port: Some(String::new()),
                    }]),
                )])
            }),
            ..Default::default()
        }),
        networking_config: match &spec.network {
            Some((net, Some(ip))) => Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(net.id.clone(), static_endpoint(*ip))])),
            }),
            _ => None,
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_made_as_locked_down_as_a_node_and_more() {
        let labels = HashMap::from([("regbox.role".to_string(), "lock".to_string())]);
        let made = body(&marker_spec(
            "some/image:tag",
            &["bitcoind", "-version"],
            labels,
        ));
        assert_eq!(made.image.as_deref(), Some("some/image:tag"));
        assert_eq!(made.user.as_deref(), Some(MARKER_USER));
        assert_eq!(made.entrypoint.unwrap(), ["bitcoind", "-version"]);
        let host = made.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.cap_drop.unwrap(), ["ALL"]);
        assert_eq!(host.cap_add, None);
        assert_eq!(host.security_opt.unwrap(), ["no-new-privileges"]);
        assert_eq!(host.readonly_rootfs, Some(true));
        let log = host.log_config.clone().unwrap();
        assert_eq!(log.typ.as_deref(), Some("json-file"));
        assert_eq!(log.config.unwrap()["max-size"], MARKER_LOG);
        assert_eq!(host.memory, Some(MARKER_MEMORY as i64));
        assert_eq!(host.memory_swap, host.memory);
        assert_eq!(host.pids_limit, Some(MARKER_PIDS));
        assert!(host.nano_cpus.is_some());
        assert_eq!(
            (host.mounts, host.tmpfs, host.port_bindings),
            (None, None, None)
        );
        assert_eq!(host.restart_policy, None);
        assert_eq!(made.networking_config, None);
    }
}
