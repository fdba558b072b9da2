//! Off-policy evaluation: how well another policy would have done, estimated from the
//! logged ε-greedy decisions and their known propensities (IPS and self-normalised IPS).

use serde::{Deserialize, Serialize};

use super::Features;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::{settings, true_like_probability, Sim, STATIC};
    use crate::policy::{argmax, propensity, Policy};

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
