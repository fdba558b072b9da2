#!/usr/bin/env python3
"""Capacity sheet for a core-api cluster, computed from the measured index memory in
benches/RESULTS.md (Python 3.11, standard library only).

    python3 deploy/capacity.py                 # print the sheet (Markdown)
    python3 deploy/capacity.py --items 1e9     # other parameters, see --help
    python3 deploy/capacity.py --write         # rewrite deploy/CAPACITY.md (default parameters)
    python3 deploy/capacity.py --check         # self-test, and CAPACITY.md and the shard
                                               # StatefulSet's memory request are up to date

Measured inputs (read from benches/RESULTS.md, section "Vector index memory and search"):
the index heap per 100K vectors (FP16 vectors plus HNSW links) and the raw FP16 vectors per
100K. Per-vector link bytes = heap - raw FP16; a vector costs links + 2*dim bytes in FP16 and
links + 4*dim bytes in FP32. Everything else (router catalogue entry, process baseline) is an
estimate and is labelled as one.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benches" / "RESULTS.md"
CAPACITY_MD = ROOT / "deploy" / "CAPACITY.md"
SHARD_MANIFEST = ROOT / "deploy" / "k8s" / "shard.yaml"

SECTION_RE = re.compile(r"^## Vector index memory and search \(([\d,]+) clustered (\d+)-d vectors")
HEAP_LABEL = "index heap (FP16 vectors + links) per 100K vectors"
RAW_LABEL = "raw FP16 vectors per 100K (lower bound)"
RSS_LABEL = "process RSS growth per 100K while building"
MIB = 1 << 20
GIB = 1 << 30


class InputError(Exception):
    pass


@dataclass(frozen=True)
class Measured:
    source: str
    date: str
    vectors: int
    dim: int
    heap_mib_per_100k: float
    raw_fp16_mib_per_100k: float
    build_rss_mib_per_100k: float | None
    setup: str = ""

    @property
    def link_bytes(self) -> float:
        return (self.heap_mib_per_100k - self.raw_fp16_mib_per_100k) * MIB / 100_000

    def bytes_per_vector(self, fmt: str) -> float:
        return self.link_bytes + {"FP32": 4, "FP16": 2}[fmt] * self.dim


def read_measured(path: Path) -> Measured:
    """Parses the index memory section of benches/RESULTS.md; raises InputError when absent."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise InputError(f"cannot read {path}: {e}") from e
    date_m = re.search(r"Written by .* on (\d{4}-\d{2}-\d{2})", "\n".join(lines[:5]))
    start = next((i for i, l in enumerate(lines) if SECTION_RE.match(l)), None)
    if start is None:
        raise InputError(
            f"{path}: no section '## Vector index memory and search (N clustered D-d vectors, ...)'; "
            "run benches/run.sh to measure the index"
        )
    head = SECTION_RE.match(lines[start])
    rows: dict[str, str] = {}
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]

    def mib(label: str, required: bool = True) -> float | None:
        value = rows.get(label)
        if value is None:
            if required:
                raise InputError(f"{path}: row '| {label} | ... MiB |' missing from '{lines[start]}'")
            return None
        m = re.fullmatch(r"([\d.]+)\s*MiB", value)
        if not m:
            raise InputError(f"{path}: row '{label}' has value {value!r}, expected 'N MiB'")
        return float(m.group(1))

    heap, raw = mib(HEAP_LABEL), mib(RAW_LABEL)
    if heap <= raw:
        raise InputError(f"{path}: index heap ({heap} MiB) must exceed the raw FP16 vectors ({raw} MiB)")
    return Measured(
        source=str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
        date=date_m.group(1) if date_m else "unknown date",
        vectors=int(head.group(1).replace(",", "")),
        dim=int(head.group(2)),
        heap_mib_per_100k=heap,
        raw_fp16_mib_per_100k=raw,
        build_rss_mib_per_100k=mib(RSS_LABEL, required=False),
        setup=lines[start].split("(", 1)[1].rsplit(")", 1)[0],
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
    catalog_default = 2 * m.dim + 512
    catalog_bytes = a.catalog_bytes_per_item if a.catalog_bytes_per_item is not None else catalog_default
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
    w(f"| headroom kept free (rebuilds, OS) | {a.headroom:.0%} | parameter `--headroom` |")
    w(f"| vector dimension | {m.dim} | measured: {m.source} ({m.date}), section heading |")
    w(f"| index heap (FP16 vectors + links) per 100K vectors | {m.heap_mib_per_100k} MiB | measured: {m.source} ({m.date}): {m.setup} |")
    w(f"| raw FP16 vectors per 100K | {m.raw_fp16_mib_per_100k} MiB | measured: {m.source} ({m.date}) |")
    est = "estimate: 2·dim FP16 vector + 512 B metadata, not measured" if a.catalog_bytes_per_item is None else "parameter `--catalog-bytes-per-item`"
    w(f"| router catalogue cache per item | {fmt_int(catalog_bytes)} B | {est} |")
    w(f"| shard process memory besides the index (runtime, buffers) | {a.process_base_gib:g} GiB | estimate (`--process-base-gib`); the demo server's whole RSS was 319 MiB |")
    w("")
    w("Derived: HNSW links per vector = (heap − raw FP16) per vector = "
      f"({m.heap_mib_per_100k} − {m.raw_fp16_mib_per_100k}) MiB / 100K = **{m.link_bytes:.1f} B**; "
      f"FP16 vector = links + 2·{m.dim} B, FP32 vector = links + 4·{m.dim} B. "
      "The index stores FP16 today; FP32 is shown for comparison.")
    w("")
    w("## Shard nodes")
    w("")
    w(f"{fmt_int(items)} items in {shards} shards = {fmt_int(per_shard)} vectors per shard; "
      f"usable memory per node = {a.node_memory_gib:g} GiB × (1 − {a.headroom:g}) = {usable_gib:.1f} GiB. "
      "Nodes needed: the fewest shard nodes whose busiest node, under core-api's placement "
      "(node i hosts shard s iff i = (s + j) mod nodes, j < replication), holds no more shard "
      "replicas than fit.")
    w("")
    w("| | FP32 | FP16 |")
    w("|---|---|---|")
    rows: dict[str, list[str]] = {k: [] for k in (
        "bytes per vector", "GiB per shard replica", "shard replicas per node that fit",
        "shard nodes needed", "shard replicas on the busiest node", "index memory, all replicas",
        "node memory provisioned")}
    for fmt in ("FP32", "FP16"):
        bpv = m.bytes_per_vector(fmt)
        shard_gib = per_shard * bpv / GIB
        fit = math.floor(usable_gib / shard_gib) if shard_gib > 0 else 0
        n = nodes_needed(shards, repl, fit)
        rows["bytes per vector"].append(f"{bpv:.1f}")
        rows["GiB per shard replica"].append(f"{shard_gib:.2f}")
        rows["shard replicas per node that fit"].append(str(fit))
        rows["shard nodes needed"].append(str(n) if n else "does not fit")
        rows["shard replicas on the busiest node"].append(str(max_load(shards, n, repl)) if n else "—")
        rows["index memory, all replicas"].append(f"{shards * repl * shard_gib:.1f} GiB")
        rows["node memory provisioned"].append(f"{n * a.node_memory_gib:g} GiB" if n else "—")
    for label, cells in rows.items():
        w(f"| {label} | " + " | ".join(cells) + " |")
    w("")

    # The deploy/k8s layout: a fixed node count, FP16 (what the index stores).
    nodes = a.shard_nodes
    load = max_load(shards, nodes, repl)
    shard_gib16 = per_shard * m.bytes_per_vector("FP16") / GIB
    index_gib = load * shard_gib16
    request = request_gib(m, a)
    w(f"## Shard node request for the deploy/k8s layout ({nodes} shard nodes, FP16)")
    w("")
    w(f"Busiest node: {load} shard replicas × {shard_gib16:.2f} GiB = {index_gib:.2f} GiB of index; "
      f"+ {a.process_base_gib:g} GiB baseline = {index_gib + a.process_base_gib:.2f} GiB; "
      f"/ (1 − {a.headroom:g}) headroom = **{request} GiB memory request** per shard pod "
      "(`deploy/k8s/shard.yaml`).")
    if m.build_rss_mib_per_100k is not None:
        build_gib = per_shard * m.build_rss_mib_per_100k * MIB / 100_000 / GIB
        w("")
        w(f"Caveat (measured, {m.source}): process RSS grew {m.build_rss_mib_per_100k} MiB per 100K "
          f"vectors while building (shards built in parallel, allocator retention included). At that "
          f"rate, building one {fmt_int(per_shard)}-vector shard in memory would take about "
          f"{build_gib:.1f} GiB, more than the {a.node_memory_gib * a.headroom:.1f} GiB of headroom. "
          "Whether the build cost scales linearly to full-size shards is not measured: measure a "
          "full-size shard build before relying on the headroom for rebuilds.")
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


def request_gib(m: Measured, a: argparse.Namespace) -> int:
    per_shard = math.ceil(int(a.items) / a.shards)
    load = max_load(a.shards, a.shard_nodes, a.replication)
    index_gib = load * per_shard * m.bytes_per_vector("FP16") / GIB
    return math.ceil((index_gib + a.process_base_gib) / (1 - a.headroom))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=float, default=100e6, help="catalogue size (default 100e6)")
    p.add_argument("--shards", type=int, default=20, help="index.shards (default 20)")
    p.add_argument("--replication", type=int, default=2, help="cluster.replication (default 2)")
    p.add_argument("--node-memory-gib", type=float, default=64, help="memory per node (default 64)")
    p.add_argument("--headroom", type=float, default=0.3,
                   help="fraction of node memory kept free for rebuilds and the OS (default 0.3)")
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
    m = Measured("x", "d", 100_000, 384, 86.8, 73.2, None)
    assert abs(m.link_bytes - 142.606) < 0.01 and abs(m.bytes_per_vector("FP16") - m.link_bytes - 768) < 1e-9


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
