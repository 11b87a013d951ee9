//! Valid requests, mutated at random, sent to the endpoints that take a body: every
//! answer is a success or a client error with its reason — never a server error, a
//! dropped connection or a hang — and the server answers correctly afterwards.
//!
//! - REST: a JSON subtree replaced, a key dropped or added, a value swapped for an
//!   extreme one; a refusal is a 4xx with Qdrant's error body.
//! - gRPC: the encoded message's fields (sub-messages found by parsing) dropped,
//!   repeated, or given extreme numbers (NaN, infinities, integer bounds), other strings,
//!   or packed vectors of other lengths; a refusal is `INVALID_ARGUMENT`, `NOT_FOUND`,
//!   `ALREADY_EXISTS`, `FAILED_PRECONDITION` or `OUT_OF_RANGE` with a message.
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
fn templates() -> Vec<(reqwest::Method, String, Value)> {
    use reqwest::Method;
    let (t, i) = query_vectors(7);
    let filter = json!({"must": [{"key": "category", "match": {"value": "books"}}],
                        "must_not": [{"key": "price", "range": {"gte": 100.0, "lt": 200.0}}]});
    let point =
        json!({"id": 5, "vector": {"text": t, "image": i}, "payload": {"category": "toys", "price": 3.0}});
    let all: Vec<(Method, &str, Value)> = vec![
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
    ];
    // The reads and point writes again on `d`, whose spaces keep #18's layouts: rows as
    // float16 and on disk, binary and product codes and the graph mapped, payloads on disk.
    let on_d: Vec<_> = all
        .iter()
        .filter(|(_, path, _)| path.starts_with("/collections/p/points"))
        .map(|(method, path, body)| (method.clone(), path.replacen("/p/", "/d/", 1), widen(body)))
        .collect();
    all.into_iter().map(|(method, path, body)| (method, path.to_string(), body)).chain(on_d).collect()
}

/// What a REST answer was, by its status and Qdrant's envelope: `status` is "ok", or
/// `{"error": "..."}` with a reason.
#[derive(Debug, PartialEq)]
enum Answer {
    Success,
    Refused,
    Failed,
}

impl Answer {
    fn of(status: u16, answer: Option<&Value>) -> Answer {
        let error = answer.and_then(|a| a["status"]["error"].as_str()).is_some_and(|e| !e.is_empty());
        match status {
            200 if answer.is_some_and(|a| a["status"] == "ok") => Answer::Success,
            400..=499 if error => Answer::Refused,
            _ => Answer::Failed,
        }
    }
}

/// The text and image spaces' sizes in `d`: 64 components and more, where Braid keeps
/// codes (under 64 it keeps none, whatever the configuration asks).
const WIDE_TEXT: usize = 8 * TEXT;
const WIDE_IMAGE: usize = 11 * IMAGE;

/// A vector of `p` as `d` holds it: repeated to `d`'s size.
fn widened(v: &[f32]) -> Vec<f32> {
    let times = if v.len() == TEXT { WIDE_TEXT / TEXT } else { WIDE_IMAGE / IMAGE };
    v.iter().copied().cycle().take(v.len() * times).collect()
}

/// `v` with every vector of `p` in it (an array of `TEXT` or `IMAGE` numbers, none an
/// integer: ids and other lists are integers or shorter) widened for `d`.
fn widen(v: &Value) -> Value {
    match v {
        Value::Array(a)
            if (a.len() == TEXT || a.len() == IMAGE)
                && a.iter().all(|x| x.as_f64().is_some_and(|f| f.fract() != 0.0)) =>
        {
            let floats: Vec<f32> = a.iter().filter_map(Value::as_f64).map(|f| f as f32).collect();
            json!(widened(&floats))
        }
        Value::Array(a) => Value::Array(a.iter().map(widen).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), widen(v))).collect()),
        other => other.clone(),
    }
}

