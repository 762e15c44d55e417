//! Heap TIDs as the engine's item keys.

use pgrx::pg_sys;

/// A heap TID as the engine's item key: block number above the offset, so keys sort like TIDs.
pub fn tid_key(tid: &pg_sys::ItemPointerData) -> u64 {
    let (block, offset) = pgrx::itemptr::item_pointer_get_both(*tid);
    ((block as u64) << 16) | offset as u64
}

/// The heap TID an item key stands for.
pub fn key_tid(key: u64, tid: &mut pg_sys::ItemPointerData) {
    pgrx::itemptr::item_pointer_set_all(tid, (key >> 16) as u32, key as u16);
}
