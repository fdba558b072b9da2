//! Our parallel HNSW construction, straight into the compact layout.
//!
//! The links are built in the very arrays the frozen graph searches (level 0 at a fixed
//! stride, upper levels in a side table), held as atomics while threads insert: a reader may
//! see a list half rewritten, but every entry it sees is a valid node of that level, which is
//! all an approximate search needs. A writer takes the node's own lock. Levels are drawn up
//! front from a hash of the node number, so the upper table is allocated once and the build
//! is repeatable for the same data. The node with the highest level is inserted first, alone;
//! it stays the entry point, so the parallel inserts share no global lock.
//!
//! Neighbour selection is the HNSW heuristic (keep a candidate only if it is closer to the new
//! node than to every neighbour already kept), for the new node's M links and when a
//! neighbour's full list (2M on level 0, M above) takes a reverse link: hnswlib's algorithm.
//! Transient memory is one lock per node and one visited list per thread.

use std::cmp::Reverse;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{BuildParams, Candidate, FrozenGraph, Scratch, MAX_LAYERS, NO_UPPER};
use crate::distance::prefetch;
use crate::storage::Storage;

/// Links under construction, in the frozen layout.
struct Links {
    level0_stride: usize,
    level0: Vec<AtomicU32>,
    upper_stride: usize,
    upper_offsets: Vec<u32>,
    upper: Vec<AtomicU32>,
    levels: Vec<u8>,
}

impl Links {
    fn row(&self, node: u32, level: u8) -> &[AtomicU32] {
        if level == 0 {
            let start = node as usize * self.level0_stride;
            &self.level0[start..start + self.level0_stride]
        } else {
            let start = self.upper_offsets[node as usize] as usize
                + (level as usize - 1) * self.upper_stride;
            &self.upper[start..start + self.upper_stride]
        }
    }

    /// Copies a node's list into `out` (a reader's snapshot, possibly mid-rewrite).
    fn read(&self, node: u32, level: u8, out: &mut Vec<u32>) {
        let row = self.row(node, level);
        let count = (row[0].load(Ordering::Acquire) as usize).min(row.len() - 1);
        out.clear();
        out.extend(row[1..=count].iter().map(|a| a.load(Ordering::Relaxed)));
    }

    /// Replaces a node's list; the caller holds the node's lock.
    fn write(&self, node: u32, level: u8, links: &[u32]) {
        let row = self.row(node, level);
        for (slot, &n) in row[1..].iter().zip(links) {
            slot.store(n, Ordering::Relaxed);
        }
        row[0].store(links.len() as u32, Ordering::Release);
    }
}

/// The graph being built: stored rows, links, per-node locks and the fixed entry point.
struct Builder<'a, S: Storage> {
    dim: usize,
    m: usize,
    ef_construction: usize,
    vectors: &'a [S::Elem],
    kernel: S::Kernel,
    links: Links,
    locks: Vec<Mutex<()>>,
    entry: u32,
    max_level: u8,
}

/// Per-thread buffers of the builder.
#[derive(Default)]
struct Work {
    scratch: Scratch,
    list: Vec<u32>,
    found: Vec<Candidate>,
    selected: Vec<Candidate>,
    decoded: Vec<f32>,
}

/// A node's level: -ln(U) / ln(M), U drawn from a hash of the node number and a seed, so the
/// same data always gives the same graph shape.
fn draw_level(node: u64, m: usize) -> u8 {
    let mut z = node.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let unit = ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let level = (-unit.ln() / (m.max(2) as f64).ln()).floor();
    level.min((MAX_LAYERS - 1) as f64) as u8
}

impl<'a, S: Storage> Builder<'a, S> {
    fn row(&self, node: u32) -> &[S::Elem] {
        let len = S::row_len(self.dim);
        &self.vectors[node as usize * len..(node as usize + 1) * len]
    }

    /// The stored row of `node` as a query (what the search will compare against).
    fn query_of(&self, node: u32, decoded: &mut Vec<f32>) -> S::Query {
        decoded.resize(self.dim, 0.0);
        S::decode(self.row(node), decoded);
        S::prepare(decoded)
    }

    #[inline]
    fn distance(&self, query: &S::Query, node: u32) -> f32 {
        -S::similarity(self.kernel, query, self.row(node))
    }

