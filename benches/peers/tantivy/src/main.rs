//! BM25 top-10 with tantivy over `out.jsonl` passages for the queries `cargo xtask bench
//! sparse` wrote (one per line), tokenised as Braid's BM25 model does as far as the two
//! allow: alphanumeric runs, lowercased, NLTK English stopwords removed, Snowball
//! English stems. One thread builds, one searches. Writes a JSON summary.
//!
//! Usage: tantivy-bm25-peer --data DIR --queries FILE --out FILE

use std::time::Instant;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions, Value};
use tantivy::tokenizer::{Language, LowerCaser, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer};
use tantivy::{Index, TantivyDocument, Term, doc};

fn arg(name: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| panic!("{name} missing"))
}

fn main() -> tantivy::Result<()> {
    let data = std::path::PathBuf::from(arg("--data"));
    let texts: Vec<String> = std::fs::read_to_string(data.join("out.jsonl"))?
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["text"].as_str().unwrap_or("").to_string())
        .collect();
    let queries: Vec<String> = std::fs::read_to_string(arg("--queries"))?.lines().map(str::to_string).collect();

    let mut builder = Schema::builder();
    let indexing = TextFieldIndexing::default().set_tokenizer("braid").set_index_option(IndexRecordOption::WithFreqs);
    let text = builder.add_text_field("text", TextOptions::default().set_indexing_options(indexing));
    let id = builder.add_u64_field("id", STORED);
    let index = Index::create_in_ram(builder.build());
    let stop: Vec<String> = stop_words::get("en").iter().map(|w| w.to_string()).collect();
    let analyzer = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(LowerCaser)
        .filter(StopWordFilter::remove(stop))
        .filter(Stemmer::new(Language::English))
        .build();
    index.tokenizers().register("braid", analyzer.clone());

    let started = Instant::now();
    let mut writer = index.writer_with_num_threads(1, 200_000_000)?;
    for (i, t) in texts.iter().enumerate() {
        writer.add_document(doc!(text => t.as_str(), id => i as u64))?;
    }
    writer.commit()?;
    let build_s = started.elapsed().as_secs_f64();
    let reader = index.reader()?;
    let searcher = reader.searcher();

    let mut analyzer = analyzer;
    let parsed: Vec<Box<dyn Query>> = queries
        .iter()
        .map(|q| {
            let mut terms = Vec::new();
            let mut stream = analyzer.token_stream(q);
            while let Some(t) = stream.next() {
                terms.push(t.text.clone());
            }
            terms.sort();
            terms.dedup();
            let clauses: Vec<(Occur, Box<dyn Query>)> = terms
                .into_iter()
                .map(|t| {
                    let q: Box<dyn Query> =
                        Box::new(TermQuery::new(Term::from_field_text(text, &t), IndexRecordOption::WithFreqs));
                    (Occur::Should, q)
                })
                .collect();
            Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>
        })
        .collect();
    // Warm up, then time every query alone, several rounds.
    let top = |q: &dyn Query| searcher.search(q, &TopDocs::with_limit(10).order_by_score()).expect("search");
    for q in &parsed {
        std::hint::black_box(top(q.as_ref()));
    }
    let rounds = 5;
    let mut lat = Vec::new();
    let all = Instant::now();
    for _ in 0..rounds {
        for q in &parsed {
            let t = Instant::now();
            std::hint::black_box(top(q.as_ref()));
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let total = all.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let ids: Vec<Vec<u64>> = parsed
        .iter()
        .map(|q| {
            top(q.as_ref())
                .into_iter()
                .map(|(_, addr)| {
                    let d: TantivyDocument = searcher.doc(addr).expect("doc");
                    d.get_first(id).and_then(|v| v.as_u64()).unwrap_or(u64::MAX)
                })
                .collect()
        })
        .collect();
    let out = serde_json::json!({
        "system": "tantivy 0.27",
        "passages": texts.len(),
        "queries": queries.len(),
        "build_s": build_s,
        "qps": (rounds * parsed.len()) as f64 / total,
        "p50_us": pct(0.5),
        "p99_us": pct(0.99),
        "top10": ids,
    });
    std::fs::write(arg("--out"), serde_json::to_string_pretty(&out).expect("json"))?;
    let qps = (rounds * parsed.len()) as f64 / total;
    println!("tantivy: {} passages, build {build_s:.1} s, {qps:.0} QPS, p50 {:.0} µs, p99 {:.0} µs", texts.len(), pct(0.5), pct(0.99));
    Ok(())
}
