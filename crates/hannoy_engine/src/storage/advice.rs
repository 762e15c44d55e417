//! Hints to the kernel about pages of the map. The environment is opened without read-ahead
//! (random reads would bring in pages nobody asked for), so a walk over pages that are not in
//! memory waits for each of them in turn; told first which pages a step is about to read, the
//! kernel reads them all at once.

use std::sync::OnceLock;

fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf only reads a system setting.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(size)
            .ok()
            .filter(|s| s.is_power_of_two())
            .unwrap_or(4096)
    })
}

/// Starts reading the pages under `bytes` into memory, without waiting for them.
pub(crate) fn will_need(bytes: &[u8]) {
    let page = page_size();
    let start = bytes.as_ptr() as usize & !(page - 1);
    let end = bytes.as_ptr() as usize + bytes.len().max(1);
    // SAFETY: the range lies within pages holding a live borrow, so it is mapped; MADV_WILLNEED
    // never changes memory, it only schedules reads. On failure the read faults as before.
    unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_WILLNEED) };
}

/// Whether the page holding the first byte of `bytes` is in memory (true if the kernel cannot
/// tell).
pub(crate) fn resident(bytes: &[u8]) -> bool {
    let page = page_size();
    let start = bytes.as_ptr() as usize & !(page - 1);
    let mut state = [0u8; 1];
    // SAFETY: the page is mapped (it holds a live borrow), and mincore writes one byte per page
    // of the one-byte range into `state`.
    let rc = unsafe { libc::mincore(start as *mut libc::c_void, 1, state.as_mut_ptr()) };
    rc != 0 || state[0] & 1 == 1
}

/// Page faults of the calling thread so far that had to wait for a read from disk.
pub(crate) fn major_faults() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; on failure it is left zeroed.
    unsafe {
        libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr());
        usage.assume_init().ru_majflt as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_just_written_is_resident_and_advice_is_harmless() {
        let bytes = vec![7u8; 3 * page_size()];
        assert!(resident(&bytes[page_size() + 5..]));
        will_need(&bytes[10..2 * page_size()]);
        will_need(&bytes[..0]);
        assert!(bytes.iter().all(|&b| b == 7));
    }
}
