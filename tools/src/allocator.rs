//! The process's allocator settings (the binary's global allocator is mimalloc).
//!
//! mimalloc hands memory it has freed back to the kernel 10 ms later (its `purge_delay`),
//! and the kernel zeroes every page it gives out again. A command that loads a data
//! directory frees and allocates its decode buffers all the time, so it paid that twice:
//! on a 1M-znode ZooKeeper directory the recovery spent 0.35 s in the kernel (zeroing
//! pages faulted in again) against 0.08 s with purging off, about a fifth of its time. A
//! command that runs and exits therefore keeps what it frees ([`keep_freed_memory`]);
//! the server (`serve`) keeps mimalloc's default, so memory freed after a snapshot or a
//! burst of writes goes back to the system.

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

/// The purge delay in force, in milliseconds (-1: never).
#[allow(unsafe_code)]
pub fn purge_delay() -> std::ffi::c_long {
    // SAFETY: mi_option_get only reads mimalloc's option table (reading the environment
    // once for an option not yet initialised).
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
}
