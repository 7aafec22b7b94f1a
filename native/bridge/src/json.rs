//! Ring records as the JSON subprotocol's event objects (PROTOCOL.md,
//! "events"), written straight into a caller's buffer.
//!
//! The daemon's fan-out encodes each drained batch once per distinct filter.
//! Written in JavaScript, one event's JSON cost about 1.5 µs of main-thread
//! time (issue 15: the JSON path delivered 667 k events/s against 2.99 M for
//! binary), most of it in per-event strings. Here one call writes a whole
//! chunk: digits with `itoa`, the payload with `base64-simd`'s standard
//! alphabet with padding (what Node's `Buffer#toString('base64')` writes;
//! AVX2 or SSE4.1 where the CPU has them, chosen at run time), and names
//! through `serde_json`'s string escaper, once per kind and call. Each
//! format has its own copy of the loop, so its separators are constants.
//! `cargo run --release --example json_speed` times it: 64-byte payloads,
//! here (2-core VM, six alternating runs) a median of about 95 ns per event
//! against 170 ns with the `base64` crate and separators chosen per event.
//!
//! Two forms (PROTOCOL.md, "events"): objects with named fields, and rows,
//! arrays of the same fields in a fixed order, which JSON clients parse in
//! about 0.6 of the time (bench/JSON.md). The output is byte for byte what
//! `daemon/fanout/encode.ts` `eventJson` and `eventRow` write
//! (test/json-native.test.ts compares them on generated batches): `[` then
//! the events separated by `,` then `]}` (the `}` closes the message whose
//! head the daemon writes per subscription).
//!
//! Nothing here trusts its input: every record offset and length is checked
//! against the buffers it points into, and a shortfall of output space is an
//! error, never a write past the end.

use crate::abi::{EvbJsonRequest, EvbRecordHeader, EvbStatus, EVB_JSON_EVENT_FIXED_MAX, EVB_JSON_FORMAT_OBJECTS, EVB_JSON_FORMAT_ROWS, EVB_JSON_KINDS_OFFSET, EVB_JSON_KIND_ENTRY_LEN, EVB_JSON_PICKS_OFFSET, EVB_KIND_MAX, EVB_RECORD_HEADER_LEN};

/// Bytes of one entry of the kind-name table (`EVB_JSON_KIND_ENTRY_LEN`).
pub const KIND_ENTRY_LEN: usize = EVB_JSON_KIND_ENTRY_LEN as usize;
/// Bytes of the kind-name table: one entry per kind number 0 to `EVB_KIND_MAX`.
pub const KIND_TABLE_LEN: usize = KIND_ENTRY_LEN * (EVB_KIND_MAX as usize + 1);
/// See `EVB_JSON_EVENT_FIXED_MAX`.
pub const JSON_EVENT_FIXED_MAX: usize = EVB_JSON_EVENT_FIXED_MAX as usize;

/// The wall-clock offset the daemon's `clock.ts` `wallMs` applies: whole
/// milliseconds and the nanoseconds left, each an integer-valued double.
#[derive(Clone, Copy, Debug)]
pub struct WallOffset {
    /// Whole milliseconds of (wall clock - CLOCK_MONOTONIC).
    pub ms: f64,
    /// The nanoseconds left (|rem| < 1e6).
    pub rem_ns: f64,
}

impl WallOffset {
    /// The protocol's `time` for engine timestamp `ts_ns`, computed with the
    /// same double operations as `wallMs`, so that both round alike.
    fn wall_ms(self, ts_ns: u64) -> f64 {
        self.ms + ((ts_ns as f64 + self.rem_ns + 500_000.0) / 1e6).floor()
    }
}

/// Which records of a batch to encode. Records are walked from the start of
/// the buffer by their `record_len`; indexes count from its first record.
pub enum Pick<'a> {
    /// The first `n` records.
    First(usize),
    /// These record indexes, strictly increasing: little-endian u32s (any
    /// alignment).
    List(&'a [u8]),
}

/// How each event is written (`evb_json_request_t.format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `{"seq":1,"kind":"udp",...}`
    Objects,
    /// `[1,"udp",...]`: the same fields in the same order, without names.
    Rows,
}

