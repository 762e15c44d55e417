//! The pending list: rows inserted since the last merge into the engine, kept in the index
//! relation's own pages after the metapage, like GIN's fast-update list.
//!
//! An insert appends (sequence number, heap TID key, stored vector, filter values) with a
//! generic WAL record,
//! so it is durable with its transaction's commit record and replayed after a crash, at no
//! cost of its own: no engine write, no fsync, no lock beyond the metapage's for the append.
//! Scans score the list exactly next to the graph. A merge links a whole list into the engine
//! as one batch and records, in the same LMDB commit, the sequence number it reached (the
//! engine's log position); entries below it are then skipped wherever they are read, and
//! `cut` frees their pages. So a crash between the engine commit and the cut loses nothing
//! and links nothing twice.
//!
//! The list is a byte stream over a chain of pages; an entry may continue on the next page.
//! It is read page by page, an entry at a time, so a list of any length costs the reader one
//! page and one entry of memory. Pages freed by a cut are chained into a free list (through
//! the same `next` link) and reused by later appends, however many there are.
//! All changes hold the metapage exclusively; readers hold it shared, which also orders them
//! with cuts: a reader that took its engine snapshot under the lock sees every entry the
//! snapshot lacks.
//!
//! Each entry carries the id of the transaction that inserted it. A rolled-back row's entry is
//! left out of merges, and the first rows' dimension count is fixed only by a row that may
//! commit: the metapage's count is not transactional, so an insert of another count is
//! accepted while every earlier entry belongs to a transaction that rolled back (and no merge
//! has fixed the count in the engine).

use pgrx::pg_sys;
use pgrx::PgSqlErrorCode;

use super::metapage::{self, MetaPage, CONTENTS};
use crate::pg::error::{raise, raise_corrupt, raise_engine};

/// The special space of a list page.
#[repr(C)]
#[derive(Clone, Copy)]
struct ListPageOpaque {
    next: pg_sys::BlockNumber,
    /// Offset in the data area of the first entry that starts on this page, or NO_ENTRY.
    first_entry: u16,
    _reserved: u16,
    /// Sequence number of the last entry with bytes on this page.
    last_seq: u64,
}

const NO_ENTRY: u16 = u16::MAX;
/// seq (u64), key (u64), vector length (u32), filter values' length (u32), inserting
/// transaction (u32), 4 bytes of padding.
const ENTRY_HEADER: usize = 32;
/// A record may register four pages: the metapage and three list pages.
const LIST_PAGES_PER_RECORD: usize = 3;

fn special_offset() -> usize {
    pg_sys::BLCKSZ as usize - std::mem::size_of::<ListPageOpaque>()
}

/// Bytes of entries one list page holds.
fn capacity() -> usize {
    special_offset() - CONTENTS
}

/// Bytes one entry takes in the list.
pub fn entry_bytes(vector_bytes: usize, filter_bytes: usize) -> usize {
    ENTRY_HEADER + (vector_bytes + filter_bytes).next_multiple_of(8)
}

/// One pending row, owned.
pub struct PendingEntry {
    pub key: u64,
    pub vector: Vec<u8>,
    /// Its filter values as `FilterRow::to_bytes` wrote them; empty without filter columns.
    pub filters: Vec<u8>,
}

/// One pending row as it lies in the list, for the length of a callback.
pub struct EntryRef<'a> {
    pub seq: u64,
    pub key: u64,
    /// The (sub)transaction that inserted the row.
    pub xid: pg_sys::TransactionId,
    pub vector: &'a [u8],
    pub filters: &'a [u8],
    /// The index's dimension count, which `vector` has.
    pub dimensions: u32,
}

impl EntryRef<'_> {
    pub fn to_owned(&self) -> PendingEntry {
        PendingEntry {
            key: self.key,
            vector: self.vector.to_vec(),
            filters: self.filters.to_vec(),
        }
    }

    /// Bytes the entry takes in the list.
    pub fn size(&self) -> usize {
        entry_bytes(self.vector.len(), self.filters.len())
    }
}

