#!/usr/bin/env bash
# One command for a local core cluster on loopback: N shard nodes on 127.0.0.2, 127.0.0.3, ...
# (internal RPC on PORT+1, probes and metrics on PORT+2) and a router serving the public API
# on 127.0.0.1:PORT. Runs in the foreground; Ctrl-C stops every process.
#
#   scripts/cluster.sh [--nodes 3] [--shards 6] [--replication 2] [--port 8080]
#                      [--data var/cluster] [--fresh] [--no-build]
#
# Node i hosts shard s when i == (s + j) % nodes for some j < replication. On its first
# start the router seeds the empty cluster with the demo catalogue: from var/data when
# scripts/run.sh has already embedded it there, otherwise by embedding it (a few minutes).
# Logs: DATA/router.log and DATA/node-I.log.
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=3 shards=6 replication=2 port=8080 data=var/cluster fresh=0 build=1
while (( $# )); do
  case $1 in
    --nodes) nodes=$2; shift 2 ;;
    --shards) shards=$2; shift 2 ;;
    --replication) replication=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --fresh) fresh=1; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
(( nodes >= 1 && nodes <= 200 )) || { echo "--nodes must be 1..200" >&2; exit 2; }
(( replication > nodes )) && replication=$nodes
if (( build )); then
  bash scripts/fetch-model.sh
  cargo build --release -p core-api --bin core-api
fi
bin=${CARGO_TARGET_DIR:-target}/release/core-api
(( fresh )) && rm -rf "$data"
mkdir -p "$data"

pids=()
cleanup() {
  trap - EXIT INT TERM
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

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
if [[ ! -e $data/router/reco.redb && -e var/data/reco.redb ]]; then
  mkdir -p "$data/router"
  cp var/data/reco.redb "$data/router/reco.redb"
fi
RECO__CLUSTER__ROLE=router RECO__CLUSTER__NODES=$node_list RECO__INDEX__SHARDS=$shards \
RECO__SERVER__BIND=127.0.0.1:$port RECO__STORAGE__DATA_DIR=$data/router RUST_LOG=${RUST_LOG:-info} \
  "$bin" >>"$data/router.log" 2>&1 &
router=$!
pids+=($router)

echo "starting $nodes shard nodes ($shards shards, replication $replication) and a router..." >&2
until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
  kill -0 $router 2>/dev/null || { tail -20 "$data/router.log" >&2; exit 1; }
  sleep 1
done
curl -fsS "http://127.0.0.1:$port/readyz"; echo
echo "router on http://127.0.0.1:$port; shard nodes $node_list, pids ${pids[*]:0:nodes}" >&2
echo "(kill a shard node's pid to see replicas take over or partial answers; Ctrl-C stops all)" >&2
wait $router || true
echo "the router exited; stopping the shard nodes (see $data/*.log)" >&2
