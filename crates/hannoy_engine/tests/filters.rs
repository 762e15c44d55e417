//! Filter values: `Reader::filter` against a brute-force evaluation of the same conditions over
//! an in-memory copy of the rows, through inserts, deletes, replacements by key, updates and a
//! reopen; `FilterCondition::matches` on each row against `Reader::filter`; the rows' byte form;
//! and the value encoding's order against PostgreSQL's.

mod common;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::ops::Bound;

use common::*;
use hannoy_engine::{
    never_cancel, ColumnValue, Error, FilterCondition, FilterRow, FilterValue, Index, ItemId,
    Metric, VectorRef, FORMAT_VERSION, MAX_FILTER_VALUE_BYTES,
};
use roaring::RoaringBitmap;

const DIMS: usize = 8;

/// Columns of the test rows.
const INT: u16 = 0;
const FLOAT: u16 = 1;
const TEXT: u16 = 2;
const BOOL: u16 = 3;
const INT_ARRAY: u16 = 4;
const COLUMNS: u16 = 5;

// ---------------------------------------------------------------------------------------------
// The reference: PostgreSQL's order and the conditions' meaning, written without the encoding.

/// PostgreSQL's comparison of two values of one column type (float8: -0 = 0, NaN = NaN and
/// above everything else).
fn pg_cmp(a: &FilterValue, b: &FilterValue) -> Ordering {
    match (a, b) {
        (FilterValue::Int(a), FilterValue::Int(b)) => a.cmp(b),
        (FilterValue::Bool(a), FilterValue::Bool(b)) => a.cmp(b),
        (FilterValue::Bytes(a), FilterValue::Bytes(b)) => a.cmp(b),
        (FilterValue::Float(a), FilterValue::Float(b)) => match (a.is_nan(), b.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => a.partial_cmp(b).unwrap(),
        },
        _ => panic!("the test compares values of different kinds: {a:?} {b:?}"),
    }
}

fn pg_eq(a: &FilterValue, b: &FilterValue) -> bool {
    pg_cmp(a, b) == Ordering::Equal
}

fn within(x: &FilterValue, lower: &Bound<FilterValue>, upper: &Bound<FilterValue>) -> bool {
    let above = match lower {
        Bound::Unbounded => true,
        Bound::Included(l) => pg_cmp(x, l) != Ordering::Less,
        Bound::Excluded(l) => pg_cmp(x, l) == Ordering::Greater,
    };
    let below = match upper {
        Bound::Unbounded => true,
        Bound::Included(u) => pg_cmp(x, u) != Ordering::Greater,
        Bound::Excluded(u) => pg_cmp(x, u) == Ordering::Less,
    };
    above && below
}

/// The values a column holds, as a set to test against: a scalar is one, an array its
/// elements. `None` for NULL and for a column the row does not have.
fn elements(row: &FilterRow, column: u16) -> Option<&[FilterValue]> {
    match row.0.get(column as usize)? {
        ColumnValue::Null => None,
        ColumnValue::Scalar(v) => Some(std::slice::from_ref(v)),
        ColumnValue::Array(xs) => Some(xs),
    }
}

fn matches(condition: &FilterCondition, row: &FilterRow) -> bool {
    let column = condition.column();
    let Some(value) = row.0.get(column as usize) else {
        // Columns past the end of a row are unknown: no condition holds for them.
        return false;
    };
    if let FilterCondition::IsNull { .. } = condition {
        return *value == ColumnValue::Null;
    }
    let Some(xs) = elements(row, column) else {
        return false;
    };
    let has = |v: &FilterValue| xs.iter().any(|x| pg_eq(x, v));
    match condition {
        FilterCondition::Eq { value, .. } => has(value),
        FilterCondition::In { values, .. } | FilterCondition::Overlaps { values, .. } => {
            values.iter().any(has)
        }
        FilterCondition::Range { lower, upper, .. } => xs.iter().any(|x| within(x, lower, upper)),
        FilterCondition::IsNotNull { .. } => true,
        FilterCondition::Contains { values, .. } => values.iter().all(has),
        FilterCondition::ContainedBy { values, .. } => {
            xs.iter().all(|x| values.iter().any(|v| pg_eq(x, v)))
        }
        FilterCondition::IsNull { .. } => unreachable!(),
    }
}

fn brute_force(rows: &HashMap<ItemId, FilterRow>, conditions: &[FilterCondition]) -> RoaringBitmap {
    rows.iter()
        .filter(|(_, row)| conditions.iter().all(|c| matches(c, row)))
        .map(|(&id, _)| id)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Random rows and conditions, from small pools so that values repeat and conditions match.

fn float_pool() -> Vec<f64> {
    vec![
        -0.0,
        0.0,
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff0_0000_dead_beef), // a NaN with a payload
        f64::INFINITY,
        f64::NEG_INFINITY,
        1.5,
        -1.5,
        -2.25,
        1e300,
        -1e-300,
        f64::MIN_POSITIVE,
        f64::from_bits(1),                      // the smallest subnormal
        -f64::from_bits(0x000f_ffff_ffff_ffff), // the largest negative subnormal
        f64::MAX,
        f64::MIN,
        3.0,
    ]
}

