//! An index: one LMDB environment holding one graph, opened for reading or writing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use heed::{Env, EnvFlags, EnvOpenOptions, MdbError, RoTxn, RwTxn, WithoutTls};
use roaring::RoaringBitmap;

use crate::check::{check_graph, CheckReport};
use crate::codes::Quantizer;
use crate::distance::{check_dimensions, Metric, PreparedQuery, PreparedVectors, VectorRef};
use crate::error::{corrupt, Error, Result};
use crate::filter::{validate_row, FilterCondition, FilterRow, FilterStore};
use crate::graph::cancel::Watch;
use crate::graph::delete::{delete_items, DeleteStats};
use crate::graph::insert::insert_batch;
use crate::search::{NeighborStream, SearchParams};
use crate::storage::chunks::{vectors_per_chunk, PAGE_SIZE};
use crate::storage::meta::{FLAG_NEIGHBOUR_CODES, FORMAT_VERSION, MAGIC};
use crate::storage::staged::StagedRecord;
use crate::storage::{ChunkTable, LinkTable, MetaRecord, Store, StoreStats, ENGINE_DATABASES};
use crate::{ItemId, Neighbor, Quantization, Stamp};

/// Named databases an environment can hold beyond the engine's, for the caller's own maps.
pub const CALLER_DATABASES: u32 = 11;
/// Only address space until written (the file grows with the data), so start large: growing
/// needs every transaction of this process closed, which a long scan can prevent.
const INITIAL_MAP_SIZE: usize = 1 << 30;
/// Vector bytes one transaction of `Index::stage_vectors` writes at most: small beside a large
/// batch, large enough that its commit's flush is not paid often.
const STAGE_BYTES: usize = 32 << 20;
/// How long a map resize waits for this process's readers to finish before giving up.
const RESIZE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What kind of index to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexOptions {
    pub metric: Metric,
    pub dimensions: usize,
    /// Links per node on the upper layers; layer 0 gets twice as many (pgvector's `m`).
    pub m: usize,
    /// Candidate list size while linking (pgvector's `ef_construction`).
    pub ef_construction: usize,
    /// Seeds the level draw, so a build is reproducible.
    pub seed: u64,
    /// Codes for the graph walk, if any.
    pub quantization: Quantization,
    /// Whether the index keeps each full vector beside its code. Without them (only with RaBitQ
    /// codes of `MIN_BITS_WITHOUT_VECTORS` or more) it is a fraction of the size, new items
    /// are linked against vectors decoded from codes, and a search hands out lower bounds
    /// (`NeighborStream::lower_bounds`) for the caller to re-rank from vectors of its own.
    pub keep_vectors: bool,
    /// Whether each link list is also stored with the codes of the nodes it links (only with
    /// codes): a walk on codes then reads one value per node it expands instead of one code per
    /// neighbour, the pages a query touches from a cold cache fall several-fold, and the index
    /// grows by about `2m` codes a node.
    pub neighbour_codes: bool,
}

impl IndexOptions {
    pub const DEFAULT_M: usize = 16;
    pub const DEFAULT_EF_CONSTRUCTION: usize = 64;

    pub fn new(metric: Metric, dimensions: usize) -> Self {
        IndexOptions {
            metric,
            dimensions,
            m: Self::DEFAULT_M,
            ef_construction: Self::DEFAULT_EF_CONSTRUCTION,
            seed: 0x5eed_6a11_0e57_ab1e,
            quantization: Quantization::None,
            keep_vectors: true,
            neighbour_codes: false,
        }
    }

    /// The fewest bits per coordinate an index without full vectors takes: below four its
    /// lower bounds are too loose to re-rank from (a top-10 query re-checks hundreds of rows at
    /// three bits, nearly every row at one; docs/quantization.md).
    pub const MIN_BITS_WITHOUT_VECTORS: u8 = 4;

    /// The ranges pgvector enforces for the same options.
    pub fn validate(&self) -> Result<()> {
        check_dimensions(self.metric, self.dimensions)?;
        if !(2..=100).contains(&self.m) {
            return Err(Error::InvalidParameter {
                name: "m",
                reason: format!("{} is outside 2..=100", self.m),
            });
        }
        if !(4..=1000).contains(&self.ef_construction) {
            return Err(Error::InvalidParameter {
                name: "ef_construction",
                reason: format!("{} is outside 4..=1000", self.ef_construction),
            });
        }
        if self.ef_construction < 2 * self.m {
            return Err(Error::InvalidParameter {
                name: "ef_construction",
                reason: format!("must be at least twice m ({})", 2 * self.m),
            });
        }
        self.quantization.validate(self.metric)?;
        if !self.keep_vectors && self.quantization.bits() < Self::MIN_BITS_WITHOUT_VECTORS {
            return Err(Error::InvalidParameter {
                name: "keep_vectors",
                reason: format!(
                    "an index without full vectors needs quantization = 'rabitq' with bits of \
                     {} or more",
                    Self::MIN_BITS_WITHOUT_VECTORS
                ),
            });
        }
        if self.neighbour_codes && self.quantization == Quantization::None {
            return Err(Error::InvalidParameter {
                name: "neighbour_codes",
                reason: "needs codes: quantization = 'rabitq'".into(),
            });
        }
        Ok(())
    }
}

