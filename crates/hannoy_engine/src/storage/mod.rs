//! The LMDB layout of one index.
//!
//! | database        | key                                  | value                                       |
//! |-----------------|--------------------------------------|---------------------------------------------|
//! | `meta`          | `"meta"`, `"items"`, `"log"`, `"stamp"`, `"centroid"` | [`MetaRecord`]; live ids (roaring); u64 log position; the caller's [`crate::Stamp`]; the codes' centroid (f32s) |
//! | `vectors`       | chunk number (u32, integer)          | `vectors_per_chunk` stored vectors          |
//! | `codes`         | chunk number (u32, integer)          | `codes_per_chunk` codes (`crate::codes`)    |
//! | `links`         | `layer << 32 \| id` (u64)            | neighbour ids, native-endian u32s, the top bit set on filler links |
//! | `keys`          | id (u32, integer)                    | the caller's key for the item (u64)         |
//! | `key_ids`       | key (u64, integer)                   | the item holding that key (u32)             |
//! | `filter_values` | column (u16 BE), tag, value (bytes)  | the items under that key (roaring)          |
//! | `item_filters`  | id (u32, integer)                    | the `filter_values` keys the item is under  |
//!
//! Every live item has a links entry on each of its layers (possibly empty), so the highest
//! layer present is the graph's top and an item's layers can be found by probing. Free ids are
//! the holes below `next_id` in the live bitmap: no separate free list to keep in step.
//! Keys are optional and one-to-one: the access method keys items by heap TID.
//! Filter values are optional too; `crate::filter` describes their keys.
//! Other named databases in the same environment belong to the caller (the access method).

pub(crate) mod advice;
pub(crate) mod chunks;
pub(crate) mod meta;
pub(crate) mod neighbour_codes;
pub(crate) mod staged;

use std::cell::Cell;

use heed::byteorder::NativeEndian;
use heed::types::{Bytes, Str, U32, U64};
use heed::{
    Database, DatabaseOpenOptions, Env, IntegerComparator, PutFlags, RoTxn, RwTxn, WithoutTls,
};
use roaring::RoaringBitmap;

use crate::error::{corrupt, Result};
use crate::filter::FilterStore;
use crate::{ItemId, Stamp};
pub(crate) use meta::MetaRecord;
use neighbour_codes::CodedListsDb;
pub(crate) use neighbour_codes::{CodeCopies, CodedList};

/// Databases the engine reserves in an environment.
pub const ENGINE_DATABASES: u32 = 9;

const CODED_LISTS: &str = "hannoy.coded_lists";

const META_KEY: &str = "meta";
const ITEMS_KEY: &str = "items";
const LOG_POSITION_KEY: &str = "log";
const STAMP_KEY: &str = "stamp";
const CENTROID_KEY: &str = "centroid";

/// A database of items packed several to a value (see `chunks`), keyed by chunk number.
type Chunks = Database<U32<NativeEndian>, Bytes, IntegerComparator>;

/// Where one kind of slot lies: the vectors or the codes.
#[derive(Clone, Copy)]
struct Slots {
    db: Chunks,
    per_chunk: usize,
    bytes: usize,
    what: &'static str,
}

#[derive(Clone, Copy)]
pub(crate) struct Store {
    meta: Database<Str, Bytes>,
    vectors: Chunks,
    links: Database<U64<NativeEndian>, Bytes, IntegerComparator>,
    keys: Database<U32<NativeEndian>, U64<NativeEndian>, IntegerComparator>,
    key_ids: Database<U64<NativeEndian>, U32<NativeEndian>, IntegerComparator>,
    /// `None` only in an environment older than the codes; refused by version like `filters`.
    codes: Option<Chunks>,
    /// `None` only in an environment older than the filter databases, which the format
    /// version check refuses before anything reads or writes through the store.
    filters: Option<FilterStore>,
    /// Link lists with their neighbours' codes (`neighbour_codes`); `None` only in an
    /// environment older than them, refused by version like `filters`.
    coded_lists: Option<CodedListsDb>,
}

/// The key of an item's link list on a layer: the layer above the id, so one layer's lists are
/// one key range.
#[inline]
pub(crate) fn link_key(layer: usize, id: ItemId) -> u64 {
    ((layer as u64) << 32) | id as u64
}

/// The (owner, layer) a link key names: `link_key` undone.
#[inline]
pub(crate) fn link_owner_layer(key: u64) -> (ItemId, usize) {
    (key as ItemId, (key >> 32) as usize)
}

