#!/usr/bin/env bash
# Service latency with the learned sources on and off, in one run, on the demo catalogue:
# closed loop (16 connections) and open loop at 500 and 1,000 requests/s, the request mix of
# `loadgen` (60% personalised). Each phase runs on a fresh copy of var/data (created on first
# use), so neither sees the other's events or models. Prints a Markdown section.
#   benches/service_latency.sh [seconds per phase, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/semrec-target}"
bash scripts/fetch-model.sh
cargo build --release -q -p core-api -p reco-benches
bin=$CARGO_TARGET_DIR/release
port=18090
work=$(mktemp -d)
server=""
cleanup() { [[ -n $server ]] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
  echo "port $port is taken by another server" >&2
  exit 1
fi
# Waits (at most 15 minutes) until the check passes while the server lives.
wait_for() {
  local deadline=$((SECONDS + 900))
  until "$@"; do
    kill -0 "$server" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
    (( SECONDS < deadline )) || { echo "timed out waiting for: $*" >&2; exit 1; }
    sleep 1
  done
}
graph_filled() {
  curl -fsS "http://127.0.0.1:$port/readyz" 2>/dev/null |
    python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin).get("graph_filled") else 1)' 2>/dev/null
}
model_trained() {
  curl -fsS "http://127.0.0.1:$port/admin/model" 2>/dev/null |
    python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["version"] > 0 else 1)' 2>/dev/null
}
start() { # data dir, learning on/off
  RECO__STORAGE__DATA_DIR=$1 RECO__SERVER__BIND=127.0.0.1:$port RECO__LEARNING__ENABLED=$2 \
    RUST_LOG=warn "$bin/core-api" >"$work/log" 2>&1 &
  server=$!
}
stop() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; server=""; }
if [[ ! -f var/data/reco.redb ]]; then
  echo "embedding the demo catalogue into var/data (first run only)..." >&2
  start var/data false
  wait_for graph_filled
  stop
fi
rows=()
for learning in true false; do
  rm -rf "$work/data"
  cp -r var/data "$work/data"
  rm -rf "$work/data/models"
  start "$work/data" "$learning"
  wait_for graph_filled
  # With the learned sources: wait for the start-up training to serve a model.
  [[ $learning == true ]] && wait_for model_trained
  load() { "$bin/loadgen" --addr 127.0.0.1:$port --duration "$duration" --json "$@"; }
  load --rate 0 --connections 8 --duration 3 >/dev/null
  for mode in "0 16" "500 32" "1000 64"; do
    read -r rate connections <<<"$mode"
    rows+=("$learning $(load --rate "$rate" --connections "$connections" | python3 -c '
import json,sys; r=json.load(sys.stdin)
print(r["mode"], r["target_rate"], r["connections"], round(r["throughput_rps"]), r["p50_ms"], r["p95_ms"], r["p99_ms"], r["errors"])')")
  done
  stop
done
echo "### Service latency with and without the learned sources"
echo
echo "Written by \`benches/service_latency.sh $duration\` on $(date -u +%F); machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores."
echo "Demo catalogue, loadgen's mix (60% personalised, 20% free-text, 10% similar, 10% popular, plus"
echo "5% events), load generator on the same cores, $duration s per phase; learned sources off ="
echo "\`learning.enabled = false\` (the engine before them), same binary, same run, each on a fresh"
echo "copy of the data directory."
echo
echo "| learned sources | mode | target req/s | connections | req/s | p50 ms | p95 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
  read -r on mode target conns rps p50 p95 p99 errors <<<"$r"
  printf '| %s | %s | %s | %s | %s | %.2f | %.2f | %.2f | %s |\n' \
    "$([[ $on == true ]] && echo on || echo off)" "$mode" "$target" "$conns" "$rps" "$p50" "$p95" "$p99" "$errors"
done
