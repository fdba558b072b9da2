//! The ranking policy that learns online: a linear contextual bandit over the ranker's
//! feature vector, deciding which of the top candidates leads the list.
//!
//! Model: per segment (global, or per device / time of day), ridge regression of the reward
//! on the features, `θ = A⁻¹ b` with `A = λI + Σ x xᵀ`, `b = λ θ₀ + Σ r x`. The prior `θ₀` is
//! the static ranker's weights, so before any feedback the policy ranks like the static
//! ranker. Decisions are ε-greedy among the top `k` candidates (ε is bounded by
//! configuration), which gives every decision a known propensity: that is what makes
//! inverse-propensity (IPS) evaluation of another policy on the logged decisions possible.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

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
        if let Some(theta) = solve_spd(&self.a, &self.b) {
            self.theta = theta;
        }
        self.updates += 1;
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

#[derive(Debug, Serialize, Deserialize)]
struct PersistedState {
    features: Vec<String>,
    segments: HashMap<String, SegmentModel>,
}

pub struct Policy {
    settings: PolicySettings,
    prior: Features,
    segments: RwLock<HashMap<String, SegmentModel>>,
    rng: AtomicU64,
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
            rng: AtomicU64::new(seed),
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

    /// Writes the state atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let state = PersistedState {
            features: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            segments: self.segments.read().expect("policy lock").clone(),
        };
        let bytes = serde_json::to_vec(&state).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// Restores a state written by [`Policy::save`]; a missing file leaves the prior.
    pub fn restore(&self, path: &Path) -> std::io::Result<bool> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let state: PersistedState =
            serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
        let valid = state.features == FEATURE_NAMES
            && state.segments.values().all(|m| {
                m.a.len() == FEATURES * FEATURES
                    && m.b.len() == FEATURES
                    && m.theta.len() == FEATURES
            });
        if !valid {
            return Err(std::io::Error::other(
                "policy state was written for other features",
            ));
        }
        *self.segments.write().expect("policy lock") = state.segments;
        Ok(true)
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

/// A logged decision with the reward it earned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedDecision {
    pub segment: String,
    pub candidates: Vec<Features>,
    pub chosen: usize,
    pub propensity: f32,
    pub reward: f32,
}

/// Off-policy estimate of a target policy's mean reward from logged decisions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IpsEstimate {
    /// Inverse propensity scoring.
    pub ips: f64,
    /// Self-normalised IPS (lower variance, slightly biased).
    pub snips: f64,
    /// Decisions where the target agrees with the logged choice.
    pub matched: usize,
    pub decisions: usize,
}

/// IPS of a deterministic target policy (`target` returns its choice among the candidates).
pub fn ips(log: &[LoggedDecision], target: impl Fn(&str, &[Features]) -> usize) -> IpsEstimate {
    let (mut sum, mut weights, mut matched) = (0.0, 0.0, 0);
    for d in log.iter().filter(|d| d.propensity > 0.0) {
        if target(&d.segment, &d.candidates) == d.chosen {
            let w = 1.0 / f64::from(d.propensity);
            sum += w * f64::from(d.reward);
            weights += w;
            matched += 1;
        }
    }
    let n = log.len().max(1) as f64;
    IpsEstimate {
        ips: sum / n,
        snips: if weights > 0.0 { sum / weights } else { 0.0 },
        matched,
        decisions: log.len(),
    }
}

/// IPS of a stochastic target policy, given its probability of each logged choice.
pub fn ips_stochastic(
    log: &[LoggedDecision],
    probability: impl Fn(&str, &[Features], usize) -> f32,
) -> f64 {
    let sum: f64 = log
        .iter()
        .filter(|d| d.propensity > 0.0)
        .map(|d| {
            let p = probability(&d.segment, &d.candidates, d.chosen);
            f64::from(p) / f64::from(d.propensity) * f64::from(d.reward)
        })
        .sum();
    sum / log.len().max(1) as f64
}

