//! The candidate signals shared by serving and training, so the ranker is fitted on exactly
//! the features it later scores: collaborative and transition scores of a user's history,
//! time-decayed popularity (trend), and the assembly of one candidate's feature vector.

use std::collections::HashMap;

use half::f16;

use super::collab::ItemNeighbours;
use super::ranker::{RankFeatures, FEATURES};
use super::transitions::Transitions;

/// Time-decayed popularity: each item's `log2 Σ weight · 2^(t / half_life)`, so two items
/// compare the same at any reference time and the running maximum never needs decaying.
#[derive(Clone)]
pub struct Trend {
    half_life_secs: f64,
    log_mass: Vec<f64>,
    max: f64,
}

/// Orders of magnitude (base 2) below the trendiest item at which the trend feature is 0.
const TREND_RANGE: f64 = 16.0;

impl Trend {
    pub fn new(half_life_days: f32) -> Self {
        Self {
            half_life_secs: f64::from(half_life_days.max(1e-3)) * 86_400.0,
            log_mass: Vec::new(),
            max: f64::NEG_INFINITY,
        }
    }

    pub fn record(&mut self, item: u32, weight: f32, timestamp: i64) {
        if weight <= 0.0 {
            return;
        }
        let i = item as usize;
        if self.log_mass.len() <= i {
            self.log_mass.resize(i + 1, f64::NEG_INFINITY);
        }
        let add = f64::from(weight).log2() + timestamp as f64 / self.half_life_secs;
        let old = self.log_mass[i];
        let new = if old == f64::NEG_INFINITY {
            add
        } else {
            let (hi, lo) = if old > add { (old, add) } else { (add, old) };
            hi + (1.0 + (lo - hi).exp2()).log2()
        };
        self.log_mass[i] = new;
        self.max = self.max.max(new);
    }

    /// In [0, 1]: 1 for the trendiest item, falling by `1/16` per halving.
    pub fn feature(&self, item: u32) -> f32 {
        match self.log_mass.get(item as usize) {
            Some(&l) if l > f64::NEG_INFINITY => {
                (1.0 + (l - self.max) / TREND_RANGE).max(0.0) as f32
            }
            _ => 0.0,
        }
    }

    /// The `n` trendiest items, best first.
    pub fn top(&self, n: usize) -> Vec<u32> {
        let mut all: Vec<(u32, f64)> = self
            .log_mass
            .iter()
            .enumerate()
            .filter(|(_, l)| **l > f64::NEG_INFINITY)
            .map(|(i, l)| (i as u32, *l))
            .collect();
        let order = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if all.len() > n && n > 0 {
            all.select_nth_unstable_by(n - 1, order);
            all.truncate(n);
        }
        all.sort_unstable_by(order);
        all.truncate(n);
        all.into_iter().map(|(i, _)| i).collect()
    }

    /// Forgets an item (deleted from the catalogue).
    pub fn remove_item(&mut self, item: u32) {
        if let Some(l) = self.log_mass.get_mut(item as usize) {
            *l = f64::NEG_INFINITY;
        }
    }
}

/// A source's scores for one user, with the ranks of its best `pool` items.
#[derive(Default)]
pub struct SourceScores {
    scores: HashMap<u32, f32>,
    top: Vec<u32>,
    /// Rank of each item of `top`.
    ranks: HashMap<u32, u32>,
    max: f32,
}

impl SourceScores {
    fn from_scores(scores: HashMap<u32, f32>, pool: usize) -> Self {
        // Only positive evidence makes a candidate (sparse EASE weights can be negative).
        let mut ranked: Vec<(u32, f32)> = scores
            .iter()
            .filter(|(_, &s)| s > 0.0)
            .map(|(&i, &s)| (i, s))
            .collect();
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if ranked.len() > pool && pool > 0 {
            ranked.select_nth_unstable_by(pool - 1, order);
            ranked.truncate(pool);
        }
        ranked.sort_unstable_by(order);
        ranked.truncate(pool);
        let top: Vec<u32> = ranked.iter().map(|(i, _)| *i).collect();
        Self {
            max: ranked.first().map_or(0.0, |r| r.1),
            ranks: top
                .iter()
                .enumerate()
                .map(|(r, &i)| (i, r as u32))
                .collect(),
            top,
            scores,
        }
    }

    /// Best items, best first.
    pub fn top(&self) -> &[u32] {
        &self.top
    }

