//! Redo of the records in `wal`, in the startup process of a standby or of a server in
//! recovery: no transaction, no catalog, no relcache. A record carries the folder it is for and
//! the change's inputs; the engine runs the change again on a pool of its own (docs/replication.md).
//!
//! A record that cannot be applied never stops recovery: its folder is marked (`REPLAY_FAILED`,
//! with the reason), later records for it are skipped, and scans refuse the index until it is
//! rebuilt. A folder that a base backup copied while it changed may mix pages of different
//! commits (LMDB reuses the pages of older ones), which replay cannot mend: it waits for a
//! rebuild from the heap, and its records are queued for it (`super::rebuild`).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use hannoy_engine::{never_cancel, Change, Error, Index, Stamp};
use pgrx::prelude::*;

use super::rebuild;
use super::wal::{self, ChangeHead, HEAD_BYTES};

/// The file that marks a folder whose replay failed; it holds the reason.
pub const REPLAY_FAILED: &str = "replay-failed";

thread_local! {
    /// Environments the startup process has open, by folder (one per file per process).
    static OPEN: RefCell<HashMap<PathBuf, Index>> = RefCell::new(HashMap::new());
    static POOL: RefCell<Option<rayon::ThreadPool>> = const { RefCell::new(None) };
    /// While recovery from a base backup has not reached consistency: the folders the backup
    /// copied (every folder there was when recovery started).
    static COPIED: RefCell<Option<HashSet<PathBuf>>> = const { RefCell::new(None) };
}

/// Registers the resource manager. Only allowed while `shared_preload_libraries` is processed.
pub fn register() {
    let rmgr = Box::leak(Box::new(pg_sys::RmgrData {
        rm_name: wal::RMGR_NAME.as_ptr(),
        rm_redo: Some(redo),
        rm_desc: Some(describe),
        rm_identify: Some(identify),
        rm_startup: Some(startup),
        rm_cleanup: Some(cleanup),
        rm_mask: None,
        rm_decode: None,
    }));
    // SAFETY: called from _PG_init in the postmaster while it loads shared_preload_libraries;
    // the table entry points at a leaked, never-freed struct with 'static strings.
    unsafe { pg_sys::RegisterCustomRmgr(wal::RMGR_ID, rmgr) };
    wal::set_following();
}

/// The main data of the record being replayed, and its info bits.
///
/// # Safety
/// `record` is the reader Postgres hands a resource manager callback, on its record.
unsafe fn record_data<'r>(record: *mut pg_sys::XLogReaderState) -> (u8, &'r [u8]) {
    // SAFETY: a decoded record's main data stays valid while its callback runs.
    unsafe {
        let decoded = &*(*record).record;
        let info = decoded.header.xl_info & !(pg_sys::XLR_INFO_MASK as u8);
        let data = if decoded.main_data.is_null() {
            &[][..]
        } else {
            std::slice::from_raw_parts(
                decoded.main_data.cast::<u8>(),
                decoded.main_data_len as usize,
            )
        };
        (info, data)
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn redo(record: *mut pg_sys::XLogReaderState) {
    // SAFETY: Postgres calls this with the record to replay.
    let (info, data) = unsafe { record_data(record) };
    // SAFETY: as above.
    let lsn = unsafe { (*record).ReadRecPtr };
    match info {
        wal::INFO_CHANGE => redo_change(lsn, data),
        wal::INFO_REMOVE => wal::removed_folders(data).for_each(|dir| remove(&dir)),
        other => warning!("hannoy: skipping a WAL record of unknown kind {other:#x}"),
    }
}

fn redo_change(lsn: u64, data: &[u8]) {
    let Some(head) = ChangeHead::from_bytes(data) else {
        warning!("hannoy: skipping a change record of {} bytes", data.len());
        return;
    };
    let dir = head.folder();
    if dir.join(REPLAY_FAILED).exists() {
        return;
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if changed_copy(&dir, &head) {
            OPEN.with(|open| open.borrow_mut().remove(&dir));
            rebuild::mark_waiting(&dir)?;
        }
        if rebuild::queue_if_waiting(&dir, lsn, data)? {
            return Ok(());
        }
        apply(&dir, &head, &data[HEAD_BYTES..])
    }));
    let reason = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(reason)) => reason,
        Err(panic) => panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into()),
    };
    OPEN.with(|open| open.borrow_mut().remove(&dir));
    let marked = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(REPLAY_FAILED), &reason));
    warning!(
        "hannoy: could not replay change {} of {}: {reason}; its index answers no scan until it is rebuilt{}",
        head.target,
        dir.display(),
        marked.err().map_or(String::new(), |e| format!(" (and could not mark it: {e})"))
    );
}

