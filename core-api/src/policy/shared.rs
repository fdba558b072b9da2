//! Learning shared by the routers of a cluster. The model's state is a sum over observations
//! (`A = λI + Σ x xᵀ`, `b = λ θ₀ + Σ r x`), so each router keeps the sums of what it observed
//! itself ([`SegmentStats`]), publishes them under its own name, and serves the prior plus
//! every router's sums: no router's learning overwrites another's, and merging twice is
//! harmless.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Features, Policy, SegmentModel, FEATURES};

/// The sums of one writer's observations in one segment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentStats {
    /// `Σ x xᵀ`, row-major, `FEATURES²` values (empty before the first observation).
    pub xx: Vec<f64>,
    /// `Σ r x`.
    pub rx: Vec<f64>,
    pub updates: u64,
}

impl SegmentStats {
    pub(super) fn observe(&mut self, x: &Features, reward: f32) {
        self.ensure_shape();
        for i in 0..FEATURES {
            for j in 0..FEATURES {
                self.xx[i * FEATURES + j] += f64::from(x[i]) * f64::from(x[j]);
            }
            self.rx[i] += f64::from(reward) * f64::from(x[i]);
        }
        self.updates += 1;
    }

    /// Adds another writer's sums to these.
    pub fn add(&mut self, other: &SegmentStats) {
        if !other.is_valid() || other.xx.is_empty() {
            return;
        }
        self.ensure_shape();
        self.xx.iter_mut().zip(&other.xx).for_each(|(a, b)| *a += b);
        self.rx.iter_mut().zip(&other.rx).for_each(|(a, b)| *a += b);
        self.updates += other.updates;
    }

    /// Whether the sums have this build's shape (a writer with other features is ignored).
    pub fn is_valid(&self) -> bool {
        (self.xx.is_empty() && self.rx.is_empty())
            || (self.xx.len() == FEATURES * FEATURES
                && self.rx.len() == FEATURES
                && self.xx.iter().chain(&self.rx).all(|v| v.is_finite()))
    }

    fn ensure_shape(&mut self) {
        if self.xx.is_empty() {
            self.xx = vec![0.0; FEATURES * FEATURES];
            self.rx = vec![0.0; FEATURES];
        }
    }
}

impl Policy {
    /// What this process has observed itself, per segment (what it publishes to the others).
    pub fn own_stats(&self) -> HashMap<String, SegmentStats> {
        self.own.lock().expect("policy lock").clone()
    }

    /// Observations made by this process so far.
    pub fn own_updates(&self) -> u64 {
        let own = self.own.lock().expect("policy lock");
        own.values().map(|s| s.updates).sum()
    }

    /// Serves the prior plus `others` (every other writer's sums, added up) plus this
    /// process's own observations. A frozen policy keeps its model.
    pub fn merge(&self, others: &HashMap<String, SegmentStats>) {
        if self.settings.frozen {
            return;
        }
        let mut segments = self.segments.write().expect("policy lock");
        let own = self.own.lock().expect("policy lock");
        let names: std::collections::HashSet<&String> = others.keys().chain(own.keys()).collect();
        let mut merged = HashMap::with_capacity(names.len());
        for name in names {
            let mut total = others.get(name).cloned().unwrap_or_default();
            if let Some(mine) = own.get(name) {
                total.add(mine);
            }
            let mut model = SegmentModel::new(&self.prior, self.settings.prior_strength);
            if total.xx.len() == FEATURES * FEATURES {
                model.a.iter_mut().zip(&total.xx).for_each(|(a, x)| *a += x);
                model.b.iter_mut().zip(&total.rx).for_each(|(b, r)| *b += r);
                model.solve();
            }
            model.updates = total.updates;
            merged.insert(name.clone(), model);
        }
        *segments = merged;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::{settings, Sim, STATIC};

    /// Two routers, each seeing half of the rewards and merging the other's sums, serve
    /// what one process that saw all of them serves.
    #[test]
    fn merged_routers_learn_what_one_process_learns() {
        let single = Policy::new(settings(0.1), STATIC, 1);
        let routers = [
            Policy::new(settings(0.1), STATIC, 2),
            Policy::new(settings(0.1), STATIC, 3),
        ];
        let mut sim = Sim(7);
        for i in 0..400 {
            let c = sim.candidates();
            let segment = ["global", "device:tv"][i % 2];
            let reward = if sim.next() < 0.4 { 1.0 } else { -0.5 };
            single.update(segment, &c[i % 5], reward);
            routers[(i / 3) % 2].update(segment, &c[i % 5], reward);
        }
        for (me, other) in [(0, 1), (1, 0)] {
            routers[me].merge(&routers[other].own_stats());
            // Merging again (the next sync round) changes nothing.
            routers[me].merge(&routers[other].own_stats());
        }
        for router in &routers {
            assert_eq!(router.total_updates(), 400);
            for segment in ["global", "device:tv"] {
                let (got, want) = (router.weights(segment), single.weights(segment));
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-4, "{segment}: {got:?} vs {want:?}");
                }
            }
        }
        assert_eq!(routers[0].own_updates() + routers[1].own_updates(), 400);
        // Without the other's sums a router serves its own half only.
        let alone = Policy::new(settings(0.1), STATIC, 4);
        alone.merge(&HashMap::new());
        assert_eq!(alone.total_updates(), 0);
        assert_eq!(alone.weights("global"), STATIC);
    }

    #[test]
    fn sums_of_another_shape_are_ignored() {
        let mut total = SegmentStats::default();
        let wrong = SegmentStats {
            xx: vec![1.0; 4],
            rx: vec![1.0; 2],
            updates: 9,
        };
        assert!(!wrong.is_valid());
        total.add(&wrong);
        assert_eq!(total, SegmentStats::default());
        let mut bad = SegmentStats::default();
        bad.observe(&[1.0; FEATURES], 1.0);
        bad.rx[0] = f64::NAN;
        assert!(!bad.is_valid());
    }

    #[test]
    fn a_frozen_policy_keeps_its_model() {
        let mut frozen_settings = settings(0.1);
        frozen_settings.frozen = true;
        let frozen = Policy::new(frozen_settings, STATIC, 1);
        let mut stats = SegmentStats::default();
        stats.observe(&[1.0; FEATURES], 1.0);
        frozen.merge(&HashMap::from([("global".to_string(), stats)]));
        assert_eq!(frozen.total_updates(), 0);
    }
}