impl Format {
    /// The format a request's `format` value names, if any.
    pub fn from_request(v: u32) -> Option<Format> {
        match v {
            EVB_JSON_FORMAT_OBJECTS => Some(Format::Objects),
            EVB_JSON_FORMAT_ROWS => Some(Format::Rows),
            _ => None,
        }
    }
}

/// A failed encode: `NoMemory` when `out` is too small, `InvalidArgument`
/// for anything malformed (an index, offset or length outside its buffer).
pub type EncodeError = EvbStatus;

/// A cursor over the output that refuses to run past its end.
struct Out<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Out<'_> {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let end = self.at.checked_add(bytes.len()).ok_or(EvbStatus::NoMemory)?;
        self.buf.get_mut(self.at..end).ok_or(EvbStatus::NoMemory)?.copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }
    #[inline(always)]
    fn int(&mut self, v: u64) -> Result<(), EncodeError> {
        self.put(itoa::Buffer::new().format(v).as_bytes())
    }
    /// A JSON string (quoted, escaped as `JSON.stringify` escapes).
    fn string(&mut self, s: &str) -> Result<(), EncodeError> {
        let rest = self.buf.get_mut(self.at..).ok_or(EvbStatus::NoMemory)?;
        let mut w = std::io::Cursor::new(rest);
        serde_json::to_writer(&mut w, s).map_err(|_| EvbStatus::NoMemory)?;
        self.at += w.position() as usize;
        Ok(())
    }
    fn base64(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let b64 = &base64_simd::STANDARD;
        let n = b64.encoded_length(bytes.len());
        let end = self.at.checked_add(n).ok_or(EvbStatus::NoMemory)?;
        let dst = self.buf.get_mut(self.at..end).ok_or(EvbStatus::NoMemory)?;
        // `dst` is exactly the encoded length, so `encode` cannot panic.
        let _ = b64.encode(bytes, base64_simd::Out::from_slice(dst));
        self.at = end;
        Ok(())
    }
}

/// The `i`th little-endian u32 of `b`.
fn u32_le(b: &[u8], i: usize) -> Result<u32, EncodeError> {
    let at = i.checked_mul(4).ok_or(EvbStatus::InvalidArgument)?;
    let w = b.get(at..at + 4).ok_or(EvbStatus::InvalidArgument)?;
    Ok(u32::from_le_bytes(w.try_into().expect("4 bytes")))
}

/// A `#[repr(C)]` struct of integers and floats only, with no padding: any
/// bytes of its size are a valid value.
///
/// # Safety
/// Implement only for such structs.
unsafe trait Plain: Copy {}
// SAFETY: repr(C), six u32 then three u64: no padding, every bit pattern valid.
unsafe impl Plain for EvbRecordHeader {}
// SAFETY: repr(C), a u64, two f64 and four u32: no padding (asserted below),
// every bit pattern valid.
unsafe impl Plain for EvbJsonRequest {}
const _: () = assert!(std::mem::size_of::<EvbJsonRequest>() == 8 + 8 + 8 + 4 * 4);
const _: () = assert!(std::mem::size_of::<EvbRecordHeader>() == 6 * 4 + 3 * 8);

