//! What the engine learns from interactions: the whole-history seen filter, next-item
//! transitions and trend (updated online by every event), and the trained model — the
//! collaborative neighbours and the learned ranker — retrained in the background, versioned,
//! persisted atomically and swapped in without a restart.

pub mod collab;
pub mod features;
pub mod learner;
pub mod linalg;
pub mod persist;
pub mod ranker;
pub mod seen;
pub mod train;
pub mod transitions;

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shared_types::Action;

pub use collab::{CollabParams, ItemNeighbours};
pub use features::{ItemSignals, Trend, UserSignals};
pub use ranker::{RankFeatures, Ranker, RankerParams};
pub use seen::SeenSets;
pub use train::{train, TrainEvent, TrainReport};
pub use transitions::{TransitionParams, Transitions};

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

/// Dense ordinals for item ids, so per-user and per-item structures hold `u32`s. Ordinals
/// are never reused; a deleted item keeps its ordinal and is skipped by the catalogue.
#[derive(Default, Clone)]
pub struct ItemIds {
    by_id: HashMap<Arc<str>, u32>,
    ids: Vec<Arc<str>>,
}

impl ItemIds {
    pub fn intern(&mut self, id: &Arc<str>) -> u32 {
        if let Some(&o) = self.by_id.get(id) {
            return o;
        }
        let o = self.ids.len() as u32;
        self.ids.push(id.clone());
        self.by_id.insert(id.clone(), o);
        o
    }

    pub fn get(&self, id: &str) -> Option<u32> {
        self.by_id.get(id).copied()
    }

    pub fn id(&self, ordinal: u32) -> Option<&Arc<str>> {
        self.ids.get(ordinal as usize)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Ids in ordinal order.
    pub fn ids(&self) -> &[Arc<str>] {
        &self.ids
    }
}

/// A trained model: what the background training produces and serving reads.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedModel {
    /// Increases with every training; 0 = nothing trained yet.
    pub version: u64,
    /// Unix seconds.
    pub trained_at: i64,
    pub collab: ItemNeighbours,
    /// `None` before enough interactions exist (serving uses the static weights).
    pub ranker: Option<Ranker>,
    pub report: TrainReport,
}

impl TrainedModel {
    pub fn empty() -> Self {
        Self {
            version: 0,
            trained_at: 0,
            collab: ItemNeighbours::default(),
            ranker: None,
            report: TrainReport::default(),
        }
    }
}

/// The state every event updates: ordinals, seen sets, transitions and trend.
pub struct OnlineState {
    pub ids: ItemIds,
    pub seen: SeenSets,
    pub transitions: Transitions,
    pub trend: Trend,
}

impl OnlineState {
    pub fn new(config: &LearningConfig) -> Self {
        Self {
            ids: ItemIds::default(),
            seen: SeenSets::default(),
            transitions: Transitions::new(config.transitions),
            trend: Trend::new(config.trend_half_life_days),
        }
    }

    /// Applies one stored event. `previous`: the user's earlier positive items, newest first
    /// (ordinals), which the event links from when positive.
    pub fn apply(
        &mut self,
        config: &LearningConfig,
        user: &str,
        item: &Arc<str>,
        action: Action,
        timestamp: i64,
        previous: &[u32],
    ) -> (u32, bool) {
        let o = self.ids.intern(item);
        let first = !self.seen.contains(user, o);
        if config.marks_seen(action) {
            self.seen.insert(user, o);
        }
        if config.is_positive(action) {
            self.transitions.record(previous, o);
            self.trend.record(o, action.preference_weight(), timestamp);
        }
        (o, first)
    }
}
