//! Concurrency primitives used by the ring and the token registry: `std`'s
//! in normal builds, `loom`'s under `RUSTFLAGS="--cfg loom"` so that
//! `tests/loom.rs` explores every interleaving of the real code.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::Mutex;

/// Number of stripes of the registry's in-flight counters: each thread uses
/// one, picked once per thread, so that engine threads calling at once do
/// not fight over one cache line. (The callback outcome counters have their
/// own, owned stripes: `counters.rs`.) Under loom every thread uses stripe 0
/// (the most contended case) and there are two stripes, to keep the model
/// small.
#[cfg(not(loom))]
pub const STRIPES: usize = 16;
/// See the non-loom definition.
#[cfg(loom)]
pub const STRIPES: usize = 2;

#[cfg(not(loom))]
static NEXT_STRIPE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
#[cfg(not(loom))]
std::thread_local! {
    static MY_STRIPE: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// The stripe index of the calling thread, assigned round-robin on first use.
#[cfg(not(loom))]
pub(crate) fn stripe_index() -> usize {
    MY_STRIPE.with(|c| {
        let v = c.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT_STRIPE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % STRIPES;
        c.set(v);
        v
    })
}

/// See the non-loom definition.
#[cfg(loom)]
pub(crate) fn stripe_index() -> usize {
    0
}

/// One step of a wait loop: lets other threads (or, under loom, other
/// modelled threads) run.
pub(crate) fn spin_yield() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}

/// Aligns `T` to 128 bytes so that two of them never share a cache line, nor
/// an adjacent-line prefetch pair (Intel's spatial prefetcher pulls lines in
/// pairs, which is why crossbeam and rtrb pad to 128 on x86_64).
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
