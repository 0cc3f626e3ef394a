//! How the process's allocator hands memory back to the operating system.
//!
//! The gateway runs on the C library's allocator. glibc's serves a block of
//! 128 KiB or more with its own `mmap`, returned to the kernel when freed,
//! but each such free raises that threshold to the freed block's size (up to
//! 32 MiB): after one 10 MiB request body, every later body up to 10 MiB
//! comes from the heap of the thread that asked, and stays with the process
//! after it is freed (`bench/memory.py` showed most of an attack's peak
//! still resident seconds after it ended). Fixing the threshold turns the dynamic
//! raise off, so large buffers (request bodies, response copies) are given
//! back when they are dropped, while small ones keep the fast path.
//!
//! This must never be called from library code a test runs: it changes the
//! whole process. Only `main` calls it, once, before the runtime starts.

/// Blocks of this size or more get their own mapping, freed to the kernel.
const MMAP_THRESHOLD: i32 = 256 * 1024;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn return_large_buffers() {
    use std::os::raw::c_int;
    // glibc's `mallopt` parameter numbers, from <malloc.h>.
    const M_MMAP_THRESHOLD: c_int = -3;
    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }
    // SAFETY: `mallopt` only sets a tuning parameter of the allocator; it is
    // called before any thread of ours starts, and any value is valid.
    let ok = unsafe { mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
    if ok != 1 {
        tracing::warn!("could not set the allocator's mmap threshold");
    }
}

/// Other allocators (musl's, macOS's) already return large blocks.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_large_buffers() {
    let _ = MMAP_THRESHOLD;
}
