//! Index a small catalogue, parse a filter from Qdrant's JSON, and see how the planner
//! answers it: one bitmap when indexes cover it, a per-point predicate when not.
//!
//! `cargo run -p braid-filter --example catalogue`

use braid_core::{OffsetFilter, PointOffset};
use braid_filter::{Filter, FilterError, IndexKind, OffsetIds, PayloadStore, field};
use serde_json::json;

fn main() -> Result<(), FilterError> {
    let items = [
        json!({"name": "linen shirt", "category": "apparel", "price": 59.0, "reviews": [{"user": "ann", "score": 5}]}),
        json!({"name": "wool coat", "category": "apparel", "price": 240.0, "reviews": [{"user": "bob", "score": 3}]}),
        json!({"name": "trail shoe", "category": "shoes", "price": 120.0, "reviews": []}),
        json!({"name": "rain jacket", "category": "apparel", "price": 180.0, "reviews": [{"user": "ann", "score": 2}, {"user": "cy", "score": 5}]}),
    ];
    let mut store = PayloadStore::new();
    store.create_index("category", IndexKind::Keyword).expect("a fresh store has no conflicting index");
    store.create_index("price", IndexKind::Float).expect("a fresh store has no conflicting index");
    for (i, item) in items.iter().enumerate() {
        store.set(PointOffset(i as u32), item.clone());
    }
    let catalogue = OffsetIds::new((0..items.len() as u32).collect());

    let indexed = Filter::must([field("category").eq("apparel"), field("price").lte(200.0)]);
    let from_json = Filter::from_json_str(
        r#"{"must": [{"key": "category", "match": {"value": "apparel"}},
                     {"nested": {"key": "reviews", "filter": {"must": [
                         {"key": "user", "match": {"value": "ann"}},
                         {"key": "score", "range": {"gte": 4}}]}}}]}"#,
    )?;
    for (what, filter) in [("indexed", &indexed), ("with nested", &from_json)] {
        let planned = store.plan(filter, &catalogue);
        let names: Vec<&str> =
            planned.matching().iter().filter_map(|o| items[o as usize]["name"].as_str()).collect();
        println!(
            "{what}: {} → {names:?} (one bitmap: {}, estimate {:?})",
            filter.to_json(),
            planned.bitmap().is_some(),
            planned.estimate()
        );
    }
    match Filter::from_json_str(r#"{"must": [{"key": "price", "range": {}}]}"#) {
        Err(e) => println!("a malformed filter is a typed error: {e}"),
        Ok(f) => println!("unexpectedly parsed {}", f.to_json()),
    }
    Ok(())
}
