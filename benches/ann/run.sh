#!/usr/bin/env bash
# ANN comparison on GloVe-100 (339K unit vectors, 2,000 held-out queries, inner product):
# our compact search vs hnsw_rs's own search vs hnswlib vs faiss HNSW, all with M=16 and
# ef_construction=200, one search thread, median of 3 rounds, in one run on this machine.
# Writes benches/RESULTS-ann.md and benches/ann-glove100.png.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=var/bench-data/glove100
python3 -m pip install --quiet --disable-pip-version-check hnswlib faiss-cpu matplotlib numpy
python3 benches/ann/prepare_glove.py "$data"
cargo build --release -p reco-benches
bin=${CARGO_TARGET_DIR:-target}/release
efs=10,20,40,80,120,200,400
out=$(mktemp)
python3 benches/ann/peers.py "$data" --efs "$efs" --rounds 3 --build-threads 2 | tee -a "$out"
"$bin/ann_bench" "$data" --efs "$efs" --rounds 3 | tee -a "$out"
python3 benches/ann/report.py "$out" benches/RESULTS-ann.md benches/ann-glove100.png
rm -f "$out"
