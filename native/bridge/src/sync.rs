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

/// Stripes a thread can own: the first this many threads to call in at once
/// each get one, for their lifetime, and are then its only writer (in every
/// bridge's counters and every registry slot), so they update it with a
/// plain load and store instead of a locked add. See [`my_stripe`].
#[cfg(not(loom))]
pub(crate) const OWNED_STRIPES: usize = 16;
/// Stripes shared, round-robin, by the threads beyond [`OWNED_STRIPES`]
/// (updated with atomic adds).
#[cfg(not(loom))]
pub(crate) const SHARED_STRIPES: usize = 4;
/// Number of stripes, owned and shared: the callback outcome counters and
/// the registry's in-flight counters each have this many, cache-padded, so
/// that engine threads calling at once do not fight over one cache line.
#[cfg(not(loom))]
pub const STRIPES: usize = OWNED_STRIPES + SHARED_STRIPES;
/// Under loom there are two stripes and every thread shares stripe 0 (the
/// most contended case, with atomic adds), to keep the model small.
#[cfg(loom)]
pub const STRIPES: usize = 2;

/// Which owned stripes a live thread holds.
#[cfg(not(loom))]
static CLAIMED: [std::sync::atomic::AtomicBool; OWNED_STRIPES] =
    [const { std::sync::atomic::AtomicBool::new(false) }; OWNED_STRIPES];
#[cfg(not(loom))]
static NEXT_SHARED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A thread's stripe: owned (index below [`OWNED_STRIPES`]) or shared.
#[cfg(not(loom))]
struct Claim {
    index: usize,
    owned: bool,
}

#[cfg(not(loom))]
impl Claim {
    fn take() -> Claim {
        use std::sync::atomic::Ordering::{Acquire, Relaxed};
        for (index, c) in CLAIMED.iter().enumerate() {
            // Acquire: pairs with the Release in `drop` of the previous
            // owner, so this thread's first load of a stripe counter sees
            // that owner's last store.
            if !c.load(Relaxed) && c.compare_exchange(false, true, Acquire, Relaxed).is_ok() {
                return Claim { index, owned: true };
            }
        }
        Claim { index: OWNED_STRIPES + NEXT_SHARED.fetch_add(1, Relaxed) % SHARED_STRIPES, owned: false }
    }
}

#[cfg(not(loom))]
impl Drop for Claim {
    fn drop(&mut self) {
        if self.owned {
            // The thread is exiting: every update it made to its stripes
            // happens before the next owner's claim.
            CLAIMED[self.index].store(false, std::sync::atomic::Ordering::Release);
        }
    }
}

#[cfg(not(loom))]
std::thread_local! {
    static CLAIM: Claim = Claim::take();
}

/// The calling thread's stripe index (below [`STRIPES`]) and whether the
/// thread owns it, claimed on first use and given back when the thread
/// exits. A thread whose thread-locals are being destroyed gets the first
/// shared stripe.
#[cfg(not(loom))]
pub(crate) fn my_stripe() -> (usize, bool) {
    CLAIM.try_with(|c| (c.index, c.owned)).unwrap_or((OWNED_STRIPES, false))
}

/// See the non-loom definition.
#[cfg(loom)]
pub(crate) fn my_stripe() -> (usize, bool) {
    (0, false)
}

