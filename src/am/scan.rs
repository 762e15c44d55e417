//! Index scans: rows in distance order for `ORDER BY vector <op> query`, streamed for as long as
//! the executor pulls. The access method never sees the LIMIT: a filter it does not hold or a
//! large LIMIT simply pulls more rows, up to hannoy.max_scan_tuples.
//!
//! Keys on filter columns become a bitmap of allowed items on each rescan, before the search
//! (see `crate::pg::filter`): the stream only walks towards and returns allowed items, so it goes
//! on until every allowed item is out, and an empty bitmap ends the scan at once.

use std::collections::HashSet;
use std::iter::Peekable;
use std::rc::Rc;

use hannoy_engine::{
    FilterCondition, FilterRow, ItemId, Metric, Neighbor, OwnedReader, OwnedStream, PreparedQuery,
    RoaringBitmap, SearchParams,
};
use pgrx::prelude::*;
use pgrx::PgMemoryContexts;

use crate::pg::error::{raise, OrRaise};
use crate::pg::filter::scan_keys::{scan_filter, ScanFilter};
use crate::pg::guc;
use crate::pg::vector::OwnedVector;
use crate::storage::pending_list::Walk;

/// The rows a scan still has to give.
enum Rows {
    /// Nearest first: the graph's neighbours and the pending list's rows, merged by distance.
    /// The graph's come in the stream's batches, each in exact order: the first is HNSW's
    /// answer at `ef_search`, so every LIMIT up to it is in exact order. A walk can find a node
    /// after nodes farther than it have gone out; one found a batch too late comes out a little
    /// early instead of being dropped, so every row is still returned.
    Nearest {
        batch: Peekable<std::vec::IntoIter<Neighbor>>,
        /// `None` once exhausted, or when the engine holds nothing yet.
        stream: Option<Box<OwnedStream>>,
        /// (distance, TID key) of the pending rows, nearest first.
        pending: Peekable<std::vec::IntoIter<(f32, u64)>>,
        /// Distances computed: the pending rows' and those of the stream once it is dropped.
        distances: usize,
        /// Whether the stream's distances are lower bounds for the executor to re-check
        /// (`hannoy.rerank_from = table`); the pending rows' are exact either way.
        bounds: bool,
    },
    /// Every row, for a NULL query: all distances are NULL, so any order is the right one.
    Unordered {
        items: std::vec::IntoIter<ItemId>,
        pending: std::vec::IntoIter<u64>,
    },
}

#[derive(Default)]
struct ScanState {
    /// Declared before the reader: a stream borrows the reader's snapshot.
    rows: Option<Rows>,
    reader: Option<Rc<OwnedReader>>,
    /// Whether the rows of the current keys have been set up (an empty index has none).
    started: bool,
    /// Whether the executor must check the filter keys on each row (see `ScanFilter`).
    recheck: bool,
    /// The TID keys of every row in the pending list, allowed or not: the graph's item for
    /// such a key is not given (see `read_snapshot`).
    listed: HashSet<u64>,
    returned: usize,
}

/// What the last index scan of this backend did, for `hannoy_last_scan()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanFigures {
    /// Rows it gave the executor.
    pub rows: u64,
    /// Distances it computed: the graph walk's from its seeds (or the exact scan's) and one per
    /// pending-list row; none for a NULL query.
    pub distances: u64,
}

thread_local! {
    static LAST_SCAN: std::cell::Cell<Option<ScanFigures>> = const { std::cell::Cell::new(None) };
}

/// The figures of the last index scan this backend ended or restarted, if any.
pub fn last_scan() -> Option<ScanFigures> {
    LAST_SCAN.with(std::cell::Cell::get)
}

impl Rows {
    fn distances(&self) -> usize {
        match self {
            Rows::Nearest {
                stream, distances, ..
            } => distances + stream.as_ref().map_or(0, |s| s.distances()),
            Rows::Unordered { .. } => 0,
        }
    }
}

