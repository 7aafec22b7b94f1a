//! The registry's lifetime guarantee under real threads, on the path the
//! loom model does not take: on Linux the Dekker barrier between a callback
//! entering and a bridge being detached is the asymmetric one (membarrier,
//! `sync::barrier`). Two threads keep resolving whatever token is current
//! while the control thread issues, revokes, detaches and "frees" bridge
//! after bridge: no call may ever hold a bridge that detach has released.
//! A freed bridge is only marked dead (its memory is kept until the end), so
//! a broken guarantee shows up as a failed check, not as undefined behaviour.
#![cfg(not(loom))]

use evbridge::registry::{Registry, Resolved};
use evbridge::ring::Ring;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct FakeBridge {
    alive: AtomicBool,
}

#[test]
fn a_detached_bridge_is_never_held_by_a_call() {
    const CYCLES: usize = 20_000;
    // Any ring settles the process's barrier; the asymmetric path is the one under test.
    let (ring, _cons) = Ring::new(4096).unwrap();
    assert!(ring.asymmetric_barrier(), "membarrier(2) is refused here: the asymmetric path is not under test");
    let reg = Arc::new(Registry::<FakeBridge>::new());
    let token = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..2)
        .map(|_| {
            let (reg, token, stop, held) = (reg.clone(), token.clone(), stop.clone(), held.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let h = match reg.resolve(token.load(Ordering::Relaxed)) {
                        Resolved::Live(h) | Resolved::Stale(h) => h,
                        Resolved::Bad => continue,
                    };
                    for _ in 0..4 {
                        assert!(h.alive.load(Ordering::SeqCst), "a call holds a bridge that detach released");
                        std::hint::spin_loop();
                    }
                    held.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut bridges = Vec::with_capacity(CYCLES);
    for _ in 0..CYCLES {
        let b = Box::into_raw(Box::new(FakeBridge { alive: AtomicBool::new(true) }));
        bridges.push(b);
        let t = reg.issue(b).expect("a free slot");
        token.store(t, Ordering::Relaxed);
        // Detach only once a caller has held this bridge, so that every cycle
        // races calls that are entering and leaving it.
        let (before, deadline) = (held.load(Ordering::Relaxed), Instant::now() + Duration::from_secs(60));
        while held.load(Ordering::Relaxed) == before {
            assert!(Instant::now() < deadline, "no call held the bridge of a cycle within 60 s");
            std::hint::spin_loop();
        }
        assert!(reg.revoke(t));
        reg.detach(b);
        // SAFETY: `b` came from Box::into_raw and is still allocated; only
        // its flag changes ("freed").
        unsafe { (*b).alive.store(false, Ordering::SeqCst) };
    }
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.join().unwrap();
    }
    eprintln!("{} calls held a bridge over {CYCLES} detach cycles", held.load(Ordering::Relaxed));
    for b in bridges {
        // SAFETY: each came from Box::into_raw and is freed once, after
        // every caller has stopped.
        drop(unsafe { Box::from_raw(b) });
    }
}
