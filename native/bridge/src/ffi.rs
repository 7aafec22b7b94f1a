//! The C ABI: every exported `evb_*` function, the status codes and the
//! structs C and Node read. `native/include/evbridge.h` is generated from this
//! file by cbindgen (`tests/header.rs` fails when it drifts).
//!
//! Conventions (after rustls-ffi):
//! * every function body runs inside one panic boundary;
//! * pointer arguments are checked for null and yield [`EvbStatus::NullArgument`];
//! * functions that create an object return it or NULL, and record why in a
//!   per-thread status read with [`evb_last_status`];
//! * `_new`/`_free` come in pairs and `_free(NULL)` is a no-op.
//!
//! Threading: [`evb_on_event`] may be called from any thread, concurrently.
//! Everything else is called by the thread that owns the bridge (the
//! consumer), never concurrently with another call on the same bridge.

use crate::bridge::{Bridge, Config};
use crate::counters::{bump, ORPHANS};
use crate::panic::{ffi_boundary, install_hook, pop_message, LAST_MESSAGE};
use crate::registry::{Registry, Resolved};
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CString};

/// ABI version of this library; bumped with any exported signature or struct.
pub const EVB_ABI_VERSION: u32 = 1;
/// The engine ABI (`EE_ABI_VERSION`) whose `ee_event_t` [`EvbEvent`] mirrors.
pub const EVB_ENGINE_ABI_VERSION: u32 = 1;
/// Upper limit for a bridge's `max_payload`, bytes (16 MiB).
pub const EVB_MAX_PAYLOAD_LIMIT: u32 = 16 << 20;
/// Bytes of header in front of each record's payload in the ring.
pub const EVB_RECORD_HEADER_LEN: u32 = 48;
/// Records start at multiples of this many bytes in the ring.
pub const EVB_RECORD_ALIGN: u32 = 64;
/// Length of [`EvbStats::dropped`]; index with [`EvbDropReason`].
pub const EVB_DROP_REASONS: usize = 1;
/// Length of [`EvbStats::invalid`]; index with [`EvbInvalidReason`].
pub const EVB_INVALID_REASONS: usize = 5;
/// Length of [`EvbStats::delay_count`]; bounds from [`evb_delay_bucket_bound_ns`].
pub const EVB_DELAY_BUCKETS: usize = 14;

const _: () = assert!(EVB_DELAY_BUCKETS == crate::counters::DELAY_BUCKETS);
const _: () = assert!(EVB_RECORD_HEADER_LEN as u64 == crate::ring::RECORD_HEADER_LEN);
const _: () = assert!(EVB_RECORD_ALIGN as u64 == crate::ring::RECORD_ALIGN);

/// Result codes, in their own range so they never collide with the engine's
/// small negative `EE_E*` codes.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvbStatus {
    /// Success; for the callback, the event was accepted into the ring.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = -1001,
    /// An argument was out of range.
    InvalidArgument = -1002,
    /// The engine ABI handed to `evb_bridge_new` is not [`EVB_ENGINE_ABI_VERSION`].
    AbiMismatch = -1003,
    /// Allocation failed.
    NoMemory = -1004,
    /// All userdata token slots are in use.
    NoSlot = -1005,
    /// The ring was full; the event was dropped and counted.
    RingFull = -1006,
    /// The event failed validation; counted under `invalid`.
    InvalidEvent = -1007,
    /// The userdata token was revoked; counted under `stale`.
    Stale = -1008,
    /// The function panicked; counted under `panicked`, message logged.
    Panic = -1009,
    /// The userdata is not a token this library issued.
    BadUserdata = -1010,
}

/// Index into [`EvbStats::dropped`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvbDropReason {
    /// No room in the ring.
    RingFull = 0,
}

/// Index into [`EvbStats::invalid`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvbInvalidReason {
    /// Event pointer was NULL.
    NullEvent = 0,
    /// Payload NULL with a non-zero length.
    NullPayload = 1,
    /// Payload longer than the bridge's maximum.
    TooLong = 2,
    /// Kind outside the bridge's kind mask.
    BadKind = 3,
    /// Userdata that is no token (process-wide, see [`EvbStats`]).
    BadUserdata = 4,
}