/// Whether a read goes on to the next entry.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    Go,
    Stop,
}

/// Where the list stood when it was read.
pub struct ListState {
    /// The sequence number the next entry will get.
    pub end_seq: u64,
    /// The sequence number of the first entry the read did not give (`end_seq` when it read
    /// to the end): merging every entry given reaches this.
    pub reached: u64,
    /// The WAL position of the list's last change: every entry's insert is before it.
    pub lsn: pg_sys::XLogRecPtr,
    /// The index's dimension count, 0 while unknown.
    pub dimensions: u32,
}

/// Whether the transaction `xid` rolled back (or died in a crash): neither running nor
/// committed. Postgres's own order of the two checks, so a commit in between is not missed.
pub fn rolled_back(xid: pg_sys::TransactionId) -> bool {
    // SAFETY: lookups in the proc array and the commit log, on the backend thread.
    unsafe { !pg_sys::TransactionIdIsInProgress(xid) && !pg_sys::TransactionIdDidCommit(xid) }
}

/// # Safety
/// `page` must point at a list page (or its image) that is locked.
unsafe fn opaque(page: pg_sys::Page) -> *mut ListPageOpaque {
    // SAFETY: the special space lies at the end of the page, 8-byte aligned like the page.
    unsafe { page.cast::<u8>().add(special_offset()).cast() }
}

/// # Safety
/// As `opaque`.
unsafe fn data(page: pg_sys::Page) -> *mut u8 {
    // SAFETY: the data area starts right after the header.
    unsafe { page.cast::<u8>().add(CONTENTS) }
}

/// # Safety
/// `index` must be open; the caller releases the pinned, locked buffer.
unsafe fn lock_meta(index: pg_sys::Relation, mode: u32) -> (pg_sys::Buffer, MetaPage) {
    // SAFETY: forwarded from the caller.
    unsafe { metapage::lock(index, mode) }
}

/// Appends one row; returns how many entries the list holds since its last cut.
///
/// # Safety
/// `index` must be an open hannoy index relation, locked for inserts.
pub unsafe fn append(
    index: pg_sys::Relation,
    key: u64,
    vector: &[u8],
    filters: &[u8],
    dimensions: u32,
) -> u64 {
    // SAFETY: `index` is open (the caller's contract). The metapage stays pinned and exclusively
    // locked from `lock_meta` until it is released on each way out (`refuse_other_dimensions`
    // releases it before raising), so no other backend reads or changes the list meanwhile.
    unsafe {
        let (meta_buffer, mut meta) = lock_meta(index, pg_sys::BUFFER_LOCK_EXCLUSIVE);
        if meta.needs_rebuild != 0 {
            // REINDEX reads every row from the heap: nothing to keep until then.
            pg_sys::UnlockReleaseBuffer(meta_buffer);
            return 0;
        }
        refuse_other_dimensions(index, meta_buffer, &meta, dimensions);
        meta.dimensions = dimensions;
        meta.vector_bytes = vector.len() as u32;
        let xid = pg_sys::GetCurrentTransactionId();
        let bytes = encode_entry(meta.next_seq, key, xid, vector, filters);
        write_entry(index, meta_buffer, &mut meta, &bytes);
        pg_sys::UnlockReleaseBuffer(meta_buffer);
        meta.next_seq - meta.merged_below
    }
}

/// Raises a dimension mismatch (releasing the metapage first) unless the list takes vectors of
/// `dimensions`: the count is not fixed yet, is the same, or was fixed only by rows that rolled
/// back.
///
/// # Safety
/// `meta_buffer` must be `index`'s metapage, exclusively locked by `lock_meta`, read as `meta`.
unsafe fn refuse_other_dimensions(
    index: pg_sys::Relation,
    meta_buffer: pg_sys::Buffer,
    meta: &MetaPage,
    dimensions: u32,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        if meta.dimensions != 0
            && meta.dimensions != dimensions
            && !only_rolled_back_rows(index, meta)
        {
            let expected = meta.dimensions as usize;
            pg_sys::UnlockReleaseBuffer(meta_buffer);
            raise_engine(hannoy_engine::Error::DimensionMismatch {
                expected,
                got: dimensions as usize,
            });
        }
    }
}

