//! The engine's learning component: owns the online state (ordinals, seen sets,
//! transitions, trend) and the current trained model, replays the interaction store into
//! them, trains new models off the request path and swaps them in atomically.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use shared_types::Action;

use super::features::UserSignals;
use super::train::{train, TrainContext, TrainEvent, TrainReport};
use super::{persist, LearningConfig, OnlineState, TrainedModel};
use crate::catalog::{Catalog, CatalogEntry};
use crate::store::{InteractionStore, StoreError};

/// How long the trend's ranked list is reused.
const TREND_LIST_TTL: Duration = Duration::from_secs(5);

/// What `/admin/model` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelStatus {
    pub enabled: bool,
    pub version: u64,
    pub trained_at: i64,
    pub has_ranker: bool,
    pub training: bool,
    pub report: TrainReport,
    /// Online state sizes: users with a seen set, (user, item) pairs, and its heap bytes.
    pub seen_users: usize,
    pub seen_pairs: usize,
    pub seen_bytes: usize,
    pub transition_items: usize,
    pub transition_entries: usize,
}

/// Why a training did not produce a model.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("a training is already running")]
    Busy,
    #[error("{0} positive interactions; at least {1} are needed to train")]
    TooFew(usize, usize),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
}

/// When the trending list was ranked, for how many items, and the list.
type TrendList = (Instant, usize, Arc<Vec<u32>>);

/// The right to run the one training at a time.
pub type TrainingSlot = tokio::sync::OwnedMutexGuard<()>;

pub struct Learner {
    config: LearningConfig,
    models_dir: PathBuf,
    online: RwLock<OnlineState>,
    model: RwLock<Arc<TrainedModel>>,
    trend_list: Mutex<Option<TrendList>>,
    training: Arc<tokio::sync::Mutex<()>>,
    next_version: AtomicU64,
    /// Positive interactions seen (replayed and online), to refuse a training early.
    positives: AtomicUsize,
}

impl Learner {
    pub fn new(config: LearningConfig, models_dir: PathBuf) -> Self {
        let next = persist::versions(&models_dir)
            .ok()
            .and_then(|v| v.into_iter().max())
            .unwrap_or(0)
            + 1;
        Self {
            online: RwLock::new(OnlineState::new(&config)),
            config,
            models_dir,
            model: RwLock::new(Arc::new(TrainedModel::empty())),
            trend_list: Mutex::new(None),
            training: Arc::new(tokio::sync::Mutex::new(())),
            next_version: AtomicU64::new(next),
            positives: AtomicUsize::new(0),
        }
    }

