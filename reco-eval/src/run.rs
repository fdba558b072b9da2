//! The whole run: the options, the report, and [`run()`], which loads the data, splits it,
//! tunes and scores every baseline and the engine's settings on validation, then scores the
//! chosen ones (and the engine's ablation rows) on test.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use core_api::config::{Config, RankingConfig};
use core_api::engine::Embedder;
use core_api::store::Interaction;
use serde::Serialize;
use shared_types::{InteractionEvent, Item};

use crate::baselines::random_list;
use crate::data::{leave_last_out, smoothed_quality, Dataset, TestUser};
use crate::engine::{
    ablation_variants, base_store, engine_settings, without_exploration, EngineRun, Variant,
};
use crate::metrics::{genre_diversity, score_lists, MethodResult};
use crate::tuned::{tuned_baselines, SplitData};
use crate::EvalError;

/// What to evaluate and how.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub ratings: PathBuf,
    pub catalog: PathBuf,
    /// Positive interactions held out per test user (leave-last-out).
    pub holdout: usize,
    /// Positive interactions a user needs to be tested (default `holdout + 2`).
    pub min_positives: Option<usize>,
    /// Cut-off of the lists and metrics.
    pub k: usize,
    pub seed: u64,
    /// Vector cache and cached item stores live here.
    pub cache_dir: PathBuf,
    /// Engine configuration (its ranking is the "full" variant; storage is overridden).
    pub config: Config,
    /// Run the ablation variants too (else only the full engine).
    pub ablation: bool,
    /// Evaluate at most this many test users (the first by id; 0 = all).
    pub max_users: usize,
    /// Genre intra-list diversity the engine's chosen setting must reach on validation.
    pub min_genre_diversity: f64,
    /// Try at most this many engine settings on validation (0 = all).
    pub engine_settings: usize,
    /// Recommendation requests in flight at once.
    pub concurrency: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        let config = Config::default();
        Self {
            ratings: config.demo.ratings.clone(),
            catalog: config.demo.catalog.clone(),
            holdout: 1,
            min_positives: None,
            k: 10,
            seed: 42,
            cache_dir: "var/eval".into(),
            config,
            ablation: true,
            max_users: 0,
            min_genre_diversity: 0.75,
            engine_settings: 0,
            concurrency: 4,
        }
    }
}

/// Sizes of the data the run saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DatasetStats {
    pub ratings: usize,
    pub users: usize,
    pub catalogue: usize,
    pub train_events: usize,
    pub test_users: usize,
    /// Ratings of films missing from the catalogue file (dropped).
    pub unknown_items: usize,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub ratings_file: String,
    /// Genre diversity the engine's setting had to reach on validation.
    pub min_genre_diversity: f64,
    pub catalog_file: String,
    pub holdout: usize,
    pub min_positives: usize,
    pub k: usize,
    pub seed: u64,
    pub dataset: DatasetStats,
    /// Items embedded in this run (0 when all vectors came from the cache).
    pub embedded_items: usize,
    pub embed_secs: f64,
    /// The engine's full ranking configuration.
    pub ranking: RankingConfig,
    pub history_limit: usize,
    /// Whether the online policy's exploration was switched off (see [`without_exploration`]).
    pub exploration_off: bool,
    pub rows: Vec<MethodResult>,
    pub secs: f64,
}

