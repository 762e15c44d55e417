//! Query-time search: a stream of neighbours in distance order, optionally restricted to a bitmap
//! of allowed items.
//!
//! The access method never learns the LIMIT, so a search must be able to go on after its first
//! `ef_search` results. The graph walk keeps everything it has discovered: a frontier of nodes not
//! yet expanded and a pool of allowed items not yet returned, whose `ef` best form a window. The
//! best item of the window is returned once no frontier node is closer than the window's worst,
//! which is exactly HNSW's stopping rule for the first `ef` results, and slides along after them.
//! When the frontier runs dry, the allowed items never reached are scored directly, so a drained
//! stream returns every allowed item exactly once.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use roaring::RoaringBitmap;

use crate::codes::CodedQuery;
use crate::distance::PreparedQuery;
use crate::error::{corrupt, Result};
use crate::filter::DenseBits;
use crate::graph::beam::Beam;
use crate::graph::view::{Coded, Codes, LmdbView};
use crate::graph::visited::{PooledVisited, Visited};
use crate::graph::{start, GraphView, Scored};
use crate::storage::advice;
use crate::ItemId;

/// Default candidate-list size: large enough for recall@10 of 0.95 on real sentence embeddings
/// (see docs/benchmarks.md). pgvector's `hnsw.ef_search` defaults to 40.
pub const DEFAULT_EF_SEARCH: usize = 100;
/// Below this many allowed items an exact scan always wins (and answers exactly).
pub const EXACT_BELOW: u64 = 1000;

/// One result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    pub id: ItemId,
    /// In the metric's own units (Euclidean, not squared).
    pub distance: f32,
}

/// How a search finds its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Whichever the cost model expects to be cheaper.
    #[default]
    Auto,
    /// Score every allowed item.
    Exact,
    /// Walk the graph.
    Graph,
}

#[derive(Debug, Clone)]
pub struct SearchParams<'f> {
    pub ef_search: usize,
    /// Only these items may be returned.
    pub filter: Option<&'f RoaringBitmap>,
    pub strategy: Strategy,
    /// Stop the graph walk after visiting this many nodes; what was found is still returned.
    pub max_visited: Option<usize>,
    /// Whether the walk scores with the index's codes where it keeps them (re-ranking what it
    /// returns with the full vectors); false walks on the full vectors.
    pub codes: bool,
    /// On codes, how many of the window's best estimates each batch re-ranks exactly and hands
    /// out (the rest wait for the next batch); `None`: the whole window.
    pub rerank: Option<usize>,
    /// On codes, hand out a lower bound of each distance, never above the one the caller
    /// computes from its own copy of the vector, instead of re-ranking with the stored vectors:
    /// for a caller that re-ranks (PostgreSQL from the table's rows). Every item is then
    /// scored from its code, a scan's too. An index without codes hands out exact distances,
    /// one without full vectors always bounds: see `NeighborStream::lower_bounds`.
    pub lower_bounds: bool,
}

impl Default for SearchParams<'_> {
    fn default() -> Self {
        SearchParams {
            ef_search: DEFAULT_EF_SEARCH,
            filter: None,
            strategy: Strategy::Auto,
            max_visited: None,
            codes: true,
            rerank: None,
            lower_bounds: false,
        }
    }
}

/// Below this selectivity the walk is never used: with so few allowed nodes, two hops do not
/// connect them well enough (recall fell to 0.5 at 1% in the benchmark), and an exact scan of a
/// few percent of the index is cheap.
const MIN_WALK_SELECTIVITY: f64 = 0.05;

/// What scoring an item by its code costs a scan, in the units of `walk_cost`: an estimate
/// reads a code a twentieth the size of the vector (docs/benchmarks.md, "Filtered scans on
/// codes").
const CODE_SCAN_COST: f64 = 0.5;

/// Chooses a scan or a graph walk for `allowed` items out of `live`, in units of one exact
/// score; `coded`: the scan would score codes and re-rank a batch of `ef`. Calibrated with the
/// engine benchmark: an unfiltered walk at ef 40 costs about as much as scoring 1,800 items
/// exactly, and a filtered walk grows slowly as the filter narrows, as `s^-0.15` once it tests
/// the filter on dense bits (docs/benchmarks.md, "A filter's bits for the walk").
pub(crate) fn prefer_scan(allowed: u64, live: u64, ef: usize, m0: usize, coded: bool) -> bool {
    if allowed <= EXACT_BELOW {
        return true;
    }
    let selectivity = allowed as f64 / live.max(1) as f64;
    if selectivity < MIN_WALK_SELECTIVITY {
        return true;
    }
    scan_cost(allowed, ef, m0, coded) <= walk_cost(selectivity, ef, m0)
}

