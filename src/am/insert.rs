//! aminsert: one row into the engine, committed before the statement goes on, so a committed
//! row is always in the index.

use hannoy_engine::IndexOptions;
use pgrx::prelude::*;

use crate::threads;

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
        if *isnull {
            return false;
        }
        let (metric, vector_type) = super::column_metric(index);
        let vector = vector_type.read(*values);
        let dir = crate::storage::locate(index);
        let mut options = IndexOptions::new(metric, vector.dimensions());
        (options.m, options.ef_construction) = super::options::read(index);
        let engine = crate::storage::open_or_create(&dir, &options);
        let key = super::tid_key(&*heap_tid);

        // The index entry must never outlive a lost heap insert: after a crash the TID could be
        // reused by another row. Making the WAL that created the row durable first rules it out.
        // This backend wrote that record just now, so its last record's end covers it (the
        // global insert position can point past a page header no record reached yet, which
        // XLogFlush refuses).
        pg_sys::XLogFlush(pg_sys::XactLastRecEnd);
        threads::write(&engine, |writer, cancel| {
            let prepared = writer.prepare([vector.as_ref()])?;
            writer.insert_keyed(&prepared, &[key], cancel)
        });
    }
    false
}
