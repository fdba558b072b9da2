//! Strong collaborative-filtering baselines for `reco-eval`: EASE and implicit-feedback ALS.
//!
//! The engine is judged against these two classic, well-tuned models (on top of the
//! popularity / item-kNN / random rows in the parent module), because beating only weak
//! baselines says little. Everything here is plain numeric code on dense item indices
//! (`u32` in `0..n_items`); a user's history is a slice of distinct item indices of positive
//! interactions. There is no linear-algebra dependency: EASE needs the inverse of a dense
//! symmetric positive-definite matrix, which `spd_inverse` computes with a blocked,
//! rayon-parallel Cholesky factorisation; ALS needs only small `k × k` solves.
//!
//! All results are deterministic: parallel work is split so that every number is computed
//! by one sequential loop in a fixed order, and ALS draws its initial factors from a seeded
//! SplitMix64 generator.

use crate::learn::linalg::cholesky_solve;
use std::collections::HashSet;
use std::fmt;

use rayon::prelude::*;
use serde::Serialize;

// ---------------------------------------------------------------------------------------
// Dense kernels
// ---------------------------------------------------------------------------------------

/// Rows per block of the blocked factorisation / inversion (one rayon task per block).
const NB: usize = 64;
/// Length of the `k` slices a micro-kernel sweeps at once (keeps the panels in L1/L2).
const KC: usize = 256;

/// Plain dot product.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// 2 × 4 register-blocked micro-kernel: the eight dot products of two `a` rows with four `b`
/// rows, all of length `len`. Simple indexed loops over re-sliced rows, so the bounds checks
/// go away and (in optimised builds) it vectorises; the eight independent accumulators keep
/// the floating-point units busy even unvectorised.
#[inline(always)]
fn kernel_2x4(a: [&[f64]; 2], b: [&[f64]; 4], len: usize) -> [[f64; 4]; 2] {
    let (a0, a1) = (&a[0][..len], &a[1][..len]);
    let (b0, b1, b2, b3) = (&b[0][..len], &b[1][..len], &b[2][..len], &b[3][..len]);
    let mut c = [[0.0f64; 4]; 2];
    for k in 0..len {
        let (x0, x1) = (a0[k], a1[k]);
        let (y0, y1, y2, y3) = (b0[k], b1[k], b2[k], b3[k]);
        c[0][0] += x0 * y0;
        c[0][1] += x0 * y1;
        c[0][2] += x0 * y2;
        c[0][3] += x0 * y3;
        c[1][0] += x1 * y0;
        c[1][1] += x1 * y1;
        c[1][2] += x1 * y2;
        c[1][3] += x1 * y3;
    }
    c
}

/// `out[r * b.len() + s] += a[r] · b[s]` for every pair of rows (a small `A·Bᵀ`). Every row
/// must have the same length. The rows are swept in `KC`-long slices so that the `b` panel
/// stays in cache while every pair of `a` rows passes over it.
fn dot_tile(a: &[&[f64]], b: &[&[f64]], out: &mut [f64]) {
    let (m, nb) = (a.len(), b.len());
    debug_assert_eq!(out.len(), m * nb);
    let len = a.first().map_or(0, |r| r.len());
    let mut k0 = 0;
    while k0 < len {
        let k1 = (k0 + KC).min(len);
        let w = k1 - k0;
        let mut r = 0;
        while r + 2 <= m {
            let (a0, a1) = (&a[r][k0..k1], &a[r + 1][k0..k1]);
            let mut s = 0;
            while s + 4 <= nb {
                let bs = [
                    &b[s][k0..k1],
                    &b[s + 1][k0..k1],
                    &b[s + 2][k0..k1],
                    &b[s + 3][k0..k1],
                ];
                let c = kernel_2x4([a0, a1], bs, w);
                for (dr, row) in c.iter().enumerate() {
                    let o = &mut out[(r + dr) * nb + s..(r + dr) * nb + s + 4];
                    for (ov, cv) in o.iter_mut().zip(row) {
                        *ov += cv;
                    }
                }
                s += 4;
            }
            for (t, brow) in b.iter().enumerate().skip(s) {
                let bk = &brow[k0..k1];
                out[r * nb + t] += dot(a0, bk);
                out[(r + 1) * nb + t] += dot(a1, bk);
            }
            r += 2;
        }
        if r < m {
            let ar = &a[r][k0..k1];
            for (t, brow) in b.iter().enumerate() {
                out[r * nb + t] += dot(ar, &brow[k0..k1]);
            }
        }
        k0 = k1;
    }
}