    fn lock(&self, node: u32) -> std::sync::MutexGuard<'_, ()> {
        self.locks[node as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Greedy descent on one level from `current`.
    fn greedy(
        &self,
        w: &mut Work,
        query: &S::Query,
        mut current: Candidate,
        level: u8,
    ) -> Candidate {
        let mut changed = true;
        while changed {
            changed = false;
            self.links.read(current.node, level, &mut w.list);
            for &n in &w.list {
                let dist = self.distance(query, n);
                if dist < current.dist {
                    current = Candidate { dist, node: n };
                    changed = true;
                }
            }
        }
        current
    }

    /// The `ef` closest nodes found on `level` from `entry`, closest first, into `w.found`.
    fn search_level(&self, w: &mut Work, query: &S::Query, entry: Candidate, level: u8) {
        let ef = self.ef_construction;
        let s = &mut w.scratch;
        s.reset(self.locks.len());
        let generation = s.generation;
        s.visited[entry.node as usize] = generation;
        s.candidates.push(Reverse(entry));
        s.top.push(entry);
        let mut bound = entry.dist;
        while let Some(Reverse(closest)) = s.candidates.pop() {
            if closest.dist > bound && s.top.len() >= ef {
                break;
            }
            self.links.read(closest.node, level, &mut w.list);
            if let Some(Reverse(next)) = s.candidates.peek() {
                prefetch(self.links.row(next.node, level).as_ptr());
            }
            // Mark the unvisited neighbours and start loading their vectors before the
            // distance pass (as the search does).
            for &n in &w.list {
                prefetch(s.visited.as_ptr().wrapping_add(n as usize));
            }
            s.fresh.clear();
            for &n in &w.list {
                let mark = &mut s.visited[n as usize];
                if *mark != generation {
                    *mark = generation;
                    s.fresh.push(n);
                    prefetch(self.row(n).as_ptr());
                }
            }
            for &n in &s.fresh {
                let dist = self.distance(query, n);
                if s.top.len() < ef || dist < bound {
                    s.candidates.push(Reverse(Candidate { dist, node: n }));
                    s.top.push(Candidate { dist, node: n });
                    if s.top.len() > ef {
                        s.top.pop();
                    }
                    bound = s.top.peek().map_or(dist, |c| c.dist);
                }
            }
        }
        w.found.clear();
        w.found.extend(s.top.drain());
        w.found.sort_unstable();
    }

    /// The HNSW heuristic over `candidates` (closest first, distances to the base node):
    /// keeps up to `keep` that are closer to the base than to any already kept.
    fn select(
        &self,
        candidates: &[Candidate],
        keep: usize,
        w: &mut Vec<f32>,
        out: &mut Vec<Candidate>,
    ) {
        out.clear();
        for &c in candidates {
            if out.len() >= keep {
                break;
            }
            let good = out.is_empty() || {
                let cq = self.query_of(c.node, w);
                out.iter().all(|r| self.distance(&cq, r.node) > c.dist)
            };
            if good {
                out.push(c);
            }
        }
    }

    /// Adds `node` to `neighbour`'s list on `level`, re-selecting the list when it is full.
    fn connect(&self, w: &mut Work, neighbour: u32, node: u32, dist: f32, level: u8) {
        let cap = if level == 0 {
            self.links.level0_stride - 1
        } else {
            self.links.upper_stride - 1
        };
        let _guard = self.lock(neighbour);
        self.links.read(neighbour, level, &mut w.list);
        if w.list.contains(&node) {
            return;
        }
        if w.list.len() < cap {
            w.list.push(node);
            self.links.write(neighbour, level, &w.list);
            return;
        }
        let base = self.query_of(neighbour, &mut w.decoded);
        let mut candidates: Vec<Candidate> = w
            .list
            .iter()
            .map(|&n| Candidate {
                dist: self.distance(&base, n),
                node: n,
            })
            .collect();
        candidates.push(Candidate { dist, node });
        candidates.sort_unstable();
        let mut kept = std::mem::take(&mut w.selected);
        self.select(&candidates, cap, &mut w.decoded, &mut kept);
        w.list.clear();
        w.list.extend(kept.iter().map(|c| c.node));
        self.links.write(neighbour, level, &w.list);
        w.selected = kept;
    }

    /// Inserts `node` (its row and level already in place) into the graph.
    fn insert(&self, w: &mut Work, node: u32) {
        let query = self.query_of(node, &mut w.decoded);
        let level = self.links.levels[node as usize];
        let mut current = Candidate {
            dist: self.distance(&query, self.entry),
            node: self.entry,
        };
        for l in (level.saturating_add(1)..=self.max_level).rev() {
            current = self.greedy(w, &query, current, l);
        }
        for l in (0..=level.min(self.max_level)).rev() {
            self.search_level(w, &query, current, l);
            let mut found = std::mem::take(&mut w.found);
            found.retain(|c| c.node != node);
            let mut selected = Vec::with_capacity(self.m);
            self.select(&found, self.m, &mut w.decoded, &mut selected);
            let ids: Vec<u32> = selected.iter().map(|c| c.node).collect();
            {
                let _guard = self.lock(node);
                self.links.write(node, l, &ids);
            }
            for c in &selected {
                self.connect(w, c.node, node, c.dist, l);
            }
            if let Some(&closest) = found.first() {
                current = closest;
            }
            w.found = found;
        }
    }
}

impl<S: Storage> FrozenGraph<S> {
    /// Builds the graph over `stored` (rows already encoded at precision `S`) with our
    /// parallel HNSW construction on the rayon pool.
    pub(super) fn construct(stored: Vec<S::Elem>, dim: usize, params: BuildParams) -> Self {
        let len = stored.len() / S::row_len(dim);
        let level0_stride = 1 + 2 * params.m;
        let upper_stride = 1 + params.m;
        let empty = Self::from_parts(
            dim,
            Vec::new(),
            level0_stride,
            Vec::new(),
            upper_stride,
            Vec::new(),
            Vec::new(),
            Vec::new(),
            0,
            0,
        );
        empty.extended(stored, len, params)
    }

