//! Whether a folder belongs with its index relation, exactly as it stands now.
//!
//! The folder is not WAL-logged, so a file-level restore, `pg_rewind`, a failover onto a copy,
//! `CREATE DATABASE ... TEMPLATE` or `pg_upgrade` can pair the relation with a folder from
//! another time, or with none. Both sides therefore carry the storage id and a position that
//! every change of the environment advances: the metapage (WAL-logged, restored with the
//! relation) and the environment's stamp (committed with the change). A folder is used only
//! when the two agree; anything else is refused with one error that names the index and says
//! to rebuild it, never answered from.
//!
//! A change is ordered so that a crash at any point is reconciled, not refused: the metapage
//! first records the position the change will reach (its intent) and that record is flushed,
//! then the LMDB commit stamps the folder with it, then the metapage records it as reached.
//! A folder from the committed position to the intent is therefore the relation's own (the
//! intent can be more than one ahead after a change failed: see `super::begin_change`).

use pgrx::{pg_sys, PgSqlErrorCode};

use hannoy_engine::Stamp;

use super::metapage::MetaPage;
use crate::pg::names;

/// Why an index's folder cannot serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// An earlier check found the folder unusable and marked the index.
    Marked,
    /// The folder, or its data file, is not there although the index has changed it.
    Missing,
    /// The engine refused the files (truncated, damaged, another format).
    Damaged(String),
    /// The folder was stamped by another index.
    Foreign,
    /// The folder has seen fewer changes than the relation: an older copy.
    Behind { folder: u64, relation: u64 },
    /// The folder has seen more changes than the relation: the relation is the older copy.
    Ahead { folder: u64, relation: u64 },
    /// WAL replay could not apply a change to the folder (see `super::redo`).
    ReplayFailed(String),
    /// A base backup copied the folder while it changed; an index scan rebuilds it from the
    /// table (see `super::rebuild`).
    AwaitingRebuild,
}

impl Unusable {
    fn describe(&self) -> String {
        match self {
            Unusable::Marked => "it was marked as needing a rebuild when its storage was found unusable".into(),
            Unusable::Missing => "its storage folder is missing".into(),
            Unusable::Damaged(why) => format!("its storage cannot be read ({why})"),
            Unusable::Foreign => "its storage folder belongs to another index".into(),
            Unusable::Behind { folder, relation } => format!(
                "its storage folder is older than the index (change {folder} of {relation}), as after restoring an older copy"
            ),
            Unusable::Ahead { folder, relation } => format!(
                "its storage folder is newer than the index (change {folder}, the index knows {relation}), as after restoring an older copy of the database"
            ),
            Unusable::ReplayFailed(why) => format!("the WAL replay of its storage failed ({why})"),
            Unusable::AwaitingRebuild => "a base backup copied its storage while it changed; the first index scan rebuilds it from the table".into(),
        }
    }

    /// Raises the error every refusal of a folder gives: SQLSTATE XX002 (index_corrupted).
    ///
    /// # Safety
    /// `index` must be an open index relation.
    pub unsafe fn raise(&self, index: pg_sys::Relation) -> ! {
        // SAFETY: forwarded from the caller.
        let (name, hint) = unsafe { (names::qualified_name(index), names::reindex_hint(index)) };
        crate::pg::error::raise(
            PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
            format!(
                "hannoy index \"{name}\" cannot be used: {}",
                self.describe()
            ),
            Some(&hint),
        )
    }

    /// Reports the refusal as a WARNING instead, for VACUUM, which must go on without the
    /// index.
    ///
    /// # Safety
    /// `index` must be an open index relation.
    pub unsafe fn warn(&self, index: pg_sys::Relation) {
        // SAFETY: forwarded from the caller.
        let (name, hint) = unsafe { (names::qualified_name(index), names::reindex_hint(index)) };
        crate::pg::error::warn(
            PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
            format!(
                "hannoy index \"{name}\" is skipped: {}; it answers no scan until it is rebuilt",
                self.describe()
            ),
            Some(&hint),
        );
    }
}

/// Whether the environment stamped `stamp` (`None`: never stamped) may serve the relation whose
/// metapage is `meta`. `exists` tells whether the environment exists at all, `empty` whether it
/// holds no item.
pub(super) fn verify(
    meta: &MetaPage,
    exists: bool,
    stamp: Option<Stamp>,
    empty: bool,
) -> Result<(), Unusable> {
    if meta.needs_rebuild != 0 {
        return Err(Unusable::Marked);
    }
    let Some(stamp) = stamp else {
        // Made (lazily, at the first vector) but never changed: a crash between creating the
        // environment and its first change leaves it so, and it holds nothing.
        return match (exists, empty, meta.position) {
            (false, _, 0) | (true, true, 0) => Ok(()),
            (false, _, _) => Err(Unusable::Missing),
            (true, _, relation) => Err(Unusable::Behind {
                folder: 0,
                relation,
            }),
        };
    };
    if stamp.owner != meta.storage_id {
        return Err(Unusable::Foreign);
    }
    // Between the two: a change's record was replayed here but the change failed on the
    // primary, whose next change goes past it (see `super::begin_change`).
    if (meta.position..=meta.intent).contains(&stamp.position) {
        Ok(())
    } else if stamp.position < meta.position {
        Err(Unusable::Behind {
            folder: stamp.position,
            relation: meta.position,
        })
    } else {
        Err(Unusable::Ahead {
            folder: stamp.position,
            relation: meta.position,
        })
    }
}
