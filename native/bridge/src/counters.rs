//! Callback outcome counters and the callback-delay histogram.
//!
//! Counters are striped: each producer thread bumps the counters of one of
//! [`STRIPES`] cache-padded stripes, picked once per thread
//! ([`stripe_index`]), so that engine threads calling at once do not fight
//! over one cache line. A read sums the stripes. Each counter is exact; a
//! read taken while callbacks run is not an atomic snapshot across counters,
//! but one taken at quiescence is. (std atomics: these are not part of the
//! loom model.)

use crate::abi::{DELAY_BOUNDS_NS, EVB_DELAY_BUCKETS, EVB_DROP_REASONS, EVB_INVALID_REASONS};
use crate::sync::{stripe_index, Padded, STRIPES};
use std::sync::atomic::{AtomicU64, Ordering};

/// One thread's share of a bridge's counters. Drop and invalid reasons are
/// the C API's enums (`abi::EvbDropReason`, `abi::EvbInvalidReason`), used as
/// indices.
#[derive(Default)]
pub(crate) struct Stripe {
    pub calls: AtomicU64,
    pub accepted: AtomicU64,
    pub dropped: [AtomicU64; EVB_DROP_REASONS],
    pub invalid: [AtomicU64; EVB_INVALID_REASONS],
    pub stale: AtomicU64,
    pub panicked: AtomicU64,
    pub late: AtomicU64,
    pub delay: [AtomicU64; EVB_DELAY_BUCKETS],
    pub delay_sum_ns: AtomicU64,
}

/// A bridge's counters.
pub(crate) struct Counters {
    stripes: Box<[Padded<Stripe>]>,
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
    /// Calls whose userdata resolved to no bridge (counted on entry).
    pub calls: AtomicU64,
    pub bad_userdata: AtomicU64,
    pub panicked: AtomicU64,
}

pub(crate) static ORPHANS: Orphans =
    Orphans { calls: AtomicU64::new(0), bad_userdata: AtomicU64::new(0), panicked: AtomicU64::new(0) };
