//! Graph views over LMDB: the committed graph as a reader sees it, and that graph plus a batch of
//! new vectors held in memory while they are being linked in.

use std::cell::RefCell;

use heed::{RoTxn, WithoutTls};

use super::{GraphView, VectorBytes};
use crate::codes::{CodedQuery, Quantizer};
use crate::distance::{Metric, PreparedVectors};
use crate::error::{corrupt, Result};
use crate::storage::{
    advice, ChunkTable, CodedList, LinkList, LinkTable, MetaRecord, StatusLink, Store,
};
use crate::ItemId;

#[derive(Clone, Copy)]
pub(crate) struct LmdbView<'t> {
    pub txn: &'t RoTxn<'t>,
    pub store: Store,
    pub meta: &'t MetaRecord,
    /// Set only through `with_chunks`, together with the transaction the tables belong to.
    chunks: Option<&'t ChunkTable>,
    links: Option<&'t LinkTable>,
    codes: Option<Codes<'t>>,
    /// Whether `prefetch` asks the kernel for pages (`storage::advice`) besides the CPU for
    /// cache lines: for walks over pages that are not in memory.
    advise: bool,
}

/// The index's codes as a reader sees them: the quantizer they were made with and the table of
/// where their chunks lie.
#[derive(Clone, Copy)]
pub(crate) struct Codes<'t> {
    pub quantizer: &'t Quantizer,
    /// None: each code is found through the B-tree (`LmdbView::decoding`).
    table: Option<&'t ChunkTable>,
}

impl<'t> LmdbView<'t> {
    pub fn new(txn: &'t RoTxn<'t>, store: Store, meta: &'t MetaRecord) -> Self {
        LmdbView {
            txn,
            store,
            meta,
            chunks: None,
            links: None,
            codes: None,
            advise: false,
        }
    }

    /// A view that reads vectors through `chunks` and, if given, layer-0 lists through
    /// `links`.
    ///
    /// # Safety
    /// The tables must be used with `txn` only, and nothing may write through `txn` (see
    /// `Store::vector_via`).
    pub unsafe fn with_chunks(
        txn: &'t RoTxn<'t>,
        store: Store,
        meta: &'t MetaRecord,
        chunks: &'t ChunkTable,
        links: Option<&'t LinkTable>,
    ) -> Self {
        LmdbView {
            txn,
            store,
            meta,
            chunks: Some(chunks),
            links,
            codes: None,
            advise: false,
        }
    }

    /// The same view, scoring with `quantizer`'s codes where a walk asks for estimates.
    ///
    /// # Safety
    /// As `with_chunks`, for `table`: used with this view's transaction only.
    pub unsafe fn with_codes(self, quantizer: &'t Quantizer, table: &'t ChunkTable) -> Self {
        LmdbView {
            codes: Some(Codes {
                quantizer,
                table: Some(table),
            }),
            ..self
        }
    }

    /// The same view, decoding vectors from `quantizer`'s codes if the index keeps no full
    /// vectors (`quantizer` is then the index's, `None` only while it holds no item): for a
    /// writer's view, whose transaction moves pages between reads, so no address is kept.
    pub fn decoding(self, quantizer: Option<&'t Quantizer>) -> Self {
        match quantizer {
            Some(quantizer) if self.codes.is_none() && !self.meta.keeps_vectors() => LmdbView {
                codes: Some(Codes {
                    quantizer,
                    table: None,
                }),
                ..self
            },
            _ => self,
        }
    }

