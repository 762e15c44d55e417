//! Queries from a cold cache (`--cold N`): before each, the files of the engine's index and of
//! its table are dropped from the OS page cache, and a session of its own runs it, so that no
//! backend still maps those pages (the kernel keeps a page some process maps). The pages each
//! query brings back in are counted with `mincore`.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use postgres::Client;
use serde::Serialize;

use crate::args::EngineName;
use crate::measure::{mean_recall, row_ids, Latency, Pass, RunContext};
use crate::pg::{self, EngineSql};
use crate::{BenchError, Context};

#[derive(Clone, Debug, Serialize)]
pub struct ColdPoint {
    pub ef_search: u32,
    pub recall_at_k: f64,
    /// Client-side time of each query alone: not the new session, nor its first planning.
    pub latency: Latency,
    /// 4 kB pages of the index's files each query brought into the page cache, on average.
    pub index_pages_mean: f64,
    /// The same for the table's files (heap and TOAST), which both engines fetch rows from.
    pub table_pages_mean: f64,
}

/// The files a cold query reads: the index's and the table's.
struct Files {
    index: Vec<PathBuf>,
    table: Vec<PathBuf>,
}

/// How long to wait for the sessions before a cold query to end (their backends map the
/// index, and a mapped page is not dropped).
const ALONE_WITHIN: Duration = Duration::from_secs(30);

pub fn cold_sweep(
    context: &RunContext,
    sql: &EngineSql,
    setup: &str,
) -> Result<Vec<ColdPoint>, BenchError> {
    let RunContext {
        settings,
        dataset,
        truths,
        progress,
        ..
    } = context;
    let count = settings.cold.min(dataset.queries.len());
    if count == 0 {
        return Ok(Vec::new());
    }
    let top_k = sql.nearest(settings.k);
    let files = {
        let mut client = pg::connect(&context.config)?;
        client
            .batch_execute(setup)
            .with_context(|| format!("session settings: {setup}"))?;
        files(&mut client, sql)?
    };
    let mut points = Vec::new();
    for &ef in &settings.ef_search {
        let session = format!("{setup} SET {} = {ef};", sql.ef_setting);
        let mut answers = Vec::with_capacity(count);
        let mut latencies_ms = Vec::with_capacity(count);
        let (mut index_pages, mut table_pages) = (0usize, 0usize);
        for index in 0..count {
            let query = dataset.queries.row(index);
            let mut client = pg::connect(&context.config)?;
            client
                .batch_execute(&session)
                .with_context(|| format!("session settings: {session}"))?;
            wait_alone(&mut client)?;
            let statement = client
                .prepare(&top_k)
                .with_context(|| format!("preparing {top_k}"))?;
            // Planned once untimed: a new session reads the catalogs, which are not the index.
            client
                .query(&format!("EXPLAIN {top_k}"), &[&query])
                .with_context(|| format!("EXPLAIN {top_k}"))?;
            for path in files.index.iter().chain(&files.table) {
                evict(path)?;
            }
            let index_before = resident_sum(&files.index)?;
            let table_before = resident_sum(&files.table)?;
            let sent = Instant::now();
            let rows = client
                .query(&statement, &[&query])
                .with_context(|| format!("cold query {index}: {top_k}"))?;
            latencies_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
            index_pages += resident_sum(&files.index)?.saturating_sub(index_before);
            table_pages += resident_sum(&files.table)?.saturating_sub(table_before);
            answers.push(row_ids(&rows, || {
                format!("reading the ids of cold query {index}")
            })?);
        }
        let seconds = latencies_ms.iter().sum::<f64>() / 1000.0;
        let pass = Pass {
            answers,
            latencies_ms,
            seconds,
        };
        let recall_at_k = mean_recall(
            &pass.answers,
            &truths.unfiltered,
            settings.k,
            &context.scorer,
            &dataset.queries,
        );
        let latency = pass.latency();
        let point = ColdPoint {
            ef_search: ef,
            recall_at_k,
            index_pages_mean: index_pages as f64 / count as f64,
            table_pages_mean: table_pages as f64 / count as f64,
            latency,
        };
        progress.say(format!(
            "{}: cold, ef_search {ef}: recall@{} {:.3}, p50 {:.2} ms, p99 {:.2} ms, pages {:.0} index + {:.0} table ({count} queries)",
            sql.engine,
            settings.k,
            point.recall_at_k,
            point.latency.p50_ms,
            point.latency.p99_ms,
            point.index_pages_mean,
            point.table_pages_mean
        ));
        points.push(point);
    }
    Ok(points)
}

