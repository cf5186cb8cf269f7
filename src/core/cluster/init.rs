//! The protocol between regbox and the init of its node images (`images/init/init.rs`): the request
//! regbox writes into a node's data directory before it sends `SIGUSR1`, the answer the init writes
//! once bitcoind runs again, and what a snapshot's name may be.

use std::fmt;

/// What the init is asked to do with the node's chain directory, bitcoind stopped meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Only put the `.next` files regbox wrote in place (one rename each), bitcoind left running.
    Files,
    /// Throw the chain away: bitcoind starts on a fresh chain (and wallet directory).
    Fresh,
    /// Keep a copy of the chain, wallets and mempool as snapshot `name` (bitcoind flushes first).
    Save(String),
    /// Replace the chain by snapshot `name`.
    Restore(String),
}

/// One request, told apart from earlier ones by its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: String,
    pub action: Action,
}

impl fmt::Display for Request {
    /// The request file's line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.action {
            Action::Files => writeln!(f, "{} files", self.id),
            Action::Fresh => writeln!(f, "{} fresh", self.id),
            Action::Save(name) => writeln!(f, "{} save {name}", self.id),
            Action::Restore(name) => writeln!(f, "{} restore {name}", self.id),
        }
    }
}

/// The init's answer to request `id` in the text of its answer file: None while it has not answered
/// that request, else whether it was carried out (the init's reason when not).
pub fn answer(text: &str, id: &str) -> Option<Result<(), String>> {
    let line = text.lines().next()?;
    let (seen, rest) = line.split_once(' ')?;
    if seen != id {
        return None;
    }
    Some(match rest.strip_prefix("error ") {
        Some(why) => Err(why.to_string()),
        None if rest == "ok" => Ok(()),
        None => Err(format!("unreadable answer `{line}`")),
    })
}

/// The longest snapshot name.
pub const MAX_NAME: usize = 64;

/// Checks a snapshot's name: 1 to [`MAX_NAME`] letters, digits, `-`, `_` and `.`, not starting with
/// `.` (it names a directory in every node's data directory, and a file's entries on export).
pub fn check_name(name: &str) -> Result<(), String> {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if name.is_empty() || name.len() > MAX_NAME || name.starts_with('.') || !plain {
        return Err(format!(
            "snapshot name `{name}`: expected 1 to {MAX_NAME} letters, digits, `-`, `_` or `.`, not starting with `.`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_one_line_the_init_reads() {
        let r = |action| Request {
            id: "7f".into(),
            action,
        };
        assert_eq!(r(Action::Fresh).to_string(), "7f fresh\n");
        assert_eq!(r(Action::Files).to_string(), "7f files\n");
        assert_eq!(r(Action::Save("c200".into())).to_string(), "7f save c200\n");
        assert_eq!(
            r(Action::Restore("c200".into())).to_string(),
            "7f restore c200\n"
        );
    }

    #[test]
    fn only_the_answer_to_this_request_counts() {
        assert_eq!(answer("", "b"), None);
        assert_eq!(answer("a ok\n", "b"), None);
        assert_eq!(answer("b ok\n", "b"), Some(Ok(())));
        assert_eq!(
            answer("b error there is no snapshot `x` here\n", "b"),
            Some(Err("there is no snapshot `x` here".into()))
        );
        assert!(matches!(answer("b maybe\n", "b"), Some(Err(_))));
    }

    #[test]
    fn snapshot_names_stay_inside_the_snapshot_directory() {
        for good in ["c200", "funded-wallets", "v1.2_b"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "../x",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
