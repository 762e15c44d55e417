//! The top layer: everything SQL sees. The access method's handler and operator classes, the
//! distance functions and operators, and the functions for users and event triggers. Only this
//! layer holds `#[pg_extern]`s and SQL; it calls into `am`, `storage` and `pg`, never the other
//! way round.

mod check;
mod filter_opclasses;
mod handler;
mod info;
mod last_scan;
mod operators;
mod storage;
