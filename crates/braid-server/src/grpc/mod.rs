//! The gRPC API: Qdrant's `qdrant.Collections`, `qdrant.Points` and `qdrant.Qdrant`
//! services (the subset in `proto/qdrant.proto`), answered by the facade. Filters and
//! payloads are mapped to their JSON form and parsed by the same code as REST.

use std::time::Instant;

use braid::{Collection, IndexKind, PointStruct};
use serde_json::Value as Json;
use tonic::{Request, Response, Status};

use crate::auth::{Access, Need};
use crate::mapping::{self, CollectionSpec, Spaces};
use crate::replica::{IndexChange, SchemaChange};
use crate::rest::AppState;
use crate::shards::{Scope, ShardKey, Source};

#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub(crate) mod proto {
    tonic::include_proto!("qdrant");
}

use proto::collections_server::{Collections, CollectionsServer};
use proto::points_server::{Points, PointsServer};
use proto::points_update_operation::{self as batch, Operation};
use proto::qdrant_server::{Qdrant, QdrantServer};
use proto::snapshots_server::{Snapshots, SnapshotsServer};

type Reply<T> = Result<Response<T>, Status>;

mod wire;

use wire::*;

#[derive(Clone, Debug)]
struct Service(AppState);

#[tonic::async_trait]
impl Qdrant for Service {
    async fn health_check(&self, _: Request<proto::HealthCheckRequest>) -> Reply<proto::HealthCheckReply> {
        Ok(Response::new(proto::HealthCheckReply {
            title: "braid - a vector database with Qdrant's API".into(),
            version: crate::rest::QDRANT_API_VERSION.into(),
            commit: None,
        }))
    }
}

fn snapshot_out(d: &braid::SnapshotDescription) -> proto::SnapshotDescription {
    let at = crate::admin::creation_time(d);
    proto::SnapshotDescription {
        name: d.name.clone(),
        creation_time: Some(prost_types::Timestamp {
            seconds: at.timestamp(),
            nanos: at.timestamp_subsec_nanos() as i32,
        }),
        size: d.size as i64,
        checksum: d.checksum.clone(),
    }
}