fn random_int(rng: &mut Rng) -> i64 {
    match rng.below(20) {
        0 => i64::MIN,
        1 => i64::MAX,
        _ => rng.below(60) as i64 - 30,
    }
}

fn random_float(rng: &mut Rng) -> f64 {
    let pool = float_pool();
    pool[rng.below(pool.len())]
}

fn random_text(rng: &mut Rng) -> Vec<u8> {
    if rng.below(40) == 0 {
        // A uuid-like value.
        return (0..16).map(|_| rng.below(256) as u8).collect();
    }
    (0..rng.below(4)).map(|_| b"abc"[rng.below(3)]).collect()
}

fn random_value(rng: &mut Rng, column: u16) -> FilterValue {
    match column {
        INT | INT_ARRAY => FilterValue::Int(if column == INT {
            random_int(rng)
        } else {
            rng.below(12) as i64
        }),
        FLOAT => FilterValue::Float(random_float(rng)),
        TEXT => FilterValue::Bytes(random_text(rng)),
        BOOL => FilterValue::Bool(rng.below(2) == 1),
        _ => unreachable!(),
    }
}

fn random_row(rng: &mut Rng) -> FilterRow {
    let mut columns: Vec<ColumnValue> = (0..COLUMNS)
        .map(|column| {
            if rng.below(8) == 0 {
                return ColumnValue::Null;
            }
            if column == INT_ARRAY {
                let len = if rng.below(6) == 0 {
                    0
                } else {
                    1 + rng.below(4)
                };
                ColumnValue::Array((0..len).map(|_| random_value(rng, column)).collect())
            } else {
                ColumnValue::Scalar(random_value(rng, column))
            }
        })
        .collect();
    if rng.below(50) == 0 {
        // A row without the last columns: they match nothing, not even IS NULL.
        columns.truncate(3);
    }
    FilterRow(columns)
}

/// Draws one value for a column: `random_value`, or `random_value_of_any_kind`.
type ValueSource = fn(&mut Rng, u16) -> FilterValue;

fn random_values(rng: &mut Rng, column: u16, value: ValueSource) -> Vec<FilterValue> {
    (0..rng.below(4)).map(|_| value(rng, column)).collect()
}

fn random_bound(rng: &mut Rng, column: u16, value: ValueSource) -> Bound<FilterValue> {
    let value = if column == TEXT && rng.below(5) == 0 {
        // Longer than any key LMDB can hold: compared, never looked up.
        FilterValue::Bytes(vec![
            b"abc"[rng.below(3)];
            MAX_FILTER_VALUE_BYTES + 1 + rng.below(200)
        ])
    } else {
        value(rng, column)
    };
    match rng.below(3) {
        0 => Bound::Unbounded,
        1 => Bound::Included(value),
        _ => Bound::Excluded(value),
    }
}

fn random_condition(rng: &mut Rng) -> FilterCondition {
    random_condition_of(rng, random_value)
}

fn random_condition_of(rng: &mut Rng, value: ValueSource) -> FilterCondition {
    let column = rng.below(COLUMNS as usize) as u16;
    match rng.below(8) {
        0 => FilterCondition::Eq {
            column,
            value: value(rng, column),
        },
        1 => FilterCondition::In {
            column,
            values: random_values(rng, column, value),
        },
        2 => {
            let (lower, upper) = (
                random_bound(rng, column, value),
                random_bound(rng, column, value),
            );
            // Often an empty range, or a single value.
            let upper = match (&lower, rng.below(4)) {
                (Bound::Included(v) | Bound::Excluded(v), 0) => {
                    if rng.below(2) == 0 {
                        Bound::Included(v.clone())
                    } else {
                        Bound::Excluded(v.clone())
                    }
                }
                _ => upper,
            };
            FilterCondition::Range {
                column,
                lower,
                upper,
            }
        }
        3 => FilterCondition::IsNull { column },
        4 => FilterCondition::IsNotNull { column },
        5 => FilterCondition::Overlaps {
            column,
            values: random_values(rng, column, value),
        },
        6 => FilterCondition::Contains {
            column,
            values: random_values(rng, column, value),
        },
        _ => FilterCondition::ContainedBy {
            column,
            values: (0..rng.below(10)).map(|_| value(rng, column)).collect(),
        },
    }
}

// ---------------------------------------------------------------------------------------------

fn random_vectors(rng: &mut Rng, n: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| (0..DIMS).map(|_| rng.normal()).collect())
        .collect()
}

