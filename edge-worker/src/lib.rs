//! Edge worker: a Cloudflare Worker (Rust → Wasm) in front of the core API.
//!
//! It owns the cache contract: it turns each request into a cache key and TTL tier
//! ([`plan`]), answers fresh hits from the Cache API, forwards misses to the core with a
//! signed request, a deadline and one retry, serves the last good answer when the core is
//! down ([`entry`]), and rejects malformed input before it reaches the core ([`EdgeError`]).
//! It authenticates end users from their tokens ([`auth`]), lets each caller read and write
//! only as themselves, and rate-limits each identity ([`ratelimit`]).
//!
//! Everything except the thin Workers glue (`glue`, wasm only) is plain Rust tested natively.

pub mod auth;
pub mod config;
pub mod entry;
mod error;
pub mod plan;
pub mod ratelimit;

#[cfg(target_arch = "wasm32")]
mod glue;

pub use config::{EdgeConfig, JwtConfig};
pub use error::EdgeError;
pub use plan::{plan, CachedRoute, Caller, Incoming, Plan};
