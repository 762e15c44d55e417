//! Owned snapshots and streams outlive the handles they were made from.

mod common;

use std::rc::Rc;
use std::sync::Arc;

use common::*;
use hannoy_engine::{Metric, OwnedReader, OwnedStream, SearchParams, VectorRef};

#[test]
fn an_owned_stream_outlives_its_index_handle_and_sees_its_snapshot() {
    let data = clustered(3_000, 32, 171);
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(create(dir.path(), Metric::Cosine, 32));
    insert_floats(&index, &data[..2_000]);
    let expected: Vec<u32> = index
        .read()
        .unwrap()
        .stream(VectorRef::Floats(&data[5]), &SearchParams::default())
        .unwrap()
        .map(|n| n.unwrap().id)
        .collect();

    let reader = Rc::new(OwnedReader::new(Arc::clone(&index)).unwrap());
    // A write after the snapshot is not seen by it.
    insert_floats(&index, &data[2_000..]);
    assert_eq!(index.read().unwrap().len(), 3_000);
    assert_eq!(reader.len(), 2_000);

    // Two streams from one snapshot, as a rescan would make, the first made in a scope that
    // drops every other handle to the index.
    let first = {
        let index = index;
        drop(index);
        OwnedStream::new(
            Rc::clone(&reader),
            VectorRef::Floats(&data[5]),
            &SearchParams::default(),
        )
        .unwrap()
    };
    let second = OwnedStream::new(
        Rc::clone(&reader),
        VectorRef::Floats(&data[5]),
        &SearchParams::default(),
    )
    .unwrap();
    drop(reader);
    let first: Vec<u32> = first.map(|n| n.unwrap().id).collect();
    let second: Vec<u32> = second.map(|n| n.unwrap().id).collect();
    assert_eq!(first.len(), 2_000);
    assert_eq!(first, expected);
    assert_eq!(second, expected);
}
