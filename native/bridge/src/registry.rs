//! Userdata tokens: the `void *userdata` the bridge hands to an engine.
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
//! done with the bridge; detaching a bridge clears its slots and then waits
//! for those counters to drain. So even a careless engine that calls during
//! or after `evb_bridge_free` cannot make the bridge touch freed memory.
//!
//! # Memory ordering
//!
//! * Entering is the store-buffering (Dekker) pattern, as for the ring's
//!   doorbell: the callback increments its counter, then reads the slot's
//!   bridge; the detacher clears the bridge, then reads the counters. Each
//!   side separates its write from its read with a full barrier, so at
//!   least one sees the other's write: either the callback finds the slot
//!   empty, or the detacher finds the callback counted and waits. The
//!   barrier is `sync::barrier`: the callback's side is `light` (a compiler
//!   fence where `membarrier(2)` is available), the detacher's `heavy`; with
//!   `SeqCst` fences on both sides otherwise and under loom. (With `SeqCst`
//!   accesses and no fence the argument also holds in the C++ model, but
//!   loom models such accesses as acquire/release only; the fences make the
//!   model check what the code relies on.)
//! * Counters are the thread's stripe (`sync::my_stripe`): a thread that
//!   owns its stripe is the only writer of that counter in every slot and
//!   updates it with a plain load and store, others with atomic adds.
//! * Leaving: the callback decrements its counter with `Release`, and the
//!   detacher reads the counters with `Acquire`, so everything the callback
//!   did with the bridge happens before the detacher returns (and the bridge
//!   is freed).
//! * The slot's bridge and generation are written under the table's lock with
//!   `Release` and read with `Acquire`: a callback that reads a bridge also
//!   sees the writes that set it up. Revoking is a `compare_exchange` of the
//!   generation; a call whose start happens after `revoke` returned (ordered
//!   by whatever told the engine to stop calling) reads the cleared
//!   generation by coherence and is counted as stale.
//!
//! The model in `tests/loom.rs` checks, over every interleaving of a
//! callback with revoke, detach and re-issue: no call resolves as live after
//! `revoke` returned, and no call is inside a bridge after `detach` returned.

use crate::sync::{barrier, my_stripe, spin_yield, stripe_add, stripe_release_one, AtomicPtr, AtomicU64, Mutex, Ordering, Padded, STRIPES};

/// Number of token slots in the process.
#[cfg(not(loom))]
pub const SLOTS: usize = 64;
/// Number of token slots (small, so the loom model stays small).
#[cfg(loom)]
pub const SLOTS: usize = 2;

struct Slot<B> {
    /// Generation of the live token, 0 when none.
    live_gen: AtomicU64,
    /// The bridge this slot belongs to, null when none.
    bridge: AtomicPtr<B>,
    inflight: Box<[Padded<AtomicU64>]>,
}

/// The token table. One per process in the library (`bridge::REGISTRY`);
/// tests make their own.
pub struct Registry<B> {
    slots: Box<[Slot<B>]>,
    /// Next generation to hand out; the lock also orders issue, revoke and
    /// detach with each other.
    next_gen: Mutex<u64>,
}

/// Outcome of resolving a token.
pub enum Resolved<'a, B> {
    /// Live token.
    Live(Held<'a, B>),
    /// Revoked token whose slot still belongs to a bridge.
    Stale(Held<'a, B>),
    /// Not a token, or a slot with no bridge.
    Bad,
}

/// A bridge kept alive by the slot's in-flight count until this drops. The
/// bridge is reachable only through `Deref`, so no reference outlives it.
pub struct Held<'a, B> {
    bridge: *const B,
    counter: &'a AtomicU64,
    /// The calling thread owns `counter`'s stripe.
    owned: bool,
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
        stripe_release_one(self.counter, self.owned);
    }
}

impl<B> Default for Registry<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> Registry<B> {
    /// An empty table.
    pub fn new() -> Self {
        Registry {
            slots: (0..SLOTS)
                .map(|_| Slot {
                    live_gen: AtomicU64::new(0),
                    bridge: AtomicPtr::new(std::ptr::null_mut()),
                    inflight: (0..STRIPES).map(|_| Padded(AtomicU64::new(0))).collect(),
                })
                .collect(),
            next_gen: Mutex::new(1),
        }
    }

    fn lock(&self) -> impl std::ops::DerefMut<Target = u64> + '_ {
        self.next_gen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Issues a token for `bridge`. Returns `None` when all slots are live.
    /// Control thread.
    pub fn issue(&self, bridge: *mut B) -> Option<usize> {
        let mut next = self.lock();
        // Prefer a slot no bridge uses, then a revoked one of this bridge, so
        // stale calls on a revoked slot stay attributed for as long as possible.
        let pick = self
            .slots
            .iter()
            .position(|s| s.bridge.load(Ordering::Relaxed).is_null())
            .or_else(|| {
                self.slots.iter().position(|s| {
                    s.live_gen.load(Ordering::Relaxed) == 0 && s.bridge.load(Ordering::Relaxed) == bridge
                })
            })?;
        let gen = *next;
        *next += 1;
        let slot = &self.slots[pick];
        slot.bridge.store(bridge, Ordering::Release);
        slot.live_gen.store(gen, Ordering::Release);
        Some((gen as usize) << 8 | (pick + 1))
    }

    /// Revokes a live token. Returns false if it was not live. A call that
    /// resolves the token after this returns sees it stale. Control thread.
    pub fn revoke(&self, token: usize) -> bool {
        let _g = self.lock();
        match Self::decode(token) {
            Some((idx, gen)) => {
                self.slots[idx].live_gen.compare_exchange(gen, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok()
            }
            None => false,
        }
    }

    /// Detaches every slot of `bridge` and waits until no callback is using
    /// it. After this returns, no callback can reach `bridge`. Control thread.
    pub fn detach(&self, bridge: *mut B) {
        let _g = self.lock();
        for slot in self.slots.iter() {
            if slot.bridge.load(Ordering::Relaxed) == bridge {
                slot.live_gen.store(0, Ordering::Release);
                slot.bridge.store(std::ptr::null_mut(), Ordering::Release);
                barrier::heavy(); // the detacher's side of the Dekker pattern
                for c in slot.inflight.iter() {
                    while c.load(Ordering::Acquire) != 0 {
                        spin_yield();
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

    /// Resolves a token without trusting it. Any thread.
    pub fn resolve(&self, token: usize) -> Resolved<'_, B> {
        self.resolve_as(token, my_stripe())
    }

    /// [`Registry::resolve`] for a caller that already looked up
    /// `sync::my_stripe()` (the callback looks it up once and uses it for
    /// every counter of the call: each look-up is a thread-local access,
    /// which in a shared library is a call to `__tls_get_addr`).
    pub(crate) fn resolve_as(&self, token: usize, (stripe, owned): (usize, bool)) -> Resolved<'_, B> {
        let Some((idx, gen)) = Self::decode(token) else { return Resolved::Bad };
        let slot = &self.slots[idx];
        let counter = &slot.inflight[stripe].0;
        stripe_add(counter, 1, owned);
        barrier::light(); // the callback's side of the Dekker pattern
        let b = slot.bridge.load(Ordering::Acquire);
        if b.is_null() {
            stripe_release_one(counter, owned);
            return Resolved::Bad;
        }
        let held = Held { bridge: b, counter, owned };
        if slot.live_gen.load(Ordering::Acquire) == gen {
            Resolved::Live(held)
        } else {
            Resolved::Stale(held)
        }
    }
}