/// The index's files (hannoy: its LMDB folder; pgvector: the relation's segments) and the
/// table's (heap and TOAST segments), as paths in the server's data directory.
fn files(client: &mut Client, sql: &EngineSql) -> Result<Files, BenchError> {
    let context = || "finding the files of the index and the table (--cold needs a superuser)";
    let data_directory: String = client
        .query_one("SELECT current_setting('data_directory')", &[])
        .and_then(|row| row.try_get(0))
        .with_context(|| context().to_string())?;
    let data_directory = PathBuf::from(data_directory);
    let relation_paths =
        |client: &mut Client, relations: &str, name: &str| -> Result<Vec<PathBuf>, BenchError> {
            let rows = client
                .query(relations, &[&name])
                .with_context(|| context().to_string())?;
            let mut paths = Vec::new();
            for row in rows {
                let relative: String = row.try_get(0).with_context(|| context().to_string())?;
                paths.extend(segments(&data_directory.join(relative)));
            }
            Ok(paths)
        };
    // The heap, its TOAST table and the TOAST table's index: a row's out-of-line vector is
    // found through that index.
    let table = relation_paths(
        client,
        "SELECT pg_relation_filepath(oid) FROM pg_class WHERE oid = $1::text::regclass \
         UNION ALL SELECT pg_relation_filepath(reltoastrelid) FROM pg_class \
         WHERE oid = $1::text::regclass AND reltoastrelid <> 0 \
         UNION ALL SELECT pg_relation_filepath(i.indexrelid) FROM pg_class c \
         JOIN pg_index i ON i.indrelid = c.reltoastrelid WHERE c.oid = $1::text::regclass",
        &sql.table,
    )?;
    let index = match sql.engine {
        EngineName::Pgvector => relation_paths(
            client,
            "SELECT pg_relation_filepath($1::text::regclass)",
            &sql.index,
        )?,
        EngineName::Hannoy => {
            let folder: String = client
                .query_one(
                    "SELECT storage FROM hannoy_index_info($1::text::regclass)",
                    &[&sql.index],
                )
                .and_then(|row| row.try_get(0))
                .with_context(|| context().to_string())?;
            let folder = data_directory.join(folder);
            let listing = || format!("reading the index folder {}", folder.display());
            let mut paths = Vec::new();
            for entry in std::fs::read_dir(&folder).with_context(listing)? {
                let path = entry.with_context(listing)?.path();
                if path.is_file() {
                    paths.push(path);
                }
            }
            paths
        }
    };
    Ok(Files { index, table })
}

/// A relation's main fork: its first segment and every further one that exists (`.1`, ...).
fn segments(first: &Path) -> Vec<PathBuf> {
    let mut paths = vec![first.to_path_buf()];
    for number in 1.. {
        let next = PathBuf::from(format!("{}.{number}", first.display()));
        if !next.exists() {
            break;
        }
        paths.push(next);
    }
    paths
}

/// Waits until this session is the only client session of the database, so that no backend
/// of an earlier query still maps the index.
fn wait_alone(client: &mut Client) -> Result<(), BenchError> {
    let started = Instant::now();
    loop {
        let others: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                &[],
            )
            .and_then(|row| row.try_get(0))
            .with_context(|| "counting the other sessions".to_string())?;
        if others == 0 {
            return Ok(());
        }
        if started.elapsed() > ALONE_WITHIN {
            return Err(BenchError::Data(format!(
                "--cold: {others} other session(s) of the database still run after {} s; \
                 cold queries need the server to themselves",
                ALONE_WITHIN.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn open(path: &Path) -> Result<std::fs::File, BenchError> {
    std::fs::File::open(path).with_context(|| {
        format!(
            "--cold reads the server's files: opening {} (run as the server's user or root)",
            path.display()
        )
    })
}

/// Drops the file's clean pages that no process maps from the page cache.
fn evict(path: &Path) -> Result<(), BenchError> {
    let file = open(path)?;
    // SAFETY: a valid descriptor for the call's duration; the advice only drops cached copies.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(BenchError::Io {
            context: format!("posix_fadvise(DONTNEED) on {}", path.display()),
            source: std::io::Error::from_raw_os_error(rc),
        });
    }
    Ok(())
}

/// How many 4 kB pages of the files are in the page cache.
fn resident_sum(paths: &[PathBuf]) -> Result<usize, BenchError> {
    paths.iter().map(|path| resident(path)).sum()
}

fn resident(path: &Path) -> Result<usize, BenchError> {
    let file = open(path)?;
    let len = file
        .metadata()
        .with_context(|| format!("the size of {}", path.display()))?
        .len() as usize;
    if len == 0 {
        return Ok(0);
    }
    let page = 4096;
    let mut pages = vec![0u8; len.div_ceil(page)];
    // SAFETY: a read-only shared mapping of a file held open, unmapped before returning;
    // mincore writes one byte per page of the mapping into `pages`, which has that many.
    let rc = unsafe {
        let address = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        if address == libc::MAP_FAILED {
            return Err(BenchError::Io {
                context: format!("mapping {}", path.display()),
                source: std::io::Error::last_os_error(),
            });
        }
        let rc = libc::mincore(address, len, pages.as_mut_ptr());
        libc::munmap(address, len);
        rc
    };
    if rc != 0 {
        return Err(BenchError::Io {
            context: format!("mincore on {}", path.display()),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(pages.iter().filter(|&&p| p & 1 == 1).count())
}
