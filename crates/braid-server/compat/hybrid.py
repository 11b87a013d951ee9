"""Hybrid search through the official Python qdrant-client against `braid serve`.

Usage: python hybrid.py --host 127.0.0.1 --http PORT --grpc PORT [--prefer-grpc]

A collection with a dense space and a sparse BM25 space (modifier IDF) and a text
index. Half the points carry `Document(text, model="qdrant/bm25")` for Braid to
embed (the client passes documents through with `cloud_inference=True`), half the
sparse vector this script computes itself with Qdrant's BM25 formula (murmur3 token
ids, k 1.2, b 0.75, avg_len 256; `language: none`, so no stemming or stopwords).
The same points, all as computed vectors, go into the client's local mode, which
implements Qdrant's server semantics (IDF, fusion, text match): every answer Braid
gives is compared with it, and Braid's own embedding with the script's.
"""
import random
import re
import struct

import connect
from qdrant_client import QdrantClient, models

WORDS = ("the river rivers bank banks money stone light water music paper glass horse horses "
         "city garden winter of and running runs market spring bridge lamp").split()
OPTIONS = {"language": "none"}


def murmur3_32(data: bytes, seed: int = 0) -> int:
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed
    n = len(data) // 4
    for (k,) in struct.iter_unpack("<I", data[: n * 4]):
        k = (k * c1) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) & 0xFFFFFFFF
        h ^= (k * c2) & 0xFFFFFFFF
        h = ((h << 13) | (h >> 19)) & 0xFFFFFFFF
        h = (h * 5 + 0xE6546B64) & 0xFFFFFFFF
    tail, k = data[n * 4:], 0
    for i, b in enumerate(tail):
        k |= b << (8 * i)
    if tail:
        k = (k * c1) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) & 0xFFFFFFFF
        h ^= (k * c2) & 0xFFFFFFFF
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


def token_id(token: str) -> int:
    h = murmur3_32(token.encode())
    signed = h - (1 << 32) if h >= 1 << 31 else h
    return abs(signed)


def tokens(text: str):
    return [t.lower() for t in re.split(r"[^\w]|_", text) if t]


def bm25_document(text: str) -> models.SparseVector:
    toks = tokens(text)
    k, b, avg = 1.2, 0.75, 256.0
    norm = k * (1 - b + b * len(toks) / avg)
    weights = {}
    for t in set(toks):
        tf = toks.count(t)
        weights[token_id(t)] = tf * (k + 1) / (tf + norm)
    ids = sorted(weights)
    return models.SparseVector(indices=ids, values=[weights[i] for i in ids])


def bm25_query(text: str) -> models.SparseVector:
    ids = sorted({token_id(t) for t in tokens(text)})
    return models.SparseVector(indices=ids, values=[1.0] * len(ids))


def same(got, want, what):
    """Same ids and scores (f32 precision); equal scores may come in any order."""
    assert len(got) == len(want), (what, got, want)
    for g, w in zip(got, want):
        assert abs(g.score - w.score) <= 1e-4 * max(1.0, abs(w.score)), (what, g, w)
    by_score = lambda hits: sorted((round(h.score, 4), str(h.id)) for h in hits)
    if [str(h.id) for h in got] != [str(h.id) for h in want]:
        # Only ties may reorder, and only within the results (a tie at the cut-off
        # may pick either point).
        last = round(want[-1].score, 4)
        strip = lambda hits: [x for x in by_score(hits) if x[0] != last]
        assert strip(got) == strip(want), (what, got, want)


