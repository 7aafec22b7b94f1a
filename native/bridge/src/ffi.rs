//! The exported `evb_*` functions. Types and constants live in
//! [`crate::abi`]; this module holds only the `#[no_mangle]` functions, each
//! of which runs its whole body inside one panic boundary.
//!
//! Conventions (after rustls-ffi):
//! * pointer arguments are checked for NULL and yield `EVB_STATUS_NULL_ARGUMENT`;
//! * functions that create an object return it or NULL, and record why in a
//!   per-thread status read with `evb_last_status()` and, for engines, a
//!   message read with `evb_last_error()`;
//! * `_new`/`_free` (and `_load`/`_free`) come in pairs, and `_free(NULL)`
//!   is a no-op.
//!
//! Threading: `evb_on_event` may be called from any thread, concurrently.
//! Everything else is for the thread that owns the bridge or engine (the
//! "control thread"); a bridge's drain and stats calls, and every engine
//! call, refuse with `EVB_STATUS_BUSY` rather than wait when another thread
//! is inside one.

use crate::abi::{EvbDoorbell, EvbDrain, EvbEvent, EvbEventCallback, EvbStats, EvbStatus};
use crate::abi::{DELAY_BOUNDS_NS, EVB_ABI_VERSION, EVB_PLUGIN_ABI_VERSION};
use crate::bridge::{Bridge, Config, REGISTRY};
use crate::counters::{bump, ORPHANS};
use crate::panic::{ffi_boundary, install_hook, pop_message, LAST_MESSAGE};
use crate::plugin::{Engine, Plugin, PluginError};
use crate::registry::Resolved;
use crate::sync::my_stripe;
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::{Mutex, OnceLock, TryLockError};

std::thread_local! {
    static LAST_STATUS: Cell<i32> = const { Cell::new(0) };
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_status(s: EvbStatus) {
    LAST_STATUS.with(|c| c.set(s as i32));
}

fn set_error(e: &PluginError) {
    set_status(e.status);
    LAST_ERROR.with(|c| *c.borrow_mut() = CString::new(e.message.replace('\0', " ")).unwrap_or_default());
}

/// An engine as C sees it: the plugin's engine behind a lock that is only
/// ever tried, so that concurrent control calls are refused, not raced.
pub struct EngineHandle {
    engine: Mutex<Engine>,
}

/// Turns a nullable pointer into a reference or returns `$fail` from the
/// enclosing closure.
macro_rules! try_ref {
    ($p:expr, $fail:expr) => {{
        let p = $p;
        if p.is_null() {
            return $fail;
        }
        // SAFETY: non-null, and every bridge or engine pointer C holds came
        // from its _new/_load function and is valid until the matching _free
        // (documented precondition of each function taking one).
        unsafe { &*p }
    }};
}

/// Locks an engine, or returns `$fail` when another thread holds it.
macro_rules! try_engine {
    ($h:expr, $fail:expr) => {{
        match $h.engine.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                set_status(EvbStatus::Busy);
                return $fail;
            }
        }
    }};
}

/// ABI version of this library (`EVB_ABI_VERSION`). Any thread.
#[no_mangle]
pub extern "C" fn evb_abi_version() -> u32 {
    ffi_boundary!(EVB_ABI_VERSION)
}

/// The engine plugin ABI version this library loads (`EVB_PLUGIN_ABI_VERSION`).
/// Any thread.
#[no_mangle]
pub extern "C" fn evb_plugin_abi_version() -> u32 {
    ffi_boundary!(EVB_PLUGIN_ABI_VERSION)
}

/// Status recorded by the last failing or succeeding `_new`, `_load`,
/// `_token_new` or engine call on the calling thread: 0 after a success, an
/// `evb_status` after a failure.
#[no_mangle]
pub extern "C" fn evb_last_status() -> i32 {
    ffi_boundary!(LAST_STATUS.with(|c| c.get()))
}

