//! Candidate generation's pure parts: the user's taste vector and graph seeds from their
//! history, the query vector (intent blended with taste), and the union of vector hits and
//! graph neighbours.

use std::collections::HashMap;
use std::sync::Arc;

use crate::catalog::CatalogEntry;
use crate::store::{GraphNeighbour, Interaction};
use vector_index::distance::dot_f32;
use vector_index::Hit;

use super::Candidate;

/// Seeds taken from the user's history for graph candidates.
const GRAPH_SEEDS: usize = 10;

/// Scales `v` to unit length; false (and `v` unchanged) when it has no direction.
pub(crate) fn normalise(v: &mut [f32]) -> bool {
    let norm = dot_f32(v, v).sqrt();
    if !norm.is_finite() || norm < 1e-6 {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    true
}

/// Weight of an event `ts` seconds old relative to the newest one, halving every
/// `half_life_days`.
fn recency_weight(newest: i64, ts: i64, half_life_days: f32) -> f32 {
    let age_days = (newest - ts).max(0) as f32 / 86_400.0;
    0.5f32.powf(age_days / half_life_days)
}

/// Recency-weighted mean of the user's interactions: likes pull towards an item, dislikes
/// and skips push away. `None` when nothing positive is known (cold start).
pub(crate) fn user_vector(
    history: &[(Interaction, Arc<CatalogEntry>)],
    half_life_days: f32,
) -> Option<Vec<f32>> {
    let newest = history.iter().map(|(e, _)| e.timestamp).max()?;
    let dim = history.first()?.1.vector.len();
    let mut acc = vec![0f32; dim];
    let mut positive = false;
    for (event, entry) in history {
        let w = event.action.preference_weight()
            * recency_weight(newest, event.timestamp, half_life_days);
        positive |= w > 0.0;
        for (a, x) in acc.iter_mut().zip(&entry.vector) {
            *a += w * x.to_f32();
        }
    }
    (positive && normalise(&mut acc)).then_some(acc)
}

/// The vector searched: the intent blended with the user's taste (`blend` of the intent),
/// either alone, or none (cold start without intent).
pub(crate) fn query_vector(
    intent: Option<&[f32]>,
    taste: Option<Vec<f32>>,
    blend: f32,
) -> Option<Vec<f32>> {
    match (intent, taste) {
        (Some(q), Some(u)) => {
            let mut blended: Vec<f32> = q
                .iter()
                .zip(&u)
                .map(|(a, b)| blend * a + (1.0 - blend) * b)
                .collect();
            normalise(&mut blended).then_some(blended)
        }
        (Some(q), None) => Some(q.to_vec()),
        (None, u) => u,
    }
}

/// The user's strongest recent positive items, as weighted graph seeds.
pub(crate) fn graph_seeds(
    history: &[(Interaction, Arc<CatalogEntry>)],
    half_life_days: f32,
) -> Vec<(Arc<str>, f32)> {
    let Some(newest) = history.iter().map(|(e, _)| e.timestamp).max() else {
        return Vec::new();
    };
    let mut seeds: Vec<(Arc<str>, f32)> = history
        .iter()
        .filter(|(e, _)| e.action.preference_weight() > 0.0)
        .map(|(e, entry)| {
            (
                entry.id.clone(),
                e.action.preference_weight() * recency_weight(newest, e.timestamp, half_life_days),
            )
        })
        .collect();
    seeds.sort_by(|a, b| b.1.total_cmp(&a.1));
    seeds.dedup_by(|a, b| a.0 == b.0);
    seeds.truncate(GRAPH_SEEDS);
    seeds
}

/// Unites vector hits and graph neighbours, graph scores scaled to [0, 1] by the best one.
pub(crate) fn merge(ann: Vec<Hit>, graph: Vec<GraphNeighbour>) -> HashMap<Arc<str>, Candidate> {
    let mut candidates: HashMap<Arc<str>, Candidate> = HashMap::new();
    for hit in ann {
        candidates.entry(hit.item_id).or_default();
    }
    let max = graph.first().map_or(1.0, |n| n.score.max(1e-6));
    for n in graph {
        let c = candidates.entry(n.item_id).or_default();
        c.graph = n.score / max;
        c.via = Some(n.via);
    }
    candidates
}

#[cfg(test)]
mod tests {
    use shared_types::Action;

    use super::*;
    use crate::engine::pipeline::test_support::{entry, unit};

    fn event(item: &str, action: Action, timestamp: i64) -> Interaction {
        Interaction {
            user_id: "u1".into(),
            item_id: item.into(),
            action,
            timestamp,
            recommendation_id: None,
            event_id: String::new(),
        }
    }

    #[test]
    fn taste_leans_to_likes_and_away_from_dislikes() {
        let day = 86_400;
        let history = vec![
            (
                event("a", Action::Like, 10 * day),
                entry("a", &[], &unit(3, &[0])),
            ),
            (
                event("b", Action::Dislike, 10 * day),
                entry("b", &[], &unit(3, &[1])),
            ),
        ];
        let v = user_vector(&history, 30.0).unwrap();
        assert!(v[0] > 0.0 && v[1] < 0.0, "{v:?}");
        assert!((dot_f32(&v, &v) - 1.0).abs() < 1e-4, "a unit vector");
        // Only negative signals: no taste (cold start).
        assert!(user_vector(&history[1..], 30.0).is_none());
        assert!(user_vector(&[], 30.0).is_none());
    }

    #[test]
    fn older_events_weigh_less() {
        let day = 86_400;
        let history = vec![
            (
                event("old", Action::Like, 0),
                entry("old", &[], &unit(2, &[0])),
            ),
            (
                event("new", Action::Like, 60 * day),
                entry("new", &[], &unit(2, &[1])),
            ),
        ];
        let v = user_vector(&history, 30.0).unwrap();
        assert!(v[1] > 3.0 * v[0], "two half-lives apart: {v:?}");
    }

    #[test]
    fn seeds_are_the_strongest_positives_once_each() {
        let history: Vec<_> = (0..15)
            .map(|i| {
                let id = format!("i{}", i % 12);
                let action = if i == 3 {
                    Action::Dislike
                } else {
                    Action::Like
                };
                (event(&id, action, i), entry(&id, &[], &unit(2, &[0])))
            })
            .collect();
        let seeds = graph_seeds(&history, 30.0);
        assert_eq!(seeds.len(), GRAPH_SEEDS);
        assert!(
            seeds.windows(2).all(|w| w[0].1 >= w[1].1),
            "strongest first"
        );
        assert!(
            !seeds.iter().any(|(id, _)| &**id == "i3"),
            "a dislike is no seed"
        );
        let mut ids: Vec<_> = seeds.iter().map(|(id, _)| id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), seeds.len(), "no item twice");
    }

    #[test]
    fn the_query_blends_intent_and_taste() {
        let intent = unit(2, &[0]);
        let taste = unit(2, &[1]);
        let q = query_vector(Some(&intent), Some(taste.clone()), 0.5).unwrap();
        assert!((q[0] - q[1]).abs() < 1e-6 && (dot_f32(&q, &q) - 1.0).abs() < 1e-5);
        assert_eq!(query_vector(Some(&intent), None, 0.5), Some(intent.clone()));
        assert_eq!(query_vector(None, Some(taste.clone()), 0.5), Some(taste));
        assert_eq!(query_vector(None, None, 0.5), None);
        // Opposite intent and taste cancel out: nothing to search with.
        let opposite: Vec<f32> = intent.iter().map(|x| -x).collect();
        assert_eq!(query_vector(Some(&intent), Some(opposite), 0.5), None);
    }

    #[test]
    fn graph_scores_are_scaled_and_keep_their_source() {
        let hit = |id: &str| Hit {
            item_id: id.into(),
            score: 0.9,
        };
        let neighbour = |id: &str, score: f32| GraphNeighbour {
            item_id: id.into(),
            score,
            via: "seed".into(),
        };
        let merged = merge(
            vec![hit("a"), hit("b")],
            vec![neighbour("b", 4.0), neighbour("c", 1.0)],
        );
        assert_eq!(merged.len(), 3);
        assert_eq!(merged["a"], Candidate::default());
        assert_eq!(merged["b"].graph, 1.0);
        assert_eq!(merged["c"].graph, 0.25);
        assert_eq!(merged["c"].via.as_deref(), Some("seed"));
    }
}