/// One entry as the list stores it: the 32-byte header (sequence number, key, vector and
/// filter lengths, inserting transaction, padding), the vector, the filter values, padded to
/// `entry_bytes`.
fn encode_entry(
    seq: u64,
    key: u64,
    xid: pg_sys::TransactionId,
    vector: &[u8],
    filters: &[u8],
) -> Vec<u8> {
    let size = entry_bytes(vector.len(), filters.len());
    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(&seq.to_ne_bytes());
    bytes.extend_from_slice(&key.to_ne_bytes());
    bytes.extend_from_slice(&(vector.len() as u32).to_ne_bytes());
    bytes.extend_from_slice(&(filters.len() as u32).to_ne_bytes());
    bytes.extend_from_slice(&xid.into_inner().to_ne_bytes());
    bytes.extend_from_slice(&0u32.to_ne_bytes());
    bytes.extend_from_slice(vector);
    bytes.extend_from_slice(filters);
    bytes.resize(size, 0);
    bytes
}

/// Writes the entry `bytes`, numbered `meta.next_seq`, at the end of the list, in as many
/// generic WAL records as its pages need; the last one also moves the metapage's end past it.
///
/// # Safety
/// `meta_buffer` must be `index`'s metapage, exclusively locked by `lock_meta`, read as `meta`.
unsafe fn write_entry(
    index: pg_sys::Relation,
    meta_buffer: pg_sys::Buffer,
    meta: &mut MetaPage,
    bytes: &[u8],
) {
    let seq = meta.next_seq;
    let mut written = 0;
    // Records before the last change list pages only, beyond the end the metapage names:
    // a crash between them leaves bytes that the next append overwrites.
    while written < bytes.len() {
        // SAFETY: forwarded from the caller; each record is finished before the next starts.
        unsafe {
            let mut record = ListRecord::start(index, seq);
            written = record.fill(meta, bytes, written);
            if written == bytes.len() {
                meta.next_seq = seq + 1;
                record.put_meta(meta_buffer, meta);
            }
            record.finish();
        }
    }
}

/// One generic WAL record of an append: the list pages it changes (at most
/// `LIST_PAGES_PER_RECORD`), each pinned and exclusively locked while registered, and written
/// only through the record's page images.
struct ListRecord {
    index: pg_sys::Relation,
    state: *mut pg_sys::GenericXLogState,
    /// The sequence number of the entry being appended.
    seq: u64,
    /// The registered list pages: block, buffer and the record's image of the page.
    pages: Vec<(pg_sys::BlockNumber, pg_sys::Buffer, pg_sys::Page)>,
}

impl ListRecord {
    /// Starts a record for the entry numbered `seq`.
    ///
    /// # Safety
    /// `index` must be an open hannoy index relation whose metapage the caller holds
    /// exclusively until `finish`.
    unsafe fn start(index: pg_sys::Relation, seq: u64) -> ListRecord {
        ListRecord {
            index,
            // SAFETY: forwarded from the caller.
            state: unsafe { pg_sys::GenericXLogStart(index) },
            seq,
            pages: Vec::new(),
        }
    }

    /// Whether list page `block` is registered with the record already.
    fn holds(&self, block: pg_sys::BlockNumber) -> bool {
        self.pages.iter().any(|(b, _, _)| *b == block)
    }

    /// The record's image of list page `block`, registered (locked) at its first use.
    ///
    /// # Safety
    /// `block` must be a page of the list, named by the metapage the caller holds.
    unsafe fn page(&mut self, block: pg_sys::BlockNumber) -> pg_sys::Page {
        if let Some(&(_, _, page)) = self.pages.iter().find(|(b, _, _)| *b == block) {
            return page;
        }
        // SAFETY: forwarded from the caller; the buffer stays pinned and locked until `finish`.
        unsafe {
            let buffer = pg_sys::ReadBuffer(self.index, block);
            pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
            let page = pg_sys::GenericXLogRegisterBuffer(self.state, buffer, 0);
            self.pages.push((block, buffer, page));
            page
        }
    }

