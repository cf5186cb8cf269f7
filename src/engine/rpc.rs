//! The one JSON-RPC client for bitcoind: HTTP with basic auth over a shared connection pool, plus typed
//! helpers whose structs tolerate missing and extra fields so any node version can answer.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;

use crate::core::names::error_chain;

pub use crate::core::cluster::session::PeerInfo;

/// The wallet regbox creates on nodes declared with `wallet: true`.
pub const WALLET: &str = "regbox";

/// bitcoind's "still starting" error code.
pub const RPC_IN_WARMUP: i64 = -28;
/// bitcoind's "node is not connected" error code (disconnectnode of a peer already gone).
pub const RPC_CLIENT_NODE_NOT_CONNECTED: i64 = -29;

/// A failed RPC call, naming the node it went to.
#[derive(Debug, thiserror::Error)]
#[error("node `{node}`: {failure}")]
pub struct RpcError {
    pub node: String,
    pub failure: RpcFailure,
}

/// How an RPC call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcFailure {
    /// No HTTP exchange happened (refused, reset, timed out): the node may be starting or gone.
    #[error("call `{method}` on {addr}: {message}")]
    Transport {
        addr: SocketAddr,
        method: String,
        message: String,
    },
    #[error("call `{method}` on {addr}: HTTP {status}")]
    Http {
        addr: SocketAddr,
        method: String,
        status: u16,
    },
    /// bitcoind answered with an error object.
    #[error("`{method}` returned error {code}: {message}")]
    Node {
        method: String,
        code: i64,
        message: String,
    },
    #[error("decode the answer to `{method}`: {source}")]
    Decode {
        method: String,
        source: serde_json::Error,
    },
}

impl RpcError {
    /// The bitcoind error code, when the node answered with one.
    pub fn code(&self) -> Option<i64> {
        match &self.failure {
            RpcFailure::Node { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The node is not (yet) able to serve: it refuses connections or is warming up.
    pub fn is_not_ready(&self) -> bool {
        matches!(self.failure, RpcFailure::Transport { .. }) || self.code() == Some(RPC_IN_WARMUP)
    }
}

type Result<T> = std::result::Result<T, RpcError>;

/// How long opening a TCP connection may take, to a node or to the relay.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a relay may take to answer a CONNECT (it gives itself [`CONNECT_TIMEOUT`] to reach the
/// node).
const TUNNEL_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest answer head a relay may send.
const MAX_TUNNEL_HEAD: usize = 4096;

/// The most bytes of one RPC reply regbox reads. bitcoind's largest replies, `getblock` at verbosity 2
/// or 3 of a full block (4 million weight units, every transaction decoded, each input with its previous
/// output, scripts and witnesses twice in hex), stay under ≈ 20 MiB; a reply past this is no answer
/// bitcoind gives, and reading it would only grow memory for as long as the sender goes on.
pub const MAX_REPLY_BYTES: usize = 64 << 20;

/// A whole reply body, or why not: larger than `limit` bytes (the rest is not read), or the transfer
/// failed.
pub(crate) async fn read_body<B>(body: B, limit: usize) -> std::result::Result<Bytes, String>
where
    B: hyper::body::Body,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => {
            let size = match limit % (1 << 20) {
                0 => format!("{} MiB", limit >> 20),
                _ => format!("{limit} bytes"),
            };
            Err(format!(
                "the reply is larger than {size}, the most regbox reads"
            ))
        }
        Err(e) => Err(error_chain(e.as_ref())),
    }
}

/// A cluster's RPC relay: where it listens and the token it requires of every CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    pub addr: SocketAddr,
    pub token: String,
}

/// Shared HTTP machinery; cheap to clone. Connects to nodes directly, or, with a relay, through HTTP
/// CONNECT tunnels the relay opens (`regbox relay`, for nodes on networks this machine cannot route to).
#[derive(Clone)]
pub struct Transport {
    http: Client<Connector, Full<Bytes>>,
    relay: Option<Relay>,
}

impl Default for Transport {
    fn default() -> Self {
        Transport::via(None)
    }
}

