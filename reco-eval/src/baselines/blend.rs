//! The ALS + transitions blend: each side keeps its own tuned setting, their max-normalised
//! scores are mixed and only the mixing weight is tuned on validation.

use core_api::learn::{TransitionParams, Transitions};

use super::{AlsParams, ImplicitAls};
use crate::tuned::{Family, TunedLists, Tuning};

/// The blend of the tuned ALS (`als_params`) and transitions (`transition_params`).
pub(crate) fn tuned_blend(
    t: &Tuning<'_>,
    als_params: &AlsParams,
    transition_params: TransitionParams,
) -> TunedLists {
    let k = t.k;
    let blend = Family {
        name: "ALS + transitions blend",
        settings: [0.2f32, 0.4, 0.6, 0.8]
            .into_iter()
            .map(|w| (format!("ALS weight {w}"), w))
            .collect(),
    };
    // The blend reuses each side's tuned setting; only the weight is tuned.
    let fitted: Vec<(ImplicitAls, Transitions)> = [t.validation, t.test]
        .into_iter()
        .map(|d| {
            (
                ImplicitAls::fit(d.catalogue.len(), &d.users(t.prepared(d)), als_params),
                d.transitions(transition_params),
            )
        })
        .collect();
    t.tune_lists(blend, &|&w, d| {
        let p = t.prepared(d);
        let (als, tr) = &fitted[usize::from(!std::ptr::eq(d, t.validation))];
        d.lists(p, k, &|h| {
            if h.is_empty() {
                return None;
            }
            let a = normalised(als.scores(h));
            let s = normalised(d.transition_scores(tr, h));
            Some(
                a.iter()
                    .zip(&s)
                    .map(|(a, s)| w * a + (1.0 - w) * s)
                    .collect(),
            )
        })
    })
}

/// Scores divided by the largest (negatives clipped to 0).
fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let max = v.iter().copied().fold(0.0, f32::max);
    if max > 0.0 {
        v.iter_mut().for_each(|x| *x = x.max(0.0) / max);
    }
    v
}
