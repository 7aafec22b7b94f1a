/* Callback cost and ring throughput, measured on the producer threads, the
 * way an engine thread experiences them. Each producer calls evb_on_event
 * directly with a 64-byte payload (what the engine's dispatch does, minus
 * the engine's own loop). Modes:
 *   timed:      every call timed with CLOCK_MONOTONIC; p50/p99/p99.9 after
 *               subtracting the median cost of an empty timed interval;
 *   throughput: no per-call timing, events/s over the whole run;
 * each with three consumers: "batching" drains and sleeps 20 us whenever the
 * ring is empty (the daemon's consumer likewise drains batches when woken and
 * sleeps otherwise); "polling" spins on evb_drain, the worst case for the
 * producer, since it reads every stamp before the producer writes it and so
 * costs the producer a cache-line transfer per event; "stalled" never drains:
 * the ring fills and every further call is a counted drop.
 * Prints markdown tables. Run on an otherwise idle machine; compare rows of
 * one run rather than numbers across runs. */
#define _GNU_SOURCE
#include "evbridge.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define KIND_GEN 3u

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct {
  void *token;
  uint32_t id;
  uint64_t n;
  int timed;
  uint32_t *lat;       /* n samples when timed */
  uint64_t elapsed_ns; /* whole loop */
} producer_t;

static atomic_int go, stop_consumer;
static evb_bridge_t *bridge;

static void *producer_main(void *arg) {
  producer_t *p = arg;
  uint8_t payload[64];
  memset(payload, 0x5a, sizeof payload);
  evb_event_t ev = {.kind = KIND_GEN, .source_id = p->id, .payload = payload, .len = sizeof payload};
  while (!atomic_load(&go)) {
  }
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < p->n; i++) {
    ev.source_seq = i;
    if (p->timed) {
      uint64_t a = now_ns();
      ev.ts_ns = a;
      evb_on_event(&ev, p->token);
      p->lat[i] = (uint32_t)(now_ns() - a);
    } else {
      ev.ts_ns = t0;
      evb_on_event(&ev, p->token);
    }
  }
  p->elapsed_ns = now_ns() - t0;
  return NULL;
}

static int consumer_sleeps; /* 1: sleep 20 us when the ring is empty */

static void *consumer_main(void *arg) {
  uint64_t *drained = arg;
  struct timespec nap = {0, 20000};
  while (!atomic_load(&stop_consumer)) {
    int64_t n = evb_drain(bridge, 1 << 20, 1 << 16, 0);
    if (n > 0) *drained += (uint64_t)n;
    else if (consumer_sleeps) nanosleep(&nap, NULL);
  }
  int64_t n;
  while ((n = evb_drain(bridge, 1 << 20, 1 << 16, 0)) > 0) *drained += (uint64_t)n;
  return NULL;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static uint32_t timer_overhead(void) {
  enum { N = 200000 };
  static uint32_t s[N];
  for (int i = 0; i < N; i++) {
    uint64_t a = now_ns();
    s[i] = (uint32_t)(now_ns() - a);
  }
  qsort(s, N, sizeof s[0], cmp_u32);
  return s[N / 2];
}

static long rss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static void run(int producers, int timed, int stalled, uint64_t per, uint32_t overhead) {
  bridge = evb_bridge_new(8u << 20, 65536, 1000000, 1u << KIND_GEN);
  void *token = evb_bridge_token_new(bridge);
  producer_t ps[8];
  pthread_t th[8], ct;
  uint64_t drained = 0;
  atomic_store(&go, 0);
  atomic_store(&stop_consumer, 0);
  for (int i = 0; i < producers; i++) {
    ps[i] = (producer_t){.token = token, .id = (uint32_t)i, .n = per, .timed = timed};
    ps[i].lat = timed ? calloc(per, sizeof(uint32_t)) : NULL;
    pthread_create(&th[i], NULL, producer_main, &ps[i]);
  }
  if (!stalled) pthread_create(&ct, NULL, consumer_main, &drained);
  long rss0 = rss_kib();
  atomic_store(&go, 1);
  uint64_t slowest = 0;
  for (int i = 0; i < producers; i++) {
    pthread_join(th[i], NULL);
    if (ps[i].elapsed_ns > slowest) slowest = ps[i].elapsed_ns;
  }
  atomic_store(&stop_consumer, 1);
  if (!stalled) pthread_join(ct, NULL);
  const evb_stats_t *s = evb_bridge_stats(bridge);
  uint64_t total = per * (uint64_t)producers;
  double secs = (double)slowest / 1e9;
  printf("| %d | %s | %s | %.1f | %.1f | %llu | %llu |", producers,
         stalled ? "stalled" : consumer_sleeps ? "batching" : "polling",
         timed ? "timed" : "flat out", total / secs / 1e6, s->accepted / secs / 1e6,
         (unsigned long long)s->accepted, (unsigned long long)s->dropped[0]);
  if (timed) {
    uint32_t *all = malloc(total * sizeof(uint32_t));
    for (int i = 0; i < producers; i++) memcpy(all + (uint64_t)i * per, ps[i].lat, per * sizeof(uint32_t));
    qsort(all, total, sizeof all[0], cmp_u32);
#define PCT(q) ((long)all[(uint64_t)((double)(total - 1) * (q))] - (long)overhead)
    printf(" %ld | %ld | %ld |", PCT(0.5), PCT(0.99), PCT(0.999));
    free(all);
  } else {
    printf(" | | |");
  }
  printf(" %ld |\n", rss_kib() - rss0);
  for (int i = 0; i < producers; i++) free(ps[i].lat);
  if (s->callbacks != total || s->accepted + s->dropped[0] != total || (!stalled && drained != s->accepted)) {
    fprintf(stderr, "accounting broken: callbacks %llu accepted %llu dropped %llu drained %llu\n",
            (unsigned long long)s->callbacks, (unsigned long long)s->accepted,
            (unsigned long long)s->dropped[0], (unsigned long long)drained);
    exit(1);
  }
  evb_token_revoke(token);
  evb_bridge_free(bridge);
}

int main(int argc, char **argv) {
  uint64_t per = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
  uint32_t overhead = timer_overhead();
  printf("timer overhead subtracted: %u ns (median of an empty CLOCK_MONOTONIC interval)\n\n", overhead);
  printf("| producers | consumer | mode | calls M/s | accepted M/s | accepted | dropped | p50 ns | p99 ns | p99.9 ns | RSS growth KiB |\n");
  printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  for (int mode = 0; mode < 3; mode++) {
    int stalled = mode == 2;
    consumer_sleeps = mode == 0;
    run(1, 1, stalled, per, overhead);
    run(1, 0, stalled, per, overhead);
    run(4, 1, stalled, per / 4, overhead);
    run(4, 0, stalled, per / 4, overhead);
  }
  return 0;
}
