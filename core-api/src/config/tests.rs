//! Loading as a whole: defaults, file and environment overlays, and the checks that refuse
//! a bad or unsafe configuration, including the shipped example and Kubernetes files.

use super::*;

/// A CQL contact point, which the cluster roles require.
const SCYLLA: (&str, &str) = ("RECO__SCYLLA__NODES", "10.0.0.9:9042");

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn cluster_placement_and_list_overrides() {
    let c = Config::load(
        None,
        env(&[
            ("RECO__INDEX__SHARDS", "20"),
            ("RECO__CLUSTER__ROLE", "shard"),
            ("RECO__CLUSTER__SHARD_NODES", "10"),
            ("RECO__CLUSTER__ORDINAL", "3"),
            ("RECO__CLUSTER__NODES", "10.0.0.2:8081, 10.0.0.3:8081"),
            ("RECO__CLUSTER__SECRET", "cluster-secret"),
            SCYLLA,
        ]),
    )
    .unwrap();
    assert_eq!(c.cluster.role, Role::Shard);
    assert_eq!(c.cluster.nodes, ["10.0.0.2:8081", "10.0.0.3:8081"]);
    // Replication 2 on a ring of 10: node 3 holds shards 2, 3, 12, 13.
    assert_eq!(c.cluster.hosted(20).unwrap(), [2, 3, 12, 13]);
    let every_shard_twice = (0..10)
        .map(|o| ClusterConfig {
            ordinal: o,
            ..c.cluster.clone()
        })
        .flat_map(|n| n.hosted(20).unwrap())
        .fold(vec![0; 20], |mut seen, s| {
            seen[s] += 1;
            seen
        });
    assert_eq!(every_shard_twice, vec![2; 20]);
    assert!(Config::load(None, env(&[("RECO__CLUSTER__ROLE", "router")])).is_err());
    assert!(Config::load(None, env(&[("RECO__CLUSTER__ROLE", "leader")])).is_err());
    assert!(Config::load(
        None,
        env(&[
            ("RECO__CLUSTER__HOSTED_SHARDS", "0,4"),
            ("RECO__INDEX__SHARDS", "4")
        ])
    )
    .is_err());
}

#[test]
fn defaults_need_no_file() {
    let c = Config::load(None, env(&[])).unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(
        (c.index.m, c.index.ef_construction, c.index.ef_search),
        (16, 200, 100)
    );
}

#[test]
fn file_then_env_override() {
    let dir = std::env::temp_dir().join(format!("reco-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        "[index]\nshards = 8\nef_search = 64\n[ranking]\nmmr_lambda = 0.5\n",
    )
    .unwrap();
    let c = Config::load(
        Some(&file),
        env(&[
            ("RECO__INDEX__SHARDS", "20"),
            ("RECO__SERVER__BIND", "0.0.0.0:9000"),
            ("OTHER", "x"),
            ("RECO__EDGE__SHARED_SECRET", "12345"),
        ]),
    )
    .unwrap();
    assert_eq!(c.index.shards, 20, "env wins over file");
    assert_eq!(c.index.ef_search, 64, "file wins over defaults");
    assert_eq!(c.ranking.mmr_lambda, 0.5);
    assert_eq!(c.server.bind, "0.0.0.0:9000");
    assert_eq!(c.edge.shared_secret, "12345", "string keys stay strings");
}

#[test]
fn shipped_example_config_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config.example.toml");
    // It binds every interface, so it starts only with authentication configured.
    let refused = Config::load(Some(&example), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("edge.shared_secret"), "{refused}");
    assert!(refused.contains("auth.insecure_development"), "{refused}");
    let c = Config::load(
        Some(&example),
        env(&[("RECO__EDGE__SHARED_SECRET", "a-long-random-secret")]),
    )
    .unwrap();
    assert_eq!(c.index.shards, 20);
    assert!(!c.demo.load_if_empty);
}

/// The Kubernetes ConfigMap's `core.toml`, as shard nodes and routers load it.
#[test]
fn kubernetes_config_loads_for_both_roles() {
    let yaml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s/config.yaml"),
    )
    .unwrap();
    let toml: String = yaml
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("core.toml: |"))
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let file = std::env::temp_dir().join(format!("k8s-core-{}.toml", std::process::id()));
    std::fs::write(&file, toml).unwrap();
    let shard = Config::load(
        Some(&file),
        env(&[
            ("RECO__CLUSTER__ROLE", "shard"),
            ("RECO__CLUSTER__SECRET", "from-the-secret"),
            ("HOSTNAME", "core-shard-3"),
        ]),
    )
    .unwrap();
    assert_eq!(shard.cluster.role, Role::Shard);
    assert_eq!(shard.index.shards, 20);
    let mut node_3 = shard.cluster.clone();
    node_3.ordinal = 3;
    assert_eq!(node_3.hosted(20).unwrap(), [2, 3, 12, 13]);
    let router = Config::load(
        Some(&file),
        env(&[
            ("RECO__CLUSTER__ROLE", "router"),
            ("RECO__EDGE__SHARED_SECRET", "from-the-secret"),
            ("RECO__CLUSTER__SECRET", "from-the-secret"),
        ]),
    )
    .unwrap();
    assert_eq!(router.cluster.role, Role::Router);
    assert!(!router.cluster.nodes_dns.is_empty());
    let _ = std::fs::remove_file(file);
}

