//! A real cluster on loopback: three shard-node processes and routers (each its own
//! `core-api` on its own 127.0.0.x address) over a real CQL server, checked against a
//! single-node process on the same items. Nodes are SIGKILLed and restarted while the
//! router serves. Needs `SEMREC_TEST_CQL` (which `scripts/test.sh` starts).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use core_api::cluster::rpc::RpcClient;
use hyper::Method;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use vector_index::shard_of;

const SHARDS: usize = 4;
const DIM: usize = 384;
const TIMEOUT: Duration = Duration::from_secs(60);

/// The CQL server of the run, or `None` (the test is skipped) when none is configured.
fn cql_server() -> Option<String> {
    test_support::servers::test_server("SEMREC_TEST_CQL")
}

/// A keyspace of its own for each test cluster (the catalogue's shard count is per keyspace).
fn keyspace(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

fn scylla_config(nodes: &str, keyspace: &str) -> core_api::config::ScyllaConfig {
    core_api::config::ScyllaConfig {
        nodes: nodes.to_string(),
        keyspace: keyspace.to_string(),
        replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
        consistency: core_api::config::Consistency::One,
        timeout_ms: 10_000,
        ..Default::default()
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_addr(ip: &str) -> String {
    let listener = TcpListener::bind(format!("{ip}:0")).unwrap();
    listener.local_addr().unwrap().to_string()
}

/// One `core-api` process with its config file, data directory and log.
struct Node {
    name: String,
    public: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn new(dir: &Path, name: &str, ip: &str, role_toml: String) -> Self {
        let public = free_addr(ip);
        let data = dir.join(name);
        let config = dir.join(format!("{name}.toml"));
        let toml = format!(
            r#"
[server]
bind = "{public}"
request_timeout_ms = 60000
[storage]
data_dir = "{data}"
[model]
dir = "{model}"
[demo]
load_if_empty = false
[index]
shards = {SHARDS}
rebuild_threshold = 100000
[policy]
epsilon = 0.0
save_every = 1
sync_secs = 1
{role_toml}
"#,
            data = data.display(),
            model = repo_root().join(gpu_batch::DEFAULT_MODEL_DIR).display(),
        );
        std::fs::write(&config, toml).unwrap();
        let mut node = Self {
            name: name.into(),
            public,
            log: dir.join(format!("{name}.log")),
            config,
            child: None,
        };
        node.start();
        node
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_core-api"))
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown path runs.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Client(RpcClient);

impl Client {
    async fn call(
        &self,
        method: Method,
        node: &Node,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let body = body.map_or_else(Default::default, |b| b.to_string().into());
        let bytes = self
            .0
            .call(
                method,
                &node.public,
                path,
                body,
                "application/json",
                TIMEOUT,
            )
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }

    async fn get(&self, node: &Node, path: &str) -> Value {
        self.call(Method::GET, node, path, None)
            .await
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e}\n{}", node.name, node.log_tail()))
    }

    async fn post(&self, node: &Node, path: &str, body: Value) -> Result<Value, String> {
        self.call(Method::POST, node, path, Some(body)).await
    }

    /// Live items a shard node holds, over its shards.
    async fn items_held(&self, node: &Node) -> u64 {
        let ready = self.get(node, "/readyz").await;
        ready["items"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum()
    }

    async fn metrics(&self, node: &Node) -> String {
        let bytes = self
            .0
            .call(
                Method::GET,
                &node.public,
                "/metrics",
                Default::default(),
                "text/plain",
                TIMEOUT,
            )
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// Polls `/readyz` until `ready(body)` holds.
    async fn wait(&self, node: &Node, what: &str, ready: impl Fn(&Value) -> bool) {
        self.wait_for(node, "/readyz", what, ready).await
    }

    /// Polls `path` until `ready(body)` holds.
    async fn wait_for(&self, node: &Node, path: &str, what: &str, ready: impl Fn(&Value) -> bool) {
        let started = Instant::now();
        loop {
            if let Ok(body) = self.call(Method::GET, node, path, None).await {
                if ready(&body) {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{}: {what} not reached\n{}",
                node.name,
                node.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Items around 12 topics with seeded unit vectors.
fn items(n: usize, seed: u64, prefix: &str) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..12)
        .map(|_| (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect())
        .collect();
    let genres = ["Drama", "Comedy", "Sci-Fi", "Horror", "Family", "Romance"];
    (0..n)
        .map(|i| {
            let centre = &centres[i % centres.len()];
            let mut v: Vec<f32> = centre
                .iter()
                .map(|c| c + rng.gen_range(-0.6f32..0.6))
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            json!({
                "id": format!("{prefix}{i:04}"),
                "title": format!("Film {prefix}{i}"),
                "genres": [genres[i % genres.len()], genres[(i / 6) % genres.len()]],
                "year": 1990 + (i % 30) as u16,
                "quality": (i % 10) as f32 / 10.0,
                "embedding": v,
            })
        })
        .collect()
}

/// The ids answered for `path`, with the answer's partial flag and missing shards.
async fn answer(client: &Client, node: &Node, path: &str) -> (Vec<String>, bool, Vec<u64>) {
    let body = client.get(node, path).await;
    let ids = body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{path} on {}: {body}", node.name))
        .iter()
        .map(|i| i["item"]["id"].as_str().unwrap().to_string())
        .collect();
    let missing = body["missing_shards"]
        .as_array()
        .map(|m| m.iter().map(|s| s.as_u64().unwrap()).collect())
        .unwrap_or_default();
    (ids, body["partial"] == true, missing)
}

const PROBES: &[&str] = &["c0003", "c0017", "c0042", "c0101", "c0150", "c0199"];

/// Every probe answers the same on the router as on the single node, complete.
async fn assert_same_as_single(client: &Client, router: &Node, single: &Node, when: &str) {
    for probe in PROBES {
        let path = format!("/v1/similar/{probe}?limit=10");
        let (expected, _, _) = answer(client, single, &path).await;
        let (got, partial, missing) = answer(client, router, &path).await;
        assert!(
            !partial && missing.is_empty(),
            "{when}: {path} partial {missing:?}"
        );
        assert_eq!(got, expected, "{when}: {path} differs from the single node");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_matches_a_single_node_and_survives_node_loss_with_state_in_scylla() {
    let Some(cql) = cql_server() else { return };
    let dir = std::env::temp_dir().join(format!("core-api-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let client = Client(RpcClient::new(CLUSTER_SECRET));

    // Shard nodes: A holds shards 0 and 1, B holds 2 and 3, C replicates all four.
    let internal: BTreeMap<&str, String> =
        [("a", "127.0.0.2"), ("b", "127.0.0.3"), ("c", "127.0.0.4")]
            .into_iter()
            .map(|(n, ip)| (n, free_addr(ip)))
            .collect();
    let nodes_list = format!("{:?}", internal.values().collect::<Vec<_>>());
    // Every internal call in this cluster is signed with the cluster secret; the catalogue
    // and the events live in the CQL server.
    let ks = keyspace("cluster");
    let timing = format!(
        "health_interval_ms = 200\nsync_interval_ms = 200\nshard_deadline_ms = 1500\nhedge_after_ms = 300\nsecret = \"{CLUSTER_SECRET}\"\n\
         [scylla]\nnodes = \"{cql}\"\nkeyspace = \"{ks}\"\nconsistency = \"one\"\ntimeout_ms = 10000\n\
         replication = \"{{'class': 'SimpleStrategy', 'replication_factor': 1}}\""
    );
    let shard_node = |name: &str, ip: &str, hosted: &str| {
        Node::new(
            &dir,
            name,
            ip,
            format!(
                "[cluster]\nrole = \"shard\"\nhosted_shards = {hosted}\ninternal_bind = \"{}\"\nnodes = {nodes_list}\n{timing}",
                internal[name]
            ),
        )
    };
    let router_toml = format!("[cluster]\nrole = \"router\"\nnodes = {nodes_list}\n{timing}");
    let mut a = shard_node("a", "127.0.0.2", "[0, 1]");
    let mut b = shard_node("b", "127.0.0.3", "[2, 3]");
    let mut c = shard_node("c", "127.0.0.4", "[0, 1, 2, 3]");
    let mut router = Node::new(&dir, "router", "127.0.0.5", router_toml.clone());
    let single = Node::new(&dir, "single", "127.0.0.6", String::new());
    let router2 = Node::new(&dir, "router2", "127.0.0.7", router_toml.clone());
    for node in [&a, &b, &c] {
        client.wait(node, "ready", |r| r["status"] == "ready").await;
    }
    let all_shards_up =
        |r: &Value| r["status"] == "ready" && r["dependencies"]["shard_nodes"] == "ok";
    client.wait(&router, "all shards up", all_shards_up).await;
    client
        .wait(&single, "ready", |r| r["status"] == "ready")
        .await;

    // The same items through the router and into the single node.
    let catalogue = items(200, 7, "c");
    for node in [&router, &single] {
        let done = client
            .post(node, "/v1/items", json!(catalogue))
            .await
            .unwrap();
        assert_eq!(done["upserted"], 200, "{}", node.name);
    }
    // Shard nodes learn of the items from the catalogue's change log.
    let holds = |n: u64| move |r: &Value| items_in(r) == n;
    client
        .wait(&a, "A holds shards 0-1", |r| items_in(r) > 0)
        .await;
    client.wait(&c, "C holds all 200", holds(200)).await;
    let stored = client.items_held(&a).await + client.items_held(&b).await;
    assert_eq!(stored, 200, "A and B together hold every item once");
    assert_same_as_single(&client, &router, &single, "all nodes up").await;

    // A dies: C serves shards 0 and 1, nothing is missing.
    a.kill();
    assert_same_as_single(&client, &router, &single, "A down").await;

    // C dies too: shards 0 and 1 have no replica; answers are partial, never errors.
    c.kill();
    let (ids, partial, missing) = answer(&client, &router, "/v1/similar/c0042?limit=10").await;
    assert!(partial, "answer with shards 0 and 1 gone must be partial");
    assert_eq!(missing, [0, 1]);
    // Vector candidates come from shards 2 and 3 only; the router's catalogue and item graph
    // still know every item, so graph neighbours from any shard may appear.
    assert_eq!(ids.len(), 10, "the rest of the catalogue still answers");
    let metrics = client.metrics(&router).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("reco_partial_responses_total ") && !l.ends_with(" 0")),
        "partial answers are counted"
    );
    client
        .wait(&router, "shards 0 and 1 reported down", |r| {
            r["status"] == "degraded"
                && r["dependencies"]["shard_nodes"]
                    .as_str()
                    .is_some_and(|s| s.contains("[0, 1]"))
        })
        .await;

    // Writes do not need shard nodes: items of every shard are stored (in ScyllaDB) while
    // shards 0 and 1 have no replica up, and one item is deleted.
    let fresh = items(40, 99, "n");
    let gone = catalogue
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .find(|id| shard_of(id, SHARDS) >= 2 && !PROBES.contains(id))
        .unwrap();
    for node in [&router, &single] {
        let deleted = client
            .0
            .call(
                Method::DELETE,
                &node.public,
                &format!("/v1/items/{gone}"),
                Default::default(),
                "application/json",
                TIMEOUT,
            )
            .await;
        // 204 has no body: the call succeeds with empty bytes.
        assert!(deleted.is_ok(), "{}: {deleted:?}", node.name);
        let done = client.post(node, "/v1/items", json!(fresh)).await.unwrap();
        assert_eq!(done["upserted"], 40, "{}", node.name);
    }

    // C returns: it loads its shards from ScyllaDB (the new items, the deletion).
    c.start();
    client.wait(&c, "ready", |r| r["status"] == "ready").await;
    let live = 200 + fresh.len() as u64 - 1;
    client
        .wait(&c, "C holds every live item", holds(live))
        .await;
    client
        .wait(&router, "all shards up again", all_shards_up)
        .await;
    // Graph edges of the items written during the outage were computed without shards 0
    // and 1; the router recomputes them now that every shard answers.
    client
        .wait(&router, "graph backlog cleared", |r| {
            r["graph_backlog"] == 0
        })
        .await;
    // B dies: shards 2 and 3 are now served by C alone, with what it loaded.
    b.kill();
    assert_same_as_single(&client, &router, &single, "only C up").await;
    for new in [&fresh[0], &fresh[1], &fresh[2]] {
        let probe = format!("/v1/similar/{}?limit=10", new["id"].as_str().unwrap());
        let (got, partial, _) = answer(&client, &router, &probe).await;
        let (expected, _, _) = answer(&client, &single, &probe).await;
        assert!(!partial);
        assert_eq!(
            got, expected,
            "C serves the items written while it was down"
        );
    }

    // Impressions and what the policy learns are shared through ScyllaDB: an event sent to
    // one router rewards the response of the other, and each router serves both routers'
    // learning. (The single node gets the same events, so popularity stays the same.)
    client.wait(&router2, "all shards up", all_shards_up).await;
    let policy_updates = |r: &Value| r["updates"].as_u64().unwrap_or(0);
    for (served_by, told) in [(&router, &router2), (&router2, &router)] {
        let served = client
            .get(served_by, "/v1/recommendations?user_id=policy-user&limit=5")
            .await;
        let liked = served["items"][0]["item"]["id"].clone();
        let before = policy_updates(&client.get(told, "/admin/policy").await);
        let reward = |recommendation_id: &Value| {
            json!([{
                "user_id": "policy-user",
                "item_id": liked,
                "action": "like",
                "recommendation_id": recommendation_id,
            }])
        };
        client
            .post(told, "/v1/events", reward(&served["recommendation_id"]))
            .await
            .unwrap();
        client
            .wait_for(
                told,
                "/admin/policy",
                "the other router's response rewarded",
                |r| policy_updates(r) > before,
            )
            .await;
        let on_single = client
            .get(&single, "/v1/recommendations?user_id=policy-user&limit=5")
            .await;
        client
            .post(
                &single,
                "/v1/events",
                reward(&on_single["recommendation_id"]),
            )
            .await
            .unwrap();
    }
    for node in [&router, &router2] {
        client
            .wait_for(
                node,
                "/admin/policy",
                "both routers' learning served",
                |r| policy_updates(r) == 2,
            )
            .await;
    }
    let learned = client.get(&router, "/admin/policy").await["updates"].clone();

    // Routers keep nothing: one killed and restarted on an empty data directory loads the
    // catalogue from ScyllaDB and answers as before, and restores what the policy learned.
    tokio::time::sleep(Duration::from_secs(1)).await;
    router.kill();
    std::fs::remove_dir_all(dir.join("router")).unwrap();
    router.start();
    a.start();
    b.start();
    for node in [&a, &b] {
        client.wait(node, "ready", |r| r["status"] == "ready").await;
    }
    client
        .wait(&router, "all shards up, graph filled", |r| {
            all_shards_up(r) && r["graph_filled"] == true
        })
        .await;
    assert_same_as_single(&client, &router, &single, "all back, router restarted").await;
    assert_eq!(
        client.get(&router, "/admin/policy").await["updates"],
        learned,
        "the policy's state came back from ScyllaDB"
    );
    drop((a, b, c, router, router2, single));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Live items a shard node reports on `/readyz`.
fn items_in(readyz: &Value) -> u64 {
    readyz["items"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

/// Two in-process shard nodes hold the same shard; one answers searches only after 5 s. With
/// hedging every search completes from the other replica well inside the 3 s deadline; with
/// hedging off, searches sent to the slow replica first come back partial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedged_requests_complete_searches_despite_a_slow_replica() {
    use core_api::cluster::{ClusterIndex, ShardNode};
    use core_api::config::Config;
    use core_api::metrics::Metrics;
    use core_api::store::{CatalogRecord, ScyllaCatalog};
    use std::sync::Arc;

    const DIM: usize = 8;
    let Some(cql) = cql_server() else { return };
    let scylla = scylla_config(&cql, &keyspace("hedge"));
    let mut rng = StdRng::seed_from_u64(3);
    let vectors: Vec<Vec<f32>> = (0..50)
        .map(|_| {
            let v: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / n).collect()
        })
        .collect();
    let catalogue = ScyllaCatalog::new(scylla.clone(), 1);
    let records: Vec<CatalogRecord> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| CatalogRecord {
            id: format!("i{i}"),
            version: 1_700_000_000_000_000 + i as u64,
            item: Some(br#"{}"#.to_vec()),
            vector: v.clone(),
        })
        .collect();
    catalogue.write(&records).await.unwrap();

    let dir = std::env::temp_dir().join(format!("core-api-hedge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut addrs = Vec::new();
    for (name, slow) in [("slow", true), ("fast", false)] {
        let mut config = Config::default();
        config.index.shards = 1;
        config.cluster.role = core_api::config::Role::Shard;
        config.cluster.dim = DIM;
        config.storage.data_dir = dir.join(name);
        config.scylla = scylla.clone();
        let node = ShardNode::new(&config, Arc::new(Metrics::new())).unwrap();
        node.spawn_sync();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(listener.local_addr().unwrap().to_string());
        let app = node.internal_app().layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| async move {
                if slow && req.uri().path() == "/internal/v1/search" {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                next.run(req).await
            },
        ));
        tokio::spawn(async move { axum::serve(listener, app).await });
    }

    for hedge_after_ms in [50, 3000] {
        let mut config = Config::default();
        config.index.shards = 1;
        config.cluster.role = core_api::config::Role::Router;
        config.cluster.nodes = addrs.clone();
        config.cluster.shard_deadline_ms = 3000;
        config.cluster.hedge_after_ms = hedge_after_ms;
        let metrics = Arc::new(Metrics::new());
        let cluster = ClusterIndex::connect(&config, DIM, metrics.clone()).await;
        // Both replicas must be up (each loads the shard from the CQL server first), or every
        // search would go to the one that is and nothing would be hedged.
        let started = Instant::now();
        while !metrics
            .render()
            .lines()
            .any(|l| l == "reco_cluster_shard_replicas_up{shard=\"0\"} 2")
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "both replicas up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut partial = 0;
        for q in vectors.iter().take(6) {
            let outcome = cluster.search(q, 5, None, &Default::default()).await;
            if outcome.missing_shards.is_empty() {
                // Exact: the query is an item, so it is its own best hit.
                assert_eq!(outcome.hits.len(), 5);
                assert!(outcome.hits[0].score > 0.999);
            } else {
                partial += 1;
            }
        }
        let hedges = metrics
            .render()
            .lines()
            .find(|l| l.starts_with("reco_shard_hedges_total "))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .unwrap_or(0);
        if hedge_after_ms == 50 {
            assert_eq!(partial, 0, "hedged searches all complete");
            assert!(hedges >= 1, "the slow replica was hedged");
        } else {
            assert!(
                partial >= 1,
                "without hedging the slow replica's turns run out of time"
            );
            assert_eq!(hedges, 0);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The secret shared by the routers and shard nodes of the test clusters.
const CLUSTER_SECRET: &str = "cluster-test-secret";

/// Internal calls without the cluster secret are refused before anything else runs (the
/// node here has no reachable ScyllaDB and is not ready: authentication comes first).
#[tokio::test]
async fn shard_nodes_refuse_unsigned_calls() {
    use core_api::cluster::rpc::RpcError;
    use core_api::cluster::ShardNode;
    use core_api::config::Config;
    use core_api::metrics::Metrics;
    use std::sync::Arc;

    let dir = std::env::temp_dir().join(format!("core-api-rpc-auth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = Config::default();
    config.index.shards = 1;
    config.cluster.role = core_api::config::Role::Shard;
    config.cluster.dim = 4;
    config.cluster.secret = CLUSTER_SECRET.into();
    config.storage.data_dir = dir.clone();
    // Nothing listens on port 1: the node keeps trying to load and stays unready.
    config.scylla.nodes = "127.0.0.1:1".into();
    let node = ShardNode::new(&config, Arc::new(Metrics::new())).unwrap();
    node.spawn_sync();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = node.internal_app();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let timeout = Duration::from_secs(5);
    let search = core_api::cluster::wire::SearchRequest {
        k: 1,
        ef: 10,
        shards: vec![0],
        query: vec![0.5; 4],
        filter: Default::default(),
    }
    .encode();
    let path = "/internal/v1/search";
    for (name, client) in [
        ("no secret", RpcClient::new("")),
        ("another secret", RpcClient::new("not-the-cluster-secret")),
    ] {
        match client.get(&addr, "/internal/v1/info", timeout).await {
            Err(RpcError::Status(status, body)) => {
                assert_eq!(status.as_u16(), 401, "{name}: {body}");
                assert!(body.contains("unauthorized"), "{name}: {body}");
            }
            other => panic!("{name}: an unsigned call must be refused, got {other:?}"),
        }
        match client.post(&addr, path, search.clone(), timeout).await {
            Err(RpcError::Status(status, _)) => assert_eq!(status.as_u16(), 401, "{name}"),
            other => panic!("{name}: an unsigned search must be refused, got {other:?}"),
        }
        match client
            .post(&addr, "/internal/v1/sync", b"[0]".to_vec(), timeout)
            .await
        {
            Err(RpcError::Status(status, _)) => assert_eq!(status.as_u16(), 401, "{name}"),
            other => panic!("{name}: an unsigned sync hint must be refused, got {other:?}"),
        }
    }
    let signed = RpcClient::new(CLUSTER_SECRET);
    let info = signed
        .get(&addr, "/internal/v1/info", timeout)
        .await
        .expect("a signed call is served");
    let info: Value = serde_json::from_slice(&info).unwrap();
    assert_eq!(info["ready"], false, "no catalogue loaded: {info}");
    match signed.post(&addr, path, search, timeout).await {
        Err(RpcError::Status(status, body)) => {
            assert_eq!(status.as_u16(), 503, "{body}");
            assert!(body.contains("not_ready"), "{body}");
        }
        other => {
            panic!("a node that has not loaded its shards must refuse searches, got {other:?}")
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The catalogue in a real CQL server and its change log, as shard nodes and routers follow
/// them: loads, upserts, replacements, deletions, writes arriving out of version order, and
/// a process configured with another shard count.
#[tokio::test]
async fn the_catalogue_change_log_is_followed_to_the_stored_state() {
    use core_api::cluster::follow::{Follower, Update};
    use core_api::store::{CatalogRecord, ScyllaCatalog, StoreError};
    use std::sync::Arc;

    let Some(cql) = cql_server() else { return };
    let scylla = scylla_config(&cql, &keyspace("catalogue"));
    let catalogue = Arc::new(ScyllaCatalog::new(scylla.clone(), 1));
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let item = |id: &str, version: u64, x: f32| CatalogRecord {
        id: id.into(),
        version,
        item: Some(format!(r#"{{"id":"{id}"}}"#).into_bytes()),
        vector: vec![x, 1.0],
    };
    let deletion = |id: &str, version: u64| CatalogRecord {
        id: id.into(),
        version,
        item: None,
        vector: vec![],
    };
    catalogue
        .write(&[item("a", now_us, 0.1), item("b", now_us + 1, 0.2)])
        .await
        .unwrap();
    let follower = Follower::new(catalogue.clone(), [0]);
    let mut loaded = follower.load(0).await.unwrap();
    loaded.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(loaded, [item("a", now_us, 0.1), item("b", now_us + 1, 0.2)]);

    // A replaced, B deleted, C added; then an older write of A arrives late.
    catalogue
        .write(&[
            item("a", now_us + 10, 0.3),
            deletion("b", now_us + 11),
            item("c", now_us + 12, 0.4),
        ])
        .await
        .unwrap();
    catalogue
        .write(&[item("a", now_us + 5, 0.9)])
        .await
        .unwrap();
    let mut updates = follower.poll(0).await.unwrap();
    updates.sort_by(|x, y| x.id().cmp(y.id()));
    assert_eq!(
        updates,
        [
            // The newest version stays stored, whatever order the writes came in.
            Update::Upsert(item("a", now_us + 10, 0.3)),
            Update::Remove {
                id: "b".into(),
                version: now_us + 11
            },
            Update::Upsert(item("c", now_us + 12, 0.4)),
        ]
    );
    assert!(
        follower.poll(0).await.unwrap().is_empty(),
        "what was applied is not applied again"
    );
    // A new follower loads the stored state.
    let fresh = Follower::new(catalogue.clone(), [0]);
    let mut state = fresh.load(0).await.unwrap();
    state.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(
        state,
        [item("a", now_us + 10, 0.3), item("c", now_us + 12, 0.4)]
    );

    // The catalogue was written with one shard: two would place items elsewhere.
    let other = ScyllaCatalog::new(scylla, 2);
    match other.connect().await {
        Err(StoreError::Corrupt(why)) => assert!(why.contains("1 shards"), "{why}"),
        other => panic!("another shard count must be refused, got {other:?}"),
    }
}
