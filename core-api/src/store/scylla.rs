//! User interactions and profiles in ScyllaDB (any CQL server: Cassandra in the tests) with
//! the `scylla` driver: prepared statements, token-aware routing (the driver's default for
//! prepared statements), paged scans, configurable consistency and per-statement timeouts.
//!
//! The session is opened lazily and re-opened after a failure, so the core starts and keeps
//! answering (degraded, without history) while the cluster is away, and recovers by itself.
//! An append returns only after every row is confirmed at the configured consistency.
//!
//! Appends are idempotent: each (user, event id) is claimed once with a lightweight
//! transaction in `user_event_ids`, which pins the event's timestamp, and the event's row key
//! is derived from that timestamp and the id. A retry, even one that follows a crash between
//! the claim and the row, writes the very same row again and is reported as a duplicate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::client::PoolSize;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;
use scylla::value::{CqlTimestamp, CqlTimeuuid, CqlValue, Row};
use shared_types::Action;
use tokio::sync::Mutex;

use super::{Interaction, InteractionStore, StoreError, UserProfile};
use crate::config::ScyllaConfig;

/// Least time between two connection attempts while the cluster is unreachable.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// The driver's consistency for the configured level.
fn consistency(level: crate::config::Consistency) -> Consistency {
    use crate::config::Consistency as Level;
    match level {
        Level::LocalQuorum => Consistency::LocalQuorum,
        Level::Quorum => Consistency::Quorum,
        Level::EachQuorum => Consistency::EachQuorum,
        Level::LocalOne => Consistency::LocalOne,
        Level::One => Consistency::One,
        Level::Two => Consistency::Two,
        Level::Three => Consistency::Three,
        Level::All => Consistency::All,
    }
}

/// The schema, in creation order; every statement is idempotent.
pub fn schema(keyspace: &str, replication: &str) -> Vec<String> {
    vec![
        format!("CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}"),
        // `event_id` keeps two events of one user in the same second apart; newest first.
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.user_interactions (
                user_id text, timestamp timestamp, event_id timeuuid, item_id text,
                action text, recommendation_id text,
                PRIMARY KEY ((user_id), timestamp, event_id))
             WITH CLUSTERING ORDER BY (timestamp DESC, event_id DESC)
             AND compaction = {{'class': 'TimeWindowCompactionStrategy',
                'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}}"
        ),
        // One row per (user, event id): the claim that makes a retried event a duplicate,
        // with the timestamp the event was first stored at (unix seconds).
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.user_event_ids (
                user_id text, event_id text, timestamp bigint,
                PRIMARY KEY ((user_id), event_id))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.user_profiles (
                user_id text PRIMARY KEY, last_seen timestamp, last_item_id text,
                last_action text)"
        ),
        // The cluster's catalogue (see `scylla_catalog`): items by (shard, part), written at
        // their version as the CQL write time, so the last version wins on every replica.
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.items (
                shard int, part int, item_id text, version bigint, item blob, vector blob,
                PRIMARY KEY ((shard, part), item_id))"
        ),
        // Each item write, in time order per shard and hour; kept a week.
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.item_changes (
                shard int, hour bigint, change timeuuid, item_id text, version bigint,
                deleted boolean,
                PRIMARY KEY ((shard, hour), change))
             WITH default_time_to_live = 604800"
        ),
        // Small shared values of a cluster: the catalogue's shard count.
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.cluster_state (
                name text PRIMARY KEY, value text)"
        ),
        // What the ranking policy learns from in a cluster (see `scylla_policy`): the
        // responses served, the rewards taken, a user's share of both (for erasure), and
        // each router's sums of observations.
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.impressions (
                id text PRIMARY KEY, user_id text, body blob)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.impression_rewards (
                id text, item_id text, user_id text, reward double,
                PRIMARY KEY ((id), item_id, user_id))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.user_impressions (
                user_id text, id text, item_id text,
                PRIMARY KEY ((user_id), id, item_id))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.policy_stats (
                policy text, segment text, writer text, features text,
                xx list<double>, rx list<double>, updates bigint,
                PRIMARY KEY ((policy), segment, writer))"
        ),
    ]
}

