//! Worker configuration from `wrangler.toml` `[vars]` and the `EDGE_SHARED_SECRET` secret.

use shared_types::TtlTier;

use crate::EdgeError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// Base URL of the core API, e.g. `https://core.internal.example.com`.
    pub core_origin: String,
    /// `v{N}` in cache keys; bump it to drop every cached entry at once.
    pub cache_version: u32,
    pub ttl_popular_secs: u32,
    pub ttl_user_session_secs: u32,
    pub ttl_zeitgeist_secs: u32,
    /// How long past its TTL the last good answer may be served while the core is down.
    pub stale_window_secs: u32,
    /// Deadline of one attempt to reach the core.
    pub origin_timeout_ms: u32,
    /// Signs forwarded requests; `None` sends them unsigned (a core without a secret).
    pub shared_secret: Option<String>,
}

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
        Ok(Self {
            core_origin,
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
            shared_secret: var("EDGE_SHARED_SECRET").filter(|s| !s.is_empty()),
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
        assert_eq!(c.shared_secret, None);
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
