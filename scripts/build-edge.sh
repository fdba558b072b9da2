#!/usr/bin/env bash
# Builds the edge worker (Rust -> wasm32 -> JS shim) into edge-worker/build/, the `main` of
# wrangler.toml. Installs what it needs: the npm tooling pinned in package-lock.json
# (wrangler, esbuild, binaryen's wasm-opt), wasm-bindgen-cli at exactly the version in
# Cargo.lock and worker-build (both with cargo, into $SEMREC_TOOLS_DIR), and the wasm32
# target: `rustup target add` where it works, else Debian's rustc-web building std itself.
#
#   scripts/build-edge.sh              build (release)
#   scripts/build-edge.sh --if-stale   do nothing when the build is newer than its sources
#   scripts/build-edge.sh --clippy     lint the worker as compiled for wasm32 (-D warnings)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools=${SEMREC_TOOLS_DIR:-$HOME/.cache/semrec-tools}
shim=edge-worker/build/worker/shim.mjs

if [[ ${1:-} == --if-stale && -f $shim ]] &&
  [[ -z $(find edge-worker/src edge-worker/Cargo.toml shared-types/src Cargo.lock -newer "$shim" -print -quit) ]]; then
  exit 0
fi

# npm tooling, reinstalled only when the lockfile changed.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# Rust tools for worker-build, at the versions the lockfile needs.
bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [[ $("$tools/bin/wasm-bindgen" --version 2>/dev/null) != "wasm-bindgen $bindgen_version" ]]; then
  echo "installing wasm-bindgen-cli $bindgen_version into $tools (one-off, a few minutes)..." >&2
  CARGO_TARGET_DIR="$tools/build" cargo install --quiet --force wasm-bindgen-cli \
    --version "$bindgen_version" --root "$tools"
fi
if [[ ! -x $tools/bin/worker-build ]]; then
  echo "installing worker-build into $tools (one-off)..." >&2
  CARGO_TARGET_DIR="$tools/build" cargo install --quiet worker-build --version '~0.8' --root "$tools"
fi

# The wasm32 standard library: rustup's, or Debian's compiler building std from source.
if ! rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
  if [[ ${1:-} == --clippy ]]; then
    echo "wasm32 lint skipped: it needs rustup's wasm32 target (Debian's rustc-web has no clippy)" >&2
    exit 0
  fi
  if [[ ! -d /usr/lib/rustlib/src/rust/library ]]; then
    apt-get install -y rustc-web rust-web-src cargo-web lld-19
  fi
  mkdir -p /usr/lib/rustlib/wasm32-unknown-unknown/lib # worker-build's target check looks here
  export RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=std,panic_abort
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-19 RUSTC=/usr/bin/rustc
  export PATH=/usr/bin:$PATH
fi

if [[ ${1:-} == --clippy ]]; then
  exec cargo clippy -p edge-worker --target wasm32-unknown-unknown --release -- -D warnings
fi

cd edge-worker
WASM_BINDGEN_BIN="$tools/bin/wasm-bindgen" \
ESBUILD_BIN="$root/node_modules/.bin/esbuild" \
WASM_OPT_BIN="$root/node_modules/.bin/wasm-opt" \
  "$tools/bin/worker-build" --release
touch "$root/$shim"
wasm=build/index_bg.wasm
[[ -f $wasm ]] || wasm=$(find build -name '*.wasm' -print -quit)
echo "edge worker built: $shim ($(wc -c <"$wasm") bytes of wasm, $(gzip -9c "$wasm" | wc -c) gzipped)" >&2
