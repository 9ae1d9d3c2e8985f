//! Dates for people: RFC 3339 timestamps from the API, shown in UTC to the minute, with how
//! far away they are.

/// `2026-12-01T00:00:00Z` → `2026-12-01 00:00 UTC`; anything else as it came.
///
/// Not parsed: the API sends UTC with `Z`, and what it does not is shown rather than guessed
/// at. Seconds are left out: renewals and expiries are planned in hours and days.
pub fn time(rfc3339: &str) -> String {
    let bytes = rfc3339.as_bytes();
    if bytes.len() >= 16 && bytes.get(10) == Some(&b'T') && rfc3339.ends_with('Z') {
        format!("{} {} UTC", &rfc3339[..10], &rfc3339[11..16])
    } else {
        rfc3339.to_owned()
    }
}

/// An optional timestamp, with `absent` in its place.
pub fn maybe_time(t: Option<&str>, absent: &str) -> String {
    t.map(time).unwrap_or_else(|| absent.to_owned())
}

/// `delta_ms` (target minus now) as `in 3 d` / `5 h ago`: the largest whole unit, rounded
/// down, for a glance rather than a countdown.
pub fn relative(delta_ms: f64) -> String {
    let past = delta_ms < 0.0;
    let secs = (delta_ms.abs() / 1000.0) as u64;
    let amount = match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    };
    if past {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

/// A timestamp with how far it is from now (`2026-12-01 00:00 UTC (in 3 d)`), by the
/// browser's clock.
#[cfg(target_arch = "wasm32")]
pub fn time_from_now(t: Option<&str>, absent: &str) -> String {
    match t {
        None => absent.to_owned(),
        Some(t) => {
            let at = js_sys::Date::parse(t);
            // Not a date the browser reads: shown without a distance rather than a wrong one.
            if at.is_nan() {
                time(t)
            } else {
                format!("{} ({})", time(t), relative(at - js_sys::Date::now()))
            }
        }
    }
}

/// On the host (tests, clippy) there is no clock to compare with.
#[cfg(not(target_arch = "wasm32"))]
pub fn time_from_now(t: Option<&str>, absent: &str) -> String {
    maybe_time(t, absent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_timestamps_are_shortened() {
        assert_eq!(time("2026-12-01T05:06:07Z"), "2026-12-01 05:06 UTC");
        assert_eq!(time("2026-12-01T05:06:07.123Z"), "2026-12-01 05:06 UTC");
        assert_eq!(time("yesterday"), "yesterday");
        assert_eq!(maybe_time(None, "—"), "—");
    }

    #[test]
    fn distances_read_naturally() {
        assert_eq!(relative(90_000.0), "in 1 min");
        assert_eq!(relative(-7_200_000.0), "2 h ago");
        assert_eq!(relative(3.0 * 86_400_000.0), "in 3 d");
    }
}
