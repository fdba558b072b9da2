//! Wall-clock helpers shared by the engine, learning and the tools: one place that decides
//! what "now" and "this year" mean.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// This year (UTC, by mean Gregorian year), for the freshness of release years.
pub fn current_year() -> i32 {
    1970 + (now_secs() / 31_556_952) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_year_follows_the_clock() {
        let year = current_year();
        assert!((2024..2200).contains(&year), "{year}");
        assert!(now_secs() > 1_700_000_000);
    }
}
