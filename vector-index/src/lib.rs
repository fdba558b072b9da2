//! Sharded vector index: items are spread over shards by a stable hash of their id, every
//! shard is searched in parallel and the hits are merged.
//!
//! Each local shard is a frozen HNSW graph (fast, read-only, see [`graph`]) plus a small
//! mutable delta searched exactly. Upserts and deletes only touch the delta and the live
//! version map; a hit is valid only when its version is still the item's live version, so
//! replaced and deleted vectors act as tombstones until the shard is rebuilt in the
//! background and its snapshot rewritten.

pub mod distance;
pub mod filter;
pub mod graph;
pub mod rows;
mod shard;
pub mod storage;

use std::sync::Arc;

use rayon::prelude::*;

pub use filter::{Clause, Filter, LabelIndex, NodeSet};
pub use graph::{BuildParams, FrozenGraph};
pub use rows::{MappedFile, Rows};
pub use shard::LocalShard;
pub use storage::{Fp16, Fp32, Int8, Storage};

/// A search result from one shard: the item, the version of its vector, the cosine score.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub item_id: Arc<str>,
    pub score: f32,
}

/// The labels an item carries for filters ("genre:drama", "lang:en"; see [`filter`]).
pub type Labels = Box<[Arc<str>]>;

/// An item as a shard is opened with.
#[derive(Debug, Clone)]
pub struct ShardItem {
    pub id: Arc<str>,
    /// Version of the vector; a hit counts only while it is the item's live version.
    pub version: u64,
    /// Unit vector.
    pub vector: Vec<f32>,
    pub labels: Labels,
}

/// Index parameters (the design's defaults: M=16, ef_construction=200, ef_search=100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexParams {
    pub dim: usize,
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    /// Rebuild a shard once its delta holds more than this many vectors.
    pub rebuild_threshold: usize,
    /// What the graph walk reads (FP16 by default).
    pub precision: Precision,
}

/// The vectors a shard's graph walk reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// FP16 rows: half of FP32's memory at a negligible recall cost.
    #[default]
    Fp16,
    /// The walk reads INT8 rows (a quarter of FP32's memory, and faster); its best `rerank`
    /// candidates are re-scored on the FP16 rows, which recovers FP16's recall and whose
    /// pages are touched only for those candidates.
    Int8Rerank { rerank: usize },
}

impl IndexParams {
    pub fn build(&self) -> BuildParams {
        BuildParams {
            m: self.m,
            ef_construction: self.ef_construction,
        }
    }
}

/// One partition of the catalogue. Local today; a remote shard on another node implements
/// the same trait.
pub trait Shard: Send + Sync {
    fn id(&self) -> usize;
    /// Best `k` live items for a unit-length `query`, best first.
    /// Only items `filter` admits are returned (see [`filter`]).
    fn search(&self, query: &[f32], k: usize, ef: usize, filter: &Filter) -> Vec<Hit>;
    /// Inserts or replaces an item's vector and labels.
    fn upsert(&self, item_id: Arc<str>, version: u64, vector: &[f32], labels: Labels);
    fn remove(&self, item_id: &str);
    /// Live items in the shard.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Approximate bytes of vectors and links, on the heap or mapped from a snapshot.
    fn memory_bytes(&self) -> usize;
}

/// Shard of an item: CRC-32 of its id modulo the shard count. Stable across processes,
/// platforms and releases (unlike std `Hash`), so snapshots and cluster placement agree.
pub fn shard_of(item_id: &str, shards: usize) -> usize {
    (crc32fast::hash(item_id.as_bytes()) as usize) % shards.max(1)
}

/// All shards of the index, searched together.
pub struct ShardedIndex {
    shards: Vec<Arc<dyn Shard>>,
    params: IndexParams,
}

impl ShardedIndex {
    pub fn new(shards: Vec<Arc<dyn Shard>>, params: IndexParams) -> Self {
        Self { shards, params }
    }

    pub fn params(&self) -> IndexParams {
        self.params
    }

    pub fn shards(&self) -> &[Arc<dyn Shard>] {
        &self.shards
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn owner(&self, item_id: &str) -> &Arc<dyn Shard> {
        &self.shards[shard_of(item_id, self.shards.len())]
    }

    pub fn upsert(&self, item_id: Arc<str>, version: u64, vector: &[f32], labels: Labels) {
        self.owner(&item_id)
            .upsert(item_id.clone(), version, vector, labels);
    }

    pub fn remove(&self, item_id: &str) {
        self.owner(item_id).remove(item_id);
    }

    /// Searches every shard in parallel (on the rayon pool, never on the async reactor) and
    /// merges the per-shard top-`k` lists into the global top-`k` of the items `filter` admits.
    pub fn search(&self, query: &[f32], k: usize, ef: Option<usize>, filter: &Filter) -> Vec<Hit> {
        let ef = ef.unwrap_or(self.params.ef_search).max(k);
        let mut hits: Vec<Hit> = self
            .shards
            .par_iter()
            .flat_map_iter(|shard| shard.search(query, k, ef, filter))
            .collect();
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.item_id.cmp(&b.item_id))
        });
        hits.truncate(k);
        hits
    }
}
