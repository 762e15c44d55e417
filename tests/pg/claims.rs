// What the README says, each claim with a test: settings' defaults and bounds, the default
// operator class for bit and varbit, varchar filter columns, zero vectors, the superuser-only
// orphan function, VACUUM's figures and the automatic orphan sweep.

#[pg_test]
fn settings_have_the_documented_defaults_and_bounds() {
    // The settings exist once the library is loaded; an operator call loads it.
    run("SELECT '{1}'::real[] <-> '{1}'::real[]");
    let show = |name: &str| Spi::get_one::<String>(&format!("SHOW {name}")).unwrap().unwrap();
    assert_eq!(show("hannoy.ef_search"), "100");
    assert_eq!(show("hannoy.max_scan_tuples"), "20000");
    assert_eq!(show("hannoy.pending_list_limit"), "1MB");
    assert_eq!(show("hannoy.rerank"), "0");
    for (setting, refused, accepted) in [
        ("hannoy.ef_search", ["0", "1001"], ["1", "1000"]),
        ("hannoy.rerank", ["-1", "1001"], ["0", "1000"]),
        ("hannoy.max_scan_tuples", ["0", "-1"], ["1", "2147483647"]),
        ("hannoy.pending_list_limit", ["'63kB'", "0"], ["'64kB'", "'1GB'"]),
    ] {
        for value in refused {
            assert_eq!(sqlstate_of(&format!("SET {setting} = {value}")), "22023", "{setting} = {value}");
        }
        for value in accepted {
            assert_eq!(sqlstate_of(&format!("SET {setting} = {value}")), "ok", "{setting} = {value}");
        }
    }
}

