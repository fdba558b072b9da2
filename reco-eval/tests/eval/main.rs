//! Offline evaluation (`reco_eval`): split, metrics and baselines on tiny hand-checked data
//! (no model), and one small end-to-end run on the real engine. One test binary, so the
//! engine is linked once.

mod baselines;
mod end_to_end;
mod split_metrics;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use core_api::store::Interaction;
use core_api::Config;
use reco_eval::{EvalOptions, ItemKnn, Popularity, TestUser};
use shared_types::Action;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "reco-eval-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The demo configuration on the real model, deterministic (no exploration, no background
/// training).
pub fn demo_config(data_dir: &Path, max_items: usize) -> Config {
    let root = repo_root();
    let mut c = Config::default();
    c.storage.data_dir = data_dir.to_path_buf();
    c.model.dir = root.join(gpu_batch::DEFAULT_MODEL_DIR);
    c.demo.catalog = root.join("data/movietweetings/catalog-movies.dat");
    c.demo.ratings = root.join("data/movietweetings/snapshot-20k/ratings.dat");
    c.demo.max_items = max_items;
    c.server.max_body_bytes = 64 * 1024;
    // Tests run many heavy things at once on few cores; the deadline is not under test here.
    c.server.request_timeout_ms = 120_000;
    // Deterministic answers: the policy exploits only (tests of exploration set their own).
    c.policy.epsilon = 0.0;
    // No background training: a training holds its engine (and the embedded database) until
    // it ends, which would race tests that reopen the store. Tests of training ask for it.
    c.learning.retrain_every_secs = 0;
    c
}

const EPS: f64 = 1e-4;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < EPS
}

fn ev(user: &str, item: &str, action: Action, t: i64) -> Interaction {
    Interaction {
        user_id: user.into(),
        item_id: item.into(),
        action,
        timestamp: t,
        recommendation_id: None,
        event_id: String::new(),
    }
}

fn ids(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|x| x.to_string()).collect()
}

fn set<'a>(xs: &[&'a str]) -> HashSet<&'a str> {
    xs.iter().copied().collect()
}
