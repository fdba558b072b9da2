//! A router's view of the shard nodes: which replicas of each shard are up (health rounds),
//! and scatter-gather search with per-shard deadlines, retries on another replica and
//! hedged requests.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::stream::{FuturesUnordered, StreamExt};

use super::rpc::{RpcClient, RpcError};
use super::wire::{SearchRequest, SearchResponse};
use super::{discover, NodeInfo};
use crate::config::Config;
use crate::metrics::Metrics;
use vector_index::{Filter, Hit};

/// The merged top-k and the shards that did not answer in time (a partial answer).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchOutcome {
    pub hits: Vec<Hit>,
    pub missing_shards: Vec<u32>,
}

struct Node {
    addr: String,
    state: RwLock<NodeState>,
}

#[derive(Default)]
struct NodeState {
    info: Option<NodeInfo>,
    /// Answered the last health round ready, and no call failed since.
    up: bool,
}

impl Node {
    fn serves(&self, shard: u32) -> bool {
        let st = self.state.read().expect("node lock");
        st.up && st.info.as_ref().is_some_and(|i| i.shards.contains(&shard))
    }

    fn mark_down(&self) {
        self.state.write().expect("node lock").up = false;
    }
}

pub struct ClusterIndex {
    config: crate::config::ClusterConfig,
    total_shards: usize,
    ef_search: usize,
    dim: usize,
    client: RpcClient,
    nodes: RwLock<Vec<Arc<Node>>>,
    rotation: AtomicUsize,
    clock: AtomicU64,
    metrics: Arc<Metrics>,
}

type Answer = (Arc<Node>, Vec<u32>, Result<SearchResponse, RpcError>);

/// Shortest deadline of background searches.
const BACKGROUND_DEADLINE: Duration = Duration::from_secs(2);