/// Inserts (or replaces) keyed items with rows and mirrors them in `model` (key -> row).
fn insert_rows(
    index: &Index,
    vectors: &[Vec<f32>],
    keys: &[u64],
    rows: &[FilterRow],
    model: &mut HashMap<u64, FilterRow>,
) -> Vec<ItemId> {
    let ids = index
        .write(|w| {
            let batch = w.prepare(vectors.iter().map(|v| VectorRef::Floats(v)))?;
            w.insert_keyed_with_filters(&batch, keys, rows, &never_cancel)
        })
        .unwrap();
    for (&key, row) in keys.iter().zip(rows) {
        model.insert(key, row.clone());
    }
    ids
}

/// The model by item id, as the index now numbers the items.
fn rows_by_id(index: &Index, model: &HashMap<u64, FilterRow>) -> HashMap<ItemId, FilterRow> {
    let reader = index.read().unwrap();
    assert_eq!(reader.len(), model.len() as u64);
    model
        .iter()
        .map(|(&key, row)| (reader.item_for_key(key).unwrap().unwrap(), row.clone()))
        .collect()
}

/// `condition.matches` on every row against `Reader::filter` with the condition alone: pending
/// rows are evaluated in memory next to stored ones, so the two must agree item by item.
fn assert_matches_agree(
    reader: &hannoy_engine::Reader,
    rows: &HashMap<ItemId, FilterRow>,
    condition: &FilterCondition,
) {
    let stored = reader.filter(std::slice::from_ref(condition)).unwrap();
    for (&id, row) in rows {
        assert_eq!(
            condition.matches(row),
            stored.contains(id),
            "{condition:?} on item {id}: {row:?}"
        );
    }
}

/// Compares `Reader::filter` with brute force for `rounds` random condition sets, and every
/// column's IS NULL / IS NOT NULL, and `FilterCondition::matches` with both; and checks that
/// the filter store holds only live items.
fn compare(index: &Index, model: &HashMap<u64, FilterRow>, rng: &mut Rng, rounds: usize) {
    let rows = rows_by_id(index, model);
    let reader = index.read().unwrap();
    assert_eq!(reader.filter(&[]).unwrap(), *reader.items());
    assert!(rows
        .values()
        .all(|row| FilterCondition::matches_all(&[], row)));
    let mut nonempty = 0;
    for round in 0..rounds {
        let conditions: Vec<FilterCondition> = (0..1 + rng.below(3))
            .map(|_| random_condition(rng))
            .collect();
        let expected = brute_force(&rows, &conditions);
        let found = reader.filter(&conditions).unwrap();
        assert_eq!(
            found,
            expected,
            "round {round}: {conditions:?}: {} found, {} expected",
            found.len(),
            expected.len()
        );
        for (&id, row) in &rows {
            assert_eq!(
                FilterCondition::matches_all(&conditions, row),
                found.contains(id),
                "round {round}: {conditions:?} on item {id}: {row:?}"
            );
        }
        for condition in &conditions {
            assert_matches_agree(&reader, &rows, condition);
        }
        nonempty += !expected.is_empty() as usize;
    }
    // The conditions are not all trivially empty.
    assert!(nonempty > rounds / 4, "{nonempty} of {rounds} non-empty");
    for column in 0..COLUMNS {
        for condition in [
            FilterCondition::IsNull { column },
            FilterCondition::IsNotNull { column },
        ] {
            let conditions = [condition];
            assert_eq!(
                reader.filter(&conditions).unwrap(),
                brute_force(&rows, &conditions),
                "{conditions:?}"
            );
            assert_matches_agree(&reader, &rows, &conditions[0]);
        }
    }
    let report = reader.check().unwrap();
    assert!(report.is_sound(), "{report:?}");
    assert_eq!(report.filtered, reader.len());
    assert_eq!((report.stray_filters, report.mismatched_filters), (0, 0));
}

/// Map order varies from run to run; the random draws must not.
fn sorted_keys(model: &HashMap<u64, FilterRow>) -> Vec<u64> {
    let mut keys: Vec<u64> = model.keys().copied().collect();
    keys.sort_unstable();
    keys
}

