//! The best items a beam search has found, where copies of one vector share a place.
//!
//! A beam of `ef` items fills with copies when the data holds many of one vector (the same text
//! embedded for thirty product variants): thirty copies at one distance leave room for a handful
//! of other points, and the search stops at the first group it meets. Counting items at the same
//! score, up to rounding, as one place keeps the beam `ef` distinct points wide.

use std::collections::{BTreeSet, BinaryHeap};

use super::select::Owner;
use super::{GraphView, Scored};
use crate::error::Result;
use crate::ItemId;

/// Where a beam keeps its items: a heap when only the farthest is ever taken out (a search
/// during construction), an ordered set when the nearest are streamed out too.
pub(crate) trait Items: Default {
    fn insert(&mut self, s: Scored);
    fn last(&self) -> Option<Scored>;
    fn pop_last(&mut self) -> Option<Scored>;
    fn into_sorted_vec(self) -> Vec<Scored>;
}

impl Items for BinaryHeap<Scored> {
    fn insert(&mut self, s: Scored) {
        self.push(s);
    }
    fn last(&self) -> Option<Scored> {
        self.peek().copied()
    }
    fn pop_last(&mut self) -> Option<Scored> {
        self.pop()
    }
    fn into_sorted_vec(self) -> Vec<Scored> {
        BinaryHeap::into_sorted_vec(self)
    }
}

impl Items for BTreeSet<Scored> {
    fn insert(&mut self, s: Scored) {
        BTreeSet::insert(self, s);
    }
    fn last(&self) -> Option<Scored> {
        BTreeSet::last(self).copied()
    }
    fn pop_last(&mut self) -> Option<Scored> {
        BTreeSet::pop_last(self)
    }
    fn into_sorted_vec(self) -> Vec<Scored> {
        self.into_iter().collect()
    }
}

/// Scores this close are taken for copies: rounding makes copies of a normalised vector differ
/// by about 1e-7, while the gaps between the distinct nearest neighbours of real data are a
/// thousand times that. Two distinct items this close only share a place, which costs nothing.
fn tolerance(score: f32) -> f32 {
    1e-6 * score.abs().max(1.0)
}

pub(crate) struct Beam<I: Items> {
    items: I,
    /// One entry per place, ascending. A sorted vector of at most `ef` entries answers "is this
    /// a copy" faster than a range query on `items`, and this runs for every item a search
    /// scores.
    groups: Vec<Group>,
    ef: usize,
}

struct Group {
    /// The score of its first item.
    score: f32,
    first: ItemId,
    count: u32,
}

/// Whether `a` and `b` hold the same vector, up to rounding.
fn are_copies<G: GraphView + ?Sized>(graph: &G, a: ItemId, b: ItemId) -> Result<bool> {
    let owner = Owner::new(graph, a)?;
    Ok(owner.is_copy(graph.score(&graph.vector(a)?, b)?))
}

impl<I: Items> Beam<I> {
    pub fn new(ef: usize) -> Self {
        Beam {
            items: I::default(),
            groups: Vec::with_capacity(ef + 1),
            ef: ef.max(1),
        }
    }

    /// How many groups the beam keeps.
    pub fn ef(&self) -> usize {
        self.ef
    }

    pub fn is_full(&self) -> bool {
        self.groups.len() >= self.ef
    }

    pub fn worst(&self) -> Option<f32> {
        self.items.last().map(|s| s.score)
    }

    /// The group `s` belongs to, or where a new group for it goes. A group within rounding of
    /// its score is only joined by a copy of its first item: data with whole-number coordinates
    /// ties all the time without copies, and grouping those would widen the beam without bound.
    fn group_of<G: GraphView + ?Sized>(
        &self,
        graph: &G,
        s: Scored,
    ) -> Result<Result<usize, usize>> {
        let t = tolerance(s.score);
        let p = self.groups.partition_point(|g| g.score < s.score - t);
        for (i, g) in self.groups[p..].iter().enumerate() {
            if g.score > s.score + t {
                break;
            }
            if are_copies(graph, g.first, s.id)? {
                return Ok(Ok(p + i));
            }
        }
        Ok(Err(self.groups.partition_point(|g| g.score <= s.score)))
    }

