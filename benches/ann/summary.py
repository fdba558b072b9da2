"""Prints the ANN part of RESULTS.md: for each ANN results file that exists, its date line and
its QPS-at-equal-recall tables (the ratios against hnswlib measured in that file's own run).

usage: python3 benches/ann/summary.py benches/RESULTS-ann.md benches/RESULTS-ann-minilm.md
"""
import pathlib
import sys

out = ["## ANN search beside hnswlib and faiss", "",
       "From the latest `benches/ann/run.sh` runs (each file has every measured point and a plot). On this",
       "shared 2-core machine repeated runs have differed by tens of percent per library; rounds within a",
       "run are interleaved so that drifts hit every library alike, but ratios near 1.0 can flip between runs.", ""]
for path in map(pathlib.Path, sys.argv[1:]):
    if not path.exists():
        out += [f"- `{path.name}`: not measured yet (`benches/ann/run.sh`).", ""]
        continue
    lines = path.read_text().splitlines()
    title = lines[0].lstrip("# ")
    written = next((l for l in lines if l.startswith("Written by")), "")
    out += [f"### {title} (`{path.name}`)", "", written.split(";")[0] + ".", ""]
    # The targets, read back from this file's own tables.
    targets = []
    header = None
    threads = None
    for line in lines:
        if line.startswith("QPS at equal recall"):
            threads = line.split(" with ")[1].split(" search")[0] if " with " in line else "1"
        elif line.startswith("| recall@10 |"):
            header = [c.strip() for c in line.strip("|").split("|")]
        elif header and line.startswith("| 0.95 |"):
            cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
            fp16 = cells.get("ours (compact FP16)", "n/a")
            if fp16 != "n/a":
                ratio = float(fp16.split("(")[1].rstrip("x)"))
                verdict = (f"target >= 1.0x: {'met' if ratio >= 1.0 else 'missed'}" if threads == "1"
                           else "the target is single-threaded; for reference")
                targets.append(f"- QPS at recall@10 0.95 with {threads} thread(s), FP16 index vs hnswlib: {ratio:.2f}x ({verdict})")
            header = None
        elif line.startswith("- FP16 on the same graph:"):
            mem = float(line.split(": ")[1].split("%")[0])
            loss = float(line.split("values ")[1].split(" points")[0])
            targets.append(f"- FP16 memory {mem:.0f}% of FP32 (target <= 55%: {'met' if mem <= 55 else 'missed'}), "
                           f"recall loss {loss:+.2f} points (target < 0.5: {'met' if loss < 0.5 else 'missed'})"
                           + ("; FP16 halves the vectors only, and the links, the same at every precision, weigh"
                              " more against short vectors" if mem > 55 else ""))
    if targets:
        out += ["Against the targets:", ""] + targets + [""]
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
