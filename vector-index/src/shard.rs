//! A shard held in this process: frozen graph + exact delta + live versions, with background
//! rebuilds and an on-disk snapshot so restarts do not rebuild (or re-embed) anything.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};

use half::f16;

use super::distance::best_dot;
use super::graph::{padding, SECTION_ALIGN};
use super::{
    Filter, FrozenGraph, Hit, IndexParams, Int8, LabelIndex, Labels, MappedFile, Precision, Shard,
    ShardItem,
};

/// Version 3 added each node's labels; version 4 aligns the graph for mapping. The INT8 copy
/// of the graph of a shard served with a re-rank follows the FP16 graph, aligned; it is there
/// when the file goes on past the FP16 graph.
const SNAPSHOT_MAGIC: &[u8; 8] = b"SRSHARD4";

/// A rebuild inserts the delta into the graph while fewer than one frozen node in this many
/// is stale (replaced or deleted); past that it rebuilds from the live vectors.
const MAX_STALE_SHARE: usize = 5;

/// The frozen part: a graph and, per node, the item, vector version and labels it holds,
/// with a bitmap per label for filtered search.
struct Frozen {
    /// FP16 rows: walked, or with `coarse`, read only to re-rank its candidates.
    graph: FrozenGraph,
    /// The same links over INT8 rows, walked when the shard serves [`Precision::Int8Rerank`].
    coarse: Option<FrozenGraph<Int8>>,
    ids: Vec<Arc<str>>,
    versions: Vec<u64>,
    labels: Vec<Labels>,
    label_index: LabelIndex,
    position: HashMap<Arc<str>, u32>,
}

impl Frozen {
    fn new(
        graph: FrozenGraph,
        coarse: Option<FrozenGraph<Int8>>,
        ids: Vec<Arc<str>>,
        versions: Vec<u64>,
        labels: Vec<Labels>,
    ) -> Self {
        let position = ids.iter().cloned().zip(0u32..).collect();
        Self {
            graph,
            coarse,
            ids,
            versions,
            label_index: LabelIndex::new(&labels),
            labels,
            position,
        }
    }

    fn empty(dim: usize, params: IndexParams) -> Self {
        Self::new(
            FrozenGraph::build(&[], dim, params.build()),
            None,
            vec![],
            vec![],
            vec![],
        )
    }

    fn holds(&self, id: &str, version: u64) -> bool {
        self.position
            .get(id)
            .is_some_and(|&n| self.versions[n as usize] == version)
    }

    /// A frozen part served at `precision` from its FP16 graph: the INT8 copy is made (or
    /// dropped) to match.
    fn served_at(mut self, precision: Precision) -> Self {
        self.coarse = match precision {
            Precision::Fp16 => None,
            Precision::Int8Rerank { .. } => self
                .coarse
                .take()
                .filter(|c| c.len() == self.graph.len() && c.dim() == self.graph.dim())
                .or_else(|| Some(self.graph.requantize())),
        };
        self
    }

    /// The `k` nearest admitted nodes: the FP16 walk, or the INT8 walk for `rerank`
    /// candidates re-scored on the FP16 rows.
    fn nearest(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: &Filter,
        precision: Precision,
    ) -> Vec<(u32, f32)> {
        if k == 0 {
            return Vec::new();
        }
        let admitted = (!filter.is_empty()).then(|| self.label_index.admitted(filter));
        match (&self.coarse, precision) {
            (Some(coarse), Precision::Int8Rerank { rerank }) => {
                let rerank = rerank.max(k);
                let ef = ef.max(rerank);
                let candidates = match &admitted {
                    None => coarse.search(query, rerank, ef),
                    Some(admitted) => coarse.search_in(query, rerank, ef, admitted),
                };
                self.graph
                    .scan(query, k, candidates.into_iter().map(|(node, _)| node))
            }
            _ => match &admitted {
                None => self.graph.search(query, k, ef.max(k)),
                Some(admitted) => self.graph.search_in(query, k, ef.max(k), admitted),
            },
        }
    }

    fn heap_bytes(&self) -> usize {
        self.graph.heap_bytes() + self.coarse.as_ref().map_or(0, |c| c.heap_bytes())
    }

