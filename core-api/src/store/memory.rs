//! In-process defaults: the user-embedding cache and the item graph.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    ContentNode, GraphNeighbour, ImpressionStore, ItemGraph, StoreError, UserEmbeddingCache,
};
use crate::policy::{Attribution, Impression, ImpressionLog, LoggedDecision};

/// Bounded map of user vectors with a time-to-live (Redis takes this role in production).
pub struct InProcessUserCache {
    entries: Mutex<HashMap<String, (Vec<f32>, Instant)>>,
    capacity: usize,
    ttl: Duration,
}

impl InProcessUserCache {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            ttl,
        }
    }
}

#[async_trait]
impl UserEmbeddingCache for InProcessUserCache {
    async fn get(&self, user_id: &str) -> Option<Vec<f32>> {
        let entries = self.entries.lock().expect("cache lock");
        entries
            .get(user_id)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(v, _)| v.clone())
    }

    async fn put(&self, user_id: &str, vector: &[f32]) {
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.len() >= self.capacity {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                // Still full of live entries: drop the oldest tenth in one go.
                let mut ages: Vec<Instant> = entries.values().map(|(_, at)| *at).collect();
                ages.sort();
                let cutoff = ages[ages.len() / 10];
                entries.retain(|_, (_, at)| *at > cutoff);
            }
        }
        entries.insert(user_id.to_string(), (vector.to_vec(), Instant::now()));
    }

    async fn invalidate(&self, user_id: &str) {
        self.entries.lock().expect("cache lock").remove(user_id);
    }

    async fn forget(&self, user_id: &str) -> Result<(), StoreError> {
        self.invalidate(user_id).await;
        Ok(())
    }
}

/// Most co-engagement neighbours kept per item: bounds memory and the cost of a lookup.
const MAX_EDGES_PER_ITEM: usize = 64;

/// A weighted link to another item.
type Edge = (Arc<str>, f32);

#[derive(Default)]
struct GraphState {
    /// Content nodes and their quality.
    quality: HashMap<Arc<str>, f32>,
    /// `SIMILAR_TO` edges as written (outgoing) and the reverse index.
    similar_out: HashMap<Arc<str>, Vec<Edge>>,
    similar_in: HashMap<Arc<str>, Vec<Edge>>,
    /// Symmetric co-engagement edges.
    co: HashMap<Arc<str>, Vec<Edge>>,
}

impl GraphState {
    fn add_co(&mut self, a: &Arc<str>, b: &Arc<str>, weight: f32) {
        for (from, to) in [(a, b), (b, a)] {
            let list = self.co.entry(from.clone()).or_default();
            match list.iter_mut().find(|(id, _)| id == to) {
                Some((_, w)) => *w += weight,
                None => list.push((to.clone(), weight)),
            }
            if list.len() > MAX_EDGES_PER_ITEM {
                list.sort_by(|x, y| y.1.total_cmp(&x.1));
                list.truncate(MAX_EDGES_PER_ITEM);
            }
        }
    }

    fn drop_similar_out(&mut self, id: &Arc<str>) {
        for (to, _) in self.similar_out.remove(id).unwrap_or_default() {
            if let Some(list) = self.similar_in.get_mut(&to) {
                list.retain(|(from, _)| from != id);
            }
        }
    }
}

/// The item graph held in process: `SIMILAR_TO` and co-engagement edges (see [`ItemGraph`]
/// for the scoring shared with Neo4j). Co-engagement is rebuilt from the event log at start.
pub struct InProcessItemGraph {
    state: RwLock<GraphState>,
    min_quality: f32,
}

impl InProcessItemGraph {
    pub fn new(min_quality: f32) -> Self {
        Self {
            state: RwLock::default(),
            min_quality,
        }
    }

    /// Synchronous form of [`ItemGraph::record`], for replaying the event log.
    pub fn link_after<'a>(
        &self,
        previous_newest_first: impl Iterator<Item = &'a Arc<str>>,
        item: &Arc<str>,
    ) {
        let mut state = self.state.write().expect("graph lock");
        if !state.quality.contains_key(item) {
            return;
        }
        for (distance, prev) in previous_newest_first.enumerate() {
            if prev != item && state.quality.contains_key(prev) {
                state.add_co(prev, item, 1.0 / (1.0 + distance as f32));
            }
        }
    }

    /// Synchronous form of [`ItemGraph::upsert_content`].
    pub fn insert_nodes(&self, nodes: Vec<ContentNode>) {
        let mut state = self.state.write().expect("graph lock");
        for node in nodes {
            state.quality.insert(node.id.clone(), node.quality);
            state.drop_similar_out(&node.id);
            let similar: Vec<Edge> = node
                .similar
                .into_iter()
                .filter(|(to, _)| *to != node.id)
                .collect();
            for (to, w) in &similar {
                state
                    .similar_in
                    .entry(to.clone())
                    .or_default()
                    .push((node.id.clone(), *w));
            }
            state.similar_out.insert(node.id, similar);
        }
    }

    /// Co-engagement edges (each pair once).
    pub fn edge_count(&self) -> usize {
        let state = self.state.read().expect("graph lock");
        state.co.values().map(Vec::len).sum::<usize>() / 2
    }
}

