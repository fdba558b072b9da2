//! A shard node: hosts some shards of the index and answers the routers' searches over the
//! internal RPC. It keeps no state of its own: it loads its shards' items from the catalogue
//! in ScyllaDB (reusing index snapshots in its data directory as a start-up cache), follows
//! the catalogue's change log, and reports ready once loaded.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rayon::prelude::*;
use shared_types::{ErrorBody, ErrorCode, Item};

use super::auth::ClusterAuth;
use super::follow::{Follower, Update};
use super::wire::{SearchRequest, SearchResponse, WireError};
use super::NodeInfo;
use crate::catalog::index_labels;
use crate::compute::on_rayon;
use crate::config::{ClusterConfig, Config};
use crate::error::EngineError;
use crate::metrics::Metrics;
use crate::store::{CatalogRecord, ScyllaCatalog, StoreError};
use vector_index::{IndexParams, Labels, LocalShard, Shard, ShardItem};

/// Errors of the internal API, mapped to statuses in one place.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    BadRequest(String),
    #[error("shard {0} is not hosted here")]
    NotHosted(u32),
    #[error("loading its shards from the catalogue")]
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
    hosted: Vec<u32>,
    dim: usize,
    params: IndexParams,
    snapshot_dir: PathBuf,
    cluster: ClusterConfig,
    follower: Follower,
    /// The hosted shards, once loaded from the catalogue (the node is ready from then on).
    shards: OnceLock<BTreeMap<u32, Arc<LocalShard>>>,
    boot_id: u64,
    /// Verifies that internal calls come from a holder of the cluster secret.
    auth: ClusterAuth,
    metrics: Arc<Metrics>,
}

/// Least wait between two attempts to load the shards while ScyllaDB is unreachable.
const LOAD_RETRY: Duration = Duration::from_secs(1);

