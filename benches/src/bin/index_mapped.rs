//! The index at sizes whose FP32 form does not fit in memory: builds 384-d clustered vectors
//! into sharded graphs straight from FP16 rows, writes them as mappable files (FP16, and INT8
//! with the same links), then, each in a fresh process, maps them and measures load time,
//! resident memory, single-thread search speed and recall@10 against exact search.
//!
//!   index_mapped build  --vectors N --shards S --dir D [--queries Q]
//!   index_mapped search --dir D --storage fp16|int8|int8-rerank [--ef 100] [--rerank 40]
//!
//! Vectors are generated in chunks (the same generator and 1,000 topic centres as
//! `index_memory`), so no more than one chunk of FP32 exists at once; the exact top 10 of
//! every query is computed from the FP32 vectors as they pass.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use half::f16;
use rayon::prelude::*;
use reco_benches::clustered_vectors;
use vector_index::distance::dot_f32;
use vector_index::graph::{search_reranked, BuildParams, FrozenGraph};
use vector_index::{shard_of, Fp16, Int8, MappedFile, Storage};

const DIM: usize = 384;
const CLUSTERS: usize = 1_000;
const CHUNK: usize = 100_000;
const PARAMS: BuildParams = BuildParams {
    m: 16,
    ef_construction: 200,
};

/// Fields of /proc/self/status in bytes (VmRSS, RssAnon, RssFile, VmHWM).
fn proc_status(field: &str) -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Starts a new peak-RSS measurement (VmHWM) for this process.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn gib(bytes: usize) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

fn graph_path(dir: &Path, storage: &str, shard: usize) -> PathBuf {
    dir.join(format!("{storage}-{shard:03}.graph"))
}

fn write_graph<S: Storage>(path: &Path, graph: &FrozenGraph<S>) -> usize {
    let mut w = BufWriter::new(File::create(path).expect("create graph file"));
    graph.write_to(&mut w).expect("write graph");
    w.into_inner().expect("flush").sync_all().expect("sync");
    std::fs::metadata(path).expect("graph file").len() as usize
}

fn write_u32s(path: &Path, values: &[u32]) {
    std::fs::write(
        path,
        values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>(),
    )
    .expect("write");
}

fn read_u32s(path: &Path) -> Vec<u32> {
    std::fs::read(path)
        .expect("read")
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect()
}

