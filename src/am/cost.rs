//! amcostestimate: a hannoy scan is only worth planning for ORDER BY distance. Its cost is the
//! distance computations of one search inside the filter, all paid before the first row: an
//! exact scan of the allowed rows when the filter leaves few, a graph walk that widens as the
//! filter narrows otherwise (the engine's own choice, `hannoy_engine::estimated_distances`).
//!
//! The cost is computed here rather than by genericcostestimate, which would charge an IN list
//! once per element, as a btree scans it; hannoy turns the whole list into one bitmap.

use pgrx::prelude::*;

use crate::pg::guc;

/// What a scan costs in a plan, in the planner's units.
struct ScanCost {
    total: f64,
    /// Fraction of the table's rows the scan can return: its filter's selectivity.
    selectivity: f64,
}

#[allow(clippy::too_many_arguments)]
#[pg_guard]
pub unsafe extern "C-unwind" fn amcostestimate(
    root: *mut pg_sys::PlannerInfo,
    path: *mut pg_sys::IndexPath,
    _loop_count: f64,
    startup_cost: *mut pg_sys::Cost,
    total_cost: *mut pg_sys::Cost,
    selectivity: *mut pg_sys::Selectivity,
    correlation: *mut f64,
    pages: *mut f64,
) {
    // SAFETY: the planner passes valid pointers for the outputs and a path whose indexinfo
    // describes an index it holds a lock on.
    unsafe {
        let info = (*path).indexinfo;
        let cost = scan_cost(root, path).unwrap_or(ScanCost {
            total: f64::INFINITY,
            selectivity: 0.0,
        });
        // The whole search happens before the first row comes out.
        *startup_cost = cost.total;
        *total_cost = cost.total;
        *selectivity = cost.selectivity;
        // Rows come in distance order, unrelated to where they lie in the heap.
        *correlation = 0.0;
        *pages = (*info).pages as f64;
    }
}

/// The cost of the path, `None` if hannoy cannot or should not answer it.
///
/// # Safety
/// As `amcostestimate`.
unsafe fn scan_cost(
    root: *mut pg_sys::PlannerInfo,
    path: *mut pg_sys::IndexPath,
) -> Option<ScanCost> {
    // SAFETY: forwarded; the index is locked by the planner, and the clause lists are nodes of
    // the path.
    unsafe {
        // Without ORDER BY the index cannot answer anything; on a standby its storage is there
        // only when it follows the WAL.
        if (*path).indexorderbys.is_null()
            || (pg_sys::RecoveryInProgress() && !crate::storage::readable_in_recovery())
        {
            return None;
        }
        let info = (*path).indexinfo;
        let index = pg_sys::index_open((*info).indexoid, pg_sys::NoLock as pg_sys::LOCKMODE);
        let super::IndexDescription { layout, metric, .. } = super::describe(index);
        let options = super::options::read(index);
        let (m, coded) = (options.m, options.quantization.codes_likely(metric));
        pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);
        if asks_for_null_vectors(path, layout.vector_column) {
            return None;
        }

        let quals = pg_sys::get_quals_from_indexclauses((*path).indexclauses);
        let conditions = list_length(quals);
        let selectivity = if conditions == 0 {
            1.0
        } else {
            pg_sys::clauselist_selectivity(
                root,
                quals,
                (*(*info).rel).relid as i32,
                pg_sys::JoinType::JOIN_INNER,
                std::ptr::null_mut(),
            )
        };
        let rows = (*info).tuples.max(1.0);
        let allowed = (selectivity * rows).round().max(0.0);
        let distances = hannoy_engine::estimated_distances(
            allowed as u64,
            rows as u64,
            guc::ef_search(),
            2 * m,
            coded,
        );
        // Opening the snapshot reads a page or two, and each condition its values' bitmaps;
        // a distance costs about what an index tuple does elsewhere.
        let fixed = pg_sys::random_page_cost * (1 + conditions) as f64;
        let per_distance = pg_sys::cpu_index_tuple_cost
            + pg_sys::cpu_operator_cost * list_length((*path).indexorderbys) as f64;
        Some(ScanCost {
            total: fixed + distances * per_distance,
            selectivity,
        })
    }
}

/// Whether a clause asks for rows whose vector is NULL, which hannoy does not index.
///
/// # Safety
/// `path` must be a valid index path.
unsafe fn asks_for_null_vectors(path: *mut pg_sys::IndexPath, vector_column: usize) -> bool {
    // SAFETY: indexclauses is a List of IndexClause nodes, each with its RestrictInfo.
    unsafe {
        let clauses = (*path).indexclauses;
        (0..list_length(clauses)).any(|i| {
            let clause = pg_sys::list_nth(clauses, i as i32).cast::<pg_sys::IndexClause>();
            if (*clause).indexcol as usize != vector_column {
                return false;
            }
            let expr = (*(*clause).rinfo).clause;
            (*expr).type_ == pg_sys::NodeTag::T_NullTest
                && (*expr.cast::<pg_sys::NullTest>()).nulltesttype == pg_sys::NullTestType::IS_NULL
        })
    }
}

fn list_length(list: *mut pg_sys::List) -> usize {
    if list.is_null() {
        0
    } else {
        // SAFETY: a non-NULL List pointer from the planner is a valid List.
        unsafe { (*list).length as usize }
    }
}
