//! The bridge object: validates what an engine hands the callback, counts
//! every outcome, and copies accepted events into the ring. Also the
//! process-wide token table ([`REGISTRY`]) that maps userdata to bridges.

use crate::clock::CLOCK;
use crate::abi::{
    EvbDrain, EvbDropReason as DropReason, EvbEvent, EvbInvalidReason as InvalidReason, EvbStats, EvbStatus,
    EVB_KIND_MAX, EVB_MAX_PAYLOAD_LIMIT, EVB_SUBJECT_MAX,
};
use crate::counters::{delay_bucket, Counters, Mine, ORPHANS};
use crate::panic::messages_dropped;
use crate::registry::Registry;
use crate::ring::{record_len, Consumer, RecordFields, Ring};
use crate::sync::Padded;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, TryLockError};

/// Userdata tokens of every bridge in the process.
pub(crate) static REGISTRY: LazyLock<Registry<Bridge>> = LazyLock::new(Registry::new);

/// Validated construction parameters of a bridge.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Ring data area in bytes, a power of two.
    pub ring_capacity: u64,
    /// Largest payload accepted, bytes; `record_len(max_payload +
    /// EVB_SUBJECT_MAX) <= capacity / 2`.
    pub max_payload: u32,
    /// A callback running more than this after the event's timestamp is late.
    pub late_threshold_ns: u64,
    /// Bit k set: kind k is accepted (k <= 31).
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
            && self.max_payload <= EVB_MAX_PAYLOAD_LIMIT
            && record_len(u64::from(self.max_payload) + u64::from(EVB_SUBJECT_MAX)) <= self.ring_capacity / 2;
        if cap_ok && payload_ok && self.kind_mask != 0 {
            Ok(())
        } else {
            Err(EvbStatus::InvalidArgument)
        }
    }
}

/// Whether `s` is a valid subject: UTF-8, tokens separated by single dots
/// (no empty token), and no space, control character, `*`, `>`, `"` or `\`
/// (NATS's subject rules, with the wildcard characters kept for patterns and
/// the two characters JSON escapes left out, so subjects embed in JSON as
/// they are).
pub fn valid_subject(s: &[u8]) -> bool {
    if s.is_empty() || s[0] == b'.' || s[s.len() - 1] == b'.' || std::str::from_utf8(s).is_err() {
        return false;
    }
    let mut prev_dot = false;
    for &c in s {
        if c <= b' ' || c == 0x7f || c == b'*' || c == b'>' || c == b'"' || c == b'\\' || (c == b'.' && prev_dot) {
            return false;
        }
        prev_dot = c == b'.';
    }
    true
}

