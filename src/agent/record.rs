//! The agent's record of every node's fault plane: a small JSON file in the cluster's agent volume,
//! rewritten (atomically) on every change, read back by an agent that starts again so it restores each
//! node before it answers a request.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::core::faults::plane::NodeFaults;

/// The record's file name, in the agent's state directory.
pub const FILE: &str = "plane.json";

/// One node as recorded: the container whose namespace holds its plane, and the plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    /// Its container's full ID ("" when it was not running when last set).
    pub container: String,
    pub faults: NodeFaults,
}

/// Every node with faults, by node name.
pub type Record = BTreeMap<String, Recorded>;

/// The record at `path` (none yet: empty). A record that cannot be read is an error, never an empty
/// plane: the agent would otherwise overwrite it with nothing.
pub fn read(path: &Path) -> io::Result<Record> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Record::new()),
        Err(e) => Err(e),
    }
}

/// Replaces the record at `path` with `record`: written beside it, flushed, then renamed over it, so
/// a reader (or an agent killed half way) sees the old record or the new one, never a part.
pub fn write(path: &Path, record: &Record) -> io::Result<()> {
    let tmp = path.with_extension("json.new");
    let mut file = File::create(&tmp)?;
    file.write_all(&serde_json::to_vec(record).map_err(io::Error::other)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::faults::plane::{delay, Block};

    #[test]
    fn a_record_reads_back_as_written_and_a_damaged_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        assert!(read(&path).unwrap().is_empty());
        let record = Record::from([(
            "n1".to_string(),
            Recorded {
                container: "ab".repeat(32),
                faults: NodeFaults {
                    cuts: BTreeMap::from([(2, Block::Silent)]),
                    shaping: Some(delay(100)),
                    links: BTreeMap::from([(3, delay(5))]),
                },
            },
        )]);
        write(&path, &record).unwrap();
        assert_eq!(read(&path).unwrap(), record);
        write(&path, &Record::new()).unwrap();
        assert!(read(&path).unwrap().is_empty());
        std::fs::write(&path, b"{\"n1\": {\"contai").unwrap();
        assert_eq!(read(&path).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
