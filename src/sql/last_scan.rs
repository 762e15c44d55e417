//! `hannoy_last_scan()`: what the last hannoy index scan of this session did, the figures a
//! benchmark reports beside q/s (the access method cannot add lines to EXPLAIN).

use pgrx::prelude::*;

/// One row for the last index scan this session ended: the rows it returned and the distances
/// it computed; no row before the first.
#[pg_extern]
fn hannoy_last_scan() -> TableIterator<'static, (name!(rows, i64), name!(distances, i64))> {
    TableIterator::new(
        crate::am::scan::last_scan().map(|figures| (figures.rows as i64, figures.distances as i64)),
    )
}