/// The top bit of a stored link marks it filler: the selection heuristic found a closer link
/// of the list that dominates it, so it is the first to go when the list overflows. Knowing it
/// saves a list taking in a new link from re-deciding which of its links are diverse, which
/// costs a distance per pair. Ids stay below it (`insert::allocate_ids`).
const FILLER: u32 = 1 << 31;

/// A stored link: its id, and whether it is diverse (not filler).
pub(crate) type StatusLink = (ItemId, bool);

/// The first id that cannot be stored in a link list.
pub(crate) const ID_LIMIT: u64 = FILLER as u64;

/// A stored neighbour list, decoded as it is iterated: LMDB only guarantees 2-byte alignment for
/// inline values, so the u32s are read from the mapped bytes without a cast or a copy.
#[derive(Clone, Copy)]
pub(crate) struct LinkList<'t>(&'t [u8]);

impl<'t> LinkList<'t> {
    fn words(self) -> impl Iterator<Item = u32> + 't {
        self.0
            .chunks_exact(4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn iter(self) -> impl Iterator<Item = ItemId> + 't {
        self.words().map(|w| w & !FILLER)
    }

    /// Every link with whether it is diverse (not filler).
    pub fn with_status(self) -> impl Iterator<Item = StatusLink> + 't {
        self.words().map(|w| (w & !FILLER, w & FILLER == 0))
    }
}

/// `ids` in stored form: `diverse[i]` says whether `ids[i]` is diverse; links past its end are
/// (links added to keep a node reachable, which no prune should take first).
fn encode_links(ids: &[ItemId], diverse: &[bool]) -> Vec<u8> {
    ids.iter()
        .enumerate()
        .flat_map(|(i, &id)| {
            debug_assert!((id as u64) < ID_LIMIT);
            let word = if diverse.get(i) == Some(&false) {
                id | FILLER
            } else {
                id
            };
            word.to_ne_bytes()
        })
        .collect()
}

/// Options of a database keyed by native-endian integers and sorted as integers.
pub(crate) fn integer_keyed<'e: 'n, 'n, K: 'static, V: 'static>(
    env: &'e Env<WithoutTls>,
    name: &'n str,
) -> DatabaseOpenOptions<'e, 'n, WithoutTls, K, V, IntegerComparator> {
    env.database_options()
        .types::<K, V>()
        .name(name)
        .key_comparator::<IntegerComparator>()
}

impl Store {
    pub fn create(env: &Env<WithoutTls>, wtxn: &mut RwTxn) -> Result<Store> {
        Ok(Store {
            meta: env.create_database(wtxn, Some("hannoy.meta"))?,
            vectors: integer_keyed::<U32<NativeEndian>, Bytes>(env, "hannoy.vectors")
                .create(wtxn)?,
            links: integer_keyed::<U64<NativeEndian>, Bytes>(env, "hannoy.links").create(wtxn)?,
            keys: integer_keyed::<U32<NativeEndian>, U64<NativeEndian>>(env, "hannoy.keys")
                .create(wtxn)?,
            key_ids: integer_keyed::<U64<NativeEndian>, U32<NativeEndian>>(env, "hannoy.key_ids")
                .create(wtxn)?,
            filters: Some(FilterStore::create(env, wtxn)?),
            codes: Some(
                integer_keyed::<U32<NativeEndian>, Bytes>(env, "hannoy.codes").create(wtxn)?,
            ),
            coded_lists: Some(
                integer_keyed::<U64<NativeEndian>, Bytes>(env, CODED_LISTS).create(wtxn)?,
            ),
        })
    }

    /// `None` when the environment holds no index. The filter databases are not required: an
    /// environment from before them must still open as an index, so that its metadata is read
    /// and refused by version (and `Index::create` does not write over it).
    pub fn open(env: &Env<WithoutTls>, rtxn: &RoTxn) -> Result<Option<Store>> {
        let meta = env.open_database(rtxn, Some("hannoy.meta"))?;
        let vectors =
            integer_keyed::<U32<NativeEndian>, Bytes>(env, "hannoy.vectors").open(rtxn)?;
        let links = integer_keyed::<U64<NativeEndian>, Bytes>(env, "hannoy.links").open(rtxn)?;
        let keys =
            integer_keyed::<U32<NativeEndian>, U64<NativeEndian>>(env, "hannoy.keys").open(rtxn)?;
        let key_ids = integer_keyed::<U64<NativeEndian>, U32<NativeEndian>>(env, "hannoy.key_ids")
            .open(rtxn)?;
        let filters = FilterStore::open(env, rtxn)?;
        let codes = integer_keyed::<U32<NativeEndian>, Bytes>(env, "hannoy.codes").open(rtxn)?;
        let coded_lists = integer_keyed::<U64<NativeEndian>, Bytes>(env, CODED_LISTS).open(rtxn)?;
        Ok(match (meta, vectors, links, keys, key_ids) {
            (Some(meta), Some(vectors), Some(links), Some(keys), Some(key_ids)) => Some(Store {
                meta,
                vectors,
                links,
                keys,
                key_ids,
                filters,
                codes,
                coded_lists,
            }),
            _ => None,
        })
    }

