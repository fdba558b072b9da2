#!/usr/bin/env bash
# One command to set up and run every test: fetches the embedding model, checks formatting
# and lints (native and the worker's wasm32 build), builds the edge worker (installing its
# pinned tooling), then runs all tests of the workspace: unit, router, real-socket, kill -9
# durability, index recall, semantic sanity on the real model, and the edge worker in a real
# local workerd in front of a real core-api process, and the Redis user-embedding cache against
# a real redis-server (installed here from Debian's packages when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm not found: install Node.js >= 20.3" >&2; exit 1; }
bash scripts/fetch-model.sh
# Real servers for the backend tests (each test starts its own on a free loopback port).
if ! command -v redis-server >/dev/null; then
  apt-get install -y -q redis-server >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null; } ||
    { echo "redis-server is needed by the tests: apt-get install redis-server" >&2; exit 1; }
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
bash scripts/build-edge.sh
bash scripts/build-edge.sh --clippy
cargo test --workspace
