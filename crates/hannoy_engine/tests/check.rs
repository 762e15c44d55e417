//! The check can fail: each kind of damage it looks for, made behind the engine's back by
//! rewriting the LMDB databases, is reported with its exact count, and a pristine copy of the
//! same index is sound.

mod common;

use std::collections::HashSet;
use std::path::Path;

use common::*;
use hannoy_engine::{
    never_cancel, CheckReport, ColumnValue, FilterRow, FilterValue, Index, ItemId, Metric,
    VectorRef,
};
use heed::byteorder::NativeEndian;
use heed::types::{Bytes, Str, U32, U64};
use heed::{Database, IntegerComparator, RwTxn};
use roaring::RoaringBitmap;

const ITEMS: usize = 300;
/// Keys are 1,000 above the ids, which the index hands out from 0 in order.
const KEY_BASE: u64 = 1_000;

/// An index of ITEMS keyed items with one text filter column, in `dir`.
fn pristine(dir: &Path) {
    let index = create(dir, Metric::Euclidean, 8);
    let data = clustered(ITEMS, 8, 5);
    let keys: Vec<u64> = (0..ITEMS as u64).map(|i| KEY_BASE + i).collect();
    let rows: Vec<FilterRow> = (0..ITEMS)
        .map(|i| {
            let value = FilterValue::Bytes(vec![b'a' + (i % 3) as u8]);
            FilterRow(vec![ColumnValue::Scalar(value)])
        })
        .collect();
    index
        .write(|w| {
            let batch = w.prepare(data.iter().map(|v| VectorRef::Floats(v)))?;
            w.insert_keyed_with_filters(&batch, &keys, &rows, &never_cancel)
        })
        .unwrap();
}

/// Copies the pristine index, lets `damage` rewrite the copy's databases, and checks the copy.
fn damaged(pristine: &Path, damage: impl FnOnce(&Databases, &mut RwTxn)) -> CheckReport {
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(pristine.join("data.mdb"), copy.path().join("data.mdb")).unwrap();
    {
        let env = raw_env(copy.path());
        let mut wtxn = env.write_txn().unwrap();
        let databases = Databases::open(&env, &wtxn);
        damage(&databases, &mut wtxn);
        wtxn.commit().unwrap();
    }
    let index = Index::open(copy.path()).unwrap();
    let report = index.read().unwrap().check().unwrap();
    report
}

struct Databases {
    meta: Database<Str, Bytes>,
    links: Database<U64<NativeEndian>, Bytes, IntegerComparator>,
    vectors: Database<U32<NativeEndian>, Bytes, IntegerComparator>,
    keys: Database<U32<NativeEndian>, U64<NativeEndian>, IntegerComparator>,
    key_ids: Database<U64<NativeEndian>, U32<NativeEndian>, IntegerComparator>,
    filter_values: Database<Bytes, Bytes>,
}

impl Databases {
    fn open(env: &heed::Env<heed::WithoutTls>, txn: &RwTxn) -> Databases {
        macro_rules! integer {
            ($k:ty, $v:ty, $name:expr) => {
                env.database_options()
                    .types::<$k, $v>()
                    .key_comparator::<IntegerComparator>()
                    .name($name)
                    .open(txn)
                    .unwrap()
                    .unwrap()
            };
        }
        Databases {
            meta: env
                .open_database(txn, Some("hannoy.meta"))
                .unwrap()
                .unwrap(),
            links: integer!(U64<NativeEndian>, Bytes, "hannoy.links"),
            vectors: integer!(U32<NativeEndian>, Bytes, "hannoy.vectors"),
            keys: integer!(U32<NativeEndian>, U64<NativeEndian>, "hannoy.keys"),
            key_ids: integer!(U64<NativeEndian>, U32<NativeEndian>, "hannoy.key_ids"),
            filter_values: env
                .open_database(txn, Some("hannoy.filter_values"))
                .unwrap()
                .unwrap(),
        }
    }

    /// A u32 field of the metadata record, at its byte offset (see `storage::meta`).
    fn meta_field(&self, txn: &RwTxn, offset: usize) -> u32 {
        let record = self.meta.get(txn, "meta").unwrap().unwrap();
        u32::from_ne_bytes(record[offset..offset + 4].try_into().unwrap())
    }

    fn entry_point(&self, txn: &RwTxn) -> ItemId {
        self.meta_field(txn, 40)
    }

    fn vectors_per_chunk(&self, txn: &RwTxn) -> u32 {
        self.meta_field(txn, 24)
    }

    /// The ids of a list, without the bit that marks filler links.
    fn list(&self, txn: &RwTxn, layer: u64, id: ItemId) -> Option<Vec<u32>> {
        let bytes = self.links.get(txn, &(layer << 32 | id as u64)).unwrap()?;
        Some(
            bytes
                .chunks(4)
                .map(|c| u32::from_ne_bytes(c.try_into().unwrap()) & !(1 << 31))
                .collect(),
        )
    }

    /// Writes a list whose links are all diverse.
    fn put_list(&self, txn: &mut RwTxn, layer: u64, id: ItemId, list: &[u32]) {
        let bytes: Vec<u8> = list.iter().flat_map(|n| n.to_ne_bytes()).collect();
        self.links
            .put(txn, &(layer << 32 | id as u64), &bytes)
            .unwrap();
    }

    /// Every (layer, id) that has a list.
    fn lists(&self, txn: &RwTxn) -> Vec<(u64, ItemId)> {
        self.links
            .iter(txn)
            .unwrap()
            .map(|entry| {
                let (key, _) = entry.unwrap();
                (key >> 32, key as u32)
            })
            .collect()
    }
}

