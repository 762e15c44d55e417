//! Deleting items with FreshDiskANN-style consolidation: every node that pointed at a deleted
//! node takes that node's neighbours as candidates and prunes back to its cap. Deleted ids lose
//! every trace (vector slot aside, which the next insert overwrites), so there are no tombstones.
//!
//! Finding who points at a deleted node needs one pass over the link lists (no reverse index is
//! kept, it would double their size); no vector of an unaffected node is read.

use crate::graph::cancel::{CancelCheck, Pass, Watch};
use std::collections::HashMap;

use heed::RwTxn;
use rayon::prelude::*;
use roaring::RoaringBitmap;

use super::insert::ReaderPool;
use super::{GraphView, Scored};
use crate::error::{Error, Result};
use crate::storage::{link_key, link_owner_layer, CodeCopies, MetaRecord, StatusLink, Store};
use crate::ItemId;

/// What a delete did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeleteStats {
    /// Items removed (requested ids that were not live are ignored).
    pub deleted: u64,
    /// Neighbour lists rewritten to route around the deleted items.
    pub repaired_lists: u64,
    /// Items that had become unreachable and were linked back in.
    pub reconnected: u64,
}

/// How far candidates are gathered through chains of deleted nodes, so that deleting most of a
/// neighbourhood still leaves its survivors with neighbours.
const MAX_DELETED_HOPS: usize = 64;

pub(crate) fn delete_items(
    wtxn: &mut RwTxn,
    store: Store,
    meta: &mut MetaRecord,
    items: &mut RoaringBitmap,
    requested: &RoaringBitmap,
    cancel: &dyn Watch,
) -> Result<DeleteStats> {
    let doomed = requested & &*items;
    if doomed.is_empty() {
        return Ok(DeleteStats::default());
    }
    if doomed.len() == items.len() {
        clear_all(wtxn, store, meta, items)?;
        return Ok(DeleteStats {
            deleted: doomed.len(),
            ..DeleteStats::default()
        });
    }
    let links = LinksAround::scan(wtxn, store, &doomed)?;
    if cancel.cancelled() {
        return Err(Error::Cancelled);
    }
    let repaired = links.repair(wtxn, store, meta, &doomed, cancel)?;
    let repaired_lists = repaired.len() as u64;
    links.write(wtxn, store, meta, repaired)?;
    forget_items(wtxn, store, meta, items, &doomed)?;
    let reconnected = super::repair::reconnect_unreachable(wtxn, store, meta, items)?;
    Ok(DeleteStats {
        deleted: doomed.len(),
        repaired_lists,
        reconnected,
    })
}

/// Deleting every item: the stores are emptied whole, and every id is free again, so the next
/// insert fills empty storage in order.
fn clear_all(
    wtxn: &mut RwTxn,
    store: Store,
    meta: &mut MetaRecord,
    items: &mut RoaringBitmap,
) -> Result<()> {
    store.clear_items(wtxn)?;
    items.clear();
    meta.live = 0;
    meta.max_level = 0;
    meta.next_id = 0;
    Ok(())
}

/// The link lists a delete touches, by link key: those of the deleted nodes, and those of the
/// nodes pointing at them.
struct LinksAround {
    /// The deleted nodes' lists, through which their neighbours' new candidates are found.
    doomed: HashMap<u64, Vec<ItemId>>,
    /// The lists of live nodes that point at a deleted node, as they are before the delete,
    /// with each link's status.
    affected: Vec<(u64, Vec<StatusLink>)>,
}

impl LinksAround {
    /// One pass over every link list (no reverse index is kept).
    fn scan(wtxn: &RwTxn, store: Store, doomed: &RoaringBitmap) -> Result<LinksAround> {
        let mut links = LinksAround {
            doomed: HashMap::new(),
            affected: Vec::new(),
        };
        for entry in store.all_links(wtxn)? {
            let (layer, id, list) = entry?;
            if doomed.contains(id) {
                links
                    .doomed
                    .insert(link_key(layer, id), list.iter().collect());
            } else if list.iter().any(|n| doomed.contains(n)) {
                links
                    .affected
                    .push((link_key(layer, id), list.with_status().collect()));
            }
        }
        Ok(links)
    }

    /// New lists for the affected nodes, computed in parallel.
    fn repair(
        &self,
        wtxn: &RwTxn,
        store: Store,
        meta: &MetaRecord,
        doomed: &RoaringBitmap,
        cancel: &dyn Watch,
    ) -> Result<Vec<Repaired>> {
        let cancel = CancelCheck::new(cancel);
        cancel.pass(Pass::Delete, self.affected.len());
        let pool = ReaderPool::new(wtxn, store, meta)?;
        self.affected
            .par_iter()
            .map(|(key, list)| {
                cancel.check()?;
                let (owner, layer) = link_owner_layer(*key);
                let (kept, extra) = gather_candidates(owner, layer, list, doomed, &self.doomed);
                let room = meta.cap(layer).saturating_sub(kept.len());
                // The surviving links keep their statuses; the new ones were not weighed
                // against the list, so they count as filler.
                let (mut ids, mut diverse): (Vec<ItemId>, Vec<bool>) = kept.into_iter().unzip();
                if extra.len() <= room {
                    ids.extend(extra);
                } else {
                    let nearest = pool.with(|txn| {
                        nearest_candidates(&txn.view(store, meta), owner, &extra, room)
                    })?;
                    ids.extend(nearest);
                }
                diverse.resize(ids.len(), false);
                Ok(Repaired {
                    key: *key,
                    ids,
                    diverse,
                })
            })
            .collect()
    }