def main():
    args, proto, _ = connect.parse("the hybrid walk against braid serve")
    client = QdrantClient(host=args.host, port=args.http, grpc_port=args.grpc, prefer_grpc=args.prefer_grpc,
                          timeout=60, cloud_inference=True)
    local = QdrantClient(":memory:")
    name = f"hybrid_{proto.lower()}"
    rng = random.Random(15)
    dim = 8
    config = dict(
        vectors_config={"dense": models.VectorParams(size=dim, distance=models.Distance.COSINE)},
        sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, **config)
    local.create_collection(name, **config)
    client.create_payload_index(name, "text", field_schema=models.TextIndexParams(
        type=models.TextIndexType.TEXT, tokenizer=models.TokenizerType.WORD, lowercase=True))
    info = client.get_collection(name)
    assert info.config.params.sparse_vectors["bm25"].modifier == models.Modifier.IDF, info
    assert info.payload_schema["text"].data_type == models.PayloadSchemaType.TEXT, info

    texts, points, local_points = [], [], []
    for i in range(300):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 14)))
        dense = [rng.uniform(-1, 1) for _ in range(dim)]
        payload = {"group": i % 3, "text": text}
        sparse = (models.Document(text=text, model="qdrant/bm25", options=OPTIONS) if i % 2 == 0
                  else bm25_document(text))
        texts.append(text)
        points.append(models.PointStruct(id=i, vector={"dense": dense, "bm25": sparse}, payload=payload))
        local_points.append(models.PointStruct(id=i, vector={"dense": dense, "bm25": bm25_document(text)},
                                               payload=payload))
    for start in range(0, 300, 100):
        client.upsert(name, points=points[start:start + 100], wait=True)
    local.upsert(name, points=local_points)

    # Braid embedded the documents as this script does.
    for r in client.retrieve(name, ids=[0, 2, 4], with_vectors=["bm25"]):
        want = bm25_document(texts[r.id])
        assert r.vector["bm25"].indices == want.indices, (r.id, r.vector["bm25"], want)
        assert all(abs(a - b) < 1e-6 for a, b in zip(r.vector["bm25"].values, want.values))

    exact = models.SearchParams(exact=True)
    group = models.Filter(must=[models.FieldCondition(key="group", match=models.MatchValue(value=1))])
    for _ in range(12):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
        q = [rng.uniform(-1, 1) for _ in range(dim)]
        doc = models.Document(text=text, model="qdrant/bm25", options=OPTIONS)
        want = local.query_points(name, query=bm25_query(text), using="bm25", limit=10).points
        same(client.query_points(name, query=doc, using="bm25", limit=10).points, want, "keyword by document")
        same(client.query_points(name, query=bm25_query(text), using="bm25", limit=10).points, want, "keyword")
        def hybrid(c, sparse_query, fusion):
            return c.query_points(name, prefetch=[
                models.Prefetch(query=sparse_query, using="bm25", limit=30),
                models.Prefetch(query=q, using="dense", limit=30, params=exact),
            ], query=models.FusionQuery(fusion=fusion), query_filter=group, limit=10).points
        # DBSF fuses scores: it must agree with local mode.
        same(hybrid(client, doc, models.Fusion.DBSF), hybrid(local, bm25_query(text), models.Fusion.DBSF), "dbsf")
        # RRF fuses ranks, and BM25 scores tie often: local mode orders exact ties by
        # float noise, Braid by id. So the filtered keyword list is compared with local
        # mode tie-aware, and the fusion with Qdrant's RRF over Braid's own lists.
        sparse_list = client.query_points(name, query=doc, using="bm25", query_filter=group, limit=30).points
        same(sparse_list, local.query_points(name, query=bm25_query(text), using="bm25", query_filter=group,
                                             limit=30).points, "filtered keyword")
        dense_list = local.query_points(name, query=q, using="dense", query_filter=group, limit=30).points
        rrf = {}
        for ranked in (sparse_list, dense_list):
            for rank, h in enumerate(ranked):
                rrf[h.id] = rrf.get(h.id, 0.0) + 1.0 / (2 + rank)
        fused = hybrid(client, doc, models.Fusion.RRF)
        want = sorted(rrf.items(), key=lambda x: (-x[1], x[0]))[:10]
        assert len(fused) == len(want), (fused, want)
        for h, (_, score) in zip(fused, want):
            assert abs(h.score - score) < 1e-6 and abs(rrf[h.id] - h.score) < 1e-6, ("rrf", fused, want)
        for match in (models.MatchText(text=text), models.MatchTextAny(text_any=text), models.MatchPhrase(phrase=text)):
            flt = models.Filter(must=[models.FieldCondition(key="text", match=match)])
            same(client.query_points(name, query=q, using="dense", query_filter=flt, search_params=exact, limit=10).points,
                 local.query_points(name, query=q, using="dense", query_filter=flt, limit=10).points,
                 f"text filter {type(match).__name__}")

    # A rewritten text: the sparse vector follows, the dense one stays.
    client.update_vectors(name, points=[models.PointVectors(id=3, vector={"bm25": models.Document(
        text="winter bridge lamp", model="qdrant/bm25", options=OPTIONS)})], wait=True)
    r = client.retrieve(name, ids=[3], with_vectors=True)[0]
    assert r.vector["bm25"].indices == bm25_document("winter bridge lamp").indices, r
    assert len(r.vector["dense"]) == dim
    connect.refused(lambda: client.query_points(name, query=models.Document(text="x", model="openai/x"), using="bm25"),
                    "bm25", "an unknown model")
    client.delete_collection(name)
    print(f"{proto}: the hybrid walk passed (300 points, 12 queries × 8 checks against local mode and Qdrant's formulas)")


if __name__ == "__main__":
    main()
