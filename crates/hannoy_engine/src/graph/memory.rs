//! Parallel HNSW construction in memory over one batch of prepared vectors.
//!
//! Items are inserted highest level first, so the upper layers exist before the bulk of layer 0
//! is built; after the first item every insertion runs on rayon's pool. Each (node, layer) list
//! has its own mutex, held only to copy the list or to add one link, never across a search;
//! searches read the links from a lock-free copy of their ids.
//!
//! Searches score on a byte per element (`distance::bytes`) where the metric allows: a build
//! waits on memory for most of its time, and a 384-d vector in bytes is a quarter of its f32
//! form. What the search found is then scored exactly, so the scores the lists keep (and a
//! list's order) are those of the vectors themselves; the heuristic's checks of whether a link
//! is diverse, which compare two links with each other, score them on bytes too.

use crate::graph::cancel::{CancelCheck, Pass, Watch};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, RwLock};

use rayon::prelude::*;

use super::select::{add_link, select, Link, Owner};
use super::visited::Visited;
use super::{search_layer, start, GraphView, Scored, VectorBytes, INSERT_START_BEAM};
use crate::distance::bytes::{self, ByteVectors};
use crate::distance::{Metric, PreparedVectors};
use crate::error::Result;
use crate::ItemId;

/// The memory one vector of a batch holds while the batch is built and written, for callers
/// that size batches and write the vectors ahead (`Index::stage_vectors`): the vector in its
/// stored form, an eighth of it again for what the writes ahead leave allocated (32 MB at
/// most), its byte form for the searches, and its lists while the batch's graph is built, the
/// largest part: up to 2·m + 1 scored links, their ids in the searches' copy and the per-list
/// bookkeeping, about 64·m + 200 bytes in all (docs/benchmarks.md, "Builds in batches", has
/// the peaks measured against it). Linking a batch into a stored graph takes more on top, for
/// the stored lists it rewrites. An index without full vectors writes none ahead, but links a
/// later batch on a rotated copy of it (`codes::stored::rotated`): a vector more.
pub fn batch_bytes_per_vector(
    metric: Metric,
    dimensions: usize,
    m: usize,
    keep_vectors: bool,
) -> usize {
    let vector = metric.vector_bytes(dimensions);
    let ahead_or_rotated = if keep_vectors { vector / 8 } else { vector };
    vector + ahead_or_rotated + bytes::record_bytes(metric, dimensions) + 64 * m + 200
}

/// Build parameters, read from the index's metadata.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BuildParams {
    pub metric: Metric,
    pub m: usize,
    pub m0: usize,
    pub ef_construction: usize,
}

impl BuildParams {
    pub fn cap(&self, layer: usize) -> usize {
        if layer == 0 {
            self.m0
        } else {
            self.m
        }
    }
}

/// A graph over local ids `0..batch.len()`.
pub(crate) struct MemGraph<'v> {
    params: BuildParams,
    vectors: &'v PreparedVectors,
    levels: Vec<usize>,
    links: Vec<Box<[Mutex<Vec<Link>>]>>,
    /// Every list's link ids, copied from the list whenever it changes.
    ids: LinkIds,
    entry: RwLock<Option<(ItemId, usize)>>,
    /// The vectors at a byte per element, which the searches score on when the metric allows.
    bytes: Option<ByteVectors>,
}

/// The link ids of every list in one array, which the searches read without taking the lists'
/// locks or following their pointers (each read through a locked list cost three dependent
/// cache misses): `m0` slots after a length for each node's layer-0 list, then `m` slots after a
/// length for each of its lists above, in the order of the nodes. A list read while its writer
/// copies it in may mix the old links with the new; every one of them is a node of the graph,
/// so a search sees one more or one fewer link at worst, as it would had it read the list a
/// moment earlier or later.
struct LinkIds {
    slots: Box<[AtomicU32]>,
    layer0_stride: usize,
    upper_stride: usize,
    /// Where each node's upper lists begin, counted in upper lists; one more entry at the end.
    upper_start: Vec<u32>,
}

impl LinkIds {
    fn new(levels: &[usize], m: usize, m0: usize) -> LinkIds {
        let mut upper_start = Vec::with_capacity(levels.len() + 1);
        let mut upper = 0;
        for &level in levels {
            upper_start.push(upper as u32);
            upper += level;
        }
        upper_start.push(upper as u32);
        let (layer0_stride, upper_stride) = (m0 + 1, m + 1);
        let len = levels.len() * layer0_stride + upper * upper_stride;
        LinkIds {
            slots: (0..len).map(|_| AtomicU32::new(0)).collect(),
            layer0_stride,
            upper_stride,
            upper_start,
        }
    }

    /// The slots of `id`'s list on `layer`, which must be at most the node's level.
    fn list(&self, id: ItemId, layer: usize) -> &[AtomicU32] {
        let id = id as usize;
        let (start, stride) = if layer == 0 {
            (id * self.layer0_stride, self.layer0_stride)
        } else {
            let upper = self.upper_start[id] as usize + layer - 1;
            debug_assert!(upper < self.upper_start[id + 1] as usize);
            let before = (self.upper_start.len() - 1) * self.layer0_stride;
            (before + upper * self.upper_stride, self.upper_stride)
        };
        &self.slots[start..start + stride]
    }