/// Figures about an index, for users and benchmarks.
#[derive(Debug, Clone)]
pub struct IndexInfo {
    pub options: IndexOptions,
    pub len: u64,
    /// Layers above layer 0 that the entry point reaches.
    pub max_level: usize,
    /// Size of the data file.
    pub file_bytes: u64,
    /// Bytes in the engine's pages that hold data (the file can be larger: free pages are kept
    /// for reuse).
    pub used_bytes: u64,
    pub pages: StoreStats,
    pub format_version: u32,
}

/// What `Index::resize` sets the map to.
enum MapSize {
    /// The size another process set (LMDB reads it from the file).
    Adopt,
    Double,
    /// At least this many bytes, and at least double, so that growing stays rare.
    AtLeast(usize),
}

pub struct Index {
    env: Env<WithoutTls>,
    store: Store,
    path: PathBuf,
    /// Readers and writers of this process hold it shared; growing the map takes it exclusively,
    /// because LMDB may only be resized while this process has no transaction open.
    gate: RwLock<()>,
    /// The address tables the last reader filled, for the next reader of the same snapshot.
    addresses: Mutex<Option<SnapshotAddresses>>,
    /// The quantizer of the codes, with the centroid sample it was made for: building one
    /// (a rotation, the centroid read) for every query would cost about what the walk saves.
    quantizer: Mutex<Option<(u32, Arc<Quantizer>)>>,
}

/// Where a snapshot's vector chunks and layer-0 link lists lie in the map. A query reads a
/// thousand or more vectors spread over the whole index, nearly each from a chunk it has not
/// read yet, so tables that lived only as long as one reader would save little; handed from
/// reader to reader they save a B-tree descent per vector and per list once those were read.
/// They are valid for every read transaction with the same id: that id names the last
/// committed write, and LMDB never reuses the pages a committed snapshot reaches while a reader
/// holds it (the next reader does from its start) or while it is still the newest (nothing has
/// committed since). A resize moves the map, so it drops the tables.
struct SnapshotAddresses {
    txn_id: usize,
    chunks: ChunkTable,
    links: LinkTable,
    codes: ChunkTable,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("path", &self.path).finish()
    }
}

fn open_env(path: &Path, map_size: usize) -> Result<Env<WithoutTls>> {
    std::fs::create_dir_all(path)?;
    let mut options = EnvOpenOptions::new().read_txn_without_tls();
    options
        .map_size(map_size)
        .max_dbs(ENGINE_DATABASES + CALLER_DATABASES)
        .max_readers(1022);
    // SAFETY: heed requires that the same file is not opened twice by this process (it checks
    // and refuses) and that the file is not modified except through LMDB; every writer of these
    // folders goes through this function. NO_READ_AHEAD keeps random reads of an index larger
    // than RAM from evicting useful pages.
    let env = unsafe {
        options.flags(EnvFlags::NO_READ_AHEAD);
        options.open(path)?
    };
    refuse_truncated(&env, path)?;
    env.clear_stale_readers()?;
    Ok(env)
}

/// LMDB maps the file and trusts its meta page for where the data ends: reading a page past
/// the end of a truncated file would kill the process with SIGBUS. The meta pages were read
/// with plain reads at open, so their last page number can be checked before any page is.
fn refuse_truncated(env: &Env<WithoutTls>, path: &Path) -> Result<()> {
    let needed = (env.info().last_page_number as u64 + 1) * PAGE_SIZE as u64;
    let actual = std::fs::metadata(path.join("data.mdb"))?.len();
    if actual < needed {
        return Err(corrupt(format!(
            "the data file has {actual} bytes where its header needs {needed}"
        )));
    }
    Ok(())
}

fn is_map_full(e: &Error) -> bool {
    matches!(e, Error::Storage(heed::Error::Mdb(MdbError::MapFull)))
}

fn is_map_resized(e: &Error) -> bool {
    matches!(e, Error::Storage(heed::Error::Mdb(MdbError::MapResized)))
}

