"""Aliases and snapshots through the official Python qdrant-client against `braid serve`.

Usage: python ops.py --http PORT --grpc PORT --snapshots DIR [--prefer-grpc]

Aliases: create, list (all and per collection), query through one, switch it in one
`update_collection_aliases` call (delete + create), rename, delete; an alias on a
missing collection refused. Snapshots: create, list, recover from the file (a
`file://` location inside the server's snapshots directory) after changing the
collection, delete; full snapshots create, list, delete. Quantization: scalar, binary
and product codes created, reported and searched with re-scoring. Datatypes: float16
and uint8 spaces created, reported, searched and read back. Local mode has no aliases
over a server's snapshots, so answers are checked against what was written.
"""
import random

import connect
from qdrant_client import models


def main():
    args, proto, client = connect.parse(__doc__.splitlines()[0])
    suffix = "grpc" if args.prefer_grpc else "rest"
    v1, v2, alias = f"ops_v1_{suffix}", f"ops_v2_{suffix}", f"ops_live_{suffix}"
    rng = random.Random(5)
    for name, tag in [(v1, "v1"), (v2, "v2")]:
        if client.collection_exists(name):
            client.delete_collection(name)
        client.create_collection(name, vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE))
        client.upsert(name, wait=True, points=[
            models.PointStruct(id=i, vector=[rng.uniform(-1, 1) for _ in range(8)], payload={"tag": tag, "n": i})
            for i in range(60)
        ])

    # Aliases.
    client.update_collection_aliases(change_aliases_operations=[
        models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=v1, alias_name=alias)),
    ])
    listed = {(a.alias_name, a.collection_name) for a in client.get_aliases().aliases}
    assert (alias, v1) in listed, listed
    assert [a.alias_name for a in client.get_collection_aliases(v1).aliases] == [alias]
    q = [0.5] * 8
    tags = {p.payload["tag"] for p in client.query_points(alias, query=q, limit=5, with_payload=True).points}
    assert tags == {"v1"}, tags
    assert client.count(alias).count == 60
    # The blue/green switch in one call.
    client.update_collection_aliases(change_aliases_operations=[
        models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)),
        models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=v2, alias_name=alias)),
    ])
    tags = {p.payload["tag"] for p in client.query_points(alias, query=q, limit=5, with_payload=True).points}
    assert tags == {"v2"}, tags
    renamed = alias + "_renamed"
    client.update_collection_aliases(change_aliases_operations=[
        models.RenameAliasOperation(rename_alias=models.RenameAlias(old_alias_name=alias, new_alias_name=renamed)),
    ])
    assert [a.alias_name for a in client.get_collection_aliases(v2).aliases] == [renamed]
    connect.refused(lambda: client.update_collection_aliases(change_aliases_operations=[
        models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="missing", alias_name="x")),
    ]), "missing", "an alias on a missing collection")
    client.update_collection_aliases(change_aliases_operations=[
        models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=renamed)),
    ])
    assert client.get_collection_aliases(v2).aliases == []

    # Snapshots of a collection: create, change the collection, recover, delete.
    d = client.create_snapshot(v1)
    assert d.name.startswith(v1) and d.size > 0 and len(d.checksum) == 64, d
    assert [s.name for s in client.list_snapshots(v1)] == [d.name]
    client.delete(v1, points_selector=models.PointIdsList(points=list(range(30))), wait=True)
    assert client.count(v1).count == 30
    location = f"file://{args.snapshots}/{v1}/{d.name}"
    assert client.recover_snapshot(v1, location=location, checksum=d.checksum)
    assert client.count(v1).count == 60
    got = sorted(p.id for p in client.scroll(v1, limit=100)[0])
    assert got == list(range(60)), got
    client.delete_snapshot(v1, d.name)
    assert client.list_snapshots(v1) == []

    # Full snapshots.
    full = client.create_full_snapshot()
    assert full.name.startswith("full-snapshot-"), full
    assert full.name in [s.name for s in client.list_full_snapshots()]
    client.delete_full_snapshot(full.name)
    assert full.name not in [s.name for s in client.list_full_snapshots()]

    for name in (v1, v2):
        client.delete_collection(name)

    # Quantization: each kind Braid keeps, created and reported as the client builds
    # it, and searched with the client's re-scoring parameters.
    quant = f"ops_quant_{suffix}"
    kinds = [
        (models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8)), "scalar"),
        (models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True)), "binary"),
        (models.ProductQuantization(product=models.ProductQuantizationConfig(
            compression=models.CompressionRatio.X16, always_ram=True)), "product"),
    ]
    rows = [[rng.uniform(-1, 1) for _ in range(64)] for _ in range(80)]
    for config, kind in kinds:
        if client.collection_exists(quant):
            client.delete_collection(quant)
        client.create_collection(quant, vectors_config=models.VectorParams(size=64, distance=models.Distance.DOT),
                                 quantization_config=config)
        # Braid keeps codes per space and reports them on the vector's params.
        got = client.get_collection(quant).config.params.vectors.quantization_config
        assert getattr(got, kind) is not None, (kind, got)
        client.upsert(quant, wait=True, points=[models.PointStruct(id=i, vector=v) for i, v in enumerate(rows)])
        params = models.SearchParams(quantization=models.QuantizationSearchParams(rescore=True, oversampling=2.0))
        hits = client.query_points(quant, query=rows[7], limit=3, search_params=params).points
        exact = sum(x * x for x in rows[7])
        assert hits[0].id == 7 and abs(hits[0].score - exact) < 1e-3 * (1 + exact), (kind, hits[0])
    connect.refused(lambda: client.create_collection(
        quant + "_x", vectors_config=models.VectorParams(size=64, distance=models.Distance.DOT),
        quantization_config=models.ProductQuantization(product=models.ProductQuantizationConfig(
            compression=models.CompressionRatio.X16, always_ram=False))), "always_ram", "product codes off RAM")
    client.delete_collection(quant)

    # Datatypes: float16 and uint8 rows, created as the client builds them, reported,
    # scored on the stored values, and a value uint8 cannot hold refused.
    typed = f"ops_typed_{suffix}"
    if client.collection_exists(typed):
        client.delete_collection(typed)
    client.create_collection(typed, vectors_config={
        "half": models.VectorParams(size=4, distance=models.Distance.DOT, datatype=models.Datatype.FLOAT16),
        "byte": models.VectorParams(size=4, distance=models.Distance.EUCLID, datatype=models.Datatype.UINT8),
    })
    params = client.get_collection(typed).config.params.vectors
    assert params["half"].datatype == models.Datatype.FLOAT16, params
    assert params["byte"].datatype == models.Datatype.UINT8, params
    client.upsert(typed, wait=True, points=[
        models.PointStruct(id=i, vector={"half": [0.5, 0.25, i, 1.0], "byte": [i, 2 * i, 0, 255]}) for i in range(10)
    ])
    # Braid scores the query as given against the stored integers (not rounded).
    hits = client.query_points(typed, query=[3.2, 6.4, 0, 255], using="byte", limit=2).points
    assert [h.id for h in hits] == [3, 4], hits
    assert abs(hits[0].score - 0.2 ** 0.5) < 1e-5 and abs(hits[1].score - 3.2 ** 0.5) < 1e-5, hits
    got = client.retrieve(typed, ids=[4], with_vectors=True)[0].vector
    assert got["byte"] == [4, 8, 0, 255] and got["half"] == [0.5, 0.25, 4, 1.0], got
    connect.refused(lambda: client.upsert(typed, wait=True, points=[
        models.PointStruct(id=99, vector={"byte": [256, 0, 0, 0]})]), "uint8 cannot hold", "256 in a uint8 space")
    client.delete_collection(typed)

    # Payloads on disk: created with on_disk_payload, reported, read back and filtered;
    # moved back into memory by an update, as the client builds both.
    stored = f"ops_payloads_{suffix}"
    if client.collection_exists(stored):
        client.delete_collection(stored)
    client.create_collection(stored, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT),
                             on_disk_payload=True)
    assert client.get_collection(stored).config.params.on_disk_payload is True
    client.upsert(stored, wait=True, points=[
        models.PointStruct(id=i, vector=[1.0, i], payload={"n": i, "text": f"row {i}"}) for i in range(20)
    ])
    odd = models.Filter(must=[models.FieldCondition(key="text", match=models.MatchValue(value="row 7"))])
    assert [p.id for p in client.scroll(stored, scroll_filter=odd)[0]] == [7]
    client.update_collection(stored, collection_params=models.CollectionParamsDiff(on_disk_payload=False))
    assert client.get_collection(stored).config.params.on_disk_payload is False
    assert client.retrieve(stored, ids=[3])[0].payload == {"n": 3, "text": "row 3"}
    client.delete_collection(stored)

    # Graphs on disk: hnsw_config.on_disk at create, reported, searched; moved back into
    # memory by an update of one vector's hnsw_config, as the client builds both.
    mapped = f"ops_graphs_{suffix}"
    if client.collection_exists(mapped):
        client.delete_collection(mapped)
    client.create_collection(mapped, vectors_config={"v": models.VectorParams(size=4, distance=models.Distance.COSINE)},
                             hnsw_config=models.HnswConfigDiff(on_disk=True))
    assert client.get_collection(mapped).config.params.vectors["v"].hnsw_config.on_disk is True
    rows = [[1.0, i, i % 3, 0.5] for i in range(50)]
    client.upsert(mapped, wait=True, points=[models.PointStruct(id=i, vector={"v": rows[i]}) for i in range(50)])
    before = [p.id for p in client.query_points(mapped, query=rows[17], using="v", limit=3).points]
    assert before[0] == 17, before
    client.update_collection(mapped, vectors_config={"v": models.VectorParamsDiff(
        hnsw_config=models.HnswConfigDiff(on_disk=False))})
    assert client.get_collection(mapped).config.params.vectors["v"].hnsw_config.on_disk is False
    assert [p.id for p in client.query_points(mapped, query=rows[17], using="v", limit=3).points] == before
    client.delete_collection(mapped)

    # Cluster information, as a single Qdrant node (distributed mode off) reports it.
    clustered = f"ops_cluster_{suffix}"
    if client.collection_exists(clustered):
        client.delete_collection(clustered)
    client.create_collection(clustered, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    client.upsert(clustered, wait=True, points=[models.PointStruct(id=i, vector=[1.0, i]) for i in range(7)])
    info = client.collection_cluster_info(clustered)
    assert info.shard_count == 1 and len(info.local_shards) == 1, info
    assert info.local_shards[0].points_count == 7, info
    assert info.remote_shards == [] and info.shard_transfers == [], info
    client.delete_collection(clustered)
    print(f"ops.py over {proto}: aliases (create, list, switch, rename, delete, refusal), snapshots "
          "(create, list, recover, delete; full create, list, delete), quantization (scalar, binary, "
          "product; a refusal), datatypes (float16, uint8; a refusal), payloads and graphs on disk, cluster "
          "information as written")


if __name__ == "__main__":
    main()
