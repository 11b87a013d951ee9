//! Text for Braid (`docs/hybrid.md`): Qdrant's tokenisers and token processing
//! ([`Tokenizer`], [`TextOptions`]) for full-text payload indexes and the BM25 model
//! ([`Bm25`], [`Document`]) that turns text into the sparse vectors Qdrant's
//! `qdrant/bm25` makes.
//!
//! ```
//! use braid_text::{Bm25, Document};
//!
//! let stored = Document::new("Cats chase mice", "bm25").embed().unwrap();
//! let query = Document::new("cat", "bm25").embed_query().unwrap();
//! assert_eq!(query.indices(), &[Bm25::token_id("cat")]);
//! assert!(stored.dot(&query).unwrap() > 0.0);
//! ```
#![forbid(unsafe_code)]

mod bm25;
mod tokenize;

pub use bm25::{Bm25, Document, MAX_DOCUMENT_BYTES, MODELS, text_processing};
pub use tokenize::{
    MAX_TOKEN_LEN_OPTION, Stopwords, TextOptions, Tokenizer, TokenizerKind, stemmer_languages,
    stopword_languages,
};

/// Why text options or a document were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// A `Document` names a model Braid does not have.
    #[error("unknown model `{model}`; Braid serves {available:?}")]
    UnknownModel {
        /// The name given.
        model: String,
        /// The models there are.
        available: Vec<&'static str>,
    },
    /// A stemmer language without a Snowball stemmer.
    #[error("no Snowball stemmer for `{language}`; there are {available:?}")]
    UnknownStemmer {
        /// The language given.
        language: String,
        /// The languages there are.
        available: Vec<&'static str>,
    },
    /// A stopword language without a list.
    #[error("no stopword list for `{language}`; there are {available:?}")]
    UnknownStopwords {
        /// The language given.
        language: String,
        /// The languages there are.
        available: Vec<&'static str>,
    },
    /// An option with a bad value, or one that does not exist.
    #[error("option `{what}`: {why}")]
    BadOption {
        /// The option.
        what: String,
        /// What is wrong.
        why: String,
    },
    /// A document over [`MAX_DOCUMENT_BYTES`].
    #[error("a document holds at most {max} bytes of text, got {bytes}")]
    DocumentTooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
}
