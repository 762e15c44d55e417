//! Neighbour selection: HNSW's heuristic (keep a candidate only if no kept neighbour is closer to
//! it than the owner is), with the pruned candidates kept as filler up to the cap. Diverse links
//! make the graph navigable; filler links make it dense enough for good recall.

use super::{GraphView, Scored};
use crate::distance::Metric;
use crate::error::Result;
use crate::ItemId;

/// One link of a node, with its score from the owner and whether the heuristic kept it as
/// diverse (the others are filler and go first when the list overflows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Link {
    pub score: f32,
    pub id: ItemId,
    pub diverse: bool,
}

/// Copies of one vector (equal up to rounding) are equally far from everything, so the heuristic
/// cannot tell them apart: left alone, a node with many copies fills its list with them and has no
/// way out, every other node links just one copy (it dominates the rest), and a group whose last
/// in-link from outside gets pruned is cut off from every search. So a node links only two of
/// its copies, the next and the previous one in id order (wrapping): the copies form a ring that
/// any one in-link reaches whole, and the rest of the list goes to real neighbours. A new copy
/// links its two ring neighbours and, through the back links, takes its place between them.
#[derive(Clone, Copy)]
pub(crate) struct Owner {
    pub id: ItemId,
    /// The owner's score against itself: zero for distances, minus the squared norm for the
    /// inner product.
    self_score: f32,
}

impl Owner {
    pub fn new<G: GraphView + ?Sized>(graph: &G, id: ItemId) -> Result<Owner> {
        Ok(Owner::with_vector(graph.metric(), id, graph.vector(id)?))
    }

    /// As `new`, for a caller that has read the owner's vector already.
    pub fn with_vector(metric: Metric, id: ItemId, vector: &[u8]) -> Owner {
        Owner {
            id,
            self_score: metric.score(vector, vector),
        }
    }

    /// Whether an item at `score` from the owner is a copy of it. Exact copies score the same as
    /// the owner against itself; copies that went through normalisation differ by rounding, far
    /// below what separates the nearest distinct vectors of real data (1e-4 and up).
    pub fn is_copy(&self, score: f32) -> bool {
        (score - self.self_score).abs() <= 1e-5 * self.self_score.abs().max(1.0)
    }

    /// The owner's ring neighbours among `copies`: the next id after it and the previous one.
    fn ring_neighbours(&self, copies: impl Iterator<Item = ItemId>) -> [Option<ItemId>; 2] {
        let mut next: Option<ItemId> = None;
        let mut previous: Option<ItemId> = None;
        for id in copies.filter(|&id| id != self.id) {
            let after = id.wrapping_sub(self.id);
            if next.is_none_or(|n| after < n.wrapping_sub(self.id)) {
                next = Some(id);
            }
            let before = self.id.wrapping_sub(id);
            if previous.is_none_or(|p| before < self.id.wrapping_sub(p)) {
                previous = Some(id);
            }
        }
        [next, previous.filter(|&p| Some(p) != next)]
    }

    /// Whether the copy `new` belongs in a list with links `links` (id, score), and if so which
    /// copies it displaces from the ring.
    fn admit_copy(&self, links: &[(ItemId, f32)], new: ItemId) -> Option<Vec<ItemId>> {
        let copies: Vec<ItemId> = links
            .iter()
            .filter(|(_, score)| self.is_copy(*score))
            .map(|(id, _)| *id)
            .collect();
        let ring = self.ring_neighbours(copies.iter().copied().chain([new]));
        if !ring.contains(&Some(new)) {
            return None;
        }
        Some(
            copies
                .into_iter()
                .filter(|c| !ring.contains(&Some(*c)))
                .collect(),
        )
    }
}

fn dominated<G: GraphView + ?Sized>(
    graph: &G,
    candidate: Scored,
    kept: &[(Link, &[u8])],
) -> Result<bool> {
    let v = graph.vector(candidate.id)?;
    let metric = graph.metric();
    Ok(kept
        .iter()
        .any(|(_, s)| metric.score(v, s) < candidate.score))
}

/// Chooses at most `cap` links for `owner` from `candidates` (ascending, distinct ids, scores
/// from the owner, the owner itself excluded).
pub(crate) fn select<G: GraphView + ?Sized>(
    graph: &G,
    owner: Owner,
    candidates: &[Scored],
    cap: usize,
) -> Result<Vec<Link>> {
    let ring = owner.ring_neighbours(
        candidates
            .iter()
            .filter(|c| owner.is_copy(c.score))
            .map(|c| c.id),
    );
    let mut copies: Vec<Scored> = candidates
        .iter()
        .filter(|c| ring.contains(&Some(c.id)))
        .copied()
        .collect();
    copies.truncate(cap);
    let cap = cap - copies.len();
    let mut kept: Vec<(Link, &[u8])> = Vec::with_capacity(cap);
    let mut filler: Vec<Scored> = Vec::with_capacity(cap);
    for &c in candidates {
        if kept.len() == cap {
            break;
        }
        if owner.is_copy(c.score) {
            continue;
        }
        if dominated(graph, c, &kept)? {
            if filler.len() < cap {
                filler.push(c);
            }
        } else {
            kept.push((
                Link {
                    score: c.score,
                    id: c.id,
                    diverse: true,
                },
                graph.vector(c.id)?,
            ));
        }
    }
    let mut links: Vec<Link> = kept.into_iter().map(|(l, _)| l).collect();
    let room = cap - links.len();
    links.extend(filler.into_iter().take(room).map(|s| Link {
        score: s.score,
        id: s.id,
        diverse: false,
    }));
    links.extend(copies.into_iter().map(|s| Link {
        score: s.score,
        id: s.id,
        diverse: true,
    }));
    links.sort_unstable_by(|a, b| a.score.total_cmp(&b.score).then(a.id.cmp(&b.id)));
    Ok(links)
}

