//! Adding a batch of vectors to a stored graph, in one write transaction.
//!
//! The batch is first built into its own graph in memory (in parallel). If the index already has
//! items, every new item also searches the stored graph for its candidates, again in parallel,
//! each thread reading through its own nested read transaction of the write transaction. Each new
//! item then chooses its links among both candidate sets, and only the stored nodes it chose get
//! their lists rewritten. Work is proportional to the batch, never to the index.

use crate::graph::cancel::{CancelCheck, Pass, Watch};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;

use heed::RwTxn;
use rayon::prelude::*;
use roaring::RoaringBitmap;

use super::memory::{BuildParams, MemGraph};
use super::select::{add_link, select, Link, Owner, ScoredList};
use super::view::{Bounded, CachedTxn, WithBatch};
use super::visited::Visited;
use super::{level_for, search_layer, start, GraphView, Scored, INSERT_START_BEAM};
use crate::distance::PreparedVectors;
use crate::error::{corrupt, Error, Result};
use crate::storage::staged::Staging;
use crate::storage::{link_key, link_owner_layer, CodeCopies, MetaRecord, Store, ID_LIMIT};
use crate::ItemId;

/// A stored list that takes at most this many new links from one batch takes them one by one
/// (`add_link`); more, and it is re-selected whole, which weighs them all together.
const INCREMENTAL_ADDS: usize = 4;

pub(crate) fn params(meta: &MetaRecord) -> BuildParams {
    BuildParams {
        metric: meta.metric(),
        m: meta.m as usize,
        m0: meta.m0 as usize,
        ef_construction: meta.ef_construction as usize,
    }
}

/// Hands out the `n` lowest free ids: holes left by deletes first, then fresh ones.
pub(crate) fn allocate_ids(
    meta: &mut MetaRecord,
    items: &RoaringBitmap,
    n: usize,
) -> Result<Vec<ItemId>> {
    let mut ids = Vec::with_capacity(n);
    let holes = meta.next_id as u64 - items.range_cardinality(..meta.next_id);
    if holes > 0 {
        let mut free = RoaringBitmap::new();
        free.insert_range(..meta.next_id);
        free -= items;
        ids.extend(free.iter().take(n));
    }
    let fresh = n - ids.len();
    let end = meta.next_id as u64 + fresh as u64;
    // Link lists keep a status bit above the ids.
    if end > ID_LIMIT {
        return Err(Error::IdsExhausted);
    }
    ids.extend(meta.next_id..end as u32);
    meta.next_id = end as u32;
    Ok(ids)
}

/// Nested read transactions, one per rayon thread plus one for the calling thread.
pub(crate) struct ReaderPool<'w> {
    txns: Vec<Mutex<CachedTxn<'w>>>,
}

impl<'w> ReaderPool<'w> {
    pub fn new(wtxn: &'w RwTxn<'_>, store: Store, meta: &MetaRecord) -> Result<Self> {
        let count = rayon::current_num_threads() + 1;
        let txns = (0..count)
            .map(|_| {
                Ok(Mutex::new(CachedTxn::new(
                    wtxn.nested_read_txn()?,
                    store,
                    meta,
                )?))
            })
            .collect::<Result<_>>()?;
        Ok(ReaderPool { txns })
    }

    /// Runs `f` with this thread's transaction.
    pub fn with<R>(&self, f: impl FnOnce(&CachedTxn<'w>) -> R) -> R {
        let slot = rayon::current_thread_index()
            .unwrap_or(self.txns.len() - 1)
            .min(self.txns.len() - 1);
        let txn = self.txns[slot].lock().unwrap_or_else(|e| e.into_inner());
        f(&txn)
    }
}

/// What linking the batch into the stored graph decided, before anything is written.
struct Linked {
    /// Per new item (local index), per layer, its final neighbours.
    new_links: Vec<Vec<Vec<ItemId>>>,
    /// Stored nodes whose lists change: key -> new list.
    changed: Vec<(u64, Vec<ItemId>)>,
    /// Which links of the lists above are diverse, by list key and position. Links added past
    /// the end afterwards, to keep a node reachable, count as diverse: no prune takes them
    /// first.
    diverse: HashMap<u64, Vec<bool>>,
}

/// Inserts `batch`; returns the ids given to its vectors, in batch order.
pub(crate) fn insert_batch(
    wtxn: &mut RwTxn,
    store: Store,
    meta: &mut MetaRecord,
    items: &mut RoaringBitmap,
    batch: &PreparedVectors,
    cancel: &dyn Watch,
) -> Result<Vec<ItemId>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let fresh_index = meta.next_id == 0;
    let ids = allocate_ids(meta, items, batch.len())?;
    let levels: Vec<usize> = ids
        .iter()
        .map(|&id| level_for(meta.seed, id, meta.m as usize))
        .collect();
    let params = params(meta);
    let stored_entry = meta.entry();
    // Linked against a stored graph without full vectors, the batch is scored in the rotated
    // space stored items decode into; its codes are still made from `batch` itself.
    let rotated = match stored_entry {
        Some(_) if !meta.keeps_vectors() => {
            let quantizer = crate::codes::stored::load(store, wtxn, meta)?
                .ok_or_else(|| corrupt("an index without full vectors has items and no codes"))?;
            Some(crate::codes::stored::rotated(
                &quantizer,
                meta.metric(),
                batch,
            )?)
        }
        _ => None,
    };
    let working = rotated.as_ref().unwrap_or(batch);
    let graph = MemGraph::build(params, working, levels, cancel)?;

