//! Hybrid ranking: each candidate's score from its signals — the learned ranker's when a
//! trained model serves the user, else the configured weighted sum — and the final order.

use std::sync::Arc;

use shared_types::ScoreComponents;

use crate::catalog::CatalogEntry;
use crate::config::RankingConfig;
use crate::learn::{ItemSignals, RankFeatures, Ranker};

use super::{Candidate, Ranked};

/// Scores one candidate. `x` are the learned ranker's features (zeros when the user has no
/// learned signals); `ranker` is the served model's ranker, if any.
pub(crate) fn score(
    entry: Arc<CatalogEntry>,
    candidate: Candidate,
    side: &ItemSignals,
    x: RankFeatures,
    ranker: Option<&Ranker>,
    has_intent: bool,
    cfg: &RankingConfig,
) -> Ranked {
    let components = ScoreComponents {
        semantic: side.semantic,
        graph: candidate.graph,
        popularity: side.popularity,
        freshness: side.freshness,
        quality: side.quality,
        collaborative: x[0],
        transition: x[2],
    };
    let score = match ranker {
        // The intent is not in the logged interactions the ranker learned from: it adds its
        // own weight on top.
        Some(ranker) => {
            ranker.score(&x) + f32::from(u8::from(has_intent)) * cfg.intent_weight * side.semantic
        }
        None => {
            cfg.semantic_weight * components.semantic
                + cfg.graph_weight * components.graph
                + cfg.popularity_weight * components.popularity
                + cfg.freshness_weight * components.freshness
                + cfg.quality_weight * components.quality
                + cfg.collaborative_weight * components.collaborative
                + cfg.transition_weight * components.transition
        }
    };
    Ranked {
        entry,
        components,
        score,
        via: candidate.via,
        features: x,
    }
}

/// Puts scored candidates in order, best first (ties by id, so answers repeat). Learned
/// scores are log-odds: they are first mapped to (0, 1] for the diversity trade-off.
pub(crate) fn order(ranked: &mut [Ranked], learned_scores: bool) {
    if learned_scores {
        let best = ranked.iter().map(|r| r.score).fold(f32::MIN, f32::max);
        ranked
            .iter_mut()
            .for_each(|r| r.score = (r.score - best).exp());
    }
    ranked.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.entry.id.cmp(&b.entry.id))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pipeline::test_support::{entry, unit};
    use crate::learn::ranker::FEATURES;

    fn signals(semantic: f32, popularity: f32) -> ItemSignals {
        ItemSignals {
            popularity,
            trend: 0.0,
            semantic,
            content: 0.0,
            freshness: 0.5,
            quality: 0.0,
        }
    }

    #[test]
    fn the_static_score_is_the_configured_weighted_sum() {
        let cfg = RankingConfig::default();
        let graph = Candidate {
            graph: 0.5,
            via: Some("seed".into()),
        };
        let r = score(
            entry("a", &[], &unit(2, &[0])),
            graph,
            &signals(0.8, 0.2),
            [0.0; FEATURES],
            None,
            false,
            &cfg,
        );
        let expected = cfg.semantic_weight * 0.8
            + cfg.graph_weight * 0.5
            + cfg.popularity_weight * 0.2
            + cfg.freshness_weight * 0.5;
        assert!(
            (r.score - expected).abs() < 1e-6,
            "{} vs {expected}",
            r.score
        );
        assert_eq!(r.components.graph, 0.5);
        assert_eq!(r.via.as_deref(), Some("seed"));
    }

    #[test]
    fn more_relevant_ranks_first_and_ties_break_by_id() {
        let cfg = RankingConfig::default();
        let make = |id: &str, semantic: f32| {
            score(
                entry(id, &[], &unit(2, &[0])),
                Candidate::default(),
                &signals(semantic, 0.0),
                [0.0; FEATURES],
                None,
                false,
                &cfg,
            )
        };
        let mut ranked = vec![make("c", 0.1), make("b", 0.9), make("a", 0.1)];
        order(&mut ranked, false);
        let ids: Vec<&str> = ranked.iter().map(|r| &*r.entry.id).collect();
        assert_eq!(ids, ["b", "a", "c"]);
    }

    #[test]
    fn learned_log_odds_map_to_a_unit_scale_with_the_best_at_one() {
        let cfg = RankingConfig::default();
        let mut ranked: Vec<Ranked> = [("a", 2.0f32), ("b", -1.0), ("c", 0.5)]
            .into_iter()
            .map(|(id, s)| {
                let mut r = score(
                    entry(id, &[], &unit(2, &[1])),
                    Candidate::default(),
                    &signals(0.0, 0.0),
                    [0.0; FEATURES],
                    None,
                    false,
                    &cfg,
                );
                r.score = s;
                r
            })
            .collect();
        order(&mut ranked, true);
        assert_eq!(&*ranked[0].entry.id, "a");
        assert!((ranked[0].score - 1.0).abs() < 1e-6);
        assert!((ranked[2].score - (-3.0f32).exp()).abs() < 1e-6);
        assert!(ranked.iter().all(|r| r.score > 0.0 && r.score <= 1.0));
    }
}
