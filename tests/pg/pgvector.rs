// hannoy beside pgvector: both extensions in one schema, and hannoy indexes on pgvector's
// `vector`, `halfvec` and `bit` through the companion extension hannoy_pg_vector. Every test here
// is named pgvector_* and returns at once when pgvector is not installed on this machine;
// scripts/test counts them as skipped then.

/// Whether pgvector can be created here; when it can, creates it and the companion in the
/// test's transaction.
fn pgvector_ready() -> bool {
    let available = Spi::get_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')",
    )
    .unwrap()
    .unwrap();
    if available {
        run("CREATE EXTENSION IF NOT EXISTS vector; CREATE EXTENSION IF NOT EXISTS hannoy_pg_vector;");
    }
    available
}

/// `clustered_table`'s rows with the vector also as `v vector(dims)`, `h halfvec(dims)` and
/// `b bit(dims)` (its signs, pgvector's binary_quantize), and `category` (id % 7). Made in one
/// statement: an UPDATE would leave older row versions that an index built in the same
/// transaction holds too.
fn pgvector_table(table: &str, n: usize, dims: usize, clusters: usize, seed: f64) {
    clustered_table(&format!("{table}_source"), n, dims, clusters, 0.4, seed);
    run(&format!(
        "CREATE TABLE {table} AS
             SELECT id, embedding, embedding::vector({dims}) AS v, embedding::halfvec({dims}) AS h,
                    binary_quantize(embedding::vector)::bit({dims}) AS b, id % 7 AS category
             FROM {table}_source"
    ));
}

/// Distances agree to float4 rounding: pgvector and the engine sum in different orders.
fn assert_same_distances(indexed: &[f64], exact: &[f64], what: &str) {
    assert_eq!(indexed.len(), exact.len(), "{what}");
    for (i, (a, b)) in indexed.iter().zip(exact).enumerate() {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{what}: row {i}: {a} vs {b}\n{indexed:?}\n{exact:?}");
    }
}

/// The index's top `limit` for the row `probe`'s vector, and a sequential scan's.
fn indexed_and_exact(table: &str, column: &str, operator: &str, probe: i32, limit: usize) -> (Vec<f64>, Vec<f64>) {
    let q = format!("(SELECT {column} FROM {table} WHERE id = {probe})");
    let query = format!(
        "SELECT id, ({column} {operator} {q})::float8 FROM {table} ORDER BY {column} {operator} {q} LIMIT {limit}"
    );
    run("SET enable_seqscan = off; SET enable_indexscan = on; SET hannoy.ef_search = 1000");
    let plan = explain(&query);
    assert!(plan.contains("Index Scan using"), "{query}\n{plan}");
    let indexed = distances(&query);
    run("SET enable_indexscan = off; SET enable_seqscan = on");
    let exact = distances(&query);
    run("SET enable_indexscan = on; SET enable_seqscan = off");
    (indexed, exact)
}

const PGVECTOR_OPCLASSES: [(&str, &str, &str); 9] = [
    ("v", "vector_l2_ops", "<->"),
    ("v", "vector_cosine_ops", "<=>"),
    ("v", "vector_ip_ops", "<#>"),
    ("v", "vector_l1_ops", "<+>"),
    ("h", "halfvec_l2_ops", "<->"),
    ("h", "halfvec_cosine_ops", "<=>"),
    ("h", "halfvec_ip_ops", "<#>"),
    ("h", "halfvec_l1_ops", "<+>"),
    ("b", "bit_hamming_ops", "<~>"),
];

#[pg_test]
fn pgvector_every_operator_class_orders_as_a_sequential_scan() {
    if !pgvector_ready() {
        return;
    }
    for (dims, n) in [(3, 400), (384, 400), (3_072, 200)] {
        let table = format!("pgv_{dims}_t");
        pgvector_table(&table, n, dims, 8, 0.17);
        for (column, opclass, operator) in PGVECTOR_OPCLASSES {
            run(&format!("CREATE INDEX pgv_idx ON {table} USING hannoy ({column} {opclass})"));
            for probe in [3, 101] {
                let (indexed, exact) = indexed_and_exact(&table, column, operator, probe, 20);
                assert_same_distances(&indexed, &exact, &format!("{opclass}, {dims} dimensions, probe {probe}"));
            }
            run("DROP INDEX pgv_idx");
        }
    }
}

