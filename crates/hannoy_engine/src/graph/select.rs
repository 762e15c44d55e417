//! Neighbour selection: HNSW's heuristic (keep a candidate only if no kept neighbour is closer to
//! it than the owner is), with the pruned candidates kept as filler up to the cap. Diverse links
//! make the graph navigable; filler links make it dense enough for good recall.

use super::{GraphView, Scored, VectorBytes};
use crate::error::Result;
use crate::storage::StatusLink;
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
        Ok(Owner::with_vector(graph, id, &graph.vector(id)?))
    }

    /// As `new`, for a caller that has read the owner's vector already (as `graph` returns it).
    pub fn with_vector<G: GraphView + ?Sized>(graph: &G, id: ItemId, vector: &[u8]) -> Owner {
        Owner {
            id,
            self_score: graph.between(vector, vector),
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
    kept: &[(Link, VectorBytes<'_>)],
) -> Result<bool> {
    let v = graph.vector(candidate.id)?;
    Ok(kept
        .iter()
        .any(|(_, s)| graph.between(&v, s) < candidate.score))
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
    let mut kept: Vec<(Link, VectorBytes<'_>)> = Vec::with_capacity(cap);
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

/// A list of links in ascending score order, as `add_link` edits it: the in-memory build's,
/// whose scores are known, or a stored list (`ScoredList`), whose scores are computed only when
/// asked for.
pub(crate) trait LinkSlots {
    fn len(&self) -> usize;
    fn id(&self, i: usize) -> ItemId;
    fn diverse(&self, i: usize) -> bool;
    fn demote(&mut self, i: usize);
    /// The score of link `i` from the owner.
    fn score<G: GraphView + ?Sized>(&mut self, graph: &G, i: usize) -> Result<f32>;
    fn insert(&mut self, at: usize, link: Link);
    fn remove(&mut self, at: usize);
}

impl LinkSlots for Vec<Link> {
    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn id(&self, i: usize) -> ItemId {
        self[i].id
    }

    fn diverse(&self, i: usize) -> bool {
        self[i].diverse
    }

    fn demote(&mut self, i: usize) {
        self[i].diverse = false;
    }

    fn score<G: GraphView + ?Sized>(&mut self, _: &G, i: usize) -> Result<f32> {
        Ok(self[i].score)
    }

    fn insert(&mut self, at: usize, link: Link) {
        Vec::insert(self, at, link);
    }

    fn remove(&mut self, at: usize) {
        Vec::remove(self, at);
    }
}

/// Where `new` goes to keep `list` ascending, by bisection: a handful of scores of a stored
/// list instead of one per link. A list out of order (a repair appends) only makes the place
/// approximate.
fn place_of<G: GraphView + ?Sized, L: LinkSlots>(
    graph: &G,
    list: &mut L,
    new: Scored,
) -> Result<usize> {
    let (mut low, mut high) = (0, list.len());
    while low < high {
        let mid = (low + high) / 2;
        let at_mid = Scored {
            score: list.score(graph, mid)?,
            id: list.id(mid),
        };
        if at_mid < new {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    Ok(low)
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
pub(crate) fn add_link<G: GraphView + ?Sized, L: LinkSlots>(
    graph: &G,
    owner: Owner,
    list: &mut L,
    new: Scored,
    cap: usize,
) -> Result<()> {
    if (0..list.len()).any(|i| list.id(i) == new.id) {
        return Ok(());
    }
    if owner.is_copy(new.score) {
        let mut links: Vec<(ItemId, f32)> = Vec::with_capacity(list.len());
        for i in 0..list.len() {
            links.push((list.id(i), list.score(graph, i)?));
        }
        let Some(displaced) = owner.admit_copy(&links, new.id) else {
            return Ok(());
        };
        for i in (0..list.len()).rev() {
            if displaced.contains(&list.id(i)) {
                list.remove(i);
            }
        }
        let pos = place_of(graph, list, new)?;
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
    let pos = place_of(graph, list, new)?;
    let new_vec = graph.vector(new.id)?;
    let mut new_diverse = true;
    for i in 0..pos {
        // A copy of the owner is as far from `new` as the owner is, give or take rounding: it
        // dominates nothing. Its own score is looked at last, as a stored list computes it.
        if list.diverse(i)
            && graph.between(&new_vec, &graph.vector(list.id(i))?) < new.score
            && !owner.is_copy(list.score(graph, i)?)
        {
            new_diverse = false;
            break;
        }
    }
    if !new_diverse && list.len() >= cap && (pos..list.len()).all(|i| list.diverse(i)) {
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
        for i in pos + 1..list.len() {
            if list.diverse(i)
                && graph.between(&graph.vector(list.id(i))?, &new_vec) < list.score(graph, i)?
            {
                list.demote(i);
            }
        }
    }
    trim_to_cap(list, cap);
    Ok(())
}

/// Drops the farthest filler link of an overflowing list, or its farthest link when all are
/// diverse.
fn trim_to_cap<L: LinkSlots>(list: &mut L, cap: usize) {
    if list.len() > cap {
        let drop = (0..list.len())
            .rev()
            .find(|&i| !list.diverse(i))
            .unwrap_or(list.len() - 1);
        list.remove(drop);
    }
}

/// A stored list, with its links' statuses as stored and their scores from the owner computed
/// only when asked for: a list taking in a link scores a handful of its links, not all of them
/// (15,000 lists take in links per batch of 670 rows into 100,000 items).
pub(crate) struct ScoredList<'v> {
    owner_vec: &'v [u8],
    ids: Vec<ItemId>,
    /// NaN until computed.
    scores: Vec<f32>,
    diverse: Vec<bool>,
}

impl<'v> ScoredList<'v> {
    /// A list of (id, diverse) links.
    pub fn new(owner_vec: &'v [u8], links: &[StatusLink]) -> Self {
        ScoredList {
            owner_vec,
            ids: links.iter().map(|l| l.0).collect(),
            scores: vec![f32::NAN; links.len()],
            diverse: links.iter().map(|l| l.1).collect(),
        }
    }

    /// The ids and their statuses.
    pub fn into_parts(self) -> (Vec<ItemId>, Vec<bool>) {
        (self.ids, self.diverse)
    }

    /// Every link with its score, ascending.
    pub fn scored<G: GraphView + ?Sized>(&mut self, graph: &G) -> Result<Vec<Scored>> {
        let mut all = Vec::with_capacity(self.ids.len());
        for i in 0..self.ids.len() {
            all.push(Scored {
                score: self.score(graph, i)?,
                id: self.ids[i],
            });
        }
        all.sort_unstable();
        Ok(all)
    }
}

impl LinkSlots for ScoredList<'_> {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn id(&self, i: usize) -> ItemId {
        self.ids[i]
    }

    fn diverse(&self, i: usize) -> bool {
        self.diverse[i]
    }

    fn demote(&mut self, i: usize) {
        self.diverse[i] = false;
    }

    fn score<G: GraphView + ?Sized>(&mut self, graph: &G, i: usize) -> Result<f32> {
        if self.scores[i].is_nan() {
            self.scores[i] = graph.between(self.owner_vec, &graph.vector(self.ids[i])?);
        }
        Ok(self.scores[i])
    }

    fn insert(&mut self, at: usize, link: Link) {
        self.ids.insert(at, link.id);
        self.scores.insert(at, link.score);
        self.diverse.insert(at, link.diverse);
    }

    fn remove(&mut self, at: usize) {
        self.ids.remove(at);
        self.scores.remove(at);
        self.diverse.remove(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::graph::tests::Points;

    const POINTS: [[f32; 2]; 5] = [[0.0, 0.0], [1.0, 0.0], [1.1, 0.1], [1.2, -0.1], [0.0, -5.0]];

    /// Item `id` scored from item 0, the owner, at the origin.
    fn scored(plane: &Points, id: ItemId) -> Scored {
        Scored {
            score: plane.score(&plane.vector(0).unwrap(), id).unwrap(),
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
