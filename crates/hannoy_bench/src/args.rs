//! Command-line flags, parsed by hand: the binary has few and wants no parser dependency.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::BenchError;

pub const USAGE: &str = "\
hannoy-bench: hannoy_pg against an exact scan and pgvector's HNSW, in one run

USAGE:
    hannoy-bench [FLAGS]                    run a workload (connection from PGHOST, PGPORT,
                                            PGUSER, PGDATABASE, PGPASSWORD)
    hannoy-bench --check-results DIR [--min-recall ENGINE=RECALL,...]
                                            check a results folder (files present, recalls in
                                            [0, 1], each named engine's recall@k at its largest
                                            ef_search at least its floor when it was measured)

DATA (synthetic by default: normalised vectors around Gaussian centres):
    --rows N               rows in the table (default 100000; with --base: take the first N)
    --dims D               dimensions of synthetic vectors (default 384)
    --clusters C           Gaussian centres of synthetic vectors (default 100)
    --queries Q            queries (default 1000; with --query-file: take the first Q)
    --seed S               seed of the synthetic data and the category column (default 42)
    --base FILE            the user's base vectors, .fvecs or .npy (2-D little-endian f32)
    --query-file FILE      the user's queries, .fvecs or .npy (required with --base)
    --truth FILE           nearest neighbours of the queries, .ivecs or .npy (i32), ids being
                           0-based positions in the base file; computed exactly when absent

INDEX AND QUERIES:
    --metric cosine|l2     distance (default cosine)
    --m M                  HNSW links per node (default 16), both engines
    --ef-construction E    HNSW build beam (default 64), both engines
    --ef LIST              ef_search sweep (default 20,40,80,160)
    --k K                  rows per query for recall@K and latency (default 10); recall@100
                           is also measured, with LIMIT 100
    --connections LIST     connections for the throughput runs (default 1,4)
    --seconds S            seconds per throughput run (default 5)
    --selectivities LIST   filter selectivities in percent (default 10,1,0.1; 'none' for no
                           filtered runs); resolution 0.01%
    --engines LIST         hannoy,pgvector (default both; pgvector is skipped with a message
                           when CREATE EXTENSION vector fails)

OUTPUT:
    --name NAME            workload name (default synthetic-<rows>x<dims>-<metric> or the base
                           file's name)
    --out DIR              results folder (default results/<name>-<UTC timestamp>): results.md,
                           results.json, recall_qps.svg
    -h, --help             this text
";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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
    pub m: u32,
    pub ef_construction: u32,
    pub ef_search: Vec<u32>,
    pub k: usize,
    pub connections: Vec<usize>,
    pub seconds: f64,
    pub selectivities_percent: Vec<f64>,
    pub engines: Vec<EngineName>,
    #[serde(skip)]
    pub out: Option<PathBuf>,
    /// The seed of the category column and the perturbed rows, also with user data.
    pub seed: u64,
}

pub enum Command {
    Help,
    /// Check a results folder; each floor is an engine's least recall@k at its largest
    /// ef_search.
    CheckResults {
        dir: PathBuf,
        floors: Vec<(String, f64)>,
    },
    Run(Box<Settings>),
}

/// `hannoy=0.95,pgvector=0.9`.
fn parse_floors(text: &str) -> Result<Vec<(String, f64)>, BenchError> {
    text.split(',')
        .map(|pair| {
            let (engine, floor) = pair
                .split_once('=')
                .ok_or_else(|| invalid(format!("--min-recall: '{pair}' is not ENGINE=RECALL")))?;
            match floor.parse::<f64>() {
                Ok(floor) if (0.0..=1.0).contains(&floor) => Ok((engine.to_string(), floor)),
                _ => Err(invalid(format!(
                    "--min-recall: '{floor}' is not a recall in [0, 1]"
                ))),
            }
        })
        .collect()
}

fn invalid(message: impl Into<String>) -> BenchError {
    BenchError::Usage(message.into())
}

