//! Learning from feedback: the online ranking policy (which top candidate leads, rewarded
//! by the events that reference a response) and the trained collaborative model and ranker
//! (retrained in the background, on demand, or by `reco-train`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shared_types::{Action, ErrorCode, NormalisedRequest, ScoreComponents, ScoredItem};

use crate::config::Config;
use crate::error::EngineError;
use crate::learn::learner::{ModelStatus, TrainError, TrainingSlot};
use crate::learn::TrainReport;
use crate::policy::{self, Features, Impression, LeadDecision, Policy, PolicySettings};
use crate::store::{Interaction, ScyllaPolicyStore, StoreError};

use super::Engine;

/// Where the pipeline's score sits in the policy's features.
const SCORE_FEATURE: usize = 7;

/// The policy's prior: the ranking pipeline's own order (its score, whether the learned
/// ranker's or the static weighted sum), so before any feedback the bandit changes nothing.
fn static_prior() -> Features {
    let mut prior = [0.0; policy::FEATURES];
    prior[SCORE_FEATURE] = 1.0;
    prior
}

/// The policy's view of a ranked item (see [`policy::FEATURE_NAMES`]).
fn features_of(c: &ScoreComponents, score: f32, has_intent: bool, cold_start: bool) -> Features {
    [
        c.semantic,
        c.graph,
        c.popularity,
        c.freshness,
        c.quality,
        c.collaborative,
        c.transition,
        score,
        1.0,
        f32::from(u8::from(has_intent)),
        f32::from(u8::from(cold_start)),
    ]
}

fn named_features(w: &Features) -> BTreeMap<String, f32> {
    policy::FEATURE_NAMES
        .iter()
        .zip(w)
        .map(|(n, v)| (n.to_string(), *v))
        .collect()
}

fn policy_state_path(config: &Config) -> std::path::PathBuf {
    config.storage.data_dir.join("policy-state.json")
}

/// A cluster router's share of the policy's learning in ScyllaDB.
pub(crate) struct SharedPolicy {
    store: Arc<ScyllaPolicyStore>,
    /// This process's name among the writers of `policy_stats` (a new one per start, so a
    /// restarted router never overwrites the sums of its previous run).
    writer: String,
    /// Own updates at the last publication (nothing new: nothing to write).
    published: AtomicU64,
    /// One synchronisation at a time.
    syncing: tokio::sync::Mutex<()>,
}

impl SharedPolicy {
    pub(super) fn new(store: Arc<ScyllaPolicyStore>) -> Self {
        Self {
            store,
            writer: format!("{:032x}", rand::random::<u128>()),
            published: AtomicU64::new(0),
            syncing: Default::default(),
        }
    }

    /// Publishes this router's sums when they changed, then serves everyone's.
    async fn sync(&self, policy: &Policy) -> Result<(), StoreError> {
        let _one = self.syncing.lock().await;
        let own = policy.own_updates();
        if own != self.published.load(Ordering::Relaxed) {
            self.store
                .save_stats(&self.writer, &policy.own_stats())
                .await?;
            self.published.store(own, Ordering::Relaxed);
        }
        let others = self.store.others_stats(&self.writer).await?;
        policy.merge(&others);
        Ok(())
    }
}

/// The ranking policy the configuration asks for (`None` when switched off), restored from
/// its saved state in the data directory when `from_disk` and there is one.
pub(super) fn open_policy(config: &Config, from_disk: bool) -> Option<Arc<Policy>> {
    config.policy.enabled.then(|| {
        let policy = Policy::new(
            PolicySettings {
                epsilon: config.policy.epsilon,
                top_k: config.policy.top_k,
                prior_strength: f64::from(config.policy.prior_strength),
                frozen: config.policy.frozen,
            },
            static_prior(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
        );
        if from_disk {
            match policy.restore(&policy_state_path(config)) {
                Ok(true) => {
                    tracing::info!(updates = policy.total_updates(), "ranking policy restored")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "ranking policy state unreadable; starting from the prior")
                }
            }
        }
        Arc::new(policy)
    })
}

