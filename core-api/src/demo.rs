//! Demo data: the MovieTweetings film catalogue and ratings (MIT license, see
//! `data/movietweetings/`), embedded with the real model and written to the store on first
//! start, so a newcomer gets real recommendations without providing any data. The most
//! rated films are loaded before the node turns ready and the rest in the background, so
//! the first start serves within a minute or two instead of after the whole catalogue.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Instant;

use shared_types::{Action, InteractionEvent, Item, ItemInput, Maturity};

use crate::config::Config;
use crate::embedding::{item_text, Embedder};
use crate::engine::{validate_item, CatalogueLoad, Engine, MAX_EVENTS_PER_REQUEST};
use crate::error::EngineError;
use crate::metrics::Metrics;
use crate::store::{EmbeddedStore, Interaction, InteractionStore, ItemStore, StoredItem};

/// Texts embedded per batch while loading.
const EMBED_BATCH: usize = 256;
/// Films added per upsert by the background load: small, so requests interleave with it.
const BACKGROUND_CHUNK: usize = 256;

/// A parsed `movies.dat` line: `id::Title (Year)::Genre|Genre`.
pub fn parse_movie(line: &str) -> Option<Item> {
    let mut parts = line.split("::");
    let id = format!("tt{:07}", parts.next()?.trim().parse::<u64>().ok()?);
    let full_title = parts.next()?.trim();
    let genres: Vec<String> = parts
        .next()
        .unwrap_or("")
        .split('|')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(String::from)
        .collect();
    let (title, year) = match full_title.rsplit_once(" (") {
        Some((t, rest)) if rest.len() == 5 && rest.ends_with(')') => match rest[..4].parse::<u16>()
        {
            Ok(y) => (t.to_string(), Some(y)),
            Err(_) => (full_title.to_string(), None),
        },
        _ => (full_title.to_string(), None),
    };
    if title.is_empty() {
        return None;
    }
    // The catalogue has no audience ratings; derive a conservative one from genres.
    let has = |g: &str| genres.iter().any(|x| x == g);
    let maturity = if has("Adult") {
        Some(Maturity::Adult)
    } else if (has("Family") || has("Animation")) && !has("Horror") && !has("Thriller") {
        Some(Maturity::All)
    } else {
        None
    };
    Some(Item {
        id,
        title,
        genres,
        year,
        language: None,
        maturity,
        description: None,
        quality: None,
    })
}

/// A parsed `ratings.dat` line: `user::movie::rating(0-10)::unix_time`, as an interaction
/// plus the raw rating.
pub fn parse_rating(line: &str) -> Option<(Interaction, u8)> {
    let mut parts = line.split("::");
    let user_id = parts.next()?.trim().to_string();
    let item_id = format!("tt{:07}", parts.next()?.trim().parse::<u64>().ok()?);
    let rating: u8 = parts.next()?.trim().parse().ok()?;
    let timestamp: i64 = parts.next()?.trim().parse().ok()?;
    let action = match rating {
        8..=10 => Action::Like,
        6..=7 => Action::Complete,
        4..=5 => Action::View,
        _ => Action::Dislike,
    };
    Some((
        Interaction {
            user_id,
            item_id,
            action,
            timestamp,
            recommendation_id: None,
            event_id: String::new(),
        },
        rating,
    ))
}

/// The demo films in load order (the most rated first) and their ratings (file order).
struct Plan {
    items: Vec<Item>,
    ratings: Vec<Interaction>,
}

/// The demo films left for the background once the node is ready, and their ratings.
pub struct Rest {
    items: Vec<Item>,
    ratings: Vec<Interaction>,
    marker: PathBuf,
}

/// Present in the data directory from the first demo film stored until the last one is: a
/// start that finds it resumes the load (an interrupted first start, or a background load
/// cut short) instead of taking the store as complete.
const LOADING_MARKER: &str = "demo-loading";

/// Whether a demo load was interrupted and should be resumed.
pub fn interrupted(config: &Config) -> bool {
    config.storage.data_dir.join(LOADING_MARKER).exists()
}

