//! HTTP load generator for the recommendation API, on keep-alive loopback connections.
//!
//! Open-loop when `--rate` is given: every request has a scheduled send time and its latency
//! is measured from that time, so a slow server cannot hide queueing delay (no coordinated
//! omission). Closed-loop (`--rate 0`): each connection sends as fast as answers come back.
//!
//! The request mix is realistic for the demo: personalised requests for users of the ratings
//! file, anonymous free-text intents, item pages (similar items), plain anonymous requests,
//! and interaction events interleaved.
//!
//! Personalised reads and events carry the user's token (`reco_benches::bench_bearer`), as
//! the edge requires; the core, run without secrets, ignores it.
//!
//! Through the edge, `--hot-percent 85 --hot-keys 200` sends 85% of the reads from a fixed set
//! of 200 requests (the popular pages an edge cache answers) and the rest fresh; answers are
//! split by their `x-edge-cache` header (HIT, MISS, STALE, ...) with latencies per kind.
//!
//! usage: loadgen [--addr 127.0.0.1:8080] [--rate 500] [--duration 20] [--connections 32]
//!                [--data data/movietweetings/snapshot-20k] [--events-percent 5]
//!                [--hot-percent 0 --hot-keys 200] [--json]

use std::time::{Duration, Instant};

use reco_benches::{bench_bearer, percentile, Rng};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const INTENTS: &[&str] = &[
    "something funny for a rainy evening",
    "space adventure among the stars",
    "a romantic love story",
    "scary movie for halloween",
    "true story documentary",
    "animated film for kids",
    "crime thriller with a twist",
    "epic war drama",
];

struct Args {
    addr: String,
    rate: f64,
    duration: Duration,
    connections: usize,
    data: String,
    events_percent: usize,
    hot_percent: usize,
    hot_keys: usize,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        addr: "127.0.0.1:8080".into(),
        rate: 500.0,
        duration: Duration::from_secs(20),
        connections: 32,
        data: "data/movietweetings/snapshot-20k".into(),
        events_percent: 5,
        hot_percent: 0,
        hot_keys: 200,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = value()?,
            "--rate" => a.rate = value()?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--duration" => {
                a.duration = Duration::from_secs_f64(
                    value()?.parse().map_err(|e| format!("--duration: {e}"))?,
                )
            }
            "--connections" => {
                a.connections = value()?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?
            }
            "--data" => a.data = value()?,
            "--events-percent" => {
                a.events_percent = value()?
                    .parse()
                    .map_err(|e| format!("--events-percent: {e}"))?
            }
            "--hot-percent" => {
                a.hot_percent = value()?
                    .parse()
                    .map_err(|e| format!("--hot-percent: {e}"))?
            }
            "--hot-keys" => {
                a.hot_keys = value()?.parse().map_err(|e| format!("--hot-keys: {e}"))?
            }
            "--json" => a.json = true,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

/// A read: its path and the `Authorization` value it is sent with, if any.
type Read = (String, Option<String>);

/// What to send, chosen per request from the mix.
enum Request {
    Get(Read),
    /// Path, body and `Authorization` value.
    Post(String, String, String),
}

struct Workload {
    users: Vec<String>,
    /// `Authorization` values of `users`, by index.
    bearers: Vec<String>,
    items: Vec<String>,
    events_percent: usize,
    hot_percent: usize,
    /// The same reads for every connection: what an edge cache keeps answering.
    hot: Vec<Read>,
}

impl Workload {
    fn load(dir: &str) -> Result<Self, String> {
        let read = |f: &str| {
            std::fs::read_to_string(format!("{dir}/{f}")).map_err(|e| format!("{dir}/{f}: {e}"))
        };
        let mut users: Vec<String> = read("ratings.dat")?
            .lines()
            .filter_map(|l| l.split("::").next())
            .map(String::from)
            .collect();
        users.dedup();
        let items = read("movies.dat")?
            .lines()
            .filter_map(|l| l.split("::").next()?.parse::<u64>().ok())
            .map(|id| format!("tt{id:07}"))
            .collect();
        let bearers = users.iter().map(|u| bench_bearer(u)).collect();
        Ok(Self {
            users,
            bearers,
            items,
            events_percent: 0,
            hot_percent: 0,
            hot: Vec::new(),
        })
    }

    /// Fixes the hot set: `n` reads of the usual mix, drawn with a seed of their own.
    fn with_hot_set(mut self, percent: usize, n: usize) -> Self {
        let mut rng = Rng::new(0x5eed);
        self.hot = (0..n.max(1)).map(|_| self.read(&mut rng)).collect();
        self.hot_percent = percent;
        self
    }

