//! The engine's benchmark: build, size, recall and speed against brute force, on generated
//! clustered data. Run `cargo bench -p hannoy_engine --bench engine -- --help` for the knobs.
//! It prints one Markdown table per data set.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::*;
use hannoy_engine::{
    distance::kernel_name, never_cancel, Index, IndexOptions, Metric, Pass, Quantization,
    SearchParams, Strategy, VectorRef, Watch,
};
use roaring::RoaringBitmap;

struct Args {
    sizes: Vec<(usize, usize)>,
    /// With `DataKind::Files`: the folder.
    dir: std::path::PathBuf,
    queries: usize,
    efs: Vec<usize>,
    threads: Vec<usize>,
    metric: Metric,
    quick: bool,
    /// Skip the filtered runs (`--no-filters`).
    filters: bool,
    data: DataKind,
    /// Vectors per write transaction of the build, as `CREATE INDEX` splits a table by
    /// maintenance_work_mem; 0 builds in one.
    batch: usize,
    ef_construction: usize,
    /// Bits per coordinate of the index's RaBitQ codes (`--bits`); 0: none.
    bits: u8,
    /// Whether lists are stored with their neighbours' codes (`--neighbour-codes`).
    neighbour_codes: bool,
    /// Estimates re-ranked per batch on codes (`--rerank`); `None`: the whole window.
    rerank: Option<usize>,
    /// Queries measured from a cold page cache (`--cold N`); 0 skips the step.
    cold: usize,
    /// Passes over the queries per measured point, the fastest kept (`--repeat R`): on a
    /// shared machine a pass can lose a third of its speed to other guests.
    repeat: usize,
    /// Where to write the rows and queries as `.npy` instead of measuring (`--save DIR`), so
    /// that `scripts/bench --base` can run the same rows through SQL.
    save: Option<std::path::PathBuf>,
}

/// Makes `n` vectors of `dims` from a seed.
type Generator = fn(usize, usize, u64) -> Vec<Vec<f32>>;

#[derive(Clone, Copy, PartialEq)]
enum DataKind {
    /// Topics spread along a few directions each, like real text embeddings.
    Embeddings,
    /// Isotropic blobs with near duplicates: a hard case for any graph index.
    Hard,
    /// Drawn from a model calibrated on real text embeddings (`text_like`), queries held out.
    Text,
    /// Real vectors: `base.npy` and `queries.npy` in a folder (see scripts/make-dataset).
    Files,
}

