#!/usr/bin/env bash
# Smoke run of the benchmark suite, part of the test command: every benchmark program runs once
# on a tiny input (dev profile) and must produce well-formed output. No figure is checked or
# kept; this only stops the suite from rotting. The real runs are benches/run.sh,
# benches/ann/run.sh and benches/cluster.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p reco-benches --bins -p core-api --bin core-api
cargo build -q -p vector-index --example ann_bench
bin=${CARGO_TARGET_DIR:-target}/debug
work=$(mktemp -d)
core=""
cleanup() { [[ -n $core ]] && kill "$core" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
# Reads one JSON document (or JSON lines) on stdin; fails unless each has the given keys.
expect_keys() {
  python3 -c '
import json, sys
text = sys.stdin.read().strip()
docs = [json.loads(l) for l in text.splitlines() if l.startswith("{")] or [json.loads(text)]
for d in docs:
    missing = [k for k in sys.argv[1:] if k not in d]
    assert not missing, f"missing {missing} in {d}"
print(f"  ok: {len(docs)} result(s) with {sys.argv[1:]}")' "$@"
}

echo "index_memory (3,000 vectors, 2 shards)"
"$bin/index_memory" --vectors 3000 --shards 2 --queries 50 |
  expect_keys recall_at_10 index_heap_mib_per_100k build_seconds single_thread_qps_all_shards

echo "index_mapped + scaling_report.py (3,000 vectors, 2 shards, each storage)"
"$bin/index_mapped" build --vectors 3000 --shards 2 --queries 20 --dir "$work/mapped" >"$work/mapped.jsonl"
expect_keys build_seconds shard_build_peak_over_index fp16_files_gib int8_files_gib <"$work/mapped.jsonl"
for storage in fp16 int8 int8-rerank; do
  "$bin/index_mapped" search --dir "$work/mapped" --storage "$storage" --ef 40 | tee -a "$work/mapped.jsonl" |
    expect_keys recall_at_10 load_seconds single_thread_qps_all_shards anon_after_search_gib
done
python3 benches/scaling_report.py --rows-dir "$work" --mapped "$work/mapped.jsonl" >/dev/null

echo "embed_score (16 texts, 2,000 candidates)"
"$bin/embed_score" --texts 16 --candidates 2000 --queries 16 | expect_keys backend embedding scoring

echo "ann_bench + report.py (2,000 random 32-d vectors, exact ground truth)"
python3 - "$work/ann" <<'PY'
import json, os, random, struct, sys
out = sys.argv[1]; os.makedirs(out)
rng = random.Random(5); dim = 32
def unit():
    v = [rng.gauss(0, 1) for _ in range(dim)]; n = sum(x * x for x in v) ** 0.5
    return [x / n for x in v]
base = [unit() for _ in range(2000)]; queries = [unit() for _ in range(40)]
def write(name, rows): open(os.path.join(out, name), "wb").write(b"".join(struct.pack(f"<{dim}f", *r) for r in rows))
write("base.f32", base); write("queries.f32", queries)
gt = b""
for q in queries:
    best = sorted(range(len(base)), key=lambda i: -sum(a * b for a, b in zip(q, base[i])))[:10]
    gt += struct.pack("<10i", *best)
open(os.path.join(out, "gt.i32"), "wb").write(gt)
json.dump({"dim": dim, "name": "smoke"}, open(os.path.join(out, "meta.json"), "w"))
PY
for pass in build load; do  # the second pass loads the graphs the first one saved
  "$bin/examples/ann_bench" "$work/ann" --efs 10,40 --rounds 1 --precisions fp32,fp16,int8,int8-rerank --threads 1,2 --shards 2 \
    --build-threads 1,2 --index-dir "$work/ann-indexes" | tee -a "$work/ann.jsonl" > "$work/ann-pass.jsonl"
  grep '"ef"' "$work/ann-pass.jsonl" | expect_keys library ef recall_at_10 qps
done
grep '"build_threads"' "$work/ann.jsonl" | expect_keys library build_threads build_seconds vectors
if python3 -c 'import numpy' 2>/dev/null; then
  echo "filtered search (filters passing 50% and 1%)"
  python3 benches/ann/filter_gt.py "$work/ann" 0.5,0.01
  "$bin/examples/ann_bench" "$work/ann" --rounds 1 --precisions fp16 --skip-hnsw-rs --index-dir "$work/ann-indexes" \
    --filters 0.5,0.01 --filter-efs 40 | tee -a "$work/ann.jsonl" | expect_keys library filter_share admitted recall_at_10 qps
fi
if python3 -c 'import matplotlib' 2>/dev/null; then
  python3 benches/ann/report.py "$work/ann.jsonl" "$work/ann.md" "$work/ann.png" >/dev/null
  grep -q "recall@10" "$work/ann.md" && echo "  ok: report written"
else
  echo "  report.py skipped (matplotlib is installed by benches/ann/run.sh)"
fi

echo "loadgen against a core on 300 demo films (2 s closed loop, 2 s open loop)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RECO__SERVER__BIND=127.0.0.1:$port RECO__STORAGE__DATA_DIR=$work/data RECO__DEMO__MAX_ITEMS=300 \
  RUST_LOG=warn "$bin/core-api" >"$work/core.log" 2>&1 &
core=$!
until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
  kill -0 $core 2>/dev/null || { cat "$work/core.log" >&2; exit 1; }
  sleep 1
done
for rate in 0 50; do
  "$bin/loadgen" --addr 127.0.0.1:$port --rate $rate --connections 4 --duration 2 --json |
    expect_keys throughput_rps p50_ms p99_ms errors
done
kill $core; wait $core 2>/dev/null || true; core=""

echo "criterion micro-benchmarks, each once (test mode)"
cargo test -q -p reco-benches --benches 2>&1 | tail -3
echo "benchmark smoke run passed"
