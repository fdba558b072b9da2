//! The write paths: interaction events (stored durably, then fed to popularity, the item
//! graph, the learned sources and the policy), catalogue upserts and deletes, and a user's
//! export and erasure.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use shared_types::{
    validate_item_id, validate_user_id, ErrorCode, EventsAccepted, InteractionEvent, Item,
    ItemInput,
};

use crate::catalog::{index_labels, CatalogEntry};
use crate::clock::now_secs;
use crate::error::EngineError;
use crate::store::{Interaction, StoredItem};

use super::pipeline::candidates::normalise;
use super::Engine;

/// Most items accepted by one `POST /v1/items`, events by one `POST /v1/events`.
pub const MAX_ITEMS_PER_REQUEST: usize = 10_000;
pub const MAX_EVENTS_PER_REQUEST: usize = 1_000;
/// How far in the future an event's timestamp may be (clients' clocks drift).
pub const MAX_EVENT_CLOCK_SKEW_SECS: i64 = 300;
/// How long an events request waits for the work after the commit (graph edges, cache
/// invalidation) before answering; the work goes on after the answer.
const AFTER_COMMIT_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

/// The event's id: the client's, else empty (identified by its content, see
/// [`Interaction::content_id`]) when it carries its own timestamp (a retry is then the same
/// event), else a new one.
fn event_id(e: &InteractionEvent) -> Result<String, EngineError> {
    if let Some(id) = &e.event_id {
        let ok = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if !ok {
            return Err(EngineError::invalid(
                ErrorCode::InvalidEventId,
                "event_id must be 1 to 64 letters, digits, '-', '_', '.' or ':'",
            ));
        }
        return Ok(id.clone());
    }
    if e.timestamp.is_some() {
        return Ok(String::new());
    }
    Ok(format!("s:{}", hex_of(&rand::random::<[u8; 12]>())))
}

