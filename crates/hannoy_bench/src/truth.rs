//! Exact nearest neighbours, in f64 over every row (in parallel), and recall against them.

use std::time::Instant;

use rayon::prelude::*;

use crate::args::{Metric, Settings};
use crate::data::{Dataset, Matrix, CATEGORY_VALUES};
use crate::{BenchError, Progress};

/// The deepest recall measured: recall@100 (with `LIMIT 100`).
pub const DEEP_K: usize = 100;

/// Distances from queries to base rows, in f64: the reference every engine is judged by.
pub struct Scorer<'a> {
    metric: Metric,
    base: &'a Matrix,
    /// Under cosine, the base rows' norms, computed once.
    base_norms: Vec<f64>,
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    // Four accumulators, so the loop vectorises and the sum does not wait on one register.
    let mut sums = [0f64; 4];
    let mut chunks_a = a.chunks_exact(4);
    let mut chunks_b = b.chunks_exact(4);
    for (x, y) in (&mut chunks_a).zip(&mut chunks_b) {
        for lane in 0..4 {
            sums[lane] += f64::from(x[lane]) * f64::from(y[lane]);
        }
    }
    let tail: f64 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    sums.iter().sum::<f64>() + tail
}

fn squared_l2(a: &[f32], b: &[f32]) -> f64 {
    let mut sums = [0f64; 4];
    let mut chunks_a = a.chunks_exact(4);
    let mut chunks_b = b.chunks_exact(4);
    for (x, y) in (&mut chunks_a).zip(&mut chunks_b) {
        for lane in 0..4 {
            let difference = f64::from(x[lane]) - f64::from(y[lane]);
            sums[lane] += difference * difference;
        }
    }
    let tail: f64 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    sums.iter().sum::<f64>() + tail
}

impl<'a> Scorer<'a> {
    pub fn new(metric: Metric, base: &'a Matrix) -> Self {
        let base_norms = match metric {
            Metric::Cosine => (0..base.len())
                .into_par_iter()
                .map(|row| dot(base.row(row), base.row(row)).sqrt())
                .collect(),
            Metric::L2 => Vec::new(),
        };
        Scorer {
            metric,
            base,
            base_norms,
        }
    }

    pub fn rows(&self) -> usize {
        self.base.len()
    }

    /// What a query needs computed once: its norm under cosine.
    pub fn query_norm(&self, query: &[f32]) -> f64 {
        match self.metric {
            Metric::Cosine => dot(query, query).sqrt(),
            Metric::L2 => 1.0,
        }
    }

    /// The engines' distance: 1 − cosine similarity, or the Euclidean distance.
    pub fn distance(&self, query: &[f32], query_norm: f64, row: usize) -> f64 {
        let vector = self.base.row(row);
        match self.metric {
            Metric::Cosine => 1.0 - dot(query, vector) / (query_norm * self.base_norms[row]),
            Metric::L2 => squared_l2(query, vector).sqrt(),
        }
    }

