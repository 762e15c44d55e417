// Storage folders follow the index through commit and rollback: DROP removes the folder at
// commit, a rolled-back CREATE INDEX leaves none, REINDEX and TRUNCATE give fresh storage.
// Commits cannot happen inside a #[pg_test] (its transaction is rolled back), so the commit
// tests drive their own connection from the test process.

fn storage(index: &str) -> String {
    Spi::get_one::<String>(&format!("SELECT current_setting('data_directory') || '/' || storage FROM hannoy_index_info('{index}')"))
        .unwrap()
        .unwrap()
}

#[pg_test]
fn a_rolled_back_create_index_leaves_no_folder() {
    clustered_table("rollback_t", 200, 8, 4, 0.3, 0.5);
    // Keep the path across the abort by creating, reading and then aborting separately.
    run("CREATE INDEX kept_idx ON rollback_t USING hannoy (embedding)");
    let kept = storage("kept_idx");
    assert!(std::path::Path::new(&kept).is_dir());
    let path: String = Spi::get_one::<String>(
        "CREATE OR REPLACE FUNCTION pg_temp.build_and_fail() RETURNS text LANGUAGE plpgsql AS $$
         DECLARE p text;
         BEGIN
             BEGIN
                 CREATE INDEX doomed_idx ON rollback_t USING hannoy (embedding);
                 SELECT current_setting('data_directory') || '/' || storage INTO p FROM hannoy_index_info('doomed_idx');
                 RAISE EXCEPTION USING MESSAGE = p;
             EXCEPTION WHEN OTHERS THEN RETURN SQLERRM; END;
         END $$;
         SELECT pg_temp.build_and_fail()",
    )
    .unwrap()
    .unwrap();
    assert!(path.contains("/hannoy/"), "{path}");
    assert!(!std::path::Path::new(&path).exists(), "{path} survived the rollback");
    assert!(std::path::Path::new(&kept).is_dir());
}

/// Makes sure the test cluster is up, with the extension installed, before a test connects on
/// its own.
#[pg_test]
fn lifecycle_cluster_ready() {
    assert_eq!(
        one_i64("SELECT count(*) FROM pg_extension WHERE extname = 'hannoy_pg'"),
        1
    );
}

#[cfg(test)]
mod committed {
    use std::path::Path;

    pub(super) fn session() -> postgres::Client {
        pgrx_tests::run_test(
            "lifecycle_cluster_ready",
            None,
            crate::pg_test::postgresql_conf_options(),
        )
        .expect("cluster");
        pgrx_tests::client().expect("connection").0
    }

    fn storage(client: &mut postgres::Client, index: &str) -> String {
        client
            .query_one(&format!("SELECT current_setting('data_directory') || '/' || storage FROM hannoy_index_info('{index}')"), &[])
            .unwrap()
            .get(0)
    }

    fn nearest(client: &mut postgres::Client, table: &str) -> Vec<i32> {
        client
            .query(
                &format!(
                    "SELECT id FROM {table} ORDER BY embedding <-> '{{0.5,0.5,0.5,0.5}}' LIMIT 5"
                ),
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    fn setup(client: &mut postgres::Client, table: &str) {
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {table};
                 CREATE TABLE {table} (id int, embedding real[]);
                 INSERT INTO {table} SELECT i, ARRAY[sin(i), cos(i), sin(2 * i), cos(3 * i)]::real[]
                 FROM generate_series(1, 3000) i;
                 CREATE INDEX {table}_idx ON {table} USING hannoy (embedding);"
            ))
            .unwrap();
    }

    #[test]
    fn drop_index_and_drop_table_remove_the_folder_at_commit() {
        let mut client = session();
        setup(&mut client, "drop_t");
        let dir = storage(&mut client, "drop_t_idx");
        let index_dir = Path::new(&dir).parent().unwrap().to_path_buf();
        assert!(Path::new(&dir).is_dir());

        // Dropped in a transaction that rolls back: kept.
        client
            .batch_execute("BEGIN; DROP INDEX drop_t_idx; ROLLBACK;")
            .unwrap();
        assert!(Path::new(&dir).is_dir());
        assert_eq!(nearest(&mut client, "drop_t").len(), 5);

        client.batch_execute("DROP INDEX drop_t_idx").unwrap();
        assert!(!index_dir.exists(), "{} survived DROP INDEX", index_dir.display());

        client
            .batch_execute("CREATE INDEX drop_t_idx ON drop_t USING hannoy (embedding)")
            .unwrap();
        let dir = storage(&mut client, "drop_t_idx");
        client.batch_execute("DROP TABLE drop_t").unwrap();
        assert!(!Path::new(&dir).exists(), "{dir} survived DROP TABLE");
    }

