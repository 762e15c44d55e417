//! hannoy_pg: the `hannoy` index access method. Postgres hands rows and scan keys to the access
//! method (`am/`), which keeps one engine index per Postgres index (`storage/`) and leaves all
//! graph work to `hannoy_engine`, on owned data and off the backend's thread where it is heavy.
//!
//! Three layers, each using only those below it: `sql/` (every function, operator and operator
//! class SQL sees), `am/` and `storage/`, and `pg/` (Postgres glue: errors, threads, settings,
//! datum readers, TID keys).

mod am;
mod pg;
mod sql;
mod storage;

pgrx::pg_module_magic!(name, version);

/// Runs when a process loads the library: settings and index options must exist before the
/// first index is opened, and the WAL resource manager before recovery starts (in the
/// postmaster, when preloaded).
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    pg::guc::register();
    am::options::register();
    storage::lifecycle::install_hook();
    storage::register_wal();
}

/// The extension's tests live in tests/pg; `#[pg_schema]` needs them in one inline module.
#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    include!("../tests/pg/common.rs");
    include!("../tests/pg/scans.rs");
    include!("../tests/pg/bad_input.rs");
    include!("../tests/pg/lifecycle.rs");
    include!("../tests/pg/writes.rs");
    include!("../tests/pg/filters.rs");
    include!("../tests/pg/identity.rs");
    include!("../tests/pg/claims.rs");
    include!("../tests/pg/pgvector.rs");
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    /// Every test runs with the folders following the WAL, as a server with standbys does.
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'hannoy_pg'"]
    }
}