/// A bridge: one ring, its counters and its consumer. Shared by every engine
/// thread (the producers) and one consumer thread at a time.
pub struct Bridge {
    pub(crate) ring: Arc<Ring>,
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

/// The consumer's side: the ring's one `Consumer` behind a lock that is only
/// ever tried (a second concurrent drain gets `Busy` instead of waiting), and
/// the result and snapshot cells the host maps once.
struct ConsumerSide {
    consumer: Mutex<Consumer>,
    delivered: AtomicU64,
    /// Result of the last drain; written while holding `consumer`.
    drain: UnsafeCell<EvbDrain>,
    /// Snapshot of the counters; written while holding `consumer`.
    stats: UnsafeCell<EvbStats>,
}

// SAFETY: `drain` and `stats` are written only while `consumer`'s lock is
// held, so writes never race each other; hosts read them between their own
// calls (a documented precondition of evb_drain_result / evb_bridge_stats).
// Everything else is atomic, locked, or immutable after construction.
unsafe impl Sync for Bridge {}

/// Copies the event `ev` points to, one field at a time.
///
/// Field by field rather than as one block: an engine typically fills the
/// struct just before the call, and a block copy reads it in 16-byte pieces
/// that straddle those fresh 8-byte stores, which the CPU cannot forward
/// from its store buffer, so each such load waits until every older store
/// of the thread (the previous record's included) reaches the cache. In
/// `bench/native` (1 producer, flat out) that wait was the largest single
/// cost of the call. Volatile reads keep the compiler from merging fields
/// back into wide loads.
///
/// A misaligned pointer (which C would not produce for a real struct) is
/// copied as one unaligned block instead.
///
/// # Safety
/// `ev` is non-null and readable for `size_of::<EvbEvent>()` bytes for the
/// duration of the call.
#[inline(always)]
unsafe fn read_event(ev: *const EvbEvent) -> EvbEvent {
    if !ev.is_aligned() {
        // SAFETY: readable for the struct's size (the caller's contract);
        // read_unaligned needs no alignment.
        return unsafe { ev.read_unaligned() };
    }
    // SAFETY: each pointer is derived from `ev` without creating a
    // reference, is in bounds, and is aligned because `ev` is (checked
    // above) and the struct is repr(C).
    unsafe {
        EvbEvent {
            kind: std::ptr::addr_of!((*ev).kind).read_volatile(),
            source_id: std::ptr::addr_of!((*ev).source_id).read_volatile(),
            flags: std::ptr::addr_of!((*ev).flags).read_volatile(),
            subject_len: std::ptr::addr_of!((*ev).subject_len).read_volatile(),
            source_seq: std::ptr::addr_of!((*ev).source_seq).read_volatile(),
            ts_ns: std::ptr::addr_of!((*ev).ts_ns).read_volatile(),
            payload: std::ptr::addr_of!((*ev).payload).read_volatile(),
            len: std::ptr::addr_of!((*ev).len).read_volatile(),
            subject: std::ptr::addr_of!((*ev).subject).read_volatile(),
        }
    }
}

impl Bridge {
    /// Builds a bridge from a checked config.
    ///
    /// # Errors
    /// [`EvbStatus::InvalidArgument`] or [`EvbStatus::NoMemory`].
    pub fn new(cfg: Config) -> Result<Bridge, EvbStatus> {
        cfg.check()?;
        crate::clock::init();
        let (ring, consumer) = Ring::new(cfg.ring_capacity).map_err(|e| match e {
            crate::ring::CapacityError::OutOfRange => EvbStatus::InvalidArgument,
            crate::ring::CapacityError::NoMemory => EvbStatus::NoMemory,
        })?;
        Ok(Bridge {
            ring,
            counters: Counters::new(),
            hot: Padded(Hot { cfg, panic_next: AtomicU64::new(0) }),
            consumer: Padded(ConsumerSide {
                consumer: Mutex::new(consumer),
                delivered: AtomicU64::new(0),
                drain: UnsafeCell::new(EvbDrain::default()),
                stats: UnsafeCell::new(EvbStats::default()),
            }),
        })
    }

    /// The drain result cell (stable for the bridge's life).
    pub(crate) fn drain_cell(&self) -> *const EvbDrain {
        self.consumer.drain.get()
    }

    /// The kinds this bridge accepts.
    pub fn kind_mask(&self) -> u32 {
        self.hot.cfg.kind_mask
    }

    /// Makes the next `n` accepted events panic after their record was
    /// reserved (fault injection: proves the boundary and the discard path).
    pub fn fault_panic(&self, n: u64) {
        self.hot.panic_next.fetch_add(n, Ordering::Relaxed);
    }