/// A time-based (version 1) UUID for `micros` since the Unix epoch whose clock-sequence and
/// node bits are taken from a hash of `key`: the same key and time always give the same UUID.
pub(crate) fn timeuuid_at(micros: i64, key: &[u8]) -> CqlTimeuuid {
    use sha2::{Digest, Sha256};
    const GREGORIAN_TO_UNIX_100NS: i128 = 0x01B2_1DD2_1381_4000;
    let hash = Sha256::digest(key);
    let ticks = (i128::from(micros) * 10 + GREGORIAN_TO_UNIX_100NS) as u64;
    let mut b = [0u8; 16];
    b[0..4].copy_from_slice(&(ticks as u32).to_be_bytes());
    b[4..6].copy_from_slice(&((ticks >> 32) as u16).to_be_bytes());
    b[6..8].copy_from_slice(&((((ticks >> 48) as u16) & 0x0FFF) | 0x1000).to_be_bytes());
    b[8] = (hash[0] & 0x3F) | 0x80;
    b[9] = hash[1];
    b[10..16].copy_from_slice(&hash[2..8]);
    CqlTimeuuid::from_bytes(b)
}

struct Connected {
    session: Session,
    claim_event: PreparedStatement,
    claimed_at: PreparedStatement,
    delete_claims: PreparedStatement,
    insert_event: PreparedStatement,
    upsert_profile: PreparedStatement,
    select_recent: PreparedStatement,
    select_profile: PreparedStatement,
    scan_events: PreparedStatement,
    /// One user's events, paged (export).
    scan_user: PreparedStatement,
    count_user: PreparedStatement,
    delete_events: PreparedStatement,
    profile_written: PreparedStatement,
    delete_profile: PreparedStatement,
}

pub struct ScyllaInteractionStore {
    config: ScyllaConfig,
    connected: Lazy<Connected>,
}

/// Prepared statements on a session that is opened on first use and again after a failed
/// attempt (at most once per [`RECONNECT_BACKOFF`]); once open, the driver re-establishes
/// lost connections by itself and follows topology changes.
pub(crate) struct Lazy<C> {
    connected: std::sync::RwLock<Option<Arc<C>>>,
    /// Serialises connection attempts; holds when the last one failed.
    connecting: Mutex<Option<Instant>>,
}

impl<C> Default for Lazy<C> {
    fn default() -> Self {
        Self {
            connected: std::sync::RwLock::new(None),
            connecting: Mutex::new(None),
        }
    }
}

impl<C> Lazy<C> {
    pub(crate) async fn get<F, Fut>(&self, nodes: &str, open: F) -> Result<Arc<C>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<C, StoreError>>,
    {
        if let Some(c) = self.connected.read().expect("scylla state").clone() {
            return Ok(c);
        }
        let mut last_failure = self.connecting.lock().await;
        if let Some(c) = self.connected.read().expect("scylla state").clone() {
            return Ok(c);
        }
        if last_failure.is_some_and(|at| at.elapsed() < RECONNECT_BACKOFF) {
            return Err(StoreError::Unavailable(
                "scylla: cluster unreachable (retrying)".into(),
            ));
        }
        match open().await {
            Ok(c) => {
                let c = Arc::new(c);
                *self.connected.write().expect("scylla state") = Some(c.clone());
                *last_failure = None;
                tracing::info!(nodes, "connected to the CQL cluster");
                Ok(c)
            }
            Err(e) => {
                *last_failure = Some(Instant::now());
                Err(e)
            }
        }
    }
}

/// Opens a session on the configured nodes and creates the keyspace's schema when missing.
pub(crate) async fn open_session(config: &ScyllaConfig) -> Result<Session, StoreError> {
    let consistency = consistency(config.consistency);
    let timeout = Duration::from_millis(config.timeout_ms.max(1));
    let profile = ExecutionProfile::builder()
        .consistency(consistency)
        .request_timeout(Some(timeout))
        .build();
    let nodes: Vec<&str> = config
        .nodes
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    let pool = std::num::NonZeroUsize::new(config.pool_size.max(1)).expect("nonzero");
    let session = SessionBuilder::new()
        .known_nodes(nodes)
        .connection_timeout(timeout.max(Duration::from_secs(2)))
        .pool_size(PoolSize::PerHost(pool))
        .default_execution_profile_handle(profile.into_handle())
        .build()
        .await
        .map_err(|e| unavailable("connect", e))?;
    // Schema changes take longer than reads and writes: give them their own budget.
    let ddl_profile = ExecutionProfile::builder()
        .consistency(consistency)
        .request_timeout(Some(Duration::from_secs(30)))
        .build()
        .into_handle();
    for ddl in schema(&config.keyspace, &config.replication) {
        let mut statement = scylla::statement::unprepared::Statement::new(ddl);
        statement.set_execution_profile_handle(Some(ddl_profile.clone()));
        session
            .query_unpaged(statement, ())
            .await
            .map_err(|e| unavailable("schema", e))?;
    }
    session
        .await_schema_agreement()
        .await
        .map_err(|e| unavailable("schema agreement", e))?;
    Ok(session)
}

