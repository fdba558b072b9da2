//! Settings of the online-learning ranking policy and how requests are segmented for it.

use serde::{Deserialize, Serialize};

/// The online-learning ranking policy (see the `policy` module).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Off: the static hybrid ranker alone decides the order.
    pub enabled: bool,
    /// Frozen: keeps serving (and exploring) with the current model, learns nothing.
    pub frozen: bool,
    /// Share of decisions that explore, at most 0.2.
    pub epsilon: f32,
    /// Candidates considered for the lead position.
    pub top_k: usize,
    /// Weight of the static ranker's weights as the prior, in pseudo-observations.
    pub prior_strength: f32,
    /// `none` (one global model), `device` or `time_of_day`.
    pub segment_by: SegmentBy,
    /// Rewards attributed to an impression by the events that reference it.
    pub reward_complete: f32,
    pub reward_like: f32,
    pub reward_view: f32,
    pub reward_skip: f32,
    pub reward_dislike: f32,
    /// Impressions remembered for attribution and off-policy evaluation.
    pub impression_capacity: usize,
    /// The state is saved to the data directory every this many updates (and at shutdown).
    pub save_every: u64,
    /// In a cluster: how long ScyllaDB keeps an impression for attribution (seconds).
    pub impression_ttl_secs: u64,
    /// In a cluster: how often a router publishes what it learned and takes in what the
    /// other routers learned (seconds).
    pub sync_secs: u64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            frozen: false,
            epsilon: 0.05,
            top_k: 5,
            prior_strength: 20.0,
            segment_by: SegmentBy::None,
            reward_complete: 1.0,
            reward_like: 1.0,
            reward_view: 0.1,
            reward_skip: -0.5,
            reward_dislike: -1.0,
            impression_capacity: 100_000,
            save_every: 100,
            impression_ttl_secs: 86_400,
            sync_secs: 10,
        }
    }
}

/// What the ranking policy keeps a separate model for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentBy {
    /// One global model.
    #[default]
    None,
    Device,
    TimeOfDay,
}

impl SegmentBy {
    /// The segment a request falls in.
    pub fn segment(self, req: &shared_types::NormalisedRequest) -> String {
        match self {
            Self::None => "global".into(),
            Self::Device => format!("device:{}", req.device.map_or("unknown", |d| d.as_str())),
            Self::TimeOfDay => format!(
                "time_of_day:{}",
                req.time_of_day.map_or("unknown", |t| t.as_str())
            ),
        }
    }
}
