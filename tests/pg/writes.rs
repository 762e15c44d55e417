// Writes after the build: deletes and VACUUM keep recall and reuse space; rolled-back inserts
// are never returned. VACUUM removes only rows older than every snapshot in the database, so
// each test works in a database of its own.

#[cfg(test)]
mod committed_writes {
    use super::committed::{connect_like, session, session_in_own_database};

    fn load(client: &mut postgres::Client, rows: usize) {
        client
            .batch_execute(&format!(
                "SELECT setseed(0.77);
                 CREATE TABLE w (id int, embedding real[]);
                 CREATE TEMP TABLE centres AS
                   SELECT c AS cid, array_agg((random() * 2 - 1)::real ORDER BY d) AS v
                   FROM generate_series(0, 39) c, generate_series(1, 32) d GROUP BY c;
                 INSERT INTO w
                   SELECT i, (SELECT array_agg((x + 0.5 * (2 * random() - 1))::real) FROM unnest(c.v) x)
                   FROM generate_series(1, {rows}) i JOIN centres c ON c.cid = i % 40;"
            ))
            .unwrap();
    }

    fn ids(client: &mut postgres::Client, query: &str) -> Vec<i32> {
        client
            .query(query, &[])
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// Mean recall@10 over `queries` rows' vectors, index against exact. A returned row counts
    /// when it is no farther than the exact 10th nearest, so rows at equal distance (copies)
    /// count whichever of them the index returns, as in the engine's recall helper. The plan
    /// must be the index's: a Seq Scan and a Sort would score 1.0.
    fn recall(client: &mut postgres::Client, queries: &[i32]) -> f64 {
        let mut found = 0;
        for q in queries {
            let query = format!(
                "SELECT id, embedding <-> (SELECT embedding FROM w WHERE id = {q}) FROM w
                 ORDER BY embedding <-> (SELECT embedding FROM w WHERE id = {q}) LIMIT 10"
            );
            let distances = |client: &mut postgres::Client| -> Vec<f64> {
                client
                    .query(query.as_str(), &[])
                    .unwrap()
                    .iter()
                    .map(|row| row.get(1))
                    .collect()
            };
            client
                .batch_execute("SET enable_seqscan = off; SET enable_indexscan = on")
                .unwrap();
            let plan: String = client
                .query(&format!("EXPLAIN (COSTS OFF) {query}"), &[])
                .unwrap()
                .iter()
                .map(|row| row.get::<_, String>(0))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(plan.contains("Index Scan using w_idx"), "{plan}");
            let approximate = distances(client);
            client
                .batch_execute("SET enable_seqscan = on; SET enable_indexscan = off")
                .unwrap();
            let exact = distances(client);
            assert_eq!(exact.len(), 10);
            let tenth = exact[9];
            found += approximate.iter().filter(|&&d| d <= tenth).count();
        }
        client.batch_execute("RESET enable_seqscan; RESET enable_indexscan").unwrap();
        found as f64 / (10 * queries.len()) as f64
    }

    fn check(client: &mut postgres::Client) -> (bool, i64, Option<i64>) {
        let row = client
            .query_one(
                "SELECT sound, items, heap_rows_missing, row_to_json(c)::text
                 FROM hannoy_index_check('w_idx') c",
                &[],
            )
            .unwrap();
        let sound: bool = row.get(0);
        if !sound {
            eprintln!("hannoy_index_check: {}", row.get::<_, String>(3));
        }
        (sound, row.get(1), row.get(2))
    }

    fn finish(client: postgres::Client, database: &str) {
        drop(client);
        session()
            .batch_execute(&format!("DROP DATABASE {database} WITH (FORCE)"))
            .unwrap();
    }

    #[test]
    fn recall_stays_above_0_98_after_deleting_three_quarters_and_vacuum() {
        let mut client = session_in_own_database("hannoy_delete75");
        load(&mut client, 8_000);
        client
            .batch_execute("CREATE INDEX w_idx ON w USING hannoy (embedding)")
            .unwrap();
        client.batch_execute("DELETE FROM w WHERE id % 4 <> 0").unwrap();
        client.batch_execute("VACUUM w").unwrap();
        assert_eq!(check(&mut client), (true, 2_000, Some(0)));
        let queries: Vec<i32> = (1..=100).map(|i| i * 4 * 19).collect();
        let recall = recall(&mut client, &queries);
        // Lowest over 20 builds (two threads, 100 queries): 0.992.
        assert!(recall >= 0.98, "recall@10 after deleting 75% = {recall}");
        finish(client, "hannoy_delete75");
    }

    #[test]
    fn a_quantized_index_keeps_its_codes_and_recall_through_inserts_deletes_and_vacuum() {
        let mut client = session_in_own_database("hannoy_codes");
        load(&mut client, 6_000);
        client
            .batch_execute(
                "CREATE INDEX w_idx ON w USING hannoy (embedding) WITH (quantization = 'rabitq');
                 INSERT INTO w SELECT id + 6000, embedding FROM w WHERE id % 3 = 0;",
            )
            .unwrap();
        client.batch_execute("DELETE FROM w WHERE id % 4 <> 0").unwrap();
        client.batch_execute("VACUUM w").unwrap();
        // Deleted rows' ids are reused by these: their codes must be the new rows'.
        client
            .batch_execute("INSERT INTO w SELECT id + 20000, embedding FROM w WHERE id % 8 = 0")
            .unwrap();
        let live: i64 = client
            .query_one("SELECT count(*) FROM w", &[])
            .unwrap()
            .get(0);
        // `sound` includes every live row's code being its vector's.
        assert_eq!(check(&mut client), (true, live, Some(0)));
        let queries: Vec<i32> = (1..=60).map(|i| i * 4 * 23).collect();
        let recall = recall(&mut client, &queries);
        assert!(recall >= 0.95, "recall@10 walking on codes = {recall}");
        finish(client, "hannoy_codes");
    }

    #[test]
    fn deleting_everything_and_inserting_it_again_grows_the_folder_by_at_most_2_percent() {
        let mut client = session_in_own_database("hannoy_regrow");
        // pgvector's bar is set on 10,000 rows; LMDB's bookkeeping costs a few pages at any size.
        // Linking on one thread: a parallel build's graph, and so its size, varies from run to
        // run, and a size bound must hold for the run it measures.
        client
            .batch_execute("SET max_parallel_maintenance_workers = 0")
            .unwrap();
        load(&mut client, 10_000);
        client
            .batch_execute(
                "CREATE TABLE saved AS SELECT * FROM w;
                 CREATE INDEX w_idx ON w USING hannoy (embedding);",
            )
            .unwrap();
        let size = |client: &mut postgres::Client| -> i64 {
            client
                .query_one("SELECT size_bytes FROM hannoy_index_info('w_idx')", &[])
                .unwrap()
                .get(0)
        };
        // Rows arrive through aminsert, as they would later on.
        client.batch_execute("TRUNCATE w").unwrap();
        client.batch_execute("INSERT INTO w SELECT * FROM saved").unwrap();
        let before = size(&mut client);
        client.batch_execute("DELETE FROM w").unwrap();
        client.batch_execute("VACUUM w").unwrap();
        assert_eq!(check(&mut client), (true, 0, Some(0)));
        client.batch_execute("INSERT INTO w SELECT * FROM saved").unwrap();
        let after = size(&mut client);
        client.batch_execute("VACUUM w").unwrap();
        assert_eq!(check(&mut client), (true, 10_000, Some(0)));
        assert!(
            after as f64 <= before as f64 * 1.02,
            "folder grew from {before} to {after} bytes"
        );
        finish(client, "hannoy_regrow");
    }

    #[test]
    fn rolled_back_inserts_are_never_returned_and_vacuum_removes_them() {
        let mut client = session_in_own_database("hannoy_rollback");
        load(&mut client, 1_000);
        client
            .batch_execute("CREATE INDEX w_idx ON w USING hannoy (embedding)")
            .unwrap();
        client.batch_execute("SET enable_seqscan = off").unwrap();
        let everything =
            "SELECT id FROM w ORDER BY embedding <-> (SELECT embedding FROM w WHERE id = 5) LIMIT 5000";
        // Rows of an aborted transaction wait in the pending list and are never returned.
        client
            .batch_execute(
                "BEGIN;
                 INSERT INTO w SELECT id + 100000, embedding FROM w;
                 ROLLBACK;",
            )
            .unwrap();
        let all = ids(&mut client, everything);
        assert_eq!(all.len(), 1_000);
        assert!(all.iter().all(|&id| id <= 1_000));
        // A transaction's scan sees its own rows; after the rollback nobody does.
        client.batch_execute("BEGIN").unwrap();
        client
            .batch_execute("INSERT INTO w SELECT id + 200000, embedding FROM w")
            .unwrap();
        assert_eq!(ids(&mut client, everything).len(), 2_000);
        client.batch_execute("ROLLBACK").unwrap();
        let all = ids(&mut client, everything);
        assert_eq!(all.len(), 1_000);
        assert!(all.iter().all(|&id| id <= 1_000));
        // Merges leave the rolled-back rows out (the check merges the list first).
        assert_eq!(check(&mut client), (true, 1_000, Some(0)));
        client.batch_execute("VACUUM w").unwrap();
        assert_eq!(check(&mut client), (true, 1_000, Some(0)));
        finish(client, "hannoy_rollback");
    }

    #[test]
    fn a_transaction_sees_its_own_rows_and_commits_them_in_batches() {
        let mut client = session_in_own_database("hannoy_batches");
        load(&mut client, 2_000);
        client
            .batch_execute("CREATE INDEX w_idx ON w USING hannoy (embedding)")
            .unwrap();
        // 64 kB of pending list holds about 430 rows of 32 dimensions: the statement merges
        // several batches into the graph on its own and leaves the rest pending.
        client
            .batch_execute(
                "BEGIN;
                 SET LOCAL hannoy.pending_list_limit = '64kB';
                 SET LOCAL enable_seqscan = off;
                 INSERT INTO w
                   SELECT id + 10000 + 5000 * copy,
                          (SELECT array_agg(x + 0.001::real * (copy + 1)) FROM unnest(embedding) x)
                   FROM w CROSS JOIN generate_series(0, 1) copy WHERE copy = 0 OR id <= 1000;",
            )
            .unwrap();
        for own in [10077, 15999, 12000] {
            let nearest = ids(
                &mut client,
                &format!(
                    "SELECT id FROM w ORDER BY embedding <-> (SELECT embedding FROM w WHERE id = {own}) LIMIT 1"
                ),
            );
            assert_eq!(nearest, vec![own], "the transaction finds its own row");
        }
        client.batch_execute("COMMIT").unwrap();
        assert_eq!(check(&mut client), (true, 5_000, Some(0)));
        let queries: Vec<i32> = (1..=100).map(|i| 10_000 + i * 19).collect();
        let recall = recall(&mut client, &queries);
        // Lowest over 20 builds (two threads, 100 queries): 1.000.
        assert!(recall >= 0.98, "recall@10 after batched inserts = {recall}");
        finish(client, "hannoy_batches");
    }

    #[test]
    fn pending_rows_come_back_in_exact_order_and_the_list_reuses_its_pages() {
        let mut client = session_in_own_database("hannoy_pending");
        load(&mut client, 2_000);
        client
            .batch_execute(
                "CREATE INDEX w_idx ON w USING hannoy (embedding);
                 SET hannoy.pending_list_limit = '64MB';
                 INSERT INTO w SELECT id + 10000,
                     (SELECT array_agg(x * 1.01::real) FROM unnest(embedding) x)
                   FROM w WHERE id <= 300;",
            )
            .unwrap();
        // The 300 new rows all wait in the list; merged by distance with the graph's, the first
        // 60 rows are the exact answer (ef_search covers the whole graph).
        let nearest_to = |q: i32| {
            format!(
                "SELECT id FROM w ORDER BY embedding <-> (SELECT embedding FROM w WHERE id = {q}) LIMIT 60"
            )
        };
        for q in [7, 123, 10_007] {
            client
                .batch_execute("SET enable_seqscan = off; SET hannoy.ef_search = 1000")
                .unwrap();
            let indexed = ids(&mut client, &nearest_to(q));
            client
                .batch_execute("RESET enable_seqscan; SET enable_indexscan = off")
                .unwrap();
            let exact = ids(&mut client, &nearest_to(q));
            client.batch_execute("RESET enable_indexscan").unwrap();
            assert_eq!(indexed, exact, "query row {q}");
            assert!(indexed.iter().any(|&id| id > 10_000));
        }
        // 20,000 rows through a 64 kB list: about 370 pages if merged pages were never reused.
        // Without autovacuum: a merge of its own under way while the insert appends would make
        // the insert's merges step aside (they do not wait); the list once reached 151 pages
        // on a loaded machine.
        client
            .batch_execute(
                "ALTER TABLE w SET (autovacuum_enabled = false);
                 SET hannoy.pending_list_limit = '64kB';
                 INSERT INTO w SELECT id + 20000 + 2000 * copy, embedding
                   FROM w CROSS JOIN generate_series(0, 9) copy WHERE id <= 2000;",
            )
            .unwrap();
        let pages: i64 = client
            .query_one("SELECT pg_relation_size('w_idx') / 8192", &[])
            .unwrap()
            .get(0);
        assert!(pages <= 40, "the index relation grew to {pages} pages");
        // Ten exact copies of each vector (eleven, with the originals and the rows scaled
        // above), merged a few hundred at a time: every copy stays reachable, before VACUUM and
        // after.
        assert_eq!(check(&mut client), (true, 22_300, Some(0)));
        client.batch_execute("VACUUM w").unwrap();
        assert_eq!(check(&mut client), (true, 22_300, Some(0)));
        finish(client, "hannoy_pending");
    }

    #[test]
    fn queued_rows_follow_drop_truncate_and_savepoints() {
        let mut client = session_in_own_database("hannoy_queued");
        load(&mut client, 1_000);
        client
            .batch_execute("CREATE INDEX w_idx ON w USING hannoy (embedding)")
            .unwrap();
        let storage: String = client
            .query_one("SELECT current_setting('data_directory') || '/' || storage FROM hannoy_index_info('w_idx')", &[])
            .unwrap()
            .get(0);

        // Rows queued for an index dropped later in the transaction go with it.
        client
            .batch_execute(
                "BEGIN;
                 INSERT INTO w SELECT id + 10000, embedding FROM w WHERE id <= 100;
                 DROP INDEX w_idx;
                 COMMIT;",
            )
            .unwrap();
        assert!(!std::path::Path::new(&storage).exists());

        // Rows queued before a TRUNCATE in the same transaction are gone; those after it stay.
        client
            .batch_execute(
                "CREATE INDEX w_idx ON w USING hannoy (embedding);
                 BEGIN;
                 INSERT INTO w SELECT id + 20000, embedding FROM w WHERE id <= 100;
                 TRUNCATE w;
                 INSERT INTO w SELECT i, ARRAY(SELECT (i * d % 17)::real FROM generate_series(1, 32) d)
                   FROM generate_series(1, 50) i;
                 COMMIT;",
            )
            .unwrap();
        assert_eq!(check(&mut client), (true, 50, Some(0)));

        // A rolled-back savepoint's rows are never returned; the rest of the transaction's are.
        client
            .batch_execute(
                "BEGIN;
                 INSERT INTO w SELECT id + 100, embedding FROM w WHERE id <= 10;
                 SAVEPOINT s;
                 INSERT INTO w SELECT id + 200, embedding FROM w;
                 ROLLBACK TO s;
                 INSERT INTO w SELECT id + 300, embedding FROM w WHERE id <= 5;
                 COMMIT;
                 SET enable_seqscan = off;",
            )
            .unwrap();
        let mut all = ids(
            &mut client,
            "SELECT id FROM w ORDER BY embedding <-> (SELECT embedding FROM w WHERE id = 1) LIMIT 1000",
        );
        all.sort();
        let mut expected: Vec<i32> = (1..=50).chain(101..=110).chain(301..=305).collect();
        expected.sort();
        assert_eq!(all, expected);
        client.batch_execute("VACUUM w").unwrap();
        assert_eq!(check(&mut client), (true, 65, Some(0)));
        finish(client, "hannoy_queued");
    }

    #[test]
    fn four_writers_and_four_searchers_lose_nothing_and_keep_recall() {
        const SECONDS: u64 = 20;
        let mut client = session_in_own_database("hannoy_concurrent");
        load(&mut client, 4_000);
        client
            .batch_execute("CREATE INDEX w_idx ON w USING hannoy (embedding)")
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(SECONDS);
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let mut conn = connect_like(&mut client);
                std::thread::spawn(move || {
                    // Each writer copies existing vectors, slightly moved, under its own ids.
                    let mut inserted = 0i32;
                    while std::time::Instant::now() < deadline {
                        let id = 100_000 * (w + 1) + inserted;
                        conn.execute(
                            "INSERT INTO w SELECT $1, (SELECT array_agg(x + 0.01::real) FROM unnest(embedding) x)
                             FROM w WHERE id = $2",
                            &[&id, &(1 + (id % 4_000))],
                        )
                        .unwrap();
                        inserted += 1;
                    }
                    inserted
                })
            })
            .collect();
        let searchers: Vec<_> = (0..4)
            .map(|s| {
                let mut conn = connect_like(&mut client);
                std::thread::spawn(move || {
                    conn.batch_execute("SET enable_seqscan = off").unwrap();
                    let mut searches = 0i32;
                    while std::time::Instant::now() < deadline {
                        let rows = conn
                            .query(
                                "SELECT id FROM w ORDER BY embedding <-> (SELECT embedding FROM w WHERE id = $1) LIMIT 10",
                                &[&(1 + (s * 997 + searches * 13) % 4_000)],
                            )
                            .unwrap();
                        assert_eq!(rows.len(), 10);
                        searches += 1;
                    }
                    searches
                })
            })
            .collect();
        let inserted: i32 = writers.into_iter().map(|t| t.join().unwrap()).sum();
        let searched: i32 = searchers.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(inserted > 0 && searched > 0, "{inserted} inserts, {searched} searches");
        eprintln!("{SECONDS} s with 4 writers and 4 searchers: {inserted} inserts, {searched} searches");