/// Mirror of the engine's `ee_event_t` (EE_ABI_VERSION 1), 48 bytes on LP64.
/// The bridge reads it once by value and trusts none of it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EvbEvent {
    /// Event kind, < 32 to be accepted.
    pub kind: u32,
    /// Source id.
    pub source_id: u32,
    /// Source flags.
    pub flags: u32,
    /// Reserved.
    pub reserved: u32,
    /// Per-source sequence number.
    pub source_seq: u64,
    /// Event time, CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// Payload bytes, NULL only when `len` is 0.
    pub payload: *const c_void,
    /// Payload length in bytes.
    pub len: usize,
}

/// The engine's callback type, which [`evb_on_event`] has (nullable).
pub type EvbEventCallback = Option<unsafe extern "C" fn(ev: *const EvbEvent, userdata: *mut c_void) -> c_int>;

/// Doorbell function type (nullable): no arguments, no result, must not block.
pub type EvbDoorbell = Option<extern "C" fn()>;

/// Result of the last [`evb_drain`]: `count` records, contiguous, occupying
/// `len` bytes from byte `offset` of the ring's data area, with global
/// sequence numbers `first_seq ..= first_seq + count - 1`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct EvbDrain {
    /// Byte offset of the first record in the data area.
    pub offset: u64,
    /// Bytes spanned by the records.
    pub len: u64,
    /// Number of records.
    pub count: u64,
    /// Sequence number of the first record; sequences start at 1.
    pub first_seq: u64,
}

/// A bridge's counters, read with one call ([`evb_bridge_stats`]).
///
/// Accounting, exact at quiescence:
/// `callbacks = accepted + sum(dropped) + sum(invalid) + stale + panicked`
/// and `accepted = delivered + committed records still in the ring`.
/// `invalid[EvbInvalidReason::BadUserdata]` and panics that could not be tied
/// to a bridge are process-wide (no bridge can be named for them) and are
/// included in every bridge's snapshot.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct EvbStats {
    /// Callback invocations, every outcome included.
    pub callbacks: u64,
    /// Events copied into the ring.
    pub accepted: u64,
    /// Valid events dropped, by [`EvbDropReason`].
    pub dropped: [u64; EVB_DROP_REASONS],
    /// Callbacks that panicked.
    pub panicked: u64,
    /// Events refused by validation, by [`EvbInvalidReason`].
    pub invalid: [u64; EVB_INVALID_REASONS],
    /// Calls with a revoked userdata token.
    pub stale: u64,
    /// Valid events whose callback ran more than the late threshold after
    /// their timestamp (an attribute, also counted in their outcome).
    pub late: u64,
    /// Records handed to the consumer by [`evb_drain`].
    pub delivered: u64,
    /// Bytes between consumer and producer positions.
    pub ring_used_bytes: u64,
    /// Size of the ring's data area in bytes.
    pub ring_capacity_bytes: u64,
    /// Callback delay histogram (callback time minus event timestamp), per
    /// bucket, not cumulative; bounds from [`evb_delay_bucket_bound_ns`].
    pub delay_count: [u64; EVB_DELAY_BUCKETS],
    /// Sum of all callback delays, nanoseconds.
    pub delay_sum_ns: u64,
    /// Panic messages lost because the panic log was full.
    pub panic_messages_dropped: u64,
}

static REGISTRY: Registry<Bridge> = Registry::new();

std::thread_local! {
    static LAST_STATUS: Cell<i32> = const { Cell::new(0) };
}

fn set_status(s: EvbStatus) {
    LAST_STATUS.with(|c| c.set(s as i32));
}

/// Turns a nullable pointer into a reference or returns `$fail` from the
/// enclosing closure.
macro_rules! try_ref {
    ($p:expr, $fail:expr) => {{
        let p = $p;
        if p.is_null() {
            return $fail;
        }
        // SAFETY: non-null, and every bridge pointer C holds came from
        // evb_bridge_new and is valid until evb_bridge_free (documented
        // precondition of each function taking one).
        unsafe { &*p }
    }};
}

/// ABI version of this library ([`EVB_ABI_VERSION`]). Any thread.
#[no_mangle]
pub extern "C" fn evb_abi_version() -> u32 {
    ffi_boundary!(EVB_ABI_VERSION)
}

