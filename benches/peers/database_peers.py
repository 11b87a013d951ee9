"""Embedded Qdrant (qdrant-edge-py) and Chroma beside Braid on the same WordNet/MiniLM
files, in the same run (`cargo xtask bench database`).

Same protocol as Braid's half (crates/braid/benches/database.rs): cosine, HNSW m = 16,
ef_construct = 200, keyword indexes on `category` and `pos`, k = 10, one query per
call on one thread, recall@10 against filtered brute force computed here with numpy.
Writes database-peers.json and database.md (the table, Braid's row first).
"""

import argparse
import json
import os
import shutil
import tempfile
import time

import numpy as np

K = 10
CASES = [
    ("default (ef = ef_construct = 200)", None, None),
    ("ef = 64", None, 64),
    ("ef = 96", None, 96),
    ("ef = 128", None, 128),
    ("filter ~1 %: category = verb.social", ("category", "verb.social"), None),
    ("filter ~10 %: pos = verb", ("pos", "verb"), None),
]


def truth(base, queries, payloads, flt):
    mask = np.ones(len(base), dtype=bool) if flt is None else np.array([p[flt[0]] == flt[1] for p in payloads])
    idx = np.nonzero(mask)[0]
    scores = queries @ base[idx].T
    top = np.argsort(-scores, axis=1)[:, :K]
    return [set(idx[row].tolist()) for row in top], mask.mean()


def timed(search, queries, min_secs):
    found = [search(q) for q in queries]
    t0 = time.perf_counter()
    done = 0
    while time.perf_counter() - t0 < min_secs or done == 0:
        for q in queries:
            search(q)
        done += len(queries)
    return found, done / (time.perf_counter() - t0)


def run_qdrant(base, queries, payloads, truths, min_secs):
    import qdrant_edge as q

    path = tempfile.mkdtemp(prefix="braid-bench-qdrant-")
    hnsw = q.HnswIndexConfig(m=16, ef_construct=200, full_scan_threshold=10000)
    config = q.EdgeConfig(vectors={"text": q.EdgeVectorParams(size=base.shape[1], distance=q.Distance.Cosine, hnsw_config=hnsw)})
    shard = q.EdgeShard.create(path, config)
    t0 = time.perf_counter()
    for key in ("category", "pos"):
        shard.update(q.UpdateOperation.create_field_index(key, q.PayloadSchemaType.Keyword))
    for start in range(0, len(base), 1000):
        points = [q.Point(i, {"text": base[i].tolist()}, payloads[i]) for i in range(start, min(start + 1000, len(base)))]
        shard.update(q.UpdateOperation.upsert_points(points))
    ingest = time.perf_counter() - t0
    t0 = time.perf_counter()
    shard.optimize()
    index = time.perf_counter() - t0
    rows = []
    for (name, flt, ef), (tr, sel) in zip(CASES, truths):
        filt = None if flt is None else q.Filter(must=[q.FieldCondition(key=flt[0], match=q.MatchValue(flt[1]))])
        params = q.SearchParams(hnsw_ef=ef) if ef else None

        def search(v):
            res = shard.query(q.QueryRequest(limit=K, query=q.Query.Nearest(v.tolist(), using="text"), filter=filt, params=params))
            return [int(p.id) for p in res]

        found, qps = timed(search, queries, min_secs)
        rec = sum(len(set(f) & t) for f, t in zip(found, tr)) / (K * len(tr))
        rows.append({"case": name, "selectivity": sel, "recall": rec, "qps": qps})
        print(f"  qdrant-edge {name}: recall {rec:.4f} qps {qps:.0f}", flush=True)
    shard.close()
    shutil.rmtree(path, ignore_errors=True)
    return {"peer": "qdrant-edge", "version": "0.9.0", "ingest_s": ingest, "index_s": index, "rows": rows}


def run_chroma(base, queries, payloads, truths, min_secs):
    import chromadb

    path = tempfile.mkdtemp(prefix="braid-bench-chroma-")
    client = chromadb.PersistentClient(path=path)
    coll = client.create_collection(
        "wordnet", metadata={"hnsw:space": "ip", "hnsw:M": 16, "hnsw:construction_ef": 200, "hnsw:search_ef": 200}
    )
    t0 = time.perf_counter()
    for start in range(0, len(base), 5000):
        end = min(start + 5000, len(base))
        coll.add(ids=[str(i) for i in range(start, end)], embeddings=base[start:end], metadatas=payloads[start:end])
    ingest = time.perf_counter() - t0
    rows = []
    for (name, flt, ef), (tr, sel) in zip(CASES, truths):
        if ef is not None:
            coll.modify(configuration={"hnsw": {"ef_search": ef}})
        where = None if flt is None else {flt[0]: flt[1]}

        def search(v):
            res = coll.query(query_embeddings=[v], n_results=K, where=where)
            return [int(i) for i in res["ids"][0]]

        found, qps = timed(search, queries, min_secs)
        if ef is not None:
            coll.modify(configuration={"hnsw": {"ef_search": 200}})
        rec = sum(len(set(f) & t) for f, t in zip(found, tr)) / (K * len(tr))
        rows.append({"case": name, "selectivity": sel, "recall": rec, "qps": qps})
        print(f"  chroma {name}: recall {rec:.4f} qps {qps:.0f}", flush=True)
    shutil.rmtree(path, ignore_errors=True)
    return {"peer": "chroma", "version": chromadb.__version__, "ingest_s": ingest, "index_s": None, "rows": rows}