fn parse() -> Args {
    let mut args = Args {
        sizes: vec![(100_000, 128), (100_000, 384)],
        dir: Default::default(),
        queries: 1000,
        efs: vec![20, 40, 80, 160],
        threads: vec![1, 2],
        metric: Metric::Cosine,
        quick: false,
        filters: true,
        data: DataKind::Embeddings,
        batch: 0,
        ef_construction: IndexOptions::DEFAULT_EF_CONSTRUCTION,
        bits: 0,
        neighbour_codes: false,
        rerank: None,
        cold: 0,
        repeat: 1,
        save: None,
    };
    let list = |s: &str| {
        s.split(',')
            .map(|x| x.trim().parse::<usize>().expect("a number"))
            .collect::<Vec<_>>()
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--sizes" => {
                args.sizes = it
                    .next()
                    .expect("--sizes NxD,...")
                    .split(',')
                    .map(|p| {
                        let (n, d) = p.split_once('x').expect("NxD");
                        (n.parse().unwrap(), d.parse().unwrap())
                    })
                    .collect()
            }
            "--queries" => args.queries = it.next().unwrap().parse().unwrap(),
            "--ef" => args.efs = list(&it.next().unwrap()),
            "--threads" => args.threads = list(&it.next().unwrap()),
            "--metric" => {
                let name = it.next().unwrap();
                args.metric = Metric::ALL
                    .into_iter()
                    .find(|m| m.name() == name)
                    .expect("cosine, euclidean, ...");
            }
            "--quick" => args.quick = true,
            "--no-filters" => args.filters = false,
            "--batch" => args.batch = it.next().unwrap().parse().unwrap(),
            "--ef-construction" => args.ef_construction = it.next().unwrap().parse().unwrap(),
            "--bits" => args.bits = it.next().unwrap().parse().unwrap(),
            "--neighbour-codes" => args.neighbour_codes = true,
            "--rerank" => args.rerank = Some(it.next().unwrap().parse().unwrap()),
            "--cold" => args.cold = it.next().unwrap().parse().unwrap(),
            "--repeat" => args.repeat = it.next().unwrap().parse::<usize>().unwrap().max(1),
            "--save" => args.save = Some(it.next().expect("--save DIR").into()),
            "--data" => {
                args.data = match it.next().as_deref() {
                    Some("embeddings") => DataKind::Embeddings,
                    Some("hard") => DataKind::Hard,
                    Some("text") => DataKind::Text,
                    other => panic!("--data embeddings|hard|text, not {other:?}"),
                }
            }
            "--npy" => {
                args.data = DataKind::Files;
                args.dir = it.next().expect("--npy DIR").into();
            }
            "--bench" => {}
            "--help" => {
                println!("engine bench [--sizes 100000x128,100000x384] [--queries 1000] [--ef 20,40,80,160] [--threads 1,2] [--metric cosine] [--data embeddings|hard|text | --npy DIR] [--quick] [--no-filters] [--batch N] [--ef-construction E] [--bits B [--neighbour-codes]] [--rerank R] [--cold N] [--repeat R] [--save DIR]\n  --repeat R: R passes over the queries per measured point, the fastest reported\n  --save DIR: write each size's rows and queries to DIR/<N>x<D>/base.npy and queries.npy, and measure nothing\n  --cold N: N queries each from a cold start (index closed, its file dropped from the page cache), with the pages each brings in\n  --bits B: the index keeps RaBitQ codes of B bits per coordinate and the sweep walks on them and, on the same graph, on the full vectors\n  --neighbour-codes: with --bits, each list is stored with its neighbours' codes\n  --npy DIR: DIR/base.npy and DIR/queries.npy (2-D float32), the first N rows and Q queries of a --sizes NxD");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

struct QueryRun {
    recall: f64,
    qps: f64,
    p99_ms: f64,
    rows: f64,
    /// Distances the layer-0 walk computed per query (`NeighborStream::visited`; the descent
    /// through the upper layers adds a few dozen).
    scored: f64,
    /// Share of the queries whose walk found pages out of memory and asked for them ahead.
    advised: f64,
}

/// The queries run `repeat` times over; the fastest pass is kept.
fn run_queries(
    repeat: usize,
    index: &Index,
    metric: Metric,
    data: &[Vec<f32>],
    queries: &[Vec<f32>],
    truth: &[Vec<(u32, f64)>],
    params: &SearchParams<'_>,
) -> QueryRun {
    let pass = || {
        let reader = index.read().unwrap();
        let mut latencies = Vec::with_capacity(queries.len());
        let mut total_recall = 0.0;
        let mut rows = 0usize;
        let mut scored = 0usize;
        let mut advised = 0usize;
        // What `Reader::search` does, through the stream so that its work can be counted.
        let params = SearchParams {
            ef_search: params.ef_search.max(10),
            ..params.clone()
        };
        let start = Instant::now();
        for (q, t) in queries.iter().zip(truth) {
            let s = Instant::now();
            let mut stream = reader.stream(VectorRef::Floats(q), &params).unwrap();
            let mut found: Vec<u32> = Vec::with_capacity(params.ef_search);
            while found.len() < 10 {
                let batch = stream.next_batch().unwrap();
                if batch.is_empty() {
                    break;
                }
                found.extend(batch.iter().map(|n| n.id));
            }
            found.truncate(10);
            scored += stream.distances();
            advised += stream.advised() as usize;
            latencies.push(s.elapsed().as_secs_f64());
            rows += found.len();
            total_recall += recall(&found, t, |id| {
                reference_distance(metric, q, &data[id as usize])
            });
        }
        let elapsed = start.elapsed().as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        QueryRun {
            recall: total_recall / queries.len() as f64,
            qps: queries.len() as f64 / elapsed,
            p99_ms: latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)] * 1e3,
            rows: rows as f64 / queries.len() as f64,
            scored: scored as f64 / queries.len() as f64,
            advised: advised as f64 / queries.len() as f64,
        }
    };
    (0..repeat.max(1))
        .map(|_| pass())
        .max_by(|a, b| a.qps.total_cmp(&b.qps))
        .expect("at least one pass")
}

