//! Callback outcome counters and the callback-delay histogram.
//!
//! Counters are striped (`sync::my_stripe`): a producer thread owns one of
//! the stripes for its lifetime and is then its only writer, so it bumps
//! with a plain load and store, with no locked instruction on the callback
//! path (a locked add waits for the thread's earlier stores, here the record
//! just copied into the ring, to leave the store buffer; in `bench/native`
//! the drop path went from 6.4 to 8.4 M calls/s without them). Threads
//! beyond the owned stripes share the others, with atomic adds. A read sums
//! the stripes. Each counter is exact; a read taken while callbacks run is
//! not an atomic snapshot across counters, but one taken at quiescence is.
//! (std atomics: these are not part of the loom model.)

use crate::abi::{DELAY_BOUNDS_NS, EVB_DELAY_BUCKETS, EVB_DROP_REASONS, EVB_INVALID_REASONS};
use crate::sync::{stripe_add, Padded, STRIPES};
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

/// Adds one with an atomic add: for counters any thread may bump.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The calling thread's stripe of one bridge ([`Counters::mine`]); its
/// `bump` and `add` are plain stores when the thread owns the stripe.
pub(crate) struct Mine<'a> {
    stripe: &'a Stripe,
    owned: bool,
}

impl std::ops::Deref for Mine<'_> {
    type Target = Stripe;
    fn deref(&self) -> &Stripe {
        self.stripe
    }
}

impl Mine<'_> {
    /// Adds one to `c`, a counter of this stripe.
    #[inline]
    pub(crate) fn bump(&self, c: &AtomicU64) {
        stripe_add(c, 1, self.owned);
    }

    /// Adds `n` to `c`, a counter of this stripe (wrapping, as `fetch_add`).
    #[inline]
    pub(crate) fn add(&self, c: &AtomicU64, n: u64) {
        stripe_add(c, n, self.owned);
    }
}

/// Bucket index for a delay in nanoseconds.
pub fn delay_bucket(delay_ns: u64) -> usize {
    DELAY_BOUNDS_NS.iter().position(|&b| delay_ns <= b).unwrap_or(DELAY_BOUNDS_NS.len())
}

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters { stripes: (0..STRIPES).map(|_| Padded(Stripe::default())).collect() }
    }

    /// The calling thread's stripe of these counters; `claim` is what
    /// `sync::my_stripe()` returned on this thread (callers look it up once
    /// per call and use it for every counter they touch).
    pub(crate) fn stripe(&self, claim: (usize, bool)) -> Mine<'_> {
        let (index, owned) = claim;
        Mine { stripe: &self.stripes[index], owned }
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::{my_stripe, OWNED_STRIPES};
    use std::sync::{Arc, Barrier};

    /// Runs `threads` threads at once, each bumping `accepted` `per` times
    /// and adding 3 to `delay_sum_ns` as often; returns how many of them
    /// owned their stripe.
    fn wave(c: &Arc<Counters>, threads: usize, per: u64) -> usize {
        let start = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (c, start) = (c.clone(), start.clone());
                std::thread::spawn(move || {
                    // Every thread claims its stripe while all are alive.
                    let owned = c.stripe(my_stripe()).owned;
                    start.wait();
                    for _ in 0..per {
                        let m = c.stripe(my_stripe());
                        m.bump(&m.accepted);
                        m.add(&m.delay_sum_ns, 3);
                    }
                    owned
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).filter(|&o| o).count()
    }

    #[test]
    fn counts_stay_exact_with_more_threads_than_stripes_and_across_owners() {
        let c = Arc::new(Counters::new());
        // 40 live threads: at most 16 own a stripe, the rest share 4.
        let owned = wave(&c, 40, 20_000);
        assert!((1..=OWNED_STRIPES).contains(&owned), "{owned} threads owned a stripe");
        assert_eq!(c.sum(|s| &s.accepted), 40 * 20_000);
        // Those threads exited and gave their stripes back: new threads take
        // them over and continue from the values the old owners left.
        for _ in 0..3 {
            let owned = wave(&c, 8, 20_000);
            assert!(owned >= 1, "none of 8 threads owned a stripe after the 40 exited: claims were not given back");
        }
        assert_eq!(c.sum(|s| &s.accepted), 64 * 20_000);
        assert_eq!(c.sum(|s| &s.delay_sum_ns), 3 * 64 * 20_000);
    }
}
