//! evbridge's native bridge: `extern "C"` callbacks that an engine plugin
//! calls from its own threads, a bounded multi-producer ring the events are
//! copied into, the counters that account for every call, and the loader of
//! engine plugins.
//!
//! Data path: an engine calls [`ffi::evb_on_event`] with an event and a
//! userdata token ([`registry`]); the bridge validates both, copies the event
//! into the [`ring`], and rings a coalesced doorbell when the consumer is
//! waiting. The consumer (Node, through ffi-rs) calls [`ffi::evb_drain`] once
//! per batch and reads the records in place. [`counters`] count every call on
//! entry and every outcome: accepted, dropped, invalid, stale, panicked, plus
//! lateness. [`plugin`] loads an engine plugin by path and drives it. [`json`]
//! writes records as the JSON subprotocol's events for the daemon's fan-out.
//!
//! # Layering
//!
//! Each module imports only the ones below it; there is no cycle.
//!
//! ```text
//! ffi        the exported evb_* functions (one panic boundary each)
//!  ├─ plugin   loading and checking plugins, the engine instance, host config
//!  ├─ json     records to JSON text (the daemon's JSON writer)
//!  ├─ bridge   validation, counting, copy into the ring; the token table
//!  │   ├─ registry  userdata tokens (generational slots, in-flight counts)
//!  │   ├─ ring      MPSC ring of records, its one Consumer, the doorbell
//!  │   ├─ counters  striped counters, delay histogram
//!  │   └─ panic     panic boundary macro, hook, bounded message log
//!  ├─ sync     atomics (std or loom), stripes, padding
//!  └─ abi      C types and constants, the layout description (leaf)
//! ```
//!
//! The C headers `native/include/evbridge.h` and `native/include/evb_plugin.h`
//! are generated from [`abi`] and [`ffi`] by cbindgen. Built as a cdylib for
//! Node and C, and as an rlib for tests.
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(panic = "unwind"))]
compile_error!("evbridge must be built with panic = \"unwind\": its panic boundaries rely on it");

pub mod abi;
pub(crate) mod sync;

pub mod registry;
pub mod ring;

#[cfg(not(loom))]
pub mod bridge;
#[cfg(not(loom))]
pub(crate) mod clock;
#[cfg(not(loom))]
pub mod counters;
#[cfg(not(loom))]
pub mod ffi;
#[cfg(not(loom))]
pub mod json;
#[cfg(not(loom))]
mod panic;
#[cfg(not(loom))]
pub mod plugin;