    #[test]
    fn a_cancelled_build_stops_early_and_leaves_no_folder() {
        let mut client = session();
        client
            .batch_execute(
                "DROP TABLE IF EXISTS cancel_t;
                 CREATE TABLE cancel_t (id int, embedding real[]);
                 INSERT INTO cancel_t SELECT i, (SELECT array_agg(random()::real) FROM generate_series(1, 64 + 0 * i))
                 FROM generate_series(1, 20000) i;",
            )
            .unwrap();
        // The whole build, timed on this machine as it is loaded now, is the yardstick: a
        // wall-clock bound would fail on a slow or busy machine.
        let started = std::time::Instant::now();
        client
            .batch_execute("CREATE INDEX cancel_idx ON cancel_t USING hannoy (embedding); DROP INDEX cancel_idx")
            .unwrap();
        let whole = started.elapsed();
        let timeout = (whole.as_millis() / 10).max(50);
        client
            .batch_execute(&format!("SET statement_timeout = {timeout}"))
            .unwrap();
        let started = std::time::Instant::now();
        let err = client
            .batch_execute("CREATE INDEX cancel_idx ON cancel_t USING hannoy (embedding)")
            .unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(err.as_db_error().expect("a database error").code().code(), "57014");
        // A build that only noticed the cancel once done would take the whole time; the build
        // polls between items, so it stops soon after the timeout at a tenth of it.
        assert!(
            elapsed < whole / 2,
            "cancelled after {elapsed:?}, timeout {timeout} ms, whole build {whole:?}"
        );
        client
            .batch_execute("SET statement_timeout = 0")
            .unwrap();
        let database: u32 = client
            .query_one("SELECT oid FROM pg_database WHERE datname = current_database()", &[])
            .unwrap()
            .get(0);
        let data: String = client.query_one("SHOW data_directory", &[]).unwrap().get(0);
        // Every folder of this database holds a live index: none was left by the cancelled one.
        let live: Vec<u32> = client
            .query("SELECT oid FROM pg_class WHERE relam = (SELECT oid FROM pg_am WHERE amname = 'hannoy')", &[])
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let root = Path::new(&data).join("hannoy").join(database.to_string());
        // No folder at all for this database is the one case with nothing to look at.
        let entries = match std::fs::read_dir(&root) {
            Ok(entries) => entries.map(|entry| entry.unwrap()).collect::<Vec<_>>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("{}: {e}", root.display()),
        };
        for entry in entries {
            let oid: u32 = entry.file_name().to_string_lossy().parse().unwrap();
            assert!(
                live.contains(&oid)
                    || oid_in_other_test(&mut client, oid)
                    || !entry.path().exists(),
                "folder {} has no index",
                entry.path().display()
            );
        }
        client.batch_execute("DROP TABLE cancel_t").unwrap();
    }

    /// Other tests run at the same time and build indexes in transactions this session cannot
    /// see yet; an OID not yet visible in pg_class but locked by someone belongs to them.
    fn oid_in_other_test(client: &mut postgres::Client, oid: u32) -> bool {
        client
            .query_one("SELECT count(*) FROM pg_locks WHERE relation = $1::int8::oid", &[&(oid as i64)])
            .map(|row| row.get::<_, i64>(0) > 0)
            .unwrap_or(false)
    }