fn build(n: usize, shards: usize, dir: &Path, queries: usize) {
    std::fs::create_dir_all(dir).expect("create dir");
    let qs = clustered_vectors(queries, DIM, CLUSTERS, 99);
    // Per shard: FP16 rows and the global number of each node.
    let mut rows: Vec<Vec<f16>> = vec![Vec::new(); shards];
    let mut globals: Vec<Vec<u32>> = vec![Vec::new(); shards];
    // Per query: the best 10 (score, vector number) so far.
    let mut truth: Vec<Vec<(f32, u32)>> = vec![Vec::new(); queries];
    let started = Instant::now();
    for (c, first) in (0..n).step_by(CHUNK).enumerate() {
        let count = CHUNK.min(n - first);
        let chunk = clustered_vectors(count, DIM, CLUSTERS, 1_000 + c as u64);
        truth.par_iter_mut().enumerate().for_each(|(qi, best)| {
            let q = &qs[qi * DIM..(qi + 1) * DIM];
            for (i, v) in chunk.chunks_exact(DIM).enumerate() {
                let s = dot_f32(q, v);
                if best.len() < 10 || s > best[9].0 {
                    best.push((s, (first + i) as u32));
                    best.sort_by(|a, b| b.0.total_cmp(&a.0));
                    best.truncate(10);
                }
            }
        });
        for (i, v) in chunk.chunks_exact(DIM).enumerate() {
            let global = first + i;
            let s = shard_of(&format!("v{global}"), shards);
            let start = rows[s].len();
            rows[s].resize(start + DIM, f16::ZERO);
            Fp16::encode(v, &mut rows[s][start..]);
            globals[s].push(global as u32);
        }
    }
    let generate_s = started.elapsed().as_secs_f64();
    let encoded = rows.iter().map(|r| r.len() * 2).sum::<usize>();
    let mut build_s = 0.0;
    let (mut fp16_bytes, mut int8_bytes, mut index_heap) = (0, 0, 0);
    // The worst shard's peak memory while building over the index it keeps: its rows (held
    // before the build) plus everything the build added at its peak, over rows plus links.
    let mut worst_build_peak = 0f64;
    for (s, (shard_rows, ids)) in rows.into_iter().zip(globals).enumerate() {
        let rows_bytes = shard_rows.len() * 2;
        reset_peak_rss();
        let rss_before = proc_status("VmRSS:");
        let started = Instant::now();
        let graph = FrozenGraph::<Fp16>::build_encoded(shard_rows, DIM, PARAMS);
        build_s += started.elapsed().as_secs_f64();
        let peak = proc_status("VmHWM:").saturating_sub(rss_before) + rows_bytes;
        worst_build_peak = worst_build_peak.max(peak as f64 / graph.heap_bytes() as f64);
        index_heap += graph.heap_bytes();
        fp16_bytes += write_graph(&graph_path(dir, "fp16", s), &graph);
        let mut decoded = vec![0f32; graph.len() * DIM];
        for (node, out) in decoded.chunks_exact_mut(DIM).enumerate() {
            Fp16::decode(graph.vector(node as u32), out);
        }
        int8_bytes += write_graph(&graph_path(dir, "int8", s), &graph.relink::<Int8>(&decoded));
        write_u32s(&dir.join(format!("ids-{s:03}")), &ids);
        eprintln!("shard {s}: {} nodes, {:.0} s so far", ids.len(), build_s);
    }
    std::fs::write(dir.join("queries.f32"), le_bytes(&qs)).expect("write queries");
    let truth: Vec<u32> = truth
        .iter()
        .flat_map(|t| t.iter().map(|&(_, i)| i))
        .collect();
    write_u32s(&dir.join("truth.u32"), &truth);
    println!(
        "{}",
        serde_json::json!({
            "phase": "build",
            "vectors": n,
            "dim": DIM,
            "shards": shards,
            "m": PARAMS.m,
            "ef_construction": PARAMS.ef_construction,
            "generate_seconds": generate_s,
            "build_seconds": build_s,
            "fp16_rows_gib": gib(encoded),
            "index_gib": gib(index_heap),
            "shard_build_peak_over_index": worst_build_peak,
            "fp16_files_gib": gib(fp16_bytes),
            "int8_files_gib": gib(int8_bytes),
        })
    );
}

