//! The recommendation engine: owns the catalogue, the index and the stores, and runs the
//! ranking pipeline (user history → candidates from vectors and the item graph → hard
//! filters → hybrid ranking → MMR diversity → reasons).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use shared_types::{
    validate_item_id, validate_user_id, Action, InteractionEvent, Item, ItemInput, Maturity,
    NormalisedRequest, RecommendationResponse, ScoreComponents, ScoredItem,
};

use crate::catalog::{Catalog, CatalogEntry};
use crate::cluster::wire::{Cursor, ItemRecord};
use crate::cluster::{ClusterIndex, SearchOutcome, CHANGE_WINDOW_US};
use crate::config::{Config, RankingConfig, Role};
use crate::error::EngineError;
use crate::index::distance::{best_dot, dot_f32};
use crate::index::{IndexParams, LocalShard, Shard, ShardItem, ShardedIndex};
use crate::intent::IntentModel;
use crate::learn::features::{content_similarity, freshness, rank_features};
use crate::learn::learner::Learner;
use crate::learn::train::{stretch_semantic, CONTENT_SEEDS};
use crate::learn::{ItemSignals, UserSignals};
use crate::metrics::{Metrics, Stage};
use crate::ontology::{Ontology, SemanticFilter};
use crate::policy::{
    self, Features, Impression, ImpressionLog, LeadDecision, Policy, PolicySettings,
};
use crate::store::{
    ContentNode, EmbeddedStore, InProcessItemGraph, InProcessUserCache, Interaction,
    InteractionStore, ItemGraph, ItemStore, Neo4jGraph, RedisUserCache, ScyllaInteractionStore,
    StoreError, StoredItem, UserEmbeddingCache,
};
use gpu_batch::batcher::{BatchError, Batcher, BatcherConfig};

/// Turns texts into unit vectors; implemented by `gpu_batch::TextEncoder`.
pub trait Embedder: Send + Sync {
    fn dim(&self) -> usize;
    fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, gpu_batch::EmbedError>;
}

impl Embedder for gpu_batch::TextEncoder {
    fn dim(&self) -> usize {
        gpu_batch::TextEncoder::dim(self)
    }

    fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, gpu_batch::EmbedError> {
        gpu_batch::TextEncoder::embed_batch(self, texts)
    }
}

/// Most items accepted by one `POST /v1/items`, events by one `POST /v1/events`.
pub const MAX_ITEMS_PER_REQUEST: usize = 10_000;
pub const MAX_EVENTS_PER_REQUEST: usize = 1_000;
const QUERY_CACHE_ENTRIES: usize = 10_000;
/// Seeds taken from the user's history for graph candidates.
const GRAPH_SEEDS: usize = 10;
/// Popular items added to the candidates when an ontology filter is selective.
const FILTER_BACKFILL: usize = 1_000;
/// How long a router waits at start for every shard to have a replica up.
const CLUSTER_START_WAIT: Duration = Duration::from_secs(30);
/// Items written per call when a router seeds an empty cluster.
const SEED_BATCH: usize = 500;
/// Items written to the graph per batch when it is filled.
const GRAPH_SYNC_BATCH: usize = 500;
/// Quality of an item that states none, for the graph's threshold.
const DEFAULT_QUALITY: f32 = 0.5;

/// The policy's prior: the ranking pipeline's own order (its score, whether the learned
/// ranker's or the static weighted sum), so before any feedback the bandit changes nothing.
fn static_prior() -> Features {
    let mut prior = [0.0; policy::FEATURES];
    prior[SCORE_FEATURE] = 1.0;
    prior
}

/// Where the pipeline's score sits in the policy's features.
const SCORE_FEATURE: usize = 7;

/// The policy's view of a ranked item (see [`policy::FEATURE_NAMES`]).
fn features_of(c: &ScoreComponents, score: f32, has_intent: bool, cold_start: bool) -> Features {
    [
        c.semantic,
        c.graph,
        c.popularity,
        c.freshness,
        c.quality,
        c.collaborative,
        c.transition,
        score,
        1.0,
        f32::from(u8::from(has_intent)),
        f32::from(u8::from(cold_start)),
    ]
}

fn named_features(w: &Features) -> BTreeMap<String, f32> {
    policy::FEATURE_NAMES
        .iter()
        .zip(w)
        .map(|(n, v)| (n.to_string(), *v))
        .collect()
}

fn policy_state_path(config: &Config) -> std::path::PathBuf {
    config.storage.data_dir.join("policy-state.json")
}

/// What `GET /admin/policy` reports.
#[derive(Debug, serde::Serialize)]
pub struct PolicyReport {
    pub enabled: bool,
    pub frozen: bool,
    pub epsilon: f32,
    pub updates: u64,
    /// Learned weights per segment.
    pub weights: Option<BTreeMap<String, BTreeMap<String, f32>>>,
    /// Remembered lead decisions the estimates are computed on.
    pub decisions: usize,
    /// Mean reward the serving (logging) policy earned on them.
    pub observed_reward: f64,
    /// IPS estimates of the learned greedy policy, the static ranker, and a candidate.
    pub learned: Option<policy::IpsEstimate>,
    pub static_ranker: policy::IpsEstimate,
    pub candidate: Option<policy::IpsEstimate>,
}

/// What [`Engine::erase_user`] removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErasureReport {
    pub user_id: String,
    /// Interactions deleted from the interaction store (the user's profile went with them).
    pub events: usize,
    /// Items the user's seen set held.
    pub seen_items: usize,
    /// Impressions served to the user that the ranking policy forgot.
    pub impressions: usize,
    /// Per-user graph edges removed (`WATCHED` in Neo4j; the in-process graph keeps none).
    pub graph_edges: usize,
}

/// An item as a graph node with its `SIMILAR_TO` neighbours.
fn content_node(entry: &CatalogEntry, similar: Vec<(Arc<str>, f32)>) -> ContentNode {
    ContentNode {
        id: entry.id.clone(),
        title: entry.item.title.clone(),
        genres: entry.item.genres.clone(),
        quality: entry.item.quality.unwrap_or(DEFAULT_QUALITY),
        similar,
    }
}

/// The text embedded for an item: title, genres and description.
pub fn item_text(item: &Item) -> String {
    let mut text = item.title.clone();
    if !item.genres.is_empty() {
        text.push_str(". Genres: ");
        text.push_str(&item.genres.join(", "));
    }
    if let Some(d) = item.description.as_deref().filter(|d| !d.is_empty()) {
        text.push_str(". ");
        text.push_str(d);
    }
    text
}

/// The user-embedding cache the configuration asks for: Redis when `redis.url` is set, else
/// in process.
fn user_cache(config: &Config) -> Result<Arc<dyn UserEmbeddingCache>, EngineError> {
    let ttl = Duration::from_secs(config.storage.user_cache_ttl_secs);
    if config.redis.url.is_empty() {
        return Ok(Arc::new(InProcessUserCache::new(
            config.storage.user_cache_entries,
            ttl,
        )));
    }
    tracing::info!(
        url = %crate::store::redact_url(&config.redis.url),
        "user-embedding cache in Redis"
    );
    Ok(Arc::new(RedisUserCache::new(
        &config.redis.url,
        config.redis.pool_size,
        Duration::from_millis(config.redis.timeout_ms),
        ttl.as_secs(),
    )?))
}

