/* Drives an engine plugin and the bridge together under AddressSanitizer
 * and UBSan: the plugin (built with ASan, loaded by path through
 * evb_engine_load) makes real generator and UDP traffic and every
 * fault-injection case, the bridge panics on demand, a consumer reads
 * records in place, and the shutdown follows the documented order (stop,
 * detach, drain, free the bridge), followed by stale calls from a retired
 * registration and a final free. Exits non-zero on any failed check; ASan
 * aborts on any memory error.
 *
 * Usage: asan_harness PLUGIN.so
 * The harness is one test: it prints "asan: 1 passed, 0 failed" when every
 * check held, "asan: 0 passed, 1 failed" otherwise. */
#define _GNU_SOURCE
#include "evbridge.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;
#define CHECK(cond)                                                              \
  do {                                                                           \
    if (cond) passed++;                                                          \
    else {                                                                       \
      failed++;                                                                  \
      fprintf(stderr, "check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                            \
  } while (0)

static uint64_t u64at(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t u32at(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Drains everything ready; checks each record in place. Returns records. */
static uint64_t drain(evb_bridge_t *b, uint64_t *next_seq) {
  const uint8_t *ring = evb_ring_data(b);
  const evb_drain_t *d = evb_drain_result(b);
  uint64_t total = 0;
  int64_t n;
  while ((n = evb_drain(b, 1 << 20, 4096, 0)) > 0) {
    const uint8_t *r = ring + d->offset;
    for (int64_t i = 0; i < n; i++) {
      const evb_record_header_t *h = (const evb_record_header_t *)r;
      uint32_t rec = u32at(r), len = u32at(r + offsetof(evb_record_header_t, payload_len));
      if (h->seq != (*next_seq)++) { CHECK(!"sequence in order"); return total; }
      if (h->kind == 3 && len >= 8 && u64at(r + EVB_RECORD_HEADER_LEN) != h->source_seq) CHECK(!"payload carries source_seq");
      if (h->subject_len && memchr(r + EVB_RECORD_HEADER_LEN + len, '.', h->subject_len) == NULL) CHECK(!"subject after payload");
      r += rec;
    }
    CHECK((uint64_t)(r - (ring + d->offset)) == d->len);
    total += (uint64_t)n;
  }
  return total;
}

static int64_t gens_done(evb_engine_t *e) { return evb_engine_debug(e, "generators_done", 0); }

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PLUGIN.so\n", argv[0]);
    return 2;
  }
  const char *cfg = "{\"udp\":{\"port\":0,\"subject\":\"net.in\"},\"tick\":{\"hz\":1000},"
                    "\"generator\":{\"threads\":4,\"count\":20000,\"subjects\":[\"md.a\",\"md.b\"]},\"faultInjection\":true}";
  CHECK(evb_engine_load("/nonexistent.so", "{}", 2) == NULL && evb_last_status() == EVB_STATUS_PLUGIN_NOT_FOUND);
  const char *bad = "{\"udp\":{\"port\":70000}}";
  CHECK(evb_engine_load(argv[1], bad, strlen(bad)) == NULL && evb_last_status() == EVB_STATUS_PLUGIN_CREATE);
  CHECK(strstr(evb_last_error(), "udp.port must be a whole number") != NULL);
  evb_engine_t *eng = evb_engine_load(argv[1], cfg, strlen(cfg));
  if (!eng) fprintf(stderr, "load: %s\n", evb_last_error());
  CHECK(eng != NULL);
  if (!eng) return 1;
  const char *desc = evb_engine_describe(eng);
  CHECK(desc && strstr(desc, "\"kinds\":[{\"name\":\"udp\",\"number\":1}"));
  evb_bridge_t *b = evb_bridge_new(1u << 20, 65507, 1000000, (1u << 1) | (1u << 2) | (1u << 3));
  CHECK(b != NULL);
  CHECK(evb_engine_retire_registration(eng, b) == EVB_STATUS_OK); /* for the stale calls below */
  CHECK(evb_engine_attach(eng, b) == EVB_STATUS_OK);
  CHECK(evb_engine_attach(eng, b) == EVB_STATUS_BAD_STATE);
  CHECK(evb_engine_start(eng) == EVB_STATUS_OK);

  /* The UDP port is in the description's sources ("127.0.0.1:PORT"). */
  const char *at = strstr(desc, "127.0.0.1:");
  CHECK(at != NULL);
  int port = at ? atoi(at + strlen("127.0.0.1:")) : 0;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  static uint8_t big[65507];
  memset(big, 0xab, sizeof big);
  uint64_t seq = 1, got = 0;
  for (int i = 0; i < 50; i++) {
    sendto(fd, big, i == 0 ? sizeof big : (size_t)i * 13, 0, (struct sockaddr *)&to, sizeof to);
    got += drain(b, &seq);
  }
  close(fd);
  CHECK(evb_bridge_fault_panic(b, 5) == EVB_STATUS_OK);
  const char *faults[] = {"fault_null_event", "fault_null_payload", "fault_oversize", "fault_unknown_kind",
                          "fault_late", "fault_bad_subject"};
  for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) CHECK(evb_engine_debug(eng, faults[i], 10) == 10);
  CHECK(evb_engine_debug(eng, "no_such_command", 1) == EVB_STATUS_PLUGIN_CALL);
  CHECK(evb_engine_debug(eng, "Bad Name", 1) == EVB_STATUS_INVALID_ARGUMENT);
  uint64_t deadline = now_ms() + 20000;
  while (gens_done(eng) < 4 && now_ms() < deadline) got += drain(b, &seq);
  CHECK(gens_done(eng) == 4);

  /* Shutdown in order: stop, detach, drain, free the bridge. */
  CHECK(evb_engine_stop(eng) == EVB_STATUS_OK);
  CHECK(evb_engine_detach(eng) == EVB_STATUS_OK);
  got += drain(b, &seq);
  CHECK(evb_engine_debug(eng, "fault_stale", 10) == 10); /* the retired registration */
  const evb_stats_t *s = evb_bridge_stats(b);
  uint64_t invalid = 0, dropped = 0;
  for (int i = 0; i < EVB_INVALID_REASONS; i++) invalid += s->invalid[i];
  for (int i = 0; i < EVB_DROP_REASONS; i++) dropped += s->dropped[i];
  CHECK(s->callbacks == s->accepted + dropped + invalid + s->stale + s->panicked);
  CHECK(s->accepted == s->delivered && s->delivered == got);
  CHECK(s->panicked == 5 && s->stale == 10 && invalid == 50 && s->late >= 10);
  CHECK(s->invalid[EVB_INVALID_REASON_BAD_SUBJECT] == 10);
  CHECK(evb_panic_message_next()[0] != '\0');
  const uint64_t *counters = evb_engine_counters(eng);
  CHECK(counters && counters[2] == 70); /* injected_total: 6 faults x 10 + 10 stale */
  fprintf(stderr, "callbacks %llu accepted %llu dropped %llu late %llu\n", (unsigned long long)s->callbacks,
          (unsigned long long)s->accepted, (unsigned long long)dropped, (unsigned long long)s->late);
  evb_bridge_free(b);
  /* After the bridge is freed its tokens' slots are empty: calls are refused, not followed. */
  CHECK(evb_engine_debug(eng, "fault_stale", 3) == 3);
  evb_engine_free(eng);
  evb_bridge_free(NULL);
  evb_engine_free(NULL);
  printf("asan harness: %d checks held, %d failed\n", passed, failed);
  printf("asan: %d passed, %d failed\n", failed ? 0 : 1, failed ? 1 : 0);
  return failed ? 1 : 0;
}
