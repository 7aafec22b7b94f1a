//! Every fault-injection case, driven through the real C engine
//! (`native/build/libevengine.so`, built by `make -C native/engine`; set
//! EVB_ENGINE_LIB to use another path), each ending with the bridge's
//! counters checked exactly. Also the bridge's own panic switch.

use evbridge::ffi::*;
use libloading::{Library, Symbol};
use std::ffi::{c_int, c_void, CStr};
use std::path::PathBuf;
use std::sync::Mutex;

// Process-wide counters (bad userdata, orphan panics) are shared by all tests
// in this binary; run them one at a time so exact counts stay exact.
static SERIAL: Mutex<()> = Mutex::new(());

const EE_KIND_GEN: u32 = 3;
const EE_FAULT_NULL_EVENT: c_int = 1;
const EE_FAULT_NULL_PAYLOAD: c_int = 2;
const EE_FAULT_OVERSIZE: c_int = 3;
const EE_FAULT_UNKNOWN_KIND: c_int = 4;
const EE_FAULT_STALE: c_int = 5;
const EE_FAULT_LATE: c_int = 6;

struct Engine {
    lib: Library,
    eng: *mut c_void,
}

type Cb = unsafe extern "C" fn(*const EvbEvent, *mut c_void) -> c_int;

impl Engine {
    fn open() -> Engine {
        let path = std::env::var_os("EVB_ENGINE_LIB")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../build/libevengine.so"));
        // SAFETY: loading our own engine library, whose initialisers are trivial.
        let lib = unsafe { Library::new(&path) }
            .unwrap_or_else(|e| panic!("cannot load {} ({e}); build it with `make -C native/engine`", path.display()));
        let mut e = Engine { lib, eng: std::ptr::null_mut() };
        // SAFETY: signature from native/include/evengine.h.
        e.eng = unsafe { e.sym::<unsafe extern "C" fn() -> *mut c_void>(b"ee_engine_new")() };
        assert!(!e.eng.is_null());
        e
    }
    fn sym<T: Copy>(&self, name: &[u8]) -> T {
        // SAFETY: each call site names a function with the matching signature
        // from evengine.h.
        let s: Symbol<T> = unsafe { self.lib.get(name) }.expect("engine symbol");
        *s
    }
    fn abi(&self) -> u32 {
        // SAFETY: `uint32_t ee_abi_version(void)`.
        unsafe { self.sym::<unsafe extern "C" fn() -> u32>(b"ee_abi_version")() }
    }
    fn register(&self, cb: Cb, ud: *mut c_void, mask: u32) -> i64 {
        // SAFETY: `int64_t ee_engine_register(ee_engine_t*, ee_event_cb, void*, uint32_t)`.
        unsafe {
            self.sym::<unsafe extern "C" fn(*mut c_void, Cb, *mut c_void, u32) -> i64>(b"ee_engine_register")(
                self.eng, cb, ud, mask,
            )
        }
    }
    fn unregister(&self, id: i64) -> c_int {
        // SAFETY: `int ee_engine_unregister(ee_engine_t*, int64_t)`.
        unsafe { self.sym::<unsafe extern "C" fn(*mut c_void, i64) -> c_int>(b"ee_engine_unregister")(self.eng, id) }
    }
    fn faults(&self, on: bool) {
        // SAFETY: `int ee_engine_set_fault_injection(ee_engine_t*, int)`.
        let rc = unsafe {
            self.sym::<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>(b"ee_engine_set_fault_injection")(
                self.eng,
                on as c_int,
            )
        };
        assert_eq!(rc, 0);
    }
    fn inject(&self, fault: c_int, n: u32) -> i64 {
        // SAFETY: `int64_t ee_engine_inject(ee_engine_t*, ee_fault_t, uint32_t)`.
        unsafe { self.sym::<unsafe extern "C" fn(*mut c_void, c_int, u32) -> i64>(b"ee_engine_inject")(self.eng, fault, n) }
    }
    fn add_generator(&self, threads: u32, rate: u64, len: u32, count: u64) -> c_int {
        // SAFETY: `int ee_engine_add_generator(ee_engine_t*, uint32_t, uint64_t, uint32_t, uint64_t)`.
        unsafe {
            self.sym::<unsafe extern "C" fn(*mut c_void, u32, u64, u32, u64) -> c_int>(b"ee_engine_add_generator")(
                self.eng, threads, rate, len, count,
            )
        }
    }
    fn start(&self) -> c_int {
        // SAFETY: `int ee_engine_start(ee_engine_t*)`.
        unsafe { self.sym::<unsafe extern "C" fn(*mut c_void) -> c_int>(b"ee_engine_start")(self.eng) }
    }
    fn stop(&self) -> c_int {
        // SAFETY: `int ee_engine_stop(ee_engine_t*)`.
        unsafe { self.sym::<unsafe extern "C" fn(*mut c_void) -> c_int>(b"ee_engine_stop")(self.eng) }
    }
    fn gens_done(&self) -> c_int {
        // SAFETY: `int ee_engine_generators_done(ee_engine_t*)`.
        unsafe { self.sym::<unsafe extern "C" fn(*mut c_void) -> c_int>(b"ee_engine_generators_done")(self.eng) }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: `void ee_engine_free(ee_engine_t*)`, called once.
        unsafe { self.sym::<unsafe extern "C" fn(*mut c_void)>(b"ee_engine_free")(self.eng) }
    }
}

