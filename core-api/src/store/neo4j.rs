//! The knowledge graph in Neo4j (`neo4rs`, Bolt): `Content` nodes (content_id, title, genre,
//! quality) linked to `Genre` nodes, `SIMILAR_TO` edges written at ingest from each item's
//! nearest vectors, `User`-`WATCHED`->`Content` edges and `CO_ENGAGED` edges from events.
//!
//! Graph candidates use one bounded hop from the user's seed items (the design's "fast"
//! query: seeds, then their neighbours above a quality threshold, ordered by similarity,
//! limited), under a per-query timeout. Indexes are created at first contact, idempotently.
//! Connections come from a pool that reconnects by itself after an outage.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use neo4rs::{query, BoltType, ConfigBuilder, Graph, Query};

use super::{ContentNode, GraphNeighbour, ItemGraph, StoreError};
use crate::config::Neo4jConfig;

/// Budget of a write (a batch of nodes and edges), larger than a hot-path read's.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema: the design's indexes, created when missing.
pub const SCHEMA: [&str; 4] = [
    "CREATE CONSTRAINT content_id_idx IF NOT EXISTS FOR (c:Content) REQUIRE c.content_id IS UNIQUE",
    "CREATE INDEX genre_idx IF NOT EXISTS FOR (g:Genre) ON (g.name)",
    "CREATE FULLTEXT INDEX title_search IF NOT EXISTS FOR (c:Content) ON EACH [c.title]",
    "CREATE CONSTRAINT user_id_idx IF NOT EXISTS FOR (u:User) REQUIRE u.user_id IS UNIQUE",
];

const UPSERT_NODES: &str = "
UNWIND $nodes AS n
MERGE (c:Content {content_id: n.id})
SET c.title = n.title, c.genre = n.genres, c.quality = n.quality
WITH c, n
OPTIONAL MATCH (c)-[old:SIMILAR_TO|IN_GENRE]->()
DELETE old
WITH DISTINCT c, n
FOREACH (g IN n.genres | MERGE (gn:Genre {name: g}) MERGE (c)-[:IN_GENRE]->(gn))";

const UPSERT_SIMILAR: &str = "
UNWIND $edges AS e
MATCH (a:Content {content_id: e.from}), (b:Content {content_id: e.to})
CREATE (a)-[:SIMILAR_TO {similarity: e.w}]->(b)";

/// The engaged item's node is merged, not matched: an event may arrive before the catalogue's
/// fill (at the first start on a fresh Neo4j, or from another router) has written it, and its
/// edges must not be lost. Such a node has no quality, so it is never a neighbour until the
/// fill or an upsert writes its content.
const RECORD: &str = "
MERGE (c:Content {content_id: $item})
MERGE (u:User {user_id: $user})
MERGE (u)-[w:WATCHED]->(c)
SET w.at = timestamp()
WITH c
UNWIND $previous AS p
MATCH (prev:Content {content_id: p.id})
WHERE prev <> c
MERGE (prev)-[e:CO_ENGAGED]-(c)
ON CREATE SET e.weight = p.w
ON MATCH SET e.weight = e.weight + p.w";

/// A user's node and every edge of it (`WATCHED`); `CO_ENGAGED` edges carry no user and stay.
const FORGET_USER: &str = "
MATCH (u:User {user_id: $user})
OPTIONAL MATCH (u)-[w:WATCHED]->()
WITH u, count(w) AS watched
DETACH DELETE u
RETURN watched";

/// One hop from the seeds over both edge kinds, scored as [`ItemGraph`] specifies. The index
/// hint pins the plan to a seek per seed, whatever statistics the planner saw first.
const NEIGHBOURS: &str = "
UNWIND $seeds AS seed
MATCH (s:Content {content_id: seed.id})-[e:SIMILAR_TO|CO_ENGAGED]-(rec:Content)
USING INDEX s:Content(content_id)
WHERE rec.quality >= $min_quality AND NOT rec.content_id IN $seed_ids
WITH rec.content_id AS id, seed.id AS via,
     seed.w * coalesce(e.similarity, e.weight) AS contribution
ORDER BY contribution DESC
WITH id, sum(contribution) AS score, collect(via)[0] AS via
RETURN id, score, via
ORDER BY score DESC, id
LIMIT $limit";

pub struct Neo4jGraph {
    graph: Graph,
    timeout: Duration,
    min_quality: f32,
    schema_ready: AtomicBool,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("neo4j {what}: {e}"))
}

