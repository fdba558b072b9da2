//! Who may call the service: the edge worker's shared secret, operator keys, rate limits and
//! the development switch.

use serde::{Deserialize, Serialize};

/// Trust between the edge worker and the core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeConfig {
    /// Secret shared with the edge worker (its `EDGE_SHARED_SECRET`). When set, API requests
    /// must be signed by the edge; empty turns verification off.
    pub shared_secret: String,
    /// Largest accepted difference between the edge's signing time and the core's clock.
    pub max_clock_skew_secs: u64,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            shared_secret: String::new(),
            max_clock_skew_secs: 30,
        }
    }
}

/// Operator keys, rate limits and the development switch (see `auth.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Operator API keys (hashed), sent in `x-api-key`.
    pub operator_keys: Vec<crate::auth::OperatorKey>,
    /// Serve a non-loopback bind with no edge secret and no operator keys: every caller is
    /// trusted. Development only; without it such a start is refused.
    pub insecure_development: bool,
    /// Sustained requests per second per identity (user, operator key, anonymous address).
    pub requests_per_sec: f64,
    /// Requests an idle identity may send at once.
    pub burst: f64,
    /// Events a user may record per minute (operator keys are not capped).
    pub events_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            operator_keys: Vec::new(),
            insecure_development: false,
            requests_per_sec: 50.0,
            burst: 100.0,
            events_per_minute: 600,
        }
    }
}
