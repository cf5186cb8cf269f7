//! Link faults as data: what a node's outgoing P2P packets suffer (delay and jitter, loss,
//! duplication, corruption, reordering, a rate limit), how each is spelled, and the per-packet
//! decisions that carry it out — pure: the agent hands in the time and the packet's length.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::names::{backticked, shown};
use crate::core::rng::SplitMix64;
use crate::core::yaml::{Check, Cx, Fields};

/// How the jitter around the delay is drawn (netem's names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Evenly within delay ± jitter.
    #[default]
    Uniform,
    /// Normal, with the jitter as standard deviation.
    Normal,
    /// Pareto (shape 3), scaled to the jitter as standard deviation: mostly short, now and then long.
    Pareto,
}

impl Distribution {
    pub const NAMES: [&'static str; 3] = ["uniform", "normal", "pareto"];

    pub fn parse(word: &str) -> Option<Distribution> {
        match word {
            "uniform" => Some(Distribution::Uniform),
            "normal" => Some(Distribution::Normal),
            "pareto" => Some(Distribution::Pareto),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        Distribution::NAMES[self as usize]
    }
}

/// What a link does to packets. Probabilities are fractions in `[0, 1]`; the default does nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Shaping {
    /// Added to every packet's departure, in microseconds.
    pub delay_us: u64,
    /// Spread around the delay, in microseconds (packets keep their order; see `reorder`).
    pub jitter_us: u64,
    pub distribution: Distribution,
    pub loss: f64,
    pub duplicate: f64,
    pub corrupt: f64,
    /// Share of packets sent at once, overtaking the delayed ones (needs a delay to show).
    pub reorder: f64,
    /// Bits per second the link carries; packets queue behind each other beyond it.
    pub rate_bps: Option<u64>,
}

/// Blockade's shorthands: `slow`, `flaky`, `duplicate`, and `fast` (no shaping).
pub const SHORTHANDS: [&str; 4] = ["slow", "flaky", "duplicate", "fast"];

impl Shaping {
    /// The shaping a Blockade shorthand stands for (`fast` is none at all).
    pub fn shorthand(word: &str) -> Option<Shaping> {
        let s = match word {
            "slow" => Shaping {
                delay_us: 75_000,
                jitter_us: 100_000,
                distribution: Distribution::Normal,
                ..Shaping::default()
            },
            "flaky" => Shaping {
                loss: 0.30,
                ..Shaping::default()
            },
            "duplicate" => Shaping {
                duplicate: 0.05,
                ..Shaping::default()
            },
            "fast" => Shaping::default(),
            _ => return None,
        };
        Some(s)
    }

    /// Nothing is done to packets.
    pub fn is_none(&self) -> bool {
        *self == Shaping::default()
    }

    /// A value out of range, described; `None` when all are valid.
    pub fn invalid(&self) -> Option<String> {
        for (name, p) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("corrupt", self.corrupt),
            ("reorder", self.reorder),
        ] {
            if !(0.0..=1.0).contains(&p) || p.is_nan() {
                return Some(format!("{name} must be between 0% and 100%"));
            }
        }
        if self.rate_bps == Some(0) {
            return Some("rate must be above 0".into());
        }
        if self.delay_us > MAX_DELAY_US || self.jitter_us > MAX_DELAY_US {
            return Some("delay and jitter must be at most 60s".into());
        }
        None
    }
}

// Shaping has no NaN: every value comes through the parsers below or `invalid`.
impl Eq for Shaping {}

const MAX_DELAY_US: u64 = 60_000_000;

/// The fields of a YAML mapping that spell a shaping, as `regbox netem`'s options do.
pub const FIELDS: &[&str] = &[
    "like",
    "delay",
    "jitter",
    "distribution",
    "loss",
    "duplicate",
    "corrupt",
    "reorder",
    "rate",
];

