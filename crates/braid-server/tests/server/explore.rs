//! Query by id, `lookup_from`, recommend, discover and context over REST (the query
//! API and the older `/points/recommend` and `/points/discover` calls) and gRPC (the
//! official client's `Query`, `Recommend` and `Discover`), each answering as the
//! embedded facade does on the same data.

use crate::common;

use braid::{
    ContextPair, Database, Example, LookupFrom, PointId, QueryRequest, Recommend, RecommendStrategy,
    ScoredPoint,
};
use qdrant_client::qdrant::{self as q};
use serde_json::{Value, json};

use common::*;

fn local() -> Database {
    let db = Database::in_memory();
    let c = db.create_collection("p", config()).unwrap();
    c.upsert(products()).unwrap();
    let anchors = db
        .create_collection(
            "anchors",
            braid::CollectionConfig::new()
                .vector("a", braid::VectorParams::new(TEXT, braid::Distance::Cosine)),
        )
        .unwrap();
    anchors.upsert(anchor_points()).unwrap();
    db
}

/// One point in a second collection whose vector is product 17's text vector.
fn anchor_points() -> Vec<braid::PointStruct> {
    let v = products()[17].vectors["text"].clone();
    vec![braid::PointStruct::new(1000u64).vector("a", v)]
}

type Hits = Vec<(Value, f32)>;

fn facade(hits: Vec<ScoredPoint>) -> Hits {
    hits.into_iter().map(|h| (json!(h.id), h.score)).collect()
}

fn rest_hits(v: &Value) -> Hits {
    v.as_array()
        .unwrap_or_else(|| panic!("a list of points: {v}"))
        .iter()
        .map(|h| (h["id"].clone(), h["score"].as_f64().unwrap() as f32))
        .collect()
}

fn grpc_hits(points: &[q::ScoredPoint]) -> Hits {
    points
        .iter()
        .map(|p| {
            let id = match p.id.as_ref().and_then(|i| i.point_id_options.clone()) {
                Some(q::point_id::PointIdOptions::Num(n)) => json!(n),
                Some(q::point_id::PointIdOptions::Uuid(u)) => json!(u),
                None => Value::Null,
            };
            (id, p.score)
        })
        .collect()
}

fn assert_same(got: &Hits, want: &Hits, what: &str) {
    assert!(!want.is_empty(), "{what}: the reference found nothing");
    let ids = |h: &Hits| h.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(ids(got), ids(want), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g.1 - w.1).abs() <= 1e-5 * w.1.abs().max(1.0), "{what}: {g:?} vs {w:?}");
    }
}

fn ex(id: u64) -> Example {
    Example::Id(PointId::Num(id))
}

