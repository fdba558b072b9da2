//! Batched scoring: many query vectors against many candidate vectors, top-k per query, with
//! the candidates stored in FP32, FP16 (half the memory) or INT8 (a quarter, with a per-row
//! scale).
//!
//! [`CandidateMatrix`] is the CPU path (the SIMD inner products of [`vector_index::distance`], rayon
//! across queries) and the reference the GPU path (`scorer::gpu`, feature `cuda`) is checked
//! against; [`BatchScorer`] picks between them. The benchmarks use the scorer, and it is
//! there for any caller with many queries to score at once. The service's ranking does not
//! use it: core-api ranks each request's candidates with its own dot products, the request's
//! query against each candidate's stored FP16 vector, through `distance::best_dot`, the SIMD
//! kernel its vector index uses too.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use half::f16;
use rayon::prelude::*;

use vector_index::distance::{best_dot, best_dot_f32, best_dot_i8, quantize_i8};

#[cfg(feature = "cuda")]
pub mod gpu;

/// Storage precision of the candidate matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    F32,
    F16,
    /// Symmetric per-row quantisation: `x ≈ scale · code`, codes in [-127, 127].
    Int8,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "fp32",
            Self::F16 => "fp16",
            Self::Int8 => "int8",
        }
    }
}

enum Rows {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Int8 { codes: Vec<i8>, scales: Vec<f32> },
}

/// Candidate vectors, row-major, in one contiguous allocation.
pub struct CandidateMatrix {
    dim: usize,
    len: usize,
    rows: Rows,
}

/// One scored candidate: its row number and inner product with the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub row: u32,
    pub score: f32,
}

/// Min-heap order on score, so the heap's top is the weakest of the current top-k.
struct Weakest(Scored);

impl PartialEq for Weakest {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Weakest {}
impl PartialOrd for Weakest {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Weakest {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .0
            .score
            .total_cmp(&self.0.score)
            .then(self.0.row.cmp(&other.0.row))
    }
}

impl CandidateMatrix {
    /// Stores `vectors` (row-major, `dim` per row) at `precision`.
    pub fn new(vectors: &[f32], dim: usize, precision: Precision) -> Self {
        assert!(
            dim > 0 && vectors.len().is_multiple_of(dim),
            "vectors must be rows of {dim}"
        );
        let len = vectors.len() / dim;
        let rows = match precision {
            Precision::F32 => Rows::F32(vectors.to_vec()),
            Precision::F16 => Rows::F16(vectors.iter().map(|&x| f16::from_f32(x)).collect()),
            Precision::Int8 => {
                let mut codes = Vec::with_capacity(vectors.len());
                let mut scales = Vec::with_capacity(len);
                for row in vectors.chunks_exact(dim) {
                    let (c, s) = quantize_i8(row);
                    codes.extend(c);
                    scales.push(s);
                }
                Rows::Int8 { codes, scales }
            }
        };
        Self { dim, len, rows }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn precision(&self) -> Precision {
        match self.rows {
            Rows::F32(_) => Precision::F32,
            Rows::F16(_) => Precision::F16,
            Rows::Int8 { .. } => Precision::Int8,
        }
    }

    /// Bytes held by the stored vectors (and scales).
    pub fn bytes(&self) -> usize {
        match &self.rows {
            Rows::F32(v) => v.len() * 4,
            Rows::F16(v) => v.len() * 2,
            Rows::Int8 { codes, scales } => codes.len() + scales.len() * 4,
        }
    }

    /// Inner products of one query with every row.
    pub fn scores(&self, query: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.len);
        let prepared = self.prepare(query);
        self.score_rows(&prepared, 0..self.len, |_, s| out.push(s));
        out
    }