/// The shaping the [`FIELDS`] of `f` spell (`like:` first, the others change it), or `None` when `f`
/// has none of them. Errors point at the bad value.
pub(crate) fn from_fields(cx: &Cx, f: &Fields) -> Check<Option<Shaping>> {
    if !FIELDS.iter().any(|k| f.get(k).is_some()) {
        return Ok(None);
    }
    fn value<T>(
        cx: &Cx,
        f: &Fields,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Check<Option<T>> {
        let Some(v) = f.get(key) else { return Ok(None) };
        let s = cx.string(v, &format!("`{key}`"))?;
        parse(s)
            .map(Some)
            .map_err(|e| cx.error(v.at, format!("`{key}`: {e}")))
    }
    let mut s = value(cx, f, "like", |w| {
        Shaping::shorthand(w).ok_or_else(|| {
            format!(
                "unknown shorthand `{}`, expected one of {}",
                shown(w),
                backticked(&SHORTHANDS)
            )
        })
    })?
    .unwrap_or_default();
    if let Some(d) = value(cx, f, "delay", parse_duration)? {
        s.delay_us = d;
    }
    if let Some(d) = value(cx, f, "jitter", parse_duration)? {
        s.jitter_us = d;
    }
    if let Some(d) = value(cx, f, "distribution", |w| {
        Distribution::parse(w).ok_or_else(|| {
            format!(
                "unknown distribution `{}`, expected one of {}",
                shown(w),
                backticked(&Distribution::NAMES)
            )
        })
    })? {
        s.distribution = d;
    }
    for (key, slot) in [
        ("loss", &mut s.loss),
        ("duplicate", &mut s.duplicate),
        ("corrupt", &mut s.corrupt),
        ("reorder", &mut s.reorder),
    ] {
        if let Some(p) = value(cx, f, key, parse_percent)? {
            *slot = p;
        }
    }
    if let Some(r) = value(cx, f, "rate", parse_rate)? {
        s.rate_bps = Some(r);
    }
    Ok(Some(s))
}

impl fmt::Display for Shaping {
    /// `delay 100ms ± 20ms normal, loss 1%, rate 1mbit`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.delay_us > 0 || self.jitter_us > 0 {
            let mut d = format!("delay {}", micros(self.delay_us));
            if self.jitter_us > 0 {
                d += &format!(" ± {} {}", micros(self.jitter_us), self.distribution.name());
            }
            parts.push(d);
        }
        for (name, p) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("corrupt", self.corrupt),
            ("reorder", self.reorder),
        ] {
            if p > 0.0 {
                parts.push(format!("{name} {}", percent(p)));
            }
        }
        if let Some(r) = self.rate_bps {
            parts.push(format!("rate {}", rate(r)));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

fn micros(us: u64) -> String {
    if us.is_multiple_of(1000) {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

fn percent(p: f64) -> String {
    let v = format!("{:.4}", p * 100.0);
    format!("{}%", v.trim_end_matches('0').trim_end_matches('.'))
}

fn rate(bps: u64) -> String {
    for (unit, size) in [
        ("gbit", 1_000_000_000),
        ("mbit", 1_000_000),
        ("kbit", 1_000),
    ] {
        if bps.is_multiple_of(size) {
            return format!("{}{unit}", bps / size);
        }
    }
    format!("{bps}bit")
}

/// `100ms`, `1.5s`, `250us` → microseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (number, scale) = [("us", 1.0), ("ms", 1e3), ("s", 1e6)]
        .iter()
        .find_map(|(unit, scale)| t.strip_suffix(unit).map(|n| (n, *scale)))
        .ok_or_else(|| format!("`{text}`: expected a duration such as 100ms, 1.5s or 250us"))?;
    let v: f64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a duration such as 100ms, 1.5s or 250us"))?;
    if !(0.0..=MAX_DELAY_US as f64 / scale).contains(&v) {
        return Err(format!("`{text}`: must be between 0 and 60s"));
    }
    Ok((v * scale).round() as u64)
}

/// `1%`, `0.1%` → a fraction.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .trim()
        .strip_suffix('%')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("`{text}`: expected a percentage such as 1% or 0.1%"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("`{text}`: must be between 0% and 100%"));
    }
    Ok(v / 100.0)
}

