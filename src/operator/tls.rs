//! The operator's optional TLS: the server's certificate and key (`regbox operator --tls-cert --tls-key`,
//! PEM) and the CLI's trust in an operator (`--operator-ca`, `REGBOX_OPERATOR_CA`), both with rustls and
//! its ring provider. Only the CA given is trusted: an operator is a lab's own, so the system's roots
//! play no part.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The environment variable naming the CA file the CLI trusts an https:// operator by, as
/// `--operator-ca`.
pub const CA_ENV: &str = "REGBOX_OPERATOR_CA";

/// The first byte of every TLS connection (a handshake record); a plain HTTP request starts with a
/// letter instead.
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// rustls with ring. rustls 0.23.48 deprecates ring's provider for its want of post-quantum key
/// exchange; aws-lc-rs, which has it, needs cmake and a C toolchain to build, which regbox does not ask
/// for. An operator's traffic is a lab's control commands, not long-lived secrets.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of the PEM file at `path` (at least one).
fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read the {what} {shown}: {}", pem_error(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the {what} {shown}: {}", pem_error(&e)))?;
    if certs.is_empty() {
        return Err(format!(
            "the {what} {shown} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certs)
}

/// A PEM error worded for a person (rustls-pki-types' `NoItemsFound` says nothing of what was wanted).
fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(e) => e.to_string(),
        rustls_pki_types::pem::Error::NoItemsFound => "no PEM item of the kind expected".into(),
        e => format!("not valid PEM ({e})"),
    }
}

/// The server side: the certificate chain of `cert` (PEM, the operator's own first) and the private key
/// of `key` (PEM: PKCS#8, PKCS#1 or SEC1), which must be the certificate's. Every error names the file.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain = certificates(cert, "--tls-cert file")?;
    not_a_ca(&chain, cert)?;
    let shown = key.display();
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => format!(
            "the --tls-key file {shown} holds no private key (expected PEM: -----BEGIN PRIVATE KEY-----)"
        ),
        e => format!("cannot read the --tls-key file {shown}: {}", pem_error(&e)),
    })?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "the --tls-key file {shown} is not the key of the certificate in {}",
                cert.display()
            ),
            e => format!(
                "the --tls-cert {} and --tls-key {shown} cannot serve TLS: {e}",
                cert.display()
            ),
        })?;
    Ok(Arc::new(config))
}

/// Refuses a certificate that is itself a CA's (`basicConstraints` `CA:TRUE`, which `openssl req -x509`
/// writes unless told `-addext basicConstraints=critical,CA:FALSE`): webpki, and so the CLI, refuses
/// it as a server's own whatever CA it is given. Checked by verifying the chain against its own
/// certificates; any other outcome (no root in the file, no host name to check it for, expiry) is left
/// to the clients.
fn not_a_ca(chain: &[CertificateDer<'static>], cert: &Path) -> Result<(), String> {
    let mut roots = RootCertStore::empty();
    for c in chain {
        // A certificate that cannot be an anchor only leaves the path to the others.
        let _ = roots.add(c.clone());
    }
    let Ok(verifier) =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
    else {
        return Ok(());
    };
    let name = rustls_pki_types::ServerName::try_from("regbox.invalid").expect("a host name");
    let verified = verifier.verify_server_cert(
        &chain[0],
        &chain[1..],
        &name,
        &[],
        rustls_pki_types::UnixTime::now(),
    );
    // webpki's error type is not rustls's to name; its variant shows in the text.
    match verified {
        Err(e) if format!("{e:?}").contains("CaUsedAsEndEntity") => Err(format!(
            "the --tls-cert file {} holds a CA certificate (basicConstraints CA:TRUE) as the \
             operator's own, which clients refuse: make it with `-addext \
             basicConstraints=critical,CA:FALSE`, or sign a server certificate with that CA",
            cert.display()
        )),
        _ => Ok(()),
    }
}

/// The client side: trusts the certificates of the PEM file `ca` (an operator's CA, or its self-signed
/// certificate), or none at all without one, so that an https:// operator is refused with a
/// certificate error that says what to give.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    if let Some(path) = ca {
        for cert in certificates(path, "operator's CA file")? {
            roots.add(cert).map_err(|e| {
                format!(
                    "the operator's CA file {} holds a certificate that cannot be a CA: {e}",
                    path.display()
                )
            })?;
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_pair(name: &str) -> (String, String) {
        pem_pair_as(name, rcgen::IsCa::NoCa)
    }

    fn pem_pair_as(name: &str, is_ca: rcgen::IsCa) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params.is_ca = is_ca;
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// `openssl req -x509` without `-addext basicConstraints=critical,CA:FALSE` makes a CA certificate,
    /// which the CLI (webpki) refuses as the operator's own ("CaUsedAsEndEntity"): the operator
    /// refuses to serve it, saying how to make one the CLI takes.
    #[test]
    fn a_ca_certificate_as_the_operators_own_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pem_pair_as(
            "localhost",
            rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained),
        );
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
        let e = server_config(&cert_path, &key_path).unwrap_err();
        assert!(
            e.contains("holds a CA certificate") && e.contains("CA:FALSE"),
            "{e}"
        );
    }

    #[test]
    fn a_certificate_and_its_key_serve_and_every_mistake_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let (cert, key) = pem_pair("localhost");
        let (_, other_key) = pem_pair("localhost");
        let (cert, key, other_key) = (
            at("cert.pem", &cert),
            at("key.pem", &key),
            at("other.pem", &other_key),
        );
        assert!(server_config(&cert, &key).is_ok());
        let e = server_config(&cert, &other_key).unwrap_err();
        assert!(e.contains("is not the key of the certificate"), "{e}");
        let e = server_config(&key, &key).unwrap_err();
        assert!(e.contains("holds no certificate"), "{e}");
        let e = server_config(&cert, &cert).unwrap_err();
        assert!(e.contains("holds no private key"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = server_config(&missing, &key).unwrap_err();
        assert!(e.starts_with("cannot read the --tls-cert file"), "{e}");
        assert!(client_config(Some(&cert)).is_ok());
        assert!(client_config(None).is_ok());
        let e = client_config(Some(&key)).unwrap_err();
        assert!(
            e.contains("operator's CA file") && e.contains("no certificate"),
            "{e}"
        );
    }
}
