//! An integrity check of the graph, like amcheck for a btree: run by tests after every kind of
//! change, and later by the access method's check function.

use roaring::RoaringBitmap;

use crate::error::Result;
use crate::graph::repair::mark_reachable;
use crate::graph::view::LmdbView;
use crate::graph::GraphView;
use crate::storage::Store;
use crate::ItemId;

/// What the check found. An index is sound when [`CheckReport::is_sound`] holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub live: u64,
    /// Live items reachable from the entry point on layer 0.
    pub reachable: u64,
    /// Up to 20 live items that are not reachable.
    pub unreachable_sample: Vec<ItemId>,
    /// Links that point at an id that is not live (a deleted or never used id).
    pub dangling_links: u64,
    /// Link lists stored for ids that are not live.
    pub orphan_lists: u64,
    /// Live items without a layer-0 list.
    pub missing_lists: u64,
    /// Live items whose vector cannot be read.
    pub missing_vectors: u64,
    /// Live items whose code is missing or is not the code of their vector (an index with
    /// codes only).
    pub mismatched_codes: u64,
    /// Lists whose copy with their neighbours' codes is missing, links otherwise or holds
    /// another code than a neighbour's own, plus such copies without a list (an index that
    /// keeps them).
    pub mismatched_coded_lists: u64,
    /// Live items with a caller key.
    pub keyed: u64,
    /// Keys held by ids that are not live.
    pub stray_keys: u64,
    /// Keys whose reverse entry is missing or points elsewhere, in either direction.
    pub mismatched_keys: u64,
    /// Live items with filter values.
    pub filtered: u64,
    /// Filter records of ids that are not live, and entries of such ids in value bitmaps.
    pub stray_filters: u64,
    /// (value, live item) pairs in a bitmap but not in the item's record or the other way
    /// round, plus stored empty bitmaps.
    pub mismatched_filters: u64,
}

impl CheckReport {
    pub fn is_sound(&self) -> bool {
        self.reachable == self.live
            && self.dangling_links == 0
            && self.orphan_lists == 0
            && self.missing_lists == 0
            && self.missing_vectors == 0
            && self.mismatched_codes == 0
            && self.mismatched_coded_lists == 0
            && self.stray_keys == 0
            && self.mismatched_keys == 0
            && self.stray_filters == 0
            && self.mismatched_filters == 0
            // Keys are all or nothing: the access method keys every item.
            && (self.keyed == 0 || self.keyed == self.live)
    }
}

pub(crate) fn check_graph(
    view: &LmdbView<'_>,
    store: Store,
    items: &RoaringBitmap,
) -> Result<CheckReport> {
    let mut report = CheckReport {
        live: items.len(),
        ..Default::default()
    };
    let mut with_layer0 = RoaringBitmap::new();
    for entry in store.all_links(view.txn)? {
        let (layer, id, list) = entry?;
        if !items.contains(id) {
            report.orphan_lists += 1;
            continue;
        }
        if layer == 0 {
            with_layer0.insert(id);
        }
        report.dangling_links += list.iter().filter(|n| !items.contains(*n)).count() as u64;
    }
    report.missing_lists = (items - &with_layer0).len();
    for id in items {
        if view.vector(id).is_err() {
            report.missing_vectors += 1;
        }
    }
    report.mismatched_codes = check_codes(view, store, items)?;
    report.mismatched_coded_lists = check_coded_lists(view, store)?;
    let mut keys = 0u64;
    for entry in store.all_keys(view.txn)? {
        let (id, key) = entry?;
        keys += 1;
        if !items.contains(id) {
            report.stray_keys += 1;
        } else {
            report.keyed += 1;
        }
        if store.item_of(view.txn, key)? != Some(id) {
            report.mismatched_keys += 1;
        }
    }
    report.mismatched_keys += store.reverse_key_count(view.txn)?.abs_diff(keys);
    if let Some(filters) = store.filters() {
        filters.check(view.txn, items, &mut report)?;
    }
    if let Some((entry, _)) = view.meta.entry() {
        let mut reachable = RoaringBitmap::new();
        mark_reachable(view, entry, &mut reachable)?;
        reachable &= items;
        report.reachable = reachable.len();
        report.unreachable_sample = (items - &reachable).iter().take(20).collect();
    }
    Ok(report)
}

fn check_coded_lists(view: &LmdbView<'_>, store: Store) -> Result<u64> {
    if !view.meta.neighbour_codes() {
        return Ok(0);
    }
    let mut mismatched = 0u64;
    let mut lists = 0u64;
    for entry in store.all_links(view.txn)? {
        let (layer, id, list) = entry?;
        lists += 1;
        let Some(coded) = view.coded_list(id, layer)? else {
            mismatched += 1;
            continue;
        };
        let same = coded.links().with_status().eq(list.with_status())
            && coded
                .iter()
                .all(|(n, code)| store.code(view.txn, view.meta, n).ok() == Some(code));
        mismatched += u64::from(!same);
    }
    Ok(mismatched + store.coded_list_count(view.txn)?.abs_diff(lists))
}

/// Live items whose stored code differs from their vector's code made now: codes are a pure
/// function of the vector and the stored centroid and seed, so any difference is a write that
/// stored a vector without its code.
fn check_codes(view: &LmdbView<'_>, store: Store, items: &RoaringBitmap) -> Result<u64> {
    if view.meta.code_bits == 0 || items.is_empty() {
        return Ok(0);
    }
    let Some(quantizer) = crate::codes::stored::load(store, view.txn, view.meta)? else {
        // Live items and no centroid: every code is unusable.
        return Ok(items.len());
    };
    let metric = view.meta.metric();
    let mut mismatched = 0u64;
    if !view.meta.keeps_vectors() {
        // Nothing to code again: each code must read and stand for a finite vector.
        for id in items {
            let decoded = store
                .code(view.txn, view.meta, id)
                .ok()
                .and_then(|code| quantizer.decode(code));
            if !decoded.is_some_and(|v| v.iter().all(|x| x.is_finite())) {
                mismatched += 1;
            }
        }
        return Ok(mismatched);
    }
    for id in items {
        let (Ok(vector), Ok(code)) = (view.vector(id), store.code(view.txn, view.meta, id)) else {
            mismatched += 1;
            continue;
        };
        let expected = crate::codes::stored::code_input(metric, &vector)
            .map(|input| quantizer.encode(&input))
            .transpose()?;
        if expected.as_ref().map(|c| c.as_bytes()) != Some(code) {
            mismatched += 1;
        }
    }
    Ok(mismatched)
}
