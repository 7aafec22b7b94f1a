/* One C producer thread for the callback-path comparison (issue 5, part 1):
 * calls a callback N times with a 64-byte payload, timing every call on the
 * producer thread (CLOCK_MONOTONIC). Three entry points for the three
 * callback shapes the peers accept. Start returns at once; poll bp_done. */
#define _GNU_SOURCE
#include "evbridge.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void (*arr_void_cb)(double seq, const uint8_t *payload);
typedef int (*arr_int_cb)(double seq, const uint8_t *payload);
typedef int (*ptr_len_cb)(double seq, const uint8_t *payload, int len);

enum { SHAPE_EVB, SHAPE_ARR_VOID, SHAPE_ARR_INT, SHAPE_PTR_LEN };

static struct {
  int shape;
  void *cb;
  void *userdata;
  uint64_t n;
  uint32_t *lat;
  uint64_t elapsed;
  atomic_int done;
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
  for (uint64_t i = 0; i < P.n; i++) {
    memcpy(payload, &i, sizeof i);
    uint64_t a = now_ns();
    switch (P.shape) {
      case SHAPE_EVB: ev.source_seq = i; ev.ts_ns = a; ((evb_event_cb)P.cb)(&ev, P.userdata); break;
      case SHAPE_ARR_VOID: ((arr_void_cb)P.cb)((double)i, payload); break;
      case SHAPE_ARR_INT: ((arr_int_cb)P.cb)((double)i, payload); break;
      default: ((ptr_len_cb)P.cb)((double)i, payload, (int)sizeof payload); break;
    }
    P.lat[i] = (uint32_t)(now_ns() - a);
  }
  P.elapsed = now_ns() - t0;
  atomic_store(&P.done, 1);
  return NULL;
}

static int start(int shape, void *cb, void *userdata, uint64_t n) {
  free(P.lat);
  P.lat = calloc(n ? n : 1, sizeof(uint32_t));
  if (!P.lat || !cb) return -1;
  P.shape = shape;
  P.cb = cb;
  P.userdata = userdata;
  P.n = n;
  atomic_store(&P.done, 0);
  return pthread_create(&P.thread, NULL, run, NULL) == 0 ? 0 : -1;
}

__attribute__((visibility("default"))) int bp_start_evb(void *cb, void *userdata, double n) { return start(SHAPE_EVB, cb, userdata, (uint64_t)n); }
__attribute__((visibility("default"))) int bp_start_arr(void *cb, int returns_int, double n) { return start(returns_int ? SHAPE_ARR_INT : SHAPE_ARR_VOID, cb, NULL, (uint64_t)n); }
__attribute__((visibility("default"))) int bp_start_ptr_len(void *cb, double n) { return start(SHAPE_PTR_LEN, cb, NULL, (uint64_t)n); }
__attribute__((visibility("default"))) int bp_done(void) {
  static int joined;
  if (!atomic_load(&P.done)) return 0;
  if (!joined) pthread_join(P.thread, NULL);
  joined = 1;
  return 1;
}
__attribute__((visibility("default"))) double bp_elapsed_ns(void) { return (double)P.elapsed; }

static int cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}
/* Percentile q (0..1) of the per-call times, ns; sorts once. */
__attribute__((visibility("default"))) double bp_pct_ns(double q) {
  static uint64_t sorted_n;
  if (sorted_n != P.n) {
    qsort(P.lat, P.n, sizeof P.lat[0], cmp);
    sorted_n = P.n;
  }
  return P.n ? (double)P.lat[(uint64_t)((double)(P.n - 1) * q)] : 0;
}
