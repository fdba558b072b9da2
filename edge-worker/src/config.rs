//! Worker configuration from `wrangler.toml` `[vars]` and the secrets (`EDGE_SHARED_SECRET`,
//! `JWT_HS256_SECRET`).

use shared_types::TtlTier;

use crate::EdgeError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// Base URL of the core API, e.g. `https://core.internal.example.com`.
    pub core_origin: String,
    /// `host[:port]` of [`Self::core_origin`]: the `Host` the core receives, which the
    /// signature covers.
    pub core_host: String,
    /// `v{N}` in cache keys; bump it to drop every cached entry at once.
    pub cache_version: u32,
    pub ttl_popular_secs: u32,
    pub ttl_user_session_secs: u32,
    pub ttl_zeitgeist_secs: u32,
    /// How long past its TTL the last good answer may be served while the core is down.
    pub stale_window_secs: u32,
    /// Deadline of one attempt to reach the core with a read.
    pub origin_timeout_ms: u32,
    /// Deadline of a write (events, catalogue upserts and deletes): longer than a read's, as
    /// a write waits for durable storage (and a catalogue upsert for embedding).
    pub write_timeout_ms: u32,
    /// Signs forwarded requests; `None` sends them unsigned (a core without a secret).
    pub shared_secret: Option<String>,
    /// End-user tokens; `None`: no token is accepted and every caller is anonymous.
    pub jwt: Option<JwtConfig>,
    /// Whether catalogue writes are forwarded (the core then checks the caller's API key);
    /// off, the edge refuses them, so the public hostname exposes no write path by default.
    pub forward_catalog_writes: bool,
    /// Requests per minute per identity where the runtime has no rate-limiting binding (the
    /// binding's own limit is set in `wrangler.toml`); 0 turns edge rate limiting off.
    pub rate_limit_per_minute: u32,
}

/// How `Authorization: Bearer` tokens are verified (see [`crate::auth`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// HS256 key (`JWT_HS256_SECRET`, a secret), at least 32 bytes.
    pub hs256_secret: Option<String>,
    /// Where the RS256/ES256 public keys are published (`JWT_JWKS_URL`).
    pub jwks_url: Option<String>,
    /// How long fetched keys are used before they are fetched again.
    pub jwks_ttl_secs: u32,
    /// Required `iss`.
    pub issuer: String,
    /// Required member of `aud` (a string or an array claim).
    pub audience: String,
    /// The claim naming the user (default `sub`).
    pub user_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u32,
}

/// Shortest HS256 key accepted: RFC 7518 asks for at least the hash size.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