    /// Inserts `rows` (encoded at precision `S`) as new nodes `len()..`, keeping every
    /// existing link: the incremental path when a frozen shard grows. Runs on the rayon pool.
    pub fn insert_rows(self, rows: &[f32], params: BuildParams) -> Self {
        assert!(
            rows.len().is_multiple_of(self.dim),
            "rows must be whole rows of {}",
            self.dim
        );
        let added = rows.len() / self.dim;
        let mut grown = self;
        let mut vectors = std::mem::take(&mut grown.vectors).into_vec();
        vectors.extend_from_slice(&super::encode_all::<S>(rows, grown.dim));
        grown.extended(vectors, added, params)
    }

    /// The graph with the last `added` rows of `vectors` inserted; the rows before them are
    /// this graph's nodes.
    fn extended(self, vectors: Vec<S::Elem>, added: usize, params: BuildParams) -> Self {
        let dim = self.dim;
        let old_len = self.len;
        let len = vectors.len() / S::row_len(dim);
        debug_assert_eq!(len, old_len + added);
        let to_atomic =
            |v: Vec<u32>| -> Vec<AtomicU32> { v.into_iter().map(AtomicU32::new).collect() };
        let mut levels = self.levels;
        levels.extend((old_len..len).map(|n| draw_level(n as u64, params.m)));
        let mut upper_offsets = self.upper_offsets;
        let mut upper_len = self.upper.len();
        for &level in &levels[old_len..] {
            if level == 0 {
                upper_offsets.push(NO_UPPER);
            } else {
                upper_offsets.push(upper_len as u32);
                upper_len += level as usize * self.upper_stride;
            }
        }
        let mut level0 = to_atomic(self.level0.into_vec());
        level0.resize_with(len * self.level0_stride, || AtomicU32::new(0));
        let mut upper = to_atomic(self.upper);
        upper.resize_with(upper_len, || AtomicU32::new(0));
        let links = Links {
            level0_stride: self.level0_stride,
            level0,
            upper_stride: self.upper_stride,
            upper_offsets,
            upper,
            levels,
        };
        // The highest new node goes in first and alone; if it tops the graph it becomes the
        // entry, and every later insert is at or below the entry's level.
        let first = (old_len..len).max_by_key(|&n| (links.levels[n], Reverse(n)));
        let (mut entry, mut max_level) = (self.entry, self.max_level);
        let mut builder = Builder::<S> {
            dim,
            m: params.m,
            ef_construction: params.ef_construction.max(params.m),
            vectors: &vectors,
            kernel: S::kernel(),
            links,
            locks: (0..len).map(|_| Mutex::new(())).collect(),
            entry,
            max_level,
        };
        if let Some(first) = first {
            if old_len == 0 {
                entry = first as u32;
                max_level = builder.links.levels[first];
            } else {
                builder.insert(&mut Work::default(), first as u32);
                if builder.links.levels[first] > max_level {
                    entry = first as u32;
                    max_level = builder.links.levels[first];
                }
            }
            builder.entry = entry;
            builder.max_level = max_level;
            let next = AtomicUsize::new(old_len);
            let builder = &builder;
            // Threads take nodes in order from a shared counter, so the graph grows as a
            // sequential build would, whatever the thread count.
            rayon::broadcast(|_| {
                let mut w = Work::default();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= len {
                        break;
                    }
                    if n != first {
                        builder.insert(&mut w, n as u32);
                    }
                }
            });
        }
        let Links {
            level0_stride,
            level0,
            upper_stride,
            upper_offsets,
            upper,
            levels,
        } = builder.links;
        let from_atomic =
            |v: Vec<AtomicU32>| -> Vec<u32> { v.into_iter().map(AtomicU32::into_inner).collect() };
        drop(builder.locks);
        let mut graph = Self::from_parts(
            dim,
            vectors,
            level0_stride,
            from_atomic(level0),
            upper_stride,
            upper_offsets,
            from_atomic(upper),
            levels,
            entry,
            max_level,
        );
        // A replaced link may, rarely, cut a node reached through it: check again.
        for _ in 0..3 {
            if graph.link_unreachable() == 0 {
                break;
            }
        }
        graph
    }

