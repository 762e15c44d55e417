//! ambuild: the heap is scanned on the backend thread into owned batches, each batch bounded
//! by maintenance_work_mem and linked in parallel by the engine on this backend's pool.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use hannoy_engine::{
    Change, FilterRow, Index, IndexOptions, InsertRows, Metric, Pass, PreparedVectors,
};
use pgrx::prelude::*;

use super::IndexDescription;
use crate::pg::error::{raise, raise_engine, OrRaise};
use crate::pg::memory::RowMemory;
use crate::pg::threads;
use crate::pg::vector::OwnedVector;

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
const PHASE_STORE_VECTORS: i64 = 8;

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

/// How many vectors one batch holds within maintenance_work_mem, and within one WAL record
/// when the server logs its changes (a vector, its key and its filter values).
pub(super) fn batch_limit(
    metric: Metric,
    dimensions: usize,
    m: usize,
    keep_vectors: bool,
) -> usize {
    // SAFETY: a plain read of a GUC variable on the backend thread.
    let budget = unsafe { pg_sys::maintenance_work_mem } as usize * 1024;
    let limit = budget / hannoy_engine::batch_bytes_per_vector(metric, dimensions, m, keep_vectors);
    let limit = if crate::storage::wal::following() {
        limit.min(crate::storage::wal::MAX_RECORD_BYTES / (metric.vector_bytes(dimensions) + 64))
    } else {
        limit
    };
    limit.max(MIN_BATCH)
}

/// Where a build's batches go.
pub(super) enum BuildTarget {
    /// The relation's own folder: each batch is a change of the index (logged when the server
    /// logs them), shown in pg_stat_progress_create_index.
    Relation,
    /// A folder of its own, written directly: a rebuild's, which puts it in place later
    /// (`am::rebuild`).
    Folder(PathBuf),
}

pub(super) struct BuildState {
    relation: pg_sys::Relation,
    target: BuildTarget,
    description: IndexDescription,
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
    /// Faults in the batch's room ahead of the rows read into it, when builds use more than
    /// one core.
    prefault: Option<threads::Prefaulter>,
    /// How far into the batch's buffer rooms have been queued for it, in bytes.
    prefaulted: usize,
    /// Where a row's values are read, emptied after each row.
    row_memory: RowMemory,
}

/// Bytes of the batch's room faulted in at a time, and how far ahead of the rows read the
/// queued rooms reach: a few huge pages, small beside a batch.
const PREFAULT_STEP: usize = 8 << 20;
const PREFAULT_LEAD: usize = 4 * PREFAULT_STEP;

impl BuildState {
    /// # Safety
    /// `relation` must be an open hannoy index relation, kept open and locked while the state
    /// lives.
    pub(super) unsafe fn new(relation: pg_sys::Relation, target: BuildTarget) -> BuildState {
        BuildState {
            relation,
            target,
            // SAFETY: forwarded from the caller.
            description: unsafe { super::describe(relation) },
            // SAFETY: forwarded from the caller.
            options: unsafe { super::options::read(relation) },
            index: None,
            dimensions: None,
            batch: PreparedVectors::default(),
            keys: Vec::new(),
            rows: Vec::new(),
            batch_limit: MIN_BATCH,
            heap_tuples: 0.0,
            indexed: 0,
            prefault: None,
            prefaulted: 0,
            row_memory: RowMemory::new(c"hannoy build row"),
        }
    }

    fn engine_options(&self, dimensions: usize) -> IndexOptions {
        self.options.for_engine(self.description.metric, dimensions)
    }

    /// Creates the engine for vectors of `dimensions`: at the first vector, or before the scan
    /// when the count is known.
    pub(super) fn open(&mut self, dimensions: usize) {
        let metric = self.description.metric;
        // Bad options fail here, before any work.
        let options = self.engine_options(dimensions);
        options.validate().or_raise();
        self.index = Some(match &self.target {
            // SAFETY: the relation being built, open and locked for the whole build.
            BuildTarget::Relation => unsafe {
                crate::storage::create_engine(self.relation, &options)
            },
            BuildTarget::Folder(folder) => Arc::new(Index::create(folder, &options).or_raise()),
        });
        self.dimensions = Some(dimensions);
        self.batch_limit = batch_limit(
            metric,
            dimensions,
            self.options.m,
            self.options.keep_vectors,
        );
        self.batch = PreparedVectors::with_room(metric, dimensions, self.batch_limit).or_raise();
        self.prefault = threads::Prefaulter::new();
        self.prefaulted = 0;
    }

    /// Queues the batch's room up to `PREFAULT_LEAD` past the rows read so far.
    fn prefault_ahead(&mut self) {
        let Some(prefault) = &self.prefault else {
            return;
        };
        while self.prefaulted < self.batch.filled_bytes() + PREFAULT_LEAD {
            let room = self.batch.room(self.prefaulted, PREFAULT_STEP);
            if room.is_empty() {
                return; // the whole room is queued
            }
            prefault.fault_in(room);
            self.prefaulted += PREFAULT_STEP;
        }
    }