/// Reads the demo files: the films kept (see `demo.max_items`) with a quality derived from
/// their ratings, ordered by number of ratings (most first; among equals, newest first).
fn plan(config: &Config) -> Result<Plan, EngineError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| {
            EngineError::Internal(format!("cannot read demo data {}: {e}", p.display()))
        })
    };
    let (ratings, scores): (Vec<Interaction>, Vec<u8>) = read(&config.demo.ratings)?
        .lines()
        .filter_map(parse_rating)
        .unzip();
    let mut items: Vec<Item> = read(&config.demo.catalog)?
        .lines()
        .filter_map(parse_movie)
        .collect();

    // Quality: Bayesian-smoothed mean rating (towards the global mean, weight 5 ratings).
    let global = scores.iter().map(|&r| f32::from(r)).sum::<f32>() / scores.len().max(1) as f32;
    let mut sums: HashMap<&str, (f32, f32)> = HashMap::new();
    for (event, r) in ratings.iter().zip(&scores) {
        let e = sums.entry(event.item_id.as_str()).or_default();
        e.0 += f32::from(*r);
        e.1 += 1.0;
    }
    for item in &mut items {
        let (sum, n) = sums.get(item.id.as_str()).copied().unwrap_or_default();
        item.quality = Some(((sum + 5.0 * global) / (n + 5.0) / 10.0).clamp(0.0, 1.0));
    }
    if config.demo.max_items > 0 && items.len() > config.demo.max_items {
        // Keep the rated films first so the ratings still mean something.
        items.sort_by_key(|i| !sums.contains_key(i.id.as_str()));
        items.truncate(config.demo.max_items);
    }
    // The most rated first, so a node serving before the load ends already has them.
    items.sort_by_key(|i| {
        let n = sums.get(i.id.as_str()).map_or(0, |s| s.1 as u32);
        (std::cmp::Reverse(n), std::cmp::Reverse(i.year))
    });
    let known: HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let ratings = ratings
        .into_iter()
        .filter(|r| known.contains(r.item_id.as_str()))
        .collect();
    Ok(Plan { items, ratings })
}

/// Creates `path` durably (the file and its directory entry are synced).
fn create_durably(path: &Path) -> Result<(), EngineError> {
    let io =
        |e: std::io::Error| EngineError::Internal(format!("cannot write {}: {e}", path.display()));
    std::fs::File::create(path)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    sync_dir(path)
}

/// Removes `path` durably.
fn remove_durably(path: &Path) -> Result<(), EngineError> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(EngineError::Internal(format!(
            "cannot remove {}: {e}",
            path.display()
        ))),
    }
}

fn sync_dir(path: &Path) -> Result<(), EngineError> {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| EngineError::Internal(format!("cannot sync {}: {e}", dir.display())))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The ratings of `items`, in file order.
fn ratings_of(ratings: &[Interaction], items: &[Item]) -> Vec<Interaction> {
    let ids: HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
    ratings
        .iter()
        .filter(|r| ids.contains(r.item_id.as_str()))
        .cloned()
        .collect()
}

/// `ratings` less those the store already holds (a load resumed after its ratings were
/// written but before it recorded that).
async fn not_stored(
    store: &dyn InteractionStore,
    ratings: Vec<Interaction>,
) -> Result<Vec<Interaction>, EngineError> {
    let users: HashSet<&str> = ratings.iter().map(|r| r.user_id.as_str()).collect();
    let mut stored: HashMap<(String, String, i64), usize> = HashMap::new();
    for user in users {
        for e in store.user_events(user).await? {
            *stored
                .entry((e.user_id, e.item_id, e.timestamp))
                .or_default() += 1;
        }
    }
    Ok(ratings
        .into_iter()
        .filter(|r| {
            let key = (r.user_id.clone(), r.item_id.clone(), r.timestamp);
            match stored.get_mut(&key) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    false
                }
                _ => true,
            }
        })
        .collect())
}

