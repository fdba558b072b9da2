//! Edge latency: HIT versus MISS through the edge worker (local workerd), with the core
//! answered directly as the reference for what a MISS costs beyond the core itself.
//! Personalised requests carry an end-user token (HS256, see `reco_benches::bench_bearer`),
//! as they must through the edge; anonymous HITs (no token to verify) are timed too.
//!
//! One keep-alive connection per phase, one request at a time, so each figure is a clean
//! per-request latency. Every response's `x-edge-cache` is checked against the phase. The
//! worker's `/healthz` (no cache, no core) gives the runtime's own floor; with `--cache-floor`
//! (a bare JavaScript worker in the same local runtime, see `benches/edge/serve-miniflare.mjs`)
//! the same HIT working set is also read from the Cache API with none of our code: the local
//! runtime's price for a cache hit.
//!
//! usage: edge_latency --edge 127.0.0.1:8787 --core 127.0.0.1:8080 [--requests 400]
//!                     [--cache-floor 127.0.0.1:8789]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reco_benches::{bench_bearer, percentile};

struct Conn(BufReader<TcpStream>);

impl Conn {
    fn open(addr: &str) -> Self {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Self(BufReader::new(s))
    }

    /// GET on the keep-alive connection, with an `Authorization` value if given:
    /// (status, x-edge-cache).
    fn get(&mut self, path: &str, authorization: Option<&str>) -> (u16, String) {
        let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
        write!(
            self.0.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: bench\r\n{auth}\r\n"
        )
        .unwrap();
        let mut line = String::new();
        self.0.read_line(&mut line).unwrap();
        let status = line.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let (mut length, mut chunked, mut cache) = (0usize, false, String::new());
        loop {
            line.clear();
            assert!(
                self.0.read_line(&mut line).unwrap() > 0,
                "connection closed"
            );
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let v = v.trim();
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => length = v.parse().unwrap_or(0),
                    "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                    "x-edge-cache" => cache = v.to_string(),
                    _ => {}
                }
            }
        }
        if chunked {
            loop {
                line.clear();
                self.0.read_line(&mut line).unwrap();
                let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0u8; n + 2];
                self.0.read_exact(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
            }
        } else {
            let mut body = vec![0u8; length];
            self.0.read_exact(&mut body).unwrap();
        }
        (status, cache)
    }
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// A path and the `Authorization` value it is sent with, if any.
type Get = (String, Option<String>);

/// A personalised read as `user` would send it through the edge: with their token.
fn personal(user: &str) -> Get {
    (
        format!("/v1/recommendations?user_id={user}&limit=10"),
        Some(bench_bearer(user)),
    )
}

fn anonymous(path: String) -> Get {
    (path, None)
}

/// Times `gets` one by one, asserting each answer's status and edge cache state.
fn phase(addr: &str, gets: &[Get], expect_cache: &str) -> serde_json::Value {
    let mut conn = Conn::open(addr);
    let mut ms = Vec::with_capacity(gets.len());
    for (path, auth) in gets {
        let t = Instant::now();
        let (status, cache) = conn.get(path, auth.as_deref());
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(status, 200, "{addr}{path}");
        assert_eq!(cache, expect_cache, "{addr}{path}");
    }
    ms.sort_by(f64::total_cmp);
    serde_json::json!({
        "requests": ms.len(),
        "p50_ms": percentile(&ms, 50.0),
        "p99_ms": percentile(&ms, 99.0),
        "max_ms": ms.last().copied().unwrap_or(f64::NAN),
    })
}

fn main() {
    let edge = arg("--edge", "127.0.0.1:8787");
    let core = arg("--core", "127.0.0.1:8080");
    let n: usize = arg("--requests", "400").parse().expect("--requests");
    let run = std::process::id();
    // Cold users: every request is a distinct key, so every edge answer is a MISS.
    let misses: Vec<Get> = (0..n)
        .map(|i| personal(&format!("bench{run}m{i}")))
        .collect();
    // The core needs no token (it trusts its callers when run without secrets).
    let direct: Vec<Get> = (0..n)
        .map(|i| {
            anonymous(format!(
                "/v1/recommendations?user_id=bench{run}d{i}&limit=10"
            ))
        })
        .collect();
    // Working sets of 50 keys, stored once, then read repeatedly: personalised (a token to
    // verify on every read) and anonymous (hour-long zeitgeist keys, no token).
    let hot: Vec<Get> = (0..50)
        .map(|i| personal(&format!("bench{run}h{i}")))
        .collect();
    let hot_anonymous: Vec<Get> = (0..50)
        .map(|i| anonymous(format!("/v1/recommendations?q=bench{run}a{i}&limit=10")))
        .collect();
    phase(&edge, &hot, "MISS");
    phase(&edge, &hot_anonymous, "MISS");
    std::thread::sleep(Duration::from_millis(500)); // the cache writes run after the answers
    let hits: Vec<Get> = (0..n).map(|i| hot[i % hot.len()].clone()).collect();
    let hits_anonymous: Vec<Get> = (0..n)
        .map(|i| hot_anonymous[i % hot_anonymous.len()].clone())
        .collect();

    // The worker's own liveness route: no cache, no core, so the floor of any edge answer.
    let floor: Vec<Get> = (0..n).map(|_| anonymous("/healthz".into())).collect();

    let core_direct = phase(&core, &direct, "");
    let edge_floor = phase(&edge, &floor, "");
    let miss = phase(&edge, &misses, "MISS");
    let hit = phase(&edge, &hits, "HIT");
    let hit_anonymous = phase(&edge, &hits_anonymous, "HIT");
    let mut out = serde_json::json!({
        "hit": hit,
        "hit_anonymous": hit_anonymous,
        "miss": miss,
        "edge_floor": edge_floor,
        "core_direct": core_direct,
    });
    let cache_floor = arg("--cache-floor", "");
    if !cache_floor.is_empty() {
        let keys: Vec<Get> = (0..50)
            .map(|i| anonymous(format!("/floor/{run}/{i}")))
            .collect();
        phase(&cache_floor, &keys, "MISS");
        std::thread::sleep(Duration::from_millis(500));
        let reads: Vec<Get> = (0..n).map(|i| keys[i % keys.len()].clone()).collect();
        out["bare_cache_hit"] = phase(&cache_floor, &reads, "HIT");
    }
    println!("{out}");
}