impl Index {
    /// Creates an index in the folder `path` (created if missing), which must not hold one.
    pub fn create(path: impl AsRef<Path>, options: &IndexOptions) -> Result<Index> {
        Self::create_with_map_size(path, options, INITIAL_MAP_SIZE)
    }

    /// As [`Index::create`], with the first map size (it still grows when full).
    pub fn create_with_map_size(
        path: impl AsRef<Path>,
        options: &IndexOptions,
        map_size: usize,
    ) -> Result<Index> {
        options.validate()?;
        let path = path.as_ref().to_path_buf();
        let env = open_env(&path, map_size.next_multiple_of(PAGE_SIZE))?;
        let mut wtxn = env.write_txn()?;
        if Store::open(&env, &wtxn)?.is_some() {
            return Err(Error::IndexExists(path.display().to_string()));
        }
        let store = Store::create(&env, &mut wtxn)?;
        let vector_bytes = options.metric.vector_bytes(options.dimensions);
        let meta = MetaRecord {
            magic: MAGIC,
            format_version: FORMAT_VERSION,
            metric: options.metric as u32,
            dimensions: options.dimensions as u32,
            vector_bytes: vector_bytes as u32,
            vectors_per_chunk: if options.keep_vectors {
                vectors_per_chunk(vector_bytes) as u32
            } else {
                0
            },
            m: options.m as u32,
            m0: 2 * options.m as u32,
            ef_construction: options.ef_construction as u32,
            entry_point: 0,
            max_level: 0,
            next_id: 0,
            live: 0,
            unverified: 0,
            code_grid: crate::codes::stored::GRID_FITTED,
            seed: options.seed,
            code_bits: options.quantization.bits() as u32,
            code_bytes: 0,
            codes_per_chunk: 0,
            centroid_sample: 0,
            flags: if options.neighbour_codes {
                FLAG_NEIGHBOUR_CODES
            } else {
                0
            },
            reserved: 0,
        };
        let meta = match meta.code_scheme() {
            Some(scheme) => {
                let code_bytes = crate::codes::code_bytes(scheme, options.dimensions);
                MetaRecord {
                    code_bytes: code_bytes as u32,
                    codes_per_chunk: vectors_per_chunk(code_bytes) as u32,
                    ..meta
                }
            }
            None => meta,
        };
        store.write_meta(&mut wtxn, &meta)?;
        store.write_items(&mut wtxn, &RoaringBitmap::new())?;
        wtxn.commit()?;
        Ok(Index {
            env,
            store,
            path,
            gate: RwLock::new(()),
            addresses: Mutex::new(None),
            quantizer: Mutex::new(None),
        })
    }

