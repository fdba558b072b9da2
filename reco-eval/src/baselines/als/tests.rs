//! Unit tests of [`ImplicitAls`](super::ImplicitAls): separation of communities,
//! determinism, optimality of the fold-in and descent of the training objective.

use super::*;

/// Two disjoint communities: group A likes items 0..5, group B items 5..10; 40 users
/// each, every user 3-4 random items of their group.
fn communities(seed: u64) -> Vec<Vec<u32>> {
    let mut rng = SplitMix64(seed);
    let mut users = Vec::new();
    for group in 0..2u32 {
        for _ in 0..40 {
            let want = 3 + (rng.next_u64() % 2) as usize;
            let mut items: Vec<u32> = (0..5).map(|i| group * 5 + i).collect();
            // Fisher-Yates, then keep the first `want`.
            for i in (1..items.len()).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                items.swap(i, j);
            }
            items.truncate(want);
            users.push(items);
        }
    }
    users
}

#[test]
fn als_separates_communities_and_is_deterministic() {
    let users = communities(11);
    // The true rank (2), and more factors than the 10 items need with a stronger ridge
    // (with 64 factors and λ = 0.05 the model just memorises a data set this small).
    for params in [
        AlsParams {
            factors: 2,
            ..AlsParams::default()
        },
        AlsParams {
            factors: 16,
            regularization: 1.0,
            ..AlsParams::default()
        },
    ] {
        let model = ImplicitAls::fit(10, &users, &params);
        assert_eq!(model.n_items(), 10);
        assert_eq!(model.factors(), params.factors);
        let scores = model.scores(&[0, 1]);
        let worst_a = scores[2..5].iter().copied().fold(f32::INFINITY, f32::min);
        let best_b = scores[5..10]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        assert!(
            worst_a > best_b,
            "k = {}: group A {:?} vs group B {:?}",
            params.factors,
            &scores[2..5],
            &scores[5..10]
        );
        let again = ImplicitAls::fit(10, &users, &params);
        assert_eq!(again.scores(&[0, 1]), scores, "same seed, same scores");
        assert_eq!(again.item_factors, model.item_factors);
        let other_seed = ImplicitAls::fit(
            10,
            &users,
            &AlsParams {
                seed: params.seed + 1,
                ..params
            },
        );
        assert_ne!(other_seed.item_factors, model.item_factors);
    }
}

/// The weighted loss of one user with factor `x`:
/// `Σ_i c_ui (p_ui − x·y_i)² + λ|x|²`.
fn user_loss(model: &ImplicitAls, history: &[u32], x: &[f64]) -> f64 {
    let k = model.factors;
    let mut loss = model.lambda * x.iter().map(|v| v * v).sum::<f64>();
    for (i, y) in model.item_factors.chunks_exact(k).enumerate() {
        let s: f64 = y.iter().zip(x).map(|(a, b)| f64::from(*a) * b).sum();
        let liked = history.contains(&(i as u32));
        let (c, p) = if liked {
            (1.0 + model.alpha, 1.0)
        } else {
            (1.0, 0.0)
        };
        loss += c * (p - s) * (p - s);
    }
    loss
}

/// The full ALS objective with every user folded in.
fn total_loss(model: &ImplicitAls, users: &[Vec<u32>]) -> f64 {
    let item_reg: f64 = model
        .item_factors
        .iter()
        .map(|v| f64::from(*v) * f64::from(*v))
        .sum();
    let users_loss: f64 = users
        .iter()
        .map(|h| {
            let x: Vec<f64> = model.fold_in(h).iter().map(|v| f64::from(*v)).collect();
            user_loss(model, h, &x)
        })
        .sum();
    users_loss + model.lambda * item_reg
}

#[test]
fn als_fold_in_is_the_least_squares_optimum_and_training_descends() {
    let users = communities(3);
    let params = AlsParams {
        factors: 3,
        regularization: 0.5,
        alpha: 5.0,
        iterations: 4,
        seed: 9,
    };
    let model = ImplicitAls::fit(10, &users, &params);
    assert_eq!((model.alpha, model.lambda), (5.0, 0.5));
    let mut rng = SplitMix64(1);
    for h in &users[..6] {
        let x: Vec<f64> = model.fold_in(h).iter().map(|v| f64::from(*v)).collect();
        let best = user_loss(&model, h, &x);
        for _ in 0..8 {
            let moved: Vec<f64> = x
                .iter()
                .map(|v| v + 0.01 * (f64::from(rng.next_f32()) - 0.5))
                .collect();
            assert!(
                user_loss(&model, h, &moved) > best,
                "fold-in is not optimal"
            );
        }
    }
    // Each sweep can only lower the objective (exact alternating minimisation).
    let losses: Vec<f64> = (0..=6)
        .map(|iterations| {
            let m = ImplicitAls::fit(
                10,
                &users,
                &AlsParams {
                    iterations,
                    ..params
                },
            );
            total_loss(&m, &users)
        })
        .collect();
    for w in losses.windows(2) {
        assert!(w[1] <= w[0] * (1.0 + 1e-5), "loss went up: {losses:?}");
    }
    assert!(
        losses[6] < losses[0] * 0.9,
        "training did not help: {losses:?}"
    );
}

#[test]
fn als_empty_inputs_give_finite_scores() {
    let users = communities(5);
    let model = ImplicitAls::fit(10, &users, &AlsParams::default());
    assert_eq!(model.scores(&[]), vec![0.0; 10]);
    assert_eq!(model.scores(&[10, 11]), vec![0.0; 10]);
    let empty = ImplicitAls::fit(6, &[], &AlsParams::default());
    assert!(empty.scores(&[1]).iter().all(|s| s.is_finite()));
    let mut with_empty_user = users.clone();
    with_empty_user.push(Vec::new());
    let m = ImplicitAls::fit(12, &with_empty_user, &AlsParams::default());
    // Items 10 and 11 were never seen.
    let s = m.scores(&[0, 10]);
    assert!(s.iter().all(|v| v.is_finite()));
    assert_eq!(&s[10..], &[0.0, 0.0]);
    let none = ImplicitAls::fit(
        3,
        &[vec![0]],
        &AlsParams {
            factors: 0,
            ..AlsParams::default()
        },
    );
    assert_eq!(none.scores(&[0]), vec![0.0; 3]);
}
