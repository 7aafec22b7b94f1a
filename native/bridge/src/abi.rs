//! The C ABI's types and constants: everything a C host, Node (through
//! ffi-rs) or an engine plugin reads or writes in memory the bridge shares
//! with it. This module imports nothing from the rest of the crate, so every
//! other module can depend on it without a cycle.
//!
//! Two C headers are generated from this file by cbindgen, and tests fail
//! when either drifts:
//! * `native/include/evb_plugin.h`: the engine plugin ABI (event, callback,
//!   plugin table, host table), for C library authors;
//! * `native/include/evbridge.h`: the bridge's own API, for hosts.
//!
//! [`layout_json`] describes the size and field offsets of every struct that
//! another language reads, the ring record layout, and the reason and bucket
//! lists. `protocol/layout.ts` is generated from it (`tests/layout.rs` fails
//! when it drifts), and the daemon compares it with the loaded library's
//! `evb_layout_json()` at start, refusing any difference.
//!
//! Doc comments here end up in C headers: they name C identifiers in
//! backticks rather than as rustdoc links.

use std::ffi::{c_char, c_int, c_void};
use std::mem::{offset_of, size_of};

/// Version of the bridge's own C API (`evb_*` functions and structs).
/// Bumped with any change to an exported signature or struct.
pub const EVB_ABI_VERSION: u32 = 4;

/// Major version of the engine plugin ABI. A plugin built for another major
/// version is refused at load.
pub const EVB_PLUGIN_ABI_MAJOR: u32 = 1;
/// Minor version of the engine plugin ABI. Minor versions only append
/// optional members to `evb_plugin_t`; a plugin built for an older or newer
/// minor version loads, and members beyond its `size` count as NULL.
pub const EVB_PLUGIN_ABI_MINOR: u32 = 0;
/// `EVB_PLUGIN_ABI_MAJOR << 16 | EVB_PLUGIN_ABI_MINOR`, the value a plugin
/// puts in `evb_plugin_t.abi_version`.
pub const EVB_PLUGIN_ABI_VERSION: u32 = EVB_PLUGIN_ABI_MAJOR << 16 | EVB_PLUGIN_ABI_MINOR;

/// Upper limit for a bridge's `max_payload`, bytes (16 MiB).
pub const EVB_MAX_PAYLOAD_LIMIT: u32 = 16 << 20;
/// Longest subject, in bytes of UTF-8.
pub const EVB_SUBJECT_MAX: u32 = 255;
/// Event kinds are numbers 0 to `EVB_KIND_MAX`; a kind mask has bit k set
/// for kind k.
pub const EVB_KIND_MAX: u32 = 31;
/// Longest kind name, in bytes (names are `[a-z0-9_]`).
pub const EVB_KIND_NAME_MAX: u32 = 32;
/// Records start at multiples of this many bytes in the ring.
pub const EVB_RECORD_ALIGN: u32 = 64;
/// Bytes of header in front of each record's payload in the ring
/// (`sizeof(evb_record_header_t)`).
pub const EVB_RECORD_HEADER_LEN: u32 = 48;
/// Bytes of one entry of the kind-name table `evb_json_writer_run()` reads: a
/// length byte (0 for a kind the engine did not declare), then the name,
/// padded to `EVB_KIND_NAME_MAX` bytes. The table has one entry per kind
/// number 0 to `EVB_KIND_MAX`.
pub const EVB_JSON_KIND_ENTRY_LEN: u32 = 1 + EVB_KIND_NAME_MAX;
/// The most bytes one event's JSON (`evb_json_writer_run()`, either format)
/// takes besides its base64 payload and its subject: field names and
/// punctuation (84 bytes for an object, 17 for a row; counted as 108), five integers of at most 20 digits, a kind name and a
/// separating comma. Size the output as `events * EVB_JSON_EVENT_FIXED_MAX`
/// plus `4 * ceil(payload bytes / 3)` per event plus the subjects' bytes
/// plus 3.
pub const EVB_JSON_EVENT_FIXED_MAX: u32 = 108 + 5 * 20 + EVB_KIND_NAME_MAX + 1;
/// Byte offset of the kind-name table in a JSON writer's input area (after
/// the `evb_json_request_t`).
pub const EVB_JSON_KINDS_OFFSET: u32 = 64;
/// Byte offset of the picks (then the records) in a JSON writer's input
/// area: after the kind-name table, rounded up to 8.
pub const EVB_JSON_PICKS_OFFSET: u32 = (EVB_JSON_KINDS_OFFSET + EVB_JSON_KIND_ENTRY_LEN * (EVB_KIND_MAX + 1)).div_ceil(8) * 8;
/// Length of `evb_stats_t.dropped`; index with `evb_drop_reason`.
pub const EVB_DROP_REASONS: usize = 1;
/// Length of `evb_stats_t.invalid`; index with `evb_invalid_reason`.
pub const EVB_INVALID_REASONS: usize = 6;
/// Length of `evb_stats_t.delay_count`; bounds from `evb_delay_bucket_bound_ns()`.
pub const EVB_DELAY_BUCKETS: usize = 14;

