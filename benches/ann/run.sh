#!/usr/bin/env bash
# ANN comparison: our build and compact search (FP32, FP16 and INT8 vectors on one graph, INT8
# with an FP16 re-rank; N shards merged) vs hnsw_rs (the reference builder) vs hnswlib vs faiss
# HNSW vs usearch, all with M=16 and ef_construction=200; builds timed on one thread and on all
# cores (ours and hnswlib), searches on one search thread and on all cores, median of 5
# interleaved rounds (ANN_ROUNDS), in one run here;
# then filtered search (filters passing 50/10/1/0.1% of the items) against hnswlib's filter and
# post-filtering.
#   benches/ann/run.sh [glove]   GloVe-100 (339K unit vectors, 2,000 held-out queries)
#                                -> benches/RESULTS-ann.md, benches/ann-glove100.png
#   benches/ann/run.sh glove100k the first 100K GloVe-100 base vectors (a shorter run)
#                                -> benches/RESULTS-ann-glove100k.md, benches/ann-glove100k.png
#   benches/ann/run.sh minilm    100K real 384-d MiniLM embeddings (embedded here first)
#                                -> benches/RESULTS-ann-minilm.md, benches/ann-minilm100k.png
set -euo pipefail
cd "$(dirname "$0")/../.."
set_name=${1:-glove}
python3 -m pip install --quiet --disable-pip-version-check hnswlib faiss-cpu usearch matplotlib numpy
cargo build --release -p reco-benches
# The ANN benchmark depends on the index crate alone.
cargo build --release -p vector-index --example ann_bench
bin=${CARGO_TARGET_DIR:-target}/release
case $set_name in
  glove)
    data=var/bench-data/glove100
    python3 benches/ann/prepare_glove.py "$data"
    results=benches/RESULTS-ann.md plot=benches/ann-glove100.png skip="" ;;
  glove100k)
    data=var/bench-data/glove100k
    python3 benches/ann/prepare_glove.py "$data" --max-base 100000
    results=benches/RESULTS-ann-glove100k.md plot=benches/ann-glove100k.png skip="" ;;
  minilm)
    bash scripts/fetch-model.sh
    data=var/bench-data/minilm100k
    python3 benches/ann/prepare_minilm.py "$data" "$bin/embed_texts"
    # hnsw_rs's own search was measured on GloVe; here the compact search runs on one graph and
    # on 4 shards merged, as the sharded index searches.
    results=benches/RESULTS-ann-minilm.md plot=benches/ann-minilm100k.png skip="--skip-hnsw-rs --shards 4" ;;
  *) echo "unknown data set '$set_name' (glove, glove100k or minilm)" >&2; exit 2 ;;
esac
efs=10,20,40,80,120,200,400
rounds=${ANN_ROUNDS:-5}
cores=$(nproc)
threads=1
(( cores > 1 )) && threads="1,$cores"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# Each index is built once (first round) and saved; then every round measures every library once,
# so the medians come from rounds interleaved in time.
indexes=$data/indexes
rm -rf "$indexes"
for round in $(seq 1 "$rounds"); do
  echo "== round $round of $rounds" >&2
  python3 benches/ann/peers.py "$data" --efs "$efs" --rounds 1 --build-threads "$threads" --threads "$threads" \
    --index-dir "$indexes" | tee -a "$out"
  "$bin/examples/ann_bench" "$data" --efs "$efs" --rounds 1 --precisions fp32,fp16,int8,int8-rerank --threads "$threads" \
    --build-threads "$threads" $skip \
    --index-dir "$indexes" | tee -a "$out"
done
# Filtered search on the same indexes: filters passing 50%, 10%, 1% and 0.1% of the items.
shares=0.5,0.1,0.01,0.001
python3 benches/ann/filter_gt.py "$data" "$shares"
for round in $(seq 1 "$rounds"); do
  "$bin/examples/ann_bench" "$data" --rounds 1 --precisions fp16 --skip-hnsw-rs --index-dir "$indexes" \
    --filters "$shares" --filter-efs 100 | tee -a "$out"
done
python3 benches/ann/peers.py "$data" --index-dir "$indexes" --filters "$shares" --filter-efs 100 | tee -a "$out"
rm -rf "$indexes"
python3 benches/ann/report.py "$out" "$results" "$plot" "$data"
