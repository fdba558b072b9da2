#!/usr/bin/env bash
# Service latency with the learned sources on and off, in one run, on the demo catalogue
# (var/data; embedded on first use): closed loop (16 connections) and open loop at 500 and
# 1,000 requests/s, the request mix of `loadgen` (60% personalised). Prints a Markdown section.
#   benches/service_latency.sh [seconds per phase, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/semrec-target}"
bash scripts/fetch-model.sh
cargo build --release -q -p core-api -p reco-benches
bin=$CARGO_TARGET_DIR/release
port=18090
rows=()
for learning in true false; do
  log=$(mktemp)
  RECO__SERVER__BIND=127.0.0.1:$port RECO__LEARNING__ENABLED=$learning RUST_LOG=warn \
    "$bin/core-api" >"$log" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  ready() {
    curl -fsS "http://127.0.0.1:$port/readyz" 2>/dev/null |
      python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin).get("graph_filled") else 1)' 2>/dev/null
  }
  until ready; do
    kill -0 $server 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 1
  done
  if [[ $learning == true ]]; then
    # Wait for the first trained model (the start-up training, or a saved one).
    until curl -fsS "http://127.0.0.1:$port/admin/model" |
      python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["version"] > 0 else 1)'; do
      kill -0 $server 2>/dev/null || { cat "$log" >&2; exit 1; }
      sleep 1
    done
  fi
  load() { "$bin/loadgen" --addr 127.0.0.1:$port --duration "$duration" --json "$@"; }
  load --rate 0 --connections 8 --duration 3 >/dev/null
  for mode in "0 16" "500 32" "1000 64"; do
    set -- $mode
    rows+=("$learning $(load --rate "$1" --connections "$2" | python3 -c '
import json,sys; r=json.load(sys.stdin)
print(r["mode"], r["target_rate"], r["connections"], round(r["throughput_rps"]), r["p50_ms"], r["p95_ms"], r["p99_ms"], r["errors"])')")
  done
  kill $server; wait $server 2>/dev/null || true
  rm -f "$log"
done
echo "### Service latency with and without the learned sources"
echo
echo "Written by \`benches/service_latency.sh $duration\` on $(date -u +%F); machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores."
echo "Demo catalogue, loadgen's mix (60% personalised, 20% free-text, 10% similar, 10% popular, plus"
echo "5% events), load generator on the same cores, $duration s per phase; learned sources off ="
echo "\`learning.enabled = false\` (the engine before them), same binary, same run."
echo
echo "| learned sources | mode | target req/s | connections | req/s | p50 ms | p95 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
  set -- $r
  printf '| %s | %s | %s | %s | %s | %.2f | %.2f | %.2f | %s |\n' "$([[ $1 == true ]] && echo on || echo off)" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9"
done
