//! Every bad input and bad file gives its own error, and a failed write leaves nothing behind.

mod common;

use common::*;
use hannoy_engine::{
    never_cancel, Error, Index, IndexOptions, Metric, SearchParams, VectorRef, FORMAT_VERSION,
};

#[test]
fn bad_vectors_are_refused_on_insert_and_on_search() {
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), Metric::Cosine, 3);
    insert_floats(&index, &[vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0]]);
    type Expectation = fn(&Error) -> bool;
    let bad: [(&[f32], Expectation); 5] = [
        (&[1.0, 2.0], |e| {
            matches!(
                e,
                Error::DimensionMismatch {
                    expected: 3,
                    got: 2
                }
            )
        }),
        (&[1.0, 2.0, 3.0, 4.0], |e| {
            matches!(
                e,
                Error::DimensionMismatch {
                    expected: 3,
                    got: 4
                }
            )
        }),
        (&[1.0, f32::NAN, 0.0], |e| {
            matches!(e, Error::NonFinite { index: 1, .. })
        }),
        (&[f32::NEG_INFINITY, 0.0, 0.0], |e| {
            matches!(e, Error::NonFinite { index: 0, .. })
        }),
        (&[0.0, 0.0, 0.0], |e| matches!(e, Error::ZeroVector)),
    ];
    for (v, is_expected) in bad {
        let on_insert = index
            .prepare([VectorRef::Floats(&[1.0, 1.0, 1.0]), VectorRef::Floats(v)])
            .unwrap_err();
        assert!(is_expected(&on_insert), "{v:?} on insert: {on_insert}");
        let on_search = index
            .read()
            .unwrap()
            .search(VectorRef::Floats(v), 1, &SearchParams::default())
            .unwrap_err();
        assert!(is_expected(&on_search), "{v:?} on search: {on_search}");
    }
    assert!(matches!(
        index.prepare([VectorRef::Bits {
            words: &[1],
            dimensions: 3
        }]),
        Err(Error::WrongVectorKind { .. })
    ));
    assert_eq!(index.read().unwrap().len(), 2, "nothing was inserted");
}

#[test]
fn options_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let with = |f: fn(&mut IndexOptions)| {
        let mut o = IndexOptions::new(Metric::Euclidean, 8);
        f(&mut o);
        Index::create(dir.path().join(format!("{o:?}").len().to_string()), &o).unwrap_err()
    };
    assert!(matches!(
        with(|o| o.m = 1),
        Error::InvalidParameter { name: "m", .. }
    ));
    assert!(matches!(
        with(|o| o.m = 101),
        Error::InvalidParameter { name: "m", .. }
    ));
    assert!(matches!(
        with(|o| o.ef_construction = 3),
        Error::InvalidParameter {
            name: "ef_construction",
            ..
        }
    ));
    assert!(matches!(
        with(|o| o.ef_construction = 1001),
        Error::InvalidParameter {
            name: "ef_construction",
            ..
        }
    ));
    assert!(matches!(
        with(|o| {
            o.m = 40;
            o.ef_construction = 64
        }),
        Error::InvalidParameter {
            name: "ef_construction",
            ..
        }
    ));
    assert!(matches!(with(|o| o.dimensions = 0), Error::EmptyVector));
    assert!(matches!(
        with(|o| o.dimensions = 16_001),
        Error::TooManyDimensions { .. }
    ));
}

#[test]
fn missing_existing_incompatible_and_corrupt_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Index::open(dir.path().join("nothing")),
        Err(Error::MissingIndex(_))
    ));
    let path = dir.path().join("idx");
    {
        let index = create(&path, Metric::Cosine, 4);
        insert_floats(&index, &[vec![1.0, 2.0, 3.0, 4.0]]);
    }
    assert!(matches!(
        Index::create(&path, &IndexOptions::new(Metric::Cosine, 4)),
        Err(Error::IndexExists(_))
    ));

    // Rewrite the metadata record's version, then its magic number, behind the engine's back.
    rewrite_meta(&path, |b| {
        b[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_ne_bytes())
    });
    match Index::open(&path) {
        Err(Error::IncompatibleFormat { found, expected }) => {
            assert_eq!((found, expected), (FORMAT_VERSION + 1, FORMAT_VERSION))
        }
        other => panic!("expected IncompatibleFormat, got {other:?}"),
    }
    rewrite_meta(&path, |b| {
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_ne_bytes());
        b[0] = b'X';
    });
    assert!(matches!(Index::open(&path), Err(Error::Corrupt(_))));
}

