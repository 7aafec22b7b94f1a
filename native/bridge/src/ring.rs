//! Bounded multi-producer, single-consumer ring of variable-length records,
//! read by the consumer in place.
//!
//! # Algorithm
//!
//! The layout follows the Linux BPF ring buffer (`kernel/bpf/ringbuf.c`,
//! Andrii Nakryiko, 2020): one contiguous data area, a producer position and a
//! consumer position that only grow, records reserved by advancing the
//! producer position and later committed or discarded, and a consumer that
//! reads records strictly in position order, stopping at the first one that is
//! still being written and skipping discarded ones. Batching the consumer and
//! numbering records in ring order follows the LMAX Disruptor's batching
//! consumer.
//!
//! Two things differ from BPF, because our producers are arbitrary C threads
//! that must never wait:
//!
//! * Reservation is a compare-and-swap loop on the producer position instead
//!   of a spinlock, so a producer descheduled mid-reservation holds nobody up.
//! * Because the producer position moves before the record header exists, the
//!   commit state cannot live in the data area (stale payload bytes could pose
//!   as a header). It lives in a separate array of *stamps*, one `AtomicU64`
//!   per 64-byte granule. A stamp holds the absolute position of the record
//!   that starts there plus state bits, so a stamp left over from an earlier
//!   lap never equals the current position and reads as "not yet written".
//!
//! Records never wrap: a record that does not fit before the end of the data
//! area is preceded by a padding stamp and placed at offset 0, so every record
//! is contiguous for the consumer's in-place reads. The consumer's batches are
//! runs of committed records and never span the end of the area.
//!
//! # Record layout
//!
//! Each record starts at a multiple of [`RECORD_ALIGN`] and is an
//! [`EvbRecordHeader`] ([`RECORD_HEADER_LEN`] bytes, the table in
//! `protocol/PROTOCOL.md`), the payload, the subject, and zero bytes up to
//! the alignment (zeroed, so that no byte of an older record is ever handed
//! out in a newer record's padding). The consumer writes the global sequence
//! number into the header when it hands the record out.
//!
//! # Single consumer
//!
//! [`Ring::new`] returns the shared ring, which producers use through
//! [`Ring::reserve`] from any thread, and the one [`Consumer`], which only
//! its owner can use: [`Consumer::consume`] takes `&mut self`, so the
//! single-consumer rule is the type system's, as in rtrb.
//!
//! # Memory ordering
//!
//! * A producer loads the consumer position with `Acquire`: the consumer's
//!   `Release` store of it happens after its last read of the space being
//!   freed, so the producer never overwrites bytes still being read.
//! * The reservation CAS is `Relaxed`: it only has to hand out disjoint
//!   ranges, which atomicity alone guarantees; nothing else is published by it.
//! * The producer writes the header and payload with plain stores, then
//!   publishes them with a `Release` store of the stamp. The consumer loads the
//!   stamp with `Acquire`, so all those bytes are visible before it reads them.
//! * Doorbell: the consumer stores `armed = true` and then re-reads the next
//!   stamp; a producer stores its stamp and then reads `armed`. Both sides
//!   separate the store from the load with a full barrier, the
//!   store-buffering (Dekker) pattern: at least one side sees the other's
//!   store, so either the consumer finds the record or the producer finds the
//!   consumer armed. Only the producer whose `swap(false)` returns `true`
//!   rings, so at most one wakeup is ever pending.
//! * That barrier is `sync::barrier`: asymmetric where Linux has
//!   `membarrier(2)` (producers, which publish on every call, only stop the
//!   compiler from reordering; the consumer, which arms only when it is about
//!   to sleep, pays the membarrier), and a `SeqCst` fence on both sides
//!   otherwise and under loom.

use crate::abi::{EvbDrain, EvbRecordHeader, EVB_RECORD_ALIGN, EVB_RECORD_HEADER_LEN};
use crate::sync::{barrier, prefetch_write, AtomicBool, AtomicU64, AtomicUsize, Ordering, Padded};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::sync::Arc;

/// Records start at multiples of this many bytes; one stamp covers one granule.
pub const RECORD_ALIGN: u64 = EVB_RECORD_ALIGN as u64;
/// Bytes of header before each record's payload.
pub const RECORD_HEADER_LEN: u64 = EVB_RECORD_HEADER_LEN as u64;
/// Smallest data area accepted by [`Ring::new`], in bytes.
pub const MIN_CAPACITY: u64 = 256;
/// Largest data area accepted by [`Ring::new`], in bytes (4 GiB: record
/// offsets handed to the consumer fit in a `u32`).
pub const MAX_CAPACITY: u64 = 1 << 32;

