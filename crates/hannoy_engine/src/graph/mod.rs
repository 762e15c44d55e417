//! The HNSW graph: how it is searched during construction, how neighbours are chosen, and how it
//! is built, grown and repaired. Query-time search lives in `crate::search`.

pub(crate) mod beam;
pub(crate) mod cancel;
pub(crate) mod delete;
pub(crate) mod insert;
pub(crate) mod memory;
pub(crate) mod repair;
pub(crate) mod select;
pub(crate) mod view;
pub(crate) mod visited;

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::ops::Deref;

use crate::distance::Metric;
use crate::error::Result;
use crate::storage::meta::MAX_LEVEL;
use crate::ItemId;
use beam::Beam;
use visited::Visited;

/// An item with its score relative to some query; orders by (score, id) so ties are stable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scored {
    pub score: f32,
    pub id: ItemId,
}

impl Eq for Scored {}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(self.id.cmp(&other.id))
    }
}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A vector in stored form as a view hands it out: borrowed from where it is stored, or decoded
/// from its code (an index that keeps no full vectors).
pub(crate) enum VectorBytes<'a> {
    Borrowed(&'a [u8]),
    Decoded(Vec<u8>),
}

impl Deref for VectorBytes<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            VectorBytes::Borrowed(bytes) => bytes,
            VectorBytes::Decoded(bytes) => bytes,
        }
    }
}

/// What a graph search needs to read: stored vectors and neighbour lists, whether they live in
/// LMDB, in memory during a build, or both during an incremental insert.
pub(crate) trait GraphView {
    fn metric(&self) -> Metric;
    /// `id`'s vector in stored form: borrowed where it is stored, decoded from its code in an
    /// index that keeps no full vectors.
    fn vector(&self, id: ItemId) -> Result<VectorBytes<'_>>;
    /// Appends the neighbours of `id` on `layer` to `out`.
    fn neighbours(&self, id: ItemId, layer: usize, out: &mut Vec<ItemId>) -> Result<()>;

    /// Hints that `id`'s vector is about to be read. Memory-resident graphs use it to overlap the
    /// cache misses of a node's neighbours instead of taking them one by one.
    #[inline]
    fn prefetch(&self, _id: ItemId) {}

    #[inline]
    fn score(&self, query: &[u8], id: ItemId) -> Result<f32> {
        Ok(self.between(query, &self.vector(id)?))
    }

    /// Whether a view can tell, more cheaply than by scoring, that an item scores past a
    /// search's worst: then `search_layer` asks `may_reach` before scoring.
    const BOUNDS_SCORES: bool = false;

    /// Whether `id` may score `worst` or better against `query`; false only if it cannot, up to
    /// the rare miss of the view's own error bound (`BOUNDS_SCORES`).
    #[inline]
    fn may_reach(&self, _query: &[u8], _id: ItemId, _worst: f32) -> Result<bool> {
        Ok(true)
    }

    /// Hints that `may_reach` is about to be asked of `id`.
    #[inline]
    fn prefetch_bound(&self, _id: ItemId) {}

    /// The score between two vectors as `vector` returns them.
    #[inline]
    fn between(&self, a: &[u8], b: &[u8]) -> f32 {
        self.metric().score(a, b)
    }
}

/// Beam search on one layer (HNSW's SEARCH-LAYER): the `ef` items closest to `query` reachable
/// from `entries`, ascending, copies of one vector counting once (see `beam`). `ef = 1` is the
/// greedy descent used on upper layers.
pub(crate) fn search_layer<G: GraphView + ?Sized>(
    graph: &G,
    query: &[u8],
    entries: &[Scored],
    ef: usize,
    layer: usize,
    visited: &mut Visited,
) -> Result<Vec<Scored>> {
    visited.clear();
    let mut candidates: BinaryHeap<Reverse<Scored>> = BinaryHeap::with_capacity(ef * 4);
    let mut results = Beam::<BinaryHeap<Scored>>::new(ef);
    for &e in entries {
        if visited.insert(e.id) {
            candidates.push(Reverse(e));
            results.offer(graph, e, drop)?;
        }
    }
    let mut links = Vec::with_capacity(64);
    while let Some(Reverse(current)) = candidates.pop() {
        if results.is_full() && results.worst().is_some_and(|w| current.score > w) {
            break;
        }
        links.clear();
        graph.neighbours(current.id, layer, &mut links)?;
        links.retain(|&n| visited.insert(n));
        if G::BOUNDS_SCORES {
            // The worst only improves while the list is scored, so a node past it now would
            // be turned away then too.
            if let Some(worst) = results.worst().filter(|_| results.is_full()) {
                for &n in &links {
                    graph.prefetch_bound(n);
                }
                let mut kept = 0;
                for i in 0..links.len() {
                    if graph.may_reach(query, links[i], worst)? {
                        links[kept] = links[i];
                        kept += 1;
                    }
                }
                links.truncate(kept);
            }
        }
        for &n in &links {
            graph.prefetch(n);
        }
        for &n in &links {
            let s = Scored {
                score: graph.score(query, n)?,
                id: n,
            };
            if results.offer(graph, s, drop)? {
                candidates.push(Reverse(s));
            }
        }
    }
    Ok(results.into_sorted_vec())
}

