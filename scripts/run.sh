#!/usr/bin/env bash
# One command to set up and run the core API on the demo film catalogue:
# fetches the embedding model, builds core-api (release) and starts it on 127.0.0.1:8080.
# The first start serves once the most rated films are embedded (under a minute on a laptop
# CPU) and embeds the rest of the catalogue in the background, caching it and the index under
# var/data; later starts load in seconds. Extra arguments go to core-api.
#
#   scripts/run.sh               the core on 127.0.0.1:8080
#   scripts/run.sh --with-edge   also the edge worker (wrangler dev, local workerd) in front of
#                                it on 127.0.0.1:8787; needs Node.js >= 20.3
set -euo pipefail
cd "$(dirname "$0")/.."
with_edge=0
if [[ ${1:-} == --with-edge ]]; then
  with_edge=1
  shift
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 (with pip) is needed to fetch the model" >&2; exit 1; }
bash scripts/fetch-model.sh
cargo build --release -p core-api --bin core-api
if (( ! with_edge )); then
  exec cargo run --quiet --release -p core-api --bin core-api -- "$@"
fi
bash scripts/build-edge.sh --if-stale
cargo run --quiet --release -p core-api --bin core-api -- "$@" &
core=$!
trap 'kill $core 2>/dev/null || true' EXIT
echo "core on http://127.0.0.1:8080, edge on http://127.0.0.1:8787 (Ctrl-C stops both)" >&2
WRANGLER_SEND_METRICS=false node_modules/.bin/wrangler dev --ip 127.0.0.1 --port 8787