fn ground_truth(
    metric: Metric,
    data: &[Vec<f32>],
    live: &RoaringBitmap,
    queries: &[Vec<f32>],
    filter: Option<&RoaringBitmap>,
) -> Vec<Vec<(u32, f64)>> {
    use rayon::prelude::*;
    queries
        .par_iter()
        .map(|q| {
            let allowed = live
                .iter()
                .filter(|id| filter.is_none_or(|f| f.contains(*id)));
            exact(
                allowed.map(|id| (id, reference_distance(metric, q, &data[id as usize]))),
                10,
            )
        })
        .collect()
}

fn main() {
    let args = parse();
    println!(
        "machine: {} threads available, kernels: {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel_name()
    );
    for &(n, dims) in &args.sizes {
        bench_one(&args, n, dims);
    }
}

fn bench_one(args: &Args, n: usize, dims: usize) {
    let metric = args.metric;
    let (label, generate): (&str, Generator) = match args.data {
        DataKind::Embeddings => ("embedding-like topics", embedding_like),
        DataKind::Hard => ("hard isotropic blobs with near duplicates", clustered),
        DataKind::Text => ("text-like (calibrated on the real set)", text_like),
        DataKind::Files => ("vectors of files", |_, _, _| {
            unreachable!("file rows are read, not generated")
        }),
    };
    println!(
        "\n### {n} x {dims} {label}, {metric}, m = 16, ef_construction = {}, {} queries, k = 10\n",
        args.ef_construction, args.queries
    );
    let t = Instant::now();
    let (data, queries) = if args.data == DataKind::Files {
        let base = read_npy::<f32>(&args.dir.join("base.npy"), n, dims);
        let mut queries = read_npy::<f32>(&args.dir.join("queries.npy"), args.queries, dims);
        queries.truncate(args.queries);
        (base, queries)
    } else if args.data == DataKind::Text {
        // Held-out draws of the same model, as the real set's queries are held-out rows.
        (generate(n, dims, 11), generate(args.queries, dims, 12))
    } else {
        let data = generate(n, dims, 11);
        let queries = queries(&data, args.queries, 12);
        (data, queries)
    };
    eprintln!("generated data in {:.1}s", t.elapsed().as_secs_f64());
    if let Some(dir) = &args.save {
        let dir = dir.join(format!("{n}x{dims}"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        write_npy(&dir.join("base.npy"), &data);
        write_npy(&dir.join("queries.npy"), &queries);
        println!(
            "wrote {} rows and {} queries to {}",
            data.len(),
            queries.len(),
            dir.display()
        );
        return;
    }
    let mut rows: Vec<(String, String)> = Vec::new();
    let (_dir, mut index) = build(args, &data, dims, &mut rows);
    let live: RoaringBitmap = (0..data.len() as u32).collect();
    let built = Built {
        args,
        index: &index,
        data: &data,
        queries: &queries,
        live: &live,
    };
    // Warm sweeps start from the file read into the page cache (the build's writes need not
    // have stayed there); the cold step measures the other case.
    page_cache::read_all(&index.path().join("data.mdb"));
    sweep(built, &mut rows);
    if args.filters {
        filtered(built, &mut rows);
    }
    if args.cold > 0 {
        index = cold(args, index, &data, &queries, &live, &mut rows);
    }
    let built = Built {
        args,
        index: &index,
        data: &data,
        queries: &queries,
        live: &live,
    };
    if !args.quick {
        // New rows for the writes: generated, or the file's rows after the first n.
        let (one_percent, merged) = if args.data == DataKind::Files {
            let mut after =
                read_npy::<f32>(&args.dir.join("base.npy"), n + n / 100 + MERGED_ROWS, dims)
                    .split_off(n);
            let merged = after.split_off((n / 100).min(after.len()));
            (after, merged)
        } else {
            (generate(n / 100, dims, 13), generate(MERGED_ROWS, dims, 14))
        };
        writes(built, one_percent, merged, &mut rows);
    }
    println!("| measure | result |\n|---|---|");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
}

type Rows = Vec<(String, String)>;

/// The walks a sweep measures, with their names: with codes, the same graph walked on the codes
/// and on the full vectors; without, the one walk, unnamed.
fn walks(args: &Args) -> &'static [(bool, &'static str)] {
    if args.bits > 0 {
        &[(true, "codes"), (false, "vectors")]
    } else {
        &[(false, "")]
    }
}

