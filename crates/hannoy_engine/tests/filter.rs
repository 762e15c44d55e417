//! Searches restricted to a bitmap of allowed items, and streams drained to the end.

mod common;

use common::*;
use hannoy_engine::{never_cancel, Index, Metric, SearchParams, Strategy, VectorRef};
use roaring::RoaringBitmap;

const K: usize = 10;

fn setup(n: usize, dims: usize, seed: u64) -> (tempfile::TempDir, Index, Vec<Vec<f32>>) {
    let data = clustered(n, dims, seed);
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), Metric::Cosine, dims);
    insert_floats(&index, &data);
    (dir, index, data)
}

fn random_filter(n: usize, fraction: f64, seed: u64) -> RoaringBitmap {
    let mut rng = Rng::new(seed);
    (0..n as u32).filter(|_| rng.unit() < fraction).collect()
}

/// Mean recall@10 and the smallest result count over the queries.
fn filtered_recall(
    index: &Index,
    data: &[Vec<f32>],
    queries: &[Vec<f32>],
    filter: &RoaringBitmap,
    strategy: Strategy,
) -> (f64, usize) {
    let reader = index.read().unwrap();
    let params = SearchParams {
        filter: Some(filter),
        strategy,
        ..Default::default()
    };
    mean_recall(&reader, Metric::Cosine, data, queries, K, &params, filter)
}

#[test]
fn filtered_recall_at_every_selectivity() {
    let (_dir, index, data) = setup(20_000, 64, 101);
    let queries = queries(&data, 100, 102);
    for (fraction, seed) in [(0.5, 1), (0.05, 2), (0.005, 3), (0.0005, 4)] {
        let filter = random_filter(data.len(), fraction, seed);
        let (r, fewest) = filtered_recall(&index, &data, &queries, &filter, Strategy::Auto);
        println!(
            "selectivity {fraction}: {} items, recall@10 {r:.4}, fewest rows {fewest}",
            filter.len()
        );
        assert!(r >= 0.95, "selectivity {fraction}: recall {r:.4}");
        assert_eq!(
            fewest,
            K.min(filter.len() as usize),
            "selectivity {fraction}: LIMIT not filled"
        );
    }
}

#[test]
fn the_filtered_graph_walk_itself_keeps_recall() {
    // Force the walk where the cost model would scan, so both walk modes are exercised.
    let (_dir, index, data) = setup(20_000, 64, 111);
    let queries = queries(&data, 100, 112);
    for (fraction, seed) in [(0.5, 5), (0.2, 6), (0.05, 7)] {
        let filter = random_filter(data.len(), fraction, seed);
        let (r, fewest) = filtered_recall(&index, &data, &queries, &filter, Strategy::Graph);
        println!("graph walk at {fraction}: recall@10 {r:.4}");
        assert!(r >= 0.95, "graph walk at {fraction}: recall {r:.4}");
        assert_eq!(fewest, K);
    }
}

/// Mean distances a walk computes for the first batch of each query.
fn walk_distances(index: &Index, queries: &[Vec<f32>], filter: Option<&RoaringBitmap>) -> f64 {
    let reader = index.read().unwrap();
    let params = SearchParams {
        filter,
        strategy: Strategy::Graph,
        ..Default::default()
    };
    let total: usize = queries
        .iter()
        .map(|q| {
            let mut stream = reader.stream(VectorRef::Floats(q), &params).unwrap();
            assert!(!stream.next_batch().unwrap().is_empty());
            stream.distances()
        })
        .sum();
    total as f64 / queries.len() as f64
}

#[test]
fn a_filtered_walk_costs_about_what_the_unfiltered_one_does() {
    // Where disallowed nodes are scored (0.5, 0.3) a window of `ef` allowed items would cost
    // 1 / selectivity times the unfiltered walk, the shrunk window about 1 / sqrt(selectivity);
    // a two-hop walk (0.1) without a cap scores every allowed node two links away.
    let (_dir, index, data) = setup(20_000, 64, 121);
    let queries = queries(&data, 100, 122);
    let unfiltered = walk_distances(&index, &queries, None);
    for (fraction, seed, bound) in [(0.5, 8, 1.7), (0.3, 9, 2.2), (0.1, 10, 1.6)] {
        let filter = random_filter(data.len(), fraction, seed);
        let filtered = walk_distances(&index, &queries, Some(&filter));
        let (r, _) = filtered_recall(&index, &data, &queries, &filter, Strategy::Graph);
        println!(
            "{fraction}: {filtered:.0} distances against {unfiltered:.0} unfiltered, recall@10 {r:.4}"
        );
        assert!(
            filtered <= bound * unfiltered,
            "{fraction}: {filtered:.0} distances against {unfiltered:.0} unfiltered"
        );
        assert!(r >= 0.95, "{fraction}: recall {r:.4}");
    }
}

