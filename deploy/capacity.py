#!/usr/bin/env python3
"""Capacity sheet for a core-api cluster, computed from the index measured at scale in
benches/mapped-rows.jsonl (Python 3.11, standard library only).

    python3 deploy/capacity.py                 # print the sheet (Markdown)
    python3 deploy/capacity.py --items 1e9     # other parameters, see --help
    python3 deploy/capacity.py --write         # rewrite deploy/CAPACITY.md (default parameters)
    python3 deploy/capacity.py --check         # self-test, and CAPACITY.md and the shard
                                               # StatefulSet's memory request are up to date

Measured inputs (`benches/scaling.sh --mapped`, the largest build measured): the bytes per
vector of the written index files (FP16 vectors + HNSW links; INT8 vectors + the same links),
which is what a shard maps and wants resident, and the worst shard's peak memory while building
over the index it keeps (what a rebuild needs beside the served index). Everything else (router
catalogue entry, process baseline) is an estimate and is labelled as one.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benches" / "mapped-rows.jsonl"
CAPACITY_MD = ROOT / "deploy" / "CAPACITY.md"
SHARD_MANIFEST = ROOT / "deploy" / "k8s" / "shard.yaml"
GIB = 1 << 30


class InputError(Exception):
    pass


@dataclass(frozen=True)
class Measured:
    source: str
    date: str
    vectors: int
    shards: int
    dim: int
    fp16_file_bytes: float
    int8_file_bytes: float
    build_peak: float
    searches: tuple[dict, ...] = ()

    def bytes_per_vector(self, fmt: str) -> float:
        """Resident bytes per vector: the mapped file's share, or FP32 for comparison."""
        return {
            "FP32": self.fp16_file_bytes + 2 * self.dim,
            "FP16": self.fp16_file_bytes,
            "INT8": self.int8_file_bytes,
        }[fmt]


def read_measured(path: Path) -> Measured:
    """The largest measured build in `path` and its search rows; raises InputError when absent."""
    try:
        rows = [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}") from e
    builds = [r for r in rows if r.get("phase") == "build"]
    if not builds:
        raise InputError(f"{path}: no build row; run benches/scaling.sh --mapped to measure the index")
    b = max(builds, key=lambda r: r["vectors"])
    try:
        fp16 = b["fp16_files_gib"] * GIB / b["vectors"]
        int8 = b["int8_files_gib"] * GIB / b["vectors"]
        peak = float(b["shard_build_peak_over_index"])
        dim = int(b["dim"])
    except (KeyError, TypeError, ZeroDivisionError) as e:
        raise InputError(f"{path}: build row for {b.get('vectors')} vectors lacks a field: {e}") from e
    if not (2 * dim < fp16 < 8 * dim and dim < int8 < fp16 and peak >= 1):
        raise InputError(f"{path}: implausible sizes ({fp16:.1f} B FP16, {int8:.1f} B INT8 per vector, peak {peak})")
    searches = tuple(r for r in rows if r.get("phase") == "search" and r["vectors"] == b["vectors"]
                     and r["shards"] == b["shards"])
    return Measured(
        source=str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
        date=b.get("date", "unknown date"),
        vectors=int(b["vectors"]),
        shards=int(b["shards"]),
        dim=dim,
        fp16_file_bytes=fp16,
        int8_file_bytes=int8,
        build_peak=peak,
        searches=searches,
    )


def hosted(ordinal: int, shards: int, nodes: int, replication: int) -> list[int]:
    """Shards on node `ordinal`: s such that ordinal == (s + j) % nodes for some j < replication
    (the cluster.shard_nodes placement of core-api)."""
    return [s for s in range(shards) if any(ordinal == (s + j) % nodes for j in range(replication))]


def max_load(shards: int, nodes: int, replication: int) -> int:
    return max(len(hosted(i, shards, nodes, replication)) for i in range(nodes))


def nodes_needed(shards: int, replication: int, fit: int) -> int | None:
    """Fewest shard nodes whose busiest node holds at most `fit` shard replicas (None: none)."""
    if fit < 1:
        return None
    for n in range(replication, shards * replication + 1):
        if max_load(shards, n, replication) <= fit:
            return n
    return None


def fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def sheet(m: Measured, a: argparse.Namespace) -> str:
    items, shards, repl = int(a.items), a.shards, a.replication
    usable_gib = a.node_memory_gib * (1 - a.headroom)
    per_shard = math.ceil(items / shards)
    rebuild_gib = rebuild_reserve_gib(m, a)
    catalog_default = 2 * m.dim + 512
    catalog_bytes = a.catalog_bytes_per_item if a.catalog_bytes_per_item is not None else catalog_default
    origin = f"measured: {m.source} ({m.date}), {m.vectors:,} vectors in {m.shards} shards"
    out: list[str] = []
    w = out.append
    w("# Capacity sheet")
    w("")
    w("Generated by `python3 deploy/capacity.py --write`; edit the parameters there, not this file.")
    w("")
    w("## Inputs")
    w("")
    w("| input | value | origin |")
    w("|---|---|---|")
    w(f"| items | {fmt_int(items)} | parameter `--items` |")
    w(f"| shards (`index.shards`) | {shards} | parameter `--shards` |")
    w(f"| replicas per shard (`cluster.replication`) | {repl} | parameter `--replication` |")
    w(f"| memory per node | {a.node_memory_gib:g} GiB | parameter `--node-memory-gib` |")
    w(f"| headroom kept free (OS, growth) | {a.headroom:.0%} | parameter `--headroom` |")
    w(f"| vector dimension | {m.dim} | {origin} |")
    w(f"| FP16 index file (vectors + links) per vector | {m.fp16_file_bytes:.1f} B | {origin} |")
    w(f"| INT8 index file (vectors + scale + links) per vector | {m.int8_file_bytes:.1f} B | {origin} |")
    w(f"| peak memory while building a shard, over the index it keeps | {m.build_peak:.2f}x | {origin} (worst shard) |")
    est = "estimate: 2·dim FP16 vector + 512 B metadata, not measured" if a.catalog_bytes_per_item is None else "parameter `--catalog-bytes-per-item`"
    w(f"| router catalogue cache per item | {fmt_int(catalog_bytes)} B | {est} |")
    w(f"| shard process memory besides the index (runtime, buffers) | {a.process_base_gib:g} GiB | estimate (`--process-base-gib`); the demo server's whole RSS was 319 MiB |")
    w("")
    if m.searches:
        w(f"Search measured on the same index ({m.vectors:,} vectors, {m.shards} shards, one thread searching every shard in turn):")
        w("")
        w("| storage | recall@10 | queries/s | heap GiB |")
        w("|---|---|---|---|")
        for r in m.searches:
            w(f"| {r['storage']} | {r['recall_at_10']:.3f} | {r['single_thread_qps_all_shards']:.0f} | {r['anon_after_search_gib']:.2f} |")
        w("")
    w("A shard serves its graph mapped from its snapshot file; to answer from memory, the file must "
      "stay resident, so its size is what a shard replica needs. A rebuild builds one shard on the "
      f"heap beside the served index: {m.build_peak:.2f}x that shard's FP16 index, reserved once per "
      "node (shards rebuild one at a time at start-up; background rebuilds of two shards of one node "
      "at once would need the headroom). FP32 (the FP16 file + 2·dim B) is shown for comparison. "
      "INT8 + FP16 re-rank (`index.precision = \"int8-rerank\"`) keeps the INT8 graph resident "
      "and reads the FP16 rows of the few re-ranked candidates from disk; its snapshot holds both "
      "graphs. The sheet sizes FP16 (the default), which answers from memory alone.")
    w("")
    w("## Shard nodes")
    w("")
    w(f"{fmt_int(items)} items in {shards} shards = {fmt_int(per_shard)} vectors per shard; "
      f"usable memory per node = {a.node_memory_gib:g} GiB × (1 − {a.headroom:g}) − {a.process_base_gib:g} GiB "
      f"process − {rebuild_gib:.2f} GiB rebuild reserve = {usable_gib - a.process_base_gib - rebuild_gib:.1f} GiB. "
      "Nodes needed: the fewest shard nodes whose busiest node, under core-api's placement "
      "(node i hosts shard s iff i = (s + j) mod nodes, j < replication), holds no more shard "
      "replicas than fit.")
    w("")
    formats = ("FP32", "FP16", "INT8")
    w("| | FP32 | FP16 (default) | INT8 + FP16 re-rank |")
    w("|---|---|---|---|")
    rows: dict[str, list[str]] = {k: [] for k in (
        "resident bytes per vector", "disk bytes per vector", "GiB per shard replica",
        "shard replicas per node that fit", "shard nodes needed", "shard replicas on the busiest node",
        "index memory, all replicas", "node memory provisioned")}
    for fmt in formats:
        bpv = m.bytes_per_vector(fmt)
        disk = m.fp16_file_bytes + m.int8_file_bytes if fmt == "INT8" else bpv
        shard_gib = per_shard * bpv / GIB
        room = usable_gib - a.process_base_gib - rebuild_gib
        fit = math.floor(room / shard_gib) if shard_gib > 0 and room > 0 else 0
        n = nodes_needed(shards, repl, fit)
        rows["resident bytes per vector"].append(f"{bpv:.1f}")
        rows["disk bytes per vector"].append(f"{disk:.1f}")
        rows["GiB per shard replica"].append(f"{shard_gib:.2f}")
        rows["shard replicas per node that fit"].append(str(fit))
        rows["shard nodes needed"].append(str(n) if n else "does not fit")
        rows["shard replicas on the busiest node"].append(str(max_load(shards, n, repl)) if n else "—")
        rows["index memory, all replicas"].append(f"{shards * repl * shard_gib:.1f} GiB")
        rows["node memory provisioned"].append(f"{n * a.node_memory_gib:g} GiB" if n else "—")
    for label, cells in rows.items():
        w(f"| {label} | " + " | ".join(cells) + " |")
    w("")

    # The deploy/k8s layout: a fixed node count, FP16 (what the service stores).
    nodes = a.shard_nodes
    load = max_load(shards, nodes, repl)
    shard_gib16 = per_shard * m.bytes_per_vector("FP16") / GIB
    index_gib = load * shard_gib16
    request = request_gib(m, a)
    w(f"## Shard node request for the deploy/k8s layout ({nodes} shard nodes, FP16)")
    w("")
    w(f"Busiest node: {load} shard replicas × {shard_gib16:.2f} GiB = {index_gib:.2f} GiB of mapped index; "
      f"+ {rebuild_gib:.2f} GiB to rebuild one shard ({m.build_peak:.2f}x {shard_gib16:.2f} GiB) "
      f"+ {a.process_base_gib:g} GiB baseline = {index_gib + rebuild_gib + a.process_base_gib:.2f} GiB; "
      f"/ (1 − {a.headroom:g}) headroom = **{request} GiB memory request** per shard pod "
      "(`deploy/k8s/shard.yaml`). Mapped file pages are charged to the pod like its heap, and the "
      f"snapshots take {index_gib:.1f} GiB of its volume ({2 * index_gib:.1f} GiB while all are rewritten at once).")
    w("")
    w("## Router catalogue cache")
    w("")
    cache_gib = items * catalog_bytes / GIB
    need_gib = cache_gib / (1 - a.headroom)
    fits_items = usable_gib * GIB / catalog_bytes
    verdict = ("fits on one node" if need_gib <= a.node_memory_gib else
               f"**does not fit on a {a.node_memory_gib:g} GiB node**: a router of that size caches "
               f"at most {fits_items / 1e6:.1f}M items")
    w("| | value |")
    w("|---|---|")
    w(f"| bytes per item (estimate) | {fmt_int(catalog_bytes)} |")
    w(f"| catalogue cache per router | {cache_gib:.1f} GiB |")
    w(f"| router memory with {a.headroom:.0%} headroom | {need_gib:.1f} GiB |")
    w("")
    w(f"{fmt_int(items)} items × {fmt_int(catalog_bytes)} B: {verdict}.")
    return "\n".join(out) + "\n"


