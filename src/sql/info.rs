//! `hannoy_index_info(index)`: what an index holds and what it costs on disk. Postgres's own
//! size functions see only the one-page relation, not the engine's folder.

use pgrx::prelude::*;
use pgrx::PgRelation;

use hannoy_engine::Quantization;

use crate::am::options::QuantizationOption;
use crate::pg::error::OrRaise;

#[allow(clippy::type_complexity)]
#[pg_extern(strict)]
fn hannoy_index_info(
    index: PgRelation,
) -> TableIterator<
    'static,
    (
        name!(items, i64),
        name!(dimensions, Option<i32>),
        name!(metric, Option<String>),
        name!(m, i32),
        name!(ef_construction, i32),
        name!(layers, i32),
        name!(size_bytes, i64),
        name!(used_bytes, i64),
        name!(format_version, Option<i32>),
        name!(storage, String),
        name!(changes, i64),
        name!(quantization, String),
        name!(bits, Option<i32>),
        name!(keep_vectors, bool),
        name!(neighbour_codes, bool),
    ),
> {
    crate::storage::require_hannoy_index(&index);
    // SAFETY: an open hannoy index relation.
    let (engine, storage, graph, changes) = unsafe {
        let index = index.as_ptr();
        // What the index holds, not what waits to be linked into it.
        let engine = crate::am::merge::merge(index, crate::am::merge::Wait::Yes)
            .and_then(|()| crate::storage::open(index))
            .unwrap_or_else(|unusable| unusable.raise(index));
        let storage = crate::storage::current_folder(index).unwrap_or_default();
        let changes = crate::storage::changes(index).unwrap_or(0) as i64;
        (engine, storage, crate::am::options::read(index), changes)
    };
    let storage = storage.display().to_string();
    // What the folder was built with once there is one (`auto` resolved); the options until
    // then.
    let (quantization, keep_vectors, neighbour_codes) = engine
        .as_ref()
        .map(|e| {
            let options = e.info().or_raise().options;
            (
                QuantizationOption::Given(options.quantization),
                options.keep_vectors,
                options.neighbour_codes,
            )
        })
        .unwrap_or((
            graph.quantization,
            graph.keep_vectors,
            graph.neighbour_codes,
        ));
    let (quantization, bits) = match quantization {
        QuantizationOption::Auto => ("auto".to_string(), None),
        QuantizationOption::Given(Quantization::None) => ("none".to_string(), None),
        QuantizationOption::Given(Quantization::Rabitq { bits }) => {
            ("rabitq".to_string(), Some(bits as i32))
        }
    };
    let row = match engine {
        None => (
            0,
            None,
            None,
            graph.m as i32,
            graph.ef_construction as i32,
            0,
            0,
            0,
            None,
            storage,
            changes,
            quantization,
            bits,
            keep_vectors,
            neighbour_codes,
        ),
        Some(engine) => {
            let info = engine.info().or_raise();
            (
                info.len as i64,
                Some(info.options.dimensions as i32),
                Some(info.options.metric.name().to_string()),
                info.options.m as i32,
                info.options.ef_construction as i32,
                info.max_level as i32 + 1,
                info.file_bytes as i64,
                info.used_bytes as i64,
                Some(info.format_version as i32),
                storage,
                changes,
                quantization,
                bits,
                keep_vectors,
                neighbour_codes,
            )
        }
    };
    TableIterator::once(row)
}