#[test]
fn failed_and_cancelled_writes_leave_nothing_behind() {
    let data = clustered(2_000, 16, 161);
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), Metric::Cosine, 16);
    insert_floats(&index, &data[..1_000]);
    let batch = index
        .prepare(data[1_000..].iter().map(|v| VectorRef::Floats(v)))
        .unwrap();

    let cancelled = index.write(|w| w.insert(&batch, &|| true)).unwrap_err();
    assert!(matches!(cancelled, Error::Cancelled));
    let failed = index
        .write(|w| {
            w.insert(&batch, &never_cancel)?;
            Err::<(), _>(Error::InvalidParameter {
                name: "test",
                reason: "the caller gave up".into(),
            })
        })
        .unwrap_err();
    assert!(
        matches!(failed, Error::InvalidParameter { name: "test", .. }),
        "{failed:?}"
    );
    let cancelled_delete = index
        .write(|w| w.delete(&(0..500).collect(), &|| true))
        .unwrap_err();
    assert!(matches!(cancelled_delete, Error::Cancelled));

    let reader = index.read().unwrap();
    assert_eq!(reader.len(), 1_000);
    assert!(reader.check().unwrap().is_sound());
    drop(reader);
    let ids = index.write(|w| w.insert(&batch, &never_cancel)).unwrap();
    assert_eq!(
        ids,
        (1_000..2_000).collect::<Vec<_>>(),
        "the aborted writes took no ids"
    );
}

#[test]
fn a_stamp_commits_with_its_writes_and_not_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), Metric::Euclidean, 2);
    assert_eq!(index.read().unwrap().stamp().unwrap(), None);
    let first = hannoy_engine::Stamp {
        owner: 7,
        position: 1,
    };
    index
        .write(|w| {
            w.insert(&w.prepare([VectorRef::Floats(&[1.0, 2.0])])?, &never_cancel)?;
            w.set_stamp(first)
        })
        .unwrap();
    assert_eq!(index.read().unwrap().stamp().unwrap(), Some(first));
    // A write that fails after setting a stamp leaves the old one, like its other writes.
    let failed = index.write(|w| {
        w.set_stamp(hannoy_engine::Stamp {
            owner: 7,
            position: 2,
        })?;
        w.insert(&w.prepare([VectorRef::Floats(&[1.0])])?, &never_cancel)
    });
    assert!(matches!(failed, Err(Error::DimensionMismatch { .. })));
    drop(index);
    let index = Index::open(dir.path()).unwrap();
    let reader = index.read().unwrap();
    assert_eq!(reader.stamp().unwrap(), Some(first));
    assert_eq!(reader.len(), 1);
}

#[test]
fn a_truncated_data_file_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), Metric::Euclidean, 64);
    let data: Vec<Vec<f32>> = clustered(2_000, 64, 3);
    insert_floats(&index, &data);
    drop(index);
    let file = dir.path().join("data.mdb");
    let full = std::fs::metadata(&file).unwrap().len();
    assert!(full > 64 * 4096, "{full} bytes");
    // Cut at several places; reading any page past the end would be a SIGBUS, not an error.
    for keep in [full / 2, full - 4096, 3 * 4096] {
        let copy = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(copy.path().join("data.mdb"), &bytes[..keep as usize]).unwrap();
        let error = Index::open(copy.path()).unwrap_err();
        assert!(matches!(error, Error::Corrupt(_)), "{keep} bytes: {error}");
    }
}
