#!/usr/bin/env bash
# Fault soak: a loopback cluster under steady load while a chaos loop kills -9 and restarts one
# component at a time; then every acknowledged write is read back -> benches/RESULTS-soak.md.
#
#   benches/soak.sh [--minutes 10] [--check] [--no-build] [--bin-dir DIR] [--out FILE]
#                   [--keep DIR]
#
# The cluster: a 3-node Cassandra cluster (127.0.0.21-23, replication factor 3, quorum reads and
# writes) as the store of record, Neo4j, Redis, 3 shard nodes (127.0.0.2-4; 4 shards, each on 2
# of them) and 2 routers (127.0.0.5-6). The load (benches/src/bin/soak.rs): recommendations and
# similar items, batches of events with ids, one item upsert a second; a failed write is retried
# with the same ids on the other router. Every 30-60 s the chaos loop kills -9 one component (a
# shard node, a router, a Cassandra node, Neo4j or Redis, in a shuffled order that kills each
# kind at least twice in 10 minutes), restarts it after 2 s and times its recovery: until it and
# every router and shard node report ready with every dependency up.
#
# --check exits non-zero when an acknowledged write was lost or stored twice, or a 5xx other
# than a 503 with a JSON body was answered (the test command runs it for 2 minutes).
# --no-build uses binaries already in --bin-dir (default: the release build). --keep copies the
# request log, the chaos log and every process's log to DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=10 check=0 build=1 bin_dir="" out=benches/RESULTS-soak.md keep=""
while (( $# )); do
  case $1 in
    --minutes) minutes=$2; shift 2 ;;
    --check) check=1; shift ;;
    --no-build) build=0; shift ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
target=${CARGO_TARGET_DIR:-target}
bin_dir=${bin_dir:-$target/release}
if (( build )); then
  bash scripts/fetch-model.sh
  cargo build --release -p core-api --bin core-api -p reco-benches --bin soak
fi
for b in core-api soak; do
  [[ -x $bin_dir/$b ]] || { echo "soak: $bin_dir/$b not built" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "soak: redis-server not found (apt-get install redis-server)" >&2; exit 1; }

work=$(mktemp -d)
export CASSANDRA_CLUSTER_IPS="127.0.0.21 127.0.0.22 127.0.0.23" CASSANDRA_PORT=19142
export CASSANDRA_HEAP=${CASSANDRA_HEAP:-768m}
export NEO4J_BOLT_PORT=${SOAK_NEO4J_PORT:-17688}
redis_port=16399
cql_nodes=$(for ip in $CASSANDRA_CLUSTER_IPS; do printf '%s:%s,' "$ip" "$CASSANDRA_PORT"; done)
cql_nodes=${cql_nodes%,}
keyspace=soak_$(date +%s)
declare -A pid addr
chaos_log=$work/chaos.csv
log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