impl Transport {
    /// A transport reaching nodes through `relay` (an HTTP CONNECT proxy), or directly without one.
    pub fn via(relay: Option<Relay>) -> Transport {
        let mut direct = HttpConnector::new();
        direct.set_connect_timeout(Some(CONNECT_TIMEOUT));
        direct.set_nodelay(true);
        // bitcoind closes a keep-alive connection idle for 30 s (`-rpcservertimeout`); a pooled one
        // idle as long could be reused just as bitcoind closes it ("connection closed before message
        // completed", seen once in a 100-node `up`). Dropping idle connections well before that
        // leaves no such race.
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(10))
            .build(Connector {
                direct,
                relay: relay.clone(),
            });
        Transport { http, relay }
    }

    /// The relay connections go through, if any.
    pub fn relay(&self) -> Option<&Relay> {
        self.relay.as_ref()
    }

    /// Whether a TCP connection to `addr` opens within `within` (through the relay when there is one:
    /// the relay answered the CONNECT with 200).
    pub async fn probe(&self, addr: SocketAddr, within: Duration) -> bool {
        let attempt = self.stream(addr);
        matches!(tokio::time::timeout(within, attempt).await, Ok(Ok(_)))
    }

    /// A TCP connection to `addr`, directly or through the relay.
    pub async fn stream(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let stream = match &self.relay {
            None => TcpStream::connect(addr).await?,
            Some(relay) => tunnel(relay, &addr.to_string()).await?,
        };
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// The client's connector: hyper's own for direct connections, or a CONNECT tunnel through the relay.
#[derive(Clone)]
struct Connector {
    direct: HttpConnector,
    relay: Option<Relay>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<hyper::Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::result::Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        match self.relay.clone() {
            None => {
                let mut direct = self.direct.clone();
                Box::pin(async move { Ok(direct.call(uri).await?) })
            }
            Some(relay) => Box::pin(async move {
                let authority = uri
                    .authority()
                    .ok_or_else(|| format!("no host in `{uri}`"))?;
                let target = match authority.port_u16() {
                    Some(_) => authority.to_string(),
                    None => format!("{}:80", authority.host()),
                };
                Ok(TokioIo::new(tunnel(&relay, &target).await?))
            }),
        }
    }
}

/// A TCP stream to `target` (`ip:port`) through the relay: CONNECT with the relay's token, a 200
/// answer, then the node's bytes.
async fn tunnel(relay: &Relay, target: &str) -> std::io::Result<TcpStream> {
    use std::io::{Error, ErrorKind};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Relay { addr: relay, token } = relay;
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(relay))
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::TimedOut,
                format!("relay {relay}: no connection within {CONNECT_TIMEOUT:?}"),
            )
        })?
        .map_err(|e| Error::new(e.kind(), format!("relay {relay}: {e}")))?;
    stream.set_nodelay(true)?;
    let handshake = async {
        stream
            .write_all(
                format!(
                    "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\
                     Proxy-Authorization: Bearer {token}\r\n\r\n"
                )
                .as_bytes(),
            )
            .await?;
        // Byte by byte, so nothing after the head (the node's first bytes) is taken from the stream.
        let mut head = Vec::with_capacity(64);
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() >= MAX_TUNNEL_HEAD {
                return Err(Error::other(format!("relay {relay}: answer head too long")));
            }
            match stream.read_u8().await {
                Ok(byte) => head.push(byte),
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                    return Err(Error::new(
                        ErrorKind::ConnectionAborted,
                        format!(
                            "relay {relay} closed the connection to {target} without an answer"
                        ),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        match answer_status(&head) {
            Some(200) => Ok(()),
            Some(status) => Err(Error::new(
                ErrorKind::ConnectionRefused,
                format!("relay {relay} answered {status} to CONNECT {target}"),
            )),
            None => Err(Error::new(
                ErrorKind::InvalidData,
                format!("relay {relay}: not an HTTP answer"),
            )),
        }
    };
    tokio::time::timeout(TUNNEL_TIMEOUT, handshake)
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::TimedOut,
                format!("relay {relay}: no answer to CONNECT {target} within {TUNNEL_TIMEOUT:?}"),
            )
        })??;
    Ok(stream)
}

/// The status code of an HTTP/1.x answer head (`HTTP/1.1 200 Connection established`).
fn answer_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut words = line.split(' ');
    let version = words.next()?;
    let status = words.next()?;
    (version.starts_with("HTTP/1.") && status.len() == 3)
        .then(|| status.parse().ok())
        .flatten()
}

/// An RPC endpoint of one node.
#[derive(Clone)]
pub struct RpcClient {
    transport: Transport,
    node: String,
    addr: SocketAddr,
    auth: String,
}

/// A node's active tip, read in one call so height and hash belong together.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub struct Tip {
    #[serde(rename = "blocks")]
    pub height: u64,
    #[serde(rename = "bestblockhash")]
    pub hash: String,
}

