//! Who may call the service: the edge worker's shared secret, operator keys (with their scopes
//! and checks), rate limits and the development switch.

use std::net::SocketAddr;

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
    pub operator_keys: Vec<OperatorKey>,
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

/// What an operator key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// `POST /v1/items`, `DELETE /v1/items/{id}`.
    #[serde(rename = "catalog:write")]
    CatalogWrite,
    /// `POST /v1/events` for any user (server-to-server ingestion).
    #[serde(rename = "events:write")]
    EventsWrite,
    /// `GET /admin/*`, and reading any user's recommendations and data.
    #[serde(rename = "admin:read")]
    AdminRead,
    /// `POST /admin/*`, and erasing any user's data.
    #[serde(rename = "admin:write")]
    AdminWrite,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CatalogWrite => "catalog:write",
            Self::EventsWrite => "events:write",
            Self::AdminRead => "admin:read",
            Self::AdminWrite => "admin:write",
        }
    }
}

/// One operator key as configured: only the SHA-256 of the key is stored. Several keys may
/// be live at once, which is how a key is rotated without downtime (add the new one, move the
/// callers, remove the old one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorKey {
    /// A name for logs and metrics (never the key itself).
    pub id: String,
    /// Lowercase hex SHA-256 of the key (`core-api keygen` prints it).
    pub sha256: String,
    pub scopes: Vec<Scope>,
}

/// Checks the operator key table; names the first bad entry.
pub fn validate_keys(keys: &[OperatorKey]) -> Result<(), String> {
    let mut ids = std::collections::HashSet::new();
    for k in keys {
        if k.id.is_empty() || !ids.insert(k.id.as_str()) {
            return Err(format!(
                "auth.operator_keys: ids must be non-empty and unique ('{}')",
                k.id
            ));
        }
        if k.sha256.len() != 64 || !k.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "auth.operator_keys '{}': sha256 must be 64 hex digits (core-api keygen prints it)",
                k.id
            ));
        }
        if k.scopes.is_empty() {
            return Err(format!("auth.operator_keys '{}': no scopes", k.id));
        }
    }
    Ok(())
}

/// Whether a bind address only accepts local connections.
pub fn is_loopback_bind(bind: &str) -> bool {
    if let Ok(addr) = bind.parse::<SocketAddr>() {
        return addr.ip().is_loopback();
    }
    bind.rsplit_once(':')
        .is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost"))
}
