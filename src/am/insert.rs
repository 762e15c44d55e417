//! aminsert: checks the row's vector now, so a bad one fails its own statement, and appends it
//! with its filter values to the index's pending list (see `pending`), merging the list once
//! it is full.

use hannoy_engine::PreparedVectors;
use pgrx::prelude::*;

use super::merge::{self, Wait};
use crate::pg::error::OrRaise;
use crate::pg::memory::RowMemory;
use crate::storage::pending_list;

#[allow(clippy::too_many_arguments)]
#[pg_guard]
pub unsafe extern "C-unwind" fn aminsert(
    index: pg_sys::Relation,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    heap_tid: pg_sys::ItemPointer,
    _heap: pg_sys::Relation,
    _check_unique: pg_sys::IndexUniqueCheck::Type,
    _index_unchanged: bool,
    _index_info: *mut pg_sys::IndexInfo,
) -> bool {
    // SAFETY: Postgres passes an open index, one value per column and the row's TID.
    unsafe {
        let description = super::describe(index);
        // The vector and filter values are read into Rust-owned memory.
        let read =
            RowMemory::new(c"hannoy insert row").read(|| description.read_row(values, isnull));
        let Some((vector, row)) = read else {
            return false;
        };
        // The dimension count is checked against the index's in `append`, under its lock.
        let dimensions = vector.dimensions();
        let prepared =
            PreparedVectors::new(description.metric, dimensions, [vector.as_ref()]).or_raise();
        let stored = prepared.stored(0);
        let filters = row.map_or_else(Vec::new, |row| {
            row.validate().or_raise();
            row.to_bytes()
        });
        let key = crate::pg::tid::tid_key(&*heap_tid);
        let pending = {
            let _phase = crate::pg::phase::enter(c"hannoy: append");
            pending_list::append(index, key, stored, &filters, dimensions as u32)
        };
        let limit = crate::pg::guc::pending_list_limit_bytes();
        if pending as usize * pending_list::entry_bytes(stored.len(), filters.len()) >= limit {
            // An insert never fails because of the folder: the index is set aside for REINDEX,
            // which reads every row from the heap, and the row stays in the table.
            if let Err(unusable) = merge::merge(index, Wait::No) {
                crate::storage::set_aside(index, &unusable);
            }
        }
    }
    false
}