#[test]
fn filters_match_brute_force_through_inserts_deletes_replacements_and_updates() {
    let mut rng = Rng::new(4242);
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), Metric::Euclidean, DIMS);
    let mut model: HashMap<u64, FilterRow> = HashMap::new();

    // Three batches, so later ones merge into bitmaps the earlier ones wrote.
    let n = 3_000;
    for part in 0..3 {
        let keys: Vec<u64> = (part * n / 3..(part + 1) * n / 3)
            .map(|k| k as u64)
            .collect();
        let vectors = random_vectors(&mut rng, keys.len());
        let rows: Vec<FilterRow> = keys.iter().map(|_| random_row(&mut rng)).collect();
        insert_rows(&index, &vectors, &keys, &rows, &mut model);
    }
    compare(&index, &model, &mut rng, 600);

    // Delete a third.
    let doomed_keys: Vec<u64> = sorted_keys(&model)
        .into_iter()
        .filter(|_| rng.below(3) == 0)
        .collect();
    let doomed: RoaringBitmap = {
        let reader = index.read().unwrap();
        doomed_keys
            .iter()
            .map(|&k| reader.item_for_key(k).unwrap().unwrap())
            .collect()
    };
    index.write(|w| w.delete(&doomed, &never_cancel)).unwrap();
    for key in &doomed_keys {
        model.remove(key);
    }
    compare(&index, &model, &mut rng, 400);

    // Replace some live keys with new vectors and values, and add some new keys, in one batch;
    // the freed ids are reused, so stale bitmap entries would show.
    let mut keys: Vec<u64> = sorted_keys(&model)
        .into_iter()
        .filter(|_| rng.below(8) == 0)
        .collect();
    keys.extend(10_000..10_300);
    let vectors = random_vectors(&mut rng, keys.len());
    let rows: Vec<FilterRow> = keys.iter().map(|_| random_row(&mut rng)).collect();
    insert_rows(&index, &vectors, &keys, &rows, &mut model);
    compare(&index, &model, &mut rng, 400);

    // Update the values of some items in place, one call each, in one transaction.
    let mut updates: Vec<(u64, FilterRow)> = Vec::new();
    for key in sorted_keys(&model) {
        if rng.below(10) == 0 {
            updates.push((key, random_row(&mut rng)));
        }
    }
    let ids: Vec<ItemId> = {
        let reader = index.read().unwrap();
        updates
            .iter()
            .map(|(key, _)| reader.item_for_key(*key).unwrap().unwrap())
            .collect()
    };
    index
        .write(|w| {
            for (&id, (_, row)) in ids.iter().zip(&updates) {
                w.set_filters(id, row)?;
            }
            Ok(())
        })
        .unwrap();
    for (key, row) in updates {
        model.insert(key, row);
    }
    compare(&index, &model, &mut rng, 300);

    // The values persist.
    drop(index);
    let index = Index::open(dir.path()).unwrap();
    compare(&index, &model, &mut rng, 100);

    // Deleting everything leaves no filter data; new items start afresh.
    index
        .write(|w| {
            let all = w.items().clone();
            w.delete(&all, &never_cancel)
        })
        .unwrap();
    model.clear();
    let report = index.read().unwrap().check().unwrap();
    assert_eq!((report.filtered, report.stray_filters), (0, 0));
    let keys: Vec<u64> = (0..300).collect();
    let vectors = random_vectors(&mut rng, keys.len());
    let rows: Vec<FilterRow> = keys.iter().map(|_| random_row(&mut rng)).collect();
    insert_rows(&index, &vectors, &keys, &rows, &mut model);
    compare(&index, &model, &mut rng, 100);
}