    pub fn read_meta(&self, txn: &RoTxn) -> Result<Option<MetaRecord>> {
        self.meta
            .get(txn, META_KEY)?
            .map(MetaRecord::decode)
            .transpose()
    }

    pub fn require_meta(&self, txn: &RoTxn) -> Result<MetaRecord> {
        self.read_meta(txn)?
            .ok_or_else(|| corrupt("metadata record missing"))
    }

    pub fn write_meta(&self, wtxn: &mut RwTxn, meta: &MetaRecord) -> Result<()> {
        Ok(self.meta.put(wtxn, META_KEY, bytemuck::bytes_of(meta))?)
    }

    pub fn read_items(&self, txn: &RoTxn) -> Result<RoaringBitmap> {
        match self.meta.get(txn, ITEMS_KEY)? {
            None => Ok(RoaringBitmap::new()),
            Some(bytes) => RoaringBitmap::deserialize_from(bytes)
                .map_err(|e| corrupt(format!("live item bitmap: {e}"))),
        }
    }

    /// The caller's position in a log of its own (0 until set); see `Writer::set_log_position`.
    pub fn read_log_position(&self, txn: &RoTxn) -> Result<u64> {
        match self.meta.get(txn, LOG_POSITION_KEY)? {
            None => Ok(0),
            Some(bytes) => bytes
                .try_into()
                .map(u64::from_ne_bytes)
                .map_err(|_| corrupt(format!("log position has {} bytes", bytes.len()))),
        }
    }

    pub fn write_log_position(&self, wtxn: &mut RwTxn, position: u64) -> Result<()> {
        Ok(self
            .meta
            .put(wtxn, LOG_POSITION_KEY, &position.to_ne_bytes())?)
    }

    /// The caller's stamp; `None` until a writer set one (see `Writer::set_stamp`).
    pub fn read_stamp(&self, txn: &RoTxn) -> Result<Option<Stamp>> {
        match self.meta.get(txn, STAMP_KEY)? {
            None => Ok(None),
            Some(bytes) if bytes.len() == 16 => {
                let word =
                    |at: usize| u64::from_ne_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
                Ok(Some(Stamp {
                    owner: word(0),
                    position: word(8),
                }))
            }
            Some(bytes) => Err(corrupt(format!("stamp has {} bytes", bytes.len()))),
        }
    }