/// Message of the last engine failure on the calling thread (one sentence
/// naming the plugin file and the fault), "" when none. Owned by the
/// library, valid until the thread's next engine failure.
#[no_mangle]
pub extern "C" fn evb_last_error() -> *const c_char {
    ffi_boundary!(LAST_ERROR.with(|c| c.borrow().as_ptr()))
}

/// Static, NUL-terminated name of a status as this header spells it
/// ("EVB_STATUS_OK", "EVB_STATUS_RING_FULL", ...); "EVB_STATUS_UNKNOWN" for
/// other values. Derived from the `evb_status` enum itself. Any thread.
#[no_mangle]
pub extern "C" fn evb_status_name(status: i32) -> *const c_char {
    ffi_boundary!({
        use strum::IntoEnumIterator;
        static NAMES: OnceLock<Vec<(i32, CString)>> = OnceLock::new();
        static UNKNOWN: &CStr = c"EVB_STATUS_UNKNOWN";
        let names = NAMES.get_or_init(|| {
            EvbStatus::iter()
                .map(|s| {
                    let name: &'static str = s.into();
                    (s as i32, CString::new(format!("EVB_STATUS_{name}")).expect("no NUL in a variant name"))
                })
                .collect()
        });
        names.iter().find(|(v, _)| *v == status).map_or(UNKNOWN.as_ptr(), |(_, n)| n.as_ptr())
    })
}

/// The layout description: JSON giving the size and field offsets of every
/// struct another language reads, the record header, the limits, and the
/// reason and delay-bucket lists. Static, NUL-terminated. Hosts compare it
/// with the layout they were built against and refuse a difference. Any
/// thread.
#[no_mangle]
pub extern "C" fn evb_layout_json() -> *const c_char {
    ffi_boundary!({
        static LAYOUT: OnceLock<CString> = OnceLock::new();
        LAYOUT.get_or_init(|| CString::new(crate::abi::layout_json()).expect("JSON has no NUL")).as_ptr()
    })
}

