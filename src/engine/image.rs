//! regbox's images: the node image — finding it, and building `regbox/bitcoind:<tag>` offline with
//! `images/bitcoind/build.sh` (embedded in the binary) from Debian's bitcoin-knots package or from a
//! bitcoind the user has (a release tarball, a directory in that layout, a self-built binary) — and the
//! regbox image the fault agent runs (`regbox/regbox:<version>-<digest>`). A Bitcoin Core release
//! (`regbox/bitcoind:core-VERSION`) is fetched and verified by `core_release`, then built the `--from` way.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::engine::docker::{Docker, DockerError};
use crate::engine::progress::Progress;

/// Repository of the images regbox builds itself; any other image must already be present.
pub const REPO: &str = crate::core::cluster::blueprint::NODE_IMAGE_REPO;

/// Label on regbox's node images naming how they are made: [`format`]. An image of an older format
/// (before bitcoind ran unprivileged, carried libfaketime, started through regbox's init, or labelled
/// it with its hash) or with another init than the one this regbox carries is rebuilt.
const LABEL_FORMAT: &str = "regbox.format";
const FORMAT: &str = "5";

/// The format label's value: [`FORMAT`] and [`init_hash`], so that an image regbox builds itself with
/// an init of another regbox (one that cannot keep a drifting clock, say) is made again. An image
/// built `--from` files is not rebuilt for another init: its format number is enough.
fn format() -> &'static str {
    static FORMAT_AND_INIT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FORMAT_AND_INIT.get_or_init(|| format!("{FORMAT}.{}", init_hash()))
}

/// A short hash of the init this regbox carries: the value of [`LABEL_INIT`] on the images it builds
/// with it, and on their nodes' containers (a drift needs this init: older ones know no drift file).
pub(crate) fn init_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        use sha2::{Digest, Sha256};
        let hash = Sha256::digest(INIT);
        hash[..4].iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// Whether a node image's format label is current: for an image regbox builds by itself, this
/// regbox's format and init; for one built `--from` files, the format number.
fn current(labels: &std::collections::HashMap<String, String>, local: bool) -> bool {
    let Some(found) = labels.get(LABEL_FORMAT) else {
        return false;
    };
    match local {
        true => found.split('.').next() == Some(FORMAT),
        false => found == format(),
    }
}
/// Label on a node image that carries libfaketime at [`blueprint::FAKETIME_LIB`], so that its nodes'
/// clocks can be set (`clock`): `faketime`. An image without it has no clock faults.
///
/// [`blueprint::FAKETIME_LIB`]: crate::core::cluster::blueprint::FAKETIME_LIB
pub const LABEL_CLOCK: &str = "regbox.clock";

/// The label of a node image whose first process is regbox's init (`images/init/init.rs`), which
/// restarts bitcoind in place for `reset` and snapshots.
pub const LABEL_INIT: &str = "regbox.init";

/// The init, built by `build.rs` (static, so that it runs in any node image).
const INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/regbox-init"));
/// Label naming where an image's bitcoind came from: `debian`, or `local` for `--from` builds, which
/// the bare default never picks (a test build must not become every cluster's image).
const LABEL_SOURCE: &str = "regbox.source";
const SOURCE_LOCAL: &str = "local";
/// The source label of an image built from a verified Bitcoin Core release, which the bare default
/// never picks either (a cluster's default stays what Debian carries).
const SOURCE_CORE: &str = "core";

/// Where a build takes bitcoind from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Debian sid's `bitcoin-knots` (or `REGBOX_PACKAGE`), tagged `<flavour>-<major.minor>`.
    Debian,
    /// A release-layout tarball or directory, or a self-built binary, tagged `local-<tag>` or else
    /// `local-<flavour>-<version as bitcoind reports it>`.
    Local {
        path: std::path::PathBuf,
        tag: Option<String>,
    },
    /// A Bitcoin Core release, downloaded and verified first, tagged `core-VERSION`.
    Core(crate::engine::core_release::CoreRelease),
}

const BUILD_SCRIPT: &str = include_str!("../../images/bitcoind/build.sh");

