//! Contracts of the interaction store and the item graph: the same assertions against the
//! embedded/in-process implementations and against real servers (a CQL server and Neo4j,
//! started by `scripts/test.sh`); schema creation is idempotent; the engine runs on all the
//! production backends at once.

use std::collections::HashMap;
use std::sync::Arc;

use core_api::policy::{
    Attribution, Features, Impression, ImpressionLog, LeadDecision, LoggedDecision, SegmentStats,
    FEATURES,
};
use core_api::store::{
    ContentNode, EmbeddedStore, ImpressionStore, InProcessItemGraph, Interaction, InteractionStore,
    ItemGraph, ItemStore, Neo4jGraph, ScyllaInteractionStore, ScyllaPolicyStore, StoreError,
    UserProfile,
};
use shared_types::Action;

use crate::common::{neo4j_test_config, scylla_test_config, temp_dir, test_server, unique};

fn event(user: &str, item: &str, action: Action, ts: i64, rec: Option<&str>) -> Interaction {
    Interaction {
        user_id: user.into(),
        item_id: item.into(),
        action,
        timestamp: ts,
        recommendation_id: rec.map(Into::into),
        event_id: format!("{item}:{ts}:{}", action.as_str()),
    }
}

/// The event without its id: stores need not give the client's id back.
fn without_id(e: &Interaction) -> Interaction {
    Interaction {
        event_id: String::new(),
        ..e.clone()
    }
}

