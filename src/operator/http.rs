//! The operator's HTTP interface (HTTP/1.1, JSON): `GET /status` (every watched cluster: declared
//! size, holds, the last pass and its changes or error, the last sample), `GET /metrics` (Prometheus
//! text), `GET /healthz`, and `POST /clusters/{name}/verbs`, which takes any verb of the vocabulary
//! (`core::verb`) as its body, carries it out through the one executor and answers with its report
//! (`logs` with `follow` streams the log as text), then wakes the cluster's watcher.
//! `GET /clusters/{name}/status` and `POST /clusters/{name}/partition|heal|faults|mine` are aliases:
//! each is read as the verb of its name. `GET /` is the web page, `/page/events` its live stream
//! (`page`). A read-only operator refuses every verb that changes a cluster (403).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::core::names::error_chain;
use crate::core::verb::Verb;
use crate::engine::cluster::Cluster;
use crate::engine::error::Error;
use crate::engine::exec::{self, Exec};
use crate::operator::auth::Token;
use crate::operator::{page, tls};
use crate::operator::{Scope, Shared};

/// The largest request body read.
const MAX_BODY: usize = 1 << 20;

/// How long a client has to send a request's head, counted from when the connection waits for one: a
/// new connection, or one kept alive after a reply (so it also closes idle keep-alive connections).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once unless `--max-connections` says otherwise; more are answered 503 and
/// closed.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// What a request's deadline adds to its verb's budget ([`Verb::budget`]): opening the cluster,
/// taking its lock, the report.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(30);

/// How long a connection over the cap is given to take its 503.
const TURN_AWAY: Duration = Duration::from_secs(1);

/// How the HTTP interface serves.
#[derive(Debug, Clone)]
pub struct Serving {
    /// The limit of each wait of a verb that names no timeout of its own (`--timeout`).
    pub timeout: Duration,
    /// Every request but `/healthz` (and `/metrics` unless `metrics_auth`) must present it.
    pub token: Option<Token>,
    /// `/metrics` needs the token too.
    pub metrics_auth: bool,
    /// Connections served at once.
    pub max_connections: usize,
    /// See [`HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// Serves HTTPS with this certificate and key (`--tls-cert`, `--tls-key`); plain HTTP without.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The longest any request may run (`--request-deadline`), when shorter than its verb's own
    /// deadline ([`deadline`]).
    pub request_deadline: Option<Duration>,
}

impl Serving {
    /// The defaults, with `timeout` for each wait and no token.
    pub fn with_timeout(timeout: Duration) -> Serving {
        Serving {
            timeout,
            token: None,
            metrics_auth: false,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: HEADER_TIMEOUT,
            tls: None,
            request_deadline: None,
        }
    }
}

/// The next connection on `listener`. A failed accept (out of descriptors, say) is logged and tried
/// again a moment later rather than in a spin.
pub(crate) async fn accept(listener: &TcpListener) -> (TcpStream, std::net::SocketAddr) {
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

/// Serves requests on `listener` until the task is dropped, at most `serving.max_connections`
/// connections at once (one more is answered 503 and closed at once); a connection that does not send
/// a request's head within `serving.header_timeout` is closed. With `serving.tls`, every connection
/// is TLS, its handshake held to the header timeout too.
pub async fn serve(op: Shared, listener: TcpListener, serving: Serving) {
    let serving = Rc::new(serving);
    let tls = serving.tls.clone().map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(serving.max_connections));
    loop {
        let (stream, peer) = accept(&listener).await;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::info!(
                "{peer}: over {} connections; answered 503",
                serving.max_connections
            );
            tokio::task::spawn_local(turn_away(stream, tls.clone(), serving.max_connections));
            continue;
        };
        let (op, serving, tls) = (op.clone(), serving.clone(), tls.clone());
        tokio::task::spawn_local(async move {
            let _slot = slot;
            let Some(tls) = tls else {
                return serve_connection(op, stream, peer, serving).await;
            };
            if let Some(stream) = handshake(stream, peer, &tls, serving.header_timeout).await {
                serve_connection(op, stream, peer, serving).await;
            }
        });
    }
}

