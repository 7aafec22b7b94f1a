/* Per-packet cost on the pcap adapter's capture thread: the time of each
 * call from the adapter's packet handler into the bridge (evb_on_event:
 * validate, copy into the ring, publish), measured on that thread.
 *
 * This program is the adapter's host, as the daemon would be, with one
 * difference: it registers a wrapper callback that reads CLOCK_MONOTONIC
 * around the real bridge callback. A consumer thread drains the ring in
 * batches and sleeps 20 us when it is empty, as the daemon's drain does.
 * The file is replayed as fast as libpcap reads it.
 *
 * Usage: pcap_callback PLUGIN.so FILE.pcap PACKETS
 * Prints one markdown row: packets, p50, p99, p99.9 of the callback (the
 * median cost of an empty timed interval subtracted), and packets/s over
 * the replay (first to last callback). */
#define _GNU_SOURCE
#include "evb_plugin.h"
#include "evbridge.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The host's configuration: only "file" is present, every other key absent
 * (the adapter's defaults apply). */
static const char *g_file;
static int cfg_string(const evb_config_t *c, const char *path, const char **out, size_t *len) {
  (void)c;
  if (strcmp(path, "file") != 0) return 0;
  *out = g_file;
  *len = strlen(g_file);
  return 1;
}
static int cfg_number(const evb_config_t *c, const char *p, double *o) {
  (void)c, (void)p, (void)o;
  return 0;
}
static int cfg_bool(const evb_config_t *c, const char *p, int *o) {
  (void)c, (void)p, (void)o;
  return 0;
}
static int cfg_length(const evb_config_t *c, const char *p, size_t *o) {
  (void)c, (void)p, (void)o;
  return 0;
}
static int subject_ok(const char *s, size_t n) {
  (void)s;
  return n > 0 && n <= 255;
}

typedef struct {
  void *token;
  uint32_t *lat;
  uint64_t cap, n, first, last;
} timing_t;

/* Called on the capture thread for every packet. */
static int timed_cb(const evb_event_t *ev, void *userdata) {
  timing_t *t = userdata;
  uint64_t a = now_ns();
  int rc = evb_on_event(ev, t->token);
  uint64_t b = now_ns();
  if (t->n == 0) t->first = a;
  t->last = b;
  if (t->n < t->cap) t->lat[t->n] = (uint32_t)(b - a);
  t->n++;
  return rc;
}

static atomic_int stop;
static evb_bridge_t *bridge;
static atomic_ulong drained;

static void *consumer(void *arg) {
  (void)arg;
  struct timespec nap = {0, 20000};
  while (!atomic_load(&stop)) {
    int64_t n = evb_drain(bridge, 1 << 20, 4096, 0);
    if (n > 0) atomic_fetch_add(&drained, (unsigned long)n);
    else nanosleep(&nap, NULL);
  }
  int64_t n;
  while ((n = evb_drain(bridge, 1 << 20, 4096, 0)) > 0) atomic_fetch_add(&drained, (unsigned long)n);
  return NULL;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s PLUGIN.so FILE.pcap PACKETS\n", argv[0]);
    return 2;
  }
  g_file = argv[2];
  uint64_t want = strtoull(argv[3], NULL, 10);
  void *so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!so) return fprintf(stderr, "dlopen: %s\n", dlerror()), 1;
  const evb_plugin_t *(*entry)(void) = (const evb_plugin_t *(*)(void))dlsym(so, EVB_PLUGIN_ENTRY_NAME);
  const evb_plugin_t *p = entry ? entry() : NULL;
  if (!p || p->abi_version >> 16 != EVB_PLUGIN_ABI_MAJOR) return fprintf(stderr, "not an evbridge plugin of ABI %d\n", EVB_PLUGIN_ABI_MAJOR), 1;
  evb_host_t host = {.size = sizeof host, .config_string = cfg_string, .config_number = cfg_number, .config_bool = cfg_bool, .config_length = cfg_length, .subject_valid = subject_ok};
  char json[4096], err[512] = "";
  snprintf(json, sizeof json, "{\"file\":\"%s\"}", g_file);
  void *eng = NULL;
  if (p->create(&host, NULL, json, strlen(json), &eng, err, sizeof err) != 0) return fprintf(stderr, "create: %s\n", err), 1;
  const evb_plugin_kind_t *kinds;
  uint32_t nk = p->kinds(eng, &kinds), mask = 0;
  for (uint32_t i = 0; i < nk; i++) mask |= 1u << kinds[i].number;

  bridge = evb_bridge_new(64u << 20, 65536, 1000000000u, mask);
  timing_t t = {.token = evb_bridge_token_new(bridge), .cap = want, .lat = calloc(want, sizeof(uint32_t))};
  if (!bridge || !t.token || !t.lat) return fprintf(stderr, "bridge: %s\n", evb_last_error()), 1;
  int64_t id = p->register_callback(eng, timed_cb, &t, mask);
  pthread_t ct;
  pthread_create(&ct, NULL, consumer, NULL);
  if (id <= 0 || p->start(eng) != 0) return fprintf(stderr, "register or start failed\n"), 1;
  uint64_t deadline = now_ns() + 60000000000u;
  while (atomic_load(&drained) < want && now_ns() < deadline) {
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
  p->stop(eng);
  p->unregister_callback(eng, id);
  atomic_store(&stop, 1);
  pthread_join(ct, NULL);

  /* The cost of an empty timed interval, to subtract. */
  uint32_t empty[100001];
  for (int i = 0; i < 100001; i++) {
    uint64_t a = now_ns();
    empty[i] = (uint32_t)(now_ns() - a);
  }
  qsort(empty, 100001, sizeof(uint32_t), cmp_u32);
  uint32_t overhead = empty[50000];
  uint64_t n = t.n < t.cap ? t.n : t.cap;
  qsort(t.lat, n, sizeof(uint32_t), cmp_u32);
  uint64_t accepted = evb_bridge_stats(bridge)->accepted;
  double q[3] = {0.5, 0.99, 0.999};
  printf("| %llu | %llu |", (unsigned long long)t.n, (unsigned long long)accepted);
  for (int i = 0; i < 3; i++) {
    uint32_t v = n ? t.lat[(uint64_t)(q[i] * (double)(n - 1))] : 0;
    printf(" %u ns |", v > overhead ? v - overhead : 0);
  }
  double secs = (double)(t.last - t.first) / 1e9;
  printf(" %.0f | %u ns |\n", secs > 0 ? (double)t.n / secs : 0, overhead);
  p->free(eng);
  evb_bridge_free(bridge);
  free(t.lat);
  return accepted == want ? 0 : 1;
}