#[test]
fn items_without_values_match_no_condition_and_bad_rows_are_refused() {
    let mut rng = Rng::new(7);
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), Metric::Euclidean, DIMS);
    assert!(MAX_FILTER_VALUE_BYTES + 3 <= index.env().max_key_size());
    let plain = insert_floats(&index, &random_vectors(&mut rng, 20));
    let longest = FilterValue::Bytes(vec![b'z'; MAX_FILTER_VALUE_BYTES]);
    let rows = vec![
        FilterRow(vec![
            ColumnValue::Null,
            ColumnValue::Scalar(longest.clone()),
        ]),
        FilterRow(vec![]),
    ];
    let mut model = HashMap::new();
    let ids = insert_rows(
        &index,
        &random_vectors(&mut rng, 2),
        &[1, 2],
        &rows,
        &mut model,
    );
    let reader = index.read().unwrap();
    assert_eq!(reader.filter(&[]).unwrap().len(), 22);
    for column in 0..3 {
        let null = reader
            .filter(&[FilterCondition::IsNull { column }])
            .unwrap();
        let not_null = reader
            .filter(&[FilterCondition::IsNotNull { column }])
            .unwrap();
        assert!(plain
            .iter()
            .all(|id| !null.contains(*id) && !not_null.contains(*id)));
        assert_eq!(
            null,
            bitmap((column == 0).then_some(ids[0])),
            "column {column}"
        );
        assert_eq!(
            not_null,
            bitmap((column == 1).then_some(ids[0])),
            "column {column}"
        );
    }
    let eq = |value: FilterValue| {
        reader
            .filter(&[FilterCondition::Eq { column: 1, value }])
            .unwrap()
    };
    assert_eq!(eq(longest.clone()), bitmap([ids[0]]));
    // A longer value cannot be stored, so nothing equals it; as a bound it still sorts right.
    let longer = FilterValue::Bytes(vec![b'z'; MAX_FILTER_VALUE_BYTES + 1]);
    assert!(eq(longer.clone()).is_empty());
    let range = |lower, upper| {
        reader
            .filter(&[FilterCondition::Range {
                column: 1,
                lower,
                upper,
            }])
            .unwrap()
    };
    assert_eq!(
        range(Bound::Unbounded, Bound::Excluded(longer.clone())),
        bitmap([ids[0]])
    );
    assert!(range(Bound::Included(longer.clone()), Bound::Unbounded).is_empty());
    let stored_rows: HashMap<ItemId, FilterRow> = ids.iter().copied().zip(rows).collect();
    let mut conditions = vec![
        FilterCondition::Eq {
            column: 1,
            value: longest.clone(),
        },
        FilterCondition::Eq {
            column: 1,
            value: longer.clone(),
        },
        FilterCondition::Range {
            column: 1,
            lower: Bound::Unbounded,
            upper: Bound::Excluded(longer.clone()),
        },
        FilterCondition::Range {
            column: 1,
            lower: Bound::Included(longer.clone()),
            upper: Bound::Unbounded,
        },
    ];
    for column in 0..3 {
        conditions.push(FilterCondition::IsNull { column });
        conditions.push(FilterCondition::IsNotNull { column });
        conditions.push(FilterCondition::Contains {
            column,
            values: vec![],
        });
        conditions.push(FilterCondition::ContainedBy {
            column,
            values: vec![],
        });
    }
    for condition in &conditions {
        assert_matches_agree(&reader, &stored_rows, condition);
    }
    // Not `is_sound`: keys are all or nothing there, and the plain items have none.
    let report = reader.check().unwrap();
    assert_eq!(
        (
            report.filtered,
            report.stray_filters,
            report.mismatched_filters
        ),
        (1, 0, 0),
        "{report:?}"
    );
    drop(reader);

    let batch = index
        .prepare(
            random_vectors(&mut rng, 2)
                .iter()
                .map(|v| VectorRef::Floats(v)),
        )
        .unwrap();
    let too_long = FilterRow(vec![ColumnValue::Array(vec![longer])]);
    let err = index
        .write(|w| {
            w.insert_keyed_with_filters(
                &batch,
                &[3, 4],
                &[FilterRow::default(), too_long.clone()],
                &never_cancel,
            )
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidParameter {
                name: "filter value",
                ..
            }
        ),
        "{err}"
    );
    let err = index
        .write(|w| w.insert_keyed_with_filters(&batch, &[3, 4], &[], &never_cancel))
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidParameter { name: "rows", .. }),
        "{err}"
    );
    let err = index
        .write(|w| w.set_filters(1_000, &FilterRow::default()))
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidParameter { name: "id", .. }),
        "{err}"
    );
    assert_eq!(index.read().unwrap().len(), 22);
}

#[test]
fn an_environment_from_before_the_filter_databases_is_refused_by_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let index = create(&path, Metric::Euclidean, DIMS);
    insert_floats(&index, &random_vectors(&mut Rng::new(1), 10));
    drop(index);
    {
        let env = raw_env(&path);
        let mut wtxn = env.write_txn().unwrap();
        for name in ["hannoy.filter_values", "hannoy.item_filters"] {
            let db: heed::Database<heed::types::Bytes, heed::types::Bytes> =
                env.open_database(&wtxn, Some(name)).unwrap().unwrap();
            // SAFETY: the handle is not used again.
            unsafe { db.remove(&mut wtxn).unwrap() };
        }
        let meta: heed::Database<heed::types::Str, heed::types::Bytes> = env
            .open_database(&wtxn, Some("hannoy.meta"))
            .unwrap()
            .unwrap();
        let mut bytes = meta.get(&wtxn, "meta").unwrap().unwrap().to_vec();
        bytes[8..12].copy_from_slice(&3u32.to_ne_bytes());
        meta.put(&mut wtxn, "meta", &bytes).unwrap();
        wtxn.commit().unwrap();
    }
    match Index::open(&path) {
        Err(Error::IncompatibleFormat { found, expected }) => {
            assert_eq!((found, expected), (3, FORMAT_VERSION))
        }
        other => panic!("expected IncompatibleFormat, got {other:?}"),
    }
    // Nor is it taken for an empty folder and written over.
    let err = Index::create(
        &path,
        &hannoy_engine::IndexOptions::new(Metric::Euclidean, DIMS),
    )
    .unwrap_err();
    assert!(matches!(err, Error::IndexExists(_)), "{err}");
}

/// A value of any kind whatever the column, from pools where different kinds share encodings
/// (a `Bytes` holding an `Int`'s or a `Float`'s encoding, `[1]` and `true`), so the store's
/// byte equality across kinds is exercised.
fn random_value_of_any_kind(rng: &mut Rng, _column: u16) -> FilterValue {
    let kind = [INT, FLOAT, TEXT, BOOL][rng.below(4)];
    if kind == TEXT && rng.below(2) == 0 {
        let twin = match rng.below(3) {
            0 => FilterValue::Int(rng.below(12) as i64),
            1 => FilterValue::Float(random_float(rng)),
            _ => FilterValue::Bool(rng.below(2) == 1),
        };
        return FilterValue::Bytes(twin.encoded());
    }
    // INT_ARRAY's small ints, which meet their twins above.
    random_value(rng, if kind == INT { INT_ARRAY } else { kind })
}