/// `1mbit`, `500kbit`, `2gbit`, `800bit`, or bytes per second as tc spells them (`100kbps`) → bits
/// per second.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    const UNITS: [(&str, f64); 7] = [
        ("gbit", 1e9),
        ("mbit", 1e6),
        ("kbit", 1e3),
        ("bit", 1.0),
        ("mbps", 8e6),
        ("kbps", 8e3),
        ("bps", 8.0),
    ];
    let t = text.trim();
    let bad = || format!("`{text}`: expected a rate such as 1mbit, 500kbit or 100kbps");
    let (number, scale) = UNITS
        .iter()
        .find_map(|(unit, scale)| t.strip_suffix(unit).map(|n| (n, *scale)))
        .ok_or_else(bad)?;
    let v: f64 = number.parse().map_err(|_| bad())?;
    let bps = (v * scale).round();
    if !(1.0..=1e12).contains(&bps) {
        return Err(format!("`{text}`: must be between 1bit and 1000gbit"));
    }
    Ok(bps as u64)
}

/// What becomes of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Drop,
    Send {
        /// When to let it go, on the agent's clock.
        at: Duration,
        /// Flip this bit of the packet's payload (taken modulo its length in bits).
        corrupt: Option<u64>,
        /// Send a copy as well.
        duplicate: bool,
    },
}

/// Carries out a [`Shaping`] packet by packet for one link. Delayed packets keep their order; the
/// `reorder` share overtakes them; a rate limit serialises packets behind each other.
#[derive(Debug, Clone)]
pub struct Shaper {
    shaping: Shaping,
    rng: SplitMix64,
    /// The last delayed packet's departure (order is kept among delayed packets).
    last: Duration,
    /// When the rate-limited link is free again.
    free: Duration,
}

impl Shaper {
    pub fn new(shaping: Shaping, seed: u64) -> Shaper {
        Shaper {
            shaping,
            rng: SplitMix64(seed),
            last: Duration::ZERO,
            free: Duration::ZERO,
        }
    }

    pub fn shaping(&self) -> &Shaping {
        &self.shaping
    }

    /// The fate of a packet of `len` bytes that arrives at `now`.
    pub fn fate(&mut self, now: Duration, len: usize) -> Fate {
        let s = self.shaping.clone();
        if s.loss > 0.0 && self.rng.unit() < s.loss {
            return Fate::Drop;
        }
        let duplicate = s.duplicate > 0.0 && self.rng.unit() < s.duplicate;
        let corrupt = (s.corrupt > 0.0 && self.rng.unit() < s.corrupt).then(|| self.rng.next());
        let overtakes = s.reorder > 0.0 && self.rng.unit() < s.reorder;
        let mut at = if overtakes {
            now
        } else {
            let ready = now + self.delay();
            let at = ready.max(self.last);
            self.last = at;
            at
        };
        if let Some(bps) = self.shaping.rate_bps {
            let wire = Duration::from_nanos((len as u64 * 8).saturating_mul(1_000_000_000) / bps);
            at = at.max(self.free) + wire;
            self.free = at;
        }
        Fate::Send {
            at,
            corrupt,
            duplicate,
        }
    }

    /// One delay draw: the delay plus jitter from the distribution, never below zero.
    fn delay(&mut self) -> Duration {
        let s = &self.shaping;
        let (delay, jitter) = (s.delay_us as f64, s.jitter_us as f64);
        let z = if jitter == 0.0 {
            0.0
        } else {
            match s.distribution {
                Distribution::Uniform => 2.0 * self.rng.unit() - 1.0,
                Distribution::Normal => self.standard_normal(),
                Distribution::Pareto => {
                    // Shape 3: mean 1.5, standard deviation √3/2.
                    let x = (1.0 - self.rng.unit()).powf(-1.0 / 3.0);
                    (x - 1.5) / (3f64.sqrt() / 2.0)
                }
            }
        };
        Duration::from_micros((delay + jitter * z).max(0.0).round() as u64)
    }

