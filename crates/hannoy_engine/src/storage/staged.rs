//! Vectors written ahead of the batch that adds them.
//!
//! A batch written in one transaction holds its vectors twice before the commit: as the caller
//! prepared them, and in LMDB's dirty pages, which stay in memory until then. A caller short of
//! memory (a build, whose batches fill `maintenance_work_mem`) writes them first in
//! transactions of their own (`Index::stage_vectors`), each committed before the next, into the
//! slots of the ids the batch will be given; the batch's transaction then finds them in place
//! and writes none. The record of what was staged is written before the first vector and
//! names the last staging transaction: the batch uses the staged slots only when no other
//! transaction came between and its vectors are the ones staged, and otherwise writes them as
//! usual, over whatever the staging left.

use bytemuck::{Pod, Zeroable};
use heed::{RoTxn, RwTxn};

use super::Store;
use crate::distance::PreparedVectors;
use crate::error::{corrupt, Result};
use crate::ItemId;

pub(super) const STAGED_KEY: &str = "staged";

/// What a staging wrote: `count` vectors from id `first`, and the transaction that finished it
/// (0 while it has not). Stored as its bytes, as `MetaRecord` is.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub(crate) struct StagedRecord {
    pub first: ItemId,
    pub count: u32,
    pub fingerprint: u64,
    pub txn: u64,
}

/// What a batch's transaction finds of a staging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Staging {
    /// None: the vectors' chunks past the stored items do not exist.
    Nothing,
    /// The batch's vectors, in their slots.
    InPlace,
    /// Some other staging's leftovers, which the batch's vectors overwrite.
    Leftovers,
}

impl Store {
    pub(crate) fn read_staged(&self, txn: &RoTxn) -> Result<Option<StagedRecord>> {
        match self.meta.get(txn, STAGED_KEY)? {
            None => Ok(None),
            Some(bytes) if bytes.len() == std::mem::size_of::<StagedRecord>() => {
                Ok(Some(bytemuck::pod_read_unaligned(bytes)))
            }
            Some(bytes) => Err(corrupt(format!("staged record has {} bytes", bytes.len()))),
        }
    }

    pub(crate) fn write_staged(&self, wtxn: &mut RwTxn, record: StagedRecord) -> Result<()> {
        Ok(self
            .meta
            .put(wtxn, STAGED_KEY, bytemuck::bytes_of(&record))?)
    }

    /// Whether `batch`, given `ids`, was staged by the transaction just before `wtxn`; the
    /// record is removed either way, as this transaction's writes make it stale.
    pub(crate) fn take_staged(
        &self,
        wtxn: &mut RwTxn,
        ids: &[ItemId],
        batch: &PreparedVectors,
    ) -> Result<Staging> {
        let Some(record) = self.read_staged(wtxn)? else {
            return Ok(Staging::Nothing);
        };
        self.meta.delete(wtxn, STAGED_KEY)?;
        let just_before = record.txn != 0 && record.txn + 1 == wtxn.id() as u64;
        let same_ids = record.count as usize == ids.len()
            && ids
                .iter()
                .enumerate()
                .all(|(i, &id)| id as u64 == record.first as u64 + i as u64);
        if just_before && same_ids && record.fingerprint == batch.fingerprint() {
            Ok(Staging::InPlace)
        } else {
            Ok(Staging::Leftovers)
        }
    }
}
