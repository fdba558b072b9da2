//! A router's view of the cluster: vector search scattered to the shard nodes, the
//! catalogue stored in ScyllaDB, and its change log followed so the catalogue and the item
//! graph stay in step with writes made through other routers.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use shared_types::Item;

use crate::catalog::{Catalog, CatalogEntry};
use crate::cluster::follow::{Follower, Update};
use crate::cluster::{ClusterIndex, SearchOutcome};
use crate::config::Config;
use crate::error::EngineError;
use crate::metrics::Metrics;
use crate::store::{CatalogRecord, ScyllaCatalog, StoredItem};
use vector_index::{Filter, Hit, Labels, ShardedIndex};

use super::vectors::Vectors;
use super::Engine;

/// How long a router waits at start for every shard to have a replica up.
const CLUSTER_START_WAIT: Duration = Duration::from_secs(30);
/// Items written per call when a router seeds an empty catalogue.
const SEED_BATCH: usize = 500;
/// Longest wait for shard nodes to apply a write the router just stored (a hint: the write
/// is durable already, and nodes that miss the hint apply it at their next round).
const SYNC_HINT_DEADLINE: Duration = Duration::from_millis(500);
/// Least wait between two attempts to load the catalogue while ScyllaDB is unreachable.
const LOAD_RETRY: Duration = Duration::from_secs(1);

/// The shard nodes behind the internal RPC, and the catalogue in ScyllaDB.
pub(crate) struct ClusterVectors {
    cluster: Arc<ClusterIndex>,
    follower: Follower,
    /// Items whose `SIMILAR_TO` edges were computed while shards were missing; recomputed
    /// once every shard answers again.
    graph_backlog: Mutex<HashSet<Arc<str>>>,
}

/// What a router opens its engine on: the shard nodes and the catalogue in ScyllaDB.
pub(crate) type RouterParts = (Arc<ClusterIndex>, Arc<ScyllaCatalog>);

/// Connects to the shard nodes, waiting a while for every shard to have a replica up, and
/// sets up the catalogue in ScyllaDB (contacted on first use).
pub(crate) async fn connect_router(
    config: &Config,
    dim: usize,
    metrics: &Arc<Metrics>,
) -> RouterParts {
    let cluster = ClusterIndex::connect(config, dim, metrics.clone()).await;
    if !cluster.wait_until_complete(CLUSTER_START_WAIT).await {
        tracing::warn!(
            shards = ?cluster.unavailable_shards(),
            "starting with shards that have no replica up; searches are partial until one is"
        );
    }
    let store = Arc::new(ScyllaCatalog::new(
        config.scylla.clone(),
        config.index.shards,
    ));
    (cluster, store)
}

/// An item as the catalogue stores it.
fn item_record(item: &Item, version: u64, vector: Vec<f32>) -> CatalogRecord {
    CatalogRecord {
        id: item.id.clone(),
        version,
        item: Some(serde_json::to_vec(item).expect("items serialise")),
        vector,
    }
}

/// Whether the catalogue in ScyllaDB holds no item, retrying until ScyllaDB answers.
pub(crate) async fn catalogue_is_empty(catalog: &ScyllaCatalog) -> bool {
    loop {
        match catalog.is_empty().await {
            Ok(empty) => return empty,
            Err(e) => {
                tracing::warn!(error = %e, "catalogue in ScyllaDB not reachable; retrying");
                tokio::time::sleep(LOAD_RETRY).await;
            }
        }
    }
}

impl ClusterVectors {
    /// Loads the catalogue from ScyllaDB (retrying until it answers); an empty catalogue is
    /// seeded with `stored` (the demo, or items loaded before the cluster existed).
    pub async fn open(
        cluster: Arc<ClusterIndex>,
        store: Arc<ScyllaCatalog>,
        catalog: &Catalog,
        stored: Vec<StoredItem>,
    ) -> Result<Self, EngineError> {
        let shards = store.shards() as u32;
        let this = Self {
            follower: Follower::new(store, 0..shards),
            cluster,
            graph_backlog: Mutex::new(HashSet::new()),
        };
        let mut loaded = 0;
        for shard in 0..shards {
            let records = loop {
                match this.follower.load(shard).await {
                    Ok(records) => break records,
                    Err(e) => {
                        tracing::warn!(shard, error = %e, "catalogue not loaded from ScyllaDB; retrying");
                        tokio::time::sleep(LOAD_RETRY).await;
                    }
                }
            };
            loaded += records.len();
            for r in records {
                let _ = Self::apply(catalog, Update::Upsert(r));
            }
        }
        if loaded == 0 && !stored.is_empty() {
            this.seed(catalog, stored).await?;
        }
        Ok(this)
    }

    /// Writes the items of the local store to an empty catalogue.
    async fn seed(&self, catalog: &Catalog, stored: Vec<StoredItem>) -> Result<(), EngineError> {
        tracing::info!(
            items = stored.len(),
            "seeding the empty catalogue from the local item store"
        );
        for chunk in stored.chunks(SEED_BATCH) {
            let records = chunk
                .iter()
                .map(|s| item_record(&s.item, self.cluster.next_version(), s.vector.clone()))
                .collect::<Vec<_>>();
            self.follower.catalog().write(&records).await?;
            for (s, r) in chunk.iter().zip(records) {
                catalog.insert(CatalogEntry::new(s.item.clone(), r.version, &s.vector));
            }
        }
        Ok(())
    }

