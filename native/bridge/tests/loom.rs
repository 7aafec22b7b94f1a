//! Loom models of the ring's reserve, commit, consume and doorbell, and of
//! the userdata token registry, run on the real `ring` and `registry`
//! modules (their atomics come from loom under `--cfg loom`):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release --test loom
//! ```
//!
//! Loom explores every interleaving (bounded by LOOM_MAX_PREEMPTIONS) and
//! the weak-memory outcomes it models. Payload bytes are plain memory that
//! loom does not track; the atomics that order them are what is checked.
#![cfg(loom)]

use evbridge::registry::{Registry, Resolved};
use evbridge::ring::{RecordFields, Ring};
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
        let (ring, mut cons) = Ring::new(256).unwrap();
        let rang = Arc::new(AtomicUsize::new(0));
        let producers: Vec<_> = (0..2u32)
            .map(|p| {
                let (ring, rang) = (ring.clone(), rang.clone());
                thread::spawn(move || {
                    let mut r = ring.reserve(8, 0).expect("256 bytes hold four records");
                    r.write_header(&RecordFields { source_id: p, ..Default::default() });
                    if r.commit() {
                        rang.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();

        let (mut seen, mut calls, mut rings_seen) = (0, 0, 0);
        while seen < 2 {
            let b = cons.consume(u64::MAX, u64::MAX, true);
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
        assert_eq!(cons.consume(u64::MAX, u64::MAX, false).count, 0, "nothing delivered twice");
    });
}

/// A discarded record (a panic mid-write) between two commits is skipped
/// and the sequence numbers stay dense.
#[test]
fn discard_is_skipped_under_concurrency() {
    loom::model(|| {
        let (ring, mut cons) = Ring::new(256).unwrap();
        let a = {
            let ring = ring.clone();
            thread::spawn(move || {
                drop(ring.reserve(8, 0).unwrap()); // abandoned mid-write
            })
        };
        let b = {
            let ring = ring.clone();
            thread::spawn(move || {
                ring.reserve(8, 0).unwrap().commit();
            })
        };
        a.join().unwrap();
        b.join().unwrap();
        let got = cons.consume(u64::MAX, u64::MAX, false);
        assert_eq!((got.count, got.first_seq), (1, 1));
    });
}

/// Reservations from racing producers never overlap and never exceed the
/// capacity: with room for exactly three 64-byte records and the consumer
/// not releasing, three of four producers succeed.
#[test]
fn reservations_are_disjoint_and_bounded() {
    loom::model(|| {
        let (ring, mut cons) = Ring::new(256).unwrap();
        ring.reserve(8, 0).unwrap().commit(); // occupies the first 64 bytes
        let ok = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let (ring, ok) = (ring.clone(), ok.clone());
                thread::spawn(move || {
                    if let Some(r) = ring.reserve(8, 0) {
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
        assert!(ring.reserve(8, 0).is_none(), "ring is full");
        let got = cons.consume(u64::MAX, u64::MAX, false);
        assert_eq!((got.offset, got.len, got.count), (0, 256, 4));
    });
}

/// A stand-in for a bridge: `alive` is cleared when it is "freed".
struct FakeBridge {
    alive: loom::sync::atomic::AtomicBool,
}

/// A callback races revoke, detach (the free path) and re-issue of the slot
/// to another bridge. Checked in every interleaving:
/// * a call that starts after `revoke` returned never resolves as live;
/// * a call never sees its bridge freed while it holds it (detach waits for
///   calls in flight, and a re-issued slot is not entered under the old
///   bridge's name);
/// * a live call always names the bridge its token was issued for.
#[test]
fn registry_revoke_detach_and_reuse_never_let_a_call_through() {
    loom::model(|| {
        let reg = Arc::new(Registry::<FakeBridge>::new());
        let a = Box::into_raw(Box::new(FakeBridge { alive: loom::sync::atomic::AtomicBool::new(true) }));
        let b = Box::into_raw(Box::new(FakeBridge { alive: loom::sync::atomic::AtomicBool::new(true) }));
        let token = reg.issue(a).expect("a free slot");
        let revoked = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        let (a_addr, b_addr) = (a as usize, b as usize);

        let caller = {
            let (reg, revoked) = (reg.clone(), revoked.clone());
            thread::spawn(move || {
                let after_revoke = revoked.load(Ordering::SeqCst);
                match reg.resolve(token) {
                    Resolved::Live(h) => {
                        assert!(!after_revoke, "a call that started after revoke returned was let through");
                        assert_eq!(&*h as *const FakeBridge as usize, a_addr, "a live call names its own bridge");
                        assert!(h.alive.load(Ordering::SeqCst), "a live call's bridge was freed under it");
                    }
                    Resolved::Stale(h) => {
                        let at = &*h as *const FakeBridge as usize;
                        assert!(at == a_addr || at == b_addr);
                        assert!(h.alive.load(Ordering::SeqCst), "a stale call's bridge was freed under it");
                    }
                    Resolved::Bad => {}
                }
            })
        };

        // The control thread: revoke, detach and "free" a, re-issue to b.
        assert!(reg.revoke(token));
        revoked.store(true, Ordering::SeqCst);
        reg.detach(a);
        // SAFETY: `a` came from Box::into_raw and is freed once; detach has
        // returned, so no call holds it (what the model checks).
        unsafe { (*a).alive.store(false, Ordering::SeqCst) };
        let t2 = reg.issue(b).expect("the slot is free again");
        caller.join().unwrap();
        assert!(reg.revoke(t2));
        reg.detach(b);
        // SAFETY: both came from Box::into_raw, each freed once, after detach.
        unsafe {
            drop(Box::from_raw(a));
            drop(Box::from_raw(b));
        }
    });
}