    #[test]
    fn storage_follows_set_tablespace_vacuum_full_and_truncate_in_the_creating_transaction() {
        let mut client = session();
        setup(&mut client, "move_t");
        client.batch_execute("SET enable_seqscan = off").unwrap();
        let before = nearest(&mut client, "move_t");

        // SET TABLESPACE copies the metapage, and with it the storage id: same folder.
        let location = format!("/tmp/hannoy_ts_{}", std::process::id());
        std::fs::create_dir_all(&location).unwrap();
        let chown = std::process::Command::new("chown")
            .args(["postgres:postgres", &location])
            .status()
            .unwrap();
        assert!(chown.success());
        // Tablespace commands refuse to run in a transaction block: one statement per call.
        client.batch_execute("DROP TABLESPACE IF EXISTS hannoy_ts").unwrap();
        client
            .batch_execute(&format!("CREATE TABLESPACE hannoy_ts LOCATION '{location}'"))
            .unwrap();
        let dir = storage(&mut client, "move_t_idx");
        client
            .batch_execute("ALTER INDEX move_t_idx SET TABLESPACE hannoy_ts")
            .unwrap();
        assert_eq!(storage(&mut client, "move_t_idx"), dir);
        assert_eq!(nearest(&mut client, "move_t"), before);
        client
            .batch_execute("ALTER INDEX move_t_idx SET TABLESPACE pg_default")
            .unwrap();
        client.batch_execute("DROP TABLESPACE hannoy_ts").unwrap();
        std::fs::remove_dir_all(&location).ok();

        // VACUUM FULL rewrites the table and rebuilds the index into new storage.
        client.batch_execute("VACUUM FULL move_t").unwrap();
        let rebuilt = storage(&mut client, "move_t_idx");
        assert_ne!(rebuilt, dir);
        assert!(!Path::new(&dir).exists(), "{dir} survived VACUUM FULL");
        assert_eq!(nearest(&mut client, "move_t"), before);
        client.batch_execute("DROP TABLE move_t").unwrap();

        // A table created and truncated in one transaction keeps its relfilenode; the index is
        // rebuilt in place and must start from empty storage.
        client
            .batch_execute(
                "BEGIN;
                 CREATE TABLE same_t (id int, embedding real[]);
                 INSERT INTO same_t VALUES (1, '{1,1,1,1}'), (2, '{2,2,2,2}');
                 CREATE INDEX same_t_idx ON same_t USING hannoy (embedding);
                 TRUNCATE same_t;
                 INSERT INTO same_t VALUES (3, '{0.5,0.5,0.5,0.5}');
                 COMMIT;",
            )
            .unwrap();
        assert_eq!(nearest(&mut client, "same_t"), vec![3]);
        let items: i64 = client
            .query_one("SELECT items FROM hannoy_index_info('same_t_idx')", &[])
            .unwrap()
            .get(0);
        assert_eq!(items, 1);
        let dir = storage(&mut client, "same_t_idx");
        let generations = Path::new(&dir).parent().unwrap().read_dir().unwrap().count();
        assert_eq!(generations, 1);
        client.batch_execute("DROP TABLE same_t").unwrap();
    }

    /// A new connection, as `client`'s user and through its socket, to `database`.
    pub(super) fn connect_to(client: &mut postgres::Client, database: &str) -> postgres::Client {
        let row = client
            .query_one(
                "SELECT current_setting('unix_socket_directories'), current_setting('port'), current_user::text",
                &[],
            )
            .unwrap();
        let (socket, port, user): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        postgres::Config::new()
            .host(socket.split(',').next().unwrap().trim())
            .port(port.parse().unwrap())
            .user(&user)
            .dbname(database)
            .connect(postgres::NoTls)
            .unwrap()
    }

    /// A session in a database of its own: VACUUM only removes rows older than every snapshot
    /// in the database, and the other tests keep theirs open in the shared one.
    pub(super) fn session_in_own_database(name: &str) -> postgres::Client {
        let mut shared = session();
        shared
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        shared.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let mut client = connect_to(&mut shared, name);
        client.batch_execute("CREATE EXTENSION hannoy_pg").unwrap();
        client
    }

    /// A second connection to the same database as `client`.
    pub(super) fn connect_like(client: &mut postgres::Client) -> postgres::Client {
        let database: String = client
            .query_one("SELECT current_database()::text", &[])
            .unwrap()
            .get(0);
        connect_to(client, &database)
    }

