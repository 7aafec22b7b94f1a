/* Fault injection: each careless call reaches the callbacks as described,
 * stale calls reach the retired registration, counts are exact. */
#include "runner.h"

#include <stdatomic.h>

static _Atomic int null_ev, null_pl, big, odd_kind, late, bad_subject;
static int fault_cb(const ee_event_t *ev, void *ud) {
  (void)ud;
  if (!ev) return atomic_fetch_add(&null_ev, 1), -1;
  if (!ev->payload && ev->len) return atomic_fetch_add(&null_pl, 1), -1;
  if (ev->len > EE_PAYLOAD_MAX) return atomic_fetch_add(&big, 1), -1;
  if (ev->kind == EE_FAULT_KIND) return atomic_fetch_add(&odd_kind, 1), -1;
  if (ev->subject_len) return atomic_fetch_add(&bad_subject, 1), -1;
  if (ee_now_ns() - ev->ts_ns >= 1000000000u) atomic_fetch_add(&late, 1);
  return 0;
}

static _Atomic uint64_t stale_hits;
static int stale_cb(const ee_event_t *ev, void *ud) {
  (void)ev;
  (void)ud;
  atomic_fetch_add(&stale_hits, 1);
  return 0;
}

TEST(fault_injection) {
  ee_engine_t *eng = ee_engine_new();
  CHECK(eng);
  CHECK(ee_engine_inject(eng, EE_FAULT_NULL_EVENT, 1) == EE_EPERM);
  CHECK(ee_engine_set_fault_injection(eng, 1) == 0);
  CHECK(ee_engine_inject(eng, EE_FAULT_NULL_EVENT, 1) == EE_ENOENT); /* nobody registered */
  CHECK(ee_engine_inject(eng, EE_FAULT_STALE, 1) == EE_ENOENT);
  CHECK(ee_engine_inject(eng, (ee_fault_t)42, 1) == EE_EINVAL);
  int64_t id = ee_engine_register(eng, fault_cb, NULL, EE_KIND_MASK_ALL);
  CHECK(id > 0);
  CHECK(ee_engine_inject(eng, EE_FAULT_NULL_EVENT, 3) == 3);
  CHECK(ee_engine_inject(eng, EE_FAULT_NULL_PAYLOAD, 4) == 4);
  CHECK(ee_engine_inject(eng, EE_FAULT_OVERSIZE, 5) == 5);
  CHECK(ee_engine_inject(eng, EE_FAULT_UNKNOWN_KIND, 6) == 6);
  CHECK(ee_engine_inject(eng, EE_FAULT_LATE, 7) == 7);
  CHECK(ee_engine_inject(eng, EE_FAULT_BAD_SUBJECT, 8) == 8);
  CHECK(null_ev == 3 && null_pl == 4 && big == 5 && odd_kind == 6 && late == 7 && bad_subject == 8);
  int64_t id2 = ee_engine_register(eng, stale_cb, NULL, EE_KIND_MASK_ALL);
  CHECK(ee_engine_unregister(eng, id2) == 0);
  CHECK(ee_engine_inject(eng, EE_FAULT_STALE, 9) == 9); /* the unregistered one, on purpose */
  CHECK(atomic_load(&stale_hits) == 9);
  ee_stats_t st;
  CHECK(ee_engine_stats(eng, &st) == 0);
  CHECK(st.injected == 3 + 4 + 5 + 6 + 7 + 8 + 9);
  CHECK(st.cb_errors == 3 + 4 + 5 + 6 + 8); /* the careless ones fault_cb refused */
  CHECK(st.dispatched == 0);
  CHECK(ee_engine_unregister(eng, id) == 0);
  ee_engine_free(eng);
}
