//! Rows a transaction inserted that are not linked into the graph yet.
//!
//! Linking one row at a time costs a write transaction, an fsync and a graph search per row, and
//! serializes writers on the LMDB write lock. `aminsert` therefore only checks each vector and
//! queues it here; the queue of an index is linked as one parallel batch when the transaction
//! commits (before its commit record, so a committed row is always in the index), when a scan of
//! that index in this transaction needs to see it, or when it outgrows maintenance_work_mem.
//! Rows of an aborted transaction are dropped with the queue; those already linked are
//! invisible to scans and leave with VACUUM, like any dead row.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hannoy_engine::{Index, PreparedVectors};
use pgrx::prelude::*;

use crate::storage::lifecycle;
use crate::threads;

struct Queue {
    dir: PathBuf,
    index: Arc<Index>,
    vectors: PreparedVectors,
    keys: Vec<u64>,
    /// Rows after which the queue is linked even though the transaction goes on.
    limit: usize,
}

thread_local! {
    static QUEUES: RefCell<Vec<Queue>> = const { RefCell::new(Vec::new()) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Queues one checked vector (a batch of one) for the index stored in `dir`.
pub fn push(dir: &Path, index: &Arc<Index>, vector: PreparedVectors, key: u64, limit: usize) {
    if !REGISTERED.replace(true) {
        // SAFETY: registers a plain C callback once per backend; it stays valid for its life.
        unsafe { pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut()) };
    }
    let full = QUEUES.with(|queues| {
        let mut queues = queues.borrow_mut();
        let position = match queues.iter().position(|q| q.dir == dir) {
            Some(position) => {
                let queue = &mut queues[position];
                // Both were checked against this index's dimensions, so they always match.
                queue.vectors.append(&vector).expect("vectors of one index");
                queue.keys.push(key);
                position
            }
            None => {
                queues.push(Queue {
                    dir: dir.to_path_buf(),
                    index: Arc::clone(index),
                    vectors: vector,
                    keys: vec![key],
                    limit: limit.max(1),
                });
                queues.len() - 1
            }
        };
        queues[position].keys.len() >= queues[position].limit
    });
    if full {
        flush(dir);
    }
}

/// Links the queued rows of the index stored in `dir`, so that this transaction's scans see them.
pub fn flush(dir: &Path) {
    let queue = QUEUES.with(|queues| {
        let mut queues = queues.borrow_mut();
        let position = queues.iter().position(|q| q.dir == dir)?;
        Some(queues.swap_remove(position))
    });
    if let Some(queue) = queue {
        link(queue);
    }
}

fn flush_all() {
    // Taken out first: an error while linking aborts the transaction, and with it the rest.
    let queues = QUEUES.with(|queues| std::mem::take(&mut *queues.borrow_mut()));
    for queue in queues {
        link(queue);
    }
}

fn link(mut queue: Queue) {
    // An index dropped, truncated or rebuilt later in this transaction has new storage or none:
    // its old folder goes at commit, or went with an aborted subtransaction.
    if lifecycle::doomed_at_commit(&queue.dir) || !queue.dir.exists() {
        return;
    }
    keep_last_of_each_key(&mut queue);
    // The index entries must never outlive a lost heap insert: after a crash the TIDs could be
    // reused by other rows. Making this transaction's WAL durable first rules that out. Its
    // last record's end covers every heap insert it made (the global insert position can point
    // past a page header no record reached yet, which XLogFlush refuses).
    // SAFETY: a WAL flush up to a position this backend has written, on the backend thread.
    unsafe { pg_sys::XLogFlush(pg_sys::XactLastRecEnd) };
    let (vectors, keys) = (&queue.vectors, &queue.keys);
    threads::write(&queue.index, |writer, cancel| {
        writer.insert_keyed(vectors, keys, cancel)
    });
}

/// A TID can only come back within one transaction if its first row's slot was freed, so the
/// later row is the one the heap holds.
fn keep_last_of_each_key(queue: &mut Queue) {
    let mut seen = std::collections::HashSet::with_capacity(queue.keys.len());
    let mut keep: Vec<bool> = queue.keys.iter().rev().map(|&k| seen.insert(k)).collect();
    if keep.iter().all(|&k| k) {
        return;
    }
    keep.reverse();
    queue.vectors.retain(|i| keep[i]);
    let mut i = 0;
    queue.keys.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    match event {
        // Before the commit (or prepare) record: an error here still aborts the transaction.
        XACT_EVENT_PRE_COMMIT | XACT_EVENT_PRE_PREPARE => flush_all(),
        XACT_EVENT_ABORT | XACT_EVENT_COMMIT | XACT_EVENT_PREPARE => {
            QUEUES.with(|queues| queues.borrow_mut().clear())
        }
        _ => {}
    }
}
