//! Bitcoin Core releases as plain data: a release version, the files of its release directory, the
//! image it becomes (`regbox/bitcoind:core-VERSION`, `core-VERSION` in a manifest), reading a
//! `SHA256SUMS` file, and counting the good signatures in `gpgv --status-fd` output.

use std::collections::BTreeSet;

use crate::core::cluster::blueprint::NODE_IMAGE_REPO;

/// Where Bitcoin Core's releases are published: `<this>/bitcoin-core-VERSION/<file>`.
pub const OFFICIAL_MIRROR: &str = "https://bitcoincore.org/bin";
/// The prefix of a node image's tag (and of a manifest's short image name) naming a Core release.
pub const TAG_PREFIX: &str = "core-";
/// Good signatures by distinct keys of the keyring a release needs unless told otherwise (Core's own
/// `contrib/verify-binaries` asks for 3 too).
pub const DEFAULT_MIN_SIGNATURES: usize = 3;
/// The file listing every release file's SHA-256, and the builders' detached signatures of it.
pub const SUMS: &str = "SHA256SUMS";
pub const SUMS_SIGNATURES: &str = "SHA256SUMS.asc";

/// What a release version looks like, as error messages say it.
pub const VERSION_RULE: &str =
    "a Bitcoin Core release version such as 27.2, 28.1 or 0.21.2 (digits and dots; release candidates are not published in the same place)";

/// A Bitcoin Core release version: `MAJOR.MINOR` or `MAJOR.MINOR.PATCH`, each a number of at most four
/// digits (`27.2`, `0.21.2`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CoreVersion(String);

impl CoreVersion {
    /// Reads `text`, or says what was expected.
    pub fn parse(text: &str) -> Result<CoreVersion, String> {
        let parts: Vec<&str> = text.split('.').collect();
        let number =
            |p: &&str| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit());
        if (2..=3).contains(&parts.len()) && parts.iter().all(number) {
            Ok(CoreVersion(text.to_string()))
        } else {
            Err(format!(
                "invalid Bitcoin Core version `{}`, expected {VERSION_RULE}",
                text.escape_debug()
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The release tarball for x86-64 Linux (the only architecture regbox's images are built for).
    pub fn tarball(&self) -> String {
        format!("bitcoin-{}-x86_64-linux-gnu.tar.gz", self.0)
    }

    /// The release directory under `mirror` (no trailing slash).
    pub fn directory(&self, mirror: &str) -> String {
        format!("{}/bitcoin-core-{}", mirror.trim_end_matches('/'), self.0)
    }

    /// The node image built from this release: `regbox/bitcoind:core-VERSION`.
    pub fn image(&self) -> String {
        format!("{NODE_IMAGE_REPO}:{}", self.tag())
    }

    /// That image's tag, `core-VERSION`.
    pub fn tag(&self) -> String {
        format!("{TAG_PREFIX}{}", self.0)
    }
}

impl std::fmt::Display for CoreVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The release a node image is built from, when it is `regbox/bitcoind:core-VERSION` with a valid
/// version.
pub fn image_release(image: &str) -> Option<CoreVersion> {
    let tag = image.strip_prefix(NODE_IMAGE_REPO)?.strip_prefix(':')?;
    CoreVersion::parse(tag.strip_prefix(TAG_PREFIX)?).ok()
}

/// A manifest's (or `up --image`'s) image name as `up` uses it: `core-VERSION` is short for
/// `regbox/bitcoind:core-VERSION`; a `core-…` that is not a release version is refused (it would
/// otherwise name a Docker Hub image no one means); anything else is kept as it is.
pub fn expand_image(image: &str) -> Result<String, String> {
    match image.strip_prefix(TAG_PREFIX) {
        Some(version) if !image.contains([':', '/', '@']) => {
            CoreVersion::parse(version).map(|v| v.image()).map_err(|_| {
                format!(
                    "invalid image `{}`, expected core-VERSION with {VERSION_RULE}",
                    image.escape_debug()
                )
            })
        }
        _ => Ok(image.to_string()),
    }
}

/// The SHA-256 (lower-case hex) `SHA256SUMS` lists for `file`, if it lists it once with a well-formed
/// hash (`<64 hex digits>  <file>`, or `*<file>` for binary mode).
pub fn listed_sum(sums: &str, file: &str) -> Option<String> {
    let mut found = sums.lines().filter_map(|line| {
        let (hash, name) = line.trim_end().split_once(char::is_whitespace)?;
        let name = name.trim_start();
        let name = name.strip_prefix('*').unwrap_or(name);
        (name == file && hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| hash.to_ascii_lowercase())
    });
    let first = found.next()?;
    found.all(|other| other == first).then_some(first)
}

/// The primary-key fingerprints of the keys that made a good signature, read from `gpgv --status-fd`
/// output: each signature (from `NEWSIG` on) counts when gpgv said `GOODSIG` (or `EXPKEYSIG`: good,
/// made by a key that has expired since, as builders' keys do) and `VALIDSIG`, and not when it said
/// the key was revoked, the signature expired or bad, or it could not check it. Several signatures by
/// one key count once.
pub fn good_signers(status: &str) -> BTreeSet<String> {
    let mut signers = BTreeSet::new();
    let mut current: Option<(bool, bool, Option<String>)> = None; // (good, spoiled, primary key)
    let mut close = |sig: Option<(bool, bool, Option<String>)>| {
        if let Some((true, false, Some(key))) = sig {
            signers.insert(key);
        }
    };
    for line in status.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("[GNUPG:]") {
            continue;
        }
        let keyword = words.next().unwrap_or_default();
        if keyword == "NEWSIG" {
            close(current.replace((false, false, None)));
            continue;
        }
        let sig = current.get_or_insert((false, false, None));
        match keyword {
            "GOODSIG" | "EXPKEYSIG" => sig.0 = true,
            "REVKEYSIG" | "BADSIG" | "EXPSIG" | "ERRSIG" => sig.1 = true,
            // VALIDSIG <fpr> <date> <ts> <expire> <ver> <res> <algo> <hash> <class> <primary fpr>
            "VALIDSIG" => {
                let fields: Vec<&str> = words.collect();
                let primary = fields.get(9).or(fields.first());
                sig.2 = primary.map(|f| f.to_ascii_uppercase());
            }
            _ => {}
        }
    }
    close(current);
    signers
}

/// The status code and `Content-Length` of the last response in `curl --head --location` output (one
/// header block per response, redirects first).
pub fn last_response(headers: &str) -> Option<(u16, Option<u64>)> {
    let lines: Vec<&str> = headers.lines().map(str::trim_end).collect();
    let at = lines.iter().rposition(|l| l.starts_with("HTTP/"))?;
    let code = lines[at].split_whitespace().nth(1)?.parse().ok()?;
    let length = lines[at + 1..].iter().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            value.trim().parse().ok()
        } else {
            None
        }
    });
    Some((code, length))
}