/// Whether `dir` is a folder that a base backup copied while it changed: a record replayed
/// before the restored copy is consistent names a change the folder does not hold (or the copy
/// does not even open).
fn changed_copy(dir: &Path, head: &ChangeHead) -> bool {
    // SAFETY: a plain read of the startup process's own flag, on its thread.
    if unsafe { pg_sys::reachedConsistency } {
        COPIED.with(|copied| copied.borrow_mut().take());
        return false;
    }
    let copied = COPIED.with(|copied| copied.borrow().as_ref().is_some_and(|c| c.contains(dir)));
    if !copied || dir.join(rebuild::WAITING).exists() {
        return false;
    }
    !position(dir).is_ok_and(|position| position >= head.target)
}

/// The position of the folder's environment; 0 when it has none.
fn position(dir: &Path) -> Result<u64, String> {
    if !dir.join("data.mdb").exists() {
        return Ok(0);
    }
    with_open(dir, |index| {
        let stamp = index.read().and_then(|reader| reader.stamp());
        Ok(stamp.map_err(|e| e.to_string())?.map_or(0, |s| s.position))
    })
}

/// Runs `f` on the environment in `dir`, opened once per startup process.
fn with_open<R>(dir: &Path, f: impl FnOnce(&Index) -> Result<R, String>) -> Result<R, String> {
    OPEN.with(|open| {
        let mut open = open.borrow_mut();
        if !open.contains_key(dir) {
            let index = Index::open(dir).map_err(|e| e.to_string())?;
            open.insert(dir.to_path_buf(), index);
        }
        f(&open[dir])
    })
}

/// Runs the change unless the folder has it already (see docs/replication.md, "Redo").
fn apply(dir: &Path, head: &ChangeHead, body: &[u8]) -> Result<(), String> {
    let change = Change::decode(body).map_err(|e| e.to_string())?;
    let engine_error = |e: Error| e.to_string();
    if !dir.join("data.mdb").exists() {
        // Removed later in the WAL, or lost: either way the metapage, replayed through its own
        // records, makes scans refuse it.
        let Change::Insert(insert) = &change else {
            return Ok(());
        };
        if head.base != 0 {
            return Ok(());
        }
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let index = Index::create(dir, &insert.options).map_err(engine_error)?;
        OPEN.with(|open| open.borrow_mut().insert(dir.to_path_buf(), index));
    }
    with_open(dir, |index| {
        let stamp = index
            .read()
            .and_then(|reader| reader.stamp())
            .map_err(engine_error)?;
        let position = match stamp {
            Some(stamp) if stamp.owner != head.storage_id => {
                return Err(format!(
                    "its folder is stamped by storage {:016x}",
                    stamp.owner
                ));
            }
            Some(stamp) => stamp.position,
            None => 0,
        };
        if position >= head.target {
            return Ok(());
        }
        if position < head.base {
            return Err(format!(
                "its folder is at change {position} and the record follows change {}",
                head.base
            ));
        }
        index.reserve(change.added()).map_err(engine_error)?;
        let stamp = Stamp {
            owner: head.storage_id,
            position: head.target,
        };
        with_pool(|| {
            index.write(|writer| {
                change.apply(writer, &never_cancel)?;
                writer.set_stamp(stamp)
            })
        })?
        .map_err(engine_error)
    })
}

