//! In-memory view of the catalogue used by the ranking pipeline: item metadata, their FP16
//! vectors (for exact re-scoring and diversity) and engagement-based popularity.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use half::f16;
use shared_types::{Action, Item, Maturity};
use vector_index::Labels;

/// What the ranker needs to know about one item.
pub struct CatalogEntry {
    pub id: Arc<str>,
    pub item: Item,
    pub version: u64,
    pub vector: Vec<f16>,
    /// Lowercased genres, for filters.
    pub genres: Vec<String>,
}

/// Version of the labels [`index_labels`] gives: part of the snapshot directory's name, so
/// snapshots whose nodes carry older labels are rebuilt rather than trusted (2: the year).
const LABELS_VERSION: u32 = 2;

/// The directory name of index snapshots built with `params` and these labels.
pub fn snapshot_dir_name(params: &vector_index::IndexParams) -> String {
    format!(
        "index-d{}-m{}-efc{}-l{LABELS_VERSION}",
        params.dim, params.m, params.ef_construction
    )
}

/// The labels the vector index filters on (see `HardFilters::index_filter`): each lowercase
/// genre, the rating (or `?`), the language with each of its `-` prefixes (or `?`), so `en`
/// matches `en` and `en-us` as the hard filter does, and the release year when known.
pub fn index_labels(item: &Item) -> Labels {
    let mut labels: Vec<Arc<str>> = item.genres.iter().map(|g| genre_label(g)).collect();
    labels.push(maturity_label(item.maturity));
    labels.extend(item.year.map(year_label));
    match item.language.as_deref().map(str::to_ascii_lowercase) {
        Some(lang) => {
            for (i, _) in lang.match_indices('-') {
                labels.push(language_label(Some(&lang[..i])));
            }
            labels.push(language_label(Some(&lang)));
        }
        None => labels.push(language_label(None)),
    }
    labels.sort();
    labels.dedup();
    labels.into()
}

pub fn genre_label(genre: &str) -> Arc<str> {
    Arc::from(format!("genre:{}", genre.to_lowercase()))
}

pub fn maturity_label(maturity: Option<Maturity>) -> Arc<str> {
    Arc::from(format!(
        "maturity:{}",
        maturity.map_or("?", Maturity::as_str)
    ))
}

pub fn year_label(year: u16) -> Arc<str> {
    Arc::from(format!("year:{year}"))
}

pub fn language_label(language: Option<&str>) -> Arc<str> {
    Arc::from(format!(
        "lang:{}",
        language.map_or("?".to_string(), str::to_ascii_lowercase)
    ))
}

impl CatalogEntry {
    pub fn new(item: Item, version: u64, vector: &[f32]) -> Self {
        Self {
            id: Arc::from(item.id.as_str()),
            genres: item.genres.iter().map(|g| g.to_lowercase()).collect(),
            vector: vector.iter().map(|&x| f16::from_f32(x)).collect(),
            item,
            version,
        }
    }

    pub fn vector_f32(&self) -> Vec<f32> {
        self.vector.iter().map(|x| x.to_f32()).collect()
    }
}

#[derive(Default)]
struct Popularity {
    counts: HashMap<Arc<str>, f32>,
    max: f32,
}

/// How long the ranked popular list may be reused before it is recomputed.
const POPULAR_LIST_TTL: Duration = Duration::from_secs(5);
const POPULAR_LIST_LEN: usize = 2_000;

/// Ranked popular item ids and when they were ranked.
type PopularList = (Instant, Arc<Vec<Arc<str>>>);

#[derive(Default)]
pub struct Catalog {
    items: RwLock<HashMap<Arc<str>, Arc<CatalogEntry>>>,
    popularity: RwLock<Popularity>,
    popular_list: RwLock<Option<PopularList>>,
}

impl Catalog {
    pub fn get(&self, id: &str) -> Option<Arc<CatalogEntry>> {
        self.items.read().expect("catalog lock").get(id).cloned()
    }

