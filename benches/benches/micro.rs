//! Criterion micro-benchmarks (seeded data): distance kernels and precision conversion,
//! batched scoring, per-shard HNSW search, sharded search with merge, and the cache contract
//! (query parsing, context hash, key). Run: `cargo bench -p reco-benches --bench micro`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gpu_batch::scorer::{CandidateMatrix, Precision};
use half::f16;
use reco_benches::clustered_vectors;
use shared_types::{cache_key, cache_window, context_hash, parse_query, RecommendationQuery};
use vector_index::distance::{best_dot, best_dot_f32, best_dot_i8, quantize_i8};
use vector_index::{shard_of, Filter, IndexParams, LocalShard, Shard, ShardItem, ShardedIndex};

const DIM: usize = 384;

fn kernels(c: &mut Criterion) {
    let v = clustered_vectors(2, DIM, 2, 1);
    let (a, b) = v.split_at(DIM);
    let b16: Vec<f16> = b.iter().map(|&x| f16::from_f32(x)).collect();
    let (a8, _) = quantize_i8(a);
    let (b8, _) = quantize_i8(b);
    let mut g = c.benchmark_group("kernels_384d");
    g.throughput(Throughput::Elements(DIM as u64));
    let (dot16, dot32, dot8) = (best_dot(), best_dot_f32(), best_dot_i8());
    g.bench_function("dot_f32", |bench| {
        bench.iter(|| dot32(black_box(a), black_box(b)))
    });
    g.bench_function("dot_f32_x_f16", |bench| {
        bench.iter(|| dot16(black_box(a), black_box(&b16)))
    });
    g.bench_function("dot_i8", |bench| {
        bench.iter(|| dot8(black_box(&a8), black_box(&b8)))
    });
    g.bench_function("to_f16", |bench| {
        bench.iter(|| {
            black_box(a)
                .iter()
                .map(|&x| f16::from_f32(x))
                .collect::<Vec<_>>()
        })
    });
    g.bench_function("quantize_i8", |bench| {
        bench.iter(|| quantize_i8(black_box(a)))
    });
    g.finish();
}

fn scoring(c: &mut Criterion) {
    let candidates = clustered_vectors(10_000, DIM, 64, 3);
    let queries = clustered_vectors(16, DIM, 64, 4);
    let mut g = c.benchmark_group("batched_top10_16q_x_10k");
    g.throughput(Throughput::Elements(16));
    for precision in [Precision::F32, Precision::F16, Precision::Int8] {
        let m = CandidateMatrix::new(&candidates, DIM, precision);
        g.bench_with_input(
            BenchmarkId::from_parameter(precision.name()),
            &m,
            |bench, m| bench.iter(|| m.top_k_batch(black_box(&queries), 10)),
        );
    }
    g.finish();
}

/// 20,000 vectors in `shards` shards (M=16, ef_construction=200), built once.
fn index(shards: usize) -> ShardedIndex {
    let params = IndexParams {
        dim: DIM,
        m: 16,
        ef_construction: 200,
        ef_search: 100,
        rebuild_threshold: usize::MAX / 2,
        precision: vector_index::Precision::Fp16,
    };
    let mut per: Vec<Vec<ShardItem>> = vec![Vec::new(); shards];
    for (i, v) in clustered_vectors(20_000, DIM, 200, 7)
        .chunks_exact(DIM)
        .enumerate()
    {
        let id: Arc<str> = Arc::from(format!("v{i}"));
        per[shard_of(&id, shards)].push(ShardItem {
            id,
            version: i as u64 + 1,
            vector: v.to_vec(),
            labels: Default::default(),
        });
    }
    let opened: Vec<Arc<dyn Shard>> = per
        .into_iter()
        .enumerate()
        .map(|(i, items)| LocalShard::open(i, params, None, items) as Arc<dyn Shard>)
        .collect();
    ShardedIndex::new(opened, params)
}

fn search(c: &mut Criterion) {
    let queries = clustered_vectors(64, DIM, 200, 99);
    let single = index(1);
    let sharded = index(4);
    let mut g = c.benchmark_group("hnsw_20k_ef100_top10");
    let mut i = 0;
    g.bench_function("one_shard", |bench| {
        bench.iter(|| {
            i = (i + 1) % 64;
            single.shards()[0].search(&queries[i * DIM..][..DIM], 10, 100, &Filter::default())
        })
    });
    // The service's path: all shards searched in parallel on rayon, then merged.
    g.bench_function("four_shards_parallel_merged", |bench| {
        bench.iter(|| {
            i = (i + 1) % 64;
            sharded.search(&queries[i * DIM..][..DIM], 10, None, &Filter::default())
        })
    });
    g.finish();
}

fn cache_contract(c: &mut Criterion) {
    let raw = "user_id=u42&limit=20&q=space%20adventure&time_of_day=evening&device=tv&exclude_genres=Horror,Drama";
    c.bench_function("cache_key_from_query_string", |bench| {
        bench.iter(|| {
            let req = parse_query::<RecommendationQuery>(Some(black_box(raw)))
                .unwrap()
                .normalise()
                .unwrap();
            let (start, _) = cache_window(3600, 1_700_000_000, "u42");
            cache_key(1, req.user_id.as_deref(), &context_hash(&req), start)
        })
    });
}

/// The personalisation stages: the bandit's lead decision over 5 candidates, the ontology's
/// family-friendly check of one item, and rule-based intent inference of one query.
fn personalisation(c: &mut Criterion) {
    use core_api::intent::IntentModel;
    use core_api::ontology::Ontology;
    use core_api::policy::{Features, Policy, PolicySettings};
    let mut g = c.benchmark_group("personalisation");
    let policy = Policy::new(
        PolicySettings {
            epsilon: 0.05,
            top_k: 5,
            prior_strength: 20.0,
            frozen: false,
        },
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        1,
    );
    let candidates: Vec<Features> = (0..5)
        .map(|i| {
            [
                0.9 - i as f32 * 0.1,
                0.2,
                0.3,
                0.4,
                0.5,
                0.6,
                0.1,
                0.9 - i as f32 * 0.1,
                1.0,
                0.0,
                0.0,
            ]
        })
        .collect();
    for x in &candidates {
        policy.update("global", x, 1.0);
    }
    g.bench_function("policy_decide_top5", |bench| {
        bench.iter(|| policy.decide("global", std::hint::black_box(&candidates)))
    });
    g.bench_function("policy_update", |bench| {
        bench.iter(|| policy.update("global", std::hint::black_box(&candidates[1]), 1.0))
    });
    let ontology = Ontology::bundled().expect("bundled ontology");
    let family = ontology.filter("family-friendly").expect("family filter");
    let genres = vec!["animation".to_string(), "comedy".into(), "family".into()];
    g.bench_function("ontology_family_filter_one_item", |bench| {
        bench.iter(|| family.admits(std::hint::black_box(&genres), None))
    });
    let intent = IntentModel::rules_only();
    g.bench_function("intent_rules_one_query", |bench| {
        bench.iter(|| {
            intent.infer(
                Some(std::hint::black_box(
                    "something funny about space for date night",
                )),
                None,
                None,
                None,
            )
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    kernels,
    scoring,
    search,
    cache_contract,
    personalisation
);
criterion_main!(benches);
