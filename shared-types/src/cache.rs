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
/// `exclude_genres=Drama,horror` share an entry. Every field is length-prefixed
/// (`name=len:value;`), and so is every excluded genre: free text (`q`, genres) may contain
/// any separator, and no choice of values can spell another request's canonical form.
pub fn context_hash(req: &NormalisedRequest) -> String {
    let genres: String = req
        .exclude_genres
        .iter()
        .map(|g| format!("{}:{g}", g.len()))
        .collect();
    let fields = [
        ("limit", req.limit.to_string()),
        ("q", req.q.clone().unwrap_or_default()),
        ("tod", req.time_of_day.map_or("", |t| t.as_str()).into()),
        ("dev", req.device.map_or("", |d| d.as_str()).into()),
        ("loc", req.locale.clone().unwrap_or_default()),
        ("lang", req.language.clone().unwrap_or_default()),
        ("xg", genres),
        ("mat", req.max_maturity.map_or("", |m| m.as_str()).into()),
        ("genre", req.genre.clone().unwrap_or_default()),
        ("aud", req.audience.clone().unwrap_or_default()),
    ];
    let mut canonical = String::new();
    for (name, value) in fields {
        canonical.push_str(&format!("{name}={}:{value};", value.len()));
    }
    // Appended only when set, so requests without a year range keep their keys.
    if let Some(years) = req.years {
        let value = format!("{}-{}", years.from, years.to);
        canonical.push_str(&format!("years={}:{value};", value.len()));
    }
    stable_hash(&canonical)
}

/// Stable hash of a canonical request description, for routes other than recommendations
/// (e.g. `similar:{item};limit=10`). Same function as [`context_hash`] uses.
pub fn stable_hash(canonical: &str) -> String {
    format!("{:016x}", fnv1a64(canonical.as_bytes()))
}

/// The cache window holding `unix_secs` for an entry that lives `ttl_secs`: `[start, end)`.
///
/// Windows are whole five-minute buckets (the TTL rounded up), so the key's `t` is always a
/// five-minute timestamp and every edge location computes the same key without coordination.
/// Windows longer than one bucket are offset by a stable hash of `spread` (the user, or the
/// context of an anonymous request) by a whole number of buckets: one-hour entries of
/// different users expire at different five-minute marks, not all at the top of the hour,
/// which would send every user's next request to the core at once.
pub fn cache_window(ttl_secs: u32, unix_secs: i64, spread: &str) -> (i64, i64) {
    let width = (i64::from(ttl_secs.max(1)) + CACHE_BUCKET_SECS - 1) / CACHE_BUCKET_SECS
        * CACHE_BUCKET_SECS;
    let buckets = (width / CACHE_BUCKET_SECS) as u64;
    let offset = (fnv1a64(spread.as_bytes()) % buckets) as i64 * CACHE_BUCKET_SECS;
    let start = (unix_secs - offset).div_euclid(width) * width + offset;
    (start, start + width)
}

