//! The client side of the fault soak (`benches/soak.sh`): steady load on the routers of a
//! cluster while components are killed, then a read-back of every acknowledged write.
//!
//! 1. Seeds a catalogue (`--seed-items` items with their own vectors, so no embedding runs).
//! 2. For `--duration` seconds: readers ask for recommendations and similar items; a writer
//!    sends batches of events, each with its own `event_id`, and another upserts one new item
//!    a second. A write that fails (no answer, a 5xx) is retried with the same ids on the
//!    other router, as a client behind the edge would, until it is acknowledged or a minute
//!    has passed.
//! 3. Reads back every user's events and every acknowledged item, on both routers.
//!
//! Every request goes to `OUT/requests.csv` (ms since start, kind, router, status, latency;
//! status 0 is a refused or broken connection) and the totals to `OUT/summary.json`.
//!
//! usage: soak --routers A,B --duration 600 --out DIR [--seed-items 300] [--users 40]

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reco_benches::{bench_bearer, clustered_vectors, Rng};
use serde_json::{json, Value};
use test_support::http::{request, Reply};

const DIM: usize = 384;
const GENRES: &[&str] = &["Drama", "Comedy", "Sci-Fi", "Horror", "Family", "Romance"];
/// How long a write is retried before it is given up (and counted as not acknowledged).
const WRITE_PATIENCE: Duration = Duration::from_secs(60);

