//! Block 0 of a hannoy index relation: the id of its current storage generation, how many
//! changes of that storage the relation has seen committed (see `super::identity`), and the
//! state of its pending list (see `pending_list`). It is what Postgres itself stores for the
//! index, WAL-logged so that copies, rollbacks, restores and crash recovery carry the id, the
//! position and every insert that reached the WAL.

use pgrx::pg_sys;

const MAGIC: u32 = u32::from_be_bytes(*b"HNPG");
/// 2: the pending list. 3: the storage position and the rebuild mark.
const VERSION: u32 = 3;

#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct MetaPage {
    pub magic: u32,
    pub version: u32,
    pub storage_id: u64,
    /// Changes of the storage (LMDB commits of the access method) known to be committed.
    pub position: u64,
    /// The position a change in flight will reach once it commits; `position` when none is,
    /// or the position of a change that failed after its record was logged. Logged and flushed
    /// before that LMDB commit, so after a crash between the commit and the record of
    /// `position` the folder is found at `intent`, which is accepted.
    pub intent: u64,
    /// Non-zero once the storage was found unusable (see `super::identity`): scans refuse,
    /// inserts leave the pending list alone and VACUUM skips the index until a REINDEX.
    pub needs_rebuild: u32,
    /// Dimension count of the index's vectors; 0 until the first one is known here.
    pub dimensions: u32,
    /// Bytes of one stored vector of that count.
    pub vector_bytes: u32,
    /// First and last page of the pending list, InvalidBlockNumber when it has none.
    pub head: pg_sys::BlockNumber,
    pub tail: pg_sys::BlockNumber,
    /// Bytes of the tail page's data area in use: the list ends there.
    pub tail_used: u32,
    /// The sequence number the next pending entry gets.
    pub next_seq: u64,
    /// Entries below this were merged into the engine when the list was last cut.
    pub merged_below: u64,
    /// First page of the chain of pages freed by cuts, for reuse; InvalidBlockNumber if none.
    pub free_head: pg_sys::BlockNumber,
}

impl MetaPage {
    fn new(storage_id: u64) -> MetaPage {
        MetaPage {
            magic: MAGIC,
            version: VERSION,
            storage_id,
            position: 0,
            intent: 0,
            needs_rebuild: 0,
            dimensions: 0,
            vector_bytes: 0,
            head: pg_sys::InvalidBlockNumber,
            tail: pg_sys::InvalidBlockNumber,
            tail_used: 0,
            next_seq: 0,
            merged_below: 0,
            free_head: pg_sys::InvalidBlockNumber,
        }
    }

    pub fn is_valid(&self) -> bool {
        self.magic == MAGIC && self.version == VERSION
    }
}

/// Where page contents start: after the header, MAXALIGNed.
pub(super) const CONTENTS: usize =
    std::mem::offset_of!(pg_sys::PageHeaderData, pd_linp).next_multiple_of(8);

/// The metapage in `page`.
///
/// # Safety
/// `page` must point at a locked page of a hannoy index (block 0).
pub(super) unsafe fn get(page: pg_sys::Page) -> MetaPage {
    // SAFETY: the struct lies inside the page (checked at compile time below); it may be
    // unaligned, hence the unaligned read.
    unsafe {
        page.cast::<u8>()
            .add(CONTENTS)
            .cast::<MetaPage>()
            .read_unaligned()
    }
}

/// Writes `meta` into `page` (a page image of a generic WAL record, or a new page).
///
/// # Safety
/// `page` must point at an initialised, exclusively locked page image.
pub(super) unsafe fn put(page: pg_sys::Page, meta: &MetaPage) {
    // SAFETY: as in `get`; pd_lower is set past the struct so the WAL record keeps it.
    unsafe {
        page.cast::<u8>()
            .add(CONTENTS)
            .cast::<MetaPage>()
            .write_unaligned(*meta);
        let header = page.cast::<pg_sys::PageHeaderData>();
        (*header).pd_lower = (CONTENTS + std::mem::size_of::<MetaPage>()) as u16;
    }
}

const _: () = assert!(CONTENTS + std::mem::size_of::<MetaPage>() <= pg_sys::BLCKSZ as usize);

fn random_id() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: pg_strong_random writes exactly `len` bytes into the buffer it is given.
    let ok = unsafe { pg_sys::pg_strong_random(bytes.as_mut_ptr().cast(), bytes.len()) };
    if !ok {
        crate::pg::error::raise(
            pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "could not generate a random storage id",
            None,
        );
    }
    u64::from_ne_bytes(bytes)
}

