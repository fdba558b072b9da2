//! The collaborative model: for each item, its "people who liked this also liked"
//! neighbours with weights, learned from every positive interaction. Two learners: sparse
//! EASE (the default: EASE's closed form restricted to each item's strongest co-occurring
//! items, see [`sparse_ease`]) and RP3β (Paudel et al. 2017, a three-step random walk user →
//! item → user → item with a popularity penalty).
//!
//! About `k` weights per item are kept (compressed sparse rows), so memory is `O(items · k)`
//! and training needs one dense accumulator of catalogue size per worker thread: a dense
//! item × item matrix (as full EASE or SLIM need) is never formed, which is what keeps it
//! usable at catalogue sizes where such a matrix cannot be stored (10M items × 100
//! neighbours ≈ 8 GB would be the model; the dense matrix 400 TB).

use std::collections::HashMap;

use rayon::prelude::*;

pub use crate::config::{CollabMethod, CollabParams};

/// Top-k item → item weights in compressed sparse rows, indexed by item ordinal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemNeighbours {
    offsets: Vec<u32>,
    items: Vec<u32>,
    weights: Vec<f32>,
}

impl ItemNeighbours {
    /// Learns neighbours over `n_items` ordinals from each user's positive items (oldest
    /// first; duplicates ignored).
    pub fn train(n_items: usize, users: &[Vec<u32>], p: &CollabParams) -> Self {
        // Deduplicated, capped histories and degrees.
        let users: Vec<Vec<u32>> = users
            .par_iter()
            .map(|h| {
                let start = h.len().saturating_sub(p.max_user_items.max(1));
                let mut h: Vec<u32> = h[start..]
                    .iter()
                    .copied()
                    .filter(|&i| (i as usize) < n_items)
                    .collect();
                h.sort_unstable();
                h.dedup();
                h
            })
            .filter(|h| !h.is_empty())
            .collect();
        let mut item_degree = vec![0u32; n_items];
        for h in &users {
            for &i in h {
                item_degree[i as usize] += 1;
            }
        }
        // item → users (CSR)
        let mut item_offsets = vec![0u32; n_items + 1];
        for (i, d) in item_degree.iter().enumerate() {
            item_offsets[i + 1] = item_offsets[i] + d;
        }
        let mut fill = item_offsets.clone();
        let mut item_users = vec![0u32; item_offsets[n_items] as usize];
        for (u, h) in users.iter().enumerate() {
            for &i in h {
                item_users[fill[i as usize] as usize] = u as u32;
                fill[i as usize] += 1;
            }
        }
        let k = p.neighbours;
        if k == 0 {
            // No neighbours asked for: an empty model (the ablation without this source).
            return Self::from_rows(vec![Vec::new(); n_items]);
        }
        if p.method == CollabMethod::SparseEase {
            return sparse_ease(n_items, &users, &item_offsets, &item_users, k, p.lambda);
        }
        let user_weight: Vec<f32> = users
            .iter()
            .map(|h| (h.len() as f32).powf(-p.alpha))
            .collect();
        let penalty: Vec<f32> = item_degree
            .iter()
            .map(|&d| (d.max(1) as f32).powf(-p.beta))
            .collect();
        let rows: Vec<Vec<(u32, f32)>> = (0..n_items)
            .into_par_iter()
            .map_init(
                || (vec![0f32; n_items], Vec::<u32>::new()),
                |(acc, touched), i| {
                    let d = item_degree[i];
                    if d == 0 {
                        return Vec::new();
                    }
                    let from = &item_users[item_offsets[i] as usize..item_offsets[i + 1] as usize];
                    for &u in from {
                        let w = user_weight[u as usize];
                        for &j in &users[u as usize] {
                            let slot = &mut acc[j as usize];
                            if *slot == 0.0 {
                                touched.push(j);
                            }
                            *slot += w;
                        }
                    }
                    let scale = (d as f32).powf(-p.alpha);
                    drain_row(touched, acc, i, k, |j, a| scale * a * penalty[j as usize])
                },
            )
            .collect();
        Self::from_rows(rows)
    }

