//! Offline evaluation (`reco-eval`): replays a time-ordered interactions file into the
//! engine, holds out each user's latest positive interactions and measures how well the
//! engine and strong baselines recover them, every method tuned on a validation split.
//!
//! # Protocol
//!
//! * **Data.** Ratings `user::movie::rating(0-10)::unix_time` are mapped to actions by
//!   [`crate::demo::parse_rating`] (8-10 like, 6-7 complete, 4-5 view, else dislike) and
//!   sorted by time (stable: ties keep file order). *Positive* means like or complete.
//! * **Catalogue.** The films that appear in the ratings file, with metadata from the film
//!   catalogue; only these are embedded and indexed. Quality priors are the Bayesian-smoothed
//!   mean rating from the *training* ratings only.
//! * **Split (leave-last-out by time).** A user with at least `holdout + 2` positive
//!   interactions is a test user: their latest `holdout` positives are held out, everything
//!   before the first held-out one is training, what follows is dropped; other users'
//!   interactions are all training. **Validation** applies the same split to the training
//!   events (each test user's second-latest positive).
//! * **Tuning.** Every method's settings (baselines in [`tuned`], the engine's in
//!   [`engine_settings`]) are chosen on validation NDCG@k; the chosen setting is refitted on
//!   all training events and scored once on the test split. The engine's setting must also
//!   reach `min_genre_diversity` on validation.
//! * **Engine.** A fresh engine per setting on a copy of one embedded item store and index
//!   snapshot (cached in `var/eval/`), item graph filled as at start-up, the training events
//!   replayed in time order through [`Engine::record_events`], one [`Engine::retrain`], then
//!   one `recommend` per test user (no intent, no filters, `limit = k`).
//! * **Baselines** ([`tuned`]): popularity, item-kNN, RP3β, sparse EASE, EASE, implicit ALS,
//!   next-item transitions, ALS + transitions, and a seeded random floor; each excludes every
//!   training item of the user and fills short lists from popularity.
//! * **Metrics** at `k`: HR, NDCG (binary relevance), MRR, catalogue coverage, ILD (1 −
//!   cosine of MiniLM embeddings within a list) and genre ILD (1 − Jaccard of genre sets).
//! * **Ablation.** The chosen engine setting with one stage switched off per row
//!   ([`ablation_variants`]).
//!
//! Everything is deterministic for a given cache: users are evaluated in id order, ties are
//! broken by id, random parts are seeded. The pure parts (split, metrics, baselines) take
//! plain data and are unit-tested without the model; [`run`] wires them to the real engine.

pub mod baselines;
pub mod tuned;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use shared_types::{Action, InteractionEvent, Item, RecommendationQuery};

