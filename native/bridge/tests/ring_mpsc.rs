//! The ring under 8 concurrent producers and a live consumer: exact
//! accounting, per-producer order, intact payloads, and skipped discards.
#![cfg(not(loom))]

use evbridge::ring::{record_len, RecordFields, Ring};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every wait in these tests gives up (fails) after this long.
const PATIENCE: Duration = Duration::from_secs(60);

const PRODUCERS: u32 = 8;
const PER_PRODUCER: u64 = 200_000;

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn read_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Producer `p` writes events (source p, seq n) with a payload of
/// `(n % 40) + 8` bytes: seq in the first 8, then bytes derived from (p, n).
/// Every 1000th reservation is dropped uncommitted (a discard). With
/// `retry`, a producer that finds the ring full yields and tries again.
fn run(capacity: u64, retry: bool) -> (u64, u64, u64, u64) {
    let (ring, mut cons) = Ring::new(capacity).unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(AtomicU64::new(0));
    let discarded = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (ring, accepted, dropped, discarded) =
                (ring.clone(), accepted.clone(), dropped.clone(), discarded.clone());
            std::thread::spawn(move || {
                for n in 0..PER_PRODUCER {
                    let len = (n % 40) as u32 + 8;
                    let since = Instant::now();
                    let mut r = loop {
                        match ring.reserve(len, 0) {
                            Some(r) => break Some(r),
                            None if retry => {
                                assert!(since.elapsed() < PATIENCE, "producer {p} found the ring full for {PATIENCE:?}");
                                std::thread::yield_now()
                            }
                            None => break None,
                        }
                    };
                    let Some(mut r) = r.take() else {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    r.write_header(&RecordFields { kind: 3, source_id: p, flags: 0, source_seq: n, ts_ns: n });
                    let pl = r.payload_mut();
                    pl[..8].copy_from_slice(&n.to_le_bytes());
                    for (i, b) in pl[8..].iter_mut().enumerate() {
                        *b = (p as u64 * 31 + n + i as u64) as u8;
                    }
                    if n % 1000 == 999 {
                        drop(r);
                        discarded.fetch_add(1, Ordering::Relaxed);
                    } else {
                        r.commit();
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    let consumer = {
        let (ring, done) = (ring.clone(), done.clone());
        std::thread::spawn(move || {
            let mut last_seq_by_source = vec![None::<u64>; PRODUCERS as usize];
            let mut delivered = 0u64;
            let mut expect_seq = 1u64;
            let started = Instant::now();
            loop {
                assert!(started.elapsed() < PATIENCE * 2, "the consumer ran for {:?} without the producers finishing", PATIENCE * 2);
                let finished = done.load(Ordering::Acquire);
                let b = cons.consume(64 * 1024, 4096, false);
                assert_eq!(b.first_seq, expect_seq, "global sequence numbers have no holes");
                expect_seq += b.count;
                // SAFETY: the batch's bytes are ours until the next consume.
                let data = unsafe {
                    std::slice::from_raw_parts(ring.data_ptr().add(b.offset as usize), b.len as usize)
                };
                let mut at = 0usize;
                for i in 0..b.count {
                    let rec_len = read_u32(data, at) as usize;
                    let pl_len = read_u32(data, at + 4) as usize;
                    let src = read_u32(data, at + 12) as usize;
                    let sseq = read_u64(data, at + 24);
                    assert_eq!(rec_len as u64, record_len(pl_len as u64));
                    assert_eq!(read_u64(data, at + 40), b.first_seq + i, "seq written in place");
                    assert_eq!(pl_len as u64, (sseq % 40) + 8);
                    let pl = &data[at + 48..at + 48 + pl_len];
                    assert_eq!(read_u64(pl, 0), sseq);
                    for (j, &v) in pl[8..].iter().enumerate() {
                        assert_eq!(v, (src as u64 * 31 + sseq + j as u64) as u8, "payload intact");
                    }
                    if let Some(prev) = last_seq_by_source[src] {
                        assert!(sseq > prev, "per-producer order: {sseq} after {prev} from {src}");
                    }
                    last_seq_by_source[src] = Some(sseq);
                    at += rec_len;
                }
                assert_eq!(at as u64, b.len, "records tile the batch exactly");
                delivered += b.count;
                if b.count == 0 && finished {
                    return delivered;
                }
            }
        })
    };
    for p in producers {
        p.join().unwrap();
    }
    done.store(true, Ordering::Release);
    let delivered = consumer.join().unwrap();
    (
        accepted.load(Ordering::Relaxed),
        dropped.load(Ordering::Relaxed),
        discarded.load(Ordering::Relaxed),
        delivered,
    )
}

#[test]
fn eight_producers_retrying_wrap_many_times_and_lose_nothing() {
    // 64 KiB holds ~700 records, so 1.6 M records wrap the ring thousands of times.
    let (accepted, dropped, discarded, delivered) = run(1 << 16, true);
    assert_eq!(dropped, 0);
    assert_eq!(discarded, PRODUCERS as u64 * (PER_PRODUCER / 1000));
    assert_eq!(accepted + discarded, PRODUCERS as u64 * PER_PRODUCER);
    assert_eq!(delivered, accepted, "every committed record is delivered once");
}

#[test]
fn eight_producers_tiny_ring_drops_are_counted_not_lost() {
    let (accepted, dropped, discarded, delivered) = run(4096, false);
    assert_eq!(accepted + dropped + discarded, PRODUCERS as u64 * PER_PRODUCER);
    assert_eq!(delivered, accepted);
    assert!(dropped > 0, "a 4 KiB ring under 8 producers must overflow");
}

#[test]
fn capacity_is_checked() {
    assert!(Ring::new(1000).is_err(), "not a power of two");
    assert!(Ring::new(128).is_err(), "below minimum");
    assert!(Ring::new(1 << 33).is_err(), "above maximum");
    assert!(Ring::new(256).is_ok());
}

#[test]
fn padding_at_the_end_keeps_records_contiguous() {
    let (ring, mut cons) = Ring::new(256).unwrap();
    // 3 x 64-byte records, consume them, then a 128-byte record must wrap.
    for n in 0..3 {
        let mut r = ring.reserve(8, 0).unwrap();
        r.write_header(&RecordFields { source_seq: n, ..Default::default() });
        r.commit();
    }
    let b = cons.consume(u64::MAX, u64::MAX, false);
    assert_eq!((b.offset, b.count, b.first_seq), (0, 3, 1));
    assert!(ring.reserve(64, 0).is_none(), "a handed-out batch is not released until the next consume");
    assert_eq!(cons.consume(u64::MAX, u64::MAX, false).count, 0);
    let mut r = ring.reserve(64, 0).unwrap(); // 48 + 64 -> 128 bytes, only 64 left before the end
    assert_eq!(r.size(), 128);
    r.payload_mut().fill(7);
    r.commit();
    let b = cons.consume(u64::MAX, u64::MAX, false);
    assert_eq!((b.offset, b.len, b.count, b.first_seq), (0, 128, 1, 4), "placed at offset 0 after padding");
    // Full now? 64 bytes of padding were released, 128 used: 128 free.
    assert!(ring.reserve(64, 0).is_some());
}

#[test]
fn doorbell_rings_once_per_arming() {
    use std::sync::atomic::AtomicUsize;
    static RINGS: AtomicUsize = AtomicUsize::new(0);
    extern "C" fn bell() {
        RINGS.fetch_add(1, Ordering::SeqCst);
    }
    let (ring, mut cons) = Ring::new(4096).unwrap();
    ring.set_doorbell(Some(bell));
    // Not armed: commits do not ring.
    ring.reserve(8, 0).unwrap().commit();
    assert_eq!(RINGS.load(Ordering::SeqCst), 0);
    let b = cons.consume(u64::MAX, u64::MAX, true);
    assert_eq!(b.count, 1, "ready records are returned, not armed over");
    let b = cons.consume(u64::MAX, u64::MAX, true);
    assert_eq!(b.count, 0);
    assert!(ring.is_armed());
    for _ in 0..5 {
        ring.reserve(8, 0).unwrap().commit();
    }
    assert_eq!(RINGS.load(Ordering::SeqCst), 1, "five commits, one pending wakeup");
    assert!(!ring.is_armed());
    let b = cons.consume(u64::MAX, u64::MAX, true);
    assert_eq!(b.count, 5);
}

#[test]
fn subject_follows_the_payload_and_padding_is_zeroed() {
    let (ring, mut cons) = Ring::new(256).unwrap();
    // Fill the first 128 bytes with 0xff, release them, and wrap back over them.
    let mut r = ring.reserve(80, 0).unwrap();
    r.payload_mut().fill(0xff);
    r.commit();
    assert_eq!(cons.consume(u64::MAX, u64::MAX, false).count, 1);
    let mut r = ring.reserve(64, 0).unwrap();
    r.payload_mut().fill(0xff);
    r.commit();
    assert_eq!(cons.consume(u64::MAX, u64::MAX, false).count, 1);
    // 48 + 5 + 3 = 56 bytes of a 64-byte record at offset 0 (after padding).
    let mut r = ring.reserve(5, 3).unwrap();
    r.write_header(&RecordFields { kind: 3, ..Default::default() });
    r.payload_mut().copy_from_slice(b"hello");
    r.subject_mut().copy_from_slice(b"a.b");
    r.commit();
    let b = cons.consume(u64::MAX, u64::MAX, false);
    assert_eq!((b.count, b.len), (1, 64));
    // SAFETY: the batch's bytes are ours until the next consume.
    let rec = unsafe { std::slice::from_raw_parts(ring.data_ptr().add(b.offset as usize), 64) };
    assert_eq!((read_u32(rec, 0), read_u32(rec, 4), read_u32(rec, 20)), (64, 5, 3), "lengths in the header");
    assert_eq!(&rec[48..53], b"hello");
    assert_eq!(&rec[53..56], b"a.b");
    assert!(rec[56..].iter().all(|&x| x == 0), "padding is zeroed, not an older record's bytes: {:?}", &rec[56..]);
}

#[test]
fn consumer_first_then_producer_at_position_zero() {
    // Regression (found by the loom model): the zeroed stamp of position 0
    // must read as "not yet written", not as padding.
    let (ring, mut cons) = Ring::new(256).unwrap();
    assert_eq!(cons.consume(u64::MAX, u64::MAX, true).count, 0);
    ring.reserve(8, 0).unwrap().commit();
    let b = cons.consume(u64::MAX, u64::MAX, true);
    assert_eq!((b.offset, b.count, b.first_seq), (0, 1, 1));
}

/// No lost wakeup. One producer publishes each record just after the
/// consumer took the one before, after a random pause of 0 to 15 spins, so
/// that its stamp store lands around the moment the consumer, having found
/// the ring empty, arms: the store-buffering race of the doorbell, once per
/// record. The consumer only ever waits for the doorbell; a wakeup lost in
/// the race leaves it waiting with a record ready, and the wait gives up
/// after `PATIENCE` and fails. On Linux the doorbell's barrier is the
/// asymmetric one (membarrier), the path under test here; the fenced path is
/// the one the loom model checks.
#[test]
fn every_arming_that_misses_a_record_gets_its_doorbell() {
    static BELL: AtomicBool = AtomicBool::new(false);
    static RUNG: AtomicU64 = AtomicU64::new(0);
    extern "C" fn bell() {
        RUNG.fetch_add(1, Ordering::Relaxed);
        BELL.store(true, Ordering::Release);
    }
    const N: u64 = 200_000;
    let (ring, mut cons) = Ring::new(1 << 16).unwrap();
    assert!(ring.asymmetric_barrier(), "membarrier(2) is refused here: the asymmetric path is not under test");
    ring.set_doorbell(Some(bell));
    let taken = Arc::new(AtomicU64::new(0));
    let producer = {
        let (ring, taken) = (ring.clone(), taken.clone());
        std::thread::spawn(move || {
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for n in 0..N {
                let deadline = Instant::now() + PATIENCE;
                while taken.load(Ordering::Acquire) < n {
                    assert!(Instant::now() < deadline, "the consumer stopped at {n}");
                    std::hint::spin_loop();
                }
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                for _ in 0..x % 16 {
                    std::hint::spin_loop();
                }
                ring.reserve(8, 0).expect("one record at a time never fills the ring").commit();
            }
        })
    };
    let (mut got, mut waits) = (0u64, 0u64);
    while got < N {
        let b = cons.consume(u64::MAX, 256, true);
        if b.count > 0 {
            got += b.count;
            taken.store(got, Ordering::Release);
            continue;
        }
        // Armed: wait for the doorbell, and only for it.
        waits += 1;
        let deadline = Instant::now() + PATIENCE;
        while !BELL.swap(false, Ordering::Acquire) {
            assert!(Instant::now() < deadline, "lost wakeup: armed after {got} of {N} records and no doorbell came");
            std::hint::spin_loop();
        }
    }
    producer.join().unwrap();
    assert_eq!(got, N);
    // Each doorbell is an arming that a publish raced and found; `waits`
    // counts the armings that found the ring still empty.
    let rung = RUNG.load(Ordering::Relaxed);
    eprintln!("{rung} doorbells, {waits} waits for one");
    assert!(rung > N / 20, "only {rung} doorbells in {N} records: the race was hardly exercised");
}