/// Loads, embeds and stores the demo catalogue and its ratings into the store before the
/// engine opens: all of it, or only the first `demo.first_batch` films when `background`
/// allows the rest to follow through [`spawn_rest`] once the engine serves. Resumes an
/// interrupted load: films already stored are not embedded again.
pub async fn load(
    config: &Config,
    store: &Arc<EmbeddedStore>,
    embedder: &dyn Embedder,
    metrics: &Metrics,
    background: bool,
) -> Result<Option<Rest>, EngineError> {
    let Plan { items, ratings } = plan(config)?;
    let marker = config.storage.data_dir.join(LOADING_MARKER);
    let resuming = store.has_items()?;
    create_durably(&marker)?;
    let stored: HashSet<String> = match resuming {
        true => store
            .load_all()
            .await?
            .into_iter()
            .map(|s| s.item.id)
            .collect(),
        false => HashSet::new(),
    };
    let first = match config.demo.first_batch {
        n if background && n > 0 => n.min(items.len()),
        _ => items.len(),
    };
    let (now, later) = items.split_at(first);
    let to_embed: Vec<&Item> = now.iter().filter(|i| !stored.contains(&i.id)).collect();
    tracing::info!(
        films = to_embed.len(),
        later = later.len(),
        resuming,
        "embedding the demo catalogue (first start only)"
    );
    let started = Instant::now();
    let mut done = 0;
    let mut last_report = Instant::now();
    for chunk in to_embed.chunks(EMBED_BATCH) {
        let texts: Vec<String> = chunk.iter().map(|i| item_text(i)).collect();
        metrics.observe_embed_batch("ingest", texts.len());
        let vectors = embedder.embed_batch(&texts)?;
        let stored = chunk
            .iter()
            .zip(vectors)
            .map(|(item, vector)| StoredItem {
                item: (*item).clone(),
                version: store.next_version(),
                vector,
            })
            .collect();
        store.upsert(stored).await?;
        done += chunk.len();
        if last_report.elapsed().as_secs() >= 3 || done == to_embed.len() {
            last_report = Instant::now();
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
            tracing::info!(
                "embedded {done}/{} films ({:.0}%, {rate:.0} films/s)",
                to_embed.len(),
                100.0 * done as f64 / to_embed.len() as f64
            );
        }
    }
    let mut first_ratings = ratings_of(&ratings, now);
    if resuming {
        first_ratings = not_stored(store.as_ref(), first_ratings).await?;
    }
    let count = first_ratings.len();
    store.append(first_ratings).await?;
    tracing::info!(
        events = count,
        took_s = started.elapsed().as_secs(),
        "demo data loaded"
    );
    if later.is_empty() {
        remove_durably(&marker)?;
        return Ok(None);
    }
    Ok(Some(Rest {
        ratings: ratings_of(&ratings, later),
        items: later.to_vec(),
        marker,
    }))
}

/// Sets the running engine's catalogue load going with the rest of the demo films, in
/// chunks through [`Engine::upsert_items`] and [`Engine::record_events`] (durable, indexed,
/// in the item graph), reporting progress in [`Engine::catalogue_load`]. Films already in
/// the catalogue are skipped, so a start after an interruption continues where it stopped.
/// The task holds the engine only while it works on a chunk.
pub fn spawn_rest(engine: &Arc<Engine>, rest: Rest) {
    let pending = pending(engine, &rest.items);
    engine.report_catalogue_load(CatalogueLoad {
        pending,
        running: true,
    });
    let done = LoadDone(Arc::downgrade(engine));
    tokio::spawn(async move {
        let started = Instant::now();
        match load_rest(&done.0, rest).await {
            Ok(true) => tracing::info!(
                took_s = started.elapsed().as_secs(),
                "demo catalogue loaded"
            ),
            Ok(false) => {}
            Err(e) => tracing::error!(
                error = %e,
                "demo catalogue load stopped; it resumes at the next start"
            ),
        }
    });
}

/// Distinct films of `items` not yet in the catalogue (the catalogue file repeats a few ids).
fn pending(engine: &Engine, items: &[Item]) -> usize {
    let missing: HashSet<&str> = items
        .iter()
        .filter(|i| !engine.has_item(&i.id))
        .map(|i| i.id.as_str())
        .collect();
    missing.len()
}