/// Descends from `entry` (on `top`) to `bottom + 1` greedily, returning the entry for `bottom`.
pub(crate) fn descend<G: GraphView + ?Sized>(
    graph: &G,
    query: &[u8],
    entry: ItemId,
    top: usize,
    bottom: usize,
    visited: &mut Visited,
) -> Result<Vec<Scored>> {
    let mut eps = vec![Scored {
        score: graph.score(query, entry)?,
        id: entry,
    }];
    for layer in (bottom + 1..=top).rev() {
        eps = search_layer(graph, query, &eps, 1, layer, visited)?;
    }
    Ok(eps)
}

/// Where a search of layer `bottom` starts: the `SEEDS` best of a beam of `ef` on the layer
/// above, reached by the greedy descent from `entry` (on `top`); the entry itself when `bottom`
/// is the top. A greedy descent alone can end in a pocket of the layer above whose nodes are all
/// farther than a region it never reached, and a beam on `bottom` started there may not get out.
pub(crate) fn start<G: GraphView + ?Sized>(
    graph: &G,
    query: &[u8],
    entry: ItemId,
    top: usize,
    bottom: usize,
    ef: usize,
    visited: &mut Visited,
) -> Result<Vec<Scored>> {
    if bottom >= top {
        return descend(graph, query, entry, top, bottom, visited);
    }
    let above = descend(graph, query, entry, top, bottom + 1, visited)?;
    let mut seeds = search_layer(graph, query, &above, ef, bottom + 1, visited)?;
    seeds.truncate(SEEDS);
    Ok(seeds)
}

/// How many of the best nodes of the beam on the layer above a search starts from.
pub(crate) const SEEDS: usize = 8;

/// The beam an insertion's search starts from on the layer above its own (see [`start`]): wide
/// enough to leave a pocket, narrower than `ef_construction`, which would cost build time and
/// find no better seeds (docs/benchmarks.md, "Where an insertion starts").
pub(crate) const INSERT_START_BEAM: usize = 16;