    #[test]
    fn cluster_drop_schema_drop_extension_and_drop_database_leave_no_folder() {
        let mut client = session_in_own_database("hannoy_drops");
        client
            .batch_execute(
                "CREATE SCHEMA s;
                 SET search_path = s, public;
                 CREATE TABLE c (id int PRIMARY KEY, embedding real[]);
                 INSERT INTO c SELECT i, ARRAY[sin(i), cos(i), sin(2 * i), cos(3 * i)]::real[]
                 FROM generate_series(1, 3000) i;
                 CREATE INDEX c_idx ON c USING hannoy (embedding);
                 SET enable_seqscan = off;",
            )
            .unwrap();
        let before = nearest(&mut client, "c");
        assert_eq!(before.len(), 5);
        let dir = storage(&mut client, "c_idx");

        // CLUSTER rebuilds the index into new storage; rolled back, the old one stays.
        client
            .batch_execute("BEGIN; CLUSTER c USING c_pkey; ROLLBACK;")
            .unwrap();
        assert_eq!(storage(&mut client, "c_idx"), dir);
        assert_eq!(nearest(&mut client, "c"), before);
        client.batch_execute("CLUSTER c USING c_pkey").unwrap();
        let clustered = storage(&mut client, "c_idx");
        assert_ne!(clustered, dir);
        assert!(!Path::new(&dir).exists(), "{dir} survived CLUSTER");
        assert_eq!(nearest(&mut client, "c"), before);

        // DROP SCHEMA ... CASCADE drops the index with its table.
        client
            .batch_execute("BEGIN; DROP SCHEMA s CASCADE; ROLLBACK;")
            .unwrap();
        assert!(Path::new(&clustered).is_dir());
        assert_eq!(nearest(&mut client, "c"), before);
        client.batch_execute("DROP SCHEMA s CASCADE").unwrap();
        let index_dir = Path::new(&clustered).parent().unwrap();
        assert!(!index_dir.exists(), "{} survived DROP SCHEMA", index_dir.display());

        // DROP EXTENSION ... CASCADE drops every hannoy index of the database, event trigger
        // included, from a session that never used the extension before.
        client
            .batch_execute(
                "SET search_path = public;
                 CREATE TABLE e (id int, embedding real[]);
                 INSERT INTO e SELECT i, ARRAY[sin(i), cos(i), sin(2 * i), cos(3 * i)]::real[]
                 FROM generate_series(1, 3000) i;
                 CREATE INDEX e_idx ON e USING hannoy (embedding);",
            )
            .unwrap();
        let dir = storage(&mut client, "e_idx");
        let database_dir = Path::new(&dir).parent().unwrap().parent().unwrap().to_path_buf();
        let before = nearest(&mut client, "e");
        let mut fresh = connect_like(&mut client);
        fresh
            .batch_execute("BEGIN; DROP EXTENSION hannoy_pg CASCADE; ROLLBACK;")
            .unwrap();
        assert!(Path::new(&dir).is_dir());
        assert_eq!(nearest(&mut client, "e"), before);
        let mut fresh = connect_like(&mut client);
        fresh.batch_execute("DROP EXTENSION hannoy_pg CASCADE").unwrap();
        assert!(!database_dir.exists(), "{} survived DROP EXTENSION", database_dir.display());

        // DROP DATABASE, from a session that has used hannoy (one that never did leaves the
        // folder to the next sweep).
        fresh
            .batch_execute(
                "CREATE EXTENSION hannoy_pg;
                 CREATE INDEX e_idx ON e USING hannoy (embedding);",
            )
            .unwrap();
        assert!(database_dir.is_dir());
        drop((client, fresh));
        let mut other = session();
        other
            .batch_execute("SELECT count(*) FROM hannoy_orphaned_storage()")
            .unwrap();
        other
            .batch_execute("DROP DATABASE hannoy_drops WITH (FORCE)")
            .unwrap();
        assert!(!database_dir.exists(), "{} survived DROP DATABASE", database_dir.display());
    }

