#!/usr/bin/env bash
# One command to set up and run every test: fetches the embedding model, checks formatting
# and lints (native and the worker's wasm32 build), builds the edge worker (installing its
# pinned tooling), then runs all tests of the workspace: unit, router, real-socket, kill -9
# durability, index recall, semantic sanity on the real model, and the edge worker in a real
# local workerd in front of a real core-api process.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm not found: install Node.js >= 20.3" >&2; exit 1; }
bash scripts/fetch-model.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
bash scripts/build-edge.sh
bash scripts/build-edge.sh --clippy
cargo test --workspace
