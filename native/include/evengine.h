/*
 * evengine.h -- public API of libevengine, the reference C event engine.
 *
 * libevengine is a stand-in for a user's own C library: it owns a few event
 * sources (UDP datagrams, a fixed-rate frame tick, a load generator), runs
 * each on a thread of its own, and delivers every event by calling the
 * function pointers that were registered with it. It knows nothing about the
 * code behind those pointers.
 *
 * The same library is also an evbridge engine plugin (plugin.c exports
 * evb_plugin_entry), the daemon's built-in default; its configuration keys
 * are listed in README.md ("The reference engine").
 *
 * Conventions
 *   - Functions return 0 or a positive value on success, and a negative
 *     EE_E* code on failure (see EE_ERRNO_MAP, ee_strerror, ee_err_name).
 *     If a call that takes a callback fails, that callback never fires.
 *   - Time is CLOCK_MONOTONIC in nanoseconds (ee_now_ns), the same clock that
 *     Node's process.hrtime.bigint() reads on Linux.
 *   - Threading is given for each function. "Control thread" means any one
 *     thread at a time that is not inside a callback of this engine.
 *   - Lifetime: the caller owns an engine from ee_engine_new until
 *     ee_engine_free; strings passed in are copied.
 */
#ifndef EVENGINE_H
#define EVENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "evb_plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define EE_EXTERN __attribute__((visibility("default")))
#else
#define EE_EXTERN
#endif

/* Bumped whenever ee_event_t, ee_event_cb or a function signature changes. */
#define EE_ABI_VERSION 2u

/* Largest payload any source produces: the largest UDP/IPv4 datagram payload
 * (65,535 - 8 byte UDP header - 20 byte IP header). */
#define EE_PAYLOAD_MAX 65507u

/* Most registrations that may exist at once on one engine. */
#define EE_MAX_REGISTRATIONS 16

/* Most subjects a generator cycles through. */
#define EE_MAX_GEN_SUBJECTS 64

/* Event kinds. A kind mask has bit (1u << kind) set for each kind wanted. */
typedef enum {
  EE_KIND_UDP = 1,  /* one datagram; payload = the datagram bytes           */
  EE_KIND_TICK = 2, /* one frame; payload = ee_tick_payload_t               */
  EE_KIND_GEN = 3   /* one generated event; payload[0..8] = source_seq (LE) */
} ee_kind_t;

#define EE_KIND_MASK_ALL ((1u << EE_KIND_UDP) | (1u << EE_KIND_TICK) | (1u << EE_KIND_GEN))

/* Error codes: X(name, value, message). */
#define EE_ERRNO_MAP(X)                                                        \
  X(EINVAL, -1, "invalid argument")                                           \
  X(ENOMEM, -2, "out of memory")                                              \
  X(EBUSY, -3, "operation not allowed while the engine is running")           \
  X(ENOENT, -4, "no such registration or source")                             \
  X(ENOSPC, -5, "too many registrations or sources")                          \
  X(EADDR, -6, "cannot resolve or bind the address")                          \
  X(ETHREAD, -7, "cannot create a thread")                                    \
  X(EPERM, -8, "fault injection is not enabled on this engine")               \
  X(EDEADLK, -9, "called from inside a callback of this engine")              \
  X(EIO, -10, "system call failed")                                           \
  X(EADDRINUSE, -11, "address already in use")                                \
  X(EACCES, -12, "permission denied to bind the address")

typedef enum {
#define EE__ERR_ENUM(name, value, msg) EE_##name = (value),
  EE_ERRNO_MAP(EE__ERR_ENUM)
#undef EE__ERR_ENUM
} ee_errno_t;

/*
 * One event, as handed to a callback: the plugin ABI's evb_event_t (one
 * definition, in evb_plugin.h), so that a registered evb_event_cb needs no
 * conversion. Lifetime: the struct and what it points to belong to the
 * engine and are valid only for the duration of the callback.
 */
