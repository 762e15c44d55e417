//! Link lists stored with their neighbours' codes (`IndexOptions::neighbour_codes`).
//!
//! The value of a node on a layer is its list as `hannoy.links` holds it, followed by the code
//! of each node it links, in the same order. A walk on codes expands a node by reading that one
//! value, where it would otherwise read each neighbour's code from wherever its chunk lies: from
//! a cold cache that is a page or two per expanded node instead of a page per distance. The
//! values are derived from the lists and the codes: rewritten whenever a list is written, and
//! all of them when the codes are taken anew.

use std::collections::HashMap;

use heed::types::{Bytes, U64};
use heed::{byteorder::NativeEndian, Database, IntegerComparator, PutFlags, RoTxn, RwTxn};

use super::{link_key, remembered, LinkList, LinkTable, MetaRecord, Store};
use crate::error::{corrupt, Result};
use crate::ItemId;

pub(crate) type CodedListsDb = Database<U64<NativeEndian>, Bytes, IntegerComparator>;

/// Copies of the code chunks that a run of list writes has read, so that each chunk is found in
/// the B-tree once instead of once per link (a write transaction's lookups also search its
/// dirty pages). Copies rather than addresses: a write transaction's pages move as it writes.
/// Valid while no code is written, which a run of list writes never does; a delete freeing
/// codes in between leaves stale only codes that no list written after it links.
#[derive(Default)]
pub(crate) struct CodeCopies {
    chunks: HashMap<u32, Vec<u8>>,
    bytes: usize,
}

/// Past this many bytes of copies the oldest are dropped (all of them: the next reads copy
/// again), so a run over a large index holds a bounded share of its codes.
const CODE_COPIES_BYTES: usize = 64 << 20;

impl CodeCopies {
    /// `id`'s code, from a copy of its chunk.
    fn code<'c>(
        &'c mut self,
        store: &Store,
        txn: &RoTxn,
        meta: &MetaRecord,
        id: ItemId,
    ) -> Result<&'c [u8]> {
        let slots = store.require_code_slots(meta)?;
        let (chunk_no, range) = super::chunks::locate(id, slots.per_chunk, slots.bytes);
        if !self.chunks.contains_key(&chunk_no) {
            let chunk = slots.chunk(txn, chunk_no, id)?;
            if self.bytes + chunk.len() > CODE_COPIES_BYTES {
                self.chunks.clear();
                self.bytes = 0;
            }
            self.bytes += chunk.len();
            self.chunks.insert(chunk_no, chunk.to_vec());
        }
        slots.slot(&self.chunks[&chunk_no], chunk_no, range)
    }
}

/// A list with the code of each node it links, as a reader sees it.
#[derive(Clone, Copy)]
pub(crate) struct CodedList<'t> {
    /// The whole stored value: the links, then the codes.
    value: &'t [u8],
    links_len: usize,
    code_bytes: usize,
}

impl<'t> CodedList<'t> {
    /// Each linked node with its code in stored form.
    pub fn iter(self) -> impl Iterator<Item = (ItemId, &'t [u8])> + 't {
        let (links, codes) = self.value.split_at(self.links_len);
        LinkList(links)
            .iter()
            .zip(codes.chunks_exact(self.code_bytes))
    }

    pub fn links(self) -> LinkList<'t> {
        LinkList(&self.value[..self.links_len])
    }

    /// The stored value, for asking the kernel for its pages.
    pub fn bytes(self) -> &'t [u8] {
        self.value
    }
}

