//! The baselines the engine is judged against, one file per family, each with the grid of
//! settings tuned on validation ([`crate::tuned`]): [`popularity`] (and the seeded random
//! floor), [`knn`] (item-kNN and RP3β), [`ease`] (EASE and sparse EASE), [`als`] (implicit
//! ALS), [`transitions`] (next-item transitions) and [`blend`] (ALS + transitions).
//!
//! Beating only weak baselines says little, so EASE and ALS are here too. The model code
//! works on dense item indices (`u32` in `0..n_items`); a user's history is a slice of
//! distinct item indices of positive interactions. There is no linear-algebra dependency:
//! EASE needs the inverse of a dense symmetric positive-definite matrix, which
//! `dense` computes with a blocked, rayon-parallel Cholesky factorisation; ALS needs only
//! small `k × k` solves.
//!
//! All results are deterministic: parallel work is split so that every number is computed
//! by one sequential loop in a fixed order, and random draws come from a seeded
//! [`SplitMix64`] generator.

pub mod als;
pub mod blend;
mod dense;
pub mod ease;
pub mod knn;
pub mod popularity;
pub mod transitions;

use std::collections::HashSet;

pub use als::{AlsParams, ImplicitAls};
pub use ease::Ease;
pub use knn::ItemKnn;
pub use popularity::{random_list, Popularity};

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny, good-enough seeded generator, identical
/// everywhere, so the crate needs no `rand`.
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Sorted, de-duplicated item indices below `n` (out-of-range ones are ignored).
pub(crate) fn clean_history(history: &[u32], n: usize) -> Vec<u32> {
    let mut h: Vec<u32> = history
        .iter()
        .copied()
        .filter(|&i| (i as usize) < n)
        .collect();
    h.sort_unstable();
    h.dedup();
    h
}

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
