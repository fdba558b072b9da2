//! The embedded default store: interactions and the catalogue in a `redb` file.
//!
//! redb commits are ACID and fsync'd, so an acknowledged write survives `kill -9`. Writes go
//! through one writer thread that groups whatever is queued into a single transaction (group
//! commit): one fsync acknowledges many concurrent requests, which keeps durable event
//! ingestion fast without weakening the guarantee.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, PoisonError};

use async_trait::async_trait;
use half::f16;
use redb::{Database, ReadableTable, TableDefinition};
use shared_types::Item;
use tokio::sync::oneshot;

use super::{Interaction, InteractionStore, ItemStore, StoreError, StoredItem};

/// (user_id, timestamp, sequence) → JSON interaction. Keys sort by user then time.
const EVENTS: TableDefinition<(&str, i64, u64), &[u8]> = TableDefinition::new("events");
/// (user_id, event_id) → the event's timestamp: what makes a retried event a duplicate.
const EVENT_IDS: TableDefinition<(&str, &str), i64> = TableDefinition::new("event_ids");
/// item_id → encoded [`StoredItem`].
const ITEMS: TableDefinition<&str, &[u8]> = TableDefinition::new("items");
/// Counters that must survive restarts.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Requests queued in one group commit at most.
const MAX_GROUP: usize = 512;

enum WriteOp {
    Events(Vec<Interaction>),
    Upsert(Vec<StoredItem>),
    Delete(String),
    /// Every event of a user.
    EraseUser(String),
    /// A tiny commit that tells whether writes are stored again after a failure.
    Probe,
}

struct WriteRequest {
    op: WriteOp,
    done: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// What a write did.
#[derive(Default)]
struct Outcome {
    /// Rows written or removed.
    rows: usize,
    /// For events: whether each was new (false: stored before, under the same id).
    fresh: Vec<bool>,
}

pub struct EmbeddedStore {
    db: Arc<Database>,
    /// Why the last commit failed; cleared by the next one that succeeds.
    write_failure: Arc<std::sync::Mutex<Option<String>>>,
    /// `None` only while dropping.
    writer: Option<mpsc::Sender<WriteRequest>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    version: AtomicU64,
}

impl Drop for EmbeddedStore {
    /// Stops the writer and waits for it, so the database is closed (and can be opened
    /// again) once the store is gone. Queued writes are committed first.
    fn drop(&mut self) {
        self.writer.take();
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl EmbeddedStore {
    /// Opens (or creates) `dir/reco.redb`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(unavailable)?;
        let db = Arc::new(Database::create(dir.join("reco.redb")).map_err(unavailable)?);
        let (event_seq, version) = {
            let tx = db.begin_write().map_err(unavailable)?;
            tx.open_table(EVENTS).map_err(unavailable)?;
            tx.open_table(EVENT_IDS).map_err(unavailable)?;
            tx.open_table(ITEMS).map_err(unavailable)?;
            let counters = {
                let meta = tx.open_table(META).map_err(unavailable)?;
                let get = |k| {
                    meta.get(k)
                        .map(|v| v.map_or(0, |g| g.value()))
                        .map_err(unavailable)
                };
                (get("event_seq")?, get("version")?)
            };
            tx.commit().map_err(unavailable)?;
            counters
        };
        let (writer, queue) = mpsc::channel();
        let writer_db = db.clone();
        let write_failure = Arc::new(std::sync::Mutex::new(None));
        let failure = write_failure.clone();
        let writer_thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run_writer(&writer_db, &queue, event_seq, &failure))
            .map_err(unavailable)?;
        Ok(Self {
            db,
            write_failure,
            writer: Some(writer),
            writer_thread: Some(writer_thread),
            version: AtomicU64::new(version),
        })
    }

    async fn write(&self, op: WriteOp) -> Result<Outcome, StoreError> {
        let (done, wait) = oneshot::channel();
        self.writer
            .as_ref()
            .ok_or_else(|| unavailable("store is closing"))?
            .send(WriteRequest { op, done })
            .map_err(|_| unavailable("store writer stopped"))?;
        wait.await
            .map_err(|_| unavailable("store writer stopped"))?
    }

    /// Calls `f` on every stored interaction, per user in time order. Used at start-up to
    /// rebuild the in-process graph and popularity counts.
    pub fn replay_events(&self, f: impl FnMut(Interaction)) -> Result<(), StoreError> {
        read_events(&self.db, f)
    }

