#!/usr/bin/env bash
# Checks the deployment artefacts under deploy/ offline:
#   1. Prometheus: promtool check config (which also checks the rules it loads), check rules,
#      and the alert unit tests (promtool test rules);
#   2. Kubernetes: deploy/k8s/validate decodes every manifest strictly with the Kubernetes API
#      types, builds the kustomization and checks references (see its main.go); then, in its
#      -scylla mode (scylla.go), the ScyllaDB Operator manifest deploy/scylla/scylla-cluster.yaml:
#      strict decoding against the operator's ScyllaCluster fields, sizes, and its agreement
#      with the [scylla] settings of deploy/k8s/config.yaml (service, data centre, replicas);
#   3. Grafana: the dashboard is valid JSON with unique panel ids, a sane layout, the datasource
#      variable, metrics that core-api exports, and PromQL that parses;
#   4. Docker: every file the Dockerfile copies exists and is not excluded by .dockerignore,
#      and every workspace member is copied;
#   5. the capacity sheet: prints it, runs its self-test, and checks that deploy/CAPACITY.md
#      and the shard memory request are up to date.
#
# Tools are built once into ~/.cache/semrec-tools (override: SEMREC_TOOLS): promtool 3.7.3 and
# the manifest validator, both from their pinned Go modules (go.mod + go.sum). Debian's
# promtool is not used: it is built without Kubernetes service discovery and rejects
# kubernetes_sd_configs. Needs Go >= 1.21 (any older or missing Go is replaced by a toolchain
# from the Go module proxy) and Python 3.11. The first run downloads the Go modules and builds
# promtool (several minutes on 2 cores); later runs take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools="${SEMREC_TOOLS:-$HOME/.cache/semrec-tools}"
mkdir -p "$tools"
step() { printf '\n== %s\n' "$*"; }
die() { echo "check-deploy: $*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 not found"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python >= 3.11 needed (tomllib)"

# --- Go toolchain --------------------------------------------------------------------------
# A go >= 1.21 fetches the toolchain a go.mod asks for by itself (GOTOOLCHAIN=auto); without
# one, download the toolchain module from the Go proxy.
go_ok() {
  command -v go >/dev/null &&
    go env GOVERSION 2>/dev/null | python3 -c '
import re, sys
m = re.match(r"go(\d+)\.(\d+)", sys.stdin.read().strip())
sys.exit(0 if m and (int(m[1]), int(m[2])) >= (1, 21) else 1)'
}
if ! go_ok; then
  go_version=1.25.0
  case "$(uname -m)" in x86_64) go_arch=amd64 ;; aarch64 | arm64) go_arch=arm64 ;; *) die "no Go toolchain for $(uname -m)" ;; esac
  go_root="$tools/go$go_version.linux-$go_arch"
  if [[ ! -x $go_root/bin/go ]]; then
    echo "Go >= 1.21 not found: fetching go$go_version from the Go module proxy into $go_root"
    python3 - "$go_version" "$go_arch" "$go_root" <<'PY'
import io, os, shutil, sys, urllib.request, zipfile
version, arch, dest = sys.argv[1:]
proxy = os.environ.get("GOPROXY", "https://proxy.golang.org").split(",")[0].split("|")[0]
if proxy in ("direct", "off"):
    proxy = "https://proxy.golang.org"
mod = f"v0.0.1-go{version}.linux-{arch}"
with urllib.request.urlopen(f"{proxy}/golang.org/toolchain/@v/{mod}.zip", timeout=600) as r:
    data = r.read()
