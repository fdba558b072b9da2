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

use shared_types::Action;

pub use crate::config::LearningConfig;
pub use collab::{CollabParams, ItemNeighbours};
pub use features::{ItemSignals, Trend, UserSignals};
pub use ranker::{RankFeatures, Ranker, RankerParams};
pub use seen::SeenSets;
pub use train::{train, TrainEvent, TrainReport};
pub use transitions::{TransitionParams, Transitions};

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
