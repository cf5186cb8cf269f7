//! A drifting clock's files, with nothing but the standard library: the drift file regbox writes
//! (`ANCHOR_MS OFFSET GAIN PER`) and the libfaketime clock file made from it for a bitcoind started
//! at a given moment. Shared by `core::faults::clock` and the node image's init (`images/init`), which
//! writes the clock file each time it starts bitcoind, and sets the declared clock again (from its
//! environment) whenever it gives bitcoind a fresh chain or a snapshot.

/// The environment variable that tells a node's init the node's declared clock: `OFFSET`, or
/// `OFFSET GAIN PER` for a drifting one (seconds).
pub const DECLARED_ENV: &str = "REGBOX_CLOCK";

/// A clock file that holds an offset (libfaketime's relative form, `+10800`).
pub fn clock_text(offset: i64) -> String {
    format!("{offset:+}\n")
}

/// A drift file: the clock was `offset` seconds off at `anchor_ms` and gains `gain` seconds every
/// `per`; empty when it does not drift.
pub fn drift_text(anchor_ms: i64, offset: i64, gain: i64, per: i64) -> String {
    if gain == 0 {
        return String::new();
    }
    format!("{anchor_ms} {offset} {gain} {per}\n")
}

/// [`DECLARED_ENV`]'s value for a clock `offset` seconds off that gains `gain` seconds every `per`.
pub fn declared_text(offset: i64, gain: i64, per: i64) -> String {
    if gain == 0 {
        return offset.to_string();
    }
    format!("{offset} {gain} {per}")
}

/// The clock file's and the drift file's texts for the clock declared as `text` (see
/// [`DECLARED_ENV`]), its drift counted from `now_ms`. None for a text regbox did not write.
pub fn declared_files(text: &str, now_ms: i64) -> Option<[String; 2]> {
    let numbers: Vec<i64> = (text.split_whitespace())
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    let (offset, gain, per) = match numbers[..] {
        [offset] => (offset, 0, 1),
        [offset, gain, per] if per > 0 => (offset, gain, per),
        _ => return None,
    };
    Some([clock_text(offset), drift_text(now_ms, offset, gain, per)])
}

/// A drift file's numbers: the host's clock when it was set (Unix milliseconds), the offset then (in
/// seconds), and the seconds gained in every `per` seconds. None for an empty file (no drift) or one
/// regbox did not write.
pub fn read_drift(text: &str) -> Option<[i64; 4]> {
    let mut numbers = text.split_whitespace().map(|w| w.parse::<i64>().ok());
    let mut all = [0; 4];
    for slot in &mut all {
        *slot = numbers.next()??;
    }
    let [_, _, gain, per] = all;
    (numbers.next().is_none() && per > 0 && gain != 0).then_some(all)
}

/// libfaketime's relative form with a rate, `+OFFSET xRATE`, for a process whose libfaketime started
/// at `start_ms`: libfaketime's clock is `start + OFFSET + (now - start) × RATE`, so OFFSET is the
/// drifting clock's offset at `start_ms` and RATE its rate.
pub fn faketime_text([anchor_ms, offset, gain, per]: [i64; 4], start_ms: i64) -> String {
    let per = per as f64;
    let at_start = offset as f64 + (start_ms - anchor_ms) as f64 / 1000.0 * gain as f64 / per;
    format!("{at_start:+.3} x{:.12}\n", 1.0 + gain as f64 / per)
}