    pub fn codes(&self) -> Option<Codes<'t>> {
        self.codes
    }

    /// The same view, its `prefetch` asking the kernel for pages if `advise`.
    pub fn advising(self, advise: bool) -> Self {
        LmdbView { advise, ..self }
    }

    /// Whether the page that `id`'s code (with `codes`) or vector starts on is not in memory:
    /// asked of the item every walk starts from (or of a few a scan reads), it tells a cold
    /// index from a warm one.
    pub fn is_cold(&self, id: ItemId, codes: bool) -> bool {
        let bytes = match self.codes {
            Some(table) if codes || !self.meta.keeps_vectors() => self.code(table, id),
            _ => self.stored_vector(id),
        };
        bytes.is_ok_and(|b| !advice::resident(b))
    }

    /// `id`'s code in stored form.
    #[inline]
    fn code(&self, codes: Codes<'_>, id: ItemId) -> Result<&[u8]> {
        match codes.table {
            // SAFETY: `codes.table` was given with this view's transaction (`with_codes`),
            // which is read-only.
            Some(table) => unsafe { self.store.code_via(self.txn, self.meta, table, id) },
            None => self.store.code(self.txn, self.meta, id),
        }
    }

    /// `query`, in stored form, prepared for estimates from `codes`.
    pub fn coded_query(&self, codes: Codes<'_>, query: &[u8]) -> Result<CodedQuery> {
        let input = crate::codes::stored::code_input(self.metric(), query).unwrap_or_default();
        codes.quantizer.prepare(&input)
    }

    /// The metric's score of `id` estimated from its code; the view must have codes.
    #[inline]
    pub fn estimate(&self, codes: Codes<'_>, query: &CodedQuery, id: ItemId) -> Result<f32> {
        Ok(self.estimate_code(codes, query, self.code(codes, id)?))
    }

    /// The metric's score of `id` at the near end of its code's estimate: the estimate less
    /// its error bound (`Estimate::bound`), below the exact score but for rare codes.
    #[inline]
    pub fn least_estimate(&self, codes: Codes<'_>, query: &CodedQuery, id: ItemId) -> Result<f32> {
        let estimate = codes.quantizer.estimate(query, self.code(codes, id)?);
        Ok(crate::codes::stored::score_of_estimate(
            self.metric(),
            estimate.distance - estimate.bound,
            query.square(),
            estimate.square,
        ))
    }

    /// The metric's score estimated from `code`, in stored form.
    #[inline]
    pub fn estimate_code(&self, codes: Codes<'_>, query: &CodedQuery, code: &[u8]) -> f32 {
        let estimate = codes.quantizer.estimate(query, code);
        crate::codes::stored::score_of_estimate(
            self.metric(),
            estimate.distance,
            query.square(),
            estimate.square,
        )
    }

    /// `id`'s list on `layer` with its neighbours' codes, if the index keeps them.
    #[inline]
    pub fn coded_list(&self, id: ItemId, layer: usize) -> Result<Option<CodedList<'t>>> {
        match self.links {
            // SAFETY: only `with_chunks` sets `links`, under the contract it states.
            Some(table) if layer == 0 => unsafe {
                self.store
                    .layer0_coded_list_via(self.txn, self.meta, table, id)
            },
            _ => self.store.coded_list(self.txn, self.meta, id, layer),
        }
    }

    /// A lower bound of the metric's score of `id` from its code, never above the score of
    /// its vector (`Quantizer::lower_bound`); the view must have codes.
    #[inline]
    pub fn lower_bound(&self, codes: Codes<'_>, query: &CodedQuery, id: ItemId) -> Result<f32> {
        let code = self.code(codes, id)?;
        let bound = codes.quantizer.lower_bound(query, code);
        Ok(crate::codes::stored::score_of_lower_bound(
            self.metric(),
            bound.distance,
            query.square(),
            bound.square,
            codes.quantizer.dims(),
        ))
    }

    /// Hints that `id`'s code is about to be read, if its chunk's place is known; when advising,
    /// finds the chunk and asks the kernel for the code's page.
    #[inline]
    pub fn prefetch_code(&self, codes: Codes<'_>, id: ItemId, advise: bool) {
        if advise {
            if let Ok(code) = self.code(codes, id) {
                advice::will_need(code);
            }
            return;
        }
        let bytes = self.meta.code_bytes as usize;
        let (chunk_no, range) =
            crate::storage::chunks::locate(id, self.meta.codes_per_chunk as usize, bytes);
        if let Some(address) = codes.table.and_then(|t| t.known(chunk_no)) {
            crate::distance::prefetch((address + range.start) as *const u8, bytes);
        }
    }
}

