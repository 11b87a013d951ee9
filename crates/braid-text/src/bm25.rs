//! The BM25 model: text to sparse vectors, as Qdrant's built-in `qdrant/bm25` makes
//! them, so that vectors Braid makes and vectors a Qdrant client made agree.

use std::collections::BTreeMap;

use braid_sparse::SparseVector;
use serde_json::{Map, Value};

use crate::TextError;
use crate::tokenize::{Stopwords, TextOptions, Tokenizer, TokenizerKind, stemmer, stopword_list};

/// The longest text one document may hold.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// The model names Braid serves (compared case-insensitively).
pub const MODELS: &[&str] = &["qdrant/bm25", "bm25"];

/// Text and the name of the model that turns it into a vector (Qdrant's `Document`),
/// with the model's options.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Document {
    /// The text.
    pub text: String,
    /// The model: `bm25` or `qdrant/bm25`.
    pub model: String,
    /// Options of the model (BM25: `k`, `b`, `avg_len`, `tokenizer`, `language`,
    /// `lowercase`, `stopwords`, `stemmer`, `min_token_len`, `max_token_len`).
    pub options: Map<String, Value>,
}

impl Document {
    /// `text` for `model`, default options.
    pub fn new(text: impl Into<String>, model: impl Into<String>) -> Document {
        Document { text: text.into(), model: model.into(), options: Map::new() }
    }

    /// With option `key` set to `value`.
    pub fn option(mut self, key: &str, value: Value) -> Document {
        self.options.insert(key.to_string(), value);
        self
    }

    /// Runs `f` with the document's model: the shared default one when no option is
    /// given (building a tokeniser — stopword set, stemmer — costs more than
    /// embedding a short text), else one made for the options.
    fn with_model<T>(&self, f: impl FnOnce(&Bm25) -> T) -> Result<T, TextError> {
        if self.text.len() > MAX_DOCUMENT_BYTES {
            return Err(TextError::DocumentTooLarge { bytes: self.text.len(), max: MAX_DOCUMENT_BYTES });
        }
        if !MODELS.iter().any(|m| m.eq_ignore_ascii_case(&self.model)) {
            return Err(TextError::UnknownModel { model: self.model.clone(), available: MODELS.to_vec() });
        }
        if self.options.is_empty() {
            static DEFAULT: std::sync::OnceLock<Bm25> = std::sync::OnceLock::new();
            return Ok(f(DEFAULT.get_or_init(Bm25::new)));
        }
        Ok(f(&Bm25::from_options(&self.options)?))
    }

    /// The vector this document is stored as.
    pub fn embed(&self) -> Result<SparseVector, TextError> {
        self.with_model(|m| m.document(&self.text))
    }

    /// The vector this document searches with.
    pub fn embed_query(&self) -> Result<SparseVector, TextError> {
        self.with_model(|m| m.query(&self.text))
    }
}

/// BM25's term weighting with Qdrant's defaults: `k` 1.2, `b` 0.75, average length
/// 256 tokens; the word tokeniser, lowercase, English stopwords and Snowball stemmer.
#[derive(Debug)]
pub struct Bm25 {
    k: f64,
    b: f64,
    avg_len: f64,
    tokenizer: Tokenizer,
}

fn number(key: &str, value: &Value) -> Result<f64, TextError> {
    value.as_f64().filter(|x| x.is_finite()).ok_or_else(|| TextError::BadOption {
        what: key.to_string(),
        why: format!("must be a number, got {value}"),
    })
}

fn flag(key: &str, value: &Value) -> Result<bool, TextError> {
    value.as_bool().ok_or_else(|| TextError::BadOption {
        what: key.to_string(),
        why: format!("must be true or false, got {value}"),
    })
}

fn length(key: &str, value: &Value) -> Result<usize, TextError> {
    value.as_u64().map(|n| n as usize).ok_or_else(|| TextError::BadOption {
        what: key.to_string(),
        why: format!("must be a non-negative integer, got {value}"),
    })
}

impl Bm25 {
    /// The model with Qdrant's defaults.
    pub fn new() -> Bm25 {
        // Invariant: the default options name languages Braid has.
        Bm25::from_options(&Map::new()).unwrap_or_else(|_| unreachable!("the defaults are valid"))
    }

