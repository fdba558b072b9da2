//! Rate limits at the edge, per identity: the token's user, else the client's address. In
//! production the Workers rate-limiting binding (`[[ratelimits]]` `RATE_LIMITER` in
//! `wrangler.toml`) counts across requests at each Cloudflare location; where the runtime has
//! no such binding (a local workerd), [`FixedWindow`] counts in the isolate instead. Pure: the
//! Workers glue asks it and answers 429 `rate_limited` with `Retry-After`.

use std::collections::HashMap;

/// The rate-limit key of a request: `user:{id}` with a verified token, else `ip:{address}`.
pub fn identity(user: Option<&str>, client_address: Option<&str>) -> String {
    match user {
        Some(u) => format!("user:{u}"),
        None => format!("ip:{}", client_address.unwrap_or("unknown")),
    }
}

/// Keys counted at most; past this, finished windows are dropped, and if the table is still
/// full it starts over (an isolate's memory stays bounded under a flood of addresses).
const MAX_KEYS: usize = 50_000;

/// `limit` requests per key per `period_secs`-long window, aligned to the epoch (as the
/// binding's windows are).
pub struct FixedWindow {
    limit: u32,
    period_secs: i64,
    counts: HashMap<String, (i64, u32)>,
}

impl FixedWindow {
    pub fn new(limit: u32, period_secs: u32) -> Self {
        Self {
            limit,
            period_secs: i64::from(period_secs.max(1)),
            counts: HashMap::new(),
        }
    }

    /// Counts one request of `key` at `now_secs`; `Err(retry_after_secs)` when over the limit.
    pub fn allow(&mut self, key: &str, now_secs: i64) -> Result<(), u32> {
        let window = now_secs.div_euclid(self.period_secs);
        if self.counts.len() >= MAX_KEYS && !self.counts.contains_key(key) {
            self.counts.retain(|_, (w, _)| *w == window);
            if self.counts.len() >= MAX_KEYS {
                self.counts.clear();
            }
        }
        let entry = self.counts.entry(key.to_string()).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        if entry.1 >= self.limit {
            let next = (window + 1) * self.period_secs;
            return Err((next - now_secs).max(1) as u32);
        }
        entry.1 += 1;
        Ok(())
    }

    pub fn period_secs(&self) -> u32 {
        self.period_secs as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_identity_has_its_own_budget_per_window() {
        let mut limiter = FixedWindow::new(3, 60);
        for _ in 0..3 {
            assert_eq!(limiter.allow("user:a", 120), Ok(()));
        }
        assert_eq!(
            limiter.allow("user:a", 150),
            Err(30),
            "retry at the next window"
        );
        assert_eq!(
            limiter.allow("user:b", 150),
            Ok(()),
            "another identity is not affected"
        );
        assert_eq!(
            limiter.allow("user:a", 180),
            Ok(()),
            "a new window, a new budget"
        );
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_keys() {
        let mut limiter = FixedWindow::new(1, 60);
        for i in 0..(MAX_KEYS + 10) {
            let _ = limiter.allow(&format!("ip:{i}"), 0);
        }
        assert!(limiter.counts.len() <= MAX_KEYS);
        // Old windows go first.
        let _ = limiter.allow("ip:new", 60);
        assert!(limiter.counts.len() <= MAX_KEYS);
    }

    #[test]
    fn identity_prefers_the_verified_user() {
        assert_eq!(identity(Some("u1"), Some("203.0.113.7")), "user:u1");
        assert_eq!(identity(None, Some("203.0.113.7")), "ip:203.0.113.7");
        assert_eq!(identity(None, None), "ip:unknown");
    }
}
