//! The engine runner: the grid of engine settings tried on validation and the ablation rows,
//! the cached item store and index every setting starts from, and one fresh engine per
//! setting that replays a split's training events and recommends for its test users.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use core_api::config::{Config, RankingConfig};
use core_api::engine::{Backends, Embedder, Engine, MAX_EVENTS_PER_REQUEST};
use core_api::error::EngineError;
use core_api::learn::LearningConfig;
use core_api::metrics::Metrics;
use core_api::store::{
    EmbeddedStore, InProcessItemGraph, InProcessUserCache, ItemStore, StoredItem,
};
use futures::StreamExt;
use serde::Serialize;
use shared_types::{InteractionEvent, Item, RecommendationQuery};

use crate::data::TestUser;
use crate::{io_error, EvalError};

/// A named ranking configuration of the engine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Variant {
    pub name: String,
    pub ranking: RankingConfig,
    pub learning: LearningConfig,
}

/// The engine settings tried on validation, around the configured ones: the MMR
/// trade-off, the ranker's size and training labels, and the transitions' window and decay.
pub fn engine_settings(config: &Config) -> Vec<Variant> {
    let mut out = Vec::new();
    let base = &config.learning;
    for mmr in [config.ranking.mmr_lambda, 1.0] {
        for trees in [base.ranker.trees, base.ranker.trees * 3] {
            for (window, decay) in [(base.transitions.window, base.transitions.decay), (5, 1.0)] {
                for labels in [base.ranker_labels_per_user, base.ranker_labels_per_user * 2] {
                    let mut ranking = config.ranking.clone();
                    ranking.mmr_lambda = mmr;
                    let mut learning = config.learning.clone();
                    learning.ranker.trees = trees;
                    learning.transitions.window = window;
                    learning.transitions.decay = decay;
                    learning.ranker_labels_per_user = labels;
                    out.push(Variant {
                        name: format!(
                            "{trees} trees, {labels} labels per user, transitions window {window} \
                             decay {decay}, MMR λ={mmr}"
                        ),
                        ranking,
                        learning,
                    });
                }
            }
        }
    }
    out
}

/// The full engine and one row per pipeline stage switched off.
pub fn ablation_variants(full: &Variant) -> Vec<Variant> {
    let variant = |name: &str, f: &dyn Fn(&mut Variant)| {
        let mut v = full.clone();
        v.name = name.to_string();
        f(&mut v);
        v
    };
    vec![
        variant("engine (full)", &|_| {}),
        variant("engine − collaborative", &|v| {
            v.learning.collab.neighbours = 0;
        }),
        variant("engine − transitions", &|v| {
            v.learning.transitions.window = 0;
        }),
        variant("engine − learned ranker (static weights)", &|v| {
            v.learning.ranker.trees = 0;
        }),
        variant("engine − MMR diversity", &|v| v.ranking.mmr_lambda = 1.0),
        variant("engine − graph candidates", &|v| {
            v.ranking.graph_weight = 0.0;
            v.ranking.graph_candidates = 0;
        }),
        variant("engine: before this release (no learned sources)", &|v| {
            v.learning.enabled = false;
        }),
    ]
}