/// What every interaction store must do.
async fn interaction_store_contract(store: &dyn InteractionStore, tag: &str) {
    let (u, v, nobody) = (
        format!("{tag}-u"),
        format!("{tag}-v"),
        format!("{tag}-nobody"),
    );
    assert!(store.recent(&u, 10).await.unwrap().is_empty());
    assert_eq!(store.profile(&u).await.unwrap(), None);

    store
        .append(vec![
            event(&u, "i1", Action::Like, 1_000, None),
            // Same user, same second: both kept.
            event(&u, "i2", Action::View, 1_000, Some("rec-1")),
            event(&v, "i3", Action::Skip, 1_500, None),
        ])
        .await
        .unwrap();
    // A newer event, then an older one arriving late.
    store
        .append(vec![event(&u, "i4", Action::Complete, 2_000, None)])
        .await
        .unwrap();
    store
        .append(vec![event(&u, "i0", Action::Dislike, 500, None)])
        .await
        .unwrap();

    let recent = store.recent(&u, 10).await.unwrap();
    let items: Vec<&str> = recent.iter().map(|e| e.item_id.as_str()).collect();
    assert_eq!(items.len(), 4, "{items:?}");
    assert_eq!(
        (items[0], items[3]),
        ("i4", "i0"),
        "newest first: {items:?}"
    );
    let mut tied = [items[1], items[2]];
    tied.sort_unstable();
    assert_eq!(tied, ["i1", "i2"]);
    let i2 = recent.iter().find(|e| e.item_id == "i2").unwrap();
    assert_eq!(
        without_id(i2),
        without_id(&event(&u, "i2", Action::View, 1_000, Some("rec-1")))
    );
    assert_eq!(recent[0].action, Action::Complete);
    assert_eq!(store.recent(&u, 2).await.unwrap().len(), 2, "limit");

    assert_eq!(
        store.profile(&u).await.unwrap(),
        Some(UserProfile {
            last_seen: 2_000,
            last_item_id: "i4".into(),
            last_action: Action::Complete,
        }),
        "the late older event does not replace the newest"
    );

    let many = store
        .recent_many(&[v.clone(), nobody.clone(), u.clone()], 10)
        .await
        .unwrap();
    let lens: Vec<usize> = many.iter().map(Vec::len).collect();
    assert_eq!(lens, [1, 0, 4], "in the order asked");
    assert_eq!(many[0][0].item_id, "i3");

    // Replay: grouped by user, oldest first within a user.
    let mut seen: Vec<Interaction> = Vec::new();
    store
        .replay(&mut |e| {
            if e.user_id.starts_with(tag) {
                seen.push(e)
            }
        })
        .await
        .unwrap();
    assert_eq!(seen.len(), 5);
    let users: Vec<&str> = seen.iter().map(|e| e.user_id.as_str()).collect();
    let mut grouped = users.clone();
    grouped.dedup();
    assert_eq!(grouped.len(), 2, "one run per user: {users:?}");
    let u_times: Vec<i64> = seen
        .iter()
        .filter(|e| e.user_id == u)
        .map(|e| e.timestamp)
        .collect();
    assert_eq!(u_times, [500, 1_000, 1_000, 2_000]);

    // Export: one user's events, whole, oldest first.
    let exported = store.user_events(&u).await.unwrap();
    let times: Vec<i64> = exported.iter().map(|e| e.timestamp).collect();
    assert_eq!(times, [500, 1_000, 1_000, 2_000]);
    let i2 = without_id(&event(&u, "i2", Action::View, 1_000, Some("rec-1")));
    assert!(exported.iter().any(|e| without_id(e) == i2));
    assert!(store.user_events(&nobody).await.unwrap().is_empty());

    // Erasure: the user's events and profile go, another user's stay; idempotent.
    assert_eq!(store.erase_user(&u).await.unwrap(), 4);
    assert!(store.recent(&u, 10).await.unwrap().is_empty());
    assert!(store.user_events(&u).await.unwrap().is_empty());
    assert_eq!(store.profile(&u).await.unwrap(), None, "profile erased");
    assert_eq!(store.recent(&v, 10).await.unwrap().len(), 1);
    assert!(store.profile(&v).await.unwrap().is_some());
    let mut left: Vec<String> = Vec::new();
    store
        .replay(&mut |e| {
            if e.user_id.starts_with(tag) {
                left.push(e.user_id)
            }
        })
        .await
        .unwrap();
    assert_eq!(left, [v.as_str()], "the replay no longer sees the user");
    assert_eq!(store.erase_user(&u).await.unwrap(), 0);
    assert_eq!(store.erase_user(&nobody).await.unwrap(), 0);
    // A user who comes back starts afresh: new events and their profile are kept.
    store
        .append(vec![event(&u, "i9", Action::Like, 3_000, None)])
        .await
        .unwrap();
    assert_eq!(store.user_events(&u).await.unwrap().len(), 1);
    assert_eq!(
        store.profile(&u).await.unwrap().map(|p| p.last_item_id),
        Some("i9".to_string())
    );

    // Idempotent appends: a retried event is stored once, whether it comes again in a later
    // call, twice in one call, or with another timestamp (a server-assigned time on a retry).
    let w = format!("{tag}-w");
    let first = event(&w, "i1", Action::Like, 4_000, None);
    let second = event(&w, "i2", Action::Like, 4_100, None);
    let fresh = store
        .append(vec![first.clone(), first.clone(), second.clone()])
        .await
        .unwrap();
    let fresh: Vec<&str> = fresh.iter().map(|e| e.item_id.as_str()).collect();
    assert_eq!(fresh, ["i1", "i2"], "the repeat within the call is not new");
    assert!(store
        .append(vec![second.clone(), first.clone()])
        .await
        .unwrap()
        .is_empty());
    let retried_later = Interaction {
        timestamp: 4_900,
        ..second.clone()
    };
    assert!(store.append(vec![retried_later]).await.unwrap().is_empty());
    let stored = store.user_events(&w).await.unwrap();
    let times: Vec<i64> = stored.iter().map(|e| e.timestamp).collect();
    assert_eq!(times, [4_000, 4_100], "each stored once, at its first time");
    // Another id is another event, even with the same content.
    let again = Interaction {
        event_id: "another".into(),
        ..first
    };
    assert_eq!(store.append(vec![again]).await.unwrap().len(), 1);
    assert_eq!(store.user_events(&w).await.unwrap().len(), 3);
    // Without an id, an event is identified by its content.
    let anonymous = Interaction {
        event_id: String::new(),
        ..event(&w, "i3", Action::View, 4_200, None)
    };
    assert_eq!(
        store.append(vec![anonymous.clone()]).await.unwrap().len(),
        1
    );
    assert!(store
        .append(vec![anonymous.clone()])
        .await
        .unwrap()
        .is_empty());
    let other_time = Interaction {
        timestamp: 4_201,
        ..anonymous
    };
    assert_eq!(store.append(vec![other_time]).await.unwrap().len(), 1);
    assert_eq!(store.user_events(&w).await.unwrap().len(), 5);
    // Erasure forgets the ids: the user's next events are new, whatever their ids.
    assert_eq!(store.erase_user(&w).await.unwrap(), 5);
    assert_eq!(store.append(vec![second]).await.unwrap().len(), 1);
}