/// `getblockheader` fields regbox reads.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct BlockHeader {
    pub hash: String,
    pub height: u64,
    /// -1 when the block is not in the active chain.
    pub confirmations: i64,
    #[serde(default)]
    pub previousblockhash: Option<String>,
    /// Total work up to this block, as fixed-width hex (so it compares as text).
    pub chainwork: String,
    /// The block's timestamp, in seconds since the Unix epoch.
    #[serde(default)]
    pub time: u64,
}

/// One output `scantxoutset` found.
#[derive(Debug, Clone, Deserialize)]
pub struct Unspent {
    pub txid: String,
    pub vout: u32,
    /// In BTC.
    pub amount: f64,
    #[serde(default)]
    pub coinbase: bool,
    #[serde(default)]
    pub confirmations: u64,
}

impl Unspent {
    /// The amount in satoshis (exact: 21 million BTC in satoshis is below 2^53).
    pub fn sats(&self) -> u64 {
        (self.amount * 100_000_000.0).round() as u64
    }
}

/// `getmempoolinfo` fields regbox reads.
#[derive(Debug, Clone, Deserialize)]
pub struct MempoolInfo {
    #[serde(default = "yes")]
    pub loaded: bool,
    #[serde(default)]
    pub size: u64,
    /// Sum of the transactions' virtual sizes.
    #[serde(default)]
    pub bytes: u64,
}

fn yes() -> bool {
    true
}

impl RpcClient {
    /// A client for node `node` answering at `addr` with the given credentials.
    pub fn new(
        transport: Transport,
        node: &str,
        addr: SocketAddr,
        user: &str,
        password: &str,
    ) -> RpcClient {
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        RpcClient {
            transport,
            node: node.to_string(),
            addr,
            auth,
        }
    }

    /// The node's RPC address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTP machinery the client calls through (shared with the cluster's other clients).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Whether a TCP connection to the node's RPC port opens within `within` (through the relay, if
    /// any).
    pub async fn reachable(&self, within: Duration) -> bool {
        self.transport.probe(self.addr, within).await
    }

    /// Calls `method` and returns the raw `result`.
    pub async fn call_raw(&self, method: &str, params: Value, timeout: Duration) -> Result<Value> {
        self.exchange(method, params, timeout)
            .await
            .map_err(|failure| RpcError {
                node: self.node.clone(),
                failure,
            })
    }

