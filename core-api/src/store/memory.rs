//! In-process defaults: the user-embedding cache and the co-interaction item graph.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{GraphNeighbour, ItemGraph, StoreError, UserEmbeddingCache};

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
}

/// Most neighbours kept per item: bounds memory and the cost of a lookup.
const MAX_EDGES_PER_ITEM: usize = 64;

/// A weighted link to another item.
type Edge = (Arc<str>, f32);

/// Item-to-item co-interaction graph: an edge links two items the same user engaged with
/// close together, weighted by how often that happened.
#[derive(Default)]
pub struct InProcessItemGraph {
    edges: RwLock<HashMap<Arc<str>, Vec<Edge>>>,
}

impl InProcessItemGraph {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `weight` to the edge a→b (and b→a), keeping each list bounded.
    pub fn link(&self, a: &Arc<str>, b: &Arc<str>, weight: f32) {
        if a == b {
            return;
        }
        let mut edges = self.edges.write().expect("graph lock");
        for (from, to) in [(a, b), (b, a)] {
            let list = edges.entry(from.clone()).or_default();
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

    /// Links `item` to the user's earlier items, given newest first: closer in the user's
    /// sequence means a stronger link.
    pub fn link_after<'a>(
        &self,
        previous_newest_first: impl Iterator<Item = &'a Arc<str>>,
        item: &Arc<str>,
    ) {
        for (distance, prev) in previous_newest_first.enumerate() {
            self.link(prev, item, 1.0 / (1.0 + distance as f32));
        }
    }

    pub fn edge_count(&self) -> usize {
        self.edges
            .read()
            .expect("graph lock")
            .values()
            .map(Vec::len)
            .sum::<usize>()
            / 2
    }
}

#[async_trait]
impl ItemGraph for InProcessItemGraph {
    async fn neighbours(
        &self,
        seeds: &[(Arc<str>, f32)],
        limit: usize,
    ) -> Result<Vec<GraphNeighbour>, StoreError> {
        let edges = self.edges.read().expect("graph lock");
        let mut scores: HashMap<Arc<str>, (f32, Arc<str>, f32)> = HashMap::new();
        for (seed, seed_weight) in seeds {
            let Some(list) = edges.get(seed) else {
                continue;
            };
            let total: f32 = list.iter().map(|(_, w)| w).sum::<f32>().max(1e-6);
            for (id, w) in list {
                let contribution = seed_weight * w / total;
                let entry = scores.entry(id.clone()).or_insert((0.0, seed.clone(), 0.0));
                entry.0 += contribution;
                if contribution > entry.2 {
                    entry.1 = seed.clone();
                    entry.2 = contribution;
                }
            }
        }
        let mut out: Vec<GraphNeighbour> = scores
            .into_iter()
            .filter(|(id, _)| !seeds.iter().any(|(s, _)| s == id))
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

    async fn record(&self, previous: &[Arc<str>], item: &Arc<str>) -> Result<(), StoreError> {
        self.link_after(previous.iter(), item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn graph_ranks_frequent_co_interactions_first() {
        let g = InProcessItemGraph::new();
        let [a, b, c, d]: [Arc<str>; 4] = ["a", "b", "c", "d"].map(Arc::from);
        g.record(std::slice::from_ref(&a), &b).await.unwrap();
        g.record(std::slice::from_ref(&a), &b).await.unwrap();
        g.record(std::slice::from_ref(&a), &c).await.unwrap();
        g.record(std::slice::from_ref(&d), &c).await.unwrap();
        let n = g.neighbours(&[(a.clone(), 1.0)], 10).await.unwrap();
        let ids: Vec<&str> = n.iter().map(|x| &*x.item_id).collect();
        assert_eq!(ids, ["b", "c"]);
        assert!(n.iter().all(|x| x.via == a));
        assert_eq!(g.edge_count(), 3);
    }

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
