"""Peers beside `cargo xtask bench scale`, on the very rows Braid indexed (`--peers`).

The scale bench's build phase leaves a database whose one space holds the N points in
id order: its vector file (`docs/storage.md`, "Vector files": a 64-byte header, then
N rows of `dim` little-endian f32, or f16 for a `--datatype float16` build, widened
here) is the peers' input, so every library indexes the same values, and the bench's `truth.json` and the set's held-out
queries score them. Every point is unit length, so inner product is the Cosine order.

Peers: hnswlib and FAISS IndexHNSWFlat (M 16, ef_construction 200, as Braid), built
with each requested thread count and searched single-threaded, one query per call (as
Braid's sweep), sweeping ef until recall@10 reaches 0.99; FAISS IVF-PQ (the quantized
row: nlist sqrt(N)·4, 48 sub-quantizers of 8 bits, then re-ranked exactly over the
rows by IndexRefineFlat) sweeping nprobe; embedded Qdrant (qdrant-edge-py: the points
upserted 1,000 at a time, then its optimiser builds the HNSW graph, m 16, ef_construct
200, on the threads it chooses; its build time is the upserts plus the optimiser)
sweeping `hnsw_ef`. Memory: the process's resident set before
and after each build (anon only: the mapped rows are page cache, as Braid's are).
Writes the report to `--out` (JSON).

With `--keep-index`, hnswlib's and FAISS HNSWFlat's graphs are written beside the
build (`DIR/peers/`, with their build figures) and read back by later runs on the same
build instead of built again, so that Braid and a peer can be measured in turn several
times (`cargo xtask bench scale -- --reuse --peers …` keeps them); a build holding
other rows (a resumed one: another vector file size) is built afresh.
"""

import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

K = 10
EFS = [10, 16, 24, 32, 40, 48, 56, 64, 96, 128, 192, 256, 384, 512]
NPROBES = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def rss_anon_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return None


def vector_file(db_dir):
    """The bench's database's largest vector file: its one space's rows."""
    return max(glob.glob(os.path.join(db_dir, "c-*", "vectors-*.vec")), key=os.path.getsize)


def rows(path):
    """The space's rows in the vector file `path`, mapped when it holds f32 rows;
    float16 rows (header datatype 1) are widened to f32, so the peers index the values
    Braid stores. uint8 builds are refused: their rows and queries are mapped onto
    0-255 in a Euclid space, which these peers do not model."""
    with open(path, "rb") as f:
        head = f.read(17)
    assert head[:8] == b"BRAIDVEC", path
    dim = int.from_bytes(head[12:16], "little")
    datatype = head[16]
    if datatype not in (0, 1):
        sys.exit(f"{path}: datatype code {datatype}; the peers take float32 or float16 rows")
    dtype, width = (np.float32, 4) if datatype == 0 else (np.float16, 2)
    n = (os.path.getsize(path) - 64) // (width * dim)
    mapped = np.memmap(path, dtype=dtype, mode="r", offset=64, shape=(n, dim))
    return mapped if datatype == 0 else np.asarray(mapped, dtype=np.float32)


