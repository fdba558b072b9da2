//! The reason shown with each pick: the source that put it there, in words ("because you
//! watched X", "people who watched X also watched", "matches 'q'", "similar to X").

use std::sync::Arc;

use crate::catalog::CatalogEntry;
use crate::config::RankingConfig;
use crate::learn::learner::Learner;
use vector_index::distance::best_dot;

use super::{LearnedInputs, RankRequest, Ranked};

/// The reason from the static signals: a strong graph neighbour names its seed, an intent
/// is quoted, else the closest liked item, else the request's fallback. `title_of` looks an
/// item's title up in the catalogue.
pub(crate) fn reason(
    r: &Ranked,
    req: &RankRequest,
    history: &[(Arc<CatalogEntry>, Vec<f32>)],
    cfg: &RankingConfig,
    title_of: &dyn Fn(&str) -> Option<String>,
) -> String {
    let c = &r.components;
    if let Some(via) = &r.via {
        if cfg.graph_weight * c.graph >= cfg.semantic_weight * c.semantic * 0.5 {
            if let Some(title) = title_of(via) {
                return format!("because you watched {title}");
            }
        }
    }
    if let Some(q) = &req.intent {
        return format!("matches '{q}'");
    }
    let dot = best_dot();
    let closest = history
        .iter()
        .map(|(e, v)| (e, dot(v, &r.entry.vector)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match closest {
        Some((e, sim)) if sim > 0.3 => format!("similar to {}", e.item.title),
        _ => req.fallback_reason.to_string(),
    }
}

/// The learned sources' reason for a pick, when one of them put it there: the transition or
/// collaborative signal with the larger contribution to the score.
pub(crate) fn learned_reason(
    r: &Ranked,
    req: &RankRequest,
    l: &LearnedInputs,
    learner: &Learner,
    title_of: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    if req.intent.is_some() {
        return None;
    }
    let x = &r.features;
    // Normalised scores and rank signals of the two sources, compared as they stand.
    let transition = x[2] + x[3];
    let collaborative = x[0] + x[1];
    let ordinal = learner.ordinal(&r.entry.id)?;
    if x[2] > 0.0 && transition >= collaborative {
        let source = learner.transition_source(&l.recent, ordinal)?;
        return Some(format!("because you just watched {}", title_of(&source)?));
    }
    if x[0] > 0.0 && collaborative > 0.0 {
        let source = learner.collab_source(&l.model, &l.history, ordinal)?;
        return Some(format!(
            "people who watched {} also watched",
            title_of(&source)?
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use shared_types::ScoreComponents;

    use super::*;
    use crate::engine::pipeline::test_support::{entry, unit};
    use crate::engine::pipeline::HardFilters;
    use crate::learn::ranker::FEATURES;

    fn request(intent: Option<&str>) -> RankRequest {
        RankRequest {
            query: None,
            candidates: HashMap::new(),
            exclude: HashSet::new(),
            filters: HardFilters::default(),
            limit: 10,
            history: Vec::new(),
            intent: intent.map(str::to_string),
            fallback_reason: "popular right now",
            learned: None,
        }
    }

    fn pick(graph: f32, semantic: f32, via: Option<&str>) -> Ranked {
        Ranked {
            entry: entry("pick", &[], &unit(3, &[0])),
            components: ScoreComponents {
                graph,
                semantic,
                ..ScoreComponents::default()
            },
            score: 1.0,
            via: via.map(Arc::from),
            features: [0.0; FEATURES],
        }
    }

    fn titles(id: &str) -> Option<String> {
        (id == "seed").then(|| "The Seed".to_string())
    }

    #[test]
    fn a_strong_graph_neighbour_names_its_seed() {
        let cfg = RankingConfig::default();
        let r = pick(1.0, 0.1, Some("seed"));
        assert_eq!(
            reason(&r, &request(None), &[], &cfg, &titles),
            "because you watched The Seed"
        );
        // A weak graph link on a strong semantic match quotes the intent instead.
        let r = pick(0.01, 1.0, Some("seed"));
        assert_eq!(
            reason(&r, &request(Some("space opera")), &[], &cfg, &titles),
            "matches 'space opera'"
        );
    }

    #[test]
    fn the_closest_liked_item_or_the_fallback() {
        let cfg = RankingConfig::default();
        let liked = entry("liked", &[], &unit(3, &[0]));
        let history = vec![(liked.clone(), liked.vector_f32())];
        let r = pick(0.0, 0.5, None);
        assert_eq!(
            reason(&r, &request(None), &history, &cfg, &titles),
            "similar to Title liked"
        );
        let far = entry("far", &[], &unit(3, &[2]));
        let history = vec![(far.clone(), far.vector_f32())];
        assert_eq!(
            reason(&r, &request(None), &history, &cfg, &titles),
            "popular right now"
        );
    }
}
