//! The results folder: results.md (tables), results.json (every figure and the settings) and
//! recall_qps.svg.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::args::{DataSource, Settings};
use crate::data::{Dataset, CATEGORY_VALUES};
use crate::measure::{Latency, Results, EXACT_QUERIES};
use crate::svg::{recall_qps_chart, ChartPoint, Series};
use crate::{BenchError, Context};

/// Year, month, day, hours, minutes, seconds (UTC) of a Unix time: the civil-from-days
/// algorithm, so no date crate is needed for a folder name.
fn utc_parts(unix_seconds: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (unix_seconds / 86_400) as i64;
    let seconds_of_day = unix_seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60,
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// `20261128-012417`, for folder names.
pub fn utc_stamp() -> String {
    let (year, month, day, hour, minute, second) = utc_parts(unix_now());
    format!("{year:04}{month:02}{day:02}-{hour:02}{minute:02}{second:02}")
}

/// `2026-11-28 01:24:17 UTC`.
pub fn utc_now_text() -> String {
    let (year, month, day, hour, minute, second) = utc_parts(unix_now());
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
}

#[derive(Serialize)]
struct DataSummary {
    rows: usize,
    dims: usize,
    queries: usize,
    inserted_rows: usize,
    category_values: i32,
}

#[derive(Serialize)]
struct ResultsFile<'a> {
    settings: &'a Settings,
    data: DataSummary,
    #[serde(flatten)]
    results: &'a Results,
}