# The columns compared at matched recall: the unfiltered ef settings form one group
# (each system at its fastest setting that reaches the recall floor), each filter its own.
GROUPS = [
    ("unfiltered", [i for i, c in enumerate(CASES) if c[1] is None]),
    ("filter ~1 %", [i for i, c in enumerate(CASES) if c[0].startswith("filter ~1 %")]),
    ("filter ~10 %", [i for i, c in enumerate(CASES) if c[0].startswith("filter ~10 %")]),
]
RECALL_FLOOR = 0.99


def best(rows, idx):
    ok = [rows[i] for i in idx if rows[i]["recall"] >= RECALL_FLOOR]
    return max(ok, key=lambda r: r["qps"]) if ok else None


def verdict(name, braid_rows, peer_rows, idx):
    b, p = best(braid_rows, idx), best(peer_rows, idx)
    if b is None or p is None:
        return f"- {name}: no setting reaches recall {RECALL_FLOOR} (Braid: {b is not None}, qdrant-edge: {p is not None})"
    ratio = b["qps"] / p["qps"]
    return (
        f"- {name}: Braid {b['case']} {b['recall']:.4f} / {b['qps']:,.0f} vs qdrant-edge {p['case']} "
        f"{p['recall']:.4f} / {p['qps']:,.0f}: **{ratio:.2f}x** ({'met' if ratio >= 2.0 else 'missed'})"
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--braid", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--min-secs", type=float, default=2.0)
    a = p.parse_args()
    braid = json.load(open(a.braid))
    d = braid["data_dir"]
    base = np.ascontiguousarray(np.load(os.path.join(d, "out.npy")), dtype=np.float32)
    queries = np.ascontiguousarray(np.load(os.path.join(d, "queries.npy")), dtype=np.float32)
    payloads = [{"category": r["category"], "pos": r["pos"]} for r in map(json.loads, open(os.path.join(d, "out.jsonl")))]
    truths = [truth(base, queries, payloads, flt) for _, flt, _ in CASES]
    peers = []
    for run in (run_qdrant, run_chroma):
        try:
            peers.append(run(base, queries, payloads, truths, a.min_secs))
        except Exception as e:  # a peer that fails is reported, not fatal
            print(f"  {run.__name__}: failed: {e!r}", flush=True)
            peers.append({"peer": run.__name__[4:], "error": repr(e)})
    json.dump(peers, open(os.path.join(a.out_dir, "database-peers.json"), "w"), indent=1)
    lines = [
        f"Data: {d} (n = {braid['n']}, {braid['queries']} queries). Cells: recall@10 / QPS, one query per call, one thread.",
        "",
        "| system | ingest s | index s | " + " | ".join(c[0] for c in CASES) + " |",
        "|---|---|---|" + "---|" * len(CASES),
        f"| **Braid** | {braid['ingest_s']:.1f} | (inside ingest) | "
        + " | ".join(f"{r['recall']:.4f} / {r['qps']:,.0f}" for r in braid["rows"])
        + " |",
    ]
    for peer in peers:
        if "error" in peer:
            lines.append(f"| {peer['peer']} | failed: {peer['error']} |")
            continue
        idx = "(inside add)" if peer["index_s"] is None else f"{peer['index_s']:.1f}"
        lines.append(
            f"| {peer['peer']} {peer['version']} | {peer['ingest_s']:.1f} | {idx} | "
            + " | ".join(f"{r['recall']:.4f} / {r['qps']:,.0f}" for r in peer["rows"])
            + " |"
        )
    q = next((p for p in peers if p.get("peer") == "qdrant-edge" and "rows" in p), None)
    if q:
        ratios = [b["qps"] / r["qps"] for b, r in zip(braid["rows"], q["rows"])]
        lines += ["", "Braid QPS / qdrant-edge QPS per column: " + ", ".join(f"{x:.2f}" for x in ratios)]
        lines += ["", "Recall-matched (the target: recall >= 0.99 at >= 2x qdrant-edge's QPS):", ""]
        lines += [verdict(name, braid["rows"], q["rows"], idx) for name, idx in GROUPS]
    open(os.path.join(a.out_dir, "database.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
