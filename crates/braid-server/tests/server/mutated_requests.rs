//! Valid requests, mutated at random (a subtree replaced, a key dropped or added, a
//! value swapped for an extreme one), sent to the REST endpoints that take a body: every
//! answer is a success or a client error with Qdrant's error body — never a server
//! error, a dropped connection or a hang — and the server answers correctly afterwards.
//!
//! `BRAID_MUTATED_REQUESTS=N` sends N requests instead of the default (for longer runs
//! outside CI), `BRAID_MUTATED_SEED=S` starts from another seed.

use crate::common;

use braid_testkit::Rng;
use serde_json::{Map, Value, json};

use common::*;

/// Keys of Qdrant's request bodies, added where a mutation adds a key.
#[rustfmt::skip]
const KEYS: &[&str] = &[
    "vector", "vectors", "name", "limit", "offset", "filter", "must", "should", "must_not",
    "min_should", "min_count", "conditions", "key", "match", "value", "any", "except", "text",
    "phrase", "range", "gt", "gte", "lt", "lte", "params", "hnsw_ef", "exact", "quantization",
    "ignore", "rescore", "oversampling", "with_payload", "with_vector", "with_vectors",
    "score_threshold", "using", "query", "prefetch", "fusion", "nearest", "recommend", "positive",
    "negative", "strategy", "discover", "target", "context", "order_by", "direction", "start_from",
    "points", "id", "ids", "payload", "indices", "values", "group_by", "group_size", "lookup_from",
    "collection", "mmr", "diversity", "candidates_limit", "sample", "has_id", "is_empty", "is_null",
    "values_count", "geo_radius", "center", "lat", "lon", "radius", "nested", "size", "distance",
    "hnsw_config", "m", "ef_construct", "payload_m", "full_scan_threshold", "quantization_config",
    "scalar", "type", "quantile", "always_ram", "binary", "product", "compression", "on_disk",
    "datatype", "memory", "sparse_vectors", "modifier", "field_name", "field_schema", "operations",
    "upsert", "delete", "set_payload", "overwrite_payload", "delete_payload", "searches", "keys",
    "formula", "sum", "mult", "rrf", "k", "shard_key", "timeout", "batch",
];

/// Strings a mutation may put anywhere: names the collection holds, words of the API,
/// and malformed ones.
#[rustfmt::skip]
const STRINGS: &[&str] = &[
    "text", "image", "audio", "category", "price", "stock.n", "name", "apparel", "Cosine", "Dot",
    "Euclid", "Manhattan", "rrf", "dbsf", "int8", "x16", "keyword", "integer", "float", "uuid",
    "datetime", "asc", "desc", "best_score", "average_vector", "sum_scores", "float16", "uint8",
    "cached", "cold", "b4a10009-0000-0000-0000-000000000000", "2024-01-01T00:00:00Z", "",
    "stock[].n", "a.b[", "\u{0}", "not-a-uuid",
];

/// Extreme numbers: the bounds of the integer types, huge and tiny floats.
#[rustfmt::skip]
const NUMBERS: &[f64] = &[
    0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 3.0, 6.0, 8.0, 255.0, 65_535.0, 65_536.0, 4_294_967_295.0,
    4_294_967_296.0, 9_007_199_254_740_992.0, 1.8e19, -1.8e19, 1e300, -1e300, 1e-40, 3.4e38,
];

struct Mutator {
    rng: Rng,
}

impl Mutator {
    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn number(&mut self) -> Value {
        match self.below(3) {
            0 => json!(*self.pick(NUMBERS)),
            1 => json!(self.below(20) as i64 - 5),
            _ => json!(self.rng.next_u64()),
        }
    }

    /// A random value, at most `depth` levels deep.
    fn value(&mut self, depth: usize) -> Value {
        let kinds = if depth == 0 { 5 } else { 8 };
        match self.below(kinds) {
            0 => Value::Null,
            1 => Value::Bool(self.below(2) == 1),
            2 | 3 => self.number(),
            4 => json!(*self.pick(STRINGS)),
            5 => {
                // A vector of a size the collection has, or not.
                let len = *self.pick(&[0usize, 1, 6, 8, 9, 300]);
                Value::Array((0..len).map(|_| json!(self.rng.uniform() * 2.0 - 1.0)).collect())
            }
            6 => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
            _ => {
                let mut o = Map::new();
                for _ in 0..self.below(4) {
                    o.insert(self.pick(KEYS).to_string(), self.value(depth - 1));
                }
                Value::Object(o)
            }
        }
    }

