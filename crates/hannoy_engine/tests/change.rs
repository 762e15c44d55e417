//! A change shipped as bytes and run elsewhere leaves an index holding what the original holds.

mod common;

use std::borrow::Cow;

use common::*;
use hannoy_engine::{
    never_cancel, Change, ColumnValue, FilterCondition, FilterRow, FilterValue, Index,
    IndexOptions, InsertRows, Metric, PreparedVectors, Quantization, SearchParams, VectorRef,
};

fn insert<'a>(
    options: IndexOptions,
    vectors: &'a PreparedVectors,
    keys: &'a [u64],
    rows: &'a [FilterRow],
    log_position: Option<u64>,
) -> Change<'a> {
    Change::Insert(InsertRows {
        options,
        vectors: Cow::Borrowed(vectors),
        keys: Cow::Borrowed(keys),
        rows: Cow::Borrowed(rows),
        log_position,
    })
}

fn shipped(change: &Change<'_>) -> Change<'static> {
    let (head, vectors) = change.encode();
    Change::decode(&[head.as_slice(), vectors].concat()).unwrap()
}

fn apply(index: &Index, change: &Change<'_>) {
    index
        .write(|writer| change.apply(writer, &never_cancel))
        .unwrap();
}

#[test]
fn inserts_deletes_and_repairs_run_from_their_bytes_hold_what_the_originals_hold() {
    // Bit-exact vectors and filter values of two odd sizes (100 floats pad to 8 bytes, 33 do
    // not) and a NaN-free float column whose -0.0 must survive.
    for dims in [100, 33] {
        let options = IndexOptions::new(Metric::Euclidean, dims);
        let data = clustered(900, dims, 7 + dims as u64);
        let vectors = PreparedVectors::new(
            Metric::Euclidean,
            dims,
            data.iter().map(|v| VectorRef::Floats(v)),
        )
        .unwrap();
        let keys: Vec<u64> = (0..900u64).map(|i| (i << 16) | 3).collect();
        let rows: Vec<FilterRow> = (0..900i64)
            .map(|i| {
                FilterRow(vec![
                    ColumnValue::Scalar(FilterValue::Int(i % 7)),
                    ColumnValue::Scalar(FilterValue::Float(if i == 5 { -0.0 } else { i as f64 })),
                ])
            })
            .collect();
        let first_ten = PreparedVectors::new(
            Metric::Euclidean,
            dims,
            data[..10].iter().map(|v| VectorRef::Floats(v)),
        )
        .unwrap();
        let doomed: Vec<u64> = keys.iter().copied().step_by(3).collect();
        let changes = [
            insert(options, &vectors, &keys, &rows, Some(900)),
            // Already merged up to 900: skipped on both sides.
            insert(options, &first_ten, &keys[..10], &rows[..10], Some(850)),
            Change::Delete {
                keys: Cow::Borrowed(&doomed),
            },
            Change::Reconnect,
        ];

        let dir = tempfile::tempdir().unwrap();
        let (here, there) = (dir.path().join("here"), dir.path().join("there"));
        let (here, there) = (
            Index::create(&here, &options).unwrap(),
            Index::create(&there, &options).unwrap(),
        );
        for change in &changes {
            apply(&here, change);
            apply(&there, &shipped(change));
        }
        let (held, shipped_held) = (contents(&here), contents(&there));
        assert_eq!(held.len(), 600, "900 rows less every third");
        assert_eq!(held, shipped_held, "same keys with the same vectors");
        assert_eq!(there.read().unwrap().log_position().unwrap(), 900);

        let condition = [FilterCondition::Eq {
            column: 0,
            value: FilterValue::Int(3),
        }];
        let (a, b) = (here.read().unwrap(), there.read().unwrap());
        let keys_of = |reader: &hannoy_engine::Reader<'_>, ids: hannoy_engine::RoaringBitmap| {
            ids.iter()
                .map(|id| reader.key(id).unwrap().unwrap())
                .collect::<Vec<_>>()
        };
        let (fa, fb) = (a.filter(&condition).unwrap(), b.filter(&condition).unwrap());
        assert_eq!(keys_of(&a, fa.clone()), keys_of(&b, fb));
        assert!(fa.len() > 50);

        // Both graphs answer: the nearest neighbour of a stored vector is its own key.
        for (i, v) in data.iter().enumerate().skip(1).step_by(97) {
            if i % 3 == 0 {
                continue;
            }
            let found = b
                .search(VectorRef::Floats(v), 1, &SearchParams::default())
                .unwrap();
            assert_eq!(b.key(found[0].id).unwrap(), Some(keys[i]));
        }
    }
}

#[test]
fn damaged_bytes_are_refused_not_applied() {
    let options = IndexOptions::new(Metric::Cosine, 8);
    let data = clustered(5, 8, 1);
    let vectors =
        PreparedVectors::new(Metric::Cosine, 8, data.iter().map(|v| VectorRef::Floats(v))).unwrap();
    let keys = [1u64, 2, 3, 4, 5];
    let change = insert(options, &vectors, &keys, &[], None);
    let (head, body) = change.encode();
    let whole = [head.as_slice(), body].concat();
    for cut in [0, 1, 10, head.len() - 1, whole.len() - 1] {
        let err = Change::decode(&whole[..cut]).unwrap_err();
        assert!(err.is_damaged_storage(), "cut at {cut}: {err}");
    }
    let mut unknown = whole.clone();
    unknown[0] = 99;
    assert!(Change::decode(&unknown).is_err());
    assert!(Change::decode(&whole).is_ok());
}

#[test]
fn the_options_an_index_is_created_with_survive_the_bytes() {
    let data = clustered(5, 8, 2);
    let vectors =
        PreparedVectors::new(Metric::Cosine, 8, data.iter().map(|v| VectorRef::Floats(v))).unwrap();
    let keys = [1u64, 2, 3, 4, 5];
    for (quantization, keep_vectors, neighbour_codes) in [
        (Quantization::None, true, false),
        (Quantization::Rabitq { bits: 1 }, true, false),
        (Quantization::Rabitq { bits: 1 }, true, true),
        (Quantization::Rabitq { bits: 4 }, false, false),
        (Quantization::Rabitq { bits: 8 }, false, true),
    ] {
        let options = IndexOptions {
            quantization,
            keep_vectors,
            neighbour_codes,
            m: 12,
            ef_construction: 50,
            seed: 99,
            ..IndexOptions::new(Metric::Cosine, 8)
        };
        let Change::Insert(shipped) = shipped(&insert(options, &vectors, &keys, &[], None)) else {
            panic!("an insert comes back an insert");
        };
        let o = shipped.options;
        assert_eq!(
            (
                o.quantization,
                o.keep_vectors,
                o.neighbour_codes,
                o.m,
                o.ef_construction,
                o.seed
            ),
            (quantization, keep_vectors, neighbour_codes, 12, 50, 99)
        );
        // Run elsewhere, it creates the same kind of index.
        let dir = tempfile::tempdir().unwrap();
        let there = Index::create(dir.path(), &o).unwrap();
        apply(&there, &Change::Insert(shipped));
        let info = there.info().unwrap();
        assert_eq!(info.options.keep_vectors, keep_vectors);
        assert_eq!(info.options.neighbour_codes, neighbour_codes);
        assert_eq!(info.len, 5);
    }
}
