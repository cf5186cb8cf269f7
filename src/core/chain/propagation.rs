//! Propagation as data: bitcoind's log lines that say when a node took a block (`UpdateTip`) or a
//! transaction (its mempool acceptance), their timestamps, and the statistics of a measurement —
//! per-node arrival times against hop distance, quantiles, the arrival CDF and per-hop means.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Most rounds (blocks mined or transactions sent) one measurement takes.
pub const MAX_ROUNDS: usize = 1000;

/// What travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Block,
    Tx,
}

impl Kind {
    pub fn word(self) -> &'static str {
        match self {
            Kind::Block => "block",
            Kind::Tx => "tx",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// The block or transaction a round follows, by hash or txid (hex, as RPC and the log show it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Block(String),
    Tx(String),
}

/// A log line's time: microseconds since the Unix epoch, and whether the line had microseconds
/// (`-logtimemicros`) or whole seconds only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    pub micros: i64,
    pub precise: bool,
}

/// The time at the start of a bitcoind log line: `2026-11-29T23:58:48.345543Z ` (with
/// `-logtimemicros`) or `2026-11-29T23:58:48Z `; the rest of the line after it. While bitcoind's log
/// rate limit suppresses a chatty source (more than 1 MiB an hour from one place: a wallet node that
/// mined and sent a thousand times), it puts `[*] ` before every line, the time included.
pub fn timestamp(line: &str) -> Option<(Stamp, &str)> {
    let line = line.strip_prefix("[*] ").unwrap_or(line);
    let (stamp, rest) = line.split_once(' ')?;
    let stamp = stamp.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (clock, fraction) = match time.split_once('.') {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (time, None),
    };
    let mut t = clock.splitn(3, ':').map(str::parse::<i64>);
    let (h, m, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let micros = match fraction {
        Some(f) if f.len() == 6 && f.bytes().all(|b| b.is_ascii_digit()) => f.parse().ok()?,
        Some(_) => return None,
        None => 0,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s;
    let stamp = Stamp {
        micros: seconds * 1_000_000 + micros,
        precise: fraction.is_some(),
    };
    Some((stamp, rest))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Markers of the lines that say a node has the target. A block: `UpdateTip: new best=<hash>` (logged
/// when it becomes the node's tip). A transaction: `AcceptToMemoryPool: peer=<id>: accepted <txid>`
/// (the `mempool` category, a transaction from a peer) or `TransactionAddedToMempool: txid=<txid>`
/// (the `validation` category, any transaction, the sender's own included).
fn mentions(rest: &str, target: &Target) -> bool {
    match target {
        Target::Block(hash) => rest
            .split_once("UpdateTip: new best=")
            .is_some_and(|(_, after)| word_is(after, hash)),
        Target::Tx(txid) => {
            let accepted = rest
                .split_once("AcceptToMemoryPool: peer=")
                .and_then(|(_, after)| {
                    let (_, after) = after.split_once(": accepted ")?;
                    Some(word_is(after, txid))
                });
            let added = rest
                .split_once("TransactionAddedToMempool: txid=")
                .map(|(_, after)| word_is(after, txid));
            accepted.or(added).unwrap_or(false)
        }
    }
}

/// `text` starts with `word` followed by a space or its end.
fn word_is(text: &str, word: &str) -> bool {
    text.strip_prefix(word)
        .is_some_and(|tail| tail.is_empty() || tail.starts_with(' '))
}

/// When the node first saw block `hash`'s header: `Saw new header hash=<hash>` (its own block, or
/// headers from a peer) or `Saw new cmpctblock header hash=<hash>` (a compact block). A node that
/// got the block some other way (a whole `block` message with an unknown header) logs neither.
pub fn header_seen(log: &str, hash: &str) -> Option<Stamp> {
    first(log, |rest| {
        ["Saw new header hash=", "Saw new cmpctblock header hash="]
            .iter()
            .any(|marker| {
                rest.split_once(marker)
                    .is_some_and(|(_, after)| word_is(after, hash))
            })
    })
}

/// The time of the first line of `log` that says the node has `target`.
pub fn arrival(log: &str, target: &Target) -> Option<Stamp> {
    first(log, |rest| mentions(rest, target))
}

/// When `target` came into being, from the origin's log: a block when its header entered the miner's
/// block index (`Saw new header hash=<hash>`, logged before the block is relayed or connected; a
/// node in initial block download logs it at debug level only), a transaction when the sender
/// accepted it. Every arrival is timed from here, so none can be negative: a block's receivers
/// often make it their tip before the miner has finished connecting it (compact blocks are relayed
/// before validation), so the miner's own `UpdateTip` is no origin.
pub fn born(log: &str, target: &Target) -> Option<Stamp> {
    match target {
        Target::Block(hash) => first(log, |rest| {
            rest.split_once("Saw new header hash=")
                .is_some_and(|(_, after)| word_is(after, hash))
        }),
        Target::Tx(_) => arrival(log, target),
    }
}

fn first(log: &str, wanted: impl Fn(&str) -> bool) -> Option<Stamp> {
    log.lines()
        .filter_map(timestamp)
        .filter(|(_, rest)| wanted(rest))
        .map(|(stamp, _)| stamp)
        .min()
}

/// One node's arrival in one round: hops from the origin in the peer graph (None: not reachable) and
/// milliseconds after the target was born at the origin (None: it never arrived, or the node was not
/// reachable). The origin's own arrival is its own `UpdateTip` for a block (the time it took to
/// connect it), 0 for a transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arrival {
    pub node: String,
    pub hops: Option<usize>,
    pub ms: Option<f64>,
    /// Blocks only: when the node first saw the block's header (see [`header_seen`]), which is pure
    /// relay; `ms` adds the node's own validation and connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_ms: Option<f64>,
}

/// One block mined, or one transaction sent, and when each node took it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// 1-based.
    pub round: usize,
    /// The block hash or txid.
    pub id: String,
    /// The block's height (blocks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    pub arrivals: Vec<Arrival>,
}

/// What the logs of one round said, node by node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stamps {
    /// When the target was born at the origin (see [`born`]).
    pub born: Option<Stamp>,
    /// Each node's [`arrival`] (None: no line).
    pub arrived: Vec<Option<Stamp>>,
    /// Each node's [`header_seen`] (blocks only).
    pub header: Vec<Option<Stamp>>,
}

/// Arrivals relative to the birth at the origin; `hops[i]` is node `i`'s distance from it.
pub fn arrivals(names: &[&str], hops: &[Option<usize>], stamps: &Stamps) -> Vec<Arrival> {
    let since = |at: &[Option<Stamp>], i: usize| {
        let born = stamps.born?;
        let t = at.get(i).copied().flatten()?;
        Some((t.micros - born.micros) as f64 / 1000.0)
    };
    names
        .iter()
        .enumerate()
        .map(|(i, name)| Arrival {
            node: name.to_string(),
            hops: hops.get(i).copied().flatten(),
            ms: since(&stamps.arrived, i),
            header_ms: since(&stamps.header, i),
        })
        .collect()
}

/// Arrivals at one hop distance, over every round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HopStat {
    pub hops: usize,
    /// Arrivals counted (nodes at this distance × rounds, less those that never arrived).
    pub samples: usize,
    pub mean_ms: f64,
    pub max_ms: f64,
    /// Blocks: the mean time the nodes at this distance first saw the header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_header_ms: Option<f64>,
}