/// This year (UTC, by mean Gregorian year), for the freshness of release years.
pub fn current_year() -> i32 {
    1970 + (now_secs() / 31_556_952) as i32
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn normalise(v: &mut [f32]) -> bool {
    let norm = dot_f32(v, v).sqrt();
    if !norm.is_finite() || norm < 1e-6 {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    true
}

/// Runs CPU-bound work on the rayon pool and awaits it without blocking the reactor.
pub(crate) async fn on_rayon<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, EngineError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await
        .map_err(|_| EngineError::Internal("a ranking task panicked".into()))
}

/// The storage backends the engine runs on.
pub struct Backends {
    pub items: Arc<dyn ItemStore>,
    pub interactions: Arc<dyn InteractionStore>,
    pub graph: Arc<dyn ItemGraph>,
    pub user_cache: Arc<dyn UserEmbeddingCache>,
}

/// One candidate before ranking: where it came from and what it scored there.
#[derive(Default, Clone)]
struct Candidate {
    graph: f32,
    via: Option<Arc<str>>,
}

struct Ranked {
    entry: Arc<CatalogEntry>,
    components: ScoreComponents,
    score: f32,
    via: Option<Arc<str>>,
    /// The learned ranker's features (zeros on the static path).
    features: crate::learn::RankFeatures,
}

/// Everything the shared ranking stages need for one request.
struct RankRequest {
    query: Option<Vec<f32>>,
    candidates: HashMap<Arc<str>, Candidate>,
    exclude: HashSet<Arc<str>>,
    filters: HardFilters,
    limit: usize,
    /// Positive history (for "similar to X" reasons), newest first.
    history: Vec<Arc<CatalogEntry>>,
    intent: Option<String>,
    fallback_reason: &'static str,
    /// The learned sources' view of the user (personalised requests with learning on).
    learned: Option<LearnedInputs>,
}

/// A candidate with its item-side signals and its (ordinal, trend) lookup.
type CandidateRow = (
    ((Arc<CatalogEntry>, Candidate), ItemSignals),
    (Option<u32>, f32),
);

/// What the learned ranking needs beyond the candidates.
struct LearnedInputs {
    signals: UserSignals,
    /// Latest positive items (ordinals), newest first.
    recent: Vec<u32>,
    /// The history as (action, id), newest first, for the reasons.
    history: Vec<(Action, Arc<str>)>,
    /// The model of this request (one, even if a new one is swapped in meanwhile).
    model: Arc<crate::learn::TrainedModel>,
}

#[derive(Default, Clone)]
struct HardFilters {
    max_maturity: Option<Maturity>,
    exclude_genres: Vec<String>,
    language: Option<String>,
    /// Ontology audience filter (e.g. family-friendly).
    audience: Option<SemanticFilter>,
    /// Requested genre or theme, expanded to every genre under it.
    genres_any: Option<Vec<String>>,
}

impl HardFilters {
    fn admits(&self, e: &CatalogEntry) -> bool {
        let maturity_ok = match (self.max_maturity, e.item.maturity) {
            (None, _) => true,
            (Some(max), Some(m)) => m <= max,
            // Strict family mode admits only items rated for everyone.
            (Some(max), None) => max != Maturity::All,
        };
        let language_ok = match (&self.language, &e.item.language) {
            (Some(want), Some(have)) => {
                have.eq_ignore_ascii_case(want)
                    || have.to_lowercase().starts_with(&format!("{want}-"))
            }
            _ => true,
        };
        maturity_ok
            && language_ok
            && !e.genres.iter().any(|g| self.exclude_genres.contains(g))
            && self
                .audience
                .as_ref()
                .is_none_or(|f| f.admits(&e.genres, e.item.maturity))
            && self
                .genres_any
                .as_ref()
                .is_none_or(|wanted| e.genres.iter().any(|g| wanted.contains(g)))
    }
}

/// Where vector search runs: shards in this process, or shard nodes behind the internal RPC.
enum VectorIndex {
    Local(Arc<ShardedIndex>),
    Cluster(Arc<ClusterIndex>),
}

/// A router's position in each shard's change feed, and the deletions it has applied (so an
/// older copy of a deleted item read again from a lagging replica stays deleted).
#[derive(Default)]
struct FeedState {
    cursors: Vec<Option<Cursor>>,
    removed: HashMap<Arc<str>, u64>,
}

pub struct Engine {
    config: Config,
    catalog: Catalog,
    index: VectorIndex,
    feed: Mutex<FeedState>,
    /// Items whose `SIMILAR_TO` edges were computed while shards were missing; recomputed
    /// once every shard answers again.
    graph_backlog: Mutex<HashSet<Arc<str>>>,
    backends: Backends,
    embedder: Arc<dyn Embedder>,
    metrics: Arc<Metrics>,
    query_vectors: Mutex<HashMap<String, Arc<Vec<f32>>>>,
    /// Coalesces concurrent free-text intents into embedding batches.
    query_batcher: Batcher<String, Vec<f32>>,
    response_seq: AtomicU64,
    current_year: i32,
    /// The online-learning ranking policy (`None` when switched off).
    policy: Option<Arc<Policy>>,
    impressions: ImpressionLog,
    ontology: Ontology,
    intent_model: IntentModel,
    /// False while the background graph fill runs.
    graph_filled: Arc<tokio::sync::watch::Sender<bool>>,
    /// Seen sets, transitions, trend and the trained collaborative model and ranker.
    learner: Arc<Learner>,
}

/// Marks the graph fill finished however its task ends (done, failed, or dropped with its
/// runtime).
struct FillDone(Arc<tokio::sync::watch::Sender<bool>>);

impl Drop for FillDone {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// How far in the future an event's timestamp may be (clients' clocks drift).
pub const MAX_EVENT_CLOCK_SKEW_SECS: i64 = 300;

impl Engine {
    /// Opens the engine on the embedded default backends in `config.storage.data_dir`,
    /// loading the demo catalogue first when the store is empty and the config asks for it.
    pub async fn open_embedded(
        config: Config,
        embedder: Arc<dyn Embedder>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, EngineError> {
        let store = Arc::new(EmbeddedStore::open(&config.storage.data_dir)?);
        Self::open_on_store(config, store, embedder, metrics).await
    }

    /// Like [`Engine::open_embedded`], on an embedded store that is already open. The
    /// catalogue always lives in the embedded store; interactions, the item graph and the
    /// user cache move to ScyllaDB, Neo4j and Redis when configured.
    pub async fn open_on_store(
        config: Config,
        store: Arc<EmbeddedStore>,
        embedder: Arc<dyn Embedder>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, EngineError> {
        let cluster = match config.cluster.role() {
            Role::Router => Some(Self::connect_cluster(&config, embedder.dim(), &metrics).await),
            _ => None,
        };
        // A router loads the demo only into an empty cluster (it then seeds the shard nodes).
        let cluster_empty = match &cluster {
            Some(c) => c.item_count() == 0,
            None => true,
        };
        if config.demo.load_if_empty && cluster_empty && !store.has_items()? {
            crate::demo::load(&config, &store, embedder.as_ref(), &metrics).await?;
        }
        let interactions: Arc<dyn InteractionStore> = if config.scylla.nodes.is_empty() {
            store.clone()
        } else {
            let scylla = ScyllaInteractionStore::new(config.scylla.clone())?;
            if let Err(e) = scylla.connect().await {
                tracing::warn!(error = %e, "CQL cluster unreachable at start; serving without history until it returns");
            }
            Arc::new(scylla)
        };
        let in_process_graph = config
            .neo4j
            .uri
            .is_empty()
            .then(|| Arc::new(InProcessItemGraph::new(config.graph.min_quality)));
        let graph: Arc<dyn ItemGraph> = match &in_process_graph {
            Some(g) => g.clone(),
            None => {
                tracing::info!(uri = %config.neo4j.uri, "item graph in Neo4j");
                let neo4j = Neo4jGraph::new(&config.neo4j, config.graph.min_quality).await?;
                if let Err(e) = neo4j.ensure_schema().await {
                    tracing::warn!(error = %e, "Neo4j unreachable at start; serving without graph candidates until it returns");
                }
                Arc::new(neo4j)
            }
        };
        let backends = Backends {
            items: store.clone(),
            interactions,
            graph,
            user_cache: user_cache(&config)?,
        };
        let engine = Self::open_with(config, backends, embedder, metrics, cluster).await?;
        if let Some(graph) = &in_process_graph {
            graph.insert_nodes(
                engine
                    .catalog
                    .all()
                    .iter()
                    .map(|e| content_node(e, Vec::new()))
                    .collect(),
            );
        }
        // Rebuild popularity (and the in-process co-engagement edges) from the event log.
        let mut previous: Vec<Arc<str>> = Vec::new();
        let mut positives: Vec<Arc<str>> = Vec::new();
        let mut user = String::new();
        let learning = engine.config.learning.clone();
        let replayed = engine
            .backends
            .interactions
            .replay(&mut |event| {
                if event.user_id != user {
                    user = event.user_id.clone();
                    previous.clear();
                    positives.clear();
                }
                if let Some(entry) = engine.catalog.get(&event.item_id) {
                    let first = engine.learner.observe(
                        &event.user_id,
                        &entry.id,
                        event.action,
                        event.timestamp,
                        &positives,
                    );
                    // One vote per user and item, as when the events arrived.
                    if first {
                        engine.catalog.record_engagement(&entry.id, event.action);
                    }
                    if learning.is_positive(event.action) {
                        positives.insert(0, entry.id.clone());
                        positives.truncate(learning.transitions.window.max(1));
                    }
                    if first && event.action.preference_weight() > 0.0 {
                        if let Some(graph) = &in_process_graph {
                            graph.link_after(previous.iter().rev(), &entry.id);
                        }
                        previous.push(entry.id.clone());
                        if previous.len() > 5 {
                            previous.remove(0);
                        }
                    }
                }
            })
            .await;
        if let Err(e) = replayed {
            tracing::warn!(error = %e, "event log not replayed; popularity starts empty");
        }
        Self::spawn_training(&engine);
        // The fill holds the engine only while it works on a batch, so dropping the engine
        // (a test, the ingest tool) is never held up by it.
        let syncing = Arc::downgrade(&engine);
        engine.graph_filled.send_replace(false);
        let done = FillDone(engine.graph_filled.clone());
        tokio::spawn(async move {
            let _done = done;
            if let Err(e) = Self::sync_graph(syncing).await {
                tracing::warn!(error = %e, "item graph not filled; it is retried at the next start");
            }
        });
        Ok(engine)
    }

    /// Fills the item graph with the catalogue and its `SIMILAR_TO` edges when it is
    /// behind (always for the in-process graph, once for a fresh Neo4j), in the background.
    async fn sync_graph(engine: std::sync::Weak<Self>) -> Result<(), EngineError> {
        let Some(this) = engine.upgrade() else {
            return Ok(());
        };
        let k = this.config.graph.similar_edges;
        let graph = this.backends.graph.clone();
        let behind = !graph.persistent() || graph.content_count().await? < this.catalog.len();
        if !behind || (k == 0 && !graph.persistent()) {
            return Ok(());
        }
        let started = Instant::now();
        let entries = this.catalog.all();
        drop(this);
        for chunk in entries.chunks(GRAPH_SYNC_BATCH) {
            let Some(this) = engine.upgrade() else {
                return Ok(());
            };
            let nodes = this.content_nodes(chunk.to_vec(), k).await?;
            drop(this);
            graph.upsert_content(nodes).await?;
        }
        tracing::info!(
            items = entries.len(),
            took_ms = started.elapsed().as_millis() as u64,
            backend = graph.name(),
            "item graph filled"
        );
        Ok(())
    }

    /// Fills the item graph now, as [`Engine::open_on_store`] does in the background (for
    /// engines opened with [`Engine::open`], e.g. the offline evaluation).
    pub async fn fill_graph(self: &Arc<Self>) -> Result<(), EngineError> {
        Self::sync_graph(Arc::downgrade(self)).await
    }

    /// False while the background graph fill started at open runs.
    pub fn is_graph_filled(&self) -> bool {
        *self.graph_filled.borrow()
    }

    /// Resolves once the background graph fill started at open has finished (at once when
    /// there was none): until then graph candidates may still appear.
    pub async fn graph_filled(&self) {
        let mut filled = self.graph_filled.subscribe();
        let _ = filled.wait_for(|done| *done).await;
    }

    /// Graph nodes for `entries`, each with `SIMILAR_TO` edges to its `k` nearest items.
    async fn content_nodes(
        self: &Arc<Self>,
        entries: Vec<Arc<CatalogEntry>>,
        k: usize,
    ) -> Result<Vec<ContentNode>, EngineError> {
        let nearest = move |hits: Vec<crate::index::Hit>, own: &Arc<str>| -> Vec<(Arc<str>, f32)> {
            hits.into_iter()
                .filter(|hit| &hit.item_id != own)
                .take(k)
                .map(|hit| (hit.item_id, hit.score))
                .collect()
        };
        match &self.index {
            _ if k == 0 => Ok(entries
                .iter()
                .map(|e| content_node(e, Vec::new()))
                .collect()),
            VectorIndex::Local(index) => {
                let index = index.clone();
                on_rayon(move || {
                    entries
                        .par_iter()
                        .map(|e| {
                            let hits = index.search(&e.vector_f32(), k + 1, None);
                            content_node(e, nearest(hits, &e.id))
                        })
                        .collect()
                })
                .await
            }
            VectorIndex::Cluster(cluster) => {
                use futures::StreamExt;
                let nodes: Vec<(ContentNode, bool)> = futures::stream::iter(entries)
                    .map(|e| async move {
                        let outcome = cluster.search_background(&e.vector_f32(), k + 1).await;
                        let partial = !outcome.missing_shards.is_empty();
                        (content_node(&e, nearest(outcome.hits, &e.id)), partial)
                    })
                    .buffered(8)
                    .collect()
                    .await;
                let mut backlog = self.graph_backlog.lock().expect("backlog lock");
                Ok(nodes
                    .into_iter()
                    .map(|(node, partial)| {
                        if partial {
                            backlog.insert(node.id.clone());
                        }
                        node
                    })
                    .collect())
            }
        }
    }

    /// Vector search over every shard, here or on the shard nodes.
    async fn search_vectors(
        self: &Arc<Self>,
        query: Vec<f32>,
        k: usize,
    ) -> Result<SearchOutcome, EngineError> {
        match &self.index {
            VectorIndex::Local(index) => {
                let index = index.clone();
                on_rayon(move || SearchOutcome {
                    hits: index.search(&query, k, None),
                    missing_shards: Vec::new(),
                })
                .await
            }
            VectorIndex::Cluster(cluster) => Ok(cluster.search(&query, k, None).await),
        }
    }

    /// Shards of the index (local or across the cluster).
    pub fn shard_count(&self) -> usize {
        match &self.index {
            VectorIndex::Local(index) => index.shards().len(),
            VectorIndex::Cluster(cluster) => cluster.total_shards(),
        }
    }

    /// Reads every shard's change feed from the start into the catalogue; returns the
    /// records read.
    async fn load_from_cluster(
        cluster: &ClusterIndex,
        catalog: &Catalog,
        feed: &Mutex<FeedState>,
    ) -> usize {
        let mut read = 0;
        for shard in 0..cluster.total_shards() {
            match Self::follow_feed(cluster, catalog, feed, shard).await {
                Ok((n, _, _)) => read += n,
                Err(e) => tracing::warn!(shard, error = %e, "shard's items not loaded yet"),
            }
        }
        read
    }

    /// Applies one shard's changes since the last read (re-reading a window) to the
    /// catalogue. Returns the records read, the entries added or replaced and the ids
    /// removed. The feed state is locked only while a fetched page is applied, so deletes
    /// made meanwhile are kept.
    async fn follow_feed(
        cluster: &ClusterIndex,
        catalog: &Catalog,
        feed: &Mutex<FeedState>,
        shard: usize,
    ) -> Result<(usize, Vec<Arc<CatalogEntry>>, Vec<Arc<str>>), StoreError> {
        let mut after = match &feed.lock().expect("feed lock").cursors[shard] {
            None => Cursor::default(),
            Some(c) => Cursor {
                version: c.version.saturating_sub(CHANGE_WINDOW_US),
                id: String::new(),
            },
        };
        let (mut read, mut upserted, mut removed) = (0, Vec::new(), Vec::new());
        loop {
            let page = cluster.changes(shard as u32, &after).await?;
            let full = page.len() >= crate::cluster::CHANGES_PAGE;
            let Some(last) = page.last() else { break };
            after = Cursor {
                version: last.version,
                id: last.id.clone(),
            };
            read += page.len();
            let mut feed = feed.lock().expect("feed lock");
            for record in page {
                let held = catalog.get(&record.id).map(|e| e.version);
                let deleted = feed.removed.get(record.id.as_str()).copied();
                if held.max(deleted).is_some_and(|v| v >= record.version) {
                    continue;
                }
                match record.item.as_deref().map(serde_json::from_slice::<Item>) {
                    Some(Ok(item)) => {
                        let id =
                            catalog.insert(CatalogEntry::new(item, record.version, &record.vector));
                        upserted.extend(catalog.get(&id));
                    }
                    Some(Err(e)) => {
                        tracing::error!(item = %record.id, error = %e, "unreadable item record skipped")
                    }
                    None => {
                        let id: Arc<str> = Arc::from(record.id.as_str());
                        catalog.remove(&id);
                        feed.removed.insert(id.clone(), record.version);
                        removed.push(id);
                    }
                }
            }
            let reached = feed.cursors[shard]
                .clone()
                .unwrap_or_default()
                .max(after.clone());
            feed.cursors[shard] = Some(reached);
            if !full {
                break;
            }
        }
        Ok((read, upserted, removed))
    }

    /// Writes the items of the local store to an empty cluster (a router started on data
    /// loaded before the cluster existed, or the demo catalogue).
    async fn seed_cluster(
        cluster: &ClusterIndex,
        catalog: &Catalog,
        stored: Vec<StoredItem>,
    ) -> Result<(), EngineError> {
        tracing::info!(
            items = stored.len(),
            "seeding the empty cluster from the local item store"
        );
        for chunk in stored.chunks(SEED_BATCH) {
            let records = chunk
                .iter()
                .map(|s| item_record(&s.item, cluster.next_version(), s.vector.clone()))
                .collect::<Vec<_>>();
            cluster.write(records.clone()).await?;
            for (s, r) in chunk.iter().zip(records) {
                catalog.insert(CatalogEntry::new(s.item.clone(), r.version, &s.vector));
            }
        }
        Ok(())
    }

    /// Follows the shard nodes' change feeds (writes through other routers, items of shards
    /// that were down at start) and keeps the catalogue and the item graph in step.
    fn spawn_feed(engine: &Arc<Self>) {
        let weak = Arc::downgrade(engine);
        let every = Duration::from_millis(engine.config.cluster.sync_interval_ms.max(10));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(engine) = weak.upgrade() else { return };
                let VectorIndex::Cluster(cluster) = &engine.index else {
                    return;
                };
                if cluster.unavailable_shards().is_empty() {
                    let backlog: Vec<Arc<str>> = engine
                        .graph_backlog
                        .lock()
                        .expect("backlog lock")
                        .drain()
                        .collect();
                    if !backlog.is_empty() {
                        let entries = engine.catalog.get_many(backlog.iter().map(|id| &**id));
                        tracing::info!(
                            items = entries.len(),
                            "recomputing graph edges made while shards were missing"
                        );
                        engine.update_graph(entries).await;
                    }
                }
                for shard in 0..cluster.total_shards() {
                    let result =
                        Self::follow_feed(cluster, &engine.catalog, &engine.feed, shard).await;
                    let (upserted, removed) = match result {
                        Ok((_, u, r)) => (u, r),
                        Err(_) => continue,
                    };
                    for id in removed {
                        if let Err(e) = engine.backends.graph.remove_content(&id).await {
                            tracing::warn!(error = %e, "item not removed from the graph");
                        }
                    }
                    if !upserted.is_empty() {
                        engine.update_graph(upserted).await;
                    }
                }
            }
        });
    }

    /// Writes `entries` and their nearest neighbours to the item graph (best effort).
    async fn update_graph(self: &Arc<Self>, entries: Vec<Arc<CatalogEntry>>) {
        let result = match self
            .content_nodes(entries, self.config.graph.similar_edges)
            .await
        {
            Ok(nodes) => self
                .backends
                .graph
                .upsert_content(nodes)
                .await
                .map_err(EngineError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "item graph not updated");
            self.metrics.count_degraded("graph");
        }
    }

    /// Items whose graph edges wait for missing shards to return.
    pub fn graph_backlog(&self) -> usize {
        self.graph_backlog.lock().expect("backlog lock").len()
    }

    /// Opens the engine over any backends: loads the catalogue and opens every shard
    /// (reusing snapshots in the data directory). A router connects to its shard nodes.
    pub async fn open(
        config: Config,
        backends: Backends,
        embedder: Arc<dyn Embedder>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, EngineError> {
        let cluster = match config.cluster.role() {
            Role::Router => Some(Self::connect_cluster(&config, embedder.dim(), &metrics).await),
            _ => None,
        };
        Self::open_with(config, backends, embedder, metrics, cluster).await
    }

    async fn connect_cluster(
        config: &Config,
        dim: usize,
        metrics: &Arc<Metrics>,
    ) -> Arc<ClusterIndex> {
        let cluster = ClusterIndex::connect(config, dim, metrics.clone()).await;
        if !cluster.wait_until_complete(CLUSTER_START_WAIT).await {
            tracing::warn!(
                shards = ?cluster.unavailable_shards(),
                "starting with shards that have no replica up; their items load when one returns"
            );
        }
        cluster
    }

    async fn open_with(
        config: Config,
        backends: Backends,
        embedder: Arc<dyn Embedder>,
        metrics: Arc<Metrics>,
        cluster: Option<Arc<ClusterIndex>>,
    ) -> Result<Arc<Self>, EngineError> {
        let started = Instant::now();
        let stored = backends.items.load_all().await?;
        let params = IndexParams {
            dim: embedder.dim(),
            m: config.index.m,
            ef_construction: config.index.ef_construction,
            ef_search: config.index.ef_search,
            rebuild_threshold: config.index.rebuild_threshold,
        };
        let catalog = Catalog::default();
        let feed = Mutex::new(FeedState::default());
        let index = match cluster {
            Some(cluster) => {
                feed.lock().expect("feed lock").cursors = vec![None; cluster.total_shards()];
                let loaded = Self::load_from_cluster(&cluster, &catalog, &feed).await;
                if loaded == 0 && !stored.is_empty() {
                    Self::seed_cluster(&cluster, &catalog, stored).await?;
                }
                tracing::info!(
                    items = catalog.len(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "catalogue loaded from the shard nodes"
                );
                VectorIndex::Cluster(cluster)
            }
            None => {
                let shard_count = config.index.shards;
                let mut per_shard: Vec<Vec<ShardItem>> = vec![Vec::new(); shard_count];
                for s in stored {
                    let id = catalog.insert(CatalogEntry::new(s.item, s.version, &s.vector));
                    per_shard[crate::index::shard_of(&id, shard_count)]
                        .push((id, s.version, s.vector));
                }
                let snapshot_dir = config.storage.data_dir.join(format!(
                    "index-d{}-m{}-efc{}",
                    params.dim, params.m, params.ef_construction
                ));
                let shards: Vec<Arc<dyn Shard>> = on_rayon(move || {
                    per_shard
                        .into_par_iter()
                        .enumerate()
                        .map(|(i, items)| {
                            LocalShard::open(i, params, Some(&snapshot_dir), items)
                                as Arc<dyn Shard>
                        })
                        .collect()
                })
                .await?;
                let index = ShardedIndex::new(shards, params);
                for shard in index.shards() {
                    metrics.set_shard_items(shard.id(), shard.len());
                }
                tracing::info!(
                    items = catalog.len(),
                    shards = shard_count,
                    took_ms = started.elapsed().as_millis() as u64,
                    "index loaded"
                );
                VectorIndex::Local(Arc::new(index))
            }
        };
        let current_year = current_year();
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
        let policy = config.policy.enabled.then(|| {
            let policy = Policy::new(
                PolicySettings {
                    epsilon: config.policy.epsilon,
                    top_k: config.policy.top_k,
                    prior_strength: f64::from(config.policy.prior_strength),
                    frozen: config.policy.frozen,
                },
                static_prior(),
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64),
            );
            match policy.restore(&policy_state_path(&config)) {
                Ok(true) => tracing::info!(
                    updates = policy.total_updates(),
                    "ranking policy restored"
                ),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "ranking policy state unreadable; starting from the prior"),
            }
            Arc::new(policy)
        });
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
        let impressions = ImpressionLog::new(config.policy.impression_capacity);
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
        let engine = Arc::new(Self {
            config,
            catalog,
            index,
            backends,
            embedder,
            metrics,
            query_vectors: Mutex::new(HashMap::new()),
            query_batcher,
            response_seq: AtomicU64::new(0),
            current_year,
            policy,
            impressions,
            ontology,
            intent_model,
            graph_filled: Arc::new(tokio::sync::watch::Sender::new(true)),
            feed,
            graph_backlog: Mutex::new(HashSet::new()),
            learner,
        });
        if matches!(engine.index, VectorIndex::Cluster(_)) {
            Self::spawn_feed(&engine);
        }
        Ok(engine)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The storage backends the engine runs on.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// The in-process index (`None` on a router, whose shards are on other nodes).
    pub fn local_index(&self) -> Option<&ShardedIndex> {
        match &self.index {
            VectorIndex::Local(index) => Some(index.as_ref()),
            VectorIndex::Cluster(_) => None,
        }
    }

    /// Each external dependency (ScyllaDB, Neo4j, Redis when configured) and whether it
    /// answers now, for `/readyz`.
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
        if let VectorIndex::Cluster(cluster) = &self.index {
            let missing = cluster.unavailable_shards();
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

    pub fn catalog_len(&self) -> usize {
        self.catalog.len()
    }

    pub fn get_item(&self, id: &str) -> Result<Item, EngineError> {
        validate_item_id(id)?;
        self.catalog.get(id).map(|e| e.item.clone()).ok_or_else(|| {
            EngineError::not_found("item_not_found", format!("no item with id '{id}'"))
        })
    }

    /// Embeds texts on the blocking pool.
    async fn embed(&self, texts: Vec<String>, path: &str) -> Result<Vec<Vec<f32>>, EngineError> {
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

    fn next_response_id(&self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        format!(
            "{nanos:016x}{:06x}",
            self.response_seq.fetch_add(1, Ordering::Relaxed) & 0xff_ffff
        )
    }

    /// Personalised recommendations for a validated request.
    pub async fn recommend(
        self: &Arc<Self>,
        req: &NormalisedRequest,
    ) -> Result<RecommendationResponse, EngineError> {
        let cfg = &self.config.ranking;
        let filters = self.hard_filters(req)?;
        let context_started = Instant::now();
        let intent = match &req.q {
            Some(q) => Some(self.embed_query(q).await?),
            None => None,
        };
        let intent_summary = self.intent_model.infer(
            req.q.as_deref(),
            intent.as_deref().map(Vec::as_slice),
            req.time_of_day,
            req.device,
        );
        self.metrics.observe_stage(Stage::Context, context_started);

        let mut degraded = Vec::new();
        let (history, cached_vector) = match &req.user_id {
            Some(user) => {
                let (history, cached) = tokio::join!(
                    self.backends.interactions.recent(user, cfg.history_limit),
                    self.backends.user_cache.get(user)
                );
                self.metrics.count_user_cache(cached.is_some());
                let history = history.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "interaction store failed; serving without history");
                    self.metrics.count_degraded("interactions");
                    degraded.push("interactions".to_string());
                    Vec::new()
                });
                (history, cached)
            }
            None => (Vec::new(), None),
        };
        let history: Vec<(Interaction, Arc<CatalogEntry>)> = history
            .into_iter()
            .filter_map(|ev| self.catalog.get(&ev.item_id).map(|e| (ev, e)))
            .collect();
        let user_vector = match cached_vector {
            Some(v) => Some(v),
            None => {
                let v = user_vector(&history, cfg.history_half_life_days);
                if let (Some(v), Some(user)) = (&v, &req.user_id) {
                    self.backends.user_cache.put(user, v).await;
                }
                v
            }
        };
        let learned = match (&req.user_id, self.learner.enabled()) {
            (Some(_), true) => {
                let history: Vec<(Action, Arc<str>)> = history
                    .iter()
                    .map(|(ev, e)| (ev.action, e.id.clone()))
                    .collect();
                let model = self.learner.model();
                let (signals, recent) = self.learner.signals(
                    &model,
                    &history,
                    self.config.learning.candidates_per_source,
                );
                Some(LearnedInputs {
                    signals,
                    recent,
                    history,
                    model,
                })
            }
            _ => None,
        };
        let cold_start =
            user_vector.is_none() && learned.as_ref().is_none_or(|l| l.signals.is_empty());
        let query = match (intent.as_deref(), user_vector) {
            (Some(q), Some(u)) => {
                let mut blended: Vec<f32> = q
                    .iter()
                    .zip(&u)
                    .map(|(a, b)| cfg.query_blend * a + (1.0 - cfg.query_blend) * b)
                    .collect();
                normalise(&mut blended).then_some(blended)
            }
            (Some(q), None) => Some(q.clone()),
            (None, u) => u,
        };

        // Candidate generation: vector search and graph neighbours concurrently.
        let candidates_started = Instant::now();
        let seeds = graph_seeds(&history, cfg.history_half_life_days);
        let ann = async {
            let Some(q) = query.clone() else {
                return Ok(SearchOutcome::default());
            };
            let started = Instant::now();
            let k = cfg.ann_candidates.max(req.limit as usize * 4);
            let outcome = self.search_vectors(q, k).await;
            self.metrics.observe_stage(Stage::VectorSearch, started);
            outcome
        };
        let graph = async {
            if seeds.is_empty() {
                return Ok(Vec::new());
            }
            let started = Instant::now();
            let n = self
                .backends
                .graph
                .neighbours(&seeds, cfg.graph_candidates)
                .await;
            self.metrics.observe_stage(Stage::Graph, started);
            n
        };
        let (ann, graph) = tokio::join!(ann, graph);
        let ann = ann?;
        let missing_shards = ann.missing_shards;
        let mut candidates = self.merge_candidates(ann.hits, graph, &mut degraded);
        if let Some(l) = &learned {
            let per_source = self.config.learning.candidates_per_source;
            let trending = self.learner.trending(per_source);
            let ordinals: Vec<u32> = l
                .signals
                .collaborative
                .top()
                .iter()
                .chain(l.signals.transition.top())
                .chain(trending.iter().take(per_source))
                .copied()
                .collect();
            for id in self.learner.ids_of(&ordinals) {
                candidates.entry(id).or_default();
            }
        }
        let fallback_reason = if candidates.is_empty() {
            // Cold start without intent: what is popular, filtered to the context below.
            for id in self
                .catalog
                .popular()
                .iter()
                .take(cfg.ann_candidates.max(req.limit as usize * 4))
            {
                candidates.entry(id.clone()).or_default();
            }
            "popular right now"
        } else {
            "recommended for you"
        };
        if filters.audience.is_some() || filters.genres_any.is_some() {
            // Selective ontology filters can reject every nearby candidate: widen the pool
            // with popular items, which the ranker still orders by relevance.
            for id in self.catalog.popular().iter().take(FILTER_BACKFILL) {
                candidates.entry(id.clone()).or_default();
            }
        }
        self.metrics
            .observe_stage(Stage::Candidates, candidates_started);

        // Everything the user has seen, however long ago (the history covers only the latest
        // events, the seen sets all of them).
        let mut exclude: HashSet<Arc<str>> = history.iter().map(|(_, e)| e.id.clone()).collect();
        exclude.extend(
            self.learner
                .seen_filter(req.user_id.as_deref())
                .into_items(),
        );
        let positive_history = history
            .iter()
            .filter(|(ev, _)| ev.action.preference_weight() > 0.0)
            .map(|(_, e)| e.clone())
            .collect();
        let response = self
            .rank(RankRequest {
                query,
                candidates,
                exclude,
                filters,
                limit: req.limit as usize,
                history: positive_history,
                intent: req.q.clone(),
                fallback_reason,
                learned,
            })
            .await?;
        let policy_started = Instant::now();
        let recommendation_id = self.next_response_id();
        let items = self.apply_policy(&recommendation_id, req, response, cold_start);
        self.metrics.observe_stage(Stage::Policy, policy_started);
        Ok(RecommendationResponse {
            recommendation_id,
            user_id: req.user_id.clone(),
            items,
            cold_start,
            intent: intent_summary,
            degraded,
            partial: !missing_shards.is_empty(),
            missing_shards,
        })
    }

    /// Items similar to `item_id`, excluding what `user_id` (if any) has already seen.
    pub async fn similar(
        self: &Arc<Self>,
        item_id: &str,
        limit: u32,
        user_id: Option<&str>,
    ) -> Result<RecommendationResponse, EngineError> {
        validate_item_id(item_id)?;
        if let Some(u) = user_id {
            validate_user_id(u)?;
        }
        let limit = shared_types::effective_limit(Some(limit))? as usize;
        let seed = self.catalog.get(item_id).ok_or_else(|| {
            EngineError::not_found("item_not_found", format!("no item with id '{item_id}'"))
        })?;
        let cfg = &self.config.ranking;
        let query = seed.vector_f32();
        let candidates_started = Instant::now();
        let seeds = [(seed.id.clone(), 1.0)];
        let ann = async {
            let started = Instant::now();
            let k = cfg.ann_candidates.max(limit * 4) + 1;
            let outcome = self.search_vectors(query.clone(), k).await;
            self.metrics.observe_stage(Stage::VectorSearch, started);
            outcome
        };
        let history = async {
            match user_id {
                Some(u) => {
                    self.backends
                        .interactions
                        .recent(u, cfg.history_limit)
                        .await
                }
                None => Ok(Vec::new()),
            }
        };
        let (ann, graph, history) = tokio::join!(
            ann,
            self.backends.graph.neighbours(&seeds, cfg.graph_candidates),
            history
        );
        let mut degraded = Vec::new();
        let ann = ann?;
        let missing_shards = ann.missing_shards;
        let candidates = self.merge_candidates(ann.hits, graph, &mut degraded);
        self.metrics
            .observe_stage(Stage::Candidates, candidates_started);
        let mut exclude: HashSet<Arc<str>> = HashSet::from([seed.id.clone()]);
        exclude.extend(self.learner.seen_filter(user_id).into_items());
        match history {
            Ok(h) => exclude.extend(
                self.catalog
                    .get_many(h.iter().map(|e| e.item_id.as_str()))
                    .into_iter()
                    .map(|e| e.id.clone()),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "interaction store failed");
                self.metrics.count_degraded("interactions");
                degraded.push("interactions".to_string());
            }
        }
        let items = self
            .rank(RankRequest {
                query: Some(query),
                candidates,
                exclude,
                filters: HardFilters::default(),
                limit,
                history: vec![seed.clone()],
                intent: None,
                fallback_reason: "similar items",
                learned: None,
            })
            .await?;
        Ok(RecommendationResponse {
            recommendation_id: self.next_response_id(),
            user_id: user_id.map(str::to_string),
            items,
            cold_start: false,
            intent: None,
            degraded,
            partial: !missing_shards.is_empty(),
            missing_shards,
        })
    }

    /// The request's hard filters, the ontology's included; unknown names are client errors.
    fn hard_filters(&self, req: &NormalisedRequest) -> Result<HardFilters, EngineError> {
        let audience = match req.audience.as_deref() {
            Some(name) => Some(self.ontology.filter(name).ok_or_else(|| {
                EngineError::invalid(
                    "unknown_audience",
                    format!(
                        "unknown audience '{name}'; known: {}",
                        self.ontology.filter_names().join(", ")
                    ),
                )
            })?),
            None => None,
        };
        let genres_any = match req.genre.as_deref() {
            Some(name) => Some(
                self.ontology
                    .genres_under(name)
                    .ok_or_else(|| {
                        EngineError::invalid(
                            "unknown_genre",
                            format!(
                                "unknown genre or theme '{name}'; known: {}",
                                self.ontology.theme_names().join(", ")
                            ),
                        )
                    })?
                    .to_vec(),
            ),
            None => None,
        };
        Ok(HardFilters {
            max_maturity: req.max_maturity,
            exclude_genres: req.exclude_genres.clone(),
            language: req.language.clone(),
            audience,
            genres_any,
        })
    }

    /// The policy stage: the bandit picks which of the top candidates leads (the rest keep
    /// their order), and the impression is logged for reward attribution.
    fn apply_policy(
        &self,
        recommendation_id: &str,
        req: &NormalisedRequest,
        mut items: Vec<ScoredItem>,
        cold_start: bool,
    ) -> Vec<ScoredItem> {
        let mut features: Vec<Features> = items
            .iter()
            .map(|i| features_of(&i.components, i.score, req.q.is_some(), cold_start))
            .collect();
        let segment = self.segment(req);
        let lead = match &self.policy {
            Some(policy) if items.len() > 1 => {
                let candidates: Vec<Features> = features
                    .iter()
                    .take(policy.settings().top_k)
                    .copied()
                    .collect();
                let d = policy.decide(&segment, &candidates);
                self.metrics.count_policy_decision(d.explored);
                items[..=d.chosen].rotate_right(1);
                features[..=d.chosen].rotate_right(1);
                Some(LeadDecision {
                    candidates,
                    chosen: d.chosen,
                    propensity: d.propensity,
                })
            }
            _ => None,
        };
        let shown = items
            .iter()
            .zip(features)
            .map(|(i, x)| (Arc::from(i.item.id.as_str()), x))
            .collect();
        self.impressions.record(
            recommendation_id.to_string(),
            Impression {
                user: req.user_id.clone(),
                segment,
                shown,
                lead,
            },
        );
        items
    }

    /// The policy segment of a request, as configured by `policy.segment_by`.
    fn segment(&self, req: &NormalisedRequest) -> String {
        match self.config.policy.segment_by.as_str() {
            "device" => format!("device:{}", req.device.map_or("unknown", |d| d.as_str())),
            "time_of_day" => format!(
                "time_of_day:{}",
                req.time_of_day.map_or("unknown", |t| t.as_str())
            ),
            _ => "global".into(),
        }
    }

    fn reward_for(&self, action: Action) -> f32 {
        let p = &self.config.policy;
        match action {
            Action::Complete => p.reward_complete,
            Action::Like => p.reward_like,
            Action::View => p.reward_view,
            Action::Skip => p.reward_skip,
            Action::Dislike => p.reward_dislike,
        }
    }

    /// Attributes events that reference a response to its impression and teaches the policy.
    fn learn_from(&self, events: &[Interaction]) {
        for e in events {
            let Some(id) = e.recommendation_id.as_deref() else {
                continue;
            };
            let reward = self.reward_for(e.action);
            let Some(attribution) = self.impressions.reward(id, &e.user_id, &e.item_id, reward)
            else {
                continue;
            };
            self.metrics.count_policy_reward(reward);
            if let Some(policy) = &self.policy {
                policy.update(&attribution.segment, &attribution.features, reward);
                let every = self.config.policy.save_every.max(1);
                if !policy.settings().frozen && policy.total_updates() % every == 0 {
                    let (policy, path) = (policy.clone(), policy_state_path(&self.config));
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = policy.save(&path) {
                            tracing::warn!(error = %e, "ranking policy state not saved");
                        }
                    });
                }
            }
        }
    }

    /// Saves the policy state now (at shutdown).
    pub fn persist_policy(&self) -> std::io::Result<()> {
        match &self.policy {
            Some(policy) => policy.save(&policy_state_path(&self.config)),
            None => Ok(()),
        }
    }

    /// The policy's state and off-policy estimates over the remembered decisions: the
    /// learned policy, the static ranker, and optionally candidate `weights`.
    pub fn policy_report(&self, candidate: Option<&Features>) -> PolicyReport {
        let log = self.impressions.decisions();
        let top_k = self.config.policy.top_k;
        let prior = static_prior();
        let learned = self.policy.as_ref().map(|p| {
            policy::ips(&log, |segment, c| {
                p.greedy(segment, &c[..c.len().min(top_k)])
            })
        });
        PolicyReport {
            enabled: self.policy.is_some(),
            frozen: self.config.policy.frozen,
            epsilon: self.config.policy.epsilon,
            updates: self.policy.as_ref().map_or(0, |p| p.total_updates()),
            weights: self.policy.as_ref().map(|p| {
                p.segments()
                    .into_iter()
                    .map(|s| {
                        let w = p.weights(&s);
                        (s, named_features(&w))
                    })
                    .collect()
            }),
            decisions: log.len(),
            observed_reward: policy::observed_reward(&log),
            learned,
            static_ranker: policy::ips(&log, |_, c| policy::linear_choice(&prior, c, top_k)),
            candidate: candidate
                .map(|w| policy::ips(&log, |_, c| policy::linear_choice(w, c, top_k))),
        }
    }

    /// Unites vector hits and graph neighbours (graph scores scaled to [0, 1]); a failed
    /// graph lookup degrades the answer instead of failing it.
    fn merge_candidates(
        &self,
        ann: Vec<crate::index::Hit>,
        graph: Result<Vec<crate::store::GraphNeighbour>, crate::store::StoreError>,
        degraded: &mut Vec<String>,
    ) -> HashMap<Arc<str>, Candidate> {
        let mut candidates: HashMap<Arc<str>, Candidate> = HashMap::new();
        for hit in ann {
            candidates.entry(hit.item_id).or_default();
        }
        match graph {
            Ok(neighbours) => {
                let max = neighbours.first().map_or(1.0, |n| n.score.max(1e-6));
                for n in neighbours {
                    let c = candidates.entry(n.item_id).or_default();
                    c.graph = n.score / max;
                    c.via = Some(n.via);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "item graph failed; serving vector candidates only");
                self.metrics.count_degraded("graph");
                degraded.push("graph".to_string());
            }
        }
        candidates
    }

    /// Filter, rank, diversify and explain: the stages shared by every endpoint.
    async fn rank(self: &Arc<Self>, req: RankRequest) -> Result<Vec<ScoredItem>, EngineError> {
        let engine = self.clone();
        on_rayon(move || engine.rank_blocking(req)).await
    }

    fn rank_blocking(&self, req: RankRequest) -> Vec<ScoredItem> {
        let cfg: &RankingConfig = &self.config.ranking;
        let filter_started = Instant::now();
        let entries: Vec<(Arc<CatalogEntry>, Candidate)> = {
            let ids: Vec<(&Arc<str>, &Candidate)> = req
                .candidates
                .iter()
                .filter(|(id, _)| !req.exclude.contains(*id))
                .collect();
            let found = self.catalog.get_many(ids.iter().map(|(id, _)| &***id));
            // get_many skips unknown (deleted) ids, so re-pair by id.
            let by_id: HashMap<&str, &Candidate> = ids.iter().map(|(id, c)| (&***id, *c)).collect();
            found
                .into_iter()
                .filter(|e| req.filters.admits(e))
                .map(|e| {
                    let c = by_id.get(&*e.id).map(|c| (*c).clone()).unwrap_or_default();
                    (e, c)
                })
                .collect()
        };
        self.metrics.observe_stage(Stage::Filter, filter_started);

        let rank_started = Instant::now();
        let dot = best_dot();
        let learned = req.learned.as_ref();
        let looked_up = self.learner.lookup(entries.iter().map(|(e, _)| &*e.id));
        let seeds: Vec<Arc<CatalogEntry>> = match learned {
            Some(l) => self.catalog.get_many(
                self.learner
                    .ids_of(&l.recent[..l.recent.len().min(CONTENT_SEEDS)])
                    .iter()
                    .map(|id| &**id),
            ),
            None => Vec::new(),
        };
        let seed_vectors: Vec<Vec<f32>> = seeds.iter().map(|e| e.vector_f32()).collect();
        let mut sides: Vec<ItemSignals> = entries
            .iter()
            .zip(&looked_up)
            .map(|((entry, _), &(_, trend))| ItemSignals {
                popularity: self.catalog.popularity(&entry.id),
                trend,
                semantic: req.query.as_deref().map_or(0.0, |q| dot(q, &entry.vector)),
                content: content_similarity(&entry.vector, &seed_vectors),
                freshness: freshness(entry.item.year, self.current_year),
                quality: entry.item.quality.unwrap_or(0.0),
            })
            .collect();
        // Cosine similarities of candidates crowd into a narrow band; stretch them to [0, 1]
        // over this request's candidates so the weights mean the same for every query.
        stretch_semantic(&mut sides, req.query.is_some());
        let score_one = |(((entry, c), side), (ordinal, _)): CandidateRow| {
            let x = match (learned, ordinal) {
                (Some(l), Some(o)) => rank_features(&l.signals, o, &side),
                _ => [0.0; crate::learn::ranker::FEATURES],
            };
            let components = ScoreComponents {
                semantic: side.semantic,
                graph: c.graph,
                popularity: side.popularity,
                freshness: side.freshness,
                quality: side.quality,
                collaborative: x[0],
                transition: x[2],
            };
            let score = match learned.and_then(|l| l.model.ranker.as_ref()) {
                // The intent is not in the logged interactions the ranker learned from: it
                // adds its own weight on top.
                Some(ranker) => {
                    ranker.score(&x)
                        + f32::from(u8::from(req.intent.is_some()))
                            * cfg.intent_weight
                            * side.semantic
                }
                None => {
                    cfg.semantic_weight * components.semantic
                        + cfg.graph_weight * components.graph
                        + cfg.popularity_weight * components.popularity
                        + cfg.freshness_weight * components.freshness
                        + cfg.quality_weight * components.quality
                        + cfg.collaborative_weight * components.collaborative
                        + cfg.transition_weight * components.transition
                }
            };
            Ranked {
                entry,
                components,
                score,
                via: c.via,
                features: x,
            }
        };
        let mut ranked: Vec<Ranked> = if entries.len() > 512 {
            entries
                .into_par_iter()
                .zip(sides)
                .zip(looked_up)
                .map(score_one)
                .collect()
        } else {
            entries
                .into_iter()
                .zip(sides)
                .zip(looked_up)
                .map(score_one)
                .collect()
        };
        if learned.is_some_and(|l| l.model.ranker.is_some()) {
            // Learned scores are log-odds: map them to (0, 1] for the diversity trade-off.
            let best = ranked.iter().map(|r| r.score).fold(f32::MIN, f32::max);
            ranked
                .iter_mut()
                .for_each(|r| r.score = (r.score - best).exp());
        }
        ranked.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.entry.id.cmp(&b.entry.id))
        });
        self.metrics.observe_stage(Stage::Rank, rank_started);

        let diversity_started = Instant::now();
        let picked = mmr(ranked, req.limit, cfg.mmr_lambda);
        self.metrics
            .observe_stage(Stage::Diversity, diversity_started);

        let history_vectors: Vec<(Arc<CatalogEntry>, Vec<f32>)> = req
            .history
            .iter()
            .take(20)
            .map(|e| (e.clone(), e.vector_f32()))
            .collect();
        picked
            .into_iter()
            .map(|r| {
                let reason = match &req.learned {
                    Some(l) => self.explain_learned(&r, &req, l),
                    None => None,
                }
                .unwrap_or_else(|| explain(&r, &req, &history_vectors, cfg, &self.catalog));
                ScoredItem {
                    item: r.entry.item.clone(),
                    score: r.score,
                    components: r.components,
                    reason,
                }
            })
            .collect()
    }

    /// Stores events durably, then updates popularity, the item graph and the user's vector.
    pub async fn record_events(&self, events: Vec<InteractionEvent>) -> Result<usize, EngineError> {
        if events.is_empty() || events.len() > MAX_EVENTS_PER_REQUEST {
            return Err(EngineError::invalid(
                "invalid_batch",
                format!("send between 1 and {MAX_EVENTS_PER_REQUEST} events"),
            ));
        }
        let now = now_secs();
        let mut stored = Vec::with_capacity(events.len());
        for e in events {
            validate_user_id(&e.user_id)?;
            validate_item_id(&e.item_id)?;
            if self.catalog.get(&e.item_id).is_none() {
                return Err(EngineError::not_found(
                    "item_not_found",
                    format!("no item with id '{}'", e.item_id),
                ));
            }
            let timestamp = e.timestamp.unwrap_or(now);
            // Future timestamps would outrank every real event in recency-weighted signals.
            if !(0..=now + MAX_EVENT_CLOCK_SKEW_SECS).contains(&timestamp) {
                return Err(EngineError::invalid(
                    "invalid_timestamp",
                    format!(
                        "timestamp must be unix seconds, at most {MAX_EVENT_CLOCK_SKEW_SECS} s \
                         in the future"
                    ),
                ));
            }
            if e.recommendation_id.as_ref().is_some_and(|r| r.len() > 64) {
                return Err(EngineError::invalid(
                    "invalid_recommendation_id",
                    "recommendation_id is at most 64 bytes",
                ));
            }
            stored.push(Interaction {
                user_id: e.user_id,
                item_id: e.item_id,
                action: e.action,
                timestamp,
                recommendation_id: e.recommendation_id,
            });
        }
        // The previous positive items of each user, read before the append, seed graph edges.
        let users: HashSet<&str> = stored.iter().map(|e| e.user_id.as_str()).collect();
        let mut previous: HashMap<String, Vec<Arc<str>>> = HashMap::new();
        let mut previous_positive: HashMap<String, Vec<Arc<str>>> = HashMap::new();
        let learning = &self.config.learning;
        for user in users {
            // Wide enough that the latest positives are found among views and skips, as the
            // start-up replay and the training find them.
            let recent = self
                .backends
                .interactions
                .recent(user, self.config.ranking.history_limit.max(5))
                .await
                .unwrap_or_default();
            let items = self
                .catalog
                .get_many(
                    recent
                        .iter()
                        .filter(|e| e.action.preference_weight() > 0.0)
                        .take(5)
                        .map(|e| e.item_id.as_str()),
                )
                .into_iter()
                .map(|e| e.id.clone())
                .collect();
            previous.insert(user.to_string(), items);
            let positive = self
                .catalog
                .get_many(
                    recent
                        .iter()
                        .filter(|e| learning.is_positive(e.action))
                        .map(|e| e.item_id.as_str()),
                )
                .into_iter()
                .map(|e| e.id.clone())
                .collect();
            previous_positive.insert(user.to_string(), positive);
        }
        let count = stored.len();
        self.backends.interactions.append(stored.clone()).await?;
        self.learn_from(&stored);
        for e in stored {
            let Some(entry) = self.catalog.get(&e.item_id) else {
                continue;
            };
            let positive = previous_positive.entry(e.user_id.clone()).or_default();
            let first =
                self.learner
                    .observe(&e.user_id, &entry.id, e.action, e.timestamp, positive);
            // A user moves an item's popularity and its co-engagement edges by one vote at
            // most, however often they repeat an event on it.
            if first {
                self.catalog.record_engagement(&entry.id, e.action);
            }
            if learning.is_positive(e.action) {
                positive.insert(0, entry.id.clone());
                positive.truncate(learning.transitions.window.max(1));
            }
            let before = previous.entry(e.user_id.clone()).or_default();
            if first && e.action.preference_weight() > 0.0 {
                if let Err(err) = self
                    .backends
                    .graph
                    .record(&e.user_id, before, &entry.id)
                    .await
                {
                    tracing::warn!(error = %err, "item graph update failed");
                }
                before.insert(0, entry.id.clone());
                before.truncate(5);
            }
            self.backends.user_cache.invalidate(&e.user_id).await;
        }
        Ok(count)
    }

    /// Every interaction stored for the user, oldest first: what the service keeps about
    /// them (their data export). Empty for a user it knows nothing of.
    pub async fn export_user(&self, user_id: &str) -> Result<Vec<Interaction>, EngineError> {
        validate_user_id(user_id)?;
        Ok(self.backends.interactions.user_events(user_id).await?)
    }

    /// Erases a user everywhere their data lives: their events and profile (durably, so a
    /// restart does not replay them), their seen set, the policy's impressions of them, their
    /// graph edges and their cached taste vector. Their next answer is the cold-start one.
    ///
    /// Aggregates their events already fed (popularity, trend, transitions, co-engagement,
    /// the policy's and the trained model's weights) stay, as they hold no user; the next
    /// start and training rebuild them without the erased events.
    ///
    /// Idempotent: a failure (a backend down) is returned after every other step has run, and
    /// a retry finishes the job.
    pub async fn erase_user(&self, user_id: &str) -> Result<ErasureReport, EngineError> {
        validate_user_id(user_id)?;
        // The store first: it is the source everything else is rebuilt from.
        let events = self.backends.interactions.erase_user(user_id).await?;
        let seen_items = self.learner.forget_user(user_id);
        let impressions = self.impressions.forget_user(user_id);
        let (graph_edges, cache) = tokio::join!(
            self.backends.graph.forget_user(user_id),
            self.backends.user_cache.forget(user_id)
        );
        cache?;
        let report = ErasureReport {
            user_id: user_id.to_string(),
            events,
            seen_items,
            impressions,
            graph_edges: graph_edges?,
        };
        // Counts only: the log must not keep the id it was asked to forget.
        tracing::info!(
            events,
            seen_items,
            impressions,
            graph_edges = report.graph_edges,
            "user erased"
        );
        Ok(report)
    }

    /// Validates, embeds (where no vector is given), stores durably and indexes items.
    pub async fn upsert_items(
        self: &Arc<Self>,
        inputs: Vec<ItemInput>,
    ) -> Result<usize, EngineError> {
        if inputs.is_empty() || inputs.len() > MAX_ITEMS_PER_REQUEST {
            return Err(EngineError::invalid(
                "invalid_batch",
                format!("send between 1 and {MAX_ITEMS_PER_REQUEST} items"),
            ));
        }
        let dim = self.embedder.dim();
        let mut items = Vec::with_capacity(inputs.len());
        let mut to_embed = Vec::new();
        for (i, input) in inputs.into_iter().enumerate() {
            let (item, vector) = validate_item(input, dim)?;
            if vector.is_none() {
                to_embed.push(i);
            }
            items.push((item, vector));
        }
        if !to_embed.is_empty() {
            let texts = to_embed.iter().map(|&i| item_text(&items[i].0)).collect();
            let vectors = self.embed(texts, "ingest").await?;
            for (i, v) in to_embed.into_iter().zip(vectors) {
                items[i].1 = Some(v);
            }
        }
        let stored: Vec<StoredItem> = items
            .into_iter()
            .map(|(item, vector)| StoredItem {
                item,
                version: match &self.index {
                    VectorIndex::Local(_) => self.backends.items.next_version(),
                    VectorIndex::Cluster(cluster) => cluster.next_version(),
                },
                vector: vector.unwrap_or_default(),
            })
            .collect();
        let count = stored.len();
        match &self.index {
            VectorIndex::Local(_) => self.backends.items.upsert(stored.clone()).await?,
            VectorIndex::Cluster(cluster) => {
                cluster
                    .write(
                        stored
                            .iter()
                            .map(|s| item_record(&s.item, s.version, s.vector.clone()))
                            .collect(),
                    )
                    .await?
            }
        }
        let mut entries = Vec::with_capacity(count);
        for s in stored {
            let id = self
                .catalog
                .insert(CatalogEntry::new(s.item, s.version, &s.vector));
            if let VectorIndex::Local(index) = &self.index {
                index.upsert(id.clone(), s.version, &s.vector);
            }
            self.learner.register_items([&id]);
            entries.extend(self.catalog.get(&id));
        }
        self.refresh_shard_metrics();
        let nodes = self
            .content_nodes(entries, self.config.graph.similar_edges)
            .await?;
        if let Err(err) = self.backends.graph.upsert_content(nodes).await {
            // The catalogue is durable; a graph that fell behind is refilled at the next start.
            tracing::warn!(error = %err, "item graph not updated");
            self.metrics.count_degraded("graph");
        }
        Ok(count)
    }

    pub async fn delete_item(&self, item_id: &str) -> Result<(), EngineError> {
        validate_item_id(item_id)?;
        let not_found =
            || EngineError::not_found("item_not_found", format!("no item with id '{item_id}'"));
        match &self.index {
            VectorIndex::Local(index) => {
                if !self.backends.items.delete(item_id).await? {
                    return Err(not_found());
                }
                index.remove(item_id);
            }
            VectorIndex::Cluster(cluster) => {
                let Some(entry) = self.catalog.get(item_id) else {
                    return Err(not_found());
                };
                let version = cluster.next_version();
                cluster
                    .write(vec![ItemRecord {
                        id: item_id.to_string(),
                        version,
                        item: None,
                        vector: Vec::new(),
                    }])
                    .await?;
                self.feed
                    .lock()
                    .expect("feed lock")
                    .removed
                    .insert(entry.id.clone(), version);
            }
        }
        self.catalog.remove(item_id);
        self.learner.remove_item(item_id);
        self.refresh_shard_metrics();
        if let Err(err) = self.backends.graph.remove_content(item_id).await {
            tracing::warn!(error = %err, "item not removed from the graph");
            self.metrics.count_degraded("graph");
        }
        Ok(())
    }

    /// The learned sources' reason for a pick, when one of them put it there: the
    /// transition or collaborative signal with the larger contribution to the score.
    fn explain_learned(&self, r: &Ranked, req: &RankRequest, l: &LearnedInputs) -> Option<String> {
        if req.intent.is_some() {
            return None;
        }
        let x = &r.features;
        // Normalised scores and rank signals of the two sources, compared as they stand.
        let transition = x[2] + x[3];
        let collaborative = x[0] + x[1];
        let ordinal = self.learner.ordinal(&r.entry.id)?;
        let title = |id: Arc<str>| self.catalog.get(&id).map(|e| e.item.title.clone());
        if x[2] > 0.0 && transition >= collaborative {
            let source = self.learner.transition_source(&l.recent, ordinal)?;
            return Some(format!("because you just watched {}", title(source)?));
        }
        if x[0] > 0.0 && collaborative > 0.0 {
            let source = self.learner.collab_source(&l.model, &l.history, ordinal)?;
            return Some(format!(
                "people who watched {} also watched",
                title(source)?
            ));
        }
        None
    }

    /// Trains a new collaborative model and ranker from every stored interaction and serves
    /// it (the `reco-train` binary and `POST /admin/model/retrain` end here).
    pub async fn retrain(&self) -> Result<crate::learn::TrainReport, EngineError> {
        let slot = self.learner.start_training().map_err(train_error)?;
        self.retrain_in(slot).await
    }

    async fn retrain_in(
        &self,
        slot: crate::learn::learner::TrainingSlot,
    ) -> Result<crate::learn::TrainReport, EngineError> {
        let r = &self.config.ranking;
        self.learner
            .retrain(
                slot,
                self.backends.interactions.as_ref(),
                &self.catalog,
                self.current_year,
                r.history_limit,
                r.history_half_life_days,
                now_secs(),
            )
            .await
            .map_err(train_error)
    }

    /// Starts a training in the background, or says why it cannot start (one is running:
    /// `training_in_progress`; too few positives: `not_enough_data`).
    pub fn retrain_in_background(self: &Arc<Self>) -> Result<(), EngineError> {
        let slot = self.learner.start_training().map_err(train_error)?;
        let engine = self.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.retrain_in(slot).await {
                tracing::warn!(error = %e, "model not trained");
            }
        });
        Ok(())
    }

    /// The served model and the online learning state.
    pub fn model_status(&self) -> crate::learn::learner::ModelStatus {
        self.learner.status()
    }

    /// Serves the newest model on disk, then keeps the model fresh: a new file (from
    /// `reco-train`) is picked up within a minute, and a training runs every
    /// `learning.retrain_every_secs` (and at once when no model exists yet); with 0, only
    /// on demand (`POST /admin/model/retrain`, `reco-train`).
    fn spawn_training(engine: &Arc<Self>) {
        if !engine.learner.enabled() {
            return;
        }
        if let Some(v) = engine.learner.load_newer() {
            tracing::info!(version = v, "trained model loaded");
        }
        let every = engine.config.learning.retrain_every_secs;
        let weak = Arc::downgrade(engine);
        tokio::spawn(async move {
            let mut last_training = None::<Instant>;
            loop {
                let Some(engine) = weak.upgrade() else { return };
                let due = match last_training {
                    None => every > 0 && engine.learner.model().version == 0,
                    Some(at) => every > 0 && at.elapsed() >= Duration::from_secs(every),
                };
                if due {
                    last_training = Some(Instant::now());
                    match engine.retrain().await {
                        Ok(_) => {}
                        Err(EngineError::Invalid { .. } | EngineError::Conflict { .. }) => {}
                        Err(e) => tracing::warn!(error = %e, "scheduled training failed"),
                    }
                } else if let Some(v) = engine.learner.load_newer() {
                    tracing::info!(version = v, "newer trained model loaded");
                }
                last_training.get_or_insert_with(Instant::now);
                drop(engine);
                tokio::time::sleep(Duration::from_secs(every.clamp(1, 60))).await;
            }
        });
    }

    fn refresh_shard_metrics(&self) {
        let VectorIndex::Local(index) = &self.index else {
            return;
        };
        for shard in index.shards() {
            self.metrics.set_shard_items(shard.id(), shard.len());
        }
    }
}

