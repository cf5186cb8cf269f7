//! The RPC relay (`regbox relay`, run in the regbox image on a cluster's control network): an HTTP
//! CONNECT proxy through which regbox reaches node RPC on networks it cannot route to — only for a
//! client with the cluster's relay token, only to addresses in the allowed subnets and ports, a bounded
//! number of tunnels at once, each closed when idle.

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::core::cluster::subnet::Subnet;

/// The longest request head accepted.
const MAX_HEAD: usize = 4096;
/// How long a client may take to send its head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to a target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The most tunnels open at once; a CONNECT past it is answered 503.
pub const MAX_TUNNELS: usize = 256;
/// How long a tunnel may carry nothing either way before it is closed (bitcoind itself closes an RPC
/// connection idle for 30 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a request is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not an HTTP/1.x request head (400).
    Malformed,
    /// Not a CONNECT to an IPv4 address in an allowed subnet (403).
    Forbidden,
    /// Without the cluster's relay token (407).
    Unauthorized,
    /// As many tunnels open as the relay allows (503).
    Busy,
}

impl Refusal {
    fn answer(self) -> &'static [u8] {
        match self {
            Refusal::Malformed => b"HTTP/1.1 400 Bad Request\r\n\r\n",
            Refusal::Forbidden => b"HTTP/1.1 403 Forbidden\r\n\r\n",
            Refusal::Unauthorized => {
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"regbox\"\r\n\r\n"
            }
            Refusal::Busy => b"HTTP/1.1 503 Service Unavailable\r\n\r\n",
        }
    }
}

/// What the relay admits: where tunnels lead, who may open them (`Proxy-Authorization` with the
/// cluster's relay token: `Basic` of `regbox:TOKEN`, as `curl -U regbox:TOKEN` sends it, or `Bearer
/// TOKEN`), how many at once and how long one may stay idle.
#[derive(Debug, Clone)]
pub struct Policy {
    pub allow: Allow,
    pub token: String,
    pub max_tunnels: usize,
    pub idle: Duration,
}

impl Policy {
    /// `allow` for holders of `token`, with the default limits.
    pub fn new(allow: Allow, token: String) -> Policy {
        Policy {
            allow,
            token,
            max_tunnels: MAX_TUNNELS,
            idle: IDLE_TIMEOUT,
        }
    }

    /// Whether the head's `Proxy-Authorization` carries the token (compared in constant time).
    pub(crate) fn authorizes(&self, head: &str) -> bool {
        let Some(value) = header(head, "proxy-authorization") else {
            return false;
        };
        let (scheme, credential) = value.split_once(' ').unwrap_or((value, ""));
        let presented = match scheme.to_ascii_lowercase().as_str() {
            "bearer" => credential.trim().as_bytes().to_vec(),
            "basic" => {
                use base64::Engine as _;
                let Ok(decoded) =
                    base64::engine::general_purpose::STANDARD.decode(credential.trim())
                else {
                    return false;
                };
                match decoded.strip_prefix(b"regbox:") {
                    Some(token) => token.to_vec(),
                    None => return false,
                }
            }
            _ => return false,
        };
        !self.token.is_empty()
            && crate::operator::auth::same_secret(&presented, self.token.as_bytes())
    }
}

/// The value of header `name` (lower case) in a request head.
fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Where tunnels may lead: addresses in one of `subnets`, on one of `ports` (any port when empty).
#[derive(Debug, Clone)]
pub struct Allow {
    pub subnets: Vec<Subnet>,
    pub ports: Vec<u16>,
}

impl Allow {
    pub(crate) fn admits(&self, target: SocketAddrV4) -> bool {
        self.subnets.iter().any(|s| s.contains(*target.ip()))
            && (self.ports.is_empty() || self.ports.contains(&target.port()))
    }
}

/// Serves tunnels on `listen` until an error stops the listener.
pub async fn serve(listen: SocketAddr, policy: Policy) -> std::io::Result<()> {
    serve_on(TcpListener::bind(listen).await?, policy).await
}

