//! The cache contract: key format, the stable context hash and the TTL tiers.
//!
//! Keys are `rec:v{VERSION}:u{user_id}:ctx{context_hash}:t{timestamp_5min}`. The edge builds
//! them; the core may override the tier with the [`CACHE_TIER_HEADER`] response header. Both
//! sides link this module, so the format cannot drift between them.

use crate::NormalisedRequest;

/// Width of the time bucket in keys: entries roll over every five minutes.
pub const CACHE_BUCKET_SECS: i64 = 300;

/// Response header by which the core names (or overrides) the tier of a response.
pub const CACHE_TIER_HEADER: &str = "x-cache-tier";

/// Start (unix seconds) of the five-minute bucket holding `unix_secs`.
pub fn time_bucket(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(CACHE_BUCKET_SECS) * CACHE_BUCKET_SECS
}

/// FNV-1a, 64 bit: tiny, dependency-free and identical on every platform (unlike std `Hash`).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Stable hash of everything in a request that shapes the answer except the user and time.
///
/// Works on the normalised request, so `exclude_genres=Horror,drama` and
/// `exclude_genres=Drama,horror` share an entry.
pub fn context_hash(req: &NormalisedRequest) -> String {
    let canonical = format!(
        "limit={};q={};tod={};dev={};loc={};lang={};xg={};mat={}",
        req.limit,
        req.q.as_deref().unwrap_or(""),
        req.time_of_day.map_or("", |t| t.as_str()),
        req.device.map_or("", |d| d.as_str()),
        req.locale.as_deref().unwrap_or(""),
        req.language.as_deref().unwrap_or(""),
        req.exclude_genres.join(","),
        req.max_maturity.map_or("", |m| m.as_str()),
    );
    format!("{:016x}", fnv1a64(canonical.as_bytes()))
}

/// Builds `rec:v{version}:u{user_id}:ctx{context_hash}:t{bucket}`. Anonymous requests use
/// `u~`, which no valid user id can produce.
pub fn cache_key(version: u32, user_id: Option<&str>, ctx_hash: &str, unix_secs: i64) -> String {
    format!(
        "rec:v{version}:u{}:ctx{ctx_hash}:t{}",
        user_id.unwrap_or("~"),
        time_bucket(unix_secs)
    )
}

/// How long a response may be served from the edge cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TtlTier {
    /// Anonymous, trending, item pages and similar items: 5 minutes.
    Popular,
    /// Personalised recommendations for a signed-in user: 1 hour.
    UserSession,
    /// Anonymous requests shaped by cultural or temporal context: 1 hour.
    Zeitgeist,
}

impl TtlTier {
    pub fn ttl_secs(self) -> u32 {
        match self {
            Self::Popular => 300,
            Self::UserSession | Self::Zeitgeist => 3600,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Popular => "popular",
            Self::UserSession => "user-session",
            Self::Zeitgeist => "zeitgeist",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "popular" => Some(Self::Popular),
            "user-session" => Some(Self::UserSession),
            "zeitgeist" => Some(Self::Zeitgeist),
            _ => None,
        }
    }

    /// The tier a recommendation request falls into by its shape.
    pub fn for_recommendation(req: &NormalisedRequest) -> Self {
        if req.user_id.is_some() {
            Self::UserSession
        } else if req.q.is_some() || req.time_of_day.is_some() || req.locale.is_some() {
            Self::Zeitgeist
        } else {
            Self::Popular
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RecommendationQuery, TimeOfDay};

    fn normalised(query: &str) -> NormalisedRequest {
        let q: RecommendationQuery = serde_json::from_str(query).unwrap();
        q.normalise().unwrap()
    }

    #[test]
    fn key_has_the_documented_shape() {
        let req = normalised(r#"{"user_id":"u42","limit":5}"#);
        let key = cache_key(
            3,
            req.user_id.as_deref(),
            &context_hash(&req),
            1_700_000_123,
        );
        let hash = context_hash(&req);
        assert_eq!(key, format!("rec:v3:uu42:ctx{hash}:t1700000100"));
        assert_eq!(hash.len(), 16);
        assert_eq!(
            cache_key(1, None, "abc", 299),
            "rec:v1:u~:ctxabc:t0",
            "anonymous users get a key no user id can collide with"
        );
    }

    #[test]
    fn context_hash_ignores_spelling_but_not_meaning() {
        let a = normalised(r#"{"q":"  Space Adventure","exclude_genres":"Horror,drama"}"#);
        let b = normalised(r#"{"q":"space   adventure","exclude_genres":"Drama, horror,"}"#);
        let c = normalised(r#"{"q":"space adventure","exclude_genres":"drama"}"#);
        assert_eq!(context_hash(&a), context_hash(&b));
        assert_ne!(context_hash(&a), context_hash(&c));
        let mut d = a.clone();
        d.time_of_day = Some(TimeOfDay::Night);
        assert_ne!(context_hash(&a), context_hash(&d));
    }

    #[test]
    fn context_hash_is_stable_across_builds() {
        // A pinned value: the edge (wasm) and the core (native) must agree forever, and a
        // change here silently invalidates every cached entry.
        let req = normalised(r#"{"limit":10}"#);
        assert_eq!(
            context_hash(&req),
            format!(
                "{:016x}",
                fnv1a64(b"limit=10;q=;tod=;dev=;loc=;lang=;xg=;mat=")
            )
        );
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn time_buckets_are_five_minutes() {
        assert_eq!(time_bucket(0), 0);
        assert_eq!(time_bucket(299), 0);
        assert_eq!(time_bucket(300), 300);
        assert_eq!(time_bucket(-1), -300);
    }

    #[test]
    fn tiers_follow_request_shape() {
        assert_eq!(
            TtlTier::for_recommendation(&normalised("{}")),
            TtlTier::Popular
        );
        assert_eq!(
            TtlTier::for_recommendation(&normalised(r#"{"user_id":"7"}"#)),
            TtlTier::UserSession
        );
        assert_eq!(
            TtlTier::for_recommendation(&normalised(r#"{"time_of_day":"evening"}"#)),
            TtlTier::Zeitgeist
        );
        assert_eq!(TtlTier::Popular.ttl_secs(), 300);
        assert_eq!(TtlTier::UserSession.ttl_secs(), 3600);
        assert_eq!(TtlTier::Zeitgeist.ttl_secs(), 3600);
        for tier in [TtlTier::Popular, TtlTier::UserSession, TtlTier::Zeitgeist] {
            assert_eq!(TtlTier::parse(tier.as_str()), Some(tier));
        }
    }
}