/// A training that could not run, as the engine's error.
fn train_error(e: crate::learn::learner::TrainError) -> EngineError {
    use crate::learn::learner::TrainError;
    match e {
        TrainError::Busy => EngineError::conflict("training_in_progress", e.to_string()),
        TrainError::TooFew(..) => EngineError::conflict("not_enough_data", e.to_string()),
        TrainError::Store(e) => EngineError::Store(e),
        TrainError::Io(e) => EngineError::Internal(e),
    }
}

/// An item as shard nodes store it.
fn item_record(item: &Item, version: u64, vector: Vec<f32>) -> ItemRecord {
    ItemRecord {
        id: item.id.clone(),
        version,
        item: Some(serde_json::to_vec(item).expect("items serialise")),
        vector,
    }
}

/// Checks an incoming item and normalises its optional vector.
pub(crate) fn validate_item(
    input: ItemInput,
    dim: usize,
) -> Result<(Item, Option<Vec<f32>>), EngineError> {
    validate_item_id(&input.id)?;
    let bad = |m: String| EngineError::invalid("invalid_item", format!("item '{}': {m}", input.id));
    if input.title.trim().is_empty() || input.title.len() > 512 {
        return Err(bad("title must be 1-512 bytes".into()));
    }
    if input.genres.len() > 20
        || input
            .genres
            .iter()
            .any(|g| g.trim().is_empty() || g.len() > 40)
    {
        return Err(bad("at most 20 genres of 1-40 bytes".into()));
    }
    if input.description.as_ref().is_some_and(|d| d.len() > 4096) {
        return Err(bad("description is at most 4096 bytes".into()));
    }
    if input.quality.is_some_and(|q| !(0.0..=1.0).contains(&q)) {
        return Err(bad("quality must be within [0, 1]".into()));
    }
    if input
        .language
        .as_ref()
        .is_some_and(|l| l.is_empty() || l.len() > 35)
    {
        return Err(bad("language must be a short tag such as 'en'".into()));
    }
    let vector = match input.embedding {
        None => None,
        Some(mut v) => {
            if v.len() != dim {
                return Err(bad(format!(
                    "embedding must have {dim} dimensions, got {}",
                    v.len()
                )));
            }
            if !v.iter().all(|x| x.is_finite()) || !normalise(&mut v) {
                return Err(bad("embedding must be finite and non-zero".into()));
            }
            Some(v)
        }
    };
    let item = Item {
        id: input.id,
        title: input.title.trim().to_string(),
        genres: input
            .genres
            .into_iter()
            .map(|g| g.trim().to_string())
            .collect(),
        year: input.year,
        language: input.language.map(|l| l.to_lowercase()),
        maturity: input.maturity,
        description: input.description,
        quality: input.quality,
    };
    Ok((item, vector))
}

