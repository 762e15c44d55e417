//! A scan's keys on filter columns become the engine's conditions. Parameters and outer-row
//! values arrive as runtime keys filled in before each rescan, so this runs on every rescan.
//!
//! Strategy numbers are fixed by the operator classes (sql in `am`): btree's for comparisons,
//! and three of our own for the array operators.

use std::ops::Bound;

use hannoy_engine::{FilterCondition, FilterValue};
use pgrx::{pg_sys, PgSqlErrorCode};

use super::values::{array_values, ArrayValues, ValueKind};
use super::{ColumnKind, IndexLayout};
use crate::pg::error::raise;

const LESS: u16 = 1;
const LESS_EQUAL: u16 = 2;
const EQUAL: u16 = 3;
const GREATER_EQUAL: u16 = 4;
const GREATER: u16 = 5;
const OVERLAPS: u16 = 6;
const CONTAINS: u16 = 7;
const CONTAINED_BY: u16 = 8;

/// The rows a scan's keys allow.
#[derive(Debug)]
pub enum ScanFilter {
    /// No key on a filter column.
    All,
    /// Rows meeting every condition. Not `exact` when a condition matches a superset of its
    /// key's rows (a numeric rounded to float8, a long text kept as a hash), so PostgreSQL
    /// must check each row again.
    Conditions {
        conditions: Vec<FilterCondition>,
        exact: bool,
    },
    /// Some key matches no row: a comparison with NULL, an empty IN list, `@>` a NULL element.
    Nothing,
}

/// Translates `keys`.
///
/// # Safety
/// Each key must be a valid scan key on an index of this layout, its argument a valid datum
/// of the type its operator takes.
pub unsafe fn scan_filter(layout: &IndexLayout, keys: &[pg_sys::ScanKeyData]) -> ScanFilter {
    let mut conditions = Vec::with_capacity(keys.len());
    let mut exact = true;
    for key in keys {
        let flags = key.sk_flags as u32;
        let Some(column) = layout.filter_column(key.sk_attno) else {
            // The vector column can only be tested for NULL; every indexed row has a vector.
            if flags & pg_sys::SK_SEARCHNULL != 0 {
                raise(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    "a hannoy index cannot find rows whose vector is NULL",
                    None,
                );
            }
            continue;
        };
        let col = column.engine_column;
        if flags & pg_sys::SK_ISNULL != 0 {
            if flags & pg_sys::SK_SEARCHNULL != 0 {
                conditions.push(FilterCondition::IsNull { column: col });
                continue;
            }
            if flags & pg_sys::SK_SEARCHNOTNULL != 0 {
                conditions.push(FilterCondition::IsNotNull { column: col });
                continue;
            }
            // `column op NULL` is never true.
            return ScanFilter::Nothing;
        }
        let strategy = key.sk_strategy;
        // SAFETY: forwarded from the caller: the argument is a valid datum of the operator's
        // right-hand type (an array of it for SK_SEARCHARRAY).
        let condition = unsafe {
            let searches_array = flags & pg_sys::SK_SEARCHARRAY != 0;
            if searches_array || matches!(strategy, OVERLAPS | CONTAINS | CONTAINED_BY) {
                let elements = array_values(key.sk_argument);
                exact &= elements.exact;
                if searches_array {
                    any_of(col, strategy, elements)
                } else {
                    array_condition(col, strategy, elements)
                }
            } else {
                let ColumnKind::Scalar(_) = column.kind else {
                    unexpected(strategy)
                };
                let read = argument_kind(key.sk_subtype).read(key.sk_argument);
                exact &= read.exact;
                Some(comparison(col, strategy, read.value, read.exact))
            }
        };
        match condition {
            Some(condition) => conditions.push(condition),
            None => return ScanFilter::Nothing,
        }
    }
    if conditions.is_empty() {
        ScanFilter::All
    } else {
        ScanFilter::Conditions { conditions, exact }
    }
}

fn argument_kind(type_oid: pg_sys::Oid) -> ValueKind {
    ValueKind::of_type(type_oid).unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            "hannoy cannot compare a filter column with a value of this type",
            None,
        )
    })
}

fn unexpected(strategy: u16) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("hannoy has no operator of strategy {strategy} for this column"),
        None,
    )
}

/// `column op value`. An inexact value rounds both ways, so strict bounds must include it.
fn comparison(column: u16, strategy: u16, value: FilterValue, exact: bool) -> FilterCondition {
    let below = |v| {
        if exact {
            Bound::Excluded(v)
        } else {
            Bound::Included(v)
        }
    };
    let (lower, upper) = match strategy {
        EQUAL => return FilterCondition::Eq { column, value },
        LESS => (Bound::Unbounded, below(value)),
        LESS_EQUAL => (Bound::Unbounded, Bound::Included(value)),
        GREATER_EQUAL => (Bound::Included(value), Bound::Unbounded),
        GREATER => (below(value), Bound::Unbounded),
        other => unexpected(other),
    };
    FilterCondition::Range {
        column,
        lower,
        upper,
    }
}

/// `column op ANY(array)`: true when it holds for one non-NULL element.
fn any_of(column: u16, strategy: u16, elements: ArrayValues) -> Option<FilterCondition> {
    let values = elements.values;
    let by_key = |v: &&FilterValue| v.encoded();
    let bound = match strategy {
        EQUAL if values.is_empty() => return None,
        EQUAL => return Some(FilterCondition::In { column, values }),
        // Below some element is below the largest; above some, above the smallest.
        LESS | LESS_EQUAL => values.iter().max_by_key(by_key),
        GREATER | GREATER_EQUAL => values.iter().min_by_key(by_key),
        other => unexpected(other),
    };
    let bound = bound?.clone();
    Some(comparison(column, strategy, bound, elements.exact))
}

/// `column && / @> / <@ array`.
fn array_condition(column: u16, strategy: u16, elements: ArrayValues) -> Option<FilterCondition> {
    // A NULL element is equal to nothing: `&&` and `<@` just skip it, but no array contains it.
    let values = elements.values;
    Some(match strategy {
        OVERLAPS => FilterCondition::Overlaps { column, values },
        CONTAINS if elements.has_nulls => return None,
        CONTAINS => FilterCondition::Contains { column, values },
        CONTAINED_BY => FilterCondition::ContainedBy { column, values },
        other => unexpected(other),
    })
}