/// A measurement in a few numbers. Quantiles are over every receiver (each node but the origin) in
/// every round, nearest rank; a receiver that never took the target counts as later than any time,
/// so a quantile it reaches is None.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub rounds: usize,
    /// Receiver arrivals counted (receivers × rounds).
    pub samples: usize,
    /// Of those, the ones that never arrived (unreachable or not logged).
    pub missing: usize,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
    /// Mean and max per hop distance, the origin's 0 included.
    pub per_hop: Vec<HopStat>,
}

/// A measurement: per round, when each node took the block or transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub kind: Kind,
    pub origin: String,
    /// Nodes the origin could not reach in the peer graph at the start; they count as never arrived.
    pub unreachable: Vec<String>,
    /// What a `tx` measurement did first to have coins to send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prepared: Option<Prepared>,
    pub rounds: Vec<Round>,
    pub summary: Summary,
}

/// What a measurement did before its rounds. A `block` measurement mines one block first when a node
/// is in initial block download (a fresh chain): such a node logs new headers at debug level only and
/// relays differently. A `tx` measurement mines to the anyone-can-spend script when no mature coin of
/// it exists (100 blocks) and splits one coin into one output per round (one more block).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prepared {
    pub blocks_mined: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_txid: Option<String>,
}

/// Every receiver's arrival (ms; None for never), over every round.
fn receiver_times(rounds: &[Round]) -> Vec<Option<f64>> {
    rounds
        .iter()
        .flat_map(|r| &r.arrivals)
        .filter(|a| a.hops != Some(0))
        .map(|a| a.ms)
        .collect()
}

