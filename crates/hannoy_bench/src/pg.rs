//! Talking to PostgreSQL: the connection from the standard PG* variables, the schemas of the two
//! extensions, and the SQL that differs between engines.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use postgres::{Client, Config, NoTls};

use crate::args::{ColumnType, EngineName, Metric, Settings};
use crate::data::Matrix;
use crate::{BenchError, Context, Progress};

/// Every table the benchmark makes lives here; the schema is dropped and made again per run.
pub const BENCH_SCHEMA: &str = "hannoy_bench";

/// A connection configured as libpq would from PGHOST (a host name or a socket directory),
/// PGPORT, PGUSER, PGDATABASE and PGPASSWORD, with libpq's defaults.
pub fn config_from_env() -> Config {
    let variable = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let mut config = Config::new();
    let host = variable("PGHOST").unwrap_or_else(|| {
        // Debian's libpq looks in /var/run/postgresql, upstream's in /tmp.
        if std::path::Path::new("/var/run/postgresql").is_dir() {
            "/var/run/postgresql".to_string()
        } else {
            "/tmp".to_string()
        }
    });
    // tokio-postgres takes a host beginning with '/' as a Unix socket directory.
    config.host(&host);
    config.port(
        variable("PGPORT")
            .and_then(|port| port.parse().ok())
            .unwrap_or(5432),
    );
    let user = variable("PGUSER")
        .or_else(|| variable("USER"))
        .unwrap_or_else(|| "postgres".to_string());
    config.dbname(&variable("PGDATABASE").unwrap_or_else(|| user.clone()));
    config.user(&user);
    if let Some(password) = variable("PGPASSWORD") {
        config.password(password);
    }
    config.application_name("hannoy-bench");
    config.connect_timeout(Duration::from_secs(30));
    config
}

pub fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(name)) => name.clone(),
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "?".to_string(),
    };
    format!(
        "host {host} port {} database {} user {}",
        config.get_ports().first().copied().unwrap_or(5432),
        config.get_dbname().unwrap_or("?"),
        config.get_user().unwrap_or("?")
    )
}