/// A graph walk at `ef`, on codes or not.
fn walk_params(args: &Args, ef: usize, codes: bool) -> SearchParams<'static> {
    SearchParams {
        ef_search: ef,
        strategy: Strategy::Graph,
        codes,
        rerank: args.rerank,
        ..Default::default()
    }
}

/// Queries from a cold start, each walk kind in turn: before each query the index is closed (so
/// no mapping holds its pages) and its data file dropped from the page cache, so every page the
/// query needs comes from disk; after it, `mincore` counts the file's pages in memory: the
/// pages the query touched (with the B-tree's root and branch pages on the way). Returns the
/// index open again.
fn cold(
    args: &Args,
    mut index: Index,
    data: &[Vec<f32>],
    queries: &[Vec<f32>],
    live: &RoaringBitmap,
    rows: &mut Rows,
) -> Index {
    let path = index.path().to_path_buf();
    let file = path.join("data.mdb");
    let queries = &queries[..args.cold.min(queries.len())];
    let truth = ground_truth(args.metric, data, live, queries, None);
    for &ef in &args.efs {
        for &(codes, walk) in walks(args) {
            let params = walk_params(args, ef, codes);
            let walk = if walk.is_empty() { "vectors" } else { walk };
            let (mut latencies, mut pages, mut total_recall) = (Vec::new(), 0usize, 0.0);
            for (q, t) in queries.iter().zip(&truth) {
                drop(index);
                page_cache::evict(&file);
                let start = Instant::now();
                index = Index::open(&path).unwrap();
                let found = index
                    .read()
                    .unwrap()
                    .search(VectorRef::Floats(q), 10, &params)
                    .unwrap();
                latencies.push(start.elapsed().as_secs_f64());
                pages += page_cache::resident(&file);
                let ids: Vec<u32> = found.iter().map(|n| n.id).collect();
                total_recall += recall(&ids, t, |id| {
                    reference_distance(args.metric, q, &data[id as usize])
                });
            }
            latencies.sort_by(f64::total_cmp);
            let at = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
            rows.push((
                format!("cold, ef_search {ef}, {walk}"),
                format!(
                    "recall@10 {:.3}, p50 {:.2} ms, p99 {:.2} ms, {:.0} pages touched per query ({} queries)",
                    total_recall / queries.len() as f64,
                    at(50) * 1e3,
                    at(99) * 1e3,
                    pages as f64 / queries.len() as f64,
                    queries.len()
                ),
            ));
        }
    }
    index
}

/// Says how many walks asked for pages ahead (none should, with every page in memory).
fn advised_note(share: f64) -> String {
    if share > 0.0 {
        format!(", {:.1}% of walks asked for pages ahead", share * 100.0)
    } else {
        String::new()
    }
}

/// What the measuring steps share: the built index, its rows (all live) and the queries.
#[derive(Clone, Copy)]
struct Built<'a> {
    args: &'a Args,
    index: &'a Index,
    data: &'a [Vec<f32>],
    queries: &'a [Vec<f32>],
    live: &'a RoaringBitmap,
}

