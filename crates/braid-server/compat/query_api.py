"""The rest of Qdrant's query API through the official Python qdrant-client against
`braid serve`, each call compared with the client's local mode (which implements the
server's semantics) on the same points. Grows with issue #16: facets and random samples so far.

Usage: python query_api.py --host 127.0.0.1 --http PORT --grpc PORT [--prefer-grpc]
"""
import random

import connect
from qdrant_client import QdrantClient, models


def main():
    _, proto, client = connect.parse("the query API against braid serve")
    local = QdrantClient(":memory:")
    name = f"query_api_{proto.lower()}"
    rng = random.Random(16)
    config = dict(vectors_config={"v": models.VectorParams(size=4, distance=models.Distance.DOT)})
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, **config)
    local.create_collection(name, **config)
    colours = ["red", "green", "blue", "grey", "teal"]
    points = []
    for i in range(300):
        payload = {
            "colour": rng.choice(colours),
            "tags": rng.sample(colours, rng.randint(0, 3)),
            "size": rng.randint(0, 6),
            "sale": rng.random() < 0.3,
        }
        points.append(models.PointStruct(id=i, vector={"v": [rng.uniform(-1, 1) for _ in range(4)]}, payload=payload))
    client.upsert(name, points=points, wait=True)
    local.upsert(name, points=points)
    for key, schema in [("colour", models.PayloadSchemaType.KEYWORD), ("tags", models.PayloadSchemaType.KEYWORD),
                        ("size", models.PayloadSchemaType.INTEGER), ("sale", models.PayloadSchemaType.BOOL)]:
        client.create_payload_index(name, key, field_schema=schema)

    # Facets: every indexed key, with and without a filter, several limits.
    checked = 0
    for key in ("colour", "tags", "size", "sale"):
        for flt in (None, models.Filter(must=[models.FieldCondition(key="size", range=models.Range(lt=3))])):
            for limit in (1, 3, 10):
                got = client.facet(name, key=key, facet_filter=flt, limit=limit, exact=True).hits
                want = local.facet(name, key=key, facet_filter=flt, limit=limit).hits
                assert [(h.value, h.count) for h in got] == [(h.value, h.count) for h in want], (key, flt, limit, got, want)
                checked += 1
    try:
        client.facet(name, key="nowhere")
        raise AssertionError("a facet on an unindexed key was accepted")
    except AssertionError:
        raise
    except Exception as e:  # the client's error type differs by protocol
        assert "index" in str(e), e
    # Random samples: distinct points that pass the filter, score 1.0.
    sale = models.Filter(must=[models.FieldCondition(key="sale", match=models.MatchValue(value=True))])
    on_sale = {p.id for p in points if p.payload["sale"]}
    hits = client.query_points(name, query=models.SampleQuery(sample=models.Sample.RANDOM), query_filter=sale,
                               limit=20).points
    assert len(hits) == min(20, len(on_sale)) and len({h.id for h in hits}) == len(hits), hits
    assert all(h.id in on_sale and h.score == 1.0 for h in hits), hits
    client.delete_collection(name)
    print(f"{proto}: the query API walk passed ({checked} facets equal to local mode, a random sample)")


if __name__ == "__main__":
    main()