fn pristine_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    pristine(dir.path());
    dir
}

#[test]
fn the_pristine_index_is_sound() {
    let dir = pristine_dir();
    let report = damaged(dir.path(), |_, _| {});
    assert!(report.is_sound(), "{report:?}");
    assert_eq!(
        (report.live, report.reachable, report.keyed, report.filtered),
        (ITEMS as u64, ITEMS as u64, ITEMS as u64, ITEMS as u64)
    );
}

#[test]
fn a_link_to_a_dead_id_is_counted() {
    let dir = pristine_dir();
    let report = damaged(dir.path(), |db, txn| {
        let mut list = db.list(txn, 0, 7).unwrap();
        list.push(5_000);
        db.put_list(txn, 0, 7, &list);
    });
    assert_eq!(report.dangling_links, 1, "{report:?}");
    assert!(!report.is_sound());
}

#[test]
fn a_list_of_a_dead_id_is_counted() {
    let dir = pristine_dir();
    let report = damaged(dir.path(), |db, txn| db.put_list(txn, 0, 5_000, &[1, 2]));
    assert_eq!(
        (report.orphan_lists, report.dangling_links),
        (1, 0),
        "{report:?}"
    );
    assert!(!report.is_sound());
}

#[test]
fn a_missing_layer_0_list_is_counted() {
    let dir = pristine_dir();
    let report = damaged(dir.path(), |db, txn| {
        assert!(db.links.delete(txn, &11).unwrap());
    });
    assert_eq!(report.missing_lists, 1, "{report:?}");
    assert!(!report.is_sound());
}

#[test]
fn items_that_no_link_reaches_are_counted_exactly() {
    let dir = pristine_dir();
    let mut expected = 0;
    let report = damaged(dir.path(), |db, txn| {
        let entry = db.entry_point(txn);
        let victim = if entry == 42 { 43 } else { 42 };
        for (layer, id) in db.lists(txn) {
            let list = db.list(txn, layer, id).unwrap();
            let kept: Vec<u32> = list.iter().copied().filter(|&n| n != victim).collect();
            if kept.len() != list.len() {
                db.put_list(txn, layer, id, &kept);
            }
        }
        // What a walk on layer 0 from the entry point reaches now, counted independently.
        let mut seen = HashSet::from([entry]);
        let mut queue = vec![entry];
        while let Some(id) = queue.pop() {
            for n in db.list(txn, 0, id).unwrap_or_default() {
                if seen.insert(n) {
                    queue.push(n);
                }
            }
        }
        expected = ITEMS as u64 - seen.len() as u64;
        assert!(!seen.contains(&victim));
    });
    assert!(expected >= 1);
    assert_eq!(report.live - report.reachable, expected, "{report:?}");
    assert!(!report.is_sound());
}

#[test]
fn items_whose_vector_chunk_is_gone_are_counted() {
    let dir = pristine_dir();
    let mut chunk_size = 0;
    let report = damaged(dir.path(), |db, txn| {
        chunk_size = db.vectors_per_chunk(txn);
        assert!(db.vectors.delete(txn, &0).unwrap());
    });
    // Chunk 0 holds ids 0 .. vectors_per_chunk.
    assert_eq!(
        report.missing_vectors,
        (chunk_size as u64).min(ITEMS as u64),
        "{report:?}"
    );
    assert!(!report.is_sound());
}

#[test]
fn a_key_of_a_dead_id_and_a_key_pointing_elsewhere_are_counted() {
    let dir = pristine_dir();
    let stray = damaged(dir.path(), |db, txn| db.keys.put(txn, &5_000, &77).unwrap());
    // The stray key itself; its missing reverse entry; one more forward key than reverse.
    assert_eq!(
        (stray.stray_keys, stray.mismatched_keys),
        (1, 2),
        "{stray:?}"
    );
    assert!(!stray.is_sound());
    let crossed = damaged(dir.path(), |db, txn| {
        db.key_ids.put(txn, &KEY_BASE, &1).unwrap();
    });
    assert_eq!(
        (crossed.stray_keys, crossed.mismatched_keys),
        (0, 1),
        "{crossed:?}"
    );
    assert!(!crossed.is_sound());
}

#[test]
fn filter_bitmaps_with_dead_or_missing_items_are_counted() {
    let dir = pristine_dir();
    let edit = |add: bool| {
        damaged(dir.path(), move |db, txn| {
            let (key, mut bitmap) = db
                .filter_values
                .iter(txn)
                .unwrap()
                .map(|entry| {
                    let (key, bytes) = entry.unwrap();
                    (
                        key.to_vec(),
                        RoaringBitmap::deserialize_from(bytes).unwrap(),
                    )
                })
                .find(|(_, bitmap)| bitmap.contains(9))
                .unwrap();
            if add {
                bitmap.insert(5_000);
            } else {
                bitmap.remove(9);
            }
            let mut bytes = Vec::new();
            bitmap.serialize_into(&mut bytes).unwrap();
            db.filter_values.put(txn, &key, &bytes).unwrap();
        })
    };
    let stray = edit(true);
    assert_eq!(
        (stray.stray_filters, stray.mismatched_filters),
        (1, 0),
        "{stray:?}"
    );
    assert!(!stray.is_sound());
    let missing = edit(false);
    assert_eq!(
        (missing.stray_filters, missing.mismatched_filters),
        (0, 1),
        "{missing:?}"
    );
    assert!(!missing.is_sound());
}