const _: () = assert!(size_of::<EvbRecordHeader>() == EVB_RECORD_HEADER_LEN as usize);

/// Result codes, in their own range so they never collide with a plugin's
/// own (small negative) error codes. `evb_status_name()` gives each one's
/// name as it appears in this header.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum EvbStatus {
    /// Success; for the callback, the event was accepted into the ring.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = -1001,
    /// An argument was out of range.
    InvalidArgument = -1002,
    /// A version number did not match (ABI, plugin ABI).
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
    /// Another thread is draining this bridge (one consumer at a time).
    Busy = -1011,
    /// The plugin file does not exist or is not a regular file.
    PluginNotFound = -1020,
    /// The plugin file is not a loadable shared object.
    PluginNotShared = -1021,
    /// The plugin does not export `evb_plugin_entry`, or it returned NULL.
    PluginNoEntry = -1022,
    /// The plugin was built for another major plugin ABI version.
    PluginAbi = -1023,
    /// The plugin's table is smaller than the required members, or a
    /// required member is NULL.
    PluginTable = -1024,
    /// The plugin's `create` refused its configuration.
    PluginCreate = -1025,
    /// The plugin declared kinds, sources or counters that break the rules.
    PluginDescribe = -1026,
    /// A plugin call returned an error; `evb_last_error()` has its message.
    PluginCall = -1027,
    /// The plugin does not provide this optional member.
    Unsupported = -1028,
    /// The call is not allowed in the engine's current state.
    BadState = -1029,
}

/// Index into `evb_stats_t.dropped`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum EvbDropReason {
    /// No room in the ring.
    RingFull = 0,
}

/// Index into `evb_stats_t.invalid`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum EvbInvalidReason {
    /// Event pointer was NULL.
    NullEvent = 0,
    /// Payload NULL with a non-zero length.
    NullPayload = 1,
    /// Payload longer than the bridge's maximum.
    TooLong = 2,
    /// Kind outside the bridge's kind mask.
    BadKind = 3,
    /// Userdata that is no token (process-wide, see `evb_stats_t`).
    BadUserdata = 4,
    /// Subject longer than `EVB_SUBJECT_MAX` bytes, NULL with a non-zero
    /// length, not UTF-8, or not tokens separated by single dots (see
    /// `evb_event_t.subject`).
    BadSubject = 5,
}

/// One event, as an engine hands it to an `evb_event_cb`.
///
/// Ownership: the struct and everything it points to belong to the engine
/// and need only stay valid for the duration of the callback; the bridge
/// copies what it keeps. Layout: fixed by the plugin ABI major version.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EvbEvent {
    /// Event kind: one of the numbers the engine declared (0 to `EVB_KIND_MAX`).
    pub kind: u32,
    /// Source id, engine-defined.
    pub source_id: u32,
    /// Source-defined flags, carried to subscribers unchanged.
    pub flags: u32,
    /// Length of `subject` in bytes, 0 to `EVB_SUBJECT_MAX`; 0 for none.
    pub subject_len: u32,
    /// Per-source sequence number.
    pub source_seq: u64,
    /// When the event happened, CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// Payload bytes, NULL only when `len` is 0.
    pub payload: *const c_void,
    /// Payload length in bytes.
    pub len: usize,
    /// Subject: `subject_len` bytes of UTF-8, not NUL-terminated; NULL only
    /// when `subject_len` is 0. Tokens separated by single dots
    /// (`sensors.room1.temp`), as NATS subjects: no empty token, and no
    /// space, control character, `*`, `>`, `"` or `\` anywhere.
    pub subject: *const c_char,
}