    /// Opens the index in `path`, refusing an incompatible format.
    pub fn open(path: impl AsRef<Path>) -> Result<Index> {
        let path = path.as_ref().to_path_buf();
        if !path.join("data.mdb").exists() {
            return Err(Error::MissingIndex(path.display().to_string()));
        }
        let env = open_env(&path, INITIAL_MAP_SIZE)?;
        let rtxn = env.read_txn()?;
        let store = Store::open(&env, &rtxn)?
            .ok_or_else(|| Error::MissingIndex(path.display().to_string()))?;
        store
            .read_meta(&rtxn)?
            .ok_or_else(|| Error::MissingIndex(path.display().to_string()))?;
        // Database handles opened in a transaction die with it unless it commits.
        rtxn.commit()?;
        Ok(Index {
            env,
            store,
            path,
            gate: RwLock::new(()),
            addresses: Mutex::new(None),
            quantizer: Mutex::new(None),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The environment, for the caller's own named databases.
    pub fn env(&self) -> &Env<WithoutTls> {
        &self.env
    }

    fn gate(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Grows the map or adopts a size another process set.
    fn resize(&self, target: MapSize) -> Result<()> {
        // Waiting on the lock could deadlock when this very thread holds a Reader, so poll.
        let deadline = std::time::Instant::now() + RESIZE_WAIT;
        let _exclusive = loop {
            match self.gate.try_write() {
                Ok(guard) => break guard,
                Err(std::sync::TryLockError::Poisoned(e)) => break e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock)
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                Err(std::sync::TryLockError::WouldBlock) => return Err(Error::ReadersBlockResize),
            }
        };
        let current = self.env.info().map_size;
        let size = match target {
            MapSize::Adopt => 0,
            MapSize::Double => (current * 2).next_multiple_of(PAGE_SIZE),
            MapSize::AtLeast(bytes) if bytes <= current => return Ok(()),
            MapSize::AtLeast(bytes) => bytes.max(current * 2).next_multiple_of(PAGE_SIZE),
        };
        // SAFETY: the exclusive gate guarantees no transaction of this process is open.
        unsafe { self.env.resize(size)? };
        *lock(&self.addresses) = None;
        Ok(())
    }

    /// Grows the map ahead of a write that adds about `items` vectors. A write that fills the
    /// map is rolled back and run again whole once the map has grown: for a batch of a build
    /// that means every one of its graph searches twice.
    pub fn reserve(&self, items: usize) -> Result<()> {
        let per_item = {
            let meta = self.read()?.meta;
            // The vector, a full layer-0 list with its B-tree node, and room for the lists of
            // stored nodes the batch rewrites; twice that, for pages left half full.
            2 * (meta.vector_bytes as usize + meta.code_bytes as usize + 8 * meta.m0 as usize + 64)
        };
        let info = self.env.info();
        let used = (info.last_page_number + 1) * PAGE_SIZE;
        let needed = used.saturating_add(items.saturating_mul(per_item));
        if needed > info.map_size {
            self.resize(MapSize::AtLeast(needed))?;
        }
        Ok(())
    }

    /// Writes the vectors of `batch` into the slots of the ids the next insert gives them, in
    /// transactions of their own of about `STAGE_BYTES` each, so that the insert's own
    /// transaction holds no second copy of them in memory (see `storage::staged`). The insert
    /// must come next: any other write in between, or different vectors, and it writes them
    /// again itself. Returns whether anything was staged: nothing when the insert would give
    /// the batch the ids of deleted items, which are not known before it runs.
    pub fn stage_vectors(&self, batch: &PreparedVectors) -> Result<bool> {
        let (meta, live) = {
            let reader = self.read()?;
            (reader.meta, reader.items.len())
        };
        if batch.is_empty()
            || !meta.keeps_vectors()
            || batch.vector_bytes() != meta.vector_bytes as usize
            || live != meta.next_id as u64
            || meta.next_id as u64 + batch.len() as u64 > crate::storage::ID_LIMIT
        {
            return Ok(false);
        }
        let first = meta.next_id;
        let mut record = StagedRecord {
            first,
            count: batch.len() as u32,
            fingerprint: batch.fingerprint(),
            txn: 0,
        };
        // The record goes first: whatever a failure leaves behind is then known to be there.
        self.write(|w| w.store.write_staged(&mut w.txn, record))?;
        let per_chunk = meta.vectors_per_chunk as usize;
        // An eighth of the batch at most, which the batch's size allows for.
        let per_txn =
            (STAGE_BYTES.min(batch.padded_bytes().len() / 8) / batch.vector_bytes()).max(per_chunk);
        let mut start = 0;
        while start < batch.len() {
            // Each transaction ends on a chunk's end, so no chunk is written twice.
            let reach = (first as usize + start + per_txn) / per_chunk * per_chunk;
            let end = reach
                .saturating_sub(first as usize)
                .clamp(start + 1, batch.len());
            self.write(|w| {
                w.store.put_vectors(
                    &mut w.txn,
                    &w.meta,
                    (start..end).map(|i| (first + i as u32, batch.get(i))),
                    false,
                )?;
                if end == batch.len() {
                    record.txn = w.txn.id() as u64;
                    w.store.write_staged(&mut w.txn, record)?;
                }
                Ok(())
            })?;
            start = end;
        }
        Ok(true)
    }

    /// A consistent snapshot for searching; writers do not block it, nor it them.
    pub fn read(&self) -> Result<Reader<'_>> {
        loop {
            let gate = self.gate();
            match self.env.read_txn().map_err(Error::from) {
                Ok(txn) => {
                    return Reader::new(txn, self.store, gate, &self.addresses, &self.quantizer)
                }
                Err(e) if is_map_resized(&e) => {
                    drop(gate);
                    self.resize(MapSize::Adopt)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs `f` in one write transaction and commits it; nothing `f` did is visible to readers
    /// before the commit, and nothing of it survives an error. When the map fills up, the
    /// transaction is rolled back, the map doubled and `f` run again.
    pub fn write<R>(&self, mut f: impl FnMut(&mut Writer<'_>) -> Result<R>) -> Result<R> {
        loop {
            let gate = self.gate();
            let attempt = (|| {
                let mut writer = Writer::new(self.env.write_txn()?, self.store)?;
                let out = f(&mut writer)?;
                writer.commit()?;
                Ok(out)
            })();
            drop(gate);
            match attempt {
                Err(e) if is_map_full(&e) => self.resize(MapSize::Double)?,
                Err(e) if is_map_resized(&e) => self.resize(MapSize::Adopt)?,
                other => return other,
            }
        }
    }

    /// LMDB reuses the pages a write transaction frees only from the second transaction after
    /// it (a reader may still hold the snapshot before it). After a large delete, an empty
    /// commit makes the freed space available to the very next write, which would otherwise
    /// grow the file by as much again.
    pub fn release_freed_pages(&self) -> Result<()> {
        self.write(|_| Ok(()))
    }

    pub fn info(&self) -> Result<IndexInfo> {
        let reader = self.read()?;
        let meta = reader.meta;
        let pages = self.store.stats(&reader.txn)?;
        Ok(IndexInfo {
            options: IndexOptions {
                metric: meta.metric(),
                dimensions: meta.dimensions as usize,
                m: meta.m as usize,
                ef_construction: meta.ef_construction as usize,
                seed: meta.seed,
                quantization: Quantization::from_bits(meta.code_bits as u8),
                keep_vectors: meta.keeps_vectors(),
                neighbour_codes: meta.neighbour_codes(),
            },
            len: reader.items.len(),
            max_level: meta.max_level as usize,
            file_bytes: self.env.real_disk_size()?,
            used_bytes: (pages.vector_pages
                + pages.link_pages
                + pages.meta_pages
                + pages.filter_pages
                + pages.code_pages
                + pages.coded_list_pages)
                * PAGE_SIZE as u64,
            pages,
            format_version: meta.format_version,
        })
    }

    /// Checks and converts caller vectors into their stored form.
    pub fn prepare<'a>(
        &self,
        vectors: impl IntoIterator<Item = VectorRef<'a>>,
    ) -> Result<PreparedVectors> {
        PreparedVectors::prepare(&self.read()?.meta, vectors)
    }
}

/// A poisoned lock only means a reader panicked while handing its table back; the table is
/// plain addresses, whole either way.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A read snapshot of an index.
pub struct Reader<'i> {
    txn: RoTxn<'i, WithoutTls>,
    store: Store,
    meta: MetaRecord,
    items: RoaringBitmap,
    /// Where the vector chunks and layer-0 lists `txn` has read lie (see `SnapshotAddresses`).
    chunks: ChunkTable,
    links: LinkTable,
    /// Where the code chunks `txn` has read lie.
    codes: ChunkTable,
    quantizer: Option<Arc<Quantizer>>,
    /// Where `chunks`, `links` and `codes` go back to when the reader is done.
    addresses: &'i Mutex<Option<SnapshotAddresses>>,
    _gate: RwLockReadGuard<'i, ()>,
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        *lock(self.addresses) = Some(SnapshotAddresses {
            txn_id: self.txn.id(),
            chunks: std::mem::take(&mut self.chunks),
            links: std::mem::take(&mut self.links),
            codes: std::mem::take(&mut self.codes),
        });
    }
}

#[cfg(test)]
impl Reader<'_> {
    /// The snapshot as the graph code reads it, for tests that look at stored lists.
    pub(crate) fn lmdb_view(&self) -> crate::graph::view::LmdbView<'_> {
        crate::graph::view::LmdbView::new(&self.txn, self.store, &self.meta)
    }
}

/// What a reader and a writer both read from their transaction: the metadata record and the
/// live items as of its start, and the caller's log position and stamp.
macro_rules! snapshot_methods {
    () => {
        /// How many items are live.
        pub fn len(&self) -> u64 {
            self.items.len()
        }

        pub fn is_empty(&self) -> bool {
            self.items.is_empty()
        }

        /// Live item ids.
        pub fn items(&self) -> &RoaringBitmap {
            &self.items
        }

        pub fn metric(&self) -> Metric {
            self.meta.metric()
        }

        pub fn dimensions(&self) -> usize {
            self.meta.dimensions as usize
        }

        /// The caller's position in a log of its own, 0 until a writer set one (see
        /// [`Writer::set_log_position`]).
        pub fn log_position(&self) -> Result<u64> {
            self.store.read_log_position(&self.txn)
        }

        /// The stamp the last writer set (see [`Writer::set_stamp`]), `None` if none ever did.
        pub fn stamp(&self) -> Result<Option<Stamp>> {
            self.store.read_stamp(&self.txn)
        }
    };
}

/// The metadata record and live items a transaction starts from.
fn load(store: Store, txn: &RoTxn<'_, WithoutTls>) -> Result<(MetaRecord, RoaringBitmap)> {
    Ok((store.require_meta(txn)?, store.read_items(txn)?))
}

impl<'i> Reader<'i> {
    fn new(
        txn: RoTxn<'i, WithoutTls>,
        store: Store,
        gate: RwLockReadGuard<'i, ()>,
        addresses: &'i Mutex<Option<SnapshotAddresses>>,
        quantizer: &'i Mutex<Option<(u32, Arc<Quantizer>)>>,
    ) -> Result<Self> {
        let (meta, items) = load(store, &txn)?;
        let (chunks, links, codes) = match lock(addresses).take() {
            Some(known) if known.txn_id == txn.id() => (known.chunks, known.links, known.codes),
            _ => (
                ChunkTable::new(&meta),
                LinkTable::new(&meta),
                ChunkTable::for_codes(&meta),
            ),
        };
        let quantizer = if meta.code_bits == 0 || meta.centroid_sample == 0 {
            None
        } else {
            let mut cached = lock(quantizer);
            match &*cached {
                Some((sample, q)) if *sample == meta.centroid_sample => Some(q.clone()),
                _ => {
                    let loaded = crate::codes::stored::load(store, &txn, &meta)?.map(Arc::new);
                    if let Some(q) = &loaded {
                        *cached = Some((meta.centroid_sample, q.clone()));
                    }
                    loaded
                }
            }
        };
        Ok(Reader {
            chunks,
            links,
            codes,
            quantizer,
            addresses,
            txn,
            store,
            meta,
            items,
            _gate: gate,
        })
    }

    snapshot_methods!();

    pub fn prepare_query(&self, query: VectorRef<'_>) -> Result<PreparedQuery> {
        PreparedQuery::new(self.meta.metric(), self.meta.dimensions as usize, query)
    }

    pub(crate) fn view(&self) -> crate::graph::view::LmdbView<'_> {
        // SAFETY: the tables are this reader's own, filled through its transaction only, and a
        // reader never writes.
        let view = unsafe {
            crate::graph::view::LmdbView::with_chunks(
                &self.txn,
                self.store,
                &self.meta,
                &self.chunks,
                Some(&self.links),
            )
        };
        match &self.quantizer {
            // SAFETY: as above, for the code table.
            Some(q) => unsafe { view.with_codes(q, &self.codes) },
            None => view,
        }
    }

    /// Neighbours of `query` in non-decreasing distance, for as long as the caller pulls.
    pub fn stream(
        &self,
        query: VectorRef<'_>,
        params: &SearchParams<'_>,
    ) -> Result<NeighborStream<'_>> {
        let query = self.prepare_query(query)?;
        NeighborStream::new(self.view(), &self.items, query, params)
    }

