//! Reading the user's files: manifests and scenarios (or the built-in scenario) and the files they name,
//! regular files only, read under a size bound, with every error located in the file it comes from.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::cli::exit::Failure;
use crate::core::cluster::manifest::{self, ClusterSpec};
use crate::core::scenario::{self, ClusterSource, Scenario};
use crate::core::yaml::{SourceError, MAX_SOURCE_BYTES};

/// Reads a user-written file: a regular file of at most [`MAX_SOURCE_BYTES`], read with that bound (a
/// device such as `/dev/zero`, a FIFO or a file growing while it is read cannot make it read forever);
/// errors point at the file.
fn read_source(path: &Path) -> Result<(String, String), SourceError> {
    let origin = path.display().to_string();
    let located = |message: String| SourceError {
        origin: origin.clone(),
        line: 1,
        column: 1,
        message,
    };
    let bytes = read_regular(path, MAX_SOURCE_BYTES).map_err(located)?;
    let text = String::from_utf8(bytes)
        .map_err(|e| located(format!("cannot read the file: not UTF-8 text ({e})")))?;
    Ok((text, origin))
}

/// The bytes of a regular file of at most `limit` bytes, read with that bound, or why not: a path that
/// is not a regular file (looked at before and after opening it, and opened without waiting, so a FIFO
/// that takes the file's place does not block), a file too large or growing past the limit.
pub(crate) fn read_regular(path: &Path, limit: usize) -> Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| format!("cannot read the file: {e}");
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    if meta.len() > limit as u64 {
        return Err(format!(
            "file is {} bytes; at most {limit} bytes are read",
            meta.len()
        ));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() > limit {
        // It grew after its size was looked at.
        return Err(format!(
            "file is more than {limit} bytes; at most {limit} bytes are read"
        ));
    }
    Ok(bytes)
}

/// Why a path that is not a regular file is refused, saying what it is.
fn not_regular(meta: &std::fs::Metadata) -> String {
    let t = meta.file_type();
    let what = if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    format!("this is {what}; expected a regular file (YAML, or a topology file) of at most {MAX_SOURCE_BYTES} bytes")
}

/// Reads and validates a manifest file, and the topology file it may name.
pub fn load_manifest(path: &Path) -> Result<ClusterSpec, Failure> {
    let (text, origin) = read_source(path)?;
    Ok(manifest::parse_reading(&text, &origin, &beside(path))?)
}

/// Reads the files a document names, a relative path next to the document, under the same size limit.
fn beside(document: &Path) -> impl Fn(&str) -> Result<String, String> + '_ {
    move |named: &str| {
        let base = document.parent().unwrap_or(Path::new("."));
        read_source(&base.join(named))
            .map(|(text, _)| text)
            .map_err(|e| e.message)
    }
}

/// Reads, parses and validates a scenario (or the built-in one) and the cluster manifest it names.
pub fn load_scenario(path: Option<&Path>) -> Result<(Scenario, ClusterSpec), Failure> {
    let (text, origin) = match path {
        None => (
            scenario::DEFAULT_SCENARIO.to_string(),
            "split-and-heal.scenario.yaml (built in)".to_string(),
        ),
        Some(p) => read_source(p)?,
    };
    let scenario = match path {
        Some(p) => scenario::parse_reading(&text, &origin, &beside(p))?,
        None => scenario::parse(&text, &origin)?,
    };
    let spec = match &scenario.cluster {
        ClusterSource::Inline(spec) => spec.clone(),
        ClusterSource::File {
            path: file,
            line,
            column,
        } => {
            // A relative cluster file is found next to the scenario that names it.
            let base = path.and_then(|p| p.parent()).unwrap_or(Path::new("."));
            let full = base.join(file);
            if !full.exists() {
                return Err(SourceError {
                    origin,
                    line: *line,
                    column: *column,
                    message: format!("cluster file `{}` does not exist", full.display()),
                }
                .into());
            }
            load_manifest(&full)?
        }
    };
    scenario::validate(&scenario, &spec, &origin)?;
    Ok((scenario, spec))
}

/// What `regbox check` found valid in one file.
#[derive(Debug, serde::Serialize)]
pub struct Checked {
    pub file: String,
    /// `manifest` or `scenario`.
    pub kind: &'static str,
    /// The cluster's (or the scenario's) name.
    pub name: String,
    pub nodes: usize,
    pub edges: usize,
    /// Scenario steps (0 for a manifest).
    pub steps: usize,
}

