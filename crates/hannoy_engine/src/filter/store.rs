//! The two filter databases: reads, batched writes, evaluation of conditions and the check.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use heed::byteorder::NativeEndian;
use heed::types::{Bytes, U32};
use heed::{Database, Env, IntegerComparator, RoTxn, RwTxn, WithoutTls};
use roaring::{MultiOps, RoaringBitmap};

use super::keys::{
    decode_record, encode_record, fixed_number, fixed_value_key, group_key, marker_key, prefix,
    row_keys, value_key, FIXED_BYTES, PREFIX_BYTES, TAG_GROUP, TAG_NOT_NULL, TAG_NULL, TAG_VALUE,
};
use super::{FilterCondition, FilterRow, FilterValue, MAX_FILTER_VALUE_BYTES};
use crate::check::CheckReport;
use crate::error::{corrupt, Result};
use crate::storage::integer_keyed;
use crate::ItemId;

const VALUES_DATABASE: &str = "hannoy.filter_values";
const RECORDS_DATABASE: &str = "hannoy.item_filters";

/// No stored key is longer; a longer one can be neither stored nor looked up.
const MAX_KEY_BYTES: usize = PREFIX_BYTES + MAX_FILTER_VALUE_BYTES;

#[derive(Clone, Copy)]
pub(crate) struct FilterStore {
    /// Key (see `keys`) -> serialized roaring bitmap of items; empty bitmaps are not stored.
    values: Database<Bytes, Bytes>,
    /// Item -> the keys it is under (`keys::encode_record`); items under no key have none.
    records: Database<U32<NativeEndian>, Bytes, IntegerComparator>,
}

/// The values of one column within two bounds, as a range condition asks for them.
#[derive(Clone, Copy)]
struct ValueRange<'a> {
    column: u16,
    lower: Bound<&'a FilterValue>,
    upper: Bound<&'a FilterValue>,
}

/// What one write does to one key's bitmap: removals first, so an item whose new values
/// include an old one keeps it.
#[derive(Default)]
struct Change {
    removed: RoaringBitmap,
    added: RoaringBitmap,
}

/// Sorted, so the bitmaps are rewritten in key order, page after page.
type Changes = BTreeMap<Vec<u8>, Change>;

impl FilterStore {
    pub fn create(env: &Env<WithoutTls>, wtxn: &mut RwTxn) -> Result<FilterStore> {
        Ok(FilterStore {
            values: env
                .database_options()
                .types::<Bytes, Bytes>()
                .name(VALUES_DATABASE)
                .create(wtxn)?,
            records: integer_keyed::<U32<NativeEndian>, Bytes>(env, RECORDS_DATABASE)
                .create(wtxn)?,
        })
    }

    /// `None` when the environment has neither database (it predates them).
    pub fn open(env: &Env<WithoutTls>, rtxn: &RoTxn) -> Result<Option<FilterStore>> {
        let values = env
            .database_options()
            .types::<Bytes, Bytes>()
            .name(VALUES_DATABASE)
            .open(rtxn)?;
        let records =
            integer_keyed::<U32<NativeEndian>, Bytes>(env, RECORDS_DATABASE).open(rtxn)?;
        match (values, records) {
            (Some(values), Some(records)) => Ok(Some(FilterStore { values, records })),
            (None, None) => Ok(None),
            _ => Err(corrupt("one of the two filter databases is missing")),
        }
    }

    pub fn clear(&self, wtxn: &mut RwTxn) -> Result<()> {
        self.values.clear(wtxn)?;
        Ok(self.records.clear(wtxn)?)
    }

    pub fn pages(&self, txn: &RoTxn) -> Result<u64> {
        let pages =
            |s: heed::DatabaseStat| (s.branch_pages + s.leaf_pages + s.overflow_pages) as u64;
        Ok(pages(self.values.stat(txn)?) + pages(self.records.stat(txn)?))
    }