    /// Makes every node reachable on level 0 from the entry point. Pruning a full neighbour
    /// list can drop a node's last incoming link, and later inserts, which find their
    /// neighbours by searching, never see it again. Each such node gets a link from its
    /// nearest reachable neighbour, in place of a link to a node that other links still reach.
    /// Returns the number of links added.
    fn link_unreachable(&mut self) -> usize {
        if self.len == 0 {
            return 0;
        }
        let mut added = 0;
        let stride = self.level0_stride;
        let mut in_degree = vec![0u32; self.len];
        for row in self.level0.chunks_exact(stride) {
            for &n in &row[1..=row[0] as usize] {
                in_degree[n as usize] += 1;
            }
        }
        let mut reached = vec![false; self.len];
        let mut queue = vec![self.entry];
        reached[self.entry as usize] = true;
        let mut next_unreached = 0u32;
        loop {
            // Spread from everything newly reached.
            while let Some(node) = queue.pop() {
                for &n in self.neighbours(node, 0) {
                    if !reached[n as usize] {
                        reached[n as usize] = true;
                        queue.push(n);
                    }
                }
            }
            while (next_unreached as usize) < self.len && reached[next_unreached as usize] {
                next_unreached += 1;
            }
            if next_unreached as usize == self.len {
                return added;
            }
            added += 1;
            let orphan = next_unreached;
            // The orphan's own links are its nearest neighbours, closest first; failing a
            // reachable one among them, search for its nearest reachable node.
            let from = self
                .neighbours(orphan, 0)
                .iter()
                .copied()
                .find(|&n| reached[n as usize])
                .or_else(|| {
                    let mut row = vec![0.0; self.dim];
                    S::decode(self.vector(orphan), &mut row);
                    self.search(&row, 1, 16).first().map(|&(n, _)| n)
                })
                .unwrap_or(self.entry);
            let row =
                &mut self.level0.make_mut()[from as usize * stride..(from as usize + 1) * stride];
            let count = row[0] as usize;
            if count + 1 < stride {
                row[count + 1] = orphan;
                row[0] += 1;
            } else {
                // Replace the link whose target has the most other incoming links.
                let slot = (1..=count)
                    .max_by_key(|&i| in_degree[row[i] as usize])
                    .expect("a full list has links");
                in_degree[row[slot] as usize] -= 1;
                row[slot] = orphan;
            }
            in_degree[orphan as usize] += 1;
            reached[orphan as usize] = true;
            queue.push(orphan);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_hnsw_distribution() {
        let m = 16;
        let n = 200_000u64;
        let above: usize = (0..n).filter(|&i| draw_level(i, m) >= 1).count();
        // P(level >= 1) = 1/M.
        let expected = n as f64 / m as f64;
        assert!(
            (above as f64 - expected).abs() < expected * 0.05,
            "{above} vs {expected}"
        );
        assert!((0..n).all(|i| (draw_level(i, m) as usize) < MAX_LAYERS));
    }
}
