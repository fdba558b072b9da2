//! Our HNSW search path on a prepared data set (see `benches/ann/prepare_glove.py`): builds
//! the graph with hnsw_rs (M=16, ef_construction=200), freezes it into the compact layout at
//! each requested storage precision (FP32, FP16, INT8: the same links, different vectors; and
//! INT8 whose best 40 candidates are re-scored on FP16 rows), and
//! measures recall@10 and queries/s for several ef values, for the compact search and for
//! hnsw_rs's own search on the very same graph. With `--shards N` it also splits the data over
//! N FP16 graphs (row i to shard i mod N), searches every shard for the top 10 and merges
//! them, as the sharded index does. `--threads 1,2` repeats every measurement with queries
//! spread over that many threads (hnsw_rs's own search only on one). One JSON object per line.
//!
//! With `--index-dir DIR` the compact graphs are saved there after the build and loaded from
//! there by later invocations (with the recorded build times), so `benches/ann/run.sh` can
//! interleave short measuring rounds with the peers'; hnsw_rs's own search is measured only by
//! the invocation that builds (its graph is not saved).
//!
//! With `--filters 0.5,0.1,0.01,0.001` it measures filtered search instead, on the FP16 graph:
//! for filters passing each share of the items (the subset of `benches/ann/filter_gt.py`),
//! recall@10 against the exact filtered top-10 and queries/s of our per-query strategy choice,
//! of the filtered graph walk and the exact scan forced, and of post-filtering (the unfiltered
//! search's `ef` results, filtered).
//!
//! usage: ann_bench DATA_DIR [--efs 10,20,40,80,120,200] [--rounds 3] [--skip-hnsw-rs]
//!                           [--shards N] [--precisions fp32,fp16,int8,int8-rerank] [--threads 1,2]
//!                           [--index-dir DIR] [--filters 0.5,0.1] [--filter-efs 100]

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Instant;

use hnsw_rs::prelude::Hnsw;
use rayon::prelude::*;
use vector_index::graph::{search_reranked, BuildParams, ClampedDot, FrozenGraph};
use vector_index::{Fp16, Fp32, Int8, NodeSet, Storage};

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

/// The compact graph at one of the storage precisions, searched through one signature.
enum Compact {
    Fp32(FrozenGraph<Fp32>),
    Fp16(FrozenGraph<Fp16>),
    Int8(FrozenGraph<Int8>),
    /// INT8 walk, the best `RERANK` re-scored on the FP16 rows (`graph::search_reranked`).
    Int8Rerank(FrozenGraph<Int8>, FrozenGraph<Fp16>),
}

/// Candidates the INT8 walk hands to the FP16 re-rank.
const RERANK: usize = 40;

impl Compact {
    /// `graph`'s links with `base` stored at precision `name`.
    fn relink(name: &str, graph: &FrozenGraph<Fp16>, base: &[f32]) -> Self {
        match name {
            "fp32" => Self::Fp32(graph.relink(base)),
            "fp16" => Self::Fp16(graph.relink(base)),
            "int8" => Self::Int8(graph.relink(base)),
            "int8-rerank" => Self::Int8Rerank(graph.relink(base), graph.relink(base)),
            other => panic!("unknown precision '{other}' (fp32, fp16, int8 or int8-rerank)"),
        }
    }

    fn load(name: &str, path: &Path) -> Self {
        let mut r = BufReader::new(File::open(path).expect("saved graph"));
        match name {
            "fp32" => Self::Fp32(FrozenGraph::read_from(&mut r).expect("saved graph")),
            "fp16" => Self::Fp16(FrozenGraph::read_from(&mut r).expect("saved graph")),
            "int8" => Self::Int8(FrozenGraph::read_from(&mut r).expect("saved graph")),
            "int8-rerank" => Self::Int8Rerank(
                FrozenGraph::read_from(&mut r).expect("saved graph"),
                FrozenGraph::read_from(&mut r).expect("saved graph"),
            ),
            other => panic!("unknown precision '{other}' (fp32, fp16, int8 or int8-rerank)"),
        }
    }

