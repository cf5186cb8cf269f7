//! Clock faults as data: a node's clock offset from the host's, how it is typed (`+3h`, `-90m`,
//! `-1h30m`), shown, and written for libfaketime (the file the node's bitcoind reads its clock from).

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
    format!("{offset:+}\n")
}

/// The offset a clock file holds (`None` for the host's clock, or a file regbox did not write).
pub fn read_file_text(text: &str) -> Option<i64> {
    text.trim().parse::<i64>().ok().filter(|&o| o != 0)
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
    fn a_written_clock_is_in_force_from_the_next_whole_second() {
        use std::time::Duration;
        let at = |ms: u64| in_force_at(Duration::from_millis(ms)).as_millis();
        assert_eq!(at(1_000), 2_000);
        assert_eq!(at(1_999), 2_000);
        assert_eq!(at(2_000), 3_000);
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
