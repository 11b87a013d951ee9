//! Payload filters for Braid: Qdrant's filter language over JSON payloads, evaluated
//! per point or through roaring-bitmap payload indexes.
//!
//! What this crate does:
//! - the filter AST ([`Filter`], [`Condition`]) parsed from and printed to Qdrant's
//!   filter JSON with typed errors ([`FilterError`]), and a builder
//!   (`Filter::must([field("category").eq("apparel"), field("price").lte(200.0)])`);
//! - payload key paths with Qdrant's rules (`a.b` through objects, `a[].b` through
//!   arrays) in [`JsonPath`];
//! - per-point evaluation ([`Filter::check`]), the reference semantics;
//! - a [`PayloadStore`] holding payloads by offset and keyword, integer, float, bool,
//!   uuid and datetime indexes kept in step with every payload change;
//! - [`PayloadStore::plan`]: a filter becomes the exact bitmap of matching offsets when
//!   indexes answer every condition, or a per-point predicate otherwise, with a
//!   cardinality estimate — as a [`braid_core::OffsetFilter`] that graph traversal and
//!   exact scans consult.
//!
//! What it does not do: vectors, I/O, and id bookkeeping. Ids and named-vector
//! presence come from the caller through [`PointLookup`].
//!
//! ```
//! use braid_core::{OffsetFilter, PointOffset};
//! use braid_filter::{field, Filter, IndexKind, OffsetIds, PayloadStore};
//! use serde_json::json;
//!
//! let mut store = PayloadStore::new();
//! store.create_index("category", IndexKind::Keyword).unwrap();
//! store.create_index("price", IndexKind::Float).unwrap();
//! store.set(PointOffset(0), json!({"category": "apparel", "price": 120.0}));
//! store.set(PointOffset(1), json!({"category": "apparel", "price": 380.0}));
//! store.set(PointOffset(2), json!({"category": "shoes", "price": 90.0}));
//! let segment = OffsetIds::new((0..3).collect());
//!
//! let filter = Filter::must([field("category").eq("apparel"), field("price").lte(200.0)]);
//! let planned = store.plan(&filter, &segment);
//! assert_eq!(planned.bitmap().map(|b| b.iter().collect::<Vec<_>>()), Some(vec![0]));
//! assert_eq!(planned.estimate().expected, 1);
//! assert!(planned.matches(PointOffset(0)) && !planned.matches(PointOffset(2)));
//! ```
#![forbid(unsafe_code)]

mod ast;
mod check;
mod error;
pub mod geo;
mod index;
mod parse;
mod path;
mod plan;

use braid_core::{PointId, PointOffset};
use roaring::RoaringBitmap;

pub use ast::{
    Condition, Field, FieldCondition, FieldTest, Filter, GeoBoundingBox, GeoPoint, GeoPolygon, GeoRadius,
    Match, MinShould, Range, Scalar, Variants, field,
};
pub use error::{FilterError, IndexError};
pub use index::{FacetValue, IndexKind, OrderValue, PayloadSource, PayloadStore, Stored};
pub use parse::{parse_datetime, parse_point_id};
pub use path::{JsonPath, Step};
pub use plan::PlannedFilter;

/// How deep filters may nest (filters inside conditions inside filters).
pub const MAX_DEPTH: usize = 32;

/// The simplest [`PointLookup`]: point ids are the offsets themselves (`PointId::Num(n)`
/// lives at offset `n`), with named-vector sets added by the caller. For using this
/// crate on its own, and for tests.
#[derive(Clone, Debug, Default)]
pub struct OffsetIds {
    live: RoaringBitmap,
    vectors: std::collections::BTreeMap<String, RoaringBitmap>,
}

impl OffsetIds {
    /// Every offset in `live` is a live point.
    pub fn new(live: RoaringBitmap) -> OffsetIds {
        OffsetIds { live, vectors: Default::default() }
    }

    /// Declares which offsets have a vector named `name`.
    pub fn with_vectors(mut self, name: &str, offsets: RoaringBitmap) -> OffsetIds {
        self.vectors.insert(name.to_string(), offsets);
        self
    }
}

impl PointLookup for OffsetIds {
    fn offset_of(&self, id: &PointId) -> Option<PointOffset> {
        match id {
            PointId::Num(n) => u32::try_from(*n).ok().map(PointOffset).filter(|o| self.live.contains(o.0)),
            PointId::Uuid(_) => None,
        }
    }
    fn vectors(&self, name: &str) -> Option<&RoaringBitmap> {
        self.vectors.get(name)
    }
    fn live(&self) -> &RoaringBitmap {
        &self.live
    }
}

/// What a filter needs from a segment beyond payloads: id lookup, named-vector
/// presence and the set of live offsets.
pub trait PointLookup: Sync {
    /// The offset of a point id in this segment, if it lives here.
    fn offset_of(&self, id: &PointId) -> Option<PointOffset>;
    /// The offsets that have a vector in the named space, or `None` for an unknown name.
    fn vectors(&self, name: &str) -> Option<&RoaringBitmap>;
    /// Every live (not deleted) offset.
    fn live(&self) -> &RoaringBitmap;
}