/// A read-only transaction with the tables of where its vector chunks and layer-0 lists lie
/// (`ChunkTable`, `LinkTable`): the only way to a view that reads through them, so a table never
/// meets another transaction.
pub(crate) struct CachedTxn<'w> {
    txn: RoTxn<'w, WithoutTls>,
    chunks: ChunkTable,
    links: LinkTable,
    /// For an index that keeps codes: their quantizer and where their chunks lie. An index
    /// without full vectors decodes its vectors with them; one with them searches on them
    /// while linking new items (`graph::insert`).
    codes: Option<(Quantizer, ChunkTable)>,
}

impl<'w> CachedTxn<'w> {
    /// `meta` sizes the table; it must be the record `txn` reads.
    pub fn new(txn: RoTxn<'w, WithoutTls>, store: Store, meta: &MetaRecord) -> Result<Self> {
        let codes = crate::codes::stored::load(store, &txn, meta)?
            .map(|quantizer| (quantizer, ChunkTable::for_codes(meta)));
        Ok(CachedTxn {
            chunks: ChunkTable::new(meta),
            links: LinkTable::new(meta),
            codes,
            txn,
        })
    }

    pub fn view<'s>(&'s self, store: Store, meta: &'s MetaRecord) -> LmdbView<'s> {
        // SAFETY: the tables are this transaction's own, and the transaction is read-only.
        let view = unsafe {
            LmdbView::with_chunks(&self.txn, store, meta, &self.chunks, Some(&self.links))
        };
        match &self.codes {
            // SAFETY: as above, for the code table.
            Some((quantizer, table)) => unsafe { view.with_codes(quantizer, table) },
            None => view,
        }
    }
}

impl GraphView for LmdbView<'_> {
    fn metric(&self) -> Metric {
        self.meta.metric()
    }

    #[inline]
    fn vector(&self, id: ItemId) -> Result<VectorBytes<'_>> {
        if !self.meta.keeps_vectors() {
            return self.decode(id, true).map(VectorBytes::Decoded);
        }
        self.stored_vector(id).map(VectorBytes::Borrowed)
    }

    /// As the default, without a `VectorBytes` in the hot path of an index with vectors.
    #[inline]
    fn score(&self, query: &[u8], id: ItemId) -> Result<f32> {
        if self.meta.keeps_vectors() {
            Ok(self.between(query, self.stored_vector(id)?))
        } else {
            Ok(self.between(query, &self.vector(id)?))
        }
    }

    #[inline]
    fn neighbours(&self, id: ItemId, layer: usize, out: &mut Vec<ItemId>) -> Result<()> {
        if let Some(list) = self.list(id, layer)? {
            out.extend(list.iter());
        }
        Ok(())
    }

    #[inline]
    fn prefetch(&self, id: ItemId) {
        self.prefetch_vector(id, self.advise)
    }
}

impl<'t> LmdbView<'t> {
    /// `id`'s full vector as stored; the index must keep them.
    #[inline]
    fn stored_vector(&self, id: ItemId) -> Result<&'t [u8]> {
        match self.chunks {
            // SAFETY: only `CachedTxn::view` sets `chunks`, with its own transaction, which is
            // read-only: nothing writes through it.
            Some(table) => unsafe { self.store.vector_via(self.txn, self.meta, table, id) },
            None => self.store.vector(self.txn, self.meta, id),
        }
    }

    /// `id`'s vector decoded from its code, in stored form: `rotated`, as an index that keeps no
    /// full vectors links and repairs with it, against vectors of its own rotated alike
    /// (`codes::stored::rotated`), or rotated back, as the caller gave it.
    pub(crate) fn decode(&self, id: ItemId, rotated: bool) -> Result<Vec<u8>> {
        let codes = self
            .codes
            .ok_or_else(|| corrupt("an index without full vectors read without its codes"))?;
        let code = self.code(codes, id)?;
        let floats = match rotated {
            true => codes.quantizer.decode_rotated(code),
            false => codes.quantizer.decode(code),
        }
        .ok_or_else(|| corrupt("binary codes cannot stand for full vectors"))?;
        Ok(crate::distance::stored_from_floats(self.metric(), floats))
    }

    /// Hints that `id`'s vector is about to be read. Without `advise`, only vectors whose chunk
    /// has been looked up already: finding one would cost the B-tree descent that the read
    /// itself pays anyway. With it, a page that is not in memory costs far more than the
    /// descent: the chunk is found and its page asked for.
    #[inline]
    pub fn prefetch_vector(&self, id: ItemId, advise: bool) {
        if !self.meta.keeps_vectors() {
            if let Some(codes) = self.codes {
                self.prefetch_code(codes, id, advise);
            }
            return;
        }
        if advise {
            if let Ok(vector) = self.stored_vector(id) {
                advice::will_need(vector);
            }
            return;
        }
        if let Some(table) = self.chunks {
            let vector_bytes = self.meta.vector_bytes as usize;
            let (chunk_no, range) = crate::storage::chunks::locate(
                id,
                self.meta.vectors_per_chunk as usize,
                vector_bytes,
            );
            if let Some(address) = table.known(chunk_no) {
                crate::distance::prefetch((address + range.start) as *const u8, vector_bytes);
            }
        }
    }
}

