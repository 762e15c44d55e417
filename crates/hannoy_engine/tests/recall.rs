//! Recall against brute force at default parameters, for every metric.

mod common;

use common::*;
use hannoy_engine::{never_cancel, Metric, SearchParams, Strategy, VectorRef};

const K: usize = 10;

/// Mean recall@10 of graph searches at the default ef_search over `queries`.
fn float_recall(metric: Metric, data: &[Vec<f32>], queries: &[Vec<f32>]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), metric, data[0].len());
    let ids = insert_floats(&index, data);
    assert_eq!(ids, (0..data.len() as u32).collect::<Vec<_>>());
    let reader = index.read().unwrap();
    let report = reader.check().unwrap();
    assert!(report.is_sound(), "{report:?}");
    let params = SearchParams {
        strategy: Strategy::Graph,
        ..Default::default()
    };
    mean_recall(&reader, metric, data, queries, K, &params, reader.items()).0
}

/// Recall@10 of `metrics` on 20,000 × 128 clustered rows, each element passed through
/// `element` (the f32 itself, or its nearest half float as a halfvec column holds it: the truth
/// is computed on the same values, so the stored form loses nothing the search is judged on).
fn recall_on_20k_by_128(metrics: [Metric; 4], element: fn(&[Vec<f32>]) -> Vec<Vec<f32>>) {
    let data = element(&clustered(20_000, 128, 1));
    let queries = element(&queries(&data, 100, 2));
    let scaled_data = element(&scaled(&data, 3));
    for metric in metrics {
        // Cosine sees normalised data; the others see varied lengths too.
        let data = if metric.in_f32() == Metric::Cosine {
            &data
        } else {
            &scaled_data
        };
        let r = float_recall(metric, data, &queries);
        println!("{metric}: recall@10 = {r:.4}");
        assert!(r >= 0.95, "{metric}: recall@10 {r:.4} < 0.95");
    }
}

#[test]
fn recall_at_10_for_every_float_metric_on_20k_by_128() {
    recall_on_20k_by_128(
        [
            Metric::Cosine,
            Metric::Euclidean,
            Metric::InnerProduct,
            Metric::Manhattan,
        ],
        <[Vec<f32>]>::to_vec,
    );
}

#[test]
fn recall_at_10_for_every_half_float_metric_on_20k_by_128() {
    recall_on_20k_by_128(
        [
            Metric::HalfCosine,
            Metric::HalfEuclidean,
            Metric::HalfInnerProduct,
            Metric::HalfManhattan,
        ],
        as_halves,
    );
}

#[test]
fn recall_at_10_on_10k_by_768() {
    let data = clustered(10_000, 768, 4);
    let queries = queries(&data, 50, 5);
    for metric in [Metric::Cosine, Metric::Euclidean] {
        let r = float_recall(metric, &data, &queries);
        println!("{metric} 768-d: recall@10 = {r:.4}");
        assert!(r >= 0.95, "{metric} 768-d: recall@10 {r:.4} < 0.95");
    }
}

#[test]
fn recall_at_10_for_hamming_on_bit_vectors() {
    let bits = 256;
    // Queries are members of the same clusters that are not in the index.
    let mut all = bit_clusters(20_100, bits, 6);
    let queries = all.split_off(20_000);
    let data = all;
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), Metric::Hamming, bits);
    let batch = index
        .prepare(data.iter().map(|w| VectorRef::Bits {
            words: w,
            dimensions: bits,
        }))
        .unwrap();
    index.write(|w| w.insert(&batch, &never_cancel)).unwrap();
    let reader = index.read().unwrap();
    let params = SearchParams {
        strategy: Strategy::Graph,
        ..Default::default()
    };
    let mut total = 0.0;
    for q in &queries {
        let found: Vec<u32> = reader
            .search(
                VectorRef::Bits {
                    words: q,
                    dimensions: bits,
                },
                K,
                &params,
            )
            .unwrap()
            .iter()
            .map(|n| n.id)
            .collect();
        let truth = exact(
            data.iter()
                .enumerate()
                .map(|(i, v)| (i as u32, hamming_distance(q, v))),
            K,
        );
        total += recall(&found, &truth, |id| hamming_distance(q, &data[id as usize]));
    }
    let r = total / queries.len() as f64;
    println!("hamming: recall@10 = {r:.4}");
    assert!(r >= 0.95, "hamming: recall@10 {r:.4} < 0.95");
}

#[test]
fn reported_distances_are_the_metrics_own() {
    let data = as_halves(&clustered(2_000, 32, 8));
    let q = &as_halves(&queries(&data, 1, 9))[0];
    for metric in [
        Metric::Cosine,
        Metric::Euclidean,
        Metric::InnerProduct,
        Metric::Manhattan,
        Metric::HalfCosine,
        Metric::HalfEuclidean,
        Metric::HalfInnerProduct,
        Metric::HalfManhattan,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let index = create(dir.path(), metric, 32);
        insert_floats(&index, &data);
        let reader = index.read().unwrap();
        let found = reader
            .search(VectorRef::Floats(q), 20, &SearchParams::default())
            .unwrap();
        for pair in found.windows(2) {
            assert!(
                pair[0].distance <= pair[1].distance,
                "{metric}: not ascending"
            );
        }
        for n in found {
            let expected = reference_distance(metric, q, &data[n.id as usize]);
            assert!(
                (n.distance as f64 - expected).abs() < 1e-4,
                "{metric}: {} vs {expected}",
                n.distance
            );
        }
    }
}
