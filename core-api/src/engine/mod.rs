//! The recommendation engine: owns the catalogue, the vector index and the stores, and runs
//! the ranking pipeline (user history → candidates from vectors and the item graph → hard
//! filters → hybrid ranking → MMR diversity → reasons).
//!
//! - [`open`](self::open): opening over the backends, the start-up replay, background work;
//! - [`reads`]: `recommend` and `similar`, which run the [`pipeline`] stages;
//! - [`writes`]: events, catalogue upserts and deletes, a user's export and erasure;
//! - [`jobs`]: catalogue upserts too large for one request;
//! - [`learning`]: the online ranking policy and the trained model's retraining;
//! - [`graph_sync`]: the item graph's `SIMILAR_TO` edges, kept in step with the catalogue;
//! - [`vectors`]: the one seam over local shards and, on a router, the shard nodes
//!   ([`cluster_feed`], which also stores the catalogue in ScyllaDB and follows its change log).

mod cluster_feed;
mod graph_sync;
mod jobs;
mod learning;
mod open;
pub(crate) mod pipeline;
mod reads;
mod vectors;
mod writes;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use gpu_batch::batcher::{BatchError, Batcher};
use shared_types::{validate_item_id, ErrorCode, Item};

use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::EngineError;
use crate::intent::IntentModel;
use crate::learn::learner::Learner;
use crate::metrics::Metrics;
use crate::ontology::Ontology;
use crate::policy::Policy;
use crate::store::{InteractionStore, ItemGraph, ItemStore, StoreError, UserEmbeddingCache};
use vector_index::ShardedIndex;

pub use crate::embedding::{item_text, Embedder};
pub(crate) use cluster_feed::{catalogue_is_empty, connect_router};
pub use jobs::{ItemsSubmitted, JobState, JobStatus};
pub use learning::PolicyReport;
pub(crate) use writes::validate_item;
pub use writes::{
    ErasureReport, MAX_EVENTS_PER_REQUEST, MAX_EVENT_CLOCK_SKEW_SECS, MAX_ITEMS_PER_REQUEST,
};

/// Free-text intents whose vectors are kept (the cache is cleared when full).
const QUERY_CACHE_ENTRIES: usize = 10_000;

/// The storage backends the engine runs on.
pub struct Backends {
    pub items: Arc<dyn ItemStore>,
    pub interactions: Arc<dyn InteractionStore>,
    pub graph: Arc<dyn ItemGraph>,
    pub user_cache: Arc<dyn UserEmbeddingCache>,
}

pub struct Engine {
    config: Config,
    catalog: Catalog,
    /// Vector search and the catalogue's durable writes, here or on the shard nodes.
    vectors: Arc<dyn vectors::Vectors>,
    backends: Backends,
    embedder: Arc<dyn Embedder>,
    metrics: Arc<Metrics>,
    query_vectors: Mutex<HashMap<String, Arc<Vec<f32>>>>,
    /// Coalesces concurrent free-text intents into embedding batches.
    query_batcher: Batcher<String, Vec<f32>>,
    /// Bounds the catalogue embedding running at once (`model.ingest_concurrency`).
    ingest_permits: tokio::sync::Semaphore,
    response_seq: AtomicU64,
    current_year: i32,
    /// The online-learning ranking policy (`None` when switched off).
    policy: Option<Arc<Policy>>,
    /// In a cluster, where the routers share what the policy learns (ScyllaDB); `None` in a
    /// single process, which keeps it in its data directory.
    shared_policy: Option<learning::SharedPolicy>,
    /// What responses showed: in process, or in ScyllaDB in a cluster.
    impressions: Arc<dyn crate::store::ImpressionStore>,
    ontology: Ontology,
    intent_model: IntentModel,
    /// False while the background graph fill runs.
    graph_filled: Arc<tokio::sync::watch::Sender<bool>>,
    /// Seen sets, transitions, trend and the trained collaborative model and ranker.
    learner: Arc<Learner>,
    /// The background catalogue load's progress (the demo catalogue's later films).
    catalogue_load: tokio::sync::watch::Sender<CatalogueLoad>,
    /// Catalogue upserts too large for one request.
    jobs: jobs::Jobs,
    /// Held shared by each event batch's work after its commit, and exclusively by an
    /// erasure, so an erasure waits for that work and no late graph edge or cached vector
    /// outlives it.
    after_commit_gate: Arc<tokio::sync::RwLock<()>>,
}

