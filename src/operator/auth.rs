//! Who may act through the operator: the bearer token it requires (from `--token-file` or
//! `REGBOX_TOKEN`), compared in constant time, and the rule that an operator listening beyond this
//! machine's loopback must have one.

use std::net::SocketAddr;
use std::path::Path;

use sha2::{Digest, Sha256};

/// The environment variable holding the token (the operator's, and the CLI's for `--operator`).
pub const TOKEN_ENV: &str = "REGBOX_TOKEN";

/// A bearer token. Its text never shows in `Debug`.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    /// A token from its text, trimmed of surrounding whitespace (a file's final newline); empty, or
    /// with whitespace or control characters inside, is refused.
    pub fn new(text: &str) -> Result<Token, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("the token is empty".into());
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the token holds whitespace or control characters".into());
        }
        Ok(Token(text.to_string()))
    }

    /// The token of `--token-file PATH` if given, else of `REGBOX_TOKEN` if set (and not empty).
    pub fn from_file_or_env(file: Option<&Path>) -> Result<Option<Token>, String> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
            return Token::new(&text)
                .map(Some)
                .map_err(|e| format!("the token file {}: {e}", path.display()));
        }
        match std::env::var(TOKEN_ENV) {
            Ok(text) if !text.trim().is_empty() => Token::new(&text)
                .map(Some)
                .map_err(|e| format!("{TOKEN_ENV}: {e}")),
            _ => Ok(None),
        }
    }

    /// The token's text, for a client's `Authorization` header.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// Whether an `Authorization` header's value is `Bearer <this token>`, compared in constant time.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let presented = authorization
            .and_then(|v| v.strip_prefix(b"Bearer "))
            .unwrap_or_default();
        same_secret(presented, self.0.as_bytes()) && authorization.is_some()
    }
}

/// Whether two secrets are equal, in a time that does not depend on the values: both are hashed and
/// the digests compared byte by byte without an early exit.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Refuses to serve beyond loopback without a token: an address other than 127.0.0.0/8 or ::1 lets
/// anyone who reaches this machine act on its clusters.
pub fn require_for(listen: SocketAddr, token: Option<&Token>) -> Result<(), String> {
    if token.is_some() || listen.ip().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "the operator would listen on {listen}, beyond this machine's loopback, where anyone who reaches \
         it could act on its clusters: give it a token (--token-file PATH, or {TOKEN_ENV}), which every \
         request must then present as `Authorization: Bearer TOKEN`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_admits_exactly_its_bearer_header() {
        let t = Token::new("s3cret-token\n").unwrap();
        assert!(t.admits(Some(b"Bearer s3cret-token")));
        assert!(!t.admits(Some(b"Bearer s3cret-toke")));
        assert!(!t.admits(Some(b"Bearer s3cret-tokenX")));
        assert!(!t.admits(Some(b"bearer s3cret-token")));
        assert!(!t.admits(Some(b"s3cret-token")));
        assert!(!t.admits(Some(b"")));
        assert!(!t.admits(None));
        assert_eq!(format!("{t:?}"), "Token(…)");
    }

    #[test]
    fn an_empty_or_spaced_token_is_refused() {
        assert!(Token::new(" \n").is_err());
        assert!(Token::new("two words").is_err());
        assert_eq!(Token::new(" abc \n").unwrap().text(), "abc");
    }

    #[test]
    fn beyond_loopback_a_token_is_required() {
        let token = Token::new("t").unwrap();
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(require_for(at("127.0.0.1:9181"), None).is_ok());
        assert!(require_for(at("[::1]:9181"), None).is_ok());
        let e = require_for(at("0.0.0.0:9181"), None).unwrap_err();
        assert!(
            e.contains("0.0.0.0:9181") && e.contains("--token-file"),
            "{e}"
        );
        assert!(require_for(at("0.0.0.0:9181"), Some(&token)).is_ok());
        assert!(require_for(at("192.168.1.5:9181"), None).is_err());
    }
}
