//! Userdata tokens: the `void *userdata` the bridge hands to a C engine.
//!
//! A token is not a pointer. It encodes a slot index into a fixed table the
//! bridge owns and the generation of the registration in that slot:
//! `token = generation << 8 | (slot + 1)`. The callback looks the slot up,
//! compares generations and only then touches the bridge, so a call that
//! arrives after its registration was revoked is counted as stale and never
//! dereferences anything, and garbage userdata is refused without a read
//! outside the table. This is the generational-index technique (as in
//! slotmap and most ECS entity ids).
//!
//! Lifetime: each slot has striped in-flight counters. A callback increments
//! its stripe's counter before it reads the slot and decrements it when it is
//! done with the bridge; freeing a bridge clears its slots and then waits for
//! those counters to drain (both sides `SeqCst`, the same Dekker argument as
//! the ring's doorbell). So even a careless engine that calls during or after
//! `evb_bridge_free` cannot make the bridge touch freed memory.

use crate::counters::{stripe_index, STRIPES};
use crate::sync::Padded;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::Mutex;

/// Number of token slots in the process.
pub const SLOTS: usize = 64;

pub(crate) struct Slot<B> {
    /// Generation of the live token, 0 when none.
    live_gen: AtomicU64,
    /// The bridge this slot belongs to, null when none.
    bridge: AtomicPtr<B>,
    inflight: [Padded<AtomicU64>; STRIPES],
}

pub(crate) struct Registry<B> {
    slots: [Slot<B>; SLOTS],
    /// Next generation to hand out; guarded so issue and revoke are ordered.
    next_gen: Mutex<u64>,
}

/// Outcome of resolving a token.
pub(crate) enum Resolved<'a, B> {
    /// Live token.
    Live(Held<'a, B>),
    /// Revoked token whose slot still belongs to a bridge.
    Stale(Held<'a, B>),
    /// Not a token, or a slot with no bridge.
    Bad,
}

/// A bridge kept alive by the slot's in-flight count until this drops. The
/// bridge is reachable only through `Deref`, so no reference outlives it.
pub(crate) struct Held<'a, B> {
    bridge: *const B,
    counter: &'a AtomicU64,
}

impl<B> std::ops::Deref for Held<'_, B> {
    type Target = B;
    fn deref(&self) -> &B {
        // SAFETY: `bridge` was loaded non-null after `counter` was
        // incremented; `Registry::detach`, which runs before a bridge is
        // freed, clears the slot and then waits for `counter` to return to
        // zero, which happens only when this `Held` drops. So the bridge is
        // alive for as long as `self` is, and `&self` bounds the result.
        unsafe { &*self.bridge }
    }
}

impl<B> Drop for Held<'_, B> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<B> Registry<B> {
    pub(crate) const fn new() -> Self {
        Registry {
            slots: [const {
                Slot {
                    live_gen: AtomicU64::new(0),
                    bridge: AtomicPtr::new(std::ptr::null_mut()),
                    inflight: [const { Padded(AtomicU64::new(0)) }; STRIPES],
                }
            }; SLOTS],
            next_gen: Mutex::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.next_gen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Issues a token for `bridge`. Returns `None` when all slots are live.
    pub(crate) fn issue(&self, bridge: *mut B) -> Option<usize> {
        let mut next = self.lock();
        // Prefer a slot no bridge uses, then a revoked one of this bridge, so
        // stale calls on a revoked slot stay attributed for as long as possible.
        let pick = self
            .slots
            .iter()
            .position(|s| s.bridge.load(Ordering::SeqCst).is_null())
            .or_else(|| {
                self.slots.iter().position(|s| {
                    s.live_gen.load(Ordering::SeqCst) == 0 && s.bridge.load(Ordering::SeqCst) == bridge
                })
            })?;
        let gen = *next;
        *next += 1;
        let slot = &self.slots[pick];
        slot.bridge.store(bridge, Ordering::SeqCst);
        slot.live_gen.store(gen, Ordering::SeqCst);
        Some((gen as usize) << 8 | (pick + 1))
    }

    /// Revokes a live token. Returns false if it was not live.
    pub(crate) fn revoke(&self, token: usize) -> bool {
        let _g = self.lock();
        match Self::decode(token) {
            Some((idx, gen)) => self.slots[idx].live_gen.compare_exchange(gen, 0, Ordering::SeqCst, Ordering::SeqCst).is_ok(),
            None => false,
        }
    }

    /// Detaches every slot of `bridge` and waits until no callback is using
    /// it. After this returns, no callback can reach `bridge`.
    pub(crate) fn detach(&self, bridge: *mut B) {
        let _g = self.lock();
        for slot in &self.slots {
            if slot.bridge.load(Ordering::SeqCst) == bridge {
                slot.live_gen.store(0, Ordering::SeqCst);
                slot.bridge.store(std::ptr::null_mut(), Ordering::SeqCst);
                for c in &slot.inflight {
                    while c.load(Ordering::SeqCst) != 0 {
                        std::thread::yield_now();
                    }
                }
            }
        }
    }

    fn decode(token: usize) -> Option<(usize, u64)> {
        let idx = token & 0xff;
        let gen = (token >> 8) as u64;
        if idx == 0 || idx > SLOTS || gen == 0 {
            return None;
        }
        Some((idx - 1, gen))
    }

    /// Resolves a token without trusting it.
    pub(crate) fn resolve(&self, token: usize) -> Resolved<'_, B> {
        let Some((idx, gen)) = Self::decode(token) else { return Resolved::Bad };
        let slot = &self.slots[idx];
        let counter = &slot.inflight[stripe_index()].0;
        counter.fetch_add(1, Ordering::SeqCst);
        let b = slot.bridge.load(Ordering::SeqCst);
        if b.is_null() {
            counter.fetch_sub(1, Ordering::SeqCst);
            return Resolved::Bad;
        }
        let held = Held { bridge: b, counter };
        if slot.live_gen.load(Ordering::SeqCst) == gen {
            Resolved::Live(held)
        } else {
            Resolved::Stale(held)
        }
    }
}
