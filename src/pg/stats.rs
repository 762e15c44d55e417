//! The cumulative statistics an index access method reports itself. Postgres counts the rows a
//! scan returns (`idx_tup_read`) in `index_getnext_tid`; the scans (`idx_scan`, and the
//! `last_idx_scan`-style views built on it) only the access method can count, as btree does in
//! `_bt_first`. Without it `pg_stat_user_indexes` shows a used hannoy index as never scanned.

use pgrx::pg_sys;

/// Counts one scan of `index`, as PostgreSQL 15's `pgstat_count_index_scan` macro does.
///
/// # Safety
/// `index` must be an open relation.
pub unsafe fn count_index_scan(index: pg_sys::Relation) {
    // SAFETY: an open relation's pgstat fields are valid; pgstat_assoc_relation sets
    // pgstat_info to this backend's pending entry for the relation (the macro
    // pgstat_should_count_relation does the same).
    unsafe {
        if (*index).pgstat_info.is_null() {
            if !(*index).pgstat_enabled {
                return;
            }
            pg_sys::pgstat_assoc_relation(index);
        }
        (*(*index).pgstat_info).t_counts.t_numscans += 1;
    }
}
