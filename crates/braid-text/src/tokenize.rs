//! Qdrant's text tokenisers and the token processing that follows them.

use std::borrow::Cow;
use std::collections::HashSet;

use unicode_segmentation::UnicodeSegmentation;

use crate::TextError;

/// How text is cut into tokens (Qdrant's `tokenizer`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    /// Runs of alphanumeric characters (Qdrant's default).
    #[default]
    Word,
    /// Runs of non-whitespace characters.
    Whitespace,
    /// Word tokens; a document is indexed under every prefix of each token (from
    /// `min_token_len` characters on), so that a query token matches the words it
    /// begins.
    Prefix,
    /// Unicode word boundaries (UAX #29): words of alphabetic scripts, and each
    /// ideograph of Chinese or Japanese on its own.
    Multilingual,
}

/// Stopwords: the lists of these languages plus custom words (Qdrant's `stopwords`,
/// either a language name or `{languages, custom}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Stopwords {
    /// Language names, lowercase English (`english`, `french`, …).
    #[serde(default)]
    pub languages: Vec<String>,
    /// Extra words.
    #[serde(default)]
    pub custom: Vec<String>,
}

/// How tokens are made from text: Qdrant's full-text index parameters and BM25's text
/// options.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TextOptions {
    /// The tokeniser.
    #[serde(default)]
    pub tokenizer: TokenizerKind,
    /// Lowercase every token (default true).
    #[serde(default = "yes")]
    pub lowercase: bool,
    /// Tokens shorter than this (in characters, after stemming) are dropped.
    #[serde(default)]
    pub min_token_len: Option<usize>,
    /// Tokens longer than this are dropped from documents (queries keep them).
    #[serde(default)]
    pub max_token_len: Option<usize>,
    /// Words dropped before stemming.
    #[serde(default)]
    pub stopwords: Option<Stopwords>,
    /// The Snowball stemmer's language, if tokens are stemmed.
    #[serde(default)]
    pub stemmer: Option<String>,
    /// Keep token positions so that `phrase` conditions can be answered from an index.
    #[serde(default)]
    pub phrase_matching: bool,
}

fn yes() -> bool {
    true
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            tokenizer: TokenizerKind::Word,
            lowercase: true,
            min_token_len: None,
            max_token_len: None,
            stopwords: None,
            stemmer: None,
            phrase_matching: false,
        }
    }
}

/// Qdrant's language names, with the ISO code of their NLTK stopword list and the
/// Snowball stemmer, where one exists.
const LANGUAGES: &[(&str, Option<&str>, Option<rust_stemmers::Algorithm>)] = {
    use rust_stemmers::Algorithm as A;
    &[
        ("arabic", Some("ar"), Some(A::Arabic)),
        ("azerbaijani", Some("az"), None),
        ("basque", Some("eu"), None),
        ("bengali", Some("bn"), None),
        ("catalan", Some("ca"), None),
        ("chinese", Some("zh"), None),
        ("danish", Some("da"), Some(A::Danish)),
        ("dutch", Some("nl"), Some(A::Dutch)),
        ("english", Some("en"), Some(A::English)),
        ("finnish", Some("fi"), Some(A::Finnish)),
        ("french", Some("fr"), Some(A::French)),
        ("german", Some("de"), Some(A::German)),
        ("greek", Some("el"), Some(A::Greek)),
        ("hebrew", Some("he"), None),
        ("hinglish", Some("hinglish"), None),
        ("hungarian", Some("hu"), Some(A::Hungarian)),
        ("indonesian", Some("id"), None),
        ("italian", Some("it"), Some(A::Italian)),
        ("kazakh", Some("kk"), None),
        ("nepali", Some("ne"), None),
        ("norwegian", Some("no"), Some(A::Norwegian)),
        ("portuguese", Some("pt"), Some(A::Portuguese)),
        ("romanian", Some("ro"), Some(A::Romanian)),
        ("russian", Some("ru"), Some(A::Russian)),
        ("slovene", Some("sl"), None),
        ("spanish", Some("es"), Some(A::Spanish)),
        ("swedish", Some("sv"), Some(A::Swedish)),
        ("tajik", Some("tg"), None),
        ("tamil", Some("ta"), Some(A::Tamil)),
        ("turkish", Some("tr"), Some(A::Turkish)),
    ]
};