/// Why the node image is not there.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image `{0}` is not present and no registry can be assumed; `docker pull` or `docker load` it first (or use `{REPO}:…`, which regbox builds itself)")]
    Missing(String),
    #[error("image `{0}` is not present; it was made by `regbox image build --from`, so make it again that way")]
    MissingLocal(String),
    #[error("image build failed: {0}")]
    Build(String),
    /// What `--from` names cannot be used as it is (not a tarball, no bitcoind, not an x86-64 ELF
    /// binary, a path in it that leads out of its tree, binaries that do not run): bad input, exit
    /// code 2. The message says what was expected.
    #[error("image build refused {path}: {reason}")]
    Refused { path: String, reason: String },
    #[error("the Debian archive now carries bitcoind {built} (built as `{REPO}:{tag}`), not the `{wanted}` asked for; use image `{REPO}:{tag}`")]
    OtherVersion {
        wanted: String,
        built: String,
        tag: String,
    },
    /// A Bitcoin Core release refused before anything was built (bad input, exit code 2): a malformed
    /// or unknown version, too few good signatures, a hash or size that does not match, a keyring
    /// that holds no key.
    #[error("Bitcoin Core {version} refused: {reason}")]
    CoreRefused { version: String, reason: String },
    /// A Bitcoin Core release file could not be fetched (no network, a mirror that fails); the
    /// message names the file and how to build from a tarball instead.
    #[error("cannot fetch {0}")]
    Fetch(String),
    /// Transparent: the error chain printer shows the Docker operation and the engine's answer once.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// Ctrl-C stopped `image ls` (its probe containers were removed first).
    #[error("interrupted")]
    Interrupted,
}

impl ImageError {
    /// The user's input was refused (exit code 2), not a failure of the build or the machine (1).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ImageError::Refused { .. } | ImageError::CoreRefused { .. }
        )
    }

    /// The user interrupted it (Ctrl-C).
    pub fn is_interrupted(&self) -> bool {
        matches!(self, ImageError::Interrupted)
    }
}

/// Makes sure `image` exists on the local engine, building it when it is one of regbox's own, and
/// returns its exact name: the bare `regbox/bitcoind` (the manifest's default) resolves to the newest
/// regbox node image here, or to the one built now.
pub async fn ensure(image: &str, progress: &Progress) -> Result<String, ImageError> {
    resolve_on(&Docker::connect().await?, image, progress).await
}

/// A node image as `regbox image ls` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeImage {
    pub name: String,
    pub id: String,
    /// The first line `bitcoind -version` prints in it.
    pub bitcoind: String,
    /// Clusters whose nodes use it.
    pub clusters: Vec<String>,
}

/// regbox's node images and every image a cluster's nodes use, each asked for its bitcoind version.
pub async fn list() -> Result<Vec<NodeImage>, ImageError> {
    // Ctrl-C drops the probes under way, and each removes its throw-away container as it is dropped
    // (before this returns). The handler is in place before any probe exists, so no Ctrl-C takes the
    // default way out, which would leave them running.
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| fail("watch for Ctrl-C", &e))?;
    tokio::select! {
        listed = list_probed() => listed,
        _ = sigint.recv() => Err(ImageError::Interrupted),
    }
}

/// `list` without its Ctrl-C handling.
async fn list_probed() -> Result<Vec<NodeImage>, ImageError> {
    use crate::core::cluster::blueprint::{cluster_filter, LABEL_CLUSTER, LABEL_NODE};
    let docker = Docker::connect().await?;
    let mut images: std::collections::BTreeMap<String, NodeImage> = docker
        .images_of(REPO)
        .await?
        .into_iter()
        .map(|i| {
            let image = NodeImage {
                name: i.name.clone(),
                id: i.id,
                bitcoind: String::new(),
                clusters: Vec::new(),
            };
            (i.name, image)
        })
        .collect();
    for c in docker.labeled_containers(&cluster_filter(None)).await? {
        if !c.labels.contains_key(LABEL_NODE) {
            continue;
        }
        let entry = images.entry(c.image.clone()).or_insert_with(|| NodeImage {
            name: c.image.clone(),
            id: c.image_id.clone(),
            bitcoind: String::new(),
            clusters: Vec::new(),
        });
        let cluster = c.labels.get(LABEL_CLUSTER).cloned().unwrap_or_default();
        if !entry.clusters.contains(&cluster) {
            entry.clusters.push(cluster);
        }
    }
    // Each image is asked in its own throwaway container, a few at a time; the order stays by name.
    let docker = &docker;
    let asked = futures::stream::iter(images.into_values().map(|mut image| async move {
        image.bitcoind = match docker.run_once(&image.id, &["bitcoind", "-version"]).await {
            Ok(text) => text.lines().next().unwrap_or("").trim().to_string(),
            Err(e) => format!(
                "cannot run bitcoind: {}",
                crate::core::names::error_chain(&e)
            ),
        };
        image
    }));
    Ok(futures::StreamExt::collect(futures::StreamExt::buffered(asked, 4)).await)
}