/// Bridge + engine + one registration of evb_on_event.
struct Rig {
    engine: Engine,
    bridge: *mut evbridge::bridge::Bridge,
    token: *mut c_void,
    reg: i64,
}

impl Rig {
    fn new(capacity: u64) -> Rig {
        let engine = Engine::open();
        let bridge = evb_bridge_new(engine.abi(), capacity, 65_536, 1_000_000, 1 << EE_KIND_GEN | 1 << 1 | 1 << 2);
        assert!(!bridge.is_null(), "evb_bridge_new: {}", evb_last_status());
        // SAFETY: live bridge.
        let token = unsafe { evb_bridge_token_new(bridge) };
        assert!(!token.is_null());
        let cb = evb_callback().expect("callback address");
        let reg = engine.register(cb, token, 1 << EE_KIND_GEN);
        assert!(reg > 0);
        engine.faults(true);
        Rig { engine, bridge, token, reg }
    }
    fn stats(&self) -> EvbStats {
        // SAFETY: live bridge; this test thread is its only consumer.
        unsafe { *evb_bridge_stats(self.bridge) }
    }
    fn drain_all(&self) -> u64 {
        let mut n = 0;
        loop {
            // SAFETY: as above.
            let got = unsafe { evb_drain(self.bridge, 1 << 20, 1 << 16, 0) };
            assert!(got >= 0);
            if got == 0 {
                return n;
            }
            n += got as u64;
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.engine.stop();
        if self.reg > 0 {
            self.engine.unregister(self.reg);
        }
        evb_token_revoke(self.token);
        // SAFETY: the registration is gone; the bridge was not freed yet.
        unsafe { evb_bridge_free(self.bridge) };
    }
}

fn assert_accounting(s: &EvbStats) {
    let sum = s.accepted + s.dropped.iter().sum::<u64>() + s.invalid.iter().sum::<u64>() + s.stale + s.panicked;
    assert_eq!(s.callbacks, sum, "callbacks = accepted + dropped + invalid + stale + panicked: {s:?}");
}

#[test]
fn garbage_arguments_are_counted_by_reason_and_never_followed() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let rig = Rig::new(1 << 20);
    let before = rig.stats();
    assert_eq!(rig.engine.inject(EE_FAULT_NULL_EVENT, 10), 10);
    assert_eq!(rig.engine.inject(EE_FAULT_NULL_PAYLOAD, 11), 11);
    assert_eq!(rig.engine.inject(EE_FAULT_OVERSIZE, 12), 12);
    assert_eq!(rig.engine.inject(EE_FAULT_UNKNOWN_KIND, 13), 13);
    let s = rig.stats();
    let d = |i: usize| s.invalid[i] - before.invalid[i];
    assert_eq!(d(EvbInvalidReason::NullEvent as usize), 10);
    assert_eq!(d(EvbInvalidReason::NullPayload as usize), 11);
    assert_eq!(d(EvbInvalidReason::TooLong as usize), 12);
    assert_eq!(d(EvbInvalidReason::BadKind as usize), 13);
    assert_eq!(s.accepted, 0);
    assert_eq!(rig.drain_all(), 0, "nothing invalid reaches the ring");
    assert_accounting(&s);
}

#[test]
fn stale_calls_after_unregister_are_counted_not_dereferenced() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut rig = Rig::new(1 << 20);
    assert_eq!(rig.engine.unregister(rig.reg), 0);
    rig.reg = 0;
    assert_eq!(evb_token_revoke(rig.token), EvbStatus::Ok as i32);
    assert_eq!(rig.engine.inject(EE_FAULT_STALE, 25), 25);
    let s = rig.stats();
    assert_eq!(s.stale, 25);
    assert_eq!(s.accepted, 0);
    assert_accounting(&s);
}

