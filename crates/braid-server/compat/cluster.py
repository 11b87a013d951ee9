"""The official Python client against a cluster of three `braid serve` nodes: the
cluster status, a collection created through one node, written through another over
the protocol under test and read through the third, its cluster information, a
payload index, a placement Braid cannot make, a collection of three shards answering
as the collection of one, and the deletion."""
import random
import time

from qdrant_client import QdrantClient, models

import connect


def main():
    args, proto, first = connect.parse(
        __doc__, lambda ap: ap.add_argument("--others", required=True,
                                            help="REST:gRPC port pairs of the other nodes, comma-separated"))
    others = [tuple(int(p) for p in pair.split(":")) for pair in args.others.split(",")]
    second, third = (QdrantClient(host=args.host, port=h, grpc_port=g, prefer_grpc=args.prefer_grpc, timeout=60)
                     for h, g in others)

    status = first.http.distributed_api.cluster_status().result
    assert status.status == "enabled", status
    assert len(status.peers) == 3, status
    assert status.raft_info.leader in {int(p) for p in status.peers}, status
    assert status.raft_info.role is not None and status.raft_info.is_voter, status

    name = f"cluster_{'grpc' if args.prefer_grpc else 'rest'}"
    if first.collection_exists(name):
        first.delete_collection(name)
    connect.refused(lambda: first.create_collection(name, vectors_config=models.VectorParams(
        size=4, distance=models.Distance.COSINE), replication_factor=4), "replication_factor",
        "four replicas on three peers")
    first.create_collection(name, vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE))
    rng = random.Random(19)
    rows = [[rng.uniform(-1, 1) for _ in range(4)] for _ in range(60)]
    second.upsert(name, wait=True, points=[
        models.PointStruct(id=i, vector=rows[i], payload={"group": "even" if i % 2 == 0 else "odd"})
        for i in range(60)])
    second.create_payload_index(name, "group", models.PayloadSchemaType.KEYWORD, wait=True)
    second.set_payload(name, payload={"seen": True}, points=[3, 4], wait=True)

    # The third node has the writes once they are acknowledged on a majority; it may
    # trail by the entries in flight, so it is asked until it has them.
    for _ in range(100):
        if third.count(name, exact=True).count == 60 and third.retrieve(name, [3])[0].payload.get("seen"):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the third node did not get the writes")
    hits = third.query_points(name, query=rows[7], limit=3,
                              query_filter=models.Filter(must=[models.FieldCondition(
                                  key="group", match=models.MatchValue(value="odd"))])).points
    assert hits[0].id == 7, hits
    assert all(h.id % 2 == 1 for h in hits), hits
    schema = third.get_collection(name).payload_schema
    assert "group" in schema, schema

    for client in (first, second, third):
        info = client.collection_cluster_info(name)
        assert info.shard_count == 1, info
        assert len(info.local_shards) == 1 and info.local_shards[0].points_count == 60, info
        assert len(info.remote_shards) == 2, info
        assert {r.peer_id for r in info.remote_shards} | {info.peer_id} == {int(p) for p in status.peers}, info

    # The same points in three shards, two replicas each: every read through any node
    # answers as the collection of one shard does.
    sharded = name + "_sharded"
    if first.collection_exists(sharded):
        first.delete_collection(sharded)
    second.create_collection(sharded, vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE),
                             shard_number=3, replication_factor=2)
    first.upsert(sharded, wait=True, points=[
        models.PointStruct(id=i, vector=rows[i], payload={"group": "even" if i % 2 == 0 else "odd"})
        for i in range(60)])
    first.create_payload_index(sharded, "group", models.PayloadSchemaType.KEYWORD, wait=True)
    first.set_payload(sharded, payload={"seen": True}, points=[3, 4], wait=True)
    odd = models.Filter(must=[models.FieldCondition(key="group", match=models.MatchValue(value="odd"))])
    fused = [models.Prefetch(query=rows[7], limit=12), models.Prefetch(query=rows[8], limit=9, filter=odd)]
    for client in (first, second, third):
        for _ in range(100):
            if client.count(sharded, exact=True).count == 60:
                break
            time.sleep(0.05)
        for c in (name, sharded):
            assert client.count(c, exact=True).count == 60
        def same(call):
            one, three = call(name), call(sharded)
            assert one == three, (one, three)
        same(lambda c: [(h.id, h.score) for h in client.query_points(c, query=rows[5], limit=6, offset=2).points])
        same(lambda c: [(h.id, h.score) for h in client.query_points(
            c, query=rows[9], query_filter=odd, limit=4).points])
        same(lambda c: [(h.id, h.score, h.payload) for h in client.query_points(
            c, prefetch=fused, query=models.FusionQuery(fusion=models.Fusion.RRF), limit=7,
            with_payload=True).points])
        same(lambda c: client.scroll(c, limit=25, offset=10, with_payload=True))
        same(lambda c: client.count(c, count_filter=odd, exact=True).count)
        same(lambda c: [(r.id, r.payload) for r in client.retrieve(c, [3, 59, 4, 1000])])
        params = client.get_collection(sharded).config.params
        assert (params.shard_number, params.replication_factor) == (3, 2), params
        info = client.collection_cluster_info(sharded)
        assert info.shard_count == 3, info
        assert len(info.local_shards) == 2 and len(info.remote_shards) == 4, info
    # A replica moved to another peer and one dropped, through the client's cluster
    # setup call; the answers stay the same.
    info = first.collection_cluster_info(sharded)
    held = {s.shard_id for s in info.local_shards}
    shard = min(held)
    peers = {int(p) for p in status.peers}
    holders = {info.peer_id} | {r.peer_id for r in info.remote_shards if r.shard_id == shard}
    (spare,) = peers - holders
    assert first.cluster_collection_update(sharded, cluster_operation=models.MoveShardOperation(
        move_shard=models.MoveShard(shard_id=shard, from_peer_id=info.peer_id, to_peer_id=spare)))
    after = first.collection_cluster_info(sharded)
    assert shard not in {s.shard_id for s in after.local_shards}, after
    assert {r.peer_id for r in after.remote_shards if r.shard_id == shard} == (holders - {info.peer_id}) | {spare}, after
    assert first.cluster_collection_update(sharded, cluster_operation=models.DropReplicaOperation(
        drop_replica=models.Replica(shard_id=shard, peer_id=spare)))
    for client in (first, second, third):
        assert client.count(sharded, exact=True).count == 60
        assert ([(h.id, h.score) for h in client.query_points(sharded, query=rows[5], limit=6).points]
                == [(h.id, h.score) for h in client.query_points(name, query=rows[5], limit=6).points])
    third.delete_collection(sharded)

    # A collection sharded by the user: a shard key per group, each group written into
    # its key, a read of one key answering as the collection filtered to that group,
    # a key dropped with its points.
    tenants = name + "_tenants"
    if first.collection_exists(tenants):
        first.delete_collection(tenants)
    first.create_collection(tenants, vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE),
                            sharding_method=models.ShardingMethod.CUSTOM, shard_number=2, replication_factor=1)
    assert first.get_collection(tenants).config.params.sharding_method == models.ShardingMethod.CUSTOM
    assert second.create_shard_key(tenants, "even")
    assert third.create_shard_key(tenants, 7, shards_number=1, replication_factor=2)
    for key, parity in (("even", 0), (7, 1)):
        first.upsert(tenants, wait=True, shard_key_selector=key, points=[
            models.PointStruct(id=i, vector=rows[i], payload={"group": "even" if parity == 0 else "odd"})
            for i in range(parity, 60, 2)])
    even = models.Filter(must=[models.FieldCondition(key="group", match=models.MatchValue(value="even"))])
    for client in (first, second, third):
        for _ in range(100):
            if len(client.list_shard_keys(tenants).shard_keys or []) == 2:
                break
            time.sleep(0.05)
        assert [k.key for k in client.list_shard_keys(tenants).shard_keys] == ["even", 7]
        assert client.count(tenants, exact=True).count == 60
        assert client.count(tenants, exact=True, shard_key_selector="even").count == 30
        for key, group in (("even", even), ([7], odd)):
            keyed = client.query_points(tenants, query=rows[5], limit=6, shard_key_selector=key).points
            filtered = client.query_points(name, query=rows[5], limit=6, query_filter=group).points
            assert [(h.id, h.score) for h in keyed] == [(h.id, h.score) for h in filtered], (keyed, filtered)
    try:
        first.upsert(tenants, wait=True, points=[models.PointStruct(id=1, vector=rows[1])])
        raise AssertionError("a write naming points without a shard key was accepted")
    except Exception as e:  # the client raises its own error type per protocol
        assert "Shard key not specified" in str(e), e
    assert second.delete_shard_key(tenants, 7)
    for client in (first, second, third):
        for _ in range(100):
            if client.count(tenants, exact=True).count == 30:
                break
            time.sleep(0.05)
        assert client.count(tenants, exact=True).count == 30
    first.delete_collection(tenants)

    third.delete_collection(name)
    for client in (first, second):
        for _ in range(100):
            if not client.collection_exists(name):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the deletion did not reach every node")
    print(f"cluster.py over {proto}: cluster status, a collection created, written, indexed, read and deleted "
          "through three nodes, its cluster information on each, the same collection in three shards "
          "answering alike, a replica moved and one dropped, shard keys made, written, read and dropped, "
          "replication_factor 4 refused")


if __name__ == "__main__":
    main()