    /// `v` with one to three mutations, each at a random node of it.
    fn mutate(&mut self, mut v: Value) -> Value {
        for _ in 0..1 + self.below(3) {
            let nodes = count(&v);
            let at = self.below(nodes);
            self.mutate_at(&mut v, at);
        }
        v
    }

    fn mutate_at(&mut self, v: &mut Value, mut at: usize) {
        let target = nth(v, &mut at).expect("a node of the value");
        match (self.below(6), &mut *target) {
            (0, Value::Object(o)) if !o.is_empty() => {
                let key = o.keys().nth(self.below(o.len())).cloned().expect("a key");
                o.remove(&key);
            }
            (1, Value::Object(o)) => {
                o.insert(self.pick(KEYS).to_string(), self.value(2));
            }
            (2, Value::Array(a)) if !a.is_empty() => {
                let i = self.below(a.len());
                if self.below(2) == 0 {
                    a.remove(i);
                } else {
                    let copy = a[i].clone();
                    a.push(copy);
                }
            }
            (3, Value::Number(_)) => *target = self.number(),
            (4, _) => *target = json!(*self.pick(STRINGS)),
            _ => *target = self.value(2),
        }
    }
}

/// Nodes of `v`, itself included.
fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count).sum(),
        Value::Object(o) => o.values().map(count).sum(),
        _ => 0,
    }
}

/// Node `at` of `v` in preorder (`at` is counted down as nodes pass).
fn nth<'a>(v: &'a mut Value, at: &mut usize) -> Option<&'a mut Value> {
    if *at == 0 {
        return Some(v);
    }
    *at -= 1;
    match v {
        Value::Array(a) => a.iter_mut().find_map(|c| nth(c, at)),
        Value::Object(o) => o.values_mut().find_map(|c| nth(c, at)),
        _ => None,
    }
}

