//! Embedding and batched-scoring throughput of `gpu-batch` on the backend it selects here.
//!
//! Embedding: real catalogue texts through the real MiniLM model at batch 32, 128 and 256
//! (items/s). Scoring: queries × candidates inner products with top-10 per query for FP32,
//! FP16 and INT8 candidate storage (queries/s, effective GFLOP/s, memory, recall@10 against
//! FP32 on the same vectors).
//!
//! With `--gpus N` (0 = all; needs the `cuda` feature) embedding (FP16) and scoring run on
//! the GPUs when a driver and a device are present, else on the CPU; the backend used is
//! reported. Without it everything runs on the CPU. Recall is always against the CPU's FP32
//! top-10. The last embedding row hands all texts to one call, which spreads its mini-batches
//! over every GPU.
//!
//! usage: embed_score [--texts 1024] [--candidates 100000] [--queries 256] [--gpus N]
//!                    [--model DIR]

use std::time::Instant;

use gpu_batch::scorer::{BatchScorer, CandidateMatrix, Precision, Scored};
use gpu_batch::{DeviceChoice, TextEncoder};
use reco_benches::clustered_vectors;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

/// Catalogue films as the service embeds them: "Title (year). Genres: a, b".
fn catalogue_texts(n: usize) -> Vec<String> {
    let raw = std::fs::read_to_string("data/movietweetings/catalog-movies.dat")
        .expect("run from the repository root");
    raw.lines()
        .filter_map(|l| {
            let mut parts = l.split("::");
            let (_, title, genres) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
            Some(format!("{title}. Genres: {}", genres.replace('|', ", ")))
        })
        .take(n)
        .collect()
}

fn recall(reference: &[Vec<Scored>], got: &[Vec<Scored>]) -> f64 {
    let hits: usize = reference
        .iter()
        .zip(got)
        .map(|(r, g)| {
            g.iter()
                .filter(|x| r.iter().any(|y| y.row == x.row))
                .count()
        })
        .sum();
    hits as f64 / reference.iter().map(Vec::len).sum::<usize>() as f64
}

/// Embedding throughput at batch 32, 128 and 256 (skipped with `--texts 0`, e.g. on a machine
/// without the model).
fn embedding(texts: usize, gpus: Option<usize>) -> (Vec<serde_json::Value>, String) {
    if texts == 0 {
        return (Vec::new(), "none".into());
    }
    let texts = catalogue_texts(texts);
    let args: Vec<String> = std::env::args().collect();
    let model = args
        .iter()
        .position(|a| a == "--model")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| gpu_batch::DEFAULT_MODEL_DIR.into());
    let choice = gpus.map_or(DeviceChoice::Cpu, |max_gpus| DeviceChoice::PreferGpu {
        max_gpus,
    });
    let encoder = TextEncoder::load_on(std::path::Path::new(&model), choice)
        .expect("model (scripts/fetch-model.sh)");
    encoder
        .embed_batch(&texts[..32.min(texts.len())])
        .expect("warm-up");
    let mut rows: Vec<serde_json::Value> = [32usize, 128, 256]
        .into_iter()
        .map(|batch| {
            let t = Instant::now();
            for chunk in texts.chunks(batch) {
                encoder.embed_batch(chunk).expect("embed");
            }
            let secs = t.elapsed().as_secs_f64();
            serde_json::json!({ "batch": batch, "items_per_sec": texts.len() as f64 / secs })
        })
        .collect();
    let t = Instant::now();
    encoder.embed_batch(&texts).expect("embed");
    rows.push(serde_json::json!({ "batch": "all in one call",
        "items_per_sec": texts.len() as f64 / t.elapsed().as_secs_f64() }));
    let backend = match encoder.backend() {
        gpu_batch::Backend::Cuda { devices } => format!("cuda ({devices} GPU)"),
        other => other.name().into(),
    };
    (rows, backend)
}

fn main() {
    let texts = arg("--texts", 1024);
    let gpus = std::env::args()
        .any(|a| a == "--gpus")
        .then(|| arg("--gpus", 0));
    let (embedding, backend) = embedding(texts, gpus);
    let dim = 384;
    let n = arg("--candidates", 100_000);
    let q = arg("--queries", 256);
    let candidates = clustered_vectors(n, dim, 64, 1);
    let queries = clustered_vectors(q, dim, 64, 2);
    let reference =
        CandidateMatrix::new(&candidates, dim, Precision::F32).top_k_batch(&queries, 10);
    let mut device = String::from("cpu");
    let scoring: Vec<serde_json::Value> = [Precision::F32, Precision::F16, Precision::Int8]
        .into_iter()
        .map(|precision| {
            let scorer = BatchScorer::new(&candidates, dim, precision, gpus);
            device = scorer.device();
            scorer
                .top_k_batch(&queries[..dim * 4], 10)
                .expect("scoring"); // warm-up
            let t = Instant::now();
            let top = scorer.top_k_batch(&queries, 10).expect("scoring");
            let secs = t.elapsed().as_secs_f64();
            let bytes_per_value = match precision {
                Precision::F32 => 4.0,
                Precision::F16 => 2.0,
                Precision::Int8 => 1.0 + 4.0 / dim as f64,
            };
            serde_json::json!({
                "precision": precision.name(),
                "queries_per_sec": q as f64 / secs,
                "gflops": 2.0 * (n * dim * q) as f64 / secs / 1e9,
                "mib": (n * dim) as f64 * bytes_per_value / (1 << 20) as f64,
                "recall_at_10": recall(&reference, &top),
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "backend": backend,
            "scoring_device": device,
            "threads": rayon::current_num_threads(),
            "texts": texts,
            "embedding": embedding,
            "candidates": n,
            "queries": q,
            "dim": dim,
            "scoring": scoring,
        })
    );
}