    /// Whether any item is stored (decides whether the demo catalogue is loaded).
    pub fn has_items(&self) -> Result<bool, StoreError> {
        let tx = self.db.begin_read().map_err(unavailable)?;
        let table = tx.open_table(ITEMS).map_err(unavailable)?;
        let any = table.first().map_err(unavailable)?.is_some();
        Ok(any)
    }
}

/// The keys of one user's events in [`EVENTS`].
fn user_range(user: &str) -> std::ops::RangeInclusive<(&str, i64, u64)> {
    (user, i64::MIN, 0)..=(user, i64::MAX, u64::MAX)
}

/// Calls `f` on every stored interaction, per user in time order.
fn read_events(db: &Database, mut f: impl FnMut(Interaction)) -> Result<(), StoreError> {
    let tx = db.begin_read().map_err(unavailable)?;
    let table = tx.open_table(EVENTS).map_err(unavailable)?;
    for row in table.iter().map_err(unavailable)? {
        let (_, value) = row.map_err(unavailable)?;
        f(
            serde_json::from_slice(value.value())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        );
    }
    Ok(())
}

/// The writer thread: drains the queue into one transaction, commits, acknowledges.
fn run_writer(
    db: &Database,
    queue: &mpsc::Receiver<WriteRequest>,
    mut event_seq: u64,
    failure: &std::sync::Mutex<Option<String>>,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut seq = event_seq;
        let result = apply(db, &batch, &mut seq);
        match result {
            Ok(outcomes) => {
                *failure.lock().unwrap_or_else(PoisonError::into_inner) = None;
                event_seq = seq;
                for (req, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = req.done.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store commit failed");
                *failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
                for req in batch {
                    let _ = req.done.send(Err(unavailable(&e)));
                }
            }
        }
    }
}

fn apply(
    db: &Database,
    batch: &[WriteRequest],
    event_seq: &mut u64,
) -> Result<Vec<Outcome>, StoreError> {
    let tx = db.begin_write().map_err(unavailable)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    {
        let mut events = tx.open_table(EVENTS).map_err(unavailable)?;
        let mut event_ids = tx.open_table(EVENT_IDS).map_err(unavailable)?;
        let mut items = tx.open_table(ITEMS).map_err(unavailable)?;
        let mut meta = tx.open_table(META).map_err(unavailable)?;
        let mut max_version = meta
            .get("version")
            .map_err(unavailable)?
            .map_or(0, |v| v.value());
        for req in batch {
            let outcome = match &req.op {
                WriteOp::Events(list) => {
                    let mut fresh = Vec::with_capacity(list.len());
                    for e in list {
                        let event_id = e.id();
                        let id = (e.user_id.as_str(), event_id.as_ref());
                        // In this transaction: a repeat in the same group commit is seen too.
                        if event_ids.get(id).map_err(unavailable)?.is_some() {
                            fresh.push(false);
                            continue;
                        }
                        event_ids.insert(id, e.timestamp).map_err(unavailable)?;
                        *event_seq += 1;
                        let value = if e.event_id.is_empty() {
                            serde_json::to_vec(&Interaction {
                                event_id: event_id.to_string(),
                                ..e.clone()
                            })
                        } else {
                            serde_json::to_vec(e)
                        }
                        .map_err(unavailable)?;
                        events
                            .insert(
                                (e.user_id.as_str(), e.timestamp, *event_seq),
                                value.as_slice(),
                            )
                            .map_err(unavailable)?;
                        fresh.push(true);
                    }
                    Outcome {
                        rows: fresh.iter().filter(|f| **f).count(),
                        fresh,
                    }
                }
                WriteOp::Upsert(list) => {
                    for item in list {
                        max_version = max_version.max(item.version);
                        items
                            .insert(item.item.id.as_str(), encode_item(item)?.as_slice())
                            .map_err(unavailable)?;
                    }
                    Outcome {
                        rows: list.len(),
                        ..Outcome::default()
                    }
                }
                WriteOp::Probe => {
                    let probes = meta
                        .get("probe")
                        .map_err(unavailable)?
                        .map_or(0, |v| v.value());
                    meta.insert("probe", probes + 1).map_err(unavailable)?;
                    Outcome::default()
                }
                WriteOp::Delete(id) => Outcome {
                    rows: usize::from(items.remove(id.as_str()).map_err(unavailable)?.is_some()),
                    ..Outcome::default()
                },
                WriteOp::EraseUser(user) => {
                    // Removed from the table in this commit, so the replay at start no longer
                    // sees them.
                    let mut removed = 0;
                    events
                        .retain_in(user_range(user), |_, _| {
                            removed += 1;
                            false
                        })
                        .map_err(unavailable)?;
                    // Event ids are ASCII, so they all sort before "\u{7f}".
                    event_ids
                        .retain_in((user.as_str(), "")..(user.as_str(), "\u{7f}"), |_, _| false)
                        .map_err(unavailable)?;
                    Outcome {
                        rows: removed,
                        ..Outcome::default()
                    }
                }
            };
            outcomes.push(outcome);
        }
        meta.insert("event_seq", *event_seq).map_err(unavailable)?;
        meta.insert("version", max_version).map_err(unavailable)?;
    }
    tx.commit().map_err(unavailable)?;
    Ok(outcomes)
}

/// `[u32 json length][item JSON][version u64][f16 vector]`, little-endian.
fn encode_item(item: &StoredItem) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_vec(&item.item).map_err(unavailable)?;
    let mut out = Vec::with_capacity(12 + json.len() + item.vector.len() * 2);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&item.version.to_le_bytes());
    for x in &item.vector {
        out.extend_from_slice(&f16::from_f32(*x).to_le_bytes());
    }
    Ok(out)
}

