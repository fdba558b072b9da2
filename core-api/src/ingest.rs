//! Cold-path ingest: a catalogue file (JSONL or CSV) is embedded in large batches into the
//! store, then every shard's index snapshot is built, so `core-api` starts on it without
//! embedding or building anything.
//!
//! Resumable: each batch is committed durably, then a checkpoint records how many items are
//! done. A rerun on the same (unchanged) file skips the finished batches; a changed file
//! starts over. Re-ingesting an item replaces it (same id), so overlap after a crash between
//! commit and checkpoint is harmless.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use shared_types::{ErrorCode, ItemInput};

use crate::embedding::item_text;
use crate::engine::{validate_item, Backends};
use crate::metrics::Metrics;
use crate::store::{EmbeddedStore, InProcessItemGraph, InProcessUserCache, ItemStore, StoredItem};
use crate::{Config, Embedder, Engine, EngineError};

/// What an ingest run did.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestReport {
    pub items: usize,
    /// Items found done by an earlier, interrupted run.
    pub resumed_from: usize,
    /// Items embedded by this run.
    pub embedded: usize,
    pub embed_secs: f64,
    pub total_secs: f64,
    /// False when stopped early by the progress callback (resume by running again).
    pub completed: bool,
}

impl IngestReport {
    pub fn items_per_sec(&self) -> f64 {
        self.embedded as f64 / self.embed_secs.max(1e-9)
    }
}

/// Reads a catalogue: JSON Lines (`.jsonl`, `.ndjson`; one item object per line) or CSV with
/// a header naming item fields (`id,title,genres,year,language,maturity,description,quality`;
/// `genres` separated by `|`).
pub fn read_catalogue(path: &Path) -> Result<Vec<ItemInput>, EngineError> {
    parse_catalogue(path, &read_text(path)?)
}

fn read_text(path: &Path) -> Result<String, EngineError> {
    std::fs::read_to_string(path).map_err(|e| {
        EngineError::invalid(
            ErrorCode::InvalidCatalogue,
            format!("cannot read {}: {e}", path.display()),
        )
    })
}

/// Parses catalogue `text`; the format follows `path`'s extension.
fn parse_catalogue(path: &Path, text: &str) -> Result<Vec<ItemInput>, EngineError> {
    let invalid = |m: String| EngineError::invalid(ErrorCode::InvalidCatalogue, m);
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "jsonl" | "ndjson" | "json" => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| invalid(format!("line {}: {e}", i + 1)))
            })
            .collect(),
        "csv" => {
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            let headers = reader
                .headers()
                .map_err(|e| invalid(format!("CSV header: {e}")))?
                .clone();
            reader
                .records()
                .enumerate()
                .map(|(i, record)| {
                    let record = record.map_err(|e| invalid(format!("CSV row {}: {e}", i + 1)))?;
                    let mut fields = serde_json::Map::new();
                    for (name, value) in headers.iter().zip(record.iter()) {
                        let value = value.trim();
                        if value.is_empty() {
                            continue;
                        }
                        let json = match name {
                            "genres" => serde_json::json!(value
                                .split('|')
                                .map(str::trim)
                                .filter(|g| !g.is_empty())
                                .collect::<Vec<_>>()),
                            "year" | "quality" => serde_json::from_str(value)
                                .map_err(|e| invalid(format!("CSV row {}: {name}: {e}", i + 1)))?,
                            _ => serde_json::json!(value),
                        };
                        fields.insert(name.to_string(), json);
                    }
                    serde_json::from_value(serde_json::Value::Object(fields))
                        .map_err(|e| invalid(format!("CSV row {}: {e}", i + 1)))
                })
                .collect()
        }
        _ => Err(invalid(format!(
            "{}: expected a .jsonl, .ndjson or .csv file",
            path.display()
        ))),
    }
}

fn checkpoint_path(data_dir: &Path, fingerprint: &str) -> PathBuf {
    data_dir.join("ingest").join(format!("{fingerprint}.done"))
}

fn read_checkpoint(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Atomic: a temporary file, fsync, rename.
fn write_checkpoint(path: &Path, done: usize) -> Result<(), EngineError> {
    let io =
        |e: std::io::Error| EngineError::Internal(format!("checkpoint {}: {e}", path.display()));
    std::fs::create_dir_all(path.parent().expect("checkpoint has a parent")).map_err(io)?;
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(done.to_string().as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// Ingests `input` into the store in `config.storage.data_dir` in batches of `batch`, then
/// builds the index snapshots. `on_batch(done, total)` runs after each durable batch and may
/// stop the run early (`ControlFlow::Break`), as an interruption would.
pub async fn ingest(
    config: &Config,
    embedder: Arc<dyn Embedder>,
    input: &Path,
    batch: usize,
    mut on_batch: impl FnMut(usize, usize) -> ControlFlow<()>,
) -> Result<IngestReport, EngineError> {
    let started = Instant::now();
    let text = read_text(input)?;
    // Identifies the input a checkpoint belongs to: a changed file starts over.
    let fingerprint = format!("{}-{}", shared_types::stable_hash(&text), text.len());
    let items = parse_catalogue(input, &text)?;
    drop(text);
    let dim = embedder.dim();
    let validated: Vec<_> = items
        .into_iter()
        .map(|i| validate_item(i, dim))
        .collect::<Result<_, _>>()?;
    let total = validated.len();
    let checkpoint = checkpoint_path(&config.storage.data_dir, &fingerprint);
    let resumed_from = read_checkpoint(&checkpoint).min(total);
    let store = Arc::new(EmbeddedStore::open(&config.storage.data_dir)?);
    let mut report = IngestReport {
        items: total,
        resumed_from,
        embedded: 0,
        embed_secs: 0.0,
        total_secs: 0.0,
        completed: false,
    };
    let mut done = resumed_from;
    for chunk in validated[resumed_from..].chunks(batch.max(1)) {
        let texts: Vec<String> = chunk
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(item, _)| item_text(item))
            .collect();
        let embed_started = Instant::now();
        let embedder_for_batch = embedder.clone();
        let mut vectors =
            tokio::task::spawn_blocking(move || embedder_for_batch.embed_batch(&texts))
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))??
                .into_iter();
        report.embed_secs += embed_started.elapsed().as_secs_f64();
        report.embedded += chunk.iter().filter(|(_, v)| v.is_none()).count();
        let stored: Vec<StoredItem> = chunk
            .iter()
            .map(|(item, given)| StoredItem {
                item: item.clone(),
                version: store.next_version(),
                vector: given.clone().or_else(|| vectors.next()).unwrap_or_default(),
            })
            .collect();
        store.upsert(stored).await?;
        done += chunk.len();
        write_checkpoint(&checkpoint, done)?;
        if on_batch(done, total).is_break() {
            report.total_secs = started.elapsed().as_secs_f64();
            return Ok(report);
        }
    }
    // Opening the engine on the catalogue alone builds and writes every shard's snapshot.
    let backends = Backends {
        items: store.clone(),
        interactions: store,
        graph: Arc::new(InProcessItemGraph::new(0.0)),
        user_cache: Arc::new(InProcessUserCache::new(
            1,
            std::time::Duration::from_secs(1),
        )),
    };
    Engine::open(config.clone(), backends, embedder, Arc::new(Metrics::new())).await?;
    report.completed = true;
    report.total_secs = started.elapsed().as_secs_f64();
    Ok(report)
}