/// Serves tunnels on a bound listener (one task per connection, at most `max_tunnels` at once).
pub async fn serve_on(listener: TcpListener, policy: Policy) -> std::io::Result<()> {
    let allowed: Vec<String> = policy.allow.subnets.iter().map(Subnet::to_string).collect();
    tracing::info!(
        listen = %listener.local_addr()?,
        allow = ?allowed,
        ports = ?policy.allow.ports,
        max_tunnels = policy.max_tunnels,
        "relay serving"
    );
    let open = Arc::new(tokio::sync::Semaphore::new(policy.max_tunnels));
    let policy = Arc::new(policy);
    loop {
        let (client, peer) = crate::operator::http::accept(&listener).await;
        let policy = policy.clone();
        let permit = open.clone().try_acquire_owned();
        tokio::spawn(async move {
            let done = match permit {
                Ok(_permit) => tunnel(client, &policy).await,
                Err(_) => {
                    tracing::info!(%peer, "refused: {} tunnels open", policy.max_tunnels);
                    refuse(client, Refusal::Busy.answer()).await
                }
            };
            if let Err(e) = done {
                tracing::debug!(%peer, "tunnel: {e}");
            }
        });
    }
}

/// One client connection: read the head, check it, connect, then copy both ways until either side
/// closes or the tunnel stays idle.
async fn tunnel(mut client: TcpStream, policy: &Policy) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(1024);
    let head = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client, &mut buf))
        .await
        .map_err(|_| std::io::Error::other("no request head in time"))??;
    let parsed = head.ok_or(Refusal::Malformed).and_then(|end| {
        let target = parse_head(&buf[..end])?;
        // The head parsed, so it is UTF-8. Who asks is checked before where to: a client without the
        // token learns nothing of the policy.
        let text = std::str::from_utf8(&buf[..end]).map_err(|_| Refusal::Malformed)?;
        if !policy.authorizes(text) {
            return Err(Refusal::Unauthorized);
        }
        Ok((target, end))
    });
    let (target, end) = match parsed {
        Ok(parsed) => parsed,
        Err(refusal) => {
            let line = String::from_utf8_lossy(&buf[..buf.len().min(120)]).into_owned();
            let line = line.lines().next().unwrap_or("");
            tracing::info!(?refusal, line, "refused");
            return refuse(client, refusal.answer()).await;
        }
    };
    if !policy.allow.admits(target) {
        tracing::info!(%target, "refused: not an allowed subnet and port");
        return refuse(client, Refusal::Forbidden.answer()).await;
    }
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await;
    let mut upstream = match connect {
        Ok(Ok(stream)) => stream,
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no connection within {CONNECT_TIMEOUT:?}"),
            };
            tracing::debug!(%target, "connect: {why}");
            return refuse(client, b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        }
    };
    upstream.set_nodelay(true)?;
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    // What came in the same reads as the head belongs to the target.
    upstream.write_all(&buf[end..]).await?;
    let (up, down) = pipe(&mut client, &mut upstream, policy.idle).await?;
    tracing::debug!(%target, up, down, "tunnel closed");
    Ok(())
}

/// Copies both ways until both sides have closed (each close passed on as a shutdown), or until
/// nothing moved either way for `idle`: the bytes carried up and down.
async fn pipe(a: &mut TcpStream, b: &mut TcpStream, idle: Duration) -> std::io::Result<(u64, u64)> {
    let (mut a_read, mut a_write) = a.split();
    let (mut b_read, mut b_write) = b.split();
    let (mut a_buf, mut b_buf) = (vec![0u8; 16 << 10], vec![0u8; 16 << 10]);
    let (mut up, mut down) = (0u64, 0u64);
    let (mut a_open, mut b_open) = (true, true);
    while a_open || b_open {
        tokio::select! {
            read = a_read.read(&mut a_buf), if a_open => match read? {
                0 => {
                    a_open = false;
                    b_write.shutdown().await?;
                }
                n => {
                    b_write.write_all(&a_buf[..n]).await?;
                    up += n as u64;
                }
            },
            read = b_read.read(&mut b_buf), if b_open => match read? {
                0 => {
                    b_open = false;
                    a_write.shutdown().await?;
                }
                n => {
                    a_write.write_all(&b_buf[..n]).await?;
                    down += n as u64;
                }
            },
            _ = tokio::time::sleep(idle) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("idle for {idle:?}: closed"),
                ));
            }
        }
    }
    Ok((up, down))
}

