//! First-order next-item transitions (the engine's own transition model fitted on the
//! training positives in time order), the window and decay tuned on validation.

use std::collections::HashMap;

use core_api::learn::{TransitionParams, Transitions};

use crate::data::is_positive;
use crate::tuned::{Family, SplitData, Tuned, Tuning};

impl SplitData<'_> {
    /// Replays the training positives in time order into transitions.
    pub(crate) fn transitions(&self, params: TransitionParams) -> Transitions {
        let mut t = Transitions::new(params);
        let mut recent: HashMap<&str, Vec<u32>> = HashMap::new();
        for e in &self.train {
            let Some(&i) = self.index.get(&e.item_id) else {
                continue;
            };
            if !is_positive(e.action) {
                continue;
            }
            let r = recent.entry(e.user_id.as_str()).or_default();
            t.record(r, i);
            r.insert(0, i);
            r.truncate(params.window);
        }
        t
    }

    pub(crate) fn transition_scores(&self, t: &Transitions, history: &[u32]) -> Vec<f32> {
        let recent: Vec<u32> = history.iter().rev().copied().collect();
        let mut s = HashMap::new();
        t.score_into(&recent, &mut s);
        let mut out = vec![0f32; self.catalogue.len()];
        for (i, v) in s {
            out[i as usize] = v;
        }
        out
    }
}

/// Every window (1, 2, 3, 5) with every decay (0.3, 0.6, 1); window 1 has no decay. The
/// chosen setting is returned too: the ALS + transitions blend reuses it.
pub(crate) fn tuned_transitions(t: &Tuning<'_>) -> Tuned<TransitionParams> {
    let k = t.k;
    let mut transition_settings = Vec::new();
    for window in [1usize, 2, 3, 5] {
        for decay in [0.3f32, 0.6, 1.0] {
            if window == 1 && decay != 1.0 {
                continue;
            }
            transition_settings.push((
                format!("window {window}, decay {decay}"),
                TransitionParams {
                    window,
                    decay,
                    max_successors: 1_000,
                },
            ));
        }
    }
    t.tune(
        Family {
            name: "next-item transitions",
            settings: transition_settings,
        },
        &|&params, d| {
            let p = t.prepared(d);
            let tr = d.transitions(params);
            d.lists(p, k, &|h| Some(d.transition_scores(&tr, h)))
        },
    )
}
