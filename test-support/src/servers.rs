//! The real servers a suite needs (a CQL server, Neo4j, Redis), started by `scripts/test.sh`.

/// Address of a real server the suite needs (`SEMREC_TEST_CQL`, `SEMREC_TEST_BOLT`), which
/// `scripts/test.sh` starts. Without it the test is skipped with a message, unless
/// `SEMREC_TEST_REQUIRE_SERVERS=1` (set by that script), where a missing server fails it.
pub fn test_server(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var("SEMREC_TEST_REQUIRE_SERVERS").as_deref() != Ok("1"),
                "{var} is not set but SEMREC_TEST_REQUIRE_SERVERS=1"
            );
            eprintln!("skipped: {var} is not set (scripts/test.sh starts the servers)");
            None
        }
    }
}
