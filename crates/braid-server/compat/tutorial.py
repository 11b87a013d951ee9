"""The multi-model tutorial through the official Python qdrant-client against `braid serve`.

Usage: python tutorial.py --host 127.0.0.1 --http PORT --grpc PORT [--prefer-grpc]

Every step asserts its result against a brute-force computation done here, so the
script fails loudly on the first incompatibility.
"""
import math
import random
import uuid

import connect
from qdrant_client import models


def normalise(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def cosine(a, b):
    return sum(x * y for x, y in zip(normalise(a), normalise(b)))


def main():
    _, proto, client = connect.parse("the multi-model tutorial against braid serve")
    name = f"products_{proto.lower()}"
    rng = random.Random(7)

    # 1. create, with named spaces and per-space HNSW settings
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(
        name,
        vectors_config={
            "text": models.VectorParams(size=8, distance=models.Distance.COSINE,
                                        hnsw_config=models.HnswConfigDiff(m=16, ef_construct=200)),
            "image": models.VectorParams(size=6, distance=models.Distance.COSINE,
                                         hnsw_config=models.HnswConfigDiff(m=32, ef_construct=256, payload_m=8)),
        },
    )
    assert client.collection_exists(name)

    # 2. upsert ints and UUIDs in batches
    categories = ["apparel", "shoes", "books", "toys", "garden"]
    points = []
    for i in range(200):
        pid = str(uuid.UUID(int=0xB4A10000 + i)) if i % 10 == 9 else i
        points.append(models.PointStruct(
            id=pid,
            vector={"text": [rng.uniform(-1, 1) for _ in range(8)], "image": [rng.uniform(-1, 1) for _ in range(6)]},
            payload={"name": f"product {i}", "category": categories[i % 5], "price": float(i * 7 % 300)},
        ))
    for start in range(0, len(points), 50):
        client.upsert(name, points=points[start:start + 50], wait=True)
    client.create_payload_index(name, "category", field_schema=models.PayloadSchemaType.KEYWORD)
    info = client.get_collection(name)
    assert info.points_count == 200, info
    # payload_m: links among the points sharing a category, reported as written
    assert info.config.params.vectors["image"].hnsw_config.payload_m == 8, info
    assert info.config.params.vectors["text"].hnsw_config.payload_m is None, info
    assert client.count(name, exact=True).count == 200

    by_id = {p.id: p for p in points}
    tq = [rng.uniform(-1, 1) for _ in range(8)]
    iq = [rng.uniform(-1, 1) for _ in range(6)]
    exact = models.SearchParams(exact=True)

    def brute(space, q, k, keep=lambda p: True):
        scored = [(cosine(q, p.vector[space]), p.id) for p in points if keep(p)]
        scored.sort(key=lambda s: -s[0])
        return [pid for _, pid in scored[:k]]

    # 3. one space at a time
    hits = client.query_points(name, query=tq, using="text", limit=5, search_params=exact).points
    assert [h.id for h in hits] == brute("text", tq, 5), hits

    # 4. prefetch + RRF, prefetch + DBSF
    prefetch = [
        models.Prefetch(query=tq, using="text", limit=20, params=exact),
        models.Prefetch(query=iq, using="image", limit=20, params=exact),
    ]
    text20, image20 = brute("text", tq, 20), brute("image", iq, 20)
    rrf = {}
    for ranked in (text20, image20):
        for rank, pid in enumerate(ranked):
            # Qdrant: 1 / (k + rank), ranks from 0, k = 2
            rrf[pid] = rrf.get(pid, 0.0) + 1.0 / (2 + rank)
    fused = client.query_points(name, prefetch=prefetch, query=models.FusionQuery(fusion=models.Fusion.RRF), limit=10).points
    assert [h.id for h in fused][:3] == sorted(rrf, key=lambda p: -rrf[p])[:3], fused
    for h in fused:
        assert abs(h.score - rrf[h.id]) < 1e-5, (h, rrf[h.id])
    dbsf = client.query_points(name, prefetch=prefetch, query=models.FusionQuery(fusion=models.Fusion.DBSF), limit=10).points
    assert len(dbsf) == 10

    # 5. the top-level filter reaches every prefetch
    apparel = models.Filter(must=[models.FieldCondition(key="category", match=models.MatchValue(value="apparel"))])
    filtered = client.query_points(name, prefetch=prefetch, query=models.FusionQuery(fusion=models.Fusion.RRF),
                                   query_filter=apparel, limit=10, with_payload=True).points
    assert filtered and all(h.payload["category"] == "apparel" for h in filtered)

    # 7. a batch of queries
    batch = client.query_batch_points(name, requests=[
        models.QueryRequest(query=tq, using="text", limit=3, params=exact),
        models.QueryRequest(query=iq, using="image", limit=3, params=exact, filter=apparel),
    ])
    assert [h.id for h in batch[0].points] == brute("text", tq, 3)
    assert [h.id for h in batch[1].points] == brute("image", iq, 3, lambda p: p.payload["category"] == "apparel")

    # 8. selectors
    got = client.retrieve(name, ids=[3, 1], with_payload=models.PayloadSelectorExclude(exclude=["price"]),
                          with_vectors=["image"])
    assert {r.id for r in got} == {1, 3}
    for r in got:
        assert "price" not in r.payload and set(r.vector) == {"image"}, r

    # 9. update one space; delete a space's vector; payload operations
    client.update_vectors(name, points=[models.PointVectors(id=4, vector={"image": [0.5] * 6})], wait=True)
    r = client.retrieve(name, ids=[4], with_vectors=True)[0]
    assert all(abs(x - 1 / math.sqrt(6)) < 1e-6 for x in r.vector["image"])
    assert all(abs(a - b) < 1e-6 for a, b in zip(r.vector["text"], normalise(by_id[4].vector["text"])))
    client.delete_vectors(name, vectors=["text"], points=[5], wait=True)
    assert set(client.retrieve(name, ids=[5], with_vectors=True)[0].vector) == {"image"}
    client.set_payload(name, payload={"sale": True}, points=models.FilterSelector(filter=models.Filter(
        must=[models.FieldCondition(key="category", match=models.MatchValue(value="toys"))])), wait=True)
    client.overwrite_payload(name, payload={"only": 1}, points=[6], wait=True)
    client.delete_payload(name, keys=["price"], points=[7], wait=True)
    client.clear_payload(name, points_selector=[8], wait=True)
    got = {r.id: r.payload for r in client.retrieve(name, ids=[3, 6, 7, 8])}
    assert got[3]["sale"] is True and got[6] == {"only": 1} and "price" not in got[7] and got[8] == {}, got

    # 10. nested prefetch re-ranked by text: only the fused candidates, cosine scores
    nested = client.query_points(name, prefetch=models.Prefetch(prefetch=prefetch, query=models.FusionQuery(
        fusion=models.Fusion.RRF), limit=15), query=tq, using="text", limit=10).points
    assert all(-1.0 <= h.score <= 1.0 for h in nested) and len(nested) == 10

    # 12. scroll pages, count, deletes, list, delete the collection
    shoes = models.Filter(must=[models.FieldCondition(key="category", match=models.MatchValue(value="shoes"))])
    seen, offset = [], None
    while True:
        page, offset = client.scroll(name, scroll_filter=shoes, limit=7, offset=offset)
        seen += [p.id for p in page]
        if offset is None:
            break
    counted = client.count(name, count_filter=shoes, exact=True).count
    # 40 shoes, less id 6 whose payload was overwritten in step 9
    assert len(seen) == 39 == counted, (len(seen), counted, seen)
    client.delete(name, points_selector=[0, 1], wait=True)
    client.delete(name, points_selector=models.FilterSelector(filter=shoes), wait=True)
    # id 0 is apparel, id 1 one of the 39 shoes: 200 - 1 - 39 remain.
    assert client.count(name, exact=True).count == 160
    assert name in [c.name for c in client.get_collections().collections]
    client.delete_collection(name)
    assert not client.collection_exists(name)
    print(f"{proto}: the tutorial passed ({len(seen)} points scrolled in pages of 7)")


if __name__ == "__main__":
    main()
