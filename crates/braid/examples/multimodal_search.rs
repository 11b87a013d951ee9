//! The multi-model tutorial, steps 1–12, on the embedded database.
//!
//! `cargo run --release --example multimodal_search`
//!
//! Data are generated (deterministic): 2,000 products, each with a 384-d `text` vector
//! and a 512-d `image` vector around one of 40 topics. For 70 % of products the two
//! spaces agree on the topic; for the rest the image shows another topic, so the spaces
//! agree on some items and not on others — which is what fusion is for.

use braid::fusion::classic::{self, ScoredList};
use braid::fusion::qdrant;
use braid::{
    CollectionConfig, Database, Distance, Error, Filter, Fusion, IndexKind, PointId, PointStruct, Prefetch,
    QueryPoints, QueryRequest, ScoredPoint, SearchParams, SearchRequest, Uuid, VectorParams, WithPayload,
    WithVectors, field,
};
use braid_testkit::Rng;
use serde_json::json;

const TOPICS: usize = 40;
const CATEGORIES: [&str; 8] = ["apparel", "shoes", "home", "garden", "toys", "sports", "books", "kitchen"];

fn show(title: &str, hits: &[ScoredPoint]) {
    println!("  {title}:");
    for h in hits {
        let name = h.payload.as_ref().and_then(|p| p["name"].as_str()).unwrap_or("");
        println!("    {:>38}  {:>9.4}  {name}", h.id.to_string(), h.score);
    }
}

