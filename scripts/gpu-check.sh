#!/usr/bin/env bash
# GPU check in one go, for a machine with NVIDIA GPUs but no network or Rust toolchain.
#
#   scripts/gpu-check.sh build   (here) builds the gpu-batch tests and the scoring benchmark
#                                with the `cuda` feature into var/gpu-check/ (stripped, to carry)
#   scripts/gpu-check.sh run     (on the GPU machine, from the repository root) prints the GPUs,
#                                runs the gpu-batch tests (the backend parity tests then run on
#                                the GPUs) and the batched-scoring benchmark on GPU and CPU at
#                                100K and 1M candidates, and prints every figure as JSON lines
#
# cudarc loads libcuda and libcublas at run time, so the binaries run unchanged wherever the
# driver is installed (CUDA 12.x/13 runtime libraries on the library path).
set -euo pipefail
cd "$(dirname "$0")/.."
out=var/gpu-check
case ${1:-} in
  build)
    mkdir -p "$out"
    test_bin=$(cargo test --release -p gpu-batch --features cuda --lib --no-run --message-format=json 2>/dev/null |
      python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "gpu_batch":
        print(m["executable"])' | tail -1)
    [[ -n $test_bin ]] || { echo "gpu-batch test binary not built" >&2; exit 1; }
    cargo build --release -p reco-benches --features cuda --bin embed_score
    cp "$test_bin" "$out/gpu-batch-tests"
    cp "${CARGO_TARGET_DIR:-target}/release/embed_score" "$out/embed_score"
    strip "$out/gpu-batch-tests" "$out/embed_score"
    du -sh "$out"/*
    ;;
  run)
    [[ -x $out/gpu-batch-tests && -x $out/embed_score ]] || { echo "run '$0 build' first" >&2; exit 1; }
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi not found"
    echo "== gpu-batch tests (parity on the backend BatchScorer selects)"
    "$out/gpu-batch-tests" --test-threads 1 2>&1 | tail -15
    echo "== batched scoring (device, then the CPU in the same run)"
    for n in 100000 1000000; do
      "$out/embed_score" --texts 0 --candidates $n --queries 1024 --gpus 0
      "$out/embed_score" --texts 0 --candidates $n --queries 256
    done
    ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