/// Builds the index at each thread count and keeps the last one, with its disk figures.
fn build(
    args: &Args,
    data: &[Vec<f32>],
    dims: usize,
    rows: &mut Rows,
) -> (tempfile::TempDir, Index) {
    let (metric, n) = (args.metric, data.len());
    let mut kept = None;
    for &threads in &args.threads {
        let dir = tempfile::tempdir().unwrap();
        let options = IndexOptions {
            ef_construction: args.ef_construction,
            quantization: Quantization::from_bits(args.bits),
            neighbour_codes: args.neighbour_codes,
            ..IndexOptions::new(metric, dims)
        };
        let index = Index::create(dir.path(), &options).unwrap();
        let per_batch = if args.batch == 0 { n } else { args.batch };
        let t = Instant::now();
        for part in data.chunks(per_batch) {
            let batch = index
                .prepare(part.iter().map(|v| VectorRef::Floats(v)))
                .unwrap();
            index.reserve(batch.len()).unwrap();
            pool(threads).install(|| index.write(|w| w.insert(&batch, &never_cancel)).unwrap());
        }
        let secs = t.elapsed().as_secs_f64();
        rows.push((
            format!("build, {threads} thread(s)"),
            format!("{secs:.2} s ({:.0} vectors/s)", n as f64 / secs),
        ));
        eprintln!("built with {threads} threads in {secs:.1}s");
        kept = Some((dir, index));
    }
    let (dir, index) = kept.expect("at least one thread count");
    let info = index.info().unwrap();
    rows.push((
        "disk per vector".into(),
        format!(
            "{:.0} bytes file, {:.0} bytes used (raw vector {} bytes; vectors {:.0}, links {:.0}, codes {:.0}, lists with codes {:.0})",
            info.file_bytes as f64 / n as f64,
            info.used_bytes as f64 / n as f64,
            metric.vector_bytes(dims),
            info.pages.vector_pages as f64 * 4096.0 / n as f64,
            info.pages.link_pages as f64 * 4096.0 / n as f64,
            info.pages.code_pages as f64 * 4096.0 / n as f64,
            info.pages.coded_list_pages as f64 * 4096.0 / n as f64
        ),
    ));
    (dir, index)
}

/// Recall, q/s and distances at each ef_search.
fn sweep(built: Built<'_>, rows: &mut Rows) {
    let Built {
        args,
        index,
        data,
        queries,
        live,
    } = built;
    let metric = args.metric;
    let truth = ground_truth(metric, data, live, queries, None);
    for &ef in &args.efs {
        for &(codes, walk) in walks(args) {
            let params = walk_params(args, ef, codes);
            let walk = if walk.is_empty() {
                String::new()
            } else {
                format!(", {walk}")
            };
            let r = run_queries(args.repeat, index, metric, data, queries, &truth, &params);
            rows.push((
                format!("ef_search {ef}{walk}"),
                format!(
                    "recall@10 {:.3}, {:.0} q/s, p99 {:.2} ms, {:.0} distances{}",
                    r.recall,
                    r.qps,
                    r.p99_ms,
                    r.scored,
                    advised_note(r.advised)
                ),
            ));
        }
    }
}

/// Filters keeping 50% to 0.1% of the items: an exact scan once, then at each ef_search the
/// strategy the cost model picks ("auto", named in the row), so the table shows whether the
/// pick was right and what a filtered walk costs beside the unfiltered one.
fn filtered(built: Built<'_>, rows: &mut Rows) {
    let Built {
        args,
        index,
        data,
        queries,
        live,
    } = built;
    let (metric, n) = (args.metric, data.len());
    for &(label, fraction) in &[
        ("50%", 0.5),
        ("30%", 0.3),
        ("20%", 0.2),
        ("10%", 0.1),
        ("5%", 0.05),
        ("1%", 0.01),
        ("0.1%", 0.001),
    ] {
        let mut rng = Rng::new(99);
        let filter: RoaringBitmap = (0..n as u32).filter(|_| rng.unit() < fraction).collect();
        let truth = ground_truth(metric, data, live, queries, Some(&filter));
        let auto = SearchParams {
            filter: Some(&filter),
            ..Default::default()
        };
        let exact = SearchParams {
            strategy: Strategy::Exact,
            ..auto.clone()
        };
        let r = run_queries(args.repeat, index, metric, data, queries, &truth, &exact);
        rows.push((
            format!("filter {label} ({} items), exact", filter.len()),
            format!(
                "recall@10 {:.3}, {:.1} rows, {:.0} q/s, p99 {:.2} ms",
                r.recall, r.rows, r.qps, r.p99_ms
            ),
        ));
        for &ef in &args.efs {
            let params = SearchParams {
                ef_search: ef,
                ..auto.clone()
            };
            let method = index
                .read()
                .unwrap()
                .stream(VectorRef::Floats(&queries[0]), &params)
                .unwrap()
                .method();
            let r = run_queries(args.repeat, index, metric, data, queries, &truth, &params);
            rows.push((
                format!("filter {label}, ef_search {ef}, auto: {method}"),
                format!(
                    "recall@10 {:.3}, {:.1} rows, {:.0} q/s, p99 {:.2} ms, {:.0} distances",
                    r.recall, r.rows, r.qps, r.p99_ms, r.scored
                ),
            ));
        }
    }
}