pub fn write_all(
    out_dir: &Path,
    settings: &Settings,
    dataset: &Dataset,
    results: &Results,
) -> Result<(), BenchError> {
    let file = ResultsFile {
        settings,
        data: DataSummary {
            rows: dataset.base.len(),
            dims: dataset.base.dims,
            queries: dataset.queries.len(),
            inserted_rows: dataset.new_rows.len(),
            category_values: CATEGORY_VALUES,
        },
        results,
    };
    let json = serde_json::to_string_pretty(&file)
        .with_context(|| "serialising the results".to_string())?;
    let write = |name: &str, text: &str| {
        let path = out_dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write("results.json", &(json + "\n"))?;
    write("results.md", &markdown(settings, dataset, results))?;
    write("recall_qps.svg", &chart(settings, dataset, results)?)?;
    Ok(())
}

fn chart(settings: &Settings, dataset: &Dataset, results: &Results) -> Result<String, BenchError> {
    let series: Vec<Series> = results
        .engines
        .iter()
        .map(|engine| Series {
            name: engine.engine.to_string(),
            points: engine
                .sweep
                .iter()
                .map(|point| ChartPoint {
                    recall: point.recall_at_k,
                    qps: point.latency.qps,
                    label: format!("ef {}", point.ef_search),
                })
                .collect(),
        })
        .collect();
    let exact = results.exact.as_ref().map(|exact| ChartPoint {
        recall: exact.recall_at_k,
        qps: exact.latency.qps,
        label: "exact".to_string(),
    });
    let title = format!(
        "{}: {} × {}-d {}, {}, m {}, ef_construction {}",
        settings.name,
        dataset.base.len(),
        dataset.base.dims,
        settings.column_type,
        settings.metric,
        settings.m,
        settings.ef_construction
    );
    recall_qps_chart(&title, settings.k, &series, exact.as_ref())
}

fn megabytes(bytes: i64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn latency_cells(latency: &Latency) -> String {
    format!(
        "{:.3} | {:.3} | {:.3} | {:.0}",
        latency.mean_ms, latency.p50_ms, latency.p99_ms, latency.qps
    )
}

fn markdown(settings: &Settings, dataset: &Dataset, results: &Results) -> String {
    let mut md = String::new();
    write_intro(&mut md, settings, dataset, results);
    write_settings(&mut md, settings);
    write_builds(&mut md, results);
    write_sweeps(&mut md, settings, results);
    write_exact(&mut md, settings, dataset, results);
    write_cold(&mut md, settings, results);
    write_filtered(&mut md, settings, results);
    write_writes(&mut md, results);
    write_skipped(&mut md, results);
    write_method(&mut md, settings);
    md
}

/// The title, the data and the environment.
fn write_intro(md: &mut String, settings: &Settings, dataset: &Dataset, results: &Results) {
    let environment = &results.environment;
    let k = settings.k;
    let _ = writeln!(md, "# hannoy-bench: {}\n", settings.name);
    let data = match &settings.source {
        DataSource::Synthetic {
            clusters,
            seed,
            query_noise,
            ..
        } => format!(
            "synthetic: normalised vectors around {clusters} Gaussian centres (seed {seed}); \
             queries are data points moved by Gaussian noise of {query_noise} times their RMS \
             element"
        ),
        DataSource::Files {
            base,
            queries,
            truth,
        } => format!(
            "base {}, queries {}{}",
            base.display(),
            queries.display(),
            truth
                .as_ref()
                .map(|t| format!(", truth {}", t.display()))
                .unwrap_or_default()
        ),
    };
    let _ = writeln!(
        md,
        "{} rows × {}-d in {} columns, {} distance, {} queries, k = {k}. Data: {data}. Ground truth: {}.\n",
        dataset.base.len(),
        dataset.base.dims,
        settings.column_type,
        settings.metric,
        dataset.queries.len(),
        environment.truth
    );
    let _ = writeln!(
        md,
        "PostgreSQL {} (shared_buffers {}), hannoy_pg {}, pgvector {}; {}; client on {} CPU(s){}; started {}{}.\n",
        environment.server_version,
        environment.shared_buffers,
        environment.hannoy_pg_version.as_deref().unwrap_or("-"),
        environment
            .pgvector_version
            .as_deref()
            .unwrap_or("not measured"),
        environment.connection,
        environment.client_cpus,
        environment
            .cpu_model
            .as_ref()
            .map(|model| format!(" ({model})"))
            .unwrap_or_default(),
        environment.started_utc,
        environment
            .commit
            .as_ref()
            .map(|commit| format!(", commit {commit}"))
            .unwrap_or_default()
    );
}

fn write_settings(md: &mut String, settings: &Settings) {
    let _ = writeln!(md, "## Settings\n\n| setting | value |\n|---|---|");
    let list = |values: Vec<String>| values.join(", ");
    for (name, value) in [
        ("m", settings.m.to_string()),
        ("ef_construction", settings.ef_construction.to_string()),
        (
            "hannoy quantization",
            match settings.bits {
                None => "the index's default (auto)".to_string(),
                Some(0) => "none".to_string(),
                Some(bits) => format!(
                    "rabitq, {bits} bit(s) per coordinate, {}{}re-ranked from the {}",
                    if settings.keep_vectors {
                        ""
                    } else {
                        "no full vectors kept, "
                    },
                    if settings.neighbour_codes {
                        "lists stored with their neighbours' codes, "
                    } else {
                        ""
                    },
                    settings.rerank_from
                ),
            },
        ),
        (
            "ef_search sweep",
            list(settings.ef_search.iter().map(u32::to_string).collect()),
        ),
        (
            "connections",
            list(settings.connections.iter().map(usize::to_string).collect()),
        ),
        ("seconds per throughput run", settings.seconds.to_string()),
        (
            "filter selectivities (%)",
            list(
                settings
                    .selectivities_percent
                    .iter()
                    .map(f64::to_string)
                    .collect(),
            ),
        ),
        ("filtered ef_search", settings.filter_ef_search.to_string()),
        (
            "maintenance_work_mem (build)",
            settings.maintenance_work_mem.clone(),
        ),
    ] {
        let _ = writeln!(md, "| {name} | {value} |");
    }
}

fn write_builds(md: &mut String, results: &Results) {
    let _ = writeln!(
        md,
        "\n## Load, build, size\n\n| engine | COPY s | rows/s | CREATE INDEX s | index size | bytes/row | table size |\n|---|---|---|---|---|---|---|"
    );
    for engine in &results.engines {
        let _ = writeln!(
            md,
            "| {} | {:.2} | {:.0} | {:.2} | {} | {:.0} | {} |",
            engine.engine,
            engine.load_seconds,
            engine.rows as f64 / engine.load_seconds.max(1e-9),
            engine.build_seconds,
            megabytes(engine.index_bytes),
            engine.index_bytes as f64 / engine.rows.max(1) as f64,
            megabytes(engine.table_bytes)
        );
    }
}

/// One table per engine: recall, distances, latency and q/s at each ef_search.
fn write_sweeps(md: &mut String, settings: &Settings, results: &Results) {
    let k = settings.k;
    for engine in &results.engines {
        let _ = writeln!(md, "\n## {}: ef_search sweep\n", engine.engine);
        let _ = writeln!(md, "`{}`\n", engine.index_definition);
        let mut header = format!(
            "| ef_search | recall@{k} | recall@100 (rows returned) | distances per query | mean ms | p50 ms | p99 ms | q/s, 1 conn, every query |"
        );
        let mut rule = "|---|---|---|---|---|---|---|---|".to_string();
        for connections in &settings.connections {
            let _ = write!(header, " q/s, {connections} conn, {} s |", settings.seconds);
            rule.push_str("---|");
        }
        let _ = writeln!(md, "{header}\n{rule}");
        for point in &engine.sweep {
            let mut row = format!(
                "| {} | {:.3} | {} ({:.1}) | {} | {} |",
                point.ef_search,
                point.recall_at_k,
                point
                    .recall_at_100
                    .map_or("-".to_string(), |recall| format!("{recall:.3}")),
                point.rows_returned_at_100_mean,
                point
                    .distances_mean
                    .map_or("-".to_string(), |mean| format!("{mean:.0}")),
                latency_cells(&point.latency)
            );
            for throughput in &point.throughput {
                let _ = write!(row, " {:.0} |", throughput.qps);
            }
            let _ = writeln!(md, "{row}");
        }
    }
}

fn write_exact(md: &mut String, settings: &Settings, dataset: &Dataset, results: &Results) {
    let k = settings.k;
    if let Some(exact) = &results.exact {
        let _ = writeln!(
            md,
            "\n## Exact scan (reference)\n\nThe first {} queries on `{}` with `{}`: plan {}.\n\n| recall@{k} | mean ms | p50 ms | p99 ms | q/s |\n|---|---|---|---|---|\n| {:.3} | {} |",
            EXACT_QUERIES.min(dataset.queries.len()),
            exact.table,
            exact.settings,
            exact.plan,
            exact.recall_at_k,
            latency_cells(&exact.latency)
        );
    }
}

/// Cold queries: each engine's latency and pages read per ef_search.
fn write_cold(md: &mut String, settings: &Settings, results: &Results) {
    if results.engines.iter().all(|engine| engine.cold.is_empty()) {
        return;
    }
    let k = settings.k;
    let _ = writeln!(
        md,
        "\n## Cold queries (LIMIT {k}, shared_buffers {})\n\n\
         Before each query the index's and the table's files are dropped from the OS page cache \
         and a new session runs it; pages are the 4 kB pages of those files it brought back in. \
         pgvector's pages in shared buffers stay there: an index smaller than shared_buffers is \
         not read from disk at all.\n\n\
         | engine | ef_search | queries | recall@{k} | mean ms | p50 ms | p99 ms | index pages | table pages |\n\
         |---|---|---|---|---|---|---|---|---|",
        results.environment.shared_buffers
    );
    for engine in &results.engines {
        for point in &engine.cold {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.3} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} |",
                engine.engine,
                point.ef_search,
                point.latency.queries,
                point.recall_at_k,
                point.latency.mean_ms,
                point.latency.p50_ms,
                point.latency.p99_ms,
                point.index_pages_mean,
                point.table_pages_mean
            );
        }
    }
}