/// A keyring as gpgv reads it (binary OpenPGP packets): `keys` as they are when they are binary, or
/// every `PUBLIC KEY BLOCK` of ASCII armor decoded and put one after the other (as builders' keys
/// are published). Says what was expected when there is no key in it.
pub fn dearmor(keys: &[u8]) -> Result<Vec<u8>, String> {
    use base64::Engine;
    const BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
    let text = String::from_utf8_lossy(keys);
    if !text.trim_start().starts_with("-----BEGIN PGP") {
        // Binary OpenPGP: the first packet's tag byte has its top bit set.
        return match keys.first() {
            Some(b) if b & 0x80 != 0 => Ok(keys.to_vec()),
            _ => Err("expected OpenPGP public keys, armored (-----BEGIN PGP PUBLIC KEY BLOCK-----) or binary".into()),
        };
    }
    let (mut out, mut body, mut data) = (Vec::new(), None::<bool>, String::new());
    for line in text.lines().map(str::trim) {
        match body {
            _ if line == BEGIN => (body, data) = (Some(false), String::new()),
            None => {}
            Some(_) if line.starts_with("-----END PGP PUBLIC KEY BLOCK") => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(&data)
                    .map_err(|e| format!("a public key block is not valid base64: {e}"))?;
                out.extend(decoded);
                body = None;
            }
            // Armor headers (`Comment: …`) end at the first empty line.
            Some(false) => body = Some(line.is_empty()),
            // The checksum line (`=abcd`) is not part of the data.
            Some(true) if line.starts_with('=') => {}
            Some(true) => data.push_str(line),
        }
    }
    if out.is_empty() {
        return Err("expected OpenPGP public keys, found no complete PUBLIC KEY BLOCK".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_release_numbers() {
        for good in ["27.2", "0.21.2", "28.0", "99.0.1"] {
            assert_eq!(CoreVersion::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "27",
            "27.",
            ".2",
            "27.2.1.1",
            "27.x",
            "28.0rc1",
            "v27.2",
            "27 .2",
            "12345.0",
            "27.2/../x",
        ] {
            let e = CoreVersion::parse(bad).unwrap_err();
            assert!(e.contains("such as 27.2"), "{bad}: {e}");
        }
        let v = CoreVersion::parse("27.2").unwrap();
        assert_eq!(v.tarball(), "bitcoin-27.2-x86_64-linux-gnu.tar.gz");
        assert_eq!(
            v.directory("https://bitcoincore.org/bin/"),
            "https://bitcoincore.org/bin/bitcoin-core-27.2"
        );
        assert_eq!(v.image(), "regbox/bitcoind:core-27.2");
        assert_eq!(image_release("regbox/bitcoind:core-27.2"), Some(v));
        assert_eq!(image_release("regbox/bitcoind:knots-29.4"), None);
        assert_eq!(image_release("other/bitcoind:core-27.2"), None);
    }

    #[test]
    fn core_short_names_expand_and_malformed_ones_are_refused() {
        assert_eq!(
            expand_image("core-27.2").unwrap(),
            "regbox/bitcoind:core-27.2"
        );
        assert_eq!(expand_image("core-27.2:1").unwrap(), "core-27.2:1");
        assert_eq!(expand_image("me/core-x").unwrap(), "me/core-x");
        assert_eq!(expand_image("regbox/bitcoind").unwrap(), "regbox/bitcoind");
        let e = expand_image("core-27.x").unwrap_err();
        assert!(
            e.starts_with("invalid image `core-27.x`, expected core-VERSION"),
            "{e}"
        );
    }

    #[test]
    fn sums_are_read_per_file() {
        let h = "a".repeat(64);
        let sums = format!(
            "{h}  bitcoin-1.0-x86_64-linux-gnu.tar.gz\n{}  other.zip\n",
            "b".repeat(64)
        );
        assert_eq!(
            listed_sum(&sums, "bitcoin-1.0-x86_64-linux-gnu.tar.gz"),
            Some(h.clone())
        );
        assert_eq!(
            listed_sum(&format!("{} *x.tar.gz\n", "C".repeat(64)), "x.tar.gz"),
            Some("c".repeat(64))
        );
        assert_eq!(listed_sum(&sums, "missing.tar.gz"), None);
        assert_eq!(listed_sum("abc  x.tar.gz\n", "x.tar.gz"), None);
        // Listed twice with different hashes: neither is believed.
        let twice = format!("{h}  x\n{}  x\n", "b".repeat(64));
        assert_eq!(listed_sum(&twice, "x"), None);
    }

    #[test]
    fn only_good_signatures_by_distinct_keys_count() {
        let status = "\
[GNUPG:] NEWSIG a@x
[GNUPG:] GOODSIG 1111 a
[GNUPG:] VALIDSIG SUB1 2026-01-01 1 0 4 0 22 8 00 AAAA
[GNUPG:] NEWSIG b@x
[GNUPG:] ERRSIG 2222 22 8 00 1 9 BBBB
[GNUPG:] NO_PUBKEY 2222
[GNUPG:] NEWSIG c@x
[GNUPG:] EXPKEYSIG 3333 c
[GNUPG:] VALIDSIG CCCC 2026-01-01 1 0 4 0 22 8 00 CCCC
[GNUPG:] NEWSIG d@x
[GNUPG:] REVKEYSIG 4444 d
[GNUPG:] VALIDSIG DDDD 2026-01-01 1 0 4 0 22 8 00 DDDD
[GNUPG:] NEWSIG a@x
[GNUPG:] GOODSIG 1111 a
[GNUPG:] VALIDSIG SUB2 2026-01-01 1 0 4 0 22 8 00 aaaa
[GNUPG:] NEWSIG e@x
[GNUPG:] BADSIG 5555 e
";
        let keys: Vec<String> = good_signers(status).into_iter().collect();
        assert_eq!(keys, ["AAAA", "CCCC"]);
        assert!(good_signers("").is_empty());
    }
    #[test]
    fn the_last_response_of_a_redirect_chain_counts() {
        let headers = "HTTP/1.1 301 Moved\r\nLocation: x\r\nContent-Length: 5\r\n\r\nHTTP/2 200\r\ncontent-length: 1234\r\n\r\n";
        assert_eq!(last_response(headers), Some((200, Some(1234))));
        assert_eq!(
            last_response("HTTP/1.0 404 File not found\r\n\r\n"),
            Some((404, None))
        );
        assert_eq!(last_response(""), None);
    }

    #[test]
    fn armored_keys_are_decoded_block_by_block() {
        let armor = "-----BEGIN PGP PUBLIC KEY BLOCK-----\nComment: x\n\nmQEN\nAQID\n=abcd\n-----END PGP PUBLIC KEY BLOCK-----\n\
                     -----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQ==\n-----END PGP PUBLIC KEY BLOCK-----\n";
        assert_eq!(
            dearmor(armor.as_bytes()).unwrap(),
            [0x99, 0x01, 0x0d, 0x01, 0x02, 0x03, 0x99]
        );
        assert_eq!(dearmor(&[0x99, 1]).unwrap(), [0x99, 1]);
        assert!(dearmor(b"hello")
            .unwrap_err()
            .contains("expected OpenPGP public keys"));
        let cut = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQEN\n";
        assert!(dearmor(cut.as_bytes()).unwrap_err().contains("no complete"));
        // The keys regbox ships are read whole: one block per builder.
        let shipped = include_str!("../../images/core-keys/builder-keys.asc");
        assert!(dearmor(shipped.as_bytes()).unwrap().len() > 100_000);
    }
}