/// Runs `f` on the startup process's pool of worker threads, made at first use.
fn with_pool<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R, String> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.is_none() {
            *pool = Some(crate::pg::threads::new_pool().map_err(|e| e.to_string())?);
        }
        Ok(pool.as_ref().expect("made above").install(f))
    })
}

fn remove(dir: &Path) {
    if !dir.starts_with("hannoy") {
        warning!(
            "hannoy: not removing {}, which is outside its folders",
            dir.display()
        );
        return;
    }
    OPEN.with(|open| open.borrow_mut().retain(|path, _| !path.starts_with(dir)));
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {
            if let Some(parent) = dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warning!("hannoy: could not remove {}: {e}", dir.display()),
    }
}

/// Notes, when recovery starts from a base backup, which folders the backup copied.
#[pg_guard]
unsafe extern "C-unwind" fn startup() {
    if from_base_backup() {
        let folders = generation_folders(Path::new("hannoy"));
        COPIED.with(|copied| *copied.borrow_mut() = Some(folders));
    }
}

/// Whether this recovery started from a base backup and has not reached its end: the startup
/// process records that in pg_control (`backupStartPoint`) before redo begins.
fn from_base_backup() -> bool {
    let Ok(bytes) = std::fs::read("global/pg_control") else {
        return false;
    };
    if bytes.len() < std::mem::size_of::<pg_sys::ControlFileData>() {
        return false;
    }
    // SAFETY: the file starts with a ControlFileData of this server's build (checked by
    // Postgres before recovery began); an unaligned read copies it out as plain data.
    let control = unsafe {
        bytes
            .as_ptr()
            .cast::<pg_sys::ControlFileData>()
            .read_unaligned()
    };
    control.backupStartPoint != 0
}

/// Every storage generation folder under `root` (database / index / generation).
fn generation_folders(root: &Path) -> HashSet<PathBuf> {
    let children = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    };
    let mut found = HashSet::new();
    for database in children(root) {
        for index in children(&database) {
            found.extend(children(&index));
        }
    }
    found
}

/// Closes every environment when recovery ends (the startup process exits, or a standby is
/// promoted and backends take over).
#[pg_guard]
unsafe extern "C-unwind" fn cleanup() {
    OPEN.with(|open| open.borrow_mut().clear());
    POOL.with(|pool| pool.borrow_mut().take());
    COPIED.with(|copied| copied.borrow_mut().take());
}

#[pg_guard]
unsafe extern "C-unwind" fn describe(
    buf: pg_sys::StringInfo,
    record: *mut pg_sys::XLogReaderState,
) {
    // SAFETY: Postgres calls this with a record of ours and a buffer to append to.
    let (info, data) = unsafe { record_data(record) };
    let text = match info {
        wal::INFO_CHANGE => match ChangeHead::from_bytes(data) {
            Some(head) => format!(
                "{}: change {} -> {}, {} bytes",
                head.folder().display(),
                head.base,
                head.target,
                data.len()
            ),
            None => format!("damaged change of {} bytes", data.len()),
        },
        wal::INFO_REMOVE => {
            let folders: Vec<String> = wal::removed_folders(data)
                .map(|p| p.display().to_string())
                .collect();
            format!("remove {}", folders.join(", "))
        }
        other => format!("unknown kind {other:#x}"),
    };
    let text = CString::new(text.replace('\0', " ")).expect("no NUL left");
    // SAFETY: appends a copy of a NUL-terminated string to Postgres's buffer.
    unsafe { pg_sys::appendStringInfoString(buf, text.as_ptr()) };
}

#[pg_guard]
unsafe extern "C-unwind" fn identify(info: u8) -> *const std::ffi::c_char {
    match info & !(pg_sys::XLR_INFO_MASK as u8) {
        wal::INFO_CHANGE => c"CHANGE".as_ptr(),
        wal::INFO_REMOVE => c"REMOVE".as_ptr(),
        _ => std::ptr::null(),
    }
}
