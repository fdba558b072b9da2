//! Tuning on validation: every baseline's settings are tried on a validation split (the
//! same leave-last-out applied to the training events), the best by NDCG@k is refitted on
//! the test split's training events and its lists kept. The families and their grids live
//! in [`crate::baselines`]; [`tuned_baselines`] runs them all, in the order of the report.

use std::collections::{HashMap, HashSet};

use core_api::store::Interaction;

use crate::baselines::{als, blend, ease, knn, popularity, top_k, transitions};
use crate::data::{is_positive, TestUser};
use crate::metrics::{hit_at_k, ndcg_at_k};

/// One split's view of the data, items as indices into the catalogue.
pub struct SplitData<'a> {
    pub catalogue: &'a [String],
    pub index: &'a HashMap<String, u32>,
    /// Training interactions, time-ordered.
    pub train: Vec<&'a Interaction>,
    pub tests: &'a [TestUser],
}

/// A tuned baseline: its name with the chosen setting, and its lists on the test split.
pub struct TunedLists {
    pub name: String,
    pub lists: Vec<Vec<String>>,
    /// Validation NDCG@k of the chosen setting.
    pub validation_ndcg: f64,
}

/// A tuned method and the setting chosen for it.
pub(crate) struct Tuned<S> {
    pub(crate) lists: TunedLists,
    pub(crate) setting: S,
}

pub(crate) struct Prepared {
    /// Positive items per user, oldest first, without repeats.
    pub(crate) positives: HashMap<String, Vec<u32>>,
    /// Every training item per user.
    pub(crate) seen: HashMap<String, HashSet<u32>>,
    popularity: Vec<u32>,
}

impl SplitData<'_> {
    fn prepare(&self) -> Prepared {
        let mut positives: HashMap<String, Vec<u32>> = HashMap::new();
        let mut seen: HashMap<String, HashSet<u32>> = HashMap::new();
        let mut counts = vec![0usize; self.catalogue.len()];
        for e in &self.train {
            let Some(&i) = self.index.get(&e.item_id) else {
                continue;
            };
            seen.entry(e.user_id.clone()).or_default().insert(i);
            if is_positive(e.action) {
                counts[i as usize] += 1;
                let list = positives.entry(e.user_id.clone()).or_default();
                if !list.contains(&i) {
                    list.push(i);
                }
            }
        }
        let mut popularity: Vec<u32> = (0..self.catalogue.len() as u32).collect();
        popularity.sort_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));
        Prepared {
            positives,
            seen,
            popularity,
        }
    }

    pub(crate) fn users(&self, p: &Prepared) -> Vec<Vec<u32>> {
        let mut users: Vec<(&String, &Vec<u32>)> = p.positives.iter().collect();
        users.sort_by(|a, b| a.0.cmp(b.0));
        users.into_iter().map(|(_, h)| h.clone()).collect()
    }

    /// Lists from per-user scores over every item (`None` = no scores: popularity), filled
    /// from popularity when fewer than `k` items score.
    pub(crate) fn lists(
        &self,
        p: &Prepared,
        k: usize,
        score: &dyn Fn(&[u32]) -> Option<Vec<f32>>,
    ) -> Vec<Vec<String>> {
        let empty = HashSet::new();
        self.tests
            .iter()
            .map(|t| {
                let seen = p.seen.get(&t.user_id).unwrap_or(&empty);
                let history = p.positives.get(&t.user_id).map_or(&[][..], Vec::as_slice);
                let mut list: Vec<u32> = match score(history) {
                    Some(scores) => {
                        let mut exclude = seen.clone();
                        for (i, s) in scores.iter().enumerate() {
                            if *s <= 0.0 {
                                exclude.insert(i as u32);
                            }
                        }
                        top_k(&scores, &exclude, k)
                    }
                    None => Vec::new(),
                };
                for &i in &p.popularity {
                    if list.len() >= k {
                        break;
                    }
                    if !seen.contains(&i) && !list.contains(&i) {
                        list.push(i);
                    }
                }
                list.into_iter()
                    .map(|i| self.catalogue[i as usize].clone())
                    .collect()
            })
            .collect()
    }

    pub(crate) fn ndcg(&self, lists: &[Vec<String>], k: usize) -> f64 {
        let n = self.tests.len().max(1) as f64;
        self.tests
            .iter()
            .zip(lists)
            .map(|(t, l)| ndcg_at_k(l, &t.held_out, k) + 1e-3 * hit_at_k(l, &t.held_out, k))
            .sum::<f64>()
            / n
    }
}

