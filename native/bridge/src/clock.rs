//! The callback's clock: CLOCK_MONOTONIC nanoseconds, read through the
//! time-stamp counter where that is safe.
//!
//! Every accepted or dropped call reads the clock once, to measure how late
//! the callback runs against the event's timestamp. On this project's x86-64
//! machines `clock_gettime(CLOCK_MONOTONIC)` costs about 36 ns in the vDSO,
//! most of it an ordered `RDTSC` (which waits for earlier instructions) and
//! the vDSO's seqlock; a plain `RDTSC` costs about 19 ns and overlaps with the
//! work around it (20 million back-to-back reads of each, on the 2-core
//! KVM guest the benchmarks run on).
//!
//! # How the counter maps to CLOCK_MONOTONIC
//!
//! The mapping is a line through an *anchor*, a pair of readings
//! `(tsc, ns)` taken together, with a slope in nanoseconds per tick:
//! `ns = anchor_ns + (tsc - anchor_tsc) * slope`. The kernel's vDSO computes
//! CLOCK_MONOTONIC from the same counter the same way (`mult`/`shift` in
//! `kernel/time/timekeeping.c`); we cannot read its parameters, so we
//! measure our own:
//!
//! * The slope comes from the first anchor ever taken (the *base*) and the
//!   newest one, so its baseline grows with the process's age; it is only
//!   used once the baseline is at least [`MIN_BASELINE_NS`] long, which
//!   bounds its error near `2 × 40 ns / 50 ms`, under 2 ppm (a pair is
//!   typically 40 ns wide, and one wider than [`PAIR_MAX_TICKS`] is never
//!   used).
//! * A read whose anchor is older than [`REFRESH_NS`] (1 ms) does not use the
//!   line: it reads `clock_gettime`, and re-takes the anchor from that
//!   reading unless another thread is doing so. So the line is never
//!   extrapolated more than 1 ms: with the slope off by the most NTP may
//!   slew CLOCK_MONOTONIC (500 ppm) the error stays under 0.5 µs, under
//!   2 ns with the slope's own error alone. The smallest callback-delay
//!   bucket bound is 1 µs. One read per millisecond in the process pays the
//!   kernel clock and the re-anchoring (about 100 ns here); the others pay
//!   the counter. Nothing depends on a consumer running.
//! * Two reads on either side of a re-anchoring may therefore step back by
//!   up to that error; the callback only subtracts an event's timestamp from
//!   one read (saturating at zero), so nothing relies on reads being
//!   monotonic.
//!
//! The counter is used only where the kernel itself keeps CLOCK_MONOTONIC on
//! it (the `tsc` clocksource, which Linux picks only when the counter is
//! invariant and synchronised across CPUs) on x86-64; everywhere else, and
//! until the slope's baseline is long enough, every read is
//! `clock_gettime`.
//!
//! # Memory ordering
//!
//! The anchor is a seqlock (Linux's `seqcount_t`, the vDSO's own pattern):
//! one writer at a time (a `try_lock`ed flag), which makes the sequence odd,
//! stores the fields, and makes it even again, with `Release`; readers load
//! the sequence with `Acquire`, the fields `Relaxed`, an `Acquire` fence and
//! the sequence again, and use the fields only if both sequence loads were
//! the same even value. A reader that sees a write in progress does not
//! wait: it reads `clock_gettime`. (std atomics: not part of the loom
//! model; the fields are atomics, so a torn read is a rejected read, never
//! undefined behaviour.)

use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use crate::sync::Padded;
use std::sync::OnceLock;

/// A read whose anchor is older than this, in nanoseconds, reads
/// `clock_gettime` and re-takes the anchor.
pub(crate) const REFRESH_NS: u64 = 1_000_000;
/// The slope is measured over at least this many nanoseconds before the
/// counter is used.
pub(crate) const MIN_BASELINE_NS: u64 = 50_000_000;

/// CLOCK_MONOTONIC in nanoseconds, from the kernel.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists on Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Whether the kernel keeps CLOCK_MONOTONIC on the TSC; read from sysfs by
/// [`init`], on a control thread, never on the callback path.
static TSC_OK: OnceLock<bool> = OnceLock::new();

/// Decides once per process whether the counter may be used (module docs).
/// Reads a sysfs file; call it from a control thread before callbacks run
/// (`Bridge::new` does). Until it has run, every read is `clock_gettime`.
pub fn init() {
    TSC_OK.get_or_init(|| {
        cfg!(target_arch = "x86_64")
            && std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
                .is_ok_and(|s| s.trim() == "tsc")
    });
}

/// The time-stamp counter, or `None` where it is not used (module docs).
#[inline(always)]
fn ticks() -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    {
        if TSC_OK.get() == Some(&true) {
            // SAFETY: RDTSC exists on every x86-64 CPU and reads a register;
            // it has no memory effects.
            return Some(unsafe { std::arch::x86_64::_rdtsc() });
        }
    }
    None
}