    fn mapped_bytes(&self) -> usize {
        self.graph.mapped_bytes() + self.coarse.as_ref().map_or(0, |c| c.mapped_bytes())
    }
}

struct DeltaEntry {
    id: Arc<str>,
    version: u64,
    vector: Vec<f16>,
    labels: Labels,
}

struct State {
    frozen: Arc<Frozen>,
    /// Live vector version of every item of the shard; anything else is a tombstone.
    live: HashMap<Arc<str>, u64>,
    delta: Vec<DeltaEntry>,
    /// Frozen nodes whose item was replaced or deleted since the last rebuild.
    stale: usize,
}

pub struct LocalShard {
    id: usize,
    params: IndexParams,
    snapshot_path: Option<PathBuf>,
    state: RwLock<State>,
    rebuilding: AtomicBool,
    this: Weak<LocalShard>,
}

impl LocalShard {
    /// Opens shard `id` holding `items` (id, version, unit vector). A snapshot in
    /// `snapshot_dir` whose nodes still match the items' versions is reused; whatever it
    /// lacks goes to the delta, and a large delta is rebuilt before this returns.
    pub fn open(
        id: usize,
        params: IndexParams,
        snapshot_dir: Option<&Path>,
        items: Vec<ShardItem>,
    ) -> Arc<Self> {
        let snapshot_path = snapshot_dir.map(|d| d.join(format!("shard-{id:03}.snap")));
        if let Some(dir) = snapshot_dir {
            remove_unfinished_snapshots(dir, id);
        }
        let read = snapshot_path
            .as_deref()
            .and_then(|p| match read_snapshot(p, params.dim) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => {
                    tracing::warn!(shard = id, error = %e, "ignoring unreadable shard snapshot; rebuilding");
                    None
                }
            });
        let had_int8 = read.as_ref().is_some_and(|f| f.coarse.is_some());
        let mut frozen = read
            .unwrap_or_else(|| Frozen::empty(params.dim, params))
            .served_at(params.precision);
        if frozen.coarse.is_some() && !had_int8 && !frozen.ids.is_empty() {
            // Derived from an FP16-only snapshot: written back, so it is mapped, not kept on
            // the heap, and not derived again at the next start.
            if let Some(path) = &snapshot_path {
                persist(id, path, &mut frozen);
            }
        }
        let mut live = HashMap::with_capacity(items.len());
        let mut delta = Vec::new();
        for item in items {
            // Labels change with the version (every write of an item gets a new one).
            if !frozen.holds(&item.id, item.version) {
                delta.push(DeltaEntry {
                    id: item.id.clone(),
                    version: item.version,
                    vector: to_f16(&item.vector),
                    labels: item.labels,
                });
            }
            live.insert(item.id, item.version);
        }
        let stale = frozen
            .ids
            .iter()
            .zip(&frozen.versions)
            .filter(|(i, v)| live.get(*i) != Some(v))
            .count();
        let shard = Arc::new_cyclic(|this| Self {
            id,
            params,
            snapshot_path,
            state: RwLock::new(State {
                frozen: Arc::new(frozen),
                live,
                delta,
                stale,
            }),
            rebuilding: AtomicBool::new(false),
            this: this.clone(),
        });
        // A shard without a usable snapshot builds its graph now, however small; otherwise
        // only a large delta is worth rebuilding before serving.
        let first_build = {
            let st = shard.state.read().expect("shard lock");
            st.frozen.ids.is_empty() && !st.delta.is_empty()
        };
        if first_build || shard.needs_rebuild() {
            shard.rebuilding.store(true, Ordering::SeqCst);
            shard.rebuild();
        }
        shard
    }

    fn needs_rebuild(&self) -> bool {
        let st = self.state.read().expect("shard lock");
        let nodes = st.frozen.ids.len();
        let limit = self.params.rebuild_threshold.max(nodes / 10);
        // A large delta is inserted; many stale nodes call for a rebuild without them.
        st.delta.len() > limit || st.stale * MAX_STALE_SHARE > nodes.max(limit)
    }

    /// Starts a background rebuild unless one is running.
    fn schedule_rebuild(&self) {
        if self.needs_rebuild() && !self.rebuilding.swap(true, Ordering::SeqCst) {
            let this = self.this.clone();
            std::thread::spawn(move || {
                if let Some(shard) = this.upgrade() {
                    shard.rebuild();
                }
            });
        }
    }

    /// Folds the delta into the graph, swaps it in and writes the snapshot. Searches keep
    /// running on the old graph meanwhile. While few frozen nodes are stale, the delta is
    /// inserted into a copy of the graph (work in proportion to the delta); otherwise the
    /// graph is rebuilt from every live vector, which also drops the stale nodes.
    fn rebuild(&self) {
        let started = std::time::Instant::now();
        // Under the lock, only what is cheap to copy: the delta's rows and which frozen nodes
        // are still live. The frozen rows may be mapped from disk; they are read after it.
        let (frozen, delta, keep) = {
            let st = self.state.read().expect("shard lock");
            let delta: Vec<ShardItem> = st
                .delta
                .iter()
                .filter(|e| st.live.get(&e.id) == Some(&e.version))
                .map(|e| ShardItem {
                    id: e.id.clone(),
                    version: e.version,
                    vector: e.vector.iter().map(|x| x.to_f32()).collect(),
                    labels: e.labels.clone(),
                })
                .collect();
            let incremental =
                !st.frozen.ids.is_empty() && st.stale * MAX_STALE_SHARE < st.frozen.ids.len();
            let keep: Option<Vec<bool>> = (!incremental).then(|| {
                st.frozen
                    .ids
                    .iter()
                    .zip(&st.frozen.versions)
                    .map(|(id, v)| st.live.get(id) == Some(v))
                    .collect()
            });
            (st.frozen.clone(), delta, keep)
        };
        let incremental = keep.is_none();
        let mut next = if let Some(keep) = keep {
            let (mut ids, mut versions, mut labels, mut vectors) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (n, _) in keep.iter().enumerate().filter(|(_, &k)| k) {
                ids.push(frozen.ids[n].clone());
                versions.push(frozen.versions[n]);
                labels.push(frozen.labels[n].clone());
                vectors.extend_from_slice(frozen.graph.vector(n as u32));
            }
            for item in delta {
                ids.push(item.id);
                versions.push(item.version);
                labels.push(item.labels);
                vectors.extend(item.vector.iter().map(|&x| f16::from_f32(x)));
            }
            // Straight from the FP16 rows: no FP32 copy of the shard during a rebuild.
            let graph = FrozenGraph::build_encoded(vectors, self.params.dim, self.params.build());
            Frozen::new(graph, None, ids, versions, labels)
        } else {
            let mut ids = frozen.ids.clone();
            let mut versions = frozen.versions.clone();
            let mut labels = frozen.labels.clone();
            let mut rows = Vec::with_capacity(delta.len() * self.params.dim);
            for item in delta {
                ids.push(item.id);
                versions.push(item.version);
                labels.push(item.labels);
                rows.extend(item.vector);
            }
            let graph = frozen.graph.clone().insert_rows(&rows, self.params.build());
            Frozen::new(graph, None, ids, versions, labels)
        }
        .served_at(self.params.precision);
        drop(frozen);
        if let Some(path) = &self.snapshot_path {
            persist(self.id, path, &mut next);
        }
        let frozen = Arc::new(next);
        let built: HashSet<u64> = frozen.versions.iter().copied().collect();
        {
            let mut st = self.state.write().expect("shard lock");
            let State { live, delta, .. } = &mut *st;
            delta.retain(|e| live.get(&e.id) == Some(&e.version) && !built.contains(&e.version));
            st.stale = frozen
                .ids
                .iter()
                .zip(&frozen.versions)
                .filter(|(i, v)| st.live.get(*i) != Some(v))
                .count();
            st.frozen = frozen;
        }
        self.rebuilding.store(false, Ordering::SeqCst);
        tracing::info!(
            shard = self.id,
            items = self.len(),
            incremental,
            took_ms = started.elapsed().as_millis() as u64,
            "shard rebuilt"
        );
        self.schedule_rebuild();
    }

    /// Blocks until no rebuild is running (used by tests and orderly shutdown).
    pub fn wait_idle(&self) {
        while self.rebuilding.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// The vector version held for `item_id`, if the shard holds it.
    pub fn version(&self, item_id: &str) -> Option<u64> {
        let st = self.state.read().expect("shard lock");
        st.live.get(item_id).copied()
    }

    /// Nodes in the frozen graph and vectors in the delta, for metrics and tests.
    pub fn layout(&self) -> (usize, usize) {
        let st = self.state.read().expect("shard lock");
        (st.frozen.ids.len(), st.delta.len())
    }

    /// Bytes of the frozen graph served from its mapped snapshot (0 without a snapshot).
    pub fn mapped_bytes(&self) -> usize {
        self.state.read().expect("shard lock").frozen.mapped_bytes()
    }

    /// Whether the frozen graph is walked on INT8 rows (with an FP16 re-rank).
    pub fn walks_int8(&self) -> bool {
        self.state
            .read()
            .expect("shard lock")
            .frozen
            .coarse
            .is_some()
    }
}