#[test]
fn small_filters_are_answered_exactly() {
    let (_dir, index, data) = setup(5_000, 32, 121);
    let queries = queries(&data, 30, 122);
    let reader = index.read().unwrap();
    for size in [1usize, 7, 50, 99] {
        let filter = random_filter(data.len(), size as f64 / data.len() as f64, size as u64);
        let params = SearchParams {
            filter: Some(&filter),
            ..Default::default()
        };
        for q in &queries {
            let found: Vec<(u32, f32)> = reader
                .search(VectorRef::Floats(q), K, &params)
                .unwrap()
                .iter()
                .map(|n| (n.id, n.distance))
                .collect();
            let truth = exact(
                filter.iter().map(|id| {
                    (
                        id,
                        reference_distance(Metric::Cosine, q, &data[id as usize]),
                    )
                }),
                K,
            );
            assert_eq!(found.len(), truth.len());
            for ((id, d), (tid, td)) in found.iter().zip(&truth) {
                assert!(
                    id == tid || (*d as f64 - td).abs() < 1e-6,
                    "filter of {size}: {id} vs {tid}"
                );
            }
        }
    }
}

#[test]
fn empty_and_dead_filters_return_nothing() {
    let (_dir, index, data) = setup(2_000, 16, 131);
    let doomed: RoaringBitmap = (0..100).collect();
    index.write(|w| w.delete(&doomed, &never_cancel)).unwrap();
    let reader = index.read().unwrap();
    for filter in [
        RoaringBitmap::new(),
        doomed.clone(),
        (5_000..6_000).collect(),
    ] {
        for strategy in [Strategy::Auto, Strategy::Graph, Strategy::Exact] {
            let params = SearchParams {
                filter: Some(&filter),
                strategy,
                ..Default::default()
            };
            let mut stream = reader.stream(VectorRef::Floats(&data[0]), &params).unwrap();
            assert!(stream.next().is_none());
        }
    }
}

#[test]
fn drained_streams_return_every_allowed_item_once_in_order() {
    let (_dir, index, data) = setup(6_000, 32, 141);
    let doomed: RoaringBitmap = (0..6_000).filter(|i| i % 5 == 0).collect();
    index.write(|w| w.delete(&doomed, &never_cancel)).unwrap();
    let reader = index.read().unwrap();
    let live = reader.items().clone();
    let q = &queries(&data, 1, 142)[0];
    let half = random_filter(6_000, 0.5, 8);
    let tenth = random_filter(6_000, 0.1, 9);
    for (filter, strategy) in [
        (None, Strategy::Graph),
        (None, Strategy::Exact),
        (Some(&half), Strategy::Graph),
        (Some(&tenth), Strategy::Graph),
        (Some(&tenth), Strategy::Auto),
    ] {
        let params = SearchParams {
            filter,
            strategy,
            ef_search: 10,
            ..Default::default()
        };
        let all: Vec<(u32, f32)> = reader
            .stream(VectorRef::Floats(q), &params)
            .unwrap()
            .map(|n| n.map(|n| (n.id, n.distance)).unwrap())
            .collect();
        let expected = match filter {
            Some(f) => f & &live,
            None => live.clone(),
        };
        let got: RoaringBitmap = all.iter().map(|(id, _)| *id).collect();
        assert_eq!(
            all.len() as u64,
            expected.len(),
            "{strategy:?}: duplicates or missing items"
        );
        assert_eq!(got, expected, "{strategy:?}: wrong items");
        // Order: the stream is in non-decreasing distance except where the walk found an item
        // late; those are rare, and never more than a sliver of the stream.
        let inversions = all.windows(2).filter(|w| w[1].1 < w[0].1).count();
        assert!(
            inversions * 100 <= all.len(),
            "{strategy:?}: {inversions} inversions in {}",
            all.len()
        );
        if strategy == Strategy::Exact {
            assert_eq!(inversions, 0);
        }
    }
}

#[test]
fn a_visit_bound_stops_the_walk() {
    let (_dir, index, data) = setup(5_000, 32, 151);
    let reader = index.read().unwrap();
    let params = SearchParams {
        strategy: Strategy::Graph,
        max_visited: Some(300),
        ..Default::default()
    };
    let mut stream = reader.stream(VectorRef::Floats(&data[3]), &params).unwrap();
    let first = stream.next().unwrap().unwrap();
    assert_eq!(first.id, 3);
    let rest = stream.by_ref().count();
    assert!(rest < 400, "{rest} results after a 300-node budget");
    assert!(stream.visited() <= 300 + 64, "visited {}", stream.visited());
}
