//! Which compact code to walk the graph with: recall@10 at equal bytes, with exact re-ranking.
//!
//! Every query scores every code (no graph, so the code alone is measured), keeps the R best
//! estimates and re-ranks them with the full vectors; recall@10 is against the data set's exact
//! top 10. Run on a folder with base.npy, queries.npy and truth.npy (the layout
//! `scripts/make-dataset` writes):
//!
//!     cargo bench -p hannoy_engine --bench codes -- --npy $PWD/target/datasets/wordnet-minilm

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use common::read_npy;
use hannoy_engine::codes::{Code, Grid, Quantizer, Scheme};
use rayon::prelude::*;

/// Candidates re-ranked per query.
const RERANKED: [usize; 6] = [10, 20, 40, 80, 160, 320];

struct Args {
    dir: PathBuf,
    dims: usize,
    queries: usize,
}

fn args() -> Args {
    let mut args = Args {
        dir: PathBuf::new(),
        dims: 384,
        queries: 1000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--npy" => args.dir = value().into(),
            "--dims" => args.dims = value().parse().expect("--dims D"),
            "--queries" => args.queries = value().parse().expect("--queries Q"),
            "--bench" => {}
            "--help" => {
                println!("codes bench --npy DIR [--dims 384] [--queries 1000]\n  DIR holds base.npy, queries.npy (float32) and truth.npy (int32 ids, the exact top k of each query, k >= 10)");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!args.dir.as_os_str().is_empty(), "--npy DIR is required");
    args
}

/// Nanoseconds per item of `score_all` (which scores `items` items for a query and sums the
/// scores, so that nothing is optimised away), on this thread, over the first 20 queries.
fn nanoseconds_per(queries: &[Vec<f32>], items: usize, score_all: impl Fn(&[f32]) -> f32) -> f64 {
    let sample = &queries[..queries.len().min(20)];
    let start = Instant::now();
    let total: f32 = sample.iter().map(|q| score_all(q)).sum();
    std::hint::black_box(total);
    start.elapsed().as_secs_f64() * 1e9 / (sample.len() * items) as f64
}

/// As `squared`, in eight independent sums that the compiler turns into SIMD: the baseline a
/// code's estimate must beat.
fn squared_in_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (whole_a, whole_b) = (a.chunks_exact(8), b.chunks_exact(8));
    let rest = squared(whole_a.remainder(), whole_b.remainder());
    for (x, y) in whole_a.zip(whole_b) {
        for i in 0..8 {
            let d = x[i] - y[i];
            lanes[i] += d * d;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

fn squared(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn main() {
    let args = args();
    // Every base row: truth.npy holds ids of the whole file.
    let base = read_npy::<f32>(&args.dir.join("base.npy"), usize::MAX, args.dims);
    let queries = read_npy::<f32>(&args.dir.join("queries.npy"), args.queries, args.dims);
    let truth_columns = 100;
    let truth = read_npy::<i32>(&args.dir.join("truth.npy"), args.queries, truth_columns);
    println!(
        "### Codes on {} x {} ({}), {} queries, exact re-ranking of the R best estimates\n",
        base.len(),
        args.dims,
        args.dir.display(),
        queries.len()
    );
    let header: Vec<String> = RERANKED.iter().map(|r| format!("R = {r}")).collect();
    println!(
        "| scheme | bytes per vector | µs to code a vector, one thread | ns per estimate, one thread | recall@10 at {} |",
        header.join(" / ")
    );
    println!("|---|---|---|---|---|");
    println!(
        "| full vectors (f32, eight lanes) | {} | - | {:.0} | exact |",
        args.dims * 4,
        nanoseconds_per(&queries, base.len(), |q| {
            base.iter().map(|v| squared_in_lanes(q, v)).sum()
        })
    );
    let centroid = Quantizer::mean(args.dims, base.iter().map(Vec::as_slice));
    for (name, scheme, grid) in [
        ("binary (sign)", Scheme::Binary, Grid::Span),
        ("RaBitQ 1 bit", Scheme::Rabitq { bits: 1 }, Grid::Span),
        (
            "RaBitQ 2 bits, spanning grid",
            Scheme::Rabitq { bits: 2 },
            Grid::Span,
        ),
        (
            "RaBitQ 2 bits, fitted grid",
            Scheme::Rabitq { bits: 2 },
            Grid::Fitted,
        ),
        (
            "RaBitQ 3 bits, spanning grid",
            Scheme::Rabitq { bits: 3 },
            Grid::Span,
        ),
        (
            "RaBitQ 3 bits, fitted grid",
            Scheme::Rabitq { bits: 3 },
            Grid::Fitted,
        ),
        (
            "RaBitQ 4 bits, spanning grid",
            Scheme::Rabitq { bits: 4 },
            Grid::Span,
        ),
        (
            "RaBitQ 4 bits, fitted grid",
            Scheme::Rabitq { bits: 4 },
            Grid::Fitted,
        ),
        ("RaBitQ 8 bits", Scheme::Rabitq { bits: 8 }, Grid::Fitted),
    ] {
        let quantizer = Quantizer::new(scheme, centroid.clone(), 42)
            .expect("valid scheme")
            .with_grid(grid);
        let started = Instant::now();
        let codes: Vec<Code> = base
            .iter()
            .map(|v| {
                quantizer
                    .encode(v)
                    .expect("a vector of the data's dimension")
            })
            .collect();
        let to_code = started.elapsed().as_secs_f64() * 1e6 / base.len() as f64;
        let per_estimate = nanoseconds_per(&queries, codes.len(), |q| {
            let prepared = quantizer
                .prepare(q)
                .expect("a query of the data's dimension");
            codes
                .iter()
                .map(|code| quantizer.estimate(&prepared, code.as_bytes()).distance)
                .sum()
        });
        let found: Vec<[f64; RERANKED.len()]> = queries
            .par_iter()
            .zip(&truth)
            .map(|(q, truth)| {
                let prepared = quantizer
                    .prepare(q)
                    .expect("a query of the data's dimension");
                let mut estimates: Vec<(f32, u32)> = codes
                    .iter()
                    .enumerate()
                    .map(|(id, code)| {
                        (
                            quantizer.estimate(&prepared, code.as_bytes()).distance,
                            id as u32,
                        )
                    })
                    .collect();
                let most = RERANKED[RERANKED.len() - 1];
                estimates.select_nth_unstable_by(most, |a, b| a.0.total_cmp(&b.0));
                estimates.truncate(most);
                estimates.sort_by(|a, b| a.0.total_cmp(&b.0));
                let best: Vec<i32> = truth[..10].to_vec();
                RERANKED.map(|r| {
                    let mut exact: Vec<(f32, u32)> = estimates[..r]
                        .iter()
                        .map(|&(_, id)| (squared(q, &base[id as usize]), id))
                        .collect();
                    exact.sort_by(|a, b| a.0.total_cmp(&b.0));
                    exact
                        .iter()
                        .take(10)
                        .filter(|(_, id)| best.contains(&(*id as i32)))
                        .count() as f64
                        / 10.0
                })
            })
            .collect();
        let recalls: Vec<String> = (0..RERANKED.len())
            .map(|i| {
                format!(
                    "{:.3}",
                    found.iter().map(|f| f[i]).sum::<f64>() / found.len() as f64
                )
            })
            .collect();
        println!(
            "| {name} | {} | {to_code:.1} | {per_estimate:.0} | {} |",
            quantizer.code_bytes(),
            recalls.join(" / ")
        );
    }
}
