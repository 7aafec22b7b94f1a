//! Time of `json::encode` per event, 64-byte payloads, 256-event chunks:
//! `cargo run --release --example json_speed`.
use evbridge::json::{encode, Format, Pick, WallOffset, KIND_ENTRY_LEN, KIND_TABLE_LEN};
fn main() {
    let n = 256usize;
    let mut records = Vec::new();
    for i in 0..n {
        let mut r = vec![0u8; 48 + 64];
        r[0..4].copy_from_slice(&112u32.to_le_bytes());
        r[4..8].copy_from_slice(&64u32.to_le_bytes());
        r[8..12].copy_from_slice(&3u32.to_le_bytes());
        r[24..32].copy_from_slice(&(i as u64).to_le_bytes());
        r[32..40].copy_from_slice(&(123_456_789_012u64 + i as u64).to_le_bytes());
        records.extend(r);
    }
    let mut kinds = vec![0u8; KIND_TABLE_LEN];
    kinds[3 * KIND_ENTRY_LEN] = 3;
    kinds[3 * KIND_ENTRY_LEN + 1..3 * KIND_ENTRY_LEN + 4].copy_from_slice(b"gen");
    let mut out = vec![0u8; 1 << 20];
    let clock = WallOffset { ms: 1.7e12, rem_ns: 12345.0 };
    let reps = 20_000;
    for format in [Format::Objects, Format::Rows] {
        let t = std::time::Instant::now();
        let mut total = 0;
        for _ in 0..reps {
            total += encode(&records, 1, Pick::First(n), &kinds, clock, format, &mut out).unwrap();
        }
        let ns = t.elapsed().as_nanos() as f64 / (reps * n) as f64;
        println!("{format:?}: {ns:.0} ns per event ({} bytes per event)", total / reps / n);
    }
}
