//! ambuild: the heap is scanned on the backend thread into owned batches, each batch bounded
//! by maintenance_work_mem and linked in parallel by the engine on this backend's pool.

use std::borrow::Cow;
use std::sync::Arc;

use hannoy_engine::{
    Change, FilterRow, Index, IndexOptions, InsertRows, Metric, Pass, PreparedVectors,
};
use pgrx::prelude::*;

use crate::pg::error::{raise, raise_engine, OrRaise};
use crate::pg::filter::IndexLayout;
use crate::pg::threads;
use crate::pg::vector::{OwnedVector, VectorType};

// From Postgres's commands/progress.h (not in pgrx's bindings).
const PROGRESS_CREATEIDX_SUBPHASE: i32 = 10;
const PROGRESS_CREATEIDX_TUPLES_TOTAL: i32 = 11;
const PROGRESS_CREATEIDX_TUPLES_DONE: i32 = 12;

/// The build's phases in pg_stat_progress_create_index; 1 is Postgres's "initializing". A
/// batch of rows is read, built into a graph of its own, and, when the index already holds
/// earlier batches, linked into the stored graph: every row of those batches is searched for
/// twice, once among its batch and once in the index.
const PHASE_READING: i64 = 2;
const PHASE_BATCH_GRAPH: i64 = 3;
const PHASE_SEARCH_STORED: i64 = 4;
const PHASE_TAKE_IN: i64 = 5;
const PHASE_KEEP_IN_LINKS: i64 = 6;
const PHASE_WRITE: i64 = 7;

fn phase_of(pass: Pass) -> i64 {
    match pass {
        Pass::BatchGraph => PHASE_BATCH_GRAPH,
        Pass::SearchStored => PHASE_SEARCH_STORED,
        Pass::TakeIn => PHASE_TAKE_IN,
        Pass::KeepInLinks => PHASE_KEEP_IN_LINKS,
        Pass::Write | Pass::Delete => PHASE_WRITE,
    }
}

/// The fewest vectors a batch holds, however small maintenance_work_mem is: a batch of a few
/// vectors is linked with little parallelism.
const MIN_BATCH: usize = 64;

/// What one batch costs in memory per vector while the engine links it: the vector in its
/// stored form (prepared as it is read) and its copy in LMDB's dirty pages, then its lists: the
/// scored lists of the batch's graph (up to 2·m links of 12 bytes, in vectors that grow by
/// doubling), the lists written for it and the stored lists it rewrites, and the per-list
/// bookkeeping, about 64·m + 200 bytes in all. This bounds the batch; linking a batch into a
/// stored graph takes more on top, for the stored lists it rewrites (docs/benchmarks.md,
/// "Builds in batches").
fn bytes_per_vector(metric: Metric, dimensions: usize, m: usize) -> usize {
    2 * metric.vector_bytes(dimensions) + 64 * m + 200
}

/// How many vectors one batch holds within maintenance_work_mem, and within one WAL record
/// when the server logs its changes (a vector, its key and its filter values).
pub(super) fn batch_limit(metric: Metric, dimensions: usize, m: usize) -> usize {
    // SAFETY: a plain read of a GUC variable on the backend thread.
    let budget = unsafe { pg_sys::maintenance_work_mem } as usize * 1024;
    let limit = budget / bytes_per_vector(metric, dimensions, m);
    let limit = if crate::storage::wal::following() {
        limit.min(crate::storage::wal::MAX_RECORD_BYTES / (metric.vector_bytes(dimensions) + 64))
    } else {
        limit
    };
    limit.max(MIN_BATCH)
}

pub struct BuildState {
    relation: pg_sys::Relation,
    layout: IndexLayout,
    metric: Metric,
    vector_type: VectorType,
    options: super::options::GraphOptions,
    index: Option<Arc<Index>>,
    dimensions: Option<usize>,
    /// The batch's vectors in their stored form; empty until the first vector fixes the
    /// dimension count.
    batch: PreparedVectors,
    keys: Vec<u64>,
    /// One per vector when the index has filter columns, else empty.
    rows: Vec<FilterRow>,
    batch_limit: usize,
    heap_tuples: f64,
    indexed: u64,
}

impl BuildState {
    fn engine_options(&self, dimensions: usize) -> IndexOptions {
        self.options.for_engine(self.metric, dimensions)
    }

