//! Item-to-item baselines: item-kNN (cosine of binary item vectors) and RP3β (Paudel et
//! al. 2017, the engine's item-item learner in its RP3β mode), with their validation grids.

use std::collections::{HashMap, HashSet};

use core_api::learn::collab::CollabMethod;
use core_api::learn::{CollabParams, ItemNeighbours};

use super::Popularity;
use crate::data::is_positive;
use crate::tuned::{Family, SplitData, TunedLists, Tuning};

/// Item-based collaborative filtering (cosine over binary user vectors, top-k neighbours per
/// item, sum of similarities to the user's items), backfilled from popularity.
#[derive(Debug, Clone)]
pub struct ItemKnn {
    ids: Vec<String>,
    index: HashMap<String, usize>,
    /// Per item: its most similar items (index, cosine), best first.
    neighbours: Vec<Vec<(usize, f64)>>,
    /// Position of each item in the popularity ranking (tie-break and backfill).
    pop_rank: Vec<usize>,
    popularity: Popularity,
}

impl ItemKnn {
    /// `positives`: (user, item) of every positive training interaction (a user who liked
    /// an item twice counts once in the similarities). `k`: neighbours kept per item.
    pub fn fit<'a>(
        catalogue: &[String],
        positives: impl IntoIterator<Item = (&'a str, &'a str)>,
        k: usize,
    ) -> Self {
        let mut ids: Vec<String> = catalogue.to_vec();
        ids.sort();
        ids.dedup();
        let index: HashMap<String, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, x)| (x.clone(), i))
            .collect();
        let mut users: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut liked: Vec<&str> = Vec::new();
        for (user, item) in positives {
            liked.push(item);
            if let Some(&i) = index.get(item) {
                let items = users.entry(user).or_default();
                if !items.contains(&i) {
                    items.push(i);
                }
            }
        }
        // The same ranking as the popularity baseline (every positive interaction counts).
        let popularity = Popularity::fit(&ids, liked);
        let mut degree = vec![0usize; ids.len()];
        let mut co: Vec<HashMap<usize, usize>> = vec![HashMap::new(); ids.len()];
        for items in users.values() {
            for (n, &a) in items.iter().enumerate() {
                degree[a] += 1;
                for &b in &items[n + 1..] {
                    *co[a].entry(b).or_default() += 1;
                    *co[b].entry(a).or_default() += 1;
                }
            }
        }
        let neighbours = co
            .iter()
            .enumerate()
            .map(|(a, row)| {
                let mut list: Vec<(usize, f64)> = row
                    .iter()
                    .map(|(&b, &c)| (b, c as f64 / ((degree[a] * degree[b]) as f64).sqrt()))
                    .collect();
                list.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
                list.truncate(k);
                list
            })
            .collect();
        let mut pop_rank = vec![0usize; ids.len()];
        for (rank, item) in popularity.ranked().iter().enumerate() {
            pop_rank[index[item]] = rank;
        }
        Self {
            ids,
            index,
            neighbours,
            pop_rank,
            popularity,
        }
    }

    /// The kept neighbours of `item`, best first.
    pub fn neighbours(&self, item: &str) -> Vec<(&str, f64)> {
        self.index.get(item).map_or_else(Vec::new, |&i| {
            self.neighbours[i]
                .iter()
                .map(|&(j, s)| (self.ids[j].as_str(), s))
                .collect()
        })
    }

    /// Every candidate with a positive score for a user whose positive training items are
    /// `history`, best first (ties by popularity, then id), `exclude` left out.
    pub fn scores(&self, history: &[&str], exclude: &HashSet<&str>) -> Vec<(String, f64)> {
        let mut seeds: Vec<usize> = history
            .iter()
            .filter_map(|x| self.index.get(*x).copied())
            .collect();
        seeds.sort_unstable();
        seeds.dedup();
        let mut scores: HashMap<usize, f64> = HashMap::new();
        for &s in &seeds {
            for &(j, sim) in &self.neighbours[s] {
                *scores.entry(j).or_default() += sim;
            }
        }
        let mut ranked: Vec<(usize, f64)> = scores
            .into_iter()
            .filter(|(j, s)| *s > 0.0 && !exclude.contains(self.ids[*j].as_str()))
            .collect();
        ranked.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then(self.pop_rank[a.0].cmp(&self.pop_rank[b.0]))
        });
        ranked
            .into_iter()
            .map(|(j, s)| (self.ids[j].clone(), s))
            .collect()
    }

    /// The top `k`, filled from popularity when fewer than `k` items score.
    pub fn recommend(&self, history: &[&str], exclude: &HashSet<&str>, k: usize) -> Vec<String> {
        let mut list: Vec<String> = self
            .scores(history, exclude)
            .into_iter()
            .take(k)
            .map(|(x, _)| x)
            .collect();
        if list.len() < k {
            let taken: HashSet<String> = list.iter().cloned().collect();
            let fill: Vec<String> = self
                .popularity
                .ranked()
                .iter()
                .filter(|x| !exclude.contains(x.as_str()) && !taken.contains(*x))
                .take(k - list.len())
                .cloned()
                .collect();
            list.extend(fill);
        }
        list
    }
}