typedef evb_event_t ee_event_t;

/* Payload of an EE_KIND_TICK event (16 bytes, host byte order). */
typedef struct ee_tick_payload_s {
  uint64_t frame;       /* frame number, starts at 0                         */
  uint64_t frame_ns;    /* measured time since the previous frame, ns        */
} ee_tick_payload_t;

/*
 * Event callback: the plugin ABI's evb_event_cb. Called from an engine
 * thread (never the thread that registered it), possibly from several
 * threads at once. Must not block and must not call ee_engine_unregister,
 * ee_engine_stop or ee_engine_free on the same engine (those return
 * EE_EDEADLK, and free refuses to run). The return value is the callback's
 * status; the engine counts non-zero returns (ee_engine_stats) and otherwise
 * ignores them.
 */
typedef evb_event_cb ee_event_cb;

/* Careless-C behaviours that ee_engine_inject can produce. */
typedef enum {
  EE_FAULT_NULL_EVENT = 1,    /* ev == NULL                                   */
  EE_FAULT_NULL_PAYLOAD = 2,  /* payload == NULL with len > 0                 */
  EE_FAULT_OVERSIZE = 3,      /* len far beyond EE_PAYLOAD_MAX, tiny buffer   */
  EE_FAULT_UNKNOWN_KIND = 4,  /* kind that no source produces                 */
  EE_FAULT_STALE = 5,         /* call after unregistering, old userdata       */
  EE_FAULT_LATE = 6,          /* ts_ns one second in the past                 */
  EE_FAULT_BAD_SUBJECT = 7    /* subject with an empty token ("a..b")         */
} ee_fault_t;

/* Kind value used by EE_FAULT_UNKNOWN_KIND. */
#define EE_FAULT_KIND 999u

typedef struct ee_engine_s ee_engine_t;

/* Counters the engine keeps about its own dispatching. */
typedef struct ee_stats_s {
  uint64_t dispatched;        /* callback invocations made by sources         */
  uint64_t cb_errors;         /* invocations (sources and injection) that
                                 returned non-zero                            */
  uint64_t injected;          /* callback invocations made by ee_engine_inject */
  uint64_t udp_errors;        /* recvmsg failures and truncated datagrams     */
  uint64_t udp_kernel_drops;  /* datagrams the kernel dropped because a UDP
                                 source's receive buffer was full (SO_RXQ_OVFL,
                                 summed over sources; known when the next
                                 datagram on that socket is read)             */
} ee_stats_t;

/* EE_ABI_VERSION of the compiled library. Any thread. */
EE_EXTERN uint32_t ee_abi_version(void);

/* Name ("EINVAL") and message of an error code; "UNKNOWN" / "unknown error"
 * for other values. Static strings. Any thread. */
EE_EXTERN const char *ee_err_name(int err);
EE_EXTERN const char *ee_strerror(int err);

/* CLOCK_MONOTONIC in nanoseconds. Any thread. */
EE_EXTERN uint64_t ee_now_ns(void);

/* Create an engine with no sources and no registrations. Returns NULL when
 * out of memory. The caller owns it and releases it with ee_engine_free. */
EE_EXTERN ee_engine_t *ee_engine_new(void);

/* Stop the engine if needed, then release it. ee_engine_free(NULL) is a
 * no-op. Control thread; from inside a callback of this engine it does
 * nothing (stopping would wait for the calling thread itself), and the
 * engine stays allocated. After it returns no callback runs. */
EE_EXTERN void ee_engine_free(ee_engine_t *eng);

/*
 * Register cb for the kinds in kind_mask. userdata is passed back untouched.
 * Returns a registration id (> 0) or EE_EINVAL (NULL engine/cb, empty mask),
 * EE_ENOSPC. May be called while running; the first call can happen before
 * this returns. Control thread.
 */