/// Adds `n` (wrapping) to `c`, a counter of the calling thread's stripe,
/// `Relaxed`; `owned` is [`my_stripe`]'s.
#[inline]
pub(crate) fn stripe_add(c: &AtomicU64, n: u64, owned: bool) {
    if owned {
        // Only this thread writes this stripe (see `my_stripe`), so a load
        // and a store lose nothing; readers see each store whole.
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    } else {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// Takes one from `c`, a counter of the calling thread's stripe, with
/// `Release`: what the thread did before happens before a reader's
/// `Acquire` load that sees the new value. `owned` is [`my_stripe`]'s.
#[inline]
pub(crate) fn stripe_release_one(c: &AtomicU64, owned: bool) {
    if owned {
        // As in `stripe_add`: this thread is the stripe's only writer.
        c.store(c.load(Ordering::Relaxed).wrapping_sub(1), Ordering::Release);
    } else {
        c.fetch_sub(1, Ordering::Release);
    }
}

/// The full barrier of the store-buffering (Dekker) patterns of the ring's
/// doorbell and the registry: each side writes, then reads what the other
/// side writes, and at least one must see the other's write. Calls make the
/// write on one side ([`barrier::light`], on every callback) and the rare
/// events make it on the other ([`barrier::heavy`]: arming the doorbell,
/// detaching a bridge).
///
/// Where Linux offers `membarrier(2)` with `MEMBARRIER_CMD_PRIVATE_EXPEDITED`
/// (4.14 on), the barrier is asymmetric: `light` only stops the compiler
/// from reordering, and `heavy` calls `membarrier`, which runs a full
/// barrier on every thread of the process that is running (a thread that is
/// not running passes one when it is switched back in). Why that is enough:
/// take the light side's write W and read R, and the point B where the
/// membarrier barrier hits its thread. If B falls between W and R, it is a
/// fence there and the pattern holds as with two fences. If B comes after
/// R, W and R both completed before `membarrier` returned, so the heavy
/// side's read, which follows the return, sees W. If B comes before W, the
/// heavy side's write was visible to all before B, so R, after B, sees it.
/// This is the asymmetric Dekker of the `membarrier(2)` man page and of
/// Folly's `asymmetricHeavyBarrier`. A locked instruction on every callback
/// makes the engine thread wait for its store buffer (the record it just
/// copied) to drain: in `bench/native` the fence in the ring's `publish`
/// took 96 % of `commit`'s samples, and then the registry's took the same
/// share of `evb_on_event`'s.
///
/// Without `membarrier`, and under loom, both sides are `SeqCst` fences
/// (the loom model checks that form).
pub(crate) mod barrier {
    #[cfg(not(loom))]
    use std::sync::OnceLock;

    /// From linux/membarrier.h (`enum membarrier_cmd`).
    #[cfg(not(loom))]
    const CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    #[cfg(not(loom))]
    const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    #[cfg(not(loom))]
    static ASYMMETRIC: OnceLock<bool> = OnceLock::new();

    /// Whether the barrier is asymmetric: registers this process for private
    /// expedited membarriers on first use; false if the kernel refuses (too
    /// old, or the call is filtered). Fixed for the process once answered.
    #[cfg(not(loom))]
    pub(crate) fn asymmetric() -> bool {
        // SAFETY: membarrier takes (cmd, flags, cpu_id) integers and touches
        // no memory of ours; an unknown or refused command returns -1.
        *ASYMMETRIC.get_or_init(|| unsafe { libc::syscall(libc::SYS_membarrier, CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) } == 0)
    }

    /// See the non-loom definition: never under loom.
    #[cfg(loom)]
    pub(crate) fn asymmetric() -> bool {
        false
    }

    /// The frequent side's barrier.
    #[inline]
    pub(crate) fn light() {
        if asymmetric() {
            std::sync::atomic::compiler_fence(super::Ordering::SeqCst);
        } else {
            super::fence(super::Ordering::SeqCst);
        }
    }

    /// The rare side's barrier. Should the kernel refuse the membarrier
    /// after registering, a fence is the best left to do; but membarrier(2)
    /// lists only EINVAL and EPERM (not registered), and the registration
    /// rules both out: it belongs to the address space, a forked child
    /// inherits it (checked on Linux 6.18), and execve starts a new image
    /// with fresh statics.
    pub(crate) fn heavy() {
        #[cfg(not(loom))]
        // SAFETY: as in `asymmetric`.
        if asymmetric() && unsafe { libc::syscall(libc::SYS_membarrier, CMD_PRIVATE_EXPEDITED, 0, 0) } == 0 {
            return;
        }
        super::fence(super::Ordering::SeqCst);
    }
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

/// Asks the CPU to bring the cache line holding `p` into this core's cache
/// in a writable state (x86 `PREFETCHW`), without waiting and without
/// touching memory as far as the memory model is concerned: a hint, which
/// may be ignored, on any address, valid or not. Elsewhere, and under loom,
/// it does nothing.
#[inline(always)]
pub(crate) fn prefetch_write(p: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    // SAFETY: PREFETCHW does not access memory architecturally and never
    // faults; on CPUs without it the encoding runs as a NOP.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_ET0 }>(p.cast())
    };
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    let _ = p;
}