    let (batch_entry, batch_top) = graph.entry().expect("a non-empty batch has an entry");
    // What a batch holds is released as it is written, since LMDB's dirty pages take as much
    // memory again: the batch's graph (its lists, their ids and the byte copy) goes first (into
    // an empty index its lists are taken over, not copied), the chosen lists as each is
    // written, and only then are the vectors copied in, unless the caller wrote them ahead
    // (`storage::staged`).
    let mut linked = match stored_entry {
        None => {
            cancel.pass(Pass::Write, batch.len());
            let mut diverse = HashMap::new();
            let new_links = graph
                .into_lists()
                .enumerate()
                .map(|(i, mut layers)| {
                    for links in &mut layers {
                        for k in links.iter_mut() {
                            k.id = ids[k.id as usize];
                        }
                    }
                    split_new_lists(ids[i], layers, &mut diverse)
                })
                .collect();
            Linked {
                new_links,
                changed: Vec::new(),
                diverse,
            }
        }
        Some(entry) => {
            let new = NewItems {
                graph: &graph,
                batch: working,
                ids: &ids,
            };
            let linked = link_into_stored(wtxn, store, meta, new, entry, cancel)?;
            cancel.pass(Pass::Write, batch.len());
            drop(graph);
            drop(rotated);
            linked
        }
    };
    keep_new_items_reachable(&mut linked, &ids, stored_entry.map(|(e, _)| e), batch_entry);
    // Lists stored with their neighbours' codes wait for the batch's codes; other lists are
    // written (and freed) before the vectors are copied in.
    let mut unwritten = Some(linked);
    if !meta.neighbour_codes() {
        let linked = unwritten.take().expect("not yet written");
        write_lists(wtxn, store, meta, linked, &ids, fresh_index)?;
    }
    let staging = store.take_staged(wtxn, &ids, batch)?;
    if staging != Staging::InPlace {
        store.put_vectors(
            wtxn,
            meta,
            ids.iter()
                .copied()
                .zip((0..batch.len()).map(|i| batch.get(i))),
            fresh_index && staging == Staging::Nothing,
        )?;
    }

    if meta.entry().is_none_or(|(_, top)| batch_top > top) {
        meta.entry_point = ids[batch_entry as usize];
        meta.max_level = batch_top as u32;
    }
    for &id in &ids {
        items.insert(id);
    }
    meta.live += ids.len() as u32;
    crate::codes::stored::write_codes(wtxn, store, meta, items, &ids, batch, fresh_index)?;
    if let Some(linked) = unwritten {
        write_lists(wtxn, store, meta, linked, &ids, fresh_index)?;
    }
    // New items are made reachable above, but pruning a stored list can take away some older
    // node's last in-link (copies of one vector dominate each other in every list, so a group
    // of them can end up linking only each other). Finding that takes a pass over layer 0's
    // lists, about a microsecond per item, so it runs once the items inserted since the last
    // pass reach a tenth of the index: at most ten list reads per inserted item. Deletes always
    // run it, and a drained stream scores unreached items anyway.
    // A batch built into an empty index is linked whole in memory: nothing to verify.
    if !fresh_index {
        meta.unverified = meta.unverified.saturating_add(ids.len() as u32);
        if meta.unverified as u64 * 10 >= items.len() {
            super::repair::reconnect_unreachable(wtxn, store, meta, items)?;
        }
    }
    Ok(ids)
}