    /// Box–Muller.
    fn standard_normal(&mut self) -> f64 {
        let u1 = 1.0 - self.rng.unit(); // (0, 1]
        let u2 = self.rng.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn sends(shaper: &mut Shaper, n: usize, gap: Duration, len: usize) -> Vec<Fate> {
        (0..n).map(|i| shaper.fate(gap * i as u32, len)).collect()
    }

    #[test]
    fn values_parse_and_print_as_tc_spells_them() {
        assert_eq!(parse_duration("100ms"), Ok(100_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000));
        assert_eq!(parse_duration("250us"), Ok(250));
        assert!(parse_duration("100")
            .unwrap_err()
            .contains("expected a duration"));
        assert!(parse_duration("61s")
            .unwrap_err()
            .contains("between 0 and 60s"));
        assert_eq!(parse_percent("1%"), Ok(0.01));
        assert_eq!(parse_percent("0.1%"), Ok(0.001));
        assert!(parse_percent("1").is_err());
        assert!(parse_percent("101%").is_err());
        assert_eq!(parse_rate("1mbit"), Ok(1_000_000));
        assert_eq!(parse_rate("500kbit"), Ok(500_000));
        assert_eq!(parse_rate("100kbps"), Ok(800_000));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0kbit").is_err());
        let s = Shaping {
            delay_us: 100_000,
            jitter_us: 20_000,
            distribution: Distribution::Normal,
            loss: 0.01,
            reorder: 0.05,
            rate_bps: Some(1_000_000),
            ..Shaping::default()
        };
        assert_eq!(
            s.to_string(),
            "delay 100ms ± 20ms normal, loss 1%, reorder 5%, rate 1mbit"
        );
        assert_eq!(Shaping::default().to_string(), "none");
    }

    #[test]
    fn shorthands_are_blockades() {
        assert_eq!(
            Shaping::shorthand("slow").unwrap().to_string(),
            "delay 75ms ± 100ms normal"
        );
        assert_eq!(Shaping::shorthand("flaky").unwrap().to_string(), "loss 30%");
        assert_eq!(
            Shaping::shorthand("duplicate").unwrap().to_string(),
            "duplicate 5%"
        );
        assert!(Shaping::shorthand("fast").unwrap().is_none());
        assert_eq!(Shaping::shorthand("quick"), None);
    }

    #[test]
    fn a_plain_delay_delays_every_packet_by_exactly_that() {
        let mut s = Shaper::new(
            Shaping {
                delay_us: 50_000,
                ..Shaping::default()
            },
            1,
        );
        for (i, f) in sends(&mut s, 10, ms(3), 100).into_iter().enumerate() {
            assert_eq!(
                f,
                Fate::Send {
                    at: ms(3 * i as u64 + 50),
                    corrupt: None,
                    duplicate: false
                }
            );
        }
    }

    #[test]
    fn jitter_spreads_the_delay_but_keeps_the_order() {
        for distribution in [
            Distribution::Uniform,
            Distribution::Normal,
            Distribution::Pareto,
        ] {
            let mut s = Shaper::new(
                Shaping {
                    delay_us: 100_000,
                    jitter_us: 20_000,
                    distribution,
                    ..Shaping::default()
                },
                7,
            );
            // Packets 200 ms apart: order-keeping never holds one back, so the delays are the draws.
            let delays: Vec<f64> = sends(&mut s, 20_000, ms(200), 100)
                .iter()
                .enumerate()
                .map(|(i, f)| match f {
                    Fate::Send { at, .. } => (at.as_secs_f64() - 0.2 * i as f64) * 1e3,
                    Fate::Drop => panic!("nothing is lost"),
                })
                .collect();
            let mean = delays.iter().sum::<f64>() / delays.len() as f64;
            let sd = (delays.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / delays.len() as f64)
                .sqrt();
            assert!((mean - 100.0).abs() < 1.0, "{distribution:?} mean {mean}");
            let expected_sd = match distribution {
                Distribution::Uniform => 20.0 / 3f64.sqrt(),
                _ => 20.0,
            };
            // Pareto's heavy tail makes its sample deviation converge slowly.
            let tolerance = if distribution == Distribution::Pareto {
                4.0
            } else {
                1.5
            };
            assert!(
                (sd - expected_sd).abs() < tolerance,
                "{distribution:?} sd {sd}, expected {expected_sd}"
            );
        }
        // Packets closer than the jitter are held back rather than reordered.
        let mut s = Shaper::new(
            Shaping {
                delay_us: 100_000,
                jitter_us: 50_000,
                ..Shaping::default()
            },
            3,
        );
        let times: Vec<Duration> = sends(&mut s, 1000, ms(1), 100)
            .iter()
            .map(|f| match f {
                Fate::Send { at, .. } => *at,
                Fate::Drop => unreachable!(),
            })
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn loss_duplicate_corrupt_and_reorder_hit_their_share() {
        let mut s = Shaper::new(
            Shaping {
                delay_us: 10_000,
                loss: 0.10,
                duplicate: 0.05,
                corrupt: 0.02,
                reorder: 0.25,
                ..Shaping::default()
            },
            11,
        );
        let n = 100_000;
        let fates = sends(&mut s, n, ms(1), 100);
        let share =
            |f: &dyn Fn(&Fate) -> bool| fates.iter().filter(|x| f(x)).count() as f64 / n as f64;
        let lost = share(&|f| *f == Fate::Drop);
        let dup = share(&|f| {
            matches!(
                f,
                Fate::Send {
                    duplicate: true,
                    ..
                }
            )
        });
        let bad = share(&|f| {
            matches!(
                f,
                Fate::Send {
                    corrupt: Some(_),
                    ..
                }
            )
        });
        let at_once = fates
            .iter()
            .enumerate()
            .filter(|(i, f)| matches!(f, Fate::Send { at, .. } if *at == ms(*i as u64)))
            .count() as f64
            / n as f64;
        assert!((lost - 0.10).abs() < 0.005, "loss {lost}");
        // Duplication, corruption and reordering are drawn among the packets not lost.
        assert!((dup - 0.9 * 0.05).abs() < 0.003, "duplicate {dup}");
        assert!((bad - 0.9 * 0.02).abs() < 0.002, "corrupt {bad}");
        assert!((at_once - 0.9 * 0.25).abs() < 0.006, "reorder {at_once}");
    }

    #[test]
    fn a_rate_serialises_packets_behind_each_other() {
        // 1 mbit: a 1250-byte packet takes 10 ms on the wire.
        let mut s = Shaper::new(
            Shaping {
                rate_bps: Some(1_000_000),
                ..Shaping::default()
            },
            5,
        );
        let times: Vec<Duration> = sends(&mut s, 5, Duration::ZERO, 1250)
            .iter()
            .map(|f| match f {
                Fate::Send { at, .. } => *at,
                Fate::Drop => unreachable!(),
            })
            .collect();
        assert_eq!(times, vec![ms(10), ms(20), ms(30), ms(40), ms(50)]);
        // A packet arriving after the link went idle waits only for its own wire time.
        assert_eq!(
            s.fate(ms(100), 1250),
            Fate::Send {
                at: ms(110),
                corrupt: None,
                duplicate: false
            }
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_fates() {
        let shaping = Shaping {
            delay_us: 20_000,
            jitter_us: 10_000,
            loss: 0.2,
            ..Shaping::default()
        };
        let a = sends(&mut Shaper::new(shaping.clone(), 42), 500, ms(1), 100);
        let b = sends(&mut Shaper::new(shaping, 42), 500, ms(1), 100);
        assert_eq!(a, b);
    }

    #[test]
    fn out_of_range_values_are_named() {
        let s = Shaping {
            loss: 1.5,
            ..Shaping::default()
        };
        assert_eq!(s.invalid().unwrap(), "loss must be between 0% and 100%");
        assert_eq!(Shaping::default().invalid(), None);
    }
}
