//! evbridge's native bridge: `extern "C"` callbacks that a C event engine
//! calls from its own threads, a bounded multi-producer ring the events are
//! copied into, and the counters that account for every call.
//!
//! Data path: the engine calls [`ffi::evb_on_event`] with an event and a
//! userdata token ([`registry`]); the bridge validates both, copies the event
//! into the [`ring`], and rings a coalesced doorbell when the consumer is
//! waiting. The consumer (Node, through ffi-rs) calls [`ffi::evb_drain`] once
//! per batch and reads the records in place. [`counters`] count every
//! outcome: accepted, dropped, invalid, stale, panicked, plus lateness.
//!
//! The C header `native/include/evbridge.h` is generated from [`ffi`] by
//! cbindgen. Built as a cdylib for Node and C, and as an rlib for tests.
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(panic = "unwind"))]
compile_error!("evbridge must be built with panic = \"unwind\": its panic boundaries rely on it");

pub(crate) mod sync;

pub mod ring;

#[cfg(not(loom))]
pub mod bridge;
#[cfg(not(loom))]
pub mod counters;
#[cfg(not(loom))]
pub mod ffi;
#[cfg(not(loom))]
mod panic;
#[cfg(not(loom))]
pub mod registry;