use crate::config::{Config, RankingConfig};
use crate::engine::{item_text, Backends, Embedder, Engine, MAX_EVENTS_PER_REQUEST};
use crate::error::EngineError;
use crate::learn::LearningConfig;
use crate::metrics::Metrics;
use crate::store::{
    EmbeddedStore, InProcessItemGraph, InProcessUserCache, Interaction, ItemStore, StoreError,
    StoredItem,
};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Embed(#[from] gpu_batch::EmbedError),
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> EvalError {
    EvalError::Data(format!("{what} {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Split
// ---------------------------------------------------------------------------------------

/// Like or complete: the interactions held out and used by the baselines.
pub fn is_positive(action: Action) -> bool {
    matches!(action, Action::Like | Action::Complete)
}

/// A user evaluated on the items held out for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestUser {
    pub user_id: String,
    /// Held-out items, oldest first, without duplicates.
    pub held_out: Vec<String>,
}

/// The train/test split of a time-ordered interaction list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// Indices (into the input) of the training interactions, in input order.
    pub train: Vec<usize>,
    /// Test users, by user id.
    pub test: Vec<TestUser>,
}

/// Leave-last-out by time. `events` must be sorted by time. A user with at least
/// `min_positives` positive interactions (never fewer than `holdout + 1`) has their latest
/// `holdout` positive ones held out; their training is everything before the first held-out
/// one (later events are dropped). Other users' events are all training.
pub fn leave_last_out(events: &[Interaction], holdout: usize, min_positives: usize) -> Split {
    let mut positives: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        if is_positive(e.action) {
            positives.entry(e.user_id.as_str()).or_default().push(i);
        }
    }
    let needed = min_positives.max(holdout + 1);
    // user → index of their first held-out event (their training ends before it)
    let mut cut: HashMap<&str, usize> = HashMap::new();
    let mut test = Vec::new();
    if holdout > 0 {
        for (user, pos) in &positives {
            if pos.len() < needed {
                continue;
            }
            let held = &pos[pos.len() - holdout..];
            cut.insert(user, held[0]);
            let mut held_out: Vec<String> = Vec::with_capacity(holdout);
            for &i in held {
                if !held_out.contains(&events[i].item_id) {
                    held_out.push(events[i].item_id.clone());
                }
            }
            test.push(TestUser {
                user_id: user.to_string(),
                held_out,
            });
        }
    }
    test.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    let train = events
        .iter()
        .enumerate()
        .filter(|(i, e)| cut.get(e.user_id.as_str()).is_none_or(|&c| *i < c))
        .map(|(i, _)| i)
        .collect();
    Split { train, test }
}

// ---------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------

/// 1 when any relevant item is among the first `k` of `list`, else 0.
pub fn hit_at_k<S: AsRef<str>, R: AsRef<str>>(list: &[S], relevant: &[R], k: usize) -> f64 {
    let hit = list
        .iter()
        .take(k)
        .any(|x| relevant.iter().any(|r| r.as_ref() == x.as_ref()));
    f64::from(u8::from(hit))
}

/// NDCG@k with binary relevance: `DCG / IDCG`, `DCG = Σ_hits 1 / log2(rank + 1)` (ranks from
/// 1; an item listed twice counts once), `IDCG` the DCG of all relevant items on top. 0 when
/// nothing is relevant.
pub fn ndcg_at_k<S: AsRef<str>, R: AsRef<str>>(list: &[S], relevant: &[R], k: usize) -> f64 {
    let mut relevant: Vec<&str> = relevant.iter().map(AsRef::as_ref).collect();
    relevant.sort_unstable();
    relevant.dedup();
    let discount = |rank: usize| 1.0 / ((rank + 1) as f64).log2();
    let ideal: f64 = (1..=relevant.len().min(k)).map(discount).sum();
    if ideal == 0.0 {
        return 0.0;
    }
    let mut seen: HashSet<&str> = HashSet::new();
    let mut dcg = 0.0;
    for (i, x) in list.iter().take(k).enumerate() {
        let x = x.as_ref();
        if relevant.contains(&x) && seen.insert(x) {
            dcg += discount(i + 1);
        }
    }
    dcg / ideal
}

/// Distinct items recommended across all lists over the catalogue size.
pub fn coverage<S: AsRef<str>>(lists: &[Vec<S>], catalogue_size: usize) -> f64 {
    if catalogue_size == 0 {
        return 0.0;
    }
    let distinct: HashSet<&str> = lists.iter().flatten().map(AsRef::as_ref).collect();
    distinct.len() as f64 / catalogue_size as f64
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// Intra-list diversity: mean `1 - cosine` over the pairs of items of one list. Items with
/// no vector are skipped; `None` when fewer than two remain.
pub fn intra_list_diversity<S: AsRef<str>>(
    list: &[S],
    vectors: &HashMap<String, Vec<f32>>,
) -> Option<f64> {
    let vs: Vec<&[f32]> = list
        .iter()
        .filter_map(|x| vectors.get(x.as_ref()).map(Vec::as_slice))
        .collect();
    if vs.len() < 2 {
        return None;
    }
    let mut sum = 0.0;
    let mut pairs = 0usize;
    for i in 0..vs.len() {
        for j in i + 1..vs.len() {
            sum += 1.0 - cosine(vs[i], vs[j]);
            pairs += 1;
        }
    }
    Some(sum / pairs as f64)
}

/// One row of the results table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodResult {
    pub method: String,
    pub users: usize,
    pub hr: f64,
    /// Half-width of the 95% interval of `hr` (normal approximation).
    pub hr_ci95: f64,
    pub ndcg: f64,
    pub coverage: f64,
    /// Mean intra-list diversity; 0 when no list had two items.
    pub ild: f64,
    /// Recommended items the user had interacted with in training (baselines: always 0).
    pub seen_recommended: usize,
    /// Mean reciprocal rank of the first held-out item within the list (0 beyond `k`).
    pub mrr: f64,
    /// Mean pairwise genre distance (1 − Jaccard of the genre sets) within a list.
    pub genre_ild: f64,
    /// Validation NDCG@k of the setting chosen there, for tuned methods.
    pub validation_ndcg: Option<f64>,
}

/// Scores one method's lists (`lists[i]` for `tests[i]`).
pub fn score_lists<S: AsRef<str>>(
    method: &str,
    tests: &[TestUser],
    lists: &[Vec<S>],
    k: usize,
    catalogue_size: usize,
    vectors: &HashMap<String, Vec<f32>>,
) -> MethodResult {
    assert_eq!(tests.len(), lists.len(), "one list per test user");
    let users = tests.len();
    let n = users.max(1) as f64;
    let hr = tests
        .iter()
        .zip(lists)
        .map(|(t, l)| hit_at_k(l, &t.held_out, k))
        .sum::<f64>()
        / n;
    let ndcg = tests
        .iter()
        .zip(lists)
        .map(|(t, l)| ndcg_at_k(l, &t.held_out, k))
        .sum::<f64>()
        / n;
    let truncated: Vec<Vec<&str>> = lists
        .iter()
        .map(|l| l.iter().take(k).map(AsRef::as_ref).collect())
        .collect();
    let ilds: Vec<f64> = truncated
        .iter()
        .filter_map(|l| intra_list_diversity(l, vectors))
        .collect();
    MethodResult {
        method: method.to_string(),
        users,
        hr,
        hr_ci95: 1.96 * (hr * (1.0 - hr) / n).sqrt(),
        ndcg,
        coverage: coverage(&truncated, catalogue_size),
        ild: if ilds.is_empty() {
            0.0
        } else {
            ilds.iter().sum::<f64>() / ilds.len() as f64
        },
        seen_recommended: 0,
        mrr: tests
            .iter()
            .zip(lists)
            .map(|(t, l)| reciprocal_rank(l, &t.held_out, k))
            .sum::<f64>()
            / n,
        genre_ild: 0.0,
        validation_ndcg: None,
    }
}

/// 1 / rank of the first relevant item within the first `k`, else 0.
pub fn reciprocal_rank<S: AsRef<str>, R: AsRef<str>>(list: &[S], relevant: &[R], k: usize) -> f64 {
    list.iter()
        .take(k)
        .position(|x| relevant.iter().any(|r| r.as_ref() == x.as_ref()))
        .map_or(0.0, |p| 1.0 / (p + 1) as f64)
}

/// Mean over lists (of two genre-tagged items or more) of the mean pairwise genre distance
/// `1 − |A ∩ B| / |A ∪ B|` within the first `k` items.
pub fn genre_diversity<S: AsRef<str>>(
    lists: &[Vec<S>],
    genres: &HashMap<String, Vec<String>>,
    k: usize,
) -> f64 {
    let per_list: Vec<f64> = lists
        .iter()
        .filter_map(|l| {
            let sets: Vec<HashSet<&str>> = l
                .iter()
                .take(k)
                .filter_map(|x| genres.get(x.as_ref()))
                .filter(|g| !g.is_empty())
                .map(|g| g.iter().map(String::as_str).collect())
                .collect();
            if sets.len() < 2 {
                return None;
            }
            let mut sum = 0.0;
            let mut pairs = 0usize;
            for i in 0..sets.len() {
                for j in i + 1..sets.len() {
                    let inter = sets[i].intersection(&sets[j]).count() as f64;
                    let union = sets[i].union(&sets[j]).count() as f64;
                    sum += 1.0 - inter / union;
                    pairs += 1;
                }
            }
            Some(sum / pairs as f64)
        })
        .collect();
    if per_list.is_empty() {
        0.0
    } else {
        per_list.iter().sum::<f64>() / per_list.len() as f64
    }
}

// ---------------------------------------------------------------------------------------
// Baselines
// ---------------------------------------------------------------------------------------

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

/// SplitMix64: small, seedable, identical everywhere.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
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
        let j = i + (rng.next() % (pool.len() - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.into_iter().take(take).cloned().collect()
}

// ---------------------------------------------------------------------------------------
// Engine variants
// ---------------------------------------------------------------------------------------

/// A named ranking configuration of the engine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Variant {
    pub name: String,
    pub ranking: RankingConfig,
    pub learning: LearningConfig,
}

/// The engine settings tried on validation, around the configured ones: the MMR
/// trade-off, the ranker's size and training labels, and the transitions' window and decay.
pub fn engine_settings(config: &Config) -> Vec<Variant> {
    let mut out = Vec::new();
    let base = &config.learning;
    for mmr in [config.ranking.mmr_lambda, 1.0] {
        for trees in [base.ranker.trees, base.ranker.trees * 3] {
            for (window, decay) in [(base.transitions.window, base.transitions.decay), (5, 1.0)] {
                for labels in [base.ranker_labels_per_user, base.ranker_labels_per_user * 2] {
                    let mut ranking = config.ranking.clone();
                    ranking.mmr_lambda = mmr;
                    let mut learning = config.learning.clone();
                    learning.ranker.trees = trees;
                    learning.transitions.window = window;
                    learning.transitions.decay = decay;
                    learning.ranker_labels_per_user = labels;
                    out.push(Variant {
                        name: format!(
                            "{trees} trees, {labels} labels per user, transitions window {window} \
                             decay {decay}, MMR λ={mmr}"
                        ),
                        ranking,
                        learning,
                    });
                }
            }
        }
    }
    out
}

/// The full engine and one row per pipeline stage switched off.
pub fn ablation_variants(full: &Variant) -> Vec<Variant> {
    let variant = |name: &str, f: &dyn Fn(&mut Variant)| {
        let mut v = full.clone();
        v.name = name.to_string();
        f(&mut v);
        v
    };
    vec![
        variant("engine (full)", &|_| {}),
        variant("engine − collaborative", &|v| {
            v.learning.collab.neighbours = 0;
        }),
        variant("engine − transitions", &|v| {
            v.learning.transitions.window = 0;
        }),
        variant("engine − learned ranker (static weights)", &|v| {
            v.learning.ranker.trees = 0;
        }),
        variant("engine − MMR diversity", &|v| v.ranking.mmr_lambda = 1.0),
        variant("engine − graph candidates", &|v| {
            v.ranking.graph_weight = 0.0;
            v.ranking.graph_candidates = 0;
        }),
        variant("engine: before this release (no learned sources)", &|v| {
            v.learning.enabled = false;
        }),
    ]
}

/// The configuration with exploration switched off, so that runs are deterministic: when
/// it has an online-learning ranking policy (a `policy` section with an `epsilon`), that
/// epsilon becomes 0 and the policy serves greedily. Anything else is unchanged. Returns
/// whether exploration was switched off.
pub fn without_exploration(config: &Config) -> (Config, bool) {
    let Ok(mut value) = toml::Value::try_from(config) else {
        return (config.clone(), false);
    };
    match value.get_mut("policy").and_then(toml::Value::as_table_mut) {
        Some(policy) if policy.contains_key("epsilon") => {
            policy.insert("epsilon".into(), toml::Value::Float(0.0));
        }
        _ => return (config.clone(), false),
    }
    match value.try_into() {
        Ok(pinned) => (pinned, true),
        Err(_) => (config.clone(), false),
    }
}

/// Bayesian-smoothed mean rating in [0, 1] per item (towards the global mean, weight 5
/// ratings), from `(item, rating 0-10)` pairs; items without ratings get the global mean.
pub fn smoothed_quality<'a>(
    items: &[String],
    ratings: impl IntoIterator<Item = (&'a str, u8)>,
) -> HashMap<String, f32> {
    let mut sums: HashMap<&str, (f32, f32)> = HashMap::new();
    let (mut total, mut n) = (0f32, 0f32);
    for (item, r) in ratings {
        let e = sums.entry(item).or_default();
        e.0 += f32::from(r);
        e.1 += 1.0;
        total += f32::from(r);
        n += 1.0;
    }
    let global = total / n.max(1.0);
    items
        .iter()
        .map(|id| {
            let (sum, c) = sums.get(id.as_str()).copied().unwrap_or_default();
            let q = ((sum + 5.0 * global) / (c + 5.0) / 10.0).clamp(0.0, 1.0);
            (id.clone(), q)
        })
        .collect()
}

const VECTORS_MAGIC: &[u8; 8] = b"SREVAL01";

fn write_vectors(path: &Path, ids: &[String], vectors: &[Vec<f32>]) -> std::io::Result<()> {
    let dim = vectors.first().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(16 + ids.len() * (dim * 4 + 16));
    out.extend_from_slice(VECTORS_MAGIC);
    out.extend_from_slice(&(dim as u32).to_le_bytes());
    out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for (id, v) in ids.iter().zip(vectors) {
        out.extend_from_slice(&(id.len() as u32).to_le_bytes());
        out.extend_from_slice(id.as_bytes());
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, out)?;
    std::fs::rename(tmp, path)
}

fn read_vectors(path: &Path) -> std::io::Result<(usize, HashMap<String, Vec<f32>>)> {
    let bytes = std::fs::read(path)?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "corrupt vector cache");
    let mut pos = 0usize;
    let mut take = |n: usize| -> std::io::Result<&[u8]> {
        let s = bytes.get(pos..pos + n).ok_or_else(bad)?;
        pos += n;
        Ok(s)
    };
    if take(8)? != VECTORS_MAGIC {
        return Err(bad());
    }
    let u32_at = |s: &[u8]| u32::from_le_bytes(s.try_into().expect("4 bytes")) as usize;
    let dim = u32_at(take(4)?);
    let count = u32_at(take(4)?);
    let mut map = HashMap::with_capacity(count);
    for _ in 0..count {
        let len = u32_at(take(4)?);
        let id = String::from_utf8(take(len)?.to_vec()).map_err(|_| bad())?;
        let v: Vec<f32> = take(dim * 4)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        map.insert(id, v);
    }
    Ok((dim, map))
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// An embedded engine over the shared item store, with its in-process graph and user
/// cache; the graph is returned so it can be filled synchronously.
async fn open_engine(
    data_dir: &Path,
    mut config: Config,
    embedder: Arc<dyn Embedder>,
) -> Result<(Arc<Engine>, Arc<EmbeddedStore>), EvalError> {
    config.storage.data_dir = data_dir.to_path_buf();
    let store = Arc::new(EmbeddedStore::open(data_dir)?);
    let backends = Backends {
        items: store.clone(),
        interactions: store.clone(),
        graph: Arc::new(InProcessItemGraph::new(config.graph.min_quality)),
        user_cache: Arc::new(InProcessUserCache::new(
            config.storage.user_cache_entries,
            Duration::from_secs(config.storage.user_cache_ttl_secs),
        )),
    };
    let engine = Engine::open(config, backends, embedder, Arc::new(Metrics::new())).await?;
    Ok((engine, store))
}

/// What one engine variant recommended, per test user.
struct EngineLists {
    lists: Vec<Vec<String>>,
    seen_recommended: usize,
}

/// Everything shared by the engine variants of a run.
struct EngineRun<'a> {
    base_dir: &'a Path,
    work_dir: &'a Path,
    config: &'a Config,
    embedder: Arc<dyn Embedder>,
    train: &'a [InteractionEvent],
    tests: &'a [TestUser],
    seen: &'a [HashSet<String>],
    k: usize,
    concurrency: usize,
}

