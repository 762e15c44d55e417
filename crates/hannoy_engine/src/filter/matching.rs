//! Evaluation of conditions on one row in memory, for rows that are not in the store yet. It
//! must give what the store gives for the same row, so it reasons in the store's terms (see
//! `keys::row_keys`): a NULL column is under the NULL key only; a non-null one is under NOT
//! NULL and one value key per element, a scalar counting as a one-element array; two values are
//! the same key exactly when their encodings are the same bytes.

use std::ops::Bound;

use super::keys::FIXED_BYTES;
use super::value::EncodedRef;
use super::{ColumnValue, FilterCondition, FilterRow, FilterValue};

impl FilterCondition {
    /// Whether `row` meets the condition: the same answer [`crate::Reader::filter`] gives for
    /// an item stored with `row`, for any row the writer accepts (one whose values all encode
    /// to at most [`super::MAX_FILTER_VALUE_BYTES`]).
    ///
    /// A column past the end of the row meets no condition, not even `IsNull`. Values are
    /// compared by [`FilterValue::encoded`], so `-0.0` equals `0.0` and NaN equals NaN; a
    /// scalar column behaves as a one-element array under the array conditions, and an array
    /// column as the set of its elements under `Eq`, `In` and `Range` (some element must meet
    /// them).
    pub fn matches(&self, row: &FilterRow) -> bool {
        let Some(column) = row.0.get(self.column() as usize) else {
            return false;
        };
        let elements: &[FilterValue] = match column {
            ColumnValue::Null => return matches!(self, FilterCondition::IsNull { .. }),
            ColumnValue::Scalar(value) => std::slice::from_ref(value),
            ColumnValue::Array(elements) => elements,
        };
        let has = |value: &FilterValue| {
            let wanted = value.encoded_ref();
            elements
                .iter()
                .any(|element| element.encoded_ref().as_slice() == wanted.as_slice())
        };
        match self {
            FilterCondition::IsNull { .. } => false,
            FilterCondition::IsNotNull { .. } => true,
            FilterCondition::Eq { value, .. } => has(value),
            FilterCondition::In { values, .. } | FilterCondition::Overlaps { values, .. } => {
                values.iter().any(has)
            }
            FilterCondition::Contains { values, .. } => values.iter().all(has),
            FilterCondition::ContainedBy { values, .. } => elements.iter().all(|element| {
                let element = element.encoded_ref();
                values
                    .iter()
                    .any(|value| value.encoded_ref().as_slice() == element.as_slice())
            }),
            FilterCondition::Range { lower, upper, .. } => {
                let fixed_only = FilterValue::is_fixed_bound(lower.as_ref())
                    || FilterValue::is_fixed_bound(upper.as_ref());
                elements.iter().any(|element| {
                    (!fixed_only || element.encoded_len() == FIXED_BYTES)
                        && within(element.encoded_ref(), lower, upper)
                })
            }
        }
    }

    /// Whether `row` meets every one of `conditions` (true for none), as
    /// [`crate::Reader::filter`] would decide for an item stored with `row`.
    pub fn matches_all(conditions: &[FilterCondition], row: &FilterRow) -> bool {
        conditions.iter().all(|condition| condition.matches(row))
    }
}

/// Plain bytewise comparison with the bounds' encodings. The store truncates bounds longer
/// than a key can be, which splits the values it can hold exactly as the untruncated bound
/// does, so the two agree on every value the store accepts.
fn within(value: EncodedRef, lower: &Bound<FilterValue>, upper: &Bound<FilterValue>) -> bool {
    let value = value.as_slice();
    let above = match lower {
        Bound::Unbounded => true,
        Bound::Included(bound) => value >= bound.encoded_ref().as_slice(),
        Bound::Excluded(bound) => value > bound.encoded_ref().as_slice(),
    };
    let below = match upper {
        Bound::Unbounded => true,
        Bound::Included(bound) => value <= bound.encoded_ref().as_slice(),
        Bound::Excluded(bound) => value < bound.encoded_ref().as_slice(),
    };
    above && below
}
