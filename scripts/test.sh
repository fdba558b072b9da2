#!/usr/bin/env bash
# One command to set up and run every test: fetches the embedding model, checks formatting
# and lints, builds the shared cache contract for wasm32, then runs all tests of the workspace (unit, router, real-socket, kill -9
# durability, index recall, semantic sanity on the real model).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
bash scripts/fetch-model.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
bash scripts/check-wasm.sh
cargo test --workspace
