//! The ranking policy that learns online: a linear contextual bandit over the ranker's
//! feature vector, deciding which of the top candidates leads the list.
//!
//! Model: per segment (global, or per device / time of day), ridge regression of the reward
//! on the features, `θ = A⁻¹ b` with `A = λI + Σ x xᵀ`, `b = λ θ₀ + Σ r x`. The prior `θ₀` is
//! the static ranker's weights, so before any feedback the policy ranks like the static
//! ranker. Decisions are ε-greedy among the top `k` candidates (ε is bounded by
//! configuration), which gives every decision a known propensity: that is what makes
//! inverse-propensity (IPS) evaluation of another policy on the logged decisions possible.
//!
//! Layout: this file holds the bandit itself ([`Policy`], its per-segment model and the
//! ε-greedy decision); `persist` saves and restores its state, `shared` adds up what the
//! routers of a cluster learn, `impressions` remembers what was shown so rewards can be
//! attributed, and `off_policy` estimates other policies' rewards from the logged decisions.

mod impressions;
mod off_policy;
mod persist;
mod shared;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

pub use impressions::{
    Attribution, Impression, ImpressionLog, LeadDecision, MAX_REWARDS_PER_IMPRESSION,
};
pub use off_policy::{ips, ips_stochastic, observed_reward, IpsEstimate, LoggedDecision};
pub use shared::SegmentStats;

/// semantic, graph, popularity, freshness, quality, collaborative, transition, the ranking
/// pipeline's score, bias, has-intent, cold-start.
pub const FEATURES: usize = 11;
pub type Features = [f32; FEATURES];
pub const FEATURE_NAMES: [&str; FEATURES] = [
    "semantic",
    "graph",
    "popularity",
    "freshness",
    "quality",
    "collaborative",
    "transition",
    "score",
    "bias",
    "has_intent",
    "cold_start",
];

/// Ridge-regression state of one segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentModel {
    a: Vec<f64>,
    b: Vec<f64>,
    theta: Vec<f64>,
    pub updates: u64,
}

impl SegmentModel {
    fn new(prior: &Features, strength: f64) -> Self {
        let mut a = vec![0.0; FEATURES * FEATURES];
        for i in 0..FEATURES {
            a[i * FEATURES + i] = strength;
        }
        let b: Vec<f64> = prior.iter().map(|&w| strength * f64::from(w)).collect();
        let theta = prior.iter().map(|&w| f64::from(w)).collect();
        Self {
            a,
            b,
            theta,
            updates: 0,
        }
    }

    fn score(&self, x: &Features) -> f64 {
        self.theta
            .iter()
            .zip(x)
            .map(|(t, &v)| t * f64::from(v))
            .sum()
    }

    fn update(&mut self, x: &Features, reward: f32) {
        for i in 0..FEATURES {
            for j in 0..FEATURES {
                self.a[i * FEATURES + j] += f64::from(x[i]) * f64::from(x[j]);
            }
            self.b[i] += f64::from(reward) * f64::from(x[i]);
        }
        self.solve();
        self.updates += 1;
    }

    /// Refreshes `θ` from `A` and `b` (kept as it was if `A` is not positive definite).
    fn solve(&mut self) {
        if let Some(theta) = solve_spd(&self.a, &self.b) {
            self.theta = theta;
        }
    }
}

/// Solves `A θ = b` for a symmetric positive-definite `A` (Cholesky).
fn solve_spd(a: &[f64], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = a[i * n + i] - sum;
                if d <= 0.0 {
                    return None;
                }
                l[i * n + i] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - sum) / l[j * n + j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        y[i] = (b[i] - (0..i).map(|k| l[i * n + k] * y[k]).sum::<f64>()) / l[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        x[i] = (y[i] - (i + 1..n).map(|k| l[k * n + i] * x[k]).sum::<f64>()) / l[i * n + i];
    }
    Some(x)
}

/// How the policy is run.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySettings {
    /// Probability of exploring (bounded by configuration validation).
    pub epsilon: f32,
    /// Candidates considered for the lead position.
    pub top_k: usize,
    /// Weight of the prior (the static ranker's weights), in pseudo-observations.
    pub prior_strength: f64,
    /// When frozen, rewards are still logged but the model no longer changes.
    pub frozen: bool,
}

/// One decision: which candidate leads, with what probability, and whether it explored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub chosen: usize,
    pub propensity: f32,
    pub explored: bool,
}

