//! Opening the engine over its backends: the catalogue and the index (in this process, or
//! from the shard nodes), the query-embedding batcher, the policy, the learner and the
//! ontology; then, for a serving process, the start-up replay of the event log and the
//! background work (graph fill, training).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gpu_batch::batcher::{Batcher, BatcherConfig};

use crate::catalog::Catalog;
use crate::config::{Config, Role};
use crate::error::EngineError;
use crate::intent::IntentModel;
use crate::learn::learner::Learner;
use crate::metrics::Metrics;
use crate::ontology::Ontology;
use crate::policy::ImpressionLog;
use crate::store::{InProcessItemGraph, ScyllaPolicyStore};
use vector_index::IndexParams;

use super::cluster_feed::{self, ClusterVectors, RouterParts};
use super::graph_sync::{content_node, FillDone};
use super::learning::{open_policy, SharedPolicy};
use super::vectors::{LocalVectors, Vectors};
use super::{Backends, Embedder, Engine};

impl Engine {
    /// Opens the engine over any backends: loads the catalogue and opens every shard
    /// (reusing snapshots in the data directory). A router connects to its shard nodes.
    /// Nothing runs in the background (see [`crate::bootstrap`] for a serving process).
    pub async fn open(
        config: Config,
        backends: Backends,
        embedder: Arc<dyn Embedder>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, EngineError> {
        let cluster = match config.cluster.role {
            Role::Router => {
                Some(cluster_feed::connect_router(&config, embedder.dim(), &metrics).await)
            }
            _ => None,
        };
        Self::open_with(config, backends, embedder, metrics, cluster).await
    }

    pub(crate) async fn open_with(
        config: Config,
        backends: Backends,
        embedder: Arc<dyn Embedder>,
        metrics: Arc<Metrics>,
        cluster: Option<RouterParts>,
    ) -> Result<Arc<Self>, EngineError> {
        let started = Instant::now();
        let stored = backends.items.load_all().await?;
        let params = IndexParams {
            dim: embedder.dim(),
            m: config.index.m,
            ef_construction: config.index.ef_construction,
            ef_search: config.index.ef_search,
            rebuild_threshold: config.index.rebuild_threshold,
            precision: config.index.precision(),
        };
        let catalog = Catalog::default();
        let shared_store = cluster.as_ref().map(|(_, catalogue)| {
            Arc::new(ScyllaPolicyStore::new(
                catalogue.config().clone(),
                config.policy.impression_ttl_secs,
            ))
        });
        let (vectors, cluster): (Arc<dyn Vectors>, Option<Arc<ClusterVectors>>) = match cluster {
            Some((cluster, store)) => {
                let cluster =
                    Arc::new(ClusterVectors::open(cluster, store, &catalog, stored).await?);
                tracing::info!(
                    items = catalog.len(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "catalogue loaded from ScyllaDB"
                );
                (cluster.clone(), Some(cluster))
            }
            None => {
                let local = LocalVectors::open(
                    params,
                    config.index.shards,
                    &config.storage.data_dir,
                    stored,
                    &catalog,
                    backends.items.clone(),
                )
                .await?;
                local.report_sizes(&metrics);
                tracing::info!(
                    items = catalog.len(),
                    shards = config.index.shards,
                    took_ms = started.elapsed().as_millis() as u64,
                    "index loaded"
                );
                (Arc::new(local), None)
            }
        };
        let query_batcher = {
            let embedder = embedder.clone();
            let metrics = metrics.clone();
            Batcher::spawn(
                BatcherConfig {
                    max_batch: config.model.query_batch_max.max(1),
                    max_wait: Duration::from_micros(config.model.query_batch_wait_us),
                    queue_capacity: 4096,
                },
                move |texts: Vec<String>| embedder.embed_batch(&texts).map_err(|e| e.to_string()),
                move |stats| metrics.observe_query_batch(stats),
            )
        };
        let learner = Arc::new(Learner::new(
            config.learning.clone(),
            config.storage.data_dir.join("models"),
        ));
        {
            // Sorted, so ordinals (and the ties they break) repeat from run to run.
            let mut ids: Vec<Arc<str>> = catalog.all().iter().map(|e| e.id.clone()).collect();
            ids.sort();
            learner.register_items(&ids);
        }
        let ontology = match config.ranking.ontology_file.as_os_str().is_empty() {
            true => Ontology::bundled(),
            false => Ontology::load(&config.ranking.ontology_file),
        }
        .map_err(|e| EngineError::Internal(format!("genre ontology: {e}")))?;
        let intent_model = {
            let embedder = embedder.clone();
            tokio::task::spawn_blocking(move || {
                IntentModel::new(|sentences| embedder.embed_batch(&sentences))
            })
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))??
        };
        let config_ingest_concurrency = config.model.ingest_concurrency.max(1);
        let engine = Arc::new(Self {
            policy: open_policy(&config, shared_store.is_none()),
            impressions: match &shared_store {
                Some(store) => store.clone(),
                None => Arc::new(ImpressionLog::new(config.policy.impression_capacity)),
            },
            shared_policy: shared_store.map(SharedPolicy::new),
            config,
            catalog,
            vectors,
            backends,
            embedder,
            metrics,
            query_vectors: Mutex::new(HashMap::new()),
            query_batcher,
            ingest_permits: tokio::sync::Semaphore::new(config_ingest_concurrency),
            // Random start: two routers' response ids (impression keys in ScyllaDB) never meet.
            response_seq: AtomicU64::new(rand::random()),
            current_year: crate::clock::current_year(),
            ontology,
            intent_model,
            graph_filled: Arc::new(tokio::sync::watch::Sender::new(true)),
            learner,
            catalogue_load: tokio::sync::watch::Sender::new(Default::default()),
            jobs: Default::default(),
            after_commit_gate: Default::default(),
        });
        Self::spawn_policy_sync(&engine).await;
        if let Some(cluster) = cluster {
            Self::spawn_feed(&engine, cluster);
        }
        Ok(engine)
    }