/// Adds a back link to a list (ascending by score) and, if that overflows `cap`, prunes it the
/// way `select` would: the farthest filler link goes, or the farthest link when all are diverse.
///
/// The statuses are kept up to date incrementally: the new link is checked against the diverse
/// links before it, and, if it is diverse itself, the diverse links after it are checked against
/// it. A filler link that a newly demoted link used to dominate is not promoted: recomputing the
/// whole tail for it costs builds much more than the recall it would buy.
///
/// A link farther than every link of a full list is checked like any other: when no diverse
/// link dominates it, it replaces the farthest filler link, as `select` would keep it. The long
/// links that make the graph navigable are the ones that come last, to lists that filled early
/// (docs/benchmarks.md, "Far links into full lists").
pub(crate) fn add_link<G: GraphView + ?Sized>(
    graph: &G,
    owner: Owner,
    list: &mut Vec<Link>,
    new: Scored,
    cap: usize,
) -> Result<()> {
    if list.iter().any(|l| l.id == new.id) {
        return Ok(());
    }
    if owner.is_copy(new.score) {
        let links: Vec<(ItemId, f32)> = list.iter().map(|l| (l.id, l.score)).collect();
        let Some(displaced) = owner.admit_copy(&links, new.id) else {
            return Ok(());
        };
        list.retain(|l| !displaced.contains(&l.id));
        let pos = list.partition_point(|l| (l.score, l.id) < (new.score, new.id));
        list.insert(
            pos,
            Link {
                score: new.score,
                id: new.id,
                diverse: true,
            },
        );
        trim_to_cap(list, cap);
        return Ok(());
    }
    let pos = list.partition_point(|l| (l.score, l.id) < (new.score, new.id));
    let metric = graph.metric();
    let new_vec = graph.vector(new.id)?;
    let mut new_diverse = true;
    // A copy of the owner is as far from `new` as the owner is, give or take rounding: it
    // dominates nothing.
    for l in list[..pos]
        .iter()
        .filter(|l| l.diverse && !owner.is_copy(l.score))
    {
        if metric.score(new_vec, graph.vector(l.id)?) < new.score {
            new_diverse = false;
            break;
        }
    }
    if !new_diverse && list.len() >= cap && list[pos..].iter().all(|l| l.diverse) {
        return Ok(()); // the only filler link, so the one to drop
    }
    list.insert(
        pos,
        Link {
            score: new.score,
            id: new.id,
            diverse: new_diverse,
        },
    );
    if new_diverse {
        for l in list[pos + 1..].iter_mut().filter(|l| l.diverse) {
            if metric.score(graph.vector(l.id)?, new_vec) < l.score {
                l.diverse = false;
            }
        }
    }
    trim_to_cap(list, cap);
    Ok(())
}

/// Drops the farthest filler link of an overflowing list, or its farthest link when all are
/// diverse.
fn trim_to_cap(list: &mut Vec<Link>, cap: usize) {
    if list.len() > cap {
        let drop = list
            .iter()
            .rposition(|l| !l.diverse)
            .unwrap_or(list.len() - 1);
        list.remove(drop);
    }
}

/// How many of a full list's farthest links are checked for one to drop when a link comes in.
const VICTIM_WINDOW: usize = 8;

/// A stored list with its scores from the owner computed only when asked for. Every writer on
/// the insert path keeps stored lists in ascending score order, so a new link's place is found by
/// bisection: a handful of distances instead of one per link, which was most of the time spent
/// taking in back links (15,000 lists touched per batch of 670 into 100,000 items). A list out
/// of order (a repair may append) only makes the place, and so the victim window, approximate.
pub(crate) struct ScoredList<'v> {
    owner_vec: &'v [u8],
    ids: Vec<ItemId>,
    /// NaN until computed.
    scores: Vec<f32>,
}

