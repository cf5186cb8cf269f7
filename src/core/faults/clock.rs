//! Clock faults as data: a node's clock offset from the host's and its drift, how they are typed
//! (`+3h`, `-90m`, `-1h30m`; `+1s/min`, `-2m/h`), shown, and written for libfaketime (the file the
//! node's bitcoind reads its clock from) and for the node's init (the drift it keeps that file to).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::faketime;

/// The largest offset a clock may be set to, either way: a year.
pub const MAX_OFFSET_S: i64 = 366 * 24 * 3600;

/// bitcoind's inactivity timeout (`TIMEOUT_INTERVAL`, 20 minutes): a clock that jumps ahead by this
/// much or more finds every session silent for that long and drops it.
pub const DROPS_SESSIONS_S: i64 = 20 * 60;

const UNITS: [(char, i64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// `+3h`, `-90m`, `-1h30m`, `45s`, `2d`, `0` → seconds (a sign is optional on positive offsets).
pub fn parse_offset(text: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "`{text}`: expected a clock offset such as +3h, -90m, -1h30m or 0 (units d, h, m, s; at most {} days either way)",
            MAX_OFFSET_S / 86_400
        )
    };
    let t = text.trim();
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'-') => (-1, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    if rest == "0" {
        return Ok(0);
    }
    let mut total: i64 = 0;
    let mut number = String::new();
    let mut last_unit = usize::MAX;
    for c in rest.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        // Units in order, each once: `1h30m`, not `30m1h`.
        let at = UNITS.iter().position(|(u, _)| *u == c).ok_or_else(bad)?;
        if number.is_empty() || number.len() > 9 || (last_unit != usize::MAX && at <= last_unit) {
            return Err(bad());
        }
        let n: i64 = number.parse().map_err(|_| bad())?;
        total = total.checked_add(n * UNITS[at].1).ok_or_else(bad)?;
        number.clear();
        last_unit = at;
    }
    if !number.is_empty() || last_unit == usize::MAX || total > MAX_OFFSET_S {
        return Err(bad());
    }
    Ok(sign * total)
}

