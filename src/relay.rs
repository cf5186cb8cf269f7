//! The RPC relay (`regbox relay`, run in the regbox image on a cluster's control network): an HTTP
//! CONNECT proxy through which regbox reaches node RPC on networks it cannot route to, only to addresses
//! in the allowed subnets.

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

/// Why a request is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not an HTTP/1.x request head (400).
    Malformed,
    /// Not a CONNECT to an IPv4 address in an allowed subnet (403).
    Forbidden,
}

impl Refusal {
    fn answer(self) -> &'static [u8] {
        match self {
            Refusal::Malformed => b"HTTP/1.1 400 Bad Request\r\n\r\n",
            Refusal::Forbidden => b"HTTP/1.1 403 Forbidden\r\n\r\n",
        }
    }
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
pub async fn serve(listen: SocketAddr, allow: Allow) -> std::io::Result<()> {
    serve_on(TcpListener::bind(listen).await?, allow).await
}

/// Serves tunnels on a bound listener (one task per connection).
pub async fn serve_on(listener: TcpListener, allow: Allow) -> std::io::Result<()> {
    let allowed: Vec<String> = allow.subnets.iter().map(Subnet::to_string).collect();
    tracing::info!(listen = %listener.local_addr()?, allow = ?allowed, ports = ?allow.ports, "relay serving");
    let allow = Arc::new(allow);
    loop {
        let (client, peer) = crate::operator::http::accept(&listener).await;
        let allow = allow.clone();
        tokio::spawn(async move {
            if let Err(e) = tunnel(client, &allow).await {
                tracing::debug!(%peer, "tunnel: {e}");
            }
        });
    }
}

/// One client connection: read the head, check it, connect, then copy both ways until either side
/// closes.
async fn tunnel(mut client: TcpStream, allow: &Allow) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(1024);
    let head = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client, &mut buf))
        .await
        .map_err(|_| std::io::Error::other("no request head in time"))??;
    let parsed = head
        .ok_or(Refusal::Malformed)
        .and_then(|end| Ok((parse_head(&buf[..end])?, end)));
    let (target, end) = match parsed {
        Ok(parsed) => parsed,
        Err(refusal) => {
            let line = String::from_utf8_lossy(&buf[..buf.len().min(120)]).into_owned();
            let line = line.lines().next().unwrap_or("");
            tracing::info!(?refusal, line, "refused");
            return refuse(client, refusal.answer()).await;
        }
    };
    if !allow.admits(target) {
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
    let (up, down) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    tracing::debug!(%target, up, down, "tunnel closed");
    Ok(())
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
    use crate::engine::rpc::{RpcClient, Transport};
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

    #[tokio::test]
    async fn rpc_goes_through_the_relay_to_allowed_addresses_only() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = listener.local_addr().unwrap();
        let allow = Allow {
            subnets: vec!["127.0.0.0/8".parse().unwrap()],
            ports: Vec::new(),
        };
        tokio::spawn(serve_on(listener, allow));
        let server = echo_server().await;
        let closed = closed_port().await;

        let transport = Transport::via(Some(relay));
        assert_eq!(transport.relay(), Some(relay));
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
        let forbidden = raw(relay, "CONNECT 10.1.2.3:18443 HTTP/1.1\r\n\r\n").await;
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
        let gone = raw(relay, &format!("CONNECT {closed} HTTP/1.1\r\n\r\n")).await;
        assert_eq!(gone, "HTTP/1.1 502 Bad Gateway\r\n\r\n");

        // A request sent together with the CONNECT reaches the target.
        let body = r#"{"method":"ping"}"#;
        let eager = raw(
            relay,
            &format!(
                "CONNECT {server} HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
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
}
