"""Differential test: the official Python qdrant-client against `braid serve` and against
the client's local mode (`QdrantClient(":memory:")`, Qdrant's semantics in Python), on
the same random collections, payloads and requests.

Usage: python differential.py --http PORT --grpc PORT [--prefer-grpc] [--seed N] [--cases N]
       [--out DIR]

Each case builds a fresh collection in both (one to three named spaces, all four
distances, int and UUID ids, payloads with nested objects, arrays, nulls, dates, geo
points and text), then sends the same requests to both and compares the answers:
count, scroll (ids and payloads), retrieve, nearest searches with random filters,
prefetch + RRF/DBSF fusion, prefetch + re-score, batches, and payload writes followed
by a full scroll. Every divergence is printed with the case's seed and written, with
the collection's points and the request, to DIR/<seed>-<case>.json as a reproduction.
Known differences between local mode and Qdrant's server, where Braid follows the
server, are listed in docs/compat.md; the generator avoids only those.
Exit status: 0 when no divergence was found.
"""
import json
import math
import os
import random
import sys
import uuid

import connect
from qdrant_client import QdrantClient, models

DISTANCES = [models.Distance.COSINE, models.Distance.EUCLID, models.Distance.DOT, models.Distance.MANHATTAN]
WORDS = ["red", "Green", "blue", "shoe", "hat", "scarf", "coat", "big", "small", "the", "of", "x1"]
KEYS = ["n", "s", "b", "t", "d", "g", "nest", "arr", "missing"]


# ---- generators ----


def date(rng):
    y, mo, d = 2000 + rng.randint(0, 3), rng.randint(1, 12), rng.randint(1, 28)
    h, mi, s = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    base = f"{y:04}-{mo:02}-{d:02}"
    sep = rng.choice(["T", " "])
    frac = rng.choice(["", f".{rng.randint(0, 999999):06}"])
    off = rng.choice(["Z", "+05:00", "-0330", "+0000", ""])
    return rng.choice([base, f"{base}{sep}{h:02}:{mi:02}:{s:02}{frac}{off}"])


def geo(rng):
    if rng.random() < 0.3:  # on a grid, so box edges are hit
        return {"lon": float(rng.randint(-4, 4)), "lat": float(rng.randint(-4, 4))}
    return {"lon": round(rng.uniform(-5, 5), 4), "lat": round(rng.uniform(-5, 5), 4)}


def payload(rng):
    p = {}
    choice = rng.choice

    def maybe():
        return rng.random() < 0.75

    if maybe():
        p["n"] = choice([rng.randint(-3, 5), round(rng.uniform(-3, 5), 2), [rng.randint(-3, 5) for _ in range(rng.randint(0, 3))], None])
    if maybe():
        p["s"] = choice([choice(WORDS), [choice(WORDS) for _ in range(rng.randint(0, 3))], None])
    if maybe():
        p["b"] = choice([True, False, None])
    if maybe():
        p["t"] = " ".join(choice(WORDS) for _ in range(rng.randint(1, 5))) + choice(["", ".", "!", ", x1"])
    if maybe():
        p["d"] = choice([date(rng), [date(rng), date(rng)]])
    if maybe():
        p["g"] = choice([geo(rng), [geo(rng), geo(rng)]])
    if maybe():
        p["nest"] = {
            "a": rng.randint(0, 3),
            "items": [{"c": rng.randint(0, 3), "w": choice(WORDS)} for _ in range(rng.randint(0, 3))],
        }
    if maybe():
        p["arr"] = [rng.randint(0, 3) for _ in range(rng.randint(0, 4))]
    return p


