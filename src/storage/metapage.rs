//! Block 0 of a hannoy index relation: the id of its current storage generation. It is the
//! only thing Postgres itself stores for the index, WAL-logged so that copies, rollbacks and
//! crash recovery carry the right id.

use pgrx::pg_sys;

const MAGIC: u32 = u32::from_be_bytes(*b"HNPG");
const VERSION: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy)]
struct MetaPage {
    magic: u32,
    version: u32,
    storage_id: u64,
}

/// Where page contents start: after the header, MAXALIGNed.
const CONTENTS: usize = std::mem::offset_of!(pg_sys::PageHeaderData, pd_linp).next_multiple_of(8);

fn random_id() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: pg_strong_random writes exactly `len` bytes into the buffer it is given.
    let ok = unsafe { pg_sys::pg_strong_random(bytes.as_mut_ptr().cast(), bytes.len()) };
    if !ok {
        crate::error::raise(
            pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "could not generate a random storage id",
            None,
        );
    }
    u64::from_ne_bytes(bytes)
}

/// Writes a metapage with a fresh storage id into the empty relation and returns the id.
///
/// # Safety
/// `index` must be an open index relation with no blocks, locked exclusively.
pub unsafe fn write_new(index: pg_sys::Relation) -> u64 {
    let meta = MetaPage {
        magic: MAGIC,
        version: VERSION,
        storage_id: random_id(),
    };
    // SAFETY: extending the relation returns a pinned new buffer; we lock it exclusively,
    // register it with a generic WAL record (which gives us a private page image to write),
    // initialise it, write the record inside the initialised area, and finish the record,
    // which copies the image back and logs it, before unlocking.
    unsafe {
        let buffer = pg_sys::ReadBufferExtended(
            index,
            pg_sys::ForkNumber::MAIN_FORKNUM,
            pg_sys::InvalidBlockNumber,
            pg_sys::ReadBufferMode::RBM_NORMAL,
            std::ptr::null_mut(),
        );
        pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
        if pg_sys::BufferGetBlockNumber(buffer) != 0 {
            pg_sys::UnlockReleaseBuffer(buffer);
            crate::error::raise(
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
        page.cast::<u8>()
            .add(CONTENTS)
            .cast::<MetaPage>()
            .write_unaligned(meta);
        let header = page.cast::<pg_sys::PageHeaderData>();
        (*header).pd_lower = (CONTENTS + std::mem::size_of::<MetaPage>()) as u16;
        pg_sys::GenericXLogFinish(state);
        pg_sys::UnlockReleaseBuffer(buffer);
    }
    meta.storage_id
}

/// The storage id in the metapage, `None` when the relation has no valid metapage.
///
/// # Safety
/// `index` must be an open index relation.
pub unsafe fn read(index: pg_sys::Relation) -> Option<u64> {
    // SAFETY: the block exists (checked first); it is pinned and share-locked while read, and
    // the read stays inside the page.
    let meta = unsafe {
        if pg_sys::RelationGetNumberOfBlocksInFork(index, pg_sys::ForkNumber::MAIN_FORKNUM) == 0 {
            return None;
        }
        let buffer = pg_sys::ReadBuffer(index, 0);
        pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_SHARE as i32);
        let page = pg_sys::BufferGetPage(buffer);
        let meta = page
            .cast::<u8>()
            .add(CONTENTS)
            .cast::<MetaPage>()
            .read_unaligned();
        pg_sys::UnlockReleaseBuffer(buffer);
        meta
    };
    (meta.magic == MAGIC && meta.version == VERSION).then_some(meta.storage_id)
}