/// A copy of the `T` at byte `at` of `b` (the layout is the struct's own,
/// the one source of the shared layout), or None when `b` is too short.
fn read_plain<T: Plain>(b: &[u8], at: usize) -> Option<T> {
    let bytes = b.get(at..at.checked_add(std::mem::size_of::<T>())?)?;
    // SAFETY: `bytes` holds size_of::<T>() readable bytes (the checked get
    // above); any bytes are a valid T (Plain); read_unaligned needs no
    // alignment.
    Some(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

/// The header of the record at byte `off`, and its payload and subject.
fn record(records: &[u8], off: usize) -> Result<(EvbRecordHeader, &[u8], &[u8]), EncodeError> {
    let hdr: EvbRecordHeader = read_plain(records, off).ok_or(EvbStatus::InvalidArgument)?;
    let p = off + EVB_RECORD_HEADER_LEN as usize;
    let s = p.checked_add(hdr.payload_len as usize).ok_or(EvbStatus::InvalidArgument)?;
    let e = s.checked_add(hdr.subject_len as usize).ok_or(EvbStatus::InvalidArgument)?;
    if e > off.saturating_add(hdr.record_len as usize) || off.saturating_add(hdr.record_len as usize) > records.len() {
        return Err(EvbStatus::InvalidArgument);
    }
    Ok((hdr, &records[p..s], &records[s..e]))
}

/// Writes the JSON of the picked records into `out` and returns the bytes
/// written.
///
/// * `records`: the batch's records back to back, as the ring lays them out.
/// * `first_seq`: the seq of record index 0 (record `i` is `first_seq + i`).
/// * `kinds`: the kind-name table ([`KIND_TABLE_LEN`] bytes).
/// * `format`: objects or rows.
///
/// Errors: see [`EncodeError`]; on error `out` holds a partial write that
/// the caller discards.
pub fn encode(
    records: &[u8],
    first_seq: u64,
    pick: Pick<'_>,
    kinds: &[u8],
    clock: WallOffset,
    format: Format,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    if kinds.len() != KIND_TABLE_LEN {
        return Err(EvbStatus::InvalidArgument);
    }
    // One copy of the loop per format, so that every separator is a
    // constant the compiler writes in place.
    match format {
        Format::Objects => encode_as::<false>(records, first_seq, pick, kinds, clock, out),
        Format::Rows => encode_as::<true>(records, first_seq, pick, kinds, clock, out),
    }
}

/// The kind name of kind `kind` as a JSON string (quoted and escaped), from
/// the kind table; `"unknown"` for an undeclared kind.
fn kind_json(kinds: &[u8], kind: u32) -> Result<Vec<u8>, EncodeError> {
    let name = match kinds.get(kind as usize * KIND_ENTRY_LEN..(kind as usize + 1) * KIND_ENTRY_LEN) {
        Some(entry) if kind <= EVB_KIND_MAX && entry[0] != 0 => {
            std::str::from_utf8(entry.get(1..1 + entry[0] as usize).ok_or(EvbStatus::InvalidArgument)?)
                .map_err(|_| EvbStatus::InvalidArgument)?
        }
        _ => "unknown",
    };
    serde_json::to_vec(name).map_err(|_| EvbStatus::InvalidArgument)
}

/// [`encode`] for one format: rows when `ROWS`, else objects.
fn encode_as<const ROWS: bool>(
    records: &[u8],
    first_seq: u64,
    pick: Pick<'_>,
    kinds: &[u8],
    clock: WallOffset,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    // The separators before each field; objects name the fields. The one
    // before the payload opens its string.
    let s = |rows: &'static [u8], objects: &'static [u8]| if ROWS { rows } else { objects };
    let (open, after_seq, after_kind, after_source) = (s(b"[", b"{\"seq\":"), s(b",", b",\"kind\":"), s(b",", b",\"source\":"), s(b",", b",\"source_seq\":"));
    let (after_source_seq, after_ts, after_time) = (s(b",\"", b",\"ts\":\""), s(b"\",", b"\",\"time\":"), s(b",\"", b",\"payload\":\""));
    let (subject_sep, close): (&[u8], &[u8]) = (s(b"\",", b"\",\"subject\":"), s(b"]", b"}"));
    // Kind names, quoted and escaped once per kind met in this call
    // (events of a chunk mostly share one kind).
    let mut kind_names: [Option<Vec<u8>>; EVB_KIND_MAX as usize + 1] = Default::default();
    let mut o = Out { buf: out, at: 0 };
    o.put(b"[")?;
    let mut one = |o: &mut Out<'_>, i: usize, off: usize, first: bool| -> Result<usize, EncodeError> {
        let (h, payload, subject) = record(records, off)?;
        if !first {
            o.put(b",")?;
        }
        o.put(open)?;
        o.int(first_seq.checked_add(i as u64).ok_or(EvbStatus::InvalidArgument)?)?;
        o.put(after_seq)?;
        match kind_names.get_mut(h.kind as usize) {
            Some(slot) => {
                if slot.is_none() {
                    *slot = Some(kind_json(kinds, h.kind)?);
                }
                o.put(slot.as_deref().unwrap_or(b"\"unknown\""))?;
            }
            None => o.put(b"\"unknown\"")?,
        }
        o.put(after_kind)?;
        o.int(h.source_id as u64)?;
        o.put(after_source)?;
        o.int(h.source_seq)?;
        o.put(after_source_seq)?;
        o.int(h.ts_ns)?;
        o.put(after_ts)?;
        let t = clock.wall_ms(h.ts_ns);
        // An integer-valued double; within i64 for any u64 timestamp.
        let mut b = itoa::Buffer::new();
        o.put(b.format(t as i64).as_bytes())?;
        o.put(after_time)?;
        o.base64(payload)?;
        if subject.is_empty() {
            o.put(b"\"")?;
        } else {
            o.put(subject_sep)?;
            o.string(&String::from_utf8_lossy(subject))?;
        }
        o.put(close)?;
        Ok(off + h.record_len as usize)
    };
    match pick {
        Pick::First(n) => {
            let mut off = 0;
            for i in 0..n {
                off = one(&mut o, i, off, i == 0)?;
            }
        }
        Pick::List(list) => {
            if list.len() % 4 != 0 {
                return Err(EvbStatus::InvalidArgument);
            }
            let (mut i, mut off) = (0usize, 0usize);
            for k in 0..list.len() / 4 {
                let want = u32_le(list, k)? as usize;
                if want < i {
                    return Err(EvbStatus::InvalidArgument); // not increasing
                }
                while i < want {
                    off = off.checked_add(record(records, off)?.0.record_len as usize).ok_or(EvbStatus::InvalidArgument)?;
                    i += 1;
                }
                off = one(&mut o, i, off, k == 0)?;
                i += 1;
            }
        }
    }
    o.put(b"]}")?;
    Ok(o.at)
}

/// A JSON writer's two areas, owned here and lent to the host, which maps
/// them once (ffi-rs `createExternalBuffer`): the host writes a request and
/// its records into `input`, calls [`JsonWriter::run`] and copies the result
/// out of `output`. Each call of an FFI function costs the daemon a few µs
/// per argument through ffi-rs, so the request travels in memory, not as
/// arguments. One thread at a time (`run` refuses a concurrent call).
pub struct JsonWriter {
    input: std::sync::Mutex<Box<[u8]>>,
    output: std::sync::Mutex<Box<[u8]>>,
    input_ptr: *mut u8,
    output_ptr: *mut u8,
}

// SAFETY: the raw pointers only name the boxes' own heap memory, which lives
// as long as the writer; every access from Rust goes through the mutexes.
unsafe impl Send for JsonWriter {}
// SAFETY: as above.
unsafe impl Sync for JsonWriter {}

/// Smallest and largest area a writer takes, bytes.
pub const AREA_MIN: u64 = 4096;
/// See [`AREA_MIN`] (1 GiB).
pub const AREA_MAX: u64 = 1 << 30;

impl JsonWriter {
    /// Two zeroed areas of `input_cap` and `output_cap` bytes, each in
    /// [`AREA_MIN`, `AREA_MAX`]; None otherwise.
    pub fn new(input_cap: u64, output_cap: u64) -> Option<Self> {
        let ok = |c: u64| (AREA_MIN..=AREA_MAX).contains(&c);
        if !ok(input_cap) || !ok(output_cap) {
            return None;
        }
        let mut input = vec![0u8; input_cap as usize].into_boxed_slice();
        let mut output = vec![0u8; output_cap as usize].into_boxed_slice();
        let (input_ptr, output_ptr) = (input.as_mut_ptr(), output.as_mut_ptr());
        Some(JsonWriter { input: std::sync::Mutex::new(input), output: std::sync::Mutex::new(output), input_ptr, output_ptr })
    }
    /// The input area's address and length.
    pub fn input(&self) -> (*mut u8, usize) {
        (self.input_ptr, self.input.lock().map(|b| b.len()).unwrap_or(0))
    }
    /// The output area's address and length.
    pub fn output(&self) -> (*mut u8, usize) {
        (self.output_ptr, self.output.lock().map(|b| b.len()).unwrap_or(0))
    }
    /// Writes what the request in the input area asks for into the output
    /// area; returns the bytes written. `Busy` when another thread is in a
    /// run; otherwise the errors of [`encode`] and `InvalidArgument` for a
    /// request whose parts do not fit in the input area.
    pub fn run(&self) -> Result<usize, EncodeError> {
        let input = self.input.try_lock().map_err(|_| EvbStatus::Busy)?;
        let mut output = self.output.try_lock().map_err(|_| EvbStatus::Busy)?;
        let req: EvbJsonRequest = read_plain(&input, 0).ok_or(EvbStatus::InvalidArgument)?;
        let kinds_at = EVB_JSON_KINDS_OFFSET as usize;
        let kinds = input.get(kinds_at..kinds_at + KIND_TABLE_LEN).ok_or(EvbStatus::InvalidArgument)?;
        let picks_at = EVB_JSON_PICKS_OFFSET as usize;
        let picks_end = picks_at + req.picks as usize * 4;
        let records_at = picks_end.div_ceil(8) * 8;
        let records = input.get(records_at..records_at + req.records_len as usize).ok_or(EvbStatus::InvalidArgument)?;
        let pick = if req.picks == 0 { Pick::First(req.count as usize) } else { Pick::List(&input[picks_at..picks_end]) };
        let clock = WallOffset { ms: req.wall_offset_ms, rem_ns: req.wall_offset_rem_ns };
        let format = Format::from_request(req.format).ok_or(EvbStatus::InvalidArgument)?;
        encode(records, req.first_seq, pick, kinds, clock, format, &mut output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: u32, payload: &[u8], subject: &[u8], source_seq: u64, ts: u64) -> Vec<u8> {
        let h = EVB_RECORD_HEADER_LEN as usize;
        let len = (h + payload.len() + subject.len()).div_ceil(8) * 8;
        let mut v = vec![0u8; len];
        v[0..4].copy_from_slice(&(len as u32).to_le_bytes());
        v[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        v[8..12].copy_from_slice(&kind.to_le_bytes());
        v[12..16].copy_from_slice(&7u32.to_le_bytes());
        v[20..24].copy_from_slice(&(subject.len() as u32).to_le_bytes());
        v[24..32].copy_from_slice(&source_seq.to_le_bytes());
        v[32..40].copy_from_slice(&ts.to_le_bytes());
        v[h..h + payload.len()].copy_from_slice(payload);
        v[h + payload.len()..h + payload.len() + subject.len()].copy_from_slice(subject);
        v
    }

    fn le(v: &[u32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn kinds() -> Vec<u8> {
        let mut t = vec![0u8; KIND_TABLE_LEN];
        t[KIND_ENTRY_LEN * 2] = 4;
        t[KIND_ENTRY_LEN * 2 + 1..KIND_ENTRY_LEN * 2 + 5].copy_from_slice(b"tick");
        t
    }

    #[test]
    fn writes_the_protocol_objects_and_rows() {
        let mut records = rec(2, b"hello", b"", 9, 1_500_000);
        records.extend(rec(5, &[0xff, 0, 1, 2], b"md.a", u64::MAX, 2_499_999));
        let mut out = vec![0u8; 1024];
        let clock = WallOffset { ms: 1000.0, rem_ns: 0.0 };
        let cases = [
            (
                Format::Objects,
                "[{\"seq\":41,\"kind\":\"tick\",\"source\":7,\"source_seq\":9,\"ts\":\"1500000\",\"time\":1002,\"payload\":\"aGVsbG8=\"},\
                 {\"seq\":42,\"kind\":\"unknown\",\"source\":7,\"source_seq\":18446744073709551615,\"ts\":\"2499999\",\"time\":1002,\"payload\":\"/wABAg==\",\"subject\":\"md.a\"}]}",
                "[{\"seq\":42,",
            ),
            (
                Format::Rows,
                "[[41,\"tick\",7,9,\"1500000\",1002,\"aGVsbG8=\"],[42,\"unknown\",7,18446744073709551615,\"2499999\",1002,\"/wABAg==\",\"md.a\"]]}",
                "[[42,",
            ),
        ];
        for (format, whole, second) in cases {
            let n = encode(&records, 41, Pick::First(2), &kinds(), clock, format, &mut out).unwrap();
            assert_eq!(std::str::from_utf8(&out[..n]).unwrap(), whole, "{format:?}");
            let n = encode(&records, 41, Pick::List(&le(&[1])), &kinds(), clock, format, &mut out).unwrap();
            assert!(std::str::from_utf8(&out[..n]).unwrap().starts_with(second), "{format:?}");
        }
    }

    #[test]
    fn a_request_names_its_format() {
        assert_eq!(Format::from_request(EVB_JSON_FORMAT_OBJECTS), Some(Format::Objects));
        assert_eq!(Format::from_request(EVB_JSON_FORMAT_ROWS), Some(Format::Rows));
        assert_eq!(Format::from_request(2), None);
        let w = JsonWriter::new(1 << 16, 1 << 16).unwrap();
        let (input, _) = w.input();
        let req = EvbJsonRequest { first_seq: 1, wall_offset_ms: 0.0, wall_offset_rem_ns: 0.0, records_len: 0, count: 0, picks: 0, format: 7 };
        // SAFETY: the input area is at least AREA_MIN bytes, more than the
        // request; nothing else touches it during the test.
        unsafe { input.cast::<EvbJsonRequest>().write_unaligned(req) };
        assert_eq!(w.run(), Err(EvbStatus::InvalidArgument), "an unknown format is refused");
        // SAFETY: as above.
        unsafe { input.cast::<EvbJsonRequest>().write_unaligned(EvbJsonRequest { format: EVB_JSON_FORMAT_ROWS, ..req }) };
        assert_eq!(w.run(), Ok(3), "no records, in rows: `[]}}`");
    }

    #[test]
    fn refuses_short_output_and_bad_records() {
        let records = rec(2, b"hello", b"", 1, 1);
        let clock = WallOffset { ms: 0.0, rem_ns: 0.0 };
        for cap in 0..120 {
            let mut out = vec![0u8; cap];
            let r = encode(&records, 1, Pick::First(1), &kinds(), clock, Format::Objects, &mut out);
            assert!(r.is_ok() || r == Err(EvbStatus::NoMemory), "cap {cap}");
        }
        let mut out = vec![0u8; 4096];
        // Offsets and indexes outside the records.
        assert_eq!(encode(&records, 1, Pick::First(2), &kinds(), clock, Format::Objects, &mut out), Err(EvbStatus::InvalidArgument));
        assert_eq!(encode(&records, 1, Pick::List(&le(&[3])), &kinds(), clock, Format::Objects, &mut out), Err(EvbStatus::InvalidArgument));
        let mut two = records.clone();
        two.extend(records.clone());
        assert_eq!(encode(&two, 1, Pick::List(&le(&[1, 0])), &kinds(), clock, Format::Objects, &mut out), Err(EvbStatus::InvalidArgument));
        // A record length of 0 would never advance the walk.
        let mut zero = two.clone();
        zero[0..4].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(encode(&zero, 1, Pick::List(&le(&[1])), &kinds(), clock, Format::Objects, &mut out), Err(EvbStatus::InvalidArgument));
        // A payload length past the record.
        let mut bad = records.clone();
        bad[4..8].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(encode(&bad, 1, Pick::First(1), &kinds(), clock, Format::Objects, &mut out), Err(EvbStatus::InvalidArgument));
        // A wrong-sized kind table.
        assert_eq!(encode(&records, 1, Pick::First(1), &[0u8; 3], clock, Format::Objects, &mut out), Err(EvbStatus::InvalidArgument));
    }

    #[test]
    fn the_size_bound_holds_for_the_largest_fields() {
        let subject = vec![b'a'; 255];
        let payload = vec![7u8; 1000];
        let mut t = vec![0u8; KIND_TABLE_LEN];
        t[KIND_ENTRY_LEN * 31] = 32;
        t[KIND_ENTRY_LEN * 31 + 1..KIND_ENTRY_LEN * 32].fill(b'z');
        let records = rec(31, &payload, &subject, u64::MAX, u64::MAX);
        let bound = JSON_EVENT_FIXED_MAX + payload.len().div_ceil(3) * 4 + subject.len() + 3;
        let mut out = vec![0u8; bound];
        let clock = WallOffset { ms: 9e12, rem_ns: 999_999.0 };
        let n = encode(&records, u64::MAX - 1, Pick::First(1), &t, clock, Format::Objects, &mut out).unwrap();
        assert!(n <= bound);
        let v: serde_json::Value = serde_json::from_slice(&out[..n - 1]).unwrap();
        assert_eq!(v[0]["kind"], "z".repeat(32));
        let n = encode(&records, u64::MAX - 1, Pick::First(1), &t, clock, Format::Rows, &mut out).unwrap();
        assert!(n <= bound);
        let v: serde_json::Value = serde_json::from_slice(&out[..n - 1]).unwrap();
        assert_eq!(v[0][1], "z".repeat(32));
        assert_eq!(v[0][7], "a".repeat(255));
    }
}
