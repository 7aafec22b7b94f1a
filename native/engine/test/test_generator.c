/* The load generator: counts, payloads that carry source_seq, and subjects
 * cycled per thread. */
#include "runner.h"

#include <stdatomic.h>
#include <string.h>

#define GEN_THREADS 3
#define GEN_COUNT 3000
static _Atomic uint64_t gen_calls;
static _Atomic int gen_bad;
static const char *const gen_subjects[] = {"md.XNAS.AAPL", "md.XNAS.MSFT", "md.XLON.VOD"};

static int gen_cb(const ee_event_t *ev, void *ud) {
  (void)ud;
  uint64_t in_payload;
  memcpy(&in_payload, ev->payload, sizeof in_payload);
  const char *want = gen_subjects[ev->source_seq % 3];
  if (ev->kind != EE_KIND_GEN || ev->len != 24 || in_payload != ev->source_seq || ev->subject_len != strlen(want) ||
      memcmp(ev->subject, want, ev->subject_len) != 0)
    atomic_fetch_add(&gen_bad, 1);
  atomic_fetch_add(&gen_calls, 1);
  return 0;
}

TEST(generator_subjects) {
  ee_engine_t *eng = ee_engine_new();
  CHECK(eng);
  CHECK(ee_engine_add_generator(eng, 0, 0, 24, 1, NULL, 0) == EE_EINVAL);
  CHECK(ee_engine_add_generator(eng, 1, 0, 4, 1, NULL, 0) == EE_EINVAL);
  CHECK(ee_engine_add_generator(eng, 1, 0, 24, 1, NULL, 1) == EE_EINVAL);
  CHECK(ee_engine_add_generator(eng, GEN_THREADS, 0, 24, GEN_COUNT, gen_subjects, 3) == 0);
  CHECK(ee_engine_register(eng, gen_cb, NULL, 1u << EE_KIND_GEN) > 0);
  CHECK(ee_engine_start(eng) == 0);
  WAIT_FOR(ee_engine_generators_done(eng) == GEN_THREADS, 10000);
  CHECK(ee_engine_stop(eng) == 0);
  CHECK(atomic_load(&gen_calls) == GEN_THREADS * GEN_COUNT);
  CHECK(atomic_load(&gen_bad) == 0);
  ee_engine_free(eng);
}