/// Whether a scan of `allowed` items scores them by their codes: only where scoring them
/// exactly would cost more than an unfiltered walk, and never below `EXACT_BELOW`. Below that,
/// a scan answers exactly for no more than the walk costs.
fn scans_codes(allowed: u64, ef: usize, m0: usize, coded: bool) -> bool {
    coded && allowed > EXACT_BELOW && allowed as f64 > walk_cost(1.0, ef, m0)
}

fn scan_cost(allowed: u64, ef: usize, m0: usize, coded: bool) -> f64 {
    if scans_codes(allowed, ef, m0, coded) {
        allowed as f64 * CODE_SCAN_COST + ef as f64
    } else {
        allowed as f64
    }
}

fn walk_cost(selectivity: f64, ef: usize, m0: usize) -> f64 {
    1.4 * ef as f64 * m0 as f64 / selectivity.powf(0.15)
}

/// The distances a search for the first `ef` results computes, in the strategy it will
/// choose, when `allowed` of `live` items pass its filter (all of them without one), in an
/// index that keeps codes or not: for a query planner's cost estimate.
pub fn estimated_distances(allowed: u64, live: u64, ef: usize, m0: usize, coded: bool) -> f64 {
    let allowed = allowed.min(live);
    if prefer_scan(allowed, live, ef, m0, coded) {
        scan_cost(allowed, ef, m0, coded)
    } else {
        walk_cost(allowed as f64 / live.max(1) as f64, ef, m0)
    }
}

/// The widest beam on layer 1 that finds a walk's seeds. On topic-clustered rows a beam
/// narrower than about 32 leaves walks in the wrong cluster; one as wide as a large
/// `ef_search` finds no better seeds and costs up to a fifth of the walk (docs/benchmarks.md,
/// "Where a walk starts").
const QUERY_START_BEAM: usize = 64;

/// A step of the walk this slow may have waited on pages read from disk (one read takes 50 µs
/// to several ms, a step in memory a few µs, up to about 200 µs for 32 full vectors of 16,000
/// dimensions); if the thread's major page faults say it did, the walk from then on asks the
/// kernel for each step's pages before reading them, so that they are read together instead of
/// one after another. A step slowed by the scheduler alone (a busy machine) changes nothing.
const COLD_STEP: Duration = Duration::from_micros(250);

/// How many of the next nodes to expand a cold walk asks for the lists of (`neighbour_codes`).
const LISTS_AHEAD: usize = 4;

/// Below this selectivity the walk scores only allowed nodes and looks through disallowed
/// neighbours to theirs (ACORN-style); above it, disallowed nodes are scored and walked through.
/// Where they cross was measured with the engine benchmark (see docs/benchmarks.md).
const TWO_HOP_BELOW: f64 = 0.2;

/// The window of a walk, in allowed items. A walk that scores every node it passes (no filter,
/// or one keeping most items) covers about `window / selectivity` nodes to fill a window, so a
/// window of `ef` would make a filter keeping half the items cost twice the unfiltered search.
/// The square root splits that between cost and recall: the walk goes about `ef / sqrt(s)`
/// nodes out, far enough that its top 10 allowed items are found at about the unfiltered
/// search's recall. A two-hop walk scores allowed nodes only, like a search of an index of
/// those alone, and keeps `ef`.
///
/// A walk on codes holds estimates in its window and re-ranks the window once it is ready: with
/// a window as narrow, the estimates' errors leave more of the true top 10 outside it, so it
/// shrinks less (`CODED_WINDOW_EXPONENT`).
fn window_size(ef: usize, selectivity: f64, two_hop: bool, coded: bool) -> usize {
    if two_hop || selectivity >= 1.0 {
        return ef;
    }
    let exponent = if coded { CODED_WINDOW_EXPONENT } else { 0.5 };
    let shrunk = (ef as f64 * selectivity.max(0.0).powf(exponent)).ceil() as usize;
    shrunk.max(ef.min(WINDOW_FLOOR))
}

/// How a filter shrinks a walk's window on codes: `ef·s^0.375`, less than the square root of
/// full vectors (docs/benchmarks.md, "Filtered walks on codes", has the recall and cost of
/// each exponent).
const CODED_WINDOW_EXPONENT: f64 = 0.375;

/// The smallest window a filter shrinks a walk's to: the usual LIMIT.
const WINDOW_FLOOR: usize = 10;

