//! Training: from the time-ordered interaction log to a [`TrainedModel`].
//!
//! The ranker learns from the log itself: each sampled user's latest positive interactions
//! are labels, and every feature of those examples — collaborative neighbours, transitions,
//! trend, popularity, the user's history — is computed from models fitted on the log
//! *without* that user's labels and anything the user did after the first of them. Other
//! users' events stay in, whatever their time, exactly as in the per-user leave-last-out
//! split the engine is evaluated on. The candidates are the learned sources' (collaborative,
//! transitions, trend); serving adds vector-search and graph candidates, scored with the
//! same features. The served collaborative model is then refitted on the whole log.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use half::f16;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use shared_types::Action;

use super::collab::ItemNeighbours;
use super::features::{
    content_similarity, freshness, log_popularity, rank_features, ItemSignals, Trend, UserSignals,
};
use super::ranker::{RankGroup, Ranker};
use super::transitions::Transitions;
use super::{LearningConfig, TrainedModel};
use crate::catalog::CatalogEntry;

/// One interaction, with users and items as ordinals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainEvent {
    pub user: u32,
    pub item: u32,
    pub action: Action,
    pub timestamp: i64,
}

/// Positive items of the user's history used as content seeds.
pub const CONTENT_SEEDS: usize = 5;

/// What a training run saw and produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    pub interactions: usize,
    pub users: usize,
    pub items: usize,
    /// Ranker examples (users whose held-out next item was among their candidates).
    pub ranker_examples: usize,
    /// Share of sampled users whose next item was among the candidates at all.
    pub candidate_recall: f64,
    /// Mean listwise loss of the fitted ranker on its examples, and of a neutral one.
    pub ranker_loss: f64,
    pub neutral_loss: f64,
    /// Split gain per feature (what the ranker relies on), by name.
    pub ranker_weights: Vec<(String, f32)>,
    pub neighbour_entries: usize,
    pub model_bytes: usize,
    pub secs: f64,
}

/// Inputs besides the log: the catalogue by ordinal and the serving parameters the
/// features depend on.
pub struct TrainContext<'a> {
    pub items: &'a [Option<Arc<CatalogEntry>>],
    pub current_year: i32,
    pub history_limit: usize,
    pub history_half_life_days: f32,
}

/// The weighted, recency-decayed mean of a user's history vectors (likes pull, dislikes
/// push), normalised; `None` without positive mass. `history`: (weight, timestamp, vector).
pub fn taste_vector<'a>(
    history: impl Iterator<Item = (f32, i64, &'a [f16])> + Clone,
    half_life_days: f32,
) -> Option<Vec<f32>> {
    let newest = history.clone().map(|(_, t, _)| t).max()?;
    let mut acc: Vec<f32> = Vec::new();
    let mut positive = false;
    for (w, t, v) in history {
        let age_days = (newest - t).max(0) as f32 / 86_400.0;
        let w = w * 0.5f32.powf(age_days / half_life_days.max(1e-3));
        positive |= w > 0.0;
        if acc.is_empty() {
            acc = vec![0.0; v.len()];
        }
        for (a, x) in acc.iter_mut().zip(v) {
            *a += w * x.to_f32();
        }
    }
    let norm = acc.iter().map(|x| x * x).sum::<f32>().sqrt();
    (positive && norm.is_finite() && norm > 1e-6).then(|| acc.iter().map(|x| x / norm).collect())
}

/// Models fitted on a log (the whole log, or the log minus the labels).
struct Fitted {
    collab: ItemNeighbours,
    transitions: Transitions,
    trend: Trend,
    popularity: Vec<f32>,
    max_popularity: f32,
}

fn fit(
    events: &[TrainEvent],
    keep: impl Fn(usize) -> bool,
    n_users: usize,
    n_items: usize,
    config: &LearningConfig,
) -> Fitted {
    let mut positives: Vec<Vec<u32>> = vec![Vec::new(); n_users];
    let mut recent: Vec<Vec<u32>> = vec![Vec::new(); n_users];
    let mut transitions = Transitions::new(config.transitions);
    let mut trend = Trend::new(config.trend_half_life_days);
    let mut popularity = vec![0f32; n_items];
    let window = config.transitions.window.max(1);
    for (i, e) in events.iter().enumerate() {
        if !keep(i) {
            continue;
        }
        let w = e.action.preference_weight();
        if w > 0.0 {
            popularity[e.item as usize] += w;
        }
        if config.is_positive(e.action) {
            let r = &mut recent[e.user as usize];
            transitions.record(r, e.item);
            r.insert(0, e.item);
            r.truncate(window);
            positives[e.user as usize].push(e.item);
            trend.record(e.item, w, e.timestamp);
        }
    }
    let collab = ItemNeighbours::train(n_items, &positives, &config.collab);
    let max_popularity = popularity.iter().copied().fold(0.0, f32::max);
    Fitted {
        collab,
        transitions,
        trend,
        popularity,
        max_popularity,
    }
}