/// The configuration with exploration switched off, so that runs are deterministic: when
/// it has an online-learning ranking policy (a `policy` section with an `epsilon`), that
/// epsilon becomes 0 and the policy serves greedily. Anything else is unchanged. Returns
/// whether exploration was switched off.
pub fn without_exploration(config: &Config) -> (Config, bool) {
    let Ok(mut value) = toml::Value::try_from(config) else {
        return (config.clone(), false);
    };
    match value.get_mut("policy").and_then(toml::Value::as_table_mut) {
        Some(policy) if policy.contains_key("epsilon") => {
            policy.insert("epsilon".into(), toml::Value::Float(0.0));
        }
        _ => return (config.clone(), false),
    }
    match value.try_into() {
        Ok(pinned) => (pinned, true),
        Err(_) => (config.clone(), false),
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// An embedded engine over the shared item store, with its in-process graph and user
/// cache; the graph is returned so it can be filled synchronously.
async fn open_engine(
    data_dir: &Path,
    mut config: Config,
    embedder: Arc<dyn Embedder>,
) -> Result<(Arc<Engine>, Arc<EmbeddedStore>), EvalError> {
    config.storage.data_dir = data_dir.to_path_buf();
    let store = Arc::new(EmbeddedStore::open(data_dir)?);
    let backends = Backends {
        items: store.clone(),
        interactions: store.clone(),
        graph: Arc::new(InProcessItemGraph::new(config.graph.min_quality)),
        user_cache: Arc::new(InProcessUserCache::new(
            config.storage.user_cache_entries,
            Duration::from_secs(config.storage.user_cache_ttl_secs),
        )),
    };
    let engine = Engine::open(config, backends, embedder, Arc::new(Metrics::new())).await?;
    Ok((engine, store))
}

/// What one engine variant recommended, per test user.
pub(crate) struct EngineLists {
    pub(crate) lists: Vec<Vec<String>>,
    pub(crate) seen_recommended: usize,
}

/// Everything shared by the engine variants of a run.
pub(crate) struct EngineRun<'a> {
    pub(crate) base_dir: &'a Path,
    pub(crate) work_dir: &'a Path,
    pub(crate) config: &'a Config,
    pub(crate) embedder: Arc<dyn Embedder>,
    pub(crate) train: &'a [InteractionEvent],
    pub(crate) tests: &'a [TestUser],
    pub(crate) seen: &'a [HashSet<String>],
    pub(crate) k: usize,
    pub(crate) concurrency: usize,
}

impl EngineRun<'_> {
    /// A fresh engine under `ranking` on a copy of the base store: graph filled as at
    /// start-up, training events recorded, one recommendation per test user.
    pub(crate) async fn run(&self, variant: &Variant) -> Result<EngineLists, EvalError> {
        let dir = self.work_dir;
        let _ = std::fs::remove_dir_all(dir);
        copy_dir(self.base_dir, dir).map_err(|e| io_error("cannot copy", self.base_dir, e))?;
        let mut config = self.config.clone();
        config.ranking = variant.ranking.clone();
        config.learning = variant.learning.clone();
        let result = self.run_in(dir, config).await;
        let _ = std::fs::remove_dir_all(dir);
        result
    }

    async fn run_in(&self, dir: &Path, config: Config) -> Result<EngineLists, EvalError> {
        let (engine, _store) = open_engine(dir, config.clone(), self.embedder.clone()).await?;
        // As `bootstrap::open_on_store` does in the background, but awaited, so the graph is
        // complete before the first event and the same in every variant.
        engine.fill_graph().await?;
        for chunk in self.train.chunks(MAX_EVENTS_PER_REQUEST) {
            engine.record_events(chunk.to_vec()).await?;
        }
        if config.learning.enabled {
            // As the background training does in service, awaited.
            engine.retrain().await?;
        }
        let k = self.k as u32;
        let answers: Vec<Result<Vec<String>, EvalError>> =
            futures::stream::iter(self.tests.iter().map(|t| {
                let engine = engine.clone();
                async move {
                    let req = RecommendationQuery {
                        user_id: Some(t.user_id.clone()),
                        limit: Some(k),
                        ..Default::default()
                    }
                    .normalise()
                    .map_err(EngineError::from)?;
                    let reply = engine.recommend(&req).await?;
                    Ok(reply.items.into_iter().map(|s| s.item.id).collect())
                }
            }))
            .buffered(self.concurrency.max(1))
            .collect()
            .await;
        let lists = answers.into_iter().collect::<Result<Vec<_>, _>>()?;
        let seen_recommended = lists
            .iter()
            .zip(self.seen)
            .map(|(l, seen)| l.iter().filter(|x| seen.contains(x.as_str())).count())
            .sum();
        Ok(EngineLists {
            lists,
            seen_recommended,
        })
    }
}

/// The item store and index snapshots every variant starts from, in `cache_dir`, keyed by
/// the items (metadata, quality and vectors) and the index parameters.
pub(crate) async fn base_store(
    items: &[Item],
    vectors: &HashMap<String, Vec<f32>>,
    config: &Config,
    embedder: Arc<dyn Embedder>,
    cache_dir: &Path,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<PathBuf, EvalError> {
    let ix = &config.index;
    let mut canonical = format!(
        "dim={} shards={} m={} efc={}\n",
        embedder.dim(),
        ix.shards,
        ix.m,
        ix.ef_construction
    );
    for item in items {
        canonical.push_str(&serde_json::to_string(item).unwrap_or_default());
        for x in &vectors[&item.id] {
            canonical.push_str(&format!("{:08x}", x.to_bits()));
        }
        canonical.push('\n');
    }
    let dir = cache_dir.join(format!("store-{}", shared_types::stable_hash(&canonical)));
    let ready = dir.join("READY");
    if ready.is_file() {
        progress(&format!("item store and index from {}", dir.display()));
        return Ok(dir);
    }
    progress(&format!(
        "building the item store and index in {}",
        dir.display()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let (engine, store) = {
            let store = EmbeddedStore::open(&dir)?;
            let stored = items
                .iter()
                .map(|item| StoredItem {
                    item: item.clone(),
                    version: store.next_version(),
                    vector: vectors[&item.id].clone(),
                })
                .collect();
            store.upsert(stored).await?;
            drop(store);
            // Opening an engine builds and writes the shard snapshots.
            open_engine(&dir, config.clone(), embedder).await?
        };
        drop(engine);
        drop(store);
    }
    std::fs::write(&ready, b"").map_err(|e| io_error("cannot write", &ready, e))?;
    Ok(dir)
}