/// Any column a scalar or an array, of values of any kinds.
fn random_row_of_any_kind(rng: &mut Rng) -> FilterRow {
    let columns = (0..rng.below(COLUMNS as usize + 1))
        .map(|column| match rng.below(3) {
            0 => ColumnValue::Null,
            1 => ColumnValue::Scalar(random_value_of_any_kind(rng, column as u16)),
            _ => ColumnValue::Array(
                (0..rng.below(4))
                    .map(|_| random_value_of_any_kind(rng, column as u16))
                    .collect(),
            ),
        })
        .collect();
    FilterRow(columns)
}

#[test]
fn matches_agrees_with_the_store_on_values_of_mixed_kinds() {
    let mut rng = Rng::new(99);
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), Metric::Euclidean, DIMS);
    let mut model = HashMap::new();
    let keys: Vec<u64> = (0..400).collect();
    let rows: Vec<FilterRow> = keys
        .iter()
        .map(|_| random_row_of_any_kind(&mut rng))
        .collect();
    insert_rows(
        &index,
        &random_vectors(&mut rng, keys.len()),
        &keys,
        &rows,
        &mut model,
    );
    let rows = rows_by_id(&index, &model);
    let reader = index.read().unwrap();
    let mut nonempty = 0;
    for _ in 0..1_500 {
        let condition = random_condition_of(&mut rng, random_value_of_any_kind);
        assert_matches_agree(&reader, &rows, &condition);
        nonempty += rows.values().any(|row| condition.matches(row)) as usize;
    }
    assert!(nonempty > 300, "{nonempty} non-empty");
}

// ---------------------------------------------------------------------------------------------
// The rows' byte form.

/// Equality with floats compared bit for bit (a NaN is not `==` itself).
fn same_bits(a: &FilterRow, b: &FilterRow) -> bool {
    /// A value's kind and bytes.
    type Bits = (u8, Vec<u8>);
    fn value_bits(v: &FilterValue) -> Bits {
        match v {
            FilterValue::Bool(b) => (0, vec![*b as u8]),
            FilterValue::Int(i) => (1, i.to_le_bytes().to_vec()),
            FilterValue::Float(f) => (2, f.to_bits().to_le_bytes().to_vec()),
            FilterValue::Bytes(b) => (3, b.clone()),
        }
    }
    fn column_bits(c: &ColumnValue) -> Option<(bool, Vec<Bits>)> {
        match c {
            ColumnValue::Null => None,
            ColumnValue::Scalar(v) => Some((false, vec![value_bits(v)])),
            ColumnValue::Array(xs) => Some((true, xs.iter().map(value_bits).collect())),
        }
    }
    let bits = |row: &FilterRow| row.0.iter().map(column_bits).collect::<Vec<_>>();
    bits(a) == bits(b)
}

/// Rows the generators rarely or never draw: none or many columns, long bytes, every float.
fn unusual_rows() -> Vec<FilterRow> {
    let floats = float_pool();
    vec![
        FilterRow::default(),
        FilterRow(vec![ColumnValue::Null]),
        FilterRow(vec![ColumnValue::Array(vec![])]),
        FilterRow(vec![ColumnValue::Scalar(FilterValue::Bytes(vec![]))]),
        FilterRow(vec![
            ColumnValue::Scalar(FilterValue::Bytes(vec![0xab; 127])),
            ColumnValue::Scalar(FilterValue::Bytes(vec![0xcd; 128])),
            ColumnValue::Array(vec![FilterValue::Bytes(vec![0; MAX_FILTER_VALUE_BYTES])]),
        ]),
        FilterRow(
            floats
                .iter()
                .map(|&f| ColumnValue::Scalar(FilterValue::Float(f)))
                .collect(),
        ),
        FilterRow(vec![ColumnValue::Array(
            floats.into_iter().map(FilterValue::Float).collect(),
        )]),
        FilterRow(vec![ColumnValue::Array(
            [i64::MIN, -1, 0, 1, i64::MAX]
                .into_iter()
                .map(FilterValue::Int)
                .chain([FilterValue::Bool(false), FilterValue::Bool(true)])
                .collect(),
        )]),
        FilterRow(
            (0..300)
                .map(|i| match i % 3 {
                    0 => ColumnValue::Null,
                    1 => ColumnValue::Scalar(FilterValue::Int(-i)),
                    _ => ColumnValue::Array(vec![FilterValue::Bool(true); i as usize % 5]),
                })
                .collect(),
        ),
    ]
}