    /// Writes `bytes` from `written` on, into the tail page and new pages after it, until all
    /// are written or the record holds as many pages as it may; returns how far it got.
    ///
    /// # Safety
    /// As `start`; `meta` is the locked metapage's contents, updated as the list grows.
    unsafe fn fill(&mut self, meta: &mut MetaPage, bytes: &[u8], mut written: usize) -> usize {
        let cap = capacity();
        while written < bytes.len() {
            if meta.tail != pg_sys::InvalidBlockNumber && (meta.tail_used as usize) < cap {
                if self.pages.len() == LIST_PAGES_PER_RECORD && !self.holds(meta.tail) {
                    break;
                }
                // SAFETY: forwarded from the caller; the tail is a page of the list.
                written += unsafe { self.write_into_tail(meta, &bytes[written..], written == 0) };
                continue;
            }
            // SAFETY: forwarded from the caller.
            if !unsafe { self.add_page(meta) } {
                break;
            }
        }
        written
    }

    /// Copies as much of `rest` as the tail page has room for; returns how much.
    /// `starts_entry`: `rest` begins an entry, which the page then records if it is its first.
    ///
    /// # Safety
    /// As `fill`, with a tail page that has room.
    unsafe fn write_into_tail(
        &mut self,
        meta: &mut MetaPage,
        rest: &[u8],
        starts_entry: bool,
    ) -> usize {
        let used = meta.tail_used as usize;
        let n = (capacity() - used).min(rest.len());
        // SAFETY: the tail is a page of the list (the caller's contract), and its image belongs
        // to this record; `used + n` is at most `capacity()`, so the copy stays in the data area.
        unsafe {
            let page = self.page(meta.tail);
            std::ptr::copy_nonoverlapping(rest.as_ptr(), data(page).add(used), n);
            let op = &mut *opaque(page);
            if starts_entry && (op.first_entry == NO_ENTRY || op.first_entry as usize > used) {
                op.first_entry = used as u16;
            }
            op.last_seq = self.seq;
            (*page.cast::<pg_sys::PageHeaderData>()).pd_lower = (CONTENTS + used + n) as u16;
        }
        meta.tail_used += n as u32;
        n
    }

    /// Links a new (or freed) page after the tail and makes it the tail; false when the record
    /// has no room for it (and for the old tail, unless it holds it already).
    ///
    /// # Safety
    /// As `fill`.
    unsafe fn add_page(&mut self, meta: &mut MetaPage) -> bool {
        let has_tail = meta.tail != pg_sys::InvalidBlockNumber;
        let tail_needs_slot = has_tail && !self.holds(meta.tail);
        if self.pages.len() + 1 + tail_needs_slot as usize > LIST_PAGES_PER_RECORD {
            return false;
        }
        // SAFETY: the new page is registered with a full image and initialised in it; the old
        // tail is a page of the list.
        unsafe {
            let (block, buffer) = new_page(self.index, meta);
            let page = pg_sys::GenericXLogRegisterBuffer(
                self.state,
                buffer,
                pg_sys::GENERIC_XLOG_FULL_IMAGE as i32,
            );
            pg_sys::PageInit(
                page,
                pg_sys::BLCKSZ as usize,
                std::mem::size_of::<ListPageOpaque>(),
            );
            opaque(page).write(ListPageOpaque {
                next: pg_sys::InvalidBlockNumber,
                first_entry: NO_ENTRY,
                _reserved: 0,
                last_seq: self.seq,
            });
            self.pages.push((block, buffer, page));
            if has_tail {
                let tail = self.page(meta.tail);
                (*opaque(tail)).next = block;
            } else {
                meta.head = block;
            }
            meta.tail = block;
            meta.tail_used = 0;
        }
        true
    }

