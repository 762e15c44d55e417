//! amcostestimate: a hannoy scan is only worth planning for ORDER BY distance; its cost is the
//! distance computations of one graph walk, all paid before the first row.

use pgrx::prelude::*;

use crate::guc;

/// Below this many items the engine scans exactly (hannoy_engine::EXACT_BELOW).
const EXACT_BELOW: f64 = hannoy_engine::EXACT_BELOW as f64;

/// Distance computations of a walk with candidate list `ef` over `n` items with `m` links per
/// node: about ef × 2m on layer 0 (the measured visit count is 1.4 times that, from revisits
/// and the entry descent), never more than an exact scan.
fn distance_computations(n: f64, ef: f64, m: f64) -> f64 {
    if n < EXACT_BELOW {
        return n.max(1.0);
    }
    (1.4 * ef * 2.0 * m + m * n.log2()).min(n)
}

#[allow(clippy::too_many_arguments)]
#[pg_guard]
pub unsafe extern "C-unwind" fn amcostestimate(
    root: *mut pg_sys::PlannerInfo,
    path: *mut pg_sys::IndexPath,
    loop_count: f64,
    startup_cost: *mut pg_sys::Cost,
    total_cost: *mut pg_sys::Cost,
    selectivity: *mut pg_sys::Selectivity,
    correlation: *mut f64,
    pages: *mut f64,
) {
    // SAFETY: the planner passes valid pointers for the outputs and a path whose indexinfo
    // describes an index it holds a lock on.
    unsafe {
        // Without ORDER BY the index cannot answer anything; on a standby it has no storage.
        if (*path).indexorderbys.is_null() || pg_sys::RecoveryInProgress() {
            *startup_cost = f64::INFINITY;
            *total_cost = f64::INFINITY;
            *selectivity = 0.0;
            *correlation = 0.0;
            *pages = 0.0;
            return;
        }
        let info = (*path).indexinfo;
        let index = pg_sys::index_open((*info).indexoid, pg_sys::NoLock as pg_sys::LOCKMODE);
        let (m, _) = super::options::read(index);
        pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);

        let mut costs = pg_sys::GenericCosts {
            numIndexTuples: distance_computations(
                (*info).tuples.max(1.0),
                guc::ef_search() as f64,
                m as f64,
            ),
            ..Default::default()
        };
        pg_sys::genericcostestimate(root, path, loop_count, &mut costs);
        // The whole walk happens before the first row comes out.
        *startup_cost = costs.indexTotalCost;
        *total_cost = costs.indexTotalCost;
        *selectivity = costs.indexSelectivity;
        *correlation = costs.indexCorrelation;
        *pages = costs.numIndexPages;
    }
}