/// Writes every list `linked` holds in key order (appending is only valid into empty storage,
/// where keys arrive in order), freeing each list once written.
fn write_lists(
    wtxn: &mut RwTxn,
    store: Store,
    meta: &MetaRecord,
    linked: Linked,
    ids: &[ItemId],
    append: bool,
) -> Result<()> {
    let Linked {
        new_links,
        changed,
        mut diverse,
    } = linked;
    let mut writes: Vec<(u64, Vec<ItemId>)> = Vec::with_capacity(new_links.len() + changed.len());
    for (local, layers) in new_links.into_iter().enumerate() {
        for (layer, list) in layers.into_iter().enumerate() {
            writes.push((link_key(layer, ids[local]), list));
        }
    }
    writes.extend(changed);
    writes.sort_unstable_by_key(|(k, _)| *k);
    let mut copies = CodeCopies::default();
    for (key, list) in writes {
        let (owner, layer) = link_owner_layer(key);
        let statuses = diverse.remove(&key).unwrap_or_default();
        store.put_links(
            wtxn,
            meta,
            owner,
            layer,
            &list,
            &statuses,
            append,
            &mut copies,
        )?;
    }
    Ok(())
}

/// A batch being linked into a stored graph: what every step reads.
struct StoredLinking<'a, 'w> {
    store: Store,
    meta: &'a MetaRecord,
    graph: &'a MemGraph<'a>,
    batch: &'a PreparedVectors,
    ids: &'a [ItemId],
    /// The stored graph's entry point and its top layer.
    entry: (ItemId, usize),
    pool: ReaderPool<'w>,
}

/// Links chosen by new items for stored nodes: link key -> the new items, scored.
type Backlinks = HashMap<u64, Vec<Scored>>;
/// A stored node's new list and which of its links are diverse, and on layer 0 the links it
/// dropped.
struct Pruned {
    key: u64,
    ids: Vec<ItemId>,
    diverse: Vec<bool>,
    dropped: Vec<ItemId>,
}
/// A new item's lists per layer (ids, and whether each is diverse), and the links to it that
/// stored nodes must take in.
type Chosen = (Vec<Vec<Link>>, Vec<(u64, Scored)>);

/// The lists of the new item `id` on each layer (ids already the index's) as `Linked` keeps
/// them: the ids, returned, and their statuses, put in `diverse` under each list's key.
fn split_new_lists(
    id: ItemId,
    layers: Vec<Vec<Link>>,
    diverse: &mut HashMap<u64, Vec<bool>>,
) -> Vec<Vec<ItemId>> {
    layers
        .into_iter()
        .enumerate()
        .map(|(layer, list)| {
            diverse.insert(
                link_key(layer, id),
                list.iter().map(|l| l.diverse).collect(),
            );
            list.into_iter().map(|l| l.id).collect()
        })
        .collect()
}

/// The batch being inserted: its graph among itself, its vectors and the ids they were given.
struct NewItems<'a> {
    graph: &'a MemGraph<'a>,
    batch: &'a PreparedVectors,
    ids: &'a [ItemId],
}

fn link_into_stored(
    wtxn: &RwTxn,
    store: Store,
    meta: &MetaRecord,
    new: NewItems<'_>,
    entry: (ItemId, usize),
    cancel: &dyn Watch,
) -> Result<Linked> {
    let cancel = CancelCheck::new(cancel);
    let NewItems { graph, batch, ids } = new;
    let linking = StoredLinking {
        store,
        meta,
        graph,
        batch,
        ids,
        entry,
        pool: ReaderPool::new(wtxn, store, meta)?,
    };
    let (mut new_links, backlinks, mut diverse) = linking.choose_links(&cancel)?;
    let pruned = linking.take_in(backlinks, &cancel)?;
    let mut dropped = Vec::new();
    let mut changed = Vec::with_capacity(pruned.len());
    for p in pruned {
        dropped.extend(p.dropped.into_iter().map(|d| (p.key as ItemId, d)));
        diverse.insert(p.key, p.diverse);
        changed.push((p.key, p.ids));
    }
    linking.keep_last_in_links(&mut changed, &mut new_links, &dropped, &cancel)?;
    // The readers are nested in the write transaction, which cannot be written while they
    // live: they end here, before the batch is written.
    Ok(Linked {
        new_links,
        changed,
        diverse,
    })
}

impl StoredLinking<'_, '_> {
    /// Step 1: every new item chooses its links among stored and batch candidates. Returns
    /// each new item's lists, the links to it that stored nodes must take in, and which links
    /// of the new lists are diverse, by list key.
    #[allow(clippy::type_complexity)]
    fn choose_links(
        &self,
        cancel: &CancelCheck<'_>,
    ) -> Result<(Vec<Vec<Vec<ItemId>>>, Backlinks, HashMap<u64, Vec<bool>>)> {
        cancel.pass(Pass::SearchStored, self.batch.len());
        let chosen: Vec<Chosen> = (0..self.batch.len())
            .into_par_iter()
            .map_init(
                || Visited::pooled(self.meta.next_id as usize),
                |visited, local| {
                    cancel.check()?;
                    self.pool.with(|txn| self.choose_for(txn, local, visited))
                },
            )
            .collect::<Result<_>>()?;
        let mut new_links = Vec::with_capacity(chosen.len());
        let mut backlinks = Backlinks::new();
        let mut diverse = HashMap::with_capacity(chosen.len() * 2);
        for (local, (layers, links)) in chosen.into_iter().enumerate() {
            new_links.push(split_new_lists(self.ids[local], layers, &mut diverse));
            for (key, s) in links {
                backlinks.entry(key).or_default().push(s);
            }
        }
        Ok((new_links, backlinks, diverse))
    }

