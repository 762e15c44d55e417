//! Snapshots and streams that own what they borrow, for callers that keep a scan open across
//! calls they do not control (an index access method's `amgettuple`, for one).
//!
//! A [`Reader`] borrows its [`Index`] and a [`NeighborStream`] borrows its reader. Here the
//! borrowed value sits behind an `Arc` or `Rc`, whose heap address never changes while a clone
//! is held, and the borrower is declared before it so it is dropped first. (A reader holds a
//! lock guard and stays on its thread, hence `Rc` for readers.) That is the whole
//! invariant behind the two lifetime extensions below.

use std::ops::Deref;
use std::rc::Rc;
use std::sync::Arc;

use crate::{Index, Neighbor, NeighborStream, Reader, Result, SearchParams, VectorRef};

/// A read snapshot that keeps its index alive.
pub struct OwnedReader {
    // Declared first: dropped before the index it borrows from.
    reader: Reader<'static>,
    _index: Arc<Index>,
}

impl OwnedReader {
    pub fn new(index: Arc<Index>) -> Result<OwnedReader> {
        let reader = index.read()?;
        // SAFETY: `reader` borrows `*index`, which lives in the Arc's allocation; `_index` keeps
        // that allocation alive and unmoved for as long as `reader` exists (see the module doc).
        let reader = unsafe { std::mem::transmute::<Reader<'_>, Reader<'static>>(reader) };
        Ok(OwnedReader {
            reader,
            _index: index,
        })
    }
}

impl OwnedReader {
    /// The index this snapshot reads.
    pub fn index(&self) -> &Arc<Index> {
        &self._index
    }
}

impl Deref for OwnedReader {
    type Target = Reader<'static>;

    fn deref(&self) -> &Reader<'static> {
        &self.reader
    }
}

/// A neighbour stream that keeps its snapshot alive.
pub struct OwnedStream {
    // Declared first: dropped before the reader it borrows from.
    stream: NeighborStream<'static>,
    _reader: Rc<OwnedReader>,
}

impl OwnedStream {
    pub fn new(
        reader: Rc<OwnedReader>,
        query: VectorRef<'_>,
        params: &SearchParams<'_>,
    ) -> Result<OwnedStream> {
        let stream = reader.stream(query, params)?;
        // SAFETY: `stream` borrows the `OwnedReader` inside the Rc's allocation, which
        // `_reader` keeps alive and unmoved for as long as `stream` exists. The stream keeps no
        // borrow of `query` or `params` (it copies the query and intersects the filter).
        let stream =
            unsafe { std::mem::transmute::<NeighborStream<'_>, NeighborStream<'static>>(stream) };
        Ok(OwnedStream {
            stream,
            _reader: reader,
        })
    }

    /// See [`NeighborStream::next_batch`].
    pub fn next_batch(&mut self) -> Result<Vec<Neighbor>> {
        self.stream.next_batch()
    }

    /// See [`NeighborStream::distances`].
    pub fn distances(&self) -> usize {
        self.stream.distances()
    }

    /// See [`NeighborStream::lower_bounds`].
    pub fn lower_bounds(&self) -> bool {
        self.stream.lower_bounds()
    }

    /// Whether this stream scans exactly instead of walking the graph.
    pub fn is_exact(&self) -> bool {
        self.stream.is_exact()
    }
}

impl Iterator for OwnedStream {
    type Item = Result<Neighbor>;

    fn next(&mut self) -> Option<Result<Neighbor>> {
        self.stream.next()
    }
}
