//! The popularity baseline (most positive training interactions first) and the seeded
//! random floor.

use std::collections::{HashMap, HashSet};

use super::SplitMix64;
use crate::tuned::{TunedLists, Tuning};

/// Most positive training interactions first; ties (and never-liked items, last) by id.
#[derive(Debug, Clone)]
pub struct Popularity {
    ranked: Vec<String>,
    counts: HashMap<String, usize>,
}

impl Popularity {
    /// `positives`: the item of every positive training interaction.
    pub fn fit<'a>(catalogue: &[String], positives: impl IntoIterator<Item = &'a str>) -> Self {
        let known: HashSet<&str> = catalogue.iter().map(String::as_str).collect();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for item in positives {
            if known.contains(item) {
                *counts.entry(item.to_string()).or_default() += 1;
            }
        }
        let mut ranked: Vec<String> = catalogue.to_vec();
        ranked.sort_by(|a, b| {
            let (ca, cb) = (
                counts.get(a).copied().unwrap_or(0),
                counts.get(b).copied().unwrap_or(0),
            );
            cb.cmp(&ca).then_with(|| a.cmp(b))
        });
        ranked.dedup();
        Self { ranked, counts }
    }

    pub fn count(&self, item: &str) -> usize {
        self.counts.get(item).copied().unwrap_or(0)
    }

    /// The catalogue, most popular first.
    pub fn ranked(&self) -> &[String] {
        &self.ranked
    }

    /// The `k` most popular items not in `exclude`.
    pub fn recommend(&self, exclude: &HashSet<&str>, k: usize) -> Vec<String> {
        self.ranked
            .iter()
            .filter(|x| !exclude.contains(x.as_str()))
            .take(k)
            .cloned()
            .collect()
    }
}

/// `k` distinct items drawn uniformly from the catalogue minus `exclude`, seeded by `seed`
/// and the user id (independent of the order users are evaluated in).
pub fn random_list(
    catalogue: &[String],
    exclude: &HashSet<&str>,
    k: usize,
    seed: u64,
    user_id: &str,
) -> Vec<String> {
    let user_hash = u64::from_str_radix(&shared_types::stable_hash(user_id), 16).unwrap_or(0);
    let mut rng = SplitMix64(seed ^ user_hash);
    let mut pool: Vec<&String> = catalogue
        .iter()
        .filter(|x| !exclude.contains(x.as_str()))
        .collect();
    let take = k.min(pool.len());
    for i in 0..take {
        let j = i + (rng.next_u64() % (pool.len() - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.into_iter().take(take).cloned().collect()
}

/// Popularity has nothing to tune; its validation score is reported all the same.
pub(crate) fn tuned_popularity(t: &Tuning<'_>) -> TunedLists {
    let (validation, test, k) = (t.validation, t.test, t.k);
    TunedLists {
        name: "popularity".into(),
        lists: test.lists(t.prepared(test), k, &|_| None),
        validation_ndcg: validation
            .ndcg(&validation.lists(t.prepared(validation), k, &|_| None), k),
    }
}