fn decode_item(bytes: &[u8]) -> Result<StoredItem, StoreError> {
    let corrupt = || StoreError::Corrupt("item record".into());
    let len = u32::from_le_bytes(
        bytes
            .get(..4)
            .ok_or_else(corrupt)?
            .try_into()
            .map_err(|_| corrupt())?,
    ) as usize;
    let json = bytes.get(4..4 + len).ok_or_else(corrupt)?;
    let item: Item =
        serde_json::from_slice(json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let rest = &bytes[4 + len..];
    let version = u64::from_le_bytes(
        rest.get(..8)
            .ok_or_else(corrupt)?
            .try_into()
            .map_err(|_| corrupt())?,
    );
    let vector = rest[8..]
        .chunks_exact(2)
        .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    Ok(StoredItem {
        item,
        version,
        vector,
    })
}

#[async_trait]
impl InteractionStore for EmbeddedStore {
    async fn append(&self, events: Vec<Interaction>) -> Result<Vec<Interaction>, StoreError> {
        let outcome = self.write(WriteOp::Events(events.clone())).await?;
        Ok(events
            .into_iter()
            .zip(outcome.fresh)
            .filter_map(|(e, fresh)| fresh.then_some(e))
            .collect())
    }

    async fn recent(&self, user_id: &str, limit: usize) -> Result<Vec<Interaction>, StoreError> {
        let db = self.db.clone();
        let user = user_id.to_string();
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = tx.open_table(EVENTS).map_err(unavailable)?;
            let range = table.range(user_range(&user)).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in range.rev().take(limit) {
                let (_, value) = row.map_err(unavailable)?;
                out.push(
                    serde_json::from_slice(value.value())
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                );
            }
            Ok(out)
        })
        .await
        .map_err(unavailable)?
    }

    async fn erase_user(&self, user_id: &str) -> Result<usize, StoreError> {
        Ok(self
            .write(WriteOp::EraseUser(user_id.to_string()))
            .await?
            .rows)
    }

    /// Reads the log inline: it runs once, at start, before requests are served.
    async fn replay(&self, f: &mut (dyn FnMut(Interaction) + Send)) -> Result<(), StoreError> {
        self.replay_events(f)
    }

    async fn log(&self) -> Result<Vec<Interaction>, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            read_events(&db, |e| out.push(e))?;
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }
}

#[async_trait]
impl ItemStore for EmbeddedStore {
    async fn upsert(&self, items: Vec<StoredItem>) -> Result<(), StoreError> {
        self.write(WriteOp::Upsert(items)).await.map(|_| ())
    }

    async fn delete(&self, item_id: &str) -> Result<bool, StoreError> {
        Ok(self.write(WriteOp::Delete(item_id.to_string())).await?.rows > 0)
    }

    /// Healthy until a commit fails; then each check tries a tiny commit, and reports the
    /// failure until one succeeds (redb itself may refuse every write after an I/O error
    /// until the process restarts).
    async fn check_writable(&self) -> Result<(), StoreError> {
        let failed = self
            .write_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match failed {
            None => Ok(()),
            Some(why) => self.write(WriteOp::Probe).await.map(|_| ()).map_err(|e| {
                StoreError::Unavailable(format!("storage refuses writes: {why} (now: {e})"))
            }),
        }
    }

    async fn load_all(&self) -> Result<Vec<StoredItem>, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = tx.open_table(ITEMS).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in table.iter().map_err(unavailable)? {
                let (_, value) = row.map_err(unavailable)?;
                out.push(decode_item(value.value())?);
            }
            Ok(out)
        })
        .await
        .map_err(unavailable)?
    }

    fn next_version(&self) -> u64 {
        self.version.fetch_add(1, Ordering::SeqCst) + 1
    }
}
