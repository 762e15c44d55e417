//! Indexes that keep no full vectors, only codes: every write links against vectors decoded
//! from codes, every search hands out lower bounds, and the caller's re-ranking from its own
//! vectors (PostgreSQL's, from the table) answers as an index with vectors does.

mod common;

use std::collections::HashMap;

use common::*;
use hannoy_engine::{
    never_cancel, Error, Index, IndexOptions, ItemId, Metric, Quantization, SearchParams, Strategy,
    VectorRef,
};

const K: usize = 10;

fn options(metric: Metric, dims: usize, bits: u8, keep_vectors: bool) -> IndexOptions {
    IndexOptions {
        quantization: Quantization::Rabitq { bits },
        keep_vectors,
        ..IndexOptions::new(metric, dims)
    }
}

/// Inserts `data` the way a table fills: rows one by one, then batches that double the index
/// (each takes the centroid anew and codes every item again, from decoded codes where there
/// are no vectors), then large batches linked into the stored graph; deletes every seventh row
/// with repair and fills the freed ids again; reopens. Returns the index and the row each
/// live id holds.
fn grown(
    dir: &std::path::Path,
    options: &IndexOptions,
    data: &[Vec<f32>],
) -> (Index, HashMap<ItemId, usize>) {
    let index = Index::create(dir, options).unwrap();
    let mut rows = HashMap::new();
    let insert = |rows: &mut HashMap<ItemId, usize>, from: usize, to: usize| {
        let ids = insert_floats(&index, &data[from..to]);
        rows.extend(ids.into_iter().zip(from..to));
    };
    let mut next = 0;
    let last = data.len() - 600;
    for size in [1, 1, 2, 28, 200, 1_500] {
        insert(&mut rows, next, next + size);
        next += size;
    }
    while next < last {
        let size = 1_200.min(last - next);
        insert(&mut rows, next, next + size);
        next += size;
    }
    let doomed = bitmap((0..next as ItemId).filter(|id| id % 7 == 3));
    index.write(|w| w.delete(&doomed, &never_cancel)).unwrap();
    rows.retain(|id, _| !doomed.contains(*id));
    insert(&mut rows, last, data.len());
    drop(index);
    (Index::open(dir).unwrap(), rows)
}

/// Mean recall@10 of the lowest bounds of each query's first window of 10: what the walk finds
/// before the executor asks for more, which a graph linked on the wrong vectors lowers.
fn first_window_recall(
    reader: &hannoy_engine::Reader,
    params: &SearchParams<'_>,
    queries: &[Vec<f32>],
    exact_of: impl Fn(&[f32], ItemId) -> f64,
) -> f64 {
    let allowed = params.filter.unwrap_or(reader.items());
    let first_window = SearchParams {
        ef_search: K,
        ..params.clone()
    };
    let mut sum = 0.0;
    for q in queries {
        let first: Vec<ItemId> = reader
            .stream(VectorRef::Floats(q), &first_window)
            .unwrap()
            .next_batch()
            .unwrap()
            .iter()
            .map(|n| n.id)
            .collect();
        let truth = exact(allowed.iter().map(|id| (id, exact_of(q, id))), K);
        sum += recall(&first, &truth, |id| exact_of(q, id));
    }
    sum / queries.len() as f64
}