/// The engine ABI version this library was built against. Any thread.
#[no_mangle]
pub extern "C" fn evb_engine_abi_version() -> u32 {
    ffi_boundary!(EVB_ENGINE_ABI_VERSION)
}

/// Status recorded by the last `evb_bridge_new` or `evb_bridge_token_new` on
/// the calling thread: 0 after a success, an [`EvbStatus`] after a failure.
#[no_mangle]
pub extern "C" fn evb_last_status() -> i32 {
    ffi_boundary!(LAST_STATUS.with(|c| c.get()))
}

/// Static, NUL-terminated name of a status ("EVB_OK", "EVB_RING_FULL", ...);
/// "EVB_UNKNOWN" for other values. Any thread.
#[no_mangle]
pub extern "C" fn evb_status_name(status: i32) -> *const c_char {
    ffi_boundary!({
        let s: &'static [u8] = match status {
            0 => b"EVB_OK\0",
            -1001 => b"EVB_NULL_ARGUMENT\0",
            -1002 => b"EVB_INVALID_ARGUMENT\0",
            -1003 => b"EVB_ABI_MISMATCH\0",
            -1004 => b"EVB_NO_MEMORY\0",
            -1005 => b"EVB_NO_SLOT\0",
            -1006 => b"EVB_RING_FULL\0",
            -1007 => b"EVB_INVALID_EVENT\0",
            -1008 => b"EVB_STALE\0",
            -1009 => b"EVB_PANIC\0",
            -1010 => b"EVB_BAD_USERDATA\0",
            _ => b"EVB_UNKNOWN\0",
        };
        s.as_ptr().cast::<c_char>()
    })
}

/// Creates a bridge.
///
/// * `engine_abi`: the engine's `ee_abi_version()`; must equal
///   [`EVB_ENGINE_ABI_VERSION`] (else NULL, status `AbiMismatch`).
/// * `ring_capacity`: ring data area in bytes, a power of two from 256 B to
///   4 GiB, at least twice the largest record (`48 + max_payload` rounded up
///   to 64).
/// * `max_payload`: largest payload accepted, 1 B to 16 MiB.
/// * `late_threshold_ns`: callback delay beyond which an event counts as late.
/// * `kind_mask`: bit k set accepts kind k.
///
/// Returns the bridge, owned by the caller until [`evb_bridge_free`], or NULL
/// with [`evb_last_status`] set (`InvalidArgument`, `AbiMismatch`, `NoMemory`).
/// Installs this library's panic hook on first use. Control thread.
#[no_mangle]
pub extern "C" fn evb_bridge_new(
    engine_abi: u32,
    ring_capacity: u64,
    max_payload: u32,
    late_threshold_ns: u64,
    kind_mask: u32,
) -> *mut Bridge {
    ffi_boundary!({
        install_hook();
        if engine_abi != EVB_ENGINE_ABI_VERSION {
            set_status(EvbStatus::AbiMismatch);
            return std::ptr::null_mut();
        }
        let cfg = Config { ring_capacity, max_payload, late_threshold_ns, kind_mask };
        match Bridge::new(cfg) {
            Ok(b) => {
                set_status(EvbStatus::Ok);
                Box::into_raw(Box::new(b))
            }
            Err(s) => {
                set_status(s);
                std::ptr::null_mut()
            }
        }
    })
}

/// Frees a bridge: revokes its tokens, waits until no callback is inside it,
/// then releases the ring. The caller must have unregistered the callback
/// from the engine first (then the wait is immediate) and must not use the
/// ring's memory afterwards. NULL is a no-op.
///
/// # Safety
/// `bridge` is NULL or came from [`evb_bridge_new`] and was not freed.
#[no_mangle]
pub unsafe extern "C" fn evb_bridge_free(bridge: *mut Bridge) {
    ffi_boundary!({
        if bridge.is_null() {
            return;
        }
        REGISTRY.detach(bridge);
        // SAFETY: came from Box::into_raw in evb_bridge_new (precondition),
        // and detach guarantees no callback still holds it.
        drop(unsafe { Box::from_raw(bridge) });
    })
}