pub struct Policy {
    settings: PolicySettings,
    prior: Features,
    segments: RwLock<HashMap<String, SegmentModel>>,
    /// What this process observed itself, per segment: its share of a cluster's learning
    /// (locked after `segments` when both are held).
    own: std::sync::Mutex<HashMap<String, SegmentStats>>,
    rng: AtomicU64,
    /// One save at a time: concurrent saves share the temporary file.
    saving: std::sync::Mutex<()>,
}

/// splitmix64 step: a fast, seedable source for exploration draws.
fn next_random(state: &AtomicU64) -> u64 {
    let mut z = state
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(draw: u64) -> f32 {
    (draw >> 40) as f32 / (1u64 << 24) as f32
}

impl Policy {
    pub fn new(settings: PolicySettings, prior: Features, seed: u64) -> Self {
        Self {
            settings,
            prior,
            segments: RwLock::new(HashMap::new()),
            own: Default::default(),
            rng: AtomicU64::new(seed),
            saving: std::sync::Mutex::new(()),
        }
    }

    pub fn settings(&self) -> &PolicySettings {
        &self.settings
    }

    /// The candidate the current model ranks first among `candidates`.
    pub fn greedy(&self, segment: &str, candidates: &[Features]) -> usize {
        let segments = self.segments.read().expect("policy lock");
        let fresh;
        let model = match segments.get(segment) {
            Some(m) => m,
            None => {
                fresh = SegmentModel::new(&self.prior, self.settings.prior_strength);
                &fresh
            }
        };
        argmax(candidates.iter().map(|x| model.score(x)))
    }

    /// Picks the lead among the first `top_k` candidates: the greedy choice with
    /// probability `1 - ε`, otherwise one of them uniformly.
    pub fn decide(&self, segment: &str, candidates: &[Features]) -> Decision {
        let k = candidates.len().min(self.settings.top_k.max(1));
        if k == 0 {
            return Decision {
                chosen: 0,
                propensity: 1.0,
                explored: false,
            };
        }
        let greedy = self.greedy(segment, &candidates[..k]);
        let eps = self.settings.epsilon.clamp(0.0, 1.0);
        let explored = eps > 0.0 && unit(next_random(&self.rng)) < eps;
        let chosen = if explored {
            (next_random(&self.rng) % k as u64) as usize
        } else {
            greedy
        };
        Decision {
            chosen,
            propensity: propensity(chosen, greedy, eps, k),
            explored,
        }
    }

    /// Learns from one reward for an item shown with features `x` (no-op when frozen).
    pub fn update(&self, segment: &str, x: &Features, reward: f32) {
        if self.settings.frozen || !reward.is_finite() {
            return;
        }
        let mut segments = self.segments.write().expect("policy lock");
        segments
            .entry(segment.to_string())
            .or_insert_with(|| SegmentModel::new(&self.prior, self.settings.prior_strength))
            .update(x, reward);
        self.own
            .lock()
            .expect("policy lock")
            .entry(segment.to_string())
            .or_default()
            .observe(x, reward);
    }

    /// Learned weights of a segment (the prior for a segment never updated).
    pub fn weights(&self, segment: &str) -> Features {
        let segments = self.segments.read().expect("policy lock");
        match segments.get(segment) {
            Some(m) => std::array::from_fn(|i| m.theta[i] as f32),
            None => self.prior,
        }
    }

    /// Segments that have learned something.
    pub fn segments(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .segments
            .read()
            .expect("policy lock")
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    pub fn total_updates(&self) -> u64 {
        let segments = self.segments.read().expect("policy lock");
        segments.values().map(|m| m.updates).sum()
    }
}

fn argmax(scores: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, s) in scores.enumerate() {
        if s > best.1 {
            best = (i, s);
        }
    }
    best.0
}

/// Probability that ε-greedy over `k` candidates picks `chosen` when `greedy` is the best.
pub fn propensity(chosen: usize, greedy: usize, epsilon: f32, k: usize) -> f32 {
    let uniform = epsilon / k as f32;
    if chosen == greedy {
        1.0 - epsilon + uniform
    } else {
        uniform
    }
}

/// A linear policy's greedy choice: the best `weights · x` among the first `top_k`.
pub fn linear_choice(weights: &Features, candidates: &[Features], top_k: usize) -> usize {
    argmax(candidates.iter().take(top_k.max(1)).map(|x| {
        weights
            .iter()
            .zip(x)
            .map(|(w, v)| f64::from(*w) * f64::from(*v))
            .sum()
    }))
}
