//! `reco-train`: trains the collaborative model and the ranker outside the server.
//!
//! * `reco-train [-c config.toml]` trains from the configured interaction store (the
//!   embedded store in `storage.data_dir`, or ScyllaDB) and writes the model atomically into
//!   `<data_dir>/models/`, where a running core picks it up within a minute. The embedded
//!   store admits one process at a time: with it, stop the core first or use
//!   `POST /admin/model/retrain` instead.
//! * `reco-train --ratings F --catalog C` measures a training on a ratings file (the
//!   formats of `reco-eval`): time, peak memory, model size and the seen sets' memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use core_api::catalog::CatalogEntry;
use core_api::learn::train::{train, TrainContext, TrainEvent};
use core_api::learn::{ItemIds, SeenSets};
use core_api::metrics::Metrics;
use core_api::Config;

#[derive(Parser)]
#[command(version)]
struct Args {
    /// core-api configuration file; RECO__* variables apply.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Measure a training on this ratings file instead (`user::movie::rating::time`).
    #[arg(long, requires = "catalog")]
    ratings: Option<PathBuf>,
    /// Film catalogue for `--ratings` (`id::Title (Year)::Genre|Genre`).
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Vector cache for `--ratings` (shared with reco-eval).
    #[arg(long, default_value = "var/eval")]
    cache_dir: PathBuf,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let result = match Config::load(args.config.as_deref(), std::env::vars()) {
        Ok(config) => match (&args.ratings, &args.catalog) {
            (Some(ratings), Some(catalog)) => {
                measure(config, ratings, catalog, &args.cache_dir).await
            }
            _ => train_store(config).await,
        },
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        eprintln!("reco-train: {e}");
        std::process::exit(1);
    }
}

/// Trains from the configured stores, as the server's background training does.
async fn train_store(mut config: Config) -> Result<(), String> {
    config.demo.load_if_empty = false;
    config.learning.retrain_every_secs = 0;
    let encoder = gpu_batch::TextEncoder::load(&config.model.dir).map_err(|e| e.to_string())?;
    let engine =
        core_api::bootstrap::open_embedded(config, Arc::new(encoder), Arc::new(Metrics::new()))
            .await
            .map_err(|e| format!("cannot open the stores (is a core running on them?): {e}"))?;
    let report = engine.retrain().await.map_err(|e| e.to_string())?;
    let status = engine.model_status();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "version": status.version,
            "report": report,
        }))
        .map_err(|e| e.to_string())?
    );
    Ok(())
}

/// Peak resident memory of this process so far, in MiB (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

async fn measure(
    config: Config,
    ratings: &Path,
    catalog: &Path,
    cache_dir: &Path,
) -> Result<(), String> {
    let text = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut log: Vec<_> = text(ratings)?
        .lines()
        .filter_map(core_api::demo::parse_rating)
        .map(|(e, _)| e)
        .collect();
    log.sort_by_key(|e| e.timestamp);
    let rated: std::collections::HashSet<&str> = log.iter().map(|e| e.item_id.as_str()).collect();
    let mut items: Vec<shared_types::Item> = text(catalog)?
        .lines()
        .filter_map(core_api::demo::parse_movie)
        .filter(|m| rated.contains(m.id.as_str()))
        .collect();
    items.sort_by(|a, b| a.id.cmp(&b.id));
    items.dedup_by(|a, b| a.id == b.id);
    let (vectors, ..) =
        core_api::vector_cache::catalogue_vectors(&items, cache_dir, &config.model.dir, &|l| {
            eprintln!("{l}")
        })
        .await
        .map_err(|e| e.to_string())?;
    let before = peak_rss_mib().unwrap_or(0.0);

    let mut ids = ItemIds::default();
    let mut entries: Vec<Option<Arc<CatalogEntry>>> = Vec::new();
    for item in items {
        let id: Arc<str> = Arc::from(item.id.as_str());
        let o = ids.intern(&id) as usize;
        let v = &vectors[&item.id];
        entries.resize(o + 1, None);
        entries[o] = Some(Arc::new(CatalogEntry::new(item, 1, v)));
    }
    let mut users = std::collections::HashMap::new();
    let mut seen = SeenSets::default();
    let mut events = Vec::with_capacity(log.len());
    for e in &log {
        let Some(item) = ids.get(&e.item_id) else {
            continue;
        };
        let n = users.len() as u32;
        let user = *users.entry(e.user_id.clone()).or_insert(n);
        if config.learning.marks_seen(e.action) {
            seen.insert(&e.user_id, item);
        }
        events.push(TrainEvent {
            user,
            item,
            action: e.action,
            timestamp: e.timestamp,
        });
    }
    let started = Instant::now();
    let ctx = TrainContext {
        items: &entries,
        current_year: core_api::clock::current_year(),
        history_limit: config.ranking.history_limit,
        history_half_life_days: config.ranking.history_half_life_days,
    };
    let model = train(
        &events,
        &ctx,
        &config.learning,
        1,
        core_api::clock::now_secs(),
    );
    let secs = started.elapsed().as_secs_f64();
    let per_million =
        |bytes: usize| bytes as f64 / (1 << 20) as f64 * 1e6 / events.len().max(1) as f64;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "interactions": events.len(),
            "users": users.len(),
            "items": entries.len(),
            "train_secs": secs,
            "peak_rss_mib_before_training": before,
            "peak_rss_mib": peak_rss_mib(),
            "model_mib": model.collab.heap_bytes() as f64 / (1 << 20) as f64,
            "seen_pairs": seen.pairs(),
            "seen_mib": seen.heap_bytes() as f64 / (1 << 20) as f64,
            "seen_mib_per_million_interactions": per_million(seen.heap_bytes()),
            "report": model.report,
        }))
        .map_err(|e| e.to_string())?
    );
    Ok(())
}