/// The layer count of an item: geometric with ratio 1/m, as in the HNSW paper (mL = 1/ln m).
/// A hash of the id and the index's seed, so builds are reproducible whatever the thread count.
pub(crate) fn level_for(seed: u64, id: ItemId, m: usize) -> usize {
    let mut z = seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // Uniform in (0, 1]; never zero, so the logarithm is finite.
    let uniform = ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let level = (-uniform.ln() / (m as f64).ln()).floor() as usize;
    level.min(MAX_LEVEL)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::Cell;

    /// A view that counts the scores asked of it, and otherwise is `G`.
    struct Counting<'g, G> {
        graph: &'g G,
        scores: Cell<usize>,
    }

    impl<G: GraphView> GraphView for Counting<'_, G> {
        const BOUNDS_SCORES: bool = G::BOUNDS_SCORES;

        fn metric(&self) -> Metric {
            self.graph.metric()
        }
        fn vector(&self, id: ItemId) -> Result<VectorBytes<'_>> {
            self.graph.vector(id)
        }
        fn neighbours(&self, id: ItemId, layer: usize, out: &mut Vec<ItemId>) -> Result<()> {
            self.graph.neighbours(id, layer, out)
        }
        fn score(&self, query: &[u8], id: ItemId) -> Result<f32> {
            self.scores.set(self.scores.get() + 1);
            self.graph.score(query, id)
        }
        fn may_reach(&self, query: &[u8], id: ItemId, worst: f32) -> Result<bool> {
            self.graph.may_reach(query, id, worst)
        }
    }

    /// A search whose view bounds scores by the codes (`view::Bounded`) keeps in its beam what
    /// a search of the vectors keeps, with the same exact scores, but for the few items whose
    /// estimates err past their bounds, and scores far fewer vectors.
    #[test]
    fn a_search_bounded_by_codes_finds_what_the_vectors_find_reading_fewer() {
        use crate::codes::rotation::SplitMix;
        use crate::{never_cancel, Index, IndexOptions, Quantization, VectorRef};

        // A thousand small clusters: a beam of 64 reaches past the query's own, as in an index
        // of real embeddings, where the bounds have something to rule out.
        let (dims, clusters) = (128, 1_000);
        let mut rng = SplitMix(0x5eed_b0de);
        let mut next = move || (rng.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        let centres: Vec<Vec<f32>> = (0..clusters)
            .map(|_| (0..dims).map(|_| next()).collect())
            .collect();
        let mut point = |i: usize| -> Vec<f32> {
            centres[i % clusters]
                .iter()
                .map(|c| c + 0.6 * next())
                .collect()
        };
        let data: Vec<Vec<f32>> = (0..4_000).map(&mut point).collect();
        let queries: Vec<Vec<f32>> = (0..100).map(&mut point).collect();
        for bits in [1, 2] {
            let dir = tempfile::tempdir().unwrap();
            let options = IndexOptions {
                quantization: Quantization::Rabitq { bits },
                ..IndexOptions::new(Metric::Cosine, dims)
            };
            let index = Index::create(dir.path(), &options).unwrap();
            let batch = index
                .prepare(data.iter().map(|v| VectorRef::Floats(v)))
                .unwrap();
            index.write(|w| w.insert(&batch, &never_cancel)).unwrap();
            let reader = index.read().unwrap();
            let view = reader.view();
            let codes = view.codes().expect("the index keeps codes");
            let (entry, top) = view.meta.entry().expect("items");
            let mut visited = Visited::pooled(view.meta.next_id as usize);
            let (mut kept, mut kept_by_bounds) = (0, 0);
            let (mut exact_scores, mut bounded_scores) = (0, 0);
            for q in &queries {
                let prepared = reader.prepare_query(VectorRef::Floats(q)).unwrap();
                let query = prepared.bytes();
                let coded = view.coded_query(codes, query).unwrap();
                let bounded = view::Bounded::new(&view, codes, query, &coded);
                let eps = descend(&view, query, entry, top, 0, &mut visited).unwrap();
                let exact = Counting {
                    graph: &view,
                    scores: Cell::new(0),
                };
                let on_vectors = search_layer(&exact, query, &eps, 64, 0, &mut visited).unwrap();
                let bounded = Counting {
                    graph: &bounded,
                    scores: Cell::new(0),
                };
                let on_bounds = search_layer(&bounded, query, &eps, 64, 0, &mut visited).unwrap();
                for s in &on_bounds {
                    assert_eq!(s.score, view.score(query, s.id).unwrap(), "{bits} bit(s)");
                }
                kept += on_vectors.len();
                kept_by_bounds += on_bounds.iter().filter(|s| on_vectors.contains(s)).count();
                exact_scores += exact.scores.get();
                bounded_scores += bounded.scores.get();
            }
            assert!(
                kept_by_bounds * 100 >= kept * 99,
                "{bits} bit(s): {kept_by_bounds} of the {kept} items kept on vectors"
            );
            assert!(
                bounded_scores * 10 < exact_scores * 6,
                "{bits} bit(s): {bounded_scores} vectors scored against {exact_scores}"
            );
        }
    }

    /// Points under the Euclidean metric with no links: for tests of what a beam or a list
    /// keeps, where only the vectors matter.
    pub(crate) struct Points(Vec<Vec<u8>>);

    impl Points {
        pub fn new(points: impl IntoIterator<Item = Vec<f32>>) -> Points {
            Points(
                points
                    .into_iter()
                    .map(|p| p.iter().flat_map(|v| v.to_ne_bytes()).collect())
                    .collect(),
            )
        }
    }

    impl GraphView for Points {
        fn metric(&self) -> Metric {
            Metric::Euclidean
        }
        fn vector(&self, id: ItemId) -> Result<VectorBytes<'_>> {
            Ok(VectorBytes::Borrowed(&self.0[id as usize]))
        }
        fn neighbours(&self, _: ItemId, _: usize, _: &mut Vec<ItemId>) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn levels_are_geometric_in_one_over_m() {
        let n = 200_000u32;
        let mut counts = [0usize; 4];
        for id in 0..n {
            let l = level_for(42, id, 16);
            if l < 4 {
                counts[l] += 1;
            }
        }
        let p0 = counts[0] as f64 / n as f64;
        let p1 = counts[1] as f64 / n as f64;
        assert!((p0 - 15.0 / 16.0).abs() < 0.005, "{p0}");
        assert!((p1 - 15.0 / 256.0).abs() < 0.003, "{p1}");
    }
}
