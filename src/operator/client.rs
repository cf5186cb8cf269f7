//! The CLI's side of the operator's HTTP interface: where an operator is (`REGBOX_OPERATOR`, or the
//! default address when this machine cannot reach the nodes), and one request at a time to it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

/// Where `docker-compose.yml` publishes the operator, and where `regbox operator` listens by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9181";

/// How long the default address may take to answer before it counts as no operator.
const PROBE: Duration = Duration::from_millis(500);

/// An operator's HTTP interface.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
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
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// An operator answering at the default address, if one does.
    pub async fn probe_default() -> Option<Client> {
        let client = Client::new(DEFAULT_URL);
        let health = tokio::time::timeout(PROBE, client.request("GET", "/healthz", None)).await;
        matches!(health, Ok(Ok(_))).then_some(client)
    }

    pub async fn get(&self, path: &str) -> Result<Value, Refusal> {
        self.request("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, Refusal> {
        self.request("POST", path, Some(body)).await
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Refusal> {
        let unanswered = |e: String| Refusal {
            status: None,
            message: format!("the operator at {} did not answer: {e}", self.base),
        };
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| unanswered(e.to_string()))?;
        let res = client
            .request(req)
            .await
            .map_err(|e| unanswered(crate::core::names::error_chain(&e)))?;
        let status = res.status().as_u16();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(|e| unanswered(e.to_string()))?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        let value: Value = if path == "/healthz" || path == "/metrics" {
            Value::String(text.to_string())
        } else {
            serde_json::from_str(&text).map_err(|e| unanswered(format!("unreadable reply: {e}")))?
        };
        if status == 200 {
            return Ok(value);
        }
        Err(Refusal {
            status: Some(status),
            message: value["error"]
                .as_str()
                .map_or_else(|| text.to_string(), str::to_string),
        })
    }
}
