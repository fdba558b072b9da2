//! The metrics of one method's lists against the held-out items: HR, NDCG and MRR at `k`,
//! catalogue coverage, intra-list diversity of the embeddings and of the genres, and the
//! 95% interval of HR.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::data::TestUser;

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
