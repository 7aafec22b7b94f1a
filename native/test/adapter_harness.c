/* Drives any engine plugin and the bridge under AddressSanitizer and UBSan:
 * loads PLUGIN with CONFIG (JSON), attaches, starts, drains until N events
 * arrived (or 30 s passed), checks each record in place (dense seqs,
 * lengths inside the record, subjects valid UTF-8 of the length given),
 * then stops, detaches, frees, and checks the accounting.
 * Usage: adapter_harness PLUGIN.so CONFIG N
 * Prints "asan: 1 passed, 0 failed" when every check held. */
#define _GNU_SOURCE
#include "evbridge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int passed, failed;
#define CHECK(cond)                                                              \
  do {                                                                           \
    if (cond) passed++;                                                          \
    else {                                                                       \
      failed++;                                                                  \
      fprintf(stderr, "check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                            \
  } while (0)

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s PLUGIN.so CONFIG N\n", argv[0]);
    return 2;
  }
  uint64_t want = strtoull(argv[3], NULL, 10);
  evb_engine_t *eng = evb_engine_load(argv[1], argv[2], strlen(argv[2]));
  if (!eng) fprintf(stderr, "load: %s\n", evb_last_error());
  CHECK(eng != NULL);
  if (!eng) return 1;
  evb_bridge_t *b = evb_bridge_new(1u << 22, 65536, 1000000000, 0xfffffffeu);
  CHECK(b && evb_engine_attach(eng, b) == EVB_STATUS_OK && evb_engine_start(eng) == EVB_STATUS_OK);
  const uint8_t *ring = evb_ring_data(b);
  const evb_drain_t *d = evb_drain_result(b);
  uint64_t got = 0, seq = 1, deadline = now_ms() + 30000;
  while (got < want && now_ms() < deadline) {
    int64_t n = evb_drain(b, 1 << 20, 4096, 0);
    const uint8_t *r = ring + d->offset;
    for (int64_t i = 0; i < n; i++) {
      const evb_record_header_t *h = (const evb_record_header_t *)r;
      CHECK(h->seq == seq++);
      CHECK(EVB_RECORD_HEADER_LEN + (uint64_t)h->payload_len + h->subject_len <= h->record_len);
      for (uint32_t k = 0; k < h->subject_len; k++) CHECK(r[EVB_RECORD_HEADER_LEN + h->payload_len + k] > ' ');
      r += h->record_len;
    }
    got += n > 0 ? (uint64_t)n : 0;
  }
  CHECK(got == want);
  CHECK(evb_engine_stop(eng) == EVB_STATUS_OK && evb_engine_detach(eng) == EVB_STATUS_OK);
  while (evb_drain(b, 1 << 20, 4096, 0) > 0) got++;
  const evb_stats_t *s = evb_bridge_stats(b);
  uint64_t invalid = 0;
  for (int i = 0; i < EVB_INVALID_REASONS; i++) invalid += s->invalid[i];
  CHECK(s->callbacks == s->accepted + s->dropped[0] + invalid + s->stale + s->panicked);
  CHECK(s->accepted == s->delivered && s->delivered == got && invalid == 0);
  fprintf(stderr, "%s: %llu events, %llu callbacks\n", argv[1], (unsigned long long)got, (unsigned long long)s->callbacks);
  evb_bridge_free(b);
  evb_engine_free(eng);
  printf("adapter harness: %d checks held, %d failed\n", passed, failed);
  printf("asan: %d passed, %d failed\n", failed ? 0 : 1, failed ? 1 : 0);
  return failed ? 1 : 0;
}