    /// Gives each item the values of its row, replacing any it had. Each touched bitmap is read
    /// and written once, however many of the items are under it.
    pub fn set_rows<'r>(
        &self,
        wtxn: &mut RwTxn,
        rows: impl IntoIterator<Item = (ItemId, &'r FilterRow)>,
    ) -> Result<()> {
        let mut changes = Changes::new();
        for (id, row) in rows {
            let had_record = self.forget(wtxn, id, &mut changes)?;
            let keys = row_keys(row);
            if !keys.is_empty() {
                self.records.put(wtxn, &id, &encode_record(&keys))?;
            } else if had_record {
                self.records.delete(wtxn, &id)?;
            }
            for key in keys {
                changes.entry(key).or_default().added.insert(id);
            }
        }
        self.apply(wtxn, changes)
    }

    /// Takes `ids` out of every bitmap they are in; costs what their own records list, not
    /// what the index holds.
    pub fn remove(&self, wtxn: &mut RwTxn, ids: &RoaringBitmap) -> Result<()> {
        let mut changes = Changes::new();
        for id in ids {
            if self.forget(wtxn, id, &mut changes)? {
                self.records.delete(wtxn, &id)?;
            }
        }
        self.apply(wtxn, changes)
    }

    /// Schedules `id`'s removal from the keys its record lists; false if it has no record.
    fn forget(&self, wtxn: &RwTxn, id: ItemId, changes: &mut Changes) -> Result<bool> {
        let Some(record) = self.records.get(wtxn, &id)? else {
            return Ok(false);
        };
        for key in decode_record(id, record)? {
            changes.entry(key.to_vec()).or_default().removed.insert(id);
        }
        Ok(true)
    }

    fn apply(&self, wtxn: &mut RwTxn, changes: Changes) -> Result<()> {
        let mut buffer = Vec::new();
        for (key, change) in changes {
            let mut bitmap = self.bitmap(wtxn, &key)?.unwrap_or_default();
            bitmap -= &change.removed;
            bitmap |= &change.added;
            if bitmap.is_empty() {
                self.values.delete(wtxn, &key)?;
            } else {
                buffer.clear();
                bitmap.serialize_into(&mut buffer)?;
                self.values.put(wtxn, &key, &buffer)?;
            }
        }
        Ok(())
    }

    fn bitmap(&self, txn: &RoTxn, key: &[u8]) -> Result<Option<RoaringBitmap>> {
        if key.len() > MAX_KEY_BYTES {
            return Ok(None);
        }
        self.values.get(txn, key)?.map(decode_bitmap).transpose()
    }

    fn bitmap_or_empty(&self, txn: &RoTxn, key: &[u8]) -> Result<RoaringBitmap> {
        Ok(self.bitmap(txn, key)?.unwrap_or_default())
    }

    /// The live items that meet every condition; see [`crate::Reader::filter`].
    pub fn filter(
        &self,
        txn: &RoTxn,
        live: &RoaringBitmap,
        conditions: &[FilterCondition],
    ) -> Result<RoaringBitmap> {
        let mut ordered: Vec<&FilterCondition> = conditions.iter().collect();
        ordered.sort_by_key(|c| c.cost_rank());
        let mut result = live.clone();
        for condition in ordered {
            if result.is_empty() {
                break;
            }
            let matched = self.matching(txn, condition, &result)?;
            result &= matched;
        }
        Ok(result)
    }

    /// The items that meet `condition`, or at least those of them inside `within`.
    fn matching(
        &self,
        txn: &RoTxn,
        condition: &FilterCondition,
        within: &RoaringBitmap,
    ) -> Result<RoaringBitmap> {
        match condition {
            FilterCondition::Eq { column, value } => {
                self.bitmap_or_empty(txn, &value_key(*column, value))
            }
            FilterCondition::In { column, values }
            | FilterCondition::Overlaps { column, values } => values
                .iter()
                .map(|value| self.bitmap_or_empty(txn, &value_key(*column, value)))
                .union(),
            FilterCondition::Range {
                column,
                lower,
                upper,
            } => self.range(
                txn,
                ValueRange {
                    column: *column,
                    lower: lower.as_ref(),
                    upper: upper.as_ref(),
                },
            ),
            FilterCondition::IsNull { column } => {
                self.bitmap_or_empty(txn, &marker_key(*column, TAG_NULL))
            }
            FilterCondition::IsNotNull { column } => {
                self.bitmap_or_empty(txn, &marker_key(*column, TAG_NOT_NULL))
            }
            FilterCondition::Contains { column, values } => {
                if values.is_empty() {
                    return self.bitmap_or_empty(txn, &marker_key(*column, TAG_NOT_NULL));
                }
                let mut all = within.clone();
                for value in values {
                    if all.is_empty() {
                        break;
                    }
                    all &= self.bitmap_or_empty(txn, &value_key(*column, value))?;
                }
                Ok(all)
            }
            FilterCondition::ContainedBy { column, values } => {
                let allowed: HashSet<Vec<u8>> = values.iter().map(FilterValue::encoded).collect();
                let mut outside = RoaringBitmap::new();
                for entry in self.values.prefix_iter(txn, &prefix(*column, TAG_VALUE))? {
                    let (key, bitmap) = entry?;
                    if !allowed.contains(&key[PREFIX_BYTES..]) {
                        outside |= decode_bitmap(bitmap)?;
                    }
                }
                let mut arrays = self.bitmap_or_empty(txn, &marker_key(*column, TAG_NOT_NULL))?;
                arrays -= outside;
                Ok(arrays)
            }
        }
    }

