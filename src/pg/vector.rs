//! SQL vector values (`real[]`, `bit`/`varbit`) read into owned engine forms, with the checks
//! that turn a malformed value into an ERROR instead of a wrong answer. Values are validated
//! here for shape (dimensions, NULL elements); the engine checks the numbers (NaN, infinity).

use std::ptr::NonNull;

use hannoy_engine::VectorRef;
use pgrx::array::RawArray;
use pgrx::{pg_sys, PgSqlErrorCode};

use crate::pg::error::raise;

/// One vector, owned, in the engine's caller form.
#[derive(Debug, Clone)]
pub enum OwnedVector {
    Floats(Vec<f32>),
    Bits { words: Vec<u64>, dimensions: usize },
}

impl OwnedVector {
    pub fn as_ref(&self) -> VectorRef<'_> {
        match self {
            OwnedVector::Floats(values) => VectorRef::Floats(values),
            OwnedVector::Bits { words, dimensions } => VectorRef::Bits {
                words,
                dimensions: *dimensions,
            },
        }
    }

    pub fn dimensions(&self) -> usize {
        self.as_ref().dimensions()
    }
}

/// Which SQL type an index column or operator argument holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorType {
    RealArray,
    Bit,
}

impl VectorType {
    /// Reads a non-NULL datum of this type.
    ///
    /// # Safety
    /// `datum` must be a valid, non-NULL value of the SQL type this variant names.
    pub unsafe fn read(self, datum: pg_sys::Datum) -> OwnedVector {
        match self {
            VectorType::RealArray => OwnedVector::Floats(unsafe { real_array(datum) }),
            VectorType::Bit => {
                let (words, dimensions) = unsafe { bit_string(datum) };
                OwnedVector::Bits { words, dimensions }
            }
        }
    }
}

/// The elements of a one-dimensional `real[]` without NULLs.
///
/// # Safety
/// `datum` must be a valid, non-NULL array datum.
pub unsafe fn real_array(datum: pg_sys::Datum) -> Vec<f32> {
    // SAFETY: the caller promises an array datum; detoasting gives a plain, readable copy (or
    // the value itself) that lives in the current memory context for this call.
    let mut array = unsafe {
        let detoasted = pg_sys::pg_detoast_datum(datum.cast_mut_ptr::<pg_sys::varlena>());
        RawArray::from_ptr(NonNull::new_unchecked(
            detoasted.cast::<pg_sys::ArrayType>(),
        ))
    };
    checked_floats(&mut array)
}

/// The elements of a `real[]` handed to a SQL function.
pub fn real_array_arg(array: pgrx::Array<'_, f32>) -> Vec<f32> {
    // SAFETY: an Array made by pgrx from a function argument wraps a detoasted ArrayType.
    match unsafe { RawArray::from_array(array) } {
        Some(mut raw) => checked_floats(&mut raw),
        None => raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "vector must not be NULL",
            None,
        ),
    }
}

fn checked_floats(array: &mut RawArray) -> Vec<f32> {
    if array.oid() != pg_sys::FLOAT4OID {
        raise(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            "vector must be an array of real",
            None,
        );
    }
    let dims = array.dims();
    match dims.len() {
        0 => raise(
            PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
            "vector must have at least one dimension",
            Some("An empty array is not a vector."),
        ),
        1 => {}
        n => raise(
            PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
            format!("vector must be a one-dimensional array, not {n}-dimensional"),
            None,
        ),
    }
    let len = dims[0].max(0) as usize;
    // SAFETY: a validly built array answers array_contains_nulls from its own bitmap.
    if unsafe { array.any_nulls() } {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "vector must not contain NULL elements",
            None,
        );
    }
    // SAFETY: a one-dimensional float4 array without NULLs stores `len` packed f32s, aligned
    // to 4 bytes (float4's typalign) at its data pointer; every bit pattern is an f32.
    unsafe {
        let data = array.data::<f32>();
        std::slice::from_raw_parts(data.cast::<f32>().as_ptr(), len).to_vec()
    }
}

/// A `bit`/`varbit` value as little-endian words, first bit in bit 0 of word 0.
///
/// # Safety
/// `datum` must be a valid, non-NULL `bit` or `varbit` datum.
pub unsafe fn bit_string(datum: pg_sys::Datum) -> (Vec<u64>, usize) {
    // SAFETY: a detoasted VarBit is a 4-byte varlena header, an int32 bit count, then
    // ceil(bits / 8) bytes, first bit in the high bit of the first byte.
    let (dimensions, bytes) = unsafe {
        let detoasted = pg_sys::pg_detoast_datum(datum.cast_mut_ptr::<pg_sys::varlena>());
        let base = detoasted.cast::<u8>();
        let bit_len = base.add(4).cast::<i32>().read_unaligned().max(0) as usize;
        let bytes = std::slice::from_raw_parts(base.add(8), bit_len.div_ceil(8));
        (bit_len, bytes)
    };
    if dimensions == 0 {
        raise(
            PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
            "bit vector must have at least one bit",
            None,
        );
    }
    let mut words = vec![0u64; dimensions.div_ceil(64)];
    for (i, &byte) in bytes.iter().enumerate() {
        // Postgres puts the first bit in a byte's high bit; the engine wants it in bit 0.
        words[i / 8] |= (byte.reverse_bits() as u64) << ((i % 8) * 8);
    }
    (words, dimensions)
}
