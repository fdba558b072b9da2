//! Cache entries: the metadata stored with each answer and the rules deciding whether it is
//! served as a HIT, kept only as a STALE fallback, or ignored.

use shared_types::TtlTier;

use crate::plan::CachedRoute;
use crate::EdgeConfig;

/// Unix milliseconds at which the entry was stored.
pub const STORED_AT_HEADER: &str = "x-edge-stored-at";
/// Unix seconds until which the entry may be served as a HIT.
pub const FRESH_UNTIL_HEADER: &str = "x-edge-fresh-until";
/// HIT, MISS, STALE or BYPASS.
pub const EDGE_CACHE_HEADER: &str = "x-edge-cache";
/// The request's cache key, for debugging and log correlation.
pub const CACHE_KEY_HEADER: &str = "x-cache-key";

/// How a response was produced, reported in [`EDGE_CACHE_HEADER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    Stale,
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Stale => "STALE",
            Self::Bypass => "BYPASS",
        }
    }
}

/// Metadata read back from a stored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredEntry {
    pub stored_at_ms: u64,
    pub fresh_until_secs: i64,
}

impl StoredEntry {
    /// Parses the two metadata headers; an entry without them is treated as absent.
    pub fn parse(stored_at: Option<&str>, fresh_until: Option<&str>) -> Option<Self> {
        Some(Self {
            stored_at_ms: stored_at?.parse().ok()?,
            fresh_until_secs: fresh_until?.parse().ok()?,
        })
    }

    /// A HIT needs the entry within its TTL and newer than the user's latest events.
    pub fn is_fresh(&self, now_ms: u64, user_events_at_ms: Option<u64>) -> bool {
        let within_ttl = (now_ms / 1000) < u64::try_from(self.fresh_until_secs).unwrap_or(0);
        let after_events = user_events_at_ms.is_none_or(|at| self.stored_at_ms > at);
        within_ttl && after_events
    }
}

/// How an answer from the core is stored: its tier (the core's header wins over the
/// request's shape), until when it is a HIT, and the two entries' cache lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoragePlan {
    pub tier: TtlTier,
    pub fresh_until_secs: i64,
    /// `s-maxage` of the entry under the windowed key.
    pub fresh_max_age: u32,
    /// `s-maxage` of the stale copy: freshness plus the stale window.
    pub stale_max_age: u32,
}

pub fn storage_plan(
    config: &EdgeConfig,
    route: &CachedRoute,
    core_tier: Option<TtlTier>,
    now_secs: i64,
) -> StoragePlan {
    let tier = core_tier.unwrap_or(route.tier);
    // The key stops being looked up at the window's end, whatever the tier says.
    let fresh_until_secs = route
        .window_end
        .min(now_secs + i64::from(config.ttl_secs(tier)));
    let fresh_max_age = u32::try_from((fresh_until_secs - now_secs).max(0)).unwrap_or(0);
    StoragePlan {
        tier,
        fresh_until_secs,
        fresh_max_age,
        stale_max_age: fresh_max_age.saturating_add(config.stale_window_secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{plan, Caller, Incoming, Plan};

    fn config() -> EdgeConfig {
        EdgeConfig::from_vars(|name| (name == "CORE_ORIGIN").then(|| "http://core".into())).unwrap()
    }

    fn route(query: &str, now: i64) -> CachedRoute {
        let req = Incoming {
            method: "GET",
            path: "/v1/recommendations",
            query: Some(query),
            caller: Caller {
                user: Some("u1"),
                api_key: false,
            },
            ..Incoming::default()
        };
        match plan(&config(), &req, now).unwrap() {
            Plan::Cached(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn freshness_ends_with_the_window_or_the_tier() {
        // A user-session answer stored 10 minutes into its hour lives to the window's end.
        let (start, end) = shared_types::cache_window(3600, 3_600 + 600, "u1");
        let now = start + 600;
        let r = route("user_id=u1", now);
        let p = storage_plan(&config(), &r, None, now);
        assert_eq!(p.tier, TtlTier::UserSession);
        assert_eq!(p.fresh_until_secs, end);
        assert_eq!(p.fresh_max_age, 3_000);
        assert_eq!(p.stale_max_age, 3_000 + 86_400);
        // The core shortens it to the popular tier: five minutes from now.
        let p = storage_plan(&config(), &r, Some(TtlTier::Popular), now);
        assert_eq!(p.tier, TtlTier::Popular);
        assert_eq!(p.fresh_until_secs, now + 300);
    }

    #[test]
    fn events_after_storing_invalidate_hits() {
        let e = StoredEntry::parse(Some("5000000"), Some("6000")).unwrap();
        assert!(e.is_fresh(5_500_000, None));
        assert!(e.is_fresh(5_500_000, Some(4_999_999)));
        assert!(
            !e.is_fresh(5_500_000, Some(5_000_000)),
            "event at store time"
        );
        assert!(!e.is_fresh(5_500_000, Some(5_200_000)));
        assert!(!e.is_fresh(6_000_000, None), "past its TTL");
        assert_eq!(StoredEntry::parse(None, Some("1")), None);
        assert_eq!(StoredEntry::parse(Some("x"), Some("1")), None);
    }
}