impl EngineRun<'_> {
    /// A fresh engine under `ranking` on a copy of the base store: graph filled as at
    /// start-up, training events recorded, one recommendation per test user.
    async fn run(&self, variant: &Variant) -> Result<EngineLists, EvalError> {
        let dir = self.work_dir;
        let _ = std::fs::remove_dir_all(dir);
        copy_dir(self.base_dir, dir).map_err(|e| io_error("cannot copy", self.base_dir, e))?;
        let mut config = self.config.clone();
        config.ranking = variant.ranking.clone();
        config.learning = variant.learning.clone();
        let result = self.run_in(dir, config).await;
        let _ = std::fs::remove_dir_all(dir);
        result
    }

    async fn run_in(&self, dir: &Path, config: Config) -> Result<EngineLists, EvalError> {
        let (engine, _store) = open_engine(dir, config.clone(), self.embedder.clone()).await?;
        // As `bootstrap::open_on_store` does in the background, but awaited, so the graph is
        // complete before the first event and the same in every variant.
        engine.fill_graph().await?;
        for chunk in self.train.chunks(MAX_EVENTS_PER_REQUEST) {
            engine.record_events(chunk.to_vec()).await?;
        }
        if config.learning.enabled {
            // As the background training does in service, awaited.
            engine.retrain().await?;
        }
        let k = self.k as u32;
        let answers: Vec<Result<Vec<String>, EvalError>> =
            futures::stream::iter(self.tests.iter().map(|t| {
                let engine = engine.clone();
                async move {
                    let req = RecommendationQuery {
                        user_id: Some(t.user_id.clone()),
                        limit: Some(k),
                        ..Default::default()
                    }
                    .normalise()
                    .map_err(EngineError::from)?;
                    let reply = engine.recommend(&req).await?;
                    Ok(reply.items.into_iter().map(|s| s.item.id).collect())
                }
            }))
            .buffered(self.concurrency.max(1))
            .collect()
            .await;
        let lists = answers.into_iter().collect::<Result<Vec<_>, _>>()?;
        let seen_recommended = lists
            .iter()
            .zip(self.seen)
            .map(|(l, seen)| l.iter().filter(|x| seen.contains(x.as_str())).count())
            .sum();
        Ok(EngineLists {
            lists,
            seen_recommended,
        })
    }
}