    /// The model with a `Document`'s options; unknown options and bad values are
    /// errors naming the option.
    pub fn from_options(options: &Map<String, Value>) -> Result<Bm25, TextError> {
        let (mut k, mut b, mut avg_len) = (1.2, 0.75, 256.0);
        let mut text = TextOptions::default();
        let mut language = "english".to_string();
        let (mut stopwords, mut stem) = (None, None);
        for (key, value) in options {
            match key.as_str() {
                "k" => k = number(key, value)?,
                "b" => b = number(key, value)?,
                "avg_len" => avg_len = number(key, value)?,
                "tokenizer" => {
                    text.tokenizer = serde_json::from_value::<TokenizerKind>(value.clone()).map_err(|_| {
                        TextError::BadOption {
                            what: key.clone(),
                            why: format!("must be word, whitespace, prefix or multilingual, got {value}"),
                        }
                    })?
                }
                "language" => {
                    language = value.as_str().map(str::to_string).ok_or_else(|| TextError::BadOption {
                        what: key.clone(),
                        why: format!("must be a language name or \"none\", got {value}"),
                    })?
                }
                "lowercase" => text.lowercase = flag(key, value)?,
                "ascii_folding" => {
                    if flag(key, value)? {
                        return Err(TextError::BadOption {
                            what: key.clone(),
                            why: "Braid does not fold to ASCII yet; leave it false".to_string(),
                        });
                    }
                }
                "min_token_len" => text.min_token_len = Some(length(key, value)?),
                "max_token_len" => text.max_token_len = Some(length(key, value)?),
                "stopwords" => stopwords = Some(parse_stopwords(value)?),
                "stemmer" => stem = Some(parse_stemmer(value)?),
                other => {
                    return Err(TextError::BadOption {
                        what: other.to_string(),
                        why: "not a BM25 option (k, b, avg_len, tokenizer, language, lowercase, ascii_folding, \
                              stopwords, stemmer, min_token_len, max_token_len)"
                            .to_string(),
                    });
                }
            }
        }
        if k < 0.0 || !(0.0..=1.0).contains(&b) || avg_len <= 0.0 {
            return Err(TextError::BadOption {
                what: "k, b, avg_len".to_string(),
                why: format!("need k ≥ 0, 0 ≤ b ≤ 1 and avg_len > 0; got k {k}, b {b}, avg_len {avg_len}"),
            });
        }
        // Qdrant: the language names the default stemmer and stopwords; "none" has neither.
        let by_language = !language.eq_ignore_ascii_case("none");
        text.stopwords = match stopwords {
            Some(s) => Some(s),
            None if by_language && stopword_list(&language).is_ok() => {
                Some(Stopwords { languages: vec![language.clone()], custom: vec![] })
            }
            None => None,
        };
        text.stemmer = match stem {
            Some(s) => Some(s),
            None if by_language && stemmer(&language).is_ok() => Some(language.clone()),
            None => None,
        };
        Ok(Bm25 { k, b, avg_len, tokenizer: Tokenizer::new(text)? })
    }

    /// MurmurHash3 (32-bit, seed 0) of the token's UTF-8 bytes, read as a signed
    /// integer, absolute value: Qdrant's and FastEmbed's BM25 token ids.
    pub fn token_id(token: &str) -> u32 {
        let hash = murmur3::murmur3_32(&mut std::io::Cursor::new(token.as_bytes()), 0).unwrap_or(0);
        (hash as i32).unsigned_abs()
    }

    /// A document's vector: for each distinct token, `tf·(k+1) / (tf + k·(1 − b + b·len/avg_len))`,
    /// `tf` its count and `len` the document's token count. Two tokens with one id
    /// (a hash collision, p ≈ n²/2³³ for n distinct tokens) keep the larger weight.
    pub fn document(&self, text: &str) -> SparseVector {
        let tokens = self.tokenizer.query_tokens(text);
        let len = tokens.len() as f64;
        let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
        for t in &tokens {
            *counts.entry(t.as_str()).or_default() += 1;
        }
        let mut weights: BTreeMap<u32, f32> = BTreeMap::new();
        let norm = self.k * (1.0 - self.b + self.b * len / self.avg_len);
        for (token, count) in counts {
            let tf = f64::from(count);
            let w = (tf * (self.k + 1.0) / (tf + norm)) as f32;
            let slot = weights.entry(Bm25::token_id(token)).or_insert(w);
            *slot = slot.max(w);
        }
        let (indices, values) = weights.into_iter().unzip();
        // Invariant: ids are unique (map keys) and weights finite (k, b, avg_len checked).
        SparseVector::new(indices, values).unwrap_or_default()
    }

    /// A query's vector: weight 1 for each distinct token (IDF comes from the
    /// collection at search time, with `modifier: idf`).
    pub fn query(&self, text: &str) -> SparseVector {
        let mut ids: Vec<u32> = self.tokenizer.query_tokens(text).iter().map(|t| Bm25::token_id(t)).collect();
        ids.sort_unstable();
        ids.dedup();
        let values = vec![1.0; ids.len()];
        SparseVector::new(ids, values).unwrap_or_default()
    }

    /// The tokens it weighs in `text`.
    pub fn tokens(&self, text: &str) -> Vec<String> {
        self.tokenizer.query_tokens(text)
    }
}