impl Store {
    /// `id`'s list on `layer` with its neighbours' codes; `None` if it has no list there or the
    /// index does not keep them.
    #[inline]
    pub fn coded_list<'t>(
        &self,
        txn: &'t RoTxn,
        meta: &MetaRecord,
        id: ItemId,
        layer: usize,
    ) -> Result<Option<CodedList<'t>>> {
        let Some(db) = self.coded_lists.filter(|_| meta.neighbour_codes()) else {
            return Ok(None);
        };
        let Some(value) = db.get(txn, &link_key(layer, id))? else {
            return Ok(None);
        };
        split(value, meta.code_bytes as usize).map(Some)
    }

    /// As `coded_list` on layer 0, remembering in `table` where the value lies.
    ///
    /// # Safety
    /// As `Store::layer0_links_via`.
    #[inline]
    pub unsafe fn layer0_coded_list_via<'t>(
        &self,
        txn: &'t RoTxn,
        meta: &MetaRecord,
        table: &LinkTable,
        id: ItemId,
    ) -> Result<Option<CodedList<'t>>> {
        // SAFETY: the caller's contract.
        let value = unsafe {
            remembered(&table.coded_places, id, || {
                Ok(self.coded_list(txn, meta, id, 0)?.map(CodedList::bytes))
            })
        }?;
        value
            .map(|v| split(v, meta.code_bytes as usize))
            .transpose()
    }

    /// Stores `id`'s list `links` (encoded as `hannoy.links` holds it) with its neighbours'
    /// codes, which must be stored already, read through `copies`; nothing when the index does
    /// not keep them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn put_coded_list(
        &self,
        wtxn: &mut RwTxn,
        meta: &MetaRecord,
        id: ItemId,
        layer: usize,
        links: &[u8],
        flags: PutFlags,
        copies: &mut CodeCopies,
    ) -> Result<()> {
        if !meta.neighbour_codes() {
            return Ok(());
        }
        let db = self.require_coded_lists()?;
        let code_bytes = meta.code_bytes as usize;
        let mut value = Vec::with_capacity(links.len() / 4 * (4 + code_bytes));
        value.extend_from_slice(links);
        for n in LinkList(links).iter() {
            value.extend_from_slice(copies.code(self, wtxn, meta, n)?);
        }
        Ok(db.put_with_flags(wtxn, flags, &link_key(layer, id), &value)?)
    }

    pub(super) fn delete_coded_list(
        &self,
        wtxn: &mut RwTxn,
        meta: &MetaRecord,
        id: ItemId,
        layer: usize,
    ) -> Result<()> {
        if meta.neighbour_codes() {
            self.require_coded_lists()?
                .delete(wtxn, &link_key(layer, id))?;
        }
        Ok(())
    }

    /// Writes every list's codes again, after the codes themselves were all written anew.
    pub fn rewrite_coded_lists(&self, wtxn: &mut RwTxn, meta: &MetaRecord) -> Result<()> {
        if !meta.neighbour_codes() {
            return Ok(());
        }
        let db = self.require_coded_lists()?;
        db.clear(wtxn)?;
        let lists = self
            .links
            .iter(wtxn)?
            .map(|entry| entry.map(|(key, value)| (key, value.to_vec())))
            .collect::<heed::Result<Vec<_>>>()?;
        let mut copies = CodeCopies::default();
        for (key, links) in lists {
            let (owner, layer) = super::link_owner_layer(key);
            self.put_coded_list(
                wtxn,
                meta,
                owner,
                layer,
                &links,
                PutFlags::APPEND,
                &mut copies,
            )?;
        }
        Ok(())
    }

    /// How many lists with their neighbours' codes are stored.
    pub fn coded_list_count(&self, txn: &RoTxn) -> Result<u64> {
        match self.coded_lists {
            Some(db) => Ok(db.len(txn)?),
            None => Ok(0),
        }
    }

    fn require_coded_lists(&self) -> Result<CodedListsDb> {
        self.coded_lists.ok_or_else(|| {
            corrupt("the index keeps neighbours' codes and has no database for them")
        })
    }
}

fn split(value: &[u8], code_bytes: usize) -> Result<CodedList<'_>> {
    let per_link = 4 + code_bytes;
    if code_bytes == 0 || !value.len().is_multiple_of(per_link) {
        return Err(corrupt(format!(
            "a list with its neighbours' codes has {} bytes, not a multiple of {per_link}",
            value.len()
        )));
    }
    Ok(CodedList {
        value,
        links_len: value.len() / per_link * 4,
        code_bytes,
    })
}
