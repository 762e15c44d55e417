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

use common::read_npy;
use hannoy_engine::codes::{Code, Quantizer, Scheme};
use rayon::prelude::*;

/// Candidates re-ranked per query.
const RERANKED: [usize; 6] = [10, 20, 40, 80, 160, 320];

struct Args {
    dir: PathBuf,
    rows: usize,
    dims: usize,
    queries: usize,
}

fn args() -> Args {
    let mut args = Args {
        dir: PathBuf::new(),
        rows: usize::MAX,
        dims: 384,
        queries: 1000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--npy" => args.dir = value().into(),
            "--rows" => args.rows = value().parse().expect("--rows N"),
            "--dims" => args.dims = value().parse().expect("--dims D"),
            "--queries" => args.queries = value().parse().expect("--queries Q"),
            "--bench" => {}
            "--help" => {
                println!("codes bench --npy DIR [--dims 384] [--rows N] [--queries 1000]\n  DIR holds base.npy, queries.npy (float32) and truth.npy (int32 ids, the exact top k of each query, k >= 10)");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!args.dir.as_os_str().is_empty(), "--npy DIR is required");
    args
}

fn squared(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn main() {
    let args = args();
    let base = read_npy::<f32>(&args.dir.join("base.npy"), args.rows, args.dims);
    let queries = read_npy::<f32>(&args.dir.join("queries.npy"), args.queries, args.dims);
    let truth_columns = 100;
    let truth = read_npy::<i32>(&args.dir.join("truth.npy"), args.queries, truth_columns);
    assert!(
        args.rows == usize::MAX,
        "truth.npy holds ids of the whole base file: --rows would need a truth of its own"
    );
    println!(
        "### Codes on {} x {} ({}), {} queries, exact re-ranking of the R best estimates\n",
        base.len(),
        args.dims,
        args.dir.display(),
        queries.len()
    );
    let header: Vec<String> = RERANKED.iter().map(|r| format!("R = {r}")).collect();
    println!(
        "| scheme | bytes per vector | recall@10 at {} |",
        header.join(" / ")
    );
    println!("|---|---|---|");
    let centroid = Quantizer::mean(args.dims, base.iter().map(Vec::as_slice));
    for (name, scheme) in [
        ("binary (sign)", Scheme::Binary),
        ("RaBitQ 1 bit", Scheme::Rabitq { bits: 1 }),
        ("RaBitQ 2 bits", Scheme::Rabitq { bits: 2 }),
        ("RaBitQ 4 bits", Scheme::Rabitq { bits: 4 }),
        ("RaBitQ 8 bits", Scheme::Rabitq { bits: 8 }),
    ] {
        let quantizer = Quantizer::new(scheme, centroid.clone(), 42);
        let codes: Vec<Code> = base.par_iter().map(|v| quantizer.encode(v)).collect();
        let found: Vec<[f64; RERANKED.len()]> = queries
            .par_iter()
            .zip(&truth)
            .map(|(q, truth)| {
                let prepared = quantizer.prepare(q);
                let mut estimates: Vec<(f32, u32)> = codes
                    .iter()
                    .enumerate()
                    .map(|(id, code)| (quantizer.estimate(&prepared, code).distance, id as u32))
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
            "| {name} | {} | {} |",
            quantizer.code_bytes(),
            recalls.join(" / ")
        );
    }
}
