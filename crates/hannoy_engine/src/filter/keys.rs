//! The key layout of the value -> items database and the per-item record of its keys.
//!
//! A key is `[column: u16 big-endian][tag: u8][encoded value]`. Big-endian columns and the
//! value tag's following the markers make every value of a column one contiguous key range,
//! sorted by value, so a range condition is one cursor walk.
//!
//! Values with 8-byte encodings (every integer and float) are also kept by group: `[column][TAG_GROUP][the
//! encoding's first 7 bytes]` holds the items of 256 consecutive encodings, so a range over
//! many distinct values reads one bitmap per whole group inside it and single values only at
//! its two ends (5,000 integers: about 20 groups and 500 values instead of 5,000 values).

use crate::error::{corrupt, Result};

use super::value::FilterValue;
use super::{ColumnValue, FilterRow};

/// The column and tag in front of every key.
pub(crate) const PREFIX_BYTES: usize = 3;

/// Items whose column is NULL.
pub(crate) const TAG_NULL: u8 = 0;
/// Items whose column is not NULL (a scalar, or an array, empty or not).
pub(crate) const TAG_NOT_NULL: u8 = 1;
/// Items whose column is an empty array.
pub(crate) const TAG_EMPTY_ARRAY: u8 = 2;
/// Items whose column is (or, for an array, has an element) equal to the encoded value that
/// follows. Ranges end a column's values at the next tag.
pub(crate) const TAG_VALUE: u8 = 3;
/// Items with an 8-byte value in the group of 256 encodings that follows (7 bytes).
pub(crate) const TAG_GROUP: u8 = 4;

/// Bytes of an integer or float encoding, and of a group's prefix of it.
pub(crate) const FIXED_BYTES: usize = 8;
/// Bytes of a group key's value: the encoding without its last byte.
const GROUP_BYTES: usize = FIXED_BYTES - 1;

pub(crate) fn prefix(column: u16, tag: u8) -> [u8; PREFIX_BYTES] {
    let [hi, lo] = column.to_be_bytes();
    [hi, lo, tag]
}

pub(crate) fn marker_key(column: u16, tag: u8) -> Vec<u8> {
    prefix(column, tag).to_vec()
}

pub(crate) fn value_key(column: u16, value: &FilterValue) -> Vec<u8> {
    let mut key = Vec::with_capacity(PREFIX_BYTES + value.encoded_len());
    key.extend_from_slice(&prefix(column, TAG_VALUE));
    value.encode_into(&mut key);
    key
}

/// The key of group `group`: encodings `group * 256 ..= group * 256 + 255`.
pub(crate) fn group_key(column: u16, group: u64) -> Vec<u8> {
    let mut key = prefix(column, TAG_GROUP).to_vec();
    key.extend_from_slice(&(group << 8).to_be_bytes()[..GROUP_BYTES]);
    key
}

/// The key of an 8-byte encoding read as a big-endian number, as ranges over groups count.
pub(crate) fn fixed_value_key(column: u16, encoding: u64) -> Vec<u8> {
    let mut key = prefix(column, TAG_VALUE).to_vec();
    key.extend_from_slice(&encoding.to_be_bytes());
    key
}

/// A value's 8-byte encoding (every integer and float) read as a big-endian number, the
/// order groups and fixed-width ranges count in; `None` for other lengths.
pub(crate) fn fixed_number(value: &FilterValue) -> Option<u64> {
    let encoded = value.encoded_ref();
    let bytes: [u8; FIXED_BYTES] = encoded.as_slice().try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// The group key of a value with an 8-byte encoding; others have none.
fn value_group_key(column: u16, value: &FilterValue) -> Option<Vec<u8>> {
    fixed_number(value).map(|number| group_key(column, number >> 8))
}

/// Every key an item with `row` appears under, sorted and without repeats.
pub(crate) fn row_keys(row: &FilterRow) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    for (column, value) in row.0.iter().enumerate() {
        // Rows longer than u16::MAX + 1 columns are refused before they get here.
        let column = column as u16;
        match value {
            ColumnValue::Null => keys.push(marker_key(column, TAG_NULL)),
            ColumnValue::Scalar(v) => {
                keys.push(marker_key(column, TAG_NOT_NULL));
                keys.push(value_key(column, v));
                keys.extend(value_group_key(column, v));
            }
            ColumnValue::Array(elements) => {
                keys.push(marker_key(column, TAG_NOT_NULL));
                if elements.is_empty() {
                    keys.push(marker_key(column, TAG_EMPTY_ARRAY));
                }
                keys.extend(elements.iter().map(|v| value_key(column, v)));
                keys.extend(elements.iter().filter_map(|v| value_group_key(column, v)));
            }
        }
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// `[count: u32 LE]` then, per key, `[length: u16 LE][key]`. Keys are at most 511 bytes
/// (LMDB's limit), so a u16 length always fits.
pub(crate) fn encode_record(keys: &[Vec<u8>]) -> Vec<u8> {
    let bytes = 4 + keys.iter().map(|k| 2 + k.len()).sum::<usize>();
    let mut out = Vec::with_capacity(bytes);
    out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
    for key in keys {
        out.extend_from_slice(&(key.len() as u16).to_le_bytes());
        out.extend_from_slice(key);
    }
    out
}

pub(crate) fn decode_record(id: u32, mut bytes: &[u8]) -> Result<Vec<&[u8]>> {
    let bad = |what: &str| corrupt(format!("filter record of item {id}: {what}"));
    let count = take(&mut bytes, 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| bad("no key count"))?;
    // Each key takes at least its two length bytes, which bounds a corrupt count.
    if count as usize > bytes.len() / 2 {
        return Err(bad("key count exceeds the record"));
    }
    let mut keys = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = take(&mut bytes, 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| bad("truncated key length"))?;
        let key = take(&mut bytes, len as usize).ok_or_else(|| bad("truncated key"))?;
        if key.len() < PREFIX_BYTES {
            return Err(bad("key shorter than its prefix"));
        }
        keys.push(key);
    }
    if !bytes.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(keys)
}

fn take<'b>(bytes: &mut &'b [u8], n: usize) -> Option<&'b [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (head, tail) = bytes.split_at(n);
    *bytes = tail;
    Some(head)
}