fn grpc_id(id: u64) -> q::VectorInput {
    q::VectorInput::new_id(q::PointId::from(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_answer_as_the_facade_on_both_protocols() {
    let db = local();
    let c = db.collection("p").unwrap();
    let (running, rest) = serve_products().await;
    rest.put("/collections/anchors", json!({"vectors": {"a": {"size": TEXT, "distance": "Cosine"}}})).await;
    let anchors = json!({"points": anchor_points().iter().map(point_json).collect::<Vec<_>>()});
    rest.put("/collections/anchors/points?wait=true", anchors).await;
    let client = grpc_client(&running);
    let (probe, _) = query_vectors(5);

    // Query by id.
    let want = facade(c.query(QueryRequest::point("text", 3u64).limit(5)).unwrap());
    assert!(want.iter().all(|h| h.0 != json!(3)), "the point itself is left out");
    let got =
        rest.post("/collections/p/points/query", json!({"query": 3, "using": "text", "limit": 5})).await;
    assert_same(&rest_hits(&got["points"]), &want, "REST query: id");
    let got = rest
        .post("/collections/p/points/query", json!({"query": {"nearest": 3}, "using": "text", "limit": 5}))
        .await;
    assert_same(&rest_hits(&got["points"]), &want, "REST query: {nearest: id}");
    let got = client
        .query(
            q::QueryPointsBuilder::new("p").query(q::Query::new_nearest(grpc_id(3))).using("text").limit(5),
        )
        .await
        .unwrap();
    assert_same(&grpc_hits(&got.result), &want, "gRPC query: id");

    // Recommend, each strategy, through the query API and the older calls.
    for (strategy, name, grpc_strategy) in [
        (RecommendStrategy::AverageVector, "average_vector", q::RecommendStrategy::AverageVector),
        (RecommendStrategy::BestScore, "best_score", q::RecommendStrategy::BestScore),
        (RecommendStrategy::SumScores, "sum_scores", q::RecommendStrategy::SumScores),
    ] {
        let recommend = Recommend {
            positive: vec![ex(1), ex(2), Example::Vector(probe.clone())],
            negative: vec![ex(4)],
            strategy,
        };
        let want = facade(c.query(QueryRequest::recommend("text", recommend).limit(7)).unwrap());
        let body = json!({"query": {"recommend": {"positive": [1, 2, probe], "negative": [4], "strategy": name}},
                          "using": "text", "limit": 7});
        let got = rest.post("/collections/p/points/query", body).await;
        assert_same(&rest_hits(&got["points"]), &want, &format!("REST query recommend {name}"));
        let body = json!({"positive": [1, 2, probe], "negative": [4], "strategy": name, "using": "text", "limit": 7});
        let got = rest.post("/collections/p/points/recommend", body.clone()).await;
        assert_same(&rest_hits(&got), &want, &format!("REST /points/recommend {name}"));
        let got = rest.post("/collections/p/points/recommend/batch", json!({"searches": [body]})).await;
        assert_same(&rest_hits(&got[0]), &want, &format!("REST /points/recommend/batch {name}"));

        let input = q::RecommendInputBuilder::default()
            .add_positive(grpc_id(1))
            .add_positive(grpc_id(2))
            .add_positive(probe.clone())
            .add_negative(grpc_id(4))
            .strategy(grpc_strategy);
        let got = client
            .query(
                q::QueryPointsBuilder::new("p").query(q::Query::new_recommend(input)).using("text").limit(7),
            )
            .await
            .unwrap();
        assert_same(&grpc_hits(&got.result), &want, &format!("gRPC query recommend {name}"));
        let older = q::RecommendPointsBuilder::new("p", 7)
            .add_positive(q::PointId::from(1u64))
            .add_positive(q::PointId::from(2u64))
            .add_positive(probe.clone())
            .add_negative(q::PointId::from(4u64))
            .strategy(grpc_strategy)
            .using("text");
        let got = client.recommend(older.clone()).await.unwrap();
        assert_same(&grpc_hits(&got.result), &want, &format!("gRPC Recommend {name}"));
        let got = client
            .recommend_batch(q::RecommendBatchPointsBuilder::new("p", vec![older.build()]))
            .await
            .unwrap();
        assert_same(&grpc_hits(&got.result[0].result), &want, &format!("gRPC RecommendBatch {name}"));
    }

    // Discover and context.
    let pairs =
        vec![ContextPair::new(ex(10), ex(11)), ContextPair::new(ex(20), Example::Vector(probe.clone()))];
    let want = facade(
        c.query(QueryRequest {
            query: Some(braid::Query::Discover { target: ex(30), context: pairs.clone() }),
            ..QueryRequest::point("text", 0u64).limit(6)
        })
        .unwrap(),
    );
    let context_json = json!([{"positive": 10, "negative": 11}, {"positive": 20, "negative": probe}]);
    let got = rest
        .post(
            "/collections/p/points/query",
            json!({"query": {"discover": {"target": 30, "context": context_json}}, "using": "text", "limit": 6}),
        )
        .await;
    assert_same(&rest_hits(&got["points"]), &want, "REST query discover");
    let got = rest
        .post(
            "/collections/p/points/discover",
            json!({"target": 30, "context": context_json, "using": "text", "limit": 6}),
        )
        .await;
    assert_same(&rest_hits(&got), &want, "REST /points/discover");
    let grpc_context = q::ContextInputBuilder::default()
        .add_pair(grpc_id(10), grpc_id(11))
        .add_pair(grpc_id(20), probe.clone());
    let got = client
        .query(
            q::QueryPointsBuilder::new("p")
                .query(q::Query::new_discover(q::DiscoverInputBuilder::new(
                    grpc_id(30),
                    grpc_context.clone(),
                )))
                .using("text")
                .limit(6),
        )
        .await
        .unwrap();
    assert_same(&grpc_hits(&got.result), &want, "gRPC query discover");
    let example = |e: q::vector_example::Example| q::VectorExample::from(e);
    let older_pairs = vec![
        q::ContextExamplePair {
            positive: Some(example(q::PointId::from(10u64).into())),
            negative: Some(example(q::PointId::from(11u64).into())),
        },
        q::ContextExamplePair {
            positive: Some(example(q::PointId::from(20u64).into())),
            negative: Some(example(q::Vector::from(probe.clone()).into())),
        },
    ];
    let got = client
        .discover(
            q::DiscoverPointsBuilder::new("p", older_pairs.clone(), 6)
                .target(q::TargetVector::from(q::target_vector::Target::Single(example(
                    q::PointId::from(30u64).into(),
                ))))
                .using("text"),
        )
        .await
        .unwrap();
    assert_same(&grpc_hits(&got.result), &want, "gRPC Discover");

    let want = facade(
        c.query(QueryRequest {
            query: Some(braid::Query::Context(pairs)),
            ..QueryRequest::point("text", 0u64).limit(6)
        })
        .unwrap(),
    );
    let got = rest
        .post(
            "/collections/p/points/query",
            json!({"query": {"context": context_json}, "using": "text", "limit": 6}),
        )
        .await;
    assert_same(&rest_hits(&got["points"]), &want, "REST query context");
    let got = rest
        .post("/collections/p/points/discover", json!({"context": context_json, "using": "text", "limit": 6}))
        .await;
    assert_same(&rest_hits(&got), &want, "REST /points/discover without target");
    let got = client
        .query(
            q::QueryPointsBuilder::new("p").query(q::Query::new_context(grpc_context)).using("text").limit(6),
        )
        .await
        .unwrap();
    assert_same(&grpc_hits(&got.result), &want, "gRPC query context");
    let got =
        client.discover(q::DiscoverPointsBuilder::new("p", older_pairs, 6).using("text")).await.unwrap();
    assert_same(&grpc_hits(&got.result), &want, "gRPC Discover without target");

    // MMR, by vector and by id.
    let mmr = braid::Mmr { diversity: Some(0.7), candidates_limit: Some(40) };
    let want = facade(
        c.query(QueryRequest {
            query: Some(braid::Query::Mmr { nearest: Example::Vector(probe.clone()), mmr }),
            using: Some("text".into()),
            ..QueryRequest::default()
        })
        .unwrap(),
    );
    let got = rest
        .post(
            "/collections/p/points/query",
            json!({"query": {"nearest": probe, "mmr": {"diversity": 0.7, "candidates_limit": 40}}, "using": "text"}),
        )
        .await;
    assert_same(&rest_hits(&got["points"]), &want, "REST query mmr");
    let got = client
        .query(
            q::QueryPointsBuilder::new("p")
                .query(q::Query::new_nearest_with_mmr(
                    probe.clone(),
                    q::Mmr { diversity: Some(0.7), candidates_limit: Some(40) },
                ))
                .using("text"),
        )
        .await
        .unwrap();
    assert_same(&grpc_hits(&got.result), &want, "gRPC query mmr");

    // lookup_from: anchors/1000 holds product 17's text vector, so 17 comes first.
    let lookup = LookupFrom { collection: "anchors".into(), vector: Some("a".into()) };
    let want = facade(c.query(QueryRequest::point("text", 1000u64).lookup_from(lookup).limit(3)).unwrap());
    assert_eq!(want[0].0, json!(17));
    let got = rest
        .post(
            "/collections/p/points/query",
            json!({"query": 1000, "using": "text", "limit": 3, "lookup_from": {"collection": "anchors", "vector": "a"}}),
        )
        .await;
    assert_same(&rest_hits(&got["points"]), &want, "REST lookup_from");
    let got = client
        .query(
            q::QueryPointsBuilder::new("p")
                .query(q::Query::new_nearest(grpc_id(1000)))
                .using("text")
                .limit(3)
                .lookup_from(q::LookupLocationBuilder::new("anchors").vector_name("a")),
        )
        .await
        .unwrap();
    assert_same(&grpc_hits(&got.result), &want, "gRPC lookup_from");

    // Bad input: clear errors on both protocols.
    let bad = |body: Value| {
        let rest = &rest;
        async move { rest.call(reqwest::Method::POST, "/collections/p/points/query", Some(body)).await }
    };
    let (status, v) = bad(json!({"query": 99999, "using": "text"})).await;
    assert_eq!(status, 404, "{v}");
    let (status, v) = bad(json!({"query": {"recommend": {"negative": [1]}}, "using": "text"})).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["status"]["error"].as_str().unwrap().contains("positive"), "{v}");
    let (status, v) =
        bad(json!({"query": {"recommend": {"positive": [1], "strategy": "worst"}}, "using": "text"})).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = bad(json!({"query": 1, "using": "text", "lookup_from": {"collection": "nope"}})).await;
    assert_eq!(status, 404, "{v}");
    let err = client
        .query(q::QueryPointsBuilder::new("p").query(q::Query::new_nearest(grpc_id(99999))).using("text"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("99999"), "{err}");
}

type Groups = Vec<(Value, Vec<Value>, Value)>;

fn facade_groups(groups: Vec<braid::PointGroup>) -> Groups {
    groups
        .into_iter()
        .map(|g| {
            let id = match g.id {
                braid::GroupId::Int(i) => json!(i),
                braid::GroupId::Str(s) => json!(s),
            };
            let lookup = g.lookup.map_or(Value::Null, |r| r.payload.unwrap_or(Value::Null));
            (id, g.hits.iter().map(|h| json!(h.id)).collect(), lookup)
        })
        .collect()
}

fn rest_groups(v: &Value) -> Groups {
    v["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("groups: {v}"))
        .iter()
        .map(|g| {
            let hits = g["hits"].as_array().unwrap().iter().map(|h| h["id"].clone()).collect();
            (g["id"].clone(), hits, g.get("lookup").map_or(Value::Null, |l| l["payload"].clone()))
        })
        .collect()
}

fn grpc_groups(r: Option<q::GroupsResult>) -> Groups {
    r.unwrap()
        .groups
        .into_iter()
        .map(|g| {
            let id = match g.id.and_then(|i| i.kind) {
                Some(q::group_id::Kind::IntegerValue(i)) => json!(i),
                Some(q::group_id::Kind::UnsignedValue(u)) => json!(u),
                Some(q::group_id::Kind::StringValue(s)) => json!(s),
                None => Value::Null,
            };
            let hits = grpc_hits(&g.hits).into_iter().map(|h| h.0).collect();
            let lookup = g.lookup.map_or(Value::Null, |r| {
                let payload: serde_json::Map<String, Value> = r
                    .payload
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::to_value(v.as_str().cloned()).unwrap()))
                    .collect();
                Value::Object(payload)
            });
            (id, hits, lookup)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_answer_as_the_facade_on_both_protocols() {
    let db = local();
    let c = db.collection("p").unwrap();
    let shelves = db.create_collection("shelves", braid::CollectionConfig::new()).unwrap();
    let shelf_points: Vec<braid::PointStruct> = (0..4u64)
        .map(|i| braid::PointStruct::new(i).payload(json!({"shelf": format!("shelf {i}")})))
        .collect();
    shelves.upsert(shelf_points.clone()).unwrap();
    let (running, rest) = serve_products().await;
    rest.put("/collections/shelves", json!({"vectors": {}})).await;
    let shelf_json = json!({"points": shelf_points.iter().map(|p| json!({"id": p.id, "vector": {}, "payload": p.payload})).collect::<Vec<_>>()});
    rest.put("/collections/shelves/points?wait=true", shelf_json).await;
    let client = grpc_client(&running);
    let (probe, _) = query_vectors(9);

    // query/groups by a keyword, search/groups by an integer with lookup, recommend/groups.
    let group = braid::GroupBy { group_size: 2, limit: 4, ..braid::GroupBy::new("category") };
    let want = facade_groups(c.query_groups(QueryRequest::nearest("text", probe.clone()), &group).unwrap());
    assert_eq!(want.len(), 4);
    let got = rest
        .post(
            "/collections/p/points/query/groups",
            json!({"query": probe, "using": "text", "group_by": "category", "group_size": 2, "limit": 4}),
        )
        .await;
    assert_eq!(rest_groups(&got), want, "REST query/groups");
    let got = client
        .query_groups(
            q::QueryPointGroupsBuilder::new("p", "category")
                .query(probe.clone())
                .using("text")
                .group_size(2u64)
                .limit(4u64),
        )
        .await
        .unwrap();
    assert_eq!(grpc_groups(got.result), want, "gRPC QueryGroups");

    let group = braid::GroupBy {
        group_size: 3,
        limit: 3,
        with_lookup: Some(braid::WithLookup::new("shelves")),
        ..braid::GroupBy::new("stock.n")
    };
    let want = facade_groups(c.query_groups(QueryRequest::nearest("text", probe.clone()), &group).unwrap());
    assert!(want.iter().all(|g| g.2 != Value::Null), "every stock value names a shelf: {want:?}");
    let got = rest
        .post(
            "/collections/p/points/search/groups",
            json!({"vector": {"name": "text", "vector": probe}, "group_by": "stock.n", "group_size": 3, "limit": 3,
                   "with_lookup": "shelves"}),
        )
        .await;
    assert_eq!(rest_groups(&got), want, "REST search/groups");
    let got = client
        .search_groups(
            q::SearchPointGroupsBuilder::new("p", probe.clone(), 3, "stock.n", 3)
                .vector_name("text")
                .with_lookup(q::WithLookupBuilder::new("shelves")),
        )
        .await
        .unwrap();
    assert_eq!(grpc_groups(got.result), want, "gRPC SearchGroups");

    let recommend = Recommend {
        positive: vec![ex(1), ex(2)],
        negative: vec![ex(3)],
        strategy: RecommendStrategy::BestScore,
    };
    let group = braid::GroupBy { group_size: 2, limit: 5, ..braid::GroupBy::new("category") };
    let want = facade_groups(c.query_groups(QueryRequest::recommend("text", recommend), &group).unwrap());
    let got = rest
        .post(
            "/collections/p/points/recommend/groups",
            json!({"positive": [1, 2], "negative": [3], "strategy": "best_score", "using": "text",
                   "group_by": "category", "group_size": 2, "limit": 5}),
        )
        .await;
    assert_eq!(rest_groups(&got), want, "REST recommend/groups");
    let got = client
        .recommend_groups(
            q::RecommendPointGroupsBuilder::new("p", "category", 2, 5)
                .add_positive(q::PointId::from(1u64))
                .add_positive(q::PointId::from(2u64))
                .add_negative(q::PointId::from(3u64))
                .strategy(q::RecommendStrategy::BestScore)
                .using("text"),
        )
        .await
        .unwrap();
    assert_eq!(grpc_groups(got.result), want, "gRPC RecommendGroups");

    // Bad input.
    let (status, v) = rest
        .call(
            reqwest::Method::POST,
            "/collections/p/points/query/groups",
            Some(json!({"query": probe, "using": "text", "group_by": "category", "group_size": 0})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = rest
        .call(
            reqwest::Method::POST,
            "/collections/p/points/query/groups",
            Some(json!({"query": probe, "using": "text", "group_by": "category", "with_lookup": "nope"})),
        )
        .await;
    assert_eq!(status, 404, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_distance_matrix_answers_as_the_facade_on_both_protocols() {
    let db = local();
    let c = db.collection("p").unwrap();
    let (running, rest) = serve_products().await;
    let client = grpc_client(&running);
    // A filter passing 15 points and a larger sample: every one of them, so the
    // "random" sample is the same everywhere.
    let cheap_books =
        braid::Filter::must([braid::field("category").eq("books"), braid::field("price").lt(80.0)]);
    let request = braid::MatrixRequest {
        filter: Some(cheap_books.clone()),
        sample: 50,
        limit: 3,
        using: Some("image".into()),
    };
    let m = c.distance_matrix(&request, &braid::Stop::never()).unwrap();
    assert!(m.ids.len() > 5, "{}", m.ids.len());
    let want_pairs: Vec<Value> = m.pairs().iter().map(|(a, b, s)| json!([a, b, s])).collect();
    let body = json!({"filter": cheap_books.to_json(), "sample": 50, "limit": 3, "using": "image"});
    let got = rest.post("/collections/p/points/search/matrix/pairs", body.clone()).await;
    let got_pairs: Vec<Value> =
        got["pairs"].as_array().unwrap().iter().map(|p| json!([p["a"], p["b"], p["score"]])).collect();
    // Vectors sent as JSON may differ from the facade's in the last bit of a score.
    let same_pairs = |got: &[Value], want: &[Value], what: &str| {
        assert_eq!(got.len(), want.len(), "{what}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!((&g[0], &g[1]), (&w[0], &w[1]), "{what}");
            assert!((g[2].as_f64().unwrap() - w[2].as_f64().unwrap()).abs() < 1e-6, "{what}: {g} vs {w}");
        }
    };
    same_pairs(&got_pairs, &want_pairs, "REST pairs");
    let got = rest.post("/collections/p/points/search/matrix/offsets", body).await;
    let (rows, cols, scores) = m.offsets();
    assert_eq!(got["offsets_row"], json!(rows));
    assert_eq!(got["offsets_col"], json!(cols));
    let close =
        |a: &[f32], b: &[f32]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
    let got_scores: Vec<f32> =
        got["scores"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap() as f32).collect();
    assert!(close(&got_scores, &scores), "REST offsets scores");
    assert_eq!(got["ids"], json!(m.ids));

    let grpc_filter = q::Filter::must([
        q::Condition::matches("category", "books".to_string()),
        q::Condition::range("price", q::Range { lt: Some(80.0), ..Default::default() }),
    ]);
    let request =
        q::SearchMatrixPointsBuilder::new("p").filter(grpc_filter).sample(50).limit(3).using("image");
    let got = client.search_matrix_pairs(request.clone()).await.unwrap();
    let id = |p: Option<&q::PointId>| {
        grpc_hits(&[q::ScoredPoint { id: p.cloned(), ..Default::default() }])[0].0.clone()
    };
    let got_pairs: Vec<Value> = got
        .result
        .unwrap()
        .pairs
        .iter()
        .map(|p| json!([id(p.a.as_ref()), id(p.b.as_ref()), p.score]))
        .collect();
    same_pairs(&got_pairs, &want_pairs, "gRPC pairs");
    let got = client.search_matrix_offsets(request).await.unwrap().result.unwrap();
    assert_eq!((got.offsets_row, got.offsets_col), (rows, cols));
    assert!(close(&got.scores, &scores), "gRPC offsets scores");
    assert_eq!(
        got.ids.iter().map(|i| id(Some(i))).collect::<Vec<_>>(),
        m.ids.iter().map(|i| json!(i)).collect::<Vec<_>>()
    );
    let (status, v) = rest
        .call(
            reqwest::Method::POST,
            "/collections/p/points/search/matrix/pairs",
            Some(json!({"sample": 100000, "using": "text"})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formulas_answer_as_the_facade_on_both_protocols() {
    let db = local();
    let c = db.collection("p").unwrap();
    let (running, rest) = serve_products().await;
    let client = grpc_client(&running);
    let (text, image) = query_vectors(11);
    // $score plus a boost for books, times an exponential decay of the price.
    let expression = json!({"mult": [
        {"sum": ["$score", "$score[1]", {"mult": [0.3, {"key": "category", "match": {"value": "books"}}]}]},
        {"exp_decay": {"x": "price", "target": 50.0, "scale": 100.0}}
    ]});
    let formula = braid::Formula::from_json(&expression, Some(&json!({"$score[1]": 0.0}))).unwrap();
    let request = QueryRequest {
        prefetch: vec![
            braid::Prefetch::nearest("text", text.clone(), 30),
            braid::Prefetch::nearest("image", image.clone(), 30),
        ],
        query: Some(braid::Query::Formula(formula)),
        ..QueryRequest::default()
    }
    .limit(15);
    let want = facade(c.query(request).unwrap());
    let body = json!({
        "prefetch": [{"query": text, "using": "text", "limit": 30}, {"query": image, "using": "image", "limit": 30}],
        "query": {"formula": expression, "defaults": {"$score[1]": 0.0}},
        "limit": 15,
    });
    let got = rest.post("/collections/p/points/query", body).await;
    assert_same(&rest_hits(&got["points"]), &want, "REST formula");

    let books = q::Condition::matches("category", "books".to_string());
    let grpc_expression = q::Expression::mult_with([
        q::Expression::sum_with([
            q::Expression::variable("$score"),
            q::Expression::variable("$score[1]"),
            q::Expression::mult_with([q::Expression::constant(0.3), q::Expression::condition(books)]),
        ]),
        q::Expression::exp_decay(
            q::DecayParamsExpressionBuilder::new(q::Expression::variable("price"))
                .target(q::Expression::constant(50.0))
                .scale(100.0),
        ),
    ]);
    let got = client
        .query(
            q::QueryPointsBuilder::new("p")
                .add_prefetch(
                    q::PrefetchQueryBuilder::default().query(text.clone()).using("text").limit(30u64),
                )
                .add_prefetch(
                    q::PrefetchQueryBuilder::default().query(image.clone()).using("image").limit(30u64),
                )
                .query(q::Query::new_formula(
                    q::FormulaBuilder::new(grpc_expression).add_default("$score[1]", 0.0),
                ))
                .limit(15),
        )
        .await
        .unwrap();
    assert_same(&grpc_hits(&got.result), &want, "gRPC formula");
    // A variable without a value or default: 400 naming it.
    let body = json!({"prefetch": {"query": text, "using": "text"}, "query": {"formula": {"sum": ["$score", "nowhere"]}}});
    let (status, v) = rest.call(reqwest::Method::POST, "/collections/p/points/query", Some(body)).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["status"]["error"].as_str().unwrap().contains("nowhere"), "{v}");
}

/// A ColBERT-style multivector of `n` rows for product `i` (deterministic).
fn colbert(i: u64, n: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|r| (0..8).map(|d| ((i * 31 + r as u64 * 7 + d as u64 * 3) % 17) as f32 - 8.0).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multivectors_answer_as_the_facade_on_both_protocols() {
    // The facade: dense text vectors plus an 8-d MaxSim space.
    let config =
        common::config().multivector("colbert", braid::MultiVectorParams::new(8, braid::Distance::Cosine));
    let db = Database::in_memory();
    let c = db.create_collection("m", config).unwrap();
    let points: Vec<braid::PointStruct> = products()
        .into_iter()
        .take(120)
        .enumerate()
        .map(|(i, p)| p.multivector("colbert", colbert(i as u64, 2 + i % 5)))
        .collect();
    c.upsert(points.clone()).unwrap();
    let running = start(None, None).await;
    let rest = Rest::to(&running);
    let mut config_json = config_json();
    config_json["vectors"]["colbert"] =
        json!({"size": 8, "distance": "Cosine", "multivector_config": {"comparator": "max_sim"}});
    rest.put("/collections/m", config_json).await;
    let body: Vec<Value> = points
        .iter()
        .map(|p| {
            let mut v = point_json(p);
            v["vector"]["colbert"] = json!(p.multi["colbert"]);
            v
        })
        .collect();
    rest.put("/collections/m/points?wait=true", json!({"points": body})).await;
    let client = grpc_client(&running);
    let query = colbert(999, 4);
    let (text, _) = query_vectors(3);

    // MaxSim search, and the ColBERT pattern: a dense prefetch re-ranked by MaxSim.
    let search = QueryRequest {
        query: Some(braid::Query::Multi(query.clone())),
        using: Some("colbert".into()),
        ..QueryRequest::default()
    }
    .limit(8);
    let rerank =
        QueryRequest { prefetch: vec![braid::Prefetch::nearest("text", text.clone(), 40)], ..search.clone() };
    for (request, body, what) in [
        (search, json!({"query": query, "using": "colbert", "limit": 8}), "search"),
        (
            rerank,
            json!({"prefetch": {"query": text, "using": "text", "limit": 40}, "query": query, "using": "colbert", "limit": 8}),
            "re-rank",
        ),
    ] {
        let want = facade(c.query(request).unwrap());
        let got = rest.post("/collections/m/points/query", body).await;
        assert_same(&rest_hits(&got["points"]), &want, &format!("REST {what}"));
        let mut grpc = q::QueryPointsBuilder::new("m")
            .query(q::Query::new_nearest(q::VectorInput::new_multi(query.clone())))
            .using("colbert")
            .limit(8);
        if what == "re-rank" {
            grpc = grpc.add_prefetch(
                q::PrefetchQueryBuilder::default().query(text.clone()).using("text").limit(40u64),
            );
        }
        let got = client.query(grpc).await.unwrap();
        assert_same(&grpc_hits(&got.result), &want, &format!("gRPC {what}"));
    }
    // Points come back with their multivectors; info reports the space.
    let got = rest.post("/collections/m/points", json!({"ids": [4], "with_vector": ["colbert"]})).await;
    assert_eq!(got[0]["vector"]["colbert"].as_array().unwrap().len(), 2 + 4);
    let info = rest.get("/collections/m").await;
    assert_eq!(info["config"]["params"]["vectors"]["colbert"]["multivector_config"]["comparator"], "max_sim");
    let got = client
        .get_points(q::GetPointsBuilder::new("m", vec![q::PointId::from(4u64)]).with_vectors(true))
        .await
        .unwrap();
    let vectors = got.result[0].vectors.clone().unwrap();
    let q::vectors_output::VectorsOptions::Vectors(named) = vectors.vectors_options.unwrap() else {
        panic!("named")
    };
    match named.vectors["colbert"].vector.clone() {
        Some(q::vector_output::Vector::MultiDense(m)) => assert_eq!(m.vectors.len(), 6),
        other => panic!("{other:?}"),
    }
    // A multivector through gRPC upsert and a ragged one refused on both protocols.
    client
        .upsert_points(
            q::UpsertPointsBuilder::new(
                "m",
                vec![q::PointStruct::new(
                    5000u64,
                    q::NamedVectors::default().add_vector("colbert", q::Vector::new_multi(colbert(5000, 3))),
                    qdrant_client::Payload::new(),
                )],
            )
            .wait(true),
        )
        .await
        .unwrap();
    let (status, v) = rest
        .call(
            reqwest::Method::PUT,
            "/collections/m/points",
            Some(
                json!({"points": [{"id": 6000, "vector": {"colbert": [vec![1.0f32; 8], vec![1.0f32; 7]]}}]}),
            ),
        )
        .await;
    assert_eq!(status, 400, "{v}");
}
