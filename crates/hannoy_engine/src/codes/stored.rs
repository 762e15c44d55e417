//! The codes an index keeps beside its vectors: made by every write that stores a vector, from
//! a centroid of the vectors written first, and read by the query-time walk.
//!
//! The centroid is the mean of the live vectors when the index first gets some. A first write
//! of a handful of rows would make it a poor one (a centroid on a data point doubles the
//! residuals the codes approximate), so while it is the mean of fewer than `SETTLED_SAMPLE`
//! vectors, each write that doubles the live count takes the mean again and codes everything
//! anew: at most about `2 · SETTLED_SAMPLE` vectors coded again over an index's life. After that
//! it stays, and REINDEX takes it anew. An index that keeps no full vectors takes it from its
//! first write only: each code there is made once, from the vector the caller gave.

use heed::{RoTxn, RwTxn};
use rayon::prelude::*;
use roaring::RoaringBitmap;

use super::{Grid, Quantizer, Scheme};
use crate::distance::{Metric, PreparedVectors};
use crate::error::{corrupt, Result};
use crate::storage::{MetaRecord, Store};
use crate::ItemId;

/// Once the centroid is the mean of this many vectors it is kept.
const SETTLED_SAMPLE: u32 = 10_000;

/// `MetaRecord::code_grid` of indexes whose codes span the largest coordinate: every index
/// created before codes were fitted (the field was zero, unused, then).
pub(crate) const GRID_SPAN: u32 = 0;
/// `MetaRecord::code_grid` of indexes whose codes are fitted (`Grid::Fitted`).
pub(crate) const GRID_FITTED: u32 = 1;

/// Derives the rotation's seed from the index's, so the level draw and the rotation do not
/// share a stream.
const ROTATION_SEED_MIX: u64 = 0x0c0d_e5c0_de5c_0de5;

/// The floats a stored vector is coded from, in the space the codes estimate squared Euclidean
/// distances in: as stored, except cosine over half floats, stored as given, is normalised
/// (f32 cosine vectors are stored normalised already). `None` for bit vectors.
pub(crate) fn code_input(metric: Metric, stored: &[u8]) -> Option<Vec<f32>> {
    let mut floats = crate::distance::stored_floats(metric, stored)?;
    if metric == Metric::HalfCosine {
        let norm = floats.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            floats.iter_mut().for_each(|x| *x /= norm);
        }
    }
    Some(floats)
}

/// The metric's score (see `Metric::score`) for an estimated squared Euclidean distance between
/// a query and a vector, given both squared lengths (in `code_input`'s space).
#[inline]
pub(crate) fn score_of_estimate(
    metric: Metric,
    distance: f32,
    query_square: f32,
    square: f32,
) -> f32 {
    match metric.in_f32() {
        // Unit vectors: 1 - cos = |q - x|² / 2.
        Metric::Cosine => 0.5 * distance,
        // -<q, x> = (|q - x|² - |q|² - |x|²) / 2.
        Metric::InnerProduct => 0.5 * (distance - query_square - square),
        _ => distance,
    }
}

/// The metric's score for a lower bound of the squared Euclidean distance: a lower bound of the
/// score. An inner product is the distance less both squared lengths, and the caller's rounding
/// of it grows with those lengths, so it takes a slack of its own.
#[inline]
pub(crate) fn score_of_lower_bound(
    metric: Metric,
    bound: f32,
    query_square: f32,
    square: f32,
    dims: usize,
) -> f32 {
    let score = score_of_estimate(metric, bound, query_square, square);
    match metric.in_f32() {
        Metric::InnerProduct => {
            (score as f64 - super::lower_bound_slack(dims) * (query_square + square) as f64) as f32
        }
        _ => score,
    }
}

/// The index's quantizer as of `txn`, if it keeps codes and has a centroid yet.
pub(crate) fn load(store: Store, txn: &RoTxn, meta: &MetaRecord) -> Result<Option<Quantizer>> {
    let Some(scheme) = meta.code_scheme() else {
        return Ok(None);
    };
    if meta.centroid_sample == 0 {
        return Ok(None);
    }
    let centroid = store
        .read_centroid(txn)?
        .ok_or_else(|| corrupt("the index keeps codes and has no centroid"))?;
    if centroid.len() != meta.dimensions as usize {
        return Err(corrupt(format!(
            "the centroid has {} dimensions where the index has {}",
            centroid.len(),
            meta.dimensions
        )));
    }
    make(scheme, centroid, meta).map(Some)
}

fn make(scheme: Scheme, centroid: Vec<f32>, meta: &MetaRecord) -> Result<Quantizer> {
    let grid = match meta.code_grid {
        GRID_SPAN => Grid::Span,
        _ => Grid::Fitted,
    };
    Quantizer::new(scheme, centroid, meta.seed ^ ROTATION_SEED_MIX).map(|q| q.with_grid(grid))
}