/// Sorted ascending, `None` (never) last.
fn sorted(mut times: Vec<Option<f64>>) -> Vec<Option<f64>> {
    use std::cmp::Ordering;
    times.sort_by(|a, b| match (a, b) {
        (Some(a), Some(b)) => a.total_cmp(b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    });
    times
}

/// The nearest-rank `q`-quantile: the smallest time within which at least a fraction `q` of the
/// receivers arrived. None when that needs receivers that never arrived, or there are none.
pub fn quantile(rounds: &[Round], q: f64) -> Option<f64> {
    rank(&sorted(receiver_times(rounds)), q)
}

fn rank(sorted: &[Option<f64>], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let k = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).max(1);
    sorted[k - 1]
}

/// The summary of a measurement.
pub fn summarize(rounds: &[Round]) -> Summary {
    let times = sorted(receiver_times(rounds));
    Summary {
        rounds: rounds.len(),
        samples: times.len(),
        missing: times.iter().filter(|t| t.is_none()).count(),
        p50: rank(&times, 0.5),
        p90: rank(&times, 0.9),
        p95: rank(&times, 0.95),
        max: rank(&times, 1.0),
        per_hop: per_hop(rounds),
    }
}

/// Mean and max arrival at each hop distance (and the mean header time where there are any).
fn per_hop(rounds: &[Round]) -> Vec<HopStat> {
    let arrivals: Vec<&Arrival> = rounds.iter().flat_map(|r| &r.arrivals).collect();
    let mut distances: Vec<usize> = arrivals.iter().filter_map(|a| a.hops).collect();
    distances.sort_unstable();
    distances.dedup();
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    distances
        .into_iter()
        .filter_map(|hops| {
            let at: Vec<&&Arrival> = arrivals.iter().filter(|a| a.hops == Some(hops)).collect();
            let ms: Vec<f64> = at.iter().filter_map(|a| a.ms).collect();
            let headers: Vec<f64> = at.iter().filter_map(|a| a.header_ms).collect();
            Some(HopStat {
                hops,
                samples: ms.len(),
                mean_ms: mean(&ms)?,
                max_ms: ms.iter().copied().fold(f64::MIN, f64::max),
                mean_header_ms: mean(&headers),
            })
        })
        .collect()
}

/// The empirical CDF of receiver arrivals: one point (ms, fraction of receivers arrived by then) per
/// arrival, ascending. Receivers that never arrived keep the last fraction below 1.
pub fn cdf(rounds: &[Round]) -> Vec<(f64, f64)> {
    let times = sorted(receiver_times(rounds));
    let n = times.len() as f64;
    times
        .iter()
        .enumerate()
        .filter_map(|(i, t)| Some((((*t)?), (i + 1) as f64 / n)))
        .collect()
}

/// Every arrival as (round index from 0, hops, ms), the origin's included, for a scatter plot.
pub fn points(rounds: &[Round]) -> Vec<(usize, usize, f64)> {
    rounds
        .iter()
        .enumerate()
        .flat_map(|(i, r)| r.arrivals.iter().map(move |a| (i, a)))
        .filter_map(|(i, a)| Some((i, a.hops?, a.ms?)))
        .collect()
}

/// A scenario's bound: at least a fraction `quantile` of the receivers' arrivals (every node but the
/// origin, every round) within `within_ms`. The error says what was measured.
pub fn check_within(
    rounds: &[Round],
    kind: Kind,
    origin: &str,
    quantile: f64,
    within_ms: f64,
) -> Result<(), String> {
    let measured = self::quantile(rounds, quantile);
    if measured.is_some_and(|ms| ms <= within_ms) {
        return Ok(());
    }
    let s = summarize(rounds);
    let shown = |t: Option<f64>| t.map_or("never".to_string(), |ms| format!("{ms:.1} ms"));
    let missing = if s.missing > 0 {
        format!("; {} of {} arrivals never came", s.missing, s.samples)
    } else {
        String::new()
    };
    Err(format!(
        "expected {} of the other nodes' arrivals of a {kind} from {origin} within {within_ms} ms, measured p{} = {} (p50 {}, max {}) over {} round(s){missing}",
        percent(quantile),
        percent(quantile).trim_end_matches('%'),
        shown(measured),
        shown(s.p50),
        shown(s.max),
        s.rounds,
    ))
}