/// Valid requests to every REST endpoint that takes a body: method, path, body.
fn templates() -> Vec<(reqwest::Method, &'static str, Value)> {
    use reqwest::Method;
    let (t, i) = query_vectors(7);
    let filter = json!({"must": [{"key": "category", "match": {"value": "books"}}],
                        "must_not": [{"key": "price", "range": {"gte": 100.0, "lt": 200.0}}]});
    let point =
        json!({"id": 5, "vector": {"text": t, "image": i}, "payload": {"category": "toys", "price": 3.0}});
    vec![
        (
            Method::POST,
            "/collections/p/points/search",
            json!({"vector": {"name": "text", "vector": t}, "limit": 5,
            "filter": filter, "params": {"hnsw_ef": 32, "quantization": {"rescore": true, "oversampling": 2.0}},
            "with_payload": ["category"], "score_threshold": 0.1}),
        ),
        (
            Method::POST,
            "/collections/p/points/search/batch",
            json!({"searches": [
            {"vector": {"name": "image", "vector": i}, "limit": 3}, {"vector": {"name": "text", "vector": t}, "limit": 2, "offset": 1}]}),
        ),
        (
            Method::POST,
            "/collections/p/points/query",
            json!({"prefetch": [
            {"query": t, "using": "text", "limit": 20}, {"query": i, "using": "image", "limit": 20, "filter": filter}],
            "query": {"fusion": "rrf"}, "limit": 5, "with_payload": true}),
        ),
        (
            Method::POST,
            "/collections/p/points/query",
            json!({"prefetch": {"query": t, "using": "text", "limit": 30},
            "query": {"formula": {"sum": ["$score", {"mult": [0.1, "price"]}]}}, "limit": 4}),
        ),
        (
            Method::POST,
            "/collections/p/points/query",
            json!({"query": {"recommend": {"positive": [1, 2], "negative": [3],
            "strategy": "best_score"}}, "using": "text", "limit": 3}),
        ),
        (
            Method::POST,
            "/collections/p/points/query",
            json!({"query": {"nearest": t, "mmr": {"diversity": 0.5,
            "candidates_limit": 20}}, "using": "text", "limit": 3}),
        ),
        (
            Method::POST,
            "/collections/p/points/query",
            json!({"query": {"order_by": {"key": "price", "direction": "desc"}},
            "filter": filter, "limit": 3}),
        ),
        (
            Method::POST,
            "/collections/p/points/query/batch",
            json!({"searches": [{"query": t, "using": "text"},
            {"query": {"discover": {"target": 4, "context": [{"positive": 1, "negative": 2}]}}, "using": "text"}]}),
        ),
        (
            Method::POST,
            "/collections/p/points/query/groups",
            json!({"query": t, "using": "text", "group_by": "category",
            "group_size": 2, "limit": 3}),
        ),
        (
            Method::POST,
            "/collections/p/points/search/groups",
            json!({"vector": {"name": "text", "vector": t},
            "group_by": "category", "group_size": 2, "limit": 3}),
        ),
        (
            Method::POST,
            "/collections/p/points/recommend",
            json!({"positive": [1, 2], "negative": [3], "using": "text", "limit": 3}),
        ),
        (
            Method::POST,
            "/collections/p/points/recommend/groups",
            json!({"positive": [1], "using": "image",
            "group_by": "category", "limit": 2}),
        ),
        (
            Method::POST,
            "/collections/p/points/discover",
            json!({"target": 1, "context": [{"positive": 2, "negative": 3}],
            "using": "text", "limit": 3}),
        ),
        (
            Method::POST,
            "/collections/p/points/search/matrix/pairs",
            json!({"sample": 10, "limit": 2, "using": "text"}),
        ),
        (
            Method::POST,
            "/collections/p/points/search/matrix/offsets",
            json!({"sample": 10, "limit": 2, "using": "image",
            "filter": filter}),
        ),
        (
            Method::POST,
            "/collections/p/points/scroll",
            json!({"filter": filter, "limit": 5, "with_payload": true,
            "order_by": "price"}),
        ),
        (Method::POST, "/collections/p/points/count", json!({"filter": filter, "exact": true})),
        (
            Method::POST,
            "/collections/p/points",
            json!({"ids": [1, 2, "b4a10009-0000-0000-0000-000000000000"],
            "with_vector": ["text"]}),
        ),
        (Method::POST, "/collections/p/facet", json!({"key": "category", "filter": filter, "limit": 3})),
        (Method::PUT, "/collections/p/points?wait=true", json!({"points": [point]})),
        (
            Method::PUT,
            "/collections/p/points?wait=true",
            json!({"batch": {"ids": [6, 7],
            "vectors": {"text": [t, t], "image": [i, i]}, "payloads": [{"category": "toys"}, null]}}),
        ),
        (
            Method::PUT,
            "/collections/p/points/vectors?wait=true",
            json!({"points": [{"id": 8, "vector": {"image": i}}]}),
        ),
        (
            Method::POST,
            "/collections/p/points/vectors/delete?wait=true",
            json!({"points": [9], "vector": ["image"]}),
        ),
        (
            Method::POST,
            "/collections/p/points/payload?wait=true",
            json!({"payload": {"stock": {"n": 2}}, "points": [10],
            "key": "extra"}),
        ),
        (
            Method::PUT,
            "/collections/p/points/payload?wait=true",
            json!({"payload": {"category": "garden"}, "filter": filter}),
        ),
        (
            Method::POST,
            "/collections/p/points/payload/delete?wait=true",
            json!({"keys": ["price"], "points": [11]}),
        ),
        (Method::POST, "/collections/p/points/payload/clear?wait=true", json!({"points": [12]})),
        (
            Method::POST,
            "/collections/p/points/delete?wait=true",
            json!({"filter": {"must": [{"has_id": [13, 14]}]}}),
        ),
        (
            Method::POST,
            "/collections/p/points/batch?wait=true",
            json!({"operations": [
            {"upsert": {"points": [point]}}, {"set_payload": {"payload": {"n": 1}, "points": [5]}},
            {"delete": {"points": [15]}}]}),
        ),
        (
            Method::PUT,
            "/collections/p/index?wait=true",
            json!({"field_name": "category", "field_schema": "keyword"}),
        ),
        (
            Method::PUT,
            "/collections/p/index?wait=true",
            json!({"field_name": "name", "field_schema": {"type": "text",
            "tokenizer": "word", "lowercase": true}}),
        ),
        (
            Method::PATCH,
            "/collections/p",
            json!({"vectors": {"text": {"hnsw_config": {"m": 8}}},
            "optimizers_config": {"indexing_threshold": 1000}}),
        ),
        (
            Method::PUT,
            "/collections/q",
            json!({"vectors": {"a": {"size": 8, "distance": "Dot", "on_disk": true,
            "datatype": "float16", "hnsw_config": {"m": 8, "payload_m": 4, "on_disk": true},
            "quantization_config": {"binary": {"always_ram": false}}}},
            "sparse_vectors": {"s": {"modifier": "idf"}}, "on_disk_payload": true,
            "quantization_config": {"scalar": {"type": "int8", "always_ram": true}}}),
        ),
        (
            Method::POST,
            "/collections/aliases",
            json!({"actions": [{"create_alias": {"collection_name": "p",
            "alias_name": "shop"}}]}),
        ),
    ]
}