/// `ensure` on an engine already connected.
pub(crate) async fn resolve_on(
    docker: &Docker,
    image: &str,
    progress: &Progress,
) -> Result<String, ImageError> {
    if image != REPO {
        ensure_on(docker, image, progress).await?;
        return Ok(image.to_string());
    }
    match newest_on(docker).await? {
        Some(found) => Ok(found),
        None => build_on(docker, &Source::Debian, progress).await,
    }
}

/// What the bare default names on the local engine now: the newest regbox node image built from
/// Debian, if any (else `up` builds one).
pub async fn newest() -> Result<Option<String>, ImageError> {
    newest_on(&Docker::connect().await?).await
}

/// The newest regbox node image of the current format on the engine, if any.
pub(crate) async fn newest_on(docker: &Docker) -> Result<Option<String>, ImageError> {
    Ok(docker
        .images_of(REPO)
        .await?
        .into_iter()
        .filter(|i| i.labels.get(LABEL_FORMAT).map(String::as_str) == Some(format()))
        .filter(|i| {
            let source = i.labels.get(LABEL_SOURCE).map(String::as_str);
            source != Some(SOURCE_LOCAL) && source != Some(SOURCE_CORE)
        })
        .max_by_key(|i| i.created)
        .map(|i| i.name))
}

/// Builds a node image on the local engine from `source` (see `build_on`); returns its name.
pub async fn build(source: &Source, progress: &Progress) -> Result<String, ImageError> {
    build_on(&Docker::connect().await?, source, progress).await
}

/// `ensure` on an engine already connected.
pub(crate) async fn ensure_on(
    docker: &Docker,
    image: &str,
    progress: &Progress,
) -> Result<(), ImageError> {
    let own = image.starts_with(&format!("{REPO}:"));
    match docker.image(image).await?.map(|(_, labels)| labels) {
        Some(labels)
            if !own
                || current(
                    &labels,
                    image.starts_with(&format!("{REPO}:{SOURCE_LOCAL}-")),
                ) =>
        {
            return Ok(());
        }
        Some(_) => tracing::info!("`{image}` was made by an older regbox; building it again"),
        None if !own => return Err(ImageError::Missing(image.to_string())),
        None if image.starts_with(&format!("{REPO}:{SOURCE_LOCAL}-")) => {
            return Err(ImageError::MissingLocal(image.to_string()))
        }
        None => {}
    }
    // `regbox/bitcoind:core-VERSION` is that release of Bitcoin Core, fetched and verified.
    let source = match crate::core::release::image_release(image) {
        Some(version) => Source::Core(crate::engine::core_release::CoreRelease::from_env(version)),
        None => Source::Debian,
    };
    let built = build_on(docker, &source, progress).await?;
    if built != image {
        let tag = built.rsplit(':').next().unwrap_or_default().to_string();
        return Err(ImageError::OtherVersion {
            wanted: image.to_string(),
            built: tag.clone(),
            tag,
        });
    }
    Ok(())
}

/// How long a cancelled build's script has, after SIGTERM, to run its exit trap (which removes the
/// throw-away container and image of `--from`'s check) before its process group is killed. The trap
/// makes four calls of the docker command, which a loaded machine can slow to seconds each; killing
/// it half-way would leave the container or image behind, and the time is only spent while the
/// script is still at it (a script that has exited is not waited for).
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

/// A build's temporary directory and the build script working in it, which leads a process group of
/// its own. Dropped — also when the build is cancelled half-way — it stops a script still running
/// (SIGTERM to the group, up to [`STOP_GRACE`] for the script's exit trap, then SIGKILL to what is
/// left of the group), then removes the directory (retrying while the killed processes finish
/// dying), so nothing is left behind.
struct Workspace {
    tmp: tempfile::TempDir,
    /// The script until it has been waited for.
    script: Option<tokio::process::Child>,
}

