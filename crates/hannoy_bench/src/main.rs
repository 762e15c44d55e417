//! hannoy-bench: one command that loads the same vectors into hannoy_pg and pgvector, builds
//! both indexes with the same m and ef_construction, and measures load, build, size, recall
//! against an exact answer, latency and throughput, filtered search and writes. See `--help`.

mod args;
mod check;
mod cold;
mod data;
mod measure;
mod pg;
mod report;
mod svg;
mod truth;

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Every failure the binary reports: which step failed and why, never a panic.
#[derive(Debug)]
pub enum BenchError {
    Data(String),
    Io {
        context: String,
        source: std::io::Error,
    },
    Postgres {
        context: String,
        source: postgres::Error,
    },
    Json {
        context: String,
        source: serde_json::Error,
    },
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Data(message) => write!(f, "{message}"),
            BenchError::Io { context, source } => write!(f, "{context}: {source}"),
            BenchError::Postgres { context, source } => {
                write!(f, "{context}: {source}")?;
                // "error connecting to server" alone does not say why: show the causes too.
                let mut cause = std::error::Error::source(source);
                while let Some(inner) = cause {
                    let text = inner.to_string();
                    if !source.to_string().contains(&text) {
                        write!(f, ": {text}")?;
                    }
                    cause = inner.source();
                }
                Ok(())
            }
            BenchError::Json { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for BenchError {}

/// Attaches what was being done to a library error.
pub trait Context<T> {
    fn with_context(self, context: impl FnOnce() -> String) -> Result<T, BenchError>;
}

impl<T> Context<T> for Result<T, std::io::Error> {
    fn with_context(self, context: impl FnOnce() -> String) -> Result<T, BenchError> {
        self.map_err(|source| BenchError::Io {
            context: context(),
            source,
        })
    }
}

impl<T> Context<T> for Result<T, postgres::Error> {
    fn with_context(self, context: impl FnOnce() -> String) -> Result<T, BenchError> {
        self.map_err(|source| BenchError::Postgres {
            context: context(),
            source,
        })
    }
}

impl<T> Context<T> for Result<T, serde_json::Error> {
    fn with_context(self, context: impl FnOnce() -> String) -> Result<T, BenchError> {
        self.map_err(|source| BenchError::Json {
            context: context(),
            source,
        })
    }
}

/// Progress lines on stderr, each stamped with the seconds since the run started.
pub struct Progress {
    started: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            started: Instant::now(),
        }
    }

    pub fn say(&self, message: impl AsRef<str>) {
        eprintln!(
            "[{:>7.1} s] {}",
            self.started.elapsed().as_secs_f64(),
            message.as_ref()
        );
    }
}

fn main() -> ExitCode {
    let outcome = match args::parse(std::env::args_os()) {
        Ok(args::Command::CheckResults { dir, floors }) => check::check_results(&dir, &floors),
        Ok(args::Command::Run(settings)) => run(*settings),
        // --help too: clap prints it to stdout, a usage error to stderr.
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hannoy-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(settings: args::Settings) -> Result<(), BenchError> {
    let progress = Progress::new();
    let out_dir = settings.out.clone().unwrap_or_else(|| {
        PathBuf::from("results").join(format!("{}-{}", settings.name, report::utc_stamp()))
    });
    // Made first, so a folder that cannot be written fails before the long steps.
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("creating the results folder {}", out_dir.display()))?;

    let dataset = data::load(&settings, &progress)?;
    // Connected first, so a server that is not there fails before the exact neighbours.
    let server = measure::open_server(&settings, &progress)?;
    let truths = truth::prepare(&settings, &dataset, &progress)?;
    let results = measure::run_all(&settings, &dataset, &truths, server, &progress)?;
    report::write_all(&out_dir, &settings, &dataset, &results)?;
    progress.say(format!(
        "done: {}, {}, {}",
        out_dir.join("results.md").display(),
        out_dir.join("results.json").display(),
        out_dir.join("recall_qps.svg").display()
    ));
    Ok(())
}
