//! Caller keys: one-to-one with live items, replaced on re-insert, forgotten on delete.

mod common;

use common::*;
use hannoy_engine::{never_cancel, Error, Index, Metric, SearchParams, VectorRef};

fn insert_keyed(index: &Index, data: &[Vec<f32>], keys: &[u64]) -> hannoy_engine::Result<Vec<u32>> {
    index.write(|w| {
        let batch = w.prepare(data.iter().map(|v| VectorRef::Floats(v)))?;
        w.insert_keyed(&batch, keys, &never_cancel)
    })
}

#[test]
fn keys_follow_their_items_through_replace_and_delete() {
    let data = clustered(600, 16, 5);
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), Metric::Euclidean, 16);
    let keys: Vec<u64> = (0..500).map(|i| 1_000_000 + 7 * i).collect();
    let ids = insert_keyed(&index, &data[..500], &keys).unwrap();

    let reader = index.read().unwrap();
    for (&id, &key) in ids.iter().zip(&keys) {
        assert_eq!(reader.key(id).unwrap(), Some(key));
        assert_eq!(reader.item_for_key(key).unwrap(), Some(id));
    }
    assert_eq!(reader.keys().unwrap().count(), 500);
    drop(reader);

    // Key 10 gets a new vector: the old item goes, the nearest neighbour of the new vector is
    // the new item, and the count stays.
    let replacement = ids_replaced(&index, &data[550], keys[10]);
    let reader = index.read().unwrap();
    assert_eq!(reader.len(), 500);
    assert_eq!(reader.item_for_key(keys[10]).unwrap(), Some(replacement));
    let nearest = reader
        .search(VectorRef::Floats(&data[550]), 1, &SearchParams::default())
        .unwrap();
    assert_eq!(nearest[0].id, replacement);
    assert_eq!(reader.key(replacement).unwrap(), Some(keys[10]));
    let report = reader.check().unwrap();
    assert!(report.is_sound(), "{report:?}");
    assert_eq!(report.keyed, 500);
    drop(reader);

    // Deleting items forgets their keys.
    let doomed = bitmap(ids[100..200].iter().copied().filter(|&id| id != ids[10]));
    index.write(|w| w.delete(&doomed, &never_cancel)).unwrap();
    let reader = index.read().unwrap();
    assert_eq!(reader.len(), 400);
    assert_eq!(reader.keys().unwrap().count(), 400);
    assert_eq!(reader.item_for_key(keys[150]).unwrap(), None);
    assert!(reader.check().unwrap().is_sound());
}

fn ids_replaced(index: &Index, vector: &[f32], key: u64) -> u32 {
    insert_keyed(index, &[vector.to_vec()], &[key]).unwrap()[0]
}

#[test]
fn a_batch_with_a_repeated_key_or_a_key_count_mismatch_changes_nothing() {
    let data = clustered(10, 8, 6);
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), Metric::Euclidean, 8);
    let err = insert_keyed(&index, &data[..3], &[1, 2, 1]).unwrap_err();
    assert!(
        matches!(err, Error::InvalidParameter { name: "keys", .. }),
        "{err}"
    );
    let err = insert_keyed(&index, &data[..3], &[1, 2]).unwrap_err();
    assert!(
        matches!(err, Error::InvalidParameter { name: "keys", .. }),
        "{err}"
    );
    let reader = index.read().unwrap();
    assert_eq!(reader.len(), 0);
    assert_eq!(reader.keys().unwrap().count(), 0);
}

#[test]
fn vectors_prepared_one_by_one_insert_as_one_batch() {
    let data = clustered(300, 8, 3);
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), Metric::Cosine, 8);
    let mut batch = index.prepare([VectorRef::Floats(&data[0])]).unwrap();
    for v in &data[1..] {
        batch
            .append(&index.prepare([VectorRef::Floats(v)]).unwrap())
            .unwrap();
    }
    assert_eq!(batch.len(), 300);
    // Drop every third vector: the rest keep their order.
    batch.retain(|i| i % 3 != 0);
    let kept: Vec<usize> = (0..300).filter(|i| i % 3 != 0).collect();
    assert_eq!(batch.len(), kept.len());
    let keys: Vec<u64> = kept.iter().map(|&i| i as u64).collect();
    index
        .write(|w| w.insert_keyed(&batch, &keys, &never_cancel))
        .unwrap();

    let reader = index.read().unwrap();
    assert_eq!(reader.len(), 200);
    for &i in &kept {
        let nearest = reader
            .search(VectorRef::Floats(&data[i]), 1, &SearchParams::default())
            .unwrap();
        assert_eq!(
            reader.key(nearest[0].id).unwrap(),
            Some(i as u64),
            "vector {i}"
        );
    }

    // A batch for other dimensions does not mix in.
    let other_dir = tempfile::tempdir().unwrap();
    let other = create(other_dir.path(), Metric::Cosine, 4);
    let wrong = other
        .prepare([VectorRef::Floats(&[1.0, 0.0, 0.0, 0.0])])
        .unwrap();
    assert!(matches!(
        batch.append(&wrong),
        Err(Error::DimensionMismatch { .. })
    ));
    assert_eq!(batch.len(), 200);
}

