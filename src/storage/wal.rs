//! The records by which every change of a storage folder follows the WAL (docs/replication.md):
//! a change of an engine index, told by its inputs, and the removal of folders. They go through
//! a custom resource manager, registered only while `shared_preload_libraries` loads the
//! library; without it nothing is logged and `following` is false.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use hannoy_engine::Change;
use pgrx::{pg_sys, PgSqlErrorCode};

/// `RM_EXPERIMENTAL_ID`, the id PostgreSQL leaves for extensions under development. A release
/// registers its own on the wiki page "CustomWALResourceManagers".
pub const RMGR_ID: u8 = 128;
pub const RMGR_NAME: &std::ffi::CStr = c"hannoy";

/// `xl_info` bits of our records (the low four are Postgres's).
pub const INFO_CHANGE: u8 = 0x10;
pub const INFO_REMOVE: u8 = 0x20;

/// The most a writer that chooses its batch puts in one change's record.
pub const MAX_RECORD_BYTES: usize = 256 << 20;
/// Postgres refuses records above `XLogRecordMaxSize` (1020 MB); this stays below it.
const LARGEST_RECORD: usize = 1000 << 20;

static FOLLOWING: AtomicBool = AtomicBool::new(false);

/// Whether this server logs and replays the records: the library was preloaded and registered
/// the resource manager (every process of the server inherits that from the postmaster).
pub fn following() -> bool {
    FOLLOWING.load(Ordering::Relaxed)
}

pub(super) fn set_following() {
    FOLLOWING.store(true, Ordering::Relaxed);
}

/// Names the folder a change is for and where it takes it; redo has no catalog.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ChangeHead {
    pub database: u32,
    pub index: u32,
    pub storage_id: u64,
    /// The position the primary's folder was at when the change began.
    pub base: u64,
    /// The position the change takes it to.
    pub target: u64,
}

pub const HEAD_BYTES: usize = std::mem::size_of::<ChangeHead>();

impl ChangeHead {
    fn to_bytes(self) -> [u8; HEAD_BYTES] {
        let mut out = [0; HEAD_BYTES];
        out[0..4].copy_from_slice(&self.database.to_le_bytes());
        out[4..8].copy_from_slice(&self.index.to_le_bytes());
        out[8..16].copy_from_slice(&self.storage_id.to_le_bytes());
        out[16..24].copy_from_slice(&self.base.to_le_bytes());
        out[24..32].copy_from_slice(&self.target.to_le_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<ChangeHead> {
        let word = |at: usize, n: usize| bytes.get(at..at + n);
        let u32_at = |at| word(at, 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
        let u64_at = |at| word(at, 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
        Some(ChangeHead {
            database: u32_at(0)?,
            index: u32_at(4)?,
            storage_id: u64_at(8)?,
            base: u64_at(16)?,
            target: u64_at(24)?,
        })
    }

    /// The folder, relative to the data directory, as `super::generation_folder` names it.
    pub fn folder(&self) -> PathBuf {
        super::index_folder(self.database.into(), self.index.into())
            .join(super::generation_name(self.storage_id))
    }
}

/// Logs `change` of the folder `head` names; returns the record's end, to flush before the
/// change commits in LMDB.
///
/// # Safety
/// On the backend thread, inside a transaction, on a server that is `following`.
pub unsafe fn log_change(head: ChangeHead, change: &Change<'_>) -> pg_sys::XLogRecPtr {
    let head = head.to_bytes();
    let (body, vectors) = change.encode();
    let total = head.len() + body.len() + vectors.len();
    if total > LARGEST_RECORD {
        // Only reachable by a change no writer makes (they bound their batches); refuse
        // before Postgres would, with a message that says what to change.
        crate::pg::error::raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("a hannoy index change of {total} bytes is too large for one WAL record"),
            Some("Lower maintenance_work_mem or hannoy.pending_list_limit."),
        );
    }
    // SAFETY: the registered buffers stay alive and unchanged until XLogInsert copies them.
    unsafe {
        pg_sys::XLogBeginInsert();
        register(&head);
        register(&body);
        if !vectors.is_empty() {
            register(vectors);
        }
        pg_sys::XLogInsert(RMGR_ID, INFO_CHANGE)
    }
}

/// # Safety
/// Between XLogBeginInsert and XLogInsert; `data` outlives the XLogInsert.
unsafe fn register(data: &[u8]) {
    // SAFETY: forwarded; Postgres only reads the buffer, and each part is below 2 GB.
    unsafe { pg_sys::XLogRegisterData(data.as_ptr().cast_mut().cast(), data.len() as i32) };
}

/// Logs the removal of the storage generations under `dir` (a generation, index or database
/// folder), each by its own path: an index folder's OID may name another index later in the WAL.
pub fn log_remove(dir: &Path) {
    let generations = generations_under(dir);
    if generations.is_empty() {
        return;
    }
    let mut body = Vec::new();
    for path in &generations {
        body.extend(path.to_string_lossy().as_bytes());
        body.push(0);
    }
    // SAFETY: on the backend thread at transaction end, outside any critical section; the
    // buffer lives until XLogInsert copies it.
    unsafe {
        pg_sys::XLogBeginInsert();
        register(&body);
        pg_sys::XLogInsert(RMGR_ID, INFO_REMOVE);
    }
}

/// Reads back what `log_remove` wrote.
pub fn removed_folders(body: &[u8]) -> impl Iterator<Item = PathBuf> + '_ {
    body.split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
}

/// Generation folders are the ones named by a storage id, at depth 0, 1 or 2 below `dir`.
fn generations_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        if super::is_generation_name(dir) {
            out.push(dir.to_path_buf());
        } else if depth > 0 {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                walk(&entry.path(), depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, 2, &mut out);
    out
}
