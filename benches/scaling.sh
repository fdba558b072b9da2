#!/usr/bin/env bash
# How the index's cost grows with catalogue size and shard count on one node:
# build time, memory, recall@10 and single-thread search speed for every combination of
#   sizes  (default 10000,100000; add 1000000 for the full curve: about 30 min per row here)
#   shards (default 1,4,20)
# over clustered 384-d vectors, written to benches/RESULTS-scaling.md. Every measured row is
# kept in benches/scaling-rows.jsonl with its date; a run replaces the rows it measures, so the
# long rows can be run on their own (e.g. --sizes 1000000 --shards 20).
#
# --mapped measures the mapped storage instead (benches/mapped-rows.jsonl): index_mapped builds
# the shards from FP16 rows into files in a scratch directory under --dir (about 1.4 GiB of disk per 1M vectors, FP16
# and INT8) and maps them in a fresh process per storage: FP16, INT8, INT8 with an FP16
# re-rank. 10M vectors take about an hour here and 14 GiB of disk.
#   benches/scaling.sh [--sizes 10000,100000,1000000] [--shards 1,4,20] [--ef 100]
#   benches/scaling.sh --mapped [--sizes 1000000,10000000] [--shards 20] [--dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
sizes= shard_counts= ef=100 kind=heap dir=${TMPDIR:-/tmp}
while (( $# )); do
  case $1 in
    --mapped) kind=mapped; shift ;;
    --dir) dir=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --shards) shard_counts=$2; shift 2 ;;
    --ef) ef=$2; shift 2 ;;
    *) echo "unknown argument '$1'" >&2; exit 2 ;;
  esac
done
bin=${CARGO_TARGET_DIR:-target}/release
out=$(mktemp) work=
trap 'rm -rf "$out" ${work:+"$work"}' EXIT
if [[ $kind == heap ]]; then
  cargo build -q --release -p reco-benches --bin index_memory
  : "${sizes:=10000,100000}" "${shard_counts:=1,4,20}"
  for n in ${sizes//,/ }; do
    for s in ${shard_counts//,/ }; do
      echo "index_memory: $n vectors, $s shards..." >&2
      "$bin/index_memory" --vectors "$n" --shards "$s" --ef "$ef" --queries 500 >>"$out"
    done
  done
else
  cargo build -q --release -p reco-benches --bin index_mapped
  : "${sizes:=1000000,10000000}" "${shard_counts:=20}"
  for n in ${sizes//,/ }; do
    for s in ${shard_counts//,/ }; do
      work=$(mktemp -d "$dir/index-mapped.XXXXXX")
      echo "index_mapped: $n vectors, $s shards: build..." >&2
      "$bin/index_mapped" build --vectors "$n" --shards "$s" --dir "$work" --queries 200 >>"$out"
      for storage in fp16 int8 int8-rerank; do
        echo "index_mapped: search $storage..." >&2
        "$bin/index_mapped" search --dir "$work" --storage "$storage" --ef "$ef" >>"$out"
      done
      rm -rf "$work"
    done
  done
fi
python3 benches/scaling_report.py "--$kind" "$out"
