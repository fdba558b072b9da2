//! Our HNSW search path on a prepared data set (see `benches/ann/prepare_glove.py`): builds
//! the graph with hnsw_rs (M=16, ef_construction=200), freezes it into the compact layout,
//! and measures single-thread recall@10 and queries/s for several ef values, for the compact
//! search and for hnsw_rs's own search on the very same graph. With `--shards N` it also
//! splits the data over N graphs (row i to shard i mod N), searches every shard for the top 10
//! and merges them, as the sharded index does. One JSON object per line.
//!
//! usage: ann_bench DATA_DIR [--efs 10,20,40,80,120,200] [--rounds 3] [--skip-hnsw-rs] [--shards N]

use std::path::Path;
use std::time::Instant;

use core_api::index::graph::{ClampedDot, FrozenGraph};
use hnsw_rs::prelude::Hnsw;

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(
        args.get(1)
            .expect("usage: ann_bench DATA_DIR [--efs ..] [--rounds N]"),
    );
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let efs: Vec<usize> = flag("--efs")
        .unwrap_or_else(|| "10,20,40,80,120,200".into())
        .split(',')
        .map(|e| e.parse().expect("ef"))
        .collect();
    let rounds: usize = flag("--rounds").map_or(3, |r| r.parse().expect("rounds"));
    let skip_hnsw_rs = args.iter().any(|a| a == "--skip-hnsw-rs");
    let shard_count: usize = flag("--shards").map_or(1, |s| s.parse().expect("shards"));

    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).expect("meta.json"))
            .expect("json");
    let dim = meta["dim"].as_u64().expect("dim") as usize;
    let base = read_f32(&dir.join("base.f32"));
    let queries = read_f32(&dir.join("queries.f32"));
    let gt: Vec<i32> = std::fs::read(dir.join("gt.i32"))
        .expect("gt.i32")
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let n = base.len() / dim;

    let started = Instant::now();
    let hnsw: Hnsw<f32, ClampedDot> = Hnsw::new(16, n, 16, 200, ClampedDot);
    let rows: Vec<(&[f32], usize)> = base.chunks_exact(dim).zip(0..).collect();
    hnsw.parallel_insert_slice(&rows);
    let build_s = started.elapsed().as_secs_f64();
    let frozen = FrozenGraph::freeze(&hnsw, &base, dim);
    let heap_mib = frozen.heap_bytes() as f64 / (1 << 20) as f64;
    // The same data over `shard_count` graphs, built one after the other on all threads.
    let sharded_started = Instant::now();
    let shards: Vec<FrozenGraph> = (0..shard_count)
        .filter(|_| shard_count > 1)
        .map(|s| {
            let part: Vec<f32> = base
                .chunks_exact(dim)
                .skip(s)
                .step_by(shard_count)
                .flatten()
                .copied()
                .collect();
            let len = part.len() / dim;
            let graph: Hnsw<f32, ClampedDot> = Hnsw::new(16, len, 16, 200, ClampedDot);
            let rows: Vec<(&[f32], usize)> = part.chunks_exact(dim).zip(0..).collect();
            graph.parallel_insert_slice(&rows);
            FrozenGraph::freeze(&graph, &part, dim)
        })
        .collect();
    let sharded_build_s = sharded_started.elapsed().as_secs_f64();
    let sharded_heap_mib =
        shards.iter().map(FrozenGraph::heap_bytes).sum::<usize>() as f64 / (1 << 20) as f64;

    let recall = |found: &[Vec<usize>]| -> f64 {
        let hits: usize = found
            .iter()
            .zip(gt.chunks_exact(10))
            .map(|(f, t)| f.iter().filter(|x| t.contains(&(**x as i32))).count())
            .sum();
        hits as f64 / (10 * found.len()) as f64
    };
    let nq = queries.len() / dim;
    for &ef in &efs {
        let run = |search: &dyn Fn(&[f32]) -> Vec<usize>| {
            let mut times = Vec::new();
            let mut found = Vec::new();
            for _ in 0..rounds {
                let t = Instant::now();
                found = queries.chunks_exact(dim).map(search).collect();
                times.push(t.elapsed().as_secs_f64());
            }
            (recall(&found), nq as f64 / median(times))
        };
        let (r, qps) = run(&|q| {
            frozen
                .search(q, 10, ef)
                .into_iter()
                .map(|(i, _)| i as usize)
                .collect()
        });
        println!(
            "{}",
            serde_json::json!({"library": "ours (compact FP16)", "ef": ef, "recall_at_10": r, "qps": qps,
                               "build_seconds": build_s, "index_heap_mib": heap_mib})
        );
        if !shards.is_empty() {
            let (r, qps) = run(&|q| {
                let mut hits: Vec<(usize, f32)> = shards
                    .iter()
                    .enumerate()
                    .flat_map(|(s, g)| {
                        g.search(q, 10, ef)
                            .into_iter()
                            .map(move |(i, score)| (i as usize * shard_count + s, score))
                    })
                    .collect();
                hits.sort_by(|a, b| b.1.total_cmp(&a.1));
                hits.into_iter().take(10).map(|(i, _)| i).collect()
            });
            println!(
                "{}",
                serde_json::json!({"library": format!("ours ({shard_count} shards, FP16)"), "ef": ef,
                                   "recall_at_10": r, "qps": qps, "build_seconds": sharded_build_s,
                                   "index_heap_mib": sharded_heap_mib})
            );
        }
        if !skip_hnsw_rs {
            let (r, qps) = run(&|q| hnsw.search(q, 10, ef).into_iter().map(|n| n.d_id).collect());
            println!(
                "{}",
                serde_json::json!({"library": "hnsw_rs 0.3.5 search", "ef": ef, "recall_at_10": r, "qps": qps,
                                   "build_seconds": build_s})
            );
        }
    }
}
