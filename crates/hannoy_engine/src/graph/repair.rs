//! Keeping every live item reachable from the entry point on layer 0. Pruning a list can take
//! away a node's last in-link, and deleting can cut a region off; both are rare, and this pass,
//! which reads only link lists, finds and mends them.

use heed::RwTxn;
use roaring::RoaringBitmap;

use super::view::LmdbView;
use super::visited::Visited;
use super::{search_layer, GraphView};
use crate::error::Result;
use crate::storage::{CodeCopies, MetaRecord, Store};
use crate::ItemId;

/// Links every live item that cannot be reached from the entry point on layer 0 back into the
/// graph, through an in-link from its nearest reachable item. Deletes that cut a region off
/// (deleting 90% of a cluster, say) are the only way this happens; normally it finds nothing.
pub(crate) fn reconnect_unreachable(
    wtxn: &mut RwTxn,
    store: Store,
    meta: &mut MetaRecord,
    items: &RoaringBitmap,
) -> Result<u64> {
    meta.unverified = 0;
    let Some((entry, top)) = meta.entry() else {
        return Ok(0);
    };
    let mut reachable = RoaringBitmap::new();
    mark_reachable(&LmdbView::new(wtxn, store, meta), entry, &mut reachable)?;
    // Read once: reconnecting writes links, never the centroid.
    let quantizer = crate::codes::stored::load(store, wtxn, meta)?;
    let mut reconnected = 0;
    let mut visited = Visited::pooled(meta.next_id as usize);
    let mut copies = CodeCopies::default();
    for lost in items.iter() {
        if reachable.contains(lost) {
            continue;
        }
        let (anchor, mut list) = {
            let view = LmdbView::new(wtxn, store, meta).decoding(quantizer.as_ref());
            let query = &*view.vector(lost)?;
            let ef = meta.ef_construction as usize;
            let eps = super::descend(&view, query, entry, top, 0, &mut visited)?;
            let mut found = search_layer(&view, query, &eps, ef, 0, &mut visited)?;
            // The upper layers can lead into a region that layer 0 cannot reach; a search that
            // starts on layer 0 at the entry point only meets reachable items.
            if !found.iter().any(|s| reachable.contains(s.id)) {
                let start = super::descend(&view, query, entry, 0, 0, &mut visited)?;
                found = search_layer(&view, query, &start, ef, 0, &mut visited)?;
            }
            let Some(anchor) = found
                .iter()
                .find(|s| s.id != lost && reachable.contains(s.id))
            else {
                return Err(crate::error::corrupt("no reachable item to reconnect to"));
            };
            let mut list = Vec::new();
            view.links_with_status(anchor.id, 0, &mut list)?;
            (anchor.id, list)
        };
        // The list may exceed its cap by this one link until its next prune: dropping another
        // link here could cut off whatever was reachable only through it. It is diverse, so
        // that the prune takes a filler link instead.
        list.push((lost, true));
        let (ids, diverse): (Vec<ItemId>, Vec<bool>) = list.into_iter().unzip();
        store.put_links(wtxn, meta, anchor, 0, &ids, &diverse, false, &mut copies)?;
        mark_reachable(&LmdbView::new(wtxn, store, meta), lost, &mut reachable)?;
        reconnected += 1;
    }
    Ok(reconnected)
}

/// Adds everything reachable from `start` on layer 0 to `reachable`.
pub(crate) fn mark_reachable(
    view: &LmdbView<'_>,
    start: ItemId,
    reachable: &mut RoaringBitmap,
) -> Result<()> {
    if !reachable.insert(start) {
        return Ok(());
    }
    let mut stack = vec![start];
    let mut links = Vec::new();
    while let Some(id) = stack.pop() {
        links.clear();
        view.neighbours(id, 0, &mut links)?;
        for &n in &links {
            if reachable.insert(n) {
                stack.push(n);
            }
        }
    }
    Ok(())
}