/// Sends `signal` to process group `group` (ignoring a group that is gone).
fn signal_group(signal: &str, group: u32) {
    let _ = std::process::Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status();
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let Some(mut script) = self.script.take() {
            if let Some(group) = script.id() {
                signal_group("TERM", group);
                let deadline = std::time::Instant::now() + STOP_GRACE;
                while matches!(script.try_wait(), Ok(None)) && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                // The script's own trap has run (or its time is up): whatever of its group is left.
                signal_group("KILL", group);
            }
        }
        for _ in 0..40 {
            match std::fs::remove_dir_all(self.tmp.path()) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(std::time::Duration::from_millis(25))
                }
                _ => break,
            }
        }
    }
}

/// Builds the image with the build script — from Debian sid's `bitcoin-knots` with a private apt
/// configuration (the host's apt state is never touched), or from the user's bitcoind — and imports the
/// minimal root filesystem. Returns the image name, whose tag carries the bitcoind version
/// (`regbox/bitcoind:knots-29.4`, `regbox/bitcoind:local-core-27.0.0`).
pub(crate) async fn build_on(
    docker: &Docker,
    source: &Source,
    progress: &Progress,
) -> Result<String, ImageError> {
    match source {
        Source::Debian => {
            progress.stage("building the bitcoind image from Debian's bitcoin-knots", 0)
        }
        Source::Local { path, .. } => progress.stage(
            &format!("building a bitcoind image from {}", path.display()),
            0,
        ),
        Source::Core(release) => progress.stage(
            &format!(
                "fetching Bitcoin Core {} from {}",
                release.version, release.mirror
            ),
            0,
        ),
    }
    let mut args = Vec::new();
    if let Source::Local { path, .. } = source {
        args = vec!["--from".into(), path.clone().into_os_string()];
    }
    // A release is downloaded and verified in a directory of its own (gone when dropped, also when
    // the build is cancelled) before the script sees it.
    let mut download = None;
    if let Source::Core(release) = source {
        let dir = download.insert(
            tempfile::Builder::new()
                .prefix("regbox-core-")
                .tempdir()
                .map_err(|e| fail("create a temporary directory", &e))?,
        );
        let tarball = crate::engine::core_release::fetch_verified(release, dir.path(), progress)
            .await
            .inspect_err(|_| progress.finish())?;
        progress.stage(&format!("building {}", release.version.image()), 0);
        args = vec!["--from".into(), tarball.into_os_string()];
    }
    let (work, out) = run_script(&args, progress)
        .await
        .map_err(|e| match (e, source) {
            // Exit status 2 of a build `--from` the user's files: they were refused.
            (ScriptError::Refused(reason), Source::Local { path, .. }) => ImageError::Refused {
                path: path.display().to_string(),
                reason,
            },
            (ScriptError::Refused(reason), Source::Core(release)) => ImageError::CoreRefused {
                version: release.version.to_string(),
                reason,
            },
            (e, _) => e.into(),
        })?;
    drop(download);
    let result = import_built(docker, source, &out, progress).await;
    drop(work);
    progress.finish();
    result
}

