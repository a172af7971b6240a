//! The process's allocator settings (the binary's global allocator is mimalloc).
//!
//! mimalloc hands memory it has freed back to the kernel 10 ms later (its `purge_delay`),
//! and the kernel zeroes every page it gives out again. A command that loads a data
//! directory frees and allocates its decode buffers all the time, so it paid that twice:
//! on a 1M-znode ZooKeeper directory the recovery spent 0.35 s in the kernel (zeroing
//! pages faulted in again) against 0.08 s with purging off, about a fifth of its time. A
//! command that runs and exits therefore keeps what it frees ([`keep_freed_memory`]).
//!
//! The server (`serve`) gives memory back [`SERVE_PURGE_DELAY_MS`] after freeing it
//! ([`serve_purge_delay`]), so that what a snapshot or a burst of writes freed leaves
//! its RSS: with snapshots of a 1M-znode tree under load (`scripts/bench-server-1m.sh`,
//! busy machine) the peak over the RSS before was 1.08-1.12x with 0 or 10 ms and
//! 1.09-1.17x with 100 or 1000 ms, and write-64 showed no difference below 10 ms.
//!
//! What decides that RSS more than the delay is mimalloc's use of transparent huge
//! pages (`allow_thp`, on by default: its arenas are `madvise`d `MADV_HUGEPAGE`): the
//! heap then grows by 2 MiB pages, each zeroed on the path of the thread that faults it
//! (a server's committer). Every command runs without them ([`without_huge_pages`]);
//! the README (Performance) has the figures for both. `MIMALLOC_PURGE_DELAY` or
//! `MIMALLOC_ALLOW_THP` in the environment overrides these settings.

/// mimalloc's `mi_option_purge_delay` (option 15 in mimalloc 2 and 3; libmimalloc-sys
/// has no constant for it). A test checks the number against the linked mimalloc.
pub const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// From now on, memory this process frees stays with mimalloc for its next allocations
/// (purge delay -1: never purge) until the process exits.
#[allow(unsafe_code)]
pub fn keep_freed_memory() {
    // SAFETY: mi_option_set only stores a value in mimalloc's option table; it takes any
    // option number and value and is safe to call from any thread at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// The purge delay `serve` runs with, in milliseconds (see the module documentation).
pub const SERVE_PURGE_DELAY_MS: std::ffi::c_long = 10;

/// The server's setting: memory it frees goes back to the system
/// [`SERVE_PURGE_DELAY_MS`] later, unless `MIMALLOC_PURGE_DELAY` in the environment says
/// otherwise.
#[allow(unsafe_code)]
pub fn serve_purge_delay() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: as in keep_freed_memory.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, SERVE_PURGE_DELAY_MS) }
}

/// mimalloc's `mi_option_allow_thp` (option 43 in mimalloc 3; no constant in
/// libmimalloc-sys either). A test checks the number against the linked mimalloc.
pub const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// No transparent huge pages, unless `MIMALLOC_ALLOW_THP` in the environment says
/// otherwise: mimalloc stops asking for them, and the process opts out
/// (`PR_SET_THP_DISABLE`, checked at every fault: it covers what was reserved before).
#[allow(unsafe_code)]
pub fn without_huge_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    // SAFETY: as in keep_freed_memory.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0) }
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_THP_DISABLE, 1) only sets a flag of this process; it reads no
    // memory of ours. It cannot fail on a kernel that has it; on one that has not, the
    // process keeps the system's setting, which is only slower.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Whether mimalloc may use transparent huge pages (option `allow_thp`; 2 asks for
/// them more eagerly), and whether the process opted out of them (Linux only).
#[allow(unsafe_code)]
pub fn huge_pages() -> (std::ffi::c_long, bool) {
    // SAFETY: as in purge_delay.
    let allow = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_ALLOW_THP) };
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_GET_THP_DISABLE) only returns the flag.
    let off = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) } == 1;
    #[cfg(not(target_os = "linux"))]
    let off = false;
    (allow, off)
}

/// The purge delay in force, in milliseconds (-1: never).
#[allow(unsafe_code)]
pub fn purge_delay() -> std::ffi::c_long {
    // SAFETY: mi_option_get only reads mimalloc's option table (reading the environment
    // once for an option not yet initialised).
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
}