fn write_filtered(md: &mut String, settings: &Settings, results: &Results) {
    let k = settings.k;
    if results
        .engines
        .iter()
        .any(|engine| !engine.filtered.is_empty())
    {
        let _ = writeln!(
            md,
            "\n## Filtered search (ef_search {}, LIMIT {k})\n\n\
             | selectivity | condition | rows matching | engine | plan | recall@{k} | rows returned (min / mean) | mean ms | p50 ms | p99 ms | q/s |\n\
             |---|---|---|---|---|---|---|---|---|---|---|",
            settings.filter_ef_search
        );
        for percent in &settings.selectivities_percent {
            for engine in &results.engines {
                for point in engine
                    .filtered
                    .iter()
                    .filter(|point| point.selectivity_percent == *percent)
                {
                    let _ = writeln!(
                        md,
                        "| {percent}% | `{}` | {} | {}{} | {} | {:.3} | {} / {:.1} | {} |",
                        point.condition,
                        point.rows_matching,
                        engine.engine,
                        if point.index_forced {
                            ", index forced"
                        } else {
                            ""
                        },
                        point.plan,
                        point.recall_at_k,
                        point.rows_returned_min,
                        point.rows_returned_mean,
                        latency_cells(&point.latency)
                    );
                }
            }
        }
    }
}

