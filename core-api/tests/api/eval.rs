//! Offline evaluation (`core_api::eval`): split, metrics and baselines on tiny hand-checked
//! data (no model), and one small end-to-end run on the real engine.

use std::collections::{HashMap, HashSet};

use core_api::eval::{self, EvalOptions, ItemKnn, Popularity, TestUser};
use core_api::store::Interaction;
use shared_types::Action;

use crate::common::*;

const EPS: f64 = 1e-4;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < EPS
}

fn ev(user: &str, item: &str, action: Action, t: i64) -> Interaction {
    Interaction {
        user_id: user.into(),
        item_id: item.into(),
        action,
        timestamp: t,
        recommendation_id: None,
    }
}

fn ids(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|x| x.to_string()).collect()
}

fn set<'a>(xs: &[&'a str]) -> HashSet<&'a str> {
    xs.iter().copied().collect()
}

// ---- split --------------------------------------------------------------------------------

fn split_events() -> Vec<Interaction> {
    use Action::*;
    vec![
        ev("u1", "A", Like, 1),     // 0
        ev("u2", "A", Like, 1),     // 1
        ev("u1", "B", Complete, 2), // 2
        ev("u1", "C", View, 3),     // 3 (not positive)
        ev("u1", "D", Like, 4),     // 4
        ev("u2", "B", Dislike, 5),  // 5
        ev("u1", "E", Like, 6),     // 6 u1's latest positive
        ev("u1", "F", Dislike, 7),  // 7 after u1's holdout: dropped
        ev("u2", "C", Like, 8),     // 8
    ]
}

#[test]
fn leave_last_out_holds_out_the_latest_positive_and_drops_what_follows() {
    let events = split_events();
    // u1 has 4 positives (A, B, D, E) >= 3: E is held out, F (after it) dropped.
    // u2 has 2 positives (A, C) < 3: all of u2 is training.
    let s = eval::leave_last_out(&events, 1, 3);
    assert_eq!(s.train, vec![0, 1, 2, 3, 4, 5, 8]);
    assert_eq!(
        s.test,
        vec![TestUser {
            user_id: "u1".into(),
            held_out: ids(&["E"])
        }]
    );
}

#[test]
fn leave_last_out_with_two_held_out_and_a_lower_threshold() {
    let events = split_events();
    // holdout 2: u1's D and E held out, training ends before D (index 4).
    let s = eval::leave_last_out(&events, 2, 4);
    assert_eq!(s.train, vec![0, 1, 2, 3, 5, 8]);
    assert_eq!(s.test[0].held_out, ids(&["D", "E"]));
    assert_eq!(s.test.len(), 1);
    // min 2 positives: u2 is tested too (C held out, u2's training A and the dislike of B).
    let s = eval::leave_last_out(&events, 1, 2);
    assert_eq!(s.train, vec![0, 1, 2, 3, 4, 5]);
    let users: Vec<&str> = s.test.iter().map(|t| t.user_id.as_str()).collect();
    assert_eq!(users, ["u1", "u2"], "test users in id order");
    assert_eq!(s.test[1].held_out, ids(&["C"]));
    // Never fewer than holdout + 1 positives, whatever the threshold says.
    let s = eval::leave_last_out(&events, 2, 0);
    assert_eq!(
        s.test.len(),
        1,
        "u2 has only 2 positives: nothing would be left to train"
    );
    // Nothing to hold out: everything is training.
    assert!(eval::leave_last_out(&events, 1, 10).test.is_empty());
    assert_eq!(eval::leave_last_out(&[], 1, 3), eval::Split::default());
}

// ---- metrics ------------------------------------------------------------------------------

