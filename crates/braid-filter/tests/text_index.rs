//! The full-text index against its definition: a point matches `text` when its
//! strings' tokens (all of them together) hold every query token, `text_any` when they
//! hold one, `phrase` when one string holds the query tokens consecutively — tokens
//! made by the index's tokeniser, for random options, payload updates and removals.

use std::collections::BTreeSet;

use braid_core::{PointId, PointOffset};
use braid_filter::{Filter, PayloadStore, PointLookup, field};
use braid_text::{Stopwords, TextOptions, Tokenizer, TokenizerKind};
use proptest::prelude::*;
use roaring::RoaringBitmap;
use serde_json::{Value, json};

const WORDS: &[&str] = &[
    "River", "rivers", "bank", "banking", "the", "of", "stone", "Stones", "run", "running", "ran", "a", "x",
];

fn text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(WORDS.to_vec()), 0..7),
        prop::sample::select(vec![" ", ", ", "-"]),
    )
        .prop_map(|(w, sep)| w.join(sep))
}

fn payload() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(|t| json!({"t": t})),
        prop::collection::vec(text(), 0..3).prop_map(|ts| json!({"t": ts})),
        Just(json!({"t": 5})),
        Just(json!({"u": "river"})),
    ]
}

fn options() -> impl Strategy<Value = TextOptions> {
    (
        prop::sample::select(vec![
            TokenizerKind::Word,
            TokenizerKind::Whitespace,
            TokenizerKind::Prefix,
            TokenizerKind::Multilingual,
        ]),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(1usize..4),
    )
        .prop_map(|(tokenizer, lowercase, stem, stop, min_token_len)| TextOptions {
            tokenizer,
            lowercase,
            min_token_len,
            max_token_len: None,
            stopwords: stop
                .then(|| Stopwords { languages: vec!["english".into()], custom: vec!["x".into()] }),
            stemmer: stem.then(|| "english".to_string()),
            phrase_matching: true,
        })
}

struct Live(RoaringBitmap);

impl PointLookup for Live {
    fn offset_of(&self, _: &PointId) -> Option<PointOffset> {
        None
    }
    fn vectors(&self, _: &str) -> Option<&RoaringBitmap> {
        None
    }
    fn live(&self) -> &RoaringBitmap {
        &self.0
    }
}

fn strings(p: &Value) -> Vec<String> {
    match p.get("t") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => vec![],
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    All,
    Any,
    Phrase,
}

/// The definition, from the tokeniser alone.
fn matches(tok: &Tokenizer, p: &Value, kind: Kind, query: &str) -> bool {
    let ss = strings(p);
    let tokens: BTreeSet<String> = ss.iter().flat_map(|s| tok.document_tokens(s)).collect();
    let q = tok.query_tokens(query);
    match kind {
        Kind::All => !q.is_empty() && q.iter().all(|t| tokens.contains(t)),
        Kind::Any => q.iter().any(|t| tokens.contains(t)),
        Kind::Phrase => {
            !q.is_empty()
                && q.iter().all(|t| tokens.contains(t))
                && (q.len() == 1 || ss.iter().any(|s| tok.query_tokens(s).windows(q.len()).any(|w| w == q)))
        }
    }
}

proptest! {
    #[test]
    fn text_index_answers_equal_the_definition(
        options in options(),
        payloads in prop::collection::vec(payload(), 1..30),
        updates in prop::collection::vec((0usize..30, prop::option::of(payload())), 0..8),
        queries in prop::collection::vec((prop::sample::select(vec![Kind::All, Kind::Any, Kind::Phrase]), text()), 1..6),
        early in any::<bool>(),
    ) {
        let n = payloads.len();
        let mut store = PayloadStore::new();
        if early {
            store.create_text_index("t", options.clone()).unwrap();
        }
        for (i, p) in payloads.iter().enumerate() {
            store.set(PointOffset(i as u32), p.clone());
        }
        if !early {
            // A key whose values are all numbers is refused; otherwise the index builds.
            if let Err(e) = store.create_text_index("t", options.clone()) {
                prop_assert!(matches!(e, braid_filter::IndexError::NotText { .. }), "{e}");
                return Ok(());
            }
        }
        let mut current: Vec<Option<Value>> = payloads.into_iter().map(Some).collect();
        for (i, p) in updates {
            let o = i % n;
            match p {
                Some(p) => { store.set(PointOffset(o as u32), p.clone()); current[o] = Some(p); }
                None => { store.remove(PointOffset(o as u32)); current[o] = None; }
            }
        }
        let tok = Tokenizer::new(options.clone()).unwrap();
        let live = Live((0..n as u32).collect());
        for (kind, query) in queries {
            let condition = match kind {
                Kind::All => field("t").text(query.clone()),
                Kind::Any => field("t").text_any(query.clone()),
                Kind::Phrase => field("t").phrase(query.clone()),
            };
            let filter = Filter::must([condition]);
            let planned = store.plan(&filter, &live);
            let want: RoaringBitmap = (0..n)
                .filter(|&o| current[o].as_ref().is_some_and(|p| matches(&tok, p, kind, &query)))
                .map(|o| o as u32)
                .collect();
            prop_assert_eq!(planned.matching(), want, "{:?} {:?} under {:?}", kind, query, options);
        }
    }
}

#[test]
fn same_options_again_is_a_no_op_and_others_conflict() {
    let mut store = PayloadStore::new();
    store.set(PointOffset(0), json!({"t": "Running rivers"}));
    let stem = TextOptions { stemmer: Some("english".into()), ..TextOptions::default() };
    store.create_text_index("t", stem.clone()).unwrap();
    store.create_text_index("t", stem).unwrap();
    assert!(matches!(
        store.create_text_index("t", TextOptions::default()),
        Err(braid_filter::IndexError::OptionsConflict { .. })
    ));
    let bad = TextOptions { stemmer: Some("klingon".into()), ..TextOptions::default() };
    assert!(matches!(store.create_text_index("u", bad), Err(braid_filter::IndexError::Text(_))));
    // Stemmed: "run" finds "Running".
    let filter = Filter::must([field("t").text("run river")]);
    let live = Live([0].into_iter().collect());
    assert_eq!(store.plan(&filter, &live).matching().len(), 1);
}