// ---------------------------------------------------------------------------------------
// The whole run
// ---------------------------------------------------------------------------------------

/// What to evaluate and how.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub ratings: PathBuf,
    pub catalog: PathBuf,
    /// Positive interactions held out per test user (leave-last-out).
    pub holdout: usize,
    /// Positive interactions a user needs to be tested (default `holdout + 2`).
    pub min_positives: Option<usize>,
    /// Cut-off of the lists and metrics.
    pub k: usize,
    pub seed: u64,
    /// Vector cache and cached item stores live here.
    pub cache_dir: PathBuf,
    /// Engine configuration (its ranking is the "full" variant; storage is overridden).
    pub config: Config,
    /// Run the ablation variants too (else only the full engine).
    pub ablation: bool,
    /// Evaluate at most this many test users (the first by id; 0 = all).
    pub max_users: usize,
    /// Genre intra-list diversity the engine's chosen setting must reach on validation.
    pub min_genre_diversity: f64,
    /// Try at most this many engine settings on validation (0 = all).
    pub engine_settings: usize,
    /// Recommendation requests in flight at once.
    pub concurrency: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        let config = Config::default();
        Self {
            ratings: config.demo.ratings.clone(),
            catalog: config.demo.catalog.clone(),
            holdout: 1,
            min_positives: None,
            k: 10,
            seed: 42,
            cache_dir: "var/eval".into(),
            config,
            ablation: true,
            max_users: 0,
            min_genre_diversity: 0.75,
            engine_settings: 0,
            concurrency: 4,
        }
    }
}