/// What `GET /admin/policy` reports.
#[derive(Debug, serde::Serialize)]
pub struct PolicyReport {
    pub enabled: bool,
    pub frozen: bool,
    pub epsilon: f32,
    pub updates: u64,
    /// Learned weights per segment.
    pub weights: Option<BTreeMap<String, BTreeMap<String, f32>>>,
    /// Remembered lead decisions the estimates are computed on.
    pub decisions: usize,
    /// Mean reward the serving (logging) policy earned on them.
    pub observed_reward: f64,
    /// IPS estimates of the learned greedy policy, the static ranker, and a candidate.
    pub learned: Option<policy::IpsEstimate>,
    pub static_ranker: policy::IpsEstimate,
    pub candidate: Option<policy::IpsEstimate>,
}

/// A training that could not run, as the engine's error.
fn train_error(e: TrainError) -> EngineError {
    match e {
        TrainError::Busy => EngineError::conflict(ErrorCode::TrainingInProgress, e.to_string()),
        TrainError::TooFew(..) => EngineError::conflict(ErrorCode::NotEnoughData, e.to_string()),
        TrainError::Store(e) => EngineError::Store(e),
        TrainError::Io(e) => EngineError::Internal(e),
    }
}

impl Engine {
    /// The policy stage: the bandit picks which of the top candidates leads (the rest keep
    /// their order), and the impression is logged for reward attribution.
    pub(super) async fn apply_policy(
        &self,
        recommendation_id: &str,
        req: &NormalisedRequest,
        mut items: Vec<ScoredItem>,
        cold_start: bool,
    ) -> Vec<ScoredItem> {
        let mut features: Vec<Features> = items
            .iter()
            .map(|i| features_of(&i.components, i.score, req.q.is_some(), cold_start))
            .collect();
        let segment = self.config.policy.segment_by.segment(req);
        let lead = match &self.policy {
            Some(policy) if items.len() > 1 => {
                let candidates: Vec<Features> = features
                    .iter()
                    .take(policy.settings().top_k)
                    .copied()
                    .collect();
                let d = policy.decide(&segment, &candidates);
                self.metrics.count_policy_decision(d.explored);
                items[..=d.chosen].rotate_right(1);
                features[..=d.chosen].rotate_right(1);
                Some(LeadDecision {
                    candidates,
                    chosen: d.chosen,
                    propensity: d.propensity,
                })
            }
            _ => None,
        };
        let shown = items
            .iter()
            .zip(features)
            .map(|(i, x)| (Arc::from(i.item.id.as_str()), x))
            .collect();
        let impression = Impression {
            user: req.user_id.clone(),
            segment,
            shown,
            lead,
        };
        let (store, id) = (self.impressions.clone(), recommendation_id.to_string());
        let record = async move {
            if let Err(e) = store.record(id, impression).await {
                tracing::warn!(error = %e, "impression not recorded; its events will not reward the policy");
            }
        };
        // A cluster's impressions go to ScyllaDB: the answer does not wait for that write.
        match self.shared_policy {
            Some(_) => drop(tokio::spawn(record)),
            None => record.await,
        }
        items
    }

    fn reward_for(&self, action: Action) -> f32 {
        let p = &self.config.policy;
        match action {
            Action::Complete => p.reward_complete,
            Action::Like => p.reward_like,
            Action::View => p.reward_view,
            Action::Skip => p.reward_skip,
            Action::Dislike => p.reward_dislike,
        }
    }

