//! Vector index: recall against exact search, parity with hnsw_rs's own search on the same
//! graph, tombstones/delta behaviour, and snapshot reload.

use std::sync::Arc;

use hnsw_rs::prelude::Hnsw;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vector_index::graph::{BuildParams, ClampedDot, FrozenGraph};
use vector_index::{
    shard_of, Filter, IndexParams, Labels, LocalShard, Precision, Shard, ShardItem, ShardedIndex,
};
use vector_index::{Fp16, Fp32, Int8, Storage};

/// A fresh directory for one test's snapshots.
fn temp_dir(tag: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vector-index-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const DIM: usize = 384;

/// An item without labels.
fn item(id: impl Into<Arc<str>>, version: u64, vector: &[f32]) -> ShardItem {
    ShardItem {
        id: id.into(),
        version,
        vector: vector.to_vec(),
        labels: Labels::default(),
    }
}

fn all() -> Filter {
    Filter::default()
}

/// Clustered unit vectors: topics (cluster centres) plus per-item noise, the shape real
/// sentence embeddings have, rather than uniform noise (on which ANN is unrealistically hard).
fn clustered(n: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let gauss = move |rng: &mut StdRng| -> f32 {
        // Box-Muller
        let u1: f32 = rng.gen_range(1e-7..1.0);
        let u2: f32 = rng.gen();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    };
    let mut centre_rng = StdRng::seed_from_u64(42);
    let centres: Vec<f32> = (0..clusters * DIM)
        .map(|_| gauss(&mut centre_rng))
        .collect();
    let mut out = Vec::with_capacity(n * DIM);
    for _ in 0..n {
        let c = rng.gen_range(0..clusters);
        let mut v: Vec<f32> = (0..DIM)
            .map(|d| centres[c * DIM + d] + 1.2 * gauss(&mut rng))
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        out.extend(v);
    }
    out
}

fn exact_top(data: &[f32], q: &[f32], k: usize) -> Vec<usize> {
    let mut scored: Vec<(usize, f32)> = data
        .chunks_exact(DIM)
        .enumerate()
        .map(|(i, v)| (i, v.iter().zip(q).map(|(a, b)| a * b).sum()))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.into_iter().take(k).map(|(i, _)| i).collect()
}

fn params() -> IndexParams {
    IndexParams {
        dim: DIM,
        m: 16,
        ef_construction: 200,
        ef_search: 100,
        rebuild_threshold: 100_000,
        precision: Precision::Fp16,
    }
}

fn open_sharded(data: &[f32], shards: usize, dir: Option<&std::path::Path>) -> ShardedIndex {
    let mut per: Vec<Vec<ShardItem>> = vec![Vec::new(); shards];
    for (i, v) in data.chunks_exact(DIM).enumerate() {
        let id: Arc<str> = Arc::from(format!("item{i}"));
        per[shard_of(&id, shards)].push(item(id.clone(), i as u64 + 1, v));
    }
    let shards = per
        .into_iter()
        .enumerate()
        .map(|(i, items)| LocalShard::open(i, params(), dir, items) as Arc<dyn Shard>)
        .collect();
    ShardedIndex::new(shards, params())
}

#[test]
fn sharded_index_reaches_recall_at_10_of_095_with_defaults() {
    let n = 20_000;
    let data = clustered(n, 200, 7);
    let queries = clustered(200, 200, 99);
    let index = open_sharded(&data, 4, None);
    assert_eq!(index.len(), n);
    let mut found = 0;
    for q in queries.chunks_exact(DIM) {
        let truth = exact_top(&data, q, 10);
        let hits = index.search(q, 10, None, &all());
        assert_eq!(hits.len(), 10);
        assert!(
            hits.windows(2).all(|w| w[0].score >= w[1].score),
            "best first"
        );
        found += hits
            .iter()
            .filter(|h| truth.iter().any(|&t| *h.item_id == *format!("item{t}")))
            .count();
    }
    let recall = found as f64 / (10.0 * 200.0);
    assert!(recall >= 0.95, "recall@10 = {recall}");
}

#[test]
fn compact_search_matches_hnsw_rs_search_on_the_same_graph() {
    let data = clustered(5_000, 50, 3);
    let queries = clustered(100, 50, 4);
    let hnsw: Hnsw<f32, ClampedDot> = Hnsw::new(16, 5_000, 16, 200, ClampedDot);
    let rows: Vec<(&[f32], usize)> = data.chunks_exact(DIM).zip(0..).collect();
    hnsw.parallel_insert_slice(&rows);
    let frozen: FrozenGraph = FrozenGraph::freeze(&hnsw, &data, DIM);
    let (mut ours, mut theirs, mut overlap) = (0, 0, 0);
    for q in queries.chunks_exact(DIM) {
        let truth = exact_top(&data, q, 10);
        let a: Vec<usize> = frozen
            .search(q, 10, 64)
            .into_iter()
            .map(|(n, _)| n as usize)
            .collect();
        let b: Vec<usize> = hnsw.search(q, 10, 64).into_iter().map(|n| n.d_id).collect();
        ours += a.iter().filter(|x| truth.contains(x)).count();
        theirs += b.iter().filter(|x| truth.contains(x)).count();
        overlap += a.iter().filter(|x| b.contains(x)).count();
    }
    let total = 1000.0;
    let (ours, theirs, overlap) = (
        ours as f64 / total,
        theirs as f64 / total,
        overlap as f64 / total,
    );
    assert!(
        overlap >= 0.97,
        "same neighbours as hnsw_rs: overlap {overlap}"
    );
    assert!(ours >= theirs - 0.01, "recall {ours} vs hnsw_rs {theirs}");
}

/// Recall@10 of `search` over `queries` against exact search on `data`.
fn recall_of(data: &[f32], queries: &[f32], search: impl Fn(&[f32]) -> Vec<usize>) -> f64 {
    let mut found = 0;
    for q in queries.chunks_exact(DIM) {
        let truth = exact_top(data, q, 10);
        found += search(q).iter().filter(|x| truth.contains(x)).count();
    }
    found as f64 / (10 * queries.len() / DIM) as f64
}

fn top10<S: Storage>(g: &FrozenGraph<S>, q: &[f32], ef: usize) -> Vec<usize> {
    g.search(q, 10, ef)
        .into_iter()
        .map(|(n, _)| n as usize)
        .collect()
}

/// Our parallel construction against the reference builder (hnsw_rs) on the same data: at
/// least its recall at the same ef, and a graph that passes the load-time link validation.
#[test]
fn our_build_reaches_the_reference_builders_recall() {
    let data = clustered(6_000, 60, 31);
    let queries = clustered(150, 60, 32);
    let params = BuildParams {
        m: 16,
        ef_construction: 200,
    };
    let ours: FrozenGraph = FrozenGraph::build(&data, DIM, params);
    let reference: FrozenGraph = FrozenGraph::build_with_hnsw_rs(&data, DIM, params);
    for ef in [20, 64] {
        let r_ours = recall_of(&data, &queries, |q| top10(&ours, q, ef));
        let r_ref = recall_of(&data, &queries, |q| top10(&reference, q, ef));
        assert!(
            r_ours >= r_ref - 0.01,
            "ef {ef}: ours {r_ours} vs hnsw_rs {r_ref}"
        );
        if ef == 64 {
            assert!(r_ours >= 0.95, "recall@10 {r_ours}");
        }
    }
    // The saved form re-checks every link and level invariant on load.
    let mut bytes = Vec::new();
    ours.write_to(&mut bytes).unwrap();
    let loaded: FrozenGraph = FrozenGraph::read_from(&mut bytes.as_slice()).unwrap();
    assert_eq!(loaded.len(), 6_000);
    // One thread or many, the graph is a valid HNSW graph of the same quality.
    let single: FrozenGraph = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| FrozenGraph::build(&data, DIM, params));
    let r_single = recall_of(&data, &queries, |q| top10(&single, q, 64));
    assert!(r_single >= 0.95, "one-thread build recall {r_single}");
}

