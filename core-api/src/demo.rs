//! Demo data: the MovieTweetings film catalogue and ratings (MIT license, see
//! `data/movietweetings/`), embedded with the real model and written to the store on first
//! start, so a newcomer gets real recommendations without providing any data.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use shared_types::{Action, Item, Maturity};

use crate::config::Config;
use crate::embedding::{item_text, Embedder};
use crate::error::EngineError;
use crate::metrics::Metrics;
use crate::store::{EmbeddedStore, Interaction, InteractionStore, ItemStore, StoredItem};

/// Texts embedded per batch while loading.
const EMBED_BATCH: usize = 256;

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
        },
        rating,
    ))
}

/// Loads, embeds and stores the demo catalogue and its ratings.
pub async fn load(
    config: &Config,
    store: &Arc<EmbeddedStore>,
    embedder: &dyn Embedder,
    metrics: &Metrics,
) -> Result<(), EngineError> {
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

    tracing::info!(
        films = items.len(),
        "embedding the demo catalogue (first start only)"
    );
    let started = Instant::now();
    let mut done = 0;
    let mut last_report = Instant::now();
    for chunk in items.chunks(EMBED_BATCH) {
        let texts: Vec<String> = chunk.iter().map(item_text).collect();
        metrics.observe_embed_batch("ingest", texts.len());
        let vectors = embedder.embed_batch(&texts)?;
        let stored = chunk
            .iter()
            .zip(vectors)
            .map(|(item, vector)| StoredItem {
                item: item.clone(),
                version: store.next_version(),
                vector,
            })
            .collect();
        store.upsert(stored).await?;
        done += chunk.len();
        if last_report.elapsed().as_secs() >= 3 || done == items.len() {
            last_report = Instant::now();
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
            tracing::info!(
                "embedded {done}/{} films ({:.0}%, {rate:.0} films/s)",
                items.len(),
                100.0 * done as f64 / items.len() as f64
            );
        }
    }
    let known: std::collections::HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let ratings: Vec<Interaction> = ratings
        .into_iter()
        .filter(|r| known.contains(r.item_id.as_str()))
        .collect();
    let count = ratings.len();
    store.append(ratings).await?;
    tracing::info!(
        events = count,
        took_s = started.elapsed().as_secs(),
        "demo data loaded"
    );
    Ok(())
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
