/* Unregister quiescence: after unregister returns, nobody is inside the
 * callback and no call follows; from inside a callback it is refused. */
#include "runner.h"

#include <stdatomic.h>
#include <time.h>

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
  ee_engine_free(slow_eng); /* documented: does nothing from inside a callback */
  struct timespec d = {0, 200000}; /* 200 us: widen the window a racy unregister would hit */
  nanosleep(&d, NULL);
  atomic_fetch_add(&slow_calls, 1);
  atomic_store(&inside, 0);
  return 0;
}

static _Atomic uint64_t witnessed;
static int witness_cb(const ee_event_t *ev, void *ud) {
  (void)ev;
  (void)ud;
  atomic_fetch_add(&witnessed, 1);
  return 0;
}

TEST(unregister_quiescence) {
  ee_engine_t *eng = slow_eng = ee_engine_new();
  CHECK(eng);
  slow_id = ee_engine_register(eng, slow_cb, NULL, EE_KIND_MASK_ALL);
  CHECK(slow_id > 0);
  CHECK(ee_engine_add_generator(eng, 4, 0, 16, 0, NULL, 0) >= 0);
  CHECK(ee_engine_start(eng) == 0);
  WAIT_FOR(atomic_load(&slow_calls) >= 20, 10000);
  CHECK(ee_engine_unregister(eng, slow_id) == 0);
  CHECK(atomic_load(&inside) == 0);
  uint64_t frozen = atomic_load(&slow_calls);
  /* Proof that the generators go on dispatching: a second registration
   * receives 10,000 more events, none of which reach the removed one. */
  CHECK(ee_engine_register(eng, witness_cb, NULL, EE_KIND_MASK_ALL) > 0);
  WAIT_FOR(atomic_load(&witnessed) >= 10000, 10000);
  CHECK(atomic_load(&slow_calls) == frozen);
  CHECK(atomic_load(&deadlk_seen) == 1);
  ee_engine_free(eng);
}