    fn save(&self, path: &Path) {
        let mut w = BufWriter::new(File::create(path).expect("index dir"));
        match self {
            Self::Fp32(g) => g.write_to(&mut w),
            Self::Fp16(g) => g.write_to(&mut w),
            Self::Int8(g) => g.write_to(&mut w),
            Self::Int8Rerank(coarse, fine) => coarse.write_to(&mut w).and(fine.write_to(&mut w)),
        }
        .expect("write graph");
    }

    fn label(&self) -> String {
        let name = match self {
            Self::Fp32(_) => Fp32::NAME,
            Self::Fp16(_) => Fp16::NAME,
            Self::Int8(_) => Int8::NAME,
            Self::Int8Rerank(..) => return format!("ours (INT8 + FP16 re-rank of {RERANK})"),
        };
        format!("ours (compact {name})")
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Self::Fp32(g) => g.heap_bytes(),
            Self::Fp16(g) => g.heap_bytes(),
            Self::Int8(g) => g.heap_bytes(),
            // The FP16 rows too: here they are on the heap (the service would map them).
            Self::Int8Rerank(coarse, fine) => coarse.heap_bytes() + fine.len() * fine.dim() * 2,
        }
    }

    fn search(&self, q: &[f32], ef: usize) -> Vec<usize> {
        let hits = match self {
            Self::Fp32(g) => g.search(q, 10, ef),
            Self::Fp16(g) => g.search(q, 10, ef),
            Self::Int8(g) => g.search(q, 10, ef),
            Self::Int8Rerank(coarse, fine) => {
                search_reranked(coarse, fine, q, 10, ef, RERANK.min(ef))
            }
        };
        hits.into_iter().map(|(i, _)| i as usize).collect()
    }
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
    let list = |name: &str, default: &str| -> Vec<String> {
        flag(name)
            .unwrap_or_else(|| default.into())
            .split(',')
            .map(str::to_owned)
            .collect()
    };
    let efs: Vec<usize> = list("--efs", "10,20,40,80,120,200")
        .iter()
        .map(|e| e.parse().expect("ef"))
        .collect();
    let rounds: usize = flag("--rounds").map_or(3, |r| r.parse().expect("rounds"));
    let skip_hnsw_rs = args.iter().any(|a| a == "--skip-hnsw-rs");
    let shard_count: usize = flag("--shards").map_or(1, |s| s.parse().expect("shards"));
    let precisions = list("--precisions", "fp16");
    let build_threads: Vec<usize> = list("--build-threads", "1")
        .iter()
        .map(|t| t.parse().expect("build threads"))
        .collect();
    let thread_counts: Vec<usize> = list("--threads", "1")
        .iter()
        .map(|t| t.parse().expect("threads"))
        .collect();

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
    let index_dir = flag("--index-dir").map(PathBuf::from);
    let saved = index_dir.as_deref().filter(|d| d.join(TIMES_FILE).exists());
    let built_here = saved.is_none();
    let indexes = match saved {
        Some(dir) => Indexes::load(dir, &precisions, shard_count),
        None => {
            let built = Indexes::build(
                &base,
                dim,
                &precisions,
                shard_count,
                &build_threads,
                !skip_hnsw_rs,
            );
            if let Some(dir) = &index_dir {
                built.save(dir, &precisions);
            }
            built
        }
    };
    if let Some(shares) = flag("--filters") {
        let Some(Compact::Fp16(graph)) = indexes
            .compact
            .iter()
            .find(|c| matches!(c, Compact::Fp16(_)))
        else {
            panic!("--filters needs the fp16 precision");
        };
        let efs: Vec<usize> = list("--filter-efs", "100")
            .iter()
            .map(|e| e.parse().expect("filter ef"))
            .collect();
        for share in shares.split(',') {
            measure_filtered(graph, dir, &queries, dim, share, &efs, rounds);
        }
        return;
    }
    let measure = Measure {
        dim,
        queries: &queries,
        gt: &gt,
        rounds,
        efs: &efs,
        thread_counts: &thread_counts,
    };
    // Build figures once, from the invocation that built.
    for run in indexes.build_s.iter().filter(|_| built_here) {
        println!(
            "{}",
            serde_json::json!({"library": "ours", "build_threads": run.threads,
                               "build_seconds": run.seconds, "vectors": base.len() / dim,
                               "build_peak_growth_mib": run.peak_growth_bytes.map(|b| b as f64 / 1048576.0),
                               "index_heap_mib": run.index_bytes as f64 / 1048576.0})
        );
    }
    if let Some((_, seconds)) = &indexes.hnsw {
        println!(
            "{}",
            serde_json::json!({"library": "hnsw_rs 0.3.5", "build_threads": rayon::current_num_threads(),
                               "build_seconds": seconds, "vectors": base.len() / dim})
        );
    }
    let build_s = indexes.build_s.last().map_or(0.0, |run| run.seconds);
    measure.all(
        &indexes.compact,
        &indexes.shards,
        indexes.hnsw.as_ref(),
        build_s,
        indexes.sharded_build_s,
    );
}