impl EdgeConfig {
    /// Reads every setting through `var` (a binding lookup), falling back to defaults.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, EdgeError> {
        let number = |name: &str, default: u32, min: u32| -> Result<u32, EdgeError> {
            match var(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(n) if n >= min => Ok(n),
                    _ => Err(EdgeError::Misconfigured(format!(
                        "{name} must be an integer >= {min}, got '{v}'"
                    ))),
                },
            }
        };
        let core_origin = var("CORE_ORIGIN")
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .filter(|o| o.starts_with("http://") || o.starts_with("https://"))
            .ok_or_else(|| EdgeError::Misconfigured("CORE_ORIGIN must be an http(s) URL".into()))?;
        let core_host = origin_host(&core_origin).ok_or_else(|| {
            EdgeError::Misconfigured(format!("CORE_ORIGIN has no host: '{core_origin}'"))
        })?;
        let text = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let forward_catalog_writes = match text("FORWARD_CATALOG_WRITES").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(EdgeError::Misconfigured(format!(
                    "FORWARD_CATALOG_WRITES must be true or false, got '{other}'"
                )))
            }
        };
        let hs256_secret = var("JWT_HS256_SECRET").filter(|s| !s.is_empty());
        let jwks_url = text("JWT_JWKS_URL");
        let jwt = if hs256_secret.is_none() && jwks_url.is_none() {
            None
        } else {
            if hs256_secret
                .as_ref()
                .is_some_and(|s| s.len() < MIN_HS256_SECRET_BYTES)
            {
                return Err(EdgeError::Misconfigured(format!(
                    "JWT_HS256_SECRET must be at least {MIN_HS256_SECRET_BYTES} bytes"
                )));
            }
            if let Some(url) = jwks_url.as_deref().filter(|u| !is_trusted_key_url(u)) {
                return Err(EdgeError::Misconfigured(format!(
                    "JWT_JWKS_URL must be https (http only on loopback), got '{url}'"
                )));
            }
            // Without both, a token minted by the same issuer for another service would do.
            let required = |name: &str| {
                text(name).ok_or_else(|| {
                    EdgeError::Misconfigured(format!("{name} is required when tokens are on"))
                })
            };
            Some(JwtConfig {
                hs256_secret,
                jwks_url,
                jwks_ttl_secs: number("JWT_JWKS_TTL_SECS", 600, 60)?,
                issuer: required("JWT_ISSUER")?,
                audience: required("JWT_AUDIENCE")?,
                user_claim: text("JWT_USER_CLAIM").unwrap_or_else(|| "sub".into()),
                leeway_secs: number("JWT_LEEWAY_SECS", 60, 0)?,
            })
        };
        Ok(Self {
            core_origin,
            core_host,
            cache_version: number("CACHE_VERSION", 1, 0)?,
            ttl_popular_secs: number("TTL_POPULAR_SECS", TtlTier::Popular.ttl_secs(), 1)?,
            ttl_user_session_secs: number(
                "TTL_USER_SESSION_SECS",
                TtlTier::UserSession.ttl_secs(),
                1,
            )?,
            ttl_zeitgeist_secs: number("TTL_ZEITGEIST_SECS", TtlTier::Zeitgeist.ttl_secs(), 1)?,
            stale_window_secs: number("STALE_WINDOW_SECS", 86_400, 0)?,
            origin_timeout_ms: number("ORIGIN_TIMEOUT_MS", 500, 1)?,
            write_timeout_ms: number("WRITE_TIMEOUT_MS", 10_000, 1)?,
            shared_secret: var("EDGE_SHARED_SECRET").filter(|s| !s.is_empty()),
            jwt,
            forward_catalog_writes,
            rate_limit_per_minute: number("RATE_LIMIT_PER_MINUTE", 600, 0)?,
        })
    }

    pub fn ttl_secs(&self, tier: TtlTier) -> u32 {
        match tier {
            TtlTier::Popular => self.ttl_popular_secs,
            TtlTier::UserSession => self.ttl_user_session_secs,
            TtlTier::Zeitgeist => self.ttl_zeitgeist_secs,
        }
    }
}

/// The `Host` a fetch of `origin` sends: its authority, lowercased, without a default port.
fn origin_host(origin: &str) -> Option<String> {
    let (scheme, rest) = origin.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let host = authority.strip_suffix(default_port).unwrap_or(&authority);
    (!host.is_empty() && !host.contains('@')).then(|| host.to_string())
}

