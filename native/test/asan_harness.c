/* Drives the engine and the bridge together under AddressSanitizer: real
 * generator and UDP traffic, every fault-injection case, bridge panics, a
 * consumer reading records in place, and a shutdown in the documented order
 * (stop sources, unregister, drain, revoke, free), followed by stale calls.
 * Exits non-zero on any failed check; ASan aborts on any memory error.
 * The harness is one test: it prints "asan: 1 passed, 0 failed" when every
 * check held, "asan: 0 passed, 1 failed" otherwise. */
#define _GNU_SOURCE
#include "evbridge.h"
#include "evengine.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The bridge mirrors the engine's event struct field by field. */
_Static_assert(sizeof(ee_event_t) == sizeof(evb_event_t), "event size");
_Static_assert(offsetof(ee_event_t, kind) == offsetof(evb_event_t, kind), "kind");
_Static_assert(offsetof(ee_event_t, source_id) == offsetof(evb_event_t, source_id), "source_id");
_Static_assert(offsetof(ee_event_t, flags) == offsetof(evb_event_t, flags), "flags");
_Static_assert(offsetof(ee_event_t, source_seq) == offsetof(evb_event_t, source_seq), "source_seq");
_Static_assert(offsetof(ee_event_t, ts_ns) == offsetof(evb_event_t, ts_ns), "ts_ns");
_Static_assert(offsetof(ee_event_t, payload) == offsetof(evb_event_t, payload), "payload");
_Static_assert(offsetof(ee_event_t, len) == offsetof(evb_event_t, len), "len");
_Static_assert(EE_ABI_VERSION == EVB_ENGINE_ABI_VERSION, "engine ABI");

static int passed, failed;
#define CHECK(cond)                                                          \
  do {                                                                       \
    if (cond) passed++;                                                      \
    else {                                                                   \
      failed++;                                                              \
      fprintf(stderr, "check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                        \
  } while (0)

static uint64_t u64at(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t u32at(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* Drains everything ready; checks each record in place. Returns records. */
static uint64_t drain(evb_bridge_t *b, uint64_t *next_seq) {
  const uint8_t *ring = evb_ring_data(b);
  const evb_drain_t *d = evb_drain_result(b);
  uint64_t total = 0;
  int64_t n;
  while ((n = evb_drain(b, 1 << 20, 4096, 0)) > 0) {
    const uint8_t *r = ring + d->offset;
    for (int64_t i = 0; i < n; i++) {
      uint32_t rec = u32at(r), len = u32at(r + 4), kind = u32at(r + 8);
      if (u64at(r + 40) != (*next_seq)++) { CHECK(!"sequence in order"); return total; }
      if (kind == EE_KIND_GEN && len >= 8 && u64at(r + 48) != u64at(r + 24)) CHECK(!"payload carries source_seq");
      r += rec;
    }
    CHECK((uint64_t)(r - (ring + d->offset)) == d->len);
    total += (uint64_t)n;
  }
  return total;
}

int main(void) {
  ee_engine_t *eng = ee_engine_new();
  evb_bridge_t *b = evb_bridge_new(ee_abi_version(), 1u << 20, EE_PAYLOAD_MAX, 1000000, EE_KIND_MASK_ALL);
  CHECK(eng && b);
  CHECK(evb_bridge_new(ee_abi_version() + 1, 1u << 20, 1024, 0, 2) == NULL);
  CHECK(evb_last_status() == EVB_STATUS_ABI_MISMATCH);
  void *token = evb_bridge_token_new(b);
  CHECK(token != NULL);
  /* evb_event_t and ee_event_t are distinct C types with one layout (the
   * static asserts above), so the bridge's callback is cast to the engine's
   * callback type, as an integrator's glue code does. */
  int64_t reg = ee_engine_register(eng, (ee_event_cb)evb_callback(), token, EE_KIND_MASK_ALL);
  CHECK(reg > 0);
  int udp = ee_engine_add_udp(eng, "127.0.0.1", 0);
  CHECK(udp >= 0);
  CHECK(ee_engine_add_generator(eng, 4, 0, 64, 20000) >= 0);
  CHECK(ee_engine_add_tick(eng, 1000) >= 0);
  CHECK(ee_engine_set_fault_injection(eng, 1) == 0);
  CHECK(ee_engine_start(eng) == 0);

  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ee_engine_udp_port(eng, udp))};
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  static uint8_t big[EE_PAYLOAD_MAX];
  memset(big, 0xab, sizeof big);
  uint64_t seq = 1, got = 0;
  for (int i = 0; i < 50; i++) {
    sendto(fd, big, i == 0 ? sizeof big : (size_t)i * 13, 0, (struct sockaddr *)&to, sizeof to);
    got += drain(b, &seq);
  }
  close(fd);
  CHECK(evb_bridge_fault_panic(b, 5) == EVB_STATUS_OK);
  CHECK(ee_engine_inject(eng, EE_FAULT_NULL_EVENT, 10) == 10);
  CHECK(ee_engine_inject(eng, EE_FAULT_NULL_PAYLOAD, 10) == 10);
  CHECK(ee_engine_inject(eng, EE_FAULT_OVERSIZE, 10) == 10);
  CHECK(ee_engine_inject(eng, EE_FAULT_UNKNOWN_KIND, 10) == 10);
  CHECK(ee_engine_inject(eng, EE_FAULT_LATE, 10) == 10);
  while (ee_engine_generators_done(eng) < 4) got += drain(b, &seq);

  /* Shutdown in order: stop sources, unregister, drain, revoke, stale, free. */
  CHECK(ee_engine_stop(eng) == 0);
  CHECK(ee_engine_unregister(eng, reg) == 0);
  got += drain(b, &seq);
  CHECK(evb_token_revoke(token) == EVB_STATUS_OK);
  CHECK(ee_engine_inject(eng, EE_FAULT_STALE, 10) == 10);
  const evb_stats_t *s = evb_bridge_stats(b);
  uint64_t invalid = 0, dropped = 0;
  for (int i = 0; i < EVB_INVALID_REASONS; i++) invalid += s->invalid[i];
  for (int i = 0; i < EVB_DROP_REASONS; i++) dropped += s->dropped[i];
  CHECK(s->callbacks == s->accepted + dropped + invalid + s->stale + s->panicked);
  CHECK(s->accepted == s->delivered && s->delivered == got);
  CHECK(s->panicked == 5 && s->stale == 10 && invalid == 40 && s->late >= 10);
  CHECK(evb_panic_message_next()[0] != '\0');
  fprintf(stderr, "callbacks %llu accepted %llu dropped %llu late %llu\n", (unsigned long long)s->callbacks,
          (unsigned long long)s->accepted, (unsigned long long)dropped, (unsigned long long)s->late);
  evb_bridge_free(b);
  /* After free the token's slot is empty: calls are refused, not followed. */
  CHECK(ee_engine_inject(eng, EE_FAULT_STALE, 3) == 3);
  ee_engine_free(eng);
  evb_bridge_free(NULL);
  ee_engine_free(NULL);
  printf("asan harness: %d checks held, %d failed\n", passed, failed);
  printf("asan: %d passed, %d failed\n", failed ? 0 : 1, failed ? 1 : 0);
  return failed ? 1 : 0;
}