    /// The `k` nearest neighbours, ascending by (distance, id); `ef_search` and `rerank` are
    /// raised to `k`. Where the stream hands out lower bounds (an index without full vectors),
    /// these are the `k` lowest bounds, for the caller to re-rank.
    pub fn search(
        &self,
        query: VectorRef<'_>,
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<Vec<Neighbor>> {
        let params = SearchParams {
            ef_search: params.ef_search.max(k),
            rerank: params.rerank.map(|r| r.max(k)),
            ..params.clone()
        };
        let mut stream = self.stream(query, &params)?;
        let mut found = Vec::with_capacity(params.ef_search);
        while found.len() < k {
            let batch = stream.next_batch()?;
            if batch.is_empty() {
                break;
            }
            found.extend(batch);
        }
        found.truncate(k);
        Ok(found)
    }

    /// The stored vector of a live item, as floats (normalised under f32 cosine); in an index
    /// that keeps no full vectors, the one its code stands for.
    pub fn vector(&self, id: ItemId) -> Result<Option<Vec<f32>>> {
        let metric = self.meta.metric();
        if !self.items.contains(id) || metric.is_binary() {
            return Ok(None);
        }
        let view = self.view();
        if !self.meta.keeps_vectors() {
            // Rotated back, not as a write scores it (`LmdbView::vector`).
            let stored = view.decode(id, false)?;
            return Ok(crate::distance::stored_floats(metric, &stored));
        }
        let bytes = crate::graph::GraphView::vector(&view, id)?;
        Ok(crate::distance::stored_floats(metric, &bytes))
    }

    /// The caller's key of a live item (see [`Writer::insert_keyed`]).
    pub fn key(&self, id: ItemId) -> Result<Option<u64>> {
        self.store.key_of(&self.txn, id)
    }

    /// The live item holding `key`.
    pub fn item_for_key(&self, key: u64) -> Result<Option<ItemId>> {
        self.store.item_of(&self.txn, key)
    }

    /// Every keyed item as (id, key), ascending by id.
    pub fn keys(&self) -> Result<impl Iterator<Item = Result<(ItemId, u64)>> + '_> {
        self.store.all_keys(&self.txn)
    }