/// Every item of `allowed` with its `score` from its code, nearest first. The code `SCAN_AHEAD`
/// items on is asked of the CPU before each score: a filter's items lie apart in the codes'
/// chunks, so each code is a cache miss of its own, and these overlap where one after another
/// they would be waited for in turn.
fn score_each(
    view: &LmdbView<'_>,
    codes: Codes<'_>,
    allowed: &RoaringBitmap,
    mut score: impl FnMut(ItemId) -> Result<f32>,
) -> Result<BinaryHeap<Reverse<Scored>>> {
    let mut scored = Vec::with_capacity(allowed.len() as usize);
    let mut ahead = allowed.iter();
    for id in ahead.by_ref().take(SCAN_AHEAD) {
        view.prefetch_code(codes, id, false);
    }
    for id in allowed.iter() {
        if let Some(next) = ahead.next() {
            view.prefetch_code(codes, next, false);
        }
        scored.push(Reverse(Scored {
            score: score(id)?,
            id,
        }));
    }
    Ok(BinaryHeap::from(scored))
}

/// How many items ahead a scan of codes asks for the code it will score.
const SCAN_AHEAD: usize = 8;

/// Whether the vectors of `allowed` look out of memory, for a scan to ask for their pages
/// first. Three probes, as the pages the open itself read may hold the first.
fn vectors_cold(view: &LmdbView<'_>, allowed: &RoaringBitmap) -> bool {
    let len = allowed.len() as u32;
    [0, len / 2, len.saturating_sub(1)]
        .iter()
        .filter_map(|&n| allowed.select(n))
        .any(|id| view.is_cold(id, false))
}

/// Neighbours in non-decreasing distance, as an iterator of results.
pub struct NeighborStream<'t> {
    view: LmdbView<'t>,
    query: PreparedQuery,
    state: State<'t>,
    /// Results per `next_batch`: `ef_search`.
    batch: usize,
    /// Distances a scan computed: one per allowed item (an estimate on codes).
    scored_exactly: usize,
    /// Whether the exact scan found its vectors out of memory and asked for them first.
    scanned_cold: bool,
    /// Whether what it hands out are lower bounds (`SearchParams::lower_bounds`).
    bounds: bool,
}

enum State<'t> {
    Exact(BinaryHeap<Reverse<Scored>>),
    Codes(CodedScan),
    Walk(Box<Walk<'t>>),
}

/// Every allowed item scored by its code; the best estimates are re-ranked exactly a batch at a
/// time and handed out in exact order within the batch, as a walk on codes hands out its
/// windows.
struct CodedScan {
    estimates: BinaryHeap<Reverse<Scored>>,
    reranked: VecDeque<Scored>,
    /// Estimates re-ranked per batch.
    per_batch: usize,
    /// Items re-ranked so far.
    rescored: usize,
    /// Whether the vectors to re-rank were found out of memory: each batch asks for its
    /// vectors' pages before reading them.
    advise: bool,
    /// The query for lower bounds, which replace the re-ranking (`SearchParams::lower_bounds`).
    bounds: Option<CodedQuery>,
}

impl CodedScan {
    fn next_batch(&mut self, view: &LmdbView<'_>, query: &[u8]) -> Result<Vec<Scored>> {
        if !self.reranked.is_empty() {
            return Ok(self.reranked.drain(..).collect());
        }
        let mut batch: Vec<Scored> = (0..self.per_batch)
            .map_while(|_| self.estimates.pop().map(|Reverse(s)| s))
            .collect();
        self.rescored += batch.len();
        match (&self.bounds, view.codes()) {
            (Some(coded), Some(codes)) => lower_bounds(view, codes, coded, &mut batch)?,
            _ => rerank(view, query, &mut batch, self.advise)?,
        }
        Ok(batch)
    }

    fn next(&mut self, view: &LmdbView<'_>, query: &[u8]) -> Result<Option<Scored>> {
        if self.reranked.is_empty() {
            let batch = self.next_batch(view, query)?;
            self.reranked.extend(batch);
        }
        Ok(self.reranked.pop_front())
    }
}

