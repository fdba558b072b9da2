//! Durability: the real binary is killed with SIGKILL right after acknowledging writes, then
//! restarted on the same data directory.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use test_support::http::http;

use crate::common::{free_port, repo_root, temp_dir};

/// Kills the server when dropped, so a failing assertion leaves no process behind.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(data: &Path, port: u16, log: &Path) -> Server {
    let root = repo_root();
    Server(
        Command::new(env!("CARGO_BIN_EXE_core-api"))
            .env("RECO__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("RECO__STORAGE__DATA_DIR", data)
            .env("RECO__MODEL__DIR", root.join(gpu_batch::DEFAULT_MODEL_DIR))
            .env(
                "RECO__DEMO__CATALOG",
                root.join("data/movietweetings/catalog-movies.dat"),
            )
            .env(
                "RECO__DEMO__RATINGS",
                root.join("data/movietweetings/snapshot-20k/ratings.dat"),
            )
            .env("RECO__DEMO__MAX_ITEMS", "400")
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(std::fs::File::create(log).unwrap()))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start core-api"),
    )
}

fn wait_ready(addr: SocketAddr, server: &mut Server) {
    let child = &mut server.0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("core-api exited early: {status}");
        }
        if http(addr, "GET", "/readyz", None).is_ok_and(|r| r.status == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("core-api not ready in time");
}

#[test]
fn acknowledged_writes_and_the_index_survive_kill_9() {
    let data = temp_dir("restart");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let first_log = data.join("first.log");
    let mut child = start(&data, port, &first_log);
    wait_ready(addr, &mut child);

    let r = http(
        addr,
        "POST",
        "/v1/items",
        Some(
            r#"[{"id":"durable-1","title":"A Durable Film About Lighthouses","genres":["Drama"]},
                {"id":"durable-2","title":"Keepers of the Lighthouse","genres":["Drama"]}]"#,
        ),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http(
        addr,
        "POST",
        "/v1/events",
        Some(r#"[{"user_id":"durable-user","item_id":"durable-1","action":"like"},{"user_id":"durable-user","item_id":"durable-2","action":"like"}]"#),
    )
    .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    drop(child); // SIGKILL: no graceful shutdown, no flush.

    let second_log = data.join("second.log");
    let mut child = start(&data, port, &second_log);
    wait_ready(addr, &mut child);
    let item = http(addr, "GET", "/v1/items/durable-1", None).unwrap();
    assert_eq!(
        item.status, 200,
        "acknowledged item survived: {}",
        item.body
    );
    let recs = http(
        addr,
        "GET",
        "/v1/recommendations?user_id=durable-user&limit=10",
        None,
    )
    .unwrap();
    assert_eq!(recs.status, 200);
    let recs = recs.json();
    assert_eq!(
        recs["cold_start"], false,
        "acknowledged events survived: {recs}"
    );
    let ids: Vec<&str> = recs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item"]["id"].as_str().unwrap())
        .collect();
    assert!(
        !ids.contains(&"durable-1") && !ids.contains(&"durable-2"),
        "history excludes seen: {ids:?}"
    );
    let similar = http(addr, "GET", "/v1/similar/durable-1?limit=3", None).unwrap();
    assert_eq!(similar.status, 200, "{}", similar.body);
    drop(child);

    let first = std::fs::read_to_string(&first_log).unwrap();
    let second = std::fs::read_to_string(&second_log).unwrap();
    assert!(first.contains("embedding the demo catalogue") && first.contains("shard rebuilt"));
    assert!(
        !second.contains("embedding the demo catalogue"),
        "restart must not re-embed:\n{second}"
    );
    assert!(
        !second.contains("shard rebuilt"),
        "restart must reuse index snapshots:\n{second}"
    );
}
