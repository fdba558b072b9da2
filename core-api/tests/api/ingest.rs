//! Cold-path ingest: JSONL and CSV catalogues, an interrupted run resumed without redoing
//! finished batches, snapshots that a restarted engine loads, and the CLI end to end.

use std::ops::ControlFlow;
use std::process::Command;

use core_api::ingest::{ingest, read_catalogue};
use core_api::metrics::Metrics;

use crate::common::{demo_config, encoder, repo_root, temp_dir};

const SPACE: [&str; 3] = [
    "An astronaut crew travels to Neptune",
    "Explorers on a starship search for a new home planet",
    "A lone pilot drifts through deep space",
];

fn write_jsonl(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let (genre, description) = if i % 2 == 0 {
                ("Sci-Fi", SPACE[i % 3].to_string())
            } else {
                ("Cooking", format!("A chef bakes recipe number {i}"))
            };
            serde_json::json!({
                "id": format!("ing-{i}"),
                "title": format!("Film {i}"),
                "genres": [genre],
                "year": 2000 + (i % 20),
                "description": description,
            })
            .to_string()
        })
        .collect();
    let path = dir.join("catalogue.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

#[tokio::test]
async fn interrupted_ingest_resumes_and_builds_a_loadable_index() {
    let dir = temp_dir("ingest");
    let input = write_jsonl(&dir, 40);
    let mut config = demo_config(&dir.join("data"), 0);
    config.demo.load_if_empty = false;
    config.index.shards = 2;

    // Interrupted after two batches of 8.
    let mut batches = 0;
    let first = ingest(&config, encoder(), &input, 8, |done, total| {
        batches += 1;
        assert_eq!((done, total), (batches * 8, 40));
        if batches == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .await
    .unwrap();
    assert!(!first.completed);
    assert_eq!((first.resumed_from, first.embedded), (0, 16));

    // The rerun skips the 16 finished items and embeds only the rest.
    let second = ingest(&config, encoder(), &input, 8, |_, _| {
        ControlFlow::Continue(())
    })
    .await
    .unwrap();
    assert!(second.completed);
    assert_eq!((second.resumed_from, second.embedded), (16, 24));
    assert!(second.items_per_sec() > 0.0);
    let snapshots = std::fs::read_dir(dir.join("data"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("index-"))
        .flat_map(|e| std::fs::read_dir(e.path()).unwrap().flatten())
        .count();
    assert_eq!(snapshots, 2, "one snapshot per shard");

    // A fresh engine on the data directory serves every item with sensible neighbours.
    let engine =
        core_api::bootstrap::open_embedded(config, encoder(), std::sync::Arc::new(Metrics::new()))
            .await
            .unwrap();
    assert_eq!(engine.catalog_len(), 40);
    let similar = engine.similar("ing-0", 5, None).await.unwrap();
    let sci_fi = similar
        .items
        .iter()
        .filter(|s| s.item.genres == ["Sci-Fi"])
        .count();
    assert!(
        sci_fi >= 4,
        "space films are each other's neighbours: {:?}",
        similar.items
    );
}

#[test]
fn csv_catalogues_are_read_and_bad_files_are_named() {
    let dir = temp_dir("ingest-csv");
    let csv = dir.join("items.csv");
    std::fs::write(
        &csv,
        "id,title,genres,year,description\nc1,\"Dune, Part One\",Sci-Fi|Drama,2021,\"Spice, sand\"\nc2,Ratatouille,Animation,2007,\n",
    )
    .unwrap();
    let items = read_catalogue(&csv).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].title, "Dune, Part One");
    assert_eq!(items[0].genres, ["Sci-Fi", "Drama"]);
    assert_eq!(items[0].year, Some(2021));
    assert_eq!(items[1].description, None);
    std::fs::write(&csv, "id,title,year\nc1,X,not-a-year\n").unwrap();
    let err = read_catalogue(&csv).unwrap_err().to_string();
    assert!(err.contains("row 1"), "{err}");
    assert!(read_catalogue(&dir.join("items.xml")).is_err());
}

#[test]
fn cli_ingests_a_csv_catalogue() {
    let dir = temp_dir("ingest-cli");
    let csv = dir.join("items.csv");
    let mut rows = String::from("id,title,genres,description\n");
    for i in 0..12 {
        rows.push_str(&format!("cli-{i},Film {i},Drama,A story number {i}\n"));
    }
    std::fs::write(&csv, rows).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_reco-ingest"))
        .arg(&csv)
        .args(["--batch", "5", "--data-dir"])
        .arg(dir.join("data"))
        .env(
            "RECO__MODEL__DIR",
            repo_root().join(gpu_batch::DEFAULT_MODEL_DIR),
        )
        .env("RECO__INDEX__SHARDS", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("embedded 12 items"), "{stderr}");
    assert!(stderr.contains("index snapshots written"), "{stderr}");
    let bad = Command::new(env!("CARGO_BIN_EXE_reco-ingest"))
        .arg(dir.join("missing.csv"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot read"));
}

/// A batch with more items to embed than one request fits becomes a job: answered at once
/// with 202 and its status URL, stored in durable chunks, reported done with every item
/// searchable; a bad item refuses the whole batch before anything is stored.
#[tokio::test]
async fn a_large_upsert_becomes_a_job_that_reports_its_progress() {
    use axum::http::StatusCode;
    use core_api::{app, AppState};

    use crate::common::{get, post};

    let dir = temp_dir("jobs");
    let mut config = demo_config(&dir.join("data"), 0);
    config.demo.load_if_empty = false;
    config.model.sync_embed_max = 4;
    let metrics = std::sync::Arc::new(Metrics::new());
    let engine = core_api::bootstrap::open_embedded(config, encoder(), metrics.clone())
        .await
        .unwrap();
    let router = app(AppState::ready(engine.clone(), metrics));
    let batch = |n: usize, bad: bool| -> String {
        let items: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                serde_json::json!({
                    "id": format!("job-{i}"),
                    "title": if bad && i == n - 1 { String::new() } else { format!("Film {i}") },
                    "genres": ["Sci-Fi"],
                    "description": SPACE[i % 3],
                })
            })
            .collect();
        serde_json::to_string(&items).unwrap()
    };

    // Small enough: stored within the request.
    let small = post(&router, "/v1/items", "application/json", batch(3, false)).await;
    assert_eq!(small.status, StatusCode::OK);
    assert_eq!(small.json()["upserted"], 3);

    // A bad item anywhere refuses the whole batch, job or not, and stores nothing.
    post(&router, "/v1/items", "application/json", batch(150, true))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_item");
    assert!(!engine.has_item("job-100"));

    let started = post(&router, "/v1/items", "application/json", batch(150, false)).await;
    assert_eq!(started.status, StatusCode::ACCEPTED);
    let job = started.json();
    assert_eq!(
        (job["state"].as_str(), job["total"].as_u64()),
        (Some("running"), Some(150))
    );
    let location = started.headers["location"].to_str().unwrap().to_string();
    assert_eq!(
        location,
        format!("/v1/jobs/{}", job["job_id"].as_str().unwrap())
    );
    let mut last_stored = 0;
    let done = loop {
        let status = get(&router, &location).await.json_ok();
        let stored = status["stored"].as_u64().unwrap();
        assert!(stored >= last_stored, "progress only grows");
        last_stored = stored;
        if status["state"] != "running" {
            break status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["stored"], 150);
    assert!((0..150).all(|i| engine.has_item(&format!("job-{i}"))));
    get(&router, "/v1/jobs/no-such-job")
        .await
        .assert_error(StatusCode::NOT_FOUND, "job_not_found");
}