impl ScanState {
    fn reset(&mut self) {
        if self.started {
            LAST_SCAN.with(|last| {
                last.set(Some(ScanFigures {
                    rows: self.returned as u64,
                    distances: self.rows.as_ref().map_or(0, Rows::distances) as u64,
                }))
            });
        }
        self.rows = None;
        self.reader = None;
        self.started = false;
        self.recheck = false;
        self.listed = HashSet::new();
        self.returned = 0;
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn ambeginscan(
    index: pg_sys::Relation,
    nkeys: std::ffi::c_int,
    norderbys: std::ffi::c_int,
) -> pg_sys::IndexScanDesc {
    // SAFETY: RelationGetIndexScan allocates the descriptor in the current memory context; the
    // state lives in that context too and is dropped when it goes, also on error, which
    // releases the LMDB snapshot.
    unsafe {
        let scan = pg_sys::RelationGetIndexScan(index, nkeys, norderbys);
        // Where a row's distance goes when the executor is to re-check it; as GiST does,
        // the access method allocates them.
        if norderbys > 0 {
            let n = norderbys as usize;
            (*scan).xs_orderbyvals = pg_sys::palloc0(n * size_of::<pg_sys::Datum>()).cast();
            (*scan).xs_orderbynulls = pg_sys::palloc0(n * size_of::<bool>()).cast();
        }
        let state =
            PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(ScanState::default());
        (*scan).opaque = state.cast();
        scan
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amrescan(
    scan: pg_sys::IndexScanDesc,
    keys: pg_sys::ScanKey,
    nkeys: std::ffi::c_int,
    orderbys: pg_sys::ScanKey,
    norderbys: std::ffi::c_int,
) {
    // SAFETY: the executor passes arrays of the sizes it gave ambeginscan, which allocated
    // keyData and orderByData with those sizes; the state is ours from ambeginscan.
    unsafe {
        if !keys.is_null() && nkeys > 0 {
            std::ptr::copy(keys, (*scan).keyData, nkeys as usize);
        }
        if !orderbys.is_null() && norderbys > 0 {
            std::ptr::copy(orderbys, (*scan).orderByData, norderbys as usize);
        }
        state(scan).reset();
    }
}

/// # Safety
/// `scan` must come from `ambeginscan`.
unsafe fn state<'a>(scan: pg_sys::IndexScanDesc) -> &'a mut ScanState {
    // SAFETY: ambeginscan stored a live ScanState in `opaque`.
    unsafe { &mut *(*scan).opaque.cast::<ScanState>() }
}

/// Opens the snapshot and sets up the rows for the current order-by key.
///
/// # Safety
/// `scan` must come from `ambeginscan` and have been given its keys by `amrescan`.
unsafe fn start(scan: pg_sys::IndexScanDesc, state: &mut ScanState) {
    // SAFETY: the descriptor's fields are valid for the scan's life.
    unsafe {
        refuse_unsupported(scan);
        let index = (*scan).indexRelation;
        let super::IndexDescription {
            layout,
            metric,
            vector_type,
        } = super::describe(index);
        let keys = match (*scan).numberOfKeys {
            0 => &[][..],
            n => std::slice::from_raw_parts((*scan).keyData, n as usize),
        };
        state.started = true;
        crate::pg::stats::count_index_scan(index);
        let conditions = match scan_filter(&layout, keys) {
            ScanFilter::Nothing => return,
            ScanFilter::All => Vec::new(),
            ScanFilter::Conditions { conditions, exact } => {
                state.recheck = !exact;
                conditions
            }
        };
        let order_by = &*(*scan).orderByData;
        let query = (order_by.sk_flags & pg_sys::SK_ISNULL as i32 == 0)
            .then(|| vector_type.read(order_by.sk_argument));
        let SnapshotRows {
            reader,
            pending,
            listed,
        } = read_snapshot(index, metric, query.as_ref(), &conditions);
        state.listed = listed;
        // The engine's items the conditions allow; `None`: all of them.
        let allowed = (!conditions.is_empty()).then(|| {
            reader
                .as_deref()
                .map_or_else(RoaringBitmap::new, |r| r.filter(&conditions).or_raise())
        });
        state.rows = Some(match query {
            None => unordered_rows(reader.as_deref(), allowed.as_ref(), pending),
            Some(query) => nearest_rows(reader.as_ref(), allowed.as_ref(), &query, pending),
        });
        state.reader = reader;
    }
}

/// Scans answer ordered queries under an MVCC snapshot only.
///
/// # Safety
/// `scan` must come from `ambeginscan`.
unsafe fn refuse_unsupported(scan: pg_sys::IndexScanDesc) {
    // SAFETY: the descriptor's fields are valid for the scan's life.
    unsafe {
        let snapshot = (*scan).xs_snapshot;
        if snapshot.is_null() || (*snapshot).snapshot_type != pg_sys::SnapshotType::SNAPSHOT_MVCC {
            raise(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "hannoy index scans need an MVCC snapshot",
                None,
            );
        }
        if (*scan).numberOfOrderBys < 1 {
            raise(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "a hannoy index can only be scanned in distance order",
                Some("Use ORDER BY vector <operator> value."),
            );
        }
    }
}

/// What a scan reads at its start.
struct SnapshotRows {
    reader: Option<Rc<OwnedReader>>,
    /// The pending rows the conditions allow, scored as they are read: (distance, TID key), the
    /// distance NaN for a NULL query. Their vectors are not kept.
    pending: Vec<(f32, u64)>,
    /// The TID keys of every pending row.
    listed: HashSet<u64>,
}

/// The engine's snapshot and the pending rows. The snapshot is opened while the pending list
/// cannot be cut, so every row is in one of the two. A row can be in both after its folder was
/// rebuilt from the heap (`storage::rebuild`): the heap scan saw it and its pending entry came
/// after the point the rebuild started from. The list's entry is the row's newest (a merge or a
/// delete of the key in between would have moved the list past it), so the scan gives the row
/// once, from the list.
///
/// # Safety
/// `index` must be an open hannoy index relation.
unsafe fn read_snapshot(
    index: pg_sys::Relation,
    metric: Metric,
    query: Option<&OwnedVector>,
    conditions: &[FilterCondition],
) -> SnapshotRows {
    let mut pending: Vec<(f32, u64)> = Vec::new();
    let mut listed = HashSet::new();
    let mut prepared: Option<PreparedQuery> = None;
    // SAFETY: forwarded from the caller.
    unsafe { super::rebuild::if_waiting(index) };
    // SAFETY: forwarded from the caller.
    let snapshot = unsafe {
        crate::storage::snapshot(index, |entry| {
            listed.insert(entry.key);
            if !conditions.is_empty() {
                let row = FilterRow::from_bytes(entry.filters).or_raise();
                if !FilterCondition::matches_all(conditions, &row) {
                    return Walk::Go;
                }
            }
            let distance = match query {
                None => f32::NAN,
                Some(query) => {
                    let prepared = prepared.get_or_insert_with(|| {
                        PreparedQuery::new(metric, entry.dimensions as usize, query.as_ref())
                            .or_raise()
                    });
                    prepared.distance_to(metric, entry.vector).or_raise()
                }
            };
            pending.push((distance, entry.key));
            Walk::Go
        })
        .unwrap_or_else(|unusable| unusable.raise(index))
    };
    SnapshotRows {
        reader: snapshot.reader,
        pending,
        listed,
    }
}

/// Every allowed row, for a NULL query.
fn unordered_rows(
    reader: Option<&OwnedReader>,
    allowed: Option<&RoaringBitmap>,
    pending: Vec<(f32, u64)>,
) -> Rows {
    let items = match (reader, allowed) {
        (_, Some(allowed)) => allowed.iter().collect(),
        (Some(reader), None) => reader.items().iter().collect(),
        (None, None) => Vec::new(),
    };
    let pending: Vec<u64> = pending.into_iter().map(|(_, key)| key).collect();
    Rows::Unordered {
        items: items.into_iter(),
        pending: pending.into_iter(),
    }
}

/// The graph's stream and the pending rows, to be merged by distance.
fn nearest_rows(
    reader: Option<&Rc<OwnedReader>>,
    allowed: Option<&RoaringBitmap>,
    query: &OwnedVector,
    mut pending: Vec<(f32, u64)>,
) -> Rows {
    pending.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let params = SearchParams {
        ef_search: guc::ef_search(),
        filter: allowed,
        rerank: guc::rerank(),
        lower_bounds: guc::rerank_from() == guc::RerankFrom::Table,
        ..SearchParams::default()
    };
    let stream = match reader {
        Some(reader) if !reader.is_empty() => Some(Box::new(
            OwnedStream::new(Rc::clone(reader), query.as_ref(), &params).or_raise(),
        )),
        _ => None,
    };
    Rows::Nearest {
        batch: Vec::new().into_iter().peekable(),
        bounds: stream.as_ref().is_some_and(|s| s.lower_bounds()),
        stream,
        distances: pending.len(),
        pending: pending.into_iter().peekable(),
    }
}

/// Where the next row comes from, and its distance: exact, or a lower bound of it (`bound`).
enum Next {
    Item {
        id: ItemId,
        distance: f32,
        bound: bool,
    },
    Key {
        key: u64,
        distance: f32,
    },
    End,
}

impl Rows {
    fn next(&mut self) -> Next {
        match self {
            Rows::Nearest {
                batch,
                stream,
                pending,
                distances,
                bounds,
            } => {
                if batch.peek().is_none() {
                    if let Some(s) = stream {
                        *batch = s.next_batch().or_raise().into_iter().peekable();
                        if batch.peek().is_none() {
                            *distances += s.distances();
                            *stream = None;
                        }
                    }
                }
                let from_pending = match (batch.peek(), pending.peek()) {
                    (Some(n), Some(&(d, _))) => d < n.distance,
                    (None, Some(_)) => true,
                    (_, None) => false,
                };
                if from_pending {
                    let (distance, key) = pending.next().expect("peeked");
                    return Next::Key { key, distance };
                }
                match batch.next() {
                    Some(n) => Next::Item {
                        id: n.id,
                        distance: n.distance,
                        bound: *bounds,
                    },
                    None => Next::End,
                }
            }
            Rows::Unordered { items, pending } => match items.next() {
                Some(id) => Next::Item {
                    id,
                    distance: f32::NAN,
                    bound: false,
                },
                None => pending.next().map_or(Next::End, |key| Next::Key {
                    key,
                    distance: f32::NAN,
                }),
            },
        }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amgettuple(
    scan: pg_sys::IndexScanDesc,
    _direction: pg_sys::ScanDirection::Type,
) -> bool {
    // SAFETY: `scan` comes from ambeginscan; xs_heaptid is ours to set.
    unsafe {
        let state = state(scan);
        if !state.started {
            start(scan, state);
        }
        if state.returned >= guc::max_scan_tuples() {
            return false;
        }
        let Some(rows) = state.rows.as_mut() else {
            return false;
        };
        loop {
            let (key, distance, bound) = match rows.next() {
                Next::End => return false,
                Next::Key { key, distance } => (key, distance, false),
                // Every item is inserted with its TID; one without is skipped, not guessed.
                Next::Item {
                    id,
                    distance,
                    bound,
                } => match state.reader.as_ref().and_then(|r| r.key(id).or_raise()) {
                    Some(key) if !state.listed.contains(&key) => (key, distance, bound),
                    _ => continue,
                },
            };
            crate::pg::tid::key_tid(key, &mut (*scan).xs_heaptid);
            // Filter keys are checked again only where they were approximated. Exact
            // distances come in order: nothing for the executor to re-sort. A lower bound is
            // handed over for the executor to compute the distance from the row and re-order;
            // the exact distances of the pending rows among them go over too, as exact.
            (*scan).xs_recheck = state.recheck;
            (*scan).xs_recheckorderby = bound;
            if (*scan).numberOfOrderBys > 0 && !distance.is_nan() {
                *(*scan).xs_orderbyvals = (distance as f64).into_datum().expect("a float8 datum");
                *(*scan).xs_orderbynulls = false;
            }
            state.returned += 1;
            return true;
        }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amendscan(scan: pg_sys::IndexScanDesc) {
    // SAFETY: `scan` comes from ambeginscan. Ending the snapshot now, not when the memory
    // context goes, keeps LMDB from holding old pages for longer than the scan.
    unsafe { state(scan).reset() };
}
