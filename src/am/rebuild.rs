//! Rebuilding a folder from the heap on a server restored from a base backup that copied it
//! while it changed (`storage::rebuild` says when and why). Runs in the backend of the first
//! scan of the index, on a hot standby or after recovery: it reads every heap row there is,
//! including those not yet visible or already dead (their entries are harmless, as in the
//! pending list), builds a new environment from them in batches, and hands it to
//! `storage::rebuild::finish`.

use std::sync::Arc;

use hannoy_engine::Index;
use pgrx::prelude::*;

use super::build::{BuildState, BuildTarget};
use crate::pg::error::raise;
use crate::storage::rebuild::{self, RebuildPoint};

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
unsafe fn build_from_heap(index: pg_sys::Relation, point: &RebuildPoint) -> Arc<Index> {
    let folder = point.build_folder();
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap_or_else(|e| fail(point, e));
    // SAFETY: forwarded from the caller; the heap is opened and closed here under the
    // AccessShareLock a scan holds anyway.
    unsafe {
        let mut state = BuildState::new(index, BuildTarget::Folder(folder));
        if point.dimensions > 0 {
            state.open(point.dimensions);
        }
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        let heap = pg_sys::relation_open((*(*index).rd_index).indrelid, lock);
        state.scan(heap, pg_sys::BuildIndexInfo(index));
        pg_sys::relation_close(heap, lock);
        state
            .into_index()
            .unwrap_or_else(|| fail(point, "the index has never held a vector"))
    }
}
