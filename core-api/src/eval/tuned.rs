//! The baselines of `reco-eval`, each tuned on a validation split before it is scored on
//! the test split: popularity, item-kNN, RP3β, sparse EASE (the engine's collaborative
//! model alone), EASE, implicit ALS, first-order next-item transitions, and a blend of ALS
//! and transitions.

use std::collections::{HashMap, HashSet};

use super::baselines::{top_k, AlsParams, Ease, ImplicitAls};
use super::{hit_at_k, is_positive, ndcg_at_k, ItemKnn, TestUser};
use crate::learn::collab::CollabMethod;
use crate::learn::{CollabParams, ItemNeighbours, TransitionParams, Transitions};
use crate::store::Interaction;

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
struct Tuned<S> {
    lists: TunedLists,
    setting: S,
}

struct Prepared {
    /// Positive items per user, oldest first, without repeats.
    positives: HashMap<String, Vec<u32>>,
    /// Every training item per user.
    seen: HashMap<String, HashSet<u32>>,
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

    fn users(&self, p: &Prepared) -> Vec<Vec<u32>> {
        let mut users: Vec<(&String, &Vec<u32>)> = p.positives.iter().collect();
        users.sort_by(|a, b| a.0.cmp(b.0));
        users.into_iter().map(|(_, h)| h.clone()).collect()
    }

