"""HNSW peers beside Braid, on the same data, in the same run (`cargo xtask bench hnsw`).

Reads the data Braid's bench used (the .npy files of ../shared/data or the synthetic set
the bench wrote), builds hnswlib, FAISS IndexHNSWFlat and usearch with the same M and
ef_construction, sweeps ef with single-threaded search, and writes:
  - hnsw-peers.json: every figure,
  - hnsw.md: the table for docs/benchmarks.md, Braid's row first,
  - hnsw.png: recall@10 against QPS for all four.
"""

import argparse
import json
import os
import time

import numpy as np

EFS = [10, 16, 24, 32, 48, 64, 96, 128, 256]
K = 10


def recall(found, truth):
    hits = sum(len(set(f[:K]) & set(t[:K])) for f, t in zip(found, truth))
    return hits / (len(truth) * K)


def sweep(search_one, search_batch, queries, truth, min_secs):
    rows = []
    for ef in EFS:
        found = [search_one(q, ef) for q in queries]
        r = recall(found, truth)
        t0 = time.perf_counter()
        done = 0
        while time.perf_counter() - t0 < min_secs or done == 0:
            for q in queries:
                search_one(q, ef)
            done += len(queries)
        qps = done / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        done = 0
        while time.perf_counter() - t0 < min_secs or done == 0:
            search_batch(queries, ef)
            done += len(queries)
        batch_qps = done / (time.perf_counter() - t0)
        rows.append({"ef": ef, "recall": r, "qps": qps, "batch_qps": batch_qps})
        print(f"  ef={ef:>3} recall {r:.4f} qps {qps:8.0f} batched {batch_qps:8.0f}", flush=True)
    return rows


def qps_at(rows, target, key="qps"):
    """QPS at a recall target, interpolated linearly between the bracketing ef values."""
    for lo, hi in zip(rows, rows[1:]):
        if lo["recall"] < target <= hi["recall"]:
            f = (target - lo["recall"]) / (hi["recall"] - lo["recall"])
            return lo[key] + f * (hi[key] - lo[key])
    if rows and rows[0]["recall"] >= target:
        return rows[0][key]
    return None


def run_hnswlib(base, queries, truth, m, efc, min_secs):
    import hnswlib

    out = {"peer": "hnswlib", "version": getattr(hnswlib, "__version__", "0.8.0")}
    for threads in (1, 2):
        index = hnswlib.Index(space="ip", dim=base.shape[1])
        index.init_index(max_elements=len(base), ef_construction=efc, M=m, random_seed=42)
        index.set_num_threads(threads)
        t0 = time.perf_counter()
        index.add_items(base, np.arange(len(base)))
        out[f"build_s_{threads}"] = time.perf_counter() - t0
    index.set_num_threads(1)

    def one(q, ef):
        index.set_ef(ef)
        return index.knn_query(q, k=K)[0][0].tolist()

    def batch(qs, ef):
        index.set_ef(ef)
        return index.knn_query(qs, k=K)

    out["sweep"] = sweep(one, batch, queries, truth, min_secs)
    return out


def run_faiss(base, queries, truth, m, efc, min_secs):
    import faiss

    out = {"peer": "faiss IndexHNSWFlat", "version": faiss.__version__}
    for threads in (1, 2):
        faiss.omp_set_num_threads(threads)
        index = faiss.IndexHNSWFlat(base.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = efc
        t0 = time.perf_counter()
        index.add(base)
        out[f"build_s_{threads}"] = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)

    def one(q, ef):
        index.hnsw.efSearch = ef
        return index.search(q[None, :], K)[1][0].tolist()

    def batch(qs, ef):
        index.hnsw.efSearch = ef
        return index.search(qs, K)

    out["sweep"] = sweep(one, batch, queries, truth, min_secs)
    return out


