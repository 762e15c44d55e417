//! A change of an index told by its inputs (rows to link, keys to delete, a repair pass), so
//! that a caller can ship it elsewhere as bytes and run it there as it ran it here: the access
//! method writes each change to Postgres's WAL and replays it on standbys and in recovery.
//!
//! Running the same change twice gives two different graphs (parallel linking is not
//! deterministic) holding the same keys, vectors and filter values.
//!
//! Byte form, little-endian: `kind u8` then, for an insert, `metric u8, dimensions u32, m u32,
//! ef_construction u32, seed u64, code_bits u8 (0: no codes; top bit: no full vectors), log_position u64 (u64::MAX: none), count u32, vector_bytes
//! u32, keys [u64; count], has_rows u8, (row_len u32, row)* when it has rows, vectors` with the
//! vectors last as [`PreparedVectors::padded_bytes`]; for a delete `count u32, keys [u64;
//! count]`; a reconnect is its kind alone.

use std::borrow::Cow;

use crate::distance::{Metric, PreparedVectors};
use crate::error::{corrupt, Result};
use crate::{FilterRow, IndexOptions, Quantization, Watch, Writer};

const KIND_INSERT: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_RECONNECT: u8 = 3;
const NO_LOG_POSITION: u64 = u64::MAX;
/// The top bit of the code-bits byte: the index keeps no full vectors (bits are at most 8).
const NO_VECTORS: u8 = 0x80;
/// The next bit: each link list is stored with its neighbours' codes as well.
const NEIGHBOUR_CODES: u8 = 0x40;

/// Rows to link, each with its key and (for an index with filter columns) its values.
#[derive(Debug, Clone)]
pub struct InsertRows<'a> {
    /// What the index is created with when it does not exist yet.
    pub options: IndexOptions,
    pub vectors: Cow<'a, PreparedVectors>,
    pub keys: Cow<'a, [u64]>,
    /// One per vector, or none for an index without filter columns.
    pub rows: Cow<'a, [FilterRow]>,
    /// The caller's log position these rows bring the index to (see
    /// [`Writer::set_log_position`]); rows the index already holds by that measure are skipped.
    pub log_position: Option<u64>,
}

#[derive(Debug, Clone)]
pub enum Change<'a> {
    Insert(InsertRows<'a>),
    /// Deletes the items of these keys and repairs their neighbours.
    Delete {
        keys: Cow<'a, [u64]>,
    },
    /// Links back every item the entry point cannot reach.
    Reconnect,
}