/// Rows of the batch insert that mirrors an `INSERT ... SELECT` through the access method.
const MERGED_ROWS: usize = 10_000;
/// Rows the access method's pending list (1MB) holds at 384 dimensions: it is merged this often.
const MERGE_ROWS: usize = 650;

/// Time spent in each pass of the writes it watches, the last pass of a write ending when the
/// caller calls `stop` (so it includes the commit).
#[derive(Default)]
struct PassClock(std::sync::Mutex<PassTimes>);

#[derive(Default)]
struct PassTimes {
    running: Option<(Pass, Instant)>,
    spent: Vec<(Pass, f64)>,
}

impl PassClock {
    fn stop(&self) {
        let mut times = self.0.lock().unwrap();
        if let Some((pass, since)) = times.running.take() {
            let seconds = since.elapsed().as_secs_f64();
            match times.spent.iter_mut().find(|(p, _)| *p == pass) {
                Some((_, total)) => *total += seconds,
                None => times.spent.push((pass, seconds)),
            }
        }
    }

    fn report(&self) -> String {
        let times = self.0.lock().unwrap();
        let parts: Vec<String> = times
            .spent
            .iter()
            .map(|(pass, seconds)| format!("{pass:?} {seconds:.2} s"))
            .collect();
        parts.join(", ")
    }
}

impl Watch for PassClock {
    fn cancelled(&self) -> bool {
        false
    }

    fn pass(&self, pass: Pass, _items: usize) {
        self.stop();
        self.0.lock().unwrap().running = Some((pass, Instant::now()));
    }
}

/// Inserts 1% more in one batch and `merged` in batches of `MERGE_ROWS`, then deletes 10% and
/// repairs: time, recall after and integrity.
fn writes(built: Built<'_>, one_percent: Vec<Vec<f32>>, merged: Vec<Vec<f32>>, rows: &mut Rows) {
    let Built {
        args,
        index,
        data,
        queries,
        ..
    } = built;
    let metric = args.metric;
    eprintln!("writes: inserting");
    let batch = index
        .prepare(one_percent.iter().map(|v| VectorRef::Floats(v)))
        .unwrap();
    let t = Instant::now();
    index.write(|w| w.insert(&batch, &never_cancel)).unwrap();
    rows.push((
        format!("insert {} (1%)", one_percent.len()),
        format!("{:.3} s", t.elapsed().as_secs_f64()),
    ));

    let t = Instant::now();
    let clock = PassClock::default();
    for part in merged.chunks(MERGE_ROWS) {
        let batch = index
            .prepare(part.iter().map(|v| VectorRef::Floats(v)))
            .unwrap();
        index.write(|w| w.insert(&batch, &clock)).unwrap();
        clock.stop();
    }
    let secs = t.elapsed().as_secs_f64();
    rows.push((
        format!("insert {} in batches of {MERGE_ROWS}", merged.len()),
        format!(
            "{secs:.3} s ({:.0} rows/s; {})",
            merged.len() as f64 / secs,
            clock.report()
        ),
    ));

    let mut all = data.to_vec();
    all.extend(one_percent);
    all.extend(merged);
    let mut rng = Rng::new(7);
    let doomed: RoaringBitmap = (0..all.len() as u32).filter(|_| rng.unit() < 0.1).collect();
    let t = Instant::now();
    let stats = index.write(|w| w.delete(&doomed, &never_cancel)).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let live: RoaringBitmap = index.read().unwrap().items().clone();
    let truth = ground_truth(metric, &all, &live, queries, None);
    let params = SearchParams {
        strategy: Strategy::Graph,
        ..Default::default()
    };
    let r = run_queries(args.repeat, index, metric, &all, queries, &truth, &params);
    rows.push((
        format!("delete {} (10%) and repair", stats.deleted),
        format!(
            "{secs:.3} s, {} lists repaired, recall@10 after {:.3} (ef 40)",
            stats.repaired_lists, r.recall
        ),
    ));
    let report = index.read().unwrap().check().unwrap();
    rows.push((
        "integrity after all".into(),
        format!(
            "{} of {} reachable, sound: {}",
            report.reachable,
            report.live,
            report.is_sound()
        ),
    ));
}