    /// The links of the new item `local` on each of its layers, and the links to it that
    /// stored nodes must take in.
    fn choose_for(
        &self,
        txn: &CachedTxn<'_>,
        local: usize,
        visited: &mut Visited,
    ) -> Result<Chosen> {
        let view = WithBatch::new(txn.view(self.store, self.meta), self.batch, self.ids);
        let query = self.batch.get(local);
        // An index that keeps codes beside its vectors reads, of the nodes the search passes,
        // only the vectors its codes say may be among the best.
        match view.stored.codes() {
            Some(codes) if self.meta.keeps_vectors() => {
                let coded = view.stored.coded_query(codes, query)?;
                let bounded = Bounded::new(&view.stored, codes, query, &coded);
                self.choose_with(&view, &bounded, local, visited)
            }
            _ => self.choose_with(&view, &view.stored, local, visited),
        }
    }

    /// `choose_for`, searching the stored graph through `stored`.
    fn choose_with<G: GraphView>(
        &self,
        view: &WithBatch<'_, '_>,
        stored: &G,
        local: usize,
        visited: &mut Visited,
    ) -> Result<Chosen> {
        let (meta, ids) = (self.meta, self.ids);
        let query = self.batch.get(local);
        let level = self.graph.level(local as ItemId);
        let (entry, top) = self.entry;
        let ef = meta.ef_construction as usize;
        let beam = ef.min(INSERT_START_BEAM);
        let mut eps = start(stored, query, entry, top, level.min(top), beam, visited)?;
        let mut layers = vec![Vec::new(); level + 1];
        let mut backlinks = Vec::new();
        for layer in (0..=level).rev() {
            let mut candidates: Vec<Scored> = self
                .graph
                .links(local as ItemId, layer)
                .iter()
                .map(|l| Scored {
                    score: l.score,
                    id: ids[l.id as usize],
                })
                .collect();
            if layer <= top {
                let found = search_layer(stored, query, &eps, ef, layer, visited)?;
                candidates.extend_from_slice(&found);
                eps = found;
            }
            candidates.sort_unstable();
            candidates.dedup_by_key(|s| s.id);
            let links = select(
                view,
                Owner::new(view, ids[local])?,
                &candidates,
                meta.cap(layer),
            )?;
            for l in &links {
                if ids.binary_search(&l.id).is_err() {
                    backlinks.push((
                        link_key(layer, l.id),
                        Scored {
                            score: l.score,
                            id: ids[local],
                        },
                    ));
                }
            }
            layers[layer] = links;
        }
        Ok((layers, backlinks))
    }

    /// Step 2: stored nodes chosen by new items take them in, pruning when a list overflows.
    fn take_in(&self, backlinks: Backlinks, cancel: &CancelCheck<'_>) -> Result<Vec<Pruned>> {
        let mut groups: Vec<(u64, Vec<Scored>)> = backlinks.into_iter().collect();
        groups.sort_unstable_by_key(|(k, _)| *k);
        cancel.pass(Pass::TakeIn, groups.len());
        groups
            .into_par_iter()
            .map(|(key, added)| {
                cancel.check()?;
                self.pool.with(|txn| self.take_in_one(txn, key, &added))
            })
            .collect()
    }

    /// The stored list under `key` with the new items `added` taken in.
    fn take_in_one(&self, txn: &CachedTxn<'_>, key: u64, added: &[Scored]) -> Result<Pruned> {
        let view = WithBatch::new(txn.view(self.store, self.meta), self.batch, self.ids);
        let (owner, layer) = link_owner_layer(key);
        let mut existing = Vec::new();
        view.stored.links_with_status(owner, layer, &mut existing)?;
        let cap = self.meta.cap(layer);
        let owner_vec = view.vector(owner)?;
        let owner = Owner::with_vector(&view, owner, &owner_vec);
        let mut list = ScoredList::new(&owner_vec, &existing);
        let (ids, diverse) = if added.len() <= INCREMENTAL_ADDS {
            for &new in added {
                add_link(&view, owner, &mut list, new, cap)?;
            }
            list.into_parts()
        } else {
            let mut scored = list.scored(&view)?;
            scored.extend_from_slice(added);
            scored.sort_unstable();
            scored.dedup_by_key(|s| s.id);
            select(&view, owner, &scored, cap)?
                .into_iter()
                .map(|l| (l.id, l.diverse))
                .unzip()
        };
        let dropped = if layer == 0 {
            existing
                .into_iter()
                .map(|(id, _)| id)
                .filter(|id| !ids.contains(id))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Pruned {
            key,
            ids,
            diverse,
            dropped,
        })
    }
}