/// Prepares `cql` on `session`.
pub(crate) async fn prepare_on(
    session: &Session,
    cql: String,
) -> Result<PreparedStatement, StoreError> {
    session
        .prepare(cql)
        .await
        .map_err(|e| unavailable("prepare", e))
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("scylla {what}: {e}"))
}

fn parse_action(raw: &str) -> Result<Action, StoreError> {
    serde_json::from_value(serde_json::Value::String(raw.to_string()))
        .map_err(|_| StoreError::Corrupt(format!("unknown action '{raw}' in user_interactions")))
}

type EventRow = (String, CqlTimestamp, String, String, Option<String>);

fn interaction(row: EventRow) -> Result<Interaction, StoreError> {
    let (user_id, ts, item_id, action, recommendation_id) = row;
    Ok(Interaction {
        user_id,
        item_id,
        action: parse_action(&action)?,
        timestamp: ts.0.div_euclid(1000),
        recommendation_id,
        // The row keeps a time-based UUID; the client's id lives in `user_event_ids`.
        event_id: String::new(),
    })
}

/// The row key of an event: a time-based UUID at the event's second whose other bits come
/// from its id. The same event always gets the same key (a retry overwrites its own row);
/// two events in one second get different ones.
fn event_timeuuid(timestamp_secs: i64, event_id: &str) -> CqlTimeuuid {
    timeuuid_at(timestamp_secs * 1_000_000, event_id.as_bytes())
}

impl ScyllaInteractionStore {
    /// Validates the configuration; the cluster is contacted on first use.
    pub fn new(config: ScyllaConfig) -> Result<Self, StoreError> {
        Ok(Self {
            config,
            connected: Lazy::default(),
        })
    }

    /// Connects, creating the schema when missing; used at start so a reachable cluster
    /// is ready before the first request.
    pub async fn connect(&self) -> Result<(), StoreError> {
        self.session().await.map(|_| ())
    }

    async fn session(&self) -> Result<Arc<Connected>, StoreError> {
        self.connected.get(&self.config.nodes, || self.open()).await
    }

    async fn open(&self) -> Result<Connected, StoreError> {
        let session = open_session(&self.config).await?;
        let ks = &self.config.keyspace;
        let prepare = |cql: String| prepare_on(&session, cql);
        let claim_event = prepare(format!(
            "INSERT INTO {ks}.user_event_ids (user_id, event_id, timestamp) VALUES (?, ?, ?)
             IF NOT EXISTS"
        ))
        .await?;
        let claimed_at = prepare(format!(
            "SELECT timestamp FROM {ks}.user_event_ids WHERE user_id = ? AND event_id = ?"
        ))
        .await?;
        let delete_claims =
            prepare(format!("DELETE FROM {ks}.user_event_ids WHERE user_id = ?")).await?;
        let insert_event = prepare(format!(
            "INSERT INTO {ks}.user_interactions
             (user_id, timestamp, event_id, item_id, action, recommendation_id)
             VALUES (?, ?, ?, ?, ?, ?)"
        ))
        .await?;
        // Written at the event's own time, so a late older event never hides a newer one.
        let upsert_profile = prepare(format!(
            "INSERT INTO {ks}.user_profiles (user_id, last_seen, last_item_id, last_action)
             VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
        ))
        .await?;
        let select_recent = prepare(format!(
            "SELECT user_id, timestamp, item_id, action, recommendation_id
             FROM {ks}.user_interactions WHERE user_id = ? LIMIT ?"
        ))
        .await?;
        let select_profile = prepare(format!(
            "SELECT last_seen, last_item_id, last_action FROM {ks}.user_profiles WHERE user_id = ?"
        ))
        .await?;
        let mut scan_events = prepare(format!(
            "SELECT user_id, timestamp, item_id, action, recommendation_id
             FROM {ks}.user_interactions"
        ))
        .await?;
        scan_events.set_page_size(self.config.page_size.max(1));
        let mut scan_user = prepare(format!(
            "SELECT user_id, timestamp, item_id, action, recommendation_id
             FROM {ks}.user_interactions WHERE user_id = ?"
        ))
        .await?;
        scan_user.set_page_size(self.config.page_size.max(1));
        let count_user = prepare(format!(
            "SELECT COUNT(*) FROM {ks}.user_interactions WHERE user_id = ?"
        ))
        .await?;
        let delete_events = prepare(format!(
            "DELETE FROM {ks}.user_interactions WHERE user_id = ?"
        ))
        .await?;
        let profile_written = prepare(format!(
            "SELECT WRITETIME(last_seen) FROM {ks}.user_profiles WHERE user_id = ?"
        ))
        .await?;
        let delete_profile = prepare(format!(
            "DELETE FROM {ks}.user_profiles USING TIMESTAMP ? WHERE user_id = ?"
        ))
        .await?;
        Ok(Connected {
            session,
            claim_event,
            claimed_at,
            delete_claims,
            insert_event,
            upsert_profile,
            select_recent,
            select_profile,
            scan_events,
            scan_user,
            count_user,
            delete_events,
            profile_written,
            delete_profile,
        })
    }