/// An offset as it is typed back: `+3h`, `-1h30m`, `+45s`, `0`.
pub fn describe(offset: i64) -> String {
    if offset == 0 {
        return "0".into();
    }
    let mut rest = offset.unsigned_abs();
    let mut text = String::from(if offset < 0 { "-" } else { "+" });
    for (unit, size) in UNITS {
        let size = size as u64;
        if rest >= size {
            text.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    text
}

/// What the node's clock file holds for `offset`: libfaketime's relative form in seconds (`+10800`,
/// `-5400`); `+0` is the host's clock.
pub fn file_text(offset: i64) -> String {
    faketime::clock_text(offset)
}

/// The offset a clock file holds (`None` for the host's clock, or a file regbox did not write, or one
/// the init wrote for a drifting clock: see [`is_drifting`]).
pub fn read_file_text(text: &str) -> Option<i64> {
    text.trim().parse::<i64>().ok().filter(|&o| o != 0)
}

/// Whether a clock file is one the init wrote for a drifting clock (`+OFFSET xRATE`): its offset is
/// then in the drift file.
pub fn is_drifting(text: &str) -> bool {
    text.contains(" x")
}

/// A clock's rate away from the host's: it gains `gain` seconds (loses, when negative) in every `per`
/// seconds of the host's clock. Typed `+1s/min`, `-30s/h`, `+2m/d`; `0` runs at the host's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drift {
    pub gain: i64,
    /// Seconds of the host's clock: 1, 60, 3600 or 86400.
    pub per: i64,
}

/// The units a drift is per: `s`, `min` (or `m`), `h`, `d`.
const PER: [(&str, i64); 5] = [
    ("s", 1),
    ("min", 60),
    ("m", 60),
    ("h", 3_600),
    ("d", 86_400),
];

/// The fastest a drifting clock may run, as a multiple of the host's rate (`+9s/s`); the slowest is
/// a tenth of it (`-9s/10s`, typed `-54s/min`).
pub const MAX_RATE: f64 = 10.0;
pub const MIN_RATE: f64 = 0.1;

impl Default for Drift {
    fn default() -> Drift {
        Drift::NONE
    }
}

impl Drift {
    /// No drift: the host's rate.
    pub const NONE: Drift = Drift { gain: 0, per: 1 };

    pub fn is_none(&self) -> bool {
        self.gain == 0
    }

    /// How fast the clock runs against the host's (1.0: as fast).
    pub fn rate(&self) -> f64 {
        1.0 + self.gain as f64 / self.per as f64
    }

    /// Seconds gained (lost, when negative) over `millis` milliseconds of the host's clock.
    pub fn gained_ms(&self, millis: i64) -> f64 {
        millis as f64 * self.gain as f64 / self.per as f64 / 1000.0
    }
}

/// `+1s/min`, `-30s/h`, `+1m30s/d`, `0` → a drift (a sign is optional on a gain).
pub fn parse_drift(text: &str) -> Result<Drift, String> {
    let bad = |why: &str| {
        format!(
            "`{text}`: expected a clock drift such as +1s/min, -30s/h or 0 (a gain in units d, h, m, s, \
             per s, min, h or d){why}"
        )
    };
    let t = text.trim();
    if matches!(t, "0" | "+0" | "-0") {
        return Ok(Drift::NONE);
    }
    let (gain, per) = t.split_once('/').ok_or_else(|| bad(""))?;
    let gain = parse_offset(gain).map_err(|_| bad(""))?;
    let per = (PER.iter().find(|(u, _)| *u == per.trim()))
        .map(|(_, s)| *s)
        .ok_or_else(|| bad(""))?;
    let drift = Drift { gain, per };
    let rate = drift.rate();
    // In whole numbers: 0.1 ≤ 1 + gain/per ≤ 10.
    if 10 * gain < -9 * per || gain > 9 * per {
        return Err(bad(&format!(
            "; it would run the clock at {rate:.3} times the host's rate, and a clock runs at {MIN_RATE} to {MAX_RATE} times"
        )));
    }
    Ok(drift)
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            return f.write_str("0");
        }
        let per = PER
            .iter()
            .find(|(_, s)| *s == self.per)
            .map_or("s", |(u, _)| u);
        write!(f, "{}/{per}", describe(self.gain))
    }
}

impl std::str::FromStr for Drift {
    type Err = String;
    fn from_str(s: &str) -> Result<Drift, String> {
        parse_drift(s)
    }
}

/// As typed: `"+1s/min"`.
impl Serialize for Drift {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Drift {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Drift, D::Error> {
        let text = String::deserialize(d)?;
        parse_drift(&text).map_err(serde::de::Error::custom)
    }
}

/// A clock as set at one moment: `offset` seconds from the host's at `anchor_ms` (the host's clock, in
/// Unix milliseconds), gaining `drift` from then on. What the drift file holds, one line:
/// `ANCHOR_MS OFFSET GAIN PER` ([`faketime`]) — the node's init, each time it starts bitcoind (whose
/// libfaketime measures its rate from the process's start), works out the offset for that start and
/// writes it with the rate into the clock file, so a clock drifts on across restarts without a jump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchored {
    pub anchor_ms: i64,
    pub offset: i64,
    pub drift: Drift,
}

impl Anchored {
    /// The host's clock (no offset, no drift), as at `now_ms`.
    pub fn host(now_ms: i64) -> Anchored {
        Anchored {
            anchor_ms: now_ms,
            offset: 0,
            drift: Drift::NONE,
        }
    }

    /// The offset at `now_ms`, in whole seconds.
    pub fn offset_at(&self, now_ms: i64) -> i64 {
        self.offset + self.drift.gained_ms(now_ms - self.anchor_ms).round() as i64
    }

    /// The drift file's text (empty for no drift: the clock file alone is the clock).
    pub fn drift_file_text(&self) -> String {
        let Drift { gain, per } = self.drift;
        faketime::drift_text(self.anchor_ms, self.offset, gain, per)
    }

