#!/usr/bin/env bash
# Offline evaluation on every data set of reco-eval, into benches/RESULTS-eval.md:
# the MovieTweetings snapshot in the repository and MovieLens 100K, fetched at run time
# from PyPI (not redistributable, never committed). Every method is tuned on validation.
# The service's latency with and without the learned sources, and the training's time and
# memory on 20K and 1M interactions, are measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/semrec-target}"
bash scripts/fetch-model.sh
movielens=$(bash scripts/fetch-movielens.sh)
cargo build --release -q -p reco-eval --bin reco-eval
bin="$CARGO_TARGET_DIR/release/reco-eval"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$bin" --write-results "$out/movietweetings.md" "$@" >/dev/null
"$bin" --ratings "$movielens/ratings.dat" --catalog "$movielens/movies.dat" \
  --write-results "$out/movielens.md" "$@" >/dev/null
{
  echo "# Offline evaluation"
  echo
  echo "Written by \`benches/eval.sh\`: two data sets, every method tuned on a validation split"
  echo "and scored once on the test split. MovieLens 100K (F. M. Harper and J. A. Konstan, 2015)"
  echo "is fetched at run time by \`scripts/fetch-movielens.sh\` and not redistributed."
  echo
  cat "$out/movietweetings.md"
  echo
  cat "$out/movielens.md"
  echo
  bash benches/service_latency.sh "${EVAL_LOAD_SECS:-20}"
  echo
  bash benches/train_cost.sh
} > "$out/RESULTS-eval.md"
cp "$out/RESULTS-eval.md" benches/RESULTS-eval.md
echo "wrote benches/RESULTS-eval.md" >&2