#[tokio::test]
async fn embedded_interaction_store_meets_the_contract() {
    let store = EmbeddedStore::open(&temp_dir("interactions")).unwrap();
    interaction_store_contract(&store, &unique("embedded")).await;
}

/// Fails if the erasure only hid the events from this process: they must be gone from the
/// file that a restart reads.
#[tokio::test]
async fn embedded_erasure_survives_a_reopen() {
    let dir = temp_dir("erase-durable");
    let store = EmbeddedStore::open(&dir).unwrap();
    store
        .append(vec![
            event("gone", "i1", Action::Like, 1_000, None),
            event("gone", "i2", Action::View, 1_100, None),
            event("kept", "i1", Action::Like, 1_200, None),
        ])
        .await
        .unwrap();
    assert_eq!(store.erase_user("gone").await.unwrap(), 2);
    drop(store);
    let store = EmbeddedStore::open(&dir).unwrap();
    assert!(store.user_events("gone").await.unwrap().is_empty());
    let users: Vec<String> = store
        .log()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.user_id)
        .collect();
    assert_eq!(users, ["kept"]);
}

#[tokio::test]
async fn scylla_interaction_store_meets_the_contract_and_its_schema_is_idempotent() {
    let Some(nodes) = test_server("SEMREC_TEST_CQL") else {
        return;
    };
    let store = ScyllaInteractionStore::new(scylla_test_config(&nodes)).unwrap();
    store.connect().await.unwrap();
    // A second node starting against the same keyspace creates nothing twice.
    let again = ScyllaInteractionStore::new(scylla_test_config(&nodes)).unwrap();
    again.connect().await.unwrap();
    again.check().await.unwrap();
    interaction_store_contract(&store, &unique("scylla")).await;
}

#[tokio::test]
async fn unknown_consistency_is_a_configuration_error() {
    let env = [(
        "RECO__SCYLLA__NODES".to_string(),
        "127.0.0.1:9042".to_string(),
    )];
    let bad = [
        env[0].clone(),
        ("RECO__SCYLLA__CONSISTENCY".into(), "most".into()),
    ];
    assert!(core_api::Config::load(None, env).is_ok());
    assert!(core_api::Config::load(None, bad).is_err());
}

fn node(tag: &str, id: &str, quality: f32, similar: &[(&str, f32)]) -> ContentNode {
    ContentNode {
        id: format!("{tag}-{id}").into(),
        title: format!("{tag} title {id}"),
        genres: vec!["Drama".into()],
        quality,
        similar: similar
            .iter()
            .map(|(to, w)| (Arc::from(format!("{tag}-{to}")), *w))
            .collect(),
    }
}

/// `(id without the tag, score, via without the tag)`, best first.
async fn neighbours_of(
    g: &dyn ItemGraph,
    tag: &str,
    seeds: &[(&str, f32)],
    limit: usize,
) -> Vec<(String, f32, String)> {
    let seeds: Vec<(Arc<str>, f32)> = seeds
        .iter()
        .map(|(id, w)| (Arc::from(format!("{tag}-{id}")), *w))
        .collect();
    let strip = |s: &str| s.strip_prefix(&format!("{tag}-")).unwrap().to_string();
    g.neighbours(&seeds, limit)
        .await
        .unwrap()
        .into_iter()
        .map(|n| (strip(&n.item_id), n.score, strip(&n.via)))
        .collect()
}

fn assert_scores(got: &[(String, f32, String)], want: &[(&str, f32, &str)]) {
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            g.0 == w.0 && (g.1 - w.1).abs() < 1e-4 && g.2 == w.2,
            "got {got:?}, want {want:?}"
        );
    }
}

