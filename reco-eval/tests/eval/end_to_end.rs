//! One small end-to-end run of the evaluation on the real engine and model.

use super::*;

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
    let first = reco_eval::run(&opts, &|_| {}).await.unwrap();
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

    let second = reco_eval::run(&opts, &|_| {}).await.unwrap();
    assert_eq!(second.embedded_items, 0, "vectors come from the cache");
    assert_eq!(first.rows, second.rows, "same cache, same numbers");
    let table = reco_eval::markdown_table(&second.rows, 10);
    assert!(
        table.contains(&format!("| {} | 120 |", second.rows[0].method)),
        "{table}"
    );
    let results = reco_eval::results_markdown(&second, "reco-eval --test");
    assert!(results.contains("## Protocol") && results.contains("cores"));
    let _ = std::fs::remove_dir_all(&dir);
}
