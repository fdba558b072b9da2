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
use super::rows::{MappedFile, Rows};
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
    vectors: Rows<S::Elem>,
    level0_stride: usize,
    level0: Rows<u32>,
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

    /// Builds the graph over rows already encoded at precision `S` (`S::row_len(dim)`
    /// elements each): no FP32 copy of the data is needed, which is what lets a machine
    /// build shards whose FP32 form would not fit in its memory.
    pub fn build_encoded(stored: Vec<S::Elem>, dim: usize, params: BuildParams) -> Self {
        assert!(
            dim > 0 && stored.len().is_multiple_of(S::row_len(dim)),
            "rows must be whole rows of {dim}"
        );
        Self::construct(stored, dim, params)
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
        self.with_rows(encode_all::<T>(vectors, self.dim))
    }

    /// The same links with this graph's rows re-encoded at precision `T`, a row at a time
    /// (no FP32 copy of the graph): the INT8 walk of a shard served with an FP16 re-rank.
    pub fn requantize<T: Storage>(&self) -> FrozenGraph<T> {
        let row = T::row_len(self.dim);
        let mut stored = vec![T::Elem::default(); self.len * row];
        let mut decoded = vec![0.0; self.dim];
        for (node, out) in stored.chunks_exact_mut(row).enumerate() {
            S::decode(self.vector(node as u32), &mut decoded);
            T::encode(&decoded, out);
        }
        self.with_rows(stored)
    }

    /// This graph's links over `stored`, one row of precision `T` per node.
    fn with_rows<T: Storage>(&self, stored: Vec<T::Elem>) -> FrozenGraph<T> {
        FrozenGraph::from_parts(
            self.dim,
            stored,
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
        vectors: impl Into<Rows<S::Elem>>,
        level0_stride: usize,
        level0: impl Into<Rows<u32>>,
        upper_stride: usize,
        upper_offsets: Vec<u32>,
        upper: Vec<u32>,
        levels: Vec<u8>,
        entry: u32,
        max_level: u8,
    ) -> Self {
        let vectors = vectors.into();
        Self {
            dim,
            len: vectors.len() / S::row_len(dim),
            vectors,
            level0_stride,
            level0: level0.into(),
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

    /// Bytes of vectors and links held on the heap (a mapped part counts in
    /// [`mapped_bytes`](Self::mapped_bytes) instead).
    pub fn heap_bytes(&self) -> usize {
        self.vectors.heap_bytes()
            + self.level0.heap_bytes()
            + (self.upper.len() + self.upper_offsets.len()) * 4
            + self.levels.len()
    }

    /// Bytes of vectors and links served from a mapped snapshot file: resident only while
    /// the kernel keeps their pages cached.
    pub fn mapped_bytes(&self) -> usize {
        let mapped = |bytes: usize, is_mapped: bool| if is_mapped { bytes } else { 0 };
        mapped(size_of_val(&*self.vectors), self.vectors.is_mapped())
            + mapped(size_of_val(&*self.level0), self.level0.is_mapped())
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

    /// Writes the graph in a little-endian binary layout whose sections each start at a
    /// multiple of [`SECTION_ALIGN`] bytes from the graph's start, so a file that places the
    /// graph at such an offset can be mapped with [`map`](Self::map).
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let mut header = Vec::with_capacity(HEADER_BYTES);
        header.extend_from_slice(GRAPH_MAGIC);
        for v in [
            self.dim,
            self.len,
            self.level0_stride,
            self.upper_stride,
            self.upper.len(),
            self.entry as usize,
            self.max_level as usize,
            S::row_len(self.dim) * size_of::<S::Elem>(),
        ] {
            header.extend_from_slice(&(v as u64).to_le_bytes());
        }
        for section in [
            &header[..],
            bytemuck::cast_slice(&self.vectors),
            bytemuck::cast_slice(&self.level0),
            bytemuck::cast_slice(&self.upper_offsets),
            &self.levels,
            bytemuck::cast_slice(&self.upper),
        ] {
            w.write_all(section)?;
            w.write_all(&[0; SECTION_ALIGN][..padding(section.len())])?;
        }
        Ok(())
    }

    /// Reads what [`write_to`](Self::write_to) wrote onto the heap, validating every link.
    pub fn read_from(r: &mut impl Read) -> io::Result<Self> {
        let mut header = [0u8; HEADER_BYTES];
        r.read_exact(&mut header)?;
        let layout = Layout::parse::<S>(&header)?;
        fn section<T: bytemuck::Pod>(r: &mut impl Read, n: usize) -> io::Result<Vec<T>> {
            // A corrupt header must not abort the process on an impossible allocation.
            let mut v = Vec::new();
            v.try_reserve_exact(n)
                .map_err(|_| corrupt("section larger than memory"))?;
            v.resize(n, T::zeroed());
            r.read_exact(bytemuck::cast_slice_mut(&mut v))?;
            io::copy(
                &mut r.take(padding(size_of_val(v.as_slice())) as u64),
                &mut io::sink(),
            )?;
            Ok(v)
        }
        let vectors: Vec<S::Elem> = section(r, layout.vectors_len)?;
        let level0: Vec<u32> = section(r, layout.level0_len)?;
        let upper_offsets = section(r, layout.len)?;
        let levels = section(r, layout.len)?;
        let upper = section(r, layout.upper_len)?;
        layout.assemble(vectors, level0, upper_offsets, levels, upper)
    }

    /// Maps the graph that [`write_to`](Self::write_to) wrote at byte `offset` of `file`
    /// (a multiple of [`SECTION_ALIGN`]): the vectors and level-0 links stay in the file and
    /// are paged in as searches touch them; the small upper layers are copied. Every link is
    /// validated. Returns the graph and the offset just past it.
    pub fn map(file: &MappedFile, offset: usize) -> io::Result<(Self, usize)> {
        let bytes = file.bytes();
        let header = offset
            .checked_add(HEADER_BYTES)
            .and_then(|end| bytes.get(offset..end))
            .ok_or_else(|| corrupt("truncated header"))?;
        let layout = Layout::parse::<S>(header)?;
        let mut at = offset + HEADER_BYTES;
        let mut next = |n: usize, size: usize| -> io::Result<usize> {
            let start = at;
            let len = n.checked_mul(size).ok_or_else(|| corrupt("header"))?;
            at = start + len + padding(len);
            Ok(start)
        };
        let vectors = Rows::mapped(
            file,
            next(layout.vectors_len, size_of::<S::Elem>())?,
            layout.vectors_len,
        )?;
        let level0 = Rows::mapped(file, next(layout.level0_len, 4)?, layout.level0_len)?;
        let copy = |start: usize, n: usize| Rows::<u32>::mapped(file, start, n).map(Rows::into_vec);
        let upper_offsets = copy(next(layout.len, 4)?, layout.len)?;
        let levels = Rows::<u8>::mapped(file, next(layout.len, 1)?, layout.len)?.into_vec();
        let upper = copy(next(layout.upper_len, 4)?, layout.upper_len)?;
        if at > bytes.len() {
            return Err(corrupt("truncated"));
        }
        let graph = layout.assemble(vectors, level0, upper_offsets, levels, upper)?;
        Ok((graph, at))
    }
}

/// INT8 walk, FP16 decision: searches `coarse` (INT8 rows, a quarter of FP32's memory) for
/// its `rerank` best nodes and re-scores them on `fine`'s FP16 rows, typically mapped from
/// disk and touched only for those nodes. Both graphs hold the same nodes (see
/// [`FrozenGraph::relink`]). Recovers FP16's recall at INT8's resident memory.
pub fn search_reranked(
    coarse: &FrozenGraph<super::storage::Int8>,
    fine: &FrozenGraph<Fp16>,
    query: &[f32],
    k: usize,
    ef: usize,
    rerank: usize,
) -> Vec<(u32, f32)> {
    assert_eq!(coarse.len(), fine.len(), "the same nodes");
    let rerank = rerank.max(k);
    let candidates = coarse.search(query, rerank, ef.max(rerank));
    fine.scan(query, k, candidates.into_iter().map(|(node, _)| node))
}

/// Sections of a written graph start at multiples of this many bytes (a cache line), which
/// aligns every element type for mapping.
pub const SECTION_ALIGN: usize = 64;

/// Graph format 2: sections aligned for mapping, the stored row size in the header.
const GRAPH_MAGIC: &[u8; 8] = b"SRGRAPH2";

/// The header: the magic and eight little-endian u64 fields, padded to two sections.
const HEADER_BYTES: usize = 2 * SECTION_ALIGN;

/// Zero bytes that pad a section of `len` bytes to [`SECTION_ALIGN`].
pub fn padding(len: usize) -> usize {
    (SECTION_ALIGN - len % SECTION_ALIGN) % SECTION_ALIGN
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("corrupt graph: {what}"))
}

/// A written graph's header.
struct Layout {
    dim: usize,
    len: usize,
    level0_stride: usize,
    upper_stride: usize,
    upper_len: usize,
    entry: usize,
    max_level: usize,
    /// Elements in the vectors and level-0 sections.
    vectors_len: usize,
    level0_len: usize,
}

impl Layout {
    fn parse<S: Storage>(header: &[u8]) -> io::Result<Self> {
        if &header[..8] != GRAPH_MAGIC {
            return Err(corrupt("not a graph of this format"));
        }
        let field = |i: usize| {
            let b: [u8; 8] = header[8 + i * 8..16 + i * 8].try_into().expect("8 bytes");
            u64::from_le_bytes(b) as usize
        };
        let (dim, len, level0_stride) = (field(0), field(1), field(2));
        if field(7) != S::row_len(dim.max(1)) * size_of::<S::Elem>() {
            return Err(corrupt("rows of another storage precision"));
        }
        let layout = Self {
            dim,
            len,
            level0_stride,
            upper_stride: field(3),
            upper_len: field(4),
            entry: field(5),
            max_level: field(6),
            vectors_len: len
                .checked_mul(S::row_len(dim.max(1)))
                .ok_or_else(|| corrupt("header"))?,
            level0_len: len
                .checked_mul(level0_stride)
                .ok_or_else(|| corrupt("header"))?,
        };
        if layout.dim == 0
            || layout.dim > 65_536
            || layout.len > u32::MAX as usize
            || layout.level0_stride == 0
            || layout.level0_stride > 4_096
            || layout.upper_stride == 0
            || layout.upper_stride > 4_096
            || layout.upper_len > u32::MAX as usize
        {
            return Err(corrupt("header"));
        }
        Ok(layout)
    }

    /// The graph from its sections, once every link is checked.
    fn assemble<S: Storage>(
        &self,
        vectors: impl Into<Rows<S::Elem>>,
        level0: impl Into<Rows<u32>>,
        upper_offsets: Vec<u32>,
        levels: Vec<u8>,
        upper: Vec<u32>,
    ) -> io::Result<FrozenGraph<S>> {
        let (len, entry, max_level) = (self.len, self.entry, self.max_level);
        let level0 = level0.into();
        let links_ok = |rows: &[u32], stride: usize| {
            rows.chunks_exact(stride).all(|row| {
                (row[0] as usize) < stride
                    && row[1..=row[0] as usize].iter().all(|&n| (n as usize) < len)
            })
        };
        if !links_ok(&level0, self.level0_stride)
            || !links_ok(&upper, self.upper_stride)
            || (len > 0 && entry >= len)
            || max_level >= MAX_LAYERS
            || (len > 0 && levels[entry] as usize != max_level)
            || !upper_levels_ok(
                &upper_offsets,
                &levels,
                &upper,
                self.upper_stride,
                max_level,
            )
        {
            return Err(corrupt("links"));
        }
        Ok(FrozenGraph::from_parts(
            self.dim,
            vectors,
            self.level0_stride,
            level0,
            self.upper_stride,
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