def field_condition(rng):
    choice = rng.choice
    kind = choice(["value", "any", "except", "text", "text_any", "phrase", "prefix", "substring", "range", "dt", "count",
                   "radius", "box", "polygon", "empty", "null", "nested_path"])
    M = models
    if kind == "value":
        key, value = choice([("s", choice(WORDS)), ("n", rng.randint(-3, 5)), ("b", choice([True, False])),
                             ("nest.a", rng.randint(0, 3)), ("nest.items[].c", rng.randint(0, 3)), ("arr[0]", rng.randint(0, 3))])
        return M.FieldCondition(key=key, match=M.MatchValue(value=value))
    if kind == "any":
        if rng.random() < 0.5:
            return M.FieldCondition(key="s", match=M.MatchAny(any=rng.sample(WORDS, rng.randint(1, 3))))
        return M.FieldCondition(key=choice(["n", "arr"]), match=M.MatchAny(any=rng.sample(range(-3, 6), rng.randint(1, 3))))
    if kind == "except":
        if rng.random() < 0.5:
            return M.FieldCondition(key="s", match=M.MatchExcept(**{"except": rng.sample(WORDS, rng.randint(1, 3))}))
        return M.FieldCondition(key=choice(["n", "arr"]), match=M.MatchExcept(**{"except": rng.sample(range(-3, 6), rng.randint(1, 3))}))
    if kind in ("text", "text_any", "phrase"):
        text = " ".join(choice(WORDS + ["RED", "sho"]) for _ in range(rng.randint(1, 2)))
        m = {"text": M.MatchText(text=text), "text_any": M.MatchTextAny(text_any=text), "phrase": M.MatchPhrase(phrase=text)}[kind]
        return M.FieldCondition(key=choice(["t", "s"]), match=m)
    if kind == "prefix":
        return M.FieldCondition(key=choice(["s", "t"]), match=M.MatchPrefix(prefix=choice(WORDS)[: rng.randint(0, 3)]))
    if kind == "substring":
        return M.FieldCondition(key=choice(["s", "t"]), match=M.MatchSubstring(substring=choice(WORDS)[1:4]))
    if kind == "range":
        bounds = {}
        for b in rng.sample(["gt", "gte", "lt", "lte"], rng.randint(1, 2)):
            bounds[b] = choice([rng.randint(-3, 5), round(rng.uniform(-3, 5), 1)])
        return M.FieldCondition(key=choice(["n", "arr", "nest.a", "s"]), range=M.Range(**bounds))
    if kind == "dt":
        bounds = {}
        for b in rng.sample(["gt", "gte", "lt", "lte"], rng.randint(1, 2)):
            bounds[b] = date(rng) if rng.random() < 0.8 else f"{2000 + rng.randint(0, 3)}-06-15T12:00:00+05:00"
        return M.FieldCondition(key="d", range=M.DatetimeRange(**bounds))
    if kind == "count":
        bounds = {}
        for b in rng.sample(["gt", "gte", "lt", "lte"], rng.randint(1, 2)):
            bounds[b] = rng.randint(0, 3)
        return M.FieldCondition(key=choice(["arr", "s", "n", "missing", "nest.items"]), values_count=M.ValuesCount(**bounds))
    if kind == "radius":
        return M.FieldCondition(key="g", geo_radius=M.GeoRadius(center=M.GeoPoint(**geo(rng)), radius=rng.uniform(1e4, 6e5)))
    if kind == "box":
        lon1, lon2 = sorted([rng.randint(-5, 5), rng.randint(-5, 5)])
        lat1, lat2 = sorted([rng.randint(-5, 5), rng.randint(-5, 5)])
        if rng.random() < 0.2:
            lon1, lon2 = lon2, lon1  # across the antimeridian (or empty)
        return M.FieldCondition(key="g", geo_bounding_box=M.GeoBoundingBox(
            top_left=M.GeoPoint(lon=lon1, lat=lat2), bottom_right=M.GeoPoint(lon=lon2, lat=lat1)))
    if kind == "polygon":
        cx, cy, r = rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(0.5, 4)
        ring = [M.GeoPoint(lon=cx + r * math.cos(a), lat=cy + r * math.sin(a)) for a in [0, 2, 4]]
        ring.append(ring[0])
        return M.FieldCondition(key="g", geo_polygon=M.GeoPolygon(exterior=M.GeoLineString(points=ring)))
    if kind == "empty":
        return M.IsEmptyCondition(is_empty=M.PayloadField(key=choice(KEYS)))
    if kind == "null":
        return M.IsNullCondition(is_null=M.PayloadField(key=choice(KEYS + ["nest.items[].c"])))
    inner = M.Filter(must=[M.FieldCondition(key="c", match=M.MatchValue(value=rng.randint(0, 3))),
                           M.FieldCondition(key="w", match=M.MatchValue(value=choice(WORDS)))][: rng.randint(1, 2)])
    return M.NestedCondition(nested=M.Nested(key="nest.items", filter=inner))


def condition(rng, ids, spaces, depth):
    r = rng.random()
    if r < 0.08:
        return models.HasIdCondition(has_id=rng.sample(ids, min(len(ids), rng.randint(1, 5))))
    if r < 0.12:
        return models.HasVectorCondition(has_vector=rng.choice(spaces))
    if r < 0.2 and depth < 2:
        return filter_(rng, ids, spaces, depth + 1)
    return field_condition(rng)