#[test]
fn vectors_kept_in_stored_form_insert_and_score_like_the_originals() {
    // The access method keeps prepared vectors in its own pages and hands them back later.
    let data = clustered(300, 24, 9);
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), Metric::Cosine, 24);
    let prepared = hannoy_engine::PreparedVectors::new(
        Metric::Cosine,
        24,
        data.iter().map(|v| VectorRef::Floats(v)),
    )
    .unwrap();
    let kept: Vec<Vec<u8>> = (0..prepared.len())
        .map(|i| prepared.stored(i).to_vec())
        .collect();
    let vector_bytes = kept[0].len();
    let again =
        hannoy_engine::PreparedVectors::from_stored(vector_bytes, kept.iter().map(Vec::as_slice))
            .unwrap();
    let keys: Vec<u64> = (0..300).collect();
    index
        .write(|w| w.insert_keyed(&again, &keys, &never_cancel))
        .unwrap();
    let query = hannoy_engine::PreparedQuery::new(Metric::Cosine, 24, VectorRef::Floats(&data[17]))
        .unwrap();
    let reader = index.read().unwrap();
    let found = reader
        .search(VectorRef::Floats(&data[17]), 5, &SearchParams::default())
        .unwrap();
    for n in &found {
        let key = reader.key(n.id).unwrap().unwrap() as usize;
        let distance = query.distance_to(Metric::Cosine, &kept[key]).unwrap();
        assert!(
            (distance - n.distance).abs() < 1e-6,
            "{distance} vs {}",
            n.distance
        );
    }
    assert_eq!(reader.key(found[0].id).unwrap(), Some(17));
    // Wrong lengths are refused, not misread.
    assert!(matches!(
        hannoy_engine::PreparedVectors::from_stored(vector_bytes, [&kept[0][..8]]),
        Err(Error::DimensionMismatch { .. })
    ));
    assert!(query.distance_to(Metric::Cosine, &kept[0][..8]).is_err());
    // So are NaN and wrong dimension counts, before any index exists.
    assert!(matches!(
        hannoy_engine::PreparedVectors::new(
            Metric::Cosine,
            24,
            [VectorRef::Floats(&[f32::NAN; 24])]
        ),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        hannoy_engine::PreparedVectors::new(Metric::Cosine, 24, [VectorRef::Floats(&[1.0; 23])]),
        Err(Error::DimensionMismatch { .. })
    ));
}

#[test]
fn the_log_position_commits_with_the_writes_it_describes() {
    let data = clustered(200, 8, 3);
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), Metric::Euclidean, 8);
    assert_eq!(index.read().unwrap().log_position().unwrap(), 0);
    insert_keyed(&index, &data[..100], &(0..100).collect::<Vec<_>>()).unwrap();
    index.write(|w| w.set_log_position(100)).unwrap();
    // A write that fails leaves neither its items nor its position.
    let err = index
        .write(|w| {
            w.set_log_position(150)?;
            let batch = w.prepare(data[100..150].iter().map(|v| VectorRef::Floats(v)))?;
            w.insert_keyed(&batch, &[1; 50], &never_cancel)
        })
        .unwrap_err();
    assert!(matches!(err, Error::InvalidParameter { .. }), "{err}");
    let reader = index.read().unwrap();
    assert_eq!((reader.log_position().unwrap(), reader.len()), (100, 100));
    drop(reader);
    // Deleting every item keeps the position: it describes the caller's log, not the items.
    index
        .write(|w| {
            let all = w.items().clone();
            w.delete(&all, &never_cancel)?;
            w.log_position()
        })
        .unwrap();
    drop(index);
    let reopened = Index::open(dir.path()).unwrap();
    let reader = reopened.read().unwrap();
    assert_eq!((reader.log_position().unwrap(), reader.len()), (100, 0));
}
