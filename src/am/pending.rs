//! Merging the pending list (see `storage::pending_list`) into the engine.
//!
//! Linking one row at a time costs a write transaction, an fsync and a graph search per row, and
//! serializes writers on the LMDB write lock. `aminsert` therefore only checks each vector and
//! appends it to the list in the index's own WAL-logged pages; once the list outgrows
//! hannoy.pending_list_limit, the inserting backend links it into the graph as one parallel
//! batch. VACUUM, `hannoy_index_info` and `hannoy_index_check` merge it whole first.

use pgrx::pg_sys;

use std::sync::Arc;

use crate::error::OrRaise;
use crate::storage::pending_list::{self, PendingEntry};
use crate::storage::{self, Snapshot, Unusable};
use hannoy_engine::FilterRow;

/// Whether a merge waits for one already running, or leaves the list to it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Yes,
    No,
}

/// Links the pending list into the engine and frees its pages. An unusable folder (see
/// `storage::identity`) is the caller's to report.
///
/// # Safety
/// `index` must be an open hannoy index relation.
pub unsafe fn merge(index: pg_sys::Relation, wait: Wait) -> Result<(), Unusable> {
    // SAFETY: forwarded from the caller; the write lock is released below or at transaction end.
    unsafe {
        if !storage::lock_writes(index, wait == Wait::Yes) {
            return Ok(());
        }
        let merged = merge_locked(index);
        storage::unlock_writes(index);
        merged
    }
}

/// # Safety
/// As `merge`, holding its lock.
unsafe fn merge_locked(index: pg_sys::Relation) -> Result<(), Unusable> {
    // SAFETY: forwarded from the caller.
    unsafe {
        let Snapshot { reader, pending } = storage::snapshot(index)?;
        // Only its log position was needed: a snapshot left open would keep the map from growing.
        let engine = reader.map(|reader| Arc::clone(reader.index()));
        if pending.entries.is_empty() {
            pending_list::cut(index, pending.end_seq);
            return Ok(());
        }
        // An index entry must never outlive a lost heap insert: after a crash the TIDs could be
        // reused by other rows. Every heap insert came before its list append, and the
        // metapage's LSN is at or after the last append.
        pg_sys::XLogFlush(pending.lsn);
        let layout = crate::filter::IndexLayout::of(index);
        let (metric, _) = super::column_metric(index, &layout);
        let mut options = hannoy_engine::IndexOptions::new(metric, pending.dimensions as usize);
        (options.m, options.ef_construction) = super::options::read(index);
        let engine = engine.unwrap_or_else(|| storage::create_engine(index, &options));
        let kept = last_of_each_key(&pending.entries);
        let vectors: Vec<&[u8]> = kept.iter().map(|e| e.vector.as_slice()).collect();
        let keys: Vec<u64> = kept.iter().map(|e| e.key).collect();
        let rows = if layout.has_filters() {
            let rows = kept.iter().map(|e| FilterRow::from_bytes(&e.filters));
            rows.collect::<hannoy_engine::Result<Vec<_>>>().or_raise()
        } else {
            Vec::new()
        };
        let prepared = hannoy_engine::PreparedVectors::from_stored(
            metric.vector_bytes(pending.dimensions as usize),
            vectors,
        )
        .or_raise();
        let end = pending.end_seq;
        storage::change(index, &engine, |writer, cancel| {
            // A merge that committed but crashed before its cut left its entries in the list.
            if writer.log_position()? < end {
                if rows.is_empty() {
                    writer.insert_keyed(&prepared, &keys, cancel)?;
                } else {
                    writer.insert_keyed_with_filters(&prepared, &keys, &rows, cancel)?;
                }
                writer.set_log_position(end)?;
            }
            Ok(())
        })?;
        // LMDB reuses the pages a commit frees only two commits later: without this, merges
        // one after another (a large INSERT) each grow the file by what the previous one freed.
        engine.release_freed_pages().or_raise();
        pending_list::cut(index, end);
        Ok(())
    }
}

/// A TID can only come back if its first row's slot was freed, so the later row is the one the
/// heap holds. Entries are in sequence order.
fn last_of_each_key(entries: &[PendingEntry]) -> Vec<&PendingEntry> {
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    let mut kept: Vec<&PendingEntry> = entries
        .iter()
        .rev()
        .filter(|e| seen.insert(e.key))
        .collect();
    kept.reverse();
    kept
}
