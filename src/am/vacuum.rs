//! VACUUM: items whose heap rows are dead are deleted from the engine (which repairs their
//! neighbours' links) and the deletion is durable before the heap reuses their TIDs.
//!
//! VACUUM never fails because of the index's folder: a folder that cannot serve the index (see
//! `storage::identity`) gets the index marked as needing REINDEX, with one WARNING per VACUUM,
//! and the heap is cleaned all the same. The marked index answers no scan, so the TIDs the heap
//! then reuses can never come back through its stale items.

use std::borrow::Cow;

use hannoy_engine::Change;
use pgrx::prelude::*;

use super::merge::{self, Wait};
use crate::pg::error::OrRaise;
use crate::storage::{self, Unusable};

/// Keys one delete change holds at most: 64 MB in its WAL record.
const DELETE_KEYS_PER_CHANGE: usize = 8 << 20;

#[pg_guard]
pub unsafe extern "C-unwind" fn ambulkdelete(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
    callback: pg_sys::IndexBulkDeleteCallback,
    callback_state: *mut std::ffi::c_void,
) -> *mut pg_sys::IndexBulkDeleteResult {
    // SAFETY: Postgres passes valid vacuum info; `stats` is NULL or ours from an earlier pass;
    // the callback is called on this thread with a TID that lives for the call.
    unsafe {
        let stats = stats_or_new(stats);
        let index = (*info).index;
        if let Err(unusable) = bulk_delete(index, stats, callback, callback_state) {
            storage::set_aside(index, &unusable);
            (*stats).estimated_count = true;
            (*stats).num_index_tuples = (*info).num_heap_tuples;
        }
        stats
    }
}

/// # Safety
/// As `ambulkdelete`.
unsafe fn bulk_delete(
    index: pg_sys::Relation,
    stats: *mut pg_sys::IndexBulkDeleteResult,
    callback: pg_sys::IndexBulkDeleteCallback,
    callback_state: *mut std::ffi::c_void,
) -> Result<(), Unusable> {
    // SAFETY: forwarded from the caller.
    unsafe {
        // Dead rows may still wait in the pending list: link it first, then delete from one place.
        merge::merge(index, Wait::Yes)?;
        let (Some(engine), Some(callback)) = (storage::open(index)?, callback) else {
            return Ok(());
        };
        let mut dead = Vec::new();
        let mut tid = pg_sys::ItemPointerData::default();
        let keys: Vec<(u32, u64)> = {
            let reader = engine.read().or_raise();
            reader
                .keys()
                .or_raise()
                .collect::<Result<_, _>>()
                .or_raise()
        };
        for (i, (_, key)) in keys.iter().enumerate() {
            if i % 1024 == 0 {
                pgrx::check_for_interrupts!();
            }
            crate::pg::tid::key_tid(*key, &mut tid);
            if callback(&mut tid, callback_state) {
                dead.push(*key);
            }
        }
        if !dead.is_empty() {
            let _phase = crate::pg::phase::enter(c"hannoy: vacuum delete");
            // Each change is one WAL record: a delete of tens of millions of rows goes in parts.
            for part in dead.chunks(DELETE_KEYS_PER_CHANGE) {
                let change = Change::Delete {
                    keys: Cow::Borrowed(part),
                };
                storage::change(index, &engine, &change)?;
            }
        }
        (*stats).tuples_removed += dead.len() as f64;
        (*stats).num_index_tuples = (keys.len() - dead.len()) as f64;
        Ok(())
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amvacuumcleanup(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
) -> *mut pg_sys::IndexBulkDeleteResult {
    // SAFETY: as in ambulkdelete.
    unsafe {
        if (*info).analyze_only {
            return stats;
        }
        // A delete already reconnected what it cut off; otherwise this is where single-row
        // inserts, whose pruning can take a node's last in-link, get their graph mended.
        let deleted = !stats.is_null() && (*stats).tuples_removed > 0.0;
        let bulk_deleted = !stats.is_null();
        let stats = stats_or_new(stats);
        let index = (*info).index;
        match cleanup(index, stats, deleted) {
            Ok(()) => {}
            // ambulkdelete warned about it in this VACUUM already.
            Err(Unusable::Marked) if bulk_deleted => {}
            Err(unusable) => {
                storage::set_aside(index, &unusable);
                (*stats).estimated_count = true;
                (*stats).num_index_tuples = (*info).num_heap_tuples;
            }
        }
        stats
    }
}

/// # Safety
/// As `amvacuumcleanup`.
unsafe fn cleanup(
    index: pg_sys::Relation,
    stats: *mut pg_sys::IndexBulkDeleteResult,
    deleted: bool,
) -> Result<(), Unusable> {
    // SAFETY: forwarded from the caller.
    unsafe {
        (*stats).num_pages =
            pg_sys::RelationGetNumberOfBlocksInFork(index, pg_sys::ForkNumber::MAIN_FORKNUM);
        // As GIN does: VACUUM and autovacuum leave no pending list behind, even with no deletes.
        merge::merge(index, Wait::Yes)?;
        let Some(engine) = storage::open(index)? else {
            return Ok(());
        };
        if deleted {
            engine.release_freed_pages().or_raise();
        } else {
            let _phase = crate::pg::phase::enter(c"hannoy: reconnect");
            storage::change(index, &engine, &Change::Reconnect)?;
        }
        let info = engine.info().or_raise();
        (*stats).num_index_tuples = info.len as f64;
        // In Postgres pages, for VACUUM VERBOSE and pg_class: the relation's and the folder's.
        (*stats).num_pages += (info.file_bytes / pg_sys::BLCKSZ as u64) as pg_sys::BlockNumber;
        Ok(())
    }
}

/// The stats of an earlier pass, or new zeroed ones (palloc'd in the current context).
fn stats_or_new(stats: *mut pg_sys::IndexBulkDeleteResult) -> *mut pg_sys::IndexBulkDeleteResult {
    if stats.is_null() {
        // SAFETY: a zeroed palloc of a plain C struct, on the backend thread.
        unsafe { PgBox::<pg_sys::IndexBulkDeleteResult>::alloc0() }.into_pg()
    } else {
        stats
    }
}
