//! The engine behind hannoy_pg: an HNSW graph and its vectors in one LMDB environment, with no
//! Postgres in it.
//!
//! - [`Index::create`] / [`Index::open`] a folder; [`Index::write`] runs inserts and deletes in one
//!   atomic write transaction; [`Index::read`] gives a snapshot to search.
//! - Searches stream results in distance order ([`Reader::stream`]) for as long as the caller
//!   pulls, optionally inside a roaring bitmap of allowed ids, choosing an exact scan or a graph
//!   walk by cost.
//! - Items can carry attribute values ([`FilterRow`]); [`Reader::filter`] turns conditions on
//!   them into the bitmap of allowed ids.
//! - Inserts link a batch in parallel with work proportional to the batch; deletes repair the
//!   neighbours' links (FreshDiskANN consolidation) and leave no tombstones.

mod change;
mod check;
pub mod codes;
pub mod distance;
mod error;
mod filter;
mod graph;
mod index;
mod owned;
mod search;
mod storage;

/// The id of an item: dense, `u32`, reused after a delete.
pub type ItemId = u32;

/// Who owns an environment and how many changes it has seen, as its caller counts them. The
/// engine only stores it, atomically with the writes of the transaction that sets it: a caller
/// that keeps the same pair elsewhere (the access method, in a WAL-logged page) can tell a
/// folder that is behind, ahead of, or foreign to what it expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub owner: u64,
    pub position: u64,
}

pub use change::{Change, InsertRows};
pub use check::CheckReport;
pub use codes::Quantization;
pub use distance::{
    Metric, PreparedQuery, PreparedVectors, Room, VectorRef, MAX_BITS, MAX_DIMENSIONS,
};
pub use error::{Error, Result};
pub use filter::{ColumnValue, FilterCondition, FilterRow, FilterValue, MAX_FILTER_VALUE_BYTES};
pub use graph::cancel::{Pass, Watch};
pub use graph::delete::DeleteStats;
pub use graph::memory::batch_bytes_per_vector;
pub use index::{never_cancel, Index, IndexInfo, IndexOptions, Reader, Writer, CALLER_DATABASES};
pub use owned::{OwnedReader, OwnedStream};
pub use roaring::RoaringBitmap;
pub use search::{
    estimated_distances, Neighbor, NeighborStream, SearchParams, Strategy, DEFAULT_EF_SEARCH,
    EXACT_BELOW,
};
pub use storage::meta::FORMAT_VERSION;
pub use storage::StoreStats;