/// A view that scores the query with the codes: for the descent to the walk's seeds, so that
/// the whole search up to the exact re-ranking reads codes only.
pub(crate) struct Coded<'v, 't> {
    view: &'v LmdbView<'t>,
    codes: Codes<'t>,
    /// The query in stored form, as the search passes it to `score`, and prepared for codes.
    query: &'v [u8],
    coded: &'v CodedQuery,
    /// The codes that came with the last list read, where lists keep their neighbours' codes:
    /// a search scores the nodes of a list right after reading it.
    last_list: RefCell<Option<CodedList<'t>>>,
}

impl<'v, 't> Coded<'v, 't> {
    pub fn new(
        view: &'v LmdbView<'t>,
        codes: Codes<'t>,
        query: &'v [u8],
        coded: &'v CodedQuery,
    ) -> Self {
        Coded {
            view,
            codes,
            query,
            coded,
            last_list: RefCell::new(None),
        }
    }

    /// `id`'s code from the last list read, if it was there.
    #[inline]
    fn listed_code(&self, id: ItemId) -> Option<&'t [u8]> {
        let list = (*self.last_list.borrow())?;
        list.iter().find(|&(n, _)| n == id).map(|(_, code)| code)
    }
}

impl GraphView for Coded<'_, '_> {
    fn metric(&self) -> Metric {
        self.view.metric()
    }

    #[inline]
    fn vector(&self, id: ItemId) -> Result<VectorBytes<'_>> {
        self.view.vector(id)
    }

    #[inline]
    fn neighbours(&self, id: ItemId, layer: usize, out: &mut Vec<ItemId>) -> Result<()> {
        let list = self.view.coded_list(id, layer)?;
        *self.last_list.borrow_mut() = list;
        match list {
            Some(list) => {
                out.extend(list.links().iter());
                Ok(())
            }
            None => self.view.neighbours(id, layer, out),
        }
    }

    #[inline]
    fn prefetch(&self, id: ItemId) {
        if self.last_list.borrow().is_none() {
            self.view.prefetch_code(self.codes, id, self.view.advise)
        }
    }

    /// An estimate for the query; an exact score for anything else a search scores against
    /// (a beam's test of whether two items are copies scores one item's vector against
    /// another), which only the query's own bytes, by address, tell apart.
    #[inline]
    fn score(&self, query: &[u8], id: ItemId) -> Result<f32> {
        if std::ptr::eq(query, self.query) {
            match self.listed_code(id) {
                Some(code) => Ok(self.view.estimate_code(self.codes, self.coded, code)),
                None => self.view.estimate(self.codes, self.coded, id),
            }
        } else {
            self.view.score(query, id)
        }
    }
}

