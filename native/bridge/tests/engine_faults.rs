//! Every fault-injection case, driven through the real reference engine
//! loaded as a plugin (`native/build/libevengine.so`, built by
//! `make -C native/engine`; set EVB_ENGINE_LIB to use another path), each
//! ending with the bridge's counters checked exactly. Also the bridge's own
//! panic switch, and the plugin loader's refusals.
#![cfg(not(loom))]

use evbridge::abi::*;
use evbridge::bridge::Bridge;
use evbridge::ffi::*;
use std::ffi::{c_int, c_void, CStr, CString};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

// Process-wide counters (bad userdata, orphan panics) are shared by all tests
// in this binary; run them one at a time so exact counts stay exact.
static SERIAL: Mutex<()> = Mutex::new(());

fn engine_path() -> CString {
    let p = std::env::var_os("EVB_ENGINE_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../build/libevengine.so"));
    CString::new(p.to_str().unwrap()).unwrap()
}

fn last_error() -> String {
    // SAFETY: evb_last_error returns a NUL-terminated string owned by the library.
    unsafe { CStr::from_ptr(evb_last_error()) }.to_string_lossy().into_owned()
}

fn load(path: &CStr, config: &str) -> *mut EngineHandle {
    // SAFETY: both arguments are valid for the lengths given.
    unsafe { evb_engine_load(path.as_ptr(), config.as_ptr().cast(), config.len()) }
}

/// Waits for `cond`, failing the test after `secs` seconds.
fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        std::thread::yield_now();
    }
}

/// Bridge + reference engine attached to it, fault injection on.
struct Rig {
    engine: *mut EngineHandle,
    bridge: *mut Bridge,
}

const ALL_KINDS: u32 = 1 << 1 | 1 << 2 | 1 << 3;

impl Rig {
    fn new(capacity: u64, generator: &str) -> Rig {
        let cfg = format!(r#"{{"udp":{{"enabled":false}},"tick":{{"hz":0}},"faultInjection":true{generator}}}"#);
        let engine = load(&engine_path(), &cfg);
        assert!(!engine.is_null(), "evb_engine_load: {}", last_error());
        let bridge = evb_bridge_new(capacity, 65_536, 1_000_000, ALL_KINDS);
        assert!(!bridge.is_null(), "evb_bridge_new: {}", evb_last_status());
        // SAFETY: both live.
        unsafe {
            assert_eq!(evb_engine_retire_registration(engine, bridge), 0, "{}", last_error());
            assert_eq!(evb_engine_attach(engine, bridge), 0, "{}", last_error());
        }
        Rig { engine, bridge }
    }
    fn debug(&self, cmd: &str, n: u64) -> i64 {
        let c = CString::new(cmd).unwrap();
        // SAFETY: live engine, NUL-terminated command.
        unsafe { evb_engine_debug(self.engine, c.as_ptr(), n) }
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
        // SAFETY: the engine is detached (its calls are over) before the
        // bridge is freed; each is freed once.
        unsafe {
            evb_engine_stop(self.engine);
            evb_engine_detach(self.engine);
            evb_bridge_free(self.bridge);
            evb_engine_free(self.engine);
        }
    }
}

fn assert_accounting(s: &EvbStats) {
    let sum = s.accepted + s.dropped.iter().sum::<u64>() + s.invalid.iter().sum::<u64>() + s.stale + s.panicked;
    assert_eq!(s.callbacks, sum, "callbacks (counted on entry) = accepted + dropped + invalid + stale + panicked: {s:?}");
}

#[test]
fn garbage_arguments_are_counted_by_reason_and_never_followed() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let rig = Rig::new(1 << 20, "");
    let before = rig.stats();
    assert_eq!(rig.debug("fault_null_event", 10), 10);
    assert_eq!(rig.debug("fault_null_payload", 11), 11);
    assert_eq!(rig.debug("fault_oversize", 12), 12);
    assert_eq!(rig.debug("fault_unknown_kind", 13), 13);
    assert_eq!(rig.debug("fault_bad_subject", 14), 14);
    let s = rig.stats();
    let d = |i: EvbInvalidReason| s.invalid[i as usize] - before.invalid[i as usize];
    assert_eq!(d(EvbInvalidReason::NullEvent), 10);
    assert_eq!(d(EvbInvalidReason::NullPayload), 11);
    assert_eq!(d(EvbInvalidReason::TooLong), 12);
    assert_eq!(d(EvbInvalidReason::BadKind), 13);
    assert_eq!(d(EvbInvalidReason::BadSubject), 14);
    assert_eq!(s.accepted, 0);
    assert_eq!(rig.drain_all(), 0, "nothing invalid reaches the ring");
    assert_eq!(s.callbacks - before.callbacks, 60, "every call counted on entry");
    assert_accounting(&s);
}

