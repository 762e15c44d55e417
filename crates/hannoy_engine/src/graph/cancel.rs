//! One cancel check for parallel work: the caller's callback is polled once per item, and once
//! any worker sees a cancel every other stops at its next item without polling again.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

pub(crate) struct CancelCheck<'c> {
    cancel: &'c (dyn Fn() -> bool + Sync),
    seen: AtomicBool,
}

impl<'c> CancelCheck<'c> {
    pub fn new(cancel: &'c (dyn Fn() -> bool + Sync)) -> Self {
        CancelCheck {
            cancel,
            seen: AtomicBool::new(false),
        }
    }

    /// `Err(Cancelled)` once the caller asked to stop.
    pub fn check(&self) -> Result<()> {
        if self.seen.load(Ordering::Relaxed) || (self.cancel)() {
            self.seen.store(true, Ordering::Relaxed);
            return Err(Error::Cancelled);
        }
        Ok(())
    }
}
