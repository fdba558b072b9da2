#!/usr/bin/env bash
# Fetches NVIDIA's runtime compiler (libnvrtc, CUDA 13.0, from PyPI: NVIDIA's redistributable
# wheel) into the tool cache and prints its library directory. NVRTC needs no GPU, so the
# test command uses it to check that the GPU kernels compile on every machine.
#   export LD_LIBRARY_PATH="$(bash scripts/fetch-nvrtc.sh)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
set -euo pipefail
version=13.0.88
sha256=ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575
dir=${SEMREC_TOOLS:-$HOME/.cache/semrec-tools}/nvrtc-$version
lib=$dir/nvidia/cu13/lib
if [[ ! -f $lib/libnvrtc.so.13 ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux_2_12_x86_64 -d "$tmp" "nvidia-cuda-nvrtc==$version" >&2
  wheel=("$tmp"/nvidia_cuda_nvrtc-*.whl)
  echo "$sha256  ${wheel[0]}" | sha256sum -c --quiet - >&2
  mkdir -p "$dir"
  python3 -m zipfile -e "${wheel[0]}" "$dir"
fi
echo "$lib"