/// Trains a model of `version` from `events` (sorted by time).
pub fn train(
    events: &[TrainEvent],
    ctx: &TrainContext<'_>,
    config: &LearningConfig,
    version: u64,
    now: i64,
) -> TrainedModel {
    let started = Instant::now();
    let n_items = ctx.items.len();
    let n_users = events
        .iter()
        .map(|e| e.user as usize + 1)
        .max()
        .unwrap_or(0);
    let mut by_user: Vec<Vec<usize>> = vec![Vec::new(); n_users];
    for (i, e) in events.iter().enumerate() {
        by_user[e.user as usize].push(i);
    }
    // Labels: each user's latest positive interactions (up to `ranker_labels_per_user`,
    // keeping an earlier positive to learn from), from the most recent users. A user's
    // events from their first label on stay out of the models the examples are scored with.
    let mut by_recency: Vec<(u32, Vec<usize>)> = by_user
        .iter()
        .enumerate()
        .filter_map(|(u, idx)| {
            let pos: Vec<usize> = idx
                .iter()
                .copied()
                .filter(|&i| config.is_positive(events[i].action))
                .filter(|&i| {
                    ctx.items
                        .get(events[i].item as usize)
                        .is_some_and(Option::is_some)
                })
                .collect();
            let take = config
                .ranker_labels_per_user
                .max(1)
                .min(pos.len().saturating_sub(1));
            (take > 0).then(|| (u as u32, pos[pos.len() - take..].to_vec()))
        })
        .collect();
    by_recency.sort_by_key(|(_, l)| std::cmp::Reverse(*l.last().expect("a label")));
    by_recency.truncate(config.ranker_users);
    let cut: HashMap<u32, usize> = by_recency.iter().map(|(u, l)| (*u, l[0])).collect();
    let labels: Vec<(u32, usize)> = by_recency
        .iter()
        .flat_map(|(u, l)| l.iter().map(move |&i| (*u, i)))
        .collect();
    let keep = |i: usize| cut.get(&events[i].user).is_none_or(|&c| i < c);

    let ranker = (!labels.is_empty()).then(|| {
        let before = fit(events, keep, n_users, n_items, config);
        let trend_top = before.trend.top(config.candidates_per_source);
        let groups: Vec<Option<RankGroup>> = labels
            .par_iter()
            .map(|&(u, label)| {
                let history: Vec<&TrainEvent> = by_user[u as usize]
                    .iter()
                    .take_while(|&&i| i < label)
                    .map(|&i| &events[i])
                    .collect();
                example(
                    &history,
                    events[label].item,
                    &before,
                    &trend_top,
                    ctx,
                    config,
                )
            })
            .collect();
        let found = groups.iter().filter(|g| g.is_some()).count();
        let groups: Vec<RankGroup> = groups.into_iter().flatten().collect();
        let ranker = Ranker::train(&groups, &config.ranker);
        let neutral = Ranker::neutral();
        (
            ranker.loss(&groups),
            neutral.loss(&groups),
            found as f64 / labels.len() as f64,
            groups.len(),
            ranker,
        )
    });
    let all = fit(events, |_| true, n_users, n_items, config);
    let mut report = TrainReport {
        interactions: events.len(),
        users: n_users,
        items: n_items,
        neighbour_entries: all.collab.neighbours_total(),
        model_bytes: all.collab.heap_bytes(),
        ..TrainReport::default()
    };
    let ranker = ranker.and_then(|(loss, neutral, recall, examples, ranker)| {
        report.ranker_loss = loss;
        report.neutral_loss = neutral;
        report.candidate_recall = recall;
        report.ranker_examples = examples;
        report.ranker_weights = super::ranker::FEATURE_NAMES
            .iter()
            .zip(ranker.importance)
            .map(|(n, w)| (n.to_string(), w))
            .collect();
        (examples > 0 && config.ranker.trees > 0).then_some(ranker)
    });
    report.secs = started.elapsed().as_secs_f64();
    TrainedModel {
        version,
        trained_at: now,
        collab: all.collab,
        ranker,
        report,
    }
}

