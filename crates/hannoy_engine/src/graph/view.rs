//! Graph views over LMDB: the committed graph as a reader sees it, and that graph plus a batch of
//! new vectors held in memory while they are being linked in.

use heed::RoTxn;

use super::GraphView;
use crate::distance::{Metric, PreparedVectors};
use crate::error::Result;
use crate::storage::{MetaRecord, Store};
use crate::ItemId;

#[derive(Clone, Copy)]
pub(crate) struct LmdbView<'t> {
    pub txn: &'t RoTxn<'t>,
    pub store: Store,
    pub meta: &'t MetaRecord,
}

impl<'t> LmdbView<'t> {
    pub fn new(txn: &'t RoTxn<'t>, store: Store, meta: &'t MetaRecord) -> Self {
        LmdbView { txn, store, meta }
    }
}

impl GraphView for LmdbView<'_> {
    fn metric(&self) -> Metric {
        self.meta.metric()
    }

    #[inline]
    fn vector(&self, id: ItemId) -> Result<&[u8]> {
        self.store.vector(self.txn, self.meta, id)
    }

    #[inline]
    fn neighbours(&self, id: ItemId, layer: usize, out: &mut Vec<ItemId>) -> Result<()> {
        if let Some(list) = self.store.links(self.txn, id, layer)? {
            out.extend(list.iter());
        }
        Ok(())
    }
}

/// The stored graph plus a batch not yet written: `ids[i]` is the id of `batch.get(i)`, ascending.
pub(crate) struct WithBatch<'t, 'b> {
    pub stored: LmdbView<'t>,
    pub batch: &'b PreparedVectors,
    pub ids: &'b [ItemId],
}

impl<'t, 'b> WithBatch<'t, 'b> {
    pub fn new(stored: LmdbView<'t>, batch: &'b PreparedVectors, ids: &'b [ItemId]) -> Self {
        WithBatch { stored, batch, ids }
    }
}

impl GraphView for WithBatch<'_, '_> {
    fn metric(&self) -> Metric {
        self.stored.metric()
    }

    #[inline]
    fn vector(&self, id: ItemId) -> Result<&[u8]> {
        match self.ids.binary_search(&id) {
            Ok(local) => Ok(self.batch.get(local)),
            Err(_) => self.stored.vector(id),
        }
    }

    /// Only stored links: the batch's own links are merged in by the caller.
    fn neighbours(&self, id: ItemId, layer: usize, out: &mut Vec<ItemId>) -> Result<()> {
        self.stored.neighbours(id, layer, out)
    }
}
