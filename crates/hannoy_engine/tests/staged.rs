//! Vectors written ahead of their batch (`Index::stage_vectors`) end up as the batch's, whatever
//! happens between the staging and the insert.

mod common;

use std::collections::BTreeMap;

use common::*;
use hannoy_engine::{never_cancel, Index, IndexOptions, Metric, PreparedVectors, VectorRef};

const DIMS: usize = 100;

fn prepared(data: &[Vec<f32>]) -> PreparedVectors {
    PreparedVectors::new(
        Metric::Euclidean,
        DIMS,
        data.iter().map(|v| VectorRef::Floats(v)),
    )
    .unwrap()
}

fn insert(index: &Index, data: &[Vec<f32>], first_key: u64) {
    let keys: Vec<u64> = (first_key..first_key + data.len() as u64).collect();
    index
        .write(|w| w.insert_keyed(&prepared(data), &keys, &never_cancel))
        .unwrap();
}

fn expected(batches: &[(&[Vec<f32>], u64)]) -> BTreeMap<u64, Vec<f32>> {
    batches
        .iter()
        .flat_map(|(data, first)| (*first..).zip(data.iter().cloned()))
        .collect()
}

#[test]
fn staged_vectors_are_kept_only_for_the_batch_that_comes_next() {
    // 1,000 vectors of 400 bytes: several staging transactions (an eighth of the batch each),
    // and the second batch starts inside a chunk the first one filled in part.
    let a = clustered(1000, DIMS, 1);
    let b = clustered(1000, DIMS, 2);
    let c = clustered(37, DIMS, 3);

    // Staged, then inserted: the same vectors.
    let dir = tempfile::tempdir().unwrap();
    let index = Index::create(dir.path(), &IndexOptions::new(Metric::Euclidean, DIMS)).unwrap();
    insert(&index, &c, 0);
    assert!(index.stage_vectors(&prepared(&a)).unwrap());
    insert(&index, &a, 100);
    assert_eq!(contents(&index), expected(&[(&c, 0), (&a, 100)]));

    // Staged, then other vectors inserted in their place: those are kept.
    let dir = tempfile::tempdir().unwrap();
    let index = Index::create(dir.path(), &IndexOptions::new(Metric::Euclidean, DIMS)).unwrap();
    assert!(index.stage_vectors(&prepared(&a)).unwrap());
    insert(&index, &b, 0);
    assert_eq!(contents(&index), expected(&[(&b, 0)]));

    // Staged, another write in between, then the staged batch: its vectors, at the ids it
    // gets now.
    let dir = tempfile::tempdir().unwrap();
    let index = Index::create(dir.path(), &IndexOptions::new(Metric::Euclidean, DIMS)).unwrap();
    assert!(index.stage_vectors(&prepared(&a)).unwrap());
    insert(&index, &c, 5000);
    insert(&index, &a, 0);
    assert_eq!(contents(&index), expected(&[(&c, 5000), (&a, 0)]));

    // Staged, the index closed and opened again (a crash before the insert), then the insert.
    let dir = tempfile::tempdir().unwrap();
    {
        let index = Index::create(dir.path(), &IndexOptions::new(Metric::Euclidean, DIMS)).unwrap();
        assert!(index.stage_vectors(&prepared(&a)).unwrap());
    }
    let index = Index::open(dir.path()).unwrap();
    insert(&index, &a, 0);
    assert_eq!(contents(&index), expected(&[(&a, 0)]));
    let report = index.read().unwrap().check().unwrap();
    assert!(report.is_sound(), "{report:?}");
}

#[test]
fn nothing_is_staged_where_the_insert_would_reuse_deleted_ids() {
    let a = clustered(300, DIMS, 4);
    let dir = tempfile::tempdir().unwrap();
    let index = Index::create(dir.path(), &IndexOptions::new(Metric::Euclidean, DIMS)).unwrap();
    insert(&index, &a, 0);
    index
        .write(|w| w.delete_keys(&[3, 4], &never_cancel))
        .unwrap();
    assert!(!index.stage_vectors(&prepared(&a[..10])).unwrap());
    assert!(!index.stage_vectors(&prepared(&[])).unwrap());
}
