//! What a cluster's ranking policy learns from, in ScyllaDB: the impressions routers served
//! (so an event reaching any router rewards the response it refers to, whichever router
//! served it) and each router's sums of observations (which every router adds up, so no
//! router's learning overwrites another's; see `policy::shared`).
//!
//! - `impressions (id)`: one response as shown, for `policy.impression_ttl_secs`.
//! - `impression_rewards ((id), item_id, user_id)`: a reward taken, claimed with a
//!   lightweight transaction so that two routers never count the same user and item twice.
//! - `user_impressions ((user_id), id, item_id)`: a user's impressions and rewards, so an
//!   erasure finds them (`item_id` is empty for an impression served to the user).
//! - `policy_stats ((policy), segment, writer)`: each writer's sums per segment.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row};
use serde::{Deserialize, Serialize};

use super::scylla::{open_session, prepare_on, Lazy};
use super::{ImpressionStore, StoreError};
use crate::config::ScyllaConfig;
use crate::policy::{
    Attribution, Features, Impression, LoggedDecision, SegmentStats, FEATURE_NAMES,
    MAX_REWARDS_PER_IMPRESSION,
};

/// The `policy` partition of `policy_stats` the ranking policy writes.
const RANKING_POLICY: &str = "ranking";

/// Impression writes in flight at once; beyond, an impression is dropped (and logged)
/// rather than letting a slow cluster pile up writes behind the reads.
const RECORDS_IN_FLIGHT: usize = 1024;

/// An impression as stored (JSON in `impressions.body`).
#[derive(Serialize, Deserialize)]
struct StoredImpression {
    segment: String,
    shown: Vec<(String, Features)>,
    lead: Option<StoredLead>,
}

#[derive(Serialize, Deserialize)]
struct StoredLead {
    candidates: Vec<Features>,
    chosen: usize,
    propensity: f32,
}

impl StoredImpression {
    fn of(impression: &Impression) -> Self {
        Self {
            segment: impression.segment.clone(),
            shown: impression
                .shown
                .iter()
                .map(|(id, x)| (id.to_string(), *x))
                .collect(),
            lead: impression.lead.as_ref().map(|l| StoredLead {
                candidates: l.candidates.clone(),
                chosen: l.chosen,
                propensity: l.propensity,
            }),
        }
    }

    fn decision(self, reward: f32) -> Option<LoggedDecision> {
        let lead = self.lead?;
        Some(LoggedDecision {
            segment: self.segment,
            candidates: lead.candidates,
            chosen: lead.chosen,
            propensity: lead.propensity,
            reward,
        })
    }
}

struct Prepared {
    session: Session,
    insert_impression: PreparedStatement,
    insert_user_impression: PreparedStatement,
    select_impression: PreparedStatement,
    count_rewards: PreparedStatement,
    claim_reward: PreparedStatement,
    select_user_impressions: PreparedStatement,
    delete_impression: PreparedStatement,
    delete_rewards: PreparedStatement,
    delete_reward: PreparedStatement,
    delete_user_impressions: PreparedStatement,
    scan_impressions: PreparedStatement,
    scan_rewards: PreparedStatement,
    save_stats: PreparedStatement,
    load_stats: PreparedStatement,
}

/// A cluster's impressions and policy sums in ScyllaDB.
pub struct ScyllaPolicyStore {
    config: ScyllaConfig,
    /// TTL of impressions and their rewards (seconds).
    ttl: i32,
    records: tokio::sync::Semaphore,
    connected: Lazy<Prepared>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("scylla {what}: {e}"))
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

type StatsRow = (
    String,
    String,
    String,
    Option<Vec<f64>>,
    Option<Vec<f64>>,
    i64,
);

impl ScyllaPolicyStore {
    pub fn new(config: ScyllaConfig, impression_ttl_secs: u64) -> Self {
        Self {
            config,
            ttl: impression_ttl_secs.clamp(1, i32::MAX as u64) as i32,
            records: tokio::sync::Semaphore::new(RECORDS_IN_FLIGHT),
            connected: Lazy::default(),
        }
    }

