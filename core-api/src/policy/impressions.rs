//! What was shown to whom: a bounded log of recent responses, so that a later event can be
//! attributed to the impression (and features) it rewards, once per user, and the lead
//! decisions can be replayed for off-policy evaluation.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use super::off_policy::LoggedDecision;
use super::Features;

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
#[derive(Debug, Clone, PartialEq)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{linear_choice, FEATURES};

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
}