fn map(pairs: impl IntoIterator<Item = (&'static str, BoltType)>) -> BoltType {
    BoltType::from(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<HashMap<String, BoltType>>(),
    )
}

impl Neo4jGraph {
    /// Builds the connection pool; the server is contacted on first use.
    pub async fn new(config: &Neo4jConfig, min_quality: f32) -> Result<Self, StoreError> {
        let settings = ConfigBuilder::default()
            .uri(config.uri.as_str())
            .user(config.user.as_str())
            .password(config.password.as_str())
            .max_connections(config.pool_size.max(1))
            .build()
            .map_err(|e| unavailable("config", e))?;
        let graph = Graph::connect(settings)
            .await
            .map_err(|e| unavailable("connect", e))?;
        Ok(Self {
            graph,
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            min_quality,
            schema_ready: AtomicBool::new(false),
        })
    }

    /// Creates the indexes when missing (idempotent; retried until it succeeds once).
    pub async fn ensure_schema(&self) -> Result<(), StoreError> {
        if self.schema_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        for statement in SCHEMA {
            self.bounded(WRITE_TIMEOUT, "schema", self.graph.run(query(statement)))
                .await?;
        }
        self.schema_ready.store(true, Ordering::Release);
        Ok(())
    }

    async fn bounded<T>(
        &self,
        limit: Duration,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, neo4rs::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(limit, fut).await {
            Ok(result) => result.map_err(|e| unavailable(what, e)),
            Err(_) => Err(unavailable(what, format!("timed out after {limit:?}"))),
        }
    }

    async fn write(&self, what: &str, queries: Vec<Query>) -> Result<(), StoreError> {
        self.ensure_schema().await?;
        self.bounded(WRITE_TIMEOUT, what, async {
            let mut txn = self.graph.start_txn().await?;
            txn.run_queries(queries).await?;
            txn.commit().await
        })
        .await
    }
}

#[async_trait]
impl ItemGraph for Neo4jGraph {
    async fn neighbours(
        &self,
        seeds: &[(Arc<str>, f32)],
        limit: usize,
    ) -> Result<Vec<GraphNeighbour>, StoreError> {
        if seeds.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let seed_maps: Vec<BoltType> = seeds
            .iter()
            .map(|(id, w)| map([("id", (**id).into()), ("w", f64::from(*w).into())]))
            .collect();
        let seed_ids: Vec<String> = seeds.iter().map(|(id, _)| id.to_string()).collect();
        let q = query(NEIGHBOURS)
            .param("seeds", seed_maps)
            .param("seed_ids", seed_ids)
            .param("min_quality", f64::from(self.min_quality))
            .param("limit", limit as i64);
        self.bounded(self.timeout, "neighbours", async {
            let mut rows = self.graph.execute(q).await?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().await? {
                let (Ok(id), Ok(score), Ok(via)) = (
                    row.get::<String>("id"),
                    row.get::<f64>("score"),
                    row.get::<String>("via"),
                ) else {
                    continue;
                };
                out.push(GraphNeighbour {
                    item_id: id.into(),
                    score: score as f32,
                    via: via.into(),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn record(
        &self,
        user_id: &str,
        previous: &[Arc<str>],
        item: &Arc<str>,
    ) -> Result<(), StoreError> {
        let previous: Vec<BoltType> = previous
            .iter()
            .enumerate()
            .map(|(distance, id)| {
                let w = 1.0 / (1.0 + distance as f64);
                map([("id", (**id).into()), ("w", w.into())])
            })
            .collect();
        let q = query(RECORD)
            .param("user", user_id)
            .param("item", &**item)
            .param("previous", previous);
        self.write("record", vec![q]).await
    }

    async fn forget_user(&self, user_id: &str) -> Result<usize, StoreError> {
        self.ensure_schema().await?;
        let q = query(FORGET_USER).param("user", user_id);
        self.bounded(WRITE_TIMEOUT, "forget user", async {
            // One auto-commit query: the node and its edges go together or not at all.
            let mut rows = self.graph.execute(q).await?;
            let mut watched = 0;
            while let Some(row) = rows.next().await? {
                watched += row.get::<i64>("watched").unwrap_or(0).max(0) as usize;
            }
            Ok(watched)
        })
        .await
    }

    async fn upsert_content(&self, nodes: Vec<ContentNode>) -> Result<(), StoreError> {
        if nodes.is_empty() {
            return Ok(());
        }
        let mut edges = Vec::new();
        let node_maps: Vec<BoltType> = nodes
            .into_iter()
            .map(|n| {
                for (to, w) in &n.similar {
                    if *to != n.id {
                        edges.push(map([
                            ("from", (*n.id).into()),
                            ("to", (**to).into()),
                            ("w", f64::from(*w).into()),
                        ]));
                    }
                }
                map([
                    ("id", (*n.id).into()),
                    ("title", n.title.into()),
                    ("genres", n.genres.into()),
                    ("quality", f64::from(n.quality).into()),
                ])
            })
            .collect();
        self.write(
            "upsert content",
            vec![
                query(UPSERT_NODES).param("nodes", node_maps),
                query(UPSERT_SIMILAR).param("edges", edges),
            ],
        )
        .await
    }

    async fn remove_content(&self, item_id: &str) -> Result<(), StoreError> {
        let q = query("MATCH (c:Content {content_id: $id}) DETACH DELETE c").param("id", item_id);
        self.write("remove content", vec![q]).await
    }

    async fn content_count(&self) -> Result<usize, StoreError> {
        self.ensure_schema().await?;
        self.bounded(WRITE_TIMEOUT, "count", async {
            let mut rows = self
                .graph
                .execute(query("MATCH (c:Content) RETURN count(c) AS n"))
                .await?;
            let n = match rows.next().await? {
                Some(row) => row.get::<i64>("n").unwrap_or(0),
                None => 0,
            };
            Ok(n.max(0) as usize)
        })
        .await
    }

    fn persistent(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "neo4j"
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.ensure_schema().await?;
        self.bounded(self.timeout.max(Duration::from_secs(1)), "ping", async {
            let mut rows = self.graph.execute(query("RETURN 1 AS one")).await?;
            while rows.next().await?.is_some() {}
            Ok(())
        })
        .await
    }
}
