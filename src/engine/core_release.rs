//! Fetching a Bitcoin Core release and verifying it before an image is built from it: the release
//! tarball, `SHA256SUMS` and `SHA256SUMS.asc` downloaded with curl (progress shown, size checked),
//! the signatures counted by gpgv against a keyring (the builder keys shipped in
//! `images/core-keys/`, or the user's), the tarball's SHA-256 checked against the signed list.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::core::release::{self, CoreVersion};
use crate::engine::image::ImageError;
use crate::engine::progress::Progress;

/// The public keys of Bitcoin Core's release builders (`builder-keys/*.gpg` of the `guix.sigs`
/// repository, one armored block after another); `images/core-keys/README.md` says how to update them.
const BUILDER_KEYS: &str = include_str!("../../images/core-keys/builder-keys.asc");

/// How long curl may take to connect, and how long a transfer may stall (below 1 byte/s), in seconds.
const CONNECT_TIMEOUT: &str = "30";
const STALL_SECONDS: &str = "60";

/// A Bitcoin Core release to fetch and the trust it must earn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreRelease {
    pub version: CoreVersion,
    /// Base URL of the release directories (`<mirror>/bitcoin-core-VERSION/`).
    pub mirror: String,
    /// The keys whose signatures count (armored or binary); None: the builder keys regbox ships.
    pub keyring: Option<PathBuf>,
    /// Good signatures by distinct keys of the keyring the release needs.
    pub min_signatures: usize,
}

impl CoreRelease {
    /// `version` from `REGBOX_CORE_MIRROR` (default Core's release server), with the keyring
    /// `REGBOX_CORE_KEYRING` (default the shipped builder keys) and the default threshold.
    pub fn from_env(version: CoreVersion) -> CoreRelease {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        CoreRelease {
            version,
            mirror: var("REGBOX_CORE_MIRROR").unwrap_or_else(|| release::OFFICIAL_MIRROR.into()),
            keyring: var("REGBOX_CORE_KEYRING").map(PathBuf::from),
            min_signatures: release::DEFAULT_MIN_SIGNATURES,
        }
    }

    fn refused(&self, reason: impl Into<String>) -> ImageError {
        ImageError::CoreRefused {
            version: self.version.to_string(),
            reason: reason.into(),
        }
    }

    fn url(&self, file: &str) -> String {
        format!("{}/{file}", self.version.directory(&self.mirror))
    }

    /// The keyring as gpgv reads it, or why it cannot be used (bad input).
    fn keyring_packets(&self) -> Result<Vec<u8>, ImageError> {
        let (keys, name) = match &self.keyring {
            None => (
                BUILDER_KEYS.as_bytes().to_vec(),
                "the shipped builder keys".to_string(),
            ),
            Some(path) => {
                let keys = std::fs::read(path).map_err(|e| {
                    self.refused(format!("cannot read keyring {}: {e}", path.display()))
                })?;
                (keys, path.display().to_string())
            }
        };
        release::dearmor(&keys).map_err(|e| self.refused(format!("keyring {name}: {e}")))
    }
}