#[pg_test]
fn pgvector_halfvec_indexes_store_half_floats() {
    if !pgvector_ready() {
        return;
    }
    pgvector_table("pgv_half_t", 1_000, 384, 8, 0.29);
    run("CREATE INDEX pgv_half_v ON pgv_half_t USING hannoy (v vector_cosine_ops);
         CREATE INDEX pgv_half_h ON pgv_half_t USING hannoy (h halfvec_cosine_ops);");
    let info = |index: &str| {
        Spi::get_two::<String, i64>(&format!(
            "SELECT metric, used_bytes FROM hannoy_index_info('{index}')"
        ))
        .unwrap()
    };
    let ((v_metric, v_bytes), (h_metric, h_bytes)) = (info("pgv_half_v"), info("pgv_half_h"));
    assert_eq!(v_metric.as_deref(), Some("cosine"));
    assert_eq!(h_metric.as_deref(), Some("cosine (half floats)"));
    let (v_bytes, h_bytes) = (v_bytes.unwrap(), h_bytes.unwrap());
    assert!(
        (h_bytes as f64) < 0.7 * v_bytes as f64,
        "halfvec index {h_bytes} bytes, vector index {v_bytes}"
    );
    // Rows inserted after the build go through the pending list in half floats too.
    run("INSERT INTO pgv_half_t (id, h) SELECT id + 5000, h FROM pgv_half_t WHERE id <= 5");
    let (indexed, exact) = indexed_and_exact("pgv_half_t", "h", "<=>", 2, 10);
    assert_same_distances(&indexed, &exact, "halfvec_cosine_ops after inserts");
    assert_eq!(&indexed[..2], &[0.0, 0.0], "the row and its copy");
}

#[pg_test]
fn pgvector_columns_get_the_l2_classes_by_default() {
    if !pgvector_ready() {
        return;
    }
    pgvector_table("pgv_default_t", 50, 8, 8, 0.2);
    for (column, opclass) in [("v", "vector_l2_ops"), ("h", "halfvec_l2_ops"), ("b", "bit_hamming_ops")] {
        let index = format!("pgv_default_{column}_idx");
        run(&format!("CREATE INDEX {index} ON pgv_default_t USING hannoy ({column})"));
        let chosen = Spi::get_one::<String>(&format!(
            "SELECT o.opcname::text FROM pg_index i JOIN pg_opclass o ON o.oid = i.indclass[0]
             WHERE i.indexrelid = '{index}'::regclass"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(chosen, opclass);
    }
}

#[pg_test]
fn pgvector_sixteen_thousand_dimensions_build_and_answer() {
    if !pgvector_ready() {
        return;
    }
    pgvector_table("pgv_wide_t", 40, 16_000, 4, 0.23);
    for (column, opclass) in [("embedding", "real_l2_ops"), ("v", "vector_l2_ops"), ("h", "halfvec_l2_ops")] {
        run(&format!("CREATE INDEX pgv_wide_idx ON pgv_wide_t USING hannoy ({column} {opclass})"));
        let (indexed, exact) = indexed_and_exact("pgv_wide_t", column, "<->", 7, 10);
        assert_same_distances(&indexed, &exact, opclass);
        assert_eq!(indexed[0], 0.0, "{opclass}: the probe finds itself");
        // Inserts after the build go through the pending list, whose entries span pages.
        run(&format!("INSERT INTO pgv_wide_t (id, {column}) SELECT id + 1000, {column} FROM pgv_wide_t WHERE id <= 3"));
        let (indexed, exact) = indexed_and_exact("pgv_wide_t", column, "<->", 1, 3);
        assert_same_distances(&indexed, &exact, opclass);
        assert_eq!(indexed, vec![0.0, 0.0, exact[2]], "{opclass}: the row and its copy");
        run("DELETE FROM pgv_wide_t WHERE id > 1000; DROP INDEX pgv_wide_idx");
    }
    // One past the limit: pgvector's types refuse it themselves; a real[] index refuses it
    // with the same program_limit_exceeded.
    assert_eq!(
        sqlstate_of("CREATE INDEX ON pgv_wide_t USING hannoy ((embedding || 1::real))"),
        "54000"
    );
    assert_eq!(sqlstate_of("SELECT (embedding || 1::real)::vector FROM pgv_wide_t"), "54000");
}

#[pg_test]
fn pgvector_toasted_and_compressed_values_read_correctly() {
    if !pgvector_ready() {
        return;
    }
    // 2,000 dimensions (8 kB, over the 2 kB TOAST threshold), mostly a repeated pattern so that
    // pglz compresses them, and a few random elements so that they differ.
    run("SELECT setseed(0.5);
         CREATE TABLE pgv_toast_t (id int, inline vector, external vector, compressed halfvec);
         -- pgvector's types default to EXTERNAL: out of line, never compressed.
         ALTER TABLE pgv_toast_t ALTER COLUMN inline SET STORAGE MAIN,
                                 ALTER COLUMN compressed SET STORAGE EXTENDED;
         INSERT INTO pgv_toast_t SELECT i, v, v, v::halfvec FROM (
             SELECT i, (SELECT array_agg(CASE WHEN d <= 8 THEN random() ELSE (d % 5) / 5.0 END
                                         ORDER BY d)::real[]::vector
                        FROM generate_series(1, 2000) d WHERE i > 0) AS v
             FROM generate_series(1, 120) i) s;");
    assert_eq!(
        one_i64("SELECT count(*) FROM pgv_toast_t WHERE pg_column_compression(inline) IS NOT NULL
                   AND pg_column_compression(compressed) IS NOT NULL
                   AND pg_column_compression(external) IS NULL"),
        120,
        "MAIN and EXTENDED values compressed, EXTERNAL ones not"
    );
    assert!(one_i64("SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = 'pgv_toast_t'") > 0);
    for column in ["inline", "external", "compressed"] {
        run(&format!("CREATE INDEX pgv_toast_idx ON pgv_toast_t USING hannoy ({column})"));
        let (indexed, exact) = indexed_and_exact("pgv_toast_t", column, "<->", 17, 15);
        assert_same_distances(&indexed, &exact, column);
        assert_eq!(indexed[0], 0.0, "{column}");
        run("DROP INDEX pgv_toast_idx");
    }
}

#[pg_test]
fn pgvector_filters_and_streaming_work_on_vector_columns() {
    if !pgvector_ready() {
        return;
    }
    pgvector_table("pgv_filter_t", 2_000, 24, 8, 0.29);
    run("CREATE INDEX pgv_filter_idx ON pgv_filter_t USING hannoy (h halfvec_cosine_ops, category);");
    let q = "(SELECT h FROM pgv_filter_t WHERE id = 5)";
    let filtered = format!(
        "SELECT id, (h <=> {q})::float8 FROM pgv_filter_t WHERE category = 3 ORDER BY h <=> {q} LIMIT 25"
    );
    run("SET enable_seqscan = off");
    assert!(explain(&filtered).contains("Index Cond: (category = 3)"), "{}", explain(&filtered));
    let indexed = distances(&filtered);
    let rows = ids(&filtered);
    assert!(rows.iter().all(|id| id % 7 == 3));
    run("SET enable_indexscan = off; SET enable_seqscan = on");
    let exact = distances(&filtered);
    run("SET enable_indexscan = on; SET enable_seqscan = off");
    assert_same_distances(&indexed, &exact, "filtered");

    // Past ef_search: the scan streams on, rows in order batch by batch.
    run("SET hannoy.ef_search = 10");
    let all = format!("SELECT id FROM pgv_filter_t ORDER BY h <=> {q} LIMIT 5000");
    let mut every = ids(&all);
    every.sort_unstable();
    assert_eq!(every, (1..=2_000).collect::<Vec<_>>());
    run("SET hannoy.max_scan_tuples = 100");
    assert_eq!(ids(&all).len(), 100);
}

#[pg_test]
fn pgvector_bad_values_get_the_same_errors_as_real_arrays() {
    if !pgvector_ready() {
        return;
    }
    run("CREATE TABLE pgv_bad_t (id int, v vector, h halfvec);
         INSERT INTO pgv_bad_t VALUES (1, '[1,2,3]', '[1,2,3]'), (2, '[3,2,1]', '[3,2,1]');
         CREATE INDEX pgv_bad_v ON pgv_bad_t USING hannoy (v vector_cosine_ops);
         CREATE INDEX pgv_bad_h ON pgv_bad_t USING hannoy (h halfvec_l2_ops);
         SET enable_seqscan = off;");
    for (statement, state) in [
        ("INSERT INTO pgv_bad_t (id, v) VALUES (3, '[1,2]')", "22000"),
        ("INSERT INTO pgv_bad_t (id, h) VALUES (3, '[1,2,3,4]')", "22000"),
        // The cosine index refuses a zero vector, as on real[].
        ("INSERT INTO pgv_bad_t (id, v) VALUES (3, '[0,0,0]')", "22000"),
        ("SELECT id FROM pgv_bad_t ORDER BY v <=> '[1,2]' LIMIT 1", "22000"),
        ("SELECT id FROM pgv_bad_t ORDER BY v <=> '[0,0,0]' LIMIT 1", "22000"),
        ("SELECT id FROM pgv_bad_t ORDER BY h <-> '[1,2]' LIMIT 1", "22000"),
    ] {
        assert_eq!(sqlstate_of(statement), state, "{statement}");
    }
    // pgvector refuses NaN, infinity and empty vectors itself.
    for literal in ["'[1,NaN,3]'", "'[1,Infinity,3]'", "'[]'"] {
        assert_eq!(sqlstate_of(&format!("SELECT {literal}::vector")), "22000", "{literal}");
    }
    // Nothing was lost.
    assert_eq!(one_i64("SELECT count(*) FROM pgv_bad_t WHERE v IS NOT NULL"), 2);
    assert_eq!(ids("SELECT id FROM pgv_bad_t ORDER BY v <=> '[1,2,3]' LIMIT 2"), vec![1, 2]);
    assert_eq!(ids("SELECT id FROM pgv_bad_t ORDER BY h <-> '[3,2,1]' LIMIT 2"), vec![2, 1]);
}

#[pg_test]
fn pgvector_hnsw_and_hannoy_indexes_answer_on_one_table() {
    if !pgvector_ready() {
        return;
    }
    pgvector_table("pgv_both_t", 3_000, 32, 8, 0.37);
    run("SET hnsw.ef_search = 200; SET hannoy.ef_search = 200;");
    let query = |probe: i32| {
        format!(
            "SELECT id, (v <=> (SELECT v FROM pgv_both_t WHERE id = {probe}))::float8 FROM pgv_both_t
             ORDER BY v <=> (SELECT v FROM pgv_both_t WHERE id = {probe}) LIMIT 10"
        )
    };
    let probes: Vec<i32> = (1..=100).map(|i| i * 29).collect();
    // The pgvector index first, then a hannoy index beside it; rows inserted with both in
    // place reach both. Each is measured with the other hidden from the planner.
    run("DELETE FROM pgv_both_t WHERE id > 2900;
         CREATE INDEX pgv_both_hnsw ON pgv_both_t USING hnsw (v vector_cosine_ops);
         CREATE INDEX pgv_both_hannoy ON pgv_both_t USING hannoy (v vector_cosine_ops);
         INSERT INTO pgv_both_t (id, v) SELECT id + 2900, v FROM pgv_both_t WHERE id <= 100;
         SET enable_indexscan = off; SET enable_seqscan = on;");
    let worst: Vec<f64> = probes.iter().map(|&p| distances(&query(p))[9]).collect();
    run("SET enable_indexscan = on; SET enable_seqscan = off");
    let with_only = |index: &str, other: &str| {
        run(&format!("UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{other}'::regclass"));
        let plan = explain(&query(probes[0]));
        assert!(plan.contains(&format!("Index Scan using {index}")), "{plan}");
        // Ties count as found, as in the engine's recall helper; the rows copied above are
        // at distance 0 from their probe and make ties of their own.
        let found: usize = probes
            .iter()
            .zip(&worst)
            .map(|(&p, &w)| distances(&query(p)).iter().filter(|d| **d <= w + 1e-6).count())
            .sum();
        let copies = ids("SELECT id FROM pgv_both_t ORDER BY v <=> (SELECT v FROM pgv_both_t WHERE id = 2) LIMIT 2");
        run(&format!("UPDATE pg_index SET indisvalid = true WHERE indexrelid = '{other}'::regclass"));
        assert!(copies.contains(&2902), "{index} holds the row inserted after it: {copies:?}");
        found as f64 / (10 * probes.len()) as f64
    };
    let recall = [
        with_only("pgv_both_hnsw", "pgv_both_hannoy"),
        with_only("pgv_both_hannoy", "pgv_both_hnsw"),
    ];
    // pgvector's graph is its own: its floor only says its index answers beside ours (0.929
    // was seen once with ef_search 200 on this data).
    assert!(recall[0] >= 0.9, "pgvector hnsw recall@10 {}", recall[0]);
    assert!(recall[1] >= 0.98, "hannoy recall@10 {}", recall[1]);
}

#[pg_test]
fn pgvector_binary_quantization_with_re_ranking_finds_the_neighbours() {
    if !pgvector_ready() {
        return;
    }
    // Many small clusters: each row's neighbours are its cluster's, which their signs tell
    // apart from the other clusters'.
    pgvector_table("pgv_bq_t", 5_000, 256, 500, 0.43);
    run("CREATE INDEX pgv_bq_idx ON pgv_bq_t USING hannoy ((binary_quantize(v)::bit(256)) bit_hamming_ops);
         SET hannoy.ef_search = 200;");
    // pgvector's README recipe: the 100 nearest codes, re-ranked by the full vectors.
    let re_ranked = |probe: i32| {
        format!(
            "SELECT id, (v <=> (SELECT v FROM pgv_bq_t WHERE id = {probe}))::float8 FROM (
                 SELECT id, v FROM pgv_bq_t
                 ORDER BY binary_quantize(v)::bit(256) <~> (SELECT binary_quantize(v) FROM pgv_bq_t WHERE id = {probe})
                 LIMIT 100) candidates
             ORDER BY v <=> (SELECT v FROM pgv_bq_t WHERE id = {probe}) LIMIT 10"
        )
    };
    let exact = |probe: i32| {
        format!(
            "SELECT id, (v <=> (SELECT v FROM pgv_bq_t WHERE id = {probe}))::float8 FROM pgv_bq_t
             ORDER BY v <=> (SELECT v FROM pgv_bq_t WHERE id = {probe}) LIMIT 10"
        )
    };
    run("SET enable_seqscan = off");
    let plan = explain(&re_ranked(1));
    assert!(plan.contains("Index Scan using pgv_bq_idx"), "{plan}");
    // Recall of the recipe through the index, and of the same recipe by sequential scan (what
    // the codes themselves allow).
    let (mut through_index, mut by_scan) = (0, 0);
    for probe in (1..=100).map(|i| i * 47) {
        run("SET enable_indexscan = off; SET enable_seqscan = on");
        let worst = distances(&exact(probe))[9];
        let is_found = |d: &f64| *d <= worst + 1e-6;
        by_scan += distances(&re_ranked(probe)).iter().filter(|d| is_found(d)).count();
        run("SET enable_indexscan = on; SET enable_seqscan = off");
        through_index += distances(&re_ranked(probe)).iter().filter(|d| is_found(d)).count();
    }
    let (through_index, by_scan) = (through_index as f64 / 1000.0, by_scan as f64 / 1000.0);
    assert!(by_scan >= 0.95, "the recipe by sequential scan: recall@10 {by_scan}");
    assert!(
        through_index >= by_scan - 0.02,
        "recall@10 through the index {through_index}, by sequential scan {by_scan}"
    );
}

#[cfg(test)]
mod pgvector_installs {
    use super::committed::{connect_to, session};

    fn in_new_database(shared: &mut postgres::Client, name: &str) -> postgres::Client {
        for statement in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            shared.batch_execute(&statement).unwrap();
        }
        connect_to(shared, name)
    }

    fn ids(client: &mut postgres::Client, query: &str) -> Vec<i32> {
        client
            .query(query, &[])
            .unwrap_or_else(|e| panic!("{query}: {e}"))
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    fn float(client: &mut postgres::Client, query: &str) -> f64 {
        client
            .query_one(query, &[])
            .unwrap_or_else(|e| panic!("{query}: {e}"))
            .get(0)
    }

    #[test]
    fn pgvector_and_hannoy_pg_install_in_either_order_and_drop_apart() {
        let mut shared = session();
        let available: bool = shared
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')",
                &[],
            )
            .unwrap()
            .get(0);
        if !available {
            return;
        }
        for (database, first, second) in [
            ("pgv_vector_first", "vector", "hannoy_pg"),
            ("pgv_hannoy_first", "hannoy_pg", "vector"),
        ] {
            let mut client = in_new_database(&mut shared, database);
            client
                .batch_execute(&format!("CREATE EXTENSION {first}; CREATE EXTENSION {second};"))
                .unwrap_or_else(|e| panic!("{first} then {second}: {e}"));
            let schemas: Vec<String> = client
                .query(
                    "SELECT DISTINCT extnamespace::regnamespace::text FROM pg_extension
                     WHERE extname IN ('vector', 'hannoy_pg')",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect();
            assert_eq!(schemas, vec!["public".to_string()], "{database}");
            client
                .batch_execute(
                    "CREATE EXTENSION hannoy_pg_vector;
                     CREATE TABLE t (id int, v vector(3), a real[], b bit(4), vb varbit);
                     INSERT INTO t SELECT i, ARRAY[i, i % 7, 1]::real[]::vector, ARRAY[i, i % 7, 1]::real[],
                                          (i % 16)::bit(4), (i % 16)::bit(4)::varbit
                     FROM generate_series(1, 200) i;
                     CREATE INDEX t_hnsw ON t USING hnsw (v vector_l2_ops);
                     CREATE INDEX t_hannoy_v ON t USING hannoy (v);
                     CREATE INDEX t_hannoy_a ON t USING hannoy (a);
                     CREATE INDEX t_hannoy_b ON t USING hannoy (b);
                     CREATE INDEX t_hannoy_vb ON t USING hannoy (vb);
                     SET enable_seqscan = off;",
                )
                .unwrap_or_else(|e| panic!("{database}: {e}"));
            // Both extensions' operators answer: pgvector's <-> on vector, hannoy's on real[],
            // pgvector's <~> on bit, hannoy's on varbit.
            let nearest = "SELECT id FROM t ORDER BY v <-> '[10,3.1,1]' LIMIT 3";
            assert_eq!(ids(&mut client, nearest), vec![10, 11, 9]);
            let nearest = "SELECT id FROM t ORDER BY a <-> '{10,3.1,1}' LIMIT 3";
            assert_eq!(ids(&mut client, nearest), vec![10, 11, 9]);
            assert_eq!(float(&mut client, "SELECT B'1010' <~> B'0110'"), 2.0);
            assert_eq!(float(&mut client, "SELECT '1010'::varbit <~> '0111'::varbit"), 3.0);
            let codes = ids(&mut client, "SELECT id FROM t ORDER BY b <~> B'0101' LIMIT 12");
            assert!(codes.iter().all(|id| id % 16 == 5), "{codes:?}");
        }

        // pgvector goes (with the companion, which needs it); hannoy_pg works on.
        let mut client = connect_to(&mut shared, "pgv_vector_first");
        client
            .batch_execute(
                "DROP TABLE t; DROP EXTENSION hannoy_pg_vector; DROP EXTENSION vector;
                 CREATE TABLE r (id int, a real[], vb varbit);
                 INSERT INTO r SELECT i, ARRAY[i, 1]::real[], (i % 16)::bit(4) FROM generate_series(1, 100) i;
                 CREATE INDEX ON r USING hannoy (a); CREATE INDEX ON r USING hannoy (vb);
                 SET enable_seqscan = off;",
            )
            .unwrap();
        assert_eq!(ids(&mut client, "SELECT id FROM r ORDER BY a <-> '{50,1}' LIMIT 1"), vec![50]);
        assert_eq!(float(&mut client, "SELECT hamming_distance(B'101', B'100')"), 1.0);
        let codes = ids(&mut client, "SELECT id FROM r ORDER BY vb <~> B'0011' LIMIT 6");
        assert!(codes.iter().all(|id| id % 16 == 3), "{codes:?}");
        drop(client);

        // hannoy_pg goes (with its indexes and the companion); pgvector works on.
        let mut client = connect_to(&mut shared, "pgv_hannoy_first");
        client
            .batch_execute("DROP EXTENSION hannoy_pg_vector, hannoy_pg CASCADE; SET enable_seqscan = off;")
            .unwrap();
        let nearest = "SELECT id FROM t ORDER BY v <-> '[10,3.1,1]' LIMIT 3";
        assert_eq!(ids(&mut client, nearest), vec![10, 11, 9]);
        assert_eq!(float(&mut client, "SELECT B'1010' <~> B'0110'"), 2.0);
        assert_eq!(float(&mut client, "SELECT hamming_distance(B'101', B'100')"), 1.0);
        drop(client);
        for database in ["pgv_vector_first", "pgv_hannoy_first"] {
            shared
                .batch_execute(&format!("DROP DATABASE {database} WITH (FORCE)"))
                .unwrap();
        }
    }
}