/// The event callback an engine calls (nullable as a value). Threading: any
/// engine thread, concurrently. It never blocks; its return is 0 for an
/// accepted event or a negative `evb_status` saying why not (the engine may
/// count non-zero returns; it must not retry).
pub type EvbEventCallback = Option<unsafe extern "C" fn(ev: *const EvbEvent, userdata: *mut c_void) -> c_int>;

/// Doorbell function type (nullable): no arguments, no result, must not block.
pub type EvbDoorbell = Option<extern "C" fn()>;

/// The header of every ring record, which is also the binary protocol's
/// event encoding. All fields little-endian (the native order of every
/// supported target). The payload follows the header, the subject follows
/// the payload, and the record is padded with zero bytes to a multiple of
/// `EVB_RECORD_ALIGN`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvbRecordHeader {
    /// Record length in bytes: header, payload, subject and padding.
    pub record_len: u32,
    /// Payload length in bytes.
    pub payload_len: u32,
    /// Event kind.
    pub kind: u32,
    /// Source id.
    pub source_id: u32,
    /// Source flags.
    pub flags: u32,
    /// Subject length in bytes (0 for none).
    pub subject_len: u32,
    /// Per-source sequence number.
    pub source_seq: u64,
    /// Event timestamp, CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// Global sequence number, written by the consumer when it hands the
    /// record out (dense from 1 in ring order).
    pub seq: u64,
}

/// Result of the last `evb_drain()`: `count` records, contiguous, occupying
/// `len` bytes from byte `offset` of the ring's data area, with global
/// sequence numbers `first_seq` to `first_seq + count - 1`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
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

/// What `evb_json_writer_run()` is to write, at the start of the writer's
/// input area. The area holds, in order: this request; at
/// `EVB_JSON_KINDS_OFFSET` the kind-name table; at `EVB_JSON_PICKS_OFFSET`
/// `picks` little-endian u32 record indexes (strictly increasing); then,
/// at the next multiple of 8, `records_len` bytes of ring records back to
/// back.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EvbJsonRequest {
    /// Seq of the first record; record `i` is `first_seq + i`.
    pub first_seq: u64,
    /// Whole milliseconds of (wall clock - CLOCK_MONOTONIC), an integer.
    pub wall_offset_ms: f64,
    /// The nanoseconds left of that offset (|x| < 1e6), an integer.
    pub wall_offset_rem_ns: f64,
    /// Bytes of records.
    pub records_len: u32,
    /// With `picks` 0: write the first `count` records. Otherwise unused.
    pub count: u32,
    /// Number of record indexes to write (0: the first `count`).
    pub picks: u32,
    /// The form of each event: `EVB_JSON_FORMAT_OBJECTS` or
    /// `EVB_JSON_FORMAT_ROWS` (PROTOCOL.md, "events"); any other value is
    /// refused with `EVB_STATUS_INVALID_ARGUMENT`.
    pub format: u32,
}

/// `evb_json_request_t.format`: each event a JSON object with named fields.
pub const EVB_JSON_FORMAT_OBJECTS: u32 = 0;
/// `evb_json_request_t.format`: each event a JSON array of its fields in a
/// fixed order (`seq, kind, source, source_seq, ts, time, payload`, then
/// `subject` when it has one).
pub const EVB_JSON_FORMAT_ROWS: u32 = 1;

