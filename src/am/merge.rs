//! Merging the pending list (see `storage::pending_list`) into the engine.
//!
//! Linking one row at a time costs a write transaction, an fsync and a graph search per row, and
//! serializes writers on the LMDB write lock. `aminsert` therefore only checks each vector and
//! appends it to the list in the index's own WAL-logged pages; once the list outgrows
//! hannoy.pending_list_limit, the inserting backend links it into the graph as one parallel
//! batch. VACUUM, `hannoy_index_info` and `hannoy_index_check` merge it whole first.

use pgrx::pg_sys;

use std::sync::Arc;

use crate::pg::error::OrRaise;
use crate::storage::pending_list::{self, ListState, PendingEntry, Walk};
use crate::storage::{self, Snapshot, Unusable};
use std::borrow::Cow;

use hannoy_engine::{Change, FilterRow, InsertRows};

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
        // Every writer and reader of the figures comes through here first (inserts, VACUUM,
        // hannoy_index_info and _check): a folder a busy base backup copied is rebuilt before
        // any of them finds it unusable.
        super::rebuild::if_waiting(index);
        // A standby's list is merged by replaying the primary's merges.
        if pg_sys::RecoveryInProgress() {
            return Ok(());
        }
        if !storage::lock_writes(index, wait == Wait::Yes) {
            return Ok(());
        }
        let merged = merge_locked(index);
        storage::unlock_writes(index);
        merged
    }
}

/// Bytes of pending entries one round of a merge links: a list longer than this (its limit is
/// the user's to set) is merged in rounds, each cut before the next is read, and each one WAL
/// record when the server logs its changes.
fn round_bytes() -> usize {
    // SAFETY: a plain read of a GUC variable on the backend thread.
    let budget = unsafe { pg_sys::maintenance_work_mem } as usize * 1024 / 4;
    let budget = if storage::wal::following() {
        budget.min(storage::wal::MAX_RECORD_BYTES)
    } else {
        budget
    };
    budget.max(1 << 20)
}

/// # Safety
/// As `merge`, holding its lock.
unsafe fn merge_locked(index: pg_sys::Relation) -> Result<(), Unusable> {
    let _phase = crate::pg::phase::enter(c"hannoy: merge");
    // SAFETY: forwarded from the caller.
    unsafe {
        let budget = round_bytes();
        let mut until = None;
        loop {
            let mut batch = Vec::new();
            let mut bytes = 0;
            let mut rolled_back = RolledBack::default();
            let Snapshot { reader, list } = storage::snapshot(index, |entry| {
                if !rolled_back.check(entry.xid) {
                    bytes += entry.size();
                    batch.push(entry.to_owned());
                }
                if bytes >= budget {
                    Walk::Stop
                } else {
                    Walk::Go
                }
            })?;
            // Only its log position was needed: a snapshot left open would keep the map from
            // growing.
            let engine = reader.map(|reader| Arc::clone(reader.index()));
            if !batch.is_empty() {
                link(index, engine, &batch, &list)?;
            }
            pending_list::cut(index, list.reached);
            // Rows appended while this merge runs are the next one's.
            let until = *until.get_or_insert(list.end_seq);
            if list.reached >= until {
                return Ok(());
            }
        }
    }
}

/// Links one round's entries into the engine, recording that the list is merged up to
/// `list.reached`.
///
/// # Safety
/// As `merge`, holding its lock.
unsafe fn link(
    index: pg_sys::Relation,
    engine: Option<Arc<hannoy_engine::Index>>,
    batch: &[PendingEntry],
    list: &ListState,
) -> Result<(), Unusable> {
    // SAFETY: forwarded from the caller.
    unsafe {
        // An index entry must never outlive a lost heap insert: after a crash the TIDs could be
        // reused by other rows. Every heap insert came before its list append, and the
        // metapage's LSN is at or after the last append.
        pg_sys::XLogFlush(list.lsn);
        let super::IndexDescription { layout, metric, .. } = super::describe(index);
        let options = super::options::read(index).for_engine(metric, list.dimensions as usize);
        let engine = engine.unwrap_or_else(|| storage::create_engine(index, &options));
        let kept = last_of_each_key(batch);
        let vectors: Vec<&[u8]> = kept.iter().map(|e| e.vector.as_slice()).collect();
        let keys: Vec<u64> = kept.iter().map(|e| e.key).collect();
        let rows = if layout.has_filters() {
            let rows = kept.iter().map(|e| FilterRow::from_bytes(&e.filters));
            rows.collect::<hannoy_engine::Result<Vec<_>>>().or_raise()
        } else {
            Vec::new()
        };
        let prepared = hannoy_engine::PreparedVectors::from_stored(
            metric.vector_bytes(list.dimensions as usize),
            vectors,
        )
        .or_raise();
        // A merge that committed but crashed before its cut left its entries in the list: the
        // log position makes the change skip them.
        let change = Change::Insert(InsertRows {
            options,
            vectors: Cow::Owned(prepared),
            keys: Cow::Owned(keys),
            rows: Cow::Owned(rows),
            log_position: Some(list.reached),
        });
        storage::change(index, &engine, &change)?;
        // LMDB reuses the pages a commit frees only two commits later: without this, merges
        // one after another (a large INSERT) each grow the file by what the previous one freed.
        engine.release_freed_pages().or_raise();
        Ok(())
    }
}

/// Which transactions of a merge's entries rolled back, looked up once per transaction: a
/// large INSERT's entries all carry one id.
#[derive(Default)]
struct RolledBack(std::collections::HashMap<pg_sys::TransactionId, bool>);

impl RolledBack {
    fn check(&mut self, xid: pg_sys::TransactionId) -> bool {
        *self
            .0
            .entry(xid)
            .or_insert_with(|| pending_list::rolled_back(xid))
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
