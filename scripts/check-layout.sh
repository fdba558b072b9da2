#!/usr/bin/env bash
# Keeps core-api's source files small enough to read in one sitting, and its modules free of
# import cycles. Fails, naming each offender, when a Rust file under core-api/src is longer
# than the limit (800 lines): split such a file into a module directory by meaning rather than
# raising the limit. Fails, naming the cycle, when two modules import each other.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=800
offenders=0
while IFS= read -r -d '' file; do
  lines=$(wc -l <"$file")
  if ((lines > limit)); then
    echo "$file: $lines lines (limit $limit)" >&2
    offenders=$((offenders + 1))
  fi
done < <(find core-api/src -type f -name '*.rs' -print0 | sort -z)
if ((offenders > 0)); then
  echo "$offenders file(s) under core-api/src exceed $limit lines: split them into modules" >&2
  exit 1
fi

# No import cycles between core-api's top-level modules (a file or directory under src):
# the dependency graph of `crate::<module>` references must be acyclic, so each layer can be
# read (and tested) without the ones above it. Comments are ignored.
python3 - <<'PY'
import os, re, sys
from collections import defaultdict

src = "core-api/src"
deps = defaultdict(set)
modules = set()
for root, _, files in os.walk(src):
    for name in files:
        if not name.endswith(".rs"):
            continue
        rel = os.path.relpath(os.path.join(root, name), src).split(os.sep)
        if rel[0] in ("lib.rs", "main.rs", "bin"):
            continue
        top = rel[0][:-3] if rel[0].endswith(".rs") else rel[0]
        modules.add(top)
        text = re.sub(r"//[^\n]*", "", open(os.path.join(root, name)).read())
        used = set(re.findall(r"crate::(\w+)", text))
        for group in re.findall(r"crate::\{([^}]*)\}", text):
            used |= set(re.findall(r"(?:^|,)\s*(\w+)", group))
        deps[top] |= {u for u in used if u != top}

# Depth-first search for a back edge; prints one cycle.
state = {}
def visit(node, path):
    state[node] = "open"
    for nxt in sorted(deps[node] & modules):
        if state.get(nxt) == "open":
            cycle = path[path.index(nxt):] + [nxt]
            sys.exit("import cycle between core-api modules: " + " -> ".join(cycle))
        if nxt not in state:
            visit(nxt, path + [nxt])
    state[node] = "done"
for module in sorted(modules):
    if module not in state:
        visit(module, [module])
PY