impl ClusterIndex {
    /// Finds the shard nodes (one health round) and keeps checking them in the background
    /// for as long as the index lives.
    pub async fn connect(config: &Config, dim: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        let index = Arc::new(Self {
            config: config.cluster.clone(),
            total_shards: config.index.shards,
            ef_search: config.index.ef_search,
            dim,
            client: RpcClient::new(&config.cluster.secret),
            nodes: RwLock::new(Vec::new()),
            rotation: AtomicUsize::new(0),
            clock: AtomicU64::new(0),
            metrics,
        });
        index.health_round().await;
        let weak: Weak<Self> = Arc::downgrade(&index);
        let every = Duration::from_millis(config.cluster.health_interval_ms.max(10));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(index) = weak.upgrade() else { return };
                index.health_round().await;
            }
        });
        index
    }

    pub fn total_shards(&self) -> usize {
        self.total_shards
    }

    /// Asks every known node for its info; nodes that answer ready (with vectors of our
    /// dimension) are up, the rest are not used until a later round finds them ready.
    async fn health_round(&self) {
        let addrs = discover(&self.config).await;
        let nodes: Vec<Arc<Node>> = {
            let mut known = self.nodes.write().expect("nodes lock");
            let by_addr: HashMap<String, Arc<Node>> =
                known.drain(..).map(|n| (n.addr.clone(), n)).collect();
            *known = addrs
                .into_iter()
                .map(|addr| {
                    by_addr.get(&addr).cloned().unwrap_or_else(|| {
                        Arc::new(Node {
                            addr,
                            state: RwLock::new(NodeState::default()),
                        })
                    })
                })
                .collect();
            known.clone()
        };
        let timeout = Duration::from_millis(self.config.health_interval_ms.clamp(100, 2000));
        let answers = futures::future::join_all(nodes.iter().map(|node| async move {
            let info = self
                .client
                .get(&node.addr, "/internal/v1/info", timeout)
                .await
                .ok()
                .and_then(|body| serde_json::from_slice::<NodeInfo>(&body).ok());
            (node, info)
        }))
        .await;
        for (node, info) in answers {
            let mut st = node.state.write().expect("node lock");
            let was_up = st.up;
            st.up = info.as_ref().is_some_and(|i| i.ready && i.dim == self.dim);
            if let Some(i) = info.as_ref().filter(|i| i.dim != self.dim) {
                tracing::error!(node = %node.addr, node_dim = i.dim, dim = self.dim, "shard node holds vectors of another dimension; not used");
            }
            if st.up != was_up {
                tracing::info!(node = %node.addr, up = st.up, "shard node changed state");
            }
            st.info = info;
        }
        for shard in 0..self.total_shards {
            let up = nodes.iter().filter(|n| n.serves(shard as u32)).count();
            self.metrics.set_replicas_up(shard, up);
        }
    }

    /// Up replicas of `shard`, rotated per call so load spreads over them.
    fn replicas(&self, shard: u32, turn: usize) -> Vec<Arc<Node>> {
        let nodes = self.nodes.read().expect("nodes lock");
        let mut up: Vec<Arc<Node>> = nodes.iter().filter(|n| n.serves(shard)).cloned().collect();
        if !up.is_empty() {
            let len = up.len();
            up.rotate_left(turn % len);
        }
        up
    }

    /// Shards with no replica up now.
    pub fn unavailable_shards(&self) -> Vec<u32> {
        (0..self.total_shards as u32)
            .filter(|&s| self.replicas(s, 0).is_empty())
            .collect()
    }

    /// Waits (health rounds run meanwhile) until every shard has a replica up, or `limit`.
    pub async fn wait_until_complete(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        loop {
            if self.unavailable_shards().is_empty() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The best `k` items over all shards. Each shard goes to one up replica (one request
    /// per node for all the shards it is asked for); a failed call is retried at once on
    /// the shard's next replica, a call unanswered after `hedge_after_ms` is also sent
    /// there, and whatever has not answered by `shard_deadline_ms` is reported missing.
    pub async fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        filter: &Filter,
    ) -> SearchOutcome {
        let deadline = Duration::from_millis(self.config.shard_deadline_ms);
        self.search_within(query, k, ef, filter, deadline).await
    }

    /// Search for background work (graph edges): the same path with a deadline of seconds,
    /// so a busy cluster delays it instead of making it partial.
    pub async fn search_background(&self, query: &[f32], k: usize) -> SearchOutcome {
        let deadline =
            Duration::from_millis(self.config.shard_deadline_ms * 25).max(BACKGROUND_DEADLINE);
        self.search_within(query, k, None, &Filter::default(), deadline)
            .await
    }

    async fn search_within(
        &self,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        filter: &Filter,
        deadline: Duration,
    ) -> SearchOutcome {
        let ef = ef.unwrap_or(self.ef_search).max(k);
        let deadline = tokio::time::Instant::now() + deadline;
        let turn = self.rotation.fetch_add(1, Ordering::Relaxed);
        let replicas: Vec<Vec<Arc<Node>>> = (0..self.total_shards as u32)
            .map(|s| self.replicas(s, turn))
            .collect();
        // Every call asks the same question of different shards.
        let question = Arc::new(SearchRequest {
            k: k as u32,
            ef: ef as u32,
            shards: Vec::new(),
            query: query.to_vec(),
            filter: filter.clone(),
        });
        let mut tried = vec![0usize; self.total_shards];
        let mut in_flight = vec![0usize; self.total_shards];
        let mut pending: BTreeSet<u32> = (0..self.total_shards as u32).collect();
        let mut calls = FuturesUnordered::new();
        let mut hits = Vec::new();

        let dispatch = |shards: Vec<u32>,
                        tried: &mut Vec<usize>,
                        in_flight: &mut Vec<usize>,
                        calls: &mut FuturesUnordered<_>| {
            let mut by_node: Vec<(Arc<Node>, Vec<u32>)> = Vec::new();
            for s in shards {
                let Some(node) = replicas[s as usize].get(tried[s as usize]) else {
                    continue;
                };
                tried[s as usize] += 1;
                in_flight[s as usize] += 1;
                match by_node.iter_mut().find(|(n, _)| Arc::ptr_eq(n, node)) {
                    Some((_, list)) => list.push(s),
                    None => by_node.push((node.clone(), vec![s])),
                }
            }
            for (node, shards) in by_node {
                calls.push(self.call_search(node, shards, question.clone(), deadline));
            }
        };

        dispatch(
            pending.iter().copied().collect(),
            &mut tried,
            &mut in_flight,
            &mut calls,
        );
        let hedge = tokio::time::sleep(Duration::from_millis(self.config.hedge_after_ms.max(1)));
        tokio::pin!(hedge);
        let mut hedged = self.config.hedge_after_ms >= self.config.shard_deadline_ms;
        while !pending.is_empty() && !calls.is_empty() {
            tokio::select! {
                Some((node, asked, answer)) = calls.next() => {
                    for &s in &asked {
                        in_flight[s as usize] -= 1;
                    }
                    match answer {
                        Ok(response) => {
                            for (s, shard_hits) in response.shards {
                                if pending.remove(&s) {
                                    hits.extend(shard_hits);
                                }
                            }
                        }
                        // Slow is not down: a timeout leaves the node in rotation (hedging
                        // covers slowness); a refused or broken call takes it out until
                        // the next health round finds it ready.
                        Err(RpcError::Timeout(_)) => {
                            self.metrics.count_shard_rpc_failure(&node.addr);
                        }
                        Err(e) => {
                            tracing::warn!(node = %node.addr, error = %e, "shard search failed; trying another replica");
                            self.metrics.count_shard_rpc_failure(&node.addr);
                            node.mark_down();
                        }
                    }
                    let retry: Vec<u32> = asked
                        .into_iter()
                        .filter(|s| pending.contains(s) && in_flight[*s as usize] == 0)
                        .collect();
                    dispatch(retry, &mut tried, &mut in_flight, &mut calls);
                }
                _ = &mut hedge, if !hedged => {
                    hedged = true;
                    let slow: Vec<u32> = pending
                        .iter()
                        .copied()
                        .filter(|&s| replicas[s as usize].len() > tried[s as usize])
                        .collect();
                    if !slow.is_empty() {
                        self.metrics.count_hedge();
                        dispatch(slow, &mut tried, &mut in_flight, &mut calls);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        hits.sort_by(|a: &Hit, b: &Hit| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.item_id.cmp(&b.item_id))
        });
        hits.truncate(k);
        let missing_shards: Vec<u32> = pending.into_iter().collect();
        if !missing_shards.is_empty() {
            self.metrics.count_partial();
        }
        SearchOutcome {
            hits,
            missing_shards,
        }
    }

    async fn call_search(
        &self,
        node: Arc<Node>,
        shards: Vec<u32>,
        question: Arc<SearchRequest>,
        deadline: tokio::time::Instant,
    ) -> Answer {
        let body = SearchRequest {
            shards: shards.clone(),
            ..(*question).clone()
        }
        .encode();
        let started = Instant::now();
        let timeout = deadline.saturating_duration_since(tokio::time::Instant::now());
        let answer = self
            .client
            .post(&node.addr, "/internal/v1/search", body, timeout)
            .await
            .and_then(|b| SearchResponse::decode(&b).map_err(RpcError::from));
        self.metrics
            .observe_shard_rpc(&node.addr, started.elapsed().as_secs_f64());
        (node, shards, answer)
    }

    /// Asks every up replica of `shards` to read the catalogue's change log now, so a write
    /// just stored is searchable when it is acknowledged. A hint only: a replica that does
    /// not answer within `deadline` applies the write at its next round anyway.
    pub async fn sync_now(&self, shards: &[u32], deadline: Duration) {
        let mut per_node: Vec<(Arc<Node>, Vec<u32>)> = Vec::new();
        for &s in shards {
            for node in self.replicas(s, 0) {
                match per_node.iter_mut().find(|(n, _)| Arc::ptr_eq(n, &node)) {
                    Some((_, list)) => list.push(s),
                    None => per_node.push((node, vec![s])),
                }
            }
        }
        futures::future::join_all(per_node.into_iter().map(|(node, shards)| async move {
            let body = serde_json::to_vec(&shards).expect("shard lists serialise");
            let sent = self
                .client
                .call(
                    hyper::Method::POST,
                    &node.addr,
                    "/internal/v1/sync",
                    body.into(),
                    "application/json",
                    deadline,
                )
                .await;
            if let Err(e) = sent {
                tracing::debug!(node = %node.addr, error = %e, "sync hint not applied; the node catches up on its own");
            }
        }))
        .await;
    }

    /// A version for a new write: microseconds since the epoch, strictly increasing here. It
    /// is also the write's CQL write time, so ScyllaDB keeps the newest version of an item
    /// across routers whose clocks agree (NTP).
    pub fn next_version(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let previous = self
            .clock
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last + 1))
            })
            .expect("always Some");
        now.max(previous + 1)
    }
}