/// Codes the items `ids` (ascending) just stored from `batch` (`ids[i]` holds `batch.get(i)`),
/// taking the centroid anew first when the index has grown enough since it was taken (see the
/// module comment); `items` are the live items including them.
pub(crate) fn write_codes(
    wtxn: &mut RwTxn,
    store: Store,
    meta: &mut MetaRecord,
    items: &RoaringBitmap,
    ids: &[ItemId],
    batch: &PreparedVectors,
    append: bool,
) -> Result<()> {
    let Some(scheme) = meta.code_scheme() else {
        return Ok(());
    };
    let metric = meta.metric();
    let live = items.len().min(u32::MAX as u64) as u32;
    // An index without full vectors takes its centroid once, from its first write: coding its
    // items again would code vectors decoded from codes, whose lower bounds no longer bound
    // the distance to the row itself.
    let recentre = meta.centroid_sample == 0
        || (meta.keeps_vectors()
            && meta.centroid_sample < SETTLED_SAMPLE
            && live >= meta.centroid_sample.saturating_mul(2));
    if !recentre {
        let Some(quantizer) = load(store, wtxn, meta)? else {
            return Err(corrupt("the index keeps codes and has no centroid"));
        };
        let codes = encode_all(&quantizer, metric, (0..batch.len()).map(|i| batch.get(i)))?;
        return put(
            wtxn,
            store,
            meta,
            &quantizer,
            ids.iter().copied(),
            &codes,
            append,
        );
    }
    // Every live item is coded anew, from the batch where it is every item (a build's first
    // batch, an index's first write: nothing to read back, and no copy of a batch that may be
    // most of `maintenance_work_mem`), else from the stored vectors.
    let (quantizer, codes) = {
        let sources: Vec<&[u8]> = if items.len() == ids.len() as u64 {
            (0..batch.len()).map(|i| batch.get(i)).collect()
        } else if meta.keeps_vectors() {
            let mut stored = Vec::with_capacity(items.len() as usize);
            store.for_each_vector(wtxn, meta, items.iter(), |_, v| {
                stored.push(v);
                Ok(())
            })?;
            stored
        } else {
            return Err(corrupt(
                "an index without full vectors has items and no centroid",
            ));
        };
        let inputs = sources
            .iter()
            .map(|v| code_input(metric, v).unwrap_or_default());
        let centroid = Quantizer::mean(meta.dimensions as usize, inputs);
        let quantizer = make(scheme, centroid, meta)?;
        let codes = encode_all(&quantizer, metric, sources.into_iter())?;
        (quantizer, codes)
    };
    store.write_centroid(wtxn, quantizer.centroid())?;
    meta.centroid_sample = live;
    put(wtxn, store, meta, &quantizer, items.iter(), &codes, append)?;
    store.rewrite_coded_lists(wtxn, meta)
}

/// For an index that keeps no full vectors, `batch` rotated into the space its writes score
/// stored items in: vectors decoded from codes there need no rotating back
/// (`Quantizer::decode_rotated`), and every distance is as it was.
pub(crate) fn rotated(
    quantizer: &Quantizer,
    metric: Metric,
    batch: &PreparedVectors,
) -> Result<PreparedVectors> {
    const CHUNK: usize = 4096;
    let dims = quantizer.dims();
    let mut out = PreparedVectors::with_capacity(batch.vector_bytes(), batch.len());
    for start in (0..batch.len()).step_by(CHUNK) {
        let rows: Vec<Vec<f32>> = (start..batch.len().min(start + CHUNK))
            .into_par_iter()
            .map_init(Vec::new, |scratch, i| {
                let floats = crate::distance::stored_floats(metric, batch.get(i))
                    .ok_or_else(|| corrupt("bit vectors have no codes"))?;
                let mut rotated = Vec::new();
                quantizer.rotate(&floats, &mut rotated, scratch);
                Ok(rotated)
            })
            .collect::<Result<_>>()?;
        for row in &rows {
            out.push(metric, dims, crate::distance::VectorRef::Floats(row))?;
        }
    }
    Ok(out)
}

/// The codes of `vectors` in stored form, back to back.
fn encode_all<'v>(
    quantizer: &Quantizer,
    metric: Metric,
    vectors: impl Iterator<Item = &'v [u8]>,
) -> Result<Vec<u8>> {
    let vectors: Vec<&[u8]> = vectors.collect();
    let bytes = quantizer.code_bytes();
    let mut out = vec![0u8; vectors.len() * bytes];
    out.par_chunks_mut(bytes)
        .zip(vectors.par_iter())
        .try_for_each(|(slot, v)| {
            let input =
                code_input(metric, v).ok_or_else(|| corrupt("bit vectors have no codes"))?;
            quantizer.encode_into(&input, slot)
        })?;
    Ok(out)
}

fn put(
    wtxn: &mut RwTxn,
    store: Store,
    meta: &MetaRecord,
    quantizer: &Quantizer,
    ids: impl Iterator<Item = ItemId>,
    codes: &[u8],
    append: bool,
) -> Result<()> {
    store.put_codes(
        wtxn,
        meta,
        ids.zip(codes.chunks_exact(quantizer.code_bytes())),
        append,
    )
}
