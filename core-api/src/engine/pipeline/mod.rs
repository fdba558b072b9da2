//! The ranking pipeline's stages, in request order: [`candidates`] (the user's taste vector,
//! graph seeds, and the union of vector hits and graph neighbours), [`filters`] (hard
//! constraints), [`scoring`] (hybrid or learned score per candidate), [`diversity`] (MMR)
//! and [`explanations`] (the reason shown with each pick).
//!
//! Each stage is a plain function over the request's data, so it is tested with hand-made
//! vectors; the engine ([`super::reads`]) fetches what they need from the stores and the
//! index and runs them in order.

pub(crate) mod candidates;
pub(crate) mod diversity;
pub(crate) mod explanations;
pub(crate) mod filters;
pub(crate) mod scoring;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use shared_types::{Action, ScoreComponents};

use crate::catalog::CatalogEntry;
use crate::learn::{RankFeatures, TrainedModel, UserSignals};

pub(crate) use filters::HardFilters;

/// One candidate before ranking: where it came from and what it scored there.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Candidate {
    /// Graph score, scaled to [0, 1] over the request's neighbours.
    pub graph: f32,
    /// The history item whose graph neighbour this is.
    pub via: Option<Arc<str>>,
}

/// A scored candidate.
pub(crate) struct Ranked {
    pub entry: Arc<CatalogEntry>,
    pub components: ScoreComponents,
    pub score: f32,
    pub via: Option<Arc<str>>,
    /// The learned ranker's features (zeros on the static path).
    pub features: RankFeatures,
}

/// Everything the shared ranking stages need for one request.
pub(crate) struct RankRequest {
    pub query: Option<Vec<f32>>,
    pub candidates: HashMap<Arc<str>, Candidate>,
    pub exclude: HashSet<Arc<str>>,
    pub filters: HardFilters,
    pub limit: usize,
    /// Positive history (for "similar to X" reasons), newest first.
    pub history: Vec<Arc<CatalogEntry>>,
    pub intent: Option<String>,
    pub fallback_reason: &'static str,
    /// The learned sources' view of the user (personalised requests with learning on).
    pub learned: Option<LearnedInputs>,
}

/// What the learned ranking needs beyond the candidates.
pub(crate) struct LearnedInputs {
    pub signals: UserSignals,
    /// Latest positive items (ordinals), newest first.
    pub recent: Vec<u32>,
    /// The history as (action, id), newest first, for the reasons.
    pub history: Vec<(Action, Arc<str>)>,
    /// The model of this request (one, even if a new one is swapped in meanwhile).
    pub model: Arc<TrainedModel>,
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Hand-made catalogue entries for the stages' tests.

    use std::sync::Arc;

    use shared_types::{Item, Maturity};

    use crate::catalog::CatalogEntry;

    /// A unit vector along the axes given (equal weights), in `dim` dimensions.
    pub fn unit(dim: usize, axes: &[usize]) -> Vec<f32> {
        let mut v = vec![0.0; dim];
        for &a in axes {
            v[a] = 1.0;
        }
        let norm = (axes.len() as f32).sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }

    /// An entry with the given id, genres and vector.
    pub fn entry(id: &str, genres: &[&str], vector: &[f32]) -> Arc<CatalogEntry> {
        entry_with(id, genres, vector, |_| {})
    }

    /// An entry whose item `edit` adjusts (maturity, language, year...).
    pub fn entry_with(
        id: &str,
        genres: &[&str],
        vector: &[f32],
        edit: impl FnOnce(&mut Item),
    ) -> Arc<CatalogEntry> {
        let mut item = Item {
            id: id.into(),
            title: format!("Title {id}"),
            genres: genres.iter().map(|g| g.to_string()).collect(),
            year: Some(2000),
            language: Some("en".into()),
            maturity: Some(Maturity::All),
            description: None,
            quality: None,
        };
        edit(&mut item);
        Arc::new(CatalogEntry::new(item, 1, vector))
    }
}