/// One ranker example: the candidates the serving path would consider for this history,
/// with the item chosen next; `None` when that item is not among them.
fn example(
    history: &[&TrainEvent],
    chosen: u32,
    m: &Fitted,
    trend_top: &[u32],
    ctx: &TrainContext<'_>,
    config: &LearningConfig,
) -> Option<RankGroup> {
    let entry = |i: u32| ctx.items.get(i as usize).and_then(Option::as_ref);
    let seen: HashSet<u32> = history
        .iter()
        .filter(|e| config.marks_seen(e.action))
        .map(|e| e.item)
        .collect();
    // Serving reads the latest `history_limit` events: the examples see the same window.
    let window = &history[history.len().saturating_sub(ctx.history_limit)..];
    let mut positives: Vec<(u32, f32)> = Vec::new();
    for e in window.iter().rev().filter(|e| config.is_positive(e.action)) {
        if !positives.iter().any(|(i, _)| *i == e.item) {
            positives.push((e.item, e.action.preference_weight()));
        }
    }
    let recent: Vec<u32> = history
        .iter()
        .rev()
        .filter(|e| config.is_positive(e.action))
        .map(|e| e.item)
        .take(config.transitions.window.max(CONTENT_SEEDS))
        .collect();
    let signals = UserSignals::compute(
        &m.collab,
        &m.transitions,
        &positives,
        &recent,
        config.candidates_per_source,
    );
    let mut candidates: Vec<u32> = Vec::new();
    let mut taken = HashSet::new();
    for &i in signals
        .collaborative
        .top()
        .iter()
        .chain(signals.transition.top())
        .chain(trend_top)
    {
        if !seen.contains(&i) && entry(i).is_some() && taken.insert(i) {
            candidates.push(i);
        }
    }
    let chosen_at = candidates.iter().position(|&i| i == chosen)?;
    // An evenly spaced sample of the others keeps training cost bounded.
    let keep = config.ranker_candidates.max(2);
    let (candidates, chosen_at) = if candidates.len() > keep {
        let others: Vec<u32> = candidates
            .iter()
            .copied()
            .filter(|&i| i != chosen)
            .collect();
        let step = others.len() as f64 / (keep - 1) as f64;
        let mut sample: Vec<u32> = (0..keep - 1)
            .map(|j| others[(j as f64 * step) as usize])
            .collect();
        let at = chosen_at * (keep - 1) / candidates.len();
        sample.insert(at, chosen);
        (sample, at)
    } else {
        (candidates, chosen_at)
    };
    let taste = taste_vector(
        window.iter().filter_map(|e| {
            entry(e.item).map(|c| (e.action.preference_weight(), e.timestamp, &c.vector[..]))
        }),
        ctx.history_half_life_days,
    );
    let seeds: Vec<Vec<f32>> = recent
        .iter()
        .take(CONTENT_SEEDS)
        .filter_map(|&i| entry(i).map(|c| c.vector_f32()))
        .collect();
    let mut sides: Vec<ItemSignals> = candidates
        .iter()
        .map(|&i| {
            let c = entry(i).expect("candidates are in the catalogue");
            ItemSignals {
                popularity: log_popularity(m.popularity[i as usize], m.max_popularity),
                trend: m.trend.feature(i),
                semantic: taste.as_deref().map_or(0.0, |t| {
                    t.iter().zip(&c.vector).map(|(a, b)| a * b.to_f32()).sum()
                }),
                content: content_similarity(&c.vector, &seeds),
                freshness: freshness(c.item.year, ctx.current_year),
                quality: c.item.quality.unwrap_or(0.0),
            }
        })
        .collect();
    stretch_semantic(&mut sides, taste.is_some());
    let candidates = candidates
        .iter()
        .zip(&sides)
        .map(|(&i, s)| rank_features(&signals, i, s))
        .collect();
    Some(RankGroup {
        candidates,
        chosen: chosen_at,
    })
}

