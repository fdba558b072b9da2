//! Builds a sharded index over clustered 384-d vectors and reports memory per 100K vectors,
//! build time and single-thread search speed and recall@10 against exact search.
//!
//! usage: index_memory [--vectors 100000] [--shards 4] [--ef 100] [--queries 500]

use std::sync::Arc;
use std::time::Instant;

use reco_benches::clustered_vectors;
use vector_index::{shard_of, Filter, IndexParams, LocalShard, Shard, ShardItem, ShardedIndex};

const DIM: usize = 384;

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    let mut n = 100_000usize;
    let mut shards = 4usize;
    let mut ef = 100usize;
    let mut queries = 500usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let v: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            eprintln!("{flag} needs a number");
            std::process::exit(2)
        });
        match flag.as_str() {
            "--vectors" => n = v,
            "--shards" => shards = v,
            "--ef" => ef = v,
            "--queries" => queries = v,
            _ => {
                eprintln!("unknown flag {flag}");
                std::process::exit(2)
            }
        }
    }
    let data = clustered_vectors(n, DIM, 1_000, 7);
    let qs = clustered_vectors(queries, DIM, 1_000, 99);
    let params = IndexParams {
        dim: DIM,
        m: 16,
        ef_construction: 200,
        ef_search: ef,
        rebuild_threshold: usize::MAX / 2,
        precision: vector_index::Precision::Fp16,
    };
    let mut per: Vec<Vec<ShardItem>> = vec![Vec::new(); shards];
    for (i, v) in data.chunks_exact(DIM).enumerate() {
        let id: Arc<str> = Arc::from(format!("v{i}"));
        per[shard_of(&id, shards)].push(ShardItem {
            id,
            version: i as u64 + 1,
            vector: v.to_vec(),
            labels: Default::default(),
        });
    }
    let rss_before = rss_bytes();
    let started = Instant::now();
    let opened: Vec<Arc<dyn Shard>> = std::thread::scope(|s| {
        let handles: Vec<_> = per
            .into_iter()
            .enumerate()
            .map(|(i, items)| {
                s.spawn(move || LocalShard::open(i, params, None, items) as Arc<dyn Shard>)
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("shard build"))
            .collect()
    });
    let build_s = started.elapsed().as_secs_f64();
    let index = ShardedIndex::new(opened, params);
    let heap: usize = index.shards().iter().map(|s| s.memory_bytes()).sum();
    let rss_after = rss_bytes();

    // Exact ground truth, then timed single-thread searches shard by shard (no rayon).
    let truth: Vec<Vec<usize>> = qs
        .chunks_exact(DIM)
        .map(|q| {
            let mut s: Vec<(usize, f32)> = data
                .chunks_exact(DIM)
                .enumerate()
                .map(|(i, v)| (i, v.iter().zip(q).map(|(a, b)| a * b).sum()))
                .collect();
            s.select_nth_unstable_by(9, |a, b| b.1.total_cmp(&a.1));
            s.truncate(10);
            s.into_iter().map(|(i, _)| i).collect()
        })
        .collect();
    let started = Instant::now();
    let mut found = 0;
    for (q, t) in qs.chunks_exact(DIM).zip(&truth) {
        let mut hits: Vec<_> = index
            .shards()
            .iter()
            .flat_map(|s| s.search(q, 10, ef, &Filter::default()))
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(10);
        found += hits
            .iter()
            .filter(|h| t.iter().any(|&i| *h.item_id == *format!("v{i}")))
            .count();
    }
    let search_s = started.elapsed().as_secs_f64();
    let per_100k = |bytes: usize| bytes as f64 * 100_000.0 / n as f64 / (1 << 20) as f64;
    println!(
        "{}",
        serde_json::json!({
            "vectors": n,
            "dim": DIM,
            "shards": shards,
            "m": 16,
            "ef_construction": 200,
            "ef_search": ef,
            "build_seconds": build_s,
            "index_heap_mib_per_100k": per_100k(heap),
            "rss_growth_mib_per_100k": per_100k(rss_after.saturating_sub(rss_before)),
            "raw_fp16_vectors_mib_per_100k": per_100k(n * DIM * 2),
            "single_thread_qps_all_shards": queries as f64 / search_s,
            "recall_at_10": found as f64 / (10 * queries) as f64,
        })
    );
}