    /// The `depth` nearest allowed rows of every query, nearest first (ties by id).
    pub fn neighbours(
        &self,
        queries: &Matrix,
        depth: usize,
        allowed: impl Fn(usize) -> bool + Sync,
    ) -> Vec<Vec<u32>> {
        (0..queries.len())
            .into_par_iter()
            .map(|query_index| {
                let query = queries.row(query_index);
                let norm = self.query_norm(query);
                let mut scored: Vec<(f64, u32)> = (0..self.base.len())
                    .filter(|&row| allowed(row))
                    .map(|row| (self.distance(query, norm, row), row as u32))
                    .collect();
                let by_distance =
                    |a: &(f64, u32), b: &(f64, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
                if scored.len() > depth {
                    scored.select_nth_unstable_by(depth, by_distance);
                    scored.truncate(depth);
                }
                scored.sort_unstable_by(by_distance);
                scored.into_iter().map(|(_, row)| row).collect()
            })
            .collect()
    }
}

/// recall@k of one answer: the share of the k true neighbours it found, out of min(k, how many
/// allowed rows exist). A row as near as the k-th true neighbour (within 1e-6, the rounding of
/// an engine's f32 distance) counts as found: ties are equally right answers.
pub fn recall(
    returned: &[i64],
    truth: &[u32],
    k: usize,
    distance_of: impl Fn(usize) -> f64,
) -> f64 {
    let expected = k.min(truth.len());
    if expected == 0 {
        // Nothing to find, nothing missed.
        return 1.0;
    }
    let truth = &truth[..expected];
    let threshold = distance_of(truth[expected - 1] as usize);
    let tolerance = 1e-6 * threshold.abs().max(1.0);
    let mut seen = std::collections::HashSet::with_capacity(k);
    let hits = returned
        .iter()
        .take(k)
        .filter(|&&id| seen.insert(id))
        .filter(|&&id| {
            usize::try_from(id).is_ok_and(|row| {
                truth.contains(&(row as u32)) || distance_of(row) <= threshold + tolerance
            })
        })
        .count();
    hits.min(expected) as f64 / expected as f64
}

/// The exact answers within one filter, `category < threshold`.
pub struct FilteredTruth {
    pub percent: f64,
    pub threshold: i32,
    pub matching: usize,
    pub neighbours: Vec<Vec<u32>>,
}

pub struct Truths {
    /// Per query, the nearest min(DEEP_K, rows) rows (or what the user's file gives).
    pub unfiltered: Vec<Vec<u32>>,
    pub given: bool,
    pub filtered: Vec<FilteredTruth>,
}

impl Truths {
    /// Whether recall@k can be computed: the truth lists are deep enough.
    pub fn covers(&self, k: usize, rows: usize) -> bool {
        self.unfiltered.iter().all(|list| list.len() >= k.min(rows))
    }
}

/// The category threshold of a selectivity, and the selectivity it really is.
pub fn category_threshold(percent: f64) -> i32 {
    ((percent / 100.0 * f64::from(CATEGORY_VALUES)).round() as i32).clamp(1, CATEGORY_VALUES)
}

pub fn prepare(
    settings: &Settings,
    dataset: &Dataset,
    progress: &Progress,
) -> Result<Truths, BenchError> {
    let scorer = Scorer::new(settings.metric, &dataset.base);
    let depth = DEEP_K.max(settings.k);
    let (unfiltered, given) = match &dataset.given_truth {
        Some(given) => {
            progress.say("ground truth: from --truth");
            (given.clone(), true)
        }
        None => {
            progress.say(format!(
                "ground truth: exact top {depth} of {} queries over {} rows (f64, {} threads)",
                dataset.queries.len(),
                dataset.base.len(),
                rayon::current_num_threads()
            ));
            let started = Instant::now();
            let neighbours = scorer.neighbours(&dataset.queries, depth, |_| true);
            progress.say(format!(
                "  ground truth in {:.1} s",
                started.elapsed().as_secs_f64()
            ));
            (neighbours, false)
        }
    };
    let mut filtered = Vec::new();
    for &percent in &settings.selectivities_percent {
        let threshold = category_threshold(percent);
        let matching = dataset
            .categories
            .iter()
            .filter(|&&category| category < threshold)
            .count();
        let started = Instant::now();
        let neighbours = scorer.neighbours(&dataset.queries, settings.k, |row| {
            dataset.categories[row] < threshold
        });
        progress.say(format!(
            "ground truth within category < {threshold} ({percent}%, {matching} rows) in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        filtered.push(FilteredTruth {
            percent,
            threshold,
            matching,
            neighbours,
        });
    }
    Ok(Truths {
        unfiltered,
        given,
        filtered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(dims: usize, values: &[f32]) -> Matrix {
        Matrix {
            dims,
            values: values.to_vec(),
        }
    }

    #[test]
    fn neighbours_by_hand_l2_and_cosine() {
        // Points on a line and a diagonal; the query sits at (1, 0).
        let base = matrix(2, &[0.0, 0.0, 2.0, 0.0, 1.0, 3.0, -4.0, 0.0, 1.0, 0.5]);
        let queries = matrix(2, &[1.0, 0.0]);
        let l2 = Scorer::new(Metric::L2, &base);
        // Distances: 1, 1, 3, 5, 0.5 -> 4, then 0 and 1 tied (by id), 2, 3.
        assert_eq!(
            l2.neighbours(&queries, 5, |_| true),
            vec![vec![4, 0, 1, 2, 3]]
        );
        assert_eq!(l2.neighbours(&queries, 2, |_| true), vec![vec![4, 0]]);
        assert_eq!(
            l2.neighbours(&queries, 2, |row| row % 2 == 1),
            vec![vec![1, 3]]
        );

        // A zero vector has no cosine distance: the cosine base leaves it out.
        let base = matrix(2, &[2.0, 0.0, 1.0, 3.0, -4.0, 0.0, 1.0, 0.5]);
        let cosine = Scorer::new(Metric::Cosine, &base);
        // Cosine distances: 0, 1 - 1/sqrt(10), 2, 1 - 1/sqrt(1.25).
        assert_eq!(
            cosine.neighbours(&queries, 4, |_| true),
            vec![vec![0, 3, 1, 2]]
        );
        let norm = cosine.query_norm(queries.row(0));
        assert!((cosine.distance(queries.row(0), norm, 2) - 2.0).abs() < 1e-12);
        assert!(
            (cosine.distance(queries.row(0), norm, 1) - (1.0 - 1.0 / 10f64.sqrt())).abs() < 1e-12
        );
    }

    #[test]
    fn recall_counts_hits_ties_and_short_truth() {
        let distances = [0.1, 0.2, 0.3, 0.3, 0.9];
        let distance_of = |row: usize| distances[row];
        assert_eq!(recall(&[0, 1, 2], &[0, 1, 2], 3, distance_of), 1.0);
        assert!((recall(&[0, 4, 1], &[0, 1, 2], 3, distance_of) - 2.0 / 3.0).abs() < 1e-12);
        // Row 3 ties with the third neighbour: as right an answer as row 2.
        assert_eq!(recall(&[0, 1, 3], &[0, 1, 2], 3, distance_of), 1.0);
        // Duplicates count once; rows past k are not looked at.
        assert!((recall(&[0, 0, 0, 1], &[0, 1, 2], 3, distance_of) - 1.0 / 3.0).abs() < 1e-12);
        // Only two rows match the filter: both found is recall 1.
        assert_eq!(recall(&[1, 0], &[0, 1], 10, distance_of), 1.0);
        assert_eq!(recall(&[], &[0, 1], 10, distance_of), 0.0);
        assert_eq!(recall(&[], &[], 10, distance_of), 1.0);
        // Ids that are not rows are never hits.
        assert_eq!(recall(&[-1, 77], &[0], 1, distance_of), 0.0);
    }

    #[test]
    fn thresholds() {
        assert_eq!(category_threshold(10.0), 1000);
        assert_eq!(category_threshold(0.1), 10);
        assert_eq!(category_threshold(0.001), 1);
        assert_eq!(category_threshold(100.0), CATEGORY_VALUES);
    }
}
