//! Diversity: maximal marginal relevance over the ranked list, so ten picks are not ten
//! near-duplicates of the best one.

use vector_index::distance::best_dot;

use super::Ranked;

/// Repeatedly takes the item with the best trade-off between its (normalised) score and its
/// similarity to what is already taken: `lambda` 1 keeps the ranking, lower values favour
/// variety. Only the best `4 × limit` are considered.
pub(crate) fn mmr(ranked: Vec<Ranked>, limit: usize, lambda: f32) -> Vec<Ranked> {
    let mut pool: Vec<Ranked> = ranked.into_iter().take(limit * 4).collect();
    let top = pool.first().map_or(1.0, |r| r.score.abs().max(1e-6));
    let mut max_sim = vec![f32::MIN; pool.len()];
    let mut picked = Vec::with_capacity(limit);
    let dot = best_dot();
    while picked.len() < limit && !pool.is_empty() {
        let best = (0..pool.len())
            .max_by(|&a, &b| {
                let value = |i: usize| {
                    let redundancy = if max_sim[i] == f32::MIN {
                        0.0
                    } else {
                        max_sim[i]
                    };
                    lambda * pool[i].score / top - (1.0 - lambda) * redundancy
                };
                value(a).total_cmp(&value(b)).then(b.cmp(&a))
            })
            .expect("pool is not empty");
        let chosen = pool.swap_remove(best);
        max_sim.swap_remove(best);
        let v = chosen.entry.vector_f32();
        for (i, r) in pool.iter().enumerate() {
            max_sim[i] = max_sim[i].max(dot(&v, &r.entry.vector));
        }
        picked.push(chosen);
    }
    picked
}

#[cfg(test)]
mod tests {
    use shared_types::ScoreComponents;

    use super::*;
    use crate::engine::pipeline::test_support::{entry, unit};
    use crate::learn::ranker::FEATURES;

    fn ranked(id: &str, score: f32, vector: Vec<f32>) -> Ranked {
        Ranked {
            entry: entry(id, &[], &vector),
            components: ScoreComponents::default(),
            score,
            via: None,
            features: [0.0; FEATURES],
        }
    }

    /// Two near-duplicates on top, a different item just below them.
    fn list() -> Vec<Ranked> {
        vec![
            ranked("twin-1", 1.0, unit(3, &[0])),
            ranked("twin-2", 0.99, unit(3, &[0])),
            ranked("other", 0.9, unit(3, &[1])),
        ]
    }

    fn ids(picked: &[Ranked]) -> Vec<&str> {
        picked.iter().map(|r| &*r.entry.id).collect()
    }

    #[test]
    fn lambda_one_keeps_the_ranking() {
        assert_eq!(ids(&mmr(list(), 2, 1.0)), ["twin-1", "twin-2"]);
    }

    #[test]
    fn a_lower_lambda_passes_over_a_near_duplicate() {
        assert_eq!(ids(&mmr(list(), 2, 0.7)), ["twin-1", "other"]);
    }

    #[test]
    fn never_more_than_the_limit_nor_than_the_pool() {
        assert_eq!(mmr(list(), 1, 0.7).len(), 1);
        assert_eq!(mmr(list(), 10, 0.7).len(), 3);
        assert!(mmr(Vec::new(), 10, 0.7).is_empty());
    }
}
