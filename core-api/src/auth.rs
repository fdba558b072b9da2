//! Who is calling, and what they may do.
//!
//! Every request gets one [`Principal`]: an operator (an API key with scopes), an end user
//! (authenticated by the edge, which signs the user id into the request), anonymous, or —
//! only in a development setup that serves loopback with no secrets at all — trusted.
//! Handlers ask the principal before acting; nothing a caller puts in a query or a body can
//! widen what their identity allows.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Instant;

use sha2::{Digest, Sha256};

pub use crate::config::{is_loopback_bind, validate_keys, OperatorKey, Scope};

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Development only: loopback bind, no edge secret, no operator keys (or the explicit
    /// insecure switch). Everything is allowed, as before authentication existed.
    Trusted,
    Operator {
        id: String,
        scopes: Vec<Scope>,
    },
    /// An end user the edge authenticated.
    User(String),
    Anonymous,
}

/// Why a principal may not do something; mapped to 401 (who are you?) or 403 (not you).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    Unauthenticated(String),
    Forbidden(String),
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unauthenticated(m) | Self::Forbidden(m) => f.write_str(m),
        }
    }
}

impl Principal {
    fn has(&self, scope: Scope) -> bool {
        match self {
            Self::Trusted => true,
            Self::Operator { scopes, .. } => scopes.contains(&scope),
            _ => false,
        }
    }

    /// Operator scopes: end-user tokens never carry them.
    pub fn require(&self, scope: Scope) -> Result<(), Denied> {
        if self.has(scope) {
            return Ok(());
        }
        Err(match self {
            Self::Anonymous => Denied::Unauthenticated(format!(
                "an operator API key with scope {} is required",
                scope.as_str()
            )),
            _ => Denied::Forbidden(format!("scope {} is required", scope.as_str())),
        })
    }

    /// Reading what the service knows about `user_id` (personalised answers, exports).
    pub fn may_read_user(&self, user_id: &str) -> Result<(), Denied> {
        match self {
            Self::User(me) if me == user_id => Ok(()),
            _ if self.has(Scope::AdminRead) => Ok(()),
            Self::Anonymous => Err(Denied::Unauthenticated(
                "personalised answers need an authenticated user".into(),
            )),
            _ => Err(Denied::Forbidden(
                "you may only read your own recommendations and data".into(),
            )),
        }
    }

    /// Erasing a user's data: the user themself or an operator with `admin:write`.
    pub fn may_erase_user(&self, user_id: &str) -> Result<(), Denied> {
        match self {
            Self::User(me) if me == user_id => Ok(()),
            _ if self.has(Scope::AdminWrite) => Ok(()),
            Self::Anonymous => Err(Denied::Unauthenticated(
                "erasing data needs an authenticated user".into(),
            )),
            _ => Err(Denied::Forbidden("you may only erase your own data".into())),
        }
    }

    /// Recording events: an end user only for themself; `events:write` for anyone.
    pub fn may_write_events<'a>(
        &self,
        mut users: impl Iterator<Item = &'a str>,
    ) -> Result<(), Denied> {
        if self.has(Scope::EventsWrite) {
            return Ok(());
        }
        match self {
            Self::User(me) => match users.find(|u| *u != me) {
                None => Ok(()),
                Some(other) => Err(Denied::Forbidden(format!(
                    "events for user '{other}' cannot be recorded with your identity"
                ))),
            },
            Self::Anonymous => Err(Denied::Unauthenticated(
                "recording events needs an authenticated user or an operator key".into(),
            )),
            _ => Err(Denied::Forbidden("scope events:write is required".into())),
        }
    }

    /// The identity requests are counted against for rate limits; anonymous callers are
    /// counted by address where the transport knows it (the edge limits them per client IP).
    pub fn rate_key(&self) -> Option<String> {
        match self {
            Self::Trusted | Self::Anonymous => None,
            Self::Operator { id, .. } => Some(format!("key:{id}")),
            Self::User(u) => Some(format!("user:{u}")),
        }
    }
}

