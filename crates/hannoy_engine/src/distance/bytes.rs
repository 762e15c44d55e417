//! A batch's vectors at one signed byte per element, for the searches of a build: a quarter of
//! the bytes of f32 to bring from memory for every distance, where the build spends most of its
//! time waiting. Each vector keeps its own scale (its largest magnitude over 127), so the inner
//! product of two is their bytes' integer inner product times both scales. Links are still chosen
//! on exact scores: the searches only have to rank candidates, and the rounding (about 0.4% of
//! an element's range) moves a score by far less than the gaps between a node's neighbours.
//!
//! Vectors are rotated before rounding, by one random orthogonal transform for all: inner
//! products and norms stay as they were, and a vector whose length sits in a few coordinates (as
//! embeddings with outlier dimensions have) no longer sets a coarse step for all the others.

use rayon::prelude::*;

use super::{as_floats, kernels::kernels, Metric};
use crate::codes::rotation::Rotation;

/// The rotation's seed: any fixed value; the byte form lives only as long as one build.
const ROTATION_SEED: u64 = 0x6279_7465_735f_726f;

/// The metrics whose score follows from an inner product: the f32 ones a build can search on
/// bytes. Manhattan distances do not factor through a scale, half floats are already compact
/// and bit vectors are bytes already.
pub(crate) fn searchable(metric: Metric) -> bool {
    matches!(
        metric,
        Metric::Cosine | Metric::Euclidean | Metric::InnerProduct
    )
}

/// The head of a record: the scale and the exact squared norm, as f32.
const HEAD: usize = 8;

/// Bytes the byte form of one vector takes, none for metrics that are not searched on bytes.
pub(crate) fn record_bytes(metric: Metric, dimensions: usize) -> usize {
    if searchable(metric) {
        stride_words(dimensions) * 8
    } else {
        0
    }
}

/// Words one record takes: its head and bytes, padded to 8.
fn stride_words(dimensions: usize) -> usize {
    (HEAD + dimensions).div_ceil(8)
}

/// Records of `HEAD + dimensions` bytes, padded to 8, one per vector.
pub(crate) struct ByteVectors {
    metric: Metric,
    records: Vec<u64>,
    stride_words: usize,
    dimensions: usize,
}

impl ByteVectors {
    /// The byte form of `count` stored f32 vectors of `metric`, the `i`th being `vector(i)`,
    /// encoded on the current rayon pool.
    pub fn new<'a>(
        metric: Metric,
        dimensions: usize,
        count: usize,
        vector: impl Fn(usize) -> &'a [u8] + Sync,
    ) -> ByteVectors {
        debug_assert!(searchable(metric));
        let stride_words = stride_words(dimensions);
        let rotation = Rotation::with_rounds(dimensions, ROTATION_SEED, 2);
        let mut records = vec![0u64; stride_words * count];
        records
            .par_chunks_exact_mut(stride_words)
            .enumerate()
            .for_each_init(
                || (Vec::new(), Vec::new()),
                |(rotated, scratch), (i, record)| {
                    let floats = as_floats(vector(i));
                    rotation.apply_into(&floats, rotated, scratch);
                    encode(rotated, &floats, bytemuck::cast_slice_mut(record));
                },
            );
        ByteVectors {
            metric,
            records,
            stride_words,
            dimensions,
        }
    }

    #[inline]
    pub fn get(&self, i: usize) -> &[u8] {
        let start = i * self.stride_words;
        &bytemuck::cast_slice(&self.records[start..start + self.stride_words])
            [..HEAD + self.dimensions]
    }

    /// The score of two records, ordering as `metric.score` of the vectors they came from.
    #[inline]
    pub fn score(&self, a: &[u8], b: &[u8]) -> f32 {
        let (scale_a, norm_a, bytes_a) = split(a);
        let (scale_b, norm_b, bytes_b) = split(b);
        let dot = (kernels().dot_bytes)(bytes_a, bytes_b) as f32 * scale_a * scale_b;
        match self.metric {
            Metric::Cosine => 1.0 - dot,
            Metric::InnerProduct => -dot,
            _ => norm_a + norm_b - 2.0 * dot,
        }
    }
}

