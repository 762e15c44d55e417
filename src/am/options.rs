//! Index options (`WITH (m = 16, ef_construction = 64, quantization = 'auto', bits = 2,
//! keep_vectors = true, neighbour_codes = false)`),
//! validated by Postgres's reloptions machinery against the ranges and values registered here.

use std::sync::atomic::{AtomicU32, Ordering};

use hannoy_engine::{IndexOptions, Quantization};
use pgrx::pg_sys;

/// The parsed options, laid out as `build_reloptions` fills them.
#[repr(C)]
struct HannoyReloptions {
    vl_len_: i32,
    m: i32,
    ef_construction: i32,
    /// One of `QUANTIZATION_AUTO`, `QUANTIZATION_NONE`, `QUANTIZATION_RABITQ`.
    quantization: i32,
    /// 0 when not given.
    bits: i32,
    keep_vectors: bool,
    neighbour_codes: bool,
}

const QUANTIZATION_NONE: i32 = 0;
const QUANTIZATION_RABITQ: i32 = 1;
const QUANTIZATION_AUTO: i32 = 2;
/// Bits per coordinate of RaBitQ codes when `bits` is not given: those `auto` chooses.
const DEFAULT_BITS: u8 = Quantization::DEFAULT_BITS;

static KIND: AtomicU32 = AtomicU32::new(0);