/// A graph written at an aligned offset of a file and mapped back searches exactly like the
/// built one, holds its vectors and level-0 links in the file rather than on the heap, and a
/// damaged or truncated file is refused rather than trusted.
#[test]
fn a_mapped_graph_searches_like_the_built_one() {
    use std::io::Write;
    use vector_index::graph::{padding, SECTION_ALIGN};
    use vector_index::MappedFile;
    let data = clustered(2_000, 20, 51);
    let queries = clustered(40, 20, 52);
    let params = BuildParams {
        m: 16,
        ef_construction: 100,
    };
    let built: FrozenGraph = FrozenGraph::build(&data, DIM, params);
    let dir = temp_dir("mapped");
    let path = dir.join("graph.bin");
    let mut bytes = vec![7u8; SECTION_ALIGN];
    built.write_to(&mut bytes).unwrap();
    assert_eq!(padding(bytes.len()), 0, "whole sections");
    std::fs::write(&path, &bytes).unwrap();
    // SAFETY (here and below): the test's own files, never changed while mapped.
    let file = unsafe { MappedFile::open(&path) }.unwrap();
    let (mapped, end) = FrozenGraph::<Fp16>::map(&file, SECTION_ALIGN).unwrap();
    assert_eq!(end, bytes.len());
    for q in queries.chunks_exact(DIM) {
        assert_eq!(mapped.search(q, 10, 64), built.search(q, 10, 64));
    }
    let vectors_and_level0 = 2_000 * DIM * 2 + 2_000 * (1 + 2 * 16) * 4;
    assert_eq!(mapped.mapped_bytes(), vectors_and_level0);
    assert_eq!(built.mapped_bytes(), 0);
    assert_eq!(built.heap_bytes() - mapped.heap_bytes(), vectors_and_level0);
    // Growing a mapped graph copies it to the heap first; the file is untouched.
    let grown = mapped.clone().insert_rows(&queries[..DIM], params);
    assert_eq!(grown.len(), 2_001);
    assert_eq!(grown.mapped_bytes(), 0);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    // A misaligned offset, a truncated file, a link out of range: refused.
    assert!(FrozenGraph::<Fp16>::map(&file, 8).is_err());
    let cut = dir.join("cut.bin");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let cut = unsafe { MappedFile::open(&cut) }.unwrap();
    assert!(FrozenGraph::<Fp16>::map(&cut, SECTION_ALIGN).is_err());
    // An FP16 graph read as INT8: refused by its row size.
    assert!(FrozenGraph::<Int8>::map(&file, SECTION_ALIGN).is_err());
    // The file's prefix, the graph's two-section header, then the vectors.
    let level0_at = SECTION_ALIGN * 3 + 2_000 * DIM * 2;
    let mut bad = bytes.clone();
    bad[level0_at + 4..level0_at + 8].copy_from_slice(&5_000u32.to_le_bytes());
    let bad_path = dir.join("bad.bin");
    std::fs::File::create(&bad_path)
        .unwrap()
        .write_all(&bad)
        .unwrap();
    let bad_file = unsafe { MappedFile::open(&bad_path) }.unwrap();
    let err = FrozenGraph::<Fp16>::map(&bad_file, SECTION_ALIGN)
        .err()
        .expect("a link past the last node is refused");
    assert!(err.to_string().contains("links"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// INT8 rows for the walk and FP16 rows for the final order: recall at least INT8's alone
/// and within a hair of FP16's.
#[test]
fn int8_search_with_an_fp16_rerank_recovers_fp16_recall() {
    use vector_index::graph::search_reranked;
    let data = clustered(4_000, 40, 61);
    let queries = clustered(100, 40, 62);
    let params = BuildParams {
        m: 16,
        ef_construction: 200,
    };
    let fp16: FrozenGraph<Fp16> = FrozenGraph::build(&data, DIM, params);
    let int8: FrozenGraph<Int8> = fp16.relink(&data);
    let r16 = recall_of(&data, &queries, |q| top10(&fp16, q, 40));
    let r8 = recall_of(&data, &queries, |q| top10(&int8, q, 40));
    let reranked = recall_of(&data, &queries, |q| {
        search_reranked(&int8, &fp16, q, 10, 40, 30)
            .into_iter()
            .map(|(n, _)| n as usize)
            .collect()
    });
    assert!(reranked >= r8, "re-ranked {reranked} vs INT8 {r8}");
    assert!(
        reranked >= r16 - 0.005,
        "re-ranked {reranked} vs FP16 {r16}"
    );
    // Scores come from the FP16 rows.
    let q = &queries[..DIM];
    assert_eq!(
        search_reranked(&int8, &fp16, q, 5, 40, 30)[0],
        fp16.scan(q, 1, 0..4_000)[0]
    );
}

/// Rows inserted into a built graph are found as well as rows built in from the start, and
/// the old nodes keep their numbers.
#[test]
fn rows_inserted_into_a_built_graph_are_searchable() {
    let data = clustered(5_000, 50, 41);
    let queries = clustered(150, 50, 42);
    let params = BuildParams {
        m: 16,
        ef_construction: 200,
    };
    let first: FrozenGraph = FrozenGraph::build(&data[..3_000 * DIM], DIM, params);
    let grown = first.insert_rows(&data[3_000 * DIM..], params);
    assert_eq!(grown.len(), 5_000);
    let r = recall_of(&data, &queries, |q| top10(&grown, q, 64));
    assert!(r >= 0.95, "recall@10 after inserting 2,000 rows: {r}");
    for i in [0usize, 2_999, 3_000, 4_999] {
        let top = grown.search(&data[i * DIM..(i + 1) * DIM], 1, 50);
        assert_eq!(top[0].0 as usize, i, "row {i} finds itself");
    }
    let mut bytes = Vec::new();
    grown.write_to(&mut bytes).unwrap();
    FrozenGraph::<Fp16>::read_from(&mut bytes.as_slice()).expect("valid links after insert");
    // Growing an empty graph is a build.
    let empty: FrozenGraph = FrozenGraph::build(&[], DIM, params);
    let from_empty = empty.insert_rows(&data[..500 * DIM], params);
    assert_eq!(top10(&from_empty, &data[..DIM], 50)[0], 0);
}

/// The same links with FP32, FP16 and INT8 vectors: FP16 loses almost nothing against FP32,
/// INT8 a little, and memory shrinks with the element size.
#[test]
fn every_storage_precision_searches_the_same_graph_with_bounded_recall_loss() {
    let data = clustered(4_000, 40, 21);
    let queries = clustered(100, 40, 22);
    let hnsw: Hnsw<f32, ClampedDot> = Hnsw::new(16, 4_000, 16, 200, ClampedDot);
    let rows: Vec<(&[f32], usize)> = data.chunks_exact(DIM).zip(0..).collect();
    hnsw.parallel_insert_slice(&rows);
    fn recall<S: Storage>(g: &FrozenGraph<S>, data: &[f32], queries: &[f32]) -> f64 {
        let found: usize = queries
            .chunks_exact(DIM)
            .map(|q| {
                let truth = exact_top(data, q, 10);
                g.search(q, 10, 80)
                    .iter()
                    .filter(|(n, _)| truth.contains(&(*n as usize)))
                    .count()
            })
            .sum();
        found as f64 / (10 * queries.len() / DIM) as f64
    }
    let fp32: FrozenGraph<Fp32> = FrozenGraph::freeze(&hnsw, &data, DIM);
    let fp16: FrozenGraph<Fp16> = FrozenGraph::freeze(&hnsw, &data, DIM);
    let int8: FrozenGraph<Int8> = FrozenGraph::freeze(&hnsw, &data, DIM);
    let (r32, r16, r8) = (
        recall(&fp32, &data, &queries),
        recall(&fp16, &data, &queries),
        recall(&int8, &data, &queries),
    );
    assert!(r32 >= 0.9, "FP32 recall {r32}");
    assert!(r16 >= r32 - 0.01, "FP16 recall {r16} vs FP32 {r32}");
    assert!(r8 >= r32 - 0.05, "INT8 recall {r8} vs FP32 {r32}");
    let links = fp32.heap_bytes() - data.len() * 4;
    assert_eq!(fp16.heap_bytes(), links + data.len() * 2);
    assert_eq!(int8.heap_bytes(), links + data.len() + 4 * 4_000);
    // Scores are inner products at each precision's resolution.
    let q = &data[..DIM];
    for (_, score) in int8.search(q, 3, 40) {
        let exact = fp32.search(q, 3, 40);
        assert!(exact.iter().any(|(_, s)| (s - score).abs() < 0.02));
    }
}

#[test]
fn query_equal_to_a_stored_vector_finds_itself() {
    let data = clustered(500, 10, 5);
    let g: FrozenGraph = FrozenGraph::build(
        &data,
        DIM,
        BuildParams {
            m: 16,
            ef_construction: 100,
        },
    );
    for i in [0usize, 17, 499] {
        let top = g.search(&data[i * DIM..(i + 1) * DIM], 1, 50);
        assert_eq!(top[0].0 as usize, i);
        assert!((top[0].1 - 1.0).abs() < 2e-3);
    }
    let empty: FrozenGraph = FrozenGraph::build(
        &[],
        DIM,
        BuildParams {
            m: 16,
            ef_construction: 100,
        },
    );
    assert!(empty.search(&data[..DIM], 5, 50).is_empty());
}

#[test]
fn upserts_and_deletes_are_visible_at_once_and_survive_rebuild_and_reload() {
    let data = clustered(1_000, 20, 11);
    let dir = temp_dir("shard");
    let mut p = params();
    p.rebuild_threshold = 50;
    let items: Vec<ShardItem> = data
        .chunks_exact(DIM)
        .enumerate()
        .map(|(i, v)| item(format!("item{i}"), i as u64 + 1, v))
        .collect();
    let shard = LocalShard::open(0, p, Some(&dir), items.clone());
    assert_eq!(
        shard.layout(),
        (1_000, 0),
        "initial build freezes everything"
    );

    // Delete: gone immediately, although its node is still in the graph.
    let q0 = &data[..DIM];
    assert_eq!(&*shard.search(q0, 1, 50, &all())[0].item_id, "item0");
    shard.remove("item0");
    assert!(shard
        .search(q0, 10, 50, &all())
        .iter()
        .all(|h| &*h.item_id != "item0"));

    // Replace item1's vector with item2's: item1 now answers item2's query, old one is gone.
    let q2 = data[2 * DIM..3 * DIM].to_vec();
    shard.upsert(Arc::from("item1"), 5_000, &q2, Labels::default());
    let top: Vec<String> = shard
        .search(&q2, 2, 50, &all())
        .iter()
        .map(|h| h.item_id.to_string())
        .collect();
    assert!(
        top.contains(&"item1".to_string()) && top.contains(&"item2".to_string()),
        "{top:?}"
    );
    assert_eq!(shard.len(), 999);

    // Enough changes trigger a background rebuild that folds the delta into the graph.
    for i in 0..120u64 {
        shard.upsert(
            Arc::from(format!("new{i}")),
            10_000 + i,
            &data[(100 + i as usize) * DIM..(101 + i as usize) * DIM],
            Labels::default(),
        );
    }
    shard.wait_idle();
    let (frozen, delta) = shard.layout();
    assert!(
        delta < 120 && frozen > 1_000,
        "rebuild folded the delta: frozen {frozen}, delta {delta}"
    );
    assert!(shard
        .search(q0, 10, 50, &all())
        .iter()
        .all(|h| &*h.item_id != "item0"));

    // Reload from the snapshot with the same live items: nothing to rebuild, same answers.
    let mut live: Vec<ShardItem> = items.into_iter().skip(2).collect();
    live.push(item("item1", 5_000, &q2));
    for i in 0..120u64 {
        live.push(item(
            format!("new{i}"),
            10_000 + i,
            &data[(100 + i as usize) * DIM..(101 + i as usize) * DIM],
        ));
    }
    let before: Vec<Arc<str>> = shard
        .search(&q2, 10, 100, &all())
        .into_iter()
        .map(|h| h.item_id)
        .collect();
    shard.wait_idle();
    // The rebuilt graph is served from the snapshot it wrote, and so is the reopened one.
    assert!(shard.mapped_bytes() > 0, "served from the mapped snapshot");
    let reopened = LocalShard::open(0, p, Some(&dir), live);
    let (_, delta) = reopened.layout();
    assert!(delta < 120, "snapshot reused, delta {delta}");
    assert!(
        reopened.mapped_bytes() > 0,
        "started by mapping the snapshot"
    );
    let after: Vec<Arc<str>> = reopened
        .search(&q2, 10, 100, &all())
        .into_iter()
        .map(|h| h.item_id)
        .collect();
    assert_eq!(before, after);
}

/// A growing shard inserts its delta into the graph (the stale node stays, filtered), and a
/// shard with many replaced or deleted items is rebuilt without them.
#[test]
fn a_growing_shard_inserts_and_a_churned_shard_rebuilds() {
    let data = clustered(2_000, 20, 51);
    let mut p = params();
    p.rebuild_threshold = 100;
    let items: Vec<ShardItem> = data[..1_000 * DIM]
        .chunks_exact(DIM)
        .enumerate()
        .map(|(i, v)| item(format!("item{i}"), 1 + i as u64, v))
        .collect();
    let shard = LocalShard::open(0, p, None, items);
    shard.remove("item3");
    for i in 1_000..1_200usize {
        shard.upsert(
            Arc::from(format!("item{i}")),
            1 + i as u64,
            &data[i * DIM..(i + 1) * DIM],
            Labels::default(),
        );
    }
    shard.wait_idle();
    // Inserted: the 1,000 old nodes (item3's included: a rebuild would have dropped it) plus
    // the new ones, a few of which may still wait in the delta.
    let (frozen, delta) = shard.layout();
    assert!(
        frozen > 1_000 && delta <= 100,
        "frozen {frozen}, delta {delta}"
    );
    assert_eq!(frozen + delta, 1_200);
    assert_eq!(shard.len(), 1_199);
    for i in [0usize, 1_000, 1_199] {
        let top = shard.search(&data[i * DIM..(i + 1) * DIM], 1, 50, &all());
        assert_eq!(*top[0].item_id, *format!("item{i}"));
    }
    assert!(shard
        .search(&data[3 * DIM..4 * DIM], 10, 50, &all())
        .iter()
        .all(|h| &*h.item_id != "item3"));
    // Deleting a third of the items: once a fifth of the nodes are stale the shard is rebuilt
    // from the live vectors (in the background, while the deletes go on), which an insert
    // never does: the graph shrinks.
    for i in 0..400 {
        shard.remove(&format!("item{i}"));
    }
    shard.wait_idle();
    let (frozen, delta) = shard.layout();
    assert!(
        (800..1_000).contains(&frozen) && delta == 0,
        "frozen {frozen}, delta {delta}"
    );
    assert_eq!(shard.len(), 800);
    let top = shard.search(&data[500 * DIM..501 * DIM], 1, 50, &all());
    assert_eq!(&*top[0].item_id, "item500");
}

/// Filtered search returns only admitted items, the nearest of them, whether the filter is
/// broad (graph walk) or narrow (exact scan), in the graph and in the delta, and after a
/// reload from the snapshot.
#[test]
fn filtered_search_returns_the_nearest_admitted_items() {
    let n = 4_000;
    let data = clustered(n, 40, 61);
    let queries = clustered(60, 40, 62);
    // Every item has a "kind" label (10 kinds) and one in 200 is "rare".
    let labels_of = |i: usize| -> Labels {
        let mut l: Vec<Arc<str>> = vec![Arc::from(format!("kind:{}", i % 10))];
        if i % 200 == 7 {
            l.push(Arc::from("rare"));
        }
        l.into()
    };
    let dir = temp_dir("filter");
    let items: Vec<ShardItem> = data
        .chunks_exact(DIM)
        .enumerate()
        .map(|(i, v)| ShardItem {
            labels: labels_of(i),
            ..item(format!("item{i}"), 1 + i as u64, v)
        })
        .collect();
    let shard = LocalShard::open(0, params(), Some(&dir), items.clone());
    let exact = |q: &[f32], admit: &dyn Fn(usize) -> bool| -> Vec<String> {
        let mut scored: Vec<(usize, f32)> = data
            .chunks_exact(DIM)
            .enumerate()
            .filter(|(i, _)| admit(*i))
            .map(|(i, v)| (i, v.iter().zip(q).map(|(a, b)| a * b).sum()))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored
            .iter()
            .take(10)
            .map(|(i, _)| format!("item{i}"))
            .collect()
    };
    let cases: [(Filter, &dyn Fn(usize) -> bool); 3] = [
        // 40% admitted: a graph walk.
        (
            Filter::default().any_of(["kind:1", "kind:2", "kind:3", "kind:4"]),
            &|i| (1..=4).contains(&(i % 10)),
        ),
        // 0.5%: an exact scan of the 20 rare items, minus a banned kind.
        (
            Filter::default().any_of(["rare"]).none_of(["kind:7"]),
            &|i| i % 200 == 7 && i % 10 != 7,
        ),
        (
            Filter::default().any_of(["kind:0"]).none_of(["kind:0"]),
            &|_| false,
        ),
    ];
    let check = |shard: &LocalShard| {
        for (filter, admit) in &cases {
            let mut found = 0;
            let mut total = 0;
            for q in queries.chunks_exact(DIM) {
                let hits = shard.search(q, 10, 100, filter);
                assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
                for h in &hits {
                    let i: usize = h.item_id[4..].parse().unwrap();
                    assert!(admit(i), "{} is not admitted by {filter:?}", h.item_id);
                }
                let truth = exact(q, *admit);
                total += truth.len();
                found += hits
                    .iter()
                    .filter(|h| truth.contains(&h.item_id.to_string()))
                    .count();
            }
            let recall = found as f64 / total.max(1) as f64;
            assert!(total == 0 || recall >= 0.95, "{filter:?}: recall {recall}");
        }
    };
    check(&shard);
    // Items in the delta are filtered as well: a new rare item equal to a query is found.
    let q = &queries[..DIM];
    shard.upsert(Arc::from("fresh"), 100_000, q, labels_of(7));
    let rare = Filter::default().any_of(["rare"]);
    assert_eq!(&*shard.search(q, 1, 100, &rare)[0].item_id, "fresh");
    let not_rare = Filter::default().none_of(["rare"]);
    assert!(shard
        .search(q, 10, 100, &not_rare)
        .iter()
        .all(|h| &*h.item_id != "fresh"));
    shard.remove("fresh");
    // The labels survive the snapshot.
    let reopened = LocalShard::open(0, params(), Some(&dir), items);
    assert_eq!(reopened.layout(), (n, 0), "snapshot reused");
    check(&reopened);
}

/// A shard served with the INT8 walk and an FP16 re-rank: FP16's recall and scores, filters
/// applied, and both graphs in the snapshot, which reopens mapped at either precision.
#[test]
fn a_shard_walking_int8_with_an_fp16_rerank_keeps_fp16_recall() {
    let n = 4_000;
    let data = clustered(n, 40, 71);
    let queries = clustered(100, 40, 72);
    let dir = temp_dir("int8-rerank");
    let int8 = IndexParams {
        precision: Precision::Int8Rerank { rerank: 40 },
        rebuild_threshold: 100,
        ..params()
    };
    let items: Vec<ShardItem> = data
        .chunks_exact(DIM)
        .enumerate()
        .map(|(i, v)| ShardItem {
            labels: vec![Arc::from(format!("kind:{}", i % 4))].into(),
            ..item(format!("item{i}"), 1 + i as u64, v)
        })
        .collect();
    let dot = |i: usize, q: &[f32]| -> f32 {
        data[i * DIM..(i + 1) * DIM]
            .iter()
            .zip(q)
            .map(|(a, b)| a * b)
            .sum()
    };
    let odd = Filter::default().any_of(["kind:1", "kind:3"]);
    // Recall of the shard against exact search, unfiltered and filtered; every score is the
    // FP16 inner product, not the INT8 estimate.
    let check = |shard: &LocalShard| -> (f64, f64) {
        let mut found = [0usize; 2];
        for q in queries.chunks_exact(DIM) {
            for (f, filter) in [all(), odd.clone()].iter().enumerate() {
                let admit = |i: usize| f == 0 || i % 2 == 1;
                let mut truth: Vec<usize> = (0..n).filter(|&i| admit(i)).collect();
                truth.sort_by(|&a, &b| dot(b, q).total_cmp(&dot(a, q)));
                truth.truncate(10);
                let hits = shard.search(q, 10, 100, filter);
                assert_eq!(hits.len(), 10);
                for h in &hits {
                    let i: usize = h.item_id[4..].parse().unwrap();
                    assert!(admit(i), "{} is not admitted by {filter:?}", h.item_id);
                    assert!((h.score - dot(i, q)).abs() < 2e-3, "an FP16 score");
                    found[f] += truth.contains(&i) as usize;
                }
            }
        }
        let total = 10.0 * (queries.len() / DIM) as f64;
        (found[0] as f64 / total, found[1] as f64 / total)
    };
    let shard = LocalShard::open(0, int8, Some(&dir), items.clone());
    assert!(shard.walks_int8());
    let (all_recall, odd_recall) = check(&shard);
    // The baseline: the FP16 walk of the very same graph (the snapshot just written).
    let mapped_fp16_only = LocalShard::open(0, params(), Some(&dir), items.clone());
    assert!(!mapped_fp16_only.walks_int8());
    let (fp16_all, fp16_odd) = check(&mapped_fp16_only);
    assert!(
        all_recall >= fp16_all - 0.005 && odd_recall >= fp16_odd - 0.005,
        "INT8 + re-rank {all_recall} / {odd_recall} vs FP16 {fp16_all} / {fp16_odd}"
    );
    assert!(all_recall >= 0.95 && odd_recall >= 0.95);

    // The snapshot holds both graphs: reopened mapped, with the same answers.
    let reopened = LocalShard::open(0, int8, Some(&dir), items.clone());
    assert_eq!(reopened.layout(), (n, 0), "snapshot reused");
    assert!(reopened.walks_int8());
    assert!(
        reopened.mapped_bytes() > mapped_fp16_only.mapped_bytes(),
        "the INT8 graph is mapped too"
    );
    let q = &queries[..DIM];
    let ids = |s: &LocalShard| -> Vec<Arc<str>> {
        s.search(q, 10, 100, &all())
            .into_iter()
            .map(|h| h.item_id)
            .collect()
    };
    assert_eq!(ids(&shard), ids(&reopened));

    // A rebuild keeps both graphs, and the new items are found through the INT8 walk. The
    // 401st insert passes a tenth of the graph and starts the rebuild, which takes them all.
    for i in 0..401 {
        reopened.upsert(
            Arc::from(format!("new{i}")),
            100_000 + i as u64,
            &queries[(i % 100) * DIM..(i % 100 + 1) * DIM],
            vec![Arc::from("kind:1")].into(),
        );
    }
    reopened.wait_idle();
    let (frozen, delta) = reopened.layout();
    assert!(
        frozen > n && delta == 0,
        "rebuilt: {frozen} frozen, {delta} delta"
    );
    assert!(reopened.walks_int8() && reopened.mapped_bytes() > 0);
    let found = reopened.search(q, 2, 100, &odd);
    assert!(
        found.iter().any(|h| h.item_id.starts_with("new")),
        "{found:?}"
    );

    // An FP16-only snapshot opened for the re-rank derives the INT8 graph at once.
    let dir16 = temp_dir("int8-from-fp16");
    drop(LocalShard::open(0, params(), Some(&dir16), items.clone()));
    let fp16_mapped = LocalShard::open(0, params(), Some(&dir16), items.clone()).mapped_bytes();
    let derived = LocalShard::open(0, int8, Some(&dir16), items);
    assert_eq!(derived.layout(), (n, 0), "snapshot reused");
    assert!(derived.walks_int8());
    assert!(
        derived.mapped_bytes() > fp16_mapped,
        "the derived INT8 graph is written to the snapshot and mapped"
    );
    let (all_recall, odd_recall) = check(&derived);
    assert!(all_recall >= 0.95 && odd_recall >= 0.95);
}

#[test]
fn corrupt_snapshot_is_rebuilt_not_fatal() {
    let data = clustered(300, 5, 13);
    let dir = temp_dir("corrupt");
    let items: Vec<ShardItem> = data
        .chunks_exact(DIM)
        .enumerate()
        .map(|(i, v)| item(format!("i{i}"), 1 + i as u64, v))
        .collect();
    let mut p = params();
    p.rebuild_threshold = 10;
    drop(LocalShard::open(0, p, Some(&dir), items.clone()));
    let snap = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(&snap).unwrap();
    std::fs::write(&snap, &bytes[..bytes.len() / 2]).unwrap();
    let shard = LocalShard::open(0, p, Some(&dir), items);
    assert_eq!(shard.layout(), (300, 0));
    assert_eq!(&*shard.search(&data[..DIM], 1, 50, &all())[0].item_id, "i0");
}

#[test]
fn shard_assignment_is_stable() {
    // CRC-32 values are fixed forever; a change would reshuffle every deployed index.
    assert_eq!(
        shard_of("tt0076759", 20),
        (crc32fast::hash(b"tt0076759") % 20) as usize
    );
    assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    let counts = (0..10_000).fold([0usize; 4], |mut c, i| {
        c[shard_of(&format!("item{i}"), 4)] += 1;
        c
    });
    assert!(counts.iter().all(|&c| c > 2_000), "balanced: {counts:?}");
}

/// Every node can be found: a search as wide as the graph returns all of it, for small and
/// larger graphs, built at once or grown by inserts (pruning alone can orphan nodes).
#[test]
fn every_node_is_reachable() {
    let params = BuildParams {
        m: 16,
        ef_construction: 200,
    };
    for (n, seed) in [(50usize, 71u64), (120, 72), (300, 73), (2_000, 74)] {
        let data = clustered(n, 5, seed);
        let g: FrozenGraph = FrozenGraph::build(&data, DIM, params);
        assert_eq!(
            g.search(&data[..DIM], n, n).len(),
            n,
            "{n} nodes built at once"
        );
        let half = n / 2 * DIM;
        let grown = FrozenGraph::<Fp16>::build(&data[..half], DIM, params)
            .insert_rows(&data[half..], params);
        assert_eq!(grown.search(&data[..DIM], n, n).len(), n, "{n} nodes grown");
    }
}