    #[test]
    fn concurrent_create_and_reindex_give_working_indexes() {
        let mut client = session();
        client
            .batch_execute(
                "DROP TABLE IF EXISTS conc_t;
                 CREATE TABLE conc_t (id int, embedding real[]);
                 INSERT INTO conc_t SELECT i, ARRAY[sin(i), cos(i), sin(2 * i), cos(3 * i)]::real[]
                 FROM generate_series(1, 3000) i;",
            )
            .unwrap();
        client
            .batch_execute("CREATE INDEX CONCURRENTLY conc_t_idx ON conc_t USING hannoy (embedding)")
            .unwrap();
        client.batch_execute("SET enable_seqscan = off").unwrap();
        let indexed = nearest(&mut client, "conc_t");
        let items: i64 = client
            .query_one("SELECT items FROM hannoy_index_info('conc_t_idx')", &[])
            .unwrap()
            .get(0);
        assert_eq!(items, 3000);
        let old_folder = Path::new(&storage(&mut client, "conc_t_idx"))
            .parent()
            .unwrap()
            .to_path_buf();
        client.batch_execute("REINDEX INDEX CONCURRENTLY conc_t_idx").unwrap();
        assert_eq!(nearest(&mut client, "conc_t"), indexed);
        // The old index is dropped without a sql_drop event; the object access hook sees it.
        assert!(!old_folder.exists(), "{} outlived its index", old_folder.display());
        client
            .batch_execute("SET enable_indexscan = off; SET enable_seqscan = on")
            .unwrap();
        assert_eq!(nearest(&mut client, "conc_t"), indexed);
        client.batch_execute("DROP TABLE conc_t").unwrap();
    }

    #[test]
    fn orphaned_folders_are_listed_and_removed_on_request() {
        let mut client = session();
        setup(&mut client, "orph_t");
        let current = storage(&mut client, "orph_t_idx");
        let index_dir = Path::new(&current).parent().unwrap().to_path_buf();
        let database_dir = index_dir.parent().unwrap().to_path_buf();
        // What a crash can leave: a folder of an index that no longer exists, and an old
        // generation next to a live index's current one.
        let gone = database_dir.join("4000000000");
        let stale = index_dir.join("00000000000000ff");
        for dir in [gone.join("00000000000000aa"), stale.clone()] {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let chown = std::process::Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&gone)
            .arg(&stale)
            .status()
            .unwrap();
        assert!(chown.success());

        let listed = |client: &mut postgres::Client, remove: bool| -> Vec<String> {
            client
                .query("SELECT current_setting('data_directory') || '/' || hannoy_orphaned_storage($1)", &[&remove])
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect()
        };
        let orphans = listed(&mut client, false);
        for dir in [&gone, &stale] {
            assert!(orphans.contains(&dir.display().to_string()), "{orphans:?}");
        }
        assert!(!orphans.contains(&current));
        assert!(gone.exists() && stale.exists(), "listing alone removes nothing");

        client.batch_execute("BEGIN").unwrap();
        listed(&mut client, true);
        client.batch_execute("ROLLBACK").unwrap();
        assert!(gone.exists() && stale.exists(), "a rolled-back removal removes nothing");

        listed(&mut client, true);
        assert!(!gone.exists() && !stale.exists());
        assert!(Path::new(&current).is_dir());
        let sound: bool = client
            .query_one("SELECT sound FROM hannoy_index_check('orph_t_idx')", &[])
            .unwrap()
            .get(0);
        assert!(sound);
        client.batch_execute("DROP TABLE orph_t").unwrap();
    }