    /// Looks up many ids under one lock; unknown ids are skipped.
    pub fn get_many<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Vec<Arc<CatalogEntry>> {
        let items = self.items.read().expect("catalog lock");
        ids.into_iter()
            .filter_map(|id| items.get(id).cloned())
            .collect()
    }

    pub fn insert(&self, entry: CatalogEntry) -> Arc<str> {
        let id = entry.id.clone();
        self.items
            .write()
            .expect("catalog lock")
            .insert(id.clone(), Arc::new(entry));
        id
    }

    pub fn remove(&self, id: &str) -> bool {
        self.items
            .write()
            .expect("catalog lock")
            .remove(id)
            .is_some()
    }

    /// Every entry, in no particular order.
    pub fn all(&self) -> Vec<Arc<CatalogEntry>> {
        self.items
            .read()
            .expect("catalog lock")
            .values()
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.items.read().expect("catalog lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts an interaction towards the item's popularity (positive engagement only).
    pub fn record_engagement(&self, item_id: &Arc<str>, action: Action) {
        let weight = action.preference_weight();
        if weight <= 0.0 {
            return;
        }
        let mut p = self.popularity.write().expect("popularity lock");
        let count = p.counts.entry(item_id.clone()).or_insert(0.0);
        *count += weight;
        let c = *count;
        p.max = p.max.max(c);
    }

    /// Popularity in [0, 1], log-scaled so a few blockbusters do not flatten the rest.
    pub fn popularity(&self, item_id: &str) -> f32 {
        let p = self.popularity.read().expect("popularity lock");
        match p.counts.get(item_id) {
            Some(c) if p.max > 0.0 => (1.0 + c).ln() / (1.0 + p.max).ln(),
            _ => 0.0,
        }
    }

    /// Items by decreasing engagement (then quality), cached for a few seconds.
    pub fn popular(&self) -> Arc<Vec<Arc<str>>> {
        if let Some((at, list)) = &*self.popular_list.read().expect("popular lock") {
            if at.elapsed() < POPULAR_LIST_TTL {
                return list.clone();
            }
        }
        let list = Arc::new(self.ranked_where(POPULAR_LIST_LEN, |_| true));
        *self.popular_list.write().expect("popular lock") = Some((Instant::now(), list.clone()));
        list
    }

    /// The `n` most popular items that `admits` accepts: from the cached popular list, or
    /// by ranking the whole catalogue when a narrow filter leaves too few of those.
    pub fn popular_where(&self, n: usize, admits: impl Fn(&CatalogEntry) -> bool) -> Vec<Arc<str>> {
        let popular = self.popular();
        let found: Vec<Arc<str>> = self
            .get_many(popular.iter().map(|id| &**id))
            .into_iter()
            .filter(|e| admits(e))
            .take(n)
            .map(|e| e.id.clone())
            .collect();
        if found.len() >= n || popular.len() < POPULAR_LIST_LEN {
            return found;
        }
        self.ranked_where(n, admits)
    }

    /// The `n` items `admits` accepts, by decreasing engagement, then quality, then id.
    fn ranked_where(&self, n: usize, admits: impl Fn(&CatalogEntry) -> bool) -> Vec<Arc<str>> {
        {
            let items = self.items.read().expect("catalog lock");
            let p = self.popularity.read().expect("popularity lock");
            let mut ranked: Vec<(f32, f32, &Arc<str>)> = items
                .values()
                .filter(|e| admits(e))
                .map(|e| {
                    (
                        p.counts.get(&e.id).copied().unwrap_or(0.0),
                        e.item.quality.unwrap_or(0.0),
                        &e.id,
                    )
                })
                .collect();
            ranked.sort_by(|a, b| {
                b.0.total_cmp(&a.0)
                    .then(b.1.total_cmp(&a.1))
                    .then_with(|| a.2.cmp(b.2))
            });
            ranked
                .into_iter()
                .take(n)
                .map(|(_, _, id)| id.clone())
                .collect()
        }
    }
}
