//! Per-item attribute values, kept as value -> roaring bitmap of items so that a query's
//! conditions on them become one bitmap of allowed items for a filtered search.
//!
//! Two databases hold them (see `storage`): `filter_values` maps each key (column, kind of
//! entry, value; see `keys`) to the items under it, and `item_filters` maps each item to the
//! keys it is under, so a delete touches exactly the deleted items' bitmaps instead of
//! scanning them all.
//!
//! Items inserted without values (by [`crate::Writer::insert`] or
//! [`crate::Writer::insert_keyed`]) are under no key: they match no condition, not even
//! `IsNull`. So do the columns past the end of a shorter [`FilterRow`].

mod dense;
mod keys;
mod matching;
mod row_bytes;
mod store;
mod value;

use std::ops::Bound;

use crate::error::{Error, Result};

pub(crate) use dense::DenseBits;
pub(crate) use store::FilterStore;
pub use value::{FilterValue, MAX_FILTER_VALUE_BYTES};

/// The attribute values of one item: column `c` is `self.0[c]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilterRow(pub Vec<ColumnValue>);

/// One column of one item.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValue {
    Null,
    Scalar(FilterValue),
    /// A non-null array, possibly empty; the caller leaves out its null elements.
    Array(Vec<FilterValue>),
}

/// A condition on one column, evaluated exactly; see [`crate::Reader::filter`].
#[derive(Debug, Clone, PartialEq)]
pub enum FilterCondition {
    /// The scalar equals `value` (for an array: some element does).
    Eq {
        column: u16,
        value: FilterValue,
    },
    /// The scalar equals one of `values`; an empty list matches nothing.
    In {
        column: u16,
        values: Vec<FilterValue>,
    },
    /// The scalar lies within the bounds, in the order of [`FilterValue::encoded`]. NULLs never
    /// match, as in SQL. With an integer or float bound, only values with 8-byte encodings
    /// (integers and floats) match.
    Range {
        column: u16,
        lower: Bound<FilterValue>,
        upper: Bound<FilterValue>,
    },
    IsNull {
        column: u16,
    },
    IsNotNull {
        column: u16,
    },
    /// Array `&&`: some element is one of `values`; an empty list matches nothing.
    Overlaps {
        column: u16,
        values: Vec<FilterValue>,
    },
    /// Array `@>`: every one of `values` is an element; an empty list matches every non-null
    /// array.
    Contains {
        column: u16,
        values: Vec<FilterValue>,
    },
    /// Array `<@`: every element is one of `values`; an empty array is contained by anything.
    ContainedBy {
        column: u16,
        values: Vec<FilterValue>,
    },
}

impl FilterCondition {
    /// The filter column the condition is on.
    pub fn column(&self) -> u16 {
        match self {
            FilterCondition::Eq { column, .. }
            | FilterCondition::In { column, .. }
            | FilterCondition::Range { column, .. }
            | FilterCondition::IsNull { column }
            | FilterCondition::IsNotNull { column }
            | FilterCondition::Overlaps { column, .. }
            | FilterCondition::Contains { column, .. }
            | FilterCondition::ContainedBy { column, .. } => *column,
        }
    }

    /// Rough order of evaluation cost, so the cheap conditions narrow the result first and an
    /// empty result skips the costly ones.
    fn cost_rank(&self) -> usize {
        match self {
            FilterCondition::Eq { .. }
            | FilterCondition::IsNull { .. }
            | FilterCondition::IsNotNull { .. } => 0,
            FilterCondition::In { .. }
            | FilterCondition::Overlaps { .. }
            | FilterCondition::Contains { .. } => 1,
            FilterCondition::Range { .. } => 2,
            // Reads every distinct value of the column.
            FilterCondition::ContainedBy { .. } => 3,
        }
    }
}

impl FilterRow {
    /// Whether the writer would store this row: callers that keep rows before writing them
    /// (the access method's pending list) refuse a bad one while its statement can still fail.
    pub fn validate(&self) -> Result<()> {
        validate_row(self)
    }
}

/// Refuses rows that cannot be stored, before anything is written.
pub(crate) fn validate_row(row: &FilterRow) -> Result<()> {
    if row.0.len() > u16::MAX as usize + 1 {
        return Err(Error::InvalidParameter {
            name: "filter row",
            reason: format!(
                "{} columns, at most {} are allowed",
                row.0.len(),
                u16::MAX as usize + 1
            ),
        });
    }
    let values = row.0.iter().flat_map(|column| match column {
        ColumnValue::Null => &[][..],
        ColumnValue::Scalar(v) => std::slice::from_ref(v),
        ColumnValue::Array(elements) => &elements[..],
    });
    for value in values {
        if value.encoded_len() > MAX_FILTER_VALUE_BYTES {
            return Err(Error::InvalidParameter {
                name: "filter value",
                reason: format!(
                    "{} bytes, at most {MAX_FILTER_VALUE_BYTES} can be stored",
                    value.encoded_len()
                ),
            });
        }
    }
    Ok(())
}