#[async_trait]
impl ItemGraph for InProcessItemGraph {
    async fn neighbours(
        &self,
        seeds: &[(Arc<str>, f32)],
        limit: usize,
    ) -> Result<Vec<GraphNeighbour>, StoreError> {
        let state = self.state.read().expect("graph lock");
        // neighbour -> (score, via, best contribution)
        let mut scores: HashMap<Arc<str>, (f32, Arc<str>, f32)> = HashMap::new();
        for (seed, seed_weight) in seeds {
            let lists = [&state.similar_out, &state.similar_in, &state.co];
            for (id, w) in lists.iter().filter_map(|m| m.get(seed)).flatten() {
                let admitted = state
                    .quality
                    .get(id)
                    .is_some_and(|&q| q >= self.min_quality);
                if !admitted || seeds.iter().any(|(s, _)| s == id) {
                    continue;
                }
                let contribution = seed_weight * w;
                let entry =
                    scores
                        .entry(id.clone())
                        .or_insert((0.0, seed.clone(), f32::NEG_INFINITY));
                entry.0 += contribution;
                if contribution > entry.2 {
                    entry.1 = seed.clone();
                    entry.2 = contribution;
                }
            }
        }
        let mut out: Vec<GraphNeighbour> = scores
            .into_iter()
            .map(|(item_id, (score, via, _))| GraphNeighbour {
                item_id,
                score,
                via,
            })
            .collect();
        out.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.item_id.cmp(&b.item_id))
        });
        out.truncate(limit);
        Ok(out)
    }

    async fn record(
        &self,
        _user_id: &str,
        previous: &[Arc<str>],
        item: &Arc<str>,
    ) -> Result<(), StoreError> {
        self.link_after(previous.iter(), item);
        Ok(())
    }

    /// Nothing to remove: this graph keeps no user, only co-engagement weights between items.
    async fn forget_user(&self, _user_id: &str) -> Result<usize, StoreError> {
        Ok(0)
    }

    async fn upsert_content(&self, nodes: Vec<ContentNode>) -> Result<(), StoreError> {
        self.insert_nodes(nodes);
        Ok(())
    }

    async fn remove_content(&self, item_id: &str) -> Result<(), StoreError> {
        let mut state = self.state.write().expect("graph lock");
        let id: Arc<str> = Arc::from(item_id);
        state.quality.remove(&id);
        state.drop_similar_out(&id);
        for (from, _) in state.similar_in.remove(&id).unwrap_or_default() {
            if let Some(list) = state.similar_out.get_mut(&from) {
                list.retain(|(to, _)| *to != id);
            }
        }
        for (other, _) in state.co.remove(&id).unwrap_or_default() {
            if let Some(list) = state.co.get_mut(&other) {
                list.retain(|(to, _)| *to != id);
            }
        }
        Ok(())
    }

    async fn content_count(&self) -> Result<usize, StoreError> {
        Ok(self.state.read().expect("graph lock").quality.len())
    }
}

/// The single node's impressions: in memory, the last `policy.impression_capacity`.
#[async_trait]
impl ImpressionStore for ImpressionLog {
    async fn record(&self, id: String, impression: Impression) -> Result<(), StoreError> {
        ImpressionLog::record(self, id, impression);
        Ok(())
    }

    async fn reward(
        &self,
        id: &str,
        user: &str,
        item: &str,
        reward: f32,
    ) -> Result<Option<Attribution>, StoreError> {
        Ok(ImpressionLog::reward(self, id, user, item, reward))
    }

    async fn forget_user(&self, user: &str) -> Result<usize, StoreError> {
        Ok(ImpressionLog::forget_user(self, user))
    }

    async fn decisions(&self, limit: usize) -> Result<Vec<LoggedDecision>, StoreError> {
        let mut all = ImpressionLog::decisions(self);
        let skip = all.len().saturating_sub(limit);
        Ok(all.split_off(skip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn user_cache_expires_and_invalidates() {
        let cache = InProcessUserCache::new(2, Duration::from_secs(60));
        cache.put("u1", &[1.0]).await;
        assert_eq!(cache.get("u1").await, Some(vec![1.0]));
        cache.invalidate("u1").await;
        assert_eq!(cache.get("u1").await, None);
        let expired = InProcessUserCache::new(2, Duration::ZERO);
        expired.put("u1", &[1.0]).await;
        assert_eq!(expired.get("u1").await, None);
        for u in ["a", "b", "c", "d"] {
            cache.put(u, &[0.0]).await;
        }
        assert!(
            cache.entries.lock().unwrap().len() <= 2,
            "capacity is bounded"
        );
    }
}