    /// Runs `op` on the session, opening it first when needed. Once open, the driver
    /// re-establishes lost connections by itself (and follows topology changes).
    async fn with_session<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Arc<Connected>) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let c = self.session().await?;
        op(c).await
    }

    async fn recent_on(
        c: &Connected,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<Interaction>, StoreError> {
        let limit = i32::try_from(limit.max(1)).unwrap_or(i32::MAX);
        let rows = c
            .session
            .execute_unpaged(&c.select_recent, (user_id, limit))
            .await
            .map_err(|e| unavailable("read history", e))?
            .into_rows_result()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        rows.rows::<EventRow>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?
            .map(|r| r.map_err(|e| StoreError::Corrupt(e.to_string())))
            .map(|r| r.and_then(interaction))
            .collect()
    }
}

impl ScyllaInteractionStore {
    /// Claims the event's (user, id): `(true, its timestamp)` when this call stored the claim,
    /// `(false, the timestamp first claimed)` when an earlier try had.
    async fn claim(c: &Connected, e: &Interaction) -> Result<(bool, i64), StoreError> {
        let result = c
            .session
            .execute_unpaged(&c.claim_event, (&e.user_id, e.id().as_ref(), e.timestamp))
            .await
            .map_err(|err| unavailable("claim event id", err))?
            .into_rows_result()
            .map_err(|err| StoreError::Corrupt(err.to_string()))?;
        // `[applied]` first; the existing row's columns follow when it was not.
        let applied = result
            .rows::<Row>()
            .map_err(|err| StoreError::Corrupt(err.to_string()))?
            .next()
            .transpose()
            .map_err(|err| StoreError::Corrupt(err.to_string()))?
            .and_then(|row| row.columns.into_iter().next().flatten())
            .is_some_and(|v| matches!(v, CqlValue::Boolean(true)));
        if applied {
            return Ok((true, e.timestamp));
        }
        let first = c
            .session
            .execute_unpaged(&c.claimed_at, (&e.user_id, e.id().as_ref()))
            .await
            .map_err(|err| unavailable("read event id", err))?
            .into_rows_result()
            .map_err(|err| StoreError::Corrupt(err.to_string()))?
            .maybe_first_row::<(Option<i64>,)>()
            .map_err(|err| StoreError::Corrupt(err.to_string()))?
            .and_then(|(at,)| at)
            .unwrap_or(e.timestamp);
        Ok((false, first))
    }
}

#[async_trait]
impl InteractionStore for ScyllaInteractionStore {
    async fn append(&self, events: Vec<Interaction>) -> Result<Vec<Interaction>, StoreError> {
        self.with_session(|c| async move {
            // Claim every (user, event id) first; a claim held already keeps its time.
            let claiming: Vec<_> = events.iter().map(|e| Self::claim(&c, e)).collect();
            let claims: Vec<(bool, i64)> = futures::stream::iter(claiming)
                .buffered(64)
                .try_collect()
                .await?;
            let mut writes = Vec::with_capacity(events.len() * 2);
            for (e, &(_, at)) in events.iter().zip(&claims) {
                let ts = CqlTimestamp(at * 1000);
                let action = e.action.as_str();
                writes.push(futures::future::Either::Left(c.session.execute_unpaged(
                    &c.insert_event,
                    (
                        &e.user_id,
                        ts,
                        event_timeuuid(at, &e.id()),
                        &e.item_id,
                        action,
                        &e.recommendation_id,
                    ),
                )));
                writes.push(futures::future::Either::Right(c.session.execute_unpaged(
                    &c.upsert_profile,
                    (&e.user_id, ts, &e.item_id, action, e.timestamp * 1_000_000),
                )));
            }
            // Concurrent, bounded; acknowledged only when every write is confirmed. A
            // duplicate's row is written again, the same row: that completes a try that
            // stopped between its claim and its row.
            futures::stream::iter(writes)
                .buffer_unordered(64)
                .try_for_each(|_| async { Ok(()) })
                .await
                .map_err(|e| unavailable("write", e))?;
            Ok(events
                .into_iter()
                .zip(claims)
                .filter_map(|(e, (fresh, _))| fresh.then_some(e))
                .collect())
        })
        .await
    }