    pub fn write_stamp(&self, wtxn: &mut RwTxn, stamp: Stamp) -> Result<()> {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&stamp.owner.to_ne_bytes());
        bytes[8..].copy_from_slice(&stamp.position.to_ne_bytes());
        Ok(self.meta.put(wtxn, STAMP_KEY, &bytes)?)
    }

    pub fn write_items(&self, wtxn: &mut RwTxn, items: &RoaringBitmap) -> Result<()> {
        let mut bytes = Vec::with_capacity(items.serialized_size());
        items.serialize_into(&mut bytes)?;
        Ok(self.meta.put(wtxn, ITEMS_KEY, &bytes)?)
    }

    /// The full vectors' slots; an error for an index that keeps none (`MetaRecord::
    /// keeps_vectors`), whose readers decode codes instead.
    #[inline]
    fn vector_slots(&self, meta: &MetaRecord) -> Result<Slots> {
        if !meta.keeps_vectors() {
            return Err(corrupt(
                "a full vector was asked of an index that keeps none",
            ));
        }
        Ok(Slots {
            db: self.vectors,
            per_chunk: meta.vectors_per_chunk as usize,
            bytes: meta.vector_bytes as usize,
            what: "vector",
        })
    }

    /// The codes' slots, if the index keeps codes.
    fn code_slots(&self, meta: &MetaRecord) -> Result<Option<Slots>> {
        if meta.code_bits == 0 {
            return Ok(None);
        }
        let db = self
            .codes
            .ok_or_else(|| corrupt("the index keeps codes and has no codes database"))?;
        Ok(Some(Slots {
            db,
            per_chunk: meta.codes_per_chunk as usize,
            bytes: meta.code_bytes as usize,
            what: "code",
        }))
    }

    fn require_code_slots(&self, meta: &MetaRecord) -> Result<Slots> {
        self.code_slots(meta)?
            .ok_or_else(|| corrupt("a code was asked of an index without codes"))
    }

    /// The stored vector of `id`, borrowed from the memory map.
    #[inline]
    pub fn vector<'t>(&self, txn: &'t RoTxn, meta: &MetaRecord, id: ItemId) -> Result<&'t [u8]> {
        self.vector_slots(meta)?.get(txn, id)
    }

    /// The stored code of `id`.
    pub fn code<'t>(&self, txn: &'t RoTxn, meta: &MetaRecord, id: ItemId) -> Result<&'t [u8]> {
        self.require_code_slots(meta)?.get(txn, id)
    }

    /// As `vector`, remembering in `table` where the chunk lies so that the next read of any
    /// vector in it skips the B-tree.
    ///
    /// # Safety
    /// `table` must only ever be used with `txn`, and nothing may write through `txn` while it
    /// lives: the table holds addresses of `txn`'s pages, which stay put only under those terms.
    #[inline]
    pub unsafe fn vector_via<'t>(
        &self,
        txn: &'t RoTxn,
        meta: &MetaRecord,
        table: &ChunkTable,
        id: ItemId,
    ) -> Result<&'t [u8]> {
        // SAFETY: forwarded from the caller.
        unsafe { self.vector_slots(meta)?.get_via(txn, table, id) }
    }

    /// As `code`, through `table` as `vector_via` reads vectors (with the same contract).
    ///
    /// # Safety
    /// As `vector_via`, with a table of code chunks.
    #[inline]
    pub unsafe fn code_via<'t>(
        &self,
        txn: &'t RoTxn,
        meta: &MetaRecord,
        table: &ChunkTable,
        id: ItemId,
    ) -> Result<&'t [u8]> {
        // SAFETY: forwarded from the caller.
        unsafe { self.require_code_slots(meta)?.get_via(txn, table, id) }
    }

    /// Asks the kernel for the pages holding the vectors of `ids` (ascending) without waiting
    /// for them: before a scan of vectors that are out of memory, so that their pages are read
    /// together (`advice`). One request per chunk, from its first asked-for vector to its last.
    pub fn advise_vectors(
        &self,
        txn: &RoTxn,
        meta: &MetaRecord,
        ids: impl Iterator<Item = ItemId>,
    ) -> Result<()> {
        self.vector_slots(meta)?.advise(txn, ids)
    }

    /// Calls `f` with the stored vector of each id (ascending), reading each chunk once: an
    /// exact scan would otherwise pay a B-tree lookup per item, more than the distance itself.
    pub fn for_each_vector<'t>(
        &self,
        txn: &'t RoTxn,
        meta: &MetaRecord,
        ids: impl Iterator<Item = ItemId>,
        f: impl FnMut(ItemId, &'t [u8]) -> Result<()>,
    ) -> Result<()> {
        self.vector_slots(meta)?.for_each(txn, ids, f)
    }

    /// Writes stored vectors for `ids` (ascending), rewriting each touched chunk once; nothing
    /// for an index that keeps no full vectors (its codes are written on their own).
    pub fn put_vectors<'v>(
        &self,
        wtxn: &mut RwTxn,
        meta: &MetaRecord,
        items: impl Iterator<Item = (ItemId, &'v [u8])>,
        append: bool,
    ) -> Result<()> {
        if !meta.keeps_vectors() {
            return Ok(());
        }
        self.vector_slots(meta)?.put(wtxn, items, append)
    }

    /// Writes codes for `ids` (ascending), as `put_vectors`.
    pub fn put_codes<'v>(
        &self,
        wtxn: &mut RwTxn,
        meta: &MetaRecord,
        items: impl Iterator<Item = (ItemId, &'v [u8])>,
        append: bool,
    ) -> Result<()> {
        self.require_code_slots(meta)?.put(wtxn, items, append)
    }

    /// Deletes the vector and code chunks that held some of `freed` and hold no item of `live`
    /// any more, so their pages return to the free list instead of being copied on the next
    /// write.
    pub fn delete_empty_chunks(
        &self,
        wtxn: &mut RwTxn,
        meta: &MetaRecord,
        freed: &RoaringBitmap,
        live: &RoaringBitmap,
    ) -> Result<()> {
        if meta.keeps_vectors() {
            self.vector_slots(meta)?.delete_empty(wtxn, freed, live)?;
        }
        if let Some(codes) = self.code_slots(meta)? {
            codes.delete_empty(wtxn, freed, live)?;
        }
        Ok(())
    }

    /// The centroid the index's codes are made from, if it has one yet.
    pub fn read_centroid(&self, txn: &RoTxn) -> Result<Option<Vec<f32>>> {
        match self.meta.get(txn, CENTROID_KEY)? {
            None => Ok(None),
            Some(bytes) if bytes.len() % 4 == 0 => Ok(Some(bytemuck::pod_collect_to_vec(bytes))),
            Some(bytes) => Err(corrupt(format!("centroid has {} bytes", bytes.len()))),
        }
    }

    pub fn write_centroid(&self, wtxn: &mut RwTxn, centroid: &[f32]) -> Result<()> {
        Ok(self
            .meta
            .put(wtxn, CENTROID_KEY, bytemuck::cast_slice(centroid))?)
    }

    #[inline]
    pub fn links<'t>(
        &self,
        txn: &'t RoTxn,
        id: ItemId,
        layer: usize,
    ) -> Result<Option<LinkList<'t>>> {
        Ok(self.links.get(txn, &link_key(layer, id))?.map(LinkList))
    }

    /// As `links` on layer 0, remembering in `table` where the list lies.
    ///
    /// # Safety
    /// As `vector_via`: `table` must only ever be used with `txn`, and nothing may write
    /// through `txn` while it lives.
    #[inline]
    pub unsafe fn layer0_links_via<'t>(
        &self,
        txn: &'t RoTxn,
        table: &LinkTable,
        id: ItemId,
    ) -> Result<Option<LinkList<'t>>> {
        // SAFETY: the caller's contract.
        let bytes = unsafe {
            remembered(&table.places, id, || {
                Ok(self.links(txn, id, 0)?.map(|LinkList(bytes)| bytes))
            })
        };
        Ok(bytes?.map(LinkList))
    }

    /// Writes `id`'s list on `layer`: `ids`, with `diverse` as `encode_links` reads it (and,
    /// where the index keeps them, with the codes of `ids`, which must be stored already, read
    /// through `copies`).
    #[allow(clippy::too_many_arguments)]
    pub fn put_links(
        &self,
        wtxn: &mut RwTxn,
        meta: &MetaRecord,
        id: ItemId,
        layer: usize,
        ids: &[ItemId],
        diverse: &[bool],
        append: bool,
        copies: &mut CodeCopies,
    ) -> Result<()> {
        let flags = if append {
            PutFlags::APPEND
        } else {
            PutFlags::empty()
        };
        let links = encode_links(ids, diverse);
        self.links
            .put_with_flags(wtxn, flags, &link_key(layer, id), &links)?;
        self.put_coded_list(wtxn, meta, id, layer, &links, flags, copies)
    }

    /// Empties the vectors, links, keys and filter values: dropping whole B-trees frees their
    /// pages without copying any, where deleting entries one by one copies each page first.
    pub fn clear_items(&self, wtxn: &mut RwTxn) -> Result<()> {
        if let Some(filters) = self.filters {
            filters.clear(wtxn)?;
        }
        self.vectors.clear(wtxn)?;
        if let Some(codes) = self.codes {
            codes.clear(wtxn)?;
        }
        self.links.clear(wtxn)?;
        if let Some(coded_lists) = self.coded_lists {
            coded_lists.clear(wtxn)?;
        }
        self.keys.clear(wtxn)?;
        Ok(self.key_ids.clear(wtxn)?)
    }

    pub fn delete_links(
        &self,
        wtxn: &mut RwTxn,
        meta: &MetaRecord,
        id: ItemId,
        layer: usize,
    ) -> Result<bool> {
        self.delete_coded_list(wtxn, meta, id, layer)?;
        Ok(self.links.delete(wtxn, &link_key(layer, id))?)
    }

    pub fn filters(&self) -> Option<FilterStore> {
        self.filters
    }

    pub fn key_of(&self, txn: &RoTxn, id: ItemId) -> Result<Option<u64>> {
        Ok(self.keys.get(txn, &id)?)
    }

    pub fn item_of(&self, txn: &RoTxn, key: u64) -> Result<Option<ItemId>> {
        Ok(self.key_ids.get(txn, &key)?)
    }

    pub fn put_key(&self, wtxn: &mut RwTxn, id: ItemId, key: u64) -> Result<()> {
        self.keys.put(wtxn, &id, &key)?;
        Ok(self.key_ids.put(wtxn, &key, &id)?)
    }

    /// Forgets `id`'s key, if it has one.
    pub fn delete_key_of(&self, wtxn: &mut RwTxn, id: ItemId) -> Result<()> {
        if let Some(key) = self.keys.get(wtxn, &id)? {
            self.keys.delete(wtxn, &id)?;
            self.key_ids.delete(wtxn, &key)?;
        }
        Ok(())
    }

    /// Entries of the key -> item map (as many as the item -> key map when consistent).
    pub fn reverse_key_count(&self, txn: &RoTxn) -> Result<u64> {
        Ok(self.key_ids.len(txn)?)
    }

    /// Every (id, key) pair, ascending by id.
    pub fn all_keys<'t>(
        &self,
        txn: &'t RoTxn,
    ) -> Result<impl Iterator<Item = Result<(ItemId, u64)>> + 't> {
        Ok(self.keys.iter(txn)?.map(|entry| Ok(entry?)))
    }

    /// Every links entry in key order: (layer, id, neighbours).
    pub fn all_links<'t>(
        &self,
        txn: &'t RoTxn,
    ) -> Result<impl Iterator<Item = Result<(usize, ItemId, LinkList<'t>)>> + 't> {
        Ok(self.links.iter(txn)?.map(|entry| {
            let (key, value) = entry?;
            let (owner, layer) = link_owner_layer(key);
            Ok((layer, owner, LinkList(value)))
        }))
    }

    /// The highest layer that has any entry, and its first item.
    pub fn top_entry(&self, txn: &RoTxn) -> Result<Option<(ItemId, usize)>> {
        let Some((key, _)) = self.links.last(txn)? else {
            return Ok(None);
        };
        let (_, layer) = link_owner_layer(key);
        let first = self
            .links
            .range(txn, &(link_key(layer, 0)..=link_key(layer, u32::MAX)))?
            .next()
            .transpose()?
            .map(|(k, _)| k as u32)
            .unwrap_or(key as u32);
        Ok(Some((first, layer)))
    }

    pub fn stats(&self, txn: &RoTxn) -> Result<StoreStats> {
        let pages =
            |s: &heed::DatabaseStat| (s.branch_pages + s.leaf_pages + s.overflow_pages) as u64;
        let v = self.vectors.stat(txn)?;
        let l = self.links.stat(txn)?;
        let m = self.meta.stat(txn)?;
        let code_pages = match self.codes {
            Some(codes) => pages(&codes.stat(txn)?),
            None => 0,
        };
        let filter_pages = match self.filters {
            Some(filters) => filters.pages(txn)?,
            None => 0,
        };
        let coded_list_pages = match self.coded_lists {
            Some(lists) => pages(&lists.stat(txn)?),
            None => 0,
        };
        Ok(StoreStats {
            coded_list_pages,
            vector_pages: pages(&v),
            link_pages: pages(&l),
            meta_pages: pages(&m),
            filter_pages,
            code_pages,
            link_entries: l.entries as u64,
        })
    }
}