    fn add(&mut self, vector: OwnedVector, key: u64, row: Option<FilterRow>) {
        let dimensions = vector.dimensions();
        if self.index.is_none() {
            // The first vector fixes the dimension count; bad options fail here, before any work.
            let options = self.engine_options(dimensions);
            options.validate().or_raise();
            // SAFETY: the relation being built, open and locked for the whole build.
            self.index = Some(unsafe { crate::storage::create_engine(self.relation, &options) });
            self.batch_limit = batch_limit(self.metric, dimensions, self.options.m);
            self.batch =
                PreparedVectors::with_room(self.metric, dimensions, self.batch_limit).or_raise();
        }
        let expected = *self.dimensions.get_or_insert(dimensions);
        if expected != dimensions {
            raise_engine(hannoy_engine::Error::DimensionMismatch {
                expected,
                got: dimensions,
            });
        }
        self.batch
            .push(self.metric, dimensions, vector.as_ref())
            .or_raise();
        self.keys.push(key);
        self.rows.extend(row);
        if self.batch.len() >= self.batch_limit {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let (Some(index), Some(dimensions)) = (self.index.clone(), self.dimensions) else {
            return;
        };
        if self.batch.is_empty() {
            return;
        }
        let change = Change::Insert(InsertRows {
            options: self.engine_options(dimensions),
            vectors: Cow::Borrowed(&self.batch),
            keys: Cow::Borrowed(&self.keys),
            rows: Cow::Borrowed(&self.rows),
            log_position: None,
        });
        let (before, len) = (self.indexed, self.batch.len() as u64);
        // Rows count as done halfway through the batch's two searches when it is linked into
        // earlier batches, through its one search otherwise.
        let searches = if before == 0 { 1 } else { 2 };
        let _phase = crate::pg::phase::enter(c"hannoy: build");
        index.reserve(change.added()).or_raise();
        // SAFETY: the relation being built, open and locked for the whole build; `index` is
        // its engine.
        let stamp = unsafe { crate::storage::begin_change(self.relation, &index, &change) }
            .unwrap_or_else(|unusable| unsafe { unusable.raise(self.relation) });
        let result = threads::run_watched(
            |cancel| {
                index.write(|writer| {
                    change.apply(writer, cancel)?;
                    writer.set_stamp(stamp)
                })
            },
            |report| {
                let Some(pass) = report.pass else { return };
                let done = report.done.min(report.items as u64) / searches;
                let done = match pass {
                    Pass::BatchGraph => done,
                    Pass::SearchStored => len / 2 + done,
                    _ => len,
                };
                report_phase(phase_of(pass));
                report_tuples_done(before + done);
            },
        );
        threads::check_cancelled(result).or_raise();
        // SAFETY: as above; the commit succeeded.
        unsafe { crate::storage::end_change(self.relation, stamp) };
        self.indexed += len;
        self.batch.clear();
        self.keys.clear();
        self.rows.clear();
        report_tuples_done(self.indexed);
        report_phase(PHASE_READING);
    }
}

fn report_phase(phase: i64) {
    // SAFETY: a write to this backend's progress slot, from the backend thread.
    unsafe { pg_sys::pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, phase) };
}

fn report_tuples_done(done: u64) {
    // SAFETY: a write to this backend's progress slot, from the backend thread.
    unsafe { pg_sys::pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, done as i64) };
}

/// Builds the index from every live heap row with a non-NULL vector.
#[pg_guard]
pub unsafe extern "C-unwind" fn ambuild(
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
    index_info: *mut pg_sys::IndexInfo,
) -> *mut pg_sys::IndexBuildResult {
    // SAFETY: Postgres passes open, exclusively locked relations and a valid IndexInfo.
    unsafe {
        super::refuse_unsupported(index);
        let super::IndexDescription {
            layout,
            metric,
            vector_type,
        } = super::describe(index);
        let options = super::options::read(index);
        crate::storage::create(index);
        report_phase(PHASE_READING);
        let reltuples = (*(*heap).rd_rel).reltuples;
        if reltuples > 0.0 {
            pg_sys::pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL, reltuples as i64);
        }
        let mut state = BuildState {
            relation: index,
            layout,
            metric,
            vector_type,
            options,
            index: None,
            dimensions: None,
            batch: PreparedVectors::default(),
            keys: Vec::new(),
            rows: Vec::new(),
            batch_limit: MIN_BATCH,
            heap_tuples: 0.0,
            indexed: 0,
        };
        pg_sys::IndexBuildHeapScan(heap, index, index_info, Some(build_callback), &mut state);
        state.flush();
        if let Some(dimensions) = state.dimensions {
            crate::storage::pending_list::set_dimensions(
                index,
                dimensions as u32,
                metric.vector_bytes(dimensions),
            );
        }

        let mut result = PgBox::<pg_sys::IndexBuildResult>::alloc0();
        result.heap_tuples = state.heap_tuples;
        result.index_tuples = state.indexed as f64;
        result.into_pg()
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn build_callback(
    _index: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    _alive: bool,
    state: *mut std::ffi::c_void,
) {
    // SAFETY: `state` is the BuildState passed to IndexBuildHeapScan above; `values`/`isnull`
    // hold one entry per index column and `tid` points at the row's TID, all for this call.
    unsafe {
        let state = &mut *state.cast::<BuildState>();
        state.heap_tuples += 1.0;
        // Rows without a vector cannot be found by distance; leave them out, as pgvector does.
        let column = state.layout.vector_column;
        if *isnull.add(column) {
            return;
        }
        let vector = state.vector_type.read(*values.add(column));
        let row = state
            .layout
            .has_filters()
            .then(|| state.layout.row(values, isnull));
        state.add(vector, crate::pg::tid::tid_key(&*tid), row);
    }
}

/// Only called for unlogged tables, which are refused (see `refuse_unsupported`).
#[pg_guard]
pub unsafe extern "C-unwind" fn ambuildempty(index: pg_sys::Relation) {
    // SAFETY: Postgres passes an open index relation.
    unsafe { super::refuse_unsupported(index) };
    raise(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        "hannoy indexes on unlogged tables are not supported",
        None,
    );
}

/// Names the build phase shown in pg_stat_progress_create_index.
#[pg_guard]
pub unsafe extern "C-unwind" fn ambuildphasename(phase: i64) -> *mut std::ffi::c_char {
    match phase {
        1 => c"initializing".as_ptr().cast_mut(),
        PHASE_READING => c"reading rows".as_ptr().cast_mut(),
        PHASE_BATCH_GRAPH => c"building a batch's graph".as_ptr().cast_mut(),
        PHASE_SEARCH_STORED => c"searching the index for a batch's links"
            .as_ptr()
            .cast_mut(),
        PHASE_TAKE_IN => c"linking indexed rows to a batch".as_ptr().cast_mut(),
        PHASE_KEEP_IN_LINKS => c"checking pruned links".as_ptr().cast_mut(),
        PHASE_WRITE => c"writing a batch".as_ptr().cast_mut(),
        _ => std::ptr::null_mut(),
    }
}
