//! The cluster's catalogue in ScyllaDB: every item with its vector, by shard, and a change
//! log per shard that shard nodes and routers follow. ScyllaDB is the store of record; the
//! processes of a cluster keep only what they can rebuild from it.
//!
//! - `items ((shard, part), item_id)`: the item's JSON, its vector (little-endian f32) and
//!   its version. Each write carries its version as the CQL write time, so replicas and
//!   concurrent writers settle on the newest version by ScyllaDB's own last-write-wins.
//! - `item_changes ((shard, hour), change)`: one row per write (upsert or deletion), in the
//!   same logged batch as the item row, so one is never stored without the other.
//! - `cluster_state`: the shard count the catalogue was written with (items are placed by
//!   it, so a process configured with another count refuses to start).

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, CqlTimeuuid, CqlValue, Row};

use super::scylla::{open_session, prepare_on, timeuuid_at, Lazy};
use super::StoreError;
use crate::config::ScyllaConfig;
use vector_index::shard_of;

/// Partitions per shard in `items`: 100M items over 20 shards stay under ~40K rows (~60 MiB
/// with 384-d vectors) per partition. Part of the schema: never change it on live data.
pub const ITEM_PARTS: u32 = 128;

/// Length of a change-log partition (µs).
const HOUR_US: u64 = 3_600_000_000;

/// Concurrent statements of one call.
const IN_FLIGHT: usize = 32;

/// An item as the catalogue holds it: `item` (its JSON) is `None` for a deletion.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogRecord {
    pub id: String,
    /// Microseconds since the epoch when the write was made; also its CQL write time.
    pub version: u64,
    pub item: Option<Vec<u8>>,
    pub vector: Vec<f32>,
}

/// One write in a shard's change log.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEntry {
    pub change: CqlTimeuuid,
    pub item_id: String,
    pub version: u64,
    pub deleted: bool,
}

struct Prepared {
    session: Session,
    upsert: Batch,
    delete: Batch,
    select_part: PreparedStatement,
    select_item: PreparedStatement,
    select_changes: PreparedStatement,
    any_item: PreparedStatement,
}

pub struct ScyllaCatalog {
    config: ScyllaConfig,
    shards: usize,
    connected: Lazy<Prepared>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("scylla {what}: {e}"))
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// The partition of an item within its shard (a hash independent of the shard's).
fn part_of(id: &str) -> i32 {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(id.as_bytes());
    (u32::from_le_bytes([h[0], h[1], h[2], h[3]]) % ITEM_PARTS) as i32
}

fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn vector_of(id: &str, bytes: &[u8]) -> Result<Vec<f32>, StoreError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return Err(StoreError::Corrupt(format!(
            "item '{id}' has a vector of {} bytes",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect())
}

type ItemRow = (String, i64, Option<Vec<u8>>, Option<Vec<u8>>);

fn record(row: ItemRow) -> Result<CatalogRecord, StoreError> {
    let (id, version, item, vector) = row;
    let vector = vector_of(&id, vector.as_deref().unwrap_or_default())?;
    Ok(CatalogRecord {
        version: u64::try_from(version).map_err(corrupt)?,
        item: Some(item.ok_or_else(|| StoreError::Corrupt(format!("item '{id}' has no JSON")))?),
        id,
        vector,
    })
}

impl ScyllaCatalog {
    /// Validates nothing yet: the cluster is contacted on first use (see [`Self::connect`]).
    pub fn new(config: ScyllaConfig, shards: usize) -> Self {
        Self {
            config,
            shards: shards.max(1),
            connected: Lazy::default(),
        }
    }

    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The cluster it connects to (other stores of the cluster's state open their own
    /// sessions on it).
    pub fn config(&self) -> &ScyllaConfig {
        &self.config
    }

    /// Connects (creating the schema when missing) and checks the shard count.
    pub async fn connect(&self) -> Result<(), StoreError> {
        self.session().await.map(|_| ())
    }

    async fn session(&self) -> Result<Arc<Prepared>, StoreError> {
        self.connected.get(&self.config.nodes, || self.open()).await
    }

    async fn open(&self) -> Result<Prepared, StoreError> {
        let session = open_session(&self.config).await?;
        let ks = &self.config.keyspace;
        self.check_shard_count(&session).await?;
        let prepare = |cql: String| prepare_on(&session, cql);
        let log_change = prepare(format!(
            "INSERT INTO {ks}.item_changes (shard, hour, change, item_id, version, deleted)
             VALUES (?, ?, ?, ?, ?, ?)"
        ))
        .await?;
        let upsert_item = prepare(format!(
            "INSERT INTO {ks}.items (shard, part, item_id, version, item, vector)
             VALUES (?, ?, ?, ?, ?, ?)"
        ))
        .await?;
        let delete_item = prepare(format!(
            "DELETE FROM {ks}.items WHERE shard = ? AND part = ? AND item_id = ?"
        ))
        .await?;
        let batch = |first: &PreparedStatement| {
            let mut b = Batch::new(BatchType::Logged);
            b.append_statement(first.clone());
            b.append_statement(log_change.clone());
            b
        };
        let mut select_part = prepare(format!(
            "SELECT item_id, version, item, vector FROM {ks}.items WHERE shard = ? AND part = ?"
        ))
        .await?;
        select_part.set_page_size(self.config.page_size.max(1));
        let select_item = prepare(format!(
            "SELECT item_id, version, item, vector FROM {ks}.items
             WHERE shard = ? AND part = ? AND item_id = ?"
        ))
        .await?;
        let select_changes = prepare(format!(
            "SELECT change, item_id, version, deleted FROM {ks}.item_changes
             WHERE shard = ? AND hour = ? AND change > minTimeuuid(?)"
        ))
        .await?;
        let any_item = prepare(format!("SELECT item_id FROM {ks}.items LIMIT 1")).await?;
        Ok(Prepared {
            upsert: batch(&upsert_item),
            delete: batch(&delete_item),
            session,
            select_part,
            select_item,
            select_changes,
            any_item,
        })
    }

    /// Records the shard count on first use and refuses another one later: items are placed
    /// by `crc32(id) % shards`, so a different count would look for them in the wrong shard.
    async fn check_shard_count(&self, session: &Session) -> Result<(), StoreError> {
        let ks = &self.config.keyspace;
        let claim = format!(
            "INSERT INTO {ks}.cluster_state (name, value) VALUES ('shards', ?) IF NOT EXISTS"
        );
        let result = session
            .query_unpaged(claim, (self.shards.to_string(),))
            .await
            .map_err(|e| unavailable("catalogue settings", e))?
            .into_rows_result()
            .map_err(corrupt)?;
        // `[applied]`, then the existing row's columns (name, value) when it was not.
        let row = result
            .rows::<Row>()
            .map_err(corrupt)?
            .next()
            .transpose()
            .map_err(corrupt)?
            .map(|r| r.columns)
            .unwrap_or_default();
        let held = match row.as_slice() {
            [_, _, Some(CqlValue::Text(value))] => Some(value.clone()),
            _ => None,
        };
        match held {
            Some(held) if held != self.shards.to_string() => Err(StoreError::Corrupt(format!(
                "the catalogue in keyspace '{ks}' was written with {held} shards, but \
                 index.shards is {}",
                self.shards
            ))),
            _ => Ok(()),
        }
    }

    /// The shard an item belongs to.
    pub fn shard_of(&self, id: &str) -> u32 {
        shard_of(id, self.shards) as u32
    }

    /// Stores items and deletions durably (each with its change-log row, atomically), at
    /// their versions as write times; returns once every write is confirmed at the
    /// configured consistency.
    pub async fn write(&self, records: &[CatalogRecord]) -> Result<(), StoreError> {
        let c = self.session().await?;
        let writes: Vec<_> = records
            .iter()
            .map(|r| write_one(c.clone(), self.shard_of(&r.id) as i32, r.clone()))
            .collect();
        futures::stream::iter(writes)
            .buffer_unordered(IN_FLIGHT)
            .try_for_each(|_| async { Ok(()) })
            .await
    }

    /// Every live item of `shard`.
    pub async fn load_shard(&self, shard: u32) -> Result<Vec<CatalogRecord>, StoreError> {
        let c = self.session().await?;
        let parts = (0..ITEM_PARTS as i32).map(|part| {
            let c = c.clone();
            async move {
                c.session
                    .execute_iter(c.select_part.clone(), (shard as i32, part))
                    .await
                    .map_err(|e| unavailable("read items", e))?
                    .rows_stream::<ItemRow>()
                    .map_err(corrupt)?
                    .map(|row| record(row.map_err(|e| unavailable("read items", e))?))
                    .try_collect::<Vec<_>>()
                    .await
            }
        });
        let loaded: Vec<Vec<CatalogRecord>> = futures::stream::iter(parts)
            .buffer_unordered(IN_FLIGHT / 2)
            .try_collect()
            .await?;
        Ok(loaded.into_iter().flatten().collect())
    }

    /// The current state of items of `shard`, in the order asked (`None`: not stored).
    pub async fn read(
        &self,
        shard: u32,
        ids: &[String],
    ) -> Result<Vec<Option<CatalogRecord>>, StoreError> {
        let c = self.session().await?;
        let reads: Vec<_> = ids
            .iter()
            .map(|id| {
                let (c, id) = (c.clone(), id.clone());
                async move {
                    c.session
                        .execute_unpaged(&c.select_item, (shard as i32, part_of(&id), id.as_str()))
                        .await
                        .map_err(|e| unavailable("read item", e))?
                        .into_rows_result()
                        .map_err(corrupt)?
                        .maybe_first_row::<ItemRow>()
                        .map_err(corrupt)?
                        .map(record)
                        .transpose()
                }
            })
            .collect();
        futures::stream::iter(reads)
            .buffered(IN_FLIGHT)
            .try_collect()
            .await
    }

    /// The change-log entries of `shard` made after `since_us` (by the writers' clocks), up
    /// to the hour of `until_us`, in time order.
    pub async fn changes(
        &self,
        shard: u32,
        since_us: u64,
        until_us: u64,
    ) -> Result<Vec<ChangeEntry>, StoreError> {
        let c = self.session().await?;
        let since = CqlTimestamp((since_us / 1000) as i64);
        let mut out = Vec::new();
        for hour in since_us / HOUR_US..=until_us.max(since_us) / HOUR_US {
            let rows = c
                .session
                .execute_iter(c.select_changes.clone(), (shard as i32, hour as i64, since))
                .await
                .map_err(|e| unavailable("read changes", e))?
                .rows_stream::<(CqlTimeuuid, String, i64, bool)>()
                .map_err(corrupt)?;
            let mut rows = std::pin::pin!(rows);
            while let Some(row) = rows.next().await {
                let (change, item_id, version, deleted) =
                    row.map_err(|e| unavailable("read changes", e))?;
                out.push(ChangeEntry {
                    change,
                    item_id,
                    version: u64::try_from(version).map_err(corrupt)?,
                    deleted,
                });
            }
        }
        Ok(out)
    }

    /// Whether the catalogue holds no item at all.
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        let c = self.session().await?;
        let rows = c
            .session
            .execute_unpaged(&c.any_item, ())
            .await
            .map_err(|e| unavailable("read items", e))?
            .into_rows_result()
            .map_err(corrupt)?;
        Ok(rows.rows_num() == 0)
    }

    /// Whether the cluster answers.
    pub async fn check(&self) -> Result<(), StoreError> {
        let c = self.session().await?;
        c.session
            .query_unpaged("SELECT release_version FROM system.local", ())
            .await
            .map(|_| ())
            .map_err(|e| unavailable("ping", e))
    }
}

/// One item write and its change-log row, in one logged batch at the version's write time.
async fn write_one(c: Arc<Prepared>, shard: i32, r: CatalogRecord) -> Result<(), StoreError> {
    let version = i64::try_from(r.version).map_err(corrupt)?;
    let mut key = r.id.as_bytes().to_vec();
    key.extend_from_slice(&r.version.to_le_bytes());
    let change = (
        shard,
        (r.version / HOUR_US) as i64,
        timeuuid_at(version, &key),
        r.id.as_str(),
        version,
        r.item.is_none(),
    );
    let result = match &r.item {
        Some(item) => {
            let mut batch = c.upsert.clone();
            batch.set_timestamp(Some(version));
            let row = (
                shard,
                part_of(&r.id),
                r.id.as_str(),
                version,
                item.as_slice(),
                vector_bytes(&r.vector),
            );
            c.session.batch(&batch, (row, change)).await
        }
        None => {
            let mut batch = c.delete.clone();
            batch.set_timestamp(Some(version));
            let key = (shard, part_of(&r.id), r.id.as_str());
            c.session.batch(&batch, (key, change)).await
        }
    };
    result.map(|_| ()).map_err(|e| unavailable("write item", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_and_bad_lengths_are_corrupt() {
        let v = vec![0.25f32, -1.5, 3.0];
        assert_eq!(vector_of("a", &vector_bytes(&v)).unwrap(), v);
        assert!(matches!(
            vector_of("a", &[1, 2, 3]),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(vector_of("a", &[]), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn parts_spread_items_and_stay_in_range() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..5000 {
            let p = part_of(&format!("item-{i}"));
            assert!((0..ITEM_PARTS as i32).contains(&p));
            seen.insert(p);
        }
        assert_eq!(
            seen.len(),
            ITEM_PARTS as usize,
            "5,000 ids reach every part"
        );
        assert_eq!(part_of("x"), part_of("x"));
    }
}