impl Slots {
    fn advise(&self, txn: &RoTxn, ids: impl Iterator<Item = ItemId>) -> Result<()> {
        // (chunk, its bytes, the span of asked-for slots in it)
        let mut current: Option<(u32, &[u8], std::ops::Range<usize>)> = None;
        for id in ids {
            let (chunk_no, range) = chunks::locate(id, self.per_chunk, self.bytes);
            match &mut current {
                Some((no, _, span)) if *no == chunk_no => span.end = range.end,
                _ => {
                    if let Some((_, chunk, span)) = current.take() {
                        advice::will_need(chunk.get(span).unwrap_or(chunk));
                    }
                    current = Some((chunk_no, self.chunk(txn, chunk_no, id)?, range));
                }
            }
        }
        if let Some((_, chunk, span)) = current {
            advice::will_need(chunk.get(span).unwrap_or(chunk));
        }
        Ok(())
    }

    #[inline]
    fn get<'t>(&self, txn: &'t RoTxn, id: ItemId) -> Result<&'t [u8]> {
        let (chunk_no, range) = chunks::locate(id, self.per_chunk, self.bytes);
        self.slot(self.chunk(txn, chunk_no, id)?, chunk_no, range)
    }

    /// # Safety
    /// As `Store::vector_via`.
    #[inline]
    unsafe fn get_via<'t>(
        &self,
        txn: &'t RoTxn,
        table: &ChunkTable,
        id: ItemId,
    ) -> Result<&'t [u8]> {
        let chunk_bytes = self.per_chunk * self.bytes;
        let (chunk_no, range) = chunks::locate(id, self.per_chunk, self.bytes);
        let chunk = match table.addresses.get(chunk_no as usize) {
            // SAFETY: a non-zero address is that of chunk `chunk_no` as `txn` returned it,
            // `chunk_bytes` long (checked when it was stored); by the caller's contract the
            // page is still there, unchanged, for as long as `txn` lives.
            Some(cell) if cell.get() != 0 => unsafe {
                std::slice::from_raw_parts(cell.get() as *const u8, chunk_bytes)
            },
            Some(cell) => {
                let chunk = self.chunk(txn, chunk_no, id)?;
                if chunk.len() == chunk_bytes {
                    cell.set(chunk.as_ptr() as usize);
                }
                chunk
            }
            None => self.chunk(txn, chunk_no, id)?,
        };
        self.slot(chunk, chunk_no, range)
    }

    /// The stored chunk `chunk_no`, which holds `id`'s slot.
    #[inline]
    fn chunk<'t>(&self, txn: &'t RoTxn, chunk_no: u32, id: ItemId) -> Result<&'t [u8]> {
        self.db
            .get(txn, &chunk_no)?
            .ok_or_else(|| corrupt(format!("no {} chunk for item {id}", self.what)))
    }

    /// One slot's bytes inside its chunk.
    #[inline]
    fn slot<'c>(
        &self,
        chunk: &'c [u8],
        chunk_no: u32,
        range: std::ops::Range<usize>,
    ) -> Result<&'c [u8]> {
        chunk
            .get(range)
            .ok_or_else(|| corrupt(format!("{} chunk {chunk_no} is truncated", self.what)))
    }

    fn for_each<'t>(
        &self,
        txn: &'t RoTxn,
        ids: impl Iterator<Item = ItemId>,
        mut f: impl FnMut(ItemId, &'t [u8]) -> Result<()>,
    ) -> Result<()> {
        let mut current: Option<(u32, &'t [u8])> = None;
        for id in ids {
            let (chunk_no, range) = chunks::locate(id, self.per_chunk, self.bytes);
            let chunk = match current {
                Some((no, bytes)) if no == chunk_no => bytes,
                _ => {
                    let bytes = self.chunk(txn, chunk_no, id)?;
                    current = Some((chunk_no, bytes));
                    bytes
                }
            };
            f(id, self.slot(chunk, chunk_no, range)?)?;
        }
        Ok(())
    }

    fn put<'v>(
        &self,
        wtxn: &mut RwTxn,
        mut items: impl Iterator<Item = (ItemId, &'v [u8])>,
        append: bool,
    ) -> Result<()> {
        let mut pending = items.next();
        while let Some((first, _)) = pending {
            let chunk_no = first / self.per_chunk as u32;
            let mut chunk: Vec<u8> = match self.db.get(wtxn, &chunk_no)? {
                Some(existing) => existing.to_vec(),
                None => vec![0; self.per_chunk * self.bytes],
            };
            while let Some((id, bytes)) = pending {
                let (c, range) = chunks::locate(id, self.per_chunk, self.bytes);
                if c != chunk_no {
                    break;
                }
                chunk[range].copy_from_slice(bytes);
                pending = items.next();
            }
            let flags = if append {
                PutFlags::APPEND
            } else {
                PutFlags::empty()
            };
            self.db.put_with_flags(wtxn, flags, &chunk_no, &chunk)?;
        }
        Ok(())
    }

    fn delete_empty(
        &self,
        wtxn: &mut RwTxn,
        freed: &RoaringBitmap,
        live: &RoaringBitmap,
    ) -> Result<()> {
        let per_chunk = self.per_chunk as u32;
        let mut last = None;
        for id in freed {
            let chunk_no = id / per_chunk;
            if last == Some(chunk_no) {
                continue;
            }
            last = Some(chunk_no);
            let first = chunk_no as u64 * per_chunk as u64;
            let end = (first + per_chunk as u64).min(1 << 32);
            if live.range_cardinality(first as u32..=(end - 1) as u32) == 0 {
                self.db.delete(wtxn, &chunk_no)?;
            }
        }
        Ok(())
    }
}