fn main() -> Result<(), Error> {
    let mut rng = Rng::new(0x00C0_FFEE);
    let text_centres: Vec<Vec<f32>> =
        (0..TOPICS).map(|_| (0..384).map(|_| rng.uniform()).collect()).collect();
    let image_centres: Vec<Vec<f32>> =
        (0..TOPICS).map(|_| (0..512).map(|_| rng.uniform()).collect()).collect();

    println!("1. get_or_create the collection `products`");
    let config = CollectionConfig::new()
        .vector("text", VectorParams::new(384, Distance::Cosine).hnsw(16, 200))
        .vector("image", VectorParams::new(512, Distance::Cosine).hnsw(32, 256));
    // An embedded database in a directory of its own, fresh for every run.
    let dir = std::env::temp_dir().join(format!("braid-multimodal-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = Database::open(&dir)?;
    let products = db.get_or_create("products", config.clone())?;
    let again = db.get_or_create("products", config.clone())?;
    println!("  idempotent: the second call returns `{}`", again.name());
    let other = CollectionConfig::new().vector("text", VectorParams::new(768, Distance::Dot));
    println!("  another config is refused: {}", db.get_or_create("products", other).unwrap_err());

    println!("2. upsert 2,000 points in batches of 500 (ids: integers, every 10th a UUID)");
    let mut points = Vec::new();
    for i in 0..2000u64 {
        let topic = (i as usize * 7 + i as usize / TOPICS) % TOPICS;
        // 70 % of images show the product's topic; the rest show a neighbouring one.
        let image_topic = if (i / 3) % 10 < 7 { topic } else { (topic + 1 + i as usize % 5) % TOPICS };
        let id = if i % 10 == 9 {
            PointId::Uuid(Uuid::from_u128(0xB4A1_D000_0000_4000_8000_0000_0000_0000 | u128::from(i)))
        } else {
            PointId::Num(i)
        };
        points.push(
            PointStruct::new(id)
                .vector("text", rng.around(&text_centres[topic], 0.5))
                .vector("image", rng.around(&image_centres[image_topic], 0.5))
                .payload(json!({
                    "name": format!("product {i} (topic {topic})"),
                    "category": CATEGORIES[topic % CATEGORIES.len()],
                    "price": ((i * 37) % 500) as f64 + 0.99,
                    "description": format!("a {} item about topic {topic}", CATEGORIES[topic % CATEGORIES.len()]),
                    "topic": topic,
                })),
        );
    }
    let started = std::time::Instant::now();
    for batch in points.chunks(500) {
        products.upsert(batch.to_vec())?;
    }
    products.flush()?;
    println!(
        "  {} points in {:.2} s; vector_count: text {}, image {}",
        products.count(None)?,
        started.elapsed().as_secs_f64(),
        products.vector_count("text")?,
        products.vector_count("image")?
    );
    // Flushed writes are durable: close everything and open the directory again.
    drop((products, again, db));
    let started = std::time::Instant::now();
    let db = Database::open(&dir)?;
    let products = db.collection("products")?;
    println!(
        "  closed and reopened {} in {:.0} ms: {} points, state {:?}",
        dir.display(),
        started.elapsed().as_secs_f64() * 1e3,
        products.count(None)?,
        products.state()
    );

    // The user's words, embedded into both spaces: topic 3.
    let q_text = rng.around(&text_centres[3], 0.3);
    let q_image = rng.around(&image_centres[3], 0.3);

    println!("3. search each space alone");
    show(
        "text, limit 3",
        &products.search(&SearchRequest::new("text", q_text.clone()).limit(3).with_payload(true))?,
    );
    show(
        "image, limit 3, offset 2, score > 0.3",
        &products.search(
            &SearchRequest::new("image", q_image.clone())
                .limit(3)
                .offset(2)
                .score_threshold(0.3)
                .with_payload(true),
        )?,
    );

    let two = |limit: usize| {
        vec![
            Prefetch::nearest("text", q_text.clone(), limit),
            Prefetch::nearest("image", q_image.clone(), limit),
        ]
    };
    println!("4. query: two prefetches of 20 fused server-side");
    show(
        "RRF",
        &products.query(
            QueryPoints::from(QueryRequest::fusion(Fusion::rrf(), two(20)).limit(5)).with_payload(true),
        )?,
    );
    show(
        "DBSF",
        &products.query(
            QueryPoints::from(QueryRequest::fusion(Fusion::dbsf(), two(20)).limit(5)).with_payload(true),
        )?,
    );

    println!("5. filters three ways (keyword and float indexes on category and price)");
    products.create_payload_index("category", IndexKind::Keyword)?;
    products.create_payload_index("price", IndexKind::Float)?;
    // Topic 3 products are `garden`; the price bound removes some of the best matches.
    let garden_under_200 = Filter::must([field("category").eq("garden"), field("price").lte(200.0)]);
    let in_each: Vec<Prefetch> = two(20).into_iter().map(|p| p.filter(garden_under_200.clone())).collect();
    show(
        "inside each prefetch",
        &products.query(
            QueryPoints::from(QueryRequest::fusion(Fusion::rrf(), in_each).limit(5)).with_payload(true),
        )?,
    );
    let top_level = QueryRequest::fusion(Fusion::rrf(), two(20)).filter(garden_under_200.clone()).limit(5);
    show(
        "top-level filter (Qdrant: into every leaf before its limit)",
        &products.query(QueryPoints::from(top_level.clone()).with_payload(true))?,
    );
    let gate = QueryRequest::fusion(Fusion::rrf(), two(20)).post_filter(garden_under_200.clone()).limit(5);
    show(
        "post-fusion gate (fuse unfiltered pools, then drop)",
        &products.query(QueryPoints::from(gate).with_payload(true))?,
    );
    println!("  plan of the top-level query:\n{}", indent(&products.explain(&top_level)?.to_string()));

    println!("6. client-side fusion of two searches");
    let text_hits = products.search(&SearchRequest::new("text", q_text.clone()).limit(20))?;
    let image_hits = products.search(&SearchRequest::new("image", q_image.clone()).limit(20))?;
    let as_list = |hits: &[ScoredPoint]| hits.iter().map(|h| (h.id, h.score)).collect::<Vec<_>>();
    let lists =
        [ScoredList::similarities(as_list(&text_hits)), ScoredList::similarities(as_list(&image_hits))];
    for w in [1.0, 0.7, 0.5, 0.3, 0.0] {
        let fused = classic::reciprocal_rank_fusion(&lists, classic::DEFAULT_K, Some(&[1.0, w]))?;
        let top: Vec<String> = fused.iter().take(4).map(|f| f.id.to_string()).collect();
        println!("  classic RRF, image weight {w:.1}: {top:?}");
    }
    let dbsf: Vec<String> =
        classic::distribution_based_score_fusion(&lists)?.iter().take(4).map(|f| f.id.to_string()).collect();
    println!("  classic DBSF: {dbsf:?}");
    let client = qdrant::rrf(&[as_list(&text_hits), as_list(&image_hits)], 2, None)?;
    let server = products.query(QueryRequest::fusion(Fusion::rrf(), two(20)).limit(20))?;
    let same = client.iter().zip(&server).all(|(c, s)| c.id == s.id && (c.score - s.score).abs() < 1e-6);
    println!("  Qdrant-compatible RRF client-side == server-side: {same}");
    let weighted = products
        .query(QueryRequest::fusion(Fusion::Rrf { k: 2, weights: Some(vec![1.0, 0.3]) }, two(20)).limit(4))?;
    println!(
        "  server-side weighted RRF (1.0, 0.3) in one call: {:?}",
        weighted.iter().map(|h| h.id.to_string()).collect::<Vec<_>>()
    );

    println!("7. batches");
    let searches = products.search_batch(&[
        SearchRequest::new("text", q_text.clone()).limit(2),
        SearchRequest::new("image", q_image.clone()).limit(2),
        SearchRequest::new("text", rng.around(&text_centres[9], 0.3)).limit(2),
    ])?;
    println!(
        "  search_batch: {} results of {:?}",
        searches.len(),
        searches.iter().map(|r| r.as_ref().map_or(0, Vec::len)).collect::<Vec<_>>()
    );
    let queries = products.query_batch(vec![
        QueryRequest::fusion(Fusion::rrf(), two(10)).limit(3).into(),
        QueryRequest::fusion(Fusion::dbsf(), two(10)).limit(3).into(),
    ])?;
    println!("  query_batch: {} results", queries.len());

    println!("8. selectors");
    let first = products.search(
        &SearchRequest::new("text", q_text.clone())
            .limit(1)
            .with_payload(WithPayload::Include(vec!["name".into(), "price".into()]))
            .with_vectors(WithVectors::Names(vec!["image".into()])),
    )?;
    let p = &first[0];
    println!(
        "  payload {} ; vectors {:?}",
        p.payload.as_ref().map_or(String::new(), |v| v.to_string()),
        p.vectors.as_ref().map(|v| v.iter().map(|(k, v)| (k.clone(), v.len())).collect::<Vec<_>>())
    );
    let excluded =
        products.get(&[PointId::Num(0)], WithPayload::Exclude(vec!["description".into()]), false)?;
    println!(
        "  exclude description: {}",
        excluded[0].payload.as_ref().map_or(String::new(), |v| v.to_string())
    );

    println!("9. update_vectors, delete_vectors, payload operations");
    let target = PointId::Num(0);
    let before = products.get(&[target], true, true)?;
    products.update_vectors(vec![(target, [("image".to_string(), q_image.clone())].into())])?;
    let after = products.get(&[target], true, true)?;
    let unchanged = before[0].vectors.as_ref().map(|v| &v["text"])
        == after[0].vectors.as_ref().map(|v| &v["text"])
        && before[0].payload == after[0].payload;
    println!("  image replaced; text vector and payload unchanged: {unchanged}");
    let top_image = products.search(&SearchRequest::new("image", q_image.clone()).limit(1))?;
    println!("  the updated point now tops the image search: {}", top_image[0].id == target);
    products.delete_vectors(vec![target], &["image"])?;
    let skipped = products
        .search(&SearchRequest::new("image", q_image.clone()).limit(50))?
        .iter()
        .all(|h| h.id != target);
    println!(
        "  after delete_vectors(image) the image search skips it: {skipped}; vector_count image = {}",
        products.vector_count("image")?
    );
    products.set_payload(vec![target], json!({"on_sale": true}))?;
    products.set_payload(Filter::must([field("topic").eq(3)]), json!({"featured": true}))?;
    products.delete_payload(vec![target], &["description"])?;
    println!(
        "  set/delete payload: {}",
        products.get(&[target], true, false)?[0].payload.as_ref().map_or(String::new(), |v| v.to_string())
    );
    products.overwrite_payload(vec![PointId::Num(1)], json!({"name": "renamed"}))?;
    products.clear_payload(vec![PointId::Num(2)])?;
    println!(
        "  featured (by filter): {}",
        products.count(Some(&Filter::must([field("featured").eq(true)])))?
    );

    println!("10. nested prefetch: two prefetches of 20 -> RRF keeping 15 -> re-scored by text");
    let nested =
        QueryRequest::rescore("text", q_text.clone(), vec![Prefetch::fusion(Fusion::rrf(), two(20), 15)])
            .limit(5);
    show(
        "cosine scores of the 15 candidates",
        &products.query(QueryPoints::from(nested).with_payload(true))?,
    );

    println!("11. per-prefetch params (text ef 64, image ef 256 exact) fused by DBSF");
    let tuned = QueryRequest::fusion(
        Fusion::dbsf(),
        vec![
            Prefetch::nearest("text", q_text.clone(), 20).params(SearchParams::ef(64)),
            Prefetch::nearest("image", q_image.clone(), 20)
                .params(SearchParams { exact: true, ..SearchParams::ef(256) }),
        ],
    )
    .limit(3);
    show("DBSF", &products.query(QueryPoints::from(tuned).with_payload(true))?);

    println!("12. info, scroll, count, delete, list");
    let info = products.info();
    println!(
        "  status {}, points {}, vectors {:?}, payload indexes {:?}",
        info.status, info.points_count, info.vectors_count, info.payload_schema
    );
    let shoes = Filter::must([field("category").eq("shoes")]);
    let (page, next) = products.scroll(Some(&shoes), 3, None, false, false)?;
    println!(
        "  scroll shoes: {:?}, next_page_offset {:?}",
        page.iter().map(|r| r.id.to_string()).collect::<Vec<_>>(),
        next.map(|n| n.to_string())
    );
    println!("  count shoes: {}", products.count(Some(&shoes))?);
    let removed = products.delete(vec![PointId::Num(3), PointId::Num(4)])?;
    let removed_filter = products.delete(Filter::must([field("price").lt(5.0)]))?;
    println!(
        "  deleted {removed} by ids and {removed_filter} by filter; {} points left",
        products.count(None)?
    );
    println!("  collections {:?}; exists: {}", db.list(), db.collection_exists("products"));
    db.delete_collection("products")?;
    println!("  after delete: exists {}", db.collection_exists("products"));
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}
