//! `hannoy_index_check(index)`: an integrity check in the spirit of amcheck. The engine checks
//! its graph, key maps and filter bitmaps; this adds the comparison with the heap in both
//! directions: every row visible now with a non-NULL vector must have an item under its TID,
//! and items whose TID holds no such row are counted.

use pgrx::prelude::*;
use pgrx::PgRelation;

use std::collections::HashSet;

use hannoy_engine::CheckReport;

use crate::pg::error::OrRaise;

#[allow(clippy::type_complexity)]
#[pg_extern(strict)]
fn hannoy_index_check(
    index: PgRelation,
) -> TableIterator<
    'static,
    (
        name!(sound, bool),
        name!(items, i64),
        name!(reachable, i64),
        name!(unreachable_sample, Vec<i64>),
        name!(dangling_links, i64),
        name!(orphan_lists, i64),
        name!(missing_lists, i64),
        name!(missing_vectors, i64),
        name!(keyed, i64),
        name!(stray_keys, i64),
        name!(mismatched_keys, i64),
        name!(filtered, i64),
        name!(stray_filters, i64),
        name!(mismatched_filters, i64),
        name!(heap_rows, Option<i64>),
        name!(heap_rows_missing, Option<i64>),
        name!(stray_items, Option<i64>),
    ),
> {
    crate::storage::require_hannoy_index(&index);
    // The heap is read first: rows committed before this snapshot were in the pending list
    // before their commit, so merging it next puts them all in the engine snapshot.
    // SAFETY: an open hannoy index relation.
    let vector_column = unsafe { crate::am::describe(index.as_ptr()) }
        .layout
        .vector_column;
    let heap_keys = heap_row_keys(index.oid(), vector_column);
    // SAFETY: an open hannoy index relation.
    let engine = unsafe {
        let index = index.as_ptr();
        crate::am::merge::merge(index, crate::am::merge::Wait::Yes)
            .and_then(|()| crate::storage::open(index))
            .unwrap_or_else(|unusable| unusable.raise(index))
    };
    let reader = engine.as_ref().map(|engine| engine.read().or_raise());
    let report = match &reader {
        Some(reader) => reader.check().or_raise(),
        None => CheckReport::default(),
    };
    // Rows without an item, and items whose key is no row the index should hold: rows deleted
    // or rolled back that VACUUM has not reached yet count there too, so only after a VACUUM
    // does a stray item mean damage.
    let (missing, stray) = match &heap_keys {
        None => (None, None),
        Some(keys) => {
            let missing = match &reader {
                Some(reader) => keys
                    .iter()
                    .filter(|&&key| reader.item_for_key(key).or_raise().is_none())
                    .count(),
                None => keys.len(),
            };
            let rows: HashSet<u64> = keys.iter().copied().collect();
            let stray = match &reader {
                Some(reader) => reader
                    .keys()
                    .or_raise()
                    .filter(|entry| !entry.as_ref().is_ok_and(|(_, key)| rows.contains(key)))
                    .count(),
                None => 0,
            };
            (Some(missing as i64), Some(stray as i64))
        }
    };
    let count = |n: u64| n as i64;
    TableIterator::once((
        report.is_sound() && missing.unwrap_or(0) == 0,
        count(report.live),
        count(report.reachable),
        report
            .unreachable_sample
            .iter()
            .map(|&id| id as i64)
            .collect(),
        count(report.dangling_links),
        count(report.orphan_lists),
        count(report.missing_lists),
        count(report.missing_vectors),
        count(report.keyed),
        count(report.stray_keys),
        count(report.mismatched_keys),
        count(report.filtered),
        count(report.stray_filters),
        count(report.mismatched_filters),
        heap_keys.as_ref().map(|k| k.len() as i64),
        missing,
        stray,
    ))
}

/// Item keys (TIDs) of the rows the index should hold, visible now: those of its own table (not
/// of inheritance children) with a non-NULL vector that meet a partial index's predicate;
/// `None` for an index on an expression, whose values the heap does not hold. `vector_column`
/// is 0-based.
fn heap_row_keys(index: pg_sys::Oid, vector_column: usize) -> Option<Vec<u64>> {
    let target: Option<(String, String, String)> = Spi::connect(|client| {
        let row = client
            .select(
                "SELECT i.indrelid::regclass::text, quote_ident(a.attname::text),
                        coalesce(pg_get_expr(i.indpred, i.indrelid), 'true')
                 FROM pg_index i JOIN pg_attribute a
                   ON a.attrelid = i.indrelid AND a.attnum = i.indkey[$2]
                 WHERE i.indexrelid = $1",
                Some(1),
                &[index.into(), (vector_column as i32).into()],
            )?
            .first();
        Ok::<_, pgrx::spi::Error>(
            match (
                row.get::<String>(1)?,
                row.get::<String>(2)?,
                row.get::<String>(3)?,
            ) {
                (Some(table), Some(column), Some(predicate)) => Some((table, column, predicate)),
                _ => None,
            },
        )
    })
    .unwrap_or_else(|e| error!("could not read the index's table: {e}"));
    let (table, column, predicate) = target?;
    let query = format!(
        "SELECT (((ctid::text::point)[0])::int8 << 16) | ((ctid::text::point)[1])::int8
         FROM ONLY {table} WHERE {column} IS NOT NULL AND ({predicate})"
    );
    let keys = Spi::connect(|client| {
        client
            .select(&query, None, &[])?
            .map(|row| row.get::<i64>(1).map(|k| k.unwrap_or_default() as u64))
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap_or_else(|e| error!("could not read the index's table: {e}"));
    Some(keys)
}

/// Test builds only: removes the item of the row whose TID is `key` (block << 16 | offset), the
/// damage a lost item would be, so that tests can see the check report it.
#[cfg(any(test, feature = "pg_test"))]
#[pg_extern(strict)]
fn hannoy_test_drop_item(index: PgRelation, key: i64) -> bool {
    crate::storage::require_hannoy_index(&index);
    // SAFETY: an open hannoy index relation.
    unsafe {
        let index = index.as_ptr();
        let engine = crate::storage::open(index)
            .unwrap_or_else(|unusable| unusable.raise(index))
            .expect("the index holds items");
        if engine
            .read()
            .or_raise()
            .item_for_key(key as u64)
            .or_raise()
            .is_none()
        {
            return false;
        }
        let keys = [key as u64];
        let change = hannoy_engine::Change::Delete {
            keys: std::borrow::Cow::Borrowed(&keys),
        };
        crate::storage::change(index, &engine, &change)
            .unwrap_or_else(|unusable| unusable.raise(index));
        true
    }
}
