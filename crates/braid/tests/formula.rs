//! Formulas (score boosting) against closed-form references: each formula below is
//! computed by hand in Rust for every candidate of its prefetches and compared with
//! what the engine returns, order and scores; then the refusals.

use std::collections::HashMap;

use braid::query::QueryError;
use braid::{
    CollectionConfig, Database, Distance, Error, Formula, PointId, PointStruct, Prefetch, Query,
    QueryRequest, SearchParams, VectorParams,
};
use serde_json::{Value, json};

const EXACT: SearchParams = SearchParams::EXACT;

fn fixture() -> braid::Collection {
    let db = Database::in_memory();
    let config = CollectionConfig::new().vector("v", VectorParams::new(2, Distance::Dot));
    let c = db.create_collection("shop", config).unwrap();
    c.upsert(
        (0..200u64)
            .map(|i| {
                let tag = ["new", "old", "sale"][(i % 3) as usize];
                let mut payload = json!({
                    "price": (i % 40) as f64 + 0.5,
                    "tag": tag,
                    "at": {"lon": 2.35 + (i % 10) as f64 * 0.1, "lat": 48.85},
                    "day": format!("2025-01-{:02}T00:00:00Z", 1 + i % 28),
                });
                if i % 7 == 0 {
                    payload.as_object_mut().unwrap().remove("price");
                }
                PointStruct::new(i)
                    .vector("v", vec![(i as f32 * 0.7).cos(), (i as f32 * 0.3).sin()])
                    .payload(payload)
            })
            .collect(),
    )
    .unwrap();
    c
}

fn prefetches() -> Vec<Prefetch> {
    vec![
        Prefetch::nearest("v", vec![1.0, 0.2], 40).params(EXACT),
        Prefetch::nearest("v", vec![-0.3, 1.0], 40).params(EXACT),
    ]
}

fn formula(expression: Value, defaults: Option<Value>) -> QueryRequest {
    let f = Formula::from_json(&expression, defaults.as_ref()).unwrap();
    QueryRequest { prefetch: prefetches(), query: Some(Query::Formula(f)), ..QueryRequest::default() }
        .limit(1_000)
}

/// Every candidate with its payload and its score in each prefetch, first-seen order.
fn candidates(c: &braid::Collection) -> Vec<(PointId, Value, [Option<f32>; 2])> {
    let mut order = Vec::new();
    let mut scores: HashMap<PointId, [Option<f32>; 2]> = HashMap::new();
    let mut payloads = HashMap::new();
    for (i, p) in prefetches().into_iter().enumerate() {
        let request = QueryRequest {
            prefetch: vec![],
            query: p.query,
            using: p.using,
            params: p.params,
            ..QueryRequest::default()
        }
        .limit(40);
        for hit in c.query(braid::QueryPoints::from(request).with_payload(true)).unwrap() {
            scores.entry(hit.id).or_insert_with(|| {
                order.push(hit.id);
                [None, None]
            })[i] = Some(hit.score);
            payloads.insert(hit.id, hit.payload.unwrap());
        }
    }
    order.into_iter().map(|id| (id, payloads[&id].clone(), scores[&id])).collect()
}

fn check(
    c: &braid::Collection,
    request: QueryRequest,
    reference: impl Fn(&Value, [Option<f32>; 2]) -> f64,
    what: &str,
) {
    let mut want: Vec<(PointId, f32)> =
        candidates(c).into_iter().map(|(id, p, s)| (id, reference(&p, s) as f32)).collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    let got: Vec<(PointId, f32)> = c.query(request).unwrap().into_iter().map(|h| (h.id, h.score)).collect();
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(&want) {
        assert!((g.1 - w.1).abs() <= 1e-5 * w.1.abs().max(1.0), "{what}: {g:?} vs {w:?}");
    }
    // Same order up to exact float noise among near-equal scores.
    let ids = |v: &[(PointId, f32)]| v.iter().map(|x| x.0).collect::<std::collections::BTreeSet<_>>();
    assert_eq!(ids(&got), ids(&want), "{what}");
}

fn haversine(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let (dp, dl) = ((lat2 - lat1).to_radians(), (lon2 - lon1).to_radians());
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6_371_008.8 * a.sqrt().min(1.0).asin()
}

