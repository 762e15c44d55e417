//! The `hannoy` access method: the callbacks Postgres calls, one phase per file as pgvector
//! splits its C sources, and the routine table that names them.

pub mod build;
pub mod cost;
pub mod insert;
pub mod merge;
pub mod options;
pub mod rebuild;
pub mod scan;
pub mod vacuum;

use std::ffi::CStr;

use hannoy_engine::{FilterRow, Metric};
use pgrx::prelude::*;

use crate::pg::error::raise;
use crate::pg::filter::IndexLayout;
use crate::pg::vector::{OwnedVector, VectorType};

/// The routine table Postgres asks for when it opens a hannoy index (the SQL-visible handler
/// is `crate::sql::handler`).
pub fn routine() -> PgBox<pg_sys::IndexAmRoutine> {
    // SAFETY: alloc_node pallocs a zeroed IndexAmRoutine with its node tag set.
    let mut am =
        unsafe { PgBox::<pg_sys::IndexAmRoutine>::alloc_node(pg_sys::NodeTag::T_IndexAmRoutine) };
    // Operator classes number their strategies freely (see crate::sql::filter_opclasses).
    am.amstrategies = 0;
    // Support function 1: the distance function, which names the metric and marks the vector
    // column; filter columns have none.
    am.amsupport = 1;
    am.amcanorderbyop = true;
    // The vector column and any number of filter columns (see crate::pg::filter).
    am.amcanmulticol = true;
    // A scan with no ORDER BY is costed out (see cost.rs), but must be possible to plan.
    am.amoptionalkey = true;
    // Filter columns answer IN lists / = ANY(array) and IS [NOT] NULL as keys.
    am.amsearcharray = true;
    am.amsearchnulls = true;
    am.amkeytype = pg_sys::InvalidOid;

    am.ambuild = Some(build::ambuild);
    am.ambuildempty = Some(build::ambuildempty);
    am.ambuildphasename = Some(build::ambuildphasename);
    am.aminsert = Some(insert::aminsert);
    am.ambulkdelete = Some(vacuum::ambulkdelete);
    am.amvacuumcleanup = Some(vacuum::amvacuumcleanup);
    am.amcostestimate = Some(cost::amcostestimate);
    am.amoptions = Some(options::amoptions);
    am.amvalidate = Some(amvalidate);
    am.ambeginscan = Some(scan::ambeginscan);
    am.amrescan = Some(scan::amrescan);
    am.amgettuple = Some(scan::amgettuple);
    am.amendscan = Some(scan::amendscan);
    am.into_pg_boxed()
}

/// Operator classes are only created by this extension's script, so there is nothing to check.
#[pg_guard]
unsafe extern "C-unwind" fn amvalidate(_opclass: pg_sys::Oid) -> bool {
    true
}

/// What an index's columns hold: the layout of vector and filter columns, and the vector
/// column's type and metric.
#[derive(Debug, Clone, Copy)]
pub struct IndexDescription {
    pub layout: IndexLayout,
    pub metric: Metric,
    pub vector_type: VectorType,
}

impl IndexDescription {
    /// The vector and filter values of one index row, as `ambuild` and `aminsert` receive it;
    /// `None` for a NULL vector: no distance can find it, so it is left out, as pgvector does.
    ///
    /// # Safety
    /// `values` and `isnull` hold one entry per column of the index described.
    pub unsafe fn read_row(
        &self,
        values: *const pg_sys::Datum,
        isnull: *const bool,
    ) -> Option<(OwnedVector, Option<FilterRow>)> {
        let column = self.layout.vector_column;
        // SAFETY: forwarded from the caller; the vector column is one of the index's.
        unsafe {
            if *isnull.add(column) {
                return None;
            }
            let vector = self.vector_type.read(*values.add(column));
            let row = self
                .layout
                .has_filters()
                .then(|| self.layout.row(values, isnull));
            Some((vector, row))
        }
    }
}