/// `0.95` → `95%`, `0.999` → `99.9%`.
pub fn percent(q: f64) -> String {
    let text = format!("{:.3}", q * 100.0);
    format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as Bitcoin Knots 29.4 (regtest, -logtimemicros) writes them.
    const MINER: &str = "\
2026-11-29T23:57:58.257392Z CreateNewBlock(): total size: 252 block weight: 900 txs: 0 fees: 0 sigops 400
2026-11-29T23:57:58.257603Z Saw new header hash=7cd9a4ddf928d5cded4b888a3fae74e9be06218b895ab94eec702bf0146b2613 height=100
2026-11-29T23:57:58.264281Z UpdateTip: new best=7cd9a4ddf928d5cded4b888a3fae74e9be06218b895ab94eec702bf0146b2613 height=100 version=0x20000000 log2_work=7.658211 tx=101 date='2026-11-29T23:58:11Z' progress=1.000000 cache=0.3MiB(100txo)
2026-11-29T23:58:48.345543Z [validation] Enqueuing TransactionAddedToMempool: txid=70f9bb957edb306cdaf5f77c1c5ba657c2710643e5009aec227dffcc65eecc64 wtxid=54bef757057a10c5b49109df15678de155dd4b844ac878b7c572ee6cb01f0fca
2026-11-29T23:58:48.346444Z [mempool] Checking mempool with 1 transactions and 1 inputs
2026-11-29T23:58:48.346566Z [validation] TransactionAddedToMempool: txid=70f9bb957edb306cdaf5f77c1c5ba657c2710643e5009aec227dffcc65eecc64 wtxid=54bef757057a10c5b49109df15678de155dd4b844ac878b7c572ee6cb01f0fca
";
    const PEER: &str = "\
2026-11-29T23:57:58.265230Z Saw new header hash=7cd9a4ddf928d5cded4b888a3fae74e9be06218b895ab94eec702bf0146b2613 height=100
2026-11-29T23:57:58.271907Z UpdateTip: new best=7cd9a4ddf928d5cded4b888a3fae74e9be06218b895ab94eec702bf0146b2613 height=100 version=0x20000000 log2_work=7.658211 tx=101 date='2026-11-29T23:58:11Z' progress=1.000000 cache=0.3MiB(100txo)
2026-11-29T23:58:50.100200Z [mempool] AcceptToMemoryPool: peer=0: accepted 70f9bb957edb306cdaf5f77c1c5ba657c2710643e5009aec227dffcc65eecc64 (wtxid=54bef757057a10c5b49109df15678de155dd4b844ac878b7c572ee6cb01f0fca) (poolsz 1 txn, 1 kB)
2026-11-29T23:58:50.100400Z [validation] TransactionAddedToMempool: txid=70f9bb957edb306cdaf5f77c1c5ba657c2710643e5009aec227dffcc65eecc64 wtxid=54bef757057a10c5b49109df15678de155dd4b844ac878b7c572ee6cb01f0fca
";
    const BLOCK: &str = "7cd9a4ddf928d5cded4b888a3fae74e9be06218b895ab94eec702bf0146b2613";
    const TX: &str = "70f9bb957edb306cdaf5f77c1c5ba657c2710643e5009aec227dffcc65eecc64";

    fn block() -> Target {
        Target::Block(BLOCK.into())
    }

    fn tx() -> Target {
        Target::Tx(TX.into())
    }

    #[test]
    fn timestamps_with_and_without_microseconds() {
        let (t, rest) = timestamp("2026-11-29T23:58:48.345543Z hello world").unwrap();
        assert_eq!(rest, "hello world");
        assert!(t.precise);
        // date -d 2026-11-29T23:58:48Z +%s
        assert_eq!(t.micros, 1_795_996_728_345_543);
        // A line under bitcoind's log rate limit: seen on a wallet node after 1,900 sends, when
        // `measure propagation` found no line of its block's birth.
        let (t, rest) = timestamp("[*] 2026-11-29T23:58:48.345543Z [w] AddToWallet").unwrap();
        assert_eq!((t.micros, rest), (1_795_996_728_345_543, "[w] AddToWallet"));
        let (t, _) = timestamp("1970-01-01T00:00:01Z x").unwrap();
        assert_eq!(
            t,
            Stamp {
                micros: 1_000_000,
                precise: false
            }
        );
        assert_eq!(
            timestamp("2000-03-01T00:00:00Z x").unwrap().0.micros / 1_000_000,
            951_868_800
        );
        for bad in [
            "",
            "hello",
            "2026-11-29 23:58:48Z x",
            "2026-13-29T23:58:48Z x",
            "2026-11-29T23:58:48.34Z x",
            "2026-11-29T23:58:48.3455xxZ x",
            "   CTxIn(COutPoint(50370bac9d, 0), scriptSig=4730440220, nSequence=4294967293)",
        ] {
            assert_eq!(timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_block_is_born_with_its_header_and_arrives_with_its_update_tip() {
        let born = born(MINER, &block()).unwrap();
        assert_eq!(born.micros % 1_000_000, 257_603);
        let miner = arrival(MINER, &block()).unwrap();
        assert_eq!(miner.micros - born.micros, 6_678);
        let peer = arrival(PEER, &block()).unwrap();
        assert_eq!(peer.micros - miner.micros, 7_626);
        // A receiver's header line (`Saw new cmpctblock header`) is no birth; the origin's counts.
        let cmpct =
            format!("2026-11-29T23:57:58.265000Z Saw new cmpctblock header hash={BLOCK} peer=0");
        assert_eq!(super::born(&cmpct, &block()), None);
        // Header lines: the miner's own, a peer's header and a compact block's.
        assert_eq!(header_seen(MINER, BLOCK), Some(born));
        assert_eq!(
            header_seen(PEER, BLOCK).unwrap().micros % 1_000_000,
            265_230
        );
        assert_eq!(
            header_seen(&cmpct, BLOCK).unwrap().micros % 1_000_000,
            265_000
        );
        assert_eq!(header_seen(PEER, &BLOCK[..10]), None);
        // Only this exact hash: a prefix, another block or a header line is no arrival.
        assert_eq!(arrival(PEER, &Target::Block(BLOCK[..20].into())), None);
        assert_eq!(arrival(PEER, &Target::Block("00".repeat(32))), None);
        let header_only = PEER.lines().next().unwrap();
        assert_eq!(arrival(header_only, &block()), None);
    }

    #[test]
    fn a_transaction_arrives_with_its_first_acceptance_line() {
        // The sender logs no AcceptToMemoryPool line for its own transaction: the validation
        // category's line is its acceptance.
        assert_eq!(header_seen(MINER, TX), None);
        let sender = arrival(MINER, &tx()).unwrap();
        assert_eq!(sender.micros % 1_000_000, 345_543);
        assert_eq!(born(MINER, &tx()), Some(sender));
        let peer = arrival(PEER, &tx()).unwrap();
        assert_eq!(peer.micros % 1_000_000, 100_200);
        let only_validation: String = PEER.lines().skip(3).collect();
        assert_eq!(
            arrival(&only_validation, &tx()).unwrap().micros % 1_000_000,
            100_400
        );
        assert_eq!(arrival(PEER, &Target::Tx(BLOCK.into())), None);
        // Thread names or source locations in front of the message do not hide it.
        let decorated = format!(
            "2026-11-29T23:58:50.000001Z [msghand] [net_processing.cpp:3000] [ProcessMessage] [mempool] AcceptToMemoryPool: peer=3: accepted {TX} (wtxid=ab)"
        );
        assert_eq!(arrival(&decorated, &tx()).unwrap().micros % 1_000_000, 1);
    }

    fn round(n: usize, ms: &[Option<f64>], hops: &[usize]) -> Round {
        Round {
            round: n,
            id: format!("id{n}"),
            height: None,
            arrivals: ms
                .iter()
                .zip(hops)
                .enumerate()
                .map(|(i, (ms, hops))| Arrival {
                    node: format!("n{i}"),
                    hops: Some(*hops),
                    ms: *ms,
                    header_ms: ms.map(|ms| ms / 2.0),
                })
                .collect(),
        }
    }

    #[test]
    fn arrivals_are_relative_to_the_birth_at_the_origin() {
        let at = |micros| Stamp {
            micros,
            precise: true,
        };
        let mut stamps = Stamps {
            born: Some(at(1_000)),
            arrived: vec![Some(at(1_500)), Some(at(1_200)), None],
            header: vec![Some(at(1_100)), Some(at(1_000)), None],
        };
        let a = arrivals(&["n0", "n1", "n2"], &[Some(1), Some(0), None], &stamps);
        assert_eq!((a[0].ms, a[0].header_ms), (Some(0.5), Some(0.1)));
        assert_eq!((a[1].hops, a[1].ms), (Some(0), Some(0.2)));
        assert_eq!((a[2].hops, a[2].ms), (None, None));
        stamps.header.clear();
        stamps.born = None;
        let a = arrivals(&["n0"], &[Some(0)], &stamps);
        assert_eq!((a[0].ms, a[0].header_ms), (None, None));
    }

    #[test]
    fn summary_quantiles_and_per_hop_means() {
        // A line of five, origin n0; two rounds.
        let hops = [0, 1, 2, 3, 4];
        let rounds = [
            round(
                1,
                &[Some(0.0), Some(10.0), Some(20.0), Some(30.0), Some(40.0)],
                &hops,
            ),
            round(
                2,
                &[Some(0.0), Some(12.0), Some(22.0), Some(35.0), Some(60.0)],
                &hops,
            ),
        ];
        let s = summarize(&rounds);
        assert_eq!((s.rounds, s.samples, s.missing), (2, 8, 0));
        // Sorted: 10 12 20 22 30 35 40 60.
        assert_eq!(
            (s.p50, s.p90, s.p95, s.max),
            (Some(22.0), Some(60.0), Some(60.0), Some(60.0))
        );
        assert_eq!(quantile(&rounds, 0.75), Some(35.0));
        assert_eq!(quantile(&rounds, 0.0), Some(10.0));
        let means: Vec<(usize, usize, f64, f64)> = s
            .per_hop
            .iter()
            .map(|h| (h.hops, h.samples, h.mean_ms, h.max_ms))
            .collect();
        assert_eq!(s.per_hop[4].mean_header_ms, Some(25.0));
        assert_eq!(
            means,
            [
                (0, 2, 0.0, 0.0),
                (1, 2, 11.0, 12.0),
                (2, 2, 21.0, 22.0),
                (3, 2, 32.5, 35.0),
                (4, 2, 50.0, 60.0)
            ]
        );
        let cdf = cdf(&rounds);
        assert_eq!(cdf.len(), 8);
        assert_eq!((cdf[0], cdf[7]), ((10.0, 0.125), (60.0, 1.0)));
        let points = points(&rounds);
        assert_eq!(points.len(), 10);
        assert_eq!(points[9], (1, 4, 60.0));
    }

    #[test]
    fn receivers_that_never_arrive_count_as_late() {
        let rounds = [round(
            1,
            &[Some(0.0), Some(5.0), Some(7.0), None],
            &[0, 1, 1, 2],
        )];
        let s = summarize(&rounds);
        assert_eq!((s.samples, s.missing), (3, 1));
        assert_eq!((s.p50, s.p95, s.max), (Some(7.0), None, None));
        assert_eq!(cdf(&rounds).last(), Some(&(7.0, 2.0 / 3.0)));
        assert!(check_within(&rounds, Kind::Block, "n0", 0.6, 10.0).is_ok());
        let err = check_within(&rounds, Kind::Block, "n0", 0.95, 10_000.0).unwrap_err();
        assert_eq!(
            err,
            "expected 95% of the other nodes' arrivals of a block from n0 within 10000 ms, measured p95 = never (p50 7.0 ms, max never) over 1 round(s); 1 of 3 arrivals never came"
        );
        assert_eq!(summarize(&[]).p50, None);
    }

    #[test]
    fn the_bound_holds_exactly_at_the_quantile() {
        let rounds = [round(
            1,
            &[Some(0.0), Some(100.0), Some(2000.0), Some(2000.5)],
            &[0, 1, 2, 3],
        )];
        assert!(check_within(&rounds, Kind::Tx, "n0", 2.0 / 3.0, 2000.0).is_ok());
        let err = check_within(&rounds, Kind::Tx, "n0", 0.9, 2000.0).unwrap_err();
        assert!(
            err.contains("measured p90 = 2000.5 ms (p50 2000.0 ms, max 2000.5 ms)"),
            "{err}"
        );
        assert_eq!(percent(0.95), "95%");
        assert_eq!(percent(0.999), "99.9%");
        assert_eq!(percent(1.0), "100%");
    }
}