#[pg_test]
fn bit_and_varbit_columns_take_varbit_hamming_ops_by_default() {
    run("SELECT setseed(0.7);
         CREATE TABLE codes_t (id int, fixed bit(64), varying varbit);
         INSERT INTO codes_t SELECT i, c::bit(64), c::varbit
         FROM (SELECT i, (SELECT string_agg(CASE WHEN random() < 0.5 THEN '1' ELSE '0' END, '')
                          FROM generate_series(1, 64) WHERE i > 0) AS c
               FROM generate_series(1, 500) i) s;
         CREATE INDEX codes_fixed_idx ON codes_t USING hannoy (fixed);
         CREATE INDEX codes_varying_idx ON codes_t USING hannoy (varying);
         SET enable_seqscan = off; SET hannoy.ef_search = 1000");
    for index in ["codes_fixed_idx", "codes_varying_idx"] {
        let opclass = Spi::get_one::<String>(&format!(
            "SELECT o.opcname::text FROM pg_index i JOIN pg_opclass o ON o.oid = i.indclass[0]
             WHERE i.indexrelid = '{index}'::regclass"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(opclass, "varbit_hamming_ops", "{index}");
    }
    for column in ["fixed", "varying"] {
        let query = format!(
            "SELECT id, {column} <~> (SELECT {column} FROM codes_t WHERE id = 9) FROM codes_t
             ORDER BY {column} <~> (SELECT {column} FROM codes_t WHERE id = 9) LIMIT 20"
        );
        assert!(explain(&query).contains(&format!("Index Scan using codes_{column}_idx")));
        let indexed = distances(&query);
        run("SET enable_indexscan = off; SET enable_seqscan = on");
        assert_eq!(indexed, distances(&query), "{column}");
        run("SET enable_indexscan = on; SET enable_seqscan = off");
        assert_eq!(indexed[0], 0.0);
    }
}

#[pg_test]
fn varchar_columns_are_filter_columns() {
    clustered_table("vc_t", 2_000, 8, 10, 0.4, 0.8);
    run("ALTER TABLE vc_t ADD COLUMN tag varchar(8);
         UPDATE vc_t SET tag = (ARRAY['red', 'green', 'blue'])[1 + id % 3];
         CREATE INDEX vc_idx ON vc_t USING hannoy (embedding, tag);
         SET enable_seqscan = off; SET hannoy.ef_search = 1000");
    let query = "SELECT id FROM vc_t WHERE tag = 'green'
                 ORDER BY embedding <-> (SELECT embedding FROM vc_t WHERE id = 5) LIMIT 10";
    let plan = explain(query);
    assert!(plan.contains("Index Scan using vc_idx") && plan.contains("Index Cond"), "{plan}");
    let indexed = ids(query);
    run("SET enable_indexscan = off; SET enable_seqscan = on");
    assert_eq!(indexed, ids(query));
    assert!(indexed.iter().all(|id| id % 3 == 1), "{indexed:?}");
}

#[pg_test]
fn a_zero_vector_is_indexed_except_under_cosine() {
    run("CREATE TABLE zero_t (id int, embedding real[]);
         INSERT INTO zero_t VALUES (1, '{1,2,3}'), (2, '{3,2,1}');
         CREATE INDEX zero_l2 ON zero_t USING hannoy (embedding real_l2_ops);
         CREATE INDEX zero_ip ON zero_t USING hannoy (embedding real_ip_ops);
         CREATE INDEX zero_l1 ON zero_t USING hannoy (embedding real_l1_ops)");
    assert_eq!(sqlstate_of("INSERT INTO zero_t VALUES (3, '{0,0,0}')"), "ok");
    run("SET enable_seqscan = off");
    assert_eq!(
        ids("SELECT id FROM zero_t ORDER BY embedding <-> '{0,0,0.1}' LIMIT 1"),
        vec![3]
    );
    run("CREATE TABLE zero_cos (id int, embedding real[]);
         CREATE INDEX ON zero_cos USING hannoy (embedding real_cosine_ops)");
    assert_eq!(sqlstate_of("INSERT INTO zero_cos VALUES (1, '{0,0,0}')"), "22000");
}

#[pg_test]
fn a_build_links_in_batches_sized_by_maintenance_work_mem() {
    clustered_table("mwm_t", 5_000, 128, 20, 0.3, 0.6);
    run("SET maintenance_work_mem = '1MB';
         CREATE INDEX mwm_small ON mwm_t USING hannoy (embedding);
         RESET maintenance_work_mem;
         CREATE INDEX mwm_large ON mwm_t USING hannoy (embedding)");
    let figures = |index: &str| {
        Spi::get_two::<i64, i64>(&format!(
            "SELECT items, changes FROM hannoy_index_info('{index}')"
        ))
        .unwrap()
    };
    // A batch costs 512 + 512 / 8 (its vectors, written ahead) + 136 (the byte copy its
    // searches read) + 64 x 16 + 200 = 1,936 bytes a vector: 1MB holds 541 of them, so 5,000
    // rows link in 10 batches, each one change of the storage; 64MB holds them all.
    assert_eq!(figures("mwm_small"), (Some(5_000), Some(10)));
    assert_eq!(figures("mwm_large"), (Some(5_000), Some(1)));
}

#[pg_test]
fn reading_rows_stored_out_of_line_keeps_no_copy_of_them() {
    // 640 elements are 2,560 bytes, stored out of line (EXTERNAL: not compressed either), so
    // reading a row's vector copies it back; copies kept for 2,000 rows would be 5 MB. The
    // index's filter column, an expression Postgres evaluates for each row read, samples the
    // memory of every context every 200 rows into a sequence (a build rolls back settings its
    // expressions change; a sequence's value stays).
    run("CREATE TABLE ool (id int, embedding real[]);
         ALTER TABLE ool ALTER embedding SET STORAGE EXTERNAL;
         INSERT INTO ool SELECT i, (SELECT array_agg(sin(i * d)::real) FROM generate_series(1, 640) d)
         FROM generate_series(1, 2000) i;
         CREATE SEQUENCE memory_peak;
         CREATE FUNCTION memory_probe(id int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$
         BEGIN
           IF id % 200 = 0 THEN
             PERFORM setval('memory_peak', greatest((SELECT last_value FROM memory_peak),
               (SELECT sum(total_bytes) FROM pg_backend_memory_contexts)::int8));
           END IF;
           RETURN id;
         END $$;");
    let peak_of = |statement: &str| {
        run("SELECT setval('memory_peak', 1)");
        run(statement);
        one_i64("SELECT last_value FROM memory_peak")
    };
    let before = peak_of("SELECT memory_probe(200)");
    let build = peak_of(
        "CREATE INDEX ool_idx ON ool USING hannoy (embedding real_l2_ops, (memory_probe(id)))",
    );
    // The rows stay in the pending list, which a debug build merges slowly.
    run("SET hannoy.pending_list_limit = '64MB'");
    let insert = peak_of("INSERT INTO ool SELECT id + 2000, embedding FROM ool");
    // Copies kept per row pass several MB by the last sample; what the statement holds
    // besides stays far under one.
    for (what, peak) in [("build", build), ("insert", insert)] {
        assert!(before > 1 && peak > 1, "the probe ran: {before}, {peak}");
        assert!(
            peak - before < 1 << 20,
            "the {what} held {} bytes more than before it",
            peak - before
        );
    }
    // Row 1,777 and its copy, 3,777, are at distance 0 from its vector.
    let mut nearest = ids("SELECT id FROM ool
                           ORDER BY embedding <-> (SELECT embedding FROM ool WHERE id = 1777) LIMIT 2");
    nearest.sort_unstable();
    assert_eq!(nearest, vec![1777, 3777]);
}

#[pg_test]
fn orphaned_storage_is_for_superusers_only() {
    run("CREATE ROLE hannoy_not_super; SET ROLE hannoy_not_super");
    assert_eq!(sqlstate_of("SELECT hannoy_orphaned_storage()"), "42501");
    assert_eq!(sqlstate_of("SELECT hannoy_orphaned_storage(true)"), "42501");
    run("RESET ROLE");
}

#[cfg(test)]
mod claims_committed {
    use std::path::Path;

    use super::committed::{connect_like, session_in_own_database};

    #[test]
    fn vacuum_reports_the_index_rows_and_pages_to_pg_class() {
        let mut client = session_in_own_database("hannoy_figures");
        client
            .batch_execute(
                "CREATE TABLE vf (id int, embedding real[]);
                 INSERT INTO vf SELECT i, ARRAY[sin(i), cos(i), sin(2 * i), cos(3 * i)]::real[]
                 FROM generate_series(1, 3000) i;
                 CREATE INDEX vf_idx ON vf USING hannoy (embedding);
                 DELETE FROM vf WHERE id % 3 = 0;",
            )
            .unwrap();
        client.batch_execute("VACUUM vf").unwrap();
        let row = client
            .query_one(
                "SELECT c.reltuples::int8, c.relpages::int8,
                        pg_relation_size('vf_idx') / 8192,
                        (SELECT size_bytes FROM hannoy_index_info('vf_idx')) / 8192
                 FROM pg_class c WHERE c.oid = 'vf_idx'::regclass",
                &[],
            )
            .unwrap();
        let (tuples, pages, relation, folder): (i64, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        assert_eq!(tuples, 2_000);
        // The relation's own pages and the folder's, in 8 kB pages.
        assert_eq!(pages, relation + folder, "{pages} pages: {relation} + {folder}");
        assert!(folder > 0);
    }

    #[test]
    fn a_build_sweeps_folders_no_index_uses() {
        let mut client = session_in_own_database("hannoy_sweep");
        client
            .batch_execute(
                "CREATE TABLE sw (id int, embedding real[]);
                 INSERT INTO sw SELECT i, ARRAY[sin(i), cos(i)]::real[] FROM generate_series(1, 100) i;
                 CREATE INDEX sw_idx ON sw USING hannoy (embedding);",
            )
            .unwrap();
        let data: String = client.query_one("SHOW data_directory", &[]).unwrap().get(0);
        let storage: String = client
            .query_one("SELECT storage FROM hannoy_index_info('sw_idx')", &[])
            .unwrap()
            .get(0);
        let database_dir = Path::new(&data)
            .join(storage)
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .to_path_buf();
        // What a crash between a drop's commit and its deletion leaves: a folder of no index.
        let orphan = database_dir.join("4000000001").join("00000000000000aa");
        std::fs::create_dir_all(&orphan).unwrap();
        let chown = std::process::Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(orphan.parent().unwrap())
            .status()
            .unwrap();
        assert!(chown.success());
        let mut other = connect_like(&mut client);
        other.batch_execute("BEGIN; CREATE INDEX sw_idx2 ON sw USING hannoy (embedding)").unwrap();
        assert!(orphan.exists(), "swept before the build committed");
        other.batch_execute("COMMIT").unwrap();
        assert!(!orphan.parent().unwrap().exists(), "the build's commit swept the orphan");
    }

    #[test]
    fn a_build_shows_each_pass_of_each_batch_in_pg_stat_progress_create_index() {
        let mut client = session_in_own_database("hannoy_progress");
        client
            .batch_execute(
                "CREATE TABLE prog_t (id int, embedding real[]);
                 INSERT INTO prog_t SELECT i, (SELECT array_agg(random()::real) FROM generate_series(1, 256 + 0 * i))
                 FROM generate_series(1, 30000) i;",
            )
            .unwrap();
        let mut watcher = connect_like(&mut client);
        let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
        // 16MB holds 5,127 of these vectors a batch (2 x 1,024 + 64 x 16 + 200 = 3,272 bytes
        // each): six batches, five linked into the index built so far.
        let build = std::thread::spawn(move || {
            client
                .batch_execute(
                    "SET maintenance_work_mem = '16MB';
                     CREATE INDEX prog_idx ON prog_t USING hannoy (embedding)",
                )
                .unwrap();
        });
        let mut seen: Vec<(String, i64)> = Vec::new();
        while !build.is_finished() {
            let rows = watcher
                .query(
                    "SELECT phase, tuples_done FROM pg_stat_progress_create_index WHERE pid = $1",
                    &[&pid],
                )
                .unwrap();
            seen.extend(rows.iter().map(|row| (row.get(0), row.get(1))));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        build.join().unwrap();
        let phases: std::collections::BTreeSet<&str> =
            seen.iter().map(|(phase, _)| phase.as_str()).collect();
        // Postgres prefixes the access method's phase names with its own.
        for phase in ["building a batch's graph", "searching the index for a batch's links"] {
            let shown = format!("building index: {phase}");
            assert!(phases.contains(shown.as_str()), "{shown:?} never shown: {phases:?}");
        }
        let done: Vec<i64> = seen.iter().map(|(_, done)| *done).collect();
        assert!(
            done.windows(2).all(|w| w[0] <= w[1]) && done.iter().all(|&d| d <= 30_000),
            "tuples_done went {done:?}"
        );
        // Rows count while the index is searched for their links, not only once a batch ends.
        let searching = "building index: searching the index for a batch's links";
        assert!(
            seen.iter()
                .any(|(phase, done)| phase == searching && done % 5_127 != 0 && *done > 0),
            "no progress inside a batch's search: {seen:?}"
        );
    }
}
