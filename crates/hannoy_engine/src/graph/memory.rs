//! Parallel HNSW construction in memory over one batch of prepared vectors.
//!
//! Items are inserted highest level first, so the upper layers exist before the bulk of layer 0
//! is built; after the first item every insertion runs on rayon's pool. Each (node, layer) list
//! has its own mutex, held only to copy the list or to add one link, never across a search.

use crate::graph::cancel::{CancelCheck, Pass, Watch};
use std::sync::{Mutex, RwLock};

use rayon::prelude::*;

use super::select::{add_link, select, Link, Owner};
use super::visited::Visited;
use super::{search_layer, start, GraphView, Scored, INSERT_START_BEAM};
use crate::distance::{Metric, PreparedVectors};
use crate::error::Result;
use crate::ItemId;

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
    entry: RwLock<Option<(ItemId, usize)>>,
}

impl GraphView for MemGraph<'_> {
    fn metric(&self) -> Metric {
        self.params.metric
    }

    #[inline]
    fn vector(&self, id: ItemId) -> Result<&[u8]> {
        Ok(self.vectors.get(id as usize))
    }

    #[inline]
    fn prefetch(&self, id: ItemId) {
        let vector = self.vectors.get(id as usize);
        crate::distance::prefetch(vector.as_ptr(), vector.len());
    }

    #[inline]
    fn neighbours(&self, id: ItemId, layer: usize, out: &mut Vec<ItemId>) -> Result<()> {
        if let Some(list) = self.links[id as usize].get(layer) {
            out.extend(lock(list).iter().map(|l| l.id));
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
            .map(|&l| (0..=l).map(|_| Mutex::new(Vec::new())).collect())
            .collect();
        let graph = MemGraph {
            params,
            vectors,
            levels,
            links,
            entry: RwLock::new(None),
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
        let level = self.levels[q as usize];
        let (entry, top) = self
            .entry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .expect("set before the parallel phase");
        let query = self.vectors.get(q as usize);
        let mut eps = start(
            self,
            query,
            entry,
            top,
            level.min(top),
            self.params.ef_construction.min(INSERT_START_BEAM),
            visited,
        )?;
        for layer in (0..=level.min(top)).rev() {
            let found = search_layer(
                self,
                query,
                &eps,
                self.params.ef_construction,
                layer,
                visited,
            )?;
            let candidates: Vec<Scored> = found.iter().copied().filter(|s| s.id != q).collect();
            let chosen = select(
                self,
                Owner::new(self, q)?,
                &candidates,
                self.params.cap(layer),
            )?;
            *lock(&self.links[q as usize][layer]) = chosen.clone();
            for link in chosen {
                let mut list = lock(&self.links[link.id as usize][layer]);
                add_link(
                    self,
                    Owner::new(self, link.id)?,
                    &mut *list,
                    Scored {
                        score: link.score,
                        id: q,
                    },
                    self.params.cap(layer),
                )?;
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
}