def filter_(rng, ids, spaces, depth=0):
    f = {}
    for clause in ["must", "should", "must_not"]:
        if rng.random() < 0.5:
            f[clause] = [condition(rng, ids, spaces, depth) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.15:
        conds = [condition(rng, ids, spaces, depth) for _ in range(rng.randint(1, 3))]
        f["min_should"] = models.MinShould(conditions=conds, min_count=rng.randint(0, len(conds)))
    return models.Filter(**f)


# ---- comparing ----


def norm(v):
    """JSON with floats rounded, so that both sides compare as values."""
    if isinstance(v, float):
        return round(v, 6)
    if isinstance(v, dict):
        return {k: norm(x) for k, x in sorted(v.items())}
    if isinstance(v, list):
        return [norm(x) for x in v]
    return v


def records(points):
    return sorted([(str(p.id), norm(p.payload)) for p in points], key=lambda r: r[0])


def ranked(points, limit):
    """(score, id) pairs; ids compared only where the score separates them from the
    rest of the list's tail (equal scores may come in any order, and the cut at
    `limit` may take either of two tied points)."""
    scores = [p.score for p in points]
    last = scores[-1] if len(points) == limit and scores else None
    ids = sorted(str(p.id) for p, s in zip(points, scores) if last is None or not close(s, last))
    return {"scores": scores, "ids": ids}


def close(a, b):
    """Scores agree to f32 precision (Braid computes in f32 with SIMD, local mode in
    numpy: the last bits differ)."""
    return abs(a - b) <= 1e-4 * max(1.0, abs(a), abs(b))


def same(a, b):
    """Equal, with floats compared by `close`."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and close(float(a), float(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


class Divergence(Exception):
    pass


def compare(what, braid, local, request, case):
    if not same(braid, local):
        case["divergences"].append({"what": what, "request": request, "braid": braid, "local": local})


def dump(x):
    if hasattr(x, "model_dump"):
        return x.model_dump(mode="json", exclude_none=True)
    if isinstance(x, list):
        return [dump(i) for i in x]
    return x


# ---- one case ----


def run_case(braid, local, seed, index, out):
    rng = random.Random(seed * 100_003 + index)
    name = f"diff_{seed}_{index}"
    nspaces = rng.randint(1, 3)
    spaces = {f"v{i}": (rng.randint(2, 6), rng.choice(DISTANCES)) for i in range(nspaces)}
    vectors_config = {n: models.VectorParams(size=d, distance=dist) for n, (d, dist) in spaces.items()}
    n = rng.randint(20, 120)
    use_uuid = rng.random() < 0.3
    ids = [str(uuid.UUID(int=rng.getrandbits(128))) if use_uuid else rng.randint(0, 10_000) for _ in range(n)]
    ids = list(dict.fromkeys(ids))
    points = []
    for pid in ids:
        # Unrounded components: with rounded ones, Manhattan and Dot scores tie exactly in
        # decimal but not in f32, and which of two "tied" points makes a cut then depends
        # on summation order — noise, not semantics.
        vec = {s: [rng.uniform(-1, 1) for _ in range(d)] for s, (d, _) in spaces.items() if rng.random() < 0.9}
        if not vec:
            first = next(iter(spaces))
            vec[first] = [rng.uniform(-1, 1) for _ in range(spaces[first][0])]
        for s in vec:  # no zero vectors under Cosine
            if all(x == 0 for x in vec[s]):
                vec[s][0] = 0.5
        points.append(models.PointStruct(id=pid, vector=vec, payload=payload(rng)))
    case = {"seed": seed, "case": index, "divergences": [], "spaces": {k: [d, str(dist)] for k, (d, dist) in spaces.items()}}
    for c in (braid, local):
        if c.collection_exists(name):
            c.delete_collection(name)
        c.create_collection(name, vectors_config=vectors_config)
        c.upsert(name, points=points, wait=True)

    def both(what, call, request, shape):
        # A refusal on both sides agrees (the messages differ); on one side it is a
        # divergence, shown with its message.
        answers = []
        for client in (braid, local):
            try:
                answers.append(shape(call(client)))
            except Exception as e:  # noqa: BLE001 — any failure is an answer to compare
                answers.append(("refused", f"{type(e).__name__}: {str(e)[:300]}"))
        a, b = answers
        if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] == "refused":
            return
        compare(what, a, b, request, case)

    space_names = list(spaces)
    for _ in range(12):
        f = filter_(rng, ids, space_names) if rng.random() < 0.85 else None
        req = dump(f)
        both("count", lambda c: c.count(name, count_filter=f, exact=True).count, req, lambda x: x)
        both("scroll", lambda c: c.scroll(name, scroll_filter=f, limit=10_000, with_payload=True)[0], req, records)
        s = rng.choice(space_names)
        q = [rng.uniform(-1, 1) for _ in range(spaces[s][0])]
        if all(x == 0 for x in q):
            q[0] = 1.0
        limit = rng.randint(1, 8)
        kind = rng.random()
        if kind < 0.5:
            request = {"query": q, "using": s, "filter": req, "limit": limit}
            both("query nearest", lambda c: c.query_points(name, query=q, using=s, query_filter=f, limit=limit).points,
                 request, lambda ps: ranked(ps, limit))
        elif kind < 0.8:
            fusion = rng.choice([models.Fusion.RRF, models.Fusion.DBSF])
            pre = []
            for _ in range(rng.randint(1, 3)):
                ps = rng.choice(space_names)
                pq = [rng.uniform(-1, 1) for _ in range(spaces[ps][0])]
                pq[0] = pq[0] or 0.5
                pre.append(models.Prefetch(query=pq, using=ps, limit=rng.randint(1, 15),
                                           filter=filter_(rng, ids, space_names) if rng.random() < 0.3 else None))
            request = {"prefetch": dump(pre), "query": {"fusion": str(fusion)}, "limit": limit}
            both("query fusion", lambda c: c.query_points(name, prefetch=pre, query=models.FusionQuery(fusion=fusion), limit=limit).points,
                 request, lambda ps: ranked(ps, limit))
        else:
            pre = [models.Prefetch(query=q, using=s, limit=rng.randint(limit, 20), filter=f)]
            request = {"prefetch": dump(pre), "query": q, "using": s, "limit": limit}
            both("query re-score", lambda c: c.query_points(name, prefetch=pre, query=q, using=s, limit=limit).points,
                 request, lambda ps: ranked(ps, limit))
        pick = rng.sample(ids, min(len(ids), 4)) + [rng.randint(20_000, 30_000)]
        both("retrieve", lambda c: c.retrieve(name, ids=pick, with_payload=True), {"ids": pick}, records)

    # Writes, then everything must still agree.
    for _ in range(4):
        f = filter_(rng, ids, space_names)
        op = rng.choice(["set", "set_key", "overwrite", "delete_keys", "clear", "delete"])
        p = payload(rng)
        key = rng.choice(KEYS[:-1])
        path = rng.choice(["nest", "nest.items[0]", "nest.items[]", "arr[1]", "s[0]", "new.deep"])
        calls = {
            "set": lambda c: c.set_payload(name, payload=p, points=f, wait=True),
            "set_key": lambda c: c.set_payload(name, payload={"z": 1, "a": None}, points=f, key=path, wait=True),
            "overwrite": lambda c: c.overwrite_payload(name, payload=p, points=f, wait=True),
            "delete_keys": lambda c: c.delete_payload(name, keys=[key], points=f, wait=True),
            "clear": lambda c: c.clear_payload(name, points_selector=f, wait=True),
            "delete": lambda c: c.delete(name, points_selector=f, wait=True),
        }
        request = {"op": op, "filter": dump(f), "payload": p, "key": key, "path": path}
        both(f"write {op}", lambda c: calls[op](c).status, request, lambda s: str(s).lower())
        both(f"scroll after {op}", lambda c: c.scroll(name, limit=10_000, with_payload=True)[0], request, records)
    for c in (braid, local):
        c.delete_collection(name)
    if case["divergences"]:
        os.makedirs(out, exist_ok=True)
        case["points"] = [dump(p) for p in points]
        path = os.path.join(out, f"{seed}-{index}.json")
        with open(path, "w") as fh:
            json.dump(case, fh, indent=1, default=str)
        return case, path
    return case, None


def main():
    def extra(ap):
        ap.add_argument("--seed", type=int, default=1)
        ap.add_argument("--cases", type=int, default=20)
        ap.add_argument("--out", default="target/compat/differential")

    args, proto, braid = connect.parse("braid serve against the client's local mode", extra)
    local = QdrantClient(":memory:")
    requests, diverged, files = 0, 0, []
    kinds = {}
    for i in range(args.cases):
        case, path = run_case(braid, local, args.seed, i, os.path.join(args.out, proto.lower()))
        requests += 1
        if path:
            diverged += 1
            files.append(path)
            for d in case["divergences"]:
                kinds[d["what"]] = kinds.get(d["what"], 0) + 1
            first = case["divergences"][0]
            print(f"{proto} case {args.seed}/{i}: {len(case['divergences'])} divergences, first: {first['what']}")
            print(f"  request: {json.dumps(first['request'], default=str)[:600]}")
            print(f"  braid:   {json.dumps(first['braid'], default=str)[:400]}")
            print(f"  local:   {json.dumps(first['local'], default=str)[:400]}")
    print(f"{proto}: {args.cases} cases (seed {args.seed}), {diverged} with divergences {kinds or ''}")
    if files:
        print(f"{proto}: reproductions in {os.path.dirname(files[0])}")
    sys.exit(1 if diverged else 0)


if __name__ == "__main__":
    main()