/// Imports what the build script made in `out` from `source` as `regbox/bitcoind:<tag>`, labelled
/// with its format, source and clock; returns its name.
async fn import_built(
    docker: &Docker,
    source: &Source,
    out: &std::path::Path,
    progress: &Progress,
) -> Result<String, ImageError> {
    let read = |f: &str| std::fs::read_to_string(out.join(f)).map(|s| s.trim().to_string());
    let read = |f: &str| read(f).map_err(|e| fail(&format!("read the built {f}"), &e));
    let (version, package) = (read("version")?, read("package")?);
    let clock = read("clock")?;
    let init = read("init")?;
    let (tag, origin) = match source {
        Source::Debian => {
            let flavour = package.strip_prefix("bitcoin-").unwrap_or(&package);
            (format!("{flavour}-{version}"), "debian")
        }
        // Every --from image is `local-…`, so none can take the place of a Debian-built one.
        Source::Core(release) => (release.version.tag(), SOURCE_CORE),
        Source::Local { tag: Some(tag), .. } if tag.starts_with("local-") => {
            (tag.clone(), SOURCE_LOCAL)
        }
        Source::Local { tag: Some(tag), .. } => (format!("{SOURCE_LOCAL}-{tag}"), SOURCE_LOCAL),
        Source::Local { tag: None, .. } => {
            let made = format!(
                "{SOURCE_LOCAL}-{}-{}",
                read("flavour")?,
                read("full_version")?
            );
            (
                crate::core::cluster::blueprint::image_tag(&made),
                SOURCE_LOCAL,
            )
        }
    };
    let rootfs = std::fs::read(out.join("rootfs.tar")).map_err(|e| fail("read rootfs.tar", &e))?;
    progress.note(&format!("importing {REPO}:{tag}"));
    let mut changes = vec![
        "ENV HOME=/data".to_string(),
        format!("USER {}", crate::core::cluster::blueprint::NODE_USER),
        r#"ENTRYPOINT ["bitcoind"]"#.to_string(),
        format!("LABEL regbox.image={package}-{version}"),
        format!("LABEL {LABEL_FORMAT}={}", format()),
        format!("LABEL {LABEL_SOURCE}={origin}"),
    ];
    if !clock.is_empty() {
        changes.push(format!("LABEL {LABEL_CLOCK}={clock}"));
    }
    if !init.is_empty() {
        // Which init: this regbox's own, or one `REGBOX_INIT` named.
        let which = match std::env::var_os("REGBOX_INIT") {
            Some(_) => "named",
            None => init_hash(),
        };
        changes.push(format!("LABEL {LABEL_INIT}={which}"));
    }
    let replaced = docker.image(&format!("{REPO}:{tag}")).await?;
    docker
        .import_image(rootfs.into(), REPO, &tag, changes)
        .await?;
    // The image this build replaces would linger untagged; it goes unless a container uses it.
    if let Some((old, _)) = replaced {
        docker.remove_unused_image(&old).await;
    }
    Ok(format!("{REPO}:{tag}"))
}

fn fail(what: &str, e: &dyn std::fmt::Display) -> ImageError {
    ImageError::Build(format!("{what}: {e}"))
}

/// Why the build script did not make its outputs.
#[derive(Debug)]
enum ScriptError {
    /// It exited with status 2: it refused its input (with `--from`; without, it only does so for a
    /// wrong command line). Its error lines, without its name.
    Refused(String),
    Failed(ImageError),
}

impl From<ImageError> for ScriptError {
    fn from(e: ImageError) -> Self {
        ScriptError::Failed(e)
    }
}

impl From<ScriptError> for ImageError {
    fn from(e: ScriptError) -> Self {
        match e {
            ScriptError::Refused(reason) => ImageError::Build(reason),
            ScriptError::Failed(e) => e,
        }
    }
}

/// The build script's exit status for refused input.
const SCRIPT_REFUSED: i32 = 2;

/// Runs the build script with `args` and an output directory, showing its lines as progress; returns
/// the workspace (the outputs go when it is dropped) and the output directory.
async fn run_script(
    args: &[std::ffi::OsString],
    progress: &Progress,
) -> Result<(Workspace, std::path::PathBuf), ScriptError> {
    // Removed when dropped: on success, on failure, and when the build is cancelled (Ctrl-C).
    let tmp = tempfile::Builder::new()
        .prefix("regbox-image-")
        .tempdir()
        .map_err(|e| fail("create a temporary directory", &e))?;
    let mut work = Workspace { tmp, script: None };
    let dir = work.tmp.path().to_path_buf();
    let script = dir.join("build.sh");
    std::fs::write(&script, BUILD_SCRIPT).map_err(|e| fail("write the build script", &e))?;
    let out = dir.join("out");
    // The node's first process, which the script puts into node images (unless the user names another).
    let init = match std::env::var_os("REGBOX_INIT") {
        Some(named) => named.into(),
        None => {
            let carried = dir.join("init");
            std::fs::write(&carried, INIT).map_err(|e| fail("write the init binary", &e))?;
            carried
        }
    };
    let child = tokio::process::Command::new("bash")
        .arg(&script)
        .args(args)
        .arg(&out)
        .env("REGBOX_INIT", init)
        // The script's own working directory goes inside ours, so it goes with ours even when the
        // script is killed before its exit trap runs.
        .env("TMPDIR", &dir)
        // Its own process group, so a cancelled build stops apt and dpkg too, not only bash.
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Not killed on drop: the workspace stops it, giving its exit trap time to clean up.
        .spawn()
        .map_err(|e| fail("run bash", &e))?;
    let child = work.script.insert(child);
    let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
    let mut tail = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        progress.note(&format!("image: {line}"));
        tracing::info!("image build: {line}");
        tail.push(line);
    }
    let status = child
        .wait()
        .await
        .map_err(|e| fail("wait for the build", &e))?;
    // The script has exited: there is no group left to stop (its id may even be reused by now).
    work.script = None;
    if status.code() == Some(SCRIPT_REFUSED) {
        // Its error lines (the first one and what follows it), which say what was expected.
        let tag = "build.sh: error: ";
        let first = tail.iter().position(|l| l.starts_with(tag));
        let lines = &tail[first.unwrap_or(tail.len().saturating_sub(5))..];
        let lines: Vec<&str> = lines
            .iter()
            .map(|l| l.strip_prefix(tag).unwrap_or(l))
            .collect();
        return Err(ScriptError::Refused(lines.join("\n")));
    }
    if !status.success() {
        let n = tail.len().saturating_sub(5);
        return Err(ImageError::Build(tail[n..].join("\n")).into());
    }
    Ok((work, out))
}