impl Shard for LocalShard {
    fn id(&self) -> usize {
        self.id
    }

    fn search(&self, query: &[f32], k: usize, ef: usize, filter: &Filter) -> Vec<Hit> {
        let st = self.state.read().expect("shard lock");
        let frozen = &st.frozen;
        // Stale nodes can occupy result slots: ask the graph for a few more.
        let want = k + st.stale.min(k);
        let nodes = frozen.nearest(query, want, ef, filter, self.params.precision);
        let mut hits: Vec<Hit> = nodes
            .into_iter()
            .filter(|&(n, _)| {
                st.live.get(&frozen.ids[n as usize]) == Some(&frozen.versions[n as usize])
            })
            .map(|(n, score)| Hit {
                item_id: frozen.ids[n as usize].clone(),
                score,
            })
            .collect();
        let dot = best_dot();
        hits.extend(
            st.delta
                .iter()
                .filter(|e| st.live.get(&e.id) == Some(&e.version) && filter.admits(&e.labels))
                .map(|e| Hit {
                    item_id: e.id.clone(),
                    score: dot(query, &e.vector),
                }),
        );
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(k);
        hits
    }

    fn upsert(&self, item_id: Arc<str>, version: u64, vector: &[f32], labels: Labels) {
        {
            let mut st = self.state.write().expect("shard lock");
            let previous = st.live.insert(item_id.clone(), version);
            if previous.is_some_and(|v| st.frozen.holds(&item_id, v)) {
                st.stale += 1;
            }
            st.delta.retain(|e| e.id != item_id);
            st.delta.push(DeltaEntry {
                id: item_id,
                version,
                vector: to_f16(vector),
                labels,
            });
        }
        self.schedule_rebuild();
    }