struct Walk<'t> {
    /// Items that may be returned: the filter's live items, or every live item.
    allowed: Cow<'t, RoaringBitmap>,
    /// `allowed` as one bit per id, for a two-hop walk, which tests every id of every list it
    /// looks through (see `DenseBits`). Any other walk tests about once per distance, against
    /// a filter of 20% or more or the live items, whose dense containers answer fast: too few
    /// tests, too cheap, to pay for the copy.
    allowed_bits: Option<DenseBits>,
    /// The codes the walk scores with and the query prepared for them; `None`: full vectors.
    coded: Option<(Codes<'t>, CodedQuery)>,
    /// Items re-ranked exactly and not yet handed out by `next`.
    reranked: VecDeque<Scored>,
    /// Estimates re-ranked per batch on codes.
    rerank: usize,
    /// Whether windows on codes are handed out as lower bounds instead of re-ranked.
    bounds: bool,
    two_hop: bool,
    frontier: BinaryHeap<Reverse<Scored>>,
    /// The best items found and not yet returned; everything else found waits in `overflow`.
    window: Beam<BTreeSet<Scored>>,
    overflow: BinaryHeap<Reverse<Scored>>,
    visited: PooledVisited,
    visited_count: usize,
    max_visited: usize,
    /// Set once the unreached allowed items have been scored: nothing is left to find.
    finished: bool,
    /// Whether the walk asks the kernel for the pages it is about to read: from the start if
    /// the entry point's page was not in memory, else from the first step as slow as a page
    /// read that did wait on the disk (see `COLD_STEP`).
    advise: bool,
    /// The thread's major page faults when the walk began.
    faults_before: u64,
    /// Buffers of `expand`, kept so that a walk allocates once.
    links: Vec<ItemId>,
    found: Vec<ItemId>,
    through: Vec<ItemId>,
    second_hop: Vec<ItemId>,
    /// Items returned so far; past the window's first fill, the walk also follows upper-layer
    /// links.
    returned: usize,
    /// Nodes whose lists with their neighbours' codes a cold walk has asked the kernel for.
    asked: RoaringBitmap,
}

