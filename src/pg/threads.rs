//! Worker threads and the rules for using them: workers compute on owned data and never call
//! into Postgres; only the backend thread does.
//!
//! Each build batch, merge or VACUUM pass gets a pool of its own, released when it returns: a
//! backend keeps no threads while idle, so hundreds of connections cost none. Starting a few
//! threads costs far less than the batch they link. A pool has one thread per core, at most
//! `max_parallel_maintenance_workers` + 1 (the backend's own share, as Postgres counts a
//! parallel build's leader), so that setting bounds hannoy's parallelism as it bounds
//! pgvector's and btree's builds; 0 links on one thread, reproducibly.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hannoy_engine::{Pass, Room, Watch};
use pgrx::pg_sys;

/// Runs `f` on a pool of its own, so the engine's parallel work uses it and not rayon's
/// global pool (whose threads would be created without the signal mask below, and kept).
pub fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}

/// Where a watched write stands: the pass it runs, over how many items, and how many of
/// them are done (the polls since the pass began, one per item).
#[derive(Debug, Clone, Copy)]
pub struct PassReport {
    pub pass: Option<Pass>,
    pub items: usize,
    pub done: u64,
}

/// The watch `run_watched` hands to the engine; the backend thread reads it.
#[derive(Default)]
struct PassWatch {
    pass: Mutex<Option<(Pass, usize)>>,
    polls: AtomicU64,
}

impl Watch for PassWatch {
    fn cancelled(&self) -> bool {
        self.polls.fetch_add(1, Ordering::Relaxed);
        cancel_requested()
    }

    fn pass(&self, pass: Pass, items: usize) {
        // Passes run one after another: no poll of the last one is still under way.
        *self.pass.lock().unwrap_or_else(|e| e.into_inner()) = Some((pass, items));
        self.polls.store(0, Ordering::Relaxed);
    }
}

impl PassWatch {
    fn report(&self) -> PassReport {
        let pass = *self.pass.lock().unwrap_or_else(|e| e.into_inner());
        PassReport {
            pass: pass.map(|(p, _)| p),
            items: pass.map_or(0, |(_, n)| n),
            done: self.polls.load(Ordering::Relaxed),
        }
    }
}

/// Runs `work` on the pool while this (backend) thread reports progress: `report` gets, every
/// 100 ms, the pass the engine runs and how far it is. Only `report` runs here, so it may call
/// into Postgres; `work` may not.
pub fn run_watched<R: Send>(
    work: impl FnOnce(&dyn Watch) -> R + Send,
    mut report: impl FnMut(PassReport),
) -> R {
    let watch = PassWatch::default();
    let outcome = Mutex::new(None);
    let done = AtomicBool::new(false);
    pool().in_place_scope(|scope| {
        scope.spawn(|_| {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&watch)));
            *outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            done.store(true, Ordering::Release);
        });
        while !done.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(100));
            report(watch.report());
        }
    });
    let result = outcome.into_inner().unwrap_or_else(|e| e.into_inner());
    match result.expect("the spawned work ran to completion") {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// How many threads a pool gets.
fn pool_size() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: a plain read of a GUC variable on the backend thread.
    let workers = unsafe { pg_sys::max_parallel_maintenance_workers }.max(0) as usize;
    cores.min(workers + 1)
}

/// A new pool (see `pool_size`); its threads end once it is dropped. Raises when the threads
/// cannot be started.
fn pool() -> rayon::ThreadPool {
    new_pool().unwrap_or_else(|e| {
        crate::pg::error::raise(
            pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_RESOURCES,
            format!("could not start worker threads: {e}"),
            None,
        )
    })
}

/// A new pool (see `pool_size`), for callers that must not raise (WAL redo).
pub fn new_pool() -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    pool_of(pool_size())
}

/// A pool of `threads` threads.
fn pool_of(threads: usize) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    // Postgres's signal handlers assume they run on the backend thread: workers inherit a mask
    // that blocks every signal, restored on this thread once they exist.
    // SAFETY: sigset_t is plain data filled by sigfillset; pthread_sigmask only changes this
    // thread's mask, and the old mask is put back before returning.
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
        pool
    }
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

/// Runs one engine write transaction on the pool and raises its error, a cancel as Postgres's
/// own. `f` gets the watch (a cancel check) to hand to the engine.
pub fn write<R: Send>(
    index: &hannoy_engine::Index,
    mut f: impl FnMut(&mut hannoy_engine::Writer<'_>, &dyn Watch) -> hannoy_engine::Result<R> + Send,
) -> R {
    let result = run(|| index.write(|writer| f(writer, &cancel_requested)));
    crate::pg::error::OrRaise::or_raise(check_cancelled(result))
}

/// Turns an engine result that may have been cancelled into Postgres's own cancel error (on
/// the backend thread), so the user sees "canceling statement due to user request".
pub fn check_cancelled<T>(result: hannoy_engine::Result<T>) -> hannoy_engine::Result<T> {
    if matches!(result, Err(hannoy_engine::Error::Cancelled)) {
        pgrx::check_for_interrupts!();
    }
    result
}

/// A thread that faults in memory the backend is about to fill (`Room::fault_in`): reading a
/// table's rows into a batch waited mostly on the kernel backing each fresh page, while the
/// other cores had nothing to do. Used only where builds may use more than one core.
pub struct Prefaulter {
    pool: rayon::ThreadPool,
    pending: std::sync::Arc<AtomicU64>,
}

impl Prefaulter {
    /// `None` when builds run on one thread (`max_parallel_maintenance_workers` 0, or one
    /// core) or the thread cannot start: rows are then read as before.
    pub fn new() -> Option<Prefaulter> {
        if pool_size() < 2 {
            return None;
        }
        Some(Prefaulter {
            pool: pool_of(1).ok()?,
            pending: Default::default(),
        })
    }

    /// Queues `room` to be faulted in.
    pub fn fault_in(&self, room: Room) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        let pending = self.pending.clone();
        self.pool.spawn(move || {
            room.fault_in();
            pending.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// Waits until every queued room is faulted in, so that none competes with the work that
    /// follows or outlives the memory.
    pub fn wait(&self) {
        while self.pending.load(Ordering::Acquire) > 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

impl Drop for Prefaulter {
    fn drop(&mut self) {
        self.wait();
    }
}
