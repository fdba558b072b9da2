//! Following the catalogue's change log in ScyllaDB: shard nodes (for their shards) and
//! routers (for all) load every item once, then read each shard's new change-log entries
//! and the items they name, and apply what they read.
//!
//! A change-log entry only says that an item was written at some version; what is applied
//! is the item as ScyllaDB holds it now. So entries may be read in any order, twice, or
//! together with a later write of the same item, and every follower still ends on the
//! stored state. Each round re-reads the last [`CHANGE_WINDOW_US`] of the log: a logged
//! batch may become visible a little after later ones, and an entry whose item is not yet
//! visible at its version is tried again in the next round.

use std::collections::HashMap;
use std::sync::Arc;

use scylla::value::CqlTimeuuid;

use crate::store::scylla_catalog::ChangeEntry;
use crate::store::{CatalogRecord, ScyllaCatalog, StoreError};

/// How far back (µs) each round re-reads the change log. Writers' clocks must agree to
/// well within it (NTP).
pub const CHANGE_WINDOW_US: u64 = 10_000_000;

/// What a follower applies.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// The item as stored now.
    Upsert(CatalogRecord),
    /// The item was deleted at `version` (and not written again since).
    Remove { id: String, version: u64 },
}

impl Update {
    pub fn id(&self) -> &str {
        match self {
            Self::Upsert(r) => &r.id,
            Self::Remove { id, .. } => id,
        }
    }

    pub fn version(&self) -> u64 {
        match self {
            Self::Upsert(r) => r.version,
            Self::Remove { version, .. } => *version,
        }
    }
}

#[derive(Default)]
struct Cursor {
    /// Log read up to here (µs, this process's clock).
    reached_us: u64,
    /// Entries of the window already applied, with their versions (to forget them).
    applied: HashMap<CqlTimeuuid, u64>,
}

/// A position in the change log of each followed shard.
pub struct Follower {
    catalog: Arc<ScyllaCatalog>,
    cursors: HashMap<u32, tokio::sync::Mutex<Cursor>>,
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Follower {
    pub fn new(catalog: Arc<ScyllaCatalog>, shards: impl IntoIterator<Item = u32>) -> Self {
        Self {
            catalog,
            cursors: shards
                .into_iter()
                .map(|s| (s, tokio::sync::Mutex::new(Cursor::default())))
                .collect(),
        }
    }

    pub fn catalog(&self) -> &Arc<ScyllaCatalog> {
        &self.catalog
    }

    fn cursor(&self, shard: u32) -> &tokio::sync::Mutex<Cursor> {
        self.cursors
            .get(&shard)
            .expect("only followed shards are asked for")
    }

    /// Every live item of `shard`; the shard's log is then followed from shortly before the
    /// load began, so writes made during the load are applied too.
    pub async fn load(&self, shard: u32) -> Result<Vec<CatalogRecord>, StoreError> {
        let mut cursor = self.cursor(shard).lock().await;
        let started = now_us();
        let items = self.catalog.load_shard(shard).await?;
        *cursor = Cursor {
            reached_us: started,
            applied: HashMap::new(),
        };
        Ok(items)
    }

    /// What changed in `shard` since the last round: for each item written, its stored
    /// state once that is at least as new as the write read from the log.
    pub async fn poll(&self, shard: u32) -> Result<Vec<Update>, StoreError> {
        self.poll_apply(shard, |updates| updates).await
    }

    /// [`Self::poll`], with `apply` run on the updates before the next round of this shard
    /// can start: two rounds that overlap (a timer and a hint) then never apply an older
    /// state after a newer one.
    pub async fn poll_apply<R>(
        &self,
        shard: u32,
        apply: impl FnOnce(Vec<Update>) -> R,
    ) -> Result<R, StoreError> {
        let mut cursor = self.cursor(shard).lock().await;
        let now = now_us();
        let since = cursor.reached_us.saturating_sub(CHANGE_WINDOW_US);
        let entries = self
            .catalog
            .changes(shard, since, now + CHANGE_WINDOW_US)
            .await?;
        // The newest unapplied entry per item, and every unapplied entry of it.
        let mut per_item: HashMap<String, (ChangeEntry, Vec<CqlTimeuuid>)> = HashMap::new();
        for e in entries {
            if cursor.applied.contains_key(&e.change) {
                continue;
            }
            let slot = per_item
                .entry(e.item_id.clone())
                .or_insert_with(|| (e.clone(), Vec::new()));
            slot.1.push(e.change);
            if e.version > slot.0.version {
                slot.0 = e;
            }
        }
        let ids: Vec<String> = per_item.keys().cloned().collect();
        let stored = self.catalog.read(shard, &ids).await?;
        let mut updates = Vec::new();
        for (id, now_stored) in ids.into_iter().zip(stored) {
            let (newest, changes) = per_item.remove(&id).expect("asked for");
            let update = match now_stored {
                Some(r) if r.version >= newest.version => Some(Update::Upsert(r)),
                None if newest.deleted => Some(Update::Remove {
                    id,
                    version: newest.version,
                }),
                // Not visible at this version yet: the next round tries again.
                _ => None,
            };
            if let Some(update) = update {
                for change in changes {
                    cursor.applied.insert(change, newest.version);
                }
                updates.push(update);
            }
        }
        cursor.reached_us = now;
        cursor.applied.retain(|_, version| *version >= since);
        Ok(apply(updates))
    }
}
