//! Operator classes of filter columns, default for their types so that no index has to name
//! them. Strategy numbers are btree's for comparisons (1 `<` to 5 `>`) and 6 `&&`, 7 `@>`,
//! 8 `<@` for arrays, as `filter::scan_keys` reads them.

pgrx::extension_sql!(
    r#"
-- Integers compare across widths, as btree's integer_ops: bigint_col = 3 is int8 = int4.
CREATE OPERATOR FAMILY hannoy_integer_ops USING hannoy;
CREATE OPERATOR CLASS hannoy_int2_ops DEFAULT FOR TYPE int2 USING hannoy
    FAMILY hannoy_integer_ops AS OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >;
CREATE OPERATOR CLASS hannoy_int4_ops DEFAULT FOR TYPE int4 USING hannoy
    FAMILY hannoy_integer_ops AS OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >;
CREATE OPERATOR CLASS hannoy_int8_ops DEFAULT FOR TYPE int8 USING hannoy
    FAMILY hannoy_integer_ops AS OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >;
ALTER OPERATOR FAMILY hannoy_integer_ops USING hannoy ADD
    OPERATOR 1 < (int2, int4),
    OPERATOR 2 <= (int2, int4),
    OPERATOR 3 = (int2, int4),
    OPERATOR 4 >= (int2, int4),
    OPERATOR 5 > (int2, int4),
    OPERATOR 1 < (int2, int8),
    OPERATOR 2 <= (int2, int8),
    OPERATOR 3 = (int2, int8),
    OPERATOR 4 >= (int2, int8),
    OPERATOR 5 > (int2, int8),
    OPERATOR 1 < (int4, int2),
    OPERATOR 2 <= (int4, int2),
    OPERATOR 3 = (int4, int2),
    OPERATOR 4 >= (int4, int2),
    OPERATOR 5 > (int4, int2),
    OPERATOR 1 < (int4, int8),
    OPERATOR 2 <= (int4, int8),
    OPERATOR 3 = (int4, int8),
    OPERATOR 4 >= (int4, int8),
    OPERATOR 5 > (int4, int8),
    OPERATOR 1 < (int8, int2),
    OPERATOR 2 <= (int8, int2),
    OPERATOR 3 = (int8, int2),
    OPERATOR 4 >= (int8, int2),
    OPERATOR 5 > (int8, int2),
    OPERATOR 1 < (int8, int4),
    OPERATOR 2 <= (int8, int4),
    OPERATOR 3 = (int8, int4),
    OPERATOR 4 >= (int8, int4),
    OPERATOR 5 > (int8, int4);
CREATE OPERATOR FAMILY hannoy_float_ops USING hannoy;
CREATE OPERATOR CLASS hannoy_float4_ops DEFAULT FOR TYPE float4 USING hannoy
    FAMILY hannoy_float_ops AS OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >;
CREATE OPERATOR CLASS hannoy_float8_ops DEFAULT FOR TYPE float8 USING hannoy
    FAMILY hannoy_float_ops AS OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >;
ALTER OPERATOR FAMILY hannoy_float_ops USING hannoy ADD
    OPERATOR 1 < (float4, float8),
    OPERATOR 2 <= (float4, float8),
    OPERATOR 3 = (float4, float8),
    OPERATOR 4 >= (float4, float8),
    OPERATOR 5 > (float4, float8),
    OPERATOR 1 < (float8, float4),
    OPERATOR 2 <= (float8, float4),
    OPERATOR 3 = (float8, float4),
    OPERATOR 4 >= (float8, float4),
    OPERATOR 5 > (float8, float4);
CREATE OPERATOR CLASS hannoy_numeric_ops DEFAULT FOR TYPE numeric USING hannoy AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >;
CREATE OPERATOR CLASS hannoy_date_ops DEFAULT FOR TYPE date USING hannoy AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >;
CREATE OPERATOR CLASS hannoy_timestamp_ops DEFAULT FOR TYPE timestamp USING hannoy AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >;
CREATE OPERATOR CLASS hannoy_timestamptz_ops DEFAULT FOR TYPE timestamptz USING hannoy AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >;
CREATE OPERATOR CLASS hannoy_uuid_ops DEFAULT FOR TYPE uuid USING hannoy AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >;
CREATE OPERATOR CLASS hannoy_bool_ops DEFAULT FOR TYPE bool USING hannoy AS OPERATOR 3 =;
-- Equality only: ordering text by its bytes would not be its collation's order.
CREATE OPERATOR CLASS hannoy_text_ops DEFAULT FOR TYPE text USING hannoy AS OPERATOR 3 =;
CREATE OPERATOR CLASS hannoy_int4_array_ops DEFAULT FOR TYPE int4[] USING hannoy AS
    OPERATOR 6 && (anyarray, anyarray), OPERATOR 7 @> (anyarray, anyarray),
    OPERATOR 8 <@ (anyarray, anyarray);
CREATE OPERATOR CLASS hannoy_int8_array_ops DEFAULT FOR TYPE int8[] USING hannoy AS
    OPERATOR 6 && (anyarray, anyarray), OPERATOR 7 @> (anyarray, anyarray),
    OPERATOR 8 <@ (anyarray, anyarray);
CREATE OPERATOR CLASS hannoy_text_array_ops DEFAULT FOR TYPE text[] USING hannoy AS
    OPERATOR 6 && (anyarray, anyarray), OPERATOR 7 @> (anyarray, anyarray),
    OPERATOR 8 <@ (anyarray, anyarray);
"#,
    name = "filter_operator_classes",
    requires = ["operator_classes"]
);