def rebuild_reserve_gib(m: Measured, a: argparse.Namespace) -> float:
    """Memory to rebuild one shard of FP16 beside the served index."""
    return m.build_peak * math.ceil(int(a.items) / a.shards) * m.bytes_per_vector("FP16") / GIB


def request_gib(m: Measured, a: argparse.Namespace) -> int:
    per_shard = math.ceil(int(a.items) / a.shards)
    load = max_load(a.shards, a.shard_nodes, a.replication)
    index_gib = load * per_shard * m.bytes_per_vector("FP16") / GIB
    return math.ceil((index_gib + rebuild_reserve_gib(m, a) + a.process_base_gib) / (1 - a.headroom))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=float, default=100e6, help="catalogue size (default 100e6)")
    p.add_argument("--shards", type=int, default=20, help="index.shards (default 20)")
    p.add_argument("--replication", type=int, default=2, help="cluster.replication (default 2)")
    p.add_argument("--node-memory-gib", type=float, default=64, help="memory per node (default 64)")
    p.add_argument("--headroom", type=float, default=0.2,
                   help="fraction of node memory kept free for the OS and growth (default 0.2); "
                        "the rebuild reserve is computed from the measured build peak")
    p.add_argument("--catalog-bytes-per-item", type=float, default=None,
                   help="router catalogue cache bytes per item (default: estimate 2*dim + 512)")
    p.add_argument("--shard-nodes", type=int, default=10,
                   help="shard nodes of the deploy/k8s layout, for its memory request (default 10)")
    p.add_argument("--process-base-gib", type=float, default=1.0,
                   help="shard process memory besides the index: runtime, buffers (estimate, default 1)")
    p.add_argument("--results", type=Path, default=RESULTS, help="benchmark results to read")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"rewrite {CAPACITY_MD.relative_to(ROOT)}")
    mode.add_argument("--check", action="store_true",
                      help="self-test; fail when CAPACITY.md or the shard memory request is stale")
    return p


