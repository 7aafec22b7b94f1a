/* One C producer thread for the benchmarks against the alternatives (issue 5):
 * calls a callback N times with a 64-byte payload, timing one call in
 * SAMPLE_EVERY on the producer thread (CLOCK_MONOTONIC). Timing every call
 * cost two clock reads (~40 ns each on this VM) per call, which bounded the
 * rate into JS at about 5 M/s, not the bridge; the untimed calls carry the
 * timestamp of the last clock read (at most SAMPLE_EVERY - 1 calls old) as
 * their engine timestamp. Part 1: three entry points for the three
 * callback shapes the peers accept, as fast as the callee allows. Part 2:
 * bp_start_paced feeds the naive `ws` peer at a set rate, paced like the
 * engine's generator (sleep only when 50 µs ahead), passing the call's
 * CLOCK_MONOTONIC time so clients can measure latency on the same clock.
 * Start returns at once; poll bp_done. One producer at a time. */
#define _GNU_SOURCE
#include "evbridge.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One call in this many is timed (a power of two). */
#define SAMPLE_EVERY 16u

typedef void (*arr_void_cb)(double seq, const uint8_t *payload);
typedef int (*arr_int_cb)(double seq, const uint8_t *payload);
typedef int (*ptr_len_cb)(double seq, const uint8_t *payload, int len);
typedef void (*paced_cb)(double seq, double ts_ns, const uint8_t *payload);

enum { SHAPE_EVB, SHAPE_ARR_VOID, SHAPE_ARR_INT, SHAPE_PTR_LEN, SHAPE_PACED };

static struct {
  int shape;
  void *cb;
  void *userdata;
  uint64_t n;
  uint64_t rate; /* events/s for SHAPE_PACED */
  atomic_int stop;
  uint32_t *lat; /* ns of every SAMPLE_EVERY-th call, nlat entries; NULL when paced */
  uint64_t nlat;
  uint64_t run_no; /* counts starts: bp_pct_ns sorts once per run */
  uint64_t elapsed;
  atomic_int done;
  int joined;
  pthread_t thread;
} P;

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *run(void *arg) {
  (void)arg;
  uint8_t payload[64];
  memset(payload, 0x5a, sizeof payload);
  evb_event_t ev = {.kind = 3, .payload = payload, .len = sizeof payload};
  uint64_t t0 = now_ns();
  uint64_t spacing = P.rate ? 1000000000u / P.rate : 0;
  uint64_t a = t0;
  for (uint64_t i = 0; i < P.n; i++) {
    memcpy(payload, &i, sizeof i);
    int timed = P.shape == SHAPE_PACED || (i & (SAMPLE_EVERY - 1)) == 0;
    if (timed) a = now_ns();
    if (P.shape == SHAPE_PACED) {
      if ((i & 255) == 0 && atomic_load_explicit(&P.stop, memory_order_relaxed)) break;
      uint64_t due = t0 + i * spacing;
      if (due > a + 50000) {
        struct timespec ts = {.tv_sec = (time_t)(due / 1000000000u), .tv_nsec = (long)(due % 1000000000u)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        a = now_ns();
      }
      ((paced_cb)P.cb)((double)i, (double)a, payload);
      continue;
    }
    switch (P.shape) {
      case SHAPE_EVB: ev.source_seq = i; ev.ts_ns = a; ((evb_event_cb)P.cb)(&ev, P.userdata); break;
      case SHAPE_ARR_VOID: ((arr_void_cb)P.cb)((double)i, payload); break;
      case SHAPE_ARR_INT: ((arr_int_cb)P.cb)((double)i, payload); break;
      default: ((ptr_len_cb)P.cb)((double)i, payload, (int)sizeof payload); break;
    }
    if (timed) P.lat[i / SAMPLE_EVERY] = (uint32_t)(now_ns() - a);
  }
  P.elapsed = now_ns() - t0;
  atomic_store(&P.done, 1);
  return NULL;
}

static int start(int shape, void *cb, void *userdata, uint64_t n) {
  free(P.lat);
  P.nlat = (n + SAMPLE_EVERY - 1) / SAMPLE_EVERY;
  P.run_no++;
  P.lat = shape == SHAPE_PACED ? NULL : calloc(P.nlat ? P.nlat : 1, sizeof(uint32_t));
  if ((shape != SHAPE_PACED && !P.lat) || !cb) return -1;
  atomic_store(&P.stop, 0);
  P.shape = shape;
  P.cb = cb;
  P.userdata = userdata;
  P.n = n;
  atomic_store(&P.done, 0);
  P.joined = 0;
  return pthread_create(&P.thread, NULL, run, NULL) == 0 ? 0 : -1;
}

__attribute__((visibility("default"))) int bp_start_evb(void *cb, void *userdata, double n) { return start(SHAPE_EVB, cb, userdata, (uint64_t)n); }
__attribute__((visibility("default"))) int bp_start_arr(void *cb, int returns_int, double n) { return start(returns_int ? SHAPE_ARR_INT : SHAPE_ARR_VOID, cb, NULL, (uint64_t)n); }
__attribute__((visibility("default"))) int bp_start_ptr_len(void *cb, double n) { return start(SHAPE_PTR_LEN, cb, NULL, (uint64_t)n); }
/* Calls cb(seq, ts_ns, payload[64]) `rate` times a second until n calls or bp_stop. */
__attribute__((visibility("default"))) int bp_start_paced(void *cb, double rate, double n) {
  P.rate = rate > 0 ? (uint64_t)rate : 0;
  return start(SHAPE_PACED, cb, NULL, (uint64_t)n);
}
/* Asks a paced producer to stop (within 256 calls); poll bp_done. */
__attribute__((visibility("default"))) void bp_stop(void) { atomic_store(&P.stop, 1); }
__attribute__((visibility("default"))) int bp_done(void) {
  if (!atomic_load(&P.done)) return 0;
  if (!P.joined) pthread_join(P.thread, NULL);
  P.joined = 1;
  return 1;
}
__attribute__((visibility("default"))) double bp_elapsed_ns(void) { return (double)P.elapsed; }

static int cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}
/* Percentile q (0..1) of the timed calls' times, ns; sorts once. */
__attribute__((visibility("default"))) double bp_pct_ns(double q) {
  static uint64_t sorted_run;
  if (!P.lat) return 0; /* paced runs keep no per-call times */
  if (sorted_run != P.run_no) {
    qsort(P.lat, P.nlat, sizeof P.lat[0], cmp);
    sorted_run = P.run_no;
  }
  return P.nlat ? (double)P.lat[(uint64_t)((double)(P.nlat - 1) * q)] : 0;
}
