//! What a long write tells its caller while it runs, and one cancel check for its parallel
//! passes: the caller is polled once per item, and once any worker sees a cancel every other
//! stops at its next item without polling again.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// The passes of a write, in the order an insert runs them. Each polls `Watch::cancelled`
/// once per item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The batch's own graph, built in memory: one search per new item.
    BatchGraph,
    /// Each new item searches the stored graph for its candidates (only when the index
    /// already has items): one search per new item again, on the larger graph.
    SearchStored,
    /// Stored nodes take in the links new items chose to them: one per stored list.
    TakeIn,
    /// Nodes dropped from a pruned list are checked for another in-link: one per drop.
    KeepInLinks,
    /// The batch's vectors and every list it changed are written; it polls nothing.
    Write,
    /// Deleted items leave the graph and their neighbours' lists are repaired.
    Delete,
}

/// Watches a write: asked once per item whether to stop, told when each pass begins.
pub trait Watch: Sync {
    /// `true` stops the write with `Error::Cancelled`; nothing of it is committed.
    fn cancelled(&self) -> bool;

    /// A pass over `items` items begins; the polls that follow are its.
    fn pass(&self, _pass: Pass, _items: usize) {}
}

/// Any `Fn() -> bool` is a watch that only answers whether to stop.
impl<F: Fn() -> bool + Sync> Watch for F {
    fn cancelled(&self) -> bool {
        self()
    }
}

pub(crate) struct CancelCheck<'c> {
    watch: &'c dyn Watch,
    seen: AtomicBool,
}

impl<'c> CancelCheck<'c> {
    pub fn new(watch: &'c dyn Watch) -> Self {
        CancelCheck {
            watch,
            seen: AtomicBool::new(false),
        }
    }

    /// `Err(Cancelled)` once the caller asked to stop.
    pub fn check(&self) -> Result<()> {
        if self.seen.load(Ordering::Relaxed) || self.watch.cancelled() {
            self.seen.store(true, Ordering::Relaxed);
            return Err(Error::Cancelled);
        }
        Ok(())
    }

    pub fn pass(&self, pass: Pass, items: usize) {
        self.watch.pass(pass, items);
    }
}