impl ShardNode {
    /// Sets the node up; nothing is loaded until [`ShardNode::spawn_sync`] runs, and the node
    /// is not ready before that load completes.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Result<Arc<Self>, EngineError> {
        let total = config.index.shards;
        let hosted: Vec<u32> = config
            .cluster
            .hosted(total)
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .into_iter()
            .map(|s| s as u32)
            .collect();
        let params = IndexParams {
            dim: config.cluster.dim,
            m: config.index.m,
            ef_construction: config.index.ef_construction,
            ef_search: config.index.ef_search,
            rebuild_threshold: config.index.rebuild_threshold,
            precision: config.index.precision(),
        };
        let snapshot_dir = config
            .storage
            .data_dir
            .join("shard-node")
            .join(crate::catalog::snapshot_dir_name(&params));
        let catalog = Arc::new(ScyllaCatalog::new(config.scylla.clone(), total));
        Ok(Arc::new(Self {
            follower: Follower::new(catalog, hosted.iter().copied()),
            hosted,
            dim: config.cluster.dim,
            params,
            snapshot_dir,
            cluster: config.cluster.clone(),
            shards: OnceLock::new(),
            boot_id: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            auth: ClusterAuth::new(&config.cluster.secret),
            metrics,
        }))
    }

    pub fn is_ready(&self) -> bool {
        self.shards.get().is_some()
    }

    pub fn info(&self) -> NodeInfo {
        NodeInfo {
            boot_id: self.boot_id,
            shards: self.hosted.clone(),
            ready: self.is_ready(),
            dim: self.dim,
            items: self
                .shards
                .get()
                .map(|shards| shards.iter().map(|(s, sh)| (*s, sh.len())).collect())
                .unwrap_or_default(),
        }
    }

    /// Loads every hosted shard from the catalogue and opens its index (reusing snapshots
    /// that still match the items' versions).
    async fn load(self: &Arc<Self>) -> Result<BTreeMap<u32, Arc<LocalShard>>, StoreError> {
        let mut per_shard = Vec::new();
        for &s in &self.hosted {
            let items: Vec<ShardItem> = self
                .follower
                .load(s)
                .await?
                .into_iter()
                .filter_map(|r| self.shard_item(r))
                .collect();
            per_shard.push((s, items));
        }
        let (params, dir) = (self.params, self.snapshot_dir.clone());
        let shards: BTreeMap<u32, Arc<LocalShard>> = on_rayon(move || {
            per_shard
                .into_par_iter()
                .map(|(s, items)| (s, LocalShard::open(s as usize, params, Some(&dir), items)))
                .collect()
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        for (s, shard) in &shards {
            self.metrics.set_shard_items(*s as usize, shard.len());
        }
        Ok(shards)
    }

    /// A stored item as an index entry; `None` (logged) for a vector of another dimension.
    fn shard_item(&self, r: CatalogRecord) -> Option<ShardItem> {
        if r.vector.len() != self.dim {
            tracing::error!(item = %r.id, dim = r.vector.len(), expected = self.dim, "stored item has a vector of another dimension; not indexed");
            return None;
        }
        Some(ShardItem {
            labels: labels_of(&r),
            id: Arc::from(r.id.as_str()),
            version: r.version,
            vector: r.vector,
        })
    }

    /// Applies what the change log says happened to one shard.
    fn apply(&self, shard: &LocalShard, shard_id: u32, updates: Vec<Update>) {
        for update in updates {
            let held = shard.version(update.id());
            if held.is_some_and(|v| v >= update.version()) {
                continue;
            }
            match update {
                Update::Upsert(r) => {
                    if let Some(item) = self.shard_item(r) {
                        shard.upsert(item.id, item.version, &item.vector, item.labels);
                    }
                }
                Update::Remove { id, .. } => shard.remove(&id),
            }
        }
        self.metrics.set_shard_items(shard_id as usize, shard.len());
    }

    fn search(&self, req: &SearchRequest) -> Result<SearchResponse, NodeError> {
        let Some(shards) = self.shards.get() else {
            return Err(NodeError::NotReady);
        };
        if req.query.len() != self.dim || req.k == 0 {
            return Err(NodeError::BadRequest(format!(
                "expected a {}-d query and k > 0",
                self.dim
            )));
        }
        if let Some(s) = req.shards.iter().find(|s| !shards.contains_key(s)) {
            return Err(NodeError::NotHosted(*s));
        }
        let (k, ef) = (req.k as usize, req.ef.max(req.k) as usize);
        let shards = req
            .shards
            .par_iter()
            .filter_map(|s| {
                let shard = shards.get(s)?;
                Some((*s, shard.search(&req.query, k, ef, &req.filter)))
            })
            .collect();
        Ok(SearchResponse { shards })
    }

    /// Loads the shards (retrying while ScyllaDB is unreachable), turns ready, then applies
    /// the change log every `sync_interval_ms`.
    pub fn spawn_sync(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let node = self.clone();
        tokio::spawn(async move {
            let shards = loop {
                match node.load().await {
                    Ok(shards) => break shards,
                    Err(e) => {
                        tracing::warn!(error = %e, "shards not loaded from the catalogue; retrying");
                        tokio::time::sleep(LOAD_RETRY).await;
                    }
                }
            };
            let shards = node.shards.get_or_init(|| shards);
            tracing::info!(
                shards = ?shards.keys().collect::<Vec<_>>(),
                items = shards.values().map(|s| s.len()).sum::<usize>(),
                "shard node ready"
            );
            let mut tick =
                tokio::time::interval(Duration::from_millis(node.cluster.sync_interval_ms.max(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                for (&s, shard) in shards {
                    let round = node.follower.poll_apply(s, |updates| {
                        if !updates.is_empty() {
                            node.apply(shard, s, updates);
                        }
                    });
                    match round.await {
                        Ok(()) => {}
                        Err(e) => {
                            tracing::warn!(shard = s, error = %e, "change log not read");
                            break;
                        }
                    }
                }
            }
        })
    }

    /// Reads the change log of the given hosted shards now (a router's hint after a write,
    /// so the write is searchable when it is acknowledged); returns the updates applied.
    pub async fn sync_now(&self, shards: &[u32]) -> Result<usize, NodeError> {
        let Some(hosted) = self.shards.get() else {
            return Err(NodeError::NotReady);
        };
        let mut applied = 0;
        for s in shards {
            let shard = hosted.get(s).ok_or(NodeError::NotHosted(*s))?;
            applied += self
                .follower
                .poll_apply(*s, |updates| {
                    let n = updates.len();
                    self.apply(shard, *s, updates);
                    n
                })
                .await?;
        }
        Ok(applied)
    }

    /// The internal RPC (routers only; keep it off the public network).
    pub fn internal_app(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/internal/v1/info", get(info))
            .route("/internal/v1/search", post(search))
            .route("/internal/v1/sync", post(sync_now))
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

async fn sync_now(
    State(node): State<Arc<ShardNode>>,
    Json(shards): Json<Vec<u32>>,
) -> Result<Json<serde_json::Value>, NodeError> {
    let applied = node.sync_now(&shards).await?;
    Ok(Json(serde_json::json!({ "applied": applied })))
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
            "status": if info.ready { "ready" } else { "loading" },
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

/// Largest internal call body (a search: a query vector and a filter).
const MAX_INTERNAL_BODY: usize = 16 << 20;

fn refuse(code: ErrorCode, message: &str) -> Response {
    let status = StatusCode::from_u16(code.status()).expect("error codes carry valid statuses");
    (status, Json(ErrorBody::new(code, message))).into_response()
}

/// The filter labels of a stored item (its JSON), as the router's catalogue computes them.
fn labels_of(record: &CatalogRecord) -> Labels {
    match record.item.as_deref().map(serde_json::from_slice::<Item>) {
        Some(Ok(item)) => index_labels(&item),
        Some(Err(e)) => {
            tracing::warn!(item = %record.id, error = %e, "stored item is not valid JSON; indexed without labels");
            Labels::default()
        }
        None => Labels::default(),
    }
}