/// Validates one file as a scenario when its name or its top-level `steps:` says it is one, else as a
/// manifest.
pub fn check_file(path: &Path) -> Result<Checked, Failure> {
    let file = path.display().to_string();
    let named = file.ends_with(".scenario.yaml") || file.ends_with(".scenario.yml");
    // Read as every source is (bounded); a file that cannot be read is reported by the manifest reader.
    let has_steps = || {
        read_source(path)
            .map(|(t, _)| t.lines().any(|l| l.starts_with("steps:")))
            .unwrap_or(false)
    };
    if named || has_steps() {
        let (scenario, spec) = load_scenario(Some(path))?;
        return Ok(Checked {
            file,
            kind: "scenario",
            name: scenario.name,
            nodes: spec.nodes.len(),
            edges: spec.edges.len(),
            steps: scenario.steps.len(),
        });
    }
    let spec = load_manifest(path)?;
    Ok(Checked {
        file,
        kind: "manifest",
        name: spec.name,
        nodes: spec.nodes.len(),
        edges: spec.edges.len(),
        steps: 0,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// Runs `f` on a thread and gives its result, failing the test if it has none within a few seconds
    /// (a read that never ends must not hang the suite).
    fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the read ends within 10 s")
    }

    fn fifo(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        path
    }

    fn refusal(result: Result<ClusterSpec, Failure>) -> String {
        match result {
            Ok(spec) => panic!("expected a refusal, read {spec:?}"),
            Err(e) => {
                assert_eq!(e.exit_code(), crate::cli::exit::BAD_INPUT, "{e}");
                e.to_string()
            }
        }
    }

    #[test]
    fn a_device_is_refused_not_read() {
        let message = refusal(bounded(|| load_manifest(Path::new("/dev/zero"))));
        assert_eq!(
            message,
            format!(
                "/dev/zero:1:1: this is a character device; expected a regular file (YAML, or a topology \
                 file) of at most {MAX_SOURCE_BYTES} bytes"
            )
        );
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let pipe = fifo(dir.path(), "m.yaml");
        let shown = pipe.display().to_string();
        let message = refusal(bounded(move || load_manifest(&pipe)));
        assert!(
            message.starts_with(&format!(
                "{shown}:1:1: this is a FIFO (named pipe); expected a regular file"
            )),
            "{message}"
        );
        let message = bounded(move || check_file(&dir.path().join("m.yaml")).map(|c| c.name))
            .expect_err("refused");
        assert!(message.to_string().contains("FIFO"), "{message}");
    }

    #[test]
    fn a_named_topology_file_that_is_a_device_or_fifo_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fifo(dir.path(), "pipe.edges");
        let manifest = dir.path().join("m.yaml");
        std::fs::write(&manifest, "name: lab\ntopology: {file: pipe.edges}\n").unwrap();
        let shown = manifest.display().to_string();
        let m = manifest.clone();
        let message = refusal(bounded(move || load_manifest(&m)));
        assert!(
            message.starts_with(&format!(
                "{shown}:2:18: cannot read `pipe.edges`: this is a FIFO (named pipe); expected a regular file"
            )),
            "{message}"
        );
        std::fs::write(
            &manifest,
            "name: lab\ntopology: {file: /dev/zero, format: edgelist}\n",
        )
        .unwrap();
        let message = refusal(bounded(move || load_manifest(&manifest)));
        assert!(
            message.contains(
                "cannot read `/dev/zero`: this is a character device; expected a regular file"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_directory_and_an_oversized_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let message = refusal(load_manifest(dir.path()));
        assert!(
            message.contains("this is a directory; expected a regular file"),
            "{message}"
        );
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; MAX_SOURCE_BYTES + 1]).unwrap();
        let message = refusal(load_manifest(&big));
        assert!(
            message.ends_with(&format!(
                "file is {} bytes; at most {MAX_SOURCE_BYTES} bytes are read",
                MAX_SOURCE_BYTES + 1
            )),
            "{message}"
        );
        let at_limit = dir.path().join("ok.yaml");
        let mut text = b"name: lab\nnodes: 2\n".to_vec();
        text.resize(MAX_SOURCE_BYTES, b'#');
        std::fs::write(&at_limit, text).unwrap();
        assert_eq!(load_manifest(&at_limit).unwrap().nodes.len(), 2);
    }
}