/// The products in collection `p` as [`serve_products`] has them, and again in `d`,
/// whose spaces keep #18's layouts (float16 rows on disk with binary codes mapped; product
/// codes and the graph mapped; payloads on disk); both with `price` and `category`
/// indexed.
async fn serve_p_and_d() -> (Running, Rest) {
    let (running, rest) = serve_products().await;
    let mut lean = config_json();
    lean["vectors"]["text"]["size"] = json!(WIDE_TEXT);
    lean["vectors"]["image"]["size"] = json!(WIDE_IMAGE);
    lean["vectors"]["text"].as_object_mut().expect("params").extend([
        ("datatype".to_string(), json!("float16")),
        ("on_disk".to_string(), json!(true)),
        ("quantization_config".to_string(), json!({"binary": {"always_ram": false}})),
    ]);
    lean["vectors"]["image"]["quantization_config"] =
        json!({"product": {"compression": "x4", "always_ram": false}});
    lean["vectors"]["image"]["hnsw_config"]["on_disk"] = json!(true);
    lean["on_disk_payload"] = json!(true);
    rest.put("/collections/d", lean).await;
    let points = json!({"points": products().iter().map(|p| widen(&point_json(p))).collect::<Vec<_>>()});
    rest.put("/collections/d/points?wait=true", points).await;
    // Codes are kept in `d`: the test would otherwise not reach them.
    let info = rest.get("/collections/d").await;
    let vectors = &info["config"]["params"]["vectors"];
    assert_eq!(vectors["text"]["quantization_config"]["binary"]["always_ram"], false, "{info}");
    assert_eq!(vectors["image"]["quantization_config"]["product"]["always_ram"], false, "{info}");
    for c in ["p", "d"] {
        for (field, schema) in [("price", "float"), ("category", "keyword")] {
            let index = json!({"field_name": field, "field_schema": schema});
            rest.put(&format!("/collections/{c}/index?wait=true"), index).await;
        }
    }
    (running, rest)
}

/// How many requests and from which seed: `BRAID_MUTATED_REQUESTS` (default `n`) and
/// `BRAID_MUTATED_SEED`.
fn requests_and_seed(n: usize) -> (usize, u64) {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    (var("BRAID_MUTATED_REQUESTS").map_or(n, |v| v as usize), var("BRAID_MUTATED_SEED").unwrap_or(0x5EED))
}

/// Sends every template, then `requests` mutated ones, through `rest`; fails on any
/// answer but a success or a client error with Qdrant's error body. Collection `q` is
/// dropped after each creation that succeeds.
async fn mutate_rest(
    rest: &Rest,
    templates: &[(reqwest::Method, String, Value)],
    requests: usize,
    seed: u64,
) {
    // Each template as written is valid: a mutation is what makes a request bad.
    for (method, path, body) in templates {
        let (status, answer) = rest.answer(method.clone(), path, Some(body)).await;
        assert_eq!(status, 200, "{method} {path} {body}: {answer:?}");
        if path.starts_with("/collections/q") {
            rest.call(reqwest::Method::DELETE, "/collections/q", None).await;
        }
    }
    // `Rng::new` sets the low bit: shifted, every seed starts its own sequence.
    let mut m = Mutator { rng: Rng::new(seed << 1) };
    let (mut failures, mut refused) = (Vec::new(), 0);
    for _ in 0..requests {
        let (method, path, body) = m.pick(templates).clone();
        let body = m.mutate(body);
        let (status, answer) = rest.answer(method.clone(), &path, Some(&body)).await;
        // Qdrant's envelope: `status` is "ok" or `{"error": "..."}`.
        match Answer::of(status, answer.as_ref()) {
            Answer::Success => {}
            Answer::Refused => refused += 1,
            Answer::Failed => failures.push(format!("{method} {path} {body}\n  -> {status} {answer:?}")),
        }
        if status == 200 && path.starts_with("/collections/q") {
            rest.call(reqwest::Method::DELETE, "/collections/q", None).await;
        }
    }
    outcome(rest, &failures, refused, requests).await;
}

/// Fails on any failure of a run of `requests`, or on too few refusals (most mutations
/// make a request wrong: the refusals are what these tests exercise); then checks that
/// the server still answers: the products written again are found.
async fn outcome(rest: &Rest, failures: &[String], refused: usize, requests: usize) {
    assert!(failures.is_empty(), "{} of {requests} failed:\n{}", failures.len(), failures.join("\n"));
    assert!(refused * 4 > requests, "only {refused} of {requests} refused");
    let points = json!({"points": products().iter().map(point_json).collect::<Vec<_>>()});
    rest.put("/collections/p/points?wait=true", points).await;
    let (t, _) = query_vectors(7);
    let hits = rest
        .post("/collections/p/points/search", json!({"vector": {"name": "text", "vector": t}, "limit": 3}))
        .await;
    assert_eq!(hits.as_array().map(Vec::len), Some(3));
}