/// Qdrant's `qdrant.Snapshots`: create, list and delete, per collection and full
/// (recovery is REST only, as in Qdrant).
#[tonic::async_trait]
impl Snapshots for Service {
    async fn create(&self, r: Request<proto::CreateSnapshotRequest>) -> Reply<proto::CreateSnapshotResponse> {
        self.allow(&r, Need::Manage)?;
        let (state, started, name) = (self.0.clone(), Instant::now(), r.into_inner().collection_name);
        let d = blocking(move || {
            let c = crate::admin::snapshots_of(&state, &name).map_err(err)?;
            state.snapshots.create(&state.db, Some(&c), None).map_err(err)
        })
        .await?;
        Ok(Response::new(proto::CreateSnapshotResponse {
            snapshot_description: Some(snapshot_out(&d)),
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn list(&self, r: Request<proto::ListSnapshotsRequest>) -> Reply<proto::ListSnapshotsResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (state, started, name) = (self.0.clone(), Instant::now(), r.into_inner().collection_name);
        let list = blocking(move || {
            let c = crate::admin::snapshots_of(&state, &name).map_err(err)?;
            state.snapshots.list(Some(&c)).map_err(err)
        })
        .await?;
        Ok(Response::new(proto::ListSnapshotsResponse {
            snapshot_descriptions: list.iter().map(snapshot_out).collect(),
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn delete(&self, r: Request<proto::DeleteSnapshotRequest>) -> Reply<proto::DeleteSnapshotResponse> {
        self.allow(&r, Need::Manage)?;
        let (state, started, r) = (self.0.clone(), Instant::now(), r.into_inner());
        blocking(move || {
            let c = crate::admin::snapshots_of(&state, &r.collection_name).map_err(err)?;
            state.snapshots.delete(Some(&c), &r.snapshot_name).map_err(err)
        })
        .await?;
        Ok(Response::new(proto::DeleteSnapshotResponse { time: started.elapsed().as_secs_f64() }))
    }

    async fn create_full(
        &self,
        r: Request<proto::CreateFullSnapshotRequest>,
    ) -> Reply<proto::CreateSnapshotResponse> {
        self.allow(&r, Need::Manage)?;
        let (state, started) = (self.0.clone(), Instant::now());
        let d = blocking(move || state.snapshots.create(&state.db, None, None).map_err(err)).await?;
        Ok(Response::new(proto::CreateSnapshotResponse {
            snapshot_description: Some(snapshot_out(&d)),
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn list_full(
        &self,
        r: Request<proto::ListFullSnapshotsRequest>,
    ) -> Reply<proto::ListSnapshotsResponse> {
        self.allow(&r, Need::Read(None))?;
        let (state, started) = (self.0.clone(), Instant::now());
        let list = blocking(move || state.snapshots.list(None).map_err(err)).await?;
        Ok(Response::new(proto::ListSnapshotsResponse {
            snapshot_descriptions: list.iter().map(snapshot_out).collect(),
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn delete_full(
        &self,
        r: Request<proto::DeleteFullSnapshotRequest>,
    ) -> Reply<proto::DeleteSnapshotResponse> {
        self.allow(&r, Need::Manage)?;
        let (state, started, name) = (self.0.clone(), Instant::now(), r.into_inner().snapshot_name);
        blocking(move || state.snapshots.delete(None, &name).map_err(err)).await?;
        Ok(Response::new(proto::DeleteSnapshotResponse { time: started.elapsed().as_secs_f64() }))
    }
}

#[tonic::async_trait]
impl Collections for Service {
    async fn get(
        &self,
        r: Request<proto::GetCollectionInfoRequest>,
    ) -> Reply<proto::GetCollectionInfoResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (reads, started, name) = (self.reads(), Instant::now(), r.into_inner().collection_name);
        let reported = self.0.reported;
        let cluster = self.0.cluster.clone();
        let (info, shape) = blocking(move || {
            let info = reads.source(&name)?.info().map_err(err)?;
            // Read after the source: the metadata this node has applied holds the collection.
            Ok((info, cluster.as_ref().and_then(|c| c.shape(&name))))
        })
        .await?;
        let shape = shape.unwrap_or(crate::cluster::Shape {
            shard_number: 1,
            replication_factor: 1,
            write_consistency_factor: 1,
            custom: false,
        });
        let vectors = &info.config.vectors;
        let vectors_config = match mapping::unnamed(&info.config) {
            Some(p) => proto::vectors_config::Config::Params(params_out(p)),
            None => proto::vectors_config::Config::ParamsMap(proto::VectorParamsMap {
                map: vectors
                    .iter()
                    .map(|(k, p)| (k.clone(), params_out(p)))
                    .chain(info.config.multivectors.iter().map(|(k, p)| (k.clone(), multi_params_out(p))))
                    .collect(),
            }),
        };
        let first = mapping::reported_hnsw(&info.config);
        let (status, optimizer_status) = health_out(&info);
        let result = proto::CollectionInfo {
            status: status as i32,
            optimizer_status: Some(optimizer_status),
            segments_count: 1,
            config: Some(proto::CollectionConfig {
                params: Some(proto::CollectionParams {
                    shard_number: shape.shard_number,
                    on_disk_payload: info.config.on_disk_payload,
                    vectors_config: Some(proto::VectorsConfig { config: Some(vectors_config) }),
                    replication_factor: Some(shape.replication_factor),
                    // Qdrant's `ShardingMethod`: Auto = 0, Custom = 1.
                    sharding_method: shape.custom.then_some(1),
                    write_consistency_factor: Some(shape.write_consistency_factor),
                    sparse_vectors_config: (!info.config.sparse_vectors.is_empty()).then(|| {
                        proto::SparseVectorConfig {
                            map: info
                                .config
                                .sparse_vectors
                                .iter()
                                .map(|(k, p)| {
                                    let modifier = match p.modifier {
                                        braid::Modifier::None => proto::Modifier::None,
                                        braid::Modifier::Idf => proto::Modifier::Idf,
                                    };
                                    (
                                        k.clone(),
                                        proto::SparseVectorParams {
                                            index: None,
                                            modifier: Some(modifier as i32),
                                        },
                                    )
                                })
                                .collect(),
                        }
                    }),
                }),
                hnsw_config: Some(proto::HnswConfigDiff {
                    m: Some(first.m as u64),
                    ef_construct: Some(first.ef_construct as u64),
                    full_scan_threshold: Some(first.full_scan_threshold_kb as u64),
                    max_indexing_threads: Some(0),
                    payload_m: first.payload_m.map(|m| m as u64),
                    on_disk: Some(first.on_disk),
                    ..Default::default()
                }),
                optimizer_config: Some(proto::OptimizersConfigDiff {
                    deleted_threshold: Some(
                        info.config.deleted_threshold.unwrap_or(reported.deleted_threshold),
                    ),
                    vacuum_min_vector_number: Some(
                        info.config.vacuum_min_vector_number.map_or(reported.vacuum_min, |n| n as u64),
                    ),
                    default_segment_number: Some(1),
                    flush_interval_sec: Some(reported.flush_interval_sec),
                    indexing_threshold: Some(info.config.indexing_threshold_kb as u64),
                    ..Default::default()
                }),
                wal_config: Some(proto::WalConfigDiff {
                    wal_capacity_mb: Some(reported.wal_capacity_mb),
                    wal_segments_ahead: Some(0),
                }),
                // The collection-level setting as asked for; each space's is on its params.
                quantization_config: wire::quantization_out(
                    info.config.quantization.and_then(braid::Quantization::code_kind),
                    info.config.codes_on_disk,
                ),
            }),
            payload_schema: info
                .payload_schema
                .iter()
                .map(|(k, kind)| {
                    let info = proto::PayloadSchemaInfo {
                        data_type: schema_type(*kind) as i32,
                        params: info.text_indexes.get(k).map(text_options_out),
                        points: Some(info.points_count as u64),
                    };
                    (k.clone(), info)
                })
                .collect(),
            points_count: Some(info.points_count as u64),
            indexed_vectors_count: Some(info.indexed_vectors_count.values().sum::<usize>() as u64),
        };
        Ok(Response::new(proto::GetCollectionInfoResponse {
            result: Some(result),
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn list(&self, r: Request<proto::ListCollectionsRequest>) -> Reply<proto::ListCollectionsResponse> {
        self.allow(&r, Need::Read(None))?;
        let (db, started) = (self.0.db.clone(), Instant::now());
        let cluster = self.0.cluster.clone();
        let names = blocking(move || Ok(cluster.map_or_else(|| db.list(), |c| c.list()))).await?;
        let collections = names.into_iter().map(|name| proto::CollectionDescription { name }).collect();
        Ok(Response::new(proto::ListCollectionsResponse {
            collections,
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn create(&self, r: Request<proto::CreateCollection>) -> Reply<proto::CollectionOperationResponse> {
        self.allow(&r, Need::Manage)?;
        let (db, started, mut r) = (self.0.db.clone(), Instant::now(), r.into_inner());
        // On a cluster node the placement is the cluster's to serve.
        let placement = self.0.cluster.is_some().then(|| {
            let consistency = r.write_consistency_factor.take();
            (r.shard_number.take(), r.replication_factor.take(), consistency, r.sharding_method.take())
        });
        let spaces = r.vectors_config.as_ref().and_then(|v| v.config.as_ref()).map(|c| match c {
            proto::vectors_config::Config::Params(p) => Spaces::Unnamed(space_in(p)),
            proto::vectors_config::Config::ParamsMap(m) => {
                Spaces::Named(m.map.iter().map(|(name, p)| (name.clone(), space_in(p))).collect())
            }
        });
        served("create collection", &r)?;
        let optimizers = r.optimizers_config.as_ref();
        let config = CollectionSpec {
            indexing_threshold: optimizers.and_then(|o| o.indexing_threshold).map(|t| t as usize),
            deleted_threshold: optimizers.and_then(|o| o.deleted_threshold),
            vacuum_min: optimizers.and_then(|o| o.vacuum_min_vector_number).map(|n| n as usize),
            hnsw: hnsw_in(r.hnsw_config.as_ref()),
            quantization: quantization_in(r.quantization_config.as_ref()),
            spaces,
            sparse: r
                .sparse_vectors_config
                .as_ref()
                .map(|c| {
                    c.map
                        .iter()
                        .map(|(name, p)| {
                            Ok((name.clone(), modifier_in(p.modifier)?.unwrap_or(braid::Modifier::None)))
                        })
                        .collect::<Result<Vec<_>, Status>>()
                })
                .transpose()?
                .unwrap_or_default(),
            on_disk_payload: payloads_on_disk_in(r.on_disk_payload, r.payload.as_ref()),
        }
        .config()
        .map_err(err)?;
        let name = r.collection_name;
        match (self.0.cluster.clone(), placement) {
            (Some(cluster), Some((shards, replicas, consistency, method))) => {
                // Qdrant's `ShardingMethod`: Auto = 0, Custom = 1.
                let custom = match method.unwrap_or(0) {
                    0 => false,
                    1 => true,
                    other => return Err(bad(format!("sharding_method {other}: 0 (auto) or 1 (custom)"))),
                };
                cluster
                    .create(
                        &name,
                        config,
                        shards.map(u64::from),
                        replicas.map(u64::from),
                        consistency.map(u64::from),
                        custom,
                    )
                    .await
                    .map_err(err)?
            }
            _ => blocking(move || db.create_collection(&name, config).map(drop).map_err(err)).await?,
        }
        Ok(Response::new(proto::CollectionOperationResponse {
            result: true,
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn update(&self, r: Request<proto::UpdateCollection>) -> Reply<proto::CollectionOperationResponse> {
        self.allow(&r, Need::Manage)?;
        let started = Instant::now();
        let r = checked(r, "update collection")?;
        let spec = update_in(&r)?;
        self.change_schema(r.collection_name, SchemaChange::Update(Box::new(spec))).await?;
        Ok(Response::new(proto::CollectionOperationResponse {
            result: true,
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn delete(&self, r: Request<proto::DeleteCollection>) -> Reply<proto::CollectionOperationResponse> {
        self.allow(&r, Need::Manage)?;
        let (db, started, name) = (self.0.db.clone(), Instant::now(), r.into_inner().collection_name);
        let result = match self.0.cluster.clone() {
            Some(cluster) => cluster.delete(&name).await.map_err(err)?,
            None => blocking(move || db.delete_collection(&name).map_err(err)).await?,
        };
        Ok(Response::new(proto::CollectionOperationResponse {
            result,
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn update_aliases(
        &self,
        r: Request<proto::ChangeAliases>,
    ) -> Reply<proto::CollectionOperationResponse> {
        self.allow(&r, Need::Manage)?;
        use proto::alias_operations::Action;
        let (db, started) = (self.0.db.clone(), Instant::now());
        // `timeout` bounds the wait for the change to commit; a change here commits
        // before the call returns, so there is nothing to wait for.
        let ops = r
            .into_inner()
            .actions
            .into_iter()
            .map(|a| match a.action {
                Some(Action::CreateAlias(c)) => {
                    Ok(braid::AliasOp::Create { alias: c.alias_name, collection: c.collection_name })
                }
                Some(Action::DeleteAlias(d)) => Ok(braid::AliasOp::Delete { alias: d.alias_name }),
                Some(Action::RenameAlias(r)) => {
                    Ok(braid::AliasOp::Rename { from: r.old_alias_name, to: r.new_alias_name })
                }
                None => Err(bad("an alias action needs one of create_alias, rename_alias, delete_alias")),
            })
            .collect::<Result<Vec<_>, Status>>()?;
        match self.0.cluster.clone() {
            Some(cluster) => cluster.update_aliases(&ops).await.map_err(err)?,
            None => blocking(move || db.update_aliases(&ops).map_err(err)).await?,
        }
        Ok(Response::new(proto::CollectionOperationResponse {
            result: true,
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn list_collection_aliases(
        &self,
        r: Request<proto::ListCollectionAliasesRequest>,
    ) -> Reply<proto::ListAliasesResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (db, started, name) = (self.0.db.clone(), Instant::now(), r.into_inner().collection_name);
        let cluster = self.0.cluster.clone();
        let aliases = blocking(move || {
            let aliases = match cluster {
                Some(cluster) => cluster.collection_aliases(&name).map_err(err)?,
                None => db.collection_aliases(&name).map_err(err)?,
            };
            Ok(aliases
                .into_iter()
                .map(|alias_name| proto::AliasDescription { alias_name, collection_name: name.clone() })
                .collect())
        })
        .await?;
        Ok(Response::new(proto::ListAliasesResponse { aliases, time: started.elapsed().as_secs_f64() }))
    }

    async fn list_aliases(&self, r: Request<proto::ListAliasesRequest>) -> Reply<proto::ListAliasesResponse> {
        self.allow(&r, Need::Read(None))?;
        let (db, started, cluster) = (self.0.db.clone(), Instant::now(), self.0.cluster.clone());
        let aliases = blocking(move || Ok(cluster.map_or_else(|| db.aliases(), |c| c.aliases())))
            .await?
            .into_iter()
            .map(|(alias_name, collection_name)| proto::AliasDescription { alias_name, collection_name })
            .collect();
        Ok(Response::new(proto::ListAliasesResponse { aliases, time: started.elapsed().as_secs_f64() }))
    }

    async fn collection_exists(
        &self,
        r: Request<proto::CollectionExistsRequest>,
    ) -> Reply<proto::CollectionExistsResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (db, started, name) = (self.0.db.clone(), Instant::now(), r.into_inner().collection_name);
        let cluster = self.0.cluster.clone();
        let exists =
            blocking(move || Ok(cluster.map_or_else(|| db.collection_exists(&name), |c| c.exists(&name))))
                .await?;
        Ok(Response::new(proto::CollectionExistsResponse {
            result: Some(proto::CollectionExists { exists }),
            time: started.elapsed().as_secs_f64(),
        }))
    }

    /// As `POST /collections/{c}/cluster`: the operation in REST's shape, carried out
    /// by the cluster (`Cluster::change_placement`); refused on a single server.
    async fn update_collection_cluster_setup(
        &self,
        r: Request<proto::UpdateCollectionClusterSetupRequest>,
    ) -> Reply<proto::UpdateCollectionClusterSetupResponse> {
        use proto::update_collection_cluster_setup_request::Operation;
        self.allow(&r, Need::Manage)?;
        let (started, r) = (Instant::now(), r.into_inner());
        let Some(cluster) = self.0.cluster.clone() else {
            return Err(bad(
                "distributed mode is off: this server runs alone, with one local shard per collection",
            ));
        };
        let copy = |shard_id: u32, from: u64, to: u64, method: Option<i32>, to_shard: Option<u32>| {
            serde_json::json!({"shard_id": shard_id, "from_peer_id": from, "to_peer_id": to,
                "method": method, "to_shard_id": to_shard})
        };
        let op = match r.operation {
            Some(Operation::MoveShard(m)) => {
                serde_json::json!({"move_shard": copy(m.shard_id, m.from_peer_id, m.to_peer_id, m.method, m.to_shard_id)})
            }
            Some(Operation::ReplicateShard(m)) => serde_json::json!({"replicate_shard":
                copy(m.shard_id, m.from_peer_id, m.to_peer_id, m.method, m.to_shard_id)}),
            Some(Operation::AbortTransfer(a)) => {
                serde_json::json!({"abort_transfer": {"shard_id": a.shard_id,
                "from_peer_id": a.from_peer_id, "to_peer_id": a.to_peer_id, "to_shard_id": a.to_shard_id}})
            }
            Some(Operation::DropReplica(d)) => {
                serde_json::json!({"drop_replica": {"shard_id": d.shard_id, "peer_id": d.peer_id}})
            }
            Some(Operation::CreateShardKey(c)) => {
                make_key(&cluster, &r.collection_name, Some(&c)).await?;
                return Ok(Response::new(proto::UpdateCollectionClusterSetupResponse {
                    result: true,
                    time: started.elapsed().as_secs_f64(),
                }));
            }
            Some(Operation::DeleteShardKey(d)) => {
                drop_key(&cluster, &r.collection_name, Some(&d)).await?;
                return Ok(Response::new(proto::UpdateCollectionClusterSetupResponse {
                    result: true,
                    time: started.elapsed().as_secs_f64(),
                }));
            }
            Some(Operation::RestartTransfer(_)) => serde_json::json!({"restart_transfer": {}}),
            Some(Operation::ReplicatePoints(_)) => serde_json::json!({"replicate_points": {}}),
            None => return Err(bad("update collection cluster setup: no operation given")),
        };
        cluster.change_placement(&r.collection_name, &op, r.timeout).await.map_err(err)?;
        Ok(Response::new(proto::UpdateCollectionClusterSetupResponse {
            result: true,
            time: started.elapsed().as_secs_f64(),
        }))
    }

    /// As `GET /collections/{c}/cluster`: on a single server one local shard, active,
    /// nothing remote; on a cluster node the shards here and the replicas elsewhere.
    async fn collection_cluster_info(
        &self,
        r: Request<proto::CollectionClusterInfoRequest>,
    ) -> Reply<proto::CollectionClusterInfoResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (db, started, name) = (self.0.db.clone(), Instant::now(), r.into_inner().collection_name);
        let map = match self.0.cluster.clone() {
            Some(cluster) => blocking(move || cluster.replicas(&name).map_err(err)).await?,
            None => crate::cluster::ShardMap {
                shard_count: 1,
                local: vec![(
                    0,
                    blocking(move || Ok(collection(&db, &name)?.info().points_count)).await?,
                    true,
                    None,
                )],
                remote: Vec::new(),
            },
        };
        let (active, partial) = (proto::ReplicaState::Active as i32, proto::ReplicaState::Partial as i32);
        Ok(Response::new(proto::CollectionClusterInfoResponse {
            peer_id: self.0.peer_id,
            shard_count: map.shard_count as u64,
            local_shards: map
                .local
                .into_iter()
                .map(|(shard_id, n, up, key)| proto::LocalShardInfo {
                    shard_id,
                    points_count: n as u64,
                    state: if up { active } else { partial },
                    shard_key: key.map(|k| k.to_proto()),
                })
                .collect(),
            remote_shards: map
                .remote
                .into_iter()
                .map(|(shard_id, peer_id, up, key)| proto::RemoteShardInfo {
                    shard_id,
                    peer_id,
                    state: if up { active } else { partial },
                    shard_key: key.map(|k| k.to_proto()),
                })
                .collect(),
            time: started.elapsed().as_secs_f64(),
        }))
    }

    /// As `PUT /collections/{c}/shards` (`Cluster::create_shard_key`).
    async fn create_shard_key(
        &self,
        r: Request<proto::CreateShardKeyRequest>,
    ) -> Reply<proto::CreateShardKeyResponse> {
        self.allow(&r, Need::Manage)?;
        let (started, r) = (Instant::now(), r.into_inner());
        let cluster = self.0.cluster.clone().ok_or_else(|| err(crate::shards::no_keys_alone()))?;
        make_key(&cluster, &r.collection_name, r.request.as_ref()).await?;
        Ok(Response::new(proto::CreateShardKeyResponse {
            result: true,
            time: started.elapsed().as_secs_f64(),
        }))
    }

    /// As `POST /collections/{c}/shards/delete` (`Cluster::delete_shard_key`).
    async fn delete_shard_key(
        &self,
        r: Request<proto::DeleteShardKeyRequest>,
    ) -> Reply<proto::DeleteShardKeyResponse> {
        self.allow(&r, Need::Manage)?;
        let (started, r) = (Instant::now(), r.into_inner());
        let cluster = self.0.cluster.clone().ok_or_else(|| err(crate::shards::no_keys_alone()))?;
        drop_key(&cluster, &r.collection_name, r.request.as_ref()).await?;
        Ok(Response::new(proto::DeleteShardKeyResponse {
            result: true,
            time: started.elapsed().as_secs_f64(),
        }))
    }

    /// As `GET /collections/{c}/shards`: the shard keys (none for a collection placed
    /// by point ids, or on a single server).
    async fn list_shard_keys(
        &self,
        r: Request<proto::ListShardKeysRequest>,
    ) -> Reply<proto::ListShardKeysResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (db, started, name) = (self.0.db.clone(), Instant::now(), r.into_inner().collection_name);
        let cluster = self.0.cluster.clone();
        let keys = blocking(move || match cluster {
            Some(cluster) => cluster.shard_keys(&name).map_err(err),
            None => collection(&db, &name).map(|_| None),
        })
        .await?;
        let shard_keys = keys
            .unwrap_or_default()
            .iter()
            .map(|k| proto::ShardKeyDescription { key: Some(k.to_proto()) })
            .collect();
        Ok(Response::new(proto::ListShardKeysResponse { shard_keys, time: started.elapsed().as_secs_f64() }))
    }
}

/// Makes the shard key `make` describes (gRPC `CreateShardKey`, alone or in a cluster
/// setup call).
async fn make_key(
    cluster: &crate::cluster::Cluster,
    name: &str,
    make: Option<&proto::CreateShardKey>,
) -> Result<(), Status> {
    let make = make.ok_or_else(|| bad("create shard key: `request` is missing"))?;
    let make = crate::shards::KeyToMake::from_proto(make).map_err(err)?;
    cluster.create_shard_key(name, make).await.map_err(err)
}

/// Drops the shard key `drop` names (gRPC `DeleteShardKey`).
async fn drop_key(
    cluster: &crate::cluster::Cluster,
    name: &str,
    drop: Option<&proto::DeleteShardKey>,
) -> Result<(), Status> {
    let key = ShardKey::from_proto(drop.and_then(|d| d.shard_key.as_ref())).map_err(err)?;
    cluster.delete_shard_key(name, &key).await.map_err(err)
}

/// The request, once it is known to set no field Braid does not serve.
fn checked<T: Unserved>(r: Request<T>, what: &str) -> Result<T, Status> {
    let r = r.into_inner();
    served(what, &r)?;
    Ok(r)
}

/// One write as a top-level call and an operation of a batch update both express
/// it, decoded once; `apply` is the one place it reaches the collection.
enum PointsWrite {
    Upsert(Vec<PointStruct>),
    Delete(braid::PointsSelector),
    SetPayload(braid::PointsSelector, Json, Option<String>),
    OverwritePayload(braid::PointsSelector, Json),
    DeletePayload(braid::PointsSelector, Vec<String>),
    ClearPayload(braid::PointsSelector),
    UpdateVectors(Vec<braid::PointVectors>),
    DeleteVectors(braid::PointsSelector, Vec<String>),
}

impl PointsWrite {
    fn upsert(points: &[proto::PointStruct]) -> Result<PointsWrite, Status> {
        let points = points
            .iter()
            .map(|p| {
                let v = vectors(p.vectors.as_ref())?;
                Ok(PointStruct {
                    id: point_id(p.id.as_ref())?,
                    vectors: v.dense,
                    sparse: v.sparse,
                    multi: v.multi,
                    documents: v.documents,
                    payload: Json::Object(map_to_json(&p.payload)),
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(PointsWrite::Upsert(points))
    }

    fn update_vectors(points: &[proto::PointVectors]) -> Result<PointsWrite, Status> {
        let updates = points
            .iter()
            .map(|p| {
                let v = vectors(p.vectors.as_ref())?;
                Ok(braid::PointVectors {
                    id: point_id(p.id.as_ref())?,
                    vectors: v.dense,
                    sparse: v.sparse,
                    multi: v.multi,
                    documents: v.documents,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(PointsWrite::UpdateVectors(updates))
    }

    fn delete_vectors(
        points: Option<&proto::PointsSelector>,
        names: Option<proto::VectorsSelector>,
    ) -> Result<PointsWrite, Status> {
        Ok(PointsWrite::DeleteVectors(selector(points)?, names.map(|v| v.names).unwrap_or_default()))
    }

    fn set_payload(
        points: Option<&proto::PointsSelector>,
        payload: &std::collections::HashMap<String, proto::Value>,
        key: Option<String>,
    ) -> Result<PointsWrite, Status> {
        Ok(PointsWrite::SetPayload(selector(points)?, Json::Object(map_to_json(payload)), key))
    }

    fn overwrite_payload(
        points: Option<&proto::PointsSelector>,
        payload: &std::collections::HashMap<String, proto::Value>,
        key: Option<String>,
    ) -> Result<PointsWrite, Status> {
        if key.is_some() {
            return Err(bad("overwrite payload: `key` is not served by Braid (overwrite the whole payload)"));
        }
        Ok(PointsWrite::OverwritePayload(selector(points)?, Json::Object(map_to_json(payload))))
    }

    /// One operation of an `UpdateBatch`, checked for unserved fields like the
    /// top-level call it stands for.
    fn from_batch(op: &proto::PointsUpdateOperation) -> Result<PointsWrite, Status> {
        use proto::points_update_operation::Operation;
        served("batch update", op)?;
        match &op.operation {
            Some(Operation::Upsert(u)) => PointsWrite::upsert(&u.points),
            Some(Operation::DeleteDeprecated(s)) => Ok(PointsWrite::Delete(selector(Some(s))?)),
            Some(Operation::DeletePoints(d)) => Ok(PointsWrite::Delete(selector(d.points.as_ref())?)),
            Some(Operation::SetPayload(p)) => {
                PointsWrite::set_payload(p.points_selector.as_ref(), &p.payload, p.key.clone())
            }
            Some(Operation::OverwritePayload(p)) => {
                PointsWrite::overwrite_payload(p.points_selector.as_ref(), &p.payload, p.key.clone())
            }
            Some(Operation::DeletePayload(d)) => {
                Ok(PointsWrite::DeletePayload(selector(d.points_selector.as_ref())?, d.keys.clone()))
            }
            Some(Operation::ClearPayloadDeprecated(s)) => Ok(PointsWrite::ClearPayload(selector(Some(s))?)),
            Some(Operation::ClearPayload(c)) => Ok(PointsWrite::ClearPayload(selector(c.points.as_ref())?)),
            Some(Operation::UpdateVectors(u)) => PointsWrite::update_vectors(&u.points),
            Some(Operation::DeleteVectors(d)) => {
                PointsWrite::delete_vectors(d.points_selector.as_ref(), d.vectors.clone())
            }
            None => Err(bad("batch update: an operation needs a kind")),
        }
    }

    fn apply(self, c: &Collection) -> Result<(), Status> {
        match self {
            PointsWrite::Upsert(points) => c.upsert(points),
            PointsWrite::Delete(s) => c.delete(s).map(drop),
            PointsWrite::SetPayload(s, payload, Some(key)) => c.set_payload_at(s, &key, payload),
            PointsWrite::SetPayload(s, payload, None) => c.set_payload(s, payload),
            PointsWrite::OverwritePayload(s, payload) => c.overwrite_payload(s, payload),
            PointsWrite::DeletePayload(s, keys) => {
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                c.delete_payload(s, &keys)
            }
            PointsWrite::ClearPayload(s) => c.clear_payload(s),
            PointsWrite::UpdateVectors(updates) => c.update_vectors(updates),
            PointsWrite::DeleteVectors(s, names) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                c.delete_vectors(s, &names)
            }
        }
        .map_err(err)
    }
}

/// Applies one operation of a gRPC batch, as a replicated entry carries it
/// (`crate::replica`).
pub(crate) fn apply_operation(
    c: &Collection,
    op: &proto::PointsUpdateOperation,
) -> Result<(), crate::ApiError> {
    PointsWrite::from_batch(op).and_then(|w| w.apply(c)).map_err(|s| crate::ApiError {
        kind: match s.code() {
            tonic::Code::InvalidArgument => crate::ErrorKind::BadRequest,
            tonic::Code::NotFound => crate::ErrorKind::NotFound,
            tonic::Code::ResourceExhausted => crate::ErrorKind::TooLarge,
            _ => crate::ErrorKind::Internal,
        },
        message: s.message().to_string(),
    })
}

/// A point write, answered with an `UpdateResult`: applied here on a blocking
/// thread, or, on a cluster node, proposed to the collection's replicas (read and
/// checked here first, so that what cannot be read is refused before it is agreed).
async fn update(
    state: &AppState,
    name: String,
    wait: Option<bool>,
    op: proto::points_update_operation::Operation,
) -> Reply<proto::PointsOperationResponse> {
    let started = Instant::now();
    let op = proto::PointsUpdateOperation { operation: Some(op) };
    let points_write = PointsWrite::from_batch(&op)?;
    if state.cluster.is_none()
        && crate::shards::entry_names_keys(&crate::replica::grpc_entry(vec![op.clone()]))
    {
        return Err(err(crate::shards::no_keys_alone()));
    }
    match state.cluster.clone() {
        Some(cluster) => {
            cluster.write(&name, crate::replica::grpc_entry(vec![op])).await.map_err(err)?;
            Ok(updated(state, wait, started))
        }
        None => write(state, name, wait, move |c| points_write.apply(c)).await,
    }
}

/// A payload index created or deleted, answered with an `UpdateResult`: applied
/// here, or on a cluster node proposed to the collection's replicas.
async fn change_index(
    state: &AppState,
    name: String,
    wait: Option<bool>,
    change: IndexChange,
) -> Reply<proto::PointsOperationResponse> {
    let started = Instant::now();
    match state.cluster.clone() {
        Some(cluster) => {
            cluster.write(&name, serde_json::json!({"operations": [change.op()]})).await.map_err(err)?;
            Ok(updated(state, wait, started))
        }
        None => write(state, name, wait, move |c| change.apply(c).map_err(err)).await,
    }
}

/// A write on a blocking thread, answered with an `UpdateResult`.
async fn write(
    state: &AppState,
    name: String,
    wait: Option<bool>,
    f: impl FnOnce(&Collection) -> Result<(), Status> + Send + 'static,
) -> Reply<proto::PointsOperationResponse> {
    let (db, started) = (state.db.clone(), Instant::now());
    blocking(move || f(&collection(&db, &name)?)).await?;
    Ok(updated(state, wait, started))
}

/// What the read calls reach collections through: this server's database, or on a
/// cluster node the cluster (`shards::Source`).
#[derive(Clone)]
struct Reads {
    db: braid::Database,
    cluster: Option<std::sync::Arc<crate::cluster::Cluster>>,
    /// The shard keys the call names (`shard_key_selector`) and its consistency.
    scope: Scope,
}

impl Reads {
    /// What reads of collection `name` go to; called on a blocking thread.
    fn source(&self, name: &str) -> Result<Source, Status> {
        Source::of(&self.db, self.cluster.as_ref(), name, &self.scope).map_err(err)
    }
}

/// The shards a call's `shard_key_selector` names and its `read_consistency`.
fn scope(
    selector: Option<&proto::ShardKeySelector>,
    consistency: Option<&proto::ReadConsistency>,
) -> Result<Scope, Status> {
    Ok(Scope {
        keys: crate::shards::proto_keys(selector).map_err(err)?,
        strong: crate::shards::proto_consistency(consistency).map_err(err)?,
    })
}

/// The scope of a batch (its own `read_consistency`, `outer`) whose requests name
/// theirs: the same keys for all of them, or refused; strong if any asks.
fn batch_scope<'a>(
    outer: Option<&proto::ReadConsistency>,
    requests: impl Iterator<Item = (Option<&'a proto::ShardKeySelector>, Option<&'a proto::ReadConsistency>)>,
) -> Result<Scope, Status> {
    let mut named: Option<Option<Vec<ShardKey>>> = None;
    let mut strong = crate::shards::proto_consistency(outer).map_err(err)?;
    for (selector, consistency) in requests {
        let these = scope(selector, consistency)?;
        strong |= these.strong;
        let these = these.keys;
        match &named {
            Some(first) if *first != these => {
                return Err(bad(
                    "the requests of one batch name different `shard_key_selector`s: Braid serves one \
                     selection per batch; send them as separate batches",
                ));
            }
            Some(_) => {}
            None => named = Some(these),
        }
    }
    Ok(Scope { keys: named.flatten(), strong })
}

impl Service {
    fn reads(&self) -> Reads {
        Reads { db: self.0.db.clone(), cluster: self.0.cluster.clone(), scope: Scope::default() }
    }

    /// [`Service::reads`] of the shards `selector` names, at `consistency`.
    fn scoped(
        &self,
        selector: Option<&proto::ShardKeySelector>,
        consistency: Option<&proto::ReadConsistency>,
    ) -> Result<Reads, Status> {
        Ok(Reads { scope: scope(selector, consistency)?, ..self.reads() })
    }

    /// Makes a schema change: here, or on a cluster node on every replica.
    async fn change_schema(&self, name: String, change: SchemaChange) -> Result<(), Status> {
        match self.0.cluster.clone() {
            Some(cluster) => cluster.change_schema(&name, change).await.map_err(err),
            None => {
                let db = self.0.db.clone();
                blocking(move || change.apply(&collection(&db, &name)?).map_err(err)).await
            }
        }
    }

    /// Refuses the call unless the request's access (set by the interceptor) allows
    /// `need`. A request the interceptor never saw has the access of no key at all.
    fn allow<T>(&self, r: &Request<T>, need: Need<'_>) -> Result<(), Status> {
        let access = match r.extensions().get::<Access>() {
            Some(a) => a.clone(),
            None => self.0.keys.access(|_| None).map_err(err)?,
        };
        crate::auth::check(&access, need, &self.0.db).map_err(err)
    }

    /// Runs one query-shaped call on collection `name`.
    async fn one(
        &self,
        name: &str,
        scope: Scope,
        request: braid::QueryPoints,
        timeout: Option<u64>,
    ) -> Result<Vec<proto::ScoredPoint>, Status> {
        let (reads, name) = (Reads { scope, ..self.reads() }, name.to_string());
        let (stop, _cancel_on_drop) = crate::rest::request_stop(timeout);
        let hits = blocking(move || reads.source(&name)?.query_until(request, &stop).map_err(err)).await?;
        Ok(hits.into_iter().map(scored).collect())
    }

    /// Computes the distance matrix a request asks for.
    async fn matrix(&self, r: &proto::SearchMatrixPoints) -> Result<braid::DistanceMatrix, Status> {
        let request = matrix_request(r)?;
        let (reads, name) = (
            self.scoped(r.shard_key_selector.as_ref(), r.read_consistency.as_ref())?,
            r.collection_name.clone(),
        );
        let (stop, _cancel_on_drop) = crate::rest::request_stop(r.timeout);
        blocking(move || {
            reads
                .source(&name)?
                .local("a distance matrix")
                .map_err(err)?
                .distance_matrix(&request, &stop)
                .map_err(err)
        })
        .await
    }

    /// Runs a grouped call on collection `name`.
    async fn grouped(
        &self,
        name: &str,
        scope: Scope,
        request: braid::QueryPoints,
        group: braid::GroupBy,
        timeout: Option<u64>,
    ) -> Result<proto::GroupsResult, Status> {
        let (reads, name) = (Reads { scope, ..self.reads() }, name.to_string());
        let (stop, _cancel_on_drop) = crate::rest::request_stop(timeout);
        let groups =
            blocking(move || reads.source(&name)?.query_groups_until(request, &group, &stop).map_err(err))
                .await?;
        Ok(groups_out(groups))
    }

    /// Runs a batch of query-shaped calls on collection `name`: one result list each.
    async fn batch(
        &self,
        name: &str,
        scope: Scope,
        requests: Vec<braid::QueryPoints>,
        timeout: Option<u64>,
    ) -> Result<Vec<proto::BatchResult>, Status> {
        let (reads, name) = (Reads { scope, ..self.reads() }, name.to_string());
        let (stop, _cancel_on_drop) = crate::rest::request_stop(timeout);
        let results =
            blocking(move || reads.source(&name)?.query_batch_until(requests, &stop).map_err(err)).await?;
        results
            .into_iter()
            .map(|hits| {
                Ok(proto::BatchResult { result: hits.map_err(err)?.into_iter().map(scored).collect() })
            })
            .collect()
    }
}

#[tonic::async_trait]
impl Points for Service {
    async fn upsert(&self, r: Request<proto::UpsertPoints>) -> Reply<proto::PointsOperationResponse> {
        self.allow(&r, Need::Write(&r.get_ref().collection_name))?;
        let r = checked(r, "upsert")?;
        let op = Operation::Upsert(batch::PointStructList {
            points: r.points,
            shard_key_selector: r.shard_key_selector,
            ..Default::default()
        });
        update(&self.0, r.collection_name, r.wait, op).await
    }

    async fn delete(&self, r: Request<proto::DeletePoints>) -> Reply<proto::PointsOperationResponse> {
        self.allow(&r, Need::Write(&r.get_ref().collection_name))?;
        let r = checked(r, "delete points")?;
        let op = Operation::DeletePoints(batch::DeletePoints {
            points: r.points,
            shard_key_selector: r.shard_key_selector,
        });
        update(&self.0, r.collection_name, r.wait, op).await
    }

    async fn get(&self, r: Request<proto::GetPoints>) -> Reply<proto::GetResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (r, started) = (checked(r, "retrieve")?, Instant::now());
        let reads = self.scoped(r.shard_key_selector.as_ref(), r.read_consistency.as_ref())?;
        let ids = r.ids.iter().map(|i| point_id(Some(i))).collect::<Result<Vec<_>, _>>()?;
        let (wp, wv) = (with_payload(r.with_payload.as_ref(), false), with_vectors(r.with_vectors.as_ref()));
        let records =
            blocking(move || reads.source(&r.collection_name)?.get(&ids, wp, wv).map_err(err)).await?;
        Ok(Response::new(proto::GetResponse {
            result: records.into_iter().map(retrieved).collect(),
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn update_vectors(
        &self,
        r: Request<proto::UpdatePointVectors>,
    ) -> Reply<proto::PointsOperationResponse> {
        self.allow(&r, Need::Write(&r.get_ref().collection_name))?;
        let r = checked(r, "update vectors")?;
        let op = Operation::UpdateVectors(batch::UpdateVectors {
            points: r.points,
            shard_key_selector: r.shard_key_selector,
            ..Default::default()
        });
        update(&self.0, r.collection_name, r.wait, op).await
    }

    async fn delete_vectors(
        &self,
        r: Request<proto::DeletePointVectors>,
    ) -> Reply<proto::PointsOperationResponse> {
        self.allow(&r, Need::Write(&r.get_ref().collection_name))?;
        let r = checked(r, "delete vectors")?;
        let op = Operation::DeleteVectors(batch::DeleteVectors {
            points_selector: r.points_selector,
            vectors: r.vectors,
            shard_key_selector: r.shard_key_selector,
        });
        update(&self.0, r.collection_name, r.wait, op).await
    }

    async fn set_payload(
        &self,
        r: Request<proto::SetPayloadPoints>,
    ) -> Reply<proto::PointsOperationResponse> {
        self.allow(&r, Need::Write(&r.get_ref().collection_name))?;
        let r = checked(r, "set payload")?;
        let op = Operation::SetPayload(batch::SetPayload {
            payload: r.payload,
            points_selector: r.points_selector,
            shard_key_selector: r.shard_key_selector,
            key: r.key,
        });
        update(&self.0, r.collection_name, r.wait, op).await
    }

    async fn overwrite_payload(
        &self,
        r: Request<proto::SetPayloadPoints>,
    ) -> Reply<proto::PointsOperationResponse> {
        self.allow(&r, Need::Write(&r.get_ref().collection_name))?;
        let r = checked(r, "overwrite payload")?;
        let op = Operation::OverwritePayload(batch::OverwritePayload {
            payload: r.payload,
            points_selector: r.points_selector,
            shard_key_selector: r.shard_key_selector,
            key: r.key,
        });
        update(&self.0, r.collection_name, r.wait, op).await
    }

    async fn delete_payload(
        &self,
        r: Request<proto::DeletePayloadPoints>,
    ) -> Reply<proto::PointsOperationResponse> {
        self.allow(&r, Need::Write(&r.get_ref().collection_name))?;
        let r = checked(r, "delete payload")?;
        let op = Operation::DeletePayload(batch::DeletePayload {
            keys: r.keys,
            points_selector: r.points_selector,
            shard_key_selector: r.shard_key_selector,
        });
        update(&self.0, r.collection_name, r.wait, op).await
    }

    async fn clear_payload(
        &self,
        r: Request<proto::ClearPayloadPoints>,
    ) -> Reply<proto::PointsOperationResponse> {
        self.allow(&r, Need::Write(&r.get_ref().collection_name))?;
        let r = checked(r, "clear payload")?;
        let op = Operation::ClearPayload(batch::ClearPayload {
            points: r.points,
            shard_key_selector: r.shard_key_selector,
        });
        update(&self.0, r.collection_name, r.wait, op).await
    }

    /// The operations in order, one `UpdateResult` each; not atomic, as in Qdrant: an
    /// operation that fails stops the batch, the ones before it stay.
    async fn update_batch(&self, r: Request<proto::UpdateBatchPoints>) -> Reply<proto::UpdateBatchResponse> {
        self.allow(&r, Need::Write(&r.get_ref().collection_name))?;
        let (r, started) = (checked(r, "batch update")?, Instant::now());
        let ops = r.operations.iter().map(PointsWrite::from_batch).collect::<Result<Vec<_>, Status>>()?;
        if let Some(cluster) = self.0.cluster.clone() {
            let n = r.operations.len();
            let entry = crate::replica::grpc_entry(r.operations);
            cluster.write(&r.collection_name, entry).await.map_err(err)?;
            let result = (0..n)
                .map(|_| updated(&self.0, r.wait, started).into_inner().result.unwrap_or_default())
                .collect();
            return Ok(Response::new(proto::UpdateBatchResponse {
                result,
                time: started.elapsed().as_secs_f64(),
            }));
        }
        if crate::shards::entry_names_keys(&crate::replica::grpc_entry(r.operations.clone())) {
            return Err(err(crate::shards::no_keys_alone()));
        }
        let (db, state, name, wait) = (self.0.db.clone(), self.0.clone(), r.collection_name, r.wait);
        let result = blocking(move || {
            let c = collection(&db, &name)?;
            ops.into_iter()
                .map(|op| {
                    op.apply(&c)
                        .map(|()| updated(&state, wait, started).into_inner().result.unwrap_or_default())
                })
                .collect::<Result<Vec<_>, Status>>()
        })
        .await?;
        Ok(Response::new(proto::UpdateBatchResponse { result, time: started.elapsed().as_secs_f64() }))
    }

    async fn create_field_index(
        &self,
        r: Request<proto::CreateFieldIndexCollection>,
    ) -> Reply<proto::PointsOperationResponse> {
        self.allow(&r, Need::Write(&r.get_ref().collection_name))?;
        let r = checked(r, "create index")?;
        let kind = match r.field_type.map(proto::FieldType::try_from) {
            None | Some(Ok(proto::FieldType::Keyword)) => IndexKind::Keyword,
            Some(Ok(proto::FieldType::Integer)) => IndexKind::Integer,
            Some(Ok(proto::FieldType::Float)) => IndexKind::Float,
            Some(Ok(proto::FieldType::Bool)) => IndexKind::Bool,
            Some(Ok(proto::FieldType::Datetime)) => IndexKind::Datetime,
            Some(Ok(proto::FieldType::Uuid)) => IndexKind::Uuid,
            Some(Ok(proto::FieldType::Text)) => IndexKind::Text,
            Some(other) => return Err(bad(format!("field type {other:?} is not served"))),
        };
        let text = match r.field_index_params.as_ref().and_then(|p| p.index_params.as_ref()) {
            Some(proto::payload_index_params::IndexParams::TextIndexParams(t)) if kind == IndexKind::Text => {
                Some(text_options_in(Some(t))?)
            }
            Some(_) => return Err(bad("index params do not match the field type")),
            None if kind == IndexKind::Text => Some(text_options_in(None)?),
            None => None,
        };
        let index = match text {
            Some(options) => crate::convert::FieldIndex::Text(options),
            None => crate::convert::FieldIndex::Kind(kind),
        };
        let change = IndexChange::Create { field: r.field_name, index };
        change_index(&self.0, r.collection_name, r.wait, change).await
    }

    async fn create_vector_name(
        &self,
        r: Request<proto::CreateVectorNameRequest>,
    ) -> Reply<proto::PointsOperationResponse> {
        self.allow(&r, Need::Manage)?;
        let (r, started) = (r.into_inner(), Instant::now());
        let space = new_space_in(&r)?;
        self.change_schema(r.collection_name, SchemaChange::AddVector(r.vector_name, space)).await?;
        Ok(updated(&self.0, r.wait, started))
    }

    async fn delete_vector_name(
        &self,
        r: Request<proto::DeleteVectorNameRequest>,
    ) -> Reply<proto::PointsOperationResponse> {
        self.allow(&r, Need::Manage)?;
        let (r, started) = (r.into_inner(), Instant::now());
        self.change_schema(r.collection_name, SchemaChange::DeleteVector(r.vector_name)).await?;
        Ok(updated(&self.0, r.wait, started))
    }

    async fn delete_field_index(
        &self,
        r: Request<proto::DeleteFieldIndexCollection>,
    ) -> Reply<proto::PointsOperationResponse> {
        self.allow(&r, Need::Write(&r.get_ref().collection_name))?;
        let r = r.into_inner();
        let change = IndexChange::Delete { field: r.field_name };
        change_index(&self.0, r.collection_name, r.wait, change).await
    }

    async fn search(&self, r: Request<proto::SearchPoints>) -> Reply<proto::SearchResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (r, started) = (checked(r, "search")?, Instant::now());
        let result = self
            .one(
                &r.collection_name,
                scope(r.shard_key_selector.as_ref(), r.read_consistency.as_ref())?,
                search_request(&r)?,
                r.timeout,
            )
            .await?;
        Ok(Response::new(proto::SearchResponse { result, time: started.elapsed().as_secs_f64() }))
    }

    async fn search_batch(&self, r: Request<proto::SearchBatchPoints>) -> Reply<proto::SearchBatchResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (r, started) = (checked(r, "search batch")?, Instant::now());
        let scope = batch_scope(
            r.read_consistency.as_ref(),
            r.search_points.iter().map(|q| (q.shard_key_selector.as_ref(), q.read_consistency.as_ref())),
        )?;
        let requests = r.search_points.iter().map(search_request).collect::<Result<Vec<_>, _>>()?;
        let result = self.batch(&r.collection_name, scope, requests, r.timeout).await?;
        Ok(Response::new(proto::SearchBatchResponse { result, time: started.elapsed().as_secs_f64() }))
    }

    async fn scroll(&self, r: Request<proto::ScrollPoints>) -> Reply<proto::ScrollResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (r, started) = (checked(r, "scroll")?, Instant::now());
        let reads = self.scoped(r.shard_key_selector.as_ref(), r.read_consistency.as_ref())?;
        let filter = filter(r.filter.as_ref())?;
        let offset = r.offset.as_ref().map(|o| point_id(Some(o))).transpose()?;
        let (wp, wv) = (with_payload(r.with_payload.as_ref(), true), with_vectors(r.with_vectors.as_ref()));
        let limit = r.limit.unwrap_or(10) as usize;
        let order = r.order_by.as_ref().map(order_by).transpose()?;
        if order.is_some() && offset.is_some() {
            return Err(Status::invalid_argument(
                "offset cannot be used with order_by: page with order_by.start_from",
            ));
        }
        let (records, next) = blocking(move || {
            let c = reads.source(&r.collection_name)?;
            match order {
                // Qdrant answers an ordered scroll without a next offset.
                Some(order) => c.scroll_ordered(filter.as_ref(), &order, limit, wp, wv).map(|r| (r, None)),
                None => c.scroll(filter.as_ref(), limit, offset, wp, wv),
            }
            .map_err(err)
        })
        .await?;
        Ok(Response::new(proto::ScrollResponse {
            next_page_offset: next.map(id_out),
            result: records.into_iter().map(retrieved).collect(),
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn count(&self, r: Request<proto::CountPoints>) -> Reply<proto::CountResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (r, started) = (checked(r, "count")?, Instant::now());
        let reads = self.scoped(r.shard_key_selector.as_ref(), r.read_consistency.as_ref())?;
        let filter = filter(r.filter.as_ref())?;
        let count =
            blocking(move || reads.source(&r.collection_name)?.count(filter.as_ref()).map_err(err)).await?;
        Ok(Response::new(proto::CountResponse {
            result: Some(proto::CountResult { count: count as u64 }),
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn facet(&self, r: Request<proto::FacetCounts>) -> Reply<proto::FacetResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (r, started) = (checked(r, "facet")?, Instant::now());
        let reads = self.scoped(r.shard_key_selector.as_ref(), r.read_consistency.as_ref())?;
        let filter = filter(r.filter.as_ref())?;
        // `exact: false` allows estimated counts; Braid's are always exact.
        let limit = r.limit.map_or(10, |l| l as usize);
        let hits = blocking(move || {
            reads.source(&r.collection_name)?.facet(&r.key, filter.as_ref(), limit).map_err(err)
        })
        .await?;
        let hits = hits
            .into_iter()
            .map(|h| {
                use proto::facet_value::Variant;
                let variant = match h.value {
                    braid::FacetValue::Keyword(s) => Variant::StringValue(s),
                    braid::FacetValue::Integer(i) => Variant::IntegerValue(i),
                    braid::FacetValue::Bool(b) => Variant::BoolValue(b),
                };
                proto::FacetHit {
                    value: Some(proto::FacetValue { variant: Some(variant) }),
                    count: h.count as u64,
                }
            })
            .collect();
        Ok(Response::new(proto::FacetResponse { hits, time: started.elapsed().as_secs_f64() }))
    }

    async fn query(&self, r: Request<proto::QueryPoints>) -> Reply<proto::QueryResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (r, started) = (checked(r, "query")?, Instant::now());
        let result = self
            .one(
                &r.collection_name,
                scope(r.shard_key_selector.as_ref(), r.read_consistency.as_ref())?,
                query_points(&r)?,
                r.timeout,
            )
            .await?;
        Ok(Response::new(proto::QueryResponse { result, time: started.elapsed().as_secs_f64() }))
    }

    async fn query_batch(&self, r: Request<proto::QueryBatchPoints>) -> Reply<proto::QueryBatchResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (r, started) = (checked(r, "query batch")?, Instant::now());
        let scope = batch_scope(
            r.read_consistency.as_ref(),
            r.query_points.iter().map(|q| (q.shard_key_selector.as_ref(), q.read_consistency.as_ref())),
        )?;
        let requests = r.query_points.iter().map(query_points).collect::<Result<Vec<_>, _>>()?;
        let result = self.batch(&r.collection_name, scope, requests, r.timeout).await?;
        Ok(Response::new(proto::QueryBatchResponse { result, time: started.elapsed().as_secs_f64() }))
    }

    async fn search_matrix_pairs(
        &self,
        r: Request<proto::SearchMatrixPoints>,
    ) -> Reply<proto::SearchMatrixPairsResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (r, started) = (checked(r, "search matrix")?, Instant::now());
        let m = self.matrix(&r).await?;
        let pairs = m
            .pairs()
            .into_iter()
            .map(|(a, b, score)| proto::SearchMatrixPair { a: Some(id_out(a)), b: Some(id_out(b)), score })
            .collect();
        Ok(Response::new(proto::SearchMatrixPairsResponse {
            result: Some(proto::SearchMatrixPairs { pairs }),
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn search_matrix_offsets(
        &self,
        r: Request<proto::SearchMatrixPoints>,
    ) -> Reply<proto::SearchMatrixOffsetsResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (r, started) = (checked(r, "search matrix")?, Instant::now());
        let m = self.matrix(&r).await?;
        let (offsets_row, offsets_col, scores) = m.offsets();
        let ids = m.ids.into_iter().map(id_out).collect();
        Ok(Response::new(proto::SearchMatrixOffsetsResponse {
            result: Some(proto::SearchMatrixOffsets { offsets_row, offsets_col, scores, ids }),
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn query_groups(&self, r: Request<proto::QueryPointGroups>) -> Reply<proto::QueryGroupsResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (r, started) = (checked(r, "query groups")?, Instant::now());
        let (query, group) = query_groups_request(&r)?;
        let result = Some(
            self.grouped(
                &r.collection_name,
                scope(r.shard_key_selector.as_ref(), r.read_consistency.as_ref())?,
                query,
                group,
                r.timeout,
            )
            .await?,
        );
        Ok(Response::new(proto::QueryGroupsResponse { result, time: started.elapsed().as_secs_f64() }))
    }

    async fn search_groups(
        &self,
        r: Request<proto::SearchPointGroups>,
    ) -> Reply<proto::SearchGroupsResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (r, started) = (checked(r, "search groups")?, Instant::now());
        let (query, group) = search_groups_request(&r)?;
        let result = Some(
            self.grouped(
                &r.collection_name,
                scope(r.shard_key_selector.as_ref(), r.read_consistency.as_ref())?,
                query,
                group,
                r.timeout,
            )
            .await?,
        );
        Ok(Response::new(proto::SearchGroupsResponse { result, time: started.elapsed().as_secs_f64() }))
    }

    async fn recommend_groups(
        &self,
        r: Request<proto::RecommendPointGroups>,
    ) -> Reply<proto::RecommendGroupsResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (r, started) = (checked(r, "recommend groups")?, Instant::now());
        let (query, group) = recommend_groups_request(&r)?;
        let result = Some(
            self.grouped(
                &r.collection_name,
                scope(r.shard_key_selector.as_ref(), r.read_consistency.as_ref())?,
                query,
                group,
                r.timeout,
            )
            .await?,
        );
        Ok(Response::new(proto::RecommendGroupsResponse { result, time: started.elapsed().as_secs_f64() }))
    }

    async fn recommend(&self, r: Request<proto::RecommendPoints>) -> Reply<proto::RecommendResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (r, started) = (checked(r, "recommend")?, Instant::now());
        let result = self
            .one(
                &r.collection_name,
                scope(r.shard_key_selector.as_ref(), r.read_consistency.as_ref())?,
                recommend_request(&r)?,
                r.timeout,
            )
            .await?;
        Ok(Response::new(proto::RecommendResponse { result, time: started.elapsed().as_secs_f64() }))
    }

    async fn recommend_batch(
        &self,
        r: Request<proto::RecommendBatchPoints>,
    ) -> Reply<proto::RecommendBatchResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (r, started) = (checked(r, "recommend batch")?, Instant::now());
        let scope = batch_scope(
            r.read_consistency.as_ref(),
            r.recommend_points.iter().map(|q| (q.shard_key_selector.as_ref(), q.read_consistency.as_ref())),
        )?;
        let requests = r.recommend_points.iter().map(recommend_request).collect::<Result<Vec<_>, _>>()?;
        let result = self.batch(&r.collection_name, scope, requests, r.timeout).await?;
        Ok(Response::new(proto::RecommendBatchResponse { result, time: started.elapsed().as_secs_f64() }))
    }

    async fn discover(&self, r: Request<proto::DiscoverPoints>) -> Reply<proto::DiscoverResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (r, started) = (checked(r, "discover")?, Instant::now());
        let result = self
            .one(
                &r.collection_name,
                scope(r.shard_key_selector.as_ref(), r.read_consistency.as_ref())?,
                discover_request(&r)?,
                r.timeout,
            )
            .await?;
        Ok(Response::new(proto::DiscoverResponse { result, time: started.elapsed().as_secs_f64() }))
    }

    async fn discover_batch(
        &self,
        r: Request<proto::DiscoverBatchPoints>,
    ) -> Reply<proto::DiscoverBatchResponse> {
        self.allow(&r, Need::Read(Some(&r.get_ref().collection_name)))?;
        let (r, started) = (checked(r, "discover batch")?, Instant::now());
        let scope = batch_scope(
            r.read_consistency.as_ref(),
            r.discover_points.iter().map(|q| (q.shard_key_selector.as_ref(), q.read_consistency.as_ref())),
        )?;
        let requests = r.discover_points.iter().map(discover_request).collect::<Result<Vec<_>, _>>()?;
        let result = self.batch(&r.collection_name, scope, requests, r.timeout).await?;
        Ok(Response::new(proto::DiscoverBatchResponse { result, time: started.elapsed().as_secs_f64() }))
    }
}

/// Serves the three services on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    connections: crate::conn::Limits,
    state: AppState,
    max_message_bytes: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let keys = state.keys.clone();
    // The key or token decides the request's access, kept for the handler, which
    // knows the collection the call is about (`Service::allow`).
    let check = move |mut request: Request<()>| -> Result<Request<()>, Status> {
        let access = keys
            .access(|name| request.metadata().get(name).and_then(|v| v.to_str().ok()).map(str::to_string))
            .map_err(|e| e.grpc_status())?;
        request.extensions_mut().insert(access);
        Ok(request)
    };
    let in_flight = state.in_flight.clone();
    let metrics = crate::metrics::GrpcLayer(state.metrics.clone());
    let service = Service(state);
    let incoming = crate::conn::incoming(listener, connections);
    tonic::transport::Server::builder()
        // Outermost: a call's time includes its wait for a permit, as its client sees it.
        .layer(metrics)
        // The same permits as REST: both protocols together serve at most
        // `max_concurrent_requests` at once; more wait.
        .layer(tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(in_flight))
        // `Qdrant` holds only HealthCheck, which Qdrant answers without a key.
        .add_service(QdrantServer::new(service.clone()).max_decoding_message_size(max_message_bytes))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            CollectionsServer::new(service.clone()).max_decoding_message_size(max_message_bytes),
            check.clone(),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            SnapshotsServer::new(service.clone()).max_decoding_message_size(max_message_bytes),
            check.clone(),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            PointsServer::new(service).max_decoding_message_size(max_message_bytes),
            check,
        ))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| format!("gRPC server: {e}"))
}

/// A protobuf point id read as Braid's (what a shard of the id is found from).
pub(crate) fn point_id_of(id: Option<&proto::PointId>) -> Result<braid::PointId, Status> {
    wire::point_id(id)
}