    async fn recent(&self, user_id: &str, limit: usize) -> Result<Vec<Interaction>, StoreError> {
        self.with_session(|c| async move { Self::recent_on(&c, user_id, limit).await })
            .await
    }

    async fn user_events(&self, user_id: &str) -> Result<Vec<Interaction>, StoreError> {
        let c = self.session().await?;
        let mut events: Vec<Interaction> = c
            .session
            .execute_iter(c.scan_user.clone(), (user_id,))
            .await
            .map_err(|e| unavailable("read history", e))?
            .rows_stream::<EventRow>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?
            .map(|row| interaction(row.map_err(|e| unavailable("read history", e))?))
            .try_collect()
            .await?;
        // The partition is newest first.
        events.reverse();
        Ok(events)
    }

    /// Deletes the user's partition of events, then the profile. The profile is written at
    /// its events' own times (possibly ahead of the clock), so its tombstone takes the
    /// profile's write time: it shadows every profile written so far. A late event older
    /// than that, arriving after the erasure, is stored but does not show in the profile.
    async fn erase_user(&self, user_id: &str) -> Result<usize, StoreError> {
        self.with_session(|c| async move {
            let count = c
                .session
                .execute_unpaged(&c.count_user, (user_id,))
                .await
                .map_err(|e| unavailable("count history", e))?
                .into_rows_result()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?
                .maybe_first_row::<(i64,)>()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?
                .map_or(0, |(n,)| n.max(0) as usize);
            c.session
                .execute_unpaged(&c.delete_events, (user_id,))
                .await
                .map_err(|e| unavailable("erase history", e))?;
            c.session
                .execute_unpaged(&c.delete_claims, (user_id,))
                .await
                .map_err(|e| unavailable("erase event ids", e))?;
            let written = c
                .session
                .execute_unpaged(&c.profile_written, (user_id,))
                .await
                .map_err(|e| unavailable("read profile", e))?
                .into_rows_result()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?
                .maybe_first_row::<(Option<i64>,)>()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?
                .and_then(|(at,)| at);
            if let Some(at) = written {
                c.session
                    .execute_unpaged(&c.delete_profile, (at, user_id))
                    .await
                    .map_err(|e| unavailable("erase profile", e))?;
            }
            Ok(count)
        })
        .await
    }

    async fn recent_many(
        &self,
        user_ids: &[String],
        limit: usize,
    ) -> Result<Vec<Vec<Interaction>>, StoreError> {
        self.with_session(|c| async move {
            futures::future::try_join_all(user_ids.iter().map(|u| Self::recent_on(&c, u, limit)))
                .await
        })
        .await
    }

    async fn profile(&self, user_id: &str) -> Result<Option<UserProfile>, StoreError> {
        self.with_session(|c| async move {
            let rows = c
                .session
                .execute_unpaged(&c.select_profile, (user_id,))
                .await
                .map_err(|e| unavailable("read profile", e))?
                .into_rows_result()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let row = rows
                .maybe_first_row::<(CqlTimestamp, String, String)>()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            row.map(|(seen, item, action)| {
                Ok(UserProfile {
                    last_seen: seen.0.div_euclid(1000),
                    last_item_id: item,
                    last_action: parse_action(&action)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn replay(&self, f: &mut (dyn FnMut(Interaction) + Send)) -> Result<(), StoreError> {
        let c = self.session().await?;
        let mut rows = c
            .session
            .execute_iter(c.scan_events.clone(), ())
            .await
            .map_err(|e| unavailable("scan", e))?
            .rows_stream::<EventRow>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // Rows arrive partition by partition, newest first: hand each user's out oldest first.
        let mut user: Vec<Interaction> = Vec::new();
        while let Some(row) = rows.next().await {
            let event = interaction(row.map_err(|e| unavailable("scan", e))?)?;
            if user
                .last()
                .is_some_and(|last| last.user_id != event.user_id)
            {
                user.drain(..).rev().for_each(&mut *f);
            }
            user.push(event);
        }
        user.drain(..).rev().for_each(f);
        Ok(())
    }

    fn name(&self) -> &'static str {
        "scylla"
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.with_session(|c| async move {
            c.session
                .query_unpaged("SELECT release_version FROM system.local", ())
                .await
                .map(|_| ())
                .map_err(|e| unavailable("ping", e))
        })
        .await
    }
}
