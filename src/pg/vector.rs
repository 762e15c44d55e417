//! SQL vector values (`real[]`, `bit`/`varbit`, and pgvector's `vector` and `halfvec`) read into
//! owned engine forms, with the checks that turn a malformed value into an ERROR instead of a
//! wrong answer. Values are validated here for shape (dimensions, NULL elements); the engine
//! checks the numbers (NaN, infinity).
//!
//! pgvector's types are read from their bytes, so the library never links pgvector: a value is
//! a varlena holding an int16 dimension count, an int16 left unused, then the elements (float4,
//! or IEEE half floats for `halfvec`).

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
    /// pgvector's `vector`.
    PgVector,
    /// pgvector's `halfvec`.
    PgHalfVector,
}

impl VectorType {
    /// The vector type of SQL type `type_oid`, if hannoy can index it. pgvector's types have
    /// no fixed oid: they are known by their input functions, which no other type shares.
    pub fn of_sql_type(type_oid: pg_sys::Oid) -> Option<VectorType> {
        match type_oid {
            pg_sys::FLOAT4ARRAYOID => return Some(VectorType::RealArray),
            pg_sys::BITOID | pg_sys::VARBITOID => return Some(VectorType::Bit),
            _ => {}
        }
        let mut input = pg_sys::InvalidOid;
        let mut io_param = pg_sys::InvalidOid;
        // SAFETY: getTypeInputInfo reads the type's catalog row (raising for an unknown oid);
        // get_func_name pallocs a copy of the name, or returns NULL for an unknown function.
        let input_name = unsafe {
            pg_sys::getTypeInputInfo(type_oid, &mut input, &mut io_param);
            let name = pg_sys::get_func_name(input);
            if name.is_null() {
                return None;
            }
            std::ffi::CStr::from_ptr(name).to_bytes().to_vec()
        };
        match input_name.as_slice() {
            b"vector_in" => Some(VectorType::PgVector),
            b"halfvec_in" => Some(VectorType::PgHalfVector),
            _ => None,
        }
    }

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
            VectorType::PgVector => OwnedVector::Floats(unsafe {
                pgvector_elements(datum, 4, |bytes| {
                    f32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
                })
            }),
            VectorType::PgHalfVector => OwnedVector::Floats(unsafe {
                pgvector_elements(datum, 2, |bytes| {
                    half::f16::from_bits(u16::from_ne_bytes([bytes[0], bytes[1]])).to_f32()
                })
            }),
        }
    }
}

/// The elements of a pgvector `vector` or `halfvec`, each `width` bytes, converted by `element`.
///
/// # Safety
/// `datum` must be a valid, non-NULL value of a pgvector vector type.
unsafe fn pgvector_elements(
    datum: pg_sys::Datum,
    width: usize,
    element: impl Fn(&[u8]) -> f32,
) -> Vec<f32> {
    // SAFETY: the caller promises a varlena datum.
    let bytes = unsafe { detoasted_bytes(datum) };
    const HEADER: usize = 8; // varlena header, int16 dimensions, int16 unused
    let dimensions = match bytes.get(4..6) {
        Some(d) => i16::from_ne_bytes([d[0], d[1]]).max(0) as usize,
        None => 0,
    };
    if bytes.len() < HEADER + dimensions * width {
        raise(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!(
                "vector value of {} bytes is too short for its {dimensions} dimensions",
                bytes.len()
            ),
            None,
        );
    }
    if dimensions == 0 {
        raise(
            PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
            "vector must have at least one dimension",
            Some("An empty vector is not a vector."),
        );
    }
    bytes[HEADER..HEADER + dimensions * width]
        .chunks_exact(width)
        .map(element)
        .collect()
}

/// The whole of a varlena value, header included, detoasted: compressed, external and
/// short-header values are expanded into a copy that lives in the current memory context.
///
/// # Safety
/// `datum` must be a valid, non-NULL varlena datum; the slice must not outlive the current
/// memory context.
unsafe fn detoasted_bytes<'a>(datum: pg_sys::Datum) -> &'a [u8] {
    // SAFETY: a detoasted value has a 4-byte header whose upper 30 bits (in this byte order's
    // VARSIZE_4B) hold its total size, header included.
    unsafe {
        let detoasted = pg_sys::pg_detoast_datum(datum.cast_mut_ptr::<pg_sys::varlena>());
        let base = detoasted.cast::<u8>();
        let size = (base.cast::<u32>().read_unaligned() >> 2) as usize;
        std::slice::from_raw_parts(base, size)
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
    // SAFETY: the caller promises a varlena datum.
    let value = unsafe { detoasted_bytes(datum) };
    // A VarBit: the varlena header, an int32 bit count, then ceil(bits / 8) bytes, first bit in
    // the high bit of the first byte.
    let dimensions = match value.get(4..8) {
        Some(d) => i32::from_ne_bytes([d[0], d[1], d[2], d[3]]).max(0) as usize,
        None => 0,
    };
    let Some(bytes) = value.get(8..8 + dimensions.div_ceil(8)) else {
        raise(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!(
                "bit value of {} bytes is too short for its {dimensions} bits",
                value.len()
            ),
            None,
        );
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
