#!/usr/bin/env bash
# Backend latency on loopback -> benches/RESULTS-backends.md: history fetch for 1 and 5 users
# (batched vs sequential) in Cassandra 5.0 (the CQL server the tests use for ScyllaDB), the
# 1-hop graph-candidate query in Neo4j 5.26, the user-embedding fetch from Redis, each beside
# the embedded default measured in the same run. Starts its own fresh servers on spare ports
# (scripts/servers/*.sh, redis-server) and stops them. Called by benches/run.sh; runs alone too.
set -euo pipefail
cd "$(dirname "$0")/.."
iterations=${1:-2000}
cargo build --release -p reco-benches --bin backend_latency >&2
bin=${CARGO_TARGET_DIR:-target}/release
export CASSANDRA_PORT=29042 NEO4J_BOLT_PORT=27687
redis_port=26379
cleanup() {
  bash scripts/servers/cassandra.sh stop >/dev/null 2>&1 || true
  bash scripts/servers/neo4j.sh stop >/dev/null 2>&1 || true
  redis-cli -p $redis_port shutdown nosave >/dev/null 2>&1 || true
}
trap cleanup EXIT
bash scripts/servers/cassandra.sh stop >&2 && bash scripts/servers/cassandra.sh start --fresh >&2
bash scripts/servers/neo4j.sh stop >&2 && bash scripts/servers/neo4j.sh start --fresh >&2
redis-server --port $redis_port --bind 127.0.0.1 --save "" --appendonly no --daemonize yes >&2
until redis-cli -p $redis_port ping >/dev/null 2>&1; do sleep 0.2; done
result=$("$bin/backend_latency" --iterations "$iterations" --cql 127.0.0.1:$CASSANDRA_PORT \
  --bolt 127.0.0.1:$NEO4J_BOLT_PORT --redis redis://127.0.0.1:$redis_port/0)
versions="Cassandra $(ls -d "${XDG_CACHE_HOME:-$HOME/.cache}"/semrec-tools/cassandra-* | sed 's/.*cassandra-//' | tail -1), Neo4j $(ls -d "${XDG_CACHE_HOME:-$HOME/.cache}"/semrec-tools/neo4j-* | sed 's/.*neo4j-//' | tail -1), $(redis-server --version | cut -d' ' -f1-3)"
python3 - "$result" "$versions" <<'PY'
import datetime, json, platform, subprocess, sys
r, versions = json.loads(sys.argv[1]), sys.argv[2]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
def row(name, m, peer=None):
    ratio = f"{m['p99_ms'] / peer['p99_ms']:.1f}x" if peer else ""
    return f"| {name} | {m['p50_ms']:.3f} | {m['p99_ms']:.3f} | {ratio} |"
s, e = r["scylla_history"], r["embedded_history"]
out = f"""# Backend latency

Written by `benches/backends.sh` on {datetime.date.today().isoformat()}; machine: {cpu}, {cores} cores; {versions}.
Every server runs on the same cores as the client, over loopback, fresh, single node. Each row is
{s['one_user']['n']} sequential calls after a warm-up, through the core's own store code.
Data: 200 users x 50 events; a graph of 5,000 `Content` nodes x 10 `SIMILAR_TO` edges; 384-d
user vectors. The embedded defaults (redb, in-process graph and cache) are measured in the
same run as the reference. The CQL server is Apache Cassandra (the driver's own test target),
not ScyllaDB; Neo4j runs with the C1 JIT only (`-XX:TieredStopAtLevel=1`, faster start).

| operation | p50 ms | p99 ms | p99 vs embedded |
|---|---|---|---|
{row("history, 1 user (50 events), CQL", s['one_user'], e['one_user'])}
{row("history, 5 users batched (concurrent, one call), CQL", s['five_batched'], e['five_batched'])}
{row("history, 5 users sequential, CQL", s['five_sequential'], e['five_sequential'])}
{row("history, 1 user, embedded", e['one_user'])}
{row("history, 5 users, embedded", e['five_batched'])}
{row("graph candidates: 1 hop from 5 seeds, top 100, Neo4j", r['neo4j_graph'], r['in_process_graph'])}
{row("graph candidates, in-process graph", r['in_process_graph'])}
{row("user embedding fetch (384-d FP16), Redis", r['redis_cache'], r['in_process_cache'])}
{row("user embedding fetch, in-process cache", r['in_process_cache'])}

Batched vs sequential history for 5 users (CQL): p50 {s['five_sequential']['p50_ms'] / s['five_batched']['p50_ms']:.2f}x,
p99 {s['five_sequential']['p99_ms'] / s['five_batched']['p99_ms']:.2f}x faster batched. (The design measures 3 ms vs 10 ms p99 on a
ScyllaDB cluster; here the server shares two cores with the client, which limits what
concurrency can win.)
"""
open("benches/RESULTS-backends.md", "w").write(out)
print(out)
PY