/// Keys must come over TLS, except from this machine (local development and tests).
fn is_trusted_key_url(url: &str) -> bool {
    if url.starts_with("https://") {
        return origin_host(url).is_some();
    }
    let host = url.strip_prefix("http://").and_then(|_| origin_host(url));
    host.is_some_and(|h| {
        let name = h.rsplit_once(':').map_or(h.as_str(), |(name, _)| name);
        matches!(name, "127.0.0.1" | "localhost" | "[::1]")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults_follow_the_design() {
        let c = EdgeConfig::from_vars(vars(&[("CORE_ORIGIN", "http://127.0.0.1:8080/")])).unwrap();
        assert_eq!(c.core_origin, "http://127.0.0.1:8080");
        assert_eq!(c.ttl_secs(TtlTier::Popular), 300);
        assert_eq!(c.ttl_secs(TtlTier::UserSession), 3600);
        assert_eq!(c.ttl_secs(TtlTier::Zeitgeist), 3600);
        assert_eq!(c.origin_timeout_ms, 500);
        assert_eq!(c.write_timeout_ms, 10_000);
        assert_eq!(c.shared_secret, None);
        assert_eq!(c.core_host, "127.0.0.1:8080");
        assert_eq!(c.jwt, None, "tokens are off until a key source is set");
        assert!(!c.forward_catalog_writes);
    }

    #[test]
    fn core_host_is_what_a_fetch_sends() {
        for (origin, host) in [
            (
                "https://Core.Internal.example.com",
                "core.internal.example.com",
            ),
            ("https://core.example:443", "core.example"),
            ("http://core.example:80/base", "core.example"),
            ("http://127.0.0.1:8080", "127.0.0.1:8080"),
            ("https://core.example:8443", "core.example:8443"),
            ("http://[::1]:9000", "[::1]:9000"),
        ] {
            assert_eq!(origin_host(origin).as_deref(), Some(host), "{origin}");
        }
        assert_eq!(origin_host("https://"), None);
        assert_eq!(origin_host("https://user@core"), None);
    }

    #[test]
    fn tokens_need_an_issuer_an_audience_and_a_strong_key() {
        const SECRET: &str = "0123456789abcdef0123456789abcdef";
        let c = EdgeConfig::from_vars(vars(&[
            ("CORE_ORIGIN", "https://core"),
            ("JWT_HS256_SECRET", SECRET),
            ("JWT_ISSUER", "https://id.example"),
            ("JWT_AUDIENCE", "recs"),
            ("FORWARD_CATALOG_WRITES", "true"),
        ]))
        .unwrap();
        let jwt = c.jwt.unwrap();
        assert_eq!(jwt.hs256_secret.as_deref(), Some(SECRET));
        assert_eq!((jwt.user_claim.as_str(), jwt.leeway_secs), ("sub", 60));
        assert_eq!((jwt.jwks_url, jwt.jwks_ttl_secs), (None, 600));
        assert!(c.forward_catalog_writes);

        let err = |pairs: &'static [(&'static str, &'static str)]| match EdgeConfig::from_vars(
            vars(pairs),
        )
        .unwrap_err()
        {
            EdgeError::Misconfigured(m) => m,
            other => panic!("{other:?}"),
        };
        let no_audience = err(&[
            ("CORE_ORIGIN", "https://core"),
            ("JWT_JWKS_URL", "https://id.example/jwks.json"),
            ("JWT_ISSUER", "https://id.example"),
        ]);
        assert!(no_audience.contains("JWT_AUDIENCE"), "{no_audience}");
        let short = err(&[
            ("CORE_ORIGIN", "https://core"),
            ("JWT_HS256_SECRET", "short"),
            ("JWT_ISSUER", "i"),
            ("JWT_AUDIENCE", "a"),
        ]);
        assert!(short.contains("32 bytes"), "{short}");
        let plain_http = err(&[
            ("CORE_ORIGIN", "https://core"),
            ("JWT_JWKS_URL", "http://id.example/jwks.json"),
            ("JWT_ISSUER", "i"),
            ("JWT_AUDIENCE", "a"),
        ]);
        assert!(plain_http.contains("JWT_JWKS_URL"), "{plain_http}");
        assert!(is_trusted_key_url("http://127.0.0.1:9999/jwks.json"));
        assert!(is_trusted_key_url("http://localhost/jwks.json"));
        assert!(!is_trusted_key_url(
            "http://127.0.0.1.evil.example/jwks.json"
        ));
        let flag = err(&[
            ("CORE_ORIGIN", "https://core"),
            ("FORWARD_CATALOG_WRITES", "yes"),
        ]);
        assert!(flag.contains("FORWARD_CATALOG_WRITES"), "{flag}");
    }

    #[test]
    fn bad_values_are_named() {
        assert!(EdgeConfig::from_vars(vars(&[])).is_err());
        let err = EdgeConfig::from_vars(vars(&[
            ("CORE_ORIGIN", "https://core"),
            ("ORIGIN_TIMEOUT_MS", "fast"),
        ]))
        .unwrap_err();
        assert!(matches!(err, EdgeError::Misconfigured(m) if m.contains("ORIGIN_TIMEOUT_MS")));
    }
}
