/* Tests of libevengine on its own (libuv style: callbacks bump counters, the
 * test checks them at the end). Prints one line per test and a closing
 * "engine: N passed, N failed". Waits use condition variables with a
 * deadline, never a bare sleep. */
#define _GNU_SOURCE
#include "evengine.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int failures;
#define CHECK(cond)                                                      \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf(stderr, "  check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                        \
      return;                                                            \
    }                                                                    \
  } while (0)

/* A counter that a test can wait on. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t n;
} waiter_t;

static void waiter_init(waiter_t *w) {
  pthread_mutex_init(&w->mu, NULL);
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &a);
  w->n = 0;
}
static void waiter_bump(waiter_t *w) {
  pthread_mutex_lock(&w->mu);
  w->n++;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}
/* Waits until n >= target or timeout_ms passes; returns n. */
static uint64_t waiter_wait(waiter_t *w, uint64_t target, int timeout_ms) {
  uint64_t deadline = ee_now_ns() + (uint64_t)timeout_ms * 1000000u;
  struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000u), .tv_nsec = (long)(deadline % 1000000000u)};
  pthread_mutex_lock(&w->mu);
  while (w->n < target && pthread_cond_timedwait(&w->cv, &w->mu, &ts) == 0) {
  }
  uint64_t n = w->n;
  pthread_mutex_unlock(&w->mu);
  return n;
}

/* ---- registration ------------------------------------------------------ */

static _Atomic uint64_t counted;
static int count_cb(const ee_event_t *ev, void *ud) {
  (void)ev;
  atomic_fetch_add(&counted, 1);
  atomic_fetch_add((_Atomic uint64_t *)ud, 1);
  return 0;
}

static void test_register_unregister(void) {
  ee_engine_t *eng = ee_engine_new();
  CHECK(eng);
  CHECK(ee_engine_register(eng, NULL, NULL, EE_KIND_MASK_ALL) == EE_EINVAL);
  CHECK(ee_engine_register(eng, count_cb, NULL, 0) == EE_EINVAL);
  _Atomic uint64_t a = 0, b = 0;
  int64_t ida = ee_engine_register(eng, count_cb, &a, 1u << EE_KIND_GEN);
  int64_t idb = ee_engine_register(eng, count_cb, &b, 1u << EE_KIND_TICK); /* never matches */
  CHECK(ida > 0 && idb > 0 && ida != idb);
  CHECK(ee_engine_add_generator(eng, 2, 0, 16, 5000) >= 0);
  CHECK(ee_engine_start(eng) == 0);
  CHECK(ee_engine_start(eng) == EE_EBUSY);
  while (ee_engine_generators_done(eng) < 2) sched_yield();
  CHECK(ee_engine_stop(eng) == 0);
  CHECK(ee_engine_stop(eng) == 0); /* idempotent */
  CHECK(atomic_load(&a) == 10000);
  CHECK(atomic_load(&b) == 0);
  CHECK(ee_engine_unregister(eng, ida) == 0);
  CHECK(ee_engine_unregister(eng, ida) == EE_ENOENT);
  ee_stats_t st;
  CHECK(ee_engine_stats(eng, &st) == 0 && st.dispatched == 10000);
  ee_engine_free(eng);
  ee_engine_free(NULL);
}

/* ---- unregister quiescence --------------------------------------------- */

static _Atomic int inside;
static _Atomic uint64_t slow_calls;
static _Atomic int deadlk_seen;
static ee_engine_t *slow_eng;
static int64_t slow_id;
static int slow_cb(const ee_event_t *ev, void *ud) {
  (void)ev;
  (void)ud;
  atomic_store(&inside, 1);
  if (ee_engine_unregister(slow_eng, slow_id) == EE_EDEADLK) atomic_store(&deadlk_seen, 1);
  struct timespec d = {0, 200000}; /* 200 us: widen the window a racy unregister would hit */
  nanosleep(&d, NULL);
  atomic_fetch_add(&slow_calls, 1);
  atomic_store(&inside, 0);
  return 0;
}

static void test_unregister_quiescence(void) {
  ee_engine_t *eng = slow_eng = ee_engine_new();
  CHECK(eng);
  slow_id = ee_engine_register(eng, slow_cb, NULL, EE_KIND_MASK_ALL);
  CHECK(slow_id > 0);
  CHECK(ee_engine_add_generator(eng, 4, 0, 16, 0) >= 0);
  CHECK(ee_engine_start(eng) == 0);
  while (atomic_load(&slow_calls) < 20) sched_yield();
  CHECK(ee_engine_unregister(eng, slow_id) == 0);
  /* After unregister returns, nobody is inside and no call follows. */
  CHECK(atomic_load(&inside) == 0);
  uint64_t frozen = atomic_load(&slow_calls);
  for (int i = 0; i < 2000; i++) sched_yield(); /* generators keep running meanwhile */
  CHECK(atomic_load(&slow_calls) == frozen);
  CHECK(atomic_load(&deadlk_seen) == 1);
  ee_engine_free(eng);
}