/// A bridge's counters, read with one call (`evb_bridge_stats()`).
///
/// `callbacks` is counted when a call enters, separately from its outcome,
/// so that the accounting can be checked. Exact at quiescence:
/// `callbacks = accepted + sum(dropped) + sum(invalid) + stale + panicked`
/// and `accepted = delivered + committed records still in the ring`.
/// Calls whose userdata is no token, and panics that could not be tied to a
/// bridge, are process-wide (no bridge can be named for them): they are in
/// `callbacks`, `invalid[EVB_INVALID_REASON_BAD_USERDATA]` and `panicked` of
/// every bridge's snapshot.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct EvbStats {
    /// Calls into `evb_on_event`, counted on entry.
    pub callbacks: u64,
    /// Events copied into the ring.
    pub accepted: u64,
    /// Valid events dropped, by `evb_drop_reason`.
    pub dropped: [u64; EVB_DROP_REASONS],
    /// Callbacks that panicked.
    pub panicked: u64,
    /// Events refused by validation, by `evb_invalid_reason`.
    pub invalid: [u64; EVB_INVALID_REASONS],
    /// Calls with a revoked userdata token.
    pub stale: u64,
    /// Valid events whose callback ran more than the late threshold after
    /// their timestamp (an attribute, also counted in their outcome).
    pub late: u64,
    /// Records handed to the consumer by `evb_drain()`.
    pub delivered: u64,
    /// Bytes between consumer and producer positions.
    pub ring_used_bytes: u64,
    /// Size of the ring's data area in bytes.
    pub ring_capacity_bytes: u64,
    /// Callback delay histogram (callback time minus event timestamp), per
    /// bucket, not cumulative; bounds from `evb_delay_bucket_bound_ns()`.
    pub delay_count: [u64; EVB_DELAY_BUCKETS],
    /// Sum of all callback delays, nanoseconds.
    pub delay_sum_ns: u64,
    /// Panic messages lost because the bounded panic log was full.
    pub panic_messages_dropped: u64,
}

/// One event kind an engine declares: a number (0 to `EVB_KIND_MAX`, unique)
/// and a name (1 to `EVB_KIND_NAME_MAX` bytes of `[a-z0-9_]`, unique).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EvbPluginKind {
    /// Kind number, as in `evb_event_t.kind`.
    pub number: u32,
    /// NUL-terminated name; owned by the engine, valid until its `free`.
    pub name: *const c_char,
}

/// One event source an engine describes (optional, for operators and the
/// hello message).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EvbPluginSource {
    /// Source id, as in `evb_event_t.source_id`.
    pub id: u32,
    /// Kind number of its events.
    pub kind: u32,
    /// NUL-terminated short name; owned by the engine, valid until its `free`.
    pub name: *const c_char,
    /// NUL-terminated detail for operators (an address, a rate); may be NULL.
    pub detail: *const c_char,
}

/// One counter an engine keeps about itself (receive errors, kernel drops,
/// reconnects), exported as the Prometheus counter `evbridge_engine_<name>`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EvbPluginCounter {
    /// NUL-terminated name: `[a-z][a-z0-9_]*`, at most 64 bytes, ending in
    /// `_total`; owned by the engine, valid until its `free`.
    pub name: *const c_char,
    /// NUL-terminated one-line description; may be NULL.
    pub help: *const c_char,
    /// Current value; the engine refreshes it in its `counters` member.
    pub value: u64,
}

/// Opaque configuration handed to a plugin's `create`; valid only during
/// that call. Read it with the `evb_host_t` accessors.
pub struct EvbConfig {
    _private: [u8; 0],
}