/// What the parallel pass of `keep_last_in_links` found for one dropped link.
enum DroppedLink {
    /// A copy displaced in its ring by the new copy `local`, which must link it.
    Displaced(usize),
    /// It keeps a way in: nothing to do, whatever the pass adds later.
    LinkedElsewhere,
    /// No way in seen yet; links added while mending earlier drops may still provide one.
    Unsure,
}

/// How many lists the search for a way from a pruned list's owner to the node it dropped reads,
/// once the short ways have failed, before the link is put back instead: a link put back only
/// costs its list one link over its cap until the next prune.
const WAY_READS: usize = 32;

/// Where each id's layer-0 list lies once the batch is linked, in one array over the ids: the
/// judging of dropped links looks lists up tens of times for each, too often for a hash map
/// and a binary search.
struct ListPlaces(Vec<u32>);

/// Where one id's layer-0 list lies, as [`ListPlaces`] tells.
enum Place {
    /// The new item of this batch index.
    New(usize),
    /// The stored list rewritten as `changed[i]`.
    Changed(usize),
    /// The stored list as it was.
    Stored,
}

impl ListPlaces {
    const STORED: u32 = u32::MAX;
    /// Marks a new item's batch index (ids and batch indexes stay below 2^31).
    const NEW: u32 = 1 << 31;

    fn new(next_id: usize, ids: &[ItemId], changed: &[(u64, Vec<ItemId>)]) -> ListPlaces {
        let mut places = vec![Self::STORED; next_id];
        for (local, &id) in ids.iter().enumerate() {
            places[id as usize] = Self::NEW | local as u32;
        }
        for (i, (key, _)) in changed.iter().enumerate() {
            let (owner, layer) = link_owner_layer(*key);
            if layer == 0 {
                places[owner as usize] = i as u32;
            }
        }
        ListPlaces(places)
    }

    #[inline]
    fn of(&self, id: ItemId) -> Place {
        match self.0.get(id as usize).copied().unwrap_or(Self::STORED) {
            Self::STORED => Place::Stored,
            place if place & Self::NEW != 0 => Place::New((place & !Self::NEW) as usize),
            i => Place::Changed(i as usize),
        }
    }

    #[inline]
    fn is_new(&self, id: ItemId) -> bool {
        matches!(self.of(id), Place::New(_))
    }
}

/// Whether `list` holds `id`, compared in one pass without an early exit so that it compiles to
/// vector compares: lists hold a few dozen ids.
#[inline]
fn holds(list: &[ItemId], id: ItemId) -> bool {
    list.iter().fold(false, |found, &x| found | (x == id))
}

/// The lists of layer 0 as this batch leaves them: the new items' lists and the stored lists it
/// rewrote, else the stored ones.
struct FinalLists<'a> {
    changed: &'a [(u64, Vec<ItemId>)],
    places: &'a ListPlaces,
    /// Nodes that lost an in-link somewhere in this batch.
    lost_some_in_link: &'a Visited,
    new_links: &'a [Vec<Vec<ItemId>>],
}

