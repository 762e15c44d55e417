-- Operator classes of the hannoy access method on pgvector's types, bound to pgvector's own
-- operators and distance functions, under the names pgvector gives its HNSW classes: an index
-- moves from pgvector by writing USING hannoy instead of USING hnsw. The library reads the values'
-- bytes itself and never links pgvector. The schemas of hannoy_pg and vector are on the
-- search_path while this script runs.
\echo Use "CREATE EXTENSION hannoy_pg_vector" to load this file. \quit

CREATE OPERATOR CLASS vector_l2_ops DEFAULT FOR TYPE vector USING hannoy AS
    OPERATOR 1 <-> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 l2_distance(vector, vector);
CREATE OPERATOR CLASS vector_cosine_ops FOR TYPE vector USING hannoy AS
    OPERATOR 1 <=> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 cosine_distance(vector, vector);
CREATE OPERATOR CLASS vector_ip_ops FOR TYPE vector USING hannoy AS
    OPERATOR 1 <#> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 vector_negative_inner_product(vector, vector);
CREATE OPERATOR CLASS vector_l1_ops FOR TYPE vector USING hannoy AS
    OPERATOR 1 <+> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 l1_distance(vector, vector);

CREATE OPERATOR CLASS halfvec_l2_ops DEFAULT FOR TYPE halfvec USING hannoy AS
    OPERATOR 1 <-> (halfvec, halfvec) FOR ORDER BY float_ops,
    FUNCTION 1 l2_distance(halfvec, halfvec);
CREATE OPERATOR CLASS halfvec_cosine_ops FOR TYPE halfvec USING hannoy AS
    OPERATOR 1 <=> (halfvec, halfvec) FOR ORDER BY float_ops,
    FUNCTION 1 cosine_distance(halfvec, halfvec);
CREATE OPERATOR CLASS halfvec_ip_ops FOR TYPE halfvec USING hannoy AS
    OPERATOR 1 <#> (halfvec, halfvec) FOR ORDER BY float_ops,
    FUNCTION 1 halfvec_negative_inner_product(halfvec, halfvec);
CREATE OPERATOR CLASS halfvec_l1_ops FOR TYPE halfvec USING hannoy AS
    OPERATOR 1 <+> (halfvec, halfvec) FOR ORDER BY float_ops,
    FUNCTION 1 l1_distance(halfvec, halfvec);

CREATE OPERATOR CLASS bit_hamming_ops DEFAULT FOR TYPE bit USING hannoy AS
    OPERATOR 1 <~> (bit, bit) FOR ORDER BY float_ops,
    FUNCTION 1 hamming_distance(bit, bit);
