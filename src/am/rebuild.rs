//! Rebuilding a folder from the heap on a server restored from a base backup that copied it
//! while it changed (`storage::rebuild` says when and why). Runs in the backend of the first
//! scan of the index, on a hot standby or after recovery: it reads every heap row there is,
//! including those not yet visible or already dead (their entries are harmless, as in the
//! pending list), builds a new environment from them in batches, and hands it to
//! `storage::rebuild::finish`.

use std::borrow::Cow;

use hannoy_engine::{Change, FilterRow, Index, InsertRows, PreparedVectors};
use pgrx::prelude::*;

use crate::pg::error::{raise, OrRaise};
use crate::pg::filter::IndexLayout;
use crate::pg::threads;
use crate::pg::vector::VectorType;
use crate::storage::rebuild::{self, RebuildPoint};

struct RebuildState {
    layout: IndexLayout,
    vector_type: VectorType,
    metric: hannoy_engine::Metric,
    options: super::options::GraphOptions,
    folder: std::path::PathBuf,
    index: Option<Index>,
    batch: PreparedVectors,
    keys: Vec<u64>,
    rows: Vec<FilterRow>,
    batch_limit: usize,
}

impl RebuildState {
    /// Creates the environment, for vectors of `dimensions`.
    fn open(&mut self, dimensions: usize) {
        let options = self.options.for_engine(self.metric, dimensions);
        self.index = Some(Index::create(&self.folder, &options).or_raise());
        self.batch_limit = super::build::batch_limit(self.metric, dimensions, self.options.m);
        self.batch = PreparedVectors::with_room(self.metric, dimensions, 0).or_raise();
    }

    fn add(&mut self, vector: crate::pg::vector::OwnedVector, key: u64, row: Option<FilterRow>) {
        let dimensions = vector.dimensions();
        if self.index.is_none() {
            self.open(dimensions);
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
        let Some(index) = &self.index else { return };
        if self.batch.is_empty() {
            return;
        }
        let options = index.info().or_raise().options;
        let change = Change::Insert(InsertRows {
            options,
            vectors: Cow::Borrowed(&self.batch),
            keys: Cow::Borrowed(&self.keys),
            rows: Cow::Borrowed(&self.rows),
            log_position: None,
        });
        index.reserve(change.added()).or_raise();
        threads::write(index, |writer, cancel| change.apply(writer, cancel));
        self.batch.clear();
        self.keys.clear();
        self.rows.clear();
    }
}

/// Rebuilds `index`'s folder from the heap when it waits for that; returns at once otherwise.
///
/// # Safety
/// `index` must be an open hannoy index relation.
pub unsafe fn if_waiting(index: pg_sys::Relation) {
    // SAFETY: forwarded from the caller.
    let Some(point) = (unsafe { rebuild::waiting(index) }) else {
        return;
    };
    let builder = rebuild::builder_lock(&point).unwrap_or_else(|e| fail(&point, e));
    // Another backend may have rebuilt it while this one waited for the lock.
    // SAFETY: forwarded from the caller.
    let Some(point) = (unsafe { rebuild::waiting(index) }) else {
        return;
    };
    pgrx::log!(
        "hannoy: rebuilding {} from its table: a base backup copied it while it changed",
        point.dir.display()
    );
    // SAFETY: forwarded from the caller.
    let built = unsafe { build_from_heap(index, &point) };
    rebuild::finish(&point, built).unwrap_or_else(|e| fail(&point, e));
    drop(builder);
}

/// Rebuilds `index`'s folder from the heap as a restored server would whose replay position
/// came before the pending list's last `entries_after_point` entries were appended: their rows
/// are then both in the new folder and in the list, as when a row's heap insert comes before
/// that position and its entry after it.
///
/// # Safety
/// As `if_waiting`.
#[cfg(any(test, feature = "pg_test"))]
pub(crate) unsafe fn rebuild_before_last_entries(
    index: pg_sys::Relation,
    entries_after_point: u64,
) {
    // SAFETY: forwarded from the caller.
    let mut point = unsafe { rebuild::point(index) };
    point.log_position -= entries_after_point;
    rebuild::mark_waiting(&point.dir).unwrap_or_else(|e| fail(&point, e));
    // SAFETY: forwarded from the caller.
    let built = unsafe { build_from_heap(index, &point) };
    rebuild::finish(&point, built).unwrap_or_else(|e| fail(&point, e));
}

fn fail(point: &RebuildPoint, why: impl std::fmt::Display) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_IO_ERROR,
        format!(
            "could not rebuild {} from its table: {why}",
            point.dir.display()
        ),
        None,
    )
}

/// # Safety
/// As `if_waiting`.
unsafe fn build_from_heap(index: pg_sys::Relation, point: &RebuildPoint) -> Index {
    let folder = point.build_folder();
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap_or_else(|e| fail(point, e));
    // SAFETY: forwarded from the caller; the heap is opened and closed here under the
    // AccessShareLock a scan holds anyway, and IndexBuildHeapScan calls back on this thread.
    unsafe {
        let super::IndexDescription {
            layout,
            metric,
            vector_type,
        } = super::describe(index);
        let mut state = RebuildState {
            layout,
            vector_type,
            metric,
            options: super::options::read(index),
            folder: folder.clone(),
            index: None,
            batch: PreparedVectors::default(),
            keys: Vec::new(),
            rows: Vec::new(),
            batch_limit: 0,
        };
        if point.dimensions > 0 {
            state.open(point.dimensions);
        }
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        let heap = pg_sys::relation_open((*(*index).rd_index).indrelid, lock);
        let index_info = pg_sys::BuildIndexInfo(index);
        pg_sys::IndexBuildHeapScan(heap, index, index_info, Some(callback), &mut state);
        pg_sys::relation_close(heap, lock);
        state.flush();
        match state.index {
            Some(index) => index,
            None => fail(point, "the index has never held a vector"),
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn callback(
    _index: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    _alive: bool,
    state: *mut std::ffi::c_void,
) {
    // SAFETY: `state` is the RebuildState passed to IndexBuildHeapScan; `values`/`isnull` hold
    // one entry per index column and `tid` the row's TID, all for this call.
    unsafe {
        let state = &mut *state.cast::<RebuildState>();
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