impl Default for Bm25 {
    fn default() -> Self {
        Bm25::new()
    }
}

/// The `stopwords` and `stemmer` of a JSON object, in Qdrant's shapes (a language
/// name or `{languages, custom}`; `{"type": "snowball", "language": …}`), as a text
/// index's params and a BM25 document's options both spell them.
pub fn text_processing(
    options: &Map<String, Value>,
) -> Result<(Option<Stopwords>, Option<String>), TextError> {
    let stopwords = options.get("stopwords").filter(|v| !v.is_null()).map(parse_stopwords).transpose()?;
    let stemmer = options.get("stemmer").filter(|v| !v.is_null()).map(parse_stemmer).transpose()?;
    Ok((stopwords, stemmer))
}

fn parse_stopwords(value: &Value) -> Result<Stopwords, TextError> {
    match value {
        Value::String(lang) => Ok(Stopwords { languages: vec![lang.clone()], custom: vec![] }),
        Value::Object(_) => serde_json::from_value(value.clone()).map_err(|e| TextError::BadOption {
            what: "stopwords".to_string(),
            why: format!("expected a language or {{languages, custom}}: {e}"),
        }),
        _ => Err(TextError::BadOption {
            what: "stopwords".to_string(),
            why: format!("expected a language or {{languages, custom}}, got {value}"),
        }),
    }
}

fn parse_stemmer(value: &Value) -> Result<String, TextError> {
    let bad = || TextError::BadOption {
        what: "stemmer".to_string(),
        why: format!("expected {{\"type\": \"snowball\", \"language\": …}}, got {value}"),
    };
    let obj = value.as_object().ok_or_else(bad)?;
    if obj.get("type").and_then(Value::as_str) != Some("snowball")
        || obj.keys().any(|k| k != "type" && k != "language")
    {
        return Err(bad());
    }
    obj.get("language").and_then(Value::as_str).map(str::to_string).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn token_ids_are_murmur3_of_the_token_as_qdrant_computes_them() {
        // MurmurHash3_x86_32 reference values, seed 0: "" → 0, "hello" → 0x248bfa47.
        assert_eq!(Bm25::token_id(""), 0);
        assert_eq!(Bm25::token_id("hello"), 0x248b_fa47);
        // A hash with the top bit set is negated as a signed integer.
        let h = murmur3::murmur3_32(&mut std::io::Cursor::new(b"a"), 0).unwrap();
        assert_eq!(Bm25::token_id("a"), (h as i32).unsigned_abs());
    }

    #[test]
    fn document_weights_follow_the_formula() {
        let bm25 = Bm25::new();
        // "cats" stems to "cat"; "the" is a stopword: tokens [cat, cat, sat] → len 3.
        let v = bm25.document("The cats cat sat");
        assert_eq!(bm25.tokens("The cats cat sat"), ["cat", "cat", "sat"]);
        let norm = 1.2 * (1.0 - 0.75 + 0.75 * 3.0 / 256.0);
        let w = |tf: f64| (tf * 2.2 / (tf + norm)) as f32;
        let cat = Bm25::token_id("cat");
        let sat = Bm25::token_id("sat");
        let got: BTreeMap<u32, f32> = v.iter().collect();
        assert_eq!(got, BTreeMap::from([(cat, w(2.0)), (sat, w(1.0))]));
        let q = bm25.query("cat CATS sat");
        assert_eq!(q.len(), 2);
        assert!(q.values().iter().all(|&x| x == 1.0));
    }

    #[test]
    fn documents_check_model_options_and_size() {
        assert!(matches!(Document::new("x", "openai/gpt").embed(), Err(TextError::UnknownModel { .. })));
        assert!(Document::new("x", "Qdrant/BM25").embed().is_ok());
        assert!(matches!(
            Document::new("x", "bm25").option("kk", json!(1)).embed(),
            Err(TextError::BadOption { .. })
        ));
        assert!(matches!(
            Document::new("x", "bm25").option("b", json!(2.0)).embed(),
            Err(TextError::BadOption { .. })
        ));
        let big = "a ".repeat(MAX_DOCUMENT_BYTES);
        assert!(matches!(Document::new(big, "bm25").embed(), Err(TextError::DocumentTooLarge { .. })));
        let plain = Document::new("the running", "bm25").option("language", json!("none")).embed().unwrap();
        assert_eq!(plain.len(), 2, "no stopwords, no stemming");
        let custom = Document::new("running dogs", "bm25")
            .option("stemmer", json!({"type": "snowball", "language": "english"}))
            .option("stopwords", json!({"languages": [], "custom": ["dogs"]}))
            .embed()
            .unwrap();
        assert_eq!(custom.indices(), &[Bm25::token_id("run")]);
    }
}
