//! The learned ranker: gradient-boosted regression trees (Friedman 2001) fitted to a
//! listwise softmax loss — the item each user chose next against the other candidates the
//! serving path offered them — which optimises the top of the list, as HR and NDCG measure
//! it. Trees capture what a weighted sum cannot: a transition signal that matters only when
//! present, popularity that helps cold histories and hurts rich ones. Splits are searched
//! on quantile bins (as LightGBM and XGBoost's `hist` do); leaves take Newton steps.

pub use crate::config::RankerParams;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Signals the ranker sees for one candidate (see [`FEATURE_NAMES`]).
pub const FEATURES: usize = 11;
pub type RankFeatures = [f32; FEATURES];
pub const FEATURE_NAMES: [&str; FEATURES] = [
    "collaborative",
    "collaborative_rank",
    "transition",
    "transition_rank",
    "popularity",
    "trend",
    "semantic",
    "content",
    "freshness",
    "quality",
    "history",
];

/// One user's candidates and which of them they chose next.
pub struct RankGroup {
    pub candidates: Vec<RankFeatures>,
    pub chosen: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Node {
    /// `x[feature] <= threshold` goes to `left`.
    Split {
        feature: u8,
        threshold: f32,
        left: u32,
        right: u32,
    },
    Leaf(f32),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn value(&self, x: &RankFeatures) -> f32 {
        let mut at = 0usize;
        loop {
            match &self.nodes[at] {
                Node::Leaf(v) => return *v,
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    at = if x[*feature as usize] <= *threshold {
                        *left as usize
                    } else {
                        *right as usize
                    }
                }
            }
        }
    }
}

/// The fitted ensemble: `score(x) = Σ tree(x)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranker {
    trees: Vec<Tree>,
    /// Total split gain per feature: what the ranker relies on.
    pub importance: RankFeatures,
}

/// Rows of every group, binned per feature.
struct Binned {
    /// Bin thresholds per feature (`x <= cuts[f][b]` is bin `b` or lower).
    cuts: Vec<Vec<f32>>,
    /// `bins[row * FEATURES + f]`.
    bins: Vec<u8>,
}

fn bin_rows(rows: &[RankFeatures], max_bins: usize) -> Binned {
    let max_bins = max_bins.clamp(2, 255);
    let cuts: Vec<Vec<f32>> = (0..FEATURES)
        .map(|f| {
            let mut values: Vec<f32> = rows
                .iter()
                .map(|x| x[f])
                .filter(|v| v.is_finite())
                .collect();
            values.sort_unstable_by(f32::total_cmp);
            values.dedup();
            if values.len() <= max_bins {
                // One bin per distinct value; the last needs no cut.
                values.pop();
                return values;
            }
            let mut cuts: Vec<f32> = (1..max_bins)
                .map(|b| values[b * values.len() / max_bins])
                .collect();
            cuts.dedup();
            cuts
        })
        .collect();
    let bins = rows
        .iter()
        .flat_map(|x| {
            (0..FEATURES)
                .map(|f| cuts[f].partition_point(|c| *c < x[f]) as u8)
                .collect::<Vec<_>>()
        })
        .collect();
    Binned { cuts, bins }
}

impl Ranker {
    pub fn score(&self, x: &RankFeatures) -> f32 {
        self.trees.iter().map(|t| t.value(x)).sum()
    }

    /// Whether every split names a known feature and points forward to an existing node
    /// (so scoring a ranker read from disk always terminates, without panicking).
    pub fn is_valid(&self) -> bool {
        self.trees.iter().all(|t| {
            !t.nodes.is_empty()
                && t.nodes.iter().enumerate().all(|(at, n)| match n {
                    Node::Leaf(v) => v.is_finite(),
                    Node::Split {
                        feature,
                        left,
                        right,
                        ..
                    } => {
                        (*feature as usize) < FEATURES
                            && [*left, *right]
                                .iter()
                                .all(|&c| c as usize > at && (c as usize) < t.nodes.len())
                    }
                })
        })
    }