    /// Copies `links` in; called with the list's lock held, so writers of one list never mix.
    fn publish(&self, id: ItemId, layer: usize, links: &[Link]) {
        let list = self.list(id, layer);
        for (slot, link) in list[1..].iter().zip(links) {
            slot.store(link.id, Ordering::Relaxed);
        }
        list[0].store(links.len().min(list.len() - 1) as u32, Ordering::Release);
    }

    #[inline]
    fn read(&self, id: ItemId, layer: usize, out: &mut Vec<ItemId>) {
        let list = self.list(id, layer);
        let len = list[0].load(Ordering::Acquire) as usize;
        out.extend(
            list[1..=len]
                .iter()
                .map(|slot| slot.load(Ordering::Relaxed)),
        );
    }
}

/// The graph with its vectors read in byte form.
struct ByteView<'g, 'v> {
    graph: &'g MemGraph<'v>,
    bytes: &'g ByteVectors,
}

impl GraphView for ByteView<'_, '_> {
    fn metric(&self) -> Metric {
        self.graph.params.metric
    }

    #[inline]
    fn vector(&self, id: ItemId) -> Result<VectorBytes<'_>> {
        Ok(VectorBytes::Borrowed(self.bytes.get(id as usize)))
    }

    #[inline]
    fn prefetch(&self, id: ItemId) {
        let vector = self.bytes.get(id as usize);
        crate::distance::prefetch(vector.as_ptr(), vector.len());
    }

    #[inline]
    fn neighbours(&self, id: ItemId, layer: usize, out: &mut Vec<ItemId>) -> Result<()> {
        self.graph.neighbours(id, layer, out)
    }

    #[inline]
    fn score(&self, query: &[u8], id: ItemId) -> Result<f32> {
        Ok(self.bytes.score(query, self.bytes.get(id as usize)))
    }

    #[inline]
    fn between(&self, a: &[u8], b: &[u8]) -> f32 {
        self.bytes.score(a, b)
    }
}

impl GraphView for MemGraph<'_> {
    fn metric(&self) -> Metric {
        self.params.metric
    }

    #[inline]
    fn vector(&self, id: ItemId) -> Result<VectorBytes<'_>> {
        Ok(VectorBytes::Borrowed(self.vectors.get(id as usize)))
    }

    #[inline]
    fn score(&self, query: &[u8], id: ItemId) -> Result<f32> {
        Ok(self.between(query, self.vectors.get(id as usize)))
    }

    #[inline]
    fn prefetch(&self, id: ItemId) {
        let vector = self.vectors.get(id as usize);
        crate::distance::prefetch(vector.as_ptr(), vector.len());
    }

    #[inline]
    fn neighbours(&self, id: ItemId, layer: usize, out: &mut Vec<ItemId>) -> Result<()> {
        if layer <= self.levels[id as usize] {
            self.ids.read(id, layer, out);
        }
        Ok(())
    }
}

