//! A shard node: hosts some shards of the index, stores their items durably, answers the
//! routers' internal RPC and pulls writes it missed from peer replicas.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use shared_types::{ErrorBody, ErrorCode, Item};

use super::auth::ClusterAuth;
use super::rpc::RpcClient;
use super::store::NodeStore;
use super::wire::{Cursor, ItemRecord, SearchRequest, SearchResponse, WireError};
use super::{discover, NodeInfo, CHANGES_PAGE, CHANGE_WINDOW_US, MAX_VERSION_AHEAD_US};
use crate::catalog::index_labels;
use crate::compute::on_rayon;
use crate::config::{ClusterConfig, Config};
use crate::error::EngineError;
use crate::metrics::Metrics;
use crate::store::StoreError;
use vector_index::{shard_of, IndexParams, Labels, LocalShard, Shard, ShardItem};

/// Errors of the internal API, mapped to statuses in one place.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    BadRequest(String),
    #[error("shard {0} is not hosted here")]
    NotHosted(u32),
    #[error("catching up with peer replicas")]
    NotReady,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WireError> for NodeError {
    fn from(e: WireError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

impl IntoResponse for NodeError {
    fn into_response(self) -> Response {
        let code = match &self {
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::NotHosted(_) => ErrorCode::ShardNotHosted,
            Self::NotReady => ErrorCode::NotReady,
            Self::Store(_) => ErrorCode::StorageUnavailable,
        };
        let status =
            StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if matches!(self, Self::Store(_)) {
            tracing::error!(error = %self, "internal request failed");
        }
        (status, Json(ErrorBody::new(code, self.to_string()))).into_response()
    }
}

pub struct ShardNode {
    total_shards: usize,
    dim: usize,
    cluster: ClusterConfig,
    store: NodeStore,
    shards: BTreeMap<u32, Arc<LocalShard>>,
    boot_id: u64,
    ready: AtomicBool,
    /// Keeps a record's store write and its index update in the same order on this node.
    write_lock: tokio::sync::Mutex<()>,
    client: RpcClient,
    /// Verifies that internal calls come from a holder of the cluster secret.
    auth: ClusterAuth,
    metrics: Arc<Metrics>,
}

impl ShardNode {
    /// Opens the node's store and its shards (reusing index snapshots in the data directory).
    /// It is not ready until [`ShardNode::spawn_sync`] has caught up with its peers once.
    pub async fn open(config: &Config, metrics: Arc<Metrics>) -> Result<Arc<Self>, EngineError> {
        let total = config.index.shards;
        let hosted = config
            .cluster
            .hosted(total)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let dir = config.storage.data_dir.join("shard-node");
        let store = NodeStore::open(&dir)?;
        let params = IndexParams {
            dim: config.cluster.dim,
            m: config.index.m,
            ef_construction: config.index.ef_construction,
            ef_search: config.index.ef_search,
            rebuild_threshold: config.index.rebuild_threshold,
        };
        let mut per_shard = Vec::new();
        for &s in &hosted {
            let items: Vec<ShardItem> = store
                .live(s as u32)?
                .into_iter()
                .map(|r| ShardItem {
                    labels: labels_of(&r),
                    id: Arc::from(r.id.as_str()),
                    version: r.version,
                    vector: r.vector,
                })
                .collect();
            per_shard.push((s, items));
        }
        let snapshot_dir = dir.join(format!(
            "index-d{}-m{}-efc{}",
            params.dim, params.m, params.ef_construction
        ));
        let shards: BTreeMap<u32, Arc<LocalShard>> = on_rayon(move || {
            per_shard
                .into_par_iter()
                .map(|(s, items)| {
                    (
                        s as u32,
                        LocalShard::open(s, params, Some(&snapshot_dir), items),
                    )
                })
                .collect()
        })
        .await?;
        for (s, shard) in &shards {
            metrics.set_shard_items(*s as usize, shard.len());
        }
        tracing::info!(
            shards = ?shards.keys().collect::<Vec<_>>(),
            store_id = store.store_id(),
            "shard node opened"
        );
        Ok(Arc::new(Self {
            total_shards: total,
            dim: config.cluster.dim,
            cluster: config.cluster.clone(),
            store,
            shards,
            boot_id: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            ready: AtomicBool::new(false),
            write_lock: tokio::sync::Mutex::new(()),
            client: RpcClient::new(&config.cluster.secret),
            auth: ClusterAuth::new(&config.cluster.secret),
            metrics,
        }))
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn info(&self) -> NodeInfo {
        NodeInfo {
            store_id: self.store.store_id().to_string(),
            boot_id: self.boot_id,
            shards: self.shards.keys().copied().collect(),
            ready: self.is_ready(),
            dim: self.dim,
            items: self.shards.iter().map(|(s, sh)| (*s, sh.len())).collect(),
        }
    }

    fn shard(&self, shard: u32) -> Result<&Arc<LocalShard>, NodeError> {
        self.shards.get(&shard).ok_or(NodeError::NotHosted(shard))
    }

    /// Checks, stores durably and indexes records of one shard; returns how many were newer
    /// than what the node held.
    pub async fn apply(
        self: &Arc<Self>,
        shard: u32,
        records: Vec<ItemRecord>,
    ) -> Result<usize, NodeError> {
        let index = self.shard(shard)?.clone();
        let latest_version = now_micros() + MAX_VERSION_AHEAD_US;
        for r in &records {
            if r.version > latest_version {
                return Err(NodeError::BadRequest(format!(
                    "item '{}' has version {}, beyond this node's clock",
                    r.id, r.version
                )));
            }
            if shard_of(&r.id, self.total_shards) as u32 != shard {
                return Err(NodeError::BadRequest(format!(
                    "item '{}' does not belong to shard {shard}",
                    r.id
                )));
            }
            if r.item.is_some() && r.vector.len() != self.dim {
                return Err(NodeError::BadRequest(format!(
                    "item '{}' has a {}-d vector; this cluster holds {}-d vectors",
                    r.id,
                    r.vector.len(),
                    self.dim
                )));
            }
        }
        let _order = self.write_lock.lock().await;
        let node = self.clone();
        let applied = tokio::task::spawn_blocking(move || node.store.apply(shard, records))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))??;
        for r in &applied {
            match r.item {
                Some(_) => {
                    index.upsert(Arc::from(r.id.as_str()), r.version, &r.vector, labels_of(r))
                }
                None => index.remove(&r.id),
            }
        }
        self.metrics.set_shard_items(shard as usize, index.len());
        Ok(applied.len())
    }

    fn search(&self, req: &SearchRequest) -> Result<SearchResponse, NodeError> {
        if !self.is_ready() {
            return Err(NodeError::NotReady);
        }
        if req.query.len() != self.dim || req.k == 0 {
            return Err(NodeError::BadRequest(format!(
                "expected a {}-d query and k > 0",
                self.dim
            )));
        }
        let (k, ef) = (req.k as usize, req.ef.max(req.k) as usize);
        let shards = req
            .shards
            .par_iter()
            .filter_map(|s| {
                let shard = self.shards.get(s)?;
                Some((*s, shard.search(&req.query, k, ef, &req.filter)))
            })
            .collect();
        Ok(SearchResponse { shards })
    }

    /// One round of anti-entropy: pulls, from every reachable peer replica, the changes of
    /// the shards both host since the last round (re-reading a window, as writes may reach
    /// a replica out of version order), and applies what is newer.
    pub async fn catch_up(self: &Arc<Self>) -> usize {
        let timeout = Duration::from_millis(self.cluster.health_interval_ms.max(1000));
        let mut pulled = 0;
        for addr in discover(&self.cluster).await {
            let info: NodeInfo = match self.client.get(&addr, "/internal/v1/info", timeout).await {
                Ok(body) => match serde_json::from_slice(&body) {
                    Ok(info) => info,
                    Err(_) => continue,
                },
                Err(_) => continue,
            };
            if info.store_id == self.store.store_id() {
                continue;
            }
            for shard in info.shards.iter().filter(|s| self.shards.contains_key(s)) {
                match self.pull(&addr, &info.store_id, *shard, timeout).await {
                    Ok(n) => pulled += n,
                    Err(e) => {
                        tracing::warn!(peer = %addr, shard, error = %e, "catch-up from peer failed")
                    }
                }
            }
        }
        pulled
    }

    async fn pull(
        self: &Arc<Self>,
        addr: &str,
        peer: &str,
        shard: u32,
        timeout: Duration,
    ) -> Result<usize, String> {
        let reached = self.store.cursor(peer, shard).map_err(|e| e.to_string())?;
        let mut after = match reached.version {
            0 => Cursor::default(),
            v => Cursor {
                version: v.saturating_sub(CHANGE_WINDOW_US),
                id: String::new(),
            },
        };
        let mut furthest = reached;
        let mut applied = 0;
        loop {
            let path = changes_path(shard, &after, CHANGES_PAGE);
            let body = self
                .client
                .get(addr, &path, timeout)
                .await
                .map_err(|e| e.to_string())?;
            let page = ItemRecord::decode_all(&body).map_err(|e| e.to_string())?;
            let full = page.len() >= CHANGES_PAGE;
            let Some(last) = page.last() else { break };
            after = Cursor {
                version: last.version,
                id: last.id.clone(),
            };
            furthest = furthest.max(after.clone());
            applied += self.apply(shard, page).await.map_err(|e| e.to_string())?;
            if !full {
                break;
            }
        }
        self.store
            .set_cursor(peer, shard, &furthest)
            .map_err(|e| e.to_string())?;
        if applied > 0 {
            tracing::info!(peer = %addr, shard, applied, "caught up from peer");
        }
        Ok(applied)
    }

    /// Catches up once, then turns ready and keeps pulling every `sync_interval_ms`.
    pub fn spawn_sync(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let node = self.clone();
        tokio::spawn(async move {
            let pulled = node.catch_up().await;
            node.ready.store(true, Ordering::SeqCst);
            tracing::info!(pulled, "shard node ready");
            let mut tick =
                tokio::time::interval(Duration::from_millis(node.cluster.sync_interval_ms.max(10)));
            tick.tick().await;
            loop {
                tick.tick().await;
                node.catch_up().await;
            }
        })
    }

    /// The internal RPC (routers and peers only; keep it off the public network).
    pub fn internal_app(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/internal/v1/info", get(info))
            .route("/internal/v1/search", post(search))
            .route("/internal/v1/shards/{shard}/items", post(apply))
            .route("/internal/v1/shards/{shard}/changes", get(changes))
            .route("/healthz", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                verify_call,
            ))
            .with_state(self.clone())
    }

    /// Probes and metrics on the node's public port.
    pub fn public_app(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }
}