impl<'v> ScoredList<'v> {
    pub fn new(owner_vec: &'v [u8], ids: Vec<ItemId>) -> Self {
        let scores = vec![f32::NAN; ids.len()];
        ScoredList {
            owner_vec,
            ids,
            scores,
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn into_ids(self) -> Vec<ItemId> {
        self.ids
    }

    fn score<G: GraphView + ?Sized>(&mut self, graph: &G, i: usize) -> Result<f32> {
        if self.scores[i].is_nan() {
            self.scores[i] = graph
                .metric()
                .score(self.owner_vec, graph.vector(self.ids[i])?);
        }
        Ok(self.scores[i])
    }

    /// Every link with its score, ascending.
    pub fn scored<G: GraphView + ?Sized>(&mut self, graph: &G) -> Result<Vec<Scored>> {
        let mut all = Vec::with_capacity(self.len());
        for i in 0..self.len() {
            all.push(Scored {
                score: self.score(graph, i)?,
                id: self.ids[i],
            });
        }
        all.sort_unstable();
        Ok(all)
    }

    /// Where `new` goes to keep the list ascending.
    fn place_of<G: GraphView + ?Sized>(&mut self, graph: &G, new: Scored) -> Result<usize> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = (low + high) / 2;
            let at_mid = Scored {
                score: self.score(graph, mid)?,
                id: self.ids[mid],
            };
            if at_mid < new {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        Ok(low)
    }

    fn insert(&mut self, at: usize, new: Scored) {
        self.ids.insert(at, new.id);
        self.scores.insert(at, new.score);
    }

    fn remove(&mut self, at: usize) {
        self.ids.remove(at);
        self.scores.remove(at);
    }

    /// Adds `new` in its place, for a list with room for it.
    pub fn add<G: GraphView + ?Sized>(&mut self, graph: &G, new: Scored) -> Result<()> {
        if !self.ids.contains(&new.id) {
            let at = self.place_of(graph, new)?;
            self.insert(at, new);
        }
        Ok(())
    }
}

/// Puts `new` into a stored list that is already full (distinct ids) and drops a link to keep
/// it at `cap`: the farthest of the last few links that a closer link of the list dominates, or
/// the farthest link when none is dominated. This is `select`'s rule (the farthest filler link
/// goes, or the farthest when all are diverse) without re-deciding every link, which costs a
/// distance per candidate and kept link: most of an insert's work when each new item lands in
/// 32 lists.
///
/// A dropped node's reachability is looked after by `keep_last_in_links` and the periodic
/// reconnect pass, not here.
pub(crate) fn replace_in_full_list<G: GraphView + ?Sized>(
    graph: &G,
    owner: Owner,
    list: &mut ScoredList<'_>,
    new: Scored,
    cap: usize,
) -> Result<()> {
    if list.ids.contains(&new.id) {
        return Ok(());
    }
    if owner.is_copy(new.score) {
        let links: Vec<(ItemId, f32)> = list
            .scored(graph)?
            .iter()
            .map(|l| (l.id, l.score))
            .collect();
        // Not one of the owner's ring neighbours: the list stays as it is.
        let Some(displaced) = owner.admit_copy(&links, new.id) else {
            return Ok(());
        };
        while let Some(at) = list.ids.iter().position(|id| displaced.contains(id)) {
            list.remove(at);
        }
    }
    let pos = list.place_of(graph, new)?;
    list.insert(pos, new);
    if list.len() <= cap {
        return Ok(());
    }
    let metric = graph.metric();
    let lowest = list.len().saturating_sub(VICTIM_WINDOW).max(1);
    for i in (lowest..list.len()).rev() {
        let victim_score = list.score(graph, i)?;
        let victim = graph.vector(list.ids[i])?;
        for j in 0..i {
            // A copy of the owner is as far from the victim as the owner is, give or take
            // rounding: it dominates nothing.
            if metric.score(victim, graph.vector(list.ids[j])?) < victim_score
                && !owner.is_copy(list.score(graph, j)?)
            {
                list.remove(i);
                return Ok(());
            }
        }
    }
    list.remove(list.len() - 1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::graph::tests::Points;

    const POINTS: [[f32; 2]; 5] = [[0.0, 0.0], [1.0, 0.0], [1.1, 0.1], [1.2, -0.1], [0.0, -5.0]];

    /// Item `id` scored from item 0, the owner, at the origin.
    fn scored(plane: &Points, id: ItemId) -> Scored {
        Scored {
            score: plane.score(plane.vector(0).unwrap(), id).unwrap(),
            id,
        }
    }

    #[test]
    fn a_far_diverse_link_into_a_full_list_replaces_its_farthest_filler_link() {
        let plane = Points::new(POINTS.iter().map(|p| p.to_vec()));
        let owner = Owner::new(&plane, 0).unwrap();
        // 1 is diverse; 2 and 3 lie next to 1, nearer to it than to the owner: filler.
        let candidates: Vec<Scored> = (1..=3).map(|id| scored(&plane, id)).collect();
        let mut list = select(&plane, owner, &candidates, 3).unwrap();
        let ids = |list: &[Link]| list.iter().map(|l| (l.id, l.diverse)).collect::<Vec<_>>();
        assert_eq!(ids(&list), [(1, true), (2, false), (3, false)]);
        // 4 lies the other way, farther than every link, and nothing dominates it.
        add_link(&plane, owner, &mut list, scored(&plane, 4), 3).unwrap();
        assert_eq!(ids(&list), [(1, true), (2, false), (4, true)]);
        // What `select` keeps from all four.
        let all: Vec<Scored> = (1..=4).map(|id| scored(&plane, id)).collect();
        assert_eq!(ids(&select(&plane, owner, &all, 3).unwrap()), ids(&list));
    }
}