/// Mean observed reward of the logged decisions (what the logging policy earned).
pub fn observed_reward(log: &[LoggedDecision]) -> f64 {
    log.iter().map(|d| f64::from(d.reward)).sum::<f64>() / log.len().max(1) as f64
}

/// The lead decision of one response.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadDecision {
    pub candidates: Vec<Features>,
    pub chosen: usize,
    pub propensity: f32,
}

/// One response as shown: the items in order with their features, and its lead decision.
#[derive(Debug, Clone)]
pub struct Impression {
    /// Who it was served to (`None`: an anonymous request), so an erased user's impressions
    /// can be dropped.
    pub user: Option<String>,
    pub segment: String,
    pub shown: Vec<(Arc<str>, Features)>,
    pub lead: Option<LeadDecision>,
}

struct Logged {
    impression: Impression,
    /// (item, user) pairs already rewarded: a response cached at the edge is seen by many.
    rewarded: HashSet<(Arc<str>, String)>,
    lead_reward: f32,
}

/// Rewards one impression can collect: bounds the de-duplication memory of an anonymous
/// answer that many users see through the edge cache.
pub const MAX_REWARDS_PER_IMPRESSION: usize = 1_000;

/// Bounded memory of recent impressions, for reward attribution and off-policy evaluation.
pub struct ImpressionLog {
    inner: Mutex<(HashMap<String, Logged>, VecDeque<String>)>,
    capacity: usize,
}

/// What a reward teaches: the segment and the features of the rewarded item.
pub struct Attribution {
    pub segment: String,
    pub features: Features,
}

