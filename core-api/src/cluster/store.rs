//! A shard node's durable item records (redb): the items of the shards it hosts, with
//! tombstones, ordered by version so peers and routers can follow the changes.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};

use super::wire::{Cursor, Decoder, Encoder, ItemRecord};
use crate::store::StoreError;

/// (shard, item id) → encoded [`ItemRecord`].
const RECORDS: TableDefinition<(u32, &str), &[u8]> = TableDefinition::new("records");
/// (shard, version, item id): the change feed's order.
const BY_VERSION: TableDefinition<(u32, u64, &str), ()> = TableDefinition::new("by_version");
/// Small settings: this store's id, the feed positions reached at each peer.
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn decode(bytes: &[u8]) -> Result<ItemRecord, StoreError> {
    ItemRecord::decode_from(&mut Decoder::new(bytes))
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub struct NodeStore {
    db: Database,
    store_id: String,
}

impl NodeStore {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(unavailable)?;
        let db = Database::create(dir.join("shard-node.redb")).map_err(unavailable)?;
        let txn = db.begin_write().map_err(unavailable)?;
        let store_id = {
            txn.open_table(RECORDS).map_err(unavailable)?;
            txn.open_table(BY_VERSION).map_err(unavailable)?;
            let mut meta = txn.open_table(META).map_err(unavailable)?;
            let existing = meta
                .get("store_id")
                .map_err(unavailable)?
                .map(|v| v.value().to_string());
            match existing {
                Some(id) => id,
                None => {
                    // Identifies this copy of the data: a wiped volume is a new replica that
                    // must pull everything again.
                    let nanos = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as u64);
                    let id = format!("{:016x}", nanos ^ (u64::from(std::process::id()) << 40));
                    meta.insert("store_id", id.as_str()).map_err(unavailable)?;
                    id
                }
            }
        };
        txn.commit().map_err(unavailable)?;
        Ok(Self { db, store_id })
    }

    pub fn store_id(&self) -> &str {
        &self.store_id
    }

    /// Stores the records that are newer than what is held (last writer wins by version),
    /// durably, and returns those applied.
    pub fn apply(
        &self,
        shard: u32,
        records: Vec<ItemRecord>,
    ) -> Result<Vec<ItemRecord>, StoreError> {
        let txn = self.db.begin_write().map_err(unavailable)?;
        let mut applied = Vec::new();
        {
            let mut table = txn.open_table(RECORDS).map_err(unavailable)?;
            let mut by_version = txn.open_table(BY_VERSION).map_err(unavailable)?;
            for record in records {
                let held = table
                    .get((shard, record.id.as_str()))
                    .map_err(unavailable)?
                    .map(|v| decode(v.value()))
                    .transpose()?;
                if let Some(held) = &held {
                    if held.version >= record.version {
                        continue;
                    }
                    by_version
                        .remove((shard, held.version, held.id.as_str()))
                        .map_err(unavailable)?;
                }
                let mut e = Encoder::default();
                record.encode_into(&mut e);
                table
                    .insert((shard, record.id.as_str()), e.finish().as_slice())
                    .map_err(unavailable)?;
                by_version
                    .insert((shard, record.version, record.id.as_str()), ())
                    .map_err(unavailable)?;
                applied.push(record);
            }
        }
        txn.commit().map_err(unavailable)?;
        Ok(applied)
    }

    /// The live (not deleted) records of `shard`.
    pub fn live(&self, shard: u32) -> Result<Vec<ItemRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let table = txn.open_table(RECORDS).map_err(unavailable)?;
        let mut out = Vec::new();
        for entry in table
            .range((shard, "")..(shard + 1, ""))
            .map_err(unavailable)?
        {
            let (_, v) = entry.map_err(unavailable)?;
            let record = decode(v.value())?;
            if record.item.is_some() {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Up to `limit` records of `shard` after `after` in (version, id) order, tombstones
    /// included.
    pub fn changes(
        &self,
        shard: u32,
        after: &Cursor,
        limit: usize,
    ) -> Result<Vec<ItemRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let by_version = txn.open_table(BY_VERSION).map_err(unavailable)?;
        let table = txn.open_table(RECORDS).map_err(unavailable)?;
        let mut out = Vec::new();
        let start = (shard, after.version, after.id.as_str());
        for entry in by_version
            .range(start..(shard + 1, 0u64, ""))
            .map_err(unavailable)?
        {
            let (key, _) = entry.map_err(unavailable)?;
            let (_, version, id) = key.value();
            if (version, id) == (after.version, after.id.as_str()) {
                continue;
            }
            if let Some(v) = table.get((shard, id)).map_err(unavailable)? {
                out.push(decode(v.value())?);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Where the change feed of `peer` for `shard` was last read up to.
    pub fn cursor(&self, peer: &str, shard: u32) -> Result<Cursor, StoreError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let meta = txn.open_table(META).map_err(unavailable)?;
        let key = format!("cursor/{peer}/{shard}");
        Ok(meta
            .get(key.as_str())
            .map_err(unavailable)?
            .and_then(|v| {
                let (version, id) = v.value().split_once('/')?;
                Some(Cursor {
                    version: version.parse().ok()?,
                    id: id.to_string(),
                })
            })
            .unwrap_or_default())
    }

    pub fn set_cursor(&self, peer: &str, shard: u32, cursor: &Cursor) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(unavailable)?;
        {
            let mut meta = txn.open_table(META).map_err(unavailable)?;
            let key = format!("cursor/{peer}/{shard}");
            let value = format!("{}/{}", cursor.version, cursor.id);
            meta.insert(key.as_str(), value.as_str())
                .map_err(unavailable)?;
        }
        txn.commit().map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, version: u64, live: bool) -> ItemRecord {
        ItemRecord {
            id: id.into(),
            version,
            item: live.then(|| format!(r#"{{"id":"{id}"}}"#).into_bytes()),
            vector: vec![version as f32],
        }
    }

    #[test]
    fn newest_version_wins_and_the_feed_follows_versions() {
        let dir = std::env::temp_dir().join(format!("node-store-{}", rand::random::<u64>()));
        let store = NodeStore::open(&dir).unwrap();
        let applied = store
            .apply(1, vec![record("a", 10, true), record("b", 11, true)])
            .unwrap();
        assert_eq!(applied.len(), 2);
        // Older or equal versions are ignored; a newer tombstone deletes.
        assert!(store
            .apply(1, vec![record("a", 9, true)])
            .unwrap()
            .is_empty());
        assert_eq!(
            store.apply(1, vec![record("a", 12, false)]).unwrap().len(),
            1
        );
        store.apply(2, vec![record("c", 5, true)]).unwrap();
        let live: Vec<String> = store.live(1).unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(live, ["b"]);
        let feed = store.changes(1, &Cursor::default(), 10).unwrap();
        let order: Vec<(String, u64)> = feed.iter().map(|r| (r.id.clone(), r.version)).collect();
        assert_eq!(order, [("b".to_string(), 11), ("a".to_string(), 12)]);
        let after_b = Cursor {
            version: 11,
            id: "b".into(),
        };
        assert_eq!(store.changes(1, &after_b, 10).unwrap().len(), 1);
        assert_eq!(store.changes(1, &Cursor::default(), 1).unwrap().len(), 1);
        // Survives reopening, with the same identity and cursors.
        store.set_cursor("peer", 1, &after_b).unwrap();
        let id = store.store_id().to_string();
        drop(store);
        let store = NodeStore::open(&dir).unwrap();
        assert_eq!(store.store_id(), id);
        assert_eq!(store.cursor("peer", 1).unwrap(), after_b);
        assert_eq!(store.cursor("peer", 2).unwrap(), Cursor::default());
        assert_eq!(store.live(2).unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