/// A family of settings of one baseline: `run(setting, split)` gives lists for the
/// split's test users.
pub(crate) struct Family<'s, S> {
    pub(crate) name: &'s str,
    pub(crate) settings: Vec<(String, S)>,
}

fn tune<S>(
    family: Family<'_, S>,
    validation: &SplitData<'_>,
    test: &SplitData<'_>,
    k: usize,
    run: &dyn Fn(&S, &SplitData<'_>) -> Vec<Vec<String>>,
    progress: &(dyn Fn(&str) + Sync),
) -> Tuned<S> {
    let mut best: Option<(f64, String, S)> = None;
    for (label, setting) in family.settings {
        let ndcg = validation.ndcg(&run(&setting, validation), k);
        progress(&format!(
            "  validation {} ({label}): {ndcg:.4}",
            family.name
        ));
        if best.as_ref().is_none_or(|b| ndcg > b.0) {
            best = Some((ndcg, label, setting));
        }
    }
    let (validation_ndcg, label, setting) = best.expect("at least one setting");
    Tuned {
        lists: TunedLists {
            name: format!("{} ({label})", family.name),
            lists: run(&setting, test),
            validation_ndcg,
        },
        setting,
    }
}

/// Both splits, prepared once, and what every family's tuning shares.
pub(crate) struct Tuning<'t> {
    pub(crate) validation: &'t SplitData<'t>,
    pub(crate) test: &'t SplitData<'t>,
    validation_prepared: Prepared,
    test_prepared: Prepared,
    /// Cut-off of the lists and of validation NDCG.
    pub(crate) k: usize,
    progress: &'t (dyn Fn(&str) + Sync),
}

impl<'t> Tuning<'t> {
    fn new(
        validation: &'t SplitData<'t>,
        test: &'t SplitData<'t>,
        k: usize,
        progress: &'t (dyn Fn(&str) + Sync),
    ) -> Self {
        let validation_prepared = validation.prepare();
        let test_prepared = test.prepare();
        Tuning {
            validation,
            test,
            validation_prepared,
            test_prepared,
            k,
            progress,
        }
    }

    /// The prepared view of `d`, which is one of the two splits.
    pub(crate) fn prepared(&self, d: &SplitData<'_>) -> &Prepared {
        if std::ptr::eq(d, self.validation) {
            &self.validation_prepared
        } else {
            &self.test_prepared
        }
    }

    /// [`tune`] on these splits.
    pub(crate) fn tune<S>(
        &self,
        family: Family<'_, S>,
        run: &dyn Fn(&S, &SplitData<'_>) -> Vec<Vec<String>>,
    ) -> Tuned<S> {
        tune(
            family,
            self.validation,
            self.test,
            self.k,
            run,
            self.progress,
        )
    }

    /// [`Tuning::tune`], keeping only the lists.
    pub(crate) fn tune_lists<S>(
        &self,
        family: Family<'_, S>,
        run: &dyn Fn(&S, &SplitData<'_>) -> Vec<Vec<String>>,
    ) -> TunedLists {
        self.tune(family, run).lists
    }
}

/// Every baseline, tuned on `validation`, with its lists on `test`: popularity, item-kNN,
/// RP3β, sparse EASE, EASE, implicit ALS, next-item transitions and the ALS + transitions
/// blend (which reuses the settings chosen for its two sides).
pub fn tuned_baselines(
    validation: &SplitData<'_>,
    test: &SplitData<'_>,
    k: usize,
    progress: &(dyn Fn(&str) + Sync),
) -> Vec<TunedLists> {
    let t = Tuning::new(validation, test, k, progress);
    let mut out = vec![
        popularity::tuned_popularity(&t),
        knn::tuned_item_knn(&t),
        knn::tuned_rp3(&t),
        ease::tuned_sparse_ease(&t),
        ease::tuned_ease(&t),
    ];
    let als = als::tuned_als(&t);
    let als_params = als.setting;
    out.push(als.lists);
    let transitions = transitions::tuned_transitions(&t);
    let transition_params = transitions.setting;
    out.push(transitions.lists);
    out.push(blend::tuned_blend(&t, &als_params, transition_params));
    out
}