pub fn connect(config: &Config) -> Result<Client, BenchError> {
    config
        .connect(NoTls)
        .with_context(|| format!("connecting to PostgreSQL ({})", describe(config)))
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Where the extensions live in this database, and what the run could not use.
pub struct Database {
    pub hannoy_schema: String,
    pub pgvector_schema: Option<String>,
    pub server_version: String,
    /// The server's shared_buffers: where pgvector's pages are cached besides the OS's.
    pub shared_buffers: String,
    pub hannoy_version: Option<String>,
    pub pgvector_version: Option<String>,
    /// Engines asked for but not available, with the reason.
    pub skipped: Vec<(EngineName, String)>,
}

fn extension_schema(
    client: &mut Client,
    name: &str,
) -> Result<Option<(String, String)>, BenchError> {
    let row = client
        .query_opt(
            "SELECT n.nspname::text, e.extversion::text FROM pg_extension e \
             JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = $1",
            &[&name],
        )
        .with_context(|| format!("looking up extension {name}"))?;
    Ok(row.map(|row| (row.get(0), row.get(1))))
}

/// Makes the benchmark schema afresh and the extensions when missing (pgvector where
/// CREATE EXTENSION puts it, beside hannoy_pg); pgvector failing to install is a skipped
/// engine, hannoy_pg failing is an error when it was asked for. A run on pgvector's types
/// needs pgvector for both engines, and hannoy_pg_vector for hannoy.
pub fn prepare_database(
    client: &mut Client,
    engines: &[EngineName],
    column_type: ColumnType,
    progress: &Progress,
) -> Result<Database, BenchError> {
    let server_version: String = client
        .query_one("SELECT current_setting('server_version')", &[])
        .with_context(|| "reading the server version".to_string())?
        .get(0);
    let shared_buffers: String = client
        .query_one("SELECT current_setting('shared_buffers')", &[])
        .with_context(|| "reading shared_buffers".to_string())?
        .get(0);
    client
        .batch_execute(&format!(
            "SET client_min_messages = warning; DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0};",
            quote_ident(BENCH_SCHEMA)
        ))
        .with_context(|| format!("making the schema {BENCH_SCHEMA}"))?;

    let mut skipped = Vec::new();
    let hannoy = match client.batch_execute("CREATE EXTENSION IF NOT EXISTS hannoy_pg") {
        Ok(()) => extension_schema(client, "hannoy_pg")?,
        Err(error) if !engines.contains(&EngineName::Hannoy) => {
            progress.say(format!("hannoy_pg is not available ({error}); not needed"));
            None
        }
        Err(error) => {
            return Err(BenchError::Postgres {
                context: "CREATE EXTENSION hannoy_pg (is it installed for this server?)"
                    .to_string(),
                source: error,
            })
        }
    };

    let pgvector_types = column_type != ColumnType::RealArray;
    let mut pgvector = None;
    if engines.contains(&EngineName::Pgvector) || pgvector_types {
        pgvector = extension_schema(client, "vector")?;
        if pgvector.is_none() {
            match client.batch_execute("CREATE EXTENSION vector") {
                Ok(()) => pgvector = extension_schema(client, "vector")?,
                Err(error) if pgvector_types => {
                    return Err(BenchError::Postgres {
                        context: format!(
                            "CREATE EXTENSION vector (needed by --type {column_type})"
                        ),
                        source: error,
                    })
                }
                Err(error) => {
                    let reason = error
                        .as_db_error()
                        .map(|db| db.message().to_string())
                        .unwrap_or_else(|| error.to_string());
                    progress.say(format!(
                        "pgvector: skipped, CREATE EXTENSION vector failed: {reason}"
                    ));
                    skipped.push((
                        EngineName::Pgvector,
                        format!("CREATE EXTENSION vector failed: {reason}"),
                    ));
                }
            }
        }
    }
    if pgvector_types && engines.contains(&EngineName::Hannoy) {
        client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS hannoy_pg_vector")
            .with_context(|| {
                format!("CREATE EXTENSION hannoy_pg_vector (needed by --type {column_type})")
            })?;
    }
    Ok(Database {
        hannoy_schema: hannoy
            .as_ref()
            .map(|(schema, _)| schema.clone())
            .unwrap_or_else(|| "public".to_string()),
        hannoy_version: hannoy.map(|(_, version)| version),
        pgvector_schema: pgvector.as_ref().map(|(schema, _)| schema.clone()),
        pgvector_version: pgvector.map(|(_, version)| version),
        server_version,
        shared_buffers,
        skipped,
    })
}

/// The SQL of one engine: its tables, index, query and settings.
pub struct EngineSql {
    pub engine: EngineName,
    pub table: String,
    /// New rows for the insert step wait here, unindexed.
    pub staging_table: String,
    pub index: String,
    pub create_table: String,
    pub create_staging: String,
    pub create_index: String,
    /// `embedding <op> <query as $1>`, the query vector a float4[] parameter.
    pub distance: String,
    pub ef_setting: &'static str,
    /// Settings of the engine's own for every session, after `session_setup`.
    pub session_settings: String,
    /// Set for filtered queries only.
    pub filtered_settings: &'static str,
    pub filtered_reset: &'static str,
    pub index_size: String,
    /// A statement that links rows waiting in the index's pending list into the graph, for
    /// an engine that defers that work past the INSERT.
    pub link_pending: Option<String>,
    /// The vector in COPY's text format.
    pub vector_text: fn(&[f32], &mut String),
    /// A query for the distances the session's last index scan computed, for an engine that
    /// can tell.
    pub last_scan_distances: Option<&'static str>,
}

impl EngineSql {
    /// The query of the `limit` nearest rows, the query vector its `$1`.
    pub fn nearest(&self, limit: usize) -> String {
        format!(
            "SELECT id FROM {} ORDER BY {} LIMIT {limit}",
            self.table, self.distance
        )
    }
}

fn array_text(vector: &[f32], out: &mut String) {
    out.push('{');
    for (position, x) in vector.iter().enumerate() {
        if position > 0 {
            out.push(',');
        }
        // Display is the shortest text that reads back as the same f32.
        let _ = write!(out, "{x}");
    }
    out.push('}');
}

fn pgvector_text(vector: &[f32], out: &mut String) {
    out.push('[');
    for (position, x) in vector.iter().enumerate() {
        if position > 0 {
            out.push(',');
        }
        let _ = write!(out, "{x}");
    }
    out.push(']');
}

impl EngineSql {
    pub fn new(
        engine: EngineName,
        settings: &Settings,
        dims: usize,
        database: &Database,
    ) -> EngineSql {
        let operator = match settings.metric {
            Metric::Cosine => "<=>",
            Metric::L2 => "<->",
        };
        let filtered = !settings.selectivities_percent.is_empty();
        let with = format!(
            "WITH (m = {}, ef_construction = {})",
            settings.m, settings.ef_construction
        );
        let hannoy_with = match settings.bits {
            None => with.clone(),
            Some(0) => format!(
                "WITH (m = {}, ef_construction = {}, quantization = 'none')",
                settings.m, settings.ef_construction
            ),
            Some(bits) => format!(
                "WITH (m = {}, ef_construction = {}, quantization = 'rabitq', bits = {bits}{}{})",
                settings.m,
                settings.ef_construction,
                if settings.keep_vectors {
                    ""
                } else {
                    ", keep_vectors = false"
                },
                if settings.neighbour_codes {
                    ", neighbour_codes = true"
                } else {
                    ""
                }
            ),
        };
        let pgvector_schema = quote_ident(database.pgvector_schema.as_deref().unwrap_or("public"));
        // The column's SQL type, operator class and the cast of the query (a binary float4[]
        // parameter, as for every engine).
        let pgvector_column = |type_name: &str| {
            let opclass = match settings.metric {
                Metric::Cosine => format!("{pgvector_schema}.{type_name}_cosine_ops"),
                Metric::L2 => format!("{pgvector_schema}.{type_name}_l2_ops"),
            };
            (
                format!("{pgvector_schema}.{type_name}({dims})"),
                opclass,
                format!("$1::real[]::{pgvector_schema}.{type_name}"),
            )
        };
        let (column, opclass, query) = match (engine, settings.column_type) {
            (EngineName::Hannoy, ColumnType::RealArray) => (
                "real[]".to_string(),
                match settings.metric {
                    Metric::Cosine => "real_cosine_ops".to_string(),
                    Metric::L2 => "real_l2_ops".to_string(),
                },
                "$1::real[]".to_string(),
            ),
            (EngineName::Pgvector, ColumnType::RealArray | ColumnType::Vector)
            | (EngineName::Hannoy, ColumnType::Vector) => pgvector_column("vector"),
            (_, ColumnType::Halfvec) => pgvector_column("halfvec"),
        };
        let vector_text = match column.as_str() {
            "real[]" => array_text,
            _ => pgvector_text,
        };
        let columns = format!("id bigint, embedding {column}, category int");
        match engine {
            EngineName::Hannoy => EngineSql {
                engine,
                table: "items".into(),
                staging_table: "items_new".into(),
                index: "items_hannoy_idx".into(),
                create_table: format!("CREATE TABLE items ({columns})"),
                create_staging: format!("CREATE TABLE items_new ({columns})"),
                create_index: format!(
                    "CREATE INDEX items_hannoy_idx ON items USING hannoy (embedding {opclass}{}) {hannoy_with}",
                    if filtered { ", category" } else { "" }
                ),
                distance: format!("embedding {operator} {query}"),
                ef_setting: "hannoy.ef_search",
                session_settings: format!("SET hannoy.rerank_from = '{}';", settings.rerank_from),
                filtered_settings: "",
                filtered_reset: "",
                index_size: "SELECT size_bytes FROM hannoy_index_info('items_hannoy_idx')".into(),
                // hannoy_index_info merges the pending list before it reports.
                link_pending: Some("SELECT items FROM hannoy_index_info('items_hannoy_idx')".into()),
                vector_text,
                last_scan_distances: Some("SELECT distances FROM hannoy_last_scan()"),
            },
            EngineName::Pgvector => EngineSql {
                engine,
                table: "items_pgv".into(),
                staging_table: "items_pgv_new".into(),
                index: "items_pgv_idx".into(),
                create_table: format!("CREATE TABLE items_pgv ({columns})"),
                create_staging: format!("CREATE TABLE items_pgv_new ({columns})"),
                create_index: format!(
                    "CREATE INDEX items_pgv_idx ON items_pgv USING hnsw (embedding {opclass}) {with}"
                ),
                distance: format!("embedding {operator} {query}"),
                ef_setting: "hnsw.ef_search",
                session_settings: String::new(),
                filtered_settings: "SET hnsw.iterative_scan = relaxed_order",
                filtered_reset: "RESET hnsw.iterative_scan",
                index_size: "SELECT pg_relation_size('items_pgv_idx')".into(),
                link_pending: None,
                vector_text,
                last_scan_distances: None,
            },
        }
    }
}

/// The settings every session of the benchmark starts with.
pub fn session_setup(database: &Database) -> String {
    let mut path = vec![
        quote_ident(BENCH_SCHEMA),
        quote_ident(&database.hannoy_schema),
    ];
    if let Some(schema) = &database.pgvector_schema {
        path.push(quote_ident(schema));
    }
    format!(
        "SET search_path = {}; SET client_min_messages = warning;",
        path.join(", ")
    )
}

/// COPY `rows` (ids from `first_id`) into `table` in text format; returns the seconds it took.
pub fn copy_rows(
    client: &mut Client,
    sql: &EngineSql,
    table: &str,
    vectors: &Matrix,
    categories: &[i32],
    first_id: usize,
    progress: &Progress,
) -> Result<f64, BenchError> {
    let started = Instant::now();
    let statement = format!("COPY {table} (id, embedding, category) FROM STDIN");
    let mut writer = client
        .copy_in(&statement)
        .with_context(|| format!("starting {statement}"))?;
    let rows = vectors.len();
    let report_every = (rows / 10).max(1);
    let mut buffer = String::with_capacity(1 << 20);
    for (row, category) in categories.iter().enumerate().take(rows) {
        let _ = write!(buffer, "{}\t", first_id + row);
        (sql.vector_text)(vectors.row(row), &mut buffer);
        let _ = writeln!(buffer, "\t{category}");
        if buffer.len() >= 1 << 20 {
            writer
                .write_all(buffer.as_bytes())
                .with_context(|| format!("sending rows to {table}"))?;
            buffer.clear();
        }
        if rows >= 10_000 && (row + 1) % report_every == 0 && row + 1 < rows {
            progress.say(format!(
                "  {table}: {} of {rows} rows sent, {:.1} s",
                row + 1,
                started.elapsed().as_secs_f64()
            ));
        }
    }
    writer
        .write_all(buffer.as_bytes())
        .with_context(|| format!("sending rows to {table}"))?;
    writer
        .finish()
        .with_context(|| format!("finishing {statement}"))?;
    Ok(started.elapsed().as_secs_f64())
}

/// Runs one statement and returns its seconds.
pub fn timed(client: &mut Client, statement: &str) -> Result<f64, BenchError> {
    let started = Instant::now();
    client
        .batch_execute(statement)
        .with_context(|| statement.to_string())?;
    Ok(started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_texts() {
        let mut out = String::new();
        array_text(&[1.0, -0.5, 1e-7], &mut out);
        assert_eq!(out, "{1,-0.5,0.0000001}");
        out.clear();
        pgvector_text(&[0.25, 3.0], &mut out);
        assert_eq!(out, "[0.25,3]");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
