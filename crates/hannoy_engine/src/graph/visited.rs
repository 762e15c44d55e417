//! A visited set over dense item ids that clears in O(1): each mark is the epoch it was set in.
//! Sets are pooled per thread, so a query does not allocate and zero one per call.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

pub(crate) struct Visited {
    marks: Vec<u32>,
    epoch: u32,
}

impl Visited {
    pub fn new(capacity: usize) -> Self {
        Visited {
            marks: vec![0; capacity],
            epoch: 1,
        }
    }

    pub fn clear(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    #[inline]
    pub fn contains(&self, id: u32) -> bool {
        self.marks.get(id as usize) == Some(&self.epoch)
    }

    /// Marks `id`; true when it was not marked yet.
    #[inline]
    pub fn insert(&mut self, id: u32) -> bool {
        let i = id as usize;
        if i >= self.marks.len() {
            self.marks.resize((i + 1).max(self.marks.len() * 2), 0);
        }
        let fresh = self.marks[i] != self.epoch;
        self.marks[i] = self.epoch;
        fresh
    }

    /// A cleared set from this thread's pool, returned to it on drop.
    pub fn pooled(capacity: usize) -> PooledVisited {
        let mut set = POOL
            .with(|p| p.borrow_mut().pop())
            .unwrap_or_else(|| Visited::new(capacity));
        set.clear();
        PooledVisited(Some(set))
    }
}

/// Sets kept per thread; a few suffice (a query holds one at a time, nested searches rarely two).
const POOL_SIZE: usize = 4;

thread_local! {
    static POOL: RefCell<Vec<Visited>> = const { RefCell::new(Vec::new()) };
}

pub(crate) struct PooledVisited(Option<Visited>);

impl Deref for PooledVisited {
    type Target = Visited;
    fn deref(&self) -> &Visited {
        self.0.as_ref().expect("present until drop")
    }
}

impl DerefMut for PooledVisited {
    fn deref_mut(&mut self) -> &mut Visited {
        self.0.as_mut().expect("present until drop")
    }
}

impl Drop for PooledVisited {
    fn drop(&mut self) {
        if let Some(set) = self.0.take() {
            // `try_with`: during thread teardown the pool may already be gone; then just free.
            let _ = POOL.try_with(|p| {
                let mut pool = p.borrow_mut();
                if pool.len() < POOL_SIZE {
                    pool.push(set);
                }
            });
        }
    }
}