fn recency_weight(newest: i64, ts: i64, half_life_days: f32) -> f32 {
    let age_days = (newest - ts).max(0) as f32 / 86_400.0;
    0.5f32.powf(age_days / half_life_days)
}

/// Recency-weighted mean of the user's interactions: likes pull towards an item, dislikes
/// and skips push away. `None` when nothing positive is known (cold start).
fn user_vector(
    history: &[(Interaction, Arc<CatalogEntry>)],
    half_life_days: f32,
) -> Option<Vec<f32>> {
    let newest = history.iter().map(|(e, _)| e.timestamp).max()?;
    let dim = history.first()?.1.vector.len();
    let mut acc = vec![0f32; dim];
    let mut positive = false;
    for (event, entry) in history {
        let w = event.action.preference_weight()
            * recency_weight(newest, event.timestamp, half_life_days);
        positive |= w > 0.0;
        for (a, x) in acc.iter_mut().zip(&entry.vector) {
            *a += w * x.to_f32();
        }
    }
    (positive && normalise(&mut acc)).then_some(acc)
}

/// The user's strongest recent positive items, as weighted graph seeds.
fn graph_seeds(
    history: &[(Interaction, Arc<CatalogEntry>)],
    half_life_days: f32,
) -> Vec<(Arc<str>, f32)> {
    let Some(newest) = history.iter().map(|(e, _)| e.timestamp).max() else {
        return Vec::new();
    };
    let mut seeds: Vec<(Arc<str>, f32)> = history
        .iter()
        .filter(|(e, _)| e.action.preference_weight() > 0.0)
        .map(|(e, entry)| {
            (
                entry.id.clone(),
                e.action.preference_weight() * recency_weight(newest, e.timestamp, half_life_days),
            )
        })
        .collect();
    seeds.sort_by(|a, b| b.1.total_cmp(&a.1));
    seeds.dedup_by(|a, b| a.0 == b.0);
    seeds.truncate(GRAPH_SEEDS);
    seeds
}