    /// Asks the shard nodes holding `records` to read the change log now: the write is then
    /// searchable (and the item graph's edges, computed next, see it) when acknowledged.
    async fn hint(&self, records: &[CatalogRecord]) {
        let catalog = self.follower.catalog();
        let mut shards: Vec<u32> = records.iter().map(|r| catalog.shard_of(&r.id)).collect();
        shards.sort_unstable();
        shards.dedup();
        self.cluster.sync_now(&shards, SYNC_HINT_DEADLINE).await;
    }

    /// Applies one update to the catalogue unless it holds a newer version; returns the
    /// entry added or the id removed.
    fn apply(catalog: &Catalog, update: Update) -> Option<Result<Arc<CatalogEntry>, Arc<str>>> {
        let held = catalog.get(update.id()).map(|e| e.version);
        if held.is_some_and(|v| v >= update.version()) {
            return None;
        }
        match update {
            Update::Upsert(r) => match r.item.as_deref().map(serde_json::from_slice::<Item>) {
                Some(Ok(item)) => {
                    let id = catalog.insert(CatalogEntry::new(item, r.version, &r.vector));
                    catalog.get(&id).map(Ok)
                }
                Some(Err(e)) => {
                    tracing::error!(item = %r.id, error = %e, "unreadable item skipped");
                    None
                }
                None => None,
            },
            Update::Remove { id, .. } => {
                let known = catalog.get(&id)?.id.clone();
                catalog.remove(&known);
                Some(Err(known))
            }
        }
    }

    /// Applies one shard's changes since the last round to the catalogue. Returns the
    /// entries added or replaced and the ids removed.
    async fn follow(
        &self,
        catalog: &Catalog,
        shard: u32,
    ) -> Result<(Vec<Arc<CatalogEntry>>, Vec<Arc<str>>), EngineError> {
        let (mut upserted, mut removed) = (Vec::new(), Vec::new());
        for update in self.follower.poll(shard).await? {
            match Self::apply(catalog, update) {
                Some(Ok(entry)) => upserted.push(entry),
                Some(Err(id)) => removed.push(id),
                None => {}
            }
        }
        Ok((upserted, removed))
    }
}

#[async_trait]
impl Vectors for ClusterVectors {
    async fn search(
        &self,
        query: Vec<f32>,
        k: usize,
        filter: Filter,
    ) -> Result<SearchOutcome, EngineError> {
        Ok(self.cluster.search(&query, k, None, &filter).await)
    }

    async fn nearest_each(
        &self,
        entries: Vec<Arc<CatalogEntry>>,
        k: usize,
    ) -> Result<Vec<Vec<Hit>>, EngineError> {
        use futures::StreamExt;
        let cluster = &self.cluster;
        let found: Vec<(Arc<str>, SearchOutcome)> = futures::stream::iter(entries)
            .map(|e| async move {
                let outcome = cluster.search_background(&e.vector_f32(), k).await;
                (e.id.clone(), outcome)
            })
            .buffered(8)
            .collect()
            .await;
        let mut backlog = self.graph_backlog.lock().expect("backlog lock");
        Ok(found
            .into_iter()
            .map(|(id, outcome)| {
                if !outcome.missing_shards.is_empty() {
                    backlog.insert(id);
                }
                outcome.hits
            })
            .collect())
    }

    fn shard_count(&self) -> usize {
        self.cluster.total_shards()
    }

    fn unavailable_shards(&self) -> Option<Vec<u32>> {
        Some(self.cluster.unavailable_shards())
    }

    fn local(&self) -> Option<&ShardedIndex> {
        None
    }

    fn next_version(&self) -> u64 {
        self.cluster.next_version()
    }

    async fn write(&self, items: &[StoredItem]) -> Result<(), EngineError> {
        let records: Vec<CatalogRecord> = items
            .iter()
            .map(|s| item_record(&s.item, s.version, s.vector.clone()))
            .collect();
        self.follower.catalog().write(&records).await?;
        self.hint(&records).await;
        Ok(())
    }

    fn index(&self, _id: Arc<str>, _version: u64, _vector: &[f32], _labels: Labels) {}

    async fn delete(&self, id: &str, known: Option<Arc<str>>) -> Result<bool, EngineError> {
        if known.is_none() {
            return Ok(false);
        }
        let record = CatalogRecord {
            id: id.to_string(),
            version: self.cluster.next_version(),
            item: None,
            vector: Vec::new(),
        };
        self.follower
            .catalog()
            .write(std::slice::from_ref(&record))
            .await?;
        self.hint(&[record]).await;
        Ok(true)
    }

    fn graph_backlog(&self) -> usize {
        self.graph_backlog.lock().expect("backlog lock").len()
    }
}

impl Engine {
    /// Follows the catalogue's change log (writes through other routers) and keeps the
    /// catalogue and the item graph in step.
    pub(super) fn spawn_feed(engine: &Arc<Self>, cluster: Arc<ClusterVectors>) {
        let weak = Arc::downgrade(engine);
        let every = Duration::from_millis(engine.config.cluster.sync_interval_ms.max(10));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(engine) = weak.upgrade() else { return };
                if cluster.cluster.unavailable_shards().is_empty() {
                    let backlog: Vec<Arc<str>> = cluster
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
                for shard in 0..cluster.cluster.total_shards() as u32 {
                    let (upserted, removed) = match cluster.follow(&engine.catalog, shard).await {
                        Ok(changes) => changes,
                        Err(e) => {
                            tracing::warn!(shard, error = %e, "catalogue change log not read");
                            break;
                        }
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
}
