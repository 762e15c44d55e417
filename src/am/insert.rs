//! aminsert: checks the row's vector now, so a bad one fails its own statement, and queues it
//! for linking with the rest of the transaction's rows (see `pending`).

use hannoy_engine::IndexOptions;
use pgrx::prelude::*;

use super::pending;
use crate::error::OrRaise;

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
        let prepared = engine.prepare([vector.as_ref()]).or_raise();
        let limit = super::build::batch_limit(metric, vector.dimensions(), options.m);
        pending::push(&dir, &engine, prepared, super::tid_key(&*heap_tid), limit);
    }
    false
}