    fn pick(&self, rng: &mut Rng) -> Request {
        let roll = rng.below(100);
        let u = rng.below(self.users.len());
        let user = &self.users[u];
        if roll < self.events_percent {
            let item = &self.items[rng.below(self.items.len())];
            let action = ["view", "complete", "like", "skip"][rng.below(4)];
            return Request::Post(
                "/v1/events".into(),
                format!(r#"{{"user_id":"{user}","item_id":"{item}","action":"{action}"}}"#),
                self.bearers[u].clone(),
            );
        }
        if rng.below(100) < self.hot_percent {
            return Request::Get(self.hot[rng.below(self.hot.len())].clone());
        }
        Request::Get(self.read(rng))
    }

    /// One read of the mix.
    fn read(&self, rng: &mut Rng) -> Read {
        let u = rng.below(self.users.len());
        let path = match rng.below(100) {
            0..=59 => {
                let user = &self.users[u];
                let path = format!("/v1/recommendations?user_id={user}&limit=10");
                return (path, Some(self.bearers[u].clone()));
            }
            60..=79 => format!(
                "/v1/recommendations?q={}&limit=10",
                INTENTS[rng.below(INTENTS.len())].replace(' ', "%20")
            ),
            80..=89 => format!(
                "/v1/similar/{}?limit=10",
                self.items[rng.below(self.items.len())]
            ),
            _ => "/v1/recommendations?limit=10".into(),
        };
        (path, None)
    }
}

/// An answer: its status and the edge's `x-edge-cache` verdict, if any.
struct Answer {
    status: u16,
    edge_cache: Option<String>,
}

/// Sends one request on a keep-alive connection and reads the whole response.
async fn exchange(stream: &mut BufReader<TcpStream>, req: &Request) -> std::io::Result<Answer> {
    let head = match req {
        Request::Get((path, None)) => format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n"),
        Request::Get((path, Some(auth))) => {
            format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: {auth}\r\n\r\n")
        }
        Request::Post(path, body, auth) => format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    };
    stream.get_mut().write_all(head.as_bytes()).await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status: u16 = line.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut length = 0usize;
    let mut edge_cache = None;
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("x-edge-cache") {
                edge_cache = Some(v.trim().to_string());
            }
        }
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    Ok(Answer { status, edge_cache })
}

#[derive(Default)]
struct ConnectionResult {
    latencies_ms: Vec<f64>,
    /// Latencies by `x-edge-cache` verdict (`none` when no edge answered).
    by_cache: std::collections::BTreeMap<String, Vec<f64>>,
    errors: usize,
}

async fn run_connection(
    args: &Args,
    workload: &Workload,
    index: usize,
    start: Instant,
) -> Result<ConnectionResult, String> {
    let stream = TcpStream::connect(&args.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", args.addr))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut stream = BufReader::new(stream);
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ index as u64);
    let mut result = ConnectionResult::default();
    // Open loop: this connection's share of the rate, evenly spaced and staggered.
    let interval =
        (args.rate > 0.0).then(|| Duration::from_secs_f64(args.connections as f64 / args.rate));
    let mut k = 0u32;
    loop {
        let scheduled = match interval {
            Some(iv) => start + iv.mul_f64(f64::from(k) + index as f64 / args.connections as f64),
            None => Instant::now(),
        };
        if scheduled >= start + args.duration {
            break;
        }
        tokio::time::sleep_until(scheduled.into()).await;
        let req = workload.pick(&mut rng);
        match exchange(&mut stream, &req).await {
            Ok(answer) if (200..300).contains(&answer.status) => {
                let ms = scheduled.elapsed().as_secs_f64() * 1e3;
                result.latencies_ms.push(ms);
                result
                    .by_cache
                    .entry(answer.edge_cache.unwrap_or_else(|| "none".into()))
                    .or_default()
                    .push(ms);
            }
            Ok(_) => result.errors += 1,
            Err(e) => return Err(format!("connection {index}: {e}")),
        }
        k += 1;
    }
    Ok(result)
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let mut workload: Workload = Workload::load(&args.data).unwrap_or_else(|e| {
        eprintln!("loadgen: {e}");
        std::process::exit(2);
    });
    workload.events_percent = args.events_percent;
    let workload = workload.with_hot_set(args.hot_percent, args.hot_keys);
    let args = Box::leak(Box::new(args));
    let workload = Box::leak(Box::new(workload));
    let start = Instant::now() + Duration::from_millis(200);
    let tasks: Vec<_> = (0..args.connections)
        .map(|i| tokio::spawn(run_connection(args, workload, i, start)))
        .collect();
    let mut latencies = Vec::new();
    let mut by_cache: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut errors = 0;
    for t in tasks {
        match t.await.expect("connection task") {
            Ok(r) => {
                latencies.extend(r.latencies_ms);
                for (verdict, l) in r.by_cache {
                    by_cache.entry(verdict).or_default().extend(l);
                }
                errors += r.errors;
            }
            Err(e) => {
                eprintln!("loadgen: {e}");
                std::process::exit(1);
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let summary = serde_json::json!({
        "mode": if args.rate > 0.0 { "open-loop" } else { "closed-loop" },
        "target_rate": args.rate,
        "connections": args.connections,
        "requests": latencies.len(),
        "errors": errors,
        "throughput_rps": latencies.len() as f64 / elapsed,
        "p50_ms": percentile(&latencies, 50.0),
        "p95_ms": percentile(&latencies, 95.0),
        "p99_ms": percentile(&latencies, 99.0),
        "max_ms": latencies.last().copied().unwrap_or(f64::NAN),
        "hot_percent": args.hot_percent,
        "by_edge_cache": by_cache
            .iter_mut()
            .map(|(verdict, l)| {
                l.sort_by(f64::total_cmp);
                (verdict.clone(), serde_json::json!({
                    "requests": l.len(),
                    "p50_ms": percentile(l, 50.0),
                    "p99_ms": percentile(l, 99.0),
                }))
            })
            .collect::<serde_json::Map<_, _>>(),
    });
    if args.json {
        println!("{summary}");
    } else {
        println!("{}", serde_json::to_string_pretty(&summary).expect("json"));
    }
}