/// What the host offers a plugin: typed access to its configuration block
/// (`engine.config` in the daemon's configuration) during `create`, and the
/// subject rule.
///
/// Lifetime: the table itself is static and may be kept for as long as the
/// plugin is loaded; the `evb_config_t` handle is valid only during `create`.
///
/// Configuration paths are dot-separated keys, with array elements by index
/// (`"udp.port"`, `"topics.0"`). Each config accessor returns 1 when the
/// value is present and of the asked type (and writes `*out`), 0 when it is
/// absent (and leaves `*out` alone, so a default set beforehand stays), and
/// -1 when it is present with another type. Threading: the thread calling
/// `create`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EvbHost {
    /// `sizeof(evb_host_t)` as the host was built; members beyond a
    /// plugin's own `sizeof` are not there for it.
    pub size: u32,
    /// A string: `*out` points at `*len` bytes of UTF-8 followed by a NUL,
    /// owned by the host and valid during `create`.
    pub config_string: Option<
        unsafe extern "C" fn(cfg: *const EvbConfig, path: *const c_char, out: *mut *const c_char, len: *mut usize) -> c_int,
    >,
    /// A number (JSON number).
    pub config_number: Option<unsafe extern "C" fn(cfg: *const EvbConfig, path: *const c_char, out: *mut f64) -> c_int>,
    /// A boolean, as 0 or 1.
    pub config_bool: Option<unsafe extern "C" fn(cfg: *const EvbConfig, path: *const c_char, out: *mut c_int) -> c_int>,
    /// The length of an array.
    pub config_length: Option<unsafe extern "C" fn(cfg: *const EvbConfig, path: *const c_char, out: *mut usize) -> c_int>,
    /// 1 when the `len` bytes at `s` are a valid subject (the rule of
    /// `evb_event_t.subject`), else 0. Any thread, at any time: engines that
    /// derive subjects from their input (topics, symbols) test them here and
    /// leave out a subject that would make the bridge refuse the event.
    pub subject_valid: Option<unsafe extern "C" fn(s: *const c_char, len: usize) -> c_int>,
}

/// The table an engine plugin exports through `evb_plugin_entry()`.
///
/// Versioning: `abi_version` is `EVB_PLUGIN_ABI_VERSION` as the plugin was
/// built; a different major version is refused. `size` is
/// `sizeof(evb_plugin_t)` as the plugin was built: members through `strerror`
/// are required, the ones after it are optional (NULL, or beyond `size`).
///
/// Threading and lifetime, for every member: "control thread" means one
/// thread at a time, never an engine thread and never inside a callback.
/// The engine pointer that `create` makes is the engine's own; the host
/// passes it back to every other member and releases it with `free`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EvbPlugin {
    /// `EVB_PLUGIN_ABI_VERSION` the plugin was built against.
    pub abi_version: u32,
    /// `sizeof(evb_plugin_t)` the plugin was built against.
    pub size: u32,
    /// NUL-terminated plugin name, static.
    pub name: *const c_char,
    /// NUL-terminated plugin version, static.
    pub version: *const c_char,
    /// Creates an engine from its configuration (see `evb_host_t`; the same
    /// block is also passed as `config_json`, `config_len` bytes of JSON).
    /// Returns 0 and sets `*engine`, or a negative code and writes a
    /// NUL-terminated message of at most `err_cap` bytes into `err`. Nothing
    /// runs until `start`. Control thread.
    pub create: Option<
        unsafe extern "C" fn(
            host: *const EvbHost,
            cfg: *const EvbConfig,
            config_json: *const c_char,
            config_len: usize,
            engine: *mut *mut c_void,
            err: *mut c_char,
            err_cap: usize,
        ) -> c_int,
    >,
    /// Writes a pointer to the engine's kinds to `*out` and returns how many
    /// (1 to 32). The array belongs to the engine and stays valid and
    /// unchanged until `free`. Control thread.
    pub kinds: Option<unsafe extern "C" fn(engine: *mut c_void, out: *mut *const EvbPluginKind) -> u32>,
    /// Registers `cb` with `userdata` for the kinds in `kind_mask`; returns a
    /// registration id (> 0) or a negative code, in which case `cb` is never
    /// called. `cb` may be called from any engine thread, concurrently, as
    /// soon as the engine runs. Control thread.
    pub register_callback:
        Option<unsafe extern "C" fn(engine: *mut c_void, cb: EvbEventCallback, userdata: *mut c_void, kind_mask: u32) -> i64>,
    /// Removes a registration. Must wait until no thread is inside its
    /// callback: after it returns, that callback is never called again.
    /// Returns 0 or a negative code. Control thread.
    pub unregister_callback: Option<unsafe extern "C" fn(engine: *mut c_void, id: i64) -> c_int>,
    /// Starts the engine's threads. Returns 0 or a negative code. Control thread.
    pub start: Option<unsafe extern "C" fn(engine: *mut c_void) -> c_int>,
    /// Stops the engine's threads; no callback runs after it returns.
    /// Idempotent. Returns 0 or a negative code. Control thread.
    pub stop: Option<unsafe extern "C" fn(engine: *mut c_void) -> c_int>,
    /// Stops the engine if needed, then releases it. Control thread.
    pub free: Option<unsafe extern "C" fn(engine: *mut c_void)>,
    /// Static NUL-terminated message for one of the plugin's negative codes.
    /// Any thread.
    pub strerror: Option<unsafe extern "C" fn(err: c_int) -> *const c_char>,
    /// Optional. Writes a pointer to the engine's sources to `*out` and
    /// returns how many. Valid until `free`. Control thread, after `create`.
    pub sources: Option<unsafe extern "C" fn(engine: *mut c_void, out: *mut *const EvbPluginSource) -> u32>,
    /// Optional. Refreshes the values of the engine's own counters, writes a
    /// pointer to them to `*out` and returns how many. The array (names and
    /// count) stays the same until `free`. Control thread.
    pub counters: Option<unsafe extern "C" fn(engine: *mut c_void, out: *mut *const EvbPluginCounter) -> u32>,
    /// Optional. A plugin-defined test command (`command`, `[a-z0-9_]`, at
    /// most 32 bytes) with one argument, such as fault injection. Returns a
    /// result >= 0 or a negative code. Control thread; the host never runs
    /// two at once and never runs one while starting, stopping or freeing.
    pub debug: Option<unsafe extern "C" fn(engine: *mut c_void, command: *const c_char, arg: u64) -> i64>,
}

