//! The one place engine errors become Postgres errors, each with its SQLSTATE.

use hannoy_engine::Error;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// Raises `code` with `message` (and an optional hint) as an ERROR; never returns.
pub fn raise(code: PgSqlErrorCode, message: impl Into<String>, hint: Option<&str>) -> ! {
    let mut report = ErrorReport::new(code, message.into(), "hannoy_pg");
    if let Some(hint) = hint {
        report = report.set_hint(hint);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("an ERROR report does not return")
}

/// Reports `message` (and an optional hint) as a WARNING and returns.
pub fn warn(code: PgSqlErrorCode, message: impl Into<String>, hint: Option<&str>) {
    let mut report = ErrorReport::new(code, message.into(), "hannoy_pg");
    if let Some(hint) = hint {
        report = report.set_hint(hint);
    }
    report.report(PgLogLevel::WARNING);
}

/// Raises an engine error with its SQLSTATE; never returns.
pub fn raise_engine(error: Error) -> ! {
    Err::<(), _>(error).or_raise();
    unreachable!("or_raise raises an error")
}

/// Raises "index storage is corrupt" (XX002, with the REINDEX hint), for damage the access
/// method finds in its own pages.
pub fn raise_corrupt(what: impl Into<String>) -> ! {
    raise_engine(Error::Corrupt(what.into()))
}

fn code_of(error: &Error) -> (PgSqlErrorCode, Option<&'static str>) {
    use PgSqlErrorCode::*;
    match error {
        Error::DimensionMismatch { .. }
        | Error::DifferentDimensions { .. }
        | Error::EmptyVector
        | Error::NonFinite { .. }
        | Error::ZeroVector
        | Error::StrayBits { .. } => (ERRCODE_DATA_EXCEPTION, None),
        Error::OutOfHalfRange { .. } => (ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE, None),
        Error::TooManyDimensions { .. } | Error::IdsExhausted => {
            (ERRCODE_PROGRAM_LIMIT_EXCEEDED, None)
        }
        Error::WrongVectorKind { .. } => (ERRCODE_DATATYPE_MISMATCH, None),
        Error::InvalidParameter { .. } => (ERRCODE_INVALID_PARAMETER_VALUE, None),
        Error::IncompatibleFormat { .. }
        | Error::MissingIndex(_)
        | Error::IndexExists(_)
        | Error::Corrupt(_) => (
            ERRCODE_INDEX_CORRUPTED,
            Some("Rebuild the index with REINDEX."),
        ),
        Error::ReadersBlockResize => (
            ERRCODE_OBJECT_IN_USE,
            Some("Close the scans of this index that this session keeps open, then retry."),
        ),
        Error::Cancelled => (ERRCODE_QUERY_CANCELED, None),
        Error::Storage(_) | Error::Io(_) => (ERRCODE_IO_ERROR, None),
    }
}

/// Unwraps an engine result, raising its error with a fitting SQLSTATE.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for hannoy_engine::Result<T> {
    fn or_raise(self) -> T {
        match self {
            Ok(value) => value,
            Err(error) => {
                let (code, hint) = code_of(&error);
                raise(code, error.to_string(), hint)
            }
        }
    }
}