fn write_writes(md: &mut String, results: &Results) {
    if results.engines.iter().all(|e| e.writes.is_none()) {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Writes\n\n| engine | INSERT ... SELECT rows | INSERT s | pending list linked s | rows/s (both) | DELETE rows | DELETE s | VACUUM s |\n|---|---|---|---|---|---|---|---|"
    );
    for engine in &results.engines {
        let Some(writes) = &engine.writes else {
            continue;
        };
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} | {} | {:.0} | {} | {:.2} | {:.2} |",
            engine.engine,
            writes.inserted_rows,
            writes.insert_seconds,
            writes
                .link_seconds
                .map_or("-".to_string(), |seconds| format!("{seconds:.2}")),
            writes.insert_rows_per_second,
            writes.deleted_rows,
            writes.delete_seconds,
            writes.vacuum_seconds
        );
    }
}

fn write_skipped(md: &mut String, results: &Results) {
    if !results.skipped.is_empty() {
        let _ = writeln!(md, "\n## Skipped\n");
        for skipped in &results.skipped {
            let _ = writeln!(md, "- {}: {}", skipped.engine, skipped.reason);
        }
    }
}

fn write_method(md: &mut String, settings: &Settings) {
    let k = settings.k;
    let _ = writeln!(
        md,
        "\n## How it was measured\n\n\
- Load: `COPY table (id, embedding, category) FROM STDIN` in text format into a table without \
  indexes, then `VACUUM ANALYZE` (not timed). Column types: with `--type real[]` hannoy stores \
  `real[]` and pgvector `vector(D)`; with `--type vector` or `halfvec` both store that type.\n\
- Build: `CREATE INDEX` with `maintenance_work_mem` as the settings say and the server's other defaults (hannoy \
  links with one thread per core; pgvector uses `max_parallel_maintenance_workers`). Size: hannoy's \
  `hannoy_index_info().size_bytes` (its LMDB folder), pgvector's `pg_relation_size`.\n\
- Queries: a prepared `SELECT id ... ORDER BY embedding <op> $1 LIMIT k`, the query vector sent as \
  a binary `float4[]` parameter (cast to the column's pgvector type where it has one). Per ef_search, a `LIMIT 100` pass \
  over every query first (recall@100, and it warms the caches), then the timed `LIMIT {k}` pass: \
  latency is client-side per query, q/s is queries ÷ the pass's wall time. pgvector without its \
  iterative scan returns at most ef_search rows, hence its rows returned at `LIMIT 100`. The \
  N-connection q/s: N threads of this client, each with its own session, for the given seconds; \
  the client shares the machine with the server.\n\
- Recall@k: the share of the k exact neighbours returned (out of min(k, rows matching)), a row as \
  near as the k-th neighbour counting as found (ties). Exact neighbours are computed in f64 over \
  every row unless given with --truth.\n\
- Filtered: `category` is uniform over 0..{CATEGORY_VALUES}, independent of the vectors, and \
  `category < t` keeps t/{CATEGORY_VALUES} of the rows. hannoy's index carries `category` as a \
  filter column; pgvector has no index on it and runs with `hnsw.iterative_scan = relaxed_order`. \
  The plan column is the planner's choice for the first query; where it is not the vector \
  index, the same queries run again with `enable_seqscan = off` (\"index forced\").\n\
- Writes, after the queries: one `INSERT ... SELECT` of `--insert-rows` new rows (10,000 by default, at most a tenth of the table; data rows moved by noise) \
  from an unindexed table into the indexed one. hannoy appends new rows to its pending list and \
  links them into the graph whenever the list outgrows `hannoy.pending_list_limit`; what is left \
  after the INSERT is linked by a `hannoy_index_info()` call timed right after it (\"pending list \
  linked\"), and rows/s counts both. Then `DELETE` of every tenth row and \
  `VACUUM (INDEX_CLEANUP ON)`.\n\
- Distances per query (hannoy only): a pass of its own over the first 200 queries at `LIMIT {k}`, \
  each followed by `hannoy_last_scan()`: the layer-0 walk from its seeds and the pending list's \
  rows, not the descent through the upper layers.\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(utc_parts(0), (1970, 1, 1, 0, 0, 0));
        // 2000-02-29 12:34:56 and 2026-11-28 01:24:17.
        assert_eq!(utc_parts(951_827_696), (2000, 2, 29, 12, 34, 56));
        assert_eq!(utc_parts(1_795_829_057), (2026, 11, 28, 1, 24, 17));
    }
}