/// What every item graph must do; `g` keeps neighbours with quality >= 0.3.
async fn item_graph_contract(g: &dyn ItemGraph, tag: &str) {
    let id = |s: &str| Arc::<str>::from(format!("{tag}-{s}"));
    g.upsert_content(vec![
        node(tag, "a", 0.8, &[("b", 0.8), ("c", 0.5), ("e", 0.95)]),
        node(tag, "b", 0.8, &[]),
        node(tag, "c", 0.8, &[]),
        node(tag, "d", 0.8, &[("a", 0.4)]),
        node(tag, "e", 0.1, &[]),
    ])
    .await
    .unwrap();
    assert!(g.content_count().await.unwrap() >= 5);
    // Co-engagement: a then c twice; then d after c and a (distance weights 1 and 1/2).
    g.record("u1", &[id("a")], &id("c")).await.unwrap();
    g.record("u2", &[id("a")], &id("c")).await.unwrap();
    g.record("u1", &[id("c"), id("a")], &id("d")).await.unwrap();
    // An item whose content is not written yet is no error, and never a neighbour (Neo4j
    // keeps its edges on a bare node until the content arrives).
    g.record("u1", &[id("a")], &id("missing")).await.unwrap();

    // c: similar 0.5 + co 2.0; d: similar (reverse) 0.4 + co 0.5; b: similar 0.8;
    // e is below the quality threshold.
    let n = neighbours_of(g, tag, &[("a", 1.0)], 10).await;
    assert_scores(&n, &[("c", 2.5, "a"), ("d", 0.9, "a"), ("b", 0.8, "a")]);
    assert_scores(
        &neighbours_of(g, tag, &[("a", 1.0)], 1).await,
        &[("c", 2.5, "a")],
    );
    // Seeds are never neighbours; contributions add up across seeds.
    let n = neighbours_of(g, tag, &[("a", 1.0), ("d", 0.5)], 10).await;
    assert_scores(&n, &[("c", 3.0, "a"), ("b", 0.8, "a")]);

    // Re-upserting replaces an item's SIMILAR_TO edges, not its co-engagement.
    g.upsert_content(vec![node(tag, "a", 0.8, &[("b", 0.3)])])
        .await
        .unwrap();
    let n = neighbours_of(g, tag, &[("a", 1.0)], 10).await;
    assert_scores(&n, &[("c", 2.0, "a"), ("d", 0.9, "a"), ("b", 0.3, "a")]);

    g.remove_content(&format!("{tag}-c")).await.unwrap();
    let n = neighbours_of(g, tag, &[("a", 1.0)], 10).await;
    assert_scores(&n, &[("d", 0.9, "a"), ("b", 0.3, "a")]);
    assert!(neighbours_of(g, tag, &[("zzz", 1.0)], 10).await.is_empty());
    g.check().await.unwrap();
}

#[tokio::test]
async fn in_process_item_graph_meets_the_contract() {
    item_graph_contract(&InProcessItemGraph::new(0.3), &unique("graph")).await;
}

#[tokio::test]
async fn neo4j_item_graph_meets_the_contract_with_the_design_indexes() {
    let Some(uri) = test_server("SEMREC_TEST_BOLT") else {
        return;
    };
    let config = neo4j_test_config(&uri);
    let graph = Neo4jGraph::new(&config, 0.3).await.unwrap();
    graph.ensure_schema().await.unwrap();
    // Idempotent: a second instance creates the same schema again without error.
    Neo4jGraph::new(&config, 0.3)
        .await
        .unwrap()
        .ensure_schema()
        .await
        .unwrap();
    assert!(graph.persistent());
    let tag = unique("neo4j");
    item_graph_contract(&graph, &tag).await;

    let raw = neo4rs::Graph::new(uri.as_str(), "neo4j", "").await.unwrap();
    let mut rows = raw
        .execute(neo4rs::query("SHOW INDEXES YIELD name RETURN name"))
        .await
        .unwrap();
    let mut names = Vec::new();
    while let Some(row) = rows.next().await.unwrap() {
        names.push(row.get::<String>("name").unwrap());
    }
    for want in ["content_id_idx", "genre_idx", "title_search"] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    // The full-text index finds content by title; WATCHED edges were written from events.
    let mut rows = raw
        .execute(
            neo4rs::query(
                "CALL db.index.fulltext.queryNodes('title_search', $q) YIELD node
                 RETURN node.content_id AS id",
            )
            .param("q", format!("\"{tag} title b\"")),
        )
        .await
        .unwrap();
    let mut found = Vec::new();
    while let Some(row) = rows.next().await.unwrap() {
        found.push(row.get::<String>("id").unwrap());
    }
    assert!(found.contains(&format!("{tag}-b")), "{found:?}");
    let mut rows = raw
        .execute(
            neo4rs::query(
                "MATCH (:User {user_id: 'u1'})-[:WATCHED]->(c:Content) WHERE c.content_id STARTS WITH $tag
                 RETURN count(c) AS n",
            )
            .param("tag", tag.as_str()),
        )
        .await
        .unwrap();
    let watched = rows.next().await.unwrap().unwrap().get::<i64>("n").unwrap();
    assert_eq!(
        watched, 2,
        "u1 watched d and the item not written yet (c was removed with its edges)"
    );
}

