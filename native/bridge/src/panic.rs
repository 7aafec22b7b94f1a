//! The panic boundary every exported function runs inside, and the bounded
//! log of panic messages that the daemon drains and writes out.
//!
//! Pattern from rustls-ffi (`librustls/src/panic.rs`): the body of each
//! `extern "C"` function runs in `catch_unwind`, and a trait picks the value
//! returned to C when it panics. Unwinding never crosses the C ABI.
//!
//! This library installs its own panic hook (each cdylib carries its own copy
//! of `std`, so the hook covers panics inside this library only, not the
//! host's). It records "message at file:line" in [`PANIC_LOG_CAPACITY`]
//! entries of at most [`PANIC_MESSAGE_MAX`] bytes and prints nothing, so the
//! daemon's log stays JSON. Panic paths may allocate; the event path does not.

use std::collections::VecDeque;
use std::ffi::CString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

/// Messages kept before the oldest is dropped.
pub const PANIC_LOG_CAPACITY: usize = 64;
/// Bytes kept of one message.
pub const PANIC_MESSAGE_MAX: usize = 512;

static LOG: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());
static LOG_DROPPED: AtomicU64 = AtomicU64::new(0);
static HOOK: Once = Once::new();

std::thread_local! {
    /// How many evbridge panic boundaries the current thread is inside.
    static DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Marks the current thread as inside a panic boundary while alive.
pub(crate) struct InBoundary(());

impl InBoundary {
    pub(crate) fn enter() -> InBoundary {
        DEPTH.with(|d| d.set(d.get() + 1));
        InBoundary(())
    }
}

impl Drop for InBoundary {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Installs the recording hook once per process. Panics raised outside an
/// evbridge boundary (a host that links the rlib, such as the test suite) go
/// to the hook that was installed before.
pub(crate) fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if DEPTH.with(|d| d.get()) == 0 {
                return previous(info);
            }
            let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_owned()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "panic with a non-string payload".to_owned()
            };
            let mut line = match info.location() {
                Some(l) => format!("{msg} at {}:{}", l.file(), l.line()),
                None => msg,
            };
            if line.len() > PANIC_MESSAGE_MAX {
                let mut cut = PANIC_MESSAGE_MAX;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
            }
            let mut log = LOG.lock().unwrap_or_else(|p| p.into_inner());
            if log.len() == PANIC_LOG_CAPACITY {
                log.pop_front();
                LOG_DROPPED.fetch_add(1, Ordering::Relaxed);
            }
            log.push_back(line);
        }));
    });
}

/// Takes the oldest message, if any.
pub(crate) fn pop_message() -> Option<String> {
    LOG.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
}

/// Messages lost because the log was full.
pub(crate) fn messages_dropped() -> u64 {
    LOG_DROPPED.load(Ordering::Relaxed)
}

std::thread_local! {
    /// Backing store of the string returned by `evb_panic_message_next`.
    pub(crate) static LAST_MESSAGE: std::cell::RefCell<CString> = std::cell::RefCell::new(CString::default());
}

/// Value an exported function returns to C when its body panicked.
pub(crate) trait PanicDefault {
    fn on_panic() -> Self;
}

impl PanicDefault for i32 {
    fn on_panic() -> Self {
        crate::abi::EvbStatus::Panic as i32
    }
}
impl PanicDefault for i64 {
    fn on_panic() -> Self {
        crate::abi::EvbStatus::Panic as i64
    }
}
impl PanicDefault for u32 {
    fn on_panic() -> Self {
        0
    }
}
impl PanicDefault for u64 {
    fn on_panic() -> Self {
        0
    }
}
impl PanicDefault for () {
    fn on_panic() -> Self {}
}
impl<T> PanicDefault for *const T {
    fn on_panic() -> Self {
        std::ptr::null()
    }
}
impl<T> PanicDefault for *mut T {
    fn on_panic() -> Self {
        std::ptr::null_mut()
    }
}
impl PanicDefault for crate::abi::EvbEventCallback {
    fn on_panic() -> Self {
        None
    }
}

/// Runs `$body` (an expression) inside the panic boundary. A panic is counted
/// in the process-wide orphan counter (a function that can attribute it to a
/// bridge does so itself) and the type's [`PanicDefault`] is returned.
macro_rules! ffi_boundary {
    ($body:expr) => {{
        let _inside = $crate::panic::InBoundary::enter();
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(_) => {
                $crate::counters::ORPHANS.panicked.fetch_add(1, ::std::sync::atomic::Ordering::Relaxed);
                $crate::panic::PanicDefault::on_panic()
            }
        }
    }};
}
pub(crate) use ffi_boundary;
