//! Attribute values and their order-preserving byte encoding: LMDB compares keys bytewise, so
//! a value range becomes one key range only if bytewise order is the column type's order.

use std::ops::Bound;

/// One attribute value of an item, as the caller's column type maps onto it.
///
/// - `Int`: int2, int4, int8, date, timestamp, timestamptz (converted to i64 by the caller).
/// - `Float`: float4, float8 (widened to f64), in PostgreSQL's order: -0 equals 0, NaN equals
///   NaN and sorts above +Infinity.
/// - `Bytes`: text whose bytewise equality is the column's equality, uuid (16 bytes); ranges on
///   them are bytewise.
///
/// A column holds values of one kind; values of different kinds are never meaningfully
/// compared (the result of doing so is unspecified, but never a panic).
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Bytes(Vec<u8>),
}

/// The longest encoded value a key can hold: LMDB's 511-byte key limit less the column and tag.
/// Only `Bytes` values can be longer; storing one is refused, comparing with one is exact.
pub const MAX_FILTER_VALUE_BYTES: usize = 511 - super::keys::PREFIX_BYTES;

impl FilterValue {
    /// The value's key bytes: bytewise order of two encodings of the same kind is the column
    /// type's order, and equal values (0.0 and -0.0, any two NaNs) encode identically.
    pub fn encoded(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.encoded_ref().as_slice());
    }

    /// [`FilterValue::encoded`] without allocating, for comparisons in memory; the one
    /// definition of the encoding, so keys and in-memory evaluation cannot drift apart.
    pub(crate) fn encoded_ref(&self) -> EncodedRef<'_> {
        match self {
            FilterValue::Bool(b) => EncodedRef::Inline {
                bytes: [*b as u8, 0, 0, 0, 0, 0, 0, 0],
                len: 1,
            },
            FilterValue::Int(i) => EncodedRef::Inline {
                bytes: encode_int(*i),
                len: 8,
            },
            FilterValue::Float(f) => EncodedRef::Inline {
                bytes: encode_float(*f),
                len: 8,
            },
            FilterValue::Bytes(b) => EncodedRef::Borrowed(b),
        }
    }

    /// Integers and floats, whose 8-byte encodings are kept by group as well (see `keys`). A
    /// range with such a bound only matches values with 8-byte encodings.
    pub(crate) fn is_fixed_width(&self) -> bool {
        matches!(self, FilterValue::Int(_) | FilterValue::Float(_))
    }

    /// Whether a range bound is an integer or float, so that the range matches only values
    /// with 8-byte encodings.
    pub(crate) fn is_fixed_bound(bound: Bound<&FilterValue>) -> bool {
        matches!(bound, Bound::Included(v) | Bound::Excluded(v) if v.is_fixed_width())
    }

    pub(crate) fn encoded_len(&self) -> usize {
        match self {
            FilterValue::Bool(_) => 1,
            FilterValue::Int(_) | FilterValue::Float(_) => 8,
            FilterValue::Bytes(b) => b.len(),
        }
    }
}

/// Flipping the sign bit maps i64's two's complement order onto unsigned order.
fn encode_int(i: i64) -> [u8; 8] {
    ((i as u64) ^ (1 << 63)).to_be_bytes()
}

/// Positive floats sort like their bit patterns once the sign bit is set; negative ones in
/// reverse, hence inverting all their bits. Zero and NaN are made canonical first so that the
/// values PostgreSQL calls equal share one key, and the canonical NaN (positive, quiet) lands
/// above +Infinity as PostgreSQL orders it.
fn encode_float(f: f64) -> [u8; 8] {
    let canonical = if f.is_nan() {
        f64::NAN
    } else if f == 0.0 {
        0.0
    } else {
        f
    };
    let bits = canonical.to_bits();
    let ordered = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    ordered.to_be_bytes()
}

/// A value's encoding: the fixed-width kinds held inline, `Bytes` borrowed.
pub(crate) enum EncodedRef<'v> {
    Inline { bytes: [u8; 8], len: usize },
    Borrowed(&'v [u8]),
}

impl EncodedRef<'_> {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            EncodedRef::Inline { bytes, len } => &bytes[..*len],
            EncodedRef::Borrowed(bytes) => bytes,
        }
    }
}