prefix = f"golang.org/toolchain@{mod}/"
tmp = dest + ".partial"
shutil.rmtree(tmp, ignore_errors=True)
with zipfile.ZipFile(io.BytesIO(data)) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        target = os.path.join(tmp, info.filename[len(prefix):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(z.read(info))
        os.chmod(target, (info.external_attr >> 16) & 0o777 or 0o644)
shutil.rmtree(dest, ignore_errors=True)
os.rename(tmp, dest)
PY
  fi
  export PATH="$go_root/bin:$PATH"
fi
export GOTOOLCHAIN=auto GOFLAGS="-mod=readonly -buildvcs=false"
echo "using $(go version)"

# Builds a Go program once per version of its module files; prints the binary's path.
build_tool() { # name module-dir package [ldflags]
  local name=$1 dir=$2 pkg=$3 ldflags=${4:-} hash bin
  hash=$(cat "$dir"/go.mod "$dir"/go.sum "$dir"/*.go | sha256sum | cut -c1-16)
  bin="$tools/$name-$hash"
  if [[ ! -x $bin ]]; then
    echo "building $name (first run: downloads its modules and compiles)..." >&2
    (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$bin.partial" "$pkg") >&2
    mv "$bin.partial" "$bin"
  fi
  echo "$bin"
}

# --- 1. Prometheus ---------------------------------------------------------------------------
step "Prometheus: configuration, alert rules and their unit tests"
promtool=$(build_tool promtool deploy/prometheus/promtool github.com/prometheus/prometheus/cmd/promtool \
  "-X github.com/prometheus/common/version.Version=3.7.3")
"$promtool" --version | head -1
"$promtool" check config deploy/prometheus/prometheus.yml
"$promtool" check rules deploy/prometheus/alerts.yml
"$promtool" test rules deploy/prometheus/alerts_test.yml

# --- 2. Kubernetes ---------------------------------------------------------------------------
step "Kubernetes: strict decoding, kustomize build and references of deploy/k8s"
validate=$(build_tool k8s-validate deploy/k8s/validate .)
"$validate" deploy/k8s

step "ScyllaDB: deploy/scylla/scylla-cluster.yaml against deploy/k8s/config.yaml"
"$validate" -scylla deploy/scylla/scylla-cluster.yaml deploy/k8s

# --- 3. Grafana ------------------------------------------------------------------------------
step "Grafana: deploy/grafana/core-dashboard.json"
python3 -m json.tool deploy/grafana/core-dashboard.json >/dev/null
echo "valid JSON (python3 -m json.tool)"
promql_rules=$(mktemp --suffix=.yml)
trap 'rm -f "$promql_rules"' EXIT
python3 - deploy/grafana/core-dashboard.json deploy/prometheus/alerts.yml "$promql_rules" <<'PY'
import json, pathlib, re, sys
dash_path, alerts_path, rules_out = sys.argv[1:]
d = json.load(open(dash_path))
problems = []
if not 36 <= d.get("schemaVersion", 0) <= 41:
    problems.append(f"schemaVersion {d.get('schemaVersion')} (expected about 39)")
variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
if variables.get("datasource", {}).get("type") != "datasource":
    problems.append("no datasource template variable named 'datasource'")
panels = []
for p in d["panels"]:
    panels.append(p)
    panels.extend(p.get("panels", []))
ids = [p.get("id") for p in panels]
dupes = sorted({i for i in ids if ids.count(i) > 1 or i is None}, key=str)
if dupes:
    problems.append(f"duplicate or missing panel ids: {dupes}")
cells = {}
for p in panels:
    g = p.get("gridPos") or {}
    if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] + g["w"] > 24 or g["w"] < 1 or g["h"] < 1:
        problems.append(f"panel {p.get('id')} '{p.get('title')}': bad gridPos {g}")
        continue
    for x in range(g["x"], g["x"] + g["w"]):
        for y in range(g["y"], g["y"] + g["h"]):
            if (x, y) in cells:
                problems.append(f"panel {p['id']} overlaps panel {cells[(x, y)]}")
                break
            cells[(x, y)] = p["id"]
        else:
            continue
        break
exprs = []
for p in panels:
    if p.get("type") == "row":
        continue
    if p.get("datasource", {}).get("uid") != "${datasource}":
        problems.append(f"panel {p['id']} '{p['title']}' does not use the ${{datasource}} variable")
    if not p.get("targets"):
        problems.append(f"panel {p['id']} '{p['title']}' has no query")
    for t in p.get("targets", []):
        exprs.append((f"panel {p['id']} '{p['title']}' {t.get('refId')}", t["expr"]))
# Metric names must be ones core-api exports (string literals in core-api/src) or DCGM's.
exported = set()
for f in pathlib.Path("core-api/src").rglob("*.rs"):
    exported |= set(re.findall(r'"(reco_[a-z0-9_]+)"', f.read_text()))
used = set()
for text in [e for _, e in exprs] + [pathlib.Path(alerts_path).read_text()]:
    for name in re.findall(r"\b(reco_[a-z0-9_]+)", text):
        used.add(re.sub(r"_(bucket|sum|count)$", "", name) if name not in exported else name)
missing = sorted(n for n in used if n not in exported)
if missing:
    problems.append(f"metrics not exported by core-api (core-api/src): {missing}")
# PromQL syntax: every query as a recording rule, for promtool check rules.
subst = {"$__rate_interval": "5m", "$__interval": "1m", "$job": ".+", "$route": "/v1/recommendations"}
rules = []
for i, (where, e) in enumerate(exprs):
    for k, v in subst.items():
        e = e.replace(k, v)
    if "$" in e:
        problems.append(f"{where}: unknown variable in {e!r}")
    rules.append({"record": f"dashboard:query_{i}", "expr": e})
pathlib.Path(rules_out).write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
for p in problems:
    print("error:", p, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"{len(panels)} panels with unique ids and non-overlapping gridPos, schemaVersion {d['schemaVersion']}, "
      f"datasource variable used by every panel; {len(used)} reco_* metrics, all exported by core-api")
print(f"PromQL of the {len(exprs)} dashboard queries, checked by promtool:")
PY
"$promtool" check rules "$promql_rules" | sed 's/^/  /'

# --- 4. Docker -------------------------------------------------------------------------------
step "Docker: deploy/docker/Dockerfile and .dockerignore"
python3 - deploy/docker/Dockerfile .dockerignore <<'PY'
import fnmatch, pathlib, re, sys
dockerfile, ignore_file = sys.argv[1:]
text = pathlib.Path(dockerfile).read_text()
lines = re.sub(r"\\\n", " ", text).splitlines()
ignore = [l.strip().rstrip("/") for l in pathlib.Path(ignore_file).read_text().splitlines()
          if l.strip() and not l.startswith("#")]
problems, notes, copied = [], [], 0
sources = set()
known = {"FROM", "RUN", "COPY", "ADD", "WORKDIR", "ENV", "ARG", "USER", "EXPOSE", "ENTRYPOINT", "CMD",
         "LABEL", "HEALTHCHECK", "VOLUME", "STOPSIGNAL", "SHELL", "ONBUILD"}
froms = []
for n, line in enumerate(lines, 1):
    s = line.strip()
    if not s or s.startswith("#"):
        continue
    word, _, rest = s.partition(" ")
    if word.upper() not in known:
        problems.append(f"line {n}: unknown instruction {word}")
    if word.upper() == "FROM":
        froms.append(rest.split()[0])
    if word.upper() == "COPY" and "--from=" not in rest:
        args = [a for a in rest.split() if not a.startswith("--")]
        for src in args[:-1]:
            copied += 1
            sources.add(src.rstrip("/"))
            if any(fnmatch.fnmatch(src, pat) or src == pat or src.startswith(pat + "/") for pat in ignore):
                problems.append(f"line {n}: COPY {src} is excluded by {ignore_file}")
            if not pathlib.Path(src).exists():
                if src.startswith("models/"):
                    notes.append(f"{src} is absent: run scripts/fetch-model.sh before docker build")
                else:
                    problems.append(f"line {n}: COPY source {src} does not exist")
# cargo loads the whole workspace: every member's manifest and sources must be in the image.
members = re.search(r"^members\s*=\s*\[(.*?)\]", pathlib.Path("Cargo.toml").read_text(), re.S | re.M)
for member in re.findall(r'"([^"]+)"', members.group(1) if members else ""):
    if member not in sources:
        problems.append(f"workspace member {member} is not copied (COPY {member} {member})")
if froms[:2] != ["rust:1.91-bookworm", "debian:bookworm-slim"]:
    problems.append(f"base images {froms}, expected rust:1.91-bookworm then debian:bookworm-slim")
for want in ("cargo build --release --locked -p core-api", "EXPOSE 8080 8081", "USER 10001"):
    if want not in text:
        problems.append(f"missing '{want}'")
for p in problems:
    print("error:", p, file=sys.stderr)
if problems:
    sys.exit(1)
for note in notes:
    print("note:", note)
print(f"{len(lines)} lines, known instructions; {copied} COPY sources exist in the context and are not "
      f"excluded by {ignore_file}; stages {' -> '.join(froms)} (not built: no Docker engine here)")
PY

# --- 5. Capacity ---------------------------------------------------------------------------
step "Capacity sheet (python3 deploy/capacity.py)"
python3 deploy/capacity.py
python3 deploy/capacity.py --check

step "deploy/ checks passed"