/// A line from the counter to CLOCK_MONOTONIC and its seqlock (module
/// docs). The process uses one, [`CLOCK`]; tests make their own.
pub struct Clock {
    seq: AtomicU64,
    anchor_tsc: AtomicU64,
    anchor_ns: AtomicU64,
    /// Nanoseconds per tick, 32.32 fixed point; 0 until the baseline is long
    /// enough (readers then read `clock_gettime`).
    slope: AtomicU64,
    /// Ticks after `anchor_tsc` past which reads re-take the anchor; 0 while
    /// there is no slope.
    refresh_ticks: AtomicU64,
    /// The one writer's flag.
    writing: AtomicBool,
    /// The first anchor (0, 0 before it), written only by the writer.
    base_tsc: AtomicU64,
    base_ns: AtomicU64,
}

/// The process's clock, on its own cache line: every callback reads it and
/// only a re-anchoring read, at most about once a millisecond, writes it.
pub(crate) static CLOCK: Padded<Clock> = Padded(Clock::new());

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock with no anchor: it reads `clock_gettime` until a read takes
    /// one.
    pub const fn new() -> Clock {
        Clock {
            seq: AtomicU64::new(0),
            anchor_tsc: AtomicU64::new(0),
            anchor_ns: AtomicU64::new(0),
            slope: AtomicU64::new(0),
            refresh_ticks: AtomicU64::new(0),
            writing: AtomicBool::new(false),
            base_tsc: AtomicU64::new(0),
            base_ns: AtomicU64::new(0),
        }
    }

    /// CLOCK_MONOTONIC in nanoseconds: from the counter when the anchor is
    /// under [`REFRESH_NS`] old, from `clock_gettime` otherwise, in which
    /// case this call also re-takes the anchor unless another thread is
    /// (module docs). Any thread; never blocks, never allocates.
    #[inline(always)]
    pub fn now_ns(&self) -> u64 {
        let s1 = self.seq.load(Ordering::Acquire);
        let tsc_a = self.anchor_tsc.load(Ordering::Relaxed);
        let ns_a = self.anchor_ns.load(Ordering::Relaxed);
        let slope = self.slope.load(Ordering::Relaxed);
        let fresh = self.refresh_ticks.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        let s2 = self.seq.load(Ordering::Relaxed);
        let Some(t) = ticks() else { return monotonic_ns() };
        // A counter read a hair before the anchor (taken on another CPU)
        // wraps to a huge age and takes the slow path too.
        let age = t.wrapping_sub(tsc_a);
        if slope != 0 && s1 == s2 && s1 & 1 == 0 && age <= fresh {
            // age * slope is about age in ns * 2^32 <= 1 ms * 2^32 < 2^52:
            // no overflow.
            return ns_a + ((age * slope) >> 32);
        }
        self.slow_now_ns()
    }

    /// [`Clock::now_ns`] without a fresh anchor: the kernel's reading, and a
    /// new anchor from it when the old one is over [`REFRESH_NS`] old (or
    /// absent) and no other thread is writing one.
    #[cold]
    #[inline(never)]
    fn slow_now_ns(&self) -> u64 {
        let ns = monotonic_ns();
        let anchor_ns = self.anchor_ns.load(Ordering::Relaxed);
        if ns.saturating_sub(anchor_ns) < REFRESH_NS && anchor_ns != 0 {
            return ns; // taken moments ago (or a write is in progress)
        }
        if self.writing.swap(true, Ordering::Acquire) {
            return ns;
        }
        let Some((tsc, anchor)) = pair() else {
            // No tight pair (interrupted twice): keep the old line and let
            // a later read try again, rather than anchor on a loose pair.
            self.writing.store(false, Ordering::Release);
            return ns;
        };
        if self.base_ns.load(Ordering::Relaxed) == 0 {
            self.base_tsc.store(tsc, Ordering::Relaxed);
            self.base_ns.store(anchor, Ordering::Relaxed);
        }
        let dt = tsc.wrapping_sub(self.base_tsc.load(Ordering::Relaxed));
        let dn = anchor.saturating_sub(self.base_ns.load(Ordering::Relaxed));
        let slope = if dn >= MIN_BASELINE_NS && dt > 0 && dt < 1 << 63 {
            u64::try_from((u128::from(dn) << 32) / u128::from(dt)).unwrap_or(0)
        } else {
            0
        };
        let fresh = match slope {
            0 => 0,
            s => u64::try_from((u128::from(REFRESH_NS) << 32) / u128::from(s)).unwrap_or(0),
        };
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        self.anchor_tsc.store(tsc, Ordering::Relaxed);
        self.anchor_ns.store(anchor, Ordering::Relaxed);
        self.slope.store(slope, Ordering::Relaxed);
        self.refresh_ticks.store(fresh, Ordering::Relaxed);
        self.seq.store(seq + 2, Ordering::Release);
        self.writing.store(false, Ordering::Release);
        ns
    }

    /// Whether [`Clock::now_ns`] would read the counter now (a slope and a
    /// fresh anchor exist). Any thread; a snapshot.
    #[cfg(test)]
    pub fn counter_in_use(&self) -> bool {
        let Some(t) = ticks() else { return false };
        self.slope.load(Ordering::Relaxed) != 0
            && t.wrapping_sub(self.anchor_tsc.load(Ordering::Relaxed)) <= self.refresh_ticks.load(Ordering::Relaxed)
    }
}

