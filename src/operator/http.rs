//! The operator's HTTP interface (HTTP/1.1, JSON): `GET /status` (every watched cluster: declared
//! size, holds, the last pass and its changes or error, the last sample), `GET /metrics` (Prometheus
//! text), `GET /healthz`, and `POST /clusters/{name}/verbs`, which takes any verb of the vocabulary
//! (`core::verb`) as its body, carries it out through the one executor and answers with its report
//! (`logs` with `follow` streams the log as text), then wakes the cluster's watcher.
//! `GET /clusters/{name}/status` and `POST /clusters/{name}/partition|heal|faults|mine` are aliases:
//! each is read as the verb of its name.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::core::names::error_chain;
use crate::core::verb::Verb;
use crate::engine::cluster::Cluster;
use crate::engine::error::Error;
use crate::engine::exec::{self, Exec};
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

/// A reply's body: whole, or streamed (`logs` with `follow`).
type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A failed request: its status and message.
pub(crate) struct Refused(StatusCode, String);

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

async fn respond(op: &Shared, req: Request<Incoming>, timeout: Duration) -> Response<Body> {
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
        Ok(Reply::Stream(body)) => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body)
            .expect("a valid response"),
        Err(Refused(status, message)) => {
            tracing::info!("{method} {path}: {status}: {message}");
            let body = json!({ "error": message }).to_string() + "\n";
            reply(status, "application/json", body)
        }
    }
}

fn reply(status: StatusCode, kind: &str, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", kind)
        .body(Full::new(Bytes::from(body)).boxed_unsync())
        .expect("a valid response")
}

enum Reply {
    Json(Value),
    Text(String),
    Stream(Body),
}

/// Where each endpoint goes.
const ENDPOINTS: &str = "GET /status, /metrics, /healthz, /clusters/NAME/status; POST /clusters/NAME/verbs (or the aliases partition|heal|faults|mine)";

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
            carry_out(op, cluster, Verb::Status, timeout).await
        }
        (&Method::POST, ["clusters", _, "status"]) => Err(Refused(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST is not allowed here".into(),
        )),
        (&Method::POST, ["clusters", cluster, action]) => {
            let cluster = cluster.to_string();
            let verb = verb_of(action, body(req).await?)?;
            carry_out(op, &cluster, verb, timeout).await
        }
        (_, ["status" | "metrics" | "healthz"]) | (_, ["clusters", _, _]) => Err(Refused(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed here"),
        )),
        _ => Err(Refused(
            StatusCode::NOT_FOUND,
            format!("no such endpoint: {ENDPOINTS}"),
        )),
    }
}

/// The verb a POST asks for: the body itself at `verbs`; at an alias, the body with the alias's verb.
pub(crate) fn verb_of(action: &str, mut body: Value) -> Result<Verb, Refused> {
    let word = match action {
        "verbs" => None,
        "partition" | "heal" | "mine" => Some(action),
        "faults" => Some("fault"),
        other => {
            return Err(Refused(
                StatusCode::NOT_FOUND,
                format!("no endpoint `{other}`: {ENDPOINTS}"),
            ))
        }
    };
    if let (Some(word), Some(fields)) = (word, body.as_object_mut()) {
        fields.insert("verb".into(), word.into());
    }
    serde_json::from_value(body).map_err(|e| Refused(StatusCode::BAD_REQUEST, format!("{e}")))
}

/// Carries `verb` out on `cluster` through the executor; the watcher looks again at once after a
/// verb that may have changed the cluster, whatever the outcome.
async fn carry_out(
    op: &Shared,
    cluster: &str,
    verb: Verb,
    timeout: Duration,
) -> Result<Reply, Refused> {
    if let Verb::Logs {
        node,
        tail,
        follow: true,
    } = &verb
    {
        return follow(cluster, node, *tail).await;
    }
    let how = Exec {
        timeout,
        attach: op.container.clone(),
        lock_wait: op.lock_wait,
        ..Exec::default()
    };
    let result = exec::execute(Some(cluster), &verb, &how, std::future::pending()).await;
    if matches!((&verb, &result), (Verb::Down, Ok(_))) {
        op.let_go(cluster);
    }
    if !matches!(
        verb,
        Verb::Status | Verb::Url { .. } | Verb::Logs { .. } | Verb::Wait { .. } | Verb::Sync { .. }
    ) {
        op.kick(cluster, &format!("request: {}", verb.word()));
    }
    Ok(Reply::Json(result?.to_json()))
}

/// `logs` with `follow`: the node's log as it grows, streamed until the client goes away. The cluster is
/// opened (and the node checked) before the reply starts, so those errors keep their status.
async fn follow(cluster: &str, node: &str, tail: Option<usize>) -> Result<Reply, Refused> {
    let c = Cluster::open(Some(cluster)).await?;
    c.node(node)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let node = node.to_string();
    tokio::task::spawn_local(async move {
        use futures::StreamExt;
        let Ok(lines) = c.logs(&node, tail, true) else {
            return;
        };
        let mut lines = std::pin::pin!(lines);
        while let Some(chunk) = lines.next().await {
            let text = chunk.unwrap_or_else(|e| format!("error: {}\n", error_chain(&e)));
            if tx.send(Bytes::from(text)).await.is_err() {
                return; // the client went away
            }
        }
    });
    let frames = futures::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    Ok(Reply::Stream(StreamBody::new(frames).boxed_unsync()))
}

/// The request's JSON body (an empty body is `{}`); one over the limit is refused with 413.
async fn body(req: Request<Incoming>) -> Result<Value, Refused> {
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            let status = match e.downcast_ref::<http_body_util::LengthLimitError>() {
                Some(_) => StatusCode::PAYLOAD_TOO_LARGE,
                None => StatusCode::BAD_REQUEST,
            };
            Refused(status, format!("cannot read the body: {e}"))
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