/// Where each vector chunk a read transaction has looked up lies in memory (zero: not looked up
/// yet). A search reads the same chunks over and over, and each read was a B-tree descent of
/// three or four binary searches: a third of a batch insert's time went to them.
#[derive(Default)]
pub(crate) struct ChunkTable {
    addresses: Box<[Cell<usize>]>,
}

impl ChunkTable {
    /// A table for the chunks of the ids below `meta.next_id`; later ones are looked up as usual.
    pub fn new(meta: &MetaRecord) -> ChunkTable {
        match meta.keeps_vectors() {
            true => Self::sized(meta.next_id, meta.vectors_per_chunk),
            false => ChunkTable::default(),
        }
    }

    /// As `new`, for the chunks of the codes (none for an index without codes).
    pub fn for_codes(meta: &MetaRecord) -> ChunkTable {
        match meta.code_bits {
            0 => ChunkTable::default(),
            _ => Self::sized(meta.next_id, meta.codes_per_chunk),
        }
    }

    fn sized(items: u32, per_chunk: u32) -> ChunkTable {
        let chunks = (items as usize).div_ceil(per_chunk.max(1) as usize);
        ChunkTable {
            addresses: zeroed_cells(chunks),
        }
    }

    /// The address of chunk `chunk_no` if a read has looked it up already.
    #[inline]
    pub fn known(&self, chunk_no: u32) -> Option<usize> {
        self.addresses
            .get(chunk_no as usize)
            .map(Cell::get)
            .filter(|&a| a != 0)
    }
}