/// Bytes of `evb_plugin_t` that every plugin must provide (through `strerror`).
pub const EVB_PLUGIN_REQUIRED_SIZE: u32 = (offset_of!(EvbPlugin, strerror) + size_of::<usize>()) as u32;

/// Name of the entry point a plugin exports: `const evb_plugin_t *evb_plugin_entry(void)`.
pub const EVB_PLUGIN_ENTRY: &str = "evb_plugin_entry";

/// The entry point's type.
pub type EvbPluginEntry = unsafe extern "C" fn() -> *const EvbPlugin;

/// Upper bounds of the callback-delay histogram buckets, in nanoseconds; a
/// last, implicit bucket holds everything above. Roughly 1-5-10 steps from
/// 1 µs to 1 s: the callback itself costs tens of ns, a UDP datagram is
/// stamped a few µs before its callback, and a starved engine thread shows up
/// in the ms buckets. The default late threshold (1 ms) is a bound.
pub const DELAY_BOUNDS_NS: [u64; EVB_DELAY_BUCKETS - 1] = [
    1_000,
    5_000,
    10_000,
    50_000,
    100_000,
    500_000,
    1_000_000,
    5_000_000,
    10_000_000,
    50_000_000,
    100_000_000,
    500_000_000,
    1_000_000_000,
];

/// One described field: byte offset, element size and element count.
fn field(out: &mut serde_json::Map<String, serde_json::Value>, name: &str, offset: usize, elem: usize, count: usize) {
    out.insert(name.to_owned(), serde_json::json!([offset, elem, count]));
}

/// Describes a struct: its size and its fields, and checks that the fields
/// tile it exactly (so that a field added without a description fails the
/// layout test instead of going unnoticed).
macro_rules! describe {
    ($ty:ty { $($f:ident : $elem:ty $(; $n:expr)?),* $(,)? }) => {{
        let mut fields = serde_json::Map::new();
        let mut spans: Vec<(usize, usize)> = Vec::new();
        $(
            let count = { let _c = 1usize; $( let _c: usize = $n; )? _c };
            field(&mut fields, stringify!($f), offset_of!($ty, $f), size_of::<$elem>(), count);
            spans.push((offset_of!($ty, $f), size_of::<$elem>() * count));
        )*
        spans.sort_unstable();
        let mut end = 0;
        for (at, len) in spans {
            assert_eq!(at, end, concat!("fields of ", stringify!($ty), " leave a hole or overlap"));
            end = at + len;
        }
        assert_eq!(end, size_of::<$ty>(), concat!("fields of ", stringify!($ty), " do not cover it"));
        serde_json::json!({ "size": size_of::<$ty>(), "fields": fields })
    }};
}