    /// Attributes events that reference a response to its impression and teaches the policy
    /// (after the events are stored: a failure here loses a reward, never an event).
    pub(super) async fn learn_from(self: &Arc<Self>, events: &[Interaction]) {
        let mut attributed = Vec::new();
        for chunk in events.chunks(16) {
            let mut lookups = Vec::with_capacity(chunk.len());
            for e in chunk {
                if let Some(id) = e.recommendation_id.as_deref() {
                    lookups.push(self.attribute(id, e));
                }
            }
            attributed.extend(futures::future::join_all(lookups).await);
        }
        for (attribution, reward) in attributed {
            let attribution = match attribution {
                Ok(Some(a)) => a,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "reward not attributed");
                    continue;
                }
            };
            self.metrics.count_policy_reward(reward);
            if let Some(policy) = &self.policy {
                policy.update(&attribution.segment, &attribution.features, reward);
                let every = self.config.policy.save_every.max(1);
                if !policy.settings().frozen && policy.total_updates() % every == 0 {
                    self.spawn_policy_save(policy.clone());
                }
            }
        }
    }

    async fn attribute(
        &self,
        id: &str,
        e: &Interaction,
    ) -> (Result<Option<crate::policy::Attribution>, StoreError>, f32) {
        let reward = self.reward_for(e.action);
        let attribution = self
            .impressions
            .reward(id, &e.user_id, &e.item_id, reward)
            .await;
        (attribution, reward)
    }

    /// Saves the policy's state in the background: in a cluster, publishes this router's
    /// sums to ScyllaDB (a router's disk is scratch); else to the data directory.
    fn spawn_policy_save(self: &Arc<Self>, policy: Arc<Policy>) {
        match &self.shared_policy {
            Some(_) => {
                let engine = self.clone();
                tokio::spawn(async move { engine.sync_policy(&policy).await });
            }
            None => {
                let path = policy_state_path(&self.config);
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = policy.save(&path) {
                        tracing::warn!(error = %e, "ranking policy state not saved");
                    }
                });
            }
        }
    }

    async fn sync_policy(&self, policy: &Policy) {
        if let Some(shared) = &self.shared_policy {
            if let Err(e) = shared.sync(policy).await {
                tracing::warn!(error = %e, "ranking policy not synchronised with the other routers");
            }
        }
    }

    /// In a cluster, serves what every router has learned (restoring it at start), then
    /// publishes and takes in the routers' learning every `policy.sync_secs`.
    pub(super) async fn spawn_policy_sync(engine: &Arc<Self>) {
        let (Some(policy), Some(_)) = (engine.policy.clone(), &engine.shared_policy) else {
            return;
        };
        engine.sync_policy(&policy).await;
        tracing::info!(
            updates = policy.total_updates(),
            "ranking policy restored from ScyllaDB"
        );
        let every = Duration::from_secs(engine.config.policy.sync_secs.max(1));
        let weak = Arc::downgrade(engine);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(engine) = weak.upgrade() else { return };
                engine.sync_policy(&policy).await;
            }
        });
    }

    /// Saves the policy state now (at shutdown).
    pub async fn persist_policy(&self) -> std::io::Result<()> {
        match (&self.policy, &self.shared_policy) {
            (None, _) => Ok(()),
            (Some(policy), Some(shared)) => {
                shared.sync(policy).await.map_err(std::io::Error::other)
            }
            (Some(policy), None) => policy.save(&policy_state_path(&self.config)),
        }
    }

    /// The policy's state and off-policy estimates over the remembered decisions: the
    /// learned policy, the static ranker, and optionally candidate `weights`.
    pub async fn policy_report(
        &self,
        candidate: Option<&Features>,
    ) -> Result<PolicyReport, EngineError> {
        let log = self
            .impressions
            .decisions(self.config.policy.impression_capacity)
            .await?;
        let top_k = self.config.policy.top_k;
        let prior = static_prior();
        let learned = self.policy.as_ref().map(|p| {
            policy::ips(&log, |segment, c| {
                p.greedy(segment, &c[..c.len().min(top_k)])
            })
        });
        Ok(PolicyReport {
            enabled: self.policy.is_some(),
            frozen: self.config.policy.frozen,
            epsilon: self.config.policy.epsilon,
            updates: self.policy.as_ref().map_or(0, |p| p.total_updates()),
            weights: self.policy.as_ref().map(|p| {
                p.segments()
                    .into_iter()
                    .map(|s| {
                        let w = p.weights(&s);
                        (s, named_features(&w))
                    })
                    .collect()
            }),
            decisions: log.len(),
            observed_reward: policy::observed_reward(&log),
            learned,
            static_ranker: policy::ips(&log, |_, c| policy::linear_choice(&prior, c, top_k)),
            candidate: candidate
                .map(|w| policy::ips(&log, |_, c| policy::linear_choice(w, c, top_k))),
        })
    }

    /// Trains a new collaborative model and ranker from every stored interaction and serves
    /// it (the `reco-train` binary and `POST /admin/model/retrain` end here).
    pub async fn retrain(&self) -> Result<TrainReport, EngineError> {
        let slot = self.learner.start_training().map_err(train_error)?;
        self.retrain_in(slot).await
    }

    async fn retrain_in(&self, slot: TrainingSlot) -> Result<TrainReport, EngineError> {
        let r = &self.config.ranking;
        self.learner
            .retrain(
                slot,
                self.backends.interactions.as_ref(),
                &self.catalog,
                self.current_year,
                r.history_limit,
                r.history_half_life_days,
                crate::clock::now_secs(),
            )
            .await
            .map_err(train_error)
    }

    /// Starts a training in the background, or says why it cannot start (one is running:
    /// `training_in_progress`; too few positives: `not_enough_data`).
    pub fn retrain_in_background(self: &Arc<Self>) -> Result<(), EngineError> {
        let slot = self.learner.start_training().map_err(train_error)?;
        let engine = self.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.retrain_in(slot).await {
                tracing::warn!(error = %e, "model not trained");
            }
        });
        Ok(())
    }

    /// The served model and the online learning state.
    pub fn model_status(&self) -> ModelStatus {
        self.learner.status()
    }

    /// Serves the newest model on disk, then keeps the model fresh: a new file (from
    /// `reco-train`) is picked up within a minute, and a training runs every
    /// `learning.retrain_every_secs` (and at once when no model exists yet); with 0, only
    /// on demand (`POST /admin/model/retrain`, `reco-train`).
    pub(super) fn spawn_training(engine: &Arc<Self>) {
        if !engine.learner.enabled() {
            return;
        }
        if let Some(v) = engine.learner.load_newer() {
            tracing::info!(version = v, "trained model loaded");
        }
        let every = engine.config.learning.retrain_every_secs;
        let weak = Arc::downgrade(engine);
        tokio::spawn(async move {
            let mut last_training = None::<Instant>;
            loop {
                let Some(engine) = weak.upgrade() else { return };
                let due = match last_training {
                    None => every > 0 && engine.learner.model().version == 0,
                    Some(at) => every > 0 && at.elapsed() >= Duration::from_secs(every),
                };
                if due {
                    last_training = Some(Instant::now());
                    match engine.retrain().await {
                        Ok(_) => {}
                        Err(EngineError::Invalid { .. } | EngineError::Conflict { .. }) => {}
                        Err(e) => tracing::warn!(error = %e, "scheduled training failed"),
                    }
                } else if let Some(v) = engine.learner.load_newer() {
                    tracing::info!(version = v, "newer trained model loaded");
                }
                last_training.get_or_insert_with(Instant::now);
                drop(engine);
                tokio::time::sleep(Duration::from_secs(every.clamp(1, 60))).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_feedback_the_policy_keeps_the_pipeline_order() {
        let prior = static_prior();
        let c = ScoreComponents::default();
        let better = features_of(&c, 0.9, false, false);
        let worse = features_of(&c, 0.2, false, false);
        let candidates = [worse, better];
        assert_eq!(policy::linear_choice(&prior, &candidates, 2), 1);
        assert_eq!(named_features(&prior)["score"], 1.0);
    }
}
