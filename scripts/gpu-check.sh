#!/usr/bin/env bash
# GPU check in one go, for a machine with NVIDIA GPUs but no network or Rust toolchain.
#
#   scripts/gpu-check.sh build   (here) builds the gpu-batch tests and the embedding/scoring
#                                benchmark with the `cuda` feature into var/gpu-check/ (stripped),
#                                with an FP16 copy of the model (45 MB instead of 87: all of it
#                                must fit the 64 MiB that can travel)
#   scripts/gpu-check.sh run     (on the GPU machine, from the repository root) prints the GPUs,
#                                runs the gpu-batch tests (the encoder and scorer parity tests
#                                then run on the GPUs, the encoder's CUDA kernels compile with
#                                NVRTC), then MiniLM embedding at batch 32/128/256 on the GPUs and
#                                on the CPU, and batched scoring on GPU and CPU at 100K and 1M
#                                candidates, printing every figure as JSON lines
#
# cudarc loads libcuda, libcublas and libnvrtc at run time, so the binaries run unchanged
# wherever the driver and the CUDA 13 libraries are installed.
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
    bash scripts/fetch-model.sh
    python3 -m pip install --quiet --disable-pip-version-check safetensors numpy
    mkdir -p "$out/model"
    cp models/all-MiniLM-L6-v2/{config.json,tokenizer.json} "$out/model/"
    python3 - models/all-MiniLM-L6-v2/model.safetensors "$out/model/model.safetensors" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file, save_file
save_file({k: v.astype(np.float16) for k, v in load_file(sys.argv[1]).items()}, sys.argv[2])
PY
    du -shc "$out"/*
    ;;
  run)
    [[ -x $out/gpu-batch-tests && -x $out/embed_score && -f $out/model/model.safetensors ]] ||
      { echo "run '$0 build' first" >&2; exit 1; }
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi not found"
    export GPU_BATCH_MODEL_DIR=$out/model REQUIRE_NVRTC=1
    echo "== gpu-batch tests (encoder and scorer parity on the backend the crate selects)"
    "$out/gpu-batch-tests" --test-threads 1 2>&1 | tail -25
    echo "== MiniLM embedding: all GPUs (FP16), then the CPU, same texts"
    "$out/embed_score" --model "$out/model" --texts 30000 --candidates 1000 --queries 16 --gpus 0
    "$out/embed_score" --model "$out/model" --texts 2048 --candidates 1000 --queries 16
    echo "== batched scoring (device, then the CPU in the same run)"
    for n in 100000 1000000; do
      "$out/embed_score" --texts 0 --candidates $n --queries 1024 --gpus 0
      "$out/embed_score" --texts 0 --candidates $n --queries 256
    done
    ;;
  *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