    /// A ranker that scores everything 0 (the reference for the loss).
    pub fn neutral() -> Self {
        Self {
            trees: Vec::new(),
            importance: [0.0; FEATURES],
        }
    }

    /// Grows the ensemble. Deterministic for the same groups.
    pub fn train(groups: &[RankGroup], p: &RankerParams) -> Self {
        let groups: Vec<&RankGroup> = groups
            .iter()
            .filter(|g| g.candidates.len() > 1 && g.chosen < g.candidates.len())
            .collect();
        let mut offsets = vec![0usize];
        let mut rows: Vec<RankFeatures> = Vec::new();
        let mut chosen: Vec<usize> = Vec::new();
        for g in &groups {
            rows.extend_from_slice(&g.candidates);
            chosen.push(offsets.last().copied().unwrap_or(0) + g.chosen);
            offsets.push(rows.len());
        }
        let mut out = Self::neutral();
        if rows.is_empty() {
            return out;
        }
        let binned = bin_rows(&rows, p.bins);
        let mut scores = vec![0f32; rows.len()];
        let mut grad = vec![0f32; rows.len()];
        let mut hess = vec![0f32; rows.len()];
        for _ in 0..p.trees {
            // Softmax over each group: g = p − y, h = p (1 − p).
            for (gi, w) in offsets.windows(2).enumerate() {
                let s = &scores[w[0]..w[1]];
                let max = s.iter().copied().fold(f32::MIN, f32::max);
                let z: f32 = s.iter().map(|v| (v - max).exp()).sum();
                for r in w[0]..w[1] {
                    let prob = (scores[r] - max).exp() / z;
                    grad[r] = prob - f32::from(u8::from(r == chosen[gi]));
                    hess[r] = (prob * (1.0 - prob)).max(1e-6);
                }
            }
            let tree = grow(&binned, &grad, &hess, p, &mut out.importance);
            for (r, x) in rows.iter().enumerate() {
                scores[r] += tree.value(x);
            }
            out.trees.push(tree);
        }
        out
    }

    /// Mean listwise loss of `groups` under this ranker (lower is better).
    pub fn loss(&self, groups: &[RankGroup]) -> f64 {
        let mut total = 0.0;
        let mut n = 0usize;
        for g in groups.iter().filter(|g| g.chosen < g.candidates.len()) {
            let s: Vec<f64> = g
                .candidates
                .iter()
                .map(|x| f64::from(self.score(x)))
                .collect();
            let max = s.iter().copied().fold(f64::MIN, f64::max);
            let z: f64 = s.iter().map(|v| (v - max).exp()).sum();
            total += -(s[g.chosen] - max - z.ln());
            n += 1;
        }
        total / n.max(1) as f64
    }
}

/// Grows one tree depth-first on histogram splits.
fn grow(
    b: &Binned,
    grad: &[f32],
    hess: &[f32],
    p: &RankerParams,
    importance: &mut RankFeatures,
) -> Tree {
    let mut nodes = Vec::new();
    let rows: Vec<u32> = (0..grad.len() as u32).collect();
    split_node(b, grad, hess, p, rows, 0, &mut nodes, importance);
    Tree { nodes }
}