#[test]
fn the_index_precision_is_chosen_by_name() {
    let default = Config::load(None, env(&[])).unwrap();
    assert_eq!(default.index.precision(), vector_index::Precision::Fp16);
    let int8 = Config::load(
        None,
        env(&[
            ("RECO__INDEX__PRECISION", "int8-rerank"),
            ("RECO__INDEX__RERANK", "64"),
        ]),
    )
    .unwrap();
    assert_eq!(
        int8.index.precision(),
        vector_index::Precision::Int8Rerank { rerank: 64 }
    );
}

#[test]
fn invalid_values_are_rejected() {
    assert!(Config::load(None, env(&[("RECO__INDEX__SHARDS", "0")])).is_err());
    assert!(Config::load(None, env(&[("RECO__NOPE__X", "1")])).is_err());
    assert!(Config::load(None, env(&[("RECO__INDEX__NOPE", "1")])).is_err());
    assert!(Config::load(None, env(&[("RECO__INDEX__SHARDS", "many")])).is_err());
    assert!(Config::load(None, env(&[("RECO__POLICY__SYNC_SECS", "0")])).is_err());
    assert!(Config::load(None, env(&[("RECO__POLICY__IMPRESSION_TTL_SECS", "5")])).is_err());
    assert!(Config::load(None, env(&[("RECO__POLICY__SYNC_SECS", "2")])).is_ok());
    assert!(Config::load(None, env(&[("RECO__INDEX__PRECISION", "int4")])).is_err());
    assert!(Config::load(None, env(&[("RECO__INDEX__RERANK", "0")])).is_err());
}

#[test]
fn a_public_bind_needs_authentication_or_the_explicit_switch() {
    let public = ("RECO__SERVER__BIND", "0.0.0.0:8080");
    let err = Config::load(None, env(&[public])).unwrap_err().to_string();
    assert!(err.contains("refusing to serve 0.0.0.0:8080"), "{err}");
    assert!(
        Config::load(None, env(&[])).is_ok(),
        "loopback stays zero-config"
    );
    assert!(Config::load(None, env(&[public, ("RECO__EDGE__SHARED_SECRET", "s")])).is_ok());
    assert!(Config::load(
        None,
        env(&[public, ("RECO__AUTH__INSECURE_DEVELOPMENT", "true")])
    )
    .is_ok());
    let shard = ("RECO__CLUSTER__ROLE", "shard");
    let cluster_secret = ("RECO__CLUSTER__SECRET", "cluster-secret");
    assert!(
        Config::load(None, env(&[public, shard, cluster_secret, SCYLLA])).is_ok(),
        "shard nodes serve no public API on server.bind"
    );
}

#[test]
fn an_internal_rpc_off_loopback_needs_the_cluster_secret() {
    let shard = ("RECO__CLUSTER__ROLE", "shard");
    let err = Config::load(None, env(&[shard, SCYLLA]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cluster.secret"), "{err}");
    let local = ("RECO__CLUSTER__INTERNAL_BIND", "127.0.0.1:8081");
    assert!(Config::load(None, env(&[shard, local, SCYLLA])).is_ok());
    assert!(Config::load(None, env(&[shard, ("RECO__CLUSTER__SECRET", "s"), SCYLLA])).is_ok());
    let router = ("RECO__CLUSTER__ROLE", "router");
    let remote = ("RECO__CLUSTER__NODES", "127.0.0.1:8081,10.0.0.7:8081");
    let err = Config::load(None, env(&[router, remote, SCYLLA]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("10.0.0.7:8081"), "{err}");
    assert!(Config::load(
        None,
        env(&[router, ("RECO__CLUSTER__NODES", "127.0.0.1:8081"), SCYLLA])
    )
    .is_ok());
    assert!(Config::load(
        None,
        env(&[
            router,
            remote,
            ("RECO__AUTH__INSECURE_DEVELOPMENT", "true"),
            SCYLLA
        ])
    )
    .is_ok());
}

/// The cluster's catalogue and events live in ScyllaDB: a router or shard node without it
/// would keep acknowledged writes nowhere durable, so it does not start.
#[test]
fn cluster_roles_need_scylla() {
    for role in ["router", "shard"] {
        let err = Config::load(
            None,
            env(&[
                ("RECO__CLUSTER__ROLE", role),
                ("RECO__CLUSTER__NODES", "127.0.0.1:8081"),
                ("RECO__CLUSTER__INTERNAL_BIND", "127.0.0.1:8081"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("scylla.nodes"), "{role}: {err}");
    }
    assert!(
        Config::load(None, env(&[])).is_ok(),
        "a single process needs no ScyllaDB"
    );
}
