// The extension's tests, run inside Postgres by `cargo pgrx test pg15`. Each `#[pg_test]` runs
// in its own session and transaction, which is rolled back; tests that need commits
// (lifecycle.rs) drive a separate connection from the test process instead.

/// Creates `table(id int, embedding real[])` with `n` vectors of `dims` dimensions drawn around
/// `clusters` centres (uniform in [-1, 1]) with uniform noise of half-width `noise`.
pub fn clustered_table(table: &str, n: usize, dims: usize, clusters: usize, noise: f64, seed: f64) {
    Spi::run(&format!(
        "SELECT setseed({seed});
         CREATE TEMP TABLE {table}_centres AS
           SELECT c AS cid, array_agg((random() * 2 - 1)::real ORDER BY d) AS v
           FROM generate_series(0, {clusters} - 1) c, generate_series(1, {dims}) d GROUP BY c;
         CREATE TABLE {table} (id int, embedding real[]);
         INSERT INTO {table}
           SELECT i, (SELECT array_agg((c.v[d] + {noise} * (2 * random() - 1))::real ORDER BY d)
                      FROM generate_series(1, {dims}) d)
           FROM generate_series(1, {n}) i JOIN {table}_centres c ON c.cid = i % {clusters};"
    ))
    .expect("test table");
}

/// The `id` column of every row of `query`, in order.
pub fn ids(query: &str) -> Vec<i32> {
    Spi::connect(|client| {
        client
            .select(query, None, &[])?
            .map(|row| row.get::<i32>(1).map(|id| id.expect("id is not NULL")))
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// The float8 in column 2 of every row of `query`, in order.
pub fn distances(query: &str) -> Vec<f64> {
    Spi::connect(|client| {
        client
            .select(query, None, &[])?
            .map(|row| row.get::<f64>(2).map(|d| d.expect("distance is not NULL")))
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap_or_else(|e| panic!("{query}: {e}"))
}

pub fn run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub fn one_i64(query: &str) -> i64 {
    Spi::get_one::<i64>(query)
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .expect("a value")
}

pub fn explain(query: &str) -> String {
    Spi::connect(|client| {
        client
            .select(&format!("EXPLAIN (COSTS OFF) {query}"), None, &[])?
            .map(|row| row.get::<String>(1).map(Option::unwrap_or_default))
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap_or_else(|e| panic!("{query}: {e}"))
    .join("\n")
}

/// The SQLSTATE `statement` fails with, or "ok"; a failed statement is rolled back alone.
pub fn sqlstate_of(statement: &str) -> String {
    run("CREATE OR REPLACE FUNCTION pg_temp.sqlstate_of(statement text) RETURNS text
         LANGUAGE plpgsql AS $$
         BEGIN EXECUTE statement; RETURN 'ok';
         EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $$");
    Spi::get_one_with_args::<String>("SELECT pg_temp.sqlstate_of($1)", &[statement.into()])
        .unwrap_or_else(|e| panic!("{statement}: {e}"))
        .expect("a state")
}
