//! A router's view of the cluster: vector search scattered to the shard nodes, catalogue
//! writes replicated to them, and the shard nodes' change feeds followed so the catalogue
//! and the item graph stay in step with writes made through other routers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use shared_types::Item;

use crate::catalog::{Catalog, CatalogEntry};
use crate::cluster::wire::{Cursor, ItemRecord};
use crate::cluster::{ClusterIndex, SearchOutcome, CHANGE_WINDOW_US};
use crate::config::Config;
use crate::error::EngineError;
use crate::metrics::Metrics;
use crate::store::{StoreError, StoredItem};
use vector_index::{Filter, Hit, Labels, ShardedIndex};

use super::vectors::Vectors;
use super::Engine;

/// How long a router waits at start for every shard to have a replica up.
const CLUSTER_START_WAIT: Duration = Duration::from_secs(30);
/// Items written per call when a router seeds an empty cluster.
const SEED_BATCH: usize = 500;

/// A router's position in each shard's change feed, and the deletions it has applied (so an
/// older copy of a deleted item read again from a lagging replica stays deleted).
#[derive(Default)]
struct FeedState {
    cursors: Vec<Option<Cursor>>,
    removed: HashMap<Arc<str>, u64>,
}

/// The shard nodes behind the internal RPC.
pub(crate) struct ClusterVectors {
    cluster: Arc<ClusterIndex>,
    feed: Mutex<FeedState>,
    /// Items whose `SIMILAR_TO` edges were computed while shards were missing; recomputed
    /// once every shard answers again.
    graph_backlog: Mutex<HashSet<Arc<str>>>,
}

/// Connects to the shard nodes, waiting a while for every shard to have a replica up.
pub(crate) async fn connect(
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

/// An item as shard nodes store it.
fn item_record(item: &Item, version: u64, vector: Vec<f32>) -> ItemRecord {
    ItemRecord {
        id: item.id.clone(),
        version,
        item: Some(serde_json::to_vec(item).expect("items serialise")),
        vector,
    }
}

impl ClusterVectors {
    /// Loads the catalogue from every shard's change feed; an empty cluster is seeded with
    /// `stored` (the local item store: the demo, or data loaded before the cluster existed).
    pub async fn open(
        cluster: Arc<ClusterIndex>,
        catalog: &Catalog,
        stored: Vec<StoredItem>,
    ) -> Result<Self, EngineError> {
        let this = Self {
            feed: Mutex::new(FeedState {
                cursors: vec![None; cluster.total_shards()],
                removed: HashMap::new(),
            }),
            cluster,
            graph_backlog: Mutex::new(HashSet::new()),
        };
        let loaded = this.load(catalog).await;
        if loaded == 0 && !stored.is_empty() {
            this.seed(catalog, stored).await?;
        }
        Ok(this)
    }

    /// Reads every shard's change feed from the start into the catalogue; returns the
    /// records read.
    async fn load(&self, catalog: &Catalog) -> usize {
        let mut read = 0;
        for shard in 0..self.cluster.total_shards() {
            match self.follow(catalog, shard).await {
                Ok((n, _, _)) => read += n,
                Err(e) => tracing::warn!(shard, error = %e, "shard's items not loaded yet"),
            }
        }
        read
    }

    /// Writes the items of the local store to an empty cluster.
    async fn seed(&self, catalog: &Catalog, stored: Vec<StoredItem>) -> Result<(), EngineError> {
        tracing::info!(
            items = stored.len(),
            "seeding the empty cluster from the local item store"
        );
        for chunk in stored.chunks(SEED_BATCH) {
            let records = chunk
                .iter()
                .map(|s| item_record(&s.item, self.cluster.next_version(), s.vector.clone()))
                .collect::<Vec<_>>();
            self.cluster.write(records.clone()).await?;
            for (s, r) in chunk.iter().zip(records) {
                catalog.insert(CatalogEntry::new(s.item.clone(), r.version, &s.vector));
            }
        }
        Ok(())
    }

    /// Applies one shard's changes since the last read (re-reading a window) to the
    /// catalogue. Returns the records read, the entries added or replaced and the ids
    /// removed. The feed state is locked only while a fetched page is applied, so deletes
    /// made meanwhile are kept.
    async fn follow(
        &self,
        catalog: &Catalog,
        shard: usize,
    ) -> Result<(usize, Vec<Arc<CatalogEntry>>, Vec<Arc<str>>), StoreError> {
        let mut after = match &self.feed.lock().expect("feed lock").cursors[shard] {
            None => Cursor::default(),
            Some(c) => Cursor {
                version: c.version.saturating_sub(CHANGE_WINDOW_US),
                id: String::new(),
            },
        };
        let (mut read, mut upserted, mut removed) = (0, Vec::new(), Vec::new());
        loop {
            let page = self.cluster.changes(shard as u32, &after).await?;
            let full = page.len() >= crate::cluster::CHANGES_PAGE;
            let Some(last) = page.last() else { break };
            after = Cursor {
                version: last.version,
                id: last.id.clone(),
            };
            read += page.len();
            let mut feed = self.feed.lock().expect("feed lock");
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
        let records = items
            .iter()
            .map(|s| item_record(&s.item, s.version, s.vector.clone()))
            .collect();
        Ok(self.cluster.write(records).await?)
    }

    fn index(&self, _id: Arc<str>, _version: u64, _vector: &[f32], _labels: Labels) {}

    async fn delete(&self, id: &str, known: Option<Arc<str>>) -> Result<bool, EngineError> {
        let Some(known) = known else {
            return Ok(false);
        };
        let version = self.cluster.next_version();
        self.cluster
            .write(vec![ItemRecord {
                id: id.to_string(),
                version,
                item: None,
                vector: Vec::new(),
            }])
            .await?;
        self.feed
            .lock()
            .expect("feed lock")
            .removed
            .insert(known, version);
        Ok(true)
    }

    fn graph_backlog(&self) -> usize {
        self.graph_backlog.lock().expect("backlog lock").len()
    }
}

impl Engine {
    /// Follows the shard nodes' change feeds (writes through other routers, items of shards
    /// that were down at start) and keeps the catalogue and the item graph in step.
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
                for shard in 0..cluster.cluster.total_shards() {
                    let (upserted, removed) = match cluster.follow(&engine.catalog, shard).await {
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
}
