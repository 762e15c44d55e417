//! Where an index's engine storage lives and how it is found.
//!
//! Each Postgres index has a folder `$PGDATA/hannoy/<database oid>/<index oid>/`, and inside it
//! one folder per storage generation, named by a random id kept in the index relation's one
//! page (the metapage). Whenever Postgres gives the index new storage it runs `ambuild`, which
//! draws a new id; when it copies the relation instead (ALTER INDEX ... SET TABLESPACE) the id
//! travels with the page. A rolled-back REINDEX brings back the old page, hence the old id and
//! folder. The folder is not WAL-logged: see `lifecycle` for when folders are deleted.

pub mod lifecycle;
mod metapage;
pub mod pending_list;

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hannoy_engine::{Error, Index, IndexOptions};
use pgrx::{pg_sys, PgSqlErrorCode};

use crate::error::{raise, OrRaise};

const REINDEX_HINT: &str = "Rebuild the index with REINDEX.";

fn data_dir() -> PathBuf {
    // SAFETY: DataDir is set at postmaster start, before any backend runs extension code, to a
    // NUL-terminated absolute path that never changes afterwards.
    let dir = unsafe { CStr::from_ptr(pg_sys::DataDir) };
    PathBuf::from(dir.to_string_lossy().into_owned())
}

/// The folder holding the storage of every index of one database.
pub fn database_folder(database: pg_sys::Oid) -> PathBuf {
    data_dir()
        .join("hannoy")
        .join(database.to_u32().to_string())
}

/// The folder holding every storage generation of one index.
pub fn index_folder(database: pg_sys::Oid, index: pg_sys::Oid) -> PathBuf {
    database_folder(database).join(index.to_u32().to_string())
}

fn this_database() -> pg_sys::Oid {
    // SAFETY: MyDatabaseId is set once the backend has connected to its database.
    unsafe { pg_sys::MyDatabaseId }
}

fn generation_folder(index_oid: pg_sys::Oid, storage_id: u64) -> PathBuf {
    index_folder(this_database(), index_oid).join(format!("{storage_id:016x}"))
}

fn refuse_on_standby() {
    // SAFETY: a plain read of shared state, allowed in any backend.
    if unsafe { pg_sys::RecoveryInProgress() } {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "hannoy indexes cannot be used during recovery or on a standby",
            Some("The index's storage is not replicated through WAL; query the primary, or REINDEX after promotion."),
        );
    }
}

/// Gives `index` new, empty storage: a new id in its metapage and a new folder. The folder is
/// removed if the transaction aborts; the index's older folders are removed if it commits.
///
/// # Safety
/// `index` must be an open index relation with no blocks, locked exclusively.
pub unsafe fn create(index: pg_sys::Relation) -> PathBuf {
    refuse_on_standby();
    // SAFETY: forwarded from the caller.
    let (oid, storage_id) = unsafe { ((*index).rd_id, metapage::write_new(index)) };
    let dir = generation_folder(oid, storage_id);
    lifecycle::sweep_orphans();
    lifecycle::delete_at_abort(dir.clone());
    if let Ok(entries) = std::fs::read_dir(index_folder(this_database(), oid)) {
        for entry in entries.flatten() {
            if entry.path() != dir {
                lifecycle::delete_at_commit(entry.path());
            }
        }
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        raise(
            PgSqlErrorCode::ERRCODE_IO_ERROR,
            format!("could not create index storage {}: {e}", dir.display()),
            None,
        );
    }
    dir
}