    /// The items with a value of `column` within the bounds: the union over one key range, or
    /// for integer and float bounds over whole groups and the values at both ends.
    fn range(&self, txn: &RoTxn, range: ValueRange) -> Result<RoaringBitmap> {
        let ValueRange { lower, upper, .. } = range;
        let fixed_or_open = |bound: Bound<&FilterValue>| {
            FilterValue::is_fixed_bound(bound) || bound == Bound::Unbounded
        };
        if FilterValue::is_fixed_bound(lower) || FilterValue::is_fixed_bound(upper) {
            if fixed_or_open(lower) && fixed_or_open(upper) {
                return self.fixed_range(txn, range);
            }
            // One bound of another kind: the plain walk, keeping only 8-byte values.
            return self.value_range(txn, range, Some(FIXED_BYTES));
        }
        self.value_range(txn, range, None)
    }

    /// A range with integer or float bounds (or none on one side), over 8-byte encodings as
    /// numbers: the whole groups inside it, and single values between its ends and them.
    fn fixed_range(&self, txn: &RoTxn, range: ValueRange) -> Result<RoaringBitmap> {
        let ValueRange {
            column,
            lower,
            upper,
        } = range;
        // `range` sends only integer and float bounds here, all 8-byte encodings.
        let number = |v: &FilterValue| fixed_number(v).expect("an integer or float bound");
        // The first and last encodings inside, as u128 so that the ends of u64 need no care.
        let first = match lower {
            Bound::Unbounded => 0,
            Bound::Included(v) => number(v) as u128,
            Bound::Excluded(v) => number(v) as u128 + 1,
        };
        let last = match upper {
            Bound::Unbounded => u64::MAX as u128,
            Bound::Included(v) => number(v) as u128,
            Bound::Excluded(v) if number(v) == 0 => return Ok(RoaringBitmap::new()),
            Bound::Excluded(v) => number(v) as u128 - 1,
        };
        if first > last {
            return Ok(RoaringBitmap::new());
        }
        // Groups g with g * 256 >= first and g * 256 + 255 <= last.
        let (group_start, group_end) = (first.div_ceil(256), (last + 1) / 256);
        let values = |from: u128, to: u128| {
            self.keys_union(
                txn,
                Bound::Included(fixed_value_key(column, from as u64)),
                Bound::Included(fixed_value_key(column, to as u64)),
                Some(FIXED_BYTES),
            )
        };
        if group_start >= group_end {
            return values(first, last);
        }
        let end_of_groups = if group_end > (u64::MAX >> 8) as u128 {
            Bound::Excluded(prefix(column, TAG_GROUP + 1).to_vec())
        } else {
            Bound::Excluded(group_key(column, group_end as u64))
        };
        let groups = self.keys_union(
            txn,
            Bound::Included(group_key(column, group_start as u64)),
            end_of_groups,
            None,
        )?;
        let mut parts = vec![groups];
        if first < group_start * 256 {
            parts.push(values(first, group_start * 256 - 1)?);
        }
        if group_end * 256 <= last {
            parts.push(values(group_end * 256, last)?);
        }
        Ok(parts.union())
    }