/// Writes the record of a vector from its rotated form and its own (whose norm is exact).
fn encode(rotated: &[f32], vector: &[f32], record: &mut [u8]) {
    let largest = rotated.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = largest / 127.0;
    let norm = (kernels().dot)(vector, vector);
    record[..4].copy_from_slice(&scale.to_ne_bytes());
    record[4..HEAD].copy_from_slice(&norm.to_ne_bytes());
    let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    for (byte, x) in record[HEAD..].iter_mut().zip(rotated) {
        *byte = round_to_byte(x * inverse) as u8;
    }
}

/// `x`, within ±127 give or take rounding, to the nearest whole number (ties to even) as a
/// byte. Adding and taking away 1.5 · 2^23 leaves no fraction bits for any value this small to
/// keep, where `f32::round` is a call to the C library on the base x86-64 target, per element.
#[inline]
fn round_to_byte(x: f32) -> i8 {
    const SHIFT: f32 = 12_582_912.0;
    ((x.clamp(-127.0, 127.0) + SHIFT) - SHIFT) as i8
}

#[inline]
fn split(record: &[u8]) -> (f32, f32, &[i8]) {
    let scale = f32::from_ne_bytes(record[..4].try_into().expect("4 bytes"));
    let norm = f32::from_ne_bytes(record[4..HEAD].try_into().expect("4 bytes"));
    (scale, norm, bytemuck::cast_slice(&record[HEAD..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::rotation::SplitMix;

    /// Rows with a spread of norms and a shared offset, as embeddings have, in stored form
    /// (normalised for cosine).
    fn rows(metric: Metric, count: usize, dimensions: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut random = SplitMix(seed);
        let mut uniform = move || (random.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        let offset: Vec<f32> = (0..dimensions).map(|_| uniform()).collect();
        (0..count)
            .map(|_| {
                let norm = 0.5 + 2.0 * (uniform() + 0.5);
                let mut row: Vec<f32> = offset.iter().map(|o| norm * (o + uniform())).collect();
                if metric == Metric::Cosine {
                    let length = row.iter().map(|x| x * x).sum::<f32>().sqrt();
                    row.iter_mut().for_each(|x| *x /= length);
                }
                row
            })
            .collect()
    }

    fn stored(row: &[f32]) -> &[u8] {
        bytemuck::cast_slice(row)
    }

    #[test]
    fn scores_on_bytes_stay_near_the_exact_ones_and_rank_the_same_neighbours() {
        for metric in [Metric::Cosine, Metric::Euclidean, Metric::InnerProduct] {
            for dimensions in [3usize, 64, 384, 1001] {
                let rows = rows(metric, 2_000, dimensions, dimensions as u64);
                let bytes = ByteVectors::new(metric, dimensions, rows.len(), |i| stored(&rows[i]));
                let mut overlap = 0;
                let queries = 20;
                for q in 0..queries {
                    let (exact, on_bytes) = scores_of(metric, &rows, &bytes, q);
                    let spread = exact.iter().fold(0.0f32, |m, s| m.max(s.abs()));
                    for (i, (&e, &b)) in exact.iter().zip(&on_bytes).enumerate() {
                        assert!(
                            (e - b).abs() <= 0.02 * spread.max(1e-3),
                            "{metric:?} {dimensions}-d, row {i}: exact {e}, on bytes {b}"
                        );
                    }
                    overlap += shared_top_10(&exact, &on_bytes);
                }
                // Three dimensions leave rounding no room to hide in; from 64 on, a search on
                // bytes finds the exact neighbours.
                let least = if dimensions < 64 { 0.8 } else { 0.95 };
                let recall = overlap as f64 / (10 * queries) as f64;
                assert!(
                    recall >= least,
                    "{metric:?} {dimensions}-d: recall@10 {recall}"
                );
            }
        }
    }

    /// The exact and the byte scores of row `q` against every row.
    fn scores_of(
        metric: Metric,
        rows: &[Vec<f32>],
        bytes: &ByteVectors,
        q: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let exact = rows
            .iter()
            .map(|r| metric.score(stored(&rows[q]), stored(r)))
            .collect();
        let on_bytes = (0..rows.len())
            .map(|i| bytes.score(bytes.get(q), bytes.get(i)))
            .collect();
        (exact, on_bytes)
    }

    /// How many of the 10 best by `exact` are among the 10 best by `on_bytes`.
    fn shared_top_10(exact: &[f32], on_bytes: &[f32]) -> usize {
        let best_10 = |scores: &[f32]| {
            let mut order: Vec<usize> = (0..scores.len()).collect();
            order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
            order.truncate(10);
            order
        };
        let (by_exact, by_bytes) = (best_10(exact), best_10(on_bytes));
        by_bytes.iter().filter(|i| by_exact.contains(i)).count()
    }

    /// Top-10 overlap between exact and byte scores, over `queries` of `rows` as queries.
    fn overlap_at_10(metric: Metric, rows: &[Vec<f32>], queries: usize) -> f64 {
        let bytes = ByteVectors::new(metric, rows[0].len(), rows.len(), |i| stored(&rows[i]));
        let found: usize = (0..queries)
            .map(|q| {
                let (exact, on_bytes) = scores_of(metric, rows, &bytes, q);
                shared_top_10(&exact, &on_bytes)
            })
            .sum();
        found as f64 / (10 * queries) as f64
    }

    #[test]
    fn a_few_large_coordinates_do_not_coarsen_the_others() {
        // Embeddings of some models carry much of their length in a few coordinates; rounded
        // as they are, those would set a step too coarse for the rest to rank neighbours.
        for metric in [Metric::Cosine, Metric::Euclidean, Metric::InnerProduct] {
            let mut rows = rows(metric, 2_000, 384, 5);
            let mut random = SplitMix(9);
            for row in &mut rows {
                let length = row.iter().map(|x| x * x).sum::<f32>().sqrt();
                let mut spread = || 1.0 + (random.next() >> 40) as f32 / (1u64 << 24) as f32;
                row[7] += 0.5 * length * spread();
                row[300] -= 0.3 * length * spread();
                if metric == Metric::Cosine {
                    let length = row.iter().map(|x| x * x).sum::<f32>().sqrt();
                    row.iter_mut().for_each(|x| *x /= length);
                }
            }
            let recall = overlap_at_10(metric, &rows, 20);
            assert!(recall >= 0.95, "{metric:?}: recall@10 {recall}");
        }
    }

    #[test]
    fn rounding_to_a_byte_takes_the_nearest_whole_number_and_stops_at_127() {
        for tenths in -1280..=1280 {
            let x = tenths as f32 / 10.0 + 0.01;
            let expected = x.round().clamp(-127.0, 127.0) as i8;
            assert_eq!(round_to_byte(x), expected, "{x}");
        }
        assert_eq!(round_to_byte(2.5), 2, "ties go to the even neighbour");
        assert_eq!(round_to_byte(-3.5), -4);
        assert_eq!(round_to_byte(1e9), 127);
        assert_eq!(round_to_byte(-1e9), -127);
        assert_eq!(round_to_byte(f32::NAN), 0);
    }

    #[test]
    fn a_zero_vector_and_the_largest_values_keep_their_scores() {
        let zero = [0.0f32; 16];
        let mut large = [0.0f32; 16];
        large[0] = 1e15;
        large[1] = -1e15;
        let one = [1.0f32; 16];
        let rows = [&zero[..], &large[..], &one[..]];
        let bytes = ByteVectors::new(Metric::Euclidean, 16, rows.len(), |i| stored(rows[i]));
        assert_eq!(bytes.score(bytes.get(0), bytes.get(2)), 16.0);
        assert_eq!(bytes.score(bytes.get(0), bytes.get(0)), 0.0);
        let exact = Metric::Euclidean.score(stored(&large), stored(&one));
        let on_bytes = bytes.score(bytes.get(1), bytes.get(2));
        assert!(
            on_bytes.is_finite() && (on_bytes - exact).abs() <= 1e-3 * exact,
            "{on_bytes} {exact}"
        );
    }
}