/// Downloads the release into `dir` and verifies it: `SHA256SUMS` must carry at least
/// `min_signatures` good signatures by distinct keys of the keyring, and list the tarball with the
/// SHA-256 the downloaded tarball has. Returns the verified tarball's path. Nothing is built on any
/// failure: a refusal (bad input: unknown version, too few signatures, a hash or size that does not
/// match) is [`ImageError::CoreRefused`], a download that cannot be made is [`ImageError::Fetch`].
pub(crate) async fn fetch_verified(
    release: &CoreRelease,
    dir: &Path,
    progress: &Progress,
) -> Result<PathBuf, ImageError> {
    if !(release.mirror.starts_with("http://") || release.mirror.starts_with("https://")) {
        return Err(release.refused(format!(
            "mirror `{}` (REGBOX_CORE_MIRROR) is not an http:// or https:// URL",
            release.mirror
        )));
    }
    let keyring = dir.join("keyring.gpg");
    std::fs::write(&keyring, release.keyring_packets()?)
        .map_err(|e| fail("write the keyring", &e))?;
    let sums = dir.join(release::SUMS);
    let signatures = dir.join(release::SUMS_SIGNATURES);
    download(release, release::SUMS, &sums, progress).await?;
    download(release, release::SUMS_SIGNATURES, &signatures, progress).await?;
    progress.stage(&format!("verifying the signatures of {}", release::SUMS), 0);
    let (signers, made) = good_signers(&keyring, &signatures, &sums, dir).await?;
    if signers < release.min_signatures {
        return Err(release.refused(format!(
            "{} carries {signers} good signature(s) by distinct keys of the keyring (of {made} signature(s) in {}), fewer than the {} required (--min-signatures)",
            release::SUMS,
            release::SUMS_SIGNATURES,
            release.min_signatures
        )));
    }
    let tarball_name = release.version.tarball();
    let text = std::fs::read_to_string(&sums).map_err(|e| fail("read SHA256SUMS", &e))?;
    let Some(listed) = release::listed_sum(&text, &tarball_name) else {
        return Err(release.refused(format!(
            "the signed {} lists no SHA-256 of {tarball_name}",
            release::SUMS
        )));
    };
    let tarball = dir.join(&tarball_name);
    let got = download(release, &tarball_name, &tarball, progress).await?;
    if got != listed {
        return Err(release.refused(format!(
            "{tarball_name} has SHA-256 {got}, but the signed {} lists {listed}",
            release::SUMS
        )));
    }
    tracing::info!(
        "Bitcoin Core {}: {signers} good signatures (at least {} needed), {tarball_name} matches SHA256SUMS",
        release.version,
        release.min_signatures
    );
    Ok(tarball)
}

/// The number of distinct keys of `keyring` with a good signature in `signatures` over `sums`, and
/// the number of signatures there are.
async fn good_signers(
    keyring: &Path,
    signatures: &Path,
    sums: &Path,
    dir: &Path,
) -> Result<(usize, usize), ImageError> {
    // An empty home of its own: gpgv reads no keyring of the user's (its default trustedkeys.kbx),
    // and, unlike gpg, starts no agent that would outlive the build.
    let home = dir.join("gnupg");
    std::fs::create_dir(&home).map_err(|e| fail("create a GnuPG home", &e))?;
    let out = tokio::process::Command::new("gpgv")
        .arg("--homedir")
        .arg(&home)
        .args(["--status-fd", "1", "--keyring"])
        .arg(keyring)
        .arg(signatures)
        .arg(sums)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| fail("run gpgv (Debian package gpgv, which apt itself needs)", &e))?;
    // gpgv exits non-zero when any signature could not be checked (a builder not in the keyring):
    // what counts is what its status lines say of each signature.
    let status = String::from_utf8_lossy(&out.stdout);
    tracing::debug!("gpgv: {status}");
    let made = status
        .lines()
        .filter(|l| l.starts_with("[GNUPG:] NEWSIG"))
        .count();
    Ok((release::good_signers(&status).len(), made))
}