    async fn session(&self) -> Result<Arc<Prepared>, StoreError> {
        self.connected.get(&self.config.nodes, || self.open()).await
    }

    async fn open(&self) -> Result<Prepared, StoreError> {
        let session = open_session(&self.config).await?;
        let ks = &self.config.keyspace;
        let prepare = |cql: String| prepare_on(&session, cql);
        let mut scan_impressions =
            prepare(format!("SELECT token(id), id, body FROM {ks}.impressions")).await?;
        scan_impressions.set_page_size(self.config.page_size.max(1));
        let mut scan_rewards = prepare(format!(
            "SELECT id, item_id, reward FROM {ks}.impression_rewards WHERE token(id) <= ?"
        ))
        .await?;
        scan_rewards.set_page_size(self.config.page_size.max(1));
        Ok(Prepared {
            insert_impression: prepare(format!(
                "INSERT INTO {ks}.impressions (id, user_id, body) VALUES (?, ?, ?) USING TTL ?"
            ))
            .await?,
            insert_user_impression: prepare(format!(
                "INSERT INTO {ks}.user_impressions (user_id, id, item_id) VALUES (?, ?, ?)
                 USING TTL ?"
            ))
            .await?,
            select_impression: prepare(format!(
                "SELECT user_id, body FROM {ks}.impressions WHERE id = ?"
            ))
            .await?,
            count_rewards: prepare(format!(
                "SELECT COUNT(*) FROM {ks}.impression_rewards WHERE id = ?"
            ))
            .await?,
            claim_reward: prepare(format!(
                "INSERT INTO {ks}.impression_rewards (id, item_id, user_id, reward)
                 VALUES (?, ?, ?, ?) IF NOT EXISTS USING TTL ?"
            ))
            .await?,
            select_user_impressions: prepare(format!(
                "SELECT id, item_id FROM {ks}.user_impressions WHERE user_id = ?"
            ))
            .await?,
            delete_impression: prepare(format!("DELETE FROM {ks}.impressions WHERE id = ?"))
                .await?,
            delete_rewards: prepare(format!("DELETE FROM {ks}.impression_rewards WHERE id = ?"))
                .await?,
            delete_reward: prepare(format!(
                "DELETE FROM {ks}.impression_rewards WHERE id = ? AND item_id = ? AND user_id = ?"
            ))
            .await?,
            delete_user_impressions: prepare(format!(
                "DELETE FROM {ks}.user_impressions WHERE user_id = ?"
            ))
            .await?,
            scan_impressions,
            scan_rewards,
            save_stats: prepare(format!(
                "INSERT INTO {ks}.policy_stats (policy, segment, writer, features, xx, rx, updates)
                 VALUES (?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            load_stats: prepare(format!(
                "SELECT segment, writer, features, xx, rx, updates FROM {ks}.policy_stats
                 WHERE policy = ?"
            ))
            .await?,
            session,
        })
    }

    /// Publishes `writer`'s sums (each writer overwrites only its own rows).
    pub async fn save_stats(
        &self,
        writer: &str,
        stats: &HashMap<String, SegmentStats>,
    ) -> Result<(), StoreError> {
        let c = self.session().await?;
        let features = FEATURE_NAMES.join(",");
        for (segment, s) in stats {
            let updates = i64::try_from(s.updates).map_err(corrupt)?;
            c.session
                .execute_unpaged(
                    &c.save_stats,
                    (
                        RANKING_POLICY,
                        segment.as_str(),
                        writer,
                        features.as_str(),
                        &s.xx,
                        &s.rx,
                        updates,
                    ),
                )
                .await
                .map_err(|e| unavailable("save policy sums", e))?;
        }
        Ok(())
    }

    /// Every writer's sums except `except`'s, added up per segment; rows written for other
    /// features (an older build) are left out.
    pub async fn others_stats(
        &self,
        except: &str,
    ) -> Result<HashMap<String, SegmentStats>, StoreError> {
        let c = self.session().await?;
        let features = FEATURE_NAMES.join(",");
        let mut rows = std::pin::pin!(c
            .session
            .execute_iter(c.load_stats.clone(), (RANKING_POLICY,))
            .await
            .map_err(|e| unavailable("read policy sums", e))?
            .rows_stream::<StatsRow>()
            .map_err(corrupt)?);
        let mut total: HashMap<String, SegmentStats> = HashMap::new();
        while let Some(row) = rows.next().await {
            let (segment, writer, written_for, xx, rx, updates) =
                row.map_err(|e| unavailable("read policy sums", e))?;
            if writer == except || written_for != features {
                continue;
            }
            let stats = SegmentStats {
                xx: xx.unwrap_or_default(),
                rx: rx.unwrap_or_default(),
                updates: u64::try_from(updates).unwrap_or(0),
            };
            if stats.is_valid() {
                total.entry(segment).or_default().add(&stats);
            }
        }
        Ok(total)
    }

    async fn impression(
        c: &Prepared,
        id: &str,
    ) -> Result<Option<(Option<String>, StoredImpression)>, StoreError> {
        let row = c
            .session
            .execute_unpaged(&c.select_impression, (id,))
            .await
            .map_err(|e| unavailable("read impression", e))?
            .into_rows_result()
            .map_err(corrupt)?
            .maybe_first_row::<(Option<String>, Option<Vec<u8>>)>()
            .map_err(corrupt)?;
        let Some((user, Some(body))) = row else {
            return Ok(None);
        };
        let stored = serde_json::from_slice(&body).map_err(corrupt)?;
        Ok(Some((user.filter(|u| !u.is_empty()), stored)))
    }
}

#[async_trait::async_trait]
impl ImpressionStore for ScyllaPolicyStore {
    async fn record(&self, id: String, impression: Impression) -> Result<(), StoreError> {
        let Ok(_permit) = self.records.try_acquire() else {
            return Err(StoreError::Unavailable(
                "scylla: too many impression writes in flight".into(),
            ));
        };
        let c = self.session().await?;
        let body = serde_json::to_vec(&StoredImpression::of(&impression)).map_err(corrupt)?;
        let user = impression.user.unwrap_or_default();
        // The erasure index first: an impression is never stored without it.
        if !user.is_empty() {
            c.session
                .execute_unpaged(&c.insert_user_impression, (&user, &id, "", self.ttl))
                .await
                .map_err(|e| unavailable("index impression", e))?;
        }
        c.session
            .execute_unpaged(&c.insert_impression, (&id, &user, &body, self.ttl))
            .await
            .map(|_| ())
            .map_err(|e| unavailable("write impression", e))
    }

    async fn reward(
        &self,
        id: &str,
        user: &str,
        item: &str,
        reward: f32,
    ) -> Result<Option<Attribution>, StoreError> {
        let c = self.session().await?;
        let Some((served_to, stored)) = Self::impression(&c, id).await? else {
            return Ok(None);
        };
        if served_to.is_some_and(|u| u != user) {
            return Ok(None);
        }
        let Some((_, features)) = stored.shown.iter().find(|(shown, _)| shown == item) else {
            return Ok(None);
        };
        let taken = c
            .session
            .execute_unpaged(&c.count_rewards, (id,))
            .await
            .map_err(|e| unavailable("count rewards", e))?
            .into_rows_result()
            .map_err(corrupt)?
            .maybe_first_row::<(i64,)>()
            .map_err(corrupt)?
            .map_or(0, |(n,)| n);
        if taken >= MAX_REWARDS_PER_IMPRESSION as i64 {
            return Ok(None);
        }
        // The erasure index first: a reward row is never stored without it.
        c.session
            .execute_unpaged(&c.insert_user_impression, (user, id, item, self.ttl))
            .await
            .map_err(|e| unavailable("index reward", e))?;
        let claim = c
            .session
            .execute_unpaged(
                &c.claim_reward,
                (id, item, user, f64::from(reward), self.ttl),
            )
            .await
            .map_err(|e| unavailable("claim reward", e))?
            .into_rows_result()
            .map_err(corrupt)?;
        let applied = claim
            .rows::<Row>()
            .map_err(corrupt)?
            .next()
            .transpose()
            .map_err(corrupt)?
            .and_then(|r| r.columns.into_iter().next().flatten());
        if applied != Some(CqlValue::Boolean(true)) {
            return Ok(None);
        }
        Ok(Some(Attribution {
            segment: stored.segment,
            features: *features,
        }))
    }

    async fn forget_user(&self, user: &str) -> Result<usize, StoreError> {
        let c = self.session().await?;
        let entries: Vec<(String, String)> = c
            .session
            .execute_iter(c.select_user_impressions.clone(), (user,))
            .await
            .map_err(|e| unavailable("read user impressions", e))?
            .rows_stream::<(String, String)>()
            .map_err(corrupt)?
            .map_err(|e| unavailable("read user impressions", e))
            .try_collect()
            .await?;
        let mut served = 0;
        for (id, item) in &entries {
            let result = if item.is_empty() {
                served += 1;
                let deleted = c.session.execute_unpaged(&c.delete_impression, (id,)).await;
                match deleted {
                    Ok(_) => c.session.execute_unpaged(&c.delete_rewards, (id,)).await,
                    Err(e) => Err(e),
                }
            } else {
                c.session
                    .execute_unpaged(&c.delete_reward, (id, item, user))
                    .await
            };
            result.map_err(|e| unavailable("erase impression", e))?;
        }
        c.session
            .execute_unpaged(&c.delete_user_impressions, (user,))
            .await
            .map_err(|e| unavailable("erase impressions", e))?;
        Ok(served)
    }

    /// The first `limit` impressions in token order (a uniform sample of the live ones),
    /// with the rewards their lead items earned, read from the same token range.
    async fn decisions(&self, limit: usize) -> Result<Vec<LoggedDecision>, StoreError> {
        let c = self.session().await?;
        let mut sampled: Vec<(i64, String, StoredImpression)> = Vec::new();
        {
            let mut rows = std::pin::pin!(c
                .session
                .execute_iter(c.scan_impressions.clone(), ())
                .await
                .map_err(|e| unavailable("read impressions", e))?
                .rows_stream::<(i64, String, Option<Vec<u8>>)>()
                .map_err(corrupt)?);
            while sampled.len() < limit {
                let Some(row) = rows.next().await else { break };
                let (token, id, body) = row.map_err(|e| unavailable("read impressions", e))?;
                let Some(body) = body else { continue };
                match serde_json::from_slice::<StoredImpression>(&body) {
                    Ok(stored) => sampled.push((token, id, stored)),
                    Err(e) => tracing::warn!(error = %e, "unreadable impression skipped"),
                }
            }
        }
        let Some(last_token) = sampled.last().map(|(token, _, _)| *token) else {
            return Ok(Vec::new());
        };
        let mut rewards: HashMap<(String, String), f32> = HashMap::new();
        let mut rows = std::pin::pin!(c
            .session
            .execute_iter(c.scan_rewards.clone(), (last_token,))
            .await
            .map_err(|e| unavailable("read rewards", e))?
            .rows_stream::<(String, String, Option<f64>)>()
            .map_err(corrupt)?);
        while let Some(row) = rows.next().await {
            let (id, item, reward) = row.map_err(|e| unavailable("read rewards", e))?;
            *rewards.entry((id, item)).or_default() += reward.unwrap_or(0.0) as f32;
        }
        Ok(sampled
            .into_iter()
            .filter_map(|(_, id, stored)| {
                // The lead item is the first shown.
                let lead_item = stored.shown.first()?.0.clone();
                let reward = rewards.get(&(id, lead_item)).copied().unwrap_or(0.0);
                stored.decision(reward)
            })
            .collect())
    }
}