    async fn exchange(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> std::result::Result<Value, RpcFailure> {
        let body = serde_json::to_vec(
            &json!({"jsonrpc": "1.0", "id": "regbox", "method": method, "params": params}),
        )
        .expect("a JSON value serializes");
        let request = hyper::Request::post(format!("http://{}/", self.addr))
            .header(hyper::header::AUTHORIZATION, &self.auth)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("a well-formed request");
        let transport = |message: String| RpcFailure::Transport {
            addr: self.addr,
            method: method.into(),
            message,
        };
        let exchange = async {
            let response = self
                .transport
                .http
                .request(request)
                .await
                .map_err(|e| transport(error_chain(&e)))?;
            let status = response.status().as_u16();
            let bytes = read_body(response.into_body(), MAX_REPLY_BYTES)
                .await
                .map_err(transport)?;
            Ok::<_, RpcFailure>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| transport(format!("no answer within {timeout:?}")))??;
        // bitcoind reports RPC errors with HTTP 500 (or 404 for unknown methods) and a JSON body.
        #[derive(Deserialize)]
        struct Reply {
            result: Option<Value>,
            error: Option<ErrorObject>,
        }
        #[derive(Deserialize)]
        struct ErrorObject {
            code: i64,
            message: String,
        }
        match serde_json::from_slice::<Reply>(&bytes) {
            Ok(Reply { error: Some(e), .. }) => Err(RpcFailure::Node {
                method: method.into(),
                code: e.code,
                message: e.message,
            }),
            Ok(Reply { result, .. }) if status == 200 => Ok(result.unwrap_or(Value::Null)),
            _ => Err(RpcFailure::Http {
                addr: self.addr,
                method: method.into(),
                status,
            }),
        }
    }

    /// Calls `method` and decodes the result.
    pub async fn call<T: DeserializeOwned>(&self, method: &str, params: Value) -> Result<T> {
        let value = self
            .call_raw(method, params, Duration::from_secs(60))
            .await?;
        serde_json::from_value(value).map_err(|source| RpcError {
            node: self.node.clone(),
            failure: RpcFailure::Decode {
                method: method.into(),
                source,
            },
        })
    }

    pub async fn get_block_count(&self) -> Result<u64> {
        self.call("getblockcount", json!([])).await
    }

    pub async fn get_best_block_hash(&self) -> Result<String> {
        self.call("getbestblockhash", json!([])).await
    }

    /// Height and hash of the active tip (`getblockchaininfo`).
    pub async fn get_tip(&self) -> Result<Tip> {
        self.call("getblockchaininfo", json!([])).await
    }

    /// Whether the node is in initial block download (a fresh regtest chain, or a tip older than a
    /// day after a restart): it then relays no transactions and logs new headers at debug level.
    pub async fn initial_block_download(&self) -> Result<bool> {
        #[derive(Deserialize)]
        struct Info {
            #[serde(default)]
            initialblockdownload: bool,
        }
        let info: Info = self.call("getblockchaininfo", json!([])).await?;
        Ok(info.initialblockdownload)
    }

    pub async fn get_block_header(&self, hash: &str) -> Result<BlockHeader> {
        self.call("getblockheader", json!([hash])).await
    }

    /// Every tip of the node's block tree: the active one, and those of branches off it.
    pub async fn get_chain_tips(&self) -> Result<Vec<crate::core::chain::forks::ChainTip>> {
        self.call("getchaintips", json!([])).await
    }

    pub async fn get_peer_info(&self) -> Result<Vec<PeerInfo>> {
        self.call("getpeerinfo", json!([])).await
    }

    pub async fn get_mempool_info(&self) -> Result<MempoolInfo> {
        self.call("getmempoolinfo", json!([])).await
    }

    pub async fn get_raw_mempool(&self) -> Result<Vec<String>> {
        self.call("getrawmempool", json!([])).await
    }

    /// Asks the node to open one outbound connection to `peer`; returns at once.
    pub async fn add_node_onetry(&self, peer: SocketAddr) -> Result<()> {
        self.call::<Value>("addnode", json!([peer.to_string(), "onetry"]))
            .await
            .map(|_| ())
    }

    /// Closes the session with peer `id`; a peer already gone is not an error.
    pub async fn disconnect_node(&self, id: i64) -> Result<()> {
        match self.call::<Value>("disconnectnode", json!(["", id])).await {
            Err(e) if e.code() == Some(RPC_CLIENT_NODE_NOT_CONNECTED) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Creates (or, after a restart, loads) the node's wallet `regbox`.
    pub async fn ensure_wallet(&self) -> Result<()> {
        match self.call::<Value>("createwallet", json!([WALLET])).await {
            Ok(_) => Ok(()),
            // -4: the wallet exists on disk (the node restarted): load it.
            Err(e) if e.code() == Some(-4) => {
                match self.call::<Value>("loadwallet", json!([WALLET])).await {
                    Err(e) if e.code() != Some(-35) => Err(e),
                    _ => Ok(()),
                }
            }
            // -35: already loaded.
            Err(e) if e.code() == Some(-35) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A new bech32 address of the node's wallet.
    pub async fn get_new_address(&self) -> Result<String> {
        self.call("getnewaddress", json!(["", "bech32"])).await
    }

    /// Pays `amount_sat` to `address` from the node's wallet; returns the txid.
    pub async fn send_to_address(&self, address: &str, amount_sat: u64) -> Result<String> {
        let btc = format!(
            "{}.{:08}",
            amount_sat / 100_000_000,
            amount_sat % 100_000_000
        );
        let amount: Value = serde_json::from_str(&btc).expect("a decimal number");
        self.call("sendtoaddress", json!([address, amount])).await
    }

    /// Mines `blocks` blocks paying to `address`.
    pub async fn generate_to_address(&self, blocks: u64, address: &str) -> Result<Vec<String>> {
        self.call("generatetoaddress", json!([blocks, address]))
            .await
    }

    /// Mines `blocks` blocks paying to `descriptor`; needs no wallet.
    pub async fn generate_to_descriptor(
        &self,
        blocks: u64,
        descriptor: &str,
    ) -> Result<Vec<String>> {
        self.call("generatetodescriptor", json!([blocks, descriptor]))
            .await
    }

    /// Switches debug log categories on and off (`logging`); returns every category's state after.
    pub async fn logging(
        &self,
        include: &[&str],
        exclude: &[&str],
    ) -> Result<std::collections::BTreeMap<String, bool>> {
        self.call("logging", json!([include, exclude])).await
    }

    /// The unspent outputs of the chain state matching `descriptor` (`scantxoutset`; the mempool is
    /// not looked at).
    pub async fn scan_outputs(&self, descriptor: &str) -> Result<Vec<Unspent>> {
        #[derive(Deserialize)]
        struct Scan {
            #[serde(default)]
            unspents: Vec<Unspent>,
        }
        let scan: Scan = self
            .call("scantxoutset", json!(["start", [descriptor]]))
            .await?;
        Ok(scan.unspents)
    }

    /// Whether output `vout` of `txid` is unspent, counting spends in the mempool when `mempool`.
    pub async fn is_unspent(&self, txid: &str, vout: u32, mempool: bool) -> Result<bool> {
        let out: Value = self.call("gettxout", json!([txid, vout, mempool])).await?;
        Ok(!out.is_null())
    }

    /// Submits a signed transaction (hex); returns its txid.
    pub async fn send_raw_transaction(&self, hex: &str) -> Result<String> {
        self.call("sendrawtransaction", json!([hex])).await
    }

    /// Adds the checksum bitcoind expects to a descriptor.
    pub async fn descriptor_with_checksum(&self, descriptor: &str) -> Result<String> {
        #[derive(Deserialize)]
        struct Info {
            checksum: String,
        }
        let info: Info = self.call("getdescriptorinfo", json!([descriptor])).await?;
        Ok(format!("{descriptor}#{}", info.checksum))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A server on 127.0.0.1 that answers every connection with an HTTP reply whose body never ends
    /// (chunked, or declaring `declared` bytes and sending on past them); returns its address.
    pub(crate) async fn endless_server(declared: Option<u64>) -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = conn.read(&mut request).await;
                    let head = match declared {
                        Some(n) => format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n"),
                        None => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
                    };
                    conn.write_all(head.as_bytes()).await?;
                    let piece = vec![b' '; 1 << 16];
                    let chunk = match declared {
                        Some(_) => piece,
                        None => [
                            format!("{:x}\r\n", piece.len()).into_bytes(),
                            piece,
                            b"\r\n".to_vec(),
                        ]
                        .concat(),
                    };
                    loop {
                        conn.write_all(&chunk).await?;
                    }
                    #[allow(unreachable_code)]
                    std::io::Result::Ok(())
                });
            }
        });
        addr
    }

