#!/usr/bin/env bash
# Router overhead and throughput with 1, 2 and 4 shard nodes on loopback, beside a single
# node on the same catalogue in the same run -> benches/RESULTS-cluster.md.
#   benches/cluster.sh [seconds per load phase, default 10]
# Every process shares this machine's cores with the load generator: more shard nodes add
# processes, not hardware, so this measures the cluster's overhead, not its scale-out.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
bash scripts/fetch-model.sh
cargo build --release -p core-api --bin core-api -p reco-benches --bin loadgen
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
group=""
cleanup() { [[ -n $group ]] && kill -- -"$group" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# Ready, and the background graph fill done (it searches the whole catalogue once).
wait_ready() { # url pid log
  until curl -fsS "$1" 2>/dev/null | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin).get("graph_filled") else 1)' 2>/dev/null; do
    kill -0 "$2" 2>/dev/null || { tail -30 "$3" >&2; exit 1; }
    sleep 1
  done
}
partial_count() {
  curl -fsS "http://$1/metrics" | awk '$1 == "reco_partial_responses_total" {print $2; found=1} END {if (!found) print 0}'
}
# "sum count" of the vector-search stage so far, from the Prometheus text.
search_totals() {
  curl -fsS "http://$1/metrics" | awk -F'[ ]' '
    $1 == "reco_stage_duration_seconds_sum{stage=\"vector_search\"}" {s = $2}
    $1 == "reco_stage_duration_seconds_count{stage=\"vector_search\"}" {c = $2}
    END {print (s ? s : 0), (c ? c : 0)}'
}
# Mean seconds per search between two "sum count" readings.
search_mean() { python3 -c 'import sys; s0, c0, s1, c1 = map(float, sys.argv[1:]); print((s1 - s0) / (c1 - c0) if c1 > c0 else 0)' $1 $2; }
measure() { # name addr
  local addr=$2
  "$bin/loadgen" --addr "$addr" --rate 0 --connections 8 --duration 3 --json >/dev/null
  local closed open p0 p1 p2 t0 t1 t2
  p0=$(partial_count "$addr"); t0=$(search_totals "$addr")
  closed=$("$bin/loadgen" --addr "$addr" --rate 0 --connections 16 --duration "$duration" --json)
  p1=$(partial_count "$addr"); t1=$(search_totals "$addr")
  open=$("$bin/loadgen" --addr "$addr" --rate 200 --connections 32 --duration "$duration" --json)
  p2=$(partial_count "$addr"); t2=$(search_totals "$addr")
  echo "{\"name\": \"$1\", \"closed\": $closed, \"open\": $open, \"partial\": {\"closed\": $((p1 - p0)), \"open\": $((p2 - p1))}, \"search_mean_s\": {\"closed\": $(search_mean "$t0" "$t1"), \"open\": $(search_mean "$t1" "$t2")}}" >>"$work/results.jsonl"
}

# The single node on the demo catalogue (embedded into var/data on first use).
port=18180
RECO__SERVER__BIND=127.0.0.1:$port RECO__INDEX__SHARDS=4 RUST_LOG=warn setsid "$bin/core-api" >"$work/single.log" 2>&1 &
group=$!
echo "single node: waiting (the first run embeds the catalogue)..." >&2
wait_ready "http://127.0.0.1:$port/readyz" $group "$work/single.log"
measure "single node, 4 local shards" 127.0.0.1:$port
kill -- -"$group"; wait "$group" 2>/dev/null || true; group=""

for nodes in 1 2 4; do
  data=$work/cluster-$nodes
  mkdir -p "$data/router"
  cp var/data/reco.redb "$data/router/reco.redb"   # the router seeds the empty cluster from it
  port=$((18200 + nodes * 10))
  RUST_LOG=warn setsid bash scripts/cluster.sh --nodes $nodes --shards 4 --replication 1 \
    --port $port --data "$data" --no-build >"$work/cluster-$nodes.log" 2>&1 &
  group=$!
  echo "router + $nodes shard node(s): waiting..." >&2
  wait_ready "http://127.0.0.1:$port/readyz" $group "$data/router.log"
  measure "router + $nodes shard node(s)" 127.0.0.1:$port
  kill -- -"$group"; wait "$group" 2>/dev/null || true; group=""
done

python3 - "$work/results.jsonl" "$duration" <<'PY'
import datetime, json, platform, subprocess, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
duration = sys.argv[2]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
single = runs[0]
def row(r, mode):
    m = r[mode]
    ratio = m["throughput_rps"] / single[mode]["throughput_rps"]
    return (f"| {r['name']} | {m['throughput_rps']:.0f} | {ratio:.2f}x | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | "
            f"{m['errors']} | {r['partial'][mode]} | {r['search_mean_s'][mode] * 1000:.2f} |")
closed = "\n".join(row(r, "closed") for r in runs)
open_ = "\n".join(row(r, "open") for r in runs)
overhead = (runs[1]["search_mean_s"]["open"] - single["search_mean_s"]["open"]) * 1000
p50_extra = runs[1]["open"]["p50_ms"] - single["open"]["p50_ms"]
text = f"""# Core cluster on loopback

Written by `benches/cluster.sh` on {datetime.date.today().isoformat()}; machine: {cpu}, {cores} cores.
The demo catalogue (4 shards in all) served by one node, then by a router with 1, 2 and 4 shard
nodes (replication 1), every process and the load generator on this machine over loopback, in
the same run. Request mix as in RESULTS.md (personalised, free-text, similar items, anonymous,
5% events); {duration} s per phase after a 3 s warm-up. "vector search ms" is the mean of the
`vector_search` stage in that phase (the scatter-gather on a router, the local search on the
single node); ratios are against the single node in the same run. Measuring starts once the
background graph fill (one search per catalogue item) has finished. "partial answers" counts
answers that missed a shard's deadline (`reco_partial_responses_total`; default 80 ms): they are
fast but incomplete, so a setup with many of them is not faster, it is overloaded.

## Closed loop, 16 connections

| setup | requests/s | vs single | p50 ms | p99 ms | errors | partial answers | vector search ms |
|---|---|---|---|---|---|---|---|
{closed}

## Open loop, 200 requests/s, 32 connections

| setup | requests/s | vs single | p50 ms | p99 ms | errors | partial answers | vector search ms |
|---|---|---|---|---|---|---|---|
{open_}

Router overhead at 200 requests/s (router + 1 shard node minus the single node): vector-search
stage {overhead:+.2f} ms (mean), whole request {p50_extra:+.2f} ms (p50). With 2 cores shared by
every process, more shard nodes cannot add throughput here; on separate machines each node brings
its own cores and memory.
"""
open("benches/RESULTS-cluster.md", "w").write(text)
print(text)
PY
