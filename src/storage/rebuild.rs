//! A folder that a base backup copied while it changed is rebuilt from the restored server's
//! own heap (docs/replication.md, "Base backups"). Redo marks it (`WAITING`) and, from then on,
//! appends every record for it to a queue in the folder instead of applying it. The first scan
//! of the index on the restored server reads the metapage and the replay position L, builds a
//! new environment from every heap row there is (`am::rebuild`), then, under the queue's lock,
//! applies the queued records after L in order and puts the new folder in the old one's place.
//!
//! Why that holds exactly the index's rows: a record at or before L is already in the heap the
//! build scanned (a row's heap insert precedes its merge; a delete comes after the row's heap
//! tuple was pruned, so the scan cannot see it); pending-list entries appended before L are in
//! that heap too, so the new environment's list position is the metapage's next sequence number
//! at L, read with L under the metapage's lock; every record after L is applied, in WAL order,
//! and inserts and deletes by key are last-writer-wins. A key a queued delete takes, whose TID
//! a later row reused before the scan read it, comes back from that row's entry, which is past
//! L and so read from the list. A row whose heap insert the scan saw and whose entry came after
//! L is in both; scans give it once, from the list (`am::scan`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hannoy_engine::{never_cancel, Change, Index, Stamp};
use pgrx::pg_sys;

use super::wal::{ChangeHead, HEAD_BYTES};

/// The mark of a folder waiting for a rebuild from the heap.
pub const WAITING: &str = "rebuild-from-heap";
/// Records queued for it: `lsn u64, length u64, record` each, little-endian.
const QUEUE: &str = "replay-queue";

/// The lock between redo's appends to a folder's queue and the backend that rebuilds it.
fn queue_lock(dir: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.with_extension("lock"))?;
    file.lock()?;
    Ok(file)
}

/// Redo's side: queues the record when `dir` waits for a rebuild; `false` when it does not (any
/// more), for the caller to apply the record as usual.
pub(super) fn queue_if_waiting(dir: &Path, lsn: u64, record: &[u8]) -> Result<bool, String> {
    // Only redo marks a folder and only a finished rebuild unmarks it: an unmarked folder
    // stays unmarked, so the lock is only needed once the mark is seen.
    if !dir.join(WAITING).exists() {
        return Ok(false);
    }
    let _lock = queue_lock(dir).map_err(|e| e.to_string())?;
    if !dir.join(WAITING).exists() {
        return Ok(false);
    }
    let mut queue = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(QUEUE))
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::with_capacity(16 + record.len());
    bytes.extend(lsn.to_le_bytes());
    bytes.extend((record.len() as u64).to_le_bytes());
    bytes.extend(record);
    queue
        .write_all(&bytes)
        .and_then(|()| queue.sync_data())
        .map_err(|e| e.to_string())?;
    Ok(true)
}

/// Redo's side: marks `dir` as waiting for a rebuild.
pub(crate) fn mark_waiting(dir: &Path) -> Result<(), String> {
    std::fs::write(dir.join(WAITING), b"").map_err(|e| e.to_string())
}

/// Where a rebuild starts from: read before the heap is scanned.
pub struct RebuildPoint {
    pub dir: PathBuf,
    pub(super) storage_id: u64,
    pub(super) position: u64,
    /// The pending list's next sequence number: every entry below it is in the heap.
    pub(crate) log_position: u64,
    /// The replay position: records at or before it are in the heap.
    pub(super) lsn: u64,
    /// The index's dimension count, 0 if no vector was ever seen.
    pub dimensions: usize,
}

impl RebuildPoint {
    /// Where the new environment is built.
    pub fn build_folder(&self) -> PathBuf {
        self.dir.with_extension("rebuilt")
    }
}

/// The point to rebuild `index`'s folder from, when it waits for a rebuild.
///
/// # Safety
/// `index` must be an open hannoy index relation.
pub unsafe fn waiting(index: pg_sys::Relation) -> Option<RebuildPoint> {
    // Every scan and merge asks, so the common answer costs a metapage read and a file test;
    // only a waiting folder takes the WAL position (a spinlock every WAL insertion takes too).
    // SAFETY: forwarded from the caller; the metapage is read under its share lock.
    let dir = unsafe {
        let (buffer, meta) = super::metapage::lock(index, pg_sys::BUFFER_LOCK_SHARE);
        pg_sys::UnlockReleaseBuffer(buffer);
        super::generation_folder((*index).rd_id, meta.storage_id)
    };
    if !dir.join(WAITING).exists() {
        return None;
    }
    // SAFETY: forwarded from the caller.
    let point = unsafe { point(index) };
    // The folder the metapage names now is the one to rebuild, if it still waits.
    point.dir.join(WAITING).exists().then_some(point)
}