#[test]
fn stale_calls_after_unregister_are_counted_not_dereferenced() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let rig = Rig::new(1 << 20, "");
    assert_eq!(rig.debug("fault_stale", 25), 25);
    let s = rig.stats();
    assert_eq!(s.stale, 25);
    assert_eq!(s.accepted, 0);
    assert_accounting(&s);
}

#[test]
fn late_events_are_accepted_counted_late_and_land_in_the_top_bucket() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let rig = Rig::new(1 << 20, "");
    assert_eq!(rig.debug("fault_late", 7), 7);
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
    // SAFETY: returned strings are NUL-terminated and valid until the next call.
    while !unsafe { CStr::from_ptr(evb_panic_message_next()) }.to_bytes().is_empty() {}
    let rig = Rig::new(1 << 20, "");
    // SAFETY: live bridge.
    assert_eq!(unsafe { evb_bridge_fault_panic(rig.bridge, 3) }, 0);
    // The next 3 events panic inside the callback, the other 5 are accepted.
    assert_eq!(rig.debug("fault_late", 8), 8);
    let s = rig.stats();
    assert_eq!((s.panicked, s.accepted), (3, 5));
    assert_eq!(rig.drain_all(), 5, "abandoned records are skipped");
    // SAFETY: as above.
    let first = unsafe { CStr::from_ptr(evb_panic_message_next()) }.to_string_lossy().into_owned();
    assert!(first.contains("injected panic") && first.contains("bridge.rs"), "message kept: {first}");
    assert_accounting(&s);
}

#[test]
fn generator_overflowing_a_small_ring_counts_every_drop() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // 256 KiB holds ~2,300 records of 64 bytes; 200,000 arrive while the
    // consumer stays idle, so the overflow is certain, not timing-dependent.
    let rig = Rig::new(1 << 18, r#","generator":{"threads":4,"count":50000,"subjects":["a.b"]}"#);
    let before = rig.stats();
    // SAFETY: live engine.
    assert_eq!(unsafe { evb_engine_start(rig.engine) }, 0, "{}", last_error());
    wait_for(30, "the generators", || rig.debug("generators_done", 0) == 4);
    let delivered = rig.drain_all();
    let s = rig.stats();
    let total = 4 * 50_000;
    assert_eq!(s.callbacks - before.callbacks, total);
    assert_eq!(s.accepted + s.dropped[EvbDropReason::RingFull as usize], total);
    assert_eq!(s.delivered, delivered);
    assert_eq!(s.accepted, delivered, "accepted = delivered once the ring is empty");
    assert!(s.dropped[0] > 0, "a 256 KiB ring and an idle consumer must overflow");
    assert_eq!(s.ring_used_bytes, 0);
    assert_accounting(&s);
    // SAFETY: live engine; the counters array has the description's length.
    let dispatched = unsafe { *evb_engine_counters(rig.engine) };
    assert_eq!(dispatched, total, "the engine's own count agrees");
}

#[test]
fn garbage_userdata_is_refused_without_a_read() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let rig = Rig::new(1 << 20, "");
    let before = rig.stats();
    let ev = EvbEvent {
        kind: 3,
        source_id: 0,
        flags: 0,
        subject_len: 0,
        source_seq: 0,
        ts_ns: 0,
        payload: std::ptr::null(),
        len: 0,
        subject: std::ptr::null(),
    };
    for bad in [0usize, 1, 0xdead_beef, usize::MAX, 0x1_41] {
        // SAFETY: `ev` is valid; the userdata values are garbage on purpose.
        let rc = unsafe { evb_on_event(&ev, bad as *mut c_void) };
        assert_eq!(rc, EvbStatus::BadUserdata as c_int, "userdata {bad:#x}");
    }
    let s = rig.stats();
    assert_eq!(s.invalid[EvbInvalidReason::BadUserdata as usize] - before.invalid[EvbInvalidReason::BadUserdata as usize], 5);
    assert_eq!(s.callbacks - before.callbacks, 5);
}