    /// Drops the deleted nodes' lists and stores the repaired ones.
    fn write(
        self,
        wtxn: &mut RwTxn,
        store: Store,
        meta: &MetaRecord,
        repaired: Vec<Repaired>,
    ) -> Result<()> {
        let mut removed_keys: Vec<u64> = self.doomed.into_keys().collect();
        removed_keys.sort_unstable();
        for key in removed_keys {
            let (owner, layer) = link_owner_layer(key);
            store.delete_links(wtxn, meta, owner, layer)?;
        }
        let mut copies = CodeCopies::default();
        for r in &repaired {
            let (owner, layer) = link_owner_layer(r.key);
            store.put_links(
                wtxn,
                meta,
                owner,
                layer,
                &r.ids,
                &r.diverse,
                false,
                &mut copies,
            )?;
        }
        Ok(())
    }
}

/// A list a delete rewrote, with which of its links are diverse.
struct Repaired {
    key: u64,
    ids: Vec<ItemId>,
    diverse: Vec<bool>,
}

/// The `room` candidates nearest to `owner`. The surviving links were chosen by the heuristic
/// already; running it again over the union would cost a pairwise comparison per candidate for
/// little recall, so the freed slots simply go to the nearest.
fn nearest_candidates(
    view: &impl GraphView,
    owner: ItemId,
    candidates: &[ItemId],
    room: usize,
) -> Result<Vec<ItemId>> {
    let owner_vector = view.vector(owner)?;
    let mut scored = candidates
        .iter()
        .map(|&id| {
            Ok(Scored {
                score: view.metric().score(&owner_vector, &view.vector(id)?),
                id,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if room < scored.len() {
        scored.select_nth_unstable(room.saturating_sub(1));
        scored.truncate(room);
    }
    Ok(scored.iter().map(|s| s.id).collect())
}

/// Removes the deleted items from the live set and their storage, and moves the entry point
/// off a deleted node.
fn forget_items(
    wtxn: &mut RwTxn,
    store: Store,
    meta: &mut MetaRecord,
    items: &mut RoaringBitmap,
    doomed: &RoaringBitmap,
) -> Result<()> {
    *items -= doomed;
    store.delete_empty_chunks(wtxn, meta, doomed, items)?;
    meta.live -= doomed.len() as u32;
    if items.is_empty() {
        meta.max_level = 0;
    } else if doomed.contains(meta.entry_point) {
        let (entry, top) = store
            .top_entry(wtxn)?
            .ok_or_else(|| crate::error::corrupt("live items but no links"))?;
        meta.entry_point = entry;
        meta.max_level = top as u32;
    }
    Ok(())
}

/// The surviving neighbours of `owner` with their statuses, and the new candidates found by
/// walking through its deleted neighbours (and their deleted neighbours, up to a bound).
fn gather_candidates(
    owner: ItemId,
    layer: usize,
    list: &[StatusLink],
    doomed: &RoaringBitmap,
    doomed_links: &HashMap<u64, Vec<ItemId>>,
) -> (Vec<StatusLink>, Vec<ItemId>) {
    let (kept, gone): (Vec<StatusLink>, Vec<StatusLink>) =
        list.iter().partition(|l| !doomed.contains(l.0));
    let mut queue: Vec<ItemId> = gone.into_iter().map(|l| l.0).collect();
    let mut seen_doomed = queue.clone();
    let mut extra = Vec::new();
    let direct = queue.len();
    let mut head = 0;
    // Every deleted neighbour is looked through; chains of deleted nodes only while the
    // candidates found so far could not refill the list.
    while head < queue.len()
        && head < MAX_DELETED_HOPS
        && (head < direct || extra.len() < list.len())
    {
        let d = queue[head];
        head += 1;
        for &n in doomed_links
            .get(&link_key(layer, d))
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            if !doomed.contains(n) {
                extra.push(n);
            } else if !seen_doomed.contains(&n) {
                seen_doomed.push(n);
                queue.push(n);
            }
        }
    }
    let mut sorted_kept: Vec<ItemId> = kept.iter().map(|l| l.0).collect();
    sorted_kept.sort_unstable();
    extra.sort_unstable();
    extra.dedup();
    extra.retain(|n| *n != owner && sorted_kept.binary_search(n).is_err());
    (kept, extra)
}
