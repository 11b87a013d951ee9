"""Embedded Qdrant (qdrant-edge-py) on the sparse half of `cargo xtask bench sparse`.

The same 100k WordNet passages and keyword queries as Braid's half: a shard with a
sparse space `bm25` (modifier IDF) holding the vectors qdrant-edge's own BM25 model
(`Bm25`, Qdrant's defaults) makes of each passage; each keyword query is embedded by
that model and searched for its top 10, one call at a time on one thread (the
embedding inside the timed call, as Braid's document queries embed theirs). Reports
QPS and latency, and how often its top-10 equals Braid's (same model, same IDF:
they should, up to the order of equal scores). Writes sparse-qdrant.json.
"""

import argparse
import json
import shutil
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--braid", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--min-secs", type=float, default=5.0)
    args = ap.parse_args()
    import qdrant_edge as q

    texts = [json.loads(line)["text"] for line in open(f"{args.data}/out.jsonl")]
    queries = open(args.queries).read().split("\n")
    braid = json.load(open(args.braid))
    bm25 = q.Bm25(q.Bm25Config())

    path = tempfile.mkdtemp(prefix="braid-bench-qdrant-sparse-")
    config = q.EdgeConfig(sparse_vectors={"bm25": q.EdgeSparseVectorParams(modifier=q.Modifier.Idf)})
    shard = q.EdgeShard.create(path, config)
    t0 = time.perf_counter()
    for start in range(0, len(texts), 1000):
        points = [q.Point(i, {"bm25": bm25.embed_document(texts[i])}, {}) for i in range(start, min(start + 1000, len(texts)))]
        shard.update(q.UpdateOperation.upsert_points(points))
    ingest = time.perf_counter() - t0
    t0 = time.perf_counter()
    shard.optimize()
    index = time.perf_counter() - t0

    def search(text):
        res = shard.query(q.QueryRequest(limit=10, query=q.Query.Nearest(bm25.embed_query(text), using="bm25")))
        return [int(p.id) for p in res]

    found = [search(t) for t in queries]
    lat = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < args.min_secs or not lat:
        for t in queries:
            s = time.perf_counter()
            search(t)
            lat.append((time.perf_counter() - s) * 1e6)
    total = time.perf_counter() - t0
    lat.sort()
    pct = lambda p: lat[min(int(len(lat) * p), len(lat) - 1)]
    same = sum(1 for a, b in zip(found, braid["top10"]) if a == b)
    same_sets = sum(1 for a, b in zip(found, braid["top10"]) if set(a) == set(b))
    overlap = sum(len(set(a) & set(b)) / max(len(b), 1) for a, b in zip(found, braid["top10"])) / len(found)
    out = {"system": "qdrant-edge-py 0.9.0", "ingest_s": ingest, "optimize_s": index, "qps": len(lat) / total,
           "p50_us": pct(0.5), "p99_us": pct(0.99), "same_top10": same, "same_top10_sets": same_sets,
           "overlap": overlap, "queries": len(found)}
    json.dump(out, open(args.out, "w"), indent=2)
    print(f"qdrant-edge: ingest {ingest:.1f} s + optimize {index:.1f} s, {out['qps']:.0f} QPS, p50 {pct(0.5):.0f} µs, "
          f"p99 {pct(0.99):.0f} µs; top-10 equal to Braid's {same}/{len(found)} (as sets {same_sets}), overlap {overlap:.1%}")
    shard.close()
    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
