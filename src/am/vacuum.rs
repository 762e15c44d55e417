//! VACUUM: items whose heap rows are dead are deleted from the engine (which repairs their
//! neighbours' links) and the deletion is durable before the heap reuses their TIDs.

use hannoy_engine::RoaringBitmap;
use pgrx::prelude::*;

use crate::error::OrRaise;
use crate::threads;

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
        // Dead rows may still wait in the pending list: link it first, then delete from one place.
        super::pending::merge((*info).index, super::pending::Wait::Yes);
        let dir = crate::storage::locate((*info).index);
        let (Some(engine), Some(callback)) = (crate::storage::open(&dir), callback) else {
            return stats;
        };
        let mut dead = RoaringBitmap::new();
        let mut tid = pg_sys::ItemPointerData::default();
        let keys: Vec<(u32, u64)> = {
            let reader = engine.read().or_raise();
            reader
                .keys()
                .or_raise()
                .collect::<Result<_, _>>()
                .or_raise()
        };
        for (i, (id, key)) in keys.iter().enumerate() {
            if i % 1024 == 0 {
                pgrx::check_for_interrupts!();
            }
            super::key_tid(*key, &mut tid);
            if callback(&mut tid, callback_state) {
                dead.insert(*id);
            }
        }
        if !dead.is_empty() {
            threads::write(&engine, |writer, cancel| writer.delete(&dead, cancel));
        }
        (*stats).tuples_removed += dead.len() as f64;
        (*stats).num_index_tuples = (keys.len() as u64 - dead.len()) as f64;
        stats
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
        let stats = stats_or_new(stats);
        // As GIN does: VACUUM and autovacuum leave no pending list behind, even with no deletes.
        super::pending::merge((*info).index, super::pending::Wait::Yes);
        let dir = crate::storage::locate((*info).index);
        (*stats).num_pages = pg_sys::RelationGetNumberOfBlocksInFork(
            (*info).index,
            pg_sys::ForkNumber::MAIN_FORKNUM,
        );
        if let Some(engine) = crate::storage::open(&dir) {
            if deleted {
                engine.release_freed_pages().or_raise();
            } else {
                threads::write(&engine, |writer, _| writer.reconnect_unreachable());
            }
            let info = engine.info().or_raise();
            (*stats).num_index_tuples = info.len as f64;
            // In Postgres pages, for VACUUM VERBOSE and pg_class: the relation's and the folder's.
            (*stats).num_pages += (info.file_bytes / pg_sys::BLCKSZ as u64) as pg_sys::BlockNumber;
        }
        stats
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
