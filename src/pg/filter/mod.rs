//! Filter columns: every index column besides the vector column. The engine keeps their values
//! as value -> bitmap of items, so a query's conditions on them become the set of allowed items
//! before the graph search (see `scan_keys`), instead of a filter over what the search found.
//!
//! Which column is the vector is told by its operator class: only the distance operator
//! classes have support function 1. It may stand anywhere in the column list; PostgreSQL 15
//! only turns `= ANY(...)` into an index condition on an index's first column while keeping
//! the scan ordered, so a column filtered with IN lists is best put first.

pub mod scan_keys;
pub mod values;

use hannoy_engine::{ColumnValue, FilterRow};
use pgrx::{pg_sys, PgSqlErrorCode};

use crate::pg::error::raise;
pub use values::ValueKind;

/// What one filter column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Scalar(ValueKind),
    /// A one-or-more-dimensional array of these values, searched by `&&`, `@>` and `<@`.
    Array(ValueKind),
}

impl ColumnKind {
    /// The kind of a column of type `type_oid`, `None` for types hannoy cannot filter on.
    pub fn of_type(type_oid: pg_sys::Oid) -> Option<ColumnKind> {
        let array_of = match type_oid {
            pg_sys::INT4ARRAYOID => Some(ValueKind::Int4),
            pg_sys::INT8ARRAYOID => Some(ValueKind::Int8),
            pg_sys::TEXTARRAYOID | pg_sys::VARCHARARRAYOID => Some(ValueKind::Text),
            _ => None,
        };
        match array_of {
            Some(kind) => Some(ColumnKind::Array(kind)),
            None => ValueKind::of_type(type_oid).map(ColumnKind::Scalar),
        }
    }
}

/// One filter column of an index.
#[derive(Debug, Clone, Copy)]
pub struct FilterColumn {
    /// The engine's column number: filter columns counted in index order, the vector skipped.
    pub engine_column: u16,
    pub kind: ColumnKind,
}

/// How an index's columns divide into the vector column and filter columns. Plain data of a
/// fixed size, so that it can be kept in the index's relcache entry (see `am::describe`).
#[derive(Debug, Clone, Copy)]
pub struct IndexLayout {
    /// 0-based position of the vector column among the index's columns.
    pub vector_column: usize,
    /// The first `column_count` hold one entry per index column, `None` at the vector column.
    columns: [Option<FilterColumn>; pg_sys::INDEX_MAX_KEYS as usize],
    column_count: usize,
}

impl IndexLayout {
    /// Reads the layout from an open index's catalog data, refusing column types and
    /// collations hannoy cannot filter exactly.
    ///
    /// # Safety
    /// `index` must be an open hannoy index relation.
    pub unsafe fn of(index: pg_sys::Relation) -> IndexLayout {
        // SAFETY: an open index has its tuple descriptor, with one attribute per key column,
        // and an rd_indcollation array of that length.
        unsafe {
            let desc = (*index).rd_att;
            let count = (*desc).natts as usize;
            let attrs = (*desc).attrs.as_slice(count);
            let mut vector_column = None;
            let mut columns = [None; pg_sys::INDEX_MAX_KEYS as usize];
            let mut engine_column = 0u16;
            for (i, attr) in attrs.iter().enumerate() {
                let attno = (i + 1) as pg_sys::AttrNumber;
                if pg_sys::index_getprocid(index, attno, 1) != pg_sys::InvalidOid {
                    if vector_column.replace(i).is_some() {
                        raise(
                            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                            "a hannoy index has exactly one vector column",
                            Some("Index the other vector columns with indexes of their own."),
                        );
                    }
                    continue;
                }
                let Some(kind) = ColumnKind::of_type(attr.atttypid) else {
                    raise(
                        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                        format!(
                            "hannoy cannot filter on column \"{}\" of type {}",
                            name_of(attr),
                            type_name(attr.atttypid)
                        ),
                        None,
                    );
                };
                if matches!(kind, ColumnKind::Scalar(ValueKind::Text))
                    || matches!(kind, ColumnKind::Array(ValueKind::Text))
                {
                    // Equality is kept as byte equality, which only a deterministic collation
                    // agrees with.
                    let collation = *(*index).rd_indcollation.add(i);
                    if collation != pg_sys::InvalidOid
                        && !pg_sys::get_collation_isdeterministic(collation)
                    {
                        raise(
                            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                            format!(
                                "hannoy cannot filter on column \"{}\": its collation is nondeterministic",
                                name_of(attr)
                            ),
                            Some("Index the column with a deterministic collation, such as \"C\" or the database default."),
                        );
                    }
                }
                columns[i] = Some(FilterColumn {
                    engine_column,
                    kind,
                });
                engine_column += 1;
            }
            let Some(vector_column) = vector_column else {
                raise(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    "a hannoy index needs a vector column",
                    Some("Index a real[] or bit column with a distance operator class, such as real_l2_ops."),
                );
            };
            IndexLayout {
                vector_column,
                columns,
                column_count: count,
            }
        }
    }

    fn columns(&self) -> &[Option<FilterColumn>] {
        &self.columns[..self.column_count]
    }

    pub fn has_filters(&self) -> bool {
        self.column_count > 1
    }

    /// The filter column at 1-based index attribute `attno`, `None` for the vector column.
    pub fn filter_column(&self, attno: pg_sys::AttrNumber) -> Option<FilterColumn> {
        self.columns()
            .get((attno as usize).checked_sub(1)?)
            .copied()
            .flatten()
    }

    /// The filter values of one index row, as `ambuild` and `aminsert` receive it.
    ///
    /// # Safety
    /// `values` and `isnull` must hold one entry per index column, valid for this call.
    pub unsafe fn row(&self, values: *const pg_sys::Datum, isnull: *const bool) -> FilterRow {
        let mut row = Vec::with_capacity(self.column_count.saturating_sub(1));
        for (i, column) in self.columns().iter().enumerate() {
            let Some(column) = column else { continue };
            // SAFETY: `i` is below the column count, the length of both arrays.
            let (datum, null) = unsafe { (*values.add(i), *isnull.add(i)) };
            row.push(if null {
                ColumnValue::Null
            } else {
                // SAFETY: a non-NULL datum of the column's type, which `kind` came from.
                unsafe { values::column_value(column.kind, datum) }
            });
        }
        FilterRow(row)
    }
}

/// # Safety
/// `attr` must be a valid attribute of a tuple descriptor.
unsafe fn name_of(attr: &pg_sys::FormData_pg_attribute) -> String {
    // SAFETY: attname is a NUL-terminated NameData.
    unsafe { std::ffi::CStr::from_ptr(attr.attname.data.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn type_name(type_oid: pg_sys::Oid) -> String {
    // SAFETY: format_type_be pallocs the name of any type OID, or "???" for an unknown one.
    unsafe { std::ffi::CStr::from_ptr(pg_sys::format_type_be(type_oid)) }
        .to_string_lossy()
        .into_owned()
}