/* ---- UDP ---------------------------------------------------------------- */

#define UDP_N 200
static waiter_t udp_w;
static size_t udp_len[UDP_N];
static uint8_t udp_first[UDP_N];
static uint64_t udp_seq[UDP_N];
static int udp_bad;
static int udp_cb(const ee_event_t *ev, void *ud) {
  (void)ud;
  uint64_t i = udp_w.n;
  if (ev->kind != EE_KIND_UDP || i >= UDP_N) {
    udp_bad++;
  } else {
    udp_len[i] = ev->len;
    udp_first[i] = ev->len ? ((const uint8_t *)ev->payload)[0] : 0;
    udp_seq[i] = ev->source_seq;
    if (ev->len && ((const uint8_t *)ev->payload)[ev->len - 1] != (uint8_t)(i * 3)) udp_bad++;
  }
  waiter_bump(&udp_w);
  return 0;
}

static size_t udp_size(int i) {
  if (i == 0) return 0;
  if (i == 1) return EE_PAYLOAD_MAX;
  return (size_t)(i * 97) % 2000 + 1;
}

static void test_udp_source(void) {
  waiter_init(&udp_w);
  ee_engine_t *eng = ee_engine_new();
  CHECK(eng);
  int src = ee_engine_add_udp(eng, "127.0.0.1", 0);
  CHECK(src >= 0);
  int port = ee_engine_udp_port(eng, src);
  CHECK(port > 0);
  CHECK(ee_engine_add_udp(eng, "127.0.0.1", (uint16_t)port) == EE_EADDR); /* in use */
  CHECK(ee_engine_add_udp(eng, "not a host name .", 1) == EE_EADDR);
  CHECK(ee_engine_register(eng, udp_cb, NULL, 1u << EE_KIND_UDP) > 0);
  CHECK(ee_engine_start(eng) == 0);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int big = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  static uint8_t buf[EE_PAYLOAD_MAX];
  for (int i = 0; i < UDP_N; i++) {
    size_t n = udp_size(i);
    memset(buf, i, n);
    if (n) buf[n - 1] = (uint8_t)(i * 3);
    CHECK(sendto(fd, buf, n, 0, (struct sockaddr *)&to, sizeof to) == (ssize_t)n);
    /* Pace by receipt so the receive buffer never overflows. */
    CHECK(waiter_wait(&udp_w, (uint64_t)i + 1, 5000) == (uint64_t)i + 1);
  }
  close(fd);
  CHECK(ee_engine_stop(eng) == 0);
  CHECK(udp_bad == 0);
  for (int i = 0; i < UDP_N; i++) {
    CHECK(udp_len[i] == udp_size(i));
    CHECK(udp_seq[i] == (uint64_t)i);
    if (udp_len[i] > 1) CHECK(udp_first[i] == (uint8_t)i);
  }
  ee_engine_free(eng);
}

/* ---- tick rate ----------------------------------------------------------- */

#define TICKS 50
static waiter_t tick_w;
static uint64_t tick_ts[TICKS];
static uint64_t tick_frame[TICKS];
static int tick_cb(const ee_event_t *ev, void *ud) {
  (void)ud;
  if (tick_w.n < TICKS && ev->len == sizeof(ee_tick_payload_t)) {
    ee_tick_payload_t p;
    memcpy(&p, ev->payload, sizeof p);
    tick_ts[tick_w.n] = ev->ts_ns;
    tick_frame[tick_w.n] = p.frame;
  }
  waiter_bump(&tick_w);
  return 0;
}

static void test_tick_rate(void) {
  waiter_init(&tick_w);
  ee_engine_t *eng = ee_engine_new();
  CHECK(eng);
  CHECK(ee_engine_add_tick(eng, 0) == EE_EINVAL);
  CHECK(ee_engine_add_tick(eng, 200.0) >= 0);
  CHECK(ee_engine_register(eng, tick_cb, NULL, 1u << EE_KIND_TICK) > 0);
  uint64_t t0 = ee_now_ns();
  CHECK(ee_engine_start(eng) == 0);
  CHECK(waiter_wait(&tick_w, TICKS, 10000) >= TICKS);
  uint64_t elapsed = ee_now_ns() - t0;
  CHECK(ee_engine_stop(eng) == 0);
  /* Frames are scheduled on absolute deadlines: 50 frames at 200 Hz cannot
   * finish before 250 ms; the upper bound only guards against a stuck clock
   * on a loaded machine. */
  CHECK(elapsed >= 250000000u - 1000000u);
  CHECK(elapsed < 2000000000u);
  for (int i = 1; i < TICKS; i++) {
    CHECK(tick_frame[i] == tick_frame[i - 1] + 1);
    CHECK(tick_ts[i] - tick_ts[i - 1] == 5000000u); /* the scheduled period */
  }
  ee_engine_free(eng);
}

