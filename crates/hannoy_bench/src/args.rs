//! Command-line flags, declared for clap, which writes `--help` and reports unknown flags, flags
//! of the other mode, a flag without its partner and bad values.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, ValueEnum};
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(
    name = "hannoy-bench",
    about = "hannoy-bench: hannoy_pg against an exact scan and pgvector's HNSW, in one run",
    override_usage = "hannoy-bench [OPTIONS]\n       \
        hannoy-bench --check-results <DIR> [--min-recall <ENGINE=RECALL,...>]",
    after_help = "A run connects as libpq would, from PGHOST, PGPORT, PGUSER, PGDATABASE and \
        PGPASSWORD.",
    // A flag given twice takes its last value, as a script that appends to its own defaults expects.
    args_override_self = true,
    max_term_width = 100
)]
struct Flags {
    #[command(flatten)]
    data: DataFlags,
    #[command(flatten)]
    index: IndexFlags,
    #[command(flatten)]
    output: OutputFlags,
    #[command(flatten)]
    check: CheckFlags,
}

#[derive(Args, Debug)]
#[command(
    next_help_heading = "Data (synthetic by default: normalised vectors around Gaussian centres)"
)]
struct DataFlags {
    /// Rows in the table; with --base, the first N of the file [default: 100000, or every
    /// base vector with --base]
    #[arg(long, value_name = "N", value_parser = at_least_one, conflicts_with = "truth")]
    rows: Option<usize>,
    /// Dimensions of synthetic vectors (with --base they come from the file)
    #[arg(long, value_name = "D", default_value_t = 384, value_parser = at_least_one, conflicts_with = "base")]
    dims: usize,
    /// Gaussian centres of synthetic vectors
    #[arg(long, value_name = "C", default_value_t = 100, value_parser = at_least_one)]
    clusters: usize,
    /// Queries; with --query-file, the first Q of the file [default: 1000, or every query
    /// with --query-file]
    #[arg(long, value_name = "Q", value_parser = at_least_one)]
    queries: Option<usize>,
    /// Seed of the synthetic data and of the category column
    #[arg(long, value_name = "S", default_value_t = 42, value_parser = number::<u64>)]
    seed: u64,
    /// Gaussian noise that moves each synthetic query away from the data point it is drawn
    /// from, relative to the vector's RMS element: the larger, the less a query's neighbours
    /// stand out from the rest of its cluster
    #[arg(long, value_name = "R", default_value_t = crate::data::QUERY_NOISE, value_parser = non_negative, conflicts_with = "base")]
    query_noise: f64,
    /// The user's base vectors, .fvecs or .npy (2-D little-endian f32)
    #[arg(long, value_name = "FILE", requires = "query_file")]
    base: Option<PathBuf>,
    /// The user's queries, .fvecs or .npy (required with --base)
    #[arg(long, value_name = "FILE", requires = "base")]
    query_file: Option<PathBuf>,
    /// Nearest neighbours of the queries, .ivecs or .npy (i32), ids being 0-based positions in
    /// the whole base file (so not with --rows); computed exactly when absent
    #[arg(long, value_name = "FILE", requires = "base")]
    truth: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Index and queries")]
struct IndexFlags {
    /// Distance
    #[arg(long, value_enum, default_value_t = Metric::Cosine)]
    metric: Metric,
    /// Column type: real[] gives hannoy real[] and pgvector vector(D); vector and halfvec give
    /// both engines pgvector's type (hannoy through its companion extension hannoy_pg_vector)
    #[arg(long = "type", value_name = "TYPE", value_enum, default_value_t = ColumnType::RealArray)]
    column_type: ColumnType,
    /// HNSW links per node, both engines
    #[arg(long, value_name = "M", default_value_t = 16, value_parser = number::<u32>)]
    m: u32,
    /// HNSW build beam, both engines
    #[arg(long, value_name = "E", default_value_t = 64, value_parser = number::<u32>)]
    ef_construction: u32,
    /// ef_search sweep, each from 1 to 1000
    #[arg(long = "ef", value_name = "LIST", default_value = "20,40,80,160", value_parser = ef_list)]
    ef_search: std::vec::Vec<u32>,
    /// Rows per query for recall@K and latency, from 1 to 1000; recall@100 is also measured,
    /// with LIMIT 100
    #[arg(long, value_name = "K", default_value_t = 10, value_parser = k_rows)]
    k: usize,
    /// Connections for the throughput runs
    #[arg(long, value_name = "LIST", default_value = "1,4", value_parser = connection_list)]
    connections: std::vec::Vec<usize>,
    /// Seconds per throughput run
    #[arg(long, value_name = "S", default_value_t = 5.0, value_parser = positive_seconds)]
    seconds: f64,
    /// Rows of the timed `INSERT ... SELECT` after the queries, at most a tenth of the table
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = at_least_one)]
    insert_rows: usize,
    /// Skip the writes after the queries (the INSERT, DELETE and VACUUM): at a million rows
    /// pgvector's VACUUM alone takes longer than its build
    #[arg(long)]
    no_writes: bool,
    /// Filter selectivities in percent, each in (0, 100], resolution 0.01%; 'none' for no
    /// filtered runs
    #[arg(long, value_name = "LIST", default_value = "10,1,0.1", value_parser = selectivity_list)]
    selectivities: std::vec::Vec<f64>,
    /// ef_search of the filtered runs, both engines (pgvector's default; hannoy's is 100)
    #[arg(long, value_name = "EF", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=1000))]
    filter_ef: u32,
    /// Engines to measure; pgvector is skipped with a message when CREATE EXTENSION vector fails
    #[arg(long, value_name = "LIST", default_value = "hannoy,pgvector", value_parser = engine_list)]
    engines: std::vec::Vec<EngineName>,
    /// hannoy walks on RaBitQ codes of B bits per coordinate (`quantization = 'rabitq'`); 0 keeps
    /// none (`quantization = 'none'`); without it, the index's default (`auto`)
    #[arg(long, value_name = "B", value_parser = clap::value_parser!(u8).range(0..=8))]
    bits: Option<u8>,
    /// With codes, where hannoy re-ranks: the full vectors in the index, or the table's rows
    /// (`hannoy.rerank_from`: PostgreSQL re-checks lower bounds)
    #[arg(long, value_name = "FROM", default_value = "index")]
    rerank_from: RerankFrom,
    /// hannoy keeps no full vectors, only its codes (`keep_vectors = false`, 4 bits or more):
    /// PostgreSQL re-ranks from the table's rows whatever --rerank-from says
    #[arg(long)]
    no_vectors: bool,
    /// With codes, hannoy stores each link list with its neighbours' codes
    /// (`neighbour_codes = true`)
    #[arg(long)]
    neighbour_codes: bool,
    /// maintenance_work_mem of both builds, as PostgreSQL reads it (for example 1GB or 8GB):
    /// pgvector builds its graph in it, hannoy sizes its build batches by it
    #[arg(long, value_name = "SIZE", default_value = "1GB", value_parser = memory_setting)]
    maintenance_work_mem: String,
    /// Queries per ef_search from a cold cache, after the sweep: before each, the index's and
    /// the table's files are dropped from the OS page cache and a new session runs it, and the
    /// pages it brings back in are counted. Needs the server on this machine and read access
    /// to its data directory; scripts/bench then gives its server a shared_buffers of 16MB, so
    /// that pgvector's pages do not stay in shared buffers. 0 skips the step
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = number::<usize>)]
    cold: usize,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Output")]
