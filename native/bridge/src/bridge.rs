//! The bridge object: validates what C hands the callback, counts every
//! outcome, and copies accepted events into the ring.

use crate::counters::{bump, delay_bucket, Counters, ORPHANS};
use crate::ffi::{EvbDrain, EvbDropReason as DropReason, EvbEvent, EvbInvalidReason as InvalidReason, EvbStats, EvbStatus};
use crate::panic::messages_dropped;
use crate::ring::{record_len, RecordHeader, Ring};
use crate::sync::Padded;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Validated construction parameters of a bridge.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Ring data area in bytes, a power of two.
    pub ring_capacity: u64,
    /// Largest payload accepted, bytes; `record_len(max_payload) <= capacity / 2`.
    pub max_payload: u32,
    /// A callback running more than this after the event's timestamp is late.
    pub late_threshold_ns: u64,
    /// Bit k set: kind k is accepted (k < 32).
    pub kind_mask: u32,
}

impl Config {
    /// Checks the parameters' ranges and how they relate.
    ///
    /// # Errors
    /// [`EvbStatus::InvalidArgument`] when a value is out of range.
    pub fn check(&self) -> Result<(), EvbStatus> {
        let cap_ok = self.ring_capacity.is_power_of_two()
            && (crate::ring::MIN_CAPACITY..=crate::ring::MAX_CAPACITY).contains(&self.ring_capacity);
        let payload_ok = self.max_payload >= 1
            && self.max_payload <= crate::ffi::EVB_MAX_PAYLOAD_LIMIT
            && record_len(u64::from(self.max_payload)) <= self.ring_capacity / 2;
        if cap_ok && payload_ok && self.kind_mask != 0 {
            Ok(())
        } else {
            Err(EvbStatus::InvalidArgument)
        }
    }
}

/// A bridge: one ring, its counters and its doorbell. Shared by every engine
/// thread (the producers) and one consumer thread.
pub struct Bridge {
    pub(crate) ring: Ring,
    pub(crate) counters: Counters,
    /// Read by every producer on every call: kept apart from anything the
    /// consumer writes, so that drains do not invalidate this line.
    hot: Padded<Hot>,
    consumer: Padded<ConsumerSide>,
}

/// Read-mostly fields every callback reads.
struct Hot {
    cfg: Config,
    panic_next: AtomicU64,
}

/// Fields only the consumer thread writes.
struct ConsumerSide {
    delivered: AtomicU64,
    /// Result of the last drain.
    drain: UnsafeCell<EvbDrain>,
    /// Snapshot of the counters.
    stats: UnsafeCell<EvbStats>,
}

// SAFETY: `drain` and `stats` are written only by the single consumer thread
// (a documented precondition of evb_drain / evb_bridge_stats); everything else
// is atomic or immutable after construction.
unsafe impl Sync for Bridge {}

