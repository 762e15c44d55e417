// Every bad input is an ERROR with a fitting SQLSTATE and leaves the table as it was.

#[pg_test]
fn bad_vectors_are_refused_with_their_sqlstate_and_change_nothing() {
    run("CREATE TABLE bad_t (id int, embedding real[]);
         INSERT INTO bad_t VALUES (1, '{1,2,3}'), (2, '{4,5,6}');
         CREATE INDEX bad_t_idx ON bad_t USING hannoy (embedding real_cosine_ops);");
    let cases = [
        ("INSERT INTO bad_t VALUES (3, '{1,2}')", "22000"),
        ("INSERT INTO bad_t VALUES (3, '{1,NaN,3}')", "22000"),
        ("INSERT INTO bad_t VALUES (3, '{1,Infinity,3}')", "22000"),
        ("INSERT INTO bad_t VALUES (3, '{-Infinity,1,3}')", "22000"),
        ("INSERT INTO bad_t VALUES (3, '{}')", "22000"),
        ("INSERT INTO bad_t VALUES (3, '{{1,2,3},{4,5,6}}')", "22000"),
        ("INSERT INTO bad_t VALUES (3, '{1,NULL,3}')", "22004"),
        ("INSERT INTO bad_t VALUES (3, '{0,0,0}')", "22000"),
        ("UPDATE bad_t SET embedding = '{1,2}' WHERE id = 1", "22000"),
        ("SELECT '{1,2}'::real[] <-> '{1,2,3}'::real[]", "22000"),
        ("SELECT '{1,NaN}'::real[] <-> '{1,2}'::real[]", "22000"),
        ("SELECT '{1,NULL}'::real[] <=> '{1,2}'::real[]", "22004"),
        ("SELECT '{{1,2},{3,4}}'::real[] <+> '{1,2}'::real[]", "22000"),
        ("SELECT B'101' <~> B'1011'", "22000"),
    ];
    for (statement, state) in cases {
        assert_eq!(sqlstate_of(statement), state, "{statement}");
    }
    run("SET enable_seqscan = off");
    for (statement, state) in [
        ("SELECT id FROM bad_t ORDER BY embedding <=> '{1,2}' LIMIT 1", "22000"),
        ("SELECT id FROM bad_t ORDER BY embedding <=> '{1,NaN,2}' LIMIT 1", "22000"),
        ("SELECT id FROM bad_t ORDER BY embedding <=> '{0,0,0}' LIMIT 1", "22000"),
    ] {
        assert!(explain(statement).contains("bad_t_idx"));
        assert_eq!(sqlstate_of(statement), state, "{statement}");
    }
    assert_eq!(one_i64("SELECT count(*) FROM bad_t"), 2);
    assert_eq!(one_i64("SELECT items FROM hannoy_index_info('bad_t_idx')"), 2);
    assert_eq!(
        ids("SELECT id FROM bad_t ORDER BY embedding <=> '{1,2,3}' LIMIT 5"),
        vec![1, 2]
    );
}

#[pg_test]
fn bad_builds_and_options_are_refused() {
    run("CREATE TABLE opt_t (id int, embedding real[]);
         INSERT INTO opt_t VALUES (1, '{1,2,3}'), (2, '{4,5}');
         CREATE TABLE ok_t (id int, embedding real[]);
         INSERT INTO ok_t VALUES (1, '{1,2,3}');");
    let cases = [
        ("CREATE INDEX ON opt_t USING hannoy (embedding)", "22000"),
        ("CREATE INDEX ON ok_t USING hannoy (embedding) WITH (colour = 3)", "22023"),
        ("CREATE INDEX ON ok_t USING hannoy (embedding) WITH (m = 1)", "22023"),
        ("CREATE INDEX ON ok_t USING hannoy (embedding) WITH (m = 101)", "22023"),
        ("CREATE INDEX ON ok_t USING hannoy (embedding) WITH (ef_construction = 2000)", "22023"),
        ("CREATE INDEX ON ok_t USING hannoy (embedding) WITH (m = 40, ef_construction = 50)", "22023"),
        ("CREATE INDEX ON ok_t USING hannoy (embedding) WITH (quantization = 'pq')", "22023"),
        ("CREATE INDEX ON ok_t USING hannoy (embedding) WITH (quantization = 'rabitq', bits = 0)", "22023"),
        ("CREATE INDEX ON ok_t USING hannoy (embedding) WITH (quantization = 'rabitq', bits = 9)", "22023"),
        ("CREATE INDEX ON ok_t USING hannoy (embedding) WITH (bits = 2)", "22023"),
        ("CREATE INDEX ON ok_t USING hannoy (embedding real_l1_ops) WITH (quantization = 'rabitq')", "22023"),
        ("CREATE INDEX ON ok_t USING hannoy (id)", "0A000"),
        ("CREATE TEMP TABLE tmp_t (e real[]); CREATE INDEX ON tmp_t USING hannoy (e)", "0A000"),
        ("CREATE UNLOGGED TABLE unl_t (e real[]); CREATE INDEX ON unl_t USING hannoy (e)", "0A000"),
        ("SELECT * FROM hannoy_index_info('ok_t')", "42809"),
    ];
    for (statement, state) in cases {
        assert_eq!(sqlstate_of(statement), state, "{statement}");
    }
    assert_eq!(
        one_i64("SELECT count(*) FROM pg_indexes WHERE tablename IN ('opt_t', 'ok_t')"),
        0
    );
    assert_eq!(
        sqlstate_of("CREATE INDEX ok_idx ON ok_t USING hannoy (embedding) WITH (m = 8, ef_construction = 16)"),
        "ok"
    );
    assert_eq!(one_i64("SELECT m::bigint FROM hannoy_index_info('ok_idx')"), 8);
}