fn parse_number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, BenchError> {
    text.trim()
        .parse()
        .map_err(|_| invalid(format!("{flag}: '{text}' is not a valid number")))
}

fn parse_list<T: std::str::FromStr>(flag: &str, text: &str) -> Result<Vec<T>, BenchError> {
    let values = text
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| parse_number(flag, part))
        .collect::<Result<Vec<T>, _>>()?;
    if values.is_empty() {
        return Err(invalid(format!("{flag}: an empty list")));
    }
    Ok(values)
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, BenchError> {
    let mut rows = None;
    let mut dims = 384usize;
    let mut dims_given = false;
    let mut clusters = 100usize;
    let mut queries = None;
    let mut seed = 42u64;
    let mut base = None;
    let mut query_file = None;
    let mut truth = None;
    let mut metric = Metric::Cosine;
    let mut m = 16u32;
    let mut ef_construction = 64u32;
    let mut ef_search = vec![20, 40, 80, 160];
    let mut k = 10usize;
    let mut connections = vec![1, 4];
    let mut seconds = 5.0f64;
    let mut selectivities = vec![10.0, 1.0, 0.1];
    let mut engines = vec![EngineName::Hannoy, EngineName::Pgvector];
    let mut out = None;
    let mut name = None;

    let mut position = 0;
    while position < args.len() {
        let flag = args[position].as_str();
        if flag == "-h" || flag == "--help" {
            return Ok(Command::Help);
        }
        // Every other flag takes a value, as the next argument or after '='.
        let (flag, value) = match flag.split_once('=') {
            Some((flag, value)) => (flag, value.to_string()),
            None => {
                position += 1;
                let value = args
                    .get(position)
                    .ok_or_else(|| invalid(format!("{flag} needs a value (see --help)")))?;
                (flag, value.clone())
            }
        };
        position += 1;
        match flag {
            "--check-results" => {
                let floors = match &args[position..] {
                    [] => Vec::new(),
                    [flag, floors] if flag == "--min-recall" => parse_floors(floors)?,
                    [flag] if flag.starts_with("--min-recall=") => {
                        parse_floors(&flag["--min-recall=".len()..])?
                    }
                    _ => {
                        return Err(invalid(
                            "--check-results DIR takes only --min-recall ENGINE=RECALL[,...]",
                        ))
                    }
                };
                return Ok(Command::CheckResults {
                    dir: PathBuf::from(value),
                    floors,
                });
            }
            "--rows" => rows = Some(parse_number(flag, &value)?),
            "--dims" => {
                dims = parse_number(flag, &value)?;
                dims_given = true;
            }
            "--clusters" => clusters = parse_number(flag, &value)?,
            "--queries" => queries = Some(parse_number(flag, &value)?),
            "--seed" => seed = parse_number(flag, &value)?,
            "--base" => base = Some(PathBuf::from(value)),
            "--query-file" => query_file = Some(PathBuf::from(value)),
            "--truth" => truth = Some(PathBuf::from(value)),
            "--metric" => {
                metric = match value.as_str() {
                    "cosine" => Metric::Cosine,
                    "l2" => Metric::L2,
                    other => return Err(invalid(format!("--metric: '{other}', not cosine or l2"))),
                }
            }
            "--m" => m = parse_number(flag, &value)?,
            "--ef-construction" => ef_construction = parse_number(flag, &value)?,
            "--ef" => ef_search = parse_list(flag, &value)?,
            "--k" => k = parse_number(flag, &value)?,
            "--connections" => connections = parse_list(flag, &value)?,
            "--seconds" => seconds = parse_number(flag, &value)?,
            "--selectivities" => {
                selectivities = if value.trim() == "none" {
                    Vec::new()
                } else {
                    parse_list(flag, &value)?
                }
            }
            "--engines" => {
                engines = value
                    .split(',')
                    .map(|engine| match engine.trim() {
                        "hannoy" => Ok(EngineName::Hannoy),
                        "pgvector" => Ok(EngineName::Pgvector),
                        other => Err(invalid(format!(
                            "--engines: '{other}', not hannoy or pgvector"
                        ))),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--out" => out = Some(PathBuf::from(value)),
            "--name" => name = Some(value),
            other => return Err(invalid(format!("unknown flag {other} (see --help)"))),
        }
    }

    let source = match (base, query_file) {
        (Some(base), Some(queries)) => {
            if dims_given {
                return Err(invalid("--dims: the dimensions come from --base"));
            }
            if truth.is_some() && rows.is_some() {
                return Err(invalid(
                    "--rows with --truth: the given neighbours refer to the whole base file",
                ));
            }
            DataSource::Files {
                base,
                queries,
                truth,
            }
        }
        (None, None) => {
            if truth.is_some() {
                return Err(invalid("--truth needs --base and --query-file"));
            }
            DataSource::Synthetic {
                dims,
                clusters,
                seed,
            }
        }
        _ => return Err(invalid("--base and --query-file go together")),
    };
    let rows = match source {
        DataSource::Synthetic { .. } => Some(rows.unwrap_or(100_000)),
        DataSource::Files { .. } => rows,
    };
    let queries = match source {
        DataSource::Synthetic { .. } => Some(queries.unwrap_or(1000)),
        DataSource::Files { .. } => queries,
    };

    if let DataSource::Synthetic { dims, clusters, .. } = source {
        if dims == 0 || clusters == 0 {
            return Err(invalid("--dims and --clusters must be at least 1"));
        }
    }
    if rows == Some(0) || queries == Some(0) {
        return Err(invalid("--rows and --queries must be at least 1"));
    }
    if k == 0 || k > 1000 {
        return Err(invalid("--k: from 1 to 1000"));
    }
    if ef_search.iter().any(|&ef| ef == 0 || ef > 1000) {
        return Err(invalid("--ef: each from 1 to 1000"));
    }
    if connections.contains(&0) {
        return Err(invalid("--connections: each at least 1"));
    }
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(invalid("--seconds: a positive number"));
    }
    if selectivities
        .iter()
        .any(|&percent| !(percent > 0.0 && percent <= 100.0))
    {
        return Err(invalid("--selectivities: each in (0, 100] percent"));
    }
    if engines.is_empty() {
        return Err(invalid("--engines: at least one"));
    }
    engines.dedup();

    let name = name.unwrap_or_else(|| default_name(&source, rows, metric));
    Ok(Command::Run(Box::new(Settings {
        name,
        source,
        rows,
        queries,
        metric,
        m,
        ef_construction,
        ef_search,
        k,
        connections,
        seconds,
        selectivities_percent: selectivities,
        engines,
        out,
        seed,
    })))
}

fn default_name(source: &DataSource, rows: Option<usize>, metric: Metric) -> String {
    match source {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn defaults_and_lists() {
        let Command::Run(settings) =
            parse(&strings(&["--ef", "10,40", "--selectivities=1"])).expect("valid flags")
        else {
            panic!("expected a run");
        };
        assert_eq!(settings.ef_search, vec![10, 40]);
        assert_eq!(settings.selectivities_percent, vec![1.0]);
        assert_eq!(settings.rows, Some(100_000));
        assert_eq!(settings.name, "synthetic-100000x384-cosine");
    }

    #[test]
    fn bad_flags_are_errors() {
        assert!(parse(&strings(&["--rows"])).is_err());
        assert!(parse(&strings(&["--rows", "many"])).is_err());
        assert!(parse(&strings(&["--metric", "dot"])).is_err());
        assert!(parse(&strings(&["--base", "a.fvecs"])).is_err());
        assert!(parse(&strings(&["--selectivities", "0"])).is_err());
        assert!(parse(&strings(&["--frobnicate", "1"])).is_err());
    }
}
