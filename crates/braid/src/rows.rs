//! A space's rows in the element type its configuration stores ([`Datatype`]).

use braid_core::{Datatype, Element, Metric, PointOffset, VectorSource, f16};
use braid_distance::{Kernel, RowKernel};
use braid_storage::StorageError;
use braid_storage::vectors::{Residency, Rows, VectorFile};

/// One space's rows: `f32`, `f16` or `u8`, chosen by the space's `datatype`. Searches
/// pick the variant once ([`with_rows!`]) and run a graph walk compiled for it.
#[derive(Debug, Clone)]
pub(crate) enum SpaceRows {
    F32(Rows<f32>),
    F16(Rows<f16>),
    U8(Rows<u8>),
}

/// Runs `$body` with `$r` bound to the typed [`Rows`] inside a [`SpaceRows`].
macro_rules! with_rows {
    ($rows:expr, |$r:ident| $body:expr) => {
        match $rows {
            $crate::rows::SpaceRows::F32($r) => $body,
            $crate::rows::SpaceRows::F16($r) => $body,
            $crate::rows::SpaceRows::U8($r) => $body,
        }
    };
}
pub(crate) use with_rows;

impl SpaceRows {
    /// No rows, in memory.
    pub(crate) fn new(dim: usize, datatype: Datatype) -> SpaceRows {
        match datatype {
            Datatype::Float32 => SpaceRows::F32(Rows::new(dim)),
            Datatype::Float16 => SpaceRows::F16(Rows::new(dim)),
            Datatype::Uint8 => SpaceRows::U8(Rows::new(dim)),
        }
    }

    /// Every row `file` holds, mapped.
    pub(crate) fn mapped(
        file: &VectorFile,
        dim: usize,
        datatype: Datatype,
    ) -> Result<SpaceRows, StorageError> {
        Ok(match datatype {
            Datatype::Float32 => SpaceRows::F32(Rows::mapped(dim, file.map()?)),
            Datatype::Float16 => SpaceRows::F16(Rows::mapped(dim, file.map()?)),
            Datatype::Uint8 => SpaceRows::U8(Rows::mapped(dim, file.map()?)),
        })
    }

    /// How many rows.
    pub(crate) fn len(&self) -> usize {
        with_rows!(self, |r| r.len())
    }

    /// Rows read from the mapped file.
    pub(crate) fn mapped_rows(&self) -> usize {
        with_rows!(self, |r| r.mapped_rows())
    }

    /// The element type of the rows.
    pub(crate) fn datatype(&self) -> Datatype {
        match self {
            SpaceRows::F32(_) => Datatype::Float32,
            SpaceRows::F16(_) => Datatype::Float16,
            SpaceRows::U8(_) => Datatype::Uint8,
        }
    }

    /// Bytes of one row.
    pub(crate) fn row_bytes(&self) -> usize {
        with_rows!(self, |r| r.dim()) * self.datatype().width()
    }

    /// Tells the kernel how the mapped rows will be read.
    pub(crate) fn advise(&self, residency: Residency) -> std::io::Result<()> {
        with_rows!(self, |r| r.advise(residency))
    }

    /// Appends one vector in stored form (checked by
    /// [`braid_distance::prepare_as`]), narrowed to the rows' element type.
    pub(crate) fn push(&mut self, vector: &[f32]) {
        with_rows!(self, |r| r.push_from(vector))
    }

    /// The row at `offset` as the user stored it, widened to `f32`.
    pub(crate) fn stored(&self, offset: u32) -> Vec<f32> {
        with_rows!(self, |r| Element::widen(r.vector(PointOffset(offset))).into_owned())
    }

    /// `f` of the row at `offset` as a query under `metric` (normalised under Cosine;
    /// `f32` rows are lent, not copied): what codes and query-by-example see.
    pub(crate) fn with_query<R>(&self, metric: Metric, offset: u32, f: impl FnOnce(&[f32]) -> R) -> R {
        with_rows!(self, |r| f(&RowKernel::as_query(metric, r.vector(PointOffset(offset)))))
    }

    /// The row at `offset` as a query under `metric` (see [`SpaceRows::with_query`]).
    pub(crate) fn query_of(&self, metric: Metric, offset: u32) -> Vec<f32> {
        self.with_query(metric, offset, <[f32]>::to_vec)
    }

    /// The user score of `query` (prepared) against the row at `offset`.
    pub(crate) fn score(&self, kernel: &Kernel, query: &[f32], offset: u32) -> f32 {
        with_rows!(self, |r| kernel.finish(RowKernel::raw(
            kernel.metric(),
            query,
            r.vector(PointOffset(offset))
        )))
    }

    /// Appends the rows `file` does not have yet.
    pub(crate) fn append_to(&self, file: &mut VectorFile) -> Result<(), StorageError> {
        with_rows!(self, |r| append_rows(file, r))
    }
}

/// Appends the rows of `rows` the file does not have yet.
fn append_rows<E: Element>(file: &mut VectorFile, rows: &Rows<E>) -> Result<(), StorageError> {
    const CHUNK: usize = 1024;
    let mut buf = Vec::with_capacity(CHUNK * rows.dim());
    let mut at = file.rows() as usize;
    while at < rows.len() {
        buf.clear();
        let end = (at + CHUNK).min(rows.len());
        for o in at..end {
            buf.extend_from_slice(rows.vector(PointOffset(o as u32)));
        }
        file.append(&buf)?;
        at = end;
    }
    Ok(())
}
