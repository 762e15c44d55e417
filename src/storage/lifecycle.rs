//! When storage folders are deleted. Postgres unlinks a relation's files at commit of the
//! transaction that dropped or replaced it, and those of a relation created in an aborted
//! transaction at abort; the folders follow the same rules, subtransactions included:
//!
//! - a folder made by `ambuild` is deleted if its (sub)transaction aborts;
//! - a folder replaced by a rebuild, or whose index is dropped, is deleted when the top-level
//!   transaction commits, and kept if the (sub)transaction that replaced or dropped it aborts.
//!
//! When the folders follow the WAL (`super::wal`), each removal is logged first, so that standbys
//! and recovery remove the same folders.
//!
//! Drops are seen by the `sql_drop` event trigger below and, once the library is loaded, by an
//! object access hook. What neither sees (a DROP DATABASE in a backend that never loaded the
//! library, a backend that died between commit and deletion) is found by `sweep_orphans`, run at
//! every build and drop.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;

use pgrx::prelude::*;

#[derive(Clone, Copy, PartialEq, Eq)]
enum When {
    Commit,
    Abort,
}

struct Scheduled {
    dir: PathBuf,
    when: When,
    /// The subtransaction that scheduled it; moves to the parent when that one commits.
    subxact: pg_sys::SubTransactionId,
}

