//! A drifting clock's files, with nothing but the standard library: the drift file regbox writes
//! (`ANCHOR_MS OFFSET GAIN PER`) and the libfaketime clock file made from it for a bitcoind started
//! at a given moment. Shared by `core::faults::clock` and the node image's init (`images/init`), which
//! writes the clock file each time it starts bitcoind.

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
