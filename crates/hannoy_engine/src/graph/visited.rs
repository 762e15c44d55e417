//! A visited set over dense item ids that clears in O(1): each mark is the epoch it was set in.

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
}
