//! EASE (Steck 2019) and sparse EASE (the engine's own collaborative model, restricted to
//! each item's neighbours), with the regularisation each is tuned over on validation.

use std::fmt;

use core_api::learn::CollabParams;
use rayon::prelude::*;

use super::clean_history;
use super::dense::{spd_inverse, NB};
use super::knn::item_item_lists;
use crate::tuned::{Family, TunedLists, Tuning};

/// Used in place of a non-positive or non-finite EASE `lambda`.
const MIN_LAMBDA: f64 = 1e-3;

/// EASE, the "embarrassingly shallow autoencoder" of Steck (2019, *Embarrassingly Shallow
/// Autoencoders for Sparse Data*, WWW): a closed-form item-item linear model with a zero
/// diagonal, `B = I − P·diagMat(1 / diag(P))`, `P = (XᵀX + λI)⁻¹` for the binary user × item
/// matrix `X`. One of the strongest simple baselines on top-k recommendation benchmarks.
#[derive(Clone)]
pub struct Ease {
    n_items: usize,
    /// `B`, dense row-major `n_items × n_items`: `b[j * n + i]` is the weight of item `j` (in
    /// a history) for item `i`.
    b: Vec<f32>,
}

impl fmt::Debug for Ease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ease")
            .field("n_items", &self.n_items)
            .finish_non_exhaustive()
    }
}

impl Ease {
    /// Fits EASE on `users` (each a history of item indices below `n_items`; duplicates and
    /// out-of-range indices are ignored) with L2 regularisation `lambda` (Steck uses a few
    /// hundred on large data sets; a non-positive value is replaced by a tiny ridge). The
    /// Gram matrix is accumulated and inverted in `f64`; `B` is stored in `f32`. Memory:
    /// about `16 · n_items²` bytes at the peak (400 MB for 5,000 items). Should the
    /// inversion fail numerically, all weights are zero.
    pub fn fit(n_items: usize, users: &[Vec<u32>], lambda: f32) -> Ease {
        let n = n_items;
        if n == 0 {
            return Ease {
                n_items,
                b: Vec::new(),
            };
        }
        let lambda = f64::from(lambda);
        let lambda = if lambda.is_finite() && lambda > 0.0 {
            lambda
        } else {
            MIN_LAMBDA
        };
        let histories: Vec<Vec<u32>> = users.iter().map(|u| clean_history(u, n)).collect();
        // Lower triangle of G = XᵀX + λI, each block of rows filled by one task.
        let mut g = vec![0.0f64; n * n];
        g.par_chunks_mut(NB * n)
            .enumerate()
            .for_each(|(bi, chunk)| {
                let r0 = bi * NB;
                let r1 = r0 + chunk.len() / n;
                for h in &histories {
                    let lo = h.partition_point(|&x| (x as usize) < r0);
                    let hi = h.partition_point(|&x| (x as usize) < r1);
                    for pos in lo..hi {
                        let a = h[pos] as usize;
                        let row = &mut chunk[(a - r0) * n..(a - r0 + 1) * n];
                        for &b in &h[..=pos] {
                            row[b as usize] += 1.0;
                        }
                    }
                }
                for (r, row) in chunk.chunks_mut(n).enumerate() {
                    row[r0 + r] += lambda;
                }
            });
        let Some(p) = spd_inverse(g, n) else {
            return Ease {
                n_items,
                b: vec![0.0; n * n],
            };
        };
        let diag: Vec<f64> = (0..n).map(|j| p[j * n + j]).collect();
        let mut b = vec![0.0f32; n * n];
        b.par_chunks_mut(n)
            .zip(p.par_chunks(n))
            .enumerate()
            .for_each(|(i, (brow, prow))| {
                for ((bv, &pv), &d) in brow.iter_mut().zip(prow).zip(&diag) {
                    *bv = (-pv / d) as f32;
                }
                brow[i] = 0.0;
            });
        Ease { n_items, b }
    }

    /// The score of every item for a user with `history`: `Σ_{j ∈ history} B[j][i]`. Items
    /// of the history itself score what the others give them (the model has a zero
    /// diagonal); exclude them when ranking. An empty history scores every item 0.
    pub fn scores(&self, history: &[u32]) -> Vec<f32> {
        let n = self.n_items;
        let mut out = vec![0.0f32; n];
        for j in clean_history(history, n) {
            let row = &self.b[j as usize * n..(j as usize + 1) * n];
            for (o, &w) in out.iter_mut().zip(row) {
                *o += w;
            }
        }
        out
    }

