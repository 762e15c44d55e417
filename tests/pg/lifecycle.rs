// Storage folders follow the index through commit and rollback: DROP removes the folder at
// commit, a rolled-back CREATE INDEX leaves none, REINDEX and TRUNCATE give fresh storage.
// Commits cannot happen inside a #[pg_test] (its transaction is rolled back), so the commit
// tests drive their own connection from the test process.

fn storage(index: &str) -> String {
    Spi::get_one::<String>(&format!("SELECT storage FROM hannoy_index_info('{index}')"))
        .unwrap()
        .unwrap()
}

#[pg_test]
fn a_rolled_back_create_index_leaves_no_folder() {
    clustered_table("rollback_t", 200, 8, 4, 0.3, 0.5);
    // The failing block is a subtransaction: its folder must go when it aborts.
    run("CREATE TABLE rollback_seen (path text);
         DO $$ BEGIN
             CREATE INDEX rollback_idx ON rollback_t USING hannoy (embedding);
             INSERT INTO rollback_seen SELECT storage FROM hannoy_index_info('rollback_idx');
             RAISE EXCEPTION 'roll back';
         EXCEPTION WHEN OTHERS THEN NULL; END $$;");
    assert_eq!(one_i64("SELECT count(*) FROM rollback_seen"), 0);
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
                 SELECT storage INTO p FROM hannoy_index_info('doomed_idx');
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

/// Makes sure the test cluster is up before a test connects on its own.
#[pg_test]
fn lifecycle_cluster_ready() {}

#[cfg(test)]
mod committed {
    use std::path::Path;

    fn session() -> postgres::Client {
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
            .query_one(&format!("SELECT storage FROM hannoy_index_info('{index}')"), &[])
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
        client.batch_execute("DISCARD ALL").ok();
        let mut other = session();
        other.batch_execute("SET enable_seqscan = off").unwrap();
        let err = other
            .query("SELECT id FROM re_t ORDER BY embedding <-> '{1,1,1,1}' LIMIT 1", &[])
            .unwrap_err();
        let db = err.as_db_error().expect("a database error");
        assert_eq!(db.code().code(), "XX002", "{}", db.message());
        assert!(db.hint().unwrap_or_default().contains("REINDEX"));
        std::fs::rename(format!("{dir}.moved"), &dir).unwrap();
        other.batch_execute("DROP TABLE re_t").unwrap();
    }
}