EE_EXTERN int64_t ee_engine_register(ee_engine_t *eng, ee_event_cb cb, void *userdata,
                                     uint32_t kind_mask);

/*
 * Remove a registration. Waits until no thread is inside its callback; after
 * it returns, the callback is never called again for this registration (fault
 * injection's EE_FAULT_STALE excepted, which exists to break this promise on
 * purpose). Returns 0, EE_ENOENT, or EE_EDEADLK from inside a callback.
 * Control thread.
 */
EE_EXTERN int ee_engine_unregister(ee_engine_t *eng, int64_t id);

/* Add a UDP source bound to host:port (IPv4 or IPv6 literal or name; port 0
 * picks a free port, see ee_engine_udp_port). Every datagram becomes one
 * event with `subject` (copied; NULL for none). Binds at once, so a busy
 * address fails here: EE_EADDRINUSE, EE_EACCES, or EE_EADDR for a name that
 * does not resolve or another bind failure. Returns the source id (>= 0).
 * Only while stopped (EE_EBUSY otherwise). Control thread. */
EE_EXTERN int ee_engine_add_udp(ee_engine_t *eng, const char *host, uint16_t port,
                                const char *subject);

/* Port a UDP source is bound to, or a negative error. Control thread. */
EE_EXTERN int ee_engine_udp_port(ee_engine_t *eng, int source_id);

/* Add a frame tick at hz frames per second (0 < hz <= 100000). Each frame's
 * ts_ns is its scheduled time, so a late frame is visible as a late event.
 * `subject` as for UDP. Returns the source id. Only while stopped. Control
 * thread. */
EE_EXTERN int ee_engine_add_tick(ee_engine_t *eng, double hz, const char *subject);

/*
 * Add a load generator: `threads` threads (1..64), each its own source with
 * consecutive ids starting at the returned one. Each thread emits `count`
 * events (0 = until stopped) of `payload_len` bytes (8..EE_PAYLOAD_MAX; the
 * first 8 bytes hold source_seq, little-endian) at `rate` events/s per thread
 * (0 = as fast as possible). Event n of a thread carries subject
 * subjects[n % nsubjects] (copied; nsubjects 0..EE_MAX_GEN_SUBJECTS, 0 for
 * none). Only while stopped. Control thread.
 */
EE_EXTERN int ee_engine_add_generator(ee_engine_t *eng, uint32_t threads, uint64_t rate,
                                      uint32_t payload_len, uint64_t count,
                                      const char *const *subjects, uint32_t nsubjects);

/* Number of generator threads that have emitted all their events since the
 * last start. Any thread. */
EE_EXTERN int ee_engine_generators_done(ee_engine_t *eng);

/* Start every source's thread. Returns 0, EE_EBUSY if already running,
 * EE_ETHREAD. Control thread. */
EE_EXTERN int ee_engine_start(ee_engine_t *eng);

/* Stop every source and join its thread; no source callback runs after it
 * returns. Idempotent. Returns 0 or EE_EDEADLK. Control thread. */
EE_EXTERN int ee_engine_stop(ee_engine_t *eng);

/* Allow (enabled != 0) or forbid ee_engine_inject. Control thread. */
EE_EXTERN int ee_engine_set_fault_injection(ee_engine_t *eng, int enabled);

/*
 * Make `count` careless calls of kind `fault` from a new thread, to every
 * registration (or, for EE_FAULT_STALE, to the most recently unregistered
 * one), and wait for them. Returns the number of calls made, EE_EPERM when
 * fault injection is off, EE_ENOENT when there is nobody to call, EE_EINVAL
 * for an unknown fault. Control thread.
 */
EE_EXTERN int64_t ee_engine_inject(ee_engine_t *eng, ee_fault_t fault, uint32_t count);

/* Copy the engine's counters into *out. Returns 0 or EE_EINVAL. Any thread. */
EE_EXTERN int ee_engine_stats(ee_engine_t *eng, ee_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* EVENGINE_H */