/// Where each layer-0 link list a read transaction has looked up lies: its address and byte
/// length packed in one word (zero: not looked up yet). A search reads one list per node it
/// expands, each a B-tree descent without this table. The same for the lists stored with their
/// neighbours' codes, where the index keeps them.
#[derive(Default)]
pub(crate) struct LinkTable {
    places: Box<[Cell<u64>]>,
    coded_places: Box<[Cell<u64>]>,
}

impl LinkTable {
    /// A table for the ids below `meta.next_id`; later ones are looked up as usual.
    pub fn new(meta: &MetaRecord) -> LinkTable {
        LinkTable {
            places: zeroed_cells(meta.next_id as usize),
            coded_places: zeroed_cells(if meta.neighbour_codes() {
                meta.next_id as usize
            } else {
                0
            }),
        }
    }

    /// The address and byte length of `id`'s list, if a reader has looked it up.
    pub fn known(&self, id: ItemId) -> Option<(usize, usize)> {
        Self::unpack(self.places.get(id as usize)?.get())
    }

    fn unpack(place: u64) -> Option<(usize, usize)> {
        (place != 0).then_some(((place >> 16) as usize, (place & 0xFFFF) as usize))
    }
}

/// `lookup`'s bytes for `id`, through `cells`: from the remembered place if a lookup found it
/// before, else looked up and remembered.
///
/// # Safety
/// Every place stored in `cells` must be that of bytes `lookup` returned from one read-only
/// transaction, and the caller must hold that transaction (the pages stay, unchanged) for as
/// long as the returned bytes live.
#[inline]
unsafe fn remembered<'t>(
    cells: &[Cell<u64>],
    id: ItemId,
    lookup: impl FnOnce() -> Result<Option<&'t [u8]>>,
) -> Result<Option<&'t [u8]>> {
    let Some(cell) = cells.get(id as usize) else {
        return lookup();
    };
    if let Some((address, len)) = LinkTable::unpack(cell.get()) {
        // SAFETY: a known place is the address and byte length of bytes `lookup` returned
        // through the caller's transaction, whose pages are still there, unchanged.
        return Ok(Some(unsafe {
            std::slice::from_raw_parts(address as *const u8, len)
        }));
    }
    let found = lookup()?;
    if let Some(bytes) = found {
        let address = bytes.as_ptr() as u64;
        // Stored only when both fit (user-space addresses have 47 bits on x86_64); bytes that
        // do not are looked up every time.
        if address >> 48 == 0 && !bytes.is_empty() && bytes.len() <= 0xFFFF {
            cell.set(address << 16 | bytes.len() as u64);
        }
    }
    Ok(found)
}

/// `len` zeroed cells from one zeroed allocation: for a large index the allocator maps fresh
/// zero pages, so a reader that touches a few hundred entries pays for those pages only, not
/// for the whole table.
fn zeroed_cells<T: Copy + bytemuck::Zeroable>(len: usize) -> Box<[Cell<T>]> {
    let zeroed: Box<[T]> = vec![T::zeroed(); len].into_boxed_slice();
    // SAFETY: Cell<T> has the same layout as T (repr(transparent)), so the allocation of a
    // boxed slice of T is valid as a boxed slice of Cell<T> of the same length.
    unsafe { Box::from_raw(Box::into_raw(zeroed) as *mut [Cell<T>]) }
}

/// Page counts per database, to report where the disk goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreStats {
    pub vector_pages: u64,
    pub link_pages: u64,
    pub meta_pages: u64,
    /// Both filter databases.
    pub filter_pages: u64,
    pub code_pages: u64,
    /// Lists with their neighbours' codes (`IndexOptions::neighbour_codes`).
    pub coded_list_pages: u64,
    pub link_entries: u64,
}
