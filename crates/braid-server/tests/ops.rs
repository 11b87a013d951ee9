//! Operations over both protocols: aliases (REST `POST /collections/aliases`, the
//! alias lists; gRPC `UpdateAliases`, `ListAliases`, `ListCollectionAliases` through
//! the official client), and every call that takes a collection name taking an alias.

mod common;

use qdrant_client::qdrant::{self as q};
use reqwest::Method;
use serde_json::json;

use common::*;

#[tokio::test]
async fn aliases_over_rest() {
    let (running, rest) = serve_products().await;
    rest.put("/collections/other", config_json()).await;
    let actions = json!({"actions": [
        {"create_alias": {"collection_name": "p", "alias_name": "live"}},
        {"create_alias": {"collection_name": "p", "alias_name": "old"}},
        {"rename_alias": {"old_alias_name": "old", "new_alias_name": "legacy"}},
    ]});
    assert_eq!(rest.post("/collections/aliases", actions).await, json!(true));
    assert_eq!(
        rest.get("/aliases").await,
        json!({"aliases": [
            {"alias_name": "legacy", "collection_name": "p"},
            {"alias_name": "live", "collection_name": "p"},
        ]})
    );
    assert_eq!(rest.get("/collections/other/aliases").await, json!({"aliases": []}));

    // Reads, writes and info through the alias reach `p`.
    assert_eq!(rest.get("/collections/live").await["points_count"], 300);
    assert_eq!(rest.get("/collections/live/exists").await, json!({"exists": true}));
    let (text, _) = query_vectors(7);
    let by_alias = rest
        .post(
            "/collections/live/points/search",
            json!({"vector": {"name": "text", "vector": text}, "limit": 5}),
        )
        .await;
    let direct = rest
        .post("/collections/p/points/search", json!({"vector": {"name": "text", "vector": text}, "limit": 5}))
        .await;
    assert_eq!(by_alias, direct);
    rest.put(
        "/collections/live/points?wait=true",
        json!({"points": [{"id": 5000, "vector": {"text": text, "image": [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]}}]}),
    )
    .await;
    assert_eq!(rest.post("/collections/p/points/count", json!({})).await["count"], 301);

    // All or none: the bad second action leaves `live` where it was.
    let (status, v) = rest
        .call(
            Method::POST,
            "/collections/aliases",
            Some(json!({"actions": [
                {"delete_alias": {"alias_name": "live"}},
                {"create_alias": {"collection_name": "missing", "alias_name": "x"}},
            ]})),
        )
        .await;
    assert_eq!(status, 404, "{v}");
    assert!(v["status"]["error"].as_str().unwrap().contains("missing"), "{v}");
    assert_eq!(rest.get("/collections/p/aliases").await["aliases"].as_array().unwrap().len(), 2);

    // Refusals: an alias over a collection's name, a collection over an alias's name,
    // an unknown action, a rename of nothing.
    let refused = [
        json!({"actions": [{"create_alias": {"collection_name": "p", "alias_name": "other"}}]}),
        json!({"actions": [{"switch_alias": {"alias_name": "live"}}]}),
        json!({"actions": [{"rename_alias": {"old_alias_name": "nope", "new_alias_name": "x"}}]}),
        json!({"actions": [{"create_alias": {"collection_name": "p"}}]}),
        json!({"actions": {}}),
    ];
    for body in refused {
        let (status, v) = rest.call(Method::POST, "/collections/aliases", Some(body.clone())).await;
        assert!(status == 400 || status == 404, "{body} → {status} {v}");
        assert!(v["status"]["error"].is_string(), "{v}");
    }
    let (status, v) = rest.call(Method::PUT, "/collections/live", Some(config_json())).await;
    assert_eq!(status, 400, "{v}");
    // POST on a collection's own path is not an alias update.
    let (status, _) = rest.call(Method::POST, "/collections/p", Some(json!({}))).await;
    assert_eq!(status, 405);

    // A collection may be named `aliases`: it is reached by GET, PUT and DELETE.
    rest.put("/collections/aliases", config_json()).await;
    assert_eq!(rest.get("/collections/aliases").await["points_count"], 0);
    assert_eq!(rest.ok(Method::DELETE, "/collections/aliases", json!({})).await, json!(true));

    // Deleting the collection takes its aliases.
    assert_eq!(rest.ok(Method::DELETE, "/collections/p", json!({})).await, json!(true));
    assert_eq!(rest.get("/aliases").await, json!({"aliases": []}));
    drop(running);
}

#[tokio::test]
async fn aliases_over_grpc_with_the_official_client() {
    let (running, rest) = serve_products().await;
    let client = grpc_client(&running);
    client.create_alias(q::CreateAliasBuilder::new("p", "blue")).await.unwrap();
    client.rename_alias(q::RenameAliasBuilder::new("blue", "green")).await.unwrap();
    let all = client.list_aliases().await.unwrap().aliases;
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].alias_name.as_str(), all[0].collection_name.as_str()), ("green", "p"));
    let of_p = client.list_collection_aliases("p").await.unwrap().aliases;
    assert_eq!(of_p, all);
    assert_eq!(rest.get("/aliases").await["aliases"][0]["alias_name"], "green");

    // Calls by alias.
    let info = client.collection_info("green").await.unwrap().result.unwrap();
    assert_eq!(info.points_count, Some(300));
    assert!(client.collection_exists("green").await.unwrap());
    let (text, _) = query_vectors(3);
    let hits = client
        .query(q::QueryPointsBuilder::new("green").query(text.clone()).using("text").limit(3))
        .await
        .unwrap()
        .result;
    let direct = client
        .query(q::QueryPointsBuilder::new("p").query(text).using("text").limit(3))
        .await
        .unwrap()
        .result;
    assert_eq!(hits, direct);

    // Errors: an alias on a missing collection, renaming a missing alias.
    let e = client.create_alias(q::CreateAliasBuilder::new("nope", "x")).await.unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let e = client.rename_alias(q::RenameAliasBuilder::new("none", "x")).await.unwrap_err();
    assert!(e.to_string().contains("none"), "{e}");
    let e = client.list_collection_aliases("green").await.unwrap_err();
    assert!(e.to_string().contains("green"), "{e}");

    client.delete_alias("green").await.unwrap();
    assert!(client.list_aliases().await.unwrap().aliases.is_empty());
}