/// `WATCHED` edges of `user` in Neo4j, and whether its `User` node exists.
async fn watched_in_neo4j(raw: &neo4rs::Graph, user: &str) -> (i64, bool) {
    let mut rows = raw
        .execute(
            neo4rs::query(
                "OPTIONAL MATCH (u:User {user_id: $user})
                 OPTIONAL MATCH (u)-[w:WATCHED]->()
                 RETURN count(w) AS n, count(DISTINCT u) AS users",
            )
            .param("user", user),
        )
        .await
        .unwrap();
    let row = rows.next().await.unwrap().unwrap();
    (
        row.get::<i64>("n").unwrap(),
        row.get::<i64>("users").unwrap() > 0,
    )
}

/// Forgetting a user removes their node and `WATCHED` edges, not another user's, and not the
/// co-engagement between items (an anonymous aggregate).
#[tokio::test]
async fn neo4j_forgets_a_user_and_keeps_the_item_graph() {
    let Some(uri) = test_server("SEMREC_TEST_BOLT") else {
        return;
    };
    let graph = Neo4jGraph::new(&neo4j_test_config(&uri), 0.3)
        .await
        .unwrap();
    let tag = unique("neo4j-forget");
    let id = |s: &str| Arc::<str>::from(format!("{tag}-{s}"));
    let (gone, kept) = (format!("{tag}-gone"), format!("{tag}-kept"));
    graph
        .upsert_content(vec![node(&tag, "a", 0.8, &[]), node(&tag, "b", 0.8, &[])])
        .await
        .unwrap();
    graph.record(&gone, &[], &id("a")).await.unwrap();
    graph.record(&gone, &[id("a")], &id("b")).await.unwrap();
    graph.record(&kept, &[], &id("a")).await.unwrap();

    let raw = neo4rs::Graph::new(uri.as_str(), "neo4j", "").await.unwrap();
    assert_eq!(watched_in_neo4j(&raw, &gone).await, (2, true));
    assert_eq!(graph.forget_user(&gone).await.unwrap(), 2);
    assert_eq!(watched_in_neo4j(&raw, &gone).await, (0, false));
    assert_eq!(watched_in_neo4j(&raw, &kept).await, (1, true));
    assert_scores(
        &neighbours_of(&graph, &tag, &[("a", 1.0)], 10).await,
        &[("b", 1.0, "a")],
    );
    assert_eq!(graph.forget_user(&gone).await.unwrap(), 0, "idempotent");
    graph.forget_user(&kept).await.unwrap();
}

/// A 300-film demo configuration on the CQL server, Neo4j and a fresh Redis (kept alive by
/// the returned handle); `None` when the servers are not configured.
fn production_backends(tag: &str) -> Option<(core_api::Config, crate::stores::RedisServer)> {
    let nodes = test_server("SEMREC_TEST_CQL")?;
    let uri = test_server("SEMREC_TEST_BOLT")?;
    let redis = crate::stores::RedisServer::start(crate::common::free_port());
    let mut config = crate::common::demo_config(&temp_dir(tag), 300);
    config.scylla = scylla_test_config(&nodes);
    config.neo4j = neo4j_test_config(&uri);
    config.redis.url = redis.url();
    // Generous, as for the other servers: a first connection on a loaded test machine can
    // take longer than the production default, and the deadline is not under test here.
    config.redis.timeout_ms = 5_000;
    Some((config, redis))
}

