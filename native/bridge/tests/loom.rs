//! Loom model of the ring's reserve, commit, consume and doorbell, run on the
//! real `ring` module (its atomics come from loom under `--cfg loom`):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release --test loom
//! ```
//!
//! Loom explores every interleaving (bounded by LOOM_MAX_PREEMPTIONS) and
//! the weak-memory outcomes it models. Payload bytes are plain memory that
//! loom does not track; the atomics that order them are what is checked.
#![cfg(loom)]

use evbridge::ring::{RecordHeader, Ring};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

/// Two producers commit one record each while the consumer runs the
/// daemon's loop: drain with the doorbell armed, and on an empty batch wait
/// for a doorbell before draining again. A lost wakeup leaves the consumer
/// spinning forever, which loom reports as a failure, so termination is the
/// "no lost wakeup" proof. Each arming yields at most one doorbell, so the
/// doorbells never outnumber the drain calls.
///
/// History: a first version took the arm back with a swap when a record
/// turned up while arming. Loom 0.7 then produced executions in which a
/// `swap` returned `false` and yet left the flag `false` after a later
/// `store(true)` by the swapping thread's peer, breaking RMW atomicity; the
/// same happens in a 25-line litmus test without the ring. The ring no longer
/// takes the arm back (a doorbell may find nothing instead).
#[test]
fn doorbell_is_never_lost_and_never_doubled() {
    loom::model(|| {
        let ring = Arc::new(Ring::new(256).unwrap());
        let rang = Arc::new(AtomicUsize::new(0));
        let producers: Vec<_> = (0..2u32)
            .map(|p| {
                let (ring, rang) = (ring.clone(), rang.clone());
                thread::spawn(move || {
                    let mut r = ring.reserve(8).expect("256 bytes hold four records");
                    r.write_header(&RecordHeader { source_id: p, ..Default::default() });
                    if r.commit() {
                        rang.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();

        let (mut seen, mut calls, mut rings_seen) = (0, 0, 0);
        while seen < 2 {
            // SAFETY: this thread is the only consumer.
            let b = unsafe { ring.consume(u64::MAX, u64::MAX, true) };
            calls += 1;
            assert_eq!(b.first_seq, 1 + seen, "dense sequence numbers");
            seen += b.count;
            if b.count == 0 {
                loop {
                    let r = rang.load(Ordering::SeqCst);
                    if r > rings_seen {
                        rings_seen = r;
                        break;
                    }
                    thread::yield_now();
                }
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        let rings = rang.load(Ordering::SeqCst);
        assert!(rings <= calls, "{rings} doorbells for {calls} drain calls");
        // SAFETY: as above.
        assert_eq!(unsafe { ring.consume(u64::MAX, u64::MAX, false) }.count, 0, "nothing delivered twice");
    });
}

/// A discarded record (a panic mid-write) between two commits is skipped
/// and the sequence numbers stay dense.
#[test]
fn discard_is_skipped_under_concurrency() {
    loom::model(|| {
        let ring = Arc::new(Ring::new(256).unwrap());
        let a = {
            let ring = ring.clone();
            thread::spawn(move || {
                drop(ring.reserve(8).unwrap()); // abandoned mid-write
            })
        };
        let b = {
            let ring = ring.clone();
            thread::spawn(move || {
                ring.reserve(8).unwrap().commit();
            })
        };
        a.join().unwrap();
        b.join().unwrap();
        // SAFETY: this thread is the only consumer.
        let got = unsafe { ring.consume(u64::MAX, u64::MAX, false) };
        assert_eq!((got.count, got.first_seq), (1, 1));
    });
}

/// Reservations from racing producers never overlap and never exceed the
/// capacity: with room for exactly three 64-byte records and the consumer
/// not releasing, three of four producers succeed.
#[test]
fn reservations_are_disjoint_and_bounded() {
    loom::model(|| {
        let ring = Arc::new(Ring::new(256).unwrap());
        ring.reserve(8).unwrap().commit(); // occupies the first 64 bytes
        let ok = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let (ring, ok) = (ring.clone(), ok.clone());
                thread::spawn(move || {
                    if let Some(r) = ring.reserve(8) {
                        ok.fetch_add(1, Ordering::SeqCst);
                        r.commit();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(ok.load(Ordering::SeqCst), 3);
        assert!(ring.reserve(8).is_none(), "ring is full");
        // SAFETY: this thread is the only consumer.
        let got = unsafe { ring.consume(u64::MAX, u64::MAX, false) };
        assert_eq!((got.offset, got.len, got.count), (0, 256, 4));
    });
}
