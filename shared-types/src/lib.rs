//! Wire types of the public API and the cache contract between the edge worker and the core.
//!
//! This crate is compiled both natively (core API) and for `wasm32-unknown-unknown` (edge
//! worker), so it holds no I/O and no runtime: only data types, validation and the pure
//! functions that both halves must compute identically (cache keys, context hashes, TTL tiers,
//! query decoding and the edge-to-core request signature).

mod cache;
pub mod edge_auth;
mod error_code;
mod query;
mod validate;
mod wire;

pub use cache::{
    cache_key, cache_window, context_hash, stable_hash, TtlTier, CACHE_BUCKET_SECS,
    CACHE_TIER_HEADER,
};
pub use error_code::{ErrorCode, Exposure};
pub use query::parse_query;
pub use validate::{
    effective_limit, normalise_query_text, validate_item_id, validate_user_id, NormalisedRequest,
    ValidationError, YearRange, DEFAULT_LIMIT, MAX_LIMIT, MAX_QUERY_TEXT_BYTES,
};
pub use wire::*;
