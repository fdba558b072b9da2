//! End to end through a real local workerd: the built worker (`scripts/build-edge.sh`) runs
//! under `wrangler dev` in front of a real core-api process (embedded default, a small demo
//! catalogue, signing secret set), all on loopback.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "edge-test-secret";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Minimal HTTP/1.1 client (one request per connection) that keeps the headers.
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.get(9..12))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// A child process killed (with its process group) when dropped; its log is printed when
/// the test is failing.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(cmd: &mut Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file));
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(cmd, 0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        Self { child, log }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // wrangler runs workerd as children: signal the whole group so nothing outlives us.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: String = log
                .chars()
                .rev()
                .take(4000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            eprintln!("--- {} ---\n{tail}", self.log.display());
        }
    }
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < timeout,
            "{what} not ready after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Builds core-api with the same cargo (a no-op when already built) and returns its path.
fn core_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(repo_root())
        .args([
            "build",
            "-p",
            "core-api",
            "--bin",
            "core-api",
            "--message-format=json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build");
    assert!(out.status.success(), "building core-api failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == "core-api")
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
        .expect("cargo reported the core-api executable")
}

fn start_core(port: u16, data: &Path, log: PathBuf) -> Proc {
    let root = repo_root();
    let mut cmd = Command::new(core_binary());
    cmd.env("RECO__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("RECO__SERVER__REQUEST_TIMEOUT_MS", "60000")
        .env("RECO__STORAGE__DATA_DIR", data)
        .env("RECO__MODEL__DIR", root.join("models/all-MiniLM-L6-v2"))
        .env(
            "RECO__DEMO__CATALOG",
            root.join("data/movietweetings/catalog-movies.dat"),
        )
        .env(
            "RECO__DEMO__RATINGS",
            root.join("data/movietweetings/snapshot-20k/ratings.dat"),
        )
        .env("RECO__DEMO__MAX_ITEMS", "300")
        .env("RECO__INDEX__SHARDS", "2")
        .env("RECO__EDGE__SHARED_SECRET", SECRET)
        .env("RUST_LOG", "warn");
    Proc::spawn(&mut cmd, log)
}

fn start_edge(port: u16, core_port: u16, state_dir: &Path, log: PathBuf) -> Proc {
    let root = repo_root();
    let shim = root.join("edge-worker/build/worker/shim.mjs");
    assert!(
        shim.exists(),
        "{} missing: build the worker first with scripts/build-edge.sh",
        shim.display()
    );
    let wrangler = root.join("node_modules/.bin/wrangler");
    assert!(
        wrangler.exists(),
        "wrangler missing: run scripts/build-edge.sh"
    );
    let mut cmd = Command::new(wrangler);
    cmd.current_dir(&root)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("NO_COLOR", "1")
        .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
        .args(["--inspector-port", &free_port().to_string()])
        .args(["--persist-to", &state_dir.display().to_string()])
        .args(["--log-level", "warn"])
        .args([
            "--var",
            &format!("CORE_ORIGIN:http://127.0.0.1:{core_port}"),
        ])
        .args(["--var", &format!("EDGE_SHARED_SECRET:{SECRET}")])
        // Generous: the test machine also runs other suites; the deadline is not under test.
        .args(["--var", "ORIGIN_TIMEOUT_MS:20000"])
        // Zeitgeist answers go stale after 2 s, so STALE can be shown without waiting an hour.
        .args(["--var", "TTL_ZEITGEIST_SECS:2"]);
    Proc::spawn(&mut cmd, log)
}

/// Requests reaching the core's recommendation route, from its own metrics.
fn core_recommendation_requests(core_port: u16) -> u64 {
    let metrics = http(core_port, "GET", "/metrics", None).unwrap();
    assert_eq!(metrics.status, 200);
    metrics
        .body
        .lines()
        .filter(|l| l.starts_with("reco_http_requests_total{"))
        .filter(|l| l.contains("route=\"/v1/recommendations\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// GETs through the edge until the answer is a HIT (the cache write runs after the response,
/// in `waitUntil`), returning it.
fn get_until_hit(edge: u16, path: &str) -> Reply {
    let start = Instant::now();
    loop {
        let r = http(edge, "GET", path, None).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        if r.header("x-edge-cache") == "HIT" {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never a HIT: {path}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn item_ids(reply: &Reply) -> Vec<String> {
    reply.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["item"]["id"].as_str().expect("item id").to_string())
        .collect()
}

#[test]
fn edge_caches_signs_invalidates_and_survives_the_core() {
    let tmp = std::env::temp_dir().join(format!("edge-workerd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let (core_port, edge_port) = (free_port(), free_port());
    let core = start_core(core_port, &tmp.join("core"), tmp.join("core.log"));
    let _edge = start_edge(
        edge_port,
        core_port,
        &tmp.join("edge"),
        tmp.join("wrangler.log"),
    );
    wait_for("core-api", Duration::from_secs(300), || {
        http(core_port, "GET", "/readyz", None).is_ok_and(|r| r.status == 200)
    });
    wait_for("wrangler dev", Duration::from_secs(180), || {
        http(edge_port, "GET", "/healthz", None).is_ok_and(|r| r.status == 200)
    });

    // The core refuses requests that do not come from the edge.
    let direct = http(core_port, "GET", "/v1/recommendations?limit=3", None).unwrap();
    assert_eq!(direct.status, 401, "{}", direct.body);
    assert_eq!(direct.json()["code"], "unauthorized");

    // First a MISS, then a HIT with the identical body.
    let path = "/v1/recommendations?user_id=edge-u1&limit=5";
    let miss = http(edge_port, "GET", path, None).unwrap();
    assert_eq!(miss.status, 200, "{}", miss.body);
    assert_eq!(miss.header("x-edge-cache"), "MISS");
    assert_eq!(miss.header("x-cache-tier"), "user-session");
    let key = miss.header("x-cache-key").to_string();
    let parts: Vec<&str> = key.split(':').collect();
    assert_eq!(parts.len(), 5, "{key}");
    assert_eq!(&parts[..3], ["rec", "v1", "uedge-u1"], "{key}");
    assert!(
        parts[3].starts_with("ctx") && parts[3].len() == 3 + 16,
        "{key}"
    );
    let t: i64 = parts[4].strip_prefix('t').unwrap().parse().unwrap();
    assert_eq!(t % 300, 0, "t is a five-minute timestamp: {key}");
    assert!(miss.header("cache-control").starts_with("s-maxage="));
    let hit = get_until_hit(edge_port, path);
    assert_eq!(hit.body, miss.body);
    assert_eq!(hit.header("x-cache-key"), key);

    // Another context or user is another key; anonymous requests are in the popular tier.
    let night = http(edge_port, "GET", &format!("{path}&time_of_day=night"), None).unwrap();
    assert_eq!(night.header("x-edge-cache"), "MISS");
    assert_ne!(night.header("x-cache-key"), key);
    let other = http(
        edge_port,
        "GET",
        "/v1/recommendations?user_id=edge-u2&limit=5",
        None,
    )
    .unwrap();
    assert_ne!(other.header("x-cache-key"), key);
    let anonymous = http(edge_port, "GET", "/v1/recommendations?limit=5", None).unwrap();
    assert_eq!(anonymous.status, 200);
    assert_eq!(anonymous.header("x-cache-tier"), "popular");
    assert!(anonymous.header("x-cache-key").starts_with("rec:v1:u~:ctx"));

    // An event passes through uncached; the user's next GET is not the pre-event answer.
    let liked = item_ids(&hit)[0].clone();
    let event = format!(r#"{{"user_id":"edge-u1","item_id":"{liked}","action":"like"}}"#);
    let posted = http(edge_port, "POST", "/v1/events", Some(&event)).unwrap();
    assert!(
        posted.status / 100 == 2,
        "{} {}",
        posted.status,
        posted.body
    );
    assert_eq!(posted.header("x-edge-cache"), "BYPASS");
    let after = http(edge_port, "GET", path, None).unwrap();
    assert_eq!(after.status, 200);
    assert_eq!(
        after.header("x-edge-cache"),
        "MISS",
        "pre-event entry served"
    );
    assert!(
        !item_ids(&after).contains(&liked),
        "liked item still recommended"
    );
    let after_hit = get_until_hit(edge_port, path);
    assert_eq!(after_hit.body, after.body);

    // Malformed input is answered 400 at the edge and never reaches the core.
    let before = core_recommendation_requests(core_port);
    for bad in [
        "/v1/recommendations?limit=1000",
        "/v1/recommendations?user_id=bad%20id",
        &format!("/v1/recommendations?q={}", "a".repeat(600)),
        "/v1/recommendations?unknown=1",
    ] {
        let r = http(edge_port, "GET", bad, None).unwrap();
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.json()["code"].is_string() && r.json()["message"].is_string());
    }
    assert_eq!(core_recommendation_requests(core_port), before);

    // A zeitgeist answer (TTL 2 s here) is stored, then outlives its TTL.
    let zeitgeist = "/v1/recommendations?q=space%20adventure&limit=5";
    let fresh = http(edge_port, "GET", zeitgeist, None).unwrap();
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert_eq!(fresh.header("x-cache-tier"), "zeitgeist");
    std::thread::sleep(Duration::from_secs(3));

    // Core down: a fresh entry is still a HIT, an expired one is served STALE, and a
    // request with nothing cached gets 503 + Retry-After.
    drop(core);
    let hit_while_down = http(edge_port, "GET", path, None).unwrap();
    assert_eq!(hit_while_down.header("x-edge-cache"), "HIT");
    assert_eq!(hit_while_down.body, after.body);
    let stale = http(edge_port, "GET", zeitgeist, None).unwrap();
    assert_eq!(stale.status, 200, "{}", stale.body);
    assert_eq!(stale.header("x-edge-cache"), "STALE");
    assert_eq!(stale.body, fresh.body);
    let uncached = http(
        edge_port,
        "GET",
        "/v1/recommendations?user_id=edge-u3",
        None,
    )
    .unwrap();
    assert_eq!(uncached.status, 503, "{}", uncached.body);
    assert_eq!(uncached.json()["code"], "origin_unavailable");
    assert!(uncached.header("retry-after").parse::<u32>().is_ok());
    let _ = std::fs::remove_dir_all(&tmp);
}