impl FinalLists<'_> {
    /// The list of `id` if this batch wrote it.
    fn written(&self, id: ItemId) -> Option<&[ItemId]> {
        match self.places.of(id) {
            Place::New(local) => Some(&self.new_links[local][0]),
            Place::Changed(i) => Some(&self.changed[i].1),
            Place::Stored => None,
        }
    }

    /// The list of `id`, read into `buf` if this batch did not write it.
    fn list<'s>(
        &'s self,
        view: &WithBatch<'_, '_>,
        id: ItemId,
        buf: &'s mut Vec<ItemId>,
    ) -> Result<&'s [ItemId]> {
        if let Some(list) = self.written(id) {
            return Ok(list);
        }
        buf.clear();
        view.neighbours(id, 0, buf)?;
        Ok(buf)
    }

    /// Whether `lost` keeps a way in once `owner` drops it: a stored neighbour of it other than
    /// `owner` still links to it, and `owner` still leads to it.
    ///
    /// An in-link from a node that lost one itself may come from a group cut off together
    /// (four neighbours linking only each other once the batch pruned every way in), and one
    /// from a copy keeps a group of copies cut off as a whole: neither counts. Nor is an
    /// in-link enough on its own: the neighbour may be reachable only through `lost`, as in a
    /// small cluster whose members link each other and whose one way in was `owner`'s link.
    /// A way from `owner` is: every path from the entry point that took the dropped link can
    /// take the way instead, so whatever was reachable before the batch stays reachable.
    fn linked_elsewhere(
        &self,
        view: &WithBatch<'_, '_>,
        owner: ItemId,
        lost: ItemId,
        lost_vec: &[u8],
        as_owner: &Owner,
        visited: &mut Visited,
    ) -> Result<bool> {
        let (mut lost_buf, mut their_buf) = (Vec::new(), Vec::new());
        let lost_links = self.list(view, lost, &mut lost_buf)?;
        for &n in lost_links {
            if n == owner || self.lost_some_in_link.contains(n) || self.places.is_new(n) {
                continue;
            }
            // The distance last: most neighbours do not link back, and a list is cheaper to read.
            if holds(self.list(view, n, &mut their_buf)?, lost)
                && !as_owner.is_copy(view.score(lost_vec, n)?)
            {
                let near = Near {
                    lost,
                    lost_vec,
                    links: lost_links,
                    linking: n,
                };
                return self.leads_to(view, owner, near, visited);
            }
        }
        Ok(false)
    }

    /// Whether `owner` leads to `near.lost`. Ways of two or three links come first, the third
    /// through a neighbour of `lost` that links back: they need no distance. Failing those, a
    /// search from `owner`, nearest to `lost` first, reads at most `WAY_READS` more lists.
    fn leads_to(
        &self,
        view: &WithBatch<'_, '_>,
        owner: ItemId,
        near: Near<'_>,
        visited: &mut Visited,
    ) -> Result<bool> {
        let Near {
            lost,
            lost_vec,
            links: lost_links,
            linking,
        } = near;
        let (mut owner_buf, mut buf, mut near_buf) = (Vec::new(), Vec::new(), Vec::new());
        let owner_links = self.list(view, owner, &mut owner_buf)?;
        if holds(owner_links, linking) {
            return Ok(true);
        }
        // Whether each neighbour of `lost` links back, once its list has been read.
        let mut links_back: Vec<Option<bool>> = lost_links
            .iter()
            .map(|&n| (n == linking).then_some(true))
            .collect();
        visited.clear();
        for &n in lost_links {
            visited.insert(n);
        }
        for &n in owner_links {
            let their_links = self.list(view, n, &mut buf)?;
            if holds(their_links, lost) {
                return Ok(true);
            }
            for &m in their_links.iter().filter(|&&m| visited.contains(m)) {
                // Only the neighbours of `lost` are marked.
                let Some(i) = lost_links.iter().position(|&x| x == m) else {
                    continue;
                };
                let back = match links_back[i] {
                    Some(back) => back,
                    None => *links_back[i].insert(holds(self.list(view, m, &mut near_buf)?, lost)),
                };
                if back {
                    return Ok(true);
                }
            }
        }
        visited.clear();
        visited.insert(owner);
        let mut frontier = BinaryHeap::new();
        let mut list = owner_links;
        let mut fresh = Vec::with_capacity(list.len());
        for _ in 0..WAY_READS {
            fresh.clear();
            fresh.extend(list.iter().copied().filter(|&n| visited.insert(n)));
            // Each list's vectors asked for at once, as a search does, not waited on in turn.
            for &n in &fresh {
                view.prefetch(n);
            }
            for &n in &fresh {
                frontier.push(Reverse(Scored {
                    score: view.score(lost_vec, n)?,
                    id: n,
                }));
            }
            let Some(Reverse(nearest)) = frontier.pop() else {
                return Ok(false);
            };
            list = self.list(view, nearest.id, &mut buf)?;
            if holds(list, lost) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn judge(
        &self,
        view: &WithBatch<'_, '_>,
        owner: ItemId,
        lost: ItemId,
        visited: &mut Visited,
    ) -> Result<DroppedLink> {
        let lost_vec = view.vector(lost)?;
        let as_owner = Owner::with_vector(view, lost, &lost_vec);
        if as_owner.is_copy(view.score(&lost_vec, owner)?) {
            let owner_list = self.written(owner).expect("a pruned list was rewritten");
            for &n in owner_list {
                if let Place::New(local) = self.places.of(n) {
                    if as_owner.is_copy(view.score(&lost_vec, n)?) {
                        return Ok(DroppedLink::Displaced(local));
                    }
                }
            }
        }
        Ok(
            if self.linked_elsewhere(view, owner, lost, &lost_vec, &as_owner, visited)? {
                DroppedLink::LinkedElsewhere
            } else {
                DroppedLink::Unsure
            },
        )
    }
}

/// A dropped node, its neighbours, and one of them that links back to it.
struct Near<'a> {
    lost: ItemId,
    lost_vec: &'a [u8],
    links: &'a [ItemId],
    linking: ItemId,
}

