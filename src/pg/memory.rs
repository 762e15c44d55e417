//! A memory context for reading one row at a time.
//!
//! Postgres calls an index build's callback and `aminsert` in contexts that live for the whole
//! build or statement, and reading a row's values can palloc: a vector stored out of line
//! (TOASTed, as a `real[]` of more than about 500 elements usually is) is copied back whole. Left
//! there, those copies add up to the table's vectors once more for the length of a build.

use std::ffi::CStr;

use pgrx::pg_sys;

/// A child of the memory context current when it was made, emptied after every use. Not
/// pgrx's `PgMemoryContexts::new`, which copies the name into the current context: `aminsert`
/// makes one per row, and that copy would stay for the statement.
pub struct RowMemory(pg_sys::MemoryContext);

impl RowMemory {
    pub fn new(name: &'static CStr) -> RowMemory {
        // SAFETY: a new child of the current context, on the backend thread; `name` is static,
        // as Postgres requires of a context's name.
        RowMemory(unsafe {
            pg_sys::AllocSetContextCreateExtended(
                pg_sys::CurrentMemoryContext,
                name.as_ptr(),
                pg_sys::ALLOCSET_SMALL_MINSIZE as usize,
                pg_sys::ALLOCSET_SMALL_INITSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
            )
        })
    }

    /// Runs `read` with this context current, then frees everything it palloc'd.
    ///
    /// # Safety
    /// What `read` returns must not point into palloc'd memory (it is Rust-owned data), and
    /// `read` must be safe to run on the backend thread.
    pub unsafe fn read<R>(&mut self, read: impl FnOnce() -> R) -> R {
        // SAFETY: the context is alive (deleted only in Drop); an ERROR inside `read` leaves
        // CurrentMemoryContext for the transaction's abort to restore, as it does for C code.
        unsafe {
            let previous = pg_sys::MemoryContextSwitchTo(self.0);
            let value = read();
            pg_sys::MemoryContextSwitchTo(previous);
            pg_sys::MemoryContextReset(self.0);
            value
        }
    }
}

impl Drop for RowMemory {
    fn drop(&mut self) {
        // SAFETY: the context was made by `new` and is deleted once; its parent lives at least
        // as long as the code that made it (a build's or a statement's context).
        unsafe {
            if std::ptr::eq(pg_sys::CurrentMemoryContext, self.0) {
                pg_sys::CurrentMemoryContext = pg_sys::MemoryContextGetParent(self.0);
            }
            pg_sys::MemoryContextDelete(self.0);
        }
    }
}