pub fn changes_path(shard: u32, after: &Cursor, limit: usize) -> String {
    let query = serde_urlencoded::to_string([
        ("after_version", after.version.to_string()),
        ("after_id", after.id.clone()),
        ("limit", limit.to_string()),
    ])
    .expect("plain pairs encode");
    format!("/internal/v1/shards/{shard}/changes?{query}")
}

async fn info(State(node): State<Arc<ShardNode>>) -> Json<NodeInfo> {
    Json(node.info())
}

fn binary(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
}

async fn search(State(node): State<Arc<ShardNode>>, body: Bytes) -> Result<Response, NodeError> {
    let req = SearchRequest::decode(&body)?;
    let answer = on_rayon(move || node.search(&req))
        .await
        .map_err(|e| NodeError::Store(StoreError::Unavailable(e.to_string())))??;
    Ok(binary(answer.encode()))
}

#[derive(Serialize)]
struct Applied {
    applied: usize,
}

async fn apply(
    State(node): State<Arc<ShardNode>>,
    Path(shard): Path<u32>,
    body: Bytes,
) -> Result<Json<Applied>, NodeError> {
    let records = ItemRecord::decode_all(&body)?;
    let applied = node.apply(shard, records).await?;
    Ok(Json(Applied { applied }))
}

#[derive(Deserialize)]
struct ChangesQuery {
    #[serde(default)]
    after_version: u64,
    #[serde(default)]
    after_id: String,
    limit: Option<usize>,
}

