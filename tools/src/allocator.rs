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
//! its RSS. The delay is a measured choice: with snapshots of a 1M-znode tree written
//! back to back under setData load (the snapshot phase of `scripts/bench-server-1m.sh`,
//! two runs of each value on a busy machine), the peak RSS over the RSS before was
//! 1.10x and 1.12x with 0 ms, 1.10x and 1.08x with 10 ms, 1.13x and 1.09x with 100 ms,
//! 1.14x and 1.17x with 1000 ms: a longer delay keeps more, and below 10 ms nothing
//! measurable is gained (`scripts/bench-server.sh --cases write-64`: 16,793 and 12,937
//! ops/s with 0 ms, 9,600 and 13,656 with 10 ms, noise either way).
//!
//! What decides that RSS more than the delay is mimalloc's use of transparent huge
//! pages (`allow_thp`, on by default: its arenas are `madvise`d `MADV_HUGEPAGE`), which
//! makes the heap grow by 2 MiB pages: `MIMALLOC_ALLOW_THP=0` in the server's
//! environment gave 155 MiB instead of 168 holding 1M znodes and 1.07x instead of 1.16x
//! while snapshots are written, but write-64 (`scripts/bench-server.sh`) made 11,986,
//! 11,028, 13,612 and 9,817 ops/s against 14,467, 14,386, 12,728 and 11,617 with them
//! (alternated runs, busy machine: 13% fewer on average), so the server keeps them until
//! a quiet machine says otherwise. Either variable in the environment overrides these
//! settings.

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

/// The purge delay in force, in milliseconds (-1: never).
#[allow(unsafe_code)]
pub fn purge_delay() -> std::ffi::c_long {
    // SAFETY: mi_option_get only reads mimalloc's option table (reading the environment
    // once for an option not yet initialised).
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
}