const STATE_MASK: u64 = RECORD_ALIGN - 1;
const COMMITTED: u64 = 1;
const DISCARDED: u64 = 2;
const PADDING: u64 = 4;

/// Total bytes one record with `body_len` bytes of payload and subject occupies.
pub fn record_len(body_len: u64) -> u64 {
    (RECORD_HEADER_LEN + body_len + RECORD_ALIGN - 1) & !(RECORD_ALIGN - 1)
}

/// Header fields a producer fills in; the ring adds the lengths and the
/// consumer the global sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordFields {
    /// Event kind.
    pub kind: u32,
    /// Source id.
    pub source_id: u32,
    /// Source-defined flags.
    pub flags: u32,
    /// Per-source sequence number.
    pub source_seq: u64,
    /// Event timestamp, CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
}

/// Why [`Ring::new`] refused a capacity.
#[derive(Debug, PartialEq, Eq)]
pub enum CapacityError {
    /// Not a power of two within [`MIN_CAPACITY`]..=[`MAX_CAPACITY`].
    OutOfRange,
    /// The allocator returned null.
    NoMemory,
}

/// The ring's shared part. Producers call [`Ring::reserve`] from any thread;
/// the one [`Consumer`] reads.
pub struct Ring {
    data: *mut u8,
    stamps: Box<[AtomicU64]>,
    capacity: u64,
    mask: u64,
    producer_pos: Padded<AtomicU64>,
    /// Producers' copy of `consumer_pos`, kept on its own line; see `reserve`.
    cached_consumer_pos: Padded<AtomicU64>,
    consumer_pos: Padded<AtomicU64>,
    armed: Padded<AtomicBool>,
    /// `extern "C" fn()` doorbell as an address, 0 for none.
    doorbell: AtomicUsize,
}

// SAFETY: the data area is shared by design; every byte of it is written by
// the one producer that reserved it and read by the consumer only after the
// stamp's Release/Acquire hand-over (module docs, "Memory ordering"). All
// other shared state is atomic.
unsafe impl Send for Ring {}
// SAFETY: as for Send.
unsafe impl Sync for Ring {}

/// The ring's only consumer. Not `Clone`; [`Consumer::consume`] takes
/// `&mut self`, so at most one thread reads at a time.
pub struct Consumer {
    ring: Arc<Ring>,
    /// End of the batch handed out last; released on the next `consume`.
    handed_end: u64,
    /// Sequence number the next record will get.
    next_seq: u64,
}