def sweep(search_one, knobs, queries, truth, min_secs, name):
    """Single-threaded, one query per call, until recall@10 ≥ 0.99."""
    out = []
    for knob in knobs:
        found = [search_one(q, knob) for q in queries]
        hits = sum(len(set(f[:K]) & set(t[:K])) for f, t in zip(found, truth))
        recall = hits / (len(truth) * K)
        lat = []
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < min_secs or not lat:
            for q in queries:
                a = time.perf_counter()
                search_one(q, knob)
                lat.append(time.perf_counter() - a)
        lat.sort()
        row = {
            name: knob,
            "recall": recall,
            "qps": len(lat) / sum(lat),
            "p50_us": lat[len(lat) // 2] * 1e6,
            "p99_us": lat[round((len(lat) - 1) * 0.99)] * 1e6,
        }
        print(f"  {name} {knob:>4} recall {recall:.4f} {row['qps']:8.0f} QPS p99 {row['p99_us']:.0f} µs", flush=True)
        out.append(row)
        if recall >= 0.99:
            break
    return out


def at(sweep_rows, target):
    """The cheapest point reaching `target` (as the Rust side reports)."""
    return next((r for r in sweep_rows if r["recall"] >= target), None)


def chunks(base, size=100_000):
    """The mapped rows in contiguous blocks: (first row, block)."""
    for start in range(0, len(base), size):
        yield start, np.ascontiguousarray(base[start : start + size])


class Kept:
    """Where a peer's built index is kept between runs (`--keep-index`): `DIR/peers/NAME`
    and its build figures in `NAME.json`, valid for the vector file they were built from
    (its name and size)."""

    def __init__(self, dir, rows_file, name):
        self.path = os.path.join(dir, "peers", name)
        self.meta = self.path + ".json"
        # The build's directory goes with a fresh build, so within it only a resumed
        # build (more rows) changes what the peers index.
        self.rows = {"file": os.path.basename(rows_file), "size": os.path.getsize(rows_file)}

    def builds(self):
        """The kept index's build figures, or None when there is none for these rows."""
        try:
            with open(self.meta) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            return None
        return meta["builds"] if meta.get("rows") == self.rows and os.path.exists(self.path) else None

    def save(self, write, builds):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        # The figures go last and only after the index is whole: a write cut short
        # leaves no figures, so the next run builds again instead of reading it.
        if os.path.exists(self.meta):
            os.remove(self.meta)
        write(self.path)
        with open(self.meta, "w") as f:
            json.dump({"rows": self.rows, "builds": builds}, f)


def built_or_kept(out, threads, build, kept, read, write):
    """The index `build` makes (timed, `timed_builds`), or the one `kept` holds for these
    rows, read by `read(path)`; a fresh build is kept when `kept` is given."""
    builds = kept.builds() if kept else None
    if builds is not None:
        out["builds"] = builds
        out["kept"] = True
        print(f"{out['peer']}: the index kept in {kept.path}, built {builds}", flush=True)
        return read(kept.path)
    index = timed_builds(out, threads, build)
    if kept:
        kept.save(lambda path: write(index, path), out["builds"])
    return index


def timed_builds(out, threads, build):
    """`build(t)` for each thread count, timed, with the resident growth it leaves;
    returns the last index built."""
    index = None
    for t in threads:
        index = None  # the previous build's memory is not this one's
        before = rss_anon_kb()
        t0 = time.perf_counter()
        index = build(t)
        out["builds"][str(t)] = {"build_s": time.perf_counter() - t0, "rss_anon_mib": (rss_anon_kb() - before) / 1024}
        print(f"{out['peer']} build, {t} threads: {out['builds'][str(t)]}", flush=True)
    return index


def hnswlib_peer(base, queries, truth, threads, min_secs, kept):
    import hnswlib

    def build(t):
        index = hnswlib.Index(space="ip", dim=base.shape[1])
        index.init_index(max_elements=len(base), ef_construction=200, M=16, random_seed=42)
        index.set_num_threads(t)
        for start, chunk in chunks(base):
            index.add_items(chunk, np.arange(start, start + len(chunk)))
        return index

    def read(path):
        index = hnswlib.Index(space="ip", dim=base.shape[1])
        index.load_index(path, max_elements=len(base))
        return index

    out = {"peer": "hnswlib", "builds": {}}
    index = built_or_kept(out, threads, build, kept and kept("hnswlib.bin"), read, lambda i, p: i.save_index(p))
    index.set_num_threads(1)

    def one(q, ef):
        index.set_ef(max(ef, K))
        return index.knn_query(q, k=K)[0][0].tolist()

    out["sweep"] = sweep(one, EFS, queries, truth, min_secs, "ef")
    return out


def faiss_hnsw_peer(base, queries, truth, threads, min_secs, kept):
    import faiss

    def build(t):
        faiss.omp_set_num_threads(t)
        index = faiss.IndexHNSWFlat(base.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 200
        for _, chunk in chunks(base):
            index.add(chunk)
        return index

    out = {"peer": "faiss IndexHNSWFlat", "version": faiss.__version__, "builds": {}}
    index = built_or_kept(out, threads, build, kept and kept("faiss-hnsw.index"), faiss.read_index, faiss.write_index)
    faiss.omp_set_num_threads(1)

    def one(q, ef):
        index.hnsw.efSearch = ef
        return index.search(q[None, :], K)[1][0].tolist()

    out["sweep"] = sweep(one, EFS, queries, truth, min_secs, "ef")
    return out


def faiss_ivfpq_peer(base, queries, truth, threads, min_secs, kept):
    import faiss

    n, dim = base.shape
    nlist = int(4 * np.sqrt(n))
    out = {"peer": f"faiss IVF{nlist},PQ48 + refine", "version": faiss.__version__, "builds": {}}
    faiss.omp_set_num_threads(max(int(t) for t in threads))
    before = rss_anon_kb()
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFPQ(quantizer, dim, nlist, 48, 8, faiss.METRIC_INNER_PRODUCT)
    t0 = time.perf_counter()
    sample = np.ascontiguousarray(base[np.random.default_rng(7).choice(n, min(n, 50 * nlist), replace=False)])
    ivf.train(sample)
    del sample  # not part of the index's memory
    for _, chunk in chunks(base):
        ivf.add(chunk)
    build_s = time.perf_counter() - t0
    codes_mib = (rss_anon_kb() - before) / 1024
    # Exact re-ranking over the rows (a flat copy), as Braid re-scores its codes'
    # candidates from its rows.
    flat = faiss.IndexFlatIP(dim)
    for _, chunk in chunks(base):
        flat.add(chunk)
    index = faiss.IndexRefine(ivf, flat)
    index.k_factor = 10
    out["builds"][str(max(int(t) for t in threads))] = {"build_s": build_s, "rss_anon_mib": codes_mib}
    print(f"faiss IVF-PQ build: {build_s:.1f} s, codes and lists {codes_mib:.0f} MiB", flush=True)
    faiss.omp_set_num_threads(1)

    def one(q, nprobe):
        ivf.nprobe = nprobe
        return index.search(q[None, :], K)[1][0].tolist()

    out["sweep"] = sweep(one, NPROBES, queries, truth, min_secs, "nprobe")
    return out


def qdrant_edge_peer(base, queries, truth, threads, min_secs, kept):
    import qdrant_edge as q

    path = tempfile.mkdtemp(prefix="braid-scale-qdrant-")
    hnsw = q.HnswIndexConfig(m=16, ef_construct=200, full_scan_threshold=10000)
    vectors = {"text": q.EdgeVectorParams(size=base.shape[1], distance=q.Distance.Cosine, hnsw_config=hnsw)}
    shard = q.EdgeShard.create(path, q.EdgeConfig(vectors=vectors))
    out = {"peer": "qdrant-edge", "version": "0.9.0", "builds": {}}
    before = rss_anon_kb()
    t0 = time.perf_counter()
    for start, chunk in chunks(base, 1000):
        points = [q.Point(start + i, {"text": row.tolist()}) for i, row in enumerate(chunk)]
        shard.update(q.UpdateOperation.upsert_points(points))
    ingest_s = time.perf_counter() - t0
    shard.optimize()
    build_s = time.perf_counter() - t0
    out["builds"]["own"] = {"build_s": build_s, "ingest_s": ingest_s, "rss_anon_mib": (rss_anon_kb() - before) / 1024}
    print(f"qdrant-edge build: {out['builds']['own']}", flush=True)

    def one(v, ef):
        request = q.QueryRequest(limit=K, query=q.Query.Nearest(v.tolist(), using="text"),
                                 params=q.SearchParams(hnsw_ef=max(ef, K)))
        return [int(p.id) for p in shard.query(request)]

    out["sweep"] = sweep(one, EFS, queries, truth, min_secs, "ef")
    shard.close()
    shutil.rmtree(path, ignore_errors=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, help="the scale bench's kept directory (truth.json, db/)")
    ap.add_argument("--queries", required=True, help="queries.npy of the data set")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--peers", default="hnswlib,faiss-hnsw,faiss-ivfpq")
    ap.add_argument("--min-secs", type=float, default=1.0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--keep-index", action="store_true",
                    help="keep hnswlib's and FAISS HNSWFlat's graphs in DIR/peers/ and reuse them")
    args = ap.parse_args()

    rows_file = vector_file(os.path.join(args.dir, "db"))
    base = rows(rows_file)
    kept = (lambda name: Kept(args.dir, rows_file, name)) if args.keep_index else None
    with open(os.path.join(args.dir, "truth.json")) as f:
        truth = json.load(f)
    queries = np.load(args.queries).astype(np.float32)[: len(truth)]
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    threads = [int(t) for t in args.threads.split(",") if t]
    print(f"peers on {base.shape[0]} x {base.shape[1]} rows, {len(queries)} queries", flush=True)

    runs = {"hnswlib": hnswlib_peer, "faiss-hnsw": faiss_hnsw_peer, "faiss-ivfpq": faiss_ivfpq_peer,
            "qdrant-edge": qdrant_edge_peer}
    report = {"n": int(base.shape[0]), "peers": []}
    for name in args.peers.split(","):
        result = runs[name](base, queries, truth, threads, args.min_secs, kept)
        result["at_recall_95"] = at(result["sweep"], 0.95)
        result["at_recall_99"] = at(result["sweep"], 0.99)
        report["peers"].append(result)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    print(f"peers: {args.out}", flush=True)


if __name__ == "__main__":
    main()