/// Vectors of `items` from `cache_dir` (keyed by model and texts), embedding and caching
/// them on a miss; see [`core_api::vector_cache::catalogue_vectors`]. Returns the vectors,
/// the loaded model (the engine needs it too), how many items were embedded and how long
/// that took.
pub async fn catalogue_vectors(
    items: &[Item],
    cache_dir: &Path,
    model_dir: &Path,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(HashMap<String, Vec<f32>>, Arc<dyn Embedder>, usize, f64), EvalError> {
    Ok(core_api::vector_cache::catalogue_vectors(items, cache_dir, model_dir, progress).await?)
}

/// Runs the whole evaluation (see the crate documentation).
pub async fn run(
    opts: &EvalOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<EvalReport, EvalError> {
    let started = Instant::now();
    if opts.holdout == 0 || opts.k == 0 || opts.k > shared_types::MAX_LIMIT as usize {
        return Err(EvalError::Data(format!(
            "holdout must be >= 1 and k within 1..={}",
            shared_types::MAX_LIMIT
        )));
    }
    let min_positives = opts.min_positives.unwrap_or(opts.holdout + 2);
    let (config, exploration_off) = without_exploration(&opts.config);

    // Ratings, time-ordered (stable), and the catalogue of rated films.
    let Dataset {
        ratings,
        mut items,
        unknown_items,
    } = Dataset::load(&opts.ratings, &opts.catalog)?;
    let events: Vec<Interaction> = ratings.iter().map(|(e, _)| e.clone()).collect();
    let users: HashSet<&str> = events.iter().map(|e| e.user_id.as_str()).collect();

    let split = leave_last_out(&events, opts.holdout, min_positives);
    let mut tests = split.test.clone();
    if opts.max_users > 0 {
        tests.truncate(opts.max_users);
    }
    let catalogue: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
    progress(&format!(
        "{} ratings, {} users, {} films; {} training events, {} test users",
        ratings.len(),
        users.len(),
        items.len(),
        split.train.len(),
        tests.len()
    ));

    // Quality priors from training ratings only.
    let quality = smoothed_quality(
        &catalogue,
        split
            .train
            .iter()
            .map(|&i| (ratings[i].0.item_id.as_str(), ratings[i].1)),
    );
    for item in &mut items {
        item.quality = quality.get(&item.id).copied();
    }

    // Per test user: every training item (excluded from the random floor).
    let mut seen_by_user: HashMap<&str, HashSet<&str>> = HashMap::new();
    for &i in &split.train {
        let e = &events[i];
        seen_by_user
            .entry(e.user_id.as_str())
            .or_default()
            .insert(e.item_id.as_str());
    }
    let empty_set = HashSet::new();
    let seen: Vec<HashSet<&str>> = tests
        .iter()
        .map(|t| {
            seen_by_user
                .get(t.user_id.as_str())
                .unwrap_or(&empty_set)
                .clone()
        })
        .collect();

    let (vectors, embedder, embedded_items, embed_secs) =
        catalogue_vectors(&items, &opts.cache_dir, &config.model.dir, progress).await?;

    let k = opts.k;
    let n = catalogue.len();
    let genres: HashMap<String, Vec<String>> = items
        .iter()
        .map(|i| (i.id.clone(), i.genres.clone()))
        .collect();
    let score = |name: &str, lists: &[Vec<String>], tests: &[TestUser]| {
        let mut row = score_lists(name, tests, lists, k, n, &vectors);
        row.genre_ild = genre_diversity(lists, &genres, k);
        row
    };

    // Validation: the same leave-last-out applied to the training events (each test
    // user's second-latest positive), on which every method's settings are chosen.
    let train_interactions: Vec<Interaction> =
        split.train.iter().map(|&i| events[i].clone()).collect();
    let validation_split = leave_last_out(&train_interactions, opts.holdout, min_positives);
    let mut validation_tests = validation_split.test.clone();
    if opts.max_users > 0 {
        validation_tests.truncate(opts.max_users);
    }
    let index: HashMap<String, u32> = catalogue
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), i as u32))
        .collect();
    let validation_data = SplitData {
        catalogue: &catalogue,
        index: &index,
        train: validation_split
            .train
            .iter()
            .map(|&i| &train_interactions[i])
            .collect(),
        tests: &validation_tests,
    };
    let test_data = SplitData {
        catalogue: &catalogue,
        index: &index,
        train: split.train.iter().map(|&i| &events[i]).collect(),
        tests: &tests,
    };
    progress(&format!(
        "validation: {} training events, {} users",
        validation_data.train.len(),
        validation_tests.len()
    ));
    let mut baseline_rows = Vec::new();
    for tuned in tuned_baselines(&validation_data, &test_data, k, progress) {
        let mut row = score(&tuned.name, &tuned.lists, &tests);
        row.validation_ndcg = Some(tuned.validation_ndcg);
        progress(&format!(
            "{}: HR@{k} {:.4}, NDCG@{k} {:.4}",
            row.method, row.hr, row.ndcg
        ));
        baseline_rows.push(row);
    }
    {
        let random_lists: Vec<Vec<String>> = tests
            .iter()
            .zip(&seen)
            .map(|(t, s)| random_list(&catalogue, s, k, opts.seed, &t.user_id))
            .collect();
        baseline_rows.push(score("random", &random_lists, &tests));
    }

    let base_dir = base_store(
        &items,
        &vectors,
        &config,
        embedder.clone(),
        &opts.cache_dir,
        progress,
    )
    .await?;
    let as_events = |list: &[&Interaction]| -> Vec<InteractionEvent> {
        list.iter()
            .map(|e| InteractionEvent {
                user_id: e.user_id.clone(),
                item_id: e.item_id.clone(),
                action: e.action,
                timestamp: Some(e.timestamp),
                recommendation_id: None,
                event_id: None,
            })
            .collect()
    };
    let train_events = as_events(&test_data.train);
    let validation_events = as_events(&validation_data.train);
    let seen_of = |tests: &[TestUser], train: &[&Interaction]| -> Vec<HashSet<String>> {
        let mut by_user: HashMap<&str, HashSet<String>> = HashMap::new();
        for e in train {
            by_user
                .entry(e.user_id.as_str())
                .or_default()
                .insert(e.item_id.clone());
        }
        tests
            .iter()
            .map(|t| by_user.remove(t.user_id.as_str()).unwrap_or_default())
            .collect()
    };
    let validation_seen = seen_of(&validation_tests, &validation_data.train);
    let test_seen = seen_of(&tests, &test_data.train);
    let work_dir = opts.cache_dir.join(format!("run-{}", std::process::id()));
    let validation_run = EngineRun {
        base_dir: &base_dir,
        work_dir: &work_dir,
        config: &config,
        embedder: embedder.clone(),
        train: &validation_events,
        tests: &validation_tests,
        seen: &validation_seen,
        k,
        concurrency: opts.concurrency,
    };
    // The engine's settings on validation (see `engine_settings`): the most relevant one
    // whose genre diversity reaches the target.
    let mut best: Option<(f64, Variant)> = None;
    let mut fallback: Option<(f64, Variant)> = None;
    let mut settings = engine_settings(&config);
    if opts.engine_settings > 0 {
        settings.truncate(opts.engine_settings);
    }
    for candidate in settings {
        let out = validation_run.run(&candidate).await?;
        let row = score(&candidate.name, &out.lists, &validation_tests);
        progress(&format!(
            "  validation engine ({}): NDCG@{k} {:.4}, genre ILD {:.3}",
            candidate.name, row.ndcg, row.genre_ild
        ));
        let value = row.ndcg + 1e-3 * row.hr;
        if row.genre_ild >= opts.min_genre_diversity && best.as_ref().is_none_or(|b| value > b.0) {
            best = Some((value, candidate.clone()));
        }
        if fallback.as_ref().is_none_or(|b| row.genre_ild > b.0) {
            fallback = Some((row.genre_ild, candidate));
        }
    }
    let (validation_value, chosen) = best
        .or(fallback)
        .ok_or_else(|| EvalError::Data("no engine setting".into()))?;
    progress(&format!("engine setting: {}", chosen.name));
    let engine_run = EngineRun {
        train: &train_events,
        tests: &tests,
        seen: &test_seen,
        ..validation_run
    };
    let mut variants = ablation_variants(&chosen);
    if !opts.ablation {
        variants.truncate(1);
    }
    let mut rows = Vec::new();
    for variant in &variants {
        let t = Instant::now();
        let out = engine_run.run(variant).await?;
        let mut row = score(&variant.name, &out.lists, &tests);
        row.seen_recommended = out.seen_recommended;
        if rows.is_empty() {
            row.method = format!("engine (full: {})", chosen.name);
            row.validation_ndcg = Some(validation_value);
        }
        progress(&format!(
            "{}: HR@{k} {:.4}, NDCG@{k} {:.4} ({:.1} s)",
            variant.name,
            row.hr,
            row.ndcg,
            t.elapsed().as_secs_f64()
        ));
        rows.push(row);
    }
    let _ = std::fs::remove_dir_all(&work_dir);
    rows.extend(baseline_rows);

    Ok(EvalReport {
        ratings_file: opts.ratings.display().to_string(),
        min_genre_diversity: opts.min_genre_diversity,
        catalog_file: opts.catalog.display().to_string(),
        holdout: opts.holdout,
        min_positives,
        k,
        seed: opts.seed,
        dataset: DatasetStats {
            ratings: ratings.len(),
            users: users.len(),
            catalogue: n,
            train_events: split.train.len(),
            test_users: tests.len(),
            unknown_items,
        },
        embedded_items,
        embed_secs,
        ranking: config.ranking.clone(),
        history_limit: config.ranking.history_limit,
        exploration_off,
        rows,
        secs: started.elapsed().as_secs_f64(),
    })
}
