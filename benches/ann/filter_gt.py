"""Exact top-10 under payload filters, for the filtered-search comparison (run.sh).

A filter passing a share s of the items admits base vector i when ((i * 2654435761) mod 2^32) / 2^32
< s: a fixed pseudo-random subset, uncorrelated with the vectors, that ann_bench and peers.py
compute the same way. Writes gt-filter-<s>.i32 (top-10 base ids per query, -1 where fewer than
10 pass) next to base.f32.

usage: python3 filter_gt.py DATA_DIR 0.5,0.1,0.01,0.001
"""
import json
import pathlib
import sys

import numpy as np


def admitted(n, share):
    """The same pseudo-random subset as ann_bench's `admitted`."""
    return ((np.arange(n, dtype=np.uint64) * 2654435761) % 2**32) / 2**32 < share


data = pathlib.Path(sys.argv[1])
dim = json.loads((data / "meta.json").read_text())["dim"]
base = np.fromfile(data / "base.f32", dtype="<f4").reshape(-1, dim)
queries = np.fromfile(data / "queries.f32", dtype="<f4").reshape(-1, dim)
for share in sys.argv[2].split(","):
    path = data / f"gt-filter-{share}.i32"
    if path.exists():
        continue
    ids = np.flatnonzero(admitted(len(base), float(share)))
    subset = base[ids]
    gt = np.full((len(queries), 10), -1, dtype=np.int32)
    k = min(10, len(ids))
    for start in range(0, len(queries), 250):
        scores = queries[start:start + 250] @ subset.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < len(ids) else np.tile(np.arange(k), (len(scores), 1))
        rows = np.take_along_axis(scores, top, axis=1)
        ordered = np.take_along_axis(top, np.argsort(-rows, axis=1), axis=1)
        gt[start:start + 250, :k] = ids[ordered]
    gt.astype("<i4").tofile(path)
    print(f"{path.name}: {len(ids)} of {len(base)} vectors pass", file=sys.stderr)
