"""The rest of Qdrant's query API through the official Python qdrant-client against
`braid serve`, each call compared with the client's local mode (which implements the
server's semantics) on the same points. Grows with issue #16: facets, random samples, and
queries by example (point ids, recommend, discover, context, MMR), order_by and groups so far.

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
            "price": round(rng.uniform(0, 50), 1),
        }
        points.append(models.PointStruct(id=i, vector={"v": [rng.uniform(-1, 1) for _ in range(4)]}, payload=payload))
    client.upsert(name, points=points, wait=True)
    local.upsert(name, points=points)
    for key, schema in [("colour", models.PayloadSchemaType.KEYWORD), ("tags", models.PayloadSchemaType.KEYWORD),
                        ("size", models.PayloadSchemaType.INTEGER), ("sale", models.PayloadSchemaType.BOOL),
                        ("price", models.PayloadSchemaType.FLOAT)]:
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
    connect.refused(lambda: client.facet(name, key="nowhere"), "index", "a facet on an unindexed key")
    # Random samples: distinct points that pass the filter, score 1.0.
    sale = models.Filter(must=[models.FieldCondition(key="sale", match=models.MatchValue(value=True))])
    on_sale = {p.id for p in points if p.payload["sale"]}
    hits = client.query_points(name, query=models.SampleQuery(sample=models.Sample.RANDOM), query_filter=sale,
                               limit=20).points
    assert len(hits) == min(20, len(on_sale)) and len({h.id for h in hits}) == len(hits), hits
    assert all(h.id in on_sale and h.score == 1.0 for h in hits), hits
    examples = check_examples(client, local, name, rng)
    ordered = check_order_by(client, local, name)
    grouped = check_groups(client, local, name, rng)
    matrices = check_matrix(client, local, name)
    formulas = check_formulas(client, local, name, rng)
    multis = check_multivectors(client, local, name, rng)
    client.delete_collection(name)
    print(f"{proto}: the query API walk passed ({checked} facets equal to local mode, a random sample, "
          f"{examples} queries by example, {ordered} ordered scrolls and queries, {grouped} grouped queries, {matrices} distance matrices, {formulas} formulas, {multis} multivector queries)")


def close(a, b):
    return abs(a - b) <= 1e-4 * max(1.0, abs(b))


def same(got, want, every, what):
    """`got` is local mode's `want` up to the order of equal scores (which neither
    Qdrant's server nor local mode specifies): the same scores in order, and each
    point's score its score in local mode's full ranking `every`."""
    assert len(got) == len(want), (what, got, want)
    score = {h.id: h.score for h in every}
    for g, w in zip(got, want):
        assert close(g.score, w.score), (what, g, w)
        assert g.id in score and close(g.score, score[g.id]), (what, g, score.get(g.id))


def check_multivectors(client, local, name, rng):
    """A MaxSim multivector space beside a dense one: search, a dense prefetch re-ranked
    by MaxSim, and points read back, equal to local mode."""
    multi = f"{name}_colbert"
    config = dict(vectors_config={
        "dense": models.VectorParams(size=4, distance=models.Distance.COSINE),
        "colbert": models.VectorParams(size=6, distance=models.Distance.COSINE,
                                       multivector_config=models.MultiVectorConfig(
                                           comparator=models.MultiVectorComparator.MAX_SIM)),
    })
    rows = lambda n: [[rng.uniform(-1, 1) for _ in range(6)] for _ in range(n)]
    points = [models.PointStruct(id=i, vector={"dense": [rng.uniform(-1, 1) for _ in range(4)],
                                               "colbert": rows(rng.randint(1, 6))}) for i in range(150)]
    for target in (client, local):
        if target.collection_exists(multi):
            target.delete_collection(multi)
        target.create_collection(multi, **config)
        target.upsert(multi, points=points)
    query = rows(3)
    dense = [rng.uniform(-1, 1) for _ in range(4)]
    calls = [
        dict(query=query, using="colbert", limit=10),
        dict(prefetch=models.Prefetch(query=dense, using="dense", limit=30), query=query, using="colbert", limit=10),
    ]
    for kwargs in calls:
        got = client.query_points(multi, **kwargs).points
        want = local.query_points(multi, **kwargs).points
        every = local.query_points(multi, **{**kwargs, "limit": 150}).points
        same(got, want, every, f"multivector {kwargs.keys()}")
    back = client.retrieve(multi, ids=[7], with_vectors=True)[0].vector["colbert"]
    assert len(back) == len(points[7].vector["colbert"]), back
    client.delete_collection(multi)
    return len(calls)


def check_formulas(client, local, name, rng):
    """Formulas over two prefetches equal to local mode: scores, conditions, payload
    variables with defaults, decays, datetimes, arithmetic."""
    a, b = ([rng.uniform(-1, 1) for _ in range(4)] for _ in range(2))
    prefetch = [models.Prefetch(query=a, using="v", limit=30), models.Prefetch(query=b, using="v", limit=30)]
    red = models.FieldCondition(key="colour", match=models.MatchValue(value="red"))
    formulas = [
        models.FormulaQuery(formula=models.SumExpression(sum=["$score", models.MultExpression(mult=[0.5, red])])),
        models.FormulaQuery(formula=models.SumExpression(sum=["$score[0]", "$score[1]"]), defaults={"$score[1]": -2.0}),
        models.FormulaQuery(formula=models.MultExpression(mult=[
            "$score", models.ExpDecayExpression(exp_decay=models.DecayParamsExpression(x="price", target=25.0, scale=10.0))])),
        models.FormulaQuery(formula=models.SumExpression(sum=[
            models.GaussDecayExpression(gauss_decay=models.DecayParamsExpression(x="size", scale=2.0, midpoint=0.3)),
            models.LinDecayExpression(lin_decay=models.DecayParamsExpression(x="$score", target=1.0, scale=3.0)),
            models.DivExpression(div=models.DivParams(left="price", right="size", by_zero_default=100.0)),
            models.PowExpression(pow=models.PowParams(base="size", exponent=0.5)),
            models.NegExpression(neg=models.AbsExpression(abs="$score[1]")),
        ])),
    ]
    for formula in formulas:
        got = client.query_points(name, prefetch=prefetch, query=formula, limit=40).points
        want = local.query_points(name, prefetch=prefetch, query=formula, limit=40).points
        every = local.query_points(name, prefetch=prefetch, query=formula, limit=100).points
        same(got, want, every, f"formula {formula}")
    return len(formulas)


def check_matrix(client, local, name):
    """search_matrix_pairs/offsets equal to local mode when the sample takes every point
    the filter passes (a smaller sample is random on both sides)."""
    red = models.Filter(must=[models.FieldCondition(key="colour", match=models.MatchValue(value="red")),
                              models.FieldCondition(key="size", range=models.Range(lt=3))])
    kwargs = dict(query_filter=red, sample=100, limit=4, using="v")
    got = client.search_matrix_pairs(name, **kwargs).pairs
    want = local.search_matrix_pairs(name, **kwargs).pairs
    assert [(p.a, p.b) for p in got] == [(p.a, p.b) for p in want], (got, want)
    assert all(close(g.score, w.score) for g, w in zip(got, want))
    got = client.search_matrix_offsets(name, **kwargs)
    want = local.search_matrix_offsets(name, **kwargs)
    assert (got.ids, got.offsets_row, got.offsets_col) == (want.ids, want.offsets_row, want.offsets_col), (got, want)
    # A real sample: distinct points passing the filter, each row its nearest others.
    got = client.search_matrix_offsets(name, query_filter=red, sample=5, limit=2, using="v")
    assert len(set(got.ids)) == 5 and len(got.scores) == 10, got
    return 3


def check_groups(client, local, name, rng):
    """query_points_groups equal to local mode: the same groups in the same order, each
    with the same points (scores within float noise); by a keyword, an integer and an
    array field, with a filter, with a lookup into another collection."""
    lookup = f"{name}_sizes"
    for target in (client, local):
        if target.collection_exists(lookup):
            target.delete_collection(lookup)
        target.create_collection(lookup, vectors_config={})
        target.upsert(lookup, points=[models.PointStruct(id=i, vector={}, payload={"label": f"size {i}"})
                                      for i in range(0, 7, 2)])
    vec = [rng.uniform(-1, 1) for _ in range(4)]
    small = models.Filter(must=[models.FieldCondition(key="size", range=models.Range(lt=4))])
    checked = 0
    for group_by, size, limit in (("colour", 3, 4), ("size", 2, 10), ("tags", 1, 3)):
        for flt in (None, small):
            kwargs = dict(query=vec, using="v", group_by=group_by, group_size=size, limit=limit, query_filter=flt,
                          with_lookup=models.WithLookup(collection=lookup))
            got = client.query_points_groups(name, **kwargs).groups
            want = local.query_points_groups(name, **kwargs).groups
            assert [g.id for g in got] == [g.id for g in want], (group_by, got, want)
            for g, w in zip(got, want):
                assert [h.id for h in g.hits] == [h.id for h in w.hits], (group_by, g, w)
                assert all(close(a.score, b.score) for a, b in zip(g.hits, w.hits))
                assert (g.lookup and g.lookup.payload) == (w.lookup and w.lookup.payload), (g.lookup, w.lookup)
            checked += 1
    client.delete_collection(lookup)
    return checked


def check_order_by(client, local, name):
    """order_by in scroll and query equal to local mode: the same values in the same
    order, each point holding its value (the order among equal values is unspecified)."""
    small = models.Filter(must=[models.FieldCondition(key="size", range=models.Range(lt=4))])
    orders = [
        "price",
        models.OrderBy(key="price", direction=models.Direction.DESC),
        models.OrderBy(key="price", start_from=20.5),
        models.OrderBy(key="size", direction=models.Direction.DESC, start_from=3),
    ]
    checked = 0
    for order in orders:
        for flt in (None, small):
            want, _ = local.scroll(name, order_by=order, scroll_filter=flt, limit=25)
            got, next_page = client.scroll(name, order_by=order, scroll_filter=flt, limit=25)
            assert next_page is None, next_page
            queried = client.query_points(name, query=models.OrderByQuery(order_by=order), query_filter=flt,
                                          limit=25, with_payload=True).points
            for result in (got, queried):
                assert [r.order_value for r in result] == [w.order_value for w in want], (order, result, want)
                key = order if isinstance(order, str) else order.key
                assert all(r.payload[key] == r.order_value for r in result), (order, result)
                assert all(flt is None or r.payload["size"] < 4 for r in result)
            assert all(r.score == 1.0 for r in queried)
            checked += 2
    return checked


def check_examples(client, local, name, rng):
    """Point ids, recommend (each strategy), discover and context, alone, filtered and
    over a prefetch, equal to local mode (ids in order, scores within float noise)."""
    vec = [rng.uniform(-1, 1) for _ in range(4)]
    pair = models.ContextPair
    small = models.Filter(must=[models.FieldCondition(key="size", range=models.Range(lt=4))])
    queries = [("by id", 5), ("nearest by id", models.NearestQuery(nearest=9))]
    for strategy in models.RecommendStrategy:
        queries.append((f"recommend {strategy.value}", models.RecommendQuery(recommend=models.RecommendInput(
            positive=[1, 2, vec], negative=[4], strategy=strategy))))
    for strategy in (models.RecommendStrategy.BEST_SCORE, models.RecommendStrategy.SUM_SCORES):
        queries.append((f"negatives only {strategy.value}", models.RecommendQuery(recommend=models.RecommendInput(
            negative=[4, 8], strategy=strategy))))
    queries.append(("discover", models.DiscoverQuery(discover=models.DiscoverInput(
        target=7, context=[pair(positive=10, negative=11), pair(positive=20, negative=vec)]))))
    for diversity, candidates in ((0.0, None), (0.6, 30), (1.0, 60)):
        queries.append((f"mmr {diversity}", models.NearestQuery(
            nearest=vec, mmr=models.Mmr(diversity=diversity, candidates_limit=candidates))))
    queries.append(("mmr by id", models.NearestQuery(nearest=3, mmr=models.Mmr(diversity=0.5, candidates_limit=20))))
    queries.append(("context", models.ContextQuery(context=[pair(positive=10, negative=11),
                                                           pair(positive=20, negative=21)])))
    checked = 0
    for what, query in queries:
        for flt in (None, small):
            kwargs = dict(query=query, using="v", query_filter=flt)
            same(client.query_points(name, limit=8, **kwargs).points, local.query_points(name, limit=8, **kwargs).points,
                 local.query_points(name, limit=300, **kwargs).points, f"{what} filter={flt is not None}")
            checked += 1
        # Over a prefetch: only its candidates, re-scored by the example query.
        prefetch = models.Prefetch(query=vec, using="v", limit=40)
        kwargs = dict(prefetch=prefetch, query=query, using="v")
        same(client.query_points(name, limit=8, **kwargs).points, local.query_points(name, limit=8, **kwargs).points,
             local.query_points(name, limit=40, **kwargs).points, f"{what} over a prefetch")
        checked += 1
    return checked


if __name__ == "__main__":
    main()