/// Marks the background load stopped however its task ends (done, failed, or dropped with
/// its runtime), keeping what is still pending.
struct LoadDone(Weak<Engine>);

impl Drop for LoadDone {
    fn drop(&mut self) {
        if let Some(engine) = self.0.upgrade() {
            let pending = engine.catalogue_load().pending;
            engine.report_catalogue_load(CatalogueLoad {
                pending,
                running: false,
            });
        }
    }
}

/// The background load; true when it finished, false when the engine went away first.
async fn load_rest(engine: &Weak<Engine>, rest: Rest) -> Result<bool, EngineError> {
    let started = Instant::now();
    let total = rest.items.len();
    let mut last_report = Instant::now();
    for (n, chunk) in rest.items.chunks(BACKGROUND_CHUNK).enumerate() {
        let Some(engine) = engine.upgrade() else {
            return Ok(false);
        };
        let inputs: Vec<ItemInput> = chunk
            .iter()
            .filter(|i| !engine.has_item(&i.id))
            .map(|i| ItemInput {
                id: i.id.clone(),
                title: i.title.clone(),
                genres: i.genres.clone(),
                year: i.year,
                language: i.language.clone(),
                maturity: i.maturity,
                description: i.description.clone(),
                quality: i.quality,
                embedding: None,
            })
            // No vector is given, so the dimension is not checked.
            .filter(|input| match validate_item(input.clone(), 0) {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "demo film skipped");
                    false
                }
            })
            .collect();
        if !inputs.is_empty() {
            engine.upsert_items(inputs).await?;
        }
        let ratings = not_stored(
            engine.backends().interactions.as_ref(),
            ratings_of(&rest.ratings, chunk),
        )
        .await?;
        for events in ratings.chunks(MAX_EVENTS_PER_REQUEST) {
            let events = events
                .iter()
                .map(|r| InteractionEvent {
                    user_id: r.user_id.clone(),
                    item_id: r.item_id.clone(),
                    action: r.action,
                    timestamp: Some(r.timestamp),
                    recommendation_id: None,
                    // Identified by content: a restarted load stores no rating twice.
                    event_id: None,
                })
                .collect();
            engine.record_events(events).await?;
        }
        let pending = pending(&engine, &rest.items);
        engine.report_catalogue_load(CatalogueLoad {
            pending,
            running: true,
        });
        let done = ((n + 1) * BACKGROUND_CHUNK).min(total);
        if last_report.elapsed().as_secs() >= 10 || done == total {
            last_report = Instant::now();
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
            tracing::info!(
                "background: {done}/{total} demo films ({:.0}%, {rate:.0} films/s)",
                100.0 * done as f64 / total as f64
            );
        }
    }
    remove_durably(&rest.marker)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_catalogue_lines() {
        let m = parse_movie("0076759::Star Wars (1977)::Action|Adventure|Fantasy|Sci-Fi").unwrap();
        assert_eq!(m.id, "tt0076759");
        assert_eq!(m.title, "Star Wars");
        assert_eq!(m.year, Some(1977));
        assert_eq!(m.genres, ["Action", "Adventure", "Fantasy", "Sci-Fi"]);
        let short =
            parse_movie("25::The Oxford and Cambridge University Boat Race (1895)::").unwrap();
        assert_eq!(short.id, "tt0000025");
        assert!(short.genres.is_empty());
        assert_eq!(
            parse_movie("0000001::Toy (Story) (1995)::Animation|Family")
                .unwrap()
                .maturity,
            Some(Maturity::All)
        );
        assert!(parse_movie("garbage").is_none());
    }

    #[test]
    fn parses_ratings_as_actions() {
        let (r, score) = parse_rating("2::0104257::8::1364690142").unwrap();
        assert_eq!(
            (r.user_id.as_str(), r.item_id.as_str(), r.action, score),
            ("2", "tt0104257", Action::Like, 8)
        );
        assert_eq!(
            parse_rating("2::1::2::1").unwrap().0.action,
            Action::Dislike
        );
        assert!(parse_rating("2::x::2::1").is_none());
    }
}
