//! Implicit-feedback ALS (Hu, Koren & Volinsky 2008), the standard matrix-factorisation
//! baseline for implicit data, with the settings it is tuned over on validation.

use std::fmt;

use core_api::learn::linalg::cholesky_solve;
use rayon::prelude::*;
use serde::Serialize;

use super::{clean_history, SplitMix64};
use crate::tuned::{Family, Tuned, Tuning};

/// Hyper-parameters of [`ImplicitAls`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AlsParams {
    /// Latent dimension `k`.
    pub factors: usize,
    /// L2 regularisation `λ` of every factor vector.
    pub regularization: f32,
    /// Confidence of an observed interaction is `1 + alpha` (an unobserved one has 1).
    pub alpha: f32,
    /// Alternating sweeps (users, then items).
    pub iterations: usize,
    /// Seed of the initial item factors.
    pub seed: u64,
}

impl Default for AlsParams {
    fn default() -> Self {
        Self {
            factors: 64,
            regularization: 0.05,
            alpha: 10.0,
            iterations: 15,
            seed: 42,
        }
    }
}

/// Rows of `factors` (each `k` long) summed in fixed-size chunks, so the Gram matrix `FᵀF`
/// (full, `k × k`, `f64`) is the same whatever the number of threads.
fn gram(factors: &[f32], k: usize) -> Vec<f64> {
    const ROWS: usize = 512;
    let partials: Vec<Vec<f64>> = factors
        .par_chunks(ROWS * k)
        .map(|chunk| {
            let mut g = vec![0.0f64; k * k];
            let mut row = vec![0.0f64; k];
            for y in chunk.chunks_exact(k) {
                for (r, &v) in row.iter_mut().zip(y) {
                    *r = f64::from(v);
                }
                for (a, &ya) in row.iter().enumerate() {
                    for (gv, &yb) in g[a * k..a * k + a + 1].iter_mut().zip(&row) {
                        *gv += ya * yb;
                    }
                }
            }
            g
        })
        .collect();
    let mut g = vec![0.0f64; k * k];
    for p in &partials {
        for (x, y) in g.iter_mut().zip(p) {
            *x += y;
        }
    }
    for a in 0..k {
        for b in a + 1..k {
            g[a * k + b] = g[b * k + a];
        }
    }
    g
}

/// One least-squares step of implicit ALS for a row (user or item) that interacted with
/// `observed` rows of `other`: `x = (OᵀO + α·Σ_{o} o·oᵀ + λI)⁻¹ · (1 + α)·Σ_{o} o`, i.e.
/// `(OᵀO + Oᵤᵀ(Cᵤ − I)Oᵤ + λI)⁻¹ Oᵤᵀ Cᵤ p(u)` with `Cᵤ = 1 + α` on observed entries and
/// `p(u) = 1` there. `gram` is `OᵀO`; `a` (`k²`) and `b` (`k`) are scratch. A singular
/// system gives the zero vector.
#[allow(clippy::too_many_arguments)]
fn solve_row(
    gram: &[f64],
    other: &[f32],
    k: usize,
    observed: &[u32],
    alpha: f64,
    lambda: f64,
    a: &mut [f64],
    b: &mut [f64],
    out: &mut [f32],
) {
    a.copy_from_slice(gram);
    for d in 0..k {
        a[d * k + d] += lambda;
    }
    b.fill(0.0);
    for &o in observed {
        let y = &other[o as usize * k..(o as usize + 1) * k];
        for (r, &yr) in y.iter().enumerate() {
            let yr = f64::from(yr);
            b[r] += (1.0 + alpha) * yr;
            let ayr = alpha * yr;
            for (av, &yc) in a[r * k..r * k + r + 1].iter_mut().zip(y) {
                *av += ayr * f64::from(yc);
            }
        }
    }
    if cholesky_solve(a, b, k) {
        for (o, &x) in out.iter_mut().zip(b.iter()) {
            *o = x as f32;
        }
    } else {
        out.fill(0.0);
    }
}

/// Recomputes every row of `target` from `other` (one exact solve per row, in parallel).
fn update_all(
    target: &mut [f32],
    lists: &[Vec<u32>],
    other: &[f32],
    k: usize,
    alpha: f64,
    lambda: f64,
) {
    let g = gram(other, k);
    target
        .par_chunks_mut(k)
        .zip(lists.par_iter())
        .for_each_init(
            || (vec![0.0f64; k * k], vec![0.0f64; k]),
            |(a, b), (out, list)| solve_row(&g, other, k, list, alpha, lambda, a, b, out),
        );
}

/// Implicit-feedback matrix factorisation by alternating least squares (Hu, Koren & Volinsky
/// 2008, *Collaborative Filtering for Implicit Feedback Datasets*, ICDM): preference 1 for
/// observed user-item pairs and 0 elsewhere, confidence `1 + alpha` for the observed ones,
/// every row solved exactly (a `k × k` Cholesky solve, cheap for `k ≤ 128`). The standard
/// matrix-factorisation baseline for implicit data (the model of the `implicit` library).
#[derive(Clone)]
pub struct ImplicitAls {
    n_items: usize,
    factors: usize,
    alpha: f64,
    lambda: f64,
    /// Item factors `Y`, row-major `n_items × factors`.
    item_factors: Vec<f32>,
    /// `YᵀY`, `factors × factors`, for fold-in.
    yty: Vec<f64>,
}

