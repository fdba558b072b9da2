//! Dense numeric kernels for EASE: a blocked, rayon-parallel Cholesky factorisation and the
//! inverse of a symmetric positive-definite matrix built on it, with no linear-algebra
//! dependency.

use rayon::prelude::*;

/// Rows per block of the blocked factorisation / inversion (one rayon task per block).
pub(crate) const NB: usize = 64;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baselines::SplitMix64;

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
}