    /// Puts `meta` into the record's image of the metapage.
    ///
    /// # Safety
    /// `meta_buffer` must be the index's metapage, exclusively locked by the caller.
    unsafe fn put_meta(&mut self, meta_buffer: pg_sys::Buffer, meta: &MetaPage) {
        // SAFETY: forwarded from the caller.
        unsafe {
            let meta_page = pg_sys::GenericXLogRegisterBuffer(self.state, meta_buffer, 0);
            metapage::put(meta_page, meta);
        }
    }

    /// Writes the record and releases its list pages.
    fn finish(self) {
        // SAFETY: the state was started by `start` and is finished once, here; the buffers were
        // pinned and locked by `page` or `new_page`.
        unsafe {
            pg_sys::GenericXLogFinish(self.state);
            for (_, buffer, _) in self.pages {
                pg_sys::UnlockReleaseBuffer(buffer);
            }
        }
    }
}

/// Whether the dimension count in `meta` was fixed by rows that all rolled back: the engine was
/// never changed (a merge would have fixed the count there) and every entry in the list comes
/// from a transaction that did not commit.
///
/// # Safety
/// `index` must be an open hannoy index relation whose metapage the caller holds locked.
unsafe fn only_rolled_back_rows(index: pg_sys::Relation, meta: &MetaPage) -> bool {
    if meta.position != 0 || meta.intent != 0 {
        return false;
    }
    let mut all = true;
    // SAFETY: forwarded from the caller; the lock keeps the chain as it is.
    unsafe {
        walk(index, meta, 0, |entry| {
            all = rolled_back(entry.xid);
            if all {
                Walk::Go
            } else {
                Walk::Stop
            }
        })
    };
    all
}

/// Writes `meta` into the exclusively locked metapage through a WAL record and releases it.
///
/// # Safety
/// `meta_buffer` must be block 0 of `index`, pinned and exclusively locked by `lock_meta`.
unsafe fn log_meta_and_release(
    index: pg_sys::Relation,
    meta_buffer: pg_sys::Buffer,
    meta: &MetaPage,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        metapage::log(index, meta_buffer, meta);
        pg_sys::UnlockReleaseBuffer(meta_buffer);
    }
}

/// A page for the list: a freed one, or a new block. Returned pinned and exclusively locked.
///
/// # Safety
/// The caller holds the metapage exclusively and registers the page with a full image.
unsafe fn new_page(
    index: pg_sys::Relation,
    meta: &mut MetaPage,
) -> (pg_sys::BlockNumber, pg_sys::Buffer) {
    // SAFETY: freed pages belong to no list (only this metapage, which we hold, names them).
    unsafe {
        if meta.free_head != pg_sys::InvalidBlockNumber {
            let block = meta.free_head;
            let buffer = pg_sys::ReadBuffer(index, block);
            pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
            meta.free_head = (*opaque(pg_sys::BufferGetPage(buffer))).next;
            return (block, buffer);
        }
        let buffer = metapage::new_block(index);
        (pg_sys::BufferGetBlockNumber(buffer), buffer)
    }
}

