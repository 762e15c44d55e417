//! Distance functions and their operators, with pgvector's symbols and meanings. They work
//! without an index; the operator classes in `am/mod.rs` let a hannoy index order by them.

use hannoy_engine::{Metric, VectorRef};
use pgrx::datum::Internal;
use pgrx::prelude::*;

use crate::pg::error::OrRaise;
use crate::pg::vector::{real_array_arg, VectorType};

fn float_distance(metric: Metric, a: Array<'_, f32>, b: Array<'_, f32>) -> f64 {
    let (a, b) = (real_array_arg(a), real_array_arg(b));
    metric
        .distance(VectorRef::Floats(&a), VectorRef::Floats(&b))
        .or_raise()
}

/// Euclidean distance, the `<->` operator.
#[pg_extern(immutable, strict, parallel_safe)]
fn l2_distance(a: Array<'_, f32>, b: Array<'_, f32>) -> f64 {
    float_distance(Metric::Euclidean, a, b)
}

/// Cosine distance (1 - cosine similarity), the `<=>` operator; NaN for a zero vector.
#[pg_extern(immutable, strict, parallel_safe)]
fn cosine_distance(a: Array<'_, f32>, b: Array<'_, f32>) -> f64 {
    float_distance(Metric::Cosine, a, b)
}

/// Negative inner product, the `<#>` operator (negated so that smaller is nearer).
#[pg_extern(immutable, strict, parallel_safe)]
fn negative_inner_product(a: Array<'_, f32>, b: Array<'_, f32>) -> f64 {
    float_distance(Metric::InnerProduct, a, b)
}

/// Manhattan (taxicab) distance, the `<+>` operator.
#[pg_extern(immutable, strict, parallel_safe)]
fn l1_distance(a: Array<'_, f32>, b: Array<'_, f32>) -> f64 {
    float_distance(Metric::Manhattan, a, b)
}

/// Number of differing bits, the `<~>` operator. Declared on `varbit`, which `bit` values
/// reach by an implicit binary cast: pgvector declares its own on `bit`, and the two live side
/// by side in one schema. pgrx has no bit string type, so the arguments arrive as plain datums
/// and the SQL declaration is written out.
#[pg_extern(sql = "
CREATE FUNCTION hamming_distance(varbit, varbit) RETURNS float8
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
")]
fn hamming_distance(a: Internal, b: Internal) -> f64 {
    let (Some(a), Some(b)) = (a.unwrap(), b.unwrap()) else {
        return f64::NAN; // unreachable: the function is STRICT
    };
    // SAFETY: the SQL signature makes both arguments non-NULL bit strings.
    let (a, b) = unsafe { (VectorType::Bit.read(a), VectorType::Bit.read(b)) };
    Metric::Hamming.distance(a.as_ref(), b.as_ref()).or_raise()
}

pgrx::extension_sql!(
    r#"
CREATE OPERATOR <-> (LEFTARG = real[], RIGHTARG = real[], FUNCTION = l2_distance, COMMUTATOR = '<->');
CREATE OPERATOR <=> (LEFTARG = real[], RIGHTARG = real[], FUNCTION = cosine_distance, COMMUTATOR = '<=>');
CREATE OPERATOR <#> (LEFTARG = real[], RIGHTARG = real[], FUNCTION = negative_inner_product, COMMUTATOR = '<#>');
CREATE OPERATOR <+> (LEFTARG = real[], RIGHTARG = real[], FUNCTION = l1_distance, COMMUTATOR = '<+>');
CREATE OPERATOR <~> (LEFTARG = varbit, RIGHTARG = varbit, FUNCTION = hamming_distance, COMMUTATOR = '<~>');
"#,
    name = "distance_operators",
    requires = [
        l2_distance,
        cosine_distance,
        negative_inner_product,
        l1_distance,
        hamming_distance
    ]
);
