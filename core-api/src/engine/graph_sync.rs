//! Keeping the item graph in step with the catalogue: each item as a node with
//! `SIMILAR_TO` edges to its nearest items, filled in the background at start and updated
//! on every catalogue write.

use std::sync::{Arc, Weak};
use std::time::Instant;

use crate::catalog::CatalogEntry;
use crate::error::EngineError;
use crate::store::ContentNode;
use vector_index::Hit;

use super::Engine;

/// Items written to the graph per batch when it is filled.
const GRAPH_SYNC_BATCH: usize = 500;
/// Quality of an item that states none, for the graph's threshold.
const DEFAULT_QUALITY: f32 = 0.5;

/// An item as a graph node with its `SIMILAR_TO` neighbours.
pub(super) fn content_node(entry: &CatalogEntry, similar: Vec<(Arc<str>, f32)>) -> ContentNode {
    ContentNode {
        id: entry.id.clone(),
        title: entry.item.title.clone(),
        genres: entry.item.genres.clone(),
        quality: entry.item.quality.unwrap_or(DEFAULT_QUALITY),
        similar,
    }
}

/// Marks the graph fill finished however its task ends (done, failed, or dropped with its
/// runtime).
pub(super) struct FillDone(pub Arc<tokio::sync::watch::Sender<bool>>);

impl Drop for FillDone {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

impl Engine {
    /// Fills the item graph with the catalogue and its `SIMILAR_TO` edges when it is
    /// behind (always for the in-process graph, once for a fresh Neo4j), in the background.
    /// The fill holds the engine only while it works on a batch, so dropping the engine (a
    /// test, the ingest tool) is never held up by it.
    pub(super) async fn sync_graph(engine: Weak<Self>) -> Result<(), EngineError> {
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

    /// Fills the item graph now, as opening the engine does in the background (for engines
    /// opened with [`Engine::open`], e.g. the offline evaluation).
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
    pub(super) async fn content_nodes(
        &self,
        entries: Vec<Arc<CatalogEntry>>,
        k: usize,
    ) -> Result<Vec<ContentNode>, EngineError> {
        if k == 0 {
            return Ok(entries
                .iter()
                .map(|e| content_node(e, Vec::new()))
                .collect());
        }
        let hits = self.vectors.nearest_each(entries.clone(), k + 1).await?;
        let nearest = |hits: Vec<Hit>, own: &Arc<str>| -> Vec<(Arc<str>, f32)> {
            hits.into_iter()
                .filter(|hit| &hit.item_id != own)
                .take(k)
                .map(|hit| (hit.item_id, hit.score))
                .collect()
        };
        Ok(entries
            .iter()
            .zip(hits)
            .map(|(e, hits)| content_node(e, nearest(hits, &e.id)))
            .collect())
    }

    /// Writes `entries` and their nearest neighbours to the item graph (best effort).
    pub(super) async fn update_graph(&self, entries: Vec<Arc<CatalogEntry>>) {
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
        self.vectors.graph_backlog()
    }
}