/// Reads the list, giving `each` every entry the engine snapshot lacks, in sequence order,
/// until it says stop. `snapshot` runs first, while neither the list nor the metapage can
/// change: it opens the engine snapshot the caller will read next to the list (checking it
/// against the metapage) and returns the snapshot's log position; entries below it are in that
/// snapshot and left out. Its error ends the read.
///
/// # Safety
/// `index` must be an open hannoy index relation.
pub(super) unsafe fn read<E>(
    index: pg_sys::Relation,
    snapshot: impl FnOnce(&MetaPage) -> Result<u64, E>,
    each: impl FnMut(EntryRef<'_>) -> Walk,
) -> Result<ListState, E> {
    // SAFETY: the metapage is share-locked for the whole walk, so no append or cut changes the
    // chain.
    unsafe {
        let (meta_buffer, meta) = lock_meta(index, pg_sys::BUFFER_LOCK_SHARE);
        let lsn = pg_sys::BufferGetLSNAtomic(meta_buffer);
        let merged = match snapshot(&meta) {
            Ok(merged) => merged,
            Err(e) => {
                pg_sys::UnlockReleaseBuffer(meta_buffer);
                return Err(e);
            }
        };
        if merged > meta.next_seq {
            // The engine holds more than the list ever had: the relation and the folder come
            // from different times, which the identity check missed.
            pg_sys::UnlockReleaseBuffer(meta_buffer);
            raise(
                PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
                "hannoy index storage is ahead of its pending list",
                Some("The index folder does not belong with this relation; rebuild the index with REINDEX."),
            );
        }
        // Entries below the last cut are merged, or were left out of it as rolled back.
        let reached = walk(index, &meta, merged.max(meta.merged_below), each);
        pg_sys::UnlockReleaseBuffer(meta_buffer);
        Ok(ListState {
            end_seq: meta.next_seq,
            reached,
            lsn,
            dimensions: meta.dimensions,
        })
    }
}

/// Gives `each` the list's entries from sequence number `from` on, page by page: one page and
/// one entry's bytes are held at a time. Entries of another size than the index's vectors are
/// rows of a dimension count given up because all its rows rolled back; they are skipped.
/// Returns the sequence number of the first entry not given.
///
/// # Safety
/// `index` must be an open hannoy index relation whose metapage `meta` the caller holds locked.
unsafe fn walk(
    index: pg_sys::Relation,
    meta: &MetaPage,
    from: u64,
    mut each: impl FnMut(EntryRef<'_>) -> Walk,
) -> u64 {
    let broken = || -> ! { raise_corrupt("the pending list's chain of pages is broken") };
    let mut carry: Vec<u8> = Vec::new();
    // SAFETY: each list page is pinned and share-locked while its bytes are copied, and copies
    // stay inside its data area; the caller's lock on the metapage keeps the chain.
    unsafe {
        let blocks =
            pg_sys::RelationGetNumberOfBlocksInFork(index, pg_sys::ForkNumber::MAIN_FORKNUM);
        let mut block = meta.head;
        let mut first = true;
        let mut walked = 0;
        while block != pg_sys::InvalidBlockNumber {
            walked += 1;
            if block >= blocks || walked > blocks {
                broken();
            }
            let buffer = pg_sys::ReadBuffer(index, block);
            pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_SHARE as i32);
            let page = pg_sys::BufferGetPage(buffer);
            let op = *opaque(page);
            let end = if block == meta.tail {
                meta.tail_used as usize
            } else {
                capacity()
            };
            let start = if !first {
                0
            } else if op.first_entry == NO_ENTRY {
                end
            } else {
                (op.first_entry as usize).min(end)
            };
            // A page whose entries all lie below `from`, with no entry continuing from it into
            // the next, needs no copy.
            let skip = op.last_seq < from && carry.is_empty() && block != meta.tail;
            if !skip {
                carry.extend_from_slice(std::slice::from_raw_parts(
                    data(page).add(start),
                    end - start,
                ));
            }
            pg_sys::UnlockReleaseBuffer(buffer);
            let mut parsed = 0;
            while let Some(size) = complete_entry(&carry[parsed..]) {
                let bytes = &carry[parsed..parsed + size];
                parsed += size;
                let entry = parse(bytes, meta.dimensions);
                if entry.seq < from || entry.vector.len() != meta.vector_bytes as usize {
                    continue;
                }
                let seq = entry.seq;
                if each(entry) == Walk::Stop {
                    return seq + 1;
                }
            }
            carry.drain(..parsed);
            if block == meta.tail {
                break;
            }
            block = op.next;
            // A skipped page ended on an entry boundary only if the next page's first entry
            // starts at its beginning; otherwise start at that page's first entry.
            first = skip;
        }
    }
    if !carry.is_empty() {
        raise_corrupt("the pending list ends inside an entry");
    }
    meta.next_seq
}

/// The size of the entry `bytes` starts with, if all of it is there.
fn complete_entry(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < ENTRY_HEADER {
        return None;
    }
    let half = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let size = entry_bytes(half(16) as usize, half(20) as usize);
    (bytes.len() >= size).then_some(size)
}

fn parse(bytes: &[u8], dimensions: u32) -> EntryRef<'_> {
    let word = |at: usize| u64::from_ne_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let half = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let (len, filter_len) = (half(16) as usize, half(20) as usize);
    let filters_at = ENTRY_HEADER + len;
    EntryRef {
        seq: word(0),
        key: word(8),
        xid: pg_sys::TransactionId::from(half(24)),
        vector: &bytes[ENTRY_HEADER..filters_at],
        filters: &bytes[filters_at..filters_at + filter_len],
        dimensions,
    }
}

