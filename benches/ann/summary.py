"""Prints the ANN part of RESULTS.md: for each ANN results file that exists, its date line and
its QPS-at-equal-recall tables (the ratios against hnswlib measured in that file's own run).

usage: python3 benches/ann/summary.py benches/RESULTS-ann.md benches/RESULTS-ann-minilm.md
"""
import pathlib
import sys

out = ["## ANN search beside hnswlib, faiss and usearch", "",
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
    out += [f"### {title} (`{path.name}`)", "", "; ".join(written.split("; ")[:2]) + ".", ""]
    # The targets, read back from this file's own tables.
    targets = []
    section = None
    for line in lines:
        if line.startswith("Our FP16 search against the fastest peer"):
            section = ("search", line.split(", ")[-1].split(" search")[0])
        elif line.startswith("Build (the index"):
            section = ("build", None)
        elif line.startswith("QPS at equal recall") or line.startswith("Index size") or line.startswith("Filtered"):
            section = None
        elif section and section[0] == "search" and line.startswith("| 0.95 |"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            ratio = float(cells[4].rstrip("x"))
            targets.append(f"- FP16 search at recall@10 0.95, {section[1]} search thread(s): {ratio:.2f}x the "
                           f"fastest peer ({cells[2]}) (target >= 1.2x: {'met' if ratio >= 1.2 else 'missed'})")
        elif section and section[0] == "build" and line.startswith("| ours |"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            ratio = float(cells[4].rstrip("x"))
            growth = float(cells[5].rsplit("(", 1)[1].rstrip("x)"))
            targets.append(f"- build on {cells[1]} thread(s): {ratio:.2f}x hnswlib's throughput (target >= 1.0x: "
                           f"{'met' if ratio >= 1.0 else 'missed'}), peak memory growth {growth:.2f}x the index "
                           f"(target <= 1.5x: {'met' if growth <= 1.5 else 'missed'})")
        elif line.startswith("- FP16 on the same graph:"):
            mem = float(line.split(": ")[1].split("%")[0])
            loss = float(line.split("values ")[1].split(" points")[0])
            targets.append(f"- FP16 memory {mem:.0f}% of FP32, recall loss {loss:+.2f} points (target < 0.5: "
                           f"{'met' if loss < 0.5 else 'missed'})")
    # The INT8 walk with an FP16 re-rank (`index.precision = "int8-rerank"`), from the
    # equal-recall tables: its queries/s at 0.95 against the fastest peer's.
    header, threads = None, None
    for line in lines:
        if line.startswith("QPS at equal recall"):
            threads = line.split("with ")[1].split(" search")[0]
        elif threads and line.startswith("| recall@10 |"):
            header = [c.strip() for c in line.strip("|").split("|")]
        elif threads and header and line.startswith("| 0.95 |"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            qps = {lib: float(c.split()[0]) for lib, c in zip(header, cells) if c != "n/a"}
            rerank = next((lib for lib in qps if "re-rank" in lib), None)
            peers = [lib for lib in qps if lib != "recall@10" and not lib.startswith(("ours", "hnsw_rs"))]
            if rerank and peers:
                best = max(peers, key=qps.get)
                ratio = qps[rerank] / qps[best]
                targets.append(f"- INT8 walk + FP16 re-rank search at recall@10 0.95, {threads} search thread(s): "
                               f"{ratio:.2f}x the fastest peer ({best}) (target >= 1.2x: "
                               f"{'met' if ratio >= 1.2 else 'missed'})")
            header, threads = None, None
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
