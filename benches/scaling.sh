#!/usr/bin/env bash
# How the index's cost grows with catalogue size and shard count on one node:
# build time, memory, recall@10 and single-thread search speed for every combination of
#   sizes  (default 10000,100000; add 1000000 for the full curve: about 30 min per row here)
#   shards (default 1,4,20)
# over clustered 384-d vectors, written to benches/RESULTS-scaling.md. Every measured row is
# kept in benches/scaling-rows.jsonl with its date; a run replaces the rows it measures, so the
# long rows can be run on their own (e.g. --sizes 1000000 --shards 20).
#   benches/scaling.sh [--sizes 10000,100000,1000000] [--shards 1,4,20] [--ef 100]
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=10000,100000 shard_counts=1,4,20 ef=100
while (( $# )); do
  case $1 in
    --sizes) sizes=$2; shift 2 ;;
    --shards) shard_counts=$2; shift 2 ;;
    --ef) ef=$2; shift 2 ;;
    *) echo "unknown argument '$1'" >&2; exit 2 ;;
  esac
done
cargo build -q --release -p reco-benches --bin index_memory
bin=${CARGO_TARGET_DIR:-target}/release
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for n in ${sizes//,/ }; do
  for s in ${shard_counts//,/ }; do
    echo "index_memory: $n vectors, $s shards..." >&2
    "$bin/index_memory" --vectors "$n" --shards "$s" --ef "$ef" --queries 500 >>"$out"
  done
done
python3 - "$out" benches/scaling-rows.jsonl <<'PY'
import datetime, json, os, platform, subprocess, sys
today = datetime.date.today().isoformat()
new = [dict(json.loads(l), date=today) for l in open(sys.argv[1]) if l.startswith("{")]
kept = [json.loads(l) for l in open(sys.argv[2])] if os.path.exists(sys.argv[2]) else []
fresh = {(r["vectors"], r["shards"]) for r in new}
rows = sorted([r for r in kept if (r["vectors"], r["shards"]) not in fresh] + new,
              key=lambda r: (r["vectors"], r["shards"]))
open(sys.argv[2], "w").write("".join(json.dumps(r) + "\n" for r in rows))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
table = "\n".join(
    f"| {r['vectors']:,} | {r['shards']} | {r['build_seconds']:.1f} | {r['index_heap_mib_per_100k'] * r['vectors'] / 1e5:.1f} | "
    f"{r['index_heap_mib_per_100k']:.1f} | {r['rss_growth_mib_per_100k']:.0f} | {r['recall_at_10']:.3f} | "
    f"{r['single_thread_qps_all_shards']:.0f} | {1000 / r['single_thread_qps_all_shards']:.2f} | {r['date']} |"
    for r in rows)
by = {(r["vectors"], r["shards"]): r for r in rows}
sizes = sorted({r["vectors"] for r in rows}); shards = sorted({r["shards"] for r in rows})
growth = []
for a, b in zip(sizes, sizes[1:]):
    for s in shards:
        if (a, s) in by and (b, s) in by:
            ra, rb = by[(a, s)], by[(b, s)]
            growth.append(
                f"- {s} shard(s), {a:,} -> {b:,} vectors ({b / a:.0f}x): build {rb['build_seconds'] / ra['build_seconds']:.1f}x, "
                f"search time per query {ra['single_thread_qps_all_shards'] / rb['single_thread_qps_all_shards']:.2f}x, "
                f"recall {ra['recall_at_10']:.3f} -> {rb['recall_at_10']:.3f}")
for n in sizes:
    if (n, shards[0]) in by:
        base = by[(n, shards[0])]
        for s in shards[1:]:
            if (n, s) in by:
                r = by[(n, s)]
                growth.append(
                    f"- {n:,} vectors, {shards[0]} -> {s} shards: search time per query "
                    f"{base['single_thread_qps_all_shards'] / r['single_thread_qps_all_shards']:.2f}x on one thread "
                    f"(every shard is searched; in parallel they share the cores), recall {base['recall_at_10']:.3f} -> {r['recall_at_10']:.3f}")
text = f"""# Index scaling on one node

Written by `benches/scaling.sh` on {today}; machine: {cpu}, {cores} cores. Each row carries the
date it was measured on (rows are kept from earlier runs until remeasured).
Clustered 384-d unit vectors (1,000 clusters, seeded), M=16, ef_construction=200, ef_search={rows[0]['ef_search']};
shards built in parallel on all cores; 500 queries searched on one thread, every shard in turn,
top-10 merged and compared with exact search. Memory is the index heap (FP16 vectors + links).

| vectors | shards | build s | index MiB | MiB per 100K | RSS growth MiB per 100K | recall@10 | queries/s (1 thread) | ms per query | measured |
|---|---|---|---|---|---|---|---|---|---|
{table}

How it grows:
{chr(10).join(growth)}
"""
open("benches/RESULTS-scaling.md", "w").write(text)
print(text)
PY
