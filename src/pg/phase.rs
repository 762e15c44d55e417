//! The step of hannoy's work a backend is in, shown as its application_name in
//! pg_stat_activity ("hannoy: merge") while `hannoy.trace_phases` is on: the crash test waits
//! for a step there before it kills the backend, so each kill is known to land inside the step
//! it names. Off by default, and then nothing is reported.

use std::cell::Cell;
use std::ffi::CStr;

use pgrx::pg_sys;

thread_local! {
    /// The innermost step entered, to restore when a nested one ends.
    static CURRENT: Cell<Option<&'static CStr>> = const { Cell::new(None) };
}

/// Reported until dropped; then the enclosing step, or the session's own application_name.
pub struct Phase {
    outer: Option<&'static CStr>,
    shown: bool,
}

/// Enters the step `name` (a literal such as c"hannoy: merge").
pub fn enter(name: &'static CStr) -> Phase {
    let shown = crate::pg::guc::trace_phases();
    let outer = CURRENT.replace(Some(name));
    if shown {
        report(name);
    }
    Phase { outer, shown }
}

fn report(name: &CStr) {
    // SAFETY: copies the NUL-terminated string into this backend's status slot, on the
    // backend thread.
    unsafe { pg_sys::pgstat_report_appname(name.as_ptr()) };
}

impl Drop for Phase {
    fn drop(&mut self) {
        CURRENT.set(self.outer);
        if !self.shown {
            return;
        }
        match self.outer {
            Some(outer) => report(outer),
            // SAFETY: application_name is the GUC's NUL-terminated value, or NULL.
            None => unsafe {
                let own = pg_sys::application_name;
                report(if own.is_null() {
                    c""
                } else {
                    CStr::from_ptr(own)
                });
            },
        }
    }
}