    fn remove(&self, item_id: &str) {
        {
            let mut st = self.state.write().expect("shard lock");
            if let Some(v) = st.live.remove(item_id) {
                if st.frozen.holds(item_id, v) {
                    st.stale += 1;
                }
            }
            st.delta.retain(|e| &*e.id != item_id);
        }
        self.schedule_rebuild();
    }

    fn len(&self) -> usize {
        self.state.read().expect("shard lock").live.len()
    }

    fn memory_bytes(&self) -> usize {
        let st = self.state.read().expect("shard lock");
        st.frozen.heap_bytes() + st.frozen.mapped_bytes() + st.delta.len() * self.params.dim * 2
    }
}

fn to_f16(v: &[f32]) -> Vec<f16> {
    v.iter().map(|&x| f16::from_f32(x)).collect()
}

/// Writes `frozen`'s snapshot and serves its graphs from the file just written: the built
/// copies leave the heap, and the kernel keeps as much of the file in memory as searches use.
/// On failure the shard goes on serving from memory.
fn persist(shard: usize, path: &Path, frozen: &mut Frozen) {
    match write_snapshot(path, frozen) {
        Ok((file, graph_at)) => match map_graphs(&file, graph_at) {
            Ok((graph, coarse))
                if graph.len() == frozen.ids.len()
                    && coarse.is_some() == frozen.coarse.is_some() =>
            {
                frozen.graph = graph;
                frozen.coarse = coarse;
            }
            Ok(_) => tracing::error!(
                shard,
                "snapshot written with another layout; serving from memory"
            ),
            Err(e) => {
                tracing::error!(shard, error = %e, "cannot map the snapshot just written; serving from memory")
            }
        },
        Err(e) => tracing::error!(shard, error = %e, "cannot write shard snapshot"),
    }
}

