//! Where vector search runs and where catalogue writes go: shards in this process over the
//! embedded item store ([`LocalVectors`]), or shard nodes over the internal RPC
//! ([`super::cluster_feed::ClusterVectors`]). The engine talks to both through [`Vectors`].

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rayon::prelude::*;

use crate::catalog::{index_labels, Catalog, CatalogEntry};
use crate::cluster::SearchOutcome;
use crate::compute::on_rayon;
use crate::error::EngineError;
use crate::metrics::Metrics;
use crate::store::{ItemStore, StoredItem};
use vector_index::{Filter, Hit, IndexParams, Labels, LocalShard, Shard, ShardItem, ShardedIndex};

/// Vector search over every shard, and the catalogue's durable writes.
#[async_trait]
pub(crate) trait Vectors: Send + Sync {
    /// The `k` nearest items to `query` that `filter` admits, over every shard (and which
    /// shards did not answer).
    async fn search(
        &self,
        query: Vec<f32>,
        k: usize,
        filter: Filter,
    ) -> Result<SearchOutcome, EngineError>;
    /// The `k` nearest items of each entry's own vector, for background work (the item
    /// graph's `SIMILAR_TO` edges).
    async fn nearest_each(
        &self,
        entries: Vec<Arc<CatalogEntry>>,
        k: usize,
    ) -> Result<Vec<Vec<Hit>>, EngineError>;
    fn shard_count(&self) -> usize;
    /// Shards with no replica up; `None` when every shard is in this process.
    fn unavailable_shards(&self) -> Option<Vec<u32>>;
    /// The in-process index (`None` on a router, whose shards are on other nodes).
    fn local(&self) -> Option<&ShardedIndex>;
    /// A version for an item written now (newer than any before it).
    fn next_version(&self) -> u64;
    /// Stores items durably; they are acknowledged only after this returns.
    async fn write(&self, items: &[StoredItem]) -> Result<(), EngineError>;
    /// Serves a stored item from the in-process index (shard nodes index what they store).
    fn index(&self, id: Arc<str>, version: u64, vector: &[f32], labels: Labels);
    /// Deletes an item durably; false when there was none. `known` is the catalogue's id of
    /// the item when the catalogue holds it.
    async fn delete(&self, id: &str, known: Option<Arc<str>>) -> Result<bool, EngineError>;
    /// Items whose graph edges wait for missing shards to return.
    fn graph_backlog(&self) -> usize {
        0
    }
    /// Publishes the items per shard held in this process.
    fn report_sizes(&self, _metrics: &Metrics) {}
}

/// Every shard in this process; items in the embedded item store.
pub(crate) struct LocalVectors {
    index: Arc<ShardedIndex>,
    items: Arc<dyn ItemStore>,
}

impl LocalVectors {
    /// Puts `stored` into the catalogue and opens every shard on its items, reusing the
    /// snapshots under `data_dir` where they match.
    pub async fn open(
        params: IndexParams,
        shard_count: usize,
        data_dir: &Path,
        stored: Vec<StoredItem>,
        catalog: &Catalog,
        items: Arc<dyn ItemStore>,
    ) -> Result<Self, EngineError> {
        let mut per_shard: Vec<Vec<ShardItem>> = vec![Vec::new(); shard_count];
        for s in stored {
            let labels = index_labels(&s.item);
            let id = catalog.insert(CatalogEntry::new(s.item, s.version, &s.vector));
            per_shard[vector_index::shard_of(&id, shard_count)].push(ShardItem {
                id,
                version: s.version,
                vector: s.vector,
                labels,
            });
        }
        let snapshot_dir = data_dir.join(crate::catalog::snapshot_dir_name(&params));
        let shards: Vec<Arc<dyn Shard>> = on_rayon(move || {
            per_shard
                .into_par_iter()
                .enumerate()
                .map(|(i, items)| {
                    LocalShard::open(i, params, Some(&snapshot_dir), items) as Arc<dyn Shard>
                })
                .collect()
        })
        .await?;
        Ok(Self {
            index: Arc::new(ShardedIndex::new(shards, params)),
            items,
        })
    }
}

#[async_trait]
impl Vectors for LocalVectors {
    async fn search(
        &self,
        query: Vec<f32>,
        k: usize,
        filter: Filter,
    ) -> Result<SearchOutcome, EngineError> {
        let index = self.index.clone();
        on_rayon(move || SearchOutcome {
            hits: index.search(&query, k, None, &filter),
            missing_shards: Vec::new(),
        })
        .await
    }

    async fn nearest_each(
        &self,
        entries: Vec<Arc<CatalogEntry>>,
        k: usize,
    ) -> Result<Vec<Vec<Hit>>, EngineError> {
        let index = self.index.clone();
        on_rayon(move || {
            entries
                .par_iter()
                .map(|e| index.search(&e.vector_f32(), k, None, &Filter::default()))
                .collect()
        })
        .await
    }

    fn shard_count(&self) -> usize {
        self.index.shards().len()
    }

    fn unavailable_shards(&self) -> Option<Vec<u32>> {
        None
    }

    fn local(&self) -> Option<&ShardedIndex> {
        Some(&self.index)
    }

    fn next_version(&self) -> u64 {
        self.items.next_version()
    }

    async fn write(&self, items: &[StoredItem]) -> Result<(), EngineError> {
        Ok(self.items.upsert(items.to_vec()).await?)
    }

    fn index(&self, id: Arc<str>, version: u64, vector: &[f32], labels: Labels) {
        self.index.upsert(id, version, vector, labels);
    }

    async fn delete(&self, id: &str, _known: Option<Arc<str>>) -> Result<bool, EngineError> {
        if !self.items.delete(id).await? {
            return Ok(false);
        }
        self.index.remove(id);
        Ok(true)
    }

    fn report_sizes(&self, metrics: &Metrics) {
        for shard in self.index.shards() {
            metrics.set_shard_items(shard.id(), shard.len());
        }
    }
}