    /// Handles one callback whose userdata resolved to this bridge: counts
    /// the call, then its outcome, in `c`, the calling thread's stripe of
    /// this bridge's counters.
    ///
    /// # Safety
    /// `ev` is null or points to memory the caller claims is an event; the
    /// bridge copies the struct once and validates the copy before it follows
    /// the payload and subject pointers for their lengths, which the engine
    /// must guarantee readable when it passes non-null pointers with lengths
    /// within bounds.
    pub(crate) unsafe fn handle(&self, ev: *const EvbEvent, c: &Mine<'_>) -> EvbStatus {
        c.bump(&c.calls);
        if ev.is_null() {
            c.bump(&c.invalid[InvalidReason::NullEvent as usize]);
            return EvbStatus::InvalidEvent;
        }
        // SAFETY: non-null; the engine hands us an event valid for the
        // duration of the call. Each field is read once into a copy, so the
        // engine changing it under us cannot make the checks below disagree
        // with the copy.
        let e = unsafe { read_event(ev) };
        let hot = &self.hot;
        let reason = if e.kind > EVB_KIND_MAX || hot.cfg.kind_mask & (1 << e.kind) == 0 {
            Some(InvalidReason::BadKind)
        } else if e.len > hot.cfg.max_payload as usize {
            Some(InvalidReason::TooLong)
        } else if e.payload.is_null() && e.len != 0 {
            Some(InvalidReason::NullPayload)
        } else if e.subject_len > EVB_SUBJECT_MAX || (e.subject.is_null() && e.subject_len != 0) {
            Some(InvalidReason::BadSubject)
        } else {
            None
        };
        if let Some(r) = reason {
            c.bump(&c.invalid[r as usize]);
            return EvbStatus::InvalidEvent;
        }
        let subject: &[u8] = if e.subject_len == 0 {
            &[]
        } else {
            // SAFETY: non-null (checked), at most EVB_SUBJECT_MAX bytes, and
            // the engine guarantees `subject_len` readable bytes for the call.
            unsafe { std::slice::from_raw_parts(e.subject.cast::<u8>(), e.subject_len as usize) }
        };
        if !subject.is_empty() && !valid_subject(subject) {
            c.bump(&c.invalid[InvalidReason::BadSubject as usize]);
            return EvbStatus::InvalidEvent;
        }
        let delay = CLOCK.now_ns().saturating_sub(e.ts_ns);
        c.bump(&c.delay[delay_bucket(delay)]);
        c.add(&c.delay_sum_ns, delay);
        if delay > hot.cfg.late_threshold_ns {
            c.bump(&c.late);
        }
        let Some(mut r) = self.ring.reserve(e.len as u32, e.subject_len) else {
            c.bump(&c.dropped[DropReason::RingFull as usize]);
            return EvbStatus::RingFull;
        };
        r.write_header(&RecordFields {
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
            // and the engine guarantees `len` readable bytes for the call.
            let src = unsafe { std::slice::from_raw_parts(e.payload.cast::<u8>(), e.len) };
            r.payload_mut().copy_from_slice(src);
        }
        r.subject_mut().copy_from_slice(subject);
        // Counted before commit so that delivered <= accepted at every instant.
        c.bump(&c.accepted);
        r.commit();
        EvbStatus::Ok
    }

    /// Consumer side of one drain; see `evb_drain`. Returns the record count,
    /// or [`EvbStatus::Busy`] when another thread is draining.
    pub fn drain(&self, max_bytes: u64, max_records: u64, arm: bool) -> Result<u64, EvbStatus> {
        let mut consumer = match self.consumer.consumer.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(EvbStatus::Busy),
        };
        let b = consumer.consume(max_bytes, max_records, arm);
        if b.count != 0 {
            self.consumer.delivered.fetch_add(b.count, Ordering::Relaxed);
        }
        // SAFETY: written only while holding the consumer lock (held here).
        unsafe { *self.consumer.drain.get() = b };
        Ok(b.count)
    }

    /// Refreshes the snapshot cell and returns it (stable for the bridge's
    /// life), or [`EvbStatus::Busy`] when another thread is draining.
    pub fn refresh_stats(&self) -> Result<*const EvbStats, EvbStatus> {
        let _consumer = match self.consumer.consumer.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(EvbStatus::Busy),
        };
        let snap = self.snapshot();
        // SAFETY: written only while holding the consumer lock (held here).
        unsafe { *self.consumer.stats.get() = snap };
        Ok(self.consumer.stats.get())
    }

    /// Sums the stripes into a snapshot. Any thread.
    pub fn snapshot(&self) -> EvbStats {
        let k = &self.counters;
        let mut s = EvbStats {
            callbacks: k.sum(|s| &s.calls) + ORPHANS.calls.load(Ordering::Relaxed),
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
        s
    }
}

#[cfg(test)]
mod tests {
    use super::valid_subject;

    #[test]
    fn subjects_follow_the_nats_rules() {
        for ok in ["a", "sensors.room1.temp", "md.XNAS.AAPL", "ü.ñ", "a-b_c.d:e"] {
            assert!(valid_subject(ok.as_bytes()), "{ok}");
        }
        for bad in ["", ".", "a.", ".a", "a..b", "a b", "a.*", "a.>", "a*b", "a\tb", "a\u{7f}", "a\"b", "a\\b"] {
            assert!(!valid_subject(bad.as_bytes()), "{bad:?}");
        }
        assert!(!valid_subject(&[b'a', 0xff, b'b']), "not UTF-8");
    }
}