#[test]
fn filter_rows_round_trip_through_bytes() {
    let mut rng = Rng::new(31);
    let mut rows = unusual_rows();
    rows.push(FilterRow(vec![ColumnValue::Scalar(FilterValue::Bytes(
        vec![7; 70_000],
    ))]));
    rows.extend((0..2_000).map(|_| random_row(&mut rng)));
    rows.extend((0..2_000).map(|_| random_row_of_any_kind(&mut rng)));
    for row in &rows {
        let bytes = row.to_bytes();
        let back = FilterRow::from_bytes(&bytes).unwrap();
        assert!(same_bits(row, &back), "{row:?} came back as {back:?}");
        assert_eq!(back.to_bytes(), bytes);
    }
    assert_eq!(FilterRow::default().to_bytes().len(), 1);
}

#[test]
fn filter_row_bytes_refuse_truncation_trailing_bytes_and_unknown_tags() {
    let corrupt = |bytes: &[u8]| match FilterRow::from_bytes(bytes) {
        Err(Error::Corrupt(_)) => {}
        other => panic!("{bytes:?} gave {other:?}"),
    };
    let mut rng = Rng::new(32);
    let mut rows = unusual_rows();
    rows.extend((0..300).map(|_| random_row(&mut rng)));
    rows.extend((0..300).map(|_| random_row_of_any_kind(&mut rng)));
    for row in &rows {
        let bytes = row.to_bytes();
        for len in 0..bytes.len() {
            corrupt(&bytes[..len]);
        }
        for extra in [0, 1, 0x80, 0xff] {
            let mut longer = bytes.clone();
            longer.push(extra);
            corrupt(&longer);
        }
    }
    // The one-byte tags a column or an element starts with: 0 to 6 are taken. A bool is all
    // tag, so an unknown tag read as anything else would leave no trailing bytes to object to.
    let bool_row = FilterRow(vec![ColumnValue::Scalar(FilterValue::Bool(true))]).to_bytes();
    let bool_array_row =
        FilterRow(vec![ColumnValue::Array(vec![FilterValue::Bool(true)])]).to_bytes();
    assert_eq!((bool_row.len(), bool_array_row.len()), (2, 4));
    for tag in 7..=u8::MAX {
        for (bytes, at) in [(&bool_row, 1), (&bool_array_row, 3)] {
            let mut bad = bytes.clone();
            bad[at] = tag;
            corrupt(&bad);
        }
    }
    // Counts larger than the bytes that follow, or than 64 bits.
    corrupt(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    corrupt(&[1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    corrupt(&[1, 6, 0x05, b'a']);
    corrupt(&[0xff; 11]);
    corrupt(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
}

// ---------------------------------------------------------------------------------------------
// The encoding's order.

fn encoding_order(a: &FilterValue, b: &FilterValue) -> Ordering {
    a.encoded().cmp(&b.encoded())
}

#[test]
fn int_encoding_sorts_like_i64() {
    let mut rng = Rng::new(11);
    let special = [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX];
    let draw = |rng: &mut Rng| match rng.below(3) {
        0 => special[rng.below(special.len())],
        1 => rng.below(2_000) as i64 - 1_000,
        _ => rng.next_u64() as i64,
    };
    for _ in 0..50_000 {
        let (a, b) = (draw(&mut rng), draw(&mut rng));
        let (x, y) = (FilterValue::Int(a), FilterValue::Int(b));
        assert_eq!(encoding_order(&x, &y), a.cmp(&b), "{a} vs {b}");
        assert_eq!(x.encoded().len(), 8);
    }
}

#[test]
fn float_encoding_sorts_like_postgres_float8() {
    let mut rng = Rng::new(12);
    let pool = float_pool();
    let draw = |rng: &mut Rng| match rng.below(4) {
        0 => pool[rng.below(pool.len())],
        // Any bit pattern: NaNs of every sign and payload, subnormals, normals.
        1 => f64::from_bits(rng.next_u64()),
        // Subnormals of either sign.
        2 => {
            let bits = rng.next_u64() & 0x800f_ffff_ffff_ffff;
            f64::from_bits(bits)
        }
        _ => (rng.below(40) as f64 - 20.0) / 4.0,
    };
    for _ in 0..50_000 {
        let (a, b) = (draw(&mut rng), draw(&mut rng));
        let (x, y) = (FilterValue::Float(a), FilterValue::Float(b));
        assert_eq!(
            encoding_order(&x, &y),
            pg_cmp(&x, &y),
            "{a:e} ({:#x}) vs {b:e} ({:#x})",
            a.to_bits(),
            b.to_bits()
        );
    }
    // Equal values share one encoding, so they share one key.
    assert_eq!(
        FilterValue::Float(-0.0).encoded(),
        FilterValue::Float(0.0).encoded()
    );
    assert_eq!(
        FilterValue::Float(-f64::NAN).encoded(),
        FilterValue::Float(f64::from_bits(0x7ff0_0000_0000_0001)).encoded()
    );
    assert_eq!(
        encoding_order(
            &FilterValue::Float(f64::INFINITY),
            &FilterValue::Float(f64::NAN)
        ),
        Ordering::Less
    );
}

#[test]
fn bool_and_bytes_encodings_sort_like_their_values() {
    let f = FilterValue::Bool(false).encoded();
    let t = FilterValue::Bool(true).encoded();
    assert!(f < t);
    let mut rng = Rng::new(13);
    for _ in 0..10_000 {
        let (a, b) = (random_text(&mut rng), random_text(&mut rng));
        assert_eq!(
            encoding_order(
                &FilterValue::Bytes(a.clone()),
                &FilterValue::Bytes(b.clone())
            ),
            a.cmp(&b)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Ranges over many distinct values, read by group.

/// Bounds around the groups of 256 encodings: their edges, a step either side, far outside.
fn group_edge_bound(rng: &mut Rng, value: &dyn Fn(i64) -> FilterValue) -> Bound<FilterValue> {
    let at = match rng.below(4) {
        0 => rng.below(1_600) as i64 - 800,
        1 => (rng.below(8) as i64 - 4) * 256 + rng.below(3) as i64 - 1,
        2 => [i64::MIN / 2, i64::MAX / 2][rng.below(2)],
        _ => return Bound::Unbounded,
    };
    if rng.below(2) == 0 {
        Bound::Included(value(at))
    } else {
        Bound::Excluded(value(at))
    }
}

#[test]
fn ranges_over_many_values_match_brute_force_at_group_edges() {
    let mut rng = Rng::new(2027);
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), Metric::Euclidean, DIMS);
    // Integers around zero (group edges at multiples of 256), floats one encoding apart (their
    // groups fill up), and arrays of integers.
    let float_at =
        |k: i64| FilterValue::Float(f64::from_bits((1.0f64.to_bits() as i64 + k) as u64));
    let row = |rng: &mut Rng| {
        FilterRow(vec![
            ColumnValue::Scalar(FilterValue::Int(rng.below(1_400) as i64 - 700)),
            ColumnValue::Scalar(float_at(rng.below(1_400) as i64 - 700)),
            ColumnValue::Array(
                (0..rng.below(4))
                    .map(|_| FilterValue::Int(rng.below(1_000) as i64))
                    .collect(),
            ),
        ])
    };
    let mut model = HashMap::new();
    let keys: Vec<u64> = (0..3_000).collect();
    let rows: Vec<FilterRow> = keys.iter().map(|_| row(&mut rng)).collect();
    insert_rows(
        &index,
        &random_vectors(&mut rng, keys.len()),
        &keys,
        &rows,
        &mut model,
    );
    // Replaced and deleted items must leave their groups.
    let replaced: Vec<u64> = (0..3_000).step_by(7).collect();
    let new_rows: Vec<FilterRow> = replaced.iter().map(|_| row(&mut rng)).collect();
    insert_rows(
        &index,
        &random_vectors(&mut rng, replaced.len()),
        &replaced,
        &new_rows,
        &mut model,
    );
    let doomed: RoaringBitmap = {
        let reader = index.read().unwrap();
        (0..3_000u64)
            .step_by(5)
            .map(|key| reader.item_for_key(key).unwrap().unwrap())
            .collect()
    };
    index.write(|w| w.delete(&doomed, &never_cancel)).unwrap();
    let by_id: HashMap<ItemId, FilterRow> = rows_by_id_after_delete(&index, &model);

    let reader = index.read().unwrap();
    assert!(reader.check().unwrap().is_sound());
    let mut wide = 0;
    for round in 0..600 {
        let column = (round % 3) as u16;
        let value: &dyn Fn(i64) -> FilterValue = if column == 1 {
            &float_at
        } else {
            &FilterValue::Int
        };
        let condition = FilterCondition::Range {
            column,
            lower: group_edge_bound(&mut rng, value),
            upper: group_edge_bound(&mut rng, value),
        };
        let stored = reader.filter(std::slice::from_ref(&condition)).unwrap();
        assert_eq!(
            stored,
            brute_force(&by_id, std::slice::from_ref(&condition)),
            "{condition:?}"
        );
        assert_matches_agree(&reader, &by_id, &condition);
        wide += (stored.len() > 1_000) as usize;
    }
    // Wide ranges, which read whole groups, must be among them.
    assert!(wide > 100, "{wide} wide ranges");
}

/// The model by item id, for the keys still live.
fn rows_by_id_after_delete(
    index: &Index,
    model: &HashMap<u64, FilterRow>,
) -> HashMap<ItemId, FilterRow> {
    let reader = index.read().unwrap();
    model
        .iter()
        .filter_map(|(&key, row)| Some((reader.item_for_key(key).unwrap()?, row.clone())))
        .collect()
}
