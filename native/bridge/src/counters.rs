//! Callback outcome counters and the callback-delay histogram.
//!
//! Counters are striped: each producer thread bumps the counters of one of
//! [`STRIPES`] cache-padded stripes, picked once per thread, so that engine
//! threads calling at once do not fight over one cache line. A read sums the
//! stripes (std atomics: these are not part of the loom model). Each counter is exact; a read taken while callbacks run is not an
//! atomic snapshot across counters, but one taken at quiescence is.

use crate::sync::Padded;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::ffi::{EVB_DROP_REASONS as DROP_REASONS, EVB_INVALID_REASONS as INVALID_REASONS};
use std::cell::Cell;

/// Number of counter stripes per bridge.
pub const STRIPES: usize = 16;

/// Upper bounds of the callback-delay histogram buckets, in nanoseconds; a
/// last, implicit bucket holds everything above. Roughly 1-5-10 steps from
/// 1 µs to 1 s: the callback itself costs tens of ns, a UDP datagram is
/// stamped a few µs before its callback, and a starved engine thread shows up
/// in the ms buckets. The default late threshold (1 ms) is a bound.
pub const DELAY_BOUNDS_NS: [u64; 13] = [
    1_000,
    5_000,
    10_000,
    50_000,
    100_000,
    500_000,
    1_000_000,
    5_000_000,
    10_000_000,
    50_000_000,
    100_000_000,
    500_000_000,
    1_000_000_000,
];

/// Number of histogram buckets, the overflow bucket included.
pub const DELAY_BUCKETS: usize = DELAY_BOUNDS_NS.len() + 1;

// Drop and invalid reasons are the C API's enums (`ffi::EvbDropReason`,
// `ffi::EvbInvalidReason`), used as indices into the stripes' arrays.

#[derive(Default)]
pub(crate) struct Stripe {
    pub accepted: AtomicU64,
    pub dropped: [AtomicU64; DROP_REASONS],
    pub invalid: [AtomicU64; INVALID_REASONS],
    pub stale: AtomicU64,
    pub panicked: AtomicU64,
    pub late: AtomicU64,
    pub delay: [AtomicU64; DELAY_BUCKETS],
    pub delay_sum_ns: AtomicU64,
}

/// A bridge's counters.
pub(crate) struct Counters {
    stripes: Box<[Padded<Stripe>]>,
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);
std::thread_local! {
    static MY_STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The stripe index of the calling thread, assigned round-robin on first use.
pub(crate) fn stripe_index() -> usize {
    MY_STRIPE.with(|c| {
        let v = c.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
        c.set(v);
        v
    })
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Bucket index for a delay in nanoseconds.
pub fn delay_bucket(delay_ns: u64) -> usize {
    DELAY_BOUNDS_NS.iter().position(|&b| delay_ns <= b).unwrap_or(DELAY_BOUNDS_NS.len())
}

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters { stripes: (0..STRIPES).map(|_| Padded(Stripe::default())).collect() }
    }

    /// The calling thread's stripe.
    pub(crate) fn mine(&self) -> &Stripe {
        &self.stripes[stripe_index()]
    }

    pub(crate) fn sum(&self, f: impl Fn(&Stripe) -> &AtomicU64) -> u64 {
        self.stripes.iter().map(|s| f(s).load(Ordering::Relaxed)).sum()
    }
}

/// Process-wide counters for calls no bridge can be named for.
pub(crate) struct Orphans {
    pub bad_userdata: AtomicU64,
    pub panicked: AtomicU64,
}

pub(crate) static ORPHANS: Orphans =
    Orphans { bad_userdata: AtomicU64::new(0), panicked: AtomicU64::new(0) };