/// Repository of the regbox image: a regbox binary with Debian's iptables, which the fault agent runs.
pub const SELF_REPO: &str = "regbox/regbox";

/// Makes sure the regbox image — this regbox binary (or `REGBOX_BIN`) with Debian's iptables, which
/// the fault agent and the operator's container run — exists, and names it `regbox/regbox:latest` too
/// (what docker-compose.yml runs). Returns its exact name, `regbox/regbox:<version>-<digest>`.
pub async fn build_self(progress: &Progress) -> Result<String, ImageError> {
    let docker = Docker::connect().await?;
    let name = ensure_regbox_image(&docker, &regbox_binary()?, progress).await?;
    docker.tag(&name, SELF_REPO, "latest").await?;
    Ok(name)
}

/// The regbox binary the regbox image is made from: `REGBOX_BIN`, else this program when it is regbox,
/// else `regbox` on the PATH.
pub(crate) fn regbox_binary() -> Result<std::path::PathBuf, ImageError> {
    use std::path::PathBuf;
    if let Some(path) = std::env::var_os("REGBOX_BIN") {
        return Ok(PathBuf::from(path));
    }
    if let Ok(me) = std::env::current_exe() {
        if me.file_name().is_some_and(|n| n == "regbox") {
            return Ok(me);
        }
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("regbox"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            ImageError::Build(
                "the regbox image is made from the regbox binary: set REGBOX_BIN to one, or put regbox on the PATH"
                    .into(),
            )
        })
}

/// Makes sure the regbox image for `binary` exists — tagged with regbox's version and the binary's
/// digest, so a rebuilt regbox gets its own image — building it when missing. Returns its name.
pub(crate) async fn ensure_regbox_image(
    docker: &Docker,
    binary: &std::path::Path,
    progress: &Progress,
) -> Result<String, ImageError> {
    use sha2::{Digest, Sha256};
    let bytes =
        std::fs::read(binary).map_err(|e| fail(&format!("read {}", binary.display()), &e))?;
    let tag = format!(
        "{}-{}",
        env!("CARGO_PKG_VERSION"),
        &hex::encode(Sha256::digest(&bytes))[..12]
    );
    drop(bytes);
    let name = format!("{SELF_REPO}:{tag}");
    if docker.image(&name).await?.is_some() {
        return Ok(name);
    }
    progress.stage(
        "building the regbox image (regbox and Debian's iptables)",
        0,
    );
    let (work, out) = run_script(
        &["--regbox".into(), binary.as_os_str().to_owned()],
        progress,
    )
    .await
    .map_err(ImageError::from)?;
    let rootfs = std::fs::read(out.join("rootfs.tar")).map_err(|e| fail("read rootfs.tar", &e))?;
    drop(work);
    progress.note(&format!("importing {name}"));
    let changes = vec![
        r#"ENTRYPOINT ["/usr/bin/regbox"]"#.to_string(),
        "ENV PATH=/usr/sbin:/usr/bin".to_string(),
    ];
    docker
        .import_image(rootfs.into(), SELF_REPO, &tag, changes)
        .await?;
    // Images of other regbox builds go, unless an agent still runs one (the engine refuses then);
    // `latest` names what `image build --self` made last.
    for old in docker.images_of(SELF_REPO).await? {
        if old.name != name && !old.name.ends_with(":latest") {
            docker.remove_unused_image(&old.name).await;
        }
    }
    progress.finish();
    Ok(name)
}