/// The layout description (JSON): struct sizes and field offsets as
/// `[offset, element size, element count]`, the record header, limits, the
/// names of drop and invalid reasons, the delay bucket bounds, and the
/// status codes by name.
///
/// # Panics
/// When a described struct has a field the description leaves out (a
/// programming error caught by the crate's tests).
pub fn layout_json() -> String {
    use strum::IntoEnumIterator;
    let v = serde_json::json!({
        "abi_version": EVB_ABI_VERSION,
        "plugin_abi_version": EVB_PLUGIN_ABI_VERSION,
        "structs": {
            "evb_stats_t": describe!(EvbStats {
                callbacks: u64, accepted: u64, dropped: u64; EVB_DROP_REASONS, panicked: u64,
                invalid: u64; EVB_INVALID_REASONS, stale: u64, late: u64, delivered: u64,
                ring_used_bytes: u64, ring_capacity_bytes: u64, delay_count: u64; EVB_DELAY_BUCKETS,
                delay_sum_ns: u64, panic_messages_dropped: u64,
            }),
            "evb_drain_t": describe!(EvbDrain { offset: u64, len: u64, count: u64, first_seq: u64 }),
            "evb_json_request_t": describe!(EvbJsonRequest {
                first_seq: u64, wall_offset_ms: f64, wall_offset_rem_ns: f64, records_len: u32, count: u32, picks: u32, format: u32,
            }),
            "evb_record_header_t": describe!(EvbRecordHeader {
                record_len: u32, payload_len: u32, kind: u32, source_id: u32, flags: u32, subject_len: u32,
                source_seq: u64, ts_ns: u64, seq: u64,
            }),
        },
        "record_align": EVB_RECORD_ALIGN,
        "subject_max": EVB_SUBJECT_MAX,
        "kind_max": EVB_KIND_MAX,
        "kind_name_max": EVB_KIND_NAME_MAX,
        "max_payload_limit": EVB_MAX_PAYLOAD_LIMIT,
        "json_kind_entry_len": EVB_JSON_KIND_ENTRY_LEN,
        "json_format_objects": EVB_JSON_FORMAT_OBJECTS,
        "json_format_rows": EVB_JSON_FORMAT_ROWS,
        "json_event_fixed_max": EVB_JSON_EVENT_FIXED_MAX,
        "json_kinds_offset": EVB_JSON_KINDS_OFFSET,
        "json_picks_offset": EVB_JSON_PICKS_OFFSET,
        "drop_reasons": EvbDropReason::iter().map(<&'static str>::from).collect::<Vec<_>>(),
        "invalid_reasons": EvbInvalidReason::iter().map(<&'static str>::from).collect::<Vec<_>>(),
        "delay_bounds_ns": DELAY_BOUNDS_NS,
        "statuses": EvbStatus::iter()
            .map(|s| (format!("EVB_STATUS_{}", <&'static str>::from(s)), serde_json::json!(s as i32)))
            .collect::<serde_json::Map<_, _>>(),
    });
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn reasons_are_dense_indices() {
        for (i, r) in EvbInvalidReason::iter().enumerate() {
            assert_eq!(r as usize, i);
        }
        assert_eq!(EvbInvalidReason::iter().count(), EVB_INVALID_REASONS);
        assert_eq!(EvbDropReason::iter().count(), EVB_DROP_REASONS);
    }

    #[test]
    fn layout_describes_every_field() {
        let v: serde_json::Value = serde_json::from_str(&layout_json()).unwrap();
        assert_eq!(v["structs"]["evb_record_header_t"]["size"], EVB_RECORD_HEADER_LEN);
        assert_eq!(v["structs"]["evb_record_header_t"]["fields"]["seq"], serde_json::json!([40, 8, 1]));
        assert_eq!(v["invalid_reasons"][5], "bad_subject");
    }
}