impl<'t> NeighborStream<'t> {
    pub(crate) fn new(
        view: LmdbView<'t>,
        items: &'t RoaringBitmap,
        query: PreparedQuery,
        params: &SearchParams<'_>,
    ) -> Result<NeighborStream<'t>> {
        let allowed: Cow<'t, RoaringBitmap> = match params.filter {
            Some(filter) => Cow::Owned(filter & items),
            None => Cow::Borrowed(items),
        };
        let ef = params.ef_search.max(1);
        // An index without full vectors has nothing to re-rank with: it always bounds.
        let bounds = params.lower_bounds || !view.meta.keeps_vectors();
        let codes = view.codes().filter(|_| params.codes || bounds);
        let bounds = bounds && codes.is_some();
        let scan = match params.strategy {
            Strategy::Exact => true,
            Strategy::Graph => allowed.is_empty(),
            Strategy::Auto => prefer_scan(
                allowed.len(),
                items.len(),
                ef,
                view.meta.m0 as usize,
                codes.is_some(),
            ),
        };
        // Codes serve a scan the cost model chose, never one asked for as exact.
        let coded_scan = scan
            && params.strategy == Strategy::Auto
            && scans_codes(allowed.len(), ef, view.meta.m0 as usize, codes.is_some());
        let cold = match view.meta.entry() {
            Some((entry, _)) if !scan => view.is_cold(entry, codes.is_some()),
            _ => false,
        };
        let view = view.advising(cold);
        let mut scanned_cold = false;
        let state = match view.meta.entry() {
            Some((entry, top)) if !scan => {
                let selectivity = allowed.len() as f64 / items.len().max(1) as f64;
                let two_hop = params.filter.is_some() && selectivity < TWO_HOP_BELOW;
                let coded = match codes {
                    Some(codes) => Some((codes, view.coded_query(codes, query.bytes())?)),
                    None => None,
                };
                let allowed_bits = two_hop.then(|| DenseBits::new(&allowed, view.meta.next_id));
                let mut walk = Walk {
                    allowed_bits,
                    coded,
                    reranked: VecDeque::new(),
                    rerank: params.rerank.unwrap_or(usize::MAX).max(1),
                    bounds,
                    two_hop,
                    allowed,
                    frontier: BinaryHeap::new(),
                    window: Beam::new(window_size(ef, selectivity, two_hop, codes.is_some())),
                    overflow: BinaryHeap::new(),
                    visited: Visited::pooled(view.meta.next_id as usize),
                    visited_count: 0,
                    max_visited: params.max_visited.unwrap_or(usize::MAX),
                    finished: false,
                    advise: cold,
                    faults_before: if cold { 0 } else { advice::major_faults() },
                    links: Vec::with_capacity(64),
                    found: Vec::with_capacity(64),
                    through: Vec::with_capacity(64),
                    second_hop: Vec::with_capacity(64),
                    returned: 0,
                    asked: RoaringBitmap::new(),
                };
                let beam = ef.min(QUERY_START_BEAM);
                let start = match &walk.coded {
                    Some((codes, coded)) => {
                        let coded = Coded::new(&view, *codes, query.bytes(), coded);
                        start(
                            &coded,
                            query.bytes(),
                            entry,
                            top,
                            0,
                            beam,
                            &mut walk.visited,
                        )?
                    }
                    None => start(&view, query.bytes(), entry, top, 0, beam, &mut walk.visited)?,
                };
                walk.visited.clear();
                // The seeds were scored on the way down; each is scored once in all.
                walk.visited_count = start.len();
                for s in start {
                    walk.visited.insert(s.id);
                    walk.frontier.push(Reverse(s));
                    if walk.is_allowed(s.id) {
                        walk.offer(&view, s)?;
                    }
                }
                State::Walk(Box::new(walk))
            }
            _ if coded_scan => {
                let codes = codes.expect("a coded scan has codes");
                let coded = view.coded_query(codes, query.bytes())?;
                let estimates = score_each(&view, codes, &allowed, |id| {
                    view.estimate(codes, &coded, id)
                })?;
                State::Codes(CodedScan {
                    estimates,
                    reranked: VecDeque::new(),
                    per_batch: params.rerank.unwrap_or(ef).clamp(1, ef),
                    rescored: 0,
                    advise: !bounds && vectors_cold(&view, &allowed),
                    bounds: bounds.then_some(coded),
                })
            }
            _ if bounds => {
                // Lower bounds in order for every allowed item: the caller's re-ranking then
                // answers exactly, as an exact scan does.
                let codes = codes.expect("bounds come from codes");
                let coded = view.coded_query(codes, query.bytes())?;
                State::Exact(score_each(&view, codes, &allowed, |id| {
                    view.lower_bound(codes, &coded, id)
                })?)
            }
            _ if !view.meta.keeps_vectors() => {
                // No codes yet means no item yet.
                if !allowed.is_empty() {
                    return Err(corrupt(
                        "an index without full vectors holds items and no codes",
                    ));
                }
                State::Exact(BinaryHeap::new())
            }
            _ => {
                // A scan reads chunk after chunk, each page waiting for the one before it when
                // the index is out of memory: ask for them all first.
                if vectors_cold(&view, &allowed) {
                    scanned_cold = true;
                    view.store
                        .advise_vectors(view.txn, view.meta, allowed.iter())?;
                }
                let mut scored = Vec::with_capacity(allowed.len() as usize);
                let metric = view.metric();
                view.store
                    .for_each_vector(view.txn, view.meta, allowed.iter(), |id, v| {
                        scored.push(Reverse(Scored {
                            score: metric.score(query.bytes(), v),
                            id,
                        }));
                        Ok(())
                    })?;
                State::Exact(BinaryHeap::from(scored))
            }
        };
        let scored_exactly = match &state {
            State::Exact(heap) => heap.len(),
            State::Codes(scan) => scan.estimates.len(),
            State::Walk(_) => 0,
        };
        Ok(NeighborStream {
            view,
            query,
            state,
            batch: ef,
            scored_exactly,
            scanned_cold,
            bounds,
        })
    }

    /// Whether the distances it hands out are lower bounds of the exact ones
    /// (`SearchParams::lower_bounds` on an index with codes, or any search of an index that
    /// keeps no full vectors) rather than exact.
    pub fn lower_bounds(&self) -> bool {
        self.bounds
    }

    /// Whether this stream scans exactly instead of walking the graph.
    pub fn is_exact(&self) -> bool {
        matches!(self.state, State::Exact(_))
    }

    /// How this stream finds its results: "exact scan", "scan on codes" or "walk".
    pub fn method(&self) -> &'static str {
        match self.state {
            State::Exact(_) => "exact scan",
            State::Codes(_) => "scan on codes",
            State::Walk(_) => "walk",
        }
    }

    /// Whether the walk or scan has asked the kernel for pages ahead of reading them: it found
    /// some of the index's pages out of memory.
    pub fn advised(&self) -> bool {
        match &self.state {
            State::Walk(w) => w.advise,
            State::Exact(_) => self.scanned_cold,
            State::Codes(scan) => scan.advise,
        }
    }

    /// Nodes the walk has scored so far (zero for a scan).
    pub fn visited(&self) -> usize {
        match &self.state {
            State::Exact(_) | State::Codes(_) => 0,
            State::Walk(w) => w.visited_count,
        }
    }

    /// Distances computed so far: the walk's scored nodes from its seeds on, or one per allowed
    /// item for a scan, plus the items a scan on codes re-ranked (the descent through the upper
    /// layers to the seeds is not counted).
    pub fn distances(&self) -> usize {
        let rescored = match &self.state {
            State::Codes(scan) => scan.rescored,
            _ => 0,
        };
        self.visited() + self.scored_exactly + rescored
    }

    /// The next results, ascending; empty once the stream is drained. The first batch is the
    /// `ef_search` items HNSW's search answers, found at its cost: pulling them one at a time
    /// instead walks on after each (the window slides past the item returned), which costs
    /// about as much again as the search itself. Later batches carry on from where it stopped.
    pub fn next_batch(&mut self) -> Result<Vec<Neighbor>> {
        let scored = match &mut self.state {
            State::Exact(heap) => (0..self.batch)
                .map_while(|_| heap.pop().map(|Reverse(s)| s))
                .collect(),
            State::Codes(scan) => scan.next_batch(&self.view, self.query.bytes())?,
            State::Walk(walk) => walk.next_window(&self.view, self.query.bytes())?,
        };
        let metric = self.view.metric();
        Ok(scored
            .into_iter()
            .map(|s| Neighbor {
                id: s.id,
                distance: metric.to_distance(s.score),
            })
            .collect())
    }

    fn next_scored(&mut self) -> Result<Option<Scored>> {
        match &mut self.state {
            State::Exact(heap) => Ok(heap.pop().map(|Reverse(s)| s)),
            State::Codes(scan) => scan.next(&self.view, self.query.bytes()),
            State::Walk(walk) => walk.next(&self.view, self.query.bytes()),
        }
    }
}

