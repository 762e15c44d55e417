// The folder never answers for an index it does not match, and nothing outside Postgres's
// lifecycle (copies, templates, concurrent drops, idle pooled backends) breaks it.

#[pg_test]
fn options_are_validated_at_create_index_on_an_empty_table() {
    run("CREATE TABLE opt_empty (id int, embedding real[])");
    assert_eq!(
        sqlstate_of(
            "CREATE INDEX ON opt_empty USING hannoy (embedding) WITH (m = 100, ef_construction = 64)"
        ),
        "22023"
    );
    run("CREATE INDEX opt_empty_idx ON opt_empty USING hannoy (embedding) WITH (m = 16)");
    assert_eq!(
        sqlstate_of("ALTER INDEX opt_empty_idx SET (ef_construction = 20)"),
        "22023"
    );
    assert_eq!(
        sqlstate_of("ALTER INDEX opt_empty_idx SET (ef_construction = 32)"),
        "ok"
    );
}

#[pg_test]
fn index_figures_need_select_on_the_table_and_show_no_absolute_path() {
    clustered_table("priv_t", 300, 4, 3, 0.2, 0.3);
    run("CREATE INDEX priv_idx ON priv_t USING hannoy (embedding);
         CREATE ROLE hannoy_nobody;
         GRANT USAGE ON SCHEMA public TO hannoy_nobody;
         SET ROLE hannoy_nobody");
    assert_eq!(sqlstate_of("SELECT * FROM hannoy_index_info('priv_idx')"), "42501");
    assert_eq!(sqlstate_of("SELECT * FROM hannoy_index_check('priv_idx')"), "42501");
    run("RESET ROLE; GRANT SELECT ON priv_t TO hannoy_nobody; SET ROLE hannoy_nobody");
    let storage = Spi::get_one::<String>("SELECT storage FROM hannoy_index_info('priv_idx')")
        .unwrap()
        .unwrap();
    assert!(storage.starts_with("hannoy/"), "{storage}");
    let items = one_i64("SELECT items FROM hannoy_index_info('priv_idx')");
    assert_eq!(items, 300);
    run("RESET ROLE");
}

#[pg_test]
fn the_check_counts_only_the_rows_the_index_should_hold() {
    clustered_table("chk_parent", 400, 4, 3, 0.2, 0.4);
    run("CREATE TABLE chk_child () INHERITS (chk_parent);
         INSERT INTO chk_child SELECT id + 1000, embedding FROM chk_parent;
         CREATE INDEX chk_idx ON chk_parent USING hannoy (embedding);
         CREATE INDEX chk_partial ON chk_parent USING hannoy (embedding) WHERE id % 4 = 0");
    let row = |index: &str| {
        Spi::get_two::<bool, i64>(&format!(
            "SELECT sound, heap_rows FROM hannoy_index_check('{index}')"
        ))
        .unwrap()
    };
    // The children's 400 rows are not the parent's index's to hold.
    assert_eq!(row("chk_idx"), (Some(true), Some(400)));
    assert_eq!(row("chk_partial"), (Some(true), Some(100)));
    assert_eq!(one_i64("SELECT items FROM hannoy_index_info('chk_partial')"), 100);
}

#[cfg(test)]
mod identity_committed {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use super::committed::{connect_like, connect_to, session, session_in_own_database};

    fn data_directory(client: &mut postgres::Client) -> PathBuf {
        let dir: String = client
            .query_one("SELECT current_setting('data_directory')", &[])
            .unwrap()
            .get(0);
        PathBuf::from(dir)
    }

    /// The absolute path of `index`'s current storage folder.
    fn folder(client: &mut postgres::Client, index: &str) -> PathBuf {
        let relative: String = client
            .query_one(&format!("SELECT storage FROM hannoy_index_info('{index}')"), &[])
            .unwrap()
            .get(0);
        data_directory(client).join(relative)
    }

    /// A copy of a folder's data file, taken while nothing writes to it (LMDB's file is
    /// consistent between commits).
    fn copy_of(dir: &Path) -> Vec<u8> {
        std::fs::read(dir.join("data.mdb")).unwrap()
    }

    /// Puts `data` back as the folder's only file, as a file-level restore does: a new file,
    /// owned by the server's user.
    fn restore(dir: &Path, data: &[u8]) {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("data.mdb"), data).unwrap();
        let chown = std::process::Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.parent().unwrap().parent().unwrap())
            .status()
            .unwrap();
        assert!(chown.success());
    }

    /// The ids `query` returns, with a candidate list wide enough that the index answers
    /// exactly on these small tables: what is compared here is which folder answers, not recall.
    fn ids(client: &mut postgres::Client, query: &str) -> Result<Vec<i32>, postgres::Error> {
        client.batch_execute("SET hannoy.ef_search = 1000")?;
        Ok(client
            .query(query, &[])?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }

    /// The SQLSTATE and message of a failing query.
    fn refusal(client: &mut postgres::Client, query: &str) -> (String, String) {
        let error = client.query(query, &[]).expect_err(query);
        let db = error.as_db_error().unwrap_or_else(|| panic!("{query}: {error}"));
        let text = format!("{} {}", db.message(), db.hint().unwrap_or(""));
        (db.code().code().to_string(), text)
    }

    fn assert_refused(client: &mut postgres::Client, query: &str, index: &str, why: &str) {
        let (code, text) = refusal(client, query);
        assert_eq!(code, "XX002", "{text}");
        assert!(text.contains(why), "{text}");
        assert!(text.contains(&format!("REINDEX INDEX public.{index}")), "{text}");
    }

    /// The exact answer, by a sequential scan.
    fn exact(client: &mut postgres::Client, query: &str) -> Vec<i32> {
        client
            .batch_execute("SET enable_indexscan = off; SET enable_bitmapscan = off")
            .unwrap();
        let exact = ids(client, query).unwrap();
        client
            .batch_execute("RESET enable_indexscan; RESET enable_bitmapscan")
            .unwrap();
        exact
    }

    fn sound(client: &mut postgres::Client, index: &str) -> bool {
        client
            .query_one(&format!("SELECT sound FROM hannoy_index_check('{index}')"), &[])
            .unwrap()
            .get(0)
    }

    /// Runs each `;`-separated statement on its own: VACUUM refuses to share a query string.
    fn each(client: &mut postgres::Client, statements: &str) {
        for statement in statements.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            client
                .batch_execute(statement)
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    }

    /// Dead tuples left in `table`'s heap, as pgstattuple counts them.
    fn dead_tuples(client: &mut postgres::Client, table: &str) -> i64 {
        client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
            .unwrap();
        client
            .query_one(&format!("SELECT dead_tuple_count FROM pgstattuple('{table}')"), &[])
            .unwrap()
            .get(0)
    }

    fn table(client: &mut postgres::Client, table: &str, rows: i32) {
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {table};
                 CREATE TABLE {table} (id int, cat int, embedding real[]);
                 INSERT INTO {table} SELECT i, i % 3,
                     ARRAY[sin(i), cos(i), sin(2 * i), cos(3 * i)]::real[]
                 FROM generate_series(1, {rows}) i;
                 CREATE INDEX {table}_idx ON {table} USING hannoy (embedding, cat);"
            ))
            .unwrap();
    }

    #[test]
    fn a_restored_older_folder_is_refused_until_reindex_and_vacuum_goes_on() {
        let mut client = session_in_own_database("hannoy_stale");
        table(&mut client, "st", 3000);
        let dir = folder(&mut client, "st_idx");
        let old = copy_of(&dir);
        // The issue's sequence: new rows, deletes whose TIDs the next rows reuse.
        each(
            &mut client,
            "INSERT INTO st SELECT i, 3, ARRAY[1 + sin(i) / 9, 1, 1, 1]::real[]
                 FROM generate_series(3001, 6200) i;
             VACUUM st;
             DELETE FROM st WHERE id <= 500;
             VACUUM st;
             INSERT INTO st SELECT i, 5, ARRAY[-1, -1, -1, -1 - i / 1e5]::real[]
                 FROM generate_series(6201, 6700) i;
             VACUUM st;",
        );
        let query = "SELECT id FROM st WHERE cat = 3 ORDER BY embedding <-> '{1,1,1,1}' LIMIT 10";
        let expected = exact(&mut client, query);
        assert_eq!(expected.len(), 10);
        assert_eq!(ids(&mut client, query).unwrap(), expected);

        restore(&dir, &old);
        assert_refused(&mut client, query, "st_idx", "older than the index");
        let mut fresh = connect_like(&mut client);
        assert_refused(&mut fresh, query, "st_idx", "older than the index");
        // VACUUM cleans the heap without the index and sets it aside; inserts go on.
        client.batch_execute("DELETE FROM st WHERE id % 7 = 0").unwrap();
        assert!(dead_tuples(&mut client, "st") > 0);
        client.batch_execute("VACUUM st").unwrap();
        assert_eq!(dead_tuples(&mut client, "st"), 0);
        client
            .batch_execute("INSERT INTO st SELECT i, 3, ARRAY[1, 1, 1, 1 + (i - 7000) / 1e3]::real[] FROM generate_series(7001, 7050) i")
            .unwrap();
        assert_refused(&mut client, query, "st_idx", "marked as needing a rebuild");
        client.batch_execute("REINDEX INDEX st_idx").unwrap();
        let expected = exact(&mut client, query);
        assert_eq!(ids(&mut client, query).unwrap(), expected);
        assert!(sound(&mut client, "st_idx"));
    }

    #[test]
    fn a_truncated_data_file_is_refused_without_a_crash() {
        let mut client = session_in_own_database("hannoy_torn");
        table(&mut client, "tt", 3000);
        let dir = folder(&mut client, "tt_idx");
        let bytes = copy_of(&dir);
        // A new, shorter file (a torn copy), not a truncation of the file the server maps.
        restore(&dir, &bytes[..bytes.len() / 2]);
        let query = "SELECT id FROM tt ORDER BY embedding <-> '{1,1,1,1}' LIMIT 10";
        assert_refused(&mut client, query, "tt_idx", "cannot be read");
        let one: i32 = client.query_one("SELECT 1", &[]).unwrap().get(0);
        assert_eq!(one, 1);
        client.batch_execute("VACUUM tt").unwrap();
        client.batch_execute("REINDEX INDEX tt_idx").unwrap();
        let expected = exact(&mut client, query);
        assert_eq!(ids(&mut client, query).unwrap(), expected);
    }

    #[test]
    fn a_missing_folder_is_refused_and_autovacuum_and_vacuum_still_clean_the_heap() {
        let mut client = session_in_own_database("hannoy_missing");
        table(&mut client, "mt", 3000);
        let dir = folder(&mut client, "mt_idx");
        std::fs::remove_dir_all(&dir).unwrap();
        let query = "SELECT id FROM mt ORDER BY embedding <-> '{1,1,1,1}' LIMIT 10";
        assert_refused(&mut client, query, "mt_idx", "folder is missing");

        // Autovacuum first: a worker that meets the missing folder must still clean the heap.
        client
            .batch_execute(
                "ALTER TABLE mt SET (autovacuum_vacuum_threshold = 0,
                                     autovacuum_vacuum_scale_factor = 0);
                 DELETE FROM mt WHERE id % 2 = 0",
            )
            .unwrap();
        assert_eq!(dead_tuples(&mut client, "mt"), 1500);
        each(
            &mut client,
            "ALTER SYSTEM SET autovacuum_naptime = '1s'; SELECT pg_reload_conf()",
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let autovacuumed = loop {
            let done: bool = client
                .query_one(
                    "SELECT last_autovacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'mt'",
                    &[],
                )
                .unwrap()
                .get(0);
            if done || Instant::now() > deadline {
                break done;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        each(
            &mut client,
            "ALTER SYSTEM RESET autovacuum_naptime; SELECT pg_reload_conf()",
        );
        assert!(autovacuumed, "no autovacuum of mt within a minute");
        assert_eq!(dead_tuples(&mut client, "mt"), 0);
        assert_refused(&mut client, query, "mt_idx", "marked as needing a rebuild");
        // No more autovacuum or autoanalyze of mt: one running would hold a snapshot that
        // keeps the next DELETE's rows from the manual VACUUM below.
        client
            .batch_execute("ALTER TABLE mt SET (autovacuum_enabled = off)")
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let busy: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE backend_type = 'autovacuum worker' AND datname = current_database()",
                    &[],
                )
                .unwrap()
                .get(0);
            if busy == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "an autovacuum worker stays");
            std::thread::sleep(Duration::from_millis(100));
        }

        client.batch_execute("DELETE FROM mt WHERE id % 3 = 0").unwrap();
        assert_eq!(dead_tuples(&mut client, "mt"), 500);
        client.batch_execute("VACUUM mt").unwrap();
        assert_eq!(dead_tuples(&mut client, "mt"), 0);
        client.batch_execute("REINDEX INDEX mt_idx").unwrap();
        let expected = exact(&mut client, query);
        assert_eq!(ids(&mut client, query).unwrap(), expected);
        assert!(sound(&mut client, "mt_idx"));
    }

    fn wait_for_no_sessions(shared: &mut postgres::Client, database: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let n: i64 = shared
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                    &[&database],
                )
                .unwrap()
                .get(0);
            if n == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "sessions stay in {database}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Where `index` of the connected database keeps the storage named `name`.
    fn folder_in(client: &mut postgres::Client, index: &str, name: &str) -> PathBuf {
        let (database, oid): (String, String) = {
            let row = client
                .query_one(
                    &format!(
                        "SELECT (SELECT oid FROM pg_database WHERE datname = current_database())::text,
                                '{index}'::regclass::oid::text"
                    ),
                    &[],
                )
                .unwrap();
            (row.get(0), row.get(1))
        };
        data_directory(client)
            .join("hannoy")
            .join(database)
            .join(oid)
            .join(name)
    }

    #[test]
    fn template_copies_are_refused_and_a_newer_folder_too_but_an_equal_copy_serves() {
        let mut source = session_in_own_database("hannoy_tpl_src");
        table(&mut source, "tp", 3000);
        let dir = folder(&mut source, "tp_idx");
        let name = dir.file_name().unwrap().to_owned();
        let same = copy_of(&dir);
        drop(source);
        let mut shared = session();
        wait_for_no_sessions(&mut shared, "hannoy_tpl_src");
        for copy in ["hannoy_tpl_copy", "hannoy_tpl_ahead"] {
            each(
                &mut shared,
                &format!("DROP DATABASE IF EXISTS {copy}; CREATE DATABASE {copy} TEMPLATE hannoy_tpl_src"),
            );
        }
        let query = "SELECT id FROM tp ORDER BY embedding <-> '{1,1,1,1}' LIMIT 10";

        // CREATE DATABASE ... TEMPLATE copies the relation, not the folder.
        let mut copy = connect_to(&mut shared, "hannoy_tpl_copy");
        assert_refused(&mut copy, query, "tp_idx", "folder is missing");
        each(&mut copy, "DELETE FROM tp WHERE id % 2 = 0; VACUUM tp");
        assert_eq!(dead_tuples(&mut copy, "tp"), 0);
        copy.batch_execute("REINDEX INDEX tp_idx").unwrap();
        let expected = exact(&mut copy, query);
        assert_eq!(ids(&mut copy, query).unwrap(), expected);

        // The source moves on; its newer folder does not fit the copy's older relation.
        let mut source = connect_to(&mut shared, "hannoy_tpl_src");
        each(&mut source, "DELETE FROM tp WHERE id % 5 = 0; VACUUM tp");
        let newer = copy_of(&dir);
        drop(source);
        let mut ahead = connect_to(&mut shared, "hannoy_tpl_ahead");
        let target = folder_in(&mut ahead, "tp_idx", name.to_str().unwrap());
        restore(&target, &newer);
        assert_refused(&mut ahead, query, "tp_idx", "newer than the index");
        // The folder as it was when the relation was copied is the relation's own.
        restore(&target, &same);
        let expected = exact(&mut ahead, query);
        assert_eq!(ids(&mut ahead, query).unwrap(), expected);
        assert!(sound(&mut ahead, "tp_idx"));
        drop((copy, ahead));
        for database in ["hannoy_tpl_copy", "hannoy_tpl_ahead", "hannoy_tpl_src"] {
            wait_for_no_sessions(&mut shared, database);
            shared
                .batch_execute(&format!("DROP DATABASE {database}"))
                .unwrap();
        }
    }

    #[test]
    fn drop_index_concurrently_keeps_the_folder_until_the_index_is_gone() {
        let mut dropper = session_in_own_database("hannoy_dic");
        table(&mut dropper, "dc", 3000);
        dropper
            .batch_execute("CREATE INDEX dc_idx2 ON dc USING hannoy (embedding)")
            .unwrap();
        let query = "SELECT id FROM dc ORDER BY embedding <-> '{1,1,1,1}' LIMIT 10";
        // The dropping session has used the index (its library and hooks are loaded).
        ids(&mut dropper, query).unwrap();
        let dir = folder(&mut dropper, "dc_idx");
        let dir2 = folder(&mut dropper, "dc_idx2");
        dropper.batch_execute("DROP INDEX dc_idx2").unwrap();
        assert!(!dir2.exists());
        let pid: i32 = dropper.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);

        let mut reader = connect_like(&mut dropper);
        let mut writer = connect_like(&mut dropper);
        reader
            .batch_execute(
                "SET enable_seqscan = off;
                 BEGIN ISOLATION LEVEL REPEATABLE READ;
                 DECLARE c CURSOR FOR SELECT id FROM dc ORDER BY embedding <-> '{0.3,0.2,0.1,0}';
                 FETCH 5 FROM c;",
            )
            .unwrap();
        let drop = std::thread::spawn(move || {
            let result = dropper.batch_execute("DROP INDEX CONCURRENTLY dc_idx");
            (dropper, result)
        });
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!drop.is_finished(), "the drop waits for the reader");
        assert!(dir.join("data.mdb").exists(), "folder gone while the index is in use");
        writer
            .batch_execute(
                "INSERT INTO dc SELECT i, 1, ARRAY[0.3, 0.2, 0.1, i / 1e4]::real[] FROM generate_series(5001, 6000) i",
            )
            .unwrap();
        let fetched = reader.query("FETCH 2000 FROM c", &[]).unwrap().len();
        assert_eq!(fetched, 2000, "the open scan streams on");
        assert!(dir.join("data.mdb").exists());
        reader.batch_execute("COMMIT").unwrap();
        let (mut dropper, result) = drop.join().unwrap();
        result.unwrap();
        assert!(!dir.exists(), "the folder goes with the index");

        // A cancelled DROP INDEX CONCURRENTLY leaves the index and its folder.
        dropper
            .batch_execute("CREATE INDEX dc_idx ON dc USING hannoy (embedding, cat)")
            .unwrap();
        ids(&mut dropper, query).unwrap();
        let dir = folder(&mut dropper, "dc_idx");
        reader
            .batch_execute("BEGIN; SELECT count(*) FROM dc;")
            .unwrap();
        let drop = std::thread::spawn(move || {
            let result = dropper.batch_execute("DROP INDEX CONCURRENTLY dc_idx");
            (dropper, result)
        });
        std::thread::sleep(Duration::from_millis(1000));
        writer
            .query_one("SELECT pg_cancel_backend($1)", &[&pid])
            .unwrap();
        let (mut dropper, result) = drop.join().unwrap();
        let error = result.expect_err("the drop was cancelled");
        assert_eq!(error.code().map(|c| c.code()), Some("57014"), "{error}");
        reader.batch_execute("COMMIT").unwrap();
        assert!(dir.join("data.mdb").exists(), "a cancelled drop took the folder");
        // Left invalid by the cancel, as any index: REINDEX makes it whole again.
        dropper.batch_execute("REINDEX INDEX dc_idx").unwrap();
        let expected = exact(&mut dropper, query);
        dropper.batch_execute("SET enable_seqscan = off").unwrap();
        assert_eq!(ids(&mut dropper, query).unwrap(), expected);
        assert!(sound(&mut dropper, "dc_idx"));
    }

    fn deleted_hannoy_files(pid: i32) -> usize {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.unwrap().path()).ok())
            .filter(|target| {
                let target = target.to_string_lossy();
                target.contains("/hannoy/") && target.ends_with("(deleted)")
            })
            .count()
    }

    #[test]
    fn pooled_backends_let_go_of_deleted_folders_and_keep_no_threads() {
        let mut client = session_in_own_database("hannoy_pool");
        table(&mut client, "pl", 3000);
        table(&mut client, "other", 300);
        let query = "SELECT id FROM pl ORDER BY embedding <-> '{1,1,1,1}' LIMIT 10";
        let mut pooled = connect_like(&mut client);
        ids(&mut pooled, query).unwrap();
        let pid: i32 = pooled.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
        for _ in 0..3 {
            client.batch_execute("REINDEX INDEX pl_idx").unwrap();
        }
        // Its next use of any hannoy index closes what the REINDEXes deleted.
        ids(&mut pooled, "SELECT id FROM other ORDER BY embedding <-> '{1,1,1,1}' LIMIT 1").unwrap();
        assert_eq!(deleted_hannoy_files(pid), 0);
        ids(&mut pooled, query).unwrap();
        assert_eq!(deleted_hannoy_files(pid), 0);

        // Backends that each ran a merge keep no worker thread once idle.
        let mut idle = Vec::new();
        for i in 0..20 {
            let mut backend = connect_like(&mut client);
            backend
                .batch_execute(&format!(
                    "INSERT INTO pl SELECT i, 1, ARRAY[{i}, 1, 1, i]::real[] FROM generate_series(1, 20) i;
                     SELECT items FROM hannoy_index_info('pl_idx');"
                ))
                .unwrap();
            let pid: i32 = backend.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
            idle.push((backend, pid));
        }
        let threads = |pid: i32| std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().count();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut counts: Vec<usize> = idle.iter().map(|(_, pid)| threads(*pid)).collect();
        while counts.iter().any(|&n| n != 1) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            counts = idle.iter().map(|(_, pid)| threads(*pid)).collect();
        }
        assert!(counts.iter().all(|&n| n == 1), "threads per idle backend: {counts:?}");
        assert!(sound(&mut client, "pl_idx"));
    }

    #[test]
    fn rolled_back_rows_are_left_out_of_merges_and_free_their_dimension_count() {
        let mut client = session_in_own_database("hannoy_dims");
        each(
            &mut client,
            "CREATE TABLE dm (id int, embedding real[]);
             CREATE INDEX dm_idx ON dm USING hannoy (embedding);
             BEGIN;
             INSERT INTO dm SELECT i, ARRAY[i, 1, 1]::real[] FROM generate_series(1, 100) i;
             ROLLBACK;
             VACUUM dm",
        );
        let items: i64 = client
            .query_one("SELECT items FROM hannoy_index_info('dm_idx')", &[])
            .unwrap()
            .get(0);
        assert_eq!(items, 0, "rolled-back rows were linked");
        each(
            &mut client,
            "INSERT INTO dm SELECT i, ARRAY[i, 1, 1, 1, 1]::real[] FROM generate_series(1, 50) i;
             VACUUM dm",
        );
        let row = client
            .query_one("SELECT items, dimensions FROM hannoy_index_info('dm_idx')", &[])
            .unwrap();
        assert_eq!((row.get::<_, i64>(0), row.get::<_, Option<i32>>(1)), (50, Some(5)));
        assert!(sound(&mut client, "dm_idx"));
    }

    #[test]
    fn a_long_pending_list_is_merged_in_rounds_and_its_pages_are_reused() {
        let mut client = session_in_own_database("hannoy_list");
        // 128 dimensions: 25,000 rows fill about 1,700 list pages.
        client
            .batch_execute(
                "CREATE TABLE ls (id int, embedding real[]);
                 INSERT INTO ls SELECT i, array_fill(1::real, ARRAY[128]) FROM generate_series(1, 10) i;
                 CREATE INDEX ls_idx ON ls USING hannoy (embedding);
                 SET hannoy.pending_list_limit = '64MB';
                 SET maintenance_work_mem = '1MB';",
            )
            .unwrap();
        let mut sizes = Vec::new();
        for round in 0..3 {
            let first = round * 25_000 + 11;
            client
                .batch_execute(&format!(
                    "INSERT INTO ls SELECT i, ARRAY(SELECT sin(i * d)::real FROM generate_series(1, 128) d)
                     FROM generate_series({first}, {first} + 24999) i"
                ))
                .unwrap();
            let pages: i64 = client
                .query_one("SELECT pg_relation_size('ls_idx') / 8192", &[])
                .unwrap()
                .get(0);
            // Merged in rounds of at most 1MB of entries (maintenance_work_mem / 4).
            let items: i64 = client
                .query_one("SELECT items FROM hannoy_index_info('ls_idx')", &[])
                .unwrap()
                .get(0);
            assert_eq!(items, 10 + 25_000 * (round as i64 + 1));
            sizes.push(pages);
        }
        assert!(sizes[0] > 1_500, "{sizes:?}");
        // Every page the first list took is reused by the next two.
        assert_eq!(sizes[1], sizes[0], "{sizes:?}");
        assert_eq!(sizes[2], sizes[0], "{sizes:?}");
        let check = |client: &mut postgres::Client| -> String {
            client
                .query_one("SELECT row_to_json(c)::text FROM hannoy_index_check('ls_idx') c", &[])
                .unwrap()
                .get(0)
        };
        let merged = check(&mut client);
        assert!(merged.contains(r#""heap_rows_missing":0"#), "{merged}");
        // Pruning during merges may cut a few items off until the next reconnect pass, which
        // VACUUM runs (see the README's VACUUM section).
        client.batch_execute("VACUUM ls").unwrap();
        let vacuumed = check(&mut client);
        assert!(vacuumed.contains(r#""sound":true"#), "{vacuumed}");
    }

    #[test]
    fn a_folder_of_another_index_is_refused() {
        let mut client = session_in_own_database("hannoy_foreign");
        table(&mut client, "fa", 3000);
        table(&mut client, "fb", 3000);
        let (a, b) = (folder(&mut client, "fa_idx"), folder(&mut client, "fb_idx"));
        // Same rows, same number of changes: only the storage id tells them apart.
        restore(&a, &copy_of(&b));
        let query = "SELECT id FROM fa ORDER BY embedding <-> '{1,1,1,1}' LIMIT 10";
        assert_refused(&mut client, query, "fa_idx", "belongs to another index");
        let other = "SELECT id FROM fb ORDER BY embedding <-> '{1,1,1,1}' LIMIT 10";
        let expected = exact(&mut client, other);
        assert_eq!(ids(&mut client, other).unwrap(), expected);
    }

    #[test]
    fn a_merge_waiting_for_a_long_vacuum_honours_statement_timeout() {
        let mut client = session_in_own_database("hannoy_wait");
        // The VACUUM first merges 30,000 pending rows, holding the write lock throughout.
        client
            .batch_execute(
                "CREATE TABLE wv (id int, embedding real[]);
                 INSERT INTO wv SELECT i, ARRAY(SELECT sin(i * d)::real FROM generate_series(1, 64) d)
                 FROM generate_series(1, 5000) i;
                 CREATE INDEX wv_idx ON wv USING hannoy (embedding);
                 SET hannoy.pending_list_limit = '64MB';
                 INSERT INTO wv SELECT i, ARRAY(SELECT cos(i * d)::real FROM generate_series(1, 64) d)
                 FROM generate_series(5001, 35000) i;
                 DELETE FROM wv WHERE id % 2 = 0;",
            )
            .unwrap();
        let mut vacuum = connect_like(&mut client);
        vacuum
            .batch_execute("SET hannoy.trace_phases = on")
            .unwrap();
        let pid: i32 = vacuum.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
        let started = Instant::now();
        let vacuuming = std::thread::spawn(move || {
            vacuum.batch_execute("VACUUM wv").unwrap();
            Instant::now()
        });
        // Wait until the VACUUM holds the write lock, merging (hannoy.trace_phases shows it).
        loop {
            let step: Option<String> = client
                .query_one("SELECT application_name FROM pg_stat_activity WHERE pid = $1", &[&pid])
                .unwrap()
                .get(0);
            if step.as_deref() == Some("hannoy: merge") {
                break;
            }
            assert!(!vacuuming.is_finished(), "the VACUUM ended before it was seen merging");
            assert!(started.elapsed() < Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(5));
        }
        // Inserts never wait for it: their list is over its limit, so each tries to merge, finds
        // the write lock taken and goes on.
        let mut inserter = connect_like(&mut client);
        inserter
            .batch_execute("SET hannoy.pending_list_limit = '64kB'; SET statement_timeout = '5s'")
            .unwrap();
        let mut inserts = 0;
        // Each attempt has rows to merge, so it needs the write lock the VACUUM's deletes hold.
        let mut timed_out = 0;
        let mut longest = Duration::ZERO;
        while !vacuuming.is_finished() {
            let insert = inserter.batch_execute(
                "INSERT INTO wv SELECT 0, array_fill(2::real, ARRAY[64]) FROM generate_series(1, 200)",
            );
            match insert {
                Ok(()) => inserts += 1,
                // Once the VACUUM is over, an insert takes the lock and merges the whole list
                // that built up meanwhile, which a debug build may not finish in 5 s: work, not
                // a wait. A timeout while the VACUUM still runs is a wait, and fails.
                Err(e) if vacuuming.is_finished() => {
                    assert_eq!(e.code().map(|c| c.code()), Some("57014"), "{e}");
                    break;
                }
                Err(e) => panic!("an insert failed while the VACUUM ran: {e}"),
            }
            client
                .batch_execute(
                    "RESET statement_timeout;
                     INSERT INTO wv SELECT 0, array_fill(1::real, ARRAY[64]) FROM generate_series(1, 10);
                     SET hannoy.pending_list_limit = '64MB';
                     SET statement_timeout = '200ms'",
                )
                .unwrap();
            let attempt = Instant::now();
            let result = client.batch_execute("SELECT items FROM hannoy_index_info('wv_idx')");
            longest = longest.max(attempt.elapsed());
            match result {
                Ok(()) => {}
                Err(e) => {
                    assert_eq!(e.code().map(|c| c.code()), Some("57014"), "{e}");
                    timed_out += 1;
                }
            }
        }
        let vacuumed = vacuuming.join().unwrap().duration_since(started);
        client.batch_execute("RESET statement_timeout").unwrap();
        assert!(vacuumed > Duration::from_secs(1), "VACUUM took only {vacuumed:?}");
        assert!(timed_out > 0, "no merge waited for the VACUUM ({vacuumed:?})");
        assert!(inserts > 0);
        assert!(longest < Duration::from_millis(1500), "a wait outlived its timeout: {longest:?}");
        assert!(sound(&mut client, "wv_idx"));
    }

    #[test]
    fn a_scan_a_merge_and_a_vacuum_can_be_cancelled_and_leave_the_index_whole() {
        let mut client = session_in_own_database("hannoy_cancel");
        client
            .batch_execute(
                "CREATE TABLE cx (id int, note text, embedding real[]);
                 INSERT INTO cx SELECT i, 'x', ARRAY(SELECT sin(i * d)::real FROM generate_series(1, 64) d)
                 FROM generate_series(1, 20000) i;
                 CREATE INDEX cx_idx ON cx USING hannoy (embedding);
                 SET hannoy.pending_list_limit = '64MB';
                 INSERT INTO cx SELECT i, 'x', ARRAY(SELECT cos(i * d)::real FROM generate_series(1, 64) d)
                 FROM generate_series(20001, 50000) i;",
            )
            .unwrap();
        let cancelled = |client: &mut postgres::Client, statement: &str| {
            client.batch_execute("SET statement_timeout = '30ms'").unwrap();
            let result = client.batch_execute(statement);
            client.batch_execute("RESET statement_timeout").unwrap();
            let error = result.expect_err(statement);
            assert_eq!(error.code().map(|c| c.code()), Some("57014"), "{statement}: {error}");
        };
        // A merge of 30,000 rows, inside the engine's linking.
        cancelled(&mut client, "SELECT items FROM hannoy_index_info('cx_idx')");
        // A scan that streams every row past a condition the index does not hold.
        client
            .batch_execute("SET hannoy.max_scan_tuples = 2147483647; SET enable_seqscan = off")
            .unwrap();
        cancelled(
            &mut client,
            "SELECT id FROM cx WHERE note = 'y' ORDER BY embedding <-> array_fill(0::real, ARRAY[64]) LIMIT 1",
        );
        // A VACUUM, whose merge comes first.
        client.batch_execute("DELETE FROM cx WHERE id % 2 = 0").unwrap();
        cancelled(&mut client, "VACUUM cx");
        // Nothing was lost: every row is found and the graph is whole once VACUUM completes.
        client.batch_execute("VACUUM cx").unwrap();
        assert!(sound(&mut client, "cx_idx"));
        let items: i64 = client
            .query_one("SELECT items FROM hannoy_index_info('cx_idx')", &[])
            .unwrap()
            .get(0);
        assert_eq!(items, 25_000);
    }
}

#[pg_test]
fn a_rolled_back_first_insert_does_not_fix_the_dimension_count() {
    run("CREATE TABLE dims_t (id int, embedding real[]);
         CREATE INDEX dims_idx ON dims_t USING hannoy (embedding)");
    run("DO $$ BEGIN
             INSERT INTO dims_t VALUES (1, '{1,2,3}');
             RAISE EXCEPTION 'roll back';
         EXCEPTION WHEN raise_exception THEN NULL; END $$");
    assert_eq!(sqlstate_of("INSERT INTO dims_t VALUES (2, '{1,2,3,4,5}')"), "ok");
    // Now a row that may commit has fixed it.
    assert_eq!(sqlstate_of("INSERT INTO dims_t VALUES (3, '{1,2,3}')"), "22000");
    run("SET enable_seqscan = off");
    assert_eq!(
        ids("SELECT id FROM dims_t ORDER BY embedding <-> '{0,0,0,0,0}' LIMIT 5"),
        vec![2]
    );
}

#[pg_test]
fn the_check_counts_rows_without_items_and_items_without_rows() {
    clustered_table("dmg_t", 500, 4, 3, 0.2, 0.5);
    // One thread, so the graph is the same on every run: what is damaged here is the heap
    // mapping, and a parallel build's rare unreachable item would make `sound` false first.
    run("SET max_parallel_maintenance_workers = 0;
         CREATE INDEX dmg_idx ON dmg_t USING hannoy (embedding)");
    let check = || {
        Spi::get_three::<bool, i64, i64>(
            "SELECT sound, heap_rows_missing, stray_items FROM hannoy_index_check('dmg_idx')",
        )
        .unwrap()
    };
    assert_eq!(check(), (Some(true), Some(0), Some(0)));
    let dropped = one_i64(
        "SELECT count(*) FILTER (WHERE hannoy_test_drop_item('dmg_idx',
             (((ctid::text::point)[0])::int8 << 16) | ((ctid::text::point)[1])::int8))
         FROM dmg_t WHERE id IN (7, 8)",
    );
    assert_eq!(dropped, 2);
    assert_eq!(check(), (Some(false), Some(2), Some(0)));
    // Deleted rows keep their items until VACUUM: stray, not unsound.
    run("DELETE FROM dmg_t WHERE id IN (20, 21, 22)");
    assert_eq!(check(), (Some(false), Some(2), Some(3)));
}

#[pg_test]
fn a_row_both_in_a_folder_rebuilt_from_the_heap_and_in_the_pending_list_is_given_once() {
    // A base backup's folder rebuilt from the heap can hold a row whose pending entry came
    // after the point the rebuild started from (its heap insert came before): the scan gives it
    // once, from the list, ordered and unordered.
    clustered_table("both_t", 300, 16, 10, 0.2, 0.27);
    run("CREATE INDEX both_idx ON both_t USING hannoy (embedding)");
    run("INSERT INTO both_t
           SELECT id + 1000, array(SELECT x + 0.01 FROM unnest(embedding) x)::real[]
           FROM both_t WHERE id <= 20");
    let oid = Spi::get_one::<pg_sys::Oid>("SELECT 'both_idx'::regclass::oid")
        .unwrap()
        .unwrap();
    // SAFETY: the index exists; it is opened and closed here under a lock a scan takes too.
    unsafe {
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        let index = pg_sys::index_open(oid, lock);
        crate::am::rebuild::rebuild_before_last_entries(index, 20);
        pg_sys::index_close(index, lock);
    }
    run("SET enable_seqscan = off; SET hannoy.ef_search = 400");
    let q = "(SELECT embedding FROM both_t WHERE id = 1007)";
    let query = format!("SELECT id FROM both_t ORDER BY embedding <-> {q} LIMIT 1000");
    assert!(explain(&query).contains("Index Scan"));
    let streamed = ids(&query);
    assert_eq!(streamed.len(), 320, "every row once");
    let mut distinct = streamed.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 320);
    run("SET enable_indexscan = off; SET enable_seqscan = on");
    let exact = ids(&query);
    run("SET enable_indexscan = on; SET enable_seqscan = off");
    assert_eq!(streamed[..10], exact[..10]);
    let null_query =
        "SELECT id FROM both_t ORDER BY embedding <-> (SELECT NULL::real[]) LIMIT 1000";
    assert!(explain(null_query).contains("Index Scan"));
    let unordered = ids(null_query);
    assert_eq!(unordered.len(), 320, "every row once, for a NULL query");
}