/// CLOCK_MONOTONIC in nanoseconds, the engine's clock.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists on Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Bridge {
    /// Builds a bridge from a checked config.
    ///
    /// # Errors
    /// [`EvbStatus::InvalidArgument`] or [`EvbStatus::NoMemory`].
    pub fn new(cfg: Config) -> Result<Bridge, EvbStatus> {
        cfg.check()?;
        let ring = Ring::new(cfg.ring_capacity).map_err(|e| match e {
            crate::ring::CapacityError::OutOfRange => EvbStatus::InvalidArgument,
            crate::ring::CapacityError::NoMemory => EvbStatus::NoMemory,
        })?;
        Ok(Bridge {
            ring,
            counters: Counters::new(),
            hot: Padded(Hot { cfg, panic_next: AtomicU64::new(0) }),
            consumer: Padded(ConsumerSide {
                delivered: AtomicU64::new(0),
                drain: UnsafeCell::new(EvbDrain::default()),
                stats: UnsafeCell::new(EvbStats::default()),
            }),
        })
    }

    /// The consumer-owned drain result cell.
    pub(crate) fn drain_cell(&self) -> &UnsafeCell<EvbDrain> {
        &self.consumer.drain
    }

    /// The consumer-owned stats snapshot cell.
    pub(crate) fn stats_cell(&self) -> &UnsafeCell<EvbStats> {
        &self.consumer.stats
    }

    /// Makes the next `n` accepted events panic after their record was
    /// reserved (fault injection: proves the boundary and the discard path).
    pub fn fault_panic(&self, n: u64) {
        self.hot.panic_next.fetch_add(n, Ordering::Relaxed);
    }

    /// Handles one callback whose userdata resolved to this bridge.
    ///
    /// # Safety
    /// `ev` is null or points to memory the caller claims is an event; the
    /// bridge copies the struct once and validates the copy before it follows
    /// the payload pointer for `len` bytes, which C must guarantee readable
    /// when it passes a non-null payload and a length within bounds.
    pub unsafe fn handle(&self, ev: *const EvbEvent) -> EvbStatus {
        let c = self.counters.mine();
        if ev.is_null() {
            bump(&c.invalid[InvalidReason::NullEvent as usize]);
            return EvbStatus::InvalidEvent;
        }
        // SAFETY: non-null; C hands us an event valid for the duration of
        // the call. One read by value, so C changing it under us cannot make
        // the checks below disagree with the copy.
        let e = unsafe { ev.read_unaligned() };
        let hot = &self.hot;
        let reason = if e.kind >= 32 || hot.cfg.kind_mask & (1 << e.kind) == 0 {
            Some(InvalidReason::BadKind)
        } else if e.len > hot.cfg.max_payload as usize {
            Some(InvalidReason::TooLong)
        } else if e.payload.is_null() && e.len != 0 {
            Some(InvalidReason::NullPayload)
        } else {
            None
        };
        if let Some(r) = reason {
            bump(&c.invalid[r as usize]);
            return EvbStatus::InvalidEvent;
        }
        let delay = monotonic_ns().saturating_sub(e.ts_ns);
        bump(&c.delay[delay_bucket(delay)]);
        c.delay_sum_ns.fetch_add(delay, Ordering::Relaxed);
        if delay > hot.cfg.late_threshold_ns {
            bump(&c.late);
        }
        let Some(mut r) = self.ring.reserve(e.len as u32) else {
            bump(&c.dropped[DropReason::RingFull as usize]);
            return EvbStatus::RingFull;
        };
        r.write_header(&RecordHeader {
            kind: e.kind,
            source_id: e.source_id,
            flags: e.flags,
            source_seq: e.source_seq,
            ts_ns: e.ts_ns,
        });
        if hot.panic_next.load(Ordering::Relaxed) != 0
            && hot.panic_next.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
        {
            panic!("injected panic (evb_bridge_fault_panic) in source {} seq {}", e.source_id, e.source_seq);
        }
        if e.len != 0 {
            // SAFETY: payload is non-null (checked above), len <= max_payload,
            // and C guarantees `len` readable bytes for the call's duration.
            let src = unsafe { std::slice::from_raw_parts(e.payload.cast::<u8>(), e.len) };
            r.payload_mut().copy_from_slice(src);
        }
        // Counted before commit so that delivered <= accepted at every instant.
        bump(&c.accepted);
        r.commit();
        EvbStatus::Ok
    }

    /// Consumer side of one drain; see `evb_drain`.
    ///
    /// # Safety
    /// Single consumer thread, as for [`Ring::consume`].
    pub unsafe fn drain(&self, max_bytes: u64, max_records: u64, arm: bool) -> u64 {
        // SAFETY: forwarded single-consumer contract.
        let b = unsafe { self.ring.consume(max_bytes, max_records, arm) };
        if b.count != 0 {
            self.consumer.delivered.fetch_add(b.count, Ordering::Relaxed);
        }
        // SAFETY: only the consumer thread touches `drain`.
        unsafe {
            *self.consumer.drain.get() = EvbDrain { offset: b.offset, len: b.len, count: b.count, first_seq: b.first_seq };
        }
        b.count
    }

    /// Sums the stripes into a snapshot.
    pub fn snapshot(&self) -> EvbStats {
        let k = &self.counters;
        let mut s = EvbStats {
            accepted: k.sum(|s| &s.accepted),
            panicked: k.sum(|s| &s.panicked) + ORPHANS.panicked.load(Ordering::Relaxed),
            stale: k.sum(|s| &s.stale),
            late: k.sum(|s| &s.late),
            delivered: self.consumer.delivered.load(Ordering::Relaxed),
            ring_used_bytes: self.ring.used_bytes(),
            ring_capacity_bytes: self.ring.capacity(),
            delay_sum_ns: k.sum(|s| &s.delay_sum_ns),
            panic_messages_dropped: messages_dropped(),
            ..EvbStats::default()
        };
        for (i, d) in s.dropped.iter_mut().enumerate() {
            *d = k.sum(|s| &s.dropped[i]);
        }
        for (i, d) in s.invalid.iter_mut().enumerate() {
            *d = k.sum(|s| &s.invalid[i]);
        }
        s.invalid[InvalidReason::BadUserdata as usize] += ORPHANS.bad_userdata.load(Ordering::Relaxed);
        for (i, d) in s.delay_count.iter_mut().enumerate() {
            *d = k.sum(|s| &s.delay[i]);
        }
        s.callbacks = s.accepted
            + s.dropped.iter().sum::<u64>()
            + s.invalid.iter().sum::<u64>()
            + s.stale
            + s.panicked;
        s
    }
}
