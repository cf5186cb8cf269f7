//! The agent's record of every node's fault plane: a small JSON file in the cluster's agent volume,
//! rewritten (atomically) on every change, read back by an agent that starts again so it restores each
//! node before it answers a request.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::core::faults::plane::NodeFaults;
use crate::core::faults::rules::settable;

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
        Ok(bytes) => parse(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Record::new()),
        Err(e) => Err(e),
    }
}

/// A record from the bytes of its file, holding only planes a request could have set
/// ([`settable`]): the record is restored without the checks of a request, and a plane no request
/// could set (a peer past the last node, a rate of 0 bit/s) would put a rule against another node's
/// address or stop a shaping thread.
pub fn parse(bytes: &[u8]) -> Result<Record, String> {
    let record: Record = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    for (name, r) in &record {
        settable(name, &r.faults)?;
    }
    Ok(record)
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

    /// Found by the `agent_record` fuzz target: the record was read without the checks of the agent's
    /// requests, so a damaged one restored a plane no request could set — a delay of 1006 s, a cut
    /// towards peer 42949672950 (a rule against whichever node that wrapped address is), a rate of
    /// 0 bit/s (a division by zero in the shaping thread). Such a record is refused now, naming the
    /// node, as an unreadable one is: the agent does not start on it.
    #[test]
    fn a_record_with_a_plane_no_request_could_set_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        for (faults, why) in [
            (r#"{"shaping":{"delay_us":1006553600}}"#, "at most 60s"),
            (
                r#"{"cuts":{"42949672950":"drop"}}"#,
                "peer 42949672950 is no node",
            ),
            (r#"{"links":{"1":{"rate_bps":0}}}"#, "rate"),
        ] {
            let text = format!(r#"{{"n1":{{"container":"c1","faults":{faults}}}}}"#);
            std::fs::write(&path, text).unwrap();
            let e = read(&path).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            let said = e.to_string();
            assert!(said.contains("node `n1`") && said.contains(why), "{said}");
        }
    }
}