/// Little-endian bytes of `v`.
fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn search(dir: &Path, storage: &str, ef: usize, rerank: usize) {
    let queries: Vec<f32> = std::fs::read(dir.join("queries.f32"))
        .expect("queries")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    let truth = read_u32s(&dir.join("truth.u32"));
    let shards = (0..)
        .take_while(|&s| graph_path(dir, "fp16", s).exists())
        .count();
    let ids: Vec<Vec<u32>> = (0..shards)
        .map(|s| read_u32s(&dir.join(format!("ids-{s:03}"))))
        .collect();
    let (rss_before, anon_before) = (proc_status("VmRSS:"), proc_status("RssAnon:"));
    let started = Instant::now();
    // Every shard's graph of precision `S` from its `kind` files; none unless `wanted`.
    fn map_all<S: Storage>(
        dir: &Path,
        kind: &str,
        shards: usize,
        wanted: bool,
    ) -> Vec<FrozenGraph<S>> {
        (0..shards * usize::from(wanted))
            .map(|s| {
                // SAFETY: this benchmark's own files, not changed while mapped.
                let file = unsafe { MappedFile::open(&graph_path(dir, kind, s)) }.expect("map");
                FrozenGraph::map(&file, 0).expect(kind).0
            })
            .collect()
    }
    let fp16: Vec<FrozenGraph<Fp16>> = map_all(dir, "fp16", shards, storage != "int8");
    let int8: Vec<FrozenGraph<Int8>> = map_all(dir, "int8", shards, storage != "fp16");
    let load_s = started.elapsed().as_secs_f64();
    let rss_loaded = proc_status("VmRSS:");
    let search_one = |q: &[f32]| -> Vec<u32> {
        let mut hits: Vec<(f32, u32)> = (0..shards)
            .flat_map(|s| {
                let found = match storage {
                    "fp16" => fp16[s].search(q, 10, ef),
                    "int8" => int8[s].search(q, 10, ef),
                    _ => search_reranked(&int8[s], &fp16[s], q, 10, ef, rerank),
                };
                found
                    .into_iter()
                    .map(|(node, score)| (score, ids[s][node as usize]))
                    .collect::<Vec<_>>()
            })
            .collect();
        hits.sort_by(|a, b| b.0.total_cmp(&a.0));
        hits.into_iter().take(10).map(|(_, id)| id).collect()
    };
    let nq = queries.len() / DIM;
    // The first pass pages in what the queries touch; the second is timed.
    let started = Instant::now();
    for q in queries.chunks_exact(DIM) {
        search_one(q);
    }
    let first_pass_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut found = 0;
    for (qi, q) in queries.chunks_exact(DIM).enumerate() {
        let t = &truth[qi * 10..(qi + 1) * 10];
        found += search_one(q).iter().filter(|id| t.contains(id)).count();
    }
    let search_s = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "phase": "search",
            "storage": storage,
            "vectors": ids.iter().map(Vec::len).sum::<usize>(),
            "shards": shards,
            "ef_search": ef,
            "rerank": if storage == "int8-rerank" { Some(rerank) } else { None },
            "load_seconds": load_s,
            "rss_after_load_gib": gib(rss_loaded.saturating_sub(rss_before)),
            "rss_after_search_gib": gib(proc_status("VmRSS:").saturating_sub(rss_before)),
            "anon_after_search_gib": gib(proc_status("RssAnon:").saturating_sub(anon_before)),
            "mapped_gib": gib(fp16.iter().map(FrozenGraph::mapped_bytes).sum::<usize>()
                + int8.iter().map(FrozenGraph::mapped_bytes).sum::<usize>()),
            "first_pass_qps": nq as f64 / first_pass_s,
            "single_thread_qps_all_shards": nq as f64 / search_s,
            "recall_at_10": found as f64 / (10 * nq) as f64,
        })
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let (mut n, mut shards, mut queries, mut ef, mut rerank) = (1_000_000, 20, 200, 100, 40);
    let (mut dir, mut storage) = (None, String::from("fp16"));
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| {
            eprintln!("{flag} needs a value");
            std::process::exit(2)
        });
        let number = || -> usize {
            value.parse().unwrap_or_else(|_| {
                eprintln!("{flag} needs a number");
                std::process::exit(2)
            })
        };
        match flag.as_str() {
            "--vectors" => n = number(),
            "--shards" => shards = number(),
            "--queries" => queries = number(),
            "--ef" => ef = number(),
            "--rerank" => rerank = number(),
            "--dir" => dir = Some(PathBuf::from(&value)),
            "--storage" => storage = value,
            _ => {
                eprintln!("unknown flag {flag}");
                std::process::exit(2)
            }
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: index_mapped build|search --dir D [...]");
        std::process::exit(2)
    };
    match (command.as_str(), storage.as_str()) {
        ("build", _) => build(n, shards, &dir, queries),
        ("search", "fp16" | "int8" | "int8-rerank") => search(&dir, &storage, ef, rerank),
        _ => {
            eprintln!("usage: index_mapped build|search --dir D [--storage fp16|int8|int8-rerank]");
            std::process::exit(2)
        }
    }
}