/// Issues a userdata token for `bridge`: pass it as the `userdata` of the
/// engine registration whose callback is [`evb_on_event`]. It is an opaque
/// value, never dereferenced. Returns NULL with [`evb_last_status`] set to
/// `NullArgument` or `NoSlot` (64 live tokens per process).
///
/// # Safety
/// `bridge` is NULL or a live bridge.
#[no_mangle]
pub unsafe extern "C" fn evb_bridge_token_new(bridge: *mut Bridge) -> *mut c_void {
    ffi_boundary!({
        if bridge.is_null() {
            set_status(EvbStatus::NullArgument);
            return std::ptr::null_mut();
        }
        match REGISTRY.issue(bridge) {
            Some(t) => {
                set_status(EvbStatus::Ok);
                t as *mut c_void
            }
            None => {
                set_status(EvbStatus::NoSlot);
                std::ptr::null_mut()
            }
        }
    })
}

/// Revokes a token after its engine registration was removed. Later calls
/// carrying it are counted as stale and return `EVB_STALE`. Returns `EVB_OK`,
/// or `EVB_STALE` if the token was not live. Control thread.
#[no_mangle]
pub extern "C" fn evb_token_revoke(token: *mut c_void) -> i32 {
    ffi_boundary!(if REGISTRY.revoke(token as usize) { EvbStatus::Ok as i32 } else { EvbStatus::Stale as i32 })
}

/// The event callback: validates the event, copies it into the ring and
/// returns `EVB_OK`, or counts why not and returns `EVB_RING_FULL`,
/// `EVB_INVALID_EVENT`, `EVB_STALE`, `EVB_BAD_USERDATA` or `EVB_PANIC`.
///
/// Any thread, concurrently. Never blocks, never allocates on the accepting
/// path; calls the doorbell at most once per consumer wait.
///
/// # Safety
/// Nothing is trusted: `ev` may be NULL, `userdata` any value. When `ev` is
/// non-NULL it must be readable for 48 bytes, and a non-NULL payload with a
/// length at most the bridge's `max_payload` must be readable for that length.
#[no_mangle]
pub unsafe extern "C" fn evb_on_event(ev: *const EvbEvent, userdata: *mut c_void) -> c_int {
    let _inside = crate::panic::InBoundary::enter();
    let mut held = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        match REGISTRY.resolve(userdata as usize) {
            Resolved::Bad => {
                bump(&ORPHANS.bad_userdata);
                EvbStatus::BadUserdata
            }
            Resolved::Stale(b) => {
                bump(&b.counters.mine().stale);
                EvbStatus::Stale
            }
            Resolved::Live(b) => {
                let b = held.insert(b);
                // SAFETY: forwarded; `handle` validates before dereferencing.
                unsafe { b.handle(ev) }
            }
        }
    }));
    match outcome {
        Ok(s) => s as c_int,
        Err(_) => {
            match &held {
                Some(b) => bump(&b.counters.mine().panicked),
                None => bump(&ORPHANS.panicked),
            }
            EvbStatus::Panic as c_int
        }
    }
}

/// Address of [`evb_on_event`], for hosts (such as Node through ffi-rs) that
/// can pass a function pointer but not name a symbol. Any thread.
#[no_mangle]
pub extern "C" fn evb_callback() -> EvbEventCallback {
    ffi_boundary!(Some(evb_on_event as unsafe extern "C" fn(*const EvbEvent, *mut c_void) -> c_int))
}

/// Sets the doorbell (NULL clears it). It is called on an engine thread when
/// a record is published while the consumer is armed (see [`evb_drain`]), at
/// most once per arming, so at most one wakeup is pending. It must not block
/// and must not call into the bridge. Returns `EVB_OK` or `EVB_NULL_ARGUMENT`.
///
/// # Safety
/// `bridge` is NULL or a live bridge.
#[no_mangle]
pub unsafe extern "C" fn evb_bridge_set_doorbell(bridge: *mut Bridge, doorbell: EvbDoorbell) -> i32 {
    ffi_boundary!({
        let b = try_ref!(bridge, EvbStatus::NullArgument as i32);
        b.ring.set_doorbell(doorbell);
        EvbStatus::Ok as i32
    })
}

/// Start of the ring's data area, valid for [`evb_ring_capacity`] bytes
/// until [`evb_bridge_free`]; NULL for a NULL bridge. The bridge owns it.
///
/// # Safety
/// `bridge` is NULL or a live bridge.
#[no_mangle]
pub unsafe extern "C" fn evb_ring_data(bridge: *mut Bridge) -> *mut u8 {
    ffi_boundary!(try_ref!(bridge, std::ptr::null_mut()).ring.data_ptr())
}