#[test]
fn late_events_are_accepted_counted_late_and_land_in_the_top_bucket() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let rig = Rig::new(1 << 20);
    assert_eq!(rig.engine.inject(EE_FAULT_LATE, 7), 7);
    let s = rig.stats();
    assert_eq!((s.late, s.accepted), (7, 7));
    // One second behind: the "<= 1 s" bucket (index 12) or above.
    assert_eq!(s.delay_count[12] + s.delay_count[13], 7);
    assert!(s.delay_sum_ns >= 7 * 1_000_000_000);
    assert_eq!(rig.drain_all(), 7);
    assert_eq!(rig.stats().delivered, 7);
    assert_accounting(&s);
}

#[test]
fn panics_are_caught_counted_logged_and_later_events_flow() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    while !evb_panic_message_next().is_null() {
        // SAFETY: non-null NUL-terminated string owned by the library.
        if unsafe { CStr::from_ptr(evb_panic_message_next()) }.to_bytes().is_empty() {
            break;
        }
    }
    let rig = Rig::new(1 << 20);
    // SAFETY: live bridge.
    assert_eq!(unsafe { evb_bridge_fault_panic(rig.bridge, 3) }, 0);
    // The next 3 events panic inside the callback, the other 5 are accepted.
    assert_eq!(rig.engine.inject(EE_FAULT_LATE, 8), 8);
    let s = rig.stats();
    assert_eq!((s.panicked, s.accepted), (3, 5));
    assert_eq!(rig.drain_all(), 5, "abandoned records are skipped");
    // SAFETY: returned strings are NUL-terminated and valid until the next call.
    let first = unsafe { CStr::from_ptr(evb_panic_message_next()) }.to_string_lossy().into_owned();
    assert!(first.contains("injected panic") && first.contains("bridge.rs"), "message kept: {first}");
    assert_accounting(&s);
}

#[test]
fn generator_overflowing_a_small_ring_counts_every_drop() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // 256 KiB holds ~2,300 records of 64 bytes; 200,000 arrive while the
    // consumer stays idle, so the overflow is certain, not timing-dependent.
    let rig = Rig::new(1 << 18);
    // Process-wide counts (bad userdata) from other tests are in `callbacks`.
    let before = rig.stats();
    let (threads, per) = (4u32, 50_000u64);
    assert!(rig.engine.add_generator(threads, 0, 64, per) >= 0);
    assert_eq!(rig.engine.start(), 0);
    while rig.engine.gens_done() < threads as c_int {
        std::thread::yield_now();
    }
    let delivered = rig.drain_all();
    let s = rig.stats();
    let total = threads as u64 * per;
    assert_eq!(s.callbacks - before.callbacks, total);
    assert_eq!(s.accepted + s.dropped[EvbDropReason::RingFull as usize], total);
    assert_eq!(s.delivered, delivered);
    assert_eq!(s.accepted, delivered, "accepted = delivered once the ring is empty");
    assert!(s.dropped[0] > 0, "a 64 KiB ring and an idle consumer must overflow");
    assert_eq!(s.ring_used_bytes, 0);
    assert_accounting(&s);
}

#[test]
fn garbage_userdata_is_refused_without_a_read() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let rig = Rig::new(1 << 20);
    let before = rig.stats().invalid[EvbInvalidReason::BadUserdata as usize];
    let ev = EvbEvent { kind: 3, source_id: 0, flags: 0, reserved: 0, source_seq: 0, ts_ns: 0, payload: std::ptr::null(), len: 0 };
    for bad in [0usize, 1, 0xdead_beef, usize::MAX, 0x1_41] {
        // SAFETY: `ev` is valid; the userdata values are garbage on purpose.
        let rc = unsafe { evb_on_event(&ev, bad as *mut c_void) };
        assert_eq!(rc, EvbStatus::BadUserdata as c_int, "userdata {bad:#x}");
    }
    assert_eq!(rig.stats().invalid[EvbInvalidReason::BadUserdata as usize] - before, 5);
}

#[test]
fn engine_abi_mismatch_is_refused() {
    assert!(evb_bridge_new(EVB_ENGINE_ABI_VERSION + 1, 1 << 20, 1024, 0, 1 << 3).is_null());
    assert_eq!(evb_last_status(), EvbStatus::AbiMismatch as i32);
    assert!(evb_bridge_new(EVB_ENGINE_ABI_VERSION, 1000, 1024, 0, 1 << 3).is_null());
    assert_eq!(evb_last_status(), EvbStatus::InvalidArgument as i32);
    // SAFETY: NULL is a documented no-op.
    unsafe { evb_bridge_free(std::ptr::null_mut()) };
}
