//! Reading the user's files: manifests and scenarios (or the built-in scenario), size-checked before they
//! are read, with every error located in the file it comes from.

use std::path::Path;

use crate::cli::exit::Failure;
use crate::core::cluster::manifest::{self, ClusterSpec};
use crate::core::scenario::{self, ClusterSource, Scenario};
use crate::core::yaml::{SourceError, MAX_SOURCE_BYTES};

/// Reads a user-written file, refusing huge ones before reading them; errors point at the file.
fn read_source(path: &Path) -> Result<(String, String), SourceError> {
    let origin = path.display().to_string();
    let located = |message: String| SourceError {
        origin: origin.clone(),
        line: 1,
        column: 1,
        message,
    };
    let meta =
        std::fs::metadata(path).map_err(|e| located(format!("cannot read the file: {e}")))?;
    if meta.len() > MAX_SOURCE_BYTES as u64 {
        let limit = MAX_SOURCE_BYTES;
        return Err(located(format!(
            "file is {} bytes; at most {limit} bytes are read",
            meta.len()
        )));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| located(format!("cannot read the file: {e}")))?;
    Ok((text, origin))
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
    let has_steps = || {
        std::fs::read_to_string(path)
            .map(|t| t.lines().any(|l| l.starts_with("steps:")))
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
