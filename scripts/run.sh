#!/usr/bin/env bash
# One command to set up and run the core API on the demo film catalogue:
# fetches the embedding model, builds core-api (release) and starts it on 127.0.0.1:8080.
# The first start embeds the catalogue (a few minutes on a laptop CPU) and caches the index
# under var/data; later starts load in seconds. Extra arguments go to core-api.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 (with pip) is needed to fetch the model" >&2; exit 1; }
bash scripts/fetch-model.sh
cargo build --release -p core-api
exec cargo run --quiet --release -p core-api -- "$@"