/// A background catalogue load, for `/readyz`: items still to be added, and whether the load
/// still runs (it stops early only on an error; the next start resumes it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CatalogueLoad {
    pub pending: usize,
    pub running: bool,
}

impl Engine {
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The storage backends the engine runs on.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// The in-process index (`None` on a router, whose shards are on other nodes).
    pub fn local_index(&self) -> Option<&ShardedIndex> {
        self.vectors.local()
    }

    /// Shards of the index (local or across the cluster).
    pub fn shard_count(&self) -> usize {
        self.vectors.shard_count()
    }

    /// Each external dependency (ScyllaDB, Neo4j, Redis when configured; the shard nodes on
    /// a router) and whether it answers now, for `/readyz`.
    pub async fn dependencies(&self) -> Vec<(&'static str, Result<(), StoreError>)> {
        let b = &self.backends;
        let (interactions, graph, cache) = tokio::join!(
            b.interactions.check(),
            b.graph.check(),
            b.user_cache.check()
        );
        let mut checks: Vec<(&'static str, Result<(), StoreError>)> = [
            (b.interactions.name(), interactions),
            (b.graph.name(), graph),
            (b.user_cache.name(), cache),
        ]
        .into_iter()
        .filter(|(name, _)| !matches!(*name, "embedded" | "in-process"))
        .collect();
        if let Some(missing) = self.vectors.unavailable_shards() {
            checks.push((
                "shard_nodes",
                match missing.is_empty() {
                    true => Ok(()),
                    false => Err(StoreError::Unavailable(format!(
                        "no replica up for shards {missing:?}"
                    ))),
                },
            ));
        }
        checks
    }

    /// Whether the store of record accepts writes (see [`ItemStore::check_writable`]).
    pub async fn storage_writable(&self) -> Result<(), StoreError> {
        self.backends.items.check_writable().await
    }

    pub fn catalog_len(&self) -> usize {
        self.catalog.len()
    }

    /// Whether the catalogue holds an item with this id.
    pub fn has_item(&self, id: &str) -> bool {
        self.catalog.get(id).is_some()
    }

    /// The background catalogue load's progress (nothing pending when none runs).
    pub fn catalogue_load(&self) -> CatalogueLoad {
        *self.catalogue_load.borrow()
    }

    /// Resolves once no background catalogue load runs.
    pub async fn catalogue_loaded(&self) {
        let mut load = self.catalogue_load.subscribe();
        let _ = load.wait_for(|l| !l.running).await;
    }

    pub(crate) fn report_catalogue_load(&self, load: CatalogueLoad) {
        self.catalogue_load.send_replace(load);
    }

    pub fn get_item(&self, id: &str) -> Result<Item, EngineError> {
        validate_item_id(id)?;
        self.catalog.get(id).map(|e| e.item.clone()).ok_or_else(|| {
            EngineError::not_found(ErrorCode::ItemNotFound, format!("no item with id '{id}'"))
        })
    }

    /// Embeds catalogue texts on the blocking pool, one permit of `ingest_permits` at a time.
    async fn embed(&self, texts: Vec<String>, path: &str) -> Result<Vec<Vec<f32>>, EngineError> {
        let _permit = self
            .ingest_permits
            .acquire()
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        self.metrics.observe_embed_batch(path, texts.len());
        let embedder = self.embedder.clone();
        tokio::task::spawn_blocking(move || embedder.embed_batch(&texts))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .map_err(EngineError::from)
    }

    /// Embedding of a (normalised) free-text intent, cached because popular intents repeat.
    async fn embed_query(&self, q: &str) -> Result<Arc<Vec<f32>>, EngineError> {
        if let Some(v) = self.query_vectors.lock().expect("query cache").get(q) {
            return Ok(v.clone());
        }
        let v = Arc::new(
            self.query_batcher
                .submit(q.to_string())
                .await
                .map_err(|e| match e {
                    BatchError::Overloaded => EngineError::Overloaded(e.to_string()),
                    _ => EngineError::Internal(format!("query embedding: {e}")),
                })?,
        );
        let mut cache = self.query_vectors.lock().expect("query cache");
        if cache.len() >= QUERY_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(q.to_string(), v.clone());
        Ok(v)
    }

    /// A response id unique across restarts: the time in ns and a sequence number.
    fn next_response_id(&self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        format!(
            "{nanos:016x}{:06x}",
            self.response_seq.fetch_add(1, Ordering::Relaxed) & 0xff_ffff
        )
    }
}
