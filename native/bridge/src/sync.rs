//! Atomics used by the ring and the registry: `std`'s in normal builds,
//! `loom`'s under `RUSTFLAGS="--cfg loom"` so that `tests/loom.rs` can explore
//! every interleaving of the real code.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};

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