fn language(
    name: &str,
) -> Option<&'static (&'static str, Option<&'static str>, Option<rust_stemmers::Algorithm>)> {
    LANGUAGES.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(name))
}

/// The languages with a stopword list.
pub fn stopword_languages() -> Vec<&'static str> {
    LANGUAGES
        .iter()
        .filter(|(_, s, _)| s.and_then(stop_words::lookup).is_some())
        .map(|(n, _, _)| *n)
        .collect()
}

/// The languages with a Snowball stemmer.
pub fn stemmer_languages() -> Vec<&'static str> {
    LANGUAGES.iter().filter(|(_, _, a)| a.is_some()).map(|(n, _, _)| *n).collect()
}

/// A Snowball stemmer for `name`, if Braid has one.
pub(crate) fn stemmer(name: &str) -> Result<rust_stemmers::Stemmer, TextError> {
    language(name).and_then(|(_, _, a)| *a).map(rust_stemmers::Stemmer::create).ok_or_else(|| {
        TextError::UnknownStemmer { language: name.to_string(), available: stemmer_languages() }
    })
}

/// The stopword list of `name`.
pub(crate) fn stopword_list(name: &str) -> Result<&'static [&'static str], TextError> {
    language(name).and_then(|(_, code, _)| code.and_then(stop_words::lookup)).ok_or_else(|| {
        TextError::UnknownStopwords { language: name.to_string(), available: stopword_languages() }
    })
}

/// A configured tokeniser: text in, processed tokens out.
pub struct Tokenizer {
    options: TextOptions,
    stopwords: HashSet<String>,
    stemmer: Option<rust_stemmers::Stemmer>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer").field("options", &self.options).finish_non_exhaustive()
    }
}

impl Default for Tokenizer {
    /// The word tokeniser, lowercase, nothing dropped or stemmed.
    fn default() -> Tokenizer {
        Tokenizer { options: TextOptions::default(), stopwords: HashSet::new(), stemmer: None }
    }
}

/// The longest token length `min_token_len`/`max_token_len` may name.
pub const MAX_TOKEN_LEN_OPTION: usize = 1_000;

impl Tokenizer {
    /// A tokeniser for `options`; unknown languages and impossible lengths are errors.
    pub fn new(options: TextOptions) -> Result<Tokenizer, TextError> {
        for (what, len) in
            [("min_token_len", options.min_token_len), ("max_token_len", options.max_token_len)]
        {
            if let Some(n) = len
                && (n == 0 || n > MAX_TOKEN_LEN_OPTION)
            {
                return Err(TextError::BadOption {
                    what: what.to_string(),
                    why: format!("must be between 1 and {MAX_TOKEN_LEN_OPTION}, got {n}"),
                });
            }
        }
        if let (Some(min), Some(max)) = (options.min_token_len, options.max_token_len)
            && min > max
        {
            return Err(TextError::BadOption {
                what: "min_token_len".to_string(),
                why: format!("{min} is more than max_token_len {max}"),
            });
        }
        let mut stopwords = HashSet::new();
        if let Some(s) = &options.stopwords {
            for lang in &s.languages {
                stopwords.extend(stopword_list(lang)?.iter().map(|w| w.to_string()));
            }
            stopwords.extend(s.custom.iter().cloned());
        }
        if options.lowercase {
            stopwords = stopwords.into_iter().map(|w| w.to_lowercase()).collect();
        }
        let stemmer = options.stemmer.as_deref().map(stemmer).transpose()?;
        Ok(Tokenizer { options, stopwords, stemmer })
    }

    /// The options it was made from.
    pub fn options(&self) -> &TextOptions {
        &self.options
    }