/// Lowercase hex SHA-256 of an operator key, as stored in the configuration.
pub fn key_digest(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random operator key (`rk_` + 43 base64url characters, 256 bits).
pub fn generate_key() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::from("rk_");
    let mut acc = 0u32;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

/// The configured operator keys, looked up by digest.
#[derive(Debug, Default)]
pub struct OperatorKeys {
    keys: Vec<OperatorKey>,
}

impl OperatorKeys {
    pub fn new(keys: &[OperatorKey]) -> Self {
        Self {
            keys: keys.to_vec(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The operator a presented key belongs to; compares digests in constant time.
    pub fn authenticate(&self, presented: &str) -> Option<Principal> {
        let digest = key_digest(presented);
        let mut found = None;
        for k in &self.keys {
            let same = k.sha256.len() == digest.len()
                && k.sha256
                    .bytes()
                    .zip(digest.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0;
            if same && found.is_none() {
                found = Some(Principal::Operator {
                    id: k.id.clone(),
                    scopes: k.scopes.clone(),
                });
            }
        }
        found
    }
}

/// Decides the [`Principal`] of each request and holds the rate limits; built once from the
/// configuration.
pub struct Authenticator {
    trusted: bool,
    edge: Option<crate::edge_auth::EdgeVerifier>,
    /// Edge nonces shared by every core process (Redis, when configured); each process also
    /// remembers its own.
    shared_nonces: Option<crate::store::RedisNonces>,
    /// How long a nonce is claimed: the signature's validity window on both sides of now.
    nonce_ttl_secs: u64,
    keys: OperatorKeys,
    /// Requests per identity.
    pub requests: RateLimiter,
    /// Events per user (a token per event).
    pub events: RateLimiter,
}

/// The request fields identification reads.
pub struct Credentials<'a> {
    pub api_key: Option<&'a str>,
    /// Present when the request carries edge signature headers; the body digest is only
    /// computed then.
    pub signed: Option<crate::edge_auth::SignedRequest<'a>>,
}

impl Authenticator {
    pub fn new(config: &crate::Config) -> Self {
        let edge = crate::edge_auth::EdgeVerifier::new(
            &config.edge.shared_secret,
            config.edge.max_clock_skew_secs,
        );
        let keys = OperatorKeys::new(&config.auth.operator_keys);
        let per_minute = f64::from(config.auth.events_per_minute);
        let shared_nonces = match (&edge, config.redis.url.is_empty()) {
            (Some(_), false) => crate::store::RedisNonces::new(
                &config.redis.url,
                config.redis.pool_size,
                std::time::Duration::from_millis(config.redis.timeout_ms),
            )
            .inspect_err(|e| tracing::error!(error = %e, "edge nonces not shared through Redis"))
            .ok(),
            _ => None,
        };
        Self {
            // Config validation guarantees this is loopback or the explicit switch.
            trusted: edge.is_none() && keys.is_empty(),
            edge,
            shared_nonces,
            nonce_ttl_secs: 2 * config.edge.max_clock_skew_secs + 1,
            keys,
            requests: RateLimiter::new(config.auth.requests_per_sec, config.auth.burst),
            events: RateLimiter::new(per_minute / 60.0, per_minute),
        }
    }

    /// Development mode: no secret and no key configured, every caller trusted.
    pub fn is_trusted(&self) -> bool {
        self.trusted
    }

    /// Whether a probe caller may see backends' error messages: development mode, or an
    /// operator key with `admin:read`.
    pub fn may_see_details(&self, api_key: Option<&str>) -> bool {
        self.trusted
            || api_key
                .and_then(|k| self.keys.authenticate(k))
                .is_some_and(|p| p.require(Scope::AdminRead).is_ok())
    }

    /// Whether the edge's signature must be checked (the caller then supplies the digest).
    pub fn verifies_edge(&self) -> bool {
        self.edge.is_some()
    }

    /// Who is calling. An operator key that does not match, a bad signature, or (with an
    /// edge secret) an unsigned request without an operator key are refused.
    pub fn identify(&self, c: &Credentials<'_>, now_secs: i64) -> Result<Principal, Denied> {
        if self.trusted {
            return Ok(Principal::Trusted);
        }
        let operator = match c.api_key {
            Some(key) => Some(
                self.keys
                    .authenticate(key)
                    .ok_or_else(|| Denied::Unauthenticated("unknown operator API key".into()))?,
            ),
            None => None,
        };
        let mut user = None;
        if let Some(edge) = &self.edge {
            match &c.signed {
                Some(signed) => {
                    edge.verify(signed, now_secs)
                        .map_err(|e| Denied::Unauthenticated(e.0.into()))?;
                    user = signed.user.filter(|u| !u.is_empty());
                }
                None if operator.is_none() => {
                    return Err(Denied::Unauthenticated(
                        "request is not signed by the edge".into(),
                    ))
                }
                None => {}
            }
        }
        Ok(operator
            .or_else(|| user.map(|u| Principal::User(u.to_string())))
            .unwrap_or(Principal::Anonymous))
    }
}

impl Authenticator {
    /// Claims an edge request's nonce across every core process (when Redis is configured),
    /// after [`Authenticator::identify`] accepted its signature: a request replayed to
    /// another process is refused as it is by the one that saw it. With Redis unreachable
    /// the process's own memory still refuses replays to it, and the request is served.
    pub async fn claim_shared_nonce(&self, nonce: &str) -> Result<(), Denied> {
        let Some(shared) = &self.shared_nonces else {
            return Ok(());
        };
        match shared.claim(nonce, self.nonce_ttl_secs).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Denied::Unauthenticated(
                "replayed request (nonce already used)".into(),
            )),
            Err(e) => {
                tracing::warn!(error = %e, "edge nonce not shared; this process's memory only");
                Ok(())
            }
        }
    }
}

/// Token buckets per identity: `rate` tokens per second up to `burst`. Memory is bounded:
/// full buckets (idle identities) are dropped when the table grows past `max_keys`.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    max_keys: usize,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_sec: f64, burst: f64) -> Self {
        Self {
            rate: per_sec,
            burst: burst.max(1.0),
            max_keys: 100_000,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `cost` tokens; `Err(seconds to wait)` when the bucket is short.
    pub fn take(&self, key: &str, cost: f64, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() >= self.max_keys && !buckets.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
            if buckets.len() >= self.max_keys {
                buckets.clear();
            }
        }
        let (tokens, at) = buckets.entry(key.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate)
            .min(self.burst);
        *at = now;
        if *tokens >= cost {
            *tokens -= cost;
            Ok(())
        } else {
            let wait = (cost - *tokens) / self.rate.max(1e-9);
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operator(scopes: &[Scope]) -> Principal {
        Principal::Operator {
            id: "ops".into(),
            scopes: scopes.to_vec(),
        }
    }

    #[test]
    fn users_reach_only_their_own_data() {
        let alice = Principal::User("alice".into());
        assert_eq!(alice.may_read_user("alice"), Ok(()));
        assert!(matches!(
            alice.may_read_user("bob"),
            Err(Denied::Forbidden(_))
        ));
        assert!(matches!(
            Principal::Anonymous.may_read_user("bob"),
            Err(Denied::Unauthenticated(_))
        ));
        assert_eq!(alice.may_erase_user("alice"), Ok(()));
        assert!(alice.may_erase_user("bob").is_err());
        assert_eq!(
            alice.may_write_events(["alice", "alice"].into_iter()),
            Ok(())
        );
        assert!(matches!(
            alice.may_write_events(["alice", "bob"].into_iter()),
            Err(Denied::Forbidden(m)) if m.contains("bob")
        ));
        assert!(Principal::Anonymous
            .may_write_events(std::iter::empty())
            .is_err());
    }

    #[test]
    fn operators_get_exactly_their_scopes_and_users_none() {
        let ingest = operator(&[Scope::EventsWrite]);
        assert_eq!(ingest.may_write_events(["a", "b"].into_iter()), Ok(()));
        assert!(ingest.require(Scope::CatalogWrite).is_err());
        assert!(ingest.may_read_user("a").is_err());
        let support = operator(&[Scope::AdminRead]);
        assert_eq!(support.may_read_user("a"), Ok(()));
        assert!(support.may_erase_user("a").is_err());
        assert!(support.may_write_events(["a"].into_iter()).is_err());
        assert!(matches!(
            Principal::User("a".into()).require(Scope::CatalogWrite),
            Err(Denied::Forbidden(_))
        ));
        assert!(matches!(
            Principal::Anonymous.require(Scope::AdminRead),
            Err(Denied::Unauthenticated(_))
        ));
        assert_eq!(Principal::Trusted.require(Scope::AdminWrite), Ok(()));
    }

    #[test]
    fn keys_are_matched_by_digest_only() {
        let key = generate_key();
        assert!(key.starts_with("rk_") && key.len() == 3 + 43, "{key}");
        assert_ne!(key, generate_key());
        let keys = OperatorKeys::new(&[OperatorKey {
            id: "ingest".into(),
            sha256: key_digest(&key),
            scopes: vec![Scope::EventsWrite],
        }]);
        assert_eq!(
            keys.authenticate(&key),
            Some(Principal::Operator {
                id: "ingest".into(),
                scopes: vec![Scope::EventsWrite],
            })
        );
        assert_eq!(keys.authenticate(&key_digest(&key)), None);
        assert_eq!(keys.authenticate(&key[..key.len() - 1]), None);
        // SHA-256("abc"), FIPS 180-2.
        assert_eq!(
            key_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn key_table_is_validated() {
        let good = OperatorKey {
            id: "a".into(),
            sha256: key_digest("k"),
            scopes: vec![Scope::AdminRead],
        };
        assert_eq!(validate_keys(std::slice::from_ref(&good)), Ok(()));
        assert!(validate_keys(&[good.clone(), good.clone()]).is_err());
        let mut short = good.clone();
        short.sha256 = "abc".into();
        assert!(validate_keys(&[short]).is_err());
        let mut none = good;
        none.scopes.clear();
        assert!(validate_keys(&[none]).is_err());
        let parsed: OperatorKey = toml::from_str(
            "id = \"x\"\nsha256 = \"00\"\nscopes = [\"catalog:write\", \"admin:write\"]",
        )
        .unwrap();
        assert_eq!(parsed.scopes, vec![Scope::CatalogWrite, Scope::AdminWrite]);
    }

    #[test]
    fn loopback_binds_are_recognised() {
        assert!(is_loopback_bind("127.0.0.1:8080"));
        assert!(is_loopback_bind("[::1]:8080"));
        assert!(is_loopback_bind("localhost:8080"));
        assert!(!is_loopback_bind("0.0.0.0:8080"));
        assert!(!is_loopback_bind("10.0.0.5:8080"));
        assert!(!is_loopback_bind("core.example.com:8080"));
    }

    #[test]
    fn buckets_refill_and_stay_bounded() {
        let limiter = RateLimiter::new(10.0, 3.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take("u", 1.0, t0), Ok(()));
        }
        assert_eq!(limiter.take("u", 1.0, t0), Err(1));
        assert_eq!(limiter.take("v", 1.0, t0), Ok(()), "per identity");
        let later = t0 + std::time::Duration::from_millis(200);
        assert_eq!(limiter.take("u", 1.0, later), Ok(()));
        let mut small = RateLimiter::new(1.0, 1.0);
        small.max_keys = 4;
        for i in 0..50 {
            let _ = small.take(&format!("k{i}"), 1.0, t0);
        }
        assert!(small.buckets.lock().unwrap().len() <= 4);
    }
}