/// Creates a bridge.
///
/// * `ring_capacity`: ring data area in bytes, a power of two from 256 B to
///   4 GiB, at least twice the largest record (48 + `max_payload` + 255,
///   rounded up to 64).
/// * `max_payload`: largest payload accepted, 1 B to 16 MiB.
/// * `late_threshold_ns`: callback delay beyond which an event counts as late.
/// * `kind_mask`: bit k set accepts kind k (an engine's declared kinds).
///
/// Returns the bridge, owned by the caller until `evb_bridge_free()`, or NULL
/// with `evb_last_status()` set (`INVALID_ARGUMENT`, `NO_MEMORY`). Installs
/// this library's panic hook on first use. Control thread.
#[no_mangle]
pub extern "C" fn evb_bridge_new(ring_capacity: u64, max_payload: u32, late_threshold_ns: u64, kind_mask: u32) -> *mut Bridge {
    ffi_boundary!({
        install_hook();
        match Bridge::new(Config { ring_capacity, max_payload, late_threshold_ns, kind_mask }) {
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
/// then releases the ring. The caller should have detached it from its
/// engine first (then the wait is immediate) and must not use the ring's
/// memory afterwards. NULL is a no-op. Control thread.
///
/// # Safety
/// `bridge` is NULL or came from `evb_bridge_new()` and was not freed.
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
/// registration whose callback is `evb_on_event`. It is an opaque value,
/// never dereferenced. Returns NULL with `evb_last_status()` set to
/// `NULL_ARGUMENT` or `NO_SLOT` (64 live tokens per process). Control thread.
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

/// Revokes a token after its registration was removed. Later calls carrying
/// it are counted as stale and return `EVB_STATUS_STALE`. Returns
/// `EVB_STATUS_OK`, or `EVB_STATUS_STALE` if the token was not live. Control
/// thread.
#[no_mangle]
pub extern "C" fn evb_token_revoke(token: *mut c_void) -> i32 {
    ffi_boundary!(if REGISTRY.revoke(token as usize) { EvbStatus::Ok as i32 } else { EvbStatus::Stale as i32 })
}

/// The event callback (an `evb_event_cb`): counts the call, validates the
/// event, copies it into the ring and returns `EVB_STATUS_OK`, or counts why
/// not and returns `EVB_STATUS_RING_FULL`, `_INVALID_EVENT`, `_STALE`,
/// `_BAD_USERDATA` or `_PANIC`.
///
/// Any thread, concurrently. Never blocks, never allocates on the accepting
/// path; calls the doorbell at most once per consumer wait.
///
/// The callback delay (now minus `ev->ts_ns`) is read from the CPU's
/// time-stamp counter mapped onto CLOCK_MONOTONIC where the kernel's own
/// clocksource is `tsc`, otherwise from `clock_gettime(CLOCK_MONOTONIC)`.
/// The mapping is re-anchored to the kernel's clock by the first call after
/// each millisecond, and its error stays under 0.5 µs even while NTP slews
/// the clock at its fastest (the `clock` module derives the bound; its tests
/// see under 2 µs).
///
/// # Safety
/// Nothing is trusted: `ev` may be NULL, `userdata` any value. When `ev` is
/// non-NULL it must be readable for `sizeof(evb_event_t)`, and non-NULL
/// payload and subject pointers with lengths within the bridge's limits must
/// be readable for those lengths.
#[no_mangle]
pub unsafe extern "C" fn evb_on_event(ev: *const EvbEvent, userdata: *mut c_void) -> c_int {
    let _inside = crate::panic::InBoundary::enter();
    let mut held = None;
    // Looked up once: every counter this call touches is in this stripe.
    let stripe = my_stripe();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match REGISTRY.resolve_as(userdata as usize, stripe) {
        Resolved::Bad => {
            bump(&ORPHANS.calls);
            bump(&ORPHANS.bad_userdata);
            EvbStatus::BadUserdata
        }
        Resolved::Stale(b) => {
            let c = b.counters.stripe(stripe);
            c.bump(&c.calls);
            c.bump(&c.stale);
            EvbStatus::Stale
        }
        Resolved::Live(b) => {
            let b = held.insert(b);
            // SAFETY: forwarded; `handle` validates before dereferencing.
            unsafe { b.handle(ev, &b.counters.stripe(stripe)) }
        }
    }));
    match outcome {
        Ok(s) => s as c_int,
        Err(_) => {
            match &held {
                Some(b) => {
                    let c = b.counters.stripe(stripe);
                    c.bump(&c.panicked);
                }
                None => bump(&ORPHANS.panicked),
            }
            EvbStatus::Panic as c_int
        }
    }
}

/// Address of `evb_on_event`, for hosts (such as Node through ffi-rs) that
/// can pass a function pointer but not name a symbol. Any thread.
#[no_mangle]
pub extern "C" fn evb_callback() -> EvbEventCallback {
    ffi_boundary!(Some(evb_on_event as unsafe extern "C" fn(*const EvbEvent, *mut c_void) -> c_int))
}

/// Sets the doorbell (NULL clears it). It is called on an engine thread when
/// a record is published while the consumer is armed (see `evb_drain()`), at
/// most once per arming, so at most one wakeup is pending. It must not block
/// and must not call into the bridge. Returns `EVB_STATUS_OK` or
/// `EVB_STATUS_NULL_ARGUMENT`. Control thread.
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

/// Start of the ring's data area, valid for `evb_ring_capacity()` bytes
/// until `evb_bridge_free()`; NULL for a NULL bridge. The bridge owns it.
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
/// if any is ready). The batch is described at `evb_drain_result()`; its
/// records may be read in place until the next call.
///
/// With `arm` non-zero and nothing ready, the bridge arms the doorbell before
/// returning 0: the next published record rings it. A 0 return with `arm`
/// set therefore always means a doorbell is coming; no wakeup is lost.
///
/// Returns the record count, `EVB_STATUS_NULL_ARGUMENT`, or
/// `EVB_STATUS_BUSY` when another thread is draining (one consumer at a time).
///
/// # Safety
/// `bridge` is NULL or a live bridge.
#[no_mangle]
pub unsafe extern "C" fn evb_drain(bridge: *mut Bridge, max_bytes: u64, max_records: u64, arm: i32) -> i64 {
    ffi_boundary!({
        let b = try_ref!(bridge, EvbStatus::NullArgument as i64);
        match b.drain(max_bytes, max_records, arm != 0) {
            Ok(n) => n as i64,
            Err(s) => s as i64,
        }
    })
}

/// The bridge-owned `evb_drain_t` that `evb_drain()` fills; stable for the
/// bridge's life, so a host can map it once. NULL for a NULL bridge. Read it
/// only between your own drain calls.
///
/// # Safety
/// `bridge` is NULL or a live bridge.
#[no_mangle]
pub unsafe extern "C" fn evb_drain_result(bridge: *mut Bridge) -> *const EvbDrain {
    ffi_boundary!(try_ref!(bridge, std::ptr::null()).drain_cell())
}

/// Refreshes the bridge-owned `evb_stats_t` snapshot and returns it; stable
/// for the bridge's life. NULL for a NULL bridge or while another thread is
/// draining (then `evb_last_status()` is `EVB_STATUS_BUSY`).
///
/// # Safety
/// `bridge` is NULL or a live bridge.
#[no_mangle]
pub unsafe extern "C" fn evb_bridge_stats(bridge: *mut Bridge) -> *const EvbStats {
    ffi_boundary!({
        let b = try_ref!(bridge, std::ptr::null());
        match b.refresh_stats() {
            Ok(p) => p,
            Err(s) => {
                set_status(s);
                std::ptr::null()
            }
        }
    })
}

/// Upper bound of delay bucket `index` in nanoseconds; `UINT64_MAX` for the
/// last (overflow) bucket and beyond. Any thread.
#[no_mangle]
pub extern "C" fn evb_delay_bucket_bound_ns(index: u32) -> u64 {
    ffi_boundary!(DELAY_BOUNDS_NS.get(index as usize).copied().unwrap_or(u64::MAX))
}

/// Pops the oldest panic message ("message at file:line") from the
/// process-wide log. Returns a NUL-terminated string owned by the library,
/// valid until the calling thread's next call; "" when the log is empty.
/// Any thread.
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
/// by the consumer). Returns `EVB_STATUS_OK` or `EVB_STATUS_NULL_ARGUMENT`.
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

/// Loads the engine plugin at `path` (NUL-terminated) and creates its engine
/// from `config_len` bytes of JSON at `config_json` (the plugin's own
/// configuration block; "{}" when it has none).
///
/// Returns the engine, owned by the caller until `evb_engine_free()`, or NULL
/// with `evb_last_status()` set (`PLUGIN_NOT_FOUND`, `PLUGIN_NOT_SHARED`,
/// `PLUGIN_NO_ENTRY`, `PLUGIN_ABI`, `PLUGIN_TABLE`, `PLUGIN_CREATE`,
/// `PLUGIN_DESCRIBE`, `NULL_ARGUMENT`, `INVALID_ARGUMENT`) and
/// `evb_last_error()` naming the file and the fault. Control thread.
///
/// # Safety
/// `path` is NULL or NUL-terminated; `config_json` is NULL or readable for
/// `config_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn evb_engine_load(path: *const c_char, config_json: *const c_char, config_len: usize) -> *mut EngineHandle {
    ffi_boundary!({
        install_hook();
        let fail = |status: EvbStatus, message: String| {
            set_error(&PluginError { status, message });
            std::ptr::null_mut()
        };
        if path.is_null() || config_json.is_null() {
            return fail(EvbStatus::NullArgument, "evb_engine_load: path and config_json are required".to_owned());
        }
        // SAFETY: NUL-terminated per the contract.
        let Ok(path) = (unsafe { CStr::from_ptr(path) }).to_str() else {
            return fail(EvbStatus::InvalidArgument, "evb_engine_load: the plugin path is not UTF-8".to_owned());
        };
        // SAFETY: readable for config_len bytes per the contract.
        let bytes = unsafe { std::slice::from_raw_parts(config_json.cast::<u8>(), config_len) };
        let Ok(config) = std::str::from_utf8(bytes) else {
            return fail(EvbStatus::InvalidArgument, format!("Engine plugin {path}: its configuration is not UTF-8."));
        };
        match Plugin::load(std::path::Path::new(path)).and_then(|p| Engine::create(p, config)) {
            Ok(engine) => {
                set_status(EvbStatus::Ok);
                Box::into_raw(Box::new(EngineHandle { engine: Mutex::new(engine) }))
            }
            Err(e) => {
                set_error(&e);
                std::ptr::null_mut()
            }
        }
    })
}

/// The engine's description, JSON: `path`, `name`, `version`, `abi_version`,
/// `kinds` (`[{name, number}]`), `sources` (`[{id, kind, name, detail}]`),
/// `counters` (`[{name, help}]`, the order of `evb_engine_counters()`),
/// `debug` (whether it has debug commands), `unused_config_keys`. Owned by
/// the engine, valid until `evb_engine_free()`; NULL for NULL or when busy.
///
/// # Safety
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn evb_engine_describe(engine: *mut EngineHandle) -> *const c_char {
    ffi_boundary!({
        let h = try_ref!(engine, std::ptr::null());
        try_engine!(h, std::ptr::null()).describe().as_ptr()
    })
}

/// Registers the bridge's callback with the engine for every kind it
/// declared, with a fresh userdata token. Returns `EVB_STATUS_OK` or a
/// status, with `evb_last_error()` set. Control thread.
///
/// # Safety
/// `engine` and `bridge` are NULL or live.
#[no_mangle]
pub unsafe extern "C" fn evb_engine_attach(engine: *mut EngineHandle, bridge: *mut Bridge) -> i32 {
    ffi_boundary!({
        let h = try_ref!(engine, EvbStatus::NullArgument as i32);
        if bridge.is_null() {
            return EvbStatus::NullArgument as i32;
        }
        let mut e = try_engine!(h, EvbStatus::Busy as i32);
        let Some(token) = REGISTRY.issue(bridge) else {
            set_status(EvbStatus::NoSlot);
            return EvbStatus::NoSlot as i32;
        };
        match e.attach(evb_callback(), token) {
            Ok(()) => EvbStatus::Ok as i32,
            Err(err) => {
                REGISTRY.revoke(token);
                set_error(&err);
                err.status as i32
            }
        }
    })
}

/// Removes the bridge's registration (the plugin waits for calls in flight)
/// and revokes its token. Returns `EVB_STATUS_OK` or a status, with
/// `evb_last_error()` set. Control thread.
///
/// # Safety
/// `engine` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn evb_engine_detach(engine: *mut EngineHandle) -> i32 {
    ffi_boundary!({
        let h = try_ref!(engine, EvbStatus::NullArgument as i32);
        match try_engine!(h, EvbStatus::Busy as i32).detach() {
            Ok(token) => {
                REGISTRY.revoke(token);
                EvbStatus::Ok as i32
            }
            Err(err) => {
                set_error(&err);
                err.status as i32
            }
        }
    })
}