const TIMES_FILE: &str = "ours.json";

/// One build of our graph: threads, time and memory.
#[derive(serde::Serialize, serde::Deserialize)]
struct BuildRun {
    threads: usize,
    seconds: f64,
    /// Growth of the process's peak RSS during the build (Linux only).
    peak_growth_bytes: Option<usize>,
    index_bytes: usize,
}

/// A `VmRSS`/`VmHWM` field of this process, in bytes.
fn status_bytes(field: &str) -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resets the peak RSS to the current RSS (Linux `clear_refs` 5) and returns it.
fn reset_peak_rss() -> Option<usize> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    status_bytes("VmRSS:")
}

fn peak_rss() -> Option<usize> {
    status_bytes("VmHWM:")
}

fn shard_file(dir: &Path, s: usize, count: usize) -> PathBuf {
    dir.join(format!("shard-{s}-of-{count}.bin"))
}

/// Our graphs at every precision, the sharded variant and their build times; `hnsw` (the
/// hnsw_rs graph, for its own search) only when built in this process.
struct Indexes {
    compact: Vec<Compact>,
    shards: Vec<FrozenGraph>,
    hnsw: Option<(Hnsw<'static, f32, ClampedDot>, f64)>,
    /// Builds of our FP16 graph, one per thread count.
    build_s: Vec<BuildRun>,
    sharded_build_s: f64,
}

impl Indexes {
    fn build(
        base: &[f32],
        dim: usize,
        precisions: &[String],
        shard_count: usize,
        build_threads: &[usize],
        with_hnsw_rs: bool,
    ) -> Self {
        let n = base.len() / dim;
        let params = BuildParams {
            m: 16,
            ef_construction: 200,
        };
        // Our build on each requested thread count (the last one is kept); every precision
        // gets the FP16 graph's links with its own vectors.
        let mut build_s = Vec::new();
        let mut graph = None;
        for &threads in build_threads {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("thread pool");
            drop(graph.take());
            let before = reset_peak_rss();
            let started = Instant::now();
            let built: FrozenGraph<Fp16> = pool.install(|| FrozenGraph::build(base, dim, params));
            let seconds = started.elapsed().as_secs_f64();
            // Peak growth of the process during the build, against what the index keeps.
            let peak_growth = peak_rss().zip(before).map(|(p, b)| p.saturating_sub(b));
            build_s.push(BuildRun {
                threads,
                seconds,
                peak_growth_bytes: peak_growth,
                index_bytes: built.heap_bytes(),
            });
            graph = Some(built);
        }
        let graph = graph.expect("at least one build thread count");
        let compact = precisions
            .iter()
            .map(|p| Compact::relink(p, &graph, base))
            .collect();
        // The same data over `shard_count` graphs, built one after the other on all threads.
        let sharded_started = Instant::now();
        let shards = (0..shard_count)
            .filter(|_| shard_count > 1)
            .map(|s| {
                let part: Vec<f32> = base
                    .chunks_exact(dim)
                    .skip(s)
                    .step_by(shard_count)
                    .flatten()
                    .copied()
                    .collect();
                FrozenGraph::build(&part, dim, params)
            })
            .collect();
        let sharded_build_s = sharded_started.elapsed().as_secs_f64();
        // The reference builder, for its own search and build time.
        let hnsw = with_hnsw_rs.then(|| {
            let started = Instant::now();
            let hnsw: Hnsw<f32, ClampedDot> = Hnsw::new(16, n, 16, 200, ClampedDot);
            let rows: Vec<(&[f32], usize)> = base.chunks_exact(dim).zip(0..).collect();
            hnsw.parallel_insert_slice(&rows);
            (hnsw, started.elapsed().as_secs_f64())
        });
        Self {
            compact,
            shards,
            hnsw,
            build_s,
            sharded_build_s,
        }
    }

