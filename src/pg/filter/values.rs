//! SQL values of filter columns and scan keys read into the engine's `FilterValue`s, whose
//! byte order is the SQL order (see `hannoy_engine::FilterValue`).

use hannoy_engine::{ColumnValue, FilterValue};
use pgrx::{pg_sys, FromDatum, PgSqlErrorCode};

use super::ColumnKind;
use crate::pg::error::raise;

/// The scalar types hannoy filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Int2,
    Int4,
    Int8,
    Bool,
    Float4,
    Float8,
    /// Kept as the nearest float8: conditions on it match a superset, rechecked by PostgreSQL.
    Numeric,
    Date,
    /// timestamp and timestamptz: microseconds since 2000, the same instant order.
    Timestamp,
    Uuid,
    /// text and varchar, compared by their bytes (the collation must be deterministic).
    Text,
}

/// A value as the engine keeps it, and whether equal keys mean equal SQL values.
pub struct KeyValue {
    pub value: FilterValue,
    pub exact: bool,
}

/// Texts longer than this are kept as their first `TEXT_PREFIX` bytes and a hash, to fit an
/// LMDB key. Short and long keys differ in length, so they never collide with each other.
const TEXT_PREFIX: usize = 480;

/// Stands for the NULL elements of an array column. No query compares an array of numbers or
/// texts with a boolean, so `&&` and `@>` never match it, while `<@` finds it missing from the
/// query's list and excludes the array, as SQL does for an array with a NULL element.
const NULL_ELEMENT: FilterValue = FilterValue::Bool(false);

impl ValueKind {
    pub fn of_type(type_oid: pg_sys::Oid) -> Option<ValueKind> {
        Some(match type_oid {
            pg_sys::INT2OID => ValueKind::Int2,
            pg_sys::INT4OID => ValueKind::Int4,
            pg_sys::INT8OID => ValueKind::Int8,
            pg_sys::BOOLOID => ValueKind::Bool,
            pg_sys::FLOAT4OID => ValueKind::Float4,
            pg_sys::FLOAT8OID => ValueKind::Float8,
            pg_sys::NUMERICOID => ValueKind::Numeric,
            pg_sys::DATEOID => ValueKind::Date,
            pg_sys::TIMESTAMPOID | pg_sys::TIMESTAMPTZOID => ValueKind::Timestamp,
            pg_sys::UUIDOID => ValueKind::Uuid,
            pg_sys::TEXTOID | pg_sys::VARCHAROID => ValueKind::Text,
            _ => return None,
        })
    }

    /// Reads a non-NULL datum.
    ///
    /// # Safety
    /// `datum` must be a valid, non-NULL value of a type this kind was made from.
    pub unsafe fn read(self, datum: pg_sys::Datum) -> KeyValue {
        // SAFETY: the caller promises a non-NULL datum of the kind's type; pass-by-value types
        // are read from the datum itself, the others through their detoasted pointer.
        let value = unsafe {
            match self {
                ValueKind::Int2 => FilterValue::Int(scalar::<i16>(datum).into()),
                ValueKind::Int4 | ValueKind::Date => FilterValue::Int(scalar::<i32>(datum).into()),
                ValueKind::Int8 | ValueKind::Timestamp => FilterValue::Int(scalar::<i64>(datum)),
                ValueKind::Bool => FilterValue::Bool(scalar::<bool>(datum)),
                ValueKind::Float4 => FilterValue::Float(scalar::<f32>(datum).into()),
                ValueKind::Float8 => FilterValue::Float(scalar::<f64>(datum)),
                ValueKind::Numeric => FilterValue::Float(numeric_as_float(datum)),
                ValueKind::Uuid => {
                    let bytes = std::slice::from_raw_parts(datum.cast_mut_ptr::<u8>(), 16);
                    FilterValue::Bytes(bytes.to_vec())
                }
                ValueKind::Text => return text_key(&text_bytes(datum)),
            }
        };
        KeyValue {
            value,
            exact: self != ValueKind::Numeric,
        }
    }
}

/// # Safety
/// `datum` must be a non-NULL value of a pass-by-value type read as `T`.
unsafe fn scalar<T: FromDatum>(datum: pg_sys::Datum) -> T {
    // SAFETY: forwarded; from_datum of a non-NULL datum returns Some.
    unsafe { T::from_datum(datum, false) }.expect("a non-NULL datum")
}

