#!/usr/bin/env bash
# Service latency of two builds of core-api side by side, for a refactor that must not change
# performance: each round runs the same phases (closed loop, open loop at 500 and 1,000 req/s,
# loadgen's mix, learned sources on) on build A, then on build B, each on a fresh copy of
# var/data, alternating so drift in the machine's speed hits both. Prints a Markdown table
# with the median over the rounds of each figure.
#   benches/compare_builds.sh BINARY_A BINARY_B [rounds, default 2] [seconds per phase, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 2 ]] || { sed -n '2,7p' "$0" >&2; exit 2; }
a=$(realpath "$1") b=$(realpath "$2") rounds=${3:-2} duration=${4:-20}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/semrec-target}"
cargo build --release -q -p reco-benches --bin loadgen
loadgen=$CARGO_TARGET_DIR/release/loadgen
[[ -f var/data/reco.redb ]] || { echo "run benches/service_latency.sh once first (it fills var/data)" >&2; exit 1; }
port=18091
work=$(mktemp -d)
server=""
cleanup() { [[ -n $server ]] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
ready() {
  curl -fsS "http://127.0.0.1:$port/readyz" 2>/dev/null |
    python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin).get("graph_filled") else 1)' 2>/dev/null &&
    curl -fsS "http://127.0.0.1:$port/admin/model" 2>/dev/null |
    python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["version"] > 0 else 1)' 2>/dev/null
}
results=$work/results
for round in $(seq "$rounds"); do
  for label in A B; do
    binary=$a; [[ $label == B ]] && binary=$b
    rm -rf "$work/data"; cp -r var/data "$work/data"; rm -rf "$work/data/models"
    RECO__STORAGE__DATA_DIR=$work/data RECO__SERVER__BIND=127.0.0.1:$port RUST_LOG=warn \
      "$binary" >"$work/log" 2>&1 &
    server=$!
    deadline=$((SECONDS + 900))
    until ready; do
      kill -0 "$server" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
      (( SECONDS < deadline )) || { echo "build $label never became ready" >&2; exit 1; }
      sleep 1
    done
    "$loadgen" --addr 127.0.0.1:$port --rate 0 --connections 8 --duration 3 --json >/dev/null
    for mode in "0 16" "500 32" "1000 64"; do
      read -r rate connections <<<"$mode"
      "$loadgen" --addr 127.0.0.1:$port --rate "$rate" --connections "$connections" \
        --duration "$duration" --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(sys.argv[1], r["mode"], r["target_rate"], round(r["throughput_rps"]), r["p50_ms"], r["p99_ms"], r["errors"])' "$label" >>"$results"
    done
    kill "$server"; wait "$server" 2>/dev/null || true; server=""
  done
done
echo "Written by \`benches/compare_builds.sh\` on $(date -u +%F); machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores;"
echo "$rounds interleaved rounds of $duration s per phase, medians; A = \`$1\`, B = \`$2\`."
echo
python3 - "$results" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    label, mode, target, rps, p50, p99, errors = line.split()
    rows[(mode, target)].append((label, float(rps), float(p50), float(p99), int(errors)))
print("| mode | target req/s | A req/s | B req/s | A p50 ms | B p50 ms | A p99 ms | B p99 ms | errors A/B |")
print("|---|---|---|---|---|---|---|---|---|")
for (mode, target), runs in rows.items():
    def med(label, i):
        return statistics.median(r[i] for r in runs if r[0] == label)
    errors = "/".join(str(sum(r[4] for r in runs if r[0] == l)) for l in "AB")
    print(f"| {mode} | {target} | {med('A', 1):.0f} | {med('B', 1):.0f} | {med('A', 2):.2f} | "
          f"{med('B', 2):.2f} | {med('A', 3):.2f} | {med('B', 3):.2f} | {errors} |")
PY