/// Writes the snapshot atomically: a temporary file (named for this process and write),
/// fsync, then rename over the old one. Returns the file mapped (mapped before the rename, so
/// it is the file this call wrote) and the offset of the graph in it, aligned for mapping.
fn write_snapshot(path: &Path, frozen: &Frozen) -> io::Result<(MappedFile, usize)> {
    use std::sync::atomic::AtomicU64;
    static WRITES: AtomicU64 = AtomicU64::new(0);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!(
        "snap.{}-{}.tmp",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let written = write_snapshot_file(&tmp, frozen).and_then(|(file, graph_at)| {
        // SAFETY: the file is ours alone until renamed, and is only ever replaced by rename.
        let mapped = unsafe { MappedFile::map(&file)? };
        fs::rename(&tmp, path)?;
        Ok((mapped, graph_at))
    });
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

fn write_snapshot_file(tmp: &Path, frozen: &Frozen) -> io::Result<(File, usize)> {
    let mut w = Counted {
        inner: BufWriter::new(File::create_new(tmp)?),
        written: 0,
    };
    w.write_all(SNAPSHOT_MAGIC)?;
    w.write_all(&(frozen.ids.len() as u64).to_le_bytes())?;
    for ((id, version), labels) in frozen.ids.iter().zip(&frozen.versions).zip(&frozen.labels) {
        w.write_all(&(id.len() as u16).to_le_bytes())?;
        w.write_all(id.as_bytes())?;
        w.write_all(&version.to_le_bytes())?;
        w.write_all(&(labels.len() as u16).to_le_bytes())?;
        for label in labels.iter() {
            w.write_all(&(label.len() as u16).to_le_bytes())?;
            w.write_all(label.as_bytes())?;
        }
    }
    w.write_all(&[0; SECTION_ALIGN][..padding(w.written)])?;
    let graph_at = w.written;
    frozen.graph.write_to(&mut w)?;
    if let Some(coarse) = &frozen.coarse {
        w.write_all(&[0; SECTION_ALIGN][..padding(w.written)])?;
        coarse.write_to(&mut w)?;
    }
    let file = w.inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((file, graph_at))
}

/// Removes the temporary files of snapshot writes of shard `id` that a crash interrupted.
fn remove_unfinished_snapshots(dir: &Path, id: usize) {
    let prefix = format!("shard-{id:03}.snap.");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// A writer that counts the bytes through it (to align the graph that follows).
struct Counted<W> {
    inner: W,
    written: usize,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Opens a snapshot by mapping it: the item table is read, the graph stays in the file.
fn read_snapshot(path: &Path, dim: usize) -> io::Result<Frozen> {
    // SAFETY: snapshots are only ever replaced by rename, never changed in place.
    let file = unsafe { MappedFile::open(path)? };
    let bytes = file.bytes();
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut r = bytes;
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic != SNAPSHOT_MAGIC {
        return Err(bad("not a shard snapshot of this version"));
    }
    let mut b8 = [0u8; 8];
    r.read_exact(&mut b8)?;
    let n = u64::from_le_bytes(b8) as usize;
    let mut ids = Vec::with_capacity(n.min(1 << 24));
    let mut versions = Vec::with_capacity(n.min(1 << 24));
    let mut labels = Vec::with_capacity(n.min(1 << 24));
    let read_str = |r: &mut &[u8]| -> io::Result<Arc<str>> {
        let mut b2 = [0u8; 2];
        r.read_exact(&mut b2)?;
        let len = u16::from_le_bytes(b2) as usize;
        if r.len() < len {
            return Err(bad("snapshot is truncated"));
        }
        let (text, rest) = r.split_at(len);
        *r = rest;
        Ok(Arc::from(
            std::str::from_utf8(text).map_err(|_| bad("text is not UTF-8"))?,
        ))
    };
    for _ in 0..n {
        ids.push(read_str(&mut r)?);
        r.read_exact(&mut b8)?;
        versions.push(u64::from_le_bytes(b8));
        let mut b2 = [0u8; 2];
        r.read_exact(&mut b2)?;
        let count = u16::from_le_bytes(b2);
        labels.push(
            (0..count)
                .map(|_| read_str(&mut r))
                .collect::<io::Result<Labels>>()?,
        );
    }
    let table_end = bytes.len() - r.len();
    let (graph, coarse) = map_graphs(&file, table_end + padding(table_end))?;
    // An INT8 copy of another length is dropped when the shard is served (`served_at`).
    if graph.len() != n || (n > 0 && graph.dim() != dim) {
        return Err(bad(
            "snapshot does not match its items or the index dimension",
        ));
    }
    Ok(Frozen::new(graph, coarse, ids, versions, labels))
}

/// Maps the FP16 graph at `offset` of a snapshot and the INT8 copy after it, if any.
fn map_graphs(
    file: &MappedFile,
    offset: usize,
) -> io::Result<(FrozenGraph, Option<FrozenGraph<Int8>>)> {
    let (graph, end) = FrozenGraph::map(file, offset)?;
    // A bad INT8 copy costs only itself: it is derived again from the FP16 graph if needed.
    let coarse = (end < file.bytes().len())
        .then(|| FrozenGraph::map(file, end + padding(end)))
        .and_then(|mapped| {
            mapped
                .inspect_err(|e| tracing::warn!(error = %e, "ignoring the snapshot's INT8 graph"))
                .ok()
        })
        .map(|(coarse, _)| coarse)
        .filter(|c| c.dim() == graph.dim());
    Ok((graph, coarse))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::search_reranked;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    /// The INT8 shard walks its INT8 graph and re-scores on FP16: exactly the library's
    /// `search_reranked` on the same two graphs, filtered or not.
    #[test]
    fn an_int8_shard_searches_its_int8_graph_with_an_fp16_rerank() {
        let (dim, n) = (32, 2_000);
        let mut rng = StdRng::seed_from_u64(5);
        let unit = |rng: &mut StdRng| -> Vec<f32> {
            let v: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        };
        let vectors: Vec<f32> = (0..n).flat_map(|_| unit(&mut rng)).collect();
        let params = crate::BuildParams {
            m: 16,
            ef_construction: 100,
        };
        let ids: Vec<Arc<str>> = (0..n).map(|i| Arc::from(format!("i{i}"))).collect();
        let labels: Vec<Labels> = (0..n)
            .map(|i| vec![Arc::from(if i % 3 == 0 { "a" } else { "b" })].into())
            .collect();
        let precision = Precision::Int8Rerank { rerank: 12 };
        let frozen = Frozen::new(
            FrozenGraph::build(&vectors, dim, params),
            None,
            ids,
            vec![1; n],
            labels,
        )
        .served_at(precision);
        let coarse = frozen.coarse.as_ref().expect("an INT8 graph");
        let only_a = Filter::default().any_of(["a"]);
        for _ in 0..20 {
            let q = unit(&mut rng);
            let found = frozen.nearest(&q, 10, 40, &Filter::default(), precision);
            assert_eq!(
                found,
                search_reranked(coarse, &frozen.graph, &q, 10, 40, 12)
            );
            // Filtered: the INT8 walk admits only "a" nodes, then the same re-rank.
            let admitted = frozen.label_index.admitted(&only_a);
            let candidates = coarse.search_in(&q, 12, 40, &admitted);
            let expected = frozen
                .graph
                .scan(&q, 10, candidates.into_iter().map(|(node, _)| node));
            assert_eq!(frozen.nearest(&q, 10, 40, &only_a, precision), expected);
            assert!(expected.iter().all(|&(node, _)| node % 3 == 0));
        }
        assert!(frozen
            .nearest(&vectors[..dim], 0, 40, &Filter::default(), precision)
            .is_empty());
    }
}