    #[test]
    fn vacuum_removes_dead_rows_from_the_index() {
        let mut client = session_in_own_database("hannoy_vacuum_test");
        setup(&mut client, "vac_t");
        client.batch_execute("DELETE FROM vac_t WHERE id % 3 = 0").unwrap();
        client.batch_execute("VACUUM vac_t").unwrap();
        let items: i64 = client
            .query_one("SELECT items FROM hannoy_index_info('vac_t_idx')", &[])
            .unwrap()
            .get(0);
        assert_eq!(items, 2000);
        let row = client
            .query_one(
                "SELECT sound, heap_rows, heap_rows_missing, keyed FROM hannoy_index_check('vac_t_idx')",
                &[],
            )
            .unwrap();
        let (sound, heap_rows, missing, keyed): (bool, Option<i64>, Option<i64>, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        assert!(sound);
        assert_eq!((heap_rows, missing, keyed), (Some(2000), Some(0), 2000));
        client.batch_execute("SET enable_seqscan = off").unwrap();
        let rows: Vec<i32> = client
            .query(
                "SELECT id FROM vac_t ORDER BY embedding <-> '{0.5,0.5,0.5,0.5}' LIMIT 3000",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(rows.len(), 2000);
        assert!(rows.iter().all(|id| id % 3 != 0));
        // New rows reuse the freed item ids and are found.
        client
            .batch_execute("INSERT INTO vac_t VALUES (9001, '{0.5,0.5,0.5,0.51}')")
            .unwrap();
        assert_eq!(nearest(&mut client, "vac_t")[0], 9001);
        client.batch_execute("DROP TABLE vac_t").unwrap();
        drop(client);
        session()
            .batch_execute("DROP DATABASE hannoy_vacuum_test WITH (FORCE)")
            .unwrap();
    }

    #[test]
    fn a_rolled_back_create_index_leaves_no_folder_after_rollback() {
        let mut client = session();
        client
            .batch_execute(
                "DROP TABLE IF EXISTS rb_t; CREATE TABLE rb_t (id int, embedding real[]);
                 INSERT INTO rb_t SELECT i, ARRAY[i, 1]::real[] FROM generate_series(1, 100) i;",
            )
            .unwrap();
        client.batch_execute("BEGIN; CREATE INDEX rb_idx ON rb_t USING hannoy (embedding);").unwrap();
        let dir = storage(&mut client, "rb_idx");
        assert!(Path::new(&dir).is_dir());
        client.batch_execute("ROLLBACK").unwrap();
        assert!(!Path::new(&dir).exists(), "{dir} survived ROLLBACK");
        client.batch_execute("DROP TABLE rb_t").unwrap();
    }

    #[test]
    fn reindex_and_truncate_give_fresh_storage_and_correct_results() {
        let mut client = session();
        setup(&mut client, "re_t");
        client.batch_execute("SET enable_seqscan = off").unwrap();
        let before = nearest(&mut client, "re_t");
        let old = storage(&mut client, "re_t_idx");

        client.batch_execute("REINDEX INDEX re_t_idx").unwrap();
        let new = storage(&mut client, "re_t_idx");
        assert_ne!(old, new);
        assert!(!Path::new(&old).exists(), "{old} survived REINDEX");
        assert_eq!(nearest(&mut client, "re_t"), before);

        // A REINDEX that rolls back keeps the storage it replaced.
        client.batch_execute("BEGIN; REINDEX INDEX re_t_idx; ROLLBACK;").unwrap();
        assert_eq!(storage(&mut client, "re_t_idx"), new);
        assert!(Path::new(&new).is_dir());
        assert_eq!(nearest(&mut client, "re_t"), before);

        client.batch_execute("TRUNCATE re_t").unwrap();
        assert!(!Path::new(&new).exists(), "{new} survived TRUNCATE");
        assert!(nearest(&mut client, "re_t").is_empty());
        client
            .batch_execute("INSERT INTO re_t VALUES (1, '{0.5,0.5,0.5,0.4}'), (2, '{9,9,9,9}')")
            .unwrap();
        assert_eq!(nearest(&mut client, "re_t"), vec![1, 2]);

        // Storage that has gone missing is reported, not silently empty.
        let dir = storage(&mut client, "re_t_idx");
        std::fs::rename(&dir, format!("{dir}.moved")).unwrap();
        // Even a session that has the index open finds out: the folder is checked per scan.
        let err = client
            .query("SELECT id FROM re_t ORDER BY embedding <-> '{1,1,1,1}' LIMIT 1", &[])
            .unwrap_err();
        let db = err.as_db_error().expect("a database error");
        assert_eq!(db.code().code(), "XX002", "{}", db.message());
        assert!(db.hint().unwrap_or_default().contains("REINDEX"));
        std::fs::rename(format!("{dir}.moved"), &dir).unwrap();
        client.batch_execute("DROP TABLE re_t").unwrap();
    }
}