    /// (score / best score, 1 / (1 + rank) among the best `pool`, else 0).
    fn feature(&self, item: u32) -> (f32, f32) {
        let s = self.scores.get(&item).copied().unwrap_or(0.0);
        let norm = if self.max > 0.0 {
            (s / self.max).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let rank = self
            .ranks
            .get(&item)
            .map_or(0.0, |&r| 1.0 / (1.0 + r as f32));
        (norm, rank)
    }
}

/// What the learned sources say about one user at one moment.
pub struct UserSignals {
    pub collaborative: SourceScores,
    pub transition: SourceScores,
    /// `ln(1 + positive items in the history window)`: lets the ranker weigh the sources
    /// differently for new and for long-standing users.
    pub history: f32,
}

impl UserSignals {
    /// `positives`: the user's positive items with weights (for the collaborative model);
    /// `recent`: their latest positive items, newest first (for transitions).
    pub fn compute(
        collab: &ItemNeighbours,
        transitions: &Transitions,
        positives: &[(u32, f32)],
        recent: &[u32],
        pool: usize,
    ) -> Self {
        let mut c = HashMap::new();
        collab.score_into(positives, &mut c);
        let mut t = HashMap::new();
        transitions.score_into(recent, &mut t);
        Self {
            collaborative: SourceScores::from_scores(c, pool),
            transition: SourceScores::from_scores(t, pool),
            history: (1.0 + positives.len() as f32).ln(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.collaborative.top.is_empty() && self.transition.top.is_empty()
    }
}

/// The item-side signals of one candidate, each in [0, 1] (semantic already stretched
/// over the request's candidates).
#[derive(Debug, Clone, Copy, Default)]
pub struct ItemSignals {
    pub popularity: f32,
    pub trend: f32,
    pub semantic: f32,
    pub content: f32,
    pub freshness: f32,
    pub quality: f32,
}

/// One candidate's feature vector (in the order of [`super::ranker::FEATURE_NAMES`]).
pub fn rank_features(user: &UserSignals, item: u32, side: &ItemSignals) -> RankFeatures {
    let (collab, collab_rank) = user.collaborative.feature(item);
    let (transition, transition_rank) = user.transition.feature(item);
    let x: RankFeatures = [
        collab,
        collab_rank,
        transition,
        transition_rank,
        side.popularity,
        side.trend,
        side.semantic,
        side.content,
        side.freshness,
        side.quality,
        user.history,
    ];
    debug_assert_eq!(x.len(), FEATURES);
    x
}

/// Freshness of a release year: 1 this year, `1/e` twenty years ago.
pub fn freshness(year: Option<u16>, current_year: i32) -> f32 {
    year.map_or(0.0, |y| {
        (-((current_year - i32::from(y)).max(0) as f32) / 20.0).exp()
    })
}

/// Popularity in [0, 1] from an engagement count, log-scaled against the largest.
pub fn log_popularity(count: f32, max: f32) -> f32 {
    if max > 0.0 && count > 0.0 {
        (1.0 + count).ln() / (1.0 + max).ln()
    } else {
        0.0
    }
}

/// Highest cosine between `v` and any of `seeds` (unit vectors): how close a candidate is
/// in content to what the user just liked. Uses the SIMD kernel of the index.
pub fn content_similarity(v: &[f16], seeds: &[Vec<f32>]) -> f32 {
    let dot = vector_index::distance::best_dot();
    seeds.iter().map(|s| dot(s, v)).fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_prefers_recent_engagement() {
        let mut t = Trend::new(7.0);
        let day = 86_400;
        for _ in 0..4 {
            t.record(0, 1.0, 0); // four likes long ago
        }
        t.record(1, 1.0, 30 * day); // one like a month later
        assert!(t.feature(1) > t.feature(0));
        assert_eq!(t.feature(1), 1.0);
        assert_eq!(t.top(5), vec![1, 0]);
        assert_eq!(t.feature(7), 0.0);
        t.remove_item(1);
        assert_eq!(t.top(5), vec![0]);
    }

    #[test]
    fn source_features_are_normalised_with_ranks() {
        let scores = HashMap::from([(3, 2.0), (4, 1.0), (5, 0.5)]);
        let s = SourceScores::from_scores(scores, 2);
        assert_eq!(s.top(), &[3, 4]);
        assert_eq!(s.feature(3), (1.0, 1.0));
        assert_eq!(s.feature(4), (0.5, 0.5));
        assert_eq!(s.feature(5), (0.25, 0.0));
        assert_eq!(s.feature(9), (0.0, 0.0));
    }
}