impl Ring {
    /// Creates a ring whose data area is `capacity` bytes, zeroed, and its
    /// one consumer.
    ///
    /// # Errors
    /// [`CapacityError::OutOfRange`] unless `capacity` is a power of two in
    /// [`MIN_CAPACITY`]..=[`MAX_CAPACITY`]; [`CapacityError::NoMemory`] if
    /// allocation fails.
    pub fn new(capacity: u64) -> Result<(Arc<Ring>, Consumer), CapacityError> {
        if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(CapacityError::OutOfRange);
        }
        let layout = Self::layout(capacity);
        // SAFETY: layout has a non-zero size (capacity >= MIN_CAPACITY) and a
        // valid power-of-two alignment.
        let data = unsafe { alloc_zeroed(layout) };
        if data.is_null() {
            return Err(CapacityError::NoMemory);
        }
        let stamps = (0..capacity / RECORD_ALIGN).map(|_| AtomicU64::new(0)).collect();
        // Settle the doorbell's barrier now, not on a producer's first call.
        barrier::asymmetric();
        let ring = Arc::new(Ring {
            data,
            stamps,
            capacity,
            mask: capacity - 1,
            producer_pos: Padded(AtomicU64::new(0)),
            cached_consumer_pos: Padded(AtomicU64::new(0)),
            consumer_pos: Padded(AtomicU64::new(0)),
            armed: Padded(AtomicBool::new(false)),
            doorbell: AtomicUsize::new(0),
        });
        let consumer = Consumer { ring: ring.clone(), handed_end: 0, next_seq: 1 };
        Ok((ring, consumer))
    }

    fn layout(capacity: u64) -> Layout {
        Layout::from_size_align(capacity as usize, RECORD_ALIGN as usize)
            .expect("capacity was range-checked in Ring::new")
    }

    /// Size of the data area in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Start of the data area. Valid for [`Ring::capacity`] bytes until the
    /// ring is dropped; the consumer reads handed-out batches through it.
    pub fn data_ptr(&self) -> *mut u8 {
        self.data
    }

    /// Bytes between the consumer and producer positions: reserved, committed
    /// and not yet released records, and padding. A snapshot; any thread.
    pub fn used_bytes(&self) -> u64 {
        let cons = self.consumer_pos.load(Ordering::Relaxed);
        let prod = self.producer_pos.load(Ordering::Relaxed);
        prod.saturating_sub(cons)
    }

    fn stamp(&self, pos: u64) -> &AtomicU64 {
        &self.stamps[((pos & self.mask) / RECORD_ALIGN) as usize]
    }

    /// Reserves a record for `payload_len` bytes of payload and `subject_len`
    /// bytes of subject. Never blocks, never allocates. Any thread.
    ///
    /// Returns `None` when the ring has no room (the caller counts a drop).
    /// The caller must ensure `record_len(payload_len + subject_len) <=
    /// capacity / 2`, which guarantees an empty ring always has room.
    #[inline(always)]
    pub fn reserve(&self, payload_len: u32, subject_len: u32) -> Option<Reservation<'_>> {
        let size = record_len(u64::from(payload_len) + u64::from(subject_len));
        debug_assert!(size <= self.capacity / 2);
        // Producers check space against a cached copy of the consumer
        // position, which lags the real one, so the check is conservative;
        // only when it says "full" do they read the consumer's own cache line
        // (which the consumer keeps writing) and refresh the copy. The copy is
        // written with Release after an Acquire load of the real position, and
        // read with Acquire, so a producer writing into freed space is ordered
        // after the consumer's last read of it (transitively, through the
        // producer that refreshed the copy). Same idea as rtrb's cached head.
        let mut cons = self.cached_consumer_pos.load(Ordering::Acquire);
        let mut refreshed = false;
        loop {
            // The producer position is read after the consumer position, so
            // `prod >= cons` (the consumer only passes stamped records, which
            // were reserved first) and the arithmetic below cannot underflow.
            let prod = self.producer_pos.load(Ordering::Relaxed);
            let tail = self.capacity - (prod & self.mask);
            let need = if size <= tail { size } else { tail + size };
            if prod + need - cons > self.capacity {
                if refreshed {
                    return None;
                }
                let fresh = self.consumer_pos.load(Ordering::Acquire);
                if fresh > cons {
                    // Written only when it moved: a full ring must not turn
                    // every failed reservation into a write to a shared line.
                    self.cached_consumer_pos.fetch_max(fresh, Ordering::Release);
                }
                cons = fresh;
                refreshed = true;
                continue;
            }
            if self
                .producer_pos
                .compare_exchange_weak(prod, prod + need, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                let pos = if need > size {
                    self.stamp(prod).store(prod | PADDING, Ordering::Release);
                    prod + tail
                } else {
                    prod
                };
                // SAFETY: [pos, pos + size) was just reserved by this CAS and
                // lies within one lap (never wraps), so this thread owns those
                // bytes until it stamps the record.
                unsafe { self.write_u32(pos, 0, size as u32) };
                self.prefetch_next(prod + need);
                return Some(Reservation { ring: self, pos, size, payload_len, subject_len });
            }
        }
    }

    /// Prefetches, for writing, the first two lines of the record that will
    /// most likely be reserved next (at `next`, the producer position this
    /// reservation left) and its stamp. The consumer read, and stamped with
    /// its sequence number, those lines one lap ago, so without this the next
    /// call's stores each wait for a line from another core's cache or from
    /// memory, and the reservation's locked compare-and-swap then waits for
    /// them to drain. A hint only: no byte is read or written.
    #[inline(always)]
    fn prefetch_next(&self, next: u64) {
        let at = (next & self.mask) as usize;
        // wrapping_add: the addresses are only hints and need not be in bounds.
        prefetch_write(self.data.wrapping_add(at));
        prefetch_write(self.data.wrapping_add(at + RECORD_ALIGN as usize));
        prefetch_write((self.stamp(next) as *const AtomicU64).cast());
    }

    /// # Safety
    /// The caller owns bytes `[pos + at, pos + at + 4)` of the data area.
    unsafe fn write_u32(&self, pos: u64, at: u64, v: u32) {
        // SAFETY: in bounds because records never wrap and at + 4 <= header;
        // the caller owns the bytes. write_unaligned keeps this free of
        // alignment assumptions.
        unsafe { (self.data.add(((pos & self.mask) + at) as usize) as *mut u32).write_unaligned(v) }
    }

    /// # Safety
    /// The caller owns bytes `[pos + at, pos + at + 8)` of the data area.
    unsafe fn write_u64(&self, pos: u64, at: u64, v: u64) {
        // SAFETY: as for write_u32.
        unsafe { (self.data.add(((pos & self.mask) + at) as usize) as *mut u64).write_unaligned(v) }
    }

    /// # Safety
    /// The caller may read bytes `[pos, pos + 4)` (a published record).
    unsafe fn read_u32(&self, pos: u64) -> u32 {
        // SAFETY: in bounds (record start within the area); published by the
        // stamp's Acquire load in the caller.
        unsafe { (self.data.add((pos & self.mask) as usize) as *const u32).read_unaligned() }
    }

    /// Whether the doorbell uses the asymmetric `membarrier` barrier
    /// (module docs) rather than a fence on both sides; the same for every
    /// ring of the process.
    pub fn asymmetric_barrier(&self) -> bool {
        barrier::asymmetric()
    }

    /// Whether the consumer is armed and waiting for a doorbell.
    pub fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Relaxed)
    }

    /// Sets (or with `None` clears) the function a producer calls when it
    /// publishes a record while the consumer is armed. It is called on the
    /// producer's thread, at most once per arming, and must not block.
    pub fn set_doorbell(&self, bell: Option<extern "C" fn()>) {
        self.doorbell.store(bell.map_or(0, |f| f as usize), Ordering::SeqCst);
    }

    /// Stamps the record and rings the doorbell if this call disarmed the
    /// consumer. Returns whether it did.
    #[inline(always)]
    fn publish(&self, pos: u64, state: u64) -> bool {
        self.stamp(pos).store(pos | state, Ordering::Release);
        barrier::light();
        let won = self.armed.load(Ordering::SeqCst) && self.armed.swap(false, Ordering::SeqCst);
        if won {
            let bell = self.doorbell.load(Ordering::Acquire);
            if bell != 0 {
                // SAFETY: non-zero values are only ever stored by set_doorbell
                // from an `extern "C" fn()`, so the transmute restores it.
                let f: extern "C" fn() = unsafe { std::mem::transmute::<usize, extern "C" fn()>(bell) };
                f();
            }
        }
        won
    }
}