/// A catalogue batch holds 1 to [`MAX_ITEMS_PER_REQUEST`] items.
pub(super) fn check_batch(inputs: &[ItemInput]) -> Result<(), EngineError> {
    if inputs.is_empty() || inputs.len() > MAX_ITEMS_PER_REQUEST {
        return Err(EngineError::invalid(
            ErrorCode::InvalidBatch,
            format!("send between 1 and {MAX_ITEMS_PER_REQUEST} items"),
        ));
    }
    Ok(())
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What [`Engine::erase_user`] removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErasureReport {
    pub user_id: String,
    /// Interactions deleted from the interaction store (the user's profile went with them).
    pub events: usize,
    /// Items the user's seen set held.
    pub seen_items: usize,
    /// Impressions served to the user that the ranking policy forgot.
    pub impressions: usize,
    /// Per-user graph edges removed (`WATCHED` in Neo4j; the in-process graph keeps none).
    pub graph_edges: usize,
}

impl Engine {
    /// Stores events durably, once each (see [`InteractionEvent::event_id`]), then feeds the
    /// new ones to popularity, the learned sources, the item graph and the user's vector.
    /// The answer waits for that work only briefly: once stored, the events are acknowledged.
    pub async fn record_events(
        self: &Arc<Self>,
        events: Vec<InteractionEvent>,
    ) -> Result<EventsAccepted, EngineError> {
        if events.is_empty() || events.len() > MAX_EVENTS_PER_REQUEST {
            return Err(EngineError::invalid(
                ErrorCode::InvalidBatch,
                format!("send between 1 and {MAX_EVENTS_PER_REQUEST} events"),
            ));
        }
        let now = now_secs();
        let mut stored = Vec::with_capacity(events.len());
        for e in events {
            validate_user_id(&e.user_id)?;
            validate_item_id(&e.item_id)?;
            if self.catalog.get(&e.item_id).is_none() {
                return Err(EngineError::not_found(
                    ErrorCode::ItemNotFound,
                    format!("no item with id '{}'", e.item_id),
                ));
            }
            let timestamp = e.timestamp.unwrap_or(now);
            // Future timestamps would outrank every real event in recency-weighted signals.
            if !(0..=now + MAX_EVENT_CLOCK_SKEW_SECS).contains(&timestamp) {
                return Err(EngineError::invalid(
                    ErrorCode::InvalidTimestamp,
                    format!(
                        "timestamp must be unix seconds, at most {MAX_EVENT_CLOCK_SKEW_SECS} s \
                         in the future"
                    ),
                ));
            }
            if e.recommendation_id.as_ref().is_some_and(|r| r.len() > 64) {
                return Err(EngineError::invalid(
                    ErrorCode::InvalidRecommendationId,
                    "recommendation_id is at most 64 bytes",
                ));
            }
            let event_id = event_id(&e)?;
            let mut event = Interaction {
                user_id: e.user_id,
                item_id: e.item_id,
                action: e.action,
                timestamp,
                recommendation_id: e.recommendation_id,
                event_id,
            };
            if event.event_id.is_empty() {
                event.event_id = event.content_id();
            }
            stored.push(event);
        }
        // The previous positive items of each user, read before the append, seed graph edges.
        let users: HashSet<&str> = stored.iter().map(|e| e.user_id.as_str()).collect();
        let mut previous: HashMap<String, Vec<Arc<str>>> = HashMap::new();
        let mut previous_positive: HashMap<String, Vec<Arc<str>>> = HashMap::new();
        let learning = &self.config.learning;
        for user in users {
            // Wide enough that the latest positives are found among views and skips, as the
            // start-up replay and the training find them.
            let recent = self
                .backends
                .interactions
                .recent(user, self.config.ranking.history_limit.max(5))
                .await
                .unwrap_or_default();
            let items = self
                .catalog
                .get_many(
                    recent
                        .iter()
                        .filter(|e| e.action.preference_weight() > 0.0)
                        .take(5)
                        .map(|e| e.item_id.as_str()),
                )
                .into_iter()
                .map(|e| e.id.clone())
                .collect();
            previous.insert(user.to_string(), items);
            let positive = self
                .catalog
                .get_many(
                    recent
                        .iter()
                        .filter(|e| learning.is_positive(e.action))
                        .map(|e| e.item_id.as_str()),
                )
                .into_iter()
                .map(|e| e.id.clone())
                .collect();
            previous_positive.insert(user.to_string(), positive);
        }
        let count = stored.len();
        let fresh = self.backends.interactions.append(stored).await?;
        let accepted = EventsAccepted {
            accepted: count,
            duplicates: count - fresh.len(),
        };
        // Stored: from here on nothing turns the write into an error. The policy's rewards,
        // graph and cache updates may wait on their backends.
        let engine = self.clone();
        let gate = self.after_commit_gate.clone().read_owned().await;
        let after = tokio::spawn(async move {
            engine.learn_from(&fresh).await;
            engine
                .after_commit(fresh, previous, previous_positive)
                .await;
            drop(gate);
        });
        let _ = tokio::time::timeout(AFTER_COMMIT_WAIT, after).await;
        Ok(accepted)
    }

    /// The work on newly stored events beyond the log: the seen sets, popularity, item
    /// graph edges and the users' cached vectors.
    async fn after_commit(
        &self,
        fresh: Vec<Interaction>,
        mut previous: HashMap<String, Vec<Arc<str>>>,
        mut previous_positive: HashMap<String, Vec<Arc<str>>>,
    ) {
        let learning = &self.config.learning;
        // Graph edges to write: (user, their recent positives before the item, the item).
        let mut edges: Vec<(String, Vec<Arc<str>>, Arc<str>)> = Vec::new();
        let mut users: HashSet<String> = HashSet::new();
        for e in fresh {
            let Some(entry) = self.catalog.get(&e.item_id) else {
                continue;
            };
            let positive = previous_positive.entry(e.user_id.clone()).or_default();
            let first =
                self.learner
                    .observe(&e.user_id, &entry.id, e.action, e.timestamp, positive);
            // A user moves an item's popularity and its co-engagement edges by one vote at
            // most, however often they repeat an event on it.
            if first {
                self.catalog.record_engagement(&entry.id, e.action);
            }
            if learning.is_positive(e.action) {
                positive.insert(0, entry.id.clone());
                positive.truncate(learning.transitions.window.max(1));
            }
            let before = previous.entry(e.user_id.clone()).or_default();
            if first && e.action.preference_weight() > 0.0 {
                edges.push((e.user_id.clone(), before.clone(), entry.id.clone()));
                before.insert(0, entry.id.clone());
                before.truncate(5);
            }
            users.insert(e.user_id);
        }
        // The cached taste vectors first: quick, and what the users' next reads depend on
        // (done before the answer unless the cache is slow), then the graph's edges.
        for user in &users {
            self.backends.user_cache.invalidate(user).await;
        }
        for (user, before, item) in edges {
            if let Err(err) = self.backends.graph.record(&user, &before, &item).await {
                tracing::warn!(error = %err, "item graph update failed");
            }
        }
    }

    /// Every interaction stored for the user, oldest first: what the service keeps about
    /// them (their data export). Empty for a user it knows nothing of.
    pub async fn export_user(&self, user_id: &str) -> Result<Vec<Interaction>, EngineError> {
        validate_user_id(user_id)?;
        Ok(self.backends.interactions.user_events(user_id).await?)
    }

    /// Erases a user everywhere their data lives: their events and profile (durably, so a
    /// restart does not replay them), their seen set, the policy's impressions of them, their
    /// graph edges and their cached taste vector. Their next answer is the cold-start one.
    ///
    /// Aggregates their events already fed (popularity, trend, transitions, co-engagement,
    /// the policy's and the trained model's weights) stay, as they hold no user; the next
    /// start and training rebuild them without the erased events.
    ///
    /// Idempotent: a failure (a backend down) is returned after every other step has run, and
    /// a retry finishes the job.
    pub async fn erase_user(&self, user_id: &str) -> Result<ErasureReport, EngineError> {
        validate_user_id(user_id)?;
        // No event's graph or cache work may still be running, or start, during the erasure.
        let _exclusive = self.after_commit_gate.write().await;
        // The store first: it is the source everything else is rebuilt from.
        let events = self.backends.interactions.erase_user(user_id).await?;
        let seen_items = self.learner.forget_user(user_id);
        let (impressions, graph_edges, cache) = tokio::join!(
            self.impressions.forget_user(user_id),
            self.backends.graph.forget_user(user_id),
            self.backends.user_cache.forget(user_id)
        );
        cache?;
        let impressions = impressions?;
        let report = ErasureReport {
            user_id: user_id.to_string(),
            events,
            seen_items,
            impressions,
            graph_edges: graph_edges?,
        };
        // Counts only: the log must not keep the id it was asked to forget.
        tracing::info!(
            events,
            seen_items,
            impressions,
            graph_edges = report.graph_edges,
            "user erased"
        );
        Ok(report)
    }

    /// Validates, embeds (where no vector is given), stores durably and indexes items.
    pub async fn upsert_items(&self, inputs: Vec<ItemInput>) -> Result<usize, EngineError> {
        check_batch(&inputs)?;
        let dim = self.embedder.dim();
        let mut items = Vec::with_capacity(inputs.len());
        let mut to_embed = Vec::new();
        for (i, input) in inputs.into_iter().enumerate() {
            let (item, vector) = validate_item(input, dim)?;
            if vector.is_none() {
                to_embed.push(i);
            }
            items.push((item, vector));
        }
        if !to_embed.is_empty() {
            let texts = to_embed
                .iter()
                .map(|&i| crate::embedding::item_text(&items[i].0))
                .collect();
            let vectors = self.embed(texts, "ingest").await?;
            for (i, v) in to_embed.into_iter().zip(vectors) {
                items[i].1 = Some(v);
            }
        }
        let stored: Vec<StoredItem> = items
            .into_iter()
            .map(|(item, vector)| StoredItem {
                item,
                version: self.vectors.next_version(),
                vector: vector.unwrap_or_default(),
            })
            .collect();
        let count = stored.len();
        self.vectors.write(&stored).await?;
        let mut entries = Vec::with_capacity(count);
        for s in stored {
            let labels = index_labels(&s.item);
            let id = self
                .catalog
                .insert(CatalogEntry::new(s.item, s.version, &s.vector));
            self.vectors.index(id.clone(), s.version, &s.vector, labels);
            self.learner.register_items([&id]);
            entries.extend(self.catalog.get(&id));
        }
        self.vectors.report_sizes(&self.metrics);
        let nodes = self
            .content_nodes(entries, self.config.graph.similar_edges)
            .await?;
        if let Err(err) = self.backends.graph.upsert_content(nodes).await {
            // The catalogue is durable; a graph that fell behind is refilled at the next start.
            tracing::warn!(error = %err, "item graph not updated");
            self.metrics.count_degraded("graph");
        }
        Ok(count)
    }

    pub async fn delete_item(&self, item_id: &str) -> Result<(), EngineError> {
        validate_item_id(item_id)?;
        let known = self.catalog.get(item_id).map(|e| e.id.clone());
        if !self.vectors.delete(item_id, known).await? {
            return Err(EngineError::not_found(
                ErrorCode::ItemNotFound,
                format!("no item with id '{item_id}'"),
            ));
        }
        self.catalog.remove(item_id);
        self.learner.remove_item(item_id);
        self.vectors.report_sizes(&self.metrics);
        if let Err(err) = self.backends.graph.remove_content(item_id).await {
            tracing::warn!(error = %err, "item not removed from the graph");
            self.metrics.count_degraded("graph");
        }
        Ok(())
    }
}

/// Checks an incoming item and normalises its optional vector.
pub(crate) fn validate_item(
    input: ItemInput,
    dim: usize,
) -> Result<(Item, Option<Vec<f32>>), EngineError> {
    validate_item_id(&input.id)?;
    let bad = |m: String| {
        EngineError::invalid(ErrorCode::InvalidItem, format!("item '{}': {m}", input.id))
    };
    if input.title.trim().is_empty() || input.title.len() > 512 {
        return Err(bad("title must be 1-512 bytes".into()));
    }
    if input.genres.len() > 20
        || input
            .genres
            .iter()
            .any(|g| g.trim().is_empty() || g.len() > 40)
    {
        return Err(bad("at most 20 genres of 1-40 bytes".into()));
    }
    if input.description.as_ref().is_some_and(|d| d.len() > 4096) {
        return Err(bad("description is at most 4096 bytes".into()));
    }
    if input.quality.is_some_and(|q| !(0.0..=1.0).contains(&q)) {
        return Err(bad("quality must be within [0, 1]".into()));
    }
    if input
        .language
        .as_ref()
        .is_some_and(|l| l.is_empty() || l.len() > 35)
    {
        return Err(bad("language must be a short tag such as 'en'".into()));
    }
    let vector = match input.embedding {
        None => None,
        Some(mut v) => {
            if v.len() != dim {
                return Err(bad(format!(
                    "embedding must have {dim} dimensions, got {}",
                    v.len()
                )));
            }
            if !v.iter().all(|x| x.is_finite()) || !normalise(&mut v) {
                return Err(bad("embedding must be finite and non-zero".into()));
            }
            Some(v)
        }
    };
    let item = Item {
        id: input.id,
        title: input.title.trim().to_string(),
        genres: input
            .genres
            .into_iter()
            .map(|g| g.trim().to_string())
            .collect(),
        year: input.year,
        language: input.language.map(|l| l.to_lowercase()),
        maturity: input.maturity,
        description: input.description,
        quality: input.quality,
    };
    Ok((item, vector))
}