    /// Verifies the graph's invariants; see [`CheckReport`].
    pub fn check(&self) -> Result<CheckReport> {
        check_graph(&self.view(), self.store, &self.items)
    }

    /// The live items that meet every condition (all live items for none), from the values
    /// given to [`Writer::insert_keyed_with_filters`] and [`Writer::set_filters`]. Conditions
    /// are evaluated exactly, the cheap ones first; items without values match none.
    pub fn filter(&self, conditions: &[FilterCondition]) -> Result<RoaringBitmap> {
        if conditions.is_empty() {
            return Ok(self.items.clone());
        }
        match self.store.filters() {
            Some(filters) => filters.filter(&self.txn, &self.items, conditions),
            None => Ok(RoaringBitmap::new()),
        }
    }
}

/// An open write transaction; see [`Index::write`].
pub struct Writer<'i> {
    txn: RwTxn<'i>,
    store: Store,
    meta: MetaRecord,
    items: RoaringBitmap,
}

/// A watch that never cancels.
pub fn never_cancel() -> bool {
    false
}

impl<'i> Writer<'i> {
    fn new(txn: RwTxn<'i>, store: Store) -> Result<Self> {
        let (meta, items) = load(store, &txn)?;
        Ok(Writer {
            txn,
            store,
            meta,
            items,
        })
    }

