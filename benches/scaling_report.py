#!/usr/bin/env python3
"""Merges newly measured index rows into the kept ones and writes benches/RESULTS-scaling.md.

    scaling_report.py [--heap NEW.jsonl] [--mapped NEW.jsonl] [--rows-dir DIR]

Heap rows (index_memory: in-process shards) are kept in benches/scaling-rows.jsonl keyed by
(vectors, shards); mapped rows (index_mapped: build, then one search run per storage, each a
fresh process mapping the written graphs) in benches/mapped-rows.jsonl keyed by
(phase, vectors, shards, storage). A new row replaces the kept row with its key. --rows-dir
keeps the rows and writes the report in another directory (the smoke test's).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
TODAY = datetime.date.today().isoformat()


def merge(kept_path: Path, new_path: Path | None, key) -> list[dict]:
    kept = [json.loads(l) for l in kept_path.read_text().splitlines() if l.strip()] if kept_path.exists() else []
    if new_path is None:
        return kept
    new = [dict(json.loads(l), date=TODAY) for l in new_path.read_text().splitlines() if l.startswith("{")]
    fresh = {key(r) for r in new}
    rows = [r for r in kept if key(r) not in fresh] + new
    kept_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def heap_section(rows: list[dict]) -> str:
    rows = sorted(rows, key=lambda r: (r["vectors"], r["shards"]))
    table = "\n".join(
        f"| {r['vectors']:,} | {r['shards']} | {r['build_seconds']:.1f} | {r['index_heap_mib_per_100k'] * r['vectors'] / 1e5:.1f} | "
        f"{r['index_heap_mib_per_100k']:.1f} | {r['rss_growth_mib_per_100k']:.0f} | {r['recall_at_10']:.3f} | "
        f"{r['single_thread_qps_all_shards']:.0f} | {1000 / r['single_thread_qps_all_shards']:.2f} | {r['date']} |"
        for r in rows)
    by = {(r["vectors"], r["shards"]): r for r in rows}
    sizes = sorted({r["vectors"] for r in rows})
    shards = sorted({r["shards"] for r in rows})
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
    return f"""## Shards in memory (`benches/scaling.sh`)

Clustered 384-d unit vectors (1,000 clusters, seeded), M=16, ef_construction=200, ef_search={rows[0]['ef_search']};
shards opened in parallel on all cores from FP32 inputs (as the service opens them); 500 queries
searched on one thread, every shard in turn, top-10 merged and compared with exact search. Memory
is the index heap (FP16 vectors + links); RSS growth includes the FP32 inputs.

| vectors | shards | build s | index MiB | MiB per 100K | RSS growth MiB per 100K | recall@10 | queries/s (1 thread) | ms per query | measured |
|---|---|---|---|---|---|---|---|---|---|
{table}

How it grows:
{chr(10).join(growth)}
"""


def mapped_section(rows: list[dict]) -> str:
    builds = sorted((r for r in rows if r["phase"] == "build"), key=lambda r: (r["vectors"], r["shards"]))
    searches = sorted((r for r in rows if r["phase"] == "search"),
                      key=lambda r: (r["vectors"], r["shards"], ["fp16", "int8", "int8-rerank"].index(r["storage"])))
    if not builds:
        return ""
    build_table = "\n".join(
        f"| {r['vectors']:,} | {r['shards']} | {r['build_seconds']:.0f} | {r['vectors'] / r['build_seconds']:,.0f} | "
        f"{r['index_gib']:.2f} | {r['shard_build_peak_over_index']:.2f}x | {r['fp16_files_gib']:.2f} | {r['int8_files_gib']:.2f} | "
        f"{r['generate_seconds']:.0f} | {r['date']} |"
        for r in builds)
    names = {"fp16": "FP16", "int8": "INT8", "int8-rerank": "INT8 + FP16 re-rank of {rerank}"}
    search_table = "\n".join(
        f"| {r['vectors']:,} | {r['shards']} | {names[r['storage']].format(rerank=r.get('rerank'))} | {r['load_seconds']:.2f} | "
        f"{r['anon_after_search_gib']:.2f} | {r['rss_after_search_gib'] - r['anon_after_search_gib']:.2f} | {r['mapped_gib']:.2f} | "
        f"{r['recall_at_10']:.3f} | {r['single_thread_qps_all_shards']:.0f} | {1000 / r['single_thread_qps_all_shards']:.2f} | "
        f"{r['first_pass_qps']:.0f} | {r['date']} |"
        for r in searches)
    return f"""## Mapped storage, up to 10M vectors (`benches/scaling.sh --mapped`)

`index_mapped` generates clustered 384-d unit vectors in chunks of 100,000 (the same generator
and 1,000 topic centres as above, each chunk its own seed: synthetic, not derived from real
embeddings), so at most one chunk exists as FP32; each vector is stored as FP16 in its shard
(CRC-32 of `v<number>`) and the exact top 10 of 200 seeded queries is kept from the
FP32 values as they pass. Shards are built one after another, each on all cores, straight from
their FP16 rows (`FrozenGraph::build_encoded`), M=16, ef_construction=200, and written as
mappable files: FP16, and INT8 with the same links. "Build peak" is the worst shard's peak
memory while building (its rows plus everything the build allocated, VmHWM reset per shard)
over the index it keeps.

| vectors | shards | build s | vectors/s | index GiB | build peak / index | FP16 files GiB | INT8 files GiB | generate s | measured |
|---|---|---|---|---|---|---|---|---|---|
{build_table}

Each storage is then searched in a fresh process that maps the files (`FrozenGraph::map`: the
vectors and level-0 links stay in the file, every link is validated): load time is the mapping
and validation, heap is the process's anonymous memory growth (ids and query tables included),
mapped in RSS is the file pages mapped into the process after the searches: the link validation
reads every level-0 list, and the kernel maps the already-cached neighbours of every page a
search touches (the files were just written, so all of them are cached), so it is an upper bound
on what the searches needed. These pages belong to the page cache: the kernel drops cold ones
under memory pressure and reads them again when touched. The queries run twice on one thread, every shard in
turn at ef_search 100; the second pass is timed (the first, which pages in, is shown too).

| vectors | shards | storage | load s | heap GiB | mapped in RSS GiB | mapped GiB | recall@10 | queries/s (1 thread) | ms per query | first pass q/s | measured |
|---|---|---|---|---|---|---|---|---|---|---|---|
{search_table}
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--heap", type=Path, help="new index_memory rows")
    p.add_argument("--mapped", type=Path, help="new index_mapped rows")
    p.add_argument("--rows-dir", type=Path, default=BENCHES, help="where rows are kept and the report written")
    a = p.parse_args()
    heap = merge(a.rows_dir / "scaling-rows.jsonl", a.heap, lambda r: (r["vectors"], r["shards"]))
    mapped = merge(a.rows_dir / "mapped-rows.jsonl", a.mapped, lambda r: (r["phase"], r["vectors"], r["shards"], r.get("storage")))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    text = f"""# Index scaling on one node

Written by `benches/scaling.sh` on {TODAY}; machine: {cpu}, {cores} cores. Each row carries the
date it was measured on (rows are kept from earlier runs until remeasured).

{heap_section(heap) if heap else ""}
{mapped_section(mapped)}"""
    (a.rows_dir / "RESULTS-scaling.md").write_text(text.rstrip() + "\n")
    print(text)


if __name__ == "__main__":
    main()