/// Frees the list's pages whose every entry is below `merged_below`, which the engine now holds.
///
/// # Safety
/// `index` must be an open hannoy index relation.
pub unsafe fn cut(index: pg_sys::Relation, merged_below: u64) {
    // SAFETY: the metapage is held exclusively, so nothing else walks or changes the chain;
    // list pages are only read here (share-locked); the metapage changes through a record.
    unsafe {
        let (meta_buffer, mut meta) = lock_meta(index, pg_sys::BUFFER_LOCK_EXCLUSIVE);
        let mut freed = Vec::new();
        let mut block = meta.head;
        while block != pg_sys::InvalidBlockNumber {
            let buffer = pg_sys::ReadBuffer(index, block);
            pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_SHARE as i32);
            let op = *opaque(pg_sys::BufferGetPage(buffer));
            pg_sys::UnlockReleaseBuffer(buffer);
            if op.last_seq >= merged_below {
                break;
            }
            freed.push(block);
            block = if block == meta.tail {
                pg_sys::InvalidBlockNumber
            } else {
                op.next
            };
        }
        if freed.is_empty() && meta.merged_below >= merged_below {
            pg_sys::UnlockReleaseBuffer(meta_buffer);
            return;
        }
        meta.merged_below = meta.merged_below.max(merged_below);
        let state = pg_sys::GenericXLogStart(index);
        let mut last_freed = None;
        if let (Some(&first), Some(&last)) = (freed.first(), freed.last()) {
            // The freed pages are a prefix of the list, linked in order: hang the old free
            // list after the last of them and they become its front.
            let buffer = pg_sys::ReadBuffer(index, last);
            pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
            let page = pg_sys::GenericXLogRegisterBuffer(state, buffer, 0);
            (*opaque(page)).next = meta.free_head;
            meta.free_head = first;
            last_freed = Some(buffer);
        }
        meta.head = block;
        if block == pg_sys::InvalidBlockNumber {
            meta.tail = pg_sys::InvalidBlockNumber;
            meta.tail_used = 0;
        }
        let page = pg_sys::GenericXLogRegisterBuffer(state, meta_buffer, 0);
        metapage::put(page, &meta);
        pg_sys::GenericXLogFinish(state);
        if let Some(buffer) = last_freed {
            pg_sys::UnlockReleaseBuffer(buffer);
        }
        pg_sys::UnlockReleaseBuffer(meta_buffer);
    }
}

/// Records the dimension count a build found, so that inserts check against it without
/// opening the engine.
///
/// # Safety
/// `index` must be an open hannoy index relation.
pub unsafe fn set_dimensions(index: pg_sys::Relation, dimensions: u32, vector_bytes: usize) {
    // SAFETY: the metapage is exclusively locked while it changes through a record.
    unsafe {
        let (meta_buffer, mut meta) = lock_meta(index, pg_sys::BUFFER_LOCK_EXCLUSIVE);
        meta.dimensions = dimensions;
        meta.vector_bytes = vector_bytes as u32;
        log_meta_and_release(index, meta_buffer, &meta);
    }
}