/// In-place Cholesky factorisation `A = L·Lᵀ` of the `n × n` row-major matrix `a`, of which
/// only the lower triangle is read; `L` replaces it (the upper triangle is left as it was).
/// Left-looking by blocks of `NB` columns: every update is a dot product of two row prefixes,
/// so all memory access is contiguous. `false` when `a` is not (numerically) positive
/// definite.
fn cholesky_in_place(a: &mut [f64], n: usize) -> bool {
    for j0 in (0..n).step_by(NB) {
        let j1 = (j0 + NB).min(n);
        let w = j1 - j0;
        // 1. Subtract the contribution of the finished columns 0..j0 from block column j0..j1
        //    of every row at or below the diagonal block.
        if j0 > 0 {
            let prefix: Vec<f64> = (j0..j1)
                .flat_map(|c| a[c * n..c * n + j0].iter().copied())
                .collect();
            a[j0 * n..].par_chunks_mut(NB * n).for_each(|chunk| {
                let rows = chunk.len() / n;
                let mut out = vec![0.0; rows * w];
                {
                    let a_rows: Vec<&[f64]> = chunk.chunks(n).map(|r| &r[..j0]).collect();
                    let b_rows: Vec<&[f64]> = prefix.chunks(j0).collect();
                    dot_tile(&a_rows, &b_rows, &mut out);
                }
                for (row, o) in chunk.chunks_mut(n).zip(out.chunks(w)) {
                    for (x, y) in row[j0..j1].iter_mut().zip(o) {
                        *x -= y;
                    }
                }
            });
        }
        // 2. Factor the diagonal block (small, sequential).
        for c in j0..j1 {
            let lc: Vec<f64> = a[c * n + j0..c * n + c].to_vec();
            let d = a[c * n + c] - dot(&lc, &lc);
            if !(d > 0.0 && d.is_finite()) {
                return false;
            }
            let l = d.sqrt();
            a[c * n + c] = l;
            for r in c + 1..j1 {
                let s = dot(&a[r * n + j0..r * n + c], &lc);
                a[r * n + c] = (a[r * n + c] - s) / l;
            }
        }
        // 3. Triangular solve for the rows below the diagonal block: X · L_jjᵀ = A.
        if j1 < n {
            let diag: Vec<f64> = (j0..j1)
                .flat_map(|c| a[c * n + j0..c * n + j1].iter().copied())
                .collect();
            a[j1 * n..].par_chunks_mut(NB * n).for_each(|chunk| {
                for row in chunk.chunks_mut(n) {
                    let seg = &mut row[j0..j1];
                    for c in 0..w {
                        let lrow = &diag[c * w..c * w + w];
                        let s = dot(&seg[..c], &lrow[..c]);
                        seg[c] = (seg[c] - s) / lrow[c];
                    }
                }
            });
        }
    }
    true
}

