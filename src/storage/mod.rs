//! Where an index's engine storage lives and how it is found.
//!
//! Each Postgres index has a folder `$PGDATA/hannoy/<database oid>/<index oid>/`, and inside it
//! one folder per storage generation, named by a random id kept in the index relation's one
//! page (the metapage). Whenever Postgres gives the index new storage it runs `ambuild`, which
//! draws a new id; when it copies the relation instead (ALTER INDEX ... SET TABLESPACE) the id
//! travels with the page. A rolled-back REINDEX brings back the old page, hence the old id and
//! folder. See `lifecycle` for when folders are deleted, and `wal` and `redo` for how their
//! changes follow the WAL when the library is preloaded (docs/replication.md).

pub mod identity;
pub mod lifecycle;
mod metapage;
pub mod pending_list;
pub mod rebuild;
mod redo;
pub mod wal;

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use hannoy_engine::{Change, Error, Index, IndexOptions, OwnedReader, Reader, Stamp};
use pgrx::{pg_sys, PgSqlErrorCode};

use crate::pg::error::{raise, raise_corrupt, raise_engine, OrRaise};
pub use identity::Unusable;
use metapage::MetaPage;
use pending_list::{EntryRef, ListState, Walk};

/// The folder holding the storage of every index of one database. Paths are relative to the
/// data directory, every backend's working directory, so that no message or function shows
/// where it is (as `pg_relation_filepath` does).
pub fn database_folder(database: pg_sys::Oid) -> PathBuf {
    Path::new("hannoy").join(database.to_u32().to_string())
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
    index_folder(this_database(), index_oid).join(generation_name(storage_id))
}

fn generation_name(storage_id: u64) -> String {
    format!("{storage_id:016x}")
}

/// Whether `dir` is named as a storage generation is.
fn is_generation_name(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.len() == 16 && n.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Registers the WAL resource manager when the library is preloaded (see `wal`).
pub fn register_wal() {
    // SAFETY: a plain read of a flag the postmaster sets while it loads preloaded libraries.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        redo::register();
    }
}

/// Whether a standby (or a server in recovery) can read the folders: only when they follow the
/// WAL here.
pub fn readable_in_recovery() -> bool {
    wal::following()
}

fn refuse_on_standby() {
    // SAFETY: a plain read of shared state, allowed in any backend.
    if unsafe { pg_sys::RecoveryInProgress() } && !readable_in_recovery() {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "hannoy indexes cannot be used during recovery or on a standby",
            Some("The index's storage follows the WAL only when both servers load hannoy_pg through shared_preload_libraries; query the primary, or REINDEX after promotion."),
        );
    }
}

/// Gives `index` new, empty storage: a new id in its metapage and a new folder. The folder is
/// removed if the transaction aborts; the index's older folders are removed if it commits.
///
/// # Safety
/// `index` must be an open index relation with no blocks, locked exclusively.
pub unsafe fn create(index: pg_sys::Relation) {
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
}

/// What a scan or a merge reads: the engine's snapshot (`None` while the index has never held
/// a vector) and where the pending list stood.
pub struct Snapshot {
    pub reader: Option<Rc<OwnedReader>>,
    pub list: ListState,
}

