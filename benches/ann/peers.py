"""Measures hnswlib, faiss HNSW and usearch (f32 and f16 vectors) on a prepared data set (see prepare_glove.py) with the same
parameters as our index: M=16, ef_construction=200, inner product. Every measurement is
repeated for each search thread count (queries spread over the threads by the library itself).
Prints one JSON object per (library, threads, ef) with recall@10 and queries/s (median of rounds).

With --index-dir DIR each index is saved there after its build and loaded from there by later
invocations (the build time recorded with it), so benches/ann/run.sh can interleave short
measuring rounds of every library instead of measuring one library after the other.

usage: python3 peers.py DATA_DIR --efs 10,20,40,80,120,200 --rounds 3 --build-threads 2 --threads 1,2
                        [--index-dir DIR] [--libs hnswlib,faiss,usearch,usearch-f16]
"""
import json
import pathlib
import statistics
import sys
import time

import numpy as np


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


data = pathlib.Path(sys.argv[1])
meta = json.loads((data / "meta.json").read_text())
dim = meta["dim"]
base = np.fromfile(data / "base.f32", dtype="<f4").reshape(-1, dim)
queries = np.fromfile(data / "queries.f32", dtype="<f4").reshape(-1, dim)
gt = np.fromfile(data / "gt.i32", dtype="<i4").reshape(-1, 10)
efs = [int(e) for e in arg("--efs", "10,20,40,80,120,200").split(",")]
rounds = int(arg("--rounds", "3"))
# hnswlib, the reference for build speed, is built once per listed thread count; the other peers
# on the largest only.
build_thread_list = [int(t) for t in arg("--build-threads", "2").split(",")]
build_threads = max(build_thread_list)
thread_counts = [int(t) for t in arg("--threads", "1").split(",")]
index_dir = pathlib.Path(arg("--index-dir", "")) if "--index-dir" in sys.argv else None


def report_build(lib, threads, seconds):
    print(json.dumps({"library": lib, "build_threads": threads, "build_seconds": seconds,
                      "vectors": len(base)}), flush=True)


def cached(name, build, save, load, lib=None):
    """(index, build seconds): loaded from --index-dir when saved there, else built (and saved)."""
    if index_dir and (index_dir / f"{name}.json").exists():
        return load(str(index_dir / f"{name}.bin")), json.loads((index_dir / f"{name}.json").read_text())["build_seconds"]
    t = time.perf_counter()
    index = build()
    build_s = time.perf_counter() - t
    report_build(lib or name, build_threads, build_s)
    if index_dir:
        index_dir.mkdir(parents=True, exist_ok=True)
        save(index, str(index_dir / f"{name}.bin"))
        (index_dir / f"{name}.json").write_text(json.dumps({"build_seconds": build_s}))
    return index, build_s


def recall(found):
    return float(np.mean([len(set(f[:10]) & set(t)) / 10 for f, t in zip(found, gt)]))


def report(lib, ef, threads, found, times, build_s, size_mib):
    print(json.dumps({"library": lib, "ef": ef, "threads": threads, "recall_at_10": recall(found),
                      "qps": len(queries) / statistics.median(times), "build_seconds": build_s,
                      "index_size_mib": size_mib}), flush=True)


def run_hnswlib():
    import hnswlib

    def build(threads=build_threads):
        index = hnswlib.Index(space="ip", dim=dim)
        index.init_index(max_elements=len(base), M=16, ef_construction=200, random_seed=100)
        index.set_num_threads(threads)
        index.add_items(base, np.arange(len(base)))
        return index

    if not (index_dir and (index_dir / "hnswlib.json").exists()):
        for threads in [t for t in build_thread_list if t != build_threads]:
            t = time.perf_counter()
            build(threads)
            report_build("hnswlib", threads, time.perf_counter() - t)

    def load(path):
        index = hnswlib.Index(space="ip", dim=dim)
        index.load_index(path, max_elements=len(base))
        return index

    index, build_s = cached("hnswlib", build, lambda index, path: index.save_index(path), load)
    mem = index.index_file_size() / 2**20
    for threads, ef in [(t, e) for t in thread_counts for e in efs]:
        index.set_ef(ef)
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            labels, _ = index.knn_query(queries, k=10, num_threads=threads)
            times.append(time.perf_counter() - t)
        report("hnswlib", ef, threads, labels, times, build_s, mem)