/// Serves the requests of one connection until it closes.
async fn serve_connection<S>(op: Shared, stream: S, peer: SocketAddr, serving: Rc<Serving>)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let header_timeout = serving.header_timeout;
    let service = hyper::service::service_fn(move |req| {
        let (op, serving) = (op.clone(), serving.clone());
        async move { Ok::<_, Infallible>(respond(&op, req, &serving).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!("connection {peer}: {e}");
    }
}

/// A connection's TLS session, once its handshake is done within `within` (the header timeout: a
/// client that connects and says nothing, or stalls midway through the handshake, holds its slot no
/// longer than one that stalls in a request's head). A client that speaks plain HTTP to the TLS port is
/// answered 400 in plain text, saying to use https://, and closed; a failed handshake is closed.
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    tls: &TlsAcceptor,
    within: Duration,
) -> Option<TlsStream<TcpStream>> {
    let started = tokio::time::Instant::now();
    let mut first = [0u8; 1];
    match tokio::time::timeout(within, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] != tls::HANDSHAKE_RECORD => {
            tracing::info!("{peer}: plain HTTP on the TLS port; answered 400");
            let message = "this operator speaks HTTPS only: ask it at an https:// URL (the CLI \
                           trusts its certificate with --operator-ca FILE or REGBOX_OPERATOR_CA)";
            let _ =
                tokio::time::timeout(TURN_AWAY, say_and_close(stream, "400 Bad Request", message))
                    .await;
            return None;
        }
        Ok(Ok(1)) => {}
        _ => return None, // closed, failed or silent
    }
    let left = within.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, tls.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::info!("{peer}: TLS handshake: {e}");
            None
        }
        Err(_) => {
            tracing::info!("{peer}: no TLS handshake within {within:?}; closed");
            None
        }
    }
}

/// A connection over the cap: a 503 (over TLS after a handshake, when the operator serves TLS), all
/// within [`TURN_AWAY`].
async fn turn_away(stream: TcpStream, tls: Option<TlsAcceptor>, cap: usize) {
    let message = format!("the operator serves {cap} connections at once; try again");
    let status = "503 Service Unavailable";
    let _ = tokio::time::timeout(TURN_AWAY, async {
        match tls {
            None => say_and_close(stream, status, &message).await,
            Some(tls) => say_and_close(tls.accept(stream).await?, status, &message).await,
        }
    })
    .await;
}

/// A whole reply with `status` and `{"error": message}` written at once, what the client sent meanwhile
/// read (so that closing does not reset the connection before the reply is read), then closed.
async fn say_and_close<S>(mut stream: S, status: &str, message: &str) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let body = json!({ "error": message }).to_string() + "\n";
    let retry = if status.starts_with("503") {
        "retry-after: 1\r\n"
    } else {
        ""
    };
    let text = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n{retry}\r\n{body}",
        body.len()
    );
    stream.write_all(text.as_bytes()).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 4096];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
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

async fn respond(op: &Shared, req: Request<Incoming>, serving: &Serving) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    tracing::debug!("{method} {path}");
    if path == "/" {
        if let Some(res) = page::sign_in(req.uri().query(), serving.token.as_ref()) {
            return res;
        }
    }
    let cookie = page::cookie_bearer(req.headers());
    let presented = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .or(cookie.as_ref().map(|c| c.as_bytes()));
    if let Err(message) = authorized(&path, presented, serving) {
        tracing::info!("{method} {path}: 401: {message}");
        let body = json!({ "error": message }).to_string() + "\n";
        let mut res = reply(StatusCode::UNAUTHORIZED, "application/json", body);
        res.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Bearer realm=\"regbox\""),
        );
        return res;
    }
    let result = route(op, req, serving).await;
    match result {
        Ok(Reply::Json(v)) => reply(StatusCode::OK, "application/json", v.to_string() + "\n"),
        Ok(Reply::Text(t)) => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            t,
        ),
        Ok(Reply::Page(res)) => res,
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

/// Whether the request may go on: it presents the token, or needs none (`/healthz` always; `/metrics`
/// unless `metrics_auth`; everything when the operator has no token).
fn authorized(path: &str, presented: Option<&[u8]>, serving: &Serving) -> Result<(), String> {
    let Some(token) = &serving.token else {
        return Ok(());
    };
    let open = match path.trim_end_matches('/') {
        "/healthz" => true,
        "/metrics" => !serving.metrics_auth,
        _ => false,
    };
    if open || token.admits(presented) {
        return Ok(());
    }
    Err(match presented {
        None => "this operator needs a token: send `Authorization: Bearer TOKEN` (the CLI sends \
                 REGBOX_TOKEN or --token-file; a browser opens /?token=TOKEN once)"
            .into(),
        Some(_) => "the token presented is not this operator's".into(),
    })
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
    /// The web page or its event stream, as [`page`] made it.
    Page(Response<Body>),
}