/// The nearest float8 of a numeric. Rounding to nearest never reverses an order, so a
/// condition widened to include its bounds matches every row the SQL condition does.
///
/// # Safety
/// `datum` must be a non-NULL numeric.
unsafe fn numeric_as_float(datum: pg_sys::Datum) -> f64 {
    // SAFETY: numeric_out takes one numeric and returns a palloc'd C string. Its text, unlike
    // numeric_float8, never fails: a value beyond float8's range becomes an infinity.
    let text = unsafe {
        let out = pg_sys::OidOutputFunctionCall(pg_sys::Oid::from(pg_sys::F_NUMERIC_OUT), datum);
        std::ffi::CStr::from_ptr(out)
    };
    let text = text.to_string_lossy();
    text.parse::<f64>().unwrap_or_else(|_| {
        raise(
            PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
            format!("hannoy cannot read the numeric value {text}"),
            None,
        )
    })
}

/// The bytes of a text or varchar value.
///
/// # Safety
/// `datum` must be a non-NULL varlena.
unsafe fn text_bytes(datum: pg_sys::Datum) -> Vec<u8> {
    // SAFETY: detoasting gives a readable varlena in the current memory context; its data
    // area holds varsize_any_exhdr bytes.
    unsafe {
        let value = pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr::<pg_sys::varlena>());
        let data = pgrx::varlena::vardata_any(value).cast::<u8>();
        std::slice::from_raw_parts(data, pgrx::varlena::varsize_any_exhdr(value)).to_vec()
    }
}

/// A text's key: the text itself, or for a long one its prefix and a hash, which equal texts
/// share but different texts do so only by a hash collision (hence not exact).
fn text_key(bytes: &[u8]) -> KeyValue {
    if bytes.len() <= TEXT_PREFIX {
        return KeyValue {
            value: FilterValue::Bytes(bytes.to_vec()),
            exact: true,
        };
    }
    let mut key = bytes[..TEXT_PREFIX].to_vec();
    key.extend_from_slice(&fnv1a(bytes).to_be_bytes());
    KeyValue {
        value: FilterValue::Bytes(key),
        exact: false,
    }
}

/// FNV-1a: stored in indexes, so it must never change, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The elements of a non-NULL array.
pub struct ArrayValues {
    pub values: Vec<FilterValue>,
    pub has_nulls: bool,
    /// Whether every value is exact (see `KeyValue`).
    pub exact: bool,
}

/// Reads every element of an array of a type hannoy filters on, whatever its dimensions.
///
/// # Safety
/// `datum` must be a valid, non-NULL array.
pub unsafe fn array_values(datum: pg_sys::Datum) -> ArrayValues {
    // SAFETY: a detoasted array is a readable ArrayType; deconstruct_array pallocs one datum
    // and one null flag per element, `count` of each, with the element type's own layout.
    unsafe {
        let array = pg_sys::pg_detoast_datum(datum.cast_mut_ptr::<pg_sys::varlena>())
            .cast::<pg_sys::ArrayType>();
        let element_type = (*array).elemtype;
        let Some(kind) = ValueKind::of_type(element_type) else {
            raise(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                "hannoy cannot compare with an array of this type",
                None,
            );
        };
        let (mut len, mut by_value, mut align) = (0i16, false, 0 as std::ffi::c_char);
        pg_sys::get_typlenbyvalalign(element_type, &mut len, &mut by_value, &mut align);
        let mut elements: *mut pg_sys::Datum = std::ptr::null_mut();
        let mut nulls: *mut bool = std::ptr::null_mut();
        let mut count = 0;
        pg_sys::deconstruct_array(
            array,
            element_type,
            len.into(),
            by_value,
            align,
            &mut elements,
            &mut nulls,
            &mut count,
        );
        let mut out = ArrayValues {
            values: Vec::with_capacity(count as usize),
            has_nulls: false,
            exact: true,
        };
        for i in 0..count.max(0) as usize {
            if *nulls.add(i) {
                out.has_nulls = true;
                continue;
            }
            let read = kind.read(*elements.add(i));
            out.exact &= read.exact;
            out.values.push(read.value);
        }
        out
    }
}

/// One non-NULL column value of a row.
///
/// # Safety
/// `datum` must be a valid, non-NULL value of the column's type.
pub unsafe fn column_value(kind: ColumnKind, datum: pg_sys::Datum) -> ColumnValue {
    // SAFETY: forwarded from the caller.
    unsafe {
        match kind {
            ColumnKind::Scalar(kind) => ColumnValue::Scalar(kind.read(datum).value),
            ColumnKind::Array(_) => {
                let mut array = array_values(datum);
                if array.has_nulls {
                    array.values.push(NULL_ELEMENT);
                }
                ColumnValue::Array(array.values)
            }
        }
    }
}