/// Downloads `file` of the release to `to`, showing progress, and returns its SHA-256 (hex). The
/// length the server announced must arrive in full; nothing is resumed.
async fn download(
    release: &CoreRelease,
    file: &str,
    to: &Path,
    progress: &Progress,
) -> Result<String, ImageError> {
    let url = release.url(file);
    let length = announced_length(release, file, &url).await?;
    progress.stage_bytes(&format!("downloading {file}"), length.unwrap_or(0));
    let mut child = curl(&url, "--fail")
        .spawn()
        .map_err(|e| fail("run curl", &e))?;
    let mut body = child.stdout.take().expect("stdout is piped");
    let mut out = tokio::fs::File::create(to)
        .await
        .map_err(|e| fail(&format!("create {}", to.display()), &e))?;
    let (mut hash, mut got, mut buf) = (Sha256::new(), 0u64, vec![0u8; 64 * 1024]);
    loop {
        let n = body
            .read(&mut buf)
            .await
            .map_err(|e| fail("read curl's output", &e))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        out.write_all(&buf[..n])
            .await
            .map_err(|e| fail("write the download", &e))?;
        got += n as u64;
        progress.position(got);
    }
    out.flush()
        .await
        .map_err(|e| fail("write the download", &e))?;
    let done = child
        .wait_with_output()
        .await
        .map_err(|e| fail("wait for curl", &e))?;
    let said = String::from_utf8_lossy(&done.stderr).trim().to_string();
    match done.status.code() {
        Some(0) => {}
        // CURLE_PARTIAL_FILE: the connection closed before the announced length arrived.
        Some(18) => return Err(cut_short(release, file, got, length)),
        _ => return Err(unreachable(release, file, &url, &said)),
    }
    if length.is_some_and(|l| l != got) {
        return Err(cut_short(release, file, got, length));
    }
    Ok(hex::encode(hash.finalize()))
}

/// What the server says of `url` before it is downloaded: its length when it announces one. A file
/// it does not have (404) means no such release: refused, naming the file.
async fn announced_length(
    release: &CoreRelease,
    file: &str,
    url: &str,
) -> Result<Option<u64>, ImageError> {
    let out = curl(url, "--head")
        .output()
        .await
        .map_err(|e| fail("run curl (needed to download Bitcoin Core releases)", &e))?;
    if !out.status.success() {
        return Err(unreachable(
            release,
            file,
            url,
            &String::from_utf8_lossy(&out.stderr),
        ));
    }
    match release::last_response(&String::from_utf8_lossy(&out.stdout)) {
        Some((200, length)) => Ok(length),
        // A server that answers no HEAD: the length is learnt from the download itself.
        Some((405 | 501, _)) => Ok(None),
        Some((404 | 410, _)) => Err(release.refused(format!(
            "{url} does not exist (404): no {file} for Bitcoin Core {} there; is it a released version?",
            release.version
        ))),
        Some((code, _)) => Err(unreachable(release, file, url, &format!("the server answered {code}"))),
        None => Err(unreachable(release, file, url, "the server's answer is not HTTP")),
    }
}

/// curl fetching `url` with `how` (`--fail`: the body, failing on an HTTP error; `--head`: the
/// headers), quietly (errors still said), following redirects over HTTP(S) only, giving up on a
/// connection or transfer that stalls.
fn curl(url: &str, how: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["--silent", "--show-error", "--location", how])
        .args(["--proto", "=http,https", "--proto-redir", "=http,https"])
        .args(["--connect-timeout", CONNECT_TIMEOUT])
        .args(["--speed-limit", "1", "--speed-time", STALL_SECONDS])
        .arg("--")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn cut_short(release: &CoreRelease, file: &str, got: u64, length: Option<u64>) -> ImageError {
    let of = length
        .map(|l| format!(" of the {l} announced"))
        .unwrap_or_default();
    release.refused(format!(
        "the download of {file} was cut short: {got} bytes{of} arrived"
    ))
}

/// A release file that could not be fetched, with the way to build without the network.
fn unreachable(release: &CoreRelease, file: &str, url: &str, why: &str) -> ImageError {
    let v = &release.version;
    ImageError::Fetch(format!(
        "{file} of Bitcoin Core {v} from {url}: {}; with no network, build from a release tarball you have: \
         `regbox image build --from {} --tag core-{v}` makes `regbox/bitcoind:local-core-{v}` (not verified)",
        why.trim().trim_start_matches("curl: "),
        v.tarball()
    ))
}

fn fail(what: &str, e: &dyn std::fmt::Display) -> ImageError {
    ImageError::Build(format!("{what}: {e}"))
}