/// The folder of `index`'s current storage, which must exist.
///
/// # Safety
/// `index` must be an open index relation.
pub unsafe fn locate(index: pg_sys::Relation) -> PathBuf {
    refuse_on_standby();
    // SAFETY: forwarded from the caller.
    let (oid, storage_id) = unsafe { ((*index).rd_id, metapage::read(index)) };
    let name = || {
        // SAFETY: rd_rel is valid for an open relation; relname is NUL-terminated.
        unsafe { CStr::from_ptr((*(*index).rd_rel).relname.data.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    let Some(storage_id) = storage_id else {
        raise(
            PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
            format!("index \"{}\" has no hannoy metapage", name()),
            Some(REINDEX_HINT),
        );
    };
    let dir = generation_folder(oid, storage_id);
    if !dir.is_dir() {
        raise(
            PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
            format!(
                "storage of index \"{}\" is missing: expected folder {}",
                name(),
                dir.display()
            ),
            Some("The folder is not WAL-logged, so a restored backup or a standby lacks it. Rebuild the index with REINDEX."),
        );
    }
    dir
}

/// Whether `relation` is an index of this access method.
///
/// # Safety
/// `relation` must be an open relation.
pub unsafe fn is_hannoy_index(relation: pg_sys::Relation) -> bool {
    // SAFETY: rd_rel is valid for an open relation; get_am_name pallocs a copy or gives NULL.
    unsafe {
        let rel = &*(*relation).rd_rel;
        if rel.relkind as u8 != pg_sys::RELKIND_INDEX {
            return false;
        }
        let am = pg_sys::get_am_name(rel.relam);
        !am.is_null() && CStr::from_ptr(am).to_bytes() == b"hannoy"
    }
}

/// Raises 42809 unless `relation` is a hannoy index, for functions that take any regclass.
pub fn require_hannoy_index(relation: &pgrx::PgRelation) {
    // SAFETY: a PgRelation is open and locked for as long as it exists.
    if !unsafe { is_hannoy_index(relation.as_ptr()) } {
        raise(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("\"{}\" is not a hannoy index", relation.name()),
            None,
        );
    }
}

/// The folder of `index`'s current storage when its metapage names one, whether or not it
/// exists.
///
/// # Safety
/// `index` must be an open relation.
pub unsafe fn current_folder(index: pg_sys::Relation) -> Option<PathBuf> {
    // SAFETY: forwarded from the caller.
    let (oid, storage_id) = unsafe { ((*index).rd_id, metapage::read(index)?) };
    Some(generation_folder(oid, storage_id))
}

thread_local! {
    /// Engine indexes this backend has open, by folder. LMDB allows one environment per file
    /// per process, and opening one costs a few system calls: keep them.
    static OPEN: RefCell<HashMap<PathBuf, Arc<Index>>> = RefCell::new(HashMap::new());
}

/// The engine index in `dir`, or `None` while the index has never held a vector (its
/// dimension count is fixed by the first one).
pub fn open(dir: &Path) -> Option<Arc<Index>> {
    if let Some(index) = OPEN.with(|open| open.borrow().get(dir).cloned()) {
        return Some(index);
    }
    match Index::open(dir) {
        Ok(index) => Some(remember(dir, index)),
        Err(Error::MissingIndex(_)) => None,
        Err(e) => Err(e).or_raise(),
    }
}

/// The engine index in `dir`, created with `options` if it does not exist yet.
pub fn open_or_create(dir: &Path, options: &IndexOptions) -> Arc<Index> {
    if let Some(index) = open(dir) {
        return index;
    }
    match Index::create(dir, options) {
        Ok(index) => remember(dir, index),
        // Another backend created it first: use theirs.
        Err(Error::IndexExists(_)) => open(dir).unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
                format!(
                    "index storage {} vanished while being created",
                    dir.display()
                ),
                Some(REINDEX_HINT),
            )
        }),
        Err(e) => Err(e).or_raise(),
    }
}

fn remember(dir: &Path, index: Index) -> Arc<Index> {
    let index = Arc::new(index);
    OPEN.with(|open| {
        open.borrow_mut()
            .insert(dir.to_path_buf(), Arc::clone(&index))
    });
    index
}

/// Closes this backend's handles on folders inside `dir`, before they are deleted.
pub fn forget(dir: &Path) {
    OPEN.with(|open| open.borrow_mut().retain(|path, _| !path.starts_with(dir)));
}