/// Sizes of the data the run saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DatasetStats {
    pub ratings: usize,
    pub users: usize,
    pub catalogue: usize,
    pub train_events: usize,
    pub test_users: usize,
    /// Ratings of films missing from the catalogue file (dropped).
    pub unknown_items: usize,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub ratings_file: String,
    /// Genre diversity the engine's setting had to reach on validation.
    pub min_genre_diversity: f64,
    pub catalog_file: String,
    pub holdout: usize,
    pub min_positives: usize,
    pub k: usize,
    pub seed: u64,
    pub dataset: DatasetStats,
    /// Items embedded in this run (0 when all vectors came from the cache).
    pub embedded_items: usize,
    pub embed_secs: f64,
    /// The engine's full ranking configuration.
    pub ranking: RankingConfig,
    pub history_limit: usize,
    /// Whether the online policy's exploration was switched off (see [`without_exploration`]).
    pub exploration_off: bool,
    pub rows: Vec<MethodResult>,
    pub secs: f64,
}

fn read_lines(path: &Path) -> Result<String, EvalError> {
    std::fs::read_to_string(path).map_err(|e| io_error("cannot read", path, e))
}

/// Vectors of `items` from `cache_dir` (keyed by model and texts), embedding and caching
/// them on a miss. Returns the vectors, the loaded model (the engine needs it too), how
/// many items were embedded and how long that took.
pub async fn catalogue_vectors(
    items: &[Item],
    cache_dir: &Path,
    model_dir: &Path,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(HashMap<String, Vec<f32>>, Arc<dyn Embedder>, usize, f64), EvalError> {
    let encoder = Arc::new(gpu_batch::TextEncoder::load(model_dir)?);
    let model_name = model_dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut canonical = format!("model={model_name} dim={}\n", encoder.dim());
    for item in items {
        canonical.push_str(&item.id);
        canonical.push('\t');
        canonical.push_str(&item_text(item));
        canonical.push('\n');
    }
    let path = cache_dir.join(format!(
        "vectors-{}.bin",
        shared_types::stable_hash(&canonical)
    ));
    if let Ok((dim, map)) = read_vectors(&path) {
        if dim == encoder.dim() && items.iter().all(|i| map.contains_key(&i.id)) {
            progress(&format!("{} vectors from {}", items.len(), path.display()));
            return Ok((map, encoder, 0, 0.0));
        }
    }
    progress(&format!(
        "embedding {} films on {} (first run only; cached in {})",
        items.len(),
        encoder.backend().name(),
        path.display()
    ));
    let started = Instant::now();
    let mut vectors = Vec::with_capacity(items.len());
    for chunk in items.chunks(256) {
        let texts: Vec<String> = chunk.iter().map(item_text).collect();
        let enc = encoder.clone();
        let batch = tokio::task::spawn_blocking(move || enc.embed_batch(&texts))
            .await
            .map_err(|e| EvalError::Data(format!("embedding task failed: {e}")))??;
        vectors.extend(batch);
        progress(&format!(
            "embedded {}/{} ({:.0} films/s)",
            vectors.len(),
            items.len(),
            vectors.len() as f64 / started.elapsed().as_secs_f64().max(1e-9)
        ));
    }
    let secs = started.elapsed().as_secs_f64();
    let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
    std::fs::create_dir_all(cache_dir).map_err(|e| io_error("cannot create", cache_dir, e))?;
    write_vectors(&path, &ids, &vectors).map_err(|e| io_error("cannot write", &path, e))?;
    let map = ids.into_iter().zip(vectors).collect();
    Ok((map, encoder, items.len(), secs))
}

/// The item store and index snapshots every variant starts from, in `cache_dir`, keyed by
/// the items (metadata, quality and vectors) and the index parameters.
async fn base_store(
    items: &[Item],
    vectors: &HashMap<String, Vec<f32>>,
    config: &Config,
    embedder: Arc<dyn Embedder>,
    cache_dir: &Path,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<PathBuf, EvalError> {
    let ix = &config.index;
    let mut canonical = format!(
        "dim={} shards={} m={} efc={}\n",
        embedder.dim(),
        ix.shards,
        ix.m,
        ix.ef_construction
    );
    for item in items {
        canonical.push_str(&serde_json::to_string(item).unwrap_or_default());
        for x in &vectors[&item.id] {
            canonical.push_str(&format!("{:08x}", x.to_bits()));
        }
        canonical.push('\n');
    }
    let dir = cache_dir.join(format!("store-{}", shared_types::stable_hash(&canonical)));
    let ready = dir.join("READY");
    if ready.is_file() {
        progress(&format!("item store and index from {}", dir.display()));
        return Ok(dir);
    }
    progress(&format!(
        "building the item store and index in {}",
        dir.display()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let (engine, store) = {
            let store = EmbeddedStore::open(&dir)?;
            let stored = items
                .iter()
                .map(|item| StoredItem {
                    item: item.clone(),
                    version: store.next_version(),
                    vector: vectors[&item.id].clone(),
                })
                .collect();
            store.upsert(stored).await?;
            drop(store);
            // Opening an engine builds and writes the shard snapshots.
            open_engine(&dir, config.clone(), embedder).await?
        };
        drop(engine);
        drop(store);
    }
    std::fs::write(&ready, b"").map_err(|e| io_error("cannot write", &ready, e))?;
    Ok(dir)
}

/// Runs the whole evaluation (see the module documentation).
pub async fn run(
    opts: &EvalOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<EvalReport, EvalError> {
    let started = Instant::now();
    if opts.holdout == 0 || opts.k == 0 || opts.k > shared_types::MAX_LIMIT as usize {
        return Err(EvalError::Data(format!(
            "holdout must be >= 1 and k within 1..={}",
            shared_types::MAX_LIMIT
        )));
    }
    let min_positives = opts.min_positives.unwrap_or(opts.holdout + 2);
    let (config, exploration_off) = without_exploration(&opts.config);

    // Ratings, time-ordered (stable), and the catalogue of rated films.
    let mut ratings: Vec<(Interaction, u8)> = read_lines(&opts.ratings)?
        .lines()
        .filter_map(crate::demo::parse_rating)
        .collect();
    if ratings.is_empty() {
        return Err(EvalError::Data(format!(
            "no ratings in {}",
            opts.ratings.display()
        )));
    }
    ratings.sort_by_key(|(e, _)| e.timestamp);
    let rated: HashSet<&str> = ratings.iter().map(|(e, _)| e.item_id.as_str()).collect();
    let mut items: Vec<Item> = read_lines(&opts.catalog)?
        .lines()
        .filter_map(crate::demo::parse_movie)
        .filter(|m| rated.contains(m.id.as_str()))
        .collect();
    items.sort_by(|a, b| a.id.cmp(&b.id));
    items.dedup_by(|a, b| a.id == b.id);
    let known: HashSet<String> = items.iter().map(|i| i.id.clone()).collect();
    let total_ratings = ratings.len();
    ratings.retain(|(e, _)| known.contains(&e.item_id));
    let unknown_items = total_ratings - ratings.len();
    let events: Vec<Interaction> = ratings.iter().map(|(e, _)| e.clone()).collect();
    let users: HashSet<&str> = events.iter().map(|e| e.user_id.as_str()).collect();

    let split = leave_last_out(&events, opts.holdout, min_positives);
    let mut tests = split.test.clone();
    if opts.max_users > 0 {
        tests.truncate(opts.max_users);
    }
    let catalogue: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
    progress(&format!(
        "{} ratings, {} users, {} films; {} training events, {} test users",
        ratings.len(),
        users.len(),
        items.len(),
        split.train.len(),
        tests.len()
    ));

    // Quality priors from training ratings only.
    let quality = smoothed_quality(
        &catalogue,
        split
            .train
            .iter()
            .map(|&i| (ratings[i].0.item_id.as_str(), ratings[i].1)),
    );
    for item in &mut items {
        item.quality = quality.get(&item.id).copied();
    }

    // Per test user: every training item (excluded from the random floor).
    let mut seen_by_user: HashMap<&str, HashSet<&str>> = HashMap::new();
    for &i in &split.train {
        let e = &events[i];
        seen_by_user
            .entry(e.user_id.as_str())
            .or_default()
            .insert(e.item_id.as_str());
    }
    let empty_set = HashSet::new();
    let seen: Vec<HashSet<&str>> = tests
        .iter()
        .map(|t| {
            seen_by_user
                .get(t.user_id.as_str())
                .unwrap_or(&empty_set)
                .clone()
        })
        .collect();

    let (vectors, embedder, embedded_items, embed_secs) =
        catalogue_vectors(&items, &opts.cache_dir, &config.model.dir, progress).await?;

    let k = opts.k;
    let n = catalogue.len();
    let genres: HashMap<String, Vec<String>> = items
        .iter()
        .map(|i| (i.id.clone(), i.genres.clone()))
        .collect();
    let score = |name: &str, lists: &[Vec<String>], tests: &[TestUser]| {
        let mut row = score_lists(name, tests, lists, k, n, &vectors);
        row.genre_ild = genre_diversity(lists, &genres, k);
        row
    };

    // Validation: the same leave-last-out applied to the training events (each test
    // user's second-latest positive), on which every method's settings are chosen.
    let train_interactions: Vec<Interaction> =
        split.train.iter().map(|&i| events[i].clone()).collect();
    let validation_split = leave_last_out(&train_interactions, opts.holdout, min_positives);
    let mut validation_tests = validation_split.test.clone();
    if opts.max_users > 0 {
        validation_tests.truncate(opts.max_users);
    }
    let index: HashMap<String, u32> = catalogue
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), i as u32))
        .collect();
    let validation_data = tuned::SplitData {
        catalogue: &catalogue,
        index: &index,
        train: validation_split
            .train
            .iter()
            .map(|&i| &train_interactions[i])
            .collect(),
        tests: &validation_tests,
    };
    let test_data = tuned::SplitData {
        catalogue: &catalogue,
        index: &index,
        train: split.train.iter().map(|&i| &events[i]).collect(),
        tests: &tests,
    };
    progress(&format!(
        "validation: {} training events, {} users",
        validation_data.train.len(),
        validation_tests.len()
    ));
    let mut baseline_rows = Vec::new();
    for tuned in tuned::tuned_baselines(&validation_data, &test_data, k, progress) {
        let mut row = score(&tuned.name, &tuned.lists, &tests);
        row.validation_ndcg = Some(tuned.validation_ndcg);
        progress(&format!(
            "{}: HR@{k} {:.4}, NDCG@{k} {:.4}",
            row.method, row.hr, row.ndcg
        ));
        baseline_rows.push(row);
    }
    {
        let random_lists: Vec<Vec<String>> = tests
            .iter()
            .zip(&seen)
            .map(|(t, s)| random_list(&catalogue, s, k, opts.seed, &t.user_id))
            .collect();
        baseline_rows.push(score("random", &random_lists, &tests));
    }

    let base_dir = base_store(
        &items,
        &vectors,
        &config,
        embedder.clone(),
        &opts.cache_dir,
        progress,
    )
    .await?;
    let as_events = |list: &[&Interaction]| -> Vec<InteractionEvent> {
        list.iter()
            .map(|e| InteractionEvent {
                user_id: e.user_id.clone(),
                item_id: e.item_id.clone(),
                action: e.action,
                timestamp: Some(e.timestamp),
                recommendation_id: None,
            })
            .collect()
    };
    let train_events = as_events(&test_data.train);
    let validation_events = as_events(&validation_data.train);
    let seen_of = |tests: &[TestUser], train: &[&Interaction]| -> Vec<HashSet<String>> {
        let mut by_user: HashMap<&str, HashSet<String>> = HashMap::new();
        for e in train {
            by_user
                .entry(e.user_id.as_str())
                .or_default()
                .insert(e.item_id.clone());
        }
        tests
            .iter()
            .map(|t| by_user.remove(t.user_id.as_str()).unwrap_or_default())
            .collect()
    };
    let validation_seen = seen_of(&validation_tests, &validation_data.train);
    let test_seen = seen_of(&tests, &test_data.train);
    let work_dir = opts.cache_dir.join(format!("run-{}", std::process::id()));
    let validation_run = EngineRun {
        base_dir: &base_dir,
        work_dir: &work_dir,
        config: &config,
        embedder: embedder.clone(),
        train: &validation_events,
        tests: &validation_tests,
        seen: &validation_seen,
        k,
        concurrency: opts.concurrency,
    };
    // The engine's settings on validation (see `engine_settings`): the most relevant one
    // whose genre diversity reaches the target.
    let mut best: Option<(f64, Variant)> = None;
    let mut fallback: Option<(f64, Variant)> = None;
    let mut settings = engine_settings(&config);
    if opts.engine_settings > 0 {
        settings.truncate(opts.engine_settings);
    }
    for candidate in settings {
        let out = validation_run.run(&candidate).await?;
        let row = score(&candidate.name, &out.lists, &validation_tests);
        progress(&format!(
            "  validation engine ({}): NDCG@{k} {:.4}, genre ILD {:.3}",
            candidate.name, row.ndcg, row.genre_ild
        ));
        let value = row.ndcg + 1e-3 * row.hr;
        if row.genre_ild >= opts.min_genre_diversity && best.as_ref().is_none_or(|b| value > b.0) {
            best = Some((value, candidate.clone()));
        }
        if fallback.as_ref().is_none_or(|b| row.genre_ild > b.0) {
            fallback = Some((row.genre_ild, candidate));
        }
    }
    let (validation_value, chosen) = best
        .or(fallback)
        .ok_or_else(|| EvalError::Data("no engine setting".into()))?;
    progress(&format!("engine setting: {}", chosen.name));
    let engine_run = EngineRun {
        train: &train_events,
        tests: &tests,
        seen: &test_seen,
        ..validation_run
    };
    let mut variants = ablation_variants(&chosen);
    if !opts.ablation {
        variants.truncate(1);
    }
    let mut rows = Vec::new();
    for variant in &variants {
        let t = Instant::now();
        let out = engine_run.run(variant).await?;
        let mut row = score(&variant.name, &out.lists, &tests);
        row.seen_recommended = out.seen_recommended;
        if rows.is_empty() {
            row.method = format!("engine (full: {})", chosen.name);
            row.validation_ndcg = Some(validation_value);
        }
        progress(&format!(
            "{}: HR@{k} {:.4}, NDCG@{k} {:.4} ({:.1} s)",
            variant.name,
            row.hr,
            row.ndcg,
            t.elapsed().as_secs_f64()
        ));
        rows.push(row);
    }
    let _ = std::fs::remove_dir_all(&work_dir);
    rows.extend(baseline_rows);

    Ok(EvalReport {
        ratings_file: opts.ratings.display().to_string(),
        min_genre_diversity: opts.min_genre_diversity,
        catalog_file: opts.catalog.display().to_string(),
        holdout: opts.holdout,
        min_positives,
        k,
        seed: opts.seed,
        dataset: DatasetStats {
            ratings: ratings.len(),
            users: users.len(),
            catalogue: n,
            train_events: split.train.len(),
            test_users: tests.len(),
            unknown_items,
        },
        embedded_items,
        embed_secs,
        ranking: config.ranking.clone(),
        history_limit: config.ranking.history_limit,
        exploration_off,
        rows,
        secs: started.elapsed().as_secs_f64(),
    })
}

// ---------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------

/// The results as a Markdown table.
pub fn markdown_table(rows: &[MethodResult], k: usize) -> String {
    let mut out = format!(
        "| method / variant | users | HR@{k} | NDCG@{k} | MRR@{k} | coverage | ILD | genre ILD | validation NDCG@{k} |\n|---|---|---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {:.4} ± {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {} |\n",
            r.method,
            r.users,
            r.hr,
            r.hr_ci95,
            r.ndcg,
            r.mrr,
            r.coverage,
            r.ild,
            r.genre_ild,
            r.validation_ndcg
                .map_or("–".to_string(), |v| format!("{v:.4}"))
        ));
    }
    out
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The protocol in prose, for the results file and docs/evaluation.md.
pub fn protocol_text(r: &EvalReport) -> String {
    let d = &r.dataset;
    let held = if r.holdout == 1 {
        "latest positive interaction is".to_string()
    } else {
        format!("latest {} positive interactions are", r.holdout)
    };
    format!(
        "Data: `{ratings}` ({ratings_n} ratings by {users} users, mapped to actions: 8-10 like, \
6-7 complete, 4-5 view, else dislike; positive = like or complete) and the {catalogue} films \
they rate, with metadata from `{catalog}`; only these films are embedded and indexed.\n\n\
Split: ratings sorted by time. For each user with at least {min_pos} positive interactions \
({tests} users) the {held} held out (test); everything they did before is training, anything \
after is dropped. All other users' ratings are training ({train} training events in all). \
Validation applies the same split to the training events (each test user's second-latest \
positive); every method's settings are chosen on validation NDCG@{k}, then the method is \
refitted on all training events and scored once on test (the last column shows the \
validation score of the chosen setting). Film quality priors come from training ratings \
only.\n\n\
Engine: a fresh engine per row on the same cached item store and index, item graph filled \
as at start-up, the training events replayed in time order through `record_events` \
(seen sets, transitions, trend, popularity, co-engagement graph), one training \
(`Engine::retrain`, as the background training does: sparse EASE and the boosted ranker, \
whose labels are each user's latest training positives scored with models fitted without \
them), then one `recommend` per test user (limit {k}, no intent or filters). The engine \
excludes every item of the user's training history. Its settings (ranker size and labels per user, \
transitions' window and decay, MMR trade-off) are the validation-best whose genre \
diversity reaches {min_ild}. Ablation rows change one thing of the chosen setting: no \
collaborative neighbours, no transitions, the static weighted sum instead of the ranker, no \
MMR, no graph candidates, and the engine before the learned sources (`learning.enabled = \
false`).{exploration}\n\n\
Baselines on the same split, excluding every training item of the user and filled from \
popularity when fewer than {k} items score: popularity (positive training interactions); \
item-kNN (cosine of binary item vectors, top-k neighbours); RP3β (Paudel et al. 2017); \
sparse EASE (the engine's collaborative model alone); EASE (Steck 2019, dense closed \
form); implicit ALS (Hu, Koren & Volinsky 2008, 64 factors, 15 sweeps, user fold-in); \
next-item transitions (first-order counts from the user's latest positives, window and \
decay tuned); ALS + transitions (max-normalised scores, weight tuned); random (seed \
{seed}).\n\n\
Metrics at {k}: HR (any held-out item in the list; ± is the 95% interval, normal \
approximation), NDCG (binary relevance), MRR (1 / rank of the held-out item, 0 beyond \
{k}), coverage (distinct items recommended / {catalogue} films), ILD (mean pairwise \
1 − cosine of the films' MiniLM embeddings within a list) and genre ILD (mean pairwise \
1 − Jaccard of the films' genre sets), averaged over users.",
        ratings = r.ratings_file,
        ratings_n = thousands(d.ratings),
        users = thousands(d.users),
        catalogue = thousands(d.catalogue),
        catalog = r.catalog_file,
        min_pos = r.min_positives,
        tests = thousands(d.test_users),
        train = thousands(d.train_events),
        k = r.k,
        min_ild = r.min_genre_diversity,
        seed = r.seed,
        exploration = if r.exploration_off {
            " The online ranking policy serves greedily (exploration `policy.epsilon = 0`) and \
             learns nothing, as the replayed events reference no recommendation."
        } else {
            ""
        },
    )
}