struct OutputFlags {
    /// Workload name [default: synthetic-<rows>x<dims>-<metric> or the base file's name]
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Results folder: results.md, results.json, recall_qps.svg [default: results/<name>-<UTC
    /// timestamp>]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Checking a results folder instead of running")]
struct CheckFlags {
    /// Check a results folder: files present, recalls in [0, 1], each --min-recall floor met
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = ["DataFlags", "IndexFlags", "OutputFlags"]
    )]
    check_results: Option<PathBuf>,
    /// Least recall@k of each named engine at its largest ef_search, when it was measured
    #[arg(long, value_name = "ENGINE=RECALL,...", requires = "check_results", value_parser = floor_list)]
    min_recall: Option<std::vec::Vec<(String, f64)>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Cosine,
    L2,
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Metric::Cosine => "cosine",
            Metric::L2 => "l2",
        })
    }
}

/// Where hannoy's scans on codes find exact distances (`hannoy.rerank_from`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RerankFrom {
    Index,
    Table,
}

impl fmt::Display for RerankFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RerankFrom::Index => "index",
            RerankFrom::Table => "table",
        })
    }
}

/// The SQL type of the vector column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ValueEnum)]
pub enum ColumnType {
    #[serde(rename = "real[]")]
    #[value(name = "real[]")]
    RealArray,
    #[serde(rename = "vector")]
    Vector,
    #[serde(rename = "halfvec")]
    Halfvec,
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnType::RealArray => "real[]",
            ColumnType::Vector => "vector",
            ColumnType::Halfvec => "halfvec",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineName {
    Hannoy,
    Pgvector,
}

impl fmt::Display for EngineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EngineName::Hannoy => "hannoy",
            EngineName::Pgvector => "pgvector",
        })
    }
}