/// Registers the bridge's callback with a fresh token, unregisters it and
/// revokes the token: a retired registration, for engines whose fault
/// injection replays one (stale calls). Returns `EVB_STATUS_OK` or a status.
/// Control thread.
///
/// # Safety
/// `engine` and `bridge` are NULL or live.
#[no_mangle]
pub unsafe extern "C" fn evb_engine_retire_registration(engine: *mut EngineHandle, bridge: *mut Bridge) -> i32 {
    ffi_boundary!({
        let h = try_ref!(engine, EvbStatus::NullArgument as i32);
        if bridge.is_null() {
            return EvbStatus::NullArgument as i32;
        }
        let mut e = try_engine!(h, EvbStatus::Busy as i32);
        let Some(token) = REGISTRY.issue(bridge) else { return EvbStatus::NoSlot as i32 };
        let r = e.register_and_unregister(evb_callback(), token);
        REGISTRY.revoke(token);
        match r {
            Ok(()) => EvbStatus::Ok as i32,
            Err(err) => {
                set_error(&err);
                err.status as i32
            }
        }
    })
}

/// Starts the engine. Returns `EVB_STATUS_OK` or a status, with
/// `evb_last_error()` set. Control thread.
///
/// # Safety
/// `engine` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn evb_engine_start(engine: *mut EngineHandle) -> i32 {
    ffi_boundary!({
        let h = try_ref!(engine, EvbStatus::NullArgument as i32);
        match try_engine!(h, EvbStatus::Busy as i32).start() {
            Ok(()) => EvbStatus::Ok as i32,
            Err(err) => {
                set_error(&err);
                err.status as i32
            }
        }
    })
}