#[test]
fn an_index_without_vectors_grows_shrinks_and_its_bounds_reorder_to_the_same_recall() {
    let dims = 128;
    let data = embedding_like(9_000, dims, 61);
    let queries = queries(&data, 40, 62);
    let scaled_data = scaled(&data, 63);
    for metric in [Metric::Cosine, Metric::Euclidean, Metric::InnerProduct] {
        let data = if metric == Metric::Cosine {
            &data
        } else {
            &scaled_data
        };
        let mut recalls = Vec::new();
        let mut used = Vec::new();
        for keep_vectors in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let (index, rows) = grown(dir.path(), &options(metric, dims, 4, keep_vectors), data);
            let info = index.info().unwrap();
            assert_eq!(info.options.keep_vectors, keep_vectors);
            assert_eq!(info.pages.vector_pages == 0, !keep_vectors, "{metric}");
            used.push(info.used_bytes);
            let reader = index.read().unwrap();
            let report = reader.check().unwrap();
            assert!(
                report.is_sound(),
                "{metric}, vectors {keep_vectors}: {report:?}"
            );
            assert_eq!(report.mismatched_codes, 0);
            let live: Vec<ItemId> = reader.items().iter().collect();
            assert_eq!(live.len(), rows.len());
            let row_of = |id: ItemId| &data[rows[&id]];
            let exact_of = |q: &[f32], id: ItemId| {
                metric
                    .distance(VectorRef::Floats(q), VectorRef::Floats(row_of(id)))
                    .unwrap()
            };
            let narrow = bitmap(live.iter().copied().filter(|id| id % 10 == 0));
            let mut per_case = Vec::new();
            for (filter, strategy) in [
                (None, Strategy::Auto),
                (Some(&narrow), Strategy::Auto),
                (None, Strategy::Exact),
            ] {
                // Bounds are asked for only where the index keeps vectors; without them the
                // stream bounds anyway.
                let params = SearchParams {
                    filter,
                    strategy,
                    lower_bounds: keep_vectors,
                    ..SearchParams::default()
                };
                let (recall, fetched) = reordered_recall(&reader, &params, &queries, exact_of, K);
                let first = first_window_recall(&reader, &params, &queries, exact_of);
                let rows = if filter.is_some() {
                    "10% filter"
                } else {
                    "all"
                };
                println!(
                    "{metric}, vectors {keep_vectors}, {rows} {strategy:?}: recall@10 \
                     {recall:.4}, {fetched:.1} rows fetched, first window's recall@10 {first:.3}"
                );
                if strategy == Strategy::Exact {
                    assert_eq!(recall, 1.0, "{metric}, vectors {keep_vectors}");
                } else {
                    assert!(
                        recall >= 0.95,
                        "{metric}, vectors {keep_vectors}: {recall:.4}"
                    );
                }
                per_case.push((recall, fetched, first));
            }
            recalls.push(per_case);
        }
        // A graph linked on decoded vectors walks about as well as one linked on the vectors
        // (linked on vectors of another space its first windows lose 0.25-0.45), and its
        // bounds, from a centroid that is the first row, cost at most twice the rows.
        for (with, without) in recalls[0].iter().zip(&recalls[1]) {
            assert!(without.0 >= with.0 - 0.02, "{metric}: {recalls:?}");
            assert!(without.1 <= 2.0 * with.1, "{metric}: {recalls:?}");
            assert!(without.2 >= with.2 - 0.1, "{metric}: {recalls:?}");
        }
        // 512 bytes of vector a row against 88 of code: well under half the pages.
        assert!(
            used[1] * 2 < used[0],
            "{metric}: {} bytes without vectors, {} with",
            used[1],
            used[0]
        );
    }
}

#[test]
fn a_search_without_vectors_hands_out_bounds_of_its_codes_and_vectors_decoded_from_them() {
    let (dims, metric) = (96, Metric::Cosine);
    let data = embedding_like(2_000, dims, 71);
    let dir = tempfile::tempdir().unwrap();
    let index = Index::create(dir.path(), &options(metric, dims, 6, false)).unwrap();
    // An empty index answers nothing, whatever the strategy.
    for strategy in [Strategy::Auto, Strategy::Exact] {
        let reader = index.read().unwrap();
        let params = SearchParams {
            strategy,
            ..SearchParams::default()
        };
        assert!(reader
            .search(VectorRef::Floats(&data[0]), K, &params)
            .unwrap()
            .is_empty());
    }
    insert_floats(&index, &data);
    let reader = index.read().unwrap();
    for (id, row) in data.iter().enumerate().step_by(97) {
        let decoded = reader.vector(id as ItemId).unwrap().expect("live");
        let cosine = reference_distance(metric, row, &decoded);
        assert!(
            cosine < 0.01,
            "item {id}: decoded at cosine distance {cosine}"
        );
        assert!(
            cosine > 0.0,
            "item {id}: decoded exactly, so no code was used"
        );
    }
    let q = &queries(&data, 1, 72)[0];
    let found = reader
        .search(VectorRef::Floats(q), K, &SearchParams::default())
        .unwrap();
    assert_eq!(found.len(), K);
    for n in &found {
        let exact = reference_distance(metric, q, &data[n.id as usize]);
        assert!(n.distance as f64 <= exact, "{n:?} above {exact}");
    }
}

#[test]
fn an_index_without_vectors_needs_codes_of_four_bits_or_more() {
    let dir = tempfile::tempdir().unwrap();
    for quantization in [
        Quantization::None,
        Quantization::Rabitq { bits: 1 },
        Quantization::Rabitq { bits: 3 },
    ] {
        let options = IndexOptions {
            quantization,
            keep_vectors: false,
            ..IndexOptions::new(Metric::Cosine, 64)
        };
        let err = Index::create(dir.path(), &options).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidParameter {
                    name: "keep_vectors",
                    ..
                }
            ),
            "{quantization:?}: {err}"
        );
    }
    let index = Index::create(dir.path(), &options(Metric::HalfEuclidean, 64, 4, false)).unwrap();
    drop(index);
    let info = Index::open(dir.path()).unwrap().info().unwrap();
    assert!(!info.options.keep_vectors);
    assert_eq!(info.options.quantization, Quantization::Rabitq { bits: 4 });
}
