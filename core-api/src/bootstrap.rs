//! Backend selection for a serving process, in one place: the configuration decides where
//! interactions (embedded store or ScyllaDB), the item graph (in process or Neo4j), the
//! user-embedding cache (in process or Redis) and the vectors (this process or the shard
//! nodes) live; the demo catalogue's first films are loaded into an empty store; then the
//! engine is opened, the event log replayed and the background work (the rest of the demo
//! catalogue included) started.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Role};
use crate::engine::{Backends, Embedder, Engine};
use crate::error::EngineError;
use crate::metrics::Metrics;
use crate::store::{
    EmbeddedStore, InProcessItemGraph, InProcessUserCache, InteractionStore, ItemGraph, Neo4jGraph,
    RedisUserCache, ScyllaInteractionStore, UserEmbeddingCache,
};

/// Opens the engine on the embedded default backends in `config.storage.data_dir`, loading
/// the demo catalogue first when the store is empty and the config asks for it.
pub async fn open_embedded(
    config: Config,
    embedder: Arc<dyn Embedder>,
    metrics: Arc<Metrics>,
) -> Result<Arc<Engine>, EngineError> {
    let store = Arc::new(EmbeddedStore::open(&config.storage.data_dir)?);
    open_on_store(config, store, embedder, metrics).await
}

/// Like [`open_embedded`], on an embedded store that is already open. The catalogue always
/// lives in the embedded store; interactions, the item graph and the user cache move to
/// ScyllaDB, Neo4j and Redis when configured.
pub async fn open_on_store(
    config: Config,
    store: Arc<EmbeddedStore>,
    embedder: Arc<dyn Embedder>,
    metrics: Arc<Metrics>,
) -> Result<Arc<Engine>, EngineError> {
    let cluster = match config.cluster.role {
        Role::Router => {
            Some(crate::engine::connect_router(&config, embedder.dim(), &metrics).await)
        }
        _ => None,
    };
    // A router loads the demo only into an empty catalogue (it then seeds ScyllaDB with it).
    let cluster_empty = match &cluster {
        Some((_, store)) => crate::engine::catalogue_is_empty(store).await,
        None => true,
    };
    let demo_rest = match config.demo.load_if_empty
        && cluster_empty
        && (!store.has_items()? || crate::demo::interrupted(&config))
    {
        // A router seeds the catalogue from the store at open, so it loads all first.
        true => {
            let background = cluster.is_none();
            crate::demo::load(&config, &store, embedder.as_ref(), &metrics, background).await?
        }
        false => None,
    };
    let interactions = interaction_store(&config, store.clone()).await?;
    let in_process_graph = config
        .neo4j
        .uri
        .is_empty()
        .then(|| Arc::new(InProcessItemGraph::new(config.graph.min_quality)));
    let graph: Arc<dyn ItemGraph> = match &in_process_graph {
        Some(g) => g.clone(),
        None => neo4j_graph(&config).await?,
    };
    let backends = Backends {
        items: store.clone(),
        interactions,
        graph,
        user_cache: user_cache(&config)?,
    };
    let engine = Engine::open_with(config, backends, embedder, metrics, cluster).await?;
    engine.replay_events(in_process_graph.as_deref()).await;
    Engine::start_background(&engine);
    if let Some(rest) = demo_rest {
        crate::demo::spawn_rest(&engine, rest);
    }
    Ok(engine)
}

/// Interactions in ScyllaDB when `scylla.nodes` is set, else in the embedded store.
async fn interaction_store(
    config: &Config,
    store: Arc<EmbeddedStore>,
) -> Result<Arc<dyn InteractionStore>, EngineError> {
    if config.scylla.nodes.is_empty() {
        return Ok(store);
    }
    let scylla = ScyllaInteractionStore::new(config.scylla.clone())?;
    if let Err(e) = scylla.connect().await {
        tracing::warn!(error = %e, "CQL cluster unreachable at start; serving without history until it returns");
    }
    Ok(Arc::new(scylla))
}

/// The item graph in Neo4j, its schema ensured when reachable.
async fn neo4j_graph(config: &Config) -> Result<Arc<dyn ItemGraph>, EngineError> {
    tracing::info!(uri = %config.neo4j.uri, "item graph in Neo4j");
    let neo4j = Neo4jGraph::new(&config.neo4j, config.graph.min_quality).await?;
    if let Err(e) = neo4j.ensure_schema().await {
        tracing::warn!(error = %e, "Neo4j unreachable at start; serving without graph candidates until it returns");
    }
    Ok(Arc::new(neo4j))
}

/// The user-embedding cache: Redis when `redis.url` is set, else in process.
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