    /// Adds `s` if it belongs, and says whether it did; every item it pushes out (or `s`
    /// itself, if it does not belong) goes to `out`.
    pub fn offer<G: GraphView + ?Sized>(
        &mut self,
        graph: &G,
        s: Scored,
        mut out: impl FnMut(Scored),
    ) -> Result<bool> {
        let behind = self.is_full() && self.worst().is_some_and(|w| s.score >= w);
        // Only the farthest group can have a copy at or beyond `worst`.
        if behind && self.worst().is_some_and(|w| s.score > w + tolerance(w)) {
            out(s);
            return Ok(false);
        }
        match self.group_of(graph, s)? {
            Ok(g) => self.groups[g].count += 1,
            Err(_) if behind => {
                out(s);
                return Ok(false);
            }
            Err(p) => self.groups.insert(
                p,
                Group {
                    score: s.score,
                    first: s.id,
                    count: 1,
                },
            ),
        }
        self.items.insert(s);
        while self.groups.len() > self.ef {
            let last = self.groups.pop().expect("more groups than ef");
            for _ in 0..last.count {
                out(self.items.pop_last().expect("a group has items"));
            }
        }
        Ok(true)
    }

    /// Every item, ascending.
    pub fn into_sorted_vec(self) -> Vec<Scored> {
        self.items.into_sorted_vec()
    }
}

impl Beam<BTreeSet<Scored>> {
    pub fn pop_first(&mut self) -> Option<Scored> {
        let best = self.items.pop_first()?;
        if let Some(first) = self.groups.first_mut() {
            first.count -= 1;
            if first.count == 0 {
                self.groups.remove(0);
            }
        }
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tests::Points;

    /// Items 0..=9 are copies of one vector, every other id a vector of its own.
    fn points() -> Points {
        Points::new((0..40u32).map(|id| vec![if id < 10 { 1.0 } else { id as f32 }, 2.0]))
    }

    fn s(score: f32, id: u32) -> Scored {
        Scored { score, id }
    }

    #[test]
    fn copies_share_a_place_and_leave_as_a_group() {
        let points = points();
        let mut beam = Beam::<BTreeSet<Scored>>::new(2);
        let mut out = Vec::new();
        for id in 0..6 {
            assert!(beam.offer(&points, s(0.5, id), |x| out.push(x)).unwrap());
        }
        // Rounding apart, still a copy.
        beam.offer(&points, s(0.5 + 1e-8, 9), |x| out.push(x))
            .unwrap();
        assert!(out.is_empty() && !beam.is_full());
        beam.offer(&points, s(0.7, 10), |x| out.push(x)).unwrap();
        assert!(beam.is_full());
        assert!(!beam.offer(&points, s(0.8, 11), |x| out.push(x)).unwrap());
        assert_eq!(out, vec![s(0.8, 11)]);
        // A closer distinct item pushes out the whole farthest group.
        beam.offer(&points, s(0.1, 12), |x| out.push(x)).unwrap();
        assert_eq!(out[1..], [s(0.7, 10)]);
        beam.offer(&points, s(0.2, 13), |x| out.push(x)).unwrap();
        assert_eq!(out.len(), 2 + 7);
        assert_eq!(beam.pop_first(), Some(s(0.1, 12)));
        assert!(!beam.is_full());
    }

    #[test]
    fn ties_that_are_not_copies_take_places_of_their_own() {
        let points = points();
        let mut beam = Beam::<BinaryHeap<Scored>>::new(3);
        for id in 20..30 {
            beam.offer(&points, s(4.0, id), drop).unwrap();
        }
        assert_eq!(beam.into_sorted_vec().len(), 3);
    }
}