    /// Compressed rows from per-item `(neighbour, weight)` lists sorted by neighbour.
    fn from_rows(rows: Vec<Vec<(u32, f32)>>) -> Self {
        let mut out = ItemNeighbours {
            offsets: Vec::with_capacity(rows.len() + 1),
            items: Vec::new(),
            weights: Vec::new(),
        };
        out.offsets.push(0);
        for row in rows {
            for (j, w) in row {
                out.items.push(j);
                out.weights.push(w);
            }
            out.offsets.push(out.items.len() as u32);
        }
        out
    }

    /// Items the model knows (ordinals `0..len`).
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Neighbours of `item`, sorted by ordinal, with their weights.
    pub fn neighbours(&self, item: u32) -> (&[u32], &[f32]) {
        let i = item as usize;
        if i >= self.len() {
            return (&[], &[]);
        }
        let (a, b) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        (&self.items[a..b], &self.weights[a..b])
    }

    /// Adds `weight · W[h][i]` for every history item `h` and neighbour `i` into `out`.
    pub fn score_into(&self, history: &[(u32, f32)], out: &mut HashMap<u32, f32>) {
        for &(h, weight) in history {
            let (items, weights) = self.neighbours(h);
            for (&i, &w) in items.iter().zip(weights) {
                *out.entry(i).or_default() += weight * w;
            }
        }
    }

