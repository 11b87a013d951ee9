//! The tutorial through gRPC with the official Rust `qdrant-client` against `braid
//! serve`, compared with the embedded facade on the same data.

use crate::common;

use std::collections::HashMap;

use braid::{
    Database, Filter, Fusion as LocalFusion, IndexKind, PointId, Prefetch, QueryRequest,
    SearchParams as LocalParams, SearchRequest, field,
};
use qdrant_client::qdrant::{
    self as q, Condition, CountPoints, CreateCollection, CreateFieldIndexCollection, DeletePointVectors,
    DeletePoints, FieldType, GetPoints, PointStruct, PointVectors, PointsIdsList, PointsSelector,
    PrefetchQuery, Query, QueryBatchPoints, QueryPoints, ScrollPoints, SearchBatchPoints, SearchParams,
    SearchPoints, SetPayloadPoints, UpdatePointVectors, UpsertPoints, VectorParams, VectorParamsMap,
    VectorsConfig, WithPayloadSelector, WithVectorsSelector, points_selector::PointsSelectorOneOf,
};
use qdrant_client::{Payload, Qdrant};
use serde_json::json;

use common::*;

/// The official client on the running server's gRPC port.
fn grpc_client(running: &Running) -> Qdrant {
    Qdrant::from_url(&format!("http://{}", running.server.grpc_addr()))
        .skip_compatibility_check()
        .build()
        .expect("client")
}

const EXACT: LocalParams = LocalParams::EXACT;

fn exact() -> Option<SearchParams> {
    Some(SearchParams { exact: Some(true), ..Default::default() })
}

fn id_of(id: &Option<q::PointId>) -> PointId {
    match id.as_ref().and_then(|i| i.point_id_options.clone()) {
        Some(q::point_id::PointIdOptions::Num(n)) => PointId::Num(n),
        Some(q::point_id::PointIdOptions::Uuid(u)) => PointId::Uuid(u.parse().expect("uuid")),
        None => panic!("a point without an id"),
    }
}

fn grpc_id(id: PointId) -> q::PointId {
    match id {
        PointId::Num(n) => n.into(),
        PointId::Uuid(u) => u.hyphenated().to_string().into(),
    }
}

fn hits(points: &[q::ScoredPoint]) -> Vec<(PointId, f32)> {
    points.iter().map(|p| (id_of(&p.id), p.score)).collect()
}

fn local(points: Vec<braid::ScoredPoint>) -> Vec<(PointId, f32)> {
    points.into_iter().map(|p| (p.id, p.score)).collect()
}

fn ids(list: &[u64]) -> Option<PointsSelector> {
    Some(PointsSelector {
        points_selector_one_of: Some(PointsSelectorOneOf::Points(PointsIdsList {
            ids: list.iter().map(|&i| i.into()).collect(),
        })),
    })
}