impl fmt::Debug for ImplicitAls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImplicitAls")
            .field("n_items", &self.n_items)
            .field("factors", &self.factors)
            .field("alpha", &self.alpha)
            .field("lambda", &self.lambda)
            .finish_non_exhaustive()
    }
}

impl ImplicitAls {
    /// Fits the model on `users` (histories of item indices below `n_items`; duplicates and
    /// out-of-range indices are ignored). Item factors start uniform in `[0, 0.01)` from
    /// `params.seed` (as in `implicit`); each iteration solves every user given the items,
    /// then every item given the users. Negative `alpha` / `regularization` count as 0.
    pub fn fit(n_items: usize, users: &[Vec<u32>], params: &AlsParams) -> ImplicitAls {
        let k = params.factors;
        let alpha = f64::from(params.alpha).max(0.0);
        let lambda = f64::from(params.regularization).max(0.0);
        if k == 0 || n_items == 0 {
            return ImplicitAls {
                n_items,
                factors: k,
                alpha,
                lambda,
                item_factors: vec![0.0; n_items * k],
                yty: vec![0.0; k * k],
            };
        }
        let histories: Vec<Vec<u32>> = users.iter().map(|u| clean_history(u, n_items)).collect();
        let mut item_users: Vec<Vec<u32>> = vec![Vec::new(); n_items];
        for (u, h) in histories.iter().enumerate() {
            let Ok(u) = u32::try_from(u) else { break };
            for &i in h {
                item_users[i as usize].push(u);
            }
        }
        let mut rng = SplitMix64(params.seed);
        let mut y: Vec<f32> = (0..n_items * k).map(|_| rng.next_f32() * 0.01).collect();
        let mut x = vec![0.0f32; histories.len() * k];
        for _ in 0..params.iterations {
            update_all(&mut x, &histories, &y, k, alpha, lambda);
            update_all(&mut y, &item_users, &x, k, alpha, lambda);
        }
        let yty = gram(&y, k);
        ImplicitAls {
            n_items,
            factors: k,
            alpha,
            lambda,
            item_factors: y,
            yty,
        }
    }

    /// The score of every item for a user with `history`, folded in as a new user: the
    /// user's factor is the exact least-squares solution given the fixed item factors
    /// `Y` (`(YᵀY + Yᵤᵀ(Cᵤ − I)Yᵤ + λI) x = Yᵤᵀ Cᵤ p(u)`), the scores are `Y·x`. An empty
    /// history scores every item 0.
    pub fn scores(&self, history: &[u32]) -> Vec<f32> {
        let k = self.factors;
        let x = self.fold_in(history);
        if k == 0 {
            return vec![0.0; self.n_items];
        }
        self.item_factors
            .chunks_exact(k)
            .map(|y| y.iter().zip(&x).map(|(p, q)| p * q).sum())
            .collect()
    }

    /// The factor of a user with `history` given the item factors (zero for an empty one).
    fn fold_in(&self, history: &[u32]) -> Vec<f32> {
        let k = self.factors;
        let mut x = vec![0.0f32; k];
        let history = clean_history(history, self.n_items);
        if k == 0 || history.is_empty() {
            return x;
        }
        let mut a = vec![0.0f64; k * k];
        let mut b = vec![0.0f64; k];
        solve_row(
            &self.yty,
            &self.item_factors,
            k,
            &history,
            self.alpha,
            self.lambda,
            &mut a,
            &mut b,
            &mut x,
        );
        x
    }

    /// The number of items the model was fitted for.
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// The latent dimension.
    pub fn factors(&self) -> usize {
        self.factors
    }
}

/// 64 factors; the regularisation and the confidence weight tuned. The chosen setting is
/// returned too: the ALS + transitions blend reuses it.
pub(crate) fn tuned_als(t: &Tuning<'_>) -> Tuned<AlsParams> {
    let k = t.k;
    let als_settings: Vec<(String, AlsParams)> =
        [(0.01f32, 2.0f32), (0.1, 10.0), (0.1, 40.0), (1.0, 10.0)]
            .into_iter()
            .map(|(regularization, alpha)| {
                (
                    format!("64 factors, λ={regularization}, α={alpha}"),
                    AlsParams {
                        factors: 64,
                        regularization,
                        alpha,
                        ..AlsParams::default()
                    },
                )
            })
            .collect();
    t.tune(
        Family {
            name: "implicit ALS",
            settings: als_settings,
        },
        &|params, d| {
            let p = t.prepared(d);
            let model = ImplicitAls::fit(d.catalogue.len(), &d.users(p), params);
            d.lists(p, k, &|h| (!h.is_empty()).then(|| model.scores(h)))
        },
    )
}

#[cfg(test)]
mod tests;
