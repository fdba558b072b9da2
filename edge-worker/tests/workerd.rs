//! End to end through a real local workerd: the built worker (`scripts/build-edge.sh`) runs
//! under `wrangler dev`, all on loopback, in front of
//! - a real core-api process (embedded default, a small demo catalogue, signing secret set):
//!   caching, invalidation and outages;
//! - a recording origin that checks every request's edge signature (method, host, path,
//!   query, body digest, user): end-user tokens and who may do what.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use test_support::edge::Forwarded;
use test_support::http::{loopback, Reply};

const SECRET: &str = "edge-test-secret";
/// TEST-ONLY token settings; the RS256/ES256 fixtures (tests/fixtures) use the same issuer
/// and audience.
const JWT_SECRET: &str = "test-only-jwt-hs256-secret-0123456789";
const ISSUER: &str = "https://id.test.example";
const AUDIENCE: &str = "semrec-edge-test";

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

/// One request to a loopback port with an optional JSON body.
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> std::io::Result<Reply> {
    test_support::http::http(loopback(port), method, path, body)
}

/// [`http`] with extra request headers (a JSON body unless they name another type).
fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    test_support::http::request(loopback(port), method, path, headers, body)
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
            let tail = tail(&log, 4000);
            eprintln!("--- {} ---\n{tail}", self.log.display());
        }
    }
}

