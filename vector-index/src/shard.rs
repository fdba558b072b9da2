//! A shard held in this process: frozen graph + exact delta + live versions, with background
//! rebuilds and an on-disk snapshot so restarts do not rebuild (or re-embed) anything.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};

use half::f16;

use super::distance::best_dot;
use super::{Filter, FrozenGraph, Hit, IndexParams, LabelIndex, Labels, Shard, ShardItem};

/// Version 3 added each node's labels.
const SNAPSHOT_MAGIC: &[u8; 8] = b"SRSHARD3";

/// A rebuild inserts the delta into the graph while fewer than one frozen node in this many
/// is stale (replaced or deleted); past that it rebuilds from the live vectors.
const MAX_STALE_SHARE: usize = 5;

/// The frozen part: a graph and, per node, the item, vector version and labels it holds,
/// with a bitmap per label for filtered search.
struct Frozen {
    graph: FrozenGraph,
    ids: Vec<Arc<str>>,
    versions: Vec<u64>,
    labels: Vec<Labels>,
    label_index: LabelIndex,
    position: HashMap<Arc<str>, u32>,
}

impl Frozen {
    fn new(
        graph: FrozenGraph,
        ids: Vec<Arc<str>>,
        versions: Vec<u64>,
        labels: Vec<Labels>,
    ) -> Self {
        let position = ids.iter().cloned().zip(0u32..).collect();
        Self {
            graph,
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
        let frozen = snapshot_path
            .as_deref()
            .and_then(|p| match read_snapshot(p, params.dim) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => {
                    tracing::warn!(shard = id, error = %e, "ignoring unreadable shard snapshot; rebuilding");
                    None
                }
            })
            .unwrap_or_else(|| Frozen::empty(params.dim, params));
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
        let (frozen, delta, stale) = {
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
            (st.frozen.clone(), delta, st.stale)
        };
        let incremental = !frozen.ids.is_empty() && stale * MAX_STALE_SHARE < frozen.ids.len();
        let next = if incremental {
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
            Frozen::new(graph, ids, versions, labels)
        } else {
            let st = self.state.read().expect("shard lock");
            let (mut ids, mut versions, mut labels, mut vectors) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let frozen_nodes = (0..st.frozen.ids.len()).map(|n| {
                (
                    &st.frozen.ids[n],
                    st.frozen.versions[n],
                    &st.frozen.labels[n],
                    st.frozen.graph.vector(n as u32),
                )
            });
            let delta_nodes = st
                .delta
                .iter()
                .map(|e| (&e.id, e.version, &e.labels, e.vector.as_slice()));
            for (id, version, node_labels, vector) in frozen_nodes.chain(delta_nodes) {
                if st.live.get(id) == Some(&version) {
                    ids.push(id.clone());
                    versions.push(version);
                    labels.push(node_labels.clone());
                    vectors.extend(vector.iter().map(|x| x.to_f32()));
                }
            }
            drop(st);
            let graph = FrozenGraph::build(&vectors, self.params.dim, self.params.build());
            Frozen::new(graph, ids, versions, labels)
        };
        let frozen = Arc::new(next);
        if let Some(path) = &self.snapshot_path {
            if let Err(e) = write_snapshot(path, &frozen) {
                tracing::error!(shard = self.id, error = %e, "cannot write shard snapshot");
            }
        }
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
        let nodes = if filter.is_empty() {
            frozen.graph.search(query, want, ef.max(want))
        } else {
            let admitted = frozen.label_index.admitted(filter);
            frozen.graph.search_in(query, want, ef.max(want), &admitted)
        };
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
        st.frozen.graph.heap_bytes() + st.delta.len() * self.params.dim * 2
    }
}

fn to_f16(v: &[f32]) -> Vec<f16> {
    v.iter().map(|&x| f16::from_f32(x)).collect()
}

/// Writes the snapshot atomically: a temporary file, fsync, then rename over the old one.
fn write_snapshot(path: &Path, frozen: &Frozen) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("snap.tmp");
    let mut w = BufWriter::new(File::create(&tmp)?);
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
    frozen.graph.write_to(&mut w)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

fn read_snapshot(path: &Path, dim: usize) -> io::Result<Frozen> {
    let mut r = BufReader::new(File::open(path)?);
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic != SNAPSHOT_MAGIC {
        return Err(bad("not a shard snapshot"));
    }
    let mut b8 = [0u8; 8];
    r.read_exact(&mut b8)?;
    let n = u64::from_le_bytes(b8) as usize;
    let mut ids = Vec::with_capacity(n.min(1 << 24));
    let mut versions = Vec::with_capacity(n.min(1 << 24));
    let mut labels = Vec::with_capacity(n.min(1 << 24));
    let read_str = |r: &mut BufReader<File>| -> io::Result<Arc<str>> {
        let mut b2 = [0u8; 2];
        r.read_exact(&mut b2)?;
        let mut s = vec![0u8; u16::from_le_bytes(b2) as usize];
        r.read_exact(&mut s)?;
        Ok(Arc::from(
            String::from_utf8(s).map_err(|_| bad("text is not UTF-8"))?,
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
    let graph = FrozenGraph::read_from(&mut r)?;
    if graph.len() != n || (n > 0 && graph.dim() != dim) {
        return Err(bad("snapshot does not match the index dimension"));
    }
    Ok(Frozen::new(graph, ids, versions, labels))
}