#[test]
fn an_event_at_a_misaligned_address_is_copied_whole() {
    // The callback reads an aligned event field by field and a misaligned
    // one as a block; both must give the same record.
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let rig = Rig::new(1 << 20, "");
    // SAFETY: live bridge.
    let token = unsafe { evb_bridge_token_new(rig.bridge) };
    assert!(!token.is_null());
    let payload = *b"misaligned payload";
    let subject = *b"a.b";
    let ev = EvbEvent {
        kind: 2,
        source_id: 7,
        flags: 0x55,
        subject_len: subject.len() as u32,
        source_seq: 42,
        ts_ns: 1,
        payload: payload.as_ptr().cast(),
        len: payload.len(),
        subject: subject.as_ptr().cast(),
    };
    let mut buf = vec![0u8; std::mem::size_of::<EvbEvent>() + 8];
    for offset in [0usize, 1, 3] {
        let base = buf.as_mut_ptr().wrapping_add(buf.as_ptr().align_offset(8)).wrapping_add(offset);
        // SAFETY: `base` has room for one event (8 spare bytes cover the
        // alignment and the offset); written unaligned.
        unsafe { (base as *mut EvbEvent).write_unaligned(ev) };
        // SAFETY: `base` points to a valid event (possibly misaligned, which
        // the callback accepts); the token is live.
        let rc = unsafe { evb_on_event(base as *const EvbEvent, token) };
        assert_eq!(rc, 0, "offset {offset}");
        // SAFETY: this test is the bridge's only consumer.
        let got = unsafe { evb_drain(rig.bridge, 1 << 20, 1, 0) };
        assert_eq!(got, 1, "offset {offset}");
        // SAFETY: the batch just drained is readable in place until the next
        // drain; it starts with the record header.
        let (h, body) = unsafe {
            let d = *evb_drain_result(rig.bridge);
            let rec = evb_ring_data(rig.bridge).add(d.offset as usize);
            let h = (rec as *const EvbRecordHeader).read_unaligned();
            let body = std::slice::from_raw_parts(rec.add(EVB_RECORD_HEADER_LEN as usize), (h.payload_len + h.subject_len) as usize);
            (h, body.to_vec())
        };
        assert_eq!((h.kind, h.source_id, h.flags, h.source_seq, h.ts_ns), (2, 7, 0x55, 42, 1), "offset {offset}");
        assert_eq!(&body[..payload.len()], &payload, "offset {offset}");
        assert_eq!(&body[payload.len()..], &subject, "offset {offset}");
    }
    assert_eq!(evb_token_revoke(token), 0);
}

#[test]
fn bridge_arguments_are_checked() {
    assert!(evb_bridge_new(1000, 1024, 0, 1 << 3).is_null(), "not a power of two");
    assert_eq!(evb_last_status(), EvbStatus::InvalidArgument as i32);
    assert!(evb_bridge_new(1 << 20, 1024, 0, 0).is_null(), "no kinds");
    // SAFETY: NULL is a documented no-op.
    unsafe { evb_bridge_free(std::ptr::null_mut()) };
}

#[test]
fn a_bad_plugin_is_refused_with_one_message_naming_the_file_and_the_fault() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let missing = CString::new("/nonexistent/plugin.so").unwrap();
    assert!(load(&missing, "{}").is_null());
    assert_eq!(evb_last_status(), EvbStatus::PluginNotFound as i32);
    assert!(last_error().starts_with("Engine plugin /nonexistent/plugin.so cannot be read: "), "{}", last_error());
    let dir = CString::new(env!("CARGO_MANIFEST_DIR")).unwrap();
    assert!(load(&dir, "{}").is_null());
    assert_eq!(last_error(), format!("Engine plugin {} is a directory, not a shared object.", env!("CARGO_MANIFEST_DIR")));
    let text = CString::new(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    assert!(load(&text, "{}").is_null());
    assert_eq!(evb_last_status(), EvbStatus::PluginNotShared as i32);
    assert!(last_error().contains("is not a loadable shared object"), "{}", last_error());
    // A shared object that is not a plugin: the C library.
    let libc = CString::new("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
    if std::path::Path::new("/lib/x86_64-linux-gnu/libc.so.6").exists() {
        assert!(load(&libc, "{}").is_null());
        assert_eq!(evb_last_status(), EvbStatus::PluginNoEntry as i32);
        assert!(last_error().ends_with("does not export evb_plugin_entry(): it is not an evbridge engine plugin."));
    }
    assert!(load(&engine_path(), r#"{"udp":{"port":"x"}}"#).is_null());
    assert_eq!(evb_last_status(), EvbStatus::PluginCreate as i32);
    assert!(last_error().ends_with("refused its configuration: udp.port must be a whole number from 0 to 65535 (invalid argument)."), "{}", last_error());
    assert!(load(&engine_path(), "{not json").is_null());
    assert!(last_error().contains("its configuration is not JSON"), "{}", last_error());
}

#[test]
fn an_engine_describes_itself_and_reports_unused_keys() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let e = load(&engine_path(), r#"{"udp":{"port":0,"prot":5},"tick":{"hz":0}}"#);
    assert!(!e.is_null(), "{}", last_error());
    // SAFETY: live engine; the description is NUL-terminated JSON.
    let d: serde_json::Value = serde_json::from_str(unsafe { CStr::from_ptr(evb_engine_describe(e)) }.to_str().unwrap()).unwrap();
    assert_eq!(d["name"], "evengine");
    assert_eq!(d["kinds"], serde_json::json!([{"name": "udp", "number": 1}, {"name": "tick", "number": 2}, {"name": "gen", "number": 3}]));
    assert_eq!(d["sources"][0]["kind"], "udp");
    assert_eq!(d["counters"][4]["name"], "udp_kernel_drops_total");
    assert_eq!(d["unused_config_keys"], serde_json::json!(["udp.prot"]));
    // SAFETY: live engine, freed once.
    unsafe { evb_engine_free(e) };
}