/// Where the vectors come from.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DataSource {
    Synthetic {
        dims: usize,
        clusters: usize,
        seed: u64,
        query_noise: f64,
    },
    Files {
        base: PathBuf,
        queries: PathBuf,
        truth: Option<PathBuf>,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub name: String,
    pub source: DataSource,
    /// With user files: None takes every base vector.
    pub rows: Option<usize>,
    pub queries: Option<usize>,
    pub metric: Metric,
    pub column_type: ColumnType,
    pub m: u32,
    pub ef_construction: u32,
    pub ef_search: Vec<u32>,
    pub k: usize,
    pub connections: Vec<usize>,
    pub seconds: f64,
    pub selectivities_percent: Vec<f64>,
    pub filter_ef_search: u32,
    /// Bits of hannoy's RaBitQ codes, 0 for none, `None` for the index's default.
    pub bits: Option<u8>,
    pub rerank_from: RerankFrom,
    /// Whether hannoy keeps its full vectors beside the codes.
    pub keep_vectors: bool,
    /// Whether hannoy stores each link list with its neighbours' codes.
    pub neighbour_codes: bool,
    /// Queries per ef_search measured from a cold cache, 0 for none.
    pub cold: usize,
    /// maintenance_work_mem of both builds.
    pub maintenance_work_mem: String,
    /// Rows of the timed batch insert, before the cap at a tenth of the table.
    pub insert_rows: usize,
    /// Whether the writes run after the queries.
    pub writes: bool,
    pub engines: Vec<EngineName>,
    #[serde(skip)]
    pub out: Option<PathBuf>,
    /// The seed of the category column and the perturbed rows, also with user data.
    pub seed: u64,
}

pub enum Command {
    /// Check a results folder; each floor is an engine's least recall@k at its largest
    /// ef_search.
    CheckResults {
        dir: PathBuf,
        floors: Vec<(String, f64)>,
    },
    Run(Box<Settings>),
}

fn number<T: FromStr>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| "not a valid number".to_string())
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match number(text)? {
        0 => Err("must be at least 1".to_string()),
        count => Ok(count),
    }
}

fn k_rows(text: &str) -> Result<usize, String> {
    match number(text)? {
        k @ 1..=1000 => Ok(k),
        _ => Err("from 1 to 1000".to_string()),
    }
}

fn non_negative(text: &str) -> Result<f64, String> {
    match number(text)? {
        value if value >= 0.0 && f64::is_finite(value) => Ok(value),
        _ => Err("a number of 0 or more".to_string()),
    }
}

/// A memory size as a setting takes it: digits and a unit of kB, MB, GB or TB (checked here,
/// so that the text goes into the SET statement safely).
fn memory_setting(text: &str) -> Result<String, String> {
    let text = text.trim();
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    match (&text[..digits], &text[digits..]) {
        (number, "kB" | "MB" | "GB" | "TB") if !number.is_empty() => Ok(text.to_string()),
        _ => Err("a size such as 1GB or 512MB (kB, MB, GB or TB)".to_string()),
    }
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    match number(text)? {
        seconds if seconds > 0.0 && f64::is_finite(seconds) => Ok(seconds),
        _ => Err("a positive number".to_string()),
    }
}

/// Comma-separated numbers, empty parts skipped, each passing `valid`.
fn list<T: FromStr + Copy>(
    text: &str,
    valid: impl Fn(T) -> bool,
    rule: &str,
) -> Result<Vec<T>, String> {
    let values = text
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(number)
        .collect::<Result<Vec<T>, _>>()?;
    if values.is_empty() {
        return Err("an empty list".to_string());
    }
    if !values.iter().all(|&value| valid(value)) {
        return Err(rule.to_string());
    }
    Ok(values)
}

