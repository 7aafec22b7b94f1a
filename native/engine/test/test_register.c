/* Registration: ids, kind masks, argument checks, the dispatched count. */
#include "runner.h"

#include <stdatomic.h>

static int count_cb(const ee_event_t *ev, void *ud) {
  (void)ev;
  atomic_fetch_add((_Atomic uint64_t *)ud, 1);
  return 0;
}

static _Atomic uint64_t a, b;

TEST(register_unregister) {
  ee_engine_t *eng = ee_engine_new();
  CHECK(eng);
  CHECK(ee_engine_register(eng, NULL, NULL, EE_KIND_MASK_ALL) == EE_EINVAL);
  CHECK(ee_engine_register(eng, count_cb, NULL, 0) == EE_EINVAL);
  int64_t ida = ee_engine_register(eng, count_cb, (void *)&a, 1u << EE_KIND_GEN);
  int64_t idb = ee_engine_register(eng, count_cb, (void *)&b, 1u << EE_KIND_TICK); /* never matches */
  CHECK(ida > 0 && idb > 0 && ida != idb);
  CHECK(ee_engine_add_generator(eng, 2, 0, 16, 5000, NULL, 0) >= 0);
  CHECK(ee_engine_start(eng) == 0);
  CHECK(ee_engine_start(eng) == EE_EBUSY);
  WAIT_FOR(ee_engine_generators_done(eng) == 2, 10000);
  CHECK(ee_engine_stop(eng) == 0);
  CHECK(ee_engine_stop(eng) == 0); /* idempotent */
  CHECK(atomic_load(&a) == 10000);
  CHECK(atomic_load(&b) == 0);
  CHECK(ee_engine_unregister(eng, ida) == 0);
  CHECK(ee_engine_unregister(eng, ida) == EE_ENOENT);
  ee_stats_t st;
  CHECK(ee_engine_stats(eng, &st) == 0 && st.dispatched == 10000 && st.cb_errors == 0);
  ee_engine_free(eng);
  ee_engine_free(NULL);
}
