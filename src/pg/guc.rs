//! The `hannoy.*` settings.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};

/// Candidate list size of a scan's graph walk: larger finds more true neighbours, slower.
pub static EF_SEARCH: GucSetting<i32> = GucSetting::<i32>::new(100);
/// The most rows one index scan returns before it stops as if the index were exhausted: the
/// bound on how far a scan streams when a filter the index cannot see rejects most rows.
pub static MAX_SCAN_TUPLES: GucSetting<i32> = GucSetting::<i32>::new(20_000);
/// Size in kB the pending list of inserted rows reaches before it is merged into the graph.
pub static PENDING_LIST_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(1024);
/// On an index with codes, how many candidates each batch of a scan re-ranks with the full
/// vectors (0: the whole candidate list).
pub static RERANK: GucSetting<i32> = GucSetting::<i32>::new(0);
/// Where a scan of an index with codes finds the exact distances it orders its rows by.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum RerankFrom {
    /// The full vectors the index keeps beside its codes.
    #[name = c"index"]
    Index,
    /// The table's rows: the scan gives each row a lower bound of its distance, and PostgreSQL
    /// computes the distance from the row and re-orders, as it does for GiST's lossy distances.
    #[name = c"table"]
    Table,
}
pub static RERANK_FROM: GucSetting<RerankFrom> = GucSetting::<RerankFrom>::new(RerankFrom::Index);
/// Whether a backend shows the step of hannoy's work it is in (see `crate::pg::phase`).
pub static TRACE_PHASES: GucSetting<bool> = GucSetting::<bool>::new(false);

pub fn register() {
    GucRegistry::define_int_guc(
        c"hannoy.ef_search",
        c"Size of the candidate list of a hannoy index scan.",
        c"Larger values find more of the true nearest neighbours and take longer. A scan keeps \
          returning rows past this many, in distance order, for as long as they are fetched.",
        &EF_SEARCH,
        1,
        1000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"hannoy.rerank",
        c"Candidates a hannoy scan on codes re-ranks exactly per batch (0: all of ef_search).",
        c"An index built WITH (quantization = 'rabitq') walks its graph on compact codes and \
          re-ranks the best candidates with the full vectors before returning them, in exact \
          distance order. Fewer re-ranks read fewer vectors; a LIMIT above this many still \
          gets its rows, a batch at a time.",
        &RERANK,
        0,
        1000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"hannoy.rerank_from",
        c"Where a hannoy scan on codes finds the exact distances: 'index' or 'table'.",
        c"'index' re-ranks each batch of candidates with the full vectors the index keeps. \
          'table' reads none of them: the scan gives each row a lower bound of its distance \
          computed from its code, and PostgreSQL computes the exact distance from the table's \
          row and re-orders, fetching rows until no row still to come can be nearer. Bounds \
          are loose at few bits per coordinate (WITH (bits = ...)): below 4 a query fetches \
          a large part of the table. Indexes without codes return exact distances either way.",
        &RERANK_FROM,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"hannoy.max_scan_tuples",
        c"Most rows one hannoy index scan returns.",
        c"A scan whose rows are mostly rejected by conditions the index does not hold stops \
          after this many rows.",
        &MAX_SCAN_TUPLES,
        1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"hannoy.pending_list_limit",
        c"Size the pending list of a hannoy index reaches before it is merged into the graph.",
        c"Inserted rows wait in the index's WAL-logged pending list, which every scan reads \
          exactly, until the list outgrows this; the insert that finds it full links the list \
          into the graph as one batch. Larger values batch more and cost scans more.",
        &PENDING_LIST_LIMIT,
        64,
        i32::MAX / 1024,
        GucContext::Userset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_bool_guc(
        c"hannoy.trace_phases",
        c"Shows the step of hannoy's work a backend is in, as its application_name.",
        c"While a backend appends to a pending list, merges one, deletes or reconnects items in \
          VACUUM or links a build batch, pg_stat_activity shows its application_name as \
          \"hannoy: <step>\". For tests that must interrupt a given step.",
        &TRACE_PHASES,
        GucContext::Suset,
        GucFlags::default(),
    );
    // SAFETY: called from _PG_init on the backend thread with a static C string.
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"hannoy".as_ptr()) };
}

pub fn ef_search() -> usize {
    EF_SEARCH.get().max(1) as usize
}

/// `None`: the whole window.
pub fn rerank() -> Option<usize> {
    match RERANK.get() {
        r if r <= 0 => None,
        r => Some(r as usize),
    }
}

pub fn rerank_from() -> RerankFrom {
    RERANK_FROM.get()
}

pub fn max_scan_tuples() -> usize {
    MAX_SCAN_TUPLES.get().max(1) as usize
}

pub fn pending_list_limit_bytes() -> usize {
    PENDING_LIST_LIMIT.get().max(64) as usize * 1024
}

pub fn trace_phases() -> bool {
    TRACE_PHASES.get()
}