#[allow(clippy::too_many_arguments)]
fn split_node(
    b: &Binned,
    grad: &[f32],
    hess: &[f32],
    p: &RankerParams,
    rows: Vec<u32>,
    depth: usize,
    nodes: &mut Vec<Node>,
    importance: &mut RankFeatures,
) -> u32 {
    let at = nodes.len() as u32;
    let (g, h) = rows.iter().fold((0f64, 0f64), |(g, h), &r| {
        (
            g + f64::from(grad[r as usize]),
            h + f64::from(hess[r as usize]),
        )
    });
    let lambda = f64::from(p.l2);
    let leaf = Node::Leaf((-g / (h + lambda) * f64::from(p.learning_rate)) as f32);
    nodes.push(leaf);
    if depth >= p.depth || h < 2.0 * f64::from(p.min_leaf_hessian) {
        return at;
    }
    let parent = g * g / (h + lambda);
    // Best split per feature, from the node's gradient histograms.
    let best = (0..FEATURES)
        .into_par_iter()
        .filter_map(|f| {
            let n_bins = b.cuts[f].len() + 1;
            if n_bins < 2 {
                return None;
            }
            let mut hg = vec![0f64; n_bins];
            let mut hh = vec![0f64; n_bins];
            for &r in &rows {
                let bin = b.bins[r as usize * FEATURES + f] as usize;
                hg[bin] += f64::from(grad[r as usize]);
                hh[bin] += f64::from(hess[r as usize]);
            }
            let (mut gl, mut hl) = (0f64, 0f64);
            let mut best: Option<(f64, usize)> = None;
            for bin in 0..n_bins - 1 {
                gl += hg[bin];
                hl += hh[bin];
                let (gr, hr) = (g - gl, h - hl);
                if hl < f64::from(p.min_leaf_hessian) || hr < f64::from(p.min_leaf_hessian) {
                    continue;
                }
                let gain = gl * gl / (hl + lambda) + gr * gr / (hr + lambda) - parent;
                if best.is_none_or(|(bg, _)| gain > bg) {
                    best = Some((gain, bin));
                }
            }
            best.map(|(gain, bin)| (gain, f, bin))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let Some((gain, feature, bin)) = best.filter(|(gain, _, _)| *gain > 1e-9) else {
        return at;
    };
    importance[feature] += gain as f32;
    let (left_rows, right_rows): (Vec<u32>, Vec<u32>) = rows
        .into_iter()
        .partition(|&r| (b.bins[r as usize * FEATURES + feature] as usize) <= bin);
    let left = split_node(b, grad, hess, p, left_rows, depth + 1, nodes, importance);
    let right = split_node(b, grad, hess, p, right_rows, depth + 1, nodes, importance);
    nodes[at as usize] = Node::Split {
        feature: feature as u8,
        threshold: b.cuts[feature][bin],
        left,
        right,
    };
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Groups where the chosen item is the one with the highest feature 2 when feature 5 is
    /// set, else the one with the highest feature 0 (an interaction no weighted sum can
    /// express); feature 4 is noise.
    fn groups(seed: u64) -> Vec<RankGroup> {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32) / (1u64 << 31) as f32
        };
        (0..300)
            .map(|g| {
                let mode = g % 2 == 0;
                let candidates: Vec<RankFeatures> = (0..20)
                    .map(|_| {
                        let mut x = [0f32; FEATURES];
                        x[0] = next();
                        x[2] = next();
                        x[4] = next();
                        x[5] = f32::from(u8::from(mode));
                        x
                    })
                    .collect();
                let key = if mode { 2 } else { 0 };
                let chosen = (0..20)
                    .max_by(|&a, &b| candidates[a][key].total_cmp(&candidates[b][key]))
                    .unwrap();
                RankGroup { candidates, chosen }
            })
            .collect()
    }

    #[test]
    fn learns_an_interaction_between_signals() {
        let train = groups(1);
        let ranker = Ranker::train(&train, &RankerParams::default());
        let test = groups(2);
        assert!(ranker.loss(&test) < 0.6 * Ranker::neutral().loss(&test));
        let hits = test
            .iter()
            .filter(|g| {
                let best = (0..g.candidates.len())
                    .max_by(|&a, &b| {
                        ranker
                            .score(&g.candidates[a])
                            .total_cmp(&ranker.score(&g.candidates[b]))
                    })
                    .unwrap();
                best == g.chosen
            })
            .count();
        assert!(hits > 150, "{hits}/300 top-1 hits");
        assert!(ranker.importance[2] > ranker.importance[4]);
        assert!(ranker.importance[0] > ranker.importance[4]);
        assert_eq!(ranker, Ranker::train(&train, &RankerParams::default()));
    }

    #[test]
    fn no_groups_gives_a_neutral_ranker() {
        let r = Ranker::train(&[], &RankerParams::default());
        assert_eq!(r.score(&[1.0; FEATURES]), 0.0);
    }
}