    /// Rebuilds popularity, the learner's online state (and the in-process graph's nodes and
    /// co-engagement edges) from the event log, as a serving process does at start.
    pub(crate) async fn replay_events(&self, in_process_graph: Option<&InProcessItemGraph>) {
        if let Some(graph) = in_process_graph {
            graph.insert_nodes(
                self.catalog
                    .all()
                    .iter()
                    .map(|e| content_node(e, Vec::new()))
                    .collect(),
            );
        }
        let mut previous: Vec<Arc<str>> = Vec::new();
        let mut positives: Vec<Arc<str>> = Vec::new();
        let mut user = String::new();
        let learning = &self.config.learning;
        let replayed = self
            .backends
            .interactions
            .replay(&mut |event| {
                if event.user_id != user {
                    user = event.user_id.clone();
                    previous.clear();
                    positives.clear();
                }
                let Some(entry) = self.catalog.get(&event.item_id) else {
                    return;
                };
                let first = self.learner.observe(
                    &event.user_id,
                    &entry.id,
                    event.action,
                    event.timestamp,
                    &positives,
                );
                // One vote per user and item, as when the events arrived.
                if first {
                    self.catalog.record_engagement(&entry.id, event.action);
                }
                if learning.is_positive(event.action) {
                    positives.insert(0, entry.id.clone());
                    positives.truncate(learning.transitions.window.max(1));
                }
                if first && event.action.preference_weight() > 0.0 {
                    if let Some(graph) = in_process_graph {
                        graph.link_after(previous.iter().rev(), &entry.id);
                    }
                    previous.push(entry.id.clone());
                    if previous.len() > 5 {
                        previous.remove(0);
                    }
                }
            })
            .await;
        if let Err(e) = replayed {
            tracing::warn!(error = %e, "event log not replayed; popularity starts empty");
        }
    }

    /// Starts a serving process's background work: model loading and training, and the
    /// item graph's fill (readiness waits for neither).
    pub(crate) fn start_background(engine: &Arc<Self>) {
        Self::spawn_training(engine);
        let syncing = Arc::downgrade(engine);
        engine.graph_filled.send_replace(false);
        let done = FillDone(engine.graph_filled.clone());
        tokio::spawn(async move {
            let _done = done;
            if let Err(e) = Self::sync_graph(syncing).await {
                tracing::warn!(error = %e, "item graph not filled; it is retried at the next start");
            }
        });
    }
}