/// The stored graph of an index that keeps codes beside its vectors, searched for one query:
/// scores are exact, but a node whose code's estimate, less the estimate's error bound, puts it
/// past a search's worst is passed over unread (RaBitQ's rule for choosing what to re-rank).
/// A search so keeps what it keeps on the vectors alone, but for the rare item whose estimate
/// errs past its bound (docs/quantization.md, "Writes", says how rare), reading a code of tens
/// of bytes for most of the nodes it passes instead of their vectors.
pub(crate) struct Bounded<'v, 't> {
    view: &'v LmdbView<'t>,
    codes: Codes<'t>,
    /// The query in stored form, as the search passes it, and prepared for codes.
    query: &'v [u8],
    coded: &'v CodedQuery,
}

impl<'v, 't> Bounded<'v, 't> {
    pub fn new(
        view: &'v LmdbView<'t>,
        codes: Codes<'t>,
        query: &'v [u8],
        coded: &'v CodedQuery,
    ) -> Self {
        Bounded {
            view,
            codes,
            query,
            coded,
        }
    }
}

impl GraphView for Bounded<'_, '_> {
    const BOUNDS_SCORES: bool = true;

    fn metric(&self) -> Metric {
        self.view.metric()
    }

    #[inline]
    fn vector(&self, id: ItemId) -> Result<VectorBytes<'_>> {
        self.view.vector(id)
    }

    #[inline]
    fn score(&self, query: &[u8], id: ItemId) -> Result<f32> {
        self.view.score(query, id)
    }

    #[inline]
    fn neighbours(&self, id: ItemId, layer: usize, out: &mut Vec<ItemId>) -> Result<()> {
        self.view.neighbours(id, layer, out)
    }

    #[inline]
    fn prefetch(&self, id: ItemId) {
        self.view.prefetch(id)
    }

    /// Only the query this view was made for has a coded form to bound with.
    #[inline]
    fn may_reach(&self, query: &[u8], id: ItemId, worst: f32) -> Result<bool> {
        if !std::ptr::eq(query, self.query) {
            return Ok(true);
        }
        Ok(self.view.least_estimate(self.codes, self.coded, id)? <= worst)
    }

    #[inline]
    fn prefetch_bound(&self, id: ItemId) {
        self.view.prefetch_code(self.codes, id, false)
    }
}

impl<'t> LmdbView<'t> {
    #[inline]
    fn list(&self, id: ItemId, layer: usize) -> Result<Option<LinkList<'t>>> {
        match self.links {
            // SAFETY: only `with_chunks` sets `links`, under the contract it states.
            Some(table) if layer == 0 => unsafe {
                self.store.layer0_links_via(self.txn, table, id)
            },
            _ => self.store.links(self.txn, id, layer),
        }
    }

    /// `id`'s links on `layer`, each with whether it is diverse.
    pub fn links_with_status(
        &self,
        id: ItemId,
        layer: usize,
        out: &mut Vec<StatusLink>,
    ) -> Result<()> {
        if let Some(list) = self.list(id, layer)? {
            out.extend(list.with_status());
        }
        Ok(())
    }

    /// Hints that `id`'s layer-0 list is about to be read, if its place is known already.
    #[inline]
    pub fn prefetch_links(&self, id: ItemId) {
        if let Some(table) = self.links {
            if let Some((address, len)) = table.known(id) {
                crate::distance::prefetch(address as *const u8, len);
            }
        }
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
    fn vector(&self, id: ItemId) -> Result<VectorBytes<'_>> {
        match self.ids.binary_search(&id) {
            Ok(local) => Ok(VectorBytes::Borrowed(self.batch.get(local))),
            Err(_) => self.stored.vector(id),
        }
    }

    #[inline]
    fn score(&self, query: &[u8], id: ItemId) -> Result<f32> {
        match self.ids.binary_search(&id) {
            Ok(local) => Ok(self.between(query, self.batch.get(local))),
            Err(_) => self.stored.score(query, id),
        }
    }

    /// Only stored links: the batch's own links are merged in by the caller.
    fn neighbours(&self, id: ItemId, layer: usize, out: &mut Vec<ItemId>) -> Result<()> {
        self.stored.neighbours(id, layer, out)
    }

    /// Stored vectors only: the batch's are in memory the build has just read.
    #[inline]
    fn prefetch(&self, id: ItemId) {
        if self.ids.binary_search(&id).is_err() {
            self.stored.prefetch(id);
        }
    }
}