/// The description of an open index, read from the catalogs once per relcache entry: every
/// insert and scan asks for it, and the answer cannot change while the index exists (an
/// index's columns and operator classes are fixed at creation).
///
/// # Safety
/// `index` must be an open hannoy index relation.
pub unsafe fn describe(index: pg_sys::Relation) -> IndexDescription {
    // SAFETY: rd_amcache is either NULL or set below to an IndexDescription allocated in the
    // index's own memory context, which Postgres frees (and resets rd_amcache) together with
    // the relcache entry's index data; IndexDescription is plain Copy data without Drop.
    unsafe {
        let cached = (*index).rd_amcache.cast::<IndexDescription>();
        if !cached.is_null() {
            return cached.read();
        }
        let layout = IndexLayout::of(index);
        let (metric, vector_type) = column_metric(index, &layout);
        let description = IndexDescription {
            layout,
            metric,
            vector_type,
        };
        let slot = pg_sys::MemoryContextAlloc(
            (*index).rd_indexcxt,
            std::mem::size_of::<IndexDescription>(),
        )
        .cast::<IndexDescription>();
        slot.write(description);
        (*index).rd_amcache = slot.cast();
        description
    }
}

/// What the vector column of an index holds and how it is compared: read from the distance
/// function its operator class names as support function 1, by its name (ours and pgvector's
/// share them) and the type of its first argument.
///
/// # Safety
/// `index` must be an open hannoy index relation, `layout` its layout.
unsafe fn column_metric(index: pg_sys::Relation, layout: &IndexLayout) -> (Metric, VectorType) {
    // SAFETY: the vector column's opclass defines support function 1; get_func_name and
    // get_func_signature palloc their answers.
    let (name, argument) = unsafe {
        let attno = (layout.vector_column + 1) as pg_sys::AttrNumber;
        let proc = pg_sys::index_getprocid(index, attno, 1);
        let name = pg_sys::get_func_name(proc);
        let name = if name.is_null() {
            String::new()
        } else {
            CStr::from_ptr(name).to_string_lossy().into_owned()
        };
        let mut arguments = std::ptr::null_mut();
        let mut count = 0;
        if proc != pg_sys::InvalidOid {
            pg_sys::get_func_signature(proc, &mut arguments, &mut count);
        }
        let argument = if count > 0 {
            *arguments
        } else {
            pg_sys::InvalidOid
        };
        (name, argument)
    };
    let metric = match name.as_str() {
        "l2_distance" => Some(Metric::Euclidean),
        "cosine_distance" => Some(Metric::Cosine),
        "negative_inner_product"
        | "vector_negative_inner_product"
        | "halfvec_negative_inner_product" => Some(Metric::InnerProduct),
        "l1_distance" => Some(Metric::Manhattan),
        "hamming_distance" => Some(Metric::Hamming),
        _ => None,
    };
    let vector_type = VectorType::of_sql_type(argument);
    match (metric, vector_type) {
        (Some(Metric::Hamming), Some(VectorType::Bit)) => (Metric::Hamming, VectorType::Bit),
        // A halfvec's values are halves already: stored as halves they lose nothing, and a
        // distance reads half the bytes.
        (Some(metric), Some(VectorType::PgHalfVector)) if metric != Metric::Hamming => (
            metric.in_half_floats().unwrap_or(metric),
            VectorType::PgHalfVector,
        ),
        (Some(metric), Some(vector_type))
            if metric != Metric::Hamming && vector_type != VectorType::Bit =>
        {
            (metric, vector_type)
        }
        _ => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_FUNCTION,
            format!("hannoy does not know the distance function \"{name}\" of this operator class"),
            None,
        ),
    }
}

/// Refuses relations whose index storage could not follow them: temporary tables (dropped at
/// session end without a drop event) and unlogged tables (reset to empty after a crash, which
/// the folder would not follow).
///
/// # Safety
/// `index` must be an open index relation.
pub unsafe fn refuse_unsupported(index: pg_sys::Relation) {
    // SAFETY: rd_rel is valid for an open relation.
    let persistence = unsafe { (*(*index).rd_rel).relpersistence } as u8;
    if persistence == pg_sys::RELPERSISTENCE_TEMP {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "hannoy indexes on temporary tables are not supported",
            None,
        );
    }
    if persistence == pg_sys::RELPERSISTENCE_UNLOGGED {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "hannoy indexes on unlogged tables are not supported",
            None,
        );
    }
}