thread_local! {
    static SCHEDULED: RefCell<Vec<Scheduled>> = const { RefCell::new(Vec::new()) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

pub fn delete_at_commit(dir: PathBuf) {
    schedule(dir, When::Commit);
}

pub fn delete_at_abort(dir: PathBuf) {
    schedule(dir, When::Abort);
}

fn schedule(dir: PathBuf, when: When) {
    if !REGISTERED.replace(true) {
        // SAFETY: registers plain C callbacks once per backend; they stay valid for its life.
        unsafe {
            pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
        }
    }
    // SAFETY: called inside a transaction, where the current subtransaction id is defined.
    let subxact = unsafe { pg_sys::GetCurrentSubTransactionId() };
    SCHEDULED.with(|p| p.borrow_mut().push(Scheduled { dir, when, subxact }));
}

fn remove(dir: &std::path::Path) {
    super::forget(dir);
    // SAFETY: a plain read of shared state.
    if super::wal::following() && !unsafe { pg_sys::RecoveryInProgress() } {
        super::wal::log_remove(dir);
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {
            // The index's folder goes with its last generation (fails harmlessly otherwise).
            if let Some(parent) = dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // An ERROR here would turn into a PANIC (commit is already durable); warn instead.
        Err(e) => warning!("could not remove hannoy storage {}: {e}", dir.display()),
    }
}

/// Deletes the folders due at this end of the transaction and forgets the rest.
fn finish(outcome: When) {
    let pending = SCHEDULED.with(|p| std::mem::take(&mut *p.borrow_mut()));
    for entry in pending.iter().filter(|e| e.when == outcome) {
        remove(&entry.dir);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_COMMIT | XACT_EVENT_PARALLEL_COMMIT => finish(When::Commit),
        XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT => finish(When::Abort),
        XACT_EVENT_PRE_PREPARE if SCHEDULED.with(|p| !p.borrow().is_empty()) => {
            crate::pg::error::raise(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "cannot PREPARE a transaction that created, rebuilt or dropped a hannoy index",
                None,
            );
        }
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    subxact: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::SubXactEvent::*;
    match event {
        SUBXACT_EVENT_COMMIT_SUB => SCHEDULED.with(|p| {
            for entry in p.borrow_mut().iter_mut().filter(|e| e.subxact == subxact) {
                entry.subxact = parent;
            }
        }),
        SUBXACT_EVENT_ABORT_SUB => {
            let aborted: Vec<Scheduled> = SCHEDULED.with(|p| {
                let (aborted, kept) = std::mem::take(&mut *p.borrow_mut())
                    .into_iter()
                    .partition(|e| e.subxact == subxact);
                *p.borrow_mut() = kept;
                aborted
            });
            for entry in aborted.iter().filter(|e| e.when == When::Abort) {
                remove(&entry.dir);
            }
        }
        _ => {}
    }
}

static mut PREVIOUS_OBJECT_ACCESS_HOOK: pg_sys::object_access_hook_type = None;

/// Watches drops that no event trigger reports, once this library is loaded in the backend:
/// the old index of REINDEX CONCURRENTLY, the `hannoy` access method (DROP EXTENSION ...
/// CASCADE, whose cascade drops the event trigger too) and whole databases. Dropping a hannoy index opens it, which loads the library,
/// and a cascade drops the indexes before their access method, so the hook is in place by then.
/// A DROP DATABASE in a backend that never used hannoy leaves the folder to `sweep_orphans`.
pub fn install_hook() {
    // SAFETY: called once from _PG_init on the backend thread; hooks are plain process
    // globals that Postgres reads on the same thread, and the previous one is chained.
    unsafe {
        PREVIOUS_OBJECT_ACCESS_HOOK = pg_sys::object_access_hook;
        pg_sys::object_access_hook = Some(on_object_access);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_object_access(
    access: pg_sys::ObjectAccessType::Type,
    class_id: pg_sys::Oid,
    object_id: pg_sys::Oid,
    sub_id: std::ffi::c_int,
    arg: *mut std::ffi::c_void,
) {
    // SAFETY: the previous hook takes the arguments Postgres gave this one.
    unsafe {
        if let Some(previous) = PREVIOUS_OBJECT_ACCESS_HOOK {
            previous(access, class_id, object_id, sub_id, arg);
        }
    }
    if access != pg_sys::ObjectAccessType::OAT_DROP {
        return;
    }
    // DROP INDEX CONCURRENTLY calls this hook in the first of its transactions, which it
    // commits and then waits for every other session to let go of the index; the catalog row
    // goes in its last transaction, whose sql_drop event schedules the folder then.
    // SAFETY: for OAT_DROP the argument is an ObjectAccessDrop or NULL.
    let concurrently = unsafe { arg.cast::<pg_sys::ObjectAccessDrop>().as_ref() }
        .is_some_and(|drop| drop.dropflags & pg_sys::PERFORM_DELETION_CONCURRENTLY as i32 != 0);
    let dir = if class_id == pg_sys::RelationRelationId && sub_id == 0 {
        if concurrently {
            return;
        }
        // Only a hannoy index has a folder under its OID (REINDEX CONCURRENTLY drops the old
        // index this way, with no sql_drop event).
        super::index_folder(super::this_database(), object_id)
    } else if class_id == pg_sys::AccessMethodRelationId && is_hannoy_am(object_id) {
        // Every hannoy index of this database is dropped with it.
        super::database_folder(super::this_database())
    } else if class_id == pg_sys::DatabaseRelationId {
        super::database_folder(object_id)
    } else {
        return;
    };
    if dir.exists() {
        delete_at_commit(dir);
    }
}

fn is_hannoy_am(oid: pg_sys::Oid) -> bool {
    // SAFETY: a catalog lookup on the backend thread; the row still exists while its drop hook
    // runs. get_am_name pallocs a copy or gives NULL.
    unsafe {
        let name = pg_sys::get_am_name(oid);
        !name.is_null() && std::ffi::CStr::from_ptr(name).to_bytes() == b"hannoy"
    }
}

fn catalog_has(cache: pg_sys::SysCacheIdentifier::Type, oid: pg_sys::Oid) -> bool {
    // SAFETY: a syscache probe by OID on the backend thread, inside a transaction.
    unsafe { pg_sys::SearchSysCacheExists(cache as i32, oid.into(), 0.into(), 0.into(), 0.into()) }
}

/// What `oid` is to the sweep, decided under a lock no builder holds (an index being created
/// or rebuilt holds its OID exclusively until its transaction ends).
enum Owner {
    /// Busy or unknowable right now: leave its folders alone.
    Busy,
    /// No relation has this OID any more.
    Gone,
    /// A live hannoy index whose current storage is this folder.
    Live(PathBuf),
}

fn owner(oid: pg_sys::Oid) -> Owner {
    let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
    // SAFETY: lock calls on an OID's lock tag, released before returning; the relation is only
    // opened while the lock keeps it from being dropped, and closed again.
    unsafe {
        if !pg_sys::ConditionalLockRelationOid(oid, lock) {
            return Owner::Busy;
        }
        // Taking the lock processed invalidations: this read sees any creator's commit.
        let owner = if !catalog_has(pg_sys::SysCacheIdentifier::RELOID, oid) {
            Owner::Gone
        } else {
            let relation = pg_sys::relation_open(oid, pg_sys::NoLock as pg_sys::LOCKMODE);
            let owner = if super::is_hannoy_index(relation) {
                super::current_folder(relation).map_or(Owner::Busy, Owner::Live)
            } else {
                Owner::Gone // the OID now names something else
            };
            pg_sys::relation_close(relation, pg_sys::NoLock as pg_sys::LOCKMODE);
            owner
        };
        pg_sys::UnlockRelationOid(oid, lock);
        owner
    }
}

/// Storage folders no index will use again: those of dropped databases, of indexes that no
/// longer exist in this database, and generations of live indexes other than their current one
/// (left by a crash between a rebuild's commit and its cleanup).
pub fn orphans() -> Vec<PathBuf> {
    let mut found = Vec::new();
    // SAFETY: MyDatabaseId is set in a connected backend.
    let database = unsafe { pg_sys::MyDatabaseId };
    let Some(root) = super::index_folder(database, pg_sys::InvalidOid)
        .parent()
        .and_then(|db| db.parent())
        .map(PathBuf::from)
    else {
        return found;
    };
    for db in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let Some(db_oid) = parse_oid(&db.file_name()) else {
            continue;
        };
        if db_oid != database {
            if !catalog_has(pg_sys::SysCacheIdentifier::DATABASEOID, db_oid) {
                found.push(db.path());
            }
            continue;
        }
        for index in std::fs::read_dir(db.path()).into_iter().flatten().flatten() {
            let Some(oid) = parse_oid(&index.file_name()) else {
                continue;
            };
            match owner(oid) {
                Owner::Busy => {}
                Owner::Gone => found.push(index.path()),
                Owner::Live(current) => {
                    for generation in std::fs::read_dir(index.path())
                        .into_iter()
                        .flatten()
                        .flatten()
                    {
                        if generation.path() != current {
                            found.push(generation.path());
                        }
                    }
                }
            }
        }
    }
    found
}

/// Schedules every orphan for deletion at commit.
pub fn sweep_orphans() {
    for dir in orphans() {
        delete_at_commit(dir);
    }
}

fn parse_oid(name: &std::ffi::OsStr) -> Option<pg_sys::Oid> {
    name.to_str()?.parse::<u32>().ok().map(pg_sys::Oid::from)
}
