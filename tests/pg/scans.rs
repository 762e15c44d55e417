// Ordered scans: exact order with a large ef_search, recall at default settings, streaming
// past ef_search, and plans that use the index only for ORDER BY distance.

const OPERATORS: [(&str, &str); 4] = [
    ("real_l2_ops", "<->"),
    ("real_cosine_ops", "<=>"),
    ("real_ip_ops", "<#>"),
    ("real_l1_ops", "<+>"),
];

#[pg_test]
fn operators_compute_pgvector_distances_without_an_index() {
    let value = |sql: &str| Spi::get_one::<f64>(sql).unwrap().unwrap();
    assert!((value("SELECT '{1,2,3}'::real[] <-> '{4,6,3}'") - 5.0).abs() < 1e-9);
    assert!((value("SELECT '{1,0}'::real[] <=> '{0,1}'") - 1.0).abs() < 1e-9);
    assert!((value("SELECT '{1,2,3}'::real[] <#> '{4,5,6}'") + 32.0).abs() < 1e-9);
    assert!((value("SELECT '{1,2,3}'::real[] <+> '{4,6,3}'") - 7.0).abs() < 1e-9);
    assert!((value("SELECT B'10110' <~> B'00111'") - 2.0).abs() < 1e-9);
    assert!((value("SELECT '10110'::varbit <~> '00111'::varbit") - 2.0).abs() < 1e-9);
    assert!(value("SELECT '{0,0}'::real[] <=> '{1,2}'").is_nan());
}

/// The index scan of `table_idx` (with seq scans off) returns the same 50 rows nearest to row
/// `q` as a sequential scan does, in distance order: the executor does not re-sort an index
/// scan, so the order is the index's own.
fn assert_top_50_is_exact(table: &str, opclass: &str, op: &str, q: i32) {
    let target = format!("(SELECT embedding FROM {table} WHERE id = {q})");
    let query = format!(
        "SELECT id, embedding {op} {target} FROM {table} ORDER BY embedding {op} {target} LIMIT 50"
    );
    assert!(
        explain(&query).contains(&format!("Index Scan using {table}_idx")),
        "{opclass}"
    );
    let (index_ids, index_distances) = (ids(&query), distances(&query));
    run("SET enable_indexscan = off; SET enable_seqscan = on");
    let exact_ids = ids(&query);
    run("SET enable_indexscan = on; SET enable_seqscan = off");
    assert_eq!(index_ids, exact_ids, "{opclass} query {q}");
    assert!(
        index_distances.windows(2).all(|w| w[0] <= w[1]),
        "{opclass} query {q}: {index_distances:?}"
    );
}

#[pg_test]
fn with_a_large_ef_search_every_operator_class_returns_the_exact_order() {
    clustered_table("exact_t", 2_000, 16, 20, 0.4, 0.11);
    run("SET enable_seqscan = off; SET hannoy.ef_search = 1000");
    for (opclass, op) in OPERATORS {
        run(&format!(
            "CREATE INDEX exact_t_idx ON exact_t USING hannoy (embedding {opclass})"
        ));
        for q in [7, 500, 1999] {
            assert_top_50_is_exact("exact_t", opclass, op, q);
        }
        run("DROP INDEX exact_t_idx");
    }
}