/// Cosines of candidates crowd into a narrow band: stretch them to [0, 1] over the
/// request's candidates (as serving does); all 0 without a query vector.
pub fn stretch_semantic(sides: &mut [ItemSignals], has_query: bool) {
    if !has_query {
        sides.iter_mut().for_each(|s| s.semantic = 0.0);
        return;
    }
    let (lo, hi) = sides.iter().fold((f32::MAX, f32::MIN), |(lo, hi), s| {
        (lo.min(s.semantic), hi.max(s.semantic))
    });
    let span = (hi - lo).max(1e-6);
    sides
        .iter_mut()
        .for_each(|s| s.semantic = (s.semantic - lo) / span);
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared_types::Item;

    fn catalogue(n: usize) -> Vec<Option<Arc<CatalogEntry>>> {
        (0..n)
            .map(|i| {
                let mut v = vec![0f32; 8];
                v[i % 8] = 1.0;
                let item = Item {
                    id: format!("i{i}"),
                    title: format!("Item {i}"),
                    genres: vec![],
                    year: Some(2000),
                    language: None,
                    maturity: None,
                    description: None,
                    quality: None,
                };
                Some(Arc::new(CatalogEntry::new(item, 1, &v)))
            })
            .collect()
    }

    /// Users walk items in a fixed cycle 0 → 1 → … → 9 → 0, starting at different places.
    fn cyclic_log(users: u32, steps: u32) -> Vec<TrainEvent> {
        let mut events = Vec::new();
        for step in 0..steps {
            for u in 0..users {
                events.push(TrainEvent {
                    user: u,
                    item: (u + step) % 10,
                    action: Action::Like,
                    timestamp: i64::from(step * 1000 + u),
                });
            }
        }
        events
    }

    fn ctx(items: &[Option<Arc<CatalogEntry>>]) -> TrainContext<'_> {
        TrainContext {
            items,
            current_year: 2026,
            history_limit: 50,
            history_half_life_days: 30.0,
        }
    }

    #[test]
    fn the_ranker_learns_that_transitions_predict_the_next_item() {
        let items = catalogue(10);
        let events = cyclic_log(40, 6);
        let config = LearningConfig {
            min_positives: 1,
            ..LearningConfig::default()
        };
        let model = train(&events, &ctx(&items), &config, 7, 99);
        assert_eq!(model.version, 7);
        let r = &model.report;
        // Each of the 40 users gives its latest `ranker_labels_per_user` (3) positives.
        assert_eq!(r.ranker_examples, 40 * 3, "{r:?}");
        assert!(r.ranker_loss < 0.5 * r.neutral_loss, "{r:?}");
        let ranker = model.ranker.expect("a ranker");
        let w = |name: &str| {
            let f = super::super::ranker::FEATURE_NAMES
                .iter()
                .position(|n| *n == name)
                .unwrap();
            ranker.importance[f]
        };
        assert!(w("transition") + w("transition_rank") > w("quality") + w("freshness"));
    }

    #[test]
    fn labels_never_reach_the_models_they_are_scored_with() {
        // Users 0-4 like 0, 1, 2; users 6-9 like 0, 1, 2, 3; user 5 likes 0 then 9. Each
        // user's latest like is their label. Users 0-4's label 2 follows 1 in the histories
        // of users 6-9, so it is a candidate; the labels 3 and 9 follow only from labels, so
        // with no leakage they cannot be candidates.
        let items = catalogue(10);
        let mut events = Vec::new();
        let mut like = |user: u32, item: u32, t: i64| {
            events.push(TrainEvent {
                user,
                item,
                action: Action::Like,
                timestamp: t,
            })
        };
        for step in 0..4u32 {
            for u in 0..10u32 {
                match u {
                    0..=4 if step < 3 => like(u, step, i64::from(step * 100 + u)),
                    5 if step < 2 => like(u, [0, 9][step as usize], i64::from(step * 100 + u)),
                    6..=9 => like(u, step, i64::from(step * 100 + u)),
                    _ => {}
                }
            }
        }
        events.sort_by_key(|e| e.timestamp);
        let config = LearningConfig {
            ranker_labels_per_user: 1,
            ..LearningConfig::default()
        };
        let model = train(&events, &ctx(&items), &config, 1, 0);
        assert_eq!(model.report.ranker_examples, 5, "{:?}", model.report);
        // The served model, fitted on everything, does know 0 → 9 and 2 → 3.
        assert!(model.collab.neighbours(0).0.contains(&9));
        assert!(model.collab.neighbours(2).0.contains(&3));
    }

    #[test]
    fn taste_vector_follows_likes_and_recency() {
        let a = [f16::ONE, f16::ZERO];
        let b = [f16::ZERO, f16::ONE];
        let v = taste_vector(
            [(1.0, 0, &a[..]), (1.0, 86_400 * 60, &b[..])].into_iter(),
            30.0,
        )
        .unwrap();
        assert!(v[1] > v[0]);
        assert!(taste_vector([(-1.0, 0, &a[..])].into_iter(), 30.0).is_none());
    }
}