    fn add(&mut self, vector: OwnedVector, key: u64, row: Option<FilterRow>) {
        let dimensions = vector.dimensions();
        if self.index.is_none() {
            self.open(dimensions);
        }
        let expected = self.dimensions.unwrap_or(dimensions);
        if expected != dimensions {
            raise_engine(hannoy_engine::Error::DimensionMismatch {
                expected,
                got: dimensions,
            });
        }
        self.batch
            .push(self.description.metric, dimensions, vector.as_ref())
            .or_raise();
        self.keys.push(key);
        self.rows.extend(row);
        self.prefault_ahead();
        if self.batch.len() >= self.batch_limit {
            self.flush();
        }
    }

    /// Reads every row of `heap` there is into the engine and writes the last batch.
    ///
    /// # Safety
    /// `heap` must be the index's table, open and locked, and `index_info` the index's.
    pub(super) unsafe fn scan(
        &mut self,
        heap: pg_sys::Relation,
        index_info: *mut pg_sys::IndexInfo,
    ) {
        // A build holds a lock that keeps writers out; a rebuild runs while they go on (on a
        // standby, while replay does), so it reads rows whose insert or delete is still in
        // progress as they are, as BRIN's summarising scan does, instead of warning that
        // another transaction is at work.
        let concurrent = matches!(self.target, BuildTarget::Folder(_));
        // SAFETY: forwarded from the caller; the callback gets this state back, on this thread.
        unsafe {
            pg_sys::table_index_build_range_scan(
                heap,
                self.relation,
                index_info,
                true,
                concurrent,
                // Blocks scanned show in pg_stat_progress_create_index, which only a build has.
                !concurrent,
                0,
                pg_sys::InvalidBlockNumber,
                Some(build_callback),
                std::ptr::from_mut(self).cast(),
                std::ptr::null_mut(),
            )
        };
        self.flush();
    }

    /// The engine built, `None` when no vector was seen and no dimension count given.
    pub(super) fn into_index(self) -> Option<Arc<Index>> {
        self.index
    }

    fn flush(&mut self) {
        let (Some(index), Some(dimensions)) = (self.index.clone(), self.dimensions) else {
            return;
        };
        if self.batch.is_empty() {
            return;
        }
        if let Some(prefault) = &self.prefault {
            prefault.wait();
        }
        let change = Change::Insert(InsertRows {
            options: self.engine_options(dimensions),
            vectors: Cow::Borrowed(&self.batch),
            keys: Cow::Borrowed(&self.keys),
            rows: Cow::Borrowed(&self.rows),
            log_position: None,
        });
        index.reserve(change.added()).or_raise();
        match self.target {
            BuildTarget::Relation => self.write_change(&index, &change),
            BuildTarget::Folder(_) => {
                stage(&index, &self.batch);
                threads::write(&index, |writer, cancel| change.apply(writer, cancel))
            }
        }
        self.indexed += self.batch.len() as u64;
        self.batch.clear();
        self.keys.clear();
        self.rows.clear();
        if let BuildTarget::Relation = self.target {
            report_tuples_done(self.indexed);
            report_phase(PHASE_READING);
        }
    }

    /// Writes one batch into the relation's folder as a change of the index, its passes shown
    /// in pg_stat_progress_create_index.
    fn write_change(&self, index: &Index, change: &Change<'_>) {
        let (before, len) = (self.indexed, change.added() as u64);
        // Rows count as done halfway through the batch's two searches when it is linked into
        // earlier batches, through its one search otherwise.
        let searches = if before == 0 { 1 } else { 2 };
        let _phase = crate::pg::phase::enter(c"hannoy: build");
        // SAFETY: the relation being built, open and locked for the whole build; `index` is
        // its engine.
        let stamp = unsafe { crate::storage::begin_change(self.relation, index, change) }
            .unwrap_or_else(|unusable| unsafe { unusable.raise(self.relation) });
        report_phase(PHASE_STORE_VECTORS);
        stage(index, &self.batch);
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
    }
}

/// Writes the batch's vectors into the index ahead of its change, so that the change's
/// transaction does not hold them a second time (`Index::stage_vectors`): a batch's size
/// counts them once.
fn stage(index: &Index, batch: &PreparedVectors) {
    index.stage_vectors(batch).or_raise();
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
        let metric = super::describe(index).metric;
        crate::storage::create(index);
        report_phase(PHASE_READING);
        let reltuples = (*(*heap).rd_rel).reltuples;
        if reltuples > 0.0 {
            pg_sys::pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL, reltuples as i64);
        }
        let mut state = BuildState::new(index, BuildTarget::Relation);
        state.scan(heap, index_info);
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
    // SAFETY: `state` is the BuildState `BuildState::scan` passed; `values`/`isnull`
    // hold one entry per index column and `tid` points at the row's TID, all for this call.
    unsafe {
        let state = &mut *state.cast::<BuildState>();
        state.heap_tuples += 1.0;
        let description = state.description;
        // The vector and filter values are read into Rust-owned memory.
        let read = state
            .row_memory
            .read(|| description.read_row(values, isnull));
        if let Some((vector, row)) = read {
            state.add(vector, crate::pg::tid::tid_key(&*tid), row);
        }
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
        PHASE_STORE_VECTORS => c"storing a batch's vectors".as_ptr().cast_mut(),
        _ => std::ptr::null_mut(),
    }
}