#[pg_test]
fn a_quantized_index_returns_the_exact_order_and_codes_its_inserted_rows() {
    clustered_table("codes_t", 3_000, 32, 20, 0.4, 0.17);
    run("SET enable_seqscan = off");
    for (opclass, op) in &OPERATORS[..3] {
        run(&format!(
            "CREATE INDEX codes_t_idx ON codes_t USING hannoy (embedding {opclass})
             WITH (quantization = 'rabitq', bits = 2)"
        ));
        assert_eq!(
            Spi::get_two::<String, i32>(
                "SELECT quantization, bits FROM hannoy_index_info('codes_t_idx')"
            )
            .unwrap(),
            (Some("rabitq".into()), Some(2))
        );
        // Rows through the pending list: every code stays its vector's (the check re-codes each
        // live vector). VACUUM's deletes are in `writes`.
        // Moved a little off their originals, so that no two rows tie.
        let moved = "(SELECT array_agg(x + 0.01::real ORDER BY o) FROM unnest(embedding) WITH ORDINALITY u(x, o))";
        run(&format!(
            "INSERT INTO codes_t SELECT id + 100000, {moved} FROM codes_t WHERE id % 10 = 0;
             INSERT INTO codes_t SELECT id + 200000, {moved} FROM codes_t WHERE id % 10 = 2 AND id < 100000;"
        ));
        assert_eq!(
            one_i64("SELECT (sound AND heap_rows_missing = 0)::int::int8 FROM hannoy_index_check('codes_t_idx')"),
            1,
            "{opclass}"
        );
        run("SET hannoy.ef_search = 1000");
        for q in [7, 1500, 2999] {
            assert_top_50_is_exact("codes_t", opclass, op, q);
        }
        // Re-ranking 20 per batch: a LIMIT past it still gets its rows, the first batch (merged
        // with the pending list's rows, also in order) in exact order.
        run("SET hannoy.ef_search = 40; SET hannoy.rerank = 20");
        let target = "(SELECT embedding FROM codes_t WHERE id = 77)";
        let query = format!(
            "SELECT id, embedding {op} {target} FROM codes_t ORDER BY embedding {op} {target} LIMIT 100"
        );
        let d = distances(&query);
        assert_eq!(d.len(), 100, "{opclass}");
        assert!(d[..20].windows(2).all(|w| w[0] <= w[1]), "{opclass}: {d:?}");
        run("RESET hannoy.ef_search; RESET hannoy.rerank; DROP INDEX codes_t_idx;
             DELETE FROM codes_t WHERE id >= 100000");
    }
}

#[pg_test]
fn a_default_index_keeps_two_bit_codes_where_the_metric_and_dimensions_suit_them() {
    let info = |index: &str| {
        Spi::get_two::<String, i32>(&format!(
            "SELECT quantization, bits FROM hannoy_index_info('{index}')"
        ))
        .unwrap()
    };
    let codes = (Some("rabitq".to_string()), Some(2));
    let none = (Some("none".to_string()), None);
    clustered_table("wide_t", 600, 256, 10, 0.4, 0.41);
    clustered_table("narrow_t", 600, 255, 10, 0.4, 0.43);
    run("CREATE INDEX wide_l2 ON wide_t USING hannoy (embedding real_l2_ops);
         CREATE INDEX wide_cos ON wide_t USING hannoy (embedding real_cosine_ops);
         CREATE INDEX wide_ip ON wide_t USING hannoy (embedding real_ip_ops);
         CREATE INDEX wide_l1 ON wide_t USING hannoy (embedding real_l1_ops);
         CREATE INDEX wide_none ON wide_t USING hannoy (embedding real_l2_ops)
           WITH (quantization = 'none');
         CREATE INDEX wide_auto ON wide_t USING hannoy (embedding real_l2_ops)
           WITH (quantization = 'auto');
         CREATE INDEX narrow_l2 ON narrow_t USING hannoy (embedding real_l2_ops)");
    for index in ["wide_l2", "wide_cos", "wide_ip", "wide_auto"] {
        assert_eq!(info(index), codes, "{index}");
    }
    for index in ["wide_l1", "wide_none", "narrow_l2"] {
        assert_eq!(info(index), none, "{index}");
    }
    // An index built on an empty table decides at its first rows, linked from the pending list.
    run("CREATE TABLE later_t (id int, embedding real[]);
         CREATE INDEX later_idx ON later_t USING hannoy (embedding real_cosine_ops)");
    assert_eq!(info("later_idx"), (Some("auto".to_string()), None));
    run("INSERT INTO later_t SELECT id, embedding FROM wide_t");
    assert_eq!(info("later_idx"), codes);
    // Options that need codes still ask for them by name.
    for options in [
        "bits = 2",
        "quantization = 'auto', bits = 4",
        "quantization = 'auto', keep_vectors = false",
        "quantization = 'auto', neighbour_codes = true",
        "quantization = 'sometimes'",
    ] {
        assert_eq!(
            sqlstate_of(&format!(
                "CREATE INDEX ON wide_t USING hannoy (embedding real_l2_ops) WITH ({options})"
            )),
            "22023",
            "{options}"
        );
    }
}

#[pg_test]
fn re_ranked_from_the_table_a_quantized_index_returns_exact_distances_in_order() {
    clustered_table("heap_t", 3_000, 32, 20, 0.4, 0.29);
    run("SET enable_seqscan = off");
    let limit_10 = |op: &str, q: i32| {
        let target = format!("(SELECT embedding FROM heap_t WHERE id = {q})");
        format!("SELECT id, embedding {op} {target} FROM heap_t ORDER BY embedding {op} {target} LIMIT 10")
    };
    let rows_of_last_scan = || one_i64("SELECT rows FROM hannoy_last_scan()");
    for (opclass, op) in &OPERATORS[..3] {
        run(&format!(
            "CREATE INDEX heap_t_idx ON heap_t USING hannoy (embedding {opclass})
             WITH (quantization = 'rabitq', bits = 5)"
        ));
        // Rows in the pending list come with exact distances among the graph's bounds.
        let moved = "(SELECT array_agg(x + 0.01::real ORDER BY o) FROM unnest(embedding) WITH ORDINALITY u(x, o))";
        run(&format!(
            "INSERT INTO heap_t SELECT id + 100000, {moved} FROM heap_t WHERE id % 10 = 0"
        ));
        run("SET hannoy.rerank_from = 'table'; SET hannoy.ef_search = 1000");
        // A bound above the distance PostgreSQL computes would fail the query ("index
        // returned tuples in wrong order"); every bound below it, the order is exact.
        for q in [7, 1500, 2999] {
            assert_top_50_is_exact("heap_t", opclass, op, q);
        }
        run("RESET hannoy.ef_search");
        let (mut found, mut fetched) = (0, 0);
        for q in (1..=2_901).step_by(100) {
            let query = limit_10(op, q);
            assert!(explain(&query).contains("Index Scan using heap_t_idx"), "{opclass}");
            let (from_table, distances_from_table) = (ids(&query), distances(&query));
            fetched += rows_of_last_scan();
            run("SET hannoy.rerank_from = 'index'");
            assert_eq!(ids(&query).len(), 10);
            assert_eq!(rows_of_last_scan(), 10, "{opclass}: re-ranked in the index");
            run("SET enable_indexscan = off; SET enable_seqscan = on");
            let (exact, exact_distances) = (ids(&query), distances(&query));
            run("SET enable_indexscan = on; SET enable_seqscan = off; SET hannoy.rerank_from = 'table'");
            found += from_table.iter().filter(|id| exact.contains(id)).count();
            assert_eq!(from_table.len(), 10, "{opclass}");
            // Each returned distance is the row's own, computed by the executor.
            for (id, d) in from_table.iter().zip(&distances_from_table) {
                if let Some(at) = exact.iter().position(|e| e == id) {
                    assert!((d - exact_distances[at]).abs() < 1e-9, "{opclass}: row {id}");
                }
            }
            assert!(distances_from_table.windows(2).all(|w| w[0] <= w[1]), "{opclass}");
        }
        let recall = found as f64 / (10 * 30) as f64;
        assert!(recall >= 0.95, "{opclass}: recall@10 {recall}");
        // The executor fetched rows past the 10 it returned, until their bounds passed the
        // tenth distance; a bound of 5 bits needs few.
        assert!((301..30 * 300).contains(&fetched), "{opclass}: {fetched} rows fetched");
        run("RESET hannoy.rerank_from; DROP INDEX heap_t_idx; DELETE FROM heap_t WHERE id >= 100000");
    }
    // An index without codes has no bounds to give: its distances are exact either way.
    run("CREATE INDEX heap_t_idx ON heap_t USING hannoy (embedding real_l2_ops);
         SET hannoy.rerank_from = 'table'");
    assert_eq!(ids(&limit_10("<->", 5)).len(), 10);
    assert_eq!(rows_of_last_scan(), 10);
    assert_eq!(
        sqlstate_of("SET hannoy.rerank_from = 'heap'"),
        "22023",
        "an unknown setting"
    );
}

#[pg_test]
fn an_index_without_vectors_re_ranks_from_the_table_and_takes_less_room() {
    clustered_table("lean_t", 3_000, 64, 20, 0.4, 0.37);
    run("SET enable_seqscan = off");
    let limit_10 = |op: &str, q: i32| {
        let target = format!("(SELECT embedding FROM lean_t WHERE id = {q})");
        format!("SELECT id, embedding {op} {target} FROM lean_t ORDER BY embedding {op} {target} LIMIT 10")
    };
    let used = |index: &str| one_i64(&format!("SELECT used_bytes FROM hannoy_index_info('{index}')"));
    for (opclass, op) in &OPERATORS[..3] {
        run(&format!(
            "CREATE INDEX lean_t_idx ON lean_t USING hannoy (embedding {opclass})
             WITH (quantization = 'rabitq', bits = 5, keep_vectors = false);
             CREATE INDEX full_t_idx ON lean_t USING hannoy (embedding {opclass})
             WITH (quantization = 'rabitq', bits = 5)"
        ));
        assert_eq!(
            Spi::get_one::<bool>("SELECT keep_vectors FROM hannoy_index_info('lean_t_idx')")
                .unwrap(),
            Some(false)
        );
        // 256 bytes of vector a row are not kept (pages, so most of them).
        let (lean, full) = (used("lean_t_idx"), used("full_t_idx"));
        assert!(lean + 3_000 * 200 < full, "{opclass}: {lean} bytes against {full}");
        run("DROP INDEX full_t_idx");
        // Rows through the pending list and deleted ones: linked against decoded codes.
        let moved = "(SELECT array_agg(x + 0.01::real ORDER BY o) FROM unnest(embedding) WITH ORDINALITY u(x, o))";
        run(&format!(
            "INSERT INTO lean_t SELECT id + 100000, {moved} FROM lean_t WHERE id % 10 = 0;
             DELETE FROM lean_t WHERE id % 10 = 5"
        ));
        assert_eq!(
            one_i64("SELECT (sound AND heap_rows_missing = 0)::int::int8 FROM hannoy_index_check('lean_t_idx')"),
            1,
            "{opclass}"
        );
        // Whatever hannoy.rerank_from says, the executor re-ranks from the rows: the order is
        // exact where the walk reaches every row.
        run("SET hannoy.ef_search = 1000");
        for q in [7, 1500, 2999] {
            assert_top_50_is_exact("lean_t", opclass, op, q);
        }
        run("RESET hannoy.ef_search");
        let (mut found, mut fetched) = (0, 0);
        for q in (1..=2_901).step_by(100) {
            let query = limit_10(op, q);
            let (from_index, returned) = (ids(&query), distances(&query));
            fetched += one_i64("SELECT rows FROM hannoy_last_scan()");
            run("SET enable_indexscan = off; SET enable_seqscan = on");
            let (exact, exact_distances) = (ids(&query), distances(&query));
            run("SET enable_indexscan = on; SET enable_seqscan = off");
            assert_eq!(from_index.len(), 10, "{opclass}");
            found += from_index.iter().filter(|id| exact.contains(id)).count();
            for (id, d) in from_index.iter().zip(&returned) {
                if let Some(at) = exact.iter().position(|e| e == id) {
                    assert!((d - exact_distances[at]).abs() < 1e-9, "{opclass}: row {id}");
                }
            }
        }
        let recall = found as f64 / (10 * 30) as f64;
        assert!(recall >= 0.95, "{opclass}: recall@10 {recall}");
        assert!((301..30 * 300).contains(&fetched), "{opclass}: {fetched} rows fetched");
        run("DROP INDEX lean_t_idx; DELETE FROM lean_t WHERE id >= 100000");
    }
    for options in [
        "keep_vectors = false",
        "quantization = 'rabitq', keep_vectors = false",
        "quantization = 'rabitq', bits = 3, keep_vectors = false",
        "quantization = 'rabitq', bits = 4, keep_vectors = 'maybe'",
    ] {
        assert_eq!(
            sqlstate_of(&format!(
                "CREATE INDEX ON lean_t USING hannoy (embedding real_l2_ops) WITH ({options})"
            )),
            "22023",
            "{options}"
        );
    }
}

#[pg_test]
fn an_index_with_neighbour_codes_answers_as_well_and_follows_every_write() {
    clustered_table("nc_t", 3_000, 64, 20, 0.4, 0.37);
    run("SET enable_seqscan = off");
    let used = |index: &str| one_i64(&format!("SELECT used_bytes FROM hannoy_index_info('{index}')"));
    let limit_10 = |q: i32| {
        let target = format!("(SELECT embedding FROM nc_t WHERE id = {q})");
        format!("SELECT id FROM nc_t ORDER BY embedding <=> {target} LIMIT 10")
    };
    run("CREATE INDEX nc_t_idx ON nc_t USING hannoy (embedding real_cosine_ops)
         WITH (quantization = 'rabitq', bits = 2, neighbour_codes = true);
         CREATE INDEX plain_t_idx ON nc_t USING hannoy (embedding real_cosine_ops)
         WITH (quantization = 'rabitq', bits = 2)");
    assert_eq!(
        Spi::get_one::<bool>("SELECT neighbour_codes FROM hannoy_index_info('nc_t_idx')").unwrap(),
        Some(true)
    );
    assert_eq!(
        Spi::get_one::<bool>("SELECT neighbour_codes FROM hannoy_index_info('plain_t_idx')")
            .unwrap(),
        Some(false)
    );
    // Each row's layer-0 list carries up to 32 codes of 40 bytes at 64 dimensions and 2 bits.
    let (with_codes, plain) = (used("nc_t_idx"), used("plain_t_idx"));
    assert!(plain + 3_000 * 500 < with_codes, "{with_codes} bytes against {plain}");
    run("DROP INDEX plain_t_idx");
    // Rows through the pending list: the lists they change are stored again with the codes of
    // their links (deletes with repair are the engine's tests').
    let moved = "(SELECT array_agg(x + 0.01::real ORDER BY o) FROM unnest(embedding) WITH ORDINALITY u(x, o))";
    run(&format!(
        "INSERT INTO nc_t SELECT id + 100000, {moved} FROM nc_t WHERE id % 10 = 0;
         DELETE FROM nc_t WHERE id % 10 = 5"
    ));
    assert_eq!(
        one_i64("SELECT (sound AND heap_rows_missing = 0)::int::int8 FROM hannoy_index_check('nc_t_idx')"),
        1
    );
    let mut found = 0;
    for q in (1..=2_901).step_by(100) {
        let query = limit_10(q);
        let from_index = ids(&query);
        run("SET enable_indexscan = off; SET enable_seqscan = on");
        let exact = ids(&query);
        run("SET enable_indexscan = on; SET enable_seqscan = off");
        assert_eq!(from_index.len(), 10);
        found += from_index.iter().filter(|id| exact.contains(id)).count();
    }
    let recall = found as f64 / (10 * 30) as f64;
    assert!(recall >= 0.95, "recall@10 {recall}");
    run("SET hannoy.ef_search = 1000");
    for q in [7, 1500, 2999] {
        assert_top_50_is_exact("nc_t", "real_cosine_ops", "<=>", q);
    }
    run("RESET hannoy.ef_search");
    for options in [
        "neighbour_codes = true",
        "quantization = 'none', neighbour_codes = true",
        "quantization = 'rabitq', neighbour_codes = 'maybe'",
    ] {
        assert_eq!(
            sqlstate_of(&format!(
                "CREATE INDEX ON nc_t USING hannoy (embedding real_cosine_ops) WITH ({options})"
            )),
            "22023",
            "{options}"
        );
    }
}

#[pg_test]
fn varbit_hamming_ops_returns_the_exact_distances_in_order() {
    run("SELECT setseed(0.3);
         CREATE TABLE bits_t (id int, code bit(96));
         INSERT INTO bits_t SELECT i, (SELECT string_agg(CASE WHEN random() < 0.5 THEN '1' ELSE '0' END, '')
                                       FROM generate_series(1, 96) WHERE i > 0)::bit(96)
         FROM generate_series(1, 3000) i;
         CREATE INDEX ON bits_t USING hannoy (code varbit_hamming_ops);
         SET enable_seqscan = off; SET hannoy.ef_search = 1000;");
    let query = "SELECT id, code <~> (SELECT code FROM bits_t WHERE id = 42) FROM bits_t \
                 ORDER BY code <~> (SELECT code FROM bits_t WHERE id = 42) LIMIT 100";
    assert!(explain(query).contains("Index Scan using bits_t_code_idx"));
    let index_distances = distances(query);
    run("SET enable_indexscan = off; SET enable_seqscan = on");
    assert_eq!(index_distances, distances(query));
    assert_eq!(index_distances[0], 0.0);
}

#[pg_test]
fn recall_at_10_is_at_least_0_98_on_10k_rows_at_default_settings() {
    clustered_table("recall_t", 10_000, 64, 50, 0.6, 0.21);
    run("CREATE INDEX recall_t_idx ON recall_t USING hannoy (embedding real_l2_ops)");
    assert_eq!(
        one_i64("SELECT items FROM hannoy_index_info('recall_t_idx')"),
        10_000
    );
    assert_eq!(
        one_i64(
            "SELECT (sound AND heap_rows = 10000 AND heap_rows_missing = 0 AND reachable = 10000)::int::int8
             FROM hannoy_index_check('recall_t_idx')"
        ),
        1
    );
    let mut found = 0;
    let queries: Vec<i32> = (0..100).map(|i| 1 + i * 99).collect();
    for &q in &queries {
        let query = format!(
            "SELECT id FROM recall_t ORDER BY embedding <-> \
             (SELECT array_agg(e + 0.05::real ORDER BY o) FROM recall_t, unnest(embedding) WITH ORDINALITY u(e, o) WHERE id = {q}) LIMIT 10"
        );
        // A Seq Scan and a Sort would score 1.0: the index must be what answers.
        assert!(explain(&query).contains("Index Scan using recall_t_idx"), "{}", explain(&query));
        let approximate = ids(&query);
        run("SET enable_indexscan = off");
        let exact = ids(&query);
        run("SET enable_indexscan = on");
        assert_eq!(exact.len(), 10);
        found += approximate.iter().filter(|id| exact.contains(id)).count();
    }
    let recall = found as f64 / (10 * queries.len()) as f64;
    // Lowest over 20 builds (two threads, 100 queries): 0.997.
    assert!(recall >= 0.98, "recall@10 = {recall}");
}

#[pg_test]
fn a_scan_streams_past_ef_search_and_fills_limits_behind_filters() {
    clustered_table("stream_t", 2_000, 24, 10, 0.5, 0.31);
    run("CREATE INDEX ON stream_t USING hannoy (embedding);
         SET enable_seqscan = off; SET hannoy.ef_search = 10;");
    let q = "(SELECT embedding FROM stream_t WHERE id = 5)";
    let query = format!("SELECT id, embedding <-> {q} FROM stream_t ORDER BY embedding <-> {q} LIMIT 500");
    assert!(explain(&query).contains("Index Scan"));
    let d = distances(&query);
    assert_eq!(d.len(), 500);
    // Rows come in batches of ef_search, each in exact order; a late find may come a batch
    // early. The rows themselves are the right ones: compare with the exact top 500.
    for batch in d.chunks(10) {
        assert!(batch.windows(2).all(|w| w[0] <= w[1]), "{batch:?}");
    }
    let streamed = ids(&query);
    run("SET enable_indexscan = off; SET enable_seqscan = on");
    let exact = ids(&query);
    run("SET enable_indexscan = on; SET enable_seqscan = off");
    let found = streamed.iter().filter(|id| exact.contains(id)).count();
    assert!(found >= 475, "recall@500 at ef_search 10: {found}/500");
    run("SET hannoy.ef_search = 40");
    for probe in [1, 77, 1500] {
        let top = format!(
            "SELECT id, embedding <-> (SELECT embedding FROM stream_t WHERE id = {probe}) FROM stream_t \
             ORDER BY embedding <-> (SELECT embedding FROM stream_t WHERE id = {probe}) LIMIT 40"
        );
        let d = distances(&top);
        assert!(d.windows(2).all(|w| w[0] <= w[1]), "query {probe}: {d:?}");
    }
    run("SET hannoy.ef_search = 10");

    let all = format!("SELECT id FROM stream_t ORDER BY embedding <-> {q} LIMIT 5000");
    let mut every = ids(&all);
    every.sort_unstable();
    assert_eq!(every, (1..=2_000).collect::<Vec<_>>());

    // A condition the index does not hold: the scan keeps going until the LIMIT is full.
    let filtered = format!(
        "SELECT id FROM stream_t WHERE id % 20 = 0 ORDER BY embedding <-> {q} LIMIT 60"
    );
    assert!(explain(&filtered).contains("Index Scan"));
    let rows = ids(&filtered);
    assert_eq!(rows.len(), 60);
    assert!(rows.iter().all(|id| id % 20 == 0));

    // The scan bound stops it early.
    run("SET hannoy.max_scan_tuples = 100");
    assert_eq!(ids(&all).len(), 100);
}

#[pg_test]
fn the_planner_uses_the_index_only_for_order_by_distance() {
    clustered_table("plan_t", 10_000, 32, 20, 0.5, 0.41);
    run("CREATE INDEX plan_t_idx ON plan_t USING hannoy (embedding); ANALYZE plan_t;");
    let q = "'{0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1,0,0}'";
    let ordered = format!("SELECT id FROM plan_t ORDER BY embedding <-> {q} LIMIT 10");
    assert!(explain(&ordered).contains("Index Scan using plan_t_idx"), "{}", explain(&ordered));
    // Not for other orders or plain filters, even with sequential scans discouraged.
    run("SET enable_seqscan = off");
    for query in [
        "SELECT id FROM plan_t WHERE id < 10".to_string(),
        "SELECT count(*) FROM plan_t".to_string(),
        format!("SELECT id FROM plan_t ORDER BY embedding <=> {q} LIMIT 10"),
    ] {
        assert!(!explain(&query).contains("plan_t_idx"), "{query}: {}", explain(&query));
    }
}

#[pg_test]
fn an_index_on_an_empty_table_fixes_dimensions_at_the_first_insert() {
    run("CREATE TABLE empty_t (id int, embedding real[]);
         CREATE INDEX empty_t_idx ON empty_t USING hannoy (embedding real_cosine_ops);
         SET enable_seqscan = off;");
    assert!(ids("SELECT id FROM empty_t ORDER BY embedding <=> '{1,2,3}' LIMIT 5").is_empty());
    run("INSERT INTO empty_t VALUES (1, '{1,2,3}'), (2, '{3,2,1}'), (3, NULL), (4, '{1,2,2.9}')");
    assert_eq!(
        ids("SELECT id FROM empty_t ORDER BY embedding <=> '{1,2,3}' LIMIT 5"),
        vec![1, 4, 2]
    );
    assert_eq!(one_i64("SELECT dimensions::bigint FROM hannoy_index_info('empty_t_idx')"), 3);
}

#[pg_test]
fn each_index_scan_counts_once_in_idx_scan_and_its_rows_in_idx_tup_read() {
    clustered_table("stats_t", 2_000, 16, 10, 0.4, 0.23);
    run("CREATE INDEX stats_t_idx ON stats_t USING hannoy (embedding real_l2_ops);
         SET enable_seqscan = off;");
    // This transaction's counts, which pg_stat_user_indexes receives when it ends.
    let counts = || {
        Spi::get_two::<i64, i64>(
            "SELECT pg_stat_get_xact_numscans('stats_t_idx'::regclass),
                    pg_stat_get_xact_tuples_returned('stats_t_idx'::regclass)",
        )
        .map(|(scans, rows)| (scans.unwrap(), rows.unwrap()))
        .unwrap()
    };
    let (scans_before, rows_before) = counts();
    let query = |id: i32, limit: usize| {
        format!(
            "SELECT id FROM stats_t ORDER BY embedding <-> \
             (SELECT embedding FROM stats_t WHERE id = {id}) LIMIT {limit}"
        )
    };
    assert!(explain(&query(1, 5)).contains("Index Scan using stats_t_idx"));
    for (id, limit) in [(1, 5), (2, 7), (3, 11)] {
        assert_eq!(ids(&query(id, limit)).len(), limit);
    }
    let (scans_after, rows_after) = counts();
    assert_eq!(scans_after - scans_before, 3);
    assert_eq!(rows_after - rows_before, 5 + 7 + 11);
}

#[pg_test]
fn hannoy_last_scan_counts_the_rows_and_distances_of_a_scan() {
    clustered_table("last_t", 2_000, 16, 10, 0.5, 0.53);
    run("CREATE INDEX ON last_t USING hannoy (embedding); SET enable_seqscan = off;");
    let q = "(SELECT embedding FROM last_t WHERE id = 5)";
    let figures = |ef: i32, limit: usize| {
        run(&format!("SET hannoy.ef_search = {ef}"));
        let got = ids(&format!("SELECT id FROM last_t ORDER BY embedding <-> {q} LIMIT {limit}"));
        let (rows, distances) =
            Spi::get_two::<i64, i64>("SELECT rows, distances FROM hannoy_last_scan()").unwrap();
        assert_eq!(rows, Some(got.len() as i64), "rows at ef_search {ef}, LIMIT {limit}");
        distances.unwrap()
    };
    let at_40 = figures(40, 10);
    assert!((40..2_000).contains(&at_40), "distances at ef_search 40: {at_40}");
    let at_400 = figures(400, 10);
    assert!(at_400 > at_40, "ef_search 400: {at_400}, 40: {at_40}");
    // Rows in the pending list are scored one distance each, beside the same walk.
    run("INSERT INTO last_t SELECT id + 10000, embedding FROM last_t WHERE id <= 30");
    assert_eq!(figures(40, 10), at_40 + 30);
    // A scan drained to its end scores every row once.
    assert_eq!(figures(40, 5_000), 2_030, "a drained scan");
}

#[pg_test]
fn a_partitioned_table_is_searched_by_a_merge_append_of_its_partitions_indexes() {
    run("CREATE TABLE parts (id int, category int, embedding real[]) PARTITION BY RANGE (id);
         CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (1000);
         CREATE TABLE parts_2 PARTITION OF parts FOR VALUES FROM (1000) TO (2000);
         CREATE TABLE parts_3 PARTITION OF parts FOR VALUES FROM (2000) TO (3000);
         CREATE TABLE parts_4 PARTITION OF parts FOR VALUES FROM (3000) TO (4000);");
    clustered_table("parts_source", 4_999, 16, 10, 0.5, 0.61);
    run("INSERT INTO parts SELECT id, id % 7, embedding FROM parts_source WHERE id < 4000;
         CREATE INDEX parts_idx ON parts USING hannoy (embedding, category);
         CREATE TABLE parts_5 (id int, category int, embedding real[]);
         INSERT INTO parts_5 SELECT id, id % 7, embedding FROM parts_source WHERE id >= 4000;
         ALTER TABLE parts ATTACH PARTITION parts_5 FOR VALUES FROM (4000) TO (5000);
         ANALYZE parts;");
    let q = "(SELECT embedding FROM parts_source WHERE id = 17)";
    let query = format!("SELECT id FROM parts ORDER BY embedding <-> {q} LIMIT 10");
    let plan = explain(&query);
    assert!(plan.contains("Merge Append"), "{plan}");
    assert_eq!(plan.matches("Index Scan using").count(), 5, "{plan}");
    run("SET hannoy.ef_search = 400");
    let indexed = ids(&query);
    run("SET enable_indexscan = off");
    let exact = ids(&query);
    run("SET enable_indexscan = on");
    assert_eq!(indexed, exact);
    let filtered = format!("SELECT id FROM parts WHERE category = 3 ORDER BY embedding <-> {q} LIMIT 10");
    let plan = explain(&filtered);
    assert!(plan.contains("Merge Append") && plan.contains("Index Cond"), "{plan}");
    let rows = ids(&filtered);
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|id| id % 7 == 3));
    // The partition key prunes partitions.
    let pruned = explain(&format!("SELECT id FROM parts WHERE id < 1000 ORDER BY embedding <-> {q} LIMIT 10"));
    assert_eq!(pruned.matches("Index Scan using").count(), 1, "{pruned}");
}
