//! Core recommendation API: a thin HTTP layer ([`http`]) over a deep domain ([`engine`]):
//! sharded HNSW vector search (the `vector-index` crate), the ranking pipeline, storage traits with
//! embedded defaults ([`store`]) and Prometheus metrics ([`metrics`]).

pub mod auth;
pub mod bootstrap;
pub mod catalog;
pub mod clock;
pub mod cluster;
pub mod compute;
pub mod config;
pub mod demo;
pub mod edge_auth;
pub mod embedding;
pub mod engine;
pub mod error;
pub mod http;
pub mod ingest;
pub mod intent;
pub mod learn;
pub mod metrics;
pub mod ontology;
pub mod policy;
pub mod store;
pub mod vector_cache;

use std::sync::{Arc, OnceLock};

pub use config::Config;
pub use engine::{Embedder, Engine};
pub use error::EngineError;
pub use http::{app, AppState};

impl AppState {
    /// State for a server whose engine is not loaded yet.
    pub fn loading(config: Config, metrics: Arc<metrics::Metrics>) -> Self {
        Self {
            engine: Arc::new(OnceLock::new()),
            metrics,
            auth: Arc::new(auth::Authenticator::new(&config)),
            config: Arc::new(config),
        }
    }

    /// State around an engine that is already loaded.
    pub fn ready(engine: Arc<Engine>, metrics: Arc<metrics::Metrics>) -> Self {
        let state = Self::loading(engine.config().clone(), metrics);
        let _ = state.engine.set(engine);
        state
    }
}
