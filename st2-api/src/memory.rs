//! Handing memory the process no longer uses back to the operating system.
//!
//! `st2d` allocates with mimalloc, which keeps freed pages for reuse and returns them only
//! when a later allocation finds their purge delay expired. Start-up (registering every pack,
//! compiling schemas and templates) frees far more than an idle server then uses, and an idle
//! server allocates too little to trigger that purge: without help its resident size stays at
//! the start-up peak.

/// Returns to the operating system what the allocator holds freed (the calling thread's
/// freed pages and every arena page already scheduled for purging). Call it when a burst of
/// work is over, e.g. once start-up is done. Harmless when the global allocator is not
/// mimalloc: its own heaps are then empty.
pub fn release_freed() {
    // SAFETY: `mi_collect` takes no pointers and only walks mimalloc's own structures, which
    // it synchronises itself; it is safe to call from any thread at any time.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}