    async fn call_endless(declared: Option<u64>) -> RpcError {
        let addr = endless_server(declared).await;
        let client = RpcClient::new(Transport::default(), "n0", addr, "u", "p");
        let call = client.call_raw("getblock", json!([]), Duration::from_secs(60));
        tokio::time::timeout(Duration::from_secs(30), call)
            .await
            .expect("the call ends within 30 s, not when memory runs out")
            .expect_err("an endless reply is refused")
    }

    /// A reply that never ends (or says it is huge and keeps sending) is cut at the limit: a transport
    /// error naming it, not a read that grows memory for as long as the sender goes on.
    #[tokio::test]
    async fn an_endless_reply_is_cut_at_the_limit() {
        for declared in [None, Some(1 << 40)] {
            let e = call_endless(declared).await;
            assert!(matches!(e.failure, RpcFailure::Transport { .. }), "{e}");
            let message = e.to_string();
            assert!(
                message.contains("the reply is larger than 64 MiB, the most regbox reads"),
                "{message}"
            );
            assert!(
                message.starts_with("node `n0`: call `getblock` on 127.0.0.1:"),
                "{message}"
            );
        }
    }

    #[tokio::test]
    async fn a_body_under_the_limit_is_read_whole() {
        let body = Full::new(Bytes::from(vec![b'x'; 1000]));
        assert_eq!(read_body(body, 1000).await.unwrap().len(), 1000);
        let body = Full::new(Bytes::from(vec![b'x'; 1001]));
        assert_eq!(
            read_body(body, 1000).await.unwrap_err(),
            "the reply is larger than 1000 bytes, the most regbox reads"
        );
    }

    #[test]
    fn answer_status_reads_the_status_line() {
        assert_eq!(
            answer_status(b"HTTP/1.1 200 Connection established\r\n\r\n"),
            Some(200)
        );
        assert_eq!(answer_status(b"HTTP/1.0 403 Forbidden\r\n\r\n"), Some(403));
        assert_eq!(
            answer_status(b"HTTP/1.1 502 Bad Gateway\r\nX: y\r\n\r\n"),
            Some(502)
        );
        assert_eq!(answer_status(b"HTTP/1.1 200\r\n\r\n"), Some(200));
        assert_eq!(answer_status(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
        assert_eq!(answer_status(b"HTTP/2 200\r\n\r\n"), None);
        assert_eq!(answer_status(b"HTTP/1.1 20x OK\r\n\r\n"), None);
        assert_eq!(answer_status(b""), None);
    }
}
