//! The worker pool of this backend and the rules for using it: workers compute on owned data
//! and never call into Postgres; only the backend thread does.

use std::sync::OnceLock;

use pgrx::pg_sys;

static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();

/// Runs `f` on this backend's pool, so the engine's parallel work uses it and not rayon's
/// global pool (whose threads would be created without the signal mask below).
pub fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}

fn pool() -> &'static rayon::ThreadPool {
    POOL.get_or_init(|| {
        // Postgres's signal handlers assume they run on the backend thread: workers inherit a
        // mask that blocks every signal, restored on this thread once they exist.
        // SAFETY: sigset_t is plain data filled by sigfillset; pthread_sigmask only changes
        // this thread's mask, and the old mask is put back before returning.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("hannoy worker {i}"))
                .build();
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            pool.unwrap_or_else(|e| {
                crate::error::raise(
                    pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_RESOURCES,
                    format!("could not start worker threads: {e}"),
                    None,
                )
            })
        }
    })
}

/// Whether the user asked to cancel the statement or the backend is being stopped. A plain
/// read of flags that signal handlers set, so any thread may poll it.
pub fn cancel_requested() -> bool {
    // SAFETY: both are sig_atomic_t globals written only by signal handlers; a volatile read of
    // an aligned int cannot tear and has no other effect.
    unsafe {
        std::ptr::read_volatile(std::ptr::addr_of!(pg_sys::QueryCancelPending)) != 0
            || std::ptr::read_volatile(std::ptr::addr_of!(pg_sys::ProcDiePending)) != 0
    }
}

/// Turns an engine result that may have been cancelled into Postgres's own cancel error (on
/// the backend thread), so the user sees "canceling statement due to user request".
pub fn check_cancelled<T>(result: hannoy_engine::Result<T>) -> hannoy_engine::Result<T> {
    if matches!(result, Err(hannoy_engine::Error::Cancelled)) {
        pgrx::check_for_interrupts!();
    }
    result
}