    /// Whether serving uses the learned sources.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    pub fn model(&self) -> Arc<TrainedModel> {
        self.model.read().expect("model lock").clone()
    }

    /// Applies one stored event to the online state. `previous`: the user's earlier
    /// positive items, newest first. Returns whether this is the user's first event on the
    /// item that the seen set knows of: only that one counts as their vote for it.
    pub fn observe(
        &self,
        user: &str,
        item: &Arc<str>,
        action: Action,
        timestamp: i64,
        previous: &[Arc<str>],
    ) -> bool {
        if self.config.is_positive(action) {
            self.positives.fetch_add(1, Ordering::Relaxed);
        }
        let mut online = self.online.write().expect("online lock");
        let previous: Vec<u32> = previous.iter().filter_map(|p| online.ids.get(p)).collect();
        online
            .apply(&self.config, user, item, action, timestamp, &previous)
            .1
    }

    /// Interns catalogue items so their ordinals exist before any event (stable within the
    /// process).
    pub fn register_items<'a>(&self, ids: impl IntoIterator<Item = &'a Arc<str>>) {
        let mut online = self.online.write().expect("online lock");
        for id in ids {
            online.ids.intern(id);
        }
    }

    /// Forgets a deleted item in the transitions and trend (seen sets keep it: harmless).
    pub fn remove_item(&self, id: &str) {
        let mut online = self.online.write().expect("online lock");
        if let Some(o) = online.ids.get(id) {
            online.transitions.remove_item(o);
            online.trend.remove_item(o);
        }
    }

    /// Forgets an erased user: their seen set, the only per-user state kept here (their
    /// latest positives come from the interaction store at each request). Transitions and
    /// trend count items, not users: they stay as anonymous aggregates, like the trained
    /// model, which the next training rebuilds without the erased events. Returns the items
    /// that were in the seen set.
    pub fn forget_user(&self, user: &str) -> usize {
        let mut online = self.online.write().expect("online lock");
        let seen = online.seen.of(user).len();
        online.seen.remove_user(user);
        seen
    }

    /// Whether `user` has interacted with `item` (in a way that marks it seen).
    pub fn seen_filter(&self, user: Option<&str>) -> SeenFilter {
        let online = self.online.read().expect("online lock");
        SeenFilter {
            items: user
                .map(|u| {
                    online
                        .seen
                        .of(u)
                        .iter()
                        .filter_map(|&o| online.ids.id(o).cloned())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The learned sources' view of a user with this history (newest first).
    pub fn signals(
        &self,
        model: &TrainedModel,
        history: &[(Action, Arc<str>)],
        pool: usize,
    ) -> (UserSignals, Vec<u32>) {
        let online = self.online.read().expect("online lock");
        let mut positives: Vec<(u32, f32)> = Vec::new();
        let mut recent: Vec<u32> = Vec::new();
        for (action, id) in history {
            if !self.config.is_positive(*action) {
                continue;
            }
            let Some(o) = online.ids.get(id) else {
                continue;
            };
            if !positives.iter().any(|(p, _)| *p == o) {
                positives.push((o, action.preference_weight()));
            }
            if recent.len()
                < self
                    .config
                    .transitions
                    .window
                    .max(super::train::CONTENT_SEEDS)
            {
                recent.push(o);
            }
        }
        let signals = UserSignals::compute(
            &model.collab,
            &online.transitions,
            &positives,
            &recent,
            pool,
        );
        (signals, recent)
    }

    /// Ordinal and trend of each id, under one lock.
    pub fn lookup<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Vec<(Option<u32>, f32)> {
        let online = self.online.read().expect("online lock");
        ids.map(|id| {
            let o = online.ids.get(id);
            (o, o.map_or(0.0, |o| online.trend.feature(o)))
        })
        .collect()
    }

    /// Ordinal of an item id.
    pub fn ordinal(&self, id: &str) -> Option<u32> {
        self.online.read().expect("online lock").ids.get(id)
    }

    /// Ordinals to ids (unknown ordinals skipped).
    pub fn ids_of(&self, ordinals: &[u32]) -> Vec<Arc<str>> {
        let online = self.online.read().expect("online lock");
        ordinals
            .iter()
            .filter_map(|&o| online.ids.id(o).cloned())
            .collect()
    }

    /// The trendiest items, cached for a few seconds.
    pub fn trending(&self, n: usize) -> Arc<Vec<u32>> {
        let mut cached = self.trend_list.lock().expect("trend list lock");
        if let Some((at, ranked_for, list)) = &*cached {
            if at.elapsed() < TREND_LIST_TTL && *ranked_for >= n {
                return list.clone();
            }
        }
        let list = Arc::new(self.online.read().expect("online lock").trend.top(n));
        *cached = Some((Instant::now(), n, list.clone()));
        list
    }

    /// The item in `recent` (newest first) that most explains `item` through transitions.
    pub fn transition_source(&self, recent: &[u32], item: u32) -> Option<Arc<str>> {
        let online = self.online.read().expect("online lock");
        let o = online.transitions.strongest_source(recent, item)?;
        online.ids.id(o).cloned()
    }

    /// The history item that most explains `item` through the collaborative model.
    pub fn collab_source(
        &self,
        model: &TrainedModel,
        history: &[(Action, Arc<str>)],
        item: u32,
    ) -> Option<Arc<str>> {
        let online = self.online.read().expect("online lock");
        let positives: Vec<(u32, f32)> = history
            .iter()
            .filter(|(a, _)| self.config.is_positive(*a))
            .filter_map(|(a, id)| Some((online.ids.get(id)?, a.preference_weight())))
            .collect();
        let o = model.collab.strongest_source(&positives, item)?;
        online.ids.id(o).cloned()
    }

    /// Loads the newest model on disk if it is newer than the one served.
    pub fn load_newer(&self) -> Option<u64> {
        let served = self.model().version;
        let newest = persist::versions(&self.models_dir)
            .ok()?
            .into_iter()
            .max()?;
        if newest <= served {
            return None;
        }
        // Mapping the file's ids onto ordinals interns unknown ones: under the write lock,
        // so no item registered meanwhile can take an ordinal the model refers to.
        let model = {
            let mut online = self.online.write().expect("online lock");
            persist::load_latest(&self.models_dir, &mut online.ids)?
        };
        // A corrupt newest file makes the loader fall back to an older version.
        if model.version <= served {
            return None;
        }
        let version = model.version;
        self.swap(model);
        Some(version)
    }

    fn swap(&self, model: TrainedModel) {
        self.next_version
            .fetch_max(model.version + 1, Ordering::Relaxed);
        *self.model.write().expect("model lock") = Arc::new(model);
    }

    /// Whether a training is running now.
    pub fn is_training(&self) -> bool {
        self.training.try_lock().is_err()
    }

    /// Claims the one training slot, or says why a training cannot start now.
    pub fn start_training(&self) -> Result<TrainingSlot, TrainError> {
        let positives = self.positives.load(Ordering::Relaxed);
        if positives < self.config.min_positives {
            return Err(TrainError::TooFew(positives, self.config.min_positives));
        }
        self.training
            .clone()
            .try_lock_owned()
            .map_err(|_| TrainError::Busy)
    }

    /// Trains a new model from every stored interaction (off the reactor), saves it and
    /// serves it. One training at a time.
    #[allow(clippy::too_many_arguments)]
    pub async fn retrain(
        &self,
        _slot: TrainingSlot,
        store: &dyn InteractionStore,
        catalog: &Catalog,
        current_year: i32,
        history_limit: usize,
        history_half_life_days: f32,
        now: i64,
    ) -> Result<TrainReport, TrainError> {
        let mut log = store.log().await?;
        // The log is grouped by user, oldest first; a stable sort keeps each user's order.
        log.sort_by_key(|e| e.timestamp);
        // Catalogue items are registered when they enter it; events of items no longer in
        // the catalogue are skipped. The ordinals are copied so no lock is held meanwhile.
        let ids = self.online.read().expect("online lock").ids.clone();
        let mut users: HashMap<String, u32> = HashMap::new();
        let mut events = Vec::with_capacity(log.len());
        for e in log {
            let Some(item) = ids.get(&e.item_id) else {
                continue;
            };
            let n = users.len() as u32;
            let user = *users.entry(e.user_id).or_insert(n);
            events.push(TrainEvent {
                user,
                item,
                action: e.action,
                timestamp: e.timestamp,
            });
        }
        let items: Vec<Option<Arc<CatalogEntry>>> =
            ids.ids().iter().map(|id| catalog.get(id)).collect();
        events.retain(|e| items[e.item as usize].is_some());
        let positives = events
            .iter()
            .filter(|e| self.config.is_positive(e.action))
            .count();
        if positives < self.config.min_positives {
            return Err(TrainError::TooFew(positives, self.config.min_positives));
        }
        let ids: Vec<Arc<str>> = ids.ids().to_vec();
        let config = self.config.clone();
        // Another process (`reco-train`) may have written newer versions meanwhile.
        let on_disk = persist::versions(&self.models_dir)
            .ok()
            .and_then(|v| v.into_iter().max())
            .unwrap_or(0);
        self.next_version.fetch_max(on_disk + 1, Ordering::Relaxed);
        let version = self.next_version.fetch_add(1, Ordering::Relaxed);
        let dir = self.models_dir.clone();
        let model = crate::compute::on_rayon(move || {
            let ctx = TrainContext {
                items: &items,
                current_year,
                history_limit,
                history_half_life_days,
            };
            let model = train(&events, &ctx, &config, version, now);
            let saved = persist::save(&dir, &model, &ids, config.keep_versions);
            (model, saved)
        })
        .await
        .map_err(|e| TrainError::Io(e.to_string()))?;
        let (model, saved) = model;
        if let Err(e) = saved {
            // Served anyway; the next start retrains.
            tracing::warn!(error = %e, "trained model not saved");
        }
        let report = model.report.clone();
        tracing::info!(
            version = model.version,
            examples = report.ranker_examples,
            recall = report.candidate_recall,
            loss = report.ranker_loss,
            neutral_loss = report.neutral_loss,
            weights = ?report.ranker_weights,
            secs = report.secs,
            "model trained"
        );
        self.swap(model);
        Ok(report)
    }

    pub fn status(&self) -> ModelStatus {
        let model = self.model();
        let online = self.online.read().expect("online lock");
        let (transition_items, transition_entries) = online.transitions.size();
        ModelStatus {
            enabled: self.config.enabled,
            version: model.version,
            trained_at: model.trained_at,
            has_ranker: model.ranker.is_some(),
            training: self.is_training(),
            report: model.report.clone(),
            seen_users: online.seen.users(),
            seen_pairs: online.seen.pairs(),
            seen_bytes: online.seen.heap_bytes(),
            transition_items,
            transition_entries,
        }
    }
}

/// The items a user has seen, for the filter stage.
#[derive(Default)]
pub struct SeenFilter {
    items: HashSet<Arc<str>>,
}

impl SeenFilter {
    pub fn into_items(self) -> HashSet<Arc<str>> {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_users_first_event_on_an_item_is_their_vote() {
        let dir = std::env::temp_dir().join(format!("learner-vote-{}", std::process::id()));
        let learner = Learner::new(LearningConfig::default(), dir);
        let item: Arc<str> = Arc::from("tt1");
        assert!(learner.observe("u1", &item, Action::Like, 1, &[]));
        for t in 2..50 {
            assert!(
                !learner.observe("u1", &item, Action::Like, t, &[]),
                "repeat {t}"
            );
        }
        assert!(
            learner.observe("u2", &item, Action::Like, 3, &[]),
            "another user"
        );
        learner.forget_user("u1");
        assert!(
            learner.observe("u1", &item, Action::View, 60, &[]),
            "after erasure"
        );
    }
}