/// Maximal marginal relevance: repeatedly take the item with the best trade-off between its
/// (normalised) score and its similarity to what is already taken.
fn mmr(ranked: Vec<Ranked>, limit: usize, lambda: f32) -> Vec<Ranked> {
    let mut pool: Vec<Ranked> = ranked.into_iter().take(limit * 4).collect();
    let top = pool.first().map_or(1.0, |r| r.score.abs().max(1e-6));
    let mut max_sim = vec![f32::MIN; pool.len()];
    let mut picked = Vec::with_capacity(limit);
    let dot = best_dot();
    while picked.len() < limit && !pool.is_empty() {
        let best = (0..pool.len())
            .max_by(|&a, &b| {
                let value = |i: usize| {
                    let redundancy = if max_sim[i] == f32::MIN {
                        0.0
                    } else {
                        max_sim[i]
                    };
                    lambda * pool[i].score / top - (1.0 - lambda) * redundancy
                };
                value(a).total_cmp(&value(b)).then(b.cmp(&a))
            })
            .expect("pool is not empty");
        let chosen = pool.swap_remove(best);
        max_sim.swap_remove(best);
        let v = chosen.entry.vector_f32();
        for (i, r) in pool.iter().enumerate() {
            max_sim[i] = max_sim[i].max(dot(&v, &r.entry.vector));
        }
        picked.push(chosen);
    }
    picked
}

fn explain(
    r: &Ranked,
    req: &RankRequest,
    history: &[(Arc<CatalogEntry>, Vec<f32>)],
    cfg: &RankingConfig,
    catalog: &Catalog,
) -> String {
    let c = &r.components;
    if let Some(via) = &r.via {
        if cfg.graph_weight * c.graph >= cfg.semantic_weight * c.semantic * 0.5 {
            if let Some(seed) = catalog.get(via) {
                return format!("because you watched {}", seed.item.title);
            }
        }
    }
    if let Some(q) = &req.intent {
        return format!("matches '{q}'");
    }
    let dot = best_dot();
    let closest = history
        .iter()
        .map(|(e, v)| (e, dot(v, &r.entry.vector)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match closest {
        Some((e, sim)) if sim > 0.3 => format!("similar to {}", e.item.title),
        _ => req.fallback_reason.to_string(),
    }
}