/// Size of the ring's data area in bytes; 0 for a NULL bridge.
///
/// # Safety
/// `bridge` is NULL or a live bridge.
#[no_mangle]
pub unsafe extern "C" fn evb_ring_capacity(bridge: *mut Bridge) -> u64 {
    ffi_boundary!(try_ref!(bridge, 0).ring.capacity())
}

/// Releases the batch handed out by the previous call and hands out the next:
/// at most `max_records` records and `max_bytes` bytes (at least one record
/// if any is ready). The batch is described at [`evb_drain_result`]; its
/// records may be read in place until the next call.
///
/// With `arm` non-zero and nothing ready, the bridge arms the doorbell before
/// returning 0: the next published record rings it. A 0 return with `arm`
/// set therefore always means a doorbell is coming; no wakeup is lost.
///
/// Returns the record count, or `EVB_NULL_ARGUMENT`.
///
/// # Safety
/// `bridge` is NULL or a live bridge, and one thread only ever drains it.
#[no_mangle]
pub unsafe extern "C" fn evb_drain(bridge: *mut Bridge, max_bytes: u64, max_records: u64, arm: i32) -> i64 {
    ffi_boundary!({
        let b = try_ref!(bridge, EvbStatus::NullArgument as i64);
        // SAFETY: single consumer, per this function's contract.
        unsafe { b.drain(max_bytes, max_records, arm != 0) as i64 }
    })
}

/// The bridge-owned [`EvbDrain`] that [`evb_drain`] fills; stable for the
/// bridge's life, so a host can map it once. NULL for a NULL bridge.
///
/// # Safety
/// `bridge` is NULL or a live bridge.
#[no_mangle]
pub unsafe extern "C" fn evb_drain_result(bridge: *mut Bridge) -> *const EvbDrain {
    ffi_boundary!(try_ref!(bridge, std::ptr::null()).drain_cell().get().cast_const())
}

/// Refreshes the bridge-owned [`EvbStats`] snapshot and returns it; stable
/// for the bridge's life. NULL for a NULL bridge.
///
/// # Safety
/// `bridge` is NULL or a live bridge; called from the consumer thread.
#[no_mangle]
pub unsafe extern "C" fn evb_bridge_stats(bridge: *mut Bridge) -> *const EvbStats {
    ffi_boundary!({
        let b = try_ref!(bridge, std::ptr::null());
        let snap = b.snapshot();
        // SAFETY: only the consumer thread writes `stats` (contract above).
        unsafe { *b.stats_cell().get() = snap };
        b.stats_cell().get().cast_const()
    })
}

/// Upper bound of delay bucket `index` in nanoseconds; `UINT64_MAX` for the
/// last (overflow) bucket and beyond. Any thread.
#[no_mangle]
pub extern "C" fn evb_delay_bucket_bound_ns(index: u32) -> u64 {
    ffi_boundary!(crate::counters::DELAY_BOUNDS_NS.get(index as usize).copied().unwrap_or(u64::MAX))
}

/// Pops the oldest panic message ("message at file:line") from the
/// process-wide log. Returns a NUL-terminated string owned by the library,
/// valid until the calling thread's next call; "" when the log is empty.
#[no_mangle]
pub extern "C" fn evb_panic_message_next() -> *const c_char {
    ffi_boundary!({
        let msg = pop_message().unwrap_or_default().replace('\0', " ");
        LAST_MESSAGE.with(|c| {
            let mut c = c.borrow_mut();
            *c = CString::new(msg).unwrap_or_default();
            c.as_ptr()
        })
    })
}

/// Fault injection: the next `n` accepted events panic inside the callback
/// after their record was reserved (the record is then discarded and skipped
/// by the consumer). Returns `EVB_OK` or `EVB_NULL_ARGUMENT`.
///
/// # Safety
/// `bridge` is NULL or a live bridge.
#[no_mangle]
pub unsafe extern "C" fn evb_bridge_fault_panic(bridge: *mut Bridge, n: u32) -> i32 {
    ffi_boundary!({
        try_ref!(bridge, EvbStatus::NullArgument as i32).fault_panic(u64::from(n));
        EvbStatus::Ok as i32
    })
}