/// Where each endpoint goes.
const ENDPOINTS: &str = "GET / (the page), /page/state, /page/events, /status, /metrics, /healthz, /clusters/NAME/status; POST /clusters/NAME/verbs (or the aliases partition|heal|faults|mine)";

async fn route(op: &Shared, req: Request<Incoming>, serving: &Serving) -> Result<Reply, Refused> {
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
        (&Method::GET, []) => Ok(Reply::Page(page::document())),
        (&Method::GET, ["page", "events"]) => Ok(Reply::Page(page::events(op.clone()))),
        (&Method::GET, ["page", "state"]) => Ok(Reply::Json(page::state(op))),
        (&Method::GET, ["healthz"]) => Ok(Reply::Text("ok\n".into())),
        (&Method::GET, ["status"]) => Ok(Reply::Json(json!({ "clusters": op.states() }))),
        (&Method::GET, ["metrics"]) => Ok(Reply::Text(op.exposition())),
        (&Method::GET, ["clusters", cluster, "status"]) => {
            carry_out(op, cluster, Verb::Status, serving).await
        }
        (&Method::POST, ["clusters", _, "status"]) => Err(Refused(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST is not allowed here".into(),
        )),
        (&Method::POST, ["clusters", cluster, action]) => {
            let cluster = cluster.to_string();
            let verb = verb_of(action, body(req).await?)?;
            carry_out(op, &cluster, verb, serving).await
        }
        (_, [] | ["status" | "metrics" | "healthz"] | ["page", _]) | (_, ["clusters", _, _]) => {
            Err(Refused(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not allowed here"),
            ))
        }
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

/// Carries `verb` out on `cluster` through the executor, within its deadline ([`limit_of`]); the
/// watcher looks again at once after a verb that may have changed the cluster, whatever the outcome.
/// A cluster the operator does not act on is refused first (404), then a verb over the limits of one
/// request (400), before anything is opened.
async fn carry_out(
    op: &Shared,
    cluster: &str,
    verb: Verb,
    serving: &Serving,
) -> Result<Reply, Refused> {
    op.serves(cluster)
        .map_err(|e| Refused(StatusCode::NOT_FOUND, e))?;
    verb.check()
        .map_err(|e| Refused(StatusCode::BAD_REQUEST, e.to_string()))?;
    if op.read_only && !reads_only(&verb) {
        return Err(Refused(
            StatusCode::FORBIDDEN,
            format!(
                "this operator only reads (regbox dashboard): `{}` changes the cluster; run it with \
                 the CLI (`regbox -c {} {} …`) or through an operator that keeps the cluster",
                verb.word(),
                crate::core::names::shown(cluster),
                verb.word()
            ),
        ));
    }
    if let Verb::Logs {
        node,
        tail,
        follow: true,
    } = &verb
    {
        return follow(cluster, node, *tail).await;
    }
    let how = Exec {
        timeout: serving.timeout,
        attach: op.container.clone(),
        lock_wait: op.lock_wait,
        ..Exec::default()
    };
    let work = exec::execute(Some(cluster), &verb, &how, std::future::pending());
    let result = within(limit_of(&verb, serving), &verb, work).await?;
    if matches!((&verb, &result), (Verb::Down, Ok(_))) {
        op.let_go(cluster);
    }
    // A cluster it made without manifests is one it keeps from now on.
    if let (Scope::Engine, Verb::Apply { dry_run: false, .. }, Ok(_)) = (&op.scope, &verb, &result)
    {
        op.look_for_clusters();
    }
    if !reads_only(&verb) {
        op.kick(cluster, &format!("request: {}", verb.word()));
        let (kind, text) = match &result {
            Ok(_) => (
                "request",
                format!("{} (asked of the operator)", verb.word()),
            ),
            Err(e) => (
                "error",
                format!("{} failed: {}", verb.word(), error_chain(e)),
            ),
        };
        let at = crate::engine::node::unix_now();
        op.pages
            .log(cluster, crate::core::picture::Event::new(at, kind, text));
    }
    Ok(Reply::Json(result?.to_json()))
}

/// Whether `verb` only reads the cluster (what a read-only operator carries out).
fn reads_only(verb: &Verb) -> bool {
    matches!(
        verb,
        Verb::Status | Verb::Url { .. } | Verb::Logs { .. } | Verb::Wait { .. } | Verb::Sync { .. }
    )
}

/// How long a request for `verb` may run: its budget when each wait lasts `timeout` unless it names its
/// own ([`Verb::budget`]), plus [`DEADLINE_MARGIN`].
pub fn deadline(verb: &Verb, timeout: Duration) -> Duration {
    verb.budget(timeout) + DEADLINE_MARGIN
}

/// A request's deadline, and what sets it.
#[derive(Debug, Clone, PartialEq)]
struct Limit {
    time: Duration,
    why: String,
}

/// The deadline of a request for `verb`: [`deadline`], or the operator's `--request-deadline` when
/// that is shorter.
fn limit_of(verb: &Verb, serving: &Serving) -> Limit {
    let own = deadline(verb, serving.timeout);
    match serving.request_deadline {
        Some(cap) if cap < own => Limit {
            time: cap,
            why: "the operator's --request-deadline".into(),
        },
        _ => Limit {
            time: own,
            why: format!("its waits plus {}s", DEADLINE_MARGIN.as_secs()),
        },
    }
}

/// `work` if it finishes within `limit`; else it is dropped midway (the cluster's lock guard gives the
/// lock back; the watcher's next pass repairs what it left half done) and the request answers 504.
async fn within<T>(
    limit: Limit,
    verb: &Verb,
    work: impl std::future::Future<Output = T>,
) -> Result<T, Refused> {
    tokio::time::timeout(limit.time, work).await.map_err(|_| {
        Refused(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "`{}` did not finish within the request's deadline of {}s ({}); it was stopped \
                 midway, and the operator's next pass repairs what it left",
                verb.word(),
                limit.time.as_secs_f64(),
                limit.why,
            ),
        )
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Work past its deadline is dropped and answers 504, naming the verb and the deadline.
    #[tokio::test]
    async fn work_past_its_deadline_is_stopped_with_504() {
        let verb = Verb::Status;
        let limit = Limit {
            time: Duration::from_millis(50),
            why: "its waits plus 30s".into(),
        };
        let work = within(limit.clone(), &verb, std::future::pending::<()>());
        let Refused(status, message) = work.await.expect_err("never finishes");
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert!(
            message.starts_with(
                "`status` did not finish within the request's deadline of 0.05s (its waits plus 30s)"
            ),
            "{message}"
        );
        assert_eq!(within(limit, &verb, async { 7 }).await.ok(), Some(7));
    }

    #[test]
    fn healthz_is_open_metrics_unless_metrics_auth_and_the_rest_needs_the_token() {
        let mut serving = Serving::with_timeout(Duration::from_secs(1));
        assert!(
            authorized("/status", None, &serving).is_ok(),
            "no token: all open"
        );
        serving.token = Some(Token::new("t0k").unwrap());
        let good = Some(&b"Bearer t0k"[..]);
        let bad = Some(&b"Bearer nope"[..]);
        for path in ["/healthz", "/metrics"] {
            assert!(authorized(path, None, &serving).is_ok(), "{path}");
        }
        assert!(authorized("/status", None, &serving)
            .unwrap_err()
            .contains("needs a token"));
        assert!(authorized("/clusters/a/verbs", bad, &serving)
            .unwrap_err()
            .contains("not this operator's"));
        assert!(authorized("/clusters/a/verbs", good, &serving).is_ok());
        serving.metrics_auth = true;
        assert!(authorized("/metrics", None, &serving).is_err());
        assert!(authorized("/metrics", good, &serving).is_ok());
        assert!(authorized("/healthz", None, &serving).is_ok());
    }

    #[test]
    fn a_deadline_is_the_verbs_budget_plus_the_margin() {
        let t = Duration::from_secs(120);
        assert_eq!(deadline(&Verb::Status, t), t + DEADLINE_MARGIN);
        let wait = Verb::Sync {
            timeout: Some(Duration::from_secs(5)),
        };
        assert_eq!(deadline(&wait, t), Duration::from_secs(35));
        let mut serving = Serving::with_timeout(t);
        serving.request_deadline = Some(Duration::from_secs(40));
        let capped = limit_of(&Verb::Status, &serving);
        assert_eq!(capped.time, Duration::from_secs(40));
        assert_eq!(capped.why, "the operator's --request-deadline");
        assert_eq!(limit_of(&wait, &serving).time, Duration::from_secs(35));
    }
}