/// Inverse of a dense symmetric positive-definite `n × n` matrix (row-major; only the lower
/// triangle of `a` is read), as a full symmetric row-major matrix; `None` when `a` is not
/// numerically positive definite. `A = L·Lᵀ` (blocked Cholesky), `M = L⁻¹` computed one
/// row of `Mᵀ` per forward substitution, then `A⁻¹ = Mᵀ·M`: about `n³` flops in all, every
/// `O(n³)` step a rayon-parallel product of contiguous rows.
pub(crate) fn spd_inverse(mut a: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    assert_eq!(a.len(), n * n, "spd_inverse: matrix must be n × n");
    if n == 0 {
        return Some(a);
    }
    if !cholesky_in_place(&mut a, n) {
        return None;
    }
    let l = &a;
    // Row j of `u` is column j of M = L⁻¹ (solves L·x = e_j); only entries i ≥ j are non-zero.
    let mut u = vec![0.0f64; n * n];
    u.par_chunks_mut(NB * n)
        .enumerate()
        .for_each(|(bj, chunk)| {
            let j0 = bj * NB;
            let w = chunk.len() / n;
            let mut out = Vec::new();
            for i0 in (j0..n).step_by(NB) {
                let i1 = (i0 + NB).min(n);
                let h = i1 - i0;
                out.clear();
                out.resize(w * h, 0.0);
                if i0 > j0 {
                    let a_rows: Vec<&[f64]> = chunk.chunks(n).map(|r| &r[j0..i0]).collect();
                    let b_rows: Vec<&[f64]> =
                        (i0..i1).map(|i| &l[i * n + j0..i * n + i0]).collect();
                    dot_tile(&a_rows, &b_rows, &mut out);
                }
                for (jr, row) in chunk.chunks_mut(n).enumerate() {
                    let j = j0 + jr;
                    for i in i0.max(j)..i1 {
                        let s =
                            out[jr * h + (i - i0)] + dot(&l[i * n + i0..i * n + i], &row[i0..i]);
                        let delta = if i == j { 1.0 } else { 0.0 };
                        row[i] = (delta - s) / l[i * n + i];
                    }
                }
            }
        });
    // A⁻¹[i][j] = Σ_k M[k][i]·M[k][j] = u[i] · u[j] (lower triangle; the zeros of `u` below
    // its diagonal make the sums start at the block's first row exactly).
    let mut p = a;
    p.par_chunks_mut(NB * n)
        .enumerate()
        .for_each(|(bi, chunk)| {
            let i0 = bi * NB;
            let h = chunk.len() / n;
            let i1 = i0 + h;
            let mut out = Vec::new();
            let a_rows: Vec<&[f64]> = (i0..i1).map(|i| &u[i * n + i0..(i + 1) * n]).collect();
            for j0 in (0..i1).step_by(NB) {
                let j1 = (j0 + NB).min(i1);
                let w = j1 - j0;
                let b_rows: Vec<&[f64]> = (j0..j1).map(|j| &u[j * n + i0..(j + 1) * n]).collect();
                out.clear();
                out.resize(h * w, 0.0);
                dot_tile(&a_rows, &b_rows, &mut out);
                for (ir, row) in chunk.chunks_mut(n).enumerate() {
                    let last = (i0 + ir + 1).min(j1);
                    if last > j0 {
                        row[j0..last].copy_from_slice(&out[ir * w..ir * w + (last - j0)]);
                    }
                }
            }
        });
    drop(u);
    // Mirror the lower triangle into the upper one, tile by tile.
    for ib in (0..n).step_by(NB) {
        for jb in (ib..n).step_by(NB) {
            for i in ib..(ib + NB).min(n) {
                for j in jb.max(i + 1)..(jb + NB).min(n) {
                    p[i * n + j] = p[j * n + i];
                }
            }
        }
    }
    Some(p)
}

/// Sorted, de-duplicated item indices below `n` (out-of-range ones are ignored).
fn clean_history(history: &[u32], n: usize) -> Vec<u32> {
    let mut h: Vec<u32> = history
        .iter()
        .copied()
        .filter(|&i| (i as usize) < n)
        .collect();
    h.sort_unstable();
    h.dedup();
    h
}

// ---------------------------------------------------------------------------------------
// EASE
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Implicit ALS
// ---------------------------------------------------------------------------------------

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

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny, good-enough seeded generator, so the
/// library needs no `rand`.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
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

