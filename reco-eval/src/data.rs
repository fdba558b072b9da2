//! The data sets and their splits: a time-ordered ratings file in the MovieTweetings /
//! MovieLens `::` format with its film catalogue, the leave-last-out split by time, and the
//! quality priors learnt from the training ratings.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use core_api::store::Interaction;
use serde::Serialize;
use shared_types::{Action, Item};

use crate::{io_error, EvalError};

/// A ratings file and the catalogue of the films it rates.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// Ratings of catalogued films, time-ordered (stable: ties keep file order), with the
    /// rating (0-10) each was mapped from.
    pub ratings: Vec<(Interaction, u8)>,
    /// The rated films found in the catalogue, sorted and de-duplicated by id.
    pub items: Vec<Item>,
    /// Ratings of films missing from the catalogue file (dropped).
    pub unknown_items: usize,
}

impl Dataset {
    /// Reads the ratings file (`user::movie::rating(0-10)::unix_time`, mapped to actions by
    /// [`core_api::demo::parse_rating`]) and the films of the catalogue file
    /// (`id::Title (Year)::Genre|Genre`) it rates.
    pub fn load(ratings_path: &Path, catalog_path: &Path) -> Result<Dataset, EvalError> {
        let mut ratings: Vec<(Interaction, u8)> = read_lines(ratings_path)?
            .lines()
            .filter_map(core_api::demo::parse_rating)
            .collect();
        if ratings.is_empty() {
            return Err(EvalError::Data(format!(
                "no ratings in {}",
                ratings_path.display()
            )));
        }
        ratings.sort_by_key(|(e, _)| e.timestamp);
        let rated: HashSet<&str> = ratings.iter().map(|(e, _)| e.item_id.as_str()).collect();
        let mut items: Vec<Item> = read_lines(catalog_path)?
            .lines()
            .filter_map(core_api::demo::parse_movie)
            .filter(|m| rated.contains(m.id.as_str()))
            .collect();
        items.sort_by(|a, b| a.id.cmp(&b.id));
        items.dedup_by(|a, b| a.id == b.id);
        let known: HashSet<String> = items.iter().map(|i| i.id.clone()).collect();
        let total_ratings = ratings.len();
        ratings.retain(|(e, _)| known.contains(&e.item_id));
        let unknown_items = total_ratings - ratings.len();
        Ok(Dataset {
            ratings,
            items,
            unknown_items,
        })
    }
}

/// Like or complete: the interactions held out and used by the baselines.
pub fn is_positive(action: Action) -> bool {
    matches!(action, Action::Like | Action::Complete)
}

/// A user evaluated on the items held out for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestUser {
    pub user_id: String,
    /// Held-out items, oldest first, without duplicates.
    pub held_out: Vec<String>,
}

/// The train/test split of a time-ordered interaction list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// Indices (into the input) of the training interactions, in input order.
    pub train: Vec<usize>,
    /// Test users, by user id.
    pub test: Vec<TestUser>,
}

/// Leave-last-out by time. `events` must be sorted by time. A user with at least
/// `min_positives` positive interactions (never fewer than `holdout + 1`) has their latest
/// `holdout` positive ones held out; their training is everything before the first held-out
/// one (later events are dropped). Other users' events are all training.
pub fn leave_last_out(events: &[Interaction], holdout: usize, min_positives: usize) -> Split {
    let mut positives: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        if is_positive(e.action) {
            positives.entry(e.user_id.as_str()).or_default().push(i);
        }
    }
    let needed = min_positives.max(holdout + 1);
    // user → index of their first held-out event (their training ends before it)
    let mut cut: HashMap<&str, usize> = HashMap::new();
    let mut test = Vec::new();
    if holdout > 0 {
        for (user, pos) in &positives {
            if pos.len() < needed {
                continue;
            }
            let held = &pos[pos.len() - holdout..];
            cut.insert(user, held[0]);
            let mut held_out: Vec<String> = Vec::with_capacity(holdout);
            for &i in held {
                if !held_out.contains(&events[i].item_id) {
                    held_out.push(events[i].item_id.clone());
                }
            }
            test.push(TestUser {
                user_id: user.to_string(),
                held_out,
            });
        }
    }
    test.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    let train = events
        .iter()
        .enumerate()
        .filter(|(i, e)| cut.get(e.user_id.as_str()).is_none_or(|&c| *i < c))
        .map(|(i, _)| i)
        .collect();
    Split { train, test }
}

/// Bayesian-smoothed mean rating in [0, 1] per item (towards the global mean, weight 5
/// ratings), from `(item, rating 0-10)` pairs; items without ratings get the global mean.
pub fn smoothed_quality<'a>(
    items: &[String],
    ratings: impl IntoIterator<Item = (&'a str, u8)>,
) -> HashMap<String, f32> {
    let mut sums: HashMap<&str, (f32, f32)> = HashMap::new();
    let (mut total, mut n) = (0f32, 0f32);
    for (item, r) in ratings {
        let e = sums.entry(item).or_default();
        e.0 += f32::from(r);
        e.1 += 1.0;
        total += f32::from(r);
        n += 1.0;
    }
    let global = total / n.max(1.0);
    items
        .iter()
        .map(|id| {
            let (sum, c) = sums.get(id.as_str()).copied().unwrap_or_default();
            let q = ((sum + 5.0 * global) / (c + 5.0) / 10.0).clamp(0.0, 1.0);
            (id.clone(), q)
        })
        .collect()
}

pub(crate) fn read_lines(path: &Path) -> Result<String, EvalError> {
    std::fs::read_to_string(path).map_err(|e| io_error("cannot read", path, e))
}
