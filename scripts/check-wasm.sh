#!/usr/bin/env bash
# Builds shared-types for wasm32-unknown-unknown, proving the cache contract compiles for the
# edge worker. Uses `rustup target add` where it works; otherwise Debian's rustc-web (1.96)
# with its std source, building std for wasm32 (installed with apt when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-target}/wasm
if rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
  exec cargo build -p shared-types --target wasm32-unknown-unknown --target-dir "$target_dir"
fi
if [[ ! -d /usr/lib/rustlib/src/rust/library ]]; then
  apt-get install -y rustc-web rust-web-src cargo-web lld-19
fi
mkdir -p /usr/lib/rustlib/wasm32-unknown-unknown/lib
RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=std,panic_abort \
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-19 \
RUSTC=/usr/bin/rustc PATH=/usr/bin:$PATH \
  /usr/bin/cargo build -p shared-types --target wasm32-unknown-unknown --release --target-dir "$target_dir"