#[test]
fn hit_rate_and_ndcg_by_rank() {
    let list = ids(&["x", "y", "z"]);
    assert_eq!(eval::hit_at_k(&list, &["z"], 3), 1.0);
    assert_eq!(eval::hit_at_k(&list, &["z"], 2), 0.0, "z is third");
    assert_eq!(eval::hit_at_k(&list, &["w"], 10), 0.0);
    // 1 / log2(rank + 1): rank 1 → 1, rank 2 → 1/log2(3) = 0.6309, rank 3 → 1/log2(4) = 0.5.
    assert!(close(eval::ndcg_at_k(&list, &["x"], 10), 1.0));
    assert!(close(eval::ndcg_at_k(&list, &["y"], 10), 0.6309));
    assert!(close(eval::ndcg_at_k(&list, &["z"], 10), 0.5));
    assert_eq!(eval::ndcg_at_k(&list, &["z"], 2), 0.0, "beyond the cut-off");
    // Two relevant items at ranks 1 and 3: DCG = 1 + 0.5, IDCG = 1 + 0.6309 → 0.9197.
    assert!(close(
        eval::ndcg_at_k(&ids(&["a", "x", "b"]), &["a", "b"], 10),
        1.5 / 1.6309
    ));
}

#[test]
fn metric_edge_cases() {
    let empty: Vec<String> = Vec::new();
    let none: [&str; 0] = [];
    assert_eq!(eval::hit_at_k(&empty, &["a"], 10), 0.0);
    assert_eq!(eval::ndcg_at_k(&empty, &["a"], 10), 0.0);
    assert_eq!(
        eval::ndcg_at_k(&ids(&["a"]), &none, 10),
        0.0,
        "nothing relevant"
    );
    assert_eq!(eval::hit_at_k(&ids(&["a"]), &none, 10), 0.0);
    assert_eq!(eval::hit_at_k(&ids(&["a"]), &["a"], 0), 0.0, "k = 0");
    // A relevant item listed twice counts once: still exactly 1 at rank 1.
    assert!(close(eval::ndcg_at_k(&ids(&["a", "a"]), &["a"], 10), 1.0));
    // Duplicate relevant ids are one relevant item (IDCG = 1).
    assert!(close(eval::ndcg_at_k(&ids(&["a"]), &["a", "a"], 10), 1.0));
    // A list shorter than k is fine; NDCG never exceeds 1.
    assert!(close(
        eval::ndcg_at_k(&ids(&["a", "b"]), &["a", "b"], 10),
        1.0
    ));
    assert_eq!(eval::coverage::<String>(&[], 0), 0.0);
}