impl Consumer {
    /// The ring this consumer reads.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Releases the previous batch and hands out the next one: at most
    /// `max_bytes` bytes (but always at least one record if one is ready) and
    /// at most `max_records` records. The batch's bytes may be read in place
    /// (through [`Ring::data_ptr`]) until the next call.
    ///
    /// When nothing is ready and `arm` is true, the ring is armed: the next
    /// commit or discard rings the doorbell (see [`Ring::set_doorbell`]). If
    /// a record became ready while arming, it is returned and the arm stays,
    /// so a returned empty batch with `arm` set always means "a doorbell will
    /// come", and a doorbell may occasionally find nothing new.
    pub fn consume(&mut self, max_bytes: u64, max_records: u64, arm: bool) -> EvbDrain {
        let ring = &*self.ring;
        loop {
            let mut pos = self.handed_end;
            // Skip padding and discarded records in front of the next batch.
            let start = loop {
                let s = ring.stamp(pos).load(Ordering::Acquire);
                if s & !STATE_MASK != pos {
                    break None;
                }
                match s & STATE_MASK {
                    COMMITTED => break Some(pos),
                    // SAFETY: a discarded stamp is published after the record
                    // length was written (reserve writes it first).
                    DISCARDED => pos += u64::from(unsafe { ring.read_u32(pos) }),
                    PADDING => pos = (pos | ring.mask) + 1,
                    // State 0: the zeroed initial stamp of position 0, never
                    // written yet. Any other position's unwritten stamp
                    // already failed the position check above.
                    _ => break None,
                }
            };
            // Everything before `pos` has been read: give it back to producers.
            // Stored only when it moved, so that a consumer polling an empty
            // ring does not keep stealing the cache line producers read.
            if pos != self.handed_end || ring.consumer_pos.load(Ordering::Relaxed) != pos {
                ring.consumer_pos.store(pos, Ordering::Release);
            }
            self.handed_end = pos;
            if let Some(start) = start {
                let mut count = 0;
                while count < max_records.max(1)
                    && (count == 0 || pos - start < max_bytes)
                    && ring.stamp(pos).load(Ordering::Acquire) == pos | COMMITTED
                {
                    // SAFETY: the Acquire load above published this record.
                    let len = u64::from(unsafe { ring.read_u32(pos) });
                    // SAFETY: the record is committed and not yet handed out,
                    // so the consumer owns it; this is the header's seq field.
                    unsafe { ring.write_u64(pos, std::mem::offset_of!(EvbRecordHeader, seq) as u64, self.next_seq + count) };
                    pos += len;
                    count += 1;
                    if pos & ring.mask == 0 {
                        break; // batches never span the end of the area
                    }
                }
                let batch = EvbDrain { offset: start & ring.mask, len: pos - start, count, first_seq: self.next_seq };
                self.next_seq += count;
                self.handed_end = pos;
                return batch;
            }
            if !arm {
                return EvbDrain { first_seq: self.next_seq, ..EvbDrain::default() };
            }
            ring.armed.store(true, Ordering::SeqCst);
            barrier::heavy();
            let s = ring.stamp(pos).load(Ordering::SeqCst);
            if s & !STATE_MASK != pos || s & STATE_MASK == 0 {
                return EvbDrain { first_seq: self.next_seq, ..EvbDrain::default() };
            }
            // Something became ready while arming: drain it now and leave the
            // arm in place. The doorbell it may still cause is the one pending
            // wakeup, and may find nothing. (Taking the arm back with a swap
            // would save that wakeup, but the swap races the producers' and
            // loom 0.7 mis-models that race; see tests/loom.rs.)
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `data` came from alloc_zeroed with this exact layout and is
        // freed once; &mut self proves no reservation, consumer or batch
        // reader is alive (each holds a borrow or the Arc).
        unsafe { dealloc(self.data, Self::layout(self.capacity)) }
    }
}

/// A reserved record. Fill it, then [`Reservation::commit`]. Dropping it
/// without committing (for example while unwinding from a panic) discards the
/// record, and the consumer skips it.
pub struct Reservation<'a> {
    ring: &'a Ring,
    pos: u64,
    size: u64,
    payload_len: u32,
    subject_len: u32,
}

