//! Edge worker (Cloudflare Worker, Rust → Wasm). The worker body is tracked separately; this
//! crate already links the shared cache contract so the edge and the core cannot drift.

pub use shared_types::{cache_key, context_hash, TtlTier};
