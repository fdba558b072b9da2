#!/usr/bin/env bash
# One command for a local core cluster on loopback: N shard nodes on 127.0.0.2, 127.0.0.3, ...
# (internal RPC on PORT+1, probes and metrics on PORT+2), a router serving the public API on
# 127.0.0.1:PORT, and the CQL server they keep their data in. Runs in the foreground; Ctrl-C
# stops every process.
#
#   scripts/cluster.sh [--nodes 3] [--shards 6] [--replication 2] [--port 8080]
#                      [--data var/cluster] [--cql HOST:PORT] [--fresh] [--no-build]
#
# Routers and shard nodes keep the catalogue, events and profiles in ScyllaDB or Cassandra
# (any CQL server). Without --cql, a single-node Apache Cassandra 5.0 is started through
# scripts/servers/cassandra.sh (Java 17 and Maven; the first run downloads it) on 127.0.0.1:9042
# (CASSANDRA_PORT to change) with its data in DATA/cassandra, and stopped on exit. With --cql,
# that server is used instead (e.g. the ScyllaDB of deploy/docker-compose.yml: --cql
# 127.0.0.1:9042).
# The keyspace is created with SimpleStrategy, replication factor 1, and statements run at
# consistency ONE: set RECO__SCYLLA__KEYSPACE, RECO__SCYLLA__REPLICATION or
# RECO__SCYLLA__CONSISTENCY to change them. --fresh wipes DATA, Cassandra's data included (not
# the keyspace of a server given with --cql: drop it there, or use another keyspace).
#
# Node i hosts shard s when i == (s + j) % nodes for some j < replication. Each node loads its
# shards from the CQL server (DATA/node-I keeps index snapshots, a start-up cache). On its first
# start the router seeds an empty catalogue with the demo catalogue: from var/data when
# scripts/run.sh has already embedded it there, otherwise by embedding it (a few minutes).
# Logs: DATA/router.log, DATA/node-I.log and DATA/cassandra/cassandra.log.
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=3 shards=6 replication=2 port=8080 data=var/cluster cql="" fresh=0 build=1
while (( $# )); do
  case $1 in
    --nodes) nodes=$2; shift 2 ;;
    --shards) shards=$2; shift 2 ;;
    --replication) replication=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --cql) cql=$2; shift 2 ;;
    --fresh) fresh=1; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
(( nodes >= 1 && nodes <= 200 )) || { echo "--nodes must be 1..200" >&2; exit 2; }
(( replication > nodes )) && replication=$nodes
if [[ -n $cql && ! $cql =~ ^[^:]+:[0-9]+$ ]]; then
  echo "--cql wants HOST:PORT, e.g. 127.0.0.1:9042" >&2
  exit 2
fi
if (( build )); then
  bash scripts/fetch-model.sh
  cargo build --release -p core-api --bin core-api
fi
bin=${CARGO_TARGET_DIR:-target}/release/core-api

# The Cassandra this script runs lives in DATA/cassandra, apart from the test suite's.
cassandra() { CASSANDRA_HOME_DIR="$data/cassandra" bash scripts/servers/cassandra.sh "$@"; }
if (( fresh )); then
  [[ -z $cql ]] && cassandra stop
  rm -rf "$data"
fi
mkdir -p "$data"

pids=()
own_cql=0
cleanup() {
  trap - EXIT INT TERM
  if (( ${#pids[@]} )); then
    kill "${pids[@]}" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  if (( own_cql )); then
    cassandra stop || true
  fi
}
trap cleanup EXIT INT TERM

if [[ -z $cql ]]; then
  own_cql=1
  cql=127.0.0.1:${CASSANDRA_PORT:-9042}
  cassandra start || {
    echo "no CQL server on $cql: if another one already listens there, use it with --cql $cql" \
      "or set CASSANDRA_PORT (see $data/cassandra/cassandra.log)" >&2
    exit 1
  }
fi
# Every process talks to the same single CQL server. Statements get 2 s (the production default
# is 200 ms) since the server shares this machine with the whole cluster.
export RECO__SCYLLA__NODES=$cql
export RECO__SCYLLA__REPLICATION=${RECO__SCYLLA__REPLICATION:-"{'class': 'SimpleStrategy', 'replication_factor': 1}"}
export RECO__SCYLLA__CONSISTENCY=${RECO__SCYLLA__CONSISTENCY:-one}
export RECO__SCYLLA__TIMEOUT_MS=${RECO__SCYLLA__TIMEOUT_MS:-2000}

node_list=""
for ((i = 0; i < nodes; i++)); do
  node_list+="${node_list:+,}127.0.0.$((i + 2)):$((port + 1))"
done
for ((i = 0; i < nodes; i++)); do
  ip=127.0.0.$((i + 2))
  RECO__CLUSTER__ROLE=shard RECO__CLUSTER__SHARD_NODES=$nodes \
  RECO__CLUSTER__REPLICATION=$replication RECO__CLUSTER__ORDINAL=$i \
  RECO__CLUSTER__INTERNAL_BIND=$ip:$((port + 1)) RECO__CLUSTER__NODES=$node_list \
  RECO__INDEX__SHARDS=$shards RECO__SERVER__BIND=$ip:$((port + 2)) \
  RECO__STORAGE__DATA_DIR=$data/node-$i RUST_LOG=${RUST_LOG:-info} \
    "$bin" >>"$data/node-$i.log" 2>&1 &
  pids+=($!)
done
# The router seeds an empty catalogue from the items in its own data folder: the demo
# catalogue that scripts/run.sh embedded, when there is one.
if [[ ! -e $data/router/reco.redb && -e var/data/reco.redb ]]; then
  mkdir -p "$data/router"
  cp var/data/reco.redb "$data/router/reco.redb"
fi
RECO__CLUSTER__ROLE=router RECO__CLUSTER__NODES=$node_list RECO__INDEX__SHARDS=$shards \
RECO__SERVER__BIND=127.0.0.1:$port RECO__STORAGE__DATA_DIR=$data/router RUST_LOG=${RUST_LOG:-info} \
  "$bin" >>"$data/router.log" 2>&1 &
router=$!
pids+=($router)

echo "starting $nodes shard nodes ($shards shards, replication $replication) and a router on CQL server $cql..." >&2
until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
  kill -0 $router 2>/dev/null || { tail -20 "$data/router.log" >&2; exit 1; }
  sleep 1
done
curl -fsS "http://127.0.0.1:$port/readyz"; echo
echo "router on http://127.0.0.1:$port; shard nodes $node_list, pids ${pids[*]:0:nodes}; CQL $cql" >&2
echo "(kill a shard node's pid to see replicas take over or partial answers; Ctrl-C stops all)" >&2
wait $router || true
echo "the router exited; stopping the shard nodes (see $data/*.log)" >&2