    /// The history item contributing most to `item`'s score (for the reason).
    pub fn strongest_source(&self, history: &[(u32, f32)], item: u32) -> Option<u32> {
        history
            .iter()
            .filter_map(|&(h, weight)| {
                let (items, weights) = self.neighbours(h);
                let at = items.binary_search(&item).ok()?;
                Some((h, weight * weights[at]))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(h, _)| h)
    }

    /// The same model over other ordinals: `map[old] = new`, `n` items in the new space.
    pub fn remap(&self, map: &[u32], n: usize) -> Self {
        let mut rows: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
        for old in 0..self.len().min(map.len()) {
            let (items, weights) = self.neighbours(old as u32);
            let row = &mut rows[map[old] as usize];
            for (&i, &w) in items.iter().zip(weights) {
                if let Some(&j) = map.get(i as usize) {
                    row.push((j, w));
                }
            }
            row.sort_unstable_by_key(|&(j, _)| j);
        }
        Self::from_rows(rows)
    }

    /// Neighbour entries held (all rows).
    pub fn neighbours_total(&self) -> usize {
        self.items.len()
    }

    /// Heap bytes of the model.
    pub fn heap_bytes(&self) -> usize {
        (self.offsets.capacity() + self.items.capacity() + self.weights.capacity()) * 4
    }

    /// Appends the model to `out` (little-endian: item count, entry count, offsets, items,
    /// weights).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.items.len() as u64).to_le_bytes());
        for x in &self.offsets {
            out.extend_from_slice(&x.to_le_bytes());
        }
        for x in &self.items {
            out.extend_from_slice(&x.to_le_bytes());
        }
        for x in &self.weights {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }

    /// Reads what [`ItemNeighbours::write_to`] wrote; returns the model and the bytes used.
    pub fn read_from(bytes: &[u8]) -> Result<(Self, usize), String> {
        let u64_at = |at: usize| -> Result<u64, String> {
            bytes
                .get(at..at + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                .ok_or_else(|| "truncated collaborative model".to_string())
        };
        let n = u64_at(0)? as usize;
        let nnz = u64_at(8)? as usize;
        let words = |at: usize, count: usize| -> Result<Vec<u32>, String> {
            let end = count
                .checked_mul(4)
                .and_then(|b| b.checked_add(at))
                .ok_or("collaborative model too large")?;
            let slice = bytes
                .get(at..end)
                .ok_or_else(|| "truncated collaborative model".to_string())?;
            Ok(slice
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect())
        };
        let mut at = 16;
        let offsets = words(at, n + 1)?;
        at += (n + 1) * 4;
        let items = words(at, nnz)?;
        at += nnz * 4;
        let weights = words(at, nnz)?.into_iter().map(f32::from_bits).collect();
        at += nnz * 4;
        let valid = offsets.first() == Some(&0)
            && offsets.windows(2).all(|w| w[0] <= w[1])
            && offsets.last().map(|&o| o as usize) == Some(nnz)
            && items.iter().all(|&i| (i as usize) < n.max(1));
        if !valid {
            return Err("inconsistent collaborative model".into());
        }
        Ok((
            Self {
                offsets,
                items,
                weights,
            },
            at,
        ))
    }
}

/// Item `i`'s row from a sparse accumulator: each touched item (not `i`) with `weight(j,
/// acc[j])`, the `keep` strongest; the accumulator is left zeroed for the next item.
fn drain_row(
    touched: &mut Vec<u32>,
    acc: &mut [f32],
    i: usize,
    keep: usize,
    weight: impl Fn(u32, f32) -> f32,
) -> Vec<(u32, f32)> {
    let mut row: Vec<(u32, f32)> = touched
        .drain(..)
        .filter(|&j| j as usize != i)
        .map(|j| (j, weight(j, acc[j as usize])))
        .collect();
    for &(j, _) in &row {
        acc[j as usize] = 0.0;
    }
    acc[i] = 0.0;
    keep_strongest(&mut row, keep);
    row
}

/// Keeps the `k` heaviest entries of a row (ties: lower item first), sorted by item.
fn keep_strongest(row: &mut Vec<(u32, f32)>, k: usize) {
    if row.len() > k {
        row.select_nth_unstable_by(k.saturating_sub(1), |a, b| {
            b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
        });
        row.truncate(k);
    }
    row.sort_unstable_by_key(|&(j, _)| j);
}

/// Co-occurrence counts kept per item when fitting sparse EASE, as a multiple of the
/// neighbours: enough that the counts between an item's neighbours are almost always known.
const COOCCURRENCE_PER_NEIGHBOUR: usize = 4;

/// EASE (Steck 2019) with each item's regression restricted to its `k` strongest
/// co-occurring items `N(i)`, as SLIM's feature-selection variant does (Ning & Karypis
/// 2011): `b = (G[N,N] + λI)⁻¹ G[N,i]` with `G = XᵀX`, one `k × k` solve per item. The full
/// `G` is never formed: one pass counts each item's co-occurrences and keeps its strongest
/// `4k` (sorted, so `G[j][l]` is a binary search; a pair outside both lists counts as 0),
/// so memory and time grow linearly with the catalogue. `b[j]` is the weight from history
/// item `j` to `i`, so the rows are transposed into the source-indexed layout at the end.
fn sparse_ease(
    n_items: usize,
    users: &[Vec<u32>],
    item_offsets: &[u32],
    item_users: &[u32],
    k: usize,
    lambda: f32,
) -> ItemNeighbours {
    let users_of = |i: usize| &item_users[item_offsets[i] as usize..item_offsets[i + 1] as usize];
    let keep = k.saturating_mul(COOCCURRENCE_PER_NEIGHBOUR).max(k);
    // Each item's strongest co-occurrences, sorted by item.
    let cooccurrence: Vec<Vec<(u32, f32)>> = (0..n_items)
        .into_par_iter()
        .map_init(
            || (vec![0f32; n_items], Vec::<u32>::new()),
            |(acc, touched), i| {
                for &u in users_of(i) {
                    for &j in &users[u as usize] {
                        if acc[j as usize] == 0.0 {
                            touched.push(j);
                        }
                        acc[j as usize] += 1.0;
                    }
                }
                drain_row(touched, acc, i, keep, |_, a| a)
            },
        )
        .collect();
    let count = |j: u32, l: u32| -> f32 {
        let find = |a: u32, b: u32| {
            let row = &cooccurrence[a as usize];
            row.binary_search_by_key(&b, |&(x, _)| x)
                .ok()
                .map(|at| row[at].1)
        };
        find(j, l).or_else(|| find(l, j)).unwrap_or(0.0)
    };
    let columns: Vec<Vec<(u32, f32)>> = (0..n_items)
        .into_par_iter()
        .map(|i| {
            let mut near = cooccurrence[i].clone();
            keep_strongest(&mut near, k);
            let m = near.len();
            if m == 0 {
                return Vec::new();
            }
            // Lower triangle of G[N,N] + λI; the diagonal is each neighbour's user count.
            let mut gram = vec![0f64; m * m];
            for a in 0..m {
                let ja = near[a].0;
                for b in 0..a {
                    gram[a * m + b] = f64::from(count(ja, near[b].0));
                }
                gram[a * m + a] = users_of(ja as usize).len() as f64 + f64::from(lambda.max(1e-3));
            }
            let mut rhs: Vec<f64> = near.iter().map(|&(_, c)| f64::from(c)).collect();
            if !crate::learn::linalg::cholesky_solve(&mut gram, &mut rhs, m) {
                return Vec::new();
            }
            near.iter()
                .zip(rhs)
                .map(|(&(j, _), b)| (j, b as f32))
                .filter(|&(_, b)| b != 0.0 && b.is_finite())
                .collect()
        })
        .collect();
    // Transpose: column i holds (source j, weight); rows are indexed by source.
    let mut rows: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_items];
    for (i, column) in columns.into_iter().enumerate() {
        for (j, w) in column {
            rows[j as usize].push((i as u32, w));
        }
    }
    ItemNeighbours::from_rows(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Vec<Vec<u32>> {
        // Items 0-2 are liked together, 3-5 together; item 6 by everyone.
        let mut users = Vec::new();
        for u in 0..20u32 {
            let base = if u % 2 == 0 { 0 } else { 3 };
            users.push(vec![base + u % 3, base + (u + 1) % 3, 6]);
        }
        users
    }

    fn rp3() -> CollabParams {
        CollabParams {
            method: CollabMethod::Rp3Beta,
            ..CollabParams::default()
        }
    }

    #[test]
    fn sparse_ease_finds_the_group() {
        let model = ItemNeighbours::train(7, &toy(), &CollabParams::default());
        let mut scores = HashMap::new();
        model.score_into(&[(3, 1.0)], &mut scores);
        let best = scores
            .iter()
            .filter(|(i, _)| **i != 6)
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap();
        assert!([4, 5].contains(best.0), "{scores:?}");
    }

    #[test]
    fn neighbours_come_from_co_occurrence() {
        let model = ItemNeighbours::train(7, &toy(), &rp3());
        let (items, _) = model.neighbours(0);
        assert!(items.contains(&1) && items.contains(&2));
        assert!(!items.iter().any(|i| (3..6).contains(i)));
        assert!(!items.contains(&0), "no self-loop");
        let mut scores = HashMap::new();
        model.score_into(&[(3, 1.0)], &mut scores);
        // Besides the hub everyone likes, item 3's group comes first.
        let best = scores
            .iter()
            .filter(|(i, _)| **i != 6)
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap();
        assert!([4, 5].contains(best.0), "{scores:?}");
        assert!(!scores.contains_key(&0), "{scores:?}");
        assert_eq!(model.strongest_source(&[(0, 1.0), (3, 1.0)], 4), Some(3));
    }

    #[test]
    fn popularity_penalty_lowers_the_hub() {
        let plain = CollabParams { beta: 0.0, ..rp3() };
        let penalised = CollabParams { beta: 1.0, ..rp3() };
        let weight = |p: &CollabParams, to: u32| {
            let m = ItemNeighbours::train(7, &toy(), p);
            let (items, weights) = m.neighbours(0);
            weights[items.binary_search(&to).unwrap()]
        };
        assert!(weight(&plain, 6) > weight(&plain, 1));
        assert!(weight(&penalised, 6) < weight(&penalised, 1));
    }

    #[test]
    fn keeps_at_most_k_and_round_trips() {
        let p = CollabParams {
            neighbours: 2,
            ..rp3()
        };
        let model = ItemNeighbours::train(8, &toy(), &p);
        assert!((0..8).all(|i| model.neighbours(i).0.len() <= 2));
        assert!(model.neighbours(7).0.is_empty());
        let mut bytes = Vec::new();
        model.write_to(&mut bytes);
        let (back, used) = ItemNeighbours::read_from(&bytes).unwrap();
        assert_eq!((back, used), (model, bytes.len()));
        assert!(ItemNeighbours::read_from(&bytes[..bytes.len() - 1]).is_err());
    }
}
