//! `reco-ingest`: embeds a catalogue file in large batches into the core's data directory and
//! builds the index snapshots, so `core-api` starts on it at once. Resumable: run it again
//! after an interruption and finished batches are skipped.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;
use core_api::ingest::ingest;
use core_api::Config;
use indicatif::{ProgressBar, ProgressStyle};

/// Embed a catalogue (JSONL or CSV) and build the shard snapshots core-api loads.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Catalogue file: .jsonl/.ndjson (one item per line) or .csv with a header row.
    input: PathBuf,
    /// core-api configuration file (data directory, shards, model); RECO__* variables apply.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Overrides storage.data_dir.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Texts per embedding batch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    if let Err(e) = run(Args::parse()).await {
        eprintln!("reco-ingest: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let mut config =
        Config::load(args.config.as_deref(), std::env::vars()).map_err(|e| e.to_string())?;
    if let Some(dir) = args.data_dir {
        config.storage.data_dir = dir;
    }
    // Checked before the model loads, so a typo fails at once.
    if !args.input.is_file() {
        return Err(format!("cannot read {}: not a file", args.input.display()));
    }
    let encoder = gpu_batch::TextEncoder::load(&config.model.dir).map_err(|e| e.to_string())?;
    eprintln!(
        "embedding {} on {} in batches of {} into {}",
        args.input.display(),
        encoder.backend().name(),
        args.batch,
        config.storage.data_dir.display()
    );
    // Ctrl-C stops after the batch in flight is durable; a rerun resumes from there.
    let stop = Arc::new(AtomicBool::new(false));
    let stop_on_signal = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop_on_signal.store(true, Ordering::SeqCst);
        }
    });
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} items  {per_sec}  eta {eta}")
            .expect("valid template"),
    );
    let report = ingest(
        &config,
        Arc::new(encoder),
        &args.input,
        args.batch,
        |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            if stop.load(Ordering::SeqCst) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    if report.resumed_from > 0 {
        eprintln!("resumed after {} items done earlier", report.resumed_from);
    }
    eprintln!(
        "embedded {} items in {:.1} s ({:.0} items/s); total {:.1} s{}",
        report.embedded,
        report.embed_secs,
        report.items_per_sec(),
        report.total_secs,
        if report.completed {
            "; index snapshots written"
        } else {
            "; interrupted: run again to resume"
        }
    );
    Ok(())
}