/// The engine's erasure on the production backends: the user's events and profile leave the
/// CQL server, their `WATCHED` edges leave Neo4j and their taste vector leaves Redis.
#[tokio::test]
async fn erasing_a_user_reaches_scylla_neo4j_and_redis() {
    use crate::common::encoder;
    use core_api::metrics::Metrics;
    use shared_types::{InteractionEvent, RecommendationQuery};

    let Some((config, redis)) = production_backends("erase-backends") else {
        return;
    };
    let (cql_config, bolt_uri) = (config.scylla.clone(), config.neo4j.uri.clone());
    let engine = core_api::bootstrap::open_embedded(config, encoder(), Arc::new(Metrics::new()))
        .await
        .unwrap();
    // The fill is awaited so that the films below come with their graph neighbours.
    engine.graph_filled().await;
    let query = |user: &str, q: Option<&str>| {
        RecommendationQuery {
            user_id: Some(user.to_string()),
            limit: Some(5),
            q: q.map(str::to_string),
            ..Default::default()
        }
        .normalise()
        .unwrap()
    };
    let user = unique("erase-backends");
    // Three films found by an intent (the shared servers' leftover events shape what a
    // cold-start answer holds).
    let probe = query("erase-probe", Some("a space adventure"));
    let films = engine.recommend(&probe).await.unwrap();
    let events: Vec<InteractionEvent> = films.items[..3]
        .iter()
        .zip([Action::Like, Action::Complete, Action::Skip])
        .map(|(i, action)| InteractionEvent {
            user_id: user.clone(),
            item_id: i.item.id.clone(),
            action,
            timestamp: None,
            recommendation_id: None,
            event_id: None,
        })
        .collect();
    engine.record_events(events).await.unwrap();
    assert!(
        !engine
            .recommend(&query(&user, None))
            .await
            .unwrap()
            .cold_start
    );

    let cql = ScyllaInteractionStore::new(cql_config).unwrap();
    let raw_graph = neo4rs::Graph::new(bolt_uri.as_str(), "neo4j", "")
        .await
        .unwrap();
    let mut raw_redis = deadpool_redis::redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let vector_in_redis = deadpool_redis::redis::cmd("EXISTS")
        .arg(core_api::store::redis::key(&user))
        .clone();
    assert_eq!(cql.user_events(&user).await.unwrap().len(), 3);
    assert!(cql.profile(&user).await.unwrap().is_some());
    // The two positive events were written as `WATCHED` edges (after the events' answer,
    // which waits for that work only briefly).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while watched_in_neo4j(&raw_graph, &user).await != (2, true) {
        assert!(
            std::time::Instant::now() < deadline,
            "WATCHED edges not written"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let cached: i64 = vector_in_redis.query_async(&mut raw_redis).await.unwrap();
    assert_eq!(cached, 1, "taste vector in Redis");

    let report = engine.erase_user(&user).await.unwrap();
    assert_eq!((report.events, report.graph_edges), (3, 2), "{report:?}");
    assert!(cql.user_events(&user).await.unwrap().is_empty());
    assert!(cql.recent(&user, 10).await.unwrap().is_empty());
    assert_eq!(cql.profile(&user).await.unwrap(), None);
    assert_eq!(watched_in_neo4j(&raw_graph, &user).await, (0, false));
    let cached: i64 = vector_in_redis.query_async(&mut raw_redis).await.unwrap();
    assert_eq!(cached, 0, "taste vector gone from Redis");
    assert!(engine.export_user(&user).await.unwrap().is_empty());
    assert!(
        engine
            .recommend(&query(&user, None))
            .await
            .unwrap()
            .cold_start
    );

    // A failing backend fails the erasure (so it is retried), after the other steps ran.
    drop(redis);
    assert!(engine.erase_user(&user).await.is_err());
}

#[tokio::test]
async fn engine_runs_on_scylla_neo4j_and_redis_together() {
    use crate::common::{encoder, get, post};
    use core_api::metrics::Metrics;
    use core_api::{app, AppState};
    use std::time::{Duration, Instant};

    let Some((mut config, _redis)) = production_backends("all-backends") else {
        return;
    };
    config.index.shards = 2;
    let cql_config = config.scylla.clone();
    let metrics = Arc::new(Metrics::new());
    let engine = core_api::bootstrap::open_embedded(config, encoder(), metrics.clone())
        .await
        .unwrap();
    let router = app(AppState::ready(engine, metrics));
    let ready = get(&router, "/readyz").await.json_ok();
    assert_eq!(ready["status"], "ready", "{ready}");
    for dependency in ["scylla", "neo4j", "redis"] {
        assert_eq!(ready["dependencies"][dependency], "ok", "{ready}");
    }

    let user = unique("all-backends");
    let popular = get(&router, "/v1/recommendations?limit=2").await.json_ok();
    for item in popular["items"].as_array().unwrap() {
        let id = item["item"]["id"].as_str().unwrap();
        let event = format!(r#"{{"user_id":"{user}","item_id":"{id}","action":"like"}}"#);
        let posted = post(&router, "/v1/events", "application/json", event).await;
        assert!(posted.status.is_success(), "{}", posted.status);
    }
    // Acknowledged events are in ScyllaDB.
    let store = ScyllaInteractionStore::new(cql_config).unwrap();
    assert_eq!(store.recent(&user, 10).await.unwrap().len(), 2);

    // Graph candidates come from Neo4j once the catalogue's SIMILAR_TO edges are written.
    let started = Instant::now();
    loop {
        let reply = get(
            &router,
            &format!("/v1/recommendations?user_id={user}&limit=10"),
        )
        .await
        .json_ok();
        assert_eq!(reply["cold_start"], false);
        assert!(reply.get("degraded").is_none(), "{reply}");
        let from_graph = reply["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["components"]["graph"].as_f64().unwrap() > 0.0);
        if from_graph {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no graph candidates from Neo4j: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A store that cannot write (its file may not grow: a full disk, as far as redb can tell)
/// says so, so `/readyz` stops reporting the node ready. Runs itself again in a child process
/// whose file-size limit is low (with SIGXFSZ ignored, writes past it fail with EFBIG).
#[tokio::test]
async fn a_store_that_cannot_write_says_so() {
    const CHILD: &str = "SEMREC_TEST_FSIZE_CHILD";
    if let Some(dir) = std::env::var_os(CHILD) {
        let store = EmbeddedStore::open(std::path::Path::new(&dir)).unwrap();
        store.check_writable().await.expect("writable at first");
        let mut failure = None;
        for round in 0..10_000 {
            let events: Vec<Interaction> = (0..200)
                .map(|i| {
                    let rec = format!("{round:032}{i:032}");
                    event(
                        "u",
                        &format!("i{round}-{i}"),
                        Action::Like,
                        1_000,
                        Some(&rec),
                    )
                })
                .collect();
            if let Err(e) = store.append(events).await {
                failure = Some(e);
                break;
            }
        }
        let failure = failure.expect("the file-size limit was never reached");
        assert!(matches!(failure, StoreError::Unavailable(_)), "{failure}");
        let why = store
            .check_writable()
            .await
            .expect_err("no longer writable");
        assert!(why.to_string().contains("refuses writes"), "{why}");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -S -f 4096; exec \"$0\" --exact backends::a_store_that_cannot_write_says_so --nocapture --test-threads 1")
        .arg(&exe)
        .env(CHILD, temp_dir("fsize"))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("1 passed"), "the child ran the test: {log}");
}

fn shown_features(v: f32) -> Features {
    let mut x = [0.0; FEATURES];
    x[0] = v;
    x[8] = 1.0;
    x
}

/// An impression of items `a` then `b` (the lead), served to `user` or to anyone.
fn impression(user: Option<&str>) -> Impression {
    Impression {
        user: user.map(str::to_string),
        segment: "global".into(),
        shown: vec![
            (Arc::from("a"), shown_features(0.9)),
            (Arc::from("b"), shown_features(0.5)),
        ],
        lead: Some(LeadDecision {
            candidates: vec![shown_features(0.9), shown_features(0.5)],
            chosen: 0,
            propensity: 0.95,
        }),
    }
}

/// What any impression store must do: attribute a reward once per user and item, only to
/// the user served, only for an item shown; forget a user; replay decisions with rewards.
async fn impression_store_contract(store: &dyn ImpressionStore, tag: &str) {
    let id = |n: u32| format!("{tag}-r{n}");
    let (alice, bob) = (format!("{tag}-alice"), format!("{tag}-bob"));
    store.record(id(1), impression(Some(&alice))).await.unwrap();
    store.record(id(2), impression(None)).await.unwrap();

    let got = store.reward(&id(1), &alice, "a", 1.0).await.unwrap();
    assert_eq!(
        got,
        Some(Attribution {
            segment: "global".into(),
            features: shown_features(0.9)
        })
    );
    assert_eq!(
        store.reward(&id(1), &alice, "a", 1.0).await.unwrap(),
        None,
        "once"
    );
    assert_eq!(
        store.reward(&id(1), &bob, "a", 1.0).await.unwrap(),
        None,
        "not bob's"
    );
    assert_eq!(
        store.reward(&id(1), &alice, "zz", 1.0).await.unwrap(),
        None,
        "not shown"
    );
    assert_eq!(
        store.reward(&id(9), &alice, "a", 1.0).await.unwrap(),
        None,
        "unknown"
    );
    // An anonymous response rewards each user once.
    assert!(store
        .reward(&id(2), &alice, "b", -0.5)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .reward(&id(2), &bob, "b", -0.5)
        .await
        .unwrap()
        .is_some());
    assert_eq!(store.reward(&id(2), &bob, "b", -0.5).await.unwrap(), None);

    let ours = |decisions: Vec<LoggedDecision>| {
        let mut rewards: Vec<f32> = decisions.iter().map(|d| d.reward).collect();
        rewards.sort_by(f32::total_cmp);
        rewards
    };
    // The lead is the first item shown: `a` (rewarded 1.0 on r1), nothing on r2.
    assert_eq!(ours(store.decisions(10_000).await.unwrap()), [0.0, 1.0]);

    // Alice is forgotten: her impression goes, and her reward on the anonymous one.
    assert_eq!(store.forget_user(&alice).await.unwrap(), 1);
    assert_eq!(store.reward(&id(1), &alice, "b", 1.0).await.unwrap(), None);
    assert!(
        store
            .reward(&id(2), &alice, "b", -0.5)
            .await
            .unwrap()
            .is_some(),
        "her earlier reward on the anonymous response is gone"
    );
    assert_eq!(
        store.forget_user(&format!("{tag}-nobody")).await.unwrap(),
        0
    );
}

#[tokio::test]
async fn in_process_impression_log_meets_the_contract() {
    impression_store_contract(&ImpressionLog::new(100), "local").await;
}

/// The cluster's impressions in a real CQL server; routers' policy sums add up, each
/// writer keeping its own row.
#[tokio::test]
async fn scylla_impressions_meet_the_contract_and_routers_share_policy_sums() {
    let Some(nodes) = test_server("SEMREC_TEST_CQL") else {
        return;
    };
    let mut config = scylla_test_config(&nodes);
    config.keyspace = unique("impressions").replace('-', "_");
    let store = ScyllaPolicyStore::new(config.clone(), 3_600);
    impression_store_contract(&store, &unique("scylla")).await;

    let sums = |updates: u64| {
        let s = SegmentStats {
            xx: vec![1.0; FEATURES * FEATURES],
            rx: vec![2.0; FEATURES],
            updates,
        };
        HashMap::from([("global".to_string(), s)])
    };
    store.save_stats("router-a", &sums(3)).await.unwrap();
    store.save_stats("router-b", &sums(4)).await.unwrap();
    // A writer's later save replaces its own row only.
    store.save_stats("router-b", &sums(5)).await.unwrap();
    let other = ScyllaPolicyStore::new(config, 3_600);
    let seen_by_a = other.others_stats("router-a").await.unwrap();
    assert_eq!(seen_by_a["global"].updates, 5);
    let seen_by_c = other.others_stats("router-c").await.unwrap();
    assert_eq!(seen_by_c["global"].updates, 8);
    assert_eq!(seen_by_c["global"].rx, vec![4.0; FEATURES]);
}
