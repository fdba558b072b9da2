//! The leave-last-out split and the metrics, on hand-checked data.

use super::*;

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
    let s = reco_eval::leave_last_out(&events, 1, 3);
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
    let s = reco_eval::leave_last_out(&events, 2, 4);
    assert_eq!(s.train, vec![0, 1, 2, 3, 5, 8]);
    assert_eq!(s.test[0].held_out, ids(&["D", "E"]));
    assert_eq!(s.test.len(), 1);
    // min 2 positives: u2 is tested too (C held out, u2's training A and the dislike of B).
    let s = reco_eval::leave_last_out(&events, 1, 2);
    assert_eq!(s.train, vec![0, 1, 2, 3, 4, 5]);
    let users: Vec<&str> = s.test.iter().map(|t| t.user_id.as_str()).collect();
    assert_eq!(users, ["u1", "u2"], "test users in id order");
    assert_eq!(s.test[1].held_out, ids(&["C"]));
    // Never fewer than holdout + 1 positives, whatever the threshold says.
    let s = reco_eval::leave_last_out(&events, 2, 0);
    assert_eq!(
        s.test.len(),
        1,
        "u2 has only 2 positives: nothing would be left to train"
    );
    // Nothing to hold out: everything is training.
    assert!(reco_eval::leave_last_out(&events, 1, 10).test.is_empty());
    assert_eq!(
        reco_eval::leave_last_out(&[], 1, 3),
        reco_eval::Split::default()
    );
}

// ---- metrics ------------------------------------------------------------------------------

#[test]
fn hit_rate_and_ndcg_by_rank() {
    let list = ids(&["x", "y", "z"]);
    assert_eq!(reco_eval::hit_at_k(&list, &["z"], 3), 1.0);
    assert_eq!(reco_eval::hit_at_k(&list, &["z"], 2), 0.0, "z is third");
    assert_eq!(reco_eval::hit_at_k(&list, &["w"], 10), 0.0);
    // 1 / log2(rank + 1): rank 1 → 1, rank 2 → 1/log2(3) = 0.6309, rank 3 → 1/log2(4) = 0.5.
    assert!(close(reco_eval::ndcg_at_k(&list, &["x"], 10), 1.0));
    assert!(close(reco_eval::ndcg_at_k(&list, &["y"], 10), 0.6309));
    assert!(close(reco_eval::ndcg_at_k(&list, &["z"], 10), 0.5));
    assert_eq!(
        reco_eval::ndcg_at_k(&list, &["z"], 2),
        0.0,
        "beyond the cut-off"
    );
    // Two relevant items at ranks 1 and 3: DCG = 1 + 0.5, IDCG = 1 + 0.6309 → 0.9197.
    assert!(close(
        reco_eval::ndcg_at_k(&ids(&["a", "x", "b"]), &["a", "b"], 10),
        1.5 / 1.6309
    ));
}

#[test]
fn metric_edge_cases() {
    let empty: Vec<String> = Vec::new();
    let none: [&str; 0] = [];
    assert_eq!(reco_eval::hit_at_k(&empty, &["a"], 10), 0.0);
    assert_eq!(reco_eval::ndcg_at_k(&empty, &["a"], 10), 0.0);
    assert_eq!(
        reco_eval::ndcg_at_k(&ids(&["a"]), &none, 10),
        0.0,
        "nothing relevant"
    );
    assert_eq!(reco_eval::hit_at_k(&ids(&["a"]), &none, 10), 0.0);
    assert_eq!(reco_eval::hit_at_k(&ids(&["a"]), &["a"], 0), 0.0, "k = 0");
    // A relevant item listed twice counts once: still exactly 1 at rank 1.
    assert!(close(
        reco_eval::ndcg_at_k(&ids(&["a", "a"]), &["a"], 10),
        1.0
    ));
    // Duplicate relevant ids are one relevant item (IDCG = 1).
    assert!(close(
        reco_eval::ndcg_at_k(&ids(&["a"]), &["a", "a"], 10),
        1.0
    ));
    // A list shorter than k is fine; NDCG never exceeds 1.
    assert!(close(
        reco_eval::ndcg_at_k(&ids(&["a", "b"]), &["a", "b"], 10),
        1.0
    ));
    assert_eq!(reco_eval::coverage::<String>(&[], 0), 0.0);
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
    assert!(close(reco_eval::coverage(&lists, 5), 0.6));
    let v = vectors();
    // Pairs: A-B 1 - 0 = 1, A-C 1 - 0.7071, B-C 1 - 0.7071 → (1 + 0.2929 * 2) / 3 = 0.5286.
    let ild = reco_eval::intra_list_diversity(&ids(&["A", "B", "C"]), &v).unwrap();
    assert!(
        close(ild, (1.0 + 2.0 * (1.0 - 0.5f64.sqrt())) / 3.0),
        "{ild}"
    );
    assert!(close(
        reco_eval::intra_list_diversity(&ids(&["A", "D"]), &v).unwrap(),
        2.0
    ));
    assert_eq!(reco_eval::intra_list_diversity(&ids(&["A"]), &v), None);
    assert_eq!(
        reco_eval::intra_list_diversity(&ids(&["A", "nope"]), &v),
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
    let r = reco_eval::score_lists("m", &tests, &lists, 10, 5, &vectors());
    assert_eq!(r.users, 2);
    assert!(close(r.hr, 0.5));
    assert!(close(r.ndcg, 0.6309 / 2.0));
    assert!(close(r.coverage, 4.0 / 5.0));
    // ILD: A-B = 1; C-D = 1 - (-1/√2) = 1.7071; mean 1.3536.
    assert!(close(r.ild, (1.0 + 1.0 + 0.5f64.sqrt()) / 2.0));
    // 95% interval of p = 0.5 over 2 users: 1.96 · √(0.25 / 2).
    assert!(close(r.hr_ci95, 1.96 * (0.125f64).sqrt()));
    // At k = 1 u1's hit (rank 2) no longer counts and only A and C are recommended.
    let r1 = reco_eval::score_lists("m", &tests, &lists, 1, 5, &vectors());
    assert_eq!((r1.hr, r1.ndcg), (0.0, 0.0));
    assert!(close(r1.coverage, 2.0 / 5.0));
}