impl StoredLinking<'_, '_> {
    /// Pruning a stored node's layer-0 list may take another stored node's only way in,
    /// cutting it off from every search. A dropped node normally keeps an in-link from one of
    /// its own neighbours (links are mostly mutual) and a way from the node that dropped it;
    /// one that has not once every list of the batch is final goes back into the list it was
    /// dropped from, over its cap until the next prune, as `keep_new_items_reachable` does for
    /// new items. `dropped` holds (owner, dropped) pairs.
    ///
    /// A copy dropped from its copy's list was displaced in their ring (see `select::Owner`)
    /// by a new copy, which then has to link it in turn; the new copy found its ring neighbours
    /// among the copies its search met, which need not include the displaced one.
    ///
    /// Every drop is judged in parallel against the lists as pruned; the few without a way in
    /// are judged again in order, since putting one back can give another its way in. Links
    /// are only ever added here, so a way in found in the parallel pass is still there.
    fn keep_last_in_links(
        &self,
        changed: &mut [(u64, Vec<ItemId>)],
        new_links: &mut [Vec<Vec<ItemId>>],
        dropped: &[(ItemId, ItemId)],
        cancel: &CancelCheck<'_>,
    ) -> Result<()> {
        let next_id = self.meta.next_id as usize;
        let places = ListPlaces::new(next_id, self.ids, changed);
        let mut lost_some_in_link = Visited::new(next_id);
        for &(_, lost) in dropped {
            lost_some_in_link.insert(lost);
        }
        cancel.pass(Pass::KeepInLinks, dropped.len());
        let verdicts: Vec<DroppedLink> = {
            let lists = FinalLists {
                changed,
                places: &places,
                lost_some_in_link: &lost_some_in_link,
                new_links,
            };
            dropped
                .par_iter()
                .map_init(
                    || Visited::pooled(self.meta.next_id as usize),
                    |visited, &(owner, lost)| {
                        cancel.check()?;
                        self.pool
                            .with(|txn| lists.judge(&self.view(txn), owner, lost, visited))
                    },
                )
                .collect::<Result<_>>()?
        };
        let mut visited = Visited::pooled(self.meta.next_id as usize);
        for (&(owner, lost), verdict) in dropped.iter().zip(verdicts) {
            match verdict {
                DroppedLink::Displaced(local) => {
                    if !new_links[local][0].contains(&lost) {
                        new_links[local][0].push(lost);
                    }
                }
                DroppedLink::LinkedElsewhere => {}
                DroppedLink::Unsure => {
                    let lists = FinalLists {
                        changed,
                        places: &places,
                        lost_some_in_link: &lost_some_in_link,
                        new_links,
                    };
                    let reached = self.pool.with(|txn| {
                        let view = self.view(txn);
                        let lost_vec = view.vector(lost)?;
                        let as_owner = Owner::with_vector(&view, lost, &lost_vec);
                        lists.linked_elsewhere(
                            &view,
                            owner,
                            lost,
                            &lost_vec,
                            &as_owner,
                            &mut visited,
                        )
                    })?;
                    if !reached {
                        let Place::Changed(i) = places.of(owner) else {
                            unreachable!("a pruned list was rewritten")
                        };
                        changed[i].1.push(lost);
                    }
                }
            }
        }
        Ok(())
    }

    fn view<'t>(&'t self, txn: &'t CachedTxn<'_>) -> WithBatch<'t, 't> {
        WithBatch::new(txn.view(self.store, self.meta), self.batch, self.ids)
    }
}