/// Opens the engine's snapshot and gives `each` the pending rows it lacks (see
/// `pending_list::read`), after checking that the folder is the relation's own (see
/// `identity`).
///
/// # Safety
/// `index` must be an open hannoy index relation.
pub unsafe fn snapshot(
    index: pg_sys::Relation,
    each: impl FnMut(EntryRef<'_>) -> Walk,
) -> Result<Snapshot, Unusable> {
    refuse_on_standby();
    // SAFETY: forwarded from the caller.
    let oid = unsafe { (*index).rd_id };
    let mut reader = None;
    // SAFETY: forwarded from the caller.
    let list = unsafe {
        pending_list::read(
            index,
            |meta| {
                let dir = generation_folder(oid, meta.storage_id);
                let Some(engine) = open_folder(&dir)? else {
                    identity::verify(meta, false, None, true)?;
                    return Ok(0);
                };
                // The snapshot the scan reads is the one checked.
                let opened = Rc::new(OwnedReader::new(engine).map_err(unusable_or_raise)?);
                verify_snapshot(meta, &opened)?;
                let position = opened.log_position().map_err(unusable_or_raise)?;
                reader = Some(opened);
                Ok(position)
            },
            each,
        )
    }?;
    Ok(Snapshot { reader, list })
}

/// The engine of `index`, checked against its relation; `None` while it has never held a
/// vector.
///
/// # Safety
/// `index` must be an open hannoy index relation.
pub unsafe fn open(index: pg_sys::Relation) -> Result<Option<Arc<Index>>, Unusable> {
    refuse_on_standby();
    // SAFETY: forwarded from the caller; the metapage is share-locked while the folder is
    // checked against it, so no change can commit in between.
    unsafe {
        let (buffer, meta) = metapage::lock(index, pg_sys::BUFFER_LOCK_SHARE);
        let engine = open_verified((*index).rd_id, &meta);
        pg_sys::UnlockReleaseBuffer(buffer);
        engine
    }
}

/// The engine in the folder `meta` names, if it exists and agrees with `meta`.
fn open_verified(oid: pg_sys::Oid, meta: &MetaPage) -> Result<Option<Arc<Index>>, Unusable> {
    let engine = open_folder(&generation_folder(oid, meta.storage_id))?;
    match &engine {
        None => identity::verify(meta, false, None, true)?,
        Some(engine) => {
            verify_snapshot(meta, &engine.read().map_err(unusable_or_raise)?)?;
        }
    }
    Ok(engine)
}

/// Checks an engine snapshot against the metapage (see `identity::verify`); returns the
/// position the folder is at.
fn verify_snapshot(meta: &MetaPage, reader: &Reader<'_>) -> Result<u64, Unusable> {
    let stamp = reader.stamp().map_err(unusable_or_raise)?;
    identity::verify(meta, true, stamp, reader.is_empty())?;
    Ok(stamp.map_or(0, |s| s.position))
}

/// Errors that say the files cannot serve the index become `Unusable::Damaged`; any other
/// (out of memory, out of file descriptors, a cancel) is raised as it is, since it says
/// nothing about the folder.
fn unusable_or_raise(error: Error) -> Unusable {
    if error.is_damaged_storage() {
        return Unusable::Damaged(error.to_string());
    }
    raise_engine(error)
}

/// The engine of an index that has none yet, created with `options` in its current folder.
///
/// # Safety
/// `index` must be an open hannoy index relation.
pub unsafe fn create_engine(index: pg_sys::Relation, options: &IndexOptions) -> Arc<Index> {
    // SAFETY: forwarded from the caller.
    let (oid, meta) = unsafe {
        let (buffer, meta) = metapage::lock(index, pg_sys::BUFFER_LOCK_SHARE);
        pg_sys::UnlockReleaseBuffer(buffer);
        ((*index).rd_id, meta)
    };
    open_or_create(&generation_folder(oid, meta.storage_id), options)
}

/// One merger or deleter at a time per index: a heavyweight lock on block 0, which the
/// deadlock detector sees and a cancel or statement_timeout interrupts. Whoever holds it is the
/// only one to ask for LMDB's write lock (a process-shared mutex nothing can interrupt), so
/// that one is never waited for.
///
/// # Safety
/// `index` must be an open hannoy index relation.
pub unsafe fn lock_writes(index: pg_sys::Relation, wait: bool) -> bool {
    // SAFETY: a page lock of an open relation, released by `unlock_writes` or at transaction end.
    unsafe {
        let mode = pg_sys::ExclusiveLock as pg_sys::LOCKMODE;
        if wait {
            pg_sys::LockPage(index, 0, mode);
            true
        } else {
            pg_sys::ConditionalLockPage(index, 0, mode)
        }
    }
}

/// # Safety
/// The caller holds the lock from `lock_writes`.
pub unsafe fn unlock_writes(index: pg_sys::Relation) {
    // SAFETY: forwarded from the caller.
    unsafe { pg_sys::UnlockPage(index, 0, pg_sys::ExclusiveLock as pg_sys::LOCKMODE) };
}

/// Starts `change` of `engine`: checks the folder, records the position the change will
/// reach (its intent) and, when the server follows the WAL, the change itself, flushes both,
/// and returns the stamp its LMDB commit must carry. Holds the write lock until `end_change`.
///
/// A change whose record was logged may still fail before its commit; a standby has applied
/// it by then, so the next change never reuses its position (see docs/replication.md).
///
/// # Safety
/// `index` must be an open hannoy index relation and `engine` its engine.
pub unsafe fn begin_change(
    index: pg_sys::Relation,
    engine: &Index,
    change: &Change<'_>,
) -> Result<Stamp, Unusable> {
    // SAFETY: forwarded from the caller; block 0 is exclusively locked while it changes, and
    // released before the change's record and the WAL flush.
    unsafe {
        lock_writes(index, true);
        let (buffer, mut meta) = metapage::lock(index, pg_sys::BUFFER_LOCK_EXCLUSIVE);
        let current = engine
            .read()
            .map_err(unusable_or_raise)
            .and_then(|reader| verify_snapshot(&meta, &reader));
        let current = match current {
            Ok(current) => current,
            Err(e) => {
                pg_sys::UnlockReleaseBuffer(buffer);
                unlock_writes(index);
                return Err(e);
            }
        };
        // A crash after an earlier change's commit left the folder at its intent: adopt it.
        let target = current.max(meta.intent) + 1;
        meta.position = current;
        meta.intent = target;
        let mut lsn = metapage::log(index, buffer, &meta);
        pg_sys::UnlockReleaseBuffer(buffer);
        if wal::following() {
            let head = wal::ChangeHead {
                database: this_database().to_u32(),
                index: (*index).rd_id.to_u32(),
                storage_id: meta.storage_id,
                base: current,
                target,
            };
            lsn = wal::log_change(head, change);
        }
        pg_sys::XLogFlush(lsn);
        Ok(Stamp {
            owner: meta.storage_id,
            position: target,
        })
    }
}

/// Records that the change stamped `stamp` committed, and releases the write lock.
///
/// # Safety
/// As `begin_change`, which returned `stamp`, and whose LMDB commit succeeded.
pub unsafe fn end_change(index: pg_sys::Relation, stamp: Stamp) {
    // SAFETY: forwarded from the caller.
    unsafe {
        let (buffer, mut meta) = metapage::lock(index, pg_sys::BUFFER_LOCK_EXCLUSIVE);
        if meta.intent == stamp.position && meta.position != stamp.position {
            meta.position = stamp.position;
            metapage::log(index, buffer, &meta);
        }
        pg_sys::UnlockReleaseBuffer(buffer);
        unlock_writes(index);
    }
}

/// Runs `change` of `index`'s engine (see `begin_change`) in one LMDB write transaction on the
/// worker pool; engine errors are raised.
///
/// # Safety
/// `index` must be an open hannoy index relation and `engine` its engine.
pub unsafe fn change(
    index: pg_sys::Relation,
    engine: &Index,
    change: &Change<'_>,
) -> Result<(), Unusable> {
    engine.reserve(change.added()).or_raise();
    // SAFETY: forwarded from the caller.
    let stamp = unsafe { begin_change(index, engine, change) }?;
    crate::pg::threads::write(engine, |writer, cancel| {
        change.apply(writer, cancel)?;
        writer.set_stamp(stamp)
    });
    // SAFETY: forwarded from the caller; the commit succeeded (an error was raised otherwise).
    unsafe { end_change(index, stamp) };
    Ok(())
}

/// Sets `index` aside after `unusable` was found: marks it (see `mark_needs_rebuild`) and
/// warns, for writers that must go on without it (VACUUM, an insert's merge).
///
/// # Safety
/// `index` must be an open hannoy index relation.
pub unsafe fn set_aside(index: pg_sys::Relation, unusable: &Unusable) {
    // SAFETY: forwarded from the caller.
    unsafe {
        mark_needs_rebuild(index);
        unusable.warn(index);
    }
}

/// Marks `index` as needing a rebuild: scans refuse it, inserts leave the pending list alone
/// and VACUUM skips it, until REINDEX gives it new storage and a new metapage.
///
/// # Safety
/// `index` must be an open hannoy index relation.
pub unsafe fn mark_needs_rebuild(index: pg_sys::Relation) {
    // SAFETY: block 0 is exclusively locked while it changes through a record.
    unsafe {
        let (buffer, mut meta) = metapage::lock(index, pg_sys::BUFFER_LOCK_EXCLUSIVE);
        if meta.needs_rebuild == 0 {
            meta.needs_rebuild = 1;
            metapage::log(index, buffer, &meta);
        }
        pg_sys::UnlockReleaseBuffer(buffer);
    }
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

/// Raises 42809 unless `relation` is a hannoy index, for functions that take any regclass,
/// and 42501 unless the user may read the index's table (SELECT on it, or owning it): what an
/// index holds is what its table holds.
pub fn require_hannoy_index(relation: &pgrx::PgRelation) {
    // SAFETY: a PgRelation is open and locked for as long as it exists.
    if !unsafe { is_hannoy_index(relation.as_ptr()) } {
        raise(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("\"{}\" is not a hannoy index", relation.name()),
            None,
        );
    }
    // SAFETY: rd_index is set for an open index; the checks read the catalog on this thread.
    let allowed = unsafe {
        let table = (*(*relation.as_ptr()).rd_index).indrelid;
        let user = pg_sys::GetUserId();
        pg_sys::pg_class_aclcheck(table, user, pg_sys::ACL_SELECT as pg_sys::AclMode)
            == pg_sys::AclResult::ACLCHECK_OK
            || pg_sys::pg_class_ownercheck(table, user)
    };
    if !allowed {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied for the table of index \"{}\"",
                relation.name()
            ),
            Some("Reading a hannoy index's figures needs SELECT on its table."),
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

/// How many changes the index's storage has committed since it was made (build batches, merge
/// rounds, VACUUM deletes and reconnect passes; see `identity`); `None` without a metapage.
///
/// # Safety
/// `index` must be an open relation.
pub unsafe fn changes(index: pg_sys::Relation) -> Option<u64> {
    // SAFETY: forwarded from the caller.
    unsafe { metapage::read_meta(index) }.map(|meta| meta.position)
}

/// An engine this backend has open, and the data file it opened (a folder deleted and made
/// again, or replaced by a copy, has a new one).
struct Opened {
    index: Arc<Index>,
    inode: u64,
}

thread_local! {
    /// Engine indexes this backend has open, by folder. LMDB allows one environment per file
    /// per process, and opening one costs a few system calls: keep them.
    static OPEN: RefCell<HashMap<PathBuf, Opened>> = RefCell::new(HashMap::new());
}

fn data_file_inode(dir: &Path) -> Option<u64> {
    std::fs::metadata(dir.join("data.mdb"))
        .ok()
        .map(|m| m.ino())
}

/// Closes the environments whose files another backend deleted (DROP, REINDEX, TRUNCATE) or
/// replaced: an open map keeps a deleted file's disk space until this process lets go of it.
/// One `stat` per open environment, at every use of any hannoy index.
fn close_deleted() {
    OPEN.with(|open| {
        open.borrow_mut()
            .retain(|dir, opened| data_file_inode(dir) == Some(opened.inode))
    });
}

/// The engine index in `dir`, or `None` while the index has never held a vector (its
/// dimension count is fixed by the first one).
fn open_folder(dir: &Path) -> Result<Option<Arc<Index>>, Unusable> {
    close_deleted();
    if let Some(index) = OPEN.with(|open| open.borrow().get(dir).map(|o| Arc::clone(&o.index))) {
        return Ok(Some(index));
    }
    if let Ok(reason) = std::fs::read_to_string(dir.join(redo::REPLAY_FAILED)) {
        forget(dir);
        return Err(Unusable::ReplayFailed(reason));
    }
    if dir.join(rebuild::WAITING).exists() {
        forget(dir);
        return Err(Unusable::AwaitingRebuild);
    }
    let Some(inode) = data_file_inode(dir) else {
        return Ok(None);
    };
    match Index::open(dir) {
        Ok(index) => Ok(Some(remember(dir, index, inode))),
        Err(Error::MissingIndex(_)) => Ok(None),
        Err(e) => Err(unusable_or_raise(e)),
    }
}

/// The engine index in `dir`, created with `options` if it does not exist yet.
fn open_or_create(dir: &Path, options: &IndexOptions) -> Arc<Index> {
    if let Some(index) = open_folder(dir).unwrap_or_else(|e| raise_for_folder(dir, &e)) {
        return index;
    }
    let created = Index::create(dir, options).and_then(|index| {
        let inode =
            data_file_inode(dir).ok_or_else(|| Error::MissingIndex(dir.display().to_string()))?;
        Ok((index, inode))
    });
    match created {
        Ok((index, inode)) => remember(dir, index, inode),
        // Another backend created it first: use theirs.
        Err(Error::IndexExists(_)) => open_folder(dir)
            .unwrap_or_else(|e| raise_for_folder(dir, &e))
            .unwrap_or_else(|| {
                raise_corrupt(format!("{} vanished while being created", dir.display()))
            }),
        Err(e) => Err(e).or_raise(),
    }
}

fn raise_for_folder(dir: &Path, unusable: &Unusable) -> ! {
    raise_corrupt(format!("{} cannot be used: {unusable:?}", dir.display()))
}

fn remember(dir: &Path, index: Index, inode: u64) -> Arc<Index> {
    let index = Arc::new(index);
    OPEN.with(|open| {
        open.borrow_mut().insert(
            dir.to_path_buf(),
            Opened {
                index: Arc::clone(&index),
                inode,
            },
        )
    });
    index
}

/// Closes this backend's handles on folders inside `dir`, before they are deleted.
pub fn forget(dir: &Path) {
    OPEN.with(|open| open.borrow_mut().retain(|path, _| !path.starts_with(dir)));
}
