//! Random sequences of inserts, deletes and searches against a brute-force model.

mod common;

use std::collections::BTreeMap;

use common::*;
use hannoy_engine::{
    never_cancel, Index, IndexOptions, Metric, Quantization, SearchParams,
    Strategy as SearchStrategy, VectorRef,
};
use proptest::prelude::*;
use roaring::RoaringBitmap;

#[derive(Debug, Clone)]
enum Op {
    Insert(Vec<Vec<f32>>),
    /// Deletes the live items at these positions (modulo the live count).
    Delete(Vec<usize>),
    Search {
        query: Vec<f32>,
        k: usize,
        metric_filter: Option<u8>,
    },
}

const DIMS: usize = 4;

fn vector() -> impl Strategy<Value = Vec<f32>> {
    // Small integers make ties common, which is where ordering bugs hide.
    prop::collection::vec((-4i8..=4).prop_map(|x| x as f32 / 2.0), DIMS)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec(vector(), 1..40).prop_map(Op::Insert),
        1 => prop::collection::vec(0usize..1000, 1..15).prop_map(Op::Delete),
        3 => (vector(), 1usize..30, prop::option::of(0u8..4)).prop_map(|(query, k, metric_filter)| Op::Search { query, k, metric_filter }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_index_agrees_with_brute_force(
        ops in prop::collection::vec(op(), 1..25),
        // Half the indexes walk on codes of 1 to 8 bits.
        bits in prop_oneof![Just(0u8), 1u8..=8],
    ) {
        let metric = Metric::Euclidean;
        let dir = tempfile::tempdir().unwrap();
        let options = IndexOptions {
            quantization: Quantization::from_bits(bits),
            ..IndexOptions::new(metric, DIMS)
        };
        let index = Index::create(dir.path(), &options).unwrap();
        let mut model: BTreeMap<u32, Vec<f32>> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Insert(vectors) => {
                    let ids = insert_floats(&index, &vectors);
                    for (id, v) in ids.into_iter().zip(vectors) {
                        prop_assert!(model.insert(id, v).is_none(), "id {} handed out twice", id);
                    }
                }
                Op::Delete(positions) => {
                    if model.is_empty() { continue; }
                    let live: Vec<u32> = model.keys().copied().collect();
                    let doomed: RoaringBitmap = positions.iter().map(|p| live[p % live.len()]).collect();
                    let stats = index.write(|w| w.delete(&doomed, &never_cancel)).unwrap();
                    prop_assert_eq!(stats.deleted, doomed.len());
                    for id in &doomed { model.remove(&id); }
                }
                Op::Search { query, k, metric_filter } => {
                    let filter: Option<RoaringBitmap> = metric_filter.map(|m| model.keys().copied().filter(|id| id % 4 != m as u32).collect());
                    let reader = index.read().unwrap();
                    prop_assert_eq!(reader.len(), model.len() as u64);
                    // With ef at least the live count the walk must be exact.
                    let params = SearchParams { ef_search: model.len().max(1), filter: filter.as_ref(), strategy: SearchStrategy::Graph, max_visited: None, codes: true, rerank: None, lower_bounds: false };
                    let found = reader.search(VectorRef::Floats(&query), k, &params).unwrap();
                    let allowed = model.iter().filter(|(id, _)| filter.as_ref().is_none_or(|f| f.contains(**id)));
                    let truth = exact(allowed.map(|(id, v)| (*id, reference_distance(metric, &query, v))), k);
                    prop_assert_eq!(found.len(), truth.len());
                    for (n, (tid, td)) in found.iter().zip(&truth) {
                        prop_assert!((n.distance as f64 - td).abs() < 1e-5, "{} at {} vs {} at {}", n.id, n.distance, tid, td);
                        prop_assert!(model.contains_key(&n.id));
                    }
                }
            }
        }
        let report = index.read().unwrap().check().unwrap();
        prop_assert!(report.is_sound(), "{:?}", report);
    }
}