    /// The number of items the model was fitted for.
    pub fn n_items(&self) -> usize {
        self.n_items
    }
}

/// Sparse EASE: the engine's item-item learner with its default 100 neighbours, `λ` tuned.
pub(crate) fn tuned_sparse_ease(t: &Tuning<'_>) -> TunedLists {
    let sparse_ease = Family {
        name: "sparse EASE, 100 neighbours (the engine's collaborative model alone)",
        settings: [50.0f32, 200.0, 500.0]
            .into_iter()
            .map(|lambda| {
                (
                    format!("λ={lambda}"),
                    CollabParams {
                        lambda,
                        ..CollabParams::default()
                    },
                )
            })
            .collect(),
    };
    t.tune_lists(sparse_ease, &|params, d| item_item_lists(t, params, d))
}

/// Dense EASE, `λ` tuned.
pub(crate) fn tuned_ease(t: &Tuning<'_>) -> TunedLists {
    let k = t.k;
    let ease = Family {
        name: "EASE",
        settings: [10.0f32, 50.0, 200.0, 500.0]
            .into_iter()
            .map(|l| (format!("λ={l}"), l))
            .collect(),
    };
    t.tune_lists(ease, &|&lambda, d| {
        let p = t.prepared(d);
        let model = Ease::fit(d.catalogue.len(), &d.users(p), lambda);
        d.lists(p, k, &|h| (!h.is_empty()).then(|| model.scores(h)))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::baselines::top_k;

    fn toy_pairs() -> Vec<Vec<u32>> {
        let mut users = vec![vec![0, 1]; 5];
        users.extend(vec![vec![2, 3]; 5]);
        users.push(vec![1, 0, 4]);
        users.push(vec![3, 2, 4]);
        users
    }

    #[test]
    fn ease_recommends_the_co_occurring_item() {
        let model = Ease::fit(5, &toy_pairs(), 1.0);
        assert_eq!(model.n_items(), 5);
        for j in 0..5 {
            assert_eq!(model.b[j * 5 + j], 0.0, "diagonal of B must be zero");
        }
        let scores = model.scores(&[0]);
        assert_eq!(scores.len(), 5);
        let exclude: HashSet<u32> = [0].into_iter().collect();
        assert_eq!(top_k(&scores, &exclude, 1), vec![1]);
        assert!(scores[1] > scores[2] && scores[1] > scores[3] && scores[1] > scores[4]);
        let scores = model.scores(&[3]);
        let exclude: HashSet<u32> = [3].into_iter().collect();
        assert_eq!(top_k(&scores, &exclude, 1), vec![2]);
        // B[i][j] = −P[i][j] / P[j][j] against an independent dense inverse.
        let mut g = vec![0.0f64; 25];
        for u in toy_pairs() {
            for &a in &u {
                for &b in &u {
                    g[a as usize * 5 + b as usize] += 1.0;
                }
            }
        }
        for d in 0..5 {
            g[d * 5 + d] += 1.0;
        }
        let p = spd_inverse(g, 5).expect("invertible");
        for i in 0..5 {
            for j in 0..5 {
                let want = if i == j {
                    0.0
                } else {
                    -p[i * 5 + j] / p[j * 5 + j]
                };
                assert!((f64::from(model.b[i * 5 + j]) - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn ease_empty_inputs_give_zero_scores() {
        let model = Ease::fit(5, &toy_pairs(), 1.0);
        assert_eq!(model.scores(&[]), vec![0.0; 5]);
        // Out-of-range items are ignored; duplicates count once.
        assert_eq!(model.scores(&[99]), vec![0.0; 5]);
        assert_eq!(model.scores(&[0, 0]), model.scores(&[0]));
        let empty = Ease::fit(4, &[], 10.0);
        assert_eq!(empty.scores(&[1, 2]), vec![0.0; 4]);
        let none = Ease::fit(0, &[vec![1, 2]], 10.0);
        assert!(none.scores(&[0]).is_empty());
        // A non-positive lambda falls back to a small ridge instead of failing.
        let ridge = Ease::fit(5, &toy_pairs(), 0.0);
        assert!(ridge.scores(&[0]).iter().all(|s| s.is_finite()));
    }
}
