//! The CLI's side of the operator's HTTP interface: where an operator is (`REGBOX_OPERATOR`, or the
//! default address when this machine cannot reach the nodes), and one request at a time to it, over
//! HTTPS for an https:// URL (trusting the CA of `--operator-ca`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::core::verb::{Report, Verb};
use crate::engine::rpc::read_body;
use crate::operator::auth::Token;

/// Where `docker-compose.yml` publishes the operator, and where `regbox operator` listens by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9181";

/// The most bytes of one reply of the operator that are read (a streamed `logs -f` is handed on piece by
/// piece and not bounded). A verb's report over 1000 nodes (`status`, `measure`) stays far below; the
/// one reply that can pass it is `logs` without a tail of a node whose log has grown past 64 MiB, which
/// is refused at the limit (ask with `--tail`, or follow with `-f`). Past this, reading would only grow
/// memory.
pub const MAX_REPLY_BYTES: usize = 64 << 20;

/// How long the default address may take to answer before it counts as no operator.
const PROBE: Duration = Duration::from_millis(500);

/// An operator's HTTP interface.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    /// Sent as `Authorization: Bearer …` with every request.
    token: Option<Token>,
    /// Whom an https:// operator is trusted by (see [`Client::trusting`]).
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// A refused or failed request: the HTTP status (None: no answer) and the operator's message.
#[derive(Debug)]
pub struct Refusal {
    pub status: Option<u16>,
    pub message: String,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            token: None,
            tls: None,
        }
    }

    /// The same operator, an https:// one trusted by the certificates of `tls` (an http:// one is
    /// asked in plain HTTP whatever it holds). Without it, an https:// operator is trusted by nothing
    /// and refused.
    pub fn trusting(self, tls: Arc<rustls::ClientConfig>) -> Client {
        Client {
            tls: Some(tls),
            ..self
        }
    }

    /// Whether the operator is asked over HTTPS.
    fn https(&self) -> bool {
        self.base.starts_with("https://")
    }

    /// The same operator, asked with `token`.
    pub fn with_token(self, token: Option<Token>) -> Client {
        Client { token, ..self }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// An operator answering at the default address, if one does (asked with `token` from then on).
    pub async fn probe_default(token: Option<Token>) -> Option<Client> {
        let client = Client::new(DEFAULT_URL).with_token(token);
        let health = tokio::time::timeout(PROBE, client.request("GET", "/healthz", None)).await;
        matches!(health, Ok(Ok(_))).then_some(client)
    }

    pub async fn get(&self, path: &str) -> Result<Value, Refusal> {
        self.request("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, Refusal> {
        self.request("POST", path, Some(body)).await
    }

    /// Asks the operator to carry out `verb` on `cluster`; its reply read back as the verb's report.
    pub async fn verb(&self, cluster: &str, verb: &Verb) -> Result<Report, Refusal> {
        let body = serde_json::to_value(verb).expect("a verb serializes");
        let reply = self.post(&verbs_path(cluster), body).await?;
        Report::parse(verb, reply).map_err(|e| Refusal {
            status: None,
            message: format!("unreadable reply of the operator at {}: {e}", self.base),
        })
    }

    /// Asks for a streamed verb (`logs` with `follow`) and hands each chunk of text to `each` as it
    /// comes, until the operator ends the stream.
    pub async fn stream(
        &self,
        cluster: &str,
        verb: &Verb,
        mut each: impl FnMut(&str),
    ) -> Result<(), Refusal> {
        let body = serde_json::to_value(verb).expect("a verb serializes");
        let res = self.send("POST", &verbs_path(cluster), Some(body)).await?;
        if res.status() != 200 {
            let status = res.status().as_u16();
            let text = self.read(res).await?;
            return Err(refusal(status, &text));
        }
        let mut body = res.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| self.unanswered(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                each(&String::from_utf8_lossy(data));
            }
        }
        Ok(())
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Refusal> {
        let res = self.send(method, path, body).await?;
        let status = res.status().as_u16();
        let text = self.read(res).await?;
        if status != 200 {
            return Err(refusal(status, &text));
        }
        if path == "/healthz" || path == "/metrics" {
            return Ok(Value::String(text));
        }
        serde_json::from_str(&text).map_err(|e| self.unanswered(format!("unreadable reply: {e}")))
    }

    /// Sends one request and returns the response as it starts.
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, Refusal> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Bearer {}", token.text()));
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| self.unanswered(e.to_string()))?;
        if self.https() {
            return self.send_tls(req).await;
        }
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        client
            .request(req)
            .await
            .map_err(|e| self.unanswered(crate::core::names::error_chain(&e)))
    }

    /// `req` (an https:// URL) over one TLS connection of its own: TCP, the handshake (the operator's
    /// certificate checked against the CA given and the URL's host), then HTTP/1.1 on it.
    async fn send_tls(
        &self,
        mut req: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, Refusal> {
        let uri = req.uri().clone();
        let host = uri.host().unwrap_or_default();
        let port = uri.port_u16().unwrap_or(443);
        // An IPv6 literal comes bracketed in a URL, bare in a server name.
        let name = rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']))
            .map_err(|e| self.unanswered(format!("`{host}` is no host name: {e}")))?
            .to_owned();
        let tls = match &self.tls {
            Some(tls) => tls.clone(),
            None => crate::operator::tls::client_config(None).map_err(|e| self.unanswered(e))?,
        };
        let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| self.unanswered(format!("cannot connect: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| self.unanswered(self.handshake_failed(&e)))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| self.unanswered(crate::core::names::error_chain(&e)))?;
        tokio::spawn(conn);
        // One connection to the operator: the request carries its path, and the host in a header.
        let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        *req.uri_mut() = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .expect("a path is a URI");
        let value = hyper::header::HeaderValue::from_str(&authority)
            .map_err(|e| self.unanswered(e.to_string()))?;
        req.headers_mut().insert(hyper::header::HOST, value);
        sender
            .send_request(req)
            .await
            .map_err(|e| self.unanswered(crate::core::names::error_chain(&e)))
    }

    /// A failed TLS handshake worded for a person: a certificate refused says what to trust it by.
    fn handshake_failed(&self, e: &std::io::Error) -> String {
        let certificate = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .is_some_and(|e| {
                matches!(
                    e,
                    rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
                )
            });
        if !certificate {
            return format!("TLS handshake: {e}");
        }
        let given = if self.tls.is_some() {
            "check that the CA given (--operator-ca or REGBOX_OPERATOR_CA) signed it and that it \
             names the URL's host"
        } else {
            "give the CA that signed it (or the certificate itself) with --operator-ca FILE or \
             REGBOX_OPERATOR_CA"
        };
        format!("its TLS certificate is not trusted ({e}): {given}")
    }

    /// A whole response body as text, refused past [`MAX_REPLY_BYTES`].
    async fn read(&self, res: hyper::Response<hyper::body::Incoming>) -> Result<String, Refusal> {
        let bytes = read_body(res.into_body(), MAX_REPLY_BYTES)
            .await
            .map_err(|e| self.unanswered(e))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn unanswered(&self, e: String) -> Refusal {
        Refusal {
            status: None,
            message: format!("the operator at {} did not answer: {e}", self.base),
        }
    }
}

/// The operator's one endpoint for verbs on `cluster`.
fn verbs_path(cluster: &str) -> String {
    format!("/clusters/{cluster}/verbs")
}

/// A refusal with `status`: the message of its `{"error": …}` body, else the body itself.
fn refusal(status: u16, text: &str) -> Refusal {
    let value: Value = serde_json::from_str(text).unwrap_or_default();
    Refusal {
        status: Some(status),
        message: value["error"]
            .as_str()
            .map_or_else(|| text.trim().to_string(), str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An operator address that answers with a body without end: the request fails at the limit
    /// instead of reading on.
    #[tokio::test]
    async fn an_endless_reply_is_refused_at_the_limit() {
        let addr = crate::engine::rpc::tests::endless_server(None).await;
        let client = Client::new(&format!("http://{addr}"));
        let refusal = tokio::time::timeout(Duration::from_secs(30), client.get("/status"))
            .await
            .expect("the request ends within 30 s")
            .expect_err("an endless reply is refused");
        assert_eq!(refusal.status, None);
        assert_eq!(
            refusal.message,
            format!(
                "the operator at http://{addr} did not answer: the reply is larger than 64 MiB, the most \
                 regbox reads"
            )
        );
    }
}