/// A new block at the end of `index`, pinned and exclusively locked.
///
/// # Safety
/// `index` must be an open index relation; the caller releases the buffer.
pub(super) unsafe fn new_block(index: pg_sys::Relation) -> pg_sys::Buffer {
    // SAFETY: extending under the relation extension lock is how Postgres's own indexes grow;
    // the new buffer is locked before the extension lock is let go.
    unsafe {
        pg_sys::LockRelationForExtension(index, pg_sys::ExclusiveLock as i32);
        let buffer = pg_sys::ReadBufferExtended(
            index,
            pg_sys::ForkNumber::MAIN_FORKNUM,
            pg_sys::InvalidBlockNumber,
            pg_sys::ReadBufferMode::RBM_NORMAL,
            std::ptr::null_mut(),
        );
        pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
        pg_sys::UnlockRelationForExtension(index, pg_sys::ExclusiveLock as i32);
        buffer
    }
}

/// Writes a metapage with a fresh storage id into the empty relation and returns the id.
///
/// # Safety
/// `index` must be an open index relation with no blocks, locked exclusively.
pub unsafe fn write_new(index: pg_sys::Relation) -> u64 {
    let meta = MetaPage::new(random_id());
    // SAFETY: extending the relation returns a pinned new buffer; we lock it exclusively,
    // register it with a generic WAL record (which gives us a private page image to write),
    // initialise it, write the record inside the initialised area, and finish the record,
    // which copies the image back and logs it, before unlocking.
    unsafe {
        let buffer = new_block(index);
        if pg_sys::BufferGetBlockNumber(buffer) != 0 {
            pg_sys::UnlockReleaseBuffer(buffer);
            crate::pg::error::raise(
                pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                "hannoy index relation was not empty at build",
                None,
            );
        }
        let state = pg_sys::GenericXLogStart(index);
        let page = pg_sys::GenericXLogRegisterBuffer(
            state,
            buffer,
            pg_sys::GENERIC_XLOG_FULL_IMAGE as i32,
        );
        pg_sys::PageInit(page, pg_sys::BLCKSZ as usize, 0);
        put(page, &meta);
        pg_sys::GenericXLogFinish(state);
        pg_sys::UnlockReleaseBuffer(buffer);
    }
    meta.storage_id
}

/// Writes `meta` into the exclusively locked block 0 through a generic WAL record and returns
/// the record's position (invalid when the relation is not WAL-logged).
///
/// # Safety
/// `buffer` must be block 0 of `index`, pinned and exclusively locked.
pub(super) unsafe fn log(
    index: pg_sys::Relation,
    buffer: pg_sys::Buffer,
    meta: &MetaPage,
) -> pg_sys::XLogRecPtr {
    // SAFETY: the record's page image is written before the record is finished.
    unsafe {
        let state = pg_sys::GenericXLogStart(index);
        let page = pg_sys::GenericXLogRegisterBuffer(state, buffer, 0);
        put(page, meta);
        pg_sys::GenericXLogFinish(state)
    }
}

/// Block 0 pinned and locked in `mode`, and the metapage in it.
///
/// # Safety
/// `index` must be an open hannoy index relation; the caller releases the buffer.
pub(super) unsafe fn lock(index: pg_sys::Relation, mode: u32) -> (pg_sys::Buffer, MetaPage) {
    // SAFETY: block 0 exists in every built index; it is pinned and locked before it is read.
    unsafe {
        let buffer = pg_sys::ReadBuffer(index, 0);
        pg_sys::LockBuffer(buffer, mode as i32);
        let meta = get(pg_sys::BufferGetPage(buffer));
        if !meta.is_valid() {
            pg_sys::UnlockReleaseBuffer(buffer);
            crate::pg::error::raise(
                pgrx::PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
                format!(
                    "index \"{}\" has no valid hannoy metapage",
                    crate::pg::names::qualified_name(index)
                ),
                Some(&crate::pg::names::reindex_hint(index)),
            );
        }
        (buffer, meta)
    }
}

/// The metapage, `None` when the relation has none or one of another version.
///
/// # Safety
/// `index` must be an open index relation.
pub(super) unsafe fn read_meta(index: pg_sys::Relation) -> Option<MetaPage> {
    // SAFETY: the block exists (checked first); it is pinned and share-locked while read.
    let meta = unsafe {
        if pg_sys::RelationGetNumberOfBlocksInFork(index, pg_sys::ForkNumber::MAIN_FORKNUM) == 0 {
            return None;
        }
        let buffer = pg_sys::ReadBuffer(index, 0);
        pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_SHARE as i32);
        let meta = get(pg_sys::BufferGetPage(buffer));
        pg_sys::UnlockReleaseBuffer(buffer);
        meta
    };
    meta.is_valid().then_some(meta)
}

/// The storage id in the metapage, `None` when the relation has no valid metapage.
///
/// # Safety
/// `index` must be an open index relation.
pub unsafe fn read(index: pg_sys::Relation) -> Option<u64> {
    // SAFETY: forwarded from the caller.
    unsafe { read_meta(index) }.map(|meta| meta.storage_id)
}