impl Change<'_> {
    /// Runs the change in `writer`'s transaction.
    pub fn apply(&self, writer: &mut Writer<'_>, watch: &dyn Watch) -> Result<()> {
        match self {
            Change::Insert(insert) => {
                if let Some(position) = insert.log_position {
                    if writer.log_position()? >= position {
                        return Ok(());
                    }
                }
                if insert.rows.is_empty() {
                    writer.insert_keyed(&insert.vectors, &insert.keys, watch)?;
                } else {
                    writer.insert_keyed_with_filters(
                        &insert.vectors,
                        &insert.keys,
                        &insert.rows,
                        watch,
                    )?;
                }
                if let Some(position) = insert.log_position {
                    writer.set_log_position(position)?;
                }
            }
            Change::Delete { keys } => {
                writer.delete_keys(keys, watch)?;
            }
            Change::Reconnect => {
                writer.reconnect_unreachable()?;
            }
        }
        Ok(())
    }

    /// How many vectors the change adds at most, for [`crate::Index::reserve`].
    pub fn added(&self) -> usize {
        match self {
            Change::Insert(insert) => insert.vectors.len(),
            _ => 0,
        }
    }

    /// The change as bytes, in two parts to be written one after the other: everything but the
    /// vectors, and the vectors (borrowed, not copied).
    pub fn encode(&self) -> (Vec<u8>, &[u8]) {
        let mut head = Vec::new();
        match self {
            Change::Insert(insert) => {
                let o = &insert.options;
                head.push(KIND_INSERT);
                head.push(o.metric as u8);
                head.extend((o.dimensions as u32).to_le_bytes());
                head.extend((o.m as u32).to_le_bytes());
                head.extend((o.ef_construction as u32).to_le_bytes());
                head.extend(o.seed.to_le_bytes());
                head.push(
                    o.quantization.bits()
                        | if o.keep_vectors { 0 } else { NO_VECTORS }
                        | if o.neighbour_codes {
                            NEIGHBOUR_CODES
                        } else {
                            0
                        },
                );
                head.extend(insert.log_position.unwrap_or(NO_LOG_POSITION).to_le_bytes());
                head.extend((insert.keys.len() as u32).to_le_bytes());
                head.extend((insert.vectors.vector_bytes() as u32).to_le_bytes());
                push_keys(&mut head, &insert.keys);
                head.push(u8::from(!insert.rows.is_empty()));
                for row in insert.rows.iter() {
                    let bytes = row.to_bytes();
                    head.extend((bytes.len() as u32).to_le_bytes());
                    head.extend(bytes);
                }
                (head, insert.vectors.padded_bytes())
            }
            Change::Delete { keys } => {
                head.push(KIND_DELETE);
                head.extend((keys.len() as u32).to_le_bytes());
                push_keys(&mut head, keys);
                (head, &[])
            }
            Change::Reconnect => {
                head.push(KIND_RECONNECT);
                (head, &[])
            }
        }
    }

    /// Reads back what [`Change::encode`] wrote (its two parts joined).
    pub fn decode(bytes: &[u8]) -> Result<Change<'static>> {
        let mut input = Input(bytes);
        let change = match input.u8()? {
            KIND_INSERT => {
                let code = input.u8()?;
                let metric = Metric::from_code(u32::from(code))
                    .ok_or_else(|| corrupt(format!("unknown metric {code} in a change")))?;
                let (dimensions, m, ef_construction, seed) =
                    (input.u32()?, input.u32()?, input.u32()?, input.u64()?);
                let codes = input.u8()?;
                let options = IndexOptions {
                    metric,
                    dimensions: dimensions as usize,
                    m: m as usize,
                    ef_construction: ef_construction as usize,
                    seed,
                    quantization: Quantization::from_bits(codes & !(NO_VECTORS | NEIGHBOUR_CODES)),
                    keep_vectors: codes & NO_VECTORS == 0,
                    neighbour_codes: codes & NEIGHBOUR_CODES != 0,
                };
                let log_position = Some(input.u64()?).filter(|p| *p != NO_LOG_POSITION);
                let count = input.u32()? as usize;
                let vector_bytes = input.u32()? as usize;
                let keys = input.keys(count)?;
                let rows = if input.u8()? != 0 {
                    (0..count)
                        .map(|_| {
                            let len = input.u32()? as usize;
                            FilterRow::from_bytes(input.take(len)?)
                        })
                        .collect::<Result<Vec<_>>>()?
                } else {
                    Vec::new()
                };
                let vectors = PreparedVectors::from_padded(vector_bytes, input.0)?;
                if vectors.len() != count {
                    return Err(corrupt(format!(
                        "a change holds {} vectors for {count} keys",
                        vectors.len()
                    )));
                }
                Change::Insert(InsertRows {
                    options,
                    vectors: Cow::Owned(vectors),
                    keys: Cow::Owned(keys),
                    rows: Cow::Owned(rows),
                    log_position,
                })
            }
            KIND_DELETE => {
                let count = input.u32()? as usize;
                Change::Delete {
                    keys: Cow::Owned(input.keys(count)?),
                }
            }
            KIND_RECONNECT => Change::Reconnect,
            kind => return Err(corrupt(format!("unknown change kind {kind}"))),
        };
        Ok(change)
    }
}

fn push_keys(out: &mut Vec<u8>, keys: &[u64]) {
    out.reserve(keys.len() * 8);
    for key in keys {
        out.extend(key.to_le_bytes());
    }
}

struct Input<'b>(&'b [u8]);

impl<'b> Input<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8]> {
        if self.0.len() < n {
            return Err(corrupt("a change ends early"));
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn keys(&mut self, count: usize) -> Result<Vec<u64>> {
        let bytes = self.take(
            count
                .checked_mul(8)
                .ok_or_else(|| corrupt("too many keys"))?,
        )?;
        Ok(bytes
            .chunks_exact(8)
            .map(|k| u64::from_le_bytes(k.try_into().expect("8 bytes")))
            .collect())
    }
}