/// Answers `answer` and closes. What the client sent beyond the head is read away first (for a moment),
/// or the kernel would answer it with a reset that can overtake the answer.
async fn refuse(mut client: TcpStream, answer: &[u8]) -> std::io::Result<()> {
    client.write_all(answer).await?;
    client.shutdown().await?;
    let mut sink = [0u8; 2048];
    let drain = async {
        while client.read(&mut sink).await? > 0 {}
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    Ok(())
}

/// Reads until the head's end (`\r\n\r\n`) is in `buf`: the offset just past it, or `None` when the
/// head outgrew [`MAX_HEAD`]. A client closing before is an error.
async fn read_head(client: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = head_end(buf) {
            return Ok(end);
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Whether what was read so far holds the whole head: `Some(Some(end))` with the offset just past the
/// blank line, `Some(None)` when the head outgrew [`MAX_HEAD`] (refused), `None` to read on.
pub(crate) fn head_end(buf: &[u8]) -> Option<Option<usize>> {
    if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some((at + 4 <= MAX_HEAD).then_some(at + 4));
    }
    (buf.len() >= MAX_HEAD).then_some(None)
}

/// The target of a request head (the request line and headers, through the blank line): only
/// `CONNECT a.b.c.d:port HTTP/1.x`.
pub(crate) fn parse_head(head: &[u8]) -> Result<SocketAddrV4, Refusal> {
    let head = std::str::from_utf8(head).map_err(|_| Refusal::Malformed)?;
    let line = head.split("\r\n").next().unwrap_or("");
    let words: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = words[..] else {
        return Err(Refusal::Malformed);
    };
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") || method.is_empty() || target.is_empty() {
        return Err(Refusal::Malformed);
    }
    if method != "CONNECT" {
        return Err(Refusal::Forbidden);
    }
    target.parse().map_err(|_| Refusal::Forbidden)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rpc::{Relay, RpcClient, Transport};
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    use serde_json::{json, Value};

    #[test]
    fn only_connect_to_an_ipv4_address_passes() {
        let parse = |s: &str| parse_head(s.as_bytes());
        assert_eq!(
            parse("CONNECT 10.128.0.12:18443 HTTP/1.1\r\nHost: 10.128.0.12:18443\r\n\r\n"),
            Ok("10.128.0.12:18443".parse().unwrap())
        );
        assert_eq!(
            parse("CONNECT 1.2.3.4:5 HTTP/1.0\r\n\r\n"),
            Ok("1.2.3.4:5".parse().unwrap())
        );
        assert_eq!(
            parse("GET http://1.2.3.4:5/ HTTP/1.1\r\n\r\n"),
            Err(Refusal::Forbidden)
        );
        assert_eq!(
            parse("CONNECT example.com:443 HTTP/1.1\r\n\r\n"),
            Err(Refusal::Forbidden)
        );
        assert_eq!(
            parse("CONNECT [::1]:443 HTTP/1.1\r\n\r\n"),
            Err(Refusal::Forbidden)
        );
        assert_eq!(
            parse("CONNECT 1.2.3.4 HTTP/1.1\r\n\r\n"),
            Err(Refusal::Forbidden)
        );
        assert_eq!(
            parse("CONNECT 1.2.3.4:5 HTTP/2\r\n\r\n"),
            Err(Refusal::Malformed)
        );
        assert_eq!(
            parse("CONNECT  1.2.3.4:5 HTTP/1.1\r\n\r\n"),
            Err(Refusal::Malformed)
        );
        assert_eq!(parse("CONNECT\r\n\r\n"), Err(Refusal::Malformed));
        assert_eq!(parse_head(b"\xff\xfe\r\n\r\n"), Err(Refusal::Malformed));
    }

    /// A JSON-RPC-like server on loopback: answers every POST with the method it was asked.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        |req: hyper::Request<hyper::body::Incoming>| async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let reply = json!({"result": {"echo": asked["method"]}, "error": null});
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(
                                reply.to_string(),
                            ))))
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        addr
    }

    async fn closed_port() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    }

    /// Sends `request` to the relay in one write and reads everything until the relay closes.
    async fn raw(relay: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(relay).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("the relay closes")
            .unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    }

    const TOKEN: &str = "0123456789abcdef";

    /// A relay on loopback admitting `127.0.0.0/8` to holders of [`TOKEN`], with `limits` applied.
    async fn relay_with(limits: impl FnOnce(&mut Policy)) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = listener.local_addr().unwrap();
        let allow = Allow {
            subnets: vec!["127.0.0.0/8".parse().unwrap()],
            ports: Vec::new(),
        };
        let mut policy = Policy::new(allow, TOKEN.into());
        limits(&mut policy);
        tokio::spawn(serve_on(listener, policy));
        relay
    }

    fn authorized(relay: SocketAddr) -> Transport {
        Transport::via(Some(Relay {
            addr: relay,
            token: TOKEN.into(),
        }))
    }

    #[tokio::test]
    async fn rpc_goes_through_the_relay_to_allowed_addresses_only() {
        let relay = relay_with(|_| {}).await;
        let server = echo_server().await;
        let closed = closed_port().await;

        let transport = authorized(relay);
        assert_eq!(transport.relay().map(|r| r.addr), Some(relay));
        let client = RpcClient::new(transport.clone(), "n0", server, "user", "password");
        for _ in 0..3 {
            let answer: Value = client.call("getblockcount", json!([])).await.unwrap();
            assert_eq!(answer, json!({"echo": "getblockcount"}));
        }

        let within = Duration::from_secs(3);
        assert!(transport.probe(server, within).await);
        assert!(!transport.probe(closed, within).await);
        assert!(
            !transport
                .probe("10.1.2.3:18443".parse().unwrap(), within)
                .await
        );
        assert!(Transport::default().probe(server, within).await);
        assert!(!Transport::default().probe(closed, within).await);

        // Outside the allowed subnets, not a CONNECT, malformed, unreachable.
        let auth = format!("Proxy-Authorization: Bearer {TOKEN}\r\n");
        let forbidden = raw(
            relay,
            &format!("CONNECT 10.1.2.3:18443 HTTP/1.1\r\n{auth}\r\n"),
        )
        .await;
        assert_eq!(forbidden, "HTTP/1.1 403 Forbidden\r\n\r\n");
        let get = raw(relay, &format!("GET http://{server}/ HTTP/1.1\r\n\r\n")).await;
        assert_eq!(get, "HTTP/1.1 403 Forbidden\r\n\r\n");
        let bad = raw(relay, "hello\r\n\r\n").await;
        assert_eq!(bad, "HTTP/1.1 400 Bad Request\r\n\r\n");
        let long = raw(
            relay,
            &format!(
                "CONNECT {server} HTTP/1.1\r\nX: {}\r\n\r\n",
                "x".repeat(5000)
            ),
        )
        .await;
        assert_eq!(long, "HTTP/1.1 400 Bad Request\r\n\r\n");
        let gone = raw(relay, &format!("CONNECT {closed} HTTP/1.1\r\n{auth}\r\n")).await;
        assert_eq!(gone, "HTTP/1.1 502 Bad Gateway\r\n\r\n");

        // A request sent together with the CONNECT reaches the target.
        let body = r#"{"method":"ping"}"#;
        let eager = raw(
            relay,
            &format!(
                "CONNECT {server} HTTP/1.1\r\n{auth}\r\nPOST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
        .await;
        assert!(
            eager.starts_with("HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK\r\n"),
            "{eager}"
        );
        assert!(eager.contains(r#""echo":"ping""#), "{eager}");
    }

    #[tokio::test]
    async fn a_connect_without_the_clusters_token_is_refused() {
        use base64::Engine as _;
        let relay = relay_with(|_| {}).await;
        let server = echo_server().await;
        let ask = |auth: String| format!("CONNECT {server} HTTP/1.1\r\n{auth}\r\n");
        let required = "HTTP/1.1 407 Proxy Authentication Required\r\n\
                        Proxy-Authenticate: Basic realm=\"regbox\"\r\n\r\n";
        let basic = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        for refused in [
            String::new(),
            "Proxy-Authorization: Bearer 0123456789abcdeX\r\n".into(),
            "Proxy-Authorization: Bearer \r\n".into(),
            "Authorization: Bearer 0123456789abcdef\r\n".into(),
            format!(
                "Proxy-Authorization: Basic {}\r\n",
                basic("bob:0123456789abcdef")
            ),
            "Proxy-Authorization: Basic !!!\r\n".into(),
            "Proxy-Authorization: Digest 0123456789abcdef\r\n".into(),
        ] {
            assert_eq!(
                raw(relay, &ask(refused.clone())).await,
                required,
                "{refused}"
            );
        }
        // Even where it could not lead anyway: who asks is checked first.
        assert_eq!(
            raw(relay, "CONNECT 10.1.2.3:1 HTTP/1.1\r\n\r\n").await,
            required
        );
        // As curl -U regbox:TOKEN sends it, header name in any case.
        let curl = format!(
            "proxy-authorization: Basic {}\r\n",
            basic("regbox:0123456789abcdef")
        );
        let through = raw(
            relay,
            &(ask(curl) + "GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(
            through.starts_with("HTTP/1.1 200 Connection established"),
            "{through}"
        );
        // A transport without the token is told why.
        let stranger = Transport::via(Some(Relay {
            addr: relay,
            token: "wrong".into(),
        }));
        let client = RpcClient::new(stranger, "n0", server, "user", "password");
        let e = client
            .call::<Value>("getblockcount", json!([]))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("answered 407"), "{e}");
    }

    #[tokio::test]
    async fn tunnels_are_capped_and_closed_when_idle() {
        let relay = relay_with(|p| {
            p.max_tunnels = 2;
            p.idle = Duration::from_millis(300);
        })
        .await;
        let server = echo_server().await;
        let open = || async {
            let mut s = TcpStream::connect(relay).await.unwrap();
            let head =
                format!("CONNECT {server} HTTP/1.1\r\nProxy-Authorization: Bearer {TOKEN}\r\n\r\n");
            s.write_all(head.as_bytes()).await.unwrap();
            let mut answer = [0u8; 12];
            s.read_exact(&mut answer).await.unwrap();
            (s, String::from_utf8_lossy(&answer).into_owned())
        };
        let (mut first, a) = open().await;
        let (_second, b) = open().await;
        assert_eq!((a.as_str(), b.as_str()), ("HTTP/1.1 200", "HTTP/1.1 200"));
        // The cap's worth are open: the next is turned away at once.
        let third = raw(relay, &format!("CONNECT {server} HTTP/1.1\r\n\r\n")).await;
        assert_eq!(third, "HTTP/1.1 503 Service Unavailable\r\n\r\n");
        // Idle past the limit, a tunnel is closed; its place is free again.
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), first.read_to_end(&mut rest))
            .await
            .expect("the idle tunnel is closed")
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
        // Both closed, both places free again once the relay has seen the closes.
        drop(_second);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let again = loop {
            let (_stream, answer) = open().await;
            if answer == "HTTP/1.1 200" || std::time::Instant::now() > deadline {
                break answer;
            }
        };
        assert_eq!(again, "HTTP/1.1 200");
    }
}