/// Stops the engine: no callback runs after it returns. Idempotent. Returns
/// `EVB_STATUS_OK` or a status, with `evb_last_error()` set. Control thread.
///
/// # Safety
/// `engine` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn evb_engine_stop(engine: *mut EngineHandle) -> i32 {
    ffi_boundary!({
        let h = try_ref!(engine, EvbStatus::NullArgument as i32);
        match try_engine!(h, EvbStatus::Busy as i32).stop() {
            Ok(()) => EvbStatus::Ok as i32,
            Err(err) => {
                set_error(&err);
                err.status as i32
            }
        }
    })
}

/// Refreshes the engine's own counters and returns them: an array of u64 in
/// the order of the description's `counters`, owned by the engine, at a
/// stable address until `evb_engine_free()`. NULL for NULL, or when busy
/// (the previous values stay at the same address). Control thread.
///
/// # Safety
/// `engine` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn evb_engine_counters(engine: *mut EngineHandle) -> *const u64 {
    ffi_boundary!({
        let h = try_ref!(engine, std::ptr::null());
        try_engine!(h, std::ptr::null()).counters().as_ptr()
    })
}

/// Runs the plugin's debug command `command` (1 to 32 bytes of `[a-z0-9_]`,
/// NUL-terminated) with `arg`. Returns its result (>= 0) or a negative
/// `evb_status` (`UNSUPPORTED`, `INVALID_ARGUMENT`, `PLUGIN_CALL`, `BUSY`)
/// with `evb_last_error()` set. May take long; the engine is locked
/// meanwhile. Control thread (or a worker the control thread waits for).
///
/// # Safety
/// `engine` is NULL or live; `command` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn evb_engine_debug(engine: *mut EngineHandle, command: *const c_char, arg: u64) -> i64 {
    ffi_boundary!({
        let h = try_ref!(engine, EvbStatus::NullArgument as i64);
        if command.is_null() {
            return EvbStatus::NullArgument as i64;
        }
        // SAFETY: NUL-terminated per the contract.
        let cmd = unsafe { CStr::from_ptr(command) }.to_string_lossy().into_owned();
        match try_engine!(h, EvbStatus::Busy as i64).debug(&cmd, arg) {
            Ok(v) => v,
            Err(err) => {
                set_error(&err);
                err.status as i64
            }
        }
    })
}