/// Notes worth reading next to the table: how the full engine compares with the
/// baselines, and engine lists holding items the user had already seen.
pub fn notes(r: &EvalReport) -> Vec<String> {
    let mut notes = Vec::new();
    let k = r.k;
    if let Some(engine) = r
        .rows
        .iter()
        .find(|row| row.method.starts_with("engine (full)"))
    {
        let relative = |a: f64, b: f64| {
            if b == 0.0 {
                "n/a".to_string()
            } else {
                format!("{:+.0}%", (a / b - 1.0) * 100.0)
            }
        };
        for base in r
            .rows
            .iter()
            .filter(|row| !row.method.starts_with("engine"))
        {
            notes.push(format!(
                "engine (full) vs {}: HR@{k} {:.4} vs {:.4} ({}), NDCG@{k} {:.4} vs {:.4} ({}).",
                base.method,
                engine.hr,
                base.hr,
                relative(engine.hr, base.hr),
                engine.ndcg,
                base.ndcg,
                relative(engine.ndcg, base.ndcg),
            ));
        }
    }
    let seen: Vec<String> = r
        .rows
        .iter()
        .filter(|row| row.seen_recommended > 0)
        .map(|row| format!("{} {}", row.method, row.seen_recommended))
        .collect();
    notes.push(if seen.is_empty() {
        "No engine list held an item the user had interacted with in training.".to_string()
    } else {
        format!(
            "Engine lists held items the user had interacted with in training: {}.",
            seen.join(", ")
        )
    });
    notes
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub fn today_utc() -> String {
    let days = crate::clock::now_secs().div_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// CPU model (from `/proc/cpuinfo`) and core count.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    format!("{model}, {cores} cores")
}

/// The results file: date, machine, command, protocol, table and notes.
pub fn results_markdown(r: &EvalReport, command: &str) -> String {
    let mut out = format!(
        "## `{ratings}`\n\n\
Written by `{command}` on {date}; machine: {machine}; run time {secs:.0} s \
(embedding {embed}).\n\n",
        ratings = r.ratings_file,
        date = today_utc(),
        machine = machine(),
        secs = r.secs,
        embed = if r.embedded_items > 0 {
            format!(
                "{} films in {:.0} s",
                thousands(r.embedded_items),
                r.embed_secs
            )
        } else {
            "cached".to_string()
        },
    );
    out.push_str("### Protocol\n\n");
    out.push_str(&protocol_text(r));
    out.push_str("\n\n### Results\n\n");
    out.push_str(&markdown_table(&r.rows, r.k));
    let notes = notes(r);
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            out.push_str(&format!("- {n}\n"));
        }
    }
    out
}