impl Reservation<'_> {
    /// Writes the header and zeroes the padding after payload and subject.
    #[inline(always)]
    pub fn write_header(&mut self, f: &RecordFields) {
        let h = EvbRecordHeader {
            record_len: self.size as u32,
            payload_len: self.payload_len,
            kind: f.kind,
            source_id: f.source_id,
            flags: f.flags,
            subject_len: self.subject_len,
            source_seq: f.source_seq,
            ts_ns: f.ts_ns,
            seq: 0,
        };
        let at = (self.pos & self.ring.mask) as usize;
        let body_end = RECORD_HEADER_LEN as usize + self.payload_len as usize + self.subject_len as usize;
        // SAFETY: this reservation owns [pos, pos + size) and size covers the
        // header and the padding, which ends at pos + size within the area
        // (records never wrap).
        unsafe {
            (self.ring.data.add(at) as *mut EvbRecordHeader).write_unaligned(h);
            std::ptr::write_bytes(self.ring.data.add(at + body_end), 0, self.size as usize - body_end);
        }
    }

    /// The payload area, exactly the reserved payload length.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.body(RECORD_HEADER_LEN as usize, self.payload_len as usize)
    }

    /// The subject area, exactly the reserved subject length.
    pub fn subject_mut(&mut self) -> &mut [u8] {
        self.body(RECORD_HEADER_LEN as usize + self.payload_len as usize, self.subject_len as usize)
    }

    fn body(&mut self, from: usize, len: usize) -> &mut [u8] {
        let off = (self.pos & self.ring.mask) as usize + from;
        // SAFETY: the reservation owns these bytes exclusively and they are in
        // bounds (from + len <= header + payload + subject <= record end <=
        // capacity); &mut self prevents a second live slice.
        unsafe { std::slice::from_raw_parts_mut(self.ring.data.add(off), len) }
    }

    /// Bytes this record occupies in the ring.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Publishes the record to the consumer. Returns `true` when the consumer
    /// was armed and this call rang the doorbell.
    #[inline(always)]
    pub fn commit(self) -> bool {
        let (ring, pos) = (self.ring, self.pos);
        // Committed: the discard in Drop must not run.
        std::mem::forget(self);
        ring.publish(pos, COMMITTED)
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        // Not committed (commit forgets the reservation). Rings like a
        // commit would: the consumer must skip this record to reach the ones
        // behind it. At worst the wakeup finds nothing.
        self.ring.publish(self.pos, DISCARDED);
    }
}
