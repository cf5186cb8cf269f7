//! The operator's HTTP interface (HTTP/1.1, JSON): `GET /status` (every watched cluster: declared
//! size, holds, the last pass and its changes or error, the last sample), `GET /metrics` (Prometheus
//! text), `GET /healthz`, `GET /clusters/{name}/status` (what `regbox status` shows), and
//! `POST /clusters/{name}/partition|heal|faults|mine`, which act on a cluster as the CLI's commands do
//! (under its lock) and then wake its watcher.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::core::fault::Fault;
use crate::core::names::error_chain;
use crate::core::partition::{CutMode, PartitionKind, Via};
use crate::engine::cluster::Cluster;
use crate::engine::error::Error;
use crate::operator::Shared;

/// The largest request body read.
const MAX_BODY: usize = 1 << 20;

/// The next connection on `listener`. A failed accept (out of descriptors, say) is logged and tried
/// again a moment later rather than in a spin.
pub(crate) async fn accept(
    listener: &TcpListener,
) -> (tokio::net::TcpStream, std::net::SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves requests on `listener` until the task is dropped; `timeout` bounds each request's waits.
pub async fn serve(op: Shared, listener: TcpListener, timeout: Duration) {
    loop {
        let (stream, _) = accept(&listener).await;
        let op = op.clone();
        tokio::task::spawn_local(async move {
            let service = hyper::service::service_fn(move |req| {
                let op = op.clone();
                async move { Ok::<_, Infallible>(respond(&op, req, timeout).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!("connection: {e}");
            }
        });
    }
}

/// A failed request: its status and message.
struct Refused(StatusCode, String);

impl From<Error> for Refused {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::UnknownCluster(_) | Error::Removed(_) => StatusCode::NOT_FOUND,
            Error::Locked { .. } => StatusCode::CONFLICT,
            Error::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            e if e.is_bad_input() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Refused(status, error_chain(&e))
    }
}

async fn respond(op: &Shared, req: Request<Incoming>, timeout: Duration) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    tracing::debug!("{method} {path}");
    let result = route(op, req, timeout).await;
    match result {
        Ok(Reply::Json(v)) => reply(StatusCode::OK, "application/json", v.to_string() + "\n"),
        Ok(Reply::Text(t)) => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            t,
        ),
        Err(Refused(status, message)) => {
            tracing::info!("{method} {path}: {status}: {message}");
            let body = json!({ "error": message }).to_string() + "\n";
            reply(status, "application/json", body)
        }
    }
}

fn reply(status: StatusCode, kind: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", kind)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

enum Reply {
    Json(Value),
    Text(String),
}

async fn route(op: &Shared, req: Request<Incoming>, timeout: Duration) -> Result<Reply, Refused> {
    let path: Vec<String> = req
        .uri()
        .path()
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    let method = req.method().clone();
    match (&method, parts.as_slice()) {
        (&Method::GET, ["healthz"]) => Ok(Reply::Text("ok\n".into())),
        (&Method::GET, ["status"]) => Ok(Reply::Json(json!({ "clusters": op.states() }))),
        (&Method::GET, ["metrics"]) => Ok(Reply::Text(op.exposition())),
        (&Method::GET, ["clusters", cluster, "status"]) => {
            let c = Cluster::open(Some(cluster)).await?;
            Ok(Reply::Json(to_json(&c.status().await?)))
        }
        (&Method::POST, ["clusters", _, "status"]) => Err(Refused(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST is not allowed here".into(),
        )),
        (&Method::POST, ["clusters", cluster, action]) => {
            let cluster = cluster.to_string();
            let action = action.to_string();
            let body = body(req).await?;
            let result = act(&cluster, &action, body, timeout).await;
            // The watcher looks again at once, whatever the outcome.
            op.kick(&cluster, &format!("request: {action}"));
            result.map(Reply::Json)
        }
        (_, ["status" | "metrics" | "healthz"]) | (_, ["clusters", _, _]) => Err(Refused(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed here"),
        )),
        _ => Err(Refused(
            StatusCode::NOT_FOUND,
            "no such endpoint: GET /status, /metrics, /healthz, /clusters/NAME/status; POST /clusters/NAME/partition|heal|faults|mine".into(),
        )),
    }
}

/// The request's JSON body (an empty body is `{}`).
async fn body(req: Request<Incoming>) -> Result<Value, Refused> {
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            Refused(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        })?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        Refused(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )
    })
}

/// Reads a request body as `T`, naming what was wrong with it.
fn parse<T: for<'de> Deserialize<'de>>(body: Value) -> Result<T, Refused> {
    serde_json::from_value(body).map_err(|e| Refused(StatusCode::BAD_REQUEST, format!("{e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionBody {
    /// `"halves"`, `{"groups": [["n0","n1"],["n2"]]}`, `{"isolate": "n1"}`, … (as in scenarios).
    kind: PartitionKind,
    #[serde(default)]
    via: Via,
    #[serde(default)]
    mode: CutMode,
    #[serde(default)]
    reset: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealBody {
    /// Also wait until every node is on the most-work tip, and report reorg depths.
    #[serde(default)]
    sync: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultBody {
    node: String,
    fault: Fault,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MineBody {
    node: String,
    #[serde(default = "one")]
    blocks: u64,
}

fn one() -> u64 {
    1
}

/// Carries out one POST on `cluster`.
async fn act(
    cluster: &str,
    action: &str,
    body: Value,
    timeout: Duration,
) -> Result<Value, Refused> {
    match action {
        "partition" => {
            let b: PartitionBody = parse(body)?;
            let mut c = Cluster::open(Some(cluster)).await?;
            let report = c
                .partition_via(&b.kind, b.mode, b.via, b.reset, timeout)
                .await?;
            Ok(to_json(&report))
        }
        "heal" => {
            let b: HealBody = parse(body)?;
            let mut c = Cluster::open(Some(cluster)).await?;
            if b.sync {
                Ok(to_json(&c.heal_and_sync(timeout).await?))
            } else {
                Ok(to_json(&c.heal(timeout).await?))
            }
        }
        "faults" => {
            let b: FaultBody = parse(body)?;
            let c = Cluster::open(Some(cluster)).await?;
            c.fault(&b.node, b.fault, timeout).await?;
            Ok(json!({ "node": b.node, "fault": b.fault }))
        }
        "mine" => {
            let b: MineBody = parse(body)?;
            let c = Cluster::open(Some(cluster)).await?;
            let hashes = c.mine(&b.node, b.blocks).await?;
            let node = c.node(&b.node)?;
            let height = node.rpc.get_block_count().await.map_err(Error::from)?;
            Ok(json!({ "node": node.name(), "height": height, "blocks": hashes }))
        }
        other => Err(Refused(
            StatusCode::NOT_FOUND,
            format!("no action `{other}`: partition, heal, faults or mine"),
        )),
    }
}

/// A report as a reply.
fn to_json<T: serde::Serialize>(report: &T) -> Value {
    serde_json::to_value(report).expect("a report serializes")
}