        let rows: i64 = client.query_one("SELECT count(*) FROM w", &[]).unwrap().get(0);
        assert_eq!(rows, 4_000 + inserted as i64);
        // Every row is in the index, the key maps are consistent and no link dangles; pruning
        // may have cut a node or two off (one in 5,084 in one run), which VACUUM reconnects.
        let row = client
            .query_one(
                "SELECT items, heap_rows_missing, dangling_links, stray_keys + mismatched_keys,
                        items - reachable
                 FROM hannoy_index_check('w_idx')",
                &[],
            )
            .unwrap();
        let (items, missing, dangling, bad_keys, unreachable): (i64, Option<i64>, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        assert_eq!((items, missing, dangling, bad_keys), (rows, Some(0), 0, 0));
        eprintln!("unreachable before VACUUM: {unreachable}");
        client.batch_execute("VACUUM w").unwrap();
        assert_eq!(check(&mut client), (true, rows, Some(0)));
        let queries: Vec<i32> = (1..=100).map(|i| i * 39).collect();
        let recall = recall(&mut client, &queries);
        // Lowest over 20 runs (two threads, 100 queries): 0.996.
        assert!(recall >= 0.98, "recall@10 after concurrent writes = {recall}");
        finish(client, "hannoy_concurrent");
    }
}