    fn prepare<'q>(&self, query: &'q [f32]) -> Prepared<'q> {
        assert_eq!(query.len(), self.dim, "query dimension");
        match self.rows {
            Rows::Int8 { .. } => {
                let (codes, scale) = quantize_i8(query);
                Prepared::Int8(codes, scale)
            }
            _ => Prepared::F32(query),
        }
    }

    /// Scores rows `range` against one prepared query.
    fn score_rows(
        &self,
        query: &Prepared<'_>,
        range: std::ops::Range<usize>,
        mut visit: impl FnMut(u32, f32),
    ) {
        let dim = self.dim;
        let span = range.start * dim..range.end * dim;
        let first = range.start;
        match (&self.rows, query) {
            (Rows::F32(v), Prepared::F32(q)) => {
                let dot = best_dot_f32();
                for (r, row) in v[span].chunks_exact(dim).enumerate() {
                    visit((first + r) as u32, dot(q, row));
                }
            }
            (Rows::F16(v), Prepared::F32(q)) => {
                let dot = best_dot();
                for (r, row) in v[span].chunks_exact(dim).enumerate() {
                    visit((first + r) as u32, dot(q, row));
                }
            }
            (Rows::Int8 { codes, scales }, Prepared::Int8(q, q_scale)) => {
                let dot = best_dot_i8();
                for (r, row) in codes[span].chunks_exact(dim).enumerate() {
                    let row_id = first + r;
                    visit(row_id as u32, dot(q, row) as f32 * q_scale * scales[row_id]);
                }
            }
            _ => unreachable!("queries are prepared for this matrix's precision"),
        }
    }

    /// The `k` best rows for one query, best first (ties by lower row).
    pub fn top_k(&self, query: &[f32], k: usize) -> Vec<Scored> {
        let mut top = TopK::new(k);
        self.score_rows(&self.prepare(query), 0..self.len, |row, score| {
            top.offer(row, score);
        });
        top.into_sorted()
    }

    /// Top-k for many queries (row-major, `dim` per query). Queries are processed in groups
    /// that walk the candidates block by block, so each block is read from memory once per
    /// group rather than once per query (the CPU analogue of a blocked GEMM); groups run in
    /// parallel.
    pub fn top_k_batch(&self, queries: &[f32], k: usize) -> Vec<Vec<Scored>> {
        assert!(
            queries.len().is_multiple_of(self.dim),
            "queries must be rows of {}",
            self.dim
        );
        /// Queries sharing one pass over the candidates.
        const QUERY_GROUP: usize = 16;
        /// Candidate rows per block: 256 × 384 × 4 B = 384 KiB of f32 at most, inside L2.
        const ROW_BLOCK: usize = 256;
        queries
            .par_chunks(self.dim * QUERY_GROUP)
            .flat_map_iter(|group| {
                let prepared: Vec<Prepared<'_>> = group
                    .chunks_exact(self.dim)
                    .map(|q| self.prepare(q))
                    .collect();
                let mut tops: Vec<TopK> = prepared.iter().map(|_| TopK::new(k)).collect();
                for start in (0..self.len).step_by(ROW_BLOCK) {
                    let range = start..(start + ROW_BLOCK).min(self.len);
                    for (q, top) in prepared.iter().zip(&mut tops) {
                        self.score_rows(q, range.clone(), |row, score| top.offer(row, score));
                    }
                }
                tops.into_iter().map(TopK::into_sorted)
            })
            .collect()
    }
}

/// Batched scoring on the best device available: the GPUs when the `cuda` feature is built
/// and a driver and device are present, else the CPU matrix above. Same results contract.
pub enum BatchScorer {
    Cpu(CandidateMatrix),
    #[cfg(feature = "cuda")]
    Gpu(gpu::GpuScorer),
}

impl BatchScorer {
    /// Uploads to up to `max_gpus` GPUs (0 = all) when possible; falls back to the CPU, with
    /// the reason logged once, when there is no GPU (or `max_gpus` is `None`).
    pub fn new(vectors: &[f32], dim: usize, precision: Precision, max_gpus: Option<usize>) -> Self {
        #[cfg(feature = "cuda")]
        if let Some(max) = max_gpus {
            match gpu::GpuScorer::new(vectors, dim, precision, max) {
                Ok(gpu) => return Self::Gpu(gpu),
                Err(e) => tracing::info!(reason = %e, "batched scoring on the CPU"),
            }
        }
        #[cfg(not(feature = "cuda"))]
        if max_gpus.is_some() {
            tracing::info!("built without the cuda feature: batched scoring on the CPU");
        }
        Self::Cpu(CandidateMatrix::new(vectors, dim, precision))
    }

    /// `cpu`, or `cuda×N` for N devices.
    pub fn device(&self) -> String {
        match self {
            Self::Cpu(_) => "cpu".into(),
            #[cfg(feature = "cuda")]
            Self::Gpu(g) => format!("cuda×{}", g.device_count()),
        }
    }