/* ---- fault injection ---------------------------------------------------- */

static _Atomic int null_ev, null_pl, big, odd_kind, late;
static int fault_cb(const ee_event_t *ev, void *ud) {
  (void)ud;
  if (!ev) return atomic_fetch_add(&null_ev, 1), -1;
  if (!ev->payload && ev->len) return atomic_fetch_add(&null_pl, 1), -1;
  if (ev->len > EE_PAYLOAD_MAX) return atomic_fetch_add(&big, 1), -1;
  if (ev->kind == EE_FAULT_KIND) return atomic_fetch_add(&odd_kind, 1), -1;
  if (ee_now_ns() - ev->ts_ns >= 1000000000u) atomic_fetch_add(&late, 1);
  return 0;
}

static void test_fault_injection(void) {
  ee_engine_t *eng = ee_engine_new();
  CHECK(eng);
  CHECK(ee_engine_inject(eng, EE_FAULT_NULL_EVENT, 1) == EE_EPERM);
  CHECK(ee_engine_set_fault_injection(eng, 1) == 0);
  CHECK(ee_engine_inject(eng, EE_FAULT_NULL_EVENT, 1) == EE_ENOENT); /* nobody registered */
  CHECK(ee_engine_inject(eng, EE_FAULT_STALE, 1) == EE_ENOENT);
  CHECK(ee_engine_inject(eng, (ee_fault_t)42, 1) == EE_EINVAL);
  _Atomic uint64_t stale_hits = 0;
  int64_t id = ee_engine_register(eng, fault_cb, NULL, EE_KIND_MASK_ALL);
  CHECK(id > 0);
  CHECK(ee_engine_inject(eng, EE_FAULT_NULL_EVENT, 3) == 3);
  CHECK(ee_engine_inject(eng, EE_FAULT_NULL_PAYLOAD, 4) == 4);
  CHECK(ee_engine_inject(eng, EE_FAULT_OVERSIZE, 5) == 5);
  CHECK(ee_engine_inject(eng, EE_FAULT_UNKNOWN_KIND, 6) == 6);
  CHECK(ee_engine_inject(eng, EE_FAULT_LATE, 7) == 7);
  CHECK(null_ev == 3 && null_pl == 4 && big == 5 && odd_kind == 6 && late == 7);
  int64_t id2 = ee_engine_register(eng, count_cb, &stale_hits, EE_KIND_MASK_ALL);
  CHECK(ee_engine_unregister(eng, id2) == 0);
  CHECK(ee_engine_inject(eng, EE_FAULT_STALE, 9) == 9); /* the unregistered one, on purpose */
  CHECK(atomic_load(&stale_hits) == 9);
  ee_stats_t st;
  CHECK(ee_engine_stats(eng, &st) == 0 && st.injected == 3 + 4 + 5 + 6 + 7 + 9);
  CHECK(ee_engine_unregister(eng, id) == 0);
  ee_engine_free(eng);
}

static void test_errors(void) {
  CHECK(ee_abi_version() == EE_ABI_VERSION);
  CHECK(strcmp(ee_err_name(EE_EBUSY), "EBUSY") == 0);
  CHECK(strcmp(ee_strerror(EE_EADDR), "cannot resolve or bind the address") == 0);
  CHECK(strcmp(ee_err_name(12345), "UNKNOWN") == 0);
  CHECK(ee_engine_start(NULL) == EE_EINVAL);
  CHECK(ee_engine_stop(NULL) == EE_EINVAL);
}

int main(void) {
  struct {
    const char *name;
    void (*fn)(void);
  } tests[] = {
      {"register_unregister", test_register_unregister},
      {"unregister_quiescence", test_unregister_quiescence},
      {"udp_source", test_udp_source},
      {"tick_rate", test_tick_rate},
      {"fault_injection", test_fault_injection},
      {"errors", test_errors},
  };
  int passed = 0, failed = 0;
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    int before = failures;
    tests[i].fn();
    int ok = failures == before;
    printf("%s %s\n", ok ? "ok" : "not ok", tests[i].name);
    ok ? passed++ : failed++;
  }
  printf("engine: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