    fn save(&self, dir: &Path, precisions: &[String]) {
        std::fs::create_dir_all(dir).expect("index dir");
        for (p, graph) in precisions.iter().zip(&self.compact) {
            graph.save(&dir.join(format!("{p}.bin")));
        }
        for (s, graph) in self.shards.iter().enumerate() {
            let file = File::create(shard_file(dir, s, self.shards.len())).expect("index dir");
            graph
                .write_to(&mut BufWriter::new(file))
                .expect("write shard");
        }
        let times = serde_json::json!({"build_seconds": self.build_s,
                                       "sharded_build_seconds": self.sharded_build_s});
        std::fs::write(dir.join(TIMES_FILE), times.to_string()).expect(TIMES_FILE);
    }

    fn load(dir: &Path, precisions: &[String], shard_count: usize) -> Self {
        let times: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(TIMES_FILE)).expect(TIMES_FILE))
                .expect("json");
        let shards = (0..shard_count)
            .filter(|_| shard_count > 1)
            .map(|s| {
                let file = File::open(shard_file(dir, s, shard_count)).expect("saved shard");
                FrozenGraph::read_from(&mut BufReader::new(file)).expect("saved shard")
            })
            .collect();
        Self {
            compact: precisions
                .iter()
                .map(|p| Compact::load(p, &dir.join(format!("{p}.bin"))))
                .collect(),
            shards,
            hnsw: None,
            build_s: serde_json::from_value(times["build_seconds"].clone()).expect("build_seconds"),
            sharded_build_s: times["sharded_build_seconds"].as_f64().unwrap_or(0.0),
        }
    }
}

/// What is measured and how: every ef, every thread count, median of `rounds` passes.
struct Measure<'a> {
    dim: usize,
    queries: &'a [f32],
    gt: &'a [i32],
    rounds: usize,
    efs: &'a [usize],
    thread_counts: &'a [usize],
}

