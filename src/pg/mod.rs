//! The bottom layer: Postgres glue every other module may use, and which uses none of them.
//! Engine errors as SQLSTATEs, worker threads and the cancel flag, settings, the step a backend
//! is in, datum readers for vectors and filter values and the memory they read into, heap TIDs
//! as item keys, relation names, the scan statistics.

pub mod error;
pub mod filter;
pub mod guc;
pub mod memory;
pub mod names;
pub mod phase;
pub mod stats;
pub mod threads;
pub mod tid;
pub mod vector;
