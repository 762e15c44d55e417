//! The engine's one error type. The access method converts it into an `ereport` with an SQLSTATE
//! at its boundary, so every variant carries enough to pick the code without parsing messages.

/// Everything that can go wrong in the engine. Bad input and bad data are errors, never panics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("vector has {got} dimensions, the index expects {expected}")]
    DimensionMismatch { expected: usize, got: usize },
    #[error("vectors of different dimensions {left} and {right} have no distance")]
    DifferentDimensions { left: usize, right: usize },
    #[error("vector must have at least one dimension")]
    EmptyVector,
    #[error("vector has {got} dimensions, more than the maximum of {max}")]
    TooManyDimensions { got: usize, max: usize },
    #[error("vector element {index} is not a finite number ({value})")]
    NonFinite { index: usize, value: f32 },
    #[error("vector element {index} ({value}) is out of the range of a half float (±65504)")]
    OutOfHalfRange { index: usize, value: f32 },
    #[error("a zero vector has no direction, so cosine distance is undefined for it")]
    ZeroVector,
    #[error("bit vector has bits set beyond its {dimensions} dimensions")]
    StrayBits { dimensions: usize },
    #[error("the {metric} metric takes {expected} vectors")]
    WrongVectorKind {
        metric: &'static str,
        expected: &'static str,
    },
    #[error("invalid value for {name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    #[error("index format version {found} cannot be read by this build, which reads version {expected}; rebuild the index")]
    IncompatibleFormat { found: u32, expected: u32 },
    #[error("no index in {0}")]
    MissingIndex(String),
    #[error("an index already exists in {0}")]
    IndexExists(String),
    #[error("index storage is corrupt: {0}")]
    Corrupt(String),
    #[error("the index has no free item ids left (at most 2^31 items)")]
    IdsExhausted,
    #[error("the index's map is full and cannot grow while this process keeps read snapshots of it open")]
    ReadersBlockResize,
    #[error("operation cancelled")]
    Cancelled,
    #[error("storage error: {0}")]
    Storage(#[from] heed::Error),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the error says the files cannot serve the index (damaged, truncated, another
    /// format, absent), as opposed to a passing condition of the process (memory, descriptors,
    /// a cancel) or bad input.
    pub fn is_damaged_storage(&self) -> bool {
        use heed::MdbError::*;
        match self {
            Error::Corrupt(_) | Error::IncompatibleFormat { .. } | Error::MissingIndex(_) => true,
            Error::Storage(heed::Error::Mdb(e)) => matches!(
                e,
                Corrupted | Invalid | VersionMismatch | PageNotFound | Incompatible | BadValSize
            ),
            _ => false,
        }
    }
}

pub(crate) fn corrupt(msg: impl Into<String>) -> Error {
    Error::Corrupt(msg.into())
}
