//! `[learning]`: the learned sources (collaborative neighbours, next-item transitions,
//! trend) and the learned ranker, with the parameters of each model. Plain data, so every
//! part of the service can read it without depending on the models.

use serde::{Deserialize, Serialize};
use shared_types::Action;

/// `[learning]`: the learned sources and the ranker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearningConfig {
    /// Serve with the collaborative and transition sources and the learned ranker (else the
    /// static weighted sum over the semantic, graph and prior signals).
    pub enabled: bool,
    /// An action counts as a positive interaction (collaborative model, transitions, trend)
    /// when its preference weight is at least this (0.5: complete and like).
    pub positive_min_weight: f32,
    /// Actions that make an item "seen" (never recommended again to that user). Leave
    /// `complete` out to allow re-watching finished items.
    pub seen_actions: Vec<Action>,
    pub collab: CollabParams,
    pub transitions: TransitionParams,
    pub ranker: RankerParams,
    /// Half-life of the trend (time-decayed popularity), in days.
    pub trend_half_life_days: f32,
    /// Candidates taken from each learned source (collaborative, transitions, trend).
    pub candidates_per_source: usize,
    /// Users whose latest positive interaction becomes a ranker training example (the most
    /// recent ones are used).
    pub ranker_users: usize,
    /// Latest positive interactions of each such user used as labels.
    pub ranker_labels_per_user: usize,
    /// Candidates per ranker training example (the chosen item and the best others).
    pub ranker_candidates: usize,
    /// Retrain on this period in the background (0 = only on demand).
    pub retrain_every_secs: u64,
    /// Positive interactions needed before a model is trained.
    pub min_positives: usize,
    /// Trained models kept on disk.
    pub keep_versions: usize,
}

impl Default for LearningConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            positive_min_weight: 0.5,
            seen_actions: vec![
                Action::View,
                Action::Complete,
                Action::Like,
                Action::Dislike,
                Action::Skip,
            ],
            collab: CollabParams::default(),
            transitions: TransitionParams::default(),
            ranker: RankerParams::default(),
            trend_half_life_days: 14.0,
            candidates_per_source: 50,
            ranker_users: 20_000,
            ranker_labels_per_user: 3,
            ranker_candidates: 100,
            retrain_every_secs: 3_600,
            min_positives: 50,
            keep_versions: 3,
        }
    }
}

impl LearningConfig {
    /// Rejects settings that would make training or serving meaningless or unbounded.
    pub fn validate(&self) -> Result<(), String> {
        let p = &self;
        if !(0.0..=1.0).contains(&p.positive_min_weight) {
            return Err("learning.positive_min_weight must be within [0, 1]".into());
        }
        if p.collab.neighbours > 2_000 || p.collab.lambda <= 0.0 || p.collab.max_user_items == 0 {
            return Err(
                "learning.collab: neighbours at most 2000, lambda > 0, max_user_items > 0".into(),
            );
        }
        if p.transitions.window > 50 || !(0.0..=1.0).contains(&p.transitions.decay) {
            return Err("learning.transitions: window at most 50, decay within [0, 1]".into());
        }
        let r = &p.ranker;
        if r.trees > 5_000
            || !(1..=12).contains(&r.depth)
            || !(2..=255).contains(&r.bins)
            || !(f32::EPSILON..=1.0).contains(&r.learning_rate)
            || r.l2.is_nan()
            || r.l2 < 0.0
            || r.min_leaf_hessian.is_nan()
            || r.min_leaf_hessian < 0.0
        {
            return Err(
                "learning.ranker: trees at most 5000, depth 1-12, bins 2-255, \
                        learning_rate in (0, 1], l2 and min_leaf_hessian >= 0"
                    .into(),
            );
        }
        if p.transitions.max_successors == 0 {
            return Err("learning.transitions.max_successors must be positive".into());
        }
        if p.candidates_per_source == 0
            || p.candidates_per_source > 10_000
            || p.trend_half_life_days <= 0.0
        {
            return Err(
                "learning.candidates_per_source must be 1-10000 and trend_half_life_days > 0"
                    .into(),
            );
        }
        Ok(())
    }

    pub fn is_positive(&self, action: Action) -> bool {
        action.preference_weight() >= self.positive_min_weight
    }

    pub fn marks_seen(&self, action: Action) -> bool {
        self.seen_actions.contains(&action)
    }
}

/// Which item-item model is learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CollabMethod {
    /// EASE restricted to each item's `neighbours` strongest co-occurring items: one small
    /// ridge regression per item (see `learn::collab::ItemNeighbours::train`).
    SparseEase,
    /// The RP3β random walk.
    Rp3Beta,
}

/// How neighbours are learned.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CollabParams {
    pub method: CollabMethod,
    /// Neighbours kept per item.
    pub neighbours: usize,
    /// Ridge penalty of the sparse EASE regressions.
    pub lambda: f32,
    /// Exponent on the walk's transition probabilities (1 = plain random walk).
    pub alpha: f32,
    /// Popularity penalty: a neighbour's weight is divided by its degree^beta.
    pub beta: f32,
    /// A user's latest positive items used in training (bounds the quadratic cost of very
    /// long histories).
    pub max_user_items: usize,
}

impl Default for CollabParams {
    fn default() -> Self {
        Self {
            method: CollabMethod::SparseEase,
            neighbours: 100,
            lambda: 100.0,
            alpha: 1.0,
            beta: 0.3,
            max_user_items: 500,
        }
    }
}

/// How transitions are counted and scored.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TransitionParams {
    /// Earlier items a new item is linked from (1 = first-order only).
    pub window: usize,
    /// Weight of a link from the item `g` steps back is `decay^(g-1)`, both when counting
    /// and when scoring.
    pub decay: f32,
    /// Successors kept per item (the weakest is evicted), which bounds memory.
    pub max_successors: usize,
}

impl Default for TransitionParams {
    fn default() -> Self {
        Self {
            window: 3,
            decay: 0.6,
            max_successors: 200,
        }
    }
}

/// How the trees are grown.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RankerParams {
    pub trees: usize,
    pub depth: usize,
    pub learning_rate: f32,
    /// L2 penalty on leaf values (in Newton units).
    pub l2: f32,
    /// Smallest hessian mass a leaf may hold.
    pub min_leaf_hessian: f32,
    /// Quantile bins per feature.
    pub bins: usize,
}

impl Default for RankerParams {
    fn default() -> Self {
        Self {
            trees: 50,
            depth: 3,
            learning_rate: 0.1,
            l2: 1.0,
            min_leaf_hessian: 1.0,
            bins: 32,
        }
    }
}