    fn raw<'t>(&self, text: &'t str, f: &mut dyn FnMut(&'t str)) {
        match self.options.tokenizer {
            TokenizerKind::Word | TokenizerKind::Prefix => {
                text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).for_each(f)
            }
            TokenizerKind::Whitespace => text.split_whitespace().for_each(f),
            TokenizerKind::Multilingual => text.unicode_words().for_each(f),
        }
    }

    /// One raw token through lowercasing, stopwords, stemming and the length bounds
    /// (in that order, as Qdrant does); `None` if it is dropped.
    fn process<'t>(&self, token: &'t str, check_max: bool) -> Option<Cow<'t, str>> {
        let mut token =
            if self.options.lowercase { Cow::Owned(token.to_lowercase()) } else { Cow::Borrowed(token) };
        if self.stopwords.contains(token.as_ref()) {
            return None;
        }
        if let Some(stemmer) = &self.stemmer {
            token = Cow::Owned(stemmer.stem(&token).into_owned());
        }
        let chars = token.chars().count();
        if self.options.min_token_len.is_some_and(|m| chars < m)
            || (check_max && self.options.max_token_len.is_some_and(|m| chars > m))
        {
            return None;
        }
        Some(token)
    }

    /// The tokens a document is indexed under, in text order (a prefix tokeniser adds
    /// each token's prefixes right after it, shortest first).
    pub fn document_tokens(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.raw(text, &mut |raw| {
            if self.options.tokenizer == TokenizerKind::Prefix {
                let Some(token) = self.process(raw, false) else { return };
                let from = self.options.min_token_len.unwrap_or(1);
                let to = self.options.max_token_len.unwrap_or(usize::MAX);
                let ends: Vec<usize> =
                    token.char_indices().map(|(i, _)| i).skip(1).chain([token.len()]).collect();
                for (n, &end) in ends.iter().enumerate() {
                    let len = n + 1;
                    if len >= from && len <= to {
                        out.push(token[..end].to_string());
                    }
                }
            } else if let Some(token) = self.process(raw, true) {
                out.push(token.into_owned());
            }
        });
        out
    }

    /// The tokens of a query, in text order (no prefixes; the longest-token bound
    /// applies only to documents).
    pub fn query_tokens(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.raw(text, &mut |raw| {
            if let Some(token) = self.process(raw, false) {
                out.push(token.into_owned());
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(options: TextOptions) -> Tokenizer {
        Tokenizer::new(options).unwrap()
    }

    #[test]
    fn the_four_tokenizers_cut_as_qdrant_describes() {
        let text = "Hello, wörld! foo-bar 42 東京";
        assert_eq!(
            tok(TextOptions::default()).document_tokens(text),
            ["hello", "wörld", "foo", "bar", "42", "東京"]
        );
        let ws =
            TextOptions { tokenizer: TokenizerKind::Whitespace, lowercase: false, ..TextOptions::default() };
        assert_eq!(tok(ws).document_tokens(text), ["Hello,", "wörld!", "foo-bar", "42", "東京"]);
        let multi = TextOptions { tokenizer: TokenizerKind::Multilingual, ..TextOptions::default() };
        assert_eq!(tok(multi).document_tokens(text), ["hello", "wörld", "foo", "bar", "42", "東", "京"]);
        let prefix = TextOptions {
            tokenizer: TokenizerKind::Prefix,
            min_token_len: Some(2),
            max_token_len: Some(4),
            ..TextOptions::default()
        };
        assert_eq!(tok(prefix.clone()).document_tokens("Hello"), ["he", "hel", "hell"]);
        assert_eq!(tok(prefix).query_tokens("Hello"), ["hello"]);
    }

    #[test]
    fn stopwords_then_stemming_then_lengths() {
        let options = TextOptions {
            stopwords: Some(Stopwords { languages: vec!["english".into()], custom: vec!["Quick".into()] }),
            stemmer: Some("english".into()),
            min_token_len: Some(3),
            ..TextOptions::default()
        };
        assert_eq!(tok(options).document_tokens("The quick foxes were running at it"), ["fox", "run"]);
    }

    #[test]
    fn unknown_languages_and_bad_lengths_are_refused() {
        let bad = TextOptions { stemmer: Some("klingon".into()), ..TextOptions::default() };
        assert!(matches!(Tokenizer::new(bad), Err(TextError::UnknownStemmer { .. })));
        let bad = TextOptions {
            stopwords: Some(Stopwords { languages: vec!["klingon".into()], custom: vec![] }),
            ..TextOptions::default()
        };
        assert!(matches!(Tokenizer::new(bad), Err(TextError::UnknownStopwords { .. })));
        let bad = TextOptions { min_token_len: Some(5), max_token_len: Some(2), ..TextOptions::default() };
        assert!(matches!(Tokenizer::new(bad), Err(TextError::BadOption { .. })));
        assert!(stopword_languages().contains(&"english"));
    }
}