fn vectors() -> HashMap<String, Vec<f32>> {
    // A ⟂ B, C halfway between them (unnormalised on purpose), D opposite A.
    [
        ("A", vec![1.0, 0.0]),
        ("B", vec![0.0, 1.0]),
        ("C", vec![1.0, 1.0]),
        ("D", vec![-1.0, 0.0]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[test]
fn coverage_and_intra_list_diversity() {
    // {A, B} ∪ {B, C} = 3 distinct of 5.
    let lists = vec![ids(&["A", "B"]), ids(&["B", "C"])];
    assert!(close(eval::coverage(&lists, 5), 0.6));
    let v = vectors();
    // Pairs: A-B 1 - 0 = 1, A-C 1 - 0.7071, B-C 1 - 0.7071 → (1 + 0.2929 * 2) / 3 = 0.5286.
    let ild = eval::intra_list_diversity(&ids(&["A", "B", "C"]), &v).unwrap();
    assert!(
        close(ild, (1.0 + 2.0 * (1.0 - 0.5f64.sqrt())) / 3.0),
        "{ild}"
    );
    assert!(close(
        eval::intra_list_diversity(&ids(&["A", "D"]), &v).unwrap(),
        2.0
    ));
    assert_eq!(eval::intra_list_diversity(&ids(&["A"]), &v), None);
    assert_eq!(
        eval::intra_list_diversity(&ids(&["A", "nope"]), &v),
        None,
        "items without a vector are skipped"
    );
}

#[test]
fn score_lists_averages_over_users() {
    let tests = vec![
        TestUser {
            user_id: "u1".into(),
            held_out: ids(&["B"]),
        },
        TestUser {
            user_id: "u2".into(),
            held_out: ids(&["A"]),
        },
    ];
    // u1: hit at rank 2 (NDCG 0.6309); u2: miss.
    let lists = vec![ids(&["A", "B"]), ids(&["C", "D"])];
    let r = eval::score_lists("m", &tests, &lists, 10, 5, &vectors());
    assert_eq!(r.users, 2);
    assert!(close(r.hr, 0.5));
    assert!(close(r.ndcg, 0.6309 / 2.0));
    assert!(close(r.coverage, 4.0 / 5.0));
    // ILD: A-B = 1; C-D = 1 - (-1/√2) = 1.7071; mean 1.3536.
    assert!(close(r.ild, (1.0 + 1.0 + 0.5f64.sqrt()) / 2.0));
    // 95% interval of p = 0.5 over 2 users: 1.96 · √(0.25 / 2).
    assert!(close(r.hr_ci95, 1.96 * (0.125f64).sqrt()));
    // At k = 1 u1's hit (rank 2) no longer counts and only A and C are recommended.
    let r1 = eval::score_lists("m", &tests, &lists, 1, 5, &vectors());
    assert_eq!((r1.hr, r1.ndcg), (0.0, 0.0));
    assert!(close(r1.coverage, 2.0 / 5.0));
}

// ---- baselines ----------------------------------------------------------------------------

/// Positive training interactions of 4 users over 5 items:
/// u1: A B C · u2: A B · u3: B C D · u4: A E.
/// Users per item: A {u1,u2,u4} 3, B {u1,u2,u3} 3, C {u1,u3} 2, D {u3} 1, E {u4} 1.
fn positives() -> Vec<(&'static str, &'static str)> {
    vec![
        ("u1", "A"),
        ("u1", "B"),
        ("u1", "C"),
        ("u2", "A"),
        ("u2", "B"),
        ("u3", "B"),
        ("u3", "C"),
        ("u3", "D"),
        ("u4", "A"),
        ("u4", "E"),
    ]
}

fn catalogue() -> Vec<String> {
    ids(&["E", "D", "C", "B", "A"])
}

#[test]
fn popularity_counts_positive_training_interactions() {
    let pop = Popularity::fit(&catalogue(), positives().iter().map(|(_, i)| *i));
    // A 3, B 3 (tie: by id), C 2, D 1, E 1.
    assert_eq!(pop.ranked(), ids(&["A", "B", "C", "D", "E"]));
    assert_eq!(pop.count("A"), 3);
    assert_eq!(pop.count("Z"), 0);
    assert_eq!(pop.recommend(&set(&["A"]), 3), ids(&["B", "C", "D"]));
    assert_eq!(
        pop.recommend(&set(&["A", "B", "C", "D"]), 3),
        ids(&["E"]),
        "fewer than k left"
    );
}

#[test]
fn item_knn_cosine_neighbours_and_scores() {
    // Co-occurrence → cosine = |Ui ∩ Uj| / √(|Ui| |Uj|):
    //   A-B 2/√9 = 0.6667, A-C 1/√6 = 0.4082, A-E 1/√3 = 0.5774,
    //   B-C 2/√6 = 0.8165, B-D 1/√3 = 0.5774, C-D 1/√2 = 0.7071 (others 0).
    // With k = 2 neighbours per item:
    //   A: B .6667, E .5774 · B: C .8165, A .6667 · C: B .8165, D .7071
    //   D: C .7071, B .5774 · E: A .5774
    let knn = ItemKnn::fit(&catalogue(), positives(), 2);
    let n = knn.neighbours("A");
    assert_eq!(n.iter().map(|(i, _)| *i).collect::<Vec<_>>(), ["B", "E"]);
    assert!(close(n[0].1, 2.0 / 3.0) && close(n[1].1, 1.0 / 3f64.sqrt()));
    let n = knn.neighbours("B");
    assert_eq!(n.iter().map(|(i, _)| *i).collect::<Vec<_>>(), ["C", "A"]);
    assert!(close(n[0].1, 2.0 / 6f64.sqrt()));
    assert_eq!(knn.neighbours("E").len(), 1);
    assert!(knn.neighbours("Z").is_empty());

    // History [C, D], both excluded: B = 0.8165 (via C) + 0.5774 (via D) = 1.3938; nothing
    // else scores, so the list is filled from popularity: A, then E.
    let scores = knn.scores(&["C", "D"], &set(&["C", "D"]));
    assert_eq!(scores.len(), 1);
    assert_eq!(scores[0].0, "B");
    assert!(close(scores[0].1, 2.0 / 6f64.sqrt() + 1.0 / 3f64.sqrt()));
    assert_eq!(
        knn.recommend(&["C", "D"], &set(&["C", "D"]), 3),
        ids(&["B", "A", "E"])
    );
    // History [A]: B .6667, E .5774, then C from popularity.
    assert_eq!(
        knn.recommend(&["A"], &set(&["A"]), 3),
        ids(&["B", "E", "C"])
    );
    // History [E, D]: C .7071 (via D), then A (via E) and B (via D) tie at 1/√3; the tie
    // goes to popularity, where A and B tie too (3 each) and A comes first by id.
    assert_eq!(
        knn.recommend(&["E", "D"], &set(&["E", "D"]), 3),
        ids(&["C", "A", "B"])
    );
    // An empty history is pure popularity.
    assert_eq!(knn.recommend(&[], &set(&["A"]), 2), ids(&["B", "C"]));
}

#[test]
fn item_knn_counts_a_repeated_pair_once() {
    let mut p = positives();
    p.push(("u1", "A"));
    let knn = ItemKnn::fit(&catalogue(), p, 2);
    assert!(close(knn.neighbours("A")[0].1, 2.0 / 3.0));
}

#[test]
fn random_floor_is_seeded_and_respects_exclusions() {
    let cat: Vec<String> = (0..50).map(|i| format!("i{i:02}")).collect();
    let exclude = set(&["i00", "i01", "i02"]);
    let a = eval::random_list(&cat, &exclude, 10, 7, "u1");
    assert_eq!(a, eval::random_list(&cat, &exclude, 10, 7, "u1"));
    assert_eq!(a.len(), 10);
    assert_eq!(a.iter().collect::<HashSet<_>>().len(), 10, "distinct");
    assert!(a.iter().all(|x| !exclude.contains(x.as_str())));
    assert_ne!(a, eval::random_list(&cat, &exclude, 10, 8, "u1"));
    assert_ne!(a, eval::random_list(&cat, &exclude, 10, 7, "u2"));
    let few = eval::random_list(&cat[..5], &set(&["i00"]), 10, 7, "u1");
    assert_eq!(few.len(), 4, "only four admissible items");
}

#[test]
fn quality_priors_are_smoothed_means() {
    // Global mean (10 + 8 + 2) / 3 = 6.667. A: (18 + 5·6.667) / 7 / 10 = 0.7333;
    // B: (2 + 33.33) / 6 / 10 = 0.5889; Z (unrated): the global mean, 0.6667.
    let q = eval::smoothed_quality(&ids(&["A", "B", "Z"]), [("A", 10u8), ("A", 8), ("B", 2)]);
    assert!((q["A"] - 0.7333).abs() < 1e-3);
    assert!((q["B"] - 0.5889).abs() < 1e-3);
    assert!((q["Z"] - 0.6667).abs() < 1e-3);
}

#[test]
fn ablation_switches_off_one_stage_per_row() {
    let (pinned, _) = eval::without_exploration(&core_api::Config::default());
    assert_eq!(pinned.ranking, core_api::Config::default().ranking);
    assert_eq!(pinned.index, core_api::Config::default().index);
    let config = core_api::Config::default();
    let settings = eval::engine_settings(&config);
    assert!(settings.len() > 1);
    let full = settings[0].clone();
    let v = eval::ablation_variants(&full);
    let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names.len(), 7, "{names:?}");
    assert_eq!(
        (&v[0].ranking, &v[0].learning),
        (&full.ranking, &full.learning)
    );
    // Each row switches off one thing and keeps the rest.
    assert_eq!(v[1].learning.collab.neighbours, 0);
    assert_eq!(v[1].learning.transitions, full.learning.transitions);
    assert_eq!(v[2].learning.transitions.window, 0);
    assert_eq!(v[2].learning.collab, full.learning.collab);
    assert_eq!(v[3].learning.ranker.trees, 0);
    assert_eq!(v[4].ranking.mmr_lambda, 1.0);
    assert_eq!(
        (v[5].ranking.graph_weight, v[5].ranking.graph_candidates),
        (0.0, 0)
    );
    assert!(!v[6].learning.enabled && full.learning.enabled);
}

// ---- end to end ---------------------------------------------------------------------------

/// The real engine on the ratings of the 200 most-rated films (~9,700 ratings, ~1,000 test
/// users, of which the first 120 are evaluated): every row is produced with sane values,
/// and a second run reuses the cached vectors and store and gives the same numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_on_a_small_catalogue_is_cached_and_deterministic() {
    let root = repo_root();
    let all =
        std::fs::read_to_string(root.join("data/movietweetings/snapshot-20k/ratings.dat")).unwrap();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for line in all.lines() {
        *counts.entry(line.split("::").nth(1).unwrap()).or_default() += 1;
    }
    let mut films: Vec<(&str, usize)> = counts.into_iter().collect();
    films.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let top: HashSet<&str> = films.iter().take(200).map(|(f, _)| *f).collect();
    let dir = temp_dir("eval");
    let ratings = dir.join("ratings.dat");
    let kept: Vec<&str> = all
        .lines()
        .filter(|l| top.contains(l.split("::").nth(1).unwrap()))
        .collect();
    std::fs::write(&ratings, kept.join("\n")).unwrap();

    let mut config = demo_config(&dir.join("unused"), 0);
    config.index.shards = 2;
    let opts = EvalOptions {
        ratings,
        catalog: root.join("data/movietweetings/catalog-movies.dat"),
        cache_dir: dir.join("cache"),
        config,
        max_users: 120,
        ablation: false,
        engine_settings: 2,
        ..EvalOptions::default()
    };
    let first = eval::run(&opts, &|_| {}).await.unwrap();
    assert_eq!(first.dataset.catalogue, 200);
    assert_eq!(first.embedded_items, 200, "first run embeds");
    assert_eq!(first.dataset.test_users, 120);
    let methods: Vec<&str> = first.rows.iter().map(|r| r.method.as_str()).collect();
    let expected = [
        "engine (",
        "popularity",
        "item-kNN (",
        "RP3β (",
        "sparse EASE",
        "EASE (",
        "implicit ALS (",
        "next-item transitions (",
        "ALS + transitions blend (",
        "random",
    ];
    assert_eq!(methods.len(), expected.len(), "{methods:?}");
    for (m, prefix) in methods.iter().zip(expected) {
        assert!(m.starts_with(prefix), "{methods:?}");
    }
    // Tuned methods report the validation score they were chosen on.
    assert!(first.rows[..9].iter().all(|r| r.validation_ndcg.is_some()));
    assert_eq!(
        first.rows[0].seen_recommended, 0,
        "never an already-seen item"
    );
    for r in &first.rows {
        assert_eq!(r.users, 120);
        for m in [r.hr, r.ndcg, r.coverage] {
            assert!((0.0..=1.0).contains(&m), "{r:?}");
        }
        assert!(r.ndcg <= r.hr + 1e-12, "{r:?}");
        assert!(r.ild > 0.0 && r.ild < 2.0, "{r:?}");
        assert!(
            r.mrr <= r.hr + 1e-12 && r.genre_ild > 0.0 && r.genre_ild <= 1.0,
            "{r:?}"
        );
    }

    let second = eval::run(&opts, &|_| {}).await.unwrap();
    assert_eq!(second.embedded_items, 0, "vectors come from the cache");
    assert_eq!(first.rows, second.rows, "same cache, same numbers");
    let table = eval::markdown_table(&second.rows, 10);
    assert!(
        table.contains(&format!("| {} | 120 |", second.rows[0].method)),
        "{table}"
    );
    let results = eval::results_markdown(&second, "reco-eval --test");
    assert!(results.contains("## Protocol") && results.contains("cores"));
    let _ = std::fs::remove_dir_all(&dir);
}