/// Stops and frees the engine (removing a registration still present), then
/// unloads the plugin if no other engine uses it. NULL is a no-op. Control
/// thread.
///
/// # Safety
/// `engine` is NULL or came from `evb_engine_load()` and was not freed.
#[no_mangle]
pub unsafe extern "C" fn evb_engine_free(engine: *mut EngineHandle) {
    ffi_boundary!({
        if engine.is_null() {
            return;
        }
        // SAFETY: came from Box::into_raw in evb_engine_load (precondition).
        let h = unsafe { Box::from_raw(engine) };
        let mut e = h.engine.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Ok(token) = e.detach() {
            REGISTRY.revoke(token);
        }
        drop(e);
    })
}

/// A JSON writer (see `crate::json::JsonWriter`) with an input area of
/// `input_cap` bytes and an output area of `output_cap` bytes, each 4 KiB to
/// 1 GiB; NULL otherwise (`evb_last_status()`: `EVB_STATUS_INVALID_ARGUMENT`).
/// Free it with `evb_json_writer_free()`.
///
/// The writer turns ring records into the JSON subprotocol's events array,
/// `[{...},{...}]}` (PROTOCOL.md, "events"; the `}` closes the message whose
/// head the daemon writes): the host puts an `evb_json_request_t`, the
/// kind-name table, the picks and the records in the input area (layout at
/// `evb_json_request_t`), calls `evb_json_writer_run()`, and reads the
/// result at the start of the output area.
#[no_mangle]
pub extern "C" fn evb_json_writer_new(input_cap: u64, output_cap: u64) -> *mut crate::json::JsonWriter {
    ffi_boundary!(match crate::json::JsonWriter::new(input_cap, output_cap) {
        Some(w) => {
            set_status(EvbStatus::Ok);
            Box::into_raw(Box::new(w))
        }
        None => {
            set_status(EvbStatus::InvalidArgument);
            std::ptr::null_mut()
        }
    })
}