def run_faiss():
    import faiss
    faiss.omp_set_num_threads(build_threads)

    def build():
        index = faiss.IndexHNSWFlat(dim, 16, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 200
        index.add(base)
        return index

    index, build_s = cached("faiss", build, faiss.write_index, faiss.read_index, "faiss-hnsw")
    mem = faiss.serialize_index(index).nbytes / 2**20
    for threads, ef in [(t, e) for t in thread_counts for e in efs]:
        faiss.omp_set_num_threads(threads)
        index.hnsw.efSearch = ef
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            _, labels = index.search(queries, 10)
            times.append(time.perf_counter() - t)
        report("faiss-hnsw", ef, threads, labels, times, build_s, mem)


def run_usearch(dtype):
    from usearch.index import Index

    def make():
        return Index(ndim=dim, metric="ip", dtype=dtype, connectivity=16, expansion_add=200)

    def build():
        index = make()
        index.add(np.arange(len(base)), base, threads=build_threads)
        return index

    def load(path):
        index = make()
        index.load(path)
        return index

    index, build_s = cached(f"usearch-{dtype}", build, lambda index, path: index.save(path), load,
                            f"usearch ({dtype})")
    mem = index.memory_usage / 2**20
    for threads, ef in [(t, e) for t in thread_counts for e in efs]:
        index.expansion_search = ef
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            matches = index.search(queries, 10, threads=threads)
            times.append(time.perf_counter() - t)
        report(f"usearch ({dtype})", ef, threads, matches.keys, times, build_s, mem)


def run_hnswlib_filtered(shares):
    """hnswlib's own filtered search (a Python callback per visited node, so its queries/s are
    not comparable; recall is), on the first 500 queries, for filter_gt.py's subsets."""
    import hnswlib
    index = hnswlib.Index(space="ip", dim=dim)
    if index_dir and (index_dir / "hnswlib.json").exists():
        index.load_index(str(index_dir / "hnswlib.bin"), max_elements=len(base))
    else:
        index.init_index(max_elements=len(base), M=16, ef_construction=200, random_seed=100)
        index.set_num_threads(build_threads)
        index.add_items(base, np.arange(len(base)))
    n_q = min(500, len(queries))
    for share in shares:
        mask = ((np.arange(len(base), dtype=np.uint64) * 2654435761) % 2**32) / 2**32 < float(share)
        truth = np.fromfile(data / f"gt-filter-{share}.i32", dtype="<i4").reshape(-1, 10)[:n_q]
        allowed = mask.tolist()
        for ef in [int(e) for e in arg("--filter-efs", "100").split(",")]:
            index.set_ef(ef)
            hits = total = 0
            t = time.perf_counter()
            for q, gt_row in zip(queries[:n_q], truth):
                wanted = {int(x) for x in gt_row if x >= 0}
                k = min(10, int(mask.sum()))
                try:
                    labels, _ = index.knn_query(q, k=k, num_threads=1, filter=lambda label: allowed[label])
                    found = set(int(x) for x in labels[0])
                except RuntimeError:  # fewer than k admitted items reached
                    found = set()
                hits += len(found & wanted)
                total += len(wanted)
            elapsed = time.perf_counter() - t
            print(json.dumps({"library": "hnswlib (filter callback)", "filter_share": float(share),
                              "admitted": int(mask.sum()), "ef": ef, "threads": 1, "queries": n_q,
                              "recall_at_10": hits / max(total, 1), "qps": n_q / elapsed}), flush=True)


if "--filters" in sys.argv:
    run_hnswlib_filtered(arg("--filters", "").split(","))
    sys.exit(0)

libraries = {"hnswlib": run_hnswlib, "faiss": run_faiss,
             "usearch": lambda: run_usearch("f32"), "usearch-f16": lambda: run_usearch("f16")}
for lib in arg("--libs", "hnswlib,faiss,usearch,usearch-f16").split(","):
    libraries[lib]()