/// Sends `body`; the status and the body as JSON (`None` when it is not JSON). A
/// dropped connection is a failure of the test.
async fn send(
    client: &reqwest::Client,
    base: &str,
    method: &reqwest::Method,
    path: &str,
    body: &Value,
) -> (u16, Option<Value>) {
    let response = client
        .request(method.clone(), format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path} {body}: no answer: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_else(|e| panic!("{method} {path} {body}: no body: {e}"));
    (status, serde_json::from_str(&text).ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_requests_get_answers_or_client_errors_never_server_errors() {
    let requests: usize =
        std::env::var("BRAID_MUTATED_REQUESTS").ok().and_then(|n| n.parse().ok()).unwrap_or(4_000);
    let seed: u64 = std::env::var("BRAID_MUTATED_SEED").ok().and_then(|n| n.parse().ok()).unwrap_or(0x5EED);
    let (running, rest) = serve_products().await;
    let (client, base) = (reqwest::Client::new(), format!("http://{}", running.server.http_addr()));
    rest.put("/collections/p/index?wait=true", json!({"field_name": "price", "field_schema": "float"})).await;
    rest.put("/collections/p/index?wait=true", json!({"field_name": "category", "field_schema": "keyword"}))
        .await;
    let templates = templates();
    // Each template as written is valid: a mutation is what makes a request bad.
    for (method, path, body) in &templates {
        let (status, answer) = send(&client, &base, method, path, body).await;
        assert_eq!(status, 200, "{method} {path} {body}: {answer:?}");
        if path.starts_with("/collections/q") {
            rest.call(reqwest::Method::DELETE, "/collections/q", None).await;
        }
    }
    // `Rng::new` sets the low bit: shifted, every seed starts its own sequence.
    let mut m = Mutator { rng: Rng::new(seed << 1) };
    let (mut failures, mut refused) = (Vec::new(), 0);
    for _ in 0..requests {
        let (method, path, body) = m.pick(&templates).clone();
        let body = m.mutate(body);
        let (status, answer) = send(&client, &base, &method, path, &body).await;
        // Qdrant's envelope: `status` is "ok" or `{"error": "..."}`.
        let error = answer.as_ref().and_then(|a| a["status"]["error"].as_str()).filter(|e| !e.is_empty());
        let ok = answer.as_ref().is_some_and(|a| a["status"] == "ok");
        match status {
            200 if ok => {}
            400..=499 if error.is_some() => refused += 1,
            _ => failures.push(format!("{method} {path} {body}\n  -> {status} {answer:?}")),
        }
        if status == 200 && path.starts_with("/collections/q") {
            rest.call(reqwest::Method::DELETE, "/collections/q", None).await;
        }
    }
    assert!(failures.is_empty(), "{} of {requests} failed:\n{}", failures.len(), failures.join("\n"));
    // Most mutations make a request wrong: the refusals are what this test exercises.
    assert!(refused * 4 > requests, "only {refused} of {requests} refused");

    // The server still answers: the products written again are found.
    let points = json!({"points": products().iter().map(point_json).collect::<Vec<_>>()});
    rest.put("/collections/p/points?wait=true", points).await;
    let (t, _) = query_vectors(7);
    let hits = rest
        .post("/collections/p/points/search", json!({"vector": {"name": "text", "vector": t}, "limit": 3}))
        .await;
    assert_eq!(hits.as_array().map(Vec::len), Some(3));
    drop(running);
}