struct Args {
    routers: Vec<SocketAddr>,
    duration: Duration,
    out: std::path::PathBuf,
    seed_items: usize,
    users: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        routers: Vec::new(),
        duration: Duration::from_secs(600),
        out: "soak-out".into(),
        seed_items: 300,
        users: 40,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--routers" => {
                a.routers = value
                    .split(',')
                    .map(|r| r.trim().parse().map_err(|e| format!("--routers {r}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--duration" => {
                a.duration =
                    Duration::from_secs(value.parse().map_err(|e| format!("--duration: {e}"))?)
            }
            "--out" => a.out = value.into(),
            "--seed-items" => {
                a.seed_items = value.parse().map_err(|e| format!("--seed-items: {e}"))?
            }
            "--users" => a.users = value.parse().map_err(|e| format!("--users: {e}"))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.routers.is_empty() || a.seed_items == 0 || a.users == 0 {
        return Err("--routers, --seed-items and --users are required and positive".into());
    }
    Ok(a)
}

/// One line per request, shared by every thread.
struct Log {
    started: Instant,
    csv: Mutex<std::io::BufWriter<std::fs::File>>,
    /// 5xx answers that are not a 503 with a JSON `{code, message}` body.
    bad_5xx: AtomicU64,
    client_errors: AtomicU64,
}

impl Log {
    fn record(&self, kind: &str, router: usize, status: u16, took: Duration) {
        let at = self.started.elapsed().as_millis();
        let ms = took.as_secs_f64() * 1000.0;
        let mut csv = self.csv.lock().expect("log lock");
        let _ = writeln!(csv, "{at},{kind},{router},{status},{ms:.2}");
    }
}

/// Whether a 5xx answer is the documented kind: 503 with a JSON error body.
fn proper_unavailable(reply: &Reply) -> bool {
    reply.status == 503
        && serde_json::from_str::<Value>(&reply.body)
            .is_ok_and(|b| b["code"].is_string() && b["message"].is_string())
}

struct Client {
    routers: Vec<SocketAddr>,
    log: Arc<Log>,
}

impl Client {
    /// One request to router `r`, logged; `None` when the connection failed.
    fn send(
        &self,
        kind: &str,
        r: usize,
        method: &str,
        target: &str,
        bearer: Option<&str>,
        body: &str,
    ) -> Option<Reply> {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(b) = bearer {
            headers.push(("authorization", b));
        }
        let at = Instant::now();
        let reply = request(self.routers[r], method, target, &headers, body.as_bytes()).ok();
        let status = reply.as_ref().map_or(0, |r| r.status);
        self.log.record(kind, r, status, at.elapsed());
        if let Some(reply) = &reply {
            if reply.status >= 500 && !proper_unavailable(reply) {
                self.log.bad_5xx.fetch_add(1, Ordering::Relaxed);
                eprintln!("soak: {kind} got {}: {}", reply.status, reply.body);
            } else if (400..500).contains(&reply.status) && !matches!(kind, "seed" | "readback") {
                // The seed phase and the read-back poll for items until they appear (404s
                // there are expected); during the load no request may be refused.
                self.log.client_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("soak: {kind} got {}: {}", reply.status, reply.body);
            }
        }
        reply
    }

    /// A write sent until a router acknowledges it (2xx), alternating routers after a
    /// failure; `None` when it is given up.
    fn write(&self, kind: &str, target: &str, bearer: Option<&str>, body: &str) -> Option<Reply> {
        let start = Instant::now();
        let mut r = self.log.started.elapsed().as_millis() as usize % self.routers.len();
        loop {
            match self.send(kind, r, "POST", target, bearer, body) {
                Some(reply) if (200..300).contains(&reply.status) => return Some(reply),
                // A refused write (4xx) is not retried: the same bytes would be refused again.
                Some(reply) if (400..500).contains(&reply.status) => return None,
                _ => {}
            }
            if start.elapsed() > WRITE_PATIENCE {
                return None;
            }
            r = (r + 1) % self.routers.len();
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A read retried on either router until it answers 200 (read-back after the run).
    fn read_back(&self, target: &str, bearer: Option<&str>) -> Result<Value, String> {
        let mut last = String::new();
        for attempt in 0..60 {
            let r = attempt % self.routers.len();
            match self.send("readback", r, "GET", target, bearer, "") {
                Some(reply) if reply.status == 200 => {
                    return serde_json::from_str(&reply.body).map_err(|e| e.to_string())
                }
                Some(reply) if reply.status == 404 => return Err("404".into()),
                Some(reply) => last = format!("{}: {}", reply.status, reply.body),
                None => last = "no connection".into(),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(last)
    }
}

fn item_json(id: &str, i: usize, vector: &[f32]) -> Value {
    json!({
        "id": id,
        "title": format!("Soak film {i}"),
        "genres": [GENRES[i % GENRES.len()], GENRES[(i / 6) % GENRES.len()]],
        "year": 1980 + (i % 40) as u16,
        "quality": (i % 10) as f32 / 10.0,
        "embedding": vector,
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An acknowledged event, as the read-back finds it.
type EventKey = (String, String, i64);

fn main() -> Result<(), String> {
    let args = parse_args()?;
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    let csv = std::fs::File::create(args.out.join("requests.csv")).map_err(|e| e.to_string())?;
    let log = Arc::new(Log {
        started: Instant::now(),
        csv: Mutex::new(std::io::BufWriter::new(csv)),
        bad_5xx: AtomicU64::new(0),
        client_errors: AtomicU64::new(0),
    });
    let client = Arc::new(Client {
        routers: args.routers.clone(),
        log: log.clone(),
    });
    let run = format!("{:x}", unix_now());

    // 1. The seed catalogue, in batches small enough to be stored within the request.
    let vectors = clustered_vectors(args.seed_items + 100_000, DIM, 12, 7);
    let vector = |i: usize| &vectors[i * DIM..(i + 1) * DIM];
    let seed_ids: Vec<String> = (0..args.seed_items)
        .map(|i| format!("soak-{run}-seed-{i:05}"))
        .collect();
    for (c, chunk) in seed_ids.chunks(50).enumerate() {
        let batch: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(j, id)| item_json(id, c * 50 + j, vector(c * 50 + j)))
            .collect();
        client
            .write("seed", "/v1/items", None, &Value::from(batch).to_string())
            .ok_or("the seed catalogue was not stored")?;
    }
    for r in 0..args.routers.len() {
        let last = format!("/v1/items/{}", seed_ids.last().expect("seeded"));
        let until = Instant::now() + Duration::from_secs(60);
        while client
            .send("seed", r, "GET", &last, None, "")
            .is_none_or(|reply| reply.status != 200)
        {
            if Instant::now() > until {
                return Err(format!("router {r} never saw the seed catalogue"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    eprintln!(
        "soak: seeded {} items; load for {:?}",
        seed_ids.len(),
        args.duration
    );

    // 2. The load.
    let users: Vec<(String, String)> = (0..args.users)
        .map(|u| {
            let id = format!("soak-{run}-user-{u:03}");
            let bearer = bench_bearer(&id);
            (id, bearer)
        })
        .collect();
    let users = Arc::new(users);
    let seed_ids = Arc::new(seed_ids);
    let stop = Arc::new(AtomicBool::new(false));
    let acked_events: Arc<Mutex<Vec<EventKey>>> = Arc::default();
    let acked_items: Arc<Mutex<Vec<String>>> = Arc::default();
    let given_up = Arc::new(AtomicU64::new(0));
    let duplicates_reported = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for reader in 0..2u64 {
        let (client, users, seeds, stop) = (
            client.clone(),
            users.clone(),
            seed_ids.clone(),
            stop.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut rng = Rng::new(11 + reader);
            while !stop.load(Ordering::Relaxed) {
                let r = rng.below(client.routers.len());
                let (user, bearer) = &users[rng.below(users.len())];
                if rng.below(3) == 0 {
                    let item = &seeds[rng.below(seeds.len())];
                    let target = format!("/v1/similar/{item}?limit=10");
                    client.send("similar", r, "GET", &target, None, "");
                } else {
                    let target = format!("/v1/recommendations?user_id={user}&limit=10");
                    client.send("recommend", r, "GET", &target, Some(bearer), "");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }
    {
        let (client, users, seeds, stop) = (
            client.clone(),
            users.clone(),
            seed_ids.clone(),
            stop.clone(),
        );
        let (acked, given_up, dups) = (
            acked_events.clone(),
            given_up.clone(),
            duplicates_reported.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut seq = 0usize;
            let actions = ["view", "like", "complete", "skip"];
            while !stop.load(Ordering::Relaxed) {
                // One user's batch of three events, each with its own id.
                let u = seq / 3 % users.len();
                let (user, bearer) = &users[u];
                let ts = unix_now();
                let events: Vec<(Value, EventKey)> = (0..3)
                    .map(|k| {
                        let n = seq + k;
                        let item = &seeds[(n * 7919) % seeds.len()];
                        let event = json!({
                            "user_id": user, "item_id": item, "action": actions[n % 4],
                            "timestamp": ts, "event_id": format!("ev-{n}"),
                        });
                        (event, (user.clone(), item.clone(), ts))
                    })
                    .collect();
                seq += 3;
                let body = Value::from(events.iter().map(|e| e.0.clone()).collect::<Vec<_>>());
                match client.write("events", "/v1/events", Some(bearer), &body.to_string()) {
                    Some(reply) => {
                        let answer: Value = serde_json::from_str(&reply.body).unwrap_or_default();
                        dups.fetch_add(
                            answer["duplicates"].as_u64().unwrap_or(0),
                            Ordering::Relaxed,
                        );
                        acked
                            .lock()
                            .expect("acked lock")
                            .extend(events.into_iter().map(|e| e.1));
                    }
                    None => {
                        given_up.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(150));
            }
        }));
    }
    {
        let (client, stop, acked, given_up) = (
            client.clone(),
            stop.clone(),
            acked_items.clone(),
            given_up.clone(),
        );
        let (first, run) = (args.seed_items, run.clone());
        threads.push(std::thread::spawn(move || {
            let mut i = first;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("soak-{run}-item-{i:06}");
                let body = Value::from(vec![item_json(&id, i, &vectors[i * DIM..(i + 1) * DIM])]);
                match client.write("items", "/v1/items", None, &body.to_string()) {
                    Some(_) => acked.lock().expect("acked lock").push(id),
                    None => {
                        given_up.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(1000));
            }
        }));
    }
    std::thread::sleep(args.duration);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().map_err(|_| "a load thread panicked")?;
    }
    let load_ended_ms = log.started.elapsed().as_millis() as u64;
    eprintln!("soak: load done; reading back");

    // 3. Read-back: every acknowledged event exactly once, every acknowledged item present.
    std::thread::sleep(Duration::from_secs(2));
    let acked_events = acked_events.lock().expect("acked lock").clone();
    let mut found: HashMap<EventKey, usize> = HashMap::new();
    let mut unread_users = 0;
    for (user, bearer) in users.iter() {
        match client.read_back(&format!("/v1/users/{user}/events"), Some(bearer)) {
            Ok(body) => {
                for e in body["events"].as_array().into_iter().flatten() {
                    let key = (
                        user.clone(),
                        e["item_id"].as_str().unwrap_or_default().to_string(),
                        e["timestamp"].as_i64().unwrap_or_default(),
                    );
                    *found.entry(key).or_default() += 1;
                }
            }
            Err(e) => {
                eprintln!("soak: events of {user} not read back: {e}");
                unread_users += 1;
            }
        }
    }
    let events_lost = acked_events
        .iter()
        .filter(|k| !found.contains_key(*k))
        .count();
    let acked_set: std::collections::HashSet<&EventKey> = acked_events.iter().collect();
    let stored_unacknowledged = found.keys().filter(|k| !acked_set.contains(k)).count();
    let events_duplicated: usize = found.values().map(|n| n.saturating_sub(1)).sum();
    let acked_items = acked_items.lock().expect("acked lock").clone();
    let mut items_lost = Vec::new();
    for id in &acked_items {
        for r in 0..client.routers.len() {
            let seen = client
                .send("readback", r, "GET", &format!("/v1/items/{id}"), None, "")
                .is_some_and(|reply| reply.status == 200);
            if !seen {
                items_lost.push(format!("{id} on router {r}"));
            }
        }
    }
    let summary = json!({
        "run": run,
        "duration_s": args.duration.as_secs(),
        "load_ended_ms": load_ended_ms,
        "events_acknowledged": acked_events.len(),
        "events_lost": events_lost,
        "events_duplicated": events_duplicated,
        "events_stored_unacknowledged": stored_unacknowledged,
        "duplicates_reported_on_retry": duplicates_reported.load(Ordering::Relaxed),
        "users_not_read_back": unread_users,
        "items_acknowledged": acked_items.len(),
        "items_lost": items_lost,
        "writes_given_up": given_up.load(Ordering::Relaxed),
        "bad_5xx": log.bad_5xx.load(Ordering::Relaxed),
        "client_errors": log.client_errors.load(Ordering::Relaxed),
    });
    log.csv
        .lock()
        .expect("log lock")
        .flush()
        .map_err(|e| e.to_string())?;
    std::fs::write(
        args.out.join("summary.json"),
        serde_json::to_string_pretty(&summary).expect("json"),
    )
    .map_err(|e| e.to_string())?;
    println!("{summary}");
    Ok(())
}