// ---------------------------------------------------------------------------------------
// Ranking
// ---------------------------------------------------------------------------------------

/// The indices of the `k` best `scores`, best first, skipping `exclude`; ties go to the
/// lower index and NaN ranks last. Fewer than `k` when fewer items remain. A partial
/// selection (`select_nth_unstable_by`) then a sort of the `k` kept, so `O(n + k log k)`.
pub fn top_k(scores: &[f32], exclude: &HashSet<u32>, k: usize) -> Vec<u32> {
    if k == 0 {
        return Vec::new();
    }
    let mut candidates: Vec<(u32, f32)> = scores
        .iter()
        .enumerate()
        .filter_map(|(i, &s)| {
            let i = u32::try_from(i).ok()?;
            let s = if s.is_nan() { f32::NEG_INFINITY } else { s };
            (!exclude.contains(&i)).then_some((i, s))
        })
        .collect();
    let order = |a: &(u32, f32), b: &(u32, f32)| {
        b.1.partial_cmp(&a.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.0.cmp(&b.0))
    };
    if candidates.len() > k {
        candidates.select_nth_unstable_by(k - 1, order);
        candidates.truncate(k);
    }
    candidates.sort_unstable_by(order);
    candidates.into_iter().map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_matrix(rng: &mut SplitMix64, rows: usize, cols: usize) -> Vec<f64> {
        (0..rows * cols)
            .map(|_| f64::from(rng.next_f32()) * 2.0 - 1.0)
            .collect()
    }

    /// `AᵀA + I` for a random `n × n` `A`.
    fn random_spd(rng: &mut SplitMix64, n: usize) -> Vec<f64> {
        let a = random_matrix(rng, n, n);
        let mut g = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let mut s = 0.0;
                for r in 0..n {
                    s += a[r * n + i] * a[r * n + j];
                }
                g[i * n + j] = s + if i == j { 1.0 } else { 0.0 };
            }
        }
        g
    }

    fn max_identity_error(g: &[f64], p: &[f64], n: usize) -> f64 {
        let mut worst = 0.0f64;
        for i in 0..n {
            for j in 0..n {
                let mut s = 0.0;
                for r in 0..n {
                    s += g[i * n + r] * p[r * n + j];
                }
                let e = (s - if i == j { 1.0 } else { 0.0 }).abs();
                worst = worst.max(e);
            }
        }
        worst
    }

    #[test]
    fn spd_inverse_times_matrix_is_identity() {
        let mut rng = SplitMix64(7);
        // 60: one block; 150: three blocks with a ragged last one; 1 and 2: degenerate.
        for n in [1, 2, 60, 150] {
            let g = random_spd(&mut rng, n);
            // Only the lower triangle may be read: poison the upper one.
            let mut lower = g.clone();
            for i in 0..n {
                for j in i + 1..n {
                    lower[i * n + j] = f64::NAN;
                }
            }
            let p = spd_inverse(lower, n).expect("SPD matrix must invert");
            let err = max_identity_error(&g, &p, n);
            assert!(err < 1e-6, "n = {n}: max |G·P − I| = {err}");
            for i in 0..n {
                for j in 0..n {
                    assert_eq!(p[i * n + j], p[j * n + i], "inverse not symmetric");
                }
            }
        }
    }

    #[test]
    fn spd_inverse_rejects_indefinite_and_accepts_empty() {
        // [[1, 2], [2, 1]] has eigenvalues 3 and -1.
        assert!(spd_inverse(vec![1.0, 2.0, 2.0, 1.0], 2).is_none());
        assert_eq!(spd_inverse(Vec::new(), 0), Some(Vec::new()));
    }

    #[test]
    fn dot_tile_matches_naive_products() {
        let mut rng = SplitMix64(3);
        let (m, nb, len) = (7, 11, 600);
        let a = random_matrix(&mut rng, m, len);
        let b = random_matrix(&mut rng, nb, len);
        let a_rows: Vec<&[f64]> = a.chunks(len).collect();
        let b_rows: Vec<&[f64]> = b.chunks(len).collect();
        let mut out = vec![1.0; m * nb];
        dot_tile(&a_rows, &b_rows, &mut out);
        for r in 0..m {
            for s in 0..nb {
                let want = 1.0 + dot(a_rows[r], b_rows[s]);
                assert!((out[r * nb + s] - want).abs() < 1e-9);
            }
        }
    }

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

    /// Two disjoint communities: group A likes items 0..5, group B items 5..10; 40 users
    /// each, every user 3-4 random items of their group.
    fn communities(seed: u64) -> Vec<Vec<u32>> {
        let mut rng = SplitMix64(seed);
        let mut users = Vec::new();
        for group in 0..2u32 {
            for _ in 0..40 {
                let want = 3 + (rng.next_u64() % 2) as usize;
                let mut items: Vec<u32> = (0..5).map(|i| group * 5 + i).collect();
                // Fisher-Yates, then keep the first `want`.
                for i in (1..items.len()).rev() {
                    let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                    items.swap(i, j);
                }
                items.truncate(want);
                users.push(items);
            }
        }
        users
    }

    #[test]
    fn als_separates_communities_and_is_deterministic() {
        let users = communities(11);
        // The true rank (2), and more factors than the 10 items need with a stronger ridge
        // (with 64 factors and λ = 0.05 the model just memorises a data set this small).
        for params in [
            AlsParams {
                factors: 2,
                ..AlsParams::default()
            },
            AlsParams {
                factors: 16,
                regularization: 1.0,
                ..AlsParams::default()
            },
        ] {
            let model = ImplicitAls::fit(10, &users, &params);
            assert_eq!(model.n_items(), 10);
            assert_eq!(model.factors(), params.factors);
            let scores = model.scores(&[0, 1]);
            let worst_a = scores[2..5].iter().copied().fold(f32::INFINITY, f32::min);
            let best_b = scores[5..10]
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
            assert!(
                worst_a > best_b,
                "k = {}: group A {:?} vs group B {:?}",
                params.factors,
                &scores[2..5],
                &scores[5..10]
            );
            let again = ImplicitAls::fit(10, &users, &params);
            assert_eq!(again.scores(&[0, 1]), scores, "same seed, same scores");
            assert_eq!(again.item_factors, model.item_factors);
            let other_seed = ImplicitAls::fit(
                10,
                &users,
                &AlsParams {
                    seed: params.seed + 1,
                    ..params
                },
            );
            assert_ne!(other_seed.item_factors, model.item_factors);
        }
    }

    /// The weighted loss of one user with factor `x`:
    /// `Σ_i c_ui (p_ui − x·y_i)² + λ|x|²`.
    fn user_loss(model: &ImplicitAls, history: &[u32], x: &[f64]) -> f64 {
        let k = model.factors;
        let mut loss = model.lambda * x.iter().map(|v| v * v).sum::<f64>();
        for (i, y) in model.item_factors.chunks_exact(k).enumerate() {
            let s: f64 = y.iter().zip(x).map(|(a, b)| f64::from(*a) * b).sum();
            let liked = history.contains(&(i as u32));
            let (c, p) = if liked {
                (1.0 + model.alpha, 1.0)
            } else {
                (1.0, 0.0)
            };
            loss += c * (p - s) * (p - s);
        }
        loss
    }

    /// The full ALS objective with every user folded in.
    fn total_loss(model: &ImplicitAls, users: &[Vec<u32>]) -> f64 {
        let item_reg: f64 = model
            .item_factors
            .iter()
            .map(|v| f64::from(*v) * f64::from(*v))
            .sum();
        let users_loss: f64 = users
            .iter()
            .map(|h| {
                let x: Vec<f64> = model.fold_in(h).iter().map(|v| f64::from(*v)).collect();
                user_loss(model, h, &x)
            })
            .sum();
        users_loss + model.lambda * item_reg
    }

    #[test]
    fn als_fold_in_is_the_least_squares_optimum_and_training_descends() {
        let users = communities(3);
        let params = AlsParams {
            factors: 3,
            regularization: 0.5,
            alpha: 5.0,
            iterations: 4,
            seed: 9,
        };
        let model = ImplicitAls::fit(10, &users, &params);
        assert_eq!((model.alpha, model.lambda), (5.0, 0.5));
        let mut rng = SplitMix64(1);
        for h in &users[..6] {
            let x: Vec<f64> = model.fold_in(h).iter().map(|v| f64::from(*v)).collect();
            let best = user_loss(&model, h, &x);
            for _ in 0..8 {
                let moved: Vec<f64> = x
                    .iter()
                    .map(|v| v + 0.01 * (f64::from(rng.next_f32()) - 0.5))
                    .collect();
                assert!(
                    user_loss(&model, h, &moved) > best,
                    "fold-in is not optimal"
                );
            }
        }
        // Each sweep can only lower the objective (exact alternating minimisation).
        let losses: Vec<f64> = (0..=6)
            .map(|iterations| {
                let m = ImplicitAls::fit(
                    10,
                    &users,
                    &AlsParams {
                        iterations,
                        ..params
                    },
                );
                total_loss(&m, &users)
            })
            .collect();
        for w in losses.windows(2) {
            assert!(w[1] <= w[0] * (1.0 + 1e-5), "loss went up: {losses:?}");
        }
        assert!(
            losses[6] < losses[0] * 0.9,
            "training did not help: {losses:?}"
        );
    }

    #[test]
    fn als_empty_inputs_give_finite_scores() {
        let users = communities(5);
        let model = ImplicitAls::fit(10, &users, &AlsParams::default());
        assert_eq!(model.scores(&[]), vec![0.0; 10]);
        assert_eq!(model.scores(&[10, 11]), vec![0.0; 10]);
        let empty = ImplicitAls::fit(6, &[], &AlsParams::default());
        assert!(empty.scores(&[1]).iter().all(|s| s.is_finite()));
        let mut with_empty_user = users.clone();
        with_empty_user.push(Vec::new());
        let m = ImplicitAls::fit(12, &with_empty_user, &AlsParams::default());
        // Items 10 and 11 were never seen.
        let s = m.scores(&[0, 10]);
        assert!(s.iter().all(|v| v.is_finite()));
        assert_eq!(&s[10..], &[0.0, 0.0]);
        let none = ImplicitAls::fit(
            3,
            &[vec![0]],
            &AlsParams {
                factors: 0,
                ..AlsParams::default()
            },
        );
        assert_eq!(none.scores(&[0]), vec![0.0; 3]);
    }

    #[test]
    fn top_k_excludes_breaks_ties_and_handles_short_lists() {
        let scores = [0.5, 0.9, 0.9, 0.1, 0.9, f32::NAN, 0.7];
        let none = HashSet::new();
        assert_eq!(top_k(&scores, &none, 3), vec![1, 2, 4]);
        assert_eq!(top_k(&scores, &none, 4), vec![1, 2, 4, 6]);
        let exclude: HashSet<u32> = [2, 6].into_iter().collect();
        assert_eq!(top_k(&scores, &exclude, 3), vec![1, 4, 0]);
        // k beyond what is left: everything not excluded, NaN last.
        assert_eq!(top_k(&scores, &exclude, 50), vec![1, 4, 0, 3, 5]);
        assert!(top_k(&scores, &none, 0).is_empty());
        assert!(top_k(&[], &none, 3).is_empty());
        // Equal scores throughout: index order.
        assert_eq!(top_k(&[1.0; 6], &none, 4), vec![0, 1, 2, 3]);
        assert_eq!(top_k(&[0.0, -0.0, 0.0], &none, 2), vec![0, 1]);
    }
}