/// A poisoned lock only means another insertion panicked; that panic is reported on its own.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<'v> MemGraph<'v> {
    pub fn build(
        params: BuildParams,
        vectors: &'v PreparedVectors,
        levels: Vec<usize>,
        cancel: &dyn Watch,
    ) -> Result<MemGraph<'v>> {
        let n = vectors.len();
        let links = levels
            .iter()
            .map(|&l| {
                (0..=l)
                    .map(|layer| Mutex::new(Vec::with_capacity(params.cap(layer) + 1)))
                    .collect()
            })
            .collect();
        let bytes = bytes::searchable(params.metric).then(|| {
            ByteVectors::new(
                params.metric,
                vectors.vector_bytes() / std::mem::size_of::<f32>(),
                n,
                |i| vectors.get(i),
            )
        });
        let ids = LinkIds::new(&levels, params.m, params.m0);
        let graph = MemGraph {
            params,
            vectors,
            levels,
            links,
            ids,
            entry: RwLock::new(None),
            bytes,
        };
        let mut order: Vec<ItemId> = (0..n as ItemId).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(graph.levels[i as usize]));
        let Some((&first, rest)) = order.split_first() else {
            return Ok(graph);
        };
        *graph.entry.write().unwrap_or_else(|e| e.into_inner()) =
            Some((first, graph.levels[first as usize]));

        let cancel = CancelCheck::new(cancel);
        cancel.pass(Pass::BatchGraph, n);
        rest.par_iter().try_for_each_init(
            || Visited::pooled(n),
            |visited, &q| {
                cancel.check()?;
                graph.insert(q, visited)
            },
        )?;
        Ok(graph)
    }

    fn insert(&self, q: ItemId, visited: &mut Visited) -> Result<()> {
        match &self.bytes {
            Some(bytes) => self.insert_with(
                &ByteView { graph: self, bytes },
                bytes.get(q as usize),
                q,
                visited,
            ),
            None => self.insert_with(self, self.vectors.get(q as usize), q, visited),
        }
    }

    fn insert_with<V: GraphView>(
        &self,
        view: &V,
        search_query: &[u8],
        q: ItemId,
        visited: &mut Visited,
    ) -> Result<()> {
        let level = self.levels[q as usize];
        let query = self.vectors.get(q as usize);
        let (entry, top) = self
            .entry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .expect("set before the parallel phase");
        let mut eps = start(
            view,
            search_query,
            entry,
            top,
            level.min(top),
            self.params.ef_construction.min(INSERT_START_BEAM),
            visited,
        )?;
        for layer in (0..=level.min(top)).rev() {
            let found = search_layer(
                view,
                search_query,
                &eps,
                self.params.ef_construction,
                layer,
                visited,
            )?;
            let mut candidates: Vec<Scored> = found.iter().copied().filter(|s| s.id != q).collect();
            // A search on bytes ranks; links are chosen on exact scores.
            if self.bytes.is_some() {
                for c in &mut candidates {
                    c.score = self.score(query, c.id)?;
                }
                candidates.sort_unstable();
            }
            // The owners' scores against themselves are exact, as their links' are, for the
            // test of copies; the checks of which links are diverse compare two links, which
            // the view scores on bytes.
            let chosen = select(
                view,
                Owner::new(self, q)?,
                &candidates,
                self.params.cap(layer),
            )?;
            {
                let mut list = lock(&self.links[q as usize][layer]);
                list.clear();
                list.extend_from_slice(&chosen);
                self.ids.publish(q, layer, &list);
            }
            for link in chosen {
                let mut list = lock(&self.links[link.id as usize][layer]);
                add_link(
                    view,
                    Owner::new(self, link.id)?,
                    &mut *list,
                    Scored {
                        score: link.score,
                        id: q,
                    },
                    self.params.cap(layer),
                )?;
                self.ids.publish(link.id, layer, &list);
            }
            eps = found;
        }
        if level > top {
            let mut entry = self.entry.write().unwrap_or_else(|e| e.into_inner());
            if entry.is_none_or(|(_, t)| level > t) {
                *entry = Some((q, level));
            }
        }
        Ok(())
    }

    pub fn entry(&self) -> Option<(ItemId, usize)> {
        *self.entry.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn level(&self, local: ItemId) -> usize {
        self.levels[local as usize]
    }

    /// The links of `local` on `layer`, ascending by score.
    pub fn links(&self, local: ItemId, layer: usize) -> Vec<Link> {
        lock(&self.links[local as usize][layer]).clone()
    }

    /// Every node's lists, bottom layer first, each ascending by score; the searches' copies
    /// (the link ids, the vectors in bytes) are freed first, and nothing is copied.
    pub fn into_lists(self) -> impl Iterator<Item = Vec<Vec<Link>>> {
        let MemGraph { links, .. } = self;
        links.into_iter().map(|layers| {
            layers
                .into_vec()
                .into_iter()
                .map(|list| list.into_inner().unwrap_or_else(|e| e.into_inner()))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::rotation::SplitMix;
    use crate::distance::VectorRef;
    use crate::graph::level_for;

    /// A batch's graph is searched on bytes, but the scores its lists keep are exact: linking a
    /// batch into a stored graph merges them with exact scores of stored nodes, and a list's
    /// order decides which link a prune drops. The ids searches read lock-free are the lists'.
    #[test]
    fn lists_keep_exact_scores_in_order_and_searches_read_the_same_links() {
        let (count, dimensions) = (3_000, 48);
        let mut random = SplitMix(11);
        let rows: Vec<Vec<f32>> = (0..count)
            .map(|_| {
                (0..dimensions)
                    .map(|_| (random.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                    .collect()
            })
            .collect();
        for metric in [Metric::Cosine, Metric::Euclidean, Metric::InnerProduct] {
            let vectors = PreparedVectors::new(
                metric,
                dimensions,
                rows.iter().map(|r| VectorRef::Floats(r)),
            )
            .unwrap();
            let params = BuildParams {
                metric,
                m: 8,
                m0: 16,
                ef_construction: 32,
            };
            let levels = (0..count as ItemId).map(|id| level_for(3, id, 8)).collect();
            let graph = MemGraph::build(params, &vectors, levels, &|| false).unwrap();
            assert!(graph.bytes.is_some(), "{metric:?} is searched on bytes");
            let mut links = 0;
            for id in 0..count as ItemId {
                for layer in 0..=graph.level(id) {
                    let list = graph.links(id, layer);
                    for pair in list.windows(2) {
                        assert!(pair[0].score <= pair[1].score, "{metric:?}: {list:?}");
                    }
                    for link in &list {
                        let exact =
                            metric.score(vectors.get(id as usize), vectors.get(link.id as usize));
                        assert_eq!(link.score, exact, "{metric:?}: link {id} -> {}", link.id);
                    }
                    links += list.len();
                    let mut read = Vec::new();
                    graph.neighbours(id, layer, &mut read).unwrap();
                    let ids: Vec<ItemId> = list.iter().map(|l| l.id).collect();
                    assert_eq!(read, ids, "{metric:?}: node {id}, layer {layer}");
                }
            }
            assert!(links > count * 8, "{metric:?}: {links} links");
        }
    }
}