/// Collection `p` on a cluster, through `rest`: the products in three shards of two
/// replicas, `price` and `category` indexed.
async fn sharded_products(rest: &Rest) {
    let mut config = config_json();
    config["shard_number"] = json!(3);
    config["replication_factor"] = json!(2);
    rest.put("/collections/p", config).await;
    let points = json!({"points": products().iter().map(point_json).collect::<Vec<_>>()});
    rest.put("/collections/p/points?wait=true", points).await;
    for (field, schema) in [("price", "float"), ("category", "keyword")] {
        rest.put("/collections/p/index?wait=true", json!({"field_name": field, "field_schema": schema}))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_requests_get_answers_or_client_errors_never_server_errors() {
    let (requests, seed) = requests_and_seed(4_000);
    // The server runs while `_running` lives.
    let (_running, rest) = serve_p_and_d().await;
    mutate_rest(&rest, &templates(), requests, seed).await;
}

/// The same through a node of a three-node cluster, `p` cut into three shards of two
/// replicas: the reads merge every shard's answer, the writes go through the shards'
/// groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_requests_through_a_cluster_get_answers_or_client_errors() {
    let (requests, seed) = requests_and_seed(1_500);
    let (first, second, _third, _) = crate::cluster::three_nodes().await;
    let (rest, other) = (Rest::to(&first), Rest::to(&second));
    sharded_products(&rest).await;
    // Requests go to the second node, which passes them on; the collection `d` of the
    // single server is not made here. MMR and distance matrices are not served across
    // shards yet (`docs/distributed.md`).
    let served = |path: &str, body: &Value| body["query"].get("mmr").is_none() && !path.contains("/matrix/");
    let templates: Vec<_> = templates()
        .into_iter()
        .filter(|(_, path, body)| !path.starts_with("/collections/d") && served(path, body))
        .collect();
    mutate_rest(&other, &templates, requests, seed).await;
}

/// A protobuf message as its wire fields, sub-messages parsed where a length-delimited
/// field reads as one (a guess the mutations do not need to get right).
#[derive(Clone, Debug)]
enum Wire {
    Varint(u64),
    Fixed64([u8; 8]),
    Fixed32([u8; 4]),
    Bytes(Vec<u8>),
    Message(Vec<(u32, Wire)>),
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// `bytes` as a message's fields; `None` unless every byte is part of a field.
fn parse(bytes: &[u8]) -> Option<Vec<(u32, Wire)>> {
    let (mut fields, mut at) = (Vec::new(), 0);
    while at < bytes.len() {
        let key = varint(bytes, &mut at)?;
        let number = u32::try_from(key >> 3).ok().filter(|&n| n > 0)?;
        let field = match key & 7 {
            0 => Wire::Varint(varint(bytes, &mut at)?),
            1 => {
                let b = bytes.get(at..at + 8)?.try_into().ok()?;
                at += 8;
                Wire::Fixed64(b)
            }
            5 => {
                let b = bytes.get(at..at + 4)?.try_into().ok()?;
                at += 4;
                Wire::Fixed32(b)
            }
            2 => {
                let len = usize::try_from(varint(bytes, &mut at)?).ok()?;
                let body = bytes.get(at..at.checked_add(len)?)?;
                at += len;
                match parse(body) {
                    Some(inner) if !inner.is_empty() => Wire::Message(inner),
                    _ => Wire::Bytes(body.to_vec()),
                }
            }
            _ => return None,
        };
        fields.push((number, field));
    }
    Some(fields)
}

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn encode(fields: &[(u32, Wire)], out: &mut Vec<u8>) {
    for (number, field) in fields {
        let wire = match field {
            Wire::Varint(_) => 0,
            Wire::Fixed64(_) => 1,
            Wire::Fixed32(_) => 5,
            Wire::Bytes(_) | Wire::Message(_) => 2,
        };
        put_varint(u64::from(*number) << 3 | wire, out);
        match field {
            Wire::Varint(v) => put_varint(*v, out),
            Wire::Fixed64(b) => out.extend_from_slice(b),
            Wire::Fixed32(b) => out.extend_from_slice(b),
            Wire::Bytes(b) => {
                put_varint(b.len() as u64, out);
                out.extend_from_slice(b);
            }
            Wire::Message(inner) => {
                let mut body = Vec::new();
                encode(inner, &mut body);
                put_varint(body.len() as u64, out);
                out.extend_from_slice(&body);
            }
        }
    }
}

/// Fields of `fields` and of every sub-message, counted.
fn wire_nodes(fields: &[(u32, Wire)]) -> usize {
    fields.iter().map(|(_, f)| 1 + if let Wire::Message(inner) = f { wire_nodes(inner) } else { 0 }).sum()
}

impl Mutator {
    /// One mutation at field `at` (preorder over every message) of `fields`.
    fn mutate_wire(&mut self, fields: &mut Vec<(u32, Wire)>, at: &mut usize) -> bool {
        for i in 0..fields.len() {
            if *at == 0 {
                match self.below(5) {
                    0 => {
                        fields.remove(i);
                    }
                    1 => {
                        let copy = fields[i].clone();
                        fields.insert(i, copy);
                    }
                    _ => self.mutate_value(&mut fields[i].1),
                }
                return true;
            }
            *at -= 1;
            if let Wire::Message(inner) = &mut fields[i].1
                && self.mutate_wire(inner, at)
            {
                return true;
            }
        }
        false
    }

    fn mutate_value(&mut self, field: &mut Wire) {
        const VARINTS: &[u64] =
            &[0, 1, 2, 3, 7, 8, 100, 1 << 31, u32::MAX as u64, 1 << 53, i64::MAX as u64, u64::MAX];
        const FLOATS: &[f64] =
            &[0.0, -1.0, 0.5, 1e-40, 3.5e38, 1e300, f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
        match field {
            Wire::Varint(v) => {
                *v = if self.below(2) == 0 { *self.pick(VARINTS) } else { self.rng.next_u64() }
            }
            Wire::Fixed64(b) => *b = self.pick(FLOATS).to_le_bytes(),
            Wire::Fixed32(b) => *b = (*self.pick(FLOATS) as f32).to_le_bytes(),
            // A string (another one), or packed numbers: cut or grown by whole floats.
            Wire::Bytes(b) if std::str::from_utf8(b).is_ok() && self.below(4) > 0 => {
                *b = self.pick(STRINGS).as_bytes().to_vec()
            }
            Wire::Bytes(b) if self.below(2) == 0 => b.truncate(self.below(b.len() / 4 + 1) * 4),
            Wire::Bytes(b) => b.extend_from_slice(&(*self.pick(FLOATS) as f32).to_le_bytes()),
            Wire::Message(inner) => inner.clear(),
        }
    }
}

/// Messages passed to and from a call as they are, encoded by the caller.
#[derive(Clone, Copy, Default)]
struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf as _;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// Valid gRPC requests: the method's path and the encoded message. Every points call on
/// `p`, again on `d` (#18's layouts), and a collection creation.
fn grpc_templates() -> Vec<(&'static str, Vec<u8>)> {
    let mut all = grpc_points_templates("p");
    all.extend(grpc_points_templates("d"));
    all.push(("/qdrant.Collections/Create", grpc_create_template()));
    all
}

/// Valid requests to the points calls on collection `c`.
fn grpc_points_templates(c: &str) -> Vec<(&'static str, Vec<u8>)> {
    use prost::Message as _;
    use qdrant_client::qdrant::{self as q, Condition, Filter, Range};
    let (t, i) = query_vectors(7);
    let (t, i) = if c == "d" { (widened(&t), widened(&i)) } else { (t, i) };
    let example = |id: u64| q::VectorExample::from(q::vector_example::Example::from(q::PointId::from(id)));
    let filter = Filter {
        must: vec![Condition::matches("category", "books".to_string())],
        must_not: vec![Condition::range(
            "price",
            Range { gte: Some(100.0), lt: Some(200.0), ..Default::default() },
        )],
        ..Default::default()
    };
    let point = q::PointStruct::new(
        5,
        q::NamedVectors::default().add_vector("text", t.clone()).add_vector("image", i.clone()),
        [("category", "toys".into()), ("price", 3.0.into())],
    );
    let search = q::SearchPointsBuilder::new(c, t.clone(), 5)
        .vector_name("text")
        .filter(filter.clone())
        .params(
            q::SearchParamsBuilder::default()
                .hnsw_ef(32)
                .quantization(q::QuantizationSearchParamsBuilder::default().rescore(true).oversampling(2.0)),
        )
        .score_threshold(0.1)
        .with_payload(true)
        .build();
    let fused = q::QueryPointsBuilder::new(c)
        .add_prefetch(q::PrefetchQueryBuilder::default().query(t.clone()).using("text").limit(20u64))
        .add_prefetch(
            q::PrefetchQueryBuilder::default()
                .query(i.clone())
                .using("image")
                .limit(20u64)
                .filter(filter.clone()),
        )
        .query(q::Fusion::Rrf)
        .limit(5)
        .build();
    let ordered = q::QueryPointsBuilder::new(c)
        .query(q::Query::new_order_by(q::OrderByBuilder::new("price").direction(q::Direction::Desc as i32)))
        .filter(filter.clone())
        .limit(3)
        .build();
    let recommend = q::QueryPointsBuilder::new(c)
        .query(q::Query::new_recommend(q::RecommendInputBuilder::default().add_positive(1).add_negative(3)))
        .using("text")
        .limit(3)
        .build();
    vec![
        ("/qdrant.Points/Search", search.encode_to_vec()),
        (
            "/qdrant.Points/SearchBatch",
            q::SearchBatchPoints {
                collection_name: c.into(),
                search_points: vec![
                    search.clone(),
                    q::SearchPointsBuilder::new(c, i.clone(), 3).vector_name("image").build(),
                ],
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        ("/qdrant.Points/Query", fused.encode_to_vec()),
        ("/qdrant.Points/Query", ordered.encode_to_vec()),
        ("/qdrant.Points/Query", recommend.encode_to_vec()),
        (
            "/qdrant.Points/QueryBatch",
            q::QueryBatchPoints {
                collection_name: c.into(),
                query_points: vec![fused, recommend],
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/qdrant.Points/QueryGroups",
            q::QueryPointGroupsBuilder::new(c, "category")
                .query(t.clone())
                .using("text")
                .group_size(2u64)
                .limit(3u64)
                .build()
                .encode_to_vec(),
        ),
        (
            "/qdrant.Points/Recommend",
            q::RecommendPointsBuilder::new(c, 3)
                .add_positive(1)
                .add_negative(2)
                .using("text")
                .build()
                .encode_to_vec(),
        ),
        (
            "/qdrant.Points/Discover",
            q::DiscoverPointsBuilder::new(
                c,
                vec![q::ContextExamplePair { positive: Some(example(2)), negative: Some(example(3)) }],
                3,
            )
            .target(q::TargetVector::from(q::target_vector::Target::Single(example(1))))
            .using("text")
            .build()
            .encode_to_vec(),
        ),
        (
            "/qdrant.Points/SearchMatrixPairs",
            q::SearchMatrixPointsBuilder::new(c).sample(10).limit(2).using("text").build().encode_to_vec(),
        ),
        (
            "/qdrant.Points/Scroll",
            q::ScrollPointsBuilder::new(c)
                .filter(filter.clone())
                .limit(5)
                .with_payload(true)
                .build()
                .encode_to_vec(),
        ),
        (
            "/qdrant.Points/Count",
            q::CountPointsBuilder::new(c).filter(filter.clone()).exact(true).build().encode_to_vec(),
        ),
        (
            "/qdrant.Points/Facet",
            q::FacetCountsBuilder::new(c, "category").filter(filter.clone()).limit(3).build().encode_to_vec(),
        ),
        (
            "/qdrant.Points/Get",
            q::GetPointsBuilder::new(c, vec![1.into(), 2.into()]).with_vectors(true).build().encode_to_vec(),
        ),
        (
            "/qdrant.Points/Upsert",
            q::UpsertPointsBuilder::new(c, vec![point]).wait(true).build().encode_to_vec(),
        ),
        (
            "/qdrant.Points/SetPayload",
            q::SetPayloadPointsBuilder::new(
                c,
                qdrant_client::Payload::try_from(serde_json::json!({"n": 1})).expect("payload"),
            )
            .points_selector(vec![q::PointId::from(10)])
            .wait(true)
            .build()
            .encode_to_vec(),
        ),
        (
            "/qdrant.Points/Delete",
            q::DeletePointsBuilder::new(c)
                .points(vec![q::PointId::from(13)])
                .wait(true)
                .build()
                .encode_to_vec(),
        ),
        (
            "/qdrant.Points/CreateFieldIndex",
            q::CreateFieldIndexCollectionBuilder::new(c, "category", q::FieldType::Keyword)
                .wait(true)
                .build()
                .encode_to_vec(),
        ),
    ]
}

/// A valid creation of collection `q` in #18's layouts.
fn grpc_create_template() -> Vec<u8> {
    use prost::Message as _;
    use qdrant_client::qdrant as q;
    q::CreateCollectionBuilder::new("q")
        .vectors_config({
            let mut named = q::VectorsConfigBuilder::default();
            named.add_named_vector_params(
                "a",
                q::VectorParamsBuilder::new(8, q::Distance::Dot)
                    .on_disk(true)
                    .datatype(q::Datatype::Float16)
                    .quantization_config(q::BinaryQuantizationBuilder::new(false)),
            );
            named
        })
        .on_disk_payload(true)
        .build()
        .encode_to_vec()
}

/// Sends every template, then `requests` mutated ones, to the gRPC listener at `addr`;
/// fails on any answer but a success, a refusal with its reason, or a message that
/// does not decode. `rest` (on the same server) drops collection `q` after each
/// creation that succeeds.
async fn mutate_grpc(
    addr: std::net::SocketAddr,
    rest: &Rest,
    templates: &[(&'static str, Vec<u8>)],
    requests: usize,
    seed: u64,
) {
    use tonic::Code;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("a URL")
        .connect()
        .await
        .expect("a gRPC channel");
    let mut grpc = tonic::client::Grpc::new(channel);
    let mut call = async |path: &'static str, body: Vec<u8>| {
        grpc.ready().await.expect("the channel is ready");
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
        grpc.unary(tonic::Request::new(body), path, Raw).await
    };
    for (path, body) in templates {
        let answer = call(path, body.clone()).await;
        assert!(answer.is_ok(), "{path}: {answer:?}");
        if path.starts_with("/qdrant.Collections/Create") {
            rest.call(reqwest::Method::DELETE, "/collections/q", None).await;
        }
    }
    let mut m = Mutator { rng: Rng::new(seed << 1) };
    let (mut failures, mut refused, mut undecodable) = (Vec::new(), 0, 0);
    for _ in 0..requests {
        let (path, body) = m.pick(templates).clone();
        let mut fields = parse(&body).expect("a template parses");
        for _ in 0..1 + m.below(3) {
            let mut at = m.below(wire_nodes(&fields).max(1));
            m.mutate_wire(&mut fields, &mut at);
        }
        let mut body = Vec::new();
        encode(&fields, &mut body);
        match call(path, body.clone()).await {
            // As every gRPC server (tonic's, and so Qdrant's): a message that does not
            // decode is `INTERNAL` with the decoder's words. Other mutations reach Braid.
            Err(status)
                if status.code() == Code::Internal
                    && status.message().starts_with("failed to decode Protobuf message") =>
            {
                undecodable += 1
            }
            Ok(_) => {
                if path.starts_with("/qdrant.Collections/Create") {
                    rest.call(reqwest::Method::DELETE, "/collections/q", None).await;
                }
            }
            Err(status)
                if matches!(
                    status.code(),
                    Code::InvalidArgument
                        | Code::NotFound
                        | Code::AlreadyExists
                        | Code::FailedPrecondition
                        | Code::OutOfRange
                ) && !status.message().is_empty() =>
            {
                refused += 1
            }
            Err(status) => failures.push(format!("{path} {body:?}\n  -> {status:?}")),
        }
    }
    assert!(undecodable * 4 < requests, "{undecodable} of {requests} did not decode");
    outcome(rest, &failures, refused, requests).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_grpc_requests_get_answers_or_client_errors_never_server_errors() {
    let (requests, seed) = requests_and_seed(4_000);
    let (running, rest) = serve_p_and_d().await;
    mutate_grpc(running.server.grpc_addr(), &rest, &grpc_templates(), requests, seed).await;
}

/// The same through a node of a three-node cluster, `p` cut into three shards of two
/// replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_grpc_requests_through_a_cluster_get_answers_or_client_errors() {
    let (requests, seed) = requests_and_seed(1_500);
    let (first, second, _third, _) = crate::cluster::three_nodes().await;
    let rest = Rest::to(&first);
    sharded_products(&rest).await;
    // Distance matrices are not served across shards yet (`docs/distributed.md`).
    let mut templates: Vec<_> =
        grpc_points_templates("p").into_iter().filter(|(path, _)| !path.contains("Matrix")).collect();
    templates.push(("/qdrant.Collections/Create", grpc_create_template()));
    mutate_grpc(second.server.grpc_addr(), &Rest::to(&second), &templates, requests, seed).await;
}

/// Path segments a client may send in place of a name, an id or a file: a space, an
/// encoded slash, NUL or newline, bytes that are not UTF-8, numbers out of range, a
/// UUID cut short, a bidirectional control. (`..` is not among them: the client
/// resolves dot segments before sending.)
#[rustfmt::skip]
const ODD_SEGMENTS: &[&str] = &[
    "%20", "%2F", "%00", "%FF%FE", "-1", "18446744073709551616", "1.5",
    "b4a10009-0000-0000-0000-00000000000", "nope", "p%0Ad", "%E2%80%AE",
];

/// Query strings in place of `?wait=true`: values of the wrong type, repeated keys.
#[rustfmt::skip]
const ODD_QUERIES: &[&str] = &[
    "?wait=maybe", "?wait=1", "?timeout=-5", "?timeout=1e9", "?timeout=18446744073709551616",
    "?consistency=xyz", "?consistency=0", "?ordering=fastest", "?wait=true&wait=false", "?%FF=1",
];

/// Every route with a name, id, field or file in its path, given odd segments, and
/// every route taking `?wait` or `?timeout`, given odd query strings: each answer is a
/// success or a client error with Qdrant's error body, and the collection is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_paths_and_query_strings_get_client_errors() {
    use reqwest::Method;
    let (_running, rest) = serve_products().await;
    let (t, _) = query_vectors(7);
    let search = json!({"vector": {"name": "text", "vector": t}, "limit": 3});
    let mut calls: Vec<(Method, String, Value)> = Vec::new();
    for odd in ODD_SEGMENTS {
        for (method, path) in [
            (Method::GET, format!("/collections/{odd}")),
            (Method::DELETE, format!("/collections/{odd}")),
            (Method::GET, format!("/collections/{odd}/exists")),
            (Method::GET, format!("/collections/{odd}/aliases")),
            (Method::GET, format!("/collections/p/points/{odd}")),
            (Method::DELETE, format!("/collections/p/index/{odd}")),
            (Method::PUT, format!("/collections/p/vectors/{odd}")),
            (Method::DELETE, format!("/collections/p/vectors/{odd}")),
            (Method::GET, format!("/collections/p/snapshots/{odd}")),
            (Method::DELETE, format!("/collections/p/snapshots/{odd}")),
            (Method::GET, format!("/snapshots/{odd}")),
            (Method::DELETE, format!("/cluster/peer/{odd}")),
            (Method::POST, format!("/collections/{odd}/points/search")),
        ] {
            let body =
                if method == Method::POST { search.clone() } else { json!({"size": 8, "distance": "Dot"}) };
            calls.push((method, path, body));
        }
    }
    for odd in ODD_QUERIES {
        for (method, path, body) in [
            (Method::POST, "/collections/p/points/search", search.clone()),
            (Method::POST, "/collections/p/points/query", json!({"query": t, "using": "text"})),
            (Method::PUT, "/collections/p/points", json!({"points": [point_json(&products()[0])]})),
            (Method::POST, "/collections/p/points/delete", json!({"points": [999_999]})),
            (
                Method::PUT,
                "/collections/p/index",
                json!({"field_name": "category", "field_schema": "keyword"}),
            ),
            (Method::POST, "/collections/p/points/count", json!({})),
        ] {
            calls.push((method, format!("{path}{odd}"), body));
        }
    }
    let mut failures = Vec::new();
    for (method, path, body) in &calls {
        let (status, answer) = rest.answer(method.clone(), path, Some(body)).await;
        if Answer::of(status, answer.as_ref()) == Answer::Failed {
            failures.push(format!("{method} {path}\n  -> {status} {answer:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} failed:\n{}", failures.len(), calls.len(), failures.join("\n"));
    let count = rest.post("/collections/p/points/count", json!({})).await;
    assert_eq!(count["count"], 300, "the products are all there");
}