#[test]
fn formulas_match_their_closed_forms() {
    let c = fixture();
    let s = |x: Option<f32>| x.map_or(0.0, f64::from);
    let price = |p: &Value| p.get("price").and_then(Value::as_f64);

    // Score plus a boost for tagged points (a condition is 1 or 0).
    check(
        &c,
        formula(
            json!({"sum": ["$score", {"mult": [0.5, {"key": "tag", "match": {"any": ["new", "sale"]}}]}]}),
            None,
        ),
        |p, sc| s(sc[0]) + if p["tag"] != "old" { 0.5 } else { 0.0 },
        "boost by condition",
    );
    // Both prefetch scores, a default for the second, and an exponential price decay
    // with a default for points without a price.
    check(
        &c,
        formula(
            json!({"sum": [{"mult": ["$score[0]", {"exp_decay": {"x": "price", "target": 10.0, "scale": 5.0, "midpoint": 0.3}}]}, "$score[1]"]}),
            Some(json!({"price": 100.0, "$score[1]": -1.0})),
        ),
        |p, sc| {
            let x = price(p).unwrap_or(100.0);
            s(sc[0]) * ((0.3f64).ln() / 5.0 * (x - 10.0).abs()).exp() + sc[1].map_or(-1.0, f64::from)
        },
        "decay and defaults",
    );
    // Gauss decay of the distance to Paris, linear decay of days since 2025-01-01.
    let jan1 = 1_735_689_600.0;
    check(
        &c,
        formula(
            json!({"mult": [
                {"gauss_decay": {"x": {"geo_distance": {"origin": {"lon": 2.35, "lat": 48.85}, "to": "at"}}, "scale": 50_000.0}},
                {"lin_decay": {"x": {"datetime_key": "day"}, "target": {"datetime": "2025-01-01T00:00:00Z"}, "scale": 2_592_000.0, "midpoint": 0.2}}
            ]}),
            None,
        ),
        |p, _| {
            let d = haversine(2.35, 48.85, p["at"]["lon"].as_f64().unwrap(), 48.85);
            let g = ((0.5f64).ln() / (50_000.0f64 * 50_000.0) * d * d).exp();
            let x = jan1 + day_index(p["day"].as_str().unwrap()) as f64 * 86_400.0;
            let l = (1.0 - (1.0 - 0.2) / 2_592_000.0 * (x - jan1).abs()).max(0.0);
            g * l
        },
        "geo and datetime decays",
    );
    // The other operators.
    check(
        &c,
        formula(
            json!({"sum": [
                {"sqrt": {"abs": "$score"}}, {"ln": {"sum": [2.0, {"abs": "$score[1]"}]}}, {"log10": 50.0},
                {"pow": {"base": 1.1, "exponent": 2.0}}, {"neg": {"max": [0.1, "$score"]}}, {"min": [1.0, 3.0]},
                {"div": {"left": 1.0, "right": {"mult": ["$score[1]", 0.0]}, "by_zero_default": 7.0}}
            ]}),
            None,
        ),
        |_, sc| {
            s(sc[0]).abs().sqrt() + (2.0 + s(sc[1]).abs()).ln() + 50f64.log10() + 1.1f64.powf(2.0)
                - 0.1f64.max(s(sc[0]))
                + 1.0
                + 7.0
        },
        "operators",
    );
}

/// Days since 2025-01-01 of the fixture's `2025-01-DD…` strings.
fn day_index(s: &str) -> i64 {
    s[8..10].parse::<i64>().unwrap() - 1
}

#[test]
fn formula_refusals_are_typed() {
    let c = fixture();
    let run = |e: Value, d: Option<Value>| c.query(formula(e, d));
    let formula_error =
        |r: Result<Vec<braid::ScoredPoint>, Error>| matches!(r, Err(Error::Query(QueryError::Formula(_))));
    // A payload variable some candidates lack, without a default.
    assert!(formula_error(run(json!({"sum": ["$score", "price"]}), None)));
    assert!(run(json!({"sum": ["$score", "price"]}), Some(json!({"price": 0.0}))).is_ok());
    // A non-numeric variable.
    assert!(formula_error(run(json!("tag"), None)));
    // Division by zero without a default, a negative square root, ln of zero.
    assert!(formula_error(run(json!({"div": {"left": 1.0, "right": 0.0}}), None)));
    assert!(formula_error(run(json!({"sqrt": -1.0}), None)));
    assert!(formula_error(run(json!({"ln": 0.0}), None)));
    // Parse-time refusals: a bad score variable, a bad decay, an empty max, two operators.
    for bad in [
        json!("$score[x]"),
        json!({"exp_decay": {"x": 1.0, "midpoint": 1.5}}),
        json!({"lin_decay": {"x": 1.0, "scale": 0.0}}),
        json!({"max": []}),
        json!({"sum": [1.0], "mult": [2.0]}),
        json!({"key": "tag", "match": {"nonsense": 1}}),
    ] {
        assert!(matches!(Formula::from_json(&bad, None), Err(QueryError::Formula(_))), "{bad}");
    }
    // Without prefetches.
    let f = Formula::from_json(&json!(1.0), None).unwrap();
    assert!(matches!(
        c.query(QueryRequest { query: Some(Query::Formula(f)), ..QueryRequest::default() }),
        Err(Error::Query(QueryError::FormulaWithoutPrefetch))
    ));
}