def run_usearch(base, queries, truth, m, efc, min_secs):
    import usearch
    from usearch.index import Index

    out = {"peer": "usearch", "version": usearch.__version__}
    keys = np.arange(len(base), dtype=np.uint64)
    for threads in (1, 2):
        index = Index(ndim=base.shape[1], metric="ip", dtype="f32", connectivity=m, expansion_add=efc)
        t0 = time.perf_counter()
        index.add(keys, base, threads=threads)
        out[f"build_s_{threads}"] = time.perf_counter() - t0

    def one(q, ef):
        index.expansion_search = ef
        return index.search(q, K, threads=1).keys.tolist()

    def batch(qs, ef):
        index.expansion_search = ef
        return index.search(qs, K, threads=1)

    out["sweep"] = sweep(one, batch, queries, truth, min_secs)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--braid", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--min-secs", type=float, default=1.0)
    a = p.parse_args()
    braid = json.load(open(a.braid))
    data = braid["data_dir"]
    base = np.ascontiguousarray(np.load(os.path.join(data, "out.npy")), dtype=np.float32)
    queries = np.ascontiguousarray(np.load(os.path.join(data, "queries.npy")), dtype=np.float32)
    truth = np.load(os.path.join(data, "gt.npy"))[:, :K].tolist()
    m, efc = braid["m"], braid["ef_construct"]
    peers = []
    for run in (run_hnswlib, run_faiss, run_usearch):
        print(f"{run.__name__[4:]}:", flush=True)
        peers.append(run(base, queries, truth, m, efc, a.min_secs))
    json.dump(peers, open(os.path.join(a.out_dir, "hnsw-peers.json"), "w"), indent=1)

    hnswlib_row = peers[0]
    lines = [
        f"Data: {braid['data']}. M = {m}, ef_construction = {efc}, inner product, k = 10, "
        f"{len(queries)} queries, one thread for search. Peers are called from Python: the "
        "one-query-per-call figure includes a few µs of Python overhead, the batched figure "
        "(one call for all queries, one thread) mostly removes it. Braid is called from Rust, "
        "one query per call.",
        "",
        "| system | build s (1 thr) | build s (2 thr) | QPS @ R0.90 | QPS @ R0.95 | QPS @ R0.99 |",
        "|---|---|---|---|---|---|",
    ]

    def fmt(x):
        return "—" if x is None else f"{x:,.0f}"

    bs = braid["sweep"]
    lines.append(
        f"| **Braid** | {braid['build_s_1thread']:.2f} | {braid['build_s_2threads']:.2f} | "
        f"{fmt(qps_at(bs, 0.90))} | {fmt(qps_at(bs, 0.95))} | {fmt(qps_at(bs, 0.99))} |"
    )
    for peer in peers:
        s = peer["sweep"]
        lines.append(
            f"| {peer['peer']} {peer['version']} | {peer['build_s_1']:.2f} | {peer['build_s_2']:.2f} | "
            f"{fmt(qps_at(s, 0.90))} / {fmt(qps_at(s, 0.90, 'batch_qps'))} batched | "
            f"{fmt(qps_at(s, 0.95))} / {fmt(qps_at(s, 0.95, 'batch_qps'))} batched | "
            f"{fmt(qps_at(s, 0.99))} / {fmt(qps_at(s, 0.99, 'batch_qps'))} batched |"
        )
    lines += ["", "Per ef: recall@10 / QPS (one query per call; peers also batched)", ""]
    lines.append("| system | " + " | ".join(f"ef={e}" for e in EFS) + " |")
    lines.append("|---|" + "---|" * len(EFS))
    lines.append("| Braid | " + " | ".join(f"{r['recall']:.4f} / {r['qps']:,.0f}" for r in bs) + " |")
    for peer in peers:
        lines.append(
            f"| {peer['peer']} | "
            + " | ".join(f"{r['recall']:.4f} / {r['qps']:,.0f} / {r['batch_qps']:,.0f}" for r in peer["sweep"])
            + " |"
        )
    b95, h95 = qps_at(bs, 0.95), qps_at(hnswlib_row["sweep"], 0.95, "batch_qps")
    f95 = qps_at(peers[1]["sweep"], 0.95, "batch_qps")
    lines += [
        "",
        f"Ratios at recall 0.95 (against the peers' batched figures): Braid / hnswlib = "
        f"{(b95 / h95) if b95 and h95 else float('nan'):.2f}, Braid / FAISS = {(b95 / f95) if b95 and f95 else float('nan'):.2f}; "
        f"build time Braid / hnswlib (1 thread) = {braid['build_s_1thread'] / hnswlib_row['build_s_1']:.2f}, "
        f"(2 threads) = {braid['build_s_2threads'] / hnswlib_row['build_s_2']:.2f}.",
    ]
    open(os.path.join(a.out_dir, "hnsw.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot([r["recall"] for r in bs], [r["qps"] for r in bs], "o-", label="Braid (Rust, per query)", linewidth=2)
    for peer in peers:
        s = peer["sweep"]
        ax.plot([r["recall"] for r in s], [r["batch_qps"] for r in s], "s--", label=f"{peer['peer']} (batched)")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries per second (1 thread)")
    ax.set_yscale("log")
    ax.set_title(f"HNSW, M={m}, ef_construction={efc}, n={braid['n']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(a.out_dir, "hnsw.png"), dpi=110)


if __name__ == "__main__":
    main()