fn ef_list(text: &str) -> Result<Vec<u32>, String> {
    list(text, |ef| (1..=1000).contains(&ef), "each from 1 to 1000")
}

fn connection_list(text: &str) -> Result<Vec<usize>, String> {
    list(text, |connections| connections >= 1, "each at least 1")
}

fn selectivity_list(text: &str) -> Result<Vec<f64>, String> {
    if text.trim() == "none" {
        return Ok(Vec::new());
    }
    list(
        text,
        |percent| percent > 0.0 && percent <= 100.0,
        "each in (0, 100] percent",
    )
}

fn engine_list(text: &str) -> Result<Vec<EngineName>, String> {
    let mut engines = text
        .split(',')
        .map(|engine| match engine.trim() {
            "hannoy" => Ok(EngineName::Hannoy),
            "pgvector" => Ok(EngineName::Pgvector),
            other => Err(format!("'{other}', not hannoy or pgvector")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    engines.dedup();
    Ok(engines)
}

/// `hannoy=0.95,pgvector=0.9`.
fn floor_list(text: &str) -> Result<Vec<(String, f64)>, String> {
    text.split(',')
        .map(|pair| {
            let (engine, floor) = pair
                .split_once('=')
                .ok_or_else(|| format!("'{pair}' is not ENGINE=RECALL"))?;
            match floor.parse::<f64>() {
                Ok(floor) if (0.0..=1.0).contains(&floor) => Ok((engine.to_string(), floor)),
                _ => Err(format!("'{floor}' is not a recall in [0, 1]")),
            }
        })
        .collect()
}

/// Parses the whole command line, program name first.
pub fn parse<I, T>(args: I) -> Result<Command, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Flags::try_parse_from(args).map(Flags::into_command)
}

impl Flags {
    fn into_command(self) -> Command {
        let Flags {
            data,
            index,
            output,
            check,
        } = self;
        if let Some(dir) = check.check_results {
            return Command::CheckResults {
                dir,
                floors: check.min_recall.unwrap_or_default(),
            };
        }
        // clap has seen to it that --base and --query-file come together.
        let source = match (data.base, data.query_file) {
            (Some(base), Some(queries)) => DataSource::Files {
                base,
                queries,
                truth: data.truth,
            },
            _ => DataSource::Synthetic {
                dims: data.dims,
                clusters: data.clusters,
                seed: data.seed,
                query_noise: data.query_noise,
            },
        };
        let (rows, queries) = match source {
            DataSource::Synthetic { .. } => (
                Some(data.rows.unwrap_or(100_000)),
                Some(data.queries.unwrap_or(1000)),
            ),
            DataSource::Files { .. } => (data.rows, data.queries),
        };
        let name = output
            .name
            .unwrap_or_else(|| default_name(&source, rows, index.metric, index.column_type));
        Command::Run(Box::new(Settings {
            name,
            source,
            rows,
            queries,
            metric: index.metric,
            column_type: index.column_type,
            m: index.m,
            ef_construction: index.ef_construction,
            ef_search: index.ef_search,
            k: index.k,
            connections: index.connections,
            seconds: index.seconds,
            selectivities_percent: index.selectivities,
            filter_ef_search: index.filter_ef,
            bits: index.bits,
            rerank_from: match index.no_vectors {
                true => RerankFrom::Table,
                false => index.rerank_from,
            },
            keep_vectors: !index.no_vectors,
            neighbour_codes: index.neighbour_codes,
            cold: index.cold,
            maintenance_work_mem: index.maintenance_work_mem,
            insert_rows: index.insert_rows,
            writes: !index.no_writes,
            engines: index.engines,
            out: output.out,
            seed: data.seed,
        }))
    }
}

fn default_name(
    source: &DataSource,
    rows: Option<usize>,
    metric: Metric,
    column_type: ColumnType,
) -> String {
    let name = match source {
        DataSource::Synthetic { dims, .. } => {
            format!("synthetic-{}x{dims}-{metric}", rows.unwrap_or(0))
        }
        DataSource::Files { base, .. } => {
            let stem = base
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_else(|| "user".to_string());
            match rows {
                Some(rows) => format!("{stem}-{rows}-{metric}"),
                None => format!("{stem}-{metric}"),
            }
        }
    };
    match column_type {
        ColumnType::RealArray => name,
        other => format!("{name}-{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_flags(args: &[&str]) -> Result<Command, clap::Error> {
        parse(std::iter::once("hannoy-bench").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_and_lists() {
        let Command::Run(settings) =
            parse_flags(&["--ef", "10,40", "--selectivities=1"]).expect("valid flags")
        else {
            panic!("expected a run");
        };
        assert_eq!(settings.ef_search, vec![10, 40]);
        assert_eq!(settings.selectivities_percent, vec![1.0]);
        assert_eq!(settings.rows, Some(100_000));
        assert_eq!(settings.name, "synthetic-100000x384-cosine");
        assert_eq!(settings.column_type, ColumnType::RealArray);
        assert_eq!(settings.cold, 0);
        assert_eq!(settings.maintenance_work_mem, "1GB");
        let Command::Run(settings) =
            parse_flags(&["--type", "halfvec", "--dims", "3072", "--cold", "50"])
                .expect("valid flags")
        else {
            panic!("expected a run");
        };
        assert_eq!(settings.column_type, ColumnType::Halfvec);
        assert_eq!(settings.name, "synthetic-100000x3072-cosine-halfvec");
        assert_eq!(settings.cold, 50);
        let Command::Run(settings) =
            parse_flags(&["--maintenance-work-mem", "8GB"]).expect("valid flags")
        else {
            panic!("expected a run");
        };
        assert_eq!(settings.maintenance_work_mem, "8GB");
    }

    #[test]
    fn bad_flags_are_errors() {
        assert!(parse_flags(&["--rows"]).is_err());
        assert!(parse_flags(&["--rows", "many"]).is_err());
        assert!(parse_flags(&["--metric", "dot"]).is_err());
        assert!(parse_flags(&["--type", "float8[]"]).is_err());
        assert!(parse_flags(&["--base", "a.fvecs"]).is_err());
        assert!(parse_flags(&["--selectivities", "0"]).is_err());
        assert!(parse_flags(&["--frobnicate", "1"]).is_err());
        assert!(parse_flags(&["--cold", "-1"]).is_err());
        for size in ["8", "GB", "1 GB", "1GB'; DROP", "1gb"] {
            assert!(
                parse_flags(&["--maintenance-work-mem", size]).is_err(),
                "{size}"
            );
        }
    }

    #[test]
    fn modes_sources_and_repeats() {
        let Command::CheckResults { dir, floors } = parse_flags(&[
            "--check-results",
            "out",
            "--min-recall",
            "hannoy=0.95,pgvector=0.80",
        ])
        .expect("valid flags") else {
            panic!("expected a check");
        };
        assert_eq!(dir, PathBuf::from("out"));
        assert_eq!(
            floors,
            [("hannoy".to_string(), 0.95), ("pgvector".to_string(), 0.80)]
        );
        assert!(parse_flags(&["--check-results", "out", "--rows", "5"]).is_err());
        assert!(parse_flags(&["--min-recall", "hannoy=0.9"]).is_err());
        assert!(parse_flags(&["--check-results", "out", "--min-recall", "hannoy=1.5"]).is_err());

        let Command::Run(settings) = parse_flags(&[
            "--base=docs.fvecs",
            "--query-file",
            "q.fvecs",
            "--rows",
            "5",
            "--rows",
            "7",
            "--engines",
            "pgvector,pgvector",
            "--selectivities",
            "none",
        ])
        .expect("valid flags") else {
            panic!("expected a run");
        };
        assert!(matches!(settings.source, DataSource::Files { .. }));
        assert_eq!((settings.rows, settings.queries), (Some(7), None));
        assert_eq!(settings.name, "docs-7-cosine");
        assert_eq!(settings.engines, [EngineName::Pgvector]);
        assert!(settings.selectivities_percent.is_empty());
        assert!(parse_flags(&["--base", "a", "--query-file", "q", "--dims", "8"]).is_err());
        assert!(parse_flags(&[
            "--base",
            "a",
            "--query-file",
            "q",
            "--truth",
            "t",
            "--rows",
            "5"
        ])
        .is_err());
        assert!(parse_flags(&["--truth", "t.ivecs"]).is_err());
    }

    #[test]
    fn help_is_generated() {
        use clap::CommandFactory;
        Flags::command().debug_assert();
        let help = parse_flags(&["--help"]).err().expect("help is not a run");
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
    }
}
