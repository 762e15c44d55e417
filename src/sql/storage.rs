//! The SQL functions of storage folders: the `sql_drop` event trigger that schedules a dropped
//! index's folder for deletion, and `hannoy_orphaned_storage`.

use pgrx::prelude::*;

use crate::storage::lifecycle;

/// Event trigger function: schedules the storage of every dropped index for deletion at
/// commit. The catalog rows are already gone, so any index's folder is looked for by OID.
#[pg_extern(sql = "
CREATE FUNCTION hannoy_drop_storage() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
CREATE EVENT TRIGGER hannoy_drop_storage ON sql_drop EXECUTE FUNCTION hannoy_drop_storage();
")]
fn hannoy_drop_storage() {
    let dropped: Vec<pg_sys::Oid> = Spi::connect(|client| {
        client
            .select(
                "SELECT objid FROM pg_event_trigger_dropped_objects() WHERE object_type = 'index'",
                None,
                &[],
            )?
            .map(|row| row.get::<pg_sys::Oid>(1))
            .filter_map(|oid| oid.transpose())
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap_or_else(|e| error!("could not list dropped objects: {e}"));
    // SAFETY: MyDatabaseId is set in a connected backend.
    let database = unsafe { pg_sys::MyDatabaseId };
    for oid in dropped {
        let dir = crate::storage::index_folder(database, oid);
        if dir.exists() {
            lifecycle::delete_at_commit(dir);
        }
    }
    lifecycle::sweep_orphans();
}

/// Lists the storage folders no index will use again; with `remove`, deletes them when this
/// transaction commits. For after a crash, or to see what a sweep would take.
#[pg_extern(sql = "
CREATE FUNCTION hannoy_orphaned_storage(remove boolean DEFAULT false) RETURNS SETOF text
    STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
REVOKE ALL ON FUNCTION hannoy_orphaned_storage(boolean) FROM PUBLIC;
")]
fn hannoy_orphaned_storage(remove: bool) -> SetOfIterator<'static, String> {
    let found = lifecycle::orphans();
    if remove {
        for dir in &found {
            lifecycle::delete_at_commit(dir.clone());
        }
    }
    SetOfIterator::new(found.into_iter().map(|dir| dir.display().to_string()))
}