async fn changes(
    State(node): State<Arc<ShardNode>>,
    Path(shard): Path<u32>,
    Query(q): Query<ChangesQuery>,
) -> Result<Response, NodeError> {
    node.shard(shard)?;
    let after = Cursor {
        version: q.after_version,
        id: q.after_id,
    };
    let limit = q.limit.unwrap_or(CHANGES_PAGE).clamp(1, 10 * CHANGES_PAGE);
    let records = tokio::task::spawn_blocking(move || node.store.changes(shard, &after, limit))
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))??;
    Ok(binary(ItemRecord::encode_all(&records)))
}

async fn readyz(State(node): State<Arc<ShardNode>>) -> Response {
    let info = node.info();
    let status = match info.ready {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    let items: HashMap<String, usize> = info
        .items
        .iter()
        .map(|(s, n)| (s.to_string(), *n))
        .collect();
    (
        status,
        Json(serde_json::json!({
            "status": if info.ready { "ready" } else { "catching_up" },
            "role": "shard",
            "shards": info.shards,
            "items": items,
        })),
    )
        .into_response()
}

async fn metrics(State(node): State<Arc<ShardNode>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        node.metrics.render(),
    )
        .into_response()
}

/// Microseconds since the epoch on this node's clock.
fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Refuses internal calls not signed with the cluster secret (when one is configured).
async fn verify_call(
    State(node): State<Arc<ShardNode>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !node.auth.enabled() || request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_INTERNAL_BODY).await else {
        return refuse(ErrorCode::PayloadTooLarge, "body too large");
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    if let Err(why) = node.auth.verify(
        parts.method.as_str(),
        path,
        header(super::auth::TIME_HEADER),
        header(super::auth::SIGNATURE_HEADER),
        &body,
        crate::clock::now_secs(),
    ) {
        tracing::warn!(reason = %why, path, "internal call refused");
        return refuse(ErrorCode::Unauthorized, &why.to_string());
    }
    next.run(axum::extract::Request::from_parts(parts, body.into()))
        .await
}

/// Largest internal call body (a write of many items with their vectors).
const MAX_INTERNAL_BODY: usize = 256 << 20;

fn refuse(code: ErrorCode, message: &str) -> Response {
    let status = StatusCode::from_u16(code.status()).expect("error codes carry valid statuses");
    (status, Json(ErrorBody::new(code, message))).into_response()
}

/// The filter labels of a stored item (its JSON), as the router's catalogue computes them.
fn labels_of(record: &ItemRecord) -> Labels {
    match record.item.as_deref().map(serde_json::from_slice::<Item>) {
        Some(Ok(item)) => index_labels(&item),
        Some(Err(e)) => {
            tracing::warn!(item = %record.id, error = %e, "stored item is not valid JSON; indexed without labels");
            Labels::default()
        }
        None => Labels::default(),
    }
}