/// Registers the option kind and its options; from `_PG_init`.
pub fn register() {
    // SAFETY: backend-thread calls into reloptions with static C strings, once per backend.
    unsafe {
        let kind = pg_sys::add_reloption_kind();
        KIND.store(kind, Ordering::Relaxed);
        pg_sys::add_int_reloption(
            kind,
            c"m".as_ptr(),
            c"Links per node on the upper layers of the graph (twice as many on layer 0)".as_ptr(),
            IndexOptions::DEFAULT_M as i32,
            2,
            100,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
        pg_sys::add_int_reloption(
            kind,
            c"ef_construction".as_ptr(),
            c"Size of the candidate list while linking the graph".as_ptr(),
            IndexOptions::DEFAULT_EF_CONSTRUCTION as i32,
            4,
            1000,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
        // Postgres keeps the pointer: the table lives for the backend.
        let values: &'static mut [pg_sys::relopt_enum_elt_def] = Box::leak(Box::new([
            pg_sys::relopt_enum_elt_def {
                string_val: c"auto".as_ptr(),
                symbol_val: QUANTIZATION_AUTO,
            },
            pg_sys::relopt_enum_elt_def {
                string_val: c"none".as_ptr(),
                symbol_val: QUANTIZATION_NONE,
            },
            pg_sys::relopt_enum_elt_def {
                string_val: c"rabitq".as_ptr(),
                symbol_val: QUANTIZATION_RABITQ,
            },
            pg_sys::relopt_enum_elt_def {
                string_val: std::ptr::null(),
                symbol_val: 0,
            },
        ]));
        pg_sys::add_enum_reloption(
            kind,
            c"quantization".as_ptr(),
            c"Codes the graph walk scores with: auto (rabitq where the metric and dimensions suit \
codes, none elsewhere), none (full vectors) or rabitq"
                .as_ptr(),
            values.as_mut_ptr(),
            QUANTIZATION_AUTO,
            c"Valid values are \"auto\", \"none\" and \"rabitq\".".as_ptr(),
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
        // The default lies outside the range so that "not given" can be told from any value.
        pg_sys::add_int_reloption(
            kind,
            c"bits".as_ptr(),
            c"Bits per coordinate of the RaBitQ codes (1 to 8; 2 when not given)".as_ptr(),
            0,
            1,
            hannoy_engine::codes::MAX_CODE_BITS as i32,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
        pg_sys::add_bool_reloption(
            kind,
            c"keep_vectors".as_ptr(),
            c"Whether the index keeps full vectors beside its codes; without them (rabitq, 4 bits \
or more) it re-ranks from the table's rows"
                .as_ptr(),
            true,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
        pg_sys::add_bool_reloption(
            kind,
            c"neighbour_codes".as_ptr(),
            c"Whether each link list is stored with its neighbours' codes (rabitq only): a walk \
from a cold cache reads a page or two per node it expands instead of one per distance, for \
about 2m codes more per row on disk"
                .as_ptr(),
            false,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
    }
}

/// Parses and (when `validate`) checks reloptions; unknown names and out-of-range values
/// raise 22023 from Postgres itself, and a pair the engine would refuse (ef_construction below
/// twice m) raises 22023 here, at CREATE INDEX or ALTER INDEX ... SET, table empty or not.
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn amoptions(
    reloptions: pg_sys::Datum,
    validate: bool,
) -> *mut pg_sys::bytea {
    let table = [
        pg_sys::relopt_parse_elt {
            optname: c"m".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
            offset: std::mem::offset_of!(HannoyReloptions, m) as i32,
        },
        pg_sys::relopt_parse_elt {
            optname: c"ef_construction".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
            offset: std::mem::offset_of!(HannoyReloptions, ef_construction) as i32,
        },
        pg_sys::relopt_parse_elt {
            optname: c"quantization".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_ENUM,
            offset: std::mem::offset_of!(HannoyReloptions, quantization) as i32,
        },
        pg_sys::relopt_parse_elt {
            optname: c"bits".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
            offset: std::mem::offset_of!(HannoyReloptions, bits) as i32,
        },
        pg_sys::relopt_parse_elt {
            optname: c"keep_vectors".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_BOOL,
            offset: std::mem::offset_of!(HannoyReloptions, keep_vectors) as i32,
        },
        pg_sys::relopt_parse_elt {
            optname: c"neighbour_codes".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_BOOL,
            offset: std::mem::offset_of!(HannoyReloptions, neighbour_codes) as i32,
        },
    ];
    // SAFETY: the table describes HannoyReloptions exactly; build_reloptions pallocs the result.
    let parsed: *mut pg_sys::bytea = unsafe {
        pg_sys::build_reloptions(
            reloptions,
            validate,
            KIND.load(Ordering::Relaxed),
            std::mem::size_of::<HannoyReloptions>(),
            table.as_ptr(),
            table.len() as i32,
        )
        .cast()
    };
    // SAFETY: NULL or the HannoyReloptions just built.
    if let Some(options) = unsafe { parsed.cast::<HannoyReloptions>().as_ref() } {
        if validate {
            let graph = GraphOptions::from(options);
            if options.quantization != QUANTIZATION_RABITQ && options.bits != 0 {
                crate::pg::error::OrRaise::or_raise(Err::<(), _>(
                    hannoy_engine::Error::InvalidParameter {
                        name: "bits",
                        reason: "bits apply only with quantization = 'rabitq'".into(),
                    },
                ));
            }
            // The metric is the operator class's, checked again at build; here only the
            // ranges and pairs that hold for every metric.
            let engine = graph.for_engine(hannoy_engine::Metric::Euclidean, 1);
            crate::pg::error::OrRaise::or_raise(engine.validate());
        }
    }
    parsed
}

/// The graph options of an index, as its reloptions give them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GraphOptions {
    pub m: usize,
    pub ef_construction: usize,
    pub quantization: QuantizationOption,
    pub keep_vectors: bool,
    pub neighbour_codes: bool,
}

/// What an index's `quantization` option asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantizationOption {
    /// The engine's choice for the metric and the dimensions (`Quantization::automatic`),
    /// made when the index gets its first vector (`GraphOptions::for_engine`).
    Auto,
    Given(Quantization),
}

impl QuantizationOption {
    /// What an index of `metric` over vectors of `dimensions` keeps.
    pub fn resolve(self, metric: hannoy_engine::Metric, dimensions: usize) -> Quantization {
        match self {
            QuantizationOption::Given(quantization) => quantization,
            QuantizationOption::Auto => Quantization::automatic(metric, dimensions),
        }
    }

    /// Whether an index of `metric` keeps codes, for a planner that does not know its
    /// dimensions: `auto` is taken to, which for an index of few dimensions makes a wide
    /// filtered scan look cheaper than it is (it scores full vectors of a few dimensions).
    pub fn codes_likely(self, metric: hannoy_engine::Metric) -> bool {
        let dimensions = Quantization::AUTOMATIC_MIN_DIMENSIONS;
        self.resolve(metric, dimensions) != Quantization::None
    }
}

impl From<&HannoyReloptions> for GraphOptions {
    fn from(o: &HannoyReloptions) -> GraphOptions {
        let quantization = match o.quantization {
            QUANTIZATION_RABITQ => QuantizationOption::Given(Quantization::Rabitq {
                bits: match o.bits {
                    0 => DEFAULT_BITS,
                    bits => bits.clamp(0, u8::MAX as i32) as u8,
                },
            }),
            QUANTIZATION_NONE => QuantizationOption::Given(Quantization::None),
            _ => QuantizationOption::Auto,
        };
        GraphOptions {
            m: o.m as usize,
            ef_construction: o.ef_construction as usize,
            quantization,
            keep_vectors: o.keep_vectors,
            neighbour_codes: o.neighbour_codes,
        }
    }
}

impl GraphOptions {
    /// The engine's options for an index of `metric` and `dimensions` built with these.
    pub fn for_engine(self, metric: hannoy_engine::Metric, dimensions: usize) -> IndexOptions {
        IndexOptions {
            m: self.m,
            ef_construction: self.ef_construction,
            quantization: self.quantization.resolve(metric, dimensions),
            keep_vectors: self.keep_vectors,
            neighbour_codes: self.neighbour_codes,
            ..IndexOptions::new(metric, dimensions)
        }
    }
}

/// The graph options of an index, defaults where not given.
///
/// # Safety
/// `index` must be an open hannoy index relation.
pub unsafe fn read(index: pg_sys::Relation) -> GraphOptions {
    // SAFETY: rd_options of a hannoy index is NULL or what `amoptions` built.
    let options = unsafe { (*index).rd_options.cast::<HannoyReloptions>().as_ref() };
    match options {
        Some(o) => GraphOptions::from(o),
        None => GraphOptions {
            m: IndexOptions::DEFAULT_M,
            ef_construction: IndexOptions::DEFAULT_EF_CONSTRUCTION,
            quantization: QuantizationOption::Auto,
            keep_vectors: true,
            neighbour_codes: false,
        },
    }
}
