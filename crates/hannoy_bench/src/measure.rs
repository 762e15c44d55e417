//! The measurements of one run: per engine load, build, size, the ef_search sweep, filtered
//! queries and writes; and the exact scan as the reference.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use postgres::{Client, Config};
use serde::Serialize;

use crate::args::{EngineName, Settings};
use crate::cold::{cold_sweep, ColdPoint};
use crate::data::{Dataset, Matrix};
use crate::pg::{self, Database, EngineSql};
use crate::truth::{self, FilteredTruth, Scorer, Truths, DEEP_K};
use crate::{BenchError, Context, Progress};

/// The plan of a query answered by the engine's vector index.
pub const INDEX_SCAN: &str = "index scan";
/// Queries timed for the exact scan, which reads the whole table each time.
pub const EXACT_QUERIES: usize = 10;

#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub queries: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Queries per second of the pass: queries ÷ its wall time, one connection.
    pub qps: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Throughput {
    pub connections: usize,
    pub queries: u64,
    pub seconds: f64,
    pub qps: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SweepPoint {
    pub ef_search: u32,
    pub recall_at_k: f64,
    /// Absent when a user's ground truth is shallower than 100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recall_at_100: Option<f64>,
    /// Rows a `LIMIT 100` query returned, on average (pgvector stops at ef_search without
    /// its iterative scan).
    pub rows_returned_at_100_mean: f64,
    /// Distances one `LIMIT k` query computed, on average (hannoy only, from
    /// `hannoy_last_scan()`), over a pass of its own so that the timed pass runs nothing else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distances_mean: Option<f64>,
    pub latency: Latency,
    pub throughput: Vec<Throughput>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FilteredPoint {
    pub selectivity_percent: f64,
    pub condition: String,
    pub rows_matching: usize,
    /// What the planner chose for the first query.
    pub plan: String,
    /// Measured again with enable_seqscan off, because the planner chose another plan.
    pub index_forced: bool,
    pub ef_search: u32,
    pub recall_at_k: f64,
    pub rows_returned_min: usize,
    pub rows_returned_mean: f64,
    pub latency: Latency,
}

#[derive(Clone, Debug, Serialize)]
pub struct Writes {
    pub inserted_rows: u64,
    pub insert_seconds: f64,
    /// hannoy: linking what the INSERT left in the pending list, timed right after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_seconds: Option<f64>,
    /// Rows ÷ (insert + link) seconds: every row in the graph.
    pub insert_rows_per_second: f64,
    pub deleted_rows: u64,
    pub delete_seconds: f64,
    pub vacuum_seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct EngineResult {
    pub engine: EngineName,
    pub version: Option<String>,
    pub rows: usize,
    pub load_seconds: f64,
    pub build_seconds: f64,
    pub index_bytes: i64,
    pub table_bytes: i64,
    pub index_definition: String,
    pub sweep: Vec<SweepPoint>,
    pub filtered: Vec<FilteredPoint>,
    /// Queries from a cold cache (`--cold`), empty without.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cold: Vec<ColdPoint>,
    /// `None` under `--no-writes`.
    pub writes: Option<Writes>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExactResult {
    /// The table scanned (the first engine's) and how the plan was forced.
    pub table: String,
    pub settings: String,
    pub plan: String,
    pub recall_at_k: f64,
    pub latency: Latency,
}

#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub engine: EngineName,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Environment {
    pub connection: String,
    pub server_version: String,
    pub shared_buffers: String,
    pub hannoy_pg_version: Option<String>,
    pub pgvector_version: Option<String>,
    pub client_cpus: usize,
    pub cpu_model: Option<String>,
    /// Set by scripts/bench from git.
    pub commit: Option<String>,
    pub started_utc: String,
    pub truth: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Results {
    pub environment: Environment,
    pub engines: Vec<EngineResult>,
    pub exact: Option<ExactResult>,
    pub skipped: Vec<Skipped>,
}

/// One pass of every query through a prepared statement: the ids and each latency.
pub(crate) struct Pass {
    pub answers: Vec<Vec<i64>>,
    pub latencies_ms: Vec<f64>,
    pub seconds: f64,
}

impl Pass {
    pub fn latency(&self) -> Latency {
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let at = |quantile: f64| {
            sorted
                .get(((sorted.len().saturating_sub(1)) as f64 * quantile).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let count = sorted.len();
        Latency {
            queries: count,
            mean_ms: sorted.iter().sum::<f64>() / count.max(1) as f64,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            qps: if self.seconds > 0.0 {
                count as f64 / self.seconds
            } else {
                0.0
            },
        }
    }

    fn rows_returned(&self) -> (usize, f64) {
        let min = self.answers.iter().map(Vec::len).min().unwrap_or(0);
        let total: usize = self.answers.iter().map(Vec::len).sum();
        (min, total as f64 / self.answers.len().max(1) as f64)
    }
}

fn query_pass(
    client: &mut Client,
    statement_sql: &str,
    queries: &Matrix,
    count: usize,
) -> Result<Pass, BenchError> {
    let statement = client
        .prepare(statement_sql)
        .with_context(|| format!("preparing {statement_sql}"))?;
    let mut answers = Vec::with_capacity(count);
    let mut latencies_ms = Vec::with_capacity(count);
    let started = Instant::now();
    for index in 0..count.min(queries.len()) {
        let query = queries.row(index);
        let sent = Instant::now();
        let rows = client
            .query(&statement, &[&query])
            .with_context(|| format!("query {index}: {statement_sql}"))?;
        latencies_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
        answers.push(row_ids(&rows, || {
            format!("reading the ids of query {index}")
        })?);
    }
    Ok(Pass {
        answers,
        latencies_ms,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The ids a `SELECT id ...` query returned, in order.
pub(crate) fn row_ids(
    rows: &[postgres::Row],
    context: impl FnOnce() -> String,
) -> Result<Vec<i64>, BenchError> {
    rows.iter()
        .map(|row| row.try_get::<_, i64>(0))
        .collect::<Result<_, _>>()
        .with_context(context)
}

/// Queries whose distances are counted per ef_search.
const DISTANCE_QUERIES: usize = 200;

/// The mean distances a query of `statement_sql` computes, each read by `last_scan` right
/// after it, over the first `DISTANCE_QUERIES` queries.
fn distance_pass(
    client: &mut Client,
    statement_sql: &str,
    last_scan: &str,
    queries: &Matrix,
) -> Result<f64, BenchError> {
    let statement = client
        .prepare(statement_sql)
        .with_context(|| format!("preparing {statement_sql}"))?;
    let count = DISTANCE_QUERIES.min(queries.len());
    let mut total = 0i64;
    for index in 0..count {
        client
            .query(&statement, &[&queries.row(index)])
            .with_context(|| format!("query {index}: {statement_sql}"))?;
        let distances: i64 = client
            .query_one(last_scan, &[])
            .and_then(|row| row.try_get(0))
            .with_context(|| format!("{last_scan} after query {index}"))?;
        total += distances;
    }
    Ok(total as f64 / count.max(1) as f64)
}

pub(crate) fn mean_recall(
    answers: &[Vec<i64>],
    truth: &[Vec<u32>],
    k: usize,
    scorer: &Scorer,
    queries: &Matrix,
) -> f64 {
    let total: f64 = answers
        .iter()
        .zip(truth)
        .enumerate()
        .map(|(index, (answer, truth))| {
            let query = queries.row(index);
            let norm = scorer.query_norm(query);
            truth::recall(answer, truth, k, |row| {
                if row < scorer.rows() {
                    scorer.distance(query, norm, row)
                } else {
                    f64::INFINITY
                }
            })
        })
        .sum();
    total / answers.len().max(1) as f64
}

/// Queries per second with `connections` sessions for `seconds`, each on its own thread, each
/// cycling through the queries from its own starting point.
fn throughput(
    config: &Config,
    setup: &str,
    statement_sql: &str,
    queries: &Matrix,
    connections: usize,
    seconds: f64,
) -> Result<Throughput, BenchError> {
    // Every session is connected and prepared before the clock starts.
    let mut sessions = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut client = pg::connect(config)?;
        client
            .batch_execute(setup)
            .with_context(|| format!("session settings: {setup}"))?;
        let statement = client
            .prepare(statement_sql)
            .with_context(|| format!("preparing {statement_sql}"))?;
        // A new session loads the extension and opens the index on its first query: not a
        // cost of the queries measured.
        client
            .query(&statement, &[&queries.row(0)])
            .with_context(|| format!("first query of a new session: {statement_sql}"))?;
        sessions.push((client, statement));
    }
    let barrier = Barrier::new(connections);
    let duration = Duration::from_secs_f64(seconds);
    let outcomes: Vec<Result<(u64, f64), BenchError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .into_iter()
            .enumerate()
            .map(|(thread, (mut client, statement))| {
                let barrier = &barrier;
                scope.spawn(move || -> Result<(u64, f64), BenchError> {
                    let mut index = thread * queries.len() / connections;
                    barrier.wait();
                    let started = Instant::now();
                    let mut done = 0u64;
                    while started.elapsed() < duration {
                        client
                            .query(&statement, &[&queries.row(index)])
                            .with_context(|| format!("throughput query {index}"))?;
                        done += 1;
                        index = (index + 1) % queries.len();
                    }
                    Ok((done, started.elapsed().as_secs_f64()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    Err(BenchError::Data("a throughput thread panicked".to_string()))
                })
            })
            .collect()
    });
    let mut queries_done = 0;
    let mut longest = 0f64;
    for outcome in outcomes {
        let (done, elapsed) = outcome?;
        queries_done += done;
        longest = longest.max(elapsed);
    }
    Ok(Throughput {
        connections,
        queries: queries_done,
        seconds: longest,
        qps: if longest > 0.0 {
            queries_done as f64 / longest
        } else {
            0.0
        },
    })
}

/// What the planner does with the statement for the first query: "index scan" when it uses
/// `index`, else its first scan node.
fn plan_of(
    client: &mut Client,
    statement_sql: &str,
    index: &str,
    query: &[f32],
) -> Result<String, BenchError> {
    let explain = format!("EXPLAIN (COSTS OFF) {statement_sql}");
    let lines: Vec<String> = client
        .query(&explain, &[&query])
        .with_context(|| explain.clone())?
        .iter()
        .map(|row| row.try_get::<_, String>(0))
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {explain}"))?;
    if lines
        .iter()
        .any(|line| line.contains(&format!("Index Scan using {index} ")))
    {
        return Ok(INDEX_SCAN.to_string());
    }
    Ok(lines
        .iter()
        .find(|line| line.contains("Scan"))
        .map(|line| line.trim().trim_start_matches("->").trim().to_string())
        .unwrap_or_else(|| lines.join(" / ")))
}

pub(crate) struct RunContext<'a> {
    pub settings: &'a Settings,
    pub dataset: &'a Dataset,
    pub truths: &'a Truths,
    pub scorer: Scorer<'a>,
    pub config: Config,
    pub database: Database,
    pub progress: &'a Progress,
}

/// The server, connected to and prepared (schema, extensions) before the long steps.
pub struct Server {
    config: Config,
    database: Database,
    started_utc: String,
}

pub fn open_server(settings: &Settings, progress: &Progress) -> Result<Server, BenchError> {
    let config = pg::config_from_env();
    progress.say(format!("connecting: {}", pg::describe(&config)));
    let started_utc = crate::report::utc_now_text();
    let mut client = pg::connect(&config)?;
    let database = pg::prepare_database(
        &mut client,
        &settings.engines,
        settings.column_type,
        progress,
    )?;
    progress.say(format!(
        "PostgreSQL {}; hannoy_pg {}; pgvector {}",
        database.server_version,
        database.hannoy_version.as_deref().unwrap_or("-"),
        database.pgvector_version.as_deref().unwrap_or("-")
    ));
    Ok(Server {
        config,
        database,
        started_utc,
    })
}

pub fn run_all(
    settings: &Settings,
    dataset: &Dataset,
    truths: &Truths,
    server: Server,
    progress: &Progress,
) -> Result<Results, BenchError> {
    let Server {
        config,
        database,
        started_utc,
    } = server;
    let environment = Environment {
        connection: pg::describe(&config),
        server_version: database.server_version.clone(),
        shared_buffers: database.shared_buffers.clone(),
        hannoy_pg_version: database.hannoy_version.clone(),
        pgvector_version: database.pgvector_version.clone(),
        client_cpus: std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1),
        cpu_model: cpu_model(),
        commit: std::env::var("HANNOY_BENCH_COMMIT").ok(),
        started_utc,
        truth: if truths.given {
            "given (--truth)".to_string()
        } else {
            "exact, computed in f64 over every row".to_string()
        },
    };
    let skipped: Vec<Skipped> = database
        .skipped
        .iter()
        .map(|(engine, reason)| Skipped {
            engine: *engine,
            reason: reason.clone(),
        })
        .collect();
    let context = RunContext {
        settings,
        dataset,
        truths,
        scorer: Scorer::new(settings.metric, &dataset.base),
        config,
        database,
        progress,
    };

    let mut engines = Vec::new();
    let mut exact = None;
    for &engine in &settings.engines {
        if skipped.iter().any(|skip| skip.engine == engine) {
            continue;
        }
        let sql = EngineSql::new(engine, settings, dataset.base.dims, &context.database);
        let measure_exact = exact.is_none();
        let (result, exact_result) = run_engine(&context, &sql, measure_exact)?;
        engines.push(result);
        if exact_result.is_some() {
            exact = exact_result;
        }
    }
    Ok(Results {
        environment,
        engines,
        exact,
        skipped,
    })
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, model)| model.trim().to_string())
}

fn run_engine(
    context: &RunContext,
    sql: &EngineSql,
    measure_exact: bool,
) -> Result<(EngineResult, Option<ExactResult>), BenchError> {
    let RunContext {
        dataset, progress, ..
    } = context;
    let name = sql.engine;
    let setup = format!(
        "{} {}",
        pg::session_setup(&context.database),
        sql.session_settings
    );
    let mut client = pg::connect(&context.config)?;
    client
        .batch_execute(&setup)
        .with_context(|| format!("session settings: {setup}"))?;
    client
        .batch_execute(&format!("{}; {}", sql.create_table, sql.create_staging))
        .with_context(|| sql.create_table.clone())?;

    let rows = dataset.base.len();
    progress.say(format!("{name}: COPY {rows} rows into {}", sql.table));
    let load_seconds = pg::copy_rows(
        &mut client,
        sql,
        &sql.table,
        &dataset.base,
        &dataset.categories,
        0,
        progress,
    )?;
    progress.say(format!(
        "{name}: loaded in {load_seconds:.2} s; VACUUM ANALYZE (not timed)"
    ));
    pg::timed(&mut client, &format!("VACUUM ANALYZE {}", sql.table))?;

    progress.say(format!("{name}: {}", sql.create_index));
    let memory = format!(
        "SET maintenance_work_mem = '{}'",
        context.settings.maintenance_work_mem
    );
    client
        .batch_execute(&memory)
        .with_context(|| memory.clone())?;
    let build_seconds = pg::timed(&mut client, &sql.create_index)?;
    pg::timed(&mut client, &format!("ANALYZE {}", sql.table))?;
    let index_bytes: i64 = client
        .query_one(sql.index_size.as_str(), &[])
        .with_context(|| sql.index_size.clone())?
        .try_get(0)
        .with_context(|| sql.index_size.clone())?;
    let table_bytes: i64 = client
        .query_one("SELECT pg_relation_size($1::text::regclass)", &[&sql.table])
        .with_context(|| format!("the size of {}", sql.table))?
        .try_get(0)
        .with_context(|| format!("the size of {}", sql.table))?;
    progress.say(format!(
        "{name}: index built in {build_seconds:.2} s, {:.1} MB",
        index_bytes as f64 / 1e6
    ));

    let sweep = sweep(context, sql, &mut client, &setup)?;
    // Before the filtered queries and the writes, which change what the truth describes; this
    // session's backend maps the index, so it ends first and a new one carries on.
    let cold = if context.settings.cold > 0 {
        drop(client);
        let cold = cold_sweep(context, sql, &setup)?;
        client = pg::connect(&context.config)?;
        client
            .batch_execute(&setup)
            .with_context(|| format!("session settings: {setup}"))?;
        cold
    } else {
        Vec::new()
    };
    let filtered = filtered(context, sql, &mut client)?;
    let exact = if measure_exact {
        Some(exact_reference(context, sql, &mut client)?)
    } else {
        None
    };
    let writes = if context.settings.writes {
        Some(writes(context, sql, &mut client)?)
    } else {
        None
    };

    let version = match name {
        EngineName::Hannoy => context.database.hannoy_version.clone(),
        EngineName::Pgvector => context.database.pgvector_version.clone(),
    };
    Ok((
        EngineResult {
            engine: name,
            version,
            rows,
            load_seconds,
            build_seconds,
            index_bytes,
            table_bytes,
            index_definition: sql.create_index.clone(),
            sweep,
            filtered,
            cold,
            writes,
        },
        exact,
    ))
}

fn sweep(
    context: &RunContext,
    sql: &EngineSql,
    client: &mut Client,
    setup: &str,
) -> Result<Vec<SweepPoint>, BenchError> {
    let RunContext {
        settings,
        dataset,
        truths,
        progress,
        ..
    } = context;
    let queries = &dataset.queries;
    let rows = dataset.base.len();
    let deep_available = truths.covers(DEEP_K, rows);
    let top_k = sql.nearest(settings.k);
    let top_deep = sql.nearest(DEEP_K);
    let mut points = Vec::new();
    for &ef in &settings.ef_search {
        let ef_sql = format!("SET {} = {ef}", sql.ef_setting);
        client
            .batch_execute(&ef_sql)
            .with_context(|| ef_sql.clone())?;
        // The LIMIT 100 pass first: it also brings the index into the caches for the timed one.
        let deep = query_pass(client, &top_deep, queries, queries.len())?;
        progress.say(format!(
            "{}: ef_search {ef}: LIMIT {DEEP_K} pass, {} queries in {:.1} s",
            sql.engine,
            deep.answers.len(),
            deep.seconds
        ));
        let recall_at_100 = deep_available.then(|| {
            mean_recall(
                &deep.answers,
                &truths.unfiltered,
                DEEP_K,
                &context.scorer,
                queries,
            )
        });
        let pass = query_pass(client, &top_k, queries, queries.len())?;
        let recall_at_k = mean_recall(
            &pass.answers,
            &truths.unfiltered,
            settings.k,
            &context.scorer,
            queries,
        );
        let latency = pass.latency();
        progress.say(format!(
            "{}: ef_search {ef}: recall@{} {recall_at_k:.3}, recall@100 {}, {:.0} q/s, p99 {:.2} ms ({} queries)",
            sql.engine,
            settings.k,
            recall_at_100.map_or("-".to_string(), |r| format!("{r:.3}")),
            latency.qps,
            latency.p99_ms,
            latency.queries
        ));
        let distances_mean = match sql.last_scan_distances {
            Some(last_scan) => {
                let mean = distance_pass(client, &top_k, last_scan, queries)?;
                progress.say(format!(
                    "{}: ef_search {ef}: {mean:.0} distances per query",
                    sql.engine
                ));
                Some(mean)
            }
            None => None,
        };
        let mut throughputs = Vec::new();
        for &connections in &settings.connections {
            let measured = throughput(
                &context.config,
                &format!("{setup} {ef_sql};"),
                &top_k,
                queries,
                connections,
                settings.seconds,
            )?;
            progress.say(format!(
                "{}: ef_search {ef}: {connections} connection(s): {:.0} q/s ({} queries in {:.1} s)",
                sql.engine, measured.qps, measured.queries, measured.seconds
            ));
            throughputs.push(measured);
        }
        points.push(SweepPoint {
            ef_search: ef,
            recall_at_k,
            recall_at_100,
            rows_returned_at_100_mean: deep.rows_returned().1,
            distances_mean,
            latency,
            throughput: throughputs,
        });
    }
    Ok(points)
}

fn filtered(
    context: &RunContext,
    sql: &EngineSql,
    client: &mut Client,
) -> Result<Vec<FilteredPoint>, BenchError> {
    let RunContext {
        settings, truths, ..
    } = context;
    if truths.filtered.is_empty() {
        return Ok(Vec::new());
    }
    let ef_sql = format!(
        "SET {} = {}; {}",
        sql.ef_setting, settings.filter_ef_search, sql.filtered_settings
    );
    client
        .batch_execute(&ef_sql)
        .with_context(|| ef_sql.clone())?;
    let mut points = Vec::new();
    for filter in &truths.filtered {
        // The threshold is a literal, not a parameter, so the planner sees the selectivity.
        let condition = format!("category < {}", filter.threshold);
        let statement_sql = format!(
            "SELECT id FROM {} WHERE {condition} ORDER BY {} LIMIT {}",
            sql.table, sql.distance, settings.k
        );
        let point = filtered_pass(
            context,
            sql,
            client,
            filter,
            &condition,
            &statement_sql,
            false,
        )?;
        let planned_elsewhere = point.plan != INDEX_SCAN;
        points.push(point);
        // Where the planner answers without the vector index, the index's own figures too.
        if planned_elsewhere {
            let force = "SET enable_seqscan = off";
            client
                .batch_execute(force)
                .with_context(|| force.to_string())?;
            let forced = filtered_pass(
                context,
                sql,
                client,
                filter,
                &condition,
                &statement_sql,
                true,
            )?;
            let reset = "RESET enable_seqscan";
            client
                .batch_execute(reset)
                .with_context(|| reset.to_string())?;
            points.push(forced);
        }
    }
    // The rest of the session measures the engine as configured by default.
    if !sql.filtered_reset.is_empty() {
        client
            .batch_execute(sql.filtered_reset)
            .with_context(|| sql.filtered_reset.to_string())?;
    }
    Ok(points)
}

fn filtered_pass(
    context: &RunContext,
    sql: &EngineSql,
    client: &mut Client,
    filter: &FilteredTruth,
    condition: &str,
    statement_sql: &str,
    index_forced: bool,
) -> Result<FilteredPoint, BenchError> {
    let RunContext {
        settings,
        dataset,
        progress,
        ..
    } = context;
    let queries = &dataset.queries;
    let plan = plan_of(client, statement_sql, &sql.index, queries.row(0))?;
    let pass = query_pass(client, statement_sql, queries, queries.len())?;
    let recall_at_k = mean_recall(
        &pass.answers,
        &filter.neighbours,
        settings.k,
        &context.scorer,
        queries,
    );
    let (rows_returned_min, rows_returned_mean) = pass.rows_returned();
    let latency = pass.latency();
    progress.say(format!(
        "{}{}: {condition} ({}%, {} rows): plan {plan}, recall@{} {recall_at_k:.3}, rows {rows_returned_min} / {rows_returned_mean:.1}, {:.0} q/s",
        sql.engine,
        if index_forced { ", index forced" } else { "" },
        filter.percent,
        filter.matching,
        settings.k,
        latency.qps
    ));
    Ok(FilteredPoint {
        selectivity_percent: filter.percent,
        condition: condition.to_string(),
        rows_matching: filter.matching,
        plan,
        index_forced,
        ef_search: context.settings.filter_ef_search,
        recall_at_k,
        rows_returned_min,
        rows_returned_mean,
        latency,
    })
}

fn exact_reference(
    context: &RunContext,
    sql: &EngineSql,
    client: &mut Client,
) -> Result<ExactResult, BenchError> {
    let RunContext {
        settings,
        dataset,
        truths,
        progress,
        ..
    } = context;
    let forced = "SET enable_indexscan = off; SET enable_bitmapscan = off";
    client
        .batch_execute(forced)
        .with_context(|| forced.to_string())?;
    let statement_sql = sql.nearest(settings.k);
    let queries = &dataset.queries;
    let count = EXACT_QUERIES.min(queries.len());
    progress.say(format!("exact scan: {count} queries on {}", sql.table));
    let plan = plan_of(client, &statement_sql, &sql.index, queries.row(0))?;
    let pass = query_pass(client, &statement_sql, queries, count)?;
    let recall_at_k = mean_recall(
        &pass.answers,
        &truths.unfiltered[..count],
        settings.k,
        &context.scorer,
        queries,
    );
    let latency = pass.latency();
    progress.say(format!(
        "exact scan: plan {plan}, recall@{} {recall_at_k:.3}, mean {:.2} ms",
        settings.k, latency.mean_ms
    ));
    let reset = "RESET enable_indexscan; RESET enable_bitmapscan";
    client
        .batch_execute(reset)
        .with_context(|| reset.to_string())?;
    Ok(ExactResult {
        table: sql.table.clone(),
        settings: forced.to_string(),
        plan,
        recall_at_k,
        latency,
    })
}

fn writes(
    context: &RunContext,
    sql: &EngineSql,
    client: &mut Client,
) -> Result<Writes, BenchError> {
    let RunContext {
        dataset, progress, ..
    } = context;
    let new_rows = &dataset.new_rows;
    pg::copy_rows(
        client,
        sql,
        &sql.staging_table,
        new_rows,
        &dataset.new_categories,
        dataset.base.len(),
        progress,
    )?;
    pg::timed(client, &format!("VACUUM ANALYZE {}", sql.staging_table))?;
    let insert = format!(
        "INSERT INTO {} (id, embedding, category) SELECT id, embedding, category FROM {}",
        sql.table, sql.staging_table
    );
    let started = Instant::now();
    let inserted_rows = client
        .execute(insert.as_str(), &[])
        .with_context(|| insert.clone())?;
    let insert_seconds = started.elapsed().as_secs_f64();
    let link_seconds = match &sql.link_pending {
        Some(statement) => Some(pg::timed(client, statement)?),
        None => None,
    };
    progress.say(format!(
        "{}: INSERT ... SELECT of {inserted_rows} rows into the indexed table: {insert_seconds:.2} s{}",
        sql.engine,
        link_seconds.map_or(String::new(), |seconds| format!(
            ", then the rest of its pending list linked in {seconds:.2} s"
        ))
    ));
    let linked_seconds = insert_seconds + link_seconds.unwrap_or(0.0);

    // Every tenth row, so every page has dead rows and the index is always vacuumed.
    let delete = format!("DELETE FROM {} WHERE id % 10 = 0", sql.table);
    let started = Instant::now();
    let deleted_rows = client
        .execute(delete.as_str(), &[])
        .with_context(|| delete.clone())?;
    let delete_seconds = started.elapsed().as_secs_f64();
    let vacuum = format!("VACUUM (INDEX_CLEANUP ON) {}", sql.table);
    let vacuum_seconds = pg::timed(client, &vacuum)?;
    progress.say(format!(
        "{}: deleted {deleted_rows} rows in {delete_seconds:.2} s, {vacuum}: {vacuum_seconds:.2} s",
        sql.engine
    ));
    Ok(Writes {
        inserted_rows,
        insert_seconds,
        link_seconds,
        insert_rows_per_second: if linked_seconds > 0.0 {
            inserted_rows as f64 / linked_seconds
        } else {
            0.0
        },
        deleted_rows,
        delete_seconds,
        vacuum_seconds,
    })
}
