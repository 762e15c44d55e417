//! The access method as SQL sees it: its handler function, the `hannoy` access method and the
//! vector columns' operator classes.

use pgrx::prelude::*;

/// Builds the routine table Postgres asks for when it opens a hannoy index.
#[pg_extern(sql = "
CREATE FUNCTION hannoy_amhandler(internal) RETURNS index_am_handler
    PARALLEL SAFE IMMUTABLE STRICT LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
CREATE ACCESS METHOD hannoy TYPE INDEX HANDLER hannoy_amhandler;
COMMENT ON ACCESS METHOD hannoy IS 'disk-backed HNSW index for nearest-neighbour search';
")]
fn hannoy_amhandler(_fcinfo: pg_sys::FunctionCallInfo) -> PgBox<pg_sys::IndexAmRoutine> {
    crate::am::routine()
}

pgrx::extension_sql!(
    r#"
CREATE OPERATOR CLASS real_l2_ops DEFAULT FOR TYPE real[] USING hannoy AS
    OPERATOR 1 <-> (real[], real[]) FOR ORDER BY float_ops,
    FUNCTION 1 l2_distance(real[], real[]);
CREATE OPERATOR CLASS real_cosine_ops FOR TYPE real[] USING hannoy AS
    OPERATOR 1 <=> (real[], real[]) FOR ORDER BY float_ops,
    FUNCTION 1 cosine_distance(real[], real[]);
CREATE OPERATOR CLASS real_ip_ops FOR TYPE real[] USING hannoy AS
    OPERATOR 1 <#> (real[], real[]) FOR ORDER BY float_ops,
    FUNCTION 1 negative_inner_product(real[], real[]);
CREATE OPERATOR CLASS real_l1_ops FOR TYPE real[] USING hannoy AS
    OPERATOR 1 <+> (real[], real[]) FOR ORDER BY float_ops,
    FUNCTION 1 l1_distance(real[], real[]);
CREATE OPERATOR CLASS varbit_hamming_ops DEFAULT FOR TYPE varbit USING hannoy AS
    OPERATOR 1 <~> (varbit, varbit) FOR ORDER BY float_ops,
    FUNCTION 1 hamming_distance(varbit, varbit);
"#,
    name = "operator_classes",
    requires = [hannoy_amhandler, "distance_operators"]
);
