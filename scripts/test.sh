#!/usr/bin/env bash
# One command to set up and run every test: fetches the embedding model, checks formatting
# and lints (native and the worker's wasm32 build), builds the edge worker (installing its
# pinned tooling), then runs all tests of the workspace: unit, router, real-socket, kill -9
# durability, index recall, semantic sanity on the real model, and the edge worker in a real
# local workerd in front of a real core-api process, and the production backends against real
# servers on loopback: redis-server (Debian package), Apache Cassandra 5.0 as the CQL server and
# Neo4j 5.26 (both from Maven Central on Java 17, started fresh here and stopped at the end),
# a cluster of core-api processes on loopback, the deployment artefacts (scripts/check-deploy.sh),
# and a 2-minute fault soak (benches/soak.sh --check).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm not found: install Node.js >= 20.3" >&2; exit 1; }
bash scripts/fetch-model.sh
# Real servers for the backend tests: Redis (each test starts its own on a free port), and one
# CQL server and one Neo4j for the whole run, started in the background while the code builds.
apt_install() {
  apt-get install -y -q "$@" >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; } ||
    { echo "the tests need: apt-get install $*" >&2; exit 1; }
}
command -v redis-server >/dev/null || apt_install redis-server
command -v javac >/dev/null || apt_install openjdk-17-jdk-headless
command -v mvn >/dev/null || apt_install maven
export CASSANDRA_PORT="${CASSANDRA_PORT:-19042}" NEO4J_BOLT_PORT="${NEO4J_BOLT_PORT:-17687}"
export SEMREC_TEST_CQL="127.0.0.1:$CASSANDRA_PORT" SEMREC_TEST_BOLT="127.0.0.1:$NEO4J_BOLT_PORT"
export SEMREC_TEST_REQUIRE_SERVERS=1
server_logs="$(mktemp -d)"
stop_servers() {
  wait "${cassandra_start:-}" "${neo4j_start:-}" 2>/dev/null || true
  bash scripts/servers/cassandra.sh stop >/dev/null 2>&1 || true
  bash scripts/servers/neo4j.sh stop >/dev/null 2>&1 || true
}
trap stop_servers EXIT
start_server() {
  { bash "scripts/servers/$1.sh" stop && bash "scripts/servers/$1.sh" start --fresh; } >"$server_logs/$1" 2>&1
}
start_server cassandra & cassandra_start=$!
start_server neo4j & neo4j_start=$!
wait_server() {
  local pid=$1 name=$2
  wait "$pid" || { echo "$name did not start:" >&2; cat "$server_logs/$name" >&2; exit 1; }
  tail -1 "$server_logs/$name"
}
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
bash scripts/check-layout.sh
# The GPU path (feature cuda): lints, and its tests on this machine's backend (the CPU fallback
# when there is no driver; the GPUs where there are); the CUDA kernels must compile with NVRTC
# (no GPU needed for that).
cargo clippy -p gpu-batch --features cuda --all-targets -- -D warnings
nvrtc_lib=$(bash scripts/fetch-nvrtc.sh)
LD_LIBRARY_PATH="$nvrtc_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" REQUIRE_NVRTC=1 \
  cargo test -q -p gpu-batch --features cuda --lib
bash scripts/build-edge.sh
bash scripts/build-edge.sh --clippy
# Deployment artefacts: promtool checks and rule tests, strict Kubernetes manifest validation,
# the Grafana dashboard and the capacity sheet.
bash scripts/check-deploy.sh
wait_server "$cassandra_start" cassandra
wait_server "$neo4j_start" neo4j
cargo test --workspace
# The benchmark suite, once on tiny inputs, so it cannot silently rot (figures not checked).
bash benches/smoke.sh
# Fault soak, 2 minutes: a loopback cluster (3 Cassandra nodes, Neo4j, Redis, 3 shard nodes, 2
# routers) under load while components are killed -9 and restarted; it fails when an
# acknowledged write is lost or stored twice, or a 5xx other than a 503 with a JSON body is
# answered. The single test servers are stopped first to leave it the memory.
stop_servers
bash benches/soak.sh --minutes 2 --check --no-build --bin-dir "${CARGO_TARGET_DIR:-target}/debug" \
  --out "$server_logs/RESULTS-soak.md"