    /// The declared clock as the node's init reads it from its environment
    /// ([`faketime::DECLARED_ENV`]), to set it again with every fresh chain or snapshot.
    pub fn declared_env(offset: i64, drift: Drift) -> String {
        let Drift { gain, per } = drift;
        let text = faketime::declared_text(offset, gain, per);
        format!("{}={text}", faketime::DECLARED_ENV)
    }

    /// What a drift file holds (None: none, or not one regbox wrote).
    pub fn read_drift_file(text: &str) -> Option<Anchored> {
        let [anchor_ms, offset, gain, per] = faketime::read_drift(text)?;
        Some(Anchored {
            anchor_ms,
            offset,
            drift: Drift { gain, per },
        })
    }

    /// The clock file for a bitcoind whose libfaketime started at `start_ms` (what the node's init
    /// writes, through [`faketime::faketime_text`]).
    pub fn faketime_text(&self, start_ms: i64) -> String {
        let Drift { gain, per } = self.drift;
        faketime::faketime_text([self.anchor_ms, self.offset, gain, per], start_ms)
    }
}

/// When a clock file written by `written` (the host's clock, as a duration since the Unix epoch) is
/// in force for every reading of the node's clock: at the next whole second. libfaketime keeps what it
/// read until the host's clock enters a new second (`FAKETIME_CACHE_DURATION=0`: it compares whole
/// seconds, `now.tv_sec - last_read > 0`), and reads the file again at the first reading after that.
pub fn in_force_at(written: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(written.as_secs() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_clock_in_the_environment_gives_the_files_regbox_writes_for_it() {
        let drift = parse_drift("+1s/min").unwrap();
        for (offset, drift) in [(0, Drift::NONE), (-5400, Drift::NONE), (600, drift)] {
            let env = Anchored::declared_env(offset, drift);
            let text = env.strip_prefix("REGBOX_CLOCK=").unwrap();
            let anchored = Anchored {
                anchor_ms: 1_700_000_000_123,
                offset,
                drift,
            };
            assert_eq!(
                faketime::declared_files(text, anchored.anchor_ms),
                Some([file_text(offset), anchored.drift_file_text()]),
                "{env}"
            );
        }
        for bad in ["", "x", "1 2", "1 2 0", "1 2 3 4"] {
            assert_eq!(faketime::declared_files(bad, 0), None, "{bad:?}");
        }
    }

    #[test]
    fn a_written_clock_is_in_force_from_the_next_whole_second() {
        use std::time::Duration;
        let at = |ms: u64| in_force_at(Duration::from_millis(ms)).as_millis();
        assert_eq!(at(1_000), 2_000);
        assert_eq!(at(1_999), 2_000);
        assert_eq!(at(2_000), 3_000);
    }

    #[test]
    fn drifts_parse_show_and_keep_to_their_bounds() {
        assert_eq!(parse_drift("+1s/min"), Ok(Drift { gain: 1, per: 60 }));
        assert_eq!(
            parse_drift("-30s/h"),
            Ok(Drift {
                gain: -30,
                per: 3_600
            })
        );
        assert_eq!(
            parse_drift("2m/d"),
            Ok(Drift {
                gain: 120,
                per: 86_400
            })
        );
        assert_eq!(parse_drift("+9s/s").unwrap().rate(), 10.0);
        assert_eq!(parse_drift("0"), Ok(Drift::NONE));
        for text in ["+1s/min", "-30s/h", "+2m/d", "+1m30s/h", "0"] {
            assert_eq!(parse_drift(text).unwrap().to_string(), text);
        }
        assert_eq!(parse_drift("1s/m").unwrap().to_string(), "+1s/min");
        assert_eq!(parse_drift("-54s/min").unwrap().to_string(), "-54s/min");
        for bad in [
            "", "1s", "/min", "1s/", "1s/week", "1.5s/min", "+10s/s", "-1m/min", "-55s/min", "x/h",
        ] {
            assert!(parse_drift(bad).is_err(), "{bad}");
        }
        assert!(parse_drift("+10s/s").unwrap_err().contains("11.000 times"));
        let json = serde_json::to_string(&Drift { gain: 1, per: 60 }).unwrap();
        assert_eq!(json, "\"+1s/min\"");
        assert_eq!(
            serde_json::from_str::<Drift>(&json).unwrap(),
            Drift { gain: 1, per: 60 }
        );
        assert!(serde_json::from_str::<Drift>("\"fast\"").is_err());
    }

    #[test]
    fn a_drifting_clock_is_the_same_clock_whenever_bitcoind_started() {
        // +1h at t = 1,000,000 s, gaining 1 s a minute.
        let clock = Anchored {
            anchor_ms: 1_000_000_000,
            offset: 3_600,
            drift: Drift { gain: 1, per: 60 },
        };
        assert_eq!(clock.offset_at(1_000_000_000), 3_600);
        assert_eq!(clock.offset_at(1_000_000_000 + 600_000), 3_610);
        assert_eq!(clock.offset_at(1_000_000_000 - 60_000), 3_599);
        // libfaketime's clock from the file written for a start at s: s + OFFSET + (now - s) × RATE.
        let faked = |start_ms: i64, now_ms: i64| {
            let text = clock.faketime_text(start_ms);
            let (offset, rate) = text.trim().split_once(" x").unwrap();
            let (offset, rate): (f64, f64) = (offset.parse().unwrap(), rate.parse().unwrap());
            start_ms as f64 / 1e3 + offset + (now_ms - start_ms) as f64 / 1e3 * rate
        };
        for start in [0, 999_000_000, 1_000_000_000, 1_000_120_000] {
            let now = 1_000_600_000;
            let want = now as f64 / 1e3 + clock.offset_at(now) as f64;
            assert!((faked(start, now) - want).abs() < 0.01, "start {start}");
        }
        assert!(is_drifting(&clock.faketime_text(0)));
        assert!(!is_drifting(&file_text(3_600)));
        let text = clock.drift_file_text();
        assert_eq!(text, "1000000000 3600 1 60\n");
        assert_eq!(Anchored::read_drift_file(&text), Some(clock));
        let still = Anchored {
            drift: Drift::NONE,
            ..clock
        };
        assert_eq!(still.drift_file_text(), "");
        assert_eq!(Anchored::read_drift_file(""), None);
        assert_eq!(Anchored::read_drift_file("1 2 3"), None);
    }

    #[test]
    fn offsets_parse_with_units_in_order() {
        assert_eq!(parse_offset("+3h"), Ok(10_800));
        assert_eq!(parse_offset("-90m"), Ok(-5_400));
        assert_eq!(parse_offset("-1h30m"), Ok(-5_400));
        assert_eq!(parse_offset("45s"), Ok(45));
        assert_eq!(parse_offset("2d"), Ok(172_800));
        assert_eq!(parse_offset("0"), Ok(0));
        assert_eq!(parse_offset("-0"), Ok(0));
        for bad in [
            "",
            "+",
            "3",
            "3x",
            "h",
            "30m1h",
            "1h1h",
            "1.5h",
            "367d",
            "+-3h",
            "9999999999s",
        ] {
            assert!(parse_offset(bad).is_err(), "{bad}");
        }
        assert!(parse_offset("3").unwrap_err().contains("+3h"));
    }

    #[test]
    fn offsets_read_back_as_typed_and_through_the_file() {
        for o in [10_800, -5_400, 45, -1, 172_800 + 61] {
            assert_eq!(parse_offset(&describe(o)), Ok(o));
            assert_eq!(read_file_text(&file_text(o)), Some(o));
        }
        assert_eq!(describe(-5_400), "-1h30m");
        assert_eq!(file_text(10_800), "+10800\n");
        assert_eq!(read_file_text(&file_text(0)), None);
        assert_eq!(read_file_text("garbage"), None);
    }
}