/// The input area of `writer` (its length was `input_cap`); NULL for NULL.
/// Valid until `evb_json_writer_free()`. Write it only between runs, from
/// the thread that runs the writer.
///
/// # Safety
/// `writer` is NULL or a live writer.
#[no_mangle]
pub unsafe extern "C" fn evb_json_writer_input(writer: *mut crate::json::JsonWriter) -> *mut u8 {
    ffi_boundary!(try_ref!(writer, std::ptr::null_mut()).input().0)
}

/// The output area of `writer` (its length was `output_cap`); NULL for NULL.
/// Valid until `evb_json_writer_free()`; holds the last run's result until
/// the next run.
///
/// # Safety
/// `writer` is NULL or a live writer.
#[no_mangle]
pub unsafe extern "C" fn evb_json_writer_output(writer: *mut crate::json::JsonWriter) -> *const u8 {
    ffi_boundary!(try_ref!(writer, std::ptr::null()).output().0 as *const u8)
}

/// Writes the request in the input area; returns the bytes written at the
/// start of the output area, or `EVB_STATUS_NULL_ARGUMENT`,
/// `EVB_STATUS_BUSY` (another thread is running it), `EVB_STATUS_NO_MEMORY`
/// (the output area is too small: size it with `EVB_JSON_EVENT_FIXED_MAX`),
/// or `EVB_STATUS_INVALID_ARGUMENT` (a part of the request, a record
/// length, a pick or the kind table outside its bounds). Nothing is read or
/// written outside the two areas, whatever they hold.
///
/// # Safety
/// `writer` is NULL or a live writer, and nothing writes its areas during
/// the call.
#[no_mangle]
pub unsafe extern "C" fn evb_json_writer_run(writer: *mut crate::json::JsonWriter) -> i64 {
    ffi_boundary!(match try_ref!(writer, EvbStatus::NullArgument as i64).run() {
        Ok(n) => n as i64,
        Err(s) => s as i64,
    })
}

/// Frees a writer; NULL is a no-op. Its areas must no longer be used.
///
/// # Safety
/// `writer` is NULL or a live writer, not used after this call.
#[no_mangle]
pub unsafe extern "C" fn evb_json_writer_free(writer: *mut crate::json::JsonWriter) {
    ffi_boundary!({
        if !writer.is_null() {
            // SAFETY: non-null and came from Box::into_raw in
            // evb_json_writer_new (precondition); never used again.
            drop(unsafe { Box::from_raw(writer) });
        }
    })
}
