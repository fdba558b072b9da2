//! The bandit's behaviour on a simulated population, and the simulation itself, which the
//! persistence and off-policy tests share.

use super::*;

pub(super) fn settings(epsilon: f32) -> PolicySettings {
    PolicySettings {
        epsilon,
        top_k: 5,
        prior_strength: 5.0,
        frozen: false,
    }
}

pub(super) const STATIC: Features = [0.55, 0.15, 0.12, 0.05, 0.13, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];

/// A population that, unlike the static ranker, mostly cares about freshness and
/// quality: reward probability of an item with features `x`.
pub(super) fn true_like_probability(x: &Features) -> f64 {
    (0.05 + 0.2 * f64::from(x[0]) + 0.5 * f64::from(x[3]) + 0.25 * f64::from(x[4])).clamp(0.0, 1.0)
}

pub(super) struct Sim(pub(super) u64);
impl Sim {
    pub(super) fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Candidates as the static ranker would order them (by its own score).
    pub(super) fn candidates(&mut self) -> Vec<Features> {
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
