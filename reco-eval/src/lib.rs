//! Offline evaluation (`reco-eval`): replays a time-ordered interactions file into the
//! engine, holds out each user's latest positive interactions and measures how well the
//! engine and strong baselines recover them, every method tuned on a validation split.
//!
//! # Protocol
//!
//! * **Data.** Ratings `user::movie::rating(0-10)::unix_time` are mapped to actions by
//!   [`core_api::demo::parse_rating`] (8-10 like, 6-7 complete, 4-5 view, else dislike) and
//!   sorted by time (stable: ties keep file order). *Positive* means like or complete.
//! * **Catalogue.** The films that appear in the ratings file, with metadata from the film
//!   catalogue; only these are embedded and indexed. Quality priors are the Bayesian-smoothed
//!   mean rating from the *training* ratings only.
//! * **Split (leave-last-out by time).** A user with at least `holdout + 2` positive
//!   interactions is a test user: their latest `holdout` positives are held out, everything
//!   before the first held-out one is training, what follows is dropped; other users'
//!   interactions are all training. **Validation** applies the same split to the training
//!   events (each test user's second-latest positive).
//! * **Tuning.** Every method's settings (baselines in [`baselines`] and [`tuned`], the engine's in
//!   [`engine_settings`]) are chosen on validation NDCG@k; the chosen setting is refitted on
//!   all training events and scored once on the test split. The engine's setting must also
//!   reach `min_genre_diversity` on validation.
//! * **Engine.** A fresh engine per setting on a copy of one embedded item store and index
//!   snapshot (cached in `var/eval/`), item graph filled as at start-up, the training events
//!   replayed in time order through [`Engine::record_events`](core_api::Engine::record_events), one [`Engine::retrain`](core_api::Engine::retrain), then
//!   one `recommend` per test user (no intent, no filters, `limit = k`).
//! * **Baselines** ([`baselines`]): popularity, item-kNN, RP3β, sparse EASE, EASE, implicit ALS,
//!   next-item transitions, ALS + transitions, and a seeded random floor; each excludes every
//!   training item of the user and fills short lists from popularity.
//! * **Metrics** at `k`: HR, NDCG (binary relevance), MRR, catalogue coverage, ILD (1 −
//!   cosine of MiniLM embeddings within a list) and genre ILD (1 − Jaccard of genre sets).
//! * **Ablation.** The chosen engine setting with one stage switched off per row
//!   ([`ablation_variants`]).
//!
//! Everything is deterministic for a given cache: users are evaluated in id order, ties are
//! broken by id, random parts are seeded. The pure parts (split, metrics, baselines) take
//! plain data and are unit-tested without the model; [`run()`] wires them to the real engine.
//!
//! # Modules
//!
//! [`data`] loads the ratings and the catalogue and splits them; [`metrics`] scores lists;
//! [`baselines`] holds one file per baseline family with its validation grid, which
//! [`tuned`] runs; [`engine`] opens the engine on a split and holds its settings grid;
//! [`mod@run`] wires everything together and [`report`] writes the results.

pub mod baselines;
pub mod data;
pub mod engine;
pub mod metrics;
pub mod report;
pub mod run;
pub mod tuned;

use std::path::Path;

use core_api::error::EngineError;
use core_api::store::StoreError;
use core_api::vector_cache::VectorCacheError;

pub use baselines::{random_list, ItemKnn, Popularity};
pub use data::{is_positive, leave_last_out, smoothed_quality, Dataset, Split, TestUser};
pub use engine::{ablation_variants, engine_settings, without_exploration, Variant};
pub use metrics::{
    coverage, genre_diversity, hit_at_k, intra_list_diversity, ndcg_at_k, reciprocal_rank,
    score_lists, MethodResult,
};
pub use report::{machine, markdown_table, notes, protocol_text, results_markdown, today_utc};
pub use run::{catalogue_vectors, run, DatasetStats, EvalOptions, EvalReport};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Embed(#[from] gpu_batch::EmbedError),
}

impl From<VectorCacheError> for EvalError {
    fn from(e: VectorCacheError) -> Self {
        match e {
            VectorCacheError::Data(message) => EvalError::Data(message),
            VectorCacheError::Embed(e) => EvalError::Embed(e),
        }
    }
}

pub(crate) fn io_error(what: &str, path: &Path, e: std::io::Error) -> EvalError {
    EvalError::Data(format!("{what} {}: {e}", path.display()))
}