/// Counter ticks the two reads around `clock_gettime` may be apart for a
/// pair to be used: about 0.3 µs at 3 GHz, so the midpoint is within about
/// 0.15 µs of the kernel's reading. An undisturbed pair here is about 40 ns
/// wide; a wider one was interrupted or migrated.
const PAIR_MAX_TICKS: u64 = 1_000;

/// One `(ticks, ns)` anchor pair: the counter read on both sides of
/// `clock_gettime`, averaged; `None` if two tries were both wider than
/// [`PAIR_MAX_TICKS`].
fn pair() -> Option<(u64, u64)> {
    for _ in 0..2 {
        let a = ticks()?;
        let ns = monotonic_ns();
        let b = ticks()?;
        if b.wrapping_sub(a) < PAIR_MAX_TICKS {
            return Some((a + (b - a) / 2, ns));
        }
    }
    None
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Reads `c` `n` times between two kernel reads each; returns the
    /// furthest a read fell outside its bracket, in ns.
    fn worst_outside(c: &Clock, n: usize) -> u64 {
        let mut worst = 0u64;
        for _ in 0..n {
            let a = monotonic_ns();
            let v = c.now_ns();
            let b = monotonic_ns();
            worst = worst.max(a.saturating_sub(v)).max(v.saturating_sub(b));
        }
        worst
    }

    /// Calls `now_ns` until the counter is in use (the baseline reached
    /// MIN_BASELINE_NS), at most 2 s.
    fn until_in_use(c: &Clock) {
        let deadline = monotonic_ns() + 2_000_000_000;
        while !c.counter_in_use() {
            assert!(monotonic_ns() < deadline, "the counter was not in use 2 s after the first read");
            std::thread::sleep(std::time::Duration::from_millis(2));
            c.now_ns();
        }
    }

    #[test]
    fn the_counter_agrees_with_clock_gettime_and_is_re_anchored_by_reads() {
        init();
        let c = Clock::new();
        // The first read comes from the kernel and takes the base anchor;
        // no slope exists yet.
        assert_eq!(worst_outside(&c, 1), 0);
        assert!(!c.counter_in_use());
        if ticks().is_none() {
            eprintln!("the clocksource is not tsc: every read is clock_gettime");
            assert_eq!(worst_outside(&c, 1000), 0);
            assert!(!c.counter_in_use());
            return;
        }
        until_in_use(&c);
        // In use: each counter read lies between the kernel reads around it,
        // within a tolerance for the slope and the pair's error.
        let worst = worst_outside(&c, 20_000);
        eprintln!("counter reads at most {worst} ns outside the kernel reads around them");
        assert!(worst < 2_000, "counter reads were up to {worst} ns outside the kernel's");
        // Older than REFRESH_NS: the next read is the kernel's and re-takes
        // the anchor, after which the counter is in use again.
        std::thread::sleep(std::time::Duration::from_nanos(3 * REFRESH_NS));
        assert!(!c.counter_in_use());
        assert_eq!(worst_outside(&c, 1), 0);
        assert!(c.counter_in_use(), "a stale read did not re-take the anchor");
    }

    #[test]
    fn concurrent_readers_re_anchoring_stay_within_the_kernel_brackets() {
        init();
        if ticks().is_none() {
            return;
        }
        let c: &'static Clock = Box::leak(Box::new(Clock::new()));
        until_in_use(c);
        // Four threads read for 200 ms, so the anchor is re-taken about 200
        // times while the others read it (the seqlock's contended case).
        let stop = monotonic_ns() + 200_000_000;
        let worst = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(move || {
                        let mut w = 0;
                        while monotonic_ns() < stop {
                            w = w.max(worst_outside(c, 1000));
                        }
                        w
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).max().unwrap()
        });
        eprintln!("4 threads: reads at most {worst} ns outside the kernel reads around them");
        assert!(worst < 2_000, "reads were up to {worst} ns outside the kernel's");
    }
}
