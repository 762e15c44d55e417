//! A compact byte form of a [`FilterRow`], for the access method to keep a row's values in its
//! own pages until they reach the store.
//!
//! `row = count column*`, `column = NULL | ARRAY count value* | value`,
//! `value = FALSE | TRUE | INT i64 | FLOAT f64-bits | BYTES count byte*`, where every tag is
//! one byte from one numbering (a scalar column is just its value) and every count is an
//! unsigned LEB128 varint; `i64` and `f64-bits` are 8 bytes little-endian. Floats keep their
//! exact bits, so -0.0 and NaN payloads round-trip rather than canonicalise.

use crate::error::{corrupt, Error, Result};

use super::{ColumnValue, FilterRow, FilterValue};

const TAG_NULL: u8 = 0;
const TAG_ARRAY: u8 = 1;
const TAG_FALSE: u8 = 2;
const TAG_TRUE: u8 = 3;
const TAG_INT: u8 = 4;
const TAG_FLOAT: u8 = 5;
const TAG_BYTES: u8 = 6;

impl FilterRow {
    /// The row as bytes that [`FilterRow::from_bytes`] reads back into an equal row (floats
    /// bit for bit). An empty row is one byte.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.0.len() * 9);
        push_count(&mut out, self.0.len());
        for column in &self.0 {
            match column {
                ColumnValue::Null => out.push(TAG_NULL),
                ColumnValue::Scalar(value) => push_value(&mut out, value),
                ColumnValue::Array(elements) => {
                    out.push(TAG_ARRAY);
                    push_count(&mut out, elements.len());
                    for element in elements {
                        push_value(&mut out, element);
                    }
                }
            }
        }
        out
    }

    /// Reads a row written by [`FilterRow::to_bytes`]. Truncated input, trailing bytes or an
    /// unknown tag are [`Error::Corrupt`].
    pub fn from_bytes(bytes: &[u8]) -> Result<FilterRow> {
        let mut input = Input { bytes, at: 0 };
        let count = input.count()?;
        let mut columns = Vec::with_capacity(count);
        for _ in 0..count {
            let column = match input.byte()? {
                TAG_NULL => ColumnValue::Null,
                TAG_ARRAY => {
                    let count = input.count()?;
                    let mut elements = Vec::with_capacity(count);
                    for _ in 0..count {
                        let tag = input.byte()?;
                        elements.push(input.value(tag)?);
                    }
                    ColumnValue::Array(elements)
                }
                tag => ColumnValue::Scalar(input.value(tag)?),
            };
            columns.push(column);
        }
        if input.at != bytes.len() {
            return Err(input.error("trailing bytes"));
        }
        Ok(FilterRow(columns))
    }
}

fn push_value(out: &mut Vec<u8>, value: &FilterValue) {
    match value {
        FilterValue::Bool(false) => out.push(TAG_FALSE),
        FilterValue::Bool(true) => out.push(TAG_TRUE),
        FilterValue::Int(i) => {
            out.push(TAG_INT);
            out.extend_from_slice(&i.to_le_bytes());
        }
        FilterValue::Float(f) => {
            out.push(TAG_FLOAT);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        FilterValue::Bytes(bytes) => {
            out.push(TAG_BYTES);
            push_count(out, bytes.len());
            out.extend_from_slice(bytes);
        }
    }
}

fn push_count(out: &mut Vec<u8>, count: usize) {
    let mut rest = count as u64;
    while rest >= 0x80 {
        out.push(rest as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

struct Input<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Input<'b> {
    fn error(&self, what: &str) -> Error {
        corrupt(format!("filter row bytes: {what} at byte {}", self.at))
    }

    fn byte(&mut self) -> Result<u8> {
        let byte = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| self.error("truncated"))?;
        self.at += 1;
        Ok(byte)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let taken = self.slice(N)?;
        // `slice` returned exactly N bytes.
        let mut array = [0; N];
        array.copy_from_slice(taken);
        Ok(array)
    }

    fn slice(&mut self, len: usize) -> Result<&'b [u8]> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| self.error("truncated"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    /// A count of things that take at least a byte each, so no valid count exceeds the bytes
    /// left; checking that keeps a corrupt count from reserving a huge allocation.
    fn count(&mut self) -> Result<usize> {
        let mut count: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(self.error("count overflows"));
            }
            count |= bits << shift;
            if byte & 0x80 == 0 {
                let left = self.bytes.len() - self.at;
                return match usize::try_from(count) {
                    Ok(count) if count <= left => Ok(count),
                    _ => Err(self.error("count exceeds the bytes left")),
                };
            }
        }
        Err(self.error("count overflows"))
    }

    fn value(&mut self, tag: u8) -> Result<FilterValue> {
        Ok(match tag {
            TAG_FALSE => FilterValue::Bool(false),
            TAG_TRUE => FilterValue::Bool(true),
            TAG_INT => FilterValue::Int(i64::from_le_bytes(self.take()?)),
            TAG_FLOAT => FilterValue::Float(f64::from_bits(u64::from_le_bytes(self.take()?))),
            TAG_BYTES => {
                let len = self.count()?;
                FilterValue::Bytes(self.slice(len)?.to_vec())
            }
            _ => return Err(self.error(&format!("unknown tag {tag}"))),
        })
    }
}