/// Every new item must end up reachable on layer 0. An item that every chooser pruned away, or a
/// group of new items that only point at each other, gets an in-link from its nearest reachable
/// neighbour. That list may exceed its cap by one until its next prune: dropping a link instead
/// could cut off whatever was reachable only through it.
fn keep_new_items_reachable(
    linked: &mut Linked,
    ids: &[ItemId],
    stored_entry: Option<ItemId>,
    batch_entry: ItemId,
) {
    // Reachability is decided within what this batch writes: stored nodes are reachable already,
    // and a new item is reached through a stored node's rewritten list or another new item.
    let local = |id: ItemId| ids.binary_search(&id).ok();
    let mut reached = vec![false; ids.len()];
    let mut stack: Vec<usize> = Vec::new();
    let visit = |start: usize, reached: &mut Vec<bool>, stack: &mut Vec<usize>, linked: &Linked| {
        if reached[start] {
            return;
        }
        reached[start] = true;
        stack.push(start);
        while let Some(i) = stack.pop() {
            for &n in &linked.new_links[i][0] {
                if let Some(j) = local(n) {
                    if !reached[j] {
                        reached[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
    };
    let roots: Vec<usize> = match stored_entry {
        None => vec![batch_entry as usize],
        Some(_) => linked
            .changed
            .iter()
            .filter(|(k, _)| link_owner_layer(*k).1 == 0)
            .flat_map(|(_, list)| list.iter().filter_map(|&n| local(n)))
            .collect(),
    };
    for root in roots {
        visit(root, &mut reached, &mut stack, linked);
    }
    loop {
        let mut progressed = false;
        for i in 0..ids.len() {
            if reached[i] {
                continue;
            }
            // Its nearest neighbour that is known to be reachable: a stored node, or a reached
            // new item.
            // (Every stored node a new item links to received a back link, so its list is in
            // `changed` and can take one more.)
            let anchor = linked.new_links[i][0]
                .iter()
                .copied()
                .find(|&n| match local(n) {
                    Some(j) => reached[j],
                    None => linked.changed.iter().any(|(k, _)| *k == link_key(0, n)),
                });
            let Some(anchor) = anchor else { continue };
            match local(anchor) {
                Some(j) => linked.new_links[j][0].push(ids[i]),
                None => {
                    let (_, list) = linked
                        .changed
                        .iter_mut()
                        .find(|(k, _)| *k == link_key(0, anchor))
                        .expect("checked above");
                    list.push(ids[i]);
                }
            }
            visit(i, &mut reached, &mut stack, linked);
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::codes::rotation::SplitMix;
    use crate::graph::GraphView;
    use crate::{never_cancel, Index, IndexOptions, ItemId, Metric, VectorRef};

    /// Points in 8 dimensions around 12 centres, from a fixed seed.
    fn points(n: usize) -> Vec<Vec<f32>> {
        let mut rng = SplitMix(0x2545_f491_4f6c_dd1d);
        let mut next = move || (rng.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        let centres: Vec<Vec<f32>> = (0..12)
            .map(|_| (0..8).map(|_| 4.0 * next()).collect())
            .collect();
        (0..n)
            .map(|i| centres[i % 12].iter().map(|c| c + next()).collect())
            .collect()
    }

    /// Lists written by a first batch, and then rewritten as stored lists take in later
    /// batches' items, carry the heuristic's statuses: filler links exist, stored lists that
    /// took in later items marked some of those filler, the first link of every list is
    /// diverse, and nearly every filler link has a closer link of its list nearer to it than
    /// the owner is. Not every one: statuses are kept incrementally, so a link demoted by a
    /// link that a later prune drops stays filler, and a list that took a link back to keep a
    /// node reachable is no longer in order.
    #[test]
    fn stored_lists_mark_the_links_a_closer_link_dominates_as_filler() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = IndexOptions::new(Metric::Euclidean, 8);
        options.m = 4;
        let index = Index::create(dir.path(), &options).unwrap();
        let data = points(1_400);
        let first = 600;
        for batch in [&data[..first], &data[first..1_000], &data[1_000..]] {
            index
                .write(|w| {
                    let prepared = w.prepare(batch.iter().map(|v| VectorRef::Floats(v)))?;
                    w.insert(&prepared, &never_cancel)
                })
                .unwrap();
        }
        let reader = index.read().unwrap();
        let view = reader.lmdb_view();
        let metric = view.metric();
        let (mut fillers, mut dominated_fillers, mut later_fillers_in_first_lists) = (0, 0, 0);
        for owner in 0..data.len() as ItemId {
            let mut links = Vec::new();
            view.links_with_status(owner, 0, &mut links).unwrap();
            assert!(links[0].1, "{owner}'s first link is filler: {links:?}");
            let owner_vec = view.vector(owner).unwrap();
            let score = |id: ItemId| metric.score(&owner_vec, &view.vector(id).unwrap());
            for &(id, diverse) in &links {
                if diverse {
                    continue;
                }
                fillers += 1;
                if (owner as usize) < first && id as usize >= first {
                    later_fillers_in_first_lists += 1;
                }
                let filler_vec = view.vector(id).unwrap();
                dominated_fillers += links.iter().any(|&(d, _)| {
                    score(d) < score(id)
                        && metric.score(&filler_vec, &view.vector(d).unwrap()) < score(id)
                }) as usize;
            }
        }
        assert!(fillers > 100, "{fillers} filler links");
        assert!(
            dominated_fillers * 100 >= fillers * 95,
            "{dominated_fillers} of {fillers} filler links dominated"
        );
        assert!(
            later_fillers_in_first_lists > 10,
            "{later_fillers_in_first_lists} filler links to later items in first-batch lists"
        );
    }
}
