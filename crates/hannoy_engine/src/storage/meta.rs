//! The metadata record: what kind of index this is and where its graph starts.

use bytemuck::{Pod, Zeroable};

use crate::distance::Metric;
use crate::error::{corrupt, Error, Result};

pub(crate) const MAGIC: [u8; 8] = *b"HANNOYPG";
/// Bumped whenever the on-disk layout changes; readers refuse any other version, both ways: an
/// older writer would leave structures it does not know out of step (deleting and reusing ids
/// without touching them), and a newer reader would miss what an older writer never wrote.
pub const FORMAT_VERSION: u32 = 8;

/// Stored as raw bytes under the `meta` key. Native-endian, like LMDB's integer keys: an index
/// is tied to the byte order of the machine that wrote it, as Postgres data files are.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, PartialEq, Eq)]
pub(crate) struct MetaRecord {
    pub magic: [u8; 8],
    pub format_version: u32,
    pub metric: u32,
    pub dimensions: u32,
    pub vector_bytes: u32,
    /// 0 for an index that keeps no full vectors, only codes (`IndexOptions::keep_vectors`):
    /// a reader older than that mode refuses such a record as inconsistent.
    pub vectors_per_chunk: u32,
    pub m: u32,
    pub m0: u32,
    pub ef_construction: u32,
    /// Meaningless while `live == 0`.
    pub entry_point: u32,
    /// Top layer of the entry point.
    pub max_level: u32,
    /// Every id below this has been handed out at least once; free ids below it are reused.
    pub next_id: u32,
    pub live: u32,
    /// Items inserted since the last pass that reconnects unreachable items; a pass runs once
    /// they reach a tenth of the index, however small the batches that brought them.
    pub unverified: u32,
    /// How the codes' grids end (`codes::stored::GRID_SPAN` or `GRID_FITTED`); also keeps
    /// `seed` aligned without padding bytes, which `Pod` forbids.
    pub code_grid: u32,
    pub seed: u64,
    /// Bits per coordinate of the RaBitQ codes the walk scores with; 0: no codes.
    pub code_bits: u32,
    pub code_bytes: u32,
    pub codes_per_chunk: u32,
    /// How many vectors the centroid of the codes is the mean of (0: no centroid yet).
    pub centroid_sample: u32,
    /// `FLAG_*` bits: layout choices made at creation.
    pub flags: u32,
    /// Zero; keeps the record free of padding, which `Pod` forbids.
    pub reserved: u32,
}

/// Each link list is also stored with its neighbours' codes (`IndexOptions::neighbour_codes`).
pub(crate) const FLAG_NEIGHBOUR_CODES: u32 = 1;

impl MetaRecord {
    pub fn decode(bytes: &[u8]) -> Result<MetaRecord> {
        if bytes.len() < 12 || bytes[..8] != MAGIC {
            return Err(corrupt("metadata record has no hannoy magic number"));
        }
        let version = u32::from_ne_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != FORMAT_VERSION {
            return Err(Error::IncompatibleFormat {
                found: version,
                expected: FORMAT_VERSION,
            });
        }
        if bytes.len() != std::mem::size_of::<MetaRecord>() {
            return Err(corrupt(format!(
                "metadata record has {} bytes",
                bytes.len()
            )));
        }
        let meta: MetaRecord = bytemuck::pod_read_unaligned(bytes);
        let metric = Metric::from_code(meta.metric)
            .ok_or_else(|| corrupt(format!("unknown metric code {}", meta.metric)))?;
        if meta.vector_bytes as usize != metric.vector_bytes(meta.dimensions as usize)
            || (meta.vectors_per_chunk == 0
                && meta.code_bits < crate::IndexOptions::MIN_BITS_WITHOUT_VECTORS as u32)
            || meta.m < 2
            || meta.m0 < meta.m
            || meta.max_level > MAX_LEVEL as u32
            || meta.live > meta.next_id
            || meta.unverified > meta.next_id
            || !meta.codes_consistent()
            || meta.flags & !FLAG_NEIGHBOUR_CODES != 0
            || (meta.neighbour_codes() && meta.code_bits == 0)
            || meta.reserved != 0
        {
            return Err(corrupt("metadata record is inconsistent"));
        }
        Ok(meta)
    }

    fn codes_consistent(&self) -> bool {
        if self.code_grid > crate::codes::stored::GRID_FITTED {
            return false;
        }
        match self.code_scheme() {
            None => self.code_bytes == 0 && self.codes_per_chunk == 0,
            Some(scheme) => {
                self.code_bits <= crate::codes::MAX_CODE_BITS as u32
                    && self.code_bytes as usize
                        == crate::codes::code_bytes(scheme, self.dimensions as usize)
                    && self.codes_per_chunk > 0
            }
        }
    }

    /// The scheme of the index's codes, if it keeps any.
    pub fn code_scheme(&self) -> Option<crate::codes::Scheme> {
        (self.code_bits > 0).then_some(crate::codes::Scheme::Rabitq {
            bits: self.code_bits.min(u8::MAX as u32) as u8,
        })
    }

    /// Whether each link list is also stored with its neighbours' codes, so that a walk on
    /// codes reads one value per node it expands instead of one code per neighbour.
    pub fn neighbour_codes(&self) -> bool {
        self.flags & FLAG_NEIGHBOUR_CODES != 0
    }

    /// Whether the index keeps full vectors beside its codes (see `vectors_per_chunk`).
    pub fn keeps_vectors(&self) -> bool {
        self.vectors_per_chunk > 0
    }

    pub fn metric(&self) -> Metric {
        Metric::from_code(self.metric).expect("checked in decode")
    }

    pub fn cap(&self, layer: usize) -> usize {
        if layer == 0 {
            self.m0 as usize
        } else {
            self.m as usize
        }
    }

    pub fn entry(&self) -> Option<(u32, usize)> {
        (self.live > 0).then_some((self.entry_point, self.max_level as usize))
    }
}

/// Levels are capped so the graph never has more layers than a link key can name, and so a
/// freak draw cannot create a long chain of nearly empty layers.
pub(crate) const MAX_LEVEL: usize = 15;