    /// The union of the bitmaps of the keys between `start` and `end`; with `value_bytes`,
    /// only of the keys whose value has that many bytes.
    fn keys_union(
        &self,
        txn: &RoTxn,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        value_bytes: Option<usize>,
    ) -> Result<RoaringBitmap> {
        let range = (
            start.as_ref().map(Vec::as_slice),
            end.as_ref().map(Vec::as_slice),
        );
        // One union of all, not one at a time: adding many small bitmaps one by one into a
        // growing one copies its containers each time.
        self.values
            .range(txn, &range)?
            .filter(|entry| match (entry, value_bytes) {
                (Ok((key, _)), Some(bytes)) => key.len() == PREFIX_BYTES + bytes,
                _ => true,
            })
            .map(|entry| decode_bitmap(entry?.1))
            .union()
    }

    /// The items with a value of `column` within the bounds, bytewise, over one key range;
    /// with `value_bytes`, only values of that many bytes.
    fn value_range(
        &self,
        txn: &RoTxn,
        range: ValueRange,
        value_bytes: Option<usize>,
    ) -> Result<RoaringBitmap> {
        let ValueRange {
            column,
            lower,
            upper,
        } = range;
        let values = prefix(column, TAG_VALUE);
        let key = |value: &FilterValue| value_key(column, value);
        // A bound longer than any stored key cannot be looked up, but its first MAX_KEY_BYTES
        // split the stored keys the same way: for a stored s (never longer), s >= b exactly
        // when s > b[..MAX], and s <= b exactly when s <= b[..MAX].
        let start = match lower {
            Bound::Unbounded => Bound::Included(values.to_vec()),
            Bound::Included(v) | Bound::Excluded(v) if v.encoded_len() > MAX_FILTER_VALUE_BYTES => {
                Bound::Excluded(key(v)[..MAX_KEY_BYTES].to_vec())
            }
            Bound::Included(v) => Bound::Included(key(v)),
            Bound::Excluded(v) => Bound::Excluded(key(v)),
        };
        let end = match upper {
            // The value tag is the last, so the next tag bounds the column's values.
            Bound::Unbounded => Bound::Excluded(prefix(column, TAG_VALUE + 1).to_vec()),
            Bound::Included(v) | Bound::Excluded(v) if v.encoded_len() > MAX_FILTER_VALUE_BYTES => {
                Bound::Included(key(v)[..MAX_KEY_BYTES].to_vec())
            }
            Bound::Included(v) => Bound::Included(key(v)),
            Bound::Excluded(v) => Bound::Excluded(key(v)),
        };
        let empty = match (&start, &end) {
            (Bound::Included(a), Bound::Included(b)) => a > b,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
                a >= b
            }
            _ => false,
        };
        if empty {
            return Ok(RoaringBitmap::new());
        }
        self.keys_union(txn, start, end, value_bytes)
    }

    /// Compares the bitmaps with the item records, both ways, and counts what belongs to items
    /// that are not live.
    pub fn check(&self, txn: &RoTxn, live: &RoaringBitmap, report: &mut CheckReport) -> Result<()> {
        let mut expected: BTreeMap<Vec<u8>, RoaringBitmap> = BTreeMap::new();
        for entry in self.records.iter(txn)? {
            let (id, record) = entry?;
            if !live.contains(id) {
                report.stray_filters += 1;
                continue;
            }
            report.filtered += 1;
            for key in decode_record(id, record)? {
                expected.entry(key.to_vec()).or_default().insert(id);
            }
        }
        for entry in self.values.iter(txn)? {
            let (key, bytes) = entry?;
            let bitmap = decode_bitmap(bytes)?;
            if bitmap.is_empty() {
                report.mismatched_filters += 1;
            }
            report.stray_filters += (&bitmap - live).len();
            let recorded = expected.remove(key).unwrap_or_default();
            report.mismatched_filters += ((bitmap & live) ^ recorded).len();
        }
        report.mismatched_filters += expected.values().map(RoaringBitmap::len).sum::<u64>();
        Ok(())
    }
}

fn decode_bitmap(bytes: &[u8]) -> Result<RoaringBitmap> {
    RoaringBitmap::deserialize_from(bytes).map_err(|e| corrupt(format!("filter bitmap: {e}")))
}