/// The last `chars` characters of `text`.
fn tail(text: &str, chars: usize) -> &str {
    let skip = text.chars().count().saturating_sub(chars);
    text.char_indices()
        .nth(skip)
        .map_or("", |(i, _)| &text[i..])
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

/// Token settings every edge here runs with: HS256 with [`JWT_SECRET`], and RS256/ES256
/// from `jwks_url` when given.
fn token_vars(jwks_url: Option<&str>) -> Vec<String> {
    let mut vars = vec![
        format!("JWT_HS256_SECRET:{JWT_SECRET}"),
        format!("JWT_ISSUER:{ISSUER}"),
        format!("JWT_AUDIENCE:{AUDIENCE}"),
    ];
    vars.extend(jwks_url.map(|url| format!("JWT_JWKS_URL:{url}")));
    vars
}

/// Starts `wrangler dev` in front of `origin_port` and waits until it answers `/healthz`;
/// returns the process and its port. A start that fails for a transient reason (a port taken
/// between choosing and binding it, or workerd failing to start on a loaded machine) is
/// retried on fresh ports and a fresh state directory, twice at most; each try keeps its own
/// logs in `dir`. Any other exit before it is healthy fails the test at once.
fn start_edge(origin_port: u16, dir: &Path, vars: &[String]) -> (Proc, u16) {
    const TRIES: usize = 3;
    const TRANSIENT: [&str; 2] = ["Address already in use", "Workers runtime failed to start"];
    for attempt in 1..=TRIES {
        let port = free_port();
        let log = dir.join(format!("wrangler-{attempt}.log"));
        let mut edge = spawn_edge(port, origin_port, dir, attempt, log.clone(), vars);
        let start = Instant::now();
        loop {
            if healthy(port) {
                return (edge, port);
            }
            // wrangler reports a runtime that failed to start and may keep running (it waits
            // for a file change), so its log tells as well as its exit.
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            let exited = edge.child.try_wait().ok().flatten();
            let transient = TRANSIENT.iter().any(|m| output.contains(m));
            if exited.is_some() || transient {
                let debug = dir.join(format!("wrangler-debug-{attempt}.log"));
                let debug = std::fs::read_to_string(debug).unwrap_or_default();
                eprintln!(
                    "wrangler dev try {attempt} failed before it was healthy ({exited:?}):\n\
                     {}\n--- debug log ---\n{}",
                    tail(&output, 4000),
                    tail(&debug, 6000)
                );
                assert!(transient, "wrangler dev exited before it was healthy");
                assert!(
                    attempt < TRIES,
                    "wrangler dev did not start in {TRIES} tries"
                );
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "wrangler dev not ready after 180s"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    unreachable!("every try returns or panics")
}

/// One `/healthz` probe with a short deadline (a starting wrangler may hold a request).
fn healthy(port: u16) -> bool {
    let probe = || -> std::io::Result<bool> {
        let deadline = Some(Duration::from_secs(2));
        let mut s = TcpStream::connect_timeout(&loopback(port), Duration::from_secs(2))?;
        s.set_read_timeout(deadline)?;
        s.write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )?;
        let mut status = [0u8; 12];
        s.read_exact(&mut status)?;
        Ok(status.starts_with(b"HTTP/1.1 200"))
    };
    probe().unwrap_or(false)
}

fn spawn_edge(
    port: u16,
    origin_port: u16,
    dir: &Path,
    attempt: usize,
    log: PathBuf,
    vars: &[String],
) -> Proc {
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
        // wrangler's own debug log (workerd's start-up errors among it), kept with the test's.
        .env(
            "WRANGLER_LOG_PATH",
            dir.join(format!("wrangler-debug-{attempt}.log")),
        )
        .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
        .args(["--inspector-port", &free_port().to_string()])
        .args([
            "--persist-to",
            &dir.join(format!("edge-{attempt}")).display().to_string(),
        ])
        .args(["--log-level", "warn"])
        .args([
            "--var",
            &format!("CORE_ORIGIN:http://127.0.0.1:{origin_port}"),
        ])
        .args(["--var", &format!("EDGE_SHARED_SECRET:{SECRET}")])
        // Generous: the test machine also runs other suites; the deadline is not under test.
        .args(["--var", "ORIGIN_TIMEOUT_MS:20000"])
        // Zeitgeist answers go stale after 2 s, so STALE can be shown without waiting an hour.
        .args(["--var", "TTL_ZEITGEIST_SECS:2"]);
    for var in vars {
        cmd.args(["--var", var]);
    }
    if !vars.iter().any(|v| v.starts_with("RATE_LIMIT_PER_MINUTE:")) {
        // The suites send many requests as one identity; the limit is tested on its own.
        cmd.args(["--var", "RATE_LIMIT_PER_MINUTE:100000000"]);
    }
    Proc::spawn(&mut cmd, log)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A TEST-ONLY HS256 token for `user`, expiring `expires_in` seconds from now.
fn hs256_token(user: &str, expires_in: i64) -> String {
    test_support::jwt::hs256(
        JWT_SECRET.as_bytes(),
        &serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": user, "exp": unix_now() + expires_in,
        }),
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// GET as the user of `token`.
fn get_as(port: u16, path: &str, token: &str) -> Reply {
    request(port, "GET", path, &[("Authorization", &bearer(token))], b"").unwrap()
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

/// GETs through the edge as the user of `token` until the answer is a HIT (the cache write
/// runs after the response, in `waitUntil`), returning it.
fn get_until_hit(edge: u16, path: &str, token: &str) -> Reply {
    let start = Instant::now();
    loop {
        let r = get_as(edge, path, token);
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
    let core_port = free_port();
    let core = start_core(core_port, &tmp.join("core"), tmp.join("core.log"));
    let (_edge, edge_port) = start_edge(core_port, &tmp, &token_vars(None));
    wait_for("core-api", Duration::from_secs(300), || {
        http(core_port, "GET", "/readyz", None).is_ok_and(|r| r.status == 200)
    });
    // The main user: one whose one-hour cache window does not end in the next 10 minutes
    // (windows are offset per user, so some user's entries always expire soon, and a
    // rollover mid-test would turn an expected HIT into a MISS).
    let now = unix_now();
    let user_1 = (1..)
        .map(|i| format!("edge-u1-{i}"))
        .find(|u| shared_types::cache_window(3600, now, u).1 > now + 600)
        .expect("some user's window lasts");
    let (u1, u2, u3) = (
        hs256_token(&user_1, 3600),
        hs256_token("edge-u2", 3600),
        hs256_token("edge-u3", 3600),
    );

    // The core refuses requests that do not come from the edge.
    let direct = http(core_port, "GET", "/v1/recommendations?limit=3", None).unwrap();
    assert_eq!(direct.status, 401, "{}", direct.body);
    assert_eq!(direct.json()["code"], "unauthorized");

    // First a MISS, then a HIT with the identical body.
    let path = &format!("/v1/recommendations?user_id={user_1}&limit=5");
    let miss = get_as(edge_port, path, &u1);
    assert_eq!(miss.status, 200, "{}", miss.body);
    assert_eq!(miss.header("x-edge-cache"), "MISS");
    assert_eq!(miss.header("x-cache-tier"), "user-session");
    let key = miss.header("x-cache-key").to_string();
    let parts: Vec<&str> = key.split(':').collect();
    assert_eq!(parts.len(), 5, "{key}");
    assert_eq!(&parts[..3], ["rec", "v1", &format!("u{user_1}")], "{key}");
    assert!(
        parts[3].starts_with("ctx") && parts[3].len() == 3 + 16,
        "{key}"
    );
    let t: i64 = parts[4].strip_prefix('t').unwrap().parse().unwrap();
    assert_eq!(t % 300, 0, "t is a five-minute timestamp: {key}");
    assert!(miss.header("cache-control").starts_with("s-maxage="));
    let hit = get_until_hit(edge_port, path, &u1);
    assert_eq!(hit.body, miss.body);
    assert_eq!(hit.header("x-cache-key"), key);

    // Another context or user is another key; anonymous requests are in the popular tier.
    let night = get_as(edge_port, &format!("{path}&time_of_day=night"), &u1);
    assert_eq!(night.header("x-edge-cache"), "MISS");
    assert_ne!(night.header("x-cache-key"), key);
    let other = get_as(
        edge_port,
        "/v1/recommendations?user_id=edge-u2&limit=5",
        &u2,
    );
    assert_ne!(other.header("x-cache-key"), key);
    let anonymous = http(edge_port, "GET", "/v1/recommendations?limit=5", None).unwrap();
    assert_eq!(anonymous.status, 200);
    assert_eq!(anonymous.header("x-cache-tier"), "popular");
    assert!(anonymous.header("x-cache-key").starts_with("rec:v1:u~:ctx"));

    // An event passes through uncached; the user's next GET is not the pre-event answer.
    let liked = item_ids(&hit)[0].clone();
    let event = format!(r#"{{"user_id":"{user_1}","item_id":"{liked}","action":"like"}}"#);
    let auth = bearer(&u1);
    let posted = request(
        edge_port,
        "POST",
        "/v1/events",
        &[("Authorization", &auth)],
        event.as_bytes(),
    )
    .unwrap();
    assert!(
        posted.status / 100 == 2,
        "{} {}",
        posted.status,
        posted.body
    );
    assert_eq!(posted.header("x-edge-cache"), "BYPASS");
    let after = get_as(edge_port, path, &u1);
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
    let after_hit = get_until_hit(edge_port, path, &u1);
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
    let hit_while_down = get_as(edge_port, path, &u1);
    assert_eq!(hit_while_down.header("x-edge-cache"), "HIT");
    assert_eq!(hit_while_down.body, after.body);
    let stale = http(edge_port, "GET", zeitgeist, None).unwrap();
    assert_eq!(stale.status, 200, "{}", stale.body);
    assert_eq!(stale.header("x-edge-cache"), "STALE");
    assert_eq!(stale.body, fresh.body);
    let uncached = get_as(edge_port, "/v1/recommendations?user_id=edge-u3", &u3);
    assert_eq!(uncached.status, 503, "{}", uncached.body);
    assert_eq!(uncached.json()["code"], "origin_unavailable");
    assert!(uncached.header("retry-after").parse::<u32>().is_ok());
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A request as the recording origin received it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    /// The edge signature verifies over this very request (host, body digest, user).
    signed: bool,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// An origin standing in for the core: it serves the token keys at `/jwks.json`, checks the
/// edge signature of everything else exactly as the core does (answering 401 when it fails)
/// and records every request.
struct Origin {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Origin {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    let _ = Self::serve(stream, &log);
                });
            }
        });
        Self { port, seen }
    }

    fn serve(stream: TcpStream, log: &Mutex<Vec<Seen>>) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        let mut headers = HashMap::new();
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            match line.trim_end().split_once(':') {
                Some((k, v)) => headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string()),
                None => break,
            };
        }
        let body = if headers
            .get("transfer-encoding")
            .is_some_and(|t| t.contains("chunked"))
        {
            let mut body = Vec::new();
            loop {
                line.clear();
                reader.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                reader.read_exact(&mut chunk)?;
                if n == 0 {
                    break body;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            let n = headers
                .get("content-length")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; n];
            reader.read_exact(&mut body)?;
            body
        };
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let get = |name: &str| headers.get(name).map_or("", String::as_str);
        let signed = Forwarded {
            method: &method,
            host: get("host"),
            target: &target,
            body: &body,
            user: Some(get("x-edge-user")),
            timestamp: get("x-edge-timestamp").parse().unwrap_or(0),
            nonce: get("x-edge-nonce"),
        }
        .verifies(SECRET.as_bytes(), get("x-edge-signature"));
        let seen = Seen {
            method: method.clone(),
            path: path.to_string(),
            query: query.to_string(),
            headers: headers.clone(),
            body,
            signed,
        };
        let (status, answer) = if path == "/jwks.json" {
            (200, fixture("jwks.json"))
        } else if !signed {
            (
                401,
                r#"{"code":"unauthorized","message":"bad edge signature"}"#.into(),
            )
        } else if path == "/v1/events" {
            // A write the core takes too long over (the edge's write deadline passes first).
            if seen.body.windows(10).any(|w| w == b"slow-write") {
                std::thread::sleep(std::time::Duration::from_secs(8));
            }
            (202, r#"{"accepted":1}"#.into())
        } else {
            let user = seen.header("x-edge-user").unwrap_or("");
            (
                200,
                serde_json::json!({"items": [], "for": user, "query": query}).to_string(),
            )
        };
        log.lock().unwrap().push(seen);
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        )
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests other than key-set fetches.
    fn api_requests(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path != "/jwks.json")
            .collect()
    }
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn token_fixture(name: &str) -> String {
    let tokens: serde_json::Value = serde_json::from_str(&fixture("tokens.json")).unwrap();
    tokens[name]
        .as_str()
        .unwrap_or_else(|| panic!("no token {name}"))
        .to_string()
}

#[test]
fn edge_authenticates_users_and_signs_for_them() {
    let tmp = std::env::temp_dir().join(format!("edge-workerd-auth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let origin = Origin::start();
    let jwks_url = format!("http://127.0.0.1:{}/jwks.json", origin.port);
    let (_edge, edge_port) = start_edge(
        origin.port,
        &tmp,
        // A short write deadline, so a slow write can be shown (the origin answers at once
        // otherwise).
        &[
            token_vars(Some(&jwks_url)),
            vec!["WRITE_TIMEOUT_MS:3000".to_string()],
        ]
        .concat(),
    );
    let alice = hs256_token("alice", 3600);
    let auth = bearer(&alice);
    let code = |r: &Reply| r.json()["code"].as_str().unwrap_or_default().to_string();

    // A valid token: personalised for its user, whom the forwarded request is signed for.
    // Identity headers a client sends are never passed on.
    let path = "/v1/recommendations?limit=3";
    let spoofing = [
        ("Authorization", auth.as_str()),
        ("X-Edge-User", "mallory"),
        ("X-Edge-Signature", "00"),
    ];
    let mine = request(edge_port, "GET", path, &spoofing, b"").unwrap();
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(mine.header("x-edge-cache"), "MISS");
    assert_eq!(mine.json()["for"], "alice");
    assert!(
        mine.header("x-cache-key").starts_with("rec:v1:ualice:"),
        "{}",
        mine.header("x-cache-key")
    );
    assert_eq!(mine.header("x-cache-tier"), "user-session");
    let forwarded = origin.api_requests().pop().expect("forwarded");
    assert!(forwarded.signed, "{forwarded:?}");
    assert_eq!(forwarded.query, "limit=3&user_id=alice");
    assert_eq!(forwarded.header("x-edge-user"), Some("alice"));
    assert_eq!(forwarded.header("authorization"), None);
    let hit = get_until_hit(edge_port, path, &alice);
    assert_eq!(hit.body, mine.body);

    // Anonymous reads are shared and signed for nobody.
    let anonymous = http(edge_port, "GET", "/v1/recommendations?limit=4", None).unwrap();
    assert_eq!(anonymous.status, 200, "{}", anonymous.body);
    assert_eq!(anonymous.json()["for"], "");
    assert_eq!(
        origin.api_requests().pop().unwrap().header("x-edge-user"),
        None
    );

    // Refused at the edge, never reaching the origin: A asking for B, anonymous personal
    // reads, bad tokens, anonymous events and catalogue writes.
    let before = origin.api_requests().len();
    let other = get_as(edge_port, "/v1/recommendations?user_id=bob", &alice);
    assert_eq!(
        (other.status, code(&other)),
        (403, "forbidden".into()),
        "{}",
        other.body
    );
    let nobody = http(edge_port, "GET", "/v1/recommendations?user_id=bob", None).unwrap();
    assert_eq!((nobody.status, code(&nobody)), (401, "unauthorized".into()));
    let expired = get_as(edge_port, path, &hs256_token("alice", -3600));
    assert_eq!(
        (expired.status, code(&expired)),
        (401, "unauthorized".into())
    );
    assert_eq!(expired.header("www-authenticate"), "Bearer");
    assert!(
        expired.json()["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{}",
        expired.body
    );
    let deleted = http(edge_port, "DELETE", "/v1/items/x", None).unwrap();
    assert_eq!(
        (deleted.status, code(&deleted)),
        (403, "forbidden".into()),
        "{}",
        deleted.body
    );
    let upsert = request(edge_port, "POST", "/v1/items", &[("x-api-key", "k")], b"{}").unwrap();
    assert_eq!(upsert.status, 403, "{}", upsert.body);
    let event = |user: &str| format!(r#"{{"user_id":"{user}","item_id":"tt1","action":"like"}}"#);
    let posted = http(edge_port, "POST", "/v1/events", Some(&event("alice"))).unwrap();
    assert_eq!((posted.status, code(&posted)), (401, "unauthorized".into()));
    let for_bob = request(
        edge_port,
        "POST",
        "/v1/events",
        &[("Authorization", &auth)],
        event("bob").as_bytes(),
    )
    .unwrap();
    assert_eq!((for_bob.status, code(&for_bob)), (403, "forbidden".into()));
    let huge = vec![b' '; 10 * 1024 * 1024 + 1];
    let too_big = request(
        edge_port,
        "POST",
        "/v1/events",
        &[("Authorization", &auth)],
        &huge,
    )
    .unwrap();
    assert_eq!(
        (too_big.status, code(&too_big)),
        (413, "payload_too_large".into())
    );
    assert_eq!(
        origin.api_requests().len(),
        before,
        "{:?}",
        &origin.api_requests()[before..]
    );

    // Her own events go through with the body the signature's digest covers.
    let body = format!("[{}]", event("alice"));
    let own = request(
        edge_port,
        "POST",
        "/v1/events",
        &[("Authorization", &auth)],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(own.status, 202, "{}", own.body);
    let forwarded = origin.api_requests().pop().unwrap();
    assert!(
        forwarded.signed && forwarded.body == body.as_bytes(),
        "{forwarded:?}"
    );
    assert_eq!(forwarded.header("x-edge-user"), Some("alice"));
    // Server-side ingestion: no token, an operator key the core checks, passed on as is.
    let ingest = request(
        edge_port,
        "POST",
        "/v1/events",
        &[
            ("X-Api-Key", "ops-key-1"),
            ("Content-Type", "application/x-ndjson"),
        ],
        format!("{}\n{}\n", event("bob"), event("carol")).as_bytes(),
    )
    .unwrap();
    assert_eq!(ingest.status, 202, "{}", ingest.body);
    let forwarded = origin.api_requests().pop().unwrap();
    assert!(forwarded.signed, "{forwarded:?}");
    assert_eq!(forwarded.header("x-api-key"), Some("ops-key-1"));
    assert_eq!(forwarded.header("x-edge-user"), None);
    assert_eq!(
        forwarded.header("content-type"),
        Some("application/x-ndjson")
    );
    // A write the core does not confirm within the write deadline: its outcome is unknown,
    // and the answer says so (not a read's "unavailable"), so the client retries it.
    let slow = r#"[{"user_id":"alice","item_id":"slow-write","action":"like","event_id":"e-1"}]"#;
    let unknown = request(
        edge_port,
        "POST",
        "/v1/events",
        &[("Authorization", &auth)],
        slow.as_bytes(),
    )
    .unwrap();
    assert_eq!(
        (unknown.status, code(&unknown)),
        (503, "write_outcome_unknown".into()),
        "{}",
        unknown.body
    );
    assert!(!unknown.header("retry-after").is_empty());

    // RS256 and ES256 from the published keys, checked by the runtime's WebCrypto.
    for name in ["rs256_alice", "es256_alice", "rs256_alice_array_aud"] {
        let r = get_as(
            edge_port,
            "/v1/recommendations?limit=2",
            &token_fixture(name),
        );
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        assert_eq!(r.json()["for"], "alice", "{name}");
    }
    for name in [
        "rs256_payload_swapped_to_bob",
        "rs256_signed_by_another_key",
        "rs256_unknown_kid",
        "rs256_expired",
        "es256_with_rsa_kid",
        "rs256_with_ec_kid",
        "hs256_keyed_with_rsa_public_pem",
        "hs256_keyed_with_oct_jwk",
        "alg_none",
    ] {
        let r = get_as(
            edge_port,
            "/v1/recommendations?limit=2",
            &token_fixture(name),
        );
        assert_eq!(
            (r.status, code(&r)),
            (401, "unauthorized".into()),
            "{name}: {}",
            r.body
        );
        assert_eq!(r.header("www-authenticate"), "Bearer", "{name}");
    }
    // One fetch of the keys: an unknown kid does not refetch within a minute of it.
    let fetches = origin
        .seen()
        .iter()
        .filter(|s| s.path == "/jwks.json")
        .count();
    assert_eq!(fetches, 1);
    assert!(
        origin.api_requests().iter().all(|s| s.signed),
        "{:?}",
        origin.api_requests()
    );
    let methods: Vec<String> = origin
        .api_requests()
        .iter()
        .map(|s| s.method.clone())
        .collect();
    assert!(!methods.contains(&"DELETE".to_string()), "{methods:?}");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn edge_rate_limits_each_identity() {
    let tmp = std::env::temp_dir().join(format!("edge-workerd-limits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let origin = Origin::start();
    let mut vars = token_vars(None);
    // No rate-limiting binding under `wrangler dev` here: the worker's own counts apply.
    vars.push("RATE_LIMIT_PER_MINUTE:3".into());
    let (_edge, edge_port) = start_edge(origin.port, &tmp, &vars);
    // A minute's budget of 3 for alice, counted on cache hits too; the 4th is refused.
    let alice = hs256_token("alice", 3600);
    let path = "/v1/recommendations?limit=3";
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..4 {
        let r = get_as(edge_port, path, &alice);
        statuses.push(r.status);
        if r.status == 429 {
            refused = Some(r);
            break;
        }
    }
    // The window is a wall-clock minute: rarely one ends mid-test and grants 3 more.
    let refused = refused.unwrap_or_else(|| {
        (0..4)
            .map(|_| get_as(edge_port, path, &alice))
            .find(|r| r.status == 429)
            .expect("alice is refused once her budget is spent")
    });
    assert!(statuses.iter().take(3).all(|&s| s == 200), "{statuses:?}");
    assert_eq!(refused.json()["code"], "rate_limited", "{}", refused.body);
    let retry: u32 = refused.header("retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // Another identity has its own budget, and the health check is never limited.
    let bob = get_as(edge_port, path, &hs256_token("bob", 3600));
    assert_eq!(bob.status, 200, "{}", bob.body);
    for _ in 0..5 {
        let health = http(edge_port, "GET", "/healthz", None).unwrap();
        assert_eq!(health.status, 200);
    }
}
