//! `reco-eval`: offline evaluation of the engine against popularity, item-kNN, RP3β, EASE,
//! implicit ALS, next-item transitions, an ALS + transitions blend and random, all tuned on
//! a validation split, on a time-ordered ratings file, with an ablation of the engine's
//! stages. The protocol is documented in the `reco_eval` library.

use std::path::PathBuf;

use clap::Parser;
use core_api::Config;
use reco_eval::EvalOptions;

/// Leave-last-out evaluation: HR@k, NDCG@k, coverage and intra-list diversity.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Ratings file `user::movie::rating(0-10)::unix_time`.
    #[arg(long, default_value = "data/movietweetings/snapshot-20k/ratings.dat")]
    ratings: PathBuf,
    /// Film catalogue `id::Title (Year)::Genre|Genre` (only the rated films are used).
    #[arg(long, default_value = "data/movietweetings/catalog-movies.dat")]
    catalog: PathBuf,
    /// Latest positive interactions held out per test user.
    #[arg(long, default_value_t = 1)]
    holdout: usize,
    /// Positive interactions a user needs to be a test user [default: holdout + 2].
    #[arg(long)]
    min_positives: Option<usize>,
    /// Cut-off of the recommendation lists and the metrics.
    #[arg(long, short, default_value_t = 10)]
    k: usize,
    /// Seed of the random baseline.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Evaluate the full engine only (no ablation rows).
    #[arg(long)]
    no_ablation: bool,
    /// Evaluate at most this many test users, the first by id (0 = all).
    #[arg(long, default_value_t = 0)]
    max_users: usize,
    /// Try at most this many engine settings on validation (0 = the whole grid).
    #[arg(long, default_value_t = 0)]
    engine_settings: usize,
    /// Cached vectors and item stores live here.
    #[arg(long, default_value = "var/eval")]
    cache_dir: PathBuf,
    /// core-api configuration file (ranking, index, graph, model); RECO__* variables apply.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Print the report as JSON instead of the Markdown table.
    #[arg(long)]
    json: bool,
    /// Also write the results (date, machine, protocol, table) to this Markdown file.
    #[arg(long)]
    write_results: Option<PathBuf>,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Args::parse()).await {
        eprintln!("reco-eval: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let config =
        Config::load(args.config.as_deref(), std::env::vars()).map_err(|e| e.to_string())?;
    let opts = EvalOptions {
        ratings: args.ratings,
        catalog: args.catalog,
        holdout: args.holdout,
        min_positives: args.min_positives,
        k: args.k,
        seed: args.seed,
        cache_dir: args.cache_dir,
        config,
        ablation: !args.no_ablation,
        max_users: args.max_users,
        engine_settings: args.engine_settings,
        ..EvalOptions::default()
    };
    let report = reco_eval::run(&opts, &|line| eprintln!("{line}"))
        .await
        .map_err(|e| e.to_string())?;
    if args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        println!("{json}");
    } else {
        print!("{}", reco_eval::markdown_table(&report.rows, report.k));
        let notes = reco_eval::notes(&report);
        if !notes.is_empty() {
            println!();
            for note in notes {
                println!("- {note}");
            }
        }
    }
    if let Some(path) = args.write_results {
        let command: Vec<String> = std::env::args().collect();
        let command = format!("reco-eval {}", command[1..].join(" "))
            .trim_end()
            .to_string();
        std::fs::write(&path, reco_eval::results_markdown(&report, &command))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    eprintln!("done in {:.1} s", report.secs);
    Ok(())
}
