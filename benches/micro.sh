#!/usr/bin/env bash
# Criterion micro-benchmarks (benches/benches/micro.rs) -> benches/RESULTS-micro.md (medians).
# Called by benches/run.sh; runs alone too. Short warm-up/measurement keeps it to a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
rm -rf "$target/criterion"
cargo bench -p reco-benches --bench micro -- --warm-up-time 1 --measurement-time 3 >&2
python3 - "$target/criterion" <<'PY'
import datetime, json, pathlib, platform, subprocess, sys
root = pathlib.Path(sys.argv[1])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
def fmt(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"
rows = []
for est in sorted(root.glob("**/new/estimates.json")):
    bench = json.loads((est.parent / "benchmark.json").read_text())
    median = json.loads(est.read_text())["median"]
    rows.append(f"| {bench['full_id']} | {fmt(median['point_estimate'])} | {fmt(median['confidence_interval']['lower_bound'])} - {fmt(median['confidence_interval']['upper_bound'])} |")
out = f"""# Micro-benchmarks

Written by `benches/micro.sh` (criterion, seeded data) on {datetime.date.today().isoformat()}; machine: {cpu}, {cores} cores.
Medians per iteration with criterion's 95% confidence interval. Kernels and conversions are per
384-d vector; batched scoring is 16 queries x 10,000 candidates (top-10 each); HNSW is 20,000
clustered 384-d vectors (M=16, ef_construction=200), ef_search=100, top-10, one query per
iteration; the sharded case searches 4 shards in parallel on rayon and merges. The cache key
case parses a realistic query string, validates and normalises it, hashes the context and
builds the key. The personalisation rows are the stages the design budgets 8 ms each for:
the bandit's lead decision over 5 candidates and one update, the ontology's family-friendly
check of one item (a request checks each candidate: x200-1,000), and rule-based intent
inference of one query (the prototype match reuses the query embedding: 8 dot products).
No peer runs in this suite: the side-by-side ANN comparison is in
`RESULTS-ann.md`.

| benchmark | median | 95% CI of the median |
|---|---|---|
""" + "\n".join(rows) + "\n"
open("benches/RESULTS-micro.md", "w").write(out)
print(out)
PY