stop_all() {
  trap - EXIT INT TERM
  for name in "${!pid[@]}"; do kill -9 "${pid[$name]}" 2>/dev/null || true; done
  bash scripts/servers/cassandra-cluster.sh stop --kill >/dev/null 2>&1 || true
  bash scripts/servers/neo4j.sh stop --kill >/dev/null 2>&1 || true
  if [[ -n $keep ]]; then
    mkdir -p "$keep" && cp -r "$work"/*.log "$work"/*.csv "$work"/started_ms "$work"/out "$keep"/ 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop_all EXIT INT TERM

# --- the servers
log "starting a 3-node Cassandra cluster, Neo4j and Redis"
bash scripts/servers/cassandra-cluster.sh start --fresh >"$work/cassandra.log" 2>&1 &
cassandra_start=$!
bash scripts/servers/neo4j.sh stop >/dev/null 2>&1 || true
bash scripts/servers/neo4j.sh start --fresh >"$work/neo4j.log" 2>&1 &
neo4j_start=$!
start_redis() {
  redis-server --bind 127.0.0.1 --port $redis_port --save "" --appendonly no >>"$work/redis.log" 2>&1 &
  pid[redis]=$!
  disown
}
start_redis
wait "$cassandra_start" || { cat "$work/cassandra.log" >&2; exit 1; }
wait "$neo4j_start" || { cat "$work/neo4j.log" >&2; exit 1; }

# --- the core: 3 shard nodes, 2 routers
common=(
  RECO__INDEX__SHARDS=4 RECO__DEMO__LOAD_IF_EMPTY=false RECO__MODEL__DIR="$PWD/models/all-MiniLM-L6-v2"
  RECO__SCYLLA__NODES="$cql_nodes" RECO__SCYLLA__KEYSPACE="$keyspace" RECO__SCYLLA__CONSISTENCY=quorum
  "RECO__SCYLLA__REPLICATION={'class': 'SimpleStrategy', 'replication_factor': 3}"
  RECO__SCYLLA__TIMEOUT_MS=3000 RECO__CLUSTER__HEALTH_INTERVAL_MS=250
  RUST_LOG=${RUST_LOG:-warn,core_api=info}
)
shard_list=127.0.0.2:18181,127.0.0.3:18181,127.0.0.4:18181
start_shard() { # i
  local i=$1 ip=127.0.0.$(( $1 + 2 ))
  env "${common[@]}" RECO__CLUSTER__ROLE=shard RECO__CLUSTER__SHARD_NODES=3 RECO__CLUSTER__REPLICATION=2 \
    RECO__CLUSTER__ORDINAL="$i" RECO__CLUSTER__INTERNAL_BIND="$ip:18181" RECO__SERVER__BIND="$ip:18182" \
    RECO__STORAGE__DATA_DIR="$work/shard-$i" "$bin_dir/core-api" >>"$work/shard-$i.log" 2>&1 &
  pid[shard-$i]=$!
  disown
  addr[shard-$i]=$ip:18182
}
start_router() { # i
  local i=$1 ip=127.0.0.$(( $1 + 5 ))
  env "${common[@]}" RECO__CLUSTER__ROLE=router RECO__CLUSTER__NODES="$shard_list" \
    RECO__SERVER__BIND="$ip:18180" RECO__STORAGE__DATA_DIR="$work/router-$i" \
    RECO__NEO4J__URI="127.0.0.1:$NEO4J_BOLT_PORT" RECO__NEO4J__TIMEOUT_MS=1000 \
    RECO__REDIS__URL="redis://127.0.0.1:$redis_port/0" RECO__REDIS__TIMEOUT_MS=500 \
    "$bin_dir/core-api" >>"$work/router-$i.log" 2>&1 &
  pid[router-$i]=$!
  disown
  addr[router-$i]=$ip:18180
}
for i in 0 1 2; do start_shard $i; done
for i in 0 1; do start_router $i; done

# Every router and shard node answers /readyz with 200, and routers report every dependency ok.
all_ready() {
  local name body
  for name in shard-0 shard-1 shard-2; do
    curl -fsS -m 2 "http://${addr[$name]}/readyz" >/dev/null 2>&1 || return 1
  done
  for name in router-0 router-1; do
    body=$(curl -fsS -m 3 "http://${addr[$name]}/readyz" 2>/dev/null) || return 1
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d.get("status") == "ready" else 1)' "$body" || return 1
  done
}
wait_all_ready() { # limit-seconds
  local until=$(( $(date +%s) + $1 ))
  until all_ready; do
    (( $(date +%s) < until )) || return 1
    sleep 0.5
  done
}
log "waiting for the cluster"
wait_all_ready 300 || { for f in "$work"/*.log; do echo "== $f"; tail -20 "$f"; done >&2; exit 1; }

# --- the chaos loop
kinds=(shard router cassandra neo4j redis)
now_ms() { date +%s%3N; }
kill_one() { # kind -> prints the victim
  local kind=$1 victim
  case $kind in
    shard) victim=shard-$(( RANDOM % 3 )); kill -9 "${pid[$victim]}" ;;
    router) victim=router-$(( RANDOM % 2 )); kill -9 "${pid[$victim]}" ;;
    cassandra)
      local ips=($CASSANDRA_CLUSTER_IPS); victim=${ips[$(( RANDOM % 3 ))]}
      bash scripts/servers/cassandra-cluster.sh kill "$victim" >>"$work/cassandra.log" 2>&1 ;;
    neo4j) victim=neo4j; bash scripts/servers/neo4j.sh stop --kill >>"$work/neo4j.log" 2>&1 ;;
    redis) victim=redis; kill -9 "${pid[redis]}" ;;
  esac
  echo "$victim"
}
restart_one() { # victim
  case $1 in
    shard-*) start_shard "${1#shard-}" ;;
    router-*) start_router "${1#router-}" ;;
    neo4j) bash scripts/servers/neo4j.sh start >>"$work/neo4j.log" 2>&1 ;;
    redis) start_redis ;;
    *) bash scripts/servers/cassandra-cluster.sh start-node "$1" >>"$work/cassandra.log" 2>&1 ;;
  esac
}
chaos() { # seconds
  local end=$(( $(date +%s) + $1 )) order=() kind victim killed_at restarted_at recovered_at
  # Every kind once (the index, the routers and the store of record first, so a short run
  # covers those), every kind again in a shuffled order, then random kinds.
  order=("${kinds[@]}" $(printf '%s\n' "${kinds[@]}" | shuf | tr '\n' ' '))
  echo "killed_ms,kind,victim,restarted_ms,recovered_ms" >"$chaos_log"
  local n=0
  sleep $(( 15 + RANDOM % 10 ))
  while (( $(date +%s) + 20 < end )); do
    kind=${order[$n]:-${kinds[$(( RANDOM % 5 ))]}}
    n=$(( n + 1 ))
    killed_at=$(now_ms)
    victim=$(kill_one "$kind")
    log "killed $victim"
    sleep 2
    restart_one "$victim"
    restarted_at=$(now_ms)
    if wait_all_ready 240; then recovered_at=$(now_ms); else recovered_at=""; log "$victim did not recover in 240 s"; fi
    log "$victim recovered in $(( (${recovered_at:-$(now_ms)} - killed_at) / 1000 )) s"
    echo "$killed_at,$kind,$victim,$restarted_at,$recovered_at" >>"$chaos_log"
    local gap=$(( 30 + RANDOM % 31 - (${recovered_at:-$(now_ms)} - killed_at) / 1000 ))
    (( gap < 5 )) && gap=5
    sleep "$gap"
  done
}

seconds=$(( minutes * 60 ))
log "load for $minutes min with a kill every 30-60 s"
started_ms=$(now_ms)
echo "$started_ms" >"$work/started_ms"
"$bin_dir/soak" --routers "${addr[router-0]},${addr[router-1]}" --duration "$seconds" --out "$work/out" \
  >"$work/soak.json" 2>"$work/soak.err" &
load=$!
chaos "$seconds"
wait "$load" || { tail -30 "$work/soak.err" >&2; exit 1; }
tail -5 "$work/soak.err" >&2

python3 benches/soak_report.py "$work/out" "$chaos_log" "$started_ms" "$minutes" "$out"
if (( check )); then
  python3 - "$work/out/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
problems = [k for k in ("events_lost", "events_duplicated", "bad_5xx", "client_errors", "users_not_read_back") if s[k]]
if s["items_lost"]:
    problems.append("items_lost")
if not s["events_acknowledged"] or not s["items_acknowledged"]:
    problems.append("nothing acknowledged")
if problems:
    sys.exit(f"soak check failed: {problems}: {json.dumps(s)}")
print(f"soak check passed: {s['events_acknowledged']} events and {s['items_acknowledged']} items acknowledged, none lost or stored twice, no bad 5xx")
PY
fi