/// Scores of every item from an item-item model and a binary history.
fn item_item_scores(model: &ItemNeighbours, history: &[u32], n: usize) -> Vec<f32> {
    let mut s = HashMap::new();
    let history: Vec<(u32, f32)> = history.iter().map(|&i| (i, 1.0)).collect();
    model.score_into(&history, &mut s);
    let mut out = vec![0f32; n];
    for (i, v) in s {
        out[i as usize] = v;
    }
    out
}

/// Lists of the engine's item-item learner under `params`, every item scored (RP3β and
/// sparse EASE).
pub(crate) fn item_item_lists(
    t: &Tuning<'_>,
    params: &CollabParams,
    d: &SplitData<'_>,
) -> Vec<Vec<String>> {
    let p = t.prepared(d);
    let model = ItemNeighbours::train(d.catalogue.len(), &d.users(p), params);
    d.lists(p, t.k, &|h| {
        Some(item_item_scores(&model, h, d.catalogue.len()))
    })
}

/// Item-kNN, the number of neighbours kept per item tuned.
pub(crate) fn tuned_item_knn(t: &Tuning<'_>) -> TunedLists {
    let k = t.k;
    let knn = Family {
        name: "item-kNN",
        settings: [20usize, 50, 200]
            .into_iter()
            .map(|n| (format!("k={n}"), n))
            .collect(),
    };
    t.tune_lists(knn, &|&n, d| {
        let p = t.prepared(d);
        let positives: Vec<(&str, &str)> = d
            .train
            .iter()
            .filter(|e| is_positive(e.action))
            .map(|e| (e.user_id.as_str(), e.item_id.as_str()))
            .collect();
        let model = ItemKnn::fit(d.catalogue, positives.iter().copied(), n);
        d.tests
            .iter()
            .map(|t| {
                let name = |&i: &u32| d.catalogue[i as usize].as_str();
                let history: Vec<&str> = p
                    .positives
                    .get(&t.user_id)
                    .map(|h| h.iter().map(name).collect())
                    .unwrap_or_default();
                let seen: HashSet<&str> = p
                    .seen
                    .get(&t.user_id)
                    .map(|s| s.iter().map(name).collect())
                    .unwrap_or_default();
                model.recommend(&history, &seen, k)
            })
            .collect()
    })
}

/// RP3β, its popularity exponents tuned.
pub(crate) fn tuned_rp3(t: &Tuning<'_>) -> TunedLists {
    let rp3 = Family {
        name: "RP3β",
        settings: [(1.0f32, 0.0f32), (1.0, 0.3), (1.0, 0.6), (0.6, 0.3)]
            .into_iter()
            .map(|(alpha, beta)| {
                (
                    format!("α={alpha}, β={beta}"),
                    CollabParams {
                        method: CollabMethod::Rp3Beta,
                        alpha,
                        beta,
                        ..CollabParams::default()
                    },
                )
            })
            .collect(),
    };
    t.tune_lists(rp3, &|params, d| item_item_lists(t, params, d))
}
