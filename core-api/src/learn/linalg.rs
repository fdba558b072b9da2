//! Small dense linear algebra shared by the models: a Cholesky solve of the `k × k`
//! systems of ridge regressions (the sparse EASE neighbourhoods, ALS rows).

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Solves the `k × k` SPD system `a · x = b` in place (`b` becomes `x`; only the lower
/// triangle of `a` is read, and `a` is overwritten by its Cholesky factor). `false` when
/// `a` is not positive definite.
pub fn cholesky_solve(a: &mut [f64], b: &mut [f64], k: usize) -> bool {
    for c in 0..k {
        let (done, rest) = a.split_at_mut(c * k);
        let row_c = &mut rest[..k];
        for r in 0..c {
            let row_r = &done[r * k..r * k + k];
            let s = dot(&row_c[..r], &row_r[..r]);
            row_c[r] = (row_c[r] - s) / row_r[r];
        }
        let d = row_c[c] - dot(&row_c[..c], &row_c[..c]);
        if !(d > 0.0 && d.is_finite()) {
            return false;
        }
        row_c[c] = d.sqrt();
    }
    // L·y = b
    for i in 0..k {
        let s = dot(&a[i * k..i * k + i], &b[..i]);
        b[i] = (b[i] - s) / a[i * k + i];
    }
    // Lᵀ·x = y
    for i in (0..k).rev() {
        let mut s = 0.0;
        for j in i + 1..k {
            s += a[j * k + i] * b[j];
        }
        b[i] = (b[i] - s) / a[i * k + i];
    }
    true
}