/// Builds `rec:v{version}:u{user_id}:ctx{context_hash}:t{window_start}`. Anonymous requests
/// use `u~`, which no valid user id can produce.
pub fn cache_key(version: u32, user_id: Option<&str>, ctx_hash: &str, window_start: i64) -> String {
    debug_assert_eq!(window_start.rem_euclid(CACHE_BUCKET_SECS), 0);
    format!(
        "rec:v{version}:u{}:ctx{ctx_hash}:t{window_start}",
        user_id.unwrap_or("~"),
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
    use crate::{ErrorCode, RecommendationQuery, TimeOfDay};

    fn normalised(query: &str) -> NormalisedRequest {
        let q: RecommendationQuery = serde_json::from_str(query).unwrap();
        q.normalise().unwrap()
    }

    #[test]
    fn key_has_the_documented_shape() {
        let req = normalised(r#"{"user_id":"u42","limit":5}"#);
        let (start, _) = cache_window(300, 1_700_000_123, "u42");
        let key = cache_key(3, req.user_id.as_deref(), &context_hash(&req), start);
        let hash = context_hash(&req);
        assert_eq!(key, format!("rec:v3:uu42:ctx{hash}:t1700000100"));
        assert_eq!(hash.len(), 16);
        assert_eq!(
            cache_key(1, None, "abc", cache_window(300, 299, "abc").0),
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
    fn year_ranges_are_validated_and_keyed() {
        let plain = normalised(r#"{"limit":5}"#);
        let nineties = normalised(r#"{"limit":5,"year_from":1990,"year_to":1999}"#);
        assert_eq!(
            nineties.years,
            Some(crate::YearRange {
                from: 1990,
                to: 1999
            })
        );
        assert_ne!(context_hash(&plain), context_hash(&nineties));
        let open = normalised(r#"{"limit":5,"year_from":1990}"#);
        assert_eq!(open.years.unwrap().to, crate::YearRange::LATEST);
        assert_ne!(context_hash(&open), context_hash(&nineties));
        for bad in [
            r#"{"year_from":2000,"year_to":1990}"#,
            r#"{"year_from":1200}"#,
            r#"{"year_to":3000}"#,
        ] {
            let q: RecommendationQuery = serde_json::from_str(bad).unwrap();
            assert_eq!(q.normalise().unwrap_err().code, ErrorCode::InvalidQuery);
        }
    }

    #[test]
    fn free_text_cannot_spell_another_field() {
        // With plain `;` joins both spelled `q=a;tod=;dev=;loc=;lang=;xg=b;tod=;...`.
        let a = normalised(r#"{"q":"a;tod=;dev=;loc=;lang=;xg=b"}"#);
        let b = normalised(r#"{"q":"a","exclude_genres":"b;tod=;dev=;loc=;lang=;xg="}"#);
        assert_ne!(context_hash(&a), context_hash(&b));
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
                fnv1a64(
                    b"limit=2:10;q=0:;tod=0:;dev=0:;loc=0:;lang=0:;xg=0:;mat=0:;genre=0:;aud=0:;"
                )
            )
        );
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn popular_keys_change_every_five_minutes_session_keys_every_hour() {
        let key_at = |ttl, now| cache_key(1, Some("u1"), "h", cache_window(ttl, now, "u1").0);
        // Popular (5 min): same key within a bucket, a new one at the boundary.
        assert_eq!(key_at(300, 1_200), key_at(300, 1_499));
        assert_ne!(key_at(300, 1_499), key_at(300, 1_500));
        assert!(key_at(300, 1_500).ends_with(":t1500"));
        // One hour: twelve buckets share a key, starting at this user's offset; `t` stays a
        // five-minute timestamp.
        let (start, end) = cache_window(3600, 1_700_000_000, "u1");
        assert_eq!(end - start, 3600);
        assert_eq!(key_at(3600, start), key_at(3600, end - 1));
        assert_ne!(key_at(3600, end - 1), key_at(3600, end));
        // A TTL that is not a whole number of buckets is rounded up to one.
        assert_eq!(cache_window(90, 1_000, "u1"), (900, 1_200));
        for ttl in [1, 90, 300, 301, 3600, 86_400] {
            for now in [0_i64, 1, 299, 12_345, 1_700_000_123] {
                for spread in ["", "u1", "u2", "0123abcd"] {
                    let (start, end) = cache_window(ttl, now, spread);
                    assert!(start <= now && now < end, "{ttl} {now} {spread}");
                    assert_eq!(start % CACHE_BUCKET_SECS, 0);
                    assert!(end - start >= i64::from(ttl));
                }
            }
        }
    }

    #[test]
    fn hour_windows_of_different_users_expire_at_different_times() {
        let now = 1_700_000_000;
        let ends: std::collections::BTreeSet<i64> = (0..1_000)
            .map(|u| cache_window(3600, now, &format!("user-{u}")).1)
            .collect();
        // A thousand users spread over the twelve five-minute marks of the hour.
        assert_eq!(ends.len(), 12, "{ends:?}");
        // Five-minute windows need no spreading: they are one bucket.
        assert_eq!(cache_window(300, now, "a"), cache_window(300, now, "b"));
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