fn nearest(v: &[f32], using: &str, limit: u64) -> PrefetchQuery {
    PrefetchQuery {
        query: Some(Query::new_nearest(v.to_vec())),
        using: Some(using.into()),
        limit: Some(limit),
        params: exact(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_rust_client_walks_the_tutorial() {
    let running = start(None, None).await;
    let client = grpc_client(&running);
    let embedded = Database::in_memory();
    let products = embedded.create_collection("products", config()).expect("config");
    let name = "products".to_string();

    let health = client.health_check().await.expect("health");
    assert!(health.title.contains("braid"));

    // 1. create with named vectors and per-space HNSW settings.
    let params = |size: u64, m: u64, ef: u64| VectorParams {
        size,
        distance: q::Distance::Cosine.into(),
        hnsw_config: Some(q::HnswConfigDiff { m: Some(m), ef_construct: Some(ef), ..Default::default() }),
        ..Default::default()
    };
    let vectors_config = VectorsConfig {
        config: Some(q::vectors_config::Config::ParamsMap(VectorParamsMap {
            map: [
                ("text".to_string(), params(TEXT as u64, 16, 200)),
                ("image".to_string(), params(IMAGE as u64, 32, 256)),
            ]
            .into(),
        })),
    };
    client
        .create_collection(CreateCollection {
            collection_name: name.clone(),
            vectors_config: Some(vectors_config.clone()),
            ..Default::default()
        })
        .await
        .expect("create");
    let again = client
        .create_collection(CreateCollection {
            collection_name: name.clone(),
            vectors_config: Some(vectors_config),
            ..Default::default()
        })
        .await;
    assert!(again.is_err(), "a second create is refused");

    // 2. upsert in batches.
    let data = common::products();
    for batch in data.chunks(100) {
        let points: Vec<PointStruct> = batch
            .iter()
            .map(|p| {
                let vectors: HashMap<String, Vec<f32>> = p.vectors.clone().into_iter().collect();
                let payload: Payload = p.payload.clone().try_into().expect("object payload");
                PointStruct::new(grpc_id(p.id), vectors, payload)
            })
            .collect();
        client
            .upsert_points(UpsertPoints {
                collection_name: name.clone(),
                wait: Some(true),
                points,
                ..Default::default()
            })
            .await
            .expect("upsert");
        products.upsert(batch.to_vec()).expect("valid");
    }
    client
        .create_field_index(CreateFieldIndexCollection {
            collection_name: name.clone(),
            wait: Some(true),
            field_name: "category".into(),
            field_type: Some(FieldType::Keyword.into()),
            ..Default::default()
        })
        .await
        .expect("index");
    products.create_payload_index("category", IndexKind::Keyword).expect("index");
    let info = client.collection_info(&name).await.expect("info").result.expect("info");
    assert_eq!(info.points_count, Some(300));

    // Quantization: scalar Int8 (the default, 64 components and up), binary and
    // product codes are kept; settings Braid does not have are refused.
    let wide = |quantization: q::quantization_config::Quantization| CreateCollection {
        collection_name: "wide".into(),
        vectors_config: Some(VectorsConfig {
            config: Some(q::vectors_config::Config::Params(VectorParams {
                size: 64,
                distance: q::Distance::Cosine.into(),
                quantization_config: Some(q::QuantizationConfig { quantization: Some(quantization) }),
                ..Default::default()
            })),
        }),
        ..Default::default()
    };
    let refused = client
        .create_collection(wide(q::quantization_config::Quantization::Product(q::ProductQuantization {
            compression: q::CompressionRatio::X16.into(),
            memory: Some(q::Memory::Cold.into()),
            ..Default::default()
        })))
        .await
        .expect_err("product codes off RAM are refused");
    assert!(refused.to_string().contains("cold"), "{refused}");
    let mut product = wide(q::quantization_config::Quantization::Product(q::ProductQuantization {
        compression: q::CompressionRatio::X32.into(),
        memory: Some(q::Memory::Pinned.into()),
        ..Default::default()
    }));
    product.collection_name = "pq".into();
    // Asked for at the collection level: reported there as well as on the space.
    if let Some(q::vectors_config::Config::Params(p)) =
        product.vectors_config.as_mut().and_then(|v| v.config.as_mut())
    {
        product.quantization_config = p.quantization_config.take();
    }
    client.create_collection(product).await.expect("product x32");
    let pq_info = client.collection_info("pq").await.expect("info").result.expect("info");
    let collection_level = pq_info.config.as_ref().and_then(|c| c.quantization_config);
    assert!(
        matches!(
            collection_level.and_then(|q| q.quantization),
            Some(q::quantization_config::Quantization::Product(pq)) if pq.compression == q::CompressionRatio::X32 as i32
        ),
        "collection-level product codes reported"
    );
    assert!(
        matches!(
            one_space(pq_info).quantization_config.and_then(|q| q.quantization),
            Some(q::quantization_config::Quantization::Product(pq)) if pq.compression == q::CompressionRatio::X32 as i32
        ),
        "product codes reported"
    );
    client.delete_collection("pq").await.expect("delete pq");
    let half = q::BinaryQuantization {
        encoding: Some(q::BinaryQuantizationEncoding::OneAndHalfBits.into()),
        ..Default::default()
    };
    let refused = client
        .create_collection(wide(q::quantization_config::Quantization::Binary(half)))
        .await
        .expect_err("1.5-bit binary quantization is refused");
    assert!(refused.to_string().contains("OneAndHalfBits"), "{refused}");
    // Two bits a component: served, and reported as asked.
    let mut two_bits = wide(q::quantization_config::Quantization::Binary(q::BinaryQuantization {
        encoding: Some(q::BinaryQuantizationEncoding::TwoBits.into()),
        ..Default::default()
    }));
    two_bits.collection_name = "two".into();
    client.create_collection(two_bits).await.expect("two-bit binary codes");
    let two_info = client.collection_info("two").await.expect("info").result.expect("info");
    assert!(
        matches!(
            one_space(two_info).quantization_config.and_then(|q| q.quantization),
            Some(q::quantization_config::Quantization::Binary(b))
                if b.encoding == Some(q::BinaryQuantizationEncoding::TwoBits.into())
        ),
        "two-bit codes reported"
    );
    client.delete_collection("two").await.expect("delete two");
    // Binary codes in memory with the rows on disk: the configuration for a large space.
    let mut bits = wide(q::quantization_config::Quantization::Binary(Default::default()));
    bits.collection_name = "bits".into();
    if let Some(q::vectors_config::Config::Params(p)) =
        bits.vectors_config.as_mut().and_then(|v| v.config.as_mut())
    {
        p.memory = Some(q::Memory::Cold.into());
    }
    client.create_collection(bits).await.expect("binary, rows on disk");
    let bits_info = client.collection_info("bits").await.expect("info").result.expect("info");
    let p = one_space(bits_info);
    assert_eq!(p.memory, Some(q::Memory::Cold.into()), "rows on disk reported");
    assert!(
        matches!(
            p.quantization_config.and_then(|q| q.quantization),
            Some(q::quantization_config::Quantization::Binary(b))
                if b.encoding == Some(q::BinaryQuantizationEncoding::OneBit.into())
        ),
        "binary codes reported"
    );
    client.delete_collection("bits").await.expect("delete bits");
    let scalar = q::ScalarQuantization { r#type: q::QuantizationType::Int8.into(), ..Default::default() };
    client
        .create_collection(wide(q::quantization_config::Quantization::Scalar(scalar)))
        .await
        .expect("scalar int8");
    let wide_info = client.collection_info("wide").await.expect("info").result.expect("info");
    assert!(matches!(
        one_space(wide_info).quantization_config.and_then(|c| c.quantization),
        Some(q::quantization_config::Quantization::Scalar(s)) if s.r#type == q::QuantizationType::Int8 as i32
    ));
    client.delete_collection("wide").await.expect("delete wide");

    // 3. search one space.
    let (tq, iq) = query_vectors(11);
    let got = client
        .search_points(SearchPoints {
            collection_name: name.clone(),
            vector: tq.clone(),
            vector_name: Some("text".into()),
            limit: 5,
            offset: Some(1),
            score_threshold: Some(0.05),
            params: exact(),
            ..Default::default()
        })
        .await
        .expect("search");
    let want = products
        .search(
            &SearchRequest::new("text", tq.clone()).limit(5).offset(1).score_threshold(0.05).params(EXACT),
        )
        .expect("search");
    assert_eq!(hits(&got.result), local(want));

    // 4–5. prefetch + RRF / DBSF with a top-level filter.
    let apparel = q::Filter::must([Condition::matches("category", "apparel".to_string())]);
    for (fusion, local_fusion) in
        [(q::Fusion::Rrf, LocalFusion::rrf()), (q::Fusion::Dbsf, LocalFusion::dbsf())]
    {
        let got = client
            .query(QueryPoints {
                collection_name: name.clone(),
                prefetch: vec![nearest(&tq, "text", 20), nearest(&iq, "image", 20)],
                query: Some(Query::new_fusion(fusion)),
                filter: Some(apparel.clone()),
                limit: Some(10),
                with_payload: Some(WithPayloadSelector::from(true)),
                ..Default::default()
            })
            .await
            .expect("query");
        let want = products
            .query(
                QueryRequest::fusion(
                    local_fusion,
                    vec![
                        Prefetch::nearest("text", tq.clone(), 20).params(EXACT),
                        Prefetch::nearest("image", iq.clone(), 20).params(EXACT),
                    ],
                )
                .filter(Filter::must([field("category").eq("apparel")])),
            )
            .expect("query");
        assert_eq!(hits(&got.result), local(want));
        for p in &got.result {
            assert_eq!(
                p.payload.get("category").and_then(|v| v.as_str()).map(String::as_str),
                Some("apparel")
            );
        }
    }

    // 7. batches.
    let got = client
        .search_batch_points(SearchBatchPoints {
            collection_name: name.clone(),
            search_points: vec![
                SearchPoints {
                    collection_name: name.clone(),
                    vector: tq.clone(),
                    vector_name: Some("text".into()),
                    limit: 3,
                    params: exact(),
                    ..Default::default()
                },
                SearchPoints {
                    collection_name: name.clone(),
                    vector: iq.clone(),
                    vector_name: Some("image".into()),
                    limit: 3,
                    params: exact(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        })
        .await
        .expect("batch");
    let want = products
        .search_batch(&[
            SearchRequest::new("text", tq.clone()).limit(3).params(EXACT),
            SearchRequest::new("image", iq.clone()).limit(3).params(EXACT),
        ])
        .expect("batch");
    for (g, w) in got.result.iter().zip(want) {
        assert_eq!(hits(&g.result), local(w.expect("ok")));
    }
    let got = client
        .query_batch(QueryBatchPoints {
            collection_name: name.clone(),
            query_points: vec![QueryPoints {
                collection_name: name.clone(),
                prefetch: vec![nearest(&tq, "text", 20), nearest(&iq, "image", 20)],
                query: Some(Query::new_fusion(q::Fusion::Rrf)),
                limit: Some(5),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect("query batch");
    let want = products
        .query(
            QueryRequest::fusion(
                LocalFusion::rrf(),
                vec![
                    Prefetch::nearest("text", tq.clone(), 20).params(EXACT),
                    Prefetch::nearest("image", iq.clone(), 20).params(EXACT),
                ],
            )
            .limit(5),
        )
        .expect("query");
    assert_eq!(hits(&got.result[0].result), local(want));

    // 8–9. selectors, update_vectors, delete_vectors, payload ops.
    client
        .update_vectors(UpdatePointVectors {
            collection_name: name.clone(),
            wait: Some(true),
            points: vec![PointVectors {
                id: Some(4u64.into()),
                vectors: Some(HashMap::from([("image".to_string(), vec![0.5f32; IMAGE])]).into()),
            }],
            ..Default::default()
        })
        .await
        .expect("update vectors");
    products
        .update_vectors(vec![(4u64.into(), [("image".to_string(), vec![0.5f32; IMAGE])].into())])
        .expect("update");
    client
        .delete_vectors(DeletePointVectors {
            collection_name: name.clone(),
            wait: Some(true),
            points_selector: ids(&[5]),
            vectors: Some(q::VectorsSelector { names: vec!["text".into()] }),
            ..Default::default()
        })
        .await
        .expect("delete vectors");
    products.delete_vectors(vec![PointId::from(5u64)], &["text"]).expect("delete vectors");
    let sale: Payload = json!({"sale": true}).try_into().expect("object");
    client
        .set_payload(SetPayloadPoints {
            collection_name: name.clone(),
            wait: Some(true),
            payload: sale.into(),
            points_selector: Some(PointsSelector {
                points_selector_one_of: Some(PointsSelectorOneOf::Filter(q::Filter::must([
                    Condition::matches("category", "toys".to_string()),
                ]))),
            }),
            ..Default::default()
        })
        .await
        .expect("set payload");
    products.set_payload(Filter::must([field("category").eq("toys")]), json!({"sale": true})).expect("set");
    client
        .delete_payload(q::DeletePayloadPoints {
            collection_name: name.clone(),
            wait: Some(true),
            keys: vec!["stock".into()],
            points_selector: ids(&[7]),
            ..Default::default()
        })
        .await
        .expect("delete payload");
    products.delete_payload(vec![PointId::from(7u64)], &["stock"]).expect("delete payload");
    client
        .clear_payload(q::ClearPayloadPoints {
            collection_name: name.clone(),
            wait: Some(true),
            points: ids(&[8]),
            ..Default::default()
        })
        .await
        .expect("clear");
    products.clear_payload(vec![PointId::from(8u64)]).expect("clear");

    let got = client
        .get_points(GetPoints {
            collection_name: name.clone(),
            ids: vec![4u64.into(), 5u64.into(), 7u64.into()],
            with_payload: Some(true.into()),
            with_vectors: Some(WithVectorsSelector::from(true)),
            ..Default::default()
        })
        .await
        .expect("get");
    let want = products.get(&[4u64.into(), 5u64.into(), 7u64.into()], true, true).expect("get");
    assert_eq!(got.result.len(), want.len());
    for (g, w) in got.result.iter().zip(&want) {
        assert_eq!(id_of(&g.id), w.id);
        let payload: serde_json::Value = Payload::from(g.payload.clone()).into();
        assert_eq!(Some(payload), w.payload);
        let vectors = g.vectors.clone().expect("vectors");
        let Some(q::vectors_output::VectorsOptions::Vectors(named)) = vectors.vectors_options else {
            panic!("named vectors")
        };
        let named: braid::NamedVectors = named
            .vectors
            .into_iter()
            .map(|(k, v)| match v.vector {
                Some(q::vector_output::Vector::Dense(d)) => (k, d.data),
                other => panic!("dense expected, got {other:?}"),
            })
            .collect();
        assert_eq!(Some(named), w.vectors);
    }

    // 10. nested prefetch re-ranked by text.
    let got = client
        .query(QueryPoints {
            collection_name: name.clone(),
            prefetch: vec![PrefetchQuery {
                prefetch: vec![nearest(&tq, "text", 20), nearest(&iq, "image", 20)],
                query: Some(Query::new_fusion(q::Fusion::Rrf)),
                limit: Some(15),
                ..Default::default()
            }],
            query: Some(Query::new_nearest(tq.clone())),
            using: Some("text".into()),
            limit: Some(10),
            ..Default::default()
        })
        .await
        .expect("nested");
    let want = products
        .query(
            QueryRequest::rescore(
                "text",
                tq.clone(),
                vec![Prefetch::fusion(
                    LocalFusion::rrf(),
                    vec![
                        Prefetch::nearest("text", tq.clone(), 20).params(EXACT),
                        Prefetch::nearest("image", iq.clone(), 20).params(EXACT),
                    ],
                    15,
                )],
            )
            .limit(10),
        )
        .expect("query");
    assert_eq!(hits(&got.result), local(want));

    // 12. scroll, count, delete, list, exists, delete collection.
    let shoes = q::Filter::must([Condition::matches("category", "shoes".to_string())]);
    let page = client
        .scroll(ScrollPoints {
            collection_name: name.clone(),
            filter: Some(shoes.clone()),
            limit: Some(4),
            ..Default::default()
        })
        .await
        .expect("scroll");
    let (want, next) = products
        .scroll(Some(&Filter::must([field("category").eq("shoes")])), 4, None, true, false)
        .expect("scroll");
    assert_eq!(
        page.result.iter().map(|r| id_of(&r.id)).collect::<Vec<_>>(),
        want.iter().map(|r| r.id).collect::<Vec<_>>()
    );
    assert_eq!(page.next_page_offset.map(|o| id_of(&Some(o))), next);
    let count = client
        .count(CountPoints {
            collection_name: name.clone(),
            filter: Some(shoes),
            exact: Some(true),
            ..Default::default()
        })
        .await
        .expect("count");
    assert_eq!(
        count.result.expect("count").count as usize,
        products.count(Some(&Filter::must([field("category").eq("shoes")]))).expect("count")
    );
    client
        .delete_points(DeletePoints {
            collection_name: name.clone(),
            wait: Some(true),
            points: ids(&[0, 1]),
            ..Default::default()
        })
        .await
        .expect("delete");
    products.delete(vec![PointId::from(0u64), 1u64.into()]).expect("delete");
    let all = client
        .count(CountPoints { collection_name: name.clone(), ..Default::default() })
        .await
        .expect("count");
    assert_eq!(all.result.expect("count").count as usize, products.count(None).expect("count"));

    let list = client.list_collections().await.expect("list");
    assert_eq!(list.collections.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec!["products"]);
    assert!(client.collection_exists(&name).await.expect("exists"));
    client.delete_collection(&name).await.expect("delete collection");
    assert!(!client.collection_exists(&name).await.expect("exists"));
    let missing = client.collection_info("nope").await.expect_err("unknown collection");
    assert!(missing.to_string().contains("nope"), "{missing}");
    running.server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_filters_on_datetime_ranges_value_counts_and_any_word() {
    let running = start(None, None).await;
    let client = grpc_client(&running);
    client
        .create_collection(CreateCollection {
            collection_name: "events".into(),
            vectors_config: Some(VectorsConfig {
                config: Some(q::vectors_config::Config::Params(VectorParams {
                    size: 2,
                    distance: q::Distance::Dot.into(),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        })
        .await
        .expect("create");
    // One event a day through January 2024.
    let points: Vec<PointStruct> = (1..=31u64)
        .map(|day| {
            let payload: Payload = json!({
                "at": format!("2024-01-{day:02}T12:00:00Z"),
                "tags": vec!["t"; day as usize % 4],
                "note": format!("day {day}"),
            })
            .try_into()
            .expect("object");
            PointStruct::new(day, vec![1.0, day as f32], payload)
        })
        .collect();
    client
        .upsert_points(UpsertPoints {
            collection_name: "events".into(),
            wait: Some(true),
            points,
            ..Default::default()
        })
        .await
        .expect("upsert");
    // 2024-01-10T00:00:00Z ≤ at < 2024-01-20T00:00:00Z: days 10 to 19.
    let (from, to) = (1_704_844_800, 1_705_708_800);
    let range = q::DatetimeRange {
        gte: Some(prost_types::Timestamp { seconds: from, nanos: 0 }),
        lt: Some(prost_types::Timestamp { seconds: to, nanos: 0 }),
        ..Default::default()
    };
    let count = client
        .count(CountPoints {
            collection_name: "events".into(),
            filter: Some(q::Filter::must([Condition::datetime_range("at", range)])),
            exact: Some(true),
            ..Default::default()
        })
        .await
        .expect("count");
    assert_eq!(count.result.expect("count").count, 10);
    // values_count (integer bounds) and text_any, which the gRPC decoder used to refuse.
    let count_where = |condition: Condition| {
        let client = &client;
        async move {
            let filter = Some(q::Filter::must([condition]));
            let request = CountPoints {
                collection_name: "events".into(),
                filter,
                exact: Some(true),
                ..Default::default()
            };
            client.count(request).await.expect("count").result.expect("count").count
        }
    };
    let three_tags = q::ValuesCount { gt: Some(2), ..Default::default() };
    assert_eq!(count_where(Condition::values_count("tags", three_tags)).await, 8, "days 3, 7, …, 31");
    let text_any = Condition {
        condition_one_of: Some(q::condition::ConditionOneOf::Field(q::FieldCondition {
            key: "note".into(),
            r#match: Some(q::Match { match_value: Some(q::r#match::MatchValue::TextAny("x 17 13".into())) }),
            ..Default::default()
        })),
    };
    assert_eq!(count_where(text_any).await, 2, "days 13 and 17");
    running.server.shutdown().await.expect("shutdown");
}

/// Fields of Qdrant's request messages that Braid does not serve are refused by
/// name, never dropped; the ones it serves read back (thresholds in collection info).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unserved_request_fields_are_refused_by_name() {
    let running = start(None, None).await;
    let client = grpc_client(&running);
    let vectors = || {
        Some(VectorsConfig {
            config: Some(q::vectors_config::Config::Params(VectorParams {
                size: 2,
                distance: q::Distance::Dot.into(),
                hnsw_config: Some(q::HnswConfigDiff {
                    full_scan_threshold: Some(77),
                    payload_m: Some(5),
                    ..Default::default()
                }),
                ..Default::default()
            })),
        })
    };
    let create = |extra: CreateCollection| {
        let client = &client;
        async move { client.create_collection(CreateCollection { vectors_config: vectors(), ..extra }).await }
    };
    let refused = [
        (
            CreateCollection {
                collection_name: "s".into(),
                sparse_vectors_config: Some(q::SparseVectorConfig {
                    map: [(
                        "bm25".to_string(),
                        q::SparseVectorParams {
                            index: Some(q::SparseIndexConfig {
                                full_scan_threshold: Some(10),
                                ..Default::default()
                            }),
                            modifier: None,
                        },
                    )]
                    .into(),
                }),
                ..Default::default()
            },
            "full_scan_threshold",
        ),
        (
            CreateCollection { collection_name: "s".into(), shard_number: Some(3), ..Default::default() },
            "shard_number",
        ),
        (
            CreateCollection {
                collection_name: "s".into(),
                optimizers_config: Some(q::OptimizersConfigDiff {
                    memmap_threshold: Some(1000),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "memmap_threshold",
        ),
    ];
    for (request, field) in refused {
        let err = create(request).await.expect_err(field);
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
    let optimizers = q::OptimizersConfigDiff { indexing_threshold: Some(0), ..Default::default() };
    create(CreateCollection {
        collection_name: "s".into(),
        optimizers_config: Some(optimizers),
        ..Default::default()
    })
    .await
    .expect("indexing_threshold is served");
    let info = client.collection_info("s").await.expect("info").result.expect("info");
    let config = info.config.expect("config");
    assert_eq!(config.optimizer_config.expect("optimizers").indexing_threshold, Some(0));
    let hnsw = config.hnsw_config.expect("hnsw");
    assert_eq!((hnsw.full_scan_threshold, hnsw.payload_m), (Some(77), Some(5)));

    let points = vec![PointStruct::new(1, vec![1.0, 0.0], Payload::new())];
    let filter = Some(q::Filter::must([Condition::has_id([1])]));
    let conditional = UpsertPoints {
        collection_name: "s".into(),
        points: points.clone(),
        update_filter: filter.clone(),
        ..Default::default()
    };
    let err = client.upsert_points(conditional).await.expect_err("update_filter");
    assert!(err.to_string().contains("update_filter"), "{err}");
    let insert_only = UpsertPoints {
        collection_name: "s".into(),
        points,
        update_mode: Some(q::UpdateMode::InsertOnly.into()),
        ..Default::default()
    };
    let err = client.upsert_points(insert_only).await.expect_err("update_mode");
    assert!(err.to_string().contains("update_mode"), "{err}");
    let ordered = ScrollPoints {
        collection_name: "s".into(),
        order_by: Some(q::OrderBy { key: "price".into(), ..Default::default() }),
        ..Default::default()
    };
    // Served, but only over a range index, which `price` does not have here.
    let err = client.scroll(ordered).await.expect_err("order_by");
    assert!(err.to_string().contains("needs a range index"), "{err}");
    running.server.shutdown().await.expect("shutdown");
}

/// `UpdateBatch` through the official client: the operations in order, one result
/// each; unserved fields inside an operation are refused like at the top level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_batch_applies_operations_in_order() {
    use q::points_update_operation::{
        DeletePayload, Operation, PointStructList, SetPayload as BatchSetPayload, UpdateVectors,
    };
    let running = start(None, None).await;
    let client = grpc_client(&running);
    let vectors_config = Some(VectorsConfig {
        config: Some(q::vectors_config::Config::Params(VectorParams {
            size: 2,
            distance: q::Distance::Dot.into(),
            ..Default::default()
        })),
    });
    client
        .create_collection(CreateCollection {
            collection_name: "u".into(),
            vectors_config,
            ..Default::default()
        })
        .await
        .expect("create");
    let payload = |v: serde_json::Value| -> HashMap<String, q::Value> {
        let p: Payload = v.try_into().expect("object");
        p.into()
    };
    let ids = |list: &[u64]| {
        Some(PointsSelector {
            points_selector_one_of: Some(PointsSelectorOneOf::Points(PointsIdsList {
                ids: list.iter().map(|&i| i.into()).collect(),
            })),
        })
    };
    let op = |operation| q::PointsUpdateOperation { operation: Some(operation) };
    let operations = vec![
        op(Operation::Upsert(PointStructList {
            points: vec![
                PointStruct::new(
                    1,
                    vec![1.0, 0.0],
                    Payload::try_from(json!({"k": 1, "t": "x"})).expect("payload"),
                ),
                PointStruct::new(2, vec![0.0, 1.0], Payload::new()),
            ],
            ..Default::default()
        })),
        op(Operation::SetPayload(BatchSetPayload {
            payload: payload(json!({"k": null, "z": 2})),
            points_selector: ids(&[1]),
            ..Default::default()
        })),
        op(Operation::DeletePayload(DeletePayload {
            keys: vec!["t".into()],
            points_selector: ids(&[1]),
            ..Default::default()
        })),
        op(Operation::UpdateVectors(UpdateVectors {
            points: vec![PointVectors { id: Some(2.into()), vectors: Some(vec![3.0, 3.0].into()) }],
            ..Default::default()
        })),
    ];
    let request = q::UpdateBatchPoints {
        collection_name: "u".into(),
        wait: Some(true),
        operations,
        ..Default::default()
    };
    let response = client.update_points_batch(request).await.expect("batch");
    assert_eq!(response.result.len(), 4);
    let got = client
        .get_points(GetPoints {
            collection_name: "u".into(),
            ids: vec![1.into(), 2.into()],
            with_payload: Some(true.into()),
            with_vectors: Some(true.into()),
            ..Default::default()
        })
        .await
        .expect("get")
        .result;
    assert_eq!(got[0].payload.get("z").and_then(|v| v.as_integer()), Some(2));
    assert!(!got[0].payload.contains_key("k") && !got[0].payload.contains_key("t"), "{:?}", got[0].payload);
    let conditional = vec![op(Operation::UpdateVectors(UpdateVectors {
        points: vec![PointVectors { id: Some(2.into()), vectors: Some(vec![1.0, 1.0].into()) }],
        update_filter: Some(q::Filter::must([Condition::has_id([2])])),
        ..Default::default()
    }))];
    let request =
        q::UpdateBatchPoints { collection_name: "u".into(), operations: conditional, ..Default::default() };
    let err = client.update_points_batch(request).await.expect_err("update_filter inside a batch");
    assert!(err.to_string().contains("update_filter"), "{err}");
    running.server.shutdown().await.expect("shutdown");
}

/// `datatype` over gRPC: `Uint8` and `Float16` spaces are created, reported and
/// searched with scores of their stored values; an unknown datatype is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrow_datatypes_are_served() {
    let running = start(None, None).await;
    let client = grpc_client(&running);
    let space = |size: u64, distance: q::Distance, datatype: i32| VectorParams {
        size,
        distance: distance.into(),
        datatype: Some(datatype),
        ..Default::default()
    };
    let map = [
        ("bytes".to_string(), space(3, q::Distance::Dot, q::Datatype::Uint8 as i32)),
        ("halves".to_string(), space(2, q::Distance::Euclid, q::Datatype::Float16 as i32)),
    ];
    let create = |name: &str, map: HashMap<String, VectorParams>| CreateCollection {
        collection_name: name.into(),
        vectors_config: Some(VectorsConfig {
            config: Some(q::vectors_config::Config::ParamsMap(VectorParamsMap { map })),
        }),
        ..Default::default()
    };
    client.create_collection(create("typed", map.into_iter().collect())).await.expect("create");
    let info = client.collection_info("typed").await.expect("info").result.expect("info");
    match info.config.and_then(|c| c.params).and_then(|p| p.vectors_config).and_then(|v| v.config) {
        Some(q::vectors_config::Config::ParamsMap(m)) => {
            assert_eq!(m.map["bytes"].datatype, Some(q::Datatype::Uint8 as i32));
            assert_eq!(m.map["halves"].datatype, Some(q::Datatype::Float16 as i32));
        }
        other => panic!("named spaces: {other:?}"),
    }
    let point = |id: u64, bytes: Vec<f32>, halves: Vec<f32>| {
        let vectors: HashMap<String, Vec<f32>> =
            [("bytes".to_string(), bytes), ("halves".to_string(), halves)].into();
        PointStruct::new(id, vectors, Payload::new())
    };
    let upsert = |points: Vec<PointStruct>| UpsertPoints {
        collection_name: "typed".into(),
        wait: Some(true),
        points,
        ..Default::default()
    };
    client
        .upsert_points(upsert(vec![
            point(1, vec![1.0, 2.0, 255.0], vec![0.1, 0.5]),
            point(2, vec![9.0, 0.0, 3.0], vec![2.0, 2.0]),
        ]))
        .await
        .expect("upsert");
    let err = client
        .upsert_points(upsert(vec![point(3, vec![1.5, 0.0, 0.0], vec![0.0, 0.0])]))
        .await
        .expect_err("1.5 in uint8");
    assert!(err.to_string().contains("uint8 cannot hold"), "{err}");
    let got = client
        .search_points(SearchPoints {
            collection_name: "typed".into(),
            vector: vec![1.0, 1.0, 1.0],
            vector_name: Some("bytes".into()),
            limit: 2,
            with_vectors: Some(true.into()),
            ..Default::default()
        })
        .await
        .expect("search")
        .result;
    // Dot scores of the stored integers: 1 + 2 + 255 and 9 + 0 + 3.
    assert_eq!(hits(&got), vec![(PointId::Num(1), 258.0), (PointId::Num(2), 12.0)]);
    let got = client
        .search_points(SearchPoints {
            collection_name: "typed".into(),
            vector: vec![0.0, 0.0],
            vector_name: Some("halves".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("search")
        .result;
    // The stored halves: 0.1 is 1638 / 16384 in float16.
    let want = ((1638.0f32 / 16384.0).powi(2) + 0.25).sqrt();
    assert_eq!(hits(&got), vec![(PointId::Num(1), want)]);
    let mut odd = HashMap::new();
    odd.insert("x".to_string(), space(3, q::Distance::Dot, 7));
    let err = client.create_collection(create("odd", odd)).await.expect_err("datatype 7");
    assert!(err.to_string().contains("datatype"), "{err}");
    running.server.shutdown().await.expect("shutdown");
}

/// The params of a collection's one unnamed space, as its info reports them.
fn one_space(info: q::CollectionInfo) -> VectorParams {
    match info.config.and_then(|c| c.params).and_then(|p| p.vectors_config).and_then(|v| v.config) {
        Some(q::vectors_config::Config::Params(p)) => p,
        other => panic!("one unnamed space expected, got {other:?}"),
    }
}