/// The point a rebuild of `index`'s folder would start from now.
///
/// # Safety
/// `index` must be an open hannoy index relation.
pub(crate) unsafe fn point(index: pg_sys::Relation) -> RebuildPoint {
    // SAFETY: forwarded from the caller; the metapage is read under its share lock.
    let (meta, lsn) = unsafe {
        let (buffer, meta) = super::metapage::lock(index, pg_sys::BUFFER_LOCK_SHARE);
        // Redo and writers change the metapage under its exclusive lock, so while this lock is
        // held the metapage is as the WAL left it at the position read: at most the record
        // being replayed right now is in the metapage and not yet in the position, and that
        // record's entry, if it is one, belongs to a row already in the heap. A position read
        // apart from the metapage could let replay run on in between: a delete applied from
        // the queue would then take a key whose TID a later row reused, with that row's entry
        // below the list position and so read from nowhere.
        let lsn = if pg_sys::RecoveryInProgress() {
            pg_sys::GetXLogReplayRecPtr(std::ptr::null_mut())
        } else {
            pg_sys::GetXLogInsertRecPtr()
        };
        pg_sys::UnlockReleaseBuffer(buffer);
        (meta, lsn)
    };
    RebuildPoint {
        // SAFETY: forwarded from the caller.
        dir: super::generation_folder(unsafe { (*index).rd_id }, meta.storage_id),
        storage_id: meta.storage_id,
        position: meta.position,
        log_position: meta.next_seq,
        lsn,
        dimensions: meta.dimensions as usize,
    }
}

/// Applies the records queued after `point` to `built` (the environment made from the heap in
/// `point.build_folder()`) and puts it in place of the waiting folder.
pub fn finish(point: &RebuildPoint, built: Arc<Index>) -> Result<(), String> {
    let lock = queue_lock(&point.dir).map_err(|e| e.to_string())?;
    if !point.dir.join(WAITING).exists() {
        return Ok(()); // another backend finished first
    }
    let mut queued = Vec::new();
    if let Ok(mut file) = File::open(point.dir.join(QUEUE)) {
        file.read_to_end(&mut queued).map_err(|e| e.to_string())?;
    }
    let mut position = point.position;
    built
        .write(|writer| {
            writer.set_log_position(point.log_position)?;
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    let mut rest = queued.as_slice();
    while rest.len() >= 16 {
        let lsn = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
        let len = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes")) as usize;
        let Some(record) = rest.get(16..16 + len) else {
            break; // a torn last append: its record will come again from the WAL
        };
        rest = &rest[16 + len..];
        // A record that starts before the replay position was replayed before the heap was
        // scanned; one that starts there was not.
        if lsn < point.lsn {
            continue;
        }
        let head = ChangeHead::from_bytes(record).ok_or("a damaged queued record")?;
        let change = Change::decode(&record[HEAD_BYTES..]).map_err(|e| e.to_string())?;
        built.reserve(change.added()).map_err(|e| e.to_string())?;
        crate::pg::threads::new_pool()
            .map_err(|e| e.to_string())?
            .install(|| built.write(|writer| change.apply(writer, &never_cancel)))
            .map_err(|e| e.to_string())?;
        position = position.max(head.target);
    }
    let stamp = Stamp {
        owner: point.storage_id,
        position,
    };
    built
        .write(|writer| writer.set_stamp(stamp))
        .map_err(|e| e.to_string())?;
    // The last handle: the environment is closed before its folder moves.
    drop(built);
    let old = point.dir.with_extension("old");
    let _ = std::fs::remove_dir_all(&old);
    super::forget(&point.dir);
    std::fs::rename(&point.dir, &old)
        .and_then(|()| std::fs::rename(point.build_folder(), &point.dir))
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&old);
    // Anyone waiting on these locks holds the removed files and finds the folder rebuilt.
    let _ = std::fs::remove_file(point.dir.with_extension("lock"));
    let _ = std::fs::remove_file(point.dir.with_extension("building"));
    drop(lock);
    Ok(())
}

/// Serializes the backends that would rebuild one folder: the holder builds, the others wait
/// and find it done.
pub fn builder_lock(point: &RebuildPoint) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(point.dir.with_extension("building"))?;
    file.lock()?;
    Ok(file)
}