impl ImpressionLog {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
            capacity: capacity.max(1),
        }
    }

    pub fn record(&self, id: String, impression: Impression) {
        let mut guard = self.inner.lock().expect("impression lock");
        let (map, order) = &mut *guard;
        while map.len() >= self.capacity {
            match order.pop_front() {
                Some(old) => {
                    map.remove(&old);
                }
                None => break,
            }
        }
        order.push_back(id.clone());
        map.insert(
            id,
            Logged {
                impression,
                rewarded: HashSet::new(),
                lead_reward: 0.0,
            },
        );
    }

    /// Attributes `reward` from `user` for `item` to impression `id`; `None` when the
    /// impression is unknown (or forgotten), was served to another user, the item was not
    /// shown, this user was already counted for it, or the impression has collected
    /// [`MAX_REWARDS_PER_IMPRESSION`] rewards (a shared, edge-cached answer).
    pub fn reward(&self, id: &str, user: &str, item: &str, reward: f32) -> Option<Attribution> {
        let mut guard = self.inner.lock().expect("impression lock");
        let logged = guard.0.get_mut(id)?;
        if logged
            .impression
            .user
            .as_deref()
            .is_some_and(|served_to| served_to != user)
            || logged.rewarded.len() >= MAX_REWARDS_PER_IMPRESSION
        {
            return None;
        }
        let position = logged
            .impression
            .shown
            .iter()
            .position(|(shown, _)| &**shown == item)?;
        let key = (
            logged.impression.shown[position].0.clone(),
            user.to_string(),
        );
        if !logged.rewarded.insert(key) {
            return None;
        }
        if position == 0 {
            logged.lead_reward += reward;
        }
        Some(Attribution {
            segment: logged.impression.segment.clone(),
            features: logged.impression.shown[position].1,
        })
    }

    /// Forgets a user: the impressions served to them and their part in others' rewards
    /// (the policy's weights already learned from them are an anonymous aggregate and stay).
    /// Returns the impressions dropped.
    pub fn forget_user(&self, user: &str) -> usize {
        let mut guard = self.inner.lock().expect("impression lock");
        let (map, order) = &mut *guard;
        let before = map.len();
        map.retain(|_, l| l.impression.user.as_deref() != Some(user));
        order.retain(|id| map.contains_key(id));
        for logged in map.values_mut() {
            logged.rewarded.retain(|(_, u)| u != user);
        }
        before - map.len()
    }

    /// Every remembered lead decision with the reward its lead item earned (0 without one).
    pub fn decisions(&self) -> Vec<LoggedDecision> {
        let guard = self.inner.lock().expect("impression lock");
        guard
            .1
            .iter()
            .filter_map(|id| guard.0.get(id))
            .filter_map(|l| {
                let lead = l.impression.lead.as_ref()?;
                Some(LoggedDecision {
                    segment: l.impression.segment.clone(),
                    candidates: lead.candidates.clone(),
                    chosen: lead.chosen,
                    propensity: lead.propensity,
                    reward: l.lead_reward,
                })
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("impression lock").0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(epsilon: f32) -> PolicySettings {
        PolicySettings {
            epsilon,
            top_k: 5,
            prior_strength: 5.0,
            frozen: false,
        }
    }

    const STATIC: Features = [0.55, 0.15, 0.12, 0.05, 0.13, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];

    /// A population that, unlike the static ranker, mostly cares about freshness and
    /// quality: reward probability of an item with features `x`.
    fn true_like_probability(x: &Features) -> f64 {
        (0.05 + 0.2 * f64::from(x[0]) + 0.5 * f64::from(x[3]) + 0.25 * f64::from(x[4]))
            .clamp(0.0, 1.0)
    }

    struct Sim(u64);
    impl Sim {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        /// Candidates as the static ranker would order them (by its own score).
        fn candidates(&mut self) -> Vec<Features> {
            let mut c: Vec<Features> = (0..5)
                .map(|_| {
                    let mut x = [0.0; FEATURES];
                    for v in x.iter_mut().take(5) {
                        *v = self.next() as f32;
                    }
                    x[8] = 1.0;
                    x
                })
                .collect();
            let s = |x: &Features| x.iter().zip(&STATIC).map(|(a, b)| a * b).sum::<f32>();
            c.sort_by(|a, b| s(b).total_cmp(&s(a)));
            c
        }
    }

    #[test]
    fn impressions_attribute_each_user_once_and_feed_the_decision_log() {
        let log = ImpressionLog::new(2);
        let x = |v: f32| -> Features { [v, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0] };
        let impression = |lead: usize| Impression {
            user: None,
            segment: "global".into(),
            shown: vec![(Arc::from("a"), x(0.9)), (Arc::from("b"), x(0.5))],
            lead: Some(LeadDecision {
                candidates: vec![x(0.9), x(0.5)],
                chosen: lead,
                propensity: 0.5,
            }),
        };
        log.record("r1".into(), impression(0));
        let got = log.reward("r1", "u1", "a", 1.0).unwrap();
        assert_eq!((got.segment.as_str(), got.features), ("global", x(0.9)));
        assert!(log.reward("r1", "u1", "a", 1.0).is_none(), "once per user");
        assert!(log.reward("r1", "u2", "b", -1.0).is_some());
        assert!(log.reward("r1", "u1", "zz", 1.0).is_none(), "not shown");
        assert!(log.reward("nope", "u1", "a", 1.0).is_none());
        let decisions = log.decisions();
        assert_eq!(decisions.len(), 1);
        assert_eq!(decisions[0].reward, 1.0, "only the lead's reward");
        log.record("r2".into(), impression(1));
        log.record("r3".into(), impression(1));
        assert_eq!(log.len(), 2, "bounded; the oldest is forgotten");
        assert!(log.reward("r1", "u3", "a", 1.0).is_none());
        assert_eq!(linear_choice(&x(1.0), &[x(0.1), x(0.7), x(0.9)], 2), 1);
    }

    #[test]
    fn rewards_count_only_from_the_user_served_and_stay_bounded() {
        let log = ImpressionLog::new(4);
        let shown = |user: Option<&str>| Impression {
            user: user.map(Into::into),
            segment: "global".into(),
            shown: vec![(Arc::from("a"), [0.0; FEATURES])],
            lead: None,
        };
        log.record("alice's".into(), shown(Some("alice")));
        assert!(log.reward("alice's", "mallory", "a", 1.0).is_none());
        assert!(log.reward("alice's", "alice", "a", 1.0).is_some());
        log.record("shared".into(), shown(None));
        let counted = (0..MAX_REWARDS_PER_IMPRESSION + 50)
            .filter(|u| log.reward("shared", &format!("u{u}"), "a", 1.0).is_some())
            .count();
        assert_eq!(counted, MAX_REWARDS_PER_IMPRESSION);
    }

    #[test]
    fn forgetting_a_user_drops_their_impressions_and_their_rewards() {
        let log = ImpressionLog::new(3);
        let shown = |user: Option<&str>| Impression {
            user: user.map(Into::into),
            segment: "global".into(),
            shown: vec![(Arc::from("a"), [0.0; FEATURES])],
            lead: None,
        };
        log.record("mine".into(), shown(Some("u1")));
        log.record("theirs".into(), shown(Some("u2")));
        log.record("shared".into(), shown(None));
        assert!(log.reward("shared", "u1", "a", 1.0).is_some());
        assert!(
            log.reward("shared", "u1", "a", 1.0).is_none(),
            "once per user"
        );
        assert_eq!(log.forget_user("u1"), 1);
        assert_eq!(log.len(), 2);
        assert!(log.reward("mine", "u1", "a", 1.0).is_none(), "dropped");
        assert!(
            log.reward("shared", "u1", "a", 1.0).is_some(),
            "u1's mark on the shared impression is gone"
        );
        assert!(log.reward("theirs", "u2", "a", 1.0).is_some());
        assert_eq!(log.forget_user("u1"), 0);
        // Still bounded, oldest first: "theirs" goes when two more arrive.
        log.record("r4".into(), shown(None));
        log.record("r5".into(), shown(None));
        assert_eq!(log.len(), 3);
        assert!(log.reward("theirs", "u3", "a", 1.0).is_none());
        assert!(log.reward("shared", "u3", "a", 1.0).is_some());
    }

    #[test]
    fn solver_matches_a_known_system() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let x = solve_spd(&a, &[2.0, 1.0]).unwrap();
        assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12, "{x:?}");
    }

    #[test]
    fn before_feedback_it_ranks_like_the_static_ranker() {
        let policy = Policy::new(settings(0.0), STATIC, 1);
        let mut sim = Sim(3);
        for _ in 0..100 {
            let c = sim.candidates();
            assert_eq!(policy.decide("global", &c).chosen, 0);
        }
    }

    #[test]
    fn bandit_learns_to_beat_the_static_ranker_on_a_simulated_population() {
        let policy = Policy::new(settings(0.1), STATIC, 7);
        let mut sim = Sim(11);
        let rounds = 4_000;
        let (mut learned, mut fixed) = (0.0, 0.0);
        for round in 0..rounds {
            let c = sim.candidates();
            let d = policy.decide("global", &c);
            let reward = f32::from(sim.next() < true_like_probability(&c[d.chosen]));
            policy.update("global", &c[d.chosen], reward);
            // The static ranker always leads with its first candidate.
            if round >= rounds / 2 {
                learned += f64::from(reward);
                fixed += true_like_probability(&c[0]);
            }
        }
        let (learned, fixed) = (learned / (rounds / 2) as f64, fixed / (rounds / 2) as f64);
        assert!(
            learned > fixed + 0.03,
            "bandit {learned:.3} vs static {fixed:.3}"
        );
        let w = policy.weights("global");
        assert!(w[3] > w[2], "freshness learned above popularity: {w:?}");
    }

    #[test]
    fn exploration_share_and_propensities_are_as_configured() {
        let policy = Policy::new(settings(0.2), STATIC, 5);
        let mut sim = Sim(2);
        let n = 20_000;
        let mut explored = 0;
        for _ in 0..n {
            let c = sim.candidates();
            let d = policy.decide("global", &c);
            explored += usize::from(d.explored);
            let expected = if d.chosen == 0 {
                0.8 + 0.2 / 5.0
            } else {
                0.2 / 5.0
            };
            assert!((d.propensity - expected).abs() < 1e-6);
        }
        let share = explored as f64 / n as f64;
        assert!((share - 0.2).abs() < 0.015, "exploration share {share}");
    }

    #[test]
    fn frozen_policy_does_not_learn() {
        let mut s = settings(0.1);
        s.frozen = true;
        let policy = Policy::new(s, STATIC, 1);
        policy.update("global", &[1.0; FEATURES], 1.0);
        assert_eq!(policy.total_updates(), 0);
        assert_eq!(policy.weights("global"), STATIC);
    }

    #[test]
    fn state_persists_and_restores_exactly() {
        let policy = Policy::new(settings(0.1), STATIC, 9);
        let mut sim = Sim(4);
        for i in 0..500 {
            let c = sim.candidates();
            let segment = if i % 2 == 0 {
                "device:mobile"
            } else {
                "global"
            };
            policy.update(segment, &c[i % 5], (i % 3) as f32 - 1.0);
        }
        let dir = std::env::temp_dir().join(format!("policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy.json");
        policy.save(&path).unwrap();
        let restored = Policy::new(settings(0.1), STATIC, 9);
        assert!(restored.restore(&path).unwrap());
        for segment in ["device:mobile", "global", "never-seen"] {
            assert_eq!(restored.weights(segment), policy.weights(segment));
        }
        assert_eq!(
            *restored.segments.read().unwrap(),
            *policy.segments.read().unwrap()
        );
        assert!(!Policy::new(settings(0.1), STATIC, 9)
            .restore(&dir.join("missing.json"))
            .unwrap());
        std::fs::write(&path, b"{\"features\":[\"x\"],\"segments\":{}}").unwrap();
        assert!(
            restored.restore(&path).is_err(),
            "other features are refused"
        );
    }

    #[test]
    fn ips_of_the_greedy_policy_matches_its_true_reward() {
        // Log with ε-greedy exploration around a fixed model, then estimate, from that log
        // alone, the reward of always choosing the greedy candidate.
        let mut s = settings(0.3);
        s.frozen = true;
        let policy = Policy::new(s, STATIC, 21);
        let mut sim = Sim(17);
        let mut log = Vec::new();
        let mut greedy_truth = 0.0;
        let n = 30_000;
        for _ in 0..n {
            let c = sim.candidates();
            let d = policy.decide("global", &c);
            let reward = f32::from(sim.next() < true_like_probability(&c[d.chosen]));
            greedy_truth += true_like_probability(&c[policy.greedy("global", &c)]);
            log.push(LoggedDecision {
                segment: "global".into(),
                candidates: c,
                chosen: d.chosen,
                propensity: d.propensity,
                reward,
            });
        }
        let truth = greedy_truth / n as f64;
        let estimate = ips(&log, |seg, c| policy.greedy(seg, c));
        assert!(
            (estimate.ips - truth).abs() < 0.02,
            "{estimate:?} vs {truth}"
        );
        assert!(
            (estimate.snips - truth).abs() < 0.02,
            "{estimate:?} vs {truth}"
        );
        // And a different policy (lead with the freshest) is estimated near its own truth.
        let freshest = |_: &str, c: &[Features]| argmax(c.iter().take(5).map(|x| f64::from(x[3])));
        let mut sim = Sim(17);
        let fresh_truth = (0..n)
            .map(|_| {
                let c = sim.candidates();
                sim.next();
                true_like_probability(&c[freshest("global", &c)])
            })
            .sum::<f64>()
            / n as f64;
        let fresh_estimate = ips(&log, freshest);
        assert!(
            (fresh_estimate.snips - fresh_truth).abs() < 0.03,
            "{fresh_estimate:?} vs {fresh_truth}"
        );
        assert!(fresh_truth > truth, "the fresher policy really is better");
        // The logging policy itself, evaluated with its own propensities, earns what it
        // was observed to earn.
        let logging = ips_stochastic(&log, |_, c, chosen| {
            propensity(chosen, policy.greedy("global", c), 0.3, c.len().min(5))
        });
        assert!((logging - observed_reward(&log)).abs() < 1e-9);
    }
}
