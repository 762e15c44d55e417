//! How messages name a relation, and the hint every refusal of an index's storage gives.

use pgrx::pg_sys;

/// `schema.index`, quoted where needed.
///
/// # Safety
/// `index` must be an open relation.
pub unsafe fn qualified_name(index: pg_sys::Relation) -> String {
    // SAFETY: rd_rel is valid for an open relation; the name functions palloc their results.
    unsafe {
        let rel = &*(*index).rd_rel;
        let namespace = pg_sys::get_namespace_name(rel.relnamespace);
        let quoted = pg_sys::quote_qualified_identifier(namespace, rel.relname.data.as_ptr());
        std::ffi::CStr::from_ptr(quoted)
            .to_string_lossy()
            .into_owned()
    }
}

/// The hint of every refusal: what to run, and why the folder can go astray.
///
/// # Safety
/// `index` must be an open relation.
pub unsafe fn reindex_hint(index: pg_sys::Relation) -> String {
    // SAFETY: forwarded from the caller.
    let name = unsafe { qualified_name(index) };
    format!(
        "Rebuild it with REINDEX INDEX {name} (on the primary, for a standby). Its storage lives \
         outside Postgres's pages: pg_upgrade, CREATE DATABASE ... TEMPLATE and base backups \
         taken while it changed do not carry it, and standbys and crash recovery follow it only \
         with shared_preload_libraries = 'hannoy_pg'."
    )
}