    snapshot_methods!();

    /// Records how far the caller's own write log has been applied, committed atomically with
    /// this transaction's writes: after a crash the caller replays its log from this position
    /// and skips what the index already holds.
    pub fn set_log_position(&mut self, position: u64) -> Result<()> {
        self.store.write_log_position(&mut self.txn, position)
    }

    /// Records the caller's stamp, committed atomically with this transaction's writes.
    pub fn set_stamp(&mut self, stamp: Stamp) -> Result<()> {
        self.store.write_stamp(&mut self.txn, stamp)
    }

    /// Checks and converts caller vectors into their stored form.
    pub fn prepare<'a>(
        &self,
        vectors: impl IntoIterator<Item = VectorRef<'a>>,
    ) -> Result<PreparedVectors> {
        PreparedVectors::prepare(&self.meta, vectors)
    }

    /// Adds a batch (in parallel on rayon's current pool); returns the new ids in batch order.
    /// `watch` is polled between items from every worker and told of each pass (see [`Watch`]);
    /// it must not call into anything that is not thread-safe.
    pub fn insert(&mut self, batch: &PreparedVectors, watch: &dyn Watch) -> Result<Vec<ItemId>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        if batch.vector_bytes() != self.meta.vector_bytes as usize {
            return Err(Error::DimensionMismatch {
                expected: self.meta.vector_bytes as usize,
                got: batch.vector_bytes(),
            });
        }
        insert_batch(
            &mut self.txn,
            self.store,
            &mut self.meta,
            &mut self.items,
            batch,
            watch,
        )
    }

    /// As [`Writer::insert`], giving each new item the caller's key, one per vector. Keys are
    /// one-to-one: an item that already holds one of these keys is deleted first, so a key
    /// inserted again replaces its old vector.
    pub fn insert_keyed(
        &mut self,
        batch: &PreparedVectors,
        keys: &[u64],
        watch: &dyn Watch,
    ) -> Result<Vec<ItemId>> {
        if keys.len() != batch.len() {
            return Err(Error::InvalidParameter {
                name: "keys",
                reason: format!("{} keys for {} vectors", keys.len(), batch.len()),
            });
        }
        let mut sorted = keys.to_vec();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::InvalidParameter {
                name: "keys",
                reason: "a key appears twice in one batch".into(),
            });
        }
        let mut replaced = RoaringBitmap::new();
        for &key in keys {
            if let Some(id) = self.store.item_of(&self.txn, key)? {
                replaced.insert(id);
            }
        }
        if !replaced.is_empty() {
            self.delete(&replaced, watch)?;
        }
        let ids = self.insert(batch, watch)?;
        for (&id, &key) in ids.iter().zip(keys) {
            self.store.put_key(&mut self.txn, id, key)?;
        }
        Ok(ids)
    }

    /// As [`Writer::insert_keyed`], recording each new item's filter values (one row per
    /// vector) for [`Reader::filter`]. An item replaced by key loses its old values with it.
    pub fn insert_keyed_with_filters(
        &mut self,
        batch: &PreparedVectors,
        keys: &[u64],
        rows: &[FilterRow],
        watch: &dyn Watch,
    ) -> Result<Vec<ItemId>> {
        if rows.len() != batch.len() {
            return Err(Error::InvalidParameter {
                name: "rows",
                reason: format!("{} filter rows for {} vectors", rows.len(), batch.len()),
            });
        }
        rows.iter().try_for_each(validate_row)?;
        let filters = self.filter_store()?;
        let ids = self.insert_keyed(batch, keys, watch)?;
        filters.set_rows(&mut self.txn, ids.iter().copied().zip(rows))?;
        Ok(ids)
    }

    /// Replaces the filter values of the live item `id` (an update of a filtered column that
    /// leaves its vector alone).
    pub fn set_filters(&mut self, id: ItemId, row: &FilterRow) -> Result<()> {
        if !self.items.contains(id) {
            return Err(Error::InvalidParameter {
                name: "id",
                reason: format!("item {id} is not live"),
            });
        }
        validate_row(row)?;
        self.filter_store()?
            .set_rows(&mut self.txn, std::iter::once((id, row)))
    }

    fn filter_store(&self) -> Result<FilterStore> {
        self.store
            .filters()
            .ok_or_else(|| corrupt("the index has no filter databases"))
    }

    /// Deletes the given ids (ids that are not live are ignored), forgets their keys and filter
    /// values and repairs the graph.
    pub fn delete(&mut self, ids: &RoaringBitmap, watch: &dyn Watch) -> Result<DeleteStats> {
        let doomed = ids & &self.items;
        // Deleting every item drops the filter databases whole, with the rest (`clear_items`).
        if let Some(filters) = self.store.filters() {
            if doomed.len() < self.items.len() {
                filters.remove(&mut self.txn, &doomed)?;
            }
        }
        let stats = delete_items(
            &mut self.txn,
            self.store,
            &mut self.meta,
            &mut self.items,
            &doomed,
            watch,
        )?;
        for id in &doomed {
            self.store.delete_key_of(&mut self.txn, id)?;
        }
        Ok(stats)
    }

    /// Deletes the items holding `keys` (keys no item holds are ignored), as [`Writer::delete`].
    pub fn delete_keys(&mut self, keys: &[u64], watch: &dyn Watch) -> Result<DeleteStats> {
        let mut ids = RoaringBitmap::new();
        for &key in keys {
            if let Some(id) = self.store.item_of(&self.txn, key)? {
                ids.insert(id);
            }
        }
        self.delete(&ids, watch)
    }

    /// Links every live item that cannot be reached from the entry point back into the graph;
    /// returns how many it reconnected. Pruning during small inserts can take a node's last
    /// in-link; deletes run this themselves, and callers with no deletes run it in maintenance.
    pub fn reconnect_unreachable(&mut self) -> Result<u64> {
        crate::graph::repair::reconnect_unreachable(
            &mut self.txn,
            self.store,
            &mut self.meta,
            &self.items,
        )
    }

    fn commit(mut self) -> Result<()> {
        self.store.write_meta(&mut self.txn, &self.meta)?;
        self.store.write_items(&mut self.txn, &self.items)?;
        self.txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::staged::Staging;

    fn batch(n: usize, seed: f32) -> PreparedVectors {
        let data: Vec<Vec<f32>> = (0..n)
            .map(|i| {
                (0..16)
                    .map(|d| (seed + i as f32 * 0.37 + d as f32).sin())
                    .collect()
            })
            .collect();
        PreparedVectors::new(
            Metric::Euclidean,
            16,
            data.iter().map(|v| VectorRef::Floats(v)),
        )
        .unwrap()
    }

    /// What the next write transaction finds of the staging, for the ids the insert would give.
    fn found(index: &Index, batch: &PreparedVectors) -> Staging {
        let mut wtxn = index.env.write_txn().unwrap();
        let next = index.read().unwrap().meta.next_id;
        let ids: Vec<ItemId> = (next..next + batch.len() as u32).collect();
        let staging = index.store.take_staged(&mut wtxn, &ids, batch).unwrap();
        wtxn.abort();
        staging
    }

    #[test]
    fn the_next_insert_of_the_staged_batch_finds_its_vectors_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::create(dir.path(), &IndexOptions::new(Metric::Euclidean, 16)).unwrap();
        let (a, b) = (batch(500, 0.0), batch(500, 1.0));
        assert_eq!(found(&index, &a), Staging::Nothing);
        assert!(index.stage_vectors(&a).unwrap());
        assert_eq!(found(&index, &a), Staging::InPlace);
        assert_eq!(found(&index, &b), Staging::Leftovers);
        assert_eq!(found(&index, &batch(499, 0.0)), Staging::Leftovers);
        // Any write in between makes the staged slots stale.
        index.write(|w| w.set_log_position(7)).unwrap();
        assert_eq!(found(&index, &a), Staging::Leftovers);
    }
}
