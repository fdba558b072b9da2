//! A read-only, compact HNSW layout for fast search, built by our parallel construction
//! (`build`) or copied from an `hnsw_rs` graph (the reference builder, kept for parity tests
//! and the ANN comparison).
//!
//! The graph lives in flat arrays laid out the way hnswlib does it: all FP16 vectors contiguous, level-0 neighbour lists at a fixed stride (count
//! first), upper levels in a side table, and a per-thread visited list reused by generation
//! counter. Search walks these arrays with SIMD distances and prefetching. While freezing,
//! level-0 links are re-selected with the HNSW diversity heuristic (see `refine_level0`).

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};

mod build;

use hnsw_rs::prelude::{Distance, Hnsw};

use super::distance::{dot_f32, prefetch};
use super::filter::NodeSet;
use super::storage::{Fp16, Storage};

const NO_UPPER: u32 = u32::MAX;
/// hnsw_rs never creates more layers than this.
const MAX_LAYERS: usize = 16;

/// Cosine distance for unit vectors, clamped at zero. `hnsw_rs`'s own `DistDot` asserts
/// `1 - dot >= 0`, which rounding breaks for a query equal to a stored vector.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClampedDot;

impl Distance<f32> for ClampedDot {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot_f32(a, b)).max(0.0)
    }
}

/// Build parameters of the HNSW graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildParams {
    pub m: usize,
    pub ef_construction: usize,
}

/// Search candidate: `dist` is the negated inner product, so smaller is closer.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Candidate {
    dist: f32,
    node: u32,
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.dist
            .total_cmp(&other.dist)
            .then(self.node.cmp(&other.node))
    }
}

/// Per-thread scratch space, reused across searches so the hot path does not allocate.
#[derive(Default)]
struct Scratch {
    visited: Vec<u16>,
    generation: u16,
    candidates: BinaryHeap<Reverse<Candidate>>,
    top: BinaryHeap<Candidate>,
    /// Neighbours of the node being expanded not visited before.
    fresh: Vec<u32>,
}