    /// Top-k per query, as [`CandidateMatrix::top_k_batch`]; a GPU that fails mid-way is an
    /// error for the caller to handle (e.g. by rebuilding on the CPU), never a panic.
    pub fn top_k_batch(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Scored>>, ScoringError> {
        match self {
            Self::Cpu(m) => Ok(m.top_k_batch(queries, k)),
            #[cfg(feature = "cuda")]
            Self::Gpu(g) => g
                .top_k_batch(queries, k)
                .map_err(|e| ScoringError(e.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("batched scoring failed on the device: {0}")]
pub struct ScoringError(String);

/// A query in the form the matrix's kernel wants.
enum Prepared<'q> {
    F32(&'q [f32]),
    Int8(Vec<i8>, f32),
}

/// Bounded min-heap keeping the `k` best scores seen.
struct TopK {
    k: usize,
    heap: BinaryHeap<Weakest>,
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    #[inline]
    fn offer(&mut self, row: u32, score: f32) {
        if self.heap.len() < self.k {
            self.heap.push(Weakest(Scored { row, score }));
        } else if self.heap.peek().is_some_and(|w| score > w.0.score) {
            self.heap.pop();
            self.heap.push(Weakest(Scored { row, score }));
        }
    }

    fn into_sorted(self) -> Vec<Scored> {
        let mut best: Vec<Scored> = self.heap.into_iter().map(|w| w.0).collect();
        best.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic unit vectors in a few clusters, like sentence embeddings.
    fn vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        };
        let centres: Vec<f32> = (0..8 * dim).map(|_| next()).collect();
        let mut out = Vec::with_capacity(n * dim);
        for i in 0..n {
            let c = &centres[(i % 8) * dim..][..dim];
            let mut v: Vec<f32> = c.iter().map(|x| x + 0.6 * next()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            out.extend(v);
        }
        out
    }

    fn recall(reference: &[Vec<Scored>], got: &[Vec<Scored>]) -> f64 {
        let mut hits = 0;
        let mut total = 0;
        for (r, g) in reference.iter().zip(got) {
            total += r.len();
            hits += g
                .iter()
                .filter(|x| r.iter().any(|y| y.row == x.row))
                .count();
        }
        hits as f64 / total as f64
    }

    /// Written once, run on whatever backend `BatchScorer` picks: the CPU here, every GPU on
    /// a machine with the `cuda` feature and a driver (scripts/gpu-check.sh).
    #[test]
    fn batch_scorer_matches_the_cpu_reference_on_its_backend() {
        let dim = 384;
        let rows = vectors(3000, dim, 5);
        let queries = vectors(300, dim, 77);
        let reference = CandidateMatrix::new(&rows, dim, Precision::F32).top_k_batch(&queries, 10);
        for (precision, min_recall) in [
            (Precision::F32, 1.0),
            (Precision::F16, 0.99),
            (Precision::Int8, 0.95),
        ] {
            let scorer = BatchScorer::new(&rows, dim, precision, Some(0));
            #[cfg(feature = "cuda")]
            if crate::cuda::device_count().is_err() {
                assert_eq!(
                    scorer.device(),
                    "cpu",
                    "no driver: the CPU fallback is used"
                );
            }
            #[cfg(not(feature = "cuda"))]
            assert_eq!(scorer.device(), "cpu");
            let got = scorer.top_k_batch(&queries, 10).unwrap();
            assert_eq!(got.len(), 300);
            let r = recall(&reference, &got);
            assert!(
                r >= min_recall,
                "{} on {}: recall {r}",
                precision.name(),
                scorer.device()
            );
            if precision == Precision::F32 {
                for (g, w) in got.iter().zip(&reference) {
                    for (a, b) in g.iter().zip(w) {
                        assert!(
                            (a.score - b.score).abs() < 1e-4,
                            "{} vs {}",
                            a.score,
                            b.score
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn fp32_top_k_is_exact() {
        let dim = 48;
        let rows = vectors(500, dim, 7);
        let queries = vectors(20, dim, 99);
        let m = CandidateMatrix::new(&rows, dim, Precision::F32);
        for (q, got) in queries.chunks_exact(dim).zip(m.top_k_batch(&queries, 10)) {
            let mut all: Vec<Scored> = rows
                .chunks_exact(dim)
                .enumerate()
                .map(|(r, row)| Scored {
                    row: r as u32,
                    score: row.iter().zip(q).map(|(a, b)| a * b).sum(),
                })
                .collect();
            all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
            let want: Vec<u32> = all[..10].iter().map(|s| s.row).collect();
            let have: Vec<u32> = got.iter().map(|s| s.row).collect();
            assert_eq!(have, want);
            for (a, b) in got.iter().zip(&all) {
                assert!((a.score - b.score).abs() < 1e-5);
            }
        }
        assert!(m.top_k(&queries[..dim], 0).is_empty());
        assert_eq!(m.top_k(&queries[..dim], 1000).len(), 500);
    }

    #[test]
    fn reduced_precision_keeps_recall_and_saves_memory() {
        let dim = 384;
        let rows = vectors(5_000, dim, 3);
        let queries = vectors(100, dim, 11);
        let exact = CandidateMatrix::new(&rows, dim, Precision::F32);
        let fp16 = CandidateMatrix::new(&rows, dim, Precision::F16);
        let int8 = CandidateMatrix::new(&rows, dim, Precision::Int8);
        let reference = exact.top_k_batch(&queries, 10);
        let r16 = recall(&reference, &fp16.top_k_batch(&queries, 10));
        let r8 = recall(&reference, &int8.top_k_batch(&queries, 10));
        assert!(r16 >= 0.995, "fp16 recall@10 {r16}");
        assert!(r8 >= 0.95, "int8 recall@10 {r8}");
        assert_eq!(fp16.bytes() * 2, exact.bytes());
        assert!(
            int8.bytes() * 100 <= exact.bytes() * 26,
            "int8 ~1/4 of fp32"
        );
        // Scores stay close, not just rankings.
        let q = &queries[..dim];
        for (a, b) in exact.scores(q).iter().zip(int8.scores(q)) {
            assert!((a - b).abs() < 0.02, "{a} vs {b}");
        }
    }
}
