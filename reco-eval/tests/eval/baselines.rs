//! The baselines on hand-checked data, the quality priors and the engine's ablation rows;
//! and the engine's sparse EASE checked against the dense EASE baseline.

use core_api::learn::{CollabParams, ItemNeighbours};
use reco_eval::baselines::Ease;

use super::*;

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
    let a = reco_eval::random_list(&cat, &exclude, 10, 7, "u1");
    assert_eq!(a, reco_eval::random_list(&cat, &exclude, 10, 7, "u1"));
    assert_eq!(a.len(), 10);
    assert_eq!(a.iter().collect::<HashSet<_>>().len(), 10, "distinct");
    assert!(a.iter().all(|x| !exclude.contains(x.as_str())));
    assert_ne!(a, reco_eval::random_list(&cat, &exclude, 10, 8, "u1"));
    assert_ne!(a, reco_eval::random_list(&cat, &exclude, 10, 7, "u2"));
    let few = reco_eval::random_list(&cat[..5], &set(&["i00"]), 10, 7, "u1");
    assert_eq!(few.len(), 4, "only four admissible items");
}

#[test]
fn quality_priors_are_smoothed_means() {
    // Global mean (10 + 8 + 2) / 3 = 6.667. A: (18 + 5·6.667) / 7 / 10 = 0.7333;
    // B: (2 + 33.33) / 6 / 10 = 0.5889; Z (unrated): the global mean, 0.6667.
    let q = reco_eval::smoothed_quality(&ids(&["A", "B", "Z"]), [("A", 10u8), ("A", 8), ("B", 2)]);
    assert!((q["A"] - 0.7333).abs() < 1e-3);
    assert!((q["B"] - 0.5889).abs() < 1e-3);
    assert!((q["Z"] - 0.6667).abs() < 1e-3);
}

#[test]
fn ablation_switches_off_one_stage_per_row() {
    let (pinned, _) = reco_eval::without_exploration(&core_api::Config::default());
    assert_eq!(pinned.ranking, core_api::Config::default().ranking);
    assert_eq!(pinned.index, core_api::Config::default().index);
    let config = core_api::Config::default();
    let settings = reco_eval::engine_settings(&config);
    assert!(settings.len() > 1);
    let full = settings[0].clone();
    let v = reco_eval::ablation_variants(&full);
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

#[test]
fn sparse_ease_with_every_neighbour_is_ease() {
    // With N(i) = every other co-occurring item, the restricted regressions are the
    // closed-form EASE solution.
    let users: Vec<Vec<u32>> = (0..30u32)
        .map(|u| {
            (0..8u32)
                .filter(|i| (u * 7 + i * 3) % 5 < 2 || *i == u % 8)
                .collect()
        })
        .collect();
    let p = CollabParams {
        neighbours: 7,
        lambda: 5.0,
        ..CollabParams::default()
    };
    let sparse = ItemNeighbours::train(8, &users, &p);
    let dense = Ease::fit(8, &users, 5.0);
    for h in 0..8u32 {
        let mut s = HashMap::new();
        sparse.score_into(&[(h, 1.0)], &mut s);
        let d = dense.scores(&[h]);
        for i in 0..8u32 {
            let got = s.get(&i).copied().unwrap_or(0.0);
            assert!(
                (got - d[i as usize]).abs() < 1e-4,
                "{h} → {i}: {got} vs {}",
                d[i as usize]
            );
        }
    }
}