impl Scratch {
    /// Starts a new search over `len` nodes: bumping the generation "clears" the marks.
    fn reset(&mut self, len: usize) {
        if self.visited.len() < len {
            self.visited.resize(len, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.visited.fill(0);
            self.generation = 1;
        }
        self.candidates.clear();
        self.top.clear();
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The frozen graph, its vectors stored at precision `S` (FP16 unless chosen otherwise).
/// Node `i` is the `i`-th vector given to [`FrozenGraph::build`].
#[derive(Clone)]
pub struct FrozenGraph<S: Storage = Fp16> {
    dim: usize,
    len: usize,
    /// `len` rows of `S::row_len(dim)` elements.
    vectors: Vec<S::Elem>,
    level0_stride: usize,
    level0: Vec<u32>,
    upper_stride: usize,
    /// Index into `upper` of a node's level-1 list, or `NO_UPPER`.
    upper_offsets: Vec<u32>,
    upper: Vec<u32>,
    /// Top layer of each node.
    levels: Vec<u8>,
    entry: u32,
    max_level: u8,
    kernel: S::Kernel,
}

impl<S: Storage> FrozenGraph<S> {
    /// Builds the graph with our parallel HNSW construction (see [`build`](self::build)).
    /// `vectors` holds `len` unit vectors of `dim` floats, row-major.
    pub fn build(vectors: &[f32], dim: usize, params: BuildParams) -> Self {
        assert!(
            dim > 0 && vectors.len().is_multiple_of(dim),
            "vectors must be whole rows of {dim}"
        );
        Self::construct(encode_all::<S>(vectors, dim), dim, params)
    }

    /// Builds the graph with `hnsw_rs` (in parallel) and freezes it: the reference builder.
    pub fn build_with_hnsw_rs(vectors: &[f32], dim: usize, params: BuildParams) -> Self {
        assert!(
            dim > 0 && vectors.len().is_multiple_of(dim),
            "vectors must be whole rows of {dim}"
        );
        let len = vectors.len() / dim;
        if len == 0 {
            return Self::construct(Vec::new(), dim, params);
        }
        // Build on the rounded values the search will see.
        let rounded = decode_all::<S>(&encode_all::<S>(vectors, dim), dim);
        let hnsw: Hnsw<f32, ClampedDot> = Hnsw::new(
            params.m,
            len,
            MAX_LAYERS,
            params.ef_construction,
            ClampedDot,
        );
        let rows: Vec<(&[f32], usize)> = rounded.chunks_exact(dim).zip(0..).collect();
        hnsw.parallel_insert_slice(&rows);
        Self::freeze(&hnsw, &rounded, dim)
    }

    /// Copies a built `hnsw_rs` graph into the compact layout. Data id `i` of the graph must
    /// be row `i` of `vectors`.
    pub fn freeze(hnsw: &Hnsw<f32, ClampedDot>, vectors: &[f32], dim: usize) -> Self {
        let stored = encode_all::<S>(vectors, dim);
        let len = vectors.len() / dim;
        let indexation = hnsw.get_point_indexation();
        // First pass: neighbour lists per node and layer, keyed by our node ids.
        let mut lists: Vec<Vec<Vec<u32>>> = vec![Vec::new(); len];
        // The entry point is the first node seen on the highest non-empty layer.
        let mut max_level = 0u8;
        let mut entry = None;
        for layer in 0..MAX_LAYERS {
            for point in indexation.get_layer_iterator(layer) {
                let node = point.get_origin_id();
                // hnsw_rs keeps a (mostly empty) list for every possible layer; only the
                // point's own layers 0..=layer carry links.
                lists[node] = point
                    .get_neighborhood_id()
                    .into_iter()
                    .take(layer + 1)
                    .map(|ns| ns.into_iter().map(|n| n.get_origin_id() as u32).collect())
                    .collect();
                if entry.is_none() || layer as u8 > max_level {
                    entry = Some(node as u32);
                    max_level = layer as u8;
                }
            }
        }
        let entry = entry.unwrap_or(0);
        // hnsw_rs may list, on layer l, a point whose own top layer is below l; such a link
        // cannot be followed on that layer, so drop it.
        let node_levels: Vec<usize> = lists.iter().map(|l| l.len().saturating_sub(1)).collect();
        for layers in &mut lists {
            for (l, links) in layers.iter_mut().enumerate().skip(1) {
                links.retain(|&n| node_levels[n as usize] >= l);
            }
        }
        refine_level0(&mut lists, vectors, dim);
        let level0_stride = 1 + lists
            .iter()
            .filter_map(|l| l.first())
            .map(Vec::len)
            .max()
            .unwrap_or(0);
        let upper_stride = 1 + lists
            .iter()
            .flat_map(|l| l.iter().skip(1))
            .map(Vec::len)
            .max()
            .unwrap_or(0);
        let mut level0 = vec![0u32; len * level0_stride];
        let mut upper_offsets = vec![NO_UPPER; len];
        let mut upper = Vec::new();
        for (node, layers) in lists.iter().enumerate() {
            let row = &mut level0[node * level0_stride..(node + 1) * level0_stride];
            if let Some(l0) = layers.first() {
                row[0] = l0.len() as u32;
                row[1..=l0.len()].copy_from_slice(l0);
            }
            if layers.len() > 1 {
                upper_offsets[node] = upper.len() as u32;
                for l in &layers[1..] {
                    let start = upper.len();
                    upper.resize(start + upper_stride, 0);
                    upper[start] = l.len() as u32;
                    upper[start + 1..start + 1 + l.len()].copy_from_slice(l);
                }
            }
        }
        let levels = node_levels.iter().map(|&l| l as u8).collect();
        Self::from_parts(
            dim,
            stored,
            level0_stride,
            level0,
            upper_stride,
            upper_offsets,
            upper,
            levels,
            entry,
            max_level,
        )
    }

    /// The same links with `vectors` (the rows this graph was built from) stored at
    /// precision `T`: to compare precisions on one graph.
    pub fn relink<T: Storage>(&self, vectors: &[f32]) -> FrozenGraph<T> {
        assert_eq!(vectors.len(), self.len * self.dim, "one row per node");
        FrozenGraph::from_parts(
            self.dim,
            encode_all::<T>(vectors, self.dim),
            self.level0_stride,
            self.level0.clone(),
            self.upper_stride,
            self.upper_offsets.clone(),
            self.upper.clone(),
            self.levels.clone(),
            self.entry,
            self.max_level,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn from_parts(
        dim: usize,
        vectors: Vec<S::Elem>,
        level0_stride: usize,
        level0: Vec<u32>,
        upper_stride: usize,
        upper_offsets: Vec<u32>,
        upper: Vec<u32>,
        levels: Vec<u8>,
        entry: u32,
        max_level: u8,
    ) -> Self {
        Self {
            dim,
            len: vectors.len() / S::row_len(dim),
            vectors,
            level0_stride,
            level0,
            upper_stride,
            upper_offsets,
            upper,
            levels,
            entry,
            max_level,
            kernel: S::kernel(),
        }
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

    /// The stored row of `node` (see [`Storage::decode`]).
    pub fn vector(&self, node: u32) -> &[S::Elem] {
        let row = S::row_len(self.dim);
        let start = node as usize * row;
        &self.vectors[start..start + row]
    }

    /// Bytes held by the search structure (vectors and links).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(self.vectors.as_slice())
            + (self.level0.len() + self.upper.len() + self.upper_offsets.len()) * 4
            + self.levels.len()
    }

    fn neighbours(&self, node: u32, level: u8) -> &[u32] {
        if level == 0 {
            let row = &self.level0[node as usize * self.level0_stride..];
            &row[1..=row[0] as usize]
        } else {
            let base = self.upper_offsets[node as usize] as usize
                + (level as usize - 1) * self.upper_stride;
            let row = &self.upper[base..];
            &row[1..=row[0] as usize]
        }
    }

    #[inline]
    fn distance(&self, query: &S::Query, node: u32) -> f32 {
        -S::similarity(self.kernel, query, self.vector(node))
    }

    /// The `k` nearest nodes to `query` (a unit vector) with their inner products, best
    /// first. `ef` is the size of the dynamic candidate list (raised to at least `k`).
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Vec<(u32, f32)> {
        self.search_where(query, k, ef, |_| true)
    }

    /// The `k` nearest admitted nodes, by the strategy that suits how many are admitted: a
    /// graph walk when they are many, an exact scan of them when they are few (a walk would
    /// visit about `len / admitted` nodes per result, more than the scan's total).
    pub fn search_in(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        admitted: &NodeSet,
    ) -> Vec<(u32, f32)> {
        let count = admitted.count();
        if count >= self.len {
            self.search(query, k, ef)
        } else if prefers_scan(count, self.len, ef.max(k)) {
            self.scan(query, k, admitted.iter())
        } else {
            self.search_where(query, k, ef, |n| admitted.contains(n))
        }
    }

    /// The graph walk, letting only nodes that `accept` admits into the results: the walk
    /// itself goes through every node, so the graph stays connected under any filter.
    pub fn search_where(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        accept: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        if self.len == 0 || k == 0 {
            return Vec::new();
        }
        assert_eq!(query.len(), self.dim, "query dimension");
        let query = &S::prepare(query);
        let mut current = self.entry;
        let mut current_dist = self.distance(query, current);
        for level in (1..=self.max_level).rev() {
            let mut changed = true;
            while changed {
                changed = false;
                for &n in self.neighbours(current, level) {
                    let d = self.distance(query, n);
                    if d < current_dist {
                        current_dist = d;
                        current = n;
                        changed = true;
                    }
                }
            }
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            self.search_level0(
                &mut scratch,
                query,
                current,
                current_dist,
                ef.max(k),
                &accept,
            );
            let mut found: Vec<(u32, f32)> =
                scratch.top.drain().map(|c| (c.node, -c.dist)).collect();
            found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            found.truncate(k);
            found
        })
    }

    /// Exact search over `nodes`: every one is scored.
    pub fn scan(
        &self,
        query: &[f32],
        k: usize,
        nodes: impl Iterator<Item = u32>,
    ) -> Vec<(u32, f32)> {
        if k == 0 {
            return Vec::new();
        }
        assert_eq!(query.len(), self.dim, "query dimension");
        let query = &S::prepare(query);
        let mut top: BinaryHeap<Candidate> = BinaryHeap::with_capacity(k + 1);
        for node in nodes {
            let dist = self.distance(query, node);
            if top.len() < k || top.peek().is_some_and(|w| dist < w.dist) {
                top.push(Candidate { dist, node });
                if top.len() > k {
                    top.pop();
                }
            }
        }
        top.into_sorted_vec()
            .into_iter()
            .map(|c| (c.node, -c.dist))
            .collect()
    }

    fn search_level0(
        &self,
        s: &mut Scratch,
        query: &S::Query,
        entry: u32,
        entry_dist: f32,
        ef: usize,
        accept: &impl Fn(u32) -> bool,
    ) {
        s.reset(self.len);
        let generation = s.generation;
        s.visited[entry as usize] = generation;
        let start = Candidate {
            dist: entry_dist,
            node: entry,
        };
        s.candidates.push(Reverse(start));
        // The results hold admitted nodes only; until there are `ef` of them, every node
        // reached is worth expanding.
        let mut bound = f32::INFINITY;
        if accept(entry) {
            s.top.push(start);
            bound = entry_dist;
        }
        while let Some(Reverse(closest)) = s.candidates.pop() {
            if closest.dist > bound && s.top.len() >= ef {
                break;
            }
            let links = self.neighbours(closest.node, 0);
            if let Some(Reverse(next)) = s.candidates.peek() {
                prefetch(self.level0[next.node as usize * self.level0_stride..].as_ptr());
            }
            // First pass: mark the unvisited neighbours and start loading all their vectors,
            // so the distance pass below finds them in cache.
            for &n in links {
                prefetch(s.visited.as_ptr().wrapping_add(n as usize));
            }
            s.fresh.clear();
            for &n in links {
                let mark = &mut s.visited[n as usize];
                if *mark != generation {
                    *mark = generation;
                    s.fresh.push(n);
                    prefetch(self.vector(n).as_ptr());
                }
            }
            for &n in &s.fresh {
                let d = self.distance(query, n);
                if s.top.len() < ef || d < bound {
                    s.candidates.push(Reverse(Candidate { dist: d, node: n }));
                    if accept(n) {
                        s.top.push(Candidate { dist: d, node: n });
                        if s.top.len() > ef {
                            s.top.pop();
                        }
                        bound = s.top.peek().map_or(d, |c| c.dist);
                    }
                }
            }
        }
    }

    /// Writes the graph in a little-endian binary layout.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        for v in [
            self.dim,
            self.len,
            self.level0_stride,
            self.upper_stride,
            self.upper.len(),
            self.entry as usize,
            self.max_level as usize,
        ] {
            w.write_all(&(v as u64).to_le_bytes())?;
        }
        w.write_all(bytemuck::cast_slice(&self.vectors))?;
        w.write_all(bytemuck::cast_slice(&self.level0))?;
        w.write_all(bytemuck::cast_slice(&self.upper_offsets))?;
        w.write_all(&self.levels)?;
        w.write_all(bytemuck::cast_slice(&self.upper))?;
        Ok(())
    }

    /// Reads what [`write_to`](Self::write_to) wrote, validating every link.
    pub fn read_from(r: &mut impl Read) -> io::Result<Self> {
        let mut header = [0u64; 7];
        for h in &mut header {
            let mut b = [0u8; 8];
            r.read_exact(&mut b)?;
            *h = u64::from_le_bytes(b);
        }
        let [dim, len, level0_stride, upper_stride, upper_len, entry, max_level] =
            header.map(|v| v as usize);
        let bad = |what: &str| {
            io::Error::new(io::ErrorKind::InvalidData, format!("corrupt graph: {what}"))
        };
        if dim == 0
            || dim > 65_536
            || len > u32::MAX as usize
            || level0_stride == 0
            || upper_stride == 0
        {
            return Err(bad("header"));
        }
        fn read_vec<T: bytemuck::Pod + Default + Clone>(
            r: &mut impl Read,
            n: usize,
        ) -> io::Result<Vec<T>> {
            let mut v = vec![T::default(); n];
            r.read_exact(bytemuck::cast_slice_mut(&mut v))?;
            Ok(v)
        }
        let vectors: Vec<S::Elem> = read_vec(r, len * S::row_len(dim))?;
        let level0: Vec<u32> = read_vec(r, len * level0_stride)?;
        let upper_offsets: Vec<u32> = read_vec(r, len)?;
        let levels: Vec<u8> = read_vec(r, len)?;
        let upper: Vec<u32> = read_vec(r, upper_len)?;
        let links_ok = |rows: &[u32], stride: usize| {
            rows.chunks_exact(stride).all(|row| {
                (row[0] as usize) < stride
                    && row[1..=row[0] as usize].iter().all(|&n| (n as usize) < len)
            })
        };
        if !links_ok(&level0, level0_stride)
            || !links_ok(&upper, upper_stride)
            || (len > 0 && entry >= len)
            || max_level >= MAX_LAYERS
            || (len > 0 && levels[entry] as usize != max_level)
            || !upper_levels_ok(&upper_offsets, &levels, &upper, upper_stride, max_level)
        {
            return Err(bad("links"));
        }
        Ok(Self::from_parts(
            dim,
            vectors,
            level0_stride,
            level0,
            upper_stride,
            upper_offsets,
            upper,
            levels,
            entry as u32,
            max_level as u8,
        ))
    }
}

/// Whether an exact scan of `admitted` of `len` nodes beats a filtered graph walk with
/// candidate list `ef`. The walk reaches about `len / admitted` nodes per admitted one and
/// needs `ef` of them, each costing about `WALK_COST` scanned vectors (measured on GloVe-100:
/// a walk step is a heap operation and a cache miss, a scan step a streamed distance).
fn prefers_scan(admitted: usize, len: usize, ef: usize) -> bool {
    const WALK_COST: usize = 16;
    (admitted as u128).pow(2) <= (WALK_COST * ef) as u128 * len as u128
}

fn encode_all<S: Storage>(vectors: &[f32], dim: usize) -> Vec<S::Elem> {
    let row = S::row_len(dim);
    let mut stored = vec![S::Elem::default(); vectors.len() / dim * row];
    for (v, out) in vectors.chunks_exact(dim).zip(stored.chunks_exact_mut(row)) {
        S::encode(v, out);
    }
    stored
}

fn decode_all<S: Storage>(stored: &[S::Elem], dim: usize) -> Vec<f32> {
    let mut vectors = vec![0.0; stored.len() / S::row_len(dim) * dim];
    for (row, out) in stored
        .chunks_exact(S::row_len(dim))
        .zip(vectors.chunks_exact_mut(dim))
    {
        S::decode(row, out);
    }
    vectors
}

/// Every node's upper lists lie inside `upper`, and a link on layer l leads to a node that
/// has layer l: the invariants that let search index without bounds surprises.
fn upper_levels_ok(
    offsets: &[u32],
    levels: &[u8],
    upper: &[u32],
    stride: usize,
    max_level: usize,
) -> bool {
    offsets.iter().zip(levels).all(|(&o, &level)| {
        let level = level as usize;
        if level == 0 {
            return o == NO_UPPER;
        }
        let o = o as usize;
        level <= max_level
            && o.is_multiple_of(stride)
            && o + level * stride <= upper.len()
            && (1..=level).all(|l| {
                let row = &upper[o + (l - 1) * stride..o + l * stride];
                row[1..=row[0] as usize]
                    .iter()
                    .all(|&n| levels[n as usize] as usize >= l)
            })
    })
}

/// Re-selects every node's level-0 links with the HNSW neighbour-selection heuristic (keep a
/// candidate only if it is closer to the node than to every link already kept), then adds
/// reverse links where there is room. hnsw_rs keeps the plain closest neighbours when a list
/// overflows, which clusters links; diverse links reach further per hop.
fn refine_level0(lists: &mut [Vec<Vec<u32>>], vectors: &[f32], dim: usize) {
    use rayon::prelude::*;
    let row = |i: u32| &vectors[i as usize * dim..(i as usize + 1) * dim];
    let max_links = lists
        .iter()
        .filter_map(|l| l.first())
        .map(Vec::len)
        .max()
        .unwrap_or(0);
    let selected: Vec<Vec<u32>> = lists
        .par_iter()
        .enumerate()
        .map(|(u, layers)| {
            let Some(links) = layers.first() else {
                return Vec::new();
            };
            let mut cands: Vec<(f32, u32)> = links
                .iter()
                .map(|&c| (dot_f32(row(u as u32), row(c)), c))
                .collect();
            cands.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut kept: Vec<u32> = Vec::with_capacity(cands.len());
            for (sim_u, c) in cands {
                if kept.iter().all(|&r| dot_f32(row(c), row(r)) < sim_u) {
                    kept.push(c);
                }
            }
            kept
        })
        .collect();
    let mut refined = selected.clone();
    for (u, kept) in selected.iter().enumerate() {
        for &c in kept {
            let back = &mut refined[c as usize];
            if back.len() < max_links && !back.contains(&(u as u32)) {
                back.push(u as u32);
            }
        }
    }
    for (layers, links) in lists.iter_mut().zip(refined) {
        if let Some(l0) = layers.first_mut() {
            *l0 = links;
        }
    }
}
