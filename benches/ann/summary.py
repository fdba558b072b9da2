"""Prints the ANN part of RESULTS.md: for each ANN results file that exists, its date line and
its QPS-at-equal-recall tables (the ratios against hnswlib measured in that file's own run).

usage: python3 benches/ann/summary.py benches/RESULTS-ann.md benches/RESULTS-ann-minilm.md
"""
import pathlib
import sys

out = ["## ANN search beside hnswlib and faiss", "",
       "From the latest `benches/ann/run.sh` runs (each file has every measured point and a plot):", ""]
for path in map(pathlib.Path, sys.argv[1:]):
    if not path.exists():
        out += [f"- `{path.name}`: not measured yet (`benches/ann/run.sh`).", ""]
        continue
    lines = path.read_text().splitlines()
    title = lines[0].lstrip("# ")
    written = next((l for l in lines if l.startswith("Written by")), "")
    out += [f"### {title} (`{path.name}`)", "", written.split(";")[0] + ".", ""]
    keep = False
    for line in lines:
        if line.startswith("QPS at equal recall"):
            keep = True
        elif keep and not (line.startswith("|") or line == "" or line.startswith("QPS at equal")):
            keep = False
        if keep or line.startswith("- FP16 on the same graph") or line.startswith("- INT8 on the same graph"):
            out.append(line)
    out.append("")
text = "\n".join(out).rstrip() + "\n"
while "\n\n\n" in text:
    text = text.replace("\n\n\n", "\n\n")
print(text, end="")