def validate(a: argparse.Namespace) -> None:
    if a.items < 1 or a.shards < 1 or a.replication < 1 or a.shard_nodes < 1:
        raise InputError("--items, --shards, --replication and --shard-nodes must be positive")
    if a.replication > a.shard_nodes:
        raise InputError("--replication cannot exceed --shard-nodes (replicas need distinct nodes)")
    if not 0 <= a.headroom < 1:
        raise InputError("--headroom must be in [0, 1)")


def self_test() -> None:
    # Placement: every shard on `replication` distinct nodes; 20 shards, 10 nodes, 2 replicas -> 4 each.
    for shards, nodes, repl in ((20, 10, 2), (20, 4, 2), (7, 3, 2), (5, 5, 3)):
        counts = [0] * shards
        for i in range(nodes):
            for s in hosted(i, shards, nodes, repl):
                counts[s] += 1
        assert counts == [repl] * shards, (shards, nodes, repl, counts)
    assert max_load(20, 10, 2) == 4 and max_load(20, 4, 2) == 10
    assert nodes_needed(20, 2, 5) == 10 and nodes_needed(20, 2, 10) == 4 and nodes_needed(20, 2, 0) is None
    m = Measured("x", "d", 10_000_000, 20, 384, 900.0, 520.0, 1.25)
    assert m.bytes_per_vector("FP32") == 1668.0 and m.bytes_per_vector("INT8") == 520.0
    a = parser().parse_args(["--items", "2e7", "--shards", "20", "--shard-nodes", "2", "--replication", "1",
                             "--process-base-gib", "1", "--headroom", "0.5"])
    # 1M vectors per shard: 0.838 GiB each, 10 on a node; rebuild 1.25 x 0.838 = 1.048 GiB.
    assert abs(rebuild_reserve_gib(m, a) - 1.25 * 1e6 * 900 / GIB) < 1e-9
    assert request_gib(m, a) == math.ceil((10 * 1e6 * 900 / GIB + 1.25 * 1e6 * 900 / GIB + 1) / 0.5)


def main() -> int:
    a = parser().parse_args()
    try:
        validate(a)
        m = read_measured(a.results)
    except InputError as e:
        print(f"capacity.py: {e}", file=sys.stderr)
        return 2
    text = sheet(m, a)
    if a.write:
        CAPACITY_MD.write_text(text, encoding="utf-8")
        print(f"wrote {CAPACITY_MD.relative_to(ROOT)}")
        return 0
    if a.check:
        self_test()
        problems = []
        defaults = parser().parse_args([])
        if a.results == defaults.results:
            expected = sheet(m, defaults)
            if not CAPACITY_MD.exists() or CAPACITY_MD.read_text(encoding="utf-8") != expected:
                problems.append(f"{CAPACITY_MD.relative_to(ROOT)} is stale: run python3 deploy/capacity.py --write")
            want = request_gib(m, defaults)
            manifest = SHARD_MANIFEST.read_text(encoding="utf-8") if SHARD_MANIFEST.exists() else ""
            found = re.search(r"memory:\s*(\d+)Gi\s*#\s*capacity\.py", manifest)
            if not found:
                problems.append(f"{SHARD_MANIFEST.relative_to(ROOT)}: no 'memory: NGi  # capacity.py ...' request")
            elif int(found.group(1)) != want:
                problems.append(f"{SHARD_MANIFEST.relative_to(ROOT)}: memory request {found.group(1)}Gi, "
                                f"the sheet says {want}Gi")
        for p in problems:
            print(f"capacity.py --check: {p}", file=sys.stderr)
        if problems:
            return 1
        print("capacity.py --check: placement self-test passed; CAPACITY.md and the shard memory request are up to date")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