    /// Lists from per-user scores over every item (`None` = no scores: popularity), filled
    /// from popularity when fewer than `k` items score.
    fn lists(
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

    fn ndcg(&self, lists: &[Vec<String>], k: usize) -> f64 {
        let n = self.tests.len().max(1) as f64;
        self.tests
            .iter()
            .zip(lists)
            .map(|(t, l)| ndcg_at_k(l, &t.held_out, k) + 1e-3 * hit_at_k(l, &t.held_out, k))
            .sum::<f64>()
            / n
    }

    /// Replays the training positives in time order into transitions.
    fn transitions(&self, params: TransitionParams) -> Transitions {
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

    fn transition_scores(&self, t: &Transitions, history: &[u32]) -> Vec<f32> {
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

/// A family of settings of one baseline: `run(setting, split)` gives lists for the
/// split's test users.
struct Family<'s, S> {
    name: &'s str,
    settings: Vec<(String, S)>,
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

/// [`tune`], keeping only the lists.
fn tune_lists<S>(
    family: Family<'_, S>,
    validation: &SplitData<'_>,
    test: &SplitData<'_>,
    k: usize,
    run: &dyn Fn(&S, &SplitData<'_>) -> Vec<Vec<String>>,
    progress: &(dyn Fn(&str) + Sync),
) -> TunedLists {
    tune(family, validation, test, k, run, progress).lists
}

/// Every baseline, tuned on `validation`, with its lists on `test`.
pub fn tuned_baselines(
    validation: &SplitData<'_>,
    test: &SplitData<'_>,
    k: usize,
    progress: &(dyn Fn(&str) + Sync),
) -> Vec<TunedLists> {
    let pv = validation.prepare();
    let pt = test.prepare();
    let prepared = |d: &SplitData<'_>| {
        if std::ptr::eq(d, validation) {
            &pv
        } else {
            &pt
        }
    };
    let mut out = Vec::new();

    out.push(TunedLists {
        name: "popularity".into(),
        lists: test.lists(&pt, k, &|_| None),
        validation_ndcg: validation.ndcg(&validation.lists(&pv, k, &|_| None), k),
    });

    let knn = Family {
        name: "item-kNN",
        settings: [20usize, 50, 200]
            .into_iter()
            .map(|n| (format!("k={n}"), n))
            .collect(),
    };
    out.push(tune_lists(
        knn,
        validation,
        test,
        k,
        &|&n, d| {
            let p = prepared(d);
            let positives: Vec<(&str, &str)> = d
                .train
                .iter()
                .filter(|e| is_positive(e.action))
                .map(|e| (e.user_id.as_str(), e.item_id.as_str()))
                .collect();
            let model = ItemKnn::fit(d.catalogue, positives.iter().copied(), n);
            d.tests
                .iter()
                .map(|t| {
                    let name = |&i: &u32| d.catalogue[i as usize].as_str();
                    let history: Vec<&str> = p
                        .positives
                        .get(&t.user_id)
                        .map(|h| h.iter().map(name).collect())
                        .unwrap_or_default();
                    let seen: HashSet<&str> = p
                        .seen
                        .get(&t.user_id)
                        .map(|s| s.iter().map(name).collect())
                        .unwrap_or_default();
                    model.recommend(&history, &seen, k)
                })
                .collect()
        },
        progress,
    ));

    // RP3β and sparse EASE: the engine's item-item learner, every item scored.
    let item_item = |params: &CollabParams, d: &SplitData<'_>| {
        let p = prepared(d);
        let model = ItemNeighbours::train(d.catalogue.len(), &d.users(p), params);
        d.lists(p, k, &|h| {
            Some(item_item_scores(&model, h, d.catalogue.len()))
        })
    };
    let rp3 = Family {
        name: "RP3β",
        settings: [(1.0f32, 0.0f32), (1.0, 0.3), (1.0, 0.6), (0.6, 0.3)]
            .into_iter()
            .map(|(alpha, beta)| {
                (
                    format!("α={alpha}, β={beta}"),
                    CollabParams {
                        method: CollabMethod::Rp3Beta,
                        alpha,
                        beta,
                        ..CollabParams::default()
                    },
                )
            })
            .collect(),
    };
    out.push(tune_lists(rp3, validation, test, k, &item_item, progress));

    let sparse_ease = Family {
        name: "sparse EASE, 100 neighbours (the engine's collaborative model alone)",
        settings: [50.0f32, 200.0, 500.0]
            .into_iter()
            .map(|lambda| {
                (
                    format!("λ={lambda}"),
                    CollabParams {
                        lambda,
                        ..CollabParams::default()
                    },
                )
            })
            .collect(),
    };
    out.push(tune_lists(
        sparse_ease,
        validation,
        test,
        k,
        &item_item,
        progress,
    ));

    let ease = Family {
        name: "EASE",
        settings: [10.0f32, 50.0, 200.0, 500.0]
            .into_iter()
            .map(|l| (format!("λ={l}"), l))
            .collect(),
    };
    out.push(tune_lists(
        ease,
        validation,
        test,
        k,
        &|&lambda, d| {
            let p = prepared(d);
            let model = Ease::fit(d.catalogue.len(), &d.users(p), lambda);
            d.lists(p, k, &|h| (!h.is_empty()).then(|| model.scores(h)))
        },
        progress,
    ));

    let als_settings: Vec<(String, AlsParams)> =
        [(0.01f32, 2.0f32), (0.1, 10.0), (0.1, 40.0), (1.0, 10.0)]
            .into_iter()
            .map(|(regularization, alpha)| {
                (
                    format!("64 factors, λ={regularization}, α={alpha}"),
                    AlsParams {
                        factors: 64,
                        regularization,
                        alpha,
                        ..AlsParams::default()
                    },
                )
            })
            .collect();
    let als = tune(
        Family {
            name: "implicit ALS",
            settings: als_settings,
        },
        validation,
        test,
        k,
        &|params, d| {
            let p = prepared(d);
            let model = ImplicitAls::fit(d.catalogue.len(), &d.users(p), params);
            d.lists(p, k, &|h| (!h.is_empty()).then(|| model.scores(h)))
        },
        progress,
    );
    let als_params = als.setting;
    out.push(als.lists);

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
    let transitions = tune(
        Family {
            name: "next-item transitions",
            settings: transition_settings,
        },
        validation,
        test,
        k,
        &|&params, d| {
            let p = prepared(d);
            let t = d.transitions(params);
            d.lists(p, k, &|h| Some(d.transition_scores(&t, h)))
        },
        progress,
    );
    let transition_params = transitions.setting;
    out.push(transitions.lists);

    let blend = Family {
        name: "ALS + transitions blend",
        settings: [0.2f32, 0.4, 0.6, 0.8]
            .into_iter()
            .map(|w| (format!("ALS weight {w}"), w))
            .collect(),
    };
    // The blend reuses each side's tuned setting; only the weight is tuned.
    let fitted: Vec<(ImplicitAls, Transitions)> = [validation, test]
        .into_iter()
        .map(|d| {
            (
                ImplicitAls::fit(d.catalogue.len(), &d.users(prepared(d)), &als_params),
                d.transitions(transition_params),
            )
        })
        .collect();
    out.push(tune_lists(
        blend,
        validation,
        test,
        k,
        &|&w, d| {
            let p = prepared(d);
            let (als, t) = &fitted[usize::from(!std::ptr::eq(d, validation))];
            d.lists(p, k, &|h| {
                if h.is_empty() {
                    return None;
                }
                let a = normalised(als.scores(h));
                let s = normalised(d.transition_scores(t, h));
                Some(
                    a.iter()
                        .zip(&s)
                        .map(|(a, s)| w * a + (1.0 - w) * s)
                        .collect(),
                )
            })
        },
        progress,
    ));
    out
}

/// Scores of every item from an item-item model and a binary history.
fn item_item_scores(model: &ItemNeighbours, history: &[u32], n: usize) -> Vec<f32> {
    let mut s = HashMap::new();
    let history: Vec<(u32, f32)> = history.iter().map(|&i| (i, 1.0)).collect();
    model.score_into(&history, &mut s);
    let mut out = vec![0f32; n];
    for (i, v) in s {
        out[i as usize] = v;
    }
    out
}

/// Scores divided by the largest (negatives clipped to 0).
fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let max = v.iter().copied().fold(0.0, f32::max);
    if max > 0.0 {
        v.iter_mut().for_each(|x| *x = x.max(0.0) / max);
    }
    v
}