impl Iterator for NeighborStream<'_> {
    type Item = Result<Neighbor>;

    fn next(&mut self) -> Option<Result<Neighbor>> {
        let metric = self.view.metric();
        self.next_scored()
            .map(|found| {
                found.map(|s| Neighbor {
                    id: s.id,
                    distance: metric.to_distance(s.score),
                })
            })
            .transpose()
    }
}

impl Walk<'_> {
    #[inline]
    fn is_allowed(&self, id: ItemId) -> bool {
        match &self.allowed_bits {
            Some(bits) => bits.contains(id),
            None => self.allowed.contains(id),
        }
    }

    /// Adds an allowed item to the pool, keeping the `ef` best in the window.
    fn offer(&mut self, view: &LmdbView<'_>, s: Scored) -> Result<()> {
        let overflow = &mut self.overflow;
        self.window
            .offer(view, s, |out| overflow.push(Reverse(out)))?;
        Ok(())
    }

    fn ready(&self) -> bool {
        let Some(worst) = self.window.worst() else {
            return false;
        };
        match self.frontier.peek() {
            None => self.finished,
            Some(Reverse(closest)) => self.window.is_full() && closest.score > worst,
        }
    }

    fn next(&mut self, view: &LmdbView<'_>, query: &[u8]) -> Result<Option<Scored>> {
        // Estimates are ordered exactly only a window at a time.
        if self.coded.is_some() {
            if self.reranked.is_empty() {
                let window = self.next_window(view, query)?;
                self.reranked.extend(window);
            }
            return Ok(self.reranked.pop_front());
        }
        if !self.walk_until_ready(view, query)? {
            return Ok(None);
        }
        let best = self.window.pop_first().expect("ready implies a window");
        self.refill(view)?;
        self.returned += 1;
        Ok(Some(best))
    }

    /// The whole window once it is ready, ascending; empty at the end.
    fn next_window(&mut self, view: &LmdbView<'_>, query: &[u8]) -> Result<Vec<Scored>> {
        if !self.reranked.is_empty() {
            return Ok(self.reranked.drain(..).collect());
        }
        if !self.walk_until_ready(view, query)? {
            return Ok(Vec::new());
        }
        let take = if self.coded.is_some() {
            self.rerank
        } else {
            usize::MAX
        };
        let mut window = std::iter::from_fn(|| self.window.pop_first())
            .take(take)
            .collect::<Vec<_>>();
        self.refill(view)?;
        self.returned += window.len();
        match &self.coded {
            Some((codes, coded)) if self.bounds => lower_bounds(view, *codes, coded, &mut window)?,
            Some(_) => rerank(view, query, &mut window, self.advise)?,
            None => {}
        }
        Ok(window)
    }

    /// Tops the window up from the items found beyond it.
    fn refill(&mut self, view: &LmdbView<'_>) -> Result<()> {
        while !self.window.is_full() {
            let Some(Reverse(next)) = self.overflow.pop() else {
                break;
            };
            self.offer(view, next)?;
        }
        Ok(())
    }

    /// Walks until the window's best may be returned: false once nothing is left.
    fn walk_until_ready(&mut self, view: &LmdbView<'_>, query: &[u8]) -> Result<bool> {
        loop {
            if self.ready() {
                return Ok(true);
            }
            if let Some(Reverse(current)) = self.frontier.pop() {
                let started = (!self.advise).then(Instant::now);
                self.expand(view, query, current.id)?;
                self.advise |= started.is_some_and(|t| t.elapsed() > COLD_STEP)
                    && advice::major_faults() > self.faults_before;
                if self.advise {
                    self.ask_for_next_lists(view)?;
                }
                if self.visited_count >= self.max_visited {
                    // Out of budget: return what was found, nothing more.
                    self.frontier.clear();
                    self.finished = true;
                }
            } else if !self.finished {
                self.score_unreached(view, query)?;
                self.finished = true;
            } else {
                return Ok(false);
            }
        }
    }

    fn expand(&mut self, view: &LmdbView<'_>, query: &[u8], id: ItemId) -> Result<()> {
        if !self.two_hop && self.returned < self.window.ef() && self.expand_coded_list(view, id)? {
            return Ok(());
        }
        let mut links = std::mem::take(&mut self.links);
        links.clear();
        view.neighbours(id, 0, &mut links)?;
        // Past its first window the stream goes where HNSW's own search never does, outwards
        // from the query's region. Layer 0's links are short: a cluster next to the query's may
        // be linked only from a third, farther one, and the stream would return that one's items
        // first (recall@500 fell to 0.73 on 10 clusters at ef_search 10). Upper-layer links
        // span the clusters, and only one node in 16 has them.
        if self.returned >= self.window.ef() {
            let mut layer = 1;
            loop {
                let before = links.len();
                view.neighbours(id, layer, &mut links)?;
                if links.len() == before {
                    break;
                }
                layer += 1;
            }
        }
        if self.two_hop {
            return self.expand_two_hop(view, query, links);
        }
        // The vectors about to be scored come from all over the map: start every load now
        // instead of waiting on each in turn (the walk's time is mostly those waits).
        for &n in links.iter().filter(|&&n| !self.visited.contains(n)) {
            self.prefetch(view, n);
        }
        for &n in &links {
            if !self.visited.insert(n) {
                continue;
            }
            let allowed = self.is_allowed(n);
            self.discover(view, query, n, allowed)?;
        }
        self.links = links;
        Ok(())
    }

    /// Expands `id` from its layer-0 list stored with its neighbours' codes: one value read
    /// for the whole step. False, having done nothing, if the walk is not on codes or the
    /// index does not keep such lists.
    fn expand_coded_list(&mut self, view: &LmdbView<'_>, id: ItemId) -> Result<bool> {
        let Some((codes, coded)) = self.coded.take() else {
            return Ok(false);
        };
        let expanded = (|| {
            let Some(list) = view.coded_list(id, 0)? else {
                return Ok(false);
            };
            for (n, code) in list.iter() {
                if !self.visited.insert(n) {
                    continue;
                }
                let score = view.estimate_code(codes, &coded, code);
                let allowed = self.is_allowed(n);
                self.found_scored(view, Scored { score, id: n }, allowed)?;
            }
            Ok(true)
        })();
        self.coded = Some((codes, coded));
        expanded
    }

    /// Asks the kernel for the lists of the nodes next in line to be expanded, where lists are
    /// stored with their neighbours' codes: a cold walk then waits for several of them at once
    /// instead of for each in turn. Finding a list may still wait for its B-tree leaf.
    fn ask_for_next_lists(&mut self, view: &LmdbView<'_>) -> Result<()> {
        if self.two_hop || self.coded.is_none() || !view.meta.neighbour_codes() {
            return Ok(());
        }
        let mut next = [None; LISTS_AHEAD];
        for slot in &mut next {
            *slot = self.frontier.pop();
        }
        let mut result = Ok(());
        for Reverse(candidate) in next.iter().flatten() {
            if result.is_ok() && self.asked.insert(candidate.id) {
                result = view
                    .coded_list(candidate.id, 0)
                    .map(|list| list.map(|l| advice::will_need(l.bytes())).unwrap_or(()));
            }
        }
        self.frontier.extend(next.into_iter().flatten());
        result
    }

    /// Expands `links` of a two-hop walk: allowed neighbours are scored, disallowed ones are
    /// looked through to their own allowed neighbours, until `m0` new items are found (ACORN's
    /// truncation of the neighbourhood to the list size). Without the cap one step just under
    /// the two-hop threshold could score a hundred items, most of them far behind the window.
    fn expand_two_hop(
        &mut self,
        view: &LmdbView<'_>,
        query: &[u8],
        links: Vec<ItemId>,
    ) -> Result<()> {
        let cap = view.meta.m0 as usize;
        let mut found = std::mem::take(&mut self.found);
        let mut through = std::mem::take(&mut self.through);
        let mut second = std::mem::take(&mut self.second_hop);
        found.clear();
        through.clear();
        for &n in &links {
            if self.visited.contains(n) {
                continue;
            }
            if self.is_allowed(n) {
                self.visited.insert(n);
                found.push(n);
                self.prefetch(view, n);
            } else {
                through.push(n);
                view.prefetch_links(n);
            }
        }
        // A node not looked through for want of room stays unvisited: another expansion may.
        for &n in &through {
            if found.len() >= cap {
                break;
            }
            if !self.visited.insert(n) {
                continue;
            }
            second.clear();
            view.neighbours(n, 0, &mut second)?;
            for &n2 in &second {
                if self.is_allowed(n2) && self.visited.insert(n2) {
                    found.push(n2);
                    self.prefetch(view, n2);
                }
            }
        }
        for &n in &found {
            self.discover(view, query, n, true)?;
        }
        self.found = found;
        self.through = through;
        self.second_hop = second;
        self.links = links;
        Ok(())
    }

    fn discover(
        &mut self,
        view: &LmdbView<'_>,
        query: &[u8],
        id: ItemId,
        allowed: bool,
    ) -> Result<()> {
        let score = match &self.coded {
            Some((codes, coded)) => view.estimate(*codes, coded, id)?,
            None => view.score(query, id)?,
        };
        self.found_scored(view, Scored { score, id }, allowed)
    }

    /// Takes in a node just scored: to expand later and, if allowed, to return.
    fn found_scored(&mut self, view: &LmdbView<'_>, s: Scored, allowed: bool) -> Result<()> {
        self.visited_count += 1;
        self.frontier.push(Reverse(s));
        if allowed {
            self.offer(view, s)?;
        }
        Ok(())
    }

    /// Hints that `id` is about to be scored: its code or its vector.
    #[inline]
    fn prefetch(&self, view: &LmdbView<'_>, id: ItemId) {
        match &self.coded {
            Some((codes, _)) => view.prefetch_code(*codes, id, self.advise),
            None => view.prefetch_vector(id, self.advise),
        }
    }

    /// Scores the allowed items the walk never reached (cut off by the filter, or by deletes).
    fn score_unreached(&mut self, view: &LmdbView<'_>, query: &[u8]) -> Result<()> {
        let allowed = std::mem::take(&mut self.allowed);
        let unreached = allowed
            .iter()
            .filter(|&id| self.visited.insert(id))
            .collect::<Vec<_>>();
        self.visited_count += unreached.len();
        if let Some((codes, coded)) = self.coded.take_if(|_| self.bounds) {
            // No vector is read: they are scored as the walk's nodes are, and bounded when
            // handed out.
            for &id in &unreached {
                let score = view.estimate(codes, &coded, id)?;
                self.offer(view, Scored { score, id })?;
            }
            self.coded = Some((codes, coded));
            self.allowed = allowed;
            return Ok(());
        }
        if self.advise {
            view.store
                .advise_vectors(view.txn, view.meta, unreached.iter().copied())?;
        }
        let metric = view.metric();
        view.store
            .for_each_vector(view.txn, view.meta, unreached.into_iter(), |id, v| {
                self.offer(
                    view,
                    Scored {
                        score: metric.score(query, v),
                        id,
                    },
                )
            })?;
        self.allowed = allowed;
        Ok(())
    }
}

/// Replaces the estimates of a window by lower bounds of the exact scores, from the codes, and
/// sorts it by them: no vector is read.
fn lower_bounds(
    view: &LmdbView<'_>,
    codes: Codes<'_>,
    coded: &CodedQuery,
    window: &mut [Scored],
) -> Result<()> {
    for s in window.iter_mut() {
        s.score = view.lower_bound(codes, coded, s.id)?;
    }
    window.sort_unstable();
    Ok(())
}

/// Replaces the estimates of a window by exact scores and sorts it by them. Every vector is
/// found and asked for before any is read, so their cache misses overlap: in a walk on codes
/// none of them has been read yet.
fn rerank(view: &LmdbView<'_>, query: &[u8], window: &mut [Scored], advise: bool) -> Result<()> {
    let vectors = window
        .iter()
        .map(|s| {
            let v = view.vector(s.id)?;
            if advise {
                advice::will_need(&v);
            }
            crate::distance::prefetch(v.as_ptr(), v.len());
            Ok(v)
        })
        .collect::<Result<Vec<_>>>()?;
    let metric = view.metric();
    for (s, v) in window.iter_mut().zip(vectors) {
        s.score = metric.score(query, &v);
    }
    window.sort_unstable();
    Ok(())
}