impl Measure<'_> {
    fn all(
        &self,
        compact: &[Compact],
        shards: &[FrozenGraph],
        hnsw: Option<&(Hnsw<f32, ClampedDot>, f64)>,
        build_s: f64,
        sharded_build_s: f64,
    ) {
        let (dim, queries, gt, rounds) = (self.dim, self.queries, self.gt, self.rounds);
        let shard_count = shards.len();
        let mib = |bytes: usize| bytes as f64 / (1 << 20) as f64;
        let sharded_heap_mib = mib(shards.iter().map(FrozenGraph::heap_bytes).sum::<usize>());
        let recall = |found: &[Vec<usize>]| -> f64 {
            let hits: usize = found
                .iter()
                .zip(gt.chunks_exact(10))
                .map(|(f, t)| f.iter().filter(|x| t.contains(&(**x as i32))).count())
                .sum();
            hits as f64 / (10 * found.len()) as f64
        };
        let nq = queries.len() / dim;
        for &threads in self.thread_counts {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("thread pool");
            for &ef in self.efs {
                // Median QPS over `rounds` passes over all queries, spread over the pool's threads.
                let run = |search: &(dyn Fn(&[f32]) -> Vec<usize> + Sync)| {
                    let mut times = Vec::new();
                    let mut found = Vec::new();
                    for _ in 0..rounds {
                        let t = Instant::now();
                        found = if threads == 1 {
                            queries.chunks_exact(dim).map(search).collect()
                        } else {
                            pool.install(|| queries.par_chunks_exact(dim).map(search).collect())
                        };
                        times.push(t.elapsed().as_secs_f64());
                    }
                    (recall(&found), nq as f64 / median(times))
                };
                let report = |library: String,
                              (r, qps): (f64, f64),
                              build: f64,
                              heap: Option<f64>| {
                    let mut row = serde_json::json!({"library": library, "ef": ef, "threads": threads,
                            "recall_at_10": r, "qps": qps, "build_seconds": build});
                    if let Some(heap) = heap {
                        row["index_heap_mib"] = heap.into();
                    }
                    println!("{row}");
                };
                for graph in compact {
                    let measured = run(&|q| graph.search(q, ef));
                    report(
                        graph.label(),
                        measured,
                        build_s,
                        Some(mib(graph.heap_bytes())),
                    );
                }
                if !shards.is_empty() {
                    let measured = run(&|q| {
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
                    report(
                        format!("ours ({shard_count} shards, FP16)"),
                        measured,
                        sharded_build_s,
                        Some(sharded_heap_mib),
                    );
                }
                if let Some((hnsw, hnsw_build_s)) = hnsw.filter(|_| threads == 1) {
                    let measured =
                        run(&|q| hnsw.search(q, 10, ef).into_iter().map(|n| n.d_id).collect());
                    report("hnsw_rs 0.3.5 search".into(), measured, *hnsw_build_s, None);
                }
            }
        }
    }
}

/// The pseudo-random subset a filter passing `share` of the items admits (see
/// `benches/ann/filter_gt.py`, which computes the same).
fn admitted(len: usize, share: f64) -> NodeSet {
    NodeSet::from_nodes(
        len,
        (0..len as u32)
            .filter(|&i| f64::from(i.wrapping_mul(2_654_435_761)) / 4_294_967_296.0 < share),
    )
}

/// One way to answer a query: the nodes found.
type SearchFn<'a> = dyn Fn(&[f32]) -> Vec<u32> + 'a;

/// Filtered search on `graph` for one filter share: every strategy, one JSON line each.
fn measure_filtered(
    graph: &FrozenGraph<Fp16>,
    dir: &Path,
    queries: &[f32],
    dim: usize,
    share: &str,
    efs: &[usize],
    rounds: usize,
) {
    let gt: Vec<i32> = std::fs::read(dir.join(format!("gt-filter-{share}.i32")))
        .expect("gt-filter file: run benches/ann/filter_gt.py first")
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let set = admitted(graph.len(), share.parse().expect("filter share"));
    let nq = queries.len() / dim;
    for &ef in efs {
        let strategies: [(&str, &SearchFn); 4] = [
            ("ours (filtered, strategy per query)", &|q| {
                graph
                    .search_in(q, 10, ef, &set)
                    .iter()
                    .map(|h| h.0)
                    .collect()
            }),
            ("ours (filtered graph walk)", &|q| {
                graph
                    .search_where(q, 10, ef, |n| set.contains(n))
                    .iter()
                    .map(|h| h.0)
                    .collect()
            }),
            ("ours (exact scan of the admitted)", &|q| {
                graph.scan(q, 10, set.iter()).iter().map(|h| h.0).collect()
            }),
            ("ours (post-filter)", &|q| {
                graph
                    .search(q, ef, ef)
                    .iter()
                    .map(|h| h.0)
                    .filter(|&n| set.contains(n))
                    .take(10)
                    .collect()
            }),
        ];
        for (name, search) in strategies {
            let mut times = Vec::new();
            let mut found = Vec::new();
            for _ in 0..rounds {
                let t = Instant::now();
                found = queries.chunks_exact(dim).map(search).collect::<Vec<_>>();
                times.push(t.elapsed().as_secs_f64());
            }
            let (mut hits, mut total) = (0, 0);
            for (f, truth) in found.iter().zip(gt.chunks_exact(10)) {
                let truth: Vec<i32> = truth.iter().copied().filter(|&t| t >= 0).collect();
                total += truth.len();
                hits += f.iter().filter(|&&n| truth.contains(&(n as i32))).count();
            }
            println!(
                "{}",
                serde_json::json!({"library": name, "filter_share": share.parse::<f64>().unwrap(),
                                   "admitted": set.count(), "ef": ef, "threads": 1,
                                   "recall_at_10": hits as f64 / total.max(1) as f64,
                                   "qps": nq as f64 / median(times)})
            );
        }
    }
}
